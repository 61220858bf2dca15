// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Azure Blob service engine for the hv_azure_blob project.
//!
//! The engine ([`BlobService`]) implements Azure Blob semantics (containers, block, page and
//! append blobs, conditions, ranges, leases, SharedKey) over a [`storage::Storage`] backend. Two
//! doors lead to it:
//!
//! * the VSC door, [`BlobService::vsc_exchange`], which the host-side VSP simulator calls for
//!   each request the guest sends through `/dev/azure_blob`;
//! * the HTTP door, [`server::HttpServer`], plain Azure Blob REST over TCP (the
//!   `azure-blob-httpd` binary).
//!
//! See `Documentation/tools/blob_service.rst`.

pub mod auth;
pub mod conformance;
pub mod engine;
pub mod error;
pub mod file_storage;
pub mod http;
pub mod lease;
pub mod server;
pub mod storage;
pub mod vsc;
pub mod xml;

pub use engine::{BlobService, Config, Door};
pub use error::{ErrorCode, ServiceError};
pub use file_storage::FileStorage;
pub use storage::{MemoryStorage, Storage};
pub use vsc::VscOutcome;
