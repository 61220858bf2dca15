//! On-disk format, SPDK Blobstore version 3: super block, allocation masks, metadata pages and
//! their descriptors. Everything is little-endian and packed; this module only encodes and
//! decodes bytes and never touches a device.

use crate::error::{eilseq, Result};

/// Size of the super block and of the page structure inside every metadata page.
pub const PAGE_SIZE: usize = 4096;
/// Super block signature.
pub const SIGNATURE: &[u8; 8] = b"SPDKBLOB";
/// Version written by init; versions 1..=3 load.
pub const VERSION: u32 = 3;
/// `next` value ending a metadata chain.
pub const INVALID_MD_PAGE: u32 = 0xFFFF_FFFF;
/// "No super blob".
pub const NO_SUPER_BLOB: u64 = u64::MAX;
/// Cluster entries in one extent page.
pub const EXTENT_PER_PAGE: usize = 512;
/// Bytes of descriptors in a metadata page.
pub const DESC_SPACE: usize = 4072;
/// Offset of the descriptors in a metadata page.
pub const DESC_OFF: usize = 16;
/// Offset of `next` in a metadata page.
pub const NEXT_OFF: usize = 4088;
/// Offset of the CRC in a page.
pub const CRC_OFF: usize = 4092;

/// Descriptor type: padding (type 0 length 0 ends the page).
pub const DESC_PADDING: u8 = 0;
/// Descriptor type: run-length-encoded extents.
pub const DESC_EXTENT_RLE: u8 = 1;
/// Descriptor type: public xattr.
pub const DESC_XATTR: u8 = 2;
/// Descriptor type: flags.
pub const DESC_FLAGS: u8 = 3;
/// Descriptor type: internal xattr.
pub const DESC_XATTR_INTERNAL: u8 = 4;
/// Descriptor type: extent table.
pub const DESC_EXTENT_TABLE: u8 = 5;
/// Descriptor type: extent page.
pub const DESC_EXTENT_PAGE: u8 = 6;

/// Invalid flag: thin provisioned.
pub const FLAG_THIN_PROV: u64 = 1 << 0;
/// Invalid flag: has internal xattrs.
pub const FLAG_INTERNAL_XATTR: u64 = 1 << 1;
/// Invalid flag: uses an extent table.
pub const FLAG_EXTENT_TABLE: u64 = 1 << 2;
/// Invalid flag: external snapshot (not supported here: such a blob is not opened).
pub const FLAG_EXTERNAL_SNAPSHOT: u64 = 1 << 3;
/// Invalid flags this implementation understands.
pub const INVALID_FLAGS_KNOWN: u64 = FLAG_THIN_PROV | FLAG_INTERNAL_XATTR | FLAG_EXTENT_TABLE;
/// data_ro flag: read-only.
pub const DATA_RO_READ_ONLY: u64 = 1 << 0;
/// md_ro bits 0-1: clear method.
pub const MD_RO_CLEAR_MASK: u64 = 0x3;

/// Blob id of the blob whose root page is md page `page`.
pub fn page_to_blobid(page: u32) -> u64 {
    (1u64 << 32) | u64::from(page)
}

/// Root md page of a blob id, or `None` if the id does not have bit 32 set.
pub fn blobid_to_page(id: u64) -> Option<u32> {
    if id >> 32 == 1 {
        Some(id as u32)
    } else {
        None
    }
}

