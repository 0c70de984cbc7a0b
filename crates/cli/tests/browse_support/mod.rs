//! What the `ls` / `extract` test files share: running `lifeboat` and the real tools.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// Runs the `lifeboat` binary: exit code, stdout, stderr.
pub fn lifeboat(args: &[&str]) -> Result<(i32, String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .output()
        .context("running lifeboat")?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs a tool, failing with its stderr; returns its stdout, trimmed.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

pub fn json(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("parsing {text}"))
}
