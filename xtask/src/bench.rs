//! `cargo xtask bench`: Lifeboat against the reference tools, in one run on this machine, on the
//! same file system. Figures are ratios against the reference measured in the same run; the
//! table goes to stdout and into BENCHMARKS.md.
//!
//! Workload: a 4 GiB ext4 file system filled with ~1.4 GiB of real files (copied from /usr),
//! made with `mkfs.ext4 -d`, inside a GPT disk image for the clone benchmark.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const GIB: u64 = 1 << 30;
const FILL: u64 = 1400 << 20;

pub(crate) fn sh(cmd: &str) -> Result<()> {
    let status = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .status()
        .with_context(|| format!("running {cmd}"))?;
    if !status.success() {
        bail!("`{cmd}` failed: {status}");
    }
    Ok(())
}

/// Runs `prep` (untimed) then `cmd` under `/usr/bin/time`, twice, and keeps the faster run:
/// (wall seconds, peak RSS in KiB). Two runs smooth out writeback and other guests on the host.
fn timed(label: &str, prep: &str, cmd: &str) -> Result<(f64, u64)> {
    let mut best = (f64::MAX, 0u64);
    for _ in 0..2 {
        if !prep.is_empty() {
            sh(prep)?;
        }
        drop_caches();
        let rss_file = std::env::temp_dir().join("lifeboat-bench-rss");
        let start = Instant::now();
        sh(&format!(
            "/usr/bin/time -f %M -o {} bash -c '{}'",
            rss_file.display(),
            cmd.replace('\'', "'\\''")
        ))?;
        let secs = start.elapsed().as_secs_f64();
        let rss = std::fs::read_to_string(&rss_file).unwrap_or_default();
        let rss = rss
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        if secs < best.0 {
            best = (secs, rss);
        }
    }
    eprintln!(
        "bench: {label}: {:.2} s, peak RSS {} MiB",
        best.0,
        best.1 / 1024
    );
    Ok(best)
}

/// Cold caches for every measurement, when the machine lets us.
fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn sha256(path: &str) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum {path} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Copies regular files from `/usr` into `dst` until `limit` bytes: real, varied data.
fn stage_files(dst: &Path, limit: u64) -> Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![
        PathBuf::from("/usr/lib"),
        PathBuf::from("/usr/share"),
        PathBuf::from("/usr/bin"),
    ];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if total >= limit {
                return Ok(total);
            }
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let rel = path.strip_prefix("/usr").unwrap_or(&path);
                let to = dst.join(rel);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if let Ok(n) = std::fs::copy(&path, &to) {
                    total += n;
                }
            }
        }
    }
    Ok(total)
}

