//! Backup: a disk (table areas, boot-loader gap, every partition by used blocks, unpartitioned
//! data) or one partition into a `.lbi` image. Read → compress on N workers → ordered write, with
//! bounded memory; the image becomes valid only when its trailer is written.

use crate::error::JobError;
use crate::pipeline::{CopyMode, PartitionCopy};
use crate::progress::{Cancel, ProgressSink, Tracker};
use crate::rescue::{read_rescue, BadSectorMap, ReadPolicy};
use crate::units::human;
use disk::{BlockIo, Window};
use image::{
    AreaRef, Bitmap, ChunkJob, ImageWriter, Manifest, ParallelCompressor, PartitionEntry,
    PartitionMode, SourceDisk, StreamKind, StreamSpec, TableInfo, WriterOptions,
};
use layout::{Layout, PartitionType, TableKind};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What the user asked for.
#[derive(Debug, Clone, Copy)]
pub struct BackupOptions {
    /// zstd level (1–19; 3 is the default, fast and good).
    pub level: i32,
    /// Largest size of one volume file (`--split 4G` for FAT32 sticks).
    pub split: Option<u64>,
    /// Logical bytes per chunk.
    pub chunk_size: u32,
    /// Unreadable sectors: skip and record (default) or stop.
    pub read: ReadPolicy,
    /// Compression threads (0: one per core).
    pub threads: usize,
}

/// How a new image is encrypted (format 1.1): the password for its first key slot and the
/// Argon2id cost. `Debug` never shows the password.
#[derive(Debug, Clone)]
pub struct Encryption {
    /// The password (asked twice by the front end).
    pub password: image::Passphrase,
    /// Argon2id cost; the default takes about a second and 192 MiB.
    pub kdf: image::KdfParams,
}

impl Encryption {
    /// Encryption with `password` and the default key-derivation cost.
    pub fn new(password: image::Passphrase) -> Self {
        Encryption {
            password,
            kdf: image::KdfParams::default(),
        }
    }
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            level: 3,
            split: None,
            chunk_size: image::DEFAULT_CHUNK_SIZE,
            read: ReadPolicy::default(),
            threads: 0,
        }
    }
}

/// The chunk size for volumes of `split` bytes: small volumes take smaller chunks, since a
/// chunk never straddles two volumes.
pub fn chunk_size_for(split: Option<u64>) -> u32 {
    match split {
        Some(split) if split < 64 << 20 => {
            let want = (split / 8).clamp(64 << 10, 4 << 20);
            1u32 << (63 - want.leading_zeros())
        }
        _ => image::DEFAULT_CHUNK_SIZE,
    }
}

/// Who the source is, for the manifest (images are identified by model and serial).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceIdentity {
    pub model: String,
    pub serial: String,
}

/// One stream of the image to be.
#[derive(Debug, Serialize)]
#[serde(tag = "stream", rename_all = "kebab-case")]
pub enum StreamPlan {
    /// Raw bytes of the partition-table areas and the boot-loader gap.
    Area { offset: u64, len: u64, what: String },
    /// A partition (or the whole source when it holds a bare file system).
    Partition {
        copy: Box<PartitionCopy>,
        whole_source: bool,
    },
    /// Unpartitioned space; all-zero chunks are not stored.
    Unpartitioned { offset: u64, len: u64 },
}

impl StreamPlan {
    /// Bytes read from the source for this stream.
    pub fn bytes(&self) -> u64 {
        match self {
            StreamPlan::Area { len, .. } | StreamPlan::Unpartitioned { len, .. } => *len,
            StreamPlan::Partition { copy, .. } => copy.bytes,
        }
    }
}

/// A backup, ready to print and execute.
#[derive(Debug)]
pub struct BackupPlan {
    pub source: String,
    pub source_len: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub identity: SourceIdentity,
    pub layout: Option<Layout>,
    pub streams: Vec<StreamPlan>,
    pub image: PathBuf,
    /// Facts shown with the plan and kept in the manifest.
    pub notes: Vec<String>,
    /// Unpartitioned areas larger than 64 MiB of which only the edges are imaged.
    pub large_gaps: Vec<(u64, u64)>,
    /// Encrypt the image (set by `engine::job` from the spec).
    pub encryption: Option<Encryption>,
    /// Unlocked volumes whose plaintext is stored instead of the partition's bytes
    /// (`--decrypted`, set by `engine::job`): their streams are read from these devices.
    pub plaintext: Vec<crate::unlock::Plaintext>,
}

