// SPDX-License-Identifier: GPL-2.0
//! hv_azure_blob: the Azure Blob VMBus client driver.
//!
//! The host (Hyper-V) offers a VMBus device of class
//! {0590b792-db64-45cc-81db-b8d70c577c9e}. This driver opens its channel and
//! exposes `/dev/azure_blob`, whose one ioctl takes a request, a response and
//! a data buffer from user space, pins them, and sends them to the host as one
//! GPA-direct VMBus packet; the host's completion finishes the call.
//!
//! The crate root holds the module declaration; each concern has its file:
//! [`hv`] (the raw VMBus calls behind a safe wrapper), [`pages`] (pinned user
//! pages), [`request`] (one request, from the user's struct to the packet and
//! back) and [`device`] (the device, its misc node and its files).

use kernel::prelude::*;

mod device;
mod hv;
mod pages;
mod request;
mod stats;

/// The wire structs, shared with the host simulator and the user library
/// (written for both worlds, so `pub` items and unused constants are expected).
#[allow(unreachable_pub, dead_code, missing_docs)]
#[path = "../../../tools/lib/hv_azure_blob_proto/src/defs.rs"]
mod defs;

module! {
    type: AzureBlobModule,
    name: "hv_azure_blob",
    authors: ["The hv_azure_blob authors"],
    description: "Microsoft Azure Blob VMBus client driver",
    license: "GPL",
    // What hv_vmbus puts in the device's MODALIAS ("vmbus:" and the class
    // id's bytes in guid_t order), so udev loads the module when the host
    // offers the device. run-guest.sh checks both sides agree.
    alias: ["vmbus:92b7900564dbcc4581dbb8d70c577c9e"],
}

struct AzureBlobModule {
    _driver: hv::DriverRegistration,
}

impl kernel::Module for AzureBlobModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let driver = hv::DriverRegistration::new::<device::AzureBlobDriver>(
            module,
            c"hv_azure_blob",
            &defs::HV_AZURE_BLOB_GUID,
        )?;
        Ok(Self { _driver: driver })
    }
}
