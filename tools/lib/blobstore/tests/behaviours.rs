//! The behaviours SPDK's unit tests assert (reference section 3), one test each.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use blobstore::format::{self, SuperBlock};
use blobstore::{
    read_super_block, BlobOptions, Blobstore, CrashMode, Device, InitOptions, LoadOptions,
    MemDevice,
};
use common::*;

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const ENXIO: i32 = 6;
const ENOMEM: i32 = 12;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;
const ENOSPC: i32 = 28;
const EILSEQ: i32 = 84;

fn thick(n: u64) -> BlobOptions {
    BlobOptions {
        num_clusters: n,
        ..BlobOptions::default()
    }
}

fn thin(n: u64) -> BlobOptions {
    BlobOptions {
        num_clusters: n,
        thin_provision: true,
        ..BlobOptions::default()
    }
}

#[test]
fn b01_init_writes_v3_dirty_superblock_unload_marks_clean() {
    let (dev, bs) = small();
    let sb = read_super_block(dev.as_ref()).unwrap();
    assert_eq!(sb.version, 3);
    assert!(!sb.clean);
    assert_eq!(sb.md_len, 32);
    bs.unload().unwrap();
    let mut raw = vec![0u8; 4096];
    dev.read_at(&mut raw, 0).unwrap();
    assert!(format::crc_ok(&raw));
    assert!(SuperBlock::decode(&raw).unwrap().clean);
    // Further use of an unloaded store fails.
    assert_eq!(errno(bs.create_blob(&thin(1))), 9);
}

#[test]
fn b02_corrupt_superblock_crc_or_version_fails_load() {
    let (dev, bs) = small();
    bs.unload().unwrap();
    let mut raw = vec![0u8; 4096];
    dev.read_at(&mut raw, 0).unwrap();
    let mut bad = raw.clone();
    bad[4092] ^= 0xff;
    dev.poke(0, &bad);
    assert_eq!(errno(load(&dev)), EILSEQ);
    let mut v4 = raw.clone();
    v4[8..12].copy_from_slice(&4u32.to_le_bytes());
    format::seal(&mut v4);
    dev.poke(0, &v4);
    assert_eq!(errno(load(&dev)), EILSEQ);
    dev.poke(0, &raw);
    load(&dev).unwrap();
}

