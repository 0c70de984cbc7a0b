//! `lifeboat clone` and `lifeboat copy` on disk image files made by the real tools, checked by
//! the real tools.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use qemu_tests::fixture::{self, Mkfs};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1024 * 1024;

fn lifeboat(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Start and size in bytes of partition `n` as sgdisk reports it.
fn sgdisk_part(disk: &Path, n: u32) -> (u64, u64) {
    let info = fixture::run("sgdisk", &["-i", &n.to_string(), s(disk)]).unwrap();
    let field = |name: &str| -> u64 {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = field("First sector");
    let last = field("Last sector");
    (first * 512, (last - first + 1) * 512)
}

struct SystemDisk {
    dir: tempfile::TempDir,
    disk: PathBuf,
    tree: PathBuf,
    files: Vec<String>,
}

/// A 160 MiB GPT disk like a dual-boot PC's: 1 = ESP (FAT32, 36 MiB), 3 = NTFS (40 MiB),
/// 4 = ext4 root filled with a file tree; partition 2 is absent.
fn system_disk() -> SystemDisk {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("src.img");
    let tree = dir.path().join("tree");
    let files = fixture::file_tree(&tree, 400).unwrap();
    fixture::sparse_file(&disk, 160 * MIB).unwrap();
    fixture::run(
        "sgdisk",
        &[
            "-n",
            "1:2048:+36M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI",
            "-n",
            "3:0:+40M",
            "-t",
            "3:0700",
            "-n",
            "4:0:0",
            "-t",
            "4:8300",
            "-c",
            "4:root",
            s(&disk),
        ],
    )
    .unwrap();
    let (p1, l1) = sgdisk_part(&disk, 1);
    let (p3, l3) = sgdisk_part(&disk, 3);
    let (p4, l4) = sgdisk_part(&disk, 4);
    let esp = dir.path().join("esp.img");
    fixture::mkfs(Mkfs::Fat32, &esp, l1, "ESP", &[]).unwrap();
    for f in files.iter().filter(|f| f.starts_with("file-")).take(20) {
        fixture::run(
            "mcopy",
            &["-i", s(&esp), s(&tree.join(f)), &format!("::/{f}")],
        )
        .unwrap();
    }
    let ntfs = dir.path().join("ntfs.img");
    fixture::mkfs(Mkfs::Ntfs, &ntfs, l3, "WINDOWS", &[]).unwrap();
    for f in files.iter().filter(|f| f.starts_with("file-")).take(10) {
        fixture::run("ntfscp", &[s(&ntfs), s(&tree.join(f)), f]).unwrap();
    }
    let root = dir.path().join("root.img");
    fixture::mkfs(Mkfs::Ext4, &root, l4, "root", &["-d", s(&tree)]).unwrap();
    fixture::write_into(&disk, p1, &esp).unwrap();
    fixture::write_into(&disk, p3, &ntfs).unwrap();
    fixture::write_into(&disk, p4, &root).unwrap();
    SystemDisk {
        dir,
        disk,
        tree,
        files,
    }
}

/// Checks every file system of a cloned disk with its own checker and compares file contents.
fn check_clone(sd: &SystemDisk, dst: &Path) {
    let d = sd.dir.path();
    let v = fixture::run("sgdisk", &["-v", s(dst)]).unwrap();
    assert!(v.contains("No problems found"), "{v}");
    let (p1, l1) = sgdisk_part(dst, 1);
    let (p3, l3) = sgdisk_part(dst, 3);
    let (p4, l4) = sgdisk_part(dst, 4);
    let esp = d.join("c-esp.img");
    fixture::extract(dst, p1, l1, &esp).unwrap();
    let (code, out) = fixture::run_status("fsck.vfat", &["-n", s(&esp)]).unwrap();
    assert_eq!(code, 0, "{out}");
    let f = sd.files.iter().find(|f| f.starts_with("file-")).unwrap();
    let got = fixture::run("mtype", &["-i", s(&esp), &format!("::/{f}")]);
    assert!(got.is_ok());
    let ntfs = d.join("c-ntfs.img");
    fixture::extract(dst, p3, l3, &ntfs).unwrap();
    let (code, out) = fixture::run_status("ntfsfix", &["-n", s(&ntfs)]).unwrap();
    assert_eq!(code, 0, "{out}");
    let cat = Command::new(fixture::require("ntfscat").unwrap())
        .arg(&ntfs)
        .arg(f)
        .output()
        .unwrap();
    assert_eq!(cat.stdout, std::fs::read(sd.tree.join(f)).unwrap());
    let root = d.join("c-root.img");
    fixture::extract(dst, p4, l4, &root).unwrap();
    let (code, out) = fixture::run_status("e2fsck", &["-fn", s(&root)]).unwrap();
    assert_eq!(code, 0, "{out}");
    for f in sd.files.iter().step_by(37) {
        let dump = d.join("dumped");
        fixture::run(
            "debugfs",
            &["-R", &format!("dump /{f} {}", s(&dump)), s(&root)],
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&dump).unwrap(),
            std::fs::read(sd.tree.join(f)).unwrap(),
            "{f}"
        );
    }
}

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
    let dst = sd.dir.path().join("small.img");
    fixture::sparse_file(&dst, 100 * MIB).unwrap();
    let before = fixture::sha256(&dst).unwrap();
    let (code, _, err) = lifeboat(&["clone", s(&sd.disk), s(&dst), "--yes"]);
    assert_eq!(code, 1);
    let end4 = {
        let (st, l) = sgdisk_part(&sd.disk, 4);
        st + l
    };
    let need = end4 + 33 * 512;
    let short = need - 100 * MIB;
    assert!(err.contains(&format!("{short} bytes short")), "{err}");
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
