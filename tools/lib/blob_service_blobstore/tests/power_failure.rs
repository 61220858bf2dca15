// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Power failure at every device write of a workload through the blob service: the device
//! fails every write from the N-th on, the image is taken as a crash leaves it (every completed
//! write kept, or unflushed writes dropped and torn), the store is loaded dirty and every blob
//! must read as it did after the last acknowledged request (or after the one in flight).

use std::sync::Arc;

use azure_blob_service::storage::{BlobRecord, StagedBlock, Storage};
use azure_blob_service::{BlobService, Config, MemoryStorage};
use blob_service_blobstore::{BlobstoreStorage, BSTYPE};
use blobstore::{Blobstore, CrashMode, Device, InitOptions, LoadOptions, MemDevice};

const NAMES: [&str; 5] = ["a", "b", "blk", "app", "pg"];

struct Req {
    method: &'static str,
    path: String,
    extra: String,
    body: Vec<u8>,
}

fn req(method: &'static str, path: &str, extra: &str, body: &[u8]) -> Req {
    Req {
        method,
        path: path.to_string(),
        extra: extra.to_string(),
        body: body.to_vec(),
    }
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn workload() -> Vec<Req> {
    let block = "x-ms-blob-type: BlockBlob\r\n";
    vec![
        req("PUT", "/ctr?restype=container", "", b""),
        req("PUT", "/ctr/a", block, b"first version of a"),
        req("PUT", "/ctr/b", block, &bytes(100_003, 1)),
        req(
            "PUT",
            "/ctr/blk?comp=block&blockid=QUFB",
            "",
            &bytes(5000, 2),
        ),
        req(
            "PUT",
            "/ctr/blk?comp=block&blockid=QkJC",
            "",
            &bytes(70_000, 3),
        ),
        req(
            "PUT",
            "/ctr/blk?comp=blocklist",
            "",
            b"<BlockList><Latest>QkJC</Latest><Latest>QUFB</Latest></BlockList>",
        ),
        req("PUT", "/ctr/app", "x-ms-blob-type: AppendBlob\r\n", b""),
        req("PUT", "/ctr/app?comp=appendblock", "", b"one;"),
        req("PUT", "/ctr/app?comp=appendblock", "", &bytes(9000, 4)),
        req(
            "PUT",
            "/ctr/pg",
            "x-ms-blob-type: PageBlob\r\nx-ms-blob-content-length: 8192\r\n",
            b"",
        ),
        req(
            "PUT",
            "/ctr/pg?comp=page",
            "x-ms-page-write: update\r\nx-ms-range: bytes=512-1535\r\n",
            &[7u8; 1024],
        ),
        req("PUT", "/ctr/a", block, b"second version of a, longer"),
        req("DELETE", "/ctr/b", "", b""),
        req(
            "PUT",
            "/ctr/pg?comp=page",
            "x-ms-page-write: clear\r\nx-ms-range: bytes=1024-1535\r\n",
            b"",
        ),
    ]
}

const BIG: usize = 1 << 20;

/// Sends a request; returns the status code.
fn send(s: &BlobService, r: &Req) -> u16 {
    let head = format!(
        "{} /devstoreaccount1{} HTTP/1.1\r\nx-ms-version: 2021-10-04\r\n{}\r\n",
        r.method, r.path, r.extra
    );
    let o = s.vsc_exchange(head.as_bytes(), &r.body, BIG, BIG);
    let text = String::from_utf8_lossy(&o.response);
    text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Every blob's content (None when absent).
fn contents(s: &BlobService) -> Vec<Option<Vec<u8>>> {
    NAMES
        .iter()
        .map(|n| {
            let head = format!(
                "GET /devstoreaccount1/ctr/{n} HTTP/1.1\r\nx-ms-version: 2021-10-04\r\n\r\n"
            );
            let o = s.vsc_exchange(head.as_bytes(), b"", BIG, BIG);
            assert_eq!(o.status, 0);
            let text = String::from_utf8_lossy(&o.response);
            match text.get(9..12) {
                Some("200") => Some(o.data),
                Some("404") => None,
                other => panic!("GET {n}: {other:?}"),
            }
        })
        .collect()
}

fn new_store() -> (Arc<MemDevice>, BlobService) {
    let dev = Arc::new(MemDevice::new(8 << 20, 4096));
    let d: Arc<dyn Device> = dev.clone();
    let bs = Blobstore::init(
        d,
        &InitOptions {
            cluster_size: 64 << 10,
            bstype: BSTYPE,
            ..InitOptions::default()
        },
    )
    .expect("init a store");
    let storage = Arc::new(BlobstoreStorage::on_store(bs).expect("a catalog on a new store"));
    (dev, BlobService::new(storage, Config::default()))
}

fn reload(image: Vec<u8>) -> (Blobstore, BlobService) {
    let d: Arc<dyn Device> = Arc::new(MemDevice::from_image(image, 4096));
    let bs = Blobstore::load(
        d,
        &LoadOptions {
            bstype: BSTYPE,
            force_recover: false,
        },
    )
    .expect("a crashed store loads");
    let storage = Arc::new(BlobstoreStorage::on_store(bs.clone()).expect("its catalog loads"));
    (bs, BlobService::new(storage, Config::default()))
}

#[test]
fn every_acknowledged_request_survives_a_power_cut_at_any_write() {
    let work = workload();
    // The expected contents after each prefix of the workload, from the in-memory backend.
    let model = BlobService::new(Arc::new(MemoryStorage::new()), Config::default());
    let mut states = vec![contents(&model)];
    for r in &work {
        let st = send(&model, r);
        assert!((200..300).contains(&st), "{} {}: {st}", r.method, r.path);
        states.push(contents(&model));
    }

    let mut n = 1;
    loop {
        let (dev, svc) = new_store();
        dev.fail_from(n);
        // Requests acknowledged before the cut.
        let acked = work
            .iter()
            .take_while(|r| (200..300).contains(&send(&svc, r)))
            .count();
        let finished = acked == work.len();
        for mode in [
            CrashMode::KeepCompleted,
            CrashMode::DropUnflushed { seed: n },
        ] {
            let (bs, svc) = reload(dev.crash_image(mode));
            let got = contents(&svc);
            let after = states[(acked + 1).min(work.len())].clone();
            for (i, name) in NAMES.iter().enumerate() {
                assert!(
                    got[i] == states[acked][i] || got[i] == after[i],
                    "cut at write {n} ({mode:?}), {acked} requests acknowledged: blob {name} is {:?}",
                    got[i].as_ref().map(Vec::len)
                );
            }
            let report = bs.check().unwrap();
            assert_eq!(report.free_clusters, bs.free_clusters(), "cut at {n}");
        }
        drop(svc);
        if finished {
            break;
        }
        n += 1;
    }
    assert!(n > 30, "the workload made only {n} device writes");
    eprintln!("power cut at each of {n} device writes");
}

fn staged(step: u32) -> BlobRecord {
    BlobRecord {
        committed: None,
        uncommitted: (0..=step % 4)
            .map(|i| StagedBlock {
                id: format!("step-{step}-{i}"),
                extent: 0,
                len: u64::from(step),
            })
            .collect(),
    }
}

#[test]
fn record_updates_survive_a_power_cut_during_catalog_compaction() {
    const STEPS: u32 = 60;
    let name = |step: u32| format!("r{}", step % 5);
    let mut n = 1;
    let mut compactions = 0;
    loop {
        let dev = Arc::new(MemDevice::new(8 << 20, 4096));
        let d: Arc<dyn Device> = dev.clone();
        let bs = Blobstore::init(
            d,
            &InitOptions {
                cluster_size: 64 << 10,
                bstype: BSTYPE,
                ..InitOptions::default()
            },
        )
        .unwrap();
        let s = BlobstoreStorage::on_store(bs.clone()).unwrap();
        s.set_compaction_minimum(2048).unwrap();
        let first = bs.super_blob().unwrap();
        dev.fail_from(n);
        let acked = (0..STEPS)
            .take_while(|&k| s.put_blob("c", &name(k), &staged(k)).is_ok())
            .count() as u32;
        if acked == STEPS && bs.super_blob().unwrap() != first {
            compactions += 1;
        }
        for mode in [
            CrashMode::KeepCompleted,
            CrashMode::DropUnflushed { seed: n },
        ] {
            let d: Arc<dyn Device> = Arc::new(MemDevice::from_image(dev.crash_image(mode), 4096));
            let bs = Blobstore::load(
                d,
                &LoadOptions {
                    bstype: BSTYPE,
                    force_recover: false,
                },
            )
            .expect("a crashed store loads");
            let s = BlobstoreStorage::on_store(bs.clone()).expect("its catalog loads");
            for r in 0..5 {
                // The last acknowledged put of this name, or the one in flight.
                let last = (0..acked).rev().find(|k| k % 5 == r).map(staged);
                let in_flight = (acked < STEPS && acked % 5 == r).then(|| staged(acked));
                let got = s.get_blob("c", &format!("r{r}")).unwrap();
                assert!(
                    got == last || (in_flight.is_some() && got == in_flight),
                    "cut at write {n} ({mode:?}) after {acked} puts: r{r} is {got:?}"
                );
            }
            assert_eq!(
                bs.blob_ids().len(),
                1,
                "cut at write {n}: only the catalog is left"
            );
            assert_eq!(bs.check().unwrap().free_clusters, bs.free_clusters());
        }
        if acked == STEPS {
            break;
        }
        n += 1;
    }
    assert!(compactions > 0, "the catalog was never compacted");
    eprintln!("power cut at each of {n} device writes of {STEPS} record updates");
}
