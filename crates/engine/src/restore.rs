//! Restore: an image onto a disk (table written last, only used blocks written, optional growth
//! of the last partition) or one partition of an image into an existing partition.

use crate::error::JobError;
use crate::grow::GrowFs;
use crate::progress::{Cancel, ProgressSink, Tracker};
use crate::shrink::ShrinkStep;
use crate::units::human;
use disk::BlockIo;
use image::{Bitmap, ImageReader, IndexEntry, PartitionEntry, PartitionMode, StreamKind};
use layout::{Change, CopyOptions, Layout, TableKind, TablePlan};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the user asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    pub grow_last: bool,
    pub new_ids: bool,
    /// Read back what was written and compare it with the image.
    pub verify: bool,
    /// TRIM the blocks the file systems do not use (devices that support it).
    pub discard: bool,
    /// Decompression threads (0: one per core).
    pub threads: usize,
}

/// The source disk as far as the image knows it: its table areas at their offsets, zeros
/// elsewhere. Reading the partition table through this view gives the source's layout.
struct AreaView {
    image: Arc<ImageReader>,
    len: u64,
    sector: u32,
    areas: Vec<(u64, u64, u32)>,
}

impl BlockIo for AreaView {
    fn len(&self) -> u64 {
        self.len
    }

    fn logical_sector_size(&self) -> u32 {
        self.sector
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "past the end of the imaged disk",
                )
            })?;
        buf.fill(0);
        for &(a_off, a_len, stream) in &self.areas {
            let a_end = a_off + a_len;
            if a_off >= end || a_end <= offset {
                continue;
            }
            let s = a_off.max(offset);
            let e = a_end.min(end);
            let reader = Arc::clone(&self.image)
                .stream_reader(stream)
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
            reader.read_at(
                &mut buf[(s - offset) as usize..(e - offset) as usize],
                s - a_off,
            )?;
        }
        Ok(())
    }

    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "an image is read-only",
        ))
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("the disk imaged in {}", self.image.name())
    }
}

/// One stream to write to the target.
#[derive(Debug, Clone, Serialize)]
pub struct StreamWrite {
    pub stream: u32,
    /// Where the stream's byte 0 lands on the target.
    pub dst_start: u64,
    pub len: u64,
    /// Partition number, 0 for areas.
    pub partition: u32,
    /// The part of the stream (stream offsets) that is written: the boot-loader gap of an area
    /// stream leaves out the table structures, which the table plan writes last.
    pub clip: (u64, u64),
    /// Bytes written (used blocks of stored chunks).
    pub bytes: u64,
    pub what: String,
}

/// A restore, ready to print and execute.
#[derive(Debug)]
pub struct RestorePlan {
    pub image: String,
    pub target: String,
    pub target_len: u64,
    /// The table to write last (disk restores).
    pub table: Option<TablePlan>,
    pub source_layout: Option<Layout>,
    pub writes: Vec<StreamWrite>,
    pub grow: Option<GrowFs>,
    /// File systems shrunk onto a smaller target, after their data is written and before the
    /// table.
    pub shrink: Vec<ShrinkStep>,
    /// Facts the user should know before confirming (different model, larger disk, …).
    pub notes: Vec<String>,
}

impl RestorePlan {
    pub fn total_bytes(&self) -> u64 {
        self.writes.iter().map(|w| w.bytes).sum()
    }
}

impl fmt::Display for RestorePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "restore {} to {} ({})",
            self.image,
            self.target,
            human(self.target_len)
        )?;
        for n in &self.notes {
            writeln!(f, "note: {}", disk::text::printable(n))?;
        }
        let mut step = 1;
        if self.table.is_some() {
            writeln!(
                f,
                "{step}. invalidate the partition table of {}",
                self.target
            )?;
            step += 1;
        }
        writeln!(f, "{step}. write:")?;
        step += 1;
        for w in &self.writes {
            writeln!(
                f,
                "   {:<44} {:>10} at byte {}",
                disk::text::printable(&w.what),
                human(w.bytes),
                w.dst_start
            )?;
        }
        if !self.shrink.is_empty() {
            writeln!(f, "{step}. shrink file systems onto the smaller target:")?;
            step += 1;
            for s in &self.shrink {
                writeln!(f, "   {s}")?;
            }
        }
        if let Some(t) = &self.table {
            writeln!(f, "{step}. write the partition table:")?;
            step += 1;
            for line in t.to_string().lines() {
                writeln!(f, "   {line}")?;
            }
        }
        if let Some(g) = &self.grow {
            writeln!(f, "{step}. {g}")?;
        }
        writeln!(f, "total to write: {}", human(self.total_bytes()))
    }
}

