//! `lifeboat backup`, `restore`, `verify` and `info IMAGE` on file systems made and filled by the
//! real tools, checked by the real checkers; damaged, truncated and incomplete images.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::*;
use qemu_tests::fixture::{self, Mkfs};
use std::path::Path;

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn disk_backup_restores_to_a_larger_disk_with_every_file_intact() {
    let sd = system_disk();
    let before = fixture::sha256(&sd.disk).unwrap();
    let img = sd.dir.path().join("pc.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&sd.disk), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        fixture::sha256(&sd.disk).unwrap(),
        before,
        "the source stays byte-identical"
    );
    let (code, out, _) = lifeboat(&["verify", s(&img)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("image OK"), "{out}");
    let (code, info, _) = lifeboat(&["info", "--json", s(&img)]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    let parts = v["manifest"]["partitions"].as_array().unwrap();
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| p["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 3, 4]);
    assert!(parts.iter().all(|p| p["mode"] == "used-blocks"), "{info}");
    assert_eq!(parts[2]["fs"], "ext4");
    assert_eq!(parts[2]["label"], "root");

    let dst = sd.dir.path().join("dst.img");
    fixture::sparse_file(&dst, 256 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&dst), "--yes", "--verify", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let done = json_lines(&out)
        .into_iter()
        .find(|v| v["event"] == "done")
        .unwrap();
    assert_eq!(done["report"]["verified"], true);
    // Only used blocks are written: what the manifest says the file systems use, plus the gap.
    let used: u64 = parts
        .iter()
        .map(|p| p["used_bytes"].as_u64().unwrap())
        .sum();
    let written = done["report"]["bytes_written"].as_u64().unwrap();
    assert!(
        written >= used && written <= used + 2 * MIB,
        "wrote {written} for {used} used bytes"
    );
    check_clone(&sd, &dst);
}

#[test]
fn half_full_ext4_image_is_about_its_used_data_and_restore_touches_only_used_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fixture::file_tree(&tree, 3000).unwrap();
    let part = dir.path().join("ext4.img");
    fixture::mkfs(Mkfs::Ext4, &part, 256 * MIB, "data", &["-d", s(&tree)]).unwrap();
    let img = dir.path().join("p.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&part), s(&img), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&img)]).1).unwrap();
    let used = v["manifest"]["partitions"][0]["used_bytes"]
        .as_u64()
        .unwrap();
    let image_len = fixture::file_len(&img).unwrap();
    let zstd_of_used = {
        // The compression limit: the used blocks alone, zstd -3.
        let used_only = dir.path().join("used.bin");
        let done = json_lines(&out)
            .into_iter()
            .find(|v| v["event"] == "done")
            .unwrap();
        assert_eq!(
            done["report"]["bytes_read"].as_u64().unwrap(),
            used,
            "only used blocks are read"
        );
        fixture::run("e2image", &["-ra", s(&part), s(&used_only)]).unwrap();
        let z = dir.path().join("used.zst");
        fixture::run("zstd", &["-q", "-3", "-T0", s(&used_only), "-o", s(&z)]).unwrap();
        fixture::file_len(&z).unwrap()
    };
    assert!(
        used < 200 * MIB,
        "the file system should be at most ~half full ({used} bytes used)"
    );
    assert!(
        image_len < 256 * MIB / 2,
        "image {image_len} bytes for a 256 MiB file system"
    );
    assert!(
        (image_len as f64) <= zstd_of_used as f64 * 1.15 + 65536.0,
        "image {image_len} bytes vs zstd -3 of the used blocks {zstd_of_used}"
    );
    // Restore into a larger partition file that is full of 0xEE: untouched bytes stay 0xEE.
    let target = dir.path().join("target.img");
    std::fs::write(&target, vec![0xEEu8; 300 * MIB as usize]).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&target), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let data = std::fs::read(&target).unwrap();
    let untouched = data
        .chunks(4096)
        .filter(|b| b.iter().all(|&x| x == 0xEE))
        .count() as u64
        * 4096;
    let touched = 300 * MIB - untouched;
    assert!(
        touched <= used + 64 * 1024,
        "restore touched {touched} bytes for {used} used bytes"
    );
    let (code, out) = fixture::run_status("e2fsck", &["-fn", s(&target)]).unwrap();
    assert_eq!(code, 0, "{out}");
    for f in [0usize, 1, 2, 1234, 2999] {
        let name = match f % 3 {
            0 => format!("docs/note-{f}.txt"),
            1 => format!("docs/deeper/blob-{f}.bin"),
            _ => format!("file-{f}.dat"),
        };
        let dump = dir.path().join("dump");
        fixture::run(
            "debugfs",
            &["-R", &format!("dump /{name} {}", s(&dump)), s(&target)],
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&dump).unwrap(),
            std::fs::read(tree.join(&name)).unwrap(),
            "{name}"
        );
    }
}

/// Round trip of a bare file system: backup, restore into a new partition file, checker clean.
fn partition_round_trip(
    kind: Mkfs,
    size: u64,
    fill: impl Fn(&Path, &Path),
    check: &[&str],
    read_back: impl Fn(&Path, &Path),
) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fixture::file_tree(&tree, 120).unwrap();
    let part = dir.path().join("fs.img");
    fixture::mkfs(kind, &part, size, "ROUNDTRIP", &[]).unwrap();
    fill(&part, &tree);
    let img = dir.path().join("fs.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&part), s(&img), "--split", "1M"]);
    assert_eq!(code, 0, "{out}{err}");
    let target = dir.path().join("restored.img");
    fixture::sparse_file(&target, size).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&img), s(&target), "--yes", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let mut args: Vec<&str> = check[1..].to_vec();
    args.push(s(&target));
    let (code, out) = fixture::run_status(check[0], &args).unwrap();
    assert_eq!(code, 0, "{}: {out}", check[0]);
    read_back(&target, &tree);
}

