//! The udpcast transport (Debian package `udpcast`): `udp-sender` fed with an image's cast
//! stream on its standard input, `udp-receiver` whose standard output is the stream. One
//! implementation for `lifeboat serve`/`receive`, job files and the TUI. Both programs run with
//! an explicit argument list (no shell) and are killed and reaped when the session fails or is
//! cancelled; a cancellation kills them at once, even while they wait for the other side.

use super::{Delivered, ReceiverReport, ReportListener, ReportResult};
use crate::progress::Cancel;
use image::ImageReader;
use serde::Serialize;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The udpcast sender and receiver programs.
pub const UDP_SENDER: &str = "udp-sender";
pub const UDP_RECEIVER: &str = "udp-receiver";
/// udpcast's port base (it uses this port and the next).
pub const DEFAULT_PORT: u16 = 9000;
/// Seconds without data before a receiver gives up.
pub const DEFAULT_TIMEOUT: u32 = 60;
/// Seconds a sender waits for the receivers' reports after the stream ended.
pub const DEFAULT_REPORT_WAIT: u32 = 3600;
/// Why udp-sender drops a receiver, as a session report says it.
const DROPPED: &str = "stopped answering during the session: killed, crashed, cut off or too slow";

/// Why a udpcast session could not run.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    #[error("starting {program} (install the udpcast package: apt-get install udpcast): {source}")]
    Start {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("{program} has no {what}")]
    NoPipe {
        program: &'static str,
        what: &'static str,
    },
}

/// Checks a udpcast port base: even, from 1024 (udpcast uses it and the next).
pub fn parse_port(s: &str) -> Result<u16, String> {
    let p: u16 = s.parse().map_err(|_| format!("`{s}` is not a port"))?;
    if p < 1024 || !p.is_multiple_of(2) || p == u16::MAX {
        return Err(format!("port {p}: udpcast needs an even port from 1024"));
    }
    Ok(p)
}

/// Checks a rate in udpcast's notation (bits per second, or with k or m) and lowercases it.
pub fn parse_rate(s: &str) -> Result<String, String> {
    let digits = s.trim_end_matches(['k', 'K', 'm', 'M']);
    let ok = !digits.is_empty()
        && digits.len() + 1 >= s.len()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0);
    if !ok {
        return Err(format!("`{s}` is not a rate (like 100m, 5000k or 2000000)"));
    }
    Ok(s.to_ascii_lowercase())
}

/// Checks a FEC spec, udpcast's `INTERLEAVExREDUNDANCY/STRIPESIZE` (like `8x8/128`).
pub fn parse_fec(s: &str) -> Result<String, String> {
    let bad = || format!("`{s}` is not a FEC spec (like 8x8/128)");
    let (il, rest) = s.split_once('x').ok_or_else(bad)?;
    let (red, stripe) = rest.split_once('/').ok_or_else(bad)?;
    for n in [il, red, stripe] {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 4 {
            return Err(bad());
        }
    }
    Ok(s.to_string())
}

/// How a sender runs: checked values (see [`parse_port`], [`parse_rate`], [`parse_fec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderOptions {
    /// Start as soon as this many receivers have joined (1 to 1000).
    pub clients: u32,
    /// Start anyway this many seconds after the first receiver joined.
    pub wait: Option<u32>,
    /// Most bandwidth used, udpcast's notation.
    pub max_rate: Option<String>,
    /// The network interface (udpcast's default: eth0).
    pub interface: Option<String>,
    pub port: u16,
    pub fec: Option<String>,
    /// Drop a receiver that has not answered after this many requests.
    pub retries_until_drop: Option<u32>,
    /// Seconds to wait for the receivers' reports once the image is sent.
    pub report_wait: u32,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            clients: 1,
            wait: None,
            max_rate: None,
            interface: None,
            port: DEFAULT_PORT,
            fec: None,
            retries_until_drop: None,
            report_wait: DEFAULT_REPORT_WAIT,
        }
    }
}