fn stored_bytes(image: &ImageReader, stream: u32, bitmap: Option<&Bitmap>) -> u64 {
    stored_bytes_below(image, stream, bitmap, u64::MAX)
}

/// The bytes a restore writes of `stream` below stream offset `end`.
fn stored_bytes_below(image: &ImageReader, stream: u32, bitmap: Option<&Bitmap>, end: u64) -> u64 {
    image
        .chunks_of(stream)
        .iter()
        .map(|e| {
            let runs = match bitmap {
                Some(b) => used_runs(b, e.logical_offset, u64::from(e.uncompressed_len)),
                None => vec![(
                    e.logical_offset,
                    e.logical_offset + u64::from(e.uncompressed_len),
                )],
            };
            runs.iter()
                .map(|&(s, e)| e.min(end).saturating_sub(s))
                .sum::<u64>()
        })
        .sum()
}

/// The used byte runs of `bitmap` in `[at, at+n)`.
/// Byte runs of `b` used inside `[at, at + n)`, exactly (a restore writes only used blocks).
fn used_runs(b: &Bitmap, at: u64, n: u64) -> Vec<(u64, u64)> {
    let bs = u64::from(b.block_size());
    crate::blockmap::used_runs(
        bs,
        b.blocks(),
        |from, used, limit| b.next_with(from, used, limit),
        at,
        n,
        0,
    )
}

/// The partition table of the disk imaged in `image` (read from its table areas).
pub fn image_layout(image: &Arc<ImageReader>) -> Result<Layout, JobError> {
    let m = image.manifest();
    let view = AreaView {
        image: Arc::clone(image),
        len: m.source.size,
        sector: m.source.logical_sector_size,
        areas: m
            .table
            .areas
            .iter()
            .map(|a| (a.offset, a.len, a.stream))
            .collect(),
    };
    let layout = layout::read(&view)?;
    if matches!(layout.kind, TableKind::None) {
        return Err(JobError::BadImage {
            image: image.name().to_string(),
            problem: "its partition-table areas hold no partition table".to_string(),
        });
    }
    Ok(layout)
}

/// Plans restoring a whole-disk image onto a target disk of `target_len` bytes.
pub fn plan_restore_disk(
    image: &Arc<ImageReader>,
    target_name: &str,
    target_len: u64,
    target_sector: Option<u32>,
    opts: &RestoreOptions,
) -> Result<RestorePlan, JobError> {
    plan_restore_disk_from(image, target_name, target_len, target_sector, opts, false)
}

/// [`plan_restore_disk`] of an image arriving as a cast stream: its chunks cannot be read
/// ahead, so a file system that must shrink is sized from its used bytes (the manifest) rather
/// than its tool's own minimum, and the whole of a shrinking partition's stream is written (the
/// blocks past its new end into the receive overlay, see [`crate::cast`]).
pub fn plan_restore_disk_streamed(
    image: &Arc<ImageReader>,
    target_name: &str,
    target_len: u64,
    target_sector: Option<u32>,
    opts: &RestoreOptions,
) -> Result<RestorePlan, JobError> {
    plan_restore_disk_from(image, target_name, target_len, target_sector, opts, true)
}