#[test]
fn b03_bstype_mismatch_fails_zero_loads_any() {
    let dev = Arc::new(MemDevice::new(1 << 20, 4096));
    let mut t = [0u8; 16];
    t[..4].copy_from_slice(b"AZBL");
    let bs = Blobstore::init(
        dev.clone() as Arc<dyn Device>,
        &InitOptions {
            cluster_size: 16384,
            num_md_pages: Some(32),
            bstype: t,
            ..InitOptions::default()
        },
    )
    .unwrap();
    bs.unload().unwrap();
    let mut other = [0u8; 16];
    other[..4].copy_from_slice(b"LVOL");
    let r = Blobstore::load(
        dev.clone() as Arc<dyn Device>,
        &LoadOptions {
            bstype: other,
            ..LoadOptions::default()
        },
    );
    assert_eq!(errno(r), ENXIO);
    let same = Blobstore::load(
        dev.clone() as Arc<dyn Device>,
        &LoadOptions {
            bstype: t,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(same.bstype(), t);
    same.unload().unwrap();
    let any = load(&dev).unwrap();
    assert_eq!(any.bstype(), t);
}

#[test]
fn b04_device_smaller_than_store_fails_larger_loads() {
    let (dev, bs) = small();
    bs.unload().unwrap();
    let img = dev.image();
    let smaller = Arc::new(MemDevice::from_image(img[..img.len() / 2].to_vec(), 4096));
    assert_eq!(errno(load(&smaller)), EILSEQ);
    let mut big = img.clone();
    big.resize(img.len() * 2, 0);
    let larger = Arc::new(MemDevice::from_image(big, 4096));
    let bs = load(&larger).unwrap();
    assert_eq!(bs.total_clusters(), 64);
}

#[test]
fn b05_clean_flag_stays_until_first_persist() {
    let (dev, bs) = small();
    bs.unload().unwrap();
    let bs = load(&dev).unwrap();
    assert!(read_super_block(dev.as_ref()).unwrap().clean);
    let _ = bs.blob_ids();
    assert!(read_super_block(dev.as_ref()).unwrap().clean);
    bs.create_blob(&thin(1)).unwrap();
    assert!(!read_super_block(dev.as_ref()).unwrap().clean);
}

#[test]
fn b06_cluster_size_validation_and_custom_size_survives_reload() {
    for bad in [0u32, 4097, 2048] {
        let dev = Arc::new(MemDevice::new(1 << 20, 4096));
        let r = Blobstore::init(
            dev as Arc<dyn Device>,
            &InitOptions {
                cluster_size: bad,
                ..InitOptions::default()
            },
        );
        assert_eq!(errno(r), EINVAL, "cluster size {bad}");
    }
    let (dev, bs) = mem_store(1 << 20, 4096, 8192, Some(16));
    assert_eq!(bs.cluster_size(), 8192);
    bs.unload().unwrap();
    let bs = load(&dev).unwrap();
    assert_eq!(bs.cluster_size(), 8192);
    assert_eq!(bs.total_clusters(), 128);
}

#[test]
fn b07_usable_clusters_stable_and_md_past_one_cluster() {
    let (dev, bs) = small();
    let usable = bs.usable_clusters();
    assert_eq!(usable, bs.free_clusters());
    let id = bs.create_blob(&thick(3)).unwrap();
    assert_eq!(bs.usable_clusters(), usable);
    bs.unload().unwrap();
    let bs = load(&dev).unwrap();
    assert_eq!(bs.usable_clusters(), usable);
    assert_eq!(bs.free_clusters(), usable - 3);
    assert!(bs.blob_ids().contains(&id));
    // 200 md pages at 4 KiB = 50 clusters of 16 KiB of metadata.
    let (dev, bs) = mem_store(2 << 20, 4096, 16384, Some(200));
    assert!(bs.usable_clusters() < 128 - 50);
    let mut ids = Vec::new();
    for _ in 0..150 {
        ids.push(bs.create_blob(&thin(1)).unwrap());
    }
    bs.unload().unwrap();
    let bs = load(&dev).unwrap();
    assert_eq!(bs.blob_ids(), ids);
}

#[test]
fn b08_ids_have_bit_32_unknown_ids_enoent() {
    let (_dev, bs) = small();
    let id = bs.create_blob(&thin(1)).unwrap();
    assert_eq!(id, 1 << 32);
    assert_eq!(id >> 32, 1);
    assert_eq!(errno(bs.open_blob(id & 0xffff_ffff)), ENOENT);
    assert_eq!(errno(bs.open_blob((1 << 32) | 17)), ENOENT);
    assert_eq!(errno(bs.delete_blob((1 << 32) | 17)), ENOENT);
    assert_eq!(errno(bs.delete_blob(5)), ENOENT);
}

#[test]
fn b09_open_is_refcounted_same_handle() {
    let (_dev, bs) = small();
    let id = bs.create_blob(&thin(2)).unwrap();
    let a = bs.open_blob(id).unwrap();
    let b = bs.open_blob(id).unwrap();
    assert!(a.same_blob(&b));
    a.write(0, &[7u8; 4096]).unwrap();
    let mut buf = [0u8; 4096];
    b.read(0, &mut buf).unwrap();
    assert_eq!(buf, [7u8; 4096]);
    a.close().unwrap();
    assert_eq!(errno(bs.unload()), EBUSY);
    b.close().unwrap();
    bs.unload().unwrap();
}

#[test]
fn b10_thick_create_allocates_enospc_and_loops_return_to_baseline() {
    let (_dev, bs) = small();
    let free0 = bs.free_clusters();
    let pages0 = bs.used_md_pages();
    let id = bs.create_blob(&thick(5)).unwrap();
    assert_eq!(bs.free_clusters(), free0 - 5);
    assert_eq!(errno(bs.create_blob(&thick(free0))), ENOSPC);
    assert_eq!(bs.free_clusters(), free0 - 5);
    bs.delete_blob(id).unwrap();
    for i in 0..20u64 {
        let id = bs.create_blob(&thick(i % 4 + 1)).unwrap();
        bs.delete_blob(id).unwrap();
    }
    assert_eq!(bs.free_clusters(), free0);
    assert_eq!(bs.used_md_pages(), pages0);
    bs.check().unwrap();
}

#[test]
fn b11_unload_with_open_blob_ebusy() {
    let (_dev, bs) = small();
    let id = bs.create_blob(&thin(1)).unwrap();
    let b = bs.open_blob(id).unwrap();
    assert_eq!(errno(bs.unload()), EBUSY);
    drop(b);
    bs.unload().unwrap();
}

#[test]
fn b12_xattrs_and_md_ro() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thin(1)).unwrap();
    let b = bs.open_blob(id).unwrap();
    b.set_xattr("name", b"log.txt").unwrap();
    b.set_xattr("length", &2345u64.to_le_bytes()).unwrap();
    b.set_xattr("name", b"log2.txt").unwrap();
    assert_eq!(b.get_xattr("name").unwrap(), b"log2.txt");
    assert_eq!(b.xattr_names().unwrap(), vec!["name", "length"]);
    assert_eq!(errno(b.get_xattr("missing")), ENOENT);
    assert_eq!(errno(b.remove_xattr("missing")), ENOENT);
    b.remove_xattr("length").unwrap();
    assert_eq!(errno(b.get_xattr("length")), ENOENT);
    b.set_read_only().unwrap();
    b.sync_md().unwrap();
    assert_eq!(errno(b.set_xattr("x", b"y")), EPERM);
    assert_eq!(errno(b.remove_xattr("name")), EPERM);
    assert_eq!(b.get_xattr("name").unwrap(), b"log2.txt");
    b.close().unwrap();
    bs.unload().unwrap();
    let bs = load(&dev).unwrap();
    let b = bs.open_blob(id).unwrap();
    assert_eq!(b.xattr_names().unwrap(), vec!["name"]);
    assert_eq!(errno(b.set_xattr("x", b"y")), EPERM);
}

