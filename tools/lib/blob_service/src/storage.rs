// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The storage trait the engine runs on, its records, and the in-memory implementation.
//!
//! The engine keeps all Azure semantics; a [`Storage`] only keeps two kinds of things:
//!
//! * **extents**: byte arrays identified by an [`ExtentId`], written and read by offset in
//!   bounded chunks. Blob content lives in extents: a staged block is one extent, a Put Blob body
//!   is one extent, a page blob is one (sparse) extent, an append blob is a list of extents.
//!   Unwritten bytes read as zeros.
//! * **records**: small structured values, one per container ([`ContainerRecord`]) and one per
//!   blob name ([`BlobRecord`]: properties, metadata, lease, the list of extent pieces that make
//!   up the content, and the uncommitted blocks).
//!
//! # Ordering and durability contract
//!
//! The engine writes a new extent completely, calls [`Storage::sync_extent`], and only then
//! publishes a record that references it with [`Storage::put_blob`]. It acknowledges the client
//! after `put_blob` returns. A persistent backend therefore makes an acknowledged write durable if
//! `sync_extent` makes the extent's bytes durable and `put_blob`/`put_container` replace a record
//! atomically and durably. Extents that are no longer referenced are removed with
//! [`Storage::delete_extent`] only after the record that dropped them was stored; an extent that
//! no record references after a crash is garbage a backend may reclaim on start-up.
//!
//! Record methods are never called concurrently for the same container by the engine (it holds
//! its metadata lock around every read-modify-write); extent I/O runs concurrently.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Identifier of an extent, unique within one storage.
pub type ExtentId = u64;

/// A storage failure (I/O error, corrupted record, missing extent).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The extent does not exist.
    #[error("extent {0} does not exist")]
    NoSuchExtent(ExtentId),
    /// The backend failed.
    #[error("storage backend failure: {0}")]
    Backend(String),
}

/// Result of storage calls.
pub type StorageResult<T> = Result<T, StorageError>;

/// The properties and metadata of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// User metadata (`x-ms-meta-*`), in the order given.
    pub metadata: Vec<(String, String)>,
    /// Quoted ETag.
    pub etag: String,
    /// Last modification time.
    pub last_modified: SystemTime,
}

/// Type of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobType {
    /// Block blob.
    Block,
    /// Page blob.
    Page,
    /// Append blob.
    Append,
}

impl BlobType {
    /// The REST name (`x-ms-blob-type`).
    pub fn as_str(self) -> &'static str {
        match self {
            BlobType::Block => "BlockBlob",
            BlobType::Page => "PageBlob",
            BlobType::Append => "AppendBlob",
        }
    }
}

/// A run of bytes of an extent that forms part of a blob's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Block id (base64 text as sent) for committed blocks; `None` for Put Blob bodies and
    /// appended blocks.
    pub block_id: Option<String>,
    /// The extent holding the bytes.
    pub extent: ExtentId,
    /// Length in bytes.
    pub len: u64,
}

/// A staged (uncommitted) block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedBlock {
    /// Block id (base64 text as sent).
    pub id: String,
    /// The extent holding the bytes.
    pub extent: ExtentId,
    /// Length in bytes.
    pub len: u64,
}

/// HTTP content properties of a blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentProps {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// Content-MD5 of the whole blob.
    pub content_md5: Option<[u8; 16]>,
}

/// Lease state as stored (the engine derives expiry from the times).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Current lease id, if a lease was ever acquired and not released.
    pub id: Option<String>,
    /// Lease duration in seconds; `None` means infinite.
    pub duration: Option<u64>,
    /// When a timed lease expires.
    pub expires: Option<SystemTime>,
    /// When a breaking lease becomes broken.
    pub break_at: Option<SystemTime>,
    /// Whether the lease was broken (break issued).
    pub breaking: bool,
}

/// Content layout of a blob, per type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Block blob: the committed pieces in order.
    Block(Vec<Piece>),
    /// Page blob: one sparse extent plus the set of written page ranges (start -> end,
    /// exclusive, non-overlapping, non-adjacent).
    Page {
        /// The extent of the page blob's bytes.
        extent: ExtentId,
        /// Valid page ranges.
        ranges: BTreeMap<u64, u64>,
        /// `x-ms-blob-sequence-number`.
        sequence: u64,
    },
    /// Append blob: the appended pieces in order.
    Append(Vec<Piece>),
}

