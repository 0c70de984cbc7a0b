//! Clone a disk to a disk, or copy a partition into a partition: plan first, then execute.
//!
//! Order of writes on the target: the partition table is invalidated first, then the boot-loader
//! areas and partition data are copied, and the final table is written last, so an interrupted
//! clone never leaves a disk that looks complete.

use crate::copy::{copy_spans, verify_spans, CopyCtx, Span, ZeroPolicy};
use crate::error::JobError;
use crate::progress::{Cancel, ProgressSink, Tracker};
use crate::rescue::{BadSectorMap, ReadPolicy};
use crate::units::human;
use disk::{BlockIo, Window};
use fs::{FsInfo, FsKind, UsedMap};
use layout::{Change, CopyOptions, Layout, TableKind, TablePlan};
use serde::Serialize;
use std::fmt;
use std::sync::Mutex;

/// What the user asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneOptions {
    /// Grow the last partition (and its file system when that is safe) to the end of the target.
    pub grow_last: bool,
    /// New disk and partition GUIDs / MBR signature.
    pub new_ids: bool,
    /// Read back what was written and compare it with the source.
    pub verify: bool,
    /// Unreadable sectors: skip and record (default) or stop.
    pub read: ReadPolicy,
}

/// How a partition's bytes are copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyMode {
    /// Only the blocks the file system uses.
    UsedBlocks,
    /// Every byte (unknown, damaged or unsupported file system).
    Whole,
    /// Only the header (swap).
    HeaderOnly,
}

/// One partition's copy.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionCopy {
    pub number: u32,
    pub src_start: u64,
    pub dst_start: u64,
    /// Partition size in bytes (source).
    pub len: u64,
    pub fs: Option<FsInfo>,
    pub mode: CopyMode,
    /// Bytes that will be read and written.
    pub bytes: u64,
    /// Why the mode is what it is, when it is not the obvious one.
    pub note: Option<String>,
    #[serde(skip)]
    pub map: Option<UsedMap>,
}

impl PartitionCopy {
    /// Plans the copy of the partition `[start, start+len)` of `src` to `dst_start` of the target.
    pub fn plan(
        src: &dyn BlockIo,
        number: u32,
        start: u64,
        len: u64,
        dst_start: u64,
    ) -> Result<Self, JobError> {
        let part = Window::new(src, start, len).map_err(|source| JobError::Read {
            device: src.describe(),
            offset: start,
            len: 0,
            source,
        })?;
        let fs = match fs::probe(&part) {
            Ok(found) => found,
            Err(e) => {
                log::warn!("partition {number} of {}: {e}", src.describe());
                None
            }
        };
        let (mode, map, note) = match &fs {
            None => (
                CopyMode::Whole,
                None,
                Some("no known file system: every byte is copied".to_string()),
            ),
            Some(info) => match fs::used_map(&part, info) {
                Ok(map) => {
                    let mode = if info.kind == FsKind::Swap {
                        CopyMode::HeaderOnly
                    } else {
                        CopyMode::UsedBlocks
                    };
                    (mode, Some(map), None)
                }
                Err(e) => {
                    let note = format!(
                        "{} used-block map not available ({e}): every byte is copied",
                        info.kind.name()
                    );
                    log::warn!("partition {number} of {}: {note}", src.describe());
                    (CopyMode::Whole, None, Some(note))
                }
            },
        };
        let bytes = map.as_ref().map(UsedMap::used_bytes).unwrap_or(len);
        Ok(PartitionCopy {
            number,
            src_start: start,
            dst_start,
            len,
            fs,
            mode,
            bytes,
            note,
            map,
        })
    }

    /// The byte spans to copy, in source coordinates.
    pub fn spans(&self) -> Vec<Span> {
        match &self.map {
            Some(map) => map
                .ranges()
                .map(|r| Span {
                    src: self.src_start + r.start..self.src_start + r.end.min(self.len),
                    dst_start: self.dst_start + r.start,
                    zeros: ZeroPolicy::WriteAll,
                })
                .collect(),
            None => vec![Span {
                src: self.src_start..self.src_start + self.len,
                dst_start: self.dst_start,
                zeros: ZeroPolicy::WriteAll,
            }],
        }
    }
}

impl fmt::Display for PartitionCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fs = match &self.fs {
            Some(i) => match &i.label {
                Some(l) => format!("{} \"{l}\"", i.kind.name()),
                None => i.kind.name().to_string(),
            },
            None => "unknown".to_string(),
        };
        let how = match self.mode {
            CopyMode::UsedBlocks => "used blocks",
            CopyMode::Whole => "every byte",
            CopyMode::HeaderOnly => "header only",
        };
        write!(
            f,
            "partition {:<3} {:<22} {:>10}: {how}, {} to copy",
            self.number,
            fs,
            human(self.len),
            human(self.bytes)
        )?;
        if let Some(n) = &self.note {
            write!(f, "\n               note: {n}")?;
        }
        Ok(())
    }
}

