// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! `azure_blob_client_test`: one scenario of the user library's client API
//! (containers, block, page and append blobs, ranges, conditions, leases,
//! listings, errors), run on either transport and printed as KTAP:
//!
//! - in the guest, `--transport vsc`: through /dev/azure_blob and the
//!   driver to the simulator's blob service;
//! - on the host, `--transport http --endpoint URL`: the same scenario over
//!   the simulator's HTTP door.
//!
//! `--handoff write` leaves a blob that a later `--handoff check` run (on
//! the other transport) must find byte for byte: one store behind both doors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use azure_blob::{
    AppendBlockOptions, BlobHttpHeaders, BlobServiceClient, BlobType, BlockListType, Conditions,
    CreateAppendBlobOptions, CreateContainerOptions, CreatePageBlobOptions, DownloadOptions, Error,
    ListBlobsOptions, ListContainersOptions, Metadata, PageRange, UploadOptions, DEV_ACCOUNT,
    DEV_KEY,
};

type Outcome = Result<(), String>;

fn check(cond: bool, what: impl Into<String>) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// The call must fail with this HTTP status and error code.
fn expect_err<T: std::fmt::Debug>(
    r: Result<T, Error>,
    status: u16,
    code: Option<&str>,
    what: &str,
) -> Outcome {
    match r {
        Ok(v) => Err(format!("{what}: succeeded ({v:?}), expected {status}")),
        Err(e) if e.status() == Some(status) && (code.is_none() || e.error_code() == code) => {
            Ok(())
        }
        Err(e) => Err(format!(
            "{what}: expected {status} {}, got: {e}",
            code.unwrap_or("")
        )),
    }
}

fn e(what: &'static str) -> impl Fn(Error) -> String {
    move |err| format!("{what}: {err}")
}

fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut r = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| r.u8(..)).collect()
}

const HANDOFF_CONTAINER: &str = "handoff";
const HANDOFF_BLOB: &str = "written-by-the-first-run.bin";

fn handoff_content() -> Vec<u8> {
    random(3 << 20, 0x4A4D)
}

struct Scenario {
    svc: BlobServiceClient,
    c: String,
}

impl Scenario {
    fn container(&self) -> azure_blob::BlobContainerClient {
        self.svc.container_client(&self.c)
    }

    fn blob(&self, name: &str) -> azure_blob::BlobClient {
        self.container().blob_client(name)
    }

    fn containers(&self) -> Outcome {
        let c = self.container();
        check(
            !c.exists().map_err(e("exists"))?,
            "the container exists before create",
        )?;
        let mut m = Metadata::new();
        m.insert("purpose".into(), "scenario".into());
        c.create(&CreateContainerOptions { metadata: m })
            .map_err(e("create"))?;
        check(
            c.exists().map_err(e("exists"))?,
            "no container after create",
        )?;
        expect_err(
            c.create(&Default::default()),
            409,
            Some("ContainerAlreadyExists"),
            "a second create",
        )?;
        let p = c.get_properties().map_err(e("properties"))?;
        check(
            p.metadata.get("purpose").map(String::as_str) == Some("scenario"),
            format!("metadata from create: {:?}", p.metadata),
        )?;
        let mut m2 = Metadata::new();
        m2.insert("stage".into(), "two".into());
        c.set_metadata(&m2).map_err(e("set metadata"))?;
        let p = c.get_properties().map_err(e("properties"))?;
        check(
            p.metadata == m2,
            format!("metadata after set: {:?}", p.metadata),
        )?;
        let listed = self
            .svc
            .list_containers(&ListContainersOptions {
                prefix: Some(self.c.clone()),
                include_metadata: true,
                ..Default::default()
            })
            .map_err(e("list containers"))?;
        check(
            listed.len() == 1 && listed[0].name == self.c && listed[0].metadata == m2,
            format!("listing with prefix: {listed:?}"),
        )
    }

