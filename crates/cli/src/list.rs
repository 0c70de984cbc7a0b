//! `lifeboat list`: every disk with its partitions, file systems, labels, sizes and mount state.
//! Models, serials, labels and mount points come from the disks: they are printed through
//! `disk::text` (control and reordering characters escaped); `--json` leaves them to serde.

use anyhow::{Context, Result};
use disk::text::printable;
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
    /// LVM2 PVs on the disk with their VGs and LVs.
    lvm: Vec<engine::LvmVolume>,
    /// An md RAID array: its level, name, UUID, state and members with their disks.
    md: Option<engine::md::MdArray>,
}

pub fn run(json: bool, all: bool) -> Result<()> {
    let opts = DiscoverOptions {
        include_virtual: all,
        ..DiscoverOptions::default()
    };
    let devices = disk::discover(&SysRoot::default(), &opts).context("listing block devices")?;
    let arrays: Vec<Option<engine::md::MdArray>> = devices
        .iter()
        .map(|d| engine::md::array(d, &devices))
        .collect();
    let listed: Vec<ListedDisk> = devices
        .into_iter()
        .zip(arrays)
        .map(|(d, md)| examine(d, md))
        .collect();
    if json {
        crate::emit(&(serde_json::to_string_pretty(&listed)? + "\n"))?;
    } else {
        crate::emit(&render(&listed))?;
    }
    Ok(())
}

fn examine(device: BlockDevice, md: Option<engine::md::MdArray>) -> ListedDisk {
    let in_use = device.in_use();
    let (content, error) = if device.size == 0 {
        (None, Some("no medium".to_string()))
    } else {
        match engine::inspect(&device.path) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let lvm = content
        .as_ref()
        .map(|r| engine::lvm_volumes(&device.path, r))
        .unwrap_or_default();
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
        lvm,
        md,
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
        // An md array has no model or serial: its level and name say what it is.
        let identity = match &d.md {
            Some(a) => printable(&a.model()).into_owned(),
            None => disk::text::identity(
                dev.vendor.as_deref(),
                dev.model.as_deref(),
                dev.serial.as_deref(),
                None,
            ),
        };
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
            state.push(format!("mounted {}", printable(&m.to_string_lossy())));
        }
        let _ = writeln!(
            out,
            "{:<14} {:>9}  {:<7} {:<6} {identity}{}",
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
            let _ = writeln!(out, "  (cannot read: {})", printable(e));
        }
        if let Some(a) = &d.md {
            let _ = writeln!(out, "  {}", printable(&a.summary()));
        }
        render_partitions(&mut out, d);
    }
    out
}

