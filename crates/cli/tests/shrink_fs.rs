//! Restore and clone onto a smaller disk for the file systems that are not shrunk by
//! resize2fs/ntfsresize: btrfs (`btrfs filesystem resize` on the copy-on-write device), XFS (a
//! new XFS filled by xfsdump | xfsrestore), FAT12 (a rebuilt FAT). Each fixture is made by the
//! real tools and filled through the kernel; each disk is restored and cloned into 60 % of its
//! size, and the result must pass the file system's checker, keep its UUID, label and format
//! features, and hold the same tree: every file's bytes, mode, owner, mtime, link count, extended
//! attributes, symlinks, special files and holes (and for btrfs the subvolumes and snapshot).
//! The image and the source disk are never written.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::*;
use qemu_tests::fixture::{self, KernelMount, Mkfs};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a tree holds, path by path (relative, `.` for the root).
type Tree = BTreeMap<String, String>;

/// Every object below `root`: kind, mode, owner, size, mtime, link count, device number, link
/// target, content hash and extended attributes (all namespaces, via getfattr). Objects whose
/// content is a hole-punched file also say that they are sparse.
fn tree_of(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut todo = vec![PathBuf::from(".")];
    while let Some(rel) = todo.pop() {
        let p = root.join(&rel);
        let md = p.symlink_metadata().unwrap();
        let ft = md.file_type();
        let mut line = format!(
            "mode={:o} uid={} gid={} mtime={}.{:09}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.mtime(),
            md.mtime_nsec()
        );
        if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                todo.push(rel.join(n));
            }
        } else {
            line += &format!(" nlink={} size={} rdev={}", md.nlink(), md.len(), md.rdev());
        }
        if ft.is_symlink() {
            line += &format!(" -> {}", std::fs::read_link(&p).unwrap().display());
        } else if ft.is_file() {
            line += &format!(" sha256={}", fixture::sha256(&p).unwrap());
            if md.blocks() * 512 < md.len() / 2 {
                line += " sparse";
            }
        }
        let x = Command::new("getfattr")
            .args(["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"])
            .arg(&p)
            .output()
            .unwrap();
        let mut attrs: Vec<String> = String::from_utf8_lossy(&x.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_string)
            .collect();
        attrs.sort();
        if !attrs.is_empty() {
            line += &format!(" xattrs=[{}]", attrs.join(" "));
        }
        out.insert(rel.to_string_lossy().into_owned(), line);
    }
    out
}

/// Hard-link groups: the sorted paths of each inode with more than one name.
fn link_groups(root: &Path, tree: &Tree) -> Vec<Vec<String>> {
    let mut by_ino: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for rel in tree.keys() {
        let md = root.join(rel).symlink_metadata().unwrap();
        if !md.is_dir() && md.nlink() > 1 {
            by_ino
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.clone());
        }
    }
    let mut g: Vec<Vec<String>> = by_ino.into_values().collect();
    g.sort();
    g
}

fn assert_same_tree(want: &Tree, got: &Tree, what: &str) {
    for (k, v) in want {
        match got.get(k) {
            Some(g) => assert_eq!(g, v, "{what}: {k} differs"),
            None => panic!("{what}: {k} is missing"),
        }
    }
    for k in got.keys() {
        assert!(want.contains_key(k), "{what}: {k} appeared");
    }
}

fn sh(cmd: &str, args: &[&str]) -> String {
    fixture::run(cmd, args).unwrap()
}

