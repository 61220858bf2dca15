// SPDX-License-Identifier: GPL-2.0
//! One request: the user's struct, validated; its buffers, pinned; the
//! GPA-direct packet that carries them to the host; and the wait for the
//! host's completion.

use crate::defs::{
    AzBlobRequestSync, AzBlobRequestSyncResponse, AzBlobVspRequest, AZ_BLOB_DRIVER_USER_REQUEST,
    AZ_BLOB_MAX_PAGES, HV_PAGE_SIZE, VSP_PROTOCOL_VERSION_V1,
};
use crate::pages::{span_pages, PinnedBuffer};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use crate::device::Shared;
use kernel::{
    bindings,
    prelude::*,
    sync::Arc,
    transmute::{AsBytes, FromBytes},
    types::Opaque,
    workqueue::{impl_has_work, new_work, Queue, Work, WorkItem},
};

// SAFETY: all fields are integers or integer arrays; every bit pattern is valid.
unsafe impl FromBytes for AzBlobRequestSync {}
// SAFETY: `#[repr(C)]` with no padding (the padding is the explicit `reserved`).
unsafe impl AsBytes for AzBlobRequestSyncResponse {}

/// Largest length of one buffer: the whole page budget.
const MAX_BUFFER_LEN: u32 = AZ_BLOB_MAX_PAGES * HV_PAGE_SIZE;

/// Checks the user's struct (v5's rules, overflow-safe) and returns the
/// number of pages each buffer spans: (data, request, response).
///
/// # Errors
///
/// `EINVAL` for a zero request or response length, `data_valid > data_len`,
/// a length over 8192 pages, a buffer whose span overflows, or more than
/// 8192 pages in all.
pub(crate) fn validate(req: &AzBlobRequestSync) -> Result<(usize, usize, usize)> {
    if req.request_len == 0 || req.response_len == 0 || req.data_valid > req.data_len {
        return Err(EINVAL);
    }
    if req.request_len > MAX_BUFFER_LEN || req.response_len > MAX_BUFFER_LEN || req.data_len > MAX_BUFFER_LEN {
        return Err(EINVAL);
    }
    let data = if req.data_len == 0 { 0 } else { span_pages(req.data_buffer, req.data_len).ok_or(EINVAL)? };
    let request = span_pages(req.request_buffer, req.request_len).ok_or(EINVAL)?;
    let response = span_pages(req.response_buffer, req.response_len).ok_or(EINVAL)?;
    let total = data + request + response;
    if total > AZ_BLOB_MAX_PAGES as usize {
        return Err(EINVAL);
    }
    Ok((data, request, response))
}

/// The three buffers of a request, pinned.
pub(crate) struct Buffers {
    pub(crate) data: PinnedBuffer,
    pub(crate) request: PinnedBuffer,
    pub(crate) response: PinnedBuffer,
}

impl Buffers {
    /// Pins the buffers of a validated request. The host reads the request
    /// buffer and writes the response and data buffers.
    pub(crate) fn pin(req: &AzBlobRequestSync) -> Result<Self> {
        let data = if req.data_len == 0 {
            PinnedBuffer::empty()
        } else {
            PinnedBuffer::pin(req.data_buffer, req.data_len, true)?
        };
        let request = PinnedBuffer::pin(req.request_buffer, req.request_len, false)?;
        let response = PinnedBuffer::pin(req.response_buffer, req.response_len, true)?;
        Ok(Self { data, request, response })
    }

    fn total_pages(&self) -> usize {
        self.data.len() + self.request.len() + self.response.len()
    }

    /// Builds the `struct vmbus_packet_mpb_array` (as u64 words: descriptor,
    /// reserved + rangecount, range len + offset, then the PFNs) and the VSP
    /// message, exactly as the 2021 driver lays them out: one range at offset
    /// 0 over the data pages, then the request pages, then the response pages.
    pub(crate) fn packet(&self, req: &AzBlobRequestSync) -> Result<(KVVec<u64>, AzBlobVspRequest)> {
        let n = self.total_pages();
        let page = HV_PAGE_SIZE as usize;
        let mut desc = KVVec::with_capacity(4 + n, GFP_KERNEL)?;
        desc.push(0, GFP_KERNEL)?; // type, offset8, len8, flags: set by the bus
        desc.push(0, GFP_KERNEL)?; // transaction id: set by the bus
        desc.push(1u64 << 32, GFP_KERNEL)?; // reserved = 0, rangecount = 1
        let range_len = u64::try_from(n * page).map_err(|_| EINVAL)?;
        desc.push(range_len, GFP_KERNEL)?; // len, offset = 0
        let pfns = Iterator::chain(Iterator::chain(self.data.pfns(), self.request.pfns()), self.response.pfns());
        for pfn in pfns {
            desc.push(pfn, GFP_KERNEL)?;
        }
        let off = |pages_before: usize, first: usize| u32::try_from(pages_before * page + first).map_err(|_| EINVAL);
        let data_pages = self.data.len();
        let msg = AzBlobVspRequest {
            version: VSP_PROTOCOL_VERSION_V1,
            timeout_ms: req.timeout,
            data_buffer_offset: if req.data_len == 0 { 0 } else { off(0, self.data.offset())? },
            data_buffer_length: req.data_len,
            data_buffer_valid: req.data_valid,
            operation_type: AZ_BLOB_DRIVER_USER_REQUEST,
            request_buffer_offset: off(data_pages, self.request.offset())?,
            request_buffer_length: req.request_len,
            response_buffer_offset: off(data_pages + self.request.len(), self.response.offset())?,
            response_buffer_length: req.response_len,
            transaction_id: req.guid,
        };
        Ok((desc, msg))
    }
}

