//! `cargo xtask lint`: the architecture's invariants that a text search can check (ARCHITECTURE.md).
//!
//! - Only `engine` opens a target for writing or writes a partition table on a front end's behalf
//!   (`disk` and `layout` implement those operations).
//! - A `WriteConsent` is made only where a front end turns a confirmation into one: the CLI's
//!   `jobs::consent` (typed "yes" or `--yes`) and the TUI's `confirm` (typed "yes").
//! - Only `tui` knows ratatui and crossterm.
//! - The CLI's exit codes are defined once, in `cli/src/exit.rs`, and never written as literals.
//! - init's contracts with the `lifeboat` binary (the boot-medium marker path, the exit codes init acts
//!   on) are defined once, in `disk::boot`.
//!
//! Production code only: `tests/`, `benches/`, `fuzz/`, `examples/` folders and everything from a
//! file's `#[cfg(test)]` on are skipped.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One invariant: where any of `patterns` may appear.
struct Rule {
    name: &'static str,
    patterns: &'static [&'static str],
    /// Path prefixes (relative to the workspace, `/`-separated) where the patterns are allowed.
    allowed: &'static [&'static str],
    /// What to do instead.
    fix: &'static str,
}

/// Places that still break a rule and are being fixed: each names its issue. Remove the entry
/// with the fix.
const PENDING: &[(&str, &str)] = &[];

const RULES: &[Rule] = &[
    Rule {
        name: "only the engine opens targets for writing",
        patterns: &[
            "open_write(",
            "FileDisk::create_file(",
            "reread_partitions(",
        ],
        allowed: &["crates/disk/", "crates/engine/"],
        fix: "describe the job as an engine::job::JobSpec and let engine::job::run open the target",
    },
    Rule {
        name: "only the engine writes partition tables",
        patterns: &[
            "layout::invalidate(",
            "layout::add_partition(",
            "layout::plan_copy(",
            "table.write(",
        ],
        allowed: &["crates/layout/", "crates/engine/"],
        fix: "let engine::job plan and run the job (copy into free space is CopyInto::FreeSpace)",
    },
    Rule {
        name: "a WriteConsent is made only from a confirmation",
        patterns: &[
            "WriteConsent::confirmed_by_user",
            "WriteConsent::from_yes_flag",
        ],
        allowed: &[
            "crates/disk/",
            "crates/cli/src/jobs.rs",
            "crates/tui/src/confirm.rs",
        ],
        fix: "take the consent from cli::jobs::consent or the TUI's confirm::Confirmed",
    },
    Rule {
        name: "only the TUI knows ratatui and crossterm",
        patterns: &["ratatui", "crossterm"],
        allowed: &["crates/tui/", "Cargo.toml", "Cargo.lock"],
        fix: "keep terminal drawing in crates/tui",
    },
    Rule {
        name: "the CLI's exit codes are defined once",
        patterns: &[
            "ExitCode::from(0",
            "ExitCode::from(1",
            "ExitCode::from(2",
            "ExitCode::from(3",
            "ExitCode::from(4",
            "BAD_SECTORS: u8",
            "GROW_FAILED: u8",
            "FAILURE: u8",
            "USAGE: u8",
        ],
        allowed: &["crates/cli/src/exit.rs"],
        fix: "use the constants and exit::of(status) of crates/cli/src/exit.rs",
    },
    Rule {
        name: "init's contracts with the lifeboat binary are defined once",
        patterns: &[
            "\"/run/lifeboat/boot-device\"",
            "\"lifeboat/boot-device\"",
            ": u8 = 100",
            ": u8 = 101",
            ": i32 = 100",
            ": i32 = 101",
        ],
        allowed: &["crates/disk/src/boot.rs"],
        fix: "use disk::boot (the boot-medium marker path and the exit codes init acts on)",
    },
];

/// A place that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub file: String,
    pub line: usize,
    pub text: String,
    pub fix: &'static str,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}\n    {}\n    fix: {}",
            self.file, self.line, self.rule, self.text, self.fix
        )
    }
}

