// SPDX-License-Identifier: GPL-2.0
//! What the driver shows in debugfs: counters, a latency histogram and the
//! requests the host owns right now.
//!
//! `<debugfs>/hv_azure_blob-<instance>/stats` and `.../pending`, one
//! directory per device (several devices cannot collide on a fixed name).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::time::{Delta, Instant, Monotonic};

/// Latency buckets: bucket `i` counts requests that took < 2^i µs.
const BUCKETS: usize = 24;

/// Why a request did not produce an answer for its caller.
#[derive(Clone, Copy)]
pub(crate) enum Failure {
    Invalid,
    Fault,
    NoDevice,
    Interrupted,
    HostMisbehaved,
    Other,
}

/// Counters, updated without locks.
#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    completed: AtomicU64,
    host_errors: AtomicU64,
    bytes_to_host: AtomicU64,
    bytes_from_host: AtomicU64,
    invalid: AtomicU64,
    fault: AtomicU64,
    no_device: AtomicU64,
    interrupted: AtomicU64,
    host_misbehaved: AtomicU64,
    other: AtomicU64,
    /// Completions dropped: malformed, unknown or duplicate.
    pub(crate) dropped: AtomicU64,
    /// Requests whose caller was killed while the host owned them.
    pub(crate) abandoned: AtomicU64,
    latency_us: [AtomicU64; BUCKETS],
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn started(&self, bytes_out: u64) {
        bump(&self.requests, 1);
        bump(&self.bytes_to_host, bytes_out);
    }

    pub(crate) fn answered(&self, status: u32, bytes_in: u64, took: Delta) {
        bump(&self.completed, 1);
        if status != 0 {
            bump(&self.host_errors, 1);
        }
        bump(&self.bytes_from_host, bytes_in);
        let us = took.as_micros_ceil().max(0) as u64;
        let bucket = (64 - us.leading_zeros() as usize).min(BUCKETS - 1);
        bump(&self.latency_us[bucket], 1);
    }

    pub(crate) fn failed(&self, why: Failure) {
        bump(
            match why {
                Failure::Invalid => &self.invalid,
                Failure::Fault => &self.fault,
                Failure::NoDevice => &self.no_device,
                Failure::Interrupted => &self.interrupted,
                Failure::HostMisbehaved => &self.host_misbehaved,
                Failure::Other => &self.other,
            },
            1,
        );
    }

    /// The `stats` file.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        writeln!(f, "requests: {}", get(&self.requests))?;
        writeln!(f, "completed: {}", get(&self.completed))?;
        writeln!(f, "host_errors: {}", get(&self.host_errors))?;
        writeln!(f, "bytes_to_host: {}", get(&self.bytes_to_host))?;
        writeln!(f, "bytes_from_host: {}", get(&self.bytes_from_host))?;
        writeln!(f, "errors_einval: {}", get(&self.invalid))?;
        writeln!(f, "errors_efault: {}", get(&self.fault))?;
        writeln!(f, "errors_enodev: {}", get(&self.no_device))?;
        writeln!(f, "errors_interrupted: {}", get(&self.interrupted))?;
        writeln!(f, "errors_host_misbehaved: {}", get(&self.host_misbehaved))?;
        writeln!(f, "errors_other: {}", get(&self.other))?;
        writeln!(f, "dropped_completions: {}", get(&self.dropped))?;
        writeln!(f, "abandoned_requests: {}", get(&self.abandoned))?;
        writeln!(f, "latency_us:")?;
        for (i, b) in self.latency_us.iter().enumerate() {
            let n = get(b);
            if n != 0 {
                writeln!(f, "  < {}: {}", 1u64 << i, n)?;
            }
        }
        Ok(())
    }
}

/// A request the host owns, as the `pending` file lists it.
pub(crate) struct PendingInfo {
    pub(crate) seq: u64,
    pub(crate) guid: [u8; 16],
    pub(crate) request_len: u32,
    pub(crate) response_len: u32,
    pub(crate) data_len: u32,
    pub(crate) data_valid: u32,
    pub(crate) pid: i32,
    pub(crate) start: Instant<Monotonic>,
    pub(crate) abandoned: bool,
}

impl PendingInfo {
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.guid;
        writeln!(
            f,
            "{} guid {:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x} \
             request_len {} response_len {} data_len {} data_valid {} pid {} age_ms {}{}",
            self.seq, g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13],
            g[14], g[15], self.request_len, self.response_len, self.data_len, self.data_valid, self.pid,
            self.start.elapsed().as_millis(),
            if self.abandoned { " abandoned" } else { "" }
        )
    }
}
