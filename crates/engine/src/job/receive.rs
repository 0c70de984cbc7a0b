//! Receiving an image by multicast (issue 19), confirmed before the stream starts.
//!
//! ```text
//!   plan_receive_target(disk) ─▶ ReceiveTarget ─(shown, confirmed: WriteConsent)─▶ receive()
//!        receive: join the stream ─▶ plan from its header ─▶ run ─▶ report to the sender
//! ```
//!
//! A sender streams to every receiver at once, so a receiver must not stop to ask once the
//! stream has begun: the target disk is chosen, checked (not mounted or busy, not the boot
//! medium, the md member rules of [`crate::safety`]) and confirmed first, for everything on it.
//! Once the stream's header arrives, the whole-disk restore is planned from it (the shrink plan
//! onto a smaller disk, grow-last onto a larger) and run without a second question: it never
//! writes more than the confirmed disk, and a plan that cannot be made (the disk too small even
//! with shrinking, a partition as target, another disk now behind the path) fails before
//! anything is written. Job files and `lifeboat receive --yes` use the same flow.

use super::plan::target;
use super::{
    plan, run, Disks, JobSpec, Outcome, Overwrites, Plan, ReceiveSpec, StepReport, Target,
};
use crate::cast::udp::{self, ReceiverOptions};
use crate::cast::{CastSource, ReceiverReport, ReportResult, ReportTo, ReportVerify, ReportedDisk};
use crate::error::JobError;
use crate::progress::{Cancel, ProgressSink};
use crate::restore::RestoreOptions;
use crate::safety::check_write_target;
use disk::{BlockIo, FileDisk, WriteConsent};
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;

/// A disk checked and ready to be confirmed for a receive. Made only by [`plan_receive_target`].
#[derive(Debug, Clone)]
pub struct ReceiveTarget {
    /// What is overwritten: the whole disk (its path, identity and size).
    pub target: Target,
    pub options: RestoreOptions,
    disks: Disks,
}

impl ReceiveTarget {
    /// The lines shown before the confirmation, each printable.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("receive an image onto {}", self.target.path.display()),
            format!("target: {}", self.target.identity),
            "the image arrives from a sender on the network; once it starts, the restore is \
             planned from it and runs without another question"
                .to_string(),
        ];
        if self.options.grow_last {
            lines.push("the last partition grows to the end of the disk".to_string());
        }
        if self.options.new_ids {
            lines.push("new disk and partition identifiers".to_string());
        }
        if self.options.verify {
            lines.push("what is written is verified".to_string());
        }
        lines
            .into_iter()
            .map(|l| disk::text::printable(&l).into_owned())
            .collect()
    }
}

/// Checks `target` as the disk a receive overwrites: every refusal of a restore (not mounted,
/// held or swap, not Lifeboat's boot medium, not an md member unless the rules allow it) and a
/// whole disk (or disk image file), not a partition. Reads only.
pub fn plan_receive_target(
    path: &Path,
    options: RestoreOptions,
    disks: &Disks,
) -> Result<ReceiveTarget, JobError> {
    let checked = check_write_target(path, &[], None, disks.devices())?;
    if checked.partition.is_some() {
        return Err(JobError::TargetInUse {
            device: path.display().to_string(),
            reason: "it is a partition: a received image is restored onto a whole disk".to_string(),
        });
    }
    let len = FileDisk::open_read(path)?.len();
    Ok(ReceiveTarget {
        target: target(&checked, Overwrites::Disk, None, (0, len), None),
        options,
        disks: disks.clone(),
    })
}

/// Where the stream comes from.
pub enum StreamFrom {
    /// udp-receiver, from a `lifeboat serve` on the network.
    Udp(ReceiverOptions),
    /// A pipe or standard input.
    Reader(Box<dyn Read + Send>),
}

impl std::fmt::Debug for StreamFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamFrom::Udp(o) => f.debug_tuple("Udp").field(o).finish(),
            StreamFrom::Reader(_) => f.write_str("Reader"),
        }
    }
}

/// Whether the result reached the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportDelivery {
    /// The stream asked for no report (or did not get as far as saying where).
    NotAsked,
    Delivered(SocketAddr),
    Failed {
        to: SocketAddr,
        error: String,
    },
}

/// How a receive ended.
#[derive(Debug, Clone)]
pub struct Received {
    /// The plan made from the stream's header, when it arrived (printable lines).
    pub plan: Option<Vec<String>>,
    /// The job's outcome; `None` after a dry run (planned, nothing written).
    pub outcome: Option<Outcome>,
    /// The report this receiver sent the sender.
    pub report: Option<ReceiverReport>,
    pub delivery: ReportDelivery,
}

/// What one attempt on the stream gave.
struct Attempt {
    report_to: Option<ReportTo>,
    plan: Option<Vec<String>>,
    result: Result<Option<Outcome>, JobError>,
}

