//! Helpers shared by the integration tests: a file-backed `BlockIo`, `blkid` as the oracle, and
//! fixture makers on top of `qemu_tests::fixture`.
#![allow(dead_code)]

use anyhow::{Context, Result};
use disk::BlockIo;
use qemu_tests::fixture;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A read-only `BlockIo` over an image file (the tests do not depend on `disk::FileDisk`).
#[derive(Debug)]
pub struct FileIo {
    file: File,
    len: u64,
    name: String,
}

impl FileIo {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        Ok(FileIo {
            file,
            len,
            name: path.display().to_string(),
        })
    }
}

impl BlockIo for FileIo {
    fn len(&self) -> u64 {
        self.len
    }
    fn logical_sector_size(&self) -> u32 {
        512
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"));
        }
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "read-only test image",
        ))
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// `blkid -p -o export FILE` as a map; empty when blkid finds nothing (its exit status 2).
/// Values are unescaped: `\\x` is `x`, and blkid's `M-x`/`M-^x`/`^x` notation for bytes outside
/// printable ASCII is turned back into the bytes, read as UTF-8 (so UTF-8 labels compare as they
/// are) — except in UUIDs, which are ASCII and may hold `M-` themselves (LVM's `wesM-8Hq5`).
pub fn blkid(path: &Path) -> Result<HashMap<String, String>> {
    let p = path.to_str().context("non-UTF-8 path")?;
    let run = std::process::Command::new(fixture::require("blkid")?)
        .args(["-p", "-o", "export", p])
        .env("LC_ALL", "C")
        .output()
        .context("running blkid")?;
    match run.status.code() {
        Some(0) => {}
        Some(2) => return Ok(HashMap::new()),
        _ => anyhow::bail!(
            "blkid -p {p} failed ({}): {}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        ),
    }
    let mut map = HashMap::new();
    for line in run.stdout.split(|&b| b == b'\n') {
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (k, v) = (&line[..eq], &line[eq + 1..]);
        let notation = !k.windows(4).any(|w| w == b"UUID");
        let mut val = Vec::new();
        let mut i = 0;
        // The byte at `j`, skipping the backslash blkid puts before shell metacharacters.
        let at = |j: usize| match v.get(j) {
            Some(b'\\') => (v.get(j + 1).copied(), j + 2),
            b => (b.copied(), j + 1),
        };
        while i < v.len() {
            if !notation {
                let (c, next) = at(i);
                val.extend(c);
                i = next;
            } else if v[i..].starts_with(b"M-^") {
                let (c, next) = at(i + 3);
                val.push((c.unwrap_or(b'?') ^ 0x40) | 0x80);
                i = next;
            } else if v[i..].starts_with(b"M-") {
                let (c, next) = at(i + 2);
                val.push(c.unwrap_or(b'?') | 0x80);
                i = next;
            } else if v[i] == b'^' {
                let (c, next) = at(i + 1);
                val.push(c.unwrap_or(b'?') ^ 0x40);
                i = next;
            } else {
                let (c, next) = at(i);
                val.extend(c);
                i = next;
            }
        }
        map.insert(
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(&val).into_owned(),
        );
    }
    Ok(map)
}

pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

/// A fresh temporary directory.
pub fn tempdir() -> Result<tempfile::TempDir> {
    Ok(tempfile::tempdir()?)
}

pub fn join(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Whole-file content as an in-memory disk.
pub fn mem_disk(path: &Path) -> Result<disk::MemDisk> {
    Ok(disk::MemDisk::from_vec(std::fs::read(path)?, 512))
}

/// A tiny deterministic PRNG (xorshift64*) for the mutation tests.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// The mutation campaign of the used-map tests: for `rounds` rounds, pick one of `images` in turn
/// (a disk and its "hot" byte ranges, where the structures the map is built from lie), overwrite
/// 1 to `max_flips` random bytes inside its hot ranges, probe and map it, and put the bytes back.
/// Every map that is made must cover exactly the disk; a probe or map may fail (that is the
/// point), an in-memory read may not. Returns how many rounds still mapped.
pub fn mutate_and_map(
    images: &[(disk::MemDisk, Vec<(u64, u64)>)],
    seed: u64,
    rounds: usize,
    max_flips: u64,
) -> Result<usize> {
    use disk::BlockIo;
    let mut rng = Rng::new(seed);
    let mut mapped = 0;
    for round in 0..rounds {
        let (disk, hot) = &images[round % images.len()];
        let mut undo = Vec::new();
        for _ in 0..1 + rng.below(max_flips) {
            let (start, len) = hot[rng.below(hot.len() as u64) as usize];
            let off = start + rng.below(len);
            let mut old = [0u8];
            disk.read_at(&mut old, off)?;
            undo.push((off, old));
            disk.write_at(&[rng.next() as u8], off)?;
        }
        let result = fs::probe(disk).map(|info| info.map(|info| fs::used_map(disk, &info)));
        for (off, old) in undo.into_iter().rev() {
            disk.write_at(&old, off)?;
        }
        match result {
            Ok(Some(Ok(map))) => {
                anyhow::ensure!(
                    map.len() == disk.len() && map.used_bytes() <= disk.len(),
                    "round {round} (seed {seed:#x}): a map of {} bytes for a disk of {}",
                    map.len(),
                    disk.len()
                );
                mapped += 1;
            }
            Ok(_) => {}
            Err(e) => anyhow::bail!("round {round} (seed {seed:#x}): in-memory read failed: {e}"),
        }
    }
    Ok(mapped)
}

/// Writes a deterministic tree under `dir`: `small` files of 0..6000 bytes spread over 20
/// directories, and one file per entry of `big` (sizes in bytes) at the top.
pub fn populate(dir: &Path, small: usize, big: &[usize]) -> Result<()> {
    let mut rng = Rng::new(small as u64 * 31 + big.len() as u64);
    for i in 0..small {
        let sub = dir.join(format!("d{:02}", i % 20));
        std::fs::create_dir_all(&sub)?;
        let len = rng.below(6000) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        std::fs::write(sub.join(format!("f{i:05}.bin")), data)?;
    }
    for (i, &len) in big.iter().enumerate() {
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        std::fs::write(dir.join(format!("big{i}.bin")), data)?;
    }
    Ok(())
}

/// Every regular file under `expected` exists under `actual` with the same bytes. Returns the
/// number of files compared.
pub fn compare_trees(expected: &Path, actual: &Path) -> Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(expected)? {
        let entry = entry?;
        let p = entry.path();
        let q = actual.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            n += compare_trees(&p, &q)?;
        } else {
            let a = std::fs::read(&p)?;
            let b = std::fs::read(&q).with_context(|| format!("reading {}", q.display()))?;
            if a != b {
                anyhow::bail!("{} differs from {}", q.display(), p.display());
            }
            n += 1;
        }
    }
    Ok(n)
}

