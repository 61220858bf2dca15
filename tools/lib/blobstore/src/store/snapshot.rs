//! Snapshots, clones, inflate and decouple, and the merge of a snapshot into its clone.

use super::*;

impl Blobstore {
    pub(super) fn merge_snapshot_into_clone(
        &self,
        sid: BlobId,
        s: &Arc<Shared>,
        cid: BlobId,
    ) -> Result<()> {
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
}
