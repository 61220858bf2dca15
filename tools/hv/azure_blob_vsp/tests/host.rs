// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The host side of the simulated VMBus: the ivshmem handshake against a
//! fake QEMU, the control-page protocol of vmbus_sim_shm.h (offer, open,
//! close, rescind) driven by an emulated guest, and the control socket.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_blob_vsp::broker::VmResources;
use azure_blob_vsp::control::{ControlPage, SHM_SIZE};
use azure_blob_vsp::doorbell::Doorbell;
use azure_blob_vsp::guest_ram::GuestRam;
use azure_blob_vsp::host::{serve_control_client, Host, RamSource, NR_VECTORS};
use azure_blob_vsp::ivshmem::IvshmemResources;
use azure_blob_vsp::journal::{HostState, HOST_RESTARTED_STATUS};
use azure_blob_vsp::vsp::{EchoHandler, RequestHandler};
use hv_azure_blob_proto::sim_shm::{
    chan_field, SimShm, VMBUS_SIM_MAGIC, VMBUS_SIM_MAX_CHANNELS, VMBUS_SIM_STATE_CLOSED,
    VMBUS_SIM_VERSION,
};
use hv_azure_blob_proto::HV_AZURE_BLOB_GUID;
use hv_azure_blob_proto::RING_WRITE_INDEX;

#[test]
fn ivshmem_handshake_sends_ids_and_fds_in_order() {
    let res = IvshmemResources::new(NR_VECTORS).unwrap();
    let (server, qemu) = UnixStream::pair().unwrap();
    res.send_setup(&server).unwrap();
    let msgs = recv_ivshmem_msgs(&qemu, 3 + 2 * NR_VECTORS);
    let vals: Vec<i64> = msgs.iter().map(|m| m.0).collect();
    let mut expect = vec![0, 1, -1];
    expect.extend(std::iter::repeat_n(0, NR_VECTORS));
    expect.extend(std::iter::repeat_n(1, NR_VECTORS));
    assert_eq!(vals, expect);
    assert!(
        msgs[0].1.is_none() && msgs[1].1.is_none(),
        "version and id carry no fd"
    );
    assert!(
        msgs[2..].iter().all(|m| m.1.is_some()),
        "the others carry one fd each"
    );
    // Nothing more follows.
    server.set_nonblocking(true).unwrap();
    qemu.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    assert!(std::io::Read::read(&mut &qemu, &mut b).is_err());

    // The shared memory: a power-of-two size holding struct vmbus_sim_shm,
    // and the same memory as the server's.
    let shm = msgs[2].1.as_ref().unwrap();
    let st = rustix::fs::fstat(shm).unwrap();
    assert_eq!(st.st_size as usize, SHM_SIZE);
    assert!(SHM_SIZE.is_power_of_two() && SHM_SIZE >= std::mem::size_of::<SimShm>());
    let host_view = ControlPage::from_fd(res.shm.try_clone().unwrap()).unwrap();
    let qemu_view = ControlPage::from_fd(shm.try_clone().unwrap()).unwrap();
    host_view.attach(0);
    assert_eq!(qemu_view.magic(), VMBUS_SIM_MAGIC);

    // Peer 0's fds are the host's doorbells: QEMU writes them.
    for v in 0..NR_VECTORS {
        let fd = msgs[3 + v].1.as_ref().unwrap();
        rustix::io::write(fd, &1u64.to_ne_bytes()).unwrap();
        assert!(
            res.to_host[v].wait(Duration::from_secs(1)),
            "vector {v} to host"
        );
        for (w, d) in res.to_host.iter().enumerate() {
            assert!(!d.take(), "vector {v} must not ring vector {w}");
        }
    }
    // Own-id fds are the guest's interrupts: the host writes them.
    for v in 0..NR_VECTORS {
        res.to_guest[v].ring();
        let fd = msgs[3 + NR_VECTORS + v].1.as_ref().unwrap();
        let mut c = [0u8; 8];
        assert_eq!(
            rustix::io::read(fd, &mut c).unwrap(),
            8,
            "vector {v} to guest"
        );
        assert_eq!(u64::from_ne_bytes(c), 1);
    }
}

