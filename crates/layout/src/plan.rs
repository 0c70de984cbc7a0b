//! Planning and writing partition tables onto disks: copies to another (often larger) disk,
//! one partition added into free space, and invalidating a target before a restore.

use crate::gpt::{self, Header};
use crate::mbr;
use crate::model::{
    entries_sectors, is_extended_type, GptCopy, GptHealth, GptInfo, HeaderStatus, Layout, MbrEntry,
    MbrInfo, Partition, PartitionType, Protection, TableKind,
};
use crate::LayoutError;
use disk::BlockIo;
use std::fmt;
use uuid::Uuid;

/// Options of [`plan_copy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Grow the partition that ends last to the end of the target (GPT: the last usable LBA;
    /// MBR: the last sector, within the 2 TiB limit of 32-bit LBAs). A logical partition grows
    /// with its extended partition.
    pub grow_last: bool,
    /// New random disk GUID and partition GUIDs (GPT) or disk signature (MBR), for disks that
    /// stay attached together with the source.
    pub new_ids: bool,
    /// Keep the boot code of the source's LBA 0 (bytes 0..440).
    pub keep_boot_code: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            grow_last: false,
            new_ids: false,
            keep_boot_code: true,
        }
    }
}

/// One difference between the source table and the planned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The backup GPT header moves (to the end of the target).
    BackupMoved { from_lba: u64, to_lba: u64 },
    /// The last usable LBA of the GPT changes with the disk size.
    LastUsableMoved { from_lba: u64, to_lba: u64 },
    /// A partition grows (sizes in bytes).
    Grown { number: u32, from: u64, to: u64 },
    /// A new random disk GUID.
    NewDiskGuid { guid: Uuid },
    /// New random partition GUIDs.
    NewPartitionGuids { count: usize },
    /// A new random MBR disk signature.
    NewDiskSignature { signature: u32 },
    /// The damaged primary GPT is rebuilt from the backup.
    PrimaryRebuilt,
    /// The damaged or missing backup GPT is rebuilt.
    BackupRebuilt,
    /// LBA 0 gets a fresh protective MBR (the source had none, or a damaged one).
    ProtectiveMbrCreated,
    /// The target is larger than 32-bit MBR LBAs reach; this many bytes stay unusable.
    BeyondMbrLimit { unusable: u64 },
    /// A partition is added.
    Added { number: u32 },
    /// A partition shrinks (sizes in bytes); its file system is shrunk to fit first.
    Shrunk { number: u32, from: u64, to: u64 },
    /// A partition starts elsewhere (byte offsets).
    Moved { number: u32, from: u64, to: u64 },
    /// The start of a Windows partition on an MBR disk moves: Windows' boot configuration names
    /// it by disk signature and start offset.
    WindowsStartMoved { number: u32 },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::BackupMoved { from_lba, to_lba } => {
                write!(f, "backup GPT header moved from LBA {from_lba} to LBA {to_lba} (the end of the disk)")
            }
            Change::LastUsableMoved { from_lba, to_lba } => {
                write!(f, "last usable LBA changed from {from_lba} to {to_lba}")
            }
            Change::Grown { number, from, to } => write!(
                f,
                "partition {number} grown from {} to {} ({from} to {to} bytes)",
                human(*from),
                human(*to)
            ),
            Change::NewDiskGuid { guid } => write!(f, "new disk GUID {}", upper(guid)),
            Change::NewPartitionGuids { count } => write!(f, "new unique GUIDs for {count} partitions"),
            Change::NewDiskSignature { signature } => write!(f, "new disk signature {signature:#010x}"),
            Change::PrimaryRebuilt => write!(f, "damaged primary GPT rebuilt from the backup"),
            Change::BackupRebuilt => write!(f, "damaged or missing backup GPT rebuilt"),
            Change::ProtectiveMbrCreated => write!(f, "fresh protective MBR written to LBA 0"),
            Change::BeyondMbrLimit { unusable } => write!(
                f,
                "the last {} ({unusable} bytes) lie beyond what an MBR table can address and stay unused",
                human(*unusable)
            ),
            Change::Added { number } => write!(f, "partition {number} added"),
            Change::Shrunk { number, from, to } => write!(
                f,
                "partition {number} shrunk from {} to {} ({from} to {to} bytes)",
                human(*from),
                human(*to)
            ),
            Change::Moved { number, from, to } => write!(
                f,
                "partition {number} moved from byte {from} to byte {to}"
            ),
            Change::WindowsStartMoved { number } => write!(
                f,
                "WARNING: partition {number} is a Windows partition on an MBR disk and its start \
                 moves: Windows finds its boot partition by disk signature and start offset, so \
                 it will not boot until its boot configuration is repaired (bcdboot from Windows \
                 recovery)"
            ),
        }
    }
}

