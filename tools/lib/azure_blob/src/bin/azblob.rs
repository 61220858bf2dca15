// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! azblob: Azure Blob storage from the command line, through /dev/azure_blob
//! (or, with `--transport http`, Blob REST over TCP).
//!
//! Blobs are named `az://CONTAINER/BLOB`; anything else is a local path.
//! Exit codes: 0 success, 1 usage or local error, 2 not found, 3 conflict
//! (already exists, lease), 4 condition not met, 5 other service error,
//! 6 the device, the host or the connection failed.

use azure_blob::{
    BlobClient, BlobServiceClient, BlockListType, Conditions, DownloadOptions, Error,
    ListBlobsOptions, UploadOptions, DEV_ACCOUNT, DEV_KEY,
};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "azblob",
    version,
    about = "Azure Blob storage through /dev/azure_blob (the VMBus fast path) or HTTP",
    long_about = "Azure Blob storage through /dev/azure_blob, the VMBus fast path of Azure VMs: \
                  no HTTP or TCP in the guest. With --transport http the same commands speak \
                  Blob REST over HTTP or HTTPS (SharedKey) to --endpoint: the simulator's \
                  HTTP door, Azurite, a storage account. Blobs are written az://CONTAINER/BLOB.\n\n\
                  Examples:\n  azblob mb photos\n  azblob cp ./cat.jpg az://photos/cat.jpg\n  \
                  azblob ls az://photos\n  azblob ls az://photos/2026/ --delimiter /\n  \
                  azblob cat az://photos/cat.jpg --offset 0 --length 100 | xxd\n  \
                  azblob cp az://photos/cat.jpg ./copy.jpg\n  \
                  azblob --transport http --endpoint http://127.0.0.1:10000/devstoreaccount1 ls\n\n\
                  Exit codes: 0 ok, 1 usage or local error, 2 not found, 3 conflict, \
                  4 condition not met, 5 other service error, 6 device, host or connection failure."
)]
struct Cli {
    /// How to reach the service.
    #[arg(long, value_enum, default_value_t = TransportKind::Vsc, global = true, env = "AZBLOB_TRANSPORT")]
    transport: TransportKind,
    /// The storage account.
    #[arg(long, default_value = DEV_ACCOUNT, global = true, env = "AZURE_STORAGE_ACCOUNT")]
    account: String,
    /// The device node (--transport vsc).
    #[arg(long, default_value = azure_blob::DEFAULT_PATH, global = true)]
    device: String,
    /// The Blob endpoint (--transport http): http:// or https://, path
    /// style with the account (the simulator, Azurite) or host style
    /// (https://ACCOUNT.blob.core.windows.net). AZBLOB_CA_FILE names a PEM
    /// file of extra CA certificates for HTTPS.
    #[arg(
        long,
        default_value = "http://127.0.0.1:10000/devstoreaccount1",
        global = true,
        env = "AZBLOB_ENDPOINT"
    )]
    endpoint: String,
    /// The account key, base64 (--transport http); default: the development
    /// account's public key.
    #[arg(long, global = true, env = "AZURE_STORAGE_KEY", hide_env_values = true)]
    key: Option<String>,
    /// No progress bars and no messages, only errors (for scripts).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Blocks transferred at once for large files.
    #[arg(long, default_value_t = 4, global = true)]
    parallel: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportKind {
    /// /dev/azure_blob (the VMBus fast path)
    Vsc,
    /// Blob REST over TCP with SharedKey
    Http,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a container.
    Mb { container: String },
    /// Remove a container and its blobs.
    Rb { container: String },
    /// List containers, or the blobs of az://CONTAINER[/PREFIX].
    Ls {
        target: Option<String>,
        /// Group blob names at this delimiter (show "directories").
        #[arg(long)]
        delimiter: Option<String>,
    },
    /// Copy: local -> az://C/B (upload) or az://C/B -> local (download).
    /// Large files go in parallel blocks.
    Cp { src: String, dst: String },
    /// Write a blob (or a range of it) to standard output.
    Cat {
        blob: String,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long)]
        length: Option<u64>,
    },
    /// Show a blob's properties and metadata.
    Stat { blob: String },
    /// Delete a blob.
    Rm { blob: String },
    /// Stage one block of a blob from a local file (power users).
    PutBlock {
        blob: String,
        block_id: String,
        file: String,
    },
    /// Commit staged blocks, in the order given, as the blob's content.
    Commit {
        blob: String,
        block_ids: Vec<String>,
    },
    /// List a block blob's committed and uncommitted blocks.
    Blocks { blob: String },
}

