//! A bounded-memory pipeline: read on the calling thread → compress on N workers → write in the
//! original order on one writer thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::error::Error;
use crate::writer::{compress_chunk, CompressedChunk};

/// One chunk of input for [`ParallelCompressor::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkJob {
    /// Stream id.
    pub stream: u32,
    /// Logical offset inside the stream.
    pub offset: u64,
    /// The chunk's data.
    pub data: Vec<u8>,
}

/// What a pipeline run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Chunks passed to the sink.
    pub chunks: u64,
    /// Uncompressed bytes read from the source.
    pub bytes_in: u64,
    /// Compressed bytes passed to the sink.
    pub bytes_out: u64,
    /// Largest number of chunks alive in the pipeline at once.
    pub peak_in_flight: usize,
}

/// Compresses chunks on `threads` worker threads with at most `2 × threads + 2` chunks alive at
/// any time (read but not yet handed to the sink), delivering them to the sink in input order.
#[derive(Debug, Clone, Copy)]
pub struct ParallelCompressor {
    threads: usize,
    level: i32,
}

struct Shared<E> {
    /// Free slots for chunks in flight.
    slots: Mutex<usize>,
    slot_freed: Condvar,
    stop: AtomicBool,
    error: Mutex<Option<E>>,
    peak: Mutex<usize>,
    limit: usize,
}

impl<E> Shared<E> {
    fn fail(&self, e: E) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        drop(slot);
        self.halt();
    }

    fn halt(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.slot_freed.notify_all();
    }

    fn stopped(&self, cancel: &AtomicBool) -> bool {
        self.stop.load(Ordering::SeqCst) || cancel.load(Ordering::SeqCst)
    }

    /// Waits for a free slot; false when the pipeline stops first.
    fn acquire(&self, cancel: &AtomicBool) -> bool {
        let mut free = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.stopped(cancel) {
                return false;
            }
            if *free > 0 {
                *free -= 1;
                let in_flight = self.limit - *free;
                let mut peak = self.peak.lock().unwrap_or_else(|p| p.into_inner());
                *peak = (*peak).max(in_flight);
                return true;
            }
            free = match self
                .slot_freed
                .wait_timeout(free, Duration::from_millis(50))
            {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    fn release(&self) {
        let mut free = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        drop(free);
        self.slot_freed.notify_all();
    }
}

/// Stops the pipeline if the thread holding it unwinds.
struct HaltOnPanic<'a, E>(&'a Shared<E>);

impl<E> Drop for HaltOnPanic<'_, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.halt();
        }
    }
}

impl ParallelCompressor {
    /// A pipeline with `threads` compression workers (at least 1) at zstd `level`.
    pub fn new(threads: usize, level: i32) -> Self {
        ParallelCompressor {
            threads: threads.max(1),
            level,
        }
    }

    /// Largest number of chunks alive at once: `2 × threads + 2`.
    pub fn max_in_flight(&self) -> usize {
        2 * self.threads + 2
    }

    /// Runs the pipeline. `source` is called on the calling thread until it returns `Ok(None)`;
    /// `sink` gets the compressed chunks in the order `source` produced them, on a writer thread.
    /// The first error from either (or from compression) stops everything and is returned;
    /// setting `cancel` stops everything with [`Error::Cancelled`].
    pub fn run<E, S, K>(
        &self,
        cancel: &AtomicBool,
        mut source: S,
        mut sink: K,
    ) -> Result<PipelineStats, E>
    where
        E: From<Error> + Send,
        S: FnMut() -> Result<Option<ChunkJob>, E>,
        K: FnMut(CompressedChunk) -> Result<(), E> + Send,
    {
        let limit = self.max_in_flight();
        let shared: Shared<E> = Shared {
            slots: Mutex::new(limit),
            slot_freed: Condvar::new(),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
            peak: Mutex::new(0),
            limit,
        };
        let (work_tx, work_rx) = mpsc::sync_channel::<(u64, ChunkJob)>(self.threads);
        let work_rx = Mutex::new(work_rx);
        let (done_tx, done_rx) = mpsc::channel::<(u64, Result<CompressedChunk, Error>)>();
        let level = self.level;
        let mut produced = 0u64;
        let mut bytes_in = 0u64;
        let (emitted, bytes_out, panicked) = std::thread::scope(|scope| {
            let mut workers = Vec::with_capacity(self.threads);
            for _ in 0..self.threads {
                let done_tx = done_tx.clone();
                let (shared, work_rx) = (&shared, &work_rx);
                workers.push(scope.spawn(move || {
                    let _guard = HaltOnPanic(shared);
                    loop {
                        let job = {
                            let rx = work_rx.lock().unwrap_or_else(|p| p.into_inner());
                            rx.recv()
                        };
                        let Ok((seq, job)) = job else { break };
                        if shared.stopped(cancel) {
                            // Keep draining so the reader never blocks on a full queue.
                            continue;
                        }
                        let r = compress_chunk(job.stream, job.offset, &job.data, level);
                        drop(job);
                        if done_tx.send((seq, r)).is_err() {
                            shared.halt();
                        }
                    }
                }));
            }
            drop(done_tx);
            let shared_w = &shared;
            let writer = scope.spawn(move || {
                let _guard = HaltOnPanic(shared_w);
                let mut pending: BTreeMap<u64, CompressedChunk> = BTreeMap::new();
                let mut next = 0u64;
                let mut out = 0u64;
                while let Ok((seq, r)) = done_rx.recv() {
                    match r {
                        Ok(c) => {
                            pending.insert(seq, c);
                        }
                        Err(e) => {
                            shared_w.fail(E::from(e));
                            break;
                        }
                    }
                    while let Some(c) = pending.remove(&next) {
                        if shared_w.stopped(cancel) {
                            return (next, out);
                        }
                        out += c.memory_len() as u64;
                        if let Err(e) = sink(c) {
                            shared_w.fail(e);
                            return (next, out);
                        }
                        next += 1;
                        shared_w.release();
                    }
                }
                (next, out)
            });
            // The reader: this thread.
            loop {
                if !shared.acquire(cancel) {
                    break;
                }
                match source() {
                    Ok(Some(job)) => {
                        bytes_in += job.data.len() as u64;
                        if work_tx.send((produced, job)).is_err() {
                            break;
                        }
                        produced += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        shared.fail(e);
                        break;
                    }
                }
            }
            drop(work_tx);
            let mut panicked = None;
            for w in workers {
                if w.join().is_err() {
                    panicked = Some("compression");
                }
            }
            let (emitted, out) = match writer.join() {
                Ok(r) => r,
                Err(_) => {
                    panicked = Some("writer");
                    (0, 0)
                }
            };
            (emitted, out, panicked)
        });
        if let Some(e) = shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        if let Some(which) = panicked {
            return Err(E::from(Error::WorkerPanicked(which)));
        }
        if cancel.load(Ordering::SeqCst) {
            return Err(E::from(Error::Cancelled));
        }
        if emitted != produced {
            return Err(E::from(Error::WorkerPanicked("compression")));
        }
        let peak = *shared.peak.lock().unwrap_or_else(|p| p.into_inner());
        Ok(PipelineStats {
            chunks: emitted,
            bytes_in,
            bytes_out,
            peak_in_flight: peak,
        })
    }
}
