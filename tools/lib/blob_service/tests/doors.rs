// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The request script through both doors of one in-process service.

use std::sync::Arc;

use azure_blob_service::conformance::{script::script, HttpTransport, Runner, VscTransport};
use azure_blob_service::server::HttpServer;
use azure_blob_service::{BlobService, Config, MemoryStorage};

fn report(name: &str, rep: &azure_blob_service::conformance::RunReport) {
    eprintln!(
        "{name}: {} requests sent, {} skipped, {} failures",
        rep.sent,
        rep.skipped,
        rep.failures.len()
    );
    for f in &rep.failures {
        eprintln!("  {f}");
    }
}

#[test]
fn script_passes_through_the_http_door() {
    let svc = BlobService::in_memory();
    let server = HttpServer::start(svc, "127.0.0.1:0", 64).unwrap();
    let mut t = HttpTransport::new(server.local_addr(), true);
    let steps = script();
    let rep = Runner::new().run(&steps, &mut t);
    report("http", &rep);
    assert!(rep.sent >= 150, "only {} requests", rep.sent);
    assert_eq!(rep.skipped, 0);
    assert!(rep.failures.is_empty());
}

#[test]
fn script_passes_through_the_vsc_door_without_a_key() {
    let svc = BlobService::in_memory();
    let mut t = VscTransport::new(svc);
    let rep = Runner::new().run(&script(), &mut t);
    report("vsc", &rep);
    assert!(rep.sent >= 150);
    // Authorization steps need a configured key.
    assert!(rep.skipped > 0);
    assert!(rep.failures.is_empty());
}

#[test]
fn script_passes_through_the_vsc_door_with_a_key() {
    let config = Config {
        vsc_shared_key: true,
        ..Config::default()
    };
    let svc = BlobService::new(Arc::new(MemoryStorage::new()), config);
    let mut t = VscTransport::new(svc);
    let rep = Runner::new().run(&script(), &mut t);
    report("vsc+key", &rep);
    assert_eq!(rep.skipped, 0);
    assert!(rep.failures.is_empty());
}
