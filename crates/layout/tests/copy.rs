//! Planning and writing tables onto other disks, checked by sgdisk, sfdisk and fdisk.

mod common;

use common::*;
use disk::BlockIo;
use layout::{plan_copy, Change, CopyOptions, LayoutError, PartitionType, TableKind};
use qemu_tests::fixture;
use std::path::Path;

fn read(img: &Path, sector: u32) -> anyhow::Result<layout::Layout> {
    Ok(layout::read(&FileIo::open(img, sector)?)?)
}

fn copy_to_new_file(
    src: &layout::Layout,
    target: &Path,
    len: u64,
    opts: &CopyOptions,
) -> anyhow::Result<layout::TablePlan> {
    fixture::sparse_file(target, len)?;
    let plan = plan_copy(src, len, src.sector_size, opts)?;
    plan.write(&FileIo::open(target, src.sector_size)?)?;
    Ok(plan)
}

fn sgdisk_verify_clean(img: &Path) -> anyhow::Result<()> {
    let (code, out) = fixture::run_status("sgdisk", &["-v", p(img)])?;
    anyhow::ensure!(
        code == 0 && out.contains("No problems found"),
        "sgdisk -v {}: {out}",
        img.display()
    );
    Ok(())
}

#[test]
fn gpt_copy_to_larger_disk_passes_sgdisk_verify_and_keeps_numbers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src_img = sgdisk_gpt(dir.path(), "src.img", 64 * MIB)?;
    let src = read(&src_img, 512)?;
    let target = dir.path().join("target.img");
    let plan = copy_to_new_file(&src, &target, 128 * MIB, &CopyOptions::default())?;
    assert!(plan.changes().contains(&Change::BackupMoved {
        from_lba: 131071,
        to_lba: 262143
    }));
    let shown = plan.to_string();
    assert!(
        shown.contains("backup GPT header moved from LBA 131071 to LBA 262143"),
        "{shown}"
    );
    assert!(shown.contains("EFI System"), "{shown}");
    sgdisk_verify_clean(&target)?;
    assert_eq!(sgdisk_numbers(&target)?, vec![1, 3, 4]);
    let copy = read(&target, 512)?;
    assert_eq!(copy.partitions, src.partitions);
    let (TableKind::Gpt(a), TableKind::Gpt(b)) = (&src.kind, &copy.kind) else {
        panic!("expected GPTs")
    };
    assert_eq!(a.disk_guid, b.disk_guid);
    assert!(b.health.is_ok(), "{}", b.health);
    assert_eq!(b.last_usable_lba, 262143 - 33);
    let mut planned = plan.layout().clone();
    planned.device = copy.device.clone();
    planned.device_sector_size = copy.device_sector_size;
    assert_eq!(copy, planned);
    for n in [1u32, 3, 4] {
        let a = fixture::run("sgdisk", &["-i", &n.to_string(), p(&src_img)])?;
        let b = fixture::run("sgdisk", &["-i", &n.to_string(), p(&target)])?;
        assert_eq!(a, b, "sgdisk -i {n}");
    }
    Ok(())
}

#[test]
fn grow_last_ends_at_the_last_usable_sector() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = read(&sgdisk_gpt(dir.path(), "src.img", 64 * MIB)?, 512)?;
    let target = dir.path().join("target.img");
    let opts = CopyOptions {
        grow_last: true,
        ..CopyOptions::default()
    };
    let plan = copy_to_new_file(&src, &target, 128 * MIB, &opts)?;
    assert!(plan.changes().contains(&Change::Grown {
        number: 4,
        from: 4 * MIB,
        to: (262110 - 20480 + 1) * 512
    }));
    sgdisk_verify_clean(&target)?;
    let info = fixture::run("sgdisk", &["-i", "4", p(&target)])?;
    assert_eq!(first_word(&info, "Last sector:"), Some("262110"));
    assert_eq!(first_word(&info, "First sector:"), Some("20480"));
    let listing = fixture::run("sgdisk", &["-p", p(&target)])?;
    assert!(
        listing.contains("last usable sector is 262110"),
        "{listing}"
    );
    Ok(())
}

