// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The Azure Blob VSP: validates GPA-direct requests as strictly as the real
//! host, hands valid ones to a [`RequestHandler`], writes the handler's
//! response and data into the guest's pages and completes the packet.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hv_azure_blob_proto::{
    AzBlobCompletionPacket, AzBlobVspRequest, AzBlobVspResponse, GpaDirectHeader, GpaRange,
    VmPacketDescriptor, AZ_BLOB_DRIVER_USER_REQUEST, AZ_BLOB_MAX_PAGES,
    AZ_BLOB_STATUS_BUFFER_TOO_SMALL, AZ_BLOB_STATUS_INVALID_ARG, AZ_BLOB_STATUS_TIMEOUT,
    HV_PAGE_SIZE, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, VM_PKT_COMP,
    VM_PKT_DATA_USING_GPA_DIRECT, VSP_PROTOCOL_VERSION_V1,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::doorbell::Doorbell;
use crate::guest_ram::{GuestRam, PageSpan};
use crate::journal::{ChannelJournal, Slot, HOST_RESTARTED_STATUS};
use crate::ring::{IncomingRing, OutgoingRing, RingError, WriteOutcome};

/// A valid request, as the handler sees it.
#[derive(Debug)]
pub struct Request<'a> {
    /// The caller's 16-byte id (correlation only).
    pub transaction_id: [u8; 16],
    /// Host-side timeout in ms (0 = none).
    pub timeout_ms: u32,
    /// The request buffer (`request_buffer_length` bytes).
    pub request: &'a [u8],
    /// The valid input bytes of the data buffer (`data_buffer_valid` bytes).
    pub data_in: &'a [u8],
    /// Capacity of the response buffer.
    pub response_capacity: u32,
    /// Capacity of the data buffer (`data_buffer_length`).
    pub data_capacity: u32,
}

/// What a handler answers. The VSP writes `response` at the start of the
/// response buffer and `data` at the start of the data buffer, each cut to
/// its buffer's capacity, and reports `status` and `response_len`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// 0 or an `AZ_BLOB_STATUS_*` value.
    pub status: u32,
    /// Bytes for the response buffer.
    pub response: Vec<u8>,
    /// The `response_len` the guest sees (may differ from `response.len()`,
    /// e.g. the size needed with `AZ_BLOB_STATUS_BUFFER_TOO_SMALL`).
    pub response_len: u32,
    /// Bytes for the data buffer.
    pub data: Vec<u8>,
}

/// Serves valid requests. A blob-service handler will implement this too.
pub trait RequestHandler: Send {
    /// Handles one request.
    fn handle(&mut self, req: &Request<'_>) -> Reply;
}

/// The echo handler of the test bed:
/// - response buffer <- the request bytes, `response_len = request_length`;
///   if the response buffer is smaller than the request, status
///   `AZ_BLOB_STATUS_BUFFER_TOO_SMALL`, `response_len = request_length` and
///   nothing is written (neither response nor data);
/// - data buffer: `out[i] = in[i] ^ 0x5A` for `i < data_valid`,
///   `out[i] = (i as u8) ^ 0xA5` for `data_valid <= i < data_length`.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoHandler;

impl RequestHandler for EchoHandler {
    fn handle(&mut self, req: &Request<'_>) -> Reply {
        let request_len = u32::try_from(req.request.len()).unwrap_or(u32::MAX);
        if req.response_capacity < request_len {
            return Reply {
                status: AZ_BLOB_STATUS_BUFFER_TOO_SMALL,
                response: Vec::new(),
                response_len: request_len,
                data: Vec::new(),
            };
        }
        let data = (0..req.data_capacity as usize)
            .map(|i| match req.data_in.get(i) {
                Some(b) => b ^ 0x5a,
                None => (i as u8) ^ 0xa5,
            })
            .collect();
        Reply {
            status: 0,
            response: req.request.to_vec(),
            response_len: request_len,
            data,
        }
    }
}

/// A request that breaks a rule of the protocol; completed with
/// `AZ_BLOB_STATUS_INVALID_ARG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The packet's transaction id (echoed in the completion).
    pub trans_id: u64,
    /// The rule that failed, in words.
    pub rule: String,
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    /// The packet's transaction id.
    pub trans_id: u64,
    /// The VSP request.
    pub req: AzBlobVspRequest,
    /// The range's first-page offset.
    pub byte_offset: u32,
    /// The range's length.
    pub byte_count: u32,
    /// The range's pages, each inside guest RAM.
    pub pfns: Vec<u64>,
}

