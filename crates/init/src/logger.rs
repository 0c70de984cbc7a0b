//! init's logger: every record goes to `/dev/kmsg` (so it shows on the kernel console and in
//! `dmesg`) and, once `/run` is mounted, to `/run/lifeboat/init.log`.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Sinks {
    kmsg: Option<File>,
    file: Option<File>,
    file_path: Option<&'static str>,
}

/// The process-wide logger; install it with [`install`].
#[derive(Debug)]
pub struct InitLogger {
    sinks: Mutex<Sinks>,
}

static LOGGER: InitLogger = InitLogger {
    sinks: Mutex::new(Sinks {
        kmsg: None,
        file: None,
        file_path: None,
    }),
};

/// Installs the logger at info level. Safe to call more than once.
pub fn install() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

/// Also writes to `path` from now on (appending).
pub fn start_file(path: &'static str) {
    let mut s = LOGGER.sinks.lock().unwrap_or_else(|e| e.into_inner());
    s.file_path = Some(path);
    s.file = None;
}

/// The `/dev/kmsg` line for a record: `<prio>lifeboat-init: message`, one line.
pub fn kmsg_line(level: Level, msg: &str) -> String {
    let prio = match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    format!("<{prio}>lifeboat-init: {}\n", msg.replace('\n', " "))
}

impl Log for InitLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = record.args().to_string();
        let line = kmsg_line(record.level(), &msg);
        let mut s = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        if s.kmsg.is_none() {
            s.kmsg = OpenOptions::new().write(true).open("/dev/kmsg").ok();
        }
        if let Some(k) = s.kmsg.as_mut() {
            if k.write_all(line.as_bytes()).is_err() {
                s.kmsg = None;
            }
        }
        if s.file.is_none() {
            if let Some(p) = s.file_path {
                s.file = OpenOptions::new().create(true).append(true).open(p).ok();
            }
        }
        if let Some(f) = s.file.as_mut() {
            let secs = uptime();
            let _ = writeln!(
                f,
                "[{secs:>9.3}] {:<5} {}",
                record.level(),
                msg.replace('\n', " ")
            );
        }
    }

    fn flush(&self) {}
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_lines_carry_priority_and_stay_on_one_line() {
        assert_eq!(kmsg_line(Level::Error, "a\nb"), "<3>lifeboat-init: a b\n");
        assert_eq!(kmsg_line(Level::Info, "x"), "<6>lifeboat-init: x\n");
        assert_eq!(kmsg_line(Level::Debug, "x"), "<7>lifeboat-init: x\n");
    }
}
