// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The VSC door: one synchronous exchange per request the guest sends through
//! `/dev/azure_blob` (request buffer, response buffer, data buffer).
//!
//! Wire contract (documented in `Documentation/tools/blob_service.rst`):
//!
//! * The request buffer holds exactly one HTTP/1.1 request head (request line, header fields,
//!   blank line), no body. The request body is the first `data_valid` bytes of the data buffer.
//!   A `Content-Length`, when present, must equal `data_valid`.
//! * On success `status` is 0: the response buffer holds the HTTP/1.1 response head
//!   (`response_len` bytes) and the data buffer holds the response body, exactly as many bytes as
//!   the head's `Content-Length` (none for HEAD). That holds for every HTTP status, errors
//!   included.
//! * A non-zero `status` means the exchange failed (see the constants): nothing was written,
//!   except with `STATUS_DATA_TOO_SMALL`, where the whole response head is (its `Content-Length`
//!   is the data buffer size needed) and no body byte.

use std::io::Read;

use crate::engine::{error_response, BlobService, Door};
use crate::http::{parse_head, Body, HeadError, Request, Response};

/// `HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER)`: malformed framing (the request buffer is not
/// one complete HTTP/1.1 head, `Content-Length` disagrees with `data_valid`, or
/// `Transfer-Encoding` is used).
pub const STATUS_INVALID_FRAMING: u32 = hv_azure_blob_proto::AZ_BLOB_STATUS_INVALID_ARG;
/// `HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER)`: the response head does not fit the
/// response buffer; `response_len` is the size needed.
pub const STATUS_RESPONSE_TOO_SMALL: u32 = hv_azure_blob_proto::AZ_BLOB_STATUS_BUFFER_TOO_SMALL;
/// `HRESULT_FROM_WIN32(ERROR_MORE_DATA)`: the response body does not fit the data buffer;
/// `response_len` is the size of the response head, which is returned in full so that its
/// `Content-Length` tells the data buffer size needed. No body byte is returned.
pub const STATUS_DATA_TOO_SMALL: u32 = hv_azure_blob_proto::AZ_BLOB_STATUS_DATA_TOO_SMALL;
/// `HRESULT_FROM_WIN32(WAIT_TIMEOUT)`: the host gave up (reserved for the simulator, which owns
/// the request timeout; this library never returns it).
pub const STATUS_HOST_TIMEOUT: u32 = hv_azure_blob_proto::AZ_BLOB_STATUS_TIMEOUT;
/// `HRESULT_FROM_WIN32(ERROR_INTERNAL_ERROR)`: the body could not be produced.
pub const STATUS_INTERNAL: u32 = hv_azure_blob_proto::AZ_BLOB_STATUS_INTERNAL_ERROR;

/// The result of one VSC exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VscOutcome {
    /// 0 when an HTTP response was produced; otherwise one of the `STATUS_*` values.
    pub status: u32,
    /// Bytes written to the response buffer (status 0 or [`STATUS_DATA_TOO_SMALL`]), or the
    /// size needed ([`STATUS_RESPONSE_TOO_SMALL`]).
    pub response_len: u32,
    /// The response head to copy into the response buffer (`response_len` bytes, or empty).
    pub response: Vec<u8>,
    /// The response body to copy into the data buffer.
    pub data: Vec<u8>,
}

impl VscOutcome {
    fn failed(status: u32, response_len: u32) -> Self {
        Self {
            status,
            response_len,
            ..Self::default()
        }
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl BlobService {
    /// Serves one request of the VSC door.
    ///
    /// `request_head` is the request buffer (`request_len` bytes), `data_in` the first
    /// `data_valid` bytes of the data buffer, `response_capacity` the response buffer size and
    /// `data_capacity` the data buffer size (`data_len`). Synchronous: it returns when the
    /// operation is complete (and, with a persistent storage, durable).
    pub fn vsc_exchange(
        &self,
        request_head: &[u8],
        data_in: &[u8],
        response_capacity: usize,
        data_capacity: usize,
    ) -> VscOutcome {
        if data_in.len() > data_capacity {
            return VscOutcome::failed(STATUS_INVALID_FRAMING, 0);
        }
        let resp = match parse_head(request_head) {
            Ok((head, n)) if n == request_head.len() => {
                if head.header("transfer-encoding").is_some() {
                    return VscOutcome::failed(STATUS_INVALID_FRAMING, 0);
                }
                let mut body = data_in;
                let body_len = Some(data_in.len() as u64);
                match head.content_length() {
                    Ok(Some(cl)) if cl != data_in.len() as u64 => {
                        return VscOutcome::failed(STATUS_INVALID_FRAMING, 0)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let r = error_response(&e, &uuid::Uuid::new_v4().to_string(), false);
                        return self.encode(self.finish(r), response_capacity, data_capacity);
                    }
                }
                self.handle(
                    Request {
                        head,
                        body_len,
                        body: &mut body,
                    },
                    Door::Vsc,
                )
            }
            // Bytes after the blank line, or no blank line at all: not one head.
            Ok(_) | Err(HeadError::Partial) => {
                return VscOutcome::failed(STATUS_INVALID_FRAMING, 0)
            }
            Err(e) => self.finish(error_response(
                &e.to_service_error(),
                &uuid::Uuid::new_v4().to_string(),
                false,
            )),
        };
        self.encode(resp, response_capacity, data_capacity)
    }

    fn finish(&self, mut r: Response) -> Response {
        if r.get_header("content-length").is_none() {
            let n = r.body.len();
            r.header("Content-Length", n.to_string());
        }
        r.header("x-ms-request-id", uuid::Uuid::new_v4().to_string());
        r.header("x-ms-version", crate::engine::DEFAULT_VERSION);
        r.header(
            "Date",
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        );
        r
    }

    fn encode(&self, resp: Response, response_capacity: usize, data_capacity: usize) -> VscOutcome {
        let head = resp.head_bytes();
        if head.len() > response_capacity {
            return VscOutcome::failed(STATUS_RESPONSE_TOO_SMALL, len32(head.len()));
        }
        let body_len = resp.body.len();
        if body_len > data_capacity as u64 {
            return VscOutcome {
                status: STATUS_DATA_TOO_SMALL,
                response_len: len32(head.len()),
                response: head,
                data: Vec::new(),
            };
        }
        let data = match resp.body {
            Body::Empty => Vec::new(),
            Body::Bytes(b) => b,
            Body::Reader { len, mut reader } => {
                let mut v = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                match reader.read_to_end(&mut v) {
                    Ok(_) if v.len() as u64 == len => v,
                    _ => return VscOutcome::failed(STATUS_INTERNAL, 0),
                }
            }
        };
        VscOutcome {
            status: 0,
            response_len: len32(head.len()),
            response: head,
            data,
        }
    }
}