struct Bed {
    host: Arc<Host>,
    to_host: Vec<Arc<Doorbell>>,
    to_guest: Vec<Arc<Doorbell>>,
    g: Guest,
}

fn bed() -> Bed {
    let g = Guest::new(32 << 20);
    let mk = || {
        (0..NR_VECTORS)
            .map(|_| Arc::new(Doorbell::new().unwrap()))
            .collect::<Vec<_>>()
    };
    let to_host = mk();
    let to_guest = mk();
    let host = Host::new(
        ControlPage::anonymous().unwrap(),
        to_host.clone(),
        to_guest.clone(),
        RamSource::Fixed(g.ram.clone()),
        Box::new(|_| -> Box<dyn RequestHandler> { Box::new(EchoHandler) }),
    )
    .unwrap();
    Bed {
        host: Arc::new(host),
        to_host,
        to_guest,
        g,
    }
}

fn guest_open(b: &Bed, ch: usize, send: &GuestRing, recv: &GuestRing) -> u32 {
    open_channel(b.host.control(), ch, send, recv)
}

fn guest_close(b: &Bed, ch: usize) -> u32 {
    let c = b.host.control();
    c.guest_store(ch, chan_field::STATE, VMBUS_SIM_STATE_CLOSED);
    let seq = c.guest_state(ch).open_seq + 1;
    c.guest_store(ch, chan_field::OPEN_SEQ, seq);
    seq
}

fn small_request(g: &mut Guest, tag: u64) -> DriverRequest {
    let request = Buf::new(g, 0, 8);
    request.write(&g.ram, &tag.to_le_bytes());
    let response = Buf::new(g, 0, 8);
    DriverRequest::new(None, 0, request, response)
}

