//! `FileDisk` over temporary files, and `FaultyDisk` over memory and files.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use disk::{
    is_media_error, BlockIo, DiskError, FaultyDisk, FileDisk, MemDisk, ObjectId, Window,
    WriteConsent,
};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file of `len` bytes where byte i holds `i % 251`.
fn patterned_file(dir: &Path, len: usize) -> PathBuf {
    let path = dir.join("disk.img");
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, data).unwrap();
    path
}

fn consent(path: &Path) -> WriteConsent {
    WriteConsent::confirmed_by_user(path, "test image")
}

#[test]
fn read_only_open_reads_exact_ranges_and_reports_size_and_512_byte_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 1 << 20);
    let disk = FileDisk::open_read(&path).unwrap();
    assert_eq!(disk.len(), 1 << 20);
    assert_eq!(
        (disk.logical_sector_size(), disk.physical_sector_size()),
        (512, 512)
    );
    assert!(!disk.is_block_device());
    assert!(!disk.is_writable());
    assert_eq!(disk.dev_num(), None);
    let mut buf = vec![0u8; 1000];
    disk.read_at(&mut buf, 70_000).unwrap();
    assert!(buf
        .iter()
        .enumerate()
        .all(|(i, b)| *b == ((70_000 + i) % 251) as u8));
    assert_eq!(disk.describe(), path.display().to_string());
}

#[test]
fn reads_and_writes_past_the_end_fail_with_unexpected_eof() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 4096);
    let disk = FileDisk::open_write(&path, &consent(&path)).unwrap();
    let mut buf = [0u8; 512];
    assert_eq!(
        disk.read_at(&mut buf, 3585).unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
    assert_eq!(
        disk.read_at(&mut buf, u64::MAX - 10).unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
    let err = disk.write_at(&buf, 4000).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    assert!(err.to_string().contains("disk.img"), "{err}");
    // Nothing was appended.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    disk.read_at(&mut buf, 3584).unwrap();
}

#[test]
fn write_open_keeps_existing_content_and_writes_durably() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 8192);
    let disk = FileDisk::open_write(&path, &consent(&path)).unwrap();
    assert!(disk.is_writable());
    disk.write_at(&[0xEE; 100], 1000).unwrap();
    disk.flush().unwrap();
    drop(disk);
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len(), 8192);
    assert_eq!(data[999], (999 % 251) as u8);
    assert!(data[1000..1100].iter().all(|b| *b == 0xEE));
    assert_eq!(data[1100], (1100 % 251) as u8);
}

#[test]
fn read_only_open_refuses_writes_and_discards() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 4096);
    let disk = FileDisk::open_read(&path).unwrap();
    assert_eq!(
        disk.write_at(&[1, 2, 3], 0).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        disk.discard(0, 4096).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(std::fs::read(&path).unwrap()[..3], [0, 1, 2]);
}

#[test]
fn consent_for_another_target_does_not_open_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 4096);
    let other = dir.path().join("other.img");
    std::fs::write(&other, [0u8; 512]).unwrap();
    let err = FileDisk::open_write(&path, &consent(&other)).unwrap_err();
    assert!(matches!(err, DiskError::ConsentMismatch { .. }), "{err}");
    assert!(err.to_string().starts_with("refusing to open "), "{err}");
    // A link to the same file is the same target.
    let link = dir.path().join("link.img");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let c = WriteConsent::from_yes_flag(&path, "image");
    assert_eq!(c.source(), disk::ConsentSource::YesFlag);
    assert_eq!(c.target(), path.as_path());
    assert!(FileDisk::open_write(&link, &c).is_ok());
}

#[test]
fn opening_missing_paths_directories_and_character_devices_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.img");
    let err = FileDisk::open_read(&missing).unwrap_err();
    assert!(matches!(&err, DiskError::Open { source, .. } if source.kind() == ErrorKind::NotFound));
    assert!(err.to_string().contains("nope.img"));
    assert!(matches!(
        FileDisk::open_read(dir.path()),
        Err(DiskError::NotADisk { .. })
    ));
    let err = FileDisk::open_read("/dev/null").unwrap_err();
    assert_eq!(
        err.to_string(),
        "/dev/null is neither a regular file nor a block device"
    );
}

#[test]
fn create_file_makes_a_sparse_zeroed_image_and_refuses_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.img");
    let disk = FileDisk::create_file(&path, 64 << 20, &consent(&path)).unwrap();
    assert_eq!(disk.len(), 64 << 20);
    let mut buf = [0xFFu8; 4096];
    disk.read_at(&mut buf, 32 << 20).unwrap();
    assert!(buf.iter().all(|b| *b == 0));
    assert!(std::fs::metadata(&path).unwrap().blocks() < 64);
    drop(disk);
    let err = FileDisk::create_file(&path, 1024, &consent(&path)).unwrap_err();
    assert!(matches!(err, DiskError::Exists { .. }), "{err}");
}