/// A committed blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobState {
    /// Content layout.
    pub layout: Layout,
    /// Content length in bytes.
    pub size: u64,
    /// Content properties.
    pub props: ContentProps,
    /// User metadata.
    pub metadata: Vec<(String, String)>,
    /// Quoted ETag.
    pub etag: String,
    /// Last modification time.
    pub last_modified: SystemTime,
    /// Creation time.
    pub created: SystemTime,
    /// Lease.
    pub lease: LeaseRecord,
}

impl BlobState {
    /// The blob type.
    pub fn blob_type(&self) -> BlobType {
        match self.layout {
            Layout::Block(_) => BlobType::Block,
            Layout::Page { .. } => BlobType::Page,
            Layout::Append(_) => BlobType::Append,
        }
    }

    /// Every extent this blob references.
    pub fn extents(&self) -> Vec<ExtentId> {
        match &self.layout {
            Layout::Block(p) | Layout::Append(p) => p.iter().map(|p| p.extent).collect(),
            Layout::Page { extent, .. } => vec![*extent],
        }
    }
}

/// The record kept under one blob name: the committed blob (if any) and the staged blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// The committed blob; `None` when only uncommitted blocks exist.
    pub committed: Option<BlobState>,
    /// Staged blocks, in staging order; a re-staged id replaces the old entry.
    pub uncommitted: Vec<StagedBlock>,
}

impl BlobRecord {
    /// Every extent the record references.
    pub fn extents(&self) -> Vec<ExtentId> {
        let mut v = self
            .committed
            .as_ref()
            .map(BlobState::extents)
            .unwrap_or_default();
        v.extend(self.uncommitted.iter().map(|b| b.extent));
        v
    }
}

/// Version byte that starts every encoded record.
pub const RECORD_FORMAT: u8 = 1;

/// A record a persistent backend stores as bytes: [`RECORD_FORMAT`], then the `postcard`
/// encoding of the value. Records are small (a blob record grows by about 40 bytes per
/// committed block).
pub trait Record: Serialize + for<'de> Deserialize<'de> + Sized {
    /// Encodes the record.
    fn encode(&self) -> StorageResult<Vec<u8>> {
        let mut out = vec![RECORD_FORMAT];
        out.extend(postcard::to_stdvec(self).map_err(|e| StorageError::Backend(e.to_string()))?);
        Ok(out)
    }

    /// Decodes a record written by [`Record::encode`].
    fn decode(bytes: &[u8]) -> StorageResult<Self> {
        match bytes.split_first() {
            Some((&RECORD_FORMAT, rest)) => {
                postcard::from_bytes(rest).map_err(|e| StorageError::Backend(e.to_string()))
            }
            Some((v, _)) => Err(StorageError::Backend(format!("unknown record format {v}"))),
            None => Err(StorageError::Backend("empty record".into())),
        }
    }
}

impl Record for ContainerRecord {}
impl Record for BlobRecord {}

