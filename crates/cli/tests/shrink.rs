//! Restore and clone onto a smaller disk: a GPT disk with an ESP, an ext4, an NTFS and a FAT32
//! partition filled with real files (made by mkfs.ext4 -d, mkntfs + ntfs-3g, mkfs.vfat + mcopy)
//! restored and cloned into 60% of its size; every file system checked by its own checker, its
//! UUID and label unchanged, every file's hash equal.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::*;
use qemu_tests::fixture::{self, Mkfs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct ShrinkDisk {
    dir: tempfile::TempDir,
    disk: PathBuf,
    /// Relative path → SHA-256 of every file put into each data partition.
    hashes: BTreeMap<String, String>,
}

/// A tree of 48 incompressible files of 700 KiB (about 33 MiB) in nested folders, plus small
/// text files with long names: each data partition has to give up room for a 60% disk.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    std::fs::create_dir_all(dir.join("Documents/Long folder name/deeper")).unwrap();
    std::fs::create_dir_all(dir.join("Pictures")).unwrap();
    let mut hashes = BTreeMap::new();
    for i in 0..48u64 {
        let name = match i % 3 {
            0 => format!("Pictures/photo number {i}.jpg"),
            1 => format!("Documents/Long folder name/deeper/blob-{i}.bin"),
            _ => format!("file-{i}.dat"),
        };
        std::fs::write(
            dir.join(&name),
            fixture::noise(i + 1, 700 * 1024 + i as usize),
        )
        .unwrap();
        hashes.insert(name, String::new());
    }
    for i in 0..30u64 {
        let name = format!("Documents/a note with a long name {i}.txt");
        std::fs::write(
            dir.join(&name),
            format!("note {i}\n").repeat(i as usize * 50 + 1),
        )
        .unwrap();
        hashes.insert(name, String::new());
    }
    for (name, h) in hashes.iter_mut() {
        *h = fixture::sha256(&dir.join(name)).unwrap();
    }
    hashes
}

/// 330 MiB GPT: 1 = ESP (FAT16, 32 MiB), 2 = ext4 "rootfs" (4 KiB blocks), 3 = NTFS "winvol",
/// 4 = FAT32 "FATVOL" (96 MiB each, about 34 MiB of files in each).
fn shrink_disk() -> ShrinkDisk {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("tree");
    let hashes = tree(&files);
    let p = |n: &str| dir.path().join(n);
    fixture::mkfs(Mkfs::Fat16, &p("esp.img"), 32 * MIB, "ESP", &[]).unwrap();
    fixture::mkfs(
        Mkfs::Ext4,
        &p("ext.img"),
        96 * MIB,
        "rootfs",
        &["-d", s(&files)],
    )
    .unwrap();
    fixture::mkfs(Mkfs::Ntfs, &p("ntfs.img"), 96 * MIB, "winvol", &[]).unwrap();
    let mnt = p("mnt");
    std::fs::create_dir(&mnt).unwrap();
    fixture::run("ntfs-3g", &[s(&p("ntfs.img")), s(&mnt)]).unwrap();
    let copied = fixture::run("cp", &["-r", &format!("{}/.", s(&files)), s(&mnt)]);
    fixture::fuse_unmount(&mnt, s(&p("ntfs.img"))).unwrap();
    copied.unwrap();
    fixture::mkfs(Mkfs::Fat32, &p("fat.img"), 96 * MIB, "FATVOL", &[]).unwrap();
    let fat = p("fat.img");
    let mut mcopy = vec!["-s", "-i", s(&fat)];
    let tops: Vec<String> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_string())
        .collect();
    mcopy.extend(tops.iter().map(String::as_str));
    mcopy.push("::/");
    fixture::run("mcopy", &mcopy).unwrap();
    let disk = p("src.img");
    fixture::sparse_file(&disk, 330 * MIB).unwrap();
    fixture::sgdisk(
        &disk,
        &[
            "-n",
            "1:2048:+32M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI system partition",
            "-n",
            "2:0:+96M",
            "-t",
            "2:8300",
            "-c",
            "2:root",
            "-n",
            "3:0:+96M",
            "-t",
            "3:0700",
            "-c",
            "3:Windows",
            "-n",
            "4:0:+96M",
            "-t",
            "4:0700",
            "-c",
            "4:data",
        ],
    )
    .unwrap();
    for (n, f) in [
        (1, "esp.img"),
        (2, "ext.img"),
        (3, "ntfs.img"),
        (4, "fat.img"),
    ] {
        fixture::write_into(&disk, sgdisk_part(&disk, n).0, &p(f)).unwrap();
    }
    ShrinkDisk { dir, disk, hashes }
}

fn guid_and_name(disk: &Path, n: u32) -> (String, String) {
    let info = fixture::run("sgdisk", &["-i", &n.to_string(), s(disk)]).unwrap();
    let get = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .map(|l| l[k.len()..].trim().to_string())
            .unwrap()
    };
    (get("Partition unique GUID:"), get("Partition name:"))
}

