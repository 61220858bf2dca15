// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The demo the README's first command runs in the guest: a blob round trip
//! through /dev/azure_blob, told in plain words. Exits non-zero on any
//! mismatch.

use azure_blob::{Device, RestRequest, RestResponse, VscClient, DEV_ACCOUNT};

fn step(
    client: &VscClient,
    what: &str,
    req: RestRequest<'_>,
    expected_body: usize,
    ok: &[u16],
) -> Result<RestResponse, String> {
    let r = client
        .send(&req, expected_body)
        .map_err(|e| format!("{what}: {e}"))?;
    if !ok.contains(&r.status) {
        return Err(format!(
            "{what}: HTTP {} {}",
            r.status,
            r.error_code().unwrap_or("(no x-ms-error-code)")
        ));
    }
    Ok(r)
}

fn run() -> Result<(), String> {
    let device = Device::open().map_err(|e| e.to_string())?;
    let client = VscClient::new(device, DEV_ACCOUNT);
    println!(
        "opened /dev/azure_blob; speaking Blob REST to account {DEV_ACCOUNT} through the host"
    );

    let r = step(
        &client,
        "create container 'demo'",
        RestRequest {
            method: "PUT",
            path: "/demo?restype=container",
            headers: &[],
            body: b"",
        },
        0,
        &[201, 409],
    )?;
    if r.status == 201 {
        println!("created container 'demo'");
    } else {
        println!("container 'demo' already exists (it was made by an earlier run)");
    }

    // A 3 MiB "file" with recognisable content.
    let file: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let r = step(
        &client,
        "upload hello.bin",
        RestRequest {
            method: "PUT",
            path: "/demo/hello.bin",
            headers: &[("x-ms-blob-type", "BlockBlob")],
            body: &file,
        },
        0,
        &[201],
    )?;
    println!(
        "uploaded hello.bin: {} bytes, ETag {}",
        file.len(),
        r.header("etag").unwrap_or("?")
    );

    let r = step(
        &client,
        "list blobs",
        RestRequest {
            method: "GET",
            path: "/demo?restype=container&comp=list",
            headers: &[],
            body: b"",
        },
        64 * 1024,
        &[200],
    )?;
    let listing = String::from_utf8_lossy(&r.body);
    if !listing.contains("<Name>hello.bin</Name>") {
        return Err(format!("list blobs: hello.bin is not listed:\n{listing}"));
    }
    let names: Vec<&str> = listing
        .split("<Name>")
        .skip(1)
        .filter_map(|s| s.split("</Name>").next())
        .collect();
    println!("listed container 'demo': {}", names.join(", "));

    let (start, len) = (1_000_000usize, 100_000usize);
    let range = format!("bytes={}-{}", start, start + len - 1);
    let r = step(
        &client,
        "download a range",
        RestRequest {
            method: "GET",
            path: "/demo/hello.bin",
            headers: &[("x-ms-range", &range)],
            body: b"",
        },
        len,
        &[206],
    )?;
    if r.body != file[start..start + len] {
        return Err(format!(
            "download a range: the {} bytes differ from what was uploaded",
            r.body.len()
        ));
    }
    println!(
        "downloaded {range} of hello.bin ({} bytes, {}): identical to the upload",
        r.body.len(),
        r.header("content-range").unwrap_or("?")
    );

    let r = step(
        &client,
        "blob properties",
        RestRequest {
            method: "HEAD",
            path: "/demo/hello.bin",
            headers: &[],
            body: b"",
        },
        0,
        &[200],
    )?;
    println!(
        "properties of hello.bin: Content-Length {}, type {}",
        r.header("content-length").unwrap_or("?"),
        r.header("x-ms-blob-type").unwrap_or("?")
    );

    let r = step(
        &client,
        "a missing blob",
        RestRequest {
            method: "GET",
            path: "/demo/missing.bin",
            headers: &[],
            body: b"",
        },
        4096,
        &[404],
    )?;
    println!(
        "asked for missing.bin: HTTP 404 {}, as Azure answers",
        r.error_code().unwrap_or("?")
    );
    Ok(())
}

fn main() {
    match run() {
        Ok(()) => println!("demo finished: every byte checked"),
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
}
