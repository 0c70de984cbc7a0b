//! The binary's logger: warnings and errors to stderr (info with `-v`, debug with `-vv` or
//! `lifeboat.debug` on the kernel command line). Libraries only use the `log` macros.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    level: LevelFilter,
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
        eprintln!(
            "lifeboat: {tag}: {}",
            crate::stores::name_urls(&record.args().to_string())
        );
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
    let logger = Box::leak(Box::new(StderrLogger { level }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
