//! The running PID 1: executes the early steps, then supervises the consoles forever, loading
//! modules for hot-plugged devices, reaping orphans and powering off or rebooting on request.
//!
//! Nothing here may end the process: every step runs under `catch_unwind`, errors are logged and
//! boot goes on.

use crate::cmdline::{After, Cmdline, JobSpec};
use crate::console::{consoles, Console, Program};
use crate::job_volume::{self, Choice, Volume};
use crate::logger;
use crate::modules::{Loaded, Loader, RealKernel};
use crate::steps::{early_steps, Step, BOOT_DEVICE_FILE, LOG_FILE, MEDIA_DIR};
use crate::uevent::{Uevent, UeventSocket};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The UI binary.
pub const LIFEBOAT: &str = "/bin/lifeboat";
/// The shell (busybox).
pub const SHELL: &str = "/bin/sh";
/// `lifeboat` exits with this code to ask for power-off.
pub const EXIT_POWEROFF: i32 = disk::boot::EXIT_POWEROFF as i32;
/// `lifeboat` exits with this code to ask for a reboot.
pub const EXIT_REBOOT: i32 = disk::boot::EXIT_REBOOT as i32;
/// `lifeboat run` exits with this code when the job never started.
pub const EXIT_NOT_STARTED: i32 = disk::boot::EXIT_NOT_STARTED as i32;
/// Where the volume holding an unattended job is mounted.
pub const JOB_MOUNT: &str = "/mnt/job";

const ENV_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why an early step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("mount -t {fstype} {device} {target}: {errno}")]
    Mount {
        device: String,
        target: String,
        fstype: String,
        errno: Errno,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: {errno}")]
    Sys { what: String, errno: Errno },
}

/// What power action to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Off,
    Reboot,
}

/// What the supervisor does when a program on a console exits with `code` (None: killed by a
/// signal): ask for power-off/reboot, or restart it.
pub fn on_exit(program: Program, code: Option<i32>) -> Option<Power> {
    match (program, code) {
        (Program::Lifeboat, Some(EXIT_POWEROFF)) => Some(Power::Off),
        (Program::Lifeboat, Some(EXIT_REBOOT)) => Some(Power::Reboot),
        _ => None,
    }
}

/// How long to wait before restarting a program that ran for `ran` and has now failed `fails`
/// times in a row (a quick exit counts as a failure).
pub fn restart_delay(ran: Duration, fails: u32) -> Duration {
    if ran >= Duration::from_secs(10) {
        return Duration::from_secs(1);
    }
    Duration::from_secs(1u64 << fails.min(3)).min(Duration::from_secs(8))
}

/// The report path of a job file: `/x/nightly.toml` → `/x/nightly.report.txt`.
pub fn report_path(job: &Path) -> PathBuf {
    let stem = job
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job".into());
    job.with_file_name(format!("{stem}.report.txt"))
}

#[derive(Debug)]
struct Service {
    console: Console,
    pid: Option<Pid>,
    started: Instant,
    next_start: Option<Instant>,
    fails: u32,
    warned: bool,
}

#[derive(Debug)]
struct Job {
    pid: Pid,
    report: PathBuf,
}

/// The state of PID 1.
#[derive(Debug)]
pub struct Runtime {
    cmdline: Cmdline,
    loader: Option<Loader<RealKernel>>,
    uevents: Option<UeventSocket>,
    /// SIGINT, which the kernel sends PID 1 for Ctrl-Alt-Del once the hard reboot is disabled.
    ctrl_alt_del: Option<nix::sys::signalfd::SignalFd>,
    boot_device: Option<String>,
    media_label: String,
    services: Vec<Service>,
    job: Option<Job>,
    /// Interfaces already configured by [`Step::Network`] or a later uevent.
    net_done: std::collections::BTreeSet<String>,
    /// Whether the static address of `lifeboat.net=` has been given to an interface.
    net_static_done: bool,
    /// Set once [`Step::Network`] ran: later interfaces are configured as they appear.
    net_started: bool,
}

fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::error!("{what} panicked: {msg}; going on");
            None
        }
    }
}

