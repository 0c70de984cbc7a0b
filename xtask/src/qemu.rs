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

/// The `cargo test` arguments for `cargo xtask qemu-test rest…`: each `--test NAME` (or
/// `--test=NAME`) picks the test file `qemu-tests/tests/NAME.rs` (every test file when none
/// does); the other arguments go to the test binaries (name filters, `--nocapture`).
fn cargo_test_args(rest: &[String]) -> Vec<String> {
    let mut files = Vec::new();
    let mut passed = Vec::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        if a == "--test" {
            if let Some(name) = it.next() {
                files.extend(["--test".to_string(), name.clone()]);
            }
        } else if let Some(name) = a.strip_prefix("--test=") {
            files.extend(["--test".to_string(), name.to_string()]);
        } else {
            passed.push(a.clone());
        }
    }
    if files.is_empty() {
        // Every test file of qemu-tests: boot, e2e*, tui, mount, ….
        files.push("--tests".into());
    }
    let mut args: Vec<String> = [
        "test",
        "--release",
        "-p",
        "qemu-tests",
        "--features",
        "qemu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(files);
    args.push("--".into());
    args.extend(passed);
    args
}

/// Builds the image and runs the QEMU tests.
pub fn test(rest: &[String]) -> Result<()> {
    let o = crate::image::build()?;
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(cargo_test_args(rest))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rest: &[&str]) -> String {
        let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
        cargo_test_args(&rest).join(" ")
    }

    #[test]
    fn test_picks_test_files_and_passes_the_rest_to_the_test_binaries() {
        let base = "test --release -p qemu-tests --features qemu";
        assert_eq!(args(&[]), format!("{base} --tests --"));
        assert_eq!(
            args(&["demo", "--nocapture"]),
            format!("{base} --tests -- demo --nocapture")
        );
        assert_eq!(
            args(&["--test", "mount", "--test=e2e", "safety"]),
            format!("{base} --test mount --test e2e -- safety")
        );
    }
}
