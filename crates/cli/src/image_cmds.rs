//! `lifeboat backup`, `restore`, `verify` and the image part of `info`.

use crate::clone::WriteArgs;
use crate::jobs;
use anyhow::{bail, Context, Result};
use disk::{BlockIo, FileDisk, Window};
use engine::backup::{BackupOptions, SourceIdentity};
use engine::restore::RestoreOptions;
use engine::units::human;
use image::ImageReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `4G`, `700M`, `4GiB`, `650MB`, `1048576` → bytes (binary units).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &t[digits.len()..];
    let n: f64 = digits
        .parse()
        .with_context(|| format!("`{text}` is not a size (like 4G or 700M)"))?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => bail!("`{text}`: unknown unit `{unit}` (use K, M, G or T)"),
    };
    let v = n * mult as f64;
    if !(v >= 1.0 && v < u64::MAX as f64) {
        bail!("`{text}` is not a usable size");
    }
    Ok(v as u64)
}

/// True when `path` starts with the `.lbi` volume magic (so `info` shows the manifest).
pub fn looks_like_image(path: &Path) -> bool {
    let Ok(io) = FileDisk::open_read(path) else {
        return false;
    };
    let mut magic = [0u8; 8];
    io.len() >= 8 && io.read_at(&mut magic, 0).is_ok() && magic == image::format::VOLUME_MAGIC
}

pub fn open_image(path: &Path) -> Result<Arc<ImageReader>> {
    let r =
        ImageReader::open(path).with_context(|| format!("opening the image {}", path.display()))?;
    Ok(Arc::new(r))
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Back up only this partition of a disk.
    #[arg(long)]
    pub part: Option<u32>,
    /// zstd compression level, 1 (fastest) to 19 (smallest).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// Split the image into volumes of at most this size (e.g. 4G for FAT32 drives).
    #[arg(long, value_parser = parse_size)]
    pub split: Option<u64>,
    /// Compression threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Stop at the first unreadable source sector instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Image large unpartitioned areas whole (by default only their first and last MiB).
    #[arg(long)]
    pub all_unpartitioned: bool,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Progress and result as JSON lines.
    #[arg(long)]
    pub json: bool,
}

