//! The Blobstore: one owner of metadata (a mutex around [`Md`]), lock-free cluster maps for
//! the data path, and the commit protocol with barriers.
//!
//! Lock order: a blob's gate (child before parent), then the metadata mutex. The data path
//! takes only its blob's gate for reading (and its parents' gates when it reads through a
//! clone); it takes the metadata mutex only to allocate a cluster on first write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arc_swap::ArcSwap;

use crate::bits::Bits;
use crate::dev::Device;
use crate::error::{eilseq, einval, Error, Result};
use crate::format::{
    blobid_to_page, crc_ok, decode_mask, encode_mask, extent_table_encode, page_to_blobid,
    rle_encode, Descriptor, MdPage, SuperBlock, DATA_RO_READ_ONLY, DESC_SPACE, EXTENT_PER_PAGE,
    FLAG_EXTENT_TABLE, FLAG_INTERNAL_XATTR, FLAG_THIN_PROV, INVALID_FLAGS_KNOWN, INVALID_MD_PAGE,
    MASK_BLOBIDS, MASK_CLUSTERS, MASK_PAGES, MD_RO_CLEAR_MASK, NO_SUPER_BLOB, PAGE_SIZE, VERSION,
};

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

/// What the data path sees of a blob. Published through an [`ArcSwap`]: the fields are
/// replaced only by a writer holding every shard of the blob's freeze gate; the cluster map's
/// entries are atomics that the first-write path fills in place.
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
/// threads do not share a contended cache line; snapshot, resize, inflate and the like take
/// every shard for writing, which waits for I/O in flight and holds new I/O back.
const GATE_SHARDS: usize = 16;

#[repr(align(64))]
#[derive(Debug, Default)]
struct GateShard(RwLock<()>);

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
    freeze: Box<[GateShard]>,
    state: ArcSwap<MapState>,
    data_ro: AtomicBool,
    md_ro: AtomicBool,
    busy: AtomicBool,
}

/// Shared access to a blob's map: I/O may run.
struct ReadGate<'a> {
    _freeze: RwLockReadGuard<'a, ()>,
    state: arc_swap::Guard<Arc<MapState>>,
}

impl std::ops::Deref for ReadGate<'_> {
    type Target = MapState;
    fn deref(&self) -> &MapState {
        &self.state
    }
}

/// Exclusive access to a blob's map: no I/O runs.
struct WriteGate<'a> {
    shared: &'a Shared,
    _freeze: Vec<RwLockWriteGuard<'a, ()>>,
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
        self.shared.state.store(next.clone());
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
        Arc::new(Shared {
            id,
            freeze: (0..GATE_SHARDS).map(|_| GateShard::default()).collect(),
            state: ArcSwap::from_pointee(MapState {
                map: map.into_iter().map(AtomicU32::new).collect(),
                num_clusters,
                parent,
                thin,
            }),
            data_ro: AtomicBool::new(false),
            md_ro: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        })
    }
    fn read(&self) -> ReadGate<'_> {
        let f = self.freeze[my_shard()]
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner());
        ReadGate {
            _freeze: f,
            state: self.state.load(),
        }
    }
    fn try_read(&self) -> Option<ReadGate<'_>> {
        let f = self.freeze[my_shard()].0.try_read().ok()?;
        Some(ReadGate {
            _freeze: f,
            state: self.state.load(),
        })
    }
    fn write(&self) -> WriteGate<'_> {
        let f = self
            .freeze
            .iter()
            .map(|s| s.0.write().unwrap_or_else(|e| e.into_inner()))
            .collect();
        WriteGate {
            shared: self,
            _freeze: f,
            cur: self.state.load_full(),
        }
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

enum ExtDesc {
    Table {
        num_clusters: u64,
        entries: Vec<(u32, u32)>,
    },
    Rle(Vec<(u32, u32)>),
}

/// Pack descriptors into chain pages. Xattrs never span pages; extent descriptors split.
fn build_chain(head: Vec<Descriptor>, ext: ExtDesc) -> Result<Vec<Vec<Descriptor>>> {
    let mut pages: Vec<Vec<Descriptor>> = vec![Vec::new()];
    let mut used = 0usize;
    for d in head {
        let l = d.encoded_len();
        if l > DESC_SPACE {
            return Err(Error::NoMem("xattr larger than a metadata page".into()));
        }
        if used + l > DESC_SPACE {
            pages.push(Vec::new());
            used = 0;
        }
        used += l;
        if let Some(p) = pages.last_mut() {
            p.push(d);
        }
    }
    let (hdr, mut rest, table) = match ext {
        ExtDesc::Table {
            num_clusters,
            entries,
        } => (13usize, entries, Some(num_clusters)),
        ExtDesc::Rle(runs) => {
            if runs.is_empty() {
                return Ok(pages);
            }
            (5usize, runs, None)
        }
    };
    loop {
        if used + hdr + if rest.is_empty() { 0 } else { 8 } > DESC_SPACE {
            pages.push(Vec::new());
            used = 0;
        }
        let n = rest.len().min((DESC_SPACE - used - hdr) / 8);
        let chunk: Vec<(u32, u32)> = rest.drain(..n).collect();
        let d = match table {
            Some(num_clusters) => Descriptor::ExtentTable {
                num_clusters,
                pages: chunk,
            },
            None => Descriptor::ExtentRle(chunk),
        };
        used += d.encoded_len();
        if let Some(p) = pages.last_mut() {
            p.push(d);
        }
        if rest.is_empty() {
            break;
        }
    }
    Ok(pages)
}

/// A blob as read from disk.
struct Parsed {
    invalid: u64,
    data_ro: u64,
    md_ro: u64,
    xattrs: Xattrs,
    internal: Xattrs,
    use_et: bool,
    map: Vec<u32>,
    chain: Vec<u32>,
    ep_pages: Vec<u32>,
    ep_disk: Vec<Vec<u32>>,
}

