// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The C ABI of the user library: `libazure_blob.so` / `libazure_blob.a`,
//! declared by `include/azure_blob.h` (the contract: ownership, threads,
//! return values are documented there).
//!
//! Every exported function checks its pointers (NULL -> `-EINVAL`), runs
//! its body under `catch_unwind` (no panic crosses into C) and records the
//! outcome in a thread-local last error.
#![allow(unsafe_code)] // a C ABI takes raw pointers from C callers; see the SAFETY comments
#![allow(non_camel_case_types)] // the C type names, as the header spells them

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use azure::{BlobServiceClient, Device, Error, Exchange, UploadOptions};

/// A client (opaque to C): the client API, and for the VSC transport an
/// open device for raw requests.
pub struct azblob_client {
    service: BlobServiceClient,
    device: Option<Device>,
}

/// `typedef int (*azblob_list_containers_cb)(const char *name, void *ctx);`
pub type azblob_list_containers_cb =
    Option<unsafe extern "C" fn(*const c_char, *mut c_void) -> c_int>;

/// `typedef int (*azblob_list_blobs_cb)(const char *name, uint64_t size, void *ctx);`
pub type azblob_list_blobs_cb =
    Option<unsafe extern "C" fn(*const c_char, u64, *mut c_void) -> c_int>;

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("the version has a NUL"),
    };

/// Why a call failed: what the last-error functions report.
#[derive(Debug)]
struct Failure {
    /// Positive errno.
    errno: c_int,
    status: u16,
    code: String,
    message: String,
}

impl Failure {
    fn new(errno: c_int, message: impl Into<String>) -> Self {
        Self {
            errno,
            status: 0,
            code: String::new(),
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(libc::EINVAL, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self {
            errno: e.errno().raw_os_error(),
            status: e.status().unwrap_or(0),
            code: e.error_code().unwrap_or_default().to_string(),
            message: e.to_string(),
        }
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// The thread's last error, as C strings the caller may hold until its next call.
struct LastError {
    message: CString,
    status: c_int,
    code: CString,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError {
        message: CString::default(),
        status: 0,
        code: CString::default(),
    });
}

/// A C string of `s`, with any NUL (impossible in practice) replaced.
fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

fn record(f: Option<&Failure>) {
    // try_: never a panic, even while the thread's locals are torn down.
    let _ = LAST.try_with(|l| {
        let Ok(mut l) = l.try_borrow_mut() else {
            return;
        };
        match f {
            None => {
                l.message = CString::default();
                l.status = 0;
                l.code = CString::default();
            }
            Some(f) => {
                l.message = c_string(&f.message);
                l.status = c_int::from(f.status);
                l.code = c_string(&f.code);
            }
        }
    });
}

/// Runs one exported call: the body under `catch_unwind`, its result as
/// 0 / a negative errno / the callback's stop value, and the last error.
fn run(what: &str, body: impl FnOnce() -> Result<c_int>) -> c_int {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(rc)) => {
            record(None);
            return rc;
        }
        Ok(Err(mut f)) => {
            f.message = format!("{what}: {}", f.message);
            f
        }
        Err(_) => Failure::new(
            libc::EIO,
            format!("{what}: internal error (the library panicked)"),
        ),
    };
    record(Some(&failure));
    -failure.errno.max(1)
}

/// The string at `p`, which must be valid UTF-8.
///
/// # Safety
///
/// `p` is NULL or points at a NUL-terminated string valid for `'a`.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller vouches for the string.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
}

/// As [`text`], with NULL meaning `None`.
///
/// # Safety
///
/// As [`text`].
unsafe fn opt_text<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { text(p, what) }.map(Some)
    }
}

/// The client behind a handle.
///
/// # Safety
///
/// `p` is NULL or a handle of `azblob_client_open_*` not yet freed.
unsafe fn client<'a>(p: *const azblob_client) -> Result<&'a azblob_client> {
    // SAFETY: a live handle is a valid, shared (Sync) `azblob_client`.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::invalid("the client is NULL"))
}

/// Stores through an out pointer.
///
/// # Safety
///
/// `p` is NULL or valid for a write of `T`.
unsafe fn put<T>(p: *mut T, v: T, what: &str) -> Result<()> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller vouches for it.
    unsafe { p.write(v) };
    Ok(())
}

fn check_len(len: usize, what: &str) -> Result<()> {
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what}: {len} bytes is too large"
        )));
    }
    Ok(())
}