#[test]
fn fat32_round_trip_keeps_long_names_and_contents() {
    partition_round_trip(
        Mkfs::Fat32,
        64 * MIB,
        |part, tree| {
            fixture::run(
                "mcopy",
                &[
                    "-s",
                    "-i",
                    s(part),
                    s(&tree.join("docs")),
                    "::/Long Folder Name With Spaces",
                ],
            )
            .unwrap();
        },
        &["fsck.vfat", "-n"],
        |target, tree| {
            let out = fixture::run(
                "mtype",
                &[
                    "-i",
                    s(target),
                    "::/Long Folder Name With Spaces/deeper/blob-1.bin",
                ],
            );
            assert!(out.is_ok());
            let got = std::process::Command::new(fixture::require("mtype").unwrap())
                .args([
                    "-i",
                    s(target),
                    "::/Long Folder Name With Spaces/note-0.txt",
                ])
                .output()
                .unwrap()
                .stdout;
            assert_eq!(got, std::fs::read(tree.join("docs/note-0.txt")).unwrap());
        },
    );
}

#[test]
fn ntfs_round_trip_keeps_contents() {
    partition_round_trip(
        Mkfs::Ntfs,
        48 * MIB,
        |part, tree| {
            for i in [1usize, 4, 7, 10] {
                let f = format!("docs/deeper/blob-{i}.bin");
                fixture::run(
                    "ntfscp",
                    &[s(part), s(&tree.join(&f)), &format!("blob-{i}.bin")],
                )
                .unwrap();
            }
        },
        &["ntfsfix", "-n"],
        |target, tree| {
            let got = std::process::Command::new(fixture::require("ntfscat").unwrap())
                .args([s(target), "blob-7.bin"])
                .output()
                .unwrap()
                .stdout;
            assert_eq!(
                got,
                std::fs::read(tree.join("docs/deeper/blob-7.bin")).unwrap()
            );
        },
    );
}

#[test]
fn exfat_round_trip_checks_clean() {
    partition_round_trip(
        Mkfs::Exfat,
        64 * MIB,
        |_, _| {},
        &["fsck.exfat", "-n"],
        |_, _| {},
    );
}