fn read_at<T: FromBytes>(pkt: &[u8], off: usize) -> Option<T> {
    let end = off.checked_add(std::mem::size_of::<T>())?;
    T::read_from_bytes(pkt.get(off..end)?).ok()
}

/// Checks a packet (descriptor included, trailer excluded) as the real host
/// would. The packet's len8/offset8 are already consistent with its length.
pub fn validate(pkt: &[u8], ram: &GuestRam) -> Result<ValidRequest, Rejection> {
    let desc: VmPacketDescriptor = read_at(pkt, 0).ok_or_else(|| Rejection {
        trans_id: 0,
        rule: "packet shorter than a descriptor".into(),
    })?;
    let trans_id = desc.trans_id;
    let reject = |rule: String| Rejection { trans_id, rule };
    if desc.kind != VM_PKT_DATA_USING_GPA_DIRECT {
        return Err(reject(format!(
            "packet type must be {VM_PKT_DATA_USING_GPA_DIRECT} (GPA direct), is {}",
            desc.kind
        )));
    }
    if desc.flags != VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED {
        return Err(reject(format!(
            "flags must be COMPLETION_REQUESTED (1), are {:#x}",
            desc.flags
        )));
    }
    let data_off = usize::from(desc.offset8) * 8;
    let pkt_len = usize::from(desc.len8) * 8;
    if pkt_len != pkt.len() || data_off > pkt_len {
        return Err(reject("offset8/len8 do not match the packet".into()));
    }
    let hdr: GpaDirectHeader = read_at(pkt, 16)
        .filter(|_| data_off >= 32)
        .ok_or_else(|| reject("no room for the GPA-direct header and range".into()))?;
    if hdr.range_count != 1 {
        return Err(reject(format!(
            "range_count must be 1, is {}",
            hdr.range_count
        )));
    }
    let range: GpaRange = read_at(pkt, 24).ok_or_else(|| reject("no room for the range".into()))?;
    if range.byte_offset >= HV_PAGE_SIZE {
        return Err(reject(format!(
            "range byte_offset must be < 4096, is {}",
            range.byte_offset
        )));
    }
    let span = u64::from(range.byte_offset) + u64::from(range.byte_count);
    let pages = span.div_ceil(u64::from(HV_PAGE_SIZE));
    if pages > u64::from(AZ_BLOB_MAX_PAGES) {
        return Err(reject(format!(
            "range spans {pages} pages, more than {AZ_BLOB_MAX_PAGES}"
        )));
    }
    let pfn_bytes = data_off - 32;
    if pfn_bytes as u64 != pages * 8 {
        return Err(reject(format!(
            "PFN count must be ceil((byte_offset + byte_count) / 4096) = {pages}, the packet holds {}",
            pfn_bytes / 8
        )));
    }
    let payload = &pkt[data_off..];
    if payload.len() != std::mem::size_of::<AzBlobVspRequest>() {
        return Err(reject(format!(
            "payload must be exactly a {}-byte az_blob_vsp_request, is {} bytes",
            std::mem::size_of::<AzBlobVspRequest>(),
            payload.len()
        )));
    }
    let req: AzBlobVspRequest = read_at(payload, 0)
        .ok_or_else(|| reject("payload is not an az_blob_vsp_request".into()))?;
    if req.version != VSP_PROTOCOL_VERSION_V1 {
        return Err(reject(format!("version must be 0, is {}", req.version)));
    }
    if req.operation_type != AZ_BLOB_DRIVER_USER_REQUEST {
        return Err(reject(format!(
            "operation_type must be {AZ_BLOB_DRIVER_USER_REQUEST:#x}, is {:#x}",
            req.operation_type
        )));
    }
    if req.request_buffer_length == 0 {
        return Err(reject("request_buffer_length must not be 0".into()));
    }
    if req.response_buffer_length == 0 {
        return Err(reject("response_buffer_length must not be 0".into()));
    }
    if req.data_buffer_valid > req.data_buffer_length {
        return Err(reject(format!(
            "data_buffer_valid {} exceeds data_buffer_length {}",
            req.data_buffer_valid, req.data_buffer_length
        )));
    }
    for (name, off, len) in [
        ("data", req.data_buffer_offset, req.data_buffer_length),
        (
            "request",
            req.request_buffer_offset,
            req.request_buffer_length,
        ),
        (
            "response",
            req.response_buffer_offset,
            req.response_buffer_length,
        ),
    ] {
        if u64::from(off) + u64::from(len) > u64::from(range.byte_count) {
            return Err(reject(format!(
                "{name} buffer {off}+{len} is outside the {}-byte range",
                range.byte_count
            )));
        }
    }
    let mut pfns = Vec::with_capacity(pages as usize);
    for i in 0..pages as usize {
        let pfn: u64 =
            read_at(pkt, 32 + 8 * i).ok_or_else(|| reject("PFN list is cut short".into()))?;
        if ram.page_gpa(pfn).is_err() {
            return Err(reject(format!(
                "PFN {pfn:#x} (entry {i}) is outside guest RAM"
            )));
        }
        pfns.push(pfn);
    }
    Ok(ValidRequest {
        trans_id,
        req,
        byte_offset: range.byte_offset,
        byte_count: range.byte_count,
        pfns,
    })
}