/// An error with the exit code it maps to.
struct Fail(u8, String);

type R<T> = Result<T, Fail>;

fn local(e: impl std::fmt::Display) -> Fail {
    Fail(1, e.to_string())
}

/// Maps a library error to an exit code and a message.
fn fail(what: &str) -> impl Fn(Error) -> Fail + '_ {
    move |e| {
        let code = match e.status() {
            Some(404) => 2,
            Some(409) => 3,
            Some(304 | 412) => 4,
            Some(_) => 5,
            None => match e {
                Error::Config(_) | Error::Local { .. } => 1,
                _ => 6,
            },
        };
        Fail(code, format!("{what}: {e}"))
    }
}

fn split(s: &str) -> R<(String, String)> {
    let rest = s
        .strip_prefix("az://")
        .ok_or_else(|| Fail(1, format!("'{s}' is not az://CONTAINER/BLOB")))?;
    match rest.split_once('/') {
        Some((c, b)) if !c.is_empty() && !b.is_empty() => Ok((c.to_string(), b.to_string())),
        _ => Err(Fail(1, format!("'{s}' is not az://CONTAINER/BLOB"))),
    }
}

struct Ctx {
    service: BlobServiceClient,
    quiet: bool,
    parallel: usize,
}

impl Ctx {
    fn blob(&self, s: &str) -> R<BlobClient> {
        let (c, b) = split(s)?;
        Ok(self.service.container_client(&c).blob_client(&b))
    }

    fn say(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_message(what.to_string());
        pb
    }
}