/// What happens to the file system of the grown last partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum GrowFs {
    /// `resize2fs` after the copy.
    Resize2fs { number: u32, new_size: u64 },
    /// `ntfsresize` after the copy.
    Ntfsresize { number: u32, new_size: u64 },
    /// The partition grows, its file system keeps its size.
    PartitionOnly { number: u32, reason: String },
}

impl GrowFs {
    /// The grow step for partition `number`, grown to `new_size` bytes, holding `fs` (a
    /// `fs::FsKind` name, empty when unknown).
    pub fn for_fs(number: u32, new_size: u64, fs: &str) -> Self {
        match fs {
            "ext2" | "ext3" | "ext4" => GrowFs::Resize2fs { number, new_size },
            "ntfs" => GrowFs::Ntfsresize { number, new_size },
            "" => GrowFs::PartitionOnly {
                number,
                reason: "no known file system".to_string(),
            },
            other => GrowFs::PartitionOnly {
                number,
                reason: format!("Lifeboat cannot grow {other} file systems safely"),
            },
        }
    }

    /// The partition the step is about.
    pub fn number(&self) -> u32 {
        match self {
            GrowFs::Resize2fs { number, .. }
            | GrowFs::Ntfsresize { number, .. }
            | GrowFs::PartitionOnly { number, .. } => *number,
        }
    }
}

impl fmt::Display for GrowFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrowFs::Resize2fs { number, new_size } => {
                write!(
                    f,
                    "grow the ext file system of partition {number} to {} with resize2fs",
                    human(*new_size)
                )
            }
            GrowFs::Ntfsresize { number, new_size } => {
                write!(
                    f,
                    "grow the NTFS file system of partition {number} to {} with ntfsresize",
                    human(*new_size)
                )
            }
            GrowFs::PartitionOnly { number, reason } => {
                write!(
                    f,
                    "partition {number} grows, its file system keeps its size: {reason}"
                )
            }
        }
    }
}

/// A whole-disk clone, ready to print and execute.
#[derive(Debug)]
pub struct ClonePlan {
    pub source: String,
    pub target: String,
    pub source_len: u64,
    pub target_len: u64,
    pub source_layout: Layout,
    pub table: TablePlan,
    /// Boot-loader areas and unpartitioned data, at the same offsets on both disks.
    pub raw: Vec<Span>,
    pub partitions: Vec<PartitionCopy>,
    pub grow: Option<GrowFs>,
}

impl ClonePlan {
    /// Bytes read and written by the copy (without verification).
    pub fn total_bytes(&self) -> u64 {
        self.raw
            .iter()
            .map(|s| s.src.end - s.src.start)
            .sum::<u64>()
            + self.partitions.iter().map(|p| p.bytes).sum::<u64>()
    }

    fn spans(&self) -> Vec<Span> {
        let mut v = self.raw.clone();
        for p in &self.partitions {
            v.extend(p.spans());
        }
        v
    }
}

impl fmt::Display for ClonePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "clone {} ({}) to {} ({})",
            self.source,
            human(self.source_len),
            self.target,
            human(self.target_len)
        )?;
        writeln!(f, "1. invalidate the partition table of {}", self.target)?;
        let raw: u64 = self.raw.iter().map(|s| s.src.end - s.src.start).sum();
        writeln!(
            f,
            "2. copy boot-loader areas and unpartitioned data: {}",
            human(raw)
        )?;
        writeln!(f, "3. copy partitions:")?;
        for p in &self.partitions {
            writeln!(f, "   {p}")?;
        }
        writeln!(f, "4. write the partition table:")?;
        for line in self.table.to_string().lines() {
            writeln!(f, "   {line}")?;
        }
        if let Some(g) = &self.grow {
            writeln!(f, "5. {g}")?;
        }
        writeln!(f, "total to copy: {}", human(self.total_bytes()))
    }
}

/// Plans the clone of disk `src` onto a target of `target_len` bytes with `target_sector`-byte
/// logical sectors (`None` for an image file: the source table's sector size).
pub fn plan_clone(
    src: &dyn BlockIo,
    target_name: &str,
    target_len: u64,
    target_sector: Option<u32>,
    opts: &CloneOptions,
) -> Result<ClonePlan, JobError> {
    let layout = layout::read(src)?;
    // Image files have no sector size of their own: they take the source table's.
    let target_sector = target_sector.unwrap_or(layout.sector_size);
    if matches!(layout.kind, TableKind::None) {
        return Err(JobError::NoTable {
            device: src.describe(),
            hint: "to copy a bare file system use `lifeboat copy`".to_string(),
        });
    }
    let copy_opts = CopyOptions {
        grow_last: opts.grow_last,
        new_ids: opts.new_ids,
        keep_boot_code: true,
    };
    let table =
        layout::plan_copy(&layout, target_len, target_sector, &copy_opts).map_err(|e| match e {
            layout::LayoutError::TargetTooSmall { need, have } => JobError::TargetTooSmall {
                device: target_name.to_string(),
                need,
                have,
            },
            e => JobError::Layout(e),
        })?;
    let mut partitions = Vec::new();
    for p in layout.partitions.iter().filter(|p| !p.is_extended) {
        partitions.push(PartitionCopy::plan(
            src, p.number, p.start, p.size, p.start,
        )?);
    }
    let raw = raw_spans(&layout);
    let grow = table.changes().iter().find_map(|c| match c {
        Change::Grown { number, to, .. } => Some((*number, *to)),
        _ => None,
    });
    let grow = grow.map(|(number, new_size)| {
        let fs = partitions
            .iter()
            .find(|p| p.number == number)
            .and_then(|p| p.fs.as_ref())
            .map(|f| f.kind.name())
            .unwrap_or("");
        GrowFs::for_fs(number, new_size, fs)
    });
    Ok(ClonePlan {
        source: src.describe(),
        target: target_name.to_string(),
        source_len: src.len(),
        target_len,
        source_layout: layout,
        table,
        raw,
        partitions,
        grow,
    })
}

