// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Compiles include/uapi/misc/hv_azure_blob.h with the C compiler and checks
//! its sizes, offsets and ioctl numbers against the Rust definitions.

use hv_azure_blob_proto::*;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

fn c_layout() -> Vec<(String, u64)> {
    run_c_program(
        "include/uapi",
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
    printf("const AZ_BLOB_STATUS_DATA_TOO_SMALL %lu\n", (unsigned long)AZ_BLOB_STATUS_DATA_TOO_SMALL);
    printf("const AZ_BLOB_STATUS_INTERNAL_ERROR %lu\n", (unsigned long)AZ_BLOB_STATUS_INTERNAL_ERROR);
    return 0;
}
"#,
    )
}

/// Compiles `program` with `-I <repo>/<include>` and parses its `key value` lines.
fn run_c_program(include: &str, program: &str) -> Vec<(String, u64)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("layout.c");
    std::fs::write(&src, program).expect("write layout.c");
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
        .arg(root.join(include))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("run the C compiler");
    assert!(
        status.success(),
        "the header under {include} does not compile"
    );
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
        (
            "sizeof az_blob_request_sync_response",
            size_of::<S>() as u64,
        ),
        (
            "offsetof az_blob_request_sync.guid",
            offset_of!(R, guid) as u64,
        ),
        (
            "offsetof az_blob_request_sync.timeout",
            offset_of!(R, timeout) as u64,
        ),
        (
            "offsetof az_blob_request_sync.request_len",
            offset_of!(R, request_len) as u64,
        ),
        (
            "offsetof az_blob_request_sync.response_len",
            offset_of!(R, response_len) as u64,
        ),
        (
            "offsetof az_blob_request_sync.data_len",
            offset_of!(R, data_len) as u64,
        ),
        (
            "offsetof az_blob_request_sync.data_valid",
            offset_of!(R, data_valid) as u64,
        ),
        (
            "offsetof az_blob_request_sync.reserved",
            offset_of!(R, reserved) as u64,
        ),
        (
            "offsetof az_blob_request_sync.request_buffer",
            offset_of!(R, request_buffer) as u64,
        ),
        (
            "offsetof az_blob_request_sync.response_buffer",
            offset_of!(R, response_buffer) as u64,
        ),
        (
            "offsetof az_blob_request_sync.data_buffer",
            offset_of!(R, data_buffer) as u64,
        ),
        (
            "offsetof az_blob_request_sync.response",
            offset_of!(R, response) as u64,
        ),
        (
            "offsetof az_blob_request_sync_response.status",
            offset_of!(S, status) as u64,
        ),
        (
            "offsetof az_blob_request_sync_response.response_len",
            offset_of!(S, response_len) as u64,
        ),
        (
            "alignof az_blob_request_sync",
            std::mem::align_of::<R>() as u64,
        ),
        (
            "ioctl IOCTL_AZ_BLOB_DRIVER_USER_REQUEST",
            IOCTL_AZ_BLOB_DRIVER_USER_REQUEST as u64,
        ),
        (
            "ioctl IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY",
            IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY as u64,
        ),
        ("const AZ_BLOB_MAX_PAGES", AZ_BLOB_MAX_PAGES as u64),
        (
            "const AZ_BLOB_STATUS_TIMEOUT",
            AZ_BLOB_STATUS_TIMEOUT as u64,
        ),
        (
            "const AZ_BLOB_STATUS_INVALID_ARG",
            AZ_BLOB_STATUS_INVALID_ARG as u64,
        ),
        (
            "const AZ_BLOB_STATUS_BUFFER_TOO_SMALL",
            AZ_BLOB_STATUS_BUFFER_TOO_SMALL as u64,
        ),
        (
            "const AZ_BLOB_STATUS_NOT_SUPPORTED",
            AZ_BLOB_STATUS_NOT_SUPPORTED as u64,
        ),
        (
            "const AZ_BLOB_STATUS_DATA_TOO_SMALL",
            AZ_BLOB_STATUS_DATA_TOO_SMALL as u64,
        ),
        (
            "const AZ_BLOB_STATUS_INTERNAL_ERROR",
            AZ_BLOB_STATUS_INTERNAL_ERROR as u64,
        ),
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

