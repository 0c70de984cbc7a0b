//! Planning a partition table onto a target smaller than the source's partitions.
//!
//! The engine says, per partition, the smallest size its file system can be brought to
//! ([`Shrinkable`]); this module decides the new layout:
//! - special partitions (BIOS boot, EFI system, Microsoft reserved, Windows recovery, and
//!   everything the engine cannot shrink) keep their sizes;
//! - the partitions with the most free space shrink first, each by as much as is still
//!   missing, down to its minimum, in whole MiB;
//! - partitions after a shrunk one move down, keeping their gaps where there is room, at
//!   1 MiB alignment (a partition that does not move keeps its start exactly);
//! - numbers, types, GPT partition GUIDs, names and attributes are kept (unless `new_ids`);
//! - on MBR disks a Windows (NTFS, type 0x07) partition's start is not moved when another
//!   choice fits; when it must move, the plan says so plainly ([`Change::WindowsStartMoved`]).
//!
//! A layout that cannot fit fails with [`LayoutError::TargetTooSmall`] naming the smallest target
//! that would hold it.

use crate::model::{gpt_types, Layout, PartitionType, TableKind};
use crate::plan::{plan_copy, Change, CopyOptions, TablePlan};
use crate::LayoutError;

/// Alignment of moved partitions and of shrunk sizes.
pub const ALIGN: u64 = 1 << 20;

/// A partition whose file system the engine can bring down to `min_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shrinkable {
    pub number: u32,
    pub min_size: u64,
}

/// True for the partitions that keep their size whatever their content: BIOS boot, EFI system,
/// Microsoft reserved and Windows recovery (GPT types; MBR 0xEF and 0x27).
pub fn is_special(kind: &PartitionType) -> bool {
    match kind {
        PartitionType::Gpt(t) => [
            gpt_types::BIOS_BOOT,
            gpt_types::EFI_SYSTEM,
            gpt_types::MICROSOFT_RESERVED,
            gpt_types::WINDOWS_RECOVERY,
        ]
        .contains(t),
        PartitionType::Mbr(b) => matches!(b, 0xEF | 0x27),
    }
}

fn align_up(v: u64) -> Option<u64> {
    v.checked_add(ALIGN - 1).map(|x| x / ALIGN * ALIGN)
}

/// One partition during planning.
#[derive(Debug, Clone)]
struct Slot {
    number: u32,
    start: u64,
    size: u64,
    /// Smallest size this partition may get (its size when it cannot shrink).
    min: u64,
    windows_mbr: bool,
}

/// New starts for `slots` (sorted by start) with sizes `sizes`: a partition keeps its start until
/// an earlier one shrank; from then on each starts at its old gap after the previous end,
/// rounded up to 1 MiB, never later than its old start. Returns the starts and the end of the
/// last one.
fn place(slots: &[Slot], sizes: &[u64]) -> Option<(Vec<u64>, u64)> {
    let mut starts = Vec::with_capacity(slots.len());
    let mut prev_old_end: Option<u64> = None;
    let mut prev_new_end = 0u64;
    let mut moved = false;
    for (s, &size) in slots.iter().zip(sizes) {
        let start = match prev_old_end {
            Some(old_end) if moved => {
                let gap = s.start.saturating_sub(old_end);
                align_up(prev_new_end.checked_add(gap)?)?.min(s.start)
            }
            _ => s.start,
        };
        if start < prev_new_end {
            return None;
        }
        if size < s.size {
            moved = true;
        }
        starts.push(start);
        prev_old_end = Some(s.start.checked_add(s.size)?);
        prev_new_end = start.checked_add(size)?;
    }
    Some((starts, prev_new_end))
}

/// What planning needs of the source: its partitions in disk order with their minimums, the
/// bytes the table keeps at the end (GPT backup), and the table's kind.
struct Prep {
    slots: Vec<Slot>,
    tail: u64,
    is_mbr: bool,
    hybrid: bool,
}