/// PID 1's entry point. Never returns.
pub fn run() -> ! {
    logger::install();
    std::panic::set_hook(Box::new(|info| log::error!("panic: {info}")));
    std::env::set_var("PATH", ENV_PATH);
    // The command line is only readable once /proc is mounted: run the mounts with defaults, then
    // parse it and run the rest.
    let mut rt = Runtime {
        cmdline: Cmdline::default(),
        loader: None,
        uevents: None,
        ctrl_alt_del: ctrl_alt_del_signal(),
        boot_device: None,
        media_label: String::new(),
        services: Vec::new(),
        job: None,
        net_done: Default::default(),
        net_static_done: false,
        net_started: false,
    };
    let line = {
        let plan = early_steps(&Cmdline::default());
        let split = plan
            .iter()
            .position(|s| {
                matches!(
                    s,
                    Step::Mount {
                        target: "/proc",
                        ..
                    }
                )
            })
            .map_or(0, |i| i + 1);
        for step in plan.iter().take(split) {
            rt.step(step);
        }
        std::fs::read_to_string("/proc/cmdline").unwrap_or_default()
    };
    rt.cmdline = crate::cmdline::parse(&line);
    if rt.cmdline.debug {
        log::set_max_level(log::LevelFilter::Debug);
    }
    let plan = early_steps(&rt.cmdline);
    let split = plan
        .iter()
        .position(|s| {
            matches!(
                s,
                Step::Mount {
                    target: "/proc",
                    ..
                }
            )
        })
        .map_or(0, |i| i + 1);
    for step in plan.iter().skip(split) {
        rt.step(step);
    }
    for p in rt.cmdline.problems.clone() {
        log::warn!("{p}");
    }
    rt.services = consoles(&rt.cmdline)
        .into_iter()
        .map(|console| Service {
            console,
            pid: None,
            started: Instant::now(),
            next_start: None,
            fails: 0,
            warned: false,
        })
        .collect();
    match rt.cmdline.job.clone() {
        None if rt.cmdline.job_url.is_some() => {
            let url = rt.cmdline.job_url.clone().unwrap_or_default();
            if let Err(e) =
                guard("starting the job", || rt.start_url_job(&url)).unwrap_or(Err("panic".into()))
            {
                log::error!("unattended job {url} not run: {e}");
                rt.say_everywhere(&format!(
                    "lifeboat: unattended job {} not run: {e}\r\nlifeboat: the text UI starts in {} s",
                    disk::text::printable(&url),
                    NOT_RUN_PAUSE.as_secs()
                ));
                rt.schedule_all(Instant::now() + NOT_RUN_PAUSE);
            }
        }
        Some(spec) => {
            if let Err(e) =
                guard("starting the job", || rt.start_job(&spec)).unwrap_or(Err("panic".into()))
            {
                rt.job_not_run(&spec, &e);
            }
        }
        None => rt.schedule_all(Instant::now()),
    }
    loop {
        guard("supervisor", || rt.tick());
    }
}

/// Turns Ctrl-Alt-Del from the kernel's immediate reboot (no sync, no unmount: it would cut a
/// restore off mid-write) into SIGINT for PID 1, delivered through a signalfd so it is handled as a
/// clean reboot. Programs started by init get an empty signal mask again (std resets it).
fn ctrl_alt_del_signal() -> Option<nix::sys::signalfd::SignalFd> {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    if let Err(e) = set.thread_block() {
        log::warn!("blocking SIGINT: {e}");
        return None;
    }
    let fd = match SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("signalfd for Ctrl-Alt-Del: {e}");
            return None;
        }
    };
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        log::warn!("disabling the Ctrl-Alt-Del hard reboot: {e}");
    }
    Some(fd)
}

/// Writes a line to the system console (what the user looks at during boot).
fn say(msg: &str) {
    if let Ok(mut c) = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open("/dev/console")
    {
        let _ = write!(c, "\r\n{msg}\r\n");
    }
}

impl Runtime {
    fn step(&mut self, step: &Step) {
        log::debug!("step: {step}");
        if let Some(Err(e)) = guard(&step.to_string(), || self.run_step(step)) {
            log::warn!("{step}: {e}");
        }
    }

