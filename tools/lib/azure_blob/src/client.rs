// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The client API, shaped like the Azure SDKs: [`BlobServiceClient`] ->
//! [`BlobContainerClient`] -> [`BlobClient`], with [`BlockBlobClient`],
//! [`PageBlobClient`], [`AppendBlobClient`] and [`BlobLeaseClient`] for what
//! is particular to a blob type or to leases. Calls take options structs
//! (`Default` gives the service's defaults) and work the same on every
//! [`Transport`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::transport::{HttpTransport, RestRequest, RestResponse, Transport, VscTransport};
use crate::{xml, Device, Error, DEFAULT_PATH, DEV_ACCOUNT};

/// User metadata (`x-ms-meta-*`): names are C# identifiers, values ASCII.
pub type Metadata = BTreeMap<String, String>;

/// What a callback of a long transfer is told: bytes done so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Characters kept as they are in a path: the unreserved ones and `/`.
/// The most blocks a block blob can be committed from (the service's limit).
pub const MAX_BLOCKS: usize = hv_azure_blob_proto::blob_limits::MAX_COMMITTED_BLOCKS;

const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// Characters kept as they are in a query value.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc_path(s: &str) -> String {
    utf8_percent_encode(s, PATH).to_string()
}

fn enc_query(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

/// Access conditions: the request fails with 412 (or 304 for a GET with
/// If-None-Match / If-Modified-Since) when they do not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Only if the ETag matches (`*`: if it exists).
    pub if_match: Option<String>,
    /// Only if the ETag does not match (`*`: if it does not exist).
    pub if_none_match: Option<String>,
    /// Only if modified since.
    pub if_modified_since: Option<SystemTime>,
    /// Only if not modified since.
    pub if_unmodified_since: Option<SystemTime>,
    /// The active lease on the blob (required to write a leased blob).
    pub lease_id: Option<String>,
}

impl Conditions {
    /// Only if the ETag is `etag`.
    pub fn if_match(etag: &str) -> Self {
        Self {
            if_match: Some(etag.to_string()),
            ..Default::default()
        }
    }

    /// Only if the ETag is not `etag` (`*`: only if absent).
    pub fn if_none_match(etag: &str) -> Self {
        Self {
            if_none_match: Some(etag.to_string()),
            ..Default::default()
        }
    }

    /// Under the lease `lease_id`.
    pub fn lease(lease_id: &str) -> Self {
        Self {
            lease_id: Some(lease_id.to_string()),
            ..Default::default()
        }
    }

    fn apply(&self, h: &mut Headers) {
        if let Some(v) = &self.if_match {
            h.push(("If-Match".into(), v.clone()));
        }
        if let Some(v) = &self.if_none_match {
            h.push(("If-None-Match".into(), v.clone()));
        }
        if let Some(t) = self.if_modified_since {
            h.push(("If-Modified-Since".into(), httpdate::fmt_http_date(t)));
        }
        if let Some(t) = self.if_unmodified_since {
            h.push(("If-Unmodified-Since".into(), httpdate::fmt_http_date(t)));
        }
        if let Some(v) = &self.lease_id {
            h.push(("x-ms-lease-id".into(), v.clone()));
        }
    }
}

/// The standard HTTP properties of a blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobHttpHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    pub cache_control: Option<String>,
    /// Base64 MD5 of the whole content, stored with the blob.
    pub content_md5: Option<String>,
}

impl BlobHttpHeaders {
    fn apply(&self, h: &mut Headers) {
        for (name, v) in [
            ("x-ms-blob-content-type", &self.content_type),
            ("x-ms-blob-content-encoding", &self.content_encoding),
            ("x-ms-blob-content-language", &self.content_language),
            ("x-ms-blob-content-disposition", &self.content_disposition),
            ("x-ms-blob-cache-control", &self.cache_control),
            ("x-ms-blob-content-md5", &self.content_md5),
        ] {
            if let Some(v) = v {
                h.push((name.into(), v.clone()));
            }
        }
    }
}

fn apply_metadata(m: &Metadata, h: &mut Headers) {
    for (k, v) in m {
        h.push((format!("x-ms-meta-{k}"), v.clone()));
    }
}

fn metadata_of(r: &RestResponse) -> Metadata {
    r.headers
        .iter()
        .filter_map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            lower
                .starts_with("x-ms-meta-")
                .then(|| (k["x-ms-meta-".len()..].to_string(), v.clone()))
        })
        .collect()
}

/// The kind of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobType {
    Block,
    Page,
    Append,
}

impl BlobType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "BlockBlob" => Some(Self::Block),
            "PageBlob" => Some(Self::Page),
            "AppendBlob" => Some(Self::Append),
            _ => None,
        }
    }
}

/// A blob's properties and metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobProperties {
    pub content_length: u64,
    pub etag: String,
    pub last_modified: String,
    pub blob_type: Option<BlobType>,
    pub http_headers: BlobHttpHeaders,
    /// `available`, `leased`, `expired`, `breaking` or `broken`.
    pub lease_state: Option<String>,
    /// `locked` or `unlocked`.
    pub lease_status: Option<String>,
    /// `infinite` or `fixed`, while leased.
    pub lease_duration: Option<String>,
    /// Page blobs: the sequence number.
    pub sequence_number: Option<u64>,
    /// Append blobs: the committed block count.
    pub committed_block_count: Option<u64>,
    pub metadata: Metadata,
}

impl BlobProperties {
    fn from_response(r: &RestResponse) -> Self {
        let s = |k: &str| r.header(k).map(str::to_string);
        Self {
            content_length: r
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            etag: s("etag").unwrap_or_default(),
            last_modified: s("last-modified").unwrap_or_default(),
            blob_type: r.header("x-ms-blob-type").and_then(BlobType::parse),
            http_headers: BlobHttpHeaders {
                content_type: s("content-type"),
                content_encoding: s("content-encoding"),
                content_language: s("content-language"),
                content_disposition: s("content-disposition"),
                cache_control: s("cache-control"),
                content_md5: s("content-md5"),
            },
            lease_state: s("x-ms-lease-state"),
            lease_status: s("x-ms-lease-status"),
            lease_duration: s("x-ms-lease-duration"),
            sequence_number: r
                .header("x-ms-blob-sequence-number")
                .and_then(|v| v.parse().ok()),
            committed_block_count: r
                .header("x-ms-blob-committed-block-count")
                .and_then(|v| v.parse().ok()),
            metadata: metadata_of(r),
        }
    }

