// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Store-level properties: bad input leaves the store unchanged, bodies stream in bounded
//! chunks, concurrent writers keep the store consistent and no extent leaks.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use azure_blob_service::auth::{self, Account};
use azure_blob_service::conformance::{HttpTransport, RawResponse, Transport, VscTransport};
use azure_blob_service::engine::CHUNK;
use azure_blob_service::server::HttpServer;
use azure_blob_service::storage::{BlobRecord, ContainerRecord, ExtentId, StorageResult};
use azure_blob_service::{BlobService, Config, MemoryStorage, Storage};

const LEASE: &str = "6a7e8a1c-9f3b-4a55-8d0e-3c1f2b4a5d6e";

/// A signed request head for the development account.
fn head(method: &str, path: &str, headers: &[(&str, &str)], body_len: usize) -> Vec<u8> {
    let account = Account::dev();
    let full = format!("/{}{}", account.name, path);
    let (raw_path, raw_query) = full.split_once('?').unwrap_or((&full, ""));
    let mut h: Vec<(String, String)> = vec![
        ("host".into(), "127.0.0.1".into()),
        ("x-ms-version".into(), "2021-10-04".into()),
        (
            "x-ms-date".into(),
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        ),
        ("content-length".into(), body_len.to_string()),
    ];
    for (n, v) in headers {
        h.push(((*n).to_string(), (*v).to_string()));
    }
    let sts = auth::string_to_sign(method, &account.name, raw_path, raw_query, &h);
    h.push(("authorization".into(), auth::sign(&account, &sts)));
    let mut s = format!("{method} {full} HTTP/1.1\r\n");
    for (n, v) in &h {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

fn send(
    t: &mut dyn Transport,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    t.exchange(
        &head(method, path, headers, body.len()),
        body,
        method == "HEAD",
    )
    .expect("transport failed")
}

fn populate(t: &mut dyn Transport) {
    let ok = |r: RawResponse, s: u16| assert_eq!(r.status, s, "{:?}", r.header("x-ms-error-code"));
    ok(send(t, "PUT", "/box?restype=container", &[], b""), 201);
    ok(
        send(
            t,
            "PUT",
            "/box/block",
            &[("x-ms-blob-type", "BlockBlob"), ("x-ms-meta-a", "1")],
            b"block content",
        ),
        201,
    );
    ok(
        send(t, "PUT", "/box/staged?comp=block&blockid=QUFB", &[], b"aaa"),
        201,
    );
    ok(
        send(
            t,
            "PUT",
            "/box/page",
            &[
                ("x-ms-blob-type", "PageBlob"),
                ("x-ms-blob-content-length", "1024"),
            ],
            b"",
        ),
        201,
    );
    ok(
        send(
            t,
            "PUT",
            "/box/page?comp=page",
            &[("x-ms-page-write", "update"), ("x-ms-range", "bytes=0-511")],
            &[7u8; 512],
        ),
        201,
    );
    ok(
        send(
            t,
            "PUT",
            "/box/append",
            &[("x-ms-blob-type", "AppendBlob")],
            b"",
        ),
        201,
    );
    ok(
        send(t, "PUT", "/box/append?comp=appendblock", &[], b"log"),
        201,
    );
    ok(
        send(
            t,
            "PUT",
            "/box/leased",
            &[("x-ms-blob-type", "BlockBlob")],
            b"leased",
        ),
        201,
    );
    ok(
        send(
            t,
            "PUT",
            "/box/leased?comp=lease",
            &[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "-1"),
                ("x-ms-proposed-lease-id", LEASE),
            ],
            b"",
        ),
        201,
    );
}

type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>);

