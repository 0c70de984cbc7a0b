//! The partition copy job: a partition (or bare file system) into another partition of at least
//! its size, or into free space of a disk as a new partition whose table entry is written after
//! the data.

use crate::clone::CloneOptions;
use crate::error::JobError;
use crate::pipeline::{
    copy_spans, interrupted, verify_spans, CopyCtx, JobReport, PartitionCopy, Span,
};
use crate::progress::{Cancel, ProgressSink, Tracker};
use crate::rescue::BadSectorMap;
use crate::units::human;
use disk::BlockIo;
use layout::{Layout, TableKind};
use std::fmt;
use std::sync::Mutex;

/// A partition-to-partition copy, ready to print and execute.
#[derive(Debug)]
pub struct CopyPlan {
    pub source: String,
    pub target: String,
    pub target_len: u64,
    pub copy: PartitionCopy,
}

impl fmt::Display for CopyPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "copy {} to {} ({})",
            self.source,
            self.target,
            human(self.target_len)
        )?;
        writeln!(f, "   {}", self.copy)
    }
}

/// Plans copying the bare partition `src` into the partition `target` (at least as large).
pub fn plan_copy_partition(
    src: &dyn BlockIo,
    target_name: &str,
    target_len: u64,
) -> Result<CopyPlan, JobError> {
    if target_len < src.len() {
        return Err(JobError::TargetTooSmall {
            device: target_name.to_string(),
            need: src.len(),
            have: target_len,
        });
    }
    let copy = PartitionCopy::plan(src, 1, 0, src.len(), 0)?;
    Ok(CopyPlan {
        source: src.describe(),
        target: target_name.to_string(),
        target_len,
        copy,
    })
}