/// What the engine needs from a storage backend. See the module documentation for the ordering
/// and durability contract.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Creates an empty extent; `size_hint` is the expected final size (may be 0).
    fn create_extent(&self, size_hint: u64) -> StorageResult<ExtentId>;
    /// Writes `data` at `offset` (the extent grows; a gap reads as zeros).
    fn write_extent(&self, id: ExtentId, offset: u64, data: &[u8]) -> StorageResult<()>;
    /// Writes `len` zero bytes at `offset` (a backend may punch a hole).
    fn zero_extent(&self, id: ExtentId, offset: u64, len: u64) -> StorageResult<()>;
    /// Fills `buf` from `offset`; bytes past the written end read as zeros.
    fn read_extent(&self, id: ExtentId, offset: u64, buf: &mut [u8]) -> StorageResult<()>;
    /// Makes the extent's written bytes durable.
    fn sync_extent(&self, id: ExtentId) -> StorageResult<()>;
    /// Removes an extent.
    fn delete_extent(&self, id: ExtentId) -> StorageResult<()>;

    /// Reads a container record.
    fn get_container(&self, name: &str) -> StorageResult<Option<ContainerRecord>>;
    /// Creates or replaces a container record (atomically).
    fn put_container(&self, name: &str, rec: &ContainerRecord) -> StorageResult<()>;
    /// Removes a container record and every blob record under it.
    fn delete_container(&self, name: &str) -> StorageResult<()>;
    /// Up to `limit` containers whose names are `>= start`, in name order.
    fn list_containers(
        &self,
        start: &str,
        limit: usize,
    ) -> StorageResult<Vec<(String, ContainerRecord)>>;

    /// Reads a blob record.
    fn get_blob(&self, container: &str, name: &str) -> StorageResult<Option<BlobRecord>>;
    /// Creates or replaces a blob record (atomically).
    fn put_blob(&self, container: &str, name: &str, rec: &BlobRecord) -> StorageResult<()>;
    /// Removes a blob record.
    fn delete_blob(&self, container: &str, name: &str) -> StorageResult<()>;
    /// Up to `limit` blob records of a container whose names are `>= start`, in name order.
    fn list_blobs(
        &self,
        container: &str,
        start: &str,
        limit: usize,
    ) -> StorageResult<Vec<(String, BlobRecord)>>;
}

type ExtentCell = Arc<RwLock<Vec<u8>>>;

/// Everything in RAM. Not durable: `sync_extent` is a no-op.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    next_extent: AtomicU64,
    extents: RwLock<HashMap<ExtentId, ExtentCell>>,
    records: RwLock<RecordIndex>,
}

/// The container and blob records of a store, in name order: the index
/// every backend keeps in memory (keeping it durable is the backend's part).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordIndex {
    /// Container records.
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Blob records per container (no empty inner maps).
    pub blobs: BTreeMap<String, BTreeMap<String, BlobRecord>>,
}

impl RecordIndex {
    /// A container record.
    pub fn container(&self, name: &str) -> Option<ContainerRecord> {
        self.containers.get(name).cloned()
    }

    /// Creates or replaces a container record.
    pub fn put_container(&mut self, name: &str, rec: ContainerRecord) {
        self.containers.insert(name.to_string(), rec);
    }

    /// Removes a container record and every blob record under it.
    pub fn delete_container(&mut self, name: &str) {
        self.containers.remove(name);
        self.blobs.remove(name);
    }

