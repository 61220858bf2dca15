// SPDX-License-Identifier: GPL-2.0
//! The raw VMBus API of `hv_vmbus` (bound with our own bindgen rule, see
//! Kbuild) behind a small safe wrapper. Nothing else in the driver calls it.

use core::ffi::{c_int, c_void};
use kernel::prelude::*;

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    missing_docs,
    unreachable_pub,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
pub(crate) mod raw {
    use pin_init::MaybeZeroable;
    include!("hv_bindings.rs");
}

/// `VMBUS_RQST_ERROR`: an unknown or already completed transaction id.
const VMBUS_RQST_ERROR: u64 = u64::MAX - 1;
/// `VMBUS_NO_RQSTOR`: the channel has no requestor.
const VMBUS_NO_RQSTOR: u64 = u64::MAX;

/// What a VMBus driver implements; the registration adapts it to `hv_driver`.
pub(crate) trait Driver {
    /// Called when the bus binds a device: open the channel, set up state.
    fn probe(dev: Device) -> Result;
    /// Called when the device goes away (rescind, unbind, module unload).
    fn remove(dev: Device);
    /// Called before hibernation: quiesce and close the channel.
    fn suspend(dev: Device) -> Result;
    /// Called after hibernation: reopen the channel.
    fn resume(dev: Device) -> Result;
}

/// A VMBus device the driver is bound to (`struct hv_device`).
///
/// # Invariants
///
/// `0` points to a `struct hv_device` that stays valid while the driver is
/// bound to it, i.e. from `probe` until `remove` returns.
#[derive(Clone, Copy)]
pub(crate) struct Device(*mut raw::hv_device);

impl Device {
    /// The device's primary channel.
    pub(crate) fn channel(&self) -> Channel {
        // SAFETY: `self.0` is valid (type invariant); `channel` is set by the
        // bus before probe and does not change while the device is bound.
        // INVARIANT: the channel lives as long as its device.
        Channel(unsafe { (*self.0).channel })
    }

    /// The device instance GUID (guid_t byte order).
    pub(crate) fn instance(&self) -> [u8; 16] {
        // SAFETY: `self.0` is valid (type invariant); set before probe.
        unsafe { (*self.0).dev_instance.b }
    }

    /// Stores the driver's per-device pointer.
    pub(crate) fn set_drvdata(&self, data: *mut c_void) {
        // SAFETY: `self.0` is valid (type invariant).
        unsafe { raw::hv_set_drvdata(self.0, data) }
    }

    /// The driver's per-device pointer.
    pub(crate) fn drvdata(&self) -> *mut c_void {
        // SAFETY: `self.0` is valid (type invariant).
        unsafe { raw::hv_get_drvdata(self.0) }
    }
}

/// A VMBus channel (`struct vmbus_channel`).
///
/// # Invariants
///
/// `0` points to a channel that stays valid while its device is bound.
#[derive(Clone, Copy)]
pub(crate) struct Channel(*mut raw::vmbus_channel);

// SAFETY: the VMBus API may be called on a channel from any thread; every
// function used here does its own locking.
unsafe impl Send for Channel {}
// SAFETY: as above.
unsafe impl Sync for Channel {}

/// The channel callback: `ctx` is what was given to [`Channel::open`].
pub(crate) type Callback = unsafe extern "C" fn(ctx: *mut c_void);

impl Channel {
    /// Sets up transaction ids: `depth` requests may be in flight, and the ids
    /// on the wire are small slot numbers, never kernel addresses.
    pub(crate) fn use_requestor(&self, depth: u32) {
        // SAFETY: `self.0` is valid (type invariant) and not yet open, so
        // nothing else reads these fields concurrently.
        unsafe {
            (*self.0).rqstor_size = depth;
            (*self.0).next_request_id_callback = Some(raw::vmbus_next_request_id);
            (*self.0).request_addr_callback = Some(raw::vmbus_request_addr);
        }
    }

