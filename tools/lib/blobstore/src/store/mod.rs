//! The Blobstore: one owner of metadata (a mutex around [`Md`]), lock-free cluster maps for
//! the data path, and the commit protocol with barriers.
//!
//! Lock order: a blob's gate (child before parent), then the metadata mutex. The data path
//! takes only its blob's gate for reading (and its parents' gates when it reads through a
//! clone); it takes the metadata mutex only to allocate a cluster on first write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::bits::Bits;
use crate::dev::Device;
use crate::error::{eilseq, einval, Error, Result};
mod blob;
mod codec;
mod inner;
mod lifecycle;
mod snapshot;

use crate::format::{
    blobid_to_page, crc_ok, decode_mask, encode_mask, extent_table_encode, page_to_blobid,
    rle_encode, Descriptor, MdPage, SuperBlock, DATA_RO_READ_ONLY, DESC_SPACE, EXTENT_PER_PAGE,
    FLAG_EXTENT_TABLE, FLAG_INTERNAL_XATTR, FLAG_THIN_PROV, INVALID_FLAGS_KNOWN, INVALID_MD_PAGE,
    MASK_BLOBIDS, MASK_CLUSTERS, MASK_PAGES, MD_RO_CLEAR_MASK, NO_SUPER_BLOB, PAGE_SIZE, VERSION,
};
use codec::{build_chain, parse_blob, ExtDesc, Parsed};

/// A blob id: `(1 << 32) | root md page`.
pub type BlobId = u64;

/// Internal xattr naming a blob's parent snapshot (value: the parent id, u64 LE).
pub const XATTR_SNAPSHOT: &str = "SNAP";
/// Internal xattr on a snapshot being created (value: the original blob id).
pub const XATTR_SNAPSHOT_IN_PROGRESS: &str = "SNAPTMP";
/// Internal xattr on a snapshot being removed (value: the clone taking its clusters).
pub const XATTR_SNAPSHOT_REMOVAL: &str = "SNAPRM";
/// Internal xattr of an external snapshot (not supported; reserved).
pub const XATTR_EXTERNAL_SNAPSHOT: &str = "EXTSNAP";
const RESERVED_INTERNAL: [&str; 4] = [
    XATTR_SNAPSHOT,
    XATTR_SNAPSHOT_IN_PROGRESS,
    XATTR_SNAPSHOT_REMOVAL,
    XATTR_EXTERNAL_SNAPSHOT,
];

/// What to do with clusters a blob releases (stored in md_ro bits 0-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClearMethod {
    /// The store's default (unmap).
    #[default]
    Default,
    /// Leave the data in place.
    None,
    /// Unmap (punch a hole in a file).
    Unmap,
    /// Write zeroes.
    WriteZeroes,
}

impl ClearMethod {
    fn bits(self) -> u64 {
        match self {
            ClearMethod::Default => 0,
            ClearMethod::None => 1,
            ClearMethod::Unmap => 2,
            ClearMethod::WriteZeroes => 3,
        }
    }
    fn from_bits(b: u64) -> Self {
        match b & MD_RO_CLEAR_MASK {
            1 => ClearMethod::None,
            2 => ClearMethod::Unmap,
            3 => ClearMethod::WriteZeroes,
            _ => ClearMethod::Default,
        }
    }
}

/// Options of [`Blobstore::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Cluster size in bytes: a non-zero multiple of the md page size (default 1 MiB).
    pub cluster_size: u32,
    /// Metadata pages (default: one per cluster).
    pub num_md_pages: Option<u32>,
    /// How init clears the data area, and the store's default for released clusters.
    pub clear_method: ClearMethod,
    /// Blobstore type, 16 bytes.
    pub bstype: [u8; 16],
    /// Metadata page size (0: max(4096, block size)).
    pub md_page_size: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            cluster_size: 1 << 20,
            num_md_pages: None,
            clear_method: ClearMethod::Default,
            bstype: [0; 16],
            md_page_size: 0,
        }
    }
}

/// Options of [`Blobstore::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Expected type; all-zero loads any store.
    pub bstype: [u8; 16],
    /// Rebuild the allocation masks from the metadata pages even after a clean unload.
    pub force_recover: bool,
}