    fn run_step(&mut self, step: &Step) -> Result<(), StepError> {
        match step {
            Step::Mkdir { path, mode } => {
                std::fs::create_dir_all(path).map_err(|source| StepError::Io {
                    path: path.to_string(),
                    source,
                })?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode));
                Ok(())
            }
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                let mut f = MsFlags::empty();
                f.set(MsFlags::MS_NOSUID, flags.nosuid);
                f.set(MsFlags::MS_NODEV, flags.nodev);
                f.set(MsFlags::MS_NOEXEC, flags.noexec);
                let data = (!data.is_empty()).then_some(*data);
                match mount(Some(*source), *target, Some(*fstype), f, data) {
                    Ok(()) | Err(Errno::EBUSY) => Ok(()),
                    Err(errno) => Err(StepError::Mount {
                        device: source.to_string(),
                        target: target.to_string(),
                        fstype: fstype.to_string(),
                        errno,
                    }),
                }
            }
            Step::Symlink { target, link } => match std::os::unix::fs::symlink(target, link) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(StepError::Io {
                    path: link.to_string(),
                    source: e,
                }),
                _ => Ok(()),
            },
            Step::Write { path, value } => {
                std::fs::write(path, value).map_err(|source| StepError::Io {
                    path: path.to_string(),
                    source,
                })
            }
            Step::StartLog => {
                logger::start_file(LOG_FILE);
                log::info!(
                    "lifeboat-init {} starting; command line: {:?}",
                    env!("CARGO_PKG_VERSION"),
                    self.cmdline
                );
                Ok(())
            }
            Step::Firmware => {
                let efi = Path::new(crate::firmware::EFI_DIR).is_dir();
                if efi {
                    self.load_module("efivarfs");
                    let dir = crate::firmware::EFIVARS_DIR;
                    let flags = MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC;
                    match mount(Some("efivarfs"), dir, Some("efivarfs"), flags, None::<&str>) {
                        Ok(()) | Err(Errno::EBUSY) => {}
                        Err(e) => log::warn!("mount -t efivarfs efivarfs {dir}: {e}"),
                    }
                }
                let var = std::fs::read(
                    Path::new(crate::firmware::EFIVARS_DIR).join(crate::firmware::SECURE_BOOT_VAR),
                )
                .ok();
                let fw = crate::firmware::detect(efi, var.as_deref());
                log::info!("{fw}");
                Ok(())
            }
            Step::ListenUevents => {
                let s = UeventSocket::open().map_err(|errno| StepError::Sys {
                    what: "uevent socket".into(),
                    errno,
                })?;
                self.uevents = Some(s);
                Ok(())
            }
            Step::LoadModules(list) => {
                for m in list {
                    self.load_module(m);
                }
                Ok(())
            }
            Step::Coldplug => {
                let aliases = crate::modules::find_modaliases(Path::new("/sys/devices"));
                log::info!("coldplug: {} devices with a modalias", aliases.len());
                for a in aliases {
                    self.load_for_alias(&a);
                }
                // Loading drivers creates new devices (a USB controller finds its hubs): repeat
                // until nothing new shows up.
                self.pump(Duration::from_millis(200));
                for a in crate::modules::find_modaliases(Path::new("/sys/devices")) {
                    self.load_for_alias(&a);
                }
                Ok(())
            }
            Step::SettleDisks { quiet_ms, max_ms } => {
                let start = Instant::now();
                let mut last = block_devices();
                let mut quiet_since = Instant::now();
                while start.elapsed() < Duration::from_millis(*max_ms) {
                    self.pump(Duration::from_millis(100));
                    let now = block_devices();
                    if now != last {
                        last = now;
                        quiet_since = Instant::now();
                    } else if quiet_since.elapsed() >= Duration::from_millis(*quiet_ms) {
                        break;
                    }
                }
                log::info!(
                    "disks settled after {} ms: {}",
                    start.elapsed().as_millis(),
                    last.join(" ")
                );
                Ok(())
            }
            Step::AssembleMd => {
                let levels = crate::md::member_levels(&block_devices(), crate::md::read_level);
                if levels.is_empty() {
                    return Ok(());
                }
                log::info!("md RAID members: {}", levels.join(" "));
                for m in crate::md::modules_for(levels.iter().map(String::as_str)) {
                    self.load_module(m);
                }
                let (prog, args) = crate::md::ASSEMBLE.split_at(1);
                match std::process::Command::new(prog[0])
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .output()
                {
                    Ok(o) => log::info!(
                        "{} (exit {}): {}{}",
                        crate::md::ASSEMBLE.join(" "),
                        o.status.code().unwrap_or(-1),
                        String::from_utf8_lossy(&o.stdout).trim(),
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                    Err(e) => log::warn!("{}: {e}", crate::md::ASSEMBLE.join(" ")),
                }
                // The arrays' block devices appear by uevent: let them settle.
                self.pump(Duration::from_millis(300));
                Ok(())
            }
            Step::FindBootMedium { label } => {
                self.media_label = label.clone();
                for dev in block_devices() {
                    if self.boot_device.is_some() {
                        break;
                    }
                    self.try_boot_medium(&dev);
                }
                if self.boot_device.is_none() {
                    log::warn!(
                        "boot medium labelled {label} not found yet (PXE boot, or still appearing)"
                    );
                }
                Ok(())
            }
            Step::Network(config) => {
                self.net_started = true;
                run_net_command(&crate::network::Command {
                    argv: ["ip", "link", "set", "dev", "lo", "up"]
                        .map(String::from)
                        .to_vec(),
                    wait: true,
                });
                if *config == crate::network::NetConfig::Off {
                    log::info!("network: off (lifeboat.net=off)");
                    return Ok(());
                }
                let class = Path::new("/sys/class/net");
                let ifaces = crate::network::wired_interfaces(class);
                log::info!("network: wired interfaces: {}", ifaces.join(" "));
                // Bring the links up first so the carrier of each is known.
                for i in &ifaces {
                    run_net_command(&crate::network::Command {
                        argv: ["ip", "link", "set", "dev", i, "up"]
                            .map(String::from)
                            .to_vec(),
                        wait: true,
                    });
                }
                if matches!(config, crate::network::NetConfig::Static(_)) && ifaces.len() > 1 {
                    // A link takes a moment to report its carrier after coming up.
                    self.pump(Duration::from_millis(1500));
                }
                let chosen = crate::network::static_interface(&ifaces, |i| {
                    crate::network::carrier(class, i) == Some(true)
                })
                .map(str::to_string);
                for i in ifaces {
                    self.configure_interface(&i, chosen.as_deref() == Some(i.as_str()));
                }
                for m in crate::network::STORE_MODULES {
                    self.load_module(m);
                }
                Ok(())
            }
        }
    }

    /// Configures one wired interface for `lifeboat.net=` (once per name).
    fn configure_interface(&mut self, iface: &str, static_here: bool) {
        if !self.net_done.insert(iface.to_string()) {
            return;
        }
        let config = self.cmdline.net.clone();
        let static_here = static_here && !self.net_static_done;
        if let crate::network::NetConfig::Static(s) = &config {
            if !static_here {
                return;
            }
            self.net_static_done = true;
            if let Some(text) = crate::network::resolv_conf(s) {
                if let Err(e) = std::fs::write(crate::network::RESOLV_CONF, text) {
                    log::warn!("writing {}: {e}", crate::network::RESOLV_CONF);
                }
            }
            let _ = std::fs::create_dir_all(crate::network::NET_DIR);
            let _ = std::fs::write(
                Path::new(crate::network::NET_DIR).join(format!("{iface}.lease")),
                format!("{}/{}\n", s.addr, s.prefix),
            );
            log::info!("network: {iface} gets {config}");
        }
        for c in crate::network::commands(&config, iface, static_here) {
            run_net_command(&c);
        }
    }

    fn loader(&mut self) -> Option<&mut Loader<RealKernel>> {
        if self.loader.is_none() {
            let release = nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir = Path::new("/lib/modules").join(release);
            let (l, problems) = Loader::open(&dir, RealKernel);
            for p in problems {
                log::warn!("{p}");
            }
            self.loader = Some(l);
        }
        self.loader.as_mut()
    }

    fn load_module(&mut self, m: &str) {
        let Some(l) = self.loader() else { return };
        match l.load(m) {
            Ok(Loaded::New(v)) => log::info!("loaded {}", v.join(" ")),
            Ok(Loaded::Already) => {}
            Err(e) => log::warn!("{e}"),
        }
    }

    fn load_for_alias(&mut self, alias: &str) {
        let Some(l) = self.loader() else { return };
        for (m, r) in l.load_for_alias(alias) {
            match r {
                Ok(Loaded::New(v)) => log::info!("loaded {} for {alias}", v.join(" ")),
                Ok(Loaded::Already) => {}
                Err(e) => log::warn!("module {m} for {alias}: {e}"),
            }
        }
    }

    /// Waits up to `timeout` for uevents and handles them; reaps children.
    fn pump(&mut self, timeout: Duration) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = Vec::new();
        if let Some(s) = &self.uevents {
            fds.push(PollFd::new(s.fd().as_fd(), PollFlags::POLLIN));
        }
        if let Some(c) = &self.ctrl_alt_del {
            fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
        }
        if fds.is_empty() {
            std::thread::sleep(timeout);
        } else {
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
        drop(fds);
        if let Some(c) = &self.ctrl_alt_del {
            if let Ok(Some(_)) = c.read_signal() {
                log::info!("Ctrl-Alt-Del pressed");
                power(Power::Reboot);
            }
        }
        let events = self
            .uevents
            .as_ref()
            .map(UeventSocket::drain)
            .unwrap_or_default();
        for ev in events {
            self.handle_uevent(&ev);
        }
        self.reap();
    }

    fn handle_uevent(&mut self, ev: &Uevent) {
        if ev.action != "add" {
            if ev.subsystem == "block" {
                log::debug!(
                    "{} {}",
                    ev.action,
                    ev.devname.as_deref().unwrap_or(&ev.devpath)
                );
            }
            return;
        }
        if let Some(alias) = &ev.modalias {
            self.load_for_alias(alias);
        }
        if ev.subsystem == "net" {
            // A hot-plugged USB Ethernet dongle: configure it like the ones found at boot.
            let name = ev
                .devpath
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let class = Path::new("/sys/class/net");
            if self.net_started
                && self.cmdline.net != crate::network::NetConfig::Off
                && crate::network::is_wired(class, &name)
            {
                log::info!("new network interface {name}");
                run_net_command(&crate::network::Command {
                    argv: ["ip", "link", "set", "dev", &name, "up"]
                        .map(String::from)
                        .to_vec(),
                    wait: true,
                });
                self.configure_interface(&name, true);
            }
        }
        if ev.subsystem == "block" {
            if let Some(name) = &ev.devname {
                log::info!("new block device {name}");
                if self.boot_device.is_none() && !self.media_label.is_empty() {
                    self.try_boot_medium(name);
                }
            }
        }
    }

    fn try_boot_medium(&mut self, name: &str) {
        let dev = format!("/dev/{name}");
        let Some(p) = job_volume::probe_path(Path::new(&dev)) else {
            return;
        };
        let label = p.label.unwrap_or_default();
        if p.kind != fs::FsKind::Iso9660 || label != self.media_label {
            return;
        }
        let _ = std::fs::create_dir_all(MEDIA_DIR);
        if let Err(e) = disk::mount::mount(
            Path::new(&dev),
            Path::new(MEDIA_DIR),
            "iso9660",
            disk::mount::Access::ReadOnly,
        ) {
            log::warn!("boot medium: {e}");
        }
        if let Err(e) = std::fs::write(BOOT_DEVICE_FILE, format!("{dev}\n")) {
            log::warn!("writing {BOOT_DEVICE_FILE}: {e}");
        }
        log::info!("boot medium: {dev} ({label})");
        self.boot_device = Some(dev);
    }

    fn schedule_all(&mut self, at: Instant) {
        for s in &mut self.services {
            s.next_start = Some(at);
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let next = self.services.iter().filter_map(|s| s.next_start).min();
        let wait = next
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
            .min(Duration::from_secs(1));
        self.pump(wait.max(Duration::from_millis(10)));
        let now = Instant::now();
        for i in 0..self.services.len() {
            let due = self
                .services
                .get(i)
                .is_some_and(|s| s.pid.is_none() && s.next_start.is_some_and(|t| t <= now));
            if due {
                self.start_service(i);
            }
        }
        // After this round of starts, so each "started … on <tty>" line still reaches the consoles.
        let ui_runs = self
            .services
            .iter()
            .any(|s| s.pid.is_some() && s.console.program == Program::Lifeboat);
        if ui_runs && self.cmdline.quiet_console() {
            quiet_console_once();
        }
    }

    fn start_service(&mut self, i: usize) {
        let cmdline_debug = self.cmdline.debug;
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        s.next_start = None;
        let (program, args): (&str, Vec<&str>) = match s.console.program {
            Program::Lifeboat if Path::new(LIFEBOAT).exists() => (LIFEBOAT, vec![]),
            Program::Lifeboat => {
                if !s.warned {
                    log::error!(
                        "{LIFEBOAT} is missing: starting a shell on {} instead",
                        s.console.device
                    );
                }
                (SHELL, vec![])
            }
            Program::Shell => (SHELL, vec![]),
        };
        let tty = format!("/dev/{}", s.console.device);
        match spawn_on_tty(program, &args, &tty, s.console.term, cmdline_debug) {
            Ok(pid) => {
                log::info!("started {program} on {} (pid {pid})", s.console.device);
                s.pid = Some(pid);
                s.started = Instant::now();
                s.warned = false;
            }
            Err(e) => {
                if !s.warned {
                    log::warn!("cannot start {program} on {tty}: {e}; retrying");
                    s.warned = true;
                }
                s.fails = s.fails.saturating_add(1);
                s.next_start = Some(Instant::now() + Duration::from_secs(5));
            }
        }
    }

    /// Reaps every exited child (services, the job, and orphans re-parented to PID 1).
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.exited(pid, Some(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    log::debug!("pid {pid} killed by {sig}");
                    self.exited(pid, None)
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("waitpid: {e}");
                    break;
                }
            }
        }
    }

    fn exited(&mut self, pid: Pid, code: Option<i32>) {
        if self.job.as_ref().is_some_and(|j| j.pid == pid) {
            if let Some(job) = self.job.take() {
                self.job_done(job, code);
            }
            return;
        }
        let Some(s) = self.services.iter_mut().find(|s| s.pid == Some(pid)) else {
            return;
        };
        s.pid = None;
        let ran = s.started.elapsed();
        log::info!(
            "{} on {} exited ({}) after {} s",
            program_name(s.console.program),
            s.console.device,
            describe_code(code),
            ran.as_secs()
        );
        if let Some(p) = on_exit(s.console.program, code) {
            power(p);
        }
        s.fails = if ran >= Duration::from_secs(10) {
            0
        } else {
            s.fails.saturating_add(1)
        };
        s.next_start = Some(Instant::now() + restart_delay(ran, s.fails));
    }

    /// Looks for the one file system labelled like the job's volume: waits up to 15 s for it to
    /// appear, then until the disks have settled (a second stick may still be coming up), so an
    /// ambiguous label is seen as such.
    fn find_job_volume(&mut self, label: &str) -> Result<Volume, String> {
        let scan = || {
            let devices = disk::discover(&disk::SysRoot::default(), &Default::default())
                .unwrap_or_else(|e| {
                    log::warn!("listing disks: {e}");
                    Vec::new()
                });
            let volumes = job_volume::scan(&job_volume::places(&devices), job_volume::probe_path);
            job_volume::choose(label, &volumes)
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while scan() == Choice::Missing {
            if Instant::now() >= deadline {
                return Err(format!(
                    "no file system labelled {} found",
                    disk::text::printable(label)
                ));
            }
            self.pump(Duration::from_millis(250));
        }
        self.settle_disks(Duration::from_secs(2), Duration::from_secs(10));
        match scan() {
            Choice::One(v) => Ok(v),
            Choice::Ambiguous(hits) => Err(job_volume::ambiguity_message(label, &hits)),
            Choice::Missing => Err(format!(
                "the file system labelled {} went away",
                disk::text::printable(label)
            )),
        }
    }

    /// Handles uevents until no block device has come or gone for `quiet`, at most `max`.
    fn settle_disks(&mut self, quiet: Duration, max: Duration) {
        let start = Instant::now();
        let mut last = block_devices();
        let mut quiet_since = Instant::now();
        while start.elapsed() < max && quiet_since.elapsed() < quiet {
            self.pump(Duration::from_millis(100));
            let now = block_devices();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
    }

    fn start_job(&mut self, spec: &JobSpec) -> Result<(), String> {
        let volume = self.find_job_volume(&spec.label)?;
        let dev = volume.device.clone();
        let fstype = volume.kind.name();
        std::fs::create_dir_all(JOB_MOUNT).map_err(|e| format!("creating {JOB_MOUNT}: {e}"))?;
        disk::mount::mount(
            &dev,
            Path::new(JOB_MOUNT),
            fstype,
            disk::mount::Access::ReadWrite,
        )
        .map_err(|e| format!("{e} ({})", job_volume::describe(&volume)))?;
        log::info!(
            "job volume {} mounted at {JOB_MOUNT}",
            job_volume::describe(&volume)
        );
        let job = match job_file(Path::new(JOB_MOUNT), &spec.path) {
            Ok(job) => job,
            Err(e) => {
                let reason = format!("{e} on {}", job_volume::describe(&volume));
                self.write_not_run_report(&spec.path, &reason);
                unmount_job_volume();
                return Err(reason);
            }
        };
        let report = report_path(&job);
        let out = match disk::create_private(&report, disk::Existing::Replace) {
            Ok(f) => f,
            Err(e) => {
                unmount_job_volume();
                return Err(format!("creating the report {}: {e}", report.display()));
            }
        };
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", report.display()))?;
        self.say_everywhere(&format!(
            "lifeboat: running unattended job {} from {}; report: {}",
            spec.path,
            job_volume::describe(&volume),
            report.display()
        ));
        let child = Command::new(LIFEBOAT)
            .arg("run")
            .arg(&job)
            .env_clear()
            .env("PATH", ENV_PATH)
            .env("TERM", "dumb")
            .env("HOME", "/root")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("starting {LIFEBOAT} run {}: {e}", job.display());
                append_report(&report, &format!("[lifeboat-init] job not run: {reason}"));
                unmount_job_volume();
                return Err(reason);
            }
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(-1));
        log::info!(
            "job {} started (pid {pid}), report {}",
            job.display(),
            report.display()
        );
        self.job = Some(Job { pid, report });
        Ok(())
    }

    /// Runs `lifeboat run URL` for a job file on the network, once an interface has an address
    /// (up to [`NET_WAIT`]); the report goes to [`URL_JOB_REPORT`].
    fn start_url_job(&mut self, url: &str) -> Result<(), String> {
        let start = Instant::now();
        let leased = || {
            std::fs::read_dir(crate::network::NET_DIR).is_ok_and(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".lease"))
            })
        };
        self.say_everywhere(&format!(
            "lifeboat: waiting for the network to run the job {}",
            disk::text::printable(url)
        ));
        while !leased() {
            if start.elapsed() >= NET_WAIT {
                return Err(format!(
                    "no network address after {} s (cable, DHCP server?)",
                    NET_WAIT.as_secs()
                ));
            }
            self.pump(Duration::from_millis(250));
        }
        log::info!("network up after {} ms", start.elapsed().as_millis());
        let report = PathBuf::from(URL_JOB_REPORT);
        let out = disk::create_private(&report, disk::Existing::Replace)
            .map_err(|e| format!("creating the report {}: {e}", report.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", report.display()))?;
        self.say_everywhere(&format!(
            "lifeboat: running unattended job {}; report: {}",
            disk::text::printable(url),
            report.display()
        ));
        let mut command = Command::new(LIFEBOAT);
        command.arg("run").arg(url);
        if let Some(pin) = &self.cmdline.job_cert {
            command.arg("--host-key").arg(pin);
        }
        let child = command
            .env_clear()
            .env("PATH", ENV_PATH)
            .env("TERM", "dumb")
            .env("HOME", "/root")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {LIFEBOAT} run {url}: {e}"))?;
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(-1));
        log::info!("job {url} started (pid {pid}), report {}", report.display());
        self.job = Some(Job { pid, report });
        Ok(())
    }

    /// A job that could not start: says why on every console and in the log, then starts the UI
    /// (`lifeboat.after` applies only to a job that ran). The UI starts a few seconds later so
    /// the message can be read before the screen is taken over.
    fn job_not_run(&mut self, spec: &JobSpec, reason: &str) {
        log::error!(
            "unattended job {}:{} not run: {reason}",
            spec.label,
            spec.path
        );
        self.say_everywhere(&format!(
            "lifeboat: unattended job {}:{} not run: {reason}\r\n\
             lifeboat: the text UI starts in {} s",
            disk::text::printable(&spec.label),
            disk::text::printable(&spec.path),
            NOT_RUN_PAUSE.as_secs()
        ));
        self.schedule_all(Instant::now() + NOT_RUN_PAUSE);
    }

    /// Writes why the job did not start into its report file on the (mounted, writable) job
    /// volume: next to where the job file was expected, or at the volume's root when that folder
    /// does not exist either.
    fn write_not_run_report(&self, job_path: &str, reason: &str) {
        let expected = Path::new(JOB_MOUNT).join(job_path.trim_start_matches('/'));
        let mut report = report_path(&expected);
        if !report.parent().is_some_and(Path::is_dir) {
            if let Some(name) = report.file_name() {
                report = Path::new(JOB_MOUNT).join(name);
            }
        }
        let text = format!(
            "Lifeboat {} unattended job report\n[lifeboat-init] job not run: {reason}\n",
            env!("CARGO_PKG_VERSION")
        );
        let written = disk::create_private(&report, disk::Existing::Replace)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
        match written {
            Ok(()) => log::info!("wrote {}", report.display()),
            Err(e) => log::warn!("writing {}: {e}", report.display()),
        }
    }

    /// Writes `msg` on every console init runs a program on (tty1 and the serial consoles),
    /// or on `/dev/console` when there are none.
    fn say_everywhere(&self, msg: &str) {
        let mut written = false;
        for s in &self.services {
            let tty = format!("/dev/{}", s.console.device);
            if let Ok(mut c) = OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
                .open(&tty)
            {
                written |= write!(c, "\r\n{msg}\r\n").is_ok();
            }
        }
        if !written {
            say(msg);
        }
    }

    fn job_done(&mut self, job: Job, code: Option<i32>) {
        let msg = format!(
            "lifeboat: unattended job finished: {}; report: {}",
            describe_code(code),
            job.report.display()
        );
        log::info!("{msg}");
        self.say_everywhere(&msg);
        append_report(
            &job.report,
            &format!(
                "\n[lifeboat-init] lifeboat run exited: {}",
                describe_code(code)
            ),
        );
        unmount_job_volume();
        if code == Some(EXIT_NOT_STARTED) {
            // The job file could not be read or is not valid: nothing ran, so `lifeboat.after`
            // does not apply.
            self.say_everywhere(
                "lifeboat: the job did not start (see its report): the text UI starts instead",
            );
            self.schedule_all(Instant::now() + NOT_RUN_PAUSE);
            return;
        }
        match self.cmdline.after {
            After::PowerOff => power(Power::Off),
            After::Reboot => power(Power::Reboot),
            After::Tui => self.schedule_all(Instant::now()),
            After::Shell => {
                for s in &mut self.services {
                    s.console.program = Program::Shell;
                }
                self.schedule_all(Instant::now());
            }
        }
    }
}

