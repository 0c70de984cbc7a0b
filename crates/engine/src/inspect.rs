//! Inspection: a disk, partition or disk image file → its partition table, partitions and file
//! systems, as one serialisable report.

use disk::{BlockIo, FileDisk, Window};
use fs::FsInfo;
use layout::{Layout, TableKind};
use serde::Serialize;
use std::path::Path;

/// Why a path could not be inspected at all (problems with single partitions are reported inside
/// the [`DiskReport`] instead).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Open(#[from] disk::DiskError),
    #[error("{path} is empty (0 bytes)")]
    Empty { path: String },
}

/// What a disk or file holds.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// A partition table with partitions: a disk.
    Table {
        /// `gpt` or `mbr`.
        table: String,
        /// GPT disk GUID or MBR disk signature (`0x1234abcd`).
        id: String,
        /// The sector size the table counts in.
        sector_size: u32,
        /// The protective/hybrid MBR state of a GPT disk, or `none`.
        protective_mbr: String,
        partitions: Vec<PartitionReport>,
        /// Damage and oddities found while reading the table.
        warnings: Vec<String>,
        /// The full table, for `--json` consumers that want every field.
        #[serde(skip)]
        layout: Box<Layout>,
    },
    /// A bare file system (or container) without a partition table: a partition.
    FileSystem {
        fs: FsInfo,
        /// Bytes it uses (`fs::used_map`: what a backup stores), when the map could be read.
        used: Option<u64>,
    },
    /// Nothing recognised: no table, no known file system.
    Unknown,
    /// The partition table could not be read.
    Unreadable { error: String },
}

/// One partition of a disk.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    pub number: u32,
    pub start: u64,
    pub size: u64,
    pub first_lba: u64,
    pub last_lba: u64,
    /// A friendly type name and its GUID or byte, e.g. `EFI System (C12A7328-…)`.
    pub type_name: String,
    /// The GPT partition GUID.
    pub guid: Option<String>,
    /// The GPT partition name.
    pub name: String,
    pub bootable: bool,
    pub logical: bool,
    /// The extended container of an MBR disk (holds logical partitions, no file system).
    pub extended: bool,
    pub fs: Option<FsInfo>,
    /// Why the file system could not be probed, when it could not.
    pub fs_error: Option<String>,
    /// Bytes its file system uses (`fs::used_map`: what a backup stores), when the map could be
    /// read.
    pub used: Option<u64>,
}

/// A disk, partition or image file and what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    pub path: String,
    pub size: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub content: Content,
}

impl DiskReport {
    /// The partitions, or none when the object holds no table.
    pub fn partitions(&self) -> &[PartitionReport] {
        match &self.content {
            Content::Table { partitions, .. } => partitions,
            _ => &[],
        }
    }
}

