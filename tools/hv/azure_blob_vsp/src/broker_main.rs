// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `azure-blob-broker`: QEMU's ivshmem server for the life of the VM, and
//! the keeper of what a VSP needs to take over after another one died: the
//! shared memory, the doorbells, the host state and the control-socket
//! connections (see the `broker` module of `azure_blob_vsp`). Given a VSP
//! command line after `--`, it starts that VSP and starts it again each
//! time it exits other than on `quit` (exit status 0).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use azure_blob_vsp::broker::{self, VmResources, MSG_CONTROL, MSG_QUIT};
use azure_blob_vsp::host::NR_VECTORS;

/// Keeps QEMU's ivshmem fds and the control connections across VSP restarts.
#[derive(Debug, Parser)]
#[command(name = "azure-blob-broker", version)]
struct Args {
    /// UNIX socket QEMU's ivshmem-doorbell chardev connects to.
    #[arg(long, value_name = "PATH")]
    ivshmem_socket: PathBuf,
    /// UNIX socket for control commands (QEMU's second serial port, tests).
    #[arg(long, value_name = "PATH")]
    control_socket: PathBuf,
    /// UNIX socket (SOCK_SEQPACKET) VSPs attach to (`azure-blob-vsp --broker PATH`).
    #[arg(long, value_name = "PATH")]
    broker_socket: PathBuf,
    /// The VSP to run and restart: its command line, after `--`.
    #[arg(last = true, value_name = "VSP")]
    vsp: Vec<OsString>,
}

struct State {
    /// The VM's resources.
    session: Arc<VmResources>,
    /// A QEMU was given this session's fds.
    used: bool,
    /// A QEMU is connected.
    qemu: bool,
    /// The attached VSP's connection.
    vsp: Option<(u64, Arc<OwnedFd>)>,
    /// Every open control connection (a duplicate of it).
    controls: Vec<(u64, Arc<OwnedFd>)>,
    next_id: u64,
}

struct Broker {
    state: Mutex<State>,
    quit: AtomicBool,
    quit_tx: Mutex<mpsc::Sender<()>>,
}

impl Broker {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn id(st: &mut State) -> u64 {
        st.next_id += 1;
        st.next_id
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
        tracing::error!("cannot start thread {name}: {e}");
    }
}

fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}

/// QEMU: one at a time; a QEMU after the first gets fresh resources, and
/// the VSP is detached so that the next one attaches to those.
fn serve_qemu(b: &Arc<Broker>, listener: &UnixListener) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let mut st = b.lock();
        if st.qemu {
            tracing::warn!("a second client connected to the ivshmem socket: refused");
            continue;
        }
        if st.used {
            match VmResources::new(NR_VECTORS) {
                Ok(r) => {
                    st.session = Arc::new(r);
                    st.used = false;
                    tracing::info!("new QEMU: fresh shared memory, doorbells and host state");
                    if let Some((_, vsp)) = st.vsp.take() {
                        let _ = rustix::net::shutdown(&*vsp, rustix::net::Shutdown::Both);
                        tracing::info!("detached the VSP: the next one attaches to the new VM");
                    }
                }
                Err(e) => {
                    tracing::error!("cannot create resources for the new QEMU: {e}");
                    continue;
                }
            }
        }
        if let Err(e) = st.session.ivshmem.send_setup(&conn) {
            tracing::error!("ivshmem setup to QEMU failed: {e}");
            continue;
        }
        st.used = true;
        st.qemu = true;
        drop(st);
        tracing::info!("QEMU connected: sent the ivshmem setup ({NR_VECTORS} vectors)");
        let b = b.clone();
        spawn("qemu-conn", move || {
            let mut buf = [0u8; 64];
            while let Ok(1..) = std::io::Read::read(&mut &conn, &mut buf) {}
            b.lock().qemu = false;
            tracing::info!("QEMU disconnected from the ivshmem socket");
        });
    }
}