#[test]
fn mbr_disk_with_logical_partitions_restores_to_a_larger_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("mbr.img");
    fixture::sparse_file(&disk, 96 * MIB).unwrap();
    fixture::sfdisk(&disk, "label: dos\nstart=2048, size=24M, type=83, bootable\nsize=16M, type=c\n,,5\n,16M,83\n,,83\n", 512).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&disk)]).1).unwrap();
    let parts = v["content"]["partitions"].as_array().unwrap().clone();
    let tree = dir.path().join("tree");
    fixture::file_tree(&tree, 80).unwrap();
    for p in parts.iter().filter(|p| p["extended"] == false) {
        let n = p["number"].as_u64().unwrap();
        let img = dir.path().join(format!("p{n}.img"));
        let size = p["size"].as_u64().unwrap();
        if n == 2 {
            fixture::mkfs(Mkfs::Fat16, &img, size, "DATA", &[]).unwrap();
        } else {
            fixture::mkfs(
                Mkfs::Ext4,
                &img,
                size,
                &format!("part{n}"),
                &["-d", s(&tree)],
            )
            .unwrap();
        }
        fixture::write_into(&disk, p["start"].as_u64().unwrap(), &img).unwrap();
    }
    // A boot loader in the post-MBR gap must come back too.
    fixture::poke(&disk, 512 * 5, b"GRUB core.img stand-in").unwrap();
    let img = dir.path().join("mbr.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&disk), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    let dst = dir.path().join("dst.img");
    fixture::sparse_file(&dst, 160 * MIB).unwrap();
    let (code, out, err) = lifeboat(&[
        "restore",
        s(&img),
        s(&dst),
        "--yes",
        "--verify",
        "--grow-last",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out) = fixture::run_status("sfdisk", &["-V", s(&dst)]).unwrap();
    assert_eq!(code, 0, "{out}");
    let got = std::fs::read(&dst).unwrap();
    assert_eq!(&got[512 * 5..512 * 5 + 22], b"GRUB core.img stand-in");
    let w: serde_json::Value =
        serde_json::from_str(&lifeboat(&["info", "--json", s(&dst)]).1).unwrap();
    let wparts = w["content"]["partitions"].as_array().unwrap();
    assert_eq!(wparts.len(), parts.len());
    let last = wparts.iter().find(|p| p["number"] == 6).unwrap();
    assert_eq!(
        last["start"].as_u64().unwrap() + last["size"].as_u64().unwrap(),
        160 * MIB
    );
    for p in wparts.iter().filter(|p| p["extended"] == false) {
        let check = dir.path().join("check.img");
        fixture::extract(
            &dst,
            p["start"].as_u64().unwrap(),
            p["size"].as_u64().unwrap(),
            &check,
        )
        .unwrap();
        let checker = if p["number"] == 2 {
            ["fsck.vfat", "-n"]
        } else {
            ["e2fsck", "-fn"]
        };
        let (code, out) = fixture::run_status(checker[0], &[checker[1], s(&check)]).unwrap();
        assert_eq!(code, 0, "partition {}: {out}", p["number"]);
    }
}

#[test]
fn damaged_images_are_always_reported_and_never_restored_silently() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fixture::file_tree(&tree, 200).unwrap();
    let part = dir.path().join("fs.img");
    fixture::mkfs(Mkfs::Ext4, &part, 32 * MIB, "dmg", &["-d", s(&tree)]).unwrap();
    let img = dir.path().join("good.lbi");
    let (code, _, err) = lifeboat(&["backup", s(&part), s(&img), "--level", "1"]);
    assert_eq!(code, 0, "{err}");
    let good = std::fs::read(&img).unwrap();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for trial in 0..40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % good.len() as u64) as usize;
        let mut bad = good.clone();
        bad[at] ^= 1 << (trial % 8);
        let path = dir.path().join("bad.lbi");
        std::fs::write(&path, &bad).unwrap();
        let (vcode, vout, verr) = lifeboat(&["verify", s(&path)]);
        assert_ne!(
            vcode, 0,
            "trial {trial}: flipped byte {at} not found by verify: {vout}"
        );
        assert!(!verr.contains("panicked"), "{verr}");
        let target = dir.path().join("t.img");
        fixture::sparse_file(&target, 32 * MIB).unwrap();
        let (rcode, _, rerr) = lifeboat(&["restore", s(&path), s(&target), "--yes"]);
        assert_ne!(
            rcode, 0,
            "trial {trial}: restore of a damaged image (byte {at}) succeeded"
        );
        assert!(!rerr.contains("panicked"), "{rerr}");
    }
}

