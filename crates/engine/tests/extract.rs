//! `engine::extract` on file systems made by the real tools: what both front ends rely on
//! (content, symlinks, times, sparse files, never overwriting unless asked, per-object failures,
//! cancel, and picking the file system of a disk image).

#![allow(clippy::unwrap_used)]

use engine::extract::{extract, ExtractError, ExtractRequest, Source};
use engine::{Cancel, Progress};
use qemu_tests::fixture::{self, Mkfs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const MIB: u64 = 1024 * 1024;

/// A 64 MiB ext4 image made by `mkfs.ext4 -d` from a tree with a folder, a symlink, a file with
/// a known mtime and a 32 MiB sparse file with data at both ends.
fn ext4_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("docs/deeper")).unwrap();
    std::fs::write(tree.join("docs/a.txt"), b"alpha\n").unwrap();
    std::fs::write(tree.join("docs/deeper/b.bin"), fixture::noise(7, 100_000)).unwrap();
    std::os::unix::fs::symlink("docs/a.txt", tree.join("link")).unwrap();
    let sparse = std::fs::File::create(tree.join("sparse.img")).unwrap();
    sparse.set_len(32 * MIB).unwrap();
    drop(sparse);
    fixture::poke(&tree.join("sparse.img"), 0, b"head").unwrap();
    fixture::poke(&tree.join("sparse.img"), 32 * MIB - 4, b"tail").unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(tree.join("docs/a.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let img = dir.join("fs.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &img,
        64 * MIB,
        "DATA",
        &["-d", tree.to_str().unwrap()],
    )
    .unwrap();
    img
}

fn request(img: &Path, paths: &[&str], dest: &Path, overwrite: bool) -> ExtractRequest {
    ExtractRequest {
        source: Source::find(img, None).unwrap(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        dest: dest.to_path_buf(),
        overwrite,
    }
}

#[test]
fn extract_keeps_content_symlinks_times_and_holes() {
    let dir = tempfile::tempdir().unwrap();
    let img = ext4_image(dir.path());
    let out = dir.path().join("out");
    let req = request(&img, &["/docs", "link", "/sparse.img"], &out, false);
    assert!(matches!(req.source, Source::Live { offset: 0, .. }));
    let events = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let seen = Arc::clone(&events);
    let sink = move |p: &Progress| seen.lock().unwrap().push(p.clone());
    let report = extract(&req, Some(&sink), &Cancel::new()).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        (report.files, report.dirs, report.symlinks),
        (3, 2, 1),
        "{report:?}"
    );
    assert_eq!(report.bytes, 6 + 100_000 + 32 * MIB);
    assert_eq!(report.image_bytes_read, None);
    let last = events.lock().unwrap().last().cloned().unwrap();
    assert!(last.finished);
    assert_eq!(last.done, last.total);

    assert_eq!(std::fs::read(out.join("docs/a.txt")).unwrap(), b"alpha\n");
    assert_eq!(
        std::fs::read(out.join("docs/deeper/b.bin")).unwrap(),
        fixture::noise(7, 100_000)
    );
    assert_eq!(
        std::fs::metadata(out.join("docs/a.txt")).unwrap().mtime(),
        1_000_000_000
    );
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new("docs/a.txt")
    );
    let sparse = out.join("sparse.img");
    let md = std::fs::metadata(&sparse).unwrap();
    assert_eq!(md.len(), 32 * MIB);
    assert!(
        md.blocks() * 512 < MIB,
        "{} bytes allocated: the holes were written",
        md.blocks() * 512
    );
    let data = std::fs::read(&sparse).unwrap();
    assert_eq!(&data[..4], b"head");
    assert_eq!(&data[data.len() - 4..], b"tail");
    assert!(data[4..data.len() - 4].iter().all(|&b| b == 0));
}

