//! What every job subcommand shares: it turns its arguments into an `engine::job::JobSpec`, and
//! [`execute`] does the rest the same way for all of them and for job files — the engine's plan,
//! the confirmation, the progress bar or JSON lines, Ctrl-C, and the outcome and its exit code.

use anyhow::{bail, Result};
use engine::units::human;
use engine::{Cancel, Progress};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// A cancellation flag raised by Ctrl-C (SIGINT) or SIGTERM: the job stops at its next safe
/// point and says in what state it left the target.
pub fn cancel_on_ctrl_c() -> Cancel {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            log::warn!("cannot catch {sig}: {e}");
        }
    }
    let cancel = Cancel::new();
    let c = cancel.clone();
    std::thread::spawn(move || loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("\nlifeboat: stopping at the next safe point…");
            c.cancel();
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    });
    cancel
}

/// Asks the user to confirm overwriting `identity` (model, serial, size). `--yes` skips the
/// question; without a terminal and without `--yes` the job is refused.
pub fn confirm(what: &str, identity: &str, yes: bool) -> Result<()> {
    eprintln!("\n{what} WILL BE OVERWRITTEN:\n    {identity}");
    if yes {
        eprintln!("(confirmed by --yes)");
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to write without confirmation: run on a terminal or pass --yes");
    }
    eprint!("Type 'yes' to overwrite it: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        bail!("not confirmed: nothing was written");
    }
    Ok(())
}

/// Where progress events go: a bar on a terminal, JSON lines with `--json`, nothing otherwise.
/// A progress callback.
pub type Printer = Box<dyn Fn(&Progress) + Send + Sync>;

pub fn progress_printer(json: bool) -> Option<Printer> {
    if json {
        return Some(Box::new(|p: &Progress| {
            if let Ok(line) =
                serde_json::to_string(&serde_json::json!({ "event": "progress", "progress": p }))
            {
                let _ = crate::emit(&(line + "\n"));
            }
        }));
    }
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(Box::new(|p: &Progress| {
        let pct = if p.total > 0 {
            p.done as f64 * 100.0 / p.total as f64
        } else {
            100.0
        };
        let filled = (pct / 5.0) as usize;
        let bar: String = "#".repeat(filled.min(20)) + &".".repeat(20 - filled.min(20));
        let eta = p
            .eta_secs
            .map(|s| format!("{}:{:02}", s / 60, s % 60))
            .unwrap_or_else(|| "-:--".into());
        let bad = if p.bad_bytes > 0 {
            format!(" bad {}", human(p.bad_bytes))
        } else {
            String::new()
        };
        let mut phase = p.phase.clone();
        phase.truncate(28);
        eprint!(
            "\r[{bar}] {pct:5.1}% {:>10}/s ETA {eta}{bad} {phase:<28}",
            human(p.bytes_per_sec as u64)
        );
        if p.finished {
            eprintln!();
        }
    }))
}

/// Prints a job's plan: as it is, or as a `{"event":"plan"}` JSON line with `--json`.
pub fn emit_plan(plan: &str, json: bool) -> Result<()> {
    if json {
        crate::emit(&(serde_json::json!({ "event": "plan", "plan": plan }).to_string() + "\n"))
    } else {
        crate::emit(plan)
    }
}

/// The proof of confirmation a writable open needs: typed by the user, or `--yes`.
pub fn consent(target: &std::path::Path, identity: &str, yes: bool) -> disk::WriteConsent {
    if yes {
        disk::WriteConsent::from_yes_flag(target, identity)
    } else {
        disk::WriteConsent::confirmed_by_user(target, identity)
    }
}

/// How a job is presented.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    /// Confirmed in advance (`--yes`, or a job file).
    pub yes: bool,
    /// JSON lines instead of text.
    pub json: bool,
    /// Print the plan and stop.
    pub dry_run: bool,
}

