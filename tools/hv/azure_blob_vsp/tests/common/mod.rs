// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The guest side, in test code: what the Linux guest does with its rings
//! (write GPA-direct packets with the trailer into the send ring, read
//! completions from the receive ring) and how the driver lays out a request.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_blob_vsp::control::ControlPage;
use hv_azure_blob_proto::sim_shm::{chan_field, VMBUS_SIM_STATE_OPEN};

use azure_blob_vsp::doorbell::Doorbell;
use azure_blob_vsp::guest_ram::GuestRam;
use azure_blob_vsp::vsp::{ChannelServer, ChannelShared, ChannelStats, EchoHandler};
use hv_azure_blob_proto::{
    AzBlobVspRequest, AzBlobVspResponse, VmPacketDescriptor, AZ_BLOB_DRIVER_USER_REQUEST,
    RING_FEATURE_BITS, RING_INTERRUPT_MASK, RING_PENDING_SEND_SZ, RING_READ_INDEX,
    RING_WRITE_INDEX, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, VM_PKT_COMP,
    VM_PKT_DATA_USING_GPA_DIRECT,
};
use zerocopy::{FromBytes, IntoBytes};

pub const PAGE: u64 = 4096;

/// Guest memory with a bump page allocator.
pub struct Guest {
    pub ram: Arc<GuestRam>,
    next_pfn: u64,
}

impl Guest {
    pub fn new(bytes: usize) -> Self {
        Self {
            ram: Arc::new(GuestRam::anonymous(bytes).unwrap()),
            next_pfn: 16,
        }
    }

    /// Uses existing guest RAM (e.g. a shared file).
    pub fn with_ram(ram: Arc<GuestRam>) -> Self {
        Self { ram, next_pfn: 16 }
    }

    /// Allocates `n` pages, deliberately not contiguous in order: every
    /// other page is skipped so that PFN order matters.
    pub fn alloc_pages(&mut self, n: usize) -> Vec<u64> {
        let v: Vec<u64> = (0..n as u64).map(|i| self.next_pfn + 2 * i).collect();
        self.next_pfn += 2 * n as u64 + 1;
        v
    }

    /// Allocates contiguous pages.
    pub fn alloc_contig(&mut self, n: usize) -> Vec<u64> {
        let v: Vec<u64> = (0..n as u64).map(|i| self.next_pfn + i).collect();
        self.next_pfn += n as u64;
        v
    }

    /// A ring: control page + `data_pages` pages, indices zeroed.
    pub fn alloc_ring(&mut self, data_pages: usize) -> GuestRing {
        let pfns = self.alloc_pages(1 + data_pages);
        for pfn in &pfns {
            self.ram.write(pfn * PAGE, &[0u8; PAGE as usize]).unwrap();
        }
        GuestRing {
            ram: self.ram.clone(),
            pfns,
            size: (data_pages as u64 * PAGE) as u32,
            local_index: 0,
        }
    }
}

/// A ring seen from the guest.
pub struct GuestRing {
    pub ram: Arc<GuestRam>,
    pub pfns: Vec<u64>,
    pub size: u32,
    /// The guest's write index (send ring) or read index (receive ring).
    pub local_index: u32,
}

impl GuestRing {
    fn ctl(&self, field: usize) -> u64 {
        self.pfns[0] * PAGE + field as u64
    }
    pub fn load(&self, field: usize) -> u32 {
        self.ram
            .load_u32(self.ctl(field), Ordering::Acquire)
            .unwrap()
    }
    pub fn store(&self, field: usize, v: u32) {
        self.ram
            .store_u32(self.ctl(field), v, Ordering::Release)
            .unwrap()
    }
    fn copy_in(&self, mut off: u32, data: &[u8]) {
        for b in data {
            let page = self.pfns[1 + (off / PAGE as u32) as usize];
            self.ram
                .write(page * PAGE + u64::from(off) % PAGE, &[*b])
                .unwrap();
            off = (off + 1) % self.size;
        }
    }
    fn copy_out(&self, mut off: u32, out: &mut [u8]) {
        for b in out.iter_mut() {
            let page = self.pfns[1 + (off / PAGE as u32) as usize];
            let mut x = [0u8];
            self.ram
                .read(page * PAGE + u64::from(off) % PAGE, &mut x)
                .unwrap();
            *b = x[0];
            off = (off + 1) % self.size;
        }
    }
    fn used(&self, w: u32, r: u32) -> u32 {
        (w + self.size - r) % self.size
    }

