// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Issue 3's tests that need no fault injection: credentials, concurrency
//! with every byte checked, pinned-page accounting, and an ioctl fuzzer.
#![allow(unsafe_code)] // the fuzzer hands the kernel arbitrary structs

use crate::tests::{dev, expect_errno, pattern, sample_struct, PAGE};
use crate::Outcome;
use azure_blob::Exchange;
use hv_azure_blob_proto::{
    AzBlobRequestSync, AZ_BLOB_MAX_PAGES, IOCTL_AZ_BLOB_DRIVER_USER_REQUEST,
    IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY,
};
use rustix::io::Errno;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A thread that changed its credentials after the file was opened gets
/// EACCES (the 2021 rule); the opener's thread still works.
pub(crate) fn changed_credentials_are_eacces() -> Outcome {
    let d = Arc::new(dev()?);
    let d2 = d.clone();
    let got = std::thread::spawn(move || {
        // Per-thread: the raw syscall changes only this thread's credentials.
        rustix::thread::set_thread_res_uid(
            rustix::fs::Uid::from_raw(1000),
            rustix::fs::Uid::from_raw(1000),
            rustix::fs::Uid::from_raw(1000),
        )
        .map_err(|e| format!("setresuid: {e}"))?;
        let mut mem = vec![0u8; 3 * PAGE];
        let mut r = sample_struct(&mut mem);
        // SAFETY: every buffer lies inside `mem`.
        Ok::<_, String>(unsafe { d2.raw_request(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, &raw mut r) })
    })
    .join()
    .map_err(|_| "thread panicked".to_string())??;
    expect_errno("request with changed credentials", got, Errno::ACCESS)?;
    let mut mem = vec![0u8; 3 * PAGE];
    let mut r = sample_struct(&mut mem);
    // SAFETY: every buffer lies inside `mem`.
    unsafe { d.raw_request(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, &raw mut r) }
        .map_err(|e| format!("the opener's own request: {e}"))
}

fn vmstat(key: &str) -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/vmstat").map_err(|e| format!("/proc/vmstat: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| format!("no {key} in /proc/vmstat"))
}

/// Pins held in the whole system (acquired - released), with the per-CPU
/// deltas folded first (vm.stat_refresh): an idle CPU may not fold them for
/// a long time.
pub(crate) fn pins_held() -> Result<(i64, u64), String> {
    std::fs::write("/proc/sys/vm/stat_refresh", "1")
        .map_err(|e| format!("/proc/sys/vm/stat_refresh: {e}"))?;
    let acquired = vmstat("nr_foll_pin_acquired ")?;
    let released = vmstat("nr_foll_pin_released ")?;
    Ok((acquired as i64 - released as i64, acquired))
}

/// Pins held before the first test (the kernel's own), set by `main`.
pub(crate) static PINS_AT_START: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(0);