/// CRC of a page: standard CRC-32C (Castagnoli) over bytes 0..4092.
pub fn page_crc(page: &[u8]) -> u32 {
    crc32c::crc32c(&page[..CRC_OFF])
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Seal a page: compute its CRC and store it at byte 4092.
pub fn seal(page: &mut [u8]) {
    let crc = page_crc(page);
    put_u32(page, CRC_OFF, crc);
}

/// Whether the CRC stored in a page matches its contents.
pub fn crc_ok(page: &[u8]) -> bool {
    page.len() >= PAGE_SIZE && get_u32(page, CRC_OFF) == page_crc(page)
}

/// The super block (md page 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperBlock {
    /// Format version (1..=3).
    pub version: u32,
    /// 1 only after an orderly unload.
    pub clean: bool,
    /// Super blob id or [`NO_SUPER_BLOB`].
    pub super_blob: u64,
    /// Cluster size in bytes.
    pub cluster_size: u32,
    /// Used-page mask start, in md pages.
    pub used_page_mask_start: u32,
    /// Used-page mask length, in md pages.
    pub used_page_mask_len: u32,
    /// Used-cluster mask start.
    pub used_cluster_mask_start: u32,
    /// Used-cluster mask length.
    pub used_cluster_mask_len: u32,
    /// First md page of the metadata region.
    pub md_start: u32,
    /// Number of md pages in the metadata region.
    pub md_len: u32,
    /// Blobstore type (all-zero matches anything on load).
    pub bstype: [u8; 16],
    /// Used-blobid mask start.
    pub used_blobid_mask_start: u32,
    /// Used-blobid mask length (0 before v3: forces recovery).
    pub used_blobid_mask_len: u32,
    /// Store size in bytes (0: the device size).
    pub size: u64,
    /// io_unit size in bytes (0: 4096).
    pub io_unit_size: u32,
    /// Metadata page size in bytes (0: 4096).
    pub md_page_size: u32,
}

impl SuperBlock {
    /// Encode into a 4096-byte page with its CRC.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; PAGE_SIZE];
        b[0..8].copy_from_slice(SIGNATURE);
        put_u32(&mut b, 8, self.version);
        put_u32(&mut b, 12, PAGE_SIZE as u32);
        put_u32(&mut b, 16, u32::from(self.clean));
        put_u64(&mut b, 20, self.super_blob);
        put_u32(&mut b, 28, self.cluster_size);
        put_u32(&mut b, 32, self.used_page_mask_start);
        put_u32(&mut b, 36, self.used_page_mask_len);
        put_u32(&mut b, 40, self.used_cluster_mask_start);
        put_u32(&mut b, 44, self.used_cluster_mask_len);
        put_u32(&mut b, 48, self.md_start);
        put_u32(&mut b, 52, self.md_len);
        b[56..72].copy_from_slice(&self.bstype);
        put_u32(&mut b, 72, self.used_blobid_mask_start);
        put_u32(&mut b, 76, self.used_blobid_mask_len);
        put_u64(&mut b, 80, self.size);
        put_u32(&mut b, 88, self.io_unit_size);
        put_u32(&mut b, 92, self.md_page_size);
        seal(&mut b);
        b
    }

    /// Decode and validate a super block.
    ///
    /// # Errors
    /// EILSEQ for a bad signature, version or CRC.
    pub fn decode(b: &[u8]) -> Result<Self> {
        if b.len() < PAGE_SIZE {
            return Err(eilseq("short super block"));
        }
        if &b[0..8] != SIGNATURE {
            return Err(eilseq("bad super block signature"));
        }
        let version = get_u32(b, 8);
        if !(1..=VERSION).contains(&version) {
            return Err(eilseq(format!("unsupported version {version}")));
        }
        if !crc_ok(b) {
            return Err(eilseq("super block CRC mismatch"));
        }
        let mut bstype = [0u8; 16];
        bstype.copy_from_slice(&b[56..72]);
        Ok(SuperBlock {
            version,
            clean: get_u32(b, 16) == 1,
            super_blob: get_u64(b, 20),
            cluster_size: get_u32(b, 28),
            used_page_mask_start: get_u32(b, 32),
            used_page_mask_len: get_u32(b, 36),
            used_cluster_mask_start: get_u32(b, 40),
            used_cluster_mask_len: get_u32(b, 44),
            md_start: get_u32(b, 48),
            md_len: get_u32(b, 52),
            bstype,
            used_blobid_mask_start: get_u32(b, 72),
            used_blobid_mask_len: get_u32(b, 76),
            size: get_u64(b, 80),
            io_unit_size: get_u32(b, 88),
            md_page_size: get_u32(b, 92),
        })
    }
}