/// Runs one network command: `ip` is waited for (and its failure logged); `udhcpc` is left
/// running (reaped with the other orphans) with its output in `NET_DIR/<iface>.log`.
fn run_net_command(c: &crate::network::Command) {
    let Some((prog, args)) = c.argv.split_first() else {
        return;
    };
    let mut cmd = std::process::Command::new(prog);
    cmd.args(args).stdin(std::process::Stdio::null());
    if c.wait {
        match cmd.output() {
            Ok(o) if o.status.success() => log::debug!("{}", c.argv.join(" ")),
            Ok(o) => log::warn!(
                "{}: {}",
                c.argv.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => log::warn!("{}: {e}", c.argv.join(" ")),
        }
        return;
    }
    let _ = std::fs::create_dir_all(crate::network::NET_DIR);
    let iface = c
        .argv
        .iter()
        .skip_while(|a| *a != "-i")
        .nth(1)
        .cloned()
        .unwrap_or_else(|| prog.clone());
    let log =
        std::fs::File::create(Path::new(crate::network::NET_DIR).join(format!("{iface}.log")));
    if let Ok(f) = log {
        if let Ok(f2) = f.try_clone() {
            cmd.stdout(f).stderr(f2);
        }
    }
    match cmd.spawn() {
        Ok(child) => log::info!("{} (pid {})", c.argv.join(" "), child.id()),
        Err(e) => log::warn!("{}: {e}", c.argv.join(" ")),
    }
}

fn program_name(p: Program) -> &'static str {
    match p {
        Program::Lifeboat => "lifeboat",
        Program::Shell => "shell",
    }
}