/// Unpartitioned areas up to this size are imaged whole (all-zero chunks are not stored).
const LARGE_GAP: u64 = 64 << 20;
/// Of larger areas, this much at each end.
const GAP_EDGE: u64 = 1 << 20;

impl BackupPlan {
    /// Images every byte of the large unpartitioned areas too (they are read in full; all-zero
    /// chunks are still not stored).
    pub fn with_all_unpartitioned(mut self) -> Self {
        let gaps = std::mem::take(&mut self.large_gaps);
        self.streams.retain(|s| match s {
            StreamPlan::Unpartitioned { offset, len } => {
                *len != GAP_EDGE
                    || !gaps
                        .iter()
                        .any(|(o, l)| offset == o || *offset + len == o + l)
            }
            _ => true,
        });
        for (offset, len) in gaps {
            self.streams.push(StreamPlan::Unpartitioned { offset, len });
        }
        self.notes.retain(|n| !n.contains("--all-unpartitioned"));
        self
    }

    /// Bytes read from the source.
    pub fn total_bytes(&self) -> u64 {
        self.streams.iter().map(StreamPlan::bytes).sum()
    }
}

impl fmt::Display for BackupPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match (&self.identity.model, &self.identity.serial) {
            (m, s) if m.is_empty() && s.is_empty() => String::new(),
            (m, s) => format!(" [{}]", disk::text::identity(None, Some(m), Some(s), None)),
        };
        writeln!(
            f,
            "back up {}{who} ({}) to {}",
            self.source,
            human(self.source_len),
            self.image.display()
        )?;
        for s in &self.streams {
            match s {
                StreamPlan::Area { offset, len, what } => {
                    writeln!(f, "   {what:<40} {:>10} at byte {offset}", human(*len))?
                }
                StreamPlan::Partition { copy, .. } => writeln!(f, "   {copy}")?,
                StreamPlan::Unpartitioned { offset, len } => writeln!(
                    f,
                    "   unpartitioned space {:>23} at byte {offset} (empty parts are not stored)",
                    human(*len)
                )?,
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {}", disk::text::printable(n))?;
        }
        if let Some(enc) = &self.encryption {
            writeln!(
                f,
                "encrypted: AES-256-GCM, key from the password by Argon2id ({} MiB, {} passes)",
                enc.kdf.memory_kib / 1024,
                enc.kdf.iterations
            )?;
        }
        writeln!(f, "total to read: {}", human(self.total_bytes()))
    }
}