    /// Opens the channel with rings of `ring_size` bytes each way.
    ///
    /// # Safety
    ///
    /// `ctx` must stay valid for `callback` until [`Channel::close`] returns.
    pub(crate) unsafe fn open(&self, ring_size: u32, callback: Callback, ctx: *mut c_void) -> Result {
        // SAFETY: `self.0` is valid (type invariant); the caller keeps `ctx` alive.
        let ret = unsafe {
            raw::vmbus_open(self.0, ring_size, ring_size, core::ptr::null_mut(), 0, Some(callback), ctx)
        };
        kernel::error::to_result(ret)
    }

    /// Closes the channel: when it returns, the callback no longer runs.
    pub(crate) fn close(&self) {
        // SAFETY: `self.0` is valid (type invariant) and was opened.
        unsafe { raw::vmbus_close(self.0) }
    }

    /// Sends a GPA-direct packet: `desc` is a `struct vmbus_packet_mpb_array`
    /// with its PFNs (u64-aligned), `payload` the inline message. `request` is
    /// what [`Channel::complete`] returns for the completion of this packet.
    ///
    /// # Errors
    ///
    /// `EAGAIN` when the ring (or the requestor) is full, `ENODEV` when the
    /// channel is rescinded, `EIO` when the ring is corrupt.
    pub(crate) fn send_gpa_direct(&self, desc: &mut [u64], payload: &[u8], request: u64) -> Result {
        let desc_size = u32::try_from(desc.len() * 8).map_err(|_| EINVAL)?;
        let len = u32::try_from(payload.len()).map_err(|_| EINVAL)?;
        // SAFETY: `self.0` is valid (type invariant); `desc` is a suitably
        // aligned mpb array of `desc_size` bytes and `payload` is `len` bytes,
        // both live for the call; the bus only copies `payload` into the ring
        // (its C prototype is not const, it does not write through it).
        let ret = unsafe {
            raw::vmbus_sendpacket_mpb_desc(
                self.0,
                desc.as_mut_ptr().cast(),
                desc_size,
                payload.as_ptr().cast_mut().cast(),
                len,
                request,
            )
        };
        kernel::error::to_result(ret)
    }

    /// Calls `f` with a private copy of each packet the host sent (header
    /// included), then tells the host the ring space is free.
    pub(crate) fn for_each_packet(&self, mut f: impl FnMut(&[u8])) {
        // SAFETY: `self.0` is valid (type invariant); called from the channel
        // callback, the only reader of the inbound ring.
        let mut desc = unsafe { raw::hv_pkt_iter_first(self.0) };
        while !desc.is_null() {
            // SAFETY: `desc` points to the bus's private copy of the packet,
            // `len8 * 8` bytes long (the bus clamps len8 to what it copied).
            let bytes = unsafe {
                let len = usize::from((*desc).len8) * 8;
                core::slice::from_raw_parts(desc.cast::<u8>(), len)
            };
            f(bytes);
            // SAFETY: `desc` came from the iterator of this channel.
            desc = unsafe { raw::__hv_pkt_iter_next(self.0, desc) };
        }
        // SAFETY: ends the iteration begun above.
        unsafe { raw::hv_pkt_iter_close(self.0) };
    }

    /// Asks the host to signal the channel once `bytes` are free in the
    /// outbound ring (0: no longer waiting).
    pub(crate) fn set_pending_send_size(&self, bytes: u32) {
        // SAFETY: `self.0` is valid (type invariant); the helper locks the ring.
        unsafe { raw::set_channel_pending_send_size(self.0, bytes) }
    }

    /// Takes the transaction id of a completion back from the requestor:
    /// the value given to [`Channel::send_gpa_direct`], or `None` if the id
    /// is unknown or already completed (a confused or hostile host).
    pub(crate) fn complete(&self, trans_id: u64) -> Option<u64> {
        // SAFETY: `self.0` is valid (type invariant); the requestor locks itself.
        match unsafe { raw::vmbus_request_addr(self.0, trans_id) } {
            VMBUS_RQST_ERROR | VMBUS_NO_RQSTOR => None,
            addr => Some(addr),
        }
    }
}

