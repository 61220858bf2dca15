// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The two doors to the Blob service, behind one [`Transport`] trait.
//!
//! - [`VscTransport`]: `/dev/azure_blob`. The request buffer carries an
//!   HTTP/1.1 request head, the data buffer the request body and then the
//!   response body; the response buffer receives the response head. A
//!   non-zero host status means the exchange itself failed (see
//!   Documentation/tools/blob_service.rst, "the VSC door").
//! - [`HttpTransport`]: Azure Blob REST over TCP (HTTP, or HTTPS with rustls),
//!   signed with SharedKey: our simulator's HTTP door, Azurite, or a storage
//!   account.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hv_azure_blob_proto::shared_key::{self, Account};
use hv_azure_blob_proto::{
    AZ_BLOB_STATUS_BUFFER_TOO_SMALL as STATUS_RESPONSE_TOO_SMALL,
    AZ_BLOB_STATUS_DATA_TOO_SMALL as STATUS_DATA_TOO_SMALL,
};

use crate::{Device, Error, Exchange};

/// The Azurite development account, the simulator's default.
pub const DEV_ACCOUNT: &str = shared_key::DEV_ACCOUNT;
/// The Azurite development account's (public) key.
pub const DEV_KEY: &str = shared_key::DEV_KEY;
/// The REST API version this client speaks.
pub const X_MS_VERSION: &str = "2021-10-04";

/// The largest data buffer one request may carry (8192 pages, less the
/// request and response pages and a page of misalignment each).
pub const MAX_DATA: usize = (8192 - 16) * 4096;

/// One Blob REST request.
#[derive(Debug, Clone)]
pub struct RestRequest<'a> {
    /// `GET`, `PUT`, `HEAD`, `DELETE`, ...
    pub method: &'a str,
    /// The path after the account, percent-encoded, with its query:
    /// `/container/blob?comp=...`.
    pub path: &'a str,
    /// Extra headers (`x-ms-blob-type`, `x-ms-range`, conditions, ...).
    pub headers: &'a [(&'a str, &'a str)],
    /// The request body.
    pub body: &'a [u8],
}

/// The service's answer: any HTTP status, errors included.
#[derive(Debug, Clone, Default)]
pub struct RestResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RestResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The service's error code (`x-ms-error-code`), if any.
    pub fn error_code(&self) -> Option<&str> {
        self.header("x-ms-error-code")
    }
}

/// A way to send Blob REST requests to the service.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Sends one request and returns the service's answer, whatever its
    /// HTTP status. `expected_body` is a hint for the size of the response
    /// body (the VSC door sizes its data buffer with it).
    fn send(&self, req: &RestRequest<'_>, expected_body: usize) -> Result<RestResponse, Error>;

    /// The account requests are made for.
    fn account(&self) -> &str;

    /// Where requests go, for messages: `/dev/azure_blob` or the URL.
    fn endpoint(&self) -> String;
}

/// Refuses a header whose name or value would break the request head (a CR
/// or LF would start a header of its own; other controls are not HTTP).
fn check_headers(req: &RestRequest<'_>) -> Result<(), Error> {
    for (k, v) in req.headers {
        let bad_name = k.is_empty() || k.bytes().any(|b| !b.is_ascii_graphic() || b == b':');
        let bad_value = v.bytes().any(|b| b.is_ascii_control() && b != b'\t');
        if bad_name || bad_value {
            return Err(Error::Config(format!(
                "header {k:?}: {v:?} has characters HTTP does not allow (control characters, CR, LF)"
            )));
        }
    }
    Ok(())
}

/// The request head both doors send.
fn request_head(req: &RestRequest<'_>, host: &str, target: &str) -> String {
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nHost: {host}\r\nx-ms-version: {X_MS_VERSION}\r\nx-ms-date: {}\r\nContent-Length: {}\r\n",
        req.method,
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        req.body.len()
    );
    for (k, v) in req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head
}

/// Parses a response head; the body is the first Content-Length bytes of `data`.
fn parse(head: &[u8], mut data: Vec<u8>) -> Result<RestResponse, Error> {
    let mut out = parse_head(head)?;
    let len = out
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if len > data.len() && !data.is_empty() {
        return Err(Error::Protocol(format!(
            "Content-Length {len} but {} bytes of data",
            data.len()
        )));
    }
    data.truncate(len);
    out.body = data;
    Ok(out)
}

