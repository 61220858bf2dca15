// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The blob service's [`Storage`] on a [`Blobstore`] over a file.
//!
//! This crate depends on both `azure_blob_service` and `blobstore`, so that neither of them
//! depends on the other: the service keeps no Blobstore dependency, the Blobstore knows nothing
//! of Azure, and the host simulator picks a backend by depending on this crate.
//!
//! # Layout in the store
//!
//! * **Extents**: every extent is one thin Blobstore blob and its [`ExtentId`] is the blob id.
//!   Writes at any byte offset are turned into io_unit writes (read-modify-write of the edge
//!   io_units, serialised per extent); a write past the end grows the blob with `resize`
//!   (clusters are allocated on first write). Bytes past the blob's size read as zeros, so no
//!   byte length is kept. `sync_extent` is a barrier, `sync_md`, and a second barrier.
//!   `delete_extent` deletes the blob, which releases its clusters.
//! * **Records** (containers and blob records) live in the data of one **catalog blob**, which
//!   is the store's **super blob**. Its data is a log of frames, each `magic, seq, len, crc32c,
//!   payload`; a payload is one operation (put or delete of a container or a blob record). A
//!   record update appends one frame (read-modify-write of the last io_unit; a 4 KiB write is
//!   atomic on the devices the Blobstore supports, so acknowledged frames in that io_unit
//!   survive a torn append) followed by a barrier, and the `sync_md` of a grown log. On load the
//!   log is replayed up to the first frame that is torn, has a bad checksum or the wrong
//!   sequence number, and everything after it is zeroed.
//! * **Compaction**: when the log is four times the size it had after the last compaction (and
//!   over 1 MiB), the live records are written to a new catalog blob, made durable, and the
//!   super blob is switched to it (one superblock write with a barrier); the old log is then
//!   deleted.
//! * **Orphans**: at open, every blob that is neither the super blob nor referenced by a blob
//!   record is deleted: extents of uploads never acknowledged, and an old or half-written
//!   catalog from an interrupted compaction.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use azure_blob_service::storage::{
    BlobRecord, ContainerRecord, ExtentId, Record, RecordIndex, Storage, StorageError,
    StorageResult,
};
use blobstore::{
    Blob, BlobId, BlobOptions, Blobstore, Device, FileDevice, InitOptions, LoadOptions,
};
use serde::{Deserialize, Serialize};

/// Blobstore type of a store made by this crate.
pub const BSTYPE: [u8; 16] = *b"hv_azure_blob\0\0\0";

/// Xattr naming what a blob is: `catalog` or `extent`.
pub const KIND_XATTR: &str = "hv_azure_blob.kind";

/// Default cluster size of a new store (64 KiB: a staged block of a few bytes takes one
/// cluster).
pub const DEFAULT_CLUSTER_SIZE: u32 = 64 << 10;

const FRAME_MAGIC: u32 = 0x4c41_5648; // "HVAL"
const FRAME_HEADER: usize = 20;
const MAX_FRAME: u64 = 1 << 30;
const COMPACT_MIN: u64 = 1 << 20;
const MAX_HINT: u64 = 256 << 20;

fn bs_err(e: blobstore::Error) -> StorageError {
    StorageError::Backend(format!("blobstore: {e}"))
}

fn poisoned() -> StorageError {
    StorageError::Backend("lock poisoned".into())
}

fn to_usize(v: u64) -> StorageResult<usize> {
    usize::try_from(v).map_err(|_| StorageError::Backend("size too large".into()))
}

/// One logged record operation.
#[derive(Debug, Serialize, Deserialize)]
enum Op {
    PutContainer(String, Vec<u8>),
    DeleteContainer(String),
    PutBlob(String, String, Vec<u8>),
    DeleteBlob(String, String),
}

/// The records, in memory; the catalog's log is their durable copy.
#[derive(Debug, Default)]
struct Records(RecordIndex);

