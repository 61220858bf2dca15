// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The tests. Each returns `Ok` or a reason; none can pass without the
//! driver and the host actually moving the bytes it checks.
// The error-path tests hand the kernel structs no safe API would build.
#![allow(unsafe_code)]

use crate::control::Control;
use crate::Outcome;
use azure_blob::{Device, Exchange, DEFAULT_PATH};
use hv_azure_blob_proto::{
    AzBlobRequestSync, AZ_BLOB_MAX_PAGES, AZ_BLOB_STATUS_BUFFER_TOO_SMALL,
    IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY,
};
use rustix::io::Errno;

pub(crate) const PAGE: usize = 4096;

type Test = Box<dyn FnOnce() -> Outcome>;

/// Every test, in order (later ones rely on the device being back).
pub(crate) fn all(control: Option<String>) -> Vec<(&'static str, Test)> {
    let mut v: Vec<(&'static str, Test)> = vec![
        ("device_node_is_a_0600_char_device", Box::new(node_mode)),
        (
            "echo_round_trip",
            Box::new(|| round_trip(100, 100, 0, 0, 0)),
        ),
        (
            "data_buffer_1_byte",
            Box::new(|| round_trip(64, 64, 1, 1, 0)),
        ),
        (
            "data_buffer_1_page",
            Box::new(|| round_trip(64, PAGE, PAGE, PAGE / 2, 0)),
        ),
        (
            "data_buffer_unaligned_multi_page",
            Box::new(|| round_trip(300, 5 * PAGE + 77, 5 * PAGE + 77, 3 * PAGE + 5, 123)),
        ),
        (
            "request_and_response_unaligned_across_pages",
            Box::new(|| round_trip(2 * PAGE + 10, 3 * PAGE, PAGE, 100, 4000)),
        ),
        ("max_8192_pages", Box::new(max_pages)),
        ("over_8192_pages_is_einval", Box::new(over_max_pages)),
        ("legacy_ioctl_number_works", Box::new(legacy_number)),
        ("unknown_ioctls_are_enotty", Box::new(unknown_ioctl)),
        ("invalid_structs_are_einval", Box::new(invalid_structs)),
        ("unmapped_buffers_are_efault", Box::new(unmapped_buffers)),
        (
            "small_response_buffer_reports_size_needed",
            Box::new(small_response),
        ),
    ];
    v.push((
        "changed_credentials_are_eacces",
        Box::new(crate::stress::changed_credentials_are_eacces),
    ));
    v.push((
        "concurrent_16_threads_x_1000_requests",
        Box::new(|| crate::stress::concurrent(16, 1000)),
    ));
    v.push((
        "ioctl_fuzzer_100000_structs",
        Box::new(|| crate::stress::fuzz(100_000)),
    ));
    v.push((
        "pinned_pages_balanced",
        Box::new(crate::stress::pins_balanced),
    ));
    v.push((
        "debugfs_shows_counters",
        Box::new(crate::stress::debugfs_counters),
    ));
    v.push((
        "suspend_waits_and_resume_reopens",
        Box::new(crate::faults::suspend_and_resume),
    ));
    if let Some(path) = control {
        type Faulty = fn(&Control) -> Outcome;
        let faulty: [(&'static str, Faulty); 8] = [
            (
                "host_status_passes_through",
                crate::faults::host_status_passes_through,
            ),
            (
                "slow_host_is_waited_for",
                crate::faults::slow_host_is_waited_for,
            ),
            (
                "bad_and_duplicate_completions_are_dropped",
                crate::faults::bad_completions_are_dropped,
            ),
            (
                "full_ring_makes_callers_wait",
                crate::faults::full_ring_makes_callers_wait,
            ),
            (
                "killed_process_with_64_pending_requests",
                crate::faults::killed_process_with_64_pending,
            ),
            (
                "host_crash_and_restart_fails_what_it_held",
                crate::faults::host_crash_and_restart,
            ),
            ("random_faults_from_a_seed", crate::faults::random_faults),
            (
                "rescind_with_pending_requests_and_open_files",
                crate::faults::rescind_with_pending_requests,
            ),
        ];
        for (name, f) in faulty {
            let path = path.clone();
            v.push((name, Box::new(move || f(&Control::open(&path)?))));
        }
        let p2 = path.clone();
        v.push((
            "rescind_removes_node_and_reoffer_restores_it",
            Box::new(move || rescind_and_reoffer(&path)),
        ));
        v.push((
            "a_second_device_is_refused_and_binds_when_the_first_goes",
            Box::new(move || second_device(&p2)),
        ));
        v.push((
            "echo_round_trip_after_reoffer",
            Box::new(|| round_trip(777, 3 * PAGE, 2 * PAGE, 1000, 9)),
        ));
    }
    v
}

pub(crate) fn dev() -> Result<Device, String> {
    Device::open().map_err(|e| e.to_string())
}

pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// A buffer of `len` bytes at `offset` into its first page.
struct Buf {
    mem: Vec<u8>,
    offset: usize,
    len: usize,
}

impl Buf {
    fn new(len: usize, offset: usize, fill: &[u8]) -> Self {
        let mut mem = vec![0u8; len + offset + 2 * PAGE];
        let base = mem.as_ptr() as usize;
        let start = (PAGE - base % PAGE) % PAGE + offset;
        mem[start..start + fill.len()].copy_from_slice(fill);
        Buf {
            mem,
            offset: start,
            len,
        }
    }
    fn slice(&mut self) -> &mut [u8] {
        &mut self.mem[self.offset..self.offset + self.len]
    }
    fn bytes(&self) -> &[u8] {
        &self.mem[self.offset..self.offset + self.len]
    }
}

/// One echo exchange, every byte checked: the response holds the request,
/// the data buffer holds the host's transform of the input and its pattern
/// after it.
pub(crate) fn round_trip(
    req_len: usize,
    resp_len: usize,
    data_len: usize,
    data_valid: usize,
    offset: usize,
) -> Outcome {
    let d = dev()?;
    let request = pattern(req_len, 7);
    let input = pattern(data_valid, 99);
    let req_buf = Buf::new(req_len, offset, &request);
    let mut resp_buf = Buf::new(resp_len, (offset * 3) % PAGE, &[]);
    let mut data_buf = Buf::new(data_len, (offset * 5) % PAGE, &input);
    let reply = d
        .request(&mut Exchange {
            guid: *b"selftest-guid-01",
            timeout_ms: 0,
            request: req_buf.bytes(),
            response: resp_buf.slice(),
            data: data_buf.slice(),
            data_valid,
        })
        .map_err(|e| e.to_string())?;
    let expected_len = req_len.min(resp_len);
    if req_len > resp_len {
        return Err("test bug: response buffer smaller than the request".into());
    }
    if reply.status != 0 {
        return Err(format!("status {:#x}, expected 0", reply.status));
    }
    if reply.response_len as usize != req_len {
        return Err(format!(
            "response_len {} expected {}",
            reply.response_len, req_len
        ));
    }
    if resp_buf.slice()[..expected_len] != request[..] {
        return Err("response bytes differ from the request".into());
    }
    let data = data_buf.slice();
    for (i, &b) in data.iter().enumerate() {
        let want = if i < data_valid {
            input[i] ^ 0x5A
        } else {
            (i as u8) ^ 0xA5
        };
        if b != want {
            return Err(format!(
                "data byte {i} of {data_len} is {b:#04x}, expected {want:#04x}"
            ));
        }
    }
    Ok(())
}

fn node_mode() -> Outcome {
    let st = rustix::fs::stat(DEFAULT_PATH).map_err(|e| format!("stat {DEFAULT_PATH}: {e}"))?;
    let mode = st.st_mode;
    if mode & 0o170000 != 0o020000 {
        return Err(format!(
            "{DEFAULT_PATH} is not a character device (mode {mode:o})"
        ));
    }
    if mode & 0o777 != 0o600 {
        return Err(format!(
            "{DEFAULT_PATH} has mode {:o}, expected 600",
            mode & 0o777
        ));
    }
    Ok(())
}

fn max_pages() -> Outcome {
    // 1 request page + 1 response page + 8190 data pages = 8192 pages.
    let data = (AZ_BLOB_MAX_PAGES as usize - 2) * PAGE;
    round_trip(PAGE, PAGE, data, data / 3 + 1, 0)
}

/// A struct whose buffers point into `mem` (request 64 bytes at 0,
/// response 64 at 4096, no data), for the error-path tests.
pub(crate) fn sample_struct(mem: &mut [u8]) -> AzBlobRequestSync {
    let base = mem.as_mut_ptr() as u64;
    AzBlobRequestSync {
        guid: [1; 16],
        request_len: 64,
        response_len: 64,
        request_buffer: base,
        response_buffer: base + PAGE as u64,
        ..Default::default()
    }
}

pub(crate) fn expect_errno(what: &str, got: Result<(), Errno>, want: Errno) -> Outcome {
    match got {
        Err(e) if e == want => Ok(()),
        Err(e) => Err(format!("{what}: got {e}, expected {want}")),
        Ok(()) => Err(format!("{what}: succeeded, expected {want}")),
    }
}

fn over_max_pages() -> Outcome {
    let d = dev()?;
    let mut mem = vec![0u8; (AZ_BLOB_MAX_PAGES as usize + 4) * PAGE];
    let mut r = sample_struct(&mut mem);
    r.request_len = PAGE as u32;
    r.response_len = PAGE as u32;
    r.data_buffer = mem.as_ptr() as u64 + 2 * PAGE as u64;
    // 8191 data pages + 2 = 8193 pages (page-aligned or not, over the limit).
    r.data_len = ((AZ_BLOB_MAX_PAGES as usize - 1) * PAGE) as u32;
    // SAFETY: every buffer lies inside `mem`.
    let got = unsafe { d.raw_request(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, &raw mut r) };
    expect_errno("8193 pages", got, Errno::INVAL)
}

fn legacy_number() -> Outcome {
    let d = dev()?;
    let mut mem = vec![0u8; 3 * PAGE];
    mem[..64].copy_from_slice(&pattern(64, 3));
    let mut r = sample_struct(&mut mem);
    // SAFETY: every buffer lies inside `mem`.
    unsafe { d.raw_request(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY, &raw mut r) }
        .map_err(|e| format!("legacy ioctl 0xC048520A: {e}"))?;
    if r.response.status != 0
        || r.response.response_len != 64
        || mem[PAGE..PAGE + 64] != pattern(64, 3)[..]
    {
        return Err(format!(
            "legacy ioctl: status {:#x} len {}",
            r.response.status, r.response.response_len
        ));
    }
    Ok(())
}

fn unknown_ioctl() -> Outcome {
    let d = dev()?;
    let mut mem = vec![0u8; 3 * PAGE];
    for op in [
        0xC04852F1u32,
        0xC04852EF,
        0x000052F0,
        0xC04052F0,
        0x5401, /* TCGETS */
        0,
    ] {
        let mut r = sample_struct(&mut mem);
        // SAFETY: every buffer lies inside `mem`.
        let got = unsafe { d.raw_request(op, &raw mut r) };
        expect_errno(&format!("ioctl {op:#x}"), got, Errno::NOTTY)?;
    }
    Ok(())
}

fn invalid_structs() -> Outcome {
    let d = dev()?;
    let mut mem = vec![0u8; 3 * PAGE];
    let max = AZ_BLOB_MAX_PAGES * PAGE as u32;
    type Mutate = fn(&mut AzBlobRequestSync, u32);
    let cases: [(&str, Mutate); 6] = [
        ("request_len = 0", |r, _| r.request_len = 0),
        ("response_len = 0", |r, _| r.response_len = 0),
        ("data_valid > data_len", |r, _| {
            r.data_len = 10;
            r.data_valid = 11;
        }),
        ("data_valid without a data buffer", |r, _| r.data_valid = 1),
        ("request_len over 8192 pages", |r, max| {
            r.request_len = max + 1
        }),
        ("data_len u32::MAX", |r, _| r.data_len = u32::MAX),
    ];
    for (what, mutate) in cases {
        let mut r = sample_struct(&mut mem);
        mutate(&mut r, max);
        // SAFETY: every buffer lies inside `mem` or is refused before use.
        let got = unsafe { d.raw_request(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, &raw mut r) };
        expect_errno(what, got, Errno::INVAL)?;
    }
    Ok(())
}

fn unmapped_buffers() -> Outcome {
    let d = dev()?;
    let mut mem = vec![0u8; 3 * PAGE];
    type Mutate = fn(&mut AzBlobRequestSync);
    let cases: [(&str, Mutate); 3] = [
        ("request at address 16", |r| r.request_buffer = 16),
        ("response at address 16", |r| r.response_buffer = 16),
        ("data in kernel space", |r| {
            r.data_buffer = 0xffff_8880_0000_0000;
            r.data_len = 100;
        }),
    ];
    for (what, mutate) in cases {
        let mut r = sample_struct(&mut mem);
        mutate(&mut r);
        // SAFETY: the bad addresses are not mapped in this process.
        let got = unsafe { d.raw_request(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, &raw mut r) };
        expect_errno(what, got, Errno::FAULT)?;
    }
    // The struct itself unreadable.
    // SAFETY: the kernel reads the struct at an unmapped address and fails.
    let got = unsafe {
        d.raw_request(
            IOCTL_AZ_BLOB_DRIVER_USER_REQUEST,
            16usize as *mut AzBlobRequestSync,
        )
    };
    expect_errno("struct at address 16", got, Errno::FAULT)
}

/// One request without a data buffer.
pub(crate) fn send(
    d: &Device,
    request: &[u8],
    response: &mut [u8],
) -> Result<azure_blob::Reply, String> {
    d.request(&mut Exchange {
        guid: [request.len() as u8; 16],
        timeout_ms: 0,
        request,
        response,
        data: &mut [],
        data_valid: 0,
    })
    .map_err(|e| e.to_string())
}

fn small_response() -> Outcome {
    let d = dev()?;
    let request = pattern(100, 5);
    let mut response = [0u8; 10];
    let reply = send(&d, &request, &mut response)?;
    if reply.status != AZ_BLOB_STATUS_BUFFER_TOO_SMALL || reply.response_len != 100 {
        return Err(format!(
            "status {:#x} response_len {}, expected {:#x} and 100",
            reply.status, reply.response_len, AZ_BLOB_STATUS_BUFFER_TOO_SMALL
        ));
    }
    if response != [0u8; 10] {
        return Err("the host wrote into a response buffer that was too small".into());
    }
    Ok(())
}

fn wait_for(what: &str, present: bool) -> Outcome {
    crate::faults::wait_until(what, 30, || {
        Ok(std::path::Path::new(DEFAULT_PATH).exists() == present)
    })
}

/// The vmbus devices and whether a driver is bound to each.
fn vmbus_devices() -> Result<Vec<(String, bool)>, String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/sys/bus/vmbus/devices").map_err(|e| e.to_string())? {
        let p = e.map_err(|e| e.to_string())?.path();
        v.push((
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            p.join("driver").exists(),
        ));
    }
    v.sort();
    Ok(v)
}