pub fn run(rest: &[String]) -> Result<()> {
    if rest.iter().any(|a| a == "--encrypted") {
        return encrypted();
    }
    if rest.iter().any(|a| a == "--cast") {
        return cast();
    }
    if rest.iter().any(|a| a == "--lab") {
        return lab();
    }
    // Restore onto a smaller disk (issue 15).
    if rest.iter().any(|a| a == "--shrink") {
        return crate::bench_shrink::run();
    }
    if rest.iter().any(|a| a == "--fs") {
        return file_systems();
    }
    crate::deps::install()?;
    crate::cargo(&["build", "--release", "--package", "cli"])?;
    let lifeboat = crate::target_dir().join("release/lifeboat");
    let dir = crate::target_dir().join("bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let d = |n: &str| dir.join(n);
    let p = |n: &str| d(n).display().to_string();

    eprintln!("bench: staging ~1.4 GiB of real files");
    let staged = stage_files(&d("tree"), FILL)?;
    eprintln!(
        "bench: making a 4 GiB ext4 file system with {} MiB of files",
        staged >> 20
    );
    sh(&format!(
        "truncate -s {} {} && mke2fs -q -F -t ext4 -L bench -d {} {}",
        4 * GIB,
        p("fs.img"),
        p("tree"),
        p("fs.img")
    ))?;
    let _ = std::fs::remove_dir_all(d("tree"));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);

    // Backup.
    let (lb_b, lb_rss) = timed(
        "lifeboat backup",
        &format!("rm -f {}", p("fs.lbi")),
        &format!(
            "{} backup {} {}",
            lifeboat.display(),
            p("fs.img"),
            p("fs.lbi")
        ),
    )?;
    let (pc_b, _) = timed(
        "partclone.ext4 -c | zstd -T0 -3",
        &format!("rm -f {}", p("pc.zst")),
        &format!(
            "partclone.ext4 -q -c -s {} -o - 2>/dev/null | zstd -q -T0 -3 -o {}",
            p("fs.img"),
            p("pc.zst")
        ),
    )?;
    sh(&format!(
        "losetup -f --show {} > {}",
        p("fs.img"),
        p("loopdev")
    ))?;
    let loopdev = std::fs::read_to_string(d("loopdev"))?.trim().to_string();
    let fsa = timed(
        "fsarchiver savefs",
        &format!("rm -f {}", p("fs.fsa")),
        &format!(
            "fsarchiver savefs -o -j{cores} -Z3 {} {loopdev} >/dev/null",
            p("fs.fsa")
        ),
    );
    let _ = sh(&format!("losetup -d {loopdev}"));
    let (fsa_b, _) = fsa?;
    sh(&format!(
        "partclone.ext4 -q -c -s {} -o {} 2>/dev/null",
        p("fs.img"),
        p("used.pc")
    ))?;
    let (z_b, _) = timed(
        "zstd -T0 -3 of the used blocks",
        &format!("rm -f {}", p("used.zst")),
        &format!("zstd -q -T0 -3 {} -o {}", p("used.pc"), p("used.zst")),
    )?;

    // Restore.
    sh(&format!(
        "truncate -s {} {} {}",
        4 * GIB,
        p("r1.img"),
        p("r2.img")
    ))?;
    let (lb_r, lb_r_rss) = timed(
        "lifeboat restore",
        "",
        &format!(
            "{} restore {} {} --yes >/dev/null",
            lifeboat.display(),
            p("fs.lbi"),
            p("r1.img")
        ),
    )?;
    let (pc_r, _) = timed(
        "zstd -d | partclone.ext4 -r",
        "",
        &format!(
            "zstd -q -d -c {} | partclone.ext4 -q -r -s - -O {} 2>/dev/null",
            p("pc.zst"),
            p("r2.img")
        ),
    )?;
    sh(&format!("e2fsck -fn {} >/dev/null", p("r1.img")))?;

    // Clone: the file system inside a GPT disk.
    sh(&format!(
        // A fully allocated disk, like a real one: free space is read from the medium too.
        "head -c {} /dev/zero > {d} && sgdisk -n 1:2048:+{}K -t 1:8300 {d} >/dev/null && sgdisk -v {d} | grep -q 'No problems found' && sgdisk -p {d} | grep -q '^ *1 ' && dd if={} of={d} bs=4M seek=1M oflag=seek_bytes conv=notrunc status=none",
        4 * GIB + 2 * (1 << 20),
        4 * GIB / 1024,
        p("fs.img"),
        d = p("disk.img")
    ))?;
    sh(&format!(
        "truncate -s {} {} {}",
        4 * GIB + 4 * (1 << 20),
        p("c1.img"),
        p("c2.img")
    ))?;
    sh(&format!(
        "truncate -s {} {} {}",
        4 * GIB,
        p("part1.img"),
        p("part2.img")
    ))?;
    let (lb_c, lb_c_rss) = timed(
        "lifeboat clone",
        "",
        &format!(
            "{} clone {} {} --yes >/dev/null",
            lifeboat.display(),
            p("disk.img"),
            p("c1.img")
        ),
    )?;
    let (dd_c, _) = timed(
        "dd bs=4M",
        "",
        &format!(
            "dd if={} of={} bs=4M conv=notrunc,fsync status=none",
            p("disk.img"),
            p("c2.img")
        ),
    )?;
    let (pcb_c, _) = timed(
        "partclone.ext4 -b",
        "",
        &format!(
            "partclone.ext4 -q -b -s {} -O {} 2>/dev/null",
            p("fs.img"),
            p("part2.img")
        ),
    )?;

    let lbi = size(&d("fs.lbi"));
    let pcz = size(&d("pc.zst"));
    let fsa_size = size(&d("fs.fsa"));
    let mut t = String::new();
    let cpu = cpu_model();
    let _ = writeln!(t, "Machine: {cores} cores ({cpu}), {} GiB RAM; caches dropped before each run when permitted.", mem_gib());
    let _ = writeln!(
        t,
        "Workload: 4 GiB ext4 made by `mkfs.ext4 -d` with {} MiB of files from /usr.\n",
        staged >> 20
    );
    let _ = writeln!(
        t,
        "| job | tool | time (s) | ratio | size (MiB) | peak RSS (MiB) |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|");
    let _ = writeln!(
        t,
        "| backup | lifeboat backup (zstd 3, {cores} threads) | {lb_b:.1} | 1.00 | {} | {} |",
        lbi >> 20,
        lb_rss / 1024
    );
    let _ = writeln!(
        t,
        "| backup | partclone.ext4 -c \\| zstd -T0 -3 | {pc_b:.1} | {:.2} | {} | |",
        lb_b / pc_b,
        pcz >> 20
    );
    let _ = writeln!(
        t,
        "| backup | fsarchiver savefs -j{cores} -Z3 | {fsa_b:.1} | {:.2} | {} | |",
        lb_b / fsa_b,
        fsa_size >> 20
    );
    let _ = writeln!(
        t,
        "| backup | zstd -T0 -3 of the used blocks (limit) | {z_b:.1} | {:.2} | {} | |",
        lb_b / z_b,
        size(&d("used.zst")) >> 20
    );
    let _ = writeln!(
        t,
        "| restore | lifeboat restore | {lb_r:.1} | 1.00 | | {} |",
        lb_r_rss / 1024
    );
    let _ = writeln!(
        t,
        "| restore | zstd -d \\| partclone.ext4 -r | {pc_r:.1} | {:.2} | | |",
        lb_r / pc_r
    );
    let _ = writeln!(
        t,
        "| clone | lifeboat clone (disk) | {lb_c:.1} | 1.00 | | {} |",
        lb_c_rss / 1024
    );
    let _ = writeln!(
        t,
        "| clone | dd bs=4M conv=fsync (disk) | {dd_c:.1} | {:.2} | | |",
        lb_c / dd_c
    );
    let _ = writeln!(
        t,
        "| clone | partclone.ext4 -b (partition) | {pcb_c:.1} | {:.2} | | |",
        lb_c / pcb_c
    );
    let _ = writeln!(
        t,
        "\nRatios are Lifeboat's time divided by the other tool's (lower is better for Lifeboat);"
    );
    let _ = writeln!(
        t,
        "image size ratio lifeboat/partclone+zstd: {:.3}.",
        lbi as f64 / pcz.max(1) as f64
    );
    print!("{t}");
    let _ = std::fs::remove_dir_all(&dir);
    let path = crate::workspace_root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let section = format!("## Backup, restore and clone (`cargo xtask bench`)\n\n{t}");
    let new = replace_section(&old, "## Backup, restore and clone", &section);
    std::fs::write(&path, new).context("writing BENCHMARKS.md")?;
    Ok(())
}

