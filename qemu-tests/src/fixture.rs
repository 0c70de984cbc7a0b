//! Disk and file-system images made by the real tools, as files in a temporary directory.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian package that provides each tool the fixtures use.
pub const TOOL_PACKAGES: &[(&str, &str)] = &[
    ("sgdisk", "gdisk"),
    ("sfdisk", "fdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("e2fsck", "e2fsprogs"),
    ("mkfs.vfat", "dosfstools"),
    ("fsck.vfat", "dosfstools"),
    ("mkfs.exfat", "exfatprogs"),
    ("fsck.exfat", "exfatprogs"),
    ("mkntfs", "ntfs-3g"),
    ("ntfscp", "ntfs-3g"),
    ("mkswap", "util-linux"),
    ("mcopy", "mtools"),
    ("mkfs.btrfs", "btrfs-progs"),
    ("mkfs.xfs", "xfsprogs"),
    ("cryptsetup", "cryptsetup-bin"),
    ("pvcreate", "lvm2"),
    ("genisoimage", "genisoimage"),
];

/// Finds `tool` on PATH or in the sbin directories; an error names the package to install.
pub fn require(tool: &str) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(d));
    }
    for d in dirs {
        let p = d.join(tool);
        if p.is_file() {
            return Ok(p);
        }
    }
    let pkg = TOOL_PACKAGES
        .iter()
        .find(|(t, _)| *t == tool)
        .map(|(_, p)| *p)
        .unwrap_or("?");
    bail!("test prerequisite `{tool}` is missing: install the Debian package `{pkg}` (or run `cargo xtask deps`)")
}

/// Runs `tool args...`, failing with its stderr when it exits non-zero. Returns stdout.
pub fn run(tool: &str, args: &[&str]) -> Result<String> {
    let path = require(tool)?;
    let out = Command::new(&path)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `tool args...` and returns (exit code, stdout+stderr) without failing on non-zero exit:
/// for checkers such as `e2fsck -fn` whose exit code is the verdict.
pub fn run_status(tool: &str, args: &[&str]) -> Result<(i32, String)> {
    let path = require(tool)?;
    let out = Command::new(&path)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("running {tool}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

/// Creates (or truncates) a sparse file of `size` bytes.
pub fn sparse_file(path: &Path, size: u64) -> Result<()> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(size)
        .with_context(|| format!("sizing {}", path.display()))?;
    Ok(())
}

/// Copies the whole of `src` into `dst` at byte `offset` (like `dd conv=notrunc seek=`),
/// keeping holes: all-zero 64 KiB blocks are skipped.
pub fn write_into(dst: &Path, offset: u64, src: &Path) -> Result<()> {
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut out = OpenOptions::new()
        .write(true)
        .open(dst)
        .with_context(|| format!("opening {}", dst.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut pos = offset;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            out.seek(SeekFrom::Start(pos))?;
            out.write_all(&buf[..n])?;
        }
        pos += n as u64;
    }
    Ok(())
}

/// Overwrites `bytes` at `offset` of an existing file (to damage fixtures on purpose).
pub fn poke(path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(bytes)?;
    Ok(())
}

/// The kinds of file system the fixtures can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mkfs {
    Ext2,
    Ext3,
    Ext4,
    Fat12,
    Fat16,
    Fat32,
    Exfat,
    Ntfs,
    Swap,
    Btrfs,
    Xfs,
}

/// Makes a file system image of `size` bytes at `path` with `label` using the real mkfs tool.
/// `extra` is appended to the tool's arguments before the path.
pub fn mkfs(kind: Mkfs, path: &Path, size: u64, label: &str, extra: &[&str]) -> Result<()> {
    sparse_file(path, size)?;
    let p = path.to_str().context("non-UTF-8 path")?;
    let mut args: Vec<&str> = Vec::new();
    let tool = match kind {
        Mkfs::Ext2 | Mkfs::Ext3 | Mkfs::Ext4 => {
            let t = match kind {
                Mkfs::Ext2 => "ext2",
                Mkfs::Ext3 => "ext3",
                _ => "ext4",
            };
            args.extend(["-q", "-F", "-t", t, "-L", label]);
            "mke2fs"
        }
        Mkfs::Fat12 | Mkfs::Fat16 | Mkfs::Fat32 => {
            let bits = match kind {
                Mkfs::Fat12 => "12",
                Mkfs::Fat16 => "16",
                _ => "32",
            };
            args.extend(["-F", bits, "-n", label]);
            "mkfs.vfat"
        }
        Mkfs::Exfat => {
            args.extend(["-L", label]);
            "mkfs.exfat"
        }
        Mkfs::Ntfs => {
            args.extend(["-q", "-F", "-f", "-L", label]);
            "mkntfs"
        }
        Mkfs::Swap => {
            args.extend(["-L", label]);
            "mkswap"
        }
        Mkfs::Btrfs => {
            args.extend(["-q", "-f", "-L", label]);
            "mkfs.btrfs"
        }
        Mkfs::Xfs => {
            args.extend(["-q", "-f", "-L", label]);
            "mkfs.xfs"
        }
    };
    args.extend_from_slice(extra);
    args.push(p);
    run(tool, &args)?;
    Ok(())
}
