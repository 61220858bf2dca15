// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! End to end through the `azure-blob-vsp` binary: a fake QEMU connects to
//! the ivshmem socket, an emulated guest opens a channel in a shared RAM file
//! and sends a request, and the control socket rescinds and quits.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_blob_vsp::control::ControlPage;
use azure_blob_vsp::guest_ram::GuestRam;
use hv_azure_blob_proto::sim_shm::VMBUS_SIM_MAGIC;

fn fd_rang(fd: &std::os::fd::OwnedFd) -> bool {
    let mut b = [0u8; 8];
    // The eventfds are non-blocking.
    matches!(rustix::io::read(fd, &mut b), Ok(8))
}

#[test]
fn binary_serves_a_fake_qemu_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let ram_path = dir.path().join("guest-ram");
    guest_ram_file(&ram_path, 16 << 20);
    let ivsh = dir.path().join("ivshmem.sock");
    let ctl = dir.path().join("control.sock");
    let log = dir.path().join("vsp.log");
    let mut child = spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_azure-blob-vsp"))
            .arg("--ivshmem-socket")
            .arg(&ivsh)
            .arg("--guest-ram")
            .arg(&ram_path)
            .arg("--control-socket")
            .arg(&ctl)
            .args(["--handler", "echo"])
            .env("RUST_LOG", "debug"),
        &log,
    );

    // Fake QEMU.
    let qemu = connect(&ivsh);
    let msgs = recv_ivshmem_msgs(&qemu, 13);
    assert_eq!(
        msgs.iter().map(|m| m.0).collect::<Vec<_>>(),
        [0, 1, -1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    );
    let fds: Vec<_> = msgs.into_iter().map(|m| m.1).collect();
    let to_host = |v: usize| fds[3 + v].as_ref().unwrap();
    let to_guest = |v: usize| fds[8 + v].as_ref().unwrap();
    // A second ivshmem client is refused (closed at once).
    let mut second = connect(&ivsh);
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 8];
    assert_eq!(second.read(&mut b).unwrap(), 0);

    // The guest's view of BAR2: attached, one device offered.
    let page = ControlPage::from_fd(fds[2].as_ref().unwrap().try_clone().unwrap()).unwrap();
    assert_eq!(page.magic(), VMBUS_SIM_MAGIC);
    assert!(page.offered(0));
    assert!(!page.offered(1));
    assert!(fd_rang(to_guest(0)), "the offer rang the control vector");

    // The guest bus starts and opens channel 0 with rings in the RAM file.
    page.raw_store(16, 1); // guest_id
    page.raw_store(20, 1); // guest_gen
    let mut g = Guest::with_ram(Arc::new(GuestRam::from_file(&ram_path).unwrap()));
    let mut send = g.alloc_ring(31);
    let mut recv = g.alloc_ring(31);
    open_channel(&page, 0, &send, &recv);
    ring_fd(to_host(0));
    wait_for("open_ack", || page.open_ack(0) == 1);
    assert_eq!(page.host_status(0), 0);

    // A request with a data buffer.
    let request = Buf::new(&mut g, 5, 20);
    request.write(&g.ram, b"GET /container/blob\n");
    let response = Buf::new(&mut g, 0, 64);
    let data = Buf::new(&mut g, 100, 6000);
    data.write(&g.ram, &pattern(6000, 1));
    let dr = DriverRequest::new(Some(data), 3000, request, response);
    assert_eq!(send.write_packet(&dr.packet(77)), Some(true));
    ring_fd(to_host(1));
    let comp = wait_packet(&mut recv);
    let c = decode_completion(&comp);
    assert_eq!(
        c,
        Comp {
            trans_id: 77,
            status: 0,
            response_len: 20
        }
    );
    assert_eq!(dr.response.read(&g.ram, 20), b"GET /container/blob\n");
    let out = dr.data.as_ref().unwrap().read(&g.ram, 6000);
    assert!(out == expected_data(&pattern(6000, 1)[..3000], 6000));
    wait_for("the channel interrupt", || fd_rang(to_guest(1)));

    // Control socket.
    let c = connect(&ctl);
    let mut w = c.try_clone().unwrap();
    let mut lines = BufReader::new(c).lines();
    let mut ask = |cmd: &str| -> String {
        w.write_all(cmd.as_bytes()).unwrap();
        lines.next().unwrap().unwrap()
    };
    // The worker counts a request right after writing its completion.
    let mut st = String::new();
    for _ in 0..100 {
        st = ask("status\r\n");
        if st.contains("served=1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        st.contains("ch0 offered=1 open=1 served=1 errors=0 broken=0"),
        "{st}"
    );
    assert!(ask("rescind 0\r\n").starts_with("ok rescinded channel 0"));
    assert!(!page.offered(0));
    assert_eq!(page.offer_seq(0), 2);
    wait_for("the rescind interrupt", || fd_rang(to_guest(0)));

    // QEMU goes away; a new QEMU gets a fresh control page (nothing of the
    // previous guest's fields) with the start-up offers.
    drop(qemu);
    wait_for("the host to notice", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("QEMU disconnected")
    });
    let qemu2 = connect(&ivsh);
    let msgs2 = recv_ivshmem_msgs(&qemu2, 13);
    let page2 = ControlPage::from_fd(msgs2[2].1.as_ref().unwrap().try_clone().unwrap()).unwrap();
    assert_eq!(page2.magic(), VMBUS_SIM_MAGIC);
    assert!(page2.offered(0));
    assert_eq!(page2.offer_seq(0), 1);
    assert_eq!(page2.guest_state(0).open_seq, 0);
    assert_eq!(page2.raw_load(20), 0, "guest_gen of the new page");
    let st = ask("status\n");
    assert!(st.contains("ch0 offered=1 open=0 served=0"), "{st}");
    // The old page is no longer the host's.
    assert!(!page.offered(0));

    assert_eq!(ask("quit\n"), "ok quitting");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the VSP did not exit on quit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let log = std::fs::read_to_string(&log).unwrap();
    for needle in [
        "attached to the control page as host peer 0",
        "offered channel 0",
        "QEMU connected",
        "second client connected to the ivshmem socket",
        "guest attached: bus driver (re)started",
        "mapped guest RAM",
        "channel 0 opened: send ring at GPA",
        "request 77 served",
        "rescinded channel 0",
        "QEMU disconnected",
        "new QEMU session",
        "quit requested",
    ] {
        assert!(log.contains(needle), "log lacks '{needle}':\n{log}");
    }
}
