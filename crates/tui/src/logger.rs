//! The TUI's logger: every record goes to a file and to an in-memory ring that the Log screen
//! shows. Nothing is printed: the terminal belongs to the UI.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines the ring keeps.
pub const RING_LINES: usize = 2000;

/// The last [`RING_LINES`] log lines, shared between the logger and the UI.
#[derive(Debug, Clone, Default)]
pub struct LogRing(Arc<Mutex<VecDeque<String>>>);

impl LogRing {
    pub fn push(&self, line: String) {
        let mut ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() >= RING_LINES {
            ring.pop_front();
        }
        ring.push_back(line);
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `count` lines ending `skip` lines before the newest, oldest first.
    pub fn tail(&self, count: usize, skip: usize) -> Vec<String> {
        let ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let end = ring.len().saturating_sub(skip);
        let start = end.saturating_sub(count);
        ring.iter().skip(start).take(end - start).cloned().collect()
    }
}

struct TuiLogger {
    level: LevelFilter,
    file: Mutex<Option<File>>,
    ring: LogRing,
}

impl Log for TuiLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(record.level(), &record.args().to_string(), now_secs());
        if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            // A full or vanished log file must not stop the UI.
            let _ = writeln!(f, "{line}");
        }
        self.ring.push(line);
    }

    fn flush(&self) {
        if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = f.flush();
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `12:34:56 warning: text` (UTC time of day).
pub fn format_line(level: Level, text: &str, unix_secs: u64) -> String {
    let day = unix_secs % 86_400;
    let tag = match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    };
    format!(
        "{:02}:{:02}:{:02} {tag}: {text}",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// Where the log file goes: `/run/lifeboat/lifeboat.log` when `/run/lifeboat` exists (the
/// booted system), else the temporary directory.
pub fn log_path(run_dir: &Path, tmp: &Path) -> PathBuf {
    if run_dir.is_dir() {
        run_dir.join("lifeboat.log")
    } else {
        tmp.join("lifeboat.log")
    }
}

/// Installs the logger (once per process). Returns the ring and the log file's path when it
/// could be opened. Debug records are kept with `lifeboat.debug` on the kernel command line or
/// `LIFEBOAT_DEBUG` in the environment.
pub fn install() -> (LogRing, Option<PathBuf>) {
    let ring = LogRing::default();
    let path = log_path(Path::new("/run/lifeboat"), &std::env::temp_dir());
    // Never through a link planted at that name; a new log is readable by root only.
    let file = disk::create_private(&path, disk::Existing::Append);
    let (file, path) = match file {
        Ok(f) => (Some(f), Some(path)),
        Err(e) => {
            ring.push(format!(
                "warning: cannot open the log file {}: {e}",
                path.display()
            ));
            (None, None)
        }
    };
    let debug = std::env::var_os("LIFEBOAT_DEBUG").is_some()
        || std::fs::read_to_string("/proc/cmdline")
            .map(|c| c.split_whitespace().any(|w| w == "lifeboat.debug"))
            .unwrap_or(false);
    let level = if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let logger = Box::leak(Box::new(TuiLogger {
        level,
        file: Mutex::new(file),
        ring: ring.clone(),
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    } else {
        ring.push("warning: another logger is installed: log lines go there".to_string());
    }
    (ring, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_lines_and_pages_back() {
        let ring = LogRing::default();
        for i in 0..RING_LINES + 5 {
            ring.push(format!("line {i}"));
        }
        assert_eq!(ring.len(), RING_LINES);
        let tail = ring.tail(2, 0);
        assert_eq!(
            tail,
            vec![
                format!("line {}", RING_LINES + 3),
                format!("line {}", RING_LINES + 4)
            ]
        );
        assert_eq!(ring.tail(1, 1), vec![format!("line {}", RING_LINES + 3)]);
        assert!(ring.tail(5, RING_LINES + 10).is_empty());
    }

    #[test]
    fn lines_carry_time_of_day_and_level() {
        assert_eq!(
            format_line(Level::Warn, "disk gone", 86_400 * 3 + 3661),
            "01:01:01 warning: disk gone"
        );
    }

    #[test]
    fn log_goes_to_run_lifeboat_when_it_exists_else_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run-lifeboat");
        let tmp = dir.path().join("tmp");
        assert_eq!(log_path(&run, &tmp), tmp.join("lifeboat.log"));
        std::fs::create_dir(&run).unwrap();
        assert_eq!(log_path(&run, &tmp), run.join("lifeboat.log"));
    }
}
