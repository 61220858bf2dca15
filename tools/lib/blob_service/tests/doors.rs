// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The request script through both doors of one in-process service.

use std::sync::Arc;

use azure_blob_service::conformance::{script::script, HttpTransport, Runner, VscTransport};
use azure_blob_service::server::HttpServer;
use azure_blob_service::{BlobService, Config, MemoryStorage};

fn report(name: &str, rep: &azure_blob_service::conformance::RunReport) {
    eprintln!(
        "{name}: {} requests sent, {} skipped, {} failures",
        rep.sent,
        rep.skipped,
        rep.failures.len()
    );
    for f in &rep.failures {
        eprintln!("  {f}");
    }
}

#[test]
fn script_passes_through_the_http_door() {
    let svc = BlobService::in_memory();
    let server = HttpServer::start(svc, "127.0.0.1:0", 64).unwrap();
    let mut t = HttpTransport::new(server.local_addr(), true);
    let steps = script();
    let rep = Runner::new().run(&steps, &mut t);
    report("http", &rep);
    assert!(rep.sent >= 150, "only {} requests", rep.sent);
    assert_eq!(rep.skipped, 0);
    assert!(rep.failures.is_empty());
}

#[test]
fn script_passes_through_the_vsc_door_without_a_key() {
    let svc = BlobService::in_memory();
    let mut t = VscTransport::new(svc);
    let rep = Runner::new().run(&script(), &mut t);
    report("vsc", &rep);
    assert!(rep.sent >= 150);
    // Authorization steps need a configured key.
    assert!(rep.skipped > 0);
    assert!(rep.failures.is_empty());
}

#[test]
fn script_passes_through_the_vsc_door_with_a_key() {
    let config = Config {
        vsc_shared_key: true,
        ..Config::default()
    };
    let svc = BlobService::new(Arc::new(MemoryStorage::new()), config);
    let mut t = VscTransport::new(svc);
    let rep = Runner::new().run(&script(), &mut t);
    report("vsc+key", &rep);
    assert_eq!(rep.skipped, 0);
    assert!(rep.failures.is_empty());
}

#[test]
fn http_door_answers_expect_100_continue_before_reading_the_body() {
    use std::io::{Read, Write};
    let config = Config {
        http_shared_key: false,
        ..Config::default()
    };
    let svc = BlobService::new(Arc::new(MemoryStorage::new()), config);
    let server = HttpServer::start(svc, "127.0.0.1:0", 4).unwrap();
    let mut s = std::net::TcpStream::connect(server.local_addr()).unwrap();
    s.write_all(
        b"PUT /devstoreaccount1/exp?restype=container HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 201"));
    s.write_all(b"PUT /devstoreaccount1/exp/b HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut buf[..1]).unwrap();
        assert_eq!(n, 1);
        got.push(buf[0]);
    }
    assert_eq!(got, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"abc").unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 201"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn http_door_answers_503_server_busy_past_its_connection_limit() {
    use std::io::Read;
    let server = HttpServer::start(BlobService::in_memory(), "127.0.0.1:0", 1).unwrap();
    // The first connection takes the only slot (its thread waits for a request).
    let _first = std::net::TcpStream::connect(server.local_addr()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut second = std::net::TcpStream::connect(server.local_addr()).unwrap();
    let mut resp = String::new();
    second.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.contains("x-ms-error-code: ServerBusy"), "{resp}");
}

#[test]
fn shared_key_requires_a_date_within_fifteen_minutes() {
    use azure_blob_service::auth::{self, Account};
    let config = Config {
        vsc_shared_key: true,
        ..Config::default()
    };
    let svc = BlobService::new(Arc::new(MemoryStorage::new()), config);
    let account = Account::dev();
    let signed = |date: Option<std::time::SystemTime>| {
        let mut h: Vec<(String, String)> = vec![("x-ms-version".into(), "2021-10-04".into())];
        if let Some(d) = date {
            h.push(("x-ms-date".into(), httpdate::fmt_http_date(d)));
        }
        let path = "/devstoreaccount1/dated";
        let sts = auth::string_to_sign("PUT", &account.name, path, "restype=container", &h);
        h.push(("authorization".into(), auth::sign(&account, &sts)));
        let mut head = format!("PUT {path}?restype=container HTTP/1.1\r\n");
        for (n, v) in &h {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let o = svc.vsc_exchange(head.as_bytes(), b"", 1 << 16, 1 << 16);
        String::from_utf8_lossy(&o.response).into_owned()
    };
    let now = std::time::SystemTime::now();
    let hour = std::time::Duration::from_secs(3600);
    for date in [None, Some(now - hour), Some(now + hour)] {
        let r = signed(date);
        assert!(r.starts_with("HTTP/1.1 403"), "{date:?}: {r}");
        assert!(r.contains("x-ms-error-code: AuthenticationFailed"));
    }
    assert!(signed(Some(now)).starts_with("HTTP/1.1 201"));
}
