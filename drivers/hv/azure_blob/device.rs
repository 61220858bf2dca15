// SPDX-License-Identifier: GPL-2.0
//! The device: its channel, its `/dev/azure_blob` node and the files opened
//! on it.
//!
//! Lifetime rules, by construction:
//! - every request in flight is counted under `inflight`, and a request can
//!   only start while the device is not being removed (checked under the same
//!   lock), so remove cannot miss one (the 2021 v5 race);
//! - remove stops new requests, deregisters the node, waits for the host to
//!   answer what is in flight (it owns those pinned pages), and only then
//!   closes the channel;
//! - open files keep the shared state alive; after remove they get ENODEV.

use crate::defs::{
    AzBlobRequestSync, AzBlobRequestSyncResponse, AzBlobVspRequest, AzBlobVspResponse, AZ_BLOB_QUEUE_DEPTH,
    AZ_BLOB_RING_SIZE, IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY,
    VM_PKT_COMP,
};
use crate::hv::{self, Channel, Device};
use crate::request::{self, Buffers, Pending};
use crate::stats::{Counters, Failure, PendingInfo};
use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::{
    debugfs,
    fs::File,
    str::CString,
    time::{Instant, Monotonic},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    new_condvar, new_mutex,
    prelude::*,
    sync::{Arc, CondVar, Mutex},
    time::msecs_to_jiffies,
    uaccess::{UserPtr, UserSlice},
    workqueue::Queue,
};

/// Requests in flight, and whether new ones may start.
struct Inflight {
    removing: bool,
    /// Between suspend and resume: new requests wait.
    suspended: bool,
    /// Whether the channel is open (closed while suspended).
    channel_open: bool,
    count: u32,
}

/// State shared by the device, its open files and the channel callback.
#[pin_data]
pub(crate) struct Shared {
    channel: Channel,
    /// The device's workqueue (see [`DeviceData`]): valid until remove,
    /// which destroys it only after closing the channel.
    wq: core::ptr::NonNull<kernel::bindings::workqueue_struct>,
    /// Requests the host owns (sent and not yet answered).
    #[pin]
    inflight: Mutex<Inflight>,
    #[pin]
    drained: CondVar,
    /// Notified on resume and on remove.
    #[pin]
    resumed: CondVar,
    /// Bumped by the channel callback: ring space or ids may have been freed.
    space_seq: AtomicU64,
    #[pin]
    space_lock: Mutex<()>,
    #[pin]
    space: CondVar,
    /// Counters shown in debugfs.
    stats: Counters,
    /// The requests the host owns, shown in debugfs.
    #[pin]
    pending: Mutex<KVec<PendingInfo>>,
    next_seq: AtomicU64,
    /// Buffers of sends that failed with ENODEV after the packet may have
    /// reached the host (the bus checks for a rescind after writing the
    /// ring): kept pinned until remove has closed the channel.
    #[pin]
    parked: Mutex<KVec<Buffers>>,
}