/// The caller's input buffer.
///
/// # Safety
///
/// `p` is NULL or valid for reads of `len` bytes for `'a`.
unsafe fn input<'a>(p: *const c_void, len: usize, what: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    check_len(len, what)?;
    // SAFETY: non-NULL, at most isize::MAX bytes, readable per the caller.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// The caller's output buffer; bytes from `keep` on are zeroed first (C
/// buffers may be uninitialized, a `&mut [u8]` may not).
///
/// # Safety
///
/// `p` is NULL or valid for reads and writes of `len` bytes for `'a`, and
/// nothing else accesses them meanwhile; its first `keep` bytes are
/// initialized.
unsafe fn output<'a>(p: *mut c_void, len: usize, keep: usize, what: &str) -> Result<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    check_len(len, what)?;
    let keep = keep.min(len);
    // SAFETY: within the caller's writable `len` bytes.
    unsafe { std::ptr::write_bytes(p.cast::<u8>().add(keep), 0, len - keep) };
    // SAFETY: non-NULL, at most isize::MAX bytes, writable, initialized
    // (just above, or by the caller) and not aliased, per the caller.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) })
}

/// Reads the thread's last error, or gives `default` if it cannot (never panics).
fn last<T>(read: impl FnOnce(&LastError) -> T, default: T) -> T {
    LAST.try_with(|l| l.try_borrow().ok().map(|l| read(&l)))
        .ok()
        .flatten()
        .unwrap_or(default)
}

/// The library's version, "MAJOR.MINOR.PATCH".
#[no_mangle]
pub extern "C" fn azblob_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The thread's last error message, "" after a success.
#[no_mangle]
pub extern "C" fn azblob_last_error_message() -> *const c_char {
    last(|l| l.message.as_ptr(), c"".as_ptr())
}

/// The thread's last HTTP status, 0 if none.
#[no_mangle]
pub extern "C" fn azblob_last_http_status() -> c_int {
    last(|l| l.status, 0)
}

/// The thread's last x-ms-error-code, "" if none.
#[no_mangle]
pub extern "C" fn azblob_last_error_code() -> *const c_char {
    last(|l| l.code.as_ptr(), c"".as_ptr())
}

/// A static description of an errno.
#[no_mangle]
pub extern "C" fn azblob_strerror(err: c_int) -> *const c_char {
    let s: &'static CStr = match err.unsigned_abs() as c_int {
        0 => c"success",
        libc::EPERM => c"operation not permitted",
        libc::ENOENT => c"no such container, blob or device",
        libc::EINTR => c"interrupted",
        libc::EIO => c"input/output error (the service, host or connection failed)",
        libc::ENXIO => c"no such device or address",
        libc::E2BIG => c"argument list too long",
        libc::EBADF => c"bad file descriptor",
        libc::EAGAIN => c"resource temporarily unavailable",
        libc::ENOMEM => c"out of memory",
        libc::ENOTTY => c"not an azure_blob device (inappropriate ioctl)",
        libc::EACCES => c"access denied (wrong key, or the device's permissions)",
        libc::EFAULT => c"bad address",
        libc::EBUSY => c"busy",
        libc::EEXIST => c"already exists",
        libc::ENODEV => c"no such device (the device went away)",
        libc::EINVAL => c"invalid argument",
        libc::ENOSPC => c"no space left",
        libc::EPIPE => c"broken pipe",
        libc::ERANGE => c"out of range",
        libc::EPROTO => c"protocol error",
        libc::EMSGSIZE => c"message too long",
        libc::EOPNOTSUPP => c"not supported by this transport",
        libc::EADDRNOTAVAIL => c"address not available",
        libc::ENETUNREACH => c"network unreachable",
        libc::ECONNABORTED => c"connection aborted",
        libc::ECONNRESET => c"connection reset by peer",
        libc::ETIMEDOUT => c"timed out",
        libc::ECONNREFUSED => c"connection refused",
        libc::EHOSTUNREACH => c"host unreachable",
        libc::ECANCELED => c"canceled",
        _ => c"unknown error",
    };
    s.as_ptr()
}

/// Stores a new client in `*out` (NULL on failure).
///
/// # Safety
///
/// `out` is NULL or valid for a write of a pointer.
unsafe fn open(
    what: &str,
    out: *mut *mut azblob_client,
    make: impl FnOnce() -> Result<azblob_client>,
) -> c_int {
    run(what, || {
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        // SAFETY: non-NULL and writable per the caller.
        unsafe { out.write(std::ptr::null_mut()) };
        let c = Box::into_raw(Box::new(make()?));
        // SAFETY: as above.
        unsafe { out.write(c) };
        Ok(0)
    })
}

