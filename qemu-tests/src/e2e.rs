//! Helpers of the end-to-end scenarios (`tests/e2e.rs`): Lifeboat booted with a busybox shell on
//! the serial console, commands run there with their exit codes, the drives the scenarios attach
//! (an exFAT USB drive, a bare ext4 drive the host can read back with `debugfs`, a disk behind
//! QEMU's `blkdebug` error injector), and the host's own `lifeboat` binary for checks outside the
//! VM.

use crate::fixture::{path, run, sparse_file, write_into};
use crate::vm::{Disk, Firmware, Image, Interface, Vm, VmBuilder};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a boot to the shell or to a system disk's marker may take under TCG.
pub const BOOT: Duration = Duration::from_secs(300);
/// How long one backup, restore or clone may take under TCG.
pub const JOB: Duration = Duration::from_secs(600);
/// How long a quick shell command may take.
pub const QUICK: Duration = Duration::from_secs(60);

/// An MBR "USB drive" of `mib` MiB with one exFAT partition labelled BACKUPS.
pub fn exfat_drive(dir: &Path, mib: u64) -> Result<PathBuf> {
    let disk = dir.join("usb.img");
    sparse_file(&disk, mib << 20)?;
    run(
        "bash",
        &[
            "-c",
            &format!("echo 'start=2048, type=7' | sfdisk -q '{}'", path(&disk)?),
        ],
    )?;
    let part = dir.join("usb-part.img");
    sparse_file(&part, (mib - 1) << 20)?;
    run("mkfs.exfat", &["-L", "BACKUPS", path(&part)?])?;
    write_into(&disk, 1 << 20, &part)?;
    std::fs::remove_file(&part)?;
    Ok(disk)
}

/// A bare ext4 file system of `mib` MiB (no partition table) labelled `label` at `dir/name`,
/// holding the files of `content` if given. The host reads it back with `debugfs`.
pub fn ext4_drive(
    dir: &Path,
    name: &str,
    mib: u64,
    label: &str,
    content: Option<&Path>,
) -> Result<PathBuf> {
    let vol = dir.join(name);
    let size = format!("{mib}M");
    let mut args = vec!["-q", "-F", "-t", "ext4", "-L", label];
    if let Some(c) = content {
        args.extend(["-d", path(c)?]);
    }
    args.extend([path(&vol)?, size.as_str()]);
    run("mke2fs", &args)?;
    Ok(vol)
}

/// Copies `/inside` of the ext4 file system `vol` to the host file `out` (`debugfs dump`).
pub fn debugfs_dump(vol: &Path, inside: &str, out: &Path) -> Result<()> {
    run(
        "debugfs",
        &["-R", &format!("dump {inside} {}", path(out)?), path(vol)?],
    )?;
    if !out.is_file() {
        bail!("{inside} is not on {}", vol.display());
    }
    Ok(())
}

/// A disk behind QEMU's `blkdebug` driver: reads touching any of the 512-byte `sectors` fail
/// with EIO (errno 5) every time. The rules go to `cfg`.
pub fn failing_disk(
    image: &Path,
    cfg: &Path,
    sectors: &[u64],
    interface: Interface,
) -> Result<Disk> {
    let mut rules = String::new();
    for s in sectors {
        rules.push_str(&format!(
            "[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"{s}\"\nonce = \"off\"\n\n"
        ));
    }
    std::fs::write(cfg, rules).with_context(|| format!("writing {}", cfg.display()))?;
    Ok(Disk::new(
        format!("blkdebug:{}:{}", path(cfg)?, path(image)?),
        interface,
    ))
}

/// Boots Lifeboat directly with a shell on the serial console and kernel messages quieted.
pub fn lifeboat_shell(b: VmBuilder, img: &Image) -> Result<Vm> {
    lifeboat_shell_with(b, img, "")
}

/// [`lifeboat_shell`] with more kernel command-line options (`lifeboat.job=…`).
pub fn lifeboat_shell_with(b: VmBuilder, img: &Image, options: &str) -> Result<Vm> {
    let mut vm = b
        .kernel(
            &img.vmlinuz,
            &img.initramfs,
            format!("console=ttyS0,115200 lifeboat.serial=shell {options}").trim_end(),
        )
        .start()?;
    wait_shell(&mut vm)?;
    Ok(vm)
}

/// Waits for the busybox shell of a Lifeboat booted with `lifeboat.serial=shell` (directly or
/// over the network) until it answers commands.
pub fn wait_shell(vm: &mut Vm) -> Result<()> {
    vm.expect("started /bin/sh on ttyS0", BOOT)?;
    // The shell's prompt comes before or after init's line, and a line typed before the shell
    // reads the console may be lost: type until a command answers. The first one quiets kernel
    // messages on the console so they do not interleave with command output.
    let deadline = Instant::now() + BOOT;
    loop {
        match sh_status(vm, "dmesg -n 1", Duration::from_secs(20)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => continue,
        }
    }
}

