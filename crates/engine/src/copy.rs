//! The copy pipeline shared by clone and partition copy: a reader thread reads large pieces of
//! the source (with the bad-sector policy) into a small pool of buffers, the calling thread
//! writes them to the target. Memory is bounded by the pool.

use crate::error::JobError;
use crate::progress::{Cancel, Tracker};
use crate::rescue::{read_rescue, BadSectorMap, ReadPolicy};
use disk::BlockIo;
use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

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
