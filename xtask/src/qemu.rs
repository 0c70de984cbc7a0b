//! `cargo xtask run` (boot the image in QEMU on this terminal, with demo disks) and
//! `cargo xtask qemu-test` (the QEMU boot tests).

use anyhow::Result;
use qemu_tests::demo;
use qemu_tests::vm::Image;
use std::path::PathBuf;
use std::process::Command;

fn demo_dir() -> PathBuf {
    crate::workspace_root().join("target/lifeboat/demo")
}

/// Boots the image in QEMU on this terminal, with the demo disks: the same VM, disks and command
/// line as the test that checks what this shows (`qemu-tests/tests/demo.rs`), built by the same
/// code (`qemu_tests::demo`).
pub fn run(rest: &[String]) -> Result<()> {
    let grub = rest.iter().any(|a| a == "--grub");
    let o = crate::image::build()?;
    let img = Image {
        iso: o.iso,
        vmlinuz: o.vmlinuz,
        initramfs: o.initramfs,
    };
    let disks = demo::disks(&demo_dir())?;
    let boot = if grub {
        demo::Boot::Grub
    } else {
        demo::Boot::Kernel
    };
    let vm = demo::vm("demo", &img, &disks, boot);
    let mut q = Command::new("qemu-system-x86_64");
    // SeaBIOS: no UEFI variable store is used.
    q.args(vm.args(&demo_dir().join("unused-OVMF_VARS.fd")))
        .args(["-serial", "mon:stdio"]);
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
