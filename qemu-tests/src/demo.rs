//! The demo `cargo xtask run` boots, built by this one piece of code for `xtask` and for the test
//! that checks it (`tests/demo.rs`): a GPT "system disk" (an EFI system partition and an ext4
//! root full of files) on virtio, a blank larger NVMe disk to clone or restore onto, and an exFAT
//! "USB drive" to hold images; the VM that boots the Lifeboat image with them.

use crate::e2e::exfat_drive;
use crate::fixture::{mkfs, path, run, sgdisk, sparse_file, write_into, Mkfs};
use crate::system_disk::partition_range;
use crate::vm::{Disk, Image, Interface, VmBuilder};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The kernel command line of the demo: the UI on the screen and on the serial console.
pub const APPEND: &str = "console=tty0 console=ttyS0,115200n8 lifeboat.media=LIFEBOAT";
/// Serial numbers of the demo disks, as the UI shows them.
pub const SYSTEM_SERIAL: &str = "DEMO-SYSTEM-0001";
pub const BLANK_SERIAL: &str = "DEMO-NVME-0002";
pub const USB_SERIAL: &str = "DEMO-USB-0003";
/// Labels of the system disk's file systems.
pub const ESP_LABEL: &str = "ESP";
pub const ROOT_LABEL: &str = "rootfs";
/// A file of the demo user's `Documents` and its contents.
pub const LETTER: &str = "home/demo/Documents/letter.txt";
pub const LETTER_TEXT: &str = "Dear technician, please save my files.\n";

const SYSTEM_BYTES: u64 = 2 << 30;
const ESP_MIB: u64 = 100;
const BLANK_BYTES: u64 = 4 << 30;
const USB_MIB: u64 = 1024;

/// The demo disk files.
#[derive(Debug, Clone)]
pub struct DemoDisks {
    pub system: PathBuf,
    pub blank: PathBuf,
    pub usb: PathBuf,
}

/// Returns the demo disks in `dir`, making the ones that are missing. A system disk whose
/// partition table does not check out (`sgdisk -v`, both partitions listed) — such as one left by
/// an older Lifeboat whose `sgdisk -q` wrote no table — is made again.
pub fn disks(dir: &Path) -> Result<DemoDisks> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let d = DemoDisks {
        system: dir.join("system.img"),
        blank: dir.join("blank.img"),
        usb: dir.join("usb-exfat.img"),
    };
    if !d.system.is_file() || !system_disk_is_sound(&d.system) {
        make_system_disk(&d.system)?;
    }
    if !d.blank.is_file() {
        sparse_file(&d.blank, BLANK_BYTES)?;
    }
    if !d.usb.is_file() {
        let work = dir.join("usb-work");
        std::fs::create_dir_all(&work)?;
        let made = exfat_drive(&work, USB_MIB)?;
        std::fs::rename(&made, &d.usb)?;
        std::fs::remove_dir_all(&work)?;
    }
    Ok(d)
}

fn system_disk_is_sound(disk: &Path) -> bool {
    let Ok(p) = path(disk) else { return false };
    let verified = crate::fixture::run_status("sgdisk", &["-v", p])
        .is_ok_and(|(code, out)| code == 0 && out.contains("No problems found"));
    verified && partition_range(disk, 1).is_ok() && partition_range(disk, 2).is_ok()
}

/// The GPT system disk: partition 1 a 100 MiB EFI system partition (FAT32 "ESP" with a boot
/// loader's path), partition 2 the rest, ext4 "rootfs" with a user's files.
fn make_system_disk(disk: &Path) -> Result<()> {
    let dir = disk.parent().context("the demo disk has no folder")?;
    let work = dir.join("system-work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let tmp = dir.join("system.img.part");
    sparse_file(&tmp, SYSTEM_BYTES)?;
    sgdisk(
        &tmp,
        &[
            &format!("-n1:1M:+{ESP_MIB}M"),
            "-t1:ef00",
            "-c1:EFI system",
            "-n2:0:0",
            "-t2:8300",
            "-c2:root",
        ],
    )?;
    let (esp_first, esp_last) = partition_range(&tmp, 1)?;
    let (root_first, root_last) = partition_range(&tmp, 2)?;

    let root = work.join("root");
    let docs = root.join("home/demo/Documents");
    std::fs::create_dir_all(&docs)?;
    std::fs::create_dir_all(root.join("home/demo/Pictures"))?;
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::write(root.join("etc/hostname"), "demo-pc\n")?;
    std::fs::write(root.join(LETTER), LETTER_TEXT)?;
    std::fs::write(
        docs.join("numbers.csv"),
        (0..5000u64)
            .map(|i| format!("{i},{}\n", i * i))
            .collect::<String>(),
    )?;
    std::fs::write(
        root.join("home/demo/Pictures/holiday.raw"),
        crate::fixture::noise(7, 3 << 20),
    )?;

    let esp = work.join("esp.img");
    mkfs(
        Mkfs::Fat32,
        &esp,
        (esp_last + 1 - esp_first) * 512,
        ESP_LABEL,
        &[],
    )?;
    run("mmd", &["-i", path(&esp)?, "::/EFI", "::/EFI/BOOT"])?;
    let loader = work.join("BOOTX64.EFI");
    std::fs::write(&loader, "not a real boot loader\n")?;
    run(
        "mcopy",
        &["-i", path(&esp)?, path(&loader)?, "::/EFI/BOOT/BOOTX64.EFI"],
    )?;

    let rootfs = work.join("root.img");
    mkfs(
        Mkfs::Ext4,
        &rootfs,
        (root_last + 1 - root_first) * 512,
        ROOT_LABEL,
        &["-d", path(&root)?],
    )?;
    write_into(&tmp, esp_first * 512, &esp)?;
    write_into(&tmp, root_first * 512, &rootfs)?;
    std::fs::rename(&tmp, disk)?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

/// How the demo VM boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// The kernel and initramfs directly, with [`APPEND`] (the CD is attached as the medium).
    Kernel,
    /// The ISO's GRUB menu, from the CD.
    Grub,
}

/// The demo VM: SeaBIOS, 1 GiB, two CPUs, the ISO as a CD, the system disk on virtio, the blank
/// disk on NVMe and the USB drive on xHCI, each with its serial number.
pub fn vm(name: &str, img: &Image, disks: &DemoDisks, boot: Boot) -> VmBuilder {
    let b = VmBuilder::new(name).cpus(2);
    let b = match boot {
        Boot::Grub => b.boot_cdrom(&img.iso),
        Boot::Kernel => b.disk(Disk::new(&img.iso, Interface::Cdrom)).kernel(
            &img.vmlinuz,
            &img.initramfs,
            APPEND,
        ),
    };
    b.disk(Disk::new(&disks.system, Interface::Virtio).serial(SYSTEM_SERIAL))
        .disk(Disk::new(&disks.blank, Interface::Nvme).serial(BLANK_SERIAL))
        .disk(Disk::new(&disks.usb, Interface::Usb).serial(USB_SERIAL))
}
