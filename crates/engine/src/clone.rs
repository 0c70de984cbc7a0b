//! The clone job: a whole disk (table, boot-loader areas, partitions by used blocks) onto another
//! disk of at least its size. Plan first, then execute.
//!
//! Order of writes on the target: the partition table is invalidated first, then the boot-loader
//! areas and partition data are copied, and the final table is written last, so an interrupted
//! clone never leaves a disk that looks complete.

use crate::error::JobError;
use crate::grow::GrowFs;
use crate::pipeline::{
    copy_spans, interrupted, verify_spans, CopyCtx, JobReport, PartitionCopy, Span, ZeroPolicy,
};
use crate::progress::{Cancel, ProgressSink, Tracker};
use crate::rescue::{BadSectorMap, ReadPolicy};
use crate::shrink::{PartFacts, ShrinkStep};
use crate::units::human;
use disk::BlockIo;
use layout::{Change, CopyOptions, Layout, TableKind, TablePlan};
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
    /// File systems shrunk onto a smaller target, after the copy and before the table.
    pub shrink: Vec<ShrinkStep>,
}

impl ClonePlan {
    /// Bytes read and written by the copy (without verification).
    pub fn total_bytes(&self) -> u64 {
        self.raw
            .iter()
            .map(|s| s.src.end - s.src.start)
            .sum::<u64>()
            + self
                .partitions
                .iter()
                .map(|p| match self.shrunk(p.number) {
                    Some(_) => self
                        .partition_spans(p)
                        .iter()
                        .map(|s| s.src.end - s.src.start)
                        .sum(),
                    None => p.bytes,
                })
                .sum::<u64>()
    }

    fn shrunk(&self, number: u32) -> Option<&ShrinkStep> {
        self.shrink.iter().find(|s| s.number == number)
    }

    /// What is copied of partition `p`: all its used blocks, or for a partition that shrinks
    /// those below its new size (its file system's tool moves the rest).
    fn partition_spans(&self, p: &PartitionCopy) -> Vec<Span> {
        let spans = p.spans();
        let Some(s) = self.shrunk(p.number) else {
            return spans;
        };
        let end = p.src_start + s.new_size;
        spans
            .into_iter()
            .filter(|sp| sp.src.start < end)
            .map(|mut sp| {
                sp.src.end = sp.src.end.min(end);
                sp
            })
            .collect()
    }

    /// What verification compares: everything but the shrunk partitions (their blocks moved;
    /// their own checker passed on them).
    fn spans(&self) -> Vec<Span> {
        let mut v = self.raw.clone();
        for p in self
            .partitions
            .iter()
            .filter(|p| self.shrunk(p.number).is_none())
        {
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
        let mut step = 4;
        if !self.shrink.is_empty() {
            writeln!(f, "{step}. shrink file systems onto the smaller target:")?;
            for s in &self.shrink {
                writeln!(f, "   {s}")?;
            }
            step += 1;
        }
        writeln!(f, "{step}. write the partition table:")?;
        for line in self.table.to_string().lines() {
            writeln!(f, "   {line}")?;
        }
        if let Some(g) = &self.grow {
            writeln!(f, "{}. {g}", step + 1)?;
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
    let mut partitions = Vec::new();
    for p in layout.partitions.iter().filter(|p| !p.is_extended) {
        partitions.push(PartitionCopy::plan(
            src, p.number, p.start, p.size, p.start,
        )?);
    }
    let facts: Vec<PartFacts> = partitions
        .iter()
        .map(|p| {
            PartFacts::probed(
                p.number,
                p.fs.as_ref(),
                p.map.as_ref().map(|m| m.used_bytes()),
            )
        })
        .collect();
    let measure = |number: u32, method| {
        let p = layout.partition(number)?;
        let part = disk::Window::new(src, p.start, p.size).ok()?;
        crate::shrink::tool_minimum(method, &part)
    };
    let (table, shrink) = crate::shrink::plan_table(
        &layout,
        target_name,
        target_len,
        target_sector,
        &copy_opts,
        &facts,
        &measure,
    )?;
    for p in &mut partitions {
        if let Some(n) = table.layout().partition(p.number) {
            p.dst_start = n.start;
        }
    }
    // Unpartitioned data between partitions is copied only when nothing moves; the boot-loader
    // gap before the first partition (the one span written whole) always is.
    let mut raw = raw_spans(&layout);
    if !shrink.is_empty() {
        raw.retain(|s| s.zeros == crate::pipeline::ZeroPolicy::WriteAll);
    }
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
        shrink,
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
        copy_spans(&ctx, &plan.partition_spans(p))
            .map_err(|e| interrupted(e, "the target has no partition table yet"))?;
    }
    let mut notes = Vec::new();
    for step in &plan.shrink {
        if cancel.is_cancelled() {
            return Err(JobError::Cancelled {
                state: "the target has no partition table yet".to_string(),
            });
        }
        tracker.set_phase(format!("shrinking partition {}", step.number));
        let io_err = |offset: u64, device: String| {
            move |source| JobError::Write {
                device,
                offset,
                len: 0,
                source,
            }
        };
        let base = disk::Window::new(src, step.old_start, step.old_size)
            .map_err(io_err(step.old_start, src.describe()))?;
        let head = disk::Window::new(target, step.new_start, step.new_size)
            .map_err(io_err(step.new_start, target.describe()))?;
        notes.push(crate::shrink::shrink_partition(step, &head, &base)?);
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