/// A registered `hv_driver`; unregistered when dropped.
pub(crate) struct DriverRegistration {
    drv: KBox<raw::hv_driver>,
    _ids: KBox<[raw::hv_vmbus_device_id; 2]>,
}

// SAFETY: the boxed C structs are only touched by the bus core after
// registration, which serialises its own accesses.
unsafe impl Send for DriverRegistration {}
// SAFETY: as above; `&DriverRegistration` gives no access to them.
unsafe impl Sync for DriverRegistration {}

impl DriverRegistration {
    /// Registers driver `T` for devices of class `class` (guid_t byte order).
    pub(crate) fn new<T: Driver>(
        module: &'static ThisModule,
        name: &'static CStr,
        class: &[u8; 16],
    ) -> Result<Self> {
        let mut ids = KBox::new([raw::hv_vmbus_device_id::default(); 2], GFP_KERNEL)?;
        ids[0].guid.b = *class;
        let mut drv = KBox::new(raw::hv_driver::default(), GFP_KERNEL)?;
        drv.name = name.as_char_ptr().cast();
        drv.id_table = ids.as_ptr();
        drv.probe = Some(probe_callback::<T>);
        drv.remove = Some(remove_callback::<T>);
        drv.suspend = Some(suspend_callback::<T>);
        drv.resume = Some(resume_callback::<T>);
        // SAFETY: `drv` and `ids` are heap allocations that live in `Self`
        // until `drop` unregisters the driver.
        let ret = unsafe {
            raw::__vmbus_driver_register(&mut *drv, module.as_ptr().cast(), name.as_char_ptr().cast())
        };
        kernel::error::to_result(ret)?;
        Ok(Self { drv, _ids: ids })
    }
}

impl Drop for DriverRegistration {
    fn drop(&mut self) {
        // SAFETY: registered in `new`; unbinds every device (remove runs).
        unsafe { raw::vmbus_driver_unregister(&mut *self.drv) };
    }
}

unsafe extern "C" fn probe_callback<T: Driver>(
    dev: *mut raw::hv_device,
    _id: *const raw::hv_vmbus_device_id,
) -> c_int {
    // INVARIANT: the bus passes a device that stays valid until remove.
    match T::probe(Device(dev)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn remove_callback<T: Driver>(dev: *mut raw::hv_device) {
    // INVARIANT: the device is valid until this callback returns.
    T::remove(Device(dev))
}

/// Whether the calling task's credentials are `cred` (the very object, as
/// the 2021 driver compared `file->f_cred` with `current_cred()`).
pub(crate) fn current_cred_is(cred: *const kernel::bindings::cred) -> bool {
    // SAFETY: current_cred() is always valid in process context.
    let current = unsafe { raw::az_blob_current_cred() };
    core::ptr::eq(current.cast::<u8>(), cred.cast::<u8>())
}

/// A workqueue owned by the module: destroying it waits for every work item
/// queued on it, so none can run module code after the module is gone.
pub(crate) struct OwnedQueue(core::ptr::NonNull<kernel::bindings::workqueue_struct>);

// SAFETY: a workqueue may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: queueing work is thread-safe.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: plain allocation of a workqueue.
        let ptr = unsafe { raw::az_blob_alloc_workqueue() };
        core::ptr::NonNull::new(ptr.cast()).map(Self).ok_or(ENOMEM)
    }

    pub(crate) fn raw(&self) -> core::ptr::NonNull<kernel::bindings::workqueue_struct> {
        self.0
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`; drains and frees it.
        unsafe { raw::destroy_workqueue(self.0.as_ptr().cast()) }
    }
}

unsafe extern "C" fn suspend_callback<T: Driver>(dev: *mut raw::hv_device) -> c_int {
    // INVARIANT: the bus calls this on a bound device, under its device lock.
    match T::suspend(Device(dev)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn resume_callback<T: Driver>(dev: *mut raw::hv_device) -> c_int {
    // INVARIANT: the bus calls this on a bound device, under its device lock.
    match T::resume(Device(dev)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