fn parse_blob(
    id: BlobId,
    root: &[u8],
    read_page: &mut dyn FnMut(u32) -> Result<Vec<u8>>,
    md_len: u32,
    total_clusters: u64,
    strict: bool,
) -> Result<Parsed> {
    let root_idx = blobid_to_page(id).ok_or_else(|| eilseq("bad blob id"))?;
    let mut chain = vec![root_idx];
    let mut page = MdPage::decode(root)?;
    if !crc_ok(root) || page.id != id || page.sequence_num != 0 {
        return Err(eilseq(format!("blob {id:#x}: root page invalid")));
    }
    let mut descs = std::mem::take(&mut page.descriptors);
    let mut next = page.next;
    while next != INVALID_MD_PAGE {
        if next >= md_len || chain.len() > md_len as usize || chain.contains(&next) {
            return Err(eilseq(format!("blob {id:#x}: bad chain pointer {next}")));
        }
        let b = read_page(next)?;
        let mut p = MdPage::decode(&b)?;
        if !crc_ok(&b) || p.id != id || p.sequence_num as usize != chain.len() {
            return Err(eilseq(format!("blob {id:#x}: chain page {next} invalid")));
        }
        chain.push(next);
        descs.append(&mut p.descriptors);
        next = p.next;
    }
    let mut out = Parsed {
        invalid: 0,
        data_ro: 0,
        md_ro: 0,
        xattrs: Vec::new(),
        internal: Vec::new(),
        use_et: false,
        map: Vec::new(),
        chain,
        ep_pages: Vec::new(),
        ep_disk: Vec::new(),
    };
    let mut et_num: Option<u64> = None;
    let mut et_pages: Vec<u32> = Vec::new();
    let mut have_flags = false;
    for d in descs {
        match d {
            Descriptor::Flags {
                invalid,
                data_ro,
                md_ro,
            } => {
                have_flags = true;
                out.invalid = invalid;
                out.data_ro = data_ro;
                out.md_ro = md_ro;
            }
            Descriptor::Xattr {
                internal,
                name,
                value,
            } => {
                if internal {
                    set_in(&mut out.internal, &name, &value);
                } else {
                    set_in(&mut out.xattrs, &name, &value);
                }
            }
            Descriptor::ExtentRle(runs) => {
                for (c, l) in runs {
                    if out.map.len() as u64 + u64::from(l) > 1 << 32 {
                        return Err(eilseq(format!("blob {id:#x}: extent run too long")));
                    }
                    for i in 0..l {
                        out.map.push(if c == 0 { 0 } else { c.wrapping_add(i) });
                    }
                }
            }
            Descriptor::ExtentTable {
                num_clusters,
                pages,
            } => {
                out.use_et = true;
                et_num = Some(num_clusters);
                for (p, n) in pages {
                    if p == 0 {
                        et_pages.extend(std::iter::repeat_n(0, n as usize));
                    } else {
                        et_pages.push(p);
                    }
                }
            }
            Descriptor::ExtentPage { .. } => {
                return Err(eilseq(format!("blob {id:#x}: extent page in a chain")));
            }
            Descriptor::Unknown { kind } => {
                if strict {
                    return Err(eilseq(format!(
                        "blob {id:#x}: unknown descriptor type {kind}"
                    )));
                }
            }
        }
    }
    if !have_flags {
        return Err(eilseq(format!("blob {id:#x}: no flags descriptor")));
    }
    if let Some(n) = et_num {
        if !out.map.is_empty() {
            return Err(eilseq(format!("blob {id:#x}: both RLE and extent table")));
        }
        let n = usize::try_from(n).map_err(|_| eilseq("blob too large"))?;
        if n.div_ceil(EXTENT_PER_PAGE) != et_pages.len() && !(n == 0 && et_pages.is_empty()) {
            // SPDK trims trailing unallocated runs in some versions; accept shorter tables.
            if et_pages.len() > n.div_ceil(EXTENT_PER_PAGE) {
                return Err(eilseq(format!(
                    "blob {id:#x}: extent table longer than blob"
                )));
            }
        }
        out.map = vec![0; n];
        et_pages.resize(n.div_ceil(EXTENT_PER_PAGE), 0);
        for (e, &p) in et_pages.iter().enumerate() {
            if p == 0 {
                out.ep_disk.push(Vec::new());
                continue;
            }
            if p >= md_len {
                return Err(eilseq(format!(
                    "blob {id:#x}: extent page {p} out of range"
                )));
            }
            let b = read_page(p)?;
            let pg = MdPage::decode(&b)?;
            let ok = crc_ok(&b) && pg.id == id && pg.sequence_num == 0;
            let body = match (ok, pg.descriptors.first()) {
                (true, Some(Descriptor::ExtentPage { start, clusters }))
                    if *start as usize == e * EXTENT_PER_PAGE =>
                {
                    clusters.clone()
                }
                _ => return Err(eilseq(format!("blob {id:#x}: extent page {p} invalid"))),
            };
            for (i, &c) in body.iter().enumerate() {
                if let Some(slot) = out.map.get_mut(e * EXTENT_PER_PAGE + i) {
                    *slot = c;
                }
            }
            out.ep_disk.push(body);
        }
        out.ep_pages = et_pages;
    }
    if let Some(&bad) = out
        .map
        .iter()
        .find(|&&c| c != 0 && u64::from(c) >= total_clusters)
    {
        return Err(eilseq(format!("blob {id:#x}: cluster {bad} out of range")));
    }
    Ok(out)
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

impl Inner {
    fn md(&self) -> Result<MutexGuard<'_, Md>> {
        let g = lock_md(&self.md);
        if g.unloaded {
            return Err(Error::Unloaded);
        }
        Ok(g)
    }

    fn write_page(&self, page: u32, buf: &[u8]) -> Result<()> {
        self.dev.write_at(buf, self.geo.page_off(page))?;
        Ok(())
    }

    fn read_page(&self, page: u32) -> Result<Vec<u8>> {
        let mut b = vec![0u8; PAGE_SIZE];
        self.dev.read_at(&mut b, self.geo.page_off(page))?;
        Ok(b)
    }

    fn zero_page(&self, page: u32) -> Result<()> {
        self.dev
            .write_zeroes(self.geo.page_off(page), self.geo.md_page_size)?;
        Ok(())
    }

    /// Before the first metadata change after a load: write clean = 0 and make it durable, so a
    /// crash after any later change never meets stale allocation masks flagged clean.
    fn mark_dirty(&self, md: &mut Md) -> Result<()> {
        if md.marked_dirty {
            return Ok(());
        }
        md.sb.clean = false;
        self.dev.write_at(&md.sb.encode(), 0)?;
        self.dev.flush()?;
        md.marked_dirty = true;
        Ok(())
    }

    /// Claim the lowest free md page at or after `from`. Roots may take page 0; extent and
    /// chain pages start at 1, since page index 0 in an extent table means "no page".
    fn claim_page(pages: &mut Bits, from: usize) -> Result<u32> {
        let p = pages
            .first_clear(from)
            .ok_or_else(|| Error::NoSpace("no free metadata page".into()))?;
        pages.set(p);
        Ok(p as u32)
    }

    fn claim_cluster(md: &mut Md) -> Result<u32> {
        let c = md
            .clusters
            .first_clear(0)
            .ok_or_else(|| Error::NoSpace("no free cluster".into()))?;
        md.clusters.set(c);
        Ok(c as u32)
    }

    fn release_cluster(&self, md: &mut Md, c: u32, method: ClearMethod) {
        let method = match method {
            ClearMethod::Default => md.default_clear,
            m => m,
        };
        let off = u64::from(c) * self.geo.cluster_size;
        // Best effort: a released cluster is unreachable from committed metadata already.
        let _ = match method {
            ClearMethod::None => Ok(()),
            ClearMethod::WriteZeroes => self.dev.write_zeroes(off, self.geo.cluster_size),
            ClearMethod::Default | ClearMethod::Unmap => self.dev.unmap(off, self.geo.cluster_size),
        };
        md.clusters.clear(c as usize);
    }

    fn ep_page_bytes(id: BlobId, e: usize, entries: &[u32]) -> Vec<u8> {
        MdPage {
            id,
            sequence_num: 0,
            descriptors: vec![Descriptor::ExtentPage {
                start: (e * EXTENT_PER_PAGE) as u32,
                clusters: entries.to_vec(),
            }],
            next: INVALID_MD_PAGE,
        }
        .encode()
    }

    /// Write one blob's metadata: changed extent pages and chain pages 1.. to fresh pages,
    /// barrier, root page in place (the commit point), barrier; then release what the old
    /// version used.
    fn persist(&self, md: &mut Md, id: BlobId, ms: &MapState) -> Result<()> {
        self.mark_dirty(md)?;
        let b = md
            .blobs
            .get(&id)
            .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))?;
        let n = ms.num_clusters as usize;
        let map = load_map(ms, n);
        let mut fresh: Vec<u32> = Vec::new();
        let mut release_pages: Vec<u32> = Vec::new();
        let mut writes: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut new_ep_pages = Vec::new();
        let mut new_ep_disk = Vec::new();
        let use_et = b.use_et;
        let old_ep_pages = b.ep_pages.clone();
        let old_ep_disk = b.ep_disk.clone();
        let old_chain = b.chain.clone();
        let mut invalid = b.invalid & !(FLAG_INTERNAL_XATTR | FLAG_EXTENT_TABLE | FLAG_THIN_PROV);
        if !b.internal.is_empty() {
            invalid |= FLAG_INTERNAL_XATTR;
        }
        if use_et {
            invalid |= FLAG_EXTENT_TABLE;
        }
        if ms.thin {
            invalid |= FLAG_THIN_PROV;
        }
        let mut head = vec![Descriptor::Flags {
            invalid,
            data_ro: b.data_ro,
            md_ro: b.md_ro,
        }];
        for (name, value) in &b.xattrs {
            head.push(Descriptor::Xattr {
                internal: false,
                name: name.clone(),
                value: value.clone(),
            });
        }
        for (name, value) in &b.internal {
            head.push(Descriptor::Xattr {
                internal: true,
                name: name.clone(),
                value: value.clone(),
            });
        }
        let data_ro_flags = b.data_ro;
        let md_ro_flags = b.md_ro;
        let result = (|| -> Result<Vec<u32>> {
            let ext = if use_et {
                for e in 0..n.div_ceil(EXTENT_PER_PAGE) {
                    let slice = &map[e * EXTENT_PER_PAGE..n.min((e + 1) * EXTENT_PER_PAGE)];
                    let old = old_ep_pages.get(e).copied().unwrap_or(0);
                    if slice.iter().all(|&c| c == 0) {
                        new_ep_pages.push(0);
                        new_ep_disk.push(Vec::new());
                        if old != 0 {
                            release_pages.push(old);
                        }
                        continue;
                    }
                    if old != 0 && old_ep_disk.get(e).is_some_and(|d| d.as_slice() == slice) {
                        new_ep_pages.push(old);
                        new_ep_disk.push(slice.to_vec());
                        continue;
                    }
                    let p = Self::claim_page(&mut md.pages, 1)?;
                    fresh.push(p);
                    writes.push((p, Self::ep_page_bytes(id, e, slice)));
                    if old != 0 {
                        release_pages.push(old);
                    }
                    new_ep_pages.push(p);
                    new_ep_disk.push(slice.to_vec());
                }
                for &p in old_ep_pages.iter().skip(n.div_ceil(EXTENT_PER_PAGE)) {
                    if p != 0 {
                        release_pages.push(p);
                    }
                }
                ExtDesc::Table {
                    num_clusters: n as u64,
                    entries: extent_table_encode(&new_ep_pages),
                }
            } else {
                ExtDesc::Rle(rle_encode(&map))
            };
            let pages = build_chain(head, ext)?;
            let mut chain = vec![old_chain[0]];
            for _ in 1..pages.len() {
                let p = Self::claim_page(&mut md.pages, 1)?;
                fresh.push(p);
                chain.push(p);
            }
            let mut root = Vec::new();
            for (i, descriptors) in pages.into_iter().enumerate() {
                let bytes = MdPage {
                    id,
                    sequence_num: i as u32,
                    descriptors,
                    next: chain.get(i + 1).copied().unwrap_or(INVALID_MD_PAGE),
                }
                .encode();
                if i == 0 {
                    root = bytes;
                } else {
                    writes.push((chain[i], bytes));
                }
            }
            for (p, bytes) in &writes {
                self.write_page(*p, bytes)?;
            }
            if !writes.is_empty() {
                self.dev.flush()?;
            }
            self.write_page(chain[0], &root)?;
            self.dev.flush()?;
            Ok(chain)
        })();
        let chain = match result {
            Ok(c) => c,
            Err(e) => {
                for p in fresh {
                    md.pages.clear(p as usize);
                }
                return Err(e);
            }
        };
        // Committed. Release what the old version used.
        release_pages.extend(old_chain.iter().skip(1));
        for p in release_pages {
            let _ = self.zero_page(p);
            md.pages.clear(p as usize);
        }
        let mut to_release = Vec::new();
        for slot in ms.map.iter().skip(n) {
            let c = slot.swap(0, Ordering::AcqRel);
            if c != 0 {
                to_release.push(c);
            }
        }
        let method = ClearMethod::from_bits(md_ro_flags);
        if let Some(b) = md.blobs.get_mut(&id) {
            to_release.append(&mut b.pending_release);
            b.chain = chain;
            b.ep_pages = new_ep_pages;
            b.ep_disk = new_ep_disk;
            b.dirty = false;
        }
        for c in to_release {
            self.release_cluster(md, c, method);
        }
        if data_ro_flags != 0 {
            ms_set_ro(md, id, true);
        }
        if md_ro_flags & !MD_RO_CLEAR_MASK != 0 {
            if let Some(b) = md.blobs.get(&id) {
                b.shared.md_ro.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Record cluster `idx` of blob `id` after its map entry was set: rewrite its extent page in
    /// place if there is one (one atomic page write), else a full persist.
    fn persist_alloc(&self, md: &mut Md, id: BlobId, ms: &MapState, idx: usize) -> Result<()> {
        self.mark_dirty(md)?;
        let b = md
            .blobs
            .get_mut(&id)
            .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))?;
        let e = idx / EXTENT_PER_PAGE;
        if b.use_et {
            if let Some(&p) = b.ep_pages.get(e).filter(|&&p| p != 0) {
                let n = ms.num_clusters as usize;
                let entries: Vec<u32> =
                    load_map(ms, n)[e * EXTENT_PER_PAGE..n.min((e + 1) * EXTENT_PER_PAGE)].to_vec();
                self.write_page(p, &Self::ep_page_bytes(id, e, &entries))?;
                self.dev.flush()?;
                b.ep_disk[e] = entries;
                return Ok(());
            }
        }
        b.dirty = true;
        self.persist(md, id, ms)
    }

    /// Read `buf.len()` bytes at `off` within cluster `idx`, through parents.
    fn read_cluster(&self, ms: &MapState, idx: usize, off: u64, buf: &mut [u8]) -> Result<()> {
        let c = ms.map.get(idx).map_or(0, |a| a.load(Ordering::Acquire));
        if c != 0 {
            self.dev
                .read_at(buf, u64::from(c) * self.geo.cluster_size + off)?;
            return Ok(());
        }
        if let Some(p) = &ms.parent {
            let pg = p.read();
            if (idx as u64) < pg.num_clusters {
                return self.read_cluster(&pg, idx, off, buf);
            }
        }
        buf.fill(0);
        Ok(())
    }

    fn ancestor_has(ms: &MapState, idx: usize) -> bool {
        let mut cur = ms.parent.clone();
        while let Some(p) = cur {
            let g = p.read();
            if (idx as u64) >= g.num_clusters {
                return false;
            }
            if g.map
                .get(idx)
                .is_some_and(|a| a.load(Ordering::Acquire) != 0)
            {
                return true;
            }
            cur = g.parent.clone();
        }
        false
    }

    /// First write to an unallocated cluster: claim a cluster, write the data (with the
    /// parent's contents or zeroes around it), barrier, then record it in the metadata.
    fn alloc_and_write(
        &self,
        shared: &Shared,
        ms: &MapState,
        idx: usize,
        off: u64,
        data: &[u8],
    ) -> Result<()> {
        let cs = self.geo.cluster_size;
        let whole = off == 0 && data.len() as u64 == cs;
        let cow = if !whole && Self::ancestor_has(ms, idx) {
            let mut b = vec![0u8; cs as usize];
            self.read_cluster(ms, idx, 0, &mut b)?;
            b[off as usize..off as usize + data.len()].copy_from_slice(data);
            Some(b)
        } else {
            None
        };
        let c = {
            let mut md = self.md()?;
            let cur = ms.map[idx].load(Ordering::Acquire);
            if cur != 0 {
                drop(md);
                self.dev.write_at(data, u64::from(cur) * cs + off)?;
                return Ok(());
            }
            Self::claim_cluster(&mut md)?
        };
        // The data goes to the claimed cluster without the metadata lock: nothing on disk
        // refers to it yet, so a crash here leaves it free.
        let base = u64::from(c) * cs;
        let written = (|| -> Result<()> {
            match &cow {
                Some(b) => self.dev.write_at(b, base)?,
                None => {
                    if off > 0 {
                        self.dev.write_zeroes(base, off)?;
                    }
                    self.dev.write_at(data, base + off)?;
                    let end = off + data.len() as u64;
                    if end < cs {
                        self.dev.write_zeroes(base + end, cs - end)?;
                    }
                }
            }
            self.dev.flush()?;
            Ok(())
        })();
        let mut md = lock_md(&self.md);
        if let Err(e) = written {
            md.clusters.clear(c as usize);
            return Err(e);
        }
        let cur = ms.map[idx].load(Ordering::Acquire);
        if cur != 0 {
            // Another writer allocated this cluster first: use theirs.
            md.clusters.clear(c as usize);
            drop(md);
            self.dev.write_at(data, u64::from(cur) * cs + off)?;
            return Ok(());
        }
        ms.map[idx].store(c, Ordering::Release);
        let res = self.persist_alloc(&mut md, shared.id, ms, idx);
        if res.is_err() {
            ms.map[idx].store(0, Ordering::Release);
            md.clusters.clear(c as usize);
        }
        res
    }

    fn verify_on_disk(&self, b: &BlobMd) -> Result<()> {
        for &p in b.chain.iter().chain(b.ep_pages.iter().filter(|&&p| p != 0)) {
            let bytes = self.read_page(p)?;
            if !crc_ok(&bytes) {
                return Err(einval(format!(
                    "blob {:#x}: metadata page {p} CRC mismatch",
                    b.shared.id
                )));
            }
        }
        Ok(())
    }

    /// Delete a blob that nobody has open. Zero its root first and make that durable (the
    /// commit point), then release chain pages, extent pages and clusters.
    fn delete_locked(&self, md: &mut Md, id: BlobId, ms: &MapState) -> Result<()> {
        self.mark_dirty(md)?;
        let (root, others, method, parent) = {
            let b = md
                .blobs
                .get(&id)
                .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))?;
            let others: Vec<u32> = b
                .chain
                .iter()
                .skip(1)
                .chain(b.ep_pages.iter().filter(|&&p| p != 0))
                .copied()
                .collect();
            (b.chain[0], others, b.clear_method(), b.parent)
        };
        self.zero_page(root)?;
        self.dev.flush()?;
        let b = md.blobs.remove(&id);
        for p in others {
            let _ = self.zero_page(p);
            md.pages.clear(p as usize);
        }
        md.pages.clear(root as usize);
        md.blobids.clear(root as usize);
        let mut clusters: Vec<u32> = ms
            .map
            .iter()
            .map(|a| a.swap(0, Ordering::AcqRel))
            .filter(|&c| c != 0)
            .collect();
        if let Some(mut b) = b {
            clusters.append(&mut b.pending_release);
        }
        for c in clusters {
            self.release_cluster(md, c, method);
        }
        if let Some(p) = parent.and_then(|p| md.blobs.get_mut(&p)) {
            p.clones.remove(&id);
        }
        if md.sb.super_blob == id {
            md.sb.super_blob = NO_SUPER_BLOB;
            self.dev.write_at(&md.sb.encode(), 0)?;
            self.dev.flush()?;
        }
        Ok(())
    }
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
    /// Create a new store on `dev`: lay out the super block, masks and metadata region, clear
    /// the data area, and write the super block (clean = 0) durably.
    ///
    /// # Errors
    /// EINVAL for a bad cluster or page size, ENOSPC if the device is too small, EIO.
    pub fn init(dev: Arc<dyn Device>, opts: &InitOptions) -> Result<Self> {
        let block = u64::from(dev.block_size());
        if block == 0 || !block.is_power_of_two() || block > 4096 {
            return Err(einval(format!("unsupported block size {block}")));
        }
        let mut pgsz = 4096u64.max(block).max(u64::from(opts.md_page_size));
        if opts.md_page_size != 0 && u64::from(opts.md_page_size) % 4096 != 0 {
            return Err(einval("md_page_size must be a multiple of 4096"));
        }
        pgsz = pgsz.next_multiple_of(4096);
        let cs = u64::from(opts.cluster_size);
        if cs == 0 || cs < pgsz || cs % pgsz != 0 {
            return Err(einval(format!(
                "cluster size {cs} must be a non-zero multiple of the md page size {pgsz}"
            )));
        }
        let size = dev.size();
        let total = size / cs;
        let md_len = match opts.num_md_pages {
            Some(n) => n,
            None => u32::try_from(total).map_err(|_| einval("too many clusters"))?,
        };
        let mask_pages = |bits: u64| div_ceil(5 + div_ceil(bits, 8), pgsz) as u32;
        let page_mask_len = mask_pages(u64::from(md_len));
        let cluster_mask_len = mask_pages(total);
        let cluster_region = cluster_mask_len.max(mask_pages(u64::from(md_len)));
        let blobid_mask_len = mask_pages(u64::from(md_len));
        let page_mask_start = 1u32;
        let cluster_mask_start = page_mask_start + page_mask_len;
        let blobid_mask_start = cluster_mask_start + cluster_region;
        let md_start = blobid_mask_start + blobid_mask_len;
        let pages_per_cluster = cs / pgsz;
        let md_clusters = div_ceil(u64::from(md_start) + u64::from(md_len), pages_per_cluster);
        if md_clusters >= total {
            return Err(Error::NoSpace(format!(
                "device of {size} bytes too small for {md_clusters} metadata clusters"
            )));
        }
        let sb = SuperBlock {
            version: VERSION,
            clean: false,
            super_blob: NO_SUPER_BLOB,
            cluster_size: opts.cluster_size,
            used_page_mask_start: page_mask_start,
            used_page_mask_len: page_mask_len,
            used_cluster_mask_start: cluster_mask_start,
            used_cluster_mask_len: cluster_mask_len,
            md_start,
            md_len,
            bstype: opts.bstype,
            used_blobid_mask_start: blobid_mask_start,
            used_blobid_mask_len: blobid_mask_len,
            size,
            io_unit_size: block as u32,
            md_page_size: pgsz as u32,
        };
        dev.write_zeroes(0, (u64::from(md_start) + u64::from(md_len)) * pgsz)?;
        let data_start = md_clusters * cs;
        let data_len = total * cs - data_start;
        match opts.clear_method {
            ClearMethod::Default | ClearMethod::Unmap => dev.unmap(data_start, data_len)?,
            ClearMethod::WriteZeroes => dev.write_zeroes(data_start, data_len)?,
            ClearMethod::None => {}
        }
        dev.flush()?;
        dev.write_at(&sb.encode(), 0)?;
        dev.flush()?;
        let mut clusters = Bits::new(total as usize);
        for c in 0..md_clusters {
            clusters.set(c as usize);
        }
        let geo = Geo {
            cluster_size: cs,
            io_unit: block,
            md_page_size: pgsz,
            md_start: u64::from(md_start),
            md_clusters,
        };
        let md = Md {
            sb,
            marked_dirty: true,
            unloaded: false,
            total_clusters: total,
            pages: Bits::new(md_len as usize),
            clusters,
            blobids: Bits::new(md_len as usize),
            blobs: BTreeMap::new(),
            default_clear: ClearMethod::Unmap,
        };
        Ok(Blobstore {
            inner: Arc::new(Inner {
                dev,
                geo,
                md: Mutex::new(md),
            }),
        })
    }

    /// Load a store. After a clean unload the masks are read; otherwise (or with
    /// `force_recover`, or a pre-v3 store) they are rebuilt by scanning every metadata page.
    /// Every blob is read in both cases, and interrupted snapshot creation or removal is
    /// finished or rolled back.
    ///
    /// # Errors
    /// EILSEQ for a bad super block or metadata, ENXIO for a type mismatch, EIO.
    pub fn load(dev: Arc<dyn Device>, opts: &LoadOptions) -> Result<Self> {
        let sb = read_super_block(dev.as_ref())?;
        if opts.bstype != [0; 16] && opts.bstype != sb.bstype {
            return Err(Error::TypeMismatch);
        }
        let pgsz = if sb.md_page_size == 0 {
            4096
        } else {
            u64::from(sb.md_page_size)
        };
        let io_unit = if sb.io_unit_size == 0 {
            4096
        } else {
            u64::from(sb.io_unit_size)
        };
        let cs = u64::from(sb.cluster_size);
        if pgsz % 4096 != 0 || cs == 0 || cs % pgsz != 0 || cs % io_unit != 0 {
            return Err(eilseq("bad cluster, page or io_unit size"));
        }
        let dev_size = dev.size();
        if sb.size > dev_size {
            return Err(eilseq(format!(
                "store size {} exceeds the device ({dev_size})",
                sb.size
            )));
        }
        let size = if sb.size == 0 { dev_size } else { sb.size };
        let total = size / cs;
        let md_clusters = div_ceil(u64::from(sb.md_start) + u64::from(sb.md_len), cs / pgsz);
        if md_clusters > total {
            return Err(eilseq("metadata region beyond the store"));
        }
        let geo = Geo {
            cluster_size: cs,
            io_unit,
            md_page_size: pgsz,
            md_start: u64::from(sb.md_start),
            md_clusters,
        };
        let recover = !sb.clean || sb.used_blobid_mask_len == 0 || opts.force_recover;
        let inner = Inner {
            dev: dev.clone(),
            geo,
            md: Mutex::new(Md {
                marked_dirty: !sb.clean,
                unloaded: false,
                total_clusters: total,
                pages: Bits::new(sb.md_len as usize),
                clusters: Bits::new(total as usize),
                blobids: Bits::new(sb.md_len as usize),
                blobs: BTreeMap::new(),
                default_clear: ClearMethod::Unmap,
                sb: sb.clone(),
            }),
        };
        let mut parsed: Vec<(BlobId, Parsed)> = Vec::new();
        let mut read_page = |p: u32| inner.read_page(p);
        if recover {
            // Scan the metadata region in large reads; collect valid roots.
            let chunk_pages = (4 << 20) / pgsz as usize;
            let mut buf = Vec::new();
            let mut roots: Vec<(u32, Vec<u8>)> = Vec::new();
            let mut p = 0u32;
            while p < sb.md_len {
                let n = chunk_pages.min((sb.md_len - p) as usize);
                buf.resize(n * pgsz as usize, 0);
                dev.read_at(&mut buf, geo.page_off(p))?;
                for i in 0..n {
                    let pg = &buf[i * pgsz as usize..i * pgsz as usize + PAGE_SIZE];
                    let idx = p + i as u32;
                    if crc_ok(pg)
                        && pg[8..12] == [0, 0, 0, 0]
                        && pg[0..8] == page_to_blobid(idx).to_le_bytes()
                    {
                        roots.push((idx, pg.to_vec()));
                    }
                }
                p += n as u32;
            }
            for (idx, bytes) in roots {
                let id = page_to_blobid(idx);
                match parse_blob(id, &bytes, &mut read_page, sb.md_len, total, true) {
                    Ok(pb) => parsed.push((id, pb)),
                    Err(Error::Format(m)) if m.contains("unknown descriptor") => {
                        return Err(Error::Format(m))
                    }
                    // Our commit order never leaves a valid root over a broken chain, so this
                    // is corruption (or a store SPDK left mid-delete). Refuse, unless asked to
                    // recover: then the root is not a valid blob and its pages and clusters
                    // stay free.
                    Err(Error::Format(m)) if !opts.force_recover => {
                        return Err(Error::Format(format!(
                            "{m} (load with force_recover, e.g. `blobcli DEV recover`, to drop it)"
                        )))
                    }
                    Err(Error::Format(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        } else {
            let mut md = lock_md(&inner.md);
            let read_mask = |start: u32, len: u32, kind: u8| -> Result<Vec<bool>> {
                let mut b = vec![0u8; (u64::from(len) * pgsz) as usize];
                dev.read_at(&mut b, u64::from(start) * pgsz)?;
                decode_mask(kind, &b)
            };
            let pm = read_mask(sb.used_page_mask_start, sb.used_page_mask_len, MASK_PAGES)?;
            let cm = read_mask(
                sb.used_cluster_mask_start,
                sb.used_cluster_mask_len,
                MASK_CLUSTERS,
            )?;
            let bm = read_mask(
                sb.used_blobid_mask_start,
                sb.used_blobid_mask_len,
                MASK_BLOBIDS,
            )?;
            if pm.len() != sb.md_len as usize || bm.len() != sb.md_len as usize {
                return Err(eilseq("mask length differs from md_len"));
            }
            if cm.len() as u64 > total {
                return Err(eilseq("cluster mask longer than the store"));
            }
            md.pages = Bits::from_bools(&pm);
            md.clusters = Bits::from_bools(&cm);
            md.clusters.grow(total as usize);
            md.blobids = Bits::from_bools(&bm);
            let ids: Vec<u32> = (0..sb.md_len).filter(|&i| bm[i as usize]).collect();
            drop(md);
            for idx in ids {
                let id = page_to_blobid(idx);
                let bytes = read_page(idx)?;
                parsed.push((
                    id,
                    parse_blob(id, &bytes, &mut read_page, sb.md_len, total, false)?,
                ));
            }
        }
        {
            let mut md = lock_md(&inner.md);
            if recover {
                for c in 0..md_clusters {
                    md.clusters.set(c as usize);
                }
            }
            for (id, pb) in parsed {
                if recover {
                    for &p in pb
                        .chain
                        .iter()
                        .chain(pb.ep_pages.iter().filter(|&&p| p != 0))
                    {
                        md.pages.set(p as usize);
                    }
                    md.blobids.set(pb.chain[0] as usize);
                    for &c in pb.map.iter().filter(|&&c| c != 0) {
                        md.clusters.set(c as usize);
                    }
                }
                let thin = pb.invalid & FLAG_THIN_PROV != 0;
                let n = pb.map.len() as u64;
                let shared = Shared::new(id, pb.map, n, thin, None);
                let unopenable = (pb.invalid & !INVALID_FLAGS_KNOWN != 0)
                    .then(|| format!("unknown invalid flags {:#x}", pb.invalid));
                let ro = pb.data_ro != 0;
                shared.data_ro.store(ro, Ordering::Release);
                shared
                    .md_ro
                    .store(ro || pb.md_ro & !MD_RO_CLEAR_MASK != 0, Ordering::Release);
                let mut b = BlobMd {
                    shared,
                    open_ref: 0,
                    invalid: pb.invalid,
                    data_ro: pb.data_ro,
                    md_ro: pb.md_ro,
                    xattrs: pb.xattrs,
                    internal: pb.internal,
                    use_et: pb.use_et,
                    chain: pb.chain,
                    ep_pages: pb.ep_pages,
                    ep_disk: pb.ep_disk,
                    dirty: false,
                    parent: None,
                    clones: BTreeSet::new(),
                    unopenable,
                    pending_release: Vec::new(),
                };
                b.parent = b.internal_id(XATTR_SNAPSHOT);
                md.blobs.insert(id, b);
            }
        }
        let bs = Blobstore {
            inner: Arc::new(inner),
        };
        bs.repair_and_link()?;
        Ok(bs)
    }

    /// Finish or roll back interrupted snapshot operations, then link clones to parents.
    fn repair_and_link(&self) -> Result<()> {
        let inner = &self.inner;
        let mut md = lock_md(&inner.md);
        let pending: Vec<(BlobId, Option<BlobId>, Option<BlobId>)> = md
            .blobs
            .iter()
            .filter_map(|(&id, b)| {
                let tmp = b.internal_id(XATTR_SNAPSHOT_IN_PROGRESS);
                let rm = b.internal_id(XATTR_SNAPSHOT_REMOVAL);
                (tmp.is_some() || rm.is_some()).then_some((id, tmp, rm))
            })
            .collect();
        for (sid, tmp, rm) in pending {
            // Snapshot creation: done once the original points at the snapshot.
            // Snapshot removal: done once the clone no longer points at the snapshot.
            let (other, done) = match (tmp, rm) {
                (Some(orig), _) => (
                    orig,
                    md.blobs.get(&orig).is_some_and(|o| o.parent == Some(sid)),
                ),
                (None, Some(clone)) => (
                    clone,
                    md.blobs.get(&clone).is_none_or(|c| c.parent != Some(sid)),
                ),
                (None, None) => continue,
            };
            let shared = match md.blobs.get(&sid) {
                Some(b) => b.shared.clone(),
                None => continue,
            };
            let sg = shared.write();
            let keep = if tmp.is_some() { done } else { !done };
            if keep {
                if let Some(b) = md.blobs.get_mut(&sid) {
                    b.internal_remove(XATTR_SNAPSHOT_IN_PROGRESS);
                    b.internal_remove(XATTR_SNAPSHOT_REMOVAL);
                    b.dirty = true;
                }
                inner.persist(&mut md, sid, &sg)?;
            } else {
                // The other blob owns the clusters both claim; drop them from the snapshot.
                if let Some(o) = md.blobs.get(&other) {
                    let og = o.shared.read();
                    for (i, slot) in sg.map.iter().enumerate() {
                        let c = slot.load(Ordering::Acquire);
                        if c != 0 && og.map.get(i).map(|a| a.load(Ordering::Acquire)) == Some(c) {
                            slot.store(0, Ordering::Release);
                        }
                    }
                }
                inner.delete_locked(&mut md, sid, &sg)?;
            }
        }
        // A super blob whose delete committed before the super block was rewritten is gone:
        // forget it (the next super block write, which precedes any create, records that).
        let sbid = md.sb.super_blob;
        if sbid != NO_SUPER_BLOB && !md.blobs.contains_key(&sbid) {
            md.sb.super_blob = NO_SUPER_BLOB;
        }
        // Link parents.
        let links: Vec<(BlobId, BlobId)> = md
            .blobs
            .iter()
            .filter_map(|(&id, b)| b.parent.map(|p| (id, p)))
            .collect();
        for (id, p) in links {
            let ps = md.blobs.get(&p).map(|pb| pb.shared.clone());
            match ps {
                Some(ps) => {
                    if let Some(pb) = md.blobs.get_mut(&p) {
                        pb.clones.insert(id);
                    }
                    if let Some(b) = md.blobs.get(&id) {
                        b.shared.write().update(|m| m.parent = Some(ps));
                    }
                }
                None => {
                    if let Some(b) = md.blobs.get_mut(&id) {
                        b.unopenable = Some(format!("parent {p:#x} is missing"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Write the masks, then the super block with clean = 1, each followed by a barrier.
    /// Further operations on this store fail with EBADF.
    ///
    /// # Errors
    /// EBUSY if a blob is open, EBADF if already unloaded, EIO.
    pub fn unload(&self) -> Result<()> {
        let mut md = self.inner.md()?;
        if let Some((id, _)) = md.blobs.iter().find(|(_, b)| b.open_ref > 0) {
            return Err(Error::Busy(format!("blob {id:#x} is open")));
        }
        let pgsz = self.inner.geo.md_page_size as usize;
        let dev = &self.inner.dev;
        let sb = md.sb.clone();
        let pm = encode_mask(
            MASK_PAGES,
            &md.pages.to_bools(),
            sb.used_page_mask_len as usize * pgsz,
        );
        dev.write_at(&pm, u64::from(sb.used_page_mask_start) * pgsz as u64)?;
        let cm = encode_mask(
            MASK_CLUSTERS,
            &md.clusters.to_bools(),
            sb.used_cluster_mask_len as usize * pgsz,
        );
        dev.write_at(&cm, u64::from(sb.used_cluster_mask_start) * pgsz as u64)?;
        let bm = encode_mask(
            MASK_BLOBIDS,
            &md.blobids.to_bools(),
            sb.used_blobid_mask_len as usize * pgsz,
        );
        dev.write_at(&bm, u64::from(sb.used_blobid_mask_start) * pgsz as u64)?;
        dev.flush()?;
        md.sb.clean = true;
        dev.write_at(&md.sb.encode(), 0)?;
        dev.flush()?;
        md.unloaded = true;
        Ok(())
    }

    /// Grow the store to the device's current size (bounded by the room reserved for the
    /// cluster mask at init).
    ///
    /// # Errors
    /// ENOSPC if the cluster mask cannot describe the new size, EIO.
    pub fn grow(&self) -> Result<u64> {
        let mut md = self.inner.md()?;
        let cs = self.inner.geo.cluster_size;
        let pgsz = self.inner.geo.md_page_size;
        let new_size = self.inner.dev.size();
        let new_total = new_size / cs;
        if new_total <= md.total_clusters {
            return Ok(md.total_clusters);
        }
        let region = u64::from(md.sb.used_blobid_mask_start - md.sb.used_cluster_mask_start);
        let cap_bits = (region * pgsz - 5) * 8;
        if new_total > cap_bits {
            return Err(Error::NoSpace(format!(
                "cluster mask room holds {cap_bits} clusters, {new_total} needed"
            )));
        }
        self.inner.mark_dirty(&mut md)?;
        md.clusters.grow(new_total as usize);
        md.total_clusters = new_total;
        md.sb.size = new_size;
        md.sb.used_cluster_mask_len = div_ceil(5 + div_ceil(new_total, 8), pgsz) as u32;
        self.inner.dev.write_at(&md.sb.encode(), 0)?;
        self.inner.dev.flush()?;
        Ok(new_total)
    }

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

    fn merge_snapshot_into_clone(&self, sid: BlobId, s: &Arc<Shared>, cid: BlobId) -> Result<()> {
        let inner = &self.inner;
        let c = self.shared_of(cid)?;
        let _cbusy = c.try_busy()?;
        let mut cg = c.write();
        let sg = s.write();
        let mut md = inner.md()?;
        let s_parent = md.blobs.get(&sid).and_then(|b| b.parent);
        if let Some(b) = md.blobs.get_mut(&sid) {
            b.internal_set(XATTR_SNAPSHOT_REMOVAL, &cid.to_le_bytes());
            b.dirty = true;
        }
        inner.persist(&mut md, sid, &sg)?;
        let mut moved = Vec::new();
        let n = cg.num_clusters.min(sg.num_clusters) as usize;
        for i in 0..n {
            let sc = sg.map[i].load(Ordering::Acquire);
            if sc != 0 && cg.map[i].load(Ordering::Acquire) == 0 {
                cg.map[i].store(sc, Ordering::Release);
                moved.push(i);
            }
        }
        let sp = sg.parent.clone();
        cg.update(|m| m.parent = sp);
        if let Some(b) = md.blobs.get_mut(&cid) {
            match s_parent {
                Some(p) => b.internal_set(XATTR_SNAPSHOT, &p.to_le_bytes()),
                None => b.internal_remove(XATTR_SNAPSHOT),
            }
            b.parent = s_parent;
            b.dirty = true;
        }
        inner.persist(&mut md, cid, &cg)?;
        for i in moved {
            sg.map[i].store(0, Ordering::Release);
        }
        if let Some(b) = md.blobs.get_mut(&sid) {
            b.clones.clear();
        }
        inner.delete_locked(&mut md, sid, &sg)?;
        if let Some(pb) = s_parent.and_then(|p| md.blobs.get_mut(&p)) {
            pb.clones.insert(cid);
        }
        Ok(())
    }

    /// Snapshot a blob: a new read-only thin blob takes over its clusters and the blob becomes
    /// a thin clone of it. I/O to the blob waits while the snapshot is taken.
    ///
    /// # Errors
    /// ENOENT, EINVAL (the blob is read-only, e.g. a snapshot), EBUSY, ENOSPC, EIO.
    pub fn create_snapshot(&self, id: BlobId, xattrs: &[(String, Vec<u8>)]) -> Result<BlobId> {
        for (name, value) in xattrs {
            check_xattr(name, value)?;
        }
        let inner = &self.inner;
        let b = self.shared_of(id)?;
        if b.data_ro.load(Ordering::Acquire) || b.md_ro.load(Ordering::Acquire) {
            return Err(einval(format!("blob {id:#x} is read-only")));
        }
        let _busy = b.try_busy()?;
        let mut bg = b.write();
        let mut md = inner.md()?;
        inner.mark_dirty(&mut md)?;
        let (parent, use_et, md_ro) = {
            let bm = md
                .blobs
                .get(&id)
                .ok_or_else(|| Error::NotFound(format!("blob {id:#x}")))?;
            (bm.parent, bm.use_et, bm.md_ro & MD_RO_CLEAR_MASK)
        };
        let n = bg.num_clusters;
        let root = Inner::claim_page(&mut md.pages, 0)?;
        let sid = page_to_blobid(root);
        let s = Shared::new(sid, load_map(&bg, n as usize), n, true, bg.parent.clone());
        s.data_ro.store(true, Ordering::Release);
        s.md_ro.store(true, Ordering::Release);
        let mut internal = vec![(
            XATTR_SNAPSHOT_IN_PROGRESS.as_bytes().to_vec(),
            id.to_le_bytes().to_vec(),
        )];
        if let Some(p) = parent {
            internal.push((XATTR_SNAPSHOT.as_bytes().to_vec(), p.to_le_bytes().to_vec()));
        }
        md.blobids.set(root as usize);
        md.blobs.insert(
            sid,
            BlobMd {
                shared: s.clone(),
                open_ref: 0,
                invalid: 0,
                data_ro: DATA_RO_READ_ONLY,
                md_ro,
                xattrs: xattrs
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                    .collect(),
                internal,
                use_et,
                chain: vec![root],
                ep_pages: Vec::new(),
                ep_disk: Vec::new(),
                dirty: true,
                parent,
                clones: BTreeSet::new(),
                unopenable: None,
                pending_release: Vec::new(),
            },
        );
        let first = {
            let sg = s.read();
            inner.persist(&mut md, sid, &sg)
        };
        if let Err(e) = first {
            md.blobs.remove(&sid);
            md.blobids.clear(root as usize);
            md.pages.clear(root as usize);
            return Err(e);
        }
        // The original gives its clusters to the snapshot.
        let old = load_map(&bg, n as usize);
        for slot in bg.map.iter().take(n as usize) {
            slot.store(0, Ordering::Release);
        }
        let old_parent = bg.parent.clone();
        let old_thin = bg.thin;
        let sp = s.clone();
        bg.update(|m| {
            m.parent = Some(sp);
            m.thin = true;
        });
        if let Some(bm) = md.blobs.get_mut(&id) {
            bm.internal_set(XATTR_SNAPSHOT, &sid.to_le_bytes());
            bm.parent = Some(sid);
            bm.dirty = true;
        }
        if let Err(e) = inner.persist(&mut md, id, &bg) {
            for (slot, c) in bg.map.iter().zip(old) {
                slot.store(c, Ordering::Release);
            }
            bg.update(|m| {
                m.parent = old_parent;
                m.thin = old_thin;
            });
            return Err(e);
        }
        if let Some(sm) = md.blobs.get_mut(&sid) {
            sm.internal_remove(XATTR_SNAPSHOT_IN_PROGRESS);
            sm.clones.insert(id);
            sm.dirty = true;
        }
        if let Some(pb) = parent.and_then(|p| md.blobs.get_mut(&p)) {
            pb.clones.remove(&id);
            pb.clones.insert(sid);
        }
        let sg = s.read();
        inner.persist(&mut md, sid, &sg)?;
        Ok(sid)
    }

    /// Clone a read-only blob (a snapshot): a new thin blob reading through to it.
    ///
    /// # Errors
    /// ENOENT, EINVAL (the source is not read-only), ENOSPC, EIO.
    pub fn create_clone(&self, snapshot: BlobId, xattrs: &[(String, Vec<u8>)]) -> Result<BlobId> {
        for (name, value) in xattrs {
            check_xattr(name, value)?;
        }
        let inner = &self.inner;
        let s = self.shared_of(snapshot)?;
        if !s.data_ro.load(Ordering::Acquire) {
            return Err(einval(format!("blob {snapshot:#x} is not read-only")));
        }
        let sg = s.read();
        let mut md = inner.md()?;
        inner.mark_dirty(&mut md)?;
        let (use_et, md_ro) = {
            let sm = md
                .blobs
                .get(&snapshot)
                .ok_or_else(|| Error::NotFound(format!("blob {snapshot:#x}")))?;
            (sm.use_et, sm.md_ro & MD_RO_CLEAR_MASK)
        };
        let n = sg.num_clusters;
        let root = Inner::claim_page(&mut md.pages, 0)?;
        let cid = page_to_blobid(root);
        let c = Shared::new(cid, vec![0; n as usize], n, true, Some(s.clone()));
        md.blobids.set(root as usize);
        md.blobs.insert(
            cid,
            BlobMd {
                shared: c.clone(),
                open_ref: 0,
                invalid: 0,
                data_ro: 0,
                md_ro,
                xattrs: xattrs
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                    .collect(),
                internal: vec![(
                    XATTR_SNAPSHOT.as_bytes().to_vec(),
                    snapshot.to_le_bytes().to_vec(),
                )],
                use_et,
                chain: vec![root],
                ep_pages: Vec::new(),
                ep_disk: Vec::new(),
                dirty: true,
                parent: Some(snapshot),
                clones: BTreeSet::new(),
                unopenable: None,
                pending_release: Vec::new(),
            },
        );
        let res = {
            let cg = c.read();
            inner.persist(&mut md, cid, &cg)
        };
        if let Err(e) = res {
            md.blobs.remove(&cid);
            md.blobids.clear(root as usize);
            md.pages.clear(root as usize);
            return Err(e);
        }
        if let Some(sm) = md.blobs.get_mut(&snapshot) {
            sm.clones.insert(cid);
        }
        Ok(cid)
    }

    /// Allocate every cluster of a blob (copying from its parents) and drop its parent: the
    /// blob becomes thick and independent.
    ///
    /// # Errors
    /// ENOENT, EPERM (read-only), EBUSY, ENOSPC, EIO.
    pub fn inflate(&self, id: BlobId) -> Result<()> {
        self.copy_up(id, true)
    }

    /// Copy the clusters the parent holds and re-parent the blob to its grandparent.
    ///
    /// # Errors
    /// ENOENT, EINVAL (no parent), EPERM (read-only), EBUSY, ENOSPC, EIO.
    pub fn decouple_parent(&self, id: BlobId) -> Result<()> {
        self.copy_up(id, false)
    }

    fn copy_up(&self, id: BlobId, inflate: bool) -> Result<()> {
        let inner = &self.inner;
        let b = self.shared_of(id)?;
        if b.data_ro.load(Ordering::Acquire) {
            return Err(Error::ReadOnly(format!("blob {id:#x} is read-only")));
        }
        let _busy = b.try_busy()?;
        let cs = inner.geo.cluster_size as usize;
        // Phase 1, I/O running: copy into claimed clusters nothing refers to yet.
        let mut copied: Vec<(usize, u32)> = Vec::new();
        let phase1 = (|| -> Result<()> {
            let g = b.read();
            let parent = g.parent.clone();
            if !inflate && parent.is_none() {
                return Err(einval(format!("blob {id:#x} has no parent")));
            }
            let mut buf = vec![0u8; cs];
            for idx in 0..g.num_clusters as usize {
                if g.map[idx].load(Ordering::Acquire) != 0 {
                    continue;
                }
                let copy = inflate
                    || parent.as_ref().is_some_and(|p| {
                        let pg = p.read();
                        (idx as u64) < pg.num_clusters && pg.map[idx].load(Ordering::Acquire) != 0
                    });
                if !copy {
                    continue;
                }
                inner.read_cluster(&g, idx, 0, &mut buf)?;
                let c = Inner::claim_cluster(&mut *inner.md()?)?;
                copied.push((idx, c));
                inner.dev.write_at(&buf, u64::from(c) * cs as u64)?;
            }
            if !copied.is_empty() {
                inner.dev.flush()?;
            }
            Ok(())
        })();
        if let Err(e) = phase1 {
            let mut md = lock_md(&inner.md);
            for &(_, c) in &copied {
                md.clusters.clear(c as usize);
            }
            return Err(e);
        }
        // Phase 2, I/O frozen: install the copies and change the parent in one commit.
        let mut g = b.write();
        let mut md = inner.md()?;
        let mut installed = Vec::new();
        for &(idx, c) in &copied {
            if g.map[idx].load(Ordering::Acquire) != 0 {
                md.clusters.clear(c as usize); // a write allocated it meanwhile
            } else {
                g.map[idx].store(c, Ordering::Release);
                installed.push(idx);
            }
        }
        let new_parent = if inflate {
            None
        } else {
            g.parent.as_ref().and_then(|p| p.read().parent.clone())
        };
        let old_parent = g.parent.clone();
        let old_thin = g.thin;
        let np = new_parent.clone();
        g.update(|m| {
            m.parent = np;
            if inflate {
                m.thin = false;
            }
        });
        let new_parent_id = new_parent.as_ref().map(|p| p.id);
        if let Some(bm) = md.blobs.get_mut(&id) {
            match new_parent_id {
                Some(p) => bm.internal_set(XATTR_SNAPSHOT, &p.to_le_bytes()),
                None => bm.internal_remove(XATTR_SNAPSHOT),
            }
            bm.parent = new_parent_id;
            bm.dirty = true;
        }
        if let Err(e) = inner.persist(&mut md, id, &g) {
            for idx in installed {
                let c = g.map[idx].swap(0, Ordering::AcqRel);
                md.clusters.clear(c as usize);
            }
            g.update(|m| {
                m.parent = old_parent;
                m.thin = old_thin;
            });
            return Err(e);
        }
        if let Some(op) = old_parent.and_then(|p| md.blobs.get_mut(&p.id)) {
            op.clones.remove(&id);
        }
        if let Some(np) = new_parent_id.and_then(|p| md.blobs.get_mut(&p)) {
            np.clones.insert(id);
        }
        Ok(())
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

/// Split `[off, off+len)` (bytes in the blob) at cluster boundaries:
/// yields (cluster index, offset in cluster, offset in buffer, length).
fn split(off: u64, len: u64, cs: u64) -> impl Iterator<Item = (usize, u64, usize, usize)> {
    let mut pos = off;
    let end = off + len;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let idx = pos / cs;
        let in_c = pos % cs;
        let n = (cs - in_c).min(end - pos);
        let item = (idx as usize, in_c, (pos - off) as usize, n as usize);
        pos += n;
        Some(item)
    })
}

impl Blob {
    /// The blob's id.
    pub fn id(&self) -> BlobId {
        self.shared.id
    }

    /// Whether two handles are the same open blob.
    pub fn same_blob(&self, other: &Blob) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Size in clusters.
    pub fn num_clusters(&self) -> u64 {
        self.shared.read().num_clusters
    }

    /// Size in io_units.
    pub fn num_io_units(&self) -> u64 {
        self.num_clusters() * self.inner.geo.cluster_size / self.inner.geo.io_unit
    }

    /// Clusters this blob has allocated itself (not through a parent).
    pub fn num_allocated_clusters(&self) -> u64 {
        let g = self.shared.read();
        g.map
            .iter()
            .take(g.num_clusters as usize)
            .filter(|a| a.load(Ordering::Acquire) != 0)
            .count() as u64
    }

    /// Whether the blob is thin provisioned.
    pub fn is_thin(&self) -> bool {
        self.shared.read().thin
    }

    /// Whether data writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.shared.data_ro.load(Ordering::Acquire)
    }

    /// Whether a compound operation (snapshot, inflate, ...) runs on this blob.
    pub fn is_busy(&self) -> bool {
        self.shared.busy.load(Ordering::Acquire)
    }

    /// The parent snapshot's id.
    pub fn parent_id(&self) -> Option<BlobId> {
        self.shared.read().parent.as_ref().map(|p| p.id)
    }

    fn with_md<T>(&self, f: impl FnOnce(&mut BlobMd) -> Result<T>) -> Result<T> {
        let mut md = self.inner.md()?;
        let b = md
            .blobs
            .get_mut(&self.shared.id)
            .ok_or_else(|| Error::NotFound(format!("blob {:#x}", self.shared.id)))?;
        f(b)
    }

    fn check_md_rw(&self) -> Result<()> {
        if self.shared.md_ro.load(Ordering::Acquire) {
            return Err(Error::ReadOnly(format!(
                "blob {:#x} metadata is read-only",
                self.shared.id
            )));
        }
        Ok(())
    }

    /// Resize to `num_clusters`. Growth of a thick blob claims clusters now; a shrink releases
    /// them at the next [`Blob::sync_md`]. Thin blobs never allocate here.
    ///
    /// # Errors
    /// EPERM (metadata read-only), EBUSY, ENOSPC.
    pub fn resize(&self, num_clusters: u64) -> Result<()> {
        self.check_md_rw()?;
        if num_clusters > u64::from(u32::MAX) {
            return Err(einval("blob too large"));
        }
        let _busy = self.shared.try_busy()?;
        let mut g = self.shared.write();
        let mut md = self.inner.md()?;
        let id = self.shared.id;
        let old = g.num_clusters;
        let n = num_clusters as usize;
        if num_clusters > old {
            let mut stale = Vec::new();
            for slot in g.map.iter().skip(old as usize).take(n - old as usize) {
                let c = slot.swap(0, Ordering::AcqRel);
                if c != 0 {
                    stale.push(c);
                }
            }
            if !g.thin {
                let need = num_clusters - old;
                if need > md.total_clusters - md.clusters.count_ones() as u64 {
                    for (slot, c) in g.map.iter().skip(old as usize).zip(stale) {
                        slot.store(c, Ordering::Release);
                    }
                    return Err(Error::NoSpace(format!("{need} clusters needed")));
                }
            }
            if g.map.len() < n {
                g.update(|m| m.map.resize_with(n, || AtomicU32::new(0)));
            }
            if !g.thin {
                for i in old as usize..n {
                    let c = Inner::claim_cluster(&mut md)?;
                    g.map[i].store(c, Ordering::Release);
                }
            }
            if let Some(b) = md.blobs.get_mut(&id) {
                b.pending_release.extend(stale);
            }
        }
        g.update(|m| m.num_clusters = num_clusters);
        if let Some(b) = md.blobs.get_mut(&id) {
            b.dirty = true;
        }
        Ok(())
    }

    /// Persist pending metadata changes (no-op when the metadata is read-only or clean).
    ///
    /// # Errors
    /// EIO, ENOSPC (metadata pages).
    pub fn sync_md(&self) -> Result<()> {
        if self.shared.md_ro.load(Ordering::Acquire) {
            return Ok(());
        }
        let g = self.shared.read();
        let mut md = self.inner.md()?;
        let dirty = md.blobs.get(&self.shared.id).is_some_and(|b| b.dirty);
        if dirty {
            self.inner.persist(&mut md, self.shared.id, &g)?;
        }
        Ok(())
    }

    /// Set (or overwrite) a public xattr; persisted at the next sync.
    ///
    /// # Errors
    /// EPERM (metadata read-only), ENOMEM (larger than a page), EINVAL.
    pub fn set_xattr(&self, name: &str, value: &[u8]) -> Result<()> {
        self.check_md_rw()?;
        check_xattr(name, value)?;
        self.with_md(|b| {
            set_in(&mut b.xattrs, name.as_bytes(), value);
            b.dirty = true;
            Ok(())
        })
    }

    /// Get a public xattr.
    ///
    /// # Errors
    /// ENOENT.
    pub fn get_xattr(&self, name: &str) -> Result<Vec<u8>> {
        self.with_md(|b| {
            b.xattrs
                .iter()
                .find(|(n, _)| n == name.as_bytes())
                .map(|(_, v)| v.clone())
                .ok_or_else(|| Error::NotFound(format!("xattr {name}")))
        })
    }

    /// Remove a public xattr; persisted at the next sync.
    ///
    /// # Errors
    /// EPERM, ENOENT.
    pub fn remove_xattr(&self, name: &str) -> Result<()> {
        self.check_md_rw()?;
        self.with_md(|b| {
            let before = b.xattrs.len();
            b.xattrs.retain(|(n, _)| n != name.as_bytes());
            if b.xattrs.len() == before {
                return Err(Error::NotFound(format!("xattr {name}")));
            }
            b.dirty = true;
            Ok(())
        })
    }

    /// Names of the public xattrs, in insertion order.
    ///
    /// # Errors
    /// EBADF after unload.
    pub fn xattr_names(&self) -> Result<Vec<String>> {
        self.with_md(|b| {
            Ok(b.xattrs
                .iter()
                .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
                .collect())
        })
    }

    /// Set an internal xattr (hidden from the public xattr calls; for layers built on the
    /// store). The names the store uses itself (SNAP, SNAPTMP, SNAPRM, EXTSNAP) are refused.
    ///
    /// # Errors
    /// EINVAL (reserved name), EPERM, ENOMEM.
    pub fn set_internal_xattr(&self, name: &str, value: &[u8]) -> Result<()> {
        self.check_md_rw()?;
        check_xattr(name, value)?;
        if RESERVED_INTERNAL.contains(&name) {
            return Err(einval(format!("{name} is reserved")));
        }
        self.with_md(|b| {
            b.internal_set(name, value);
            b.dirty = true;
            Ok(())
        })
    }

    /// Get an internal xattr.
    ///
    /// # Errors
    /// ENOENT.
    pub fn get_internal_xattr(&self, name: &str) -> Result<Vec<u8>> {
        self.with_md(|b| {
            b.internal_get(name)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| Error::NotFound(format!("internal xattr {name}")))
        })
    }

    /// Remove an internal xattr.
    ///
    /// # Errors
    /// EINVAL (reserved name), EPERM, ENOENT.
    pub fn remove_internal_xattr(&self, name: &str) -> Result<()> {
        self.check_md_rw()?;
        if RESERVED_INTERNAL.contains(&name) {
            return Err(einval(format!("{name} is reserved")));
        }
        self.with_md(|b| {
            if b.internal_get(name).is_none() {
                return Err(Error::NotFound(format!("internal xattr {name}")));
            }
            b.internal_remove(name);
            b.dirty = true;
            Ok(())
        })
    }

    /// Whether the blob's persisted flags carry INTERNAL_XATTR (tests, dump).
    ///
    /// # Errors
    /// EIO.
    pub fn has_internal_xattr_flag(&self) -> Result<bool> {
        let md = self.inner.md()?;
        let b = md
            .blobs
            .get(&self.shared.id)
            .ok_or_else(|| Error::NotFound("blob".into()))?;
        let bytes = self.inner.read_page(b.chain[0])?;
        let p = MdPage::decode(&bytes)?;
        Ok(
            matches!(p.descriptors.first(), Some(Descriptor::Flags { invalid, .. }) if invalid & FLAG_INTERNAL_XATTR != 0),
        )
    }

    /// Make the blob read-only (data and metadata); takes effect at the next sync.
    ///
    /// # Errors
    /// EBADF after unload.
    pub fn set_read_only(&self) -> Result<()> {
        self.with_md(|b| {
            b.data_ro |= DATA_RO_READ_ONLY;
            b.dirty = true;
            Ok(())
        })
    }

    fn range(&self, ms: &MapState, offset: u64, len: u64) -> Result<Option<(u64, u64)>> {
        let unit = self.inner.geo.io_unit;
        if len == 0 {
            return Ok(None);
        }
        let start = offset
            .checked_mul(unit)
            .ok_or_else(|| einval("offset overflow"))?;
        let end = start
            .checked_add(len)
            .ok_or_else(|| einval("length overflow"))?;
        if end > ms.num_clusters * self.inner.geo.cluster_size {
            return Err(einval(format!(
                "I/O [{start}, {end}) beyond the blob's {} clusters",
                ms.num_clusters
            )));
        }
        Ok(Some((start, len)))
    }

    fn unit_len(&self, bytes: usize) -> Result<u64> {
        if bytes as u64 % self.inner.geo.io_unit != 0 {
            return Err(einval(format!(
                "length {bytes} is not a multiple of the io_unit"
            )));
        }
        Ok(bytes as u64)
    }

    fn check_data_rw(&self) -> Result<()> {
        if self.shared.data_ro.load(Ordering::Acquire) {
            return Err(Error::ReadOnly(format!(
                "blob {:#x} is read-only",
                self.shared.id
            )));
        }
        Ok(())
    }

    /// Read `buf.len()` bytes at `offset` io_units. Unallocated clusters read as their
    /// parent's data or zeroes.
    ///
    /// # Errors
    /// EINVAL (out of range, length not a multiple of the io_unit), EIO.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = self.unit_len(buf.len())?;
        let g = self.shared.read();
        let Some((start, len)) = self.range(&g, offset, len)? else {
            return Ok(());
        };
        for (idx, in_c, bo, n) in split(start, len, self.inner.geo.cluster_size) {
            self.inner
                .read_cluster(&g, idx, in_c, &mut buf[bo..bo + n])?;
        }
        Ok(())
    }

    /// Write `buf` at `offset` io_units. The first write to an unallocated cluster allocates
    /// it (copying the parent's data around the write, or zeroes).
    ///
    /// # Errors
    /// EPERM (read-only), EINVAL, ENOSPC, EIO.
    pub fn write(&self, offset: u64, buf: &[u8]) -> Result<()> {
        self.check_data_rw()?;
        let len = self.unit_len(buf.len())?;
        let g = self.shared.read();
        let Some((start, len)) = self.range(&g, offset, len)? else {
            return Ok(());
        };
        let cs = self.inner.geo.cluster_size;
        for (idx, in_c, bo, n) in split(start, len, cs) {
            let data = &buf[bo..bo + n];
            let c = g.map[idx].load(Ordering::Acquire);
            if c != 0 {
                self.inner.dev.write_at(data, u64::from(c) * cs + in_c)?;
            } else {
                self.inner
                    .alloc_and_write(&self.shared, &g, idx, in_c, data)?;
            }
        }
        Ok(())
    }

    /// Gathered write: the buffers are written back to back from `offset`.
    ///
    /// # Errors
    /// As [`Blob::write`].
    pub fn writev(&self, offset: u64, iov: &[&[u8]]) -> Result<()> {
        let all: Vec<u8> = iov.concat();
        self.write(offset, &all)
    }

    /// Scattered read into the buffers back to back from `offset`.
    ///
    /// # Errors
    /// As [`Blob::read`].
    pub fn readv(&self, offset: u64, iov: &mut [&mut [u8]]) -> Result<()> {
        let total: usize = iov.iter().map(|b| b.len()).sum();
        let mut all = vec![0u8; total];
        self.read(offset, &mut all)?;
        let mut pos = 0;
        for b in iov.iter_mut() {
            let n = b.len();
            b.copy_from_slice(&all[pos..pos + n]);
            pos += n;
        }
        Ok(())
    }

    /// Make `len` io_units at `offset` read back as zeroes.
    ///
    /// # Errors
    /// EPERM, EINVAL, ENOSPC, EIO.
    pub fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.check_data_rw()?;
        let g = self.shared.read();
        let bytes = len
            .checked_mul(self.inner.geo.io_unit)
            .ok_or_else(|| einval("length overflow"))?;
        let Some((start, len)) = self.range(&g, offset, bytes)? else {
            return Ok(());
        };
        let cs = self.inner.geo.cluster_size;
        for (idx, in_c, _, n) in split(start, len, cs) {
            let c = g.map[idx].load(Ordering::Acquire);
            if c != 0 {
                self.inner
                    .dev
                    .write_zeroes(u64::from(c) * cs + in_c, n as u64)?;
            } else if Inner::ancestor_has(&g, idx) {
                let z = vec![0u8; n];
                self.inner
                    .alloc_and_write(&self.shared, &g, idx, in_c, &z)?;
            }
        }
        Ok(())
    }

    /// Unmap `len` io_units at `offset`: they read back as zeroes (or the parent's data in a
    /// clone's unallocated clusters). Whole clusters of a thin blob without a parent are
    /// released.
    ///
    /// # Errors
    /// EPERM, EINVAL, EIO.
    pub fn unmap(&self, offset: u64, len: u64) -> Result<()> {
        self.check_data_rw()?;
        let cs = self.inner.geo.cluster_size;
        let mut release = Vec::new();
        {
            let g = self.shared.read();
            let bytes = len
                .checked_mul(self.inner.geo.io_unit)
                .ok_or_else(|| einval("length overflow"))?;
            let Some((start, len)) = self.range(&g, offset, bytes)? else {
                return Ok(());
            };
            for (idx, in_c, _, n) in split(start, len, cs) {
                let c = g.map[idx].load(Ordering::Acquire);
                if c == 0 {
                    continue;
                }
                if n as u64 == cs && g.thin && g.parent.is_none() {
                    release.push(idx);
                } else {
                    self.inner.dev.unmap(u64::from(c) * cs + in_c, n as u64)?;
                }
            }
        }
        if release.is_empty() {
            return Ok(());
        }
        let g = self.shared.write();
        let mut md = self.inner.md()?;
        let mut freed = Vec::new();
        for idx in release {
            let c = g.map[idx].swap(0, Ordering::AcqRel);
            if c != 0 {
                freed.push(c);
            }
        }
        if let Some(b) = md.blobs.get_mut(&self.shared.id) {
            b.pending_release.extend(freed);
            b.dirty = true;
        }
        self.inner.persist(&mut md, self.shared.id, &g)
    }

    /// Make every completed write to this blob durable (a device barrier).
    ///
    /// # Errors
    /// EIO.
    pub fn flush(&self) -> Result<()> {
        self.inner.dev.flush()?;
        Ok(())
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let res = if self.shared.md_ro.load(Ordering::Acquire) {
            Ok(())
        } else {
            let g = self.shared.read();
            let mut md = lock_md(&self.inner.md);
            let dirty = md.blobs.get(&self.shared.id).is_some_and(|b| b.dirty);
            if dirty && !md.unloaded {
                self.inner.persist(&mut md, self.shared.id, &g)
            } else {
                Ok(())
            }
        };
        let mut md = lock_md(&self.inner.md);
        if let Some(b) = md.blobs.get_mut(&self.shared.id) {
            b.open_ref = b.open_ref.saturating_sub(1);
        }
        res
    }

    /// Close the handle, persisting pending metadata changes.
    ///
    /// # Errors
    /// EIO from the persist (the handle is released anyway).
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}