fn describe_code(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".into(),
    }
}

/// How long a message about a job that did not start stays on the consoles before the UI.
/// How long a network job waits for an address.
const NET_WAIT: Duration = Duration::from_secs(90);
/// The report of a job run from a network URL (on the RAM disk; shown on the consoles).
pub const URL_JOB_REPORT: &str = "/run/lifeboat/job-report.txt";
const NOT_RUN_PAUSE: Duration = Duration::from_secs(8);

/// The job file `path` (as given on the command line) inside the volume mounted at `root`: a
/// regular file below `root` (no `..`, no symbolic link anywhere on the way, so the job and its
/// report stay on the job's volume).
pub fn job_file(root: &Path, path: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    let rel = Path::new(path.trim_start_matches('/'));
    let mut at = root.to_path_buf();
    let mut parts = rel.components().peekable();
    if parts.peek().is_none() {
        return Err(format!("the job path {path} names no file"));
    }
    while let Some(c) = parts.next() {
        let Component::Normal(name) = c else {
            return Err(format!(
                "the job path {} must stay inside the volume (no `..`)",
                disk::text::printable(path)
            ));
        };
        at.push(name);
        let meta = std::fs::symlink_metadata(&at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("job file {} not found", disk::text::printable(path))
            } else {
                format!("{}: {e}", at.display())
            }
        })?;
        let last = parts.peek().is_none();
        let ok = if last {
            meta.file_type().is_file()
        } else {
            meta.file_type().is_dir()
        };
        if !ok {
            return Err(format!(
                "{} is not a {} (symbolic links are not followed)",
                at.display(),
                if last { "regular file" } else { "folder" }
            ));
        }
    }
    Ok(at)
}