/// Plans the backup of `src`: a disk when it holds a partition table, else a partition.
/// `part` picks one partition of a disk.
pub fn plan_backup(
    src: &dyn BlockIo,
    identity: SourceIdentity,
    image: &Path,
    part: Option<u32>,
) -> Result<BackupPlan, JobError> {
    let layout = match layout::read(src) {
        Ok(l) if !matches!(l.kind, TableKind::None) => Some(l),
        Ok(_) => None,
        Err(e) => {
            // A bare FAT/NTFS file system can look like a damaged table: only a file system
            // makes this a partition.
            let whole = Window::new(src, 0, src.len())
                .ok()
                .and_then(|w| fs::probe(&w).ok().flatten());
            if whole.is_none() {
                return Err(JobError::Layout(e));
            }
            None
        }
    };
    // A FAT/NTFS boot sector carries 0x55AA and parses as an MBR: prefer the file system when
    // it spans the source, as inspection does.
    let layout = match (
        layout,
        crate::inspect::inspect_io(src, &src.describe()).content,
    ) {
        (Some(_), crate::Content::FileSystem { .. }) => None,
        (l, _) => l,
    };
    let mut streams = Vec::new();
    let mut notes = Vec::new();
    let mut large_gaps = Vec::new();
    match (&layout, part) {
        (None, Some(n)) => {
            return Err(JobError::NoSuchPartition {
                device: src.describe(),
                number: n,
            });
        }
        (None, None) => {
            let copy = PartitionCopy::plan(src, 1, 0, src.len(), 0)?;
            streams.push(StreamPlan::Partition {
                copy: Box::new(copy),
                whole_source: true,
            });
        }
        (Some(l), Some(n)) => {
            let p = l.partition(n).filter(|p| !p.is_extended).ok_or_else(|| {
                JobError::NoSuchPartition {
                    device: src.describe(),
                    number: n,
                }
            })?;
            let copy = PartitionCopy::plan(src, n, p.start, p.size, 0)?;
            streams.push(StreamPlan::Partition {
                copy: Box::new(copy),
                whole_source: true,
            });
        }
        (Some(l), None) => {
            for (offset, len) in l.table_areas() {
                streams.push(StreamPlan::Area {
                    offset,
                    len,
                    what: area_name(l, offset),
                });
            }
            for p in l.partitions.iter().filter(|p| !p.is_extended) {
                let copy = PartitionCopy::plan(src, p.number, p.start, p.size, p.start)?;
                streams.push(StreamPlan::Partition {
                    copy: Box::new(copy),
                    whole_source: false,
                });
            }
            for (offset, len) in unpartitioned(l, src.len()) {
                if len <= LARGE_GAP {
                    streams.push(StreamPlan::Unpartitioned { offset, len });
                } else {
                    // Only the edges of a large empty-looking area by default: that is where
                    // stray boot loaders and RAID/LVM metadata live. `with_all_unpartitioned`
                    // reads it all.
                    streams.push(StreamPlan::Unpartitioned {
                        offset,
                        len: GAP_EDGE,
                    });
                    streams.push(StreamPlan::Unpartitioned {
                        offset: offset + len - GAP_EDGE,
                        len: GAP_EDGE,
                    });
                    notes.push(format!(
                        "{} of unpartitioned space at byte {offset}: only its first and last {} are imaged \
                         (--all-unpartitioned images it all)",
                        human(len),
                        human(GAP_EDGE)
                    ));
                    large_gaps.push((offset, len));
                }
            }
        }
    }
    Ok(BackupPlan {
        notes,
        large_gaps,
        source: src.describe(),
        source_len: src.len(),
        logical_sector_size: src.logical_sector_size(),
        physical_sector_size: src.physical_sector_size(),
        identity,
        layout: layout.clone(),
        streams,
        image: image.to_path_buf(),
        encryption: None,
        plaintext: Vec::new(),
    })
}

fn area_name(l: &Layout, offset: u64) -> String {
    let ss = u64::from(l.sector_size);
    match &l.kind {
        TableKind::Gpt(g) if offset == 0 => "protective MBR and primary GPT".to_string(),
        TableKind::Gpt(g) if offset >= g.backup_entries_lba * ss => "backup GPT".to_string(),
        TableKind::Mbr(_) if offset == 0 => "MBR and boot-loader gap".to_string(),
        TableKind::Mbr(m) if m.ebrs.iter().any(|e| e.lba * ss == offset) => {
            "extended boot record".to_string()
        }
        _ => "boot-loader gap".to_string(),
    }
}

/// The ranges of the disk outside every partition and every table area.
fn unpartitioned(l: &Layout, disk_len: u64) -> Vec<(u64, u64)> {
    let mut taken: Vec<(u64, u64)> = l
        .partitions
        .iter()
        .filter(|p| !p.is_extended)
        .map(|p| (p.start, p.end()))
        .collect();
    taken.extend(l.table_areas().into_iter().map(|(o, n)| (o, o + n)));
    taken.sort_unstable();
    let mut out = Vec::new();
    let mut pos = 0u64;
    for (s, e) in taken {
        if s > pos {
            out.push((pos, s - pos));
        }
        pos = pos.max(e);
    }
    if disk_len > pos {
        out.push((pos, disk_len - pos));
    }
    // Alignment slivers smaller than a sector are not worth a stream.
    out.retain(|&(_, n)| n >= u64::from(l.sector_size));
    out
}

