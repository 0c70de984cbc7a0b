//! The QEMU harness: a [`VmBuilder`] for disks, firmware, boot medium and kernel command line; a
//! running [`Vm`] with the serial console captured to a log file, [`Vm::expect`] on it with a
//! timeout, [`Vm::send`] to type on it, and the QEMU monitor on a unix socket for hot-plug.
//!
//! QEMU runs under TCG unless `LIFEBOAT_KVM=1`. It is killed when the `Vm` is dropped; the serial
//! log is always copied to `target/qemu-logs/<name>.log` so a failure can be read afterwards.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How a disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// virtio-blk-pci.
    Virtio,
    /// An NVMe controller with one namespace.
    Nvme,
    /// SATA on the q35 machine's built-in AHCI controller (`ide-hd`).
    Ahci,
    /// usb-storage on an xHCI controller.
    Usb,
    /// A SATA CD-ROM drive (`ide-cd`), read-only.
    Cdrom,
}

/// The firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default.
    Bios,
    /// OVMF (`/usr/share/OVMF/OVMF_CODE_4M.fd` and a private copy of the variable store).
    Uefi,
    /// OVMF with Secure Boot enforced: the SMM build (`OVMF_CODE_4M.ms.fd`) on a q35 machine with
    /// SMM and a secure flash, and a private copy of `OVMF_VARS_4M.ms.fd` (Microsoft's keys
    /// enrolled, Secure Boot on).
    SecureBoot,
}

impl Firmware {
    /// The OVMF code and variable-store template, for the UEFI variants.
    pub fn ovmf(self) -> Option<(&'static str, &'static str)> {
        match self {
            Firmware::Bios => None,
            Firmware::Uefi => Some((
                "/usr/share/OVMF/OVMF_CODE_4M.fd",
                "/usr/share/OVMF/OVMF_VARS_4M.fd",
            )),
            Firmware::SecureBoot => Some((
                "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
                "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
            )),
        }
    }
}

/// One disk of a VM.
#[derive(Debug, Clone)]
pub struct Disk {
    pub path: PathBuf,
    pub interface: Interface,
    pub serial: Option<String>,
    pub model: Option<String>,
    /// Boot from this disk first.
    pub boot: bool,
}

impl Disk {
    pub fn new(path: impl Into<PathBuf>, interface: Interface) -> Self {
        Disk {
            path: path.into(),
            interface,
            serial: None,
            model: None,
            boot: false,
        }
    }

    pub fn serial(mut self, serial: &str) -> Self {
        self.serial = Some(serial.to_string());
        self
    }

    pub fn model(mut self, model: &str) -> Self {
        self.model = Some(model.to_string());
        self
    }
}

/// The image `cargo xtask image` builds, found by env (`LIFEBOAT_ISO`, `LIFEBOAT_VMLINUZ`,
/// `LIFEBOAT_INITRAMFS`, set by `cargo xtask qemu-test`) or under `target/lifeboat/`.
#[derive(Debug, Clone)]
pub struct Image {
    pub iso: PathBuf,
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

impl Image {
    /// Finds the built image; a missing file is an error telling how to build it.
    pub fn find() -> Result<Image> {
        let dir = workspace_root().join("target/lifeboat");
        let pick = |var: &str, file: &str| -> Result<PathBuf> {
            let p = std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join(file));
            if !p.is_file() {
                bail!("{} is missing: build the image with `cargo xtask image` (or run these tests with `cargo xtask qemu-test`)", p.display());
            }
            Ok(p)
        };
        Ok(Image {
            iso: pick("LIFEBOAT_ISO", "lifeboat.iso")?,
            vmlinuz: pick("LIFEBOAT_VMLINUZ", "vmlinuz")?,
            initramfs: pick("LIFEBOAT_INITRAMFS", "initramfs.img")?,
        })
    }
}

/// Describes a VM before it starts.
#[derive(Debug, Clone)]
pub struct VmBuilder {
    name: String,
    firmware: Firmware,
    disks: Vec<Disk>,
    kernel: Option<(PathBuf, PathBuf, String)>,
    memory_mib: u32,
    cpus: u32,
    usb_controller: bool,
    /// `-nic` specifications (none: QEMU's default NIC on user networking).
    nics: Vec<String>,
    /// The network namespace QEMU runs in (`ip netns exec`), for a LAN of tap devices.
    netns: Option<String>,
}

impl VmBuilder {
    /// A VM named `name` (the log file's name): SeaBIOS, 1 GiB, no disks.
    pub fn new(name: &str) -> Self {
        VmBuilder {
            name: name.to_string(),
            firmware: Firmware::Bios,
            disks: Vec::new(),
            kernel: None,
            memory_mib: 1024,
            cpus: 1,
            usb_controller: false,
            nics: Vec::new(),
            netns: None,
        }
    }

