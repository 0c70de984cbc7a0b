//! A clone from a source with unreadable sectors: skipped, zeroed, mapped — or stopped with
//! `--strict`.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use disk::{BlockIo, FaultyDisk, MemDisk};
use engine::clone::{execute_clone, plan_clone, CloneOptions};
use engine::rescue::{BadRange, ReadPolicy};
use engine::{Cancel, JobError};
use qemu_tests::fixture::{self, Mkfs};

const MIB: u64 = 1024 * 1024;

/// A 48 MiB GPT disk with one ext4 partition starting at 1 MiB, as bytes.
fn disk_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d.img");
    fixture::sparse_file(&disk, 48 * MIB).unwrap();
    fixture::run(
        "sgdisk",
        &["-n", "1:2048:0", "-t", "1:8300", disk.to_str().unwrap()],
    )
    .unwrap();
    let tree = dir.path().join("t");
    fixture::file_tree(&tree, 60).unwrap();
    let fs = dir.path().join("fs.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &fs,
        46 * MIB,
        "data",
        &["-d", tree.to_str().unwrap()],
    )
    .unwrap();
    fixture::write_into(&disk, MIB, &fs).unwrap();
    std::fs::read(&disk).unwrap()
}

#[test]
fn unreadable_sectors_are_skipped_and_reported_exactly() {
    let bytes = disk_bytes();
    let inner = MemDisk::from_vec(bytes.clone(), 512);
    // Sectors inside the ext4 superblock's block group metadata (always used): 1 MiB + 8 KiB.
    let bad_first = (MIB + 8192) / 512;
    let src = FaultyDisk::new(&inner).with_bad_sectors(bad_first..bad_first + 3);
    let target = MemDisk::new(64 * MIB as usize, 512);
    let opts = CloneOptions::default();
    let plan = plan_clone(&inner, "target", target.len(), Some(512), &opts).unwrap();
    let report = execute_clone(&plan, &src, &target, &opts, None, &Cancel::new()).unwrap();
    assert_eq!(
        report.bad_sectors.ranges,
        vec![BadRange {
            offset: bad_first * 512,
            len: 3 * 512
        }]
    );
    let out = target.to_vec();
    let at = (bad_first * 512) as usize;
    assert!(
        out[at..at + 1536].iter().all(|&b| b == 0),
        "unreadable sectors are written as zeros"
    );
    // Everything else that was copied is identical: compare the used area around the hole.
    assert_eq!(out[MIB as usize..at], bytes[MIB as usize..at]);
    assert_eq!(
        out[at + 1536..at + 1536 + 65536],
        bytes[at + 1536..at + 1536 + 65536]
    );
    assert_eq!(inner.to_vec(), bytes, "the source is never written");
}

#[test]
fn strict_policy_stops_at_the_first_unreadable_sector() {
    let bytes = disk_bytes();
    let inner = MemDisk::from_vec(bytes, 512);
    let bad_first = (MIB + 8192) / 512;
    let src = FaultyDisk::new(&inner).with_bad_sectors(bad_first..bad_first + 1);
    let target = MemDisk::new(64 * MIB as usize, 512);
    let opts = CloneOptions {
        read: ReadPolicy { strict: true },
        ..CloneOptions::default()
    };
    let plan = plan_clone(&inner, "target", target.len(), Some(512), &opts).unwrap();
    let err = execute_clone(&plan, &src, &target, &opts, None, &Cancel::new()).unwrap_err();
    assert!(
        matches!(err, JobError::UnreadableSector { offset, .. } if offset == bad_first * 512),
        "{err}"
    );
    // The table was invalidated first and never written: the target does not look complete.
    let out = target.to_vec();
    assert!(out[..34 * 512].iter().all(|&b| b == 0));
}

#[test]
fn a_cancelled_clone_leaves_no_partition_table() {
    let bytes = disk_bytes();
    let inner = MemDisk::from_vec(bytes, 512);
    let target = MemDisk::from_vec(vec![0xAA; 64 * MIB as usize], 512);
    let opts = CloneOptions::default();
    let plan = plan_clone(&inner, "target", target.len(), Some(512), &opts).unwrap();
    let cancel = Cancel::new();
    cancel.cancel();
    let err = execute_clone(&plan, &inner, &target, &opts, None, &cancel).unwrap_err();
    assert!(matches!(err, JobError::Cancelled { .. }), "{err}");
    assert!(err.to_string().contains("no partition table"), "{err}");
    let out = target.to_vec();
    assert!(out[..34 * 512].iter().all(|&b| b == 0));
    assert!(out[out.len() - 33 * 512..].iter().all(|&b| b == 0));
}