#[test]
fn attach_offer_open_serve_rescind_close_reoffer() {
    let mut b = bed();
    let c = b.host.control();
    // Host attach.
    assert_eq!(c.magic(), VMBUS_SIM_MAGIC);
    assert_eq!(c.host_gen(), 1);
    let page = {
        let mut v = [0u32; 8];
        for (i, x) in v.iter_mut().enumerate() {
            *x = c.raw_load(i * 4);
        }
        v
    };
    assert_eq!(page[1], VMBUS_SIM_VERSION);
    assert_eq!(page[3], 0, "host_peer");
    assert_eq!(page[6], VMBUS_SIM_MAX_CHANNELS as u32);

    // Offer.
    let reply = b.host.offer(None).unwrap();
    assert!(reply.starts_with("offered channel 0 instance "), "{reply}");
    assert!(c.offered(0));
    assert_eq!(c.offer_seq(0), 1);
    assert_eq!(c.if_type(0), HV_AZURE_BLOB_GUID);
    let inst = c.instance(0);
    assert_eq!(inst[7] >> 4, 4, "version-4 instance GUID");
    assert!(b.to_guest[0].take(), "offer rings the control vector");

    // Open.
    let send = b.g.alloc_ring(31);
    let mut recv = b.g.alloc_ring(31);
    let mut send = send;
    let seq = guest_open(&b, 0, &send, &recv);
    b.host.poll_control();
    assert_eq!(c.open_ack(0), seq);
    assert_eq!(c.host_status(0), 0);
    assert!(b.to_guest[0].take(), "open_ack rings the control vector");
    assert!(b.host.status().contains("ch0 offered=1 open=1 served=0"));

    // Serve a request through the doorbells.
    let dr = small_request(&mut b.g, 0xabc);
    assert_eq!(send.write_packet(&dr.packet(11)), Some(true));
    b.to_host[1].ring();
    let comp = decode_completion(&wait_packet(&mut recv));
    assert_eq!(
        comp,
        Comp {
            trans_id: 11,
            status: 0,
            response_len: 8
        }
    );
    assert_eq!(dr.response.read(&b.g.ram, 8), 0xabcu64.to_le_bytes());
    assert!(
        b.to_guest[1].wait(Duration::from_secs(1)),
        "channel vector rung"
    );

    // Opening a channel that is not offered is refused with ENODEV.
    let s1 = b.g.alloc_ring(3);
    let r1 = b.g.alloc_ring(3);
    let seq1 = guest_open(&b, 1, &s1, &r1);
    b.host.poll_control();
    assert_eq!(c.open_ack(1), seq1);
    assert_eq!(c.host_status(1), 19);

    // Rescind with requests pending: they are completed before the offer
    // goes away.
    let pend: Vec<DriverRequest> = (0..3).map(|i| small_request(&mut b.g, i)).collect();
    for (i, dr) in pend.iter().enumerate() {
        send.write_packet(&dr.packet(100 + i as u64)).unwrap();
    }
    let reply = b.host.rescind(Some(0)).unwrap();
    assert!(reply.starts_with("rescinded channel 0"), "{reply}");
    for i in 0..3u64 {
        let (p, _) = recv
            .read_packet()
            .expect("pending request completed before rescind");
        assert_eq!(decode_completion(&p).trans_id, 100 + i);
    }
    assert!(!c.offered(0));
    assert_eq!(c.offer_seq(0), 2);
    assert!(b.to_guest[0].take());
    assert!(b.host.rescind(Some(0)).is_err(), "already rescinded");
    // Re-offering waits for the guest to close the rescinded channel.
    let host = b.host.clone();
    let offer = std::thread::spawn(move || host.offer(Some(0)));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!offer.is_finished(), "the offer waits for the close");
    assert!(!c.offered(0));

    // Close: the host stops touching the rings and acknowledges.
    let seq = guest_close(&b, 0);
    b.host.poll_control();
    assert!(offer.join().unwrap().is_ok(), "offered once closed");
    assert_eq!(c.offer_seq(0), 3);
    b.host.rescind(Some(0)).unwrap();
    assert_eq!(c.open_ack(0), seq);
    assert_eq!(c.host_status(0), 0);
    assert!(b.host.status().contains("ch0 offered=0 open=0 served=4"));
    let dr = small_request(&mut b.g, 1);
    send.write_packet(&dr.packet(500)).unwrap();
    b.to_host[1].ring();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        recv.read_packet().is_none(),
        "a closed channel is not served"
    );

    // Re-offer: a new instance.
    b.host.offer(Some(0)).unwrap();
    assert!(c.offered(0));
    assert_eq!(c.offer_seq(0), 5);
    assert_ne!(c.instance(0), inst);
}

