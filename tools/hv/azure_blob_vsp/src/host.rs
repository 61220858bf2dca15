// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The host: offers, rescinds, opens and closes channels through the control
//! page (following tools/testing/vmbus_sim/vmbus_sim_shm.h), runs one worker
//! thread per open channel, and answers the control-socket commands.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hv_azure_blob_proto::guid::format_guid;
use hv_azure_blob_proto::sim_shm::{
    VMBUS_SIM_MAGIC, VMBUS_SIM_MAX_CHANNELS, VMBUS_SIM_MAX_RING_PFNS, VMBUS_SIM_STATE_CLOSED,
    VMBUS_SIM_STATE_OPEN, VMBUS_SIM_VEC_CONTROL,
};
use hv_azure_blob_proto::HV_AZURE_BLOB_GUID;

use crate::control::ControlPage;
use crate::doorbell::Doorbell;
use crate::guest_ram::{GuestRam, PAGE_SIZE};
use crate::journal::HostState;
use crate::vsp::{ChannelServer, ChannelShared, ChannelStats, RequestHandler};

/// Number of channels of the simulated bus.
pub const NR_CHANNELS: usize = VMBUS_SIM_MAX_CHANNELS;
/// Number of ivshmem vectors: control + one per channel.
pub const NR_VECTORS: usize = 1 + NR_CHANNELS;

const ENODEV: u32 = 19;
const EINVAL: u32 = 22;
const EIO: u32 = 5;

/// Where guest RAM comes from.
#[derive(Debug)]
pub enum RamSource {
    /// The QEMU memory-backend file; (re)mapped when a channel opens and the
    /// file changed (QEMU creates it after it connects to the ivshmem socket).
    File(PathBuf),
    /// A fixed mapping (in-process tests).
    Fixed(Arc<GuestRam>),
}

/// Makes the request handler of a newly opened channel.
pub type HandlerFactory = Box<dyn Fn(usize) -> Box<dyn RequestHandler> + Send + Sync>;

#[derive(Debug)]
struct Worker {
    shared: Arc<ChannelShared>,
    thread: JoinHandle<()>,
    /// The worker's doorbell, rung to make it notice its stop flag at once.
    kick: Arc<Doorbell>,
}

#[derive(Debug, Default)]
struct Slot {
    offered: bool,
    worker: Option<Worker>,
    stats: Arc<ChannelStats>,
}

#[derive(Debug, Default)]
struct Inner {
    ram: Option<Arc<GuestRam>>,
    slots: Vec<Slot>,
    guest_gen: u32,
}

/// The host side of the simulated VMBus.
pub struct Host {
    ctl: ControlPage,
    to_host: Vec<Arc<Doorbell>>,
    to_guest: Vec<Arc<Doorbell>>,
    ram_source: RamSource,
    handlers: HandlerFactory,
    inner: Mutex<Inner>,
    /// What must outlive this process: the journals of unanswered requests.
    state: Arc<HostState>,
    /// This host took over from a previous VSP process (see [`Host::with_state`]).
    reattached: bool,
    /// Channels it found open and went on serving.
    adopted: Vec<usize>,
    /// `crash` is allowed (a broker restarts the process).
    pub allow_crash: bool,
    /// How long a rescind waits for the channel's pending requests.
    pub rescind_timeout: Duration,
    /// How long an offer waits for the guest to close a rescinded channel.
    pub close_wait: Duration,
    /// Faults to inject (`fault ...` on the control socket).
    pub faults: Arc<Mutex<crate::fault::FaultPlan>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").finish_non_exhaustive()
    }
}

/// A control-socket command's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The one line to send back (without the newline).
    pub reply: String,
    /// The command was `quit`.
    pub quit: bool,
    /// The command was `crash`: the process kills itself once the answer
    /// is sent.
    pub crash: bool,
}

