//! `lifeboat serve` and `lifeboat receive` (issue 19): one image to many PCs at once by
//! multicast, with Debian's udpcast as the transport. Thin callers of the engine: the sender's
//! session is `engine::cast::udp::serve`, the receiver's confirm-first flow
//! `engine::job::plan_receive_target` → confirmation → `engine::job::receive` (the same for job
//! files and the TUI). Here: the arguments, the console messages and the report file.

use crate::jobs;
use anyhow::{bail, Result};
use engine::cast::udp::{self, SendEvent, SenderOptions};
use engine::job::{ReportDelivery, StreamFrom};
use engine::restore::RestoreOptions;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use engine::cast::udp::{parse_port, DEFAULT_PORT, DEFAULT_REPORT_WAIT, DEFAULT_TIMEOUT};

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

fn parse_rate(s: &str) -> Result<String, String> {
    udp::parse_rate(s)
}

fn parse_fec(s: &str) -> Result<String, String> {
    udp::parse_fec(s)
}

impl ServeArgs {
    /// The engine's sender options.
    pub fn options(&self) -> SenderOptions {
        SenderOptions {
            clients: self.clients,
            wait: self.wait,
            max_rate: self.max_rate.clone(),
            interface: self.interface.clone(),
            port: self.port,
            fec: self.fec.clone(),
            retries_until_drop: self.retries_until_drop,
            report_wait: self.report_wait,
        }
    }
}

/// `lifeboat serve IMAGE`: sends the image once to every receiver.
pub fn serve(image_path: &Path, args: &ServeArgs) -> Result<u8> {
    let img = crate::image_cmds::open_image(image_path)?;
    if args.stdout {
        let out = std::io::stdout();
        let mut out = out.lock();
        let sent = image::cast::send(&img, &mut out, &|_| {})
            .map_err(|e| anyhow::anyhow!("sending {}: {e}", image_path.display()))?;
        log::info!("sent {} records, {} bytes", sent.records, sent.bytes);
        return Ok(0);
    }
    let opts = args.options();
    let json = args.json;
    let terminal = std::io::stderr().is_terminal();
    let events: Arc<dyn Fn(SendEvent) + Send + Sync> = Arc::new(move |e| match e {
        SendEvent::Progress(line) if terminal && !json => eprint!("\r{line}   "),
        SendEvent::Progress(_) => {}
        SendEvent::Waiting {
            clients,
            port,
            warning,
            ..
        } => {
            if let Some(w) = warning {
                eprintln!("lifeboat: warning: {w}");
            }
            eprintln!(
                "lifeboat: waiting for {clients} receiver{} (port {port})…",
                if clients == 1 { "" } else { "s" },
            );
        }
        SendEvent::Receiver(r) if json => {
            let event = serde_json::json!({ "event": "receiver", "receiver": r });
            let _ = crate::emit(&(event.to_string() + "\n"));
        }
        SendEvent::Receiver(r) => {
            let what = match r.state {
                "done" => "has the whole stream",
                s => s,
            };
            eprintln!("\rlifeboat: receiver #{} ({}) {what}", r.number, r.address);
        }
        SendEvent::AwaitingReports { .. } if json => {}
        SendEvent::AwaitingReports { seconds, count } => eprintln!(
            "lifeboat: the image is sent; waiting up to {seconds} s for {count} receiver \
             report{}…",
            if count == 1 { "" } else { "s" }
        ),
        SendEvent::Report(d) if json => {
            let event = serde_json::json!({
                "event": "report",
                "address": d.from.to_string(),
                "report": d.report,
            });
            let _ = crate::emit(&(event.to_string() + "\n"));
        }
        SendEvent::Report(d) => {
            eprintln!("lifeboat: report from {}: {}", d.from, d.report.line())
        }
    });
    let cancel = jobs::cancel_on_ctrl_c();
    let session = udp::serve(&img, &opts, events, &cancel)?;
    let path = args
        .report
        .clone()
        .unwrap_or_else(|| udp::default_report_file(image_path));
    let report_file = match udp::save_report(&path, image_path, &opts, &session) {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!(
                "lifeboat: warning: cannot write the report to {}: {e}",
                path.display()
            );
            None
        }
    };
    if args.json {
        let line = serde_json::json!({
            "event": "done",
            "result": if session.complete() { "completed" } else { "failed" },
            "receivers": session.receivers,
            "records": session.records,
            "bytes": session.bytes,
            "error": session.problem,
            "report_file": report_file,
        });
        crate::emit(&(line.to_string() + "\n"))?;
    } else {
        crate::emit(&session.text())?;
        if let Some(f) = &report_file {
            crate::emit(&format!("report saved to {}\n", f.display()))?;
        }
    }
    if let Some(why) = session.failure() {
        bail!("{why}");
    }
    Ok(0)
}

