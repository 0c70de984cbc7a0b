//! `lifeboat ls`/`extract` of one logical volume (`--lv VG/LV`, alone or with `--part N`) of an
//! LVM2 PV made by the real tools (`pvcreate`, `vgcreate`, `lvcreate -an`, `lvextend` on a loop
//! device), on the disk image itself and on its backup; and the only LV with a file system picked
//! without `--lv`.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::*;
use qemu_tests::fixture::{self, LvmLv, Mkfs};
use std::path::Path;

fn lv<'a>(lvs: &'a [LvmLv], name: &str) -> &'a LvmLv {
    lvs.iter().find(|l| l.name == name).unwrap()
}

/// An ext4 image of LV `l` holding `files`, written into the PV image.
fn ext4_into(d: &Path, pv: &Path, l: &LvmLv, label: &str, files: &[(&str, Vec<u8>)]) {
    let src = d.join(format!("src-{label}"));
    std::fs::create_dir_all(&src).unwrap();
    for (n, data) in files {
        std::fs::write(src.join(n), data).unwrap();
    }
    let img = d.join(format!("{label}.ext4"));
    fixture::mkfs(Mkfs::Ext4, &img, l.size, label, &["-d", s(&src)]).unwrap();
    fixture::write_lv(pv, l, &img).unwrap();
}

#[test]
fn one_logical_volume_is_listed_and_extracted_from_a_disk_and_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let disk = d.join("src.img");
    fixture::sparse_file(&disk, 200 * MIB).unwrap();
    fixture::sgdisk(
        &disk,
        &[
            "-n",
            "1:1M:+16M",
            "-t",
            "1:ef00",
            "-n",
            "2:0:0",
            "-t",
            "2:8e00",
        ],
    )
    .unwrap();
    let esp = d.join("esp.img");
    fixture::mkfs(Mkfs::Fat16, &esp, 16 * MIB, "ESP", &[]).unwrap();
    let (p1, _) = sgdisk_part(&disk, 1);
    fixture::write_into(&disk, p1, &esp).unwrap();
    let (p2, l2) = sgdisk_part(&disk, 2);
    let pv = d.join("pv.img");
    // root gets a second segment after home: reads must follow the segment table.
    let lvs = fixture::lvm_pv(
        &pv,
        l2,
        "lbbrowsevg1",
        &[("root", 32, 16), ("swap", 8, 0), ("home", 24, 0)],
    )
    .unwrap();
    assert_eq!(lv(&lvs, "root").pieces.len(), 2);
    let big = fixture::noise(3, 30 << 20);
    ext4_into(
        d,
        &pv,
        lv(&lvs, "root"),
        "lbroot",
        &[("big.bin", big.clone())],
    );
    ext4_into(
        d,
        &pv,
        lv(&lvs, "home"),
        "lbhome",
        &[("notes.txt", b"home\n".to_vec())],
    );
    let swap = d.join("swap.img");
    fixture::mkfs(Mkfs::Swap, &swap, lv(&lvs, "swap").size, "lbswap", &[]).unwrap();
    fixture::write_lv(&pv, lv(&lvs, "swap"), &swap).unwrap();
    fixture::write_into(&disk, p2, &pv).unwrap();

    // Two LVs with a file system: the user is told to pick one, and how.
    let (code, _, err) = lifeboat(&["ls", s(&disk), "--part", "2"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "several logical volumes with a file system: lbbrowsevg1/root, lbbrowsevg1/home"
        ) && err.contains("--lv VG/LV"),
        "{err}"
    );
    // --lv alone: the partition holding the PV is found.
    let (code, out, err) = lifeboat(&["ls", s(&disk), "--lv", "lbbrowsevg1/home"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("notes.txt"), "{out}");
    let (code, out, err) = lifeboat(&["ls", s(&disk), "--part", "2", "--lv", "root", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["fs"].as_str(), v["label"].as_str()),
        (Some("ext4"), Some("lbroot"))
    );
    let to = d.join("out");
    let (code, out, err) = lifeboat(&[
        "extract",
        s(&disk),
        "/big.bin",
        "--lv",
        "root",
        "--to",
        s(&to),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(std::fs::read(to.join("big.bin")).unwrap() == big);

    // Wrong names are refused with what there is.
    let (code, _, err) = lifeboat(&["ls", s(&disk), "--lv", "lbbrowsevg1/nosuch"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("holds no logical volume lbbrowsevg1/nosuch (it holds: lbbrowsevg1/root, lbbrowsevg1/swap, lbbrowsevg1/home)"),
        "{err}"
    );
    let (code, _, err) = lifeboat(&["ls", s(&disk), "--lv", "othervg/root"]);
    assert_eq!(code, 1);
    assert!(err.contains("no logical volume othervg/root"), "{err}");
    let (code, _, err) = lifeboat(&["ls", s(&disk), "--part", "1", "--lv", "root"]);
    assert_eq!(code, 1);
    assert!(err.contains("holds no LVM2 physical volume"), "{err}");

    // The same from the image of the disk.
    let img = d.join("disk.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&disk), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = lifeboat(&["ls", s(&img), "--lv", "home"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("notes.txt"), "{out}");
    let to = d.join("from-image");
    let (code, out, err) = lifeboat(&[
        "extract",
        s(&img),
        "/big.bin",
        "--part",
        "2",
        "--lv",
        "lbbrowsevg1/root",
        "--to",
        s(&to),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(std::fs::read(to.join("big.bin")).unwrap() == big);

    // `mount --lv`: the LV's file system from the image, read-only, through the kernel.
    let point = d.join("mnt");
    std::fs::create_dir_all(&point).unwrap();
    let (code, out, err) = lifeboat(&["mount", s(&img), s(&point), "--lv", "lbbrowsevg1/root"]);
    assert_eq!(code, 0, "{out}{err}");
    let read = std::fs::read(point.join("big.bin"));
    let written = std::fs::write(point.join("new.txt"), b"x");
    let (ucode, uout, uerr) = lifeboat(&["umount", s(&point)]);
    assert!(read.unwrap() == big, "the LV's file through the mount");
    assert!(written.is_err(), "the mount is read-only");
    assert_eq!(ucode, 0, "{uout}{uerr}");
    assert!(!point.join("big.bin").exists(), "unmounted");
}

#[test]
fn a_pv_with_one_file_system_needs_no_lv_option() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pv = d.join("pv.img");
    let lvs = fixture::lvm_pv(
        &pv,
        64 * MIB,
        "lbbrowsevg2",
        &[("data", 24, 0), ("swap", 8, 0)],
    )
    .unwrap();
    ext4_into(
        d,
        &pv,
        lv(&lvs, "data"),
        "lbdata",
        &[("a.txt", b"only\n".to_vec())],
    );
    let swap = d.join("swap.img");
    fixture::mkfs(Mkfs::Swap, &swap, lv(&lvs, "swap").size, "lbswap2", &[]).unwrap();
    fixture::write_lv(&pv, lv(&lvs, "swap"), &swap).unwrap();
    // A bare PV (like /dev/sdb2 or a partition image): its only LV with a file system.
    let (code, out, err) = lifeboat(&["ls", s(&pv)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("a.txt"), "{out}");
}