/// The objects every kernel-filled fixture gets: files in folders, a hard-linked pair, a
/// symlink, a sparse file, a FIFO, a socket, a device node, odd modes and owners, fixed
/// mtimes, user/trusted/security extended attributes and an ACL.
fn populate(root: &Path) {
    let d = root.join("docs/deeper");
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..12u64 {
        std::fs::write(
            d.join(format!("blob {i}.bin")),
            fixture::noise(i + 7, 900 * 1024 + i as usize * 13),
        )
        .unwrap();
    }
    std::fs::write(root.join("docs/readme.txt"), "text\n".repeat(999)).unwrap();
    std::fs::hard_link(root.join("docs/readme.txt"), root.join("readme-link.txt")).unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", root.join("sym")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", root.join("dangling")).unwrap();
    // 40 MiB sparse file with data at both ends.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(root.join("sparse.img")).unwrap();
        f.write_all(&fixture::noise(3, 64 * 1024)).unwrap();
        f.seek(SeekFrom::Start(40 << 20)).unwrap();
        f.write_all(&fixture::noise(4, 64 * 1024)).unwrap();
    }
    sh("mkfifo", &[s(&root.join("fifo"))]);
    sh("mknod", &[s(&root.join("null-dev")), "c", "1", "3"]);
    let sock = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
    drop(sock);
    let readme = root.join("docs/readme.txt");
    sh(
        "setfattr",
        &["-n", "user.comment", "-v", "kept", s(&readme)],
    );
    sh(
        "setfattr",
        &["-n", "trusted.lifeboat", "-v", "0x00ff10", s(&readme)],
    );
    sh(
        "setfattr",
        &["-n", "security.lifeboat", "-v", "label", s(&readme)],
    );
    sh("setfacl", &["-m", "u:1234:rw-,g:55:r--", s(&readme)]);
    sh(
        "setfacl",
        &["-d", "-m", "u:1234:rwx", s(&root.join("docs"))],
    );
    sh(
        "chown",
        &["-h", "1234:55", s(&readme), s(&root.join("sym"))],
    );
    sh("chmod", &["4750", s(&root.join("docs/deeper/blob 1.bin"))]);
    sh("chmod", &["1777", s(&root.join("docs/deeper"))]);
    for p in ["docs/deeper/blob 2.bin", "sparse.img", "docs", "fifo"] {
        sh(
            "touch",
            &["-h", "-d", "@1234567890.123456789", s(&root.join(p))],
        );
    }
    sh("touch", &["-h", "-d", "@1111111111", s(&root.join("sym"))]);
}

/// A GPT disk of one partition of type `code` holding the file system image `fs`, starting at
/// 1 MiB, 1 MiB to spare after it.
fn one_partition_disk(dir: &Path, fs: &Path, code: &str) -> PathBuf {
    let len = fixture::file_len(fs).unwrap();
    let disk = dir.join("src.img");
    fixture::sparse_file(&disk, len + 2 * MIB).unwrap();
    fixture::sgdisk(
        &disk,
        &[
            "-n",
            &format!("1:2048:+{}K", len / 1024),
            "-t",
            &format!("1:{code}"),
            "-c",
            "1:data",
        ],
    )
    .unwrap();
    fixture::write_into(&disk, sgdisk_part(&disk, 1).0, fs).unwrap();
    disk
}

/// The 60 % target of `disk`, aligned to 1 MiB.
fn target_len(disk: &Path) -> u64 {
    fixture::file_len(disk).unwrap() * 6 / 10 / MIB * MIB
}