fn run(cli: Cli) -> R<()> {
    let service = match cli.transport {
        TransportKind::Vsc => {
            let device = azure_blob::Device::open_path(&cli.device).map_err(fail("open"))?;
            BlobServiceClient::vsc(device, &cli.account)
        }
        TransportKind::Http => BlobServiceClient::http(
            &cli.endpoint,
            &cli.account,
            cli.key.as_deref().unwrap_or(DEV_KEY),
        )
        .map_err(fail("connect"))?,
    };
    let ctx = Ctx {
        service,
        quiet: cli.quiet,
        parallel: cli.parallel,
    };
    match cli.cmd {
        Cmd::Mb { container } => {
            ctx.service
                .container_client(&container)
                .create(&Default::default())
                .map_err(fail("make container"))?;
            ctx.say(&format!("made container {container}"));
        }
        Cmd::Rb { container } => {
            ctx.service
                .container_client(&container)
                .delete(&Conditions::default())
                .map_err(fail("remove container"))?;
            ctx.say(&format!("removed container {container}"));
        }
        Cmd::Ls {
            target: None,
            delimiter: _,
        } => {
            for c in ctx
                .service
                .list_containers(&Default::default())
                .map_err(fail("list containers"))?
            {
                println!("{}", c.name);
            }
        }
        Cmd::Ls {
            target: Some(t),
            delimiter,
        } => {
            let rest = t.strip_prefix("az://").unwrap_or(&t);
            let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let listing = ctx
                .service
                .container_client(container)
                .list_blobs(&ListBlobsOptions {
                    prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
                    delimiter,
                    ..Default::default()
                })
                .map_err(fail("list blobs"))?;
            for p in &listing.prefixes {
                println!("{:>12}  {p}", "DIR");
            }
            for b in &listing.blobs {
                println!("{:>12}  {}", b.properties.content_length, b.name);
            }
        }
        Cmd::Cp { src, dst } => match (src.starts_with("az://"), dst.starts_with("az://")) {
            (false, true) => {
                // az://CONTAINER/ or az://CONTAINER/DIR/: the file's name is
                // the blob's last part, as cp does with a directory.
                let dst = if dst.ends_with('/') {
                    let name = std::path::Path::new(&src)
                        .file_name()
                        .ok_or_else(|| local(format!("{src}: not a file name")))?;
                    format!("{dst}{}", name.to_string_lossy())
                } else {
                    dst
                };
                let blob = ctx.blob(&dst)?;
                let len = std::fs::metadata(&src)
                    .map_err(|e| local(format!("{src}: {e}")))?
                    .len();
                let pb = Arc::new(ctx.bar(len, &format!("upload {src}")));
                let p = pb.clone();
                blob.upload_file(
                    std::path::Path::new(&src),
                    &UploadOptions {
                        parallelism: ctx.parallel.max(1),
                        progress: Some(Arc::new(move |n| p.set_position(n))),
                        ..Default::default()
                    },
                )
                .map_err(fail("upload"))?;
                pb.finish_and_clear();
                ctx.say(&format!("uploaded {src} to {dst} ({len} bytes)"));
            }
            (true, false) => {
                let blob = ctx.blob(&src)?;
                // Into a directory: under the blob's last name part.
                let dst = if dst.ends_with('/') || std::path::Path::new(&dst).is_dir() {
                    let name = src.rsplit('/').next().unwrap_or_default();
                    std::path::Path::new(&dst)
                        .join(name)
                        .to_string_lossy()
                        .into_owned()
                } else {
                    dst
                };
                let size = blob
                    .get_properties(&Conditions::default())
                    .map_err(fail("blob properties"))?
                    .content_length;
                let pb = Arc::new(ctx.bar(size, &format!("download {src}")));
                let p = pb.clone();
                let got = blob.download_to_file(
                    std::path::Path::new(&dst),
                    &DownloadOptions {
                        parallelism: Some(ctx.parallel.max(1)),
                        progress: Some(Arc::new(move |n| p.set_position(n))),
                        ..Default::default()
                    },
                );
                pb.finish_and_clear();
                let n = got.map_err(fail("download"))?;
                ctx.say(&format!("downloaded {src} to {dst} ({n} bytes)"));
            }
            _ => {
                return Err(Fail(
                    1,
                    "cp copies between a local file and az://CONTAINER/BLOB".into(),
                ))
            }
        },
        Cmd::Cat {
            blob,
            offset,
            length,
        } => {
            let b = ctx.blob(&blob)?;
            let size = b
                .get_properties(&Conditions::default())
                .map_err(fail("blob properties"))?
                .content_length;
            if offset > size {
                return Err(Fail(
                    1,
                    format!("offset {offset} is past the end ({size} bytes)"),
                ));
            }
            let length = length.unwrap_or(size - offset).min(size - offset);
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            b.download_to(&mut out, &DownloadOptions::range(offset, length))
                .map_err(fail("download"))?;
        }
        Cmd::Stat { blob } => {
            let p = ctx
                .blob(&blob)?
                .get_properties(&Conditions::default())
                .map_err(fail("blob properties"))?;
            println!("size: {}", p.content_length);
            if let Some(t) = p.blob_type {
                println!("type: {t:?}");
            }
            if let Some(ct) = &p.http_headers.content_type {
                println!("content-type: {ct}");
            }
            if let Some(md5) = &p.http_headers.content_md5 {
                println!("content-md5: {md5}");
            }
            println!("etag: {}", p.etag);
            println!("last-modified: {}", p.last_modified);
            if let Some(l) = &p.lease_state {
                println!("lease: {l}");
            }
            for (k, v) in &p.metadata {
                println!("meta {k}: {v}");
            }
        }
        Cmd::Rm { blob } => {
            ctx.blob(&blob)?
                .delete(&Conditions::default())
                .map_err(fail("delete blob"))?;
            ctx.say(&format!("deleted {blob}"));
        }
        Cmd::PutBlock {
            blob,
            block_id,
            file,
        } => {
            let data = std::fs::read(&file).map_err(|e| local(format!("{file}: {e}")))?;
            ctx.blob(&blob)?
                .block_blob_client()
                .stage_block(&block_id, &data, None)
                .map_err(fail("put block"))?;
            ctx.say(&format!(
                "staged block '{block_id}' ({} bytes) of {blob}",
                data.len()
            ));
        }
        Cmd::Commit { blob, block_ids } => {
            ctx.blob(&blob)?
                .block_blob_client()
                .commit_block_list(&block_ids, &Default::default())
                .map_err(fail("commit block list"))?;
            ctx.say(&format!("committed {} block(s) as {blob}", block_ids.len()));
        }
        Cmd::Blocks { blob } => {
            let l = ctx
                .blob(&blob)?
                .block_blob_client()
                .get_block_list(BlockListType::All)
                .map_err(fail("get block list"))?;
            for b in &l.committed {
                println!("committed   {:>12}  {}", b.size, b.name);
            }
            for b in &l.uncommitted {
                println!("uncommitted {:>12}  {}", b.size, b.name);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Usage errors exit 1 like every other local error (clap's own code, 2,
    // is "not found" here); --help and --version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("azblob: {msg}");
            ExitCode::from(code)
        }
    }
}
