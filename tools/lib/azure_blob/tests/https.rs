// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The HTTP transport over TLS: the blob service's HTTP door behind a TLS
//! front (rustls, a certificate made for the test), reached with the
//! certificate trusted through a CA file, and refused without it.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use azure_blob::{BlobServiceClient, HttpTransport, DEV_ACCOUNT, DEV_KEY};
use azure_blob_service::server::HttpServer;
use azure_blob_service::{BlobService, Config, MemoryStorage};

/// Reads one HTTP message (head + Content-Length body) from `r`; `None` at EOF.
fn read_message(r: &mut impl BufRead, no_body: bool) -> Option<(Vec<u8>, String)> {
    let mut head = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut head).ok()?;
        if n == 0 {
            return None;
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let len: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    if !no_body {
        let at = head.len();
        head.resize(at + len, 0);
        r.read_exact(&mut head[at..]).ok()?;
    }
    Some((head, text))
}

/// A TLS front: relays each request to `backend` and its answer back.
fn tls_front(backend: std::net::SocketAddr) -> (u16, tempfile::NamedTempFile) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(cert.cert.pem().as_bytes()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, s));
                let mut back = BufReader::new(TcpStream::connect(backend).unwrap());
                while let Some((req, text)) = read_message(&mut tls, false) {
                    let head_only = text.starts_with("HEAD ");
                    back.get_mut().write_all(&req).unwrap();
                    let Some((resp, _)) = read_message(&mut back, head_only) else {
                        return;
                    };
                    let out = tls.get_mut();
                    if out.write_all(&resp).and_then(|_| out.flush()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, ca)
}

#[test]
fn https_with_a_trusted_ca_and_refused_without() {
    let svc = BlobService::new(Arc::new(MemoryStorage::new()), Config::default());
    let server = HttpServer::start(svc, "127.0.0.1:0", 8).unwrap();
    let (port, ca) = tls_front(server.local_addr());
    let endpoint = format!("https://localhost:{port}/devstoreaccount1");

    let t = HttpTransport::with_ca_file(&endpoint, DEV_ACCOUNT, DEV_KEY, Some(ca.path())).unwrap();
    let service = BlobServiceClient::new(t);
    assert_eq!(service.transport().endpoint(), endpoint);
    let c = service.container_client("tls");
    c.create(&Default::default()).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let b = c.blob_client("over/tls.bin");
    b.upload(&data, &Default::default()).unwrap();
    assert_eq!(b.download(&Default::default()).unwrap(), data);
    assert!(!c.blob_client("missing").exists().unwrap());

    // Without the CA the server's certificate is not trusted.
    let untrusted = BlobServiceClient::new(
        HttpTransport::with_ca_file(&endpoint, DEV_ACCOUNT, DEV_KEY, None).unwrap(),
    );
    let err = untrusted.container_client("tls").exists().unwrap_err();
    assert!(
        err.to_string().contains("certificate"),
        "unexpected error: {err}"
    );
}

#[test]
fn bad_endpoints_are_clear_errors() {
    for (endpoint, what) in [
        ("ftp://x", "must start with http:// or https://"),
        ("http://", "no host"),
        (
            "http://no-such-host.invalid:80/a",
            "endpoint 'http://no-such-host.invalid:80/a'",
        ),
    ] {
        let err = HttpTransport::new(endpoint, DEV_ACCOUNT, DEV_KEY).unwrap_err();
        assert!(
            matches!(err, azure_blob::Error::Config(_)) && err.to_string().contains(what),
            "{endpoint}: {err}"
        );
    }
    let err = HttpTransport::new("http://127.0.0.1:1/a", DEV_ACCOUNT, "not base64!").unwrap_err();
    assert!(err.to_string().contains("not base64"), "{err}");
}