/// The parts of the source outside its partitions that a clone copies: the gap between the
/// table and the first partition exactly (boot loaders live there), other unpartitioned ranges
/// before the end of the last partition without their all-zero pieces. Table structures
/// themselves are written by the table plan.
fn raw_spans(layout: &Layout) -> Vec<Span> {
    let ss = u64::from(layout.sector_size);
    let table_end = match &layout.kind {
        TableKind::Gpt(g) => (g.primary_entries_lba + g.entries_sectors(layout.sector_size)) * ss,
        _ => ss,
    };
    let mut parts: Vec<(u64, u64)> = layout
        .partitions
        .iter()
        .filter(|p| !p.is_extended)
        .map(|p| (p.start, p.end()))
        .collect();
    // EBR sectors are written with the table.
    if let TableKind::Mbr(m) = &layout.kind {
        parts.extend(m.ebrs.iter().map(|e| (e.lba * ss, e.lba * ss + ss)));
    }
    parts.sort_unstable();
    let end = layout.used_end();
    let mut spans = Vec::new();
    let mut pos = table_end;
    let mut first = true;
    for (s, e) in parts {
        if s > pos && pos < end {
            let zeros = if first {
                ZeroPolicy::WriteAll
            } else {
                ZeroPolicy::SkipZeros
            };
            spans.push(Span {
                src: pos..s.min(end),
                dst_start: pos,
                zeros,
            });
        }
        first = false;
        pos = pos.max(e);
    }
    spans
}

/// What a finished clone or copy did.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub bytes_copied: u64,
    pub seconds: f64,
    pub bad_sectors: BadSectorMap,
    pub verified: bool,
    pub notes: Vec<String>,
}

/// Executes a clone plan. `target` must have been opened for writing with the user's consent.
pub fn execute_clone(
    plan: &ClonePlan,
    src: &dyn BlockIo,
    target: &dyn BlockIo,
    opts: &CloneOptions,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<JobReport, JobError> {
    if target.len() != plan.target_len {
        return Err(JobError::TargetTooSmall {
            device: target.describe(),
            need: plan.target_len,
            have: target.len(),
        });
    }
    let verify_bytes = if opts.verify { plan.total_bytes() } else { 0 };
    let tracker = Tracker::new(plan.total_bytes() + verify_bytes, sink);
    let bad = Mutex::new(BadSectorMap::default());
    let ctx = CopyCtx {
        src,
        dst: target,
        policy: opts.read,
        bad: &bad,
        tracker: &tracker,
        cancel,
    };

    tracker.set_phase(format!(
        "invalidating the partition table of {}",
        target.describe()
    ));
    layout::invalidate(target, plan.table.layout().sector_size)?;

    tracker.set_phase("copying boot-loader areas");
    copy_spans(&ctx, &plan.raw)
        .map_err(|e| interrupted(e, "the target has no partition table yet"))?;
    for p in &plan.partitions {
        tracker.set_phase(format!("copying partition {}", p.number));
        copy_spans(&ctx, &p.spans())
            .map_err(|e| interrupted(e, "the target has no partition table yet"))?;
    }

    tracker.set_phase("writing the partition table");
    target.flush().map_err(|source| JobError::Flush {
        device: target.describe(),
        source,
    })?;
    plan.table.write(target)?;
    target.flush().map_err(|source| JobError::Flush {
        device: target.describe(),
        source,
    })?;

    if opts.verify {
        tracker.set_phase("verifying");
        verify_spans(&ctx, &plan.spans())?;
    }
    tracker.finish();
    let bad_sectors = bad.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut notes = Vec::new();
    if !bad_sectors.is_empty() {
        notes.push(format!(
            "{} unreadable on the source were written as zeros",
            human(bad_sectors.bytes())
        ));
    }
    Ok(JobReport {
        bytes_copied: plan.total_bytes(),
        seconds: tracker.elapsed().as_secs_f64(),
        bad_sectors,
        verified: opts.verify,
        notes,
    })
}

fn interrupted(e: JobError, state: &str) -> JobError {
    match e {
        JobError::Cancelled { .. } => JobError::Cancelled {
            state: state.to_string(),
        },
        e => e,
    }
}

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
