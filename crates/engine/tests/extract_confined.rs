//! `engine::extract` against hostile file systems and destinations: every write lands below the
//! destination folder, a symlink (in the destination already, or extracted a moment ago) is never
//! followed, `overwrite` replaces entries instead of writing through them, repeated names are all
//! kept under numbered names, and a folder tree too deep to be real is cut off, not followed.
//! File systems are made by the real tools (mkfs.ext4 -d, mkfs.vfat + mcopy, mkfs.exfat +
//! exfat-fuse) and patched where a tool would refuse to make them.

#![allow(clippy::unwrap_used)]

use engine::extract::{extract, ExtractReport, ExtractRequest, Source};
use engine::Cancel;
use qemu_tests::fixture::{self, Mkfs};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1024 * 1024;

/// An ext4 image made by `mkfs.ext4 -d` from `tree`.
fn ext4_of(tree: &Path, img: &Path) {
    fixture::mkfs(
        Mkfs::Ext4,
        img,
        32 * MIB,
        "HOSTILE",
        &["-d", tree.to_str().unwrap()],
    )
    .unwrap();
}

fn run_extract(img: &Path, paths: &[&str], dest: &Path, overwrite: bool) -> ExtractReport {
    let req = ExtractRequest {
        source: Source::find(img, None).unwrap(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        dest: dest.to_path_buf(),
        overwrite,
    };
    extract(&req, None, &Cancel::new()).unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_folder_named_like_a_symlink_extracted_before_it_is_not_written_through_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a")).unwrap();
    std::fs::create_dir_all(tree.join("b/x")).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("a/x")).unwrap();
    std::fs::write(tree.join("b/x/evil"), b"payload").unwrap();
    let img = dir.path().join("fs.img");
    ext4_of(&tree, &img);

    let out = dir.path().join("out");
    let report = run_extract(&img, &["/a/x", "/b/x"], &out, false);
    assert!(
        names_in(&outside).is_empty(),
        "written outside the destination: {:?}",
        names_in(&outside)
    );
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(std::fs::read_link(out.join("x")).unwrap(), outside);
    assert_eq!(std::fs::read(out.join("x (2)/evil")).unwrap(), b"payload");
    assert!(std::fs::symlink_metadata(out.join("x (2)"))
        .unwrap()
        .is_dir());
    assert_eq!(report.renamed, [("/b/x".to_string(), out.join("x (2)"))]);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("/b/x: an earlier object") && n.contains("x (2)")),
        "{:?}",
        report.notes
    );
    // The same with --overwrite: the link extracted first is still not a way out.
    let out2 = dir.path().join("out2");
    let again = run_extract(&img, &["/a/x", "/b/x"], &out2, true);
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    assert!(names_in(&outside).is_empty());
    assert_eq!(std::fs::read(out2.join("x (2)/evil")).unwrap(), b"payload");
}