/// Allocation mask types.
pub const MASK_PAGES: u8 = 0;
/// Cluster mask.
pub const MASK_CLUSTERS: u8 = 1;
/// Blob id mask.
pub const MASK_BLOBIDS: u8 = 2;

/// Encode an allocation mask `{u8 type; u32 length_in_bits; u8 mask[]}` into `len_bytes` bytes.
pub fn encode_mask(kind: u8, bits: &[bool], len_bytes: usize) -> Vec<u8> {
    let mut b = vec![0u8; len_bytes.max(5 + bits.len().div_ceil(8))];
    b[0] = kind;
    put_u32(&mut b, 1, bits.len() as u32);
    for (i, &set) in bits.iter().enumerate() {
        if set {
            b[5 + (i >> 3)] |= 1 << (i & 7);
        }
    }
    b
}

/// Decode an allocation mask; returns the bits.
///
/// # Errors
/// EILSEQ if the type differs or the length does not fit.
pub fn decode_mask(kind: u8, b: &[u8]) -> Result<Vec<bool>> {
    if b.len() < 5 || b[0] != kind {
        return Err(eilseq(format!("bad allocation mask type (want {kind})")));
    }
    let n = get_u32(b, 1) as usize;
    if 5 + n.div_ceil(8) > b.len() {
        return Err(eilseq("allocation mask longer than its region"));
    }
    Ok((0..n)
        .map(|i| b[5 + (i >> 3)] & (1 << (i & 7)) != 0)
        .collect())
}

/// One descriptor of a metadata page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Descriptor {
    /// Flags (always first in a root page).
    Flags {
        /// Invalid flags (unknown bit: blob cannot be opened).
        invalid: u64,
        /// Data read-only flags.
        data_ro: u64,
        /// Metadata read-only flags (bits 0-1: clear method).
        md_ro: u64,
    },
    /// Public or internal xattr.
    Xattr {
        /// Internal (type 4) rather than public (type 2).
        internal: bool,
        /// Name, no NUL.
        name: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Run-length encoded extents `(cluster_idx, length)`; cluster 0 = unallocated.
    ExtentRle(Vec<(u32, u32)>),
    /// Extent table: blob size in clusters and `(page_idx, num_pages)` runs.
    ExtentTable {
        /// Blob size in clusters.
        num_clusters: u64,
        /// Runs; page 0 = a run of unallocated extent pages.
        pages: Vec<(u32, u32)>,
    },
    /// Extent page body (only in a standalone extent page).
    ExtentPage {
        /// Index of the first cluster this page covers.
        start: u32,
        /// Cluster numbers, 0 = unallocated.
        clusters: Vec<u32>,
    },
    /// A type this implementation does not know.
    Unknown {
        /// The descriptor type.
        kind: u8,
    },
}

impl Descriptor {
    /// Encoded size (header + body).
    pub fn encoded_len(&self) -> usize {
        5 + match self {
            Descriptor::Flags { .. } => 24,
            Descriptor::Xattr { name, value, .. } => 4 + name.len() + value.len(),
            Descriptor::ExtentRle(r) => 8 * r.len(),
            Descriptor::ExtentTable { pages, .. } => 8 + 8 * pages.len(),
            Descriptor::ExtentPage { clusters, .. } => 4 + 4 * clusters.len(),
            Descriptor::Unknown { .. } => 0,
        }
    }