/// Requests that must all fail with a 4xx and change nothing.
fn bad_requests(t: &mut dyn Transport) {
    let big = "m".repeat(9000);
    let cases: Vec<Case<'_>> = vec![
        (
            "PUT",
            "/box/block",
            vec![
                ("x-ms-blob-type", "BlockBlob"),
                ("content-md5", "AAAAAAAAAAAAAAAAAAAAAA=="),
            ],
            b"new".to_vec(),
        ),
        (
            "PUT",
            "/box/block",
            vec![("x-ms-blob-type", "BlockBlob"), ("if-match", "\"0x1\"")],
            b"new".to_vec(),
        ),
        (
            "PUT",
            "/box/block",
            vec![("x-ms-blob-type", "BlockBlob"), ("if-none-match", "*")],
            b"new".to_vec(),
        ),
        (
            "PUT",
            "/box/block",
            vec![("x-ms-blob-type", "Nonsense")],
            b"new".to_vec(),
        ),
        (
            "PUT",
            "/box/block?comp=metadata",
            vec![("x-ms-meta-9bad", "x")],
            vec![],
        ),
        (
            "PUT",
            "/box/block?comp=properties",
            vec![("x-ms-blob-content-md5", "not base64!")],
            vec![],
        ),
        (
            "PUT",
            "/box/leased",
            vec![("x-ms-blob-type", "BlockBlob")],
            b"steal".to_vec(),
        ),
        ("DELETE", "/box/leased", vec![], vec![]),
        (
            "PUT",
            "/box/leased?comp=lease",
            vec![
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "5"),
            ],
            vec![],
        ),
        (
            "PUT",
            "/box/leased?comp=lease",
            vec![
                ("x-ms-lease-action", "release"),
                ("x-ms-lease-id", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"),
            ],
            vec![],
        ),
        (
            "PUT",
            "/box/staged?comp=block&blockid=%21%21",
            vec![],
            b"x".to_vec(),
        ),
        (
            "PUT",
            "/box/staged?comp=block&blockid=QkJC",
            vec![("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")],
            b"bbb".to_vec(),
        ),
        (
            "PUT",
            "/box/staged?comp=block&blockid=QkI%3D",
            vec![],
            b"bb".to_vec(),
        ),
        (
            "PUT",
            "/box/staged?comp=blocklist",
            vec![],
            b"<BlockList><Latest>QUFB</Latest>".to_vec(),
        ),
        (
            "PUT",
            "/box/staged?comp=blocklist",
            vec![],
            b"<BlockList><Latest>WldX</Latest></BlockList>".to_vec(),
        ),
        (
            "PUT",
            "/box/page?comp=page",
            vec![("x-ms-page-write", "update"), ("x-ms-range", "bytes=1-512")],
            vec![1u8; 512],
        ),
        (
            "PUT",
            "/box/page?comp=page",
            vec![
                ("x-ms-page-write", "update"),
                ("x-ms-range", "bytes=1024-1535"),
            ],
            vec![1u8; 512],
        ),
        (
            "PUT",
            "/box/page?comp=page",
            vec![
                ("x-ms-page-write", "update"),
                ("x-ms-range", "bytes=0-1023"),
            ],
            vec![1u8; 512],
        ),
        (
            "PUT",
            "/box/page?comp=page",
            vec![("x-ms-page-write", "clear"), ("x-ms-range", "bytes=0-511")],
            vec![1u8; 512],
        ),
        (
            "PUT",
            "/box/page?comp=properties",
            vec![("x-ms-blob-content-length", "100")],
            vec![],
        ),
        (
            "PUT",
            "/box/append?comp=appendblock",
            vec![("x-ms-blob-condition-appendpos", "1")],
            b"x".to_vec(),
        ),
        (
            "PUT",
            "/box/append?comp=appendblock",
            vec![("x-ms-blob-condition-maxsize", "3")],
            b"x".to_vec(),
        ),
        (
            "PUT",
            "/box/append?comp=appendblock",
            vec![("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")],
            b"x".to_vec(),
        ),
        ("PUT", "/box/block?comp=appendblock", vec![], b"x".to_vec()),
        ("PUT", "/box?restype=container", vec![], vec![]),
        ("PUT", "/Box?restype=container", vec![], vec![]),
        (
            "DELETE",
            "/box?restype=container",
            vec![("if-unmodified-since", "Sat, 01 Jan 2000 00:00:00 GMT")],
            vec![],
        ),
        (
            "PUT",
            "/box?restype=container&comp=metadata",
            vec![("x-ms-meta-", "x")],
            vec![],
        ),
        (
            "GET",
            "/box/block",
            vec![("x-ms-range", "bytes=100-")],
            vec![],
        ),
        ("GET", "/?comp=list&maxresults=-1", vec![], vec![]),
        (
            "PUT",
            "/box/block?comp=metadata",
            vec![("x-ms-meta-big", big.as_str())],
            vec![],
        ),
    ];
    for (i, (m, p, h, b)) in cases.iter().enumerate() {
        let r = send(t, m, p, h, b);
        assert!(
            (400..500).contains(&r.status),
            "case {i} {m} {p}: status {}",
            r.status
        );
        assert!(
            r.header("x-ms-error-code").is_some(),
            "case {i}: no error code"
        );
        if *m != "HEAD" {
            let body = String::from_utf8_lossy(&r.body);
            assert!(body.contains("<Error><Code>"), "case {i}: body {body}");
        }
    }
}