/// What a finished backup wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub image: PathBuf,
    pub volumes: Vec<PathBuf>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
    pub bad_sectors: BadSectorMap,
    pub notes: Vec<String>,
}

fn image_err(e: image::Error) -> JobError {
    JobError::Image(e)
}

fn bitmap_of(copy: &PartitionCopy) -> Result<Option<Bitmap>, JobError> {
    let Some(map) = &copy.map else {
        return Ok(None);
    };
    let mut bytes: Vec<u8> = map.words().iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.truncate(map.units().div_ceil(8) as usize);
    let bm = Bitmap::new(map.unit(), map.units(), bytes).map_err(|e| {
        JobError::Image(image::Error::InvalidOptions(format!(
            "partition {}: {e}",
            copy.number
        )))
    })?;
    Ok(Some(bm))
}

/// Executes a backup plan. On any error or cancellation the partial image is deleted.
pub fn execute_backup(
    plan: &BackupPlan,
    src: &dyn BlockIo,
    opts: &BackupOptions,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<BackupReport, JobError> {
    let wopts = WriterOptions {
        chunk_size: opts.chunk_size,
        split_size: opts.split,
        level: opts.level,
    };
    // The share is looked up now, while it answers: when its server goes, the mount may go
    // too (sshfs ends and unmounts itself when its connection drops).
    let share = disk::netfs::network_mount(&plan.image);
    let mut writer = match &plan.encryption {
        Some(enc) => ImageWriter::create_encrypted(&plan.image, wopts, &enc.password, enc.kdf),
        None => ImageWriter::create(&plan.image, wopts),
    }
    .map_err(|e| {
        failure(
            image_err(e),
            &plan.image,
            share.as_ref(),
            "no image was written".to_string(),
        )
    })?;
    match write_streams(plan, src, opts, sink, cancel, &mut writer) {
        Ok((manifest, tracker_state)) => {
            log::debug!("all blocks handed to the image writer; finishing the image");
            let summary = writer.finish(&manifest).map_err(|e| {
                failure(
                    image_err(e),
                    &plan.image,
                    share.as_ref(),
                    "the partial image has no trailer and reads as incomplete".to_string(),
                )
            })?;
            let (bytes_read, seconds, bad_sectors) = tracker_state;
            let mut notes: Vec<String> = manifest.notes.clone();
            if !bad_sectors.is_empty() {
                notes.push(format!(
                    "{} of the source could not be read and are zeros in the image",
                    human(bad_sectors.bytes())
                ));
            }
            Ok(BackupReport {
                image: plan.image.clone(),
                volumes: summary.volumes,
                bytes_read,
                bytes_written: summary.bytes_written,
                seconds,
                bad_sectors,
                notes,
            })
        }
        Err(e) => {
            let left = match writer.abort() {
                Ok(()) => "the partial image was removed".to_string(),
                Err(abort) => {
                    log::warn!(
                        "removing the partial image {}: {abort}",
                        plan.image.display()
                    );
                    "the partial image could not be removed: it has no trailer and reads as incomplete"
                        .to_string()
                }
            };
            Err(failure(e, &plan.image, share.as_ref(), left))
        }
    }
}

/// The error of a backup that stopped: a full destination, a refused write or a share whose
/// server is gone named as such (the share by its server and name), with what became of the
/// partial image (`left`).
fn failure(
    e: JobError,
    image: &Path,
    share: Option<&disk::netfs::NetMount>,
    left: String,
) -> JobError {
    let on = share.map(|s| s.describe()).unwrap_or_default();
    match e {
        JobError::Image(e @ image::Error::DestinationFull { .. }) => JobError::BadImage {
            image: image.display().to_string(),
            problem: match share {
                Some(_) => format!(
                    "{e}: the {on} is full; {left}; free space on it or choose another place"
                ),
                None => format!("{e}: {left}; free space or choose another drive"),
            },
        },
        JobError::Cancelled { .. } | JobError::Image(image::Error::Cancelled) => {
            JobError::Cancelled { state: left }
        }
        JobError::Image(image::Error::Io { source, .. })
            if share.is_some()
                && matches!(
                    source.raw_os_error(),
                    Some(nix::libc::EACCES | nix::libc::EPERM)
                ) =>
        {
            JobError::BadImage {
                image: image.display().to_string(),
                problem: format!(
                    "the {on} refuses the write (permission denied: {source}); {left}"
                ),
            }
        }
        JobError::Image(e) if share.is_some() => JobError::BadImage {
            image: image.display().to_string(),
            problem: format!("writing to the {on} failed{}: {e}; {left}", gone_hint(&e)),
        },
        e => e,
    }
}

/// What a transient write error on a share means (the kernel's words, "I/O error" or
/// "Transport endpoint is not connected", do not say it), unless the error says it already.
fn gone_hint(e: &image::Error) -> &'static str {
    match e {
        image::Error::Io { source, .. }
            if disk::netfs::is_transient(source)
                && !source.to_string().contains("does not answer") =>
        {
            " (the server does not answer or the connection to it was lost)"
        }
        _ => "",
    }
}

