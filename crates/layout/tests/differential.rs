//! Differential tests against the design card's table crates, `gpt` and `mbrman`: on every valid
//! GPT and MBR that sgdisk, sfdisk and fdisk make here (and the valid tables of the fuzz corpus),
//! `layout::read` agrees with both crates on every partition's number, first and last LBA, type,
//! GUID, name, attributes and boot flag; and every table `layout` writes (copies to larger disks,
//! grown, with new IDs, with an added partition) reads back identically through both crates,
//! passes `sgdisk -v` and matches `sfdisk --json`.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use common::*;
use layout::{plan_copy, CopyOptions, Layout, PartitionType, TableKind};
use qemu_tests::fixture;

/// One partition as every reader can describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    number: u32,
    first_lba: u64,
    last_lba: u64,
    kind: String,
    guid: Option<uuid::Uuid>,
    name: String,
    attributes: u64,
    bootable: bool,
}

fn read(img: &Path, sector: u32) -> Result<Layout> {
    Ok(layout::read(&FileIo::open(img, sector)?)?)
}

fn layout_rows(l: &Layout) -> Vec<Row> {
    l.partitions
        .iter()
        .map(|p| Row {
            number: p.number,
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            kind: match p.kind {
                PartitionType::Gpt(g) => g.to_string(),
                PartitionType::Mbr(b) => format!("{b:02x}"),
            },
            guid: p.guid,
            name: p.name.clone(),
            attributes: p.attributes,
            bootable: p.bootable,
        })
        .collect()
}

/// The partitions the `gpt` crate reads, and its disk GUID.
fn gpt_rows(img: &Path, sector: u32) -> Result<(Vec<Row>, uuid::Uuid)> {
    let lb = if sector == 4096 {
        gpt::disk::LogicalBlockSize::Lb4096
    } else {
        gpt::disk::LogicalBlockSize::Lb512
    };
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(lb)
        .open(img)
        .map_err(|e| anyhow::anyhow!("gpt crate cannot open {}: {e:?}", img.display()))?;
    let rows = disk
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(&n, p)| Row {
            number: n,
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            kind: p.part_type_guid.guid.to_string(),
            guid: Some(p.part_guid),
            name: p.name.clone(),
            attributes: p.flags,
            bootable: false,
        })
        .collect();
    Ok((rows, *disk.guid()))
}

/// The partitions (primaries 1–4, logicals from 5) the `mbrman` crate reads.
fn mbr_rows(img: &Path, sector: u32) -> Result<Vec<Row>> {
    let mut f = File::open(img)?;
    let mbr = mbrman::MBR::read_from(&mut f, sector)
        .map_err(|e| anyhow::anyhow!("mbrman cannot read {}: {e:?}", img.display()))?;
    Ok(mbr
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(n, p)| Row {
            number: n as u32,
            first_lba: u64::from(p.starting_lba),
            last_lba: u64::from(p.starting_lba) + u64::from(p.sectors) - 1,
            kind: format!("{:02x}", p.sys),
            guid: None,
            name: String::new(),
            attributes: 0,
            bootable: p.boot == 0x80,
        })
        .collect())
}

/// `layout`'s reading of `img` agrees with the crate that reads its kind of table; for a GPT
/// the protective MBR is also read by `mbrman` (one 0xEE entry).
fn agree(img: &Path, sector: u32) -> Result<Layout> {
    let l = read(img, sector)?;
    let ours = layout_rows(&l);
    match &l.kind {
        TableKind::Gpt(info) => {
            let (theirs, guid) = gpt_rows(img, sector)?;
            ensure!(
                ours == theirs,
                "{}: layout {ours:#?}\ngpt {theirs:#?}",
                img.display()
            );
            ensure!(
                info.disk_guid == guid,
                "{}: disk GUIDs differ",
                img.display()
            );
            let pmbr = mbr_rows(img, sector)?;
            ensure!(
                pmbr.iter().any(|r| r.kind == "ee"),
                "{}: no protective entry through mbrman: {pmbr:?}",
                img.display()
            );
        }
        TableKind::Mbr(_) => {
            let theirs = mbr_rows(img, sector)?;
            ensure!(
                ours == theirs,
                "{}: layout {ours:#?}\nmbrman {theirs:#?}",
                img.display()
            );
        }
        TableKind::None => anyhow::bail!("{}: no table read", img.display()),
    }
    Ok(l)
}

/// `sfdisk --json`'s partitions of `img` equal `l`'s (type GUIDs compared without case: sfdisk
/// prints them in capitals).
fn sfdisk_agrees(img: &Path, l: &Layout) -> Result<()> {
    let norm = |v: Vec<SfdiskPart>| -> Vec<(u32, u64, u64, String, bool)> {
        v.into_iter()
            .map(|p| (p.number, p.start, p.size, p.kind.to_lowercase(), p.bootable))
            .collect()
    };
    let theirs = norm(sfdisk_parts(img)?);
    let ours = norm(as_sfdisk(l));
    ensure!(
        theirs == ours,
        "{}: sfdisk --json {theirs:?}\nlayout {ours:?}",
        img.display()
    );
    Ok(())
}

