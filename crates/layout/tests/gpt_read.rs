//! Reading GPT disks made by sgdisk and sfdisk, healthy and damaged.

mod common;

use common::*;
use layout::{
    gpt_types, GptCopy, GptDamage, HeaderStatus, PartitionType, Protection, TableKind, Warning,
};
use qemu_tests::fixture;
use uuid::Uuid;

fn gpt(l: &layout::Layout) -> &layout::GptInfo {
    match &l.kind {
        TableKind::Gpt(g) => g,
        other => panic!("expected a GPT, got {other:?}"),
    }
}

#[test]
fn gpt_fields_match_sgdisk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let g = gpt(&l);
    assert_eq!(l.sector_size, 512);
    assert!(g.health.is_ok(), "{}", g.health);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let listing = fixture::run("sgdisk", &["-p", p(&img)])?;
    let disk_guid = field(&listing, "Disk identifier (GUID):").unwrap_or_default();
    assert_eq!(g.disk_guid, Uuid::parse_str(disk_guid)?);
    assert_eq!(g.first_usable_lba, 34);
    assert_eq!(g.last_usable_lba, 131038);
    assert_eq!((g.primary_header_lba, g.primary_entries_lba), (1, 2));
    assert_eq!(
        (g.backup_entries_lba, g.backup_header_lba),
        (131039, 131071)
    );
    assert_eq!((g.entry_count, g.entry_size), (128, 128));
    assert_eq!(
        g.mbr.as_ref().map(|m| m.protection),
        Some(Protection::Protective { covers_disk: true })
    );

    assert_eq!(
        l.partitions.iter().map(|p| p.number).collect::<Vec<_>>(),
        vec![1, 3, 4]
    );
    for part in &l.partitions {
        let info = fixture::run("sgdisk", &["-i", &part.number.to_string(), p(&img)])?;
        let type_guid = first_word(&info, "Partition GUID code:").unwrap_or_default();
        assert_eq!(part.kind, PartitionType::Gpt(Uuid::parse_str(type_guid)?));
        let unique = first_word(&info, "Partition unique GUID:").unwrap_or_default();
        assert_eq!(part.guid, Some(Uuid::parse_str(unique)?));
        let first: u64 = first_word(&info, "First sector:")
            .unwrap_or_default()
            .parse()?;
        let last: u64 = first_word(&info, "Last sector:")
            .unwrap_or_default()
            .parse()?;
        let sectors: u64 = first_word(&info, "Partition size:")
            .unwrap_or_default()
            .parse()?;
        assert_eq!((part.first_lba, part.last_lba), (first, last));
        assert_eq!(part.start, first * 512);
        assert_eq!(part.size, sectors * 512);
        let attrs = u64::from_str_radix(field(&info, "Attribute flags:").unwrap_or_default(), 16)?;
        assert_eq!(part.attributes, attrs);
        let name = field(&info, "Partition name:").unwrap_or_default();
        assert_eq!(format!("'{}'", part.name), name);
        assert!(!part.is_extended && !part.is_logical);
    }
    let efi = l.partition(1).expect("partition 1");
    assert_eq!(efi.kind, PartitionType::Gpt(gpt_types::EFI_SYSTEM));
    assert_eq!(efi.kind.name(), Some("EFI System"));
    assert_eq!(efi.attributes, 1);
    let root = l.partition(3).expect("partition 3");
    assert_eq!(root.kind.name(), Some("Linux filesystem"));
    assert_eq!(root.attributes, (1 << 60) | (1 << 63));
    let data = l.partition(4).expect("partition 4");
    assert_eq!(data.name, "Données");
    assert_eq!(data.kind.name(), Some("Microsoft basic data"));
    assert_eq!(l.used_end(), 28672 * 512);
    Ok(())
}

#[test]
fn table_areas_cover_mbr_both_gpts_and_the_boot_gap() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    // LBA 0 through the first partition at 1 MiB in one piece, and the last 33 sectors.
    assert_eq!(l.table_areas(), vec![(0, MIB), (131039 * 512, 33 * 512)]);
    Ok(())
}

#[test]
fn damaged_primary_header_is_read_from_backup_with_a_report() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    let healthy = layout::read(&FileIo::open(&img, 512)?)?;
    // Break the first usable LBA field of the primary header: its CRC no longer matches.
    fixture::poke(&img, 512 + 40, &[0x99])?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let g = gpt(&l);
    assert!(
        matches!(
            g.health.primary,
            HeaderStatus::Damaged(GptDamage::HeaderCrc { lba: 1, .. })
        ),
        "{:?}",
        g.health.primary
    );
    assert_eq!(g.health.backup, HeaderStatus::Ok);
    assert_eq!(g.health.used, GptCopy::Backup);
    assert!(
        g.health.to_string().contains("recovered from the backup"),
        "{}",
        g.health
    );
    assert_eq!(l.partitions, healthy.partitions);
    assert_eq!(g.disk_guid, gpt(&healthy).disk_guid);
    Ok(())
}

