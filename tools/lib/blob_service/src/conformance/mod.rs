// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The conformance request script and its runner.
//!
//! One script ([`script::script`]) of Blob REST requests, each with the behaviour a client depends
//! on (status, error code, headers, body, ETag changes). It runs through any [`Transport`]: the
//! HTTP door ([`HttpTransport`]), the VSC door ([`VscTransport`]), Azurite (HTTP), or the
//! simulator's guest-memory harness (implement [`Transport`] over it). The runner signs every
//! request with SharedKey, substitutes saved values (`{name}`) into paths and headers, checks
//! each step's expectations and records an [`Observation`] per step, which the differential test
//! compares across two servers with [`compare`].
//!
//! [`durability`] is the scenario a durable storage backend's tests run: acknowledged writes
//! through the VSC door ([`vsc_call`]) still there after the service restarts on the same store.

pub mod durability;
pub mod script;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use quick_xml::events::Event;

use crate::auth::{self, Account};
use crate::engine::BlobService;
use crate::vsc::VscOutcome;

/// A raw response as a transport saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of a header (lower-case name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Something that carries one request to a blob service and returns its response.
pub trait Transport {
    /// Sends a request head (complete, ending with the blank line) and body.
    fn exchange(&mut self, head: &[u8], body: &[u8], is_head: bool) -> Result<RawResponse, String>;
    /// Whether the far side verifies SharedKey (steps about authorization run only then).
    fn verifies_auth(&self) -> bool;
}

/// Parses a response head with `httparse`; returns it and its length.
fn parse_response_head(buf: &[u8]) -> Result<Option<(RawResponse, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut r = httparse::Response::new(&mut fields);
    match r.parse(buf).map_err(|e| e.to_string())? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(n) => Ok(Some((
            RawResponse {
                status: r.code.unwrap_or(0),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect(),
                body: Vec::new(),
            },
            n,
        ))),
    }
}

/// A keep-alive HTTP/1.1 client over one TCP connection (reconnects when the server closes).
#[derive(Debug)]
pub struct HttpTransport {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    auth: bool,
    spare: Vec<u8>,
}

impl HttpTransport {
    /// A client for `addr`; `verifies_auth` tells whether the server checks SharedKey.
    pub fn new(addr: SocketAddr, verifies_auth: bool) -> Self {
        Self {
            addr,
            conn: None,
            auth: verifies_auth,
            spare: Vec::new(),
        }
    }

    /// Gives a body buffer back for reuse by the next response (saves page faults when a
    /// benchmark reads large bodies repeatedly).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.spare = buf;
    }

    fn connect(&mut self) -> Result<&mut BufReader<TcpStream>, String> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(60)))
                .map_err(|e| e.to_string())?;
            self.conn = Some(BufReader::with_capacity(256 * 1024, s));
        }
        self.conn
            .as_mut()
            .ok_or_else(|| "no connection".to_string())
    }

    fn try_exchange(
        &mut self,
        head: &[u8],
        body: &[u8],
        is_head: bool,
    ) -> Result<RawResponse, String> {
        let mut spare = std::mem::take(&mut self.spare);
        let conn = self.connect()?;
        {
            let s = conn.get_mut();
            if head.len() + body.len() <= 64 * 1024 {
                let mut all = head.to_vec();
                all.extend_from_slice(body);
                s.write_all(&all).map_err(|e| e.to_string())?;
            } else {
                s.write_all(head).map_err(|e| e.to_string())?;
                // The server may answer early (e.g. an error before the body) and close.
                if let Err(e) = s.write_all(body) {
                    tracing::debug!("body write failed: {e}");
                }
            }
        }
        let mut acc = Vec::new();
        let (mut resp, _) = loop {
            let data = conn.fill_buf().map_err(|e| e.to_string())?;
            if data.is_empty() {
                return Err("connection closed before a response".into());
            }
            let before = acc.len();
            acc.extend_from_slice(data);
            let n = data.len();
            match parse_response_head(&acc)? {
                Some((r, hl)) => {
                    conn.consume(hl - before);
                    break (r, hl);
                }
                None => conn.consume(n),
            }
        };
        let no_body = is_head || resp.status == 304 || resp.status == 204 || resp.status < 200;
        if !no_body {
            if resp
                .header("transfer-encoding")
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
            {
                resp.body = read_chunked(conn)?;
            } else if let Some(cl) = resp.header("content-length") {
                let n: u64 = cl.parse().map_err(|_| "bad Content-Length".to_string())?;
                let mut b = std::mem::take(&mut spare);
                b.clear();
                b.reserve(usize::try_from(n).unwrap_or(0));
                (&mut *conn)
                    .take(n)
                    .read_to_end(&mut b)
                    .map_err(|e| e.to_string())?;
                if (b.len() as u64) != n {
                    return Err("connection closed inside the body".into());
                }
                resp.body = b;
            } else {
                let mut b = Vec::new();
                conn.read_to_end(&mut b).map_err(|e| e.to_string())?;
                resp.body = b;
                self.conn = None;
            }
        }
        if resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.conn = None;
        }
        if self.spare.is_empty() {
            self.spare = spare;
        }
        Ok(resp)
    }
}