    /// Writes a packet + trailer as Linux's hv_ringbuffer_write does.
    /// Returns None if it does not fit, else Some(signal the host?).
    pub fn write_packet(&mut self, pkt: &[u8]) -> Option<bool> {
        assert_eq!(pkt.len() % 8, 0);
        let total = pkt.len() as u32 + 8;
        let r = self.load(RING_READ_INDEX);
        let free = self.size - self.used(self.local_index, r);
        if free <= total {
            return None;
        }
        let old = self.local_index;
        self.copy_in(old, pkt);
        self.copy_in(
            (old + pkt.len() as u32) % self.size,
            &(u64::from(old) << 32).to_le_bytes(),
        );
        self.local_index = (old + total) % self.size;
        fence(Ordering::SeqCst);
        self.store(RING_WRITE_INDEX, self.local_index);
        fence(Ordering::SeqCst);
        Some(self.load(RING_INTERRUPT_MASK) == 0 && self.load(RING_READ_INDEX) == old)
    }

    /// Reads one packet from the receive ring; checks the trailer.
    /// Returns (packet, signal the host writer?).
    pub fn read_packet(&mut self) -> Option<(Vec<u8>, bool)> {
        let w = self.load(RING_WRITE_INDEX);
        let avail = self.used(w, self.local_index);
        if avail == 0 {
            return None;
        }
        let mut d = [0u8; 16];
        self.copy_out(self.local_index, &mut d);
        let desc = VmPacketDescriptor::read_from_bytes(&d[..]).unwrap();
        let len = u32::from(desc.len8) * 8;
        assert!(len + 8 <= avail, "host wrote a short packet");
        let mut pkt = vec![0u8; len as usize];
        self.copy_out(self.local_index, &mut pkt);
        let mut t = [0u8; 8];
        self.copy_out((self.local_index + len) % self.size, &mut t);
        assert_eq!(
            u64::from_le_bytes(t),
            u64::from(self.local_index) << 32,
            "trailer must be (u64)old_write_index << 32"
        );
        self.local_index = (self.local_index + len + 8) % self.size;
        self.store(RING_READ_INDEX, self.local_index);
        fence(Ordering::SeqCst);
        // hv_pkt_iter_close: signal if the writer waits and this read made
        // the room cross its pending_send_sz. Both amounts use the write
        // index read now, after the read index was published.
        let mut signal = false;
        if self.load(RING_FEATURE_BITS) & 1 != 0 {
            let pending = self.load(RING_PENDING_SEND_SZ);
            let now = self.size - self.used(self.load(RING_WRITE_INDEX), self.local_index);
            let before = now.saturating_sub(len + 8);
            if pending != 0 && now > pending && before <= pending {
                signal = true;
            }
        }
        Some((pkt, signal))
    }
}

/// A completion as the guest decodes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Comp {
    pub trans_id: u64,
    pub status: u32,
    pub response_len: u32,
}

pub fn decode_completion(pkt: &[u8]) -> Comp {
    assert_eq!(pkt.len(), 32, "completion is 32 bytes");
    let desc = VmPacketDescriptor::read_from_bytes(&pkt[..16]).unwrap();
    assert_eq!(desc.kind, VM_PKT_COMP);
    assert_eq!(desc.offset8, 2);
    assert_eq!(desc.len8, 4);
    assert_eq!(desc.flags, 0);
    let resp = AzBlobVspResponse::read_from_bytes(&pkt[16..28]).unwrap();
    assert_eq!(resp.length, 12);
    assert_eq!(&pkt[28..32], &[0; 4]);
    Comp {
        trans_id: desc.trans_id,
        status: resp.error,
        response_len: resp.response_len,
    }
}

/// Builds a GPA-direct packet exactly as the driver does.
pub fn gpa_direct_packet(
    trans_id: u64,
    byte_offset: u32,
    byte_count: u32,
    pfns: &[u64],
    req: &AzBlobVspRequest,
) -> Vec<u8> {
    let desc_size = 32 + 8 * pfns.len();
    let total = desc_size + std::mem::size_of::<AzBlobVspRequest>();
    let len8 = total.div_ceil(8);
    let mut p = Vec::with_capacity(len8 * 8);
    p.extend_from_slice(
        VmPacketDescriptor {
            kind: VM_PKT_DATA_USING_GPA_DIRECT,
            offset8: (desc_size / 8) as u16,
            len8: len8 as u16,
            flags: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
            trans_id,
        }
        .as_bytes(),
    );
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&byte_count.to_le_bytes());
    p.extend_from_slice(&byte_offset.to_le_bytes());
    for pfn in pfns {
        p.extend_from_slice(&pfn.to_le_bytes());
    }
    p.extend_from_slice(req.as_bytes());
    p.resize(len8 * 8, 0);
    p
}

