// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The blob service engine: request routing, Azure Blob semantics, and the common response
//! headers. Both doors call [`BlobService::handle`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5::{Digest, Md5};

use crate::auth::{self, Account};
use crate::error::{ErrorCode, SResult, ServiceError};
use crate::http::{Body, Request, RequestHead, Response};
use crate::lease::{self, LeaseAction};
use crate::storage::{
    BlobRecord, BlobState, BlobType, ContainerRecord, ContentProps, ExtentId, Layout, Piece,
    StagedBlock, Storage,
};
use crate::xml::{self, BlockSource};

const MIB: u64 = 1024 * 1024;
/// Largest single-shot Put Blob body (5000 MiB).
pub const MAX_PUT_BLOB: u64 = 5000 * MIB;
/// Largest Put Block body (4000 MiB).
pub const MAX_BLOCK: u64 = 4000 * MIB;
/// Largest Append Block body (100 MiB).
pub const MAX_APPEND_BLOCK: u64 = 100 * MIB;
/// Largest Put Page body (4 MiB).
pub const MAX_PAGE_WRITE: u64 = 4 * MIB;
/// Largest Put Block List body this service reads (bounded in memory).
pub const MAX_BLOCK_LIST_BODY: u64 = 16 * MIB;
pub use hv_azure_blob_proto::blob_limits::MAX_COMMITTED_BLOCKS;
/// Most uncommitted blocks per blob.
pub const MAX_UNCOMMITTED_BLOCKS: usize = 100_000;
/// Default and largest `maxresults`.
pub const MAX_LIST_RESULTS: usize = 5000;
/// The `x-ms-version` answered when the request names none.
pub const DEFAULT_VERSION: &str = "2025-11-05";
/// Largest total size of metadata names and values (8 KiB).
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// How far a signed request's date may be from the service's clock.
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Size of the chunks bodies are streamed in.
pub const CHUNK: usize = 1024 * 1024;

/// Which door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// Plain HTTP over TCP.
    Http,
    /// The VMBus VSC door.
    Vsc,
}

/// Service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Accounts served (default: the Azurite development account).
    pub accounts: Vec<Account>,
    /// Verify SharedKey on the HTTP door.
    pub http_shared_key: bool,
    /// Verify SharedKey on the VSC door (set when a key is configured for it).
    pub vsc_shared_key: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            accounts: vec![Account::dev()],
            http_shared_key: true,
            vsc_shared_key: false,
        }
    }
}

#[derive(Debug, Default)]
struct PinTable {
    count: HashMap<ExtentId, usize>,
    doomed: HashSet<ExtentId>,
}

#[derive(Debug)]
struct Inner {
    storage: Arc<dyn Storage>,
    config: Config,
    meta: Mutex<()>,
    pins: Mutex<PinTable>,
    etag_seq: AtomicU64,
}

/// The blob service. Cheap to clone; all clones share one store.
#[derive(Debug, Clone)]
pub struct BlobService {
    inner: Arc<Inner>,
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

fn err(code: ErrorCode) -> ServiceError {
    ServiceError::new(code)
}

fn bad_header(name: &str) -> ServiceError {
    ServiceError::with_detail(ErrorCode::InvalidHeaderValue, name)
}

fn bad_query(name: &str) -> ServiceError {
    ServiceError::with_detail(ErrorCode::InvalidQueryParameterValue, name)
}

fn storage_io(e: crate::storage::StorageError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// One request being served.
struct Ctx<'a> {
    head: &'a RequestHead,
    query: Vec<(String, String)>,
    body_len: Option<u64>,
    body: &'a mut dyn Read,
    account: String,
    container: String,
    blob: String,
    now: SystemTime,
}

impl Ctx<'_> {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn h(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    fn lease_id(&self) -> Option<&str> {
        self.h("x-ms-lease-id")
    }

    /// Content-Length of a body-carrying request (411 without it).
    fn need_len(&self) -> SResult<u64> {
        self.body_len
            .ok_or_else(|| err(ErrorCode::MissingContentLengthHeader))
    }

    fn metadata(&self) -> SResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (i, (n, v)) in self.head.headers.iter().enumerate() {
            if n.starts_with("x-ms-meta-") {
                let original = self.head.original_names.get(i).unwrap_or(n);
                let key = original.get("x-ms-meta-".len()..).unwrap_or("");
                let mut chars = key.chars();
                let ok = chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err(ServiceError::with_detail(ErrorCode::InvalidMetadata, key));
                }
                out.push((key.to_string(), v.clone()));
            }
        }
        let size: usize = out.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_METADATA_BYTES {
            return Err(err(ErrorCode::MetadataTooLarge));
        }
        Ok(out)
    }

    /// Reads the whole body (bounded by `max`) into memory.
    fn read_small_body(&mut self, max: u64) -> SResult<Vec<u8>> {
        let len = self.body_len.unwrap_or(0);
        if len > max {
            return Err(err(ErrorCode::RequestBodyTooLarge));
        }
        let mut buf =
            vec![0u8; usize::try_from(len).map_err(|_| err(ErrorCode::RequestBodyTooLarge))?];
        self.body
            .read_exact(&mut buf)
            .map_err(|_| err(ErrorCode::InvalidContentLength))?;
        Ok(buf)
    }

    fn content_md5(&self) -> SResult<Option<[u8; 16]>> {
        md5_header(self.h("content-md5"), "Content-MD5")
    }
}

fn md5_header(v: Option<&str>, name: &str) -> SResult<Option<[u8; 16]>> {
    match v {
        None => Ok(None),
        Some(v) => B64
            .decode(v)
            .ok()
            .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
            .map(Some)
            .ok_or_else(|| bad_header(name)),
    }
}

/// Reads until `buf` is full or the body ends; returns the bytes read.
fn read_full(body: &mut dyn Read, buf: &mut [u8]) -> SResult<usize> {
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(err(ErrorCode::InvalidContentLength)),
        }
    }
    Ok(n)
}

/// A parsed byte range `start..=end` (`end` open when `None`).
fn parse_range(v: &str) -> Option<(u64, Option<u64>)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (s, e) = spec.split_once('-')?;
    let s: u64 = s.trim().parse().ok()?;
    let e = e.trim();
    if e.is_empty() {
        return Some((s, None));
    }
    let e: u64 = e.parse().ok()?;
    if e < s {
        return None;
    }
    Some((s, Some(e)))
}

/// Either range header of a request, `x-ms-range` first.
fn range_header(head: &RequestHead) -> Option<(&'static str, &str)> {
    head.header("x-ms-range")
        .map(|v| ("x-ms-range", v))
        .or_else(|| head.header("range").map(|v| ("Range", v)))
}

fn etag_matches(list: &str, etag: &str) -> bool {
    let strip = |s: &str| {
        s.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    let want = strip(etag);
    list.split(',').any(|c| c.trim() == "*" || strip(c) == want)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Evaluates If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since against a
/// resource (`None` when it does not exist).
fn check_conditions(
    head: &RequestHead,
    res: Option<(&str, SystemTime)>,
    access: Access,
) -> SResult<()> {
    let failed_read = || {
        if access == Access::Read {
            err(ErrorCode::NotModified)
        } else {
            err(ErrorCode::ConditionNotMet)
        }
    };
    if let Some(m) = head.header("if-match") {
        match res {
            Some((etag, _)) if etag_matches(m, etag) => {}
            _ => return Err(err(ErrorCode::ConditionNotMet)),
        }
    }
    if let (Some(d), Some((_, lm))) = (head.header("if-unmodified-since"), res) {
        if let Ok(d) = httpdate::parse_http_date(d) {
            if secs(lm) > secs(d) {
                return Err(err(ErrorCode::ConditionNotMet));
            }
        }
    }
    if let (Some(m), Some((etag, _))) = (head.header("if-none-match"), res) {
        if etag_matches(m, etag) {
            return Err(failed_read());
        }
    }
    if let (Some(d), Some((_, lm))) = (head.header("if-modified-since"), res) {
        if let Ok(d) = httpdate::parse_http_date(d) {
            if secs(lm) <= secs(d) {
                return Err(failed_read());
            }
        }
    }
    Ok(())
}

fn valid_container_name(n: &str) -> bool {
    let b = n.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !n.contains("--")
}

fn content_props(head: &RequestHead, fallback_plain: bool) -> SResult<ContentProps> {
    let pick = |x: &str, plain: &str| {
        head.header(x)
            .or_else(|| {
                if fallback_plain {
                    head.header(plain)
                } else {
                    None
                }
            })
            .map(str::to_string)
    };
    Ok(ContentProps {
        content_type: pick("x-ms-blob-content-type", "content-type"),
        content_encoding: pick("x-ms-blob-content-encoding", "content-encoding"),
        content_language: pick("x-ms-blob-content-language", "content-language"),
        content_disposition: pick("x-ms-blob-content-disposition", "content-disposition"),
        cache_control: pick("x-ms-blob-cache-control", "cache-control"),
        content_md5: md5_header(
            head.header("x-ms-blob-content-md5"),
            "x-ms-blob-content-md5",
        )?,
    })
}

/// Streams a request body into a blob (response side): a reader over extent runs that keeps
/// the extents pinned until dropped.
struct BlobReader {
    svc: BlobService,
    runs: VecDeque<(ExtentId, u64, u64)>,
    pinned: Vec<ExtentId>,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((ext, off, len)) = self.runs.front_mut() else {
            return Ok(0);
        };
        let n = buf.len().min(usize::try_from(*len).unwrap_or(usize::MAX));
        self.svc
            .inner
            .storage
            .read_extent(*ext, *off, &mut buf[..n])
            .map_err(storage_io)?;
        *off += n as u64;
        *len -= n as u64;
        if *len == 0 {
            self.runs.pop_front();
        }
        Ok(n)
    }
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        let pinned = std::mem::take(&mut self.pinned);
        self.svc.unpin(&pinned);
    }
}

