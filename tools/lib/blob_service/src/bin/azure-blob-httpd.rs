// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `azure-blob-httpd`: the HTTP door of the blob service on a loopback TCP port.

use std::sync::Arc;

use azure_blob_service::auth::Account;
use azure_blob_service::server::HttpServer;
use azure_blob_service::{BlobService, Config, FileStorage, MemoryStorage, Storage};
use clap::Parser;

/// Serve Azure Blob REST (path-style URLs: /ACCOUNT/CONTAINER/BLOB) from memory or a
/// directory.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:10000")]
    listen: String,
    /// Accounts as NAME:BASE64KEY (repeatable); default: the Azurite development account.
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// Accept requests without verifying SharedKey signatures.
    #[arg(long)]
    no_auth: bool,
    /// Most concurrent connections.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Write the bound port to this file once listening (for scripts using port 0).
    #[arg(long)]
    port_file: Option<std::path::PathBuf>,
    /// Keep data in this directory (durable, survives restarts) instead of in memory.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = Config::default();
    if !args.accounts.is_empty() {
        config.accounts.clear();
        for a in &args.accounts {
            let Some((name, key)) = a.split_once(':') else {
                eprintln!("azure-blob-httpd: --account wants NAME:BASE64KEY, got {a:?}");
                return std::process::ExitCode::from(2);
            };
            match Account::new(name, key) {
                Ok(acc) => config.accounts.push(acc),
                Err(e) => {
                    eprintln!("azure-blob-httpd: bad key for account {name}: {e}");
                    return std::process::ExitCode::from(2);
                }
            }
        }
    }
    config.http_shared_key = !args.no_auth;
    let storage: Arc<dyn Storage> = match &args.data_dir {
        None => Arc::new(MemoryStorage::new()),
        Some(dir) => match FileStorage::open(dir) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("azure-blob-httpd: cannot open {}: {e}", dir.display());
                return std::process::ExitCode::from(1);
            }
        },
    };
    let svc = BlobService::new(storage, config);
    let server = match HttpServer::start(svc, args.listen.as_str(), args.max_connections) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("azure-blob-httpd: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(1);
        }
    };
    let addr = server.local_addr();
    if let Some(p) = &args.port_file {
        if let Err(e) = std::fs::write(p, addr.port().to_string()) {
            eprintln!("azure-blob-httpd: cannot write {}: {e}", p.display());
            return std::process::ExitCode::from(1);
        }
    }
    eprintln!("azure-blob-httpd: listening on http://{addr}");
    server.join();
    std::process::ExitCode::SUCCESS
}