    fn encode_into(&self, b: &mut Vec<u8>) {
        let (kind, body_len) = match self {
            Descriptor::Flags { .. } => (DESC_FLAGS, 24),
            Descriptor::Xattr { internal, .. } => (
                if *internal {
                    DESC_XATTR_INTERNAL
                } else {
                    DESC_XATTR
                },
                self.encoded_len() - 5,
            ),
            Descriptor::ExtentRle(_) => (DESC_EXTENT_RLE, self.encoded_len() - 5),
            Descriptor::ExtentTable { .. } => (DESC_EXTENT_TABLE, self.encoded_len() - 5),
            Descriptor::ExtentPage { .. } => (DESC_EXTENT_PAGE, self.encoded_len() - 5),
            Descriptor::Unknown { kind } => (*kind, 0),
        };
        b.push(kind);
        b.extend_from_slice(&(body_len as u32).to_le_bytes());
        match self {
            Descriptor::Flags {
                invalid,
                data_ro,
                md_ro,
            } => {
                b.extend_from_slice(&invalid.to_le_bytes());
                b.extend_from_slice(&data_ro.to_le_bytes());
                b.extend_from_slice(&md_ro.to_le_bytes());
            }
            Descriptor::Xattr { name, value, .. } => {
                b.extend_from_slice(&(name.len() as u16).to_le_bytes());
                b.extend_from_slice(&(value.len() as u16).to_le_bytes());
                b.extend_from_slice(name);
                b.extend_from_slice(value);
            }
            Descriptor::ExtentRle(runs) => {
                for (c, l) in runs {
                    b.extend_from_slice(&c.to_le_bytes());
                    b.extend_from_slice(&l.to_le_bytes());
                }
            }
            Descriptor::ExtentTable {
                num_clusters,
                pages,
            } => {
                b.extend_from_slice(&num_clusters.to_le_bytes());
                for (p, n) in pages {
                    b.extend_from_slice(&p.to_le_bytes());
                    b.extend_from_slice(&n.to_le_bytes());
                }
            }
            Descriptor::ExtentPage { start, clusters } => {
                b.extend_from_slice(&start.to_le_bytes());
                for c in clusters {
                    b.extend_from_slice(&c.to_le_bytes());
                }
            }
            Descriptor::Unknown { .. } => {}
        }
    }
}

/// A decoded metadata page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdPage {
    /// Owning blob id.
    pub id: u64,
    /// Position in the chain (0 = root or extent page).
    pub sequence_num: u32,
    /// Descriptors in page order.
    pub descriptors: Vec<Descriptor>,
    /// Next md page of the chain or [`INVALID_MD_PAGE`].
    pub next: u32,
}

impl MdPage {
    /// Encode into a 4096-byte page with its CRC. The descriptors must fit in [`DESC_SPACE`].
    pub fn encode(&self) -> Vec<u8> {
        let mut desc = Vec::with_capacity(DESC_SPACE);
        for d in &self.descriptors {
            d.encode_into(&mut desc);
        }
        debug_assert!(desc.len() <= DESC_SPACE);
        desc.truncate(DESC_SPACE);
        let mut b = vec![0u8; PAGE_SIZE];
        put_u64(&mut b, 0, self.id);
        put_u32(&mut b, 8, self.sequence_num);
        b[DESC_OFF..DESC_OFF + desc.len()].copy_from_slice(&desc);
        put_u32(&mut b, NEXT_OFF, self.next);
        seal(&mut b);
        b
    }

    /// Decode a page without checking its CRC (see [`crc_ok`]).
    ///
    /// # Errors
    /// EILSEQ if a descriptor overruns the page or is malformed.
    pub fn decode(b: &[u8]) -> Result<Self> {
        if b.len() < PAGE_SIZE {
            return Err(eilseq("short metadata page"));
        }
        let mut descriptors = Vec::new();
        let area = &b[DESC_OFF..DESC_OFF + DESC_SPACE];
        let mut off = 0;
        while off + 5 <= area.len() {
            let kind = area[off];
            let len = get_u32(area, off + 1) as usize;
            if kind == DESC_PADDING && len == 0 {
                break;
            }
            let body_start = off + 5;
            let body_end = body_start
                .checked_add(len)
                .filter(|&e| e <= area.len())
                .ok_or_else(|| eilseq("descriptor overruns its page"))?;
            let body = &area[body_start..body_end];
            descriptors.push(decode_desc(kind, body)?);
            off = body_end;
        }
        Ok(MdPage {
            id: get_u64(b, 0),
            sequence_num: get_u32(b, 8),
            descriptors,
            next: get_u32(b, NEXT_OFF),
        })
    }
}