    fn from_listing(p: &xml::Node) -> Self {
        let s = |k: &str| p.text_of(k).filter(|v| !v.is_empty()).map(str::to_string);
        Self {
            content_length: p
                .text_of("Content-Length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            etag: s("Etag").unwrap_or_default(),
            last_modified: s("Last-Modified").unwrap_or_default(),
            blob_type: p.text_of("BlobType").and_then(BlobType::parse),
            http_headers: BlobHttpHeaders {
                content_type: s("Content-Type"),
                content_encoding: s("Content-Encoding"),
                content_language: s("Content-Language"),
                content_disposition: s("Content-Disposition"),
                cache_control: s("Cache-Control"),
                content_md5: s("Content-MD5"),
            },
            lease_state: s("LeaseState"),
            lease_status: s("LeaseStatus"),
            lease_duration: s("LeaseDuration"),
            sequence_number: p
                .text_of("x-ms-blob-sequence-number")
                .and_then(|v| v.parse().ok()),
            committed_block_count: None,
            metadata: Metadata::new(),
        }
    }
}

/// What a write returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteResult {
    /// The blob's new ETag.
    pub etag: String,
    pub last_modified: String,
}

impl WriteResult {
    fn from_response(r: &RestResponse) -> Self {
        Self {
            etag: r.header("etag").unwrap_or_default().to_string(),
            last_modified: r.header("last-modified").unwrap_or_default().to_string(),
        }
    }
}

type Headers = Vec<(String, String)>;

/// What one call sends; the common path of every operation.
struct Call<'a> {
    what: &'a str,
    method: &'a str,
    path: String,
    headers: Headers,
    body: &'a [u8],
    expected_body: usize,
    ok: &'a [u16],
}

impl<'a> Call<'a> {
    fn new(what: &'a str, method: &'a str, path: String, ok: &'a [u16]) -> Self {
        Self {
            what,
            method,
            path,
            headers: Vec::new(),
            body: b"",
            expected_body: 0,
            ok,
        }
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    fn body(mut self, b: &'a [u8]) -> Self {
        self.body = b;
        self
    }

    fn expect(mut self, n: usize) -> Self {
        self.expected_body = n;
        self
    }

    fn send(self, t: &dyn Transport) -> Result<RestResponse, Error> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = t.send(
            &RestRequest {
                method: self.method,
                path: &self.path,
                headers: &headers,
                body: self.body,
            },
            self.expected_body,
        )?;
        if self.ok.contains(&r.status) {
            return Ok(r);
        }
        let message = xml::parse(&r.body)
            .ok()
            .and_then(|e| e.text_of("Message").map(str::to_string))
            .map(|m| m.lines().next().unwrap_or("").to_string())
            .unwrap_or_else(|| format!("{} failed", self.what));
        Err(Error::Service {
            status: r.status,
            code: r.error_code().map(str::to_string),
            message,
        })
    }
}

/// The account: lists containers and makes container clients.
#[derive(Debug, Clone)]
pub struct BlobServiceClient {
    transport: Arc<dyn Transport>,
}

/// Options of [`BlobServiceClient::list_containers`].
#[derive(Debug, Clone, Default)]
pub struct ListContainersOptions {
    /// Only containers whose names start with this.
    pub prefix: Option<String>,
    /// Return each container's metadata too.
    pub include_metadata: bool,
    /// Containers per request (the service's default is 5000).
    pub page_size: Option<u32>,
}

/// One container of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerItem {
    pub name: String,
    pub etag: String,
    pub last_modified: String,
    pub metadata: Metadata,
}

impl BlobServiceClient {
    /// A client on any transport.
    pub fn new(transport: impl Transport + 'static) -> Self {
        Self {
            transport: Arc::new(transport),
        }
    }

    /// A client on `/dev/azure_blob` for `account`.
    pub fn vsc(device: Device, account: &str) -> Self {
        Self::new(VscTransport::new(device, account))
    }

    /// A client on `/dev/azure_blob` for the development account.
    pub fn vsc_default() -> Result<Self, Error> {
        Ok(Self::vsc(Device::open_path(DEFAULT_PATH)?, DEV_ACCOUNT))
    }

    /// A client over HTTP to `endpoint` (`http://127.0.0.1:10000/ACCOUNT`),
    /// signing with the account's base64 key.
    pub fn http(endpoint: &str, account: &str, key: &str) -> Result<Self, Error> {
        Ok(Self::new(HttpTransport::new(endpoint, account, key)?))
    }

    /// The transport the client sends on.
    pub fn transport(&self) -> &dyn Transport {
        self.transport.as_ref()
    }

    /// The account name.
    pub fn account_name(&self) -> &str {
        self.transport.account()
    }

    /// A client for the container `name` (nothing is sent).
    pub fn container_client(&self, name: &str) -> BlobContainerClient {
        BlobContainerClient {
            service: self.clone(),
            name: name.to_string(),
        }
    }

