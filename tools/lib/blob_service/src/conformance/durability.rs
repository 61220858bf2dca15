// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The durability scenario a durable [`Storage`](crate::storage::Storage) backend passes.
//!
//! [`write()`] puts a set of acknowledged writes through the VSC door into container `keep`: a
//! container with metadata, a block blob with metadata under an infinite lease (`one`), a block
//! blob committed from two staged blocks in swapped order (`two`), a blob with only an uncommitted
//! block (`three`), a page blob with its second half written (`page`) and an append blob with two
//! appended blocks (`log`). The backend's test then restarts the service on the same store (its
//! own way: dirty or clean, with whatever orphan it leaves behind) and calls [`check()`], which
//! asserts that every acknowledged write is there. [`delete_all()`] deletes the set (the backend's
//! test checks that the space came back) and [`check_gone()`] asserts, after another restart, that
//! the deletion lasted.
//!
//! Backend tests add their own blobs to `keep` as they need (they go with the container).

use super::vsc_call as call;
use crate::engine::BlobService;

/// The lease id [`write()`] acquires on `keep/one`.
pub const LEASE: &str = "6a7e8a1c-9f3b-4a55-8d0e-3c1f2b4a5d6e";

/// What the service acknowledged, as [`check()`] expects to find it after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The ETag `keep/one` was created with.
    pub one_etag: String,
    /// The ETag the block list commit gave `keep/two`.
    pub two_etag: String,
}

/// Writes the set through `s` and returns what was acknowledged.
///
/// # Panics
///
/// When the service refuses a write the scenario asserts on.
pub fn write(s: &BlobService) -> Acknowledged {
    assert_eq!(
        call(
            s,
            "PUT",
            "/keep?restype=container",
            "x-ms-meta-k: v\r\n",
            b""
        )
        .0,
        "201"
    );
    let (_, one_etag, _) = call(
        s,
        "PUT",
        "/keep/one",
        "x-ms-blob-type: BlockBlob\r\nx-ms-meta-Name: One\r\n",
        b"first blob",
    );
    call(s, "PUT", "/keep/two?comp=block&blockid=QUFB", "", b"aaa");
    call(s, "PUT", "/keep/two?comp=block&blockid=QkJC", "", b"bbb");
    let (st, two_etag, _) = call(
        s,
        "PUT",
        "/keep/two?comp=blocklist",
        "",
        b"<BlockList><Latest>QkJC</Latest><Latest>QUFB</Latest></BlockList>",
    );
    assert_eq!(st, "201");
    call(
        s,
        "PUT",
        "/keep/three?comp=block&blockid=Q0ND",
        "",
        b"staged only",
    );
    call(
        s,
        "PUT",
        "/keep/page",
        "x-ms-blob-type: PageBlob\r\nx-ms-blob-content-length: 1024\r\n",
        b"",
    );
    call(
        s,
        "PUT",
        "/keep/page?comp=page",
        "x-ms-page-write: update\r\nx-ms-range: bytes=512-1023\r\n",
        &[5u8; 512],
    );
    call(s, "PUT", "/keep/log", "x-ms-blob-type: AppendBlob\r\n", b"");
    call(s, "PUT", "/keep/log?comp=appendblock", "", b"one;");
    call(s, "PUT", "/keep/log?comp=appendblock", "", b"two;");
    let acquire = format!(
        "x-ms-lease-action: acquire\r\nx-ms-lease-duration: -1\r\nx-ms-proposed-lease-id: {LEASE}\r\n"
    );
    assert_eq!(
        call(s, "PUT", "/keep/one?comp=lease", &acquire, b"").0,
        "201"
    );
    Acknowledged { one_etag, two_etag }
}

/// Asserts that everything [`write()`] had acknowledged is there (call it after a restart).
///
/// # Panics
///
/// When anything acknowledged is missing or different.
pub fn check(s: &BlobService, ack: &Acknowledged) {
    let (st, e, body) = call(s, "GET", "/keep/one", "", b"");
    assert_eq!(
        (st.as_str(), e.as_str(), body.as_slice()),
        ("200", ack.one_etag.as_str(), &b"first blob"[..])
    );
    assert_eq!(
        call(s, "PUT", "/keep/one", "x-ms-blob-type: BlockBlob\r\n", b"x").0,
        "412",
        "lease lost"
    );
    let (_, e, body) = call(s, "GET", "/keep/two", "", b"");
    assert_eq!(
        (e.as_str(), body.as_slice()),
        (ack.two_etag.as_str(), &b"bbbaaa"[..])
    );
    let (_, _, list) = call(
        s,
        "GET",
        "/keep/three?comp=blocklist&blocklisttype=uncommitted",
        "",
        b"",
    );
    assert!(String::from_utf8_lossy(&list).contains("Q0ND"));
    let (_, _, body) = call(s, "GET", "/keep/page", "x-ms-range: bytes=508-515\r\n", b"");
    assert_eq!(body, [0, 0, 0, 0, 5, 5, 5, 5]);
    let (_, _, ranges) = call(s, "GET", "/keep/page?comp=pagelist", "", b"");
    assert!(String::from_utf8_lossy(&ranges).contains("<Start>512</Start><End>1023</End>"));
    assert_eq!(call(s, "GET", "/keep/log", "", b"").2, b"one;two;");
    let (_, _, list) = call(
        s,
        "GET",
        "/keep?restype=container&comp=list&include=metadata",
        "",
        b"",
    );
    let list = String::from_utf8_lossy(&list);
    // Metadata keeps the case of its name ("Name: One").
    assert!(
        list.contains("<Name>one</Name>") && list.contains("<Metadata><Name>One</Name></Metadata>"),
        "{list}"
    );
}

/// Deletes the set: `keep/one` under its lease, then the container with everything in it.
///
/// # Panics
///
/// When a deletion is refused.
pub fn delete_all(s: &BlobService) {
    assert_eq!(
        call(
            s,
            "DELETE",
            "/keep/one",
            &format!("x-ms-lease-id: {LEASE}\r\n"),
            b""
        )
        .0,
        "202"
    );
    assert_eq!(
        call(s, "DELETE", "/keep?restype=container", "", b"").0,
        "202"
    );
}

/// Asserts that the container [`delete_all()`] deleted is gone (call it after a restart).
///
/// # Panics
///
/// When the container is still there.
pub fn check_gone(s: &BlobService) {
    assert_eq!(call(s, "GET", "/keep?restype=container", "", b"").0, "404");
}