fn decode_desc(kind: u8, body: &[u8]) -> Result<Descriptor> {
    Ok(match kind {
        DESC_PADDING => Descriptor::Unknown { kind },
        DESC_FLAGS => {
            if body.len() != 24 {
                return Err(eilseq("flags descriptor length is not 24"));
            }
            Descriptor::Flags {
                invalid: get_u64(body, 0),
                data_ro: get_u64(body, 8),
                md_ro: get_u64(body, 16),
            }
        }
        DESC_XATTR | DESC_XATTR_INTERNAL => {
            if body.len() < 4 {
                return Err(eilseq("short xattr descriptor"));
            }
            let nl = usize::from(get_u16(body, 0));
            let vl = usize::from(get_u16(body, 2));
            if 4 + nl + vl != body.len() {
                return Err(eilseq("xattr descriptor length mismatch"));
            }
            Descriptor::Xattr {
                internal: kind == DESC_XATTR_INTERNAL,
                name: body[4..4 + nl].to_vec(),
                value: body[4 + nl..].to_vec(),
            }
        }
        DESC_EXTENT_RLE => {
            if body.len() % 8 != 0 {
                return Err(eilseq("RLE descriptor length not a multiple of 8"));
            }
            Descriptor::ExtentRle(
                body.chunks_exact(8)
                    .map(|c| (get_u32(c, 0), get_u32(c, 4)))
                    .collect(),
            )
        }
        DESC_EXTENT_TABLE => {
            if body.len() < 8 || (body.len() - 8) % 8 != 0 {
                return Err(eilseq("bad extent table descriptor length"));
            }
            Descriptor::ExtentTable {
                num_clusters: get_u64(body, 0),
                pages: body[8..]
                    .chunks_exact(8)
                    .map(|c| (get_u32(c, 0), get_u32(c, 4)))
                    .collect(),
            }
        }
        DESC_EXTENT_PAGE => {
            if body.len() < 4 || (body.len() - 4) % 4 != 0 || (body.len() - 4) / 4 > EXTENT_PER_PAGE
            {
                return Err(eilseq("bad extent page descriptor length"));
            }
            Descriptor::ExtentPage {
                start: get_u32(body, 0),
                clusters: body[4..].chunks_exact(4).map(|c| get_u32(c, 0)).collect(),
            }
        }
        _ => Descriptor::Unknown { kind },
    })
}

/// Run-length encode a cluster map (cluster numbers, 0 = unallocated): consecutive cluster
/// numbers merge into one run, as do consecutive unallocated entries.
pub fn rle_encode(map: &[u32]) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &c in map {
        if let Some(last) = runs.last_mut() {
            let contiguous = if last.0 == 0 {
                c == 0
            } else {
                c != 0 && c == last.0 + last.1
            };
            if contiguous {
                last.1 += 1;
                continue;
            }
        }
        runs.push((c, 1));
    }
    runs
}

