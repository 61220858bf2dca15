// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The blob service on a Blobstore file: the whole request script, acknowledged writes surviving
//! a restart (dirty and clean), orphan reclaim, torn catalog appends and catalog compaction.

use std::path::Path;
use std::sync::Arc;

use azure_blob_service::conformance::vsc_call as call;
use azure_blob_service::conformance::{durability, script::script, Runner, VscTransport};
use azure_blob_service::storage::{BlobRecord, ContainerRecord, Storage, StorageError};
use azure_blob_service::{BlobService, Config};
use blob_service_blobstore::{BlobstoreStorage, CreateOptions};

fn opts() -> CreateOptions {
    CreateOptions {
        size: 256 << 20,
        ..CreateOptions::default()
    }
}

fn open(path: &Path) -> Arc<BlobstoreStorage> {
    Arc::new(BlobstoreStorage::open(path, opts()).expect("open the store"))
}

fn svc(path: &Path) -> (BlobService, Arc<BlobstoreStorage>) {
    let storage = open(path);
    (
        BlobService::new(storage.clone(), Config::default()),
        storage,
    )
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn request_script_passes_on_blobstore_storage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let (s, storage) = svc(&path);
    let rep = Runner::new().run(&script(), &mut VscTransport::new(s));
    for f in &rep.failures {
        eprintln!("  {f}");
    }
    assert!(rep.sent >= 150, "only {} requests", rep.sent);
    assert!(rep.failures.is_empty());
    // Reopen without a clean unload: the other containers' data is still there.
    drop(storage);
    let (s, storage) = svc(&path);
    let (st, _, body) = call(&s, "GET", "/lst/d", "", b"");
    assert_eq!((st.as_str(), body.as_slice()), ("200", &b"d"[..]));
    let before = storage.extent_count();
    let free_before = storage.blobstore().free_clusters();
    assert_eq!(
        call(&s, "DELETE", "/lst?restype=container", "", b"").0,
        "202"
    );
    assert!(storage.extent_count() < before);
    assert!(storage.blobstore().free_clusters() > free_before);
    let report = storage.blobstore().check().unwrap();
    assert_eq!(report.free_clusters, storage.blobstore().free_clusters());
}

#[test]
fn acknowledged_writes_survive_a_restart_and_orphans_are_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let (s, storage) = svc(&path);
    let empty_free = storage.blobstore().free_clusters();
    let ack = durability::write(&s);
    // Bigger than a cluster, with an odd length: spans clusters and ends mid io_unit.
    let big = pattern(7, 300_001);
    assert_eq!(
        call(
            &s,
            "PUT",
            "/keep/big",
            "x-ms-blob-type: BlockBlob\r\n",
            &big
        )
        .0,
        "201"
    );
    // An extent no record references, as a crash in the middle of an upload leaves it.
    let orphan = storage.create_extent(0).unwrap();
    storage.write_extent(orphan, 0, b"half an upload").unwrap();
    storage.sync_extent(orphan).unwrap();
    drop(s);
    drop(storage);

    // No clean unload: the store is loaded dirty.
    let (s, storage) = svc(&path);
    let mut buf = [0u8; 4];
    assert!(matches!(
        storage.read_extent(orphan, 0, &mut buf),
        Err(StorageError::NoSuchExtent(_))
    ));
    durability::check(&s, &ack);
    assert!(call(&s, "GET", "/keep/big", "", b"").2 == big);

    // Deleting everything reclaims every extent and every data cluster.
    durability::delete_all(&s);
    assert_eq!(storage.extent_count(), 0);
    drop(s);
    // A clean unload this time.
    Arc::try_unwrap(storage).unwrap().unload().unwrap();
    let (s, storage) = svc(&path);
    durability::check_gone(&s);
    // Only the catalog's clusters are in use.
    assert!(empty_free - storage.blobstore().free_clusters() <= 1);
}

