// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! User library of hv_azure_blob.
//!
//! Three layers:
//!
//! - [`Device`] is the low level: it owns an open `/dev/azure_blob` and sends
//!   one [`Exchange`] (a request, a response and an optional data buffer) per
//!   call. The ioctl blocks until the host has answered, and the driver keeps
//!   the buffers pinned only for that time, so borrowing them for the
//!   duration of the call is sound: no buffer outlives or escapes the call.
//! - A [`Transport`] sends one Blob REST request: [`VscTransport`] through
//!   the device, [`HttpTransport`] over TCP with SharedKey.
//! - The client API, shaped like the Azure SDKs: [`BlobServiceClient`] ->
//!   [`BlobContainerClient`] -> [`BlobClient`] (and its block, page and
//!   append flavours), with options structs. The same code runs on either
//!   transport.
//!
//! ```no_run
//! use azure_blob::{BlobServiceClient, UploadOptions, DownloadOptions};
//! let service = BlobServiceClient::vsc_default()?;
//! let container = service.container_client("photos");
//! container.create(&Default::default())?;
//! let blob = container.blob_client("cat.jpg");
//! blob.upload(b"meow", &UploadOptions::default())?;
//! let head = blob.download(&DownloadOptions::range(0, 2))?;
//! assert_eq!(head, b"me");
//! # Ok::<(), azure_blob::Error>(())
//! ```

mod client;
mod device;
mod transport;
mod xml;

pub use client::*;
pub use device::{Device, Exchange, Reply, DEFAULT_PATH};
pub use transport::{
    HttpTransport, RestRequest, RestResponse, Transport, VscClient, VscTransport, DEV_ACCOUNT,
    DEV_KEY, MAX_DATA, X_MS_VERSION,
};

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
    /// The service answered with an HTTP error.
    #[error("{}", service_message(*.status, .code.as_deref(), .message))]
    Service {
        /// The HTTP status (404, 409, 412, ...).
        status: u16,
        /// The service's `x-ms-error-code` (`BlobNotFound`, ...).
        code: Option<String>,
        /// The service's message (from its XML error body), or what was asked.
        message: String,
    },
    /// The HTTP transport's connection failed.
    #[error("HTTP transport: {0}")]
    Io(#[from] std::io::Error),
    /// A bad endpoint, key or option.
    #[error("{0}")]
    Config(String),
    /// A local file, reader or writer failed (not the service, not the
    /// transport): `what` names the file or stream.
    #[error("{what}: {source}")]
    Local {
        what: String,
        source: std::io::Error,
    },
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
            Error::Service { status, .. } => match status {
                404 => rustix::io::Errno::NOENT,
                409 => rustix::io::Errno::EXIST,
                403 => rustix::io::Errno::ACCESS,
                400 | 416 => rustix::io::Errno::INVAL,
                _ => rustix::io::Errno::IO,
            },
            Error::Io(e) | Error::Local { source: e, .. } => e
                .raw_os_error()
                .map(rustix::io::Errno::from_raw_os_error)
                .unwrap_or(rustix::io::Errno::IO),
            Error::Config(_) => rustix::io::Errno::INVAL,
        }
    }

    /// The HTTP status, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The service's `x-ms-error-code`, when it sent one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The service said the container or blob does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

fn service_message(status: u16, code: Option<&str>, message: &str) -> String {
    match code {
        Some(c) => format!("the service answered {status} {c}: {message}"),
        None => format!("the service answered {status}: {message}"),
    }
}
