//! Planning tables onto smaller disks: tables made by sgdisk and sfdisk, results checked by
//! sgdisk -v and sfdisk.

mod common;

use common::*;
use layout::{plan_shrink, Change, CopyOptions, LayoutError, Shrinkable, TableKind};
use qemu_tests::fixture;
use std::path::Path;

fn read(img: &Path) -> anyhow::Result<layout::Layout> {
    Ok(layout::read(&FileIo::open(img, 512)?)?)
}

/// GPT of 200 MiB: 1 BIOS boot 1 MiB, 2 ESP 32 MiB, 3 Linux 100 MiB, 4 Linux rest (~66 MiB).
fn system_gpt(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let img = dir.join("src.img");
    fixture::sparse_file(&img, 200 * MIB)?;
    fixture::sgdisk(
        &img,
        &[
            "-n",
            "1:2048:+1M",
            "-t",
            "1:ef02",
            "-c",
            "1:bios",
            "-n",
            "2:0:+32M",
            "-t",
            "2:ef00",
            "-c",
            "2:esp",
            "-n",
            "3:0:+100M",
            "-t",
            "3:8300",
            "-c",
            "3:root",
            "-n",
            "4:0:0",
            "-t",
            "4:8300",
            "-c",
            "4:home",
        ],
    )?;
    Ok(img)
}

#[test]
fn gpt_onto_a_smaller_disk_shrinks_the_roomiest_partition_moves_later_ones_and_keeps_ids(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = read(&system_gpt(dir.path())?)?;
    let target = dir.path().join("dst.img");
    let len = 150 * MIB;
    fixture::sparse_file(&target, len)?;
    // Partition 3 has 80 MiB free, partition 4 about 10 MiB: 3 shrinks, 4 moves down.
    let facts = [
        Shrinkable {
            number: 3,
            min_size: 20 * MIB,
        },
        Shrinkable {
            number: 4,
            min_size: 56 * MIB,
        },
        // An ESP never shrinks, whatever the engine says.
        Shrinkable {
            number: 2,
            min_size: MIB,
        },
    ];
    let plan = plan_shrink(&src, len, 512, &CopyOptions::default(), &facts)?;
    plan.write(&FileIo::open(&target, 512)?)?;
    let (code, out) = fixture::run_status("sgdisk", &["-v", p(&target)])?;
    assert!(code == 0 && out.contains("No problems found"), "{out}");
    let dst = read(&target)?;
    let by = |l: &layout::Layout, n: u32| l.partition(n).cloned().expect("partition");
    for n in [1, 2] {
        assert_eq!(by(&dst, n).start, by(&src, n).start);
        assert_eq!(by(&dst, n).size, by(&src, n).size);
    }
    for n in 1..=4 {
        assert_eq!(by(&dst, n).guid, by(&src, n).guid, "partition {n} GUID");
        assert_eq!(by(&dst, n).name, by(&src, n).name);
        assert_eq!(by(&dst, n).kind, by(&src, n).kind);
        assert_eq!(by(&dst, n).start % MIB, 0, "partition {n} aligned");
    }
    assert!(by(&dst, 3).size < by(&src, 3).size);
    assert_eq!(by(&dst, 3).size % MIB, 0);
    assert_eq!(
        by(&dst, 4).size,
        by(&src, 4).size,
        "4 has less room: it only moves"
    );
    assert_eq!(by(&dst, 4).start, by(&dst, 3).end());
    assert!(plan.changes().contains(&Change::Shrunk {
        number: 3,
        from: 100 * MIB,
        to: by(&dst, 3).size
    }));
    assert!(plan
        .changes()
        .iter()
        .any(|c| matches!(c, Change::Moved { number: 4, .. })));
    let shown = plan.to_string();
    assert!(
        shown.contains("partition 3 shrunk from 100.0 MiB"),
        "{shown}"
    );
    Ok(())
}