    pub fn firmware(mut self, f: Firmware) -> Self {
        self.firmware = f;
        self
    }

    pub fn memory_mib(mut self, m: u32) -> Self {
        self.memory_mib = m;
        self
    }

    /// Virtual CPUs (1 unless set).
    pub fn cpus(mut self, n: u32) -> Self {
        self.cpus = n.max(1);
        self
    }

    pub fn disk(mut self, d: Disk) -> Self {
        if d.interface == Interface::Usb {
            self.usb_controller = true;
        }
        self.disks.push(d);
        self
    }

    /// Adds a network card (`-nic SPEC`, e.g. `user,model=virtio-net-pci`): user-mode
    /// networking, where the guest reaches the host's loopback as 10.0.2.2.
    pub fn nic(mut self, spec: &str) -> Self {
        self.nics.push(spec.to_string());
        self
    }

    /// Runs QEMU inside the network namespace `ns` (`ip netns exec NS qemu-system-x86_64 …`, which
    /// execs QEMU in place: killing the VM kills QEMU), where its `tap` NICs live.
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_string());
        self
    }

    /// Adds an xHCI controller even without USB disks (for hot-plug).
    pub fn usb_controller(mut self) -> Self {
        self.usb_controller = true;
        self
    }

    /// Boots `iso` as a CD.
    pub fn boot_cdrom(self, iso: &Path) -> Self {
        let mut d = Disk::new(iso, Interface::Cdrom);
        d.boot = true;
        self.disk(d)
    }

    /// Boots `iso` written to a USB stick (the hybrid ISO as a raw disk, read-only).
    pub fn boot_usb(self, iso: &Path) -> Self {
        let mut d = Disk::new(iso, Interface::Usb).serial("LIFEBOAT-STICK");
        d.boot = true;
        self.disk(d)
    }

    /// Boots the kernel and initramfs directly with `append` as the command line.
    pub fn kernel(mut self, vmlinuz: &Path, initramfs: &Path, append: &str) -> Self {
        self.kernel = Some((
            vmlinuz.to_path_buf(),
            initramfs.to_path_buf(),
            append.to_string(),
        ));
        self
    }

    /// The QEMU arguments (without the serial/monitor plumbing); `vars` is the OVMF variable
    /// store copy.
    pub fn args(&self, vars: &Path) -> Vec<String> {
        let kvm = std::env::var("LIFEBOAT_KVM").is_ok_and(|v| v == "1");
        let mut a: Vec<String> = vec![
            "-machine".into(),
            if self.firmware == Firmware::SecureBoot {
                "q35,smm=on"
            } else {
                "q35"
            }
            .into(),
            "-accel".into(),
            if kvm { "kvm" } else { "tcg" }.into(),
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
        ];
        if self.firmware == Firmware::SecureBoot {
            // Only SMM code may write the variable store, so the guest cannot turn Secure Boot off.
            a.extend([
                "-global".into(),
                "driver=cfi.pflash01,property=secure,value=on".into(),
            ]);
        }
        if let Some((code, _)) = self.firmware.ovmf() {
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={code}"
            ));
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ));
        }
        if self.usb_controller {
            a.extend(["-device".into(), "qemu-xhci,id=xhci".into()]);
        }
        let mut ide_bus = 0;
        for (i, d) in self.disks.iter().enumerate() {
            let ro = if d.interface == Interface::Cdrom || d.boot {
                ",readonly=on"
            } else {
                ""
            };
            let media = if d.interface == Interface::Cdrom {
                ",media=cdrom"
            } else {
                ""
            };
            a.push("-drive".into());
            a.push(format!(
                "file={},format=raw,if=none,id=d{i}{ro}{media}",
                d.path.display()
            ));
            let mut dev = match d.interface {
                Interface::Virtio => format!("virtio-blk-pci,drive=d{i}"),
                Interface::Nvme => format!(
                    "nvme,drive=d{i},serial={}",
                    d.serial.as_deref().unwrap_or("NVME0000")
                ),
                Interface::Ahci | Interface::Cdrom => {
                    let kind = if d.interface == Interface::Ahci {
                        "ide-hd"
                    } else {
                        "ide-cd"
                    };
                    ide_bus += 1;
                    format!("{kind},drive=d{i},bus=ide.{}", ide_bus - 1)
                }
                Interface::Usb => format!("usb-storage,bus=xhci.0,drive=d{i}"),
            };
            if let Some(s) = d
                .serial
                .as_deref()
                .filter(|_| d.interface != Interface::Nvme)
            {
                dev.push_str(&format!(",serial={s}"));
            }
            if let Some(m) = d
                .model
                .as_deref()
                .filter(|_| matches!(d.interface, Interface::Ahci | Interface::Cdrom))
            {
                dev.push_str(&format!(",model={m}"));
            }
            if d.boot && self.kernel.is_none() {
                dev.push_str(",bootindex=0");
            }
            a.push("-device".into());
            a.push(dev);
        }
        for n in &self.nics {
            a.extend(["-nic".into(), n.clone()]);
        }
        if let Some((k, i, append)) = &self.kernel {
            a.extend([
                "-kernel".into(),
                k.display().to_string(),
                "-initrd".into(),
                i.display().to_string(),
            ]);
            a.extend(["-append".into(), append.clone()]);
        }
        a
    }

    /// Starts QEMU.
    pub fn start(self) -> Result<Vm> {
        crate::fixture::require("qemu-system-x86_64")?;
        let dir = tempfile_dir(&self.name)?;
        let vars = dir.join("OVMF_VARS.fd");
        if let Some((_, template)) = self.firmware.ovmf() {
            std::fs::copy(template, &vars)
                .with_context(|| format!("copying {template} (install the `ovmf` package)"))?;
        }
        let monitor = dir.join("monitor.sock");
        let log_path = dir.join("serial.log");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new(crate::fixture::require("ip")?);
                c.args(["netns", "exec", ns, "qemu-system-x86_64"]);
                c
            }
            None => Command::new("qemu-system-x86_64"),
        };
        cmd.args(self.args(&vars))
            .args([
                "-chardev",
                "stdio,id=ser0,signal=off",
                "-serial",
                "chardev:ser0",
            ])
            .arg("-monitor")
            .arg(format!("unix:{},server=on,wait=off", monitor.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cmdline = format!("{cmd:?}");
        let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
        let stdin = child.stdin.take().context("qemu stdin")?;
        let stdout = child.stdout.take().context("qemu stdout")?;
        let stderr = child.stderr.take().context("qemu stderr")?;
        let shared = Arc::new((Mutex::new(Vec::<u8>::new()), Condvar::new()));
        let mut log = std::fs::File::create(&log_path)?;
        writeln!(log, "# {cmdline}")?;
        let s2 = Arc::clone(&shared);
        std::thread::spawn(move || pump(stdout, log, s2));
        let s3 = Arc::clone(&shared);
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                let (m, cv) = &*s3;
                m.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(format!("[qemu stderr] {line}").as_bytes());
                cv.notify_all();
                line.clear();
            }
        });
        Ok(Vm {
            name: self.name,
            child,
            stdin,
            shared,
            cursor: 0,
            log_path,
            monitor,
            dir,
            started: Instant::now(),
        })
    }
}

