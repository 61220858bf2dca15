// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! A first program on the hv_azure_blob client API: make a container,
//! upload a blob, read a range of it back, list, clean up.
//!
//!     azure_blob_sample                  # through /dev/azure_blob
//!     azure_blob_sample --http ENDPOINT  # the same code over HTTP, e.g.
//!                                        # http://127.0.0.1:10000/devstoreaccount1
//!
//! The client API follows the Azure SDKs: a service client makes container
//! clients, which make blob clients; every call takes an options struct.

use azure_blob::{
    BlobServiceClient, Conditions, DownloadOptions, Error, ListBlobsOptions, UploadOptions,
    DEV_ACCOUNT, DEV_KEY,
};

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let service = match args.get(1).map(String::as_str) {
        Some("--http") => {
            let endpoint = args.get(2).map(String::as_str).unwrap_or_default();
            BlobServiceClient::http(endpoint, DEV_ACCOUNT, DEV_KEY)?
        }
        _ => BlobServiceClient::vsc_default()?,
    };
    println!(
        "talking to account {} through {}",
        service.account_name(),
        service.transport().endpoint()
    );

    // A container; it may be left over from an earlier run.
    let container = service.container_client("samples");
    match container.create(&Default::default()) {
        Ok(()) => println!("created container 'samples'"),
        Err(e) if e.status() == Some(409) => println!("container 'samples' exists already"),
        Err(e) => return Err(e),
    }

    // Upload 1 MiB: one request (larger content goes in parallel blocks).
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let blob = container.blob_client("greeting/data.bin");
    let written = blob.upload(&data, &UploadOptions::default())?;
    println!("uploaded {} bytes, ETag {}", data.len(), written.etag);

    // Read 16 bytes at offset 1000, only if nobody changed the blob since.
    let range = blob.download(&DownloadOptions {
        conditions: Conditions::if_match(&written.etag),
        ..DownloadOptions::range(1000, 16)
    })?;
    assert_eq!(
        range,
        data[1000..1016],
        "the range differs from what was uploaded"
    );
    println!("read 16 bytes at offset 1000: {range:02x?}");

    // List what is under greeting/.
    let listing = container.list_blobs(&ListBlobsOptions {
        prefix: Some("greeting/".into()),
        ..Default::default()
    })?;
    for b in &listing.blobs {
        println!("listed {} ({} bytes)", b.name, b.properties.content_length);
    }

    // Clean up. A missing blob is an error with the service's code.
    blob.delete(&Conditions::default())?;
    match blob.get_properties(&Conditions::default()) {
        Err(e) if e.is_not_found() => println!("deleted; now: {e}"),
        other => println!("unexpected after delete: {other:?}"),
    }
    container.delete(&Conditions::default())?;
    println!("deleted container 'samples'");
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("azure_blob_sample: {e} (errno {})", e.errno());
            std::process::ExitCode::FAILURE
        }
    }
}
