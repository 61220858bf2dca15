// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The control page of the simulated VMBus (the ivshmem BAR2 memory), as
//! described in tools/testing/vmbus_sim/vmbus_sim_shm.h. The host writes only
//! host-owned fields; guest-owned fields are read with atomic loads and
//! validated before use.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use hv_azure_blob_proto::sim_shm::{
    chan_field, chan_offset, shm_field, SimShm, VMBUS_SIM_MAGIC, VMBUS_SIM_MAX_CHANNELS,
    VMBUS_SIM_MAX_RING_PFNS, VMBUS_SIM_VERSION,
};

use crate::guest_ram::{GuestRam, GuestRamError};

/// Bytes of the shared memory: `struct vmbus_sim_shm` rounded up to a power
/// of two of at least one page (QEMU maps it as a PCI BAR, whose size must be
/// a power of two).
pub const SHM_SIZE: usize = {
    let s = std::mem::size_of::<SimShm>();
    let mut p = 4096;
    while p < s {
        p *= 2;
    }
    p
};

/// The guest's view of one channel (guest-owned fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestChannelState {
    /// `VMBUS_SIM_STATE_*`.
    pub state: u32,
    /// Bumped on every open and close.
    pub open_seq: u32,
    /// Pages of the send ring (control page included).
    pub send_pages: u32,
    /// Pages of the receive ring (control page included).
    pub recv_pages: u32,
}

/// The mapped control page.
#[derive(Debug)]
pub struct ControlPage {
    mem: GuestRam,
}

impl ControlPage {
    /// Maps the shared memory file (a memfd of at least [`SHM_SIZE`] bytes).
    pub fn from_fd(fd: OwnedFd) -> Result<Self, GuestRamError> {
        let file = File::from(fd);
        let mem = GuestRam::from_open_file(file)?;
        if (mem.size() as usize) < std::mem::size_of::<SimShm>() {
            return Err(GuestRamError::Map("control page memory too small".into()));
        }
        Ok(Self { mem })
    }

    /// An anonymous control page (for tests).
    pub fn anonymous() -> Result<Self, GuestRamError> {
        Ok(Self {
            mem: GuestRam::anonymous(SHM_SIZE)?,
        })
    }

    fn load(&self, off: usize) -> u32 {
        // Offsets are compile-time constants inside the page: cannot fail.
        self.mem
            .load_u32(off as u64, Ordering::Acquire)
            .unwrap_or_default()
    }

    fn store(&self, off: usize, val: u32) {
        if let Err(e) = self.mem.store_u32(off as u64, val, Ordering::Release) {
            tracing::error!("control page store at {off:#x} failed: {e}");
        }
    }

    fn chan(ch: usize, field: usize) -> usize {
        chan_offset(ch.min(VMBUS_SIM_MAX_CHANNELS - 1)) + field
    }

    /// Host attach: host_peer, host_gen += 1, version, nr_channels, magic last.
    pub fn attach(&self, host_peer: u32) -> u32 {
        self.store(shm_field::HOST_PEER, host_peer);
        let gen = self.load(shm_field::HOST_GEN).wrapping_add(1);
        self.store(shm_field::HOST_GEN, gen);
        self.store(shm_field::VERSION, VMBUS_SIM_VERSION);
        self.store(shm_field::NR_CHANNELS, VMBUS_SIM_MAX_CHANNELS as u32);
        std::sync::atomic::fence(Ordering::SeqCst);
        self.store(shm_field::MAGIC, VMBUS_SIM_MAGIC);
        gen
    }

    /// `magic` (host-owned).
    pub fn magic(&self) -> u32 {
        self.load(shm_field::MAGIC)
    }

    /// `host_gen` (host-owned).
    pub fn host_gen(&self) -> u32 {
        self.load(shm_field::HOST_GEN)
    }

    /// `guest_gen` (guest-owned).
    pub fn guest_gen(&self) -> u32 {
        self.load(shm_field::GUEST_GEN)
    }

    /// `guest_id` (guest-owned).
    pub fn guest_id(&self) -> u32 {
        self.load(shm_field::GUEST_ID)
    }

