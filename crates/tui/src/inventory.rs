//! What discovery found, as the screens list it: disks with their reports, partition rows joined
//! with the kernel's view, and the endpoints (disk or partition) a job reads or writes. Plain data
//! and pure functions; names and labels read from disks are escaped with
//! [`disk::text::printable`] and disks are named with [`disk::text::identity`].

use crate::model::Model;
use disk::text::{identity, printable};
use disk::BlockDevice;
use engine::units::human;
use engine::{Content, DiskReport};
use fs::FsInfo;
use std::path::PathBuf;

/// One disk as the main screen shows it: what the kernel says and what the disk holds.
#[derive(Debug, Clone)]
pub struct DiskEntry {
    pub device: BlockDevice,
    /// The partition table and file systems, or why they could not be read.
    pub report: Result<DiskReport, String>,
}

/// The SMART overall health of a disk, from `smartctl -H -j`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmartHealth {
    Passed,
    Failed,
    /// The disk does not report SMART health (virtual disks, some USB bridges), with why.
    Unavailable(String),
}

/// A disk or partition a job reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The node that is opened: the disk, or the partition's own node.
    pub path: PathBuf,
    /// Where the object starts in `path` (0 unless it is a partition the kernel has no node for,
    /// which is then a window on the disk).
    pub offset: u64,
    /// Its size in bytes.
    pub len: u64,
    /// The disk it is on.
    pub disk: PathBuf,
    /// The partition number, for partitions.
    pub number: Option<u32>,
    /// One line for lists: name, size, model or file system.
    pub label: String,
    /// Model, serial and size of the disk (with the partition), as the confirmation names it.
    pub identity: String,
    /// The partition table of a disk source (`gpt`/`mbr`), for explanations.
    pub table: Option<String>,
    /// Bytes a target needs to hold a disk source's partitions (its table included).
    pub needs: u64,
}

/// One entry of a source or target list: the object, and why it may not be picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub endpoint: Endpoint,
    /// Why it cannot be used (shown, and Enter is refused).
    pub refusal: Option<String>,
    /// Something worth knowing (a larger or smaller target).
    pub note: Option<String>,
}

/// A row of the disk tree: a disk (index into `Model::disks`) or one of its partitions (index
/// into [`part_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Disk(usize),
    Part(usize, usize),
}

/// A partition as the UI shows it: the partition table's view joined with the kernel's (device
/// node, mount state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    pub number: u32,
    /// The kernel's node, when the kernel knows the partition.
    pub node: Option<PathBuf>,
    /// Kernel name (`sda1`), or `<disk> #N` when the kernel has no node.
    pub name: String,
    pub start: u64,
    pub size: u64,
    pub type_name: String,
    /// The GPT partition name.
    pub part_name: String,
    pub fs: Option<FsInfo>,
    /// Bytes its file system uses, when known.
    pub used: Option<u64>,
    pub extended: bool,
    pub mount_points: Vec<PathBuf>,
    pub swap: bool,
    pub holders: Vec<String>,
}

impl PartRow {
    /// Used and free bytes of its file system (free: of the file system's own size, else the
    /// partition's), when the usage could be read.
    pub fn usage(&self) -> Option<(u64, u64)> {
        let used = self.used?;
        let total = match self.fs.as_ref().map(|f| f.size) {
            Some(n) if n > 0 => n,
            _ => self.size,
        };
        Some((used, total.saturating_sub(used)))
    }