/// Every check on a target made from `sd` onto a disk of 60% of its size.
fn check_target(sd: &ShrinkDisk, dst: &Path) {
    let (code, out) = fixture::run_status("sgdisk", &["-v", s(dst)]).unwrap();
    assert!(code == 0 && out.contains("No problems found"), "{out}");
    // The ESP keeps its place and size; every partition keeps its GUID and name.
    assert_eq!(sgdisk_part(dst, 1), sgdisk_part(&sd.disk, 1));
    for n in 1..=4 {
        assert_eq!(
            guid_and_name(dst, n),
            guid_and_name(&sd.disk, n),
            "partition {n}"
        );
        assert_eq!(
            sgdisk_part(dst, n).0 % MIB,
            0,
            "partition {n} is 1 MiB aligned"
        );
    }
    let mut shrunk = 0;
    for (n, checker) in [
        (2, vec!["e2fsck", "-fn"]),
        (3, vec!["ntfsresize", "--check", "--no-progress-bar"]),
        (4, vec!["fsck.vfat", "-n"]),
    ] {
        let (src_at, src_len) = sgdisk_part(&sd.disk, n);
        let (at, len) = sgdisk_part(dst, n);
        if len < src_len {
            shrunk += 1;
        }
        let a = sd.dir.path().join(format!("src-{n}.img"));
        let b = sd.dir.path().join(format!("dst-{n}.img"));
        fixture::extract(&sd.disk, src_at, src_len, &a).unwrap();
        fixture::extract(dst, at, len, &b).unwrap();
        let (code, out) =
            fixture::run_status(checker[0], &[&checker[1..], &[s(&b)]].concat()).unwrap();
        assert_eq!(code, 0, "{} on partition {n}: {out}", checker[0]);
        for tag in ["UUID", "LABEL", "TYPE"] {
            assert_eq!(blkid(&b, tag), blkid(&a, tag), "partition {n} {tag}");
        }
        let out_dir = sd.dir.path().join(format!("files-{n}"));
        let _ = std::fs::remove_dir_all(&out_dir);
        let (code, out, err) = lifeboat(&[
            "extract",
            s(dst),
            "/",
            "--part",
            &n.to_string(),
            "--to",
            s(&out_dir),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        for (name, hash) in &sd.hashes {
            let got = fixture::sha256(&out_dir.join(name))
                .unwrap_or_else(|e| panic!("partition {n}: {name}: {e}"));
            assert_eq!(&got, hash, "partition {n}: {name}");
        }
        std::fs::remove_file(&a).unwrap();
        std::fs::remove_file(&b).unwrap();
        std::fs::remove_dir_all(&out_dir).unwrap();
    }
    assert_eq!(shrunk, 3, "every data partition shrinks to fit 60%");
}

const TARGET: u64 = 198 * MIB; // 60% of 330 MiB

#[test]
fn restore_onto_a_disk_of_60_percent_shrinks_ext4_ntfs_and_fat32_and_keeps_ids_and_files() {
    let sd = shrink_disk();
    let img = sd.dir.path().join("src.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&sd.disk), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    let image_bytes = fixture::sha256(&img).unwrap();
    let dst = sd.dir.path().join("dst.img");
    fixture::sparse_file(&dst, TARGET).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&dst), "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "shrink file systems onto the smaller target",
        "partition 2 ext4 \"rootfs\": 96.0 MiB -> ",
        "resize2fs",
        "ntfsresize",
        "file-level copy into a new FAT",
    ] {
        assert!(out.contains(line), "the plan lacks {line:?}:\n{out}");
    }
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(
        fixture::sha256(&img).unwrap(),
        image_bytes,
        "the image is never written"
    );
    check_target(&sd, &dst);
}

#[test]
fn clone_onto_a_disk_of_60_percent_shrinks_and_leaves_the_source_unchanged() {
    let sd = shrink_disk();
    let before = fixture::sha256(&sd.disk).unwrap();
    let dst = sd.dir.path().join("dst.img");
    fixture::sparse_file(&dst, TARGET).unwrap();
    let (code, out, err) = lifeboat(&["clone", s(&sd.disk), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("shrunk from 96.0 MiB"), "{out}");
    assert_eq!(
        fixture::sha256(&sd.disk).unwrap(),
        before,
        "the source is never written"
    );
    check_target(&sd, &dst);
}

#[test]
fn a_disk_too_small_for_the_used_data_is_refused_saying_by_how_much() {
    let sd = shrink_disk();
    let dst = sd.dir.path().join("dst.img");
    fixture::sparse_file(&dst, 100 * MIB).unwrap();
    let before = fixture::sha256(&dst).unwrap();
    let (code, out, err) = lifeboat(&["clone", s(&sd.disk), s(&dst), "--yes"]);
    assert_ne!(code, 0, "{out}{err}");
    let short = err
        .split(" bytes short")
        .next()
        .and_then(|t| t.rsplit('(').next())
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(
        err.contains("too small") && short.is_some_and(|n| n > 0),
        "{err}"
    );
    assert_eq!(
        fixture::sha256(&dst).unwrap(),
        before,
        "nothing was written"
    );
}

#[test]
fn a_job_file_clone_onto_a_smaller_disk_shrinks_like_the_cli() {
    let sd = shrink_disk();
    let dst = sd.dir.path().join("dst.img");
    fixture::sparse_file(&dst, TARGET).unwrap();
    let job = sd.dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[[step]]\naction = \"clone\"\nsource = \"{}\"\ntarget = \"{}\"\n",
            s(&sd.disk),
            s(&dst)
        ),
    )
    .unwrap();
    let (code, out, err) = lifeboat(&["run", s(&job)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("resize2fs") && out.contains("ntfsresize"),
        "{out}"
    );
    check_target(&sd, &dst);
}