    /// Lists the containers, following continuation markers to the end.
    pub fn list_containers(&self, o: &ListContainersOptions) -> Result<Vec<ContainerItem>, Error> {
        let mut out = Vec::new();
        let mut marker = String::new();
        loop {
            let path = list_path(
                "/?comp=list",
                o.prefix.as_deref(),
                None,
                o.include_metadata,
                o.page_size,
                &marker,
            );
            let r = Call::new("list containers", "GET", path, &[200])
                .expect(1 << 20)
                .send(self.transport())?;
            let doc = xml::parse(&r.body)?;
            if let Some(cs) = doc.child("Containers") {
                for c in cs.all("Container") {
                    let props = c.child("Properties");
                    out.push(ContainerItem {
                        name: c.text_of("Name").unwrap_or_default().to_string(),
                        etag: props
                            .and_then(|p| p.text_of("Etag"))
                            .unwrap_or_default()
                            .to_string(),
                        last_modified: props
                            .and_then(|p| p.text_of("Last-Modified"))
                            .unwrap_or_default()
                            .to_string(),
                        metadata: listing_metadata(c),
                    });
                }
            }
            marker = doc.text_of("NextMarker").unwrap_or_default().to_string();
            if marker.is_empty() {
                return Ok(out);
            }
        }
    }
}

/// A listing's path: `base` and the options of one page.
fn list_path(
    base: &str,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    include_metadata: bool,
    page_size: Option<u32>,
    marker: &str,
) -> String {
    let mut path = base.to_string();
    if let Some(p) = prefix {
        path.push_str(&format!("&prefix={}", enc_query(p)));
    }
    if let Some(d) = delimiter {
        path.push_str(&format!("&delimiter={}", enc_query(d)));
    }
    if include_metadata {
        path.push_str("&include=metadata");
    }
    if let Some(n) = page_size {
        path.push_str(&format!("&maxresults={n}"));
    }
    if !marker.is_empty() {
        path.push_str(&format!("&marker={}", enc_query(marker)));
    }
    path
}

fn listing_metadata(n: &xml::Node) -> Metadata {
    n.child("Metadata")
        .map(|m| {
            m.children
                .iter()
                .map(|c| (c.name.clone(), c.text.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// A container.
#[derive(Debug, Clone)]
pub struct BlobContainerClient {
    service: BlobServiceClient,
    name: String,
}

/// Options of [`BlobContainerClient::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateContainerOptions {
    pub metadata: Metadata,
}

/// A container's properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerProperties {
    pub etag: String,
    pub last_modified: String,
    pub metadata: Metadata,
}

/// Options of [`BlobContainerClient::list_blobs`].
#[derive(Debug, Clone, Default)]
pub struct ListBlobsOptions {
    /// Only blobs whose names start with this.
    pub prefix: Option<String>,
    /// Group names by this delimiter (usually `/`): names with it after the
    /// prefix come back once as a [`BlobListing::prefixes`] entry.
    pub delimiter: Option<String>,
    /// Return each blob's metadata too.
    pub include_metadata: bool,
    /// Blobs per request (the service's default is 5000).
    pub page_size: Option<u32>,
}

/// One blob of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    pub properties: BlobProperties,
}

/// A blob listing: the blobs, and the virtual directories when a delimiter
/// was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobListing {
    pub blobs: Vec<BlobItem>,
    pub prefixes: Vec<String>,
}

impl BlobContainerClient {
    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self) -> String {
        format!("/{}?restype=container", enc_path(&self.name))
    }

    fn t(&self) -> &dyn Transport {
        self.service.transport()
    }

    /// A client for the blob `name` in this container (nothing is sent).
    pub fn blob_client(&self, name: &str) -> BlobClient {
        BlobClient {
            container: self.clone(),
            name: name.to_string(),
        }
    }

    /// Creates the container (409 `ContainerAlreadyExists` if it exists).
    pub fn create(&self, o: &CreateContainerOptions) -> Result<(), Error> {
        let mut c = Call::new("create container", "PUT", self.path(), &[201]);
        apply_metadata(&o.metadata, &mut c.headers);
        c.send(self.t()).map(|_| ())
    }

    /// Deletes the container and its blobs.
    pub fn delete(&self, cond: &Conditions) -> Result<(), Error> {
        let mut c = Call::new("delete container", "DELETE", self.path(), &[202]);
        cond.apply(&mut c.headers);
        c.send(self.t()).map(|_| ())
    }

    /// Whether the container exists.
    pub fn exists(&self) -> Result<bool, Error> {
        match self.get_properties() {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The container's properties and metadata.
    pub fn get_properties(&self) -> Result<ContainerProperties, Error> {
        let r = Call::new("container properties", "HEAD", self.path(), &[200]).send(self.t())?;
        Ok(ContainerProperties {
            etag: r.header("etag").unwrap_or_default().to_string(),
            last_modified: r.header("last-modified").unwrap_or_default().to_string(),
            metadata: metadata_of(&r),
        })
    }

    /// Replaces the container's metadata.
    pub fn set_metadata(&self, m: &Metadata) -> Result<(), Error> {
        let mut c = Call::new(
            "set container metadata",
            "PUT",
            format!("{}&comp=metadata", self.path()),
            &[200],
        );
        apply_metadata(m, &mut c.headers);
        c.send(self.t()).map(|_| ())
    }

    /// Lists the blobs, following continuation markers to the end.
    pub fn list_blobs(&self, o: &ListBlobsOptions) -> Result<BlobListing, Error> {
        let mut out = BlobListing::default();
        let mut marker = String::new();
        loop {
            let path = list_path(
                &format!("{}&comp=list", self.path()),
                o.prefix.as_deref(),
                o.delimiter.as_deref(),
                o.include_metadata,
                o.page_size,
                &marker,
            );
            let r = Call::new("list blobs", "GET", path, &[200])
                .expect(4 << 20)
                .send(self.t())?;
            let doc = xml::parse(&r.body)?;
            if let Some(blobs) = doc.child("Blobs") {
                for n in &blobs.children {
                    match n.name.as_str() {
                        "Blob" => {
                            let mut properties = n
                                .child("Properties")
                                .map(BlobProperties::from_listing)
                                .unwrap_or_default();
                            properties.metadata = listing_metadata(n);
                            out.blobs.push(BlobItem {
                                name: n.text_of("Name").unwrap_or_default().to_string(),
                                properties,
                            });
                        }
                        "BlobPrefix" => out
                            .prefixes
                            .push(n.text_of("Name").unwrap_or_default().to_string()),
                        _ => {}
                    }
                }
            }
            marker = doc.text_of("NextMarker").unwrap_or_default().to_string();
            if marker.is_empty() {
                return Ok(out);
            }
        }
    }
}

/// A blob of any type: what all blob types share.
#[derive(Debug, Clone)]
pub struct BlobClient {
    container: BlobContainerClient,
    name: String,
}

/// Options of [`BlobClient::upload`] (a block blob).
#[derive(Clone)]
pub struct UploadOptions {
    pub http_headers: BlobHttpHeaders,
    pub metadata: Metadata,
    pub conditions: Conditions,
    /// Content up to this size goes in one Put Blob; larger content in
    /// staged blocks and a commit.
    pub single_shot_max: usize,
    /// The size of staged blocks.
    pub block_size: usize,
    /// Blocks staged at once.
    pub parallelism: usize,
    /// Told the bytes uploaded so far, as blocks complete.
    pub progress: Option<Progress>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            http_headers: BlobHttpHeaders::default(),
            metadata: Metadata::new(),
            conditions: Conditions::default(),
            single_shot_max: 16 << 20,
            block_size: 8 << 20,
            parallelism: 4,
            progress: None,
        }
    }
}

