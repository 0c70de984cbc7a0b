//! `lifeboat info`, `backup` and `restore` of a disk whose second partition is an LVM2 PV made by
//! the real tools (`pvcreate`, `vgcreate`, `lvcreate -an`, `lvextend` on a loop device, no
//! device-mapper), with ext4 and swap written into the LVs at the offsets `lvs --segments` and
//! `pvs -o pe_start` report. The image stores the PV's label and metadata and only the used
//! blocks of each LV's file system; the restored PV has the same UUIDs and metadata to the LVM
//! tools, and every LV's file system checks clean and gives back its files.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::*;
use qemu_tests::fixture::{self, LvmLv, Mkfs};
use std::path::Path;

fn lv<'a>(lvs: &'a [LvmLv], name: &str) -> &'a LvmLv {
    lvs.iter().find(|l| l.name == name).unwrap()
}

/// An ext4 image of LV `l` holding `files`, written into the PV image.
fn ext4_into(d: &Path, pv: &Path, l: &LvmLv, label: &str, files: &[(String, Vec<u8>)]) {
    let src = d.join(format!("src-{label}"));
    std::fs::create_dir_all(&src).unwrap();
    for (n, data) in files {
        std::fs::write(src.join(n), data).unwrap();
    }
    let img = d.join(format!("{label}.ext4"));
    fixture::mkfs(Mkfs::Ext4, &img, l.size, label, &["-d", s(&src)]).unwrap();
    fixture::write_lv(pv, l, &img).unwrap();
}

/// Each LV's ext4 in `pv` checks clean and holds `files`.
fn check_lv(d: &Path, pv: &Path, l: &LvmLv, files: &[(String, Vec<u8>)]) {
    let out = d.join(format!("check-{}.img", l.name));
    fixture::extract_lv(pv, l, &out).unwrap();
    let (code, text) = fixture::run_status("e2fsck", &["-fn", s(&out)]).unwrap();
    assert_eq!(code, 0, "e2fsck -fn on LV {}:\n{text}", l.name);
    for (n, data) in files {
        let got = d.join(format!("got-{}-{n}", l.name));
        fixture::run(
            "debugfs",
            &["-R", &format!("dump /{n} {}", s(&got)), s(&out)],
        )
        .unwrap();
        assert!(
            std::fs::read(&got).unwrap() == *data,
            "{n} in LV {} differs",
            l.name
        );
    }
}

fn files(seed: u64, sizes: &[usize]) -> Vec<(String, Vec<u8>)> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("f{i}.bin"), fixture::noise(seed + i as u64, n)))
        .collect()
}

#[test]
fn disk_with_lvm_pv_backs_up_only_lv_used_blocks_and_restores_the_same_pv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let disk = d.join("src.img");
    fixture::sparse_file(&disk, 300 * MIB).unwrap();
    fixture::sgdisk(
        &disk,
        &[
            "-n",
            "1:1M:+32M",
            "-t",
            "1:8300",
            "-n",
            "2:0:0",
            "-t",
            "2:8e00",
        ],
    )
    .unwrap();
    let (p2, l2) = sgdisk_part(&disk, 2);
    let pv = d.join("pv.img");
    let lvs = fixture::lvm_pv(
        &pv,
        l2,
        "lbclivg1",
        &[("root", 64, 32), ("swap", 16, 0), ("home", 48, 0)],
    )
    .unwrap();
    assert_eq!(lv(&lvs, "root").pieces.len(), 2);
    let root_files = files(1, &[9 << 20, 300_000, 10]);
    let home_files = files(50, &[4 << 20, 1234]);
    ext4_into(d, &pv, lv(&lvs, "root"), "lbroot", &root_files);
    ext4_into(d, &pv, lv(&lvs, "home"), "lbhome", &home_files);
    let swap = d.join("swap.img");
    fixture::mkfs(Mkfs::Swap, &swap, lv(&lvs, "swap").size, "lbswap", &[]).unwrap();
    fixture::write_lv(&pv, lv(&lvs, "swap"), &swap).unwrap();
    fixture::write_into(&disk, p2, &pv).unwrap();
    let tools_before = fixture::lvm_on(
        &pv,
        "lvs",
        &[
            "--noheadings",
            "-o",
            "vg_uuid,lv_name,lv_uuid,lv_size,seg_pe_ranges",
            "--segments",
        ],
    )
    .unwrap();
    let pv_uuid = fixture::lvm_on(&pv, "pvs", &["--noheadings", "-o", "pv_uuid"]).unwrap();

    // `info` shows the VG, the LVs with their sizes and file systems.
    let (code, out, err) = lifeboat(&["info", s(&disk)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("LVM2 PV (partition 2) uuid ") && out.contains(pv_uuid.trim()),
        "{out}"
    );
    assert!(out.contains("VG lbclivg1"), "{out}");
    for (name, fs, label) in [
        ("root", "ext4", "lbroot"),
        ("home", "ext4", "lbhome"),
        ("swap", "swap", "lbswap"),
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("LV {name} ")))
            .unwrap_or_else(|| panic!("no line for LV {name}:\n{out}"));
        assert!(
            line.contains(fs) && line.contains(&format!("label \"{label}\"")),
            "{line}"
        );
    }
    assert!(out.contains("96.0 MiB"), "root is 96 MiB:\n{out}");
    let (_, json, _) = lifeboat(&["info", "--json", s(&disk)]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["lvm"][0]["partition"], 2, "{json}");
    assert_eq!(v["lvm"][0]["pv"]["pv"]["vg_name"], "lbclivg1", "{json}");
    assert_eq!(
        v["lvm"][0]["pv"]["lvs"].as_array().unwrap().len(),
        3,
        "{json}"
    );

    // Backup: the plan describes the PV; the image holds far less than the PV.
    let img = d.join("disk.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&disk), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    let plan = format!("{out}{err}");
    assert!(
        plan.contains("LVM2 PV, VG lbclivg1: lv root (ext4, "),
        "{plan}"
    );
    assert!(plan.contains("lv swap (swap: header only)"), "{plan}");
    let (code, info, err) = lifeboat(&["info", "--json", s(&img)]);
    assert_eq!(code, 0, "{err}");
    let m: serde_json::Value = serde_json::from_str(&info).unwrap();
    let p = &m["manifest"]["partitions"][1];
    assert_eq!(p["mode"], "used-blocks", "{info}");
    let used = p["used_bytes"].as_u64().unwrap();
    // ~14 MiB of files, ext4 metadata and journals, the PV's first MiB.
    assert!(
        used > 14 * MIB && used < 60 * MIB,
        "PV stores {used} of {l2}"
    );
    let img_len = fixture::file_len(&img).unwrap();
    assert!(
        img_len < 60 * MIB,
        "image of {img_len} bytes for a 300 MiB disk"
    );

    // Restore to a blank disk: the PV is the same to the LVM tools, its metadata byte-equal.
    let dst = d.join("dst.img");
    fixture::sparse_file(&dst, 300 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let rpv = d.join("restored-pv.img");
    fixture::extract(&dst, p2, l2, &rpv).unwrap();
    let tools_after = fixture::lvm_on(
        &rpv,
        "lvs",
        &[
            "--noheadings",
            "-o",
            "vg_uuid,lv_name,lv_uuid,lv_size,seg_pe_ranges",
            "--segments",
        ],
    )
    .unwrap();
    // Device names (`/dev/loopN:0-15`) differ between the two loop devices; all else is equal.
    let fields = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .map(|l| {
                l.split_whitespace()
                    .map(|w| w.split(':').next_back().unwrap().to_string())
                    .collect()
            })
            .collect()
    };
    assert_eq!(fields(&tools_after), fields(&tools_before));
    let after_uuid = fixture::lvm_on(&rpv, "pvs", &["--noheadings", "-o", "pv_uuid"]).unwrap();
    assert_eq!(after_uuid.trim(), pv_uuid.trim());
    let src_head = std::fs::read(&pv).unwrap()[..(MIB as usize)].to_vec();
    let dst_head = std::fs::read(&rpv).unwrap()[..(MIB as usize)].to_vec();
    assert!(
        src_head == dst_head,
        "label and metadata area differ after restore"
    );
    fixture::lvm_on(&rpv, "pvck", &[]).unwrap();
    check_lv(d, &rpv, lv(&lvs, "root"), &root_files);
    check_lv(d, &rpv, lv(&lvs, "home"), &home_files);
    let sw = d.join("restored-swap");
    fixture::extract_lv(&rpv, lv(&lvs, "swap"), &sw).unwrap();
    assert!(std::fs::read(&sw).unwrap()[..4096] == std::fs::read(&swap).unwrap()[..4096]);
}

