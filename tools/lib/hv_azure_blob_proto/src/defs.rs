// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The one definition of every hv_azure_blob wire struct and constant.
//!
//! This file is shared, unchanged, by the kernel module (which includes it by
//! path: `#[path = ".../defs.rs"] mod defs;`), the host simulator and the user
//! library. It therefore uses `core` only and plain fixed-size fields. In
//! userspace the `zerocopy` feature adds byte-level (de)serialisation derives;
//! the kernel build ignores them.
//!
//! Every multi-byte field is little-endian on the wire: Hyper-V and the guest
//! define all of their shared structures that way, and this crate only builds
//! for little-endian targets.

#![allow(dead_code)]

#[cfg(not(target_endian = "little"))]
compile_error!("hv_azure_blob's wire structs are little-endian and use native fields");

/// Defines a wire struct with `#[repr(C)]` and, in userspace, the zerocopy derives.
macro_rules! wire_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[cfg_attr(feature = "zerocopy", derive(
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout
        ))]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }
    };
}

// ---------------------------------------------------------------------------
// UAPI: include/uapi/misc/hv_azure_blob.h
// ---------------------------------------------------------------------------

wire_struct! {
    /// `struct az_blob_request_sync_response`: written by the driver on return.
    pub struct AzBlobRequestSyncResponse {
        /// The VSP's status (`az_blob_vsp_response.error`); 0 is success.
        pub status: u32,
        /// Bytes the VSP wrote into the response buffer.
        pub response_len: u32,
    }
}

wire_struct! {
    /// `struct az_blob_request_sync`: the ioctl argument (72 bytes).
    pub struct AzBlobRequestSync {
        /// Caller-chosen id, forwarded to the host as `transaction_id`.
        pub guid: [u8; 16],
        /// Host-side timeout in milliseconds (0 = no limit).
        pub timeout: u32,
        /// Bytes in the request buffer (must not be 0).
        pub request_len: u32,
        /// Capacity of the response buffer (must not be 0).
        pub response_len: u32,
        /// Capacity of the data buffer (0 = no data buffer).
        pub data_len: u32,
        /// Bytes of the data buffer that hold input (<= `data_len`).
        pub data_valid: u32,
        /// Explicit padding (implicit in the 2021 header); set it to 0, the
        /// driver ignores it (as v5 did with its padding).
        pub reserved: u32,
        /// User virtual address of the request buffer.
        pub request_buffer: u64,
        /// User virtual address of the response buffer.
        pub response_buffer: u64,
        /// User virtual address of the data buffer.
        pub data_buffer: u64,
        /// Output: filled in by the driver.
        pub response: AzBlobRequestSyncResponse,
    }
}

/// `_IOC_WRITE | _IOC_READ` direction bits of an `_IOWR` ioctl number.
const IOC_READ_WRITE: u32 = 3;

/// `_IOWR(ty, nr, size)` as the kernel's asm-generic/ioctl.h computes it.
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    (IOC_READ_WRITE << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}

/// ioctl type letter of the device.
pub const AZ_BLOB_MAGIC_NUMBER: u8 = b'R';
/// `IOCTL_AZ_BLOB_DRIVER_USER_REQUEST` = `_IOWR('R', 0xf0, struct az_blob_request_sync)`.
pub const IOCTL_AZ_BLOB_DRIVER_USER_REQUEST: u32 = iowr(
    AZ_BLOB_MAGIC_NUMBER,
    0xf0,
    core::mem::size_of::<AzBlobRequestSync>(),
);
/// The number the published 2021 client uses: `_IOWR('R', 10, ...)`.
pub const IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY: u32 = iowr(
    AZ_BLOB_MAGIC_NUMBER,
    10,
    core::mem::size_of::<AzBlobRequestSync>(),
);

/// Largest number of 4 KiB pages one request may span (data + request + response).
pub const AZ_BLOB_MAX_PAGES: u32 = 8192;
/// Page size of the guest physical addresses on the wire (Hyper-V page).
pub const HV_PAGE_SIZE: u32 = 4096;
/// Size of each ring of the channel, in bytes (control page included).
pub const AZ_BLOB_RING_SIZE: u32 = 128 * 1024;
/// Largest number of requests in flight on one channel.
pub const AZ_BLOB_QUEUE_DEPTH: u32 = 1024;

/// VMBus device class of the Azure Blob device,
/// {0590b792-db64-45cc-81db-b8d70c577c9e}, in guid_t (mixed-endian) byte order.
pub const HV_AZURE_BLOB_GUID: [u8; 16] = [
    0x92, 0xb7, 0x90, 0x05, 0x64, 0xdb, 0xcc, 0x45, 0x81, 0xdb, 0xb8, 0xd7, 0x0c, 0x57, 0x7c, 0x9e,
];

// ---------------------------------------------------------------------------
// VSC <-> VSP messages
// ---------------------------------------------------------------------------

/// The only protocol version there is.
pub const VSP_PROTOCOL_VERSION_V1: u32 = 0;
/// `AZ_BLOB_DRIVER_USER_REQUEST`: the only operation ever sent.
pub const AZ_BLOB_DRIVER_USER_REQUEST: u32 = 0x100;
/// Reserved by the 2021 protocol, never sent.
pub const AZ_BLOB_DRIVER_REGISTER_BUFFER: u32 = 0x101;
/// Reserved by the 2021 protocol, never sent.
pub const AZ_BLOB_DRIVER_DEREGISTER_BUFFER: u32 = 0x102;

