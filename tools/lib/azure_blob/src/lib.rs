// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! User library of hv_azure_blob.
//!
//! [`Device`] is the low level: it owns an open `/dev/azure_blob` and sends
//! one [`Exchange`] (a request, a response and an optional data buffer) per
//! call. The ioctl blocks until the host has answered, and the driver keeps
//! the buffers pinned only for that time, so borrowing them for the duration
//! of the call is sound: no buffer outlives or escapes the call.

mod device;

pub use device::{Device, Exchange, Reply, DEFAULT_PATH};

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
        }
    }
}
