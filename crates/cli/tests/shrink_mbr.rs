//! Restore and clone onto a smaller disk with an MBR table holding an extended partition: a
//! 300 MiB disk made by sfdisk with 2 primaries (FAT16, ext4) and an extended partition with 2
//! logical partitions (ext4, NTFS), all filled with real files (mkfs.ext4 -d, mkntfs + ntfs-3g,
//! mkfs.vfat + mcopy), restored and cloned into 60 % of its size: the EBR chain as sfdisk reads
//! it, every file system clean by its own checker with the same UUID and label, every file's
//! hash equal, the source unchanged; and a plain restore of the same disk stays byte-exact.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::*;
use qemu_tests::fixture::{self, Mkfs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct MbrDisk {
    dir: tempfile::TempDir,
    disk: PathBuf,
    /// Relative path → SHA-256 of every regular file put into each data partition.
    hashes: BTreeMap<String, String>,
}

/// `fixture::file_tree`'s 150 small files plus 16 incompressible files of 900 KiB: about
/// 18 MiB that every data partition holds.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut names = fixture::file_tree(dir, 150).unwrap();
    std::fs::create_dir_all(dir.join("big")).unwrap();
    for i in 0..16u64 {
        let name = format!("big/archive {i}.bin");
        std::fs::write(dir.join(&name), fixture::noise(1000 + i, 900 * 1024)).unwrap();
        names.push(name);
    }
    names
        .into_iter()
        .map(|n| {
            let h = fixture::sha256(&dir.join(&n)).unwrap();
            (n, h)
        })
        .collect()
}

/// 300 MiB MBR: 1 FAT16 "BOOTFAT" 32 MiB (bootable), 2 ext4 "primext" 64 MiB, 3 extended over
/// 5 ext4 "logext" 96 MiB and 6 NTFS "lognt" (type 7) 96 MiB.
fn mbr_disk() -> MbrDisk {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("tree");
    let hashes = tree(&files);
    let p = |n: &str| dir.path().join(n);
    fixture::mkfs(Mkfs::Fat16, &p("fat.img"), 32 * MIB, "BOOTFAT", &[]).unwrap();
    let fat = p("fat.img");
    let mut mcopy = vec!["-s", "-i", s(&fat)];
    let tops = [files.join("docs"), files.join("big")];
    mcopy.extend(tops.iter().map(|t| s(t)));
    mcopy.push("::/");
    fixture::run("mcopy", &mcopy).unwrap();
    for (img, size, label) in [("ext2.img", 64, "primext"), ("ext5.img", 96, "logext")] {
        fixture::mkfs(Mkfs::Ext4, &p(img), size * MIB, label, &["-d", s(&files)]).unwrap();
    }
    fixture::mkfs(Mkfs::Ntfs, &p("ntfs.img"), 96 * MIB, "lognt", &[]).unwrap();
    let mnt = p("mnt");
    std::fs::create_dir(&mnt).unwrap();
    fixture::run("ntfs-3g", &[s(&p("ntfs.img")), s(&mnt)]).unwrap();
    let copied = fixture::run("cp", &["-r", &format!("{}/.", s(&files)), s(&mnt)]);
    fixture::fuse_unmount(&mnt, s(&p("ntfs.img"))).unwrap();
    copied.unwrap();
    let disk = p("src.img");
    fixture::sparse_file(&disk, 300 * MIB).unwrap();
    fixture::sfdisk(
        &disk,
        "label: dos\nlabel-id: 0x5eedf00d\n\
         start=2048, size=32MiB, type=6, bootable\n\
         size=64MiB, type=83\n\
         type=5\n\
         size=96MiB, type=83\n\
         size=96MiB, type=7\n",
        512,
    )
    .unwrap();
    for (n, f) in [
        (1, "fat.img"),
        (2, "ext2.img"),
        (5, "ext5.img"),
        (6, "ntfs.img"),
    ] {
        fixture::write_into(&disk, sfdisk_part(&disk, n).0, &p(f)).unwrap();
        std::fs::remove_file(p(f)).unwrap();
    }
    MbrDisk { dir, disk, hashes }
}

/// One line of `sfdisk -d`: (number, start sector, sectors, type).
fn sfdisk_dump(disk: &Path) -> Vec<(u32, u64, u64, String)> {
    let out = fixture::run("sfdisk", &["-d", s(disk)]).unwrap();
    let prefix = s(disk);
    out.lines()
        .filter_map(|l| {
            let (node, rest) = l.split_once(" : ")?;
            let number = node.trim().strip_prefix(prefix)?.parse().ok()?;
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|f| f.trim().strip_prefix(k))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            Some((
                number,
                field("start=").parse().ok()?,
                field("size=").parse().ok()?,
                field("type="),
            ))
        })
        .collect()
}

/// (byte offset, byte length) of partition `n` by `sfdisk -d`.
fn sfdisk_part(disk: &Path, n: u32) -> (u64, u64) {
    sfdisk_dump(disk)
        .into_iter()
        .find(|p| p.0 == n)
        .map(|p| (p.1 * 512, p.2 * 512))
        .unwrap_or_else(|| panic!("no partition {n} on {}", disk.display()))
}