#[test]
fn existing_objects_are_kept_unless_the_request_says_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let img = ext4_image(dir.path());
    let out = dir.path().join("out");
    let req = request(&img, &["/docs/a.txt", "/link"], &out, false);
    assert!(req.existing().is_empty());
    let first = extract(&req, None, &Cancel::new()).unwrap();
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert_eq!(req.existing(), [out.join("a.txt"), out.join("link")]);
    std::fs::write(out.join("a.txt"), b"mine").unwrap();

    let again = extract(&req, None, &Cancel::new()).unwrap();
    let failed: Vec<&str> = again.failed.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(failed, ["/docs/a.txt", "/link"]);
    assert!(
        again
            .failed
            .iter()
            .all(|(_, e)| e.ends_with("exists: kept")),
        "{:?}",
        again.failed
    );
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"mine");

    let over = ExtractRequest {
        overwrite: true,
        ..req
    };
    let report = extract(&over, None, &Cancel::new()).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!((report.files, report.symlinks), (1, 1));
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"alpha\n");
}

#[test]
fn a_missing_path_fails_alone_and_a_cancelled_extract_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = ext4_image(dir.path());
    let out = dir.path().join("out");
    let req = request(&img, &["/missing.txt", "/docs/a.txt"], &out, false);
    let report = extract(&req, None, &Cancel::new()).unwrap();
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(report.failed[0].0, "/missing.txt");
    assert_eq!(report.files, 1);
    assert!(!report.cancelled);

    let cancel = Cancel::new();
    cancel.cancel();
    let out2 = dir.path().join("out2");
    let req = request(&img, &["/"], &out2, false);
    let report = extract(&req, None, &cancel).unwrap();
    assert!(report.cancelled);
    assert_eq!((report.files, report.dirs, report.bytes), (0, 0, 0));
    assert_eq!(std::fs::read_dir(&out2).unwrap().count(), 0);
}

#[test]
fn the_root_fills_the_destination_folder() {
    let dir = tempfile::tempdir().unwrap();
    let img = ext4_image(dir.path());
    let out = dir.path().join("out");
    let report = extract(&request(&img, &["/"], &out, false), None, &Cancel::new()).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(out.join("docs/deeper/b.bin").is_file());
    assert!(out.join("sparse.img").is_file());
}

#[test]
fn a_disk_image_is_searched_for_its_file_systems() {
    let dir = tempfile::tempdir().unwrap();
    let img = ext4_image(dir.path());
    let disk = dir.path().join("disk.img");
    fixture::sparse_file(&disk, 160 * MIB).unwrap();
    fixture::sfdisk(
        &disk,
        "label: gpt\nstart=2048, size=131072\nstart=133120, size=32768\n",
        512,
    )
    .unwrap();
    fixture::write_into(&disk, MIB, &img).unwrap();
    // One partition holds a file system: it is the one.
    let found = Source::find(&disk, None).unwrap();
    assert_eq!(
        found,
        Source::Live {
            node: disk.clone(),
            offset: MIB,
            len: 64 * MIB,
            name: format!("{} partition 1", disk.display()),
        }
    );
    let out = dir.path().join("out");
    let req = ExtractRequest {
        source: found,
        paths: vec!["/docs/a.txt".into()],
        dest: out.clone(),
        overwrite: false,
    };
    let report = extract(&req, None, &Cancel::new()).unwrap();
    assert_eq!(report.files, 1, "{:?}", report.failed);
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"alpha\n");

    // Two: the caller must name one; a partition that is not there is refused.
    let vfat = dir.path().join("vfat.img");
    fixture::mkfs(Mkfs::Fat16, &vfat, 16 * MIB, "TWO", &[]).unwrap();
    fixture::write_into(&disk, 133_120 * 512, &vfat).unwrap();
    match Source::find(&disk, None) {
        Err(ExtractError::SeveralFileSystems { choices, .. }) => assert_eq!(choices, "1, 2"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Source::find(&disk, Some(2)),
        Ok(Source::Live { offset, .. }) if offset == 133_120 * 512
    ));
    match Source::find(&disk, Some(9)) {
        Err(ExtractError::NoPartition {
            number: 9, have, ..
        }) => assert_eq!(have, "1, 2"),
        other => panic!("{other:?}"),
    }
}