/// `cargo xtask bench --encrypted`: encrypted against unencrypted backup and restore of the same
/// file system in the same run (each timed twice, the faster kept), and the cost of unlocking
/// an image (the Argon2id key derivation, paid once per command), into BENCHMARKS.md.
fn encrypted() -> Result<()> {
    crate::deps::install()?;
    crate::cargo(&["build", "--release", "--package", "cli"])?;
    let lifeboat = crate::target_dir().join("release/lifeboat");
    let lb = lifeboat.display();
    let dir = crate::target_dir().join("bench-encrypted");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let p = |n: &str| dir.join(n).display().to_string();
    eprintln!("bench: staging ~1.4 GiB of real files");
    let staged = stage_files(&dir.join("tree"), FILL)?;
    sh(&format!(
        "truncate -s {} {} && mke2fs -q -F -t ext4 -L bench -d {} {}",
        4 * GIB,
        p("fs.img"),
        p("tree"),
        p("fs.img")
    ))?;
    let _ = std::fs::remove_dir_all(dir.join("tree"));
    std::fs::write(dir.join("pw"), "benchmark password\n")?;
    let pw = format!("--password-file {}", p("pw"));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let backup = |name: &str, extra: &str| {
        timed(
            &format!("lifeboat backup {extra}"),
            &format!("rm -f {}", p(name)),
            &format!("{lb} backup {} {} {extra} >/dev/null", p("fs.img"), p(name)),
        )
    };
    // Plain and encrypted alternate, twice (each `timed` runs twice): a change of load on a shared
    // machine then hits both alike, and the fastest of each is kept.
    let best = |a: (f64, u64), b: (f64, u64)| (a.0.min(b.0), a.1.max(b.1));
    let enc_args = format!("--encrypt {pw}");
    let (plain_b, plain_b_rss) = backup("plain.lbi", "")?;
    let (enc_b, enc_b_rss) = backup("enc.lbi", &enc_args)?;
    let (plain_b, plain_b_rss) = best((plain_b, plain_b_rss), backup("plain.lbi", "")?);
    let (enc_b, enc_b_rss) = best((enc_b, enc_b_rss), backup("enc.lbi", &enc_args)?);
    sh(&format!("truncate -s {} {}", 4 * GIB, p("r.img")))?;
    let restore = |name: &str, extra: &str| {
        timed(
            &format!("lifeboat restore {name}"),
            "",
            &format!(
                "{lb} restore {} {} --yes {extra} >/dev/null",
                p(name),
                p("r.img")
            ),
        )
    };
    let (plain_r, plain_r_rss) = restore("plain.lbi", "")?;
    let (enc_r, enc_r_rss) = restore("enc.lbi", &pw)?;
    let (plain_r, plain_r_rss) = best((plain_r, plain_r_rss), restore("plain.lbi", "")?);
    let (enc_r, enc_r_rss) = best((enc_r, enc_r_rss), restore("enc.lbi", &pw)?);
    sh(&format!("e2fsck -fn {} >/dev/null", p("r.img")))?;
    // Unlocking alone: `info` of the encrypted image minus `info` of the plain one.
    let (info_plain, _) = timed(
        "info plain",
        "",
        &format!("{lb} info {} >/dev/null", p("plain.lbi")),
    )?;
    let (info_enc, _) = timed(
        "info encrypted",
        "",
        &format!("{lb} info {} {pw} >/dev/null", p("enc.lbi")),
    )?;
    let unlock = (info_enc - info_plain).max(0.0);
    let size = |n: &str| std::fs::metadata(dir.join(n)).map(|m| m.len()).unwrap_or(0) >> 20;
    let mut t = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        t,
        "Machine: {cores} cores ({}), {} GiB RAM; page cache dropped before each run when permitted.\n\
         Workload: 4 GiB ext4 made by `mkfs.ext4 -d` with {} MiB of files from /usr. Command: `cargo xtask bench\n\
         --encrypted`, {}. Plain and encrypted jobs alternate, each run four times, the fastest kept.\n",
        cpu_model(),
        mem_gib(),
        staged >> 20,
        String::from_utf8_lossy(
            &Command::new("date")
                .args(["-u", "+%Y-%m-%d %H:%M UTC"])
                .output()?
                .stdout
        )
        .trim()
    );
    let _ = writeln!(
        t,
        "| job | time (s) | ratio | without unlocking | size (MiB) | peak RSS (MiB) |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        t,
        "| backup | {plain_b:.2} | 1.00 | | {} | {} |",
        size("plain.lbi"),
        plain_b_rss / 1024
    );
    let _ = writeln!(
        t,
        "| backup --encrypt | {enc_b:.2} | {:.2} | {:.2} | {} | {} |",
        enc_b / plain_b,
        (enc_b - unlock) / plain_b,
        size("enc.lbi"),
        enc_b_rss / 1024
    );
    let _ = writeln!(
        t,
        "| restore | {plain_r:.2} | 1.00 | | | {} |",
        plain_r_rss / 1024
    );
    let _ = writeln!(
        t,
        "| restore (encrypted image) | {enc_r:.2} | {:.2} | {:.2} | | {} |",
        enc_r / plain_r,
        (enc_r - unlock) / plain_r,
        enc_r_rss / 1024
    );
    let _ = writeln!(
        t,
        "\nUnlocking (Argon2id with the default cost, once per command; `info` of the encrypted image minus\n\
         `info` of the plain one): {unlock:.2} s. \"Without unlocking\" is the ratio with that fixed cost taken out: the\n\
         cost of sealing and opening the data, which is what grows with the disk. The goal of issue 18 (within\n\
         1.1x) is about that part; the key derivation is slow on purpose (it is what a password guesser pays per\n\
         guess) and is paid once per command, so on this 1.4 GiB workload it shows in the totals, on a disk of\n\
         hundreds of GiB it does not. Peak RSS of the encrypted jobs is the key derivation's memory."
    );
    print!("{t}");
    let _ = std::fs::remove_dir_all(&dir);
    let path = crate::workspace_root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let section = format!("## Encrypted images (`cargo xtask bench --encrypted`)\n\n{t}");
    let new = replace_section(&old, "## Encrypted images", &section);
    std::fs::write(&path, new).context("writing BENCHMARKS.md")?;
    Ok(())
}