#[test]
fn links_already_in_the_destination_are_replaced_with_overwrite_and_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("docs")).unwrap();
    std::fs::write(tree.join("f"), b"from the image").unwrap();
    std::fs::write(tree.join("h"), b"new content").unwrap();
    std::fs::write(tree.join("docs/inner.txt"), b"inner").unwrap();
    std::os::unix::fs::symlink("elsewhere", tree.join("l")).unwrap();
    let img = dir.path().join("fs.img");
    ext4_of(&tree, &img);

    let victims = dir.path().join("victims");
    std::fs::create_dir(&victims).unwrap();
    let somefile = victims.join("somefile");
    std::fs::write(&somefile, b"precious").unwrap();
    let other_name = victims.join("other-name");
    std::fs::write(&other_name, b"shared").unwrap();
    let outside_dir = victims.join("dir");
    std::fs::create_dir(&outside_dir).unwrap();
    let link_target = victims.join("link-target");
    std::fs::write(&link_target, b"target").unwrap();

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&somefile, out.join("f")).unwrap();
    std::fs::hard_link(&other_name, out.join("h")).unwrap();
    std::os::unix::fs::symlink(&outside_dir, out.join("docs")).unwrap();
    std::os::unix::fs::symlink(&link_target, out.join("l")).unwrap();
    let paths = ["/f", "/h", "/docs", "/l"];

    // Without --overwrite everything that is there is kept, and nothing is followed.
    let kept = run_extract(&img, &paths, &out, false);
    let failed: Vec<&str> = kept.failed.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(failed, paths, "{:?}", kept.failed);
    assert!(
        kept.failed[2]
            .1
            .ends_with("exists and is not a folder: kept"),
        "{:?}",
        kept.failed
    );
    assert_eq!(std::fs::read(&somefile).unwrap(), b"precious");
    assert!(names_in(&outside_dir).is_empty());

    // With --overwrite each entry is replaced; what they pointed at or shared is untouched.
    let over = run_extract(&img, &paths, &out, true);
    assert!(over.failed.is_empty(), "{:?}", over.failed);
    assert_eq!((over.files, over.dirs, over.symlinks), (3, 1, 1));
    assert_eq!(std::fs::read(&somefile).unwrap(), b"precious");
    assert_eq!(std::fs::read(&other_name).unwrap(), b"shared");
    assert_eq!(std::fs::read(&link_target).unwrap(), b"target");
    assert!(names_in(&outside_dir).is_empty());
    let f = std::fs::symlink_metadata(out.join("f")).unwrap();
    assert!(f.file_type().is_file());
    assert_eq!(std::fs::read(out.join("f")).unwrap(), b"from the image");
    assert_eq!(std::fs::metadata(out.join("h")).unwrap().nlink(), 1);
    assert_eq!(std::fs::read(out.join("h")).unwrap(), b"new content");
    assert!(std::fs::symlink_metadata(out.join("docs"))
        .unwrap()
        .is_dir());
    assert_eq!(std::fs::read(out.join("docs/inner.txt")).unwrap(), b"inner");
    assert_eq!(
        std::fs::read_link(out.join("l")).unwrap(),
        Path::new("elsewhere")
    );
    // No temporary file is left behind.
    assert_eq!(names_in(&out), ["docs", "f", "h", "l"]);
}

#[test]
fn a_link_below_the_destination_is_not_a_way_out_for_the_files_of_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("docs/sub")).unwrap();
    std::fs::write(tree.join("docs/sub/a.txt"), b"a").unwrap();
    let img = dir.path().join("fs.img");
    ext4_of(&tree, &img);
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("docs")).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("docs/sub")).unwrap();
    // The existing folder `docs` is filled; its symlink `sub` is kept and not entered.
    let kept = run_extract(&img, &["/docs"], &out, false);
    assert_eq!(kept.failed.len(), 1, "{:?}", kept.failed);
    assert_eq!(kept.failed[0].0, "/docs/sub");
    assert!(names_in(&outside).is_empty());
    let over = run_extract(&img, &["/docs"], &out, true);
    assert!(over.failed.is_empty(), "{:?}", over.failed);
    assert!(names_in(&outside).is_empty());
    assert_eq!(std::fs::read(out.join("docs/sub/a.txt")).unwrap(), b"a");
}

/// This process's umask, from /proc.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

/// Replaces every occurrence of `from` in the file at `path` by `to` (same length); returns how
/// many there were.
fn patch_all(path: &Path, from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let mut count = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(from.len()).position(|w| w == from) {
        let start = at + pos;
        bytes[start..start + to.len()].copy_from_slice(to);
        count += 1;
        at = start + to.len();
    }
    std::fs::write(path, bytes).unwrap();
    count
}

