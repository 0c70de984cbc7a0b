//! `lifeboat clone SOURCE TARGET` and `lifeboat copy SOURCE-PARTITION TARGET-PARTITION`.

use crate::jobs;
use anyhow::{Context, Result};
use disk::{BlockIo, FileDisk, Window};
use engine::clone::{CloneOptions, GrowFs, JobReport};
use engine::rescue::ReadPolicy;
use std::path::Path;

/// Options shared by clone and copy.
#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    /// Read back what was written and compare it with the source.
    #[arg(long)]
    pub verify: bool,
    /// Stop at the first unreadable source sector instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (scripts).
    #[arg(long)]
    pub yes: bool,
    /// Progress and result as JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// Exit code of a finished job: 3 when sectors were skipped.
fn finish(report: &JobReport, extra: &[String], json: bool) -> Result<u8> {
    let code = if report.bad_sectors.is_empty() {
        0
    } else {
        crate::exit::BAD_SECTORS
    };
    if json {
        let line = serde_json::json!({ "event": "done", "report": report, "notes": extra });
        crate::emit(&(line.to_string() + "\n"))?;
    } else {
        let mut text = format!(
            "done: {} copied in {:.1} s{}\n",
            engine::units::human(report.bytes_copied),
            report.seconds,
            if report.verified { ", verified" } else { "" }
        );
        for n in report.notes.iter().chain(extra) {
            text.push_str(&format!("note: {n}\n"));
        }
        for r in &report.bad_sectors.ranges {
            text.push_str(&format!(
                "unreadable: {} bytes at byte {}\n",
                r.len, r.offset
            ));
        }
        crate::emit(&text)?;
    }
    Ok(code)
}

pub fn clone(
    source: &str,
    target: &str,
    grow_last: bool,
    new_ids: bool,
    args: &WriteArgs,
) -> Result<u8> {
    let source = crate::resolve_target(source)?;
    let target = crate::resolve_target(target)?;
    let devices = disk::discover(&disk::SysRoot::default(), &disk::DiscoverOptions::default())?;
    let checked = engine::safety::check_target(&target, &[&source], &devices)?;
    let src = FileDisk::open_read(&source)?;
    let opts = CloneOptions {
        grow_last,
        new_ids,
        verify: args.verify,
        read: ReadPolicy {
            strict: args.strict,
        },
    };
    let is_block = checked.device.is_some();
    let target_sector = if is_block {
        Some(FileDisk::open_read(&target)?.logical_sector_size())
    } else {
        None
    };
    let plan = engine::clone::plan_clone(
        &src,
        &target.display().to_string(),
        checked.size,
        target_sector,
        &opts,
    )
    .with_context(|| {
        format!(
            "planning the clone of {} to {}",
            source.display(),
            target.display()
        )
    })?;
    let src = if is_block {
        src
    } else {
        let ss = plan.source_layout.sector_size;
        FileDisk::open_read(&source)?.with_sector_size(ss, ss)?
    };
    jobs::emit_plan(&plan.to_string(), args.json)?;
    if args.dry_run {
        return Ok(0);
    }
    jobs::confirm("EVERYTHING ON THIS DISK", &checked.identity, args.yes)?;
    let consent = jobs::consent(&target, &checked.identity, args.yes);
    let ss = plan.table.layout().sector_size;
    let dst = FileDisk::open_write(&target, &consent)?;
    let dst = if is_block {
        dst
    } else {
        dst.with_sector_size(ss, ss)?
    };
    let cancel = jobs::cancel_on_ctrl_c();
    let printer = jobs::progress_printer(args.json);
    let report =
        engine::clone::execute_clone(&plan, &src, &dst, &opts, printer.as_deref(), &cancel)?;
    let mut notes = Vec::new();
    if is_block {
        if let Err(e) = dst.reread_partitions() {
            notes.push(format!(
                "the kernel did not re-read the new partition table ({e}): reboot before using it"
            ));
        }
    }
    drop(dst);
    if let Some(grow) = &plan.grow {
        notes.push(grow_last_fs(grow, &plan, &target, is_block)?);
    }
    finish(&report, &notes, args.json)
}