/// A user buffer in guest memory: its pages and its offset in the first.
#[derive(Debug, Clone)]
pub struct Buf {
    pub pfns: Vec<u64>,
    pub start: u32,
    pub len: u32,
}

impl Buf {
    pub fn new(g: &mut Guest, start: u32, len: u32) -> Self {
        let pages = (u64::from(start) + u64::from(len)).div_ceil(PAGE).max(1) as usize;
        Self {
            pfns: g.alloc_pages(pages),
            start,
            len,
        }
    }
    pub fn write(&self, ram: &GuestRam, data: &[u8]) {
        let mut i = 0usize;
        while i < data.len() {
            let abs = u64::from(self.start) + i as u64;
            let chunk = ((PAGE - abs % PAGE) as usize).min(data.len() - i);
            ram.write(
                self.pfns[(abs / PAGE) as usize] * PAGE + abs % PAGE,
                &data[i..i + chunk],
            )
            .unwrap();
            i += chunk;
        }
    }
    pub fn read(&self, ram: &GuestRam, n: usize) -> Vec<u8> {
        let mut all = vec![0u8; self.pfns.len() * PAGE as usize];
        for (i, pfn) in self.pfns.iter().enumerate() {
            ram.read(
                pfn * PAGE,
                &mut all[i * PAGE as usize..(i + 1) * PAGE as usize],
            )
            .unwrap();
        }
        all[self.start as usize..self.start as usize + n].to_vec()
    }
}

/// A request as the driver builds it from the ioctl struct.
pub struct DriverRequest {
    pub data: Option<Buf>,
    pub request: Buf,
    pub response: Buf,
    pub data_valid: u32,
    pub pfns: Vec<u64>,
    pub vsp: AzBlobVspRequest,
}

impl DriverRequest {
    /// Lays out data pages, request pages, response pages in one range at
    /// offset 0 (v5), with each buffer's offset inside its first page.
    pub fn new(data: Option<Buf>, data_valid: u32, request: Buf, response: Buf) -> Self {
        let mut pfns = Vec::new();
        let mut vsp = AzBlobVspRequest {
            version: 0,
            timeout_ms: 30_000,
            operation_type: AZ_BLOB_DRIVER_USER_REQUEST,
            transaction_id: *b"0123456789abcdef",
            ..Default::default()
        };
        if let Some(d) = &data {
            vsp.data_buffer_offset = d.start;
            vsp.data_buffer_length = d.len;
            vsp.data_buffer_valid = data_valid;
            pfns.extend_from_slice(&d.pfns);
        }
        vsp.request_buffer_offset = request.start + (pfns.len() as u32) * PAGE as u32;
        vsp.request_buffer_length = request.len;
        pfns.extend_from_slice(&request.pfns);
        vsp.response_buffer_offset = response.start + (pfns.len() as u32) * PAGE as u32;
        vsp.response_buffer_length = response.len;
        pfns.extend_from_slice(&response.pfns);
        Self {
            data,
            request,
            response,
            data_valid,
            pfns,
            vsp,
        }
    }

    pub fn packet(&self, trans_id: u64) -> Vec<u8> {
        gpa_direct_packet(
            trans_id,
            0,
            (self.pfns.len() as u64 * PAGE) as u32,
            &self.pfns,
            &self.vsp,
        )
    }
}

/// The echo handler's expected data buffer.
pub fn expected_data(input: &[u8], data_len: usize) -> Vec<u8> {
    (0..data_len)
        .map(|i| match input.get(i) {
            Some(b) => b ^ 0x5a,
            None => (i as u8) ^ 0xa5,
        })
        .collect()
}

/// Deterministic test bytes.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8)
        .collect()
}

/// A channel: the guest's two rings and the VSP serving them.
pub struct Chan {
    pub send: GuestRing,
    pub recv: GuestRing,
    pub server: ChannelServer,
    pub to_guest: Arc<Doorbell>,
    pub from_guest: Arc<Doorbell>,
    pub shared: Arc<ChannelShared>,
    pub stats: Arc<ChannelStats>,
}

pub fn channel(g: &mut Guest, send_data_pages: usize, recv_data_pages: usize) -> Chan {
    channel_with(g, send_data_pages, recv_data_pages, Box::new(EchoHandler))
}

