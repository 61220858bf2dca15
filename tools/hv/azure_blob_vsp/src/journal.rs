// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The host's own state that must outlive a VSP process: which guest
//! generation it served, and per channel a journal of the requests it took
//! off the guest's send ring and has not answered yet.
//!
//! The memory is host-private (the guest never sees it). Under the broker
//! (`azure-blob-broker`) it is a memfd the broker keeps for the VM's life and
//! hands to every VSP that attaches, so a VSP started after a crash finds
//! what its predecessor left: the requests to fail. Without a broker it is
//! an anonymous mapping (nothing survives the process, nothing needs to).
//!
//! One entry per request taken, in these steps (each a single release
//! store of `state`, so a crash leaves one of them):
//!
//! 1. `TAKEN`, `pos` = the send ring's read index before the packet, then
//!    the read index is published past the packet (given back to the guest);
//! 2. `PENDING` once it is published; the request is handled;
//! 3. `COMPLETING`, `pos` = the receive ring's write index, then the
//!    completion is written and its write index published;
//! 4. `FREE`.
//!
//! Recovery ([`ChannelJournal::recover`]) reads the rings' published
//! indices: a `TAKEN` entry whose read index was not published is dropped
//! (the packet is still in the ring and will be served normally); a
//! `COMPLETING` entry whose completion was published is dropped (the guest
//! has its answer); every other entry is a request whose outcome is unknown,
//! which the new VSP completes with [`HOST_RESTARTED_STATUS`] and never
//! replays (a request is not idempotent: it may have been carried out).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hv_azure_blob_proto::AZ_BLOB_STATUS_INTERNAL_ERROR;

use crate::guest_ram::{GuestRam, GuestRamError};

/// The status of a request that a VSP took off the ring and could not
/// answer before it died: the host failed, the request's effect is unknown
/// (it may or may not have been carried out), `response_len` is 0. It is
/// `AZ_BLOB_STATUS_INTERNAL_ERROR` of the user API.
pub const HOST_RESTARTED_STATUS: u32 = AZ_BLOB_STATUS_INTERNAL_ERROR;

/// "HVJR".
pub const JOURNAL_MAGIC: u32 = 0x524a_5648;
/// Layout version.
pub const JOURNAL_VERSION: u32 = 1;
/// Channels with a journal.
pub const JOURNAL_CHANNELS: usize = hv_azure_blob_proto::sim_shm::VMBUS_SIM_MAX_CHANNELS;
/// Entries per channel: more than the driver's queue depth (1024). Past
/// this many unanswered requests, further ones are served unjournaled.
pub const JOURNAL_ENTRIES: usize = 4096;
/// Bytes of an entry: state, pos, trans_id.
const ENTRY_SIZE: usize = 16;
/// Bytes of the header.
const HEADER_SIZE: usize = 64;
/// Bytes of the whole state memory.
pub const STATE_SIZE: usize = HEADER_SIZE + JOURNAL_CHANNELS * JOURNAL_ENTRIES * ENTRY_SIZE;

const H_MAGIC: u64 = 0;
const H_VERSION: u64 = 4;
const H_CHANNELS: u64 = 8;
const H_ENTRIES: u64 = 12;
const H_GUEST_GEN: u64 = 16;
const H_ATTACHES: u64 = 20;

/// Entry states.
pub const FREE: u32 = 0;
/// Read from the ring; the read index may not be published yet.
pub const TAKEN: u32 = 1;
/// Off the ring, not answered.
pub const PENDING: u32 = 2;
/// Its completion is being written at `pos`.
pub const COMPLETING: u32 = 3;

/// The state memory.
#[derive(Debug)]
pub struct HostState {
    mem: GuestRam,
    /// The memory was new (all zero) when mapped: no VSP used it before.
    fresh: bool,
}

impl HostState {
    /// Private state for a VSP without a broker.
    pub fn anonymous() -> Result<Self, GuestRamError> {
        Self::init(GuestRam::anonymous(STATE_SIZE)?)
    }

    /// Maps the broker's state memfd (at least [`STATE_SIZE`] bytes).
    pub fn from_fd(fd: OwnedFd) -> Result<Self, GuestRamError> {
        let mem = GuestRam::from_open_file(File::from(fd))?;
        if (mem.size() as usize) < STATE_SIZE {
            return Err(GuestRamError::Map(format!(
                "host state memory of {} bytes, {STATE_SIZE} needed",
                mem.size()
            )));
        }
        Self::init(mem)
    }

