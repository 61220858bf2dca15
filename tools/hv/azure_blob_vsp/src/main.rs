// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `azure-blob-vsp`: the host process of the simulated VMBus test bed. It is
//! QEMU's ivshmem server, the VMBus host of the control page and the Azure
//! Blob VSP; or, with `--broker`, it gets QEMU's fds from the broker
//! (`azure-blob-broker`) and can be killed and started again while QEMU runs.

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use anyhow::{bail, Context, Result};
use clap::Parser;

use azure_blob_service::server::HttpServer;
use azure_blob_service::{BlobService, Config, MemoryStorage, Storage};
use azure_blob_vsp::blob::BlobHandler;
use azure_blob_vsp::broker::{self, MSG_CONTROL, MSG_QUIT};
use azure_blob_vsp::control::{ControlPage, SHM_SIZE};
use azure_blob_vsp::host::HandlerFactory;
use azure_blob_vsp::host::{
    serve_control_client, CommandOutcome, CommandTarget, Host, RamSource, NR_CHANNELS, NR_VECTORS,
};
use azure_blob_vsp::ivshmem::IvshmemResources;
use azure_blob_vsp::journal::HostState;
use azure_blob_vsp::vsp::{EchoHandler, RequestHandler};
use blob_service_blobstore::{BlobstoreStorage, CreateOptions};

/// Azure Blob VSP simulator: ivshmem server for QEMU and VMBus host side.
#[derive(Debug, Parser)]
#[command(name = "azure-blob-vsp", version)]
struct Args {
    /// UNIX socket QEMU's ivshmem-doorbell chardev connects to.
    #[arg(long, value_name = "PATH", required_unless_present = "broker")]
    ivshmem_socket: Option<PathBuf>,
    /// QEMU's guest RAM file (memory-backend-file, share=on).
    #[arg(long, value_name = "FILE")]
    guest_ram: PathBuf,
    /// UNIX socket for control commands (offer, rescind, status, fault,
    /// crash, quit).
    #[arg(long, value_name = "PATH", required_unless_present = "broker")]
    control_socket: Option<PathBuf>,
    /// Attach through the broker's socket instead of being QEMU's ivshmem
    /// server: the broker hands over the VM's fds and the control
    /// connections, and a VSP started after this one died takes over.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with_all = ["ivshmem_socket", "control_socket"]
    )]
    broker: Option<PathBuf>,
    /// Devices to offer at start (and to every new QEMU).
    #[arg(long, value_name = "N", default_value_t = 1)]
    offer: usize,
    /// What answers the requests: `blob`, the Azure Blob service (shared by
    /// every channel, kept across guest reboots), or `echo`, the test bed's
    /// echo handler.
    #[arg(long, value_enum, default_value_t = HandlerKind::Blob)]
    handler: HandlerKind,
    /// Where the blob service keeps its data: a Blobstore in this file
    /// (created, sparse, if missing or empty).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "azure-blob-vsp.blobstore",
        conflicts_with = "memory"
    )]
    store: PathBuf,
    /// Size in bytes of a Blobstore file that --store creates.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    store_size: u64,
    /// Keep the blob service's data in memory instead (lost at exit).
    #[arg(long)]
    memory: bool,
    /// Also serve the blob service over HTTP (Blob REST with SharedKey) on
    /// this address, e.g. 127.0.0.1:10000: the same containers and blobs
    /// as the VSC door.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HandlerKind {
    Blob,
    Echo,
}

/// One VM's worth of host state: the shared memory and doorbells handed to
/// one QEMU, the host on them, and its control-vector thread.
struct Session {
    res: Arc<IvshmemResources>,
    host: Arc<Host>,
    stop: Arc<AtomicBool>,
    /// A QEMU has been given this session's fds.
    used: AtomicBool,
}

fn handler_factory(args: &Args, service: &BlobService) -> HandlerFactory {
    match args.handler {
        HandlerKind::Echo => {
            Box::new(|_ch: usize| -> Box<dyn RequestHandler> { Box::new(EchoHandler) })
        }
        HandlerKind::Blob => {
            let blob = BlobHandler::new(service.clone());
            Box::new(move |_ch: usize| -> Box<dyn RequestHandler> { Box::new(blob.clone()) })
        }
    }
}

/// Runs the host's control loop (guest attach, opens, closes) on its own
/// thread until the returned flag is set.
fn start_control_loop(host: &Arc<Host>) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let (host, flag) = (host.clone(), stop.clone());
    std::thread::Builder::new()
        .name("control-vector".into())
        .spawn(move || host.run_control_loop(&flag))?;
    Ok(stop)
}