/// A client on `/dev/azure_blob`.
///
/// # Safety
///
/// `device` and `account` are NULL or C strings; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn azblob_client_open_vsc(
    device: *const c_char,
    account: *const c_char,
    out: *mut *mut azblob_client,
) -> c_int {
    // SAFETY: the caller's guarantees, passed on.
    unsafe {
        open("azblob_client_open_vsc", out, || {
            let path = opt_text(device, "device")?.unwrap_or(azure::DEFAULT_PATH);
            let account = opt_text(account, "account")?.unwrap_or(azure::DEV_ACCOUNT);
            if account.is_empty() {
                return Err(Failure::invalid("the account is empty"));
            }
            // One descriptor for the client API, one for raw requests.
            let service = BlobServiceClient::vsc(Device::open_path(path)?, account);
            let device = Some(Device::open_path(path)?);
            Ok(azblob_client { service, device })
        })
    }
}

/// A client over HTTP(S).
///
/// # Safety
///
/// `endpoint`, `account` and `key_base64` are NULL or C strings; `out` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn azblob_client_open_http(
    endpoint: *const c_char,
    account: *const c_char,
    key_base64: *const c_char,
    out: *mut *mut azblob_client,
) -> c_int {
    // SAFETY: the caller's guarantees, passed on.
    unsafe {
        open("azblob_client_open_http", out, || {
            let endpoint = text(endpoint, "endpoint")?;
            let account = opt_text(account, "account")?.unwrap_or(azure::DEV_ACCOUNT);
            let key = opt_text(key_base64, "key")?.unwrap_or(azure::DEV_KEY);
            if account.is_empty() {
                return Err(Failure::invalid("the account is empty"));
            }
            let service = BlobServiceClient::http(endpoint, account, key)?;
            Ok(azblob_client {
                service,
                device: None,
            })
        })
    }
}

/// Destroys a client.
///
/// # Safety
///
/// `client` is NULL or a handle not yet freed, which no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn azblob_client_free(client: *mut azblob_client) {
    if client.is_null() {
        return;
    }
    // SAFETY: a live handle is a `Box` of ours, given back exactly once.
    let c = unsafe { Box::from_raw(client) };
    // Dropping closes sockets and the device; nothing there should panic,
    // and if it did, the unwind must stop here.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(c)));
}

/// Creates a container.
///
/// # Safety
///
/// `client` is NULL or a live handle; `container` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn azblob_container_create(
    client: *mut azblob_client,
    container: *const c_char,
) -> c_int {
    run("azblob_container_create", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, name) = unsafe { (self::client(client)?, text(container, "container")?) };
        c.service
            .container_client(name)
            .create(&Default::default())?;
        Ok(0)
    })
}

/// Deletes a container.
///
/// # Safety
///
/// `client` is NULL or a live handle; `container` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn azblob_container_delete(
    client: *mut azblob_client,
    container: *const c_char,
) -> c_int {
    run("azblob_container_delete", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, name) = unsafe { (self::client(client)?, text(container, "container")?) };
        c.service
            .container_client(name)
            .delete(&Default::default())?;
        Ok(0)
    })
}

/// Whether a container exists.
///
/// # Safety
///
/// `client` is NULL or a live handle; `container` is NULL or a C string;
/// `exists` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn azblob_container_exists(
    client: *mut azblob_client,
    container: *const c_char,
    exists: *mut c_int,
) -> c_int {
    run("azblob_container_exists", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, name) = unsafe { (self::client(client)?, text(container, "container")?) };
        if exists.is_null() {
            return Err(Failure::invalid("exists is NULL"));
        }
        let yes = c.service.container_client(name).exists()?;
        // SAFETY: the caller's guarantee.
        unsafe { put(exists, c_int::from(yes), "exists")? };
        Ok(0)
    })
}

/// Gives each name to a C callback until it asks to stop.
fn each(
    names: impl Iterator<Item = (String, u64)>,
    mut cb: impl FnMut(&CStr, u64) -> c_int,
) -> Result<c_int> {
    for (name, size) in names {
        let name = CString::new(name)
            .map_err(|_| Failure::new(libc::EIO, "the service sent a name with a NUL"))?;
        let rc = cb(&name, size);
        if rc != 0 {
            return Ok(rc);
        }
    }
    Ok(0)
}

