//! `cargo xtask image`: the bootable Lifeboat ISO (BIOS + UEFI, CD + USB) and the PXE pair
//! (vmlinuz + initramfs) under `target/lifeboat/`.
//!
//! Inputs are pinned and cached under `target/lifeboat-cache/`: Debian's kernel package (exact
//! version and sha256), extracted once. The initramfs holds `lifeboat-init` as `/init`,
//! `lifeboat`, busybox with its applet links, the tools of `initramfs/tools.txt` with their shared
//! libraries, and the modules of `initramfs/modules.txt` with their dependencies.

use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned kernel: Debian bookworm's 6.1 package.
pub const KERNEL_PACKAGE: &str = "linux-image-6.1.0-50-amd64";
pub const KERNEL_VERSION: &str = "6.1.176-1";
pub const KERNEL_RELEASE: &str = "6.1.0-50-amd64";
pub const KERNEL_SHA256: &str = "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3";
/// ISO9660 volume label; `lifeboat-init` finds the boot medium by it.
pub const VOLUME_LABEL: &str = "LIFEBOAT";
/// Size budget of the ISO.
const MAX_ISO_BYTES: u64 = 64 << 20;
/// Fixed timestamp for reproducible archives (2024-01-01).
const EPOCH: &str = "1704067200";

const MUSL: &str = "x86_64-unknown-linux-musl";

/// Where everything `image` makes ends up.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub iso: PathBuf,
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
}

pub fn out_dir() -> PathBuf {
    crate::workspace_root().join("target/lifeboat")
}

fn cache_dir() -> PathBuf {
    crate::workspace_root().join("target/lifeboat-cache")
}

/// The paths `image` writes, whether or not they exist yet.
pub fn outputs() -> Outputs {
    let d = out_dir();
    Outputs {
        iso: d.join("lifeboat.iso"),
        vmlinuz: d.join("vmlinuz"),
        initramfs: d.join("initramfs.img"),
    }
}

/// Builds everything; returns the output paths.
pub fn build() -> Result<Outputs> {
    crate::deps::install()?;
    let t0 = std::time::Instant::now();
    let kernel = kernel_tree()?;
    let bins = build_binaries()?;
    let out = out_dir();
    fs::create_dir_all(&out)?;
    let root = out.join("initramfs-root");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    fs::create_dir_all(&root)?;
    stage_base(&root, &bins)?;
    stage_busybox(&root)?;
    stage_tools(&root)?;
    stage_modules(&root, &kernel)?;
    let o = outputs();
    fs::copy(
        kernel.join(format!("boot/vmlinuz-{KERNEL_RELEASE}")),
        &o.vmlinuz,
    )
    .context("copying vmlinuz")?;
    let cpio = out.join("initramfs.cpio");
    write_cpio(&root, &cpio)?;
    // Skip the slow compression and ISO steps when nothing that goes into them changed.
    let fingerprint = format!(
        "{}\n{}\n{}\n",
        sha256(&cpio)?,
        KERNEL_SHA256,
        sha256(&crate::workspace_root().join("image-build/grub.cfg"))?
    );
    let stamp = out.join(".fingerprint");
    let fresh = fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint)
        && o.iso.is_file()
        && o.initramfs.is_file();
    if fresh {
        eprintln!("xtask: initramfs and ISO unchanged, kept");
    } else {
        let _ = fs::remove_file(&stamp);
        compress(&cpio, &o.initramfs)?;
        make_iso(&o)?;
        fs::write(&stamp, fingerprint)?;
    }
    let iso_len = fs::metadata(&o.iso)?.len();
    let initrd_len = fs::metadata(&o.initramfs)?.len();
    eprintln!(
        "xtask: image ready in {:.0} s\n  {} ({:.1} MiB)\n  {} ({:.1} MiB)\n  {}",
        t0.elapsed().as_secs_f64(),
        o.iso.display(),
        iso_len as f64 / 1048576.0,
        o.initramfs.display(),
        initrd_len as f64 / 1048576.0,
        o.vmlinuz.display()
    );
    if iso_len > MAX_ISO_BYTES {
        bail!(
            "{} is {iso_len} bytes, over the {MAX_ISO_BYTES}-byte budget",
            o.iso.display()
        );
    }
    Ok(o)
}