/// Restores an image of `disk` and clones `disk` onto disks of 60 % its size; `check` is called
/// with each target's shrunk partition (extracted to a file). The plan names `method`.
fn restore_and_clone(dir: &Path, disk: &Path, method: &str, check: &dyn Fn(&Path, &str)) {
    let (_, src_len) = sgdisk_part(disk, 1);
    let src_part = dir.join("src-part.img");
    fixture::extract(disk, sgdisk_part(disk, 1).0, src_len, &src_part).unwrap();
    let disk_hash = fixture::sha256(disk).unwrap();
    let img = dir.join("src.lbi");
    let (code, out, err) = lifeboat(&["backup", s(disk), s(&img)]);
    assert_eq!(code, 0, "{out}{err}");
    let img_hash = fixture::sha256(&img).unwrap();
    for how in ["restore", "clone"] {
        let dst = dir.join(format!("dst-{how}.img"));
        fixture::sparse_file(&dst, target_len(disk)).unwrap();
        let from = if how == "restore" { &img } else { disk };
        let (code, out, err) = lifeboat(&[how, s(from), s(&dst), "--dry-run"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains("shrink file systems onto the smaller target")
                && out.contains(&format!(" at least), {method}")),
            "the {how} plan lacks the method {method:?}:\n{out}"
        );
        let (code, out, err) = lifeboat(&[how, s(from), s(&dst), "--yes", "--verify"]);
        assert_eq!(code, 0, "{how}: {out}{err}");
        assert!(out.contains(&format!("with {method}")), "{how}: {out}");
        // fatfs (the FAT rebuild's reader) warns of any BPB with more than one reserved sector,
        // as mkfs.fat makes them, and fuser logs a reply to a read the kernel dropped while a
        // served file was unmounted (vdev): neither is a problem of the run.
        let problems: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("warning") || l.contains("error"))
            .filter(|l| !l.contains("fs compatibility: reserved_sectors value"))
            .filter(|l| !l.contains("Failed to send FUSE reply: No such file or directory"))
            .collect();
        assert!(problems.is_empty(), "{how}: {err}");
        let (code, v) = fixture::run_status("sgdisk", &["-v", s(&dst)]).unwrap();
        assert!(code == 0 && v.contains("No problems found"), "{v}");
        let (at, len) = sgdisk_part(&dst, 1);
        assert!(
            len < src_len,
            "{how}: partition 1 shrank ({len} of {src_len})"
        );
        assert_eq!(at % MIB, 0);
        let part = dir.join(format!("dst-{how}-part.img"));
        fixture::extract(&dst, at, len, &part).unwrap();
        for tag in ["UUID", "LABEL", "TYPE"] {
            assert_eq!(blkid(&part, tag), blkid(&src_part, tag), "{how}: {tag}");
        }
        check(&part, how);
        std::fs::remove_file(&part).unwrap();
        std::fs::remove_file(&dst).unwrap();
        assert_eq!(
            fixture::sha256(disk).unwrap(),
            disk_hash,
            "the source is never written"
        );
    }
    assert_eq!(
        fixture::sha256(&img).unwrap(),
        img_hash,
        "the image is never written"
    );
}

/// `btrfs subvolume list` reduced to what must survive: ID, parent, top level, UUIDs, path.
fn subvolumes(mnt: &Path) -> Vec<String> {
    let out = sh(
        "btrfs",
        &["subvolume", "list", "-a", "-p", "-u", "-q", s(mnt)],
    );
    let mut v: Vec<String> = out
        .lines()
        .map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let field = |k: &str| {
                let i = t.iter().position(|x| *x == k).unwrap();
                t[i + 1].to_string()
            };
            format!(
                "id={} parent={} top={} parent_uuid={} uuid={} path={}",
                field("ID"),
                field("parent"),
                field("level"),
                field("parent_uuid"),
                field("uuid"),
                field("path")
            )
        })
        .collect();
    v.sort();
    v
}

/// Read-only flags of the subvolumes (`btrfs property get -ts PATH ro`).
fn ro_flags(mnt: &Path, paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .map(|p| sh("btrfs", &["property", "get", "-ts", s(&mnt.join(p)), "ro"]))
        .collect()
}

/// True when the file's extents are compressed (`filefrag -v` marks them `encoded`).
fn compressed(file: &Path) -> bool {
    sh("filefrag", &["-v", s(file)]).contains("encoded")
}

