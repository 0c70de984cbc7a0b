//! `lifeboat list`: every disk with its partitions, file systems, labels, sizes and mount state.

use anyhow::{Context, Result};
use disk::{BlockDevice, DiscoverOptions, SysRoot};
use engine::units::human as size;
use engine::{Content, DiskReport};
use serde::Serialize;
use std::fmt::Write as _;

/// One disk as `list --json` prints it: the kernel's view plus what is on it.
#[derive(Debug, Serialize)]
struct ListedDisk {
    #[serde(flatten)]
    device: BlockDevice,
    /// `gpt`, `mbr`, `none` (bare file system or empty) or `?` (could not be read).
    table: String,
    /// Why the device must not be written, if anything uses it.
    in_use: Option<String>,
    /// What the disk holds, when it could be read.
    content: Option<DiskReport>,
    /// Why the content could not be read.
    error: Option<String>,
}

pub fn run(json: bool, all: bool) -> Result<()> {
    let opts = DiscoverOptions {
        include_virtual: all,
        ..DiscoverOptions::default()
    };
    let devices = disk::discover(&SysRoot::default(), &opts).context("listing block devices")?;
    let listed: Vec<ListedDisk> = devices.into_iter().map(examine).collect();
    if json {
        crate::emit(&(serde_json::to_string_pretty(&listed)? + "\n"))?;
    } else {
        crate::emit(&render(&listed))?;
    }
    Ok(())
}

fn examine(device: BlockDevice) -> ListedDisk {
    let in_use = device.in_use();
    let (content, error) = if device.size == 0 {
        (None, Some("no medium".to_string()))
    } else {
        match engine::inspect(&device.path) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let table = match content.as_ref().map(|c| &c.content) {
        Some(Content::Table { table, .. }) => table.clone(),
        Some(Content::FileSystem { .. }) | Some(Content::Unknown) => "none".to_string(),
        Some(Content::Unreadable { .. }) | None => "?".to_string(),
    };
    ListedDisk {
        device,
        table,
        in_use,
        content,
        error,
    }
}

fn render(disks: &[ListedDisk]) -> String {
    let mut out = String::new();
    if disks.is_empty() {
        out.push_str("no disks found\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<14} {:>9}  {:<7} {:<6} MODEL / SERIAL / STATE",
        "DEVICE", "SIZE", "TRAN", "TABLE"
    );
    for d in disks {
        let dev = &d.device;
        let model = dev.model.as_deref().unwrap_or("unknown model");
        let serial = dev
            .serial
            .as_deref()
            .map(|s| format!("serial {s}"))
            .unwrap_or_else(|| "no serial".into());
        let mut state = Vec::new();
        if dev.is_boot_medium {
            state.push("BOOT MEDIUM".to_string());
        }
        if dev.read_only == Some(true) {
            state.push("read-only".to_string());
        }
        if dev.removable == Some(true) {
            state.push("removable".to_string());
        }
        for m in &dev.mount_points {
            state.push(format!("mounted {}", m.display()));
        }
        let _ = writeln!(
            out,
            "{:<14} {:>9}  {:<7} {:<6} {model}, {serial}{}",
            dev.path.display(),
            size(dev.size),
            dev.transport.to_string(),
            d.table,
            if state.is_empty() {
                String::new()
            } else {
                format!(" [{}]", state.join(", "))
            }
        );
        if let Some(e) = &d.error {
            let _ = writeln!(out, "  (cannot read: {e})");
        }
        render_partitions(&mut out, d);
    }
    out
}

fn render_partitions(out: &mut String, d: &ListedDisk) {
    let report_parts = d.content.as_ref().map(|c| c.partitions()).unwrap_or(&[]);
    // A bare file system on the whole disk (a stick formatted without a table).
    if let Some(Content::FileSystem { fs }) = d.content.as_ref().map(|c| &c.content) {
        let _ = writeln!(
            out,
            "  (whole disk) {:<7} {}",
            fs.kind.name(),
            fs.label.as_deref().unwrap_or("")
        );
    }
    // The kernel's partitions, with what the table and the file system say about each.
    let mut numbers: Vec<u32> = d
        .device
        .partitions
        .iter()
        .filter_map(|p| p.number)
        .collect();
    for p in report_parts {
        if !numbers.contains(&p.number) {
            numbers.push(p.number);
        }
    }
    numbers.sort_unstable();
    for n in numbers {
        let kp = d.device.partitions.iter().find(|p| p.number == Some(n));
        let rp = report_parts.iter().find(|p| p.number == n);
        let name = kp
            .map(|p| p.path.display().to_string())
            .unwrap_or_else(|| format!("  #{n}"));
        let psize = rp.map(|p| p.size).or(kp.and_then(|p| p.size)).unwrap_or(0);
        let (fs, label) = match rp.and_then(|p| p.fs.as_ref()) {
            Some(f) => (
                f.kind.name().to_string(),
                f.label.clone().unwrap_or_default(),
            ),
            None if rp.is_some_and(|p| p.extended) => ("extended".to_string(), String::new()),
            None => ("-".to_string(), String::new()),
        };
        let mut state = Vec::new();
        if let Some(kp) = kp {
            for m in &kp.mount_points {
                state.push(format!("mounted {}", m.display()));
            }
            if kp.swap {
                state.push("swap on".to_string());
            }
            for h in &kp.holders {
                state.push(format!("held by {h}"));
            }
        } else {
            state.push("not known to the kernel".to_string());
        }
        let _ = writeln!(
            out,
            "  {:<12} {:>9}  {:<13} {:<16} {}",
            name,
            size(psize),
            fs,
            label,
            state.join(", ")
        );
    }
}