#[test]
fn wiped_primary_signature_is_read_from_backup() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    fixture::poke(&img, 512, &[0; 512])?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let g = gpt(&l);
    assert_eq!(
        g.health.primary,
        HeaderStatus::Damaged(GptDamage::BadSignature { lba: 1 })
    );
    assert_eq!(g.health.used, GptCopy::Backup);
    assert_eq!(l.partitions.len(), 3);
    Ok(())
}

#[test]
fn damaged_backup_header_is_reported() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    fixture::poke(&img, 64 * MIB - 512 + 60, &[0xAB, 0xCD])?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let g = gpt(&l);
    assert_eq!(g.health.primary, HeaderStatus::Ok);
    assert!(
        matches!(
            g.health.backup,
            HeaderStatus::Damaged(GptDamage::HeaderCrc { lba: 131071, .. })
        ),
        "{:?}",
        g.health.backup
    );
    assert_eq!(g.health.used, GptCopy::Primary);
    assert!(!g.health.is_ok());
    Ok(())
}

#[test]
fn broken_entries_crc_is_reported_and_backup_entries_used() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    // The name of entry 1 in the primary array.
    fixture::poke(&img, 2 * 512 + 56, b"X\0")?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let g = gpt(&l);
    assert!(
        matches!(
            g.health.primary,
            HeaderStatus::Damaged(GptDamage::EntriesCrc { lba: 2, .. })
        ),
        "{:?}",
        g.health.primary
    );
    assert_eq!(g.health.used, GptCopy::Backup);
    assert_eq!(l.partition(1).map(|p| p.name.as_str()), Some("EFI system"));
    Ok(())
}

#[test]
fn grown_disk_reports_misplaced_backup() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)?
        .set_len(96 * MIB)?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let g = gpt(&l);
    assert_eq!(g.health.primary, HeaderStatus::Ok);
    assert_eq!(
        g.health.backup,
        HeaderStatus::Misplaced {
            lba: 131071,
            expected_lba: 96 * 2048 - 1
        }
    );
    assert_eq!(
        g.mbr.as_ref().map(|m| m.protection),
        Some(Protection::Protective { covers_disk: false })
    );
    Ok(())
}

#[test]
fn grown_disk_with_damaged_primary_finds_backup_through_protective_mbr() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)?
        .set_len(96 * MIB)?;
    fixture::poke(&img, 512, b"BROKEN!!")?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let g = gpt(&l);
    assert_eq!(g.health.used, GptCopy::Backup);
    assert!(
        matches!(g.health.backup, HeaderStatus::Misplaced { lba: 131071, .. }),
        "{:?}",
        g.health.backup
    );
    assert_eq!(l.partitions.len(), 3);
    Ok(())
}

#[test]
fn hybrid_mbr_made_by_sgdisk_is_recognised() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    fixture::run("sgdisk", &["-h", "1:3", p(&img)])?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let m = gpt(&l).mbr.as_ref().expect("LBA 0 MBR");
    assert_eq!(m.protection, Protection::Hybrid);
    assert!(m.entries.iter().any(|e| e.kind == 0xEE));
    assert!(m
        .entries
        .iter()
        .any(|e| e.start_lba == 2048 && e.sectors == 2048));
    assert_eq!(l.partitions.len(), 3);
    Ok(())
}

#[test]
fn gpt_with_4096_byte_sectors_is_read_through_a_512_byte_view() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = fdisk_gpt_4k(dir.path(), "4k.img")?;
    let rows = fdisk_rows(&img, 4096)?;
    assert_eq!(rows.len(), 2);
    for io_sector in [4096, 512] {
        let l = layout::read(&FileIo::open(&img, io_sector)?)?;
        assert_eq!(l.sector_size, 4096, "read through a {io_sector}-byte view");
        let g = gpt(&l);
        assert!(g.health.is_ok(), "{}", g.health);
        assert_eq!(g.backup_header_lba, 64 * MIB / 4096 - 1);
        assert_eq!(l.partitions.len(), 2);
        for (part, (start, sectors, name, type_guid)) in l.partitions.iter().zip(&rows) {
            assert_eq!(part.first_lba, *start);
            assert_eq!(part.sectors(), *sectors);
            assert_eq!(part.start, start * 4096);
            assert_eq!(&part.name, name);
            assert_eq!(part.kind, PartitionType::Gpt(Uuid::parse_str(type_guid)?));
        }
        let differs = l.warnings.contains(&Warning::SectorSizeDiffers {
            device: 512,
            table: 4096,
        });
        assert_eq!(differs, io_sector == 512, "{:?}", l.warnings);
    }
    Ok(())
}