// SAFETY: `wq` is a workqueue, usable from any thread; the rest is Sync.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// Counts a request in (the host is about to own it); `ENODEV` once the
    /// device is going away. Returns the request's sequence number.
    fn begin(&self, req: &AzBlobRequestSync) -> Result<u64> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let info = PendingInfo {
            seq,
            guid: req.guid,
            request_len: req.request_len,
            response_len: req.response_len,
            data_len: req.data_len,
            data_valid: req.data_valid,
            pid: {
                // As the caller's own pid namespace sees it (the caller has
                // the opener's credentials, by the rule above).
                let cur = kernel::current!();
                cur.tgid_nr_ns(cur.active_pid_ns())
            },
            start: Instant::now(),
            abandoned: false,
        };
        self.pending.lock().push(info, GFP_KERNEL)?;
        let mut g = self.inflight.lock();
        // Suspended (hibernation): wait for resume, interruptibly.
        while g.suspended && !g.removing {
            if self.resumed.wait_interruptible(&mut g) {
                drop(g);
                self.forget(seq);
                return Err(ERESTARTSYS);
            }
        }
        if g.removing {
            drop(g);
            self.forget(seq);
            return Err(ENODEV);
        }
        g.count += 1;
        self.stats.started(u64::from(req.request_len) + u64::from(req.data_valid));
        Ok(seq)
    }

    /// Drops request `seq` from the pending list; returns when it started.
    fn forget(&self, seq: u64) -> Option<Instant<Monotonic>> {
        let mut list = self.pending.lock();
        let i = list.iter().position(|p| p.seq == seq)?;
        let start = list[i].start;
        list.remove(i).ok();
        Some(start)
    }

    /// Marks request `seq` as abandoned by its caller.
    fn abandon(&self, seq: u64) {
        if let Some(p) = self.pending.lock().iter_mut().find(|p| p.seq == seq) {
            p.abandoned = true;
        }
        self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the host's answer to request `seq` and counts it out.
    pub(crate) fn answered(&self, seq: u64, status: u32, bytes_in: u64) {
        if let Some(start) = self.forget(seq) {
            self.stats.answered(status, bytes_in, start.elapsed());
        }
        self.end();
    }

    /// Counts out request `seq`, which failed before the host owned it.
    fn failed(&self, seq: u64, why: Failure) {
        self.forget(seq);
        self.stats.failed(why);
        self.end();
    }

    fn queue(&self) -> &Queue {
        // SAFETY: `wq` is valid until remove destroys it, after the channel is
        // closed (no callback) and every request is counted out.
        unsafe { Queue::from_raw(self.wq.as_ptr()) }
    }

    /// Counts a request out: the host is done with it.
    fn end(&self) {
        let mut g = self.inflight.lock();
        g.count -= 1;
        if g.count == 0 {
            self.drained.notify_all();
        }
    }

    /// Refuses new requests and waits until those in flight are answered.
    fn stop_and_drain(&self) {
        let mut g = self.inflight.lock();
        g.removing = true;
        self.resumed.notify_all();
        while g.count > 0 {
            self.drained.wait(&mut g);
        }
    }

    /// Keeps `buffers` pinned until remove has closed the channel.
    fn park(&self, buffers: Buffers) {
        let mut parked = self.parked.lock();
        if parked.reserve(1, GFP_KERNEL).is_err() {
            // No memory to remember them: never unpin what the host may
            // still write; the pages stay pinned (a bounded leak, on a
            // device that is going away).
            core::mem::forget(buffers);
            pr_warn!("no memory to track a rescinded request's pages: they stay pinned\n");
            return;
        }
        if let Err(e) = parked.push_within_capacity(buffers) {
            // Cannot happen after the reservation; still, never unpin.
            core::mem::forget(e.0);
        }
    }

    /// Closes the channel if it is open.
    fn close_channel(&self) {
        let was_open = core::mem::replace(&mut self.inflight.lock().channel_open, false);
        if was_open {
            self.channel.close();
        }
    }

    /// `IOCTL_AZ_BLOB_DRIVER_USER_REQUEST`: the whole request, start to end.
    fn user_request(this: &Arc<Self>, file: &File, arg: UserPtr) -> Result<isize> {
        // As in 2021: a file is used with the credentials it was opened with.
        if !hv::current_cred_is(file.cred().as_ptr()) {
            return Err(EACCES);
        }
        // The struct is read from user memory once; only the copy is used.
        let req: AzBlobRequestSync = UserSlice::new(arg, size_of::<AzBlobRequestSync>()).reader().read()?;
        let prepared = request::validate(&req).and_then(|_| {
            let buffers = Buffers::pin(&req)?;
            let (desc, msg) = buffers.packet(&req)?;
            Ok((buffers, desc, msg))
        });
        let (buffers, mut desc, msg) = prepared.inspect_err(|e| {
            this.stats.failed(if *e == EINVAL { Failure::Invalid } else if *e == EFAULT { Failure::Fault } else { Failure::Other })
        })?;
        let seq = this.begin(&req)?;
        let pending = match Pending::new(this.clone(), seq) {
            Ok(p) => p,
            Err(e) => {
                this.failed(seq, Failure::Other);
                return Err(e);
            }
        };
        let (answer, buffers) = match this.exchange(&mut desc, &msg, &pending, buffers) {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                // Killed: the request is the host's until it answers.
                this.abandon(seq);
                return Err(EINTR);
            }
            Err(e) => {
                this.failed(seq, if e == ENODEV { Failure::NoDevice } else if e == ERESTARTSYS { Failure::Interrupted } else { Failure::Other });
                return Err(e);
            }
        };
        let bytes_in = if answer.status == 0 { u64::from(answer.response_len) + u64::from(req.data_len) } else { 0 };
        this.answered(seq, answer.status, bytes_in);
        if answer.status == 0 && answer.response_len > req.response_len {
            // A host must not claim to have written more than the buffer
            // holds. (With an error status, response_len may be the size the
            // host needs: it wrote nothing, and the caller may retry.)
            this.stats.failed(Failure::HostMisbehaved);
            return Err(EIO);
        }
        let out = arg.wrapping_byte_add(offset_of!(AzBlobRequestSync, response));
        UserSlice::new(out, size_of::<AzBlobRequestSyncResponse>()).writer().write(&answer)?;
        drop(buffers); // unpinned (and dirtied) only now that the host is done
        Ok(0)
    }

    /// Sends the packet, waiting for ring space (or a free id) when there is
    /// none, then waits for the host's answer. `Ok(None)`: the caller was
    /// killed while the host owned the request.
    ///
    /// # Errors
    ///
    /// `ERESTARTSYS` when a signal arrives while waiting for space (nothing
    /// was sent), `ENODEV` when the channel is rescinded, `EIO` on a corrupt ring.
    fn exchange(
        &self,
        desc: &mut [u64],
        msg: &AzBlobVspRequest,
        pending: &Arc<Pending>,
        buffers: Buffers,
    ) -> Result<Option<(AzBlobRequestSyncResponse, Buffers)>> {
        // SAFETY: `AzBlobVspRequest` is `#[repr(C)]` integers without padding,
        // 56 bytes, readable as bytes for the duration of the call.
        let bytes = unsafe {
            core::slice::from_raw_parts(core::ptr::from_ref(msg).cast::<u8>(), size_of::<AzBlobVspRequest>())
        };
        let packet_bytes = u32::try_from(desc.len() * 8 + bytes.len() + 16).unwrap_or(u32::MAX);
        let token = Pending::into_token(pending);
        let mut waited = false;
        let sent = loop {
            let seen = self.space_seq.load(Ordering::Acquire);
            match self.channel.send_gpa_direct(desc, bytes, token) {
                Err(e) if e == EAGAIN => {
                    // Full ring or all ids in use: the host's progress frees
                    // them, and the channel callback bumps `space_seq`.
                    self.channel.set_pending_send_size(packet_bytes);
                    waited = true;
                    // Sleep until the callback reports progress, at most 10
                    // ms, then try again: a host that drained the ring before
                    // the pending size was set sends no signal.
                    let mut g = self.space_lock.lock();
                    if self.space_seq.load(Ordering::Acquire) == seen {
                        let _ = self.space.wait_interruptible_timeout(&mut g, msecs_to_jiffies(10));
                    }
                    drop(g);
                    if kernel::current!().signal_pending() {
                        break Err(ERESTARTSYS);
                    }
                }
                other => break other,
            }
        };
        if waited {
            self.channel.set_pending_send_size(0);
        }
        match sent {
            Ok(()) => Ok(pending.wait(buffers)),
            Err(e) => {
                // The bus does not hold the token after a failed send; claim
                // it back unless a completion raced in and took it.
                // SAFETY: `token` came from `into_token` and `pending` keeps it alive.
                drop(unsafe { Pending::claim_token(token) });
                if e == ENODEV {
                    // Rescinded: the packet may be in the ring already (the
                    // bus looks at the rescind flag after writing it), so the
                    // host may still use these pages until the channel closes.
                    self.park(buffers);
                }
                Err(e)
            }
        }
    }

    /// Handles one packet from the host. The host is not trusted: the
    /// packet is a private copy, and its type, sizes and id are checked
    /// before anything is taken from it.
    fn on_packet(&self, pkt: &[u8]) {
        let word = |at: usize| -> Option<u16> { pkt.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]])) };
        let dword = |at: usize| -> Option<u32> {
            pkt.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let parsed = (|| {
            let kind = word(0)?;
            let offset = usize::from(word(2)?) * 8;
            let trans_id = u64::from(dword(8)?) | (u64::from(dword(12)?) << 32);
            if kind != VM_PKT_COMP || offset < 16 {
                return None;
            }
            let length = dword(offset)?;
            if length as usize != size_of::<AzBlobVspResponse>() {
                return None;
            }
            Some((trans_id, dword(offset + 4)?, dword(offset + 8)?))
        })();
        let Some((trans_id, status, response_len)) = parsed else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(token) = self.channel.complete(trans_id) else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // SAFETY: the requestor only holds tokens made by `into_token`; an
        // unclaimed token keeps its request alive.
        if let Some(p) = unsafe { Pending::claim_token(token) } {
            Pending::complete(p, status, response_len, self.queue());
        }
    }
}

