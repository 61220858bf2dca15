// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The host-side request timeout: a handler slower than the request's
//! timeout_ms gets the request completed with AZ_BLOB_STATUS_TIMEOUT and
//! nothing written; its late answer is dropped, never written into pages the
//! guest has taken back.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::time::{Duration, Instant};

use azure_blob_vsp::vsp::{Reply, Request, RequestHandler};
use hv_azure_blob_proto::AZ_BLOB_STATUS_TIMEOUT;

/// Echoes the request; sleeps 1.5 s first when it starts with "slow".
struct Slow;
impl RequestHandler for Slow {
    fn handle(&mut self, req: &Request<'_>) -> Reply {
        if req.request.starts_with(b"slow") {
            std::thread::sleep(Duration::from_millis(1500));
        }
        Reply {
            status: 0,
            response: req.request.to_vec(),
            response_len: req.request.len() as u32,
            data: vec![0x77; req.data_capacity as usize],
        }
    }
}

fn request(g: &mut Guest, body: &[u8], timeout_ms: u32) -> DriverRequest {
    let request = Buf::new(g, 0, body.len() as u32);
    request.write(&g.ram, body);
    let response = Buf::new(g, 0, 64);
    response.write(&g.ram, &[0xee; 64]);
    let data = Buf::new(g, 0, 16);
    data.write(&g.ram, &[0x11; 16]);
    let mut dr = DriverRequest::new(Some(data), 0, request, response);
    dr.vsp.timeout_ms = timeout_ms;
    dr
}

#[test]
fn slow_handler_times_out_and_its_late_answer_is_dropped() {
    let mut g = Guest::new(16 << 20);
    let mut ch = channel_with(&mut g, 31, 31, Box::new(Slow));
    let slow = request(&mut g, b"slow request", 100);
    let t = Instant::now();
    let c = ch.round_trip(&slow.packet(1));
    let took = t.elapsed();
    assert_eq!(
        c,
        Comp {
            trans_id: 1,
            status: AZ_BLOB_STATUS_TIMEOUT,
            response_len: 0
        }
    );
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_millis(1200),
        "completed after the timeout, before the handler finished: {took:?}"
    );
    // The next request is queued behind the slow one; the slow one's late
    // answer must not be taken for it.
    let fast = request(&mut g, b"fast", 5000);
    let c = ch.round_trip(&fast.packet(2));
    assert_eq!(
        c,
        Comp {
            trans_id: 2,
            status: 0,
            response_len: 4
        }
    );
    assert_eq!(fast.response.read(&g.ram, 4), b"fast");
    // Nothing was ever written for the timed-out request.
    std::thread::sleep(Duration::from_millis(100));
    assert!(slow.response.read(&g.ram, 64).iter().all(|b| *b == 0xee));
    assert!(slow
        .data
        .as_ref()
        .unwrap()
        .read(&g.ram, 16)
        .iter()
        .all(|b| *b == 0x11));
}

#[test]
fn timeout_zero_waits_for_the_handler() {
    let mut g = Guest::new(16 << 20);
    let mut ch = channel_with(&mut g, 31, 31, Box::new(Slow));
    let slow = request(&mut g, b"slow but patient", 0);
    let c = ch.round_trip(&slow.packet(9));
    assert_eq!(c.status, 0);
    assert_eq!(c.response_len, 16);
    assert_eq!(slow.response.read(&g.ram, 16), b"slow but patient");
    assert!(slow
        .data
        .as_ref()
        .unwrap()
        .read(&g.ram, 16)
        .iter()
        .all(|b| *b == 0x77));
}

/// A handler that panics on "boom".
struct Panicky;
impl RequestHandler for Panicky {
    fn handle(&mut self, req: &Request<'_>) -> Reply {
        assert!(!req.request.starts_with(b"boom"), "handler bug");
        Reply::default()
    }
}

#[test]
fn a_panicking_handler_fails_requests_without_taking_the_channel_down() {
    let mut g = Guest::new(16 << 20);
    let mut ch = channel_with(&mut g, 31, 31, Box::new(Panicky));
    let boom = request(&mut g, b"boom", 0);
    let c = ch.round_trip(&boom.packet(1));
    assert_eq!(c.status, AZ_BLOB_STATUS_TIMEOUT);
    assert!(boom.response.read(&g.ram, 64).iter().all(|b| *b == 0xee));
    // Later requests are still completed (the host gave up on them too).
    let next = request(&mut g, b"next", 0);
    let c = ch.round_trip(&next.packet(2));
    assert_eq!((c.trans_id, c.status), (2, AZ_BLOB_STATUS_TIMEOUT));
}