/// The outcome of one request: what goes into the completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Echoed transaction id.
    pub trans_id: u64,
    /// `az_blob_vsp_response.error`.
    pub status: u32,
    /// `az_blob_vsp_response.response_len`.
    pub response_len: u32,
}

impl Completion {
    /// The VM_PKT_COMP packet (32 bytes, trailer not included).
    pub fn packet(&self) -> AzBlobCompletionPacket {
        AzBlobCompletionPacket {
            desc: VmPacketDescriptor {
                kind: VM_PKT_COMP,
                offset8: 2,
                len8: 4,
                flags: 0,
                trans_id: self.trans_id,
            },
            response: AzBlobVspResponse {
                length: std::mem::size_of::<AzBlobVspResponse>() as u32,
                error: self.status,
                response_len: self.response_len,
            },
            pad: 0,
        }
    }
}

/// A valid request with its buffers copied out of guest memory, as handed
/// to a handler thread.
#[derive(Debug, Clone, Default)]
pub struct OwnedRequest {
    /// The caller's 16-byte id.
    pub transaction_id: [u8; 16],
    /// Host-side timeout in ms (0 = none).
    pub timeout_ms: u32,
    /// The request buffer.
    pub request: Vec<u8>,
    /// The valid input bytes of the data buffer.
    pub data_in: Vec<u8>,
    /// Capacity of the response buffer.
    pub response_capacity: u32,
    /// Capacity of the data buffer.
    pub data_capacity: u32,
}

impl OwnedRequest {
    /// The borrowed view handlers get.
    pub fn as_request(&self) -> Request<'_> {
        Request {
            transaction_id: self.transaction_id,
            timeout_ms: self.timeout_ms,
            request: &self.request,
            data_in: &self.data_in,
            response_capacity: self.response_capacity,
            data_capacity: self.data_capacity,
        }
    }
}

/// What became of a request handed to a handler.
#[derive(Debug)]
pub enum HandlerOutcome {
    /// The handler answered.
    Reply(Reply),
    /// `timeout_ms` passed first: completed with `AZ_BLOB_STATUS_TIMEOUT`,
    /// nothing written; the handler's late answer is dropped.
    TimedOut,
    /// The handler is gone (it panicked): completed with
    /// `AZ_BLOB_STATUS_TIMEOUT` ("the host gave up"), nothing written.
    Failed,
    /// The channel is being stopped: no completion is written.
    Stopped,
}

/// Serves one packet with a direct, synchronous call of `handler` (no
/// timeout). Returns the completion and, for a rejected packet, the rule it
/// broke.
pub fn serve_packet(
    pkt: &[u8],
    ram: &GuestRam,
    handler: &mut dyn RequestHandler,
) -> (Completion, Option<String>) {
    let mut call = |r: OwnedRequest| HandlerOutcome::Reply(handler.handle(&r.as_request()));
    match serve_packet_with(pkt, ram, &mut call) {
        Some(done) => done,
        // `call` never answers Stopped.
        None => (
            Completion {
                trans_id: 0,
                status: AZ_BLOB_STATUS_TIMEOUT,
                response_len: 0,
            },
            None,
        ),
    }
}

