// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Differential test: the request script against Azurite and against our HTTP door.
//!
//! Needs a running Azurite (started by tools/testing/blob_service/run-tests.sh) whose blob
//! endpoint is given as HVAB_AZURITE_ADDR=127.0.0.1:PORT; ignored by a plain `cargo test`.

use std::net::SocketAddr;

use azure_blob_service::conformance::{compare, script::script, HttpTransport, Runner};
use azure_blob_service::server::HttpServer;
use azure_blob_service::BlobService;

#[test]
#[ignore = "needs Azurite: run tools/testing/blob_service/run-tests.sh"]
fn script_matches_azurite() {
    let addr: SocketAddr = std::env::var("HVAB_AZURITE_ADDR")
        .expect("HVAB_AZURITE_ADDR must name Azurite's blob endpoint")
        .parse()
        .expect("HVAB_AZURITE_ADDR must be IP:PORT");
    assert!(addr.ip().is_loopback(), "Azurite must run on loopback");
    let steps = script();

    let server = HttpServer::start(BlobService::in_memory(), "127.0.0.1:0", 64).unwrap();
    let ours = Runner::new().run(&steps, &mut HttpTransport::new(server.local_addr(), true));
    let theirs = Runner::new().run(&steps, &mut HttpTransport::new(addr, true));

    let compared = ours
        .observations
        .iter()
        .filter(|o| o.skip_compare.is_none())
        .count();
    let diffs = compare(&ours.observations, &theirs.observations);
    eprintln!(
        "differential: {} requests per server, {} compared, {} documented differences, {} mismatches; our expectation failures: {}",
        ours.sent,
        compared,
        ours.sent - compared,
        diffs.len(),
        ours.failures.len()
    );
    for d in &diffs {
        eprintln!("  DIFF {d}");
    }
    for f in &ours.failures {
        eprintln!("  OURS {f}");
    }
    // Steps where Azurite is documented to differ: show what it answered.
    for (o, t) in ours.observations.iter().zip(&theirs.observations) {
        if let Some(why) = &o.skip_compare {
            eprintln!(
                "  DOCUMENTED {}: ours {} {:?}, azurite {} {:?} ({why})",
                o.step, o.status, o.code, t.status, t.code
            );
        }
    }
    assert!(ours.sent >= 150);
    assert!(
        ours.failures.is_empty(),
        "our server failed its own expectations"
    );
    assert!(diffs.is_empty(), "{} differences from Azurite", diffs.len());
}
