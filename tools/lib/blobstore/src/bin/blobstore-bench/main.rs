//! blobstore-bench: prints figures; not a test.
//!
//! On one 1 GiB file-backed store, side by side in one run:
//! - 4 KiB random read and write at queue depth 1 and 32 through a blob, and with
//!   pread/pwrite on the same byte range of the same file (the same engine: positioned I/O,
//!   queue depth = caller threads), plus the io_uring probe on the raw file;
//! - thin first-touch writes vs overwrites;
//! - metadata operations per second (create + sync + delete);
//! - clean vs dirty load time of a store holding 10,000 blobs.

mod uring;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blobstore::{
    Blob, BlobOptions, Blobstore, CrashMode, Device, FileDevice, InitOptions, LoadOptions,
    MemDevice,
};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Parser, Debug)]
#[command(name = "blobstore-bench", about = "Blobstore figures (not a test)")]
struct Args {
    /// Backing file (created, 1 GiB; removed at the end). Default:
    /// blobstore-bench.img in the temporary directory ($TMPDIR).
    #[arg(long)]
    path: Option<PathBuf>,
    /// Seconds per IOPS measurement.
    #[arg(long, default_value_t = 0.5)]
    secs: f64,
    /// Alternating blob/raw rounds per figure (the median is printed).
    #[arg(long, default_value_t = 9)]
    rounds: usize,
    /// Blobs for the load-time measurement.
    #[arg(long, default_value_t = 10_000)]
    blobs: u32,
    /// Metadata operations to time.
    #[arg(long, default_value_t = 200)]
    md_ops: u32,
}

const GIB: u64 = 1 << 30;
const CS: u64 = 1 << 20;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn cpu_secs() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Run `op(rng)` from `qd` threads for `dur`; returns (operations per second of wall time,
/// operations per second of this process's CPU time).
fn run_qd2<F>(qd: usize, dur: Duration, op: F) -> Res<(f64, f64)>
where
    F: Fn(&mut StdRng) -> std::io::Result<()> + Sync,
{
    let c0 = cpu_secs();
    let t0 = Instant::now();
    let wall = run_qd(qd, dur, op)?;
    let ops = wall * t0.elapsed().as_secs_f64();
    Ok((wall, ops / (cpu_secs() - c0).max(1e-9)))
}

/// Interleaved: each of `qd` threads alternates one `a` and one `b` operation for `dur`, timing
/// each; returns the IOPS each side would sustain at this queue depth (qd / mean latency), so
/// both sides meet the same machine load.
fn run_interleaved<A, B>(qd: usize, dur: Duration, a: A, b: B) -> Res<(f64, f64)>
where
    A: Fn(&mut StdRng) -> std::io::Result<()> + Sync,
    B: Fn(&mut StdRng) -> std::io::Result<()> + Sync,
{
    let t0 = Instant::now();
    let sums: Vec<(f64, u64, f64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..qd)
            .map(|t| {
                let (a, b) = (&a, &b);
                s.spawn(move || -> std::io::Result<(f64, u64, f64, u64)> {
                    let mut rng = StdRng::seed_from_u64(t as u64 + 100);
                    let (mut ta, mut na, mut tb, mut nb) = (0.0, 0u64, 0.0, 0u64);
                    while t0.elapsed() < dur {
                        // Alternate which side goes first, so neither gains from order.
                        let a_first = na % 2 == 0;
                        let s0 = Instant::now();
                        if a_first {
                            a(&mut rng)?
                        } else {
                            b(&mut rng)?
                        }
                        let s1 = Instant::now();
                        if a_first {
                            b(&mut rng)?
                        } else {
                            a(&mut rng)?
                        }
                        let s2 = Instant::now();
                        let (first, second) = ((s1 - s0).as_secs_f64(), (s2 - s1).as_secs_f64());
                        if a_first {
                            ta += first;
                            tb += second;
                        } else {
                            ta += second;
                            tb += first;
                        }
                        na += 1;
                        nb += 1;
                    }
                    Ok((ta, na, tb, nb))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Ok((0.0, 0, 0.0, 0)))
                    .unwrap_or((0.0, 0, 0.0, 0))
            })
            .collect()
    });
    let (ta, na, tb, nb) = sums.iter().fold((0.0, 0, 0.0, 0), |acc, x| {
        (acc.0 + x.0, acc.1 + x.1, acc.2 + x.2, acc.3 + x.3)
    });
    let iops = |t: f64, n: u64| qd as f64 * n as f64 / t.max(1e-9);
    Ok((iops(ta, na), iops(tb, nb)))
}