/// A bare PV (a partition image without a table) with an ext4 LV and an LV holding no file
/// system: the backup keeps the latter whole and says so; restored into a new file, the PV is
/// byte for byte the source in everything the map keeps, and the same PV to the LVM tools.
#[test]
fn bare_pv_file_round_trips_with_the_same_uuids() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pv = d.join("pv.img");
    let lvs = fixture::lvm_pv(
        &pv,
        96 * MIB,
        "lbclivg2",
        &[("data", 24, 8), ("blob", 8, 0)],
    )
    .unwrap();
    let data_files = files(9, &[2 << 20, 77]);
    ext4_into(d, &pv, lv(&lvs, "data"), "lbdata", &data_files);
    let blob = d.join("blob.bin");
    std::fs::write(&blob, fixture::noise(5, (8 * MIB) as usize)).unwrap();
    fixture::write_lv(&pv, lv(&lvs, "blob"), &blob).unwrap();

    let img = d.join("pv.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&pv), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    let plan = format!("{out}{err}");
    assert!(
        plan.contains("LVM2 PV, VG lbclivg2: lv data (ext4, "),
        "{plan}"
    );
    assert!(
        plan.contains("lv blob (no file system: whole, no known file system)"),
        "{plan}"
    );
    let (_, info, _) = lifeboat(&["info", "--json", s(&img)]);
    let m: serde_json::Value = serde_json::from_str(&info).unwrap();
    let used = m["manifest"]["partitions"][0]["used_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        used > 11 * MIB && used < 24 * MIB,
        "PV stores {used} of {}",
        96 * MIB
    );

    let dst = d.join("dst.img");
    fixture::sparse_file(&dst, 96 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&dst), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    for (tool, fields) in [
        ("pvs", "pv_uuid,vg_uuid,pv_size"),
        ("lvs", "lv_name,lv_uuid,lv_size"),
    ] {
        let q = ["--noheadings", "-o", fields];
        let want = fixture::lvm_on(&pv, tool, &q).unwrap();
        assert!(want.contains('-'), "{tool}: {want}");
        assert_eq!(fixture::lvm_on(&dst, tool, &q).unwrap(), want);
    }
    let (a, b) = (std::fs::read(&pv).unwrap(), std::fs::read(&dst).unwrap());
    assert!(
        a[..MIB as usize] == b[..MIB as usize],
        "label and metadata differ"
    );
    for &(_, at, len) in &lv(&lvs, "blob").pieces {
        let r = at as usize..(at + len) as usize;
        assert!(a[r.clone()] == b[r], "LV blob differs");
    }
    check_lv(d, &dst, lv(&lvs, "data"), &data_files);
}