/// Extent runs (extent, offset, length) covering `start..end` of a blob.
fn runs_of(state: &BlobState, start: u64, end: u64) -> VecDeque<(ExtentId, u64, u64)> {
    let mut out = VecDeque::new();
    match &state.layout {
        Layout::Page { extent, .. } => {
            if end > start {
                out.push_back((*extent, start, end - start));
            }
        }
        Layout::Block(pieces) | Layout::Append(pieces) => {
            let mut pos = 0u64;
            for p in pieces {
                let (ps, pe) = (pos, pos + p.len);
                pos = pe;
                let s = ps.max(start);
                let e = pe.min(end);
                if s < e {
                    out.push_back((p.extent, s - ps, e - s));
                }
            }
        }
    }
    out
}

impl BlobService {
    /// A service over a storage backend.
    pub fn new(storage: Arc<dyn Storage>, config: Config) -> Self {
        let base = now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() / 100)
            .unwrap_or(0);
        Self {
            inner: Arc::new(Inner {
                storage,
                config,
                meta: Mutex::new(()),
                pins: Mutex::new(PinTable::default()),
                etag_seq: AtomicU64::new(u64::try_from(base).unwrap_or(0)),
            }),
        }
    }

    /// A service over a fresh in-memory store with the default configuration.
    pub fn in_memory() -> Self {
        Self::new(
            Arc::new(crate::storage::MemoryStorage::new()),
            Config::default(),
        )
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn storage(&self) -> &dyn Storage {
        self.inner.storage.as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded value is (); a poisoned lock carries no broken state.
        self.inner
            .meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn new_etag(&self) -> String {
        let v = self.inner.etag_seq.fetch_add(1, Ordering::Relaxed) + 1;
        format!("\"0x{v:X}\"")
    }

    fn pin(&self, extents: &[ExtentId]) {
        let mut t = self
            .inner
            .pins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for e in extents {
            *t.count.entry(*e).or_insert(0) += 1;
        }
    }

    fn unpin(&self, extents: &[ExtentId]) {
        let mut to_delete = Vec::new();
        {
            let mut t = self
                .inner
                .pins
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for e in extents {
                if let Some(c) = t.count.get_mut(e) {
                    *c -= 1;
                    if *c == 0 {
                        t.count.remove(e);
                        if t.doomed.remove(e) {
                            to_delete.push(*e);
                        }
                    }
                }
            }
        }
        for e in to_delete {
            self.delete_extent_now(e);
        }
    }

    fn delete_extent_now(&self, e: ExtentId) {
        if let Err(x) = self.storage().delete_extent(e) {
            tracing::warn!("could not delete extent {e}: {x}");
        }
    }

    /// Deletes extents no record references any more (deferred while a reader has them pinned).
    fn release(&self, extents: impl IntoIterator<Item = ExtentId>) {
        let mut now_delete = Vec::new();
        {
            let mut t = self
                .inner
                .pins
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for e in extents {
                if t.count.contains_key(&e) {
                    t.doomed.insert(e);
                } else {
                    now_delete.push(e);
                }
            }
        }
        for e in now_delete {
            self.delete_extent_now(e);
        }
    }

    /// Extents referenced by `old` but not by `new`.
    fn garbage(old: &BlobRecord, new: &BlobRecord) -> Vec<ExtentId> {
        let keep: HashSet<ExtentId> = new.extents().into_iter().collect();
        let mut seen = HashSet::new();
        old.extents()
            .into_iter()
            .filter(|e| !keep.contains(e) && seen.insert(*e))
            .collect()
    }

    /// Serves one request. Never fails: errors become Azure-style error responses.
    pub fn handle(&self, req: Request<'_>, door: Door) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let is_head = req.head.method == "HEAD";
        let version = req
            .head
            .header("x-ms-version")
            .unwrap_or(DEFAULT_VERSION)
            .to_string();
        let client_id = req
            .head
            .header("x-ms-client-request-id")
            .map(str::to_string);
        let mut resp = match self.dispatch(req, door) {
            Ok(r) => r,
            Err(e) => error_response(&e, &request_id, is_head),
        };
        if resp.get_header("content-length").is_none() {
            let len = resp.body.len();
            resp.header("Content-Length", len.to_string());
        }
        resp.header("Server", "azure-blob-service/0.1");
        resp.header("x-ms-request-id", request_id);
        resp.header("x-ms-version", version);
        if let Some(c) = client_id {
            resp.header("x-ms-client-request-id", c);
        }
        resp.header("Date", http_date(now()));
        resp
    }

    fn authorize(&self, head: &RequestHead, account: &Account) -> SResult<()> {
        let failed = |d: &str| ServiceError::with_detail(ErrorCode::AuthenticationFailed, d);
        let Some(authz) = head.header("authorization") else {
            return Err(failed("no Authorization header"));
        };
        let sts = auth::string_to_sign(
            &head.method,
            &account.name,
            &head.raw_path,
            &head.raw_query,
            &head.headers,
        );
        if !auth::verify(account, authz, &sts) {
            return Err(failed("signature mismatch"));
        }
        // A signed request carries its date; one outside the window is refused (replays).
        let date = head
            .header("x-ms-date")
            .or_else(|| head.header("date"))
            .ok_or_else(|| failed("no x-ms-date or Date header"))?;
        let date = httpdate::parse_http_date(date).map_err(|_| failed("unreadable date"))?;
        let skew = match now().duration_since(date) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        if skew > MAX_CLOCK_SKEW {
            return Err(failed("request date outside the 15 minute window"));
        }
        Ok(())
    }

    fn dispatch(&self, req: Request<'_>, door: Door) -> SResult<Response> {
        let head = &req.head;
        let path = head.raw_path.trim_start_matches('/');
        let (acct_raw, rest) = path.split_once('/').unwrap_or((path, ""));
        let account_name = crate::http::pct_decode(acct_raw);
        let (cont_raw, blob_raw) = rest.split_once('/').unwrap_or((rest, ""));
        let account = self
            .inner
            .config
            .accounts
            .iter()
            .find(|a| a.name == account_name)
            .ok_or_else(|| ServiceError::with_detail(ErrorCode::InvalidUri, "unknown account"))?;
        let verify = match door {
            Door::Http => self.inner.config.http_shared_key,
            Door::Vsc => self.inner.config.vsc_shared_key,
        };
        if verify {
            self.authorize(head, account)?;
        }
        let mut ctx = Ctx {
            head,
            query: head.query(),
            body_len: req.body_len,
            body: req.body,
            account: account.name.clone(),
            container: crate::http::pct_decode(cont_raw),
            blob: crate::http::pct_decode(blob_raw),
            now: now(),
        };
        let method = head.method.as_str();
        let comp = ctx.q("comp").map(str::to_ascii_lowercase);
        let restype = ctx.q("restype").map(str::to_ascii_lowercase);
        if ctx.container.is_empty() {
            return match (method, comp.as_deref()) {
                ("GET", Some("list")) => self.list_containers(&ctx),
                ("GET" | "HEAD" | "PUT" | "DELETE", _) => Err(ServiceError::with_detail(
                    ErrorCode::NotImplemented,
                    "account-level operation",
                )),
                _ => Err(err(ErrorCode::UnsupportedHttpVerb)),
            };
        }
        if ctx.blob.is_empty() {
            if restype.as_deref() != Some("container") {
                return Err(ServiceError::with_detail(
                    ErrorCode::InvalidQueryParameterValue,
                    "restype=container is required on a container URL",
                ));
            }
            return match (method, comp.as_deref()) {
                ("PUT", None) => self.create_container(&ctx),
                ("DELETE", None) => self.delete_container(&ctx),
                ("GET" | "HEAD", None) => self.container_properties(&ctx, false),
                ("GET" | "HEAD", Some("metadata")) => self.container_properties(&ctx, true),
                ("PUT", Some("metadata")) => self.set_container_metadata(&ctx),
                ("GET", Some("list")) => self.list_blobs(&ctx),
                (_, Some("acl" | "lease")) => Err(ServiceError::with_detail(
                    ErrorCode::NotImplemented,
                    "container ACLs and leases",
                )),
                (_, Some(_)) => Err(bad_query("comp")),
                _ => Err(err(ErrorCode::UnsupportedHttpVerb)),
            };
        }
        if ctx.blob.chars().count() > 1024 {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidResourceName,
                "blob name longer than 1024 characters",
            ));
        }
        match (method, comp.as_deref()) {
            ("PUT", None) => self.put_blob(&mut ctx),
            ("PUT", Some("block")) => self.put_block(&mut ctx),
            ("PUT", Some("blocklist")) => self.put_block_list(&mut ctx),
            ("PUT", Some("properties")) => self.set_blob_properties(&ctx),
            ("PUT", Some("metadata")) => self.set_blob_metadata(&ctx),
            ("PUT", Some("lease")) => self.lease_blob(&ctx),
            ("PUT", Some("page")) => self.put_page(&mut ctx),
            ("PUT", Some("appendblock")) => self.append_block(&mut ctx),
            ("GET", None) => self.get_blob(&ctx, false),
            ("HEAD", None) => self.get_blob(&ctx, true),
            ("GET" | "HEAD", Some("metadata")) => self.get_blob_metadata(&ctx),
            ("GET", Some("blocklist")) => self.get_block_list(&ctx),
            ("GET", Some("pagelist")) => self.get_page_ranges(&ctx),
            ("DELETE", None) => self.delete_blob(&ctx),
            (_, Some(_)) => Err(bad_query("comp")),
            _ => Err(err(ErrorCode::UnsupportedHttpVerb)),
        }
    }

    fn endpoint(&self, ctx: &Ctx<'_>) -> String {
        let host = ctx.h("host").unwrap_or("127.0.0.1");
        format!("http://{host}/{}/", ctx.account)
    }

    fn need_container(&self, name: &str) -> SResult<ContainerRecord> {
        self.storage()
            .get_container(name)?
            .ok_or_else(|| err(ErrorCode::ContainerNotFound))
    }

    // ----- containers -------------------------------------------------------------------

    fn create_container(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        if !(3..=63).contains(&ctx.container.len()) {
            return Err(ServiceError::with_detail(
                ErrorCode::OutOfRangeInput,
                "container names have 3 to 63 characters",
            ));
        }
        if !valid_container_name(&ctx.container) {
            return Err(err(ErrorCode::InvalidResourceName));
        }
        let metadata = ctx.metadata()?;
        if let Some(v) = ctx.h("x-ms-blob-public-access") {
            if !matches!(v, "container" | "blob") {
                return Err(bad_header("x-ms-blob-public-access"));
            }
        }
        let _g = self.lock();
        if self.storage().get_container(&ctx.container)?.is_some() {
            return Err(err(ErrorCode::ContainerAlreadyExists));
        }
        let rec = ContainerRecord {
            metadata,
            etag: self.new_etag(),
            last_modified: ctx.now,
        };
        self.storage().put_container(&ctx.container, &rec)?;
        let mut r = Response::new(201);
        r.header("ETag", rec.etag.clone());
        r.header("Last-Modified", http_date(rec.last_modified));
        Ok(r)
    }

    fn delete_container(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        if ctx.h("if-match").is_some() || ctx.h("if-none-match").is_some() {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidHeaderValue,
                "ETag conditions are not supported on containers",
            ));
        }
        let extents;
        {
            let _g = self.lock();
            let rec = self.need_container(&ctx.container)?;
            check_conditions(
                ctx.head,
                Some((&rec.etag, rec.last_modified)),
                Access::Write,
            )?;
            let mut all = Vec::new();
            let mut start = String::new();
            loop {
                let batch = self.storage().list_blobs(&ctx.container, &start, 1000)?;
                let Some((last, _)) = batch.last() else { break };
                start = format!("{last}\0");
                for (_, b) in &batch {
                    all.extend(b.extents());
                }
                if batch.len() < 1000 {
                    break;
                }
            }
            self.storage().delete_container(&ctx.container)?;
            extents = all;
        }
        self.release(extents.into_iter().collect::<HashSet<_>>());
        Ok(Response::new(202))
    }

    fn container_properties(&self, ctx: &Ctx<'_>, meta_only: bool) -> SResult<Response> {
        let rec = self.need_container(&ctx.container)?;
        let mut r = Response::new(200);
        r.header("ETag", rec.etag.clone());
        r.header("Last-Modified", http_date(rec.last_modified));
        for (k, v) in &rec.metadata {
            r.header(&format!("x-ms-meta-{k}"), v.clone());
        }
        if !meta_only {
            r.header("x-ms-lease-state", "available");
            r.header("x-ms-lease-status", "unlocked");
            r.header("x-ms-has-immutability-policy", "false");
            r.header("x-ms-has-legal-hold", "false");
        }
        Ok(r)
    }

    fn set_container_metadata(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        let metadata = ctx.metadata()?;
        let _g = self.lock();
        let mut rec = self.need_container(&ctx.container)?;
        if ctx.h("if-unmodified-since").is_some()
            || ctx.h("if-match").is_some()
            || ctx.h("if-none-match").is_some()
        {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidHeaderValue,
                "only If-Modified-Since applies to Set Container Metadata",
            ));
        }
        check_conditions(
            ctx.head,
            Some((&rec.etag, rec.last_modified)),
            Access::Write,
        )?;
        rec.metadata = metadata;
        rec.etag = self.new_etag();
        rec.last_modified = ctx.now;
        self.storage().put_container(&ctx.container, &rec)?;
        let mut r = Response::new(200);
        r.header("ETag", rec.etag.clone());
        r.header("Last-Modified", http_date(rec.last_modified));
        Ok(r)
    }

    fn list_params(&self, ctx: &Ctx<'_>) -> SResult<(String, String, usize, bool)> {
        let prefix = ctx.q("prefix").unwrap_or("").to_string();
        let marker = ctx.q("marker").unwrap_or("").to_string();
        let max = match ctx.q("maxresults") {
            None => MAX_LIST_RESULTS,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 1 => {
                    usize::try_from(n.min(MAX_LIST_RESULTS as i64)).unwrap_or(MAX_LIST_RESULTS)
                }
                Ok(_) => {
                    return Err(ServiceError::with_detail(
                        ErrorCode::OutOfRangeQueryParameterValue,
                        "maxresults",
                    ))
                }
                Err(_) => return Err(bad_query("maxresults")),
            },
        };
        let mut with_meta = false;
        if let Some(inc) = ctx.q("include") {
            for i in inc.split(',').filter(|s| !s.is_empty()) {
                match i {
                    "metadata" => with_meta = true,
                    // Nothing here has snapshots, copies, soft-deleted data, versions, tags or
                    // policies, so these add nothing to a listing.
                    "snapshots"
                    | "copy"
                    | "deleted"
                    | "tags"
                    | "versions"
                    | "immutabilitypolicy"
                    | "legalhold"
                    | "deletedwithversions" => {}
                    "uncommittedblobs" => {
                        return Err(ServiceError::with_detail(
                            ErrorCode::NotImplemented,
                            "include=uncommittedblobs",
                        ))
                    }
                    _ => return Err(bad_query("include")),
                }
            }
        }
        Ok((prefix, marker, max, with_meta))
    }

    fn list_containers(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        let (prefix, marker, max, with_meta) = self.list_params(ctx)?;
        let start = if marker.as_str() > prefix.as_str() {
            marker.clone()
        } else {
            prefix.clone()
        };
        let mut items = Vec::new();
        let mut next = None;
        let batch = self.storage().list_containers(&start, max + 1)?;
        for (name, rec) in batch {
            if !name.starts_with(&prefix) {
                break;
            }
            if items.len() == max {
                next = Some(name);
                break;
            }
            items.push((name, rec));
        }
        let mut x = String::with_capacity(256 + items.len() * 256);
        x.push_str(xml::DECL);
        x.push_str(&format!(
            "<EnumerationResults ServiceEndpoint=\"{}\">",
            xml::esc(&self.endpoint(ctx))
        ));
        if ctx.q("prefix").is_some() {
            xml::elem(&mut x, "Prefix", &prefix);
        }
        if ctx.q("marker").is_some() {
            xml::elem(&mut x, "Marker", &marker);
        }
        if ctx.q("maxresults").is_some() {
            xml::elem(&mut x, "MaxResults", &max.to_string());
        }
        x.push_str("<Containers>");
        for (name, rec) in &items {
            x.push_str("<Container>");
            xml::elem(&mut x, "Name", name);
            x.push_str("<Properties>");
            xml::elem(&mut x, "Last-Modified", &http_date(rec.last_modified));
            xml::elem(&mut x, "Etag", &rec.etag);
            xml::elem(&mut x, "LeaseStatus", "unlocked");
            xml::elem(&mut x, "LeaseState", "available");
            xml::elem(&mut x, "HasImmutabilityPolicy", "false");
            xml::elem(&mut x, "HasLegalHold", "false");
            x.push_str("</Properties>");
            if with_meta {
                x.push_str("<Metadata>");
                for (k, v) in &rec.metadata {
                    xml::elem(&mut x, k, v);
                }
                x.push_str("</Metadata>");
            }
            x.push_str("</Container>");
        }
        x.push_str("</Containers>");
        xml::opt_elem(&mut x, "NextMarker", next.as_deref());
        x.push_str("</EnumerationResults>");
        Ok(xml_response(200, x))
    }

    fn list_blobs(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        let (prefix, marker, max, with_meta) = self.list_params(ctx)?;
        let delimiter = ctx
            .q("delimiter")
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        self.need_container(&ctx.container)?;
        let now = ctx.now;
        enum Item {
            Blob(String, Box<BlobState>),
            Prefix(String),
        }
        let mut items: Vec<Item> = Vec::new();
        let mut next: Option<String> = None;
        let mut start = if marker.as_str() > prefix.as_str() {
            marker.clone()
        } else {
            prefix.clone()
        };
        let mut last_prefix: Option<String> = None;
        'outer: loop {
            let batch = self.storage().list_blobs(&ctx.container, &start, 1000)?;
            let full = batch.len() == 1000;
            let Some((last, _)) = batch.last() else { break };
            let resume = format!("{last}\0");
            for (name, rec) in batch {
                if !name.starts_with(&prefix) {
                    break 'outer;
                }
                let Some(state) = rec.committed else { continue };
                let rolled = delimiter.as_ref().and_then(|d| {
                    name[prefix.len()..]
                        .find(d.as_str())
                        .map(|i| name[..prefix.len() + i + d.len()].to_string())
                });
                if let Some(p) = rolled {
                    if last_prefix.as_deref() == Some(p.as_str()) {
                        continue;
                    }
                    if items.len() == max {
                        next = Some(p);
                        break 'outer;
                    }
                    last_prefix = Some(p.clone());
                    items.push(Item::Prefix(p));
                } else {
                    if items.len() == max {
                        next = Some(name);
                        break 'outer;
                    }
                    items.push(Item::Blob(name, Box::new(state)));
                }
            }
            if !full {
                break;
            }
            start = resume;
        }
        let mut x = String::with_capacity(256 + items.len() * 512);
        x.push_str(xml::DECL);
        x.push_str(&format!(
            "<EnumerationResults ServiceEndpoint=\"{}\" ContainerName=\"{}\">",
            xml::esc(&self.endpoint(ctx)),
            xml::esc(&ctx.container)
        ));
        if ctx.q("prefix").is_some() {
            xml::elem(&mut x, "Prefix", &prefix);
        }
        if ctx.q("marker").is_some() {
            xml::elem(&mut x, "Marker", &marker);
        }
        if ctx.q("maxresults").is_some() {
            xml::elem(&mut x, "MaxResults", &max.to_string());
        }
        if let Some(d) = &delimiter {
            xml::elem(&mut x, "Delimiter", d);
        }
        x.push_str("<Blobs>");
        for it in &items {
            match it {
                Item::Prefix(p) => {
                    x.push_str("<BlobPrefix>");
                    xml::elem(&mut x, "Name", p);
                    x.push_str("</BlobPrefix>");
                }
                Item::Blob(name, s) => {
                    x.push_str("<Blob>");
                    xml::elem(&mut x, "Name", name);
                    x.push_str("<Properties>");
                    xml::elem(&mut x, "Creation-Time", &http_date(s.created));
                    xml::elem(&mut x, "Last-Modified", &http_date(s.last_modified));
                    xml::elem(&mut x, "Etag", &s.etag);
                    xml::elem(&mut x, "Content-Length", &s.size.to_string());
                    xml::elem(
                        &mut x,
                        "Content-Type",
                        s.props
                            .content_type
                            .as_deref()
                            .unwrap_or("application/octet-stream"),
                    );
                    xml::opt_elem(
                        &mut x,
                        "Content-Encoding",
                        s.props.content_encoding.as_deref(),
                    );
                    xml::opt_elem(
                        &mut x,
                        "Content-Language",
                        s.props.content_language.as_deref(),
                    );
                    let md5 = s.props.content_md5.map(|m| B64.encode(m));
                    xml::opt_elem(&mut x, "Content-MD5", md5.as_deref());
                    xml::opt_elem(
                        &mut x,
                        "Content-Disposition",
                        s.props.content_disposition.as_deref(),
                    );
                    xml::opt_elem(&mut x, "Cache-Control", s.props.cache_control.as_deref());
                    if let Layout::Page { sequence, .. } = &s.layout {
                        xml::elem(&mut x, "x-ms-blob-sequence-number", &sequence.to_string());
                    }
                    xml::elem(&mut x, "BlobType", s.blob_type().as_str());
                    if s.blob_type() == BlobType::Block {
                        xml::elem(&mut x, "AccessTier", "Hot");
                        xml::elem(&mut x, "AccessTierInferred", "true");
                    }
                    let lh = lease::headers(&s.lease, now);
                    for (h, tag) in [
                        ("x-ms-lease-status", "LeaseStatus"),
                        ("x-ms-lease-state", "LeaseState"),
                        ("x-ms-lease-duration", "LeaseDuration"),
                    ] {
                        if let Some((_, v)) = lh.iter().find(|(k, _)| *k == h) {
                            xml::elem(&mut x, tag, v);
                        }
                    }
                    xml::elem(&mut x, "ServerEncrypted", "true");
                    x.push_str("</Properties>");
                    if with_meta {
                        x.push_str("<Metadata>");
                        for (k, v) in &s.metadata {
                            xml::elem(&mut x, k, v);
                        }
                        x.push_str("</Metadata>");
                    }
                    x.push_str("</Blob>");
                }
            }
        }
        x.push_str("</Blobs>");
        xml::opt_elem(&mut x, "NextMarker", next.as_deref());
        x.push_str("</EnumerationResults>");
        Ok(xml_response(200, x))
    }

    // ----- blob helpers -----------------------------------------------------------------

    /// Streams `len` body bytes into a new extent; returns it and the body's MD5. On any
    /// failure the extent is removed.
    fn stream_to_extent(&self, ctx: &mut Ctx<'_>, len: u64) -> SResult<(ExtentId, [u8; 16])> {
        let ext = self.storage().create_extent(len)?;
        match self.fill_extent(ctx, ext, len) {
            Ok(md5) => Ok((ext, md5)),
            Err(e) => {
                self.delete_extent_now(ext);
                Err(e)
            }
        }
    }

    fn fill_extent(&self, ctx: &mut Ctx<'_>, ext: ExtentId, len: u64) -> SResult<[u8; 16]> {
        let md5 = if len > CHUNK as u64 {
            self.fill_extent_pipelined(ctx, ext, len)?
        } else {
            let mut hasher = Md5::new();
            let mut buf = vec![0u8; usize::try_from(len).unwrap_or(CHUNK).max(1)];
            let n = read_full(ctx.body, &mut buf)?;
            if (n as u64) < len {
                return Err(err(ErrorCode::InvalidContentLength));
            }
            hasher.update(&buf[..n]);
            self.storage().write_extent(ext, 0, &buf[..n])?;
            hasher.finalize().into()
        };
        if let Some(want) = ctx.content_md5()? {
            if want != md5 {
                return Err(err(ErrorCode::Md5Mismatch));
            }
        }
        self.storage().sync_extent(ext)?;
        Ok(md5)
    }

    /// Streams a large body in chunks: this thread reads and stores them while a helper
    /// thread computes the MD5, with a small fixed pool of chunk buffers (bounded memory).
    fn fill_extent_pipelined(
        &self,
        ctx: &mut Ctx<'_>,
        ext: ExtentId,
        len: u64,
    ) -> SResult<[u8; 16]> {
        const POOL: usize = 4;
        std::thread::scope(|scope| {
            let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(POOL);
            let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(POOL);
            let hasher = scope.spawn(move || {
                let mut h = Md5::new();
                for chunk in full_rx {
                    h.update(&chunk);
                    // The pool is as large as the channel: this never blocks.
                    let _ = free_tx.send(chunk);
                }
                <[u8; 16]>::from(h.finalize())
            });
            let mut spare: Vec<Vec<u8>> = (0..POOL).map(|_| Vec::new()).collect();
            let mut off = 0u64;
            let result = (|| {
                while off < len {
                    let mut buf = match spare.pop() {
                        Some(b) => b,
                        None => free_rx.recv().map_err(|_| err(ErrorCode::InternalError))?,
                    };
                    let want = CHUNK.min(usize::try_from(len - off).unwrap_or(CHUNK));
                    buf.resize(want, 0);
                    let n = read_full(ctx.body, &mut buf)?;
                    if n < want {
                        return Err(err(ErrorCode::InvalidContentLength));
                    }
                    self.storage().write_extent(ext, off, &buf)?;
                    off += n as u64;
                    full_tx
                        .send(buf)
                        .map_err(|_| err(ErrorCode::InternalError))?;
                }
                Ok(())
            })();
            drop(full_tx);
            let md5 = hasher.join().map_err(|_| err(ErrorCode::InternalError))?;
            result.map(|()| md5)
        })
    }

    fn blob_headers(&self, r: &mut Response, s: &BlobState, now: SystemTime) {
        r.header("ETag", s.etag.clone());
        r.header("Last-Modified", http_date(s.last_modified));
        r.header("x-ms-creation-time", http_date(s.created));
        r.header("x-ms-blob-type", s.blob_type().as_str());
        for (k, v) in lease::headers(&s.lease, now) {
            r.header(k, v);
        }
        for (k, v) in &s.metadata {
            r.header(&format!("x-ms-meta-{k}"), v.clone());
        }
        match &s.layout {
            Layout::Page { sequence, .. } => {
                r.header("x-ms-blob-sequence-number", sequence.to_string());
            }
            Layout::Append(p) => {
                r.header("x-ms-blob-committed-block-count", p.len().to_string());
            }
            Layout::Block(_) => {
                r.header("x-ms-access-tier", "Hot");
                r.header("x-ms-access-tier-inferred", "true");
            }
        }
        r.header("x-ms-server-encrypted", "true");
    }

    fn content_headers(r: &mut Response, p: &ContentProps) {
        r.header(
            "Content-Type",
            p.content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
        );
        for (n, v) in [
            ("Content-Encoding", &p.content_encoding),
            ("Content-Language", &p.content_language),
            ("Content-Disposition", &p.content_disposition),
            ("Cache-Control", &p.cache_control),
        ] {
            if let Some(v) = v {
                r.header(n, v.clone());
            }
        }
    }

    fn committed(rec: &Option<BlobRecord>) -> SResult<&BlobState> {
        rec.as_ref()
            .and_then(|r| r.committed.as_ref())
            .ok_or_else(|| err(ErrorCode::BlobNotFound))
    }

    /// Write-side checks on the current record: conditions, then the lease.
    fn check_write(
        ctx: &Ctx<'_>,
        rec: &Option<BlobRecord>,
        create_only_header: bool,
    ) -> SResult<()> {
        let cur = rec.as_ref().and_then(|r| r.committed.as_ref());
        if create_only_header && cur.is_some() && ctx.h("if-none-match").map(str::trim) == Some("*")
        {
            return Err(err(ErrorCode::BlobAlreadyExists));
        }
        check_conditions(
            ctx.head,
            cur.map(|s| (s.etag.as_str(), s.last_modified)),
            Access::Write,
        )?;
        if let Some(s) = cur {
            lease::check_write(&s.lease, ctx.lease_id(), ctx.now)?;
        } else if ctx.lease_id().is_some() {
            return Err(err(ErrorCode::LeaseNotPresentWithBlobOperation));
        }
        Ok(())
    }

    fn commit(&self, ctx: &Ctx<'_>, old: Option<BlobRecord>, new: BlobRecord) -> SResult<()> {
        self.storage().put_blob(&ctx.container, &ctx.blob, &new)?;
        if let Some(old) = old {
            self.release(Self::garbage(&old, &new));
        }
        Ok(())
    }

    // ----- blobs ------------------------------------------------------------------------

    fn put_blob(&self, ctx: &mut Ctx<'_>) -> SResult<Response> {
        let len = ctx.need_len()?;
        let btype = match ctx.h("x-ms-blob-type") {
            None => {
                return Err(ServiceError::with_detail(
                    ErrorCode::MissingRequiredHeader,
                    "x-ms-blob-type",
                ))
            }
            Some("BlockBlob") => BlobType::Block,
            Some("PageBlob") => BlobType::Page,
            Some("AppendBlob") => BlobType::Append,
            Some(_) => return Err(bad_header("x-ms-blob-type")),
        };
        let metadata = ctx.metadata()?;
        let props = content_props(ctx.head, true)?;
        let mut page_size = 0;
        let mut sequence = 0;
        match btype {
            BlobType::Block if len > MAX_PUT_BLOB => {
                return Err(err(ErrorCode::RequestBodyTooLarge))
            }
            BlobType::Page | BlobType::Append if len != 0 => {
                return Err(bad_header("Content-Length"))
            }
            BlobType::Page => {
                page_size = ctx
                    .h("x-ms-blob-content-length")
                    .ok_or_else(|| {
                        ServiceError::with_detail(
                            ErrorCode::MissingRequiredHeader,
                            "x-ms-blob-content-length",
                        )
                    })?
                    .parse::<u64>()
                    .ok()
                    .filter(|n| n % 512 == 0)
                    .ok_or_else(|| bad_header("x-ms-blob-content-length"))?;
                if let Some(s) = ctx.h("x-ms-blob-sequence-number") {
                    sequence = s
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n < (1 << 63))
                        .ok_or_else(|| bad_header("x-ms-blob-sequence-number"))?;
                }
            }
            _ => {}
        }
        // Fail fast (before reading the body) on everything that can be known now.
        {
            let _g = self.lock();
            self.need_container(&ctx.container)?;
            let rec = self.storage().get_blob(&ctx.container, &ctx.blob)?;
            Self::check_write(ctx, &rec, true)?;
        }
        let (layout, md5) = match btype {
            BlobType::Block => {
                let (ext, md5) = self.stream_to_extent(ctx, len)?;
                (
                    Layout::Block(vec![Piece {
                        block_id: None,
                        extent: ext,
                        len,
                    }]),
                    Some(md5),
                )
            }
            BlobType::Page => {
                let ext = self.storage().create_extent(0)?;
                (
                    Layout::Page {
                        extent: ext,
                        ranges: BTreeMap::new(),
                        sequence,
                    },
                    None,
                )
            }
            BlobType::Append => (Layout::Append(Vec::new()), None),
        };
        let new_extents: Vec<ExtentId> = match &layout {
            Layout::Block(p) | Layout::Append(p) => p.iter().map(|p| p.extent).collect(),
            Layout::Page { extent, .. } => vec![*extent],
        };
        let result = (|| {
            let _g = self.lock();
            self.need_container(&ctx.container)?;
            let old = self.storage().get_blob(&ctx.container, &ctx.blob)?;
            Self::check_write(ctx, &old, true)?;
            let prev = old.as_ref().and_then(|r| r.committed.as_ref());
            let mut props = props.clone();
            if btype == BlobType::Block && props.content_md5.is_none() {
                props.content_md5 = md5;
            }
            let state = BlobState {
                layout: layout.clone(),
                size: if btype == BlobType::Page {
                    page_size
                } else {
                    len
                },
                props,
                metadata: metadata.clone(),
                etag: self.new_etag(),
                last_modified: ctx.now,
                created: ctx.now,
                lease: prev.map(|p| p.lease.clone()).unwrap_or_default(),
            };
            let new = BlobRecord {
                committed: Some(state.clone()),
                uncommitted: Vec::new(),
            };
            self.commit(ctx, old, new)?;
            Ok(state)
        })();
        let state = match result {
            Ok(s) => s,
            Err(e) => {
                self.release(new_extents);
                return Err(e);
            }
        };
        let mut r = Response::new(201);
        r.header("ETag", state.etag.clone());
        r.header("Last-Modified", http_date(state.last_modified));
        if let Some(m) = md5 {
            r.header("Content-MD5", B64.encode(m));
        }
        r.header("x-ms-request-server-encrypted", "true");
        Ok(r)
    }

    fn block_id(ctx: &Ctx<'_>) -> SResult<String> {
        let id = ctx.q("blockid").ok_or_else(|| {
            ServiceError::with_detail(ErrorCode::MissingRequiredQueryParameter, "blockid")
        })?;
        match B64.decode(id) {
            Ok(raw) if !raw.is_empty() && raw.len() <= 64 => Ok(id.to_string()),
            _ => Err(bad_query("blockid")),
        }
    }

    fn decoded_len(id: &str) -> usize {
        B64.decode(id).map(|v| v.len()).unwrap_or(0)
    }

    fn put_block(&self, ctx: &mut Ctx<'_>) -> SResult<Response> {
        let id = Self::block_id(ctx)?;
        let len = ctx.need_len()?;
        if len > MAX_BLOCK {
            return Err(err(ErrorCode::RequestBodyTooLarge));
        }
        if len == 0 {
            return Err(bad_header("Content-Length"));
        }
        let precheck = |svc: &Self, ctx: &Ctx<'_>| -> SResult<Option<BlobRecord>> {
            svc.need_container(&ctx.container)?;
            let rec = svc.storage().get_blob(&ctx.container, &ctx.blob)?;
            if let Some(r) = &rec {
                if let Some(s) = &r.committed {
                    if s.blob_type() != BlobType::Block {
                        return Err(err(ErrorCode::InvalidBlobType));
                    }
                    lease::check_write(&s.lease, ctx.lease_id(), ctx.now)?;
                }
                let idlen = Self::decoded_len(&id);
                let other = r.uncommitted.first().map(|b| b.id.as_str()).or_else(|| {
                    r.committed.as_ref().and_then(|s| match &s.layout {
                        Layout::Block(p) => p.iter().find_map(|p| p.block_id.as_deref()),
                        _ => None,
                    })
                });
                if other.is_some_and(|o| Self::decoded_len(o) != idlen) {
                    return Err(ServiceError::with_detail(
                        ErrorCode::InvalidBlobOrBlock,
                        "all block ids of a blob must have the same length",
                    ));
                }
                if r.uncommitted.len() >= MAX_UNCOMMITTED_BLOCKS
                    && !r.uncommitted.iter().any(|b| b.id == id)
                {
                    return Err(err(ErrorCode::BlockCountExceedsLimit));
                }
            }
            Ok(rec)
        };
        {
            let _g = self.lock();
            precheck(self, ctx)?;
        }
        let (ext, md5) = self.stream_to_extent(ctx, len)?;
        let result = (|| {
            let _g = self.lock();
            let old = precheck(self, ctx)?;
            let mut new = old.clone().unwrap_or_default();
            let staged = StagedBlock {
                id: id.clone(),
                extent: ext,
                len,
            };
            // A re-staged id replaces the old block and moves to the end.
            new.uncommitted.retain(|b| b.id != id);
            new.uncommitted.push(staged);
            self.commit(ctx, old, new)
        })();
        if let Err(e) = result {
            self.release([ext]);
            return Err(e);
        }
        let mut r = Response::new(201);
        r.header("Content-MD5", B64.encode(md5));
        r.header("x-ms-request-server-encrypted", "true");
        Ok(r)
    }

    fn put_block_list(&self, ctx: &mut Ctx<'_>) -> SResult<Response> {
        ctx.need_len()?;
        let body = ctx.read_small_body(MAX_BLOCK_LIST_BODY)?;
        if let Some(want) = ctx.content_md5()? {
            let got: [u8; 16] = Md5::digest(&body).into();
            if got != want {
                return Err(err(ErrorCode::Md5Mismatch));
            }
        }
        let body_md5: [u8; 16] = Md5::digest(&body).into();
        let list = xml::parse_block_list(&body)?;
        if list.len() > MAX_COMMITTED_BLOCKS {
            return Err(err(ErrorCode::BlockCountExceedsLimit));
        }
        let metadata = ctx.metadata()?;
        let props = content_props(ctx.head, false)?;
        let _g = self.lock();
        self.need_container(&ctx.container)?;
        let old = self.storage().get_blob(&ctx.container, &ctx.blob)?;
        Self::check_write(ctx, &old, true)?;
        let prev = old.as_ref().and_then(|r| r.committed.as_ref());
        let committed: Vec<Piece> = match prev.map(|s| &s.layout) {
            None => Vec::new(),
            Some(Layout::Block(p)) => p.clone(),
            Some(_) => return Err(err(ErrorCode::InvalidBlobType)),
        };
        let staged: &[StagedBlock] = old.as_ref().map_or(&[], |r| r.uncommitted.as_slice());
        let find_staged = |id: &str| {
            staged.iter().find(|b| b.id == id).map(|b| Piece {
                block_id: Some(b.id.clone()),
                extent: b.extent,
                len: b.len,
            })
        };
        let find_committed = |id: &str| {
            committed
                .iter()
                .find(|p| p.block_id.as_deref() == Some(id))
                .cloned()
        };
        let mut pieces = Vec::with_capacity(list.len());
        for (src, id) in &list {
            let p = match src {
                BlockSource::Committed => find_committed(id),
                BlockSource::Uncommitted => find_staged(id),
                BlockSource::Latest => find_staged(id).or_else(|| find_committed(id)),
            };
            match p {
                Some(p) => pieces.push(p),
                None => {
                    return Err(ServiceError::with_detail(
                        ErrorCode::InvalidBlockList,
                        format!("unknown block {id}"),
                    ))
                }
            }
        }
        let size = pieces.iter().map(|p| p.len).sum();
        let state = BlobState {
            layout: Layout::Block(pieces),
            size,
            props,
            metadata,
            etag: self.new_etag(),
            last_modified: ctx.now,
            created: prev.map_or(ctx.now, |p| p.created),
            lease: prev.map(|p| p.lease.clone()).unwrap_or_default(),
        };
        let new = BlobRecord {
            committed: Some(state.clone()),
            uncommitted: Vec::new(),
        };
        self.commit(ctx, old, new)?;
        let mut r = Response::new(201);
        r.header("ETag", state.etag);
        r.header("Last-Modified", http_date(state.last_modified));
        r.header("Content-MD5", B64.encode(body_md5));
        r.header("x-ms-request-server-encrypted", "true");
        Ok(r)
    }

    fn get_block_list(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        let (want_c, want_u) = match ctx
            .q("blocklisttype")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("committed") => (true, false),
            Some("uncommitted") => (false, true),
            Some("all") => (true, true),
            Some(_) => return Err(bad_query("blocklisttype")),
        };
        self.need_container(&ctx.container)?;
        let rec = self
            .storage()
            .get_blob(&ctx.container, &ctx.blob)?
            .ok_or_else(|| err(ErrorCode::BlobNotFound))?;
        if let Some(s) = &rec.committed {
            if s.blob_type() != BlobType::Block {
                return Err(err(ErrorCode::InvalidBlobType));
            }
            check_conditions(ctx.head, Some((&s.etag, s.last_modified)), Access::Read)?;
            lease::check_read(&s.lease, ctx.lease_id(), ctx.now)?;
        }
        let mut x = String::from(xml::DECL);
        x.push_str("<BlockList>");
        if want_c {
            x.push_str("<CommittedBlocks>");
            if let Some(BlobState {
                layout: Layout::Block(p),
                ..
            }) = &rec.committed
            {
                for p in p {
                    if let Some(id) = &p.block_id {
                        x.push_str("<Block>");
                        xml::elem(&mut x, "Name", id);
                        xml::elem(&mut x, "Size", &p.len.to_string());
                        x.push_str("</Block>");
                    }
                }
            }
            x.push_str("</CommittedBlocks>");
        }
        if want_u {
            x.push_str("<UncommittedBlocks>");
            for b in &rec.uncommitted {
                x.push_str("<Block>");
                xml::elem(&mut x, "Name", &b.id);
                xml::elem(&mut x, "Size", &b.len.to_string());
                x.push_str("</Block>");
            }
            x.push_str("</UncommittedBlocks>");
        }
        x.push_str("</BlockList>");
        let mut r = xml_response(200, x);
        match &rec.committed {
            Some(s) => {
                r.header("ETag", s.etag.clone());
                r.header("Last-Modified", http_date(s.last_modified));
                r.header("x-ms-blob-content-length", s.size.to_string());
            }
            None => {
                r.header("x-ms-blob-content-length", "0");
            }
        }
        Ok(r)
    }

    fn get_blob(&self, ctx: &Ctx<'_>, head_only: bool) -> SResult<Response> {
        let _g = self.lock();
        self.need_container(&ctx.container)?;
        let rec = self.storage().get_blob(&ctx.container, &ctx.blob)?;
        let s = Self::committed(&rec)?;
        check_conditions(ctx.head, Some((&s.etag, s.last_modified)), Access::Read)?;
        lease::check_read(&s.lease, ctx.lease_id(), ctx.now)?;
        let mut r = Response::new(200);
        self.blob_headers(&mut r, s, ctx.now);
        Self::content_headers(&mut r, &s.props);
        r.header("Accept-Ranges", "bytes");
        if head_only {
            r.header("Content-Length", s.size.to_string());
            if let Some(m) = s.props.content_md5 {
                r.header("Content-MD5", B64.encode(m));
            }
            return Ok(r);
        }
        let range = match range_header(ctx.head) {
            None => None,
            Some((name, v)) => match parse_range(v) {
                Some(rg) => Some(rg),
                None if name == "x-ms-range" => return Err(bad_header("x-ms-range")),
                None => None,
            },
        };
        let want_md5 = ctx
            .h("x-ms-range-get-content-md5")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let (start, end) = match range {
            None => {
                if want_md5 {
                    return Err(bad_header("x-ms-range-get-content-md5"));
                }
                (0, s.size)
            }
            Some((st, e)) => {
                if st >= s.size {
                    return Err(err(ErrorCode::InvalidRange)
                        .header("Content-Range", format!("bytes */{}", s.size)));
                }
                let end = e.map_or(s.size, |e| (e + 1).min(s.size));
                if want_md5 && end - st > 4 * MIB {
                    return Err(bad_header("x-ms-range-get-content-md5"));
                }
                r.status = 206;
                r.header(
                    "Content-Range",
                    format!("bytes {}-{}/{}", st, end - 1, s.size),
                );
                (st, end)
            }
        };
        if range.is_none() {
            if let Some(m) = s.props.content_md5 {
                r.header("Content-MD5", B64.encode(m));
            }
        } else if let Some(m) = s.props.content_md5 {
            r.header("x-ms-blob-content-md5", B64.encode(m));
        }
        let len = end - start;
        r.header("Content-Length", len.to_string());
        let runs = runs_of(s, start, end);
        let pinned: Vec<ExtentId> = runs.iter().map(|r| r.0).collect();
        self.pin(&pinned);
        let mut reader = BlobReader {
            svc: self.clone(),
            runs,
            pinned,
        };
        drop(_g);
        if want_md5 || len <= 64 * 1024 {
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            reader
                .read_to_end(&mut buf)
                .map_err(|e| ServiceError::with_detail(ErrorCode::InternalError, e.to_string()))?;
            if want_md5 {
                r.header("Content-MD5", B64.encode(Md5::digest(&buf)));
            }
            r.body = Body::Bytes(buf);
        } else {
            r.body = Body::Reader {
                len,
                reader: Box::new(reader),
            };
        }
        Ok(r)
    }

    fn get_blob_metadata(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        self.need_container(&ctx.container)?;
        let rec = self.storage().get_blob(&ctx.container, &ctx.blob)?;
        let s = Self::committed(&rec)?;
        check_conditions(ctx.head, Some((&s.etag, s.last_modified)), Access::Read)?;
        lease::check_read(&s.lease, ctx.lease_id(), ctx.now)?;
        let mut r = Response::new(200);
        r.header("ETag", s.etag.clone());
        r.header("Last-Modified", http_date(s.last_modified));
        for (k, v) in &s.metadata {
            r.header(&format!("x-ms-meta-{k}"), v.clone());
        }
        Ok(r)
    }

    /// Read-modify-write of an existing committed blob under the metadata lock.
    fn modify_blob(
        &self,
        ctx: &Ctx<'_>,
        f: impl FnOnce(&mut BlobState) -> SResult<()>,
    ) -> SResult<BlobState> {
        let _g = self.lock();
        self.need_container(&ctx.container)?;
        let old = self.storage().get_blob(&ctx.container, &ctx.blob)?;
        Self::committed(&old)?;
        Self::check_write(ctx, &old, false)?;
        let mut new = old.clone().unwrap_or_default();
        let state = new
            .committed
            .as_mut()
            .ok_or_else(|| err(ErrorCode::BlobNotFound))?;
        f(state)?;
        state.etag = self.new_etag();
        state.last_modified = ctx.now;
        let out = state.clone();
        self.commit(ctx, old, new)?;
        Ok(out)
    }

    fn set_blob_properties(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        let props = content_props(ctx.head, false)?;
        let resize = ctx
            .h("x-ms-blob-content-length")
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| n % 512 == 0)
                    .ok_or_else(|| bad_header("x-ms-blob-content-length"))
            })
            .transpose()?;
        let storage = self.inner.storage.clone();
        let state = self.modify_blob(ctx, |s| {
            if let Some(n) = resize {
                let Layout::Page { extent, ranges, .. } = &mut s.layout else {
                    return Err(err(ErrorCode::InvalidBlobType));
                };
                if n < s.size {
                    storage.zero_extent(*extent, n, s.size - n)?;
                    clip_ranges(ranges, n);
                }
                s.size = n;
            }
            s.props = props;
            Ok(())
        })?;
        let mut r = Response::new(200);
        r.header("ETag", state.etag.clone());
        r.header("Last-Modified", http_date(state.last_modified));
        if let Layout::Page { sequence, .. } = &state.layout {
            r.header("x-ms-blob-sequence-number", sequence.to_string());
        }
        Ok(r)
    }

    fn set_blob_metadata(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        let metadata = ctx.metadata()?;
        let state = self.modify_blob(ctx, |s| {
            s.metadata = metadata;
            Ok(())
        })?;
        let mut r = Response::new(200);
        r.header("ETag", state.etag.clone());
        r.header("Last-Modified", http_date(state.last_modified));
        r.header("x-ms-request-server-encrypted", "true");
        Ok(r)
    }

    fn lease_blob(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        let action = LeaseAction::from_headers(&ctx.head.headers)?;
        let _g = self.lock();
        self.need_container(&ctx.container)?;
        let old = self.storage().get_blob(&ctx.container, &ctx.blob)?;
        let s = Self::committed(&old)?;
        check_conditions(ctx.head, Some((&s.etag, s.last_modified)), Access::Write)?;
        let mut new = old.clone().unwrap_or_default();
        let state = new
            .committed
            .as_mut()
            .ok_or_else(|| err(ErrorCode::BlobNotFound))?;
        let out = lease::apply(&mut state.lease, action, ctx.now)?;
        let (etag, lm) = (state.etag.clone(), state.last_modified);
        self.commit(ctx, old, new)?;
        let mut r = Response::new(out.status);
        r.header("ETag", etag);
        r.header("Last-Modified", http_date(lm));
        if let Some(id) = out.lease_id {
            r.header("x-ms-lease-id", id);
        }
        if let Some(t) = out.lease_time {
            r.header("x-ms-lease-time", t.to_string());
        }
        Ok(r)
    }

    fn delete_blob(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        if let Some(v) = ctx.h("x-ms-delete-snapshots") {
            if !matches!(v, "include" | "only") {
                return Err(bad_header("x-ms-delete-snapshots"));
            }
        }
        let extents = {
            let _g = self.lock();
            self.need_container(&ctx.container)?;
            let old = self.storage().get_blob(&ctx.container, &ctx.blob)?;
            Self::committed(&old)?;
            Self::check_write(ctx, &old, false)?;
            self.storage().delete_blob(&ctx.container, &ctx.blob)?;
            old.map(|r| r.extents()).unwrap_or_default()
        };
        self.release(extents.into_iter().collect::<HashSet<_>>());
        let mut r = Response::new(202);
        r.header("x-ms-delete-type-permanent", "true");
        Ok(r)
    }

    // ----- page blobs -------------------------------------------------------------------

    fn put_page(&self, ctx: &mut Ctx<'_>) -> SResult<Response> {
        let len = ctx.need_len()?;
        let write = ctx.h("x-ms-page-write").ok_or_else(|| {
            ServiceError::with_detail(ErrorCode::MissingRequiredHeader, "x-ms-page-write")
        })?;
        let clear = match write.to_ascii_lowercase().as_str() {
            "update" => false,
            "clear" => true,
            _ => return Err(bad_header("x-ms-page-write")),
        };
        let (name, rv) = range_header(ctx.head).ok_or_else(|| {
            ServiceError::with_detail(ErrorCode::MissingRequiredHeader, "x-ms-range")
        })?;
        let (start, end) = match parse_range(rv) {
            Some((s, Some(e))) => (s, e + 1),
            _ => return Err(bad_header(name)),
        };
        if start % 512 != 0 || end % 512 != 0 {
            return Err(err(ErrorCode::InvalidPageRange));
        }
        if clear && len != 0 {
            return Err(bad_header("Content-Length"));
        }
        if !clear {
            if len > MAX_PAGE_WRITE {
                return Err(err(ErrorCode::RequestBodyTooLarge));
            }
            if len != end - start {
                return Err(ServiceError::with_detail(
                    ErrorCode::InvalidHeaderValue,
                    "Content-Length does not match the range",
                ));
            }
        }
        let precheck = |svc: &Self, ctx: &Ctx<'_>| -> SResult<Option<BlobRecord>> {
            svc.need_container(&ctx.container)?;
            let old = svc.storage().get_blob(&ctx.container, &ctx.blob)?;
            let s = Self::committed(&old)?;
            if s.blob_type() != BlobType::Page {
                return Err(err(ErrorCode::InvalidBlobType));
            }
            Self::check_write(ctx, &old, false)?;
            if end > s.size {
                return Err(err(ErrorCode::InvalidPageRange));
            }
            Ok(old)
        };
        {
            let _g = self.lock();
            precheck(self, ctx)?;
        }
        // The body is at most 4 MiB: take it whole before touching the blob, so a short or
        // corrupt body leaves the store unchanged.
        let data = if clear {
            Vec::new()
        } else {
            let data = ctx.read_small_body(MAX_PAGE_WRITE)?;
            if let Some(want) = ctx.content_md5()? {
                let got: [u8; 16] = Md5::digest(&data).into();
                if got != want {
                    return Err(err(ErrorCode::Md5Mismatch));
                }
            }
            data
        };
        let _g = self.lock();
        let old = precheck(self, ctx)?;
        let mut new = old.clone().unwrap_or_default();
        let state = new
            .committed
            .as_mut()
            .ok_or_else(|| err(ErrorCode::BlobNotFound))?;
        let Layout::Page {
            extent,
            ranges,
            sequence,
        } = &mut state.layout
        else {
            return Err(err(ErrorCode::InvalidBlobType));
        };
        if clear {
            self.storage().zero_extent(*extent, start, end - start)?;
            remove_range(ranges, start, end);
        } else {
            self.storage().write_extent(*extent, start, &data)?;
            add_range(ranges, start, end);
        }
        self.storage().sync_extent(*extent)?;
        let seq = *sequence;
        state.etag = self.new_etag();
        state.last_modified = ctx.now;
        let (etag, lm) = (state.etag.clone(), state.last_modified);
        self.commit(ctx, old, new)?;
        let mut r = Response::new(201);
        r.header("ETag", etag);
        r.header("Last-Modified", http_date(lm));
        r.header("x-ms-blob-sequence-number", seq.to_string());
        if !clear {
            r.header("Content-MD5", B64.encode(Md5::digest(&data)));
        }
        r.header("x-ms-request-server-encrypted", "true");
        Ok(r)
    }

    fn get_page_ranges(&self, ctx: &Ctx<'_>) -> SResult<Response> {
        self.need_container(&ctx.container)?;
        let rec = self.storage().get_blob(&ctx.container, &ctx.blob)?;
        let s = Self::committed(&rec)?;
        let Layout::Page { ranges, .. } = &s.layout else {
            return Err(err(ErrorCode::InvalidBlobType));
        };
        check_conditions(ctx.head, Some((&s.etag, s.last_modified)), Access::Read)?;
        lease::check_read(&s.lease, ctx.lease_id(), ctx.now)?;
        let (lo, hi) = match range_header(ctx.head) {
            None => (0, u64::MAX),
            Some((name, v)) => match parse_range(v) {
                Some((st, e)) if st % 512 == 0 && e.is_none_or(|e| (e + 1) % 512 == 0) => {
                    (st, e.map_or(u64::MAX, |e| e + 1))
                }
                Some(_) => return Err(err(ErrorCode::InvalidPageRange)),
                None => return Err(bad_header(name)),
            },
        };
        let mut x = String::from(xml::DECL);
        x.push_str("<PageList>");
        for (&a, &b) in ranges {
            let (a, b) = (a.max(lo), b.min(hi));
            if a < b {
                x.push_str("<PageRange>");
                xml::elem(&mut x, "Start", &a.to_string());
                xml::elem(&mut x, "End", &(b - 1).to_string());
                x.push_str("</PageRange>");
            }
        }
        x.push_str("</PageList>");
        let mut r = xml_response(200, x);
        r.header("ETag", s.etag.clone());
        r.header("Last-Modified", http_date(s.last_modified));
        r.header("x-ms-blob-content-length", s.size.to_string());
        Ok(r)
    }

    // ----- append blobs -----------------------------------------------------------------

    fn append_block(&self, ctx: &mut Ctx<'_>) -> SResult<Response> {
        let len = ctx.need_len()?;
        if len == 0 {
            return Err(bad_header("Content-Length"));
        }
        if len > MAX_APPEND_BLOCK {
            return Err(err(ErrorCode::RequestBodyTooLarge));
        }
        let num = |name: &str| -> SResult<Option<u64>> {
            ctx.h(name)
                .map(|v| v.parse::<u64>().map_err(|_| bad_header(name)))
                .transpose()
        };
        let max_size = num("x-ms-blob-condition-maxsize")?;
        let append_pos = num("x-ms-blob-condition-appendpos")?;
        let precheck = |svc: &Self, ctx: &Ctx<'_>| -> SResult<Option<BlobRecord>> {
            svc.need_container(&ctx.container)?;
            let old = svc.storage().get_blob(&ctx.container, &ctx.blob)?;
            let s = Self::committed(&old)?;
            let Layout::Append(p) = &s.layout else {
                return Err(err(ErrorCode::InvalidBlobType));
            };
            Self::check_write(ctx, &old, false)?;
            if max_size.is_some_and(|m| s.size + len > m) {
                return Err(err(ErrorCode::MaxBlobSizeConditionNotMet));
            }
            if append_pos.is_some_and(|p| p != s.size) {
                return Err(err(ErrorCode::AppendPositionConditionNotMet));
            }
            if p.len() >= MAX_COMMITTED_BLOCKS {
                return Err(err(ErrorCode::BlockCountExceedsLimit));
            }
            Ok(old)
        };
        {
            let _g = self.lock();
            precheck(self, ctx)?;
        }
        let (ext, md5) = self.stream_to_extent(ctx, len)?;
        let result = (|| {
            let _g = self.lock();
            let old = precheck(self, ctx)?;
            let mut new = old.clone().unwrap_or_default();
            let state = new
                .committed
                .as_mut()
                .ok_or_else(|| err(ErrorCode::BlobNotFound))?;
            let offset = state.size;
            let Layout::Append(p) = &mut state.layout else {
                return Err(err(ErrorCode::InvalidBlobType));
            };
            p.push(Piece {
                block_id: None,
                extent: ext,
                len,
            });
            let count = p.len();
            state.size += len;
            state.etag = self.new_etag();
            state.last_modified = ctx.now;
            let out = (state.etag.clone(), state.last_modified, offset, count);
            self.commit(ctx, old, new)?;
            Ok(out)
        })();
        let (etag, lm, offset, count) = match result {
            Ok(v) => v,
            Err(e) => {
                self.release([ext]);
                return Err(e);
            }
        };
        let mut r = Response::new(201);
        r.header("ETag", etag);
        r.header("Last-Modified", http_date(lm));
        r.header("Content-MD5", B64.encode(md5));
        r.header("x-ms-blob-append-offset", offset.to_string());
        r.header("x-ms-blob-committed-block-count", count.to_string());
        r.header("x-ms-request-server-encrypted", "true");
        Ok(r)
    }
}

