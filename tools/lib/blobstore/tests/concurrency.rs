//! Data I/O from many threads while metadata operations run: no deadlock, no lost write,
//! exact allocation afterwards.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use blobstore::{BlobOptions, CrashMode};
use common::*;

#[test]
fn writers_race_snapshots_syncs_and_growth() {
    let (dev, bs) = mem_store(8 << 20, 4096, 16384, Some(128));
    let id = bs
        .create_blob(&BlobOptions {
            num_clusters: 16,
            thin_provision: true,
            ..BlobOptions::default()
        })
        .unwrap();
    let blob = Arc::new(bs.open_blob(id).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let blob = blob.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                // Thread t owns clusters 4t..4t+4 (16 io_units); it rewrites them with a
                // version number until told to stop, and returns its last version.
                let mut v = 0u8;
                while !stop.load(Ordering::Relaxed) || v < 3 {
                    v = v.wrapping_add(1);
                    for u in 0..16u64 {
                        let mut buf = [v; 4096];
                        buf[0] = t as u8;
                        buf[1] = u as u8;
                        blob.write(t * 16 + u, &buf).unwrap();
                    }
                }
                v
            })
        })
        .collect();
    let mut snaps = Vec::new();
    for round in 0..12 {
        let s = bs.create_snapshot(id, &[]).unwrap();
        snaps.push(s);
        blob.sync_md().unwrap();
        if round % 3 == 2 {
            blob.resize(16 + round).unwrap();
            blob.sync_md().unwrap();
        }
        if snaps.len() > 2 {
            // The oldest snapshot has one clone (the next snapshot): merged away.
            bs.delete_blob(snaps.remove(0)).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let last: Vec<u8> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (t, &v) in last.iter().enumerate() {
        for u in 0..16u64 {
            let mut buf = [0u8; 4096];
            blob.read(t as u64 * 16 + u, &mut buf).unwrap();
            assert_eq!((buf[0], buf[1]), (t as u8, u as u8));
            assert!(buf[2..].iter().all(|&x| x == v), "thread {t} unit {u}");
        }
    }
    blob.flush().unwrap();
    bs.check().unwrap();
    let want = observe(&bs);
    let re = load(&crash(&dev, CrashMode::DropUnflushed { seed: 5 })).unwrap();
    re.check().unwrap();
    assert_eq!(observe(&re), want);
}