#[test]
fn bad_input_on_both_doors_leaves_the_store_unchanged() {
    let storage = Arc::new(MemoryStorage::new());
    let config = Config {
        vsc_shared_key: true,
        ..Config::default()
    };
    let svc = BlobService::new(storage.clone(), config);
    let mut vsc = VscTransport::new(svc.clone());
    populate(&mut vsc);
    let before = storage.snapshot().unwrap();

    bad_requests(&mut vsc);
    assert_eq!(
        storage.snapshot().unwrap(),
        before,
        "VSC door changed the store"
    );

    let server = HttpServer::start(svc, "127.0.0.1:0", 16).unwrap();
    let mut http = HttpTransport::new(server.local_addr(), true);
    bad_requests(&mut http);
    assert_eq!(
        storage.snapshot().unwrap(),
        before,
        "HTTP door changed the store"
    );

    // Framing-level garbage and bad signatures on the HTTP door.
    let addr = server.local_addr();
    let raw: Vec<Vec<u8>> = vec![
        b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
        b"PUT /devstoreaccount1/box/block HTTP/1.1\r\ncontent-length: x\r\n\r\n".to_vec(),
        {
            let mut v = b"GET /devstoreaccount1/box/block HTTP/1.1\r\nx: ".to_vec();
            v.extend(std::iter::repeat_n(b'a', 100 * 1024));
            v.extend_from_slice(b"\r\n\r\n");
            v
        },
        b"PUT /devstoreaccount1/box/block HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        b"PUT /devstoreaccount1/box/block HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\ncontent-length: 3\r\nconnection: close\r\nauthorization: SharedKey devstoreaccount1:AAAA\r\n\r\nabc".to_vec(),
        b"DELETE /devstoreaccount1/box/block HTTP/1.1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
    ];
    for (i, req) in raw.iter().enumerate() {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(req).unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp);
        let status: u16 = text
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("raw case {i}: no status in {text:?}"));
        assert!((400..500).contains(&status), "raw case {i}: {text}");
        assert!(text.contains("x-ms-error-code: "), "raw case {i}: {text}");
    }
    // A body shorter than its Content-Length, then the client gives up.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&head(
        "PUT",
        "/box/block",
        &[("x-ms-blob-type", "BlockBlob")],
        3 << 20,
    ))
    .unwrap();
    s.write_all(&vec![1u8; 2 << 20]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    assert_eq!(
        storage.snapshot().unwrap(),
        before,
        "raw input changed the store"
    );
}

/// Wraps the memory store and records the largest single extent transfer.
#[derive(Debug, Default)]
struct Recording {
    inner: MemoryStorage,
    largest_write: AtomicUsize,
    largest_read: AtomicUsize,
    written: AtomicU64,
}

impl Storage for Recording {
    fn create_extent(&self, h: u64) -> StorageResult<ExtentId> {
        // Do not reserve: the test is about streaming, not about the in-memory copy.
        let _ = h;
        self.inner.create_extent(0)
    }
    fn write_extent(&self, id: ExtentId, off: u64, data: &[u8]) -> StorageResult<()> {
        self.largest_write.fetch_max(data.len(), Ordering::Relaxed);
        self.written.fetch_add(data.len() as u64, Ordering::Relaxed);
        // Keep only the first bytes of big extents: memory stays small whatever the size.
        if off < 4096 {
            let keep = data.len().min(4096 - off as usize);
            self.inner.write_extent(id, off, &data[..keep])?;
        }
        Ok(())
    }
    fn zero_extent(&self, id: ExtentId, off: u64, len: u64) -> StorageResult<()> {
        self.inner.zero_extent(id, off, len)
    }
    fn read_extent(&self, id: ExtentId, off: u64, buf: &mut [u8]) -> StorageResult<()> {
        self.largest_read.fetch_max(buf.len(), Ordering::Relaxed);
        self.inner.read_extent(id, off, buf)
    }
    fn sync_extent(&self, id: ExtentId) -> StorageResult<()> {
        self.inner.sync_extent(id)
    }
    fn delete_extent(&self, id: ExtentId) -> StorageResult<()> {
        self.inner.delete_extent(id)
    }
    fn get_container(&self, n: &str) -> StorageResult<Option<ContainerRecord>> {
        self.inner.get_container(n)
    }
    fn put_container(&self, n: &str, r: &ContainerRecord) -> StorageResult<()> {
        self.inner.put_container(n, r)
    }
    fn delete_container(&self, n: &str) -> StorageResult<()> {
        self.inner.delete_container(n)
    }
    fn list_containers(&self, s: &str, l: usize) -> StorageResult<Vec<(String, ContainerRecord)>> {
        self.inner.list_containers(s, l)
    }
    fn get_blob(&self, c: &str, n: &str) -> StorageResult<Option<BlobRecord>> {
        self.inner.get_blob(c, n)
    }
    fn put_blob(&self, c: &str, n: &str, r: &BlobRecord) -> StorageResult<()> {
        self.inner.put_blob(c, n, r)
    }
    fn delete_blob(&self, c: &str, n: &str) -> StorageResult<()> {
        self.inner.delete_blob(c, n)
    }
    fn list_blobs(&self, c: &str, s: &str, l: usize) -> StorageResult<Vec<(String, BlobRecord)>> {
        self.inner.list_blobs(c, s, l)
    }
}

