//! Progress events and cancellation, shared by every job.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One progress event: what the CLI draws as a bar (or prints as a JSON line) and the TUI shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// What is being done, e.g. `copying partition 2`.
    pub phase: String,
    /// Bytes done of `total` (both count the bytes the job really moves, not the disk size).
    pub done: u64,
    pub total: u64,
    /// Average rate since the start, bytes per second.
    pub bytes_per_sec: f64,
    /// Estimated seconds left, when the rate is known.
    pub eta_secs: Option<u64>,
    pub elapsed_secs: f64,
    /// Bytes of the source that could not be read so far.
    pub bad_bytes: u64,
    /// True for the last event of a job.
    pub finished: bool,
}

/// Receives progress events, on any thread.
pub type ProgressSink = dyn Fn(&Progress) + Send + Sync;

/// A cancellation flag shared between a job and whoever may stop it (Ctrl-C, the TUI).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the job to stop at the next safe point.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for code that polls an `AtomicBool`.
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }
}

/// Counts a job's bytes and sends throttled events to a sink.
pub struct Tracker<'a> {
    total: AtomicU64,
    done: AtomicU64,
    bad: AtomicU64,
    start: Instant,
    phase: Mutex<String>,
    last: Mutex<Option<Instant>>,
    sink: Option<&'a ProgressSink>,
    interval: Duration,
}

impl std::fmt::Debug for Tracker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("total", &self.total)
            .field("done", &self.done)
            .field("bad", &self.bad)
            .finish_non_exhaustive()
    }
}

impl<'a> Tracker<'a> {
    pub fn new(total: u64, sink: Option<&'a ProgressSink>) -> Self {
        Tracker {
            total: AtomicU64::new(total),
            done: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            start: Instant::now(),
            phase: Mutex::new(String::new()),
            last: Mutex::new(None),
            sink,
            interval: Duration::from_millis(250),
        }
    }

    pub fn set_phase(&self, phase: impl Into<String>) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase.into();
        self.emit(false, true);
    }

    pub fn add(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        self.emit(false, false);
    }

    pub fn add_bad(&self, bytes: u64) {
        self.bad.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn bad(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Sends the final event.
    pub fn finish(&self) {
        self.emit(true, true);
    }

    /// The current state as an event.
    pub fn snapshot(&self, finished: bool) -> Progress {
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed).max(done);
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let eta = (rate > 0.0 && !finished).then(|| ((total - done) as f64 / rate).ceil() as u64);
        Progress {
            phase: self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            done,
            total,
            bytes_per_sec: rate,
            eta_secs: eta,
            elapsed_secs: elapsed,
            bad_bytes: self.bad.load(Ordering::Relaxed),
            finished,
        }
    }

    fn emit(&self, finished: bool, force: bool) {
        let Some(sink) = self.sink else { return };
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if !force && last.is_some_and(|t| now.duration_since(t) < self.interval) {
                return;
            }
            *last = Some(now);
        }
        sink(&self.snapshot(finished));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_counts_and_reports_the_final_state() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&events);
        let sink = move |p: &Progress| seen.lock().unwrap().push(p.clone());
        let t = Tracker::new(1000, Some(&sink));
        t.set_phase("copying");
        t.add(400);
        t.add(600);
        t.add_bad(512);
        t.finish();
        let events = events.lock().unwrap().clone();
        let last = events.last().unwrap();
        assert!(last.finished);
        assert_eq!((last.done, last.total, last.bad_bytes), (1000, 1000, 512));
        assert_eq!(last.phase, "copying");
        assert_eq!(last.eta_secs, None);
    }

    #[test]
    fn cancel_is_seen_by_clones() {
        let c = Cancel::new();
        let d = c.clone();
        assert!(!d.is_cancelled());
        c.cancel();
        assert!(d.is_cancelled());
    }
}
