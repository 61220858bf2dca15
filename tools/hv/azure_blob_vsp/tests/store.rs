// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `azure-blob-vsp --store PATH`: blobs uploaded by a guest through the binary survive the
//! process being killed with SIGKILL (in the middle of an upload) and restarted on the same
//! Blobstore file.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use azure_blob_vsp::control::ControlPage;
use azure_blob_vsp::guest_ram::GuestRam;

/// One VSP process with a store, a fake QEMU and an open channel 0.
struct Host {
    vsp: ChildGuard,
    _qemu: UnixStream,
    fds: Vec<Option<std::os::fd::OwnedFd>>,
    g: Guest,
    send: GuestRing,
    recv: GuestRing,
    next_id: u64,
}

impl Host {
    fn start(dir: &Path, run: u32, store: &Path) -> Self {
        let ram_path = dir.join(format!("guest-ram-{run}"));
        guest_ram_file(&ram_path, 32 << 20);
        let ivsh = dir.join(format!("ivshmem-{run}.sock"));
        let ctl = dir.join(format!("control-{run}.sock"));
        let log = dir.join(format!("vsp-{run}.log"));
        let vsp = spawn_logged(
            Command::new(env!("CARGO_BIN_EXE_azure-blob-vsp"))
                .arg("--ivshmem-socket")
                .arg(&ivsh)
                .arg("--guest-ram")
                .arg(&ram_path)
                .arg("--control-socket")
                .arg(&ctl)
                .arg("--store")
                .arg(store)
                .args(["--store-size", "268435456"]),
            &log,
        );
        let qemu = connect(&ivsh);
        let fds: Vec<_> = recv_ivshmem_msgs(&qemu, 13)
            .into_iter()
            .map(|m| m.1)
            .collect();
        let page = ControlPage::from_fd(fds[2].as_ref().unwrap().try_clone().unwrap()).unwrap();
        page.raw_store(16, 1); // guest_id
        page.raw_store(20, 1); // guest_gen
        let mut g = Guest::with_ram(Arc::new(GuestRam::from_file(&ram_path).unwrap()));
        let send = g.alloc_ring(31);
        let recv = g.alloc_ring(31);
        open_channel(&page, 0, &send, &recv);
        let h = Host {
            vsp,
            _qemu: qemu,
            fds,
            g,
            send,
            recv,
            next_id: 1,
        };
        h.ring();
        wait_for("open_ack", || page.open_ack(0) == 1);
        assert_eq!(page.host_status(0), 0);
        h
    }

    fn ring(&self) {
        let fd = self.fds[3].as_ref().unwrap();
        rustix::io::write(fd, &1u64.to_ne_bytes()).unwrap();
    }

    /// Sends a request; returns the driver request (for its buffers) and its transaction id.
    fn post(&mut self, head: &str, body: &[u8], data_cap: u32) -> (DriverRequest, u64) {
        let request = Buf::new(&mut self.g, 0, head.len() as u32);
        request.write(&self.g.ram, head.as_bytes());
        let response = Buf::new(&mut self.g, 0, 4096);
        let data = Buf::new(&mut self.g, 0, data_cap.max(1));
        data.write(&self.g.ram, body);
        let dr = DriverRequest::new(Some(data), body.len() as u32, request, response);
        let id = self.next_id;
        self.next_id += 1;
        assert_eq!(self.send.write_packet(&dr.packet(id)), Some(true));
        // Ring the channel's doorbell (vector 1).
        let fd = self.fds[4].as_ref().unwrap();
        rustix::io::write(fd, &1u64.to_ne_bytes()).unwrap();
        (dr, id)
    }

    /// One request to completion: the response head and the data buffer.
    fn call(&mut self, head: &str, body: &[u8], data_cap: u32) -> (String, Vec<u8>) {
        let (dr, id) = self.post(head, body, data_cap);
        let comp = wait_packet(&mut self.recv);
        let c = decode_completion(&comp);
        assert_eq!((c.trans_id, c.status), (id, 0));
        let head = String::from_utf8_lossy(&dr.response.read(&self.g.ram, c.response_len as usize))
            .into_owned();
        let data = dr
            .data
            .as_ref()
            .unwrap()
            .read(&self.g.ram, data_cap as usize);
        (head, data)
    }
}

fn put_blob(name: &str, len: usize) -> String {
    format!(
        "PUT /devstoreaccount1/keep/{name} HTTP/1.1\r\nx-ms-version: 2021-10-04\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: {len}\r\n\r\n"
    )
}

fn get_blob(name: &str) -> String {
    format!("GET /devstoreaccount1/keep/{name} HTTP/1.1\r\nx-ms-version: 2021-10-04\r\n\r\n")
}

#[test]
fn blobs_acknowledged_through_the_binary_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("blobs.store");
    let mut h = Host::start(dir.path(), 1, &store);
    let (head, _) = h.call(
        "PUT /devstoreaccount1/keep?restype=container HTTP/1.1\r\nx-ms-version: 2021-10-04\r\n\r\n",
        b"",
        0,
    );
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    let blobs: Vec<(String, Vec<u8>)> = (0..12u8)
        .map(|i| {
            let len = 1 + 997 * usize::from(i) + usize::from(i) * usize::from(i) * 211;
            (format!("b{i}"), pattern(len, i))
        })
        .collect();
    for (name, body) in &blobs {
        let (head, _) = h.call(&put_blob(name, body.len()), body, body.len() as u32);
        assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    }
    // One more upload in flight when the host dies.
    let last = pattern(60_000, 99);
    let _in_flight = h.post(&put_blob("last", last.len()), &last, last.len() as u32);
    h.vsp.0.kill().unwrap();
    h.vsp.0.wait().unwrap();
    drop(h);

    let mut h = Host::start(dir.path(), 2, &store);
    for (name, body) in &blobs {
        let (head, data) = h.call(&get_blob(name), b"", 64 << 10);
        assert!(head.starts_with("HTTP/1.1 200"), "{name}: {head}");
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{name}: {head}"
        );
        assert!(data[..body.len()] == body[..], "{name} differs");
    }
    // The interrupted upload is either absent or whole.
    let (head, data) = h.call(&get_blob("last"), b"", 64 << 10);
    if head.starts_with("HTTP/1.1 200") {
        assert!(data[..last.len()] == last[..]);
    } else {
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    }
}