#[test]
fn reoffer_of_a_channel_the_guest_never_closes_times_out() {
    let mut b = bed();
    Arc::get_mut(&mut b.host).unwrap().close_wait = Duration::from_millis(300);
    b.host.offer(Some(0)).unwrap();
    let s = b.g.alloc_ring(3);
    let r = b.g.alloc_ring(3);
    guest_open(&b, 0, &s, &r);
    b.host.poll_control();
    b.host.rescind(Some(0)).unwrap();
    let t = Instant::now();
    let e = b.host.offer(Some(0)).unwrap_err();
    assert!(e.contains("has not closed it"), "{e}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Other channels are not held up.
    b.host.offer(None).unwrap();
    assert!(b.host.control().offered(1));
}

#[test]
fn open_with_bad_ring_layout_is_refused() {
    let mut b = bed();
    b.host.offer(Some(0)).unwrap();
    let c = b.host.control();
    // One page per ring: no data pages.
    let s = b.g.alloc_ring(1);
    let r = b.g.alloc_ring(1);
    guest_open(&b, 0, &s, &r);
    c.guest_store(0, chan_field::SEND_PAGES, 1);
    b.host.poll_control();
    assert_eq!(c.host_status(0), 22);
    // Ring pages outside guest RAM.
    let seq = guest_open(&b, 0, &s, &r);
    c.guest_store_pfn(0, 1, 1 << 40);
    b.host.poll_control();
    assert_eq!(c.open_ack(0), seq);
    assert_eq!(c.host_status(0), 22);
    // Too many pages.
    guest_open(&b, 0, &s, &r);
    c.guest_store(0, chan_field::SEND_PAGES, 100);
    c.guest_store(0, chan_field::RECV_PAGES, 100);
    b.host.poll_control();
    assert_eq!(c.host_status(0), 22);
    assert!(b.host.status().contains("ch0 offered=1 open=0"));
}

#[test]
fn guest_restart_detaches_from_old_rings() {
    let mut b = bed();
    b.host.offer(Some(0)).unwrap();
    let c = b.host.control();
    let s = b.g.alloc_ring(3);
    let r = b.g.alloc_ring(3);
    guest_open(&b, 0, &s, &r);
    b.host.poll_control();
    assert!(b.host.status().contains("ch0 offered=1 open=1"));
    // guest_gen lives before the channels: write it through the raw page.
    c.raw_store(20, c.raw_load(20) + 1);
    b.host.poll_control();
    assert!(b.host.status().contains("ch0 offered=1 open=0"));
}

#[test]
fn control_socket_commands() {
    let b = bed();
    let (client, server) = UnixStream::pair().unwrap();
    let quit = Arc::new(AtomicBool::new(false));
    let host = b.host.clone();
    let q = quit.clone();
    let t = std::thread::spawn(move || {
        serve_control_client(&*host, server, &|| q.store(true, Ordering::Release));
    });
    let mut w = client.try_clone().unwrap();
    let mut lines = BufReader::new(client).lines();
    let mut ask = |cmd: &str| -> String {
        w.write_all(cmd.as_bytes()).unwrap();
        lines.next().unwrap().unwrap()
    };
    assert!(ask("status\r\n").starts_with("ok host_gen=1 guest_gen=0; ch0 offered=0"));
    // Empty lines are ignored: the next answer is for `offer`.
    assert!(ask("\n\r\n\noffer\n").starts_with("ok offered channel 0 instance "));
    assert!(ask("offer 2\r\n").starts_with("ok offered channel 2 "));
    assert_eq!(ask("offer 2\n"), "err channel 2 is already offered");
    assert!(ask("offer 9\n").starts_with("err bad channel '9'"));
    assert!(ask("offer x\n").starts_with("err bad channel 'x'"));
    assert!(ask("status\n").contains("ch2 offered=1 open=0 served=0 errors=0 broken=0"));
    assert_eq!(ask("rescind 2\n"), "ok rescinded channel 2 completed=0");
    assert_eq!(ask("rescind 2\n"), "err channel 2 is not offered");
    assert_eq!(ask("rescind\n"), "ok rescinded channel 0 completed=0");
    assert_eq!(ask("rescind\n"), "err no channel is offered");
    // Our own answers echoed back by a guest tty are not commands.
    assert!(ask("ok offered channel 0\r\nerr x\r\nfrobnicate 1\n")
        .starts_with("err unknown command 'frobnicate'"));
    assert!(ask("status 1\n").starts_with("err "));
    assert!(ask("offer 1 2\n").starts_with("err too many arguments"));
    let long = format!("{}\n", "x".repeat(5000));
    assert!(ask(&long).starts_with("err line longer than"));
    assert!(
        ask("status\n").starts_with("ok "),
        "usable after a long line"
    );
    assert!(!quit.load(Ordering::Acquire));
    assert_eq!(ask("quit\n"), "ok quitting");
    t.join().unwrap();
    assert!(quit.load(Ordering::Acquire));
    assert!(
        b.to_guest[0].take(),
        "offers and rescinds rang the control vector"
    );
}

#[test]
fn control_socket_serves_clients_at_once() {
    let b = bed();
    let mut threads = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (client, server) = UnixStream::pair().unwrap();
        let host = b.host.clone();
        threads.push(std::thread::spawn(move || {
            serve_control_client(&*host, server, &|| {});
        }));
        clients.push(client);
    }
    // Interleave: each client asks in turn, each gets its own answer.
    let mut readers: Vec<_> = clients
        .iter()
        .map(|c| BufReader::new(c.try_clone().unwrap()).lines())
        .collect();
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            let cmd = if round == 0 {
                format!("offer {i}\n")
            } else {
                "status\n".into()
            };
            c.write_all(cmd.as_bytes()).unwrap();
        }
        for (i, r) in readers.iter_mut().enumerate() {
            let line = r.next().unwrap().unwrap();
            if round == 0 {
                assert!(
                    line.starts_with(&format!("ok offered channel {i} ")),
                    "{line}"
                );
            } else {
                assert!(line.contains("ch0 offered=1") && line.contains("ch2 offered=1"));
            }
        }
    }
    drop(readers);
    drop(clients);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn two_channels_are_served_independently_on_their_own_vectors() {
    let mut b = bed();
    b.host.offer(None).unwrap();
    b.host.offer(None).unwrap();
    let c = b.host.control();
    assert!(c.offered(0) && c.offered(1));
    assert_ne!(c.instance(0), c.instance(1));
    let mut rings = Vec::new();
    for ch in 0..2 {
        let s = b.g.alloc_ring(7);
        let r = b.g.alloc_ring(7);
        let seq = guest_open(&b, ch, &s, &r);
        rings.push((s, r, seq));
    }
    b.host.poll_control();
    for (ch, (_, _, seq)) in rings.iter().enumerate() {
        assert_eq!(c.open_ack(ch), *seq);
        assert_eq!(c.host_status(ch), 0);
    }
    // Drain interrupts from the opens, then one request on channel 1 only.
    for d in &b.to_guest {
        d.take();
    }
    let dr = small_request(&mut b.g, 0x51);
    rings[1].0.write_packet(&dr.packet(1)).unwrap();
    b.to_host[2].ring();
    let comp = decode_completion(&wait_packet(&mut rings[1].1));
    assert_eq!((comp.trans_id, comp.status), (1, 0));
    assert!(
        b.to_guest[2].wait(Duration::from_secs(1)),
        "vector 2 = channel 1"
    );
    assert!(!b.to_guest[1].take(), "channel 0's vector stays quiet");
    assert!(rings[0].1.read_packet().is_none());
    // Then channel 0.
    let dr = small_request(&mut b.g, 0x50);
    rings[0].0.write_packet(&dr.packet(7)).unwrap();
    b.to_host[1].ring();
    let comp = decode_completion(&wait_packet(&mut rings[0].1));
    assert_eq!((comp.trans_id, comp.status), (7, 0));
    assert!(b.to_guest[1].wait(Duration::from_secs(1)));
    // A request is counted right after its completion is written.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut st = b.host.status();
    while !(st.contains("ch0 offered=1 open=1 served=1")
        && st.contains("ch1 offered=1 open=1 served=1"))
    {
        assert!(Instant::now() < deadline, "{st}");
        std::thread::sleep(Duration::from_millis(5));
        st = b.host.status();
    }
    b.host.stop_all("test end");
    assert!(b.host.status().contains("ch1 offered=1 open=0"));
}

