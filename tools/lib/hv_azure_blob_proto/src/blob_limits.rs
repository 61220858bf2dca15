// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Limits of the Azure Blob service that both sides of the VSC door (the
//! blob service and the user library) must agree on.

/// Most committed blocks (or appended blocks) per blob.
pub const MAX_COMMITTED_BLOCKS: usize = 50_000;
