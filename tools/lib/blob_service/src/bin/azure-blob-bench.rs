// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `azure-blob-bench`: one client, several Blob endpoints, side by side.
//!
//! For each target: throughput of 64 MiB Put Blob and Get Blob, and ops/s of 4 KiB Put Blob,
//! Get Blob and Get Blob Properties (HEAD) from concurrent clients on keep-alive connections.
//! Every request is SharedKey-signed for the development account. Prints a table and the ratio
//! of the first target to each other one. A benchmark, not a test: it asserts nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_blob_service::auth::{self, Account};
use azure_blob_service::conformance::{HttpTransport, RawResponse, Transport};
use clap::Parser;

/// Benchmark Blob endpoints with the same client.
#[derive(Debug, Parser)]
struct Args {
    /// Targets as NAME=IP:PORT (the first one is the reference of the ratios).
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Size of the large blob in MiB.
    #[arg(long, default_value_t = 64)]
    large_mib: usize,
    /// Repetitions of each large transfer (the median is reported).
    #[arg(long, default_value_t = 5)]
    large_reps: usize,
    /// Concurrent clients for the small operations.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each small-operation phase runs.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
}

struct Client {
    t: HttpTransport,
    account: Account,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Self {
            t: HttpTransport::new(addr, true),
            account: Account::dev(),
        }
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Result<RawResponse, String> {
        let full = format!("/{}{}", self.account.name, path);
        let (raw_path, raw_query) = full.split_once('?').unwrap_or((&full, ""));
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), "127.0.0.1".into()),
            ("x-ms-version".into(), "2021-10-04".into()),
            (
                "x-ms-date".into(),
                httpdate::fmt_http_date(std::time::SystemTime::now()),
            ),
            ("content-length".into(), body.len().to_string()),
        ];
        for (n, v) in extra {
            headers.push(((*n).to_string(), (*v).to_string()));
        }
        let sts = auth::string_to_sign(method, &self.account.name, raw_path, raw_query, &headers);
        headers.push(("authorization".into(), auth::sign(&self.account, &sts)));
        let mut head = format!("{method} {full} HTTP/1.1\r\n");
        for (n, v) in &headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.t.exchange(head.as_bytes(), body, method == "HEAD")
    }

    fn expect(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
        status: u16,
    ) -> Result<RawResponse, String> {
        let r = self.request(method, path, extra, body)?;
        if r.status != status {
            return Err(format!(
                "{method} {path}: status {} ({:?}), expected {status}",
                r.status,
                r.header("x-ms-error-code")
            ));
        }
        Ok(r)
    }
}

const BLOCK: &[(&str, &str)] = &[("x-ms-blob-type", "BlockBlob")];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[derive(Debug, Default, Clone)]
struct Figures {
    put_mib_s: f64,
    get_mib_s: f64,
    put_ops: f64,
    get_ops: f64,
    head_ops: f64,
}