#[test]
fn btrfs_restored_and_cloned_into_60_percent_keeps_subvolumes_snapshot_compression_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seed = d.join("seed");
    std::fs::create_dir_all(seed.join("seeded")).unwrap();
    for i in 0..6u64 {
        std::fs::write(
            seed.join(format!("seeded/part {i}.bin")),
            fixture::noise(50 + i, 2 << 20),
        )
        .unwrap();
    }
    let fs = d.join("btrfs.img");
    fixture::mkfs(
        Mkfs::Btrfs,
        &fs,
        512 * MIB,
        "lb-btrfs",
        &["--rootdir", s(&seed)],
    )
    .unwrap();
    let subvol_paths = ["home", "var", "snapshots/home-1"];
    let (want, want_subvols, want_ro, want_links) = {
        let mnt = KernelMount::new(&fs, &d.join("mnt"), "compress=zstd").unwrap();
        let m = mnt.path();
        sh("btrfs", &["subvolume", "create", s(&m.join("home"))]);
        sh("btrfs", &["subvolume", "create", s(&m.join("var"))]);
        populate(&m.join("home"));
        std::fs::write(m.join("var/log.txt"), "a log line\n".repeat(200_000)).unwrap();
        std::fs::create_dir(m.join("snapshots")).unwrap();
        sh(
            "btrfs",
            &[
                "subvolume",
                "snapshot",
                "-r",
                s(&m.join("home")),
                s(&m.join("snapshots/home-1")),
            ],
        );
        // Changed after the snapshot: the snapshot keeps the old bytes, the reflink shares them.
        std::fs::write(m.join("home/docs/readme.txt"), "changed\n").unwrap();
        sh(
            "cp",
            &[
                "--reflink=always",
                s(&m.join("var/log.txt")),
                s(&m.join("var/log-copy.txt")),
            ],
        );
        sh("sync", &[]);
        assert!(compressed(&m.join("var/log.txt")));
        let t = tree_of(m);
        (
            t.clone(),
            subvolumes(m),
            ro_flags(m, &subvol_paths),
            link_groups(m, &t),
        )
    };
    assert!(want_subvols.len() == 3, "{want_subvols:?}");
    let disk = one_partition_disk(d, &fs, "8300");
    std::fs::remove_file(&fs).unwrap();
    restore_and_clone(d, &disk, "btrfs filesystem resize", &|part, how| {
        let (code, out) = fixture::run_status("btrfs", &["check", "--readonly", s(part)]).unwrap();
        assert_eq!(code, 0, "{how}: btrfs check: {out}");
        let mnt = KernelMount::new(part, &d.join(format!("mnt-{how}")), "ro").unwrap();
        let m = mnt.path();
        let got = tree_of(m);
        assert_same_tree(&want, &got, how);
        assert_eq!(link_groups(m, &got), want_links, "{how}: hard links");
        assert_eq!(subvolumes(m), want_subvols, "{how}: subvolumes");
        assert_eq!(
            ro_flags(m, &subvol_paths),
            want_ro,
            "{how}: read-only flags"
        );
        assert!(
            compressed(&m.join("var/log.txt")),
            "{how}: compression kept"
        );
        let usage = sh("btrfs", &["filesystem", "show", s(m)]);
        let len = fixture::file_len(part).unwrap();
        assert!(
            usage.contains(&format!("size {}", human_mib(len))),
            "{how}: the device size is the partition's: {usage}"
        );
        mnt.unmount().unwrap();
    });
}

/// `btrfs filesystem show`'s size text for `len` bytes (whole MiB).
fn human_mib(len: u64) -> String {
    format!("{}.00MiB", len / MIB)
}

/// The XFS format features `xfs_info` reports (not the sizes that follow from the device).
fn xfs_features(file: &Path) -> Vec<String> {
    let out = sh("xfs_info", &[s(file)]);
    let keep = [
        "isize",
        "sectsz",
        "crc",
        "finobt",
        "sparse",
        "rmapbt",
        "reflink",
        "bigtime",
        "inobtcount",
        "nrext64",
        "bsize",
        "ftype",
        "ascii-ci",
        "projid32bit",
        "lazy-count",
    ];
    let mut v: Vec<String> = out
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| t.split_once('=').is_some_and(|(k, _)| keep.contains(&k)))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn xfs_restored_and_cloned_into_60_percent_is_a_new_xfs_with_the_same_uuid_features_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fs = d.join("xfs.img");
    fixture::mkfs(Mkfs::Xfs, &fs, 520 * MIB, "lb-xfs", &["-m", "rmapbt=1"]).unwrap();
    let (want, want_links) = {
        let mnt = KernelMount::new(&fs, &d.join("mnt"), "").unwrap();
        let m = mnt.path();
        populate(m);
        sh("chattr", &["+i", s(&m.join("docs/deeper/blob 3.bin"))]);
        sh("chown", &["4321:4321", s(m)]);
        sh("setfattr", &["-n", "security.root", "-v", "0x0102", s(m)]);
        sh("setfattr", &["-n", "user.root", "-v", "top", s(m)]);
        sh("sync", &[]);
        let t = tree_of(m);
        let l = link_groups(m, &t);
        mnt.unmount().unwrap();
        (t, l)
    };
    let features = xfs_features(&fs);
    assert!(features.contains(&"rmapbt=1".to_string()), "{features:?}");
    let disk = one_partition_disk(d, &fs, "8300");
    std::fs::remove_file(&fs).unwrap();
    restore_and_clone(d, &disk, "file-level copy into a new XFS", &|part, how| {
        let (code, out) = fixture::run_status("xfs_repair", &["-n", "-f", s(part)]).unwrap();
        assert_eq!(code, 0, "{how}: xfs_repair -n: {out}");
        assert_eq!(xfs_features(part), features, "{how}: format features");
        let mnt = KernelMount::new(part, &d.join(format!("mnt-{how}")), "ro").unwrap();
        let m = mnt.path();
        let got = tree_of(m);
        assert_same_tree(&want, &got, how);
        assert_eq!(link_groups(m, &got), want_links, "{how}: hard links");
        assert!(
            sh("lsattr", &["-d", s(&m.join("docs/deeper/blob 3.bin"))])
                .split_whitespace()
                .next()
                .unwrap()
                .contains('i'),
            "{how}: the immutable flag is kept"
        );
        mnt.unmount().unwrap();
    });
}