#[test]
fn b13_internal_xattrs_hidden_flag_toggles_and_too_large_enomem() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thin(1)).unwrap();
    let b = bs.open_blob(id).unwrap();
    assert!(!b.has_internal_xattr_flag().unwrap());
    b.set_internal_xattr("svc", b"props").unwrap();
    b.sync_md().unwrap();
    assert!(b.has_internal_xattr_flag().unwrap());
    assert_eq!(errno(b.get_xattr("svc")), ENOENT);
    assert!(b.xattr_names().unwrap().is_empty());
    assert_eq!(b.get_internal_xattr("svc").unwrap(), b"props");
    assert_eq!(errno(b.set_internal_xattr("SNAP", b"x")), EINVAL);
    b.close().unwrap();
    bs.unload().unwrap();
    let bs = load(&dev).unwrap();
    let b = bs.open_blob(id).unwrap();
    assert_eq!(b.get_internal_xattr("svc").unwrap(), b"props");
    b.remove_internal_xattr("svc").unwrap();
    b.sync_md().unwrap();
    assert!(!b.has_internal_xattr_flag().unwrap());
    assert_eq!(errno(b.set_xattr("big", &vec![1u8; 4096])), ENOMEM);
    let r = bs.create_blob(&BlobOptions {
        xattrs: vec![("big".into(), vec![1u8; 5000])],
        ..BlobOptions::default()
    });
    assert_eq!(errno(r), ENOMEM);
}

#[test]
fn b14_multi_page_chain_survives_reload_and_dirty_load() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thick(2)).unwrap();
    let b = bs.open_blob(id).unwrap();
    for i in 0..20u8 {
        b.set_xattr(&format!("attr{i}"), &vec![i; 700]).unwrap();
    }
    b.sync_md().unwrap();
    b.close().unwrap();
    assert!(bs.used_md_pages() >= 5, "{}", bs.used_md_pages());
    let want = observe(&bs);
    let dirty = crash(&dev, CrashMode::DropUnflushed { seed: 1 });
    let bs2 = load(&dirty).unwrap();
    assert_eq!(observe(&bs2), want);
    bs2.check().unwrap();
    bs.unload().unwrap();
    let bs3 = load(&dev).unwrap();
    assert_eq!(observe(&bs3), want);
}

#[test]
fn b15_interrupted_sync_then_sync_leaves_exact_pages() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thick(1)).unwrap();
    let b = bs.open_blob(id).unwrap();
    for step in 1..12u64 {
        for i in 0..(step as u8 % 4 + 8) {
            b.set_xattr(&format!("a{i}"), &vec![step as u8; 600])
                .unwrap();
        }
        dev.fail_once(step);
        let _ = b.sync_md();
        b.sync_md().unwrap();
        bs.check().unwrap();
        let pages = bs.used_md_pages();
        let dirty = crash(&dev, CrashMode::DropUnflushed { seed: step });
        let re = load(&dirty).unwrap();
        re.check().unwrap();
        assert_eq!(re.used_md_pages(), pages, "step {step}");
        assert_eq!(observe(&re).blobs, observe_open(&bs, &b));
    }
}

fn observe_open(bs: &Blobstore, _b: &blobstore::Blob) -> std::collections::BTreeMap<u64, BlobView> {
    observe(bs).blobs
}

#[test]
fn b16_thick_resize_allocates_now_shrink_frees_at_sync() {
    let (dev, bs) = small();
    let free0 = bs.free_clusters();
    let id = bs.create_blob(&thick(2)).unwrap();
    let b = bs.open_blob(id).unwrap();
    b.resize(6).unwrap();
    assert_eq!(bs.free_clusters(), free0 - 6);
    b.sync_md().unwrap();
    b.resize(1).unwrap();
    assert_eq!(b.num_clusters(), 1);
    assert_eq!(bs.free_clusters(), free0 - 6);
    b.sync_md().unwrap();
    assert_eq!(bs.free_clusters(), free0 - 1);
    b.close().unwrap();
    bs.check().unwrap();
    let re = load(&crash(&dev, CrashMode::DropUnflushed { seed: 3 })).unwrap();
    assert_eq!(re.free_clusters(), free0 - 1);
}

#[test]
fn b17_thin_resize_never_allocates_even_1tb() {
    let (dev, bs) = mem_store(8 << 20, 4096, 1 << 20, None);
    let free0 = bs.free_clusters();
    let id = bs.create_blob(&thin(0)).unwrap();
    let b = bs.open_blob(id).unwrap();
    b.resize(1 << 20).unwrap(); // 1 TiB of 1 MiB clusters
    b.sync_md().unwrap();
    assert_eq!(bs.free_clusters(), free0);
    assert_eq!(b.num_allocated_clusters(), 0);
    b.close().unwrap();
    bs.unload().unwrap();
    let bs = load(&dev).unwrap();
    let b = bs.open_blob(id).unwrap();
    assert_eq!(b.num_clusters(), 1 << 20);
    assert_eq!(bs.free_clusters(), free0);
}