    /// Why this partition must not be written, or `None`.
    pub fn in_use(&self) -> Option<String> {
        let mut reasons: Vec<String> = self
            .mount_points
            .iter()
            .map(|m| format!("{} is mounted at {}", self.name, m.display()))
            .collect();
        if self.swap {
            reasons.push(format!("{} is in use as swap", self.name));
        }
        reasons.extend(
            self.holders
                .iter()
                .map(|h| format!("{} is held by {h}", self.name)),
        );
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// `ext4 "root"`, `vfat`, or `-`.
    pub fn fs_text(&self) -> String {
        match &self.fs {
            Some(f) => match &f.label {
                Some(l) => format!("{} \"{}\"", f.kind.name(), printable(l)),
                None => f.kind.name().to_string(),
            },
            None if self.extended => "extended".to_string(),
            None => "-".to_string(),
        }
    }
}

/// The partitions of a disk: from its partition table when it could be read (with the kernel's
/// node and mount state matched by number), else the kernel's list.
pub fn part_rows(entry: &DiskEntry) -> Vec<PartRow> {
    let kernel = &entry.device.partitions;
    match &entry.report {
        Ok(report) if !report.partitions().is_empty() => report
            .partitions()
            .iter()
            .map(|p| {
                let k = kernel.iter().find(|k| k.number == Some(p.number));
                PartRow {
                    number: p.number,
                    node: k.map(|k| k.path.clone()),
                    name: k
                        .map(|k| k.name.clone())
                        .unwrap_or_else(|| format!("{} #{}", entry.device.name, p.number)),
                    start: p.start,
                    size: p.size,
                    type_name: p.type_name.clone(),
                    part_name: p.name.clone(),
                    fs: p.fs.clone(),
                    used: p.used,
                    extended: p.extended,
                    mount_points: k.map(|k| k.mount_points.clone()).unwrap_or_default(),
                    swap: k.is_some_and(|k| k.swap),
                    holders: k.map(|k| k.holders.clone()).unwrap_or_default(),
                }
            })
            .collect(),
        _ => kernel
            .iter()
            .map(|k| PartRow {
                number: k.number.unwrap_or(0),
                node: Some(k.path.clone()),
                name: k.name.clone(),
                start: k.start.unwrap_or(0),
                size: k.size.unwrap_or(0),
                type_name: String::new(),
                part_name: String::new(),
                fs: None,
                used: None,
                extended: false,
                mount_points: k.mount_points.clone(),
                swap: k.swap,
                holders: k.holders.clone(),
            })
            .collect(),
    }
}

/// A disk that holds a bare file system (a "superfloppy" stick) as a partition-like row, so it
/// can be mounted and copied like a partition. `None` for other disks.
pub fn whole_fs_row(entry: &DiskEntry) -> Option<PartRow> {
    let Ok(report) = &entry.report else {
        return None;
    };
    let Content::FileSystem { fs, used } = &report.content else {
        return None;
    };
    let d = &entry.device;
    Some(PartRow {
        number: 0,
        node: Some(d.path.clone()),
        name: d.name.clone(),
        start: 0,
        size: d.size,
        type_name: String::new(),
        part_name: String::new(),
        fs: Some(fs.clone()),
        used: *used,
        extended: false,
        mount_points: d.mount_points.clone(),
        swap: d.swap,
        holders: d.holders.clone(),
    })
}

/// `gpt`, `mbr`, `fs`, `none` or `?` for a disk.
pub fn table_text(entry: &DiskEntry) -> String {
    match &entry.report {
        Ok(r) => match &r.content {
            Content::Table { table, .. } => table.clone(),
            Content::FileSystem { fs, .. } => fs.kind.name().to_string(),
            Content::Unknown => "none".to_string(),
            Content::Unreadable { .. } => "bad".to_string(),
        },
        Err(_) => "?".to_string(),
    }
}

/// Bytes a clone target needs to hold this disk's partitions and its table.
pub fn clone_needs(entry: &DiskEntry) -> u64 {
    let Ok(report) = &entry.report else {
        return entry.device.size;
    };
    match &report.content {
        Content::Table {
            layout, partitions, ..
        } => {
            let ss = u64::from(layout.sector_size);
            let tail = match &layout.kind {
                layout::TableKind::Gpt(g) => {
                    g.entries_sectors(layout.sector_size).saturating_add(1) * ss
                }
                _ => 0,
            };
            let whole = layout.used_end().saturating_add(tail).max(ss);
            // File systems the engine can shrink lower that (clones onto smaller disks).
            let facts = engine::shrink::facts_from_report(partitions);
            engine::shrink::min_target_len(layout, &facts).map_or(whole, |n| n.min(whole))
        }
        _ => entry.device.size,
    }
}

/// What to call a disk in lists: its model (escaped), the file behind a loop device that has
/// no model, else what [`disk::text::identity`] says of it (`disk with serial X`, `disk of
/// unknown model and serial`). The confirmation and details name it in full (`identity`).
pub fn disk_name(d: &BlockDevice) -> String {
    match (&d.model, &d.kind) {
        (Some(m), _) if !m.trim().is_empty() => printable(m).into_owned(),
        (_, disk::DeviceKind::Loop { backing_file }) => match backing_file.file_name() {
            Some(f) => format!("file {}", printable(&f.to_string_lossy())),
            None => format!("file {}", printable(&backing_file.to_string_lossy())),
        },
        // issue 16: an md array has no model; its level and state say what it is.
        (_, disk::DeviceKind::Raid { .. }) => md_name(d),
        _ => identity(d.vendor.as_deref(), None, d.serial.as_deref(), None),
    }
}

/// `md RAID5 array, read-only, 1 of 3 missing` (issue 16: arrays are sources like disks).
fn md_name(d: &BlockDevice) -> String {
    let disk::DeviceKind::Raid {
        level,
        state,
        raid_disks,
        degraded,
        ..
    } = &d.kind
    else {
        return String::new();
    };
    let mut out = format!(
        "md {} array",
        printable(level.as_deref().unwrap_or("RAID")).to_uppercase()
    );
    if d.is_read_only_array() {
        out.push_str(", read-only");
    } else if let Some(s) = state {
        out.push_str(&format!(", {}", printable(s)));
    }
    if let (Some(n), Some(m)) = (degraded.filter(|&n| n > 0), raid_disks) {
        out.push_str(&format!(", {n} of {m} missing"));
    }
    out
}

/// The model column of the disk tree: the model (escaped), the file behind a loop device, or
/// nothing when unknown (the serial has its own column, the details the whole identity).
pub fn model_column(d: &BlockDevice) -> String {
    match (&d.model, &d.kind) {
        (Some(m), _) => printable(m).into_owned(),
        (None, disk::DeviceKind::Loop { .. } | disk::DeviceKind::Raid { .. }) => disk_name(d),
        (None, _) => String::new(),
    }
}

/// The endpoint for a whole disk.
pub fn disk_endpoint(entry: &DiskEntry) -> Endpoint {
    let d = &entry.device;
    let name = disk_name(d);
    let table = match &entry.report {
        Ok(r) => match &r.content {
            Content::Table { table, .. } => Some(table.clone()),
            _ => None,
        },
        Err(_) => None,
    };
    Endpoint {
        path: d.path.clone(),
        offset: 0,
        len: d.size,
        disk: d.path.clone(),
        number: None,
        label: format!("{:<8} {:>10}  {name}", d.name, human(d.size)),
        identity: d.identity(),
        table,
        needs: clone_needs(entry),
    }
}

/// The endpoint for a partition of a disk.
pub fn part_endpoint(entry: &DiskEntry, p: &PartRow) -> Endpoint {
    let (path, offset) = match &p.node {
        Some(node) => (node.clone(), 0),
        None => (entry.device.path.clone(), p.start),
    };
    Endpoint {
        path,
        offset,
        len: p.size,
        disk: entry.device.path.clone(),
        number: Some(p.number),
        label: format!("{:<10} {:>10}  {}", p.name, human(p.size), p.fs_text()),
        identity: format!("partition {} of {}", p.name, entry.device.identity()),
        table: None,
        needs: p.size,
    }
}

/// A disk's identity as the screens show it: sizes in binary units like everywhere else, with
/// the identity's decimal size (what the vendor's label says) beside it:
/// `Crucial MX500, serial CT22, 128 MiB (134.2 MB)`.
pub fn identity_text(d: &disk::BlockDevice) -> String {
    binary_size(d.identity(), d.size)
}

/// An identity ending in `, <decimal size>` (as `disk::text::identity` writes it) with the size
/// in binary units first and the decimal one beside it: `…, 64.0 MiB (67.1 MB)`.
pub fn binary_size(id: String, size: u64) -> String {
    match id.rsplit_once(", ") {
        Some((head, label)) if label != human(size) => {
            format!("{head}, {} ({label})", human(size))
        }
        _ => id,
    }
}

/// `text` with each known disk's identity written as [`identity_text`] writes it (identities
/// reach the screens inside plans, endpoints and engine notes).
pub fn with_units(model: &Model, text: &str) -> String {
    let mut out = text.to_string();
    for e in &model.disks {
        let id = e.device.identity();
        if out.contains(&id) {
            out = out.replace(&id, &identity_text(&e.device));
        }
    }
    out
}

#[cfg(test)]
mod md_tests {
    use super::*;

    #[test]
    fn an_md_array_is_named_by_level_state_and_missing_members() {
        let raid = |state: &str, degraded: u32| BlockDevice {
            name: "md127".into(),
            path: std::path::PathBuf::from("/dev/md127"),
            dev: None,
            kind: disk::DeviceKind::Raid {
                level: Some("raid5".into()),
                state: Some(state.into()),
                raid_disks: Some(3),
                degraded: Some(degraded),
                uuid: None,
            },
            transport: disk::Transport::Virtual,
            model: None,
            vendor: None,
            serial: None,
            wwn: None,
            size: 1 << 30,
            logical_sector_size: 512,
            physical_sector_size: 512,
            rotational: None,
            removable: None,
            read_only: None,
            discard: None,
            partitions: Vec::new(),
            mount_points: Vec::new(),
            swap: false,
            holders: Vec::new(),
            slaves: Vec::new(),
            is_boot_medium: false,
        };
        assert_eq!(
            disk_name(&raid("readonly", 1)),
            "md RAID5 array, read-only, 1 of 3 missing"
        );
        assert_eq!(disk_name(&raid("clean", 0)), "md RAID5 array, clean");
        assert_eq!(model_column(&raid("clean", 0)), "md RAID5 array, clean");
    }
}
