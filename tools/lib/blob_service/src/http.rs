// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Door-independent request and response types, request-head parsing and response-head
//! serialization (HTTP/1.1 text framing, parsed with `httparse`).

use std::io::Read;

use crate::error::{ErrorCode, SResult, ServiceError};

/// Largest request head (request line + headers + blank line) either door accepts.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields either door accepts: room for Azure's 8 KiB of
/// metadata even as hundreds of short `x-ms-meta-*` headers.
pub const MAX_HEADERS: usize = 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method, as sent (upper case expected).
    pub method: String,
    /// The path part of the target, still percent-encoded.
    pub raw_path: String,
    /// The query part of the target (without `?`), still percent-encoded.
    pub raw_query: String,
    /// Header fields; names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    /// The header names as sent (same order as `headers`): metadata names keep their case.
    pub original_names: Vec<String>,
}

impl RequestHead {
    /// First value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parsed `Content-Length`, if present.
    pub fn content_length(&self) -> SResult<Option<u64>> {
        match self.header("content-length") {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ServiceError::with_detail(ErrorCode::InvalidHeaderValue, "Content-Length")
            }),
        }
    }

    /// Decoded query parameters.
    pub fn query(&self) -> Vec<(String, String)> {
        parse_query(&self.raw_query)
    }
}

pub use hv_azure_blob_proto::shared_key::{parse_query, pct_decode};

/// Why a head could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// More bytes are needed (stream door only).
    Partial,
    /// The head is not valid HTTP/1.1.
    Malformed(String),
    /// The head exceeds [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`].
    TooLarge,
}

impl HeadError {
    /// The Azure-style error a client gets for this head error.
    pub fn to_service_error(&self) -> ServiceError {
        match self {
            HeadError::Partial => ServiceError::with_detail(ErrorCode::InvalidInput, "truncated"),
            HeadError::Malformed(d) => {
                ServiceError::with_detail(ErrorCode::InvalidInput, d.clone())
            }
            HeadError::TooLarge => ServiceError::new(ErrorCode::RequestHeaderFieldsTooLarge),
        }
    }
}

/// Parses a request head from the start of `buf`. Returns the head and its length in bytes
/// (including the terminating blank line).
pub fn parse_head(buf: &[u8]) -> Result<(RequestHead, usize), HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            return Err(if buf.len() >= MAX_HEAD_BYTES {
                HeadError::TooLarge
            } else {
                HeadError::Partial
            })
        }
    };
    if len > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    if req.version != Some(1) {
        return Err(HeadError::Malformed("only HTTP/1.1 is served".into()));
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    // Absolute form: keep only the path and query.
    let target = match target.find("://") {
        Some(i) => {
            let rest = &target[i + 3..];
            &rest[rest.find('/').unwrap_or(rest.len())..]
        }
        None => target,
    };
    if !target.starts_with('/') {
        return Err(HeadError::Malformed("request target must be a path".into()));
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::with_capacity(req.headers.len());
    let mut original_names = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        original_names.push(h.name.to_string());
        let v = std::str::from_utf8(h.value)
            .map_err(|_| HeadError::Malformed(format!("header {} is not UTF-8", h.name)))?;
        headers.push((h.name.to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok((
        RequestHead {
            method,
            raw_path: raw_path.to_string(),
            raw_query: raw_query.to_string(),
            headers,
            original_names,
        },
        len,
    ))
}

/// A request as the engine sees it: a head plus a body reader of `body_len` bytes.
pub struct Request<'a> {
    /// The head.
    pub head: RequestHead,
    /// Body bytes available from `body` (the announced Content-Length, or `data_valid`).
    pub body_len: Option<u64>,
    /// The body stream; the engine reads at most `body_len` bytes.
    pub body: &'a mut dyn Read,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("head", &self.head)
            .field("body_len", &self.body_len)
            .finish()
    }
}

/// A response body.
pub enum Body {
    /// No body.
    Empty,
    /// An in-memory body.
    Bytes(Vec<u8>),
    /// A streamed body of exactly `len` bytes.
    Reader {
        /// Length in bytes.
        len: u64,
        /// The stream.
        reader: Box<dyn Read + Send>,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => write!(f, "Empty"),
            Body::Bytes(b) => write!(f, "Bytes({})", b.len()),
            Body::Reader { len, .. } => write!(f, "Reader({len})"),
        }
    }
}

impl Body {
    /// Body length.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Reader { len, .. } => *len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response: status, header fields (the engine always sets `Content-Length`) and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// Body; empty for HEAD even when `Content-Length` is not 0.
    pub body: Body,
}

impl Response {
    /// A response without body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// Adds a header field.
    pub fn header(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// First value of a header (case-insensitive name).
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serializes the status line and header fields, ending with the blank line.
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(
            format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status)).as_bytes(),
        );
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// The reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        416 => "Requested Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_head_and_splits_target() {
        let raw = b"PUT /acct/c/a%20b?comp=block&blockid=QQ%3D%3D HTTP/1.1\r\nX-Ms-Version: 2021-10-04 \r\nContent-Length: 3\r\n\r\nabc";
        let (h, n) = parse_head(raw).unwrap();
        assert_eq!(n, raw.len() - 3);
        assert_eq!(h.method, "PUT");
        assert_eq!(h.raw_path, "/acct/c/a%20b");
        assert_eq!(h.header("x-ms-version"), Some("2021-10-04"));
        assert_eq!(h.content_length().unwrap(), Some(3));
        assert_eq!(
            h.query(),
            vec![
                ("comp".to_string(), "block".to_string()),
                ("blockid".to_string(), "QQ==".to_string())
            ]
        );
    }

    #[test]
    fn rejects_garbage_partial_and_oversized_heads() {
        assert!(matches!(
            parse_head(b"GARBAGE\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n"), Err(HeadError::Partial));
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            big.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        big.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&big), Err(HeadError::TooLarge));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.0\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }
}