#[test]
fn b18_thin_reads_zeroes_first_write_allocates_racing_writes_one_cluster() {
    let (_dev, bs) = small();
    let free0 = bs.free_clusters();
    let id = bs.create_blob(&thin(4)).unwrap();
    let b = Arc::new(bs.open_blob(id).unwrap());
    let mut buf = vec![0xffu8; 16384 * 4];
    b.read(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0));
    b.write(1, &[5u8; 4096]).unwrap();
    assert_eq!(b.num_allocated_clusters(), 1);
    assert_eq!(bs.free_clusters(), free0 - 1);
    b.read(0, &mut buf[..16384]).unwrap();
    assert!(buf[..4096].iter().all(|&x| x == 0));
    assert!(buf[4096..8192].iter().all(|&x| x == 5));
    assert!(buf[8192..16384].iter().all(|&x| x == 0));
    // Racing first writes into cluster 2, at different offsets.
    let threads: Vec<_> = (0..4u64)
        .map(|i| {
            let b = b.clone();
            std::thread::spawn(move || b.write(8 + i, &[10 + i as u8; 4096]).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(b.num_allocated_clusters(), 2);
    assert_eq!(bs.free_clusters(), free0 - 2);
    let mut c2 = vec![0u8; 16384];
    b.read(8, &mut c2).unwrap();
    for i in 0..4 {
        assert!(c2[i * 4096..(i + 1) * 4096]
            .iter()
            .all(|&x| x == 10 + i as u8));
    }
    bs.check().unwrap();
}

#[test]
fn b19_write_amplification_with_extent_table() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thin(4)).unwrap();
    let b = bs.open_blob(id).unwrap();
    let w0 = dev.write_count();
    b.write(0, &[1u8; 16384]).unwrap();
    assert_eq!(dev.write_count() - w0, 3, "data + extent page + root");
    let w1 = dev.write_count();
    b.write(4, &[2u8; 16384]).unwrap();
    assert_eq!(dev.write_count() - w1, 2, "data + extent page");
    let w2 = dev.write_count();
    b.write(4, &[3u8; 4096]).unwrap();
    assert_eq!(dev.write_count() - w2, 1, "overwrite: data only");
}

#[test]
fn b20_cluster_aligned_unmap_on_thin_frees_and_reads_zeroes() {
    let (dev, bs) = small();
    let free0 = bs.free_clusters();
    let id = bs.create_blob(&thin(3)).unwrap();
    let b = bs.open_blob(id).unwrap();
    b.write(0, &pattern(3 * 16384, 1)).unwrap();
    assert_eq!(bs.free_clusters(), free0 - 3);
    b.unmap(4, 4).unwrap();
    assert_eq!(bs.free_clusters(), free0 - 2);
    assert_eq!(b.num_allocated_clusters(), 2);
    let mut buf = vec![1u8; 16384];
    b.read(4, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0));
    // Partial unmap keeps the cluster but reads zeroes.
    b.unmap(9, 1).unwrap();
    assert_eq!(b.num_allocated_clusters(), 2);
    b.read(8, &mut buf).unwrap();
    assert!(buf[4096..8192].iter().all(|&x| x == 0));
    assert_eq!(&buf[..4096], &pattern(3 * 16384, 1)[8 * 4096..9 * 4096]);
    b.close().unwrap();
    bs.check().unwrap();
    let re = load(&crash(&dev, CrashMode::DropUnflushed { seed: 9 })).unwrap();
    assert_eq!(re.free_clusters(), free0 - 2);
}

#[test]
fn b21_range_checks_and_read_only_eperm() {
    let (_dev, bs) = small();
    let empty = bs.open_blob(bs.create_blob(&thin(0)).unwrap()).unwrap();
    assert_eq!(errno(empty.write(0, &[0u8; 4096])), EINVAL);
    empty.write(0, &[]).unwrap();
    let id = bs.create_blob(&thick(2)).unwrap();
    let b = bs.open_blob(id).unwrap();
    let mut buf = [0u8; 4096];
    assert_eq!(errno(b.read(8, &mut buf)), EINVAL);
    assert_eq!(errno(b.write(7, &[0u8; 8192])), EINVAL);
    assert_eq!(errno(b.write(0, &[0u8; 100])), EINVAL);
    assert_eq!(errno(b.unmap(6, 3)), EINVAL);
    b.write(0, &[3u8; 4096]).unwrap();
    b.set_read_only().unwrap();
    b.write(1, &[4u8; 4096]).unwrap(); // not yet in effect
    b.sync_md().unwrap();
    assert!(b.is_read_only());
    assert_eq!(errno(b.write(0, &[1u8; 4096])), EPERM);
    assert_eq!(errno(b.unmap(0, 1)), EPERM);
    assert_eq!(errno(b.write_zeroes(0, 1)), EPERM);
    b.read(0, &mut buf).unwrap();
    assert_eq!(buf, [3u8; 4096]);
}

