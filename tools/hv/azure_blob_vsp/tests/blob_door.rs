// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The blob service's request script through the VSC door as the guest uses
//! it: every request is laid out in guest memory by the driver's rules, sent
//! as a GPA-direct packet on the VMBus ring, served by the VSP's blob handler
//! and answered in the guest's pages and the completion.

mod common;

use azure_blob_service::conformance::{script::script, RawResponse, RunReport, Runner, Transport};
use azure_blob_service::{BlobService, Config, MemoryStorage};
use azure_blob_vsp::blob::BlobHandler;
use common::*;
use std::sync::Arc;

/// Pages of each buffer: 32 + 16 + 8144 = the 8192-page limit.
const REQUEST_PAGES: u32 = 32;
const RESPONSE_PAGES: u32 = 16;
const DATA_PAGES: u32 = 8144;

struct GuestDoor {
    g: Guest,
    chan: Chan,
    request: Buf,
    response: Buf,
    data: Buf,
    next_id: u64,
    auth: bool,
}

impl GuestDoor {
    fn new(svc: BlobService) -> Self {
        let auth = svc.config().vsc_shared_key;
        let mut g = Guest::new(160 << 20);
        let chan = channel_with(&mut g, 31, 31, Box::new(BlobHandler::new(svc)));
        let request = Buf::new(&mut g, 0, REQUEST_PAGES * PAGE as u32);
        let response = Buf::new(&mut g, 0, RESPONSE_PAGES * PAGE as u32);
        let data = Buf::new(&mut g, 0, DATA_PAGES * PAGE as u32);
        Self {
            g,
            chan,
            request,
            response,
            data,
            next_id: 1,
            auth,
        }
    }
}

impl Transport for GuestDoor {
    fn exchange(&mut self, head: &[u8], body: &[u8], is_head: bool) -> Result<RawResponse, String> {
        let ram = self.g.ram.clone();
        if head.len() > self.request.len as usize || body.len() > self.data.len as usize {
            return Err(format!(
                "request too large for the guest buffers: {} + {}",
                head.len(),
                body.len()
            ));
        }
        self.request.write(&ram, head);
        self.data.write(&ram, body);
        let request = Buf {
            len: head.len() as u32,
            ..self.request.clone()
        };
        let dr = DriverRequest::new(
            Some(self.data.clone()),
            body.len() as u32,
            request,
            self.response.clone(),
        );
        let id = self.next_id;
        self.next_id += 1;
        let c = self.chan.round_trip(&dr.packet(id));
        if c.trans_id != id {
            return Err(format!("completion for id {} instead of {id}", c.trans_id));
        }
        if c.status != 0 {
            return Err(format!("VSC status {:#010x}", c.status));
        }
        let head = self.response.read(&ram, c.response_len as usize);
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Response::new(&mut fields);
        match r.parse(&head).map_err(|e| e.to_string())? {
            httparse::Status::Complete(n) if n == head.len() => {}
            _ => return Err("the response buffer does not hold exactly one response head".into()),
        }
        let mut out = RawResponse {
            status: r.code.unwrap_or(0),
            headers: r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            body: Vec::new(),
        };
        let cl: usize = out
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or("response without Content-Length")?;
        if !is_head {
            out.body = self.data.read(&ram, cl);
        }
        Ok(out)
    }

    fn verifies_auth(&self) -> bool {
        self.auth
    }
}

fn check(name: &str, rep: &RunReport) {
    eprintln!(
        "{name}: {} requests, {} skipped, {} failures",
        rep.sent,
        rep.skipped,
        rep.failures.len()
    );
    for f in &rep.failures {
        eprintln!("  {f}");
    }
    assert!(rep.sent >= 150, "only {} requests", rep.sent);
    assert!(rep.failures.is_empty(), "{} failures", rep.failures.len());
}

#[test]
fn request_script_through_guest_memory_and_the_vmbus_ring() {
    let mut door = GuestDoor::new(BlobService::in_memory());
    let rep = Runner::new().run(&script(), &mut door);
    check("guest door", &rep);
    assert!(rep.skipped > 0, "authorization steps need a configured key");
}

#[test]
fn request_script_with_shared_key_through_guest_memory() {
    let config = Config {
        vsc_shared_key: true,
        ..Config::default()
    };
    let mut door = GuestDoor::new(BlobService::new(Arc::new(MemoryStorage::new()), config));
    let rep = Runner::new().run(&script(), &mut door);
    check("guest door + key", &rep);
    assert_eq!(rep.skipped, 0);
}
