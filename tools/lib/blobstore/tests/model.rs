//! Property tests: random operation sequences against a simple in-memory model, with clean
//! and dirty reloads in between.
#![allow(clippy::unwrap_used)]

mod common;

use blobstore::{BlobId, BlobOptions, Blobstore, CrashMode, Error};
use common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const CS: usize = 8192;
const UNIT: usize = 512;
const MAX_BLOBS: usize = 12;

#[derive(Debug, Clone)]
enum Op {
    Create {
        clusters: u64,
        thin: bool,
        rle: bool,
    },
    Write {
        blob: usize,
        off: usize,
        len: usize,
        seed: u8,
    },
    Zeroes {
        blob: usize,
        off: usize,
        len: usize,
    },
    Resize {
        blob: usize,
        clusters: u64,
    },
    SetXattr {
        blob: usize,
        key: u8,
        len: usize,
    },
    RemoveXattr {
        blob: usize,
        key: u8,
    },
    ReadOnly {
        blob: usize,
    },
    Delete {
        blob: usize,
    },
    Snapshot {
        blob: usize,
    },
    Clone {
        blob: usize,
    },
    Inflate {
        blob: usize,
    },
    Decouple {
        blob: usize,
    },
    ReloadClean,
    ReloadDirty,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..5, any::<bool>(), any::<bool>())
            .prop_map(|(clusters, thin, rle)| Op::Create { clusters, thin, rle }),
        6 => (any::<usize>(), 0usize..80, 1usize..24, any::<u8>())
            .prop_map(|(blob, off, len, seed)| Op::Write { blob, off, len, seed }),
        1 => (any::<usize>(), 0usize..80, 1usize..24)
            .prop_map(|(blob, off, len)| Op::Zeroes { blob, off, len }),
        2 => (any::<usize>(), 0u64..6).prop_map(|(blob, clusters)| Op::Resize { blob, clusters }),
        2 => (any::<usize>(), 0u8..4, 0usize..900)
            .prop_map(|(blob, key, len)| Op::SetXattr { blob, key, len }),
        1 => (any::<usize>(), 0u8..4).prop_map(|(blob, key)| Op::RemoveXattr { blob, key }),
        1 => any::<usize>().prop_map(|blob| Op::ReadOnly { blob }),
        2 => any::<usize>().prop_map(|blob| Op::Delete { blob }),
        2 => any::<usize>().prop_map(|blob| Op::Snapshot { blob }),
        1 => any::<usize>().prop_map(|blob| Op::Clone { blob }),
        1 => any::<usize>().prop_map(|blob| Op::Inflate { blob }),
        1 => any::<usize>().prop_map(|blob| Op::Decouple { blob }),
        1 => Just(Op::ReloadClean),
        1 => Just(Op::ReloadDirty),
    ]
}

#[derive(Debug, Clone, Default)]
struct MBlob {
    content: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
    ro: bool,
    parent: Option<BlobId>,
}

#[derive(Default)]
struct Model {
    blobs: BTreeMap<BlobId, MBlob>,
}

impl Model {
    fn clones(&self, id: BlobId) -> Vec<BlobId> {
        self.blobs
            .iter()
            .filter(|(_, b)| b.parent == Some(id))
            .map(|(&k, _)| k)
            .collect()
    }
}

fn pick(m: &Model, i: usize) -> Option<BlobId> {
    let ids: Vec<BlobId> = m.blobs.keys().copied().collect();
    (!ids.is_empty()).then(|| ids[i % ids.len()])
}

fn expect_errno(r: Result<(), Error>, want: i32, what: &str) {
    match r {
        Err(e) if e.errno() == want => {}
        other => panic!("{what}: expected errno {want}, got {other:?}"),
    }
}

