// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The HTTP door: Azure Blob REST over HTTP/1.1 on a TCP socket.
//!
//! One thread per connection, blocking I/O, keep-alive. Request heads are parsed with
//! `httparse` (the same parser as the VSC door); bodies stream straight from the socket into
//! the engine, and response bodies stream from storage to the socket, so memory per request is
//! bounded by the chunk size whatever the blob size.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::{error_response, BlobService, Door, CHUNK};
use crate::error::{ErrorCode, ServiceError};
use crate::http::{parse_head, Body, HeadError, Request, Response, MAX_HEAD_BYTES};

/// Unread body bytes the server drains to keep a connection alive after an early error.
const MAX_DRAIN: u64 = 1024 * 1024;
/// Idle time after which a keep-alive connection is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A running HTTP door.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (use port 0 for a free port) and serves `svc` on a background thread.
    pub fn start(
        svc: BlobService,
        addr: impl ToSocketAddrs,
        max_connections: usize,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("blob-httpd-accept".into())
            .spawn(move || accept_loop(listener, svc, stop2, max_connections))?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the accept loop ends (it ends only on [`HttpServer::stop`]).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops accepting connections.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept call.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

fn accept_loop(listener: TcpListener, svc: BlobService, stop: Arc<AtomicBool>, max: usize) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        if active.load(Ordering::SeqCst) >= max {
            tracing::warn!("connection limit {max} reached; refusing a connection");
            let mut stream = stream;
            let _ = framing_error(
                &mut stream,
                ServiceError::with_detail(ErrorCode::ServerBusy, "too many connections"),
            );
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let svc = svc.clone();
        let active2 = active.clone();
        let spawned = std::thread::Builder::new()
            .name("blob-httpd-conn".into())
            .spawn(move || {
                if let Err(e) = serve_connection(&svc, stream) {
                    tracing::debug!("connection ended: {e}");
                }
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

enum HeadRead {
    Eof,
    Head(crate::http::RequestHead),
    Bad(HeadError),
}

fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<HeadRead> {
    let mut acc: Vec<u8> = Vec::new();
    loop {
        let data = reader.fill_buf()?;
        if data.is_empty() {
            return Ok(if acc.is_empty() {
                HeadRead::Eof
            } else {
                HeadRead::Bad(HeadError::Malformed(
                    "connection closed inside the head".into(),
                ))
            });
        }
        let before = acc.len();
        let take = data.len().min(MAX_HEAD_BYTES + 1 - before);
        acc.extend_from_slice(&data[..take]);
        match parse_head(&acc) {
            Ok((head, n)) => {
                reader.consume(n - before);
                return Ok(HeadRead::Head(head));
            }
            Err(HeadError::Partial) => {
                reader.consume(take);
            }
            Err(e) => {
                reader.consume(take);
                return Ok(HeadRead::Bad(e));
            }
        }
    }
}

fn write_response(out: &mut TcpStream, resp: Response, send_body: bool) -> std::io::Result<()> {
    let mut head = resp.head_bytes();
    if !send_body {
        return out.write_all(&head);
    }
    match resp.body {
        Body::Empty => out.write_all(&head),
        Body::Bytes(b) => {
            if b.len() <= 64 * 1024 {
                head.extend_from_slice(&b);
                out.write_all(&head)
            } else {
                out.write_all(&head)?;
                out.write_all(&b)
            }
        }
        Body::Reader { len, mut reader } => {
            out.write_all(&head)?;
            let mut buf = vec![0u8; CHUNK];
            let mut left = len;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(std::io::Error::other("blob body ended early"));
                }
                out.write_all(&buf[..n])?;
                left -= n as u64;
            }
            Ok(())
        }
    }
}

/// Closes after an answer while the client may still be sending: stop writing, then read and
/// drop what arrives for a while, so that closing does not reset the connection before the
/// client has read the answer.
fn lingering_close(out: &TcpStream, reader: &mut BufReader<TcpStream>) {
    let _ = out.shutdown(std::net::Shutdown::Write);
    let _ = reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = [0u8; 64 * 1024];
    let mut left: usize = 8 << 20;
    while left > 0 {
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

fn framing_error(out: &mut TcpStream, e: ServiceError) -> std::io::Result<()> {
    let mut r = error_response(&e, &uuid::Uuid::new_v4().to_string(), false);
    let n = r.body.len();
    r.header("Content-Length", n.to_string());
    r.header("Connection", "close");
    r.header("x-ms-request-id", uuid::Uuid::new_v4().to_string());
    r.header("x-ms-version", crate::engine::DEFAULT_VERSION);
    r.header(
        "Date",
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    write_response(out, r, true)
}

fn serve_connection(svc: &BlobService, stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    loop {
        let head = match read_head(&mut reader)? {
            HeadRead::Eof => return Ok(()),
            HeadRead::Bad(e) => {
                framing_error(&mut out, e.to_service_error())?;
                lingering_close(&out, &mut reader);
                return Ok(());
            }
            HeadRead::Head(h) => h,
        };
        if head.header("transfer-encoding").is_some() {
            framing_error(
                &mut out,
                ServiceError::with_detail(
                    ErrorCode::MissingContentLengthHeader,
                    "Transfer-Encoding is not supported; send Content-Length",
                ),
            )?;
            lingering_close(&out, &mut reader);
            return Ok(());
        }
        let body_len = match head.content_length() {
            Ok(v) => v,
            Err(e) => {
                framing_error(&mut out, e)?;
                lingering_close(&out, &mut reader);
                return Ok(());
            }
        };
        let close_requested = head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let send_body = head.method != "HEAD";
        if body_len.unwrap_or(0) > 0
            && head
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = (&mut reader).take(body_len.unwrap_or(0));
        let mut resp = svc.handle(
            Request {
                head,
                body_len,
                body: &mut body,
            },
            Door::Http,
        );
        let left = body.limit();
        let mut close = close_requested;
        if left > 0 {
            if left <= MAX_DRAIN {
                std::io::copy(&mut body, &mut std::io::sink())?;
                close |= body.limit() > 0;
            } else {
                close = true;
            }
        }
        if close {
            resp.header("Connection", "close");
        }
        write_response(&mut out, resp, send_body)?;
        if close {
            lingering_close(&out, &mut reader);
            return Ok(());
        }
    }
}
