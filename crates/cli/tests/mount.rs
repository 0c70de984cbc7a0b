//! `lifeboat mount` / `lifeboat umount` on the host (as root, real tools): images made by
//! `lifeboat backup` of ext4, XFS, btrfs, NTFS and exFAT file systems and of a multi-partition disk are
//! mounted read-only through the served FUSE file and a loop device; the files equal the
//! source's, the checkers pass on the loop device, writes fail, only the chunks touched are read,
//! a damaged chunk fails only the reads that need it, and `umount` leaves nothing behind.
//! exFAT goes through exfat-fuse where the kernel has no driver (as on this host); vfat needs the
//! boot image's kernel (this host's has no vfat driver).

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::*;
use qemu_tests::fixture::{self, KernelMount, Mkfs};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What `lifeboat mount` set up.
struct Mounted {
    dir: PathBuf,
    pid: i32,
    loop_dev: PathBuf,
    /// The FUSE file the loop device reads.
    served: PathBuf,
    /// Unmounted by [`umount`] (else dropping it unmounts, so a failed test leaves nothing).
    done: bool,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.done {
            let _ = lifeboat(&["umount", s(&self.dir)]);
        }
    }
}

/// `lifeboat mount IMAGE [--part N] DIR` (DIR created), which must succeed.
fn mount(image: &Path, part: Option<u32>, dir: &Path) -> Mounted {
    std::fs::create_dir_all(dir).unwrap();
    let mut args = vec!["mount", s(image), s(dir)];
    let n;
    if let Some(p) = part {
        n = p.to_string();
        args.extend(["--part", &n]);
    }
    let (code, out, err) = lifeboat(&args);
    assert_eq!(code, 0, "{out}{err}");
    // "… (served by pid N through /dev/loopX)"
    let tail = out
        .split("served by pid ")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    let mut words = tail.split_whitespace();
    let pid: i32 = words.next().unwrap().parse().unwrap();
    let loop_dev = PathBuf::from(words.nth(1).unwrap().trim_end_matches(')'));
    assert!(running(pid), "the server {pid} is not running");
    let dir = std::fs::canonicalize(dir).unwrap();
    let line = mount_line(&dir).unwrap_or_else(|| panic!("{} is not mounted", dir.display()));
    assert!(
        line.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "not mounted read-only: {line}"
    );
    let served = disk::loopdev::backing_file(&loop_dev).unwrap();
    assert!(
        served.starts_with("/run/lifeboat/mounts"),
        "{}",
        served.display()
    );
    assert!(mount_line(&served).unwrap().contains(" - fuse lifeboat:"));
    Mounted {
        dir,
        pid,
        loop_dev,
        served,
        done: false,
    }
}

fn mount_line(dir: &Path) -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(s(dir)))
        .map(str::to_string)
}

fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| {
            let state = st
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// `lifeboat umount`, which must succeed and leave no mount, loop device or process behind.
fn umount(mut m: Mounted) {
    m.done = true;
    let (code, out, err) = lifeboat(&["umount", s(&m.dir)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        mount_line(&m.dir).is_none(),
        "{} still mounted",
        m.dir.display()
    );
    assert!(
        disk::loopdev::backing_file(&m.loop_dev).is_none_or(|f| !f.starts_with("/run/lifeboat")),
        "{} still bound",
        m.loop_dev.display()
    );
    assert!(!running(m.pid), "the server {} still runs", m.pid);
    assert!(
        mount_line(&m.served).is_none(),
        "{} is still mounted",
        m.served.display()
    );
    assert!(!m.served.exists(), "{} is left behind", m.served.display());
}

/// Every file of `names` under `mounted` equals the one under `tree`.
fn same_files(tree: &Path, mounted: &Path, names: &[String]) {
    assert!(!names.is_empty());
    for n in names {
        let want = std::fs::read(tree.join(n)).unwrap();
        let got = std::fs::read(mounted.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert!(got == want, "{n} differs");
    }
}

/// Creating a file under `dir` fails with EROFS.
fn refuses_writes(dir: &Path) {
    let err = std::fs::write(dir.join("new-file"), b"x").expect_err("a write must fail");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS), "{err}");
}

fn backup(source: &Path, image: &Path) {
    let (code, out, err) = lifeboat(&["backup", s(source), s(image)]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn an_ext4_image_mounts_read_only_with_the_sources_files_passes_e2fsck_and_umount_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    let mut names = fixture::file_tree(&tree, 300).unwrap();
    std::fs::write(tree.join("big.bin"), fixture::noise(7, 9 << 20)).unwrap();
    names.push("big.bin".into());
    let fs = d.join("ext4.img");
    fixture::mkfs(Mkfs::Ext4, &fs, 96 * MIB, "lbext4", &["-d", s(&tree)]).unwrap();
    let before = fixture::sha256(&fs).unwrap();
    let img = d.join("ext4.lbi");
    backup(&fs, &img);
    let image_hash = fixture::sha256(&img).unwrap();

    let m = mount(&img, None, &d.join("mnt"));
    same_files(&tree, &m.dir, &names);
    refuses_writes(&m.dir);
    let (code, out) = fixture::run_status("e2fsck", &["-fn", s(&m.loop_dev)]).unwrap();
    assert_eq!(code, 0, "e2fsck -fn on {}: {out}", m.loop_dev.display());
    // The same folder cannot be mounted twice.
    let (code, _, err) = lifeboat(&["mount", s(&img), s(&m.dir)]);
    assert_ne!(code, 0);
    assert!(err.contains("already"), "{err}");
    umount(m);
    // Nothing wrote to the image or its source.
    assert_eq!(fixture::sha256(&img).unwrap(), image_hash);
    assert_eq!(fixture::sha256(&fs).unwrap(), before);
    // umount of a folder that lifeboat did not mount says so.
    let (code, _, err) = lifeboat(&["umount", s(d)]);
    assert_ne!(code, 0);
    assert!(err.contains("not mounted by lifeboat mount"), "{err}");
}

#[test]
fn xfs_and_btrfs_images_mount_read_only_with_the_sources_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    let mut names = fixture::file_tree(&tree, 200).unwrap();
    std::fs::write(tree.join("big.bin"), fixture::noise(11, 3 << 20)).unwrap();
    names.push("big.bin".into());

    let xfs = d.join("xfs.img");
    fixture::mkfs(Mkfs::Xfs, &xfs, 320 * MIB, "lbxfs", &[]).unwrap();
    {
        let mnt = KernelMount::new(&xfs, &d.join("fill"), "").unwrap();
        fixture::run("cp", &["-a", &format!("{}/.", s(&tree)), s(mnt.path())]).unwrap();
        mnt.unmount().unwrap();
    }
    let btrfs = d.join("btrfs.img");
    fixture::mkfs(
        Mkfs::Btrfs,
        &btrfs,
        200 * MIB,
        "lbbtrfs",
        &["--rootdir", s(&tree)],
    )
    .unwrap();

    for (fs, name) in [(&xfs, "xfs"), (&btrfs, "btrfs")] {
        let img = fs.with_extension("lbi");
        backup(fs, &img);
        let m = mount(&img, None, &d.join(format!("mnt-{name}")));
        assert!(mount_line(&m.dir).unwrap().contains(&format!(" - {name} ")));
        same_files(&tree, &m.dir, &names);
        refuses_writes(&m.dir);
        umount(m);
    }
}

#[test]
fn one_partition_of_a_multi_partition_disk_image_mounts_ext4_and_ntfs_through_ntfs_3g() {
    let sd = system_disk();
    let d = sd.dir.path();
    let img = d.join("disk.lbi");
    backup(&sd.disk, &img);

    // Several file systems: without --part, lifeboat asks which.
    let (code, _, err) = lifeboat(&["mount", s(&img), s(d)]);
    assert_ne!(code, 0);
    assert!(err.contains("--part") || err.contains("several"), "{err}");

    let root = mount(&img, Some(4), &d.join("root"));
    same_files(&sd.tree, &root.dir, &sd.files);
    refuses_writes(&root.dir);
    let (code, out) = fixture::run_status("e2fsck", &["-fn", s(&root.loop_dev)]).unwrap();
    assert_eq!(code, 0, "{out}");

    // Two mounts of one image at once, the second an NTFS through ntfs-3g.
    let ntfs = mount(&img, Some(3), &d.join("windows"));
    let ntfs_files: Vec<String> = sd
        .files
        .iter()
        .filter(|f| f.starts_with("file-"))
        .take(10)
        .cloned()
        .collect();
    same_files(&sd.tree, &ntfs.dir, &ntfs_files);
    let err = std::fs::write(ntfs.dir.join("new-file"), b"x").expect_err("a write must fail");
    assert!(
        matches!(
            err.raw_os_error(),
            Some(nix::libc::EROFS | nix::libc::EACCES | nix::libc::EPERM)
        ),
        "{err}"
    );
    umount(ntfs);
    umount(root);
}

/// The bytes the server process has read (`rchar`: the image file, plus the small FUSE request
/// headers).
fn server_read(pid: i32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn reading_one_small_file_of_a_1_gib_image_reads_only_a_few_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    // 160 MiB that do not compress, and one small file.
    for i in 0..4u64 {
        std::fs::write(
            tree.join(format!("noise-{i}.bin")),
            fixture::noise(i + 1, 40 << 20),
        )
        .unwrap();
    }
    std::fs::write(tree.join("small.txt"), b"the one file a technician needs\n").unwrap();
    let fs = d.join("big.img");
    fixture::mkfs(Mkfs::Ext4, &fs, 1024 * MIB, "lbbig", &["-d", s(&tree)]).unwrap();
    let img = d.join("big.lbi");
    backup(&fs, &img);
    let image_len = fixture::file_len(&img).unwrap();
    assert!(image_len > 150 * MIB, "image {image_len} bytes");

    let m = mount(&img, None, &d.join("mnt"));
    let before = server_read(m.pid);
    let got = std::fs::read(m.dir.join("small.txt")).unwrap();
    assert_eq!(got, b"the one file a technician needs\n");
    let names: Vec<String> = std::fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}"); // 4 noise files, small.txt, lost+found
    let read = server_read(m.pid);
    eprintln!(
        "the server read {before} bytes to mount, {read} in all, of a {image_len}-byte image"
    );
    // Mounting plus the small file: the superblock, group descriptors, bitmaps, the root
    // folder, a few inodes and the journal's head — a few chunks, nowhere near the image.
    assert!(
        read < 24 * MIB,
        "the server read {read} bytes ({before} by the mount) of a {image_len}-byte image"
    );
    umount(m);
}

