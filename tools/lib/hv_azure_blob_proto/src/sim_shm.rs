// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The control page of the simulated VMBus (test bed only): the ivshmem
//! shared memory between the guest's `vmbus_sim.ko` and the host simulator.
//! Mirrors `tools/testing/vmbus_sim/vmbus_sim_shm.h`, which documents the
//! protocol; a test cross-checks the two.

use std::mem::offset_of;

/// `VMBUS_SIM_MAGIC` ("VBSM"), set by the host once attached.
pub const VMBUS_SIM_MAGIC: u32 = 0x4d53_4256;
pub const VMBUS_SIM_VERSION: u32 = 1;
pub const VMBUS_SIM_MAX_CHANNELS: usize = 4;
pub const VMBUS_SIM_MAX_RING_PFNS: usize = 128;
pub const VMBUS_SIM_VEC_CONTROL: u32 = 0;
pub const VMBUS_SIM_NR_VECTORS: u32 = 1 + VMBUS_SIM_MAX_CHANNELS as u32;
pub const VMBUS_SIM_STATE_CLOSED: u32 = 0;
pub const VMBUS_SIM_STATE_OPEN: u32 = 1;

/// `struct vmbus_sim_channel`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "zerocopy",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::Immutable,
        zerocopy::KnownLayout
    )
)]
pub struct SimChannel {
    pub offered: u32,
    pub offer_seq: u32,
    pub open_ack: u32,
    pub host_status: u32,
    pub if_type: [u8; 16],
    pub if_instance: [u8; 16],
    pub state: u32,
    pub open_seq: u32,
    pub send_pages: u32,
    pub recv_pages: u32,
    pub ring_pfn: [u64; VMBUS_SIM_MAX_RING_PFNS],
}

/// `struct vmbus_sim_shm`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "zerocopy",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::Immutable,
        zerocopy::KnownLayout
    )
)]
pub struct SimShm {
    pub magic: u32,
    pub version: u32,
    pub host_gen: u32,
    pub host_peer: u32,
    pub guest_id: u32,
    pub guest_gen: u32,
    pub nr_channels: u32,
    pub reserved: u32,
    pub chan: [SimChannel; VMBUS_SIM_MAX_CHANNELS],
}

/// Byte offset of channel `i`'s struct in the page.
pub const fn chan_offset(i: usize) -> usize {
    offset_of!(SimShm, chan) + i * std::mem::size_of::<SimChannel>()
}

/// Field offsets inside `SimChannel`, for atomic access to shared memory.
pub mod chan_field {
    use super::SimChannel;
    use std::mem::offset_of;
    pub const OFFERED: usize = offset_of!(SimChannel, offered);
    pub const OFFER_SEQ: usize = offset_of!(SimChannel, offer_seq);
    pub const OPEN_ACK: usize = offset_of!(SimChannel, open_ack);
    pub const HOST_STATUS: usize = offset_of!(SimChannel, host_status);
    pub const IF_TYPE: usize = offset_of!(SimChannel, if_type);
    pub const IF_INSTANCE: usize = offset_of!(SimChannel, if_instance);
    pub const STATE: usize = offset_of!(SimChannel, state);
    pub const OPEN_SEQ: usize = offset_of!(SimChannel, open_seq);
    pub const SEND_PAGES: usize = offset_of!(SimChannel, send_pages);
    pub const RECV_PAGES: usize = offset_of!(SimChannel, recv_pages);
    pub const RING_PFN: usize = offset_of!(SimChannel, ring_pfn);
}

/// Field offsets inside `SimShm`.
pub mod shm_field {
    use super::SimShm;
    use std::mem::offset_of;
    pub const MAGIC: usize = offset_of!(SimShm, magic);
    pub const VERSION: usize = offset_of!(SimShm, version);
    pub const HOST_GEN: usize = offset_of!(SimShm, host_gen);
    pub const HOST_PEER: usize = offset_of!(SimShm, host_peer);
    pub const GUEST_ID: usize = offset_of!(SimShm, guest_id);
    pub const GUEST_GEN: usize = offset_of!(SimShm, guest_gen);
    pub const NR_CHANNELS: usize = offset_of!(SimShm, nr_channels);
}