#[test]
fn byte_extents_match_a_model_at_unaligned_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("store"));
    let e = s.create_extent(10).unwrap();
    let mut model = Vec::new();
    let apply = |model: &mut Vec<u8>, off: usize, data: &[u8]| {
        if model.len() < off + data.len() {
            model.resize(off + data.len(), 0);
        }
        model[off..off + data.len()].copy_from_slice(data);
    };
    // Offsets and lengths on, inside and across io_unit and cluster (64 KiB) edges.
    let writes = [
        (0usize, 3usize),
        (4090, 10),
        (5000, 1),
        (8192, 4096),
        (65_530, 12),
        (100_000, 70_000),
        (2, 1),
        (131_071, 1),
    ];
    for (i, (off, len)) in writes.into_iter().enumerate() {
        let d = pattern(i as u32, len);
        s.write_extent(e, off as u64, &d).unwrap();
        apply(&mut model, off, &d);
    }
    s.zero_extent(e, 4093, 70_000).unwrap();
    model[4093..74_093].fill(0);
    // Zeroing past the end does not extend.
    s.zero_extent(e, 1 << 30, 10).unwrap();
    s.sync_extent(e).unwrap();
    let check = |s: &BlobstoreStorage, model: &[u8]| {
        let mut all = vec![0xaau8; model.len() + 9000];
        s.read_extent(e, 0, &mut all).unwrap();
        assert!(all[..model.len()] == *model);
        assert!(all[model.len()..].iter().all(|&b| b == 0));
        for (off, len) in [(1usize, 5usize), (4095, 2), (65_535, 3), (169_999, 20)] {
            let mut b = vec![0xaau8; len];
            s.read_extent(e, off as u64, &mut b).unwrap();
            let want: Vec<u8> = (off..off + len)
                .map(|i| model.get(i).copied().unwrap_or(0))
                .collect();
            assert_eq!(b, want, "at {off}");
        }
    };
    check(&s, &model);
    // The extent needs a record to survive a reopen.
    let rec = BlobRecord {
        committed: None,
        uncommitted: vec![azure_blob_service::storage::StagedBlock {
            id: "QQ==".into(),
            extent: e,
            len: model.len() as u64,
        }],
    };
    s.put_blob("c", "b", &rec).unwrap();
    drop(s);
    let s = open(&dir.path().join("store"));
    check(&s, &model);
    s.delete_extent(e).unwrap();
    assert!(matches!(
        s.delete_extent(e),
        Err(StorageError::NoSuchExtent(_))
    ));
}

#[test]
fn a_torn_catalog_append_loses_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let s = open(&path);
    let rec = |n: u64| ContainerRecord {
        metadata: vec![("n".into(), n.to_string())],
        etag: format!("\"0x{n}\""),
        // Non-zero nanoseconds: the encoded record (and so each frame) ends in a non-zero byte.
        last_modified: std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(n + 1, 123),
    };
    for n in 0..5 {
        s.put_container(&format!("c{n}"), &rec(n)).unwrap();
    }
    let bs = s.blobstore().clone();
    let cat = bs.super_blob().unwrap();
    drop(s);
    // Corrupt the catalog's last io_unit after the fifth frame: a torn sixth append.
    let blob = bs.open_blob(cat).unwrap();
    let io = bs.io_unit_size() as usize;
    let mut first = vec![0u8; io];
    blob.read(0, &mut first).unwrap();
    let used = first.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert!(used + 40 < io, "the five frames fit in one io_unit");
    first[used..used + 40].fill(0x5a);
    blob.write(0, &first).unwrap();
    blob.close().unwrap();
    bs.unload().unwrap();

    let s = open(&path);
    let names: Vec<String> = s
        .list_containers("", 100)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    // The next append lands where the torn one was and survives a reopen.
    s.put_container("c5", &rec(5)).unwrap();
    s.delete_container("c0").unwrap();
    drop(s);
    let s = open(&path);
    assert_eq!(s.get_container("c5").unwrap(), Some(rec(5)));
    assert_eq!(s.get_container("c0").unwrap(), None);
    assert_eq!(s.list_containers("", 100).unwrap().len(), 5);
}

#[test]
fn the_catalog_is_compacted_and_found_from_the_super_blob() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let s = open(&path);
    s.set_compaction_minimum(4096).unwrap();
    let first = s.blobstore().super_blob().unwrap();
    let rec = BlobRecord::default();
    // Each put appends a frame; rewriting the same few names makes the log mostly garbage.
    for i in 0..2_000u32 {
        s.put_blob("c", &format!("blob-{}", i % 7), &rec).unwrap();
    }
    let now = s.blobstore().super_blob().unwrap();
    assert_ne!(now, first, "compaction switched the super blob");
    assert!(s.blobstore().open_blob(first).is_err(), "old log deleted");
    drop(s);
    let s = open(&path);
    assert_eq!(s.list_blobs("c", "", 100).unwrap().len(), 7);
    assert_eq!(s.extent_count(), 0);
}

