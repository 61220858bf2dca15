// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The ivshmem server protocol, spoken to QEMU's `ivshmem-doorbell` device.
//!
//! On a client's connection the server sends 8-byte little-endian integers,
//! some with one file descriptor attached (SCM_RIGHTS):
//! the protocol version (0); the client's own id; -1 with the shared memory
//! fd; then, for every other peer, the peer's id once per vector with that
//! vector's eventfd; finally the client's own id once per vector with the
//! eventfds the client listens on. Here the host is peer 0 and QEMU (the
//! guest) is client 1.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::control::SHM_SIZE;
use crate::doorbell::Doorbell;

/// ivshmem protocol version.
pub const IVSHMEM_PROTOCOL_VERSION: i64 = 0;
/// The host's peer id.
pub const HOST_PEER_ID: i64 = 0;
/// The id given to QEMU (the guest).
pub const GUEST_PEER_ID: i64 = 1;

/// The resources shared with QEMU: the shared memory and both sets of doorbells.
#[derive(Debug)]
pub struct IvshmemResources {
    /// The shared memory (memfd, [`SHM_SIZE`] bytes).
    pub shm: OwnedFd,
    /// Rung by the guest: one per vector (QEMU writes them).
    pub to_host: Vec<Arc<Doorbell>>,
    /// Rung by the host: one per vector (raises guest MSI-X vector v).
    pub to_guest: Vec<Arc<Doorbell>>,
}

impl IvshmemResources {
    /// Creates the memfd and `vectors` eventfds in each direction.
    pub fn new(vectors: usize) -> std::io::Result<Self> {
        let shm = memfd_create("vmbus-sim-shm", MemfdFlags::CLOEXEC)?;
        ftruncate(&shm, SHM_SIZE as u64)?;
        let mk = || -> std::io::Result<Vec<Arc<Doorbell>>> {
            (0..vectors)
                .map(|_| Doorbell::new().map(Arc::new))
                .collect()
        };
        Ok(Self {
            shm,
            to_host: mk()?,
            to_guest: mk()?,
        })
    }

    /// Sends the whole setup sequence to a freshly connected client.
    pub fn send_setup<S: AsFd>(&self, sock: S) -> std::io::Result<()> {
        send_msg(&sock, IVSHMEM_PROTOCOL_VERSION, None)?;
        send_msg(&sock, GUEST_PEER_ID, None)?;
        send_msg(&sock, -1, Some(self.shm.as_fd()))?;
        for d in &self.to_host {
            send_msg(&sock, HOST_PEER_ID, Some(d.as_fd()))?;
        }
        for d in &self.to_guest {
            send_msg(&sock, GUEST_PEER_ID, Some(d.as_fd()))?;
        }
        Ok(())
    }
}

/// Sends one 8-byte little-endian integer, with an fd if given.
pub fn send_msg<S: AsFd>(sock: S, val: i64, fd: Option<BorrowedFd<'_>>) -> std::io::Result<()> {
    let bytes = val.to_le_bytes();
    let iov = [IoSlice::new(&bytes)];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(std::io::Error::other("cannot attach the fd"));
        }
    }
    let n = sendmsg(&sock, &iov, &mut control, SendFlags::NOSIGNAL)?;
    if n != bytes.len() {
        return Err(std::io::Error::other("short write on the ivshmem socket"));
    }
    Ok(())
}