fn add_range(ranges: &mut BTreeMap<u64, u64>, mut start: u64, mut end: u64) {
    let overlapping: Vec<(u64, u64)> = ranges
        .range(..=end)
        .filter(|(_, &e)| e >= start)
        .map(|(&s, &e)| (s, e))
        .collect();
    for (s, e) in overlapping {
        ranges.remove(&s);
        start = start.min(s);
        end = end.max(e);
    }
    ranges.insert(start, end);
}

fn remove_range(ranges: &mut BTreeMap<u64, u64>, start: u64, end: u64) {
    let overlapping: Vec<(u64, u64)> = ranges
        .range(..end)
        .filter(|(_, &e)| e > start)
        .map(|(&s, &e)| (s, e))
        .collect();
    for (s, e) in overlapping {
        ranges.remove(&s);
        if s < start {
            ranges.insert(s, start);
        }
        if e > end {
            ranges.insert(end, e);
        }
    }
}

fn clip_ranges(ranges: &mut BTreeMap<u64, u64>, size: u64) {
    remove_range(ranges, size, u64::MAX);
}

fn xml_response(status: u16, body: String) -> Response {
    let mut r = Response::new(status);
    r.header("Content-Type", "application/xml");
    r.body = Body::Bytes(body.into_bytes());
    r
}

