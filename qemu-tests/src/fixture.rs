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
    ("vgcreate", "lvm2"),
    ("lvcreate", "lvm2"),
    ("lvextend", "lvm2"),
    ("lvs", "lvm2"),
    ("pvs", "lvm2"),
    ("vgs", "lvm2"),
    ("pvck", "lvm2"),
    ("vgcfgbackup", "lvm2"),
    ("genisoimage", "genisoimage"),
    ("sha256sum", "coreutils"),
    ("debugfs", "e2fsprogs"),
    ("ntfscat", "ntfs-3g"),
    ("ntfsfix", "ntfs-3g"),
    ("mtype", "mtools"),
    ("resize2fs", "e2fsprogs"),
    ("dumpe2fs", "e2fsprogs"),
    ("e2image", "e2fsprogs"),
    ("zstd", "zstd"),
    ("losetup", "mount"),
    ("grub-mkimage", "grub-common"),
    ("grub-mkstandalone", "grub-common"),
    ("cpio", "cpio"),
    ("pgrep", "procps"),
    ("xfs_repair", "xfsprogs"),
    ("xfs_db", "xfsprogs"),
    ("xfs_io", "xfsprogs"),
    ("btrfs", "btrfs-progs"),
    ("mount", "mount"),
    ("umount", "mount"),
    // the lab LAN (issue 19, `lab`)
    ("ip", "iproute2"),
    ("dnsmasq", "dnsmasq-base"),
    ("busybox", "busybox-static"),
    // https:// stores (issue 17): certificates made at test time, a real HTTPS server
    ("openssl", "openssl"),
    ("nginx", "nginx"),
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
///
/// An `sgdisk` that creates partitions is checked as [`sgdisk`] describes, whoever calls it.
pub fn run(tool: &str, args: &[&str]) -> Result<String> {
    let creates = tool == "sgdisk" && !sgdisk_new_partitions(args).is_empty();
    if creates && args.iter().any(|a| *a == "-q" || *a == "--quiet") {
        bail!("sgdisk -q writes nothing on a fresh file (sgdisk 1.0.9): leave it out");
    }
    let out = run_unchecked(tool, args)?;
    if let (true, Some(disk)) = (creates, args.last()) {
        check_sgdisk_result(Path::new(disk), args)?;
    }
    Ok(out)
}