/// The files (not folders: a rebuilt FAT's folders get new times) of the FAT `part` as
/// `lifeboat extract` gives them back: bytes, mode and modification time.
fn fat_files(part: &Path, out: &Path) -> Tree {
    let _ = std::fs::remove_dir_all(out);
    let (code, o, e) = lifeboat(&["extract", s(part), "/", "--to", s(out)]);
    assert_eq!(code, 0, "{o}{e}");
    let t: Tree = tree_of(out)
        .into_iter()
        .filter(|(_, v)| v.contains("sha256="))
        .collect();
    std::fs::remove_dir_all(out).unwrap();
    t
}

#[test]
fn fat12_restored_and_cloned_into_60_percent_is_rebuilt_with_the_same_serial_label_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = d.join("files");
    std::fs::create_dir_all(files.join("Some Folder/deeper")).unwrap();
    for i in 0..10u64 {
        let name = match i % 3 {
            0 => format!("Some Folder/a long file name {i}.bin"),
            1 => format!("Some Folder/deeper/D{i}.DAT"),
            _ => format!("top{i}.txt"),
        };
        std::fs::write(
            files.join(&name),
            fixture::noise(i + 90, 300 * 1024 + i as usize),
        )
        .unwrap();
        sh(
            "touch",
            &[
                "-d",
                &format!("@{}", 1_500_000_000 + i * 86_402),
                s(&files.join(&name)),
            ],
        );
    }
    let fs = d.join("fat12.img");
    fixture::mkfs(Mkfs::Fat12, &fs, 16 * MIB, "FLOPPY12", &[]).unwrap();
    let tops: Vec<String> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| s(&e.unwrap().path()).to_string())
        .collect();
    let mut args = vec!["-s", "-m", "-i", s(&fs)];
    args.extend(tops.iter().map(String::as_str));
    args.push("::/");
    sh("mcopy", &args);
    assert!(sh("file", &["-s", s(&fs)]).contains("FAT (12 bit)"));
    let want = fat_files(&fs, &d.join("want"));
    assert_eq!(want.len(), 10, "{want:?}");
    let disk = one_partition_disk(d, &fs, "0700");
    restore_and_clone(d, &disk, "file-level copy into a new FAT", &|part, how| {
        let (code, out) = fixture::run_status("fsck.fat", &["-n", s(part)]).unwrap();
        assert_eq!(code, 0, "{how}: fsck.fat -n: {out}");
        assert!(
            sh("file", &["-s", s(part)]).contains("FAT (12 bit)"),
            "{how}: still a FAT12"
        );
        assert_same_tree(&want, &fat_files(part, &d.join(format!("got-{how}"))), how);
    });
}