#[test]
fn simulated_vmbus_control_page_matches_its_c_header() {
    use hv_azure_blob_proto::sim_shm::*;
    let c = run_c_program(
        "tools/testing/vmbus_sim",
        r#"
#include <stdio.h>
#include <stddef.h>
#include "vmbus_sim_shm.h"
#define O(t, f) printf("%s.%s %zu\n", #t, #f, offsetof(struct t, f))
int main(void) {
    printf("sizeof_shm %zu\n", sizeof(struct vmbus_sim_shm));
    printf("sizeof_chan %zu\n", sizeof(struct vmbus_sim_channel));
    O(vmbus_sim_shm, magic); O(vmbus_sim_shm, host_gen); O(vmbus_sim_shm, host_peer);
    O(vmbus_sim_shm, guest_id); O(vmbus_sim_shm, guest_gen); O(vmbus_sim_shm, nr_channels);
    O(vmbus_sim_shm, chan);
    O(vmbus_sim_channel, offered); O(vmbus_sim_channel, offer_seq); O(vmbus_sim_channel, open_ack);
    O(vmbus_sim_channel, host_status); O(vmbus_sim_channel, if_type); O(vmbus_sim_channel, if_instance);
    O(vmbus_sim_channel, state); O(vmbus_sim_channel, open_seq); O(vmbus_sim_channel, send_pages);
    O(vmbus_sim_channel, recv_pages); O(vmbus_sim_channel, ring_pfn);
    printf("magic %u\n", VMBUS_SIM_MAGIC);
    printf("version %u\n", VMBUS_SIM_VERSION);
    printf("channels %u\n", VMBUS_SIM_MAX_CHANNELS);
    printf("ring_pfns %u\n", VMBUS_SIM_MAX_RING_PFNS);
    printf("vectors %u\n", VMBUS_SIM_NR_VECTORS);
    printf("state_open %u\n", VMBUS_SIM_STATE_OPEN);
    return 0;
}
"#,
    );
    let expected: Vec<(&str, u64)> = vec![
        ("sizeof_shm", size_of::<SimShm>() as u64),
        ("sizeof_chan", size_of::<SimChannel>() as u64),
        ("vmbus_sim_shm.magic", shm_field::MAGIC as u64),
        ("vmbus_sim_shm.host_gen", shm_field::HOST_GEN as u64),
        ("vmbus_sim_shm.host_peer", shm_field::HOST_PEER as u64),
        ("vmbus_sim_shm.guest_id", shm_field::GUEST_ID as u64),
        ("vmbus_sim_shm.guest_gen", shm_field::GUEST_GEN as u64),
        ("vmbus_sim_shm.nr_channels", shm_field::NR_CHANNELS as u64),
        ("vmbus_sim_shm.chan", chan_offset(0) as u64),
        ("vmbus_sim_channel.offered", chan_field::OFFERED as u64),
        ("vmbus_sim_channel.offer_seq", chan_field::OFFER_SEQ as u64),
        ("vmbus_sim_channel.open_ack", chan_field::OPEN_ACK as u64),
        (
            "vmbus_sim_channel.host_status",
            chan_field::HOST_STATUS as u64,
        ),
        ("vmbus_sim_channel.if_type", chan_field::IF_TYPE as u64),
        (
            "vmbus_sim_channel.if_instance",
            chan_field::IF_INSTANCE as u64,
        ),
        ("vmbus_sim_channel.state", chan_field::STATE as u64),
        ("vmbus_sim_channel.open_seq", chan_field::OPEN_SEQ as u64),
        (
            "vmbus_sim_channel.send_pages",
            chan_field::SEND_PAGES as u64,
        ),
        (
            "vmbus_sim_channel.recv_pages",
            chan_field::RECV_PAGES as u64,
        ),
        ("vmbus_sim_channel.ring_pfn", chan_field::RING_PFN as u64),
        ("magic", VMBUS_SIM_MAGIC as u64),
        ("version", VMBUS_SIM_VERSION as u64),
        ("channels", VMBUS_SIM_MAX_CHANNELS as u64),
        ("ring_pfns", VMBUS_SIM_MAX_RING_PFNS as u64),
        ("vectors", VMBUS_SIM_NR_VECTORS as u64),
        ("state_open", VMBUS_SIM_STATE_OPEN as u64),
    ];
    assert_eq!(c.len(), expected.len(), "C program printed {c:?}");
    for ((ck, cv), (rk, rv)) in c.iter().zip(expected.iter()) {
        assert_eq!(ck, rk);
        assert_eq!(cv, rv, "{ck}: C says {cv}, Rust says {rv}");
    }
}
