//! What a copy reads and how it moves: a partition's used byte spans ([`PartitionCopy`], from
//! its file system's used-block map), and the pipeline shared by clone, partition copy and
//! verification: a reader thread reads large pieces of the source (with the bad-sector policy)
//! into a small pool of buffers, the calling thread writes them to the target. Memory is bounded
//! by the pool.

use crate::error::JobError;
use crate::progress::{Cancel, Tracker};
use crate::rescue::{read_rescue, BadSectorMap, ReadPolicy};
use crate::units::human;
use disk::BlockIo;
use disk::Window;
use fs::{FsInfo, FsKind, UsedMap};
use serde::Serialize;
use std::fmt;
use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

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
            Some(info) => match used_map_and_note(&part, info) {
                Ok((map, note)) => {
                    let mode = if info.kind == FsKind::Swap {
                        CopyMode::HeaderOnly
                    } else {
                        CopyMode::UsedBlocks
                    };
                    (mode, Some(map), note)
                }
                Err(e) => {
                    let note = whole_copy_note(info, &e);
                    if info.kind.is_encrypted() {
                        // Expected without a key, and a key given to the job may still unlock it.
                        log::info!("partition {number} of {}: {note}", src.describe());
                    } else {
                        log::warn!("partition {number} of {}: {note}", src.describe());
                    }
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

/// Why a partition whose used-block map is not available is copied whole. An encrypted volume
/// says so plainly: without its key nothing inside can be told apart, and ciphertext does not
/// compress, so the image is about as large as the partition.
fn whole_copy_note(info: &FsInfo, e: &fs::MapError) -> String {
    let detail = info
        .detail
        .as_deref()
        .map(|d| format!(" ({})", disk::text::printable(d)))
        .unwrap_or_default();
    let version = info.version.as_deref().unwrap_or(info.kind.name());
    match info.kind {
        FsKind::CryptoLuks | FsKind::BitLocker => format!(
            "{} encrypted volume{detail}: without its key every byte is copied, and encrypted \
             data does not compress, so the image is about as large as the partition",
            if info.kind == FsKind::BitLocker {
                "BitLocker"
            } else {
                version
            }
        ),
        FsKind::LinuxRaidMember => format!(
            "md RAID member{detail}: {}: every byte is copied (the member's data and the \
             array's superblock), so the copy is the same member of the same array",
            disk::text::printable(&e.to_string())
        ),
        _ => format!(
            "{} used-block map not available ({e}): every byte is copied",
            info.kind.name()
        ),
    }
}

/// The used map of a partition; for an LVM2 PV also what it keeps of each LV (`LVM2 PV, VG vg0:
/// lv root (ext4, 1.2 GiB used), lv swap (swap: header only)`).
fn used_map_and_note(
    part: &dyn BlockIo,
    info: &FsInfo,
) -> Result<(UsedMap, Option<String>), fs::MapError> {
    if info.kind == FsKind::LinuxRaidMember {
        // RAID1: the member's metadata areas and the used blocks of the array's file system.
        let (map, inside) = fs::md::member_map(part)?;
        let detail = info
            .detail
            .as_deref()
            .map(|d| format!(" ({})", disk::text::printable(d)))
            .unwrap_or_default();
        return Ok((
            map,
            Some(format!(
                "md RAID member{detail}: its superblock and metadata areas and the used blocks of \
                 the {} in its data area are copied (a RAID1 member holds a plain copy of the \
                 array's data): the copy is the same member of the same array",
                disk::text::printable(&inside)
            )),
        ));
    }
    if info.kind == FsKind::Lvm2Member {
        let report = fs::lvm::pv_report(part)?;
        let note = report.summary();
        return Ok((report.map, Some(note)));
    }
    Ok((fs::used_map(part, info)?, None))
}

impl fmt::Display for PartitionCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fs = match &self.fs {
            Some(i) => match &i.label {
                Some(l) => format!("{} \"{}\"", i.kind.name(), disk::text::printable(l)),
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

/// What a finished clone or copy did.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub bytes_copied: u64,
    pub seconds: f64,
    pub bad_sectors: BadSectorMap,
    pub verified: bool,
    pub notes: Vec<String>,
}

/// A cancellation inside a step, with the state it left the target in.
pub(crate) fn interrupted(e: JobError, state: &str) -> JobError {
    match e {
        JobError::Cancelled { .. } => JobError::Cancelled {
            state: state.to_string(),
        },
        e => e,
    }
}

/// Size of one read/write: large and aligned.
pub const PIECE: u64 = 4 << 20;
/// Buffers in flight between the reader and the writer.
const POOL: usize = 6;

/// How a range is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroPolicy {
    /// Write every byte (boot-loader areas, whole-partition copies).
    WriteAll,
    /// Skip pieces that are all zeros (free space between partitions).
    SkipZeros,
}

/// One range to copy: bytes `src` of the source land at `dst_start..` of the target.
#[derive(Debug, Clone)]
pub struct Span {
    pub src: Range<u64>,
    pub dst_start: u64,
    pub zeros: ZeroPolicy,
}

/// Everything a copy needs besides the spans.
pub struct CopyCtx<'a> {
    pub src: &'a dyn BlockIo,
    pub dst: &'a dyn BlockIo,
    pub policy: ReadPolicy,
    pub bad: &'a Mutex<BadSectorMap>,
    pub tracker: &'a Tracker<'a>,
    pub cancel: &'a Cancel,
}

impl std::fmt::Debug for CopyCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyCtx")
            .field("src", &self.src.describe())
            .field("dst", &self.dst.describe())
            .finish()
    }
}