#[test]
fn a_damaged_chunk_fails_only_the_reads_that_need_it_and_umount_of_a_busy_mount_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    let names = fixture::file_tree(&tree, 50).unwrap();
    std::fs::write(tree.join("big.bin"), fixture::noise(5, 64 << 20)).unwrap();
    let fs = d.join("ext4.img");
    fixture::mkfs(Mkfs::Ext4, &fs, 128 * MIB, "lbdmg", &["-d", s(&tree)]).unwrap();
    let img = d.join("ext4.lbi");
    backup(&fs, &img);
    // The middle of the image lies inside big.bin's chunks (64 MiB of noise among little else).
    let len = fixture::file_len(&img).unwrap();
    fixture::poke(&img, len / 2, b"\xde\xad\xbe\xef\xde\xad\xbe\xef").unwrap();

    let m = mount(&img, None, &d.join("mnt"));
    same_files(&tree, &m.dir, &names);
    let mut f = std::fs::File::open(m.dir.join("big.bin")).unwrap();
    let mut buf = Vec::new();
    let err = f
        .read_to_end(&mut buf)
        .expect_err("the damaged chunk must fail the read");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EIO), "{err}");
    drop(f);
    assert!(running(m.pid), "the server died on a damaged chunk");
    same_files(&tree, &m.dir, &names);

    // Busy: a file under the mount is open.
    let held = std::fs::File::open(m.dir.join(&names[0])).unwrap();
    let (code, out, err) = lifeboat(&["umount", s(&m.dir)]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("busy"), "{err}");
    assert!(
        mount_line(&m.dir).is_some(),
        "a busy mount must stay mounted"
    );
    assert!(running(m.pid));
    drop(held);
    umount(m);
}