fn parse_head(head: &[u8]) -> Result<RestResponse, Error> {
    // 128 headers fit nearly every answer; a blob with much metadata (up to
    // 8 KiB of x-ms-meta-* headers) needs more.
    match parse_head_with(head, &mut [httparse::EMPTY_HEADER; 128]) {
        Err(httparse::Error::TooManyHeaders) => {
            parse_head_with(head, &mut vec![httparse::EMPTY_HEADER; 4096])
                .map_err(|e| Error::Protocol(e.to_string()))?
        }
        r => r.map_err(|e| Error::Protocol(e.to_string()))?,
    }
}

/// Parses with room for `headers.len()` headers; `Ok(Err)` is a head that
/// parsed but is not complete.
fn parse_head_with<'a>(
    head: &'a [u8],
    headers: &mut [httparse::Header<'a>],
) -> Result<Result<RestResponse, Error>, httparse::Error> {
    let mut r = httparse::Response::new(headers);
    if let httparse::Status::Partial = r.parse(head)? {
        return Ok(Err(Error::Protocol("incomplete response head".into())));
    }
    Ok(Ok(RestResponse {
        status: r.code.unwrap_or(0),
        headers: r
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    }))
}

/// Blob REST on `/dev/azure_blob`.
#[derive(Debug)]
pub struct VscTransport {
    device: Device,
    account: String,
}

/// The former name of [`VscTransport`].
pub type VscClient = VscTransport;

impl VscTransport {
    /// A transport for `account` on an open device.
    pub fn new(device: Device, account: &str) -> Self {
        Self {
            device,
            account: account.to_string(),
        }
    }

    /// Sends one request; `expected_body` sizes the data buffer for the
    /// response body (it grows and retries if the host says it must).
    pub fn send(&self, req: &RestRequest<'_>, expected_body: usize) -> Result<RestResponse, Error> {
        check_headers(req)?;
        let mut head = request_head(
            req,
            &format!("{}.blob.core.windows.net", self.account),
            &format!("/{}{}", self.account, req.path),
        );
        head.push_str("\r\n");
        let mut response_cap = 16 * 1024;
        let mut data_cap = expected_body.max(req.body.len()).min(MAX_DATA);
        for _attempt in 0..3 {
            let mut response = vec![0u8; response_cap];
            let mut data = vec![0u8; data_cap.max(req.body.len())];
            data[..req.body.len()].copy_from_slice(req.body);
            let reply = self.device.request(&mut Exchange {
                guid: *b"azure_blob::rest",
                timeout_ms: 30_000,
                request: head.as_bytes(),
                response: &mut response,
                data: &mut data,
                data_valid: req.body.len(),
            })?;
            match reply.status {
                0 => {
                    let n = (reply.response_len as usize).min(response.len());
                    let data = if req.method == "HEAD" {
                        Vec::new()
                    } else {
                        data
                    };
                    return parse(&response[..n], data);
                }
                STATUS_RESPONSE_TOO_SMALL if (reply.response_len as usize) > response_cap => {
                    // The host did execute the request: only a read may be
                    // sent again; a write must not run twice.
                    if !idempotent(req.method) {
                        return Err(Error::Protocol(format!(
                            "the {} response head needs {} bytes, more than the {response_cap}-byte buffer; the request was executed and is not sent again",
                            req.method, reply.response_len
                        )));
                    }
                    response_cap = reply.response_len as usize;
                }
                STATUS_DATA_TOO_SMALL => {
                    let n = (reply.response_len as usize).min(response.len());
                    let head = parse_head(&response[..n])?;
                    let need: usize = head
                        .header("content-length")
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| {
                            Error::Protocol("no Content-Length with a too-small data buffer".into())
                        })?;
                    if need > MAX_DATA || need <= data_cap {
                        return Err(Error::Host {
                            status: reply.status,
                        });
                    }
                    data_cap = need;
                }
                status => return Err(Error::Host { status }),
            }
        }
        Err(Error::Protocol(
            "the host kept asking for larger buffers".into(),
        ))
    }
}

