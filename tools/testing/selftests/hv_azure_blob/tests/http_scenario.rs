// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The client API's scenario (`azure_blob_client_test`) and the azblob
//! script over HTTP against the blob service's HTTP door, natively: the part
//! of the guest client tests that needs no guest.

use std::process::Command;
use std::sync::Arc;

use azure_blob_service::server::HttpServer;
use azure_blob_service::{BlobService, Config, MemoryStorage};

fn door() -> (HttpServer, String) {
    let svc = BlobService::new(Arc::new(MemoryStorage::new()), Config::default());
    let server = HttpServer::start(svc, "127.0.0.1:0", 32).expect("bind the HTTP door");
    let url = format!("http://{}/devstoreaccount1", server.local_addr());
    (server, url)
}

fn ktap_ok(out: &std::process::Output) -> bool {
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out.status.success() && text.contains(" 0 failed") && !text.contains("not ok")
}

#[test]
fn client_api_scenario_over_http_then_handoff() {
    let (mut server, url) = door();
    let bin = env!("CARGO_BIN_EXE_azure_blob_client_test");
    let run = |handoff: &str| {
        Command::new(bin)
            .args([
                "--transport",
                "http",
                "--endpoint",
                &url,
                "--handoff",
                handoff,
            ])
            .args(["--container", &format!("scenario-{handoff}")])
            .output()
            .expect("run azure_blob_client_test")
    };
    assert!(ktap_ok(&run("write")), "the scenario failed over HTTP");
    assert!(
        ktap_ok(&run("check")),
        "the second run did not find the first's blob"
    );
    server.stop();
}

#[test]
fn the_scenario_fails_on_a_wrong_key() {
    let (mut server, url) = door();
    let out = Command::new(env!("CARGO_BIN_EXE_azure_blob_client_test"))
        .args(["--transport", "http", "--endpoint", &url, "--key", "AAAA"])
        .output()
        .expect("run azure_blob_client_test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a wrong key passed");
    assert!(text.contains("403 AuthenticationFailed"), "{text}");
    server.stop();
}
