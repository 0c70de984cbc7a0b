//! `lifeboat clone` and `lifeboat copy` on disk image files made by the real tools, checked by
//! the real tools.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::*;
use qemu_tests::fixture::{self, Mkfs};
use std::path::Path;

#[test]
fn clone_to_a_larger_disk_keeps_numbers_file_systems_and_files() {
    let sd = system_disk();
    let before = fixture::sha256(&sd.disk).unwrap();
    let dst = sd.dir.path().join("dst.img");
    fixture::sparse_file(&dst, 256 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["clone", s(&sd.disk), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified"), "{out}");
    assert_eq!(
        fixture::sha256(&sd.disk).unwrap(),
        before,
        "the source must stay byte-identical"
    );
    let p = fixture::run("sgdisk", &["-p", s(&dst)]).unwrap();
    let numbers: Vec<&str> = p
        .lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(numbers, vec!["1", "3", "4"], "{p}");
    // Same disk GUID by default: boot entries still match.
    let guid = |d: &Path| {
        fixture::run("sgdisk", &["-p", s(d)])
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Disk identifier"))
            .unwrap()
            .to_string()
    };
    assert_eq!(guid(&sd.disk), guid(&dst));
    // Same partition positions and sizes without --grow-last.
    assert_eq!(sgdisk_part(&dst, 4), sgdisk_part(&sd.disk, 4));
    check_clone(&sd, &dst);
}

#[test]
fn clone_with_grow_last_fills_the_target_and_grows_ext4() {
    let sd = system_disk();
    let dst = sd.dir.path().join("dst.img");
    fixture::sparse_file(&dst, 300 * MIB).unwrap();
    let (code, out, err) = lifeboat(&[
        "clone",
        s(&sd.disk),
        s(&dst),
        "--yes",
        "--grow-last",
        "--new-ids",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("resize2fs"), "{out}");
    let info = fixture::run("sgdisk", &["-p", s(&dst)]).unwrap();
    let last_usable: u64 = info
        .lines()
        .find(|l| l.contains("last usable sector is"))
        .and_then(|l| l.split("last usable sector is").nth(1))
        .and_then(|v| {
            v.trim()
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap();
    let (start, len) = sgdisk_part(&dst, 4);
    assert_eq!((start + len) / 512 - 1, last_usable, "{info}");
    check_clone(&sd, &dst);
    let root = sd.dir.path().join("c-root.img");
    let h = fixture::run("dumpe2fs", &["-h", s(&root)]).unwrap();
    let blocks: u64 = h
        .lines()
        .find(|l| l.starts_with("Block count:"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let bsize: u64 = h
        .lines()
        .find(|l| l.starts_with("Block size:"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        blocks * bsize > len - 4 * MIB,
        "file system {} bytes in a {len}-byte partition",
        blocks * bsize
    );
    assert_ne!(
        fixture::run("sgdisk", &["-p", s(&sd.disk)])
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Disk identifier")),
        info.lines().find(|l| l.starts_with("Disk identifier")),
        "--new-ids gives a new disk GUID"
    );
}

#[test]
fn clone_refuses_unsafe_targets_and_writes_nothing() {
    let sd = system_disk();
    // Smaller than the ESP plus the smallest the NTFS and ext4 shrink to (tests/shrink.rs has
    // the disks that fit by shrinking).
    let dst = sd.dir.path().join("small.img");
    fixture::sparse_file(&dst, 48 * MIB).unwrap();
    let before = fixture::sha256(&dst).unwrap();
    let (code, _, err) = lifeboat(&["clone", s(&sd.disk), s(&dst), "--yes"]);
    assert_eq!(code, 1);
    let number_before = |key: &str| -> u64 {
        let head = err.split(key).next().unwrap();
        let digits: String = head
            .trim_end()
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.chars().rev().collect::<String>().parse().unwrap()
    };
    let (need, short) = (number_before(" bytes, has"), number_before(" bytes short"));
    assert_eq!(need - 48 * MIB, short, "{err}");
    assert!(
        need > 48 * MIB
            && need <= sgdisk_part(&sd.disk, 4).0 + sgdisk_part(&sd.disk, 4).1 + 33 * 512,
        "{err}"
    );
    assert_eq!(fixture::sha256(&dst).unwrap(), before);

    let (code, _, err) = lifeboat(&["clone", s(&sd.disk), s(&sd.disk), "--yes"]);
    assert_eq!(code, 1);
    assert!(err.contains("it is the source"), "{err}");

    let big = sd.dir.path().join("big.img");
    fixture::sparse_file(&big, 200 * MIB).unwrap();
    let before = fixture::sha256(&big).unwrap();
    let (code, out, _) = lifeboat(&["clone", s(&sd.disk), s(&big), "--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.contains("copy partitions"), "{out}");
    // No terminal and no --yes: refused.
    let (code, _, err) = lifeboat(&["clone", s(&sd.disk), s(&big)]);
    assert_eq!(code, 1);
    assert!(err.contains("without confirmation"), "{err}");
    assert!(
        err.contains("big.img"),
        "the confirmation names the target: {err}"
    );
    assert_eq!(fixture::sha256(&big).unwrap(), before);
}

#[test]
fn clone_of_an_mbr_disk_with_logical_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("mbr.img");
    fixture::sparse_file(&disk, 96 * MIB).unwrap();
    fixture::sfdisk(
        &disk,
        "label: dos\nstart=2048, size=32M, type=83, bootable\n,,5\n,16M,83\n,16M,c\n,,83\n",
        512,
    )
    .unwrap();
    let layout_json = lifeboat(&["info", "--json", s(&disk)]).1;
    let v: serde_json::Value = serde_json::from_str(&layout_json).unwrap();
    let parts = v["content"]["partitions"].as_array().unwrap().clone();
    let part = |n: u64| parts.iter().find(|p| p["number"] == n).unwrap().clone();
    let tree = dir.path().join("tree");
    fixture::file_tree(&tree, 50).unwrap();
    for (n, kind, label) in [
        (1u64, Mkfs::Ext4, "boot"),
        (6, Mkfs::Fat16, "DATA"),
        (7, Mkfs::Ext4, "home"),
    ] {
        let p = part(n);
        let img = dir.path().join(format!("p{n}.img"));
        let extra: Vec<&str> = if kind == Mkfs::Ext4 {
            vec!["-d", s(&tree)]
        } else {
            vec![]
        };
        fixture::mkfs(kind, &img, p["size"].as_u64().unwrap(), label, &extra).unwrap();
        fixture::write_into(&disk, p["start"].as_u64().unwrap(), &img).unwrap();
    }
    let dst = dir.path().join("dst.img");
    fixture::sparse_file(&dst, 128 * MIB).unwrap();
    let (code, out, err) = lifeboat(&[
        "clone",
        s(&disk),
        s(&dst),
        "--yes",
        "--verify",
        "--grow-last",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let dump = fixture::run("sfdisk", &["-d", s(&dst)]).unwrap();
    let src_dump = fixture::run("sfdisk", &["-d", s(&disk)]).unwrap();
    let starts = |d: &str| -> Vec<String> {
        d.lines()
            .filter(|l| l.contains(": start="))
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(starts(&dump).len(), 5, "{dump}");
    assert_eq!(
        starts(&dump)
            .iter()
            .map(|l| l.replace("dst.img", "X"))
            .collect::<Vec<_>>(),
        starts(&src_dump)
            .iter()
            .map(|l| l.replace("mbr.img", "X"))
            .collect::<Vec<_>>()
    );
    assert!(dump.contains("bootable"), "{dump}");
    let v: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&dst)]).1).unwrap();
    let parts = v["content"]["partitions"].as_array().unwrap().clone();
    let last = parts.iter().find(|p| p["number"] == 7).unwrap();
    assert_eq!(
        last["start"].as_u64().unwrap() + last["size"].as_u64().unwrap(),
        128 * MIB,
        "the last logical grew to the end"
    );
    for p in &parts {
        if p["number"] == 7 || p["number"] == 1 {
            let img = dir.path().join("check.img");
            fixture::extract(
                &dst,
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                &img,
            )
            .unwrap();
            let (code, out) = fixture::run_status("e2fsck", &["-fn", s(&img)]).unwrap();
            assert_eq!(code, 0, "partition {}: {out}", p["number"]);
        }
    }
}

#[test]
fn clone_of_a_4k_sector_gpt_disk_keeps_4k_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("4k.img");
    fixture::sparse_file(&disk, 64 * MIB).unwrap();
    fixture::sfdisk(
        &disk,
        "label: gpt\nstart=256, size=8192, type=uefi\nsize=4096, type=linux\n",
        4096,
    )
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&disk)]).1).unwrap();
    assert_eq!(v["content"]["sector_size"], 4096);
    let p2 = v["content"]["partitions"][1].clone();
    let img = dir.path().join("p2.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &img,
        p2["size"].as_u64().unwrap(),
        "four",
        &["-b", "4096"],
    )
    .unwrap();
    fixture::write_into(&disk, p2["start"].as_u64().unwrap(), &img).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&disk)]).1).unwrap();
    assert_eq!(v["content"]["partitions"][1]["fs"]["label"], "four");
    let dst = dir.path().join("dst.img");
    fixture::sparse_file(&dst, 80 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["clone", s(&disk), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let w: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&dst)]).1).unwrap();
    assert_eq!(w["content"]["sector_size"], 4096);
    assert_eq!(w["content"]["partitions"], v["content"]["partitions"]);
    let check = dir.path().join("check.img");
    fixture::extract(
        &dst,
        p2["start"].as_u64().unwrap(),
        p2["size"].as_u64().unwrap(),
        &check,
    )
    .unwrap();
    let (code, out) = fixture::run_status("e2fsck", &["-fn", s(&check)]).unwrap();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn copy_partition_into_a_partition_of_another_disk() {
    let sd = system_disk();
    let dst = sd.dir.path().join("other.img");
    fixture::sparse_file(&dst, 200 * MIB).unwrap();
    fixture::run("sgdisk", &["-n", "1:2048:+10M", "-n", "2:0:0", s(&dst)]).unwrap();
    let before = fixture::sha256(&sd.disk).unwrap();
    let (code, out, err) = lifeboat(&[
        "copy",
        s(&sd.disk),
        s(&dst),
        "--part",
        "4",
        "--to-part",
        "2",
        "--yes",
        "--verify",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(fixture::sha256(&sd.disk).unwrap(), before);
    let (start, len) = sgdisk_part(&dst, 2);
    let img = sd.dir.path().join("copied.img");
    fixture::extract(&dst, start, len, &img).unwrap();
    let (code, out) = fixture::run_status("e2fsck", &["-fn", s(&img)]).unwrap();
    assert_eq!(code, 0, "{out}");
    let f = &sd.files[5];
    let dump = sd.dir.path().join("d");
    fixture::run(
        "debugfs",
        &["-R", &format!("dump /{f} {}", s(&dump)), s(&img)],
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&dump).unwrap(),
        std::fs::read(sd.tree.join(f)).unwrap()
    );
    // A target partition that is too small is refused with the shortfall.
    let (code, _, err) = lifeboat(&[
        "copy",
        s(&sd.disk),
        s(&dst),
        "--part",
        "4",
        "--to-part",
        "1",
        "--yes",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("bytes short"), "{err}");
}

#[test]
fn copy_into_free_space_adds_a_partition_entry_after_the_data() {
    let sd = system_disk();
    let dst = sd.dir.path().join("free.img");
    fixture::sparse_file(&dst, 200 * MIB).unwrap();
    fixture::run("sgdisk", &["-n", "2:2048:+20M", "-t", "2:ef00", s(&dst)]).unwrap();
    let (code, out, err) = lifeboat(&[
        "copy",
        s(&sd.disk),
        s(&dst),
        "--part",
        "4",
        "--new-partition",
        "--yes",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v = fixture::run("sgdisk", &["-v", s(&dst)]).unwrap();
    assert!(v.contains("No problems found"), "{v}");
    // Partition 2 is kept; the copy takes the first free entry (1) and the first free space.
    let (start2, _) = sgdisk_part(&dst, 2);
    assert_eq!(start2, MIB);
    let (start, len) = sgdisk_part(&dst, 1);
    assert_eq!(start, 21 * MIB);
    assert_eq!(len, sgdisk_part(&sd.disk, 4).1);
    let info = fixture::run("sgdisk", &["-i", "1", s(&dst)]).unwrap();
    assert!(info.contains("Linux filesystem"), "{info}");
    let img = sd.dir.path().join("new.img");
    fixture::extract(&dst, start, len, &img).unwrap();
    let (code, out) = fixture::run_status("e2fsck", &["-fn", s(&img)]).unwrap();
    assert_eq!(code, 0, "{out}");
    // No room left for another copy of that size: refused, table unchanged.
    let before = fixture::sha256(&dst).unwrap();
    let big = sd.dir.path().join("tiny.img");
    fixture::sparse_file(&big, 64 * MIB).unwrap();
    fixture::run("sgdisk", &["-n", "1:2048:0", s(&big)]).unwrap();
    let (code, _, err) = lifeboat(&[
        "copy",
        s(&sd.disk),
        s(&big),
        "--part",
        "4",
        "--new-partition",
        "--yes",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no free space"), "{err}");
    assert_eq!(fixture::sha256(&dst).unwrap(), before);
}