pub fn backup(source: &str, image_path: &Path, args: &BackupArgs) -> Result<u8> {
    let source = crate::resolve_target(source)?;
    if image_path.exists() {
        bail!(
            "{} exists: choose another name or remove it first (images are never overwritten)",
            image_path.display()
        );
    }
    let devices = disk::discover(&disk::SysRoot::default(), &disk::DiscoverOptions::default())?;
    engine::safety::check_image_destination(image_path, &source, &devices)?;
    let src = FileDisk::open_read(&source)?;
    let identity = src
        .dev_num()
        .and_then(|dev| {
            devices
                .iter()
                .find(|d| d.dev == Some(dev) || d.partitions.iter().any(|p| p.dev == Some(dev)))
        })
        .map(|d| SourceIdentity {
            model: d.model.clone().unwrap_or_default(),
            serial: d.serial.clone().unwrap_or_default(),
        })
        .unwrap_or_default();
    let mut plan = engine::backup::plan_backup(&src, identity, image_path, args.part)?;
    if args.all_unpartitioned {
        plan = plan.with_all_unpartitioned();
    }
    // A 4K-sector disk image file: read it with the sector size its table uses.
    let src = match (&plan.layout, src.is_block_device()) {
        (Some(l), false) if l.sector_size != src.logical_sector_size() => {
            FileDisk::open_read(&source)?.with_sector_size(l.sector_size, l.sector_size)?
        }
        _ => src,
    };
    jobs::emit_plan(&plan.to_string(), args.json)?;
    if args.dry_run {
        return Ok(0);
    }
    // Small volumes take smaller chunks: a chunk never straddles two volumes.
    let chunk_size = match args.split {
        Some(split) if split < 64 << 20 => {
            let want = (split / 8).clamp(64 << 10, 4 << 20);
            1u32 << (63 - want.leading_zeros())
        }
        _ => image::DEFAULT_CHUNK_SIZE,
    };
    let opts = BackupOptions {
        level: args.level,
        split: args.split,
        chunk_size,
        read: engine::rescue::ReadPolicy {
            strict: args.strict,
        },
        threads: args.threads,
    };
    let cancel = jobs::cancel_on_ctrl_c();
    let printer = jobs::progress_printer(args.json);
    let report = engine::backup::execute_backup(&plan, &src, &opts, printer.as_deref(), &cancel)?;
    let code = if report.bad_sectors.is_empty() {
        0
    } else {
        crate::exit::BAD_SECTORS
    };
    if args.json {
        crate::emit(
            &(serde_json::json!({ "event": "done", "report": report }).to_string() + "\n"),
        )?;
    } else {
        let mut text = format!(
            "done: read {} in {:.1} s, image {} ({} volume{})\n",
            human(report.bytes_read),
            report.seconds,
            human(report.bytes_written),
            report.volumes.len(),
            if report.volumes.len() == 1 { "" } else { "s" }
        );
        for n in &report.notes {
            text.push_str(&format!("note: {n}\n"));
        }
        if !report.bad_sectors.is_empty() {
            let map = image_path.with_extension("badsectors");
            std::fs::write(&map, report.bad_sectors.to_ddrescue(plan.source_len))
                .with_context(|| format!("writing {}", map.display()))?;
            text.push_str(&format!(
                "bad-sector map (ddrescue format): {}\n",
                map.display()
            ));
            for r in &report.bad_sectors.ranges {
                text.push_str(&format!(
                    "unreadable: {} bytes at byte {}\n",
                    r.len, r.offset
                ));
            }
        }
        crate::emit(&text)?;
    }
    Ok(code)
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Restore only this partition of the image (into TARGET, a partition).
    #[arg(long)]
    pub part: Option<u32>,
    /// TARGET is a disk image file: restore into its partition N.
    #[arg(long)]
    pub to_part: Option<u32>,
    /// Grow the last partition (and its ext4/NTFS file system) to the end of a larger disk.
    #[arg(long)]
    pub grow_last: bool,
    /// New disk and partition GUIDs / MBR signature.
    #[arg(long)]
    pub new_ids: bool,
    /// TRIM the blocks the file systems do not use.
    #[arg(long)]
    pub discard: bool,
    #[command(flatten)]
    pub common: WriteArgs,
}