#[test]
fn b22_io_split_across_clusters_buffers_and_iovecs() {
    let (_dev, bs) = mem_store(1 << 20, 512, 8192, Some(16));
    for thin_prov in [false, true] {
        let id = bs
            .create_blob(&BlobOptions {
                num_clusters: 4,
                thin_provision: thin_prov,
                ..BlobOptions::default()
            })
            .unwrap();
        let b = bs.open_blob(id).unwrap();
        let data = pattern(3 * 8192, 7);
        b.write(5, &data).unwrap(); // 5 * 512 bytes in, spans 4 clusters
        let mut back = vec![0u8; data.len()];
        b.read(5, &mut back).unwrap();
        assert_eq!(back, data);
        let (x, y) = data.split_at(10000 - 10000 % 512);
        b.writev(3, &[y, x]).unwrap();
        let mut p1 = vec![0u8; y.len()];
        let mut p2 = vec![0u8; x.len()];
        b.readv(3, &mut [&mut p1, &mut p2]).unwrap();
        assert_eq!(p1, y);
        assert_eq!(p2, x);
        let mut whole = vec![0u8; 4 * 8192];
        b.read(0, &mut whole).unwrap();
        assert_eq!(&whole[3 * 512..3 * 512 + y.len()], y);
    }
}

#[test]
fn b23_512_byte_io_units_and_io_unit_zero_loads_as_4096() {
    let (dev, bs) = mem_store(1 << 20, 512, 16384, Some(16));
    assert_eq!(bs.io_unit_size(), 512);
    let id = bs.create_blob(&thin(2)).unwrap();
    let b = bs.open_blob(id).unwrap();
    b.write(3, &[9u8; 512]).unwrap();
    let mut buf = vec![0u8; 2048];
    b.read(2, &mut buf).unwrap();
    assert!(buf[..512].iter().all(|&x| x == 0));
    assert!(buf[512..1024].iter().all(|&x| x == 9));
    b.close().unwrap();
    bs.unload().unwrap();
    assert_eq!(load(&dev).unwrap().io_unit_size(), 512);

    let (dev, bs) = small();
    bs.unload().unwrap();
    let mut raw = vec![0u8; 4096];
    dev.read_at(&mut raw, 0).unwrap();
    raw[88..92].copy_from_slice(&0u32.to_le_bytes());
    format::seal(&mut raw);
    dev.poke(0, &raw);
    assert_eq!(load(&dev).unwrap().io_unit_size(), 4096);
}

#[test]
fn b24_snapshot_is_read_only_owns_clusters_no_snapshot_of_snapshot() {
    let (_dev, bs) = small();
    let free0 = bs.free_clusters();
    let id = bs.create_blob(&thick(3)).unwrap();
    let b = bs.open_blob(id).unwrap();
    let data = pattern(3 * 16384, 2);
    b.write(0, &data).unwrap();
    let sid = bs
        .create_snapshot(id, &[("snap".into(), b"1".to_vec())])
        .unwrap();
    let s = bs.open_blob(sid).unwrap();
    assert!(s.is_read_only());
    assert_eq!(s.num_allocated_clusters(), 3);
    assert_eq!(s.get_xattr("snap").unwrap(), b"1");
    assert!(b.is_thin());
    assert_eq!(b.num_allocated_clusters(), 0);
    assert_eq!(b.parent_id(), Some(sid));
    assert_eq!(bs.free_clusters(), free0 - 3);
    let mut back = vec![0u8; data.len()];
    b.read(0, &mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(errno(bs.create_snapshot(sid, &[])), EINVAL);
    assert_eq!(errno(s.write(0, &[0u8; 4096])), EPERM);
    bs.check().unwrap();
}

#[test]
fn b25_io_during_snapshot_creation_waits_and_lands_in_original() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thick(2)).unwrap();
    let b = Arc::new(bs.open_blob(id).unwrap());
    b.write(0, &[1u8; 4096]).unwrap();
    dev.pause();
    let bs2 = bs.clone();
    let snap = std::thread::spawn(move || bs2.create_snapshot(id, &[]).unwrap());
    while dev.waiting_writers() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(b.is_busy());
    let b2 = b.clone();
    let writer = std::thread::spawn(move || b2.write(0, &[2u8; 4096]).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !writer.is_finished(),
        "the write must wait for the snapshot"
    );
    dev.resume();
    let sid = snap.join().unwrap();
    writer.join().unwrap();
    let mut buf = [0u8; 4096];
    b.read(0, &mut buf).unwrap();
    assert_eq!(buf, [2u8; 4096]);
    let s = bs.open_blob(sid).unwrap();
    s.read(0, &mut buf).unwrap();
    assert_eq!(buf, [1u8; 4096]);
    assert_eq!(b.num_allocated_clusters(), 1);
}

#[test]
fn b26_clone_only_from_read_only_and_cow_one_cluster() {
    let (_dev, bs) = small();
    let id = bs.create_blob(&thick(3)).unwrap();
    let b = bs.open_blob(id).unwrap();
    let data = pattern(3 * 16384, 3);
    b.write(0, &data).unwrap();
    assert_eq!(errno(bs.create_clone(id, &[])), EINVAL);
    let sid = bs.create_snapshot(id, &[]).unwrap();
    let cid = bs
        .create_clone(sid, &[("c".into(), b"x".to_vec())])
        .unwrap();
    let c = bs.open_blob(cid).unwrap();
    assert_eq!(c.parent_id(), Some(sid));
    assert_eq!(c.num_allocated_clusters(), 0);
    let free = bs.free_clusters();
    c.write(5, &[0xAAu8; 4096]).unwrap();
    assert_eq!(c.num_allocated_clusters(), 1);
    assert_eq!(bs.free_clusters(), free - 1);
    let mut got = vec![0u8; data.len()];
    c.read(0, &mut got).unwrap();
    let mut want = data.clone();
    want[5 * 4096..6 * 4096].fill(0xAA);
    assert_eq!(got, want);
    let s = bs.open_blob(sid).unwrap();
    s.read(0, &mut got).unwrap();
    assert_eq!(got, data);
    assert_eq!(bs.clones_of(sid).unwrap(), vec![id, cid]);
    bs.check().unwrap();
}

