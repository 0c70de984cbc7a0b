//! `lifeboat info DISK|PARTITION|FILE|IMAGE`: what a disk, partition, disk image file or
//! Lifeboat image holds. Labels, partition names, models, serials and paths recorded in images
//! come from disks that strangers wrote: the text form prints them through `disk::text`
//! (control and reordering characters escaped), `--json` leaves them to serde.

use anyhow::{Context, Result};
use disk::text::printable;
use engine::units::human as size;
use engine::{Content, DiskReport, PartitionReport};
use std::fmt::Write as _;
use std::path::Path;

pub fn run(target: &str, json: bool) -> Result<()> {
    let path = crate::resolve_target(target)?;
    let report =
        engine::inspect(&path).with_context(|| format!("inspecting {}", path.display()))?;
    let lvm = engine::lvm_volumes(&path, &report);
    if json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("lvm".to_string(), serde_json::to_value(&lvm)?);
        }
        crate::emit(&(serde_json::to_string_pretty(&v)? + "\n"))?;
    } else {
        let mut text = render(&report);
        for v in &lvm {
            text.push_str(&lvm_lines(v, ""));
        }
        if let Some(line) = device_line(&path) {
            let at = text.find('\n').map_or(text.len(), |i| i + 1);
            text.insert_str(at, &line);
        }
        crate::emit(&text)?;
    }
    Ok(())
}

/// `disk: <identity>` (or `partition N of <identity>`) when `path` is a block device the kernel
/// lists; `None` for files and devices discovery does not know.
fn device_line(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    if !std::fs::metadata(path).ok()?.file_type().is_block_device() {
        return None;
    }
    let opts = disk::DiscoverOptions {
        include_virtual: true,
        ..disk::DiscoverOptions::default()
    };
    let devices = disk::discover(&disk::SysRoot::default(), &opts).ok()?;
    let canonical = std::fs::canonicalize(path).ok()?;
    let same = |p: &Path| std::fs::canonicalize(p).is_ok_and(|c| c == canonical);
    devices.iter().find_map(|d| {
        let identity = d.identity();
        if same(&d.path) {
            // An md array: its level, name, UUID, state and members' disks.
            if let Some(a) = engine::md::array(d, &devices) {
                return Some(format!("array: {}\n", printable(&a.summary())));
            }
            return Some(format!("disk: {identity}\n"));
        }
        d.partitions
            .iter()
            .find(|p| same(&p.path))
            .map(|p| match p.number {
                Some(n) => format!("partition {n} of {}: {identity}\n", d.path.display()),
                None => format!("a partition of {}: {identity}\n", d.path.display()),
            })
    })
}

/// `lifeboat info IMAGE`: what a Lifeboat image holds, from its manifest.
pub fn image(image_path: &Path, json: bool) -> Result<()> {
    let img = crate::image_cmds::open_image(image_path)?;
    let m = img.manifest();
    if json {
        let v = serde_json::json!({
            "image": image_path.display().to_string(),
            "uuid": img.uuid(),
            "format": format!("{}.{}", img.format_version().0, img.format_version().1),
            "volumes": img.volume_names(),
            "chunk_size": img.chunk_size(),
            "encrypted": img.encrypted(),
            "manifest": m,
        });
        crate::emit(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        return Ok(());
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{}: Lifeboat image, format {}.{}, uuid {}, {} volume(s){}",
        printable(&image_path.to_string_lossy()),
        img.format_version().0,
        img.format_version().1,
        img.uuid(),
        img.volume_names().len(),
        if img.encrypted() {
            ", encrypted (AES-256-GCM)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        t,
        "made by {} on {}",
        printable(&m.tool_version),
        printable(&m.created)
    );
    let s = &m.source;
    let _ = writeln!(
        t,
        "source: {}, {}, {} ({} bytes), {}/{}-byte sectors",
        printable(&s.path),
        disk::text::identity(None, Some(&s.model), Some(&s.serial), None),
        size(s.size),
        s.size,
        s.logical_sector_size,
        s.physical_sector_size
    );
    let _ = writeln!(
        t,
        "partition table: {}{}",
        printable(&m.table.kind),
        if m.table.disk_id.is_empty() {
            String::new()
        } else {
            format!(" ({})", printable(&m.table.disk_id))
        }
    );
    let _ = writeln!(
        t,
        "{:>3}  {:>12}  {:>10}  {:<8} {:<16} {:<16} {:>10}  {:<11} TYPE",
        "#", "START", "SIZE", "FS", "NAME", "LABEL", "USED", "MODE"
    );
    for p in &m.partitions {
        let _ = writeln!(
            t,
            "{:>3}  {:>12}  {:>10}  {:<8} {:<16} {:<16} {:>10}  {:<11} {}",
            p.number,
            p.start,
            size(p.size),
            if p.fs.is_empty() {
                "-".into()
            } else {
                printable(&p.fs)
            },
            truncate(&printable(&p.name), 16),
            printable(&p.label),
            size(p.used_bytes),
            p.mode.to_string(),
            printable(&p.part_type)
        );
        if !p.note.is_empty() {
            let _ = writeln!(t, "     note: {}", printable(&p.note));
        }
    }
    for r in &m.bad_sectors {
        let _ = writeln!(
            t,
            "unreadable at backup time: {} bytes at byte {}",
            r.len, r.offset
        );
    }
    for n in &m.notes {
        let _ = writeln!(t, "note: {}", printable(n));
    }
    crate::emit(&t)
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
        printable(&r.path),
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
                let _ = writeln!(out, "warning: {}", printable(w));
            }
            out.push_str(&partition_table(partitions));
        }
        Content::FileSystem { fs, .. } => {
            let _ = writeln!(out, "no partition table: a bare file system (a partition)");
            let _ = writeln!(out, "file system: {}", fs_line(Some(fs)));
            for w in &fs.warnings {
                let _ = writeln!(out, "warning: {}", printable(w));
            }
        }
        Content::Unknown => {
            let _ = writeln!(out, "no partition table and no known file system");
        }
        Content::Unreadable { error } => {
            let _ = writeln!(out, "partition table unreadable: {}", printable(error));
        }
    }
    out
}