/// `cargo xtask lint`.
pub fn run() -> Result<()> {
    let root = crate::workspace_root();
    let findings = check(&root, PENDING)?;
    for (file, why) in PENDING {
        eprintln!("xtask lint: {file} is exempt for now ({why})");
    }
    if findings.is_empty() {
        eprintln!("xtask lint: every invariant holds");
        return Ok(());
    }
    for f in &findings {
        eprintln!("{f}");
    }
    bail!(
        "{} place(s) break the invariants of ARCHITECTURE.md",
        findings.len()
    )
}

/// Every finding under the workspace `root`, except in `pending` files.
pub fn check(root: &Path, pending: &[(&str, &str)]) -> Result<Vec<Finding>> {
    let mut files = Vec::new();
    for top in ["crates", "xtask", "qemu-tests"] {
        collect(&root.join(top), &mut files)?;
    }
    files.push(root.join("Cargo.toml"));
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "xtask/src/lint.rs" || pending.iter().any(|(p, _)| *p == rel) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            for rule in RULES {
                let hit = rule.patterns.iter().any(|p| code.contains(p));
                let allowed = rule.allowed.iter().any(|a| rel.starts_with(a));
                if hit && !allowed {
                    out.push(Finding {
                        rule: rule.name,
                        file: rel.clone(),
                        line: i + 1,
                        text: line.trim().to_string(),
                        fix: rule.fix,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The `.rs` files and `Cargo.toml`s below `dir`, leaving out test, bench, fuzz and example
/// folders and build output.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !matches!(
                name.as_str(),
                "tests" | "benches" | "fuzz" | "examples" | "target"
            ) && !name.starts_with('.')
            {
                collect(&path, out)?;
            }
        } else if kind.is_file() && (name.ends_with(".rs") || name == "Cargo.toml") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("xtask-lint-{}-{}", std::process::id(), files.len()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        root
    }

    #[test]
    fn a_front_end_that_opens_a_target_or_makes_a_consent_is_named_with_the_fix() {
        let root = tree(&[
            (
                "crates/cli/src/clone.rs",
                "fn f() {\n    let d = FileDisk::open_write(&t, &c)?;\n}\n",
            ),
            (
                "crates/cli/src/run.rs",
                "let c = disk::WriteConsent::from_yes_flag(t, i);\n",
            ),
            ("crates/cli/src/jobs.rs", "disk::WriteConsent::from_yes_flag(t, i)\n"),
            ("crates/engine/src/job/run.rs", "FileDisk::open_write(&p, c)\n"),
            ("crates/init/Cargo.toml", "[dependencies]\ncrossterm = \"1\"\n"),
            ("crates/cli/src/main.rs", "return ExitCode::from(3);\n"),
            (
                "crates/cli/src/list.rs",
                "// open_write( in a comment\n#[cfg(test)]\nmod tests { fn t() { open_write(x) } }\n",
            ),
            ("crates/cli/tests/x.rs", "FileDisk::open_write(&t, &c)\n"),
        ]);
        let found = check(&root, &[]).unwrap();
        let places: Vec<(&str, usize, &str)> = found
            .iter()
            .map(|f| (f.file.as_str(), f.line, f.rule))
            .collect();
        assert_eq!(
            places,
            vec![
                (
                    "crates/cli/src/clone.rs",
                    2,
                    "only the engine opens targets for writing"
                ),
                (
                    "crates/cli/src/main.rs",
                    1,
                    "the CLI's exit codes are defined once"
                ),
                (
                    "crates/cli/src/run.rs",
                    1,
                    "a WriteConsent is made only from a confirmation"
                ),
                (
                    "crates/init/Cargo.toml",
                    2,
                    "only the TUI knows ratatui and crossterm"
                ),
            ]
        );
        assert!(found[0].to_string().contains("fix: describe the job"));
        let pending = check(&root, &[("crates/cli/src/clone.rs", "test")]).unwrap();
        assert_eq!(pending.len(), 3);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_workspace_keeps_its_invariants() {
        let found = check(&crate::workspace_root(), PENDING).unwrap();
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(found.is_empty(), "{}", text.join("\n"));
    }
}