impl Records {
    fn apply(&mut self, op: &Op) -> StorageResult<()> {
        match op {
            Op::PutContainer(name, rec) => {
                self.0.put_container(name, ContainerRecord::decode(rec)?)
            }
            Op::DeleteContainer(name) => self.0.delete_container(name),
            Op::PutBlob(c, name, rec) => self.0.put_blob(c, name, BlobRecord::decode(rec)?),
            Op::DeleteBlob(c, name) => self.0.delete_blob(c, name),
        }
        Ok(())
    }

    /// Operations that rebuild these records from nothing.
    fn snapshot_ops(&self) -> StorageResult<Vec<Op>> {
        let mut ops = Vec::new();
        for (name, rec) in &self.0.containers {
            ops.push(Op::PutContainer(name.clone(), rec.encode()?));
        }
        for (c, m) in &self.0.blobs {
            for (name, rec) in m {
                ops.push(Op::PutBlob(c.clone(), name.clone(), rec.encode()?));
            }
        }
        Ok(ops)
    }
}

fn frame(seq: u64, op: &Op) -> StorageResult<Vec<u8>> {
    let payload = postcard::to_stdvec(op).map_err(|e| StorageError::Backend(e.to_string()))?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| u64::from(l) <= MAX_FRAME)
        .ok_or_else(|| StorageError::Backend("record too large".into()))?;
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[4..16]), &payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
}

/// Parses the frame at `pos` if it is whole, valid and numbered `seq`.
fn parse_frame(log: &[u8], pos: usize, seq: u64) -> Option<(Op, usize)> {
    if le_u32(log, pos)? != FRAME_MAGIC || le_u64(log, pos + 4)? != seq {
        return None;
    }
    let len = usize::try_from(le_u32(log, pos + 12)?).ok()?;
    let crc = le_u32(log, pos + 16)?;
    let start = pos + FRAME_HEADER;
    let payload = log.get(start..start.checked_add(len)?)?;
    let want = crc32c::crc32c_append(crc32c::crc32c(log.get(pos + 4..pos + 16)?), payload);
    if want != crc {
        return None;
    }
    let op = postcard::from_bytes(payload).ok()?;
    Some((op, start + len))
}

/// Byte-granular I/O on a blob whose I/O is in io_units.
#[derive(Debug, Clone, Copy)]
struct Geo {
    io: u64,
    cluster: u64,
}

impl Geo {
    fn size(&self, blob: &Blob) -> u64 {
        blob.num_io_units() * self.io
    }

    /// Grows `blob` to hold `end` bytes; returns whether it grew.
    fn ensure(&self, blob: &Blob, end: u64) -> StorageResult<bool> {
        if end <= self.size(blob) {
            return Ok(false);
        }
        blob.resize(end.div_ceil(self.cluster)).map_err(bs_err)?;
        Ok(true)
    }