/// Every pin the tests made the driver take has been released: the system's
/// count of held pins is back where it was before the first test.
pub(crate) fn pins_balanced() -> Outcome {
    let base = PINS_AT_START.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (held, acquired) = pins_held()?;
        if held == base {
            println!(
                "# pins balanced: {acquired} acquired in all, {held} held as before the tests"
            );
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{held} pins held, {base} before the tests ({acquired} acquired in all)"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// `threads` threads each send `per_thread` echo requests of random sizes
/// (most small, some up to the 8192-page maximum) and check every byte.
pub(crate) fn concurrent(threads: usize, per_thread: usize) -> Outcome {
    let bytes = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let bytes = bytes.clone();
            std::thread::spawn(move || -> Outcome {
                let d = dev()?;
                let mut rng = fastrand::Rng::with_seed(0x5eed_0000 + t as u64);
                // Two threads may use the full page budget; the others stay
                // small, so the guest's memory is not the limit.
                let max_pages = if t < 2 {
                    AZ_BLOB_MAX_PAGES as usize - 2
                } else {
                    256
                };
                let mut data = vec![0u8; max_pages * PAGE + PAGE];
                let mut response = vec![0u8; 2 * PAGE];
                for i in 0..per_thread {
                    let data_len = match rng.u32(0..100) {
                        0..=59 => rng.usize(0..=PAGE),
                        60..=94 => rng.usize(0..=16 * PAGE),
                        _ => rng.usize(0..=max_pages * PAGE),
                    };
                    let data_valid = rng.usize(0..=data_len);
                    let off = rng.usize(0..PAGE);
                    let off = if off + data_len > data.len() { 0 } else { off };
                    let req_len = rng.usize(1..=PAGE);
                    let request = pattern(req_len, (t * 31 + i) as u8);
                    let input = pattern(data_valid, (i * 7 + t) as u8);
                    let buf = &mut data[off..off + data_len];
                    buf[..data_valid].copy_from_slice(&input);
                    let reply = d
                        .request(&mut Exchange {
                            guid: [t as u8; 16],
                            timeout_ms: 0,
                            request: &request,
                            response: &mut response[..req_len],
                            data: buf,
                            data_valid,
                        })
                        .map_err(|e| format!("thread {t} request {i}: {e}"))?;
                    if reply.status != 0 || reply.response_len as usize != req_len {
                        return Err(format!(
                            "thread {t} request {i}: status {:#x} len {}",
                            reply.status, reply.response_len
                        ));
                    }
                    if response[..req_len] != request[..] {
                        return Err(format!("thread {t} request {i}: response differs"));
                    }
                    let buf = &data[off..off + data_len];
                    if let Some(k) = buf.iter().enumerate().position(|(k, &b)| {
                        b != if k < data_valid {
                            input[k] ^ 0x5A
                        } else {
                            (k as u8) ^ 0xA5
                        }
                    }) {
                        return Err(format!(
                            "thread {t} request {i}: data byte {k} of {data_len} wrong"
                        ));
                    }
                    bytes.fetch_add((data_len + 2 * req_len) as u64, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let mut first_error = None;
    for h in handles {
        let r = h
            .join()
            .map_err(|_| "a thread panicked".to_string())
            .and_then(|r| r);
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    println!(
        "# {threads} threads x {per_thread} requests, {} MiB moved and checked",
        bytes.load(Ordering::Relaxed) >> 20
    );
    first_error.map_or(Ok(()), Err)
}

/// Random structs (bad lengths, unmapped, read-only, overlapping, misaligned,
/// huge and zero-length buffers, bad ioctl numbers): each gets an answer or
/// a clean errno, and the device still works afterwards.
pub(crate) fn fuzz(iterations: usize) -> Outcome {
    let d = dev()?;
    let mut rng = fastrand::Rng::with_seed(0xf022);
    let mut rw = vec![0u8; 64 * PAGE];
    // A read-only mapping: the host may not write into it.
    // SAFETY: a fresh anonymous mapping, not aliased.
    let ro = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            16 * PAGE,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE,
        )
    }
    .map_err(|e| format!("mmap: {e}"))? as u64;
    let rw_base = rw.as_mut_ptr() as u64;
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for _ in 0..iterations {
        let addr = |rng: &mut fastrand::Rng| -> u64 {
            match rng.u32(0..10) {
                0 => 0,
                1 => rng.u64(1..PAGE as u64),
                2 => ro + rng.u64(0..16 * PAGE as u64),
                3 => 0xffff_8880_0000_0000 + rng.u64(0..1 << 30),
                4 => rng.u64(..),
                _ => rw_base + rng.u64(0..32 * PAGE as u64),
            }
        };
        let len = |rng: &mut fastrand::Rng| -> u32 {
            match rng.u32(0..8) {
                0 => 0,
                1 => rng.u32(..),
                2 => AZ_BLOB_MAX_PAGES * PAGE as u32 + rng.u32(0..2),
                3 => rng.u32(1..16),
                _ => rng.u32(1..(16 * PAGE) as u32),
            }
        };
        let mut r = AzBlobRequestSync {
            guid: [rng.u8(..); 16],
            timeout: rng.u32(..),
            request_len: len(&mut rng),
            response_len: len(&mut rng),
            data_len: len(&mut rng),
            data_valid: 0,
            reserved: rng.u32(..),
            request_buffer: addr(&mut rng),
            response_buffer: addr(&mut rng),
            data_buffer: addr(&mut rng),
            response: Default::default(),
        };
        r.data_valid = match rng.u32(0..3) {
            0 => rng.u32(..),
            _ => rng.u32(0..=r.data_len),
        };
        let op = match rng.u32(0..20) {
            0 => rng.u32(..),
            1 => IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY,
            2 => IOCTL_AZ_BLOB_DRIVER_USER_REQUEST ^ (1 << rng.u32(0..32)),
            _ => IOCTL_AZ_BLOB_DRIVER_USER_REQUEST,
        };
        // SAFETY: every address is unmapped, read-only, or inside `rw`, which
        // nothing else uses; the kernel either uses it or fails cleanly.
        let got = unsafe { d.raw_request(op, &raw mut r) };
        let key = match got {
            Ok(()) => format!("ok(status {:#x})", r.response.status),
            Err(e) => match e {
                Errno::INVAL | Errno::FAULT | Errno::NOTTY | Errno::NOMEM => e.to_string(),
                other => return Err(format!("unexpected errno {other} for {r:?} op {op:#x}")),
            },
        };
        *counts.entry(key).or_default() += 1;
    }
    println!("# fuzz: {iterations} structs: {counts:?}");
    crate::tests::round_trip(100, 100, PAGE, 10, 0)
}

/// debugfs shows the device's counters, and no request is pending when
/// none is in flight.
pub(crate) fn debugfs_counters() -> Outcome {
    let dir = crate::faults::debugfs_dir()?;
    let stats = std::fs::read_to_string(dir.join("stats")).map_err(|e| format!("stats: {e}"))?;
    let get = |key: &str| -> Result<u64, String> {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .ok_or_else(|| format!("no '{key}' in stats:\n{stats}"))
    };
    let (requests, completed) = (get("requests:")?, get("completed:")?);
    if requests == 0
        || completed != requests
        || get("errors_einval:")? == 0
        || get("errors_efault:")? == 0
    {
        return Err(format!("unexpected counters:\n{stats}"));
    }
    if !stats.contains("latency_us:\n  < ") {
        return Err(format!("no latency histogram:\n{stats}"));
    }
    let pending =
        std::fs::read_to_string(dir.join("pending")).map_err(|e| format!("pending: {e}"))?;
    if !pending.is_empty() {
        return Err(format!(
            "requests pending while none is in flight:\n{pending}"
        ));
    }
    println!("# debugfs: {requests} requests, {completed} completed");
    Ok(())
}
