//! Power failure at every I/O index. For each scenario: a base store is prepared and unloaded;
//! then for N = 1, 2, ... the scenario's steps run on a copy whose device fails every write
//! from the N-th on. What survives (either every completed write, or only flushed writes with
//! the rest dropped or torn at random) is dirty-loaded and must show the state after the last
//! acknowledged step, or after the step that was in flight; allocation must be exact. The loop
//! ends when a run completes without hitting the failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use blobstore::{BlobId, BlobOptions, Blobstore, CrashMode, Error, MemDevice};
use common::*;

type Step = Box<dyn Fn(&Blobstore, &mut Vec<BlobId>) -> Result<(), Error>>;
type Setup = Box<dyn Fn(&Blobstore) -> Vec<BlobId>>;

struct Scenario {
    name: &'static str,
    setup: Setup,
    steps: Vec<Step>,
}

fn base(s: &Scenario) -> (Vec<u8>, Vec<BlobId>) {
    let (dev, bs) = mem_store(1 << 20, 4096, 16384, Some(32));
    let ids = (s.setup)(&bs);
    bs.unload().unwrap();
    (dev.image(), ids)
}

/// Reference states: the view after 0, 1, ... steps, on a device that never fails.
fn reference(s: &Scenario, img: &[u8], ids0: &[BlobId]) -> Vec<StoreView> {
    let dev = Arc::new(MemDevice::from_image(img.to_vec(), 4096));
    let bs = load(&dev).unwrap();
    let mut ids = ids0.to_vec();
    let mut views = vec![observe(&bs)];
    for step in &s.steps {
        step(&bs, &mut ids).unwrap();
        views.push(observe(&bs));
    }
    views
}

fn run(s: Scenario) {
    let (img, ids0) = base(&s);
    let views = reference(&s, &img, &ids0);
    for mode in 0..3u64 {
        let mut n = 1u64;
        loop {
            let dev = Arc::new(MemDevice::from_image(img.clone(), 4096));
            let bs = load(&dev).unwrap();
            dev.fail_from(n);
            let mut ids = ids0.clone();
            let mut acked = 0;
            for step in &s.steps {
                if step(&bs, &mut ids).is_err() {
                    break;
                }
                acked += 1;
            }
            let completed = !dev.is_dead();
            // At the final N nothing failed: every step was acknowledged, so the end state
            // must survive whatever the cache drops; try several outcomes.
            let seeds = if completed && mode > 0 { 16 } else { 1 };
            for k in 0..seeds {
                let cm = if mode == 0 {
                    CrashMode::KeepCompleted
                } else {
                    CrashMode::DropUnflushed {
                        seed: (n * 3 + mode) * 100 + k,
                    }
                };
                verify(&s, &views, &dev, cm, acked, n, mode);
            }
            if completed {
                assert_eq!(acked, s.steps.len());
                break;
            }
            n += 1;
            assert!(n < 10_000, "{}: no end", s.name);
        }
    }
}

fn verify(
    s: &Scenario,
    views: &[StoreView],
    dev: &MemDevice,
    cm: CrashMode,
    acked: usize,
    n: u64,
    mode: u64,
) {
    let after = crash(dev, cm);
    let re = load(&after).unwrap_or_else(|e| panic!("{}: N={n} mode={mode}: load: {e}", s.name));
    re.check()
        .unwrap_or_else(|e| panic!("{}: N={n} mode={mode}: check: {e}", s.name));
    let got = observe(&re);
    let ok = got == views[acked] || (acked + 1 < views.len() && got == views[acked + 1]);
    assert!(
        ok,
        "{}: N={n} mode={mode}: {acked} steps acknowledged, recovered state is \
         neither state {acked} nor {}\n got: {:?}\nwant: {:?}",
        s.name,
        acked + 1,
        summary(&got),
        summary(&views[acked])
    );
    // A second dirty load of the recovered store (after its own repairs) is stable.
    let again = load(&crash(&after, CrashMode::KeepCompleted)).unwrap();
    assert_eq!(observe(&again), got, "{}: N={n}: unstable recovery", s.name);
}

