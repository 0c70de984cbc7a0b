//! `cargo xtask bench --shrink`: a restore onto a smaller disk (shrinking ext4 and NTFS on the
//! copy-on-write device) against a plain restore of the same image, in the same run, into the
//! "Restore onto a smaller disk" section of BENCHMARKS.md.
//!
//! Workload: a 2 GiB GPT disk image with a 1 GiB ext4 (`mkfs.ext4 -d`) and a 1 GiB NTFS
//! (`mkntfs` + an ntfs-3g copy), both holding 150 incompressible files of 1.5 MB and 150 text
//! files of 0.5 MB. The plain restore goes onto a 2050 MiB file, the shrinking one onto a
//! 1230 MiB file; they alternate for five rounds (the image stays in the page cache, as the
//! plain restore's would), and the resize tools' own times come from the restore's report.

use crate::bench::{cpu_model, mem_gib, replace_section, sh};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const MIB: u64 = 1 << 20;
const ROUNDS: usize = 5;

/// Writes the workload's files into `dir`: 150 × 1.5 MB of noise, 150 × 0.5 MB of text.
fn files(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::create_dir_all(dir.join("text"))?;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..150 {
        let mut v = Vec::with_capacity(1_500_000);
        while v.len() < 1_500_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(dir.join(format!("data/blob-{i}.bin")), &v)?;
        let line = format!("line of text number {i} for the shrinking benchmark\n");
        let text = line.repeat(500_000 / line.len());
        std::fs::write(dir.join(format!("text/note-{i}.txt")), text)?;
    }
    Ok(())
}

/// One restore of `image` onto `target` (a fresh sparse file of `len` bytes): wall seconds and
/// the report's output.
fn restore(lb: &Path, image: &Path, target: &Path, len: u64) -> Result<(f64, String)> {
    let _ = std::fs::remove_file(target);
    sh(&format!("truncate -s {len} {}", target.display()))?;
    let _ = Command::new("sync").status();
    let start = Instant::now();
    let out = Command::new(lb)
        .arg("restore")
        .arg(image)
        .arg(target)
        .arg("--yes")
        .output()
        .context("running lifeboat restore")?;
    let secs = start.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("lifeboat restore onto {}: {text}", target.display());
    }
    Ok((secs, text))
}

/// The seconds the report gives for `method` ("… with resize2fs in 0.3 s, checked in 0.1 s"):
/// (tool, check).
fn tool_times(report: &str, method: &str) -> (f64, f64) {
    let mut tool = 0.0;
    let mut check = 0.0;
    for line in report.lines() {
        let Some(at) = line.find(&format!("with {method} in ")) else {
            continue;
        };
        let rest = &line[at + method.len() + 9..];
        let num = |s: &str| -> f64 {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0.0)
        };
        tool += num(rest);
        if let Some(c) = rest.find("checked in ") {
            check += num(&rest[c + 11..]);
        }
    }
    (tool, check)
}

