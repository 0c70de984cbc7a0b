//! `lifeboat serve` and `lifeboat receive` (issue 19): one image to many PCs at once by
//! multicast, with Debian's udpcast as the transport. `serve` writes the image's cast stream
//! (`image::cast`, FORMAT.md "Cast streams") into `udp-sender`'s standard input and reports per
//! receiver what udp-sender tells; `receive` reads `udp-receiver`'s standard output and restores
//! as it receives (`engine::job`'s `JobSpec::Receive`). Both programs are run with an explicit
//! argument list (no shell), and are killed and reaped when the job fails or is cancelled.

use crate::jobs;
use anyhow::{bail, Context, Result};
use engine::job::{JobSpec, ReceiveSpec};
use engine::restore::RestoreOptions;
use serde::Serialize;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The udpcast sender and receiver programs (Debian package `udpcast`).
pub const UDP_SENDER: &str = "udp-sender";
pub const UDP_RECEIVER: &str = "udp-receiver";
/// udpcast's port base (it uses this port and the next).
pub const DEFAULT_PORT: u16 = 9000;
/// Seconds without data before a receiver gives up.
pub const DEFAULT_TIMEOUT: u32 = 60;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Start as soon as this many receivers have joined.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub clients: u32,
    /// Start anyway this many seconds after the first receiver joined, with those present.
    #[arg(long, value_name = "S")]
    pub wait: Option<u32>,
    /// Most bandwidth used, in udpcast's notation: bits per second, or with k or m (`100m`).
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub max_rate: Option<String>,
    /// The network interface to send on (udpcast's default: eth0).
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// UDP ports used: PORT and PORT+1 (even; the receivers must use the same).
    #[arg(long, default_value_t = 9000, value_parser = parse_port)]
    pub port: u16,
    /// Forward error correction, udpcast's `INTERLEAVExREDUNDANCY/STRIPESIZE` (like `8x8/128`),
    /// for lossy networks.
    #[arg(long, value_name = "SPEC", value_parser = parse_fec)]
    pub fec: Option<String>,
    /// Drop a receiver that has not answered after this many requests (slow or crashed PCs
    /// leave the session instead of holding the others back).
    #[arg(long, value_name = "N")]
    pub retries_until_drop: Option<u32>,
    /// Write the cast stream to standard output instead of running udp-sender (for a pipe or
    /// ssh to a single `lifeboat receive --stdin`).
    #[arg(long)]
    pub stdout: bool,
    /// Result as a JSON line.
    #[arg(long)]
    pub json: bool,
    /// Append the per-receiver results to FILE (default: IMAGE.cast-report.txt beside the
    /// image).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Seconds to wait, once the image is sent, for the receivers' reports (they restore and
    /// verify first); a receiver that has not reported by then is counted as dropped.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_REPORT_WAIT)]
    pub report_wait: u32,
}

/// Seconds `serve` waits for the receivers' reports after the stream ended.
pub const DEFAULT_REPORT_WAIT: u32 = 3600;

#[derive(Debug, clap::Args)]
pub struct ReceiveArgs {
    /// Grow the last partition (and its ext4/NTFS file system) to the end of a larger disk.
    #[arg(long)]
    pub grow_last: bool,
    /// New disk and partition GUIDs / MBR signature (PCs that must differ on one network).
    #[arg(long)]
    pub new_ids: bool,
    /// The network interface to listen on (udpcast's default: eth0).
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// UDP ports used: PORT and PORT+1 (as given to `lifeboat serve`).
    #[arg(long, default_value_t = DEFAULT_PORT, value_parser = parse_port)]
    pub port: u16,
    /// Give up when no data arrives for this many seconds once the session started (the
    /// target is then left without a partition table).
    #[arg(long, value_name = "S", default_value_t = DEFAULT_TIMEOUT)]
    pub timeout: u32,
    /// Read the cast stream from standard input instead of running udp-receiver.
    #[arg(long)]
    pub stdin: bool,
    #[command(flatten)]
    pub common: crate::clone::WriteArgs,
}