fn prepare(src: &Layout, shrinkable: &[Shrinkable]) -> Result<Prep, LayoutError> {
    let ssz = u64::from(src.sector_size);
    if let TableKind::Mbr(m) = &src.kind {
        // Every EBR must describe a logical partition after it: that is what moves it.
        for e in &m.ebrs {
            let ok = e
                .logical
                .and_then(|n| src.partition(n))
                .is_some_and(|p| p.first_lba > e.lba);
            if !ok {
                return Err(LayoutError::Unsupported {
                    device: src.device.clone(),
                    what: format!(
                        "shrinking an MBR disk whose extended boot record at LBA {} holds no \
                         logical partition",
                        e.lba
                    ),
                });
            }
        }
    }
    // Room the table leaves at the end of the target (GPT: backup entries and header).
    let (tail, hybrid) = match &src.kind {
        TableKind::Gpt(g) => (
            (g.entries_sectors(src.sector_size) + 1) * ssz,
            g.mbr.as_ref().is_some_and(|m| {
                !matches!(m.protection, crate::model::Protection::Protective { .. })
            }),
        ),
        TableKind::Mbr(_) => (0, false),
        TableKind::None => {
            return Err(LayoutError::NoTable {
                device: src.device.clone(),
            })
        }
    };
    let is_mbr = matches!(src.kind, TableKind::Mbr(_));
    // The extended container is not a slot: it is rebuilt around its logical partitions.
    let mut slots: Vec<Slot> = src
        .partitions
        .iter()
        .filter(|p| !p.is_extended)
        .map(|p| {
            let min = shrinkable
                .iter()
                .find(|s| s.number == p.number && !is_special(&p.kind))
                .and_then(|s| align_up(s.min_size))
                .map_or(p.size, |m| m.min(p.size));
            Slot {
                number: p.number,
                start: p.start,
                size: p.size,
                min,
                windows_mbr: is_mbr && p.kind == PartitionType::Mbr(0x07),
            }
        })
        .collect();
    slots.sort_by_key(|s| s.start);
    Ok(Prep {
        slots,
        tail,
        is_mbr,
        hybrid,
    })
}

/// The smallest target that holds the layout with every shrinkable partition at its minimum.
fn smallest(prep: &Prep) -> u64 {
    let mins: Vec<u64> = prep.slots.iter().map(|s| s.min).collect();
    place(&prep.slots, &mins)
        .and_then(|(_, end)| end.checked_add(prep.tail))
        .unwrap_or(u64::MAX)
}

/// The smallest disk (bytes) `src` fits on when the partitions in `shrinkable` shrink to their
/// minimums (and the others keep their sizes): what a front end compares a target with before
/// asking for a plan. Never more than the disk needs without shrinking.
pub fn min_target_len(src: &Layout, shrinkable: &[Shrinkable]) -> Result<u64, LayoutError> {
    Ok(smallest(&prepare(src, shrinkable)?))
}

/// Plans `src` onto a target of `target_len` bytes that is too small for its partitions as they
/// are, shrinking the partitions listed in `shrinkable`. When the partitions fit without
/// shrinking this is [`plan_copy`]. `opts.grow_last` is ignored when something shrinks.
pub fn plan_shrink(
    src: &Layout,
    target_len: u64,
    target_sector: u32,
    opts: &CopyOptions,
    shrinkable: &[Shrinkable],
) -> Result<TablePlan, LayoutError> {
    match plan_copy(src, target_len, target_sector, opts) {
        Err(LayoutError::TargetTooSmall { .. }) => {}
        other => return other,
    }
    let ssz = u64::from(src.sector_size);
    let prep = prepare(src, shrinkable)?;
    let Prep {
        tail,
        is_mbr,
        hybrid,
        ..
    } = prep;
    let slots = &prep.slots;
    // The end of the area partitions may use on the target.
    let limit = if is_mbr {
        (target_len / ssz).min(1 << 32) * ssz
    } else {
        (target_len / ssz * ssz).saturating_sub(tail)
    };
    let need = smallest(&prep);
    if need.saturating_sub(tail) > limit {
        return Err(LayoutError::TargetTooSmall {
            need,
            have: target_len,
        });
    }
    // Order of shrinking: on MBR first those after every Windows partition (so its start stays),
    // then by free space, most first.
    let last_windows = slots
        .iter()
        .filter(|s| s.windows_mbr)
        .map(|s| s.start)
        .max();
    let mut order: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].min < slots[i].size)
        .collect();
    order.sort_by_key(|&i| {
        let moves_windows = last_windows.is_some_and(|w| slots[i].start < w);
        (
            moves_windows,
            std::cmp::Reverse(slots[i].size - slots[i].min),
            slots[i].start,
        )
    });
    let mut sizes: Vec<u64> = slots.iter().map(|s| s.size).collect();
    let mut placed = None;
    for _ in 0..(2 * order.len() + 2) {
        let Some((starts, end)) = place(slots, &sizes) else {
            break;
        };
        if end <= limit {
            placed = Some(starts);
            break;
        }
        let mut missing = end - limit;
        for &i in &order {
            if missing == 0 {
                break;
            }
            let room = sizes[i] - slots[i].min;
            if room == 0 {
                continue;
            }
            let cut = align_up(missing).unwrap_or(u64::MAX).min(room);
            // Shrunk sizes stay whole MiB where the minimum allows.
            let new = (sizes[i] - cut) / ALIGN * ALIGN;
            sizes[i] = new.max(slots[i].min);
            missing = missing.saturating_sub(cut);
        }
    }
    let Some(starts) = placed else {
        return Err(LayoutError::TargetTooSmall {
            need,
            have: target_len,
        });
    };
    let mut shrunk = src.clone();
    let mut changes = Vec::new();
    for ((slot, &start), &size) in slots.iter().zip(&starts).zip(&sizes) {
        let Some(p) = shrunk
            .partitions
            .iter_mut()
            .find(|p| p.number == slot.number)
        else {
            continue;
        };
        if start != p.start || size != p.size {
            if hybrid {
                return Err(LayoutError::Unsupported {
                    device: src.device.clone(),
                    what: "moving or shrinking partitions of a GPT with a hybrid MBR".to_string(),
                });
            }
            if size != p.size {
                changes.push(Change::Shrunk {
                    number: p.number,
                    from: p.size,
                    to: size,
                });
            }
            if start != p.start {
                changes.push(Change::Moved {
                    number: p.number,
                    from: p.start,
                    to: start,
                });
                if slot.windows_mbr {
                    changes.push(Change::WindowsStartMoved { number: p.number });
                }
            }
        }
        p.start = start;
        p.size = size;
        p.first_lba = start / ssz;
        p.last_lba = (start + size) / ssz - 1;
    }
    if let TableKind::Mbr(_) = src.kind {
        relocate_ebrs(src, &mut shrunk)?;
    }
    let copy_opts = CopyOptions {
        grow_last: false,
        ..*opts
    };
    let mut plan = plan_copy(&shrunk, target_len, target_sector, &copy_opts)?;
    plan.prepend_changes(changes);
    Ok(plan)
}

