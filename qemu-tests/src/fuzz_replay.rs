//! Replaying committed fuzz inputs on stable: each crate's `tests/fuzz_regressions.rs` feeds every
//! file under its `fuzz/<dir>/` (crashers under `regressions/<target>/`, seeds under `corpus/`)
//! through the entry point its cargo-fuzz target calls. See FUZZING.md.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one input may take before it counts as a hang (libFuzzer's limit is 20 s in a
/// release build; tests run in debug builds on a shared machine).
pub const INPUT_TIMEOUT: Duration = Duration::from_secs(120);

/// Every file under `crate_dir/fuzz/dir`, recursively, sorted.
pub fn inputs(crate_dir: &Path, dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![crate_dir.join("fuzz").join(dir)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs `f` on every input of `crate_dir/fuzz/dir`, each on its own thread under
/// [`INPUT_TIMEOUT`]; panics naming the file that panics or hangs. Returns how many ran.
pub fn replay(crate_dir: &Path, dir: &str, f: fn(&[u8])) -> usize {
    let files = inputs(crate_dir, dir);
    for p in &files {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            f(&data);
            let _ = tx.send(());
        });
        match rx.recv_timeout(INPUT_TIMEOUT) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{} did not finish within {INPUT_TIMEOUT:?}", p.display())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = worker.join();
                panic!("{} panicked", p.display());
            }
        }
        eprintln!("replayed {} in {:?}", p.display(), started.elapsed());
    }
    files.len()
}