fn plan_restore_disk_from(
    image: &Arc<ImageReader>,
    target_name: &str,
    target_len: u64,
    target_sector: Option<u32>,
    opts: &RestoreOptions,
    streamed: bool,
) -> Result<RestorePlan, JobError> {
    let m = image.manifest();
    if m.table.kind == "none" {
        return Err(JobError::BadImage {
            image: image.name().to_string(),
            problem: "it holds one partition, not a disk: restore it into a partition".to_string(),
        });
    }
    let layout = image_layout(image)?;
    let target_sector = target_sector.unwrap_or(layout.sector_size);
    let copy_opts = CopyOptions {
        grow_last: opts.grow_last,
        new_ids: opts.new_ids,
        keep_boot_code: true,
    };
    let facts = crate::shrink::facts_from_manifest(m);
    let measure = |number: u32, method| {
        if streamed {
            return None;
        }
        let stream = m.partitions.iter().find(|e| e.number == number)?.stream?;
        let reader = Arc::clone(image).stream_reader(stream).ok()?;
        crate::shrink::tool_minimum(method, &reader)
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
    let ss = u64::from(layout.sector_size);
    let table_end = match &layout.kind {
        TableKind::Gpt(g) => (g.primary_entries_lba + g.entries_sectors(layout.sector_size)) * ss,
        _ => ss,
    };
    let first_start = layout
        .partitions
        .iter()
        .filter(|p| !p.is_extended)
        .map(|p| p.start)
        .min()
        .unwrap_or(table_end);
    let mut writes = Vec::new();
    // The boot-loader gap (what lies between the table and the first partition); the table
    // structures themselves are written last by the table plan.
    for a in &m.table.areas {
        let (s, e) = (a.offset.max(table_end), (a.offset + a.len).min(first_start));
        if s < e {
            writes.push(StreamWrite {
                stream: a.stream,
                dst_start: a.offset,
                len: a.len,
                partition: 0,
                clip: (s - a.offset, e - a.offset),
                bytes: e - s,
                what: format!("{} (boot-loader gap)", a.what),
            });
        }
    }
    let new_layout = table.layout();
    for st in image.streams() {
        match st.kind {
            StreamKind::Partition => {
                let bitmap = image.bitmap(st.id)?;
                let Some(p) = new_layout.partition(st.partition) else {
                    continue;
                };
                let shrunk = shrink.iter().any(|s| s.number == st.partition);
                if shrunk {
                    writes.push(StreamWrite {
                        stream: st.id,
                        dst_start: p.start,
                        len: st.length,
                        partition: st.partition,
                        clip: (0, p.size.min(st.length)),
                        bytes: if streamed {
                            stored_bytes(image, st.id, bitmap.as_ref())
                        } else {
                            stored_bytes_below(image, st.id, bitmap.as_ref(), p.size)
                        },
                        what: format!(
                            "{} below its new end",
                            describe_partition(
                                m.partitions.iter().find(|e| e.stream == Some(st.id))
                            )
                        ),
                    });
                    continue;
                }
                if st.length > p.size {
                    return Err(JobError::BadImage {
                        image: image.name().to_string(),
                        problem: format!(
                            "partition {} is larger in the image than in its table",
                            st.partition
                        ),
                    });
                }
                writes.push(StreamWrite {
                    stream: st.id,
                    dst_start: p.start,
                    len: st.length,
                    partition: st.partition,
                    clip: (0, st.length),
                    bytes: stored_bytes(image, st.id, bitmap.as_ref()),
                    what: describe_partition(m.partitions.iter().find(|e| e.stream == Some(st.id))),
                });
            }
            StreamKind::Unpartitioned => {
                let (s, e) = (st.source_offset, st.source_offset + st.length);
                let overlaps = new_layout
                    .partitions
                    .iter()
                    .any(|p| !p.is_extended && p.start < e && s < p.end());
                if !overlaps
                    && shrink.is_empty()
                    && e <= target_len
                    && !image.chunks_of(st.id).is_empty()
                {
                    writes.push(StreamWrite {
                        stream: st.id,
                        dst_start: s,
                        len: st.length,
                        partition: 0,
                        clip: (0, st.length),
                        bytes: stored_bytes(image, st.id, None),
                        what: "unpartitioned data".to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    let grow = table.changes().iter().find_map(|c| match c {
        Change::Grown { number, to, .. } => Some((*number, *to)),
        _ => None,
    });
    let grow = grow.map(|(number, new_size)| {
        let fs = m
            .partitions
            .iter()
            .find(|e| e.number == number)
            .map(|e| e.fs.as_str())
            .unwrap_or("");
        GrowFs::for_fs(number, new_size, fs)
    });
    let mut notes = Vec::new();
    if !shrink.is_empty() {
        notes.push(format!(
            "the target is {} smaller than the imaged disk: {} shrink{} (the image is not \
             changed; verification covers the partitions that do not shrink)",
            human(m.source.size.saturating_sub(target_len)),
            shrink
                .iter()
                .map(|s| format!("partition {}", s.number))
                .collect::<Vec<_>>()
                .join(", "),
            if shrink.len() == 1 { "s" } else { "" }
        ));
    }
    if target_len > m.source.size {
        notes.push(format!(
            "the target is {} larger than the imaged disk{}",
            human(target_len - m.source.size),
            if opts.grow_last {
                "; the last partition grows into it"
            } else {
                "; it stays unused unless the last partition is grown"
            }
        ));
    }
    Ok(RestorePlan {
        image: image.name().to_string(),
        target: target_name.to_string(),
        target_len,
        table: Some(table),
        source_layout: Some(layout),
        writes,
        grow,
        shrink,
        notes,
    })
}

fn describe_partition(e: Option<&PartitionEntry>) -> String {
    match e {
        Some(e) => {
            let mode = match e.mode {
                PartitionMode::UsedBlocks => "used blocks",
                PartitionMode::Whole => "every byte",
                PartitionMode::HeaderOnly => "header",
                PartitionMode::Skipped => "skipped",
            };
            let label = if e.label.is_empty() {
                String::new()
            } else {
                format!(" \"{}\"", e.label)
            };
            format!(
                "partition {} {}{label} ({mode})",
                e.number,
                if e.fs.is_empty() { "unknown" } else { &e.fs }
            )
        }
        None => "partition".to_string(),
    }
}

/// Plans restoring one partition of an image (`part`, or the only one) into a target
/// partition of `target_len` bytes.
pub fn plan_restore_partition(
    image: &Arc<ImageReader>,
    part: Option<u32>,
    target_name: &str,
    target_len: u64,
) -> Result<RestorePlan, JobError> {
    let candidates: Vec<&image::Stream> = image
        .streams()
        .iter()
        .filter(|s| matches!(s.kind, StreamKind::Partition | StreamKind::Whole))
        .filter(|s| part.is_none_or(|n| s.partition == n))
        .collect();
    let st = match candidates.as_slice() {
        [one] => *one,
        [] => {
            return Err(JobError::BadImage {
                image: image.name().to_string(),
                problem: match part {
                    Some(n) => format!("it holds no partition {n}"),
                    None => "it holds no partition".to_string(),
                },
            })
        }
        _ => {
            return Err(JobError::BadImage {
                image: image.name().to_string(),
                problem: format!(
                    "it holds partitions {}: choose one with --part",
                    candidates
                        .iter()
                        .map(|s| s.partition.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    };
    if target_len < st.length {
        return Err(JobError::TargetTooSmall {
            device: target_name.to_string(),
            need: st.length,
            have: target_len,
        });
    }
    let bitmap = image.bitmap(st.id)?;
    let entry = image
        .manifest()
        .partitions
        .iter()
        .find(|e| e.stream == Some(st.id));
    let mut notes = Vec::new();
    if target_len > st.length {
        notes.push(format!(
            "the target partition is {} larger than the imaged one; the file system keeps its size",
            human(target_len - st.length)
        ));
    }
    Ok(RestorePlan {
        image: image.name().to_string(),
        target: target_name.to_string(),
        target_len,
        table: None,
        source_layout: None,
        writes: vec![StreamWrite {
            stream: st.id,
            dst_start: 0,
            len: st.length,
            partition: st.partition,
            clip: (0, st.length),
            bytes: stored_bytes(image, st.id, bitmap.as_ref()),
            what: describe_partition(entry),
        }],
        grow: None,
        shrink: Vec::new(),
        notes,
    })
}

/// What a finished restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub bytes_written: u64,
    pub bytes_discarded: u64,
    pub seconds: f64,
    pub verified: bool,
    pub notes: Vec<String>,
}

/// Executes a restore plan onto `target` (opened for writing with the user's consent).
pub fn execute_restore(
    plan: &RestorePlan,
    image: &Arc<ImageReader>,
    target: &dyn BlockIo,
    opts: &RestoreOptions,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<RestoreReport, JobError> {
    restore_from(plan, image, target, opts, sink, cancel, None)
}

/// [`execute_restore`] of an image arriving as a cast stream (see [`crate::cast`]): each chunk
/// is read once, in the stream's order; the stream is read to its end before the partition
/// table is written; verification compares a crc32 of what was written with what reads back.
/// Whole-disk plans only (a partition restore writes its first chunk last).
pub fn execute_restore_streamed(
    plan: &RestorePlan,
    source: &crate::cast::CastSource,
    target: &dyn BlockIo,
    opts: &RestoreOptions,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<RestoreReport, JobError> {
    if plan.table.is_none() {
        return Err(JobError::BadImage {
            image: source.name().to_string(),
            problem: "a streamed image is restored onto a whole disk".to_string(),
        });
    }
    // Each stream's chunks are read once, by at most WINDOW threads at a time.
    source.only_streams(plan.writes.iter().map(|w| w.stream));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let opts = RestoreOptions {
        threads: match opts.threads {
            0 => cores,
            n => n,
        }
        .min(image::cast::WINDOW),
        ..*opts
    };
    restore_from(
        plan,
        source.image(),
        target,
        &opts,
        sink,
        cancel,
        Some(source),
    )
}

/// crc32 of the bytes written per chunk (stream, logical offset), for verifying a streamed
/// restore.
type Digests = Mutex<HashMap<(u32, u64), u32>>;

fn restore_from(
    plan: &RestorePlan,
    image: &Arc<ImageReader>,
    target: &dyn BlockIo,
    opts: &RestoreOptions,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
    stream: Option<&crate::cast::CastSource>,
) -> Result<RestoreReport, JobError> {
    let digests: Option<Digests> = stream.map(|_| Mutex::new(HashMap::new()));
    let verify = if opts.verify { plan.total_bytes() } else { 0 };
    let tracker = Tracker::new(plan.total_bytes() + verify, sink);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        opts.threads
    };
    let state = if plan.table.is_some() {
        "the target has no partition table yet"
    } else {
        "the target partition holds no valid file system"
    };
    let stop = |e: JobError| match e {
        JobError::Cancelled { .. } => JobError::Cancelled {
            state: state.to_string(),
        },
        e if stream.is_some() => JobError::StreamIncomplete {
            problem: e.to_string(),
        },
        // The image could not be read any more (a network store gone after its retries, a
        // damaged chunk): the target is declared incomplete in the same words as a cancel.
        e @ (JobError::Image(_) | JobError::BadImage { .. }) => JobError::TargetIncomplete {
            problem: e.to_string(),
            state: state.to_string(),
        },
        // The same through a stream of the image (a file-system copy or a shrink reads one):
        // the image's own words say which chunk and why.
        e if reads_image(&e) => JobError::TargetIncomplete {
            problem: match e {
                JobError::Read { source, .. } => source.to_string(),
                e => e.to_string(),
            },
            state: state.to_string(),
        },
        e => e,
    };
    if let Some(t) = &plan.table {
        tracker.set_phase(format!(
            "invalidating the partition table of {}",
            target.describe()
        ));
        layout::invalidate(target, t.layout().sector_size)?;
    } else {
        // Hide the old file system until the new one is complete.
        let head = 64 * 1024u64.min(target.len());
        write(target, &vec![0u8; head as usize], 0)?;
    }
    // A streamed restore onto a smaller disk: each shrinking partition's stream is written
    // whole into a capture overlay whose head is its new, smaller target partition (a FAT one,
    // rebuilt by a file copy, keeps all of it in the overlay); what lies past the new end waits
    // there, bounded, as the shrink's base.
    let capture_parts: Vec<(u32, u64, u64, u64)> = match stream {
        Some(_) => plan
            .shrink
            .iter()
            .filter_map(|s| {
                let w = plan.writes.iter().find(|w| w.partition == s.number)?;
                let head = if s.method == crate::shrink::ShrinkMethod::FatCopy {
                    0
                } else {
                    s.new_size
                };
                Some((s.number, s.new_start, head, w.len))
            })
            .collect(),
        None => Vec::new(),
    };
    let capture_heads = capture_parts
        .iter()
        .map(|&(_, start, head, _)| {
            disk::Window::new(target, start, head).map_err(|source| JobError::Write {
                device: target.describe(),
                offset: start,
                len: 0,
                source,
            })
        })
        .collect::<Result<Vec<_>, JobError>>()?;
    let capture_bases: Vec<crate::cast::Zeros> = capture_parts
        .iter()
        .map(|&(number, _, _, len)| crate::cast::Zeros::new(len, number))
        .collect();
    let captures = capture_parts
        .iter()
        .zip(capture_heads.iter().zip(&capture_bases))
        .map(|(&(number, ..), (h, b))| {
            vdev::Overlay::new(h, b, crate::cast::capture_limits())
                .map(|o| (number, o))
                .map_err(|source| JobError::Write {
                    device: target.describe(),
                    offset: 0,
                    len: 0,
                    source,
                })
        })
        .collect::<Result<Vec<_>, JobError>>()?;
    let capture_of = |n: u32| captures.iter().find(|c| c.0 == n && n > 0).map(|c| &c.1);
    let mut heads: Vec<(usize, IndexEntry)> = Vec::new();
    for (wi, w) in plan.writes.iter().enumerate() {
        tracker.set_phase(if w.partition > 0 {
            format!("restoring partition {}", w.partition)
        } else {
            w.what.clone()
        });
        let bitmap = image.bitmap(w.stream).map_err(|e| stop(e.into()))?;
        if let Some(cap) = capture_of(w.partition) {
            let job = ChunkJob {
                image,
                bitmap: bitmap.as_ref(),
                dst_start: 0,
                clip: (0, w.len),
                target: cap,
                digests: None,
            };
            let chunks = image.chunks_of(w.stream).to_vec();
            job.run(&chunks, threads, &tracker, cancel, Mode::Write)
                .map_err(|e| {
                    crate::cast::capture_full(&e, w.partition).unwrap_or_else(|| stop(e))
                })?;
            continue;
        }
        let mut chunks: Vec<IndexEntry> = image.chunks_of(w.stream).to_vec();
        if plan.table.is_none() {
            // The chunk holding the superblock goes last.
            if let Some(pos) = chunks.iter().position(|e| e.logical_offset == 0) {
                heads.push((wi, chunks.remove(pos)));
            }
        }
        let job = ChunkJob {
            image,
            bitmap: bitmap.as_ref(),
            dst_start: w.dst_start,
            clip: w.clip,
            target,
            digests: digests.as_ref(),
        };
        job.run(&chunks, threads, &tracker, cancel, Mode::Write)
            .map_err(stop)?;
    }
    for (wi, e) in &heads {
        let Some(w) = plan.writes.get(*wi) else {
            continue;
        };
        let bitmap = image.bitmap(w.stream).map_err(|e| stop(e.into()))?;
        let job = ChunkJob {
            image,
            bitmap: bitmap.as_ref(),
            dst_start: w.dst_start,
            clip: w.clip,
            target,
            digests: digests.as_ref(),
        };
        job.run(std::slice::from_ref(e), 1, &tracker, cancel, Mode::Write)
            .map_err(stop)?;
    }
    flush(target)?;
    if let Some(src) = stream {
        // The whole stream must have arrived before the table makes the target a disk.
        tracker.set_phase(format!("reading {} to its end", src.name()));
        src.finish().map_err(stop)?;
    }
    let mut notes = Vec::new();
    for step in &plan.shrink {
        if cancel.is_cancelled() {
            return Err(stop(JobError::Cancelled {
                state: String::new(),
            }));
        }
        tracker.set_phase(format!(
            "shrinking partition {} with {}",
            step.number,
            step.method.tool()
        ));
        let w = plan
            .writes
            .iter()
            .find(|w| w.partition == step.number)
            .ok_or_else(|| JobError::BadImage {
                image: image.name().to_string(),
                problem: format!("it holds no stream for partition {}", step.number),
            })?;
        let reader;
        let base: &dyn BlockIo = match capture_of(step.number) {
            Some(cap) => cap,
            None => {
                reader = Arc::clone(image).stream_reader(w.stream)?;
                &reader
            }
        };
        let head = disk::Window::new(target, step.new_start, step.new_size).map_err(|source| {
            JobError::Write {
                device: target.describe(),
                offset: step.new_start,
                len: 0,
                source,
            }
        })?;
        notes.push(
            crate::shrink::shrink_partition(step, &head, base).map_err(|e| {
                if reads_image(&e) {
                    stop(e)
                } else {
                    e
                }
            })?,
        );
    }
    flush(target)?;
    if let Some(t) = &plan.table {
        tracker.set_phase("writing the partition table");
        t.write(target)?;
        flush(target)?;
    }
    let mut discarded = 0;
    if opts.discard {
        tracker.set_phase("discarding unused blocks");
        for w in plan
            .writes
            .iter()
            .filter(|w| w.partition > 0 && !plan.shrink.iter().any(|s| s.number == w.partition))
        {
            discarded += discard_unused(image, w, target)?;
        }
    }
    if opts.verify {
        tracker.set_phase("verifying");
        // A shrunk file system was checked by its own tool; its blocks moved.
        for w in plan
            .writes
            .iter()
            .filter(|w| !plan.shrink.iter().any(|s| s.number == w.partition))
        {
            let bitmap = image.bitmap(w.stream)?;
            let chunks = image.chunks_of(w.stream).to_vec();
            let job = ChunkJob {
                image,
                bitmap: bitmap.as_ref(),
                dst_start: w.dst_start,
                clip: w.clip,
                target,
                digests: digests.as_ref(),
            };
            let mode = if digests.is_some() {
                Mode::VerifyDigest
            } else {
                Mode::Verify
            };
            job.run(&chunks, threads, &tracker, cancel, mode)?;
        }
    }
    tracker.finish();
    Ok(RestoreReport {
        bytes_written: plan.total_bytes(),
        bytes_discarded: discarded,
        seconds: tracker.elapsed().as_secs_f64(),
        verified: opts.verify,
        notes,
    })
}

/// Whether `e` is a failure to read the image through one of its streams (a file-system copy or
/// a shrink reads one), which stops a restore with the target declared incomplete.
fn reads_image(e: &JobError) -> bool {
    matches!(e, JobError::Read { source, .. } if image::Error::in_io(source).is_some())
}

fn write(target: &dyn BlockIo, data: &[u8], offset: u64) -> Result<(), JobError> {
    target
        .write_at(data, offset)
        .map_err(|source| JobError::Write {
            device: target.describe(),
            offset,
            len: data.len(),
            source,
        })
}

fn flush(target: &dyn BlockIo) -> Result<(), JobError> {
    target.flush().map_err(|source| JobError::Flush {
        device: target.describe(),
        source,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Write,
    Verify,
    /// Read back and compare with the crc32 recorded when writing (streamed restores).
    VerifyDigest,
}

/// Where the chunks of one stream go.
struct ChunkJob<'a> {
    image: &'a ImageReader,
    bitmap: Option<&'a Bitmap>,
    /// Target offset of the stream's byte 0.
    dst_start: u64,
    /// Stream range written.
    clip: (u64, u64),
    target: &'a dyn BlockIo,
    /// Streamed restores: the crc32 of what each chunk wrote (recorded by `Write`, checked by
    /// `VerifyDigest`).
    digests: Option<&'a Digests>,
}

impl ChunkJob<'_> {
    /// Decompresses `chunks` on `threads` workers and writes (or compares) their used runs inside
    /// the clip at `dst_start + offset`. Positioned writes need no ordering.
    fn run(
        &self,
        chunks: &[IndexEntry],
        threads: usize,
        tracker: &Tracker<'_>,
        cancel: &Cancel,
        mode: Mode,
    ) -> Result<(), JobError> {
        let ChunkJob {
            image,
            bitmap,
            dst_start,
            clip,
            target,
            digests,
        } = *self;
        let next = AtomicUsize::new(0);
        let first_error: Mutex<Option<JobError>> = Mutex::new(None);
        let written = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    let mut back = Vec::new();
                    loop {
                        if cancel.is_cancelled()
                            || first_error.lock().map(|e| e.is_some()).unwrap_or(true)
                        {
                            return;
                        }
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(e) = chunks.get(i) else { return };
                        let result = (|| -> Result<u64, JobError> {
                            if mode == Mode::VerifyDigest {
                                return verify_digest(self, e, digests, &mut back);
                            }
                            let data = image.read_chunk(e)?;
                            let mut digest = crc32fast::Hasher::new();
                            let runs = match bitmap {
                                Some(b) => used_runs(b, e.logical_offset, data.len() as u64),
                                None => {
                                    vec![(e.logical_offset, e.logical_offset + data.len() as u64)]
                                }
                            };
                            let runs = runs
                                .into_iter()
                                .map(|(s, e)| (s.max(clip.0), e.min(clip.1)))
                                .filter(|(s, e)| s < e);
                            let mut n = 0;
                            for (rs, re) in runs {
                                let part = &data[(rs - e.logical_offset) as usize
                                    ..(re - e.logical_offset) as usize];
                                let at = dst_start + rs;
                                match mode {
                                    Mode::Write => {
                                        write(target, part, at)?;
                                        digest.update(part);
                                    }
                                    Mode::VerifyDigest => {}
                                    Mode::Verify => {
                                        back.resize(part.len(), 0);
                                        target.read_at(&mut back, at).map_err(|source| {
                                            JobError::Read {
                                                device: target.describe(),
                                                offset: at,
                                                len: part.len(),
                                                source,
                                            }
                                        })?;
                                        if back != part {
                                            let first = back
                                                .iter()
                                                .zip(part)
                                                .position(|(a, b)| a != b)
                                                .unwrap_or(0);
                                            return Err(JobError::VerifyMismatch {
                                                target: target.describe(),
                                                offset: at + first as u64,
                                                len: (part.len() - first) as u64,
                                            });
                                        }
                                    }
                                }
                                n += re - rs;
                            }
                            if let (Mode::Write, Some(d)) = (mode, digests) {
                                d.lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .insert((e.stream, e.logical_offset), digest.finalize());
                            }
                            Ok(n)
                        })();
                        match result {
                            Ok(n) => {
                                written.fetch_add(n, Ordering::Relaxed);
                                tracker.add(n);
                            }
                            Err(err) => {
                                if let Ok(mut slot) = first_error.lock() {
                                    slot.get_or_insert(err);
                                }
                                return;
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        if cancel.is_cancelled() {
            return Err(JobError::Cancelled {
                state: String::new(),
            });
        }
        Ok(())
    }
}

/// The used runs of chunk `e` inside the clip (stream offsets), as written.
fn runs_of(job: &ChunkJob<'_>, e: &IndexEntry) -> Vec<(u64, u64)> {
    let len = u64::from(e.uncompressed_len);
    let runs = match job.bitmap {
        Some(b) => used_runs(b, e.logical_offset, len),
        None => vec![(e.logical_offset, e.logical_offset + len)],
    };
    runs.into_iter()
        .map(|(s, e)| (s.max(job.clip.0), e.min(job.clip.1)))
        .filter(|(s, e)| s < e)
        .collect()
}

/// Reads back what chunk `e` wrote and compares its crc32 with the one recorded when writing.
fn verify_digest(
    job: &ChunkJob<'_>,
    e: &IndexEntry,
    digests: Option<&Digests>,
    back: &mut Vec<u8>,
) -> Result<u64, JobError> {
    let runs = runs_of(job, e);
    let mut h = crc32fast::Hasher::new();
    let mut n = 0;
    for &(rs, re) in &runs {
        let at = job.dst_start + rs;
        let len = (re - rs) as usize;
        back.resize(len, 0);
        job.target
            .read_at(back, at)
            .map_err(|source| JobError::Read {
                device: job.target.describe(),
                offset: at,
                len,
                source,
            })?;
        h.update(back);
        n += re - rs;
    }
    let want = digests.and_then(|d| {
        d.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(e.stream, e.logical_offset))
            .copied()
    });
    if want != Some(h.finalize()) {
        return Err(JobError::VerifyMismatch {
            target: job.target.describe(),
            offset: job.dst_start + runs.first().map_or(e.logical_offset, |r| r.0),
            len: n,
        });
    }
    Ok(n)
}

/// TRIMs the blocks of a restored partition that its file system does not use.
fn discard_unused(
    image: &ImageReader,
    w: &StreamWrite,
    target: &dyn BlockIo,
) -> Result<u64, JobError> {
    let Some(b) = image.bitmap(w.stream)? else {
        return Ok(0);
    };
    let bs = u64::from(b.block_size());
    let mut total = 0;
    let mut blk = 0;
    while blk < b.blocks() {
        let start = b.next_with(blk, false, u64::MAX);
        if start >= b.blocks() {
            break;
        }
        blk = b.next_with(start, true, u64::MAX);
        let (s, e) = (start * bs, (blk * bs).min(w.len));
        match target.discard(w.dst_start + s, e - s) {
            Ok(true) => total += e - s,
            Ok(false) => return Ok(total),
            Err(err) => {
                log::warn!(
                    "{}: discard failed ({err}); stopping discards",
                    target.describe()
                );
                return Ok(total);
            }
        }
    }
    Ok(total)
}