/// A host on memory that outlives it, as the broker keeps it.
fn host_on(vm: &VmResources, ram: &Arc<GuestRam>) -> Host {
    Host::with_state(
        ControlPage::from_fd(vm.ivshmem.shm.try_clone().unwrap()).unwrap(),
        Arc::new(HostState::from_fd(vm.state.try_clone().unwrap()).unwrap()),
        vm.ivshmem.to_host.clone(),
        vm.ivshmem.to_guest.clone(),
        RamSource::Fixed(ram.clone()),
        Box::new(|_| -> Box<dyn RequestHandler> { Box::new(EchoHandler) }),
    )
    .unwrap()
}

/// Fault `duplicate`: the second completion is published with the first,
/// so a guest that reads the first finds the duplicate right behind it,
/// while the id is still free (the case its validation drops), never later
/// when the id may belong to the next request.
#[test]
fn a_duplicate_completion_arrives_with_the_first() {
    let vm = VmResources::new(NR_VECTORS).unwrap();
    let mut g = Guest::new(32 << 20);
    let ram = g.ram.clone();
    let a = host_on(&vm, &ram);
    let c = a.control();
    a.offer(Some(0)).unwrap();
    let mut send = g.alloc_ring(7);
    let mut recv = g.alloc_ring(7);
    let seq = open_channel(c, 0, &send, &recv);
    a.poll_control();
    assert_eq!(c.open_ack(0), seq);
    assert!(a
        .handle_command("fault duplicate 2")
        .reply
        .starts_with("ok"));
    for tag in [5u64, 6] {
        let dr = small_request(&mut g, tag);
        let before = recv.load(RING_WRITE_INDEX);
        send.write_packet(&dr.packet(tag)).unwrap();
        vm.ivshmem.to_host[1].ring();
        // Watch the write index: its first move must cover both packets
        // (32 bytes and an 8-byte trailer each).
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut now = before;
        while now == before {
            assert!(Instant::now() < deadline, "no completion");
            std::hint::spin_loop();
            now = recv.load(RING_WRITE_INDEX);
        }
        assert_eq!(
            now - before,
            2 * 40,
            "the duplicate came in a later publish"
        );
        let first = decode_completion(&wait_packet(&mut recv));
        let (second, _) = recv
            .read_packet()
            .expect("the duplicate was not published with the first completion");
        assert_eq!(first, decode_completion(&second));
        assert_eq!((first.trans_id, first.status), (tag, 0));
        assert_eq!(dr.response.read(&g.ram, 8), tag.to_le_bytes());
    }
    // The plan is used up: the next one comes once.
    let dr = small_request(&mut g, 7);
    send.write_packet(&dr.packet(7)).unwrap();
    vm.ivshmem.to_host[1].ring();
    assert_eq!(decode_completion(&wait_packet(&mut recv)).trans_id, 7);
    std::thread::sleep(Duration::from_millis(50));
    assert!(recv.read_packet().is_none(), "a third duplicate");
    a.stop_all("test done");
}