/// The channel callback (softirq context): drains the host's completions.
unsafe extern "C" fn on_channel_callback(ctx: *mut c_void) {
    // SAFETY: `ctx` is the `Shared` given to `open`, kept alive until the
    // channel is closed, after which this callback no longer runs.
    let shared = unsafe { &*ctx.cast::<Shared>() };
    shared.channel.for_each_packet(|pkt| shared.on_packet(pkt));
    // The host made progress: senders waiting for space or ids may retry.
    shared.space_seq.fetch_add(1, Ordering::AcqRel);
    shared.space.notify_all();
}

/// The `/dev/azure_blob` registration, with the state its files reach.
#[pin_data]
struct MiscNode {
    shared: Arc<Shared>,
    #[pin]
    reg: MiscDeviceRegistration<FileCtx>,
}

/// An open file of `/dev/azure_blob`.
pub(crate) struct FileCtx {
    shared: Arc<Shared>,
}

#[vtable]
impl MiscDevice for FileCtx {
    type Ptr = KBox<Self>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        // SAFETY: every registration of this type is the `reg` field of a
        // `MiscNode`, and misc_open() keeps it registered (so its node alive)
        // while this runs.
        let node = unsafe { &*kernel::container_of!(core::ptr::from_ref(misc).cast_mut(), MiscNode, reg) };
        if node.shared.inflight.lock().removing {
            return Err(ENODEV);
        }
        Ok(KBox::new(FileCtx { shared: node.shared.clone() }, GFP_KERNEL)?)
    }

    fn ioctl(me: &FileCtx, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            IOCTL_AZ_BLOB_DRIVER_USER_REQUEST | IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY => {
                Shared::user_request(&me.shared, file, UserPtr::from_addr(arg))
            }
            _ => Err(ENOTTY),
        }
    }
}