#[test]
fn b27_inflate_and_decouple() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thick(4)).unwrap();
    let b = bs.open_blob(id).unwrap();
    b.write(0, &pattern(4 * 16384, 4)).unwrap();
    let s1 = bs.create_snapshot(id, &[]).unwrap();
    b.write(4, &[5u8; 16384]).unwrap(); // cluster 1 now in b
    let s2 = bs.create_snapshot(id, &[]).unwrap(); // b -> s2 -> s1; s2 holds cluster 1
    b.write(8, &[6u8; 4096]).unwrap(); // b holds cluster 2
    let mut want = vec![0u8; 4 * 16384];
    b.read(0, &mut want).unwrap();
    bs.decouple_parent(id).unwrap();
    assert_eq!(b.parent_id(), Some(s1));
    assert_eq!(b.num_allocated_clusters(), 2);
    let mut got = vec![0u8; want.len()];
    b.read(0, &mut got).unwrap();
    assert_eq!(got, want);
    assert_eq!(bs.clones_of(s1).unwrap(), vec![id, s2]);
    bs.inflate(id).unwrap();
    assert_eq!(b.parent_id(), None);
    assert!(!b.is_thin());
    assert_eq!(b.num_allocated_clusters(), 4);
    b.read(0, &mut got).unwrap();
    assert_eq!(got, want);
    assert_eq!(errno(bs.decouple_parent(id)), EINVAL);
    b.close().unwrap();
    bs.check().unwrap();
    let re = load(&crash(&dev, CrashMode::DropUnflushed { seed: 27 })).unwrap();
    re.check().unwrap();
    assert_eq!(observe(&re), observe(&bs));
}

#[test]
fn b28_delete_snapshot_with_clones() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thick(2)).unwrap();
    let b = bs.open_blob(id).unwrap();
    b.write(0, &pattern(2 * 16384, 5)).unwrap();
    let sid = bs.create_snapshot(id, &[]).unwrap();
    let cid = bs.create_clone(sid, &[]).unwrap();
    assert_eq!(errno(bs.delete_blob(sid)), EBUSY);
    bs.delete_blob(cid).unwrap();
    let free = bs.free_clusters();
    b.write(4, &[8u8; 4096]).unwrap(); // b owns cluster 1 now
    let mut want = vec![0u8; 2 * 16384];
    b.read(0, &mut want).unwrap();
    bs.delete_blob(sid).unwrap();
    assert_eq!(b.parent_id(), None);
    assert_eq!(b.num_allocated_clusters(), 2);
    assert_eq!(bs.free_clusters(), free - 1 + 1);
    let mut got = vec![0u8; want.len()];
    b.read(0, &mut got).unwrap();
    assert_eq!(got, want);
    assert_eq!(errno(bs.open_blob(sid)), ENOENT);
    b.close().unwrap();
    bs.check().unwrap();
    let re = load(&crash(&dev, CrashMode::DropUnflushed { seed: 28 })).unwrap();
    re.check().unwrap();
    assert_eq!(observe(&re), observe(&bs));
}

#[test]
fn b29_compound_op_on_busy_blob_ebusy() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thin(4)).unwrap();
    let b = bs.open_blob(id).unwrap();
    dev.pause();
    let bs2 = bs.clone();
    let inflate = std::thread::spawn(move || bs2.inflate(id));
    while dev.waiting_writers() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(b.is_busy());
    assert_eq!(errno(bs.create_snapshot(id, &[])), EBUSY);
    assert_eq!(errno(bs.inflate(id)), EBUSY);
    assert_eq!(errno(b.resize(8)), EBUSY);
    dev.resume();
    inflate.join().unwrap().unwrap();
    assert!(!b.is_busy());
    b.resize(8).unwrap();
}

#[test]
fn b30_dirty_shutdown_recovers_everything() {
    let (dev, bs) = small();
    let a = bs
        .create_blob(&BlobOptions {
            num_clusters: 3,
            xattrs: vec![("k".into(), b"v".to_vec())],
            ..BlobOptions::default()
        })
        .unwrap();
    let t = bs.create_blob(&thin(10)).unwrap();
    let gone = bs.create_blob(&thick(2)).unwrap();
    bs.set_super_blob(a).unwrap();
    {
        let tb = bs.open_blob(t).unwrap();
        tb.write(12, &pattern(8192, 9)).unwrap();
        tb.set_xattr("size", b"big").unwrap();
        tb.resize(12).unwrap();
        tb.close().unwrap();
        let ab = bs.open_blob(a).unwrap();
        ab.write(0, &pattern(16384, 1)).unwrap();
        ab.flush().unwrap();
        ab.close().unwrap();
    }
    bs.delete_blob(gone).unwrap();
    let want = observe(&bs);
    let re = load(&crash(&dev, CrashMode::DropUnflushed { seed: 30 })).unwrap();
    re.check().unwrap();
    assert_eq!(observe(&re), want);
    assert_eq!(re.super_blob().unwrap(), a);
    assert_eq!(errno(re.open_blob(gone)), ENOENT);
}