/// Lists the containers.
///
/// # Safety
///
/// `client` is NULL or a live handle; `prefix` is NULL or a C string; `cb`
/// is NULL or a function that may be called with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn azblob_list_containers(
    client: *mut azblob_client,
    prefix: *const c_char,
    cb: azblob_list_containers_cb,
    ctx: *mut c_void,
) -> c_int {
    run("azblob_list_containers", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, prefix) = unsafe { (self::client(client)?, opt_text(prefix, "prefix")?) };
        let cb = cb.ok_or_else(|| Failure::invalid("the callback is NULL"))?;
        let items = c.service.list_containers(&azure::ListContainersOptions {
            prefix: prefix.filter(|p| !p.is_empty()).map(str::to_string),
            ..Default::default()
        })?;
        // SAFETY: `name` lives across the call; the caller vouches for `cb` and `ctx`.
        each(items.into_iter().map(|i| (i.name, 0)), |name, _| unsafe {
            cb(name.as_ptr(), ctx)
        })
    })
}

/// Uploads a block blob.
///
/// # Safety
///
/// `client` is NULL or a live handle; `container` and `blob` are NULL or C
/// strings; `data` is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn azblob_blob_upload(
    client: *mut azblob_client,
    container: *const c_char,
    blob: *const c_char,
    data: *const c_void,
    len: usize,
) -> c_int {
    run("azblob_blob_upload", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, cont, name, data) = unsafe {
            (
                self::client(client)?,
                text(container, "container")?,
                text(blob, "blob")?,
                input(data, len, "data")?,
            )
        };
        c.service
            .container_client(cont)
            .blob_client(name)
            .upload(data, &UploadOptions::default())?;
        Ok(0)
    })
}

/// Reads a range of a blob, like pread.
///
/// # Safety
///
/// `client` is NULL or a live handle; `container` and `blob` are NULL or C
/// strings; `buf` is NULL or writable for `cap` bytes; `out_len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn azblob_blob_download(
    client: *mut azblob_client,
    container: *const c_char,
    blob: *const c_char,
    offset: u64,
    buf: *mut c_void,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    run("azblob_blob_download", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, cont, name) = unsafe {
            (
                self::client(client)?,
                text(container, "container")?,
                text(blob, "blob")?,
            )
        };
        if out_len.is_null() {
            return Err(Failure::invalid("out_len is NULL"));
        }
        // SAFETY: the caller's guarantee.
        let buf = unsafe { output(buf, cap, 0, "buf")? };
        let b = c.service.container_client(cont).blob_client(name);
        let n = if buf.is_empty() {
            // Nothing to read, but the blob must exist.
            b.get_properties(&Default::default())?;
            0
        } else {
            match b.download_into(buf, offset) {
                Ok(n) => n,
                // A range at or past the end: nothing to read, as pread.
                Err(Error::Service { status: 416, .. })
                    if offset >= b.get_properties(&Default::default())?.content_length =>
                {
                    0
                }
                Err(e) => return Err(e.into()),
            }
        };
        // SAFETY: the caller's guarantee.
        unsafe { put(out_len, n, "out_len")? };
        Ok(0)
    })
}

/// A blob's size.
///
/// # Safety
///
/// `client` is NULL or a live handle; `container` and `blob` are NULL or C
/// strings; `size` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn azblob_blob_size(
    client: *mut azblob_client,
    container: *const c_char,
    blob: *const c_char,
    size: *mut u64,
) -> c_int {
    run("azblob_blob_size", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, cont, name) = unsafe {
            (
                self::client(client)?,
                text(container, "container")?,
                text(blob, "blob")?,
            )
        };
        if size.is_null() {
            return Err(Failure::invalid("size is NULL"));
        }
        let p = c
            .service
            .container_client(cont)
            .blob_client(name)
            .get_properties(&Default::default())?;
        // SAFETY: the caller's guarantee.
        unsafe { put(size, p.content_length, "size")? };
        Ok(0)
    })
}

/// Whether a blob exists.
///
/// # Safety
///
/// `client` is NULL or a live handle; `container` and `blob` are NULL or C
/// strings; `exists` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn azblob_blob_exists(
    client: *mut azblob_client,
    container: *const c_char,
    blob: *const c_char,
    exists: *mut c_int,
) -> c_int {
    run("azblob_blob_exists", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, cont, name) = unsafe {
            (
                self::client(client)?,
                text(container, "container")?,
                text(blob, "blob")?,
            )
        };
        if exists.is_null() {
            return Err(Failure::invalid("exists is NULL"));
        }
        let yes = c
            .service
            .container_client(cont)
            .blob_client(name)
            .exists()?;
        // SAFETY: the caller's guarantee.
        unsafe { put(exists, c_int::from(yes), "exists")? };
        Ok(0)
    })
}