/// Serves one packet: validates it, copies the request and the valid data
/// out of guest memory, hands them to `call`, writes the answer into the
/// guest's buffers. Returns the completion and, for a rejected packet, the
/// rule it broke; `None` if the channel is stopping (no completion).
pub fn serve_packet_with(
    pkt: &[u8],
    ram: &GuestRam,
    call: &mut dyn FnMut(OwnedRequest) -> HandlerOutcome,
) -> Option<(Completion, Option<String>)> {
    let valid = match validate(pkt, ram) {
        Ok(v) => v,
        Err(r) => {
            return Some((
                Completion {
                    trans_id: r.trans_id,
                    status: AZ_BLOB_STATUS_INVALID_ARG,
                    response_len: 0,
                },
                Some(r.rule),
            ))
        }
    };
    let fail = |rule: String| {
        Some((
            Completion {
                trans_id: valid.trans_id,
                status: AZ_BLOB_STATUS_INVALID_ARG,
                response_len: 0,
            },
            Some(rule),
        ))
    };
    let span = PageSpan {
        pfns: &valid.pfns,
        first_offset: valid.byte_offset,
    };
    let r = &valid.req;
    let mut request = vec![0u8; r.request_buffer_length as usize];
    if let Err(e) = span.read(ram, r.request_buffer_offset.into(), &mut request) {
        return fail(format!("request buffer unreadable: {e}"));
    }
    let mut data_in = vec![0u8; r.data_buffer_valid as usize];
    if let Err(e) = span.read(ram, r.data_buffer_offset.into(), &mut data_in) {
        return fail(format!("data buffer unreadable: {e}"));
    }
    let gave_up = |why: &str| {
        tracing::warn!(
            "request {} {why}: completed with status {AZ_BLOB_STATUS_TIMEOUT:#x}, nothing written",
            valid.trans_id
        );
        Some((
            Completion {
                trans_id: valid.trans_id,
                status: AZ_BLOB_STATUS_TIMEOUT,
                response_len: 0,
            },
            None,
        ))
    };
    let reply = match call(OwnedRequest {
        transaction_id: r.transaction_id,
        timeout_ms: r.timeout_ms,
        request,
        data_in,
        response_capacity: r.response_buffer_length,
        data_capacity: r.data_buffer_length,
    }) {
        HandlerOutcome::Reply(reply) => reply,
        HandlerOutcome::TimedOut => {
            return gave_up(&format!("timed out after {} ms", r.timeout_ms))
        }
        HandlerOutcome::Failed => return gave_up("failed: the request handler is gone"),
        HandlerOutcome::Stopped => return None,
    };
    let data_len = reply.data.len().min(r.data_buffer_length as usize);
    let resp_len = reply.response.len().min(r.response_buffer_length as usize);
    if data_len < reply.data.len() || resp_len < reply.response.len() {
        tracing::warn!(
            "handler returned more bytes than the buffers hold; cut to {data_len} data and {resp_len} response bytes"
        );
    }
    if let Err(e) = span.write(ram, r.data_buffer_offset.into(), &reply.data[..data_len]) {
        return fail(format!("data buffer unwritable: {e}"));
    }
    if let Err(e) = span.write(
        ram,
        r.response_buffer_offset.into(),
        &reply.response[..resp_len],
    ) {
        return fail(format!("response buffer unwritable: {e}"));
    }
    Some((
        Completion {
            trans_id: valid.trans_id,
            status: reply.status,
            response_len: reply.response_len,
        },
        None,
    ))
}

/// A channel's request handler, running in its own thread so that the VSP
/// can give up on a request after its `timeout_ms`, as the real host does.
/// Requests are handled one after another.
pub struct HandlerThread {
    tx: mpsc::Sender<(u64, OwnedRequest)>,
    rx: mpsc::Receiver<(u64, Reply)>,
    seq: u64,
}

