//! `cargo xtask`: every build step a human would type, and the ones CI calls.
//!
//! One binary with few dependencies. It shells out to cargo, apt-get and the image tools; it must
//! not contain product logic.

mod bench;
mod bench_shrink;
mod deps;
mod fuzz;
mod image;
mod lint;
mod qemu;

use anyhow::{bail, Result};
use std::process::Command;

const HELP: &str = "\
usage: cargo xtask <command>

commands:
  deps        install the Debian packages and the Rust target everything needs
  ci          deps, then cargo fmt --check, lint, clippy -D warnings and every test
  lint        check the invariants of ARCHITECTURE.md that a text search can (xtask/src/lint.rs)
  list        build lifeboat and run `lifeboat list` on this machine
  image       build the bootable ISO and the PXE kernel + initramfs under target/lifeboat/
  run         build the image and boot it in QEMU on this terminal (serial console) with demo
              disks; --grub boots through the ISO's menu, LIFEBOAT_KVM=1 uses KVM
  qemu-test   build the image and run the QEMU tests (qemu-tests/tests/*.rs); `--test NAME` picks
              the file NAME.rs, other arguments go to the test binaries (`cargo xtask qemu-test demo
              job_` runs the tests whose names hold them)
  bench       backup/restore/clone against partclone, fsarchiver, zstd and dd (BENCHMARKS.md);
              --encrypted: encrypted against unencrypted backup and restore;
              --shrink: a restore onto a smaller disk against a plain restore;
              --cast: multicast against unicast restores in network namespaces;
              --lab: the same in QEMU, PCs PXE-booted on a namespace LAN (root; issue 19)
              --fs: btrfs and XFS backups against partclone.btrfs/partclone.xfs piped to zstd
  fuzz        [TARGET...] [--time S] [--list]: coverage-guided fuzzing with cargo-fuzz (FUZZING.md)
";

fn main() {
    if let Err(e) = real_main() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        print!("{HELP}");
        return Ok(());
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "deps" => deps::install(),
        "lint" => lint::run(),
        "ci" => ci(rest),
        "list" => {
            deps::install()?;
            cargo(&["build", "--release", "--package", "cli"])?;
            run(Command::new(target_dir().join("release/lifeboat"))
                .arg("list")
                .args(rest))
        }
        "image" => image::build().map(|_| ()),
        "run" => qemu::run(rest),
        "qemu-test" => qemu::test(rest),
        "bench" => bench::run(rest),
        "fuzz" => fuzz::run(rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n{HELP}"),
    }
}

/// Formatting, lints and every test, in the order a reviewer would check them: the unit and
/// integration tests on real file systems, then the QEMU tests of the booted image.
fn ci(_rest: &[String]) -> Result<()> {
    deps::install()?;
    cargo(&["fmt", "--all", "--check"])?;
    lint::run()?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace", "--locked"])?;
    qemu::test(&[])?;
    Ok(())
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `target/`).
pub(crate) fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub(crate) fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or(manifest)
}

pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut c = Command::new(cargo);
    c.args(args).current_dir(workspace_root());
    run(&mut c)
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("cannot start {cmd:?}: {e}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
