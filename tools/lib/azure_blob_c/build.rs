// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Gives libazure_blob.so its SONAME, libazure_blob.so.MAJOR: the ABI
//! version. Installed programs then keep working across compatible updates.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libazure_blob.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