#[test]
fn b32_root_crc_mismatch_einval_and_read_only_persists() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thick(1)).unwrap();
    let ro = bs.create_blob(&thin(1)).unwrap();
    {
        let b = bs.open_blob(ro).unwrap();
        b.set_read_only().unwrap();
        b.close().unwrap();
    }
    // Root of `id` is md page 0 of the metadata region.
    let sb = bs.super_block();
    let off = u64::from(sb.md_start) * 4096 + 4092;
    let mut crc = [0u8; 4];
    dev.read_at(&mut crc, off).unwrap();
    dev.poke(off, &[crc[0] ^ 1, crc[1], crc[2], crc[3]]);
    assert_eq!(errno(bs.open_blob(id)), EINVAL);
    assert_eq!(errno(bs.delete_blob(id)), EINVAL);
    dev.poke(off, &crc);
    bs.unload().unwrap();
    let bs = load(&dev).unwrap();
    assert!(bs.open_blob(ro).unwrap().is_read_only());
    assert!(!bs.open_blob(id).unwrap().is_read_only());
}

#[test]
fn grow_extends_within_reserved_mask() {
    let dev = Arc::new(MemDevice::new(1 << 20, 4096));
    let bs = Blobstore::init(
        dev.clone() as Arc<dyn Device>,
        &InitOptions {
            cluster_size: 16384,
            num_md_pages: Some(32),
            ..InitOptions::default()
        },
    )
    .unwrap();
    let free0 = bs.free_clusters();
    dev.resize(2 << 20);
    assert_eq!(bs.grow().unwrap(), 128);
    assert_eq!(bs.free_clusters(), free0 + 64);
    let id = bs.create_blob(&thick(free0 + 10)).unwrap();
    bs.unload().unwrap();
    let re = load(&dev).unwrap();
    assert_eq!(re.total_clusters(), 128);
    assert_eq!(re.open_blob(id).unwrap().num_clusters(), free0 + 10);
    let dirty = load(&crash(&dev, CrashMode::DropUnflushed { seed: 2 })).unwrap();
    assert_eq!(dirty.free_clusters(), re.free_clusters());
    // The mask room reserved at init bounds growth.
    dev.resize(1 << 30);
    assert_eq!(errno(re.grow()), ENOSPC);
}

#[test]
fn rle_blobs_round_trip() {
    let (dev, bs) = small();
    let id = bs
        .create_blob(&BlobOptions {
            num_clusters: 6,
            thin_provision: true,
            use_extent_table: false,
            ..BlobOptions::default()
        })
        .unwrap();
    let b = bs.open_blob(id).unwrap();
    b.write(4, &[1u8; 4096]).unwrap();
    b.write(16, &[2u8; 4096]).unwrap();
    b.close().unwrap();
    let want = observe(&bs);
    let re = load(&crash(&dev, CrashMode::DropUnflushed { seed: 4 })).unwrap();
    re.check().unwrap();
    assert_eq!(observe(&re), want);
}

#[test]
fn format_vectors_at_store_level() {
    // 64 MiB device, 4 KiB blocks, 1 MiB clusters.
    let (dev, bs) = mem_store(64 << 20, 4096, 1 << 20, None);
    let sb = bs.super_block();
    assert_eq!(bs.total_clusters(), 64);
    assert_eq!(
        (
            sb.used_page_mask_start,
            sb.used_cluster_mask_start,
            sb.used_blobid_mask_start
        ),
        (1, 2, 3)
    );
    assert_eq!((sb.md_start, sb.md_len), (4, 64));
    assert_eq!(bs.usable_clusters(), 63);
    // A 1-cluster thick blob on the empty store: root at md page 0, extent page at 1.
    let id = bs.create_blob(&thick(1)).unwrap();
    assert_eq!(id, 0x1_0000_0000);
    let mut page = vec![0u8; 4096];
    dev.read_at(&mut page, 4 * 4096).unwrap();
    assert_eq!(
        u32::from_le_bytes(page[4092..].try_into().unwrap()),
        0x7281_2e0a
    );
    dev.read_at(&mut page, 5 * 4096).unwrap();
    assert_eq!(
        u32::from_le_bytes(page[4092..].try_into().unwrap()),
        0x33f3_a763
    );
    // An empty thick blob on an empty store: extent table with no pages.
    let (dev, bs) = mem_store(64 << 20, 4096, 1 << 20, None);
    assert_eq!(bs.create_blob(&thick(0)).unwrap(), 0x1_0000_0000);
    dev.read_at(&mut page, 4 * 4096).unwrap();
    assert_eq!(
        u32::from_le_bytes(page[4092..].try_into().unwrap()),
        0x3c5b_3a12
    );
}