type WriteOutcome = (Manifest, (u64, f64, BadSectorMap));

fn write_streams(
    plan: &BackupPlan,
    src: &dyn BlockIo,
    opts: &BackupOptions,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
    writer: &mut ImageWriter,
) -> Result<WriteOutcome, JobError> {
    let mut manifest = Manifest {
        tool_version: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        created: image::rfc3339_utc(std::time::SystemTime::now()),
        source: SourceDisk {
            path: plan.source.clone(),
            model: plan.identity.model.clone(),
            serial: plan.identity.serial.clone(),
            size: plan.source_len,
            logical_sector_size: plan.logical_sector_size,
            physical_sector_size: plan.physical_sector_size,
        },
        ..Manifest::default()
    };
    manifest.table = TableInfo {
        kind: match plan.layout.as_ref().map(|l| &l.kind) {
            Some(TableKind::Gpt(_)) => "gpt",
            Some(TableKind::Mbr(_)) => "mbr",
            _ => "none",
        }
        .to_string(),
        disk_id: match plan.layout.as_ref().map(|l| &l.kind) {
            Some(TableKind::Gpt(g)) => g.disk_guid.hyphenated().to_string(),
            Some(TableKind::Mbr(m)) => format!("0x{:08x}", m.disk_signature),
            _ => String::new(),
        },
        areas: Vec::new(),
    };
    // Streams, in plan order; work items are (stream id, source offset of byte 0, length, map).
    struct Work<'p> {
        id: u32,
        base: u64,
        len: u64,
        copy: Option<&'p PartitionCopy>,
        /// Read from here (at `base`) instead of the source: an unlocked volume's plaintext.
        from: Option<&'p dyn BlockIo>,
    }
    let mut work = Vec::new();
    for s in &plan.streams {
        match s {
            StreamPlan::Area { offset, len, what } => {
                let id = writer
                    .add_stream(StreamSpec {
                        kind: StreamKind::DiskArea,
                        length: *len,
                        source_offset: *offset,
                        partition: 0,
                        bitmap: None,
                    })
                    .map_err(image_err)?;
                manifest.table.areas.push(AreaRef {
                    stream: id,
                    offset: *offset,
                    len: *len,
                    what: what.clone(),
                });
                work.push(Work {
                    id,
                    base: *offset,
                    len: *len,
                    copy: None,
                    from: None,
                });
            }
            StreamPlan::Unpartitioned { offset, len } => {
                let id = writer
                    .add_stream(StreamSpec {
                        kind: StreamKind::Unpartitioned,
                        length: *len,
                        source_offset: *offset,
                        partition: 0,
                        bitmap: None,
                    })
                    .map_err(image_err)?;
                work.push(Work {
                    id,
                    base: *offset,
                    len: *len,
                    copy: None,
                    from: None,
                });
            }
            StreamPlan::Partition { copy, whole_source } => {
                let kind = if *whole_source {
                    StreamKind::Whole
                } else {
                    StreamKind::Partition
                };
                let id = writer
                    .add_stream(StreamSpec {
                        kind,
                        length: copy.len,
                        source_offset: copy.src_start,
                        partition: copy.number,
                        bitmap: bitmap_of(copy)?,
                    })
                    .map_err(image_err)?;
                manifest
                    .partitions
                    .push(partition_entry(plan.layout.as_ref(), copy, Some(id)));
                if let Some(n) = &copy.note {
                    manifest
                        .notes
                        .push(format!("partition {}: {n}", copy.number));
                }
                let plain = plan.plaintext.iter().find(|p| p.number == copy.number);
                work.push(Work {
                    id,
                    base: if plain.is_some() { 0 } else { copy.src_start },
                    len: copy.len,
                    copy: Some(copy),
                    from: plain.map(|p| &p.disk as &dyn BlockIo),
                });
            }
        }
    }
    manifest.notes.extend(plan.notes.iter().cloned());
    // Partitions listed in the table but not stored (the extended container).
    if let Some(l) = &plan.layout {
        for p in l.partitions.iter().filter(|p| p.is_extended) {
            let mut e = entry_from_table(p);
            e.mode = PartitionMode::Skipped;
            e.note = "extended partition: its logical partitions are stored one by one".to_string();
            manifest.partitions.push(e);
        }
        manifest.partitions.sort_by_key(|e| e.number);
    }

    let tracker = Tracker::new(plan.total_bytes(), sink);
    let bad = Mutex::new(BadSectorMap::default());
    let cs = u64::from(writer.chunk_size());
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        opts.threads
    };
    let compressor = ParallelCompressor::new(threads, opts.level);
    // The source closure walks (stream, chunk) pairs and reads only what is needed.
    let mut wi = 0usize;
    let mut offset = 0u64;
    let mut phase_of = usize::MAX;
    let source = || -> Result<Option<ChunkJob>, JobError> {
        loop {
            let Some(w) = work.get(wi) else {
                return Ok(None);
            };
            if offset >= w.len {
                wi += 1;
                offset = 0;
                continue;
            }
            if cancel.is_cancelled() {
                return Err(JobError::Cancelled {
                    state: String::new(),
                });
            }
            if phase_of != wi {
                phase_of = wi;
                tracker.set_phase(match w.copy {
                    Some(c) => format!("partition {}", c.number),
                    None => "disk areas".to_string(),
                });
            }
            let at = offset;
            let n = cs.min(w.len - at);
            offset += n;
            let map = w.copy.and_then(|c| c.map.as_ref());
            let runs = map.map(|m| map_runs(m, at, n));
            if let (Some(m), Some(runs)) = (map, &runs) {
                if runs.is_empty() {
                    // Jump to the chunk holding the next used unit: a nearly empty multi-terabyte
                    // partition is crossed in one search, not chunk by chunk.
                    let unit = u64::from(m.unit());
                    let next = m.next_with(offset / unit, true, u64::MAX);
                    offset = offset.max(next.saturating_mul(unit) / cs * cs).min(w.len);
                    continue;
                }
            }
            let mut data = vec![0u8; n as usize];
            match runs {
                Some(runs) => {
                    for (s, e) in runs {
                        let buf = &mut data[(s - at) as usize..(e - at) as usize];
                        let lost =
                            read_rescue(w.from.unwrap_or(src), buf, w.base + s, opts.read, &bad)?;
                        tracker.add_bad(lost);
                        tracker.add(e - s);
                    }
                }
                None => {
                    let lost = read_rescue(
                        w.from.unwrap_or(src),
                        &mut data,
                        w.base + at,
                        opts.read,
                        &bad,
                    )?;
                    tracker.add_bad(lost);
                    tracker.add(n);
                }
            }
            return Ok(Some(ChunkJob {
                stream: w.id,
                offset: at,
                data,
            }));
        }
    };
    let sink_fn = |chunk| writer.write_chunk(chunk).map_err(image_err);
    compressor.run(cancel.flag(), source, sink_fn)?;
    tracker.finish();
    let bad_sectors = bad.into_inner().unwrap_or_else(|e| e.into_inner());
    manifest.bad_sectors = bad_sectors
        .ranges
        .iter()
        .map(|r| image::BadRange {
            offset: r.offset,
            len: r.len,
        })
        .collect();
    Ok((
        manifest,
        (tracker.done(), tracker.elapsed().as_secs_f64(), bad_sectors),
    ))
}