/// A request the caller is still waiting for.
const WAITING: u8 = 0;
/// The host has answered.
const COMPLETED: u8 = 1;
/// The caller was killed first: the request owns its pinned buffers until
/// the host answers (the host may still write them).
const ABANDONED: u8 = 2;

/// What a request in flight shares with the channel callback.
#[pin_data]
pub(crate) struct Pending {
    #[pin]
    done: Opaque<bindings::completion>,
    status: AtomicU32,
    response_len: AtomicU32,
    /// Set by whoever takes the reference the token stands for.
    token_claimed: AtomicBool,
    /// WAITING, COMPLETED or ABANDONED.
    state: AtomicU8,
    /// An abandoned request's buffers: written by the waiter before it sets
    /// ABANDONED, taken by the work item queued by the completion.
    orphan: Opaque<Option<Buffers>>,
    /// The device, counted out when an abandoned request is done.
    owner: Arc<Shared>,
    /// The device's sequence number of this request.
    seq: u64,
    #[pin]
    work: Work<Pending>,
}

// SAFETY: `orphan` is accessed by one side at a time, as `state` hands it over.
unsafe impl Sync for Pending {}
// SAFETY: as above; the buffers themselves are `Send`.
unsafe impl Send for Pending {}

impl_has_work! {
    impl HasWork<Self> for Pending { self.work }
}

impl WorkItem for Pending {
    type Pointer = Arc<Pending>;

    /// Releases an abandoned request once the host has answered it.
    fn run(this: Arc<Pending>) {
        // SAFETY: this work is queued only by the completion that saw
        // ABANDONED; the waiter wrote `orphan` before setting ABANDONED and
        // no longer touches it.
        let buffers = unsafe { (*this.orphan.get()).take() };
        drop(buffers); // unpinned (and dirtied) now that the host is done
        let status = this.status.load(Ordering::Relaxed);
        this.owner.answered(this.seq, status, 0);
    }
}

impl Pending {
    pub(crate) fn new(owner: Arc<Shared>, seq: u64) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                done <- Opaque::ffi_init(|slot: *mut bindings::completion| {
                    // SAFETY: `slot` is valid for writing an uninitialised completion.
                    unsafe { bindings::init_completion(slot) }
                }),
                status: AtomicU32::new(0),
                response_len: AtomicU32::new(0),
                token_claimed: AtomicBool::new(false),
                state: AtomicU8::new(WAITING),
                orphan: Opaque::new(None),
                owner,
                seq,
                work <- new_work!("hv_azure_blob::Pending::work"),
            }),
            GFP_KERNEL,
        )
    }

    /// Makes the token the bus stores with the packet: one reference to this.
    pub(crate) fn into_token(this: &Arc<Self>) -> u64 {
        Arc::into_raw(this.clone()) as u64
    }

    /// Takes back the reference a token stands for, once: the first caller
    /// gets it, any later one `None`.
    ///
    /// # Safety
    ///
    /// `token` must come from [`Pending::into_token`], and the `Pending` must
    /// still be alive (the token's own reference keeps it alive until it is
    /// claimed, and its waiter holds one until the exchange ends).
    pub(crate) unsafe fn claim_token(token: u64) -> Option<Arc<Self>> {
        let ptr = token as *const Self;
        // SAFETY: alive, per the caller.
        if unsafe { &*ptr }.token_claimed.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the reference made by `into_token`, taken exactly once.
        Some(unsafe { Arc::from_raw(ptr) })
    }

    /// Records the host's answer and wakes the waiter; if the waiter is gone,
    /// queues the release of its buffers (any context).
    pub(crate) fn complete(this: Arc<Self>, status: u32, response_len: u32, queue: &Queue) {
        this.status.store(status, Ordering::Relaxed);
        this.response_len.store(response_len, Ordering::Relaxed);
        let was = this.state.swap(COMPLETED, Ordering::AcqRel);
        // SAFETY: `done` was initialised in `new`; complete() orders the
        // stores above before the waiter's wake-up.
        unsafe { bindings::complete(this.done.get()) };
        if was == ABANDONED {
            // Cannot fail: only this completion queues the work, once.
            let _ = queue.enqueue(this);
        }
    }

    fn answer(&self) -> AzBlobRequestSyncResponse {
        AzBlobRequestSyncResponse {
            status: self.status.load(Ordering::Relaxed),
            response_len: self.response_len.load(Ordering::Relaxed),
        }
    }

    /// Waits killably for the host's answer. If the caller is killed first,
    /// the buffers stay pinned, owned by this request, until the host answers
    /// (the host may still write them): `None`, and the request is no longer
    /// the caller's to count out.
    pub(crate) fn wait(&self, buffers: Buffers) -> Option<(AzBlobRequestSyncResponse, Buffers)> {
        // SAFETY: `done` was initialised in `new`.
        if unsafe { bindings::wait_for_completion_killable(self.done.get()) } == 0 {
            return Some((self.answer(), buffers));
        }
        // SAFETY: the state is WAITING or COMPLETED: nobody else reads `orphan`.
        unsafe { *self.orphan.get() = Some(buffers) };
        match self.state.compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => None,
            Err(_) => {
                // The answer came in first: the caller keeps its buffers.
                // SAFETY: COMPLETED without ABANDONED: the work is never queued.
                let buffers = unsafe { (*self.orphan.get()).take() }?;
                Some((self.answer(), buffers))
            }
        }
    }
}