fn upper(u: &Uuid) -> String {
    u.hyphenated().to_string().to_uppercase()
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A partition table ready to be written onto a target: the table as it will be, and what
/// changes compared with the source. Print it to show the user before writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    layout: Layout,
    changes: Vec<Change>,
}

impl TablePlan {
    /// The table as it will be on the target.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// What differs from the source.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Puts `changes` before the others (the shrink planner's moves come first).
    pub(crate) fn prepend_changes(&mut self, mut changes: Vec<Change>) {
        changes.append(&mut self.changes);
        self.changes = changes;
    }

    /// Size in bytes of the target the plan was made for.
    pub fn target_len(&self) -> u64 {
        self.layout.disk_size
    }

    /// Writes the table onto `target`: for GPT the backup entries and header at the end, then
    /// the primary entries and header, then LBA 0 (protective MBR); for MBR the EBR chain, then
    /// LBA 0. Flushes at the end. `target` must have the size and sector size the plan was made
    /// for.
    pub fn write(&self, target: &dyn BlockIo) -> Result<(), LayoutError> {
        let device = target.describe();
        let ss = self.layout.sector_size;
        if target.logical_sector_size() != ss {
            return Err(LayoutError::SectorSizeMismatch {
                device: self.layout.device.clone(),
                source_size: ss,
                target_size: target.logical_sector_size(),
            });
        }
        if target.len() != self.layout.disk_size {
            return Err(LayoutError::BadRange {
                device,
                reason: format!(
                    "the table was planned for a disk of {} bytes but this one has {} bytes",
                    self.layout.disk_size,
                    target.len()
                ),
            });
        }
        for (offset, bytes) in self.sectors()? {
            write(target, offset, &bytes)?;
        }
        target
            .flush()
            .map_err(|source| LayoutError::Flush { device, source })?;
        log::info!(
            "{}: partition table written ({} partitions)",
            target.describe(),
            self.layout.partitions.len()
        );
        Ok(())
    }

