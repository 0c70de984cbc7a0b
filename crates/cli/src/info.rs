//! `lifeboat info DISK|PARTITION|FILE`: what a disk, partition or disk image file holds.

use anyhow::{Context, Result};
use engine::units::human as size;
use engine::{Content, DiskReport, PartitionReport};
use std::fmt::Write as _;

pub fn run(target: &str, json: bool) -> Result<()> {
    let path = crate::resolve_target(target)?;
    let report =
        engine::inspect(&path).with_context(|| format!("inspecting {}", path.display()))?;
    if json {
        crate::emit(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        crate::emit(&render(&report))?;
    }
    Ok(())
}

/// The human form of a report.
pub fn render(r: &DiskReport) -> String {
    let mut out = String::new();
    let sectors = if r.logical_sector_size == r.physical_sector_size {
        format!("{}-byte sectors", r.logical_sector_size)
    } else {
        format!(
            "{}/{}-byte sectors",
            r.logical_sector_size, r.physical_sector_size
        )
    };
    let _ = writeln!(
        out,
        "{}: {} ({} bytes), {sectors}",
        r.path,
        size(r.size),
        r.size
    );
    match &r.content {
        Content::Table {
            table,
            id,
            sector_size,
            protective_mbr,
            partitions,
            warnings,
            ..
        } => {
            let what = match table.as_str() {
                "gpt" => format!("GPT, disk GUID {id}, {protective_mbr} MBR"),
                _ => format!("MBR, disk signature {id}"),
            };
            let _ = writeln!(out, "partition table: {what}, {sector_size}-byte sectors");
            for w in warnings {
                let _ = writeln!(out, "warning: {w}");
            }
            out.push_str(&partition_table(partitions));
        }
        Content::FileSystem { fs } => {
            let _ = writeln!(out, "no partition table: a bare file system (a partition)");
            let _ = writeln!(out, "file system: {}", fs_line(Some(fs)));
            for w in &fs.warnings {
                let _ = writeln!(out, "warning: {w}");
            }
        }
        Content::Unknown => {
            let _ = writeln!(out, "no partition table and no known file system");
        }
        Content::Unreadable { error } => {
            let _ = writeln!(out, "partition table unreadable: {error}");
        }
    }
    out
}

fn fs_line(fs: Option<&fs::FsInfo>) -> String {
    match fs {
        None => "-".to_string(),
        Some(fs) => {
            let mut s = fs.kind.name().to_string();
            if let Some(v) = &fs.version {
                let _ = write!(s, " ({v})");
            }
            if let Some(l) = &fs.label {
                let _ = write!(s, " label \"{l}\"");
            }
            if let Some(u) = &fs.uuid {
                let _ = write!(s, " uuid {u}");
            }
            if fs.size > 0 {
                let _ = write!(s, ", {}", size(fs.size));
            }
            if let Some(used) = fs.used {
                let _ = write!(s, ", {} used", size(used));
            }
            if fs.block_size > 0 {
                let _ = write!(s, ", {}-byte blocks", fs.block_size);
            }
            if fs.needs_check {
                s.push_str(", needs a check");
            }
            s
        }
    }
}

fn partition_table(parts: &[PartitionReport]) -> String {
    let mut out = String::new();
    if parts.is_empty() {
        out.push_str("no partitions\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:>3}  {:>12}  {:>12}  {:>9}  {:<24}  {:<10}  {:<7}  {:<16}  UUID",
        "#", "START", "END", "SIZE", "TYPE", "NAME", "FS", "LABEL"
    );
    for p in parts {
        let kind = p.type_name.split(" (").next().unwrap_or("").to_string();
        let mut flags = String::new();
        if p.bootable {
            flags.push('*');
        }
        if p.extended {
            flags.push_str("ext");
        }
        let (fs, label, uuid) = match &p.fs {
            Some(f) => (
                f.kind.name().to_string(),
                f.label.clone().unwrap_or_default(),
                f.uuid.clone().unwrap_or_default(),
            ),
            None if p.extended => (String::new(), String::new(), String::new()),
            None => ("-".to_string(), String::new(), String::new()),
        };
        let _ = writeln!(
            out,
            "{:>3}{:<2} {:>12}  {:>12}  {:>9}  {:<24}  {:<10}  {:<7}  {:<16}  {}",
            p.number,
            flags,
            p.first_lba,
            p.last_lba,
            size(p.size),
            truncate(&kind, 24),
            truncate(&p.name, 10),
            fs,
            truncate(&label, 16),
            uuid
        );
        if let Some(e) = &p.fs_error {
            let _ = writeln!(out, "     warning: partition {}: {e}", p.number);
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