/// Deletes a blob.
///
/// # Safety
///
/// `client` is NULL or a live handle; `container` and `blob` are NULL or C
/// strings.
#[no_mangle]
pub unsafe extern "C" fn azblob_blob_delete(
    client: *mut azblob_client,
    container: *const c_char,
    blob: *const c_char,
) -> c_int {
    run("azblob_blob_delete", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, cont, name) = unsafe {
            (
                self::client(client)?,
                text(container, "container")?,
                text(blob, "blob")?,
            )
        };
        c.service
            .container_client(cont)
            .blob_client(name)
            .delete(&Default::default())?;
        Ok(0)
    })
}

/// Lists the blobs of a container.
///
/// # Safety
///
/// `client` is NULL or a live handle; `container` and `prefix` are NULL or
/// C strings; `cb` is NULL or a function that may be called with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn azblob_list_blobs(
    client: *mut azblob_client,
    container: *const c_char,
    prefix: *const c_char,
    cb: azblob_list_blobs_cb,
    ctx: *mut c_void,
) -> c_int {
    run("azblob_list_blobs", || {
        // SAFETY: the caller's guarantees, passed on.
        let (c, cont, prefix) = unsafe {
            (
                self::client(client)?,
                text(container, "container")?,
                opt_text(prefix, "prefix")?,
            )
        };
        let cb = cb.ok_or_else(|| Failure::invalid("the callback is NULL"))?;
        let listing = c
            .service
            .container_client(cont)
            .list_blobs(&azure::ListBlobsOptions {
                prefix: prefix.filter(|p| !p.is_empty()).map(str::to_string),
                ..Default::default()
            })?;
        let items = listing
            .blobs
            .into_iter()
            .map(|b| (b.name, b.properties.content_length));
        // SAFETY: `name` lives across the call; the caller vouches for `cb` and `ctx`.
        each(items, |name, size| unsafe { cb(name.as_ptr(), size, ctx) })
    })
}

/// Whether two buffers share a byte.
fn overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.1 != 0 && b.1 != 0 && a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

/// One raw ioctl exchange on `/dev/azure_blob`.
///
/// # Safety
///
/// `client` is NULL or a live handle; `guid` is NULL or readable for 16
/// bytes; `request` is NULL or readable for `request_len` bytes; `response`
/// and `data` are NULL or writable for `response_cap` / `data_cap` bytes,
/// the first `data_valid` bytes of `data` initialized; `host_status` and
/// `response_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn azblob_raw_request(
    client: *mut azblob_client,
    guid: *const u8,
    timeout_ms: u32,
    request: *const c_void,
    request_len: usize,
    response: *mut c_void,
    response_cap: usize,
    data: *mut c_void,
    data_cap: usize,
    data_valid: usize,
    host_status: *mut u32,
    response_len: *mut u32,
) -> c_int {
    run("azblob_raw_request", || {
        // SAFETY: the caller's guarantee.
        let c = unsafe { self::client(client)? };
        if host_status.is_null() || response_len.is_null() {
            return Err(Failure::invalid("host_status or response_len is NULL"));
        }
        if data_valid > data_cap {
            return Err(Failure::invalid(format!(
                "data_valid ({data_valid}) is more than data_cap ({data_cap})"
            )));
        }
        let bufs = [
            (request as usize, request_len),
            (response as usize, response_cap),
            (data as usize, data_cap),
        ];
        if overlap(bufs[0], bufs[1]) || overlap(bufs[0], bufs[2]) || overlap(bufs[1], bufs[2]) {
            return Err(Failure::invalid("the buffers overlap"));
        }
        let Some(device) = &c.device else {
            return Err(Failure::new(
                libc::EOPNOTSUPP,
                "raw requests need the /dev/azure_blob transport (azblob_client_open_vsc)",
            ));
        };
        let mut id = [0u8; 16];
        if !guid.is_null() {
            // SAFETY: readable for 16 bytes per the caller; `id` is ours.
            unsafe { std::ptr::copy_nonoverlapping(guid, id.as_mut_ptr(), 16) };
        }
        // SAFETY: the caller's guarantees; the three buffers do not overlap
        // (checked above), so the one shared and two unique borrows are sound.
        let (request, response, data) = unsafe {
            (
                input(request, request_len, "request")?,
                output(response, response_cap, 0, "response")?,
                output(data, data_cap, data_valid, "data")?,
            )
        };
        let reply = device.request(&mut Exchange {
            guid: id,
            timeout_ms,
            request,
            response,
            data,
            data_valid,
        })?;
        // SAFETY: both checked non-NULL above, writable per the caller.
        unsafe {
            host_status.write(reply.status);
            response_len.write(reply.response_len);
        }
        Ok(0)
    })
}