impl Session {
    fn new(args: &Args, service: &BlobService) -> Result<Self> {
        let res = Arc::new(IvshmemResources::new(NR_VECTORS).context("creating memfd/eventfds")?);
        let shm = res.shm.try_clone().context("dup of the shared memory fd")?;
        let ctl = ControlPage::from_fd(shm).context("mapping the control page")?;
        let host = Arc::new(
            Host::new(
                ctl,
                res.to_host.clone(),
                res.to_guest.clone(),
                RamSource::File(args.guest_ram.clone()),
                handler_factory(args, service),
            )
            .map_err(anyhow::Error::msg)?,
        );
        for _ in 0..args.offer {
            host.offer(None).map_err(anyhow::Error::msg)?;
        }
        let stop = start_control_loop(&host)?;
        Ok(Self {
            res,
            host,
            stop,
            used: AtomicBool::new(false),
        })
    }

    fn end(&self, why: &str) {
        self.stop.store(true, Ordering::Release);
        self.host.stop_all(why);
    }
}

/// The current session; replaced when a new QEMU connects after one left.
struct Current(Mutex<Arc<Session>>);

impl Current {
    fn get(&self) -> Arc<Session> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl CommandTarget for Current {
    fn handle_command(&self, line: &str) -> CommandOutcome {
        self.get().host.handle_command(line)
    }
}

fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}

fn serve_qemu(
    listener: UnixListener,
    current: Arc<Current>,
    args: Arc<Args>,
    service: BlobService,
) {
    let connected = Arc::new(AtomicBool::new(false));
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("ivshmem socket accept failed: {e}");
                continue;
            }
        };
        if connected.swap(true, Ordering::AcqRel) {
            tracing::warn!("a second client connected to the ivshmem socket: refused");
            continue;
        }
        let mut session = current.get();
        if session.used.load(Ordering::Acquire) {
            // A new VM: fresh shared memory, doorbells and offers, so that
            // nothing of the previous guest's control page carries over.
            match Session::new(&args, &service) {
                Ok(s) => {
                    let s = Arc::new(s);
                    let old = std::mem::replace(
                        &mut *current.0.lock().unwrap_or_else(|e| e.into_inner()),
                        s.clone(),
                    );
                    old.end("replaced by a new QEMU session");
                    session = s;
                    tracing::info!("new QEMU session: fresh control page and doorbells");
                }
                Err(e) => {
                    tracing::error!("cannot create a session for the new QEMU: {e:#}");
                    connected.store(false, Ordering::Release);
                    continue;
                }
            }
        }
        if let Err(e) = session.res.send_setup(&conn) {
            tracing::error!("ivshmem setup to QEMU failed: {e}");
            connected.store(false, Ordering::Release);
            continue;
        }
        session.used.store(true, Ordering::Release);
        tracing::info!(
            "QEMU connected: sent ivshmem setup (guest id 1, host peer 0, {NR_VECTORS} vectors, {SHM_SIZE} bytes shared memory)"
        );
        let connected = connected.clone();
        let spawned = std::thread::Builder::new()
            .name("qemu-conn".into())
            .spawn(move || watch_qemu(conn, &session, &connected));
        if let Err(e) = spawned {
            tracing::error!("cannot watch the QEMU connection: {e}");
        }
    }
}

fn watch_qemu(mut conn: UnixStream, session: &Session, connected: &AtomicBool) {
    let mut buf = [0u8; 64];
    loop {
        match std::io::Read::read(&mut conn, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Free the slot first: a new QEMU may connect as soon as this one is gone.
    connected.store(false, Ordering::Release);
    tracing::info!("QEMU disconnected from the ivshmem socket");
    session.host.stop_all("QEMU disconnected");
}

fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    azure_blob_vsp::init_logging();
    if args.offer > NR_CHANNELS {
        bail!(
            "--offer {} is more than the {NR_CHANNELS} channels",
            args.offer
        );
    }

    // One blob service for the life of this process: blobs survive guest
    // reboots and re-offers. (Requests on the HTTP-less VSC door are not
    // SharedKey-signed unless a key is configured for it.)
    let storage: Arc<dyn Storage> = if args.memory || args.handler == HandlerKind::Echo {
        tracing::info!("blob store: in memory");
        Arc::new(MemoryStorage::new())
    } else {
        let path = &args.store;
        let opts = CreateOptions {
            size: args.store_size,
            ..CreateOptions::default()
        };
        let s = BlobstoreStorage::open(path, opts)
            .with_context(|| format!("Blobstore {}", path.display()))?;
        tracing::info!("blob store: Blobstore in {}", path.display());
        Arc::new(s)
    };
    let service = BlobService::new(storage, Config::default());
    let _http = match &args.http {
        Some(addr) => {
            let server = HttpServer::start(service.clone(), addr.as_str(), 64)
                .with_context(|| format!("--http {addr}"))?;
            tracing::info!(
                "HTTP door: http://{}/devstoreaccount1 (the same blob service)",
                server.local_addr()
            );
            Some(server)
        }
        None => None,
    };
    if let Some(path) = &args.broker {
        return run_attached(&args, &service, path);
    }
    let (Some(ivshmem_socket), Some(control_socket)) = (&args.ivshmem_socket, &args.control_socket)
    else {
        bail!("--ivshmem-socket and --control-socket are needed without --broker");
    };
    let current = Arc::new(Current(Mutex::new(Arc::new(Session::new(
        &args, &service,
    )?))));
    let qemu_listener = bind(ivshmem_socket)?;
    let ctl_listener = bind(control_socket)?;
    tracing::info!(
        "listening: ivshmem {} control {} guest RAM {}",
        ivshmem_socket.display(),
        control_socket.display(),
        args.guest_ram.display()
    );

    let (quit_tx, quit_rx) = mpsc::channel::<()>();
    {
        let current = current.clone();
        let args = args.clone();
        std::thread::Builder::new()
            .name("ivshmem-server".into())
            .spawn(move || serve_qemu(qemu_listener, current, args, service))?;
    }
    {
        let current = current.clone();
        std::thread::Builder::new()
            .name("control-socket".into())
            .spawn(move || {
                for conn in ctl_listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let current = current.clone();
                    let quit_tx = quit_tx.clone();
                    let r = std::thread::Builder::new()
                        .name("control-client".into())
                        .spawn(move || {
                            tracing::info!("control client connected");
                            serve_control_client(&*current, conn, &|| {
                                let _ = quit_tx.send(());
                            });
                            tracing::info!("control client disconnected");
                        });
                    if let Err(e) = r {
                        tracing::warn!("cannot serve a control client: {e}");
                    }
                }
            })?;
    }

    // Wait for `quit`.
    let _ = quit_rx.recv();
    tracing::info!("quit requested: stopping");
    current.get().end("quit");
    let _ = std::fs::remove_file(ivshmem_socket);
    let _ = std::fs::remove_file(control_socket);
    Ok(())
}

