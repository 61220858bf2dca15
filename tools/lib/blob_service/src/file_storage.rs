// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! A persistent [`Storage`] on a plain directory: one file per extent, one file per record.
//!
//! It exists to prove the storage contract with a durable backend (the SPDK Blobstore backend
//! of a later issue follows the same contract) and to let `azure-blob-httpd --data-dir` keep
//! data across restarts.
//!
//! Layout under the root directory:
//!
//! * `extents/<id>`: extent bytes, written with `pwrite`, made durable by `sync_extent`
//!   (`fdatasync`);
//! * `containers/<hex name>`: encoded [`ContainerRecord`];
//! * `blobs/<hex container>/<hex name>`: encoded [`BlobRecord`].
//!
//! A record is replaced atomically: written to a temporary file, synced, renamed over the old
//! one, and the directory synced. Records are also kept in memory (loaded at open) for
//! listing. At open, extent files that no record references are removed: they are the
//! leftovers of writes that were never acknowledged.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use crate::storage::{
    BlobRecord, ContainerRecord, ExtentId, Record, RecordIndex, Storage, StorageError,
    StorageResult,
};

/// Extents and records in a directory.
#[derive(Debug)]
pub struct FileStorage {
    root: PathBuf,
    next_extent: AtomicU64,
    records: RwLock<RecordIndex>,
}

fn io(e: std::io::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

fn poisoned() -> StorageError {
    StorageError::Backend("lock poisoned".into())
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> StorageResult<String> {
    let bad = || StorageError::Backend(format!("bad record file name {s:?}"));
    if s.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or(""), 16).map_err(|_| bad()))
        .collect::<StorageResult<Vec<u8>>>()?;
    String::from_utf8(bytes).map_err(|_| bad())
}

fn sync_dir(dir: &Path) -> StorageResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// Writes `bytes` to `path` atomically and durably.
fn replace_file(path: &Path, bytes: &[u8]) -> StorageResult<()> {
    let dir = path
        .parent()
        .ok_or_else(|| StorageError::Backend("record path has no parent".into()))?;
    fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    sync_dir(dir)
}

fn remove_file(path: &Path) -> StorageResult<()> {
    match fs::remove_file(path) {
        Ok(()) => path.parent().map_or(Ok(()), sync_dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(e)),
    }
}

fn read_dir_files(dir: &Path) -> StorageResult<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(e)),
    };
    for e in entries {
        let e = e.map_err(io)?;
        let name = e.file_name().to_string_lossy().into_owned();
        out.push((name, e.path()));
    }
    Ok(out)
}

impl FileStorage {
    /// Opens (or creates) a store in `root`, loading its records and removing unreferenced
    /// extents.
    pub fn open(root: impl Into<PathBuf>) -> StorageResult<Self> {
        let root = root.into();
        for d in ["extents", "containers", "blobs"] {
            fs::create_dir_all(root.join(d)).map_err(io)?;
        }
        let mut records = RecordIndex::default();
        for (name, path) in read_dir_files(&root.join("containers"))? {
            if name.ends_with(".tmp") {
                remove_file(&path)?;
                continue;
            }
            let rec = ContainerRecord::decode(&fs::read(&path).map_err(io)?)?;
            records.put_container(&unhex(&name)?, rec);
        }
        let mut live = HashSet::new();
        for (cname, cpath) in read_dir_files(&root.join("blobs"))? {
            let container = unhex(&cname)?;
            for (bname, bpath) in read_dir_files(&cpath)? {
                if bname.ends_with(".tmp") {
                    remove_file(&bpath)?;
                    continue;
                }
                let rec = BlobRecord::decode(&fs::read(&bpath).map_err(io)?)?;
                live.extend(rec.extents());
                records.put_blob(&container, &unhex(&bname)?, rec);
            }
        }
        let mut max_id = 0;
        for (name, path) in read_dir_files(&root.join("extents"))? {
            let Ok(id) = name.parse::<ExtentId>() else {
                continue;
            };
            max_id = max_id.max(id);
            if !live.contains(&id) {
                remove_file(&path)?;
            }
        }
        Ok(Self {
            root,
            next_extent: AtomicU64::new(max_id),
            records: RwLock::new(records),
        })
    }