/// Encode the extent-table page list: unallocated pages merge into runs, each allocated page
/// is its own entry with `num_pages` 1.
pub fn extent_table_encode(pages: &[u32]) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &p in pages {
        if p == 0 {
            if let Some(last) = runs.last_mut() {
                if last.0 == 0 {
                    last.1 += 1;
                    continue;
                }
            }
        }
        runs.push((p, 1));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_vectors() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::crc32c(&[0u8; 4092]), 0xa732_586e);
    }

    #[test]
    fn v1_superblock_vector() {
        let sb = SuperBlock {
            version: 1,
            clean: true,
            super_blob: NO_SUPER_BLOB,
            cluster_size: 0x10_0000,
            used_page_mask_start: 1,
            used_page_mask_len: 1,
            used_cluster_mask_start: 2,
            used_cluster_mask_len: 1,
            md_start: 3,
            md_len: 0x40,
            bstype: [0; 16],
            used_blobid_mask_start: 0,
            used_blobid_mask_len: 0,
            size: 0,
            io_unit_size: 0,
            md_page_size: 0,
        };
        let b = sb.encode();
        assert_eq!(get_u32(&b, CRC_OFF), 0xdab3_a27d);
        assert_eq!(SuperBlock::decode(&b).ok(), Some(sb));
    }

    #[test]
    fn empty_blob_vector() {
        let p = MdPage {
            id: 0x1_0000_0000,
            sequence_num: 0,
            descriptors: vec![
                Descriptor::Flags {
                    invalid: FLAG_EXTENT_TABLE,
                    data_ro: 0,
                    md_ro: 0,
                },
                Descriptor::ExtentTable {
                    num_clusters: 0,
                    pages: vec![],
                },
            ],
            next: INVALID_MD_PAGE,
        };
        let b = p.encode();
        assert_eq!(get_u32(&b, CRC_OFF), 0x3c5b_3a12);
        assert_eq!(MdPage::decode(&b).ok(), Some(p));
    }

    #[test]
    fn one_cluster_blob_vector() {
        let root = MdPage {
            id: 0x1_0000_0000,
            sequence_num: 0,
            descriptors: vec![
                Descriptor::Flags {
                    invalid: FLAG_EXTENT_TABLE,
                    data_ro: 0,
                    md_ro: 0,
                },
                Descriptor::ExtentTable {
                    num_clusters: 1,
                    pages: extent_table_encode(&[1]),
                },
            ],
            next: INVALID_MD_PAGE,
        };
        assert_eq!(get_u32(&root.encode(), CRC_OFF), 0x7281_2e0a);
        let ep = MdPage {
            id: 0x1_0000_0000,
            sequence_num: 0,
            descriptors: vec![Descriptor::ExtentPage {
                start: 0,
                clusters: vec![1],
            }],
            next: INVALID_MD_PAGE,
        };
        assert_eq!(get_u32(&ep.encode(), CRC_OFF), 0x33f3_a763);
    }

    #[test]
    fn mask_roundtrip_and_bit_order() {
        let bits = vec![true, false, false, true, false, false, false, false, true];
        let b = encode_mask(MASK_CLUSTERS, &bits, 4096);
        assert_eq!(b[0], MASK_CLUSTERS);
        assert_eq!(get_u32(&b, 1), 9);
        assert_eq!(b[5], 0b0000_1001);
        assert_eq!(b[6], 0b0000_0001);
        assert_eq!(decode_mask(MASK_CLUSTERS, &b).ok(), Some(bits));
        assert!(decode_mask(MASK_PAGES, &b).is_err());
    }

    #[test]
    fn rle_merges_runs() {
        assert_eq!(
            rle_encode(&[5, 6, 7, 0, 0, 9, 3]),
            vec![(5, 3), (0, 2), (9, 1), (3, 1)]
        );
        assert_eq!(
            extent_table_encode(&[4, 5, 0, 0, 0, 7]),
            vec![(4, 1), (5, 1), (0, 3), (7, 1)]
        );
    }

    #[test]
    fn blob_ids() {
        assert_eq!(page_to_blobid(0), 0x1_0000_0000);
        assert_eq!(blobid_to_page(0x1_0000_0007), Some(7));
        assert_eq!(blobid_to_page(7), None);
    }

    #[test]
    fn superblock_rejects_corruption() {
        let sb = SuperBlock {
            version: 3,
            clean: false,
            super_blob: NO_SUPER_BLOB,
            cluster_size: 4096,
            used_page_mask_start: 1,
            used_page_mask_len: 1,
            used_cluster_mask_start: 2,
            used_cluster_mask_len: 1,
            md_start: 4,
            md_len: 16,
            bstype: [0; 16],
            used_blobid_mask_start: 3,
            used_blobid_mask_len: 1,
            size: 1 << 20,
            io_unit_size: 4096,
            md_page_size: 4096,
        };
        let mut b = sb.encode();
        b[100] ^= 1;
        assert_eq!(
            SuperBlock::decode(&b).map_err(|e| e.errno()).err(),
            Some(84)
        );
        let mut b = sb.encode();
        put_u32(&mut b, 8, 4);
        seal(&mut b);
        assert_eq!(
            SuperBlock::decode(&b).map_err(|e| e.errno()).err(),
            Some(84)
        );
    }
}