/// Plans `spec` with the engine (every safety check), prints the plan, asks for confirmation when
/// something will be overwritten, runs it and prints the outcome. `Err` when it was refused,
/// failed or was cancelled (the message says why); else the status (`Completed` after a dry run).
pub fn execute(spec: engine::job::JobSpec, ui: &Ui) -> Result<engine::job::Status> {
    use engine::job::{JobSpec, Status};
    let verify = matches!(spec, JobSpec::Verify(_));
    let disks = engine::job::Disks::discover(&disk::SysRoot::default())?;
    log::debug!("disks discovered");
    let plan = engine::job::plan(spec, &disks)?;
    log::debug!("job planned");
    if !verify {
        emit_plan(&plan.to_string(), ui.json)?;
    }
    if ui.dry_run {
        return Ok(Status::Completed);
    }
    let consent = match &plan.target {
        Some(t) => {
            confirm(t.overwrites.warning(), &t.identity, ui.yes)?;
            Some(consent(&t.path, &t.identity, ui.yes))
        }
        None => None,
    };
    let cancel = cancel_on_ctrl_c();
    let printer = progress_printer(ui.json);
    let outcome = engine::job::run(&plan, consent.as_ref(), printer.as_deref(), &cancel);
    show_outcome(&outcome, ui.json)
}

/// Prints a job's outcome (the report, or JSON lines) and turns it into the command's result:
/// `Err` with the error's words when the job did not complete.
pub fn show_outcome(outcome: &engine::job::Outcome, json: bool) -> Result<engine::job::Status> {
    use engine::job::StepReport;
    match (&outcome.step, json) {
        (Some(StepReport::Verify(v)), true) => {
            crate::emit(&(serde_json::to_string(v)? + "\n"))?;
        }
        (_, true) => crate::emit(&(done_event(outcome).to_string() + "\n"))?,
        (Some(_), false) => crate::emit(&outcome.report())?,
        (None, false) => {}
    }
    match (outcome.status.is_complete(), &outcome.error) {
        (true, _) => Ok(outcome.status),
        (false, Some(e)) => Err(anyhow::anyhow!("{e}")),
        (false, None) => Err(anyhow::anyhow!("{}", outcome.status.label())),
    }
}

/// The `{"event":"done"}` line of a job: its status, the step's report, notes, the bad-sector
/// ranges and map, and why growing the file system or the job failed.
pub fn done_event(o: &engine::job::Outcome) -> serde_json::Value {
    serde_json::json!({
        "event": "done",
        "status": o.status,
        "result": o.status.label(),
        "report": o.step,
        "notes": o.notes,
        "bad_sectors": o.bad_sectors,
        "bad_sector_map": o.bad_sector_map,
        "grow_error": o.grow_error,
        "error": o.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::job::{Outcome, Status};

    fn outcome(status: Status) -> Outcome {
        Outcome {
            status,
            summary: "done: read 1.0 MiB in 0.1 s, image 10 KiB (1 volume)".into(),
            notes: vec!["a note".into()],
            error: None,
            grow_error: None,
            bad_sectors: engine::rescue::BadSectorMap::default(),
            bad_sector_map: None,
            step: None,
        }
    }

    #[test]
    fn the_json_done_line_names_the_bad_sector_map_and_the_grow_failure() {
        let mut o = outcome(Status::CompletedWithBadSectors);
        o.bad_sectors.add(4096, 512);
        o.bad_sector_map = Some("/stick/a.badsectors".into());
        let v = done_event(&o);
        assert_eq!(v["status"], "completed-with-bad-sectors");
        assert_eq!(v["bad_sector_map"], "/stick/a.badsectors");
        assert_eq!(v["bad_sectors"]["ranges"][0]["offset"], 4096);
        let mut g = outcome(Status::CompletedGrowFailed);
        g.grow_error = Some("resize2fs on /dev/sdb3 failed: no space".into());
        let v = done_event(&g);
        assert_eq!(v["status"], "completed-grow-failed");
        assert_eq!(v["result"], "OK, but growing the file system failed");
        assert_eq!(v["grow_error"], "resize2fs on /dev/sdb3 failed: no space");
        assert_eq!(crate::exit::of(g.status), crate::exit::GROW_FAILED);
    }
}