/// Host status: the host gave up after `timeout_ms` (HRESULT_FROM_WIN32(WAIT_TIMEOUT)).
pub const AZ_BLOB_STATUS_TIMEOUT: u32 = 0x8007_0102;
/// Host status: the request was malformed (E_INVALIDARG).
pub const AZ_BLOB_STATUS_INVALID_ARG: u32 = 0x8007_0057;
/// Host status: a buffer was too small (HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER)).
pub const AZ_BLOB_STATUS_BUFFER_TOO_SMALL: u32 = 0x8007_007a;
/// Host status: the response body does not fit the data buffer; the response
/// head is returned in full and its Content-Length is the size needed
/// (HRESULT_FROM_WIN32(ERROR_MORE_DATA)).
pub const AZ_BLOB_STATUS_DATA_TOO_SMALL: u32 = 0x8007_00ea;
/// Host status: the host failed internally (HRESULT_FROM_WIN32(ERROR_INTERNAL_ERROR)).
pub const AZ_BLOB_STATUS_INTERNAL_ERROR: u32 = 0x8007_054f;
/// Host status: the operation is not supported (E_NOTIMPL).
pub const AZ_BLOB_STATUS_NOT_SUPPORTED: u32 = 0x8000_4001;

wire_struct! {
    /// `struct az_blob_vsp_request` (56 bytes): the inline payload of the
    /// GPA-direct packet. Offsets are byte offsets into the packet's one page range.
    pub struct AzBlobVspRequest {
        pub version: u32,
        pub timeout_ms: u32,
        pub data_buffer_offset: u32,
        pub data_buffer_length: u32,
        pub data_buffer_valid: u32,
        pub operation_type: u32,
        pub request_buffer_offset: u32,
        pub request_buffer_length: u32,
        pub response_buffer_offset: u32,
        pub response_buffer_length: u32,
        pub transaction_id: [u8; 16],
    }
}

wire_struct! {
    /// `struct az_blob_vsp_response` (12 bytes): the payload of the completion.
    pub struct AzBlobVspResponse {
        /// Length of this message (12).
        pub length: u32,
        /// Status; becomes `az_blob_request_sync.response.status`.
        pub error: u32,
        /// Bytes written into the response buffer.
        pub response_len: u32,
    }
}

// ---------------------------------------------------------------------------
// VMBus ring buffer and packets (include/linux/hyperv.h)
// ---------------------------------------------------------------------------

/// `struct hv_ring_buffer` control page: byte offsets of its fields.
pub const RING_WRITE_INDEX: usize = 0;
pub const RING_READ_INDEX: usize = 4;
pub const RING_INTERRUPT_MASK: usize = 8;
pub const RING_PENDING_SEND_SZ: usize = 12;
pub const RING_FEATURE_BITS: usize = 64;
/// `feature_bits.feat_pending_send_sz`.
pub const RING_FEAT_PENDING_SEND_SZ: u32 = 1;
/// The data area starts one page after the control page.
pub const RING_CONTROL_SIZE: u32 = 4096;

pub const VM_PKT_DATA_INBAND: u16 = 0x6;
pub const VM_PKT_DATA_USING_XFER_PAGES: u16 = 0x7;
pub const VM_PKT_DATA_USING_GPA_DIRECT: u16 = 0x9;
pub const VM_PKT_COMP: u16 = 0xb;
/// `VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED`.
pub const VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED: u16 = 1;
/// Each packet is followed in the ring by this many bytes: `(u64)old_write_index << 32`.
pub const RING_TRAILER_SIZE: u32 = 8;

wire_struct! {
    /// `struct vmpacket_descriptor` (16 bytes).
    pub struct VmPacketDescriptor {
        pub kind: u16,
        /// Start of the payload, in 8-byte units from the start of the packet.
        pub offset8: u16,
        /// Length of the packet in 8-byte units, trailer excluded.
        pub len8: u16,
        pub flags: u16,
        pub trans_id: u64,
    }
}

wire_struct! {
    /// What follows the descriptor of a GPA-direct packet.
    pub struct GpaDirectHeader {
        pub reserved: u32,
        pub range_count: u32,
    }
}

wire_struct! {
    /// `struct hv_mpb_array` head: one range, followed by its PFNs (u64 each).
    pub struct GpaRange {
        pub byte_count: u32,
        pub byte_offset: u32,
    }
}

wire_struct! {
    /// The completion packet az_blob's VSP sends: descriptor + response + padding.
    pub struct AzBlobCompletionPacket {
        pub desc: VmPacketDescriptor,
        pub response: AzBlobVspResponse,
        pub pad: u32,
    }
}

// Layout checks, at compile time, in every build that includes this file.
const _: () = assert!(core::mem::size_of::<AzBlobRequestSync>() == 72);
const _: () = assert!(core::mem::size_of::<AzBlobRequestSyncResponse>() == 8);
const _: () = assert!(core::mem::size_of::<AzBlobVspRequest>() == 56);
const _: () = assert!(core::mem::size_of::<AzBlobVspResponse>() == 12);
const _: () = assert!(core::mem::size_of::<VmPacketDescriptor>() == 16);
const _: () = assert!(core::mem::size_of::<AzBlobCompletionPacket>() == 32);
const _: () = assert!(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST == 0xC048_52F0);
const _: () = assert!(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY == 0xC048_520A);
