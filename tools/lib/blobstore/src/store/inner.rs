//! The metadata owner's operations: the commit protocol, first-write allocation, deletion.

use super::*;

impl Inner {
    pub(super) fn md(&self) -> Result<MutexGuard<'_, Md>> {
        let g = lock_md(&self.md);
        if g.unloaded {
            return Err(Error::Unloaded);
        }
        Ok(g)
    }

    pub(super) fn write_page(&self, page: u32, buf: &[u8]) -> Result<()> {
        self.dev.write_at(buf, self.geo.page_off(page))?;
        Ok(())
    }

    pub(super) fn read_page(&self, page: u32) -> Result<Vec<u8>> {
        let mut b = vec![0u8; PAGE_SIZE];
        self.dev.read_at(&mut b, self.geo.page_off(page))?;
        Ok(b)
    }

    pub(super) fn zero_page(&self, page: u32) -> Result<()> {
        self.dev
            .write_zeroes(self.geo.page_off(page), self.geo.md_page_size)?;
        Ok(())
    }

    /// Before the first metadata change after a load: write clean = 0 and make it durable, so a
    /// crash after any later change never meets stale allocation masks flagged clean.
    pub(super) fn mark_dirty(&self, md: &mut Md) -> Result<()> {
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
    pub(super) fn claim_page(pages: &mut Bits, from: usize) -> Result<u32> {
        let p = pages
            .first_clear(from)
            .ok_or_else(|| Error::NoSpace("no free metadata page".into()))?;
        pages.set(p);
        Ok(p as u32)
    }

    pub(super) fn claim_cluster(md: &mut Md) -> Result<u32> {
        let c = md
            .clusters
            .first_clear(0)
            .ok_or_else(|| Error::NoSpace("no free cluster".into()))?;
        md.clusters.set(c);
        Ok(c as u32)
    }

    pub(super) fn release_cluster(&self, md: &mut Md, c: u32, method: ClearMethod) {
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

    pub(super) fn ep_page_bytes(id: BlobId, e: usize, entries: &[u32]) -> Vec<u8> {
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
    pub(super) fn persist(&self, md: &mut Md, id: BlobId, ms: &MapState) -> Result<()> {
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
    pub(super) fn persist_alloc(
        &self,
        md: &mut Md,
        id: BlobId,
        ms: &MapState,
        idx: usize,
    ) -> Result<()> {
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
    pub(super) fn read_cluster(
        &self,
        ms: &MapState,
        idx: usize,
        off: u64,
        buf: &mut [u8],
    ) -> Result<()> {
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

    pub(super) fn ancestor_has(ms: &MapState, idx: usize) -> bool {
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
    pub(super) fn alloc_and_write(
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

    pub(super) fn verify_on_disk(&self, b: &BlobMd) -> Result<()> {
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
    pub(super) fn delete_locked(&self, md: &mut Md, id: BlobId, ms: &MapState) -> Result<()> {
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