fn sha256(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Downloads (once), verifies and extracts (once) the pinned kernel package; returns the tree.
fn kernel_tree() -> Result<PathBuf> {
    let cache = cache_dir();
    fs::create_dir_all(&cache)?;
    let deb = cache.join(format!("{KERNEL_PACKAGE}_{KERNEL_VERSION}_amd64.deb"));
    if !deb.exists() {
        crate::run(
            Command::new("apt-get")
                .args(["download", &format!("{KERNEL_PACKAGE}={KERNEL_VERSION}")])
                .current_dir(&cache),
        )
        .with_context(|| format!("downloading {KERNEL_PACKAGE}={KERNEL_VERSION} (is the Debian bookworm archive in apt's sources?)"))?;
    }
    let sum = sha256(&deb)?;
    if sum != KERNEL_SHA256 {
        bail!(
            "{} has sha256 {sum}, expected {KERNEL_SHA256}: delete it and retry",
            deb.display()
        );
    }
    let tree = cache.join(format!("kernel-{KERNEL_VERSION}"));
    let stamp = tree.join(".extracted");
    if !stamp.exists() {
        if tree.exists() {
            fs::remove_dir_all(&tree)?;
        }
        fs::create_dir_all(&tree)?;
        crate::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
        crate::run(
            Command::new("depmod")
                .arg("-b")
                .arg(&tree)
                .arg(KERNEL_RELEASE),
        )?;
        fs::write(&stamp, KERNEL_SHA256)?;
    }
    Ok(tree)
}

struct Binaries {
    init: PathBuf,
    lifeboat: PathBuf,
}

fn build_binaries() -> Result<Binaries> {
    crate::cargo(&[
        "build",
        "--release",
        "--target",
        MUSL,
        "-p",
        "init",
        "-p",
        "cli",
    ])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    let dir = target.join(MUSL).join("release");
    let b = Binaries {
        init: dir.join("lifeboat-init"),
        lifeboat: dir.join("lifeboat"),
    };
    for p in [&b.init, &b.lifeboat] {
        if !p.is_file() {
            bail!("{} was not built", p.display());
        }
    }
    Ok(b)
}

fn copy_exec(src: &Path, dst: &Path) -> Result<()> {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(src, dst)
        .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    Ok(())
}

/// Strips the leading `/` so a host path can be joined under the staging root.
fn rel(p: &Path) -> &Path {
    p.strip_prefix("/").unwrap_or(p)
}

fn stage_base(root: &Path, bins: &Binaries) -> Result<()> {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "run", "tmp",
        "mnt", "lib", "lib64", "var",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    copy_exec(&bins.init, &root.join("init"))?;
    copy_exec(&bins.lifeboat, &root.join("bin/lifeboat"))?;
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(root.join("etc/group"), "root:x:0:\ntty:x:5:\ndisk:x:6:\n")?;
    fs::write(root.join("etc/hostname"), "lifeboat\n")?;
    fs::write(root.join("etc/profile"), "export PS1='lifeboat:\\w# '\n")?;
    std::os::unix::fs::symlink("/proc/mounts", root.join("etc/mtab"))?;
    std::os::unix::fs::symlink("/run", root.join("var/run"))?;
    // Static files kept in the repository (initramfs/rootfs/), copied over the base.
    let extra = crate::workspace_root().join("initramfs/rootfs");
    if extra.is_dir() {
        crate::run(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", extra.display()))
                .arg(root),
        )?;
    }
    Ok(())
}

fn stage_busybox(root: &Path) -> Result<()> {
    let bb = Path::new("/bin/busybox");
    copy_exec(bb, &root.join("bin/busybox"))?;
    let out = Command::new(bb)
        .arg("--list-full")
        .output()
        .context("running busybox --list-full")?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let link = root.join(applet);
        if applet.is_empty() || link.exists() || link.is_symlink() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink("/bin/busybox", &link)?;
    }
    Ok(())
}

/// Shared libraries `bin` needs, as reported by ldd (absolute paths).
fn elf_deps(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            v.push(PathBuf::from(p));
        }
    }
    Ok(v)
}

fn stage_tools(root: &Path) -> Result<()> {
    let list = fs::read_to_string(crate::workspace_root().join("initramfs/tools.txt"))
        .context("reading initramfs/tools.txt")?;
    let mut libs = BTreeSet::new();
    for line in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let p = Path::new(line);
        if !p.is_file() {
            bail!("{line} (from initramfs/tools.txt) is missing on this machine: run `cargo xtask deps`");
        }
        let dst = root.join(rel(p));
        if dst.is_symlink() {
            fs::remove_file(&dst)?; // replaces a busybox applet of the same name
        }
        copy_exec(p, &dst)?;
        libs.extend(elf_deps(p)?);
    }
    for lib in &libs {
        let dst = root.join(rel(lib));
        if !dst.exists() {
            copy_exec(lib, &dst)?; // fs::copy follows symlinks: the real file under the soname
        }
    }
    // Names the file-system tools are usually called by.
    for (link, target) in [
        ("usr/sbin/mkfs.ext4", "mke2fs"),
        ("usr/sbin/mkfs.ext2", "mke2fs"),
        ("usr/sbin/fsck.ext4", "e2fsck"),
        ("usr/sbin/e2label", "tune2fs"),
        ("usr/sbin/mkfs.vfat", "mkfs.fat"),
        ("usr/sbin/fsck.vfat", "fsck.fat"),
        ("usr/sbin/mount.ntfs-3g", "/usr/bin/ntfs-3g"),
        ("usr/sbin/mount.ntfs", "/usr/bin/ntfs-3g"),
    ] {
        let l = root.join(link);
        if l.is_symlink() || l.exists() {
            fs::remove_file(&l)?;
        }
        std::os::unix::fs::symlink(target, &l)?;
    }
    crate::run(Command::new("ldconfig").arg("-r").arg(root))
        .context("ldconfig -r for the initramfs")?;
    Ok(())
}

fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    canonical(file.split(".ko").next().unwrap_or(file))
}

fn stage_modules(root: &Path, kernel: &Path) -> Result<()> {
    let src = kernel.join("lib/modules").join(KERNEL_RELEASE);
    let dep = fs::read_to_string(src.join("modules.dep"))
        .context("reading modules.dep of the kernel package")?;
    let builtin = fs::read_to_string(src.join("modules.builtin")).unwrap_or_default();
    let builtin: BTreeSet<String> = builtin.lines().map(module_name).collect();
    let mut table = std::collections::BTreeMap::new();
    for line in dep.lines() {
        if let Some((path, deps)) = line.split_once(':') {
            let deps: Vec<String> = deps.split_whitespace().map(str::to_string).collect();
            table.insert(module_name(path), (path.to_string(), deps));
        }
    }
    let list = fs::read_to_string(crate::workspace_root().join("initramfs/modules.txt"))
        .context("reading initramfs/modules.txt")?;
    let mut files = BTreeSet::new();
    for name in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let n = canonical(name);
        match table.get(&n) {
            Some((path, deps)) => {
                files.insert(path.clone());
                files.extend(deps.iter().cloned());
            }
            None if builtin.contains(&n) => eprintln!("xtask: module {name} is built into {KERNEL_RELEASE}"),
            None => bail!("module {name} (initramfs/modules.txt) is neither a module nor built into {KERNEL_RELEASE}"),
        }
    }
    let dst = root.join("lib/modules").join(KERNEL_RELEASE);
    for f in &files {
        let from = src.join(f);
        if f.ends_with(".ko") {
            copy_exec(&from, &dst.join(f))?;
        } else {
            // Compressed modules: init loads plain files, so decompress here.
            bail!("module {f} is compressed; add decompression for this kernel");
        }
    }
    for f in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        if src.join(f).exists() {
            fs::copy(src.join(f), dst.join(f))?;
        }
    }
    crate::run(
        Command::new("depmod")
            .arg("-b")
            .arg(root)
            .arg(KERNEL_RELEASE),
    )?;
    eprintln!("xtask: {} module files", files.len());
    Ok(())
}

/// A newc cpio of `root`, with sorted names and fixed times (reproducible).
fn write_cpio(root: &Path, out: &Path) -> Result<()> {
    crate::run(Command::new("find").arg(root).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        &format!("@{EPOCH}"),
        "{}",
        "+",
    ]))?;
    let script = format!(
        "set -o pipefail; cd '{}' && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible > '{}'",
        root.display(),
        out.display()
    );
    crate::run(Command::new("bash").arg("-c").arg(script)).context("writing the initramfs cpio")
}

/// zstd -19 of the cpio: the kernel's initramfs decompressor reads it.
fn compress(cpio: &Path, out: &Path) -> Result<()> {
    crate::run(
        Command::new("zstd")
            .args(["-q", "-19", "-T0", "-f", "-o"])
            .arg(out)
            .arg(cpio),
    )
    .context("compressing the initramfs")
}

fn make_iso(o: &Outputs) -> Result<()> {
    let stage = out_dir().join("iso-root");
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    fs::create_dir_all(stage.join("boot/grub"))?;
    fs::copy(&o.vmlinuz, stage.join("boot/vmlinuz"))?;
    fs::copy(&o.initramfs, stage.join("boot/initramfs.img"))?;
    let template = fs::read_to_string(crate::workspace_root().join("image-build/grub.cfg"))
        .context("reading image-build/grub.cfg")?;
    let cfg = template
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace("@LABEL@", VOLUME_LABEL);
    fs::write(stage.join("boot/grub/grub.cfg"), cfg)?;
    fs::write(
        stage.join(".lifeboat"),
        format!("lifeboat {}\n", env!("CARGO_PKG_VERSION")),
    )?;
    crate::run(Command::new("find").arg(&stage).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        &format!("@{EPOCH}"),
        "{}",
        "+",
    ]))?;
    let mut cmd = Command::new("grub-mkrescue");
    cmd.arg("-o")
        .arg(&o.iso)
        .arg("--compress=xz")
        .args(["--fonts=", "--locales=", "--themes="])
        .arg(&stage)
        .args(["--", "-volid", VOLUME_LABEL])
        .env("SOURCE_DATE_EPOCH", EPOCH);
    crate::run(&mut cmd).context("grub-mkrescue")
}
