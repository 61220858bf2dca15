// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The Azure Blob VSP simulator: the host side of the simulated VMBus.
//!
//! Layers, bottom up: [`guest_ram`] (checked access to guest memory by GPA),
//! [`ring`] (VMBus rings, host view), [`vsp`] (request validation, the
//! request handler and the per-channel server), [`control`] (the simulated
//! VMBus control page), [`ivshmem`] (the ivshmem server protocol spoken to
//! QEMU), [`host`] (offers, opens, closes, rescinds and the control socket),
//! [`journal`] (the requests taken and not answered, kept for a VSP that
//! restarts) and [`broker`] (the process that keeps QEMU's ivshmem fds
//! across VSP restarts, and its protocol).

// Tests may unwrap: a failed unwrap is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod blob;
pub mod broker;
pub mod control;
pub mod doorbell;
pub mod fault;
pub mod guest_ram;
pub mod host;
pub mod ivshmem;
pub mod journal;
pub mod ring;
pub mod vsp;

/// Logs to standard error, coloured on a terminal, at `info` unless
/// `RUST_LOG` says otherwise: the setup both binaries use.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}