#[test]
fn a_disk_too_small_for_an_xfs_copy_is_refused_saying_by_how_much_and_naming_the_method() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fs = d.join("xfs.img");
    fixture::mkfs(Mkfs::Xfs, &fs, 400 * MIB, "small-xfs", &[]).unwrap();
    let disk = one_partition_disk(d, &fs, "8300");
    let dst = d.join("dst.img");
    fixture::sparse_file(&dst, 200 * MIB).unwrap();
    let before = fixture::sha256(&dst).unwrap();
    let (code, out, err) = lifeboat(&["clone", s(&disk), s(&dst), "--yes"]);
    assert_ne!(code, 0, "{out}{err}");
    let short = err
        .split(" bytes short")
        .next()
        .and_then(|t| t.rsplit('(').next())
        .and_then(|n| n.trim().parse::<u64>().ok());
    // mkfs.xfs makes nothing below 300 MiB: at least 100 MiB are missing.
    assert!(
        err.contains("too small")
            && short.is_some_and(|n| n >= 100 * MIB)
            && err.contains("partition 1 xfs no smaller than")
            && err.contains("file-level copy into a new XFS"),
        "{err}"
    );
    assert_eq!(
        fixture::sha256(&dst).unwrap(),
        before,
        "nothing was written"
    );
}

/// Every exFAT entry set below the root of the file system in `img`, by path: the set's
/// position and its attribute and timestamp bytes (4..25 of the file entry: attributes,
/// created/modified/accessed, their 10 ms parts and UTC offsets).
fn exfat_entries(img: &Path) -> BTreeMap<String, (u64, Vec<u8>)> {
    let raw = std::fs::read(img).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().unwrap());
    let sector = 1usize << raw[108];
    let cluster = sector << raw[109];
    let (fat, heap) = (u32_at(80) as usize * sector, u32_at(88) as usize * sector);
    let offset = |c: u32| heap + (c as usize - 2) * cluster;
    let chain = |first: u32, len: Option<u64>, contiguous: bool| {
        let mut v = Vec::new();
        let mut c = first;
        let n = len
            .map(|l| l.div_ceil(cluster as u64) as usize)
            .unwrap_or(usize::MAX);
        while v.len() < n && (2..0xFFFF_FFF7).contains(&c) {
            v.push(offset(c));
            c = if contiguous {
                c + 1
            } else {
                u32_at(fat + c as usize * 4)
            };
        }
        v
    };
    let mut out = BTreeMap::new();
    let mut todo = vec![(chain(u32_at(96), None, false), String::new())];
    while let Some((runs, path)) = todo.pop() {
        let mut entries = Vec::new();
        'all: for at in runs {
            for e in (at..at + cluster).step_by(32) {
                if raw[e] == 0 {
                    break 'all;
                }
                entries.push(e);
            }
        }
        for (i, &e) in entries.iter().enumerate() {
            if raw[e] != 0x85 {
                continue;
            }
            let count = raw[e + 1] as usize;
            let stream = entries[i + 1];
            let name_len = raw[stream + 3] as usize;
            let units: Vec<u16> = entries[i + 2..=i + count]
                .iter()
                .flat_map(|&n| (0..15).map(move |k| (n, k)))
                .map(|(n, k)| u16::from_le_bytes([raw[n + 2 + 2 * k], raw[n + 3 + 2 * k]]))
                .take(name_len)
                .collect();
            let name = format!("{path}/{}", String::from_utf16_lossy(&units));
            if raw[e + 4] & 0x10 != 0 {
                let first = u32_at(stream + 20);
                let len = u64::from_le_bytes(raw[stream + 24..stream + 32].try_into().unwrap());
                todo.push((
                    chain(first, Some(len), raw[stream + 1] & 2 != 0),
                    name.clone(),
                ));
            }
            out.insert(name, (e as u64, raw[e + 4..e + 25].to_vec()));
        }
    }
    out
}

/// Sets attribute bits on the entry set at `at` of the exFAT in `img` (entry sets of a
/// fixture lie in one cluster) and writes its checksum anew.
fn exfat_set_attributes(img: &Path, at: u64, attrs: u8) {
    let mut raw = std::fs::read(img).unwrap();
    let at = at as usize;
    raw[at + 4] |= attrs;
    let len = 32 * (raw[at + 1] as usize + 1);
    let mut sum: u16 = 0;
    for (i, &b) in raw[at..at + len].iter().enumerate() {
        if i != 2 && i != 3 {
            sum = sum.rotate_right(1).wrapping_add(u16::from(b));
        }
    }
    raw[at + 2..at + 4].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(img, raw).unwrap();
}