/// Options of [`Blobstore::create_blob`].
#[derive(Debug, Clone)]
pub struct BlobOptions {
    /// Size in clusters.
    pub num_clusters: u64,
    /// Thin provisioning: allocate clusters on first write.
    pub thin_provision: bool,
    /// What to do with clusters this blob releases.
    pub clear_method: ClearMethod,
    /// Public xattrs set at creation.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Use an extent table (default) rather than RLE extents.
    pub use_extent_table: bool,
}

impl Default for BlobOptions {
    fn default() -> Self {
        BlobOptions {
            num_clusters: 0,
            thin_provision: false,
            clear_method: ClearMethod::Default,
            xattrs: Vec::new(),
            use_extent_table: true,
        }
    }
}

/// Result of [`Blobstore::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Number of blobs.
    pub blobs: usize,
    /// Clusters owned by blobs.
    pub owned_clusters: u64,
    /// Clusters holding metadata.
    pub md_clusters: u64,
    /// Free clusters.
    pub free_clusters: u64,
    /// Metadata pages in use.
    pub used_md_pages: u64,
}

#[derive(Debug, Clone, Copy)]
struct Geo {
    cluster_size: u64,
    io_unit: u64,
    md_page_size: u64,
    md_start: u64,
    md_clusters: u64,
}

impl Geo {
    fn page_off(&self, page: u32) -> u64 {
        (self.md_start + u64::from(page)) * self.md_page_size
    }
}

/// What the data path sees of a blob. Each shard of the blob's freeze gate holds a pointer to
/// the current state; the fields are replaced only by a writer holding every shard, and the
/// cluster map's entries are atomics that the first-write path fills in place.
#[derive(Debug)]
struct MapState {
    /// Cluster number per cluster index (0 = unallocated). May be longer than `num_clusters`
    /// while a shrink waits for its sync.
    map: Vec<AtomicU32>,
    num_clusters: u64,
    parent: Option<Arc<Shared>>,
    thin: bool,
}

impl MapState {
    fn duplicate(&self) -> MapState {
        MapState {
            map: self
                .map
                .iter()
                .map(|a| AtomicU32::new(a.load(Ordering::Acquire)))
                .collect(),
            num_clusters: self.num_clusters,
            parent: self.parent.clone(),
            thin: self.thin,
        }
    }
}

/// Shards of a blob's freeze gate. Data I/O takes its thread's shard for reading, so I/O
/// threads rarely share a cache line; snapshot, resize, inflate and the like take every shard
/// for writing, which waits for I/O in flight, holds new I/O back, and lets them publish a new
/// state in every shard.
const GATE_SHARDS: usize = 16;

#[repr(align(64))]
#[derive(Debug)]
struct GateShard(RwLock<Arc<MapState>>);

static NEXT_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn my_shard() -> usize {
    thread_local! {
        static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % GATE_SHARDS;
    }
    SHARD.with(|s| *s)
}

/// Per-blob state shared by the metadata owner and every handle.
#[derive(Debug)]
struct Shared {
    id: BlobId,
    gate: Box<[GateShard]>,
    data_ro: AtomicBool,
    md_ro: AtomicBool,
    busy: AtomicBool,
}

/// Shared access to a blob's map: I/O may run.
struct ReadGate<'a>(RwLockReadGuard<'a, Arc<MapState>>);

impl std::ops::Deref for ReadGate<'_> {
    type Target = MapState;
    fn deref(&self) -> &MapState {
        &self.0
    }
}

/// Exclusive access to a blob's map: no I/O runs.
struct WriteGate<'a> {
    shards: Vec<RwLockWriteGuard<'a, Arc<MapState>>>,
    cur: Arc<MapState>,
}

impl std::ops::Deref for WriteGate<'_> {
    type Target = MapState;
    fn deref(&self) -> &MapState {
        &self.cur
    }
}

impl WriteGate<'_> {
    /// Publish a modified copy of the map state.
    fn update(&mut self, f: impl FnOnce(&mut MapState)) {
        let mut next = self.cur.duplicate();
        f(&mut next);
        let next = Arc::new(next);
        for s in self.shards.iter_mut() {
            **s = next.clone();
        }
        self.cur = next;
    }
}