struct Piece {
    src: u64,
    dst: u64,
    len: usize,
    zeros: ZeroPolicy,
    buf: Vec<u8>,
}

/// Copies `spans` from `ctx.src` to `ctx.dst` with a reader thread and the calling thread as
/// writer. Stops at the first error or when cancelled.
pub fn copy_spans(ctx: &CopyCtx<'_>, spans: &[Span]) -> Result<(), JobError> {
    let (full_tx, full_rx) = sync_channel::<Result<Piece, JobError>>(POOL);
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(POOL);
    for _ in 0..POOL {
        // Cannot fail: the channel has room for exactly POOL buffers.
        let _ = free_tx.send(Vec::new());
    }
    std::thread::scope(|s| {
        s.spawn(|| reader(ctx, spans, free_rx, full_tx));
        writer(ctx, full_rx, free_tx)
    })
}

fn reader(
    ctx: &CopyCtx<'_>,
    spans: &[Span],
    free: Receiver<Vec<u8>>,
    full: SyncSender<Result<Piece, JobError>>,
) {
    for span in spans {
        let mut pos = span.src.start;
        while pos < span.src.end {
            if ctx.cancel.is_cancelled() {
                return;
            }
            // Align pieces to PIECE boundaries of the source.
            let len = (PIECE - pos % PIECE).min(span.src.end - pos) as usize;
            let Ok(mut buf) = free.recv() else { return };
            buf.resize(len, 0);
            let item = match read_rescue(ctx.src, &mut buf[..len], pos, ctx.policy, ctx.bad) {
                Ok(lost) => {
                    ctx.tracker.add_bad(lost);
                    Ok(Piece {
                        src: pos,
                        dst: span.dst_start + (pos - span.src.start),
                        len,
                        zeros: span.zeros,
                        buf,
                    })
                }
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if full.send(item).is_err() || failed {
                return;
            }
            pos += len as u64;
        }
    }
}

fn writer(
    ctx: &CopyCtx<'_>,
    full: Receiver<Result<Piece, JobError>>,
    free: SyncSender<Vec<u8>>,
) -> Result<(), JobError> {
    for item in full {
        let piece = item?;
        if ctx.cancel.is_cancelled() {
            return Err(JobError::Cancelled {
                state: String::new(),
            });
        }
        let data = &piece.buf[..piece.len];
        let skip = piece.zeros == ZeroPolicy::SkipZeros && data.iter().all(|&b| b == 0);
        if !skip {
            ctx.dst
                .write_at(data, piece.dst)
                .map_err(|source| JobError::Write {
                    device: ctx.dst.describe(),
                    offset: piece.dst,
                    len: piece.len,
                    source,
                })?;
        }
        log::trace!(
            "copied {} bytes from {} to {}",
            piece.len,
            piece.src,
            piece.dst
        );
        ctx.tracker.add(piece.len as u64);
        // The reader may have stopped; then the buffer is simply dropped.
        let _ = free.send(piece.buf);
    }
    if ctx.cancel.is_cancelled() {
        return Err(JobError::Cancelled {
            state: String::new(),
        });
    }
    Ok(())
}

/// Reads `spans` back from the target and compares them with the source. Unreadable source
/// sectors (already in `bad`) are not compared.
pub fn verify_spans(ctx: &CopyCtx<'_>, spans: &[Span]) -> Result<(), JobError> {
    let mut a = vec![0u8; PIECE as usize];
    let mut b = vec![0u8; PIECE as usize];
    let bad = ctx.bad.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for span in spans {
        let mut pos = span.src.start;
        while pos < span.src.end {
            if ctx.cancel.is_cancelled() {
                return Err(JobError::Cancelled {
                    state: "verification stopped".to_string(),
                });
            }
            let len = (PIECE - pos % PIECE).min(span.src.end - pos) as usize;
            let dst = span.dst_start + (pos - span.src.start);
            let touches_bad = bad
                .ranges
                .iter()
                .any(|r| r.offset < pos + len as u64 && pos < r.offset + r.len);
            if !touches_bad {
                ctx.src
                    .read_at(&mut a[..len], pos)
                    .map_err(|source| JobError::Read {
                        device: ctx.src.describe(),
                        offset: pos,
                        len,
                        source,
                    })?;
                let skip_zero =
                    span.zeros == ZeroPolicy::SkipZeros && a[..len].iter().all(|&x| x == 0);
                if !skip_zero {
                    ctx.dst
                        .read_at(&mut b[..len], dst)
                        .map_err(|source| JobError::Read {
                            device: ctx.dst.describe(),
                            offset: dst,
                            len,
                            source,
                        })?;
                    if a[..len] != b[..len] {
                        let first = a[..len]
                            .iter()
                            .zip(&b[..len])
                            .position(|(x, y)| x != y)
                            .unwrap_or(0);
                        return Err(JobError::VerifyMismatch {
                            target: ctx.dst.describe(),
                            offset: dst + first as u64,
                            len: (len - first) as u64,
                        });
                    }
                }
            }
            ctx.tracker.add(len as u64);
            pos += len as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod encrypted_tests {
    use super::*;

    #[test]
    fn an_encrypted_volume_without_its_key_is_copied_whole_and_the_note_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("luks.img");
        let key = dir.path().join("key");
        std::fs::write(&key, b"passphrase").unwrap();
        qemu_tests::fixture::luks_format(&img, 32 << 20, "luks2", &key, &[]).unwrap();
        let io = disk::FileDisk::open_read(&img).unwrap();
        let copy = PartitionCopy::plan(&io, 1, 0, 32 << 20, 0).unwrap();
        assert_eq!(copy.mode, CopyMode::Whole);
        assert_eq!(copy.bytes, 32 << 20);
        let note = copy.note.unwrap();
        assert!(
            note.starts_with("LUKS2 encrypted volume (aes-xts-plain64 512-bit, 1 key slot, data at 16 MiB): without its key every byte is copied"),
            "{note}"
        );
        assert!(
            note.contains("the image is about as large as the partition"),
            "{note}"
        );
    }
}