#[test]
fn exfat_restored_and_cloned_into_60_percent_keeps_serial_label_attributes_times_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fs = d.join("exfat.img");
    fixture::mkfs(Mkfs::Exfat, &fs, 96 * MIB, "Card 64", &["-c", "16K"]).unwrap();
    let mnt = d.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // Filled through exfat-fuse on a loop device (it wants a block device).
    let dev = fixture::run("losetup", &["-f", "--show", s(&fs)]).unwrap();
    let dev = dev.trim();
    fixture::run("mount.exfat-fuse", &[dev, s(&mnt)]).unwrap();
    let filled = (|| -> Result<(), String> {
        let deep = mnt.join("DCIM/100 Camera/nested folder");
        std::fs::create_dir_all(&deep).map_err(|e| e.to_string())?;
        for i in 0..16u64 {
            let name = match i % 4 {
                0 => deep.join(format!("clip {i}.mp4")),
                1 => mnt.join(format!("DCIM/100 Camera/IMG_{i:04}.JPG")),
                2 => mnt.join(format!("Ünïcode ✓ {i}.txt")),
                _ => mnt.join(format!("top-{i}.bin")),
            };
            std::fs::write(&name, fixture::noise(i + 300, 2 << 20 | i as usize))
                .map_err(|e| e.to_string())?;
            let when = format!("@{}.{:02}", 1_600_000_000 + i * 7_777, i * 3);
            fixture::run("touch", &["-d", &when, s(&name)]).map_err(|e| e.to_string())?;
        }
        std::fs::write(mnt.join("empty"), b"").map_err(|e| e.to_string())?;
        Ok(())
    })();
    fixture::fuse_unmount(&mnt, dev).unwrap();
    fixture::run("losetup", &["-d", dev]).unwrap();
    filled.unwrap();
    // Attributes no driver sets: read-only + hidden, system, archive.
    let before = exfat_entries(&fs);
    exfat_set_attributes(&fs, before["/top-3.bin"].0, 0x01 | 0x02);
    exfat_set_attributes(&fs, before["/DCIM/100 Camera/IMG_0001.JPG"].0, 0x04);
    exfat_set_attributes(&fs, before["/DCIM"].0, 0x02);
    let (code, out) = fixture::run_status("fsck.exfat", &["-n", s(&fs)]).unwrap();
    assert_eq!(code, 0, "the fixture is clean: {out}");
    let want_fields: BTreeMap<String, Vec<u8>> = exfat_entries(&fs)
        .into_iter()
        .map(|(k, (_, v))| (k, v))
        .collect();
    assert_eq!(want_fields.len(), 20, "{:?}", want_fields.keys());
    assert_eq!(want_fields["/top-3.bin"][0] & 0x03, 0x03);
    let want = fat_files(&fs, &d.join("want"));
    let disk = one_partition_disk(d, &fs, "0700");
    std::fs::remove_file(&fs).unwrap();
    restore_and_clone(
        d,
        &disk,
        "file-level copy into a new exFAT",
        &|part, how| {
            let (code, out) = fixture::run_status("fsck.exfat", &["-n", s(part)]).unwrap();
            assert_eq!(code, 0, "{how}: fsck.exfat -n: {out}");
            let got: BTreeMap<String, Vec<u8>> = exfat_entries(part)
                .into_iter()
                .map(|(k, (_, v))| (k, v))
                .collect();
            assert_eq!(
                got, want_fields,
                "{how}: attributes and timestamps of every entry"
            );
            assert_eq!(
                blkid(part, "UUID").len(),
                9,
                "{how}: a serial like 1234-ABCD"
            );
            let cluster = |p: &Path| std::fs::read(p).unwrap()[109];
            assert_eq!(cluster(part), 5, "{how}: 16 KiB clusters kept");
            assert_same_tree(&want, &fat_files(part, &d.join(format!("got-{how}"))), how);
        },
    );
}