/// The device's debugfs directory and files (removed when dropped).
struct DebugFs {
    _stats: Pin<KBox<debugfs::File<Arc<Shared>>>>,
    _pending: Pin<KBox<debugfs::File<Arc<Shared>>>>,
    _dir: debugfs::Dir,
}

impl DebugFs {
    fn new(dev: &Device, shared: &Arc<Shared>) -> Result<Self> {
        let g = dev.instance();
        let name = CString::try_from_fmt(fmt!(
            "hv_azure_blob-{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]
        ))?;
        let dir = debugfs::Dir::new(&name);
        let stats = KBox::pin_init(
            dir.read_callback_file(c"stats", shared.clone(), &|s: &Arc<Shared>, f| s.stats.show(f)),
            GFP_KERNEL,
        )?;
        let pending = KBox::pin_init(
            dir.read_callback_file(c"pending", shared.clone(), &|s: &Arc<Shared>, f| {
                for p in s.pending.lock().iter() {
                    p.show(f)?;
                }
                Ok(())
            }),
            GFP_KERNEL,
        )?;
        Ok(Self { _stats: stats, _pending: pending, _dir: dir })
    }
}

/// The shared state of a bound device (valid from probe until remove; the
/// bus calls suspend and resume only in between, under the device lock).
fn device_shared(dev: &Device) -> Option<&Arc<Shared>> {
    let ptr = dev.drvdata().cast::<DeviceData>();
    // SAFETY: probe stored a `KBox<DeviceData>` here; remove takes it back
    // (and the device lock keeps remove from running concurrently).
    (!ptr.is_null()).then(|| unsafe { &(*ptr).shared })
}

/// What probe leaves behind for remove.
struct DeviceData {
    _debugfs: DebugFs,
    node: Pin<KBox<MiscNode>>,
    shared: Arc<Shared>,
    /// Releases abandoned requests; destroyed (drained) last in remove.
    wq: hv::OwnedQueue,
}

/// The VMBus driver.
pub(crate) struct AzureBlobDriver;

/// A device is bound. The node name is fixed (`/dev/azure_blob`, as in
/// 2021, and Hyper-V offers one such device per VM), so a second device is
/// refused with EBUSY instead of failing on the name.
static BOUND: AtomicBool = AtomicBool::new(false);

impl hv::Driver for AzureBlobDriver {
    fn probe(dev: Device) -> Result {
        if BOUND.swap(true, Ordering::AcqRel) {
            let id = dev.instance();
            pr_warn!(
                "device {:02x}{:02x}{:02x}{:02x}-... not bound: one Azure Blob device is served at a time (/dev/azure_blob is taken)\n",
                id[3], id[2], id[1], id[0]
            );
            return Err(EBUSY);
        }
        let r = Self::probe_one(dev);
        if r.is_err() {
            BOUND.store(false, Ordering::Release);
        }
        r
    }

