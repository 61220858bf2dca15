//! blobcli: inspect and edit a Blobstore in a file or block device, modelled on SPDK's
//! blobcli. Every command loads the store, acts, and unloads it cleanly (except `dump`, which
//! only reads).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use blobstore::format::{self, Descriptor, MdPage, SuperBlock, PAGE_SIZE};
use blobstore::{
    BlobId, BlobOptions, Blobstore, Device, Error, FileDevice, InitOptions, LoadOptions,
};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser, Debug)]
#[command(
    name = "blobcli",
    version,
    about = "Inspect and edit a Blobstore (SPDK v3 format)"
)]
struct Cli {
    /// The file or block device holding the store.
    device: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a new store (creates the file with --size if it does not exist).
    Init {
        /// Cluster size in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        cluster_size: u32,
        /// Metadata pages (default one per cluster).
        #[arg(long)]
        md_pages: Option<u32>,
        /// Size in bytes of a file to create (e.g. 1073741824).
        #[arg(long)]
        size: Option<u64>,
        /// Blobstore type (up to 16 bytes).
        #[arg(long, default_value = "")]
        bstype: String,
    },
    /// List blobs.
    List,
    /// Create a blob and print its id.
    Create {
        /// Size in clusters.
        clusters: u64,
        /// Thin provisioning.
        #[arg(long)]
        thin: bool,
        /// Xattr to set, NAME=VALUE (repeatable).
        #[arg(long = "xattr")]
        xattrs: Vec<String>,
    },
    /// Show the store ("bs") or one blob.
    Show {
        /// "bs" or a blob id.
        what: String,
    },
    /// Set the super blob.
    SetSuper { blob: String },
    /// Set a public xattr.
    SetXattr {
        blob: String,
        name: String,
        value: String,
    },
    /// Remove a public xattr.
    RemoveXattr { blob: String, name: String },
    /// Copy a file into a blob (resizing it to fit).
    Import { blob: String, file: PathBuf },
    /// Copy a blob into a file.
    Export { blob: String, file: PathBuf },
    /// Fill a blob with one byte value.
    Fill { blob: String, value: u8 },
    /// Delete a blob.
    Delete { blob: String },
    /// Decode the super block and every metadata page in use.
    Dump,
    /// Rebuild the allocation masks from the metadata (like fsck), check, and unload cleanly.
    Recover,
    /// Snapshot a blob; prints the snapshot's id.
    Snapshot { blob: String },
    /// Clone a snapshot; prints the clone's id.
    Clone { blob: String },
    /// Resize a blob to a number of clusters.
    Resize { blob: String, clusters: u64 },
    /// Allocate every cluster of a blob and drop its parent.
    Inflate { blob: String },
    /// Copy the parent's clusters and re-parent to the grandparent.
    Decouple { blob: String },
}

fn parse_id(s: &str) -> Result<BlobId, Error> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| Error::Invalid(format!("bad blob id {s}")))
}

fn open_dev(path: &Path) -> Result<Arc<dyn Device>, Error> {
    Ok(Arc::new(FileDevice::open(path)?))
}

fn load(path: &Path, force_recover: bool) -> Result<Blobstore, Error> {
    Blobstore::load(
        open_dev(path)?,
        &LoadOptions {
            force_recover,
            ..LoadOptions::default()
        },
    )
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes}") {
        pb.set_style(style);
    }
    pb.set_message(what.to_string());
    pb
}

