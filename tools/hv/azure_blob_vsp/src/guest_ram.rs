// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Guest physical memory as the host sees it: the QEMU memory-backend file
//! mapped shared, with every access checked against the guest's RAM ranges.
//!
//! Nothing here trusts a guest physical address: a range outside guest RAM is
//! an error, never a crash. Ring indices are read and written with 32-bit
//! atomic accesses.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Size of a Hyper-V page, the unit of PFNs on the wire.
pub const PAGE_SIZE: u64 = 4096;

/// q35 keeps all RAM below 4 GiB when it is smaller than this.
const Q35_LOWMEM_LIMIT: u64 = 0xb000_0000;
/// Otherwise the first 2 GiB stay low and the rest starts at 4 GiB.
const Q35_LOWMEM_SPLIT: u64 = 0x8000_0000;
const FOUR_GIB: u64 = 0x1_0000_0000;

/// Errors of guest memory access.
#[derive(Debug, thiserror::Error)]
pub enum GuestRamError {
    /// The range is not entirely inside guest RAM.
    #[error("GPA range {gpa:#x}+{len:#x} is outside guest RAM")]
    OutOfRange {
        /// First guest physical address of the range.
        gpa: u64,
        /// Length of the range in bytes.
        len: u64,
    },
    /// The guest RAM file could not be opened or inspected.
    #[error("guest RAM file {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The mapping could not be created.
    #[error("cannot map guest RAM: {0}")]
    Map(String),
}

/// Identity of a mapped file: (device, inode, size). A changed identity means
/// QEMU created a new RAM file and the mapping must be redone.
pub type FileIdentity = (u64, u64, u64);

/// Guest RAM mapped into this process.
#[derive(Debug)]
pub struct GuestRam {
    mem: GuestMemoryMmap,
    size: u64,
    identity: Option<FileIdentity>,
}

