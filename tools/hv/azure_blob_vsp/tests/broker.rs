// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! End to end through `azure-blob-broker` running `azure-blob-vsp --broker`:
//! a fake QEMU connects once, an emulated guest opens a channel, the VSP
//! holds three requests and is told to `crash` (kill -9); the broker starts
//! another VSP, which takes over the channel and the control connection and
//! fails the three with the restarted status; a new QEMU gets a fresh VM
//! and a fresh VSP; `quit` ends both processes.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_blob_vsp::control::ControlPage;
use azure_blob_vsp::guest_ram::GuestRam;
use azure_blob_vsp::host::NR_VECTORS;
use azure_blob_vsp::journal::HOST_RESTARTED_STATUS;
use hv_azure_blob_proto::sim_shm::VMBUS_SIM_MAGIC;
use hv_azure_blob_proto::RING_READ_INDEX;

#[test]
fn broker_restarts_a_crashed_vsp_which_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let ram_path = dir.path().join("guest-ram");
    guest_ram_file(&ram_path, 16 << 20);
    let ivsh = dir.path().join("ivshmem.sock");
    let ctl = dir.path().join("control.sock");
    let brk = dir.path().join("broker.sock");
    let log = dir.path().join("broker.log");
    let mut broker = spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_azure-blob-broker"))
            .arg("--ivshmem-socket")
            .arg(&ivsh)
            .arg("--control-socket")
            .arg(&ctl)
            .arg("--broker-socket")
            .arg(&brk)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_azure-blob-vsp"))
            .arg("--broker")
            .arg(&brk)
            .arg("--guest-ram")
            .arg(&ram_path)
            .args(["--handler", "echo"]),
        &log,
    );

    // Fake QEMU: the usual ivshmem setup, from the broker.
    let qemu = connect(&ivsh);
    let msgs = recv_ivshmem_msgs(&qemu, 3 + 2 * NR_VECTORS);
    let fds: Vec<_> = msgs.into_iter().map(|m| m.1).collect();
    let to_host = |v: usize| fds[3 + v].as_ref().unwrap();
    let page = ControlPage::from_fd(fds[2].as_ref().unwrap().try_clone().unwrap()).unwrap();
    wait_for("the VSP's offer", || {
        page.magic() == VMBUS_SIM_MAGIC && page.offered(0)
    });
    assert_eq!(page.host_gen(), 1);

    // The guest opens channel 0.
    page.raw_store(16, 1); // guest_id
    page.raw_store(20, 1); // guest_gen
    let mut g = Guest::with_ram(Arc::new(GuestRam::from_file(&ram_path).unwrap()));
    let mut send = g.alloc_ring(15);
    let mut recv = g.alloc_ring(15);
    open_channel(&page, 0, &send, &recv);
    ring_fd(to_host(0));
    wait_for("open_ack", || page.open_ack(0) == 1);

    // Control connection (kept by the broker across VSPs).
    let c = connect(&ctl);
    // An answer that never comes fails the test instead of hanging it.
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut lines = BufReader::new(c).lines();
    let mut ask = |cmd: &str| -> String {
        w.write_all(cmd.as_bytes()).unwrap();
        lines.next().unwrap().unwrap()
    };
    assert!(ask("fault hold\n").starts_with("ok"));
    let held: Vec<DriverRequest> = (0..3u64)
        .map(|i| {
            let request = Buf::new(&mut g, 0, 8);
            request.write(&g.ram, &i.to_le_bytes());
            DriverRequest::new(None, 0, request, Buf::new(&mut g, 0, 8))
        })
        .collect();
    for (i, dr) in held.iter().enumerate() {
        send.write_packet(&dr.packet(50 + i as u64)).unwrap();
    }
    ring_fd(to_host(1));
    // Taken off the ring (read index published), held.
    wait_for("the host to take the requests", || {
        send.load(RING_READ_INDEX) == send.local_index
    });
    assert!(recv.read_packet().is_none());
    let answer = ask("crash\n");
    assert!(answer.starts_with("ok crashing"), "{answer}");
    // The same connection reaches the next VSP.
    let st = ask("status\n");
    assert!(st.starts_with("ok host_gen=2 "), "{st}");
    assert!(st.contains("ch0 offered=1 open=1"), "{st}");
    for i in 0..3u64 {
        let p = wait_packet(&mut recv);
        assert_eq!(
            decode_completion(&p),
            Comp {
                trans_id: 50 + i,
                status: HOST_RESTARTED_STATUS,
                response_len: 0
            }
        );
    }
    // Served as usual now (the fault plan died with the old VSP).
    let request = Buf::new(&mut g, 0, 8);
    request.write(&g.ram, b"after!!!");
    let dr = DriverRequest::new(None, 0, request, Buf::new(&mut g, 0, 8));
    send.write_packet(&dr.packet(60)).unwrap();
    ring_fd(to_host(1));
    let p = wait_packet(&mut recv);
    assert_eq!(
        decode_completion(&p),
        Comp {
            trans_id: 60,
            status: 0,
            response_len: 8
        }
    );
    assert_eq!(dr.response.read(&g.ram, 8), b"after!!!");
    assert!(recv.read_packet().is_none(), "nothing twice");

    // A second VSP is refused while one is attached.
    let extra = Command::new(env!("CARGO_BIN_EXE_azure-blob-vsp"))
        .arg("--broker")
        .arg(&brk)
        .arg("--guest-ram")
        .arg(&ram_path)
        .args(["--handler", "echo"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!extra.success());

    // A new QEMU (the VM restarted): fresh resources, and the VSP is
    // replaced by one that offers on the fresh control page.
    drop(qemu);
    wait_for("the broker to notice", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("QEMU disconnected")
    });
    let qemu = connect(&ivsh);
    let msgs = recv_ivshmem_msgs(&qemu, 3 + 2 * NR_VECTORS);
    let page2 = ControlPage::from_fd(msgs[2].1.as_ref().unwrap().try_clone().unwrap()).unwrap();
    wait_for("the offer on the new page", || {
        page2.magic() == VMBUS_SIM_MAGIC && page2.offered(0)
    });
    assert_eq!((page2.host_gen(), page2.offer_seq(0)), (1, 1));
    assert!(page.offered(0), "the old page is left as it was");
    let st = ask("status\n");
    assert!(st.starts_with("ok host_gen=1 "), "{st}");

    assert_eq!(ask("quit\n"), "ok quitting");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = broker.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the broker did not exit on quit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    drop(qemu);
    let log = std::fs::read_to_string(&log).unwrap();
    for needle in [
        "started the VSP",
        "a new VM",
        "QEMU connected",
        "crash requested",
        "the VSP exited (signal: 9 (SIGKILL)); starting another",
        "taking over from a previous VSP process",
        "3 request(s) the previous VSP had taken off the ring and not answered",
        "a second VSP connected while one is attached: refused",
        "new QEMU: fresh shared memory, doorbells and host state",
        "the broker closed the connection",
        "the VSP quit",
    ] {
        assert!(log.contains(needle), "log lacks '{needle}':\n{log}");
    }
}