/// Appends `line` to the report file (never following a link: the report was created by init).
fn append_report(report: &Path, line: &str) {
    match OpenOptions::new()
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(report)
    {
        Ok(mut f) => {
            let _ = writeln!(f, "{line}");
            let _ = f.sync_all();
        }
        Err(e) => log::warn!("appending to {}: {e}", report.display()),
    }
}

/// Syncs and unmounts the job volume.
fn unmount_job_volume() {
    nix::unistd::sync();
    if let Err(e) = disk::mount::unmount(Path::new(JOB_MOUNT)) {
        log::warn!("{e}");
    }
}

/// Names of the block devices in /sys/class/block, whole disks before partitions, sorted.
fn block_devices() -> Vec<String> {
    let mut v: Vec<(bool, String)> = std::fs::read_dir("/sys/class/block")
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    (
                        e.path().join("partition").exists(),
                        e.file_name().to_string_lossy().into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}

/// Stops kernel messages below emergency level from reaching the consoles (see
/// [`Cmdline::quiet_console`]); once, the first time a UI starts.
fn quiet_console_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    log::info!(
        "kernel messages no longer go to the consoles (they would garble the text UI): \
         see the Log screen, dmesg or {}; boot with lifeboat.debug to keep them",
        crate::steps::LOG_FILE
    );
    if let Err(e) = std::fs::write("/proc/sys/kernel/printk", "1\n") {
        log::warn!("lowering the console log level: {e}");
    }
}