fn run_unchecked(tool: &str, args: &[&str]) -> Result<String> {
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

/// A LUKS volume made by `cryptsetup luksFormat` on a new sparse file of `size` bytes:
/// `version` is `luks1` or `luks2`, the passphrase is the content of `key_file`, `extra` goes
/// before the file name. The key slot uses 1000 PBKDF2 iterations so tests stay fast.
pub fn luks_format(
    img: &Path,
    size: u64,
    version: &str,
    key_file: &Path,
    extra: &[&str],
) -> Result<()> {
    sparse_file(img, size)?;
    let mut args = vec!["luksFormat", "--batch-mode", "--type", version];
    args.extend(["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]);
    args.extend(["--key-file", path(key_file)?]);
    args.extend(extra);
    args.push(path(img)?);
    run("cryptsetup", &args)?;
    Ok(())
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

/// A deterministic pseudo-random byte stream (xorshift), for file contents that do not compress
/// to nothing.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Fills `dir` with `count` files of varied sizes (some compressible text, some noise), a
/// subdirectory and a symlink. Returns the relative paths of the regular files.
pub fn file_tree(dir: &Path, count: usize) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir.join("docs/deeper"))?;
    let mut names = Vec::new();
    for i in 0..count {
        let name = match i % 3 {
            0 => format!("docs/note-{i}.txt"),
            1 => format!("docs/deeper/blob-{i}.bin"),
            _ => format!("file-{i}.dat"),
        };
        let len = (i * 7919) % 60_000 + 1;
        let data = if i % 2 == 0 {
            format!("line {i} of a text file that compresses well\n")
                .repeat(len / 40 + 1)
                .into_bytes()
        } else {
            noise(i as u64, len)
        };
        std::fs::write(dir.join(&name), data)?;
        names.push(name);
    }
    std::os::unix::fs::symlink("docs/note-0.txt", dir.join("link-to-note"))?;
    Ok(names)
}

/// Runs `sfdisk` on an image file with `script` on stdin. With `sector_size` 4096 the file is
/// attached to a loop device with 4096-byte logical sectors (sfdisk has no option for files).
pub fn sfdisk(disk: &Path, script: &str, sector_size: u32) -> Result<()> {
    use std::process::Stdio;
    let (target, loop_dev) = if sector_size == 512 {
        (disk.to_path_buf(), None)
    } else {
        let dev = run(
            "losetup",
            &[
                "--find",
                "--show",
                "--sector-size",
                &sector_size.to_string(),
                disk.to_str().context("non-UTF-8 path")?,
            ],
        )?;
        let dev = PathBuf::from(dev.trim());
        (dev.clone(), Some(dev))
    };
    let result = (|| -> Result<()> {
        let mut child = Command::new(require("sfdisk")?)
            .arg("-q")
            .arg("--no-reread")
            .arg(&target)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting sfdisk")?;
        child
            .stdin
            .take()
            .context("sfdisk stdin")?
            .write_all(script.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("sfdisk failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    })();
    if let Some(dev) = loop_dev {
        run("losetup", &["-d", dev.to_str().unwrap_or_default()])?;
    }
    result
}

/// The partition numbers an sgdisk command line creates (`-n2:0:0`, `-n 2:0:0`, `--new=2:0:0`).
pub fn sgdisk_new_partitions(args: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let spec = if let Some(rest) = a.strip_prefix("--new=") {
            Some(rest)
        } else if *a == "-n" || *a == "--new" {
            it.next().copied()
        } else {
            a.strip_prefix("-n").filter(|r| !r.is_empty())
        };
        if let Some(n) = spec.and_then(|s| s.split(':').next()?.parse().ok()) {
            out.push(n);
        }
    }
    out
}

/// Runs `sgdisk args... disk` and checks what it did: `sgdisk -v` finds no problem and `sgdisk
/// -p` lists every partition the arguments create. (sgdisk 1.0.9 with `-q` on a fresh file exits
/// 0 and writes no table at all, so `-q` is refused.) Returns the `sgdisk -p` listing.
/// [`run`]`("sgdisk", …)` applies the same checks.
pub fn sgdisk(disk: &Path, args: &[&str]) -> Result<String> {
    let mut all: Vec<&str> = args.to_vec();
    all.push(path(disk)?);
    run("sgdisk", &all)?;
    run_unchecked("sgdisk", &["-p", path(disk)?])
}

/// The checks of [`sgdisk`] on `disk` after `sgdisk args...`.
fn check_sgdisk_result(disk: &Path, args: &[&str]) -> Result<()> {
    let d = path(disk)?;
    let (code, verify) = run_status("sgdisk", &["-v", d])?;
    if code != 0 || !verify.contains("No problems found") {
        bail!(
            "sgdisk -v of {} after `sgdisk {}`:\n{verify}",
            disk.display(),
            args.join(" ")
        );
    }
    let table = run_unchecked("sgdisk", &["-p", d])?;
    let numbers: Vec<u32> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    for n in sgdisk_new_partitions(args) {
        if !numbers.contains(&n) {
            bail!(
                "partition {n} is missing from {} after `sgdisk {}`:\n{table}",
                disk.display(),
                args.join(" ")
            );
        }
    }
    Ok(())
}

/// Copies `len` bytes at `offset` of `src` into a new file `dst` (a partition out of a disk
/// image, for checkers that take no offset).
pub fn extract(src: &Path, offset: u64, len: u64, dst: &Path) -> Result<()> {
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    input.seek(SeekFrom::Start(offset))?;
    let mut out = File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    let copied = std::io::copy(&mut input.take(len), &mut out)?;
    if copied != len {
        bail!("{} ends before byte {}", src.display(), offset + len);
    }
    Ok(())
}

/// The SHA-256 of a file, by `sha256sum` (to tell "unchanged" and "equal").
pub fn sha256(path: &Path) -> Result<String> {
    let out = run("sha256sum", &[path.to_str().context("non-UTF-8 path")?])?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Size of a file in bytes.
pub fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("examining {}", path.display()))?
        .len())
}

/// A fresh, empty scratch directory `target/qemu-scratch/<name>` for one test's disks (removed
/// and recreated: a previous run's files are gone, a failed run's files stay until the next).
pub fn scratch(name: &str) -> Result<PathBuf> {
    let d = crate::vm::workspace_root()
        .join("target/qemu-scratch")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

/// A path as `&str` for tool arguments; a non-UTF-8 path is an error.
pub fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("non-UTF-8 path {}", p.display()))
}

/// Unmounts a FUSE file system (exfat-fuse, ntfs-3g) that `source` (its device or image path)
/// was mounted from, and waits until its daemon has written everything and exited: `umount`
/// answers "target is busy" while the daemon still handles the last `release` of a file just
/// closed (exfat-fuse zero-fills up to the end of a file written past its valid length: gigabytes
/// for a file written at 4 GiB), and returns before a daemon whose source is not a block device
/// has finished writing. Gives up after 5 minutes.
pub fn fuse_unmount(mountpoint: &Path, source: &str) -> Result<()> {
    use std::time::{Duration, Instant};
    let _ = run_status("sync", &[]);
    let mp = mountpoint.to_str().context("non-UTF-8 path")?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (code, out) = run_status("umount", &[mp])?;
        if code == 0 {
            break;
        }
        if Instant::now() >= deadline {
            bail!("umount {mp} kept failing for 5 minutes: {out}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // The source as a whole word of the daemon's command line (`/dev/loop3`, not `/dev/loop30`).
    let pattern = format!("{source}( |$)");
    while run_status("pgrep", &["-f", &pattern])?.0 == 0 {
        if Instant::now() >= deadline {
            bail!("the FUSE daemon of {source} did not exit within 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A file-system image mounted by the kernel through a loop device (needs root). Unmounted, and
/// its loop device released, by [`KernelMount::unmount`] or when dropped.
#[derive(Debug)]
pub struct KernelMount {
    point: PathBuf,
    mounted: bool,
}

impl KernelMount {
    /// `mount -o loop,OPTIONS IMAGE POINT` (`POINT` is created when missing).
    pub fn new(image: &Path, point: &Path, options: &str) -> Result<Self> {
        std::fs::create_dir_all(point).with_context(|| format!("creating {}", point.display()))?;
        let opts = if options.is_empty() {
            "loop".to_string()
        } else {
            format!("loop,{options}")
        };
        run("mount", &["-o", &opts, path(image)?, path(point)?])?;
        Ok(KernelMount {
            point: point.to_path_buf(),
            mounted: true,
        })
    }

    /// Where the file system is mounted.
    pub fn path(&self) -> &Path {
        &self.point
    }

    /// Unmounts (the kernel writes everything back first). A test binary runs its tests on
    /// several threads: a child another test forks holds this process's descriptors (files in
    /// the mount among them) until it execs, so "target is busy" is retried for a few seconds
    /// before it is an error.
    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        let point = path(&self.point)?;
        for _ in 0..20 {
            let (code, out) = run_status("umount", &[point])?;
            if code == 0 {
                return Ok(());
            }
            if !out.contains("busy") {
                bail!("umount {point} failed (exit status {code}):\n{out}");
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        run("umount", &[point])?;
        Ok(())
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        if self.mounted {
            if let Some(p) = self.point.to_str() {
                let _ = run_status("umount", &[p]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgdisk_arguments_name_the_partitions_they_create() {
        assert_eq!(
            sgdisk_new_partitions(&["-n1:1M:+100M", "-t1:ef00", "-n", "2:0:0", "--new=3:0:+1M"]),
            vec![1, 2, 3]
        );
        assert!(sgdisk_new_partitions(&["-v", "-p"]).is_empty());
    }

    #[test]
    fn sgdisk_fixture_checks_the_table_it_wrote() {
        let dir = std::env::temp_dir().join(format!("lb-sgdisk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("d.img");
        sparse_file(&disk, 64 << 20).unwrap();
        let table = sgdisk(&disk, &["-n1:1M:+8M", "-t1:ef00", "-n2:0:0", "-c2:root"]).unwrap();
        assert!(table.contains("EF00") && table.contains("root"), "{table}");
        let quiet = sgdisk(&disk, &["-q", "-n3:0:0"]).unwrap_err().to_string();
        assert!(quiet.contains("-q writes nothing"), "{quiet}");
        let direct = run("sgdisk", &["-q", "-n3:0:0", path(&disk).unwrap()]).unwrap_err();
        assert!(direct.to_string().contains("-q writes nothing"), "{direct}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// One logical volume of a PV made by [`lvm_pv`]: where its bytes are, as the LVM tools report
/// them (`lvs --segments -o seg_start,seg_size,seg_pe_ranges`, `pvs -o pe_start`, `vgs -o
/// vg_extent_size`).
#[derive(Debug, Clone)]
pub struct LvmLv {
    pub name: String,
    pub uuid: String,
    pub size: u64,
    /// (LV offset, PV offset, length) in bytes, one per segment.
    pub pieces: Vec<(u64, u64, u64)>,
}

/// The `--config` that makes the LVM tools look at `dev` only and leave no metadata backups in
/// `/etc/lvm`.
fn lvm_config(dev: &str) -> String {
    format!(
        "devices {{ filter = [ \"a|^{dev}$|\", \"r|.*|\" ] use_devicesfile = 0 }} \
         backup {{ backup = 0 archive = 0 }}"
    )
}

/// Makes an LVM2 PV image of `size` bytes at `path` with volume group `vg` (4 MiB extents) by
/// the real tools on a loop device, without device-mapper: every LV is created inactive
/// (`--driverloaded n -an -Zn`). `lvs` gives (name, MiB, MiB added by a later `lvextend`): an
/// extension after the other LVs makes a second segment. Returns each LV's layout as the tools
/// report it. `vg` must be unique among concurrently running tests.
pub fn lvm_pv(path: &Path, size: u64, vg: &str, lvs: &[(&str, u64, u64)]) -> Result<Vec<LvmLv>> {
    sparse_file(path, size)?;
    let dev = run(
        "losetup",
        &["--find", "--show", path.to_str().context("non-UTF-8 path")?],
    )?;
    let dev = dev.trim().to_string();
    let result = (|| -> Result<Vec<LvmLv>> {
        let cfg = lvm_config(&dev);
        let lvm = |tool: &str, args: &[&str]| -> Result<String> {
            let mut a = vec!["--config", cfg.as_str()];
            a.extend_from_slice(args);
            run(tool, &a)
        };
        lvm("pvcreate", &["-ff", "-y", &dev])?;
        lvm("vgcreate", &["-s", "4M", vg, &dev])?;
        let inactive = ["--driverloaded", "n", "-an", "-Zn", "-Wn", "-y"];
        for (name, mib, _) in lvs {
            let mut a = inactive.to_vec();
            let l = format!("{mib}M");
            a.extend(["-L", &l, "-n", name, vg]);
            lvm("lvcreate", &a)?;
        }
        for (name, _, more) in lvs.iter().filter(|l| l.2 > 0) {
            let l = format!("+{more}M");
            let lv = format!("{vg}/{name}");
            lvm("lvextend", &["--driverloaded", "n", "-L", &l, &lv])?;
        }
        let nums = [
            "--units",
            "b",
            "--nosuffix",
            "--noheadings",
            "--separator",
            ";",
        ];
        let num = |s: &str| -> Result<u64> {
            s.trim()
                .parse()
                .with_context(|| format!("number {s:?} from the LVM tools"))
        };
        let mut a = nums.to_vec();
        a.extend(["-o", "pe_start", &dev]);
        let pe_start = num(&lvm("pvs", &a)?)?;
        let mut a = nums.to_vec();
        a.extend(["-o", "vg_extent_size", vg]);
        let extent = num(&lvm("vgs", &a)?)?;
        let mut a = nums.to_vec();
        a.extend([
            "--segments",
            "-o",
            "lv_name,lv_uuid,lv_size,seg_start,seg_size,seg_pe_ranges",
            vg,
        ]);
        let out = lvm("lvs", &a)?;
        let mut result: Vec<LvmLv> = Vec::new();
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.trim().split(';').collect();
            let [name, uuid, lv_size, seg_start, seg_size, ranges] = f[..] else {
                bail!("unexpected lvs line {line:?}");
            };
            // `/dev/loop0:5-6`
            let first = ranges
                .rsplit(':')
                .next()
                .and_then(|r| r.split('-').next())
                .context("PE range")?;
            let piece = (
                num(seg_start)?,
                pe_start + num(first)? * extent,
                num(seg_size)?,
            );
            match result.iter_mut().find(|l| l.name == name) {
                Some(l) => l.pieces.push(piece),
                None => result.push(LvmLv {
                    name: name.to_string(),
                    uuid: uuid.to_string(),
                    size: num(lv_size)?,
                    pieces: vec![piece],
                }),
            }
        }
        Ok(result)
    })();
    run("losetup", &["-d", &dev])?;
    result
}

/// Writes the image `src` (an LV's content) into the PV image `pv` at the LV's pieces.
pub fn write_lv(pv: &Path, lv: &LvmLv, src: &Path) -> Result<()> {
    let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    if data.len() as u64 > lv.size {
        bail!("{} is larger than LV {}", src.display(), lv.name);
    }
    for &(at, pv_off, len) in &lv.pieces {
        let end = (at + len).min(data.len() as u64);
        if at < end {
            poke(pv, pv_off, &data[at as usize..end as usize])?;
        }
    }
    Ok(())
}

/// Copies LV `lv` out of the PV image `pv` into a new file `dst`.
pub fn extract_lv(pv: &Path, lv: &LvmLv, dst: &Path) -> Result<()> {
    let mut input = File::open(pv).with_context(|| format!("opening {}", pv.display()))?;
    let mut out = File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    for &(_, pv_off, len) in &lv.pieces {
        input.seek(SeekFrom::Start(pv_off))?;
        let copied = std::io::copy(&mut (&mut input).take(len), &mut out)?;
        if copied != len {
            bail!("{} ends inside LV {}", pv.display(), lv.name);
        }
    }
    Ok(())
}

/// Runs an LVM tool on the PV image `pv` through a loop device (only that device visible; the
/// device is appended to `args` for `pvck`).
pub fn lvm_on(pv: &Path, tool: &str, args: &[&str]) -> Result<String> {
    let dev = run(
        "losetup",
        &["--find", "--show", pv.to_str().context("non-UTF-8 path")?],
    )?;
    let dev = dev.trim().to_string();
    let cfg = lvm_config(&dev);
    let mut a = vec!["--config", cfg.as_str()];
    a.extend_from_slice(args);
    if tool == "pvck" {
        a.push(&dev);
    }
    let out = run(tool, &a);
    run("losetup", &["-d", &dev])?;
    out
}

/// Makes a volume group `vg` (4 MiB extents) over new PV images of `size` bytes at each of
/// `paths` by the real tools on loop devices, then runs `lvcreate --driverloaded n -an -Zn -Wn
/// -y ARGS VG` for each entry of `lvs` (e.g. `["-i2", "-L", "16M", "-n", "st"]`). Returns
/// `lvs --segments -o lv_name,seg_pe_ranges` with each loop device replaced by the index of its
/// path (`span 0:2-14`).
pub fn lvm_vg(paths: &[&Path], size: u64, vg: &str, lvs: &[&[&str]]) -> Result<String> {
    let mut devs = Vec::new();
    let mut result = Ok(String::new());
    for p in paths {
        sparse_file(p, size)?;
        match run(
            "losetup",
            &["--find", "--show", p.to_str().context("non-UTF-8 path")?],
        ) {
            Ok(d) => devs.push(d.trim().to_string()),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        result = (|| -> Result<String> {
            let filter: Vec<String> = devs.iter().map(|d| format!("\"a|^{d}$|\"")).collect();
            let cfg = format!(
                "devices {{ filter = [ {}, \"r|.*|\" ] use_devicesfile = 0 }} \
                 backup {{ backup = 0 archive = 0 }}",
                filter.join(", ")
            );
            let lvm = |tool: &str, args: &[&str]| -> Result<String> {
                let mut a = vec!["--config", cfg.as_str()];
                a.extend_from_slice(args);
                run(tool, &a)
            };
            let mut a = vec!["-ff", "-y"];
            a.extend(devs.iter().map(String::as_str));
            lvm("pvcreate", &a)?;
            let mut a = vec!["-s", "4M", vg];
            a.extend(devs.iter().map(String::as_str));
            lvm("vgcreate", &a)?;
            for args in lvs {
                let mut a = vec!["--driverloaded", "n", "-an", "-Zn", "-Wn", "-y"];
                a.extend_from_slice(args);
                a.push(vg);
                lvm("lvcreate", &a)?;
            }
            let mut out = lvm(
                "lvs",
                &[
                    "--noheadings",
                    "--segments",
                    "-o",
                    "lv_name,seg_pe_ranges",
                    vg,
                ],
            )?;
            // Longest names first, so that /dev/loop1 does not match inside /dev/loop10.
            let mut order: Vec<(usize, &String)> = devs.iter().enumerate().collect();
            order.sort_by_key(|(_, d)| std::cmp::Reverse(d.len()));
            for (i, d) in order {
                out = out.replace(&format!("{d}:"), &format!("{i}:"));
            }
            Ok(out)
        })();
    }
    for d in &devs {
        run("losetup", &["-d", d])?;
    }
    result
}
