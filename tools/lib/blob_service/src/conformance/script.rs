// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The request script: every supported operation, its errors, and the malformed inputs.
//!
//! Steps run in order against one fresh service. Expectations are written from the Azure Blob
//! REST documentation; where Azurite is known to answer differently the step says why and the
//! differential test does not compare it.

use super::{EtagCheck, Signing, Step};

const L1: &str = "6a7e8a1c-9f3b-4a55-8d0e-3c1f2b4a5d6e";
const L2: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
const PAST: &str = "Sat, 01 Jan 2000 00:00:00 GMT";
const FUTURE: &str = "Fri, 01 Jan 2100 00:00:00 GMT";
const AU: &str = "Azurite answers AuthorizationFailure; Azure answers AuthenticationFailed";
const V: &str = "Azurite's request validation answers 400 without x-ms-error-code";

/// Block ids used by the script (base64 of "block-000N").
const BA: &str = "YmxvY2stMDAwMQ==";
const BB: &str = "YmxvY2stMDAwMg==";
const BC: &str = "YmxvY2stMDAwMw==";
const BD: &str = "YmxvY2stMDAwNA==";

/// A block id as it appears in a query string.
fn q(id: &str) -> String {
    id.replace('=', "%3D")
}

/// Collects steps.
#[derive(Debug, Default)]
pub struct Script {
    steps: Vec<Step>,
}

impl Script {
    fn req(&mut self, name: &str, method: &str, path: &str) -> &mut Step {
        self.steps.push(Step {
            name: name.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            raw: None,
            signing: Signing::Signed,
            status: 200,
            code: None,
            expect_headers: Vec::new(),
            expect_body: None,
            body_contains: Vec::new(),
            etag: EtagCheck::None,
            save_header: None,
            save_xml: None,
            sleep_ms: 0,
            azurite_differs: None,
            status_only: None,
            etag_differs: None,
            needs_auth: false,
        });
        let n = self.steps.len() - 1;
        &mut self.steps[n]
    }
    fn get(&mut self, name: &str, path: &str) -> &mut Step {
        self.req(name, "GET", path)
    }
    fn put(&mut self, name: &str, path: &str) -> &mut Step {
        self.req(name, "PUT", path)
    }
    fn head(&mut self, name: &str, path: &str) -> &mut Step {
        self.req(name, "HEAD", path)
    }
    fn del(&mut self, name: &str, path: &str) -> &mut Step {
        self.req(name, "DELETE", path)
    }
    fn block_blob(&mut self, name: &str, path: &str, body: &[u8]) -> &mut Step {
        self.put(name, path)
            .h("x-ms-blob-type", "BlockBlob")
            .body(body)
            .status(201)
    }
}

impl Step {
    fn h(&mut self, n: &str, v: &str) -> &mut Self {
        self.headers.push((n.to_string(), v.to_string()));
        self
    }
    fn body(&mut self, b: &[u8]) -> &mut Self {
        self.body = b.to_vec();
        self
    }
    fn status(&mut self, s: u16) -> &mut Self {
        self.status = s;
        self
    }
    fn fails(&mut self, s: u16, code: &str) -> &mut Self {
        self.status = s;
        self.code = Some(code.to_string());
        self
    }
    fn eh(&mut self, n: &str, v: &str) -> &mut Self {
        self.expect_headers.push((n.to_string(), v.to_string()));
        self
    }
    fn eb(&mut self, b: &[u8]) -> &mut Self {
        self.expect_body = Some(b.to_vec());
        self
    }
    fn contains(&mut self, parts: &[&str]) -> &mut Self {
        self.body_contains = parts.iter().map(|s| s.to_string()).collect();
        self
    }
    fn save_etag(&mut self, n: &'static str) -> &mut Self {
        self.etag = EtagCheck::Save(n);
        self
    }
    fn same_etag(&mut self, n: &'static str) -> &mut Self {
        self.etag = EtagCheck::Same(n);
        self
    }
    fn new_etag(&mut self, n: &'static str) -> &mut Self {
        self.etag = EtagCheck::Changed(n);
        self
    }
    fn save_header(&mut self, h: &str, n: &'static str) -> &mut Self {
        self.save_header = Some((h.to_string(), n));
        self
    }
    fn save_xml(&mut self, el: &str, n: &'static str) -> &mut Self {
        self.save_xml = Some((el.to_string(), n));
        self
    }
    fn sleep(&mut self, ms: u64) -> &mut Self {
        self.sleep_ms = ms;
        self
    }
    fn differs(&mut self, why: &str) -> &mut Self {
        self.azurite_differs = Some(why.to_string());
        self
    }
    fn etag_differs(&mut self, why: &str) -> &mut Self {
        self.etag_differs = Some(why.to_string());
        self
    }
    fn status_only(&mut self, why: &str) -> &mut Self {
        self.status_only = Some(why.to_string());
        self
    }
    fn auth(&mut self, s: Signing) -> &mut Self {
        self.signing = s;
        self.needs_auth = true;
        self
    }
    fn raw(&mut self, bytes: Vec<u8>) -> &mut Self {
        self.raw = Some(bytes);
        self
    }
}