#[test]
fn large_bodies_stream_in_bounded_chunks_through_the_http_door() {
    const SIZE: usize = 96 << 20;
    let storage = Arc::new(Recording::default());
    let svc = BlobService::new(storage.clone(), Config::default());
    let server = HttpServer::start(svc, "127.0.0.1:0", 4).unwrap();
    let mut t = HttpTransport::new(server.local_addr(), true);
    assert_eq!(
        send(&mut t, "PUT", "/big?restype=container", &[], b"").status,
        201
    );

    // Send the body in 64 KiB pieces from a generator: the client never holds it whole.
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.write_all(&head(
        "PUT",
        "/big/b",
        &[("x-ms-blob-type", "BlockBlob")],
        SIZE,
    ))
    .unwrap();
    let piece = vec![0xabu8; 64 << 10];
    for _ in 0..SIZE / piece.len() {
        s.write_all(&piece).unwrap();
    }
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");

    assert_eq!(storage.written.load(Ordering::Relaxed), SIZE as u64);
    let w = storage.largest_write.load(Ordering::Relaxed);
    assert!(w <= CHUNK, "a single write of {w} bytes");

    // The read side streams too: HEAD reports the size, GET reads it in chunks.
    let r = send(&mut t, "HEAD", "/big/b", &[], b"");
    assert_eq!(r.header("content-length"), Some(SIZE.to_string().as_str()));
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.write_all(&head("GET", "/big/b", &[], 0)).unwrap();
    let mut total = 0usize;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = s.read(&mut chunk).unwrap();
        total += n;
        if n == 0 || total >= SIZE {
            break;
        }
    }
    assert!(total >= SIZE, "read {total} bytes");
    let r = storage.largest_read.load(Ordering::Relaxed);
    assert!(r <= CHUNK, "a single read of {r} bytes");
}

#[test]
fn concurrent_writers_keep_the_store_consistent_and_leak_no_extent() {
    let storage = Arc::new(MemoryStorage::new());
    let svc = BlobService::new(storage.clone(), Config::default());
    let mut t = VscTransport::new(svc.clone());
    assert_eq!(
        send(&mut t, "PUT", "/conc?restype=container", &[], b"").status,
        201
    );
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let svc = svc.clone();
            std::thread::spawn(move || {
                let mut t = VscTransport::new(svc);
                for j in 0..50 {
                    let body = format!("writer {i} round {j}").into_bytes();
                    // Everyone overwrites one shared blob and its own blob.
                    for name in ["/conc/shared".to_string(), format!("/conc/own-{i}")] {
                        let r = send(
                            &mut t,
                            "PUT",
                            &name,
                            &[("x-ms-blob-type", "BlockBlob")],
                            &body,
                        );
                        assert_eq!(r.status, 201);
                    }
                    let id = format!("{j:04}");
                    let id = base64_of(&id);
                    let r = send(
                        &mut t,
                        "PUT",
                        &format!("/conc/blocks-{i}?comp=block&blockid={id}"),
                        &[],
                        &body,
                    );
                    assert_eq!(r.status, 201);
                    let r = send(&mut t, "GET", "/conc/shared", &[], b"");
                    assert_eq!(r.status, 200);
                    assert!(String::from_utf8_lossy(&r.body).starts_with("writer "));
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    // One extent per live blob (shared + 8 own) plus 8 x 50 staged blocks.
    assert_eq!(storage.extent_count(), 9 + 8 * 50);
    assert_eq!(
        send(&mut t, "DELETE", "/conc?restype=container", &[], b"").status,
        202
    );
    assert_eq!(storage.extent_count(), 0, "extents leaked");
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(s)
        .replace('=', "%3D")
}