/// The Azure-style error response for `e`.
pub fn error_response(e: &ServiceError, request_id: &str, is_head: bool) -> Response {
    let mut r = Response::new(e.status());
    r.header("x-ms-error-code", e.code.as_str());
    for (n, v) in &e.headers {
        r.header(n, v.clone());
    }
    if is_head || e.status() == 304 {
        r.header("Content-Length", "0");
        return r;
    }
    let mut msg = e.code.message().to_string();
    if let Some(d) = &e.detail {
        msg.push_str(" (");
        msg.push_str(d);
        msg.push(')');
    }
    msg.push_str(&format!(
        "\nRequestId:{request_id}\nTime:{}",
        http_date(now())
    ));
    let mut x = String::from(xml::DECL);
    x.push_str("<Error>");
    xml::elem(&mut x, "Code", e.code.as_str());
    xml::elem(&mut x, "Message", &msg);
    x.push_str("</Error>");
    r.header("Content-Type", "application/xml");
    r.body = Body::Bytes(x.into_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_range_set_merges_and_splits() {
        let mut r = BTreeMap::new();
        add_range(&mut r, 0, 512);
        add_range(&mut r, 1024, 2048);
        add_range(&mut r, 512, 1024);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(&0, &2048)]);
        remove_range(&mut r, 512, 1024);
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            vec![(&0, &512), (&1024, &2048)]
        );
        clip_ranges(&mut r, 1536);
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            vec![(&0, &512), (&1024, &1536)]
        );
    }

    #[test]
    fn range_header_forms() {
        assert_eq!(parse_range("bytes=0-9"), Some((0, Some(9))));
        assert_eq!(parse_range("bytes=5-"), Some((5, None)));
        assert_eq!(parse_range("bytes=9-3"), None);
        assert_eq!(parse_range("items=0-3"), None);
        assert_eq!(parse_range("bytes=-5"), None);
    }

    #[test]
    fn container_names() {
        assert!(valid_container_name("abc-1"));
        for bad in ["ab", "Abc", "a--b", "-abc", "abc-", "a_b"] {
            assert!(!valid_container_name(bad), "{bad}");
        }
    }
}
