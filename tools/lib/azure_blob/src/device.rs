// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `/dev/azure_blob` and its one ioctl.
#![allow(unsafe_code)] // the ioctl itself; see the SAFETY comments

use crate::Error;
use hv_azure_blob_proto::{
    AzBlobRequestSync, AZ_BLOB_MAX_PAGES, HV_PAGE_SIZE, IOCTL_AZ_BLOB_DRIVER_USER_REQUEST,
};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode};

/// Where the driver's node is.
pub const DEFAULT_PATH: &str = "/dev/azure_blob";

/// An open `/dev/azure_blob`.
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
}

/// One request to the host.
#[derive(Debug)]
pub struct Exchange<'a> {
    /// Caller's id, forwarded to the host (for correlation only).
    pub guid: [u8; 16],
    /// Host-side timeout in milliseconds; 0 = none.
    pub timeout_ms: u32,
    /// The request bytes (must not be empty).
    pub request: &'a [u8],
    /// Where the host writes its response (must not be empty).
    pub response: &'a mut [u8],
    /// The data buffer: its first `data_valid` bytes are input, and the host
    /// may write all of it. Empty for none.
    pub data: &'a mut [u8],
    /// How many bytes of `data` are input.
    pub data_valid: usize,
}

/// The host's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// 0, or the host's HRESULT-style status.
    pub status: u32,
    /// Bytes the host wrote into the response buffer (or, with
    /// `AZ_BLOB_STATUS_BUFFER_TOO_SMALL`, the size it needs).
    pub response_len: u32,
}

/// The ioctl with its number chosen at run time.
struct UserRequest {
    opcode: u32,
    arg: *mut AzBlobRequestSync,
}

// SAFETY: the argument is a `struct az_blob_request_sync` the kernel reads and
// writes (its `response` field); `as_ptr` points at exactly that struct.
unsafe impl Ioctl for UserRequest {
    type Output = ();
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        self.opcode as Opcode
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        self.arg.cast()
    }

    unsafe fn output_from_ptr(
        _out: IoctlOutput,
        _extract_output: *mut core::ffi::c_void,
    ) -> rustix::io::Result<()> {
        Ok(())
    }
}

fn limit(what: &'static str, len: usize) -> Result<u32, Error> {
    let max = (AZ_BLOB_MAX_PAGES * HV_PAGE_SIZE) as usize;
    if len > max {
        return Err(Error::TooLarge { what, len, max });
    }
    Ok(len as u32)
}

impl Device {
    /// Opens `/dev/azure_blob`.
    pub fn open() -> Result<Self, Error> {
        Self::open_path(DEFAULT_PATH)
    }

    /// Opens the node at `path`.
    pub fn open_path(path: &str) -> Result<Self, Error> {
        let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(
            |errno| Error::Open {
                path: path.to_string(),
                errno,
            },
        )?;
        Ok(Self { fd })
    }

    /// Sends one request and waits for the host's answer.
    pub fn request(&self, x: &mut Exchange<'_>) -> Result<Reply, Error> {
        let mut req = AzBlobRequestSync {
            guid: x.guid,
            timeout: x.timeout_ms,
            request_len: limit("the request", x.request.len())?,
            response_len: limit("the response buffer", x.response.len())?,
            data_len: limit("the data buffer", x.data.len())?,
            data_valid: limit("the valid data", x.data_valid.min(x.data.len()))?,
            reserved: 0,
            request_buffer: x.request.as_ptr() as u64,
            response_buffer: x.response.as_mut_ptr() as u64,
            data_buffer: x.data.as_mut_ptr() as u64,
            response: Default::default(),
        };
        // SAFETY: the struct points at buffers borrowed for this call only;
        // the driver returns only after the host is done with them.
        unsafe { self.raw_request(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, &raw mut req) }
            .map_err(Error::Ioctl)?;
        Ok(Reply {
            status: req.response.status,
            response_len: req.response.response_len,
        })
    }

    /// Issues the ioctl `opcode` with a caller-built struct, as is: for tests
    /// and fuzzers that must send what a well-behaved caller never would.
    ///
    /// # Safety
    ///
    /// `req` and the addresses in it must be valid for the kernel to write
    /// where the host may write (the struct's `response`, the response and
    /// data buffers) for the duration of the call, or be addresses the
    /// process does not use (the kernel then fails the call with EFAULT).
    pub unsafe fn raw_request(
        &self,
        opcode: u32,
        req: *mut AzBlobRequestSync,
    ) -> Result<(), rustix::io::Errno> {
        // SAFETY: `UserRequest` describes the ioctl's argument truthfully;
        // the caller vouches for the addresses inside it.
        unsafe { rustix::ioctl::ioctl(self.fd.as_fd(), UserRequest { opcode, arg: req }) }
    }
}