impl Shared {
    fn new(
        id: BlobId,
        map: Vec<u32>,
        num_clusters: u64,
        thin: bool,
        parent: Option<Arc<Shared>>,
    ) -> Arc<Self> {
        let state = Arc::new(MapState {
            map: map.into_iter().map(AtomicU32::new).collect(),
            num_clusters,
            parent,
            thin,
        });
        Arc::new(Shared {
            id,
            gate: (0..GATE_SHARDS)
                .map(|_| GateShard(RwLock::new(state.clone())))
                .collect(),
            data_ro: AtomicBool::new(false),
            md_ro: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        })
    }
    fn read(&self) -> ReadGate<'_> {
        ReadGate(
            self.gate[my_shard()]
                .0
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
    fn try_read(&self) -> Option<ReadGate<'_>> {
        self.gate[my_shard()].0.try_read().ok().map(ReadGate)
    }
    fn write(&self) -> WriteGate<'_> {
        let shards: Vec<_> = self
            .gate
            .iter()
            .map(|s| s.0.write().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let cur = shards[0].clone();
        WriteGate { shards, cur }
    }
    fn try_busy(&self) -> Result<BusyGuard<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| {
                Error::Busy(format!("blob {:#x} has an operation in progress", self.id))
            })?;
        Ok(BusyGuard(&self.busy))
    }
}

struct BusyGuard<'a>(&'a AtomicBool);
impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Metadata of one blob, owned by the metadata mutex.
#[derive(Debug)]
struct BlobMd {
    shared: Arc<Shared>,
    open_ref: u32,
    invalid: u64,
    data_ro: u64,
    md_ro: u64,
    xattrs: Xattrs,
    internal: Xattrs,
    use_et: bool,
    /// Committed chain: root first.
    chain: Vec<u32>,
    /// Committed extent pages (0 = none) and their contents on disk.
    ep_pages: Vec<u32>,
    ep_disk: Vec<Vec<u32>>,
    dirty: bool,
    parent: Option<BlobId>,
    clones: BTreeSet<BlobId>,
    /// Why the blob cannot be opened, if it cannot.
    unopenable: Option<String>,
    /// Clusters to release after the next commit.
    pending_release: Vec<u32>,
}

impl BlobMd {
    fn internal_get(&self, name: &str) -> Option<&[u8]> {
        self.internal
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
    fn internal_id(&self, name: &str) -> Option<BlobId> {
        self.internal_get(name).and_then(|v| {
            let a: [u8; 8] = v.try_into().ok()?;
            Some(u64::from_le_bytes(a))
        })
    }
    fn internal_set(&mut self, name: &str, value: &[u8]) {
        set_in(&mut self.internal, name.as_bytes(), value);
    }
    fn internal_remove(&mut self, name: &str) {
        self.internal.retain(|(n, _)| n != name.as_bytes());
    }
    fn clear_method(&self) -> ClearMethod {
        ClearMethod::from_bits(self.md_ro)
    }
}

fn set_in(list: &mut Xattrs, name: &[u8], value: &[u8]) {
    if let Some(e) = list.iter_mut().find(|(n, _)| n == name) {
        e.1 = value.to_vec();
    } else {
        list.push((name.to_vec(), value.to_vec()));
    }
}

#[derive(Debug)]
struct Md {
    sb: SuperBlock,
    /// The super block on disk says clean = 0.
    marked_dirty: bool,
    unloaded: bool,
    total_clusters: u64,
    pages: Bits,
    clusters: Bits,
    blobids: Bits,
    blobs: BTreeMap<BlobId, BlobMd>,
    default_clear: ClearMethod,
}

#[derive(Debug)]
struct Inner {
    dev: Arc<dyn Device>,
    geo: Geo,
    md: Mutex<Md>,
}

/// A Blobstore on a [`Device`]. Cheap to clone; all clones share one store.
#[derive(Debug, Clone)]
pub struct Blobstore {
    inner: Arc<Inner>,
}

/// An open blob. Obtained from [`Blobstore::open_blob`]; release with [`Blob::close`] (dropping
/// the handle closes it too, ignoring errors).
#[derive(Debug)]
pub struct Blob {
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    closed: bool,
}

fn lock_md(m: &Mutex<Md>) -> MutexGuard<'_, Md> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn load_map(ms: &MapState, n: usize) -> Vec<u32> {
    ms.map
        .iter()
        .take(n)
        .map(|a| a.load(Ordering::Acquire))
        .collect()
}