#[test]
fn truncated_foreign_and_split_images_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("fs.img");
    let tree = dir.path().join("tree");
    fixture::file_tree(&tree, 100).unwrap();
    fixture::mkfs(Mkfs::Ext4, &part, 24 * MIB, "t", &["-d", s(&tree)]).unwrap();
    let img = dir.path().join("t.lbi");
    assert_eq!(lifeboat(&["backup", s(&part), s(&img)]).0, 0);
    let full = std::fs::read(&img).unwrap();
    for cut in [full.len() - 1, full.len() - 40, full.len() / 2, 100] {
        let p = dir.path().join("cut.lbi");
        std::fs::write(&p, &full[..cut]).unwrap();
        for cmd in ["verify", "info"] {
            let (code, _, err) = lifeboat(&[cmd, s(&p)]);
            assert_eq!(code, 1, "{cmd} of an image cut at {cut}");
            assert!(
                err.contains("incomplete") || err.contains("truncated"),
                "{cmd} at {cut}: {err}"
            );
        }
        let target = dir.path().join("t.img");
        fixture::sparse_file(&target, 24 * MIB).unwrap();
        let (code, _, err) = lifeboat(&["restore", s(&p), s(&target), "--yes"]);
        assert_eq!(code, 1, "{err}");
        assert_eq!(
            fixture::sha256(&target).unwrap(),
            fixture::sha256(&{
                let z = dir.path().join("zero.img");
                fixture::sparse_file(&z, 24 * MIB).unwrap();
                z
            })
            .unwrap(),
            "a refused restore writes nothing"
        );
    }
    // Not an image at all: a text file given where an image is expected.
    let foreign = dir.path().join("notes.lbi");
    std::fs::write(&foreign, "hello, these are my notes\n".repeat(100)).unwrap();
    let (code, _, err) = lifeboat(&["verify", s(&foreign)]);
    assert_eq!(code, 1);
    assert!(err.contains("not a Lifeboat image"), "{err}");
    // A split image with a missing volume.
    let split = dir.path().join("s.lbi");
    assert_eq!(
        lifeboat(&["backup", s(&part), s(&split), "--split", "256K"]).0,
        0
    );
    let third = dir.path().join("s.lbi.003");
    assert!(
        third.exists(),
        "the split image should have at least 3 volumes"
    );
    let second = dir.path().join("s.lbi.002");
    let kept = std::fs::read(&second).unwrap();
    std::fs::remove_file(&second).unwrap();
    let (code, _, err) = lifeboat(&["verify", s(&split)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("missing volume") && err.contains("s.lbi.002"),
        "{err}"
    );
    // The last volume (with the trailer) missing: reported as incomplete, naming the next volume.
    std::fs::write(&second, kept).unwrap();
    let last = (2..100)
        .map(|n| dir.path().join(format!("s.lbi.{n:03}")))
        .take_while(|p| p.exists())
        .last()
        .unwrap();
    std::fs::remove_file(&last).unwrap();
    let (code, _, err) = lifeboat(&["info", s(&split)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("incomplete") && err.contains(last.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    // An existing image is never overwritten.
    let (code, _, err) = lifeboat(&["backup", s(&part), s(&img)]);
    assert_eq!(code, 1);
    assert!(err.contains("exists"), "{err}");
    assert_eq!(std::fs::read(&img).unwrap(), full);
}

#[test]
fn a_job_file_backs_up_and_verifies_unattended_with_a_report() {
    let sd = system_disk();
    let job = sd.dir.path().join("nightly.toml");
    std::fs::write(
        &job,
        format!(
            "# backup + verify\n[[step]]\naction = \"backup\"\nsource = \"{}\"\nimage = \"images/pc-{{date}}.lbi\"\nsplit = \"1M\"\n\n[[step]]\naction = \"verify\"\n",
            s(&sd.disk)
        ),
    )
    .unwrap();
    let (code, out, err) = lifeboat(&["run", s(&job)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("step 1 of 2: backup"), "{out}");
    assert!(out.contains("-- step 2: OK --"), "{out}");
    assert!(out.contains("2 step(s) OK, 0 failed"), "{out}");
    let images: Vec<_> = std::fs::read_dir(sd.dir.path().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let first = images
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "lbi"))
        .unwrap();
    assert!(images.len() >= 2, "split into volumes: {images:?}");
    assert_eq!(lifeboat(&["verify", s(first)]).0, 0);
    // A failing step stops the job and the exit code says so.
    std::fs::write(&job, "[[step]]\naction = \"verify\"\nimage = \"missing.lbi\"\n\n[[step]]\naction = \"verify\"\nimage = \"missing.lbi\"\n").unwrap();
    let (code, out, _) = lifeboat(&["run", s(&job)]);
    assert_eq!(code, 1);
    assert!(
        out.contains("-- step 1: FAILED --") && !out.contains("step 2 of 2"),
        "{out}"
    );
    // An invalid job file runs nothing: the job never started (exit 2, init then shows the UI).
    std::fs::write(&job, "[[step]]\naction = \"erase\"\n").unwrap();
    let (code, _, err) = lifeboat(&["run", s(&job)]);
    assert_eq!(code, i32::from(disk::boot::EXIT_NOT_STARTED));
    assert!(err.contains("not a valid job file"), "{err}");
}

#[test]
fn a_full_destination_fails_clearly_and_leaves_no_partial_image() {
    let sd = system_disk();
    let before = fixture::sha256(&sd.disk).unwrap();
    let mnt = sd.dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    fixture::run("mount", &["-t", "tmpfs", "-o", "size=2m", "tmpfs", s(&mnt)]).unwrap();
    let img = mnt.join("pc.lbi");
    let (code, _, err) = lifeboat(&["backup", s(&sd.disk), s(&img)]);
    let left: Vec<_> = std::fs::read_dir(&mnt).unwrap().collect();
    fixture::run("umount", &[s(&mnt)]).unwrap();
    assert_eq!(code, 1);
    assert!(
        err.contains("destination full") && err.contains("removed"),
        "{err}"
    );
    assert!(left.is_empty(), "partial volumes left behind: {left:?}");
    assert_eq!(fixture::sha256(&sd.disk).unwrap(), before);
}
