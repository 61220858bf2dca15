// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! azblob: Azure Blob storage from the command line, through /dev/azure_blob.
//!
//! Blobs are named `az://CONTAINER/BLOB`; anything else is a local path.
//! Exit codes: 0 success, 1 usage or local error, 2 not found, 3 conflict
//! (already exists, lease), 4 condition not met, 5 other service error,
//! 6 the device or the host failed.

use azure_blob::{Device, RestRequest, RestResponse, VscClient, DEV_ACCOUNT};
use base64::Engine;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{Read, Write};
use std::process::ExitCode;

/// Files up to this size go up in one Put Blob; larger ones in staged blocks.
const SINGLE_SHOT: usize = 16 << 20;
/// Block size of staged uploads and of ranged downloads.
const BLOCK: usize = 8 << 20;

#[derive(Parser)]
#[command(
    name = "azblob",
    version,
    about = "Azure Blob storage through /dev/azure_blob (the VMBus fast path)",
    long_about = "Azure Blob storage through /dev/azure_blob, the VMBus fast path of Azure VMs: \
                  no HTTP or TCP in the guest. Blobs are written az://CONTAINER/BLOB.\n\n\
                  Examples:\n  azblob mb photos\n  azblob cp ./cat.jpg az://photos/cat.jpg\n  \
                  azblob ls az://photos\n  azblob cat az://photos/cat.jpg --offset 0 --length 100 | xxd\n  \
                  azblob cp az://photos/cat.jpg ./copy.jpg\n\n\
                  Exit codes: 0 ok, 1 usage or local error, 2 not found, 3 conflict, \
                  4 condition not met, 5 other service error, 6 device or host failure."
)]
struct Cli {
    /// The storage account.
    #[arg(long, default_value = DEV_ACCOUNT, global = true)]
    account: String,
    /// The device node.
    #[arg(long, default_value = azure_blob::DEFAULT_PATH, global = true)]
    device: String,
    /// No progress bars and no messages, only errors (for scripts).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Parallel block transfers for large files.
    #[arg(long, default_value_t = 4, global = true)]
    parallel: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a container.
    Mb { container: String },
    /// Remove a container and its blobs.
    Rb { container: String },
    /// List containers, or the blobs of az://CONTAINER[/PREFIX].
    Ls { target: Option<String> },
    /// Copy: local -> az://C/B (upload) or az://C/B -> local (download).
    Cp { src: String, dst: String },
    /// Write a blob (or a range of it) to standard output.
    Cat {
        blob: String,
        #[arg(long)]
        offset: Option<u64>,
        #[arg(long)]
        length: Option<u64>,
    },
    /// Show a blob's properties.
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
}

/// An error with the exit code it maps to.
struct Fail(u8, String);

type R<T> = Result<T, Fail>;

fn local(e: impl std::fmt::Display) -> Fail {
    Fail(1, e.to_string())
}

fn service(what: &str, r: &RestResponse) -> Fail {
    let code = match r.status {
        404 => 2,
        409 => 3,
        304 | 412 => 4,
        _ => 5,
    };
    Fail(
        code,
        format!("{what}: HTTP {} {}", r.status, r.error_code().unwrap_or("")),
    )
}

fn blob_path(s: &str) -> R<(String, String)> {
    let rest = s
        .strip_prefix("az://")
        .ok_or_else(|| Fail(1, format!("'{s}' is not az://CONTAINER/BLOB")))?;
    match rest.split_once('/') {
        Some((c, b)) if !c.is_empty() && !b.is_empty() => Ok((c.to_string(), b.to_string())),
        _ => Err(Fail(1, format!("'{s}' is not az://CONTAINER/BLOB"))),
    }
}

struct Ctx {
    client: VscClient,
    quiet: bool,
    parallel: usize,
}