#[test]
fn new_ids_give_fresh_disk_and_partition_guids() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = read(&sgdisk_gpt(dir.path(), "src.img", 64 * MIB)?, 512)?;
    let target = dir.path().join("target.img");
    let opts = CopyOptions {
        new_ids: true,
        ..CopyOptions::default()
    };
    copy_to_new_file(&src, &target, 64 * MIB, &opts)?;
    sgdisk_verify_clean(&target)?;
    let copy = read(&target, 512)?;
    let (TableKind::Gpt(a), TableKind::Gpt(b)) = (&src.kind, &copy.kind) else {
        panic!("expected GPTs")
    };
    assert_ne!(a.disk_guid, b.disk_guid);
    for (x, y) in src.partitions.iter().zip(&copy.partitions) {
        assert_ne!(x.guid, y.guid);
        assert_eq!(
            (x.number, x.first_lba, x.last_lba, &x.name, x.kind),
            (y.number, y.first_lba, y.last_lba, &y.name, y.kind)
        );
    }
    Ok(())
}

#[test]
fn too_small_target_is_refused_with_the_exact_shortfall() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = read(&sgdisk_gpt(dir.path(), "src.img", 64 * MIB)?, 512)?;
    // Partition 4 ends at LBA 28671; the backup entries (32 sectors) and header follow.
    let need = (28672 + 33) * 512;
    let err = plan_copy(&src, need - 4096, 512, &CopyOptions::default()).expect_err("too small");
    assert!(
        matches!(err, LayoutError::TargetTooSmall { need: n, have } if n == need && have == need - 4096),
        "{err:?}"
    );
    assert!(err.to_string().contains("4096 bytes short"), "{err}");
    assert!(plan_copy(&src, need, 512, &CopyOptions::default()).is_ok());
    Ok(())
}

#[test]
fn different_sector_size_is_refused_naming_both() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = read(&sgdisk_gpt(dir.path(), "src.img", 64 * MIB)?, 512)?;
    let err = plan_copy(&src, 128 * MIB, 4096, &CopyOptions::default()).expect_err("mismatch");
    let msg = err.to_string();
    assert!(
        msg.contains("512-byte") && msg.contains("4096-byte") && msg.contains("src.img"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn boot_code_of_lba0_is_kept_on_copies() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src_img = sgdisk_gpt(dir.path(), "src.img", 64 * MIB)?;
    let code: Vec<u8> = (0..440u32).map(|i| (i * 7 + 3) as u8).collect();
    fixture::poke(&src_img, 0, &code)?;
    let src = read(&src_img, 512)?;
    let target = dir.path().join("target.img");
    copy_to_new_file(&src, &target, 100 * MIB, &CopyOptions::default())?;
    let mut lba0 = [0u8; 512];
    FileIo::open(&target, 512)?.read_at(&mut lba0, 0)?;
    assert_eq!(&lba0[..440], &code[..]);
    sgdisk_verify_clean(&target)?;
    let dropped = dir.path().join("dropped.img");
    copy_to_new_file(
        &src,
        &dropped,
        100 * MIB,
        &CopyOptions {
            keep_boot_code: false,
            ..CopyOptions::default()
        },
    )?;
    FileIo::open(&dropped, 512)?.read_at(&mut lba0, 0)?;
    assert!(lba0[..440].iter().all(|&b| b == 0));
    Ok(())
}

#[test]
fn hybrid_mbr_copy_keeps_the_hybrid_entries_and_verifies() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src_img = sgdisk_gpt(dir.path(), "src.img", 64 * MIB)?;
    fixture::run("sgdisk", &["-h", "1", p(&src_img)])?;
    let src = read(&src_img, 512)?;
    let target = dir.path().join("target.img");
    copy_to_new_file(&src, &target, 128 * MIB, &CopyOptions::default())?;
    sgdisk_verify_clean(&target)?;
    let copy = read(&target, 512)?;
    let TableKind::Gpt(g) = &copy.kind else {
        panic!("expected GPT")
    };
    let m = g.mbr.as_ref().expect("hybrid MBR");
    assert_eq!(m.protection, layout::Protection::Hybrid);
    assert!(m
        .entries
        .iter()
        .any(|e| e.start_lba == 2048 && e.sectors == 2048 && e.kind != 0xEE));
    Ok(())
}

