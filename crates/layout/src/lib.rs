//! Partition tables: reads GPT (both copies checked, with a damage report, recovered from the
//! backup when the primary is broken) and MBR tables (with the EBR chain of logical partitions),
//! tells a backup which raw byte ranges hold the table and the boot loader gap, and plans and
//! writes tables onto other disks (GPT moved to a larger disk, last partition grown, new IDs,
//! one partition added into free space).
//!
//! It reads and writes only through the [`disk::BlockIo`] seam and never opens devices itself;
//! it never panics on untrusted bytes (allocations are bounded: entries arrays ≤ 1 MiB, ≤ 256
//! logical partitions), and it writes nothing except through [`TablePlan::write`] and
//! [`invalidate`].

mod gpt;
mod mbr;
mod model;
mod plan;
mod read;
mod shrink;

pub use model::{
    gpt_types, Ebr, GptCopy, GptDamage, GptHealth, GptInfo, HeaderStatus, Layout, MbrEntry,
    MbrInfo, Partition, PartitionType, Protection, TableKind, Warning,
};
pub use plan::{add_partition, invalidate, plan_copy, Change, CopyOptions, TablePlan};
pub use read::{read, recover_gpt, MAX_LOGICAL};
pub use shrink::{is_special, min_target_len, plan_shrink, Shrinkable};

/// Largest gap between the partition table and the first partition kept by
/// [`Layout::table_areas`] (boot loaders such as GRUB's core.img live there).
pub const MAX_BOOT_GAP: u64 = 16 << 20;

/// What can go wrong reading, planning or writing a partition table.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{device}: cannot read {len} bytes at offset {offset}: {source}")]
    Read {
        device: String,
        offset: u64,
        len: u64,
        source: std::io::Error,
    },
    #[error("{device}: cannot write {len} bytes at offset {offset}: {source}")]
    Write {
        device: String,
        offset: u64,
        len: u64,
        source: std::io::Error,
    },
    #[error("{device}: cannot flush: {source}")]
    Flush {
        device: String,
        source: std::io::Error,
    },
    #[error("{device}: too small to hold a partition table ({len} bytes)")]
    DeviceTooSmall { device: String, len: u64 },
    #[error("{device}: the GPT is unreadable: primary {primary}; backup {backup}")]
    GptUnreadable {
        device: String,
        primary: GptDamage,
        backup: GptDamage,
    },
    #[error("{device}: no partition table")]
    NoTable { device: String },
    #[error("target too small: need {need} bytes, have {have} bytes ({} bytes short)", need.saturating_sub(*have))]
    TargetTooSmall { need: u64, have: u64 },
    #[error("sector size mismatch: {device} uses {source_size}-byte sectors, the target {target_size}-byte sectors")]
    SectorSizeMismatch {
        device: String,
        source_size: u32,
        target_size: u32,
    },
    #[error("{device}: partition {number} cannot grow: {reason}")]
    CannotGrow {
        device: String,
        number: u32,
        reason: String,
    },
    #[error("{device}: {reason}")]
    BadRange { device: String, reason: String },
    #[error("{device}: {what} is not supported")]
    Unsupported { device: String, what: String },
}

impl Layout {
    /// The raw byte ranges `(offset, length)` a backup must keep to rebuild this disk's table
    /// and boot loader: LBA 0, the primary GPT header and entries, the gap up to the first
    /// partition (at most [`MAX_BOOT_GAP`]; GRUB's core.img lives there on MBR disks), the
    /// backup GPT entries and header, and every EBR. Sorted, merged, inside the disk.
    pub fn table_areas(&self) -> Vec<(u64, u64)> {
        let ss = u64::from(self.sector_size);
        let mut areas: Vec<(u64, u64)> = Vec::new();
        let first_start = self.partitions.iter().map(|p| p.start).min();
        let gap = |from: u64, default_end: u64, areas: &mut Vec<(u64, u64)>| {
            let end = first_start
                .unwrap_or(default_end)
                .min(from.saturating_add(MAX_BOOT_GAP));
            if end > from {
                areas.push((from, end - from));
            }
        };
        match &self.kind {
            TableKind::None => return Vec::new(),
            TableKind::Gpt(g) => {
                let es = g.entries_sectors(self.sector_size).saturating_mul(ss);
                areas.push((0, ss));
                areas.push((g.primary_header_lba.saturating_mul(ss), ss));
                areas.push((g.primary_entries_lba.saturating_mul(ss), es));
                let table_end = g
                    .primary_entries_lba
                    .saturating_mul(ss)
                    .saturating_add(es)
                    .max(2 * ss);
                gap(table_end, g.first_usable_lba.saturating_mul(ss), &mut areas);
                areas.push((g.backup_entries_lba.saturating_mul(ss), es));
                areas.push((g.backup_header_lba.saturating_mul(ss), ss));
            }
            TableKind::Mbr(m) => {
                areas.push((0, ss));
                gap(ss, ss, &mut areas);
                for e in &m.ebrs {
                    areas.push((e.lba.saturating_mul(ss), ss));
                }
            }
        }
        merge_areas(areas, self.disk_size)
    }

    /// End in bytes of the partition that ends last (0 without partitions).
    pub fn used_end(&self) -> u64 {
        self.partitions
            .iter()
            .map(Partition::end)
            .max()
            .unwrap_or(0)
    }

    /// The partition with this number.
    pub fn partition(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }
}

/// Sorts, clips to `size` and merges touching or overlapping ranges.
fn merge_areas(mut areas: Vec<(u64, u64)>, size: u64) -> Vec<(u64, u64)> {
    areas.retain(|&(o, l)| l > 0 && o < size);
    for a in &mut areas {
        a.1 = a.1.min(size - a.0);
    }
    areas.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (o, l) in areas {
        match out.last_mut() {
            Some(last) if o <= last.0 + last.1 => {
                let end = (last.0 + last.1).max(o + l);
                last.1 = end - last.0;
            }
            _ => out.push((o, l)),
        }
    }
    out
}