fn compare(bs: &Blobstore, m: &Model) {
    bs.check().unwrap();
    assert_eq!(bs.blob_ids(), m.blobs.keys().copied().collect::<Vec<_>>());
    for (&id, mb) in &m.blobs {
        let b = bs.open_blob(id).unwrap();
        assert_eq!(
            b.num_clusters() as usize * CS,
            mb.content.len(),
            "size of {id:#x}"
        );
        let mut buf = vec![0u8; mb.content.len()];
        b.read(0, &mut buf).unwrap();
        assert!(buf == mb.content, "content of {id:#x}");
        let mut names = b.xattr_names().unwrap();
        names.sort();
        assert_eq!(names, mb.xattrs.keys().cloned().collect::<Vec<_>>());
        for (k, v) in &mb.xattrs {
            assert_eq!(&b.get_xattr(k).unwrap(), v);
        }
        assert_eq!(b.is_read_only(), mb.ro, "ro of {id:#x}");
        assert_eq!(b.parent_id(), mb.parent, "parent of {id:#x}");
        b.close().unwrap();
    }
}

fn apply(bs: &Blobstore, m: &mut Model, op: &Op) {
    match *op {
        Op::Create {
            clusters,
            thin,
            rle,
        } => {
            if m.blobs.len() >= MAX_BLOBS {
                return;
            }
            let id = bs
                .create_blob(&BlobOptions {
                    num_clusters: clusters,
                    thin_provision: thin,
                    use_extent_table: !rle,
                    ..BlobOptions::default()
                })
                .unwrap();
            m.blobs.insert(
                id,
                MBlob {
                    content: vec![0; clusters as usize * CS],
                    ..MBlob::default()
                },
            );
        }
        Op::Write {
            blob,
            off,
            len,
            seed,
        } => {
            let Some(id) = pick(m, blob) else { return };
            let b = bs.open_blob(id).unwrap();
            let data = pattern(len * UNIT, seed);
            let mb = m.blobs.get_mut(&id).unwrap();
            let r = b.write(off as u64, &data);
            if mb.ro {
                expect_errno(r, 1, "write to read-only");
            } else if (off + len) * UNIT > mb.content.len() {
                expect_errno(r, 22, "write out of range");
            } else {
                r.unwrap();
                mb.content[off * UNIT..(off + len) * UNIT].copy_from_slice(&data);
            }
            b.close().unwrap();
        }
        Op::Zeroes { blob, off, len } => {
            let Some(id) = pick(m, blob) else { return };
            let b = bs.open_blob(id).unwrap();
            let mb = m.blobs.get_mut(&id).unwrap();
            let r = b.write_zeroes(off as u64, len as u64);
            if mb.ro {
                expect_errno(r, 1, "zeroes to read-only");
            } else if (off + len) * UNIT > mb.content.len() {
                expect_errno(r, 22, "zeroes out of range");
            } else {
                r.unwrap();
                mb.content[off * UNIT..(off + len) * UNIT].fill(0);
            }
            b.close().unwrap();
        }
        Op::Resize { blob, clusters } => {
            let Some(id) = pick(m, blob) else { return };
            let parent_content = m.blobs[&id].parent.map(|p| m.blobs[&p].content.clone());
            let b = bs.open_blob(id).unwrap();
            let mb = m.blobs.get_mut(&id).unwrap();
            let r = b.resize(clusters);
            if mb.ro {
                expect_errno(r, 1, "resize read-only");
            } else {
                r.unwrap();
                b.sync_md().unwrap();
                let old = mb.content.len();
                let new = clusters as usize * CS;
                // Growth reads zeroes, or the parent's data where the parent is larger.
                let mut grown = vec![0u8; new];
                let keep = old.min(new);
                grown[..keep].copy_from_slice(&mb.content[..keep]);
                if new > old {
                    // A clone grown within its parent's size shows the parent's data there.
                    if let Some(p) = &parent_content {
                        for (i, byte) in grown.iter_mut().enumerate().skip(old) {
                            *byte = p.get(i).copied().unwrap_or(0);
                        }
                    }
                }
                mb.content = grown;
            }
            b.close().unwrap();
        }
        Op::SetXattr { blob, key, len } => {
            let Some(id) = pick(m, blob) else { return };
            let b = bs.open_blob(id).unwrap();
            let mb = m.blobs.get_mut(&id).unwrap();
            let name = format!("key{key}");
            let value = pattern(len, key);
            let r = b.set_xattr(&name, &value);
            if mb.ro {
                expect_errno(r, 1, "xattr on read-only");
            } else {
                r.unwrap();
                mb.xattrs.insert(name, value);
            }
            b.close().unwrap();
        }
        Op::RemoveXattr { blob, key } => {
            let Some(id) = pick(m, blob) else { return };
            let b = bs.open_blob(id).unwrap();
            let mb = m.blobs.get_mut(&id).unwrap();
            let name = format!("key{key}");
            let r = b.remove_xattr(&name);
            if mb.ro {
                expect_errno(r, 1, "remove xattr on read-only");
            } else if mb.xattrs.remove(&name).is_none() {
                expect_errno(r, 2, "remove missing xattr");
            } else {
                r.unwrap();
            }
            b.close().unwrap();
        }
        Op::ReadOnly { blob } => {
            let Some(id) = pick(m, blob) else { return };
            let b = bs.open_blob(id).unwrap();
            b.set_read_only().unwrap();
            b.close().unwrap();
            m.blobs.get_mut(&id).unwrap().ro = true;
        }
        Op::Delete { blob } => {
            let Some(id) = pick(m, blob) else { return };
            let clones = m.clones(id);
            let r = bs.delete_blob(id);
            if clones.len() > 1 {
                expect_errno(r, 16, "delete snapshot with clones");
                return;
            }
            r.unwrap();
            let gone = m.blobs.remove(&id).unwrap();
            if let Some(&c) = clones.first() {
                m.blobs.get_mut(&c).unwrap().parent = gone.parent;
            }
        }
        Op::Snapshot { blob } => {
            let Some(id) = pick(m, blob) else { return };
            if m.blobs.len() >= MAX_BLOBS {
                return;
            }
            let r = bs.create_snapshot(id, &[]);
            let mb = m.blobs.get_mut(&id).unwrap();
            if mb.ro {
                expect_errno(r.map(|_| ()), 22, "snapshot of read-only");
                return;
            }
            let sid = r.unwrap();
            let snap = MBlob {
                content: mb.content.clone(),
                xattrs: BTreeMap::new(),
                ro: true,
                parent: mb.parent,
            };
            mb.parent = Some(sid);
            m.blobs.insert(sid, snap);
        }
        Op::Clone { blob } => {
            let Some(id) = pick(m, blob) else { return };
            if m.blobs.len() >= MAX_BLOBS {
                return;
            }
            let r = bs.create_clone(id, &[]);
            let mb = &m.blobs[&id];
            if !mb.ro {
                expect_errno(r.map(|_| ()), 22, "clone of writable blob");
                return;
            }
            let cid = r.unwrap();
            let c = MBlob {
                content: mb.content.clone(),
                xattrs: BTreeMap::new(),
                ro: false,
                parent: Some(id),
            };
            m.blobs.insert(cid, c);
        }
        Op::Inflate { blob } | Op::Decouple { blob } => {
            let Some(id) = pick(m, blob) else { return };
            let inflate = matches!(op, Op::Inflate { .. });
            let r = if inflate {
                bs.inflate(id)
            } else {
                bs.decouple_parent(id)
            };
            let parent = m.blobs[&id].parent;
            if m.blobs[&id].ro {
                expect_errno(r, 1, "inflate read-only");
            } else if !inflate && parent.is_none() {
                expect_errno(r, 22, "decouple without parent");
            } else {
                r.unwrap();
                let np = if inflate {
                    None
                } else {
                    parent.and_then(|p| m.blobs[&p].parent)
                };
                m.blobs.get_mut(&id).unwrap().parent = np;
            }
        }
        Op::ReloadClean | Op::ReloadDirty => unreachable!(),
    }
}

fn run(ops: &[Op]) {
    let (mut dev, mut bs) = mem_store(2 << 20, UNIT as u32, CS as u32, Some(64));
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::ReloadClean => {
                bs.unload().unwrap();
                bs = load(&dev).unwrap();
            }
            Op::ReloadDirty => {
                dev = crash(&dev, CrashMode::KeepCompleted);
                bs = load(&dev).unwrap();
            }
            op => apply(&bs, &mut m, op),
        }
        compare(&bs, &m);
    }
    // After a flush, everything survives an unclean stop that drops unflushed writes.
    bs.device().flush().unwrap();
    let re = load(&crash(&dev, CrashMode::DropUnflushed { seed: 1 })).unwrap();
    compare(&re, &m);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn random_sequences_match_model(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}
