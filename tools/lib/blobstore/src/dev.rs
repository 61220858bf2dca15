//! Block devices under a Blobstore: a file (or block device node) with positioned I/O and
//! `fdatasync` barriers, and an in-memory device with a volatile write cache and fault
//! injection for power-failure tests.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A device the Blobstore owns. All methods take `&self` and may be called from many threads.
///
/// Contract: a completed `write_at`, `write_zeroes` or `unmap` is visible to later reads but
/// may be lost on power failure until a later `flush` completes; a completed `flush` makes
/// every write completed before it durable. A write of one aligned 4 KiB block is atomic on
/// power failure (it lands whole or not at all); longer writes may tear at 4 KiB boundaries.
pub trait Device: Send + Sync + std::fmt::Debug {
    /// Logical block size in bytes (512 or 4096): the Blobstore's io_unit.
    fn block_size(&self) -> u32;
    /// Current size in bytes.
    fn size(&self) -> u64;
    /// Read `buf.len()` bytes at `off`.
    ///
    /// # Errors
    /// The device's I/O error.
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
    /// Write `buf` at `off`.
    ///
    /// # Errors
    /// The device's I/O error.
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()>;
    /// Make `len` bytes at `off` read back as zeroes.
    ///
    /// # Errors
    /// The device's I/O error.
    fn write_zeroes(&self, off: u64, len: u64) -> io::Result<()>;
    /// Deallocate `len` bytes at `off`; they read back as zeroes afterwards.
    ///
    /// # Errors
    /// The device's I/O error.
    fn unmap(&self, off: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(off, len)
    }
    /// Barrier: every write completed before this call is durable when it returns.
    ///
    /// # Errors
    /// The device's I/O error.
    fn flush(&self) -> io::Result<()>;
}

/// A file or block device node, accessed with `pread`/`pwrite` through the page cache;
/// `flush` is `fdatasync`.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    block_size: u32,
}

impl FileDevice {
    /// Open an existing file read-write.
    ///
    /// # Errors
    /// The open error.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(FileDevice {
            file,
            block_size: 4096,
        })
    }

    /// Create (or truncate) a file of `size` bytes.
    ///
    /// # Errors
    /// The create error.
    pub fn create(path: &Path, size: u64) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(size)?;
        Ok(FileDevice {
            file,
            block_size: 4096,
        })
    }

    /// Use a different logical block size (512 or 4096).
    pub fn with_block_size(mut self, block_size: u32) -> Self {
        self.block_size = block_size;
        self
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn zero_fill(&self, mut off: u64, len: u64) -> io::Result<()> {
        let zero = vec![0u8; 1 << 20];
        let end = off + len;
        while off < end {
            let n = (end - off).min(zero.len() as u64) as usize;
            self.file.write_all_at(&zero[..n], off)?;
            off += n as u64;
        }
        Ok(())
    }
}

impl Device for FileDevice {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn size(&self) -> u64 {
        use std::os::unix::fs::FileTypeExt;
        match self.file.metadata() {
            Ok(m) if m.file_type().is_block_device() => {
                rustix::fs::seek(&self.file, rustix::fs::SeekFrom::End(0)).unwrap_or(0)
            }
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        self.file.write_all_at(buf, off)
    }

    fn write_zeroes(&self, off: u64, len: u64) -> io::Result<()> {
        use rustix::fs::FallocateFlags;
        if len == 0 {
            return Ok(());
        }
        match rustix::fs::fallocate(
            &self.file,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            off,
            len,
        ) {
            Ok(()) => Ok(()),
            Err(_) => self.zero_fill(off, len),
        }
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// How a [`MemDevice`] loses unflushed writes when [`MemDevice::crash_image`] is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every completed write survives (SPDK's model: a completed write is durable).
    KeepCompleted,
    /// Only flushed writes are sure to survive; each unflushed write is dropped, kept, or torn
    /// at 4 KiB granularity, chosen by a seeded random generator.
    DropUnflushed {
        /// Seed of the generator.
        seed: u64,
    },
}

#[derive(Debug, Default)]
struct MemState {
    /// What reads see.
    view: Vec<u8>,
    /// What survives a power failure for sure.
    durable: Vec<u8>,
    /// Writes completed since the last flush, in order: (offset, data).
    pending: Vec<(u64, Vec<u8>)>,
    /// Count of write-type operations (write, zeroes, unmap, flush) attempted.
    ops: u64,
    /// Fail every write-type operation from this index on (1-based), and every read after.
    fail_from: Option<u64>,
    dead: bool,
    /// Fail only this write-type operation (1-based), leaving the device alive.
    fail_once: Option<u64>,
    waiting: u64,
    writes: u64,
    flushes: u64,
    paused: bool,
}

/// An in-memory device for tests: a volatile write cache (writes become durable only at
/// `flush`), a power-cut switch that fails every write from the N-th on, a pause switch that
/// blocks writers, and I/O counters.
#[derive(Debug)]
pub struct MemDevice {
    state: Mutex<MemState>,
    resumed: Condvar,
    block_size: u32,
}

impl MemDevice {
    /// A zero-filled device of `size` bytes with `block_size` logical blocks.
    pub fn new(size: u64, block_size: u32) -> Self {
        Self::from_image(vec![0u8; size as usize], block_size)
    }