/// The name a received stream has in messages and in `engine::keys`.
pub fn stream_name(stdin: bool) -> &'static str {
    if stdin {
        "standard input"
    } else {
        udp::UDP_RECEIVER
    }
}

/// `lifeboat receive TARGET`: restores the image a `lifeboat serve` sends, as it arrives.
pub fn receive(target: &str, args: &ReceiveArgs, password_file: Option<&Path>) -> Result<u8> {
    receive_job(target, args, password_file).map(crate::exit::of)
}

/// [`receive`], returning the job's status (job files): the target is checked and confirmed
/// before the stream starts (`engine::job::plan_receive_target`), the restore is planned from
/// the stream and run without a second question (`engine::job::receive`), and the result is
/// reported to the sender when the stream asked for reports; a report that cannot be delivered
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
    let ui = args.common.ui();
    let disks = engine::job::Disks::discover(&disk::SysRoot::default())?;
    let confirmed = engine::job::plan_receive_target(&target, options, &disks)?;
    let mut lines = confirmed.lines().join("\n");
    lines.push('\n');
    jobs::emit_plan(&lines, ui.json)?;
    let t = &confirmed.target;
    let consent = if ui.dry_run {
        None
    } else {
        jobs::confirm(t.overwrites.warning(), &t.identity, ui.yes)?;
        Some(jobs::consent(&t.path, &t.identity, ui.yes))
    };
    let from = if args.stdin {
        StreamFrom::Reader(Box::new(std::io::stdin()))
    } else {
        eprintln!("lifeboat: waiting for the sender (port {})…", args.port);
        StreamFrom::Udp(args.receiver_options())
    };
    let cancel = jobs::cancel_on_ctrl_c();
    let printer = jobs::progress_printer(ui.json);
    let json = ui.json;
    let on_plan = move |p: &engine::job::Plan| {
        if let Err(e) = jobs::emit_plan(&p.to_string(), json) {
            log::warn!("printing the plan: {e}");
        }
    };
    let got = engine::job::receive(
        &confirmed,
        consent.as_ref(),
        from,
        name,
        &on_plan,
        printer.as_deref(),
        &cancel,
    );
    let result = match &got.outcome {
        None => Ok(engine::job::Status::Completed),
        Some(o) => jobs::show_outcome(o, ui.json),
    };
    match &got.delivery {
        ReportDelivery::NotAsked => {}
        ReportDelivery::Delivered(to) => {
            eprintln!("lifeboat: result reported to the sender ({to})")
        }
        ReportDelivery::Failed { error, .. } => eprintln!(
            "lifeboat: warning: the result could not be reported to the sender: {error} \
             (the disk is as said above)"
        ),
    }
    result
}

impl ReceiveArgs {
    /// The engine's udp-receiver options.
    pub fn receiver_options(&self) -> udp::ReceiverOptions {
        udp::ReceiverOptions {
            interface: self.interface.clone(),
            port: self.port,
            timeout: self.timeout,
        }
    }
}