    fn suspend(dev: Device) -> Result {
        Self::suspend_one(dev)
    }

    fn resume(dev: Device) -> Result {
        Self::resume_one(dev)
    }

    fn remove(dev: Device) {
        Self::remove_one(dev)
    }
}

impl AzureBlobDriver {
    fn probe_one(dev: Device) -> Result {
        let channel = dev.channel();
        channel.use_requestor(AZ_BLOB_QUEUE_DEPTH);
        let wq = hv::OwnedQueue::new()?;
        let wq_raw = wq.raw();
        let shared = Arc::pin_init(
            try_pin_init!(Shared {
                channel,
                wq: wq_raw,
                inflight <- new_mutex!(Inflight { removing: false, suspended: false, channel_open: true, count: 0 }),
                drained <- new_condvar!(),
                resumed <- new_condvar!(),
                space_seq: AtomicU64::new(0),
                space_lock <- new_mutex!(()),
                space <- new_condvar!(),
                stats: Counters::default(),
                pending <- new_mutex!(KVec::new()),
                next_seq: AtomicU64::new(1),
                parked <- new_mutex!(KVec::new()),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: `shared` lives in the device data until remove, which
        // closes the channel before dropping it.
        unsafe { channel.open(AZ_BLOB_RING_SIZE, on_channel_callback, Arc::as_ptr(&shared).cast_mut().cast())? };
        let data = DebugFs::new(&dev, &shared).and_then(|debugfs| {
            let slot = KBox::<DeviceData>::new_uninit(GFP_KERNEL)?;
            // The node last: once it exists users can send requests, so
            // nothing after it may fail (an error path would have to drain
            // them first).
            let for_node = shared.clone();
            let node = KBox::pin_init(
                try_pin_init!(MiscNode {
                    shared: for_node,
                    reg <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"azure_blob" }),
                }),
                GFP_KERNEL,
            )?;
            Ok(KBox::write(slot, DeviceData { _debugfs: debugfs, node, shared: shared.clone(), wq }))
        });
        match data {
            Ok(data) => {
                dev.set_drvdata(KBox::into_raw(data).cast());
                Ok(())
            }
            Err(e) => {
                channel.close();
                Err(e)
            }
        }
    }

    fn suspend_one(dev: Device) -> Result {
        let Some(shared) = device_shared(&dev) else {
            return Ok(());
        };
        // New requests wait; those in flight are answered; then the channel
        // closes (its rings and ids go away with it).
        let mut g = shared.inflight.lock();
        g.suspended = true;
        while g.count > 0 {
            shared.drained.wait(&mut g);
        }
        drop(g);
        shared.close_channel();
        Ok(())
    }

    fn resume_one(dev: Device) -> Result {
        let Some(shared) = device_shared(&dev) else {
            return Ok(());
        };
        if !shared.inflight.lock().channel_open {
            shared.channel.use_requestor(AZ_BLOB_QUEUE_DEPTH);
            // SAFETY: `shared` lives in the device data until remove, which
            // closes the channel before dropping it.
            unsafe {
                shared
                    .channel
                    .open(AZ_BLOB_RING_SIZE, on_channel_callback, Arc::as_ptr(shared).cast_mut().cast())?
            };
            shared.inflight.lock().channel_open = true;
        }
        shared.inflight.lock().suspended = false;
        shared.resumed.notify_all();
        Ok(())
    }

    fn remove_one(dev: Device) {
        let ptr = dev.drvdata().cast::<DeviceData>();
        if ptr.is_null() {
            return;
        }
        dev.set_drvdata(core::ptr::null_mut());
        // SAFETY: probe stored a `KBox<DeviceData>` here and remove runs once.
        let data = KBox::into_inner(unsafe { KBox::from_raw(ptr) });
        let shared = data.shared;
        shared.inflight.lock().removing = true; // no new requests
        drop(data.node); // the node goes away: no new opens
        // The name is free: another device may bind while this one waits
        // for its host below (its debugfs directory has its own name).
        BOUND.store(false, Ordering::Release);
        shared.stop_and_drain(); // the host answers what is in flight
        shared.close_channel();
        // The host can no longer reach the pages of sends that met the rescind.
        drop(core::mem::take(&mut *shared.parked.lock()));
        drop(data.wq); // waits for the release of abandoned requests
        let dropped = shared.stats.dropped.load(Ordering::Relaxed);
        if dropped != 0 {
            pr_warn!("dropped {} malformed or unknown completions from the host\n", dropped);
        }
    }
}