impl std::fmt::Debug for HandlerThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerThread")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl HandlerThread {
    /// Starts the thread. It ends when this object is dropped (once its
    /// current request, if any, is done).
    pub fn spawn(name: String, mut handler: Box<dyn RequestHandler>) -> std::io::Result<Self> {
        let (tx, req_rx) = mpsc::channel::<(u64, OwnedRequest)>();
        let (reply_tx, rx) = mpsc::channel::<(u64, Reply)>();
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok((seq, req)) = req_rx.recv() {
                let reply = handler.handle(&req.as_request());
                if reply_tx.send((seq, reply)).is_err() {
                    break;
                }
            }
        })?;
        Ok(Self { tx, rx, seq: 0 })
    }

    /// Hands `req` to the handler and waits for its answer, at most
    /// `timeout_ms` (0 = no limit); checks `stop` every `poll`.
    pub fn call(&mut self, req: OwnedRequest, stop: &AtomicBool, poll: Duration) -> HandlerOutcome {
        self.seq += 1;
        let seq = self.seq;
        let limit = (req.timeout_ms != 0).then(|| Duration::from_millis(req.timeout_ms.into()));
        if self.tx.send((seq, req)).is_err() {
            return HandlerOutcome::Failed;
        }
        let start = Instant::now();
        loop {
            let wait = match limit {
                Some(l) => l.saturating_sub(start.elapsed()).min(poll),
                None => poll,
            };
            match self.rx.recv_timeout(wait) {
                Ok((s, reply)) if s == seq => return HandlerOutcome::Reply(reply),
                // The late answer to a request that timed out: dropped.
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return HandlerOutcome::Failed,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if limit.is_some_and(|l| start.elapsed() >= l) {
                        return HandlerOutcome::TimedOut;
                    }
                    if stop.load(Ordering::Acquire) {
                        return HandlerOutcome::Stopped;
                    }
                }
            }
        }
    }
}

/// Counters of one channel, kept across opens.
#[derive(Debug, Default)]
pub struct ChannelStats {
    /// Requests completed (valid or rejected).
    pub served: AtomicU64,
    /// Requests rejected with INVALID_ARG.
    pub rejected: AtomicU64,
    /// Times the channel was found broken (malformed ring).
    pub broken: AtomicU64,
}

/// State shared between a channel's worker and the host's control logic.
#[derive(Debug, Default)]
pub struct ChannelShared {
    /// Set to make the worker stop touching the rings and exit.
    pub stop: AtomicBool,
    /// Bumped by a caller that wants everything pending completed.
    pub drain_requested: AtomicU64,
    /// Set by the worker to `drain_requested` once the ring was empty and
    /// every completion written.
    pub drained: AtomicU64,
    /// The worker found the ring malformed and stopped serving it.
    pub broken: AtomicBool,
    /// The worker has exited.
    pub exited: AtomicBool,
    /// The host's fault plan (shared by all channels).
    pub faults: Arc<std::sync::Mutex<crate::fault::FaultPlan>>,
}

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The ring is malformed; the channel is broken.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// Asked to stop.
    #[error("stopped")]
    Stopped,
}

/// How long a worker waits for a doorbell before it looks at its rings (and
/// its stop flag) anyway.
pub const DEFAULT_IDLE_POLL: Duration = Duration::from_millis(100);

/// One open channel, served by one thread.
pub struct ChannelServer {
    /// Channel number (for logs).
    pub channel: usize,
    ram: Arc<GuestRam>,
    incoming: IncomingRing,
    outgoing: OutgoingRing,
    handler: HandlerThread,
    /// Rings the guest (its channel vector).
    to_guest: Arc<Doorbell>,
    /// Rung by the guest (its channel vector).
    from_guest: Arc<Doorbell>,
    shared: Arc<ChannelShared>,
    stats: Arc<ChannelStats>,
    idle_poll: Duration,
    /// Completions kept back by `fault hold`.
    held: Vec<(Completion, Option<Slot>)>,
    /// The requests taken off the ring and not answered yet, kept where a
    /// VSP restarted after a crash finds them (see [`crate::journal`]).
    journal: Option<ChannelJournal>,
    /// Warned that the journal is full.
    journal_full_warned: bool,
}