    /// Up to `limit` containers whose names are `>= start`.
    pub fn list_containers(&self, start: &str, limit: usize) -> Vec<(String, ContainerRecord)> {
        self.containers
            .range(start.to_string()..)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A blob record.
    pub fn blob(&self, container: &str, name: &str) -> Option<BlobRecord> {
        self.blobs.get(container).and_then(|c| c.get(name)).cloned()
    }

    /// Creates or replaces a blob record.
    pub fn put_blob(&mut self, container: &str, name: &str, rec: BlobRecord) {
        self.blobs
            .entry(container.to_string())
            .or_default()
            .insert(name.to_string(), rec);
    }

    /// Removes a blob record.
    pub fn delete_blob(&mut self, container: &str, name: &str) {
        if let Some(c) = self.blobs.get_mut(container) {
            c.remove(name);
            if c.is_empty() {
                self.blobs.remove(container);
            }
        }
    }

    /// Up to `limit` blob records of a container whose names are `>= start`.
    pub fn list_blobs(
        &self,
        container: &str,
        start: &str,
        limit: usize,
    ) -> Vec<(String, BlobRecord)> {
        self.blobs
            .get(container)
            .map(|c| {
                c.range(start.to_string()..)
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn poisoned() -> StorageError {
    StorageError::Backend("lock poisoned".into())
}

fn to_usize(v: u64) -> StorageResult<usize> {
    usize::try_from(v).map_err(|_| StorageError::Backend("offset too large".into()))
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn cell(&self, id: ExtentId) -> StorageResult<ExtentCell> {
        let map = self.extents.read().map_err(|_| poisoned())?;
        map.get(&id).cloned().ok_or(StorageError::NoSuchExtent(id))
    }

    /// Number of live extents (for leak checks in tests).
    pub fn extent_count(&self) -> usize {
        self.extents.read().map(|m| m.len()).unwrap_or(0)
    }

    /// A copy of everything stored, for "the store is unchanged" checks.
    pub fn snapshot(&self) -> StorageResult<Snapshot> {
        let extents = self.extents.read().map_err(|_| poisoned())?;
        let mut ext = BTreeMap::new();
        for (id, cell) in extents.iter() {
            ext.insert(*id, cell.read().map_err(|_| poisoned())?.clone());
        }
        Ok(Snapshot {
            containers: self
                .records
                .read()
                .map_err(|_| poisoned())?
                .containers
                .clone(),
            blobs: self.records.read().map_err(|_| poisoned())?.blobs.clone(),
            extents: ext,
        })
    }
}

/// Everything a [`MemoryStorage`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Container records.
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Blob records per container.
    pub blobs: BTreeMap<String, BTreeMap<String, BlobRecord>>,
    /// Extent contents.
    pub extents: BTreeMap<ExtentId, Vec<u8>>,
}

impl Storage for MemoryStorage {
    fn create_extent(&self, size_hint: u64) -> StorageResult<ExtentId> {
        let id = self.next_extent.fetch_add(1, Ordering::Relaxed) + 1;
        // Cap the reservation: the hint comes from a client header.
        let cap = to_usize(size_hint.min(256 << 20))?;
        let cell = Arc::new(RwLock::new(Vec::with_capacity(cap)));
        self.extents
            .write()
            .map_err(|_| poisoned())?
            .insert(id, cell);
        Ok(id)
    }

    fn write_extent(&self, id: ExtentId, offset: u64, data: &[u8]) -> StorageResult<()> {
        let cell = self.cell(id)?;
        let mut v = cell.write().map_err(|_| poisoned())?;
        let off = to_usize(offset)?;
        let end = off
            .checked_add(data.len())
            .ok_or_else(|| StorageError::Backend("offset overflow".into()))?;
        if off == v.len() {
            // Appending (the streaming case): one copy, no zero-fill first.
            v.extend_from_slice(data);
        } else {
            if v.len() < end {
                v.resize(end, 0);
            }
            v[off..end].copy_from_slice(data);
        }
        Ok(())
    }

    fn zero_extent(&self, id: ExtentId, offset: u64, len: u64) -> StorageResult<()> {
        let cell = self.cell(id)?;
        let mut v = cell.write().map_err(|_| poisoned())?;
        let off = to_usize(offset)?;
        let end = off.saturating_add(to_usize(len)?).min(v.len());
        if off < end {
            v[off..end].fill(0);
        }
        Ok(())
    }

    fn read_extent(&self, id: ExtentId, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        let cell = self.cell(id)?;
        let v = cell.read().map_err(|_| poisoned())?;
        let off = to_usize(offset)?;
        let avail = v.len().saturating_sub(off).min(buf.len());
        if avail > 0 {
            buf[..avail].copy_from_slice(&v[off..off + avail]);
        }
        buf[avail..].fill(0);
        Ok(())
    }

    fn sync_extent(&self, id: ExtentId) -> StorageResult<()> {
        self.cell(id).map(|_| ())
    }

    fn delete_extent(&self, id: ExtentId) -> StorageResult<()> {
        self.extents
            .write()
            .map_err(|_| poisoned())?
            .remove(&id)
            .map(|_| ())
            .ok_or(StorageError::NoSuchExtent(id))
    }

    fn get_container(&self, name: &str) -> StorageResult<Option<ContainerRecord>> {
        Ok(self.records.read().map_err(|_| poisoned())?.container(name))
    }

    fn put_container(&self, name: &str, rec: &ContainerRecord) -> StorageResult<()> {
        self.records
            .write()
            .map_err(|_| poisoned())?
            .put_container(name, rec.clone());
        Ok(())
    }

    fn delete_container(&self, name: &str) -> StorageResult<()> {
        self.records
            .write()
            .map_err(|_| poisoned())?
            .delete_container(name);
        Ok(())
    }

    fn list_containers(
        &self,
        start: &str,
        limit: usize,
    ) -> StorageResult<Vec<(String, ContainerRecord)>> {
        Ok(self
            .records
            .read()
            .map_err(|_| poisoned())?
            .list_containers(start, limit))
    }

    fn get_blob(&self, container: &str, name: &str) -> StorageResult<Option<BlobRecord>> {
        Ok(self
            .records
            .read()
            .map_err(|_| poisoned())?
            .blob(container, name))
    }

    fn put_blob(&self, container: &str, name: &str, rec: &BlobRecord) -> StorageResult<()> {
        self.records
            .write()
            .map_err(|_| poisoned())?
            .put_blob(container, name, rec.clone());
        Ok(())
    }

    fn delete_blob(&self, container: &str, name: &str) -> StorageResult<()> {
        self.records
            .write()
            .map_err(|_| poisoned())?
            .delete_blob(container, name);
        Ok(())
    }

    fn list_blobs(
        &self,
        container: &str,
        start: &str,
        limit: usize,
    ) -> StorageResult<Vec<(String, BlobRecord)>> {
        Ok(self
            .records
            .read()
            .map_err(|_| poisoned())?
            .list_blobs(container, start, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_reads_zero_past_written_end_and_gaps() {
        let s = MemoryStorage::new();
        let e = s.create_extent(0).unwrap();
        s.write_extent(e, 4, b"abcd").unwrap();
        let mut buf = [0xffu8; 12];
        s.read_extent(e, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"\0\0\0\0abcd\0\0\0\0");
        s.zero_extent(e, 5, 2).unwrap();
        s.read_extent(e, 4, &mut buf[..4]).unwrap();
        assert_eq!(&buf[..4], b"a\0\0d");
        s.delete_extent(e).unwrap();
        assert!(matches!(
            s.read_extent(e, 0, &mut buf),
            Err(StorageError::NoSuchExtent(_))
        ));
    }

    #[test]
    fn records_round_trip_through_their_encoding() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        let rec = BlobRecord {
            committed: Some(BlobState {
                layout: Layout::Page {
                    extent: 7,
                    ranges: BTreeMap::from([(0, 512), (1024, 2048)]),
                    sequence: 3,
                },
                size: 4096,
                props: ContentProps {
                    content_type: Some("text/plain".into()),
                    content_md5: Some([9; 16]),
                    ..ContentProps::default()
                },
                metadata: vec![("Key".into(), "value".into())],
                etag: "\"0x8DC\"".into(),
                last_modified: t,
                created: t,
                lease: LeaseRecord {
                    id: Some("6a7e8a1c-9f3b-4a55-8d0e-3c1f2b4a5d6e".into()),
                    duration: Some(15),
                    expires: Some(t),
                    break_at: None,
                    breaking: false,
                },
            }),
            uncommitted: vec![StagedBlock {
                id: "QUFB".into(),
                extent: 9,
                len: 3,
            }],
        };
        let bytes = rec.encode().unwrap();
        assert_eq!(bytes[0], RECORD_FORMAT);
        assert_eq!(BlobRecord::decode(&bytes).unwrap(), rec);
        assert!(BlobRecord::decode(&[]).is_err());
        assert!(BlobRecord::decode(&[RECORD_FORMAT + 1, 0]).is_err());
        assert!(BlobRecord::decode(&bytes[..bytes.len() / 2]).is_err());
        let c = ContainerRecord {
            metadata: vec![],
            etag: "\"0x1\"".into(),
            last_modified: t,
        };
        assert_eq!(ContainerRecord::decode(&c.encode().unwrap()).unwrap(), c);
    }

    #[test]
    fn listing_is_ordered_and_starts_inclusive() {
        let s = MemoryStorage::new();
        for n in ["b", "a", "c"] {
            s.put_blob("x", n, &BlobRecord::default()).unwrap();
        }
        let names: Vec<_> = s
            .list_blobs("x", "b", 10)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["b", "c"]);
        s.delete_container("x").unwrap();
        assert!(s.list_blobs("x", "", 10).unwrap().is_empty());
    }
}
