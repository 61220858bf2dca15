// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! SharedKey authorization: the one definition lives in
//! `hv_azure_blob_proto::shared_key`, shared with the user library.

pub use hv_azure_blob_proto::shared_key::*;
