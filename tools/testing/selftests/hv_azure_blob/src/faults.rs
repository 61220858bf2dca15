// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Issue 3's fault tests: the host simulator misbehaves on command (over the
//! control port) and each test asserts what the caller sees and that the
//! driver cleans up.

use crate::control::Control;
use crate::tests::{dev, pattern, round_trip, PAGE};
use crate::Outcome;
use azure_blob::{Device, Exchange};
use std::time::{Duration, Instant};

/// The device's debugfs directory.
pub(crate) fn debugfs_dir() -> Result<std::path::PathBuf, String> {
    Ok(std::fs::read_dir("/sys/kernel/debug")
        .map_err(|e| format!("/sys/kernel/debug: {e}"))?
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("hv_azure_blob-")
        })
        .ok_or("no hv_azure_blob-<instance> directory in debugfs")?
        .path())
}

/// One counter of the debugfs `stats` file.
pub(crate) fn stat(key: &str) -> Result<u64, String> {
    let text =
        std::fs::read_to_string(debugfs_dir()?.join("stats")).map_err(|e| format!("stats: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
        .ok_or_else(|| format!("no '{key}' in stats"))
}

/// The lines of the debugfs `pending` file.
fn pending() -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(debugfs_dir()?.join("pending"))
        .map_err(|e| format!("pending: {e}"))?;
    Ok(text.lines().map(str::to_string).collect())
}

pub(crate) fn wait_until(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> Result<bool, String>,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f()? {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {secs} s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One echo request of `len` request bytes; its reply.
fn echo(d: &Device, len: usize, seed: u8) -> Result<azure_blob::Reply, String> {
    let request = pattern(len, seed);
    let mut response = vec![0u8; len];
    let reply = crate::tests::send(d, &request, &mut response)?;
    if reply.status == 0 && response != request {
        return Err("echo answered with the wrong bytes".into());
    }
    Ok(reply)
}

/// Runs `f` with the fault plan set by `cmd`, and clears it afterwards.
fn with_fault(ctl: &Control, cmd: &str, f: impl FnOnce() -> Outcome) -> Outcome {
    ctl.command(&format!("fault {cmd}"))?;
    let r = f();
    ctl.command("fault clear")?;
    r
}

/// A host status reaches the caller unchanged (here the host's timeout).
pub(crate) fn host_status_passes_through(ctl: &Control) -> Outcome {
    let d = dev()?;
    with_fault(ctl, "status 0x80070102 1", || {
        let r = echo(&d, 100, 1)?;
        if r.status != 0x8007_0102 || r.response_len != 0 {
            return Err(format!(
                "status {:#x} len {}, expected 0x80070102 and 0",
                r.status, r.response_len
            ));
        }
        Ok(())
    })?;
    let r = echo(&d, 100, 2)?;
    (r.status == 0)
        .then_some(())
        .ok_or(format!("after the fault: status {:#x}", r.status))
}

/// A slow host is waited for.
pub(crate) fn slow_host_is_waited_for(ctl: &Control) -> Outcome {
    let d = dev()?;
    with_fault(ctl, "delay 400 1", || {
        let t = Instant::now();
        let r = echo(&d, 64, 3)?;
        let took = t.elapsed();
        if r.status != 0 || took < Duration::from_millis(400) {
            return Err(format!(
                "status {:#x} after {took:?} (the host waited 400 ms)",
                r.status
            ));
        }
        Ok(())
    })
}

/// Malformed completions (unknown id, bad length, wrong type) and a
/// duplicate are counted and dropped; the real answer still arrives.
pub(crate) fn bad_completions_are_dropped(ctl: &Control) -> Outcome {
    let d = dev()?;
    let before = stat("dropped_completions")?;
    with_fault(ctl, "garbage 1", || {
        let r = echo(&d, 200, 4)?;
        (r.status == 0)
            .then_some(())
            .ok_or(format!("status {:#x}", r.status))
    })?;
    wait_until("3 dropped completions", 5, || {
        Ok(stat("dropped_completions")? >= before + 3)
    })?;
    let before = stat("dropped_completions")?;
    with_fault(ctl, "duplicate 1", || {
        let r = echo(&d, 200, 5)?;
        (r.status == 0)
            .then_some(())
            .ok_or(format!("status {:#x}", r.status))
    })?;
    wait_until("1 more dropped completion", 5, || {
        Ok(stat("dropped_completions")? == before + 1)
    })?;
    let r = echo(&d, 300, 6)?;
    (r.status == 0)
        .then_some(())
        .ok_or(format!("after the faults: status {:#x}", r.status))
}

/// While the host does not read its ring, callers whose packets do not fit
/// wait for room (no EAGAIN), and all complete correctly afterwards.
pub(crate) fn full_ring_makes_callers_wait(ctl: &Control) -> Outcome {
    with_fault(ctl, "stall 1500", || {
        let t = Instant::now();
        let threads: Vec<_> = (0..3)
            .map(|i| {
                std::thread::spawn(move || {
                    // 8000 data pages: a 64 KiB packet; two do not fit a ring.
                    round_trip(PAGE, PAGE, 8000 * PAGE, 1000 + i, 0)
                })
            })
            .collect();
        for th in threads {
            th.join().map_err(|_| "a thread panicked".to_string())??;
        }
        let took = t.elapsed();
        if took < Duration::from_millis(1400) {
            return Err(format!("done in {took:?}, before the host read its ring"));
        }
        Ok(())
    })
}

/// The hidden child mode: `n` threads each send one request and block.
pub(crate) fn child_pending(n: usize) -> ! {
    let d = std::sync::Arc::new(match Device::open() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("child: {e}");
            std::process::exit(2)
        }
    });
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || {
                let mut data = vec![0u8; 3 * PAGE];
                let mut response = [0u8; 256];
                let _ = d.request(&mut Exchange {
                    guid: [i as u8; 16],
                    timeout_ms: 0,
                    request: &pattern(256, i as u8),
                    response: &mut response,
                    data: &mut data,
                    data_valid: PAGE,
                });
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    std::process::exit(0)
}

/// kill -9 of a process with 64 requests the host holds: the requests stay
/// pending (pages pinned) until the host answers, then everything is
/// released, and the device works on.
pub(crate) fn killed_process_with_64_pending(ctl: &Control) -> Outcome {
    let abandoned_before = stat("abandoned_requests")?;
    ctl.command("fault hold")?;
    let result = (|| -> Outcome {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = std::process::Command::new(exe)
            .args(["--child-pending", "64"])
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        wait_until("64 requests pending", 20, || Ok(pending()?.len() == 64))?;
        child.kill().map_err(|e| format!("kill -9: {e}"))?;
        child.wait().map_err(|e| format!("wait: {e}"))?;
        wait_until("64 requests marked abandoned", 10, || {
            Ok(pending()?
                .iter()
                .filter(|l| l.ends_with("abandoned"))
                .count()
                == 64)
        })?;
        if stat("abandoned_requests")? != abandoned_before + 64 {
            return Err("abandoned_requests did not grow by 64".into());
        }
        Ok(())
    })();
    ctl.command("fault release")?;
    result?;
    wait_until("the host's answers to release the 64 requests", 20, || {
        Ok(pending()?.is_empty())
    })?;
    crate::stress::pins_balanced()?;
    round_trip(100, 100, PAGE, 10, 0)
}

/// Rescind while requests are pending and a file is open: the host answers
/// what is pending, the node goes, the open file gets ENODEV, and after a
/// re-offer everything works again.
pub(crate) fn rescind_with_pending_requests(ctl: &Control) -> Outcome {
    let open = dev()?;
    ctl.command("fault hold")?;
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || -> Outcome {
                let d = dev()?;
                let r = echo(&d, 512, 40 + i)?;
                (r.status == 0)
                    .then_some(())
                    .ok_or(format!("status {:#x}", r.status))
            })
        })
        .collect();
    let waited = wait_until("8 requests pending", 20, || Ok(pending()?.len() == 8));
    let rescinded = ctl.command("rescind 0");
    ctl.command("fault clear")?;
    waited?;
    rescinded?;
    for t in threads {
        t.join().map_err(|_| "a thread panicked".to_string())??;
    }
    wait_until("the node to go away", 30, || {
        Ok(!std::path::Path::new(azure_blob::DEFAULT_PATH).exists())
    })?;
    match echo(&open, 64, 50) {
        Err(e) if e.contains("No such device") => {}
        other => {
            return Err(format!(
                "request on a file of the rescinded device: {other:?}, expected ENODEV"
            ))
        }
    }
    drop(open);
    ctl.command("offer 0")?;
    wait_until("the node to come back", 30, || {
        Ok(std::path::Path::new(azure_blob::DEFAULT_PATH).exists())
    })?;
    round_trip(300, 300, 2 * PAGE, 100, 5)
}