fn containers(s: &mut Script) {
    s.put("create container con1", "/con1?restype=container")
        .status(201)
        .save_etag("c1");
    s.put("create con1 again", "/con1?restype=container")
        .fails(409, "ContainerAlreadyExists");
    s.put(
        "create container with upper case",
        "/Bad_Name?restype=container",
    )
    .fails(400, "InvalidResourceName");
    s.put("create container with short name", "/ab?restype=container")
        .fails(400, "OutOfRangeInput");
    s.put(
        "create container with double dash",
        "/a--b?restype=container",
    )
    .fails(400, "InvalidResourceName");
    s.head("container properties (HEAD)", "/con1?restype=container")
        .same_etag("c1")
        .eh("x-ms-lease-state", "available");
    s.get("container properties (GET)", "/con1?restype=container")
        .same_etag("c1");
    s.put(
        "set container metadata",
        "/con1?restype=container&comp=metadata",
    )
    .h("x-ms-meta-color", "blue")
    .h("x-ms-meta-size", "large")
    .new_etag("c1");
    s.get(
        "get container metadata",
        "/con1?restype=container&comp=metadata",
    )
    .differs("Azurite also sends lease headers on Get Container Metadata")
    .eh("x-ms-meta-color", "blue")
    .eh("x-ms-meta-size", "large")
    .same_etag("c1");
    s.put(
        "set container metadata, bad name",
        "/con1?restype=container&comp=metadata",
    )
    .h("x-ms-meta-1bad", "v")
    .fails(400, "InvalidMetadata");
    s.get(
        "metadata unchanged after bad set",
        "/con1?restype=container&comp=metadata",
    )
    .differs("Azurite also sends lease headers on Get Container Metadata")
    .eh("x-ms-meta-color", "blue")
    .same_etag("c1");
    s.put(
        "set container metadata, if-modified-since future",
        "/con1?restype=container&comp=metadata",
    )
    .h("if-modified-since", FUTURE)
    .h("x-ms-meta-color", "red")
    .fails(412, "ConditionNotMet");
    s.get("missing container properties", "/nope?restype=container")
        .fails(404, "ContainerNotFound");
    s.head(
        "missing container properties (HEAD)",
        "/nope?restype=container",
    )
    .fails(404, "ContainerNotFound");
    s.put(
        "create container c2 with metadata",
        "/con2?restype=container",
    )
    .h("x-ms-meta-owner", "lead")
    .status(201);
    s.put("create container c3", "/con3?restype=container")
        .status(201);
    s.get("list containers with prefix", "/?comp=list&prefix=c")
        .contains(&[
            "<Name>con1</Name>",
            "<Name>con2</Name>",
            "<Name>con3</Name>",
        ]);
    s.get(
        "list containers, page 1",
        "/?comp=list&prefix=c&maxresults=2",
    )
    .contains(&["<Name>con1</Name>", "<Name>con2</Name>"])
    .save_xml("NextMarker", "cmark");
    s.get(
        "list containers, page 2",
        "/?comp=list&prefix=c&maxresults=2&marker={cmark}",
    )
    .contains(&["<Name>con3</Name>"]);
    s.get(
        "list containers with metadata",
        "/?comp=list&prefix=con2&include=metadata",
    )
    .contains(&["<Name>con2</Name>", "<owner>lead</owner>"]);
    s.get("list containers, maxresults=0", "/?comp=list&maxresults=0")
        .fails(400, "OutOfRangeQueryParameterValue")
        .status_only(V);
    s.get(
        "list containers, maxresults not a number",
        "/?comp=list&maxresults=abc",
    )
    .fails(400, "InvalidQueryParameterValue")
    .status_only(V);
    s.del("delete container c3", "/con3?restype=container")
        .status(202);
    s.del("delete container c3 again", "/con3?restype=container")
        .fails(404, "ContainerNotFound");
    s.get("list containers after delete", "/?comp=list&prefix=con3")
        .contains(&["<Containers"]);
    s.del(
        "delete container, if-unmodified-since past",
        "/con2?restype=container",
    )
    .h("if-unmodified-since", PAST)
    .fails(412, "ConditionNotMet");
    s.get("c2 survives the failed delete", "/con2?restype=container");
}