#[test]
fn gpt_with_4096_byte_sectors_copies_to_a_larger_disk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src_img = fdisk_gpt_4k(dir.path(), "src.img")?;
    let src = read(&src_img, 4096)?;
    let target = dir.path().join("target.img");
    let opts = CopyOptions {
        grow_last: true,
        ..CopyOptions::default()
    };
    copy_to_new_file(&src, &target, 128 * MIB, &opts)?;
    let copy = read(&target, 4096)?;
    let TableKind::Gpt(g) = &copy.kind else {
        panic!("expected GPT")
    };
    assert!(g.health.is_ok(), "{}", g.health);
    let total = 128 * MIB / 4096;
    assert_eq!(g.backup_header_lba, total - 1);
    assert_eq!(g.last_usable_lba, total - 1 - 4 - 1);
    let rows = fdisk_rows(&target, 4096)?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].0, 2304);
    assert_eq!(rows[1].0 + rows[1].1 - 1, g.last_usable_lba);
    assert_eq!(rows[1].2, "root");
    Ok(())
}

#[test]
fn mbr_copy_with_logicals_matches_sfdisk_dump_and_verifies() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src_img = sfdisk_mbr(dir.path(), "src.img")?;
    let src = read(&src_img, 512)?;
    let target = dir.path().join("target.img");
    copy_to_new_file(&src, &target, 96 * MIB, &CopyOptions::default())?;
    let (code, out) = fixture::run_status("sfdisk", &["-V", p(&target)])?;
    assert!(code == 0 && out.contains("No errors detected"), "{out}");
    assert_eq!(sfdisk_parts(&target)?, sfdisk_parts(&src_img)?);
    let json = sfdisk_json(&target, &[])?;
    assert_eq!(json["partitiontable"]["id"].as_str(), Some("0x12345678"));
    let copy = read(&target, 512)?;
    let (TableKind::Mbr(a), TableKind::Mbr(b)) = (&src.kind, &copy.kind) else {
        panic!("expected MBRs")
    };
    assert_eq!(a.ebrs, b.ebrs);
    Ok(())
}

#[test]
fn mbr_grow_last_grows_the_last_logical_and_its_extended_partition() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = read(&sfdisk_mbr(dir.path(), "src.img")?, 512)?;
    let target = dir.path().join("target.img");
    let opts = CopyOptions {
        grow_last: true,
        new_ids: true,
        ..CopyOptions::default()
    };
    let plan = copy_to_new_file(&src, &target, 96 * MIB, &opts)?;
    let total = 96 * MIB / 512;
    let (code, out) = fixture::run_status("sfdisk", &["-V", p(&target)])?;
    assert!(code == 0 && out.contains("No errors detected"), "{out}");
    let parts = sfdisk_parts(&target)?;
    let ext = parts.iter().find(|x| x.number == 3).expect("extended");
    assert_eq!(ext.start + ext.size, total);
    let last = parts.iter().find(|x| x.number == 7).expect("logical 7");
    assert_eq!((last.start, last.start + last.size), (36864, total));
    assert!(plan
        .changes()
        .iter()
        .any(|c| matches!(c, Change::NewDiskSignature { .. })));
    let json = sfdisk_json(&target, &[])?;
    assert_ne!(json["partitiontable"]["id"].as_str(), Some("0x12345678"));
    Ok(())
}

#[test]
fn mbr_too_small_target_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = read(&sfdisk_mbr(dir.path(), "src.img")?, 512)?;
    let need = (18432 + 112640) * 512;
    let err = plan_copy(&src, need - 512, 512, &CopyOptions::default()).expect_err("too small");
    assert!(
        matches!(err, LayoutError::TargetTooSmall { need: n, have } if n == need && have == need - 512),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn invalidated_target_has_no_table_left() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    let io = FileIo::open(&img, 512)?;
    layout::invalidate(&io, 512)?;
    let l = layout::read(&io)?;
    assert_eq!(l.kind, TableKind::None);
    let mut head = vec![0u8; 34 * 512];
    io.read_at(&mut head, 0)?;
    assert!(head.iter().all(|&b| b == 0));
    let mut tail = vec![0u8; 33 * 512];
    io.read_at(&mut tail, 64 * MIB - 33 * 512)?;
    assert!(tail.iter().all(|&b| b == 0));
    let (_, out) = fixture::run_status("sgdisk", &["-p", p(&img)])?;
    assert!(
        out.contains("Creating new GPT entries"),
        "sgdisk must not find a table: {out}"
    );
    Ok(())
}

