// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Wire formats of hv_azure_blob, shared by the host simulator and the user
//! library. The definitions themselves live in [`defs`] (`src/defs.rs`), which
//! the kernel module includes by path, so there is one definition of each.
#![forbid(unsafe_code)]

#[path = "defs.rs"]
mod defs;
pub use defs::*;

pub mod blob_limits;
pub mod guid;
#[cfg(feature = "shared-key")]
pub mod shared_key;
pub mod sim_shm;