#[test]
fn broken_chain_fails_dirty_load_unless_force_recover() {
    let (dev, bs) = small();
    let id = bs.create_blob(&thick(2)).unwrap();
    let keep = bs.create_blob(&thick(1)).unwrap();
    let b = bs.open_blob(id).unwrap();
    for i in 0..12u8 {
        b.set_xattr(&format!("a{i}"), &vec![i; 700]).unwrap();
    }
    b.close().unwrap();
    // Find a chain page of `id` (sequence 1) and zero it.
    let sb = bs.super_block();
    let mut victim = None;
    for p in 0..sb.md_len {
        let mut page = vec![0u8; 4096];
        dev.read_at(&mut page, u64::from(sb.md_start + p) * 4096)
            .unwrap();
        if format::crc_ok(&page) && page[0..8] == id.to_le_bytes() && page[8] == 1 {
            victim = Some(p);
        }
    }
    let victim = victim.expect("a chain page");
    dev.poke(u64::from(sb.md_start + victim) * 4096, &[0u8; 4096]);
    let img = Arc::new(MemDevice::from_image(dev.image(), 4096));
    assert_eq!(errno(load(&img)), EILSEQ);
    let re = Blobstore::load(
        img.clone() as Arc<dyn Device>,
        &LoadOptions {
            force_recover: true,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(re.blob_ids(), vec![keep]);
    assert_eq!(re.free_clusters(), re.usable_clusters() - 1);
    re.check().unwrap();
}

#[test]
fn md_page_size_8k() {
    let dev = Arc::new(MemDevice::new(2 << 20, 4096));
    let bs = Blobstore::init(
        dev.clone() as Arc<dyn Device>,
        &InitOptions {
            cluster_size: 32768,
            num_md_pages: Some(16),
            md_page_size: 8192,
            ..InitOptions::default()
        },
    )
    .unwrap();
    assert_eq!(bs.md_page_size(), 8192);
    let id = bs.create_blob(&thin(3)).unwrap();
    let b = bs.open_blob(id).unwrap();
    b.write(9, &[4u8; 4096]).unwrap();
    b.set_xattr("x", &[1u8; 3000]).unwrap();
    b.close().unwrap();
    let want = observe(&bs);
    let dirty = load(&crash(&dev, CrashMode::DropUnflushed { seed: 8 })).unwrap();
    assert_eq!(observe(&dirty), want);
    bs.unload().unwrap();
    let clean = load(&dev).unwrap();
    assert_eq!(clean.md_page_size(), 8192);
    assert_eq!(observe(&clean), want);
    clean.check().unwrap();
}

#[test]
fn flag_rules_for_unknown_bits_and_unknown_descriptors() {
    let (dev, bs) = small();
    let ids: Vec<u64> = (0..4).map(|_| bs.create_blob(&thin(1)).unwrap()).collect();
    bs.unload().unwrap();
    let sb = read_super_block(dev.as_ref()).unwrap();
    let patch = |id: u64, f: &dyn Fn(&mut format::MdPage)| {
        let off = (u64::from(sb.md_start) + (id & 0xffff_ffff)) * 4096;
        let mut raw = vec![0u8; 4096];
        dev.read_at(&mut raw, off).unwrap();
        let mut page = format::MdPage::decode(&raw).unwrap();
        f(&mut page);
        dev.poke(off, &page.encode());
    };
    let set_flags = |invalid_or: u64, data_ro: u64, md_ro: u64| {
        move |p: &mut format::MdPage| {
            if let Some(format::Descriptor::Flags {
                invalid,
                data_ro: d,
                md_ro: m,
            }) = p.descriptors.first_mut()
            {
                *invalid |= invalid_or;
                *d = data_ro;
                *m = md_ro;
            }
        }
    };
    patch(ids[0], &set_flags(1 << 40, 0, 0));
    patch(ids[1], &set_flags(0, 1 << 9, 0));
    patch(ids[2], &set_flags(0, 0, 1 << 7));
    patch(ids[3], &|p: &mut format::MdPage| {
        p.descriptors
            .insert(1, format::Descriptor::Unknown { kind: 77 });
    });
    // Clean load: unknown descriptors are skipped; flags follow SPDK's rules.
    let re = load(&dev).unwrap();
    assert_eq!(errno(re.open_blob(ids[0])), EINVAL);
    let b1 = re.open_blob(ids[1]).unwrap();
    assert!(b1.is_read_only());
    assert_eq!(errno(b1.set_xattr("a", b"b")), EPERM);
    let b2 = re.open_blob(ids[2]).unwrap();
    assert!(!b2.is_read_only());
    b2.write(0, &[1u8; 4096]).unwrap();
    assert_eq!(errno(b2.set_xattr("a", b"b")), EPERM);
    re.open_blob(ids[3]).unwrap().close().unwrap();
    drop((b1, b2));
    // Dirty load: an unknown descriptor is fatal.
    let dirty = Blobstore::load(
        dev.clone() as Arc<dyn Device>,
        &LoadOptions {
            force_recover: true,
            ..LoadOptions::default()
        },
    );
    assert_eq!(errno(dirty), EILSEQ);
}
