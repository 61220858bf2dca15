// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The VSC door contract: framing, status values, buffer sizes.

use std::sync::Arc;

use azure_blob_service::vsc::{
    STATUS_DATA_TOO_SMALL, STATUS_INVALID_FRAMING, STATUS_RESPONSE_TOO_SMALL,
};
use azure_blob_service::{BlobService, Config, MemoryStorage};

const BIG: usize = 1 << 20;

fn req(method: &str, path: &str, extra: &str) -> Vec<u8> {
    format!("{method} /devstoreaccount1{path} HTTP/1.1\r\nx-ms-version: 2021-10-04\r\n{extra}\r\n")
        .into_bytes()
}

fn status_line(head: &[u8]) -> String {
    String::from_utf8_lossy(head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn header(head: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(head).lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn setup() -> BlobService {
    let svc = BlobService::in_memory();
    let o = svc.vsc_exchange(&req("PUT", "/vsc?restype=container", ""), b"", BIG, BIG);
    assert_eq!(
        (o.status, status_line(&o.response).as_str()),
        (0, "HTTP/1.1 201 Created")
    );
    let body = vec![b'x'; 100];
    let o = svc.vsc_exchange(
        &req("PUT", "/vsc/b", "x-ms-blob-type: BlockBlob\r\n"),
        &body,
        BIG,
        BIG,
    );
    assert_eq!(status_line(&o.response), "HTTP/1.1 201 Created");
    svc
}

#[test]
fn body_comes_from_data_valid_and_content_length_must_agree() {
    let svc = setup();
    // No Content-Length: the body is data_valid bytes.
    let o = svc.vsc_exchange(
        &req("PUT", "/vsc/c", "x-ms-blob-type: BlockBlob\r\n"),
        b"abc",
        BIG,
        3,
    );
    assert_eq!(o.status, 0);
    let o = svc.vsc_exchange(&req("GET", "/vsc/c", ""), b"", BIG, BIG);
    assert_eq!(o.data, b"abc");
    assert_eq!(header(&o.response, "content-length").as_deref(), Some("3"));
    assert_eq!(o.response_len as usize, o.response.len());
    // Content-Length disagreeing with data_valid is a framing error, and nothing happens.
    let o = svc.vsc_exchange(
        &req(
            "PUT",
            "/vsc/c",
            "x-ms-blob-type: BlockBlob\r\ncontent-length: 5\r\n",
        ),
        b"xyz",
        BIG,
        BIG,
    );
    assert_eq!((o.status, o.response_len), (STATUS_INVALID_FRAMING, 0));
    assert!(o.response.is_empty() && o.data.is_empty());
    let o = svc.vsc_exchange(&req("GET", "/vsc/c", ""), b"", BIG, BIG);
    assert_eq!(o.data, b"abc");
}

#[test]
fn framing_errors_are_statuses_not_responses() {
    let svc = setup();
    let cases: Vec<(Vec<u8>, &[u8], usize)> = vec![
        // No blank line.
        (
            b"GET /devstoreaccount1/vsc/b HTTP/1.1\r\n".to_vec(),
            b"",
            BIG,
        ),
        // Bytes after the head.
        (
            [req("GET", "/vsc/b", ""), b"extra".to_vec()].concat(),
            b"",
            BIG,
        ),
        // Chunked body.
        (
            req("PUT", "/vsc/b", "transfer-encoding: chunked\r\n"),
            b"",
            BIG,
        ),
        // data_valid larger than data_len.
        (
            req("PUT", "/vsc/b", "x-ms-blob-type: BlockBlob\r\n"),
            b"abcd",
            2,
        ),
        // Empty request buffer.
        (Vec::new(), b"", BIG),
    ];
    for (i, (head, data, cap)) in cases.iter().enumerate() {
        let o = svc.vsc_exchange(head, data, BIG, *cap);
        assert_eq!(o.status, STATUS_INVALID_FRAMING, "case {i}");
        assert!(o.response.is_empty(), "case {i}");
    }
    // A complete but malformed head is answered in HTTP.
    let o = svc.vsc_exchange(b"BROKEN LINE\r\n\r\n", b"", BIG, BIG);
    assert_eq!(o.status, 0);
    assert!(status_line(&o.response).starts_with("HTTP/1.1 400"));
    assert_eq!(
        header(&o.response, "x-ms-error-code").as_deref(),
        Some("InvalidInput")
    );
    let cl: usize = header(&o.response, "content-length")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cl, o.data.len());
    assert!(String::from_utf8_lossy(&o.data).contains("<Code>InvalidInput</Code>"));
}

#[test]
fn small_response_buffer_reports_the_size_needed() {
    let svc = setup();
    let o = svc.vsc_exchange(&req("GET", "/vsc/b", ""), b"", 16, BIG);
    assert_eq!(o.status, STATUS_RESPONSE_TOO_SMALL);
    assert!(o.response.is_empty() && o.data.is_empty());
    let needed = o.response_len as usize;
    assert!(needed > 16);
    let o = svc.vsc_exchange(&req("GET", "/vsc/b", ""), b"", needed, BIG);
    assert_eq!(o.status, 0);
    assert_eq!(o.response.len(), needed);
    assert_eq!(o.data, vec![b'x'; 100]);
}

#[test]
fn small_data_buffer_returns_the_head_and_no_body() {
    let svc = setup();
    let o = svc.vsc_exchange(&req("GET", "/vsc/b", ""), b"", BIG, 50);
    assert_eq!(o.status, STATUS_DATA_TOO_SMALL);
    assert!(o.data.is_empty());
    assert_eq!(o.response_len as usize, o.response.len());
    assert_eq!(
        header(&o.response, "content-length").as_deref(),
        Some("100")
    );
    // A range that fits is fine with the same buffer.
    let o = svc.vsc_exchange(
        &req("GET", "/vsc/b", "x-ms-range: bytes=0-49\r\n"),
        b"",
        BIG,
        50,
    );
    assert_eq!(o.status, 0);
    assert_eq!(status_line(&o.response), "HTTP/1.1 206 Partial Content");
    assert_eq!(o.data.len(), 50);
    // HEAD needs no data buffer.
    let o = svc.vsc_exchange(&req("HEAD", "/vsc/b", ""), b"", BIG, 0);
    assert_eq!(o.status, 0);
    assert_eq!(
        header(&o.response, "content-length").as_deref(),
        Some("100")
    );
    assert!(o.data.is_empty());
}

#[test]
fn service_errors_are_http_responses_with_status_zero() {
    let svc = setup();
    let o = svc.vsc_exchange(
        &req("GET", "/vsc/missing", "x-ms-client-request-id: abc\r\n"),
        b"",
        BIG,
        BIG,
    );
    assert_eq!(o.status, 0);
    assert_eq!(status_line(&o.response), "HTTP/1.1 404 Not Found");
    assert_eq!(
        header(&o.response, "x-ms-error-code").as_deref(),
        Some("BlobNotFound")
    );
    assert_eq!(
        header(&o.response, "x-ms-client-request-id").as_deref(),
        Some("abc")
    );
    assert!(header(&o.response, "x-ms-request-id").is_some());
    assert!(header(&o.response, "date").is_some());
    assert_eq!(
        header(&o.response, "x-ms-version").as_deref(),
        Some("2021-10-04")
    );
    assert!(String::from_utf8_lossy(&o.data).contains("<Code>BlobNotFound</Code>"));
}

#[test]
fn shared_key_runs_on_the_vsc_door_only_when_configured() {
    let keyed = BlobService::new(
        Arc::new(MemoryStorage::new()),
        Config {
            vsc_shared_key: true,
            ..Config::default()
        },
    );
    let o = keyed.vsc_exchange(&req("PUT", "/vsc?restype=container", ""), b"", BIG, BIG);
    assert_eq!(o.status, 0);
    assert!(status_line(&o.response).starts_with("HTTP/1.1 403"));
    assert_eq!(
        header(&o.response, "x-ms-error-code").as_deref(),
        Some("AuthenticationFailed")
    );
    let open = BlobService::in_memory();
    let o = open.vsc_exchange(&req("PUT", "/vsc?restype=container", ""), b"", BIG, BIG);
    assert!(status_line(&o.response).starts_with("HTTP/1.1 201"));
}
