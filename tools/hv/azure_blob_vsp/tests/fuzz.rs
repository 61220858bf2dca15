// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Hostile guest input: random mutations of valid packets and random ring
//! contents. The VSP must never panic; every packet either completes (with
//! INVALID_ARG if it breaks a rule) or breaks the channel.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use azure_blob_vsp::vsp::{serve_packet, validate, EchoHandler, ServeError};
use hv_azure_blob_proto::{AZ_BLOB_STATUS_INVALID_ARG, RING_WRITE_INDEX};

/// xorshift64*: deterministic, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mutate(rng: &mut Rng, pkt: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !pkt.is_empty() => {
                let i = rng.below(pkt.len() as u64) as usize;
                pkt[i] = rng.next() as u8;
            }
            1 if !pkt.is_empty() => {
                // A field-sized overwrite with an edge value.
                let i = rng.below(pkt.len() as u64) as usize;
                let v = [0u32, 1, 0xffff_ffff, 0x8000_0000, 4096, 8192][rng.below(6) as usize];
                for (k, b) in v.to_le_bytes().iter().enumerate() {
                    if let Some(x) = pkt.get_mut(i + k) {
                        *x = *b;
                    }
                }
            }
            2 => pkt.truncate(rng.below(pkt.len() as u64 + 1) as usize),
            3 => pkt.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            // Keep len8 consistent with the length, as a ring would.
            _ => {
                pkt.resize(pkt.len().div_ceil(8) * 8, 0);
                if pkt.len() >= 8 {
                    let len8 = (pkt.len() / 8) as u16;
                    pkt[4..6].copy_from_slice(&len8.to_le_bytes());
                }
            }
        }
    }
}

#[test]
fn mutated_packets_never_panic_the_validator_or_the_server() {
    let mut g = Guest::new(32 << 20);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let base: Vec<DriverRequest> = (0..8)
        .map(|i| {
            let data = (i % 2 == 0).then(|| Buf::new(&mut g, 7 * i, 5000));
            let request = Buf::new(&mut g, 100, 300);
            let response = Buf::new(&mut g, 0, 400);
            DriverRequest::new(data, 10, request, response)
        })
        .collect();
    let mut accepted = 0;
    let mut rejected = 0;
    for n in 0..20_000u64 {
        let mut pkt = base[(n % 8) as usize].packet(n);
        mutate(&mut rng, &mut pkt);
        match validate(&pkt, &g.ram) {
            Ok(_) => accepted += 1,
            Err(_) => rejected += 1,
        }
        let (c, rule) = serve_packet(&pkt, &g.ram, &mut EchoHandler);
        assert_eq!(rule.is_some(), c.status == AZ_BLOB_STATUS_INVALID_ARG);
    }
    // Both outcomes must have been exercised.
    assert!(
        accepted > 100 && rejected > 10_000,
        "{accepted} / {rejected}"
    );
}

#[test]
fn random_ring_contents_never_panic_the_channel() {
    let mut rng = Rng(0xfeed_beef_1357_9bdf);
    let mut broken = 0;
    let mut completed = 0;
    for _ in 0..300 {
        let mut g = Guest::new(4 << 20);
        // The receive ring holds more completions (8 pages / 40 bytes)
        // than the send ring can hold packets (8 KiB / 24 bytes): never full.
        let mut ch = channel(&mut g, 2, 8);
        // Random bytes in the send ring's data area, some shaped like
        // descriptors, and a random (sometimes invalid) write index.
        for p in &ch.send.pfns[1..] {
            let bytes: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
            g.ram.write(p * 4096, &bytes).unwrap();
        }
        if rng.below(2) == 0 {
            // A plausible descriptor at 0: type 9, offset8/len8 small.
            let d = [9u8, 0, rng.below(8) as u8, 0, rng.below(16) as u8, 0, 1, 0];
            g.ram.write(ch.send.pfns[1] * 4096, &d).unwrap();
        }
        let w = match rng.below(3) {
            0 => rng.next() as u32,
            _ => (rng.below(8192) as u32) & !7,
        };
        ch.send.store(RING_WRITE_INDEX, w);
        match ch.server.drain() {
            Ok(n) => completed += n,
            Err(ServeError::Ring(_)) => broken += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(broken > 100, "{broken} broken, {completed} completed");
}
