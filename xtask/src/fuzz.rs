//! `cargo xtask fuzz [TARGET...] [--time S]`: coverage-guided fuzzing of every parser of untrusted
//! bytes with cargo-fuzz (libFuzzer) on the stable toolchain (`RUSTC_BOOTSTRAP=1`, no sanitizer).
//!
//! Each target runs for `--time` seconds (default 60) in one process, niced, from a working
//! corpus under `target/fuzz-corpus/<target>/` seeded by the committed corpus of its crate
//! (`crates/<crate>/fuzz/corpus/…`: small file systems and images made by the real tools). A
//! crash stops the run and names the input libFuzzer saved; minimise it with
//! `cargo fuzz tmin` and commit it under `crates/<crate>/fuzz/regressions/<target>/`, where the
//! crate's `fuzz_regressions` test replays it on every `cargo test`. See FUZZING.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Every fuzz target: (crate, target, seed corpus folder under the crate's `fuzz/corpus/`).
const TARGETS: &[(&str, &str, &str)] = &[
    ("fs", "probe", "seeds"),
    ("fs", "used_map", "seeds"),
    // issue 16: LUKS1/LUKS2, BitLocker and md RAID headers
    ("fs", "containers", "containers"),
    ("fs", "browse", "seeds"),
    ("image", "open_and_read", "open_and_read"),
    ("image", "volumes", "volumes"),
    ("image", "manifest", "manifest"),
    ("image", "bitmap", "bitmap"),
    ("image", "key_block", "key_block"),
    ("image", "cast", "cast"),
    ("layout", "read_table", "read_table"),
    ("disk", "mountinfo", "mountinfo"),
    ("disk", "swaps", "swaps"),
    ("disk", "vpd_serial", "vpd_serial"),
    ("engine", "job_file", "job_file"),
    ("engine", "cast_report", "cast_report"),
];

/// The largest input libFuzzer makes (the seeds are at most 256 KiB).
const MAX_LEN: u32 = 300_000;

pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut time = 60u64;
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                let v = it.next().context("--time needs a number of seconds")?;
                time = v
                    .parse()
                    .with_context(|| format!("--time {v}: not a number of seconds"))?;
            }
            "--list" => {
                for (krate, target, _) in TARGETS {
                    println!("{target:14} crates/{krate}/fuzz");
                }
                return Ok(());
            }
            other if other.starts_with('-') => bail!("unknown option {other}"),
            other => names.push(other.to_string()),
        }
    }
    let chosen: Vec<_> = if names.is_empty() {
        TARGETS.to_vec()
    } else {
        names
            .iter()
            .map(|n| {
                TARGETS
                    .iter()
                    .find(|(_, t, _)| t == n)
                    .copied()
                    .with_context(|| {
                        format!("no fuzz target `{n}` (cargo xtask fuzz --list shows them)")
                    })
            })
            .collect::<Result<_>>()?
    };
    ensure_cargo_fuzz()?;
    let root = crate::workspace_root();
    let target_dir = crate::target_dir();
    let mut summary = Vec::new();
    for (krate, target, seeds) in chosen {
        let line = fuzz_one(&root, &target_dir, krate, target, seeds, time)?;
        summary.push(line);
    }
    eprintln!("xtask: fuzz summary ({time} s per target):");
    for l in summary {
        eprintln!("  {l}");
    }
    Ok(())
}

/// Installs cargo-fuzz when `cargo fuzz` does not run; fails loudly when that does not work.
fn ensure_cargo_fuzz() -> Result<()> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz is missing; installing it (this compiles for a few minutes)");
    crate::run(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))
        .context("installing cargo-fuzz failed: `cargo fuzz` is needed for `cargo xtask fuzz`")
}

fn fuzz_one(
    root: &Path,
    target_dir: &Path,
    krate: &str,
    target: &str,
    seeds: &str,
    time: u64,
) -> Result<String> {
    let fuzz_dir = root.join("crates").join(krate).join("fuzz");
    let work: PathBuf = target_dir.join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let seed_dir = fuzz_dir.join("corpus").join(seeds);
    let log = target_dir.join("fuzz-logs").join(format!("{target}.log"));
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut cmd = Command::new("nice");
    cmd.args([
        "-n",
        "10",
        "cargo",
        "fuzz",
        "run",
        "--sanitizer",
        "none",
        "-O",
        "-a",
    ])
    .arg("--target-dir")
    .arg(target_dir.join("fuzz"))
    .arg(target)
    .arg(&work);
    if seed_dir.is_dir() {
        cmd.arg(&seed_dir);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={time}"))
        .arg(format!("-max_len={MAX_LEN}"))
        .arg("-timeout=20")
        .arg("-rss_limit_mb=2560")
        .arg("-print_final_stats=1")
        .env("RUSTC_BOOTSTRAP", "1")
        .current_dir(&fuzz_dir);
    eprintln!(
        "xtask: fuzzing {target} for {time} s (log: {})",
        log.display()
    );
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let status = cmd
        .stdout(out)
        .stderr(err)
        .status()
        .with_context(|| format!("cannot start cargo fuzz for {target}"))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = summary_line(target, &text);
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "fuzz target {target} failed ({status}); {line}\n{}\nfull log: {}",
            tail.join("\n"),
            log.display()
        );
    }
    Ok(line)
}

/// `target: N execs, cov C, ft F, corpus K` from libFuzzer's output.
fn summary_line(target: &str, log: &str) -> String {
    let stat = |key: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "?".to_string())
    };
    let last_status = log
        .lines()
        .rev()
        .find(|l| l.contains(" cov: ") && l.contains(" ft: "))
        .unwrap_or("");
    let field = |name: &str| {
        last_status
            .split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "{target}: {} execs, cov {}, ft {}, corpus {}",
        stat("stat::number_of_executed_units:"),
        field("cov:"),
        field("ft:"),
        field("corp:")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_reads_libfuzzer_final_stats() {
        let log = "#1024\tpulse  cov: 10 ft: 12 corp: 3/1Kb exec/s: 0 rss: 40Mb\n\
                   #2048\tNEW    cov: 15 ft: 20 corp: 5/2Kb lim: 4 exec/s: 0 rss: 41Mb\n\
                   stat::number_of_executed_units: 4096\n";
        assert_eq!(
            summary_line("probe", log),
            "probe: 4096 execs, cov 15, ft 20, corpus 5/2Kb"
        );
    }

    #[test]
    fn every_target_has_a_fuzz_folder_and_source() {
        let root = crate::workspace_root();
        for (krate, target, _) in TARGETS {
            let src = root
                .join("crates")
                .join(krate)
                .join("fuzz/fuzz_targets")
                .join(format!("{target}.rs"));
            assert!(src.is_file(), "{} is missing", src.display());
        }
    }
}