#[test]
fn a_layout_that_cannot_fit_says_by_how_much() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = read(&system_gpt(dir.path())?)?;
    let facts = [
        Shrinkable {
            number: 3,
            min_size: 90 * MIB,
        },
        Shrinkable {
            number: 4,
            min_size: 60 * MIB,
        },
    ];
    let err =
        plan_shrink(&src, 150 * MIB, 512, &CopyOptions::default(), &facts).expect_err("cannot fit");
    let LayoutError::TargetTooSmall { need, have } = err else {
        panic!("expected TargetTooSmall, got {err}");
    };
    assert_eq!(have, 150 * MIB);
    assert_eq!(
        layout::min_target_len(&src, &facts)?,
        need,
        "front ends see the same need"
    );
    // 1 MiB before partition 1, 1 + 32 + 90 + 60 MiB, the backup GPT (33 sectors).
    assert_eq!(need, (1 + 1 + 32 + 90 + 60) * MIB + 33 * 512);
    assert!(LayoutError::TargetTooSmall { need, have }
        .to_string()
        .contains(&format!("({} bytes short)", need - have)),);
    Ok(())
}

#[test]
fn mbr_prefers_shrinking_after_a_windows_partition_and_warns_when_its_start_moves(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("mbr.img");
    fixture::sparse_file(&img, 200 * MIB)?;
    fixture::sfdisk(
        &img,
        "label: dos\nstart=2048, size=100MiB, type=83\nsize=50MiB, type=7, bootable\nsize=40MiB, type=83\n",
        512,
    )?;
    let src = read(&img)?;
    let facts = [
        Shrinkable {
            number: 1,
            min_size: 10 * MIB,
        },
        Shrinkable {
            number: 2,
            min_size: 10 * MIB,
        },
        Shrinkable {
            number: 3,
            min_size: 10 * MIB,
        },
    ];
    // 19 MiB missing: partitions 2 (Windows itself: its start stays) and 3 (after it) can give
    // it, so partition 1 keeps its size although it has the most room.
    let plan = plan_shrink(&src, 172 * MIB, 512, &CopyOptions::default(), &facts)?;
    let l = plan.layout();
    assert_eq!(l.partition(1).map(|p| p.size), Some(100 * MIB));
    assert_eq!(
        l.partition(2).map(|p| p.start),
        src.partition(2).map(|p| p.start)
    );
    assert!(l.partition(2).map(|p| p.size) < Some(50 * MIB), "{plan}");
    assert!(!plan
        .changes()
        .iter()
        .any(|c| matches!(c, Change::WindowsStartMoved { .. })));
    // 71 MiB missing: partition 1 must shrink too, and Windows' start moves: said plainly.
    let plan = plan_shrink(&src, 120 * MIB, 512, &CopyOptions::default(), &facts)?;
    assert!(plan
        .changes()
        .contains(&Change::WindowsStartMoved { number: 2 }));
    assert!(plan.to_string().contains("will not boot until"), "{plan}");
    let target = dir.path().join("dst.img");
    fixture::sparse_file(&target, 120 * MIB)?;
    plan.write(&FileIo::open(&target, 512)?)?;
    let parts = sfdisk_parts(&target)?;
    assert_eq!(parts.len(), 3);
    assert_eq!(as_sfdisk(plan.layout()), parts);
    Ok(())
}

#[test]
fn a_disk_that_fits_is_planned_as_a_plain_copy() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = read(&system_gpt(dir.path())?)?;
    let plan = plan_shrink(&src, 200 * MIB, 512, &CopyOptions::default(), &[])?;
    assert_eq!(plan.layout().partitions, src.partitions);
    Ok(())
}