/// VSPs: one attached at a time; each gets the setup and every open control
/// connection.
fn serve_vsps(b: &Arc<Broker>, listener: &OwnedFd) {
    loop {
        let conn = match broker::accept(listener) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!("broker socket accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let mut st = b.lock();
        if st.vsp.as_ref().is_some_and(|(_, old)| !hung_up(old)) {
            tracing::warn!("a second VSP connected while one is attached: refused");
            continue;
        }
        let handed = st.session.send_setup(&*conn).and_then(|()| {
            for (_, c) in &st.controls {
                broker::send(&*conn, MSG_CONTROL, 0, &[c.as_fd()])?;
            }
            Ok(st.controls.len())
        });
        let n = match handed {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("setup to the VSP failed: {e}");
                continue;
            }
        };
        let id = Broker::id(&mut st);
        st.vsp = Some((id, conn.clone()));
        drop(st);
        tracing::info!("VSP attached: sent the VM's fds and {n} control connection(s)");
        let b = b.clone();
        spawn("vsp-conn", move || {
            loop {
                match broker::recv(&*conn) {
                    Ok(Some(m)) if m.header.kind == MSG_QUIT => {
                        tracing::info!("the VSP quits: the broker quits too");
                        b.quit.store(true, Ordering::Release);
                        let _ = b.quit_tx.lock().unwrap_or_else(|e| e.into_inner()).send(());
                    }
                    Ok(Some(m)) => {
                        tracing::warn!("unexpected message {} from the VSP", m.header.kind)
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let mut st = b.lock();
            if st.vsp.as_ref().is_some_and(|(v, _)| *v == id) {
                st.vsp = None;
            }
            drop(st);
            tracing::info!("VSP detached");
        });
    }
}

/// The peer of `fd` is gone (its process died), whether or not the thread
/// reading `fd` has noticed yet.
fn hung_up(fd: &OwnedFd) -> bool {
    let mut p = [rustix::event::PollFd::new(
        fd,
        rustix::event::PollFlags::RDHUP,
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut p, Some(&zero)), Ok(n) if n > 0)
}

/// Control clients: kept (a duplicate) until they hang up, and handed to
/// the attached VSP, or to the next one.
fn serve_controls(b: &Arc<Broker>, listener: &UnixListener) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let fd = Arc::new(OwnedFd::from(conn));
        let mut st = b.lock();
        let id = Broker::id(&mut st);
        st.controls.push((id, fd.clone()));
        if let Some((_, vsp)) = &st.vsp {
            if let Err(e) = broker::send(&**vsp, MSG_CONTROL, 0, &[fd.as_fd()]) {
                tracing::warn!("cannot hand a control connection to the VSP: {e}");
            }
        }
        drop(st);
        tracing::info!("control client connected");
        let b = b.clone();
        spawn("control-watch", move || {
            // Only hang-ups are watched: the data is the VSP's to read.
            loop {
                let mut p = [rustix::event::PollFd::new(
                    &*fd,
                    rustix::event::PollFlags::RDHUP,
                )];
                match rustix::event::poll(&mut p, None) {
                    Ok(n) if n > 0 => break,
                    Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => break,
                }
            }
            b.lock().controls.retain(|(c, _)| *c != id);
            tracing::info!("control client disconnected");
        });
    }
}

/// Runs the VSP command and starts it again until it exits on `quit`.
fn supervise(b: &Broker, cmd: &[OsString]) -> Result<()> {
    let mut starts: VecDeque<Instant> = VecDeque::new();
    loop {
        let now = Instant::now();
        // Six starts within 10 s are five deaths: give up.
        starts.push_back(now);
        if starts.len() > 6 {
            starts.pop_front();
        }
        if starts.len() == 6
            && starts
                .front()
                .is_some_and(|t| now - *t < Duration::from_secs(10))
        {
            bail!("the VSP died 5 times within 10 s: giving up");
        }
        let mut child = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .spawn()
            .with_context(|| format!("starting {}", cmd[0].to_string_lossy()))?;
        tracing::info!("started the VSP, pid {}", child.id());
        let status = child.wait().context("waiting for the VSP")?;
        if status.success() || b.quit.load(Ordering::Acquire) {
            tracing::info!("the VSP quit");
            return Ok(());
        }
        tracing::warn!("the VSP exited ({status}); starting another");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    azure_blob_vsp::init_logging();
    let session = VmResources::new(NR_VECTORS).context("creating memfds and eventfds")?;
    let (quit_tx, quit_rx) = mpsc::channel();
    let b = Arc::new(Broker {
        state: Mutex::new(State {
            session: Arc::new(session),
            used: false,
            qemu: false,
            vsp: None,
            controls: Vec::new(),
            next_id: 0,
        }),
        quit: AtomicBool::new(false),
        quit_tx: Mutex::new(quit_tx),
    });
    let vsp_listener = broker::listen(&args.broker_socket)
        .with_context(|| format!("binding {}", args.broker_socket.display()))?;
    let ctl_listener = bind(&args.control_socket)?;
    let qemu_listener = bind(&args.ivshmem_socket)?;
    tracing::info!(
        "broker listening: ivshmem {} control {} VSPs {}",
        args.ivshmem_socket.display(),
        args.control_socket.display(),
        args.broker_socket.display()
    );
    {
        let b = b.clone();
        spawn("vsp-listener", move || serve_vsps(&b, &vsp_listener));
    }
    {
        let b = b.clone();
        spawn("control-listener", move || {
            serve_controls(&b, &ctl_listener)
        });
    }
    {
        let b = b.clone();
        spawn("ivshmem-server", move || serve_qemu(&b, &qemu_listener));
    }
    let r = if args.vsp.is_empty() {
        let _ = quit_rx.recv();
        Ok(())
    } else {
        supervise(&b, &args.vsp)
    };
    for p in [
        &args.ivshmem_socket,
        &args.control_socket,
        &args.broker_socket,
    ] {
        let _ = std::fs::remove_file(p);
    }
    r
}