impl GuestRam {
    /// Allocates `size` bytes of private anonymous memory as guest RAM at
    /// GPA 0 (for in-process tests).
    pub fn anonymous(size: usize) -> Result<Self, GuestRamError> {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)])
            .map_err(|e| GuestRamError::Map(e.to_string()))?;
        Ok(Self {
            mem,
            size: size as u64,
            identity: None,
        })
    }

    /// Maps a QEMU `memory-backend-file` (share=on) of a q35 machine.
    ///
    /// With less than 2.75 GiB of RAM the file offset is the GPA; with more,
    /// the first 2 GiB are at GPA 0 and the rest at GPA 4 GiB.
    pub fn from_file(path: &Path) -> Result<Self, GuestRamError> {
        let open_err = |source| GuestRamError::Open {
            path: path.display().to_string(),
            source,
        };
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(open_err)?;
        Self::from_open_file(file).map_err(|e| match e {
            GuestRamError::Map(m) => GuestRamError::Map(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Maps an open file (read-write) as guest RAM, q35 layout.
    pub fn from_open_file(file: File) -> Result<Self, GuestRamError> {
        let open_err = |source| GuestRamError::Open {
            path: "(open file)".into(),
            source,
        };
        let meta = file.metadata().map_err(open_err)?;
        let size = meta.len();
        if size < PAGE_SIZE {
            return Err(GuestRamError::Map(format!(
                "{size} bytes, too small to be guest RAM"
            )));
        }
        let usize_of = |v: u64| {
            usize::try_from(v).map_err(|_| GuestRamError::Map(format!("size {v:#x} too large")))
        };
        let file = std::sync::Arc::new(file);
        let ranges: Vec<(GuestAddress, usize, Option<FileOffset>)> = if size < Q35_LOWMEM_LIMIT {
            vec![(
                GuestAddress(0),
                usize_of(size)?,
                Some(FileOffset::from_arc(file, 0)),
            )]
        } else {
            vec![
                (
                    GuestAddress(0),
                    usize_of(Q35_LOWMEM_SPLIT)?,
                    Some(FileOffset::from_arc(file.clone(), 0)),
                ),
                (
                    GuestAddress(FOUR_GIB),
                    usize_of(size - Q35_LOWMEM_SPLIT)?,
                    Some(FileOffset::from_arc(file, Q35_LOWMEM_SPLIT)),
                ),
            ]
        };
        let mem = GuestMemoryMmap::from_ranges_with_files(ranges)
            .map_err(|e| GuestRamError::Map(e.to_string()))?;
        Ok(Self {
            mem,
            size,
            identity: Some((meta.dev(), meta.ino(), size)),
        })
    }

    /// The identity of a file on disk, to compare with [`GuestRam::identity`].
    pub fn file_identity(path: &Path) -> std::io::Result<FileIdentity> {
        let meta = std::fs::metadata(path)?;
        Ok((meta.dev(), meta.ino(), meta.len()))
    }

    /// The identity of the mapped file, if this RAM is a file.
    pub fn identity(&self) -> Option<FileIdentity> {
        self.identity
    }

    /// Bytes of guest RAM.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks that `gpa..gpa+len` lies entirely in guest RAM.
    pub fn check(&self, gpa: u64, len: u64) -> Result<(), GuestRamError> {
        let err = GuestRamError::OutOfRange { gpa, len };
        if len == 0 {
            return Ok(());
        }
        let len_usize = usize::try_from(len).map_err(|_| GuestRamError::OutOfRange { gpa, len })?;
        if gpa.checked_add(len).is_none() || !self.mem.check_range(GuestAddress(gpa), len_usize) {
            return Err(err);
        }
        Ok(())
    }

    /// Checks that guest page `pfn` lies in guest RAM and returns its GPA.
    pub fn page_gpa(&self, pfn: u64) -> Result<u64, GuestRamError> {
        let gpa = pfn
            .checked_mul(PAGE_SIZE)
            .ok_or(GuestRamError::OutOfRange {
                gpa: u64::MAX,
                len: PAGE_SIZE,
            })?;
        self.check(gpa, PAGE_SIZE)?;
        Ok(gpa)
    }

    /// Copies guest memory at `gpa` into `buf`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestRamError> {
        self.check(gpa, buf.len() as u64)?;
        self.mem
            .read_slice(buf, GuestAddress(gpa))
            .map_err(|_| GuestRamError::OutOfRange {
                gpa,
                len: buf.len() as u64,
            })
    }

    /// Copies `buf` into guest memory at `gpa`.
    pub fn write(&self, gpa: u64, buf: &[u8]) -> Result<(), GuestRamError> {
        self.check(gpa, buf.len() as u64)?;
        self.mem
            .write_slice(buf, GuestAddress(gpa))
            .map_err(|_| GuestRamError::OutOfRange {
                gpa,
                len: buf.len() as u64,
            })
    }

    /// Atomic 32-bit load (the GPA must be 4-byte aligned).
    pub fn load_u32(&self, gpa: u64, order: Ordering) -> Result<u32, GuestRamError> {
        self.check(gpa, 4)?;
        self.mem
            .load::<u32>(GuestAddress(gpa), order)
            .map_err(|_| GuestRamError::OutOfRange { gpa, len: 4 })
    }

    /// Atomic 32-bit store (the GPA must be 4-byte aligned).
    pub fn store_u32(&self, gpa: u64, val: u32, order: Ordering) -> Result<(), GuestRamError> {
        self.check(gpa, 4)?;
        self.mem
            .store(val, GuestAddress(gpa), order)
            .map_err(|_| GuestRamError::OutOfRange { gpa, len: 4 })
    }

    /// Atomic 64-bit load (the GPA must be 8-byte aligned).
    pub fn load_u64(&self, gpa: u64, order: Ordering) -> Result<u64, GuestRamError> {
        self.check(gpa, 8)?;
        self.mem
            .load::<u64>(GuestAddress(gpa), order)
            .map_err(|_| GuestRamError::OutOfRange { gpa, len: 8 })
    }

    /// Atomic 64-bit store (the GPA must be 8-byte aligned).
    pub fn store_u64(&self, gpa: u64, val: u64, order: Ordering) -> Result<(), GuestRamError> {
        self.check(gpa, 8)?;
        self.mem
            .store(val, GuestAddress(gpa), order)
            .map_err(|_| GuestRamError::OutOfRange { gpa, len: 8 })
    }
}

/// Reads and writes one span of guest pages, as described by a GPA-direct
/// range: byte `pos` of the span is byte `first_offset + pos` of the
/// concatenated pages.
#[derive(Debug, Clone, Copy)]
pub struct PageSpan<'a> {
    /// The guest pages (already checked to be inside guest RAM).
    pub pfns: &'a [u64],
    /// Offset of the span's first byte in the first page (< 4096).
    pub first_offset: u32,
}

impl PageSpan<'_> {
    fn for_each_chunk(
        &self,
        pos: u64,
        len: u64,
        mut f: impl FnMut(u64, std::ops::Range<usize>) -> Result<(), GuestRamError>,
    ) -> Result<(), GuestRamError> {
        let start = u64::from(self.first_offset)
            .checked_add(pos)
            .ok_or(GuestRamError::OutOfRange { gpa: pos, len })?;
        let end = start
            .checked_add(len)
            .ok_or(GuestRamError::OutOfRange { gpa: pos, len })?;
        if end > (self.pfns.len() as u64) * PAGE_SIZE {
            return Err(GuestRamError::OutOfRange { gpa: pos, len });
        }
        let mut abs = start;
        let mut done = 0usize;
        while abs < end {
            let idx = usize::try_from(abs / PAGE_SIZE)
                .map_err(|_| GuestRamError::OutOfRange { gpa: pos, len })?;
            let in_page = abs % PAGE_SIZE;
            let chunk = (PAGE_SIZE - in_page).min(end - abs);
            let pfn = *self
                .pfns
                .get(idx)
                .ok_or(GuestRamError::OutOfRange { gpa: pos, len })?;
            let gpa = pfn
                .checked_mul(PAGE_SIZE)
                .and_then(|g| g.checked_add(in_page))
                .ok_or(GuestRamError::OutOfRange { gpa: pos, len })?;
            let chunk_usize = chunk as usize;
            f(gpa, done..done + chunk_usize)?;
            done += chunk_usize;
            abs += chunk;
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes from span position `pos`.
    pub fn read(&self, ram: &GuestRam, pos: u64, buf: &mut [u8]) -> Result<(), GuestRamError> {
        let len = buf.len() as u64;
        self.for_each_chunk(pos, len, |gpa, r| ram.read(gpa, &mut buf[r]))
    }

    /// Copies `buf` to span position `pos`.
    pub fn write(&self, ram: &GuestRam, pos: u64, buf: &[u8]) -> Result<(), GuestRamError> {
        self.for_each_chunk(pos, buf.len() as u64, |gpa, r| ram.write(gpa, &buf[r]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_is_an_error() {
        let ram = GuestRam::anonymous(64 * 1024).unwrap();
        assert!(ram.check(0, 64 * 1024).is_ok());
        assert!(ram.check(60 * 1024, 4097).is_err());
        assert!(ram.check(u64::MAX - 2, 8).is_err());
        let mut b = [0u8; 16];
        assert!(ram.read(64 * 1024, &mut b).is_err());
        assert!(ram.write(64 * 1024 - 8, &b).is_err());
        assert!(ram.load_u32(64 * 1024, Ordering::Acquire).is_err());
        assert!(ram.page_gpa(16).is_err());
        assert!(ram.page_gpa(u64::MAX / 2).is_err());
        assert_eq!(ram.page_gpa(15).unwrap(), 15 * 4096);
    }

    #[test]
    fn span_crosses_pages_in_pfn_order() {
        let ram = GuestRam::anonymous(16 * 4096).unwrap();
        let pfns = [5u64, 2, 9];
        let span = PageSpan {
            pfns: &pfns,
            first_offset: 100,
        };
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        span.write(&ram, 3000, &data).unwrap();
        let mut b = [0u8; 1];
        ram.read(5 * 4096 + 3100, &mut b).unwrap();
        assert_eq!(b[0], 0);
        ram.read(2 * 4096, &mut b).unwrap();
        assert_eq!(b[0], (4096 - 3100) as u8);
        let mut back = vec![0u8; 5000];
        span.read(&ram, 3000, &mut back).unwrap();
        assert_eq!(back, data);
        // Past the last page of the span.
        assert!(span.read(&ram, 3 * 4096 - 100, &mut b).is_err());
    }

    #[test]
    fn q35_layout_above_2_75_gib_puts_the_rest_at_4_gib() {
        // A sparse 3 GiB file: the first 2 GiB at GPA 0, the last 1 GiB at
        // GPA 4 GiB (file offset 2 GiB), nothing in between.
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(3 << 30).unwrap();
        let ram = GuestRam::from_file(f.path()).unwrap();
        ram.write((4u64 << 30) + 0x1000, b"high").unwrap();
        ram.write(0x1000, b"low").unwrap();
        let mut b = [0u8; 4];
        let file = std::fs::File::open(f.path()).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut b, (2u64 << 30) + 0x1000).unwrap();
        assert_eq!(&b, b"high");
        assert!(
            ram.check(2 << 30, 1).is_err(),
            "the hole below 4 GiB is not RAM"
        );
        assert!(ram.check((2 << 30) - 4096, 4096).is_ok());
        assert!(ram.check((4u64 << 30) + (1 << 30) - 4096, 4096).is_ok());
        assert!(ram.check((4u64 << 30) + (1 << 30), 1).is_err());
        // A range may not straddle the hole.
        assert!(ram.check((2 << 30) - 8, 16).is_err());
    }

    #[test]
    fn q35_layout_below_2_75_gib_is_identity() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(0xb000_0000 - 4096).unwrap();
        let ram = GuestRam::from_file(f.path()).unwrap();
        assert!(ram.check(0xb000_0000 - 8192, 4096).is_ok());
        assert!(ram.check(0xb000_0000 - 4096, 1).is_err());
        ram.write(0xa000_0000, b"x").unwrap();
        let mut b = [0u8; 1];
        let file = std::fs::File::open(f.path()).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut b, 0xa000_0000).unwrap();
        assert_eq!(&b, b"x");
    }

    #[test]
    fn file_backed_ram_is_shared_and_sized() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(1 << 20).unwrap();
        let ram = GuestRam::from_file(f.path()).unwrap();
        assert_eq!(ram.size(), 1 << 20);
        ram.write(0x1234, b"hello").unwrap();
        let other = GuestRam::from_file(f.path()).unwrap();
        let mut b = [0u8; 5];
        other.read(0x1234, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        assert_eq!(
            ram.identity(),
            Some(GuestRam::file_identity(f.path()).unwrap())
        );
    }
}
