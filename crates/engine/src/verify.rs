//! Verify: read every chunk of an image and check it (checksums of both forms, structure), on
//! several threads, with progress. Reads only; the one verifier behind `lifeboat verify`, job
//! files and the TUI.

use crate::error::JobError;
use crate::progress::{Cancel, Progress, ProgressSink};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Verifies every chunk of the image at `path` on `threads` threads (0: one per core), sending
/// progress about four times a second. `Ok` carries what was found, damaged or not; `Err` when
/// the image cannot be opened or the user cancelled.
pub fn verify_image(
    path: &Path,
    threads: usize,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<image::VerifyReport, JobError> {
    let reader = crate::keys::open_image(path)?;
    let threads = match threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n,
    };
    let total: u64 = reader
        .index()
        .iter()
        .map(|e| u64::from(e.uncompressed_len))
        .sum();
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    let phase = format!("verifying {}", path.display());
    let report = |finished: bool| {
        let Some(sink) = sink else { return };
        let d = done.load(Ordering::Relaxed).min(total);
        let elapsed = start.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            d as f64 / elapsed
        } else {
            0.0
        };
        sink(&Progress {
            phase: phase.clone(),
            done: d,
            total,
            bytes_per_sec: rate,
            eta_secs: (rate > 0.0).then(|| ((total - d) as f64 / rate) as u64),
            elapsed_secs: elapsed,
            bad_bytes: 0,
            finished,
        });
    };
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                report(false);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        let r = reader.verify_with(threads, cancel.flag(), &done);
        finished.store(true, Ordering::SeqCst);
        r
    });
    report(true);
    match result {
        Ok(r) => {
            log::info!(
                "{}: {} chunks checked, {} bad, {} structural problems",
                path.display(),
                r.chunks,
                r.bad.len(),
                r.structure.len()
            );
            Ok(r)
        }
        Err(image::Error::Cancelled) => Err(JobError::Cancelled {
            state: format!("verify of {} stopped: nothing was changed", path.display()),
        }),
        Err(e) => Err(e.into()),
    }
}