/// Executes a partition copy. The file system's first sector is written last, so an
/// interrupted copy does not leave a partition that looks like a complete file system.
pub fn execute_copy_partition(
    plan: &CopyPlan,
    src: &dyn BlockIo,
    target: &dyn BlockIo,
    opts: &CloneOptions,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<JobReport, JobError> {
    let verify_bytes = if opts.verify { plan.copy.bytes } else { 0 };
    let tracker = Tracker::new(plan.copy.bytes + verify_bytes, sink);
    let bad = Mutex::new(BadSectorMap::default());
    let ctx = CopyCtx {
        src,
        dst: target,
        policy: opts.read,
        bad: &bad,
        tracker: &tracker,
        cancel,
    };
    // Hide the old file system first: zero the first 64 KiB (all superblock magics live there
    // except ISO 9660's), then copy everything but the head, then the head.
    let head = 64 * 1024u64.min(src.len());
    let head = head.min(src.len());
    target
        .write_at(&vec![0u8; head as usize], 0)
        .map_err(|source| JobError::Write {
            device: target.describe(),
            offset: 0,
            len: head as usize,
            source,
        })?;
    tracker.set_phase(format!("copying {}", src.describe()));
    let spans = plan.copy.spans();
    let (mut body, mut heads) = (Vec::new(), Vec::new());
    for s in spans {
        if s.src.start < head {
            let cut = head.min(s.src.end);
            heads.push(Span {
                src: s.src.start..cut,
                dst_start: s.dst_start,
                zeros: s.zeros,
            });
            if cut < s.src.end {
                body.push(Span {
                    src: cut..s.src.end,
                    dst_start: s.dst_start + (cut - s.src.start),
                    zeros: s.zeros,
                });
            }
        } else {
            body.push(s);
        }
    }
    copy_spans(&ctx, &body).map_err(|e| interrupted(e, "the target holds no valid file system"))?;
    target.flush().map_err(|source| JobError::Flush {
        device: target.describe(),
        source,
    })?;
    copy_spans(&ctx, &heads)
        .map_err(|e| interrupted(e, "the target holds no valid file system"))?;
    target.flush().map_err(|source| JobError::Flush {
        device: target.describe(),
        source,
    })?;
    if opts.verify {
        tracker.set_phase("verifying");
        verify_spans(&ctx, &plan.copy.spans())?;
    }
    tracker.finish();
    let bad_sectors = bad.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(JobReport {
        bytes_copied: plan.copy.bytes,
        seconds: tracker.elapsed().as_secs_f64(),
        bad_sectors,
        verified: opts.verify,
        notes: Vec::new(),
    })
}

/// The first free range of `layout`'s disk that can hold `len` bytes, starting on a 1 MiB
/// boundary and rounded up to whole sectors: `(start, size)`.
pub fn find_free_space(layout: &Layout, len: u64) -> Option<(u64, u64)> {
    const ALIGN: u64 = 1 << 20;
    let ss = u64::from(layout.sector_size);
    let size = len.div_ceil(ss) * ss;
    let (first, end) = match &layout.kind {
        TableKind::Gpt(g) => (g.first_usable_lba * ss, (g.last_usable_lba + 1) * ss),
        TableKind::Mbr(_) => (ss, layout.disk_size),
        TableKind::None => return None,
    };
    let mut taken: Vec<(u64, u64)> = layout
        .partitions
        .iter()
        .map(|p| (p.start, p.end()))
        .collect();
    taken.sort_unstable();
    let mut pos = first;
    for (s, e) in taken.into_iter().chain(std::iter::once((end, end))) {
        let start = pos.div_ceil(ALIGN) * ALIGN;
        if start + size <= s.min(end) {
            return Some((start, size));
        }
        pos = pos.max(e);
    }
    None
}

/// The largest free range of `layout`'s disk, for the message when a partition does not fit.
pub fn largest_free_space(layout: &Layout) -> u64 {
    let ss = u64::from(layout.sector_size);
    let (first, end) = match &layout.kind {
        TableKind::Gpt(g) => (g.first_usable_lba * ss, (g.last_usable_lba + 1) * ss),
        TableKind::Mbr(_) => (ss, layout.disk_size),
        TableKind::None => return 0,
    };
    let mut taken: Vec<(u64, u64)> = layout
        .partitions
        .iter()
        .map(|p| (p.start, p.end()))
        .collect();
    taken.sort_unstable();
    let mut pos = first;
    let mut best = 0;
    for (s, e) in taken.into_iter().chain(std::iter::once((end, end))) {
        best = best.max(s.min(end).saturating_sub(pos));
        pos = pos.max(e);
    }
    best
}

/// The type of a new partition holding a copy of `src` in a table like `target`'s: the source
/// partition's (partition `part` of `src_disk`) when both tables are of one kind, else what its
/// file system calls for.
pub fn partition_type_for(
    src_disk: &dyn BlockIo,
    part: Option<u32>,
    src: &dyn BlockIo,
    target: &Layout,
) -> Result<layout::PartitionType, JobError> {
    use layout::PartitionType;
    if let Some(n) = part {
        let l = layout::read(src_disk)?;
        if let Some(p) = l.partition(n) {
            match (&target.kind, p.kind) {
                (TableKind::Gpt(_), PartitionType::Gpt(g)) => return Ok(PartitionType::Gpt(g)),
                (TableKind::Mbr(_), PartitionType::Mbr(b)) => return Ok(PartitionType::Mbr(b)),
                _ => {}
            }
        }
    }
    let fs = fs::probe(src).ok().flatten().map(|f| f.kind);
    let windows = matches!(
        fs,
        Some(fs::FsKind::Vfat | fs::FsKind::Ntfs | fs::FsKind::Exfat)
    );
    let swap = matches!(fs, Some(fs::FsKind::Swap | fs::FsKind::Swsuspend));
    Ok(match (&target.kind, windows, swap) {
        (TableKind::Gpt(_), true, _) => PartitionType::Gpt(layout::gpt_types::MICROSOFT_BASIC_DATA),
        (TableKind::Gpt(_), _, true) => PartitionType::Gpt(layout::gpt_types::LINUX_SWAP),
        (TableKind::Gpt(_), _, _) => PartitionType::Gpt(layout::gpt_types::LINUX_FILESYSTEM),
        (_, true, _) => PartitionType::Mbr(if fs == Some(fs::FsKind::Vfat) {
            0x0c
        } else {
            0x07
        }),
        (_, _, true) => PartitionType::Mbr(0x82),
        _ => PartitionType::Mbr(0x83),
    })
}