/// Run `op(rng)` from `qd` threads for `dur`; returns operations per second.
fn run_qd<F>(qd: usize, dur: Duration, op: F) -> Res<f64>
where
    F: Fn(&mut StdRng) -> std::io::Result<()> + Sync,
{
    let t0 = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..qd)
            .map(|t| {
                let op = &op;
                s.spawn(move || -> std::io::Result<u64> {
                    let mut rng = StdRng::seed_from_u64(t as u64 + 1);
                    let mut n = 0u64;
                    while t0.elapsed() < dur {
                        op(&mut rng)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(0)).unwrap_or(0))
            .sum()
    });
    Ok(total as f64 / t0.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn io_err(e: blobstore::Error) -> std::io::Error {
    std::io::Error::other(e)
}

fn main() -> Res<()> {
    let args = Args::parse();
    let path = args
        .path
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("blobstore-bench.img"));
    let dur = Duration::from_secs_f64(args.secs);
    println!(
        "blobstore-bench: {} (1 GiB, 1 MiB clusters); median of {} alternating {:.2} s runs",
        path.display(),
        args.rounds,
        args.secs
    );

    let dev = Arc::new(FileDevice::create(&path, GIB)?);
    let bs = Blobstore::init(
        dev.clone() as Arc<dyn Device>,
        &InitOptions {
            cluster_size: CS as u32,
            ..InitOptions::default()
        },
    )?;
    let n = bs.free_clusters() - 64;
    let id = bs.create_blob(&BlobOptions {
        num_clusters: n,
        ..BlobOptions::default()
    })?;
    let blob = bs.open_blob(id)?;
    // Materialize the data region so both sides read the same allocated file blocks.
    let fill = vec![0x5au8; CS as usize];
    for c in 0..n {
        blob.write(c * CS / 4096, &fill)?;
    }
    blob.flush()?;
    // A thick blob on an empty store owns the contiguous clusters after the metadata.
    let region_start = (bs.total_clusters() - bs.usable_clusters()) * CS;
    let region_len = n * CS;
    let blocks = region_len / 4096;
    let raw = File::options().read(true).write(true).open(&path)?;

    println!();
    println!(
        "4 KiB random I/O over {} MiB (positioned I/O; queue depth = threads)",
        region_len >> 20
    );
    println!(
        "{:<22} {:>12} {:>12} {:>8} {:>12}",
        "", "blob IOPS", "raw IOPS", "ratio", "CPU ratio"
    );
    for (write, name) in [(false, "randread"), (true, "randwrite")] {
        for qd in [1usize, 32] {
            let b: &Blob = &blob;
            let rawf = &raw;
            let mut store_runs = Vec::new();
            let mut raw_runs = Vec::new();
            let mut store_cpu = Vec::new();
            let mut raw_cpu = Vec::new();
            for _ in 0..args.rounds {
                let (w, c) = run_qd2(qd, dur, |rng| {
                    let lba = rng.gen_range(0..blocks);
                    let mut buf = [0u8; 4096];
                    if write {
                        b.write(lba, &buf).map_err(io_err)
                    } else {
                        b.read(lba, &mut buf).map_err(io_err)
                    }
                })?;
                store_runs.push(w);
                store_cpu.push(c);
                let (w, c) = run_qd2(qd, dur, |rng| {
                    let off = region_start + rng.gen_range(0..blocks) * 4096;
                    let mut buf = [0u8; 4096];
                    if write {
                        rawf.write_all_at(&buf, off)
                    } else {
                        rawf.read_exact_at(&mut buf, off)
                    }
                })?;
                raw_runs.push(w);
                raw_cpu.push(c);
            }
            let store = median(&mut store_runs);
            let base = median(&mut raw_runs);
            let cpu_ratio = median(&mut store_cpu) / median(&mut raw_cpu);
            println!(
                "{:<22} {:>12.0} {:>12.0} {:>7.1}% {:>11.1}%",
                format!("{name} QD{qd}"),
                store,
                base,
                100.0 * store / base,
                100.0 * cpu_ratio
            );
        }
    }
    println!();
    println!("(CPU ratio: blob ops per CPU-second of this process over raw ops per CPU-second)");
    println!();
    println!("interleaved (each thread alternates a blob and a raw op; IOPS = QD / mean latency)");
    println!(
        "{:<22} {:>12} {:>12} {:>8}",
        "", "blob IOPS", "raw IOPS", "ratio"
    );
    for (write, name) in [(false, "randread"), (true, "randwrite")] {
        for qd in [1usize, 32] {
            let b: &Blob = &blob;
            let rawf = &raw;
            let (bi, ri) = run_interleaved(
                qd,
                dur * args.rounds as u32,
                |rng| {
                    let lba = rng.gen_range(0..blocks);
                    let mut buf = [0u8; 4096];
                    if write {
                        b.write(lba, &buf).map_err(io_err)
                    } else {
                        b.read(lba, &mut buf).map_err(io_err)
                    }
                },
                |rng| {
                    let off = region_start + rng.gen_range(0..blocks) * 4096;
                    let mut buf = [0u8; 4096];
                    if write {
                        rawf.write_all_at(&buf, off)
                    } else {
                        rawf.read_exact_at(&mut buf, off)
                    }
                },
            )?;
            println!(
                "{:<22} {:>12.0} {:>12.0} {:>7.1}%",
                format!("{name} QD{qd}"),
                bi,
                ri,
                100.0 * bi / ri
            );
        }
    }
    println!();
    println!("engine probe, raw file, QD32: io_uring (one thread) vs pread/pwrite (32 threads)");
    println!("(median of {} alternating runs each)", args.rounds);
    for write in [false, true] {
        let name = if write { "randwrite" } else { "randread" };
        let mut pos_runs = Vec::new();
        let mut uring_runs = Vec::new();
        let mut unavailable = None;
        for _ in 0..args.rounds {
            pos_runs.push(run_qd(32, dur, |rng| {
                let off = region_start + rng.gen_range(0..blocks) * 4096;
                let mut buf = [0u8; 4096];
                if write {
                    raw.write_all_at(&buf, off)
                } else {
                    raw.read_exact_at(&mut buf, off)
                }
            })?);
            match uring::random_io(&raw, region_start, region_len, 32, dur, write) {
                Ok(u) => uring_runs.push(u),
                Err(e) => unavailable = Some(e),
            }
        }
        let pos = median(&mut pos_runs);
        match unavailable {
            None => {
                let u = median(&mut uring_runs);
                println!(
                    "{:<22} io_uring {:>10.0}  positioned {:>10.0}  ({:.2}x)",
                    name,
                    u,
                    pos,
                    u / pos
                );
            }
            Some(e) => println!("{name:<22} io_uring unavailable here: {e}; positioned {pos:.0}"),
        }
    }
    blob.close()?;
    bs.delete_blob(id)?;

    // Thin first touch vs overwrite: one 4 KiB write per cluster.
    let touch = 128u64.min(bs.free_clusters());
    let tid = bs.create_blob(&BlobOptions {
        num_clusters: touch,
        thin_provision: true,
        ..BlobOptions::default()
    })?;
    let tb = bs.open_blob(tid)?;
    let buf = [1u8; 4096];
    let t0 = Instant::now();
    for c in 0..touch {
        tb.write(c * CS / 4096 + 3, &buf)?;
    }
    let first = touch as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..10 {
        for c in 0..touch {
            tb.write(c * CS / 4096 + 3, &buf)?;
        }
    }
    let over = (10 * touch) as f64 / t0.elapsed().as_secs_f64();
    println!();
    println!("thin provisioning, 4 KiB write per cluster, QD1");
    println!("  first touch (allocate + zero rest + 2 barriers): {first:>10.0} writes/s");
    println!("  overwrite:                                       {over:>10.0} writes/s");
    tb.close()?;
    bs.delete_blob(tid)?;

    // Metadata operations.
    let t0 = Instant::now();
    for _ in 0..args.md_ops {
        let id = bs.create_blob(&BlobOptions {
            num_clusters: 1,
            xattrs: vec![("name".into(), b"bench".to_vec())],
            ..BlobOptions::default()
        })?;
        let b = bs.open_blob(id)?;
        b.set_xattr("k", b"v")?;
        b.sync_md()?;
        b.close()?;
        bs.delete_blob(id)?;
    }
    let el = t0.elapsed().as_secs_f64();
    println!();
    println!(
        "metadata: create+set_xattr+sync+delete, durable each: {:.0} cycles/s ({:.2} ms each)",
        f64::from(args.md_ops) / el,
        1000.0 * el / f64::from(args.md_ops)
    );
    bs.unload()?;

    // Load time with many blobs. The blobs are created on an in-memory device (same format)
    // to keep the setup short, then the image is written to the file and loaded from it.
    let nblobs = args.blobs;
    let mem = Arc::new(MemDevice::new(256 << 20, 4096));
    let ms = Blobstore::init(
        mem.clone() as Arc<dyn Device>,
        &InitOptions {
            cluster_size: CS as u32,
            num_md_pages: Some(nblobs + nblobs / 4 + 64),
            ..InitOptions::default()
        },
    )?;
    for i in 0..nblobs {
        ms.create_blob(&BlobOptions {
            num_clusters: 64,
            thin_provision: true,
            xattrs: vec![("name".into(), format!("blob-{i}").into_bytes())],
            ..BlobOptions::default()
        })?;
    }
    let dirty_img = mem.crash_image(CrashMode::KeepCompleted);
    ms.unload()?;
    let clean_img = mem.image();
    let mut times = Vec::new();
    for (name, img) in [("clean", &clean_img), ("dirty", &dirty_img)] {
        raw.set_len(0)?;
        raw.write_all_at(img, 0)?;
        raw.sync_all()?;
        let fdev = Arc::new(FileDevice::open(&path)?) as Arc<dyn Device>;
        let t0 = Instant::now();
        let loaded = Blobstore::load(fdev, &LoadOptions::default())?;
        let el = t0.elapsed();
        if loaded.blob_ids().len() != nblobs as usize {
            return Err(format!("{name} load found {} blobs", loaded.blob_ids().len()).into());
        }
        times.push((name, el));
    }
    println!();
    println!("load of a store with {nblobs} blobs (page cache warm)");
    for (name, el) in times {
        println!("  {name} load: {:>8.1} ms", el.as_secs_f64() * 1000.0);
    }
    drop(raw);
    std::fs::remove_file(&path)?;
    Ok(())
}