    fn write(&self, blob: &Blob, offset: u64, data: &[u8]) -> StorageResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| StorageError::Backend("offset overflow".into()))?;
        self.ensure(blob, end)?;
        let a = offset / self.io * self.io;
        let b = end.div_ceil(self.io) * self.io;
        if a == offset && b == end {
            return blob.write(a / self.io, data).map_err(bs_err);
        }
        let io = to_usize(self.io)?;
        let mut buf = vec![0u8; to_usize(b - a)?];
        if a < offset {
            blob.read(a / self.io, &mut buf[..io]).map_err(bs_err)?;
        }
        if end < b && (b - self.io > a || a == offset) {
            let at = buf.len() - io;
            blob.read((b - self.io) / self.io, &mut buf[at..])
                .map_err(bs_err)?;
        }
        let at = to_usize(offset - a)?;
        buf[at..at + data.len()].copy_from_slice(data);
        blob.write(a / self.io, &buf).map_err(bs_err)
    }

    fn read(&self, blob: &Blob, offset: u64, out: &mut [u8]) -> StorageResult<()> {
        let size = self.size(blob);
        let end = offset.saturating_add(out.len() as u64).min(size);
        if offset >= end {
            out.fill(0);
            return Ok(());
        }
        let a = offset / self.io * self.io;
        let b = end.div_ceil(self.io) * self.io;
        let avail = to_usize(end - offset)?;
        if a == offset && b == end {
            blob.read(a / self.io, &mut out[..avail]).map_err(bs_err)?;
        } else {
            let mut buf = vec![0u8; to_usize(b - a)?];
            blob.read(a / self.io, &mut buf).map_err(bs_err)?;
            let at = to_usize(offset - a)?;
            out[..avail].copy_from_slice(&buf[at..at + avail]);
        }
        out[avail..].fill(0);
        Ok(())
    }

    fn zero(&self, blob: &Blob, offset: u64, len: u64) -> StorageResult<()> {
        let end = offset.saturating_add(len).min(self.size(blob));
        if offset >= end {
            return Ok(());
        }
        let a = offset.div_ceil(self.io) * self.io;
        let b = end / self.io * self.io;
        if a >= b {
            return self.write(blob, offset, &vec![0u8; to_usize(end - offset)?]);
        }
        if offset < a {
            self.write(blob, offset, &vec![0u8; to_usize(a - offset)?])?;
        }
        blob.write_zeroes(a / self.io, (b - a) / self.io)
            .map_err(bs_err)?;
        if b < end {
            self.write(blob, b, &vec![0u8; to_usize(end - b)?])?;
        }
        Ok(())
    }

    fn sync(&self, blob: &Blob) -> StorageResult<()> {
        blob.flush().map_err(bs_err)?;
        blob.sync_md().map_err(bs_err)?;
        blob.flush().map_err(bs_err)
    }
}

/// An open extent: its blob handle and the lock that serialises its writes (edge io_units
/// are read-modify-written).
#[derive(Debug)]
struct Extent {
    blob: Blob,
    writing: Mutex<()>,
}

/// The catalog: the log blob (the super blob) and the records it holds.
#[derive(Debug)]
struct Catalog {
    log: Blob,
    end: u64,
    seq: u64,
    base: u64,
    compact_min: u64,
    records: Records,
}

/// A [`Storage`] on a Blobstore. See the crate documentation for the layout.
#[derive(Debug)]
pub struct BlobstoreStorage {
    bs: Blobstore,
    geo: Geo,
    extents: RwLock<HashMap<ExtentId, Arc<Extent>>>,
    catalog: Mutex<Option<Catalog>>,
}

/// Options for a new store.
#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    /// Size of the file in bytes (it is sparse).
    pub size: u64,
    /// Cluster size in bytes (a multiple of 4 KiB).
    pub cluster_size: u32,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            size: 1 << 30,
            cluster_size: DEFAULT_CLUSTER_SIZE,
        }
    }
}

impl BlobstoreStorage {
    /// Opens the store in the file at `path`, or creates one with `opts` if the file is missing
    /// or empty. Loading replays the catalog and deletes orphaned blobs.
    ///
    /// # Errors
    /// A backend error if the file is not a store of this type or cannot be read.
    pub fn open(path: &Path, opts: CreateOptions) -> StorageResult<Self> {
        let io = |e: std::io::Error| StorageError::Backend(format!("{}: {e}", path.display()));
        let existing = std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        let bs = if existing {
            let dev: Arc<dyn Device> = Arc::new(FileDevice::open(path).map_err(io)?);
            Blobstore::load(
                dev,
                &LoadOptions {
                    bstype: BSTYPE,
                    force_recover: false,
                },
            )
            .map_err(bs_err)?
        } else {
            let dev: Arc<dyn Device> = Arc::new(FileDevice::create(path, opts.size).map_err(io)?);
            Blobstore::init(
                dev,
                &InitOptions {
                    cluster_size: opts.cluster_size,
                    bstype: BSTYPE,
                    ..InitOptions::default()
                },
            )
            .map_err(bs_err)?
        };
        Self::on_store(bs)
    }

