//! `lifeboat info` on disk image files made by the real tools.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use qemu_tests::fixture::{self, Mkfs};
use std::path::Path;
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

/// A 64 MiB GPT disk: 1 = ESP (FAT32, 34 MiB), 3 = Linux ext4 (20 MiB); 2 is absent.
fn gpt_disk(dir: &Path) -> std::path::PathBuf {
    let disk = dir.join("disk.img");
    fixture::sparse_file(&disk, 64 * MIB).unwrap();
    let d = disk.to_str().unwrap();
    fixture::run(
        "sgdisk",
        &[
            "-n",
            "1:2048:+34M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI system",
            "-n",
            "3:0:+20M",
            "-t",
            "3:8300",
            "-c",
            "3:root",
            d,
        ],
    )
    .unwrap();
    let esp = dir.join("esp.img");
    fixture::mkfs(Mkfs::Fat32, &esp, 34 * MIB, "LBESP", &[]).unwrap();
    fixture::write_into(&disk, 2048 * 512, &esp).unwrap();
    let root = dir.join("root.img");
    fixture::mkfs(Mkfs::Ext4, &root, 20 * MIB, "lbroot", &[]).unwrap();
    let start3 = (2048 + 34 * 2048) * 512;
    fixture::write_into(&disk, start3, &root).unwrap();
    disk
}

#[test]
fn info_reports_gpt_partitions_and_file_systems() {
    let dir = tempfile::tempdir().unwrap();
    let disk = gpt_disk(dir.path());
    let (code, out, err) = lifeboat(&["info", "--json", disk.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["size"], 64 * MIB);
    assert_eq!(v["content"]["kind"], "table");
    assert_eq!(v["content"]["table"], "gpt");
    let parts = v["content"]["partitions"].as_array().unwrap();
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| p["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 3]);
    assert_eq!(parts[0]["first_lba"], 2048);
    assert_eq!(parts[0]["size"], 34 * MIB);
    assert_eq!(parts[0]["name"], "EFI system");
    assert_eq!(parts[0]["fs"]["kind"], "vfat");
    assert_eq!(parts[0]["fs"]["label"], "LBESP");
    assert_eq!(parts[1]["fs"]["kind"], "ext4");
    assert_eq!(parts[1]["fs"]["label"], "lbroot");
    assert_eq!(parts[1]["name"], "root");

    let (code, human, _) = lifeboat(&["info", disk.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(human.contains("partition table: GPT"), "{human}");
    assert!(human.contains("lbroot"), "{human}");
    assert!(human.contains("EFI System"), "{human}");
}

#[test]
fn info_reports_a_bare_file_system_as_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fat.img");
    fixture::mkfs(Mkfs::Fat16, &img, 32 * MIB, "STICK", &[]).unwrap();
    let (code, out, err) = lifeboat(&["info", "--json", img.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["content"]["kind"], "file_system");
    assert_eq!(v["content"]["fs"]["kind"], "vfat");
    assert_eq!(v["content"]["fs"]["label"], "STICK");
}

#[test]
fn info_on_an_mbr_disk_with_logical_partitions_numbers_them_from_5() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("mbr.img");
    fixture::sparse_file(&disk, 64 * MIB).unwrap();
    let script = "label: dos\n,16M,83\n,,5\n,8M,83\n,8M,82\n,8M,7\n";
    let mut child = Command::new(fixture::require("sfdisk").unwrap())
        .arg("-q")
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let (code, out, err) = lifeboat(&["info", "--json", disk.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["content"]["table"], "mbr");
    let parts = v["content"]["partitions"].as_array().unwrap();
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| p["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 5, 6, 7]);
    assert_eq!(parts[1]["extended"], true);
    assert!(parts[2]["logical"].as_bool().unwrap());
}

#[test]
fn info_on_bad_input_fails_clearly_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, err) = lifeboat(&["info", empty.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("is empty"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let random = dir.path().join("random.img");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let (code, out, err) = lifeboat(&["info", random.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("no partition table and no known file system"),
        "{out}"
    );

    let (code, _, err) = lifeboat(&["info", "serial:NO-SUCH-SERIAL-42"]);
    assert_eq!(code, 1);
    assert!(err.contains("NO-SUCH-SERIAL-42"), "{err}");

    let (code, _, _) = lifeboat(&["info"]);
    assert_eq!(code, 2, "a missing argument is a usage error");
}

#[test]
fn list_shows_this_machines_root_disk_with_size_and_mount_state() {
    let (code, out, err) = lifeboat(&["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let disks = v.as_array().unwrap();
    assert!(!disks.is_empty(), "no disks listed");
    let root = disks
        .iter()
        .find(|d| {
            d["mount_points"]
                .as_array()
                .is_some_and(|m| m.iter().any(|p| p == "/"))
                || d["partitions"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p["mount_points"]
                            .as_array()
                            .is_some_and(|m| m.iter().any(|x| x == "/"))
                    })
                })
        })
        .expect("the disk holding / is listed");
    assert!(root["size"].as_u64().unwrap() > 0);
    assert_eq!(root["is_boot_medium"], true);
    assert!(
        root["in_use"].as_str().unwrap().contains("mounted at /"),
        "{}",
        root["in_use"]
    );
    let (code, human, _) = lifeboat(&["list"]);
    assert_eq!(code, 0);
    let name = root["path"].as_str().unwrap();
    let line = human.lines().find(|l| l.starts_with(name)).unwrap();
    assert!(
        line.contains("BOOT MEDIUM") && line.contains("mounted /"),
        "{line}"
    );
}

#[test]
fn a_hibernated_windows_volume_is_shown_and_extracting_from_it_warns() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("win.img");
    fixture::mkfs(Mkfs::Ntfs, &img, 32 * MIB, "Windows", &[]).unwrap();
    let doc = dir.path().join("doc.txt");
    std::fs::write(&doc, b"report\n").unwrap();
    fixture::run(
        "ntfscp",
        &[
            "-q",
            img.to_str().unwrap(),
            doc.to_str().unwrap(),
            "doc.txt",
        ],
    )
    .unwrap();
    // What Windows leaves behind when it hibernates or shuts down with fast startup.
    let hiber = dir.path().join("hiberfil");
    std::fs::write(&hiber, [&b"HIBR"[..], &[7u8; 8192]].concat()).unwrap();
    fixture::run(
        "ntfscp",
        &[
            "-q",
            img.to_str().unwrap(),
            hiber.to_str().unwrap(),
            "hiberfil.sys",
        ],
    )
    .unwrap();
    let (code, out, err) = lifeboat(&["info", img.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("hibernated (Windows fast startup or hibernation)"),
        "{out}"
    );
    let to = dir.path().join("out");
    let (code, out, err) = lifeboat(&[
        "extract",
        img.to_str().unwrap(),
        "/doc.txt",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("note: the NTFS volume is hibernated"), "{out}");
    assert_eq!(std::fs::read(to.join("doc.txt")).unwrap(), b"report\n");
}