/// Read the super block of a device.
///
/// # Errors
/// EIO from the device, EILSEQ if invalid.
pub fn read_super_block(dev: &dyn Device) -> Result<SuperBlock> {
    let mut b = vec![0u8; PAGE_SIZE];
    dev.read_at(&mut b, 0)?;
    SuperBlock::decode(&b)
}

fn ms_set_ro(md: &Md, id: BlobId, ro: bool) {
    if let Some(b) = md.blobs.get(&id) {
        b.shared.data_ro.store(ro, Ordering::Release);
        b.shared.md_ro.store(ro, Ordering::Release);
    }
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

impl Blobstore {
    /// The super blob.
    ///
    /// # Errors
    /// ENOENT if none is set.
    pub fn super_blob(&self) -> Result<BlobId> {
        let md = self.inner.md()?;
        match md.sb.super_blob {
            NO_SUPER_BLOB => Err(Error::NotFound("no super blob".into())),
            id => Ok(id),
        }
    }

    /// Set the super blob; durable when this returns.
    ///
    /// # Errors
    /// ENOENT for an unknown blob, EIO.
    pub fn set_super_blob(&self, id: BlobId) -> Result<()> {
        let mut md = self.inner.md()?;
        if !md.blobs.contains_key(&id) {
            return Err(Error::NotFound(format!("blob {id:#x}")));
        }
        self.inner.mark_dirty(&mut md)?;
        md.sb.super_blob = id;
        self.inner.dev.write_at(&md.sb.encode(), 0)?;
        self.inner.dev.flush()?;
        Ok(())
    }

    /// The store's type.
    pub fn bstype(&self) -> [u8; 16] {
        lock_md(&self.inner.md).sb.bstype
    }

    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        self.inner.geo.cluster_size
    }

    /// io_unit size in bytes (offsets and lengths of blob I/O count these).
    pub fn io_unit_size(&self) -> u64 {
        self.inner.geo.io_unit
    }

    /// Metadata page size in bytes.
    pub fn md_page_size(&self) -> u64 {
        self.inner.geo.md_page_size
    }

    /// Total clusters, metadata included.
    pub fn total_clusters(&self) -> u64 {
        lock_md(&self.inner.md).total_clusters
    }

    /// Clusters usable for data (total minus metadata).
    pub fn usable_clusters(&self) -> u64 {
        self.total_clusters() - self.inner.geo.md_clusters
    }

    /// Free clusters.
    pub fn free_clusters(&self) -> u64 {
        let md = lock_md(&self.inner.md);
        md.total_clusters - md.clusters.count_ones() as u64
    }

    /// Metadata pages in use.
    pub fn used_md_pages(&self) -> u64 {
        lock_md(&self.inner.md).pages.count_ones() as u64
    }

    /// The super block as this store last wrote it.
    pub fn super_block(&self) -> SuperBlock {
        lock_md(&self.inner.md).sb.clone()
    }

    /// The device.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.inner.dev
    }

    /// Ids of every blob, ascending.
    pub fn blob_ids(&self) -> Vec<BlobId> {
        lock_md(&self.inner.md).blobs.keys().copied().collect()
    }

    /// Create a blob; its metadata is durable when the id is returned.
    ///
    /// # Errors
    /// ENOSPC (clusters or metadata pages), ENOMEM (an xattr larger than a page), EIO.
    pub fn create_blob(&self, opts: &BlobOptions) -> Result<BlobId> {
        for (name, value) in &opts.xattrs {
            check_xattr(name, value)?;
        }
        let inner = &self.inner;
        let mut md = inner.md()?;
        inner.mark_dirty(&mut md)?;
        let n = opts.num_clusters;
        let nz = usize::try_from(n).map_err(|_| einval("blob too large"))?;
        if n > u64::from(u32::MAX) {
            return Err(einval("blob too large"));
        }
        if !opts.thin_provision && n > md.total_clusters - md.clusters.count_ones() as u64 {
            return Err(Error::NoSpace(format!("{n} clusters requested")));
        }
        let root = Inner::claim_page(&mut md.pages, 0)?;
        let id = page_to_blobid(root);
        let mut map = vec![0u32; nz];
        if !opts.thin_provision {
            for slot in map.iter_mut() {
                match Inner::claim_cluster(&mut md) {
                    Ok(c) => *slot = c,
                    Err(e) => {
                        for &c in map.iter().filter(|&&c| c != 0) {
                            md.clusters.clear(c as usize);
                        }
                        md.pages.clear(root as usize);
                        return Err(e);
                    }
                }
            }
        }
        let claimed: Vec<u32> = map.clone();
        let shared = Shared::new(id, map, n, opts.thin_provision, None);
        md.blobids.set(root as usize);
        md.blobs.insert(
            id,
            BlobMd {
                shared: shared.clone(),
                open_ref: 0,
                invalid: 0,
                data_ro: 0,
                md_ro: opts.clear_method.bits(),
                xattrs: opts
                    .xattrs
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                    .collect(),
                internal: Vec::new(),
                use_et: opts.use_extent_table,
                chain: vec![root],
                ep_pages: Vec::new(),
                ep_disk: Vec::new(),
                dirty: true,
                parent: None,
                clones: BTreeSet::new(),
                unopenable: None,
                pending_release: Vec::new(),
            },
        );
        let ms = shared.read();
        if let Err(e) = inner.persist(&mut md, id, &ms) {
            md.blobs.remove(&id);
            md.blobids.clear(root as usize);
            md.pages.clear(root as usize);
            for &c in claimed.iter().filter(|&&c| c != 0) {
                md.clusters.clear(c as usize);
            }
            return Err(e);
        }
        Ok(id)
    }

    fn shared_of(&self, id: BlobId) -> Result<Arc<Shared>> {
        if blobid_to_page(id).is_none() {
            return Err(Error::NotFound(format!("{id:#x} is not a blob id")));
        }
        let md = self.inner.md()?;
        md.blobs
            .get(&id)
            .map(|b| b.shared.clone())
            .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))
    }

    /// Open a blob. Opens are counted; every handle of one blob shares one state.
    ///
    /// # Errors
    /// ENOENT for an unknown id, EINVAL if its metadata cannot be used (bad CRC, unknown
    /// flags, missing parent).
    pub fn open_blob(&self, id: BlobId) -> Result<Blob> {
        if blobid_to_page(id).is_none() {
            return Err(Error::NotFound(format!("{id:#x} is not a blob id")));
        }
        let mut md = self.inner.md()?;
        let b = md
            .blobs
            .get(&id)
            .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))?;
        if let Some(why) = &b.unopenable {
            return Err(einval(format!("blob {id:#x}: {why}")));
        }
        if b.open_ref == 0 {
            self.inner.verify_on_disk(b)?;
        }
        let shared = b.shared.clone();
        if let Some(b) = md.blobs.get_mut(&id) {
            b.open_ref += 1;
        }
        Ok(Blob {
            inner: self.inner.clone(),
            shared,
            closed: false,
        })
    }

    /// Delete a blob. A snapshot with exactly one clone is merged into that clone.
    ///
    /// # Errors
    /// ENOENT, EBUSY (open, busy, or a snapshot with more than one clone), EINVAL (its
    /// metadata is corrupt), EIO.
    pub fn delete_blob(&self, id: BlobId) -> Result<()> {
        let shared = self.shared_of(id)?;
        let _busy = shared.try_busy()?;
        let clone = {
            let md = self.inner.md()?;
            let b = md
                .blobs
                .get(&id)
                .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))?;
            if b.open_ref > 0 {
                return Err(Error::Busy(format!("blob {id:#x} is open")));
            }
            if b.clones.len() > 1 {
                return Err(Error::Busy(format!(
                    "snapshot {id:#x} has {} clones",
                    b.clones.len()
                )));
            }
            self.inner.verify_on_disk(b)?;
            b.clones.iter().next().copied()
        };
        match clone {
            Some(c) => self.merge_snapshot_into_clone(id, &shared, c),
            None => {
                let g = shared.write();
                let mut md = self.inner.md()?;
                let b = md
                    .blobs
                    .get(&id)
                    .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))?;
                if b.open_ref > 0 || !b.clones.is_empty() {
                    return Err(Error::Busy(format!("blob {id:#x} is in use")));
                }
                self.inner.delete_locked(&mut md, id, &g)
            }
        }
    }

    /// The parent (snapshot) of a blob, if any.
    ///
    /// # Errors
    /// ENOENT.
    pub fn parent_of(&self, id: BlobId) -> Result<Option<BlobId>> {
        let md = self.inner.md()?;
        md.blobs
            .get(&id)
            .map(|b| b.parent)
            .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))
    }

    /// The clones of a snapshot.
    ///
    /// # Errors
    /// ENOENT.
    pub fn clones_of(&self, id: BlobId) -> Result<Vec<BlobId>> {
        let md = self.inner.md()?;
        md.blobs
            .get(&id)
            .map(|b| b.clones.iter().copied().collect())
            .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))
    }

    /// Check that the in-memory allocation state is exact: every cluster and md page is owned
    /// by exactly one blob (or the metadata region) or free, the blob-id mask matches the
    /// roots, and counts add up. Meant for a quiescent store (tests, `blobcli recover`).
    ///
    /// # Errors
    /// EILSEQ describing the first inconsistency; EBUSY if I/O holds a blob.
    pub fn check(&self) -> Result<CheckReport> {
        let md = self.inner.md()?;
        let total = md.total_clusters as usize;
        let mut owner: Vec<Option<BlobId>> = vec![None; total];
        let mut pages = Bits::new(md.pages.len());
        let mut owned = 0u64;
        for (&id, b) in &md.blobs {
            let g = b
                .shared
                .try_read()
                .ok_or_else(|| Error::Busy(format!("blob {id:#x} is busy")))?;
            let clusters = g
                .map
                .iter()
                .map(|a| a.load(Ordering::Acquire))
                .chain(b.pending_release.iter().copied());
            for c in clusters.filter(|&c| c != 0) {
                let c = c as usize;
                if c >= total || (c as u64) < self.inner.geo.md_clusters {
                    return Err(eilseq(format!("blob {id:#x} owns bad cluster {c}")));
                }
                if let Some(o) = owner[c] {
                    return Err(eilseq(format!("cluster {c} owned by {o:#x} and {id:#x}")));
                }
                owner[c] = Some(id);
                owned += 1;
                if !md.clusters.get(c) {
                    return Err(eilseq(format!("cluster {c} of {id:#x} is marked free")));
                }
            }
            for &p in b.chain.iter().chain(b.ep_pages.iter().filter(|&&p| p != 0)) {
                if pages.get(p as usize) {
                    return Err(eilseq(format!("md page {p} used twice")));
                }
                pages.set(p as usize);
                if !md.pages.get(p as usize) {
                    return Err(eilseq(format!("md page {p} of {id:#x} is marked free")));
                }
            }
            if !md.blobids.get(b.chain[0] as usize) {
                return Err(eilseq(format!("blob id {id:#x} not in the id mask")));
            }
        }
        let md_clusters = self.inner.geo.md_clusters;
        if md.clusters.count_ones() as u64 != owned + md_clusters {
            return Err(eilseq(format!(
                "{} clusters marked used, {owned} owned + {md_clusters} metadata",
                md.clusters.count_ones()
            )));
        }
        if md.pages.count_ones() != pages.count_ones() {
            return Err(eilseq(format!(
                "{} md pages marked used, {} reachable",
                md.pages.count_ones(),
                pages.count_ones()
            )));
        }
        if md.blobids.count_ones() != md.blobs.len() {
            return Err(eilseq("blob id mask differs from the blobs"));
        }
        Ok(CheckReport {
            blobs: md.blobs.len(),
            owned_clusters: owned,
            md_clusters,
            free_clusters: md.total_clusters - md.clusters.count_ones() as u64,
            used_md_pages: pages.count_ones() as u64,
        })
    }
}

fn check_xattr(name: &str, value: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > usize::from(u16::MAX) || value.len() > usize::from(u16::MAX)
    {
        return Err(einval("xattr name or value length out of range"));
    }
    if 9 + name.len() + value.len() > DESC_SPACE {
        return Err(Error::NoMem(format!(
            "xattr {name} ({} bytes) does not fit a metadata page",
            value.len()
        )));
    }
    Ok(())
}