fn large(addr: SocketAddr, args: &Args) -> Result<(f64, f64), String> {
    let mut c = Client::new(addr);
    let data: Vec<u8> = (0..args.large_mib << 20)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let mib = args.large_mib as f64;
    let mut puts = Vec::new();
    let mut gets = Vec::new();
    for _ in 0..args.large_reps {
        let t = Instant::now();
        c.expect("PUT", "/bench/large", BLOCK, &data, 201)?;
        puts.push(mib / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let r = c.expect("GET", "/bench/large", &[], &[], 200)?;
        gets.push(mib / t.elapsed().as_secs_f64());
        if r.body != data {
            return Err("large blob read back differs".into());
        }
        // The same client for every target: it reuses its body buffer.
        c.t.recycle(r.body);
    }
    Ok((median(puts), median(gets)))
}

/// Runs `op` from `clients` threads for `seconds`; returns operations per second.
fn phase(
    addr: SocketAddr,
    args: &Args,
    op: &'static str,
    payload: Arc<Vec<u8>>,
) -> Result<f64, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for id in 0..args.clients {
        let (stop, count, payload) = (stop.clone(), count.clone(), payload.clone());
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let mut c = Client::new(addr);
            let path = format!("/bench/small-{id}");
            // Each client works on its own blob; it exists before the GET and HEAD phases.
            while !stop.load(Ordering::Relaxed) {
                match op {
                    "PUT" => c.expect("PUT", &path, BLOCK, &payload, 201)?,
                    "GET" => {
                        let r = c.expect("GET", &path, &[], &[], 200)?;
                        if r.body.len() != payload.len() {
                            return Err("short read".into());
                        }
                        r
                    }
                    _ => c.expect("HEAD", &path, &[], &[], 200)?,
                };
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let n_at_stop = count.load(Ordering::Relaxed);
    let elapsed = t.elapsed().as_secs_f64();
    for th in threads {
        th.join()
            .map_err(|_| "client thread panicked".to_string())??;
    }
    Ok(n_at_stop as f64 / elapsed)
}

fn run(addr: SocketAddr, args: &Args) -> Result<Figures, String> {
    let mut c = Client::new(addr);
    let r = c.request("PUT", "/bench?restype=container", &[], &[])?;
    if r.status != 201 && r.status != 409 {
        return Err(format!("create container: {}", r.status));
    }
    let (put_mib_s, get_mib_s) = large(addr, args)?;
    c.expect("DELETE", "/bench/large", &[], &[], 202)?;
    let payload = Arc::new(vec![0x5au8; 4096]);
    let put_ops = phase(addr, args, "PUT", payload.clone())?;
    let get_ops = phase(addr, args, "GET", payload.clone())?;
    let head_ops = phase(addr, args, "HEAD", payload)?;
    Ok(Figures {
        put_mib_s,
        get_mib_s,
        put_ops,
        get_ops,
        head_ops,
    })
}

/// What no server can beat on this machine, measured in the same run: raw
/// TCP over loopback (one connection, no HTTP, 64 KiB writes and reads),
/// and MD5, which the service must compute over every Put Blob body (it
/// returns Content-MD5 and keeps it).
fn ceilings(mib: usize) -> Result<(f64, f64), String> {
    use std::io::{Read, Write};
    let io = |e: std::io::Error| e.to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let total = mib << 20;
    let sink = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 64 << 10];
        let mut got = 0;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(got);
            }
            got += n;
        }
    });
    let chunk = vec![0x5au8; 64 << 10];
    let mut tcp = Vec::new();
    let mut s = std::net::TcpStream::connect(addr).map_err(io)?;
    for _ in 0..3 {
        let t = Instant::now();
        let mut sent = 0;
        while sent < total {
            s.write_all(&chunk).map_err(io)?;
            sent += chunk.len();
        }
        tcp.push(mib as f64 / t.elapsed().as_secs_f64());
    }
    drop(s);
    sink.join()
        .map_err(|_| "sink thread panicked".to_string())?
        .map_err(io)?;
    let data = vec![0xa5u8; total];
    let mut md5 = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let d = <md5::Md5 as md5::Digest>::digest(&data);
        std::hint::black_box(d);
        md5.push(mib as f64 / t.elapsed().as_secs_f64());
    }
    Ok((median(tcp), median(md5)))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut results = Vec::new();
    for t in &args.targets {
        let Some((name, addr)) = t.split_once('=') else {
            eprintln!("azure-blob-bench: --target wants NAME=IP:PORT, got {t:?}");
            return std::process::ExitCode::from(2);
        };
        let addr: SocketAddr = match addr.parse() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("azure-blob-bench: bad address {addr:?}: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        eprintln!("azure-blob-bench: running against {name} ({addr})");
        match run(addr, &args) {
            Ok(f) => results.push((name.to_string(), f)),
            Err(e) => {
                eprintln!("azure-blob-bench: {name}: {e}");
                return std::process::ExitCode::from(1);
            }
        }
    }
    println!(
        "{:<12} {:>14} {:>14} {:>12} {:>12} {:>12}",
        "target",
        format!("put {}MiB MB/s", args.large_mib),
        format!("get {}MiB MB/s", args.large_mib),
        "put 4K op/s",
        "get 4K op/s",
        "head op/s"
    );
    let mb = |mib_s: f64| mib_s * 1.048_576;
    for (name, f) in &results {
        println!(
            "{:<12} {:>14.1} {:>14.1} {:>12.0} {:>12.0} {:>12.0}",
            name,
            mb(f.put_mib_s),
            mb(f.get_mib_s),
            f.put_ops,
            f.get_ops,
            f.head_ops
        );
    }
    if let Some((first, a)) = results.first() {
        for (name, b) in results.iter().skip(1) {
            let r = |x: f64, y: f64| if y > 0.0 { x / y } else { f64::INFINITY };
            println!(
                "{:<12} {:>13.1}x {:>13.1}x {:>11.1}x {:>11.1}x {:>11.1}x",
                format!("{first}/{name}"),
                r(a.put_mib_s, b.put_mib_s),
                r(a.get_mib_s, b.get_mib_s),
                r(a.put_ops, b.put_ops),
                r(a.get_ops, b.get_ops),
                r(a.head_ops, b.head_ops)
            );
        }
    }
    println!(
        "({} clients on keep-alive connections, {:.0} s per small-op phase; large transfers: median of {})",
        args.clients, args.seconds, args.large_reps
    );
    match ceilings(args.large_mib) {
        Ok((tcp, md5)) => {
            println!(
                "ceilings on this machine: raw loopback TCP {:.1} MB/s (one connection, no HTTP); \
                 MD5 {:.1} MB/s (one core; every Put Blob body is hashed)",
                mb(tcp),
                mb(md5)
            );
            if let Some((_, last)) = results.last().filter(|_| results.len() > 1) {
                println!(
                    "10x the last target would need put {:.1} MB/s and get {:.1} MB/s",
                    mb(10.0 * last.put_mib_s),
                    mb(10.0 * last.get_mib_s)
                );
            }
        }
        Err(e) => eprintln!("azure-blob-bench: measuring the ceilings: {e}"),
    }
    std::process::ExitCode::SUCCESS
}