fn tempfile_dir(name: &str) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("lifeboat-vm-{name}-{}", std::process::id()));
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn pump(mut from: impl Read, mut log: std::fs::File, shared: Arc<(Mutex<Vec<u8>>, Condvar)>) {
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = &buf[..n];
                let _ = log.write_all(chunk);
                let (m, cv) = &*shared;
                m.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(chunk);
                cv.notify_all();
            }
        }
    }
}

/// A running VM.
#[derive(Debug)]
pub struct Vm {
    name: String,
    child: Child,
    stdin: ChildStdin,
    shared: Arc<(Mutex<Vec<u8>>, Condvar)>,
    cursor: usize,
    log_path: PathBuf,
    monitor: PathBuf,
    dir: PathBuf,
    started: Instant,
}

impl Vm {
    /// Waits until `pattern` appears on the serial console after the previous match; returns the
    /// output from the previous match to the end of this one. Fails with the log's tail when
    /// `timeout` passes or QEMU exits.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut buf = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(pos) = find(
                buf.get(self.cursor..).unwrap_or_default(),
                pattern.as_bytes(),
            ) {
                let end = self.cursor + pos + pattern.len();
                let text = String::from_utf8_lossy(buf.get(self.cursor..end).unwrap_or_default())
                    .into_owned();
                self.cursor = end;
                return Ok(text);
            }
            let now = Instant::now();
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if now >= deadline || exited {
                let tail_start = buf.len().saturating_sub(3000);
                let tail =
                    String::from_utf8_lossy(buf.get(tail_start..).unwrap_or_default()).into_owned();
                bail!(
                    "VM {}: `{pattern}` not seen on the serial console after {:.0} s{} (log: {}); last output:\n{tail}",
                    self.name,
                    self.started.elapsed().as_secs_f64(),
                    if exited { ", QEMU exited" } else { "" },
                    self.kept_log().display()
                );
            }
            let wait = (deadline - now).min(Duration::from_millis(500));
            buf = cv
                .wait_timeout(buf, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Types `text` on the serial console one character at a time, each once the guest has echoed
    /// the previous one and gone quiet: for firmware prompts (GRUB under OVMF) that drop characters
    /// typed faster than they echo them.
    pub fn type_slowly(&mut self, text: &str) -> Result<()> {
        let len = |vm: &Vm| {
            let (m, _) = &*vm.shared;
            m.lock().unwrap_or_else(|e| e.into_inner()).len()
        };
        for c in text.chars() {
            let before = len(self);
            self.send(&c.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut last = before;
            let mut quiet_since = Instant::now();
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                let now = len(self);
                if now != last {
                    last = now;
                    quiet_since = Instant::now();
                } else if now > before && quiet_since.elapsed() >= Duration::from_millis(100) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Types `text` on the serial console.
    pub fn send(&mut self, text: &str) -> Result<()> {
        self.stdin.write_all(text.as_bytes())?;
        self.stdin.flush()?;
        Ok(())
    }

    /// Runs a QEMU monitor command and returns its output.
    pub fn monitor(&mut self, command: &str) -> Result<String> {
        let mut s = UnixStream::connect(&self.monitor)
            .with_context(|| format!("connecting to {}", self.monitor.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let read_prompt = |s: &mut UnixStream| -> Result<String> {
            let mut out = Vec::new();
            let mut b = [0u8; 1024];
            while !out.ends_with(b"(qemu) ") {
                let n = s.read(&mut b).context("reading the QEMU monitor")?;
                if n == 0 {
                    bail!("QEMU monitor closed");
                }
                out.extend_from_slice(&b[..n]);
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        };
        read_prompt(&mut s)?;
        s.write_all(format!("{command}\n").as_bytes())?;
        let out = read_prompt(&mut s)?;
        Ok(out)
    }

    /// Waits until QEMU exits by itself (the guest powered off); fails after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("VM {}: QEMU exited with {status}", self.name);
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "VM {}: still running {} s after it should have powered off",
                    self.name,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The serial console's output from byte `from` on (everything QEMU printed so far), for a
    /// terminal emulator that follows the screen (see `qemu_tests::screen`).
    pub fn output_from(&self, from: usize) -> Vec<u8> {
        let (m, _) = &*self.shared;
        let buf = m.lock().unwrap_or_else(|e| e.into_inner());
        buf.get(from..).unwrap_or_default().to_vec()
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Seconds since QEMU started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn kept_log(&self) -> PathBuf {
        workspace_root()
            .join("target/qemu-logs")
            .join(format!("{}.log", self.name))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let kept = self.kept_log();
        if let Some(p) = kept.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        let _ = std::fs::copy(&self.log_path, &kept);
        if std::thread::panicking() {
            eprintln!("VM {}: serial log kept at {}", self.name, kept.display());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_map_to_the_right_qemu_devices() {
        let b = VmBuilder::new("t")
            .firmware(Firmware::Uefi)
            .boot_cdrom(Path::new("/x.iso"))
            .disk(Disk::new("/a.img", Interface::Virtio).serial("V1"))
            .disk(Disk::new("/b.img", Interface::Nvme).serial("N1"))
            .disk(
                Disk::new("/c.img", Interface::Ahci)
                    .serial("S1")
                    .model("Samsung SSD"),
            )
            .disk(Disk::new("/d.img", Interface::Usb).serial("U1"));
        let a = b.args(Path::new("/vars.fd")).join(" ");
        assert!(a.contains("ide-cd,drive=d0,bus=ide.0,bootindex=0"), "{a}");
        assert!(
            a.contains("file=/x.iso,format=raw,if=none,id=d0,readonly=on,media=cdrom"),
            "{a}"
        );
        assert!(a.contains("virtio-blk-pci,drive=d1,serial=V1"), "{a}");
        assert!(a.contains("nvme,drive=d2,serial=N1"), "{a}");
        assert!(
            a.contains("ide-hd,drive=d3,bus=ide.1,serial=S1,model=Samsung SSD"),
            "{a}"
        );
        assert!(
            a.contains("qemu-xhci,id=xhci")
                && a.contains("usb-storage,bus=xhci.0,drive=d4,serial=U1"),
            "{a}"
        );
        assert!(
            a.contains("OVMF_CODE_4M.fd") && a.contains("unit=1,file=/vars.fd"),
            "{a}"
        );
        assert!(a.contains("-accel tcg") || std::env::var("LIFEBOAT_KVM").is_ok_and(|v| v == "1"));
    }
}
