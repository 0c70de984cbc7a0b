//! Boot tests of the Lifeboat image in QEMU (TCG): the ISO boots on SeaBIOS and OVMF from CD and
//! USB to `lifeboat` on the serial console, `lifeboat list` shows disks on every bus with their
//! serials, and a hot-plugged USB disk is picked up. Under OVMF with Secure Boot enforced
//! (Microsoft's keys) the ISO boots through Debian's signed shim, GRUB and kernel from CD and USB,
//! loads its signed modules under lockdown, and an ISO with one byte of the kernel changed is
//! refused (and still boots with Secure Boot off).
//!
//! They need the built image: run them with `cargo xtask qemu-test` (which builds it first);
//! without it they fail and say how to build it.

use anyhow::Result;
use qemu_tests::fixture::{run, run_status, sparse_file};
use qemu_tests::vm::{Disk, Firmware, Image, Interface, VmBuilder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(300);

fn scratch(name: &str) -> Result<PathBuf> {
    let d = qemu_tests::vm::workspace_root()
        .join("target/qemu-scratch")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Boots the ISO through its grub menu, picks the serial-console entry by its hotkey, waits for
/// init to find the medium on `medium` and start `lifeboat` on ttyS0, and for the UI's first
/// screen (read through a terminal emulator): the title, the boot medium in the disk list and
/// the help line.
fn iso_boots_to_lifeboat(name: &str, firmware: Firmware, usb: bool, medium: &str) -> Result<()> {
    let img = Image::find()?;
    let b = VmBuilder::new(name).firmware(firmware);
    let b = if usb {
        b.boot_usb(&img.iso)
    } else {
        b.boot_cdrom(&img.iso)
    };
    let mut vm = b.start()?;
    vm.expect("Lifeboat, serial console", BOOT)?;
    vm.send("s")?;
    vm.expect("Run /init as init process", BOOT)?;
    vm.expect(&format!("boot medium: {medium} (LIFEBOAT)"), BOOT)?;
    vm.expect("started /bin/lifeboat on ttyS0", BOOT)?;
    let started = vm.uptime();
    let mut term = qemu_tests::screen::Terminal::new(80, 25);
    let node = medium.trim_start_matches("/dev/");
    let screen = term.wait_for(&mut vm, &["Lifeboat", node, "BOOT", "quit"], BOOT)?;
    eprintln!(
        "{name}: lifeboat started on the serial console after {:.1} s, first screen at {:.1} s:\n{screen}",
        started.as_secs_f64(),
        vm.uptime().as_secs_f64()
    );
    Ok(())
}

#[test]
fn iso_boots_to_lifeboat_on_seabios_from_cd() -> Result<()> {
    iso_boots_to_lifeboat("seabios-cd", Firmware::Bios, false, "/dev/sr0")
}

#[test]
fn iso_boots_to_lifeboat_on_seabios_from_usb() -> Result<()> {
    iso_boots_to_lifeboat("seabios-usb", Firmware::Bios, true, "/dev/sda")
}

#[test]
fn iso_boots_to_lifeboat_on_ovmf_from_cd() -> Result<()> {
    iso_boots_to_lifeboat("ovmf-cd", Firmware::Uefi, false, "/dev/sr0")
}

#[test]
fn iso_boots_to_lifeboat_on_ovmf_from_usb() -> Result<()> {
    iso_boots_to_lifeboat("ovmf-usb", Firmware::Uefi, true, "/dev/sda")
}

/// Under Secure Boot, from USB, through the same menu entry: the kernel reports Secure Boot and
/// init sees it (so the TUI can show it).
#[test]
fn iso_boots_to_lifeboat_under_secure_boot_from_usb() -> Result<()> {
    let img = Image::find()?;
    let mut vm = VmBuilder::new("secureboot-usb")
        .firmware(Firmware::SecureBoot)
        .boot_usb(&img.iso)
        .start()?;
    vm.expect("Lifeboat, serial console", BOOT)?;
    vm.send("s")?;
    vm.expect("Secure boot enabled", BOOT)?;
    vm.expect("Run /init as init process", BOOT)?;
    vm.expect("firmware: UEFI; secure boot: on", BOOT)?;
    vm.expect("boot medium: /dev/sda (LIFEBOAT)", BOOT)?;
    vm.expect("started /bin/lifeboat on ttyS0", BOOT)?;
    eprintln!(
        "secureboot-usb: lifeboat started after {:.1} s",
        vm.uptime().as_secs_f64()
    );
    Ok(())
}

/// Types GRUB commands at its prompt (`c` at the menu): boots the ISO's kernel with a shell on the
/// serial console. The signed GRUB still verifies the kernel through shim. Under OVMF GRUB writes
/// to the firmware console and to the serial port, and both end up on the serial line: its prompt
/// shows as `grub>grub>`, which is what marks a finished command.
fn grub_boot_to_serial_shell(vm: &mut qemu_tests::vm::Vm) -> Result<()> {
    const PROMPT: &str = "grub>grub>";
    vm.expect("Lifeboat, serial console", BOOT)?;
    vm.send("c")?;
    vm.expect(PROMPT, Duration::from_secs(60))?;
    for line in [
        "linux /boot/vmlinuz console=ttyS0 lifeboat.serial=shell",
        "initrd /boot/initramfs.img",
    ] {
        vm.type_slowly(line)?;
        vm.send("\r")?;
        let out = vm.expect(PROMPT, BOOT)?;
        anyhow::ensure!(!out.contains("error:"), "GRUB: `{line}` failed:\n{out}");
    }
    vm.type_slowly("boot")?;
    vm.send("\r")?;
    Ok(())
}

/// Under Secure Boot from CD: disks on virtio, NVMe and USB are listed, so their drivers (signed
/// modules) load under the locked-down kernel.
#[test]
fn secure_boot_from_cd_loads_signed_modules_and_lists_virtio_nvme_and_usb_disks() -> Result<()> {
    let img = Image::find()?;
    let dir = scratch("secureboot-list")?;
    let mut vm = VmBuilder::new("secureboot-cd-list")
        .firmware(Firmware::SecureBoot)
        .boot_cdrom(&img.iso)
        .disk(Disk::new(disk(&dir, "v.img", 64)?, Interface::Virtio).serial("SB-VIRTIO-1"))
        .disk(Disk::new(disk(&dir, "n.img", 96)?, Interface::Nvme).serial("SB-NVME-2"))
        .disk(Disk::new(disk(&dir, "u.img", 128)?, Interface::Usb).serial("SBUSB3"))
        .start()?;
    grub_boot_to_serial_shell(&mut vm)?;
    // The kernel prints these two in this order.
    vm.expect("Kernel is locked down", BOOT)?;
    vm.expect("Secure boot enabled", BOOT)?;
    vm.expect("firmware: UEFI; secure boot: on", BOOT)?;
    vm.expect("started /bin/sh on ttyS0", BOOT)?;
    vm.expect("lifeboat:", BOOT)?;
    let out = lifeboat_list(&mut vm)?;
    for serial in ["SB-VIRTIO-1", "SB-NVME-2", "SBUSB3"] {
        assert!(
            out.contains(serial),
            "`lifeboat list` under Secure Boot lacks {serial}:\n{out}"
        );
    }
    Ok(())
}

/// A copy of `iso` with one byte of the kernel changed, inside what its signature covers but in
/// bytes nothing executes (the zero padding at the end of the PE `.setup` section): the change
/// only matters to a signature check. (A byte in the middle of the file would hit the compressed
/// kernel and stop it booting anywhere, proving nothing about verification.)
fn iso_with_tampered_kernel(iso: &Path, vmlinuz: &Path, out: &Path) -> Result<()> {
    let kernel = std::fs::read(vmlinuz)?;
    let u32_at = |o: usize| -> Result<usize> {
        let b = kernel
            .get(o..o + 4)
            .ok_or_else(|| anyhow::anyhow!("kernel too short for offset {o}"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let pe = u32_at(0x3c)?;
    anyhow::ensure!(
        kernel.get(pe..pe + 4) == Some(b"PE\0\0"),
        "vmlinuz is not a PE image"
    );
    let sections = u16::from_le_bytes([kernel[pe + 6], kernel[pe + 7]]) as usize;
    let optional = u16::from_le_bytes([kernel[pe + 20], kernel[pe + 21]]) as usize;
    let table = pe + 24 + optional;
    let mut setup = None;
    for i in 0..sections {
        let h = table + 40 * i;
        if kernel.get(h..h + 8) == Some(b".setup\0\0") {
            setup = Some((u32_at(h + 20)?, u32_at(h + 16)?)); // raw offset, raw size
        }
    }
    let (start, size) = setup.ok_or_else(|| anyhow::anyhow!("no .setup section in vmlinuz"))?;
    let section = kernel
        .get(start..start + size)
        .ok_or_else(|| anyhow::anyhow!(".setup section outside the file"))?;
    let used = section.iter().rposition(|&b| b != 0).unwrap_or(0);
    let offset = start + (used + 1 + size) / 2;
    anyhow::ensure!(
        used + 16 < size && kernel[offset] == 0,
        "no zero padding at the end of .setup"
    );
    let mut image = std::fs::read(iso)?;
    let head = &kernel[..4096];
    let at = (0..image.len().saturating_sub(kernel.len()))
        .step_by(2048)
        .find(|&p| &image[p..p + 4096] == head && image[p..p + kernel.len()] == kernel[..])
        .ok_or_else(|| anyhow::anyhow!("vmlinuz not found in {}", iso.display()))?;
    image[at + offset] ^= 0xff;
    std::fs::write(out, image)?;
    Ok(())
}

/// The chain really verifies: a kernel with one changed byte is refused under Secure Boot (GRUB
/// reports the bad signature and the kernel never starts), and the same ISO boots with Secure Boot
/// off, so the refusal is the signature check and nothing else.
#[test]
fn a_tampered_kernel_is_refused_under_secure_boot_and_boots_without_it() -> Result<()> {
    let img = Image::find()?;
    let dir = scratch("tampered")?;
    let iso = dir.join("tampered.iso");
    iso_with_tampered_kernel(&img.iso, &img.vmlinuz, &iso)?;
    let mut vm = VmBuilder::new("secureboot-tampered")
        .firmware(Firmware::SecureBoot)
        .boot_cdrom(&iso)
        .start()?;
    vm.expect("Lifeboat, serial console", BOOT)?;
    vm.send("s")?;
    let refused = vm.expect("bad shim signature", BOOT)?;
    assert!(!refused.contains("Linux version"), "{refused}");
    // Give a kernel that slipped through time to print its first line.
    let t0 = Instant::now();
    let late = vm.expect("Linux version", Duration::from_secs(30));
    assert!(
        late.is_err(),
        "the tampered kernel started under Secure Boot after {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    drop(vm);
    let mut vm = VmBuilder::new("tampered-no-secureboot")
        .firmware(Firmware::Uefi)
        .boot_cdrom(&iso)
        .start()?;
    vm.expect("Lifeboat, serial console", BOOT)?;
    vm.send("s")?;
    vm.expect("Linux version", BOOT)?;
    let boot = vm.expect("started /bin/lifeboat on ttyS0", BOOT)?;
    assert!(
        boot.contains("firmware: UEFI; secure boot: ") && !boot.contains("secure boot: on"),
        "{boot}"
    );
    Ok(())
}

/// Boots the kernel directly with a shell on the serial console and waits for its prompt.
fn boot_to_serial_shell(b: VmBuilder, img: &Image) -> Result<qemu_tests::vm::Vm> {
    let mut vm = b
        .kernel(
            &img.vmlinuz,
            &img.initramfs,
            "console=ttyS0,115200 lifeboat.serial=shell",
        )
        .start()?;
    vm.expect("started /bin/sh on ttyS0", BOOT)?;
    vm.expect("lifeboat:", BOOT)?;
    Ok(vm)
}

fn lifeboat_list(vm: &mut qemu_tests::vm::Vm) -> Result<String> {
    vm.send("lifeboat list; echo LIST-EXIT-$?\n")?;
    // Skip the echo of the command line itself, then take the output up to the exit marker.
    vm.expect("LIST-EXIT-$?", Duration::from_secs(60))?;
    let out = vm.expect("LIST-EXIT-0", Duration::from_secs(120))?;
    Ok(out)
}

fn disk(dir: &Path, name: &str, mib: u64) -> Result<PathBuf> {
    let p = dir.join(name);
    sparse_file(&p, mib << 20)?;
    Ok(p)
}

#[test]
fn lifeboat_list_shows_virtio_nvme_ahci_and_usb_disks_with_serials() -> Result<()> {
    let img = Image::find()?;
    let dir = scratch("list")?;
    let b = VmBuilder::new("list-buses")
        .disk(Disk::new(disk(&dir, "v.img", 64)?, Interface::Virtio).serial("VIRTIO-SER-1"))
        .disk(Disk::new(disk(&dir, "n.img", 96)?, Interface::Nvme).serial("NVME-SER-2"))
        .disk(
            Disk::new(disk(&dir, "a.img", 128)?, Interface::Ahci)
                .serial("AHCI-SER-3")
                .model("LIFEBOAT SATA"),
        )
        .disk(Disk::new(disk(&dir, "u.img", 160)?, Interface::Usb).serial("USBSER4"));
    let mut vm = boot_to_serial_shell(b, &img)?;
    let out = lifeboat_list(&mut vm)?;
    for serial in ["VIRTIO-SER-1", "NVME-SER-2", "AHCI-SER-3", "USBSER4"] {
        assert!(
            out.contains(serial),
            "`lifeboat list` lacks {serial}:\n{out}"
        );
    }
    for dev in ["vda", "nvme0n1", "sd"] {
        assert!(out.contains(dev), "`lifeboat list` lacks {dev}:\n{out}");
    }
    Ok(())
}

#[test]
fn hotplugged_usb_disk_appears_in_lifeboat_list() -> Result<()> {
    let img = Image::find()?;
    let dir = scratch("hotplug")?;
    let stick = disk(&dir, "stick.img", 200)?;
    let b = VmBuilder::new("usb-hotplug")
        .usb_controller()
        .disk(Disk::new(disk(&dir, "v.img", 64)?, Interface::Virtio).serial("FIXED-DISK-1"));
    let mut vm = boot_to_serial_shell(b, &img)?;
    let before = lifeboat_list(&mut vm)?;
    assert!(
        before.contains("FIXED-DISK-1") && !before.contains("HOTPLUG9"),
        "{before}"
    );
    let r = vm.monitor(&format!(
        "drive_add 0 if=none,id=hot,format=raw,file={}",
        stick.display()
    ))?;
    assert!(r.contains("OK"), "drive_add: {r}");
    let r = vm.monitor("device_add usb-storage,bus=xhci.0,drive=hot,id=hotusb,serial=HOTPLUG9")?;
    assert!(!r.to_lowercase().contains("error"), "device_add: {r}");
    // init loads usb-storage for the new device from its uevent; the disk then shows up.
    vm.expect("new block device sd", BOOT)?;
    let after = lifeboat_list(&mut vm)?;
    assert!(
        after.contains("HOTPLUG9"),
        "hot-plugged disk missing from `lifeboat list`:\n{after}"
    );
    Ok(())
}

#[test]
fn unattended_job_runs_from_the_labelled_volume_writes_its_report_and_powers_off() -> Result<()> {
    let img = Image::find()?;
    let dir = scratch("job")?;
    let content = dir.join("content");
    std::fs::create_dir_all(content.join("jobs"))?;
    // A valid job whose one step fails (the image is not there): the job ran, so init follows
    // `lifeboat.after` (an invalid job file would be a job that never started: UI instead).
    std::fs::write(
        content.join("jobs/nightly.toml"),
        "# job file of the boot test\n[[step]]\naction = \"verify\"\nimage = \"missing.lbi\"\n",
    )?;
    let vol = dir.join("jobs.img");
    // A bare ext4 file system labelled JOBS holding /jobs/nightly.toml.
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "JOBS",
            "-d",
            path(&content)?,
            path(&vol)?,
            "32M",
        ],
    )?;
    let mut vm = VmBuilder::new("unattended-job")
        .disk(Disk::new(&vol, Interface::Virtio).serial("JOBDISK"))
        .kernel(
            &img.vmlinuz,
            &img.initramfs,
            "console=ttyS0,115200 lifeboat.job=JOBS:/jobs/nightly.toml lifeboat.after=poweroff",
        )
        .start()?;
    vm.expect("job /mnt/job/jobs/nightly.toml started", BOOT)?;
    vm.expect("unattended job finished", BOOT)?;
    vm.expect("lifeboat: powering off", BOOT)?;
    vm.wait_exit(Duration::from_secs(60))?;
    // The report sits next to the job file, and the volume was unmounted cleanly.
    let report = run(
        "debugfs",
        &["-R", "cat /jobs/nightly.report.txt", path(&vol)?],
    )?;
    assert!(
        report.contains("step 1 of 1: verify")
            && report.contains("-- step 1: FAILED --")
            && report.contains("[lifeboat-init] lifeboat run exited: exit code 1"),
        "report:\n{report}"
    );
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&vol)?])?;
    assert_eq!(code, 0, "e2fsck after power-off:\n{fsck}");
    Ok(())
}

fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", p.display()))
}

#[test]
fn ctrl_alt_del_reboots_cleanly_through_init() -> Result<()> {
    let img = Image::find()?;
    let mut vm = boot_to_serial_shell(VmBuilder::new("ctrl-alt-del"), &img)?;
    vm.monitor("sendkey ctrl-alt-delete")?;
    vm.expect("Ctrl-Alt-Del pressed", Duration::from_secs(60))?;
    vm.expect("lifeboat: rebooting", Duration::from_secs(60))?;
    // -no-reboot turns the guest's reboot into QEMU exiting.
    vm.wait_exit(Duration::from_secs(60))?;
    Ok(())
}
