//! The text UI of `lifeboat`: every job from the keyboard, at an 80×25 Linux console or over a
//! serial line, in the Elm architecture — [`Model`] (all state), [`Msg`] (keys, ticks, worker
//! results), [`update`] (pure: returns [`Effect`]s as data) and [`view`] (read only).
//!
//! The layout: [`app`] routes messages and draws the frame; [`screens`] has one module per
//! screen (state, keys, answers, drawing, title and help together); [`widgets`] the pieces they
//! share (image picker, plan scroller, running-job view); [`model`] the state, messages and
//! effects; [`inventory`] the disks as lists show them. The private `runtime` owns the terminal
//! and runs each effect on a worker thread, sending the answer back with the effect's request id
//! (stale answers are dropped by the screens); [`jobs`] and [`extract`] are the blocking worker
//! code it calls (discovery, plans, jobs, listings), [`system`] mounts, SMART and the boot mode.
//!
//! This crate is the only one that knows ratatui and crossterm. It must not contain disk logic
//! (plans, safety checks and copying are the engine's), must never print to stdout or stderr
//! (logs go to a file and the Log screen), and must not write to a disk except through a plan
//! the user confirmed: the effect that starts a job carries a [`confirm::Confirmed`], which only
//! the confirmation screen can make (restores included). A backup writes no disk: it only creates
//! a new image file (never overwriting one), started with Enter on its plan. Extracting files
//! from an image or a live partition (read-only) only creates files in a folder the user picked,
//! and replaces existing ones only after the user said yes. The runtime redraws only when a key,
//! a worker message or a visible spinner changes the screen, so an idle screen sends nothing
//! over a serial console.
//!
//! Environment: `LIFEBOAT_SHOW_LOOP=1` lists loop and RAM devices from the start (also the `v`
//! key); `LIFEBOAT_DEBUG` keeps debug log records.

pub mod app;
pub mod confirm;
pub mod extract;
pub mod inventory;
pub mod jobs;
pub mod logger;
pub mod model;
mod runtime;
pub mod screens;
pub mod system;
pub mod termsize;
pub mod widgets;

pub use app::{update, view};
pub use model::{Effect, Key, Model, Msg, RequestId};

/// Exit code when the user quits.
pub const EXIT_QUIT: u8 = 0;
/// Exit codes asking the init (PID 1) to power the machine off or reboot (after syncing and
/// unmounting), defined once with init's other contracts in `disk::boot`.
pub use disk::boot::{EXIT_POWEROFF, EXIT_REBOOT};

/// Runs the text UI until the user quits ([`EXIT_QUIT`]), reboots ([`EXIT_REBOOT`]) or powers
/// off ([`EXIT_POWEROFF`]); returns that exit code. Installs the logger (a file under
/// `/run/lifeboat` or the temporary directory, and the Log screen's ring), so the caller must not
/// install one.
pub fn run() -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!("the text UI needs a terminal: use a subcommand (see lifeboat --help)");
    }
    let (ring, log_path) = logger::install();
    log::info!("lifeboat {} text UI starting", env!("CARGO_PKG_VERSION"));
    let show_virtual = std::env::var("LIFEBOAT_SHOW_LOOP").is_ok_and(|v| !v.is_empty() && v != "0");
    let smartctl = system::find_tool("smartctl");
    if smartctl.is_none() {
        log::info!("smartctl not found: SMART health is not shown");
    }
    let mut model = Model::new(show_virtual, smartctl.is_some(), ring, log_path);
    let mode = system::boot_mode(&disk::SysRoot::default());
    log::info!("boot mode: {}", mode.text());
    model.boot_mode = Some(mode);
    model.network = Some(store::net::summary(&store::net::addresses()));
    let code = runtime::run_ui(model, disk::SysRoot::default(), smartctl)?;
    log::info!("text UI exits with {code}");
    log::logger().flush();
    Ok(code)
}