/// Opens `path` read-only and inspects it.
pub fn inspect(path: &Path) -> Result<DiskReport, InspectError> {
    let io = FileDisk::open_read(path)?;
    if io.is_empty() {
        return Err(InspectError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(inspect_io(&io, &path.display().to_string()))
}

/// Inspects an open object. Never fails: what cannot be read is reported in the result.
pub fn inspect_io(io: &dyn BlockIo, path: &str) -> DiskReport {
    let content = match layout::read(io) {
        Ok(layout) if !matches!(layout.kind, TableKind::None) => {
            // A FAT/NTFS boot sector carries 0x55AA too and can look like an MBR: when a file
            // system spans (nearly) the whole object and the "table" is a plain MBR, the file
            // system wins, as blkid decides.
            match whole_fs(io) {
                Some(fs)
                    if matches!(layout.kind, TableKind::Mbr(_))
                        && mbr_is_fs_boot_sector(&fs, io) =>
                {
                    Content::FileSystem {
                        used: used_bytes(io, &fs),
                        fs,
                    }
                }
                _ => table_content(io, layout),
            }
        }
        Ok(_) => match whole_fs(io) {
            Some(fs) => Content::FileSystem {
                used: used_bytes(io, &fs),
                fs,
            },
            None => Content::Unknown,
        },
        Err(e) => match whole_fs(io) {
            Some(fs) => Content::FileSystem {
                used: used_bytes(io, &fs),
                fs,
            },
            None => Content::Unreadable {
                error: e.to_string(),
            },
        },
    };
    DiskReport {
        path: path.to_string(),
        size: io.len(),
        logical_sector_size: io.logical_sector_size(),
        physical_sector_size: io.physical_sector_size(),
        content,
    }
}

/// An LVM2 physical volume found by [`inspect`]: its volume group and logical volumes.
#[derive(Debug, Clone, Serialize)]
pub struct LvmVolume {
    /// The partition holding the PV; `None` for a bare PV (the whole object).
    pub partition: Option<u32>,
    /// The VG, LVs, their sizes and file systems, and what a backup keeps of each.
    pub pv: Option<fs::lvm::PvReport>,
    /// Why the PV's metadata could not be read.
    pub error: Option<String>,
}

/// The LVM2 PVs among what `report` (from [`inspect`] of `path`) found, read from `path`.
pub fn lvm_volumes(path: &Path, report: &DiskReport) -> Vec<LvmVolume> {
    let is_pv = |fs: Option<&FsInfo>| fs.is_some_and(|f| f.kind == fs::FsKind::Lvm2Member);
    let mut spots: Vec<(Option<u32>, u64, u64)> = Vec::new();
    match &report.content {
        Content::FileSystem { fs, .. } if is_pv(Some(fs)) => spots.push((None, 0, report.size)),
        Content::Table { partitions, .. } => spots.extend(
            partitions
                .iter()
                .filter(|p| is_pv(p.fs.as_ref()))
                .map(|p| (Some(p.number), p.start, p.size)),
        ),
        _ => {}
    }
    if spots.is_empty() {
        return Vec::new();
    }
    let io = match FileDisk::open_read(path) {
        Ok(io) => io,
        Err(e) => {
            return spots
                .into_iter()
                .map(|(partition, ..)| LvmVolume {
                    partition,
                    pv: None,
                    error: Some(e.to_string()),
                })
                .collect()
        }
    };
    spots
        .into_iter()
        .map(|(partition, start, len)| {
            let result = Window::new(&io, start, len)
                .map_err(|e| e.to_string())
                .and_then(|w| fs::lvm::pv_report(&w).map_err(|e| e.to_string()));
            match result {
                Ok(pv) => LvmVolume {
                    partition,
                    pv: Some(pv),
                    error: None,
                },
                Err(e) => LvmVolume {
                    partition,
                    pv: None,
                    error: Some(e),
                },
            }
        })
        .collect()
}

/// The bytes a file system uses, from its allocation map; `None` (logged) when the map cannot be
/// read or does not add up.
fn used_bytes(io: &dyn BlockIo, info: &FsInfo) -> Option<u64> {
    match fs::used_map(io, info) {
        Ok(map) => Some(map.used_bytes()),
        Err(e) => {
            log::debug!("used bytes of {}: {e}", io.describe());
            None
        }
    }
}

fn whole_fs(io: &dyn BlockIo) -> Option<FsInfo> {
    match fs::probe(io) {
        Ok(found) => found,
        Err(e) => {
            log::debug!("probing {} as a file system: {e}", io.describe());
            None
        }
    }
}

/// A file system found at offset 0 whose claimed size covers most of the object: the 0x55AA
/// "MBR" is really its boot sector.
fn mbr_is_fs_boot_sector(fs: &FsInfo, io: &dyn BlockIo) -> bool {
    use fs::FsKind;
    matches!(fs.kind, FsKind::Vfat | FsKind::Ntfs | FsKind::Exfat) && fs.size >= io.len() / 10 * 9
}

fn table_content(io: &dyn BlockIo, layout: Layout) -> Content {
    let (table, id, protective_mbr) = match &layout.kind {
        TableKind::Gpt(g) => (
            "gpt",
            g.disk_guid.hyphenated().to_string().to_uppercase(),
            g.mbr
                .as_ref()
                .map(|m| protection_name(m.protection))
                .unwrap_or("missing")
                .to_string(),
        ),
        TableKind::Mbr(m) => (
            "mbr",
            format!("0x{:08x}", m.disk_signature),
            "none".to_string(),
        ),
        TableKind::None => ("none", String::new(), "none".to_string()),
    };
    let mut warnings: Vec<String> = layout.warnings.iter().map(|w| w.to_string()).collect();
    if let TableKind::Gpt(g) = &layout.kind {
        if !g.health.is_ok() {
            warnings.insert(0, g.health.to_string());
        }
    }
    let partitions = layout
        .partitions
        .iter()
        .map(|p| {
            let (fs, fs_error, used) = if p.is_extended {
                (None, None, None)
            } else {
                match Window::new(io, p.start, p.size) {
                    Ok(w) => match fs::probe(&w) {
                        Ok(found) => {
                            let used = found.as_ref().and_then(|info| used_bytes(&w, info));
                            (found, None, used)
                        }
                        Err(e) => (None, Some(e.to_string()), None),
                    },
                    Err(e) => (None, Some(e.to_string()), None),
                }
            };
            PartitionReport {
                number: p.number,
                start: p.start,
                size: p.size,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                type_name: p.kind.to_string(),
                guid: p.guid.map(|g| g.hyphenated().to_string().to_uppercase()),
                name: p.name.clone(),
                bootable: p.bootable,
                logical: p.is_logical,
                extended: p.is_extended,
                fs,
                fs_error,
                used,
            }
        })
        .collect();
    Content::Table {
        table: table.to_string(),
        id,
        sector_size: layout.sector_size,
        protective_mbr,
        partitions,
        warnings,
        layout: Box::new(layout),
    }
}

fn protection_name(p: layout::Protection) -> &'static str {
    match p {
        layout::Protection::None => "none",
        layout::Protection::Protective { covers_disk: true } => "protective",
        layout::Protection::Protective { covers_disk: false } => "protective (partial)",
        layout::Protection::Hybrid => "hybrid",
    }
}
