//! `lifeboat backup`, `info` and `restore` of a GPT disk holding an XFS and a btrfs partition,
//! both filled through the kernel: the image stores only their used blocks, and the restored
//! disk's file systems pass `xfs_repair -n` / `btrfs check --readonly` and give back every file.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::*;
use qemu_tests::fixture::{self, KernelMount, Mkfs};
use std::path::Path;

/// Every file of `names` under `mounted` equals the one under `tree`.
fn same_files(tree: &Path, mounted: &Path, names: &[String]) {
    for n in names {
        let want = std::fs::read(tree.join(n)).unwrap();
        let got = std::fs::read(mounted.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert!(got == want, "{n} differs after the round trip");
    }
}

/// A GPT disk with `sector`-byte logical sectors: 1 = XFS (360 MiB), 2 = btrfs (the rest),
/// both holding the same tree; backed up, inspected, restored and checked.
fn round_trip(sector: u32) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    let files = fixture::file_tree(&tree, 600).unwrap();
    let big = fixture::noise(99, 5 << 20);
    std::fs::write(tree.join("big.bin"), &big).unwrap();
    let mut names = files.clone();
    names.push("big.bin".into());

    let disk = d.join("src.img");
    fixture::sparse_file(&disk, 700 * MIB).unwrap();
    let per_mib = MIB / u64::from(sector);
    let script = format!(
        "label: gpt\nstart={}, size={}, type=linux, name=data-xfs\ntype=linux, name=data-btrfs\n",
        per_mib,
        360 * per_mib
    );
    fixture::sfdisk(&disk, &script, sector).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&disk)]).1).unwrap();
    assert_eq!(v["content"]["sector_size"], sector);
    let part = |i: usize| {
        let p = &v["content"]["partitions"][i];
        (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap())
    };
    let ((p1, l1), (p2, l2)) = (part(0), part(1));
    let xfs = d.join("xfs.img");
    let sect = format!("size={sector}");
    fixture::mkfs(Mkfs::Xfs, &xfs, l1, "lbxfs", &["-s", &sect]).unwrap();
    {
        let mnt = KernelMount::new(&xfs, &d.join("mnt-x"), "").unwrap();
        fixture::run("cp", &["-a", &format!("{}/.", s(&tree)), s(mnt.path())]).unwrap();
        mnt.unmount().unwrap();
    }
    let btrfs = d.join("btrfs.img");
    fixture::mkfs(Mkfs::Btrfs, &btrfs, l2, "lbbtrfs", &["--rootdir", s(&tree)]).unwrap();
    // `info` on each bare file system shows its label, UUID and the used bytes it counts.
    for (img, label) in [(&xfs, "lbxfs"), (&btrfs, "lbbtrfs")] {
        let (code, out, err) = lifeboat(&["info", s(img)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&format!("label \"{label}\"")), "{out}");
        assert!(out.contains(" used") && out.contains("uuid "), "{out}");
    }
    fixture::write_into(&disk, p1, &xfs).unwrap();
    fixture::write_into(&disk, p2, &btrfs).unwrap();
    let filled: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&disk)]).1).unwrap();

    // `info` on the disk names both file systems.
    let (code, out, err) = lifeboat(&["info", s(&disk)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("xfs") && out.contains("lbxfs"), "{out}");
    assert!(out.contains("btrfs") && out.contains("lbbtrfs"), "{out}");

    let img = d.join("disk.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&disk), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, info, err) = lifeboat(&["info", "--json", s(&img)]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    let parts = v["manifest"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{info}");
    for (p, fs, label, size) in [
        (&parts[0], "xfs", "lbxfs", l1),
        (&parts[1], "btrfs", "lbbtrfs", l2),
    ] {
        assert_eq!(p["fs"], fs, "{info}");
        assert_eq!(p["label"], label, "{info}");
        assert_eq!(p["mode"], "used-blocks", "{info}");
        let used = p["used_bytes"].as_u64().unwrap();
        // The files (about 25 MiB) plus metadata, the XFS log and btrfs' DUP metadata.
        assert!(used > 20 * MIB && used < size / 2, "{fs}: {used} of {size}");
    }
    let (code, text, _) = lifeboat(&["info", s(&img)]);
    assert_eq!(code, 0);
    assert!(
        text.contains("xfs") && text.contains("btrfs") && text.contains("used-blocks"),
        "{text}"
    );
    let img_len = fixture::file_len(&img).unwrap();
    assert!(
        img_len < 200 * MIB,
        "image of {img_len} bytes for a 700 MiB disk"
    );

    let dst = d.join("dst.img");
    fixture::sparse_file(&dst, 700 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let w: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&dst)]).1).unwrap();
    assert_eq!(w["content"]["sector_size"], sector);
    assert_eq!(w["content"]["partitions"], filled["content"]["partitions"]);

    let rx = d.join("r-xfs.img");
    fixture::extract(&dst, p1, l1, &rx).unwrap();
    let (code, out) = fixture::run_status("xfs_repair", &["-n", "-f", s(&rx)]).unwrap();
    assert_eq!(code, 0, "xfs_repair -n on the restored XFS:\n{out}");
    let rb = d.join("r-btrfs.img");
    fixture::extract(&dst, p2, l2, &rb).unwrap();
    let (code, out) = fixture::run_status("btrfs", &["check", "--readonly", s(&rb)]).unwrap();
    assert_eq!(code, 0, "btrfs check on the restored btrfs:\n{out}");

    let mx = KernelMount::new(&rx, &d.join("mnt-rx"), "ro").unwrap();
    same_files(&tree, mx.path(), &names);
    mx.unmount().unwrap();
    let mb = KernelMount::new(&rb, &d.join("mnt-rb"), "ro").unwrap();
    same_files(&tree, mb.path(), &names);
    mb.unmount().unwrap();
}

#[test]
fn xfs_and_btrfs_disk_with_512_byte_sectors_round_trips_by_used_blocks() {
    round_trip(512);
}

#[test]
fn xfs_and_btrfs_disk_with_4k_sectors_round_trips_by_used_blocks() {
    round_trip(4096);
}