/// Runs `cmd` in the serial shell; returns its exit code and output.
pub fn sh_status(vm: &mut Vm, cmd: &str, timeout: Duration) -> Result<(i32, String)> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // The typed line holds `E2E-""DONE`, the echo prints `E2E-DONE`: only the result matches.
    let tag = format!("E2E-DONE-{n}-");
    vm.send(&format!("{cmd}; echo E2E-\"\"DONE-{n}-$?\n"))?;
    let out = vm.expect(&tag, timeout)?;
    let code_text = vm.expect("\n", Duration::from_secs(10))?;
    let code: i32 = code_text
        .trim()
        .parse()
        .with_context(|| format!("exit code of `{cmd}`: {code_text:?}"))?;
    Ok((code, out))
}

/// Runs `cmd` in the serial shell and fails unless it exits 0.
pub fn sh(vm: &mut Vm, cmd: &str, timeout: Duration) -> Result<String> {
    let (code, out) = sh_status(vm, cmd, timeout)?;
    if code != 0 {
        bail!("`{cmd}` exited {code} in the VM:\n{out}");
    }
    Ok(out)
}

/// Runs a long `lifeboat` command with its output in `log` (kept off the console); returns its
/// exit code and that output.
pub fn job_status(vm: &mut Vm, cmd: &str, log: &str) -> Result<(i32, String)> {
    let (code, _) = sh_status(vm, &format!("{cmd} </dev/null >{log} 2>&1"), JOB)?;
    let text = sh(vm, &format!("cat {log}"), QUICK)?;
    Ok((code, text))
}

/// Runs a long `lifeboat` command with its output in `log`; fails unless it exits 0, with the
/// output in the error.
pub fn job(vm: &mut Vm, cmd: &str, log: &str) -> Result<String> {
    let (code, text) = job_status(vm, cmd, log)?;
    if code != 0 {
        bail!("`{cmd}` exited {code} in the VM; its output:\n{text}");
    }
    Ok(text)
}

/// The device node (`/dev/vdb`, `/dev/sda`) of the VM's disk with serial `serial`.
pub fn dev_by_serial(vm: &mut Vm, serial: &str) -> Result<String> {
    let out = sh(
        vm,
        &format!(
            "for d in /sys/block/*; do s=$(cat $d/serial $d/device/serial 2>/dev/null); \
             [ \"$s\" = '{serial}' ] && echo \"DEV=/dev/${{d##*/}}=\"; done; true"
        ),
        QUICK,
    )?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("DEV=")?.strip_suffix('='))
        .next()
        .map(str::to_string)
        .with_context(|| format!("no disk with serial {serial} in the VM:\n{out}"))
}

/// Unmounts everything under /mnt, syncs and powers the VM off; waits for QEMU to exit.
pub fn power_off(mut vm: Vm) -> Result<()> {
    sh(&mut vm, "sync; umount /mnt 2>/dev/null; sync", JOB)?;
    vm.send("poweroff -f\n")?;
    vm.wait_exit(QUICK)?;
    Ok(())
}

/// Boots `disk` alone under `firmware` and waits for the system disk's marker; returns the time
/// it took.
pub fn boots_alone(
    name: &str,
    disk: &Path,
    interface: Interface,
    firmware: Firmware,
) -> Result<Duration> {
    let mut d = Disk::new(disk, interface).serial("BOOTCHECK");
    d.boot = true;
    let mut vm = VmBuilder::new(name).firmware(firmware).disk(d).start()?;
    vm.expect(&crate::system_disk::marker_line(), BOOT)?;
    vm.wait_exit(QUICK)?;
    Ok(vm.uptime())
}

/// Prints a scenario's wall time (collected for BENCHMARKS.md).
pub fn report(name: &str, t0: Instant) {
    eprintln!(
        "e2e {name}: passed in {:.0} s wall",
        t0.elapsed().as_secs_f64()
    );
}

/// The `lifeboat` binary for host-side checks: `LIFEBOAT_BIN`, else the static one staged into
/// the image's initramfs by `cargo xtask image` (the very binary the VM runs).
pub fn host_lifeboat() -> Result<PathBuf> {
    let p = std::env::var_os("LIFEBOAT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::vm::workspace_root().join("target/lifeboat/initramfs-root/bin/lifeboat")
        });
    if !p.is_file() {
        bail!(
            "{} is missing: build the image with `cargo xtask image` or set LIFEBOAT_BIN",
            p.display()
        );
    }
    Ok(p)
}

/// Runs the host's `lifeboat` with `args`; returns its exit code and stdout+stderr.
pub fn host_lifeboat_run(args: &[&str]) -> Result<(i32, String)> {
    let bin = host_lifeboat()?;
    let out = std::process::Command::new(&bin)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok((
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}