    /// Runs on an initialised or loaded store.
    ///
    /// # Errors
    /// A backend error if the catalog cannot be read or created.
    pub fn on_store(bs: Blobstore) -> StorageResult<Self> {
        let geo = Geo {
            io: bs.io_unit_size(),
            cluster: bs.cluster_size(),
        };
        let storage = BlobstoreStorage {
            bs,
            geo,
            extents: RwLock::new(HashMap::new()),
            catalog: Mutex::new(None),
        };
        let catalog = match storage.bs.super_blob() {
            Ok(id) => storage.load_catalog(id)?,
            Err(blobstore::Error::NotFound(_)) => {
                // Only a new store (init, then a crash before the first catalog was made the
                // super blob) lacks a catalog. Extents without a catalog mean it was lost:
                // refuse rather than start empty and reclaim them all.
                let extents = storage
                    .bs
                    .blob_ids()
                    .into_iter()
                    .filter(|&id| !storage.is_catalog(id))
                    .count();
                if extents > 0 {
                    return Err(StorageError::Backend(format!(
                        "the store has no catalog (super blob) but {extents} other blobs"
                    )));
                }
                let cat = storage.new_catalog(&[])?;
                storage.bs.set_super_blob(cat.log.id()).map_err(bs_err)?;
                cat
            }
            Err(e) => return Err(bs_err(e)),
        };
        let mut live: HashSet<BlobId> = catalog
            .records
            .0
            .blobs
            .values()
            .flat_map(|m| m.values().flat_map(BlobRecord::extents))
            .collect();
        live.insert(catalog.log.id());
        for id in storage.bs.blob_ids() {
            if !live.contains(&id) {
                storage.bs.delete_blob(id).map_err(bs_err)?;
            }
        }
        *storage.catalog.lock().map_err(|_| poisoned())? = Some(catalog);
        Ok(storage)
    }

