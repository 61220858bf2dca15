//! Store lifecycle: init, load (with recovery and repair), unload, grow.

use super::*;

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
                    Err(Error::Format(m)) => {
                        tracing::warn!("recovery drops blob {id:#x}: {m}");
                    }
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
            tracing::info!(
                "load: interrupted snapshot {} of {sid:#x}: {}",
                if tmp.is_some() { "creation" } else { "removal" },
                if keep {
                    "keeping the snapshot"
                } else {
                    "deleting the snapshot"
                }
            );
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
}
