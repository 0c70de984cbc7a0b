//! `cargo xtask run` (boot the image in QEMU on this terminal, with demo disks) and
//! `cargo xtask qemu-test` (the QEMU boot tests).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn demo_dir() -> PathBuf {
    crate::workspace_root().join("target/lifeboat/demo")
}

fn tool(name: &str, args: &[&str]) -> Result<()> {
    crate::run(Command::new(name).args(args).env("LC_ALL", "C"))
}

fn sparse(path: &Path, size: u64) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(size)
        .with_context(|| format!("sizing {}", path.display()))?;
    Ok(())
}

fn s(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("non-UTF-8 path {}", p.display()))
}

/// Copies `part` into `disk` at `offset_mib` MiB, keeping holes.
fn place(disk: &Path, part: &Path, offset_mib: u64) -> Result<()> {
    tool(
        "dd",
        &[
            &format!("if={}", s(part)?),
            &format!("of={}", s(disk)?),
            "bs=1M",
            &format!("seek={offset_mib}"),
            "conv=notrunc,sparse",
            "status=none",
        ],
    )
}

/// The demo disks, made once by the real tools: (path, what it is).
fn demo_disks() -> Result<Vec<PathBuf>> {
    let dir = demo_dir();
    std::fs::create_dir_all(&dir)?;
    let system = dir.join("system.img");
    let blank = dir.join("blank.img");
    let usb = dir.join("usb-exfat.img");
    let work = dir.join("work");
    if !system.exists() {
        // GPT: 1 MiB gap, 100 MiB EFI system partition (FAT32), the rest ext4 with files.
        let tmp = dir.join("system.img.part");
        sparse(&tmp, 2 << 30)?;
        tool(
            "sgdisk",
            &[
                "-q",
                "-n1:1M:+100M",
                "-t1:ef00",
                "-c1:EFI system",
                "-n2:0:0",
                "-t2:8300",
                "-c2:root",
                s(&tmp)?,
            ],
        )?;
        std::fs::create_dir_all(work.join("root/home/demo/Documents"))?;
        std::fs::write(work.join("root/etc-hostname"), "demo-pc\n")?;
        std::fs::write(
            work.join("root/home/demo/Documents/letter.txt"),
            "Dear technician, please save my files.\n",
        )?;
        std::fs::write(
            work.join("root/home/demo/Documents/numbers.csv"),
            (0..5000)
                .map(|i| format!("{i},{}\n", i * i))
                .collect::<String>(),
        )?;
        let esp = work.join("esp.img");
        sparse(&esp, 100 << 20)?;
        tool("mkfs.vfat", &["-F", "32", "-n", "ESP", s(&esp)?])?;
        tool("mmd", &["-i", s(&esp)?, "::/EFI", "::/EFI/BOOT"])?;
        std::fs::write(work.join("BOOTX64.EFI"), "not a real boot loader\n")?;
        tool(
            "mcopy",
            &[
                "-i",
                s(&esp)?,
                s(&work.join("BOOTX64.EFI"))?,
                "::/EFI/BOOT/BOOTX64.EFI",
            ],
        )?;
        let rootfs = work.join("root.img");
        // partition 2 runs from 101 MiB to 34 sectors before the end
        sparse(&rootfs, (2 << 30) - (101 << 20) - (1 << 20))?;
        tool(
            "mke2fs",
            &[
                "-q",
                "-F",
                "-t",
                "ext4",
                "-L",
                "rootfs",
                "-d",
                s(&work.join("root"))?,
                s(&rootfs)?,
            ],
        )?;
        place(&tmp, &esp, 1)?;
        place(&tmp, &rootfs, 101)?;
        std::fs::rename(&tmp, &system)?;
    }
    if !blank.exists() {
        sparse(&blank, 4 << 30)?;
    }
    if !usb.exists() {
        let tmp = dir.join("usb.img.part");
        sparse(&tmp, 1 << 30)?;
        crate::run(Command::new("bash").arg("-c").arg(format!(
            "echo 'start=2048, type=7' | sfdisk -q '{}'",
            s(&tmp)?
        )))?;
        let part = work.join("usb-part.img");
        sparse(&part, (1 << 30) - (1 << 20))?;
        tool("mkfs.exfat", &["-L", "BACKUPS", s(&part)?])?;
        place(&tmp, &part, 1)?;
        std::fs::rename(&tmp, &usb)?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(vec![system, blank, usb])
}

/// Boots the image in QEMU on this terminal.
pub fn run(rest: &[String]) -> Result<()> {
    let grub = rest.iter().any(|a| a == "--grub");
    let o = crate::image::build()?;
    let disks = demo_disks()?;
    let [system, blank, usb] = disks.as_slice() else {
        bail!("demo disks missing")
    };
    let kvm = std::env::var("LIFEBOAT_KVM").is_ok_and(|v| v == "1");
    let mut q = Command::new("qemu-system-x86_64");
    q.args([
        "-machine",
        "q35",
        "-m",
        "1024",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
    ])
    .args(["-accel", if kvm { "kvm" } else { "tcg" }])
    .args([
        "-drive",
        &format!(
            "file={},format=raw,if=none,id=cd,media=cdrom,readonly=on",
            s(&o.iso)?
        ),
    ])
    .args([
        "-device",
        if grub {
            "ide-cd,drive=cd,bus=ide.0,bootindex=0"
        } else {
            "ide-cd,drive=cd,bus=ide.0"
        },
    ])
    .args([
        "-drive",
        &format!("file={},format=raw,if=none,id=sys", s(system)?),
    ])
    .args([
        "-device",
        "virtio-blk-pci,drive=sys,serial=DEMO-SYSTEM-0001",
    ])
    .args([
        "-drive",
        &format!("file={},format=raw,if=none,id=blank", s(blank)?),
    ])
    .args(["-device", "nvme,drive=blank,serial=DEMO-NVME-0002"])
    .args(["-device", "qemu-xhci,id=xhci"])
    .args([
        "-drive",
        &format!("file={},format=raw,if=none,id=usb", s(usb)?),
    ])
    .args([
        "-device",
        "usb-storage,bus=xhci.0,drive=usb,serial=DEMO-USB-0003",
    ]);
    if !grub {
        q.args(["-kernel", s(&o.vmlinuz)?, "-initrd", s(&o.initramfs)?])
            .args([
                "-append",
                "console=tty0 console=ttyS0,115200n8 lifeboat.media=LIFEBOAT",
            ]);
    }
    eprintln!(
        "xtask: QEMU: quit with Ctrl-A X; demo disks in {}",
        demo_dir().display()
    );
    crate::run(&mut q)
}

/// Builds the image and runs the QEMU tests.
pub fn test(rest: &[String]) -> Result<()> {
    let o = crate::image::build()?;
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args([
        "test",
        "--release",
        "-p",
        "qemu-tests",
        "--features",
        "qemu",
        // Every test file of qemu-tests: boot, e2e*, tui.
        "--tests",
        "--",
    ])
    .args(rest)
    .current_dir(crate::workspace_root())
    .env("LIFEBOAT_ISO", &o.iso)
    .env("LIFEBOAT_VMLINUZ", &o.vmlinuz)
    .env("LIFEBOAT_INITRAMFS", &o.initramfs);
    if std::env::var_os("LIFEBOAT_BIN").is_none() {
        // The static binary staged into the initramfs: the one the VM runs.
        c.env(
            "LIFEBOAT_BIN",
            crate::image::out_dir().join("initramfs-root/bin/lifeboat"),
        );
    }
    crate::run(&mut c)
}