fn sgdisk_verify_clean(img: &Path) -> Result<()> {
    let (code, out) = fixture::run_status("sgdisk", &["-v", p(img)])?;
    ensure!(
        code == 0 && out.contains("No problems found"),
        "sgdisk -v {}: {out}",
        img.display()
    );
    Ok(())
}

/// The tables the real tools make: GPT (sgdisk, with names and attributes, an empty entry),
/// GPT with 4096-byte sectors (fdisk), MBR with an EBR chain (sfdisk), a hybrid MBR (sgdisk -h).
fn tool_made(dir: &Path) -> Result<Vec<(PathBuf, u32)>> {
    let gpt = sgdisk_gpt(dir, "gpt.img", 64 * MIB)?;
    let gpt4k = fdisk_gpt_4k(dir, "gpt4k.img")?;
    let mbr = sfdisk_mbr(dir, "mbr.img")?;
    let hybrid = sgdisk_gpt(dir, "hybrid.img", 64 * MIB)?;
    fixture::run("sgdisk", &["-h", "3:EE", p(&hybrid)])?;
    let primaries = dir.join("primaries.img");
    fixture::sparse_file(&primaries, 64 * MIB)?;
    sfdisk_script(
        &primaries,
        "label: dos\nlabel-id: 0xdeadbeef\nstart=2048, size=20480, type=7, bootable\n\
         size=20480, type=83\nsize=8192, type=82\n",
        &[],
    )?;
    Ok(vec![
        (gpt, 512),
        (gpt4k, 4096),
        (mbr, 512),
        (hybrid, 512),
        (primaries, 512),
    ])
}

#[test]
fn reading_tool_made_tables_agrees_with_gpt_and_mbrman() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (img, sector) in tool_made(dir.path())? {
        let l = agree(&img, sector)?;
        ensure!(!l.partitions.is_empty(), "{}: no partitions", img.display());
    }
    Ok(())
}

#[test]
fn reading_the_valid_tables_of_the_fuzz_corpus_agrees_with_gpt_and_mbrman() -> Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/read_table");
    let dir = tempfile::tempdir()?;
    let mut valid = 0;
    for e in std::fs::read_dir(&corpus)? {
        let path = e?.path();
        let data = std::fs::read(&path)?;
        // The fuzz target's input: the first byte picks the sector size, the rest is the disk.
        let Some((&first, rest)) = data.split_first() else {
            continue;
        };
        let sector = if first & 1 == 0 { 512 } else { 4096 };
        let img = dir.path().join("disk");
        std::fs::write(&img, rest)?;
        let Ok(l) = read(&img, sector) else { continue };
        // Valid: no warning, and for a GPT both copies intact (a damaged table is another
        // test's business: the crates refuse or pick a copy silently).
        let clean = l.warnings.is_empty()
            && match &l.kind {
                TableKind::Gpt(info) => info.health.is_ok(),
                TableKind::Mbr(_) => true,
                TableKind::None => false,
            };
        if !clean {
            continue;
        }
        agree(&img, sector).with_context(|| format!("corpus file {}", path.display()))?;
        valid += 1;
    }
    ensure!(valid >= 2, "only {valid} valid tables in the corpus");
    Ok(())
}

#[test]
fn tables_layout_writes_read_back_identically_through_both_crates_and_the_tools() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let variants = [
        CopyOptions::default(),
        CopyOptions {
            grow_last: true,
            ..CopyOptions::default()
        },
        CopyOptions {
            new_ids: true,
            ..CopyOptions::default()
        },
    ];
    for (src_img, sector) in tool_made(dir.path())? {
        let src = read(&src_img, sector)?;
        for (i, opts) in variants.iter().enumerate() {
            let target = dir.path().join(format!(
                "{}-copy{i}.img",
                src_img.file_name().and_then(|n| n.to_str()).unwrap_or("t")
            ));
            fixture::sparse_file(&target, 96 * MIB)?;
            let plan = plan_copy(&src, 96 * MIB, sector, opts)?;
            plan.write(&FileIo::open(&target, sector)?)?;
            let back = agree(&target, sector)
                .with_context(|| format!("copy {i} of {}", src_img.display()))?;
            ensure!(
                layout_rows(&back) == layout_rows(plan.layout()),
                "{}: read back differs from the plan",
                target.display()
            );
            if sector == 512 {
                sfdisk_agrees(&target, &back)?;
            }
            if matches!(back.kind, TableKind::Gpt(_)) {
                sgdisk_verify_clean(&target)?;
            }
        }
    }
    // A partition added by layout, on both kinds of table.
    for (name, kind) in [
        (
            "gpt.img",
            PartitionType::Gpt(layout::gpt_types::LINUX_FILESYSTEM),
        ),
        ("primaries.img", PartitionType::Mbr(0x83)),
    ] {
        let img = dir.path().join(name);
        let l = read(&img, 512)?;
        let start = l.used_end().div_ceil(MIB) * MIB;
        let plan = layout::add_partition(&l, start, 4 * MIB, kind, "added")?;
        plan.write(&FileIo::open(&img, 512)?)?;
        let back = agree(&img, 512)?;
        ensure!(
            back.partitions.len() == l.partitions.len() + 1,
            "{name}: {:?}",
            back.partitions
        );
        sfdisk_agrees(&img, &back)?;
    }
    Ok(())
}
