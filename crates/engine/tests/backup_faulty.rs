//! A backup of a source with unreadable sectors: the image records exactly those sectors, reads
//! them as zeros, and everything else restores bit-exact. `--strict` stops and leaves no image.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use disk::{BlockIo, FaultyDisk, MemDisk};
use engine::backup::{execute_backup, plan_backup, BackupOptions, SourceIdentity};
use engine::rescue::ReadPolicy;
use engine::restore::{execute_restore, plan_restore_partition, RestoreOptions};
use engine::{Cancel, JobError};
use qemu_tests::fixture::{self, Mkfs};
use std::sync::Arc;

const MIB: u64 = 1024 * 1024;

fn ext4_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("t");
    fixture::file_tree(&tree, 80).unwrap();
    let fs = dir.path().join("fs.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &fs,
        24 * MIB,
        "bad",
        &["-d", tree.to_str().unwrap()],
    )
    .unwrap();
    std::fs::read(&fs).unwrap()
}

#[test]
fn backup_skips_unreadable_sectors_records_them_and_restores_the_rest_exactly() {
    let bytes = ext4_bytes();
    let inner = MemDisk::from_vec(bytes.clone(), 512);
    // Sectors inside the first block group's inode table (always used): 1 MiB in.
    let bad = (MIB / 512)..(MIB / 512 + 4);
    let src = FaultyDisk::new(&inner).with_bad_sectors(bad.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.lbi");
    let plan = plan_backup(&inner, SourceIdentity::default(), &path, None).unwrap();
    let report =
        execute_backup(&plan, &src, &BackupOptions::default(), None, &Cancel::new()).unwrap();
    assert_eq!(report.bad_sectors.ranges.len(), 1);
    assert_eq!(report.bad_sectors.ranges[0].offset, bad.start * 512);
    assert_eq!(report.bad_sectors.ranges[0].len, 4 * 512);
    let img = Arc::new(image::ImageReader::open(&path).unwrap());
    assert_eq!(
        img.manifest().bad_sectors,
        vec![image::BadRange {
            offset: bad.start * 512,
            len: 4 * 512
        }]
    );
    let target = MemDisk::new(bytes.len(), 512);
    let rplan = plan_restore_partition(&img, None, "target", target.len()).unwrap();
    execute_restore(
        &rplan,
        &img,
        &target,
        &RestoreOptions::default(),
        None,
        &Cancel::new(),
    )
    .unwrap();
    let out = target.to_vec();
    let (s, e) = ((bad.start * 512) as usize, (bad.end * 512) as usize);
    assert!(
        out[s..e].iter().all(|&b| b == 0),
        "unreadable sectors restore as zeros"
    );
    // Used blocks outside the hole are bit-exact: compare the whole first MiB and the MiB after.
    assert_eq!(out[..s], bytes[..s]);
    assert_eq!(out[e..e + MIB as usize], bytes[e..e + MIB as usize]);
}

#[test]
fn strict_backup_stops_and_leaves_no_image() {
    let bytes = ext4_bytes();
    let inner = MemDisk::from_vec(bytes, 512);
    let src = FaultyDisk::new(&inner).with_bad_sectors((MIB / 512)..(MIB / 512 + 1));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.lbi");
    let plan = plan_backup(&inner, SourceIdentity::default(), &path, None).unwrap();
    let opts = BackupOptions {
        read: ReadPolicy { strict: true },
        ..BackupOptions::default()
    };
    let err = execute_backup(&plan, &src, &opts, None, &Cancel::new()).unwrap_err();
    assert!(
        matches!(err, JobError::UnreadableSector { offset, .. } if offset == MIB),
        "{err}"
    );
    assert!(!path.exists(), "the partial image is removed");
}

#[test]
fn cancelled_backup_leaves_no_image_that_claims_to_be_complete() {
    let bytes = ext4_bytes();
    let inner = MemDisk::from_vec(bytes, 512);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.lbi");
    let plan = plan_backup(&inner, SourceIdentity::default(), &path, None).unwrap();
    let cancel = Cancel::new();
    cancel.cancel();
    let err = execute_backup(&plan, &inner, &BackupOptions::default(), None, &cancel).unwrap_err();
    assert!(matches!(err, JobError::Cancelled { .. }), "{err}");
    match image::ImageReader::open(&path) {
        Ok(_) => panic!("a cancelled backup left a readable image"),
        Err(e) => assert!(e.is_incomplete() || !path.exists(), "{e}"),
    }
}

/// An image of `ext4_bytes` and where a chunk record lies in its volume: (bytes, offset,
/// length).
fn image_and_chunk(dir: &std::path::Path) -> (Vec<u8>, u64, u64) {
    let inner = MemDisk::from_vec(ext4_bytes(), 512);
    let path = dir.join("i.lbi");
    let plan = plan_backup(&inner, SourceIdentity::default(), &path, None).unwrap();
    // Small chunks: many records, so one lies well inside the volume.
    let opts = BackupOptions {
        chunk_size: 64 * 1024,
        ..BackupOptions::default()
    };
    execute_backup(&plan, &inner, &opts, None, &Cancel::new()).unwrap();
    let img = image::ImageReader::open(&path).unwrap();
    // The middle record of the volume: the sectors around it hold other records, not the
    // metadata read when the image is opened.
    let mut chunks = img.index().to_vec();
    chunks.sort_by_key(|e| e.volume_offset);
    let e = chunks[chunks.len() / 2];
    (
        std::fs::read(&path).unwrap(),
        e.volume_offset,
        e.record_len(),
    )
}

fn restore_error(volume: Box<dyn BlockIo>) -> JobError {
    let img = Arc::new(image::ImageReader::from_volumes(vec![("i.lbi".into(), volume)]).unwrap());
    let target = MemDisk::new(24 * MIB as usize, 512);
    let rplan = plan_restore_partition(&img, None, "target", target.len()).unwrap();
    execute_restore(
        &rplan,
        &img,
        &target,
        &RestoreOptions::default(),
        None,
        &Cancel::new(),
    )
    .unwrap_err()
}

#[test]
fn a_restore_whose_image_cannot_be_read_says_so_and_not_that_the_image_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, at, len) = image_and_chunk(dir.path());
    // The medium (or share) holding the image fails under one chunk.
    let sectors = (at / 512)..(at + len).div_ceil(512);
    let faulty = FaultyDisk::new(MemDisk::from_vec(bytes.clone(), 512)).with_bad_sectors(sectors);
    let err = restore_error(Box::new(faulty));
    let msg = err.to_string();
    assert!(matches!(err, JobError::TargetIncomplete { .. }), "{msg}");
    assert!(
        msg.starts_with("i.lbi: the image could not be read: chunk "),
        "{msg}"
    );
    assert!(msg.contains("Input/output error"), "{msg}");
    assert!(!msg.contains("damaged"), "{msg}");
    assert!(msg.ends_with("the target is incomplete"), "{msg}");
    // The same chunk damaged (a flipped byte): damage, said as such.
    let mut damaged = bytes;
    damaged[(at + len / 2) as usize] ^= 0x20;
    let err = restore_error(Box::new(MemDisk::from_vec(damaged, 512)));
    let msg = err.to_string();
    assert!(matches!(err, JobError::TargetIncomplete { .. }), "{msg}");
    assert!(msg.contains("is damaged"), "{msg}");
    assert!(!msg.contains("could not be read"), "{msg}");
}