    fn init(mem: GuestRam) -> Result<Self, GuestRamError> {
        let magic = mem.load_u32(H_MAGIC, Ordering::Acquire)?;
        let fresh = magic == 0;
        if fresh {
            mem.store_u32(H_VERSION, JOURNAL_VERSION, Ordering::Relaxed)?;
            mem.store_u32(H_CHANNELS, JOURNAL_CHANNELS as u32, Ordering::Relaxed)?;
            mem.store_u32(H_ENTRIES, JOURNAL_ENTRIES as u32, Ordering::Relaxed)?;
            mem.store_u32(H_MAGIC, JOURNAL_MAGIC, Ordering::Release)?;
        } else if magic != JOURNAL_MAGIC
            || mem.load_u32(H_VERSION, Ordering::Acquire)? != JOURNAL_VERSION
            || mem.load_u32(H_CHANNELS, Ordering::Acquire)? != JOURNAL_CHANNELS as u32
            || mem.load_u32(H_ENTRIES, Ordering::Acquire)? != JOURNAL_ENTRIES as u32
        {
            return Err(GuestRamError::Map(
                "the host state memory has another layout".into(),
            ));
        }
        let attaches = mem.load_u32(H_ATTACHES, Ordering::Acquire)?;
        mem.store_u32(H_ATTACHES, attaches.wrapping_add(1), Ordering::Release)?;
        Ok(Self { mem, fresh })
    }

    /// No VSP used this memory before.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// VSP processes that attached to this memory, this one included.
    pub fn attaches(&self) -> u32 {
        self.mem
            .load_u32(H_ATTACHES, Ordering::Acquire)
            .unwrap_or(0)
    }

    /// The guest bus generation the host last acted on.
    pub fn guest_gen(&self) -> u32 {
        self.mem
            .load_u32(H_GUEST_GEN, Ordering::Acquire)
            .unwrap_or(0)
    }

    /// Records the guest bus generation the host acts on.
    pub fn set_guest_gen(&self, gen: u32) {
        let _ = self.mem.store_u32(H_GUEST_GEN, gen, Ordering::Release);
    }

    /// Channel `ch`'s journal.
    pub fn channel(self: &Arc<Self>, ch: usize) -> ChannelJournal {
        ChannelJournal {
            state: self.clone(),
            ch: ch.min(JOURNAL_CHANNELS - 1),
            hint: 0,
        }
    }
}

/// An entry of a channel's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(usize);

/// One channel's journal (used by that channel's worker only).
#[derive(Debug)]
pub struct ChannelJournal {
    state: Arc<HostState>,
    ch: usize,
    /// Where to look for a free entry first.
    hint: usize,
}

impl ChannelJournal {
    fn base(&self, slot: usize) -> u64 {
        (HEADER_SIZE + (self.ch * JOURNAL_ENTRIES + slot) * ENTRY_SIZE) as u64
    }

    fn entry_state(&self, slot: usize) -> u32 {
        self.state
            .mem
            .load_u32(self.base(slot), Ordering::Acquire)
            .unwrap_or(FREE)
    }

    fn set_state(&self, slot: usize, state: u32) {
        let _ = self
            .state
            .mem
            .store_u32(self.base(slot), state, Ordering::Release);
    }

    fn pos(&self, slot: usize) -> u32 {
        self.state
            .mem
            .load_u32(self.base(slot) + 4, Ordering::Acquire)
            .unwrap_or(0)
    }

    fn set_pos(&self, slot: usize, pos: u32) {
        let _ = self
            .state
            .mem
            .store_u32(self.base(slot) + 4, pos, Ordering::Release);
    }

    fn trans_id(&self, slot: usize) -> u64 {
        self.state
            .mem
            .load_u64(self.base(slot) + 8, Ordering::Acquire)
            .unwrap_or(0)
    }

    /// Step 1: a packet read at send-ring offset `pos`, before its read
    /// index is published. `None` if the journal is full.
    pub fn take(&mut self, trans_id: u64, pos: u32) -> Option<Slot> {
        let slot = (0..JOURNAL_ENTRIES)
            .map(|i| (self.hint + i) % JOURNAL_ENTRIES)
            .find(|&i| self.entry_state(i) == FREE)?;
        self.hint = (slot + 1) % JOURNAL_ENTRIES;
        let _ = self
            .state
            .mem
            .store_u64(self.base(slot) + 8, trans_id, Ordering::Relaxed);
        self.set_pos(slot, pos);
        self.set_state(slot, TAKEN);
        Some(Slot(slot))
    }

    /// Step 2: the read index past the packet is published.
    pub fn taken(&self, slot: Slot) {
        self.set_state(slot.0, PENDING);
    }