    /// The byte ranges to write, in write order.
    fn sectors(&self) -> Result<Vec<(u64, Vec<u8>)>, LayoutError> {
        let l = &self.layout;
        let ss = l.sector_size;
        let ssz = u64::from(ss);
        let mut out = Vec::new();
        match &l.kind {
            TableKind::None => {
                return Err(LayoutError::NoTable {
                    device: l.device.clone(),
                })
            }
            TableKind::Gpt(g) => {
                let es = g.entries_sectors(ss);
                let count = g.entry_count as usize;
                let size = g.entry_size as usize;
                let mut entries = vec![0u8; (es * ssz) as usize];
                for p in &l.partitions {
                    let idx = (p.number as usize).wrapping_sub(1);
                    let slot = if idx < count {
                        entries.get_mut(idx * size..(idx + 1) * size)
                    } else {
                        None
                    };
                    let (Some(type_guid), Some(slot)) = (gpt::type_guid(&p.kind), slot) else {
                        return Err(LayoutError::BadRange {
                            device: l.device.clone(),
                            reason: format!(
                                "partition {} does not fit the GPT entries array",
                                p.number
                            ),
                        });
                    };
                    gpt::write_entry(
                        slot,
                        &gpt::Entry {
                            index: idx as u32,
                            type_guid,
                            guid: p.guid.unwrap_or_else(Uuid::new_v4),
                            first_lba: p.first_lba,
                            last_lba: p.last_lba,
                            attributes: p.attributes,
                            name: p.name.clone(),
                        },
                    );
                }
                let entries_crc = crc32fast::hash(&entries[..count * size]);
                let header = |my_lba, alternate_lba, entries_lba| Header {
                    my_lba,
                    alternate_lba,
                    first_usable: g.first_usable_lba,
                    last_usable: g.last_usable_lba,
                    disk_guid: g.disk_guid,
                    entries_lba,
                    entry_count: g.entry_count,
                    entry_size: g.entry_size,
                    entries_crc,
                };
                let backup = header(
                    g.backup_header_lba,
                    g.primary_header_lba,
                    g.backup_entries_lba,
                );
                let primary = header(
                    g.primary_header_lba,
                    g.backup_header_lba,
                    g.primary_entries_lba,
                );
                out.push((g.backup_entries_lba.saturating_mul(ssz), entries.clone()));
                out.push((
                    g.backup_header_lba.saturating_mul(ssz),
                    gpt::build_header(&backup, ss),
                ));
                out.push((g.primary_entries_lba.saturating_mul(ssz), entries));
                out.push((
                    g.primary_header_lba.saturating_mul(ssz),
                    gpt::build_header(&primary, ss),
                ));
                let m = g.mbr.as_ref().ok_or_else(|| LayoutError::NoTable {
                    device: l.device.clone(),
                })?;
                out.push((
                    0,
                    mbr::build_sector(ss, &l.boot_code, Some(m.disk_signature), &m.entries, 0),
                ));
            }
            TableKind::Mbr(m) => {
                let ext = l.partitions.iter().find(|p| p.is_extended);
                for (k, ebr) in m.ebrs.iter().enumerate() {
                    let Some(ext) = ext else { break };
                    let mut entries = [MbrEntry::default(); 4];
                    if let Some(p) = ebr.logical.and_then(|n| l.partition(n)) {
                        entries[0] = MbrEntry {
                            boot_indicator: if p.bootable { 0x80 } else { 0 },
                            kind: mbr_type(p),
                            start_lba: fit32(p.first_lba - ebr.lba.min(p.first_lba), &l.device)?,
                            sectors: fit32(p.sectors(), &l.device)?,
                        };
                    }
                    if let Some(next) = m.ebrs.get(k + 1) {
                        let end = next
                            .logical
                            .and_then(|n| l.partition(n))
                            .map_or(next.lba, |p| p.last_lba);
                        entries[1] = MbrEntry {
                            boot_indicator: 0,
                            kind: 0x05,
                            start_lba: fit32(next.lba.saturating_sub(ext.first_lba), &l.device)?,
                            sectors: u32::try_from(end.saturating_sub(next.lba) + 1)
                                .unwrap_or(u32::MAX),
                        };
                    }
                    // Entry 0 is relative to this EBR; entry 1 to the extended partition. CHS
                    // values are written for entry 0's base; link CHS is informative only.
                    let mut sector = mbr::build_sector(ss, &ebr.boot_code, None, &entries, ebr.lba);
                    if !entries[1].is_empty() {
                        mbr::write_entry(&mut sector, 1, &entries[1], ext.first_lba);
                    }
                    out.push((ebr.lba.saturating_mul(ssz), sector));
                }
                out.push((
                    0,
                    mbr::build_sector(ss, &l.boot_code, Some(m.disk_signature), &m.entries, 0),
                ));
            }
        }
        Ok(out)
    }
}

fn mbr_type(p: &Partition) -> u8 {
    match p.kind {
        PartitionType::Mbr(b) => b,
        PartitionType::Gpt(_) => 0x83,
    }
}

fn fit32(v: u64, device: &str) -> Result<u32, LayoutError> {
    u32::try_from(v).map_err(|_| LayoutError::BadRange {
        device: device.to_string(),
        reason: format!("value {v} does not fit a 32-bit MBR field"),
    })
}

fn write(target: &dyn BlockIo, offset: u64, bytes: &[u8]) -> Result<(), LayoutError> {
    target
        .write_at(bytes, offset)
        .map_err(|source| LayoutError::Write {
            device: target.describe(),
            offset,
            len: bytes.len() as u64,
            source,
        })
}