fn spawn_on_tty(
    program: &str,
    args: &[&str],
    tty: &str,
    term: &str,
    debug: bool,
) -> std::io::Result<Pid> {
    let t = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(tty)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", ENV_PATH)
        .env("TERM", term)
        .env("HOME", "/root")
        .env("SHELL", SHELL)
        .env("LIFEBOAT_TTY", tty)
        .stdin(Stdio::from(t.try_clone()?))
        .stdout(Stdio::from(t.try_clone()?))
        .stderr(Stdio::from(t));
    if debug {
        cmd.env("RUST_LOG", "debug");
    }
    if program == SHELL {
        cmd.arg0("-sh");
    }
    // SAFETY: the closure runs in the child between fork and exec and only calls the
    // async-signal-safe setsid(2) and ioctl(2).
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // Make the console the controlling terminal so job control and ^C work.
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 1) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok(Pid::from_raw(i32::try_from(child.id()).unwrap_or(-1)))
}

/// File-system types that hold no user data and are left mounted at power-off.
const VIRTUAL_FS: &[&str] = &[
    "rootfs",
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "ramfs",
    "securityfs",
    "cgroup2",
    "debugfs",
    "efivarfs",
];

/// Mount points to unmount before power-off, innermost first, from `/proc/mounts` text.
pub fn unmount_order(mounts: &str) -> Vec<String> {
    let mut v: Vec<String> = mounts
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_src, target, fstype) = (w.next()?, w.next()?, w.next()?);
            (!VIRTUAL_FS.contains(&fstype) && target != "/").then(|| target.replace("\\040", " "))
        })
        .collect();
    v.reverse();
    v
}

