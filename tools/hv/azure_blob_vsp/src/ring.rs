// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! VMBus ring buffers, host view.
//!
//! Each ring is one control page (`struct hv_ring_buffer`) and data pages,
//! all given as guest PFNs. The host reads the *incoming* ring (the guest's
//! send ring) and writes the *outgoing* ring (the guest's receive ring).
//! Every index read from the guest is validated; a packet is copied out of
//! guest memory before it is parsed. A malformed ring is reported as
//! [`RingError`] and the caller treats the channel as broken.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use hv_azure_blob_proto::{
    VmPacketDescriptor, RING_FEATURE_BITS, RING_FEAT_PENDING_SEND_SZ, RING_INTERRUPT_MASK,
    RING_PENDING_SEND_SZ, RING_READ_INDEX, RING_TRAILER_SIZE, RING_WRITE_INDEX,
};
use zerocopy::FromBytes;

use crate::guest_ram::{GuestRam, GuestRamError, PAGE_SIZE};

/// Size of a packet descriptor.
const DESC_SIZE: u32 = 16;

/// Errors that make a ring unusable.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// A guest memory access failed.
    #[error(transparent)]
    Memory(#[from] GuestRamError),
    /// The ring's page list is unusable.
    #[error("bad ring layout: {0}")]
    Layout(String),
    /// An index or packet header in the ring breaks the ring format.
    #[error("malformed ring: {0}")]
    Malformed(String),
}

/// One ring in guest memory: control page + data pages.
#[derive(Debug)]
struct RingMem {
    ram: Arc<GuestRam>,
    control_gpa: u64,
    data_gpas: Vec<u64>,
    size: u32,
}

impl RingMem {
    fn new(ram: Arc<GuestRam>, pfns: &[u64]) -> Result<Self, RingError> {
        let (control, data) = pfns
            .split_first()
            .ok_or_else(|| RingError::Layout("no pages".into()))?;
        if data.is_empty() {
            return Err(RingError::Layout("no data pages".into()));
        }
        let size = u32::try_from(data.len() as u64 * PAGE_SIZE)
            .map_err(|_| RingError::Layout("ring too large".into()))?;
        let control_gpa = ram.page_gpa(*control)?;
        let data_gpas = data
            .iter()
            .map(|pfn| ram.page_gpa(*pfn))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            ram,
            control_gpa,
            data_gpas,
            size,
        })
    }

    fn load(&self, field: usize) -> Result<u32, RingError> {
        Ok(self
            .ram
            .load_u32(self.control_gpa + field as u64, Ordering::Acquire)?)
    }

    fn store(&self, field: usize, val: u32) -> Result<(), RingError> {
        Ok(self
            .ram
            .store_u32(self.control_gpa + field as u64, val, Ordering::Release)?)
    }

    /// Visits `len` bytes of the data area starting at `offset`, wrapping.
    fn chunks(
        &self,
        offset: u32,
        len: usize,
        mut f: impl FnMut(u64, std::ops::Range<usize>) -> Result<(), RingError>,
    ) -> Result<(), RingError> {
        if len > self.size as usize || offset >= self.size {
            return Err(RingError::Malformed(format!(
                "access of {len} bytes at {offset} in a {}-byte ring",
                self.size
            )));
        }
        let mut pos = offset as usize;
        let mut done = 0;
        while done < len {
            let page = pos / PAGE_SIZE as usize;
            let in_page = pos % PAGE_SIZE as usize;
            let chunk = (PAGE_SIZE as usize - in_page).min(len - done);
            let gpa =
                self.data_gpas.get(page).ok_or_else(|| {
                    RingError::Malformed("ring offset past the data pages".into())
                })? + in_page as u64;
            f(gpa, done..done + chunk)?;
            done += chunk;
            pos = (pos + chunk) % self.size as usize;
        }
        Ok(())
    }

    fn copy_out(&self, offset: u32, buf: &mut [u8]) -> Result<(), RingError> {
        let len = buf.len();
        self.chunks(offset, len, |gpa, r| Ok(self.ram.read(gpa, &mut buf[r])?))
    }

    fn copy_in(&self, offset: u32, buf: &[u8]) -> Result<(), RingError> {
        self.chunks(offset, buf.len(), |gpa, r| {
            Ok(self.ram.write(gpa, &buf[r])?)
        })
    }

    /// Reads an index field and checks it is a valid 8-aligned offset.
    fn load_index(&self, field: usize, name: &str) -> Result<u32, RingError> {
        let v = self.load(field)?;
        if v >= self.size || v % 8 != 0 {
            return Err(RingError::Malformed(format!(
                "{name} {v} is not an 8-aligned offset in the {}-byte data area",
                self.size
            )));
        }
        Ok(v)
    }

    fn used(&self, write: u32, read: u32) -> u32 {
        if write >= read {
            write - read
        } else {
            self.size - read + write
        }
    }
}