impl fmt::Display for TablePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.layout;
        match &l.kind {
            TableKind::Gpt(g) => writeln!(
                f,
                "GPT on a disk of {} ({} bytes, {}-byte sectors), disk GUID {}, usable LBA {}..={}",
                human(l.disk_size),
                l.disk_size,
                l.sector_size,
                upper(&g.disk_guid),
                g.first_usable_lba,
                g.last_usable_lba
            )?,
            TableKind::Mbr(m) => writeln!(
                f,
                "MBR on a disk of {} ({} bytes, {}-byte sectors), disk signature {:#010x}",
                human(l.disk_size),
                l.disk_size,
                l.sector_size,
                m.disk_signature
            )?,
            TableKind::None => writeln!(f, "no partition table")?,
        }
        writeln!(
            f,
            "{:>4} {:>12} {:>12} {:>10}  type",
            "#", "first LBA", "last LBA", "size"
        )?;
        for p in &l.partitions {
            let mut extra = String::new();
            if !p.name.is_empty() {
                extra.push_str(&format!(" \"{}\"", p.name));
            }
            if p.is_extended {
                extra.push_str(" [extended]");
            }
            if p.is_logical {
                extra.push_str(" [logical]");
            }
            if p.bootable {
                extra.push_str(" [bootable]");
            }
            writeln!(
                f,
                "{:>4} {:>12} {:>12} {:>10}  {}{extra}",
                p.number,
                p.first_lba,
                p.last_lba,
                human(p.size),
                p.kind
            )?;
        }
        if self.changes.is_empty() {
            writeln!(f, "no changes")?;
        } else {
            writeln!(f, "changes:")?;
            for c in &self.changes {
                writeln!(f, "  - {c}")?;
            }
        }
        Ok(())
    }
}

/// Plans the source's partition table onto a target of `target_len` bytes with
/// `target_sector`-byte sectors. Partition numbers, positions, types, names, attributes and
/// (unless `new_ids`) GUIDs are kept; a GPT's backup moves to the end of the target.
pub fn plan_copy(
    src: &Layout,
    target_len: u64,
    target_sector: u32,
    opts: &CopyOptions,
) -> Result<TablePlan, LayoutError> {
    if src.sector_size != target_sector {
        return Err(LayoutError::SectorSizeMismatch {
            device: src.device.clone(),
            source_size: src.sector_size,
            target_size: target_sector,
        });
    }
    let mut changes = Vec::new();
    let mut layout = match &src.kind {
        TableKind::None => {
            return Err(LayoutError::NoTable {
                device: src.device.clone(),
            })
        }
        TableKind::Gpt(g) => plan_gpt(src, g, target_len, opts, &mut changes)?,
        TableKind::Mbr(m) => plan_mbr(src, m, target_len, opts, &mut changes)?,
    };
    if !opts.keep_boot_code {
        layout.boot_code.clear();
    }
    let plan = TablePlan { layout, changes };
    // Every field must encode before the plan is shown, so that writing cannot fail on it.
    plan.sectors()?;
    Ok(plan)
}

