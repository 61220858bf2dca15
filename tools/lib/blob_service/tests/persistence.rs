// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The storage contract with a durable backend: the whole request script on FileStorage, and
//! acknowledged writes surviving a restart.

use std::sync::Arc;

use azure_blob_service::conformance::vsc_call as call;
use azure_blob_service::conformance::{durability, script::script, Runner, VscTransport};
use azure_blob_service::{BlobService, Config, FileStorage};

fn svc(dir: &std::path::Path) -> (BlobService, Arc<FileStorage>) {
    let storage = Arc::new(FileStorage::open(dir).expect("open the store"));
    (
        BlobService::new(storage.clone(), Config::default()),
        storage,
    )
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
    let ack = durability::write(&s);
    drop(s);

    // An extent no record references, as a crash in the middle of an upload leaves it.
    std::fs::write(dir.path().join("extents").join("999999"), b"half an upload").unwrap();

    let (s, storage) = svc(dir.path());
    assert!(!dir.path().join("extents").join("999999").exists());
    durability::check(&s, &ack);

    // Deleting everything reclaims every extent file.
    durability::delete_all(&s);
    assert_eq!(storage.extent_count().unwrap(), 0);
    drop(s);
    let (s, _) = svc(dir.path());
    durability::check_gone(&s);
}