/// A fresh random instance GUID (version 4, guid_t byte order).
pub fn random_instance() -> [u8; 16] {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Fall back to time-derived bytes; uniqueness within a run is enough.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b.copy_from_slice(&t.to_le_bytes());
    }
    b[7] = (b[7] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

impl Host {
    /// Attaches to the control page as host peer 0. `to_host[v]` is rung by
    /// the guest, `to_guest[v]` rings the guest; both hold [`NR_VECTORS`].
    pub fn new(
        ctl: ControlPage,
        to_host: Vec<Arc<Doorbell>>,
        to_guest: Vec<Arc<Doorbell>>,
        ram_source: RamSource,
        handlers: HandlerFactory,
    ) -> Result<Self, String> {
        let state = HostState::anonymous().map_err(|e| format!("host state: {e}"))?;
        Self::with_state(
            ctl,
            Arc::new(state),
            to_host,
            to_guest,
            ram_source,
            handlers,
        )
    }

    /// Like [`Host::new`], with the host state kept outside this process
    /// (by the broker). If a previous VSP process used the same control
    /// page and state, this one takes over: the offers stay as they are,
    /// every channel the guest has open (its ring pages are in the control
    /// page) is served again, and the requests the previous process took off
    /// the rings without answering are completed with
    /// [`crate::journal::HOST_RESTARTED_STATUS`].
    pub fn with_state(
        ctl: ControlPage,
        state: Arc<HostState>,
        to_host: Vec<Arc<Doorbell>>,
        to_guest: Vec<Arc<Doorbell>>,
        ram_source: RamSource,
        handlers: HandlerFactory,
    ) -> Result<Self, String> {
        if to_host.len() < NR_VECTORS || to_guest.len() < NR_VECTORS {
            return Err(format!(
                "{NR_VECTORS} doorbells are needed in each direction"
            ));
        }
        let reattached = ctl.magic() == VMBUS_SIM_MAGIC && !state.is_fresh();
        let gen = ctl.attach(0);
        tracing::info!(
            "attached to the control page as host peer 0 (host_gen {gen}{})",
            if reattached {
                ", taking over from a previous VSP process"
            } else {
                ""
            }
        );
        let inner = Inner {
            slots: (0..NR_CHANNELS).map(|_| Slot::default()).collect(),
            guest_gen: ctl.guest_gen(),
            ram: None,
        };
        let mut host = Self {
            ctl,
            to_host,
            to_guest,
            ram_source,
            handlers,
            inner: Mutex::new(inner),
            state,
            reattached,
            adopted: Vec::new(),
            allow_crash: false,
            rescind_timeout: Duration::from_secs(10),
            close_wait: Duration::from_secs(10),
            faults: Arc::default(),
        };
        if reattached {
            host.adopted = host.adopt();
        } else {
            for ch in 0..NR_CHANNELS {
                host.state.channel(ch).clear();
            }
        }
        host.state.set_guest_gen(host.ctl.guest_gen());
        Ok(host)
    }

    /// This host took over from a previous VSP process: the control page
    /// already holds its offers (do not offer again).
    pub fn reattached(&self) -> bool {
        self.reattached
    }

    /// The channels found open at takeover and served again.
    pub fn adopted(&self) -> &[usize] {
        &self.adopted
    }

    /// Takeover: rebuilds the per-channel state from the control page
    /// (offers; channels open and acknowledged, with their ring pages) and
    /// starts a worker on each open channel, which first fails what the
    /// journal says is unanswered. A channel whose open or close the
    /// previous process had not acknowledged is left to
    /// [`Host::poll_control`], as is a guest bus that restarted meanwhile.
    fn adopt(&self) -> Vec<usize> {
        let mut inner = self.lock();
        let same_guest = self.state.guest_gen() == self.ctl.guest_gen();
        if !same_guest {
            tracing::info!(
                "the guest bus restarted since the previous VSP process: no channel to take over"
            );
        }
        let mut adopted = Vec::new();
        for ch in 0..NR_CHANNELS {
            let offered = self.ctl.offered(ch);
            if let Some(slot) = inner.slots.get_mut(ch) {
                slot.offered = offered;
            }
            let g = self.ctl.guest_state(ch);
            let open = same_guest
                && g.state == VMBUS_SIM_STATE_OPEN
                && g.open_seq == self.ctl.open_ack(ch)
                && self.ctl.host_status(ch) == 0;
            if !open {
                self.state.channel(ch).clear();
                continue;
            }
            let pending = self.state.channel(ch).in_use();
            match self.open_channel(&mut inner, ch, g.send_pages, g.recv_pages, true) {
                0 => {
                    tracing::info!(
                        "channel {ch}: taken over (offered={}), {pending} request(s) in its journal",
                        u8::from(offered)
                    );
                    adopted.push(ch);
                }
                e => tracing::error!(
                    "channel {ch}: the guest has it open but its rings cannot be served again (errno {e})"
                ),
            }
        }
        adopted
    }

    /// The control page.
    pub fn control(&self) -> &ControlPage {
        &self.ctl
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ring_control(&self) {
        self.to_guest[VMBUS_SIM_VEC_CONTROL as usize].ring();
    }

    /// Offers a device on `ch`, or on the first free channel.
    ///
    /// A channel that was rescinded while the guest had it open can be
    /// offered again only once the guest has closed it (the guest may still
    /// be tearing the old device down): the offer waits for that close, up
    /// to [`Host::close_wait`].
    pub fn offer(&self, ch: Option<usize>) -> Result<String, String> {
        let deadline = Instant::now() + self.close_wait;
        let mut waited = false;
        let mut inner = loop {
            let inner = self.lock();
            let busy = match ch {
                Some(c) => inner
                    .slots
                    .get(c)
                    .is_some_and(|s| !s.offered && s.worker.is_some()),
                None => false,
            };
            if !busy {
                break inner;
            }
            drop(inner);
            if Instant::now() >= deadline {
                return Err(format!(
                    "channel {} was rescinded but the guest has not closed it within {:?}",
                    ch.unwrap_or_default(),
                    self.close_wait
                ));
            }
            if !waited {
                tracing::info!(
                    "offer of channel {}: waiting for the guest to close the rescinded channel",
                    ch.unwrap_or_default()
                );
                waited = true;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let ch = match ch {
            Some(c) => c,
            None => inner
                .slots
                .iter()
                .position(|s| !s.offered && s.worker.is_none())
                .ok_or("no free channel")?,
        };
        let slot = inner
            .slots
            .get_mut(ch)
            .ok_or_else(|| format!("no channel {ch} (0..{NR_CHANNELS})"))?;
        if slot.offered {
            return Err(format!("channel {ch} is already offered"));
        }
        let instance = random_instance();
        self.ctl.offer(ch, &HV_AZURE_BLOB_GUID, &instance);
        slot.offered = true;
        drop(inner);
        self.ring_control();
        tracing::info!(
            "offered channel {ch}: Azure Blob device, instance {}",
            format_guid(&instance)
        );
        Ok(format!(
            "offered channel {ch} instance {}",
            format_guid(&instance)
        ))
    }

    /// Rescinds the offer on `ch` (or the first offered channel), after
    /// completing every request pending on it.
    pub fn rescind(&self, ch: Option<usize>) -> Result<String, String> {
        let (ch, shared, served_before) = {
            let inner = self.lock();
            let ch = match ch {
                Some(c) => c,
                None => inner
                    .slots
                    .iter()
                    .position(|s| s.offered)
                    .ok_or("no channel is offered")?,
            };
            let slot = inner
                .slots
                .get(ch)
                .ok_or_else(|| format!("no channel {ch} (0..{NR_CHANNELS})"))?;
            if !slot.offered {
                return Err(format!("channel {ch} is not offered"));
            }
            (
                ch,
                slot.worker.as_ref().map(|w| w.shared.clone()),
                slot.stats.served.load(Ordering::Relaxed),
            )
        };
        let mut note = String::new();
        if let Some(shared) = shared {
            let want = shared.drain_requested.fetch_add(1, Ordering::AcqRel) + 1;
            self.to_host[1 + ch].ring();
            let deadline = Instant::now() + self.rescind_timeout;
            loop {
                if shared.drained.load(Ordering::Acquire) >= want {
                    break;
                }
                if shared.exited.load(Ordering::Acquire) {
                    note = " (its worker had stopped)".into();
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::warn!(
                        "channel {ch}: pending requests not completed within {:?} (is the guest reading its receive ring?); rescinding anyway",
                        self.rescind_timeout
                    );
                    note = " (pending requests timed out)".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let mut inner = self.lock();
        let slot = inner
            .slots
            .get_mut(ch)
            .ok_or_else(|| format!("no channel {ch}"))?;
        if !slot.offered {
            return Err(format!("channel {ch} is not offered"));
        }
        let completed = slot
            .stats
            .served
            .load(Ordering::Relaxed)
            .saturating_sub(served_before);
        self.ctl.rescind(ch);
        slot.offered = false;
        drop(inner);
        self.ring_control();
        tracing::info!(
            "rescinded channel {ch} after completing {completed} pending request(s){note}"
        );
        Ok(format!(
            "rescinded channel {ch} completed={completed}{note}"
        ))
    }

    /// One line describing every channel.
    pub fn status(&self) -> String {
        let inner = self.lock();
        let chans: Vec<String> = inner
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let broken = s
                    .worker
                    .as_ref()
                    .is_some_and(|w| w.shared.broken.load(Ordering::Acquire));
                format!(
                    "ch{i} offered={} open={} served={} errors={} broken={}",
                    u8::from(s.offered),
                    u8::from(s.worker.is_some()),
                    s.stats.served.load(Ordering::Relaxed),
                    s.stats.rejected.load(Ordering::Relaxed)
                        + s.stats.broken.load(Ordering::Relaxed),
                    u8::from(broken)
                )
            })
            .collect();
        format!(
            "host_gen={} guest_gen={}; {}",
            self.ctl.host_gen(),
            self.ctl.guest_gen(),
            chans.join("; ")
        )
    }

    fn guest_ram(&self, inner: &mut Inner) -> Result<Arc<GuestRam>, String> {
        match &self.ram_source {
            RamSource::Fixed(r) => Ok(r.clone()),
            RamSource::File(path) => {
                let id = GuestRam::file_identity(path)
                    .map_err(|e| format!("guest RAM file {}: {e}", path.display()))?;
                if let Some(r) = &inner.ram {
                    if r.identity() == Some(id) {
                        return Ok(r.clone());
                    }
                }
                let r = Arc::new(GuestRam::from_file(path).map_err(|e| e.to_string())?);
                tracing::info!(
                    "mapped guest RAM {} ({} MiB)",
                    path.display(),
                    r.size() >> 20
                );
                inner.ram = Some(r.clone());
                Ok(r)
            }
        }
    }

    fn stop_worker(slot: &mut Slot) {
        if let Some(w) = slot.worker.take() {
            w.shared.stop.store(true, Ordering::Release);
            w.kick.ring();
            if w.thread.join().is_err() {
                tracing::error!("a channel worker panicked");
            }
        }
    }

    /// Starts serving a channel's rings: a guest's open, or (`adopt`) a
    /// channel found open at takeover, whose journal is kept for recovery.
    fn open_channel(&self, inner: &mut Inner, ch: usize, send: u32, recv: u32, adopt: bool) -> u32 {
        if let Some(slot) = inner.slots.get_mut(ch) {
            if slot.worker.is_some() {
                tracing::warn!("channel {ch} opened again without a close; detaching first");
                Self::stop_worker(slot);
            }
            if !slot.offered && !adopt {
                tracing::warn!("guest opened channel {ch}, which is not offered: refused");
                return ENODEV;
            }
        }
        let total = send as usize + recv as usize;
        if send < 2 || recv < 2 || total > VMBUS_SIM_MAX_RING_PFNS {
            tracing::warn!(
                "guest opened channel {ch} with {send} send and {recv} receive ring pages: refused (each ring needs 2..=, both together at most {VMBUS_SIM_MAX_RING_PFNS})"
            );
            return EINVAL;
        }
        let pfns = self.ctl.ring_pfns(ch, total);
        let ram = match self.guest_ram(inner) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("channel {ch} cannot be opened: {e}");
                return EIO;
            }
        };
        let Some(slot) = inner.slots.get_mut(ch) else {
            return EINVAL;
        };
        let shared = Arc::new(ChannelShared {
            faults: self.faults.clone(),
            ..ChannelShared::default()
        });
        let (send_pfns, recv_pfns) = pfns.split_at(send as usize);
        let mut journal = self.state.channel(ch);
        if !adopt {
            // New rings: nothing of an earlier open is answered on them.
            journal.clear();
        }
        let mut server = match ChannelServer::new(
            ch,
            ram,
            send_pfns,
            recv_pfns,
            (self.handlers)(ch),
            self.to_guest[1 + ch].clone(),
            self.to_host[1 + ch].clone(),
            shared.clone(),
            slot.stats.clone(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("guest opened channel {ch} with unusable rings: {e}: refused");
                return EINVAL;
            }
        };
        server.set_journal(journal);
        let thread = match std::thread::Builder::new()
            .name(format!("vsp-ch{ch}"))
            .spawn(move || server.run())
        {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("cannot start the worker of channel {ch}: {e}");
                return EIO;
            }
        };
        slot.worker = Some(Worker {
            shared,
            thread,
            kick: self.to_host[1 + ch].clone(),
        });
        tracing::info!(
            "channel {ch} {}: send ring at GPA {:#x} ({send} pages), receive ring at GPA {:#x} ({recv} pages)",
            if adopt { "served again" } else { "opened" },
            send_pfns.first().copied().unwrap_or_default().wrapping_mul(PAGE_SIZE),
            recv_pfns.first().copied().unwrap_or_default().wrapping_mul(PAGE_SIZE),
        );
        0
    }

    /// Acts on the guest-owned fields of the control page: a (re)started
    /// guest bus, and opens and closes not yet acknowledged. Called on every
    /// control doorbell and periodically.
    pub fn poll_control(&self) {
        let mut inner = self.lock();
        let gen = self.ctl.guest_gen();
        if gen != inner.guest_gen {
            inner.guest_gen = gen;
            tracing::info!(
                "guest attached: bus driver (re)started with guest_gen {gen}, ivshmem IVPosition {}",
                self.ctl.guest_id()
            );
            for (ch, slot) in inner.slots.iter_mut().enumerate() {
                if slot.worker.is_some() {
                    tracing::info!("channel {ch}: detached from the previous guest's rings");
                    Self::stop_worker(slot);
                }
                self.state.channel(ch).clear();
            }
            self.state.set_guest_gen(gen);
        }
        let mut acked = false;
        for ch in 0..NR_CHANNELS {
            let g = self.ctl.guest_state(ch);
            if g.open_seq == self.ctl.open_ack(ch) {
                continue;
            }
            let status = match g.state {
                VMBUS_SIM_STATE_OPEN => {
                    self.open_channel(&mut inner, ch, g.send_pages, g.recv_pages, false)
                }
                VMBUS_SIM_STATE_CLOSED => {
                    if let Some(slot) = inner.slots.get_mut(ch) {
                        if slot.worker.is_some() {
                            Self::stop_worker(slot);
                            tracing::info!("channel {ch} closed by the guest");
                        }
                        // Its requests are the guest's business now.
                        self.state.channel(ch).clear();
                    }
                    0
                }
                other => {
                    tracing::warn!("channel {ch}: unknown state {other} from the guest");
                    EINVAL
                }
            };
            self.ctl.ack_open(ch, g.open_seq, status);
            acked = true;
        }
        drop(inner);
        if acked {
            self.ring_control();
        }
    }

    /// Waits for control doorbells and acts on them until `stop` is set.
    pub fn run_control_loop(&self, stop: &std::sync::atomic::AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            self.to_host[VMBUS_SIM_VEC_CONTROL as usize].wait(Duration::from_millis(200));
            self.poll_control();
        }
    }

    /// Stops every worker (QEMU went away, or the host quits).
    pub fn stop_all(&self, why: &str) {
        let mut inner = self.lock();
        for (ch, slot) in inner.slots.iter_mut().enumerate() {
            if slot.worker.is_some() {
                Self::stop_worker(slot);
                tracing::info!("channel {ch}: stopped serving ({why})");
            }
        }
    }

    /// Runs one control-socket command line.
    pub fn handle_command(&self, line: &str) -> CommandOutcome {
        let all: Vec<&str> = line.split_whitespace().collect();
        if all.first().is_some_and(|w| w.eq_ignore_ascii_case("fault")) {
            let r = self
                .faults
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .command(&all[1..]);
            if let Ok(plan) = &r {
                tracing::info!("fault plan changed: {plan}");
                // Held completions may now go: let every worker look.
                for bell in self.to_host.iter().skip(1) {
                    bell.ring();
                }
            }
            return CommandOutcome {
                reply: match r {
                    Ok(s) => format!("ok {s}"),
                    Err(e) => format!("err {e}"),
                },
                quit: false,
                crash: false,
            };
        }
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("").to_ascii_lowercase();
        let arg = words.next();
        let extra = words.next();
        let ok = |r: Result<String, String>| CommandOutcome {
            reply: match r {
                Ok(s) => format!("ok {s}"),
                Err(e) => format!("err {e}"),
            },
            quit: false,
            crash: false,
        };
        if extra.is_some() {
            return ok(Err(format!("too many arguments to '{cmd}'")));
        }
        let channel = |a: Option<&str>| -> Result<Option<usize>, String> {
            match a {
                None => Ok(None),
                Some(s) => match s.parse::<usize>() {
                    Ok(n) if n < NR_CHANNELS => Ok(Some(n)),
                    _ => Err(format!("bad channel '{s}' (0..{NR_CHANNELS})")),
                },
            }
        };
        match cmd.as_str() {
            "offer" => ok(channel(arg).and_then(|c| self.offer(c))),
            "rescind" => ok(channel(arg).and_then(|c| self.rescind(c))),
            "status" if arg.is_none() => ok(Ok(self.status())),
            "quit" if arg.is_none() => CommandOutcome {
                reply: "ok quitting".into(),
                quit: true,
                crash: false,
            },
            "crash" if arg.is_none() && self.allow_crash => CommandOutcome {
                reply: "ok crashing (kill -9 of the VSP; the broker starts another)".into(),
                quit: false,
                crash: true,
            },
            "crash" if arg.is_none() => ok(Err(
                "crash needs the broker (azure-blob-vsp --broker), which restarts the VSP".into(),
            )),
            "help" => ok(Ok(
                "commands: offer [CH], rescind [CH], status, quit, crash, fault ... (fault help)"
                    .into(),
            )),
            "status" | "quit" | "crash" => ok(Err(format!("'{cmd}' takes no argument"))),
            _ => ok(Err(format!(
                "unknown command '{cmd}' (offer [CH], rescind [CH], status, quit)"
            ))),
        }
    }
}

/// Something that answers control-socket commands.
pub trait CommandTarget {
    /// Runs one command line (without its line ending).
    fn handle_command(&self, line: &str) -> CommandOutcome;
}

impl CommandTarget for Host {
    fn handle_command(&self, line: &str) -> CommandOutcome {
        Host::handle_command(self, line)
    }
}

/// True for a line that is one of our own answers (`ok ...`, `err ...`).
fn is_echoed_reply(line: &str) -> bool {
    matches!(line.split_whitespace().next(), Some("ok" | "err"))
}

/// Longest accepted command line.
pub const MAX_LINE: usize = 1024;

/// Serves one control-socket client: reads lines (ending in `\n` or
/// `\r\n`; empty lines and lines that are our own answers, echoed back by a
/// guest tty, are ignored), answers each with one line. Calls `on_quit`
/// after answering `quit`. Returns when the client disconnects.
pub fn serve_control_client<T: CommandTarget + ?Sized, S: Read + Write>(
    host: &T,
    mut stream: S,
    on_quit: &dyn Fn(),
) {
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    let mut buf = [0u8; 512];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b != b'\n' {
                if line.len() < MAX_LINE {
                    line.push(b);
                } else {
                    too_long = true;
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line).trim().to_string();
            line.clear();
            let outcome = if std::mem::take(&mut too_long) {
                CommandOutcome {
                    reply: format!("err line longer than {MAX_LINE} bytes"),
                    quit: false,
                    crash: false,
                }
            } else if text.is_empty() {
                continue;
            } else if is_echoed_reply(&text) {
                // A guest tty with ECHO on sends our answers back; answering
                // them would ping-pong forever.
                tracing::debug!("ignoring an echoed answer: {text}");
                continue;
            } else {
                tracing::info!("control command: {text}");
                host.handle_command(&text)
            };
            if stream
                .write_all(format!("{}\n", outcome.reply).as_bytes())
                .and_then(|()| stream.flush())
                .is_err()
            {
                return;
            }
            if outcome.quit {
                on_quit();
                return;
            }
            if outcome.crash {
                crash_now();
            }
        }
    }
}

/// Dies at once, as `kill -9` would kill it: no destructor runs, nothing
/// is written to the rings or the control page.
pub fn crash_now() -> ! {
    tracing::warn!("crash requested: kill -9 of this process");
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::process::abort()
}

/// Sanity: the two states the guest may publish.
const _: () = assert!(VMBUS_SIM_STATE_CLOSED != VMBUS_SIM_STATE_OPEN);