#[test]
fn a_new_host_takes_over_and_fails_what_the_old_one_had_taken() {
    let vm = VmResources::new(NR_VECTORS).unwrap();
    let mut g = Guest::new(32 << 20);
    let ram = g.ram.clone();
    let a = Arc::new(host_on(&vm, &ram));
    assert!(!a.reattached());
    let c = a.control();
    a.offer(Some(0)).unwrap();
    a.offer(Some(1)).unwrap();
    a.offer(Some(2)).unwrap();
    // The guest opens channels 0 and 1.
    let mut send = g.alloc_ring(7);
    let mut recv = g.alloc_ring(7);
    let seq0 = open_channel(c, 0, &send, &recv);
    let s1 = g.alloc_ring(3);
    let r1 = g.alloc_ring(3);
    open_channel(c, 1, &s1, &r1);
    a.poll_control();
    assert_eq!(c.open_ack(0), seq0);
    // One request answered as usual.
    let dr = small_request(&mut g, 1);
    send.write_packet(&dr.packet(1)).unwrap();
    vm.ivshmem.to_host[1].ring();
    assert_eq!(decode_completion(&wait_packet(&mut recv)).status, 0);
    // Three held: taken off the ring, not answered.
    assert!(a.handle_command("fault hold").reply.starts_with("ok"));
    let held: Vec<DriverRequest> = (0..3).map(|i| small_request(&mut g, 10 + i)).collect();
    for (i, dr) in held.iter().enumerate() {
        send.write_packet(&dr.packet(20 + i as u64)).unwrap();
    }
    vm.ivshmem.to_host[1].ring();
    let journal = Arc::new(HostState::from_fd(vm.state.try_clone().unwrap()).unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while journal.channel(0).in_use() != 3 {
        assert!(Instant::now() < deadline, "the 3 requests were not taken");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The host dies: its workers stop, nothing more reaches the rings.
    a.stop_all("test: the process dies");
    drop(a);
    assert!(recv.read_packet().is_none());
    // While no host runs, the guest sends one more and closes channel 1.
    let late = small_request(&mut g, 99);
    send.write_packet(&late.packet(30)).unwrap();
    let c2 = ControlPage::from_fd(vm.ivshmem.shm.try_clone().unwrap()).unwrap();
    c2.guest_store(1, chan_field::STATE, VMBUS_SIM_STATE_CLOSED);
    let close_seq = c2.guest_state(1).open_seq + 1;
    c2.guest_store(1, chan_field::OPEN_SEQ, close_seq);

    // The next host process.
    let b = host_on(&vm, &ram);
    assert!(b.reattached());
    assert_eq!(b.adopted(), &[0], "only the open, acknowledged channel");
    let c = b.control();
    assert_eq!(c.host_gen(), 2);
    assert_eq!(
        (c.offer_seq(0), c.offer_seq(1), c.offer_seq(2)),
        (1, 1, 1),
        "no new offers"
    );
    // The three come back failed, not replayed; the late one is served.
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(decode_completion(&wait_packet(&mut recv)));
    }
    for (i, comp) in got.iter().take(3).enumerate() {
        assert_eq!(
            *comp,
            Comp {
                trans_id: 20 + i as u64,
                status: HOST_RESTARTED_STATUS,
                response_len: 0
            }
        );
        // Held requests were carried out (the echo wrote its bytes) before
        // the host died: hence a failure status, and no replay.
        assert_eq!(
            held[i].response.read(&g.ram, 8),
            (10 + i as u64).to_le_bytes()
        );
    }
    assert_eq!(
        (got[3].trans_id, got[3].status, got[3].response_len),
        (30, 0, 8)
    );
    assert_eq!(late.response.read(&g.ram, 8), 99u64.to_le_bytes());
    assert!(recv.read_packet().is_none(), "nothing twice");
    assert_eq!(journal.channel(0).in_use(), 0);
    // The close made while no host ran is acknowledged now.
    b.poll_control();
    assert_eq!(c.open_ack(1), close_seq);
    let st = b.status();
    assert!(
        st.contains("ch0 offered=1 open=1")
            && st.contains("ch1 offered=1 open=0")
            && st.contains("ch2 offered=1 open=0"),
        "{st}"
    );
    // And it serves on, without the dead host's faults.
    let dr = small_request(&mut g, 5);
    send.write_packet(&dr.packet(40)).unwrap();
    vm.ivshmem.to_host[1].ring();
    assert_eq!(
        decode_completion(&wait_packet(&mut recv)),
        Comp {
            trans_id: 40,
            status: 0,
            response_len: 8
        }
    );
    // A channel rescinded, then the host dies before the guest closes it:
    // the next host still serves it until the close.
    let b = Arc::new(b);
    b.rescind(Some(0)).unwrap();
    b.stop_all("test: the process dies again");
    drop(b);
    let b2 = host_on(&vm, &ram);
    assert_eq!(b2.adopted(), &[0]);
    assert!(b2.status().contains("ch0 offered=0 open=1"));
    b2.stop_all("test end");
}
