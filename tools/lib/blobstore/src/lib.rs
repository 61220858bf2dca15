//! A persistent, power-fail-safe block allocator in the on-disk format of SPDK's Blobstore
//! (version 3).
//!
//! A [`Blobstore`] owns a whole [`Device`] divided into clusters. A blob is an ordered list of
//! clusters with xattrs, optionally thin provisioned, snapshotted or cloned. Metadata lives in
//! 4 KiB pages with CRC-32C; every metadata change is committed by an in-place write of the
//! blob's root page after its other pages are durable, with explicit barriers
//! ([`Device::flush`]) where SPDK has none. See `Documentation/tools/blobstore.rst`.
//!
//! ```
//! use std::sync::Arc;
//! use blobstore::{BlobOptions, Blobstore, Device, InitOptions, LoadOptions, MemDevice};
//!
//! # fn main() -> blobstore::Result<()> {
//! let dev: Arc<dyn Device> = Arc::new(MemDevice::new(16 << 20, 4096));
//! let bs = Blobstore::init(dev.clone(), &InitOptions::default())?;
//! let id = bs.create_blob(&BlobOptions {
//!     num_clusters: 4,
//!     thin_provision: true,
//!     xattrs: vec![("name".into(), b"container/blob".to_vec())],
//!     ..BlobOptions::default()
//! })?;
//! bs.set_super_blob(id)?;
//! let blob = bs.open_blob(id)?;
//! blob.write(0, &[7u8; 4096])?; // offsets and lengths in io_units (4096 here)
//! blob.flush()?; // durable
//! let snap = bs.create_snapshot(id, &[])?;
//! let mut buf = [0u8; 4096];
//! blob.read(0, &mut buf)?; // now read through the snapshot
//! assert_eq!(buf, [7u8; 4096]);
//! blob.close()?;
//! bs.unload()?;
//!
//! let bs = Blobstore::load(dev, &LoadOptions::default())?;
//! assert_eq!(bs.super_blob()?, id);
//! assert_eq!(bs.parent_of(id)?, Some(snap));
//! # Ok(())
//! # }
//! ```

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