#[test]
fn mbr_logical_partitions_shrink_and_move_with_their_ebrs_inside_a_fitted_extended_partition(
) -> anyhow::Result<()> {
    // 2 primaries, then an extended partition holding logicals 5 (Linux, 80 MiB) and 6 (NTFS,
    // 60 MiB), as sfdisk lays them out (each EBR 1 MiB before its logical partition).
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("mbr.img");
    fixture::sparse_file(&img, 200 * MIB)?;
    fixture::sfdisk(
        &img,
        "label: dos\nlabel-id: 0x0badcafe\nstart=2048, size=8MiB, type=83, bootable\n\
         size=40MiB, type=83\ntype=5\nsize=80MiB, type=83\nsize=60MiB, type=7\n",
        512,
    )?;
    let src = read(&img)?;
    assert!(src.partition(6).is_some_and(|p| p.is_logical));
    let facts = [
        Shrinkable {
            number: 2,
            min_size: 30 * MIB,
        },
        Shrinkable {
            number: 5,
            min_size: 20 * MIB,
        },
        Shrinkable {
            number: 6,
            min_size: 20 * MIB,
        },
    ];
    // 120 MiB (60 %): the logical Linux partition shrinks, the Windows one after it moves down
    // (said plainly) or shrinks too.
    let target = dir.path().join("dst.img");
    fixture::sparse_file(&target, 120 * MIB)?;
    let plan = plan_shrink(&src, 120 * MIB, 512, &CopyOptions::default(), &facts)?;
    let l = plan.layout();
    let p5 = l.partition(5).cloned().expect("partition 5");
    let p6 = l.partition(6).cloned().expect("partition 6");
    assert!(p5.size < 80 * MIB, "{plan}");
    assert!(p6.start < src.partition(6).map_or(0, |p| p.start), "{plan}");
    assert!(plan
        .changes()
        .contains(&Change::WindowsStartMoved { number: 6 }));
    for p in &l.partitions {
        assert_eq!(p.start % MIB, 0, "partition {} is 1 MiB aligned", p.number);
    }
    plan.write(&FileIo::open(&target, 512)?)?;
    // sfdisk reads the same chain back: the extended partition from the first EBR to the end
    // of the last logical, each logical where the plan put it.
    let parts = sfdisk_parts(&target)?;
    assert_eq!(as_sfdisk(l), parts);
    let ext = parts.iter().find(|p| p.number == 3).expect("extended");
    assert_eq!(ext.kind, "5");
    assert_eq!(
        ext.start,
        p5.first_lba - 2048,
        "the first EBR 1 MiB before 5"
    );
    assert_eq!(ext.start + ext.size, p6.last_lba + 1);
    assert!((ext.start * 512) % MIB == 0);
    let back = read(&target)?;
    let TableKind::Mbr(m) = &back.kind else {
        panic!("not MBR: {back:?}")
    };
    assert_eq!(m.disk_signature, 0x0bad_cafe);
    let ebrs: Vec<(u64, Option<u32>)> = m.ebrs.iter().map(|e| (e.lba, e.logical)).collect();
    assert_eq!(
        ebrs,
        vec![
            (p5.first_lba - 2048, Some(5)),
            (p6.first_lba - 2048, Some(6))
        ]
    );
    let (code, out) = fixture::run_status("sfdisk", &["--verify", p(&target)])?;
    assert_eq!(code, 0, "sfdisk --verify: {out}");
    Ok(())
}

#[test]
fn mbr_with_an_empty_ebr_in_its_chain_is_refused_with_a_reason() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("mbr.img");
    fixture::sparse_file(&img, 100 * MIB)?;
    fixture::sfdisk(
        &img,
        "label: dos\nstart=2048, size=40MiB, type=83\ntype=5\nsize=20MiB, type=83\nsize=20MiB, type=83\n",
        512,
    )?;
    // Empty the first EBR's entry (as when a tool deletes the first logical partition but
    // keeps the chain): the chain still links to the second.
    let src = read(&img)?;
    let TableKind::Mbr(m) = &src.kind else {
        panic!("not MBR")
    };
    let first = m.ebrs[0].lba;
    fixture::poke(&img, first * 512 + 446, &[0u8; 16])?;
    let src = read(&img)?;
    let facts = [Shrinkable {
        number: 1,
        min_size: 5 * MIB,
    }];
    let err =
        plan_shrink(&src, 70 * MIB, 512, &CopyOptions::default(), &facts).expect_err("refused");
    assert!(
        matches!(&err, LayoutError::Unsupported { what, .. } if what.contains("no logical partition")),
        "{err}"
    );
    Ok(())
}
