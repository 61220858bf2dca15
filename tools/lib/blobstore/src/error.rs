//! Errno-compatible errors.

/// Result type of every fallible Blobstore operation.
pub type Result<T> = std::result::Result<T, Error>;

/// A Blobstore error. Every variant maps to one errno value (see [`Error::errno`]), so callers
/// that speak POSIX (the blob service, the CLI's exit status) can pass it on unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ENOENT: no such blob, xattr or super blob.
    #[error("not found: {0}")]
    NotFound(String),
    /// EBUSY: the blob is open elsewhere, has clones, or a compound operation is running.
    #[error("busy: {0}")]
    Busy(String),
    /// ENOSPC: not enough free clusters or metadata pages.
    #[error("no space left: {0}")]
    NoSpace(String),
    /// EPERM: the blob (or its metadata) is read-only.
    #[error("operation not permitted: {0}")]
    ReadOnly(String),
    /// EINVAL: a bad argument (range, size, option).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// EILSEQ: the on-disk format is not valid (bad signature, version, CRC, descriptor).
    #[error("invalid on-disk format: {0}")]
    Format(String),
    /// ENXIO: the blobstore type does not match the one requested.
    #[error("blobstore type mismatch")]
    TypeMismatch,
    /// ENOMEM: a value does not fit (an xattr larger than a metadata page).
    #[error("does not fit: {0}")]
    NoMem(String),
    /// EBADF: the store has been unloaded.
    #[error("blobstore is unloaded")]
    Unloaded,
    /// EIO (or the device's own errno): the device failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The errno value (positive) this error stands for.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound(_) => 2,  // ENOENT
            Error::Busy(_) => 16,     // EBUSY
            Error::NoSpace(_) => 28,  // ENOSPC
            Error::ReadOnly(_) => 1,  // EPERM
            Error::Invalid(_) => 22,  // EINVAL
            Error::Format(_) => 84,   // EILSEQ
            Error::TypeMismatch => 6, // ENXIO
            Error::NoMem(_) => 12,    // ENOMEM
            Error::Unloaded => 9,     // EBADF
            Error::Io(e) => e.raw_os_error().unwrap_or(5),
        }
    }
}

pub(crate) fn einval(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

pub(crate) fn eilseq(msg: impl Into<String>) -> Error {
    Error::Format(msg.into())
}
