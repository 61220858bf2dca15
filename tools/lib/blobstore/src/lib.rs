//! A persistent, power-fail-safe block allocator in the on-disk format of SPDK's Blobstore
//! (version 3).
//!
//! A [`Blobstore`] owns a whole [`Device`] divided into clusters. A blob is an ordered list of
//! clusters with xattrs, optionally thin provisioned, snapshotted or cloned. Metadata lives in
//! 4 KiB pages with CRC-32C; every metadata change is committed by an in-place write of the
//! blob's root page after its other pages are durable, with explicit barriers
//! ([`Device::flush`]) where SPDK has none. See `Documentation/tools/blobstore.rst`.

mod bits;
pub mod dev;
mod error;
pub mod format;
mod store;

pub use dev::{CrashMode, Device, FileDevice, MemDevice};
pub use error::{Error, Result};
pub use store::{
    read_super_block, Blob, BlobId, BlobOptions, Blobstore, CheckReport, ClearMethod, InitOptions,
    LoadOptions, XATTR_EXTERNAL_SNAPSHOT, XATTR_SNAPSHOT, XATTR_SNAPSHOT_IN_PROGRESS,
    XATTR_SNAPSHOT_REMOVAL,
};
