//! `cargo xtask bench --shrink`: a restore onto a smaller disk (shrinking ext4 and NTFS on the
//! copy-on-write device) against a plain restore of the same image, in the same run, into the
//! "Restore onto a smaller disk" section of BENCHMARKS.md.
//!
//! Workload: a 2 GiB GPT disk image with a 1 GiB ext4 (`mkfs.ext4 -d`) and a 1 GiB NTFS
//! (`mkntfs` + an ntfs-3g copy), both holding 150 incompressible files of 1.5 MB and 150 text
//! files of 0.5 MB. The plain restore goes onto a 2050 MiB file, the shrinking one onto a
//! 1230 MiB file; they alternate for five rounds (the image stays in the page cache, as the
//! plain restore's would), and the resize tools' times come from the restore's report. Each
//! round also times the same tools on plain-file copies of the partitions (their own work), so
//! the bound — 1.5 × the plain restore + the tools' own work — is computed in the same
//! round. `LIFEBOAT_BENCH_BIN` measures another build instead of building one;
//! `LIFEBOAT_BENCH_BEFORE` adds a column with an earlier build's shrinking restore.

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
    // A restore that hangs (an earlier build could wait forever on a FUSE connection another
    // mount namespace held) fails the bench after 5 minutes instead of stalling it.
    let out = Command::new("timeout")
        .arg("300")
        .arg(lb)
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

/// The new sizes (bytes) of the shrunk partitions, in the report's order ("… (1073741824 to
/// 314572800 bytes)").
fn new_sizes(report: &str) -> Vec<u64> {
    report
        .lines()
        .filter(|l| l.contains("shrunk from") && l.contains(" bytes)"))
        .filter_map(|l| {
            let inner = l.rsplit('(').next()?;
            let to = inner.split(" to ").nth(1)?;
            to.split_whitespace().next()?.parse().ok()
        })
        .collect()
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
    // The partitions as plain files, for the tools' own work without Lifeboat around them.
    sh(&format!(
        "dd if={disk} of={ext} bs=4M skip=1048576 count=1073741824 iflag=skip_bytes,count_bytes \
         conv=sparse status=none && \
         dd if={disk} of={ntfs} bs=4M skip=$((1025*1024*1024)) count=1073741824 \
         iflag=skip_bytes,count_bytes conv=sparse status=none",
        disk = p("disk.img"),
        ext = p("ext.img"),
        ntfs = p("ntfs.img"),
    ))?;
    let before = std::env::var_os("LIFEBOAT_BENCH_BEFORE").map(std::path::PathBuf::from);
    let mut rows = Vec::new();
    for round in 1..=ROUNDS {
        let (plain, _) = restore(&lb, &image, &dir.join("full.img"), 2050 * MIB)?;
        let (shrink, report) = restore(&lb, &image, &dir.join("small.img"), 1230 * MIB)?;
        if !report.contains("shrunk from") {
            bail!("the restore onto 1230 MiB did not shrink: {report}");
        }
        let old = match &before {
            Some(old) => Some(restore(old, &image, &dir.join("small.img"), 1230 * MIB)?.0),
            None => None,
        };
        let (r2, c2) = tool_times(&report, "resize2fs");
        let (nr, c3) = tool_times(&report, "ntfsresize");
        let sizes = new_sizes(&report);
        let (Some(ext_to), Some(ntfs_to)) = (sizes.first(), sizes.get(1)) else {
            bail!("the report does not name the new sizes: {report}");
        };
        // The same work on plain files: e2fsck -f -p + resize2fs and ntfsresize, as the
        // restore runs them.
        let own = {
            sh(&format!(
                "cp --sparse=always {} {} && cp --sparse=always {} {} && sync",
                p("ext.img"),
                p("ext-w.img"),
                p("ntfs.img"),
                p("ntfs-w.img")
            ))?;
            let start = Instant::now();
            sh(&format!(
                "e2fsck -f -p {ext} >/dev/null; resize2fs {ext} {}K >/dev/null 2>&1 && \
                 ntfsresize --force --force --no-progress-bar --size {ntfs_to} {ntfs} >/dev/null",
                ext_to / 1024,
                ext = p("ext-w.img"),
                ntfs = p("ntfs-w.img"),
            ))?;
            start.elapsed().as_secs_f64()
        };
        eprintln!(
            "bench: shrink round {round}: plain {plain:.2} s, shrinking {shrink:.2} s \
             (resize2fs {r2:.1} s, ntfsresize {nr:.1} s, checks {:.1} s; the tools on plain \
             files {own:.2} s){}",
            c2 + c3,
            old.map(|o| format!(", the earlier build {o:.2} s"))
                .unwrap_or_default()
        );
        rows.push((plain, shrink, r2, nr, c2 + c3, own, old));
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
         `resize2fs -P` / `ntfsresize --info` name), alternated, {ROUNDS} rounds; the tools' times inside the restore\n\
         from its report (0.1 s steps); \"tools alone\": `e2fsck -f -p` + `resize2fs` and `ntfsresize` to the same\n\
         sizes on plain-file copies of the partitions, in the same round. The bound is the issue's: 1.5 × the plain\n\
         restore + the tools' own work.\n",
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
    let with_before = before.is_some();
    writeln!(
        t,
        "| round | plain restore | shrinking restore | resize2fs + ntfsresize in it | tools alone | bound | shrinking ÷ bound |{}\n\
         |---|---:|---:|---:|---:|---:|---:|{}",
        if with_before { " earlier build |" } else { "" },
        if with_before { "---:|" } else { "" }
    )?;
    let mut ratios = Vec::new();
    for (i, (plain, shrink, r2, nr, _checks, own, old)) in rows.iter().enumerate() {
        let bound = 1.5 * plain + own;
        ratios.push(shrink / bound);
        writeln!(
            t,
            "| {} | {plain:.2} s | {shrink:.2} s | {r2:.1} + {nr:.1} s | {own:.2} s | {bound:.2} s | {:.2} |{}",
            i + 1,
            shrink / bound,
            old.map(|o| format!(" {o:.2} s |")).unwrap_or_default()
        )?;
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    writeln!(
        t,
        "\nMedian shrinking restore ÷ bound: {:.2} (at most 1.00 meets the issue's goal).",
        ratios[ratios.len() / 2]
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