#[test]
fn a_disk_image_served_whole_as_a_file_equals_the_source_disk_for_sgdisk_and_byte_for_byte() {
    let sd = system_disk();
    let d = sd.dir.path();
    let img = d.join("disk.lbi");
    backup(&sd.disk, &img);
    let file = d.join("served.raw");
    let (code, out, err) = lifeboat(&["mount", "--disk", s(&img), s(&file)]);
    assert_eq!(code, 0, "{out}{err}");
    let file = std::fs::canonicalize(&file).unwrap();
    assert!(mount_line(&file).is_some(), "{out}");
    let pid: i32 = out
        .split("(pid ")
        .nth(1)
        .and_then(|t| t.trim_end().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // The partition table as sgdisk prints it (without the line naming the file) and every byte.
    let table = |p: &Path| {
        let t = fixture::run("sgdisk", &["-p", s(p)]).unwrap();
        t.lines().skip(1).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(table(&file), table(&sd.disk));
    assert_eq!(
        fixture::sha256(&file).unwrap(),
        fixture::sha256(&sd.disk).unwrap()
    );
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect_err("the served disk must not open for writing");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS), "{err}");
    // Busy while open; then gone, file and server.
    let held = std::fs::File::open(&file).unwrap();
    let (code, _, err) = lifeboat(&["umount", s(&file)]);
    assert_ne!(code, 0);
    assert!(err.contains("busy"), "{err}");
    drop(held);
    let (code, out, err) = lifeboat(&["umount", s(&file)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(mount_line(&file).is_none());
    assert!(!file.exists(), "the served file is left behind");
    assert!(!running(pid));
}

#[test]
fn an_ext4_whose_journal_needs_recovery_mounts_without_replay_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    let names = fixture::file_tree(&tree, 40).unwrap();
    let fs = d.join("ext4.img");
    fixture::mkfs(Mkfs::Ext4, &fs, 48 * MIB, "lbjournal", &["-d", s(&tree)]).unwrap();
    // As after a crash: the superblock says the journal must be replayed.
    fixture::run("debugfs", &["-w", "-R", "feature needs_recovery", s(&fs)]).unwrap();
    let img = d.join("ext4.lbi");
    backup(&fs, &img);
    let point = d.join("mnt");
    std::fs::create_dir_all(&point).unwrap();
    let (code, out, err) = lifeboat(&["mount", s(&img), s(&point)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("noload") && err.contains("journal needs recovery"),
        "{err}"
    );
    let point = std::fs::canonicalize(&point).unwrap();
    assert!(mount_line(&point).unwrap().contains(" ro,"));
    same_files(&tree, &point, &names);
    let (code, out, err) = lifeboat(&["umount", s(&point)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(mount_line(&point).is_none());
}

#[test]
fn an_exfat_image_mounts_read_only_through_the_kernel_or_exfat_fuse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    // exFAT holds no symlinks: the tree's go.
    let names = fixture::file_tree(&tree, 60).unwrap();
    fixture::run("find", &[s(&tree), "-type", "l", "-delete"]).unwrap();
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| tree.join(n).is_file())
        .collect();
    let fs = d.join("exfat.img");
    fixture::mkfs(Mkfs::Exfat, &fs, 64 * MIB, "CARD", &[]).unwrap();
    // Filled through exfat-fuse on a loop device.
    let fill = d.join("fill");
    std::fs::create_dir_all(&fill).unwrap();
    let dev = fixture::run("losetup", &["-f", "--show", s(&fs)]).unwrap();
    let dev = dev.trim();
    fixture::run("mount.exfat-fuse", &[dev, s(&fill)]).unwrap();
    fixture::run("cp", &["-r", &format!("{}/.", s(&tree)), s(&fill)]).unwrap();
    fixture::fuse_unmount(&fill, dev).unwrap();
    fixture::run("losetup", &["-d", dev]).unwrap();

    let img = d.join("exfat.lbi");
    backup(&fs, &img);
    let m = mount(&img, None, &d.join("mnt"));
    same_files(&tree, &m.dir, &names);
    let err = std::fs::write(m.dir.join("new-file"), b"x").expect_err("a write must fail");
    assert!(
        matches!(
            err.raw_os_error(),
            Some(nix::libc::EROFS | nix::libc::EACCES | nix::libc::EPERM)
        ),
        "{err}"
    );
    umount(m);
}