fn plan_gpt(
    src: &Layout,
    g: &GptInfo,
    target_len: u64,
    opts: &CopyOptions,
    changes: &mut Vec<Change>,
) -> Result<Layout, LayoutError> {
    let ss = src.sector_size;
    let ssz = u64::from(ss);
    let total = target_len / ssz;
    if u64::from(g.entry_count) * u64::from(g.entry_size) > gpt::MAX_ENTRIES_BYTES
        || g.entry_size < 128
    {
        return Err(LayoutError::BadRange {
            device: src.device.clone(),
            reason: format!(
                "{} GPT entries of {} bytes are not supported",
                g.entry_count, g.entry_size
            ),
        });
    }
    let es = entries_sectors(g.entry_count, g.entry_size, ss);
    let entries_lba = if g.primary_entries_lba >= 2
        && g.primary_entries_lba.saturating_add(es) <= g.first_usable_lba
    {
        g.primary_entries_lba
    } else {
        2
    };
    if entries_lba + es > g.first_usable_lba {
        return Err(LayoutError::BadRange {
            device: src.device.clone(),
            reason: format!(
                "the GPT entries ({es} sectors) do not fit before the first usable LBA {}",
                g.first_usable_lba
            ),
        });
    }
    let max_last = src.partitions.iter().map(|p| p.last_lba).max().unwrap_or(0);
    let need_lbas = max_last
        .checked_add(1)
        .map(|end| end.max(g.first_usable_lba))
        .and_then(|end| end.checked_add(es + 1));
    let need = need_lbas.and_then(|n| n.checked_mul(ssz));
    let (Some(need_lbas), Some(need)) = (need_lbas, need) else {
        return Err(LayoutError::TargetTooSmall {
            need: u64::MAX,
            have: target_len,
        });
    };
    if total < need_lbas {
        return Err(LayoutError::TargetTooSmall {
            need,
            have: target_len,
        });
    }
    let backup_header_lba = total - 1;
    let backup_entries_lba = backup_header_lba - es;
    let last_usable_lba = backup_entries_lba - 1;
    if g.backup_header_lba != backup_header_lba {
        changes.push(Change::BackupMoved {
            from_lba: g.backup_header_lba,
            to_lba: backup_header_lba,
        });
    }
    if g.last_usable_lba != last_usable_lba {
        changes.push(Change::LastUsableMoved {
            from_lba: g.last_usable_lba,
            to_lba: last_usable_lba,
        });
    }
    if matches!(g.health.primary, HeaderStatus::Damaged(_)) {
        changes.push(Change::PrimaryRebuilt);
    }
    if matches!(g.health.backup, HeaderStatus::Damaged(_)) {
        changes.push(Change::BackupRebuilt);
    }
    let mut partitions = src.partitions.clone();
    if let Some(p) = partitions
        .iter()
        .find(|p| p.number == 0 || p.number > g.entry_count)
    {
        return Err(LayoutError::BadRange {
            device: src.device.clone(),
            reason: format!(
                "partition number {} is outside the {} GPT entries",
                p.number, g.entry_count
            ),
        });
    }
    let mut grown = Vec::new();
    if opts.grow_last {
        if let Some(p) = partitions.iter_mut().max_by_key(|p| (p.last_lba, p.number)) {
            if last_usable_lba > p.last_lba {
                grow(p, last_usable_lba, ssz, changes);
                grown.push((p.first_lba, p.sectors(), p.last_lba));
            }
        }
    }
    let mut disk_guid = g.disk_guid;
    if opts.new_ids {
        disk_guid = Uuid::new_v4();
        changes.push(Change::NewDiskGuid { guid: disk_guid });
        for p in &mut partitions {
            p.guid = Some(Uuid::new_v4());
        }
        changes.push(Change::NewPartitionGuids {
            count: partitions.len(),
        });
    }
    // LBA 0: adapt a protective or hybrid MBR, else make a fresh protective one.
    let old_total = src.disk_size / ssz;
    let mut pmbr = match &g.mbr {
        Some(m) if m.protection != Protection::None => m.clone(),
        _ => {
            changes.push(Change::ProtectiveMbrCreated);
            MbrInfo {
                disk_signature: g.mbr.as_ref().map_or(0, |m| m.disk_signature),
                protection: Protection::Protective { covers_disk: true },
                entries: [
                    MbrEntry {
                        boot_indicator: 0,
                        kind: 0xEE,
                        start_lba: 1,
                        sectors: 0,
                    },
                    MbrEntry::default(),
                    MbrEntry::default(),
                    MbrEntry::default(),
                ],
                ebrs: Vec::new(),
            }
        }
    };
    let protective_only = matches!(pmbr.protection, Protection::Protective { .. });
    for e in &mut pmbr.entries {
        if e.kind == 0xEE {
            let end = u64::from(e.start_lba) + u64::from(e.sectors);
            if protective_only || e.sectors == u32::MAX || end >= old_total.min(1 << 32) {
                if protective_only {
                    e.start_lba = 1;
                }
                e.sectors =
                    u32::try_from(total.saturating_sub(u64::from(e.start_lba))).unwrap_or(u32::MAX);
            }
        } else if !e.is_empty() {
            // A hybrid entry mirroring a grown partition follows it when it still fits.
            if let Some(&(_, _, new_last)) = grown
                .iter()
                .find(|(first, _, _)| *first == u64::from(e.start_lba))
            {
                if let Ok(n) = u32::try_from(new_last - u64::from(e.start_lba) + 1) {
                    e.sectors = n;
                }
            }
        }
    }
    if protective_only {
        pmbr.protection = Protection::Protective { covers_disk: true };
    }
    for e in &mut pmbr.entries {
        e.boot_indicator = if e.boot_indicator == 0x80 { 0x80 } else { 0 };
    }
    if !pmbr.entries.iter().any(|e| e.kind == 0xEE && !e.is_empty()) {
        // The hybrid MBR's 0xEE entry does not fit the target: without it LBA 0 would read
        // as a classic MBR, so protect the whole disk instead.
        changes.push(Change::ProtectiveMbrCreated);
        pmbr.entries = fresh_protective_entries(total);
        pmbr.protection = Protection::Protective { covers_disk: true };
    }
    Ok(Layout {
        device: format!("copy of {}", src.device),
        disk_size: target_len,
        sector_size: ss,
        device_sector_size: ss,
        kind: TableKind::Gpt(GptInfo {
            disk_guid,
            first_usable_lba: g.first_usable_lba,
            last_usable_lba,
            primary_header_lba: 1,
            backup_header_lba,
            primary_entries_lba: entries_lba,
            backup_entries_lba,
            entry_count: g.entry_count,
            entry_size: g.entry_size,
            health: GptHealth {
                primary: HeaderStatus::Ok,
                backup: HeaderStatus::Ok,
                used: GptCopy::Primary,
                copies_differ: false,
            },
            mbr: Some(pmbr),
        }),
        partitions,
        boot_code: src.boot_code.clone(),
        warnings: Vec::new(),
    })
}

