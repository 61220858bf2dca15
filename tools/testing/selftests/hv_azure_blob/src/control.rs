// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The host simulator's control socket, reached through a serial port that
//! QEMU connects to it: one command line out, one answer line back.

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::termios::{self, OptionalActions};
use std::time::{Duration, Instant};

/// A line-oriented connection to the host simulator.
pub(crate) struct Control {
    fd: OwnedFd,
}

impl Control {
    /// Opens the serial port in raw mode.
    pub(crate) fn open(path: &str) -> Result<Self, String> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("open {path}: {e}"))?;
        let mut t = termios::tcgetattr(&fd).map_err(|e| format!("tcgetattr {path}: {e}"))?;
        t.make_raw();
        termios::tcsetattr(&fd, OptionalActions::Now, &t)
            .map_err(|e| format!("tcsetattr {path}: {e}"))?;
        termios::tcflush(&fd, termios::QueueSelector::IOFlush)
            .map_err(|e| format!("tcflush: {e}"))?;
        Ok(Self { fd })
    }

    /// Sends `cmd` and returns the host's answer line; an `err ...` answer
    /// or no answer within 10 s is an error.
    pub(crate) fn command(&self, cmd: &str) -> Result<String, String> {
        let line = format!("{cmd}\n");
        let mut sent = 0;
        while sent < line.len() {
            sent += rustix::io::write(&self.fd, &line.as_bytes()[sent..])
                .map_err(|e| format!("write: {e}"))?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut answer = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer to '{cmd}' from the host simulator"));
            }
            let mut pfd = [rustix::event::PollFd::new(
                &self.fd,
                rustix::event::PollFlags::IN,
            )];
            let ts = rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: 0,
            };
            rustix::event::poll(&mut pfd, Some(&ts)).map_err(|e| format!("poll: {e}"))?;
            let mut buf = [0u8; 256];
            let n = match rustix::io::read(&self.fd, &mut buf) {
                Ok(n) => n,
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => 0,
                Err(e) => return Err(format!("read: {e}")),
            };
            for &b in &buf[..n] {
                if b == b'\n' {
                    let text = String::from_utf8_lossy(&answer).trim().to_string();
                    if text.is_empty() {
                        continue;
                    }
                    return if text.starts_with("ok") {
                        Ok(text)
                    } else {
                        Err(format!("'{cmd}': {text}"))
                    };
                }
                answer.push(b);
            }
        }
    }
}