/// Stops everything, syncs, unmounts and powers off or reboots. Never returns.
pub fn power(p: Power) -> ! {
    log::info!(
        "{}: stopping programs, syncing, unmounting",
        if p == Power::Off {
            "power off"
        } else {
            "reboot"
        }
    );
    say(if p == Power::Off {
        "lifeboat: powering off"
    } else {
        "lifeboat: rebooting"
    });
    use nix::sys::signal::{kill, Signal};
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => break,
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(50)),
            _ => {}
        }
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
    nix::unistd::sync();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for target in unmount_order(&mounts) {
        if let Err(e) = umount2(target.as_str(), MntFlags::empty()) {
            log::warn!("unmounting {target}: {e}; remounting read-only");
            let _ = mount(
                None::<&str>,
                target.as_str(),
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            );
        }
    }
    nix::unistd::sync();
    let how = match p {
        Power::Off => nix::sys::reboot::RebootMode::RB_POWER_OFF,
        Power::Reboot => nix::sys::reboot::RebootMode::RB_AUTOBOOT,
    };
    let Err(e) = nix::sys::reboot::reboot(how);
    log::error!("reboot(2): {e}");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_100_and_101_of_lifeboat_power_off_and_reboot() {
        assert_eq!(on_exit(Program::Lifeboat, Some(100)), Some(Power::Off));
        assert_eq!(on_exit(Program::Lifeboat, Some(101)), Some(Power::Reboot));
        assert_eq!(on_exit(Program::Lifeboat, Some(0)), None);
        assert_eq!(on_exit(Program::Lifeboat, None), None);
        assert_eq!(
            on_exit(Program::Shell, Some(100)),
            None,
            "a shell's exit code never powers off"
        );
    }

    #[test]
    fn quick_failures_back_off_and_long_runs_restart_fast() {
        assert_eq!(
            restart_delay(Duration::from_secs(60), 5),
            Duration::from_secs(1)
        );
        assert_eq!(
            restart_delay(Duration::from_millis(10), 1),
            Duration::from_secs(2)
        );
        assert_eq!(
            restart_delay(Duration::from_millis(10), 2),
            Duration::from_secs(4)
        );
        assert_eq!(
            restart_delay(Duration::from_millis(10), 30),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn report_sits_next_to_the_job_file() {
        assert_eq!(
            report_path(Path::new("/mnt/job/jobs/nightly.toml")),
            PathBuf::from("/mnt/job/jobs/nightly.report.txt")
        );
        assert_eq!(
            report_path(Path::new("/mnt/job/j")),
            PathBuf::from("/mnt/job/j.report.txt")
        );
    }

    #[test]
    fn the_job_file_must_be_a_regular_file_inside_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("jobs")).unwrap();
        std::fs::write(root.join("jobs/nightly.toml"), "").unwrap();
        assert_eq!(
            job_file(root, "/jobs/nightly.toml"),
            Ok(root.join("jobs/nightly.toml"))
        );
        let missing = job_file(root, "/jobs/weekly.toml").unwrap_err();
        assert_eq!(missing, "job file /jobs/weekly.toml not found");
        let escape = job_file(root, "/jobs/../../etc/passwd").unwrap_err();
        assert!(escape.contains("must stay inside the volume"), "{escape}");
        assert!(job_file(root, "/jobs")
            .unwrap_err()
            .contains("not a regular file"));
        assert!(job_file(root, "/").unwrap_err().contains("names no file"));
        std::os::unix::fs::symlink("/etc/hostname", root.join("link.toml")).unwrap();
        let link = job_file(root, "/link.toml").unwrap_err();
        assert!(link.contains("symbolic links are not followed"), "{link}");
        std::os::unix::fs::symlink("jobs", root.join("linkdir")).unwrap();
        assert!(job_file(root, "/linkdir/nightly.toml")
            .unwrap_err()
            .contains("is not a folder"));
    }

    #[test]
    fn only_real_filesystems_are_unmounted_innermost_first() {
        let mounts = "rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\n\
/dev/sr0 /run/lifeboat/media iso9660 ro 0 0\n/dev/sda2 /mnt/job ext4 rw 0 0\n/dev/sdb1 /mnt/job/my\\040stick vfat rw 0 0\n";
        assert_eq!(
            unmount_order(mounts),
            vec!["/mnt/job/my stick", "/mnt/job", "/run/lifeboat/media"]
        );
    }
}
