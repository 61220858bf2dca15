// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `azure-blob-vsp`: the host process of the simulated VMBus test bed. It is
//! QEMU's ivshmem server, the VMBus host of the control page and the Azure
//! Blob VSP (echo handler for now).

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use anyhow::{bail, Context, Result};
use clap::Parser;

use azure_blob_vsp::control::{ControlPage, SHM_SIZE};
use azure_blob_vsp::host::{serve_control_client, Host, RamSource, NR_CHANNELS, NR_VECTORS};
use azure_blob_vsp::ivshmem::IvshmemResources;
use azure_blob_vsp::vsp::{EchoHandler, RequestHandler};

/// Azure Blob VSP simulator: ivshmem server for QEMU and VMBus host side.
#[derive(Debug, Parser)]
#[command(name = "azure-blob-vsp", version)]
struct Args {
    /// UNIX socket QEMU's ivshmem-doorbell chardev connects to.
    #[arg(long, value_name = "PATH")]
    ivshmem_socket: PathBuf,
    /// QEMU's guest RAM file (memory-backend-file, share=on).
    #[arg(long, value_name = "FILE")]
    guest_ram: PathBuf,
    /// UNIX socket for control commands (offer, rescind, status, quit).
    #[arg(long, value_name = "PATH")]
    control_socket: PathBuf,
    /// Devices to offer at start.
    #[arg(long, value_name = "N", default_value_t = 1)]
    offer: usize,
}

fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}

fn serve_qemu(listener: UnixListener, res: Arc<IvshmemResources>, host: Arc<Host>) {
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
        if let Err(e) = res.send_setup(&conn) {
            tracing::error!("ivshmem setup to QEMU failed: {e}");
            connected.store(false, Ordering::Release);
            continue;
        }
        tracing::info!(
            "QEMU connected: sent ivshmem setup (guest id 1, host peer 0, {NR_VECTORS} vectors, {SHM_SIZE} bytes shared memory)"
        );
        let connected = connected.clone();
        let host = host.clone();
        let spawned = std::thread::Builder::new()
            .name("qemu-conn".into())
            .spawn(move || watch_qemu(conn, &host, &connected));
        if let Err(e) = spawned {
            tracing::error!("cannot watch the QEMU connection: {e}");
        }
    }
}

fn watch_qemu(mut conn: UnixStream, host: &Host, connected: &AtomicBool) {
    let mut buf = [0u8; 64];
    loop {
        match std::io::Read::read(&mut conn, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    tracing::info!("QEMU disconnected from the ivshmem socket");
    host.stop_all("QEMU disconnected");
    connected.store(false, Ordering::Release);
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if args.offer > NR_CHANNELS {
        bail!(
            "--offer {} is more than the {NR_CHANNELS} channels",
            args.offer
        );
    }

    let res = Arc::new(IvshmemResources::new(NR_VECTORS).context("creating memfd/eventfds")?);
    let shm = res.shm.try_clone().context("dup of the shared memory fd")?;
    let ctl = ControlPage::from_fd(shm).context("mapping the control page")?;
    let factory = Box::new(|_ch: usize| -> Box<dyn RequestHandler> { Box::new(EchoHandler) });
    let host = Arc::new(
        Host::new(
            ctl,
            res.to_host.clone(),
            res.to_guest.clone(),
            RamSource::File(args.guest_ram.clone()),
            factory,
        )
        .map_err(anyhow::Error::msg)?,
    );
    for _ in 0..args.offer {
        host.offer(None).map_err(anyhow::Error::msg)?;
    }

    let qemu_listener = bind(&args.ivshmem_socket)?;
    let ctl_listener = bind(&args.control_socket)?;
    tracing::info!(
        "listening: ivshmem {} control {} guest RAM {}",
        args.ivshmem_socket.display(),
        args.control_socket.display(),
        args.guest_ram.display()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (quit_tx, quit_rx) = mpsc::channel::<()>();

    {
        let host = host.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("control-vector".into())
            .spawn(move || host.run_control_loop(&stop))?;
    }
    {
        let host = host.clone();
        let res = res.clone();
        std::thread::Builder::new()
            .name("ivshmem-server".into())
            .spawn(move || serve_qemu(qemu_listener, res, host))?;
    }
    {
        let host = host.clone();
        std::thread::Builder::new()
            .name("control-socket".into())
            .spawn(move || {
                for conn in ctl_listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let host = host.clone();
                    let quit_tx = quit_tx.clone();
                    let r = std::thread::Builder::new()
                        .name("control-client".into())
                        .spawn(move || {
                            serve_control_client(&host, conn, &|| {
                                let _ = quit_tx.send(());
                            });
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
    stop.store(true, Ordering::Release);
    host.stop_all("quit");
    let _ = std::fs::remove_file(&args.ivshmem_socket);
    let _ = std::fs::remove_file(&args.control_socket);
    Ok(())
}
