// SPDX-License-Identifier: GPL-2.0
//! User buffers pinned for the host (FOLL_PIN), unpinned when dropped.

use crate::hv::raw;
use kernel::{bindings, page::PAGE_SIZE, prelude::*};

/// A user buffer whose pages are pinned, so the host can read or write them
/// by guest physical address until this is dropped.
///
/// # Invariants
///
/// Each of `pages` holds one FOLL_PIN reference taken by `pin_user_pages_fast`.
pub(crate) struct PinnedBuffer {
    pages: KVVec<*mut bindings::page>,
    /// Offset of the buffer in its first page.
    offset: usize,
    /// Whether the host may write the pages (they are dirtied on unpin).
    writable: bool,
}

// SAFETY: pinned pages may be used and unpinned from any thread.
unsafe impl Send for PinnedBuffer {}
// SAFETY: `&PinnedBuffer` only reads the page pointers.
unsafe impl Sync for PinnedBuffer {}

/// Number of pages spanned by `len` bytes starting at user address `addr`.
pub(crate) fn span_pages(addr: u64, len: u32) -> Option<usize> {
    let offset = (addr as usize) & (PAGE_SIZE - 1);
    let end = offset.checked_add(len as usize)?;
    Some(end.div_ceil(PAGE_SIZE))
}

impl PinnedBuffer {
    /// An empty buffer (no data buffer).
    pub(crate) fn empty() -> Self {
        Self { pages: KVVec::new(), offset: 0, writable: false }
    }

    /// Pins `len` (> 0) bytes of user memory at `addr`; `writable` when the
    /// host writes into them (FOLL_WRITE: the pages are made private and
    /// present, never the shared zero page or a copy-on-write page).
    ///
    /// # Errors
    ///
    /// `EFAULT` if any page is not mapped (or not writable when asked),
    /// `ENOMEM` if the page array cannot be allocated, `EINVAL` on overflow.
    pub(crate) fn pin(addr: u64, len: u32, writable: bool) -> Result<Self> {
        let npages = span_pages(addr, len).ok_or(EINVAL)?;
        let start = (addr as usize) & !(PAGE_SIZE - 1);
        start.checked_add(npages * PAGE_SIZE).ok_or(EFAULT)?;
        let mut pages: KVVec<*mut bindings::page> = KVVec::with_capacity(npages, GFP_KERNEL)?;
        let flags = if writable { bindings::FOLL_WRITE } else { 0 };
        let mut this = Self { pages: KVVec::new(), offset: (addr as usize) & (PAGE_SIZE - 1), writable };
        while pages.len() < npages {
            let done = pages.len();
            let want = c_int_of(npages - done);
            // SAFETY: the spare capacity holds at least `want` entries;
            // pin_user_pages_fast writes at most `want` page pointers there.
            let got = unsafe {
                raw_pin(start + done * PAGE_SIZE, want, flags, pages.as_mut_ptr().add(done))
            };
            if got <= 0 {
                this.pages = pages;
                return Err(if got == 0 { EFAULT } else { Error::from_errno(got) });
            }
            // SAFETY: pin_user_pages_fast initialised `got` more entries.
            unsafe { pages.inc_len(got as usize) };
        }
        // INVARIANT: every entry was pinned above.
        this.pages = pages;
        Ok(this)
    }

    /// Number of pages.
    pub(crate) fn len(&self) -> usize {
        self.pages.len()
    }

    /// Offset of the buffer in its first page.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// The guest page frame numbers, in order.
    pub(crate) fn pfns(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.iter().map(|p| {
            // SAFETY: `p` is a pinned page (type invariant).
            unsafe { raw::az_blob_page_to_pfn(p.cast()) as u64 }
        })
    }
}

fn c_int_of(n: usize) -> core::ffi::c_int {
    core::ffi::c_int::try_from(n).unwrap_or(core::ffi::c_int::MAX)
}

/// # Safety
///
/// `pages` must have room for `nr` entries.
unsafe fn raw_pin(start: usize, nr: core::ffi::c_int, flags: u32, pages: *mut *mut bindings::page) -> core::ffi::c_int {
    // SAFETY: the caller gives room for `nr` entries; `start` is page aligned.
    unsafe { bindings::pin_user_pages_fast(start, nr, flags, pages) }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        if self.pages.is_empty() {
            return;
        }
        // SAFETY: every entry holds one pin (type invariant), released once here.
        unsafe {
            bindings::unpin_user_pages_dirty_lock(
                self.pages.as_mut_ptr(),
                self.pages.len() as _,
                self.writable,
            )
        };
    }
}