pub fn run() -> Result<()> {
    // LIFEBOAT_BENCH_BIN: measure another build (an older one, for a before/after comparison).
    let lb = match std::env::var_os("LIFEBOAT_BENCH_BIN") {
        Some(bin) => std::path::PathBuf::from(bin),
        None => {
            crate::deps::install()?;
            crate::cargo(&["build", "--release", "--package", "cli"])?;
            crate::target_dir().join("release/lifeboat")
        }
    };
    let dir = crate::target_dir().join("bench-shrink");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let p = |n: &str| dir.join(n).display().to_string();
    files(&dir.join("tree"))?;
    eprintln!("bench: making the 2 GiB disk image");
    sh(&format!(
        "truncate -s 1G {ext} && mke2fs -q -F -t ext4 -L benchext -d {tree} {ext} && \
         truncate -s 1G {ntfs} && mkntfs -q -F -f -L benchntfs {ntfs} 2>/dev/null && mkdir -p {mnt} && \
         ntfs-3g {ntfs} {mnt} && cp -r {tree}/. {mnt}/ && umount {mnt} && \
         truncate -s 2050M {disk} && sgdisk -n 1:2048:+1G -t 1:8300 -n 2:0:+1G -t 2:0700 {disk} >/dev/null && \
         dd if={ext} of={disk} bs=4M seek=1048576 oflag=seek_bytes conv=notrunc,sparse status=none && \
         dd if={ntfs} of={disk} bs=4M seek=$((1025*1024*1024)) oflag=seek_bytes conv=notrunc,sparse status=none && \
         rm -f {ext} {ntfs}",
        ext = p("ext.img"),
        ntfs = p("ntfs.img"),
        tree = p("tree"),
        mnt = p("mnt"),
        disk = p("disk.img"),
    ))?;
    let _ = std::fs::remove_dir_all(dir.join("tree"));
    sh(&format!(
        "{} backup {} {} >/dev/null",
        lb.display(),
        p("disk.img"),
        p("b.lbi")
    ))?;
    let image = dir.join("b.lbi");
    let image_mib = std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0) / MIB;
    let mut rows = Vec::new();
    for round in 1..=ROUNDS {
        let (plain, _) = restore(&lb, &image, &dir.join("full.img"), 2050 * MIB)?;
        let (shrink, report) = restore(&lb, &image, &dir.join("small.img"), 1230 * MIB)?;
        if !report.contains("shrunk from") {
            bail!("the restore onto 1230 MiB did not shrink: {report}");
        }
        let (r2, c2) = tool_times(&report, "resize2fs");
        let (nr, c3) = tool_times(&report, "ntfsresize");
        eprintln!(
            "bench: shrink round {round}: plain {plain:.2} s, shrinking {shrink:.2} s \
             (resize2fs {r2:.1} s, ntfsresize {nr:.1} s, checks {:.1} s)",
            c2 + c3
        );
        rows.push((plain, shrink, r2, nr, c2 + c3));
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let mut t = String::new();
    writeln!(
        t,
        "Machine: {cores} cores ({}), {} GiB RAM, load average {} at the end; release build, the image in the\n\
         page cache. Workload: a 2 GiB GPT disk image with a 1 GiB ext4 (`mkfs.ext4 -d`) and a 1 GiB NTFS\n\
         (`mkntfs` + an ntfs-3g copy), each holding 150 × 1.5 MB random files and 150 × 0.5 MB text files; image\n\
         {image_mib} MiB. Command: `cargo xtask bench --shrink`, {}: `lifeboat restore b.lbi full.img --yes` (2050 MiB\n\
         target) and `lifeboat restore b.lbi small.img --yes` (1230 MiB target: both file systems shrink to the sizes\n\
         `resize2fs -P` / `ntfsresize --info` name), alternated, {ROUNDS} rounds; the tools' times from the report\n\
         (0.1 s steps).\n",
        cpu_model(),
        mem_gib(),
        load.join(" "),
        String::from_utf8_lossy(
            &Command::new("date")
                .args(["-u", "+%Y-%m-%d %H:%M UTC"])
                .output()?
                .stdout
        )
        .trim()
    )?;
    writeln!(
        t,
        "| round | plain restore | shrinking restore | ratio | resize2fs + ntfsresize | checks | rest ÷ plain |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    )?;
    let mut rest_ratios = Vec::new();
    let mut ratios = Vec::new();
    for (i, (plain, shrink, r2, nr, checks)) in rows.iter().enumerate() {
        let rest = (shrink - r2 - nr).max(0.0) / plain;
        rest_ratios.push(rest);
        ratios.push(shrink / plain);
        writeln!(
            t,
            "| {} | {plain:.2} s | {shrink:.2} s | {:.2} | {r2:.1} + {nr:.1} s | {checks:.1} s | {rest:.2} |",
            i + 1,
            shrink / plain
        )?;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    writeln!(
        t,
        "\nMedian: a shrinking restore takes {:.2}× a plain restore; without the resize tools' own work\n\
         {:.2}× (the issue's bound: ~1.5×).",
        median(&mut ratios),
        median(&mut rest_ratios)
    )?;
    print!("{t}");
    let path = crate::workspace_root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let section = format!("## Restore onto a smaller disk (`cargo xtask bench --shrink`)\n\n{t}");
    let new = replace_section(&old, "## Restore onto a smaller disk", &section);
    std::fs::write(&path, new).context("writing BENCHMARKS.md")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
