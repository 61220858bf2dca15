// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! User library of hv_azure_blob.
//!
//! [`Device`] is the low level: it owns an open `/dev/azure_blob` and sends
//! one [`Exchange`] (a request, a response and an optional data buffer) per
//! call. The ioctl blocks until the host has answered, and the driver keeps
//! the buffers pinned only for that time, so borrowing them for the duration
//! of the call is sound: no buffer outlives or escapes the call.

mod device;
mod rest;

pub use device::{Device, Exchange, Reply, DEFAULT_PATH};
pub use rest::{RestRequest, RestResponse, VscClient, DEV_ACCOUNT, X_MS_VERSION};

/// Errors of the low-level API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening the device failed (ENOENT: no device offered or driver not
    /// loaded; EACCES: node permissions).
    #[error("cannot open {path}: {errno}")]
    Open {
        path: String,
        errno: rustix::io::Errno,
    },
    /// The ioctl failed: EINVAL (a bad length), EFAULT (a bad buffer),
    /// ENODEV (the device went away), EIO (the host misbehaved), ...
    #[error("azure_blob request failed: {0}")]
    Ioctl(rustix::io::Errno),
    /// The host failed the exchange itself (not an HTTP error): an
    /// HRESULT-style status such as 0x80070057 (malformed framing) or
    /// 0x80070102 (the host's timeout).
    #[error("the host failed the request with status {status:#010x}")]
    Host { status: u32 },
    /// The host's answer is not a well-formed HTTP response.
    #[error("malformed response from the host: {0}")]
    Protocol(String),
    /// A buffer is larger than the protocol allows.
    #[error("{what} is {len} bytes; the limit is {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

impl Error {
    /// The errno behind this error.
    pub fn errno(&self) -> rustix::io::Errno {
        match self {
            Error::Open { errno, .. } => *errno,
            Error::Ioctl(e) => *e,
            Error::TooLarge { .. } => rustix::io::Errno::INVAL,
            Error::Host { .. } | Error::Protocol(_) => rustix::io::Errno::IO,
        }
    }
}