/// Every check on a target made from `md` onto a disk of 60 % of its size.
fn check_target(md: &MbrDisk, dst: &Path) {
    let (code, out) = fixture::run_status("sfdisk", &["--verify", s(dst)]).unwrap();
    assert_eq!(code, 0, "sfdisk --verify:\n{out}");
    let dump = fixture::run("sfdisk", &["-d", s(dst)]).unwrap();
    assert!(dump.contains("label-id: 0x5eedf00d"), "{dump}");
    let parts = sfdisk_dump(dst);
    let numbers: Vec<u32> = parts.iter().map(|p| p.0).collect();
    assert_eq!(numbers, [1, 2, 3, 5, 6], "{dump}");
    // The extended partition holds exactly the chain: from the first EBR (1 MiB before
    // logical 5) to the end of logical 6; every partition and EBR at 1 MiB.
    let get = |n: u32| parts.iter().find(|p| p.0 == n).unwrap().clone();
    let (ext, l5, l6) = (get(3), get(5), get(6));
    assert_eq!(ext.3, "5", "{dump}");
    assert_eq!(ext.1, l5.1 - 2048, "{dump}");
    assert_eq!(ext.1 + ext.2, l6.1 + l6.2, "{dump}");
    for p in &parts {
        assert_eq!(p.1 % 2048, 0, "partition {} is 1 MiB aligned: {dump}", p.0);
    }
    assert!(l6.1 > l5.1 + l5.2, "{dump}");
    // The FAT partition keeps its place and size; the table fits 60 %.
    assert_eq!(sfdisk_part(dst, 1), sfdisk_part(&md.disk, 1));
    let mut shrunk = 0;
    for (n, checkers) in [
        (1, vec![vec!["fsck.vfat", "-n"]]),
        (2, vec![vec!["e2fsck", "-fn"]]),
        (5, vec![vec!["e2fsck", "-fn"]]),
        (
            6,
            vec![
                vec!["ntfsresize", "--check", "--no-progress-bar"],
                vec!["ntfsfix", "-n"],
            ],
        ),
    ] {
        let (src_at, src_len) = sfdisk_part(&md.disk, n);
        let (at, len) = sfdisk_part(dst, n);
        if len < src_len {
            shrunk += 1;
        }
        let a = md.dir.path().join(format!("src-{n}.img"));
        let b = md.dir.path().join(format!("dst-{n}.img"));
        fixture::extract(&md.disk, src_at, src_len, &a).unwrap();
        fixture::extract(dst, at, len, &b).unwrap();
        for c in &checkers {
            let (code, out) = fixture::run_status(c[0], &[&c[1..], &[s(&b)]].concat()).unwrap();
            assert_eq!(code, 0, "{} on partition {n}: {out}", c[0]);
        }
        for tag in ["UUID", "LABEL", "TYPE"] {
            assert_eq!(blkid(&b, tag), blkid(&a, tag), "partition {n} {tag}");
        }
        let out_dir = md.dir.path().join(format!("files-{n}"));
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
        for (name, hash) in md
            .hashes
            .iter()
            .filter(|(k, _)| n != 1 || k.starts_with("docs/") || k.starts_with("big/"))
        {
            let got = fixture::sha256(&out_dir.join(name))
                .unwrap_or_else(|e| panic!("partition {n}: {name}: {e}"));
            assert_eq!(&got, hash, "partition {n}: {name}");
        }
        std::fs::remove_file(&a).unwrap();
        std::fs::remove_file(&b).unwrap();
        std::fs::remove_dir_all(&out_dir).unwrap();
    }
    assert!(shrunk >= 2, "the data partitions shrink to fit 60 %");
    // Both logical partitions shrank or moved (the NTFS one is the Windows-type partition
    // whose start the plan may move).
    let src6 = sfdisk_part(&md.disk, 6);
    assert!(sfdisk_part(dst, 6).0 < src6.0, "{dump}");
}

const TARGET: u64 = 180 * MIB; // 60 % of 300 MiB

#[test]
fn restore_of_an_mbr_disk_with_logical_partitions_onto_60_percent_rebuilds_the_ebr_chain() {
    let md = mbr_disk();
    let img = md.dir.path().join("src.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&md.disk), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    let image_bytes = fixture::sha256(&img).unwrap();
    let dst = md.dir.path().join("dst.img");
    fixture::sparse_file(&dst, TARGET).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&dst), "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "shrink file systems onto the smaller target",
        "partition 5 ext4 \"logext\": 96.0 MiB -> ",
        "resize2fs",
        "ntfsresize",
    ] {
        assert!(out.contains(line), "the plan lacks {line:?}:\n{out}");
    }
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("shrunk from 96.0 MiB"), "{out}");
    assert_eq!(
        fixture::sha256(&img).unwrap(),
        image_bytes,
        "the image is never written"
    );
    check_target(&md, &dst);
}

#[test]
fn clone_of_an_mbr_disk_with_logical_partitions_onto_60_percent_leaves_the_source_unchanged() {
    let md = mbr_disk();
    let before = fixture::sha256(&md.disk).unwrap();
    let dst = md.dir.path().join("dst.img");
    fixture::sparse_file(&dst, TARGET).unwrap();
    let (code, out, err) = lifeboat(&["clone", s(&md.disk), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("shrunk from 96.0 MiB"), "{out}");
    assert_eq!(
        fixture::sha256(&md.disk).unwrap(),
        before,
        "the source is never written"
    );
    check_target(&md, &dst);
}

#[test]
fn a_plain_restore_of_the_mbr_disk_with_logical_partitions_is_byte_exact() {
    let md = mbr_disk();
    let img = md.dir.path().join("src.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&md.disk), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    let dst = md.dir.path().join("dst.img");
    fixture::sparse_file(&dst, 300 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("shrunk"), "{out}");
    assert_eq!(
        fixture::sha256(&dst).unwrap(),
        fixture::sha256(&md.disk).unwrap(),
        "the restored disk equals its source byte for byte"
    );
}
