//! End-to-end scenarios in QEMU (TCG): the real `lifeboat` in the booted image works on a bootable
//! system disk (GPT + UEFI GRUB + ext4 root, see `qemu_tests::system_disk`), and the disks it
//! restores boot under OVMF and print the system disk's marker.
//!
//! Lifeboat is booted directly (kernel + initramfs, `lifeboat.serial=shell`) and driven from the
//! busybox shell on the serial console. Run with `cargo xtask qemu-test`.

use anyhow::{bail, Context, Result};
use qemu_tests::fixture::{run, run_status, sha256, sparse_file, write_into};
use qemu_tests::system_disk::{self, copy_sparse, marker_line};
use qemu_tests::vm::{Disk, Firmware, Image, Interface, Vm, VmBuilder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(300);
const JOB: Duration = Duration::from_secs(600);

fn scratch(name: &str) -> Result<PathBuf> {
    let d = qemu_tests::vm::workspace_root()
        .join("target/qemu-scratch/e2e")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", p.display()))
}

/// An MBR "USB drive" of `mib` MiB with one exFAT partition labelled BACKUPS.
fn exfat_drive(dir: &Path, mib: u64) -> Result<PathBuf> {
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

/// Boots Lifeboat directly with a shell on the serial console.
fn lifeboat_shell(b: VmBuilder, img: &Image) -> Result<Vm> {
    let mut vm = b
        .kernel(
            &img.vmlinuz,
            &img.initramfs,
            "console=ttyS0,115200 lifeboat.serial=shell",
        )
        .start()?;
    vm.expect("started /bin/sh on ttyS0", BOOT)?;
    vm.expect("lifeboat:", BOOT)?;
    // Quiet kernel messages on the console so they do not interleave with command output.
    sh(&mut vm, "dmesg -n 1", Duration::from_secs(30))?;
    Ok(vm)
}

/// Runs `cmd` in the serial shell; returns its output and exit code.
fn sh_status(vm: &mut Vm, cmd: &str, timeout: Duration) -> Result<(i32, String)> {
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
fn sh(vm: &mut Vm, cmd: &str, timeout: Duration) -> Result<String> {
    let (code, out) = sh_status(vm, cmd, timeout)?;
    if code != 0 {
        bail!("`{cmd}` exited {code} in the VM:\n{out}");
    }
    Ok(out)
}

/// Runs a long `lifeboat` command with its output in `log` (kept off the console); on failure the
/// error carries the log.
fn job(vm: &mut Vm, cmd: &str, log: &str) -> Result<()> {
    let full = format!("{cmd} </dev/null >{log} 2>&1");
    if let Err(e) = sh(vm, &full, JOB) {
        let text = sh(vm, &format!("cat {log}"), Duration::from_secs(30)).unwrap_or_default();
        return Err(e.context(format!("output of `{cmd}`:\n{text}")));
    }
    Ok(())
}

/// Boots `disk` alone under OVMF and waits for the system disk's marker.
fn boots_under_ovmf(name: &str, disk: &Path, interface: Interface) -> Result<Duration> {
    let mut d = Disk::new(disk, interface).serial("BOOTCHECK");
    d.boot = true;
    let mut vm = VmBuilder::new(name)
        .firmware(Firmware::Uefi)
        .disk(d)
        .start()?;
    vm.expect(&marker_line(), BOOT)?;
    vm.wait_exit(Duration::from_secs(60))?;
    Ok(vm.uptime())
}

fn report(name: &str, t0: Instant) {
    eprintln!(
        "e2e {name}: passed in {:.0} s wall",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn system_disk_fixture_boots_under_ovmf_and_prints_its_marker() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("fixture-boots")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    boots_under_ovmf("e2e-fixture-boots", &disk, Interface::Virtio)?;
    let (code, v) = run_status("sgdisk", &["-v", path(&disk)?])?;
    assert_eq!(code, 0, "sgdisk -v of the fixture:\n{v}");
    report("fixture boots", t0);
    Ok(())
}

#[test]
fn crash_recovery_backup_wipe_restore_and_the_restored_disk_boots() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("crash-recovery")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let table_before = run("sgdisk", &["-p", path(&disk)?])?;
    let usb = exfat_drive(&dir, 400)?;
    let b = VmBuilder::new("e2e-crash-recovery")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&usb, Interface::Usb).serial("USB1"));
    let mut vm = lifeboat_shell(b, &img)?;
    sh(
        &mut vm,
        "mount -t exfat /dev/sda1 /mnt",
        Duration::from_secs(60),
    )?;
    job(
        &mut vm,
        "lifeboat backup serial:SYS1 /mnt/sys.lbi",
        "/tmp/backup.log",
    )?;
    sh(&mut vm, "sync", Duration::from_secs(60))?;
    // The read-only guarantee: the source is bit-identical after the backup.
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    // The crash: partition tables and file-system headers at both ends are gone.
    sh(
        &mut vm,
        "dd if=/dev/zero of=/dev/vda bs=1M count=4 2>/dev/null && \
         dd if=/dev/zero of=/dev/vda bs=1M seek=$(( $(blockdev --getsz /dev/vda) / 2048 - 1 )) count=1 2>/dev/null && \
         sync && blockdev --rereadpt /dev/vda; true",
        Duration::from_secs(60),
    )?;
    assert_ne!(sha256(&disk)?, before, "the wipe did not reach the disk");
    job(
        &mut vm,
        "lifeboat restore /mnt/sys.lbi serial:SYS1 --yes",
        "/tmp/restore.log",
    )?;
    sh(&mut vm, "umount /mnt && sync", Duration::from_secs(120))?;
    vm.send("poweroff -f\n")?;
    vm.wait_exit(Duration::from_secs(60))?;
    drop(vm);
    let (code, v) = run_status("sgdisk", &["-v", path(&disk)?])?;
    assert_eq!(code, 0, "sgdisk -v of the restored disk:\n{v}");
    assert!(v.contains("No problems found"), "sgdisk -v:\n{v}");
    let table_after = run("sgdisk", &["-p", path(&disk)?])?;
    assert_eq!(
        table_after, table_before,
        "the restored partition table differs"
    );
    boots_under_ovmf("e2e-crash-recovery-restored", &disk, Interface::Virtio)?;
    report("crash recovery", t0);
    Ok(())
}

/// `dumpe2fs -h` field `name` (e.g. `Block count:`) of the ext4 in `part`.
fn dumpe2fs_field(part: &Path, name: &str) -> Result<u64> {
    let out = run("dumpe2fs", &["-h", path(part)?])?;
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no `{name}` in dumpe2fs -h {}:\n{out}", part.display()))
}

#[test]
fn ssd_migration_clone_to_a_larger_nvme_grows_the_root_and_the_nvme_alone_boots() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("ssd-migration")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let nvme = dir.join("nvme.img");
    let nvme_bytes: u64 = 320 << 20;
    sparse_file(&nvme, nvme_bytes)?;
    let b = VmBuilder::new("e2e-ssd-migration")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&nvme, Interface::Nvme).serial("NVME1"));
    let mut vm = lifeboat_shell(b, &img)?;
    job(
        &mut vm,
        "lifeboat clone serial:SYS1 serial:NVME1 --grow-last --yes",
        "/tmp/clone.log",
    )?;
    sh(&mut vm, "sync", Duration::from_secs(60))?;
    vm.send("poweroff -f\n")?;
    vm.wait_exit(Duration::from_secs(60))?;
    drop(vm);
    assert_eq!(sha256(&disk)?, before, "the clone changed its source disk");
    let (code, v) = run_status("sgdisk", &["-v", path(&nvme)?])?;
    assert!(
        code == 0 && v.contains("No problems found"),
        "sgdisk -v of the clone:\n{v}"
    );
    // The last partition grew to the end of the new disk and the root file system with it.
    let (start, last) = system_disk::partition_range(&nvme, 2)?;
    let part_bytes = (last + 1 - start) * 512;
    assert!(
        (last + 1) * 512 > nvme_bytes - (1 << 20),
        "partition 2 of the clone ends at LBA {last}, far from the end of the {nvme_bytes}-byte disk"
    );
    let root = dir.join("root.img");
    qemu_tests::fixture::extract(&nvme, start * 512, part_bytes, &root)?;
    let blocks = dumpe2fs_field(&root, "Block count:")?;
    let block_size = dumpe2fs_field(&root, "Block size:")?;
    let fs_bytes = blocks * block_size;
    assert!(
        fs_bytes <= part_bytes && part_bytes - fs_bytes < 4 << 20,
        "root file system is {fs_bytes} bytes in a {part_bytes}-byte partition"
    );
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&root)?])?;
    assert_eq!(code, 0, "e2fsck -fn of the grown root:\n{fsck}");
    std::fs::remove_file(&root)?;
    boots_under_ovmf("e2e-ssd-migration-nvme", &nvme, Interface::Nvme)?;
    report("ssd migration", t0);
    Ok(())
}