    /// Publishes an offer: type, instance, offered = 1, offer_seq += 1.
    pub fn offer(&self, ch: usize, if_type: &[u8; 16], if_instance: &[u8; 16]) {
        let base = Self::chan(ch, 0) as u64;
        for (field, bytes) in [
            (chan_field::IF_TYPE, if_type),
            (chan_field::IF_INSTANCE, if_instance),
        ] {
            if let Err(e) = self.mem.write(base + field as u64, bytes) {
                tracing::error!("control page write failed: {e}");
            }
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        self.store(Self::chan(ch, chan_field::OFFERED), 1);
        self.bump_offer_seq(ch);
    }

    /// Publishes a rescind: offered = 0, offer_seq += 1.
    pub fn rescind(&self, ch: usize) {
        self.store(Self::chan(ch, chan_field::OFFERED), 0);
        self.bump_offer_seq(ch);
    }

    fn bump_offer_seq(&self, ch: usize) {
        let off = Self::chan(ch, chan_field::OFFER_SEQ);
        self.store(off, self.load(off).wrapping_add(1));
    }

    /// `offered` (host-owned).
    pub fn offered(&self, ch: usize) -> bool {
        self.load(Self::chan(ch, chan_field::OFFERED)) != 0
    }

    /// `offer_seq` (host-owned).
    pub fn offer_seq(&self, ch: usize) -> u32 {
        self.load(Self::chan(ch, chan_field::OFFER_SEQ))
    }

    /// `if_instance` (host-owned).
    pub fn instance(&self, ch: usize) -> [u8; 16] {
        let mut b = [0u8; 16];
        let _ = self
            .mem
            .read((Self::chan(ch, chan_field::IF_INSTANCE)) as u64, &mut b);
        b
    }

    /// `if_type` (host-owned).
    pub fn if_type(&self, ch: usize) -> [u8; 16] {
        let mut b = [0u8; 16];
        let _ = self
            .mem
            .read((Self::chan(ch, chan_field::IF_TYPE)) as u64, &mut b);
        b
    }

    /// `open_ack` (host-owned).
    pub fn open_ack(&self, ch: usize) -> u32 {
        self.load(Self::chan(ch, chan_field::OPEN_ACK))
    }

    /// `host_status` (host-owned).
    pub fn host_status(&self, ch: usize) -> u32 {
        self.load(Self::chan(ch, chan_field::HOST_STATUS))
    }

    /// Acknowledges an open or close: host_status first, then open_ack.
    pub fn ack_open(&self, ch: usize, open_seq: u32, status: u32) {
        self.store(Self::chan(ch, chan_field::HOST_STATUS), status);
        std::sync::atomic::fence(Ordering::SeqCst);
        self.store(Self::chan(ch, chan_field::OPEN_ACK), open_seq);
    }

    /// The guest-owned fields of a channel. open_seq is read first (acquire)
    /// so that the fields the guest wrote before bumping it are visible.
    pub fn guest_state(&self, ch: usize) -> GuestChannelState {
        let open_seq = self.load(Self::chan(ch, chan_field::OPEN_SEQ));
        GuestChannelState {
            state: self.load(Self::chan(ch, chan_field::STATE)),
            open_seq,
            send_pages: self.load(Self::chan(ch, chan_field::SEND_PAGES)),
            recv_pages: self.load(Self::chan(ch, chan_field::RECV_PAGES)),
        }
    }

    /// The first `n` entries of `ring_pfn[]` (at most `VMBUS_SIM_MAX_RING_PFNS`).
    pub fn ring_pfns(&self, ch: usize, n: usize) -> Vec<u64> {
        let base = Self::chan(ch, chan_field::RING_PFN) as u64;
        (0..n.min(VMBUS_SIM_MAX_RING_PFNS))
            .map(|i| {
                self.mem
                    .load_u64(base + 8 * i as u64, Ordering::Acquire)
                    .unwrap_or(u64::MAX)
            })
            .collect()
    }

    /// Test and guest-emulation access: any u32 of the page by byte offset.
    pub fn raw_load(&self, off: usize) -> u32 {
        self.load(off)
    }

    /// Test and guest-emulation access: writes any u32 of the page.
    pub fn raw_store(&self, off: usize, val: u32) {
        self.store(off, val)
    }

    /// Test and guest-emulation access: writes a guest-owned u32 field.
    pub fn guest_store(&self, ch: usize, field: usize, val: u32) {
        self.store(Self::chan(ch, field), val);
    }

    /// Test and guest-emulation access: writes `ring_pfn[i]`.
    pub fn guest_store_pfn(&self, ch: usize, i: usize, pfn: u64) {
        let off = Self::chan(ch, chan_field::RING_PFN) + 8 * i.min(VMBUS_SIM_MAX_RING_PFNS - 1);
        if let Err(e) = self.mem.store_u64(off as u64, pfn, Ordering::Release) {
            tracing::error!("control page store failed: {e}");
        }
    }
}
