// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The HTTP transport's connection handling against scripted servers (what
//! a real server does to idle and busy connections), and the client API's
//! edge cases against the blob service's HTTP door.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_blob::{
    BlobServiceClient, DownloadOptions, Error, HttpTransport, Metadata, RestRequest, DEV_ACCOUNT,
    DEV_KEY,
};
use azure_blob_service::server::HttpServer;
use azure_blob_service::{BlobService, Config, MemoryStorage};

/// What the scripted server does with the request it has just read.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// Answers 200 and keeps the connection.
    Answer,
    /// Answers 200, then closes the connection (while the client idles).
    AnswerAndClose,
    /// Closes without answering (as if it died after running the request).
    Close,
    /// Answers 200 with the whole 10-byte blob, ignoring any range.
    Whole,
}

/// A server answering the n-th request (over all connections) by
/// `script[n]`; records every request line it read and counts connections.
struct Scripted {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

fn scripted(script: Vec<Then>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (reqs, conns) = (requests.clone(), connections.clone());
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            conns.fetch_add(1, Ordering::SeqCst);
            let mut r = BufReader::new(s);
            loop {
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                if head.is_empty() {
                    break; // the client closed
                }
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                r.read_exact(&mut body).unwrap();
                let n = {
                    let mut g = reqs.lock().unwrap();
                    g.push(head.lines().next().unwrap_or("").to_string());
                    g.len() - 1
                };
                let then = script.get(n).copied().unwrap_or(Then::Answer);
                if then == Then::Close {
                    break;
                }
                let out = r.get_mut();
                if then == Then::Whole {
                    out.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"e\"\r\n\r\n0123456789",
                    )
                    .unwrap();
                    continue;
                }
                out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .unwrap();
                if then == Then::AnswerAndClose {
                    break;
                }
            }
        }
    });
    Scripted {
        port,
        requests,
        connections,
    }
}

fn transport(port: u16) -> HttpTransport {
    HttpTransport::new(
        &format!("http://127.0.0.1:{port}/devstoreaccount1"),
        DEV_ACCOUNT,
        DEV_KEY,
    )
    .unwrap()
}

fn req<'a>(method: &'a str, headers: &'a [(&'a str, &'a str)]) -> RestRequest<'a> {
    RestRequest {
        method,
        path: "/c/b",
        headers,
        body: b"",
    }
}

#[test]
fn an_idle_connection_the_server_closed_is_not_used() {
    let s = scripted(vec![Then::AnswerAndClose, Then::Answer]);
    let t = transport(s.port);
    assert_eq!(t.send(&req("GET", &[])).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(100)); // the close arrives
                                                    // A write: it must not meet the dead connection (it would not be sent
                                                    // again), so a fresh one carries it.
    assert_eq!(t.send(&req("PUT", &[])).unwrap().status, 200);
    assert_eq!(s.requests.lock().unwrap().len(), 2);
    assert_eq!(s.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn a_write_whose_connection_dies_is_not_sent_twice() {
    let s = scripted(vec![Then::Answer, Then::Close, Then::Answer]);
    let t = transport(s.port);
    assert_eq!(t.send(&req("GET", &[])).unwrap().status, 200);
    // The server reads the PUT and dies without answering: it may have run.
    let err = t.send(&req("PUT", &[])).unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err}");
    let seen = s.requests.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|l| l.starts_with("PUT ")).count(), 1);
    // The transport goes on with a new connection.
    assert_eq!(t.send(&req("GET", &[])).unwrap().status, 200);
}

#[test]
fn a_read_whose_connection_dies_is_sent_again_once() {
    let s = scripted(vec![Then::Answer, Then::Close, Then::Answer]);
    let t = transport(s.port);
    assert_eq!(t.send(&req("GET", &[])).unwrap().status, 200);
    assert_eq!(t.send(&req("GET", &[])).unwrap().status, 200);
    assert_eq!(s.requests.lock().unwrap().len(), 3);
    assert_eq!(s.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn header_values_with_cr_or_lf_are_refused_before_sending() {
    let s = scripted(vec![]);
    let t = transport(s.port);
    for (k, v) in [
        ("x-ms-meta-a", "one\r\nx-ms-meta-b: two"),
        ("x-ms-meta-a", "line\nbreak"),
        ("bad name", "v"),
    ] {
        let h = [(k, v)];
        let err = t.send(&req("PUT", &h)).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{k}: {err}");
    }
    assert!(s.requests.lock().unwrap().is_empty());
    // Through the client API too: metadata is headers.
    let svc = BlobServiceClient::new(transport(s.port));
    let mut md = Metadata::new();
    md.insert("note".into(), "a\r\nb".into());
    let err = svc
        .container_client("c")
        .blob_client("b")
        .set_metadata(&md, &Default::default())
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

fn service() -> (HttpServer, BlobServiceClient) {
    let svc = BlobService::new(Arc::new(MemoryStorage::new()), Config::default());
    let server = HttpServer::start(svc, "127.0.0.1:0", 4).unwrap();
    let client = BlobServiceClient::new(transport(server.local_addr().port()));
    (server, client)
}

#[test]
fn a_blob_with_hundreds_of_metadata_headers_reads_back() {
    let (_server, svc) = service();
    let c = svc.container_client("meta");
    c.create(&Default::default()).unwrap();
    let b = c.blob_client("many");
    b.upload(b"x", &Default::default()).unwrap();
    let mut md = Metadata::new();
    for i in 0..300 {
        md.insert(format!("k{i:03}"), format!("v{i}"));
    }
    b.set_metadata(&md, &Default::default()).unwrap();
    let props = b.get_properties(&Default::default()).unwrap();
    assert_eq!(props.metadata.len(), 300);
    assert_eq!(props.metadata.get("k299").map(String::as_str), Some("v299"));
}

#[test]
fn download_into_at_the_end_reads_nothing() {
    let (_server, svc) = service();
    let c = svc.container_client("eof");
    c.create(&Default::default()).unwrap();
    let b = c.blob_client("ten");
    b.upload(b"0123456789", &Default::default()).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(b.download_into(&mut buf, 8).unwrap(), 2);
    assert_eq!(&buf[..2], b"89");
    assert_eq!(b.download_into(&mut buf, 10).unwrap(), 0);
    assert_eq!(b.download_into(&mut buf, 99).unwrap(), 0);
}

#[test]
fn a_server_ignoring_the_range_still_gives_the_range() {
    let s = scripted(vec![Then::Whole; 4]);
    let svc = BlobServiceClient::new(transport(s.port));
    let b = svc.container_client("c").blob_client("b");
    let got = b.download(&DownloadOptions::range(3, 4)).unwrap();
    assert_eq!(got, b"3456");
    let got = b.download(&DownloadOptions::range(7, 100)).unwrap();
    assert_eq!(got, b"789");
    assert_eq!(b.download(&Default::default()).unwrap(), b"0123456789");
}