#[test]
fn concurrent_uploads_and_page_writes_inside_one_io_unit_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let (s, storage) = svc(&path);
    assert_eq!(call(&s, "PUT", "/par?restype=container", "", b"").0, "201");
    assert_eq!(
        call(
            &s,
            "PUT",
            "/par/pages",
            "x-ms-blob-type: PageBlob\r\nx-ms-blob-content-length: 16384\r\n",
            b""
        )
        .0,
        "201"
    );
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..8u32 {
                    let body = pattern(t * 100 + i, (1 + t * 40_000 + i * 7_777) as usize);
                    let (st, _, _) = call(
                        s,
                        "PUT",
                        &format!("/par/t{t}-{i}"),
                        "x-ms-blob-type: BlockBlob\r\n",
                        &body,
                    );
                    assert_eq!(st, "201");
                    // Pages t*8+i: four threads write 512-byte pages that share io_units.
                    let page = u64::from(i * 4 + t);
                    let range = format!(
                        "x-ms-page-write: update\r\nx-ms-range: bytes={}-{}\r\n",
                        page * 512,
                        page * 512 + 511
                    );
                    let (st, _, _) = call(
                        s,
                        "PUT",
                        "/par/pages?comp=page",
                        &range,
                        &[page as u8 + 1; 512],
                    );
                    assert_eq!(st, "201");
                }
            });
        }
    });
    let expected_pages: Vec<u8> = (0..32u8)
        .flat_map(|p| std::iter::repeat_n(p + 1, 512))
        .chain(std::iter::repeat_n(0, 16384 - 32 * 512))
        .collect();
    let verify = |s: &BlobService| {
        for t in 0..4u32 {
            for i in 0..8u32 {
                let body = pattern(t * 100 + i, (1 + t * 40_000 + i * 7_777) as usize);
                let (st, _, got) = call(s, "GET", &format!("/par/t{t}-{i}"), "", b"");
                assert_eq!(st, "200");
                assert!(got == body, "t{t}-{i}");
            }
        }
        assert!(call(s, "GET", "/par/pages", "", b"").2 == expected_pages);
    };
    verify(&s);
    drop(s);
    drop(storage);
    let (s, _) = svc(&path);
    verify(&s);
}

#[test]
fn concurrent_writers_of_one_io_unit_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("store"));
    const THREADS: u64 = 8;
    const CHUNKS: u64 = 256;
    // Sized up front: no resize, only the read-modify-write of shared io_units races.
    let e = s.create_extent(THREADS * CHUNKS * 64).unwrap();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let s = &s;
            scope.spawn(move || {
                for j in 0..CHUNKS {
                    let k = j * THREADS + t;
                    s.write_extent(e, k * 64, &[(k % 251) as u8 + 1; 64])
                        .unwrap();
                }
            });
        }
    });
    let mut all = vec![0u8; (THREADS * CHUNKS * 64) as usize];
    s.read_extent(e, 0, &mut all).unwrap();
    for (k, chunk) in all.chunks(64).enumerate() {
        assert!(
            chunk.iter().all(|&b| b == (k % 251) as u8 + 1),
            "chunk {k} lost"
        );
    }
}

#[test]
fn a_store_whose_catalog_is_gone_is_refused_not_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let s = open(&path);
    let e = s.create_extent(0).unwrap();
    s.write_extent(e, 0, b"data").unwrap();
    s.sync_extent(e).unwrap();
    let rec = BlobRecord {
        committed: None,
        uncommitted: vec![azure_blob_service::storage::StagedBlock {
            id: "QQ==".into(),
            extent: e,
            len: 4,
        }],
    };
    s.put_blob("c", "b", &rec).unwrap();
    let bs = s.blobstore().clone();
    let cat = bs.super_blob().unwrap();
    drop(s);
    bs.delete_blob(cat).unwrap();
    bs.unload().unwrap();
    let err = BlobstoreStorage::open(&path, opts()).unwrap_err();
    assert!(err.to_string().contains("no catalog"), "{err}");
    // The extent was not reclaimed.
    let dev: Arc<dyn blobstore::Device> = Arc::new(blobstore::FileDevice::open(&path).unwrap());
    let bs = blobstore::Blobstore::load(dev, &blobstore::LoadOptions::default()).unwrap();
    assert_eq!(bs.blob_ids(), [e]);
}
