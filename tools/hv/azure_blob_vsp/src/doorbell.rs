// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Doorbells: the eventfds of the ivshmem-doorbell device, one per vector and
//! direction. QEMU writes the host's eventfd of vector v when the guest rings
//! the host; the host writes the guest's eventfd of vector v to raise MSI-X
//! vector v in the guest.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};

/// One eventfd.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// Creates a non-blocking eventfd.
    pub fn new() -> std::io::Result<Self> {
        let fd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        Ok(Self { fd })
    }

    /// Wraps an existing eventfd.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }

    /// Rings: adds 1 to the counter.
    pub fn ring(&self) {
        // EAGAIN only when the counter would overflow, which cannot happen
        // with +1 steps: someone else then already has a wakeup pending.
        if let Err(e) = rustix::io::write(&self.fd, &1u64.to_ne_bytes()) {
            if e != rustix::io::Errno::AGAIN {
                tracing::warn!("doorbell write failed: {e}");
            }
        }
    }

    /// Waits up to `timeout` for a ring; consumes it. True if it rang.
    pub fn wait(&self, timeout: Duration) -> bool {
        let ts = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => self.take(),
            _ => false,
        }
    }

    /// Consumes a pending ring without waiting. True if it had rung.
    pub fn take(&self) -> bool {
        let mut buf = [0u8; 8];
        matches!(rustix::io::read(&self.fd, &mut buf), Ok(8))
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_counted_and_consumed() {
        let d = Doorbell::new().unwrap();
        assert!(!d.wait(Duration::from_millis(1)));
        d.ring();
        d.ring();
        assert!(d.wait(Duration::from_millis(100)));
        assert!(!d.take());
    }
}
