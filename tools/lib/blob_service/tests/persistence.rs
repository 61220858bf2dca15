// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The storage contract with a durable backend: the whole request script on FileStorage, and
//! acknowledged writes surviving a restart.

use std::sync::Arc;

use azure_blob_service::conformance::{script::script, Runner, VscTransport};
use azure_blob_service::{BlobService, Config, FileStorage};

const BIG: usize = 1 << 20;

fn svc(dir: &std::path::Path) -> (BlobService, Arc<FileStorage>) {
    let storage = Arc::new(FileStorage::open(dir).expect("open the store"));
    (
        BlobService::new(storage.clone(), Config::default()),
        storage,
    )
}

fn call(
    s: &BlobService,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> (String, String, Vec<u8>) {
    let head = format!(
        "{method} /devstoreaccount1{path} HTTP/1.1\r\nx-ms-version: 2021-10-04\r\n{extra}\r\n"
    );
    let o = s.vsc_exchange(head.as_bytes(), body, BIG, BIG);
    assert_eq!(o.status, 0);
    let text = String::from_utf8_lossy(&o.response).into_owned();
    let status = text.get(9..12).unwrap_or("").to_string();
    let etag = text
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .unwrap_or("")
        .to_string();
    (status, etag, o.data)
}

#[test]
fn request_script_passes_on_file_storage() {
    let dir = tempfile::tempdir().unwrap();
    let (s, storage) = svc(dir.path());
    let rep = Runner::new().run(&script(), &mut VscTransport::new(s));
    for f in &rep.failures {
        eprintln!("  {f}");
    }
    assert!(rep.sent >= 150);
    assert!(rep.failures.is_empty());
    // The script deletes its last container; what is left is the other containers' data.
    drop(storage);
    let (s, storage) = svc(dir.path());
    let (st, _, body) = call(&s, "GET", "/lst/d", "", b"");
    assert_eq!((st.as_str(), body.as_slice()), ("200", &b"d"[..]));
    let before = storage.extent_count().unwrap();
    assert_eq!(
        call(&s, "DELETE", "/lst?restype=container", "", b"").0,
        "202"
    );
    assert!(storage.extent_count().unwrap() < before);
}

#[test]
fn acknowledged_writes_survive_a_restart_and_orphans_are_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = svc(dir.path());
    assert_eq!(
        call(
            &s,
            "PUT",
            "/keep?restype=container",
            "x-ms-meta-k: v\r\n",
            b""
        )
        .0,
        "201"
    );
    let (_, e1, _) = call(
        &s,
        "PUT",
        "/keep/one",
        "x-ms-blob-type: BlockBlob\r\nx-ms-meta-Name: One\r\n",
        b"first blob",
    );
    call(&s, "PUT", "/keep/two?comp=block&blockid=QUFB", "", b"aaa");
    call(&s, "PUT", "/keep/two?comp=block&blockid=QkJC", "", b"bbb");
    let (st, e2, _) = call(
        &s,
        "PUT",
        "/keep/two?comp=blocklist",
        "",
        b"<BlockList><Latest>QkJC</Latest><Latest>QUFB</Latest></BlockList>",
    );
    assert_eq!(st, "201");
    call(
        &s,
        "PUT",
        "/keep/three?comp=block&blockid=Q0ND",
        "",
        b"staged only",
    );
    call(
        &s,
        "PUT",
        "/keep/page",
        "x-ms-blob-type: PageBlob\r\nx-ms-blob-content-length: 1024\r\n",
        b"",
    );
    call(
        &s,
        "PUT",
        "/keep/page?comp=page",
        "x-ms-page-write: update\r\nx-ms-range: bytes=512-1023\r\n",
        &[5u8; 512],
    );
    call(
        &s,
        "PUT",
        "/keep/log",
        "x-ms-blob-type: AppendBlob\r\n",
        b"",
    );
    call(&s, "PUT", "/keep/log?comp=appendblock", "", b"one;");
    call(&s, "PUT", "/keep/log?comp=appendblock", "", b"two;");
    let lease = "6a7e8a1c-9f3b-4a55-8d0e-3c1f2b4a5d6e";
    let acquire = format!("x-ms-lease-action: acquire\r\nx-ms-lease-duration: -1\r\nx-ms-proposed-lease-id: {lease}\r\n");
    assert_eq!(
        call(&s, "PUT", "/keep/one?comp=lease", &acquire, b"").0,
        "201"
    );
    drop(s);

    // An extent no record references, as a crash in the middle of an upload leaves it.
    std::fs::write(dir.path().join("extents").join("999999"), b"half an upload").unwrap();

    let (s, storage) = svc(dir.path());
    assert!(!dir.path().join("extents").join("999999").exists());
    let (st, e, body) = call(&s, "GET", "/keep/one", "", b"");
    assert_eq!(
        (st.as_str(), e.as_str(), body.as_slice()),
        ("200", e1.as_str(), &b"first blob"[..])
    );
    assert_eq!(
        call(
            &s,
            "PUT",
            "/keep/one",
            "x-ms-blob-type: BlockBlob\r\n",
            b"x"
        )
        .0,
        "412",
        "lease lost"
    );
    let (_, e, body) = call(&s, "GET", "/keep/two", "", b"");
    assert_eq!((e.as_str(), body.as_slice()), (e2.as_str(), &b"bbbaaa"[..]));
    let (_, _, list) = call(
        &s,
        "GET",
        "/keep/three?comp=blocklist&blocklisttype=uncommitted",
        "",
        b"",
    );
    assert!(String::from_utf8_lossy(&list).contains("Q0ND"));
    let (_, _, body) = call(
        &s,
        "GET",
        "/keep/page",
        "x-ms-range: bytes=508-515\r\n",
        b"",
    );
    assert_eq!(body, [0, 0, 0, 0, 5, 5, 5, 5]);
    let (_, _, ranges) = call(&s, "GET", "/keep/page?comp=pagelist", "", b"");
    assert!(String::from_utf8_lossy(&ranges).contains("<Start>512</Start><End>1023</End>"));
    assert_eq!(call(&s, "GET", "/keep/log", "", b"").2, b"one;two;");
    let (_, _, list) = call(
        &s,
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

    // Deleting everything reclaims every extent file.
    assert_eq!(
        call(
            &s,
            "DELETE",
            "/keep/one",
            &format!("x-ms-lease-id: {lease}\r\n"),
            b""
        )
        .0,
        "202"
    );
    assert_eq!(
        call(&s, "DELETE", "/keep?restype=container", "", b"").0,
        "202"
    );
    assert_eq!(storage.extent_count().unwrap(), 0);
    drop(s);
    let (s, _) = svc(dir.path());
    assert_eq!(call(&s, "GET", "/keep?restype=container", "", b"").0, "404");
}