#[test]
fn a_name_repeated_in_a_fat_folder_is_refused_for_the_second_object_never_merged() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fat.img");
    fixture::mkfs(Mkfs::Fat16, &img, 32 * MIB, "TWINS", &[]).unwrap();
    let tree = dir.path().join("tree");
    for d in ["D1", "D2"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::write(tree.join("A.TXT"), b"first A").unwrap();
    std::fs::write(tree.join("B.TXT"), b"second, renamed to A").unwrap();
    std::fs::write(tree.join("A (2).TXT"), b"a real A (2)").unwrap();
    std::fs::write(tree.join("D1/IN1.TXT"), b"in D1").unwrap();
    std::fs::write(tree.join("D2/IN2.TXT"), b"in D2").unwrap();
    // Upper-case 8.3 names get no long-name entries, so the short entries are the only names.
    for item in ["A.TXT", "B.TXT", "D1", "D2"] {
        fixture::run(
            "mcopy",
            &[
                "-s",
                "-i",
                img.to_str().unwrap(),
                tree.join(item).to_str().unwrap(),
                "::",
            ],
        )
        .unwrap();
    }
    fixture::run(
        "mcopy",
        &[
            "-i",
            img.to_str().unwrap(),
            tree.join("A (2).TXT").to_str().unwrap(),
            "::/A (2).TXT",
        ],
    )
    .unwrap();
    assert_eq!(patch_all(&img, b"B       TXT", b"A       TXT"), 1);
    assert_eq!(patch_all(&img, b"D2         ", b"D1         "), 1);

    let out = dir.path().join("out");
    let report = run_extract(&img, &["/"], &out, false);
    // The reader finds objects by path, so the second object of a name cannot be read: it is
    // refused by name, never merged into the first or given the first one's content.
    let failed: Vec<&str> = report.failed.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(failed, ["/A.TXT", "/D1"], "{:?}", report.failed);
    assert!(
        report
            .failed
            .iter()
            .all(|(_, e)| e.contains("another object of the same name")),
        "{:?}",
        report.failed
    );
    assert_eq!(names_in(&out), ["A (2).TXT", "A.TXT", "D1"]);
    let read = |p: &str| std::fs::read(out.join(p)).unwrap();
    assert_eq!(read("A (2).TXT"), b"a real A (2)");
    assert_eq!(read("A.TXT"), b"first A");
    assert_eq!(names_in(&out.join("D1")), ["IN1.TXT"]);
    assert!(report.renamed.is_empty(), "{:?}", report.renamed);
    // FAT keeps no modes: files and folders get the usual ones less the umask, not private ones.
    let umask = umask();
    let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().mode() & 0o777;
    assert_eq!(mode("A.TXT"), 0o666 & !umask);
    assert_eq!(mode("D1"), 0o777 & !umask);
}

/// A loop device with exFAT mounted through exfat-fuse (case-insensitive, like a USB stick);
/// unmounted and detached on drop.
struct ExfatMount {
    dev: String,
    mnt: PathBuf,
}

impl ExfatMount {
    fn new(img: &Path, mnt: &Path) -> ExfatMount {
        std::fs::create_dir_all(mnt).unwrap();
        let dev = fixture::run("losetup", &["-f", "--show", img.to_str().unwrap()])
            .unwrap()
            .trim()
            .to_string();
        let mounted = Command::new("mount.exfat-fuse")
            .arg(&dev)
            .arg(mnt)
            .status()
            .map(|s| s.success());
        if mounted.as_ref().map_or(true, |ok| !ok) {
            let _ = fixture::run("losetup", &["-d", &dev]);
            panic!("mount.exfat-fuse {dev} failed ({mounted:?}): install exfat-fuse");
        }
        ExfatMount {
            dev,
            mnt: mnt.to_path_buf(),
        }
    }
}

impl Drop for ExfatMount {
    fn drop(&mut self) {
        let _ = fixture::fuse_unmount(&self.mnt, &self.dev);
        let _ = fixture::run("losetup", &["-d", &self.dev]);
    }
}

#[test]
fn names_a_case_blind_destination_folds_together_are_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("Photos")).unwrap();
    std::fs::create_dir_all(tree.join("photos")).unwrap();
    std::fs::write(tree.join("README.txt"), b"upper").unwrap();
    std::fs::write(tree.join("readme.txt"), b"lower").unwrap();
    std::fs::write(tree.join("Photos/1.jpg"), b"one").unwrap();
    std::fs::write(tree.join("photos/2.jpg"), b"two").unwrap();
    let img = dir.path().join("fs.img");
    ext4_of(&tree, &img);
    let stick = dir.path().join("stick.img");
    fixture::mkfs(Mkfs::Exfat, &stick, 16 * MIB, "STICK", &[]).unwrap();
    let mount = ExfatMount::new(&stick, &dir.path().join("mnt"));

    let report = run_extract(&img, &["/"], &mount.mnt, false);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.files, 4, "{report:?}");
    assert_eq!(report.renamed.len(), 2, "{:?}", report.renamed);
    let mut contents = Vec::new();
    for name in names_in(&mount.mnt) {
        let p = mount.mnt.join(&name);
        if p.is_dir() {
            contents.push(format!("{name}: {:?}", names_in(&p)));
        } else {
            contents.push(format!(
                "{name}: {}",
                String::from_utf8(std::fs::read(&p).unwrap()).unwrap()
            ));
        }
    }
    assert_eq!(
        contents,
        [
            "Photos: [\"1.jpg\"]",
            "README.txt: upper",
            "lost+found: []",
            "photos (2): [\"2.jpg\"]",
            "readme (2).txt: lower"
        ]
    );
}