    fn extent_path(&self, id: ExtentId) -> PathBuf {
        self.root.join("extents").join(id.to_string())
    }

    fn extent(&self, id: ExtentId, write: bool) -> StorageResult<File> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .open(self.extent_path(id))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StorageError::NoSuchExtent(id),
                _ => io(e),
            })
    }

    fn blob_path(&self, container: &str, name: &str) -> PathBuf {
        self.root.join("blobs").join(hex(container)).join(hex(name))
    }

    /// Number of extent files (for leak checks in tests).
    pub fn extent_count(&self) -> StorageResult<usize> {
        Ok(read_dir_files(&self.root.join("extents"))?.len())
    }
}

impl Storage for FileStorage {
    fn create_extent(&self, _size_hint: u64) -> StorageResult<ExtentId> {
        let id = self.next_extent.fetch_add(1, Ordering::Relaxed) + 1;
        File::create(self.extent_path(id)).map_err(io)?;
        Ok(id)
    }

    fn write_extent(&self, id: ExtentId, offset: u64, data: &[u8]) -> StorageResult<()> {
        self.extent(id, true)?
            .write_all_at(data, offset)
            .map_err(io)
    }

    fn zero_extent(&self, id: ExtentId, offset: u64, len: u64) -> StorageResult<()> {
        let f = self.extent(id, true)?;
        let end = f
            .metadata()
            .map_err(io)?
            .len()
            .min(offset.saturating_add(len));
        let zeros = vec![0u8; 64 * 1024];
        let mut pos = offset;
        while pos < end {
            let n = zeros
                .len()
                .min(usize::try_from(end - pos).unwrap_or(zeros.len()));
            f.write_all_at(&zeros[..n], pos).map_err(io)?;
            pos += n as u64;
        }
        Ok(())
    }

    fn read_extent(&self, id: ExtentId, offset: u64, buf: &mut [u8]) -> StorageResult<()> {
        let f = self.extent(id, false)?;
        let mut done = 0;
        while done < buf.len() {
            match f.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        buf[done..].fill(0);
        Ok(())
    }

    fn sync_extent(&self, id: ExtentId) -> StorageResult<()> {
        self.extent(id, false)?.sync_data().map_err(io)?;
        sync_dir(&self.root.join("extents"))
    }

    fn delete_extent(&self, id: ExtentId) -> StorageResult<()> {
        remove_file(&self.extent_path(id))
    }

    fn get_container(&self, name: &str) -> StorageResult<Option<ContainerRecord>> {
        Ok(self.records.read().map_err(|_| poisoned())?.container(name))
    }

    fn put_container(&self, name: &str, rec: &ContainerRecord) -> StorageResult<()> {
        replace_file(
            &self.root.join("containers").join(hex(name)),
            &rec.encode()?,
        )?;
        self.records
            .write()
            .map_err(|_| poisoned())?
            .put_container(name, rec.clone());
        Ok(())
    }

    fn delete_container(&self, name: &str) -> StorageResult<()> {
        // Blob records first: a crash in between leaves a container without blobs, never
        // blobs without a container.
        let dir = self.root.join("blobs").join(hex(name));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io)?;
            sync_dir(&self.root.join("blobs"))?;
        }
        remove_file(&self.root.join("containers").join(hex(name)))?;
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
        replace_file(&self.blob_path(container, name), &rec.encode()?)?;
        self.records
            .write()
            .map_err(|_| poisoned())?
            .put_blob(container, name, rec.clone());
        Ok(())
    }

    fn delete_blob(&self, container: &str, name: &str) -> StorageResult<()> {
        remove_file(&self.blob_path(container, name))?;
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
    fn names_round_trip_through_hex() {
        for n in ["a", "dir/sub/file.txt", "ünïcode ☃", ""] {
            assert_eq!(unhex(&hex(n)).unwrap(), n);
        }
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }
}
