//! io_uring probe for the engine choice: 4 KiB random reads or writes at a given queue depth
//! from one thread, on a raw file region.
//!
//! This is the one module of the crate that needs `unsafe`: submitting an io_uring entry hands
//! the kernel a raw buffer pointer, which the io-uring crate exposes as an unsafe `push`. The
//! Blobstore itself does not use io_uring (see Documentation/tools/blobstore.rst for the
//! measurement that decided it).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Run random 4 KiB I/O in `[start, start + len)` at depth `qd` for `dur`; returns IOPS.
pub(crate) fn random_io(
    file: &File,
    start: u64,
    len: u64,
    qd: usize,
    dur: Duration,
    write: bool,
) -> io::Result<f64> {
    let mut ring = IoUring::new(qd as u32)?;
    let fd = types::Fd(file.as_raw_fd());
    let mut bufs: Vec<Vec<u8>> = (0..qd).map(|i| vec![i as u8 | 1; 4096]).collect();
    let mut rng = StdRng::seed_from_u64(7);
    let blocks = len / 4096;
    let mut in_flight = 0usize;
    let mut done = 0u64;
    let mut failed: Option<io::Error> = None;
    let t0 = Instant::now();
    let submit = |ring: &mut IoUring, bufs: &mut [Vec<u8>], i: usize, rng: &mut StdRng| {
        let off = start + rng.gen_range(0..blocks) * 4096;
        let ptr = bufs[i].as_mut_ptr();
        let entry = if write {
            opcode::Write::new(fd, ptr, 4096).offset(off).build()
        } else {
            opcode::Read::new(fd, ptr, 4096).offset(off).build()
        }
        .user_data(i as u64);
        // SAFETY: `bufs[i]` is a live 4096-byte allocation that is neither moved, resized nor
        // touched until the completion carrying user_data `i` is reaped below; every
        // submitted entry is reaped before `bufs` is dropped (the drain loop at the end).
        unsafe { ring.submission().push(&entry) }.is_ok()
    };
    for i in 0..qd {
        if submit(&mut ring, &mut bufs, i, &mut rng) {
            in_flight += 1;
        }
    }
    while in_flight > 0 {
        ring.submit_and_wait(1)?;
        let finished: Vec<(usize, i32)> = ring
            .completion()
            .map(|c| (c.user_data() as usize, c.result()))
            .collect();
        for (i, res) in finished {
            in_flight -= 1;
            if res != 4096 {
                failed.get_or_insert(io::Error::from_raw_os_error(-res.min(-1)));
                continue;
            }
            done += 1;
            if failed.is_none() && t0.elapsed() < dur && submit(&mut ring, &mut bufs, i, &mut rng) {
                in_flight += 1;
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(done as f64 / t0.elapsed().as_secs_f64())
}
