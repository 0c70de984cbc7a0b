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
use std::io::{Read, Write};
use std::path::Path;
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
}

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        if let Some(rest) = line.strip_prefix("New connection from ") {
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
        threads.push(follow(out, move |line| {
            let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
            let before = l.receivers.clone();
            l.line(line);
            for r in l.receivers.iter().filter(|r| !before.contains(r)) {
                if !json {
                    eprintln!(
                        "lifeboat: receiver #{} ({}) {}",
                        r.number, r.address, r.state
                    );
                }
            }
        }));
    }
    let Some(mut stdin) = stdin else {
        bail!("{UDP_SENDER} has no standard input");
    };
    eprintln!(
        "lifeboat: waiting for {} receiver{} (port {})…",
        args.clients,
        if args.clients == 1 { "" } else { "s" },
        args.port
    );
    let sent = image::cast::send(&img, &mut stdin, &|_| {});
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
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    let done = log.receivers.iter().filter(|r| r.state == "done").count();
    let problem = match (&sent, status) {
        (Err(e), _) => Some(format!("the session stopped: {e}")),
        (Ok(_), None) => Some(format!(
            "{UDP_SENDER} stopped reading the stream: {}",
            log.tail.join("; ")
        )),
        (Ok(_), Some(s)) if !s.success() => Some(format!(
            "{UDP_SENDER} failed ({s}): {}",
            log.tail.join("; ")
        )),
        _ => None,
    };
    if args.json {
        let line = serde_json::json!({
            "event": "done",
            "result": if problem.is_none() && done == log.receivers.len() { "completed" } else { "failed" },
            "receivers": log.receivers,
            "records": sent.as_ref().map(|s| s.records).unwrap_or(0),
            "bytes": sent.as_ref().map(|s| s.bytes).unwrap_or(0),
            "error": problem,
        });
        crate::emit(&(line.to_string() + "\n"))?;
    } else {
        let mut text = String::new();
        for r in &log.receivers {
            text.push_str(&format!(
                "receiver #{} {}: {}\n",
                r.number, r.address, r.state
            ));
        }
        if let Ok(s) = &sent {
            text.push_str(&format!(
                "sent {} chunks ({} bytes) to {done} of {} receivers\n",
                s.records,
                s.bytes,
                log.receivers.len()
            ));
        }
        crate::emit(&text)?;
    }
    if let Some(p) = problem {
        bail!("{p}");
    }
    if done < log.receivers.len() {
        bail!(
            "{} of {} receivers did not receive the whole image",
            log.receivers.len() - done,
            log.receivers.len()
        );
    }
    Ok(0)
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

/// [`receive`], returning the job's status (job files).
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
    if args.stdin {
        let source = engine::cast::CastSource::open(Box::new(std::io::stdin()), name)
            .context("receiving the image")?;
        let spec = JobSpec::Receive(ReceiveSpec {
            source,
            target,
            options,
        });
        return jobs::execute(spec, &args.common.ui());
    }
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
    let result = engine::cast::CastSource::open(Box::new(stdout), name)
        .context("receiving the image")
        .and_then(|source| {
            let spec = JobSpec::Receive(ReceiveSpec {
                source,
                target,
                options,
            });
            jobs::execute(spec, &args.common.ui())
        });
    match result {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_sender_messages_become_receiver_states() {
        let mut l = SenderLog::default();
        for line in [
            "Udp-sender 20120424",
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