pub fn parse_port(s: &str) -> Result<u16, String> {
    let p: u16 = s.parse().map_err(|_| format!("`{s}` is not a port"))?;
    if p < 1024 || !p.is_multiple_of(2) || p == u16::MAX {
        return Err(format!("port {p}: udpcast needs an even port from 1024"));
    }
    Ok(p)
}

fn parse_rate(s: &str) -> Result<String, String> {
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

fn parse_fec(s: &str) -> Result<String, String> {
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

/// The argv of udp-sender for `args` (the cast stream arrives on its standard input).
pub fn sender_argv(args: &ServeArgs) -> Vec<String> {
    let mut v = vec![
        "--nokbd".to_string(),
        "--min-receivers".to_string(),
        args.clients.to_string(),
        "--portbase".to_string(),
        args.port.to_string(),
    ];
    if let Some(w) = args.wait {
        v.extend(["--max-wait".to_string(), w.to_string()]);
    }
    if let Some(r) = &args.max_rate {
        v.extend(["--max-bitrate".to_string(), r.clone()]);
    }
    if let Some(i) = &args.interface {
        v.extend(["--interface".to_string(), i.clone()]);
    }
    if let Some(f) = &args.fec {
        v.extend(["--fec".to_string(), f.clone()]);
    }
    if let Some(n) = args.retries_until_drop {
        v.extend(["--retries-until-drop".to_string(), n.to_string()]);
    }
    v
}

/// The argv of udp-receiver for `args` (the stream leaves on its standard output).
pub fn receiver_argv(args: &ReceiveArgs) -> Vec<String> {
    let mut v = vec![
        "--nokbd".to_string(),
        "--portbase".to_string(),
        args.port.to_string(),
        "--receive-timeout".to_string(),
        args.timeout.to_string(),
    ];
    if let Some(i) = &args.interface {
        v.extend(["--interface".to_string(), i.clone()]);
    }
    v
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
    pub at: Option<std::net::IpAddr>,
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
            self.tail.push(line.to_string());
        } else if let Some(rest) = line.strip_prefix("New connection from ") {
            let address = rest.split_whitespace().next().unwrap_or("").to_string();
            if let Some(n) = number(rest) {
                self.receivers.retain(|r| r.number != n);
                self.receivers.push(Receiver {
                    number: n,
                    address,
                    state: "joined",
                });
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
            self.tail.push(line.to_string());
            if self.tail.len() > 8 {
                self.tail.remove(0);
            }
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

/// A child process that is killed and reaped when dropped, unless waited for.
struct Reaped {
    child: Option<Child>,
    name: &'static str,
}

impl Reaped {
    fn spawn(name: &'static str, argv: &[String], stdin: Stdio, stdout: Stdio) -> Result<Self> {
        let child = Command::new(name)
            .args(argv)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("starting {name} (install the udpcast package: apt-get install udpcast)")
            })?;
        Ok(Reaped {
            child: Some(child),
            name,
        })
    }

    fn child(&mut self) -> &mut Child {
        // Only `wait` and `drop` take the child out.
        self.child.as_mut().unwrap_or_else(|| unreachable!())
    }

    fn wait(mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().unwrap_or_else(|| unreachable!());
        child
            .wait()
            .with_context(|| format!("waiting for {}", self.name))
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads `r` to its end in a thread, feeding each line (ended by `\n` or `\r`) to `f`.
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

/// `lifeboat serve IMAGE`: sends the image once to every receiver.
pub fn serve(image_path: &Path, args: &ServeArgs) -> Result<u8> {
    let img = crate::image_cmds::open_image(image_path)?;
    if args.stdout {
        let out = std::io::stdout();
        let mut out = out.lock();
        let sent = image::cast::send(&img, &mut out, &|_| {})
            .with_context(|| format!("sending {}", image_path.display()))?;
        log::info!("sent {} records, {} bytes", sent.records, sent.bytes);
        return Ok(0);
    }
    let argv = sender_argv(args);
    log::info!("{UDP_SENDER} {}", argv.join(" "));
    let mut child = Reaped::spawn(UDP_SENDER, &argv, Stdio::piped(), Stdio::piped())?;
    let log = Arc::new(Mutex::new(SenderLog::default()));
    let mut threads = Vec::new();
    let c = child.child();
    let stdin: Option<ChildStdin> = c.stdin.take();
    for out in [
        c.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        c.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = Arc::clone(&log);
        let json = args.json;
        let terminal = std::io::stderr().is_terminal();
        threads.push(follow(out, move |line| {
            // udp-sender's own progress line (bytes sent, retransmissions), kept on one line.
            if terminal && !json && line.trim_start().starts_with("bytes=") {
                let mut shown: String = line.trim().chars().take(78).collect();
                shown.push_str("   ");
                eprint!("\r{shown}");
                return;
            }
            let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
            let before = l.receivers.clone();
            l.line(line);
            for r in l.receivers.iter().filter(|r| !before.contains(r)) {
                if json {
                    let event = serde_json::json!({ "event": "receiver", "receiver": r });
                    let _ = crate::emit(&(event.to_string() + "\n"));
                } else {
                    let what = match r.state {
                        "done" => "has the whole stream",
                        s => s,
                    };
                    eprintln!("\rlifeboat: receiver #{} ({}) {what}", r.number, r.address);
                }
            }
        }));
    }
    let Some(mut stdin) = stdin else {
        bail!("{UDP_SENDER} has no standard input");
    };
    let listener = report_listener(args, &log);
    eprintln!(
        "lifeboat: waiting for {} receiver{} (port {})…",
        args.clients,
        if args.clients == 1 { "" } else { "s" },
        args.port
    );
    let to = listener.as_ref().map(|l| l.report_to());
    let sent = image::cast::send_with(&img, &mut stdin, &|_| {}, to.as_ref());
    let flushed = stdin.flush();
    drop(stdin);
    let status = match (&sent, flushed) {
        // udp-sender finishes the session with what it has (an abort frame tells the receivers
        // why); a sender that cannot write has lost udp-sender, which is reaped by `Reaped`.
        (Ok(_), Ok(())) | (Err(image::Error::ChunkCorrupt { .. }), _) => Some(child.wait()?),
        _ => None,
    };
    for t in threads {
        let _ = t.join();
    }
    let udp = log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .receivers
        .clone();
    let tail = log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .tail
        .join("; ");
    let results = match &listener {
        Some(l) => collect_reports(l, &udp, args),
        None => udp.iter().map(ReceiverOutcome::from_udp).collect(),
    };
    drop(listener);
    let problem = match (&sent, status) {
        (Err(e), _) => Some(format!("the session stopped: {e}")),
        (Ok(_), None) => Some(format!("{UDP_SENDER} stopped reading the stream: {tail}")),
        (Ok(_), Some(s)) if !s.success() => Some(format!("{UDP_SENDER} failed ({s}): {tail}")),
        _ => None,
    };
    let done = results.iter().filter(|r| r.state == "done").count();
    let complete = problem.is_none() && done == results.len() && !results.is_empty();
    let mut text = String::new();
    for r in &results {
        text.push_str(&r.line());
        text.push('\n');
    }
    if let Ok(s) = &sent {
        text.push_str(&format!(
            "sent {} chunks ({} bytes) to {} receiver{}: {done} done, {} failed, {} dropped\n",
            s.records,
            s.bytes,
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            results.iter().filter(|r| r.state == "failed").count(),
            results.iter().filter(|r| r.state == "dropped").count(),
        ));
    }
    if let Some(p) = &problem {
        text.push_str(&format!("error: {p}\n"));
    }
    let report_file = save_report(image_path, args, &text, complete);
    if args.json {
        let line = serde_json::json!({
            "event": "done",
            "result": if complete { "completed" } else { "failed" },
            "receivers": results,
            "records": sent.as_ref().map(|s| s.records).unwrap_or(0),
            "bytes": sent.as_ref().map(|s| s.bytes).unwrap_or(0),
            "error": problem,
            "report_file": report_file,
        });
        crate::emit(&(line.to_string() + "\n"))?;
    } else {
        crate::emit(&text)?;
        if let Some(f) = &report_file {
            crate::emit(&format!("report saved to {}\n", f.display()))?;
        }
    }
    if let Some(p) = problem {
        bail!("{p}");
    }
    if results.is_empty() {
        bail!("no receiver joined the session");
    }
    if done < results.len() {
        bail!(
            "{} of {} receivers did not restore the image",
            results.len() - done,
            results.len()
        );
    }
    Ok(0)
}

/// Starts listening for receiver reports on the sending interface's address (TCP, the same
/// port number as udpcast's). `None`, with a warning, when that is impossible: the session
/// then reports what udp-sender sees only.
fn report_listener(
    args: &ServeArgs,
    log: &Mutex<SenderLog>,
) -> Option<engine::cast::ReportListener> {
    // The address udp-sender itself uses (its banner comes at once), else the interface's.
    let start = std::time::Instant::now();
    let mut at = None;
    while at.is_none() && start.elapsed() < std::time::Duration::from_secs(5) {
        at = log.lock().unwrap_or_else(|p| p.into_inner()).at;
        if at.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let ip = match at {
        Some(ip) if !ip.is_loopback() || args.interface.as_deref() == Some("lo") => Ok(ip),
        _ => engine::cast::interface_address(args.interface.as_deref()),
    };
    let got = ip.and_then(|ip| engine::cast::ReportListener::bind(ip, args.port));
    match got {
        Ok(l) => {
            log::info!("receiver reports on tcp {}", l.report_to().addr);
            Some(l)
        }
        Err(e) => {
            eprintln!("lifeboat: warning: {e}; the receivers cannot report their results");
            None
        }
    }
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
    pub report: Option<engine::cast::ReceiverReport>,
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

const DROPPED: &str = "stopped answering during the session: killed, crashed, cut off or too slow";

/// Joins udp-sender's receivers with the reports that arrive within `--report-wait` seconds
/// (each receiver udp-sender did not drop is waited for), printing each report as it comes.
fn collect_reports(
    l: &engine::cast::ReportListener,
    udp: &[Receiver],
    args: &ServeArgs,
) -> Vec<ReceiverOutcome> {
    let waited: Vec<&Receiver> = udp.iter().filter(|r| r.state != "dropped").collect();
    if !waited.is_empty() && !args.json {
        eprintln!(
            "lifeboat: the image is sent; waiting up to {} s for {} receiver report{}…",
            args.report_wait,
            waited.len(),
            if waited.len() == 1 { "" } else { "s" }
        );
    }
    let mut shown = 0usize;
    let reports = l.wait_for(
        std::time::Duration::from_secs(u64::from(args.report_wait)),
        |got| {
            for d in got.iter().skip(shown) {
                if args.json {
                    let event = serde_json::json!({
                        "event": "report",
                        "address": d.from.to_string(),
                        "report": d.report,
                    });
                    let _ = crate::emit(&(event.to_string() + "\n"));
                } else {
                    eprintln!("lifeboat: report from {}: {}", d.from, d.report.line());
                }
            }
            shown = got.len();
            waited
                .iter()
                .all(|r| got.iter().any(|d| d.from.to_string() == r.address))
        },
    );
    let mut out: Vec<ReceiverOutcome> = udp
        .iter()
        .map(|r| {
            let report = reports
                .iter()
                .find(|d| d.from.to_string() == r.address)
                .map(|d| d.report.clone());
            match report {
                Some(rep) => ReceiverOutcome {
                    number: Some(r.number),
                    address: r.address.clone(),
                    state: match rep.result {
                        engine::cast::ReportResult::Done => "done",
                        engine::cast::ReportResult::Failed => "failed",
                    },
                    reason: rep.reason.clone(),
                    report: Some(rep),
                },
                None if r.state == "dropped" => ReceiverOutcome::from_udp(r),
                None => ReceiverOutcome {
                    reason: Some(format!(
                        "received the stream but sent no report within {} s",
                        args.report_wait
                    )),
                    ..ReceiverOutcome::from_udp(r)
                }
                .dropped(),
            }
        })
        .collect();
    for d in &reports {
        if !udp.iter().any(|r| r.address == d.from.to_string()) {
            out.push(ReceiverOutcome {
                number: None,
                address: d.from.to_string(),
                state: match d.report.result {
                    engine::cast::ReportResult::Done => "done",
                    engine::cast::ReportResult::Failed => "failed",
                },
                reason: d.report.reason.clone(),
                report: Some(d.report.clone()),
            });
        }
    }
    out
}

impl ReceiverOutcome {
    fn dropped(mut self) -> Self {
        self.state = "dropped";
        self
    }
}

/// Appends the session's report to `--report FILE` or IMAGE.cast-report.txt; the file's path,
/// or `None` with a warning when it cannot be written.
fn save_report(image: &Path, args: &ServeArgs, text: &str, complete: bool) -> Option<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = args.report.clone().unwrap_or_else(|| {
        let mut name = image.file_name().unwrap_or_default().to_os_string();
        name.push(".cast-report.txt");
        image.with_file_name(name)
    });
    let head = format!(
        "session {} — {} to {} receiver{} (port {}): {}\n",
        image::rfc3339_utc(std::time::SystemTime::now()),
        image.display(),
        args.clients,
        if args.clients == 1 { "" } else { "s" },
        args.port,
        if complete { "completed" } else { "failed" }
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{head}{text}\n").as_bytes()));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!(
                "lifeboat: warning: cannot write the report to {}: {e}",
                path.display()
            );
            None
        }
    }
}

/// The name a received stream has in messages and in `engine::keys`.
pub fn stream_name(stdin: bool) -> &'static str {
    if stdin {
        "standard input"
    } else {
        UDP_RECEIVER
    }
}

/// `lifeboat receive TARGET`: restores the image a `lifeboat serve` sends, as it arrives.
pub fn receive(target: &str, args: &ReceiveArgs, password_file: Option<&Path>) -> Result<u8> {
    receive_job(target, args, password_file).map(crate::exit::of)
}

/// [`receive`], returning the job's status (job files). Whatever the result, the receiver then
/// reports it to the sender when the stream asked for reports; a report that cannot be delivered
/// is said on the console and changes nothing else.
pub fn receive_job(
    target: &str,
    args: &ReceiveArgs,
    password_file: Option<&Path>,
) -> Result<engine::job::Status> {
    let name = stream_name(args.stdin);
    if let Some(f) = password_file {
        engine::keys::remember(Path::new(name), crate::password::from_file(f)?);
    }
    let target = crate::resolve_target(target)?;
    let options = RestoreOptions {
        grow_last: args.grow_last,
        new_ids: args.new_ids,
        verify: args.common.verify,
        discard: false,
        threads: 0,
    };
    let mut report_to = None;
    let mut ran = None;
    let start = std::time::Instant::now();
    let mut run = |input: Box<dyn Read + Send>| -> Result<engine::job::Status> {
        let (to, source) = engine::cast::CastSource::open_reporting(input, name);
        report_to = to;
        let source = source.context("receiving the image")?;
        let spec = JobSpec::Receive(ReceiveSpec {
            source,
            target: target.clone(),
            options,
        });
        jobs::execute_with(spec, &args.common.ui(), &mut ran)
    };
    let result = if args.stdin {
        run(Box::new(std::io::stdin()))
    } else {
        receive_udp(args, &mut run)
    };
    if let Some(to) = report_to {
        let report = receiver_report(&target, &options, &result, ran.as_ref(), start.elapsed());
        match engine::cast::deliver_report(&to, &report) {
            Ok(()) => eprintln!("lifeboat: result reported to the sender ({})", to.addr),
            Err(e) => eprintln!(
                "lifeboat: warning: the result could not be reported to the sender: {e} \
                 (the disk is as said above)"
            ),
        }
    }
    result
}

/// Runs udp-receiver and hands its output to `run`; udp-receiver is waited for after a good
/// run and killed (so the sender drops this receiver at once) after a failed one.
fn receive_udp(
    args: &ReceiveArgs,
    run: &mut dyn FnMut(Box<dyn Read + Send>) -> Result<engine::job::Status>,
) -> Result<engine::job::Status> {
    let argv = receiver_argv(args);
    log::info!("{UDP_RECEIVER} {}", argv.join(" "));
    let mut child = Reaped::spawn(UDP_RECEIVER, &argv, Stdio::null(), Stdio::piped())?;
    let c = child.child();
    let tail = Arc::new(Mutex::new(Vec::<String>::new()));
    let t = c.stderr.take().map(|e| {
        let tail = Arc::clone(&tail);
        follow(e, move |line| {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with("bytes=") {
                log::info!("{UDP_RECEIVER}: {line}");
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.push(line.to_string());
                if t.len() > 8 {
                    t.remove(0);
                }
            }
        })
    });
    let Some(stdout) = c.stdout.take() else {
        bail!("{UDP_RECEIVER} has no standard output");
    };
    eprintln!("lifeboat: waiting for the sender (port {})…", args.port);
    match run(Box::new(stdout)) {
        Ok(status) => {
            let s = child.wait()?;
            if let Some(t) = t {
                let _ = t.join();
            }
            if !s.success() {
                log::warn!("{UDP_RECEIVER} ended with {s} after the whole stream arrived");
            }
            Ok(status)
        }
        Err(e) => {
            // Dropping `child` kills and reaps udp-receiver; the sender then drops us.
            drop(child);
            if let Some(t) = t {
                let _ = t.join();
            }
            let tail = tail.lock().unwrap_or_else(|p| p.into_inner()).join("; ");
            if tail.is_empty() {
                Err(e)
            } else {
                Err(e.context(format!("{UDP_RECEIVER} said: {tail}")))
            }
        }
    }
}

/// The report a receiver sends: its disk by path, model, serial and size, how the job ended
/// and why, bytes written, time taken and whether what was written was verified.
pub fn receiver_report(
    target: &Path,
    options: &RestoreOptions,
    result: &Result<engine::job::Status>,
    ran: Option<&engine::job::Outcome>,
    took: std::time::Duration,
) -> engine::cast::ReceiverReport {
    use engine::cast::{ReceiverReport, ReportResult, ReportVerify, ReportedDisk};
    use engine::job::StepReport;
    let canonical = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    let device = disk::discover(&disk::SysRoot::default(), &disk::DiscoverOptions::default())
        .ok()
        .and_then(|ds| {
            ds.into_iter()
                .find(|d| d.path == target || d.path == canonical)
        });
    let disk = match device {
        Some(d) => ReportedDisk {
            path: d.path.display().to_string(),
            model: d.model.unwrap_or_default().trim().to_string(),
            serial: d.serial.unwrap_or_default().trim().to_string(),
            size: d.size,
        },
        None => ReportedDisk {
            path: target.display().to_string(),
            size: std::fs::metadata(target).map(|m| m.len()).unwrap_or(0),
            ..ReportedDisk::default()
        },
    };
    let restored = match ran.and_then(|o| o.step.as_ref()) {
        Some(StepReport::Restore(r)) => Some(r),
        _ => None,
    };
    let (result, reason) = match result {
        Ok(_) if ran_nothing(ran) => (
            ReportResult::Failed,
            Some("a dry run: nothing was written".to_string()),
        ),
        Ok(_) => (ReportResult::Done, ran.and_then(|o| o.grow_error.clone())),
        Err(e) => (ReportResult::Failed, Some(crate::error_chain(e))),
    };
    ReceiverReport {
        disk,
        result,
        reason,
        bytes: restored.map(|r| r.bytes_written).unwrap_or(0),
        seconds: took.as_secs_f64(),
        verify: match restored {
            Some(r) if r.verified => ReportVerify::Verified,
            _ if !options.verify => ReportVerify::NotAsked,
            _ => ReportVerify::NotReached,
        },
    }
}

/// A job that returned without running (a dry run) left no outcome.
fn ran_nothing(ran: Option<&engine::job::Outcome>) -> bool {
    ran.is_none()
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
        assert_eq!(l.at, Some(std::net::IpAddr::from([10, 1, 0, 1])));
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
}
