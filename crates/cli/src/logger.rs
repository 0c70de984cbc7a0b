//! The binary's logger: warnings and errors to stderr (info with `-v`, debug with `-vv` or
//! `lifeboat.debug` on the kernel command line, each debug line stamped with the seconds since
//! the process started, so `-vv` shows where a job's time goes). Libraries only use the `log`
//! macros.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::time::Instant;

struct StderrLogger {
    level: LevelFilter,
    start: Instant,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let tag = match record.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        // Files on network stores are named by their URLs, not their mount points.
        let text = crate::stores::name_urls(&record.args().to_string());
        if self.level >= LevelFilter::Debug {
            let t = self.start.elapsed().as_secs_f64();
            eprintln!("lifeboat: [{t:7.3}] {tag}: {text}");
        } else {
            eprintln!("lifeboat: {tag}: {text}");
        }
    }

    fn flush(&self) {}
}

/// Installs the logger once; `verbosity` counts `-v` flags.
pub fn init(verbosity: u8) {
    let debug_cmdline = std::fs::read_to_string("/proc/cmdline")
        .map(|c| c.split_whitespace().any(|w| w == "lifeboat.debug"))
        .unwrap_or(false);
    let level = match (verbosity, debug_cmdline) {
        (0, false) => LevelFilter::Warn,
        (1, false) => LevelFilter::Info,
        _ => LevelFilter::Debug,
    };
    let logger = Box::leak(Box::new(StderrLogger {
        level,
        start: Instant::now(),
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
