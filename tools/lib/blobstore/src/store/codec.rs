//! Metadata chain encoding and decoding for one blob.

use super::*;

pub(super) enum ExtDesc {
    Table {
        num_clusters: u64,
        entries: Vec<(u32, u32)>,
    },
    Rle(Vec<(u32, u32)>),
}

/// Pack descriptors into chain pages. Xattrs never span pages; extent descriptors split.
pub(super) fn build_chain(head: Vec<Descriptor>, ext: ExtDesc) -> Result<Vec<Vec<Descriptor>>> {
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
pub(super) struct Parsed {
    pub(super) invalid: u64,
    pub(super) data_ro: u64,
    pub(super) md_ro: u64,
    pub(super) xattrs: Xattrs,
    pub(super) internal: Xattrs,
    pub(super) use_et: bool,
    pub(super) map: Vec<u32>,
    pub(super) chain: Vec<u32>,
    pub(super) ep_pages: Vec<u32>,
    pub(super) ep_disk: Vec<Vec<u32>>,
}

pub(super) fn parse_blob(
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
