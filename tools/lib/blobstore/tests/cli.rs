//! blobcli end to end on a file-backed store.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn cli(dev: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_blobcli"))
        .arg(dev)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

fn ok(dev: &Path, args: &[&str]) -> String {
    let (code, text) = cli(dev, args);
    assert_eq!(code, 0, "blobcli {args:?}: {text}");
    text.trim().to_string()
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("blobcli-test-{}-{name}", std::process::id()))
}

#[test]
fn init_create_import_export_snapshot_dump_recover() {
    let dev = temp("dev");
    let input = temp("in");
    let output = temp("out");
    let _ = std::fs::remove_file(&dev);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    ok(
        &dev,
        &[
            "init",
            "--size",
            "8388608",
            "--cluster-size",
            "65536",
            "--md-pages",
            "64",
        ],
    );
    let a = ok(&dev, &["create", "2", "--xattr", "name=first"]);
    let t = ok(&dev, &["create", "1", "--thin"]);
    assert_eq!(a, "0x100000000");
    ok(&dev, &["import", &t, input.to_str().unwrap()]);
    ok(&dev, &["export", &t, output.to_str().unwrap()]);
    assert_eq!(std::fs::read(&output).unwrap(), data);
    let s = ok(&dev, &["snapshot", &t]);
    let c = ok(&dev, &["clone", &s]);
    let list = ok(&dev, &["list"]);
    assert!(
        list.contains(&format!("{s} clusters 5 allocated 5 thin read-only")),
        "{list}"
    );
    assert!(
        list.contains(&format!("{c} clusters 5 allocated 0 thin")),
        "{list}"
    );
    let show = ok(&dev, &["show", &a]);
    assert!(show.contains("xattr name = \"first\""), "{show}");
    ok(&dev, &["set-xattr", &a, "k", "v"]);
    ok(&dev, &["remove-xattr", &a, "name"]);
    let show = ok(&dev, &["show", &a]);
    assert!(
        show.contains("xattr k = \"v\"") && !show.contains("first"),
        "{show}"
    );
    let (code, _) = cli(&dev, &["delete", &s]);
    assert_eq!(code, 16, "snapshot with two clones is busy");
    let (code, _) = cli(&dev, &["show", "0x100000030"]);
    assert_eq!(code, 2);
    let dump = ok(&dev, &["dump"]);
    assert!(dump.starts_with("super block: crc OK"), "{dump}");
    assert!(
        dump.contains("md page 0: blob 0x100000000 sequence 0 next none crc OK"),
        "{dump}"
    );
    assert!(!dump.contains("Mismatch"));
    let rec = ok(&dev, &["recover"]);
    assert!(rec.starts_with("recovered: 4 blobs"), "{rec}");
    ok(&dev, &["resize", &a, "4"]);
    ok(&dev, &["fill", &a, "171"]);
    let bs = ok(&dev, &["show", "bs"]);
    assert!(bs.contains("blobs:              4"), "{bs}");
    for f in [dev, input, output] {
        let _ = std::fs::remove_file(f);
    }
}