pub fn restore(image_path: &Path, target: &str, args: &RestoreArgs) -> Result<u8> {
    let img = open_image(image_path)?;
    let target = crate::resolve_target(target)?;
    let devices = disk::discover(&disk::SysRoot::default(), &disk::DiscoverOptions::default())?;
    let checked = engine::safety::check_target(&target, &[], &devices)?;
    let is_block = checked.device.is_some();
    let m = img.manifest();
    let partition_restore = args.part.is_some()
        || m.table.kind == "none"
        || checked.partition.is_some()
        || args.to_part.is_some();
    let opts = RestoreOptions {
        grow_last: args.grow_last,
        new_ids: args.new_ids,
        verify: args.common.verify,
        discard: args.discard,
        threads: 0,
    };
    let t = FileDisk::open_read(&target)?;
    let (dst_start, dst_len) = match args.to_part {
        Some(n) => {
            let l = layout::read(&t)
                .with_context(|| format!("reading the partition table of {}", target.display()))?;
            let p = l
                .partition(n)
                .with_context(|| format!("{} has no partition {n}", target.display()))?;
            (p.start, p.size)
        }
        None => (0, t.len()),
    };
    let plan = if partition_restore {
        let name = match args.to_part {
            Some(n) => format!("partition {n} of {}", target.display()),
            None => target.display().to_string(),
        };
        engine::restore::plan_restore_partition(&img, args.part, &name, dst_len)?
    } else {
        let sector = if is_block {
            Some(t.logical_sector_size())
        } else {
            None
        };
        let mut plan = engine::restore::plan_restore_disk(
            &img,
            &target.display().to_string(),
            dst_len,
            sector,
            &opts,
        )?;
        if let Some(dev) = &checked.device {
            let same = dev.serial.as_deref().unwrap_or("") == m.source.serial
                && !m.source.serial.is_empty();
            if !same && !m.source.model.is_empty() {
                plan.notes.push(format!(
                    "the image was made from {} (serial {}); the target is {}",
                    m.source.model,
                    m.source.serial,
                    dev.identity()
                ));
            }
        }
        plan
    };
    drop(t);
    jobs::emit_plan(&plan.to_string(), args.common.json)?;
    if args.common.dry_run {
        return Ok(0);
    }
    let identity = match args.to_part {
        Some(n) => format!("partition {n} of {}", checked.identity),
        None => checked.identity.clone(),
    };
    let what = if plan.table.is_some() {
        "EVERYTHING ON THIS DISK"
    } else {
        "EVERYTHING ON THIS PARTITION"
    };
    jobs::confirm(what, &identity, args.common.yes)?;
    let consent = jobs::consent(&target, &identity, args.common.yes);
    let dst = FileDisk::open_write(&target, &consent)?;
    let dst = match (&plan.table, is_block) {
        (Some(t), false) => dst.with_sector_size(t.layout().sector_size, t.layout().sector_size)?,
        _ => dst,
    };
    let window = Window::new(&dst, dst_start, dst_len)?;
    let cancel = jobs::cancel_on_ctrl_c();
    let printer = jobs::progress_printer(args.common.json);
    let report =
        engine::restore::execute_restore(&plan, &img, &window, &opts, printer.as_deref(), &cancel)?;
    let mut notes = report.notes.clone();
    if is_block && plan.table.is_some() {
        if let Err(e) = dst.reread_partitions() {
            notes.push(format!(
                "the kernel did not re-read the new partition table ({e}): reboot before using it"
            ));
        }
    }
    drop(dst);
    if let (Some(grow), Some(table)) = (&plan.grow, &plan.table) {
        let at = engine::grow::locate(
            &disk::SysRoot::default(),
            &target,
            table.layout(),
            grow.number(),
            is_block,
        )?;
        notes.push(engine::grow::grow_filesystem(grow, &at)?);
    }
    if args.common.json {
        crate::emit(
            &(serde_json::json!({ "event": "done", "report": report, "notes": notes }).to_string()
                + "\n"),
        )?;
    } else {
        let mut text = format!(
            "done: wrote {} in {:.1} s{}{}\n",
            human(report.bytes_written),
            report.seconds,
            if report.bytes_discarded > 0 {
                format!(", discarded {}", human(report.bytes_discarded))
            } else {
                String::new()
            },
            if report.verified { ", verified" } else { "" }
        );
        for n in &notes {
            text.push_str(&format!("note: {n}\n"));
        }
        crate::emit(&text)?;
    }
    Ok(0)
}

pub fn verify(image_path: &Path, json: bool, threads: usize) -> Result<u8> {
    let img = open_image(image_path)?;
    let threads = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        threads
    };
    let report = img.verify(threads);
    if json {
        let bad: Vec<String> = report.bad.iter().map(|b| b.to_string()).collect();
        let v = serde_json::json!({
            "image": image_path.display().to_string(),
            "ok": report.is_ok(),
            "chunks": report.chunks,
            "bytes": report.bytes,
            "bad_chunks": bad,
            "structure": report.structure,
        });
        crate::emit(&(v.to_string() + "\n"))?;
    } else {
        let mut text = format!(
            "{}: {} chunks, {} of data checked\n",
            image_path.display(),
            report.chunks,
            human(report.bytes)
        );
        for b in &report.bad {
            text.push_str(&format!("BAD: {b}\n"));
        }
        for s in &report.structure {
            text.push_str(&format!("BAD: {s}\n"));
        }
        text.push_str(if report.is_ok() {
            "image OK\n"
        } else {
            "image DAMAGED\n"
        });
        crate::emit(&text)?;
    }
    Ok(if report.is_ok() {
        0
    } else {
        crate::exit::FAILURE
    })
}

/// The path argument as given (images are files, not device specs).
pub fn image_arg(p: &str) -> PathBuf {
    PathBuf::from(p)
}