    /// Step 3: the completion goes to receive-ring offset `pos`.
    pub fn completing(&self, slot: Slot, pos: u32) {
        self.set_pos(slot.0, pos);
        self.set_state(slot.0, COMPLETING);
    }

    /// Step 4: the completion is published.
    pub fn done(&mut self, slot: Slot) {
        self.set_state(slot.0, FREE);
        self.hint = slot.0;
    }

    /// Entries in use.
    pub fn in_use(&self) -> usize {
        (0..JOURNAL_ENTRIES)
            .filter(|&i| self.entry_state(i) != FREE)
            .count()
    }

    /// Forgets every entry (the guest opened or closed the channel: its
    /// requests on the old rings are its own business).
    pub fn clear(&mut self) {
        for i in 0..JOURNAL_ENTRIES {
            if self.entry_state(i) != FREE {
                self.set_state(i, FREE);
            }
        }
        self.hint = 0;
    }

    /// After a VSP restart, given the send ring's published read index and
    /// the receive ring's published write index: the requests a previous
    /// VSP took and did not answer, as (slot, transaction id), oldest
    /// first by slot. Entries that need nothing are freed.
    pub fn recover(&mut self, read_index: u32, write_index: u32) -> Vec<(Slot, u64)> {
        let mut out = Vec::new();
        for i in 0..JOURNAL_ENTRIES {
            let keep = match self.entry_state(i) {
                FREE => continue,
                // The read index was not published: the packet is still in
                // the ring, and nothing of it was handled.
                TAKEN => self.pos(i) != read_index,
                // The completion was published: the guest has its answer.
                COMPLETING => self.pos(i) == write_index,
                _ => true,
            };
            if keep {
                self.set_state(i, PENDING);
                out.push((Slot(i), self.trans_id(i)));
            } else {
                self.set_state(i, FREE);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> (Arc<HostState>, OwnedFd) {
        let fd = rustix::fs::memfd_create("state", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, STATE_SIZE as u64).unwrap();
        let st = Arc::new(HostState::from_fd(fd.try_clone().unwrap()).unwrap());
        (st, fd)
    }

    #[test]
    fn header_fresh_then_reused() {
        let (a, fd) = shared();
        assert!(a.is_fresh());
        assert_eq!(a.attaches(), 1);
        a.set_guest_gen(7);
        let b = HostState::from_fd(fd).unwrap();
        assert!(!b.is_fresh());
        assert_eq!(b.attaches(), 2);
        assert_eq!(b.guest_gen(), 7);
        let anon = HostState::anonymous().unwrap();
        assert!(anon.is_fresh());
    }

    #[test]
    fn each_crash_point_recovers_to_the_right_answer() {
        let (st, fd) = shared();
        let mut j = st.channel(1);
        // Crash after step 1, read index not published (still 0): dropped.
        let a = j.take(10, 0).unwrap();
        // Crash after step 1 with the read index published (now 200).
        let b = j.take(11, 96).unwrap();
        // Pending (held or being handled).
        let c = j.take(12, 150).unwrap();
        j.taken(c);
        // Completing, not published (write index still 64).
        let d = j.take(13, 170).unwrap();
        j.taken(d);
        j.completing(d, 64);
        // Completing, published earlier (its pos 32 != 64).
        let e = j.take(14, 180).unwrap();
        j.taken(e);
        j.completing(e, 32);
        // Done.
        let f = j.take(15, 190).unwrap();
        j.taken(f);
        j.completing(f, 0);
        j.done(f);
        assert_eq!(j.in_use(), 5);
        let _ = (a, b);

        // Another process maps the same memory.
        let st2 = Arc::new(HostState::from_fd(fd).unwrap());
        let mut j2 = st2.channel(1);
        let mut got: Vec<u64> = j2.recover(0, 64).into_iter().map(|(_, t)| t).collect();
        got.sort_unstable();
        assert_eq!(got, vec![11, 12, 13]);
        assert_eq!(j2.in_use(), 3);
        // Other channels are untouched.
        assert_eq!(st2.channel(0).in_use(), 0);
        j2.clear();
        assert_eq!(j2.in_use(), 0);
    }

    #[test]
    fn full_journal_refuses_and_freed_entries_are_reused() {
        let st = Arc::new(HostState::anonymous().unwrap());
        let mut j = st.channel(0);
        let slots: Vec<Slot> = (0..JOURNAL_ENTRIES)
            .map(|i| j.take(i as u64, 0).unwrap())
            .collect();
        assert!(j.take(99, 0).is_none());
        j.done(slots[17]);
        assert_eq!(j.take(100, 8), Some(slots[17]));
    }
}