impl SenderOptions {
    /// The argv of udp-sender (the cast stream arrives on its standard input).
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            "--nokbd".to_string(),
            "--min-receivers".to_string(),
            self.clients.to_string(),
            "--portbase".to_string(),
            self.port.to_string(),
        ];
        if let Some(w) = self.wait {
            v.extend(["--max-wait".to_string(), w.to_string()]);
        }
        if let Some(r) = &self.max_rate {
            v.extend(["--max-bitrate".to_string(), r.clone()]);
        }
        if let Some(i) = &self.interface {
            v.extend(["--interface".to_string(), i.clone()]);
        }
        if let Some(f) = &self.fec {
            v.extend(["--fec".to_string(), f.clone()]);
        }
        if let Some(n) = self.retries_until_drop {
            v.extend(["--retries-until-drop".to_string(), n.to_string()]);
        }
        v
    }
}

/// How a receiver runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverOptions {
    /// The network interface (udpcast's default: eth0).
    pub interface: Option<String>,
    pub port: u16,
    /// Give up when no data arrives for this many seconds once the session started.
    pub timeout: u32,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            interface: None,
            port: DEFAULT_PORT,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ReceiverOptions {
    /// The argv of udp-receiver (the stream leaves on its standard output).
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            "--nokbd".to_string(),
            "--portbase".to_string(),
            self.port.to_string(),
            "--receive-timeout".to_string(),
            self.timeout.to_string(),
        ];
        if let Some(i) = &self.interface {
            v.extend(["--interface".to_string(), i.clone()]);
        }
        v
    }
}

/// What happened to one receiver, as udp-sender tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Receiver {
    /// udp-sender's number for it (`#N`).
    pub number: u32,
    pub address: String,
    /// `joined` (still connected when udp-sender ended), `done` (received everything and
    /// disconnected), `dropped` (stopped answering: killed, crashed, cut off or too slow).
    pub state: &'static str,
}

/// Follows udp-sender's messages (`New connection from A (#N)`, `Disconnecting #N (A)`,
/// `Dropping client #N because of timeout`) into the receivers' states.
#[derive(Debug, Default)]
pub struct SenderLog {
    pub receivers: Vec<Receiver>,
    /// The address udp-sender sends from (its banner `UDP sender for F at ADDR on IF`).
    pub at: Option<IpAddr>,
    /// The last lines, for errors.
    pub tail: Vec<String>,
}