impl std::fmt::Debug for ChannelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelServer")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl ChannelServer {
    /// Attaches to the channel's rings: `send` is the guest's send ring (the
    /// host's incoming ring), `recv` the guest's receive ring.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        channel: usize,
        ram: Arc<GuestRam>,
        send_pfns: &[u64],
        recv_pfns: &[u64],
        handler: Box<dyn RequestHandler>,
        to_guest: Arc<Doorbell>,
        from_guest: Arc<Doorbell>,
        shared: Arc<ChannelShared>,
        stats: Arc<ChannelStats>,
    ) -> Result<Self, RingError> {
        let incoming = IncomingRing::new(ram.clone(), send_pfns)?;
        let outgoing = OutgoingRing::new(ram.clone(), recv_pfns)?;
        let handler = HandlerThread::spawn(format!("vsp-ch{channel}-handler"), handler)
            .map_err(|e| RingError::Layout(format!("cannot start the handler thread: {e}")))?;
        Ok(Self {
            channel,
            ram,
            incoming,
            outgoing,
            handler,
            to_guest,
            from_guest,
            shared,
            stats,
            idle_poll: DEFAULT_IDLE_POLL,
            held: Vec::new(),
            journal: None,
            journal_full_warned: false,
        })
    }

    /// Journals every request taken off the ring until it is answered.
    pub fn set_journal(&mut self, journal: ChannelJournal) {
        self.journal = Some(journal);
    }

    /// Re-attachment after a VSP crash: completes, with
    /// [`HOST_RESTARTED_STATUS`] and `response_len` 0, every request the
    /// journal says a previous VSP took off the ring and did not answer.
    /// They are not replayed: they may have been carried out (and the dead
    /// VSP may have written their buffers). Returns how many.
    pub fn recover(&mut self) -> Result<usize, ServeError> {
        let Some(j) = self.journal.as_mut() else {
            return Ok(0);
        };
        let lost = j.recover(self.incoming.read_index(), self.outgoing.write_index());
        for (slot, trans_id) in &lost {
            let c = Completion {
                trans_id: *trans_id,
                status: HOST_RESTARTED_STATUS,
                response_len: 0,
            };
            self.complete(&c, Some(*slot))?;
        }
        if !lost.is_empty() {
            tracing::warn!(
                "channel {}: {} request(s) the previous VSP had taken off the ring and not answered: completed with status {HOST_RESTARTED_STATUS:#x} (not replayed)",
                self.channel,
                lost.len()
            );
        }
        Ok(lost.len())
    }

    /// Sets how long the worker waits for a doorbell before looking anyway.
    /// Whoever sets the stop flag should also ring the guest->host doorbell
    /// so that the worker notices at once.
    pub fn set_idle_poll(&mut self, d: Duration) {
        self.idle_poll = d;
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// Writes one completion, waiting for room if the ring is full, and
    /// retires its journal entry.
    fn complete(&mut self, c: &Completion, slot: Option<Slot>) -> Result<(), ServeError> {
        self.complete_n(c, slot, false)
    }

    /// Completes `c`; with `twice`, sends its completion a second time
    /// right behind it (fault `duplicate`).
    fn complete_n(
        &mut self,
        c: &Completion,
        slot: Option<Slot>,
        twice: bool,
    ) -> Result<(), ServeError> {
        if let (Some(j), Some(s)) = (&self.journal, slot) {
            j.completing(s, self.outgoing.write_index());
        }
        let pkt = c.packet();
        if twice {
            // Both in one publish: the guest reads the duplicate while the
            // id is still free, the case its validation must drop. (A
            // duplicate sent later could meet the id already reused by the
            // next request, which no guest can tell from its answer.)
            self.write_packets(&[pkt.as_bytes(), pkt.as_bytes()])?;
        } else {
            self.write_packets(&[pkt.as_bytes()])?;
        }
        if let (Some(j), Some(s)) = (&mut self.journal, slot) {
            j.done(s);
        }
        Ok(())
    }

    /// Writes one packet into the guest's receive ring, waiting for room.
    fn write_packet(&mut self, bytes: &[u8]) -> Result<(), ServeError> {
        self.write_packets(&[bytes])
    }

    /// Writes packets into the guest's receive ring in one publish, waiting
    /// for room.
    fn write_packets(&mut self, pkts: &[&[u8]]) -> Result<(), ServeError> {
        let mut pending_set = false;
        loop {
            match self.outgoing.try_write_all(pkts)? {
                WriteOutcome::Written { signal } => {
                    if pending_set {
                        self.outgoing.set_pending_send_sz(0)?;
                    }
                    if signal {
                        self.to_guest.ring();
                    }
                    return Ok(());
                }
                WriteOutcome::Full { needed } => {
                    if !pending_set {
                        // Ask to be signalled, then look again before
                        // sleeping so that a read in between is not missed.
                        tracing::debug!(
                            "channel {}: receive ring full, waiting for the guest",
                            self.channel
                        );
                        self.outgoing.set_pending_send_sz(needed)?;
                        pending_set = true;
                        continue;
                    }
                    if self.stopping() {
                        return Err(ServeError::Stopped);
                    }
                    // The wait may swallow a "new request" doorbell; the
                    // caller drains the incoming ring afterwards anyway.
                    self.from_guest.wait(self.idle_poll);
                }
            }
        }
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, crate::fault::FaultPlan> {
        self.shared.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends held completions once the plan no longer holds them, or when
    /// everything pending must be completed (a rescind).
    fn release_held(&mut self) -> Result<(), ServeError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let rescinding = self.shared.drain_requested.load(Ordering::Acquire)
            > self.shared.drained.load(Ordering::Acquire);
        if self.plan().holding() && !rescinding {
            return Ok(());
        }
        tracing::info!(
            "channel {}: releasing {} held completion(s)",
            self.channel,
            self.held.len()
        );
        for (c, slot) in std::mem::take(&mut self.held) {
            self.complete(&c, slot)?;
        }
        Ok(())
    }

    /// Malformed completions for the request of `c` (fault `garbage`): an
    /// unknown id, a bad response length and a wrong packet type.
    fn send_garbage(&mut self, c: &Completion) -> Result<(), ServeError> {
        let mut unknown = c.packet();
        unknown.desc.trans_id = c.trans_id.wrapping_add(4096);
        let mut short = c.packet();
        short.response.length = 4;
        let mut inband = c.packet();
        inband.desc.kind = hv_azure_blob_proto::VM_PKT_DATA_INBAND;
        for p in [unknown, short, inband] {
            self.write_packet(p.as_bytes())?;
        }
        Ok(())
    }

    /// Serves packets until the incoming ring is empty (with interrupts
    /// unmasked and no packet racing in). Returns the number served.
    pub fn drain(&mut self) -> Result<u64, ServeError> {
        let mut n = 0;
        self.release_held()?;
        self.incoming.set_interrupt_mask(true)?;
        loop {
            loop {
                let pos = self.incoming.read_index();
                let Some(pkt) = self.incoming.read_packet()? else {
                    break;
                };
                let slot = self.journal_take(&pkt, pos);
                let signal = self.incoming.commit()?;
                if let (Some(j), Some(s)) = (&self.journal, slot) {
                    j.taken(s);
                }
                if signal {
                    self.signal_guest_writer();
                }
                let (handler, stop, poll) = (&mut self.handler, &self.shared.stop, self.idle_poll);
                let mut call = |r: OwnedRequest| handler.call(r, stop, poll);
                let Some((c, rule)) = serve_packet_with(&pkt, &self.ram, &mut call) else {
                    return Err(ServeError::Stopped);
                };
                let valid = rule.is_none();
                if let Some(rule) = rule {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "channel {}: request {} rejected with INVALID_ARG: {rule}",
                        self.channel,
                        c.trans_id
                    );
                } else {
                    tracing::debug!(
                        "channel {}: request {} served: status {:#x}, response_len {}",
                        self.channel,
                        c.trans_id,
                        c.status,
                        c.response_len
                    );
                }
                let action = if valid {
                    self.plan().next_action()
                } else {
                    Default::default()
                };
                let mut c = c;
                if let Some(status) = action.status {
                    c.status = status;
                    c.response_len = 0;
                }
                if !action.delay.is_zero() {
                    std::thread::sleep(action.delay);
                }
                if action.garbage {
                    self.send_garbage(&c)?;
                }
                if action.hold {
                    self.held.push((c, slot));
                    n += 1;
                    continue;
                }
                self.complete_n(&c, slot, action.duplicate)?;
                self.stats.served.fetch_add(1, Ordering::Relaxed);
                n += 1;
                if self.stopping() {
                    return Err(ServeError::Stopped);
                }
            }
            self.incoming.set_interrupt_mask(false)?;
            if self.incoming.is_empty()? {
                return Ok(n);
            }
            self.incoming.set_interrupt_mask(true)?;
        }
    }

    /// Journals a packet read at send-ring offset `pos` (step 1 of
    /// [`crate::journal`]), before its read index is published.
    fn journal_take(&mut self, pkt: &[u8], pos: u32) -> Option<Slot> {
        let j = self.journal.as_mut()?;
        let trans_id = pkt
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        let slot = j.take(trans_id, pos);
        if slot.is_none() && !self.journal_full_warned {
            tracing::warn!(
                "channel {}: the journal is full; further requests are served without crash recovery",
                self.channel
            );
            self.journal_full_warned = true;
        }
        slot
    }

    /// The guest writer asked for room and has it: signal its vector.
    fn signal_guest_writer(&self) {
        self.to_guest.ring();
    }

    /// The worker loop: drain, wait for the doorbell, repeat until stopped.
    /// A malformed ring stops the loop and marks the channel broken.
    pub fn run(mut self) {
        /// Periodic finds in a row, with no doorbell between them, that
        /// make the "guest does not signal" warning.
        const UNSIGNALLED_WARN: u32 = 8;
        let mut rang = true;
        let mut warned = false;
        let mut unsignalled = 0u32;
        if let Err(e) = self.recover() {
            if let ServeError::Ring(e) = e {
                tracing::error!(
                    "channel {}: {e}; the channel is broken, no more requests are served until the guest reopens it",
                    self.channel
                );
                self.stats.broken.fetch_add(1, Ordering::Relaxed);
                self.shared.broken.store(true, Ordering::Release);
            }
            self.shared.exited.store(true, Ordering::Release);
            return;
        }
        loop {
            let stalled = self.plan().stalled();
            if let Some(left) = stalled {
                // Fault `stall`: leave the guest's ring unread for a while.
                std::thread::sleep(left.min(self.idle_poll));
                if self.stopping() {
                    break;
                }
                continue;
            }
            let want = self.shared.drain_requested.load(Ordering::Acquire);
            match self.drain() {
                Ok(n) => {
                    self.shared.drained.store(want, Ordering::Release);
                    if n > 0 && !rang {
                        // Found by the periodic look, not by a doorbell. A
                        // guest writer preempted between its write and its
                        // signal check legitimately sends none (the ring was
                        // already drained when it looked), so one such find
                        // says nothing; a guest that never signals shows as
                        // a run of them with no doorbell at all.
                        unsignalled += 1;
                        if unsignalled == UNSIGNALLED_WARN && !warned {
                            tracing::warn!(
                                "channel {}: requests found without a doorbell {UNSIGNALLED_WARN} times in a row (the guest may not signal as VMBus requires); served anyway",
                                self.channel
                            );
                            warned = true;
                        } else {
                            tracing::debug!(
                                "channel {}: {n} request(s) found without a doorbell",
                                self.channel
                            );
                        }
                    } else if rang {
                        unsignalled = 0;
                    }
                }
                Err(ServeError::Stopped) => break,
                Err(ServeError::Ring(e)) => {
                    tracing::error!(
                        "channel {}: {e}; the channel is broken, no more requests are served until the guest reopens it",
                        self.channel
                    );
                    self.stats.broken.fetch_add(1, Ordering::Relaxed);
                    self.shared.broken.store(true, Ordering::Release);
                    break;
                }
            }
            if self.stopping() {
                break;
            }
            rang = self.from_guest.wait(self.idle_poll);
            if self.stopping() {
                break;
            }
        }
        self.shared.exited.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_semantics() {
        let mut h = EchoHandler;
        let r = h.handle(&Request {
            transaction_id: [0; 16],
            timeout_ms: 0,
            request: b"abc",
            data_in: &[1, 2],
            response_capacity: 3,
            data_capacity: 4,
        });
        assert_eq!(r.status, 0);
        assert_eq!(r.response, b"abc");
        assert_eq!(r.response_len, 3);
        assert_eq!(r.data, vec![1 ^ 0x5a, 2 ^ 0x5a, 2 ^ 0xa5, 3 ^ 0xa5]);
        let small = h.handle(&Request {
            transaction_id: [0; 16],
            timeout_ms: 0,
            request: b"abcd",
            data_in: &[],
            response_capacity: 3,
            data_capacity: 4,
        });
        assert_eq!(small.status, AZ_BLOB_STATUS_BUFFER_TOO_SMALL);
        assert_eq!(small.response_len, 4);
        assert!(small.response.is_empty() && small.data.is_empty());
    }

    #[test]
    fn completion_packet_layout() {
        let c = Completion {
            trans_id: 0x1122_3344_5566_7788,
            status: 7,
            response_len: 9,
        };
        let p = c.packet();
        let b = p.as_bytes();
        assert_eq!(b.len(), 32);
        assert_eq!(&b[0..8], &[0x0b, 0, 2, 0, 4, 0, 0, 0]);
        assert_eq!(&b[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&b[16..20], &12u32.to_le_bytes());
        assert_eq!(&b[20..24], &7u32.to_le_bytes());
        assert_eq!(&b[24..28], &9u32.to_le_bytes());
        assert_eq!(&b[28..32], &[0; 4]);
    }
}