/// One /dev/azure_blob: a second device offered meanwhile stays unbound
/// (EBUSY, a warning, no sysfs name clash); when the first is rescinded the
/// second can be bound and serves requests.
fn second_device(path: &str) -> Outcome {
    let ctl = Control::open(path)?;
    ctl.command("offer 1")?;
    crate::faults::wait_until("a second vmbus device", 30, || {
        Ok(vmbus_devices()?.len() == 2)
    })?;
    let devs = vmbus_devices()?;
    let bound = devs.iter().filter(|d| d.1).count();
    if bound != 1 {
        return Err(format!("{bound} devices bound, expected 1: {devs:?}"));
    }
    round_trip(500, 500, PAGE, 100, 3)?;
    // The first goes; the second, unbound, gets the driver on a rebind.
    ctl.command("rescind 0")?;
    wait_for("after rescind of the first", false)?;
    crate::faults::wait_until("one vmbus device", 30, || Ok(vmbus_devices()?.len() == 1))?;
    let (name, _) = vmbus_devices()?.pop().ok_or("no device left".to_string())?;
    // The first device leaves the bus's list before its remove has run, so
    // a probe right then may still find the name taken (EBUSY): ask again,
    // as an administrator would, until it binds.
    let driver = format!("/sys/bus/vmbus/devices/{name}/driver");
    crate::faults::wait_until("the second device bound", 30, || {
        std::fs::write("/sys/bus/vmbus/drivers_probe", &name)
            .map_err(|e| format!("drivers_probe {name}: {e}"))?;
        let bound = std::path::Path::new(&driver).exists();
        if !bound {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Ok(bound)
    })?;
    wait_for("the second device's node", true)?;
    round_trip(600, 600, PAGE, 100, 4)?;
    ctl.command("rescind 1")?;
    wait_for("after rescind of the second", false)?;
    ctl.command("offer 0")?;
    wait_for("after re-offer of the first", true)
}

fn rescind_and_reoffer(path: &str) -> Outcome {
    let ctl = Control::open(path)?;
    let open = dev()?; // a file open across the rescind
    ctl.command("rescind 0")?;
    wait_for("after rescind", false)?;
    let mut mem = vec![0u8; 3 * PAGE];
    let mut r = sample_struct(&mut mem);
    // SAFETY: every buffer lies inside `mem`.
    let got = unsafe { open.raw_request(IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, &raw mut r) };
    expect_errno("request on a file of a rescinded device", got, Errno::NODEV)?;
    drop(open);
    ctl.command("offer 0")?;
    wait_for("after re-offer", true)?;
    Ok(())
}