fn summary(v: &StoreView) -> String {
    let blobs: Vec<String> = v
        .blobs
        .iter()
        .map(|(id, b)| {
            format!(
                "{id:#x}:{}cl,{}x,p={:?},ro={},sum={}",
                b.clusters,
                b.xattrs.len(),
                b.parent,
                b.read_only,
                b.content.iter().map(|&x| u64::from(x)).sum::<u64>()
            )
        })
        .collect();
    format!(
        "free={} super={:?} [{}]",
        v.free_clusters,
        v.super_blob,
        blobs.join(" ")
    )
}

fn thick(n: u64) -> BlobOptions {
    BlobOptions {
        num_clusters: n,
        ..BlobOptions::default()
    }
}

fn with_data(bs: &Blobstore, n: u64, seed: u8) -> BlobId {
    let id = bs.create_blob(&thick(n)).unwrap();
    let b = bs.open_blob(id).unwrap();
    b.write(0, &pattern((n * 16384) as usize, seed)).unwrap();
    b.close().unwrap();
    id
}

#[test]
fn pf_create() {
    run(Scenario {
        name: "create",
        setup: Box::new(|_| Vec::new()),
        steps: vec![Box::new(|bs, ids| {
            ids.push(bs.create_blob(&BlobOptions {
                num_clusters: 3,
                xattrs: vec![("name".into(), b"v".to_vec())],
                ..BlobOptions::default()
            })?);
            Ok(())
        })],
    });
}

#[test]
fn pf_resize() {
    run(Scenario {
        name: "resize",
        setup: Box::new(|bs| vec![with_data(bs, 2, 1)]),
        steps: vec![
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[0])?;
                b.resize(6)?;
                b.sync_md()?;
                b.close()
            }),
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[0])?;
                b.resize(1)?;
                b.sync_md()?;
                b.close()
            }),
        ],
    });
}

#[test]
fn pf_xattr_set() {
    run(Scenario {
        name: "xattr",
        setup: Box::new(|bs| vec![with_data(bs, 1, 2)]),
        steps: vec![Box::new(|bs, ids| {
            let b = bs.open_blob(ids[0])?;
            for i in 0..12u8 {
                b.set_xattr(&format!("k{i}"), &vec![i; 500])?;
            }
            b.sync_md()?;
            b.close()
        })],
    });
}

#[test]
fn pf_delete() {
    run(Scenario {
        name: "delete",
        setup: Box::new(|bs| {
            let id = with_data(bs, 3, 3);
            let b = bs.open_blob(id).unwrap();
            for i in 0..10u8 {
                b.set_xattr(&format!("k{i}"), &vec![i; 600]).unwrap();
            }
            b.close().unwrap();
            vec![id, with_data(bs, 1, 4)]
        }),
        steps: vec![Box::new(|bs, ids| bs.delete_blob(ids[0]))],
    });
}

#[test]
fn pf_snapshot_create_and_delete() {
    run(Scenario {
        name: "snapshot",
        setup: Box::new(|bs| vec![with_data(bs, 3, 5)]),
        steps: vec![
            Box::new(|bs, ids| {
                let s = bs.create_snapshot(ids[0], &[])?;
                ids.push(s);
                Ok(())
            }),
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[0])?;
                b.write(4, &[0xEE; 4096])?;
                b.close()
            }),
            Box::new(|bs, ids| bs.delete_blob(ids[1])),
        ],
    });
}