/// `cargo xtask bench --cast`: one image to 1 and 2 PCs by multicast (`lifeboat serve` and
/// `lifeboat receive` over udpcast, in network namespaces made here and deleted after: a bridge
/// and one namespace per PC joined by veth pairs; no other address is used) against 1 and 2
/// sequential unicast restores of the same image, in the same run, into BENCHMARKS.md.
fn cast() -> Result<()> {
    crate::deps::install()?;
    crate::cargo(&["build", "--release", "--package", "cli"])?;
    let lifeboat = crate::target_dir().join("release/lifeboat");
    let lb = lifeboat.display();
    let dir = crate::target_dir().join("bench-cast");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let p = |n: &str| dir.join(n).display().to_string();
    let fill = 600 << 20;
    eprintln!("bench: staging ~600 MiB of real files");
    let staged = stage_files(&dir.join("tree"), fill)?;
    let disk_len = 2 * GIB;
    sh(&format!(
        "truncate -s {disk_len} {d} && sgdisk -n 1:2048:0 -t 1:8300 {d} >/dev/null && \
         truncate -s {fs_len} {f} && mke2fs -q -F -t ext4 -L bench -d {t} {f} && \
         dd if={f} of={d} bs=1M seek=1 conv=notrunc,sparse status=none",
        d = p("disk.img"),
        f = p("fs.img"),
        t = p("tree"),
        fs_len = disk_len - (2 << 20),
    ))?;
    let _ = std::fs::remove_dir_all(dir.join("tree"));
    let _ = std::fs::remove_file(dir.join("fs.img"));
    sh(&format!(
        "{lb} backup {} {} >/dev/null",
        p("disk.img"),
        p("img.lbi")
    ))?;
    for i in 0..2 {
        sh(&format!(
            "truncate -s {disk_len} {}",
            p(&format!("r{i}.img"))
        ))?;
    }
    let tag = format!("lbb{}", std::process::id());
    let ns = |n: &str| format!("{tag}{n}");
    let mut setup = format!(
        "ip netns add {s} && ip -n {s} link set lo up && \
         ip -n {s} link add br0 type bridge mcast_snooping 0 && ip -n {s} link set br0 up && \
         ip -n {s} addr add 10.231.9.1/24 brd + dev br0 && ip -n {s} route add 224.0.0.0/4 dev br0",
        s = ns("s")
    );
    for i in 0..2 {
        write!(
            setup,
            " && ip netns add {r} && ip -n {r} link set lo up && \
             ip link add {tag}v{i} type veth peer name eth0 netns {r} && \
             ip link set {tag}v{i} netns {s} && ip -n {s} link set {tag}v{i} master br0 up && \
             ip -n {r} addr add 10.231.9.{a}/24 brd + dev eth0 && ip -n {r} link set eth0 up && \
             ip -n {r} route add 224.0.0.0/4 dev eth0",
            r = ns(&format!("r{i}")),
            s = ns("s"),
            a = 11 + i
        )?;
    }
    let teardown = format!(
        "for n in {} {} {}; do ip netns del $n 2>/dev/null; done; true",
        ns("s"),
        ns("r0"),
        ns("r1")
    );
    let run = (|| -> Result<Vec<(String, f64)>> {
        sh(&setup)?;
        let unicast = |n: usize| {
            let cmds: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        "{lb} restore {} {} --yes >/dev/null",
                        p("img.lbi"),
                        p(&format!("r{i}.img"))
                    )
                })
                .collect();
            timed(&format!("{n} unicast restores"), "", &cmds.join(" && "))
        };
        let multicast = |n: usize| {
            let mut cmd = String::from("pids=; ");
            for i in 0..n {
                write!(
                    cmd,
                    "ip netns exec {r} {lb} receive {t} --yes --interface eth0 --port 9400 \
                     --timeout 60 >/dev/null 2>&1 & pids=\"$pids $!\"; ",
                    r = ns(&format!("r{i}")),
                    t = p(&format!("r{i}.img"))
                )
                .ok();
            }
            write!(
                cmd,
                "sleep 0.3; ip netns exec {s} {lb} serve {img} --clients {n} --interface br0 \
                 --port 9400 >/dev/null 2>&1 || exit 1; for p in $pids; do wait $p || exit 1; done",
                s = ns("s"),
                img = p("img.lbi")
            )
            .ok();
            timed(&format!("multicast to {n}"), "", &cmd)
        };
        let mut rows = Vec::new();
        for n in [1, 2] {
            rows.push((format!("{n} sequential unicast restore(s)"), unicast(n)?.0));
            let want = sha256(&p("r0.img"))?;
            rows.push((format!("multicast to {n} PC(s)"), multicast(n)?.0));
            for i in 0..n {
                if sha256(&p(&format!("r{i}.img")))? != want {
                    bail!("receiver {i} does not equal the unicast restore");
                }
            }
        }
        Ok(rows)
    })();
    sh(&teardown)?;
    let rows = run?;
    let mut t = String::new();
    writeln!(
        t,
        "Machine: {} cores ({}), {} GiB RAM; page cache dropped before each run when permitted.",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        cpu_model(),
        mem_gib()
    )?;
    writeln!(
        t,
        "Workload: a 2 GiB GPT disk with one ext4 partition (`mkfs.ext4 -d`, {} MiB of files from /usr),\n\
         image of {} MiB. Sender and PCs are network namespaces on one bridge (veth), so the network is\n\
         as fast as the machine: the figures show what the stream and the restore cost, not a LAN's\n\
         bandwidth. Every PC's disk is checked equal to the unicast restore. Command: `cargo xtask bench\n\
         --cast`. Each job run twice, the faster kept; multicast includes 0.3 s of start-up wait.\n\
         The unicast restores read the image file on this machine (no network at all); over a LAN each\n\
         one would also carry the image once more.\n",
        staged >> 20,
        size(&dir.join("img.lbi")) >> 20
    )?;
    writeln!(t, "| job | time (s) |\n|---|---:|")?;
    for (label, secs) in &rows {
        writeln!(t, "| {label} | {secs:.2} |")?;
    }
    print!("{t}");
    let path = crate::workspace_root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let section = format!("## Multicast (`cargo xtask bench --cast`)\n\n{t}");
    let new = replace_section(&old, "## Multicast (`cargo xtask bench --cast`)", &section);
    std::fs::write(&path, new).context("writing BENCHMARKS.md")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `cargo xtask bench --lab`: the lab of issue 19 in QEMU (`qemu_tests::lab::bench`: PCs
/// PXE-booted from dnsmasq on a namespace LAN): 1, 2 and 4 receivers by one multicast session
/// against as many sequential unicast restores from the HTTP store, in the same run, into
/// BENCHMARKS.md. Uses the image named by `LIFEBOAT_VMLINUZ`/`LIFEBOAT_INITRAMFS` (and
/// `LIFEBOAT_BIN` for the host's `lifeboat`) when set, else builds it.
fn lab() -> Result<()> {
    crate::deps::install()?;
    let img = if std::env::var_os("LIFEBOAT_VMLINUZ").is_some() {
        qemu_tests::vm::Image::find()?
    } else {
        let o = crate::image::build()?;
        std::env::set_var(
            "LIFEBOAT_BIN",
            crate::image::out_dir().join("initramfs-root/bin/lifeboat"),
        );
        qemu_tests::vm::Image {
            iso: o.iso,
            vmlinuz: o.vmlinuz,
            initramfs: o.initramfs,
        }
    };
    let f = qemu_tests::lab::bench(&img, &[1, 2, 4])?;
    let mut t = String::new();
    writeln!(
        t,
        "Machine: {} cores ({}), {} GiB RAM, shared with other jobs; QEMU under TCG (no KVM), every VM\n\
         on 1 vCPU with 512 MiB. Command: `cargo xtask bench --lab`, {}.",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        cpu_model(),
        mem_gib(),
        utc_now()
    )?;
    writeln!(
        t,
        "Workload: the QEMU suite's MBR/BIOS system disk ({} MiB, GRUB + ext4), image of {} MiB. A sender\n\
         and four receiver VMs PXE-boot Lifeboat from dnsmasq + busybox httpd on a bridge inside a network\n\
         namespace (`qemu_tests::lab`); boots are not timed. Unicast: `lifeboat restore http://…/pc.lbi`\n\
         on each PC in turn (the HTTP store, the fallback where multicast is blocked). Multicast: `lifeboat\n\
         receive` on each PC, then `lifeboat serve --clients N` on the sender (the image on its drive),\n\
         timed until every receiver has finished. Each job run twice, alternating, the faster kept; every\n\
         disk is checked equal to a plain restore of the image after each run. Ratio: multicast time\n\
         divided by unicast time (below 1: multicast is faster). Under TCG the PCs' emulated CPUs, not\n\
         the network, bound both, and all VMs share the host's cores: N receivers at once get no more\n\
         CPU than one, and the multicast sender is one more VM (the unicast store is httpd on the\n\
         host). So these ratios show what a session costs over the same work done in turn, not\n\
         the gain on a real LAN, where each PC has its own CPU and the network is the limit (N unicast\n\
         restores carry the image N times, one session carries it once).\n",
        f.disk_bytes >> 20,
        f.image_bytes >> 20
    )?;
    writeln!(
        t,
        "| receivers | sequential unicast restores (s) | one multicast session (s) | ratio |\n|---:|---:|---:|---:|"
    )?;
    for r in &f.rows {
        writeln!(
            t,
            "| {} | {:.1} | {:.1} | {:.2} |",
            r.receivers,
            r.unicast,
            r.multicast,
            r.multicast / r.unicast
        )?;
    }
    print!("{t}");
    let path = crate::workspace_root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let section = format!("## Multicast, a lab in QEMU (`cargo xtask bench --lab`)\n\n{t}");
    let new = replace_section(&old, "## Multicast, a lab in QEMU", &section);
    std::fs::write(&path, new).context("writing BENCHMARKS.md")?;
    Ok(())
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The size of the btrfs and XFS file systems of `bench --fs`, and how much of real files goes in.
const FS_SIZE: u64 = GIB;
const FS_FILL: u64 = 400 << 20;

/// `cargo xtask bench --fs`: backup of a btrfs and an XFS file system (the same files from /usr,
/// btrfs made by `mkfs.btrfs --rootdir`, XFS filled through a loop mount) by Lifeboat against
/// `partclone.btrfs`/`partclone.xfs` piped to zstd with Lifeboat's default level (3) and threads
/// (one per core), in the same run on the same file, each timed twice and the faster kept; the
/// image is checked by restoring it and running the file system's own checker; into BENCHMARKS.md.
fn file_systems() -> Result<()> {
    crate::deps::install()?;
    crate::cargo(&["build", "--release", "--package", "cli"])?;
    let lifeboat = crate::target_dir().join("release/lifeboat");
    let lb = lifeboat.display();
    let dir = crate::target_dir().join("bench-fs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let p = |n: &str| dir.join(n).display().to_string();
    eprintln!("bench: staging ~{} MiB of real files", FS_FILL >> 20);
    let staged = stage_files(&dir.join("tree"), FS_FILL)?;
    sh(&format!(
        "truncate -s {FS_SIZE} {b} && mkfs.btrfs -q -f -L bench --rootdir {} {b}",
        p("tree"),
        b = p("btrfs.img")
    ))?;
    sh(&format!(
        "truncate -s {FS_SIZE} {x} && mkfs.xfs -q -f -L bench {x} && mkdir -p {m} \
         && mount -o loop {x} {m} && cp -a {}/. {m}/ && umount {m}",
        p("tree"),
        x = p("xfs.img"),
        m = p("mnt")
    ))?;
    let _ = std::fs::remove_dir_all(dir.join("tree"));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // Figures move with the load of a shared machine: say what it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Machine: {cores} cores ({}), {} GiB RAM, load average {load} before the runs; page cache dropped before\n\
         each run when permitted. Workload: a {} GiB btrfs (`mkfs.btrfs --rootdir`) and a {} GiB XFS (`mkfs.xfs`, filled through a loop\n\
         mount), each holding the same {} MiB of files from /usr. Command: `cargo xtask bench --fs`, {}.\n\
         Each job run twice, the faster kept; Lifeboat's image restored and checked (`btrfs check --readonly`,\n\
         `xfs_repair -n`).\n",
        cpu_model(),
        mem_gib(),
        FS_SIZE / GIB,
        FS_SIZE / GIB,
        staged >> 20,
        String::from_utf8_lossy(
            &Command::new("date")
                .args(["-u", "+%Y-%m-%d %H:%M UTC"])
                .output()?
                .stdout
        )
        .trim()
    );
    let _ = writeln!(
        t,
        "| file system | Lifeboat (s) | partclone + zstd (s) | time ratio | Lifeboat (MiB) | partclone + zstd (MiB) | size ratio |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|");
    for (fs, check) in [
        ("btrfs", "btrfs check --readonly"),
        ("xfs", "xfs_repair -n"),
    ] {
        let img = p(&format!("{fs}.img"));
        let (lb_t, _) = timed(
            &format!("lifeboat backup ({fs})"),
            &format!("rm -f {}", p("fs.lbi")),
            &format!("{lb} backup {img} {} >/dev/null", p("fs.lbi")),
        )?;
        let (pc_t, _) = timed(
            &format!("partclone.{fs} -c | zstd -T0 -3"),
            &format!("rm -f {}", p("pc.zst")),
            &format!(
                "partclone.{fs} -q -c -s {img} -o - 2>/dev/null | zstd -q -T0 -3 -o {}",
                p("pc.zst")
            ),
        )?;
        let (lb_size, pc_size) = (size(&dir.join("fs.lbi")), size(&dir.join("pc.zst")));
        sh(&format!(
            "truncate -s {FS_SIZE} {r} && {lb} restore {} {r} --yes >/dev/null && {check} {r} >/dev/null 2>&1",
            p("fs.lbi"),
            r = p("r.img")
        ))
        .with_context(|| format!("the restored {fs} does not check clean"))?;
        let _ = std::fs::remove_file(dir.join("r.img"));
        let _ = writeln!(
            t,
            "| {fs} | {lb_t:.2} | {pc_t:.2} | {:.2} | {:.1} | {:.1} | {:.3} |",
            lb_t / pc_t,
            lb_size as f64 / f64::from(1 << 20),
            pc_size as f64 / f64::from(1 << 20),
            lb_size as f64 / pc_size.max(1) as f64
        );
    }
    let _ = writeln!(
        t,
        "\nRatios are Lifeboat's figure divided by partclone's (below 1: Lifeboat is faster or smaller).\n\
         Lifeboat: `lifeboat backup FS.img x.lbi` (zstd level 3, one thread per core); partclone:\n\
         `partclone.FS -c -s FS.img -o - | zstd -T0 -3`."
    );
    print!("{t}");
    let _ = std::fs::remove_dir_all(&dir);
    let path = crate::workspace_root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let section = format!("## btrfs and XFS (`cargo xtask bench --fs`)\n\n{t}");
    let new = replace_section(&old, "## btrfs and XFS", &section);
    std::fs::write(&path, new).context("writing BENCHMARKS.md")?;
    Ok(())
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default()
}

pub(crate) fn mem_gib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kib| (kib + (1 << 19)) >> 20)
        .unwrap_or(0)
}

/// Replaces the markdown section starting with `heading` (up to the next `## `) with `section`.
pub(crate) fn replace_section(doc: &str, heading: &str, section: &str) -> String {
    let Some(start) = doc.find(heading) else {
        let mut d = doc.trim_end().to_string();
        if d.is_empty() {
            d.push_str("# Benchmarks\n");
        }
        return format!("{d}\n\n{section}");
    };
    let rest = &doc[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .map(|i| start + heading.len() + i + 1)
        .unwrap_or(doc.len());
    format!("{}{section}\n{}", &doc[..start], &doc[end..])
}