/// The `lifeboat` binary for host-side checks: `LIFEBOAT_BIN`, else the static one staged into
/// the image's initramfs by `cargo xtask image` (the very binary the VM runs).
fn host_lifeboat() -> Result<PathBuf> {
    let p = std::env::var_os("LIFEBOAT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            qemu_tests::vm::workspace_root().join("target/lifeboat/initramfs-root/bin/lifeboat")
        });
    if !p.is_file() {
        bail!(
            "{} is missing: build the image with `cargo xtask image` or set LIFEBOAT_BIN",
            p.display()
        );
    }
    Ok(p)
}

#[test]
fn unattended_technician_job_backs_up_by_serial_verifies_reports_and_powers_off() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("technician")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let content = dir.join("content");
    std::fs::create_dir_all(content.join("images"))?;
    std::fs::write(
        content.join("tech.toml"),
        "# technician's stick: image the system disk and check the image\n\
         [[step]]\n\
         action = \"backup\"\n\
         source = \"serial:SYS1\"\n\
         image = \"images/{model}-{serial}-{date}.lbi\"\n\
         \n\
         [[step]]\n\
         action = \"verify\"\n",
    )?;
    // The technician's drive: a bare ext4 labelled BACKUPS (read back on the host by debugfs).
    let vol = dir.join("backups.img");
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "BACKUPS",
            "-d",
            path(&content)?,
            path(&vol)?,
            "300M",
        ],
    )?;
    let mut vm = VmBuilder::new("e2e-technician")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&vol, Interface::Virtio).serial("STICK1"))
        .kernel(
            &img.vmlinuz,
            &img.initramfs,
            "console=ttyS0,115200 lifeboat.job=BACKUPS:/tech.toml lifeboat.after=poweroff",
        )
        .start()?;
    vm.expect("job /mnt/job/tech.toml started", BOOT)?;
    vm.expect("unattended job finished", JOB)?;
    vm.wait_exit(Duration::from_secs(120))?;
    drop(vm);
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&vol)?])?;
    assert_eq!(code, 0, "e2fsck of the technician's drive:\n{fsck}");
    let report_text = run("debugfs", &["-R", "cat /tech.report.txt", path(&vol)?])?;
    assert!(
        report_text.contains("lifeboat run exited: exit code 0"),
        "the job did not succeed; report:\n{report_text}"
    );
    let listing = run("debugfs", &["-R", "ls -l /images", path(&vol)?])?;
    let name = listing
        .split_whitespace()
        .find(|w| w.ends_with(".lbi"))
        .with_context(|| format!("no image in /images:\n{listing}"))?
        .to_string();
    assert!(
        name.contains("SYS1"),
        "image {name} is not named by the disk serial"
    );
    let today = run("date", &["-u", "+%Y-%m-%d"])?;
    assert!(
        name.contains(today.trim()),
        "image {name} lacks today's date"
    );
    assert!(
        report_text.contains(&name) || report_text.contains("SYS1"),
        "report:\n{report_text}"
    );
    let host_copy = dir.join(&name);
    run(
        "debugfs",
        &[
            "-R",
            &format!("dump /images/{name} {}", path(&host_copy)?),
            path(&vol)?,
        ],
    )?;
    let out = std::process::Command::new(host_lifeboat()?)
        .args(["verify"])
        .arg(&host_copy)
        .output()?;
    assert!(
        out.status.success(),
        "host `lifeboat verify {name}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    report("technician job", t0);
    Ok(())
}