fn block_blobs(s: &mut Script) {
    s.block_blob("put blob b1", "/con1/b1", b"hello world")
        .eh("content-md5", "XrY7u+Ae7tCTyyK7j1rNww==")
        .save_etag("b1");
    s.get("get blob b1", "/con1/b1")
        .eb(b"hello world")
        .eh("content-length", "11")
        .eh("x-ms-blob-type", "BlockBlob")
        .same_etag("b1");
    s.head("blob properties b1", "/con1/b1")
        .eh("content-length", "11")
        .eh("x-ms-blob-type", "BlockBlob")
        .eh("content-md5", "XrY7u+Ae7tCTyyK7j1rNww==")
        .eh("x-ms-lease-state", "available")
        .same_etag("b1");
    s.put("put blob without x-ms-blob-type", "/con1/bx")
        .body(b"x")
        .fails(400, "MissingRequiredHeader")
        .status_only(V);
    s.put("put blob with bad x-ms-blob-type", "/con1/bx")
        .h("x-ms-blob-type", "Bogus")
        .body(b"x")
        .fails(400, "InvalidHeaderValue")
        .status_only(V);
    s.block_blob("put blob with wrong Content-MD5", "/con1/b1", b"other text")
        .h("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")
        .fails(400, "Md5Mismatch");
    s.get("b1 unchanged after Md5Mismatch", "/con1/b1")
        .eb(b"hello world")
        .same_etag("b1");
    s.block_blob("put blob into missing container", "/nope/b", b"x")
        .fails(404, "ContainerNotFound");
    s.get("get missing blob", "/con1/missing")
        .fails(404, "BlobNotFound");
    s.head("HEAD missing blob", "/con1/missing")
        .fails(404, "BlobNotFound");
    s.get("get blob in missing container", "/nope/b")
        .fails(404, "ContainerNotFound");
    // Ranges.
    s.get("x-ms-range 0-4", "/con1/b1")
        .h("x-ms-range", "bytes=0-4")
        .status(206)
        .eb(b"hello")
        .eh("content-range", "bytes 0-4/11")
        .eh("content-length", "5");
    s.get("Range 6-", "/con1/b1")
        .h("range", "bytes=6-")
        .status(206)
        .eb(b"world")
        .eh("content-range", "bytes 6-10/11");
    s.get("Range past the end is clipped", "/con1/b1")
        .h("range", "bytes=6-100")
        .status(206)
        .eb(b"world")
        .eh("content-range", "bytes 6-10/11");
    s.get("x-ms-range wins over Range", "/con1/b1")
        .h("range", "bytes=0-1")
        .h("x-ms-range", "bytes=2-3")
        .status(206)
        .eb(b"ll");
    s.get("range starting at the size", "/con1/b1")
        .h("x-ms-range", "bytes=11-")
        .fails(416, "InvalidRange")
        .differs("Azurite answers 206 with an empty body for a range starting at the blob size");
    s.get("range starting past the size", "/con1/b1")
        .h("range", "bytes=20-30")
        .fails(416, "InvalidRange");
    s.get("range with content md5", "/con1/b1")
        .h("x-ms-range", "bytes=0-4")
        .h("x-ms-range-get-content-md5", "true")
        .status(206)
        .eh("content-md5", "XUFAKrxLKna5cZ2REBfFkg==");
    s.get("content md5 without a range", "/con1/b1")
        .h("x-ms-range-get-content-md5", "true")
        .fails(400, "InvalidHeaderValue")
        .differs("Azurite ignores x-ms-range-get-content-md5 without a range");
    // Read conditions.
    s.get("if-match current etag", "/con1/b1")
        .h("if-match", "{b1}")
        .eb(b"hello world");
    s.get("if-match other etag", "/con1/b1")
        .h("if-match", "\"0x1234\"")
        .fails(412, "ConditionNotMet");
    s.get("if-none-match current etag", "/con1/b1")
        .h("if-none-match", "{b1}")
        .status(304);
    s.head("HEAD if-none-match current etag", "/con1/b1")
        .h("if-none-match", "{b1}")
        .status(304);
    s.get("if-none-match other etag", "/con1/b1")
        .h("if-none-match", "\"0x1234\"")
        .eb(b"hello world");
    s.get("if-modified-since future", "/con1/b1")
        .h("if-modified-since", FUTURE)
        .status(304);
    s.get("if-modified-since past", "/con1/b1")
        .h("if-modified-since", PAST)
        .eb(b"hello world");
    s.get("if-unmodified-since past", "/con1/b1")
        .h("if-unmodified-since", PAST)
        .fails(412, "ConditionNotMet");
    s.get("if-unmodified-since future", "/con1/b1")
        .h("if-unmodified-since", FUTURE)
        .eb(b"hello world");
    // Write conditions.
    s.block_blob("overwrite with if-match other etag", "/con1/b1", b"new")
        .h("if-match", "\"0x1234\"")
        .fails(412, "ConditionNotMet");
    s.block_blob("create-only over existing blob", "/con1/b1", b"new")
        .h("if-none-match", "*")
        .fails(409, "BlobAlreadyExists");
    s.block_blob(
        "overwrite with if-unmodified-since past",
        "/con1/b1",
        b"new",
    )
    .h("if-unmodified-since", PAST)
    .fails(412, "ConditionNotMet");
    s.get("b1 unchanged after failed conditions", "/con1/b1")
        .eb(b"hello world")
        .same_etag("b1");
    s.block_blob(
        "overwrite with if-match current etag",
        "/con1/b1",
        b"hello again",
    )
    .h("if-match", "{b1}")
    .h("x-ms-meta-kind", "greeting")
    .new_etag("b1");
    s.get("get overwritten b1", "/con1/b1")
        .eb(b"hello again")
        .eh("x-ms-meta-kind", "greeting")
        .same_etag("b1");
    s.block_blob("create-only on a new name", "/con1/b-new", b"fresh")
        .h("if-none-match", "*");
    s.block_blob("if-match on a missing blob", "/con1/b-missing", b"x")
        .h("if-match", "\"0x1234\"")
        .fails(412, "ConditionNotMet");
    // Metadata and properties.
    s.put("set blob metadata", "/con1/b1?comp=metadata")
        .h("x-ms-meta-k1", "v1")
        .h("x-ms-meta-k2", "v2")
        .new_etag("b1");
    s.get("get blob metadata", "/con1/b1?comp=metadata")
        .differs("Azurite serves GET ?comp=metadata as a whole Get Blob")
        .eh("x-ms-meta-k1", "v1")
        .eh("x-ms-meta-k2", "v2")
        .same_etag("b1");
    s.head("properties show metadata, not the old one", "/con1/b1")
        .eh("x-ms-meta-k1", "v1")
        .same_etag("b1");
    s.put(
        "set blob metadata with if-match other",
        "/con1/b1?comp=metadata",
    )
    .h("if-match", "\"0x1234\"")
    .h("x-ms-meta-k3", "v3")
    .fails(412, "ConditionNotMet");
    let big = "m".repeat(9000);
    s.block_blob("put blob with metadata over 8 KiB", "/con1/zz-meta", b"x")
        .h("x-ms-meta-big", &big)
        .fails(400, "MetadataTooLarge")
        .differs("Azurite does not enforce the 8 KiB metadata limit");
    s.put(
        "set metadata on missing blob",
        "/con1/missing?comp=metadata",
    )
    .h("x-ms-meta-k1", "v1")
    .fails(404, "BlobNotFound");
    s.put("set blob properties", "/con1/b1?comp=properties")
        .h("x-ms-blob-content-type", "text/plain")
        .h("x-ms-blob-content-language", "en")
        .h("x-ms-blob-cache-control", "no-cache")
        .new_etag("b1");
    s.head("properties after set", "/con1/b1")
        .eh("content-type", "text/plain")
        .eh("content-language", "en")
        .eh("cache-control", "no-cache")
        .eh("x-ms-meta-k1", "v1")
        .same_etag("b1");
    s.get("get blob after set properties", "/con1/b1")
        .eb(b"hello again")
        .eh("content-type", "text/plain");
    s.put(
        "set properties on missing blob",
        "/con1/missing?comp=properties",
    )
    .h("x-ms-blob-content-type", "text/plain")
    .fails(404, "BlobNotFound");
    s.block_blob("put blob with content headers", "/con1/typed", b"{}")
        .h("content-type", "application/json")
        .h("x-ms-blob-content-disposition", "attachment");
    s.head("content headers stored", "/con1/typed")
        .eh("content-type", "application/json")
        .eh("content-disposition", "attachment");
    // Empty blob.
    s.block_blob("put empty blob", "/con1/empty", b"");
    s.get("get empty blob", "/con1/empty")
        .eb(b"")
        .eh("content-length", "0");
    s.get("range on empty blob", "/con1/empty")
        .h("x-ms-range", "bytes=0-")
        .fails(416, "InvalidRange")
        .differs("Azurite answers 206 with an empty body for a range on an empty blob");
    // Staged blocks.
    s.put(
        "put block A",
        &format!("/con1/b2?comp=block&blockid={}", q(BA)),
    )
    .body(b"AAAA")
    .status(201);
    s.put(
        "put block B",
        &format!("/con1/b2?comp=block&blockid={}", q(BB)),
    )
    .body(b"BBB")
    .status(201);
    s.put(
        "put block C",
        &format!("/con1/b2?comp=block&blockid={}", q(BC)),
    )
    .body(b"CC")
    .status(201);
    s.get("uncommitted blob is not readable", "/con1/b2")
        .fails(404, "BlobNotFound");
    s.get(
        "get uncommitted block list",
        "/con1/b2?comp=blocklist&blocklisttype=uncommitted",
    )
    .contains(&[
        BA,
        "<Size>4</Size>",
        BB,
        "<Size>3</Size>",
        BC,
        "<Size>2</Size>",
    ])
    .etag_differs("Azurite sends an ETag from Get Block List of a blob without committed blocks");
    s.put(
        "re-stage block B",
        &format!("/con1/b2?comp=block&blockid={}", q(BB)),
    )
    .body(b"bbbbb")
    .status(201);
    s.put("put block with bad id", "/con1/b2?comp=block&blockid=!!!")
        .body(b"x")
        .fails(400, "InvalidQueryParameterValue");
    s.put("put block without id", "/con1/b2?comp=block")
        .body(b"x")
        .fails(400, "MissingRequiredQueryParameter")
        .status_only(V);
    s.put(
        "put block with different id length",
        "/con1/b2?comp=block&blockid=QUJD",
    )
    .body(b"x")
    .fails(400, "InvalidBlobOrBlock");
    s.put(
        "put block into missing container",
        &format!("/nope/b2?comp=block&blockid={}", q(BA)),
    )
    .body(b"x")
    .fails(404, "ContainerNotFound");
    s.put("put block list, unknown id", "/con1/b2?comp=blocklist")
        .body(format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>{BA}</Latest><Latest>{BD}</Latest></BlockList>").as_bytes())
        .fails(400, "InvalidBlockList");
    s.put("put block list, bad XML", "/con1/b2?comp=blocklist")
        .body(b"<BlockList><Latest>")
        .fails(400, "InvalidXmlDocument")
        .status_only(V);
    s.get(
        "blocks still staged after failed commits",
        "/con1/b2?comp=blocklist&blocklisttype=all",
    )
    .contains(&["<CommittedBlocks", BA, BC, BB])
    .etag_differs("Azurite sends an ETag from Get Block List of a blob without committed blocks");
    s.put("put block list A,B", "/con1/b2?comp=blocklist")
        .body(format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>{BA}</Latest><Uncommitted>{BB}</Uncommitted></BlockList>").as_bytes())
        .h("x-ms-blob-content-type", "text/csv")
        .h("x-ms-meta-stage", "one")
        .status(201)
        .save_etag("b2");
    s.get("get committed blob b2", "/con1/b2")
        .eb(b"AAAAbbbbb")
        .eh("content-type", "text/csv")
        .eh("x-ms-meta-stage", "one")
        .same_etag("b2");
    s.get("committed block list", "/con1/b2?comp=blocklist")
        .contains(&[BA, "<Size>4</Size>", BB, "<Size>5</Size>"]);
    s.get(
        "uncommitted blocks dropped at commit",
        "/con1/b2?comp=blocklist&blocklisttype=uncommitted",
    )
    .contains(&["<UncommittedBlocks"]);
    s.get(
        "block list type invalid",
        "/con1/b2?comp=blocklist&blocklisttype=bogus",
    )
    .fails(400, "InvalidQueryParameterValue")
    .status_only(V);
    s.put(
        "stage block D",
        &format!("/con1/b2?comp=block&blockid={}", q(BD)),
    )
    .body(b"DDDDDD")
    .status(201);
    s.get(
        "all block lists",
        "/con1/b2?comp=blocklist&blocklisttype=all",
    )
    .contains(&["<CommittedBlocks>", BA, BB, "<UncommittedBlocks>", BD]);
    s.get("blob readable while blocks are staged", "/con1/b2")
        .eb(b"AAAAbbbbb")
        .same_etag("b2");
    s.put("commit committed B + uncommitted D + committed A", "/con1/b2?comp=blocklist")
        .body(format!("<BlockList><Committed>{BB}</Committed><Uncommitted>{BD}</Uncommitted><Committed>{BA}</Committed></BlockList>").as_bytes())
        .status(201)
        .new_etag("b2");
    s.get("get recommitted blob", "/con1/b2")
        .eb(b"bbbbbDDDDDDAAAA")
        .same_etag("b2");
    s.get("range across blocks", "/con1/b2")
        .h("x-ms-range", "bytes=3-12")
        .status(206)
        .eb(b"bbDDDDDDAA")
        .eh("content-range", "bytes 3-12/15");
    s.put(
        "commit with committed id that is only staged",
        "/con1/b2?comp=blocklist",
    )
    .body(format!("<BlockList><Committed>{BC}</Committed></BlockList>").as_bytes())
    .fails(400, "InvalidBlockList");
    s.get("content unchanged after failed commit", "/con1/b2")
        .eb(b"bbbbbDDDDDDAAAA")
        .same_etag("b2");
    s.put("commit with if-match other", "/con1/b2?comp=blocklist")
        .h("if-match", "\"0x1234\"")
        .body(format!("<BlockList><Committed>{BA}</Committed></BlockList>").as_bytes())
        .fails(412, "ConditionNotMet");
    s.get("block list of missing blob", "/con1/nothing?comp=blocklist")
        .fails(404, "BlobNotFound");
    s.put(
        "empty block list commits an empty blob",
        "/con1/b3?comp=blocklist",
    )
    .body(b"<BlockList></BlockList>")
    .status(201);
    s.get("get empty committed blob", "/con1/b3").eb(b"");
    // Delete.
    s.del("delete blob b3", "/con1/b3").status(202);
    s.get("deleted blob is gone", "/con1/b3")
        .fails(404, "BlobNotFound");
    s.del("delete blob b3 again", "/con1/b3")
        .fails(404, "BlobNotFound");
    s.del("delete with if-match other", "/con1/b2")
        .h("if-match", "\"0x1234\"")
        .fails(412, "ConditionNotMet");
    s.get("b2 survives failed delete", "/con1/b2")
        .same_etag("b2");
    s.req("unsupported verb", "POST", "/con1/b2")
        .fails(405, "UnsupportedHttpVerb")
        .differs("Azurite answers 400 for POST on a blob");
}

fn listing(s: &mut Script) {
    s.put("create container lst", "/lst?restype=container")
        .status(201);
    for name in ["a/1", "a/2", "a/b/3", "b/1", "c", "d"] {
        s.block_blob(
            &format!("put {name}"),
            &format!("/lst/{name}"),
            name.as_bytes(),
        )
        .h("x-ms-meta-n", "x");
    }
    s.put(
        "stage a block only (not listed)",
        &format!("/lst/e?comp=block&blockid={}", q(BA)),
    )
    .body(b"zz")
    .status(201);
    s.get("list all blobs", "/lst?restype=container&comp=list")
        .contains(&[
            "<Name>a/1</Name>",
            "<Name>a/2</Name>",
            "<Name>a/b/3</Name>",
            "<Name>b/1</Name>",
            "<Name>c</Name>",
            "<Name>d</Name>",
            "</Blobs>",
        ]);
    s.get(
        "list with prefix",
        "/lst?restype=container&comp=list&prefix=a/",
    )
    .contains(&["<Name>a/1</Name>", "<Name>a/2</Name>", "<Name>a/b/3</Name>"]);
    s.get(
        "list with delimiter",
        "/lst?restype=container&comp=list&delimiter=/",
    )
    .contains(&[
        "<BlobPrefix><Name>a/</Name></BlobPrefix>",
        "<BlobPrefix><Name>b/</Name></BlobPrefix>",
        "<Name>c</Name>",
        "<Name>d</Name>",
    ]);
    s.get(
        "list with prefix and delimiter",
        "/lst?restype=container&comp=list&prefix=a/&delimiter=/",
    )
    .contains(&[
        "<Name>a/1</Name>",
        "<Name>a/2</Name>",
        "<BlobPrefix><Name>a/b/</Name></BlobPrefix>",
    ]);
    s.get(
        "list page 1",
        "/lst?restype=container&comp=list&maxresults=2",
    )
    .contains(&["<Name>a/1</Name>", "<Name>a/2</Name>"])
    .save_xml("NextMarker", "m1");
    s.get(
        "list page 2",
        "/lst?restype=container&comp=list&maxresults=2&marker={m1}",
    )
    .contains(&["<Name>a/b/3</Name>", "<Name>b/1</Name>"])
    .save_xml("NextMarker", "m2");
    s.get(
        "list page 3",
        "/lst?restype=container&comp=list&maxresults=2&marker={m2}",
    )
    .contains(&["<Name>c</Name>", "<Name>d</Name>"]);
    s.get(
        "list with metadata",
        "/lst?restype=container&comp=list&prefix=c&include=metadata",
    )
    .contains(&["<Name>c</Name>", "<n>x</n>"]);
    s.get(
        "list with bad include",
        "/lst?restype=container&comp=list&include=bogus",
    )
    .fails(400, "InvalidQueryParameterValue")
    .status_only(V);
    s.get(
        "list blobs of missing container",
        "/nope?restype=container&comp=list",
    )
    .fails(404, "ContainerNotFound");
    s.get(
        "list with unmatched prefix",
        "/lst?restype=container&comp=list&prefix=zzz",
    )
    .contains(&["<Blobs"]);
    s.del("delete a/1", "/lst/a/1").status(202);
    s.get(
        "list after delete",
        "/lst?restype=container&comp=list&prefix=a/&delimiter=/",
    )
    .contains(&["<Name>a/2</Name>", "<Name>a/b/</Name>"]);
}

fn leases(s: &mut Script) {
    s.block_blob("put blob to lease", "/con1/L", b"leased content")
        .save_etag("L");
    s.put("acquire infinite lease", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "acquire")
        .h("x-ms-lease-duration", "-1")
        .h("x-ms-proposed-lease-id", L1)
        .status(201)
        .eh("x-ms-lease-id", L1)
        .same_etag("L");
    s.head("leased state", "/con1/L")
        .eh("x-ms-lease-state", "leased")
        .eh("x-ms-lease-status", "locked")
        .eh("x-ms-lease-duration", "infinite");
    s.block_blob("write without lease id", "/con1/L", b"x")
        .fails(412, "LeaseIdMissing");
    s.block_blob("write with wrong lease id", "/con1/L", b"x")
        .h("x-ms-lease-id", L2)
        .fails(412, "LeaseIdMismatchWithBlobOperation");
    s.put("metadata without lease id", "/con1/L?comp=metadata")
        .h("x-ms-meta-a", "b")
        .fails(412, "LeaseIdMissing");
    s.put("properties without lease id", "/con1/L?comp=properties")
        .fails(412, "LeaseIdMissing");
    s.del("delete without lease id", "/con1/L")
        .fails(412, "LeaseIdMissing");
    s.get("content unchanged under lease", "/con1/L")
        .eb(b"leased content")
        .same_etag("L");
    s.get("read with wrong lease id", "/con1/L")
        .h("x-ms-lease-id", L2)
        .fails(412, "LeaseIdMismatchWithBlobOperation");
    s.get("read with right lease id", "/con1/L")
        .h("x-ms-lease-id", L1)
        .eb(b"leased content");
    s.block_blob("write with lease id", "/con1/L", b"written under lease")
        .h("x-ms-lease-id", L1)
        .new_etag("L");
    s.head("lease kept across overwrite", "/con1/L")
        .eh("x-ms-lease-state", "leased");
    s.put("acquire again with another id", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "acquire")
        .h("x-ms-lease-duration", "-1")
        .h("x-ms-proposed-lease-id", L2)
        .fails(409, "LeaseAlreadyPresent");
    s.put("renew", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "renew")
        .h("x-ms-lease-id", L1)
        .eh("x-ms-lease-id", L1);
    s.put("renew with wrong id", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "renew")
        .h("x-ms-lease-id", L2)
        .fails(409, "LeaseIdMismatchWithLeaseOperation");
    s.put("renew without id", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "renew")
        .fails(400, "MissingRequiredHeader")
        .status_only(V);
    s.put("change lease id", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "change")
        .h("x-ms-lease-id", L1)
        .h("x-ms-proposed-lease-id", L2)
        .eh("x-ms-lease-id", L2);
    s.put("release with old id", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "release")
        .h("x-ms-lease-id", L1)
        .fails(409, "LeaseIdMismatchWithLeaseOperation");
    s.put("metadata with the changed id", "/con1/L?comp=metadata")
        .h("x-ms-lease-id", L2)
        .h("x-ms-meta-a", "b")
        .new_etag("L");
    s.put("release", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "release")
        .h("x-ms-lease-id", L2);
    s.head("available after release", "/con1/L")
        .eh("x-ms-lease-state", "available")
        .eh("x-ms-lease-status", "unlocked");
    s.put("release again", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "release")
        .h("x-ms-lease-id", L2)
        .fails(409, "LeaseNotPresentWithLeaseOperation")
        .differs("Azurite answers LeaseIdMismatchWithLeaseOperation on an available blob");
    s.put("break without a lease", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "break")
        .fails(409, "LeaseNotPresentWithLeaseOperation");
    s.block_blob("write with lease id but no lease", "/con1/L", b"x")
        .h("x-ms-lease-id", L1)
        .fails(412, "LeaseNotPresentWithBlobOperation");
    s.put("acquire with bad duration", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "acquire")
        .h("x-ms-lease-duration", "10")
        .fails(400, "InvalidHeaderValue");
    s.put("acquire with bad action", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "grab")
        .h("x-ms-lease-duration", "-1")
        .fails(400, "InvalidHeaderValue")
        .status_only(V);
    s.put("acquire 15s lease", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "acquire")
        .h("x-ms-lease-duration", "15")
        .h("x-ms-proposed-lease-id", L1)
        .status(201);
    s.head("fixed lease", "/con1/L")
        .eh("x-ms-lease-state", "leased")
        .eh("x-ms-lease-duration", "fixed");
    s.put("break now", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "break")
        .h("x-ms-lease-break-period", "0")
        .status(202)
        .eh("x-ms-lease-time", "0");
    s.head("broken", "/con1/L")
        .eh("x-ms-lease-state", "broken")
        .eh("x-ms-lease-status", "unlocked");
    s.put("renew a broken lease", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "renew")
        .h("x-ms-lease-id", L1)
        .fails(409, "LeaseIsBrokenAndCannotBeRenewed");
    s.put(
        "write to a broken-lease blob without id",
        "/con1/L?comp=metadata",
    )
    .h("x-ms-meta-a", "c")
    .new_etag("L");
    s.put("acquire after break", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "acquire")
        .h("x-ms-lease-duration", "-1")
        .h("x-ms-proposed-lease-id", L2)
        .status(201)
        .eh("x-ms-lease-id", L2);
    s.put("break with a period", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "break")
        .h("x-ms-lease-break-period", "4")
        .status(202)
        .eh("x-ms-lease-time", "4");
    s.head("breaking", "/con1/L")
        .eh("x-ms-lease-state", "breaking")
        .eh("x-ms-lease-status", "locked");
    s.put("write while breaking without id", "/con1/L?comp=metadata")
        .h("x-ms-meta-a", "d")
        .fails(412, "LeaseIdMissing");
    s.put("change while breaking", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "change")
        .h("x-ms-lease-id", L2)
        .h("x-ms-proposed-lease-id", L1)
        .fails(409, "LeaseIsBreakingAndCannotBeChanged");
    s.put("acquire while breaking", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "acquire")
        .h("x-ms-lease-duration", "-1")
        .h("x-ms-proposed-lease-id", L1)
        .fails(409, "LeaseAlreadyPresent");
    s.head("broken after the period", "/con1/L")
        .sleep(4500)
        .eh("x-ms-lease-state", "broken");
    s.put("lease on a missing blob", "/con1/missing?comp=lease")
        .h("x-ms-lease-action", "acquire")
        .h("x-ms-lease-duration", "-1")
        .fails(404, "BlobNotFound");
    s.put("acquire with a service-chosen id", "/con1/L?comp=lease")
        .h("x-ms-lease-action", "acquire")
        .h("x-ms-lease-duration", "-1")
        .status(201)
        .save_header("x-ms-lease-id", "lid");
    s.del("delete with the proposed id of before", "/con1/L")
        .h("x-ms-lease-id", L1)
        .fails(412, "LeaseIdMismatchWithBlobOperation");
    s.del("delete with the service-chosen id", "/con1/L")
        .h("x-ms-lease-id", "{lid}")
        .status(202);
    s.get("leased blob deleted", "/con1/L")
        .fails(404, "BlobNotFound");
}

fn page_blobs(s: &mut Script) {
    let pages = |c: u8| vec![c; 512];
    s.put("create page blob", "/con1/P")
        .h("x-ms-blob-type", "PageBlob")
        .h("x-ms-blob-content-length", "2048")
        .status(201)
        .save_etag("P");
    s.put("create page blob with unaligned size", "/con1/P2")
        .h("x-ms-blob-type", "PageBlob")
        .h("x-ms-blob-content-length", "1000")
        .fails(400, "InvalidHeaderValue")
        .status_only("Azurite answers InvalidOperation");
    s.put("create page blob without size", "/con1/P2")
        .h("x-ms-blob-type", "PageBlob")
        .fails(400, "MissingRequiredHeader")
        .status_only(V);
    s.head("page blob properties", "/con1/P")
        .eh("x-ms-blob-type", "PageBlob")
        .eh("content-length", "2048")
        .eh("x-ms-blob-sequence-number", "0");
    s.get("fresh page blob reads zeros", "/con1/P")
        .h("x-ms-range", "bytes=0-7")
        .status(206)
        .eb(&[0u8; 8]);
    s.put("put page 0-511", "/con1/P?comp=page")
        .h("x-ms-page-write", "update")
        .h("x-ms-range", "bytes=0-511")
        .body(&pages(b'a'))
        .status(201)
        .new_etag("P");
    s.put("put page 1024-1535", "/con1/P?comp=page")
        .h("x-ms-page-write", "update")
        .h("x-ms-range", "bytes=1024-1535")
        .body(&pages(b'b'))
        .status(201);
    s.get("page ranges", "/con1/P?comp=pagelist")
        .contains(&[
            "<Start>0</Start><End>511</End>",
            "<Start>1024</Start><End>1535</End>",
        ])
        .eh("x-ms-blob-content-length", "2048");
    s.get("read written pages", "/con1/P")
        .h("x-ms-range", "bytes=508-515")
        .status(206)
        .eb(b"aaaa\0\0\0\0");
    s.put("put page unaligned", "/con1/P?comp=page")
        .h("x-ms-page-write", "update")
        .h("x-ms-range", "bytes=1-512")
        .body(&pages(b'c'))
        .fails(416, "InvalidPageRange")
        .status_only("Azurite's error code is the reason phrase");
    s.put("put page past the end", "/con1/P?comp=page")
        .h("x-ms-page-write", "update")
        .h("x-ms-range", "bytes=2048-2559")
        .body(&pages(b'c'))
        .fails(416, "InvalidPageRange")
        .status_only("Azurite's error code is the reason phrase");
    s.put("put page body shorter than range", "/con1/P?comp=page")
        .h("x-ms-page-write", "update")
        .h("x-ms-range", "bytes=0-1023")
        .body(&pages(b'c'))
        .fails(400, "InvalidHeaderValue")
        .differs("Azurite answers 416 when Content-Length differs from the range length");
    s.put("put page without page-write", "/con1/P?comp=page")
        .h("x-ms-range", "bytes=0-511")
        .body(&pages(b'c'))
        .fails(400, "MissingRequiredHeader")
        .status_only(V);
    s.get("pages unchanged after bad writes", "/con1/P")
        .h("x-ms-range", "bytes=0-3")
        .status(206)
        .eb(b"aaaa");
    s.put("clear page 0-511", "/con1/P?comp=page")
        .h("x-ms-page-write", "clear")
        .h("x-ms-range", "bytes=0-511")
        .status(201);
    s.get("page ranges after clear", "/con1/P?comp=pagelist")
        .contains(&["<Start>1024</Start><End>1535</End>"]);
    s.get("cleared pages read zeros", "/con1/P")
        .h("x-ms-range", "bytes=0-3")
        .status(206)
        .eb(&[0u8; 4]);
    s.get("page ranges within a range", "/con1/P?comp=pagelist")
        .h("x-ms-range", "bytes=1024-1535")
        .contains(&["<Start>1024</Start><End>1535</End>"]);
    s.put("set page blob size", "/con1/P?comp=properties")
        .h("x-ms-blob-content-length", "4096")
        .status(200);
    s.head("page blob resized", "/con1/P")
        .eh("content-length", "4096");
    s.put("put page on a block blob", "/con1/b1?comp=page")
        .h("x-ms-page-write", "update")
        .h("x-ms-range", "bytes=0-511")
        .body(&pages(b'c'))
        .fails(409, "InvalidBlobType");
    s.get("page ranges of a block blob", "/con1/b1?comp=pagelist")
        .fails(409, "InvalidBlobType");
    s.put("put block list on a page blob", "/con1/P?comp=blocklist")
        .body(b"<BlockList></BlockList>")
        .fails(409, "InvalidBlobType");
    s.del("delete page blob", "/con1/P").status(202);
}

fn append_blobs(s: &mut Script) {
    s.put("create append blob", "/con1/A")
        .h("x-ms-blob-type", "AppendBlob")
        .status(201)
        .save_etag("A");
    s.put("append abc", "/con1/A?comp=appendblock")
        .body(b"abc")
        .status(201)
        .eh("x-ms-blob-append-offset", "0")
        .eh("x-ms-blob-committed-block-count", "1")
        .new_etag("A");
    s.put("append defg", "/con1/A?comp=appendblock")
        .body(b"defg")
        .status(201)
        .eh("x-ms-blob-append-offset", "3")
        .eh("x-ms-blob-committed-block-count", "2");
    s.get("read appended", "/con1/A")
        .eb(b"abcdefg")
        .eh("x-ms-blob-type", "AppendBlob");
    s.put("append at position 7", "/con1/A?comp=appendblock")
        .h("x-ms-blob-condition-appendpos", "7")
        .body(b"h")
        .status(201);
    s.put("append at a wrong position", "/con1/A?comp=appendblock")
        .h("x-ms-blob-condition-appendpos", "3")
        .body(b"zz")
        .fails(412, "AppendPositionConditionNotMet");
    s.put("append past max size", "/con1/A?comp=appendblock")
        .h("x-ms-blob-condition-maxsize", "9")
        .body(b"ij")
        .fails(412, "MaxBlobSizeConditionNotMet");
    s.put("append within max size", "/con1/A?comp=appendblock")
        .h("x-ms-blob-condition-maxsize", "100")
        .body(b"ij")
        .status(201)
        .eh("x-ms-blob-append-offset", "8");
    s.get("read after conditions", "/con1/A").eb(b"abcdefghij");
    s.get("range of an append blob", "/con1/A")
        .h("x-ms-range", "bytes=2-5")
        .status(206)
        .eb(b"cdef");
    s.head("append blob properties", "/con1/A")
        .eh("x-ms-blob-committed-block-count", "4")
        .eh("content-length", "10");
    s.put("append with if-match other", "/con1/A?comp=appendblock")
        .h("if-match", "\"0x1234\"")
        .body(b"k")
        .fails(412, "ConditionNotMet");
    s.put("append to a block blob", "/con1/b1?comp=appendblock")
        .body(b"k")
        .fails(409, "InvalidBlobType");
    s.put("append to a missing blob", "/con1/missing?comp=appendblock")
        .body(b"k")
        .fails(404, "BlobNotFound");
    s.put("create append blob with a body", "/con1/A2")
        .h("x-ms-blob-type", "AppendBlob")
        .body(b"no")
        .fails(400, "InvalidHeaderValue")
        .status_only("Azurite answers InvalidOperation");
    s.put(
        "put block on an append blob",
        &format!("/con1/A?comp=block&blockid={}", q(BA)),
    )
    .body(b"x")
    .fails(409, "InvalidBlobType");
    s.get("append blob unchanged", "/con1/A").eb(b"abcdefghij");
    s.get(
        "list shows blob types",
        "/con1?restype=container&comp=list&prefix=A",
    )
    .contains(&["<Name>A</Name>", "<BlobType>AppendBlob</BlobType>"]);
}

fn authorization(s: &mut Script) {
    s.get("signed with a wrong key", "/con1/b1")
        .auth(Signing::WrongKey)
        .fails(403, "AuthenticationFailed")
        .status_only(AU);
    s.block_blob("write signed with a wrong key", "/con1/b1", b"evil")
        .auth(Signing::WrongKey)
        .fails(403, "AuthenticationFailed")
        .status_only(AU);
    s.get("b1 unchanged after bad auth", "/con1/b1")
        .auth(Signing::Signed)
        .eb(b"hello again");
    s.del("unsigned delete", "/con1/b1")
        .auth(Signing::Unsigned)
        .fails(403, "AuthenticationFailed")
        .status_only(AU);
    s.get("b1 still there", "/con1/b1")
        .auth(Signing::Signed)
        .eb(b"hello again");
}

fn malformed(s: &mut Script) {
    let why = "Node's HTTP parser answers malformed framing with a bare 400 and no error code";

    s.req("garbage request line", "GET", "")
        .raw(b"GARBAGE\r\n\r\n".to_vec())
        .fails(400, "InvalidInput")
        .status_only(why);
    s.req("HTTP/1.0 request", "GET", "")
        .raw(b"GET /devstoreaccount1/con1/b1 HTTP/1.0\r\n\r\n".to_vec())
        .fails(400, "InvalidInput")
        .differs("Azurite answers HTTP/1.0 requests with 500");
    let mut huge =
        b"GET /devstoreaccount1/con1/b1 HTTP/1.1\r\nhost: 127.0.0.1\r\nx-ms-pad: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 70 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    s.req("70 KiB header", "GET", "")
        .raw(huge)
        .fails(431, "RequestHeaderFieldsTooLarge")
        .differs("Azurite resets the connection on a 70 KiB header field");
    let mut many = b"GET /devstoreaccount1/con1/b1 HTTP/1.1\r\nhost: 127.0.0.1\r\n".to_vec();
    for i in 0..=crate::http::MAX_HEADERS {
        many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    s.req("1025 header fields", "GET", "")
        .raw(many)
        .fails(431, "RequestHeaderFieldsTooLarge")
        .differs("Azurite accepts up to 2000 header fields (then refuses the unsigned request)");
    s.req("bad Content-Length", "PUT", "")
        .raw(b"PUT /devstoreaccount1/con1/b1 HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: abc\r\n\r\n".to_vec())
        .fails(400, "InvalidHeaderValue")
        .status_only(why);
    s.get("unknown account", "/con1/b1")
        .raw(
            b"GET /nosuchaccount/con1/b1 HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n"
                .to_vec(),
        )
        .fails(400, "InvalidUri")
        .differs("Azurite answers 404 ResourceNotFound for an unknown account");
    s.get("store intact after malformed input", "/con1/b1")
        .eb(b"hello again");
}

/// The whole script.
pub fn script() -> Vec<Step> {
    let mut s = Script::default();
    containers(&mut s);
    block_blobs(&mut s);
    listing(&mut s);
    leases(&mut s);
    page_blobs(&mut s);
    append_blobs(&mut s);
    authorization(&mut s);
    malformed(&mut s);
    s.del("delete container con1", "/con1?restype=container")
        .status(202);
    s.get("blobs gone with the container", "/con1/b1")
        .fails(404, "ContainerNotFound");
    s.steps
}
