// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The broker: the process that outlives VSPs.
//!
//! QEMU connects to an ivshmem server once and never again, so the server
//! must live as long as the VM. The broker (`azure-blob-broker`) is that
//! server: it creates and keeps the shared memory (the control page), the
//! doorbell eventfds and the host state memory ([`crate::journal`]), and
//! hands them to each VSP process that connects to its broker socket, the
//! first one and every one started after a crash. It also owns the control
//! socket: it accepts the clients (QEMU's second serial port among them),
//! keeps a duplicate of every connection so that none is lost when a VSP
//! dies, and passes each to the current VSP.
//!
//! The broker socket is a UNIX `SOCK_SEQPACKET` socket. Every message is a
//! 16-byte [`Header`] with file descriptors attached (SCM_RIGHTS):
//!
//! - broker to VSP, once on connection: [`MSG_SETUP`], `arg` = the number
//!   of vectors *n*, fds = shared memory, host state, *n* host doorbells
//!   (rung by the guest), *n* guest doorbells (rung by the host);
//! - broker to VSP: [`MSG_CONTROL`], fd = one control-socket connection
//!   (every open one after a setup, then each new one);
//! - VSP to broker: [`MSG_QUIT`] before a VSP exits on `quit` (the broker
//!   then exits too instead of starting another VSP).
//!
//! One VSP is attached at a time; the broker refuses a second. A VSP exits
//! when its broker connection ends.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
use rustix::net::{
    recvmsg, sendmsg, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use crate::doorbell::Doorbell;
use crate::ivshmem::IvshmemResources;
use crate::journal::STATE_SIZE;

/// "HVBK".
pub const BROKER_MAGIC: u32 = 0x4b42_5648;
/// Broker to VSP: the VM's shared memory, host state and doorbells.
pub const MSG_SETUP: u32 = 1;
/// Broker to VSP: a control-socket connection.
pub const MSG_CONTROL: u32 = 2;
/// VSP to broker: quitting on `quit`.
pub const MSG_QUIT: u32 = 3;
/// Most fds in one message.
pub const MAX_FDS: usize = 32;

/// The fixed part of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `MSG_*`.
    pub kind: u32,
    /// Per kind (the number of vectors for `MSG_SETUP`).
    pub arg: u32,
}

/// A received message.
#[derive(Debug)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The fds that came with it, in order.
    pub fds: Vec<OwnedFd>,
}

/// Sends one message.
pub fn send<S: AsFd>(sock: S, kind: u32, arg: u32, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(std::io::Error::other("too many fds for one message"));
    }
    let mut bytes = [0u8; 16];
    bytes[0..4].copy_from_slice(&BROKER_MAGIC.to_le_bytes());
    bytes[4..8].copy_from_slice(&kind.to_le_bytes());
    bytes[8..12].copy_from_slice(&arg.to_le_bytes());
    bytes[12..16].copy_from_slice(&(fds.len() as u32).to_le_bytes());
    let iov = [IoSlice::new(&bytes)];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other("cannot attach the fds"));
    }
    let n = sendmsg(&sock, &iov, &mut control, SendFlags::NOSIGNAL)?;
    if n != bytes.len() {
        return Err(std::io::Error::other("short message on the broker socket"));
    }
    Ok(())
}

/// Receives one message; `None` when the peer has gone.
pub fn recv<S: AsFd>(sock: S) -> std::io::Result<Option<Message>> {
    let mut bytes = [0u8; 16];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(&mut bytes)];
    let r = loop {
        match recvmsg(&sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = msg {
            fds.extend(got);
        }
    }
    if r.bytes == 0 {
        return Ok(None);
    }
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if r.bytes != 16 || word(0) != BROKER_MAGIC {
        return Err(std::io::Error::other(
            "malformed message on the broker socket",
        ));
    }
    if word(12) as usize != fds.len() {
        return Err(std::io::Error::other(format!(
            "message announces {} fds, {} arrived",
            word(12),
            fds.len()
        )));
    }
    Ok(Some(Message {
        header: Header {
            kind: word(4),
            arg: word(8),
        },
        fds,
    }))
}

fn unix_addr(path: &Path) -> std::io::Result<SocketAddrUnix> {
    Ok(SocketAddrUnix::new(path)?)
}

/// A close-on-exec UNIX `SOCK_SEQPACKET` socket: the broker protocol's.
fn seqpacket() -> std::io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Binds and listens on the broker socket (a stale file is replaced).
pub fn listen(path: &Path) -> std::io::Result<OwnedFd> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let fd = seqpacket()?;
    rustix::net::bind(&fd, &unix_addr(path)?)?;
    rustix::net::listen(&fd, 4)?;
    Ok(fd)
}

/// Accepts a VSP on the broker socket.
pub fn accept(listener: &OwnedFd) -> std::io::Result<OwnedFd> {
    Ok(rustix::net::accept_with(listener, SocketFlags::CLOEXEC)?)
}

/// Connects a VSP to the broker.
pub fn connect(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = seqpacket()?;
    rustix::net::connect(&fd, &unix_addr(path)?)?;
    Ok(fd)
}