fn read_chunked(conn: &mut BufReader<TcpStream>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).map_err(|e| e.to_string())?;
        let size_txt = line.trim().split(';').next().unwrap_or("");
        let size =
            usize::from_str_radix(size_txt, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
        if size == 0 {
            // Trailers until the blank line.
            loop {
                let mut t = String::new();
                conn.read_line(&mut t).map_err(|e| e.to_string())?;
                if t.trim().is_empty() {
                    return Ok(out);
                }
            }
        }
        let start = out.len();
        out.resize(start + size, 0);
        conn.read_exact(&mut out[start..])
            .map_err(|e| e.to_string())?;
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf).map_err(|e| e.to_string())?;
    }
}

impl Transport for HttpTransport {
    fn exchange(&mut self, head: &[u8], body: &[u8], is_head: bool) -> Result<RawResponse, String> {
        let reused = self.conn.is_some();
        match self.try_exchange(head, body, is_head) {
            Ok(r) => Ok(r),
            Err(e) if reused => {
                // A stale keep-alive connection: retry once on a fresh one.
                tracing::debug!("retrying on a fresh connection after: {e}");
                self.conn = None;
                self.try_exchange(head, body, is_head)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    fn verifies_auth(&self) -> bool {
        self.auth
    }
}

/// The VSC door, called in-process with fixed buffer capacities.
#[derive(Debug)]
pub struct VscTransport {
    /// The service.
    pub svc: BlobService,
    /// Response buffer size.
    pub response_capacity: usize,
    /// Data buffer size.
    pub data_capacity: usize,
    /// The last outcome (for tests that look at the raw exchange).
    pub last: Option<VscOutcome>,
}

impl VscTransport {
    /// A VSC transport with 64 KiB response and 64 MiB data buffers.
    pub fn new(svc: BlobService) -> Self {
        Self {
            svc,
            response_capacity: 64 * 1024,
            data_capacity: 64 << 20,
            last: None,
        }
    }
}

impl Transport for VscTransport {
    fn exchange(
        &mut self,
        head: &[u8],
        body: &[u8],
        _is_head: bool,
    ) -> Result<RawResponse, String> {
        let data_capacity = self.data_capacity.max(body.len());
        let out = self
            .svc
            .vsc_exchange(head, body, self.response_capacity, data_capacity);
        self.last = Some(out.clone());
        if out.status != 0 {
            return Err(format!("VSC status {:#010x}", out.status));
        }
        if out.response_len as usize != out.response.len() {
            return Err("response_len does not match the response".into());
        }
        let (mut r, n) = parse_response_head(&out.response)?
            .ok_or_else(|| "incomplete response head".to_string())?;
        if n != out.response.len() {
            return Err("bytes after the response head".into());
        }
        let cl: usize = r
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| "response without Content-Length".to_string())?;
        if !_is_head && cl != out.data.len() {
            return Err(format!(
                "Content-Length {cl} but {} data bytes",
                out.data.len()
            ));
        }
        r.body = out.data;
        Ok(r)
    }

    fn verifies_auth(&self) -> bool {
        self.svc.config().vsc_shared_key
    }
}

/// One unsigned request to `s` through the VSC door, with 1 MiB response and data buffers: `path`
/// below `/devstoreaccount1`, `extra` further header lines (each ending in CRLF). Returns the
/// status code (as text), the ETag (empty when there is none) and the data.
///
/// # Panics
///
/// When the door itself fails the exchange (a non-zero VSC status).
pub fn vsc_call(
    s: &BlobService,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> (String, String, Vec<u8>) {
    const BIG: usize = 1 << 20;
    let head = format!(
        "{method} /devstoreaccount1{path} HTTP/1.1\r\nx-ms-version: 2021-10-04\r\n{extra}\r\n"
    );
    let o = s.vsc_exchange(head.as_bytes(), body, BIG, BIG);
    assert_eq!(o.status, 0);
    let text = String::from_utf8_lossy(&o.response).into_owned();
    let status = text.get(9..12).unwrap_or("").to_string();
    let etag = text
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .unwrap_or("")
        .to_string();
    (status, etag, o.data)
}

/// How a step's request is authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// Signed with the account key.
    Signed,
    /// No Authorization header.
    Unsigned,
    /// Signed with a wrong key.
    WrongKey,
}

/// An ETag expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagCheck {
    /// Nothing.
    None,
    /// Save the ETag under a name.
    Save(&'static str),
    /// The ETag equals a saved one.
    Same(&'static str),
    /// The ETag differs from a saved one (and is saved under that name again).
    Changed(&'static str),
}

/// One request of the script and what a client depends on in its answer.
#[derive(Debug, Clone)]
pub struct Step {
    /// Short description.
    pub name: String,
    /// Method.
    pub method: String,
    /// Path below the account (`/container/blob?query`), may hold `{var}`.
    pub path: String,
    /// Extra header fields, values may hold `{var}`.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Send these bytes verbatim instead of building a request (malformed input).
    pub raw: Option<Vec<u8>>,
    /// Authorization.
    pub signing: Signing,
    /// Expected status.
    pub status: u16,
    /// Expected `x-ms-error-code`.
    pub code: Option<String>,
    /// Expected header values (lower-case names).
    pub expect_headers: Vec<(String, String)>,
    /// Expected body bytes.
    pub expect_body: Option<Vec<u8>>,
    /// Strings the body must contain, in order.
    pub body_contains: Vec<String>,
    /// ETag expectation.
    pub etag: EtagCheck,
    /// Save a response header under a name.
    pub save_header: Option<(String, &'static str)>,
    /// Save the text of an XML element of the body under a name.
    pub save_xml: Option<(String, &'static str)>,
    /// Wait this long before sending.
    pub sleep_ms: u64,
    /// Why Azurite is known to answer differently (not compared then).
    pub azurite_differs: Option<String>,
    /// Why Azurite answers the same status with another (or no) error code: only the status
    /// is compared.
    pub status_only: Option<String>,
    /// Why Azurite's ETag presence differs: ETag presence is not compared.
    pub etag_differs: Option<String>,
    /// Only meaningful when the transport verifies SharedKey.
    pub needs_auth: bool,
}

/// What the differential test compares between two servers for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Step name.
    pub step: String,
    /// Status.
    pub status: u16,
    /// `x-ms-error-code`.
    pub code: Option<String>,
    /// Whether an ETag came back.
    pub has_etag: bool,
    /// Selected headers (those that matter to clients).
    pub headers: BTreeMap<String, String>,
    /// The body, or for XML bodies the projection of the elements that matter.
    pub body: Vec<String>,
    /// Not compared (documented Azurite difference).
    pub skip_compare: Option<String>,
    /// Only the status is compared (documented Azurite difference).
    pub status_only: Option<String>,
    /// ETag presence is not compared (documented Azurite difference).
    pub etag_differs: Option<String>,
}

const COMPARED_HEADERS: &[&str] = &[
    "content-range",
    "x-ms-lease-state",
    "x-ms-lease-status",
    "x-ms-lease-duration",
    "x-ms-blob-type",
    "x-ms-blob-append-offset",
    "x-ms-blob-committed-block-count",
    "x-ms-blob-content-length",
    "content-md5",
    "x-ms-blob-content-md5",
    "x-ms-lease-time",
    "content-type",
];

/// XML elements whose text is compared (everything else, like times and ETags, is not).
const COMPARED_XML: &[&str] = &[
    "Code",
    "Name",
    "Size",
    "Start",
    "End",
    "Prefix",
    "Delimiter",
    "Content-Length",
    "BlobType",
    "LeaseState",
    "LeaseStatus",
    "Content-Type",
];

/// The projection of an XML body: `path=text` for compared elements and for metadata entries.
pub fn xml_projection(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    // Azurite lists every BlobPrefix before the blobs; Azure interleaves them in name order.
    // The projection keeps both orders but separately.
    let mut prefixes = Vec::new();
    let text = String::from_utf8_lossy(body);
    let mut r = quick_xml::Reader::from_str(&text);
    let mut stack: Vec<String> = Vec::new();
    let mut cur = String::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                stack.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                cur.clear();
            }
            Ok(Event::Text(t)) => {
                cur.push_str(&t.unescape().map(|c| c.into_owned()).unwrap_or_default());
            }
            Ok(Event::End(_)) => {
                let name = stack.pop().unwrap_or_default();
                let in_meta = stack.last().is_some_and(|p| p == "Metadata");
                let parent = stack.last().cloned().unwrap_or_default();
                let empty_prefix = name == "Prefix" && cur.trim().is_empty();
                if parent == "BlobPrefix" {
                    prefixes.push(format!("{parent}/{name}={}", cur.trim()));
                } else if (in_meta || COMPARED_XML.contains(&name.as_str())) && !empty_prefix {
                    out.push(format!("{parent}/{name}={}", cur.trim()));
                }
                if name == "NextMarker" {
                    out.push(format!("NextMarker present={}", !cur.trim().is_empty()));
                }
                cur.clear();
            }
            Ok(Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let parent = stack.last().cloned().unwrap_or_default();
                if COMPARED_XML.contains(&name.as_str())
                    && name != "Content-Type"
                    && name != "Prefix"
                {
                    out.push(format!("{parent}/{name}="));
                }
                if name == "NextMarker" {
                    out.push("NextMarker present=false".into());
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out.extend(prefixes);
    out
}

fn xml_text(body: &[u8], elem: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let mut r = quick_xml::Reader::from_str(&text);
    let mut inside = false;
    let mut v = String::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) if e.name().as_ref() == elem.as_bytes() => inside = true,
            Ok(Event::Text(t)) if inside => {
                v.push_str(&t.unescape().map(|c| c.into_owned()).unwrap_or_default());
            }
            Ok(Event::End(e)) if inside && e.name().as_ref() == elem.as_bytes() => return Some(v),
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Runs a script.
#[derive(Debug)]
pub struct Runner {
    /// Account the requests are signed for.
    pub account: Account,
    /// Values saved by earlier steps.
    pub vars: BTreeMap<String, String>,
    /// `x-ms-version` sent.
    pub version: String,
}

/// The result of a script run.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Requests sent.
    pub sent: usize,
    /// Steps skipped (authorization steps on a transport without SharedKey).
    pub skipped: usize,
    /// Expectation failures, one line each.
    pub failures: Vec<String>,
    /// One observation per step sent.
    pub observations: Vec<Observation>,
}

impl Runner {
    /// A runner for the development account.
    pub fn new() -> Self {
        Self {
            account: Account::dev(),
            vars: BTreeMap::new(),
            version: "2021-10-04".into(),
        }
    }

    fn subst(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (k, v) in &self.vars {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out
    }

    /// Builds the request head of a step (signed as the step says).
    pub fn build_head(&self, step: &Step) -> Vec<u8> {
        let path = format!("/{}{}", self.account.name, self.subst(&step.path));
        let (raw_path, raw_query) = path.split_once('?').unwrap_or((&path, ""));
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), "127.0.0.1".into()),
            ("x-ms-version".into(), self.version.clone()),
            (
                "x-ms-date".into(),
                httpdate::fmt_http_date(std::time::SystemTime::now()),
            ),
        ];
        for (n, v) in &step.headers {
            headers.push((n.to_ascii_lowercase(), self.subst(v)));
        }
        if !headers.iter().any(|(n, _)| n == "content-length") {
            headers.push(("content-length".into(), step.body.len().to_string()));
        }
        match step.signing {
            Signing::Unsigned => {}
            Signing::Signed | Signing::WrongKey => {
                let sts = auth::string_to_sign(
                    &step.method,
                    &self.account.name,
                    raw_path,
                    raw_query,
                    &headers,
                );
                let acct = if step.signing == Signing::WrongKey {
                    Account {
                        name: self.account.name.clone(),
                        key: b"not the key".to_vec(),
                    }
                } else {
                    self.account.clone()
                };
                headers.push(("authorization".into(), auth::sign(&acct, &sts)));
            }
        }
        let mut head = format!("{} {} HTTP/1.1\r\n", step.method, path);
        for (n, v) in &headers {
            head.push_str(n);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// Runs every step through `t`, checking expectations.
    pub fn run(&mut self, steps: &[Step], t: &mut dyn Transport) -> RunReport {
        let mut rep = RunReport::default();
        for (i, step) in steps.iter().enumerate() {
            if step.needs_auth && !t.verifies_auth() {
                rep.skipped += 1;
                continue;
            }
            if step.sleep_ms > 0 {
                std::thread::sleep(Duration::from_millis(step.sleep_ms));
            }
            let head = step.raw.clone().unwrap_or_else(|| self.build_head(step));
            let is_head = step.method == "HEAD";
            rep.sent += 1;
            let label = format!("step {i} ({})", step.name);
            let resp = match t.exchange(&head, &step.body, is_head) {
                Ok(r) => r,
                Err(e) => {
                    rep.failures.push(format!("{label}: transport error: {e}"));
                    rep.observations.push(Observation {
                        step: label,
                        status: 0,
                        code: Some(format!("transport error: {e}")),
                        has_etag: false,
                        headers: BTreeMap::new(),
                        body: Vec::new(),
                        skip_compare: step.azurite_differs.clone(),
                        status_only: step.status_only.clone(),
                        etag_differs: step.etag_differs.clone(),
                    });
                    continue;
                }
            };
            let mut fail = |m: String| rep.failures.push(format!("{label}: {m}"));
            if resp.status != step.status {
                fail(format!(
                    "status {} (code {:?}), expected {}",
                    resp.status,
                    resp.header("x-ms-error-code"),
                    step.status
                ));
            }
            if let Some(c) = &step.code {
                if resp.header("x-ms-error-code") != Some(c.as_str()) {
                    fail(format!(
                        "error code {:?}, expected {c}",
                        resp.header("x-ms-error-code")
                    ));
                }
            }
            for (n, v) in &step.expect_headers {
                let want = self.subst(v);
                if resp.header(n) != Some(want.as_str()) {
                    fail(format!(
                        "header {n} = {:?}, expected {want:?}",
                        resp.header(n)
                    ));
                }
            }
            if let Some(b) = &step.expect_body {
                if &resp.body != b {
                    fail(format!(
                        "body {:?}, expected {:?}",
                        String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]),
                        String::from_utf8_lossy(&b[..b.len().min(200)])
                    ));
                }
            }
            let text = String::from_utf8_lossy(&resp.body).into_owned();
            let mut pos = 0;
            for want in &step.body_contains {
                let want = self.subst(want);
                match text[pos..].find(&want) {
                    Some(k) => pos += k + want.len(),
                    None => fail(format!("body lacks {want:?} (in order); body: {text}")),
                }
            }
            let etag = resp.header("etag").map(str::to_string);
            match &step.etag {
                EtagCheck::None => {}
                EtagCheck::Save(n) => match &etag {
                    Some(e) => {
                        self.vars.insert((*n).to_string(), e.clone());
                    }
                    None => fail("no ETag to save".into()),
                },
                EtagCheck::Same(n) => {
                    if etag.as_ref() != self.vars.get(*n) {
                        fail(format!("ETag {etag:?} differs from saved {n}"));
                    }
                }
                EtagCheck::Changed(n) => {
                    if etag.is_none() || etag.as_ref() == self.vars.get(*n) {
                        fail(format!("ETag {etag:?} did not change from {n}"));
                    }
                    if let Some(e) = &etag {
                        self.vars.insert((*n).to_string(), e.clone());
                    }
                }
            }
            if let Some((h, n)) = &step.save_header {
                match resp.header(h) {
                    Some(v) => {
                        self.vars.insert((*n).to_string(), v.to_string());
                    }
                    None => fail(format!("no {h} header to save")),
                }
            }
            if let Some((el, n)) = &step.save_xml {
                match xml_text(&resp.body, el) {
                    Some(v) => {
                        let enc: String = percent_encoding::utf8_percent_encode(
                            &v,
                            percent_encoding::NON_ALPHANUMERIC,
                        )
                        .to_string();
                        self.vars.insert((*n).to_string(), enc);
                    }
                    None => fail(format!("no <{el}> to save")),
                }
            }
            let is_xml = resp
                .header("content-type")
                .is_some_and(|c| c.contains("xml"));
            let ok_body = matches!(resp.status, 200 | 206);
            let mut headers = BTreeMap::new();
            for h in COMPARED_HEADERS {
                if let Some(v) = resp.header(h) {
                    // Azure answers Content-Type with or without a charset.
                    let v = if *h == "content-type" {
                        v.split(';').next().unwrap_or("").trim().to_string()
                    } else {
                        v.to_string()
                    };
                    if *h == "content-type" && !ok_body {
                        continue;
                    }
                    headers.insert((*h).to_string(), v);
                }
            }
            for (n, v) in &resp.headers {
                if n.starts_with("x-ms-meta-") {
                    headers.insert(n.clone(), v.clone());
                }
            }
            if ok_body && !is_head && !is_xml {
                if let Some(v) = resp.header("content-length") {
                    headers.insert("content-length".into(), v.to_string());
                }
            }
            let body = if is_xml {
                xml_projection(&resp.body)
            } else if ok_body {
                vec![format!(
                    "{} bytes md5={:x}",
                    resp.body.len(),
                    md5::Md5::digest(&resp.body)
                )]
            } else {
                Vec::new()
            };
            rep.observations.push(Observation {
                step: label,
                status: resp.status,
                code: resp.header("x-ms-error-code").map(str::to_string),
                has_etag: etag.is_some(),
                headers,
                body,
                skip_compare: step.azurite_differs.clone(),
                status_only: step.status_only.clone(),
                etag_differs: step.etag_differs.clone(),
            });
        }
        rep
    }
}

impl Default for Runner {
    fn default() -> Self {
        Self::new()
    }
}

use md5::Digest as _;

/// Headers compared only when both sides send them, with the documented reason.
pub const ONE_SIDED_HEADERS: &[(&str, &str)] = &[
    (
        "content-md5",
        "Azurite computes a whole-blob MD5 for blobs assembled by Put Block List or Append \
         Block (Azure does not), and sends no Content-MD5 for Put Page and Append Block",
    ),
    (
        "x-ms-blob-content-md5",
        "Azurite also sends it on whole-blob reads; Azure only on range reads",
    ),
];

fn comparable(
    mine: &BTreeMap<String, String>,
    other: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    mine.iter()
        .filter(|(k, _)| {
            !ONE_SIDED_HEADERS.iter().any(|(h, _)| h == k) || other.contains_key(k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Compares two runs step by step; returns one line per difference.
pub fn compare(ours: &[Observation], theirs: &[Observation]) -> Vec<String> {
    let mut diffs = Vec::new();
    if ours.len() != theirs.len() {
        diffs.push(format!(
            "different number of observations: {} vs {}",
            ours.len(),
            theirs.len()
        ));
    }
    for (a, b) in ours.iter().zip(theirs) {
        if a.skip_compare.is_some() {
            continue;
        }
        if a.status != b.status {
            diffs.push(format!(
                "{}: status {} vs azurite {}",
                a.step, a.status, b.status
            ));
            continue;
        }
        if a.status_only.is_some() {
            continue;
        }
        if a.code != b.code {
            diffs.push(format!(
                "{}: code {:?} vs azurite {:?}",
                a.step, a.code, b.code
            ));
        }
        if a.has_etag != b.has_etag && a.etag_differs.is_none() {
            diffs.push(format!(
                "{}: ETag present {} vs azurite {}",
                a.step, a.has_etag, b.has_etag
            ));
        }
        let (ha, hb) = (
            comparable(&a.headers, &b.headers),
            comparable(&b.headers, &a.headers),
        );
        if ha != hb {
            diffs.push(format!("{}: headers {:?} vs azurite {:?}", a.step, ha, hb));
        }
        if a.body != b.body {
            diffs.push(format!(
                "{}: body {:?} vs azurite {:?}",
                a.step, a.body, b.body
            ));
        }
    }
    diffs
}