fn grow_last_fs(
    grow: &GrowFs,
    plan: &engine::clone::ClonePlan,
    target: &Path,
    is_block: bool,
) -> Result<String> {
    let at = engine::grow::locate(
        &disk::SysRoot::default(),
        target,
        plan.table.layout(),
        grow.number(),
        is_block,
    )?;
    Ok(engine::grow::grow_filesystem(grow, &at)?)
}

/// Opens `path` read-only, as the whole object or as partition `part` of a disk image.
fn open_part(path: &Path, part: Option<u32>) -> Result<(FileDisk, u64, u64)> {
    let io = FileDisk::open_read(path)?;
    match part {
        None => {
            let len = io.len();
            Ok((io, 0, len))
        }
        Some(n) => {
            let layout = layout::read(&io)
                .with_context(|| format!("reading the partition table of {}", path.display()))?;
            let p = layout
                .partition(n)
                .with_context(|| format!("{} has no partition {n}", path.display()))?;
            Ok((io, p.start, p.size))
        }
    }
}

pub fn copy(
    source: &str,
    target: &str,
    part: Option<u32>,
    to_part: Option<u32>,
    new_partition: bool,
    args: &WriteArgs,
) -> Result<u8> {
    let source = crate::resolve_target(source)?;
    let target = crate::resolve_target(target)?;
    let devices = disk::discover(&disk::SysRoot::default(), &disk::DiscoverOptions::default())?;
    let checked = engine::safety::check_target(&target, &[&source], &devices)?;
    let (src_io, src_start, src_len) = open_part(&source, part)?;
    if new_partition {
        return copy_into_free_space(
            &source, &src_io, src_start, src_len, part, &target, &checked, args,
        );
    }
    let (_, dst_start, dst_len) = open_part(&target, to_part)?;
    let src = Window::new(&src_io, src_start, src_len)?;
    let target_name = match to_part {
        Some(n) => format!("partition {n} of {}", target.display()),
        None => target.display().to_string(),
    };
    let plan = engine::clone::plan_copy_partition(&src, &target_name, dst_len)?;
    let opts = CloneOptions {
        grow_last: false,
        new_ids: false,
        verify: args.verify,
        read: ReadPolicy {
            strict: args.strict,
        },
    };
    jobs::emit_plan(&plan.to_string(), args.json)?;
    if args.dry_run {
        return Ok(0);
    }
    let identity = match to_part {
        Some(n) => format!("partition {n} of {}", checked.identity),
        None => checked.identity.clone(),
    };
    jobs::confirm("EVERYTHING ON THIS PARTITION", &identity, args.yes)?;
    let consent = jobs::consent(&target, &identity, args.yes);
    let dst_io = FileDisk::open_write(&target, &consent)?;
    let dst = Window::new(&dst_io, dst_start, dst_len)?;
    let cancel = jobs::cancel_on_ctrl_c();
    let printer = jobs::progress_printer(args.json);
    let report = engine::clone::execute_copy_partition(
        &plan,
        &src,
        &dst,
        &opts,
        printer.as_deref(),
        &cancel,
    )?;
    finish(&report, &[], args.json)
}