impl std::fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions")
            .field("single_shot_max", &self.single_shot_max)
            .field("block_size", &self.block_size)
            .field("parallelism", &self.parallelism)
            .finish_non_exhaustive()
    }
}

/// Options of the downloads.
#[derive(Clone, Default)]
pub struct DownloadOptions {
    /// Start offset.
    pub offset: u64,
    /// Bytes from `offset`; `None`: to the end.
    pub length: Option<u64>,
    pub conditions: Conditions,
    /// Bytes per request (default 8 MiB).
    pub chunk_size: Option<usize>,
    /// Requests at once, for [`BlobClient::download_to_file`] (default 4).
    pub parallelism: Option<usize>,
    /// Told the bytes downloaded so far.
    pub progress: Option<Progress>,
}

impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("offset", &self.offset)
            .field("length", &self.length)
            .field("conditions", &self.conditions)
            .finish_non_exhaustive()
    }
}

impl DownloadOptions {
    /// `length` bytes from `offset`.
    pub fn range(offset: u64, length: u64) -> Self {
        Self {
            offset,
            length: Some(length),
            ..Default::default()
        }
    }
}

/// The block id as sent: base64 of the caller's id.
fn block_id(id: &str) -> String {
    B64.encode(id)
}

fn block_name(b64: &str) -> String {
    B64.decode(b64)
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_else(|| b64.to_string())
}

impl BlobClient {
    /// The blob's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The container's client.
    pub fn container_client(&self) -> &BlobContainerClient {
        &self.container
    }

    fn path(&self) -> String {
        format!(
            "/{}/{}",
            enc_path(&self.container.name),
            enc_path(&self.name)
        )
    }

    fn t(&self) -> &dyn Transport {
        self.container.t()
    }

    /// Block-blob operations on this blob.
    pub fn block_blob_client(&self) -> BlockBlobClient {
        BlockBlobClient { blob: self.clone() }
    }

    /// Page-blob operations on this blob.
    pub fn page_blob_client(&self) -> PageBlobClient {
        PageBlobClient { blob: self.clone() }
    }

    /// Append-blob operations on this blob.
    pub fn append_blob_client(&self) -> AppendBlobClient {
        AppendBlobClient { blob: self.clone() }
    }

    /// A lease client with `lease_id`, or a new random id.
    pub fn lease_client(&self, lease_id: Option<&str>) -> BlobLeaseClient {
        BlobLeaseClient {
            blob: self.clone(),
            lease_id: lease_id
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        }
    }

    /// Uploads `data` as a block blob, replacing what is there: one Put Blob
    /// up to `single_shot_max`, staged blocks in parallel above it.
    pub fn upload(&self, data: &[u8], o: &UploadOptions) -> Result<WriteResult, Error> {
        let mut reader = data;
        self.upload_reader(&mut reader, o)
    }