fn show_blob(bs: &Blobstore, id: BlobId) -> Result<(), Error> {
    let b = bs.open_blob(id)?;
    println!("blob {id:#x}");
    println!("  clusters:           {}", b.num_clusters());
    println!("  allocated clusters: {}", b.num_allocated_clusters());
    println!("  io_units:           {}", b.num_io_units());
    println!("  thin provisioned:   {}", b.is_thin());
    println!("  read-only:          {}", b.is_read_only());
    match b.parent_id() {
        Some(p) => println!("  parent:             {p:#x}"),
        None => println!("  parent:             none"),
    }
    let clones = bs.clones_of(id)?;
    if !clones.is_empty() {
        let c: Vec<String> = clones.iter().map(|c| format!("{c:#x}")).collect();
        println!("  clones:             {}", c.join(" "));
    }
    for name in b.xattr_names()? {
        let v = b.get_xattr(&name)?;
        match std::str::from_utf8(&v) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => println!("  xattr {name} = \"{s}\""),
            _ => println!("  xattr {name} = {} bytes", v.len()),
        }
    }
    b.close()
}

fn show_bs(bs: &Blobstore) {
    let sb = bs.super_block();
    println!("blobstore");
    println!("  version:            {}", sb.version);
    println!("  cluster size:       {}", bs.cluster_size());
    println!("  io_unit size:       {}", bs.io_unit_size());
    println!("  md page size:       {}", bs.md_page_size());
    println!("  total clusters:     {}", bs.total_clusters());
    println!("  usable clusters:    {}", bs.usable_clusters());
    println!("  free clusters:      {}", bs.free_clusters());
    println!(
        "  md pages:           {} ({} used)",
        sb.md_len,
        bs.used_md_pages()
    );
    let t = String::from_utf8_lossy(&sb.bstype);
    println!("  bstype:             {:?}", t.trim_end_matches('\0'));
    match bs.super_blob() {
        Ok(id) => println!("  super blob:         {id:#x}"),
        Err(_) => println!("  super blob:         none"),
    }
    println!("  blobs:              {}", bs.blob_ids().len());
}