impl Ctx {
    fn send(
        &self,
        what: &str,
        req: RestRequest<'_>,
        body_cap: usize,
        ok: &[u16],
    ) -> R<RestResponse> {
        let r = self
            .client
            .send(&req, body_cap)
            .map_err(|e| Fail(6, format!("{what}: {e}")))?;
        if !ok.contains(&r.status) {
            return Err(service(what, &r));
        }
        Ok(r)
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

fn names(xml: &[u8], tag: &[u8]) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = Vec::new();
    let mut inside = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Start(e)) => inside = e.name().as_ref() == tag,
            Ok(quick_xml::events::Event::Text(t)) if inside => {
                out.push(t.unescape().map(|s| s.into_owned()).unwrap_or_default())
            }
            Ok(quick_xml::events::Event::End(_)) => inside = false,
            Ok(quick_xml::events::Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

fn upload(ctx: &Ctx, file: &str, container: &str, blob: &str) -> R<()> {
    let data = std::fs::read(file).map_err(|e| local(format!("{file}: {e}")))?;
    let path = format!("/{container}/{blob}");
    let pb = ctx.bar(data.len() as u64, &format!("upload {file}"));
    if data.len() <= SINGLE_SHOT {
        let hdrs = [("x-ms-blob-type", "BlockBlob")];
        ctx.send(
            "upload",
            RestRequest {
                method: "PUT",
                path: &path,
                headers: &hdrs,
                body: &data,
            },
            0,
            &[201],
        )?;
        pb.inc(data.len() as u64);
    } else {
        // Staged blocks, several at once, then one commit.
        let ids: Vec<String> = (0..data.len().div_ceil(BLOCK))
            .map(|i| base64::engine::general_purpose::STANDARD.encode(format!("block-{i:08}")))
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let first_error = std::sync::Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..ctx.parallel.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= ids.len() {
                        break;
                    }
                    let chunk = &data[i * BLOCK..((i + 1) * BLOCK).min(data.len())];
                    let p = format!(
                        "{path}?comp=block&blockid={}",
                        ids[i]
                            .replace('=', "%3D")
                            .replace('+', "%2B")
                            .replace('/', "%2F")
                    );
                    match ctx.send(
                        "put block",
                        RestRequest {
                            method: "PUT",
                            path: &p,
                            headers: &[],
                            body: chunk,
                        },
                        0,
                        &[201],
                    ) {
                        Ok(_) => pb.inc(chunk.len() as u64),
                        Err(e) => {
                            if let Ok(mut g) = first_error.lock() {
                                g.get_or_insert(e);
                            }
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().ok().flatten() {
            return Err(e);
        }
        let list: String = ids
            .iter()
            .map(|id| format!("<Latest>{id}</Latest>"))
            .collect();
        let body =
            format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{list}</BlockList>");
        let p = format!("{path}?comp=blocklist");
        ctx.send(
            "commit block list",
            RestRequest {
                method: "PUT",
                path: &p,
                headers: &[],
                body: body.as_bytes(),
            },
            0,
            &[201],
        )?;
    }
    pb.finish_and_clear();
    ctx.say(&format!(
        "uploaded {file} to az://{container}/{blob} ({} bytes)",
        data.len()
    ));
    Ok(())
}

fn size_of_blob(ctx: &Ctx, path: &str) -> R<u64> {
    let r = ctx.send(
        "blob properties",
        RestRequest {
            method: "HEAD",
            path,
            headers: &[],
            body: b"",
        },
        0,
        &[200],
    )?;
    r.header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Fail(6, "no Content-Length".into()))
}

/// Writes `[offset, offset+length)` of the blob to `out`, in ranged blocks.
fn download(
    ctx: &Ctx,
    path: &str,
    offset: u64,
    length: u64,
    out: &mut dyn Write,
    label: &str,
) -> R<()> {
    let pb = ctx.bar(length, label);
    let mut at = offset;
    while at < offset + length {
        let n = (BLOCK as u64).min(offset + length - at);
        let range = format!("bytes={}-{}", at, at + n - 1);
        let hdrs = [("x-ms-range", range.as_str())];
        let r = ctx.send(
            "download",
            RestRequest {
                method: "GET",
                path,
                headers: &hdrs,
                body: b"",
            },
            n as usize,
            &[200, 206],
        )?;
        if r.body.len() as u64 != n {
            return Err(Fail(
                6,
                format!("asked for {n} bytes at {at}, got {}", r.body.len()),
            ));
        }
        out.write_all(&r.body).map_err(local)?;
        pb.inc(n);
        at += n;
    }
    pb.finish_and_clear();
    Ok(())
}

fn run(cli: Cli) -> R<()> {
    let device = Device::open_path(&cli.device).map_err(|e| Fail(6, e.to_string()))?;
    let ctx = Ctx {
        client: VscClient::new(device, &cli.account),
        quiet: cli.quiet,
        parallel: cli.parallel,
    };
    match cli.cmd {
        Cmd::Mb { container } => {
            let p = format!("/{container}?restype=container");
            ctx.send(
                "make container",
                RestRequest {
                    method: "PUT",
                    path: &p,
                    headers: &[],
                    body: b"",
                },
                0,
                &[201],
            )?;
            ctx.say(&format!("made container {container}"));
        }
        Cmd::Rb { container } => {
            let p = format!("/{container}?restype=container");
            ctx.send(
                "remove container",
                RestRequest {
                    method: "DELETE",
                    path: &p,
                    headers: &[],
                    body: b"",
                },
                0,
                &[202],
            )?;
            ctx.say(&format!("removed container {container}"));
        }
        Cmd::Ls { target: None } => {
            let r = ctx.send(
                "list containers",
                RestRequest {
                    method: "GET",
                    path: "/?comp=list",
                    headers: &[],
                    body: b"",
                },
                1 << 20,
                &[200],
            )?;
            for n in names(&r.body, b"Name") {
                println!("{n}");
            }
        }
        Cmd::Ls { target: Some(t) } => {
            let rest = t.strip_prefix("az://").unwrap_or(&t);
            let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let p = format!("/{container}?restype=container&comp=list&prefix={prefix}");
            let r = ctx.send(
                "list blobs",
                RestRequest {
                    method: "GET",
                    path: &p,
                    headers: &[],
                    body: b"",
                },
                4 << 20,
                &[200],
            )?;
            let names = names(&r.body, b"Name");
            let sizes = self::names(&r.body, b"Content-Length");
            for (i, n) in names.iter().enumerate() {
                println!(
                    "{:>12}  {n}",
                    sizes.get(i).map(String::as_str).unwrap_or("?")
                );
            }
        }
        Cmd::Cp { src, dst } => match (src.starts_with("az://"), dst.starts_with("az://")) {
            (false, true) => {
                let (c, b) = blob_path(&dst)?;
                upload(&ctx, &src, &c, &b)?;
            }
            (true, false) => {
                let (c, b) = blob_path(&src)?;
                let path = format!("/{c}/{b}");
                let size = size_of_blob(&ctx, &path)?;
                let mut f =
                    std::fs::File::create(&dst).map_err(|e| local(format!("{dst}: {e}")))?;
                download(&ctx, &path, 0, size, &mut f, &format!("download {src}"))?;
                ctx.say(&format!("downloaded {src} to {dst} ({size} bytes)"));
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
            let (c, b) = blob_path(&blob)?;
            let path = format!("/{c}/{b}");
            let size = size_of_blob(&ctx, &path)?;
            let offset = offset.unwrap_or(0);
            if offset > size {
                return Err(Fail(
                    1,
                    format!("offset {offset} is past the end ({size} bytes)"),
                ));
            }
            let length = length.unwrap_or(size - offset).min(size - offset);
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let quiet_ctx = Ctx { quiet: true, ..ctx };
            download(&quiet_ctx, &path, offset, length, &mut out, "cat")?;
        }
        Cmd::Stat { blob } => {
            let (c, b) = blob_path(&blob)?;
            let p = format!("/{c}/{b}");
            let r = ctx.send(
                "blob properties",
                RestRequest {
                    method: "HEAD",
                    path: &p,
                    headers: &[],
                    body: b"",
                },
                0,
                &[200],
            )?;
            for k in [
                "content-length",
                "content-type",
                "etag",
                "last-modified",
                "x-ms-blob-type",
                "x-ms-lease-state",
            ] {
                if let Some(v) = r.header(k) {
                    println!("{k}: {v}");
                }
            }
        }
        Cmd::Rm { blob } => {
            let (c, b) = blob_path(&blob)?;
            let p = format!("/{c}/{b}");
            ctx.send(
                "delete blob",
                RestRequest {
                    method: "DELETE",
                    path: &p,
                    headers: &[],
                    body: b"",
                },
                0,
                &[202],
            )?;
            ctx.say(&format!("deleted {blob}"));
        }
        Cmd::PutBlock {
            blob,
            block_id,
            file,
        } => {
            let (c, b) = blob_path(&blob)?;
            let mut data = Vec::new();
            std::fs::File::open(&file)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(|e| local(format!("{file}: {e}")))?;
            let id = base64::engine::general_purpose::STANDARD.encode(&block_id);
            let p = format!(
                "/{c}/{b}?comp=block&blockid={}",
                id.replace('=', "%3D")
                    .replace('+', "%2B")
                    .replace('/', "%2F")
            );
            ctx.send(
                "put block",
                RestRequest {
                    method: "PUT",
                    path: &p,
                    headers: &[],
                    body: &data,
                },
                0,
                &[201],
            )?;
            ctx.say(&format!(
                "staged block '{block_id}' ({} bytes) of {blob}",
                data.len()
            ));
        }
        Cmd::Commit { blob, block_ids } => {
            let (c, b) = blob_path(&blob)?;
            let list: String = block_ids
                .iter()
                .map(|id| {
                    format!(
                        "<Latest>{}</Latest>",
                        base64::engine::general_purpose::STANDARD.encode(id)
                    )
                })
                .collect();
            let body =
                format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{list}</BlockList>");
            let p = format!("/{c}/{b}?comp=blocklist");
            ctx.send(
                "commit block list",
                RestRequest {
                    method: "PUT",
                    path: &p,
                    headers: &[],
                    body: body.as_bytes(),
                },
                0,
                &[201],
            )?;
            ctx.say(&format!("committed {} block(s) as {blob}", block_ids.len()));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("azblob: {msg}");
            ExitCode::from(code)
        }
    }
}