fn render_partitions(out: &mut String, d: &ListedDisk) {
    let report_parts = d.content.as_ref().map(|c| c.partitions()).unwrap_or(&[]);
    // A bare file system on the whole disk (a stick formatted without a table).
    if let Some(Content::FileSystem { fs, .. }) = d.content.as_ref().map(|c| &c.content) {
        let _ = writeln!(
            out,
            "  (whole disk) {:<7} {}",
            fs.kind.name(),
            printable(fs.label.as_deref().unwrap_or(""))
        );
    }
    for v in d.lvm.iter().filter(|v| v.partition.is_none()) {
        out.push_str(&crate::info::lvm_lines(v, "    "));
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
                printable(f.label.as_deref().unwrap_or_default()).into_owned(),
            ),
            None if rp.is_some_and(|p| p.extended) => ("extended".to_string(), String::new()),
            None => ("-".to_string(), String::new()),
        };
        let mut state = Vec::new();
        if let Some(kp) = kp {
            for m in &kp.mount_points {
                state.push(format!("mounted {}", printable(&m.to_string_lossy())));
            }
            if kp.swap {
                state.push("swap on".to_string());
            }
            for h in &kp.holders {
                state.push(format!("held by {}", printable(h)));
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
        for v in d.lvm.iter().filter(|v| v.partition == Some(n)) {
            out.push_str(&crate::info::lvm_lines(v, "    "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use disk::{DeviceKind, Partition, Transport};
    use std::path::PathBuf;

    fn fs_labelled(label: &str) -> fs::FsInfo {
        fs::FsInfo {
            kind: fs::FsKind::Ext4,
            version: None,
            label: Some(label.to_string()),
            uuid: None,
            block_size: 4096,
            cluster_size: 0,
            size: 1 << 20,
            used: None,
            needs_check: false,
            state: None,
            warnings: Vec::new(),
            detail: None,
        }
    }

    #[test]
    fn models_serials_labels_and_mount_points_from_disks_are_escaped() {
        let device = BlockDevice {
            name: "sdz".into(),
            path: PathBuf::from("/dev/sdz"),
            dev: None,
            kind: DeviceKind::Disk,
            transport: Transport::Usb,
            model: Some("Stick\x1b[2J".into()),
            vendor: Some("ACME".into()),
            serial: Some("S\u{202e}1".into()),
            wwn: None,
            size: 1 << 30,
            logical_sector_size: 512,
            physical_sector_size: 512,
            rotational: None,
            removable: Some(true),
            read_only: None,
            discard: None,
            partitions: vec![Partition {
                name: "sdz1".into(),
                path: PathBuf::from("/dev/sdz1"),
                number: Some(1),
                dev: None,
                start: Some(1 << 20),
                size: Some(1 << 20),
                mount_points: vec![PathBuf::from("/media/\x1b]0;x\x07")],
                swap: false,
                holders: Vec::new(),
            }],
            mount_points: Vec::new(),
            swap: false,
            holders: Vec::new(),
            slaves: Vec::new(),
            is_boot_medium: false,
        };
        let bare = ListedDisk {
            device: device.clone(),
            table: "none".into(),
            in_use: None,
            content: Some(DiskReport {
                path: "/dev/sdz".into(),
                size: 1 << 30,
                logical_sector_size: 512,
                physical_sector_size: 512,
                content: Content::FileSystem {
                    fs: fs_labelled("L\x1b[31m\u{202e}X"),
                    used: None,
                },
            }),
            error: Some("odd\x1b[Hmessage".into()),
            lvm: Vec::new(),
            md: None,
        };
        let array = ListedDisk {
            device: BlockDevice {
                name: "md127".into(),
                path: PathBuf::from("/dev/md127"),
                model: None,
                vendor: None,
                serial: None,
                partitions: Vec::new(),
                ..device.clone()
            },
            table: "none".into(),
            in_use: None,
            content: None,
            error: None,
            lvm: Vec::new(),
            md: Some(engine::md::MdArray {
                device: "md127".into(),
                level: "raid5".into(),
                name: Some("h:\x1b[2Jr5".into()),
                uuid: Some("0a0b".into()),
                state: Some("readonly".into()),
                raid_disks: Some(3),
                degraded: Some(1),
                chunk_size: Some(512 << 10),
                metadata: Some("1.2".into()),
                members: vec![engine::md::ArrayMember {
                    device: "vdb1".into(),
                    disk: Some("vdb".into()),
                    identity: Some("QEMU HARDDISK, serial MDA".into()),
                    role: Some("device 0 of 3".into()),
                    slot: Some(0),
                }],
            }),
        };
        let text = render(&[bare, array]);
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(
            text.contains("ACME Stick\\x1b[2J, serial S\\u{202e}1 [removable]"),
            "{text}"
        );
        assert!(text.contains("L\\x1b[31m\\u{202e}X"), "{text}");
        assert!(text.contains("mounted /media/\\x1b]0;x\\x07"), "{text}");
        assert!(text.contains("(cannot read: odd\\x1b[Hmessage)"), "{text}");
        assert!(
            text.contains("/dev/md127")
                && text.contains("none   md RAID5 array \"h:\\x1b[2Jr5\" ["),
            "{text}"
        );
        assert!(
            text.contains(
                "  md RAID5 array \"h:\\x1b[2Jr5\", UUID 0a0b, 3 devices, DEGRADED: 1 missing, 512 KiB \
                 chunks, read-only; members: vdb1 (device 0 of 3) on QEMU HARDDISK, serial MDA"
            ),
            "{text}"
        );
        // JSON keeps the bytes, escaped the JSON way.
        let json = serde_json::to_string(&ListedDisk {
            device,
            table: "none".into(),
            in_use: None,
            content: None,
            error: None,
            lvm: Vec::new(),
            md: None,
        })
        .unwrap();
        assert!(json.contains("Stick\\u001b[2J"), "{json}");
    }
}