#[test]
fn added_gpt_partition_takes_the_free_entry_and_verifies() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?;
    let l = read(&img, 512)?;
    let kind = PartitionType::Gpt(layout::gpt_types::LINUX_SWAP);
    let plan = layout::add_partition(&l, 16 * MIB, 8 * MIB, kind, "copied")?;
    assert!(plan.changes().contains(&Change::Added { number: 2 }));
    plan.write(&FileIo::open(&img, 512)?)?;
    sgdisk_verify_clean(&img)?;
    assert_eq!(sgdisk_numbers(&img)?, vec![1, 2, 3, 4]);
    let info = fixture::run("sgdisk", &["-i", "2", p(&img)])?;
    assert_eq!(first_word(&info, "First sector:"), Some("32768"));
    assert_eq!(first_word(&info, "Last sector:"), Some("49151"));
    assert_eq!(field(&info, "Partition name:"), Some("'copied'"));
    assert!(
        info.contains("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"),
        "{info}"
    );
    let overlap = layout::add_partition(&l, 2 * MIB, MIB, kind, "x").expect_err("overlap");
    assert!(
        overlap.to_string().contains("overlaps partition 3"),
        "{overlap}"
    );
    let outside = layout::add_partition(&l, 64 * MIB - MIB, MIB, kind, "x").expect_err("outside");
    assert!(
        outside.to_string().contains("outside the usable area"),
        "{outside}"
    );
    Ok(())
}

#[test]
fn added_mbr_partition_takes_the_free_primary_slot_and_verifies() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("mbr.img");
    fixture::sparse_file(&img, 64 * MIB)?;
    sfdisk_script(&img, "label: dos\nstart=2048, size=8192, type=83\nstart=20480, size=8192, type=5\nstart=22528, size=2048, type=83\n", &[])?;
    let l = read(&img, 512)?;
    let plan = layout::add_partition(&l, 32 * MIB, 8 * MIB, PartitionType::Mbr(0x07), "")?;
    assert!(plan.changes().contains(&Change::Added { number: 3 }));
    plan.write(&FileIo::open(&img, 512)?)?;
    let (code, out) = fixture::run_status("sfdisk", &["-V", p(&img)])?;
    assert!(code == 0 && out.contains("No errors detected"), "{out}");
    let parts = sfdisk_parts(&img)?;
    assert!(
        parts.contains(&SfdiskPart {
            number: 3,
            start: 65536,
            size: 16384,
            kind: "7".into(),
            bootable: false
        }),
        "{parts:?}"
    );
    assert!(parts.iter().any(|x| x.number == 5 && x.start == 22528));
    let inside = layout::add_partition(
        &l,
        20480 * 512 + 8 * 512 * 512,
        MIB,
        PartitionType::Mbr(0x83),
        "",
    );
    assert!(
        matches!(inside, Err(LayoutError::Unsupported { .. })),
        "{inside:?}"
    );
    Ok(())
}

#[test]
fn layout_stored_as_json_plans_the_same_copy() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for src_img in [
        sgdisk_gpt(dir.path(), "gpt.img", 64 * MIB)?,
        sfdisk_mbr(dir.path(), "mbr.img")?,
    ] {
        let src = read(&src_img, 512)?;
        let stored: layout::Layout = serde_json::from_str(&serde_json::to_string(&src)?)?;
        assert_eq!(stored, src);
        let opts = CopyOptions {
            grow_last: true,
            ..CopyOptions::default()
        };
        let a = plan_copy(&src, 100 * MIB, 512, &opts)?;
        let b = plan_copy(&stored, 100 * MIB, 512, &opts)?;
        assert_eq!(a, b);
    }
    Ok(())
}
