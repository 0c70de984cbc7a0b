//! Helpers shared by the CLI integration tests: running `lifeboat`, and a dual-boot-like GPT
//! system disk made by the real tools.
#![allow(dead_code, clippy::unwrap_used)]

use qemu_tests::fixture::{self, Mkfs};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MIB: u64 = 1024 * 1024;

pub fn lifeboat(args: &[&str]) -> (i32, String, String) {
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

/// The value of `tag` (`UUID`, `LABEL`, `TYPE`, …) that `blkid -p` reads in `file`.
pub fn blkid(file: &Path, tag: &str) -> String {
    fixture::run("blkid", &["-p", "-o", "value", "-s", tag, s(file)])
        .unwrap()
        .trim()
        .to_string()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Start and size in bytes of partition `n` as sgdisk reports it.
pub fn sgdisk_part(disk: &Path, n: u32) -> (u64, u64) {
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

pub struct SystemDisk {
    pub dir: tempfile::TempDir,
    pub disk: PathBuf,
    pub tree: PathBuf,
    pub files: Vec<String>,
}

/// A 160 MiB GPT disk like a dual-boot PC's: 1 = ESP (FAT32, 36 MiB), 3 = NTFS (40 MiB),
/// 4 = ext4 root filled with a file tree; partition 2 is absent.
pub fn system_disk() -> SystemDisk {
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
pub fn check_clone(sd: &SystemDisk, dst: &Path) {
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