impl SenderLog {
    pub fn line(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let number = |s: &str| -> Option<u32> {
            let at = s.find('#')?;
            let digits: String = s[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.parse().ok()
        };
        if let Some(rest) = line.strip_prefix("UDP sender for ") {
            // The file name may hold spaces: the address follows the last " at ".
            if let Some((_, tail)) = rest.rsplit_once(" at ") {
                self.at = tail.split_whitespace().next().and_then(|a| a.parse().ok());
            }
            self.push_tail(line);
        } else if let Some(rest) = line.strip_prefix("New connection from ") {
            let address = rest.split_whitespace().next().unwrap_or("").to_string();
            if let Some(n) = number(rest) {
                self.receivers.retain(|r| r.number != n);
                if self.receivers.len() < super::MAX_REPORTS {
                    self.receivers.push(Receiver {
                        number: n,
                        address: disk::text::printable(&address).into_owned(),
                        state: "joined",
                    });
                }
            }
        } else if let Some(rest) = line.strip_prefix("Disconnecting ") {
            if let Some(n) = number(rest) {
                self.set(n, "done");
            }
        } else if line.starts_with("Dropping client") || line.starts_with("dropped client") {
            if let Some(n) = number(line) {
                self.set(n, "dropped");
            }
        } else if !line.starts_with("bytes=") {
            self.push_tail(line);
        }
    }

    fn push_tail(&mut self, line: &str) {
        self.tail.push(disk::text::printable(line).into_owned());
        if self.tail.len() > 8 {
            self.tail.remove(0);
        }
    }

    fn set(&mut self, n: u32, state: &'static str) {
        if let Some(r) = self.receivers.iter_mut().find(|r| r.number == n) {
            // A dropped receiver stays dropped.
            if r.state != "dropped" {
                r.state = state;
            }
        }
    }
}

/// A spawned program's pipes.
struct Pipes {
    stdin: Option<std::process::ChildStdin>,
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
}

/// A child process that is killed and reaped when dropped (or when the cancel flag it watches
/// is raised), unless waited for.
struct Reaped {
    child: Arc<Mutex<Option<Child>>>,
    name: &'static str,
    watching: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Reaped {
    fn spawn(
        name: &'static str,
        argv: &[String],
        stdin: Stdio,
        stdout: Stdio,
        cancel: &Cancel,
    ) -> Result<(Self, Pipes), UdpError> {
        let mut child = Command::new(name)
            .args(argv)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| UdpError::Start {
                program: name,
                source,
            })?;
        // The pipes go to the caller; the process stays here.
        let pipes = Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        };
        let child = Arc::new(Mutex::new(Some(child)));
        let watching = Arc::new(AtomicBool::new(true));
        let watcher = {
            let (child, watching, cancel) =
                (Arc::clone(&child), Arc::clone(&watching), cancel.clone());
            std::thread::spawn(move || {
                while watching.load(Ordering::SeqCst) {
                    if cancel.is_cancelled() {
                        if let Some(c) = lock(&child).as_mut() {
                            let _ = c.kill();
                        }
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Ok((
            Reaped {
                child,
                name,
                watching,
                watcher: Some(watcher),
            },
            pipes,
        ))
    }

    fn stop_watching(&mut self) {
        self.watching.store(false, Ordering::SeqCst);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }

    fn wait(mut self) -> Result<ExitStatus, UdpError> {
        self.stop_watching();
        let taken = lock(&self.child).take();
        match taken {
            Some(mut c) => c.wait().map_err(|source| UdpError::Wait {
                program: self.name,
                source,
            }),
            None => Err(UdpError::Wait {
                program: self.name,
                source: std::io::Error::other("already reaped"),
            }),
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.stop_watching();
        if let Some(mut c) = lock(&self.child).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads `r` to its end in a thread, feeding each line (ended by `\n` or `\r`, at most 4 KiB) to
/// `f`.
fn follow(
    r: impl Read + Send + 'static,
    mut f: impl FnMut(&str) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(r);
        let mut line = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for &b in &buf[..n] {
                if b == b'\n' || b == b'\r' {
                    f(&String::from_utf8_lossy(&line));
                    line.clear();
                } else if line.len() < 4096 {
                    line.push(b);
                }
            }
        }
        if !line.is_empty() {
            f(&String::from_utf8_lossy(&line));
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The sender.

/// What a sending session tells its front end as it happens.
#[derive(Debug, Clone)]
pub enum SendEvent {
    /// udp-sender runs and waits for the receivers; reports are taken on `reports_at` (`None`:
    /// no listener could be opened, `warning` says why).
    Waiting {
        clients: u32,
        port: u16,
        reports_at: Option<std::net::SocketAddr>,
        warning: Option<String>,
    },
    /// udp-sender's own progress line (bytes sent, retransmissions), printable.
    Progress(String),
    /// A receiver joined, has the whole stream, or was dropped.
    Receiver(Receiver),
    /// The image is sent; the session waits up to `seconds` for `count` reports.
    AwaitingReports { seconds: u32, count: usize },
    /// A receiver's report arrived.
    Report(Delivered),
}

/// One receiver's result in a session: udp-sender's view joined with its report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiverOutcome {
    /// udp-sender's number for it (`None`: it reported but udp-sender never named it).
    pub number: Option<u32>,
    pub address: String,
    /// `done` (restored, by its report), `failed` (its report says why), `dropped` (joined
    /// but did not finish, or never reported in time).
    pub state: &'static str,
    /// Why it failed or was dropped.
    pub reason: Option<String>,
    /// Its report, when one arrived.
    pub report: Option<ReceiverReport>,
}

impl ReceiverOutcome {
    /// What udp-sender alone tells (no reports asked for).
    fn from_udp(r: &Receiver) -> Self {
        let (state, reason) = match r.state {
            "done" => ("done", None),
            "dropped" => ("dropped", Some(DROPPED.to_string())),
            _ => (
                "dropped",
                Some("did not receive the whole image".to_string()),
            ),
        };
        ReceiverOutcome {
            number: Some(r.number),
            address: r.address.clone(),
            state,
            reason,
            report: None,
        }
    }

    fn from_report(number: Option<u32>, d: &Delivered) -> Self {
        ReceiverOutcome {
            number,
            address: d.from.to_string(),
            state: match d.report.result {
                ReportResult::Done => "done",
                ReportResult::Failed => "failed",
            },
            reason: d.report.reason.clone(),
            report: Some(d.report.clone()),
        }
    }

    /// One line of the session report.
    pub fn line(&self) -> String {
        let who = match self.number {
            Some(n) => format!("receiver #{n} {}", self.address),
            None => format!("receiver {}", self.address),
        };
        match (&self.report, &self.reason) {
            (Some(r), _) => format!("{who}: {}", r.line()),
            (None, Some(why)) => format!("{who}: {} ({why})", self.state),
            (None, None) => format!("{who}: {}", self.state),
        }
    }
}

/// How a sending session ended.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// Every receiver udp-sender saw or that reported, in the order they joined.
    pub receivers: Vec<ReceiverOutcome>,
    /// Chunk records and bytes sent (0 when the stream did not get through).
    pub records: u64,
    pub bytes: u64,
    /// Why the session itself failed (the image, udp-sender, a cancellation).
    pub problem: Option<String>,
    /// The user cancelled it.
    pub cancelled: bool,
}

impl Session {
    /// Receivers in `state` (`done`, `failed`, `dropped`).
    pub fn count(&self, state: &str) -> usize {
        self.receivers.iter().filter(|r| r.state == state).count()
    }

    /// True when the image went out and every receiver restored it.
    pub fn complete(&self) -> bool {
        self.problem.is_none()
            && !self.receivers.is_empty()
            && self.count("done") == self.receivers.len()
    }

    /// The session report: a line per receiver, the totals, the session's error.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for r in &self.receivers {
            text.push_str(&r.line());
            text.push('\n');
        }
        if self.problem.is_none() || self.records > 0 {
            let n = self.receivers.len();
            text.push_str(&format!(
                "sent {} chunks ({} bytes) to {n} receiver{}: {} done, {} failed, {} dropped\n",
                self.records,
                self.bytes,
                if n == 1 { "" } else { "s" },
                self.count("done"),
                self.count("failed"),
                self.count("dropped"),
            ));
        }
        if let Some(p) = &self.problem {
            text.push_str(&format!("error: {p}\n"));
        }
        text
    }

    /// Why the session as a whole did not succeed, as one line (`None`: it did).
    pub fn failure(&self) -> Option<String> {
        if let Some(p) = &self.problem {
            return Some(p.clone());
        }
        if self.receivers.is_empty() {
            return Some("no receiver joined the session".to_string());
        }
        let done = self.count("done");
        (done < self.receivers.len()).then(|| {
            format!(
                "{} of {} receivers did not restore the image",
                self.receivers.len() - done,
                self.receivers.len()
            )
        })
    }
}

/// The file a session report is appended to by default: `IMAGE.cast-report.txt` beside it.
pub fn default_report_file(image: &Path) -> PathBuf {
    let mut name = image.file_name().unwrap_or_default().to_os_string();
    name.push(".cast-report.txt");
    image.with_file_name(name)
}

/// Appends `session`'s report, under a head line naming the time, image, clients and port, to
/// `path` (created 0644, never through a symlink).
pub fn save_report(
    path: &Path,
    image: &Path,
    opts: &SenderOptions,
    session: &Session,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let head = format!(
        "session {} — {} to {} receiver{} (port {}): {}\n",
        image::rfc3339_utc(std::time::SystemTime::now()),
        image.display(),
        opts.clients,
        if opts.clients == 1 { "" } else { "s" },
        opts.port,
        if session.complete() {
            "completed"
        } else {
            "failed"
        }
    );
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{head}{}\n", session.text()).as_bytes()))
}

/// A writer that fails once the cancel flag is raised (the stream into udp-sender).
struct Cancellable<'a, W> {
    inner: W,
    cancel: &'a Cancel,
}

impl<W: Write> Write for Cancellable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "cancelled",
            ));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Sends `img` once to every receiver with udp-sender: waits for `opts.clients` receivers (or
/// `opts.wait` seconds after the first), streams the image's cast stream with a report frame,
/// then waits up to `opts.report_wait` seconds for the reports of the receivers udp-sender did
/// not drop, and joins both into per-receiver results. `events` is called (from other threads
/// too) as things happen. A cancellation kills udp-sender at once, even while it waits for
/// receivers, and ends the wait for reports. `Err` only when udp-sender cannot be started.
pub fn serve(
    img: &ImageReader,
    opts: &SenderOptions,
    events: Arc<dyn Fn(SendEvent) + Send + Sync>,
    cancel: &Cancel,
) -> Result<Session, UdpError> {
    let argv = opts.argv();
    log::info!("{UDP_SENDER} {}", argv.join(" "));
    let (child, pipes) = Reaped::spawn(UDP_SENDER, &argv, Stdio::piped(), Stdio::piped(), cancel)?;
    let log = Arc::new(Mutex::new(SenderLog::default()));
    let mut threads = Vec::new();
    for out in [
        pipes.stdout.map(|s| Box::new(s) as Box<dyn Read + Send>),
        pipes.stderr.map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (log, events) = (Arc::clone(&log), Arc::clone(&events));
        threads.push(follow(out, move |line| {
            if line.trim_start().starts_with("bytes=") {
                let shown: String = disk::text::printable(line.trim())
                    .chars()
                    .take(78)
                    .collect();
                events(SendEvent::Progress(shown));
                return;
            }
            let changed: Vec<Receiver> = {
                let mut l = lock(&log);
                let before = l.receivers.clone();
                l.line(line);
                l.receivers
                    .iter()
                    .filter(|r| !before.contains(r))
                    .cloned()
                    .collect()
            };
            for r in changed {
                events(SendEvent::Receiver(r));
            }
        }));
    }
    let Some(stdin) = pipes.stdin else {
        return Err(UdpError::NoPipe {
            program: UDP_SENDER,
            what: "standard input",
        });
    };
    let (listener, warning) = match report_listener(opts, &log) {
        Ok(l) => (Some(l), None),
        Err(e) => (
            None,
            Some(format!("{e}; the receivers cannot report their results")),
        ),
    };
    events(SendEvent::Waiting {
        clients: opts.clients,
        port: opts.port,
        reports_at: listener.as_ref().map(|l| l.report_to().addr),
        warning,
    });
    let to = listener.as_ref().map(|l| l.report_to());
    let mut stdin = Cancellable {
        inner: stdin,
        cancel,
    };
    let sent = image::cast::send_with(img, &mut stdin, &|_| {}, to.as_ref());
    let flushed = stdin.flush();
    drop(stdin);
    let status = match (&sent, flushed) {
        // udp-sender finishes the session with what it has (an abort frame tells the receivers
        // why); a sender that cannot write has lost udp-sender, which is reaped by `Reaped`.
        (Ok(_), Ok(()))
        | (Err(image::Error::ChunkCorrupt { .. } | image::Error::ChunkUnreadable { .. }), _)
            if !cancel.is_cancelled() =>
        {
            Some(child.wait())
        }
        _ => {
            drop(child);
            None
        }
    };
    for t in threads {
        let _ = t.join();
    }
    let (udp, tail) = {
        let l = lock(&log);
        (l.receivers.clone(), l.tail.join("; "))
    };
    let cancelled = cancel.is_cancelled();
    let receivers = match &listener {
        Some(l) if !cancelled => collect_reports(l, &udp, opts, &*events, cancel),
        _ => udp.iter().map(ReceiverOutcome::from_udp).collect(),
    };
    drop(listener);
    let problem = match (&sent, status) {
        _ if cancelled => Some("cancelled: the session was stopped".to_string()),
        (Err(e), _) => Some(format!("the session stopped: {e}")),
        (Ok(_), None) => Some(format!("{UDP_SENDER} stopped reading the stream: {tail}")),
        (Ok(_), Some(Err(e))) => Some(e.to_string()),
        (Ok(_), Some(Ok(s))) if !s.success() => Some(format!("{UDP_SENDER} failed ({s}): {tail}")),
        _ => None,
    };
    Ok(Session {
        receivers,
        records: sent.as_ref().map(|s| s.records).unwrap_or(0),
        bytes: sent.as_ref().map(|s| s.bytes).unwrap_or(0),
        problem,
        cancelled,
    })
}

/// Listens for receiver reports on the sending interface's address (TCP, the same port number
/// as udpcast's): the address udp-sender's banner names, else the interface's first.
fn report_listener(
    opts: &SenderOptions,
    log: &Mutex<SenderLog>,
) -> Result<ReportListener, super::ReportError> {
    // udp-sender's banner comes at once.
    let start = std::time::Instant::now();
    let mut at = None;
    while at.is_none() && start.elapsed() < Duration::from_secs(5) {
        at = lock(log).at;
        if at.is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let ip = match at {
        Some(ip) if !ip.is_loopback() || opts.interface.as_deref() == Some("lo") => Ok(ip),
        _ => super::interface_address(opts.interface.as_deref()),
    }?;
    let l = ReportListener::bind(ip, opts.port)?;
    log::info!("receiver reports on tcp {}", l.report_to().addr);
    Ok(l)
}

/// Joins udp-sender's receivers with the reports that arrive within `opts.report_wait` seconds
/// (each receiver udp-sender did not drop is waited for).
fn collect_reports(
    l: &ReportListener,
    udp: &[Receiver],
    opts: &SenderOptions,
    events: &(dyn Fn(SendEvent) + Send + Sync),
    cancel: &Cancel,
) -> Vec<ReceiverOutcome> {
    let waited: Vec<&Receiver> = udp.iter().filter(|r| r.state != "dropped").collect();
    if !waited.is_empty() {
        events(SendEvent::AwaitingReports {
            seconds: opts.report_wait,
            count: waited.len(),
        });
    }
    let mut shown = 0usize;
    let reports = l.wait_for(Duration::from_secs(u64::from(opts.report_wait)), |got| {
        for d in got.iter().skip(shown) {
            events(SendEvent::Report(d.clone()));
        }
        shown = got.len();
        cancel.is_cancelled()
            || waited
                .iter()
                .all(|r| got.iter().any(|d| d.from.to_string() == r.address))
    });
    let mut out: Vec<ReceiverOutcome> = udp
        .iter()
        .map(
            |r| match reports.iter().find(|d| d.from.to_string() == r.address) {
                Some(d) => ReceiverOutcome::from_report(Some(r.number), d),
                None if r.state == "dropped" => ReceiverOutcome::from_udp(r),
                None => ReceiverOutcome {
                    state: "dropped",
                    reason: Some(format!(
                        "received the stream but sent no report within {} s",
                        opts.report_wait
                    )),
                    ..ReceiverOutcome::from_udp(r)
                },
            },
        )
        .collect();
    for d in &reports {
        if !udp.iter().any(|r| r.address == d.from.to_string()) {
            out.push(ReceiverOutcome::from_report(None, d));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The receiver.

/// What [`receive`]'s `run` returned, and udp-receiver's last messages when it failed.
#[derive(Debug)]
pub struct Finished<T> {
    pub value: T,
    /// udp-receiver's last messages, when `ok` said the run failed and it said something.
    pub said: Option<String>,
}

/// Runs udp-receiver and hands its standard output to `run`. When `ok` judges the result good,
/// udp-receiver is waited for; else it is killed at once (so the sender drops this receiver)
/// and its last messages are returned with the result. A cancellation kills udp-receiver at
/// once, also while it waits for a sender (the stream then ends). `Err` only when udp-receiver
/// cannot be run.
pub fn receive<T>(
    opts: &ReceiverOptions,
    cancel: &Cancel,
    run: impl FnOnce(Box<dyn Read + Send>) -> T,
    ok: impl FnOnce(&T) -> bool,
) -> Result<Finished<T>, UdpError> {
    let argv = opts.argv();
    log::info!("{UDP_RECEIVER} {}", argv.join(" "));
    let (child, pipes) = Reaped::spawn(UDP_RECEIVER, &argv, Stdio::null(), Stdio::piped(), cancel)?;
    let tail = Arc::new(Mutex::new(Vec::<String>::new()));
    let t = pipes.stderr.map(|e| {
        let tail = Arc::clone(&tail);
        follow(e, move |line| {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with("bytes=") {
                log::info!("{UDP_RECEIVER}: {line}");
                let mut t = lock(&tail);
                t.push(disk::text::printable(line).into_owned());
                if t.len() > 8 {
                    t.remove(0);
                }
            }
        })
    });
    let Some(stdout) = pipes.stdout else {
        return Err(UdpError::NoPipe {
            program: UDP_RECEIVER,
            what: "standard output",
        });
    };
    let value = run(Box::new(stdout));
    if ok(&value) {
        let s = child.wait()?;
        if let Some(t) = t {
            let _ = t.join();
        }
        if !s.success() {
            log::warn!("{UDP_RECEIVER} ended with {s} after the whole stream arrived");
        }
        return Ok(Finished { value, said: None });
    }
    // Dropping `child` kills and reaps udp-receiver; the sender then drops us.
    drop(child);
    if let Some(t) = t {
        let _ = t.join();
    }
    let said = lock(&tail).join("; ");
    Ok(Finished {
        value,
        said: (!said.is_empty()).then_some(said),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_sender_messages_become_receiver_states() {
        let mut l = SenderLog::default();
        for line in [
            "Udp-sender 20120424",
            "UDP sender for (stdin) at 10.1.0.1 on br0 ",
            "New connection from 10.1.0.11  (#0) 00000009",
            "New connection from 10.1.0.12  (#1) 00000009",
            "Starting transfer: 00000009",
            "bytes=  3 000 000  re-xmits=0000038 (  1.8%) slice=0091 -   0",
            "Dropping client #1 because of timeout",
            "Disconnecting #0 (10.1.0.11)",
            "Disconnecting #1 (10.1.0.12)",
        ] {
            l.line(line);
        }
        assert_eq!(
            l.receivers,
            vec![
                Receiver {
                    number: 0,
                    address: "10.1.0.11".into(),
                    state: "done"
                },
                Receiver {
                    number: 1,
                    address: "10.1.0.12".into(),
                    state: "dropped"
                },
            ]
        );
        assert!(l.tail.iter().any(|t| t.starts_with("Starting transfer")));
        assert_eq!(l.at, Some(IpAddr::from([10, 1, 0, 1])));
        let mut odd = SenderLog::default();
        odd.line("UDP sender for /srv/my at home.lbi at fd00::7 on eth1");
        assert_eq!(odd.at, "fd00::7".parse().ok());
    }

    #[test]
    fn rates_ports_and_fec_specs_are_checked_before_udpcast_sees_them() {
        assert_eq!(parse_rate("100M").unwrap_or_default(), "100m");
        assert!(parse_rate("5000k").is_ok() && parse_rate("2000000").is_ok());
        for bad in ["", "m", "10mm", "-5", "1; rm", "0"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert!(parse_port("9000").is_ok());
        assert!(parse_port("9001").is_err() && parse_port("80").is_err());
        assert!(parse_fec("8x8/128").is_ok());
        assert!(parse_fec("8x8").is_err() && parse_fec("x/1").is_err());
    }

    #[test]
    fn the_argv_of_each_program_names_every_option_and_nothing_else() {
        let s = SenderOptions {
            clients: 3,
            wait: Some(20),
            max_rate: Some("100m".into()),
            interface: Some("br0".into()),
            port: 9200,
            fec: None,
            retries_until_drop: Some(5),
            report_wait: 10,
        };
        assert_eq!(
            s.argv().join(" "),
            "--nokbd --min-receivers 3 --portbase 9200 --max-wait 20 --max-bitrate 100m \
             --interface br0 --retries-until-drop 5"
        );
        let r = ReceiverOptions {
            interface: None,
            port: 9002,
            timeout: 30,
        };
        assert_eq!(
            r.argv().join(" "),
            "--nokbd --portbase 9002 --receive-timeout 30"
        );
    }

    #[test]
    fn a_session_without_receivers_or_with_a_dropped_one_is_not_complete() {
        let mut s = Session {
            receivers: Vec::new(),
            records: 4,
            bytes: 100,
            problem: None,
            cancelled: false,
        };
        assert_eq!(
            s.failure().as_deref(),
            Some("no receiver joined the session")
        );
        s.receivers.push(ReceiverOutcome::from_udp(&Receiver {
            number: 0,
            address: "10.0.0.2".into(),
            state: "dropped",
        }));
        assert!(!s.complete());
        assert_eq!(
            s.failure().as_deref(),
            Some("1 of 1 receivers did not restore the image")
        );
        assert!(s
            .text()
            .contains("receiver #0 10.0.0.2: dropped (stopped answering"));
        assert!(s.text().contains("0 done, 0 failed, 1 dropped"));
    }

    #[test]
    fn a_cancel_kills_udp_receiver_while_it_waits_for_a_sender() {
        let cancel = Cancel::new();
        let c = cancel.clone();
        let stop = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            c.cancel();
        });
        let opts = ReceiverOptions {
            interface: Some("lo".into()),
            port: 9310,
            timeout: 60,
        };
        let start = std::time::Instant::now();
        let got = receive(
            &opts,
            &cancel,
            |mut r| {
                let mut all = Vec::new();
                r.read_to_end(&mut all).map(|_| all.len()).ok()
            },
            |_| false,
        );
        let _ = stop.join();
        assert_eq!(
            got.ok().map(|f| f.value),
            Some(Some(0)),
            "the stream ends empty once killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        let missing = UdpError::Start {
            program: UDP_RECEIVER,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(missing.to_string().contains("apt-get install udpcast"));
    }
}