pub fn channel_with(
    g: &mut Guest,
    send_data_pages: usize,
    recv_data_pages: usize,
    handler: Box<dyn azure_blob_vsp::vsp::RequestHandler>,
) -> Chan {
    let send = g.alloc_ring(send_data_pages);
    let recv = g.alloc_ring(recv_data_pages);
    let to_guest = Arc::new(Doorbell::new().unwrap());
    let from_guest = Arc::new(Doorbell::new().unwrap());
    let shared = Arc::new(ChannelShared::default());
    let stats = Arc::new(ChannelStats::default());
    let server = ChannelServer::new(
        0,
        g.ram.clone(),
        &send.pfns,
        &recv.pfns,
        handler,
        to_guest.clone(),
        from_guest.clone(),
        shared.clone(),
        stats.clone(),
    )
    .unwrap();
    Chan {
        send,
        recv,
        server,
        to_guest,
        from_guest,
        shared,
        stats,
    }
}

impl Chan {
    /// Sends one packet, serves it, returns its completion.
    pub fn round_trip(&mut self, pkt: &[u8]) -> Comp {
        self.send.write_packet(pkt).expect("send ring full");
        self.server.drain().unwrap();
        let (c, _) = self.recv.read_packet().expect("no completion");
        assert!(
            self.recv.read_packet().is_none(),
            "one completion per request"
        );
        decode_completion(&c)
    }
}

/// The fake QEMU side of the ivshmem protocol: receives `n` messages, each
/// an 8-byte little-endian integer with at most one fd.
pub fn recv_ivshmem_msgs(
    sock: &std::os::unix::net::UnixStream,
    n: usize,
) -> Vec<(i64, Option<std::os::fd::OwnedFd>)> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::io::IoSliceMut;
    use std::mem::MaybeUninit;
    let mut out = Vec::new();
    for _ in 0..n {
        let mut bytes = [0u8; 8];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut bytes)];
        let r = recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC).unwrap();
        assert_eq!(r.bytes, 8, "each message is one 8-byte integer");
        let mut fd = None;
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = msg {
                for f in fds {
                    assert!(fd.is_none(), "at most one fd per message");
                    fd = Some(f);
                }
            }
        }
        out.push((i64::from_le_bytes(bytes), fd));
    }
    out
}

/// Polls `f` until it holds; fails the test after 20 s.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Connects to the UNIX socket `p` once its server has made it.
pub fn connect(p: &Path) -> UnixStream {
    wait_for("the socket", || p.exists());
    UnixStream::connect(p).unwrap()
}

/// A child process (a VSP, a broker), killed if the test ends before it.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Rings a doorbell eventfd.
pub fn ring_fd(fd: &std::os::fd::OwnedFd) {
    rustix::io::write(fd, &1u64.to_ne_bytes()).unwrap();
}

/// The guest's open of channel `ch` in the control page: ring_pfn[], page
/// counts, state = OPEN, open_seq += 1. Returns the new open_seq.
pub fn open_channel(c: &ControlPage, ch: usize, send: &GuestRing, recv: &GuestRing) -> u32 {
    for (i, pfn) in send.pfns.iter().chain(recv.pfns.iter()).enumerate() {
        c.guest_store_pfn(ch, i, *pfn);
    }
    c.guest_store(ch, chan_field::SEND_PAGES, send.pfns.len() as u32);
    c.guest_store(ch, chan_field::RECV_PAGES, recv.pfns.len() as u32);
    c.guest_store(ch, chan_field::STATE, VMBUS_SIM_STATE_OPEN);
    let seq = c.guest_state(ch).open_seq + 1;
    c.guest_store(ch, chan_field::OPEN_SEQ, seq);
    seq
}

/// The next packet of the receive ring; fails the test if none comes.
pub fn wait_packet(r: &mut GuestRing) -> Vec<u8> {
    let mut p = None;
    wait_for("a completion", || {
        p = r.read_packet();
        p.is_some()
    });
    p.unwrap().0
}

/// A guest RAM file of `bytes` (what QEMU's memory-backend-file makes).
pub fn guest_ram_file(path: &Path, bytes: u64) {
    std::fs::File::create(path).unwrap().set_len(bytes).unwrap();
}

/// Starts `cmd` with no input or output and its standard error in `log`.
pub fn spawn_logged(cmd: &mut std::process::Command, log: &Path) -> ChildGuard {
    use std::process::Stdio;
    ChildGuard(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap(),
    )
}