    fn single_shot(&self) -> Outcome {
        let data = random(1 << 20, 1);
        let b = self.blob("single.bin");
        let w = b
            .upload(
                &data,
                &UploadOptions {
                    http_headers: BlobHttpHeaders {
                        content_type: Some("application/x-test".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .map_err(e("upload"))?;
        check(!w.etag.is_empty(), "no ETag from upload")?;
        let back = b.download(&Default::default()).map_err(e("download"))?;
        check(back == data, "the download differs from the upload")?;
        let p = b
            .get_properties(&Conditions::default())
            .map_err(e("props"))?;
        check(
            p.content_length == data.len() as u64
                && p.etag == w.etag
                && p.blob_type == Some(BlobType::Block)
                && p.http_headers.content_type.as_deref() == Some("application/x-test"),
            format!("properties: {p:?}"),
        )
    }

    fn staged(&self) -> Outcome {
        // Above the single-shot limit: parallel staged blocks, then a commit.
        let data = random(3 * 1024 * 1024 + 123, 2);
        let b = self.blob("dir/staged.bin");
        let seen = Arc::new(AtomicU64::new(0));
        let s2 = seen.clone();
        b.upload(
            &data,
            &UploadOptions {
                single_shot_max: 1 << 20,
                block_size: 256 << 10,
                parallelism: 4,
                progress: Some(Arc::new(move |n| {
                    s2.fetch_max(n, Ordering::Relaxed);
                })),
                ..Default::default()
            },
        )
        .map_err(e("upload"))?;
        check(
            seen.load(Ordering::Relaxed) == data.len() as u64,
            format!("progress ended at {}", seen.load(Ordering::Relaxed)),
        )?;
        let list = b
            .block_blob_client()
            .get_block_list(BlockListType::All)
            .map_err(e("block list"))?;
        check(
            list.committed.len() == data.len().div_ceil(256 << 10) && list.uncommitted.is_empty(),
            format!(
                "{} committed, {} uncommitted blocks",
                list.committed.len(),
                list.uncommitted.len()
            ),
        )?;
        let mut back = Vec::new();
        let n = b
            .download_to(
                &mut back,
                &DownloadOptions {
                    chunk_size: Some(100_000),
                    ..Default::default()
                },
            )
            .map_err(e("download_to"))?;
        check(
            n == data.len() as u64 && back == data,
            "chunked download differs",
        )?;
        // Into a file, 4 ranges at once, each written at its place.
        let path = std::env::temp_dir().join(format!("client-test-{}.bin", std::process::id()));
        let n = b
            .download_to_file(
                &path,
                &DownloadOptions {
                    chunk_size: Some(300_000),
                    parallelism: Some(4),
                    ..Default::default()
                },
            )
            .map_err(e("download_to_file"))?;
        let file = std::fs::read(&path).map_err(|err| format!("{}: {err}", path.display()))?;
        let _ = std::fs::remove_file(&path);
        check(
            n == data.len() as u64 && file == data,
            "the parallel download to a file differs",
        )?;
        let missing = std::env::temp_dir().join(format!("client-missing-{}", std::process::id()));
        expect_err(
            self.blob("no-such-blob")
                .download_to_file(&missing, &Default::default()),
            404,
            Some("BlobNotFound"),
            "a download of a missing blob to a file",
        )?;
        let mut partial = missing.clone().into_os_string();
        partial.push(".partial");
        check(
            !missing.exists() && !std::path::Path::new(&partial).exists(),
            "a failed download left a file",
        )
    }

    fn ranges(&self) -> Outcome {
        let data = random(1 << 20, 1);
        let b = self.blob("single.bin");
        let r = b
            .download(&DownloadOptions::range(1000, 5000))
            .map_err(e("range"))?;
        check(r == data[1000..6000], "range 1000+5000 differs")?;
        let mut buf = vec![0u8; 4096];
        let n = b
            .download_into(&mut buf, data.len() as u64 - 100)
            .map_err(e("download_into"))?;
        check(
            n == 100 && buf[..100] == data[data.len() - 100..],
            format!("download_into near the end gave {n} bytes"),
        )?;
        let tail = b
            .download(&DownloadOptions {
                offset: data.len() as u64 - 10,
                ..Default::default()
            })
            .map_err(e("tail"))?;
        check(tail == data[data.len() - 10..], "open-ended tail differs")?;
        expect_err(
            b.download(&DownloadOptions::range(data.len() as u64 + 10, 5)),
            416,
            Some("InvalidRange"),
            "a range past the end",
        )
    }

    fn properties_and_conditions(&self) -> Outcome {
        let b = self.blob("single.bin");
        let p = b
            .get_properties(&Conditions::default())
            .map_err(e("props"))?;
        let mut m = Metadata::new();
        m.insert("camera".into(), "x100".into());
        let w = b
            .set_metadata(&m, &Conditions::if_match(&p.etag))
            .map_err(e("set metadata"))?;
        check(w.etag != p.etag, "set metadata did not change the ETag")?;
        expect_err(
            b.set_metadata(&m, &Conditions::if_match(&p.etag)),
            412,
            Some("ConditionNotMet"),
            "a write with a stale If-Match",
        )?;
        expect_err(
            b.download(&DownloadOptions {
                conditions: Conditions::if_none_match(&w.etag),
                ..Default::default()
            }),
            304,
            None,
            "a read with If-None-Match of the current ETag",
        )?;
        expect_err(
            b.upload(
                b"x",
                &UploadOptions {
                    conditions: Conditions::if_none_match("*"),
                    ..Default::default()
                },
            ),
            409,
            Some("BlobAlreadyExists"),
            "an upload with If-None-Match: * on an existing blob",
        )?;
        b.set_http_headers(
            &BlobHttpHeaders {
                content_type: Some("image/jpeg".into()),
                cache_control: Some("max-age=60".into()),
                ..Default::default()
            },
            &Conditions::default(),
        )
        .map_err(e("set properties"))?;
        let p = b
            .get_properties(&Conditions::default())
            .map_err(e("props"))?;
        check(
            p.metadata == m
                && p.http_headers.content_type.as_deref() == Some("image/jpeg")
                && p.http_headers.cache_control.as_deref() == Some("max-age=60"),
            format!("properties after the updates: {p:?}"),
        )
    }

    fn listing(&self) -> Outcome {
        for n in ["dir/a", "dir/b", "dir/sub/c", "top"] {
            self.blob(n)
                .upload(n.as_bytes(), &Default::default())
                .map_err(e("upload"))?;
        }
        let l = self
            .container()
            .list_blobs(&ListBlobsOptions {
                prefix: Some("dir/".into()),
                delimiter: Some("/".into()),
                ..Default::default()
            })
            .map_err(e("list"))?;
        let names: Vec<&str> = l.blobs.iter().map(|b| b.name.as_str()).collect();
        check(
            names == ["dir/a", "dir/b", "dir/staged.bin"] && l.prefixes == ["dir/sub/"],
            format!("prefix dir/ with /: {names:?} {:?}", l.prefixes),
        )?;
        let paged = self
            .container()
            .list_blobs(&ListBlobsOptions {
                page_size: Some(2),
                include_metadata: true,
                ..Default::default()
            })
            .map_err(e("paged list"))?;
        let names: Vec<&str> = paged.blobs.iter().map(|b| b.name.as_str()).collect();
        check(
            names
                == [
                    "dir/a",
                    "dir/b",
                    "dir/staged.bin",
                    "dir/sub/c",
                    "single.bin",
                    "top",
                ],
            format!("pages of 2: {names:?}"),
        )?;
        let single = &paged.blobs[4];
        check(
            single.properties.content_length == 1 << 20
                && single.properties.metadata.get("camera").map(String::as_str) == Some("x100"),
            format!("listed properties: {:?}", single.properties),
        )
    }

    fn blocks(&self) -> Outcome {
        let bb = self.blob("blocks.bin").block_blob_client();
        bb.stage_block("block-1", b"first ", None)
            .map_err(e("stage 1"))?;
        bb.stage_block("block-2", b"second", None)
            .map_err(e("stage 2"))?;
        let l = bb
            .get_block_list(BlockListType::Uncommitted)
            .map_err(e("list"))?;
        let names: Vec<&str> = l.uncommitted.iter().map(|b| b.name.as_str()).collect();
        check(
            names == ["block-1", "block-2"] && l.uncommitted[0].size == 6,
            format!("uncommitted: {:?}", l.uncommitted),
        )?;
        bb.commit_block_list(
            &["block-2".to_string(), "block-1".to_string()],
            &Default::default(),
        )
        .map_err(e("commit"))?;
        let back = self
            .blob("blocks.bin")
            .download(&Default::default())
            .map_err(e("download"))?;
        check(
            back == b"secondfirst ",
            format!("content {:?}", String::from_utf8_lossy(&back)),
        )?;
        expect_err(
            bb.commit_block_list(&["block-9".to_string()], &Default::default()),
            400,
            Some("InvalidBlockList"),
            "a commit of an unknown block",
        )
    }

    fn leases(&self) -> Outcome {
        let b = self.blob("leased.bin");
        b.upload(b"v1", &Default::default()).map_err(e("upload"))?;
        let mut lease = b.lease_client(None);
        lease.acquire(None).map_err(e("acquire"))?;
        let p = b
            .get_properties(&Conditions::default())
            .map_err(e("props"))?;
        check(
            p.lease_state.as_deref() == Some("leased")
                && p.lease_duration.as_deref() == Some("infinite"),
            format!("lease state {:?} {:?}", p.lease_state, p.lease_duration),
        )?;
        expect_err(
            b.upload(b"v2", &Default::default()),
            412,
            Some("LeaseIdMissing"),
            "a write without the lease",
        )?;
        expect_err(
            b.delete(&Conditions::default()),
            412,
            Some("LeaseIdMissing"),
            "a delete without the lease",
        )?;
        b.upload(
            b"v2",
            &UploadOptions {
                conditions: Conditions::lease(lease.lease_id()),
                ..Default::default()
            },
        )
        .map_err(e("write with the lease"))?;
        lease.renew().map_err(e("renew"))?;
        let new_id = "11111111-2222-3333-4444-555555555555";
        lease.change(new_id).map_err(e("change"))?;
        check(lease.lease_id() == new_id, "change kept the old id")?;
        expect_err(
            b.upload(
                b"v3",
                &UploadOptions {
                    conditions: Conditions::lease("aaaaaaaa-2222-3333-4444-555555555555"),
                    ..Default::default()
                },
            ),
            412,
            Some("LeaseIdMismatchWithBlobOperation"),
            "a write with another lease id",
        )?;
        lease.release().map_err(e("release"))?;
        let other = b.lease_client(None);
        other.acquire(Some(15)).map_err(e("acquire 15 s"))?;
        let left = b
            .lease_client(Some("any"))
            .break_lease(Some(0))
            .map_err(e("break"))?;
        check(left == 0, format!("break left {left} s"))?;
        let p = b
            .get_properties(&Conditions::default())
            .map_err(e("props"))?;
        check(
            p.lease_state.as_deref() == Some("broken"),
            format!("after break: {:?}", p.lease_state),
        )?;
        b.delete(&Conditions::default())
            .map_err(e("delete after break"))
    }

    fn page_blob(&self) -> Outcome {
        let pb = self.blob("disk.vhd").page_blob_client();
        pb.create(64 * 1024, &CreatePageBlobOptions::default())
            .map_err(e("create"))?;
        let data = random(2048, 3);
        pb.upload_pages(512, &data, &Conditions::default())
            .map_err(e("upload pages"))?;
        pb.clear_pages(512, 512, &Conditions::default())
            .map_err(e("clear pages"))?;
        let ranges = pb
            .get_page_ranges(&Conditions::default())
            .map_err(e("page ranges"))?;
        check(
            ranges
                == [PageRange {
                    start: 1024,
                    end: 2559,
                }],
            format!("ranges {ranges:?}"),
        )?;
        let b = self.blob("disk.vhd");
        let back = b
            .download(&DownloadOptions::range(512, 2048))
            .map_err(e("download"))?;
        check(
            back[..512].iter().all(|&x| x == 0) && back[512..] == data[512..],
            "pages read back differ",
        )?;
        let p = b
            .get_properties(&Conditions::default())
            .map_err(e("props"))?;
        check(
            p.blob_type == Some(BlobType::Page) && p.content_length == 64 * 1024,
            format!("page blob properties {p:?}"),
        )?;
        expect_err(
            pb.upload_pages(100, &data[..512], &Conditions::default()),
            416,
            Some("InvalidPageRange"),
            "a misaligned page write",
        )
    }

    fn append_blob(&self) -> Outcome {
        let ab = self.blob("log.txt").append_blob_client();
        ab.create(&CreateAppendBlobOptions::default())
            .map_err(e("create"))?;
        let r1 = ab
            .append_block(b"hello ", &Default::default())
            .map_err(e("append 1"))?;
        let r2 = ab
            .append_block(
                b"world",
                &AppendBlockOptions {
                    append_position: Some(6),
                    max_size: Some(100),
                    ..Default::default()
                },
            )
            .map_err(e("append 2"))?;
        check(
            r1.append_offset == 0 && r2.append_offset == 6 && r2.committed_block_count == 2,
            format!("append results {r1:?} {r2:?}"),
        )?;
        expect_err(
            ab.append_block(
                b"!",
                &AppendBlockOptions {
                    append_position: Some(0),
                    ..Default::default()
                },
            ),
            412,
            Some("AppendPositionConditionNotMet"),
            "an append at a stale position",
        )?;
        expect_err(
            ab.append_block(
                b"!!",
                &AppendBlockOptions {
                    max_size: Some(12),
                    ..Default::default()
                },
            ),
            412,
            Some("MaxBlobSizeConditionNotMet"),
            "an append past max size",
        )?;
        let back = self
            .blob("log.txt")
            .download(&Default::default())
            .map_err(e("download"))?;
        check(
            back == b"hello world",
            format!("content {:?}", String::from_utf8_lossy(&back)),
        )
    }

    fn concurrent(&self) -> Outcome {
        // One client shared by threads: the transports are Send + Sync.
        let errors: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u64)
                .map(|t| {
                    let b = self.blob(&format!("par/{t}"));
                    s.spawn(move || -> Outcome {
                        for i in 0..8u64 {
                            let data = random(64 * 1024 + (i as usize) * 1000, t * 100 + i);
                            b.upload(&data, &Default::default()).map_err(e("upload"))?;
                            let back = b.download(&Default::default()).map_err(e("download"))?;
                            check(back == data, format!("thread {t} round {i} differs"))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            hs.into_iter()
                .filter_map(|h| match h.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some("a thread panicked".into()),
                })
                .collect()
        });
        check(errors.is_empty(), errors.join("; "))
    }

    fn errors(&self) -> Outcome {
        let missing = self.blob("no-such-blob");
        check(
            !missing.exists().map_err(e("exists"))?,
            "a missing blob exists",
        )?;
        match missing.get_properties(&Conditions::default()) {
            Err(err) => check(
                err.status() == Some(404)
                    && err.errno() == rustix::io::Errno::NOENT
                    && err.is_not_found(),
                format!("a missing blob's error: {err} (errno {:?})", err.errno()),
            )?,
            Ok(p) => return Err(format!("a missing blob has properties {p:?}")),
        }
        expect_err(
            missing.download(&Default::default()),
            404,
            Some("BlobNotFound"),
            "a download of a missing blob",
        )?;
        expect_err(
            self.svc
                .container_client("no-such-container")
                .blob_client("x")
                .upload(b"x", &Default::default()),
            404,
            Some("ContainerNotFound"),
            "an upload into a missing container",
        )?;
        expect_err(
            self.svc
                .container_client("Bad_Name")
                .create(&Default::default()),
            400,
            Some("InvalidResourceName"),
            "a container with an invalid name",
        )
    }

    fn delete_all(&self) -> Outcome {
        let b = self.blob("top");
        b.delete(&Conditions::default()).map_err(e("delete"))?;
        check(!b.exists().map_err(e("exists"))?, "deleted blob exists")?;
        expect_err(
            b.delete(&Conditions::default()),
            404,
            Some("BlobNotFound"),
            "a second delete",
        )?;
        self.container()
            .delete(&Conditions::default())
            .map_err(e("delete container"))?;
        check(
            !self.container().exists().map_err(e("exists"))?,
            "deleted container exists",
        )
    }
}

fn handoff_write(svc: &BlobServiceClient) -> Outcome {
    let c = svc.container_client(HANDOFF_CONTAINER);
    match c.create(&Default::default()) {
        Ok(()) => {}
        Err(err) if err.status() == Some(409) => {}
        Err(err) => return Err(format!("create: {err}")),
    }
    c.blob_client(HANDOFF_BLOB)
        .upload(
            &handoff_content(),
            &UploadOptions {
                single_shot_max: 1 << 20,
                block_size: 1 << 20,
                ..Default::default()
            },
        )
        .map_err(e("upload"))
        .map(|_| ())
}

fn handoff_check(svc: &BlobServiceClient) -> Outcome {
    let b = svc
        .container_client(HANDOFF_CONTAINER)
        .blob_client(HANDOFF_BLOB);
    let back = b
        .download(&Default::default())
        .map_err(e("download of the first run's blob"))?;
    check(
        back == handoff_content(),
        "the first run's blob differs through this door",
    )?;
    let l = b
        .block_blob_client()
        .get_block_list(BlockListType::Committed)
        .map_err(e("block list"))?;
    check(
        l.committed.len() == 3,
        format!("{} committed blocks, expected 3", l.committed.len()),
    )?;
    b.delete(&Conditions::default()).map_err(e("delete"))
}

fn usage() -> ! {
    eprintln!(
        "usage: azure_blob_client_test [--transport vsc|http] [--endpoint URL] [--key KEY] \
         [--container NAME] [--handoff write|check]"
    );
    std::process::exit(2)
}

fn main() {
    let mut transport = "vsc".to_string();
    let mut endpoint = "http://127.0.0.1:10000/devstoreaccount1".to_string();
    let mut key = DEV_KEY.to_string();
    let mut container = None;
    let mut handoff = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--transport" => transport = v,
            "--endpoint" => endpoint = v,
            "--key" => key = v,
            "--container" => container = Some(v),
            "--handoff" => handoff = Some(v),
            _ => usage(),
        }
    }
    let svc = match transport.as_str() {
        "vsc" => azure_blob::Device::open().map(|d| BlobServiceClient::vsc(d, DEV_ACCOUNT)),
        "http" => BlobServiceClient::http(&endpoint, DEV_ACCOUNT, &key),
        _ => usage(),
    };
    let svc = match svc {
        Ok(s) => s,
        Err(err) => {
            eprintln!("azure_blob_client_test: {err}");
            std::process::exit(1);
        }
    };
    println!(
        "# the client API over {} ({})",
        transport,
        svc.transport().endpoint()
    );
    let sc = Scenario {
        svc: svc.clone(),
        c: container.unwrap_or_else(|| format!("scenario-{transport}")),
    };
    type Test<'a> = (&'static str, Box<dyn Fn() -> Outcome + 'a>);
    let mut list: Vec<Test<'_>> = vec![
        ("containers", Box::new(|| sc.containers())),
        ("upload_single_shot", Box::new(|| sc.single_shot())),
        ("upload_staged_blocks_in_parallel", Box::new(|| sc.staged())),
        ("download_ranges", Box::new(|| sc.ranges())),
        (
            "properties_metadata_and_conditions",
            Box::new(|| sc.properties_and_conditions()),
        ),
        (
            "list_blobs_prefix_delimiter_pages",
            Box::new(|| sc.listing()),
        ),
        ("stage_commit_get_block_list", Box::new(|| sc.blocks())),
        ("leases", Box::new(|| sc.leases())),
        ("page_blob", Box::new(|| sc.page_blob())),
        ("append_blob", Box::new(|| sc.append_blob())),
        ("eight_threads_one_client", Box::new(|| sc.concurrent())),
        (
            "errors_carry_status_code_and_errno",
            Box::new(|| sc.errors()),
        ),
        ("delete_blob_and_container", Box::new(|| sc.delete_all())),
    ];
    match handoff.as_deref() {
        None => {}
        Some("write") => list.push(("handoff_write", Box::new(|| handoff_write(&svc)))),
        Some("check") => list.push(("handoff_check", Box::new(|| handoff_check(&svc)))),
        Some(_) => usage(),
    }
    println!("KTAP version 1");
    println!("1..{}", list.len());
    let mut failed = 0;
    for (i, (name, test)) in list.iter().enumerate() {
        let t = Instant::now();
        match test() {
            Ok(()) => println!("ok {} {name} # {} ms", i + 1, t.elapsed().as_millis()),
            Err(why) => {
                failed += 1;
                println!("# {name}: {why}");
                println!("not ok {} {name}", i + 1);
            }
        }
    }
    println!(
        "# azure_blob_client_test ({transport}): {} passed, {failed} failed",
        list.len() - failed
    );
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