/// `copy SRC DISK --new-partition`: the partition lands in the first free space of DISK large
/// enough for it, and its table entry is written after the data.
#[allow(clippy::too_many_arguments)]
fn copy_into_free_space(
    source: &Path,
    src_io: &FileDisk,
    src_start: u64,
    src_len: u64,
    part: Option<u32>,
    target: &Path,
    checked: &engine::safety::CheckedTarget,
    args: &WriteArgs,
) -> Result<u8> {
    let t = FileDisk::open_read(target)?;
    let layout = layout::read(&t)
        .with_context(|| format!("reading the partition table of {}", target.display()))?;
    let src = Window::new(src_io, src_start, src_len)?;
    let kind = partition_type_for(source, src_io, part, &src, &layout)?;
    let (start, size) = engine::clone::find_free_space(&layout, src_len).with_context(|| {
        format!(
            "{} has no free space of {} for the partition",
            target.display(),
            engine::units::human(src_len)
        )
    })?;
    let table = layout::add_partition(&layout, start, size, kind, "")?;
    let number = table
        .layout()
        .partitions
        .iter()
        .find(|p| p.start == start)
        .map(|p| p.number)
        .unwrap_or(0);
    let plan = engine::clone::plan_copy_partition(
        &src,
        &format!("new partition {number} of {}", target.display()),
        size,
    )?;
    let text = format!("{plan}then add partition {number} to the table:\n{table}");
    jobs::emit_plan(&text, args.json)?;
    if args.dry_run {
        return Ok(0);
    }
    jobs::confirm(
        "FREE SPACE AND THE PARTITION TABLE OF THIS DISK",
        &checked.identity,
        args.yes,
    )?;
    let consent = jobs::consent(target, &checked.identity, args.yes);
    let dst_io = FileDisk::open_write(target, &consent)?;
    let ss = layout.sector_size;
    let dst_io = if checked.device.is_some() {
        dst_io
    } else {
        dst_io.with_sector_size(ss, ss)?
    };
    let dst = Window::new(&dst_io, start, size)?;
    let opts = CloneOptions {
        grow_last: false,
        new_ids: false,
        verify: args.verify,
        read: ReadPolicy {
            strict: args.strict,
        },
    };
    let cancel = jobs::cancel_on_ctrl_c();
    let printer = jobs::progress_printer(args.json);
    let report = engine::clone::execute_copy_partition(
        &plan,
        &src,
        &dst,
        &opts,
        printer.as_deref(),
        &cancel,
    )?;
    table.write(&dst_io)?;
    dst_io.flush()?;
    let mut notes = vec![format!("partition {number} added at byte {start}")];
    if checked.device.is_some() {
        if let Err(e) = dst_io.reread_partitions() {
            notes.push(format!(
                "the kernel did not re-read the new partition table ({e}): reboot before using it"
            ));
        }
    }
    finish(&report, &notes, args.json)
}

/// The new partition's type: the source partition's when both tables are of one kind, else
/// what its file system calls for.
fn partition_type_for(
    source: &Path,
    src_io: &FileDisk,
    part: Option<u32>,
    src: &Window<'_, FileDisk>,
    target: &layout::Layout,
) -> Result<layout::PartitionType> {
    use layout::{PartitionType, TableKind};
    if let Some(n) = part {
        let l = layout::read(src_io).with_context(|| format!("reading {}", source.display()))?;
        if let Some(p) = l.partition(n) {
            match (&target.kind, p.kind) {
                (TableKind::Gpt(_), PartitionType::Gpt(g)) => return Ok(PartitionType::Gpt(g)),
                (TableKind::Mbr(_), PartitionType::Mbr(b)) => return Ok(PartitionType::Mbr(b)),
                _ => {}
            }
        }
    }
    let fs = fs::probe(src).ok().flatten().map(|f| f.kind);
    let windows = matches!(
        fs,
        Some(fs::FsKind::Vfat | fs::FsKind::Ntfs | fs::FsKind::Exfat)
    );
    let swap = matches!(fs, Some(fs::FsKind::Swap));
    Ok(match (&target.kind, windows, swap) {
        (TableKind::Gpt(_), true, _) => PartitionType::Gpt(layout::gpt_types::MICROSOFT_BASIC_DATA),
        (TableKind::Gpt(_), _, true) => PartitionType::Gpt(layout::gpt_types::LINUX_SWAP),
        (TableKind::Gpt(_), _, _) => PartitionType::Gpt(layout::gpt_types::LINUX_FILESYSTEM),
        (_, true, _) => PartitionType::Mbr(if fs == Some(fs::FsKind::Vfat) {
            0x0c
        } else {
            0x07
        }),
        (_, _, true) => PartitionType::Mbr(0x82),
        _ => PartitionType::Mbr(0x83),
    })
}
