#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;

use blobstore::{BlobId, Blobstore, CrashMode, Device, Error, InitOptions, LoadOptions, MemDevice};

pub const KIB: u64 = 1024;

pub fn errno<T: std::fmt::Debug>(r: Result<T, Error>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.errno(),
    }
}

/// A store on a fresh in-memory device.
pub fn mem_store(
    size: u64,
    block: u32,
    cluster: u32,
    md_pages: Option<u32>,
) -> (Arc<MemDevice>, Blobstore) {
    let dev = Arc::new(MemDevice::new(size, block));
    let bs = Blobstore::init(
        dev.clone() as Arc<dyn Device>,
        &InitOptions {
            cluster_size: cluster,
            num_md_pages: md_pages,
            ..InitOptions::default()
        },
    )
    .expect("init");
    (dev, bs)
}

/// A small store: 1 MiB, 4 KiB blocks, 16 KiB clusters, 32 md pages.
pub fn small() -> (Arc<MemDevice>, Blobstore) {
    mem_store(1 << 20, 4096, 16 * 1024, Some(32))
}

pub fn load(dev: &Arc<MemDevice>) -> Result<Blobstore, Error> {
    Blobstore::load(dev.clone() as Arc<dyn Device>, &LoadOptions::default())
}

/// Simulate a power failure: a new device holding what survived, per `mode`.
pub fn crash(dev: &MemDevice, mode: CrashMode) -> Arc<MemDevice> {
    Arc::new(MemDevice::from_image(
        dev.crash_image(mode),
        dev.block_size(),
    ))
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// What a user can observe of a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobView {
    pub clusters: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub parent: Option<BlobId>,
    pub read_only: bool,
    pub content: Vec<u8>,
}

/// What a user can observe of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreView {
    pub blobs: BTreeMap<BlobId, BlobView>,
    pub free_clusters: u64,
    pub super_blob: Option<BlobId>,
}

pub fn observe(bs: &Blobstore) -> StoreView {
    let mut blobs = BTreeMap::new();
    for id in bs.blob_ids() {
        let b = bs.open_blob(id).expect("open");
        let mut content = vec![0u8; (b.num_clusters() * bs.cluster_size()) as usize];
        b.read(0, &mut content).expect("read");
        let mut xattrs = Vec::new();
        for n in b.xattr_names().expect("names") {
            let v = b.get_xattr(&n).expect("get");
            xattrs.push((n, v));
        }
        blobs.insert(
            id,
            BlobView {
                clusters: b.num_clusters(),
                xattrs,
                parent: b.parent_id(),
                read_only: b.is_read_only(),
                content,
            },
        );
        b.close().expect("close");
    }
    StoreView {
        blobs,
        free_clusters: bs.free_clusters(),
        super_blob: bs.super_blob().ok(),
    }
}
