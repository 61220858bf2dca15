// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Every strictness rule of the VSP: a packet that breaks it is completed
//! with AZ_BLOB_STATUS_INVALID_ARG (trans_id echoed, nothing written) and the
//! channel keeps working. A packet that breaks the ring format breaks the
//! channel, without a panic.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use azure_blob_vsp::vsp::{validate, ServeError};
use hv_azure_blob_proto::{AZ_BLOB_STATUS_INVALID_ARG, RING_WRITE_INDEX};

fn put16(p: &mut [u8], off: usize, v: u16) {
    p[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(p: &mut [u8], off: usize, v: u32) {
    p[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn get16(p: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([p[off], p[off + 1]])
}
/// Offset of a field of az_blob_vsp_request inside the packet.
fn req_field(p: &[u8], field: usize) -> usize {
    usize::from(get16(p, 2)) * 8 + field
}
const VERSION: usize = 0;
const DATA_OFF: usize = 8;
const DATA_LEN: usize = 12;
const DATA_VALID: usize = 16;
const OPERATION: usize = 20;
const REQ_OFF: usize = 24;
const REQ_LEN: usize = 28;
const RESP_OFF: usize = 32;
const RESP_LEN: usize = 36;

/// A valid request of 3 pages (1 data, 1 request, 1 response page).
fn valid_request(g: &mut Guest) -> DriverRequest {
    let data = Buf::new(g, 0, 100);
    let request = Buf::new(g, 0, 16);
    request.write(&g.ram, b"request-16-bytes");
    let response = Buf::new(g, 0, 64);
    response.write(&g.ram, &[0xee; 64]);
    DriverRequest::new(Some(data), 50, request, response)
}

type Mutation = (&'static str, &'static str, fn(&mut Vec<u8>, &Guest));

fn mutations() -> Vec<Mutation> {
    vec![
        ("in-band type", "packet type", |p, _| put16(p, 0, 6)),
        ("completion type", "packet type", |p, _| put16(p, 0, 0xb)),
        ("no completion requested", "flags", |p, _| put16(p, 6, 0)),
        ("unknown flag", "flags", |p, _| put16(p, 6, 3)),
        ("range_count 0", "range_count", |p, _| put32(p, 20, 0)),
        ("range_count 2", "range_count", |p, _| put32(p, 20, 2)),
        ("byte_offset 4096", "byte_offset", |p, _| put32(p, 28, 4096)),
        ("byte_offset needs one more PFN", "PFN count", |p, _| {
            put32(p, 28, 1)
        }),
        ("byte_count needs one PFN fewer", "PFN count", |p, _| {
            put32(p, 24, 2 * 4096)
        }),
        ("payload too long", "payload", |p, _| {
            p.extend_from_slice(&[0; 8]);
            let len8 = get16(p, 4) + 1;
            put16(p, 4, len8);
        }),
        ("payload too short", "payload", |p, _| {
            p.truncate(p.len() - 8);
            let len8 = get16(p, 4) - 1;
            put16(p, 4, len8);
        }),
        ("version 1", "version", |p, _| {
            let o = req_field(p, VERSION);
            put32(p, o, 1)
        }),
        ("register-buffer operation", "operation_type", |p, _| {
            let o = req_field(p, OPERATION);
            put32(p, o, 0x101)
        }),
        ("request_length 0", "request_buffer_length", |p, _| {
            let o = req_field(p, REQ_LEN);
            put32(p, o, 0)
        }),
        ("response_length 0", "response_buffer_length", |p, _| {
            let o = req_field(p, RESP_LEN);
            put32(p, o, 0)
        }),
        ("data_valid > data_length", "data_buffer_valid", |p, _| {
            let o = req_field(p, DATA_VALID);
            put32(p, o, 101)
        }),
        ("data buffer past the range", "data buffer", |p, _| {
            let o = req_field(p, DATA_OFF);
            put32(p, o, 3 * 4096 - 99)
        }),
        ("request buffer past the range", "request buffer", |p, _| {
            let o = req_field(p, REQ_LEN);
            put32(p, o, 2 * 4096 + 1)
        }),
        ("request offset past the range", "request buffer", |p, _| {
            let o = req_field(p, REQ_OFF);
            put32(p, o, 3 * 4096 - 15)
        }),
        (
            "response buffer past the range",
            "response buffer",
            |p, _| {
                let o = req_field(p, RESP_OFF);
                put32(p, o, 3 * 4096 - 63)
            },
        ),
        (
            "response offset+length overflows u32",
            "response buffer",
            |p, _| {
                let o = req_field(p, RESP_OFF);
                put32(p, o, 0xffff_ff00);
                let o = req_field(p, RESP_LEN);
                put32(p, o, 0x200)
            },
        ),
        ("data offset+length overflows u32", "data buffer", |p, _| {
            let o = req_field(p, DATA_OFF);
            put32(p, o, 0xffff_ffff);
            let o = req_field(p, DATA_LEN);
            put32(p, o, 0xffff_ffff);
            let o = req_field(p, DATA_VALID);
            put32(p, o, 1)
        }),
        ("PFN just past guest RAM", "outside guest RAM", |p, g| {
            let pfn = g.ram.size() / 4096;
            p[40..48].copy_from_slice(&pfn.to_le_bytes())
        }),
        ("PFN u64::MAX", "outside guest RAM", |p, _| {
            p[32..40].copy_from_slice(&u64::MAX.to_le_bytes())
        }),
    ]
}

#[test]
fn every_rule_is_enforced_and_the_ring_stays_usable() {
    let mut g = Guest::new(16 << 20);
    let mut ch = channel(&mut g, 31, 31);
    for (i, (name, rule, mutate)) in mutations().into_iter().enumerate() {
        let dr = valid_request(&mut g);
        let trans_id = 100 + i as u64;
        let mut pkt = dr.packet(trans_id);
        mutate(&mut pkt, &g);
        let why = validate(&pkt, &g.ram).expect_err(name);
        assert!(
            why.rule.contains(rule),
            "{name}: rule text '{}' should name '{rule}'",
            why.rule
        );
        let c = ch.round_trip(&pkt);
        assert_eq!(
            c,
            Comp {
                trans_id,
                status: AZ_BLOB_STATUS_INVALID_ARG,
                response_len: 0
            },
            "{name}"
        );
        assert!(
            dr.response.read(&g.ram, 64).iter().all(|b| *b == 0xee),
            "{name}: response buffer written"
        );
        // The channel still serves a valid request.
        let ok = valid_request(&mut g);
        let c = ch.round_trip(&ok.packet(9000 + i as u64));
        assert_eq!(c.status, 0, "{name}: valid request after it");
        assert_eq!(c.trans_id, 9000 + i as u64);
        assert_eq!(&ok.response.read(&g.ram, 16), b"request-16-bytes");
    }
    let n = mutations().len() as u64;
    assert_eq!(
        ch.stats.rejected.load(std::sync::atomic::Ordering::Relaxed),
        n
    );
    assert_eq!(
        ch.stats.served.load(std::sync::atomic::Ordering::Relaxed),
        2 * n
    );
}

#[test]
fn more_than_8192_pages_is_rejected() {
    let mut g = Guest::new(80 << 20);
    let mut ch = channel(&mut g, 31, 31);
    let pfns = g.alloc_contig(8193);
    let req = hv_azure_blob_proto::AzBlobVspRequest {
        operation_type: 0x100,
        request_buffer_offset: 0,
        request_buffer_length: 10,
        response_buffer_offset: 4096,
        response_buffer_length: 10,
        ..Default::default()
    };
    let pkt = gpa_direct_packet(77, 0, 8193 * 4096, &pfns, &req);
    assert!(validate(&pkt, &g.ram).unwrap_err().rule.contains("8192"));
    let c = ch.round_trip(&pkt);
    assert_eq!(c.status, AZ_BLOB_STATUS_INVALID_ARG);
    assert_eq!(c.trans_id, 77);
    // 8192 is still fine.
    let pkt = gpa_direct_packet(78, 0, 8192 * 4096, &pfns[..8192], &req);
    assert_eq!(ch.round_trip(&pkt).status, 0);
}

#[test]
fn nonzero_byte_offset_is_honoured() {
    // The driver sends 0, but a range may start inside its first page.
    let mut g = Guest::new(16 << 20);
    let mut ch = channel(&mut g, 31, 31);
    let pfns = g.alloc_pages(2);
    let base = pfns[0] * 4096 + 100;
    g.ram.write(base, b"hello").unwrap();
    let req = hv_azure_blob_proto::AzBlobVspRequest {
        operation_type: 0x100,
        request_buffer_offset: 0,
        request_buffer_length: 5,
        response_buffer_offset: 4000,
        response_buffer_length: 5,
        ..Default::default()
    };
    let pkt = gpa_direct_packet(1, 100, 4096, &pfns, &req);
    assert_eq!(ch.round_trip(&pkt).status, 0);
    let mut out = [0u8; 5];
    // Span byte 4000 = page offset 4100 = second page, byte 4.
    g.ram.read(pfns[1] * 4096 + 4, &mut out).unwrap();
    assert_eq!(&out, b"hello");
}

fn broken(ch: &mut Chan) {
    match ch.server.drain() {
        Err(ServeError::Ring(e)) => eprintln!("broken as expected: {e}"),
        other => panic!("expected a broken ring, got {other:?}"),
    }
}

#[test]
fn packet_longer_than_the_ring_content_breaks_the_channel() {
    let mut g = Guest::new(16 << 20);
    let mut ch = channel(&mut g, 31, 31);
    let dr = valid_request(&mut g);
    let mut pkt = dr.packet(1);
    let len8 = get16(&pkt, 4);
    put16(&mut pkt, 4, len8 + 100);
    ch.send.write_packet(&pkt).unwrap();
    broken(&mut ch);
    assert!(ch.recv.read_packet().is_none(), "no completion for garbage");
}

#[test]
fn offset8_below_2_or_past_len8_breaks_the_channel() {
    for off8 in [0u16, 1, 500] {
        let mut g = Guest::new(16 << 20);
        let mut ch = channel(&mut g, 31, 31);
        let dr = valid_request(&mut g);
        let mut pkt = dr.packet(1);
        put16(&mut pkt, 2, off8);
        ch.send.write_packet(&pkt).unwrap();
        broken(&mut ch);
    }
}

#[test]
fn bad_write_index_breaks_the_channel() {
    for w in [5u32, 31 * 4096, u32::MAX] {
        let mut g = Guest::new(16 << 20);
        let mut ch = channel(&mut g, 31, 31);
        ch.send.store(RING_WRITE_INDEX, w);
        broken(&mut ch);
    }
}

#[test]
fn ring_pages_outside_guest_ram_are_refused() {
    use azure_blob_vsp::ring::{IncomingRing, OutgoingRing};
    let g = Guest::new(1 << 20);
    assert!(IncomingRing::new(g.ram.clone(), &[1, 256]).is_err());
    assert!(OutgoingRing::new(g.ram.clone(), &[u64::MAX, 2]).is_err());
    assert!(
        IncomingRing::new(g.ram.clone(), &[1]).is_err(),
        "no data page"
    );
    assert!(IncomingRing::new(g.ram.clone(), &[]).is_err());
}