/// Why an attached VSP ends.
enum End {
    /// `quit` on the control socket.
    Quit,
    /// The broker closed the connection (it quit, or a new VM started).
    BrokerGone,
}

/// The VSP under a broker: gets the VM's fds, takes over from a previous
/// VSP if there was one (or offers the devices if not), serves the control
/// connections the broker hands over. Exits with status 0 on `quit` (the
/// broker then quits too), 3 when the broker goes; `crash` kills it.
fn run_attached(args: &Args, service: &BlobService, path: &Path) -> Result<()> {
    let sock: Arc<OwnedFd> = Arc::new(
        broker::connect(path)
            .with_context(|| format!("connecting to the broker {}", path.display()))?,
    );
    let att = broker::receive_setup(&*sock).context("the broker's setup")?;
    if att.to_host.len() < NR_VECTORS {
        bail!(
            "the broker sent {} vectors, {NR_VECTORS} are needed",
            att.to_host.len()
        );
    }
    let ctl = ControlPage::from_fd(att.shm).context("mapping the control page")?;
    let state = HostState::from_fd(att.state).context("mapping the host state")?;
    let mut host = Host::with_state(
        ctl,
        Arc::new(state),
        att.to_host,
        att.to_guest,
        RamSource::File(args.guest_ram.clone()),
        handler_factory(args, service),
    )
    .map_err(anyhow::Error::msg)?;
    host.allow_crash = true;
    let host = Arc::new(host);
    if host.reattached() {
        tracing::info!(
            "attached through the broker {}: took over from a previous VSP (channels served again: {:?})",
            path.display(),
            host.adopted()
        );
    } else {
        tracing::info!("attached through the broker {}: a new VM", path.display());
        for _ in 0..args.offer {
            host.offer(None).map_err(anyhow::Error::msg)?;
        }
    }
    let stop = start_control_loop(&host)?;
    let (end_tx, end_rx) = mpsc::channel::<End>();
    {
        let host = host.clone();
        let sock = sock.clone();
        std::thread::Builder::new()
            .name("broker-conn".into())
            .spawn(move || loop {
                match broker::recv(&*sock) {
                    Ok(Some(m)) if m.header.kind == MSG_CONTROL => {
                        for fd in m.fds {
                            let host = host.clone();
                            let sock = sock.clone();
                            let end_tx = end_tx.clone();
                            let r = std::thread::Builder::new()
                                .name("control-client".into())
                                .spawn(move || {
                                    tracing::info!("control client handed over by the broker");
                                    serve_control_client(&*host, UnixStream::from(fd), &|| {
                                        let _ = broker::send(&*sock, MSG_QUIT, 0, &[]);
                                        let _ = end_tx.send(End::Quit);
                                    });
                                });
                            if let Err(e) = r {
                                tracing::warn!("cannot serve a control client: {e}");
                            }
                        }
                    }
                    Ok(Some(m)) => {
                        tracing::warn!("unexpected message {} from the broker", m.header.kind)
                    }
                    Ok(None) | Err(_) => {
                        let _ = end_tx.send(End::BrokerGone);
                        return;
                    }
                }
            })?;
    }
    let end = end_rx.recv().unwrap_or(End::BrokerGone);
    stop.store(true, Ordering::Release);
    match end {
        End::Quit => {
            tracing::info!("quit requested: stopping");
            host.stop_all("quit");
            Ok(())
        }
        End::BrokerGone => {
            tracing::info!("the broker closed the connection: stopping");
            host.stop_all("the broker went away");
            std::process::exit(3)
        }
    }
}