/// Joins the stream, plans the restore onto the confirmed disk from its header (calling
/// `on_plan` with it), runs it with `consent` (`None`: a dry run, nothing is written) and reports
/// the result to the sender when the stream asked for reports. `name` names the stream in
/// messages and is the key of its password in [`crate::keys`]. A cancellation works while
/// waiting for the sender, too. Never panics; every failure is in the outcome.
pub fn receive(
    confirmed: &ReceiveTarget,
    consent: Option<&WriteConsent>,
    from: StreamFrom,
    name: &str,
    on_plan: &dyn Fn(&Plan),
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Received {
    let start = std::time::Instant::now();
    let attempt = |input: Box<dyn Read + Send>| -> Attempt {
        let (report_to, source) = CastSource::open_reporting(input, name);
        let mut a = Attempt {
            report_to,
            plan: None,
            result: Ok(None),
        };
        a.result = (|| {
            let source = source.map_err(|e| {
                if cancel.is_cancelled() {
                    JobError::Cancelled {
                        state: "nothing was written".to_string(),
                    }
                } else {
                    e
                }
            })?;
            let plan = plan_stream(confirmed, source)?;
            on_plan(&plan);
            a.plan = Some(plan.lines());
            let Some(consent) = consent else {
                return Ok(None);
            };
            Ok(Some(run(&plan, Some(consent), sink, cancel)))
        })();
        a
    };
    let ok = |a: &Attempt| matches!(&a.result, Ok(Some(o)) if o.status.is_complete());
    let (a, said) = match from {
        StreamFrom::Reader(r) => (attempt(r), None),
        StreamFrom::Udp(opts) => match udp::receive(&opts, cancel, attempt, ok) {
            Ok(f) => (f.value, f.said),
            Err(e) => (
                Attempt {
                    report_to: None,
                    plan: None,
                    result: Err(e.into()),
                },
                None,
            ),
        },
    };
    let with_said = |e: String| match &said {
        Some(s) => format!("{e}; {} said: {s}", udp::UDP_RECEIVER),
        None => e,
    };
    let outcome = match a.result {
        Ok(Some(mut o)) => {
            if !o.status.is_complete() {
                o.error = o.error.map(with_said);
            }
            Some(o)
        }
        Ok(None) => None,
        Err(e) => {
            let mut o = Outcome::failed(&e);
            o.error = o.error.map(with_said);
            Some(o)
        }
    };
    let mut received = Received {
        plan: a.plan,
        report: None,
        delivery: ReportDelivery::NotAsked,
        outcome,
    };
    if let Some(to) = a.report_to {
        let report = receiver_report(
            &confirmed.target,
            confirmed.options.verify,
            &received,
            start,
        );
        received.delivery = match crate::cast::deliver_report(&to, &report) {
            Ok(()) => ReportDelivery::Delivered(to.addr),
            Err(e) => ReportDelivery::Failed {
                to: to.addr,
                error: e.to_string(),
            },
        };
        received.report = Some(report);
    }
    received
}

/// The whole-disk plan of the stream onto the confirmed disk, against a fresh discovery. It
/// must overwrite nothing but that disk, as it was confirmed.
fn plan_stream(confirmed: &ReceiveTarget, source: CastSource) -> Result<Plan, JobError> {
    let disks = Disks::discover(confirmed.disks.root())?;
    let t = &confirmed.target;
    let plan = plan(
        JobSpec::Receive(ReceiveSpec {
            source,
            target: t.path.clone(),
            options: confirmed.options,
        }),
        &disks,
    )?;
    let changed = |what: &str| JobError::TargetChanged {
        device: t.path.display().to_string(),
        what: what.to_string(),
    };
    match &plan.target {
        Some(p) if p.object != t.object => Err(changed("it now leads to another device or file")),
        Some(p) if p.size != t.size || p.identity != t.identity => Err(changed(&format!(
            "it is now {}, it was {} when confirmed",
            p.identity, t.identity
        ))),
        Some(p) if p.overwrites == Overwrites::Disk && p.offset == 0 && p.len == t.size => Ok(plan),
        _ => Err(changed("the plan would write more than the disk confirmed")),
    }
}

/// The report a receiver sends: its disk by path, model, serial and size, how the job ended and
/// why, bytes written, time taken and whether what was written was verified.
fn receiver_report(
    t: &Target,
    verify_asked: bool,
    r: &Received,
    start: std::time::Instant,
) -> ReceiverReport {
    let disk = ReportedDisk {
        path: t.path.display().to_string(),
        model: t.model.clone().unwrap_or_default().trim().to_string(),
        serial: t.serial.clone().unwrap_or_default().trim().to_string(),
        size: t.size,
    };
    let restored = match r.outcome.as_ref().and_then(|o| o.step.as_ref()) {
        Some(StepReport::Restore(rr)) => Some(rr),
        _ => None,
    };
    let (result, reason) = match &r.outcome {
        None => (
            ReportResult::Failed,
            Some("a dry run: nothing was written".to_string()),
        ),
        Some(o) if o.status.is_complete() => (ReportResult::Done, o.grow_error.clone()),
        Some(o) => (
            ReportResult::Failed,
            Some(
                o.error
                    .clone()
                    .unwrap_or_else(|| o.status.label().to_string()),
            ),
        ),
    };
    ReceiverReport {
        disk,
        result,
        reason,
        bytes: restored.map(|r| r.bytes_written).unwrap_or(0),
        seconds: start.elapsed().as_secs_f64(),
        verify: match restored {
            Some(r) if r.verified => ReportVerify::Verified,
            _ if !verify_asked => ReportVerify::NotAsked,
            _ => ReportVerify::NotReached,
        },
    }
}