fn dump(path: &Path) -> Result<(), Error> {
    let dev = open_dev(path)?;
    let mut raw = vec![0u8; PAGE_SIZE];
    dev.read_at(&mut raw, 0)?;
    let crc = if format::crc_ok(&raw) {
        "OK"
    } else {
        "Mismatch"
    };
    let sb = SuperBlock::decode(&raw)?;
    println!("super block: crc {crc}");
    println!(
        "  version {} clean {} super_blob {:#x} cluster_size {} size {} io_unit {} md_page {}",
        sb.version,
        u8::from(sb.clean),
        sb.super_blob,
        sb.cluster_size,
        sb.size,
        sb.io_unit_size,
        sb.md_page_size
    );
    println!(
        "  page mask {}/{} cluster mask {}/{} blobid mask {}/{} md {}/{}",
        sb.used_page_mask_start,
        sb.used_page_mask_len,
        sb.used_cluster_mask_start,
        sb.used_cluster_mask_len,
        sb.used_blobid_mask_start,
        sb.used_blobid_mask_len,
        sb.md_start,
        sb.md_len
    );
    let pgsz = if sb.md_page_size == 0 {
        4096
    } else {
        u64::from(sb.md_page_size)
    };
    let mut page = vec![0u8; PAGE_SIZE];
    for i in 0..sb.md_len {
        dev.read_at(&mut page, (u64::from(sb.md_start) + u64::from(i)) * pgsz)?;
        if page.iter().all(|&b| b == 0) {
            continue;
        }
        let crc = if format::crc_ok(&page) {
            "OK"
        } else {
            "Mismatch"
        };
        let p = match MdPage::decode(&page) {
            Ok(p) => p,
            Err(e) => {
                println!("md page {i}: crc {crc}, undecodable: {e}");
                continue;
            }
        };
        let next = if p.next == format::INVALID_MD_PAGE {
            "none".to_string()
        } else {
            p.next.to_string()
        };
        println!(
            "md page {i}: blob {:#x} sequence {} next {next} crc {crc}",
            p.id, p.sequence_num
        );
        for d in &p.descriptors {
            match d {
                Descriptor::Flags {
                    invalid,
                    data_ro,
                    md_ro,
                } => {
                    println!("  flags: invalid {invalid:#x} data_ro {data_ro:#x} md_ro {md_ro:#x}")
                }
                Descriptor::Xattr {
                    internal,
                    name,
                    value,
                } => println!(
                    "  {}xattr {} ({} bytes)",
                    if *internal { "internal " } else { "" },
                    String::from_utf8_lossy(name),
                    value.len()
                ),
                Descriptor::ExtentRle(runs) => {
                    let r: Vec<String> = runs.iter().map(|(c, l)| format!("{c}x{l}")).collect();
                    println!("  extents (rle): {}", r.join(" "));
                }
                Descriptor::ExtentTable {
                    num_clusters,
                    pages,
                } => {
                    let r: Vec<String> = pages.iter().map(|(p, n)| format!("{p}x{n}")).collect();
                    println!(
                        "  extent table: {num_clusters} clusters, pages {}",
                        r.join(" ")
                    );
                }
                Descriptor::ExtentPage { start, clusters } => {
                    let c: Vec<String> = clusters.iter().map(u32::to_string).collect();
                    println!("  extent page from cluster {start}: {}", c.join(" "));
                }
                Descriptor::Unknown { kind } => println!("  unknown descriptor type {kind}"),
            }
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), Error> {
    let path = cli.device.as_path();
    match cli.cmd {
        Cmd::Init {
            cluster_size,
            md_pages,
            size,
            bstype,
        } => {
            let dev: Arc<dyn Device> = match size {
                Some(sz) if !path.exists() => Arc::new(FileDevice::create(path, sz)?),
                _ => open_dev(path)?,
            };
            let mut t = [0u8; 16];
            let b = bstype.as_bytes();
            if b.len() > 16 {
                return Err(Error::Invalid("bstype longer than 16 bytes".into()));
            }
            t[..b.len()].copy_from_slice(b);
            let bs = Blobstore::init(
                dev,
                &InitOptions {
                    cluster_size,
                    num_md_pages: md_pages,
                    bstype: t,
                    ..InitOptions::default()
                },
            )?;
            show_bs(&bs);
            bs.unload()
        }
        Cmd::Dump => dump(path),
        Cmd::Recover => {
            let bs = load(path, true)?;
            let r = bs.check()?;
            println!(
                "recovered: {} blobs, {} clusters owned, {} metadata, {} free, {} md pages",
                r.blobs, r.owned_clusters, r.md_clusters, r.free_clusters, r.used_md_pages
            );
            bs.unload()
        }
        cmd => {
            let bs = load(path, false)?;
            let res = command(&bs, cmd);
            let unload = bs.unload();
            res.and(unload)
        }
    }
}

fn command(bs: &Blobstore, cmd: Cmd) -> Result<(), Error> {
    match cmd {
        Cmd::List => {
            for id in bs.blob_ids() {
                let b = bs.open_blob(id)?;
                println!(
                    "{id:#x} clusters {} allocated {}{}{}",
                    b.num_clusters(),
                    b.num_allocated_clusters(),
                    if b.is_thin() { " thin" } else { "" },
                    if b.is_read_only() { " read-only" } else { "" }
                );
                b.close()?;
            }
            Ok(())
        }
        Cmd::Create {
            clusters,
            thin,
            xattrs,
        } => {
            let mut xs = Vec::new();
            for x in xattrs {
                let (k, v) = x
                    .split_once('=')
                    .ok_or_else(|| Error::Invalid(format!("xattr {x} is not NAME=VALUE")))?;
                xs.push((k.to_string(), v.as_bytes().to_vec()));
            }
            let id = bs.create_blob(&BlobOptions {
                num_clusters: clusters,
                thin_provision: thin,
                xattrs: xs,
                ..BlobOptions::default()
            })?;
            println!("{id:#x}");
            Ok(())
        }
        Cmd::Show { what } => {
            if what == "bs" {
                show_bs(bs);
                Ok(())
            } else {
                show_blob(bs, parse_id(&what)?)
            }
        }
        Cmd::SetSuper { blob } => bs.set_super_blob(parse_id(&blob)?),
        Cmd::SetXattr { blob, name, value } => {
            let b = bs.open_blob(parse_id(&blob)?)?;
            b.set_xattr(&name, value.as_bytes())?;
            b.close()
        }
        Cmd::RemoveXattr { blob, name } => {
            let b = bs.open_blob(parse_id(&blob)?)?;
            b.remove_xattr(&name)?;
            b.close()
        }
        Cmd::Import { blob, file } => {
            let b = bs.open_blob(parse_id(&blob)?)?;
            let mut f = std::fs::File::open(&file)?;
            let len = f.metadata()?.len();
            let cs = bs.cluster_size();
            if b.num_clusters() * cs < len {
                b.resize(len.div_ceil(cs))?;
                b.sync_md()?;
            }
            let unit = bs.io_unit_size();
            let chunk = cs as usize;
            let mut buf = vec![0u8; chunk];
            let pb = progress(len, "import");
            let mut off = 0u64;
            while off < len {
                let n = (len - off).min(chunk as u64) as usize;
                f.read_exact(&mut buf[..n])?;
                let padded = n.next_multiple_of(unit as usize);
                buf[n..padded].fill(0);
                b.write(off / unit, &buf[..padded])?;
                off += n as u64;
                pb.set_position(off);
            }
            pb.finish_and_clear();
            b.flush()?;
            b.set_xattr("length", &len.to_le_bytes())?;
            b.close()
        }
        Cmd::Export { blob, file } => {
            let b = bs.open_blob(parse_id(&blob)?)?;
            let cs = bs.cluster_size();
            let total = b.num_clusters() * cs;
            let len = match b.get_xattr("length") {
                Ok(v) if v.len() == 8 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&v);
                    u64::from_le_bytes(a).min(total)
                }
                _ => total,
            };
            let mut f = std::fs::File::create(&file)?;
            let unit = bs.io_unit_size();
            let mut buf = vec![0u8; cs as usize];
            let pb = progress(len, "export");
            let mut off = 0u64;
            while off < len {
                let n = (len - off).min(cs);
                let padded = n.next_multiple_of(unit) as usize;
                b.read(off / unit, &mut buf[..padded])?;
                f.write_all(&buf[..n as usize])?;
                off += n;
                pb.set_position(off);
            }
            pb.finish_and_clear();
            b.close()
        }
        Cmd::Fill { blob, value } => {
            let b = bs.open_blob(parse_id(&blob)?)?;
            let cs = bs.cluster_size();
            let unit = bs.io_unit_size();
            let buf = vec![value; cs as usize];
            let n = b.num_clusters();
            let pb = progress(n * cs, "fill");
            for c in 0..n {
                b.write(c * cs / unit, &buf)?;
                pb.set_position((c + 1) * cs);
            }
            pb.finish_and_clear();
            b.flush()?;
            b.close()
        }
        Cmd::Delete { blob } => bs.delete_blob(parse_id(&blob)?),
        Cmd::Snapshot { blob } => {
            println!("{:#x}", bs.create_snapshot(parse_id(&blob)?, &[])?);
            Ok(())
        }
        Cmd::Clone { blob } => {
            println!("{:#x}", bs.create_clone(parse_id(&blob)?, &[])?);
            Ok(())
        }
        Cmd::Resize { blob, clusters } => {
            let b = bs.open_blob(parse_id(&blob)?)?;
            b.resize(clusters)?;
            b.close()
        }
        Cmd::Inflate { blob } => bs.inflate(parse_id(&blob)?),
        Cmd::Decouple { blob } => bs.decouple_parent(parse_id(&blob)?),
        Cmd::Init { .. } | Cmd::Dump | Cmd::Recover => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blobcli: {e}");
            ExitCode::from(u8::try_from(e.errno()).unwrap_or(1))
        }
    }
}