    /// Sets the log size (default 1 MiB) below which the catalog is never compacted; tests
    /// lower it to compact often.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn set_compaction_minimum(&self, bytes: u64) -> StorageResult<()> {
        if let Some(c) = self.catalog()?.as_mut() {
            c.compact_min = bytes;
        }
        Ok(())
    }

    /// Whether blob `id` was made as a catalog.
    fn is_catalog(&self, id: BlobId) -> bool {
        self.bs
            .open_blob(id)
            .and_then(|b| b.get_xattr(KIND_XATTR))
            .is_ok_and(|v| v == b"catalog")
    }

    /// The Blobstore underneath.
    pub fn blobstore(&self) -> &Blobstore {
        &self.bs
    }

    /// Number of extents (blobs other than the catalog), for leak checks.
    pub fn extent_count(&self) -> usize {
        self.bs.blob_ids().len().saturating_sub(1)
    }

    /// Closes every handle and unloads the store cleanly.
    ///
    /// # Errors
    /// A backend error from the unload.
    pub fn unload(self) -> StorageResult<()> {
        let BlobstoreStorage {
            bs,
            extents,
            catalog,
            ..
        } = self;
        for (_, e) in extents.into_inner().map_err(|_| poisoned())? {
            if let Ok(e) = Arc::try_unwrap(e) {
                e.blob.close().map_err(bs_err)?;
            }
        }
        if let Some(c) = catalog.into_inner().map_err(|_| poisoned())? {
            c.log.close().map_err(bs_err)?;
        }
        bs.unload().map_err(bs_err)
    }

    fn load_catalog(&self, id: BlobId) -> StorageResult<Catalog> {
        let log = self.bs.open_blob(id).map_err(bs_err)?;
        let mut data = vec![0u8; to_usize(self.geo.size(&log))?];
        log.read(0, &mut data).map_err(bs_err)?;
        let mut records = Records::default();
        let mut pos = 0;
        let mut seq = 1;
        while let Some((op, next)) = parse_frame(&data, pos, seq) {
            records.apply(&op)?;
            pos = next;
            seq += 1;
        }
        let end = pos as u64;
        if data[pos..].iter().any(|&b| b != 0) {
            // A torn or unacknowledged append: clear it so that the next append never sits
            // in front of an old frame.
            self.geo.zero(&log, end, self.geo.size(&log) - end)?;
            log.flush().map_err(bs_err)?;
        }
        Ok(Catalog {
            log,
            end,
            seq,
            base: end,
            compact_min: COMPACT_MIN,
            records,
        })
    }

    /// A new, durable catalog blob holding `ops`.
    fn new_catalog(&self, ops: &[Op]) -> StorageResult<Catalog> {
        let mut bytes = Vec::new();
        let mut records = Records::default();
        for (i, op) in ops.iter().enumerate() {
            bytes.extend(frame(i as u64 + 1, op)?);
            records.apply(op)?;
        }
        let id = self
            .bs
            .create_blob(&BlobOptions {
                num_clusters: (bytes.len() as u64).div_ceil(self.geo.cluster),
                thin_provision: true,
                xattrs: vec![(KIND_XATTR.into(), b"catalog".to_vec())],
                ..BlobOptions::default()
            })
            .map_err(bs_err)?;
        let log = self.bs.open_blob(id).map_err(bs_err)?;
        let written = self
            .geo
            .write(&log, 0, &bytes)
            .and_then(|()| self.geo.sync(&log));
        if let Err(e) = written {
            drop(log);
            let _ = self.bs.delete_blob(id);
            return Err(e);
        }
        Ok(Catalog {
            log,
            end: bytes.len() as u64,
            seq: ops.len() as u64 + 1,
            base: bytes.len() as u64,
            compact_min: COMPACT_MIN,
            records,
        })
    }

    fn catalog(&self) -> StorageResult<MutexGuard<'_, Option<Catalog>>> {
        self.catalog.lock().map_err(|_| poisoned())
    }

    /// Appends `op` durably, then applies it.
    fn log(&self, op: Op) -> StorageResult<()> {
        let mut guard = self.catalog()?;
        let cat = guard
            .as_mut()
            .ok_or_else(|| StorageError::Backend("catalog not loaded".into()))?;
        let bytes = frame(cat.seq, &op)?;
        let end = cat.end + bytes.len() as u64;
        self.geo.write(&cat.log, cat.end, &bytes)?;
        self.geo.sync(&cat.log)?;
        cat.end = end;
        cat.seq += 1;
        cat.records.apply(&op)?;
        if cat.end > cat.compact_min && cat.end > cat.base.saturating_mul(4) {
            // The operation is durable already: a failed compaction does not fail it.
            let fresh = cat
                .records
                .snapshot_ops()
                .and_then(|ops| self.new_catalog(&ops));
            match fresh {
                Err(_) => {
                    // Keep the old log; try again when it has grown four times more.
                    cat.base = cat.end;
                }
                Ok(mut fresh) => {
                    fresh.compact_min = cat.compact_min;
                    if let Err(e) = self.bs.set_super_blob(fresh.log.id()) {
                        // Which log the super block names is unknown now: take no more
                        // updates (the next open finds the records in either).
                        *guard = None;
                        return Err(bs_err(e));
                    }
                    let old = std::mem::replace(cat, fresh);
                    let old_id = old.log.id();
                    // A failure leaves an orphan that the next open deletes.
                    if old.log.close().is_ok() {
                        let _ = self.bs.delete_blob(old_id);
                    }
                }
            }
        }
        Ok(())
    }

    fn extent(&self, id: ExtentId) -> StorageResult<Arc<Extent>> {
        if let Some(e) = self.extents.read().map_err(|_| poisoned())?.get(&id) {
            return Ok(e.clone());
        }
        let mut map = self.extents.write().map_err(|_| poisoned())?;
        if let Some(e) = map.get(&id) {
            return Ok(e.clone());
        }
        if self.catalog()?.as_ref().is_some_and(|c| c.log.id() == id) {
            return Err(StorageError::NoSuchExtent(id));
        }
        let blob = self.bs.open_blob(id).map_err(|e| match e {
            blobstore::Error::NotFound(_) => StorageError::NoSuchExtent(id),
            e => bs_err(e),
        })?;
        let e = Arc::new(Extent {
            blob,
            writing: Mutex::new(()),
        });
        map.insert(id, e.clone());
        Ok(e)
    }

    fn read_records<T>(&self, f: impl FnOnce(&Records) -> T) -> StorageResult<T> {
        let guard = self.catalog()?;
        let cat = guard
            .as_ref()
            .ok_or_else(|| StorageError::Backend("catalog not loaded".into()))?;
        Ok(f(&cat.records))
    }
}

