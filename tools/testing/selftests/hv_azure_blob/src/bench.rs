// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The user-space half of the driver-overhead benchmark: the same exchange
//! as the kernel baseline (azure_blob_bench.ko), through /dev/azure_blob.
//! Usage: azure_blob_bench [ITERATIONS]

use azure_blob::{Device, Exchange};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let d = match Device::open() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("BENCH driver: {e}");
            std::process::exit(1)
        }
    };
    let request = vec![0x42u8; 4096];
    let mut response = vec![0u8; 4096];
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let r = d.request(&mut Exchange {
            guid: [0; 16],
            timeout_ms: 30_000,
            request: &request,
            response: &mut response,
            data: &mut [],
            data_valid: 0,
        });
        match r {
            Ok(r) if r.status == 0 && r.response_len == 4096 => lat.push(t.elapsed()),
            other => {
                eprintln!("BENCH driver: round trip {i} failed: {other:?}");
                std::process::exit(1)
            }
        }
    }
    let total = start.elapsed();
    lat.sort();
    println!(
        "BENCH driver: {n} round trips of 4 KiB, {} per second, p50 {} us, p99 {} us",
        (n as f64 / total.as_secs_f64()) as u64,
        lat[n / 2].as_micros(),
        lat[n * 99 / 100].as_micros()
    );
}
