// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The blob-service handler: the VSC door of the Azure Blob service engine
//! behind the VSP, so a guest speaks Blob REST through /dev/azure_blob.

use crate::vsp::{Reply, Request, RequestHandler};
use azure_blob_service::BlobService;

/// Serves each request with [`BlobService::vsc_exchange`]: the request
/// buffer is an HTTP/1.1 request head, the data buffer carries the bodies.
#[derive(Debug, Clone)]
pub struct BlobHandler {
    service: BlobService,
}

impl BlobHandler {
    /// A handler on `service` (clones share the service's store).
    pub fn new(service: BlobService) -> Self {
        Self { service }
    }
}

impl RequestHandler for BlobHandler {
    fn handle(&mut self, req: &Request<'_>) -> Reply {
        let out = self.service.vsc_exchange(
            req.request,
            req.data_in,
            req.response_capacity as usize,
            req.data_capacity as usize,
        );
        Reply {
            status: out.status,
            response: out.response,
            response_len: out.response_len,
            data: out.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_blob_service::{Config, MemoryStorage};
    use std::sync::Arc;

    fn exchange(h: &mut BlobHandler, head: &str, body: &[u8], data_cap: u32) -> Reply {
        h.handle(&Request {
            transaction_id: [0; 16],
            timeout_ms: 0,
            request: head.as_bytes(),
            data_in: body,
            response_capacity: 4096,
            data_capacity: data_cap,
        })
    }

    #[test]
    fn blob_round_trip_through_the_handler() {
        let svc = BlobService::new(Arc::new(MemoryStorage::new()), Config::default());
        let mut h = BlobHandler::new(svc);
        let r = exchange(
            &mut h,
            "PUT /devstoreaccount1/demo?restype=container HTTP/1.1\r\nx-ms-version: 2021-10-04\r\n\r\n",
            b"",
            0,
        );
        assert_eq!(r.status, 0);
        assert!(
            r.response.starts_with(b"HTTP/1.1 201"),
            "{}",
            String::from_utf8_lossy(&r.response)
        );
        let body = b"hello, blob";
        let head = format!(
            "PUT /devstoreaccount1/demo/hello.txt HTTP/1.1\r\nx-ms-version: 2021-10-04\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let r = exchange(&mut h, &head, body, body.len() as u32);
        assert!(
            r.response.starts_with(b"HTTP/1.1 201"),
            "{}",
            String::from_utf8_lossy(&r.response)
        );
        let r = exchange(
            &mut h,
            "GET /devstoreaccount1/demo/hello.txt HTTP/1.1\r\nx-ms-version: 2021-10-04\r\nx-ms-range: bytes=7-10\r\n\r\n",
            b"",
            64,
        );
        assert_eq!(r.status, 0);
        assert!(
            r.response.starts_with(b"HTTP/1.1 206"),
            "{}",
            String::from_utf8_lossy(&r.response)
        );
        assert_eq!(r.data, b"blob");
    }
}