/// The used byte runs of `map` inside `[at, at+n)`, with gaps of up to 64 KiB read through so
/// the disk sees few, large reads.
fn map_runs(map: &fs::UsedMap, at: u64, n: u64) -> Vec<(u64, u64)> {
    let unit = u64::from(map.unit());
    crate::blockmap::used_runs(
        unit,
        map.units(),
        |from, used, limit| map.next_with(from, used, limit),
        at,
        n,
        64 * 1024,
    )
}

fn entry_from_table(p: &layout::Partition) -> PartitionEntry {
    let (type_guid, flags) = match p.kind {
        PartitionType::Gpt(g) => (g.hyphenated().to_string(), p.attributes),
        PartitionType::Mbr(_) => (String::new(), if p.bootable { 0x80 } else { 0 }),
    };
    PartitionEntry {
        number: p.number,
        stream: None,
        start: p.start,
        size: p.size,
        part_type: p.kind.to_string(),
        type_guid,
        part_guid: p
            .guid
            .map(|g| g.hyphenated().to_string())
            .unwrap_or_default(),
        name: p.name.clone(),
        flags,
        ..PartitionEntry::default()
    }
}

fn partition_entry(
    l: Option<&Layout>,
    copy: &PartitionCopy,
    stream: Option<u32>,
) -> PartitionEntry {
    let mut e = match l.and_then(|l| l.partition(copy.number)) {
        Some(p) => entry_from_table(p),
        None => PartitionEntry {
            number: copy.number,
            start: copy.src_start,
            size: copy.len,
            ..PartitionEntry::default()
        },
    };
    e.stream = stream;
    if let Some(fs) = &copy.fs {
        e.fs = fs.kind.name().to_string();
        e.label = fs.label.clone().unwrap_or_default();
        e.uuid = fs.uuid.clone().unwrap_or_default();
        e.block_size = fs.block_size;
    }
    e.used_bytes = copy.bytes;
    e.mode = match copy.mode {
        CopyMode::UsedBlocks => PartitionMode::UsedBlocks,
        CopyMode::Whole => PartitionMode::Whole,
        CopyMode::HeaderOnly => PartitionMode::HeaderOnly,
    };
    e.note = copy.note.clone().unwrap_or_default();
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sftp() -> disk::netfs::NetMount {
        disk::netfs::NetMount {
            fs_type: "fuse.sshfs".into(),
            source: "root@10.0.2.2:/imgs".into(),
            mount_point: "/run/lifeboat/stores/sftp-1-0".into(),
        }
    }

    fn io(errno: i32, what: &str) -> JobError {
        JobError::Image(image::Error::Io {
            op: "writing",
            path: "/run/lifeboat/stores/sftp-1-0/x.lbi".into(),
            source: if what.is_empty() {
                std::io::Error::from_raw_os_error(errno)
            } else {
                std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string())
            },
        })
    }

    #[test]
    fn a_write_that_fails_because_the_server_went_away_names_the_share_and_says_so() {
        let left =
            "the partial image could not be removed: it has no trailer and reads as incomplete";
        let image = Path::new("/run/lifeboat/stores/sftp-1-0/x.lbi");
        // sshfs: the connection dropped (ssh's keep-alives unanswered): the kernel says EIO.
        let e = failure(io(nix::libc::EIO, ""), image, Some(&sftp()), left.into()).to_string();
        assert!(
            e.contains("writing to the SFTP folder root@10.0.2.2:/imgs failed (the server does not answer or the connection to it was lost): "),
            "{e}"
        );
        assert!(e.ends_with(left), "{e}");
        // The stall deadline's own words are not repeated.
        let stalled = "no write to x.lbi finished for 8 s: the server does not answer";
        let e = failure(io(0, stalled), image, Some(&sftp()), left.into()).to_string();
        assert!(
            e.contains(&format!("failed: writing {}: {stalled}", image.display())),
            "{e}"
        );
        // Not a share: the error as it is.
        let e = failure(io(nix::libc::EIO, ""), image, None, left.into()).to_string();
        assert!(!e.contains("server"), "{e}");
    }
}
