//! Blob handles: metadata calls and the data path.

use super::*;

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