/// The guest->host ring, read by the host.
#[derive(Debug)]
pub struct IncomingRing {
    mem: RingMem,
    /// Next byte to read (host-owned; published by [`IncomingRing::commit`]).
    read_index: u32,
}

impl IncomingRing {
    /// Attaches to a ring given as its PFNs (control page first).
    pub fn new(ram: Arc<GuestRam>, pfns: &[u64]) -> Result<Self, RingError> {
        let mem = RingMem::new(ram, pfns)?;
        let read_index = mem.load_index(RING_READ_INDEX, "read_index")?;
        mem.load_index(RING_WRITE_INDEX, "write_index")?;
        // The reader's field: start unmasked (a previous attachment may
        // have stopped in the middle of a drain).
        mem.store(RING_INTERRUPT_MASK, 0)?;
        Ok(Self { mem, read_index })
    }

    /// Bytes of the data area.
    pub fn size(&self) -> u32 {
        self.mem.size
    }

    /// The offset of the next packet to read (published by
    /// [`IncomingRing::commit`]).
    pub fn read_index(&self) -> u32 {
        self.read_index
    }

    /// Tells the guest whether to signal when the ring becomes non-empty.
    pub fn set_interrupt_mask(&self, masked: bool) -> Result<(), RingError> {
        self.mem.store(RING_INTERRUPT_MASK, u32::from(masked))?;
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// True when no packet is waiting.
    pub fn is_empty(&self) -> Result<bool, RingError> {
        Ok(self.mem.load_index(RING_WRITE_INDEX, "write_index")? == self.read_index)
    }

    /// Copies the next packet (descriptor included, trailer excluded) out of
    /// the ring, or returns `None` if the ring is empty. The space is given
    /// back to the guest by [`IncomingRing::commit`].
    pub fn read_packet(&mut self) -> Result<Option<Vec<u8>>, RingError> {
        let write = self.mem.load_index(RING_WRITE_INDEX, "write_index")?;
        let avail = self.mem.used(write, self.read_index);
        if avail == 0 {
            return Ok(None);
        }
        if avail < DESC_SIZE + RING_TRAILER_SIZE {
            return Err(RingError::Malformed(format!(
                "{avail} bytes in the ring, less than a descriptor and trailer"
            )));
        }
        let mut desc_bytes = [0u8; DESC_SIZE as usize];
        self.mem.copy_out(self.read_index, &mut desc_bytes)?;
        let desc = VmPacketDescriptor::read_from_bytes(&desc_bytes[..])
            .map_err(|_| RingError::Malformed("descriptor".into()))?;
        let len = u32::from(desc.len8) * 8;
        if desc.offset8 < 2 || desc.offset8 > desc.len8 {
            return Err(RingError::Malformed(format!(
                "packet at {} has offset8 {} and len8 {}",
                self.read_index, desc.offset8, desc.len8
            )));
        }
        if len + RING_TRAILER_SIZE > avail {
            return Err(RingError::Malformed(format!(
                "packet at {} claims {len} bytes + trailer, only {avail} bytes are in the ring",
                self.read_index
            )));
        }
        let mut pkt = vec![0u8; len as usize];
        self.mem.copy_out(self.read_index, &mut pkt)?;
        self.read_index = (self.read_index + len + RING_TRAILER_SIZE) % self.mem.size;
        Ok(Some(pkt))
    }

    /// Publishes the read index. Returns true if the guest writer asked to be
    /// signalled (feat_pending_send_sz and pending_send_sz) and now has the
    /// room it asked for.
    pub fn commit(&mut self) -> Result<bool, RingError> {
        self.mem.store(RING_READ_INDEX, self.read_index)?;
        fence(Ordering::SeqCst);
        if self.mem.load(RING_FEATURE_BITS)? & RING_FEAT_PENDING_SEND_SZ == 0 {
            return Ok(false);
        }
        let pending = self.mem.load(RING_PENDING_SEND_SZ)?;
        if pending == 0 {
            return Ok(false);
        }
        let write = self.mem.load_index(RING_WRITE_INDEX, "write_index")?;
        let free = self.mem.size - self.mem.used(write, self.read_index);
        // Signalling too often is harmless, a missed signal hangs the writer.
        Ok(free >= pending)
    }
}

/// Result of [`OutgoingRing::try_write_all`].
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; `signal` says whether the guest must be interrupted.
    Written {
        /// The ring went from empty to non-empty and interrupts are not masked.
        signal: bool,
    },
    /// Not enough room; the guest must free this many bytes first
    /// (value for pending_send_sz).
    Full {
        /// Packet + trailer size.
        needed: u32,
    },
}