impl Transport for VscTransport {
    fn send(&self, req: &RestRequest<'_>, expected_body: usize) -> Result<RestResponse, Error> {
        VscTransport::send(self, req, expected_body)
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn endpoint(&self) -> String {
        "/dev/azure_blob".to_string()
    }
}

/// Requests that may be sent twice without changing the outcome.
fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// A connection: plain TCP or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

/// An idle connection is usable if nothing is waiting on it: no leftover
/// bytes and no end of stream (the server closing an idle connection).
fn still_open(conn: &BufReader<Stream>) -> bool {
    if !conn.buffer().is_empty() {
        return false;
    }
    // Readable while idle means end of stream (or stray bytes): one poll,
    // without waiting.
    let mut p = [rustix::event::PollFd::new(
        conn.get_ref().tcp(),
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut p, Some(&zero)), Ok(0))
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Blob REST over HTTP/1.1 with SharedKey, keeping connections alive.
///
/// The endpoint is `http://HOST:PORT/ACCOUNT` (path style: the simulator's
/// HTTP door, Azurite) or `https://ACCOUNT.blob.core.windows.net` (host
/// style, a storage account). HTTPS uses rustls with the Mozilla root
/// certificates (webpki-roots), plus the PEM certificates of
/// [`HttpTransport::with_ca_file`] (or `AZBLOB_CA_FILE`) for private CAs.
pub struct HttpTransport {
    host: String,
    addrs: Vec<std::net::SocketAddr>,
    base_path: String,
    account: Account,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    idle: Mutex<Vec<BufReader<Stream>>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("endpoint", &self.endpoint())
            .field("account", &self.account.name)
            .finish_non_exhaustive()
    }
}

/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

impl HttpTransport {
    /// A transport to `endpoint` signing as `account` with the base64 `key`.
    /// For HTTPS, the certificates in the PEM file named by `AZBLOB_CA_FILE`
    /// are trusted too.
    pub fn new(endpoint: &str, account: &str, key: &str) -> Result<Self, Error> {
        let ca = std::env::var_os("AZBLOB_CA_FILE").map(std::path::PathBuf::from);
        Self::with_ca_file(endpoint, account, key, ca.as_deref())
    }