fn fresh_protective_entries(total: u64) -> [MbrEntry; 4] {
    let sectors = u32::try_from(total.saturating_sub(1)).unwrap_or(u32::MAX);
    let ee = MbrEntry {
        boot_indicator: 0,
        kind: 0xEE,
        start_lba: 1,
        sectors,
    };
    [
        ee,
        MbrEntry::default(),
        MbrEntry::default(),
        MbrEntry::default(),
    ]
}

fn grow(p: &mut Partition, new_last: u64, ssz: u64, changes: &mut Vec<Change>) {
    let from = p.size;
    p.last_lba = new_last;
    p.size = p.sectors() * ssz;
    changes.push(Change::Grown {
        number: p.number,
        from,
        to: p.size,
    });
}

fn plan_mbr(
    src: &Layout,
    m: &MbrInfo,
    target_len: u64,
    opts: &CopyOptions,
    changes: &mut Vec<Change>,
) -> Result<Layout, LayoutError> {
    let ss = src.sector_size;
    let ssz = u64::from(ss);
    let total = target_len / ssz;
    let ebr_end = m
        .ebrs
        .iter()
        .map(|e| e.lba.saturating_add(1))
        .max()
        .unwrap_or(1);
    let need = src.used_end().max(ebr_end.saturating_mul(ssz)).max(ssz);
    if total * ssz < need {
        return Err(LayoutError::TargetTooSmall {
            need,
            have: target_len,
        });
    }
    let limit_last = total.min(1 << 32) - 1;
    if total > 1 << 32 {
        changes.push(Change::BeyondMbrLimit {
            unusable: (total - (1 << 32)) * ssz,
        });
    }
    let mut partitions = src.partitions.clone();
    if opts.grow_last {
        let candidate = partitions
            .iter()
            .filter(|p| !p.is_extended)
            .max_by_key(|p| (p.last_lba, p.number))
            .map(|p| (p.number, p.first_lba, p.last_lba, p.is_logical));
        if let Some((number, first, last, logical)) = candidate {
            let blocker = partitions
                .iter()
                .find(|c| {
                    c.is_extended
                        && !(logical && c.first_lba <= first && first <= c.last_lba)
                        && c.first_lba > last
                })
                .map(|c| c.number);
            if let Some(c) = blocker {
                return Err(LayoutError::CannotGrow {
                    device: src.device.clone(),
                    number,
                    reason: format!("the extended partition {c} follows it"),
                });
            }
            if m.ebrs.iter().any(|e| e.lba > last) {
                return Err(LayoutError::CannotGrow {
                    device: src.device.clone(),
                    number,
                    reason: "an extended boot record follows it".into(),
                });
            }
            let mut new_last = limit_last.min(first + u64::from(u32::MAX) - 1);
            if logical {
                if let Some(c) = partitions
                    .iter_mut()
                    .find(|c| c.is_extended && c.first_lba <= first && first <= c.last_lba)
                {
                    new_last = new_last.min(c.first_lba + u64::from(u32::MAX) - 1);
                    if new_last > c.last_lba {
                        grow(c, new_last, ssz, changes);
                    }
                }
            }
            if let Some(p) = partitions.iter_mut().find(|p| p.number == number) {
                if new_last > p.last_lba {
                    grow(p, new_last, ssz, changes);
                }
            }
        }
    }
    let mut info = m.clone();
    for (i, e) in info.entries.iter_mut().enumerate() {
        *e = match partitions.iter().find(|p| p.number == i as u32 + 1) {
            Some(p) => MbrEntry {
                boot_indicator: if p.bootable { 0x80 } else { 0 },
                kind: mbr_type(p),
                start_lba: fit32(p.first_lba, &src.device)?,
                sectors: fit32(p.sectors(), &src.device)?,
            },
            None => MbrEntry::default(),
        };
    }
    if opts.new_ids {
        let bytes = Uuid::new_v4().into_bytes();
        let sig = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).max(1);
        info.disk_signature = sig;
        changes.push(Change::NewDiskSignature { signature: sig });
    }
    Ok(Layout {
        device: format!("copy of {}", src.device),
        disk_size: target_len,
        sector_size: ss,
        device_sector_size: ss,
        kind: TableKind::Mbr(info),
        partitions,
        boot_code: src.boot_code.clone(),
        warnings: Vec::new(),
    })
}

