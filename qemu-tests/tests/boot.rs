//! Boot tests of the Lifeboat image in QEMU (TCG): the ISO boots on SeaBIOS and OVMF from CD and
//! USB to `lifeboat` on the serial console, `lifeboat list` shows disks on every bus with their
//! serials, and a hot-plugged USB disk is picked up.
//!
//! They need the built image: run them with `cargo xtask qemu-test` (which builds it first);
//! without it they fail and say how to build it.

use anyhow::Result;
use qemu_tests::fixture::{run, run_status, sparse_file};
use qemu_tests::vm::{Disk, Firmware, Image, Interface, VmBuilder};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(300);

fn scratch(name: &str) -> Result<PathBuf> {
    let d = qemu_tests::vm::workspace_root()
        .join("target/qemu-scratch")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Boots the ISO through its grub menu, picks the serial-console entry by its hotkey and waits
/// for init to find the medium on `medium` and start `lifeboat` on ttyS0.
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
    eprintln!(
        "{name}: lifeboat started on the serial console after {:.1} s",
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
    std::fs::write(
        content.join("jobs/nightly.toml"),
        "# job file of the boot test\n",
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
        report.contains("[lifeboat-init] lifeboat run exited"),
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