/// An LVM2 PV and its LVs: `LVM2 PV (partition 2): VG vg0 ...`, then one line per LV with its
/// size, layout, file system and what a backup stores of it. Each line starts with `indent`.
pub(crate) fn lvm_lines(v: &engine::LvmVolume, indent: &str) -> String {
    let mut out = String::new();
    let whr = match v.partition {
        Some(n) => format!("partition {n}"),
        None => "whole device".to_string(),
    };
    let Some(r) = &v.pv else {
        let e = v.error.as_deref().unwrap_or("unknown error");
        let _ = writeln!(
            out,
            "{indent}LVM2 PV ({whr}): metadata unreadable: {}",
            printable(e)
        );
        return out;
    };
    let pv = &r.pv;
    let _ = writeln!(
        out,
        "{indent}LVM2 PV ({whr}) uuid {}: VG {} uuid {}, {} PV(s), {} extents of {} from {}, {} LV(s)",
        printable(&pv.uuid),
        printable(&pv.vg_name),
        printable(&pv.vg_uuid),
        pv.pv_count,
        pv.pe_count,
        size(pv.extent_size),
        size(pv.pe_start),
        r.lvs.len()
    );
    for lv in &r.lvs {
        let keep = match &lv.note {
            Some(n) => format!("imaged whole ({})", printable(n)),
            None => format!("{} to store", size(lv.stored)),
        };
        let _ = writeln!(
            out,
            "{indent}  LV {:<16} {:>10}  {:<10} {}{}; {keep}",
            printable(&lv.name),
            size(lv.size),
            printable(&lv.layout),
            fs_line(lv.fs.as_ref()),
            if lv.visible { "" } else { " (hidden)" },
        );
    }
    out
}

fn fs_line(fs: Option<&fs::FsInfo>) -> String {
    match fs {
        None => "-".to_string(),
        Some(fs) => {
            let mut s = fs.kind.name().to_string();
            if let Some(v) = &fs.version {
                let _ = write!(s, " ({})", printable(v));
            }
            if let Some(l) = &fs.label {
                let _ = write!(s, " label \"{}\"", printable(l));
            }
            if let Some(u) = &fs.uuid {
                let _ = write!(s, " uuid {}", printable(u));
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
            } else if let Some(st) = fs.state.as_deref().filter(|st| *st != "clean") {
                // e.g. a hibernated Windows volume or a hibernation image over swap.
                let _ = write!(s, ", {}", printable(st));
            }
            if let Some(d) = &fs.detail {
                let _ = write!(s, "; {}", printable(d));
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
                printable(f.label.as_deref().unwrap_or_default()).into_owned(),
                printable(f.uuid.as_deref().unwrap_or_default()).into_owned(),
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
            truncate(&printable(&p.name), 10),
            fs,
            label,
            uuid
        );
        if let Some(d) = p.fs.as_ref().and_then(|f| f.detail.as_ref()) {
            let _ = writeln!(
                out,
                "     {} {}: {}",
                p.fs.as_ref().map_or("", |f| f.kind.name()),
                p.fs.as_ref()
                    .and_then(|f| f.version.as_deref())
                    .map(printable)
                    .unwrap_or_default(),
                printable(d)
            );
        }
        if let Some(e) = &p.fs_error {
            let _ = writeln!(
                out,
                "     warning: partition {}: {}",
                p.number,
                printable(e)
            );
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