    /// Uploads everything `reader` yields as a block blob, in bounded
    /// memory (`parallelism + 1` blocks at most). More than
    /// [`MAX_BLOCKS`] blocks fail as soon as the reader goes past them,
    /// before anything is committed.
    pub fn upload_reader(
        &self,
        reader: &mut (dyn Read + Send),
        o: &UploadOptions,
    ) -> Result<WriteResult, Error> {
        let block = o.block_size.clamp(1, crate::MAX_DATA);
        let single = o.single_shot_max.min(crate::MAX_DATA);
        let mut first = Vec::new();
        (&mut *reader)
            .take(single as u64 + 1)
            .read_to_end(&mut first)
            .map_err(|e| local("reading the data to upload", e))?;
        if first.len() <= single {
            let mut c = Call::new("upload", "PUT", self.path(), &[201])
                .header("x-ms-blob-type", "BlockBlob")
                .body(&first);
            o.http_headers.apply(&mut c.headers);
            apply_metadata(&o.metadata, &mut c.headers);
            o.conditions.apply(&mut c.headers);
            let r = c.send(self.t())?;
            if let Some(p) = &o.progress {
                p(first.len() as u64);
            }
            return Ok(WriteResult::from_response(&r));
        }
        // Staged: a reader thread (this one) feeds blocks to the workers
        // through a bounded channel.
        let done = AtomicU64::new(0);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let mut ids: Vec<String> = Vec::new();
        let bb = self.block_blob_client();
        let lease = o.conditions.lease_id.clone();
        // A rendezvous channel: a block is read only when a worker is free.
        let (tx, rx) = mpsc::sync_channel::<(String, Vec<u8>)>(0);
        let rx = Mutex::new(rx);
        std::thread::scope(|s| -> Result<(), Error> {
            for _ in 0..o.parallelism.max(1) {
                s.spawn(|| loop {
                    let next = rx.lock().ok().and_then(|r| r.recv().ok());
                    let Some((id, data)) = next else { break };
                    if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        continue;
                    }
                    match bb.stage_block(&id, &data, lease.as_deref()) {
                        Ok(()) => {
                            let n = done.fetch_add(data.len() as u64, Ordering::Relaxed)
                                + data.len() as u64;
                            if let Some(p) = &o.progress {
                                p(n);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut g) = first_error.lock() {
                                g.get_or_insert(e);
                            }
                        }
                    }
                });
            }
            let mut pending = first;
            let mut eof = false;
            loop {
                while pending.len() < block && !eof {
                    let want = block - pending.len();
                    let n = (&mut *reader)
                        .take(want as u64)
                        .read_to_end(&mut pending)
                        .map_err(|e| local("reading the data to upload", e))?;
                    eof = n == 0;
                }
                if pending.is_empty() {
                    break;
                }
                let rest = if pending.len() > block {
                    let rest = pending.split_off(block);
                    // The first read reserved room for a single shot.
                    pending.shrink_to_fit();
                    rest
                } else {
                    Vec::new()
                };
                if ids.len() == MAX_BLOCKS {
                    if let Ok(mut g) = first_error.lock() {
                        g.get_or_insert(Error::Config(format!(
                            "the data needs more than {MAX_BLOCKS} blocks of {block} bytes: use a larger block_size"
                        )));
                    }
                    break;
                }
                let id = format!("block-{:08}", ids.len());
                ids.push(id.clone());
                if tx.send((id, pending)).is_err()
                    || first_error.lock().map(|e| e.is_some()).unwrap_or(true)
                {
                    break;
                }
                pending = rest;
            }
            drop(tx);
            Ok(())
        })?;
        if let Some(e) = first_error.into_inner().ok().flatten() {
            return Err(e);
        }
        bb.commit_block_list(
            &ids,
            &CommitBlockListOptions {
                http_headers: o.http_headers.clone(),
                metadata: o.metadata.clone(),
                conditions: o.conditions.clone(),
            },
        )
    }

    /// Uploads the file at `path`.
    pub fn upload_file(
        &self,
        path: &std::path::Path,
        o: &UploadOptions,
    ) -> Result<WriteResult, Error> {
        let mut f = std::fs::File::open(path)
            .map_err(|e| local(format!("opening {}", path.display()), e))?;
        // Blocks large enough for the file to fit in MAX_BLOCKS of them.
        let len = f
            .metadata()
            .map_err(|e| local(format!("reading the size of {}", path.display()), e))?
            .len();
        let need = usize::try_from(len.div_ceil(MAX_BLOCKS as u64)).unwrap_or(usize::MAX);
        if need > o.block_size {
            let o = UploadOptions {
                block_size: need,
                ..o.clone()
            };
            return self.upload_reader(&mut f, &o);
        }
        self.upload_reader(&mut f, o)
    }

    /// Downloads the blob, or the range of `o`, into memory.
    pub fn download(&self, o: &DownloadOptions) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.download_to(&mut out, o)?;
        Ok(out)
    }

    /// Downloads into `buf` from `offset`: as many bytes as fit or as the
    /// blob has; returns how many.
    pub fn download_into(&self, buf: &mut [u8], offset: u64) -> Result<usize, Error> {
        let mut w = std::io::Cursor::new(buf);
        let cap = w.get_ref().len() as u64;
        match self.download_to(&mut w, &DownloadOptions::range(offset, cap)) {
            Ok(n) => Ok(n as usize),
            // At or past the end: nothing to read, as read(2) says.
            Err(Error::Service { status: 416, .. })
                if self.get_properties(&Conditions::default())?.content_length <= offset =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the blob, or the range of `o`, to `out` in ranged requests
    /// pinned to the ETag of the first (a blob changed midway is an error,
    /// not a mix of two versions). Returns the bytes written.
    pub fn download_to(&self, out: &mut dyn Write, o: &DownloadOptions) -> Result<u64, Error> {
        let chunk = o.chunk_size.unwrap_or(8 << 20).clamp(1, crate::MAX_DATA) as u64;
        let mut cond = o.conditions.clone();
        let mut at = o.offset;
        let mut end: Option<u64> = o.length.map(|l| o.offset.saturating_add(l));
        let mut written = 0u64;
        loop {
            let want = match end {
                Some(e) if at >= e => break,
                Some(e) => chunk.min(e - at),
                None => chunk,
            };
            let mut c = Call::new("download", "GET", self.path(), &[200, 206])
                .header("x-ms-range", format!("bytes={}-{}", at, at + want - 1))
                .expect(want as usize);
            cond.apply(&mut c.headers);
            let r = match c.send(self.t()) {
                // The range starts at the end: nothing (more) to read.
                Err(Error::Service { status: 416, .. }) if at > o.offset || o.length.is_none() => {
                    let size = self.get_properties(&cond)?.content_length;
                    if at >= size {
                        break;
                    }
                    return Err(Error::Protocol(format!(
                        "the service refused the range at {at} of a {size}-byte blob"
                    )));
                }
                r => r?,
            };
            let mut body = &r.body[..];
            if let Some(total) = r
                .header("content-range")
                .and_then(|v| v.rsplit('/').next())
                .and_then(|v| v.parse::<u64>().ok())
            {
                let blob_end = total;
                end = Some(end.map_or(blob_end, |e| e.min(blob_end)));
            } else if r.status == 200 {
                // A whole-blob answer (the server ignored the range): it
                // starts at byte 0; keep what was asked for.
                let total = body.len() as u64;
                end = Some(end.map_or(total, |e| e.min(total)));
                body = &body[usize::try_from(at.min(total)).unwrap_or(body.len())..];
            }
            if let Some(e) = end {
                let left = usize::try_from(e.saturating_sub(at)).unwrap_or(usize::MAX);
                body = &body[..body.len().min(left)];
            }
            if cond.if_match.is_none() {
                cond.if_match = r.header("etag").map(str::to_string);
            }
            if body.is_empty() {
                break;
            }
            out.write_all(body)
                .map_err(|e| local("writing the downloaded data", e))?;
            at += body.len() as u64;
            written += body.len() as u64;
            if let Some(p) = &o.progress {
                p(written);
            }
        }
        Ok(written)
    }

    /// Downloads the blob, or the range of `o`, into the file at `path`,
    /// `parallelism` ranged requests at once, each written at its place.
    /// The content goes to `PATH.partial` first and is renamed to `path`
    /// once complete and synced, so `path` never holds a partial download.
    /// Returns the bytes written.
    pub fn download_to_file(
        &self,
        path: &std::path::Path,
        o: &DownloadOptions,
    ) -> Result<u64, Error> {
        use std::os::unix::fs::FileExt;
        let props = self.get_properties(&o.conditions)?;
        let start = o.offset.min(props.content_length);
        let end = o
            .length
            .map_or(props.content_length, |l| start.saturating_add(l))
            .min(props.content_length);
        let chunk = o.chunk_size.unwrap_or(8 << 20).clamp(1, crate::MAX_DATA) as u64;
        let count = (end - start).div_ceil(chunk);
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        let file = std::fs::File::create(&partial)
            .map_err(|e| local(format!("creating {}", partial.display()), e))?;
        // Every range of the same version of the blob.
        let mut cond = o.conditions.clone();
        cond.if_match = Some(props.etag.clone());
        let next = AtomicU64::new(0);
        let done = AtomicU64::new(0);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..o.parallelism.unwrap_or(4).max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        break;
                    }
                    let at = start + i * chunk;
                    let n = chunk.min(end - at);
                    let r = self
                        .download(&DownloadOptions {
                            conditions: cond.clone(),
                            chunk_size: Some(n as usize),
                            ..DownloadOptions::range(at, n)
                        })
                        .and_then(|data| {
                            if data.len() as u64 != n {
                                return Err(Error::Protocol(format!(
                                    "asked for {n} bytes at {at}, got {}",
                                    data.len()
                                )));
                            }
                            file.write_all_at(&data, at - start)
                                .map_err(|e| local(format!("writing {}", partial.display()), e))
                        });
                    match r {
                        Ok(()) => {
                            let total = done.fetch_add(n, Ordering::Relaxed) + n;
                            if let Some(p) = &o.progress {
                                p(total);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut g) = first_error.lock() {
                                g.get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        let finish = match first_error.into_inner().ok().flatten() {
            Some(e) => Err(e),
            None => file
                .set_len(end - start)
                .and_then(|()| file.sync_all())
                .and_then(|()| std::fs::rename(&partial, path))
                .map_err(|e| local(format!("finishing {}", path.display()), e)),
        };
        if finish.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        finish.map(|()| end - start)
    }

    /// The blob's properties and metadata (HEAD).
    pub fn get_properties(&self, cond: &Conditions) -> Result<BlobProperties, Error> {
        let mut c = Call::new("blob properties", "HEAD", self.path(), &[200]);
        cond.apply(&mut c.headers);
        Ok(BlobProperties::from_response(&c.send(self.t())?))
    }

    /// Whether the blob exists.
    pub fn exists(&self) -> Result<bool, Error> {
        match self.get_properties(&Conditions::default()) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces the blob's HTTP properties (all of them: unset ones are
    /// cleared, as the service does).
    pub fn set_http_headers(
        &self,
        h: &BlobHttpHeaders,
        cond: &Conditions,
    ) -> Result<WriteResult, Error> {
        let mut c = Call::new(
            "set blob properties",
            "PUT",
            format!("{}?comp=properties", self.path()),
            &[200],
        );
        h.apply(&mut c.headers);
        cond.apply(&mut c.headers);
        Ok(WriteResult::from_response(&c.send(self.t())?))
    }

    /// Replaces the blob's metadata.
    pub fn set_metadata(&self, m: &Metadata, cond: &Conditions) -> Result<WriteResult, Error> {
        let mut c = Call::new(
            "set blob metadata",
            "PUT",
            format!("{}?comp=metadata", self.path()),
            &[200],
        );
        apply_metadata(m, &mut c.headers);
        cond.apply(&mut c.headers);
        Ok(WriteResult::from_response(&c.send(self.t())?))
    }

    /// Deletes the blob.
    pub fn delete(&self, cond: &Conditions) -> Result<(), Error> {
        let mut c = Call::new("delete blob", "DELETE", self.path(), &[202]);
        cond.apply(&mut c.headers);
        c.send(self.t()).map(|_| ())
    }
}

/// Options of [`BlockBlobClient::commit_block_list`].
#[derive(Debug, Clone, Default)]
pub struct CommitBlockListOptions {
    pub http_headers: BlobHttpHeaders,
    pub metadata: Metadata,
    pub conditions: Conditions,
}

/// Which blocks [`BlockBlobClient::get_block_list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockListType {
    Committed,
    Uncommitted,
    #[default]
    All,
}

/// One block of a block list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The id as given to `stage_block`.
    pub name: String,
    pub size: u64,
}

/// A block blob's blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockList {
    pub committed: Vec<Block>,
    pub uncommitted: Vec<Block>,
}

/// Block-blob operations. Block ids are any strings of equal length within
/// a blob; the library base64-encodes them on the wire and decodes them in
/// block lists.
#[derive(Debug, Clone)]
pub struct BlockBlobClient {
    blob: BlobClient,
}

impl BlockBlobClient {
    /// Stages `data` as the uncommitted block `id`.
    pub fn stage_block(&self, id: &str, data: &[u8], lease_id: Option<&str>) -> Result<(), Error> {
        let mut c = Call::new(
            "stage block",
            "PUT",
            format!(
                "{}?comp=block&blockid={}",
                self.blob.path(),
                enc_query(&block_id(id))
            ),
            &[201],
        )
        .body(data);
        if let Some(l) = lease_id {
            c = c.header("x-ms-lease-id", l);
        }
        c.send(self.blob.t()).map(|_| ())
    }

    /// Makes the blob the blocks `ids`, in order (the latest version of
    /// each, staged or committed).
    pub fn commit_block_list(
        &self,
        ids: &[String],
        o: &CommitBlockListOptions,
    ) -> Result<WriteResult, Error> {
        let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in ids {
            body.push_str(&format!("<Latest>{}</Latest>", xml::esc(&block_id(id))));
        }
        body.push_str("</BlockList>");
        let mut c = Call::new(
            "commit block list",
            "PUT",
            format!("{}?comp=blocklist", self.blob.path()),
            &[201],
        )
        .body(body.as_bytes());
        o.http_headers.apply(&mut c.headers);
        apply_metadata(&o.metadata, &mut c.headers);
        o.conditions.apply(&mut c.headers);
        Ok(WriteResult::from_response(&c.send(self.blob.t())?))
    }

    /// The blob's committed and/or uncommitted blocks.
    pub fn get_block_list(&self, which: BlockListType) -> Result<BlockList, Error> {
        let kind = match which {
            BlockListType::Committed => "committed",
            BlockListType::Uncommitted => "uncommitted",
            BlockListType::All => "all",
        };
        let r = Call::new(
            "get block list",
            "GET",
            format!("{}?comp=blocklist&blocklisttype={kind}", self.blob.path()),
            &[200],
        )
        .expect(1 << 20)
        .send(self.blob.t())?;
        let doc = xml::parse(&r.body)?;
        let blocks = |tag: &str| -> Vec<Block> {
            doc.child(tag)
                .map(|l| {
                    l.all("Block")
                        .map(|b| Block {
                            name: block_name(b.text_of("Name").unwrap_or_default()),
                            size: b.text_of("Size").and_then(|s| s.parse().ok()).unwrap_or(0),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(BlockList {
            committed: blocks("CommittedBlocks"),
            uncommitted: blocks("UncommittedBlocks"),
        })
    }
}

/// Options of [`PageBlobClient::create`].
#[derive(Debug, Clone, Default)]
pub struct CreatePageBlobOptions {
    pub http_headers: BlobHttpHeaders,
    pub metadata: Metadata,
    pub sequence_number: Option<u64>,
    pub conditions: Conditions,
}

/// A range of written pages, `start..=end` in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    pub start: u64,
    /// Inclusive, as the service reports it.
    pub end: u64,
}

/// Page-blob operations: 512-byte pages, offsets and lengths in multiples
/// of 512.
#[derive(Debug, Clone)]
pub struct PageBlobClient {
    blob: BlobClient,
}

impl PageBlobClient {
    /// Creates (or replaces) an empty page blob of `size` bytes.
    pub fn create(&self, size: u64, o: &CreatePageBlobOptions) -> Result<WriteResult, Error> {
        let mut c = Call::new("create page blob", "PUT", self.blob.path(), &[201])
            .header("x-ms-blob-type", "PageBlob")
            .header("x-ms-blob-content-length", size.to_string());
        if let Some(n) = o.sequence_number {
            c = c.header("x-ms-blob-sequence-number", n.to_string());
        }
        o.http_headers.apply(&mut c.headers);
        apply_metadata(&o.metadata, &mut c.headers);
        o.conditions.apply(&mut c.headers);
        Ok(WriteResult::from_response(&c.send(self.blob.t())?))
    }

    fn page_write(
        &self,
        what: &str,
        mode: &str,
        offset: u64,
        len: u64,
        data: &[u8],
        cond: &Conditions,
    ) -> Result<WriteResult, Error> {
        if len == 0 {
            return Err(Error::Config(format!("{what}: an empty range")));
        }
        let mut c = Call::new(
            what,
            "PUT",
            format!("{}?comp=page", self.blob.path()),
            &[201],
        )
        .header("x-ms-page-write", mode)
        .header(
            "x-ms-range",
            format!("bytes={}-{}", offset, offset + len - 1),
        )
        .body(data);
        cond.apply(&mut c.headers);
        Ok(WriteResult::from_response(&c.send(self.blob.t())?))
    }

    /// Writes `data` at `offset`.
    pub fn upload_pages(
        &self,
        offset: u64,
        data: &[u8],
        cond: &Conditions,
    ) -> Result<WriteResult, Error> {
        self.page_write(
            "upload pages",
            "update",
            offset,
            data.len() as u64,
            data,
            cond,
        )
    }

    /// Clears (zeroes, unallocates) `len` bytes at `offset`.
    pub fn clear_pages(
        &self,
        offset: u64,
        len: u64,
        cond: &Conditions,
    ) -> Result<WriteResult, Error> {
        self.page_write("clear pages", "clear", offset, len, b"", cond)
    }

    /// The written ranges.
    pub fn get_page_ranges(&self, cond: &Conditions) -> Result<Vec<PageRange>, Error> {
        let mut c = Call::new(
            "get page ranges",
            "GET",
            format!("{}?comp=pagelist", self.blob.path()),
            &[200],
        )
        .expect(1 << 20);
        cond.apply(&mut c.headers);
        let r = c.send(self.blob.t())?;
        let doc = xml::parse(&r.body)?;
        Ok(doc
            .all("PageRange")
            .map(|p| PageRange {
                start: p.text_of("Start").and_then(|v| v.parse().ok()).unwrap_or(0),
                end: p.text_of("End").and_then(|v| v.parse().ok()).unwrap_or(0),
            })
            .collect())
    }
}

/// Options of [`AppendBlobClient::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateAppendBlobOptions {
    pub http_headers: BlobHttpHeaders,
    pub metadata: Metadata,
    pub conditions: Conditions,
}

/// Options of [`AppendBlobClient::append_block`].
#[derive(Debug, Clone, Default)]
pub struct AppendBlockOptions {
    /// Only if the blob's length is this (412 `AppendPositionConditionNotMet`).
    pub append_position: Option<u64>,
    /// Only if the blob stays at most this long (412 `MaxBlobSizeConditionNotMet`).
    pub max_size: Option<u64>,
    pub conditions: Conditions,
}

/// What [`AppendBlobClient::append_block`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendResult {
    pub etag: String,
    /// Where the block went.
    pub append_offset: u64,
    pub committed_block_count: u64,
}

/// Append-blob operations.
#[derive(Debug, Clone)]
pub struct AppendBlobClient {
    blob: BlobClient,
}

impl AppendBlobClient {
    /// Creates (or replaces) an empty append blob.
    pub fn create(&self, o: &CreateAppendBlobOptions) -> Result<WriteResult, Error> {
        let mut c = Call::new("create append blob", "PUT", self.blob.path(), &[201])
            .header("x-ms-blob-type", "AppendBlob");
        o.http_headers.apply(&mut c.headers);
        apply_metadata(&o.metadata, &mut c.headers);
        o.conditions.apply(&mut c.headers);
        Ok(WriteResult::from_response(&c.send(self.blob.t())?))
    }

    /// Appends `data` as one block.
    pub fn append_block(&self, data: &[u8], o: &AppendBlockOptions) -> Result<AppendResult, Error> {
        let mut c = Call::new(
            "append block",
            "PUT",
            format!("{}?comp=appendblock", self.blob.path()),
            &[201],
        )
        .body(data);
        if let Some(p) = o.append_position {
            c = c.header("x-ms-blob-condition-appendpos", p.to_string());
        }
        if let Some(m) = o.max_size {
            c = c.header("x-ms-blob-condition-maxsize", m.to_string());
        }
        o.conditions.apply(&mut c.headers);
        let r = c.send(self.blob.t())?;
        let num = |k: &str| r.header(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(AppendResult {
            etag: r.header("etag").unwrap_or_default().to_string(),
            append_offset: num("x-ms-blob-append-offset"),
            committed_block_count: num("x-ms-blob-committed-block-count"),
        })
    }
}

/// A lease on a blob: while held, writes and deletes need the lease id.
#[derive(Debug, Clone)]
pub struct BlobLeaseClient {
    blob: BlobClient,
    lease_id: String,
}

impl BlobLeaseClient {
    /// The lease id this client acts with.
    pub fn lease_id(&self) -> &str {
        &self.lease_id
    }

    fn call(&self, action: &str, ok: &'static [u16]) -> Call<'static> {
        let what: &'static str = match action {
            "acquire" => "acquire lease",
            "renew" => "renew lease",
            "change" => "change lease",
            "release" => "release lease",
            _ => "break lease",
        };
        let action: &'static str = match action {
            "acquire" => "acquire",
            "renew" => "renew",
            "change" => "change",
            "release" => "release",
            _ => "break",
        };
        Call::new(what, "PUT", format!("{}?comp=lease", self.blob.path()), ok)
            .header("x-ms-lease-action", action)
    }

    /// Acquires the lease for `duration` seconds (15 to 60), or for ever.
    pub fn acquire(&self, duration: Option<u32>) -> Result<(), Error> {
        let d = duration.map_or("-1".to_string(), |d| d.to_string());
        self.call("acquire", &[201])
            .header("x-ms-lease-duration", d)
            .header("x-ms-proposed-lease-id", self.lease_id.clone())
            .send(self.blob.t())
            .map(|_| ())
    }

    /// Renews the lease (restarts its timer).
    pub fn renew(&self) -> Result<(), Error> {
        self.call("renew", &[200])
            .header("x-ms-lease-id", self.lease_id.clone())
            .send(self.blob.t())
            .map(|_| ())
    }

    /// Changes the lease's id to `new_id`; this client then uses it.
    pub fn change(&mut self, new_id: &str) -> Result<(), Error> {
        self.call("change", &[200])
            .header("x-ms-lease-id", self.lease_id.clone())
            .header("x-ms-proposed-lease-id", new_id)
            .send(self.blob.t())?;
        self.lease_id = new_id.to_string();
        Ok(())
    }

    /// Releases the lease.
    pub fn release(&self) -> Result<(), Error> {
        self.call("release", &[200])
            .header("x-ms-lease-id", self.lease_id.clone())
            .send(self.blob.t())
            .map(|_| ())
    }

    /// Breaks the lease (any id): now, or after `period` seconds. Returns
    /// the seconds until it is broken.
    pub fn break_lease(&self, period: Option<u32>) -> Result<u64, Error> {
        let mut c = self.call("break", &[202]);
        if let Some(p) = period {
            c = c.header("x-ms-lease-break-period", p.to_string());
        }
        let r = c.send(self.blob.t())?;
        Ok(r.header("x-ms-lease-time")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

/// A local file or stream error, naming what was being done.
fn local(what: impl Into<String>, source: std::io::Error) -> Error {
    Error::Local {
        what: what.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_but_slashes_kept() {
        assert_eq!(enc_path("dir/a b+c?.txt"), "dir/a%20b%2Bc%3F.txt");
        assert_eq!(enc_query("YQ==/+"), "YQ%3D%3D%2F%2B");
    }

    #[test]
    fn block_ids_round_trip() {
        assert_eq!(block_name(&block_id("block-00000001")), "block-00000001");
        assert_eq!(block_name("not base64!"), "not base64!");
    }

    #[test]
    fn conditions_become_headers() {
        let mut h = Vec::new();
        Conditions {
            if_match: Some("\"e\"".into()),
            lease_id: Some("L".into()),
            if_unmodified_since: Some(std::time::UNIX_EPOCH),
            ..Default::default()
        }
        .apply(&mut h);
        assert_eq!(
            h,
            vec![
                ("If-Match".to_string(), "\"e\"".to_string()),
                (
                    "If-Unmodified-Since".to_string(),
                    "Thu, 01 Jan 1970 00:00:00 GMT".to_string()
                ),
                ("x-ms-lease-id".to_string(), "L".to_string()),
            ]
        );
    }
}