/// The status of a request the host simulator took off the ring and had
/// not answered when it died (AZ_BLOB_STATUS_INTERNAL_ERROR; the request is
/// not replayed, its outcome is unknown).
const HOST_RESTARTED: u32 = 0x8007_054f;

/// The `host_gen=N` of the simulator's `status` answer: bumped by every
/// host process that attaches to the control page.
/// How many requests the host's fault plan has acted on so far.
fn injected(ctl: &Control) -> Result<u64, String> {
    let st = ctl.command("fault show")?;
    st.split_whitespace()
        .find_map(|w| w.strip_prefix("injected=")?.parse().ok())
        .ok_or_else(|| format!("no injected= in '{st}'"))
}

fn host_gen(ctl: &Control) -> Result<u64, String> {
    let st = ctl.command("status")?;
    st.split_whitespace()
        .find_map(|w| {
            w.strip_prefix("host_gen=")?
                .trim_end_matches(';')
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no host_gen in '{st}'"))
}

/// The host simulator dies (kill -9, on the `crash` command) with 8
/// requests held, one being delayed and 3 still in the ring behind it; one
/// more is sent right after. The broker starts another VSP, which takes
/// over the open channel: the 9 taken by the dead VSP get HOST_RESTARTED
/// (not replayed), the 3 in the ring are served (echo checked), the late
/// one is one or the other, nothing hangs, the pins are released, and the
/// device works on through files opened before.
pub(crate) fn host_crash_and_restart(ctl: &Control) -> Outcome {
    let gen_before = host_gen(ctl)?;
    let open = dev()?;
    let spawn = |seed: u8| {
        std::thread::spawn(move || -> Result<u32, String> {
            let d = dev()?;
            // Checks the echo's bytes when the status is 0.
            let r = echo(&d, 512, seed)?;
            if r.status != 0 && r.response_len != 0 {
                return Err(format!(
                    "status {:#x} with response_len {}",
                    r.status, r.response_len
                ));
            }
            Ok(r.status)
        })
    };
    let mut threads = Vec::new();
    let crashed = (|| -> Outcome {
        // The driver lists a request as pending once sent; the host's
        // fault counter says when the host has taken it.
        let base = injected(ctl)?;
        ctl.command("fault hold")?;
        threads.extend((0..8).map(|i| spawn(70 + i)));
        wait_until("8 requests held by the host", 20, || {
            Ok(injected(ctl)? >= base + 8)
        })?;
        // The host takes this one and sleeps 10 s before holding it; what
        // comes after stays in the ring.
        ctl.command("fault delay 10000 1")?;
        threads.push(spawn(80));
        wait_until("the 9th request taken by the host", 20, || {
            Ok(injected(ctl)? >= base + 9)
        })?;
        threads.extend((0..3).map(|i| spawn(81 + i)));
        wait_until("12 requests pending", 20, || Ok(pending()?.len() == 12))?;
        let answer = ctl.command("crash")?;
        answer
            .starts_with("ok crashing")
            .then_some(())
            .ok_or(format!("'crash' answered '{answer}'"))
    })();
    if let Err(e) = crashed {
        // Let the callers go; the tests after this one need the host.
        let _ = ctl.command("fault clear");
        let _ = ctl.command("fault release");
        return Err(e);
    }
    // Sent while the VSP is dead or dying.
    threads.push(spawn(90));
    wait_until("every caller answered after the restart", 30, || {
        Ok(threads.iter().all(|t| t.is_finished()))
    })?;
    let mut statuses = Vec::new();
    for t in threads {
        statuses.push(t.join().map_err(|_| "a thread panicked".to_string())??);
    }
    println!("# statuses after the crash: {statuses:x?}");
    for (i, &status) in statuses.iter().enumerate() {
        let fine = match i {
            // Held: taken and not answered.
            0..8 => status == HOST_RESTARTED,
            // Being delayed: taken. The last one, sent during the crash,
            // may meet either process.
            8 => status == HOST_RESTARTED,
            12 => status == HOST_RESTARTED || status == 0,
            // Still in the ring: served by the new VSP.
            _ => status == 0,
        };
        if !fine {
            return Err(format!("caller {i}: unexpected status {status:#x}"));
        }
    }
    let gen_after = host_gen(ctl)?;
    if gen_after != gen_before + 1 {
        return Err(format!(
            "host_gen {gen_before} before, {gen_after} after: expected one new host process"
        ));
    }
    let st = ctl.command("status")?;
    if !st.contains("ch0 offered=1 open=1") {
        return Err(format!("after the restart: '{st}'"));
    }
    wait_until("nothing pending", 10, || Ok(pending()?.is_empty()))?;
    crate::stress::pins_balanced()?;
    let r = echo(&open, 1000, 91)?;
    if r.status != 0 {
        return Err(format!("after the restart: status {:#x}", r.status));
    }
    round_trip(300, 300, 3 * PAGE, 2 * PAGE, 17)
}

/// Random faults from a seed: every answer is the right echo or the
/// injected status, and nothing is lost.
pub(crate) fn random_faults(ctl: &Control) -> Outcome {
    let d = dev()?;
    let (mut ok, mut failed) = (0, 0);
    with_fault(ctl, "random 7 30", || {
        for i in 0..300 {
            let r = echo(&d, 64 + i, i as u8)?;
            match r.status {
                0 => ok += 1,
                0x8000_4005 => failed += 1,
                s => return Err(format!("request {i}: unexpected status {s:#x}")),
            }
        }
        Ok(())
    })?;
    println!("# random faults: {ok} answered, {failed} failed by the host");
    if failed == 0 || ok == 0 {
        return Err(format!(
            "{ok} answered and {failed} failed: the faults did not apply"
        ));
    }
    Ok(())
}

/// Hibernation, as the bus drives it: suspend closes the channel once the
/// host has answered what is in flight; a request issued while suspended
/// waits; resume reopens the channel and the request completes.
pub(crate) fn suspend_and_resume() -> Outcome {
    const PM: &str = "/sys/kernel/debug/vmbus_sim/pm";
    let d = dev()?;
    echo(&d, 128, 60)?;
    std::fs::write(PM, "suspend").map_err(|e| format!("suspend: {e}"))?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let waiter = std::thread::spawn(move || -> Outcome {
        let d = dev()?;
        let r = echo(&d, 333, 61)?;
        flag.store(true, std::sync::atomic::Ordering::Release);
        (r.status == 0)
            .then_some(())
            .ok_or(format!("status {:#x}", r.status))
    });
    std::thread::sleep(Duration::from_millis(500));
    let early = done.load(std::sync::atomic::Ordering::Acquire);
    std::fs::write(PM, "resume").map_err(|e| format!("resume: {e}"))?;
    waiter
        .join()
        .map_err(|_| "the waiter panicked".to_string())??;
    if early {
        return Err("a request completed while the device was suspended".into());
    }
    let r = echo(&d, 100, 62)?;
    (r.status == 0)
        .then_some(())
        .ok_or(format!("after resume: status {:#x}", r.status))
}
