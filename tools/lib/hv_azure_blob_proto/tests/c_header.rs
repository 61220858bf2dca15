// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Compiles include/uapi/misc/hv_azure_blob.h with the C compiler and checks
//! its sizes, offsets and ioctl numbers against the Rust definitions.

use hv_azure_blob_proto::*;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

fn c_layout() -> Vec<(String, u64)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("layout.c");
    std::fs::write(
        &src,
        r#"
#include <stdio.h>
#include <stddef.h>
#include <misc/hv_azure_blob.h>
#define S(t) printf("sizeof %s %zu\n", #t, sizeof(struct t))
#define O(t, f) printf("offsetof %s.%s %zu\n", #t, #f, offsetof(struct t, f))
int main(void) {
    S(az_blob_request_sync); S(az_blob_request_sync_response);
    O(az_blob_request_sync, guid); O(az_blob_request_sync, timeout);
    O(az_blob_request_sync, request_len); O(az_blob_request_sync, response_len);
    O(az_blob_request_sync, data_len); O(az_blob_request_sync, data_valid);
    O(az_blob_request_sync, reserved); O(az_blob_request_sync, request_buffer);
    O(az_blob_request_sync, response_buffer); O(az_blob_request_sync, data_buffer);
    O(az_blob_request_sync, response);
    O(az_blob_request_sync_response, status); O(az_blob_request_sync_response, response_len);
    printf("alignof az_blob_request_sync %zu\n", _Alignof(struct az_blob_request_sync));
    printf("ioctl IOCTL_AZ_BLOB_DRIVER_USER_REQUEST %lu\n", (unsigned long)IOCTL_AZ_BLOB_DRIVER_USER_REQUEST);
    printf("ioctl IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY %lu\n", (unsigned long)IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY);
    printf("const AZ_BLOB_MAX_PAGES %lu\n", (unsigned long)AZ_BLOB_MAX_PAGES);
    printf("const AZ_BLOB_STATUS_TIMEOUT %lu\n", (unsigned long)AZ_BLOB_STATUS_TIMEOUT);
    printf("const AZ_BLOB_STATUS_INVALID_ARG %lu\n", (unsigned long)AZ_BLOB_STATUS_INVALID_ARG);
    printf("const AZ_BLOB_STATUS_BUFFER_TOO_SMALL %lu\n", (unsigned long)AZ_BLOB_STATUS_BUFFER_TOO_SMALL);
    printf("const AZ_BLOB_STATUS_NOT_SUPPORTED %lu\n", (unsigned long)AZ_BLOB_STATUS_NOT_SUPPORTED);
    return 0;
}
"#,
    )
    .expect("write layout.c");
    let exe = dir.path().join("layout");
    let cc = cc::Build::new()
        .cargo_metadata(false)
        .opt_level(0)
        .target("x86_64-unknown-linux-gnu")
        .host("x86_64-unknown-linux-gnu")
        .get_compiler();
    let status = cc
        .to_command()
        .args(["-std=c11", "-Wall", "-Werror", "-pedantic", "-I"])
        .arg(root.join("include/uapi"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "the UAPI header does not compile");
    let out = Command::new(&exe).output().expect("run layout program");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| {
            let mut it = l.rsplitn(2, ' ');
            let v = it.next().expect("value").parse().expect("number");
            (it.next().expect("key").to_string(), v)
        })
        .collect()
}

#[test]
fn c_header_matches_rust_definitions() {
    type R = AzBlobRequestSync;
    type S = AzBlobRequestSyncResponse;
    let expected: Vec<(&str, u64)> = vec![
        ("sizeof az_blob_request_sync", size_of::<R>() as u64),
        ("sizeof az_blob_request_sync_response", size_of::<S>() as u64),
        ("offsetof az_blob_request_sync.guid", offset_of!(R, guid) as u64),
        ("offsetof az_blob_request_sync.timeout", offset_of!(R, timeout) as u64),
        ("offsetof az_blob_request_sync.request_len", offset_of!(R, request_len) as u64),
        ("offsetof az_blob_request_sync.response_len", offset_of!(R, response_len) as u64),
        ("offsetof az_blob_request_sync.data_len", offset_of!(R, data_len) as u64),
        ("offsetof az_blob_request_sync.data_valid", offset_of!(R, data_valid) as u64),
        ("offsetof az_blob_request_sync.reserved", offset_of!(R, reserved) as u64),
        ("offsetof az_blob_request_sync.request_buffer", offset_of!(R, request_buffer) as u64),
        ("offsetof az_blob_request_sync.response_buffer", offset_of!(R, response_buffer) as u64),
        ("offsetof az_blob_request_sync.data_buffer", offset_of!(R, data_buffer) as u64),
        ("offsetof az_blob_request_sync.response", offset_of!(R, response) as u64),
        ("offsetof az_blob_request_sync_response.status", offset_of!(S, status) as u64),
        ("offsetof az_blob_request_sync_response.response_len", offset_of!(S, response_len) as u64),
        ("alignof az_blob_request_sync", std::mem::align_of::<R>() as u64),
        ("ioctl IOCTL_AZ_BLOB_DRIVER_USER_REQUEST", IOCTL_AZ_BLOB_DRIVER_USER_REQUEST as u64),
        ("ioctl IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY", IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY as u64),
        ("const AZ_BLOB_MAX_PAGES", AZ_BLOB_MAX_PAGES as u64),
        ("const AZ_BLOB_STATUS_TIMEOUT", AZ_BLOB_STATUS_TIMEOUT as u64),
        ("const AZ_BLOB_STATUS_INVALID_ARG", AZ_BLOB_STATUS_INVALID_ARG as u64),
        ("const AZ_BLOB_STATUS_BUFFER_TOO_SMALL", AZ_BLOB_STATUS_BUFFER_TOO_SMALL as u64),
        ("const AZ_BLOB_STATUS_NOT_SUPPORTED", AZ_BLOB_STATUS_NOT_SUPPORTED as u64),
    ];
    let c = c_layout();
    assert_eq!(c.len(), expected.len(), "C program printed {c:?}");
    for ((ck, cv), (rk, rv)) in c.iter().zip(expected.iter()) {
        assert_eq!(ck, rk);
        assert_eq!(cv, rv, "{ck}: C says {cv}, Rust says {rv}");
    }
    // The v5 ABI, independently of both definitions.
    assert_eq!(size_of::<R>(), 72);
    assert_eq!(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, 0xC048_52F0);
    assert_eq!(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY, 0xC048_520A);
}

#[test]
fn vsp_messages_have_the_2021_sizes_and_offsets() {
    assert_eq!(size_of::<AzBlobVspRequest>(), 56);
    assert_eq!(offset_of!(AzBlobVspRequest, operation_type), 20);
    assert_eq!(offset_of!(AzBlobVspRequest, transaction_id), 40);
    assert_eq!(size_of::<AzBlobVspResponse>(), 12);
    assert_eq!(size_of::<VmPacketDescriptor>(), 16);
    assert_eq!(offset_of!(VmPacketDescriptor, trans_id), 8);
}