#[test]
fn set_id_bits_owners_and_times_are_kept_on_the_objects_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    let tool = tree.join("bin/tool");
    std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(&tool, Some(1234), Some(2345)).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::set_permissions(tree.join("bin"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    std::fs::File::options()
        .write(true)
        .open(&tool)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let img = dir.path().join("fs.img");
    ext4_of(&tree, &img);

    let out = dir.path().join("out");
    let report = run_extract(&img, &["/bin"], &out, false);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    let md = std::fs::symlink_metadata(out.join("bin/tool")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o4755, "{:o}", md.mode());
    assert_eq!((md.uid(), md.gid()), (1234, 2345));
    assert_eq!(md.mtime(), 1_234_567_890);
    let bin = std::fs::symlink_metadata(out.join("bin")).unwrap();
    assert_eq!(bin.mode() & 0o7777, 0o750);
}

#[test]
fn folders_nested_past_the_depth_limit_are_listed_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let mut deep = tree.join("top");
    for _ in 0..300 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom.txt"), b"too deep").unwrap();
    std::fs::write(tree.join("top/shallow.txt"), b"fine").unwrap();
    let img = dir.path().join("fs.img");
    ext4_of(&tree, &img);

    let out = dir.path().join("out");
    let report = run_extract(&img, &["/top"], &out, false);
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    let (path, why) = &report.failed[0];
    assert!(why.contains("nested more than 256 levels"), "{why}");
    assert_eq!(path.matches("/d").count(), 256, "{path}");
    assert_eq!(report.dirs, 1 + 255, "{report:?}");
    assert_eq!(std::fs::read(out.join("top/shallow.txt")).unwrap(), b"fine");
}

#[test]
fn a_file_that_cannot_be_read_leaves_the_one_it_would_replace_intact() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("f"), fixture::noise(3, 100_000)).unwrap();
    let img = dir.path().join("fs.img");
    // Block maps instead of extents, so debugfs can point the first block past the end.
    fixture::mkfs(
        Mkfs::Ext4,
        &img,
        8 * MIB,
        "DAMAGED",
        &["-O", "^extent,^64bit", "-d", tree.to_str().unwrap()],
    )
    .unwrap();
    fixture::run(
        "debugfs",
        &["-w", "-R", "sif /f block[0] 7000000", img.to_str().unwrap()],
    )
    .unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("f"), b"the copy from last week").unwrap();

    let report = run_extract(&img, &["/f"], &out, true);
    assert_eq!(report.files, 0, "{report:?}");
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(report.failed[0].0, "/f");
    assert_eq!(
        std::fs::read(out.join("f")).unwrap(),
        b"the copy from last week"
    );
    assert_eq!(names_in(&out), ["f"], "a temporary file was left behind");
}

#[test]
fn a_folder_linked_into_itself_is_copied_once_not_round_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a")).unwrap();
    std::fs::write(tree.join("a/f.txt"), b"once").unwrap();
    let img = dir.path().join("fs.img");
    ext4_of(&tree, &img);
    // Two more names for /a inside /a: followed blindly, 2^256 folders.
    for link in ["/a/l1", "/a/l2"] {
        fixture::run(
            "debugfs",
            &[
                "-w",
                "-R",
                &format!("link /a {link}"),
                img.to_str().unwrap(),
            ],
        )
        .unwrap();
    }
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    let report = run_extract(&img, &["/a"], &out, false);
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
    // The reader skips folder entries that lead back to a folder on their own path (with a
    // warning in the log); the walk copies the folder once.
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!((report.files, report.dirs), (1, 1), "{report:?}");
    assert_eq!(names_in(&out.join("a")), ["f.txt"]);
}