/// Plans `layout` (the current table of a disk) with one more partition of `size` bytes at byte
/// `start`, in free space: for GPT the first free entry (so existing numbers stay), for MBR the
/// first free primary slot. The range must be sector-aligned, inside the usable area and
/// overlap nothing. The plan rewrites the whole table (repairing a damaged copy on the way).
pub fn add_partition(
    layout: &Layout,
    start: u64,
    size: u64,
    kind: PartitionType,
    name: &str,
) -> Result<TablePlan, LayoutError> {
    let device = layout.device.clone();
    let bad = |reason: String| LayoutError::BadRange {
        device: device.clone(),
        reason,
    };
    let ssz = u64::from(layout.sector_size);
    if size == 0 || !start.is_multiple_of(ssz) || !size.is_multiple_of(ssz) {
        return Err(bad(format!(
            "the new partition ({start}+{size} bytes) is empty or not aligned to {ssz}-byte sectors"
        )));
    }
    let first = start / ssz;
    let last = first + size / ssz - 1;
    if let Some(p) = layout
        .partitions
        .iter()
        .find(|p| p.first_lba <= last && first <= p.last_lba)
    {
        if p.is_extended
            && layout
                .partitions
                .iter()
                .all(|q| q.number == p.number || !(q.first_lba <= last && first <= q.last_lba))
        {
            return Err(LayoutError::Unsupported {
                device,
                what: format!(
                    "adding a logical partition inside extended partition {}",
                    p.number
                ),
            });
        }
        return Err(bad(format!(
            "the new partition (LBA {first}..={last}) overlaps partition {} (LBA {}..={})",
            p.number, p.first_lba, p.last_lba
        )));
    }
    let (mut plan, number) = match (&layout.kind, kind) {
        (TableKind::None, _) => return Err(LayoutError::NoTable { device }),
        (TableKind::Gpt(g), PartitionType::Gpt(t)) => {
            if t.is_nil() {
                return Err(bad("the nil GUID is not a partition type".into()));
            }
            if name.encode_utf16().count() > 36 {
                return Err(bad(format!(
                    "the name \"{name}\" is longer than 36 UTF-16 units"
                )));
            }
            let number = (1..=g.entry_count)
                .find(|n| layout.partition(*n).is_none())
                .ok_or_else(|| bad(format!("all {} GPT entries are used", g.entry_count)))?;
            let plan = plan_copy(
                layout,
                layout.disk_size,
                layout.sector_size,
                &CopyOptions::default(),
            )?;
            let TableKind::Gpt(pg) = &plan.layout.kind else {
                return Err(bad("the planned table is not a GPT".into()));
            };
            if first < pg.first_usable_lba || last > pg.last_usable_lba {
                return Err(bad(format!(
                    "the new partition (LBA {first}..={last}) is outside the usable area {}..={}",
                    pg.first_usable_lba, pg.last_usable_lba
                )));
            }
            (plan, number)
        }
        (TableKind::Mbr(m), PartitionType::Mbr(t)) => {
            if t == 0 || t == 0xEE || is_extended_type(t) {
                return Err(bad(format!(
                    "type 0x{t:02x} cannot be added as a data partition"
                )));
            }
            let total = layout.disk_size / ssz;
            if first == 0 || last >= total || last >= 1 << 32 {
                return Err(bad(format!(
                    "the new partition (LBA {first}..={last}) is outside the disk or the 32-bit MBR range"
                )));
            }
            if let Some(e) = m.ebrs.iter().find(|e| first <= e.lba && e.lba <= last) {
                return Err(bad(format!(
                    "the new partition covers the extended boot record at LBA {}",
                    e.lba
                )));
            }
            let number = (1..=4u32)
                .find(|n| layout.partition(*n).is_none())
                .ok_or_else(|| bad("all four primary MBR slots are used".into()))?;
            let plan = plan_copy(
                layout,
                layout.disk_size,
                layout.sector_size,
                &CopyOptions::default(),
            )?;
            (plan, number)
        }
        (_, kind) => {
            return Err(bad(format!(
                "a partition of type {kind} does not belong in this table"
            )))
        }
    };
    let is_gpt = matches!(layout.kind, TableKind::Gpt(_));
    let p = Partition {
        number,
        first_lba: first,
        last_lba: last,
        start,
        size,
        kind,
        guid: is_gpt.then(Uuid::new_v4),
        name: if is_gpt {
            name.to_string()
        } else {
            String::new()
        },
        attributes: 0,
        bootable: false,
        is_logical: false,
        is_extended: false,
    };
    if let TableKind::Mbr(m) = &mut plan.layout.kind {
        if let Some(e) = m.entries.get_mut(number as usize - 1) {
            *e = MbrEntry {
                boot_indicator: 0,
                kind: mbr_type(&p),
                start_lba: fit32(first, &device)?,
                sectors: fit32(last - first + 1, &device)?,
            };
        }
    }
    plan.layout.partitions.push(p);
    plan.layout.partitions.sort_by_key(|p| p.number);
    plan.layout.device = layout.device.clone();
    plan.changes.push(Change::Added { number });
    plan.sectors()?;
    Ok(plan)
}