#[test]
fn image_files_of_4k_sector_disks_report_4k_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 1 << 20);
    let disk = FileDisk::open_read(&path)
        .unwrap()
        .with_sector_size(4096, 4096)
        .unwrap();
    assert_eq!(
        (disk.logical_sector_size(), disk.physical_sector_size()),
        (4096, 4096)
    );
    let w = Window::new(&disk, 4096, 8192).unwrap();
    assert_eq!(w.logical_sector_size(), 4096);
    let disk = FileDisk::open_read(&path)
        .unwrap()
        .with_sector_size(512, 4096)
        .unwrap();
    assert_eq!(
        (disk.logical_sector_size(), disk.physical_sector_size()),
        (512, 4096)
    );
    for (l, p) in [(1000, 1000), (4096, 512), (256, 256), (1 << 17, 1 << 17)] {
        let err = FileDisk::open_read(&path)
            .unwrap()
            .with_sector_size(l, p)
            .unwrap_err();
        assert!(
            matches!(err, DiskError::SectorSize { .. }),
            "{l}/{p}: {err}"
        );
    }
}

#[test]
fn discard_punches_a_hole_in_an_image_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 4 << 20);
    let disk = FileDisk::open_write(&path, &consent(&path)).unwrap();
    disk.flush().unwrap();
    let before = std::fs::metadata(&path).unwrap().blocks();
    assert!(
        disk.discard(1 << 20, 2 << 20).unwrap(),
        "the temp file system supports punching holes"
    );
    disk.flush().unwrap();
    let after = std::fs::metadata(&path).unwrap().blocks();
    // 2 MiB = 4096 blocks of 512 bytes.
    assert!(after + 4000 <= before, "st_blocks {before} -> {after}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4 << 20);
    let mut buf = vec![0xFFu8; 2 << 20];
    disk.read_at(&mut buf, 1 << 20).unwrap();
    assert!(buf.iter().all(|b| *b == 0));
    let mut edge = [0u8; 2];
    disk.read_at(&mut edge, (1 << 20) - 1).unwrap();
    assert_eq!(edge, [(((1 << 20) - 1) % 251) as u8, 0]);
    assert_eq!(
        disk.discard(4 << 20, 1).unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
}

#[test]
fn partition_table_reread_is_refused_for_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 4096);
    let err = FileDisk::open_read(&path)
        .unwrap()
        .reread_partitions()
        .unwrap_err();
    assert!(matches!(err, DiskError::NotBlockDevice { .. }));
    assert!(err
        .to_string()
        .ends_with("is not a block device: cannot re-read the partition table"));
}

#[test]
fn object_ids_tell_same_file_from_different_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 4096);
    let copy = dir.path().join("copy.img");
    std::fs::copy(&path, &copy).unwrap();
    let a = FileDisk::open_read(&path).unwrap();
    let b = FileDisk::open_read(&path).unwrap();
    let c = FileDisk::open_read(&copy).unwrap();
    assert_eq!(a.object_id(), b.object_id());
    assert_ne!(a.object_id(), c.object_id());
    assert!(matches!(a.object_id(), ObjectId::File { .. }));
}

#[test]
fn shared_and_boxed_disks_are_block_io_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 4096);
    let shared: Arc<dyn BlockIo> = Arc::new(FileDisk::open_read(&path).unwrap());
    let boxed: Box<dyn BlockIo> = Box::new(MemDisk::new(1024, 512));
    fn total(d: impl BlockIo) -> u64 {
        d.len()
    }
    assert_eq!(
        total(shared.clone()) + total(&*boxed) + total(boxed),
        4096 + 2048
    );
}

#[test]
fn faulty_disk_fails_only_reads_touching_bad_sectors() {
    let disk = FaultyDisk::new(MemDisk::from_vec(vec![7u8; 64 * 512], 512))
        .with_bad_sectors(10..12)
        .with_bad_sectors(40..41);
    let mut one = [0u8; 512];
    for sector in 0..64u64 {
        let result = disk.read_at(&mut one, sector * 512);
        let bad = (10..12).contains(&sector) || sector == 40;
        assert_eq!(result.is_err(), bad, "sector {sector}");
        if let Err(e) = result {
            assert_eq!(e.raw_os_error(), Some(nix::libc::EIO));
            assert!(is_media_error(&e));
        }
    }
    assert_eq!(disk.failed_reads(), 3);
    // A large read spanning a bad sector fails as a whole; the bytes just before do not.
    let mut big = vec![0u8; 8 * 512];
    assert!(disk.read_at(&mut big, 5 * 512).is_err());
    assert!(disk.read_at(&mut big[..5 * 512 - 1], 5 * 512).is_ok());
    assert!(disk.read_at(&mut big[..1], 12 * 512 - 1).is_err());
    assert!(disk.read_at(&mut big[..0], 10 * 512).is_ok());
    // Writes go through.
    disk.write_at(&[1; 512], 10 * 512).unwrap();
    assert_eq!(disk.inner().to_vec()[10 * 512], 1);
    assert_eq!(disk.bad_sectors(), [10..12, 40..41]);
}

#[test]
fn faulty_disk_counts_sectors_in_the_inner_logical_sector_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = patterned_file(dir.path(), 64 * 4096);
    let file = FileDisk::open_read(&path)
        .unwrap()
        .with_sector_size(4096, 4096)
        .unwrap();
    let disk = FaultyDisk::new(&file).with_bad_sectors(3..4);
    let mut buf = [0u8; 512];
    assert!(disk.read_at(&mut buf, 2 * 4096 + 3584).is_ok());
    assert!(disk.read_at(&mut buf, 3 * 4096 + 3584).is_err());
    assert!(disk.read_at(&mut buf, 4 * 4096).is_ok());
    assert_eq!(disk.describe(), path.display().to_string());
}
