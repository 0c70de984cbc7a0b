//! The same refusals and outcomes in the CLI and in job files, because both go through
//! `engine::job`: never restore onto the drive holding the image, never write a loop device over
//! a file being read, and a failed grow after a complete copy is its own exit code (4).

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::{check_clone, lifeboat, s, system_disk, MIB};
use qemu_tests::fixture::{self, Mkfs};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop device over a file, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(file: &Path) -> Loop {
        let dev = fixture::run("losetup", &["-f", "--show", s(file)])
            .unwrap()
            .trim()
            .to_string();
        assert!(dev.starts_with("/dev/loop"), "losetup said {dev}");
        Loop(dev)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = fixture::run("losetup", &["-d", &self.0]);
    }
}

/// A mounted file system, unmounted on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = fixture::run("umount", &[s(&self.0)]);
    }
}

/// A small ext4 file system image and its backup `name`.lbi in `dir`.
fn small_image(work: &Path, dir: &Path, name: &str) -> PathBuf {
    let tree = work.join(format!("{name}-tree"));
    fixture::file_tree(&tree, 20).unwrap();
    let fs = work.join(format!("{name}.fs"));
    fixture::mkfs(Mkfs::Ext4, &fs, 8 * MIB, "small", &["-d", s(&tree)]).unwrap();
    let img = dir.join(format!("{name}.lbi"));
    let (code, out, err) = lifeboat(&["backup", s(&fs), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    img
}

#[test]
fn restore_onto_the_drive_holding_the_image_is_refused_by_the_cli_and_a_job_file() {
    let work = tempfile::tempdir().unwrap();
    // A stick whose whole device holds the file system the image is stored on.
    let disk = work.path().join("stick.img");
    fixture::sparse_file(&disk, 64 * MIB).unwrap();
    let lo = Loop::attach(&disk);
    fixture::run("mkfs.ext4", &["-q", "-F", &lo.0]).unwrap();
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    fixture::run("mount", &[&lo.0, s(&mnt)]).unwrap();
    let _mounted = Mount(mnt.clone());
    let img = small_image(work.path(), &mnt, "on-stick");
    let before = fixture::sha256(&img).unwrap();

    let (code, out, err) = lifeboat(&["restore", s(&img), &lo.0, "--yes"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("is stored on this drive"), "{err}");

    let job = mnt.join("restore.toml");
    std::fs::write(
        &job,
        format!(
            "[[step]]\naction = \"restore\"\nimage = \"on-stick.lbi\"\ntarget = \"{}\"\n",
            lo.0
        ),
    )
    .unwrap();
    let (code, out, err) = lifeboat(&["run", s(&job)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("is stored on this drive"), "{out}");
    assert!(out.contains("-- step 1: FAILED --"), "{out}");
    assert_eq!(
        fixture::sha256(&img).unwrap(),
        before,
        "the image is intact"
    );
}

#[test]
fn a_loop_device_over_the_file_being_read_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let img = small_image(work.path(), work.path(), "a");
    let before = fixture::sha256(&img).unwrap();
    let lo = Loop::attach(&img);
    let (code, out, err) = lifeboat(&["restore", s(&img), &lo.0, "--yes"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("which is being read"), "{err}");
    assert_eq!(fixture::sha256(&img).unwrap(), before);

    let src = work.path().join("src.img");
    fixture::sparse_file(&src, 32 * MIB).unwrap();
    fixture::run("sgdisk", &["-n", "1:2048:0", s(&src)]).unwrap();
    let before = fixture::sha256(&src).unwrap();
    let lo = Loop::attach(&src);
    let (code, out, err) = lifeboat(&["clone", s(&src), &lo.0, "--yes"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("which is being read"), "{err}");
    assert_eq!(fixture::sha256(&src).unwrap(), before);
}

/// `lifeboat` with a `resize2fs` first in PATH that fails like the real one does on trouble.
fn lifeboat_with_failing_resize2fs(bin: &Path, args: &[&str]) -> (i32, String, String) {
    let fake = bin.join("resize2fs");
    if !fake.exists() {
        std::fs::create_dir_all(bin).unwrap();
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"resize2fs: Permission denied while trying to open $1\" >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_failed_grow_after_a_complete_clone_is_exit_4_in_the_cli_and_a_job_file() {
    let sd = system_disk();
    let bin = sd.dir.path().join("bin");
    let dst = sd.dir.path().join("dst.img");
    fixture::sparse_file(&dst, 300 * MIB).unwrap();
    let (code, out, err) = lifeboat_with_failing_resize2fs(
        &bin,
        &[
            "clone",
            s(&sd.disk),
            s(&dst),
            "--yes",
            "--grow-last",
            "--json",
        ],
    );
    assert_eq!(code, 4, "{out}{err}");
    let done: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "done")
        .unwrap();
    assert_eq!(done["status"], "completed-grow-failed", "{done}");
    assert!(
        done["grow_error"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{done}"
    );
    // The clone itself is complete: every file is there.
    check_clone(&sd, &dst);

    let dst2 = sd.dir.path().join("dst2.img");
    fixture::sparse_file(&dst2, 300 * MIB).unwrap();
    let job = sd.dir.path().join("clone.toml");
    std::fs::write(
        &job,
        format!(
            "[[step]]\naction = \"clone\"\nsource = \"{}\"\ntarget = \"{}\"\ngrow_last = true\n",
            s(&sd.disk),
            s(&dst2)
        ),
    )
    .unwrap();
    let (code, out, err) = lifeboat_with_failing_resize2fs(&bin, &["run", s(&job)]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        out.contains("-- step 1: OK, but growing the file system failed --"),
        "{out}"
    );
    assert!(
        out.contains("the copy is complete, but growing the file system failed"),
        "{out}"
    );
}
