// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Blob REST over the VSC door: the request buffer carries an HTTP/1.1
//! request head, the data buffer the request body and then the response
//! body; the response buffer receives the response head. A non-zero host
//! status means the exchange itself failed (see Documentation).

use crate::{Device, Error, Exchange};

/// The Azurite development account, the simulator's default.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// The REST API version this client speaks.
pub const X_MS_VERSION: &str = "2021-10-04";

use hv_azure_blob_proto::{
    AZ_BLOB_STATUS_BUFFER_TOO_SMALL as STATUS_RESPONSE_TOO_SMALL,
    AZ_BLOB_STATUS_DATA_TOO_SMALL as STATUS_DATA_TOO_SMALL,
};
/// The largest data buffer one request may carry (8192 pages, less the
/// request and response pages and a page of misalignment each).
const MAX_DATA: usize = (8192 - 16) * 4096;

/// One Blob REST request.
#[derive(Debug, Clone)]
pub struct RestRequest<'a> {
    /// `GET`, `PUT`, `HEAD`, `DELETE`, ...
    pub method: &'a str,
    /// The path after the account, with its query: `/container/blob?comp=...`.
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

/// A Blob REST client on `/dev/azure_blob`.
#[derive(Debug)]
pub struct VscClient {
    device: Device,
    account: String,
}

impl VscClient {
    /// A client for `account` on an open device.
    pub fn new(device: Device, account: &str) -> Self {
        Self {
            device,
            account: account.to_string(),
        }
    }

    /// Sends one request; `expected_body` sizes the data buffer for the
    /// response body (it grows and retries once if the host says it must).
    pub fn send(&self, req: &RestRequest<'_>, expected_body: usize) -> Result<RestResponse, Error> {
        let mut head = format!(
            "{} /{}{} HTTP/1.1\r\nHost: {}.blob.core.windows.net\r\nx-ms-version: {}\r\nx-ms-date: {}\r\nContent-Length: {}\r\n",
            req.method,
            self.account,
            req.path,
            self.account,
            X_MS_VERSION,
            httpdate::fmt_http_date(std::time::SystemTime::now()),
            req.body.len()
        );
        for (k, v) in req.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
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
                    response_cap = reply.response_len as usize;
                }
                STATUS_DATA_TOO_SMALL => {
                    let n = (reply.response_len as usize).min(response.len());
                    let head = parse(&response[..n], Vec::new())?;
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

/// Parses a response head; the body is the first Content-Length bytes of `data`.
fn parse(head: &[u8], mut data: Vec<u8>) -> Result<RestResponse, Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(Error::Protocol("incomplete response head".into()))
        }
        Err(e) => return Err(Error::Protocol(e.to_string())),
    }
    let mut out = RestResponse {
        status: r.code.unwrap_or(0),
        ..Default::default()
    };
    for h in r.headers.iter() {
        out.headers.push((
            h.name.to_string(),
            String::from_utf8_lossy(h.value).into_owned(),
        ));
    }
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