    /// As [`HttpTransport::new`], trusting the certificates of the PEM file
    /// `ca_file` besides the public roots.
    pub fn with_ca_file(
        endpoint: &str,
        account: &str,
        key: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, Error> {
        let bad = |why: &str| Error::Config(format!("endpoint '{endpoint}': {why}"));
        let (https, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = endpoint.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let (name, with_port) = match host.rsplit_once(':') {
            Some((n, p)) if p.parse::<u16>().is_ok() => (n, host.to_string()),
            _ => (host, format!("{host}:{}", if https { 443 } else { 80 })),
        };
        let addrs: Vec<_> = with_port
            .to_socket_addrs()
            .map_err(|e| bad(&e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(bad("the host has no address"));
        }
        let account = Account::new(account, key)
            .map_err(|e| Error::Config(format!("the account key is not base64: {e}")))?;
        let tls = if https {
            let server_name = rustls::pki_types::ServerName::try_from(
                name.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|e| bad(&format!("not a TLS server name: {e}")))?;
            Some((tls_config(ca_file)?, server_name))
        } else {
            None
        };
        Ok(Self {
            host: host.to_string(),
            addrs,
            base_path: path.to_string(),
            account,
            tls,
            idle: Mutex::new(Vec::new()),
            timeout: Duration::from_secs(60),
        })
    }

    fn connect(&self) -> Result<BufReader<Stream>, Error> {
        // Every address of the name in turn (localhost: ::1, then 127.0.0.1).
        let mut last = None;
        let mut found = None;
        for addr in &self.addrs {
            match TcpStream::connect_timeout(addr, self.timeout) {
                Ok(s) => {
                    found = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let s = match (found, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(Error::Io(e)),
            (None, None) => return Err(Error::Config("the host has no address".into())),
        };
        s.set_nodelay(true).map_err(Error::Io)?;
        s.set_read_timeout(Some(self.timeout)).map_err(Error::Io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(Error::Io)?;
        let stream = match &self.tls {
            None => Stream::Plain(s),
            Some((config, name)) => {
                let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| Error::Config(format!("TLS: {e}")))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(conn, s)))
            }
        };
        Ok(BufReader::with_capacity(256 * 1024, stream))
    }

    /// Sends one request. An idle connection the server has closed is not
    /// used; one that fails before any answer is replaced once, for reads
    /// only (a write may have run: it is not sent twice).
    pub fn send(&self, req: &RestRequest<'_>) -> Result<RestResponse, Error> {
        check_headers(req)?;
        let target = format!("{}{}", self.base_path, req.path);
        let (raw_path, raw_query) = target.split_once('?').unwrap_or((&target, ""));
        let mut head = request_head(req, &self.host, &target);
        // Sign exactly the headers sent.
        let mut signed: Vec<(String, String)> = Vec::with_capacity(req.headers.len() + 3);
        for line in head.split("\r\n").skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                signed.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let sts = shared_key::string_to_sign(
            req.method,
            &self.account.name,
            raw_path,
            raw_query,
            &signed,
        );
        head.push_str(&format!(
            "Authorization: {}\r\n\r\n",
            shared_key::sign(&self.account, &sts)
        ));
        let pooled = loop {
            match self.idle.lock().ok().and_then(|mut v| v.pop()) {
                Some(c) if still_open(&c) => break Some(c),
                Some(_) => continue, // closed by the server while idle
                None => break None,
            }
        };
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let result = match self.exchange(&mut conn, &head, req) {
            Err(Error::Io(e)) if reused && idempotent(req.method) && closed_early(&e) => {
                conn = self.connect()?;
                self.exchange(&mut conn, &head, req)
            }
            r => r,
        };
        let (resp, keep) = result?;
        if keep {
            if let Ok(mut v) = self.idle.lock() {
                v.push(conn);
            }
        }
        Ok(resp)
    }

    fn exchange(
        &self,
        conn: &mut BufReader<Stream>,
        head: &str,
        req: &RestRequest<'_>,
    ) -> Result<(RestResponse, bool), Error> {
        let s = conn.get_mut();
        s.write_all(head.as_bytes()).map_err(Error::Io)?;
        s.write_all(req.body).map_err(Error::Io)?;
        s.flush().map_err(Error::Io)?;
        let mut raw = Vec::with_capacity(1024);
        loop {
            let n = conn.read_until(b'\n', &mut raw).map_err(Error::Io)?;
            if n == 0 {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            if raw.ends_with(b"\r\n\r\n") || raw == b"\r\n" {
                break;
            }
            if raw.len() > MAX_HEAD {
                return Err(Error::Protocol("response head too large".into()));
            }
        }
        let mut resp = parse_head(&raw)?;
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let keep = !resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let no_body = req.method == "HEAD" || resp.status == 204 || resp.status == 304;
        if no_body {
            return Ok((resp, keep));
        }
        if chunked {
            resp.body = read_chunked(conn)?;
            return Ok((resp, keep));
        }
        match resp.header("content-length") {
            Some(v) => {
                let len: usize = v
                    .parse()
                    .map_err(|_| Error::Protocol(format!("bad Content-Length '{v}'")))?;
                let mut body = vec![0u8; len];
                conn.read_exact(&mut body).map_err(Error::Io)?;
                resp.body = body;
                Ok((resp, keep))
            }
            None => {
                let mut body = Vec::new();
                conn.read_to_end(&mut body).map_err(Error::Io)?;
                resp.body = body;
                Ok((resp, false))
            }
        }
    }
}

/// The connection ended before any answer: the sign of a server that closed
/// it (not a timeout, which may mean the request is still running).
fn closed_early(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// The TLS client configuration: public roots and the caller's CAs.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
        let mut n = 0;
        for cert in certs {
            let cert =
                cert.map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
            n += 1;
        }
        if n == 0 {
            return Err(Error::Config(format!(
                "CA file {}: no certificates",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_chunked(conn: &mut BufReader<Stream>) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).map_err(Error::Io)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let n = usize::from_str_radix(size, 16)
            .map_err(|_| Error::Protocol(format!("bad chunk size '{}'", line.trim())))?;
        if n == 0 {
            // Trailers, then the blank line.
            loop {
                line.clear();
                conn.read_line(&mut line).map_err(Error::Io)?;
                if line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let at = body.len();
        body.resize(at + n, 0);
        conn.read_exact(&mut body[at..]).map_err(Error::Io)?;
        line.clear();
        conn.read_line(&mut line).map_err(Error::Io)?;
    }
}

impl Transport for HttpTransport {
    fn send(&self, req: &RestRequest<'_>, _expected_body: usize) -> Result<RestResponse, Error> {
        HttpTransport::send(self, req)
    }

    fn account(&self) -> &str {
        &self.account.name
    }

    fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.host, self.base_path)
    }
}