/// Everything the broker keeps for one VM.
#[derive(Debug)]
pub struct VmResources {
    /// What QEMU gets: shared memory and doorbells.
    pub ivshmem: IvshmemResources,
    /// The host state memory ([`STATE_SIZE`] bytes), never shown to QEMU.
    pub state: OwnedFd,
}

impl VmResources {
    /// Fresh shared memory, host state and `vectors` doorbells each way.
    pub fn new(vectors: usize) -> std::io::Result<Self> {
        let state = memfd_create("vsp-host-state", MemfdFlags::CLOEXEC)?;
        ftruncate(&state, STATE_SIZE as u64)?;
        Ok(Self {
            ivshmem: IvshmemResources::new(vectors)?,
            state,
        })
    }

    /// Sends `MSG_SETUP` to a VSP.
    pub fn send_setup<S: AsFd>(&self, sock: S) -> std::io::Result<()> {
        let r = &self.ivshmem;
        let mut fds = vec![r.shm.as_fd(), self.state.as_fd()];
        fds.extend(r.to_host.iter().map(|d| d.as_fd()));
        fds.extend(r.to_guest.iter().map(|d| d.as_fd()));
        send(sock, MSG_SETUP, r.to_host.len() as u32, &fds)
    }
}

/// What a VSP gets from the broker.
#[derive(Debug)]
pub struct Attachment {
    /// The shared memory (control page).
    pub shm: OwnedFd,
    /// The host state memory.
    pub state: OwnedFd,
    /// Rung by the guest, one per vector.
    pub to_host: Vec<Arc<Doorbell>>,
    /// Rung by the host, one per vector.
    pub to_guest: Vec<Arc<Doorbell>>,
}

/// Receives `MSG_SETUP` (the first message on a new connection).
pub fn receive_setup<S: AsFd>(sock: S) -> std::io::Result<Attachment> {
    let msg = recv(sock)?.ok_or_else(|| {
        std::io::Error::other("the broker closed the connection (is another VSP attached?)")
    })?;
    let n = msg.header.arg as usize;
    if msg.header.kind != MSG_SETUP || msg.fds.len() != 2 + 2 * n {
        return Err(std::io::Error::other(format!(
            "expected the setup message, got kind {} with {} fds",
            msg.header.kind,
            msg.fds.len()
        )));
    }
    let mut fds = msg.fds.into_iter();
    let mut next = || {
        fds.next()
            .ok_or_else(|| std::io::Error::other("fd missing"))
    };
    let shm = next()?;
    let state = next()?;
    let mut bells = |count: usize| -> std::io::Result<Vec<Arc<Doorbell>>> {
        (0..count)
            .map(|_| next().map(|fd| Arc::new(Doorbell::from_fd(fd))))
            .collect()
    };
    let to_host = bells(n)?;
    let to_guest = bells(n)?;
    Ok(Attachment {
        shm,
        state,
        to_host,
        to_guest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn setup_hands_over_the_same_memory_and_doorbells() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.sock");
        let l = listen(&path).unwrap();
        let res = VmResources::new(5).unwrap();
        for round in 0..2 {
            let vsp = connect(&path).unwrap();
            let conn = accept(&l).unwrap();
            res.send_setup(&conn).unwrap();
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            send(&conn, MSG_CONTROL, 0, &[a.as_fd()]).unwrap();
            let att = receive_setup(&vsp).unwrap();
            assert_eq!((att.to_host.len(), att.to_guest.len()), (5, 5));
            // Same memory: what one writes the other reads.
            let mine = crate::guest_ram::GuestRam::from_open_file(std::fs::File::from(
                res.ivshmem.shm.try_clone().unwrap(),
            ))
            .unwrap();
            let theirs =
                crate::guest_ram::GuestRam::from_open_file(std::fs::File::from(att.shm)).unwrap();
            mine.write(100, &[round + 1]).unwrap();
            let mut x = [0u8];
            theirs.read(100, &mut x).unwrap();
            assert_eq!(x[0], round + 1);
            let st = rustix::fs::fstat(&att.state).unwrap();
            assert_eq!(st.st_size as usize, STATE_SIZE);
            // Same doorbells, both ways.
            res.ivshmem.to_host[3].ring();
            assert!(att.to_host[3].wait(Duration::from_secs(1)));
            att.to_guest[4].ring();
            assert!(res.ivshmem.to_guest[4].wait(Duration::from_secs(1)));
            // A control connection arrives as a working socket.
            let m = recv(&vsp).unwrap().unwrap();
            assert_eq!(m.header.kind, MSG_CONTROL);
            let mut s = std::os::unix::net::UnixStream::from(m.fds.into_iter().next().unwrap());
            std::io::Write::write_all(&mut s, b"hi").unwrap();
            let mut got = [0u8; 2];
            std::io::Read::read_exact(&mut &b, &mut got).unwrap();
            assert_eq!(&got, b"hi");
            // The VSP goes: the broker sees the end.
            drop(vsp);
            assert!(recv(&conn).unwrap().is_none());
        }
    }
}
