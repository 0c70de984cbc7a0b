//! Inputs that are not, or no longer, sane partition tables: clear errors or warnings, never a
//! panic.

mod common;

use common::*;
use disk::MemDisk;
use layout::{GptCopy, GptDamage, HeaderStatus, LayoutError, TableKind};
use qemu_tests::fixture::{self, Mkfs};

#[test]
fn empty_file_is_too_small_naming_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("empty.img");
    fixture::sparse_file(&img, 0)?;
    let err = layout::read(&FileIo::open(&img, 512)?).expect_err("empty");
    assert!(
        matches!(err, LayoutError::DeviceTooSmall { len: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("empty.img"), "{err}");
    Ok(())
}

#[test]
fn random_bytes_hold_no_table() -> anyhow::Result<()> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..(4 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let l = layout::read(&MemDisk::from_vec(data, 512))?;
    assert_eq!(l.kind, TableKind::None);
    assert!(l.partitions.is_empty() && l.table_areas().is_empty());
    Ok(())
}

#[test]
fn gpt_truncated_after_lba1_is_unreadable_with_reasons() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)?
        .set_len(1024)?;
    let err = layout::read(&FileIo::open(&img, 512)?).expect_err("truncated");
    let LayoutError::GptUnreadable {
        primary, backup, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        matches!(primary, GptDamage::Unreadable { lba: 2, .. }),
        "{primary:?}"
    );
    assert!(
        matches!(backup, GptDamage::Unreadable { lba: 131071, .. }),
        "{backup:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("gpt.img") && msg.contains("past the end of the disk"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn absurd_entry_count_is_rejected_without_allocating_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    // Entry count 0xFFFFFFFF in the primary header, with a valid header CRC.
    let mut hdr = std::fs::read(&img)?[512..512 + 92].to_vec();
    hdr[80..84].copy_from_slice(&u32::MAX.to_le_bytes());
    hdr[16..20].fill(0);
    let crc = crc32fast::hash(&hdr);
    hdr[16..20].copy_from_slice(&crc.to_le_bytes());
    fixture::poke(&img, 512, &hdr)?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let TableKind::Gpt(g) = &l.kind else {
        panic!("expected GPT")
    };
    let HeaderStatus::Damaged(GptDamage::BadFields { reason, .. }) = &g.health.primary else {
        panic!("{:?}", g.health.primary)
    };
    assert!(reason.contains("4294967295 partition entries"), "{reason}");
    assert_eq!(g.health.used, GptCopy::Backup);
    assert_eq!(l.partitions.len(), 3);
    Ok(())
}

#[test]
fn bare_file_systems_are_not_mistaken_for_partition_tables() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (kind, name) in [
        (Mkfs::Fat32, "fat.img"),
        (Mkfs::Fat16, "fat16.img"),
        (Mkfs::Ntfs, "ntfs.img"),
        (Mkfs::Exfat, "exfat.img"),
        (Mkfs::Ext4, "ext4.img"),
    ] {
        let img = dir.path().join(name);
        fixture::mkfs(kind, &img, 64 * MIB, "LB", &[])?;
        let l = layout::read(&FileIo::open(&img, 512)?)?;
        assert_eq!(l.kind, TableKind::None, "{name}");
        assert!(l.partitions.is_empty(), "{name}");
    }
    Ok(())
}

#[test]
fn file_system_made_over_a_former_gpt_disk_is_not_a_disk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // (mkswap keeps LBA 0 and 1, so its result still reads as a GPT whose primary entries are
    // damaged: telling that apart needs file-system probing, which is the fs crate's job.)
    for (tool, args) in [("mkfs.vfat", vec!["-F", "32"]), ("mkfs.exfat", vec![])] {
        let img = sgdisk_gpt(dir.path(), "former-gpt.img", 64 * MIB)?;
        let mut a = args.clone();
        a.push(p(&img));
        fixture::run(tool, &a)?;
        let io = FileIo::open(&img, 512)?;
        let l = layout::read(&io)?;
        assert_eq!(l.kind, TableKind::None, "{tool}");
        assert_eq!(
            l.warnings,
            vec![layout::Warning::StaleGpt { lba: 131071 }],
            "{tool}"
        );
        // On request, the old table can still be recovered from its backup.
        let old = layout::recover_gpt(&io)?;
        let TableKind::Gpt(g) = &old.kind else {
            panic!("expected GPT")
        };
        assert_eq!(g.health.used, GptCopy::Backup, "{tool}");
        assert_eq!(old.partitions.len(), 3, "{tool}");
    }
    Ok(())
}

#[test]
fn recover_gpt_without_any_copy_is_no_table() -> anyhow::Result<()> {
    let err = layout::recover_gpt(&MemDisk::new(1 << 20, 512)).expect_err("blank disk");
    assert!(matches!(err, LayoutError::NoTable { .. }), "{err:?}");
    assert_eq!(err.to_string(), "memory: no partition table");
    Ok(())
}
