#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR MIT
"""A scripted azure-storage-blob session against the blob service's HTTP door.

Usage: sdk_session.py http://127.0.0.1:PORT
Every step checks what a client depends on; the first failure raises and the
script exits non-zero. Prints "N passed, 0 failed" at the end.
"""

import hashlib
import os
import sys

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

passed = 0


def check(cond, what):
    global passed
    if not cond:
        raise AssertionError(what)
    passed += 1
    print(f"ok {passed} - {what}")


def expect_error(fn, exc, code, what):
    try:
        fn()
    except exc as e:
        check(e.error_code == code, f"{what}: {code} (got {e.error_code})")
        return
    raise AssertionError(f"{what}: no error raised")


def main():
    base = sys.argv[1].rstrip("/")
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint={base}/{ACCOUNT};"
    )
    svc = BlobServiceClient.from_connection_string(
        conn, max_single_put_size=4 * 1024 * 1024, max_block_size=1024 * 1024,
        max_single_get_size=1024 * 1024, max_chunk_get_size=1024 * 1024,
    )

    # Containers.
    cont = svc.create_container("sdk-session", metadata={"Purpose": "test"})
    check(cont.exists(), "container exists after create")
    expect_error(lambda: svc.create_container("sdk-session"), ResourceExistsError,
                 "ContainerAlreadyExists", "create twice")
    props = cont.get_container_properties()
    check(props.metadata == {"Purpose": "test"}, f"container metadata kept ({props.metadata})")
    cont.set_container_metadata({"Purpose": "changed", "Extra": "1"})
    check(cont.get_container_properties().metadata == {"Purpose": "changed", "Extra": "1"},
          "container metadata replaced")
    names = [c.name for c in svc.list_containers(name_starts_with="sdk-")]
    check(names == ["sdk-session"], f"list containers ({names})")

    # Single-shot upload.
    b = cont.get_blob_client("dir/single.txt")
    up = b.upload_blob(b"hello from the python sdk", metadata={"Kind": "greeting"},
                       content_settings=ContentSettings(content_type="text/plain"))
    check(up["etag"], "upload returns an etag")
    check(b.download_blob().readall() == b"hello from the python sdk", "download single-shot blob")
    p = b.get_blob_properties()
    check(p.size == 25 and p.blob_type == "BlockBlob", "properties: size and type")
    check(p.content_settings.content_type == "text/plain", "properties: content type")
    check(p.metadata == {"Kind": "greeting"}, f"properties: metadata ({p.metadata})")
    check(p.content_settings.content_md5 == hashlib.md5(b"hello from the python sdk").digest(),
          "properties: content md5")
    expect_error(lambda: b.upload_blob(b"again"), ResourceExistsError, "BlobAlreadyExists",
                 "upload without overwrite over an existing blob")

    # Ranges.
    check(b.download_blob(offset=6, length=4).readall() == b"from", "download a range")
    check(b.download_blob(offset=20).readall() == b"n sdk", "download from an offset to the end")
    expect_error(lambda: b.download_blob(offset=100, length=4).readall(), HttpResponseError,
                 "InvalidRange", "range past the end")

    # Large upload: the SDK stages 1 MiB blocks and commits a block list.
    big = os.urandom(9 * 1024 * 1024 + 123)
    bb = cont.get_blob_client("dir/big.bin")
    bb.upload_blob(big)
    committed, _ = bb.get_block_list("committed")
    check(len(committed) == 10, f"chunked upload committed 10 blocks ({len(committed)})")
    got = bb.download_blob(max_concurrency=4).readall()
    check(got == big, "chunked download equals the upload")
    check(bb.download_blob(offset=5_000_000, length=3_000_000).readall()
          == big[5_000_000:8_000_000], "range across blocks")

    # Explicit staged blocks.
    sb = cont.get_blob_client("dir/staged.bin")
    sb.stage_block("YmxrMDE=", b"first-")
    sb.stage_block("YmxrMDI=", b"second")
    _, uncommitted = sb.get_block_list("uncommitted")
    check([x.id for x in uncommitted] == ["YmxrMDE=", "YmxrMDI="], "uncommitted blocks listed")
    sb.commit_block_list([BlobBlock("YmxrMDI="), BlobBlock("YmxrMDE=")])
    check(sb.download_blob().readall() == b"secondfirst-", "commit block list in a chosen order")

    # Metadata and properties.
    b.set_blob_metadata({"Kind": "updated", "N": "2"})
    check(b.get_blob_properties().metadata == {"Kind": "updated", "N": "2"}, "set blob metadata")
    b.set_http_headers(ContentSettings(content_type="application/x-test", cache_control="no-cache"))
    p = b.get_blob_properties()
    check(p.content_settings.content_type == "application/x-test"
          and p.content_settings.cache_control == "no-cache", "set http headers")

    # Conditions.
    etag = b.get_blob_properties().etag
    b.set_blob_metadata({"K": "v"}, etag=etag, match_condition=MatchConditions.IfNotModified)
    check(b.get_blob_properties().etag != etag, "etag changes on a conditional write")
    expect_error(lambda: b.set_blob_metadata({"K": "w"}, etag=etag, match_condition=MatchConditions.IfNotModified),
        HttpResponseError, "ConditionNotMet", "stale etag is refused")

    # Listing.
    flat = [x.name for x in cont.list_blobs(name_starts_with="dir/")]
    check(flat == ["dir/big.bin", "dir/single.txt", "dir/staged.bin"], f"list blobs ({flat})")
    cont.get_blob_client("top.txt").upload_blob(b"t")
    walk = [x.name for x in cont.walk_blobs(delimiter="/")]
    check(walk == ["dir/", "top.txt"], f"walk blobs with a delimiter ({walk})")
    paged = cont.list_blobs(results_per_page=2).by_page()
    pages = [[x.name for x in pg] for pg in paged]
    check(pages == [["dir/big.bin", "dir/single.txt"], ["dir/staged.bin", "top.txt"]],
          f"paged listing with markers ({pages})")
    withmeta = {x.name: x.metadata for x in cont.list_blobs(name_starts_with="dir/s",
                                                          include=["metadata"])}
    check(withmeta["dir/single.txt"] == {"K": "v"}, f"list with metadata ({withmeta})")

    # Leases.
    lease = b.acquire_lease(lease_duration=-1)
    check(b.get_blob_properties().lease.state == "leased", "lease acquired")
    expect_error(lambda: b.upload_blob(b"x", overwrite=True), HttpResponseError,
                 "LeaseIdMissing", "write without the lease id")
    b.upload_blob(b"written under lease", overwrite=True, lease=lease)
    check(b.download_blob().readall() == b"written under lease", "write with the lease id")
    lease.renew()
    lease.change("11111111-2222-4333-8444-555555555555")
    check(lease.id == "11111111-2222-4333-8444-555555555555", "lease id changed")
    expect_error(lambda: b.delete_blob(), HttpResponseError, "LeaseIdMissing",
                 "delete without the lease id")
    lease.release()
    check(b.get_blob_properties().lease.state == "available", "lease released")
    lease2 = b.acquire_lease(lease_duration=15)
    lease2.break_lease(lease_break_period=0)
    check(b.get_blob_properties().lease.state == "broken", "lease broken")

    # Append and page blobs.
    ab = cont.get_blob_client("log.txt")
    ab.create_append_blob()
    ab.append_block(b"line 1\n")
    ab.append_block(b"line 2\n")
    check(ab.download_blob().readall() == b"line 1\nline 2\n", "append blob")
    pb = cont.get_blob_client("disk.img")
    pb.create_page_blob(size=4096)
    pb.upload_page(b"\x07" * 512, offset=1024, length=512)
    pr = pb.get_page_ranges()
    check([(r["start"], r["end"]) for r in pr[0]] == [(1024, 1535)], f"page ranges ({pr[0]})")
    check(pb.download_blob(offset=1020, length=8).readall() == b"\0\0\0\0\x07\x07\x07\x07",
          "page blob read")

    # Delete.
    sb.delete_blob()
    check(not sb.exists(), "deleted blob no longer exists")
    expect_error(lambda: sb.delete_blob(), ResourceNotFoundError, "BlobNotFound", "delete twice")
    cont.delete_container()
    check(not cont.exists(), "deleted container no longer exists")

    print(f"{passed} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure and exit non-zero
        print(f"FAILED after {passed} checks: {type(e).__name__}: {e}")
        print(f"{passed} passed, 1 failed")
        sys.exit(1)
