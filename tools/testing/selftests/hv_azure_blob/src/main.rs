// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Guest-side tests of hv_azure_blob, printed as KTAP. Run inside the test
//! guest, with the host simulator's echo handler behind the device:
//! response = the request bytes; data[i] = in[i] ^ 0x5A below data_valid and
//! (i as u8) ^ 0xA5 from there on.
//!
//! Usage: azure_blob_selftest [--control /dev/ttyS1]

mod control;
mod faults;
mod stress;
mod tests;

use std::time::Instant;

/// One test's outcome: `Ok` or a reason.
pub(crate) type Outcome = Result<(), String>;

fn main() {
    let mut control = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--control" => control = args.next(),
            "--child-pending" => {
                let n = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                faults::child_pending(n)
            }
            other => {
                eprintln!("usage: azure_blob_selftest [--control TTY] (unknown argument {other})");
                std::process::exit(2);
            }
        }
    }
    match stress::pins_held() {
        Ok((held, _)) => {
            println!("# pins held before the tests: {held}");
            stress::PINS_AT_START.store(held, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => println!("# cannot read the pin counters: {e}"),
    }
    let list = tests::all(control);
    println!("KTAP version 1");
    println!("1..{}", list.len());
    let (mut passed, mut failed) = (0, 0);
    for (i, (name, test)) in list.into_iter().enumerate() {
        let t = Instant::now();
        match test() {
            Ok(()) => {
                passed += 1;
                println!("ok {} {} # {} ms", i + 1, name, t.elapsed().as_millis());
            }
            Err(why) => {
                failed += 1;
                println!("# {name}: {why}");
                println!("not ok {} {}", i + 1, name);
            }
        }
    }
    println!("# azure_blob_selftest: {passed} passed, {failed} failed");
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