#[test]
fn pf_thin_first_write_and_flush() {
    run(Scenario {
        name: "thin-write",
        setup: Box::new(|bs| {
            vec![bs
                .create_blob(&BlobOptions {
                    num_clusters: 600,
                    thin_provision: true,
                    ..BlobOptions::default()
                })
                .unwrap()]
        }),
        steps: vec![
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[0])?;
                b.write(1, &[1u8; 8192])?;
                b.close()
            }),
            Box::new(|bs, ids| {
                // Writes spanning clusters are not atomic, so each step stays in one cluster.
                let b = bs.open_blob(ids[0])?;
                b.write(6, &[2u8; 8192])?;
                b.close()
            }),
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[0])?;
                b.write(8, &[4u8; 16384])?;
                b.close()
            }),
            Box::new(|bs, ids| {
                // First cluster of the second extent page: new extent page plus root.
                let b = bs.open_blob(ids[0])?;
                b.write(520 * 4, &[5u8; 4096])?;
                b.close()
            }),
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[0])?;
                b.write(2, &[3u8; 4096])?;
                b.flush()?;
                b.close()
            }),
        ],
    });
}

#[test]
fn pf_mixed_sequence() {
    run(Scenario {
        name: "mixed",
        setup: Box::new(|bs| vec![with_data(bs, 2, 6)]),
        steps: vec![
            Box::new(|bs, ids| {
                ids.push(bs.create_blob(&BlobOptions {
                    num_clusters: 4,
                    thin_provision: true,
                    use_extent_table: false,
                    ..BlobOptions::default()
                })?);
                Ok(())
            }),
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[1])?;
                b.write(5, &[7u8; 4096])?;
                b.close()
            }),
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[1])?;
                b.set_xattr("owner", b"svc")?;
                b.close()
            }),
            Box::new(|bs, ids| bs.set_super_blob(ids[1])),
            Box::new(|bs, ids| {
                let s = bs.create_snapshot(ids[0], &[("s".into(), b"1".to_vec())])?;
                ids.push(s);
                Ok(())
            }),
            Box::new(|bs, ids| {
                let c = bs.create_clone(ids[2], &[])?;
                ids.push(c);
                Ok(())
            }),
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[3])?;
                b.write(0, &[9u8; 4096])?;
                b.close()
            }),
            Box::new(|bs, ids| bs.inflate(ids[3])),
            Box::new(|bs, ids| bs.delete_blob(ids[2])),
            Box::new(|bs, ids| {
                let b = bs.open_blob(ids[1])?;
                b.resize(2)?;
                b.close()
            }),
            Box::new(|bs, ids| bs.delete_blob(ids[1])),
        ],
    });
}

/// Power failure at every I/O index of an unload (masks, barrier, clean super block,
/// barrier): the store loads (clean or dirty) with the same contents.
#[test]
fn pf_unload() {
    let (dev0, bs0) = mem_store(1 << 20, 4096, 16384, Some(32));
    let a = with_data(&bs0, 3, 7);
    let t = bs0
        .create_blob(&BlobOptions {
            num_clusters: 8,
            thin_provision: true,
            ..BlobOptions::default()
        })
        .unwrap();
    {
        let b = bs0.open_blob(t).unwrap();
        b.write(9, &[3u8; 4096]).unwrap();
        b.set_xattr("k", b"v").unwrap();
        b.close().unwrap();
    }
    bs0.create_snapshot(a, &[]).unwrap();
    bs0.device().flush().unwrap();
    let want = observe(&bs0);
    // A dirty base image: the store was never unloaded.
    let img = dev0.crash_image(CrashMode::KeepCompleted);
    for mode in 0..3u64 {
        let mut n = 1;
        loop {
            let dev = Arc::new(MemDevice::from_image(img.clone(), 4096));
            let bs = load(&dev).unwrap();
            dev.fail_from(n);
            let res = bs.unload();
            let completed = !dev.is_dead();
            let cm = if mode == 0 {
                CrashMode::KeepCompleted
            } else {
                CrashMode::DropUnflushed { seed: n + mode }
            };
            let re = load(&crash(&dev, cm)).unwrap();
            re.check().unwrap();
            assert_eq!(observe(&re), want, "unload N={n} mode={mode}");
            if completed {
                res.unwrap();
                break;
            }
            n += 1;
        }
    }
}