/// On MBR disks with logical partitions: moves each EBR with its logical partition and fits
/// the extended partition around the chain. A logical partition that kept its start keeps its
/// EBR exactly; a moved one gets its EBR 1 MiB before its (aligned) start when the room after
/// the previous partition allows, else at its old distance before the start (which the kept
/// gap always allows). When any logical partition moved or shrank, the extended partition
/// starts at the first EBR and ends with the last logical partition; else it keeps its extent.
/// `shrunk` already holds the new starts and sizes.
fn relocate_ebrs(src: &Layout, shrunk: &mut Layout) -> Result<(), LayoutError> {
    let ssz = u64::from(src.sector_size);
    let parts = shrunk.partitions.clone();
    let TableKind::Mbr(m) = &mut shrunk.kind else {
        return Ok(());
    };
    if m.ebrs.is_empty() {
        return Ok(());
    }
    // The end (bytes) of the last partition before `start` on the new layout (the MBR's sector
    // when none).
    let prev_end = |start: u64| -> u64 {
        parts
            .iter()
            .filter(|p| !p.is_extended && p.start < start)
            .map(|p| p.end())
            .max()
            .unwrap_or(ssz)
    };
    let mut changed = false;
    for ebr in &mut m.ebrs {
        let number = ebr.logical.unwrap_or(0);
        let (Some(old), Some(new)) = (
            src.partition(number),
            parts.iter().find(|p| p.number == number),
        ) else {
            return Err(LayoutError::BadRange {
                device: src.device.clone(),
                reason: format!(
                    "the extended boot record at LBA {} names no logical partition",
                    ebr.lba
                ),
            });
        };
        if new.size != old.size {
            changed = true;
        }
        if new.start == old.start {
            continue;
        }
        changed = true;
        let room_from = prev_end(new.start);
        let distance = old.first_lba.saturating_sub(ebr.lba);
        let aligned = new
            .start
            .checked_sub(ALIGN)
            .filter(|&a| a >= room_from)
            .map(|a| a / ssz);
        let kept = new
            .first_lba
            .checked_sub(distance)
            .filter(|&l| l.saturating_mul(ssz) >= room_from);
        ebr.lba = aligned.or(kept).ok_or_else(|| LayoutError::BadRange {
            device: src.device.clone(),
            reason: format!(
                "no room for the extended boot record of partition {number} before its new start"
            ),
        })?;
    }
    if !changed {
        return Ok(());
    }
    let first_ebr = m.ebrs.iter().map(|e| e.lba).min();
    let last = parts
        .iter()
        .filter(|p| p.is_logical)
        .map(|p| p.last_lba)
        .max();
    if let (Some(ext), Some(first), Some(last)) = (
        shrunk.partitions.iter_mut().find(|p| p.is_extended),
        first_ebr,
        last,
    ) {
        ext.first_lba = first;
        ext.last_lba = last;
        ext.start = first * ssz;
        ext.size = (last + 1 - first) * ssz;
    }
    Ok(())
}