/// The host->guest ring, written by the host.
#[derive(Debug)]
pub struct OutgoingRing {
    mem: RingMem,
    /// Next byte to write (host-owned).
    write_index: u32,
}

impl OutgoingRing {
    /// Attaches to a ring given as its PFNs (control page first) and
    /// advertises pending_send_sz support.
    pub fn new(ram: Arc<GuestRam>, pfns: &[u64]) -> Result<Self, RingError> {
        let mem = RingMem::new(ram, pfns)?;
        let write_index = mem.load_index(RING_WRITE_INDEX, "write_index")?;
        mem.load_index(RING_READ_INDEX, "read_index")?;
        let bits = mem.load(RING_FEATURE_BITS)?;
        mem.store(RING_FEATURE_BITS, bits | RING_FEAT_PENDING_SEND_SZ)?;
        Ok(Self { mem, write_index })
    }

    /// Bytes of the data area.
    pub fn size(&self) -> u32 {
        self.mem.size
    }

    /// The offset the next packet goes to (the published write index).
    pub fn write_index(&self) -> u32 {
        self.write_index
    }

    /// Writes pending_send_sz (0 = not waiting).
    pub fn set_pending_send_sz(&self, val: u32) -> Result<(), RingError> {
        self.mem.store(RING_PENDING_SEND_SZ, val)?;
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Writes packets (each a multiple of 8 bytes), each followed by its trailer, and publishes them with
    /// one write index update: the guest sees all of them or none.
    pub fn try_write_all(&mut self, pkts: &[&[u8]]) -> Result<WriteOutcome, RingError> {
        let mut total = 0u32;
        for pkt in pkts {
            let len = u32::try_from(pkt.len())
                .ok()
                .filter(|l| l % 8 == 0 && *l + RING_TRAILER_SIZE < self.mem.size)
                .ok_or_else(|| {
                    RingError::Layout(format!("packet of {} bytes cannot be written", pkt.len()))
                })?;
            total = total.saturating_add(len + RING_TRAILER_SIZE);
        }
        if total >= self.mem.size {
            return Err(RingError::Layout(format!(
                "{total} bytes of packets cannot be written at once"
            )));
        }
        let read = self.mem.load_index(RING_READ_INDEX, "read_index")?;
        let free = self.mem.size - self.mem.used(self.write_index, read);
        // Never fill the ring completely: write == read means empty.
        if free <= total {
            return Ok(WriteOutcome::Full { needed: total });
        }
        let old = self.write_index;
        let mut at = old;
        for pkt in pkts {
            // Lengths were checked above.
            let len = pkt.len() as u32;
            self.mem.copy_in(at, pkt)?;
            let trailer = (u64::from(at) << 32).to_le_bytes();
            self.mem.copy_in((at + len) % self.mem.size, &trailer)?;
            at = (at + len + RING_TRAILER_SIZE) % self.mem.size;
        }
        self.write_index = at;
        fence(Ordering::SeqCst);
        self.mem.store(RING_WRITE_INDEX, self.write_index)?;
        fence(Ordering::SeqCst);
        let mask = self.mem.load(RING_INTERRUPT_MASK)?;
        let read_now = self.mem.load(RING_READ_INDEX)?;
        Ok(WriteOutcome::Written {
            signal: mask == 0 && read_now == old,
        })
    }
}
