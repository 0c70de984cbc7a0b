//! What every writing subcommand shares: the safety checks and the confirmation, the progress
//! bar or JSON lines, Ctrl-C, and the exit code.

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