impl Storage for BlobstoreStorage {
    fn create_extent(&self, size_hint: u64) -> StorageResult<ExtentId> {
        let id = self
            .bs
            .create_blob(&BlobOptions {
                num_clusters: size_hint.min(MAX_HINT).div_ceil(self.geo.cluster),
                thin_provision: true,
                xattrs: vec![(KIND_XATTR.into(), b"extent".to_vec())],
                ..BlobOptions::default()
            })
            .map_err(bs_err)?;
        Ok(id)
    }

    fn write_extent(&self, id: ExtentId, offset: u64, data: &[u8]) -> StorageResult<()> {
        let e = self.extent(id)?;
        let _w = e.writing.lock().map_err(|_| poisoned())?;
        self.geo.write(&e.blob, offset, data)
    }

    fn zero_extent(&self, id: ExtentId, offset: u64, len: u64) -> StorageResult<()> {
        let e = self.extent(id)?;
        let _w = e.writing.lock().map_err(|_| poisoned())?;
        self.geo.zero(&e.blob, offset, len)
    }

    fn read_extent(&self, id: ExtentId, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        let e = self.extent(id)?;
        self.geo.read(&e.blob, offset, buf)
    }

    fn sync_extent(&self, id: ExtentId) -> StorageResult<()> {
        let e = self.extent(id)?;
        let _w = e.writing.lock().map_err(|_| poisoned())?;
        self.geo.sync(&e.blob)
    }

    fn delete_extent(&self, id: ExtentId) -> StorageResult<()> {
        let cached = self.extents.write().map_err(|_| poisoned())?.remove(&id);
        if let Some(mut e) = cached {
            // Wait for I/O still holding the handle (a reader of a record that was just
            // replaced) to finish.
            let mut tries = 0;
            let e = loop {
                match Arc::try_unwrap(e) {
                    Ok(e) => break e,
                    Err(again) if tries < 10_000 => {
                        e = again;
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(_) => return Err(StorageError::Backend(format!("extent {id} busy"))),
                }
            };
            e.blob.close().map_err(bs_err)?;
        }
        if self.catalog()?.as_ref().is_some_and(|c| c.log.id() == id) {
            return Err(StorageError::NoSuchExtent(id));
        }
        self.bs.delete_blob(id).map_err(|e| match e {
            blobstore::Error::NotFound(_) => StorageError::NoSuchExtent(id),
            e => bs_err(e),
        })
    }

    fn get_container(&self, name: &str) -> StorageResult<Option<ContainerRecord>> {
        self.read_records(|r| r.0.container(name))
    }

    fn put_container(&self, name: &str, rec: &ContainerRecord) -> StorageResult<()> {
        self.log(Op::PutContainer(name.to_string(), rec.encode()?))
    }

    fn delete_container(&self, name: &str) -> StorageResult<()> {
        self.log(Op::DeleteContainer(name.to_string()))
    }

    fn list_containers(
        &self,
        start: &str,
        limit: usize,
    ) -> StorageResult<Vec<(String, ContainerRecord)>> {
        self.read_records(|r| r.0.list_containers(start, limit))
    }

    fn get_blob(&self, container: &str, name: &str) -> StorageResult<Option<BlobRecord>> {
        self.read_records(|r| r.0.blob(container, name))
    }

    fn put_blob(&self, container: &str, name: &str, rec: &BlobRecord) -> StorageResult<()> {
        self.log(Op::PutBlob(
            container.to_string(),
            name.to_string(),
            rec.encode()?,
        ))
    }

    fn delete_blob(&self, container: &str, name: &str) -> StorageResult<()> {
        self.log(Op::DeleteBlob(container.to_string(), name.to_string()))
    }

    fn list_blobs(
        &self,
        container: &str,
        start: &str,
        limit: usize,
    ) -> StorageResult<Vec<(String, BlobRecord)>> {
        self.read_records(|r| r.0.list_blobs(container, start, limit))
    }
}