/// Bytes zeroed at each end of a disk by [`invalidate`], in sectors of `sector_size`: the GPT
/// header plus a 128 × 128-byte entries array (and LBA 0 at the start).
fn invalidate_sectors(sector_size: u32) -> u64 {
    1 + entries_sectors(128, 128, sector_size)
}

/// Makes `target` look blank to partitioning tools before a restore or clone writes its data,
/// so that an interrupted run never leaves a disk that looks complete: zeroes LBA 0 through the
/// end of a standard primary GPT (LBA 0..=33 for 512-byte sectors) and the standard backup GPT
/// area at the end (the last 33 sectors).
pub fn invalidate(target: &dyn BlockIo, sector_size: u32) -> Result<(), LayoutError> {
    let sector_size = sector_size.clamp(512, 65536);
    let ssz = u64::from(sector_size);
    let len = target.len();
    let head = ((1 + invalidate_sectors(sector_size)) * ssz).min(len);
    let tail = (invalidate_sectors(sector_size) * ssz).min(len);
    let tail_start = (len / ssz * ssz).saturating_sub(tail);
    for (offset, n) in [(0, head), (tail_start, (len - tail_start).min(tail))] {
        if n > 0 {
            write(target, offset, &vec![0u8; n as usize])?;
        }
    }
    target.flush().map_err(|source| LayoutError::Flush {
        device: target.describe(),
        source,
    })?;
    log::info!("{}: partition table invalidated", target.describe());
    Ok(())
}
