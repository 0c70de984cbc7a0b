//! Reading MBR disks made by sfdisk, with logical partitions and broken EBR chains.

mod common;

use common::*;
use layout::{PartitionType, Protection, TableKind, Warning};
use qemu_tests::fixture;

#[test]
fn logical_partitions_are_numbered_5_6_7_like_linux() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sfdisk_mbr(dir.path(), "mbr.img")?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(as_sfdisk(&l), sfdisk_parts(&img)?);
    let numbers: Vec<u32> = l.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![1, 2, 3, 5, 6, 7]);
    let TableKind::Mbr(m) = &l.kind else {
        panic!("expected MBR, got {:?}", l.kind)
    };
    assert_eq!(m.disk_signature, 0x1234_5678);
    assert_eq!(m.protection, Protection::None);
    assert_eq!(
        m.ebrs.iter().map(|e| e.logical).collect::<Vec<_>>(),
        vec![Some(5), Some(6), Some(7)]
    );
    let ext = l.partition(3).expect("extended");
    assert!(ext.is_extended && !ext.is_logical);
    assert_eq!(ext.kind.name(), Some("Extended"));
    for n in [5, 6, 7] {
        let p = l.partition(n).expect("logical");
        assert!(p.is_logical && !p.is_extended);
        assert_eq!(
            m.ebrs
                .iter()
                .find(|e| e.logical == Some(n))
                .map(|e| e.lba < p.first_lba),
            Some(true)
        );
    }
    assert_eq!(
        l.partition(6).map(|p| p.kind),
        Some(PartitionType::Mbr(0x82))
    );
    assert_eq!(
        l.partition(6).and_then(|p| p.kind.name()),
        Some("Linux swap")
    );
    assert!(l.partition(1).map(|p| p.bootable).unwrap_or(false));
    assert_eq!(l.used_end(), (18432 + 112640) * 512);
    Ok(())
}

#[test]
fn table_areas_hold_lba0_the_boot_gap_and_every_ebr() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sfdisk_mbr(dir.path(), "mbr.img")?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let TableKind::Mbr(m) = &l.kind else {
        panic!("expected MBR")
    };
    let mut want = vec![(0, 2048 * 512)];
    want.extend(m.ebrs.iter().map(|e| (e.lba * 512, 512)));
    assert_eq!(l.table_areas(), want);
    Ok(())
}

#[test]
fn ebr_chain_loop_is_cut_with_a_warning() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sfdisk_mbr(dir.path(), "mbr.img")?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let TableKind::Mbr(m) = &l.kind else {
        panic!("expected MBR")
    };
    // Make the second EBR's link point back to the first EBR (relative start 0).
    let second = m.ebrs[1].lba;
    fixture::poke(&img, second * 512 + 446 + 16 + 8, &0u32.to_le_bytes())?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    assert!(
        l.warnings
            .contains(&Warning::EbrLoop { lba: m.ebrs[0].lba }),
        "{:?}",
        l.warnings
    );
    assert_eq!(l.partitions.iter().filter(|p| p.is_logical).count(), 2);
    Ok(())
}

#[test]
fn ebr_pointing_outside_the_extended_partition_is_cut_with_a_warning() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sfdisk_mbr(dir.path(), "mbr.img")?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    let TableKind::Mbr(m) = &l.kind else {
        panic!("expected MBR")
    };
    fixture::poke(
        &img,
        m.ebrs[0].lba * 512 + 446 + 16 + 8,
        &0x0100_0000u32.to_le_bytes(),
    )?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    assert!(
        l.warnings
            .iter()
            .any(|w| matches!(w, Warning::EbrOutsideExtended { .. })),
        "{:?}",
        l.warnings
    );
    assert_eq!(
        l.partitions
            .iter()
            .filter(|p| p.is_logical)
            .map(|p| p.number)
            .collect::<Vec<_>>(),
        vec![5]
    );
    Ok(())
}

#[test]
fn partition_past_the_disk_end_is_a_warning() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("short.img");
    fixture::sparse_file(&img, 64 * MIB)?;
    sfdisk_script(&img, "label: dos\nstart=2048, size=100000, type=83\n", &[])?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)?
        .set_len(32 * MIB)?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    assert_eq!(
        l.warnings,
        vec![Warning::PastDiskEnd {
            number: 1,
            end: 102048 * 512,
            disk_size: 32 * MIB
        }]
    );
    assert!(l.warnings[0]
        .to_string()
        .contains("past the end of the disk"));
    Ok(())
}

#[test]
fn overlapping_partitions_are_a_warning() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("overlap.img");
    fixture::sparse_file(&img, 64 * MIB)?;
    sfdisk_script(
        &img,
        "label: dos\nstart=2048, size=8192, type=83\nstart=20480, size=8192, type=83\n",
        &[],
    )?;
    // Move partition 2's start into partition 1.
    fixture::poke(&img, 446 + 16 + 8, &4096u32.to_le_bytes())?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    assert_eq!(l.warnings, vec![Warning::Overlap { a: 1, b: 2 }]);
    Ok(())
}

#[test]
fn protective_mbr_without_any_gpt_is_an_error_naming_the_device() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    fixture::poke(&img, 512, &[0; 512])?;
    fixture::poke(&img, 64 * MIB - 512, &[0; 512])?;
    let err = layout::read(&FileIo::open(&img, 512)?).expect_err("no GPT copy left");
    let msg = err.to_string();
    assert!(
        matches!(err, layout::LayoutError::GptUnreadable { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("gpt.img") && msg.contains("no GPT signature"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn classic_mbr_wins_over_a_leftover_gpt_like_the_kernel() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    let mbr = sfdisk_mbr(dir.path(), "mbr.img")?;
    let lba0 = std::fs::read(&mbr)?[..512].to_vec();
    fixture::poke(&img, 0, &lba0)?;
    let l = layout::read(&FileIo::open(&img, 512)?)?;
    assert!(matches!(l.kind, TableKind::Mbr(_)), "{:?}", l.kind);
    assert!(
        l.warnings.contains(&Warning::StaleGpt { lba: 1 }),
        "{:?}",
        l.warnings
    );
    assert!(
        l.warnings.contains(&Warning::StaleGpt { lba: 131071 }),
        "{:?}",
        l.warnings
    );
    assert_eq!(l.partitions.iter().filter(|p| !p.is_logical).count(), 3);
    Ok(())
}