    /// A device whose durable and visible contents are `image`.
    pub fn from_image(image: Vec<u8>, block_size: u32) -> Self {
        MemDevice {
            state: Mutex::new(MemState {
                durable: image.clone(),
                view: image,
                ..MemState::default()
            }),
            resumed: Condvar::new(),
            block_size,
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail every write-type operation from the `n`-th (1-based, counted from now) on, and
    /// every read once one has failed: the power is cut at that point.
    pub fn fail_from(&self, n: u64) {
        let mut s = self.lock();
        s.fail_from = Some(s.ops + n);
    }

    /// Fail only the `n`-th write-type operation from now (a transient error).
    pub fn fail_once(&self, n: u64) {
        let mut s = self.lock();
        s.fail_once = Some(s.ops + n);
    }

    /// Number of writers blocked by [`MemDevice::pause`].
    pub fn waiting_writers(&self) -> u64 {
        self.lock().waiting
    }

    /// Whether the power cut set by [`MemDevice::fail_from`] has happened.
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// The contents after a power failure now, per `mode`.
    pub fn crash_image(&self, mode: CrashMode) -> Vec<u8> {
        let s = self.lock();
        match mode {
            CrashMode::KeepCompleted => s.view.clone(),
            CrashMode::DropUnflushed { seed } => {
                let mut img = s.durable.clone();
                let mut rng = StdRng::seed_from_u64(seed);
                for (off, data) in &s.pending {
                    let off = *off as usize;
                    match rng.gen_range(0..3) {
                        0 => {}
                        1 => img[off..off + data.len()].copy_from_slice(data),
                        _ => {
                            for (i, chunk) in data.chunks(4096).enumerate() {
                                if rng.gen_bool(0.5) {
                                    let o = off + i * 4096;
                                    img[o..o + chunk.len()].copy_from_slice(chunk);
                                }
                            }
                        }
                    }
                }
                img
            }
        }
    }

    /// The visible contents (all completed writes).
    pub fn image(&self) -> Vec<u8> {
        self.lock().view.clone()
    }

    /// Overwrite bytes directly, bypassing cache and counters (to corrupt a store in tests).
    pub fn poke(&self, off: u64, data: &[u8]) {
        let mut s = self.lock();
        let o = off as usize;
        s.view[o..o + data.len()].copy_from_slice(data);
        s.durable[o..o + data.len()].copy_from_slice(data);
    }

    /// Grow (or shrink) the device.
    pub fn resize(&self, size: u64) {
        let mut s = self.lock();
        s.view.resize(size as usize, 0);
        s.durable.resize(size as usize, 0);
    }

    /// Number of `write_at` calls so far.
    pub fn write_count(&self) -> u64 {
        self.lock().writes
    }

    /// Number of `flush` calls so far.
    pub fn flush_count(&self) -> u64 {
        self.lock().flushes
    }

    /// Block every writer until [`MemDevice::resume`].
    pub fn pause(&self) {
        self.lock().paused = true;
    }

    /// Unblock writers.
    pub fn resume(&self) {
        self.lock().paused = false;
        self.resumed.notify_all();
    }

    fn begin_write(&self) -> io::Result<MutexGuard<'_, MemState>> {
        let mut s = self.lock();
        while s.paused {
            s.waiting += 1;
            s = self.resumed.wait(s).unwrap_or_else(|e| e.into_inner());
            s.waiting -= 1;
        }
        s.ops += 1;
        if s.fail_once == Some(s.ops) {
            s.fail_once = None;
            return Err(io::Error::from_raw_os_error(5));
        }
        if s.dead || s.fail_from.is_some_and(|n| s.ops >= n) {
            s.dead = true;
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(s)
    }

    fn check_range(s: &MemState, off: u64, len: usize) -> io::Result<usize> {
        let o = off as usize;
        if o.checked_add(len).is_none_or(|e| e > s.view.len()) {
            return Err(io::Error::from_raw_os_error(22));
        }
        Ok(o)
    }

    fn apply(&self, off: u64, data: Vec<u8>) -> io::Result<()> {
        let mut s = self.begin_write()?;
        let o = Self::check_range(&s, off, data.len())?;
        s.view[o..o + data.len()].copy_from_slice(&data);
        s.writes += 1;
        s.pending.push((off, data));
        Ok(())
    }
}

impl Device for MemDevice {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn size(&self) -> u64 {
        self.lock().view.len() as u64
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let s = self.lock();
        if s.dead {
            return Err(io::Error::from_raw_os_error(5));
        }
        let o = Self::check_range(&s, off, buf.len())?;
        buf.copy_from_slice(&s.view[o..o + buf.len()]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        self.apply(off, buf.to_vec())
    }

    fn write_zeroes(&self, off: u64, len: u64) -> io::Result<()> {
        let mut s = self.begin_write()?;
        let o = Self::check_range(&s, off, len as usize)?;
        s.view[o..o + len as usize].fill(0);
        s.pending.push((off, vec![0u8; len as usize]));
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        let mut s = self.begin_write()?;
        let pending = std::mem::take(&mut s.pending);
        for (off, data) in pending {
            let o = off as usize;
            s.durable[o..o + data.len()].copy_from_slice(&data);
        }
        s.flushes += 1;
        Ok(())
    }
}