/// A copy of `img` in which every byte outside the map's used ranges is zero (a sparse file).
pub fn keep_only_used(img: &Path, map: &fs::UsedMap, out: &Path) -> Result<()> {
    let src = File::open(img)?;
    let dst = File::create(out)?;
    dst.set_len(map.len())?;
    let mut buf = vec![0u8; 1 << 20];
    for r in map.ranges() {
        let mut pos = r.start;
        while pos < r.end {
            let n = ((r.end - pos) as usize).min(buf.len());
            src.read_exact_at(&mut buf[..n], pos)?;
            dst.write_all_at(&buf[..n], pos)?;
            pos += n as u64;
        }
    }
    Ok(())
}

/// Runs a command with extra environment, failing on a non-zero exit. Returns stdout.
pub fn run_env(tool: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let path = fixture::require(tool)?;
    let out = std::process::Command::new(path)
        .args(args)
        .envs(env.iter().copied())
        .env("LC_ALL", "C")
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "{tool} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The number after `key` on the first line of `text` containing it.
pub fn number_after(text: &str, key: &str) -> Result<u64> {
    let line = text
        .lines()
        .find(|l| l.contains(key))
        .with_context(|| format!("no `{key}` in:\n{text}"))?;
    let rest = &line[line.find(key).unwrap_or(0) + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse()
        .with_context(|| format!("no number after `{key}` in `{line}`"))
}
