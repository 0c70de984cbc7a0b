//! `cargo xtask image`: the bootable Lifeboat ISO (BIOS + UEFI, CD + USB, Secure Boot) and the PXE
//! pair (vmlinuz + initramfs) under `target/lifeboat/` (or `LIFEBOAT_IMAGE_DIR`).
//!
//! Inputs are pinned and cached under `target/lifeboat-cache/`: Debian's kernel package and the
//! Secure Boot chain (`shim-signed`, `grub-efi-amd64-signed`), each by exact version and sha256,
//! extracted once. The initramfs holds `lifeboat-init` as `/init`, `lifeboat`, busybox with its
//! applet links, the tools of `initramfs/tools.txt` with their shared libraries, and the modules of
//! `initramfs/modules.txt` with their dependencies (copied as they are: they keep their signatures,
//! which a Secure Boot kernel needs to load them).
//!
//! The ISO is laid out by xorriso directly: BIOS boots GRUB's i386-pc El Torito image (CD) or
//! `boot_hybrid.img` in the MBR (USB); UEFI boots the El Torito EFI image, also the GPT EFI
//! partition of the USB stick, holding Debian's signed shim as `EFI/BOOT/BOOTX64.EFI` and Debian's
//! signed CD GRUB (`gcdx64.efi`) as `EFI/BOOT/grubx64.efi`. That GRUB finds the ISO by
//! `/.disk/info` and reads `/boot/grub/grub.cfg`, the same menu the BIOS GRUB reads.

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
/// The pinned first stage of the Secure Boot chain: Debian's shim, signed by Microsoft's UEFI CA.
pub const SHIM_PACKAGE: &str = "shim-signed";
pub const SHIM_VERSION: &str = "1.51~1+deb12u1+16.1-2~deb12u1";
pub const SHIM_SHA256: &str = "c2acf5e559664bbadb7ce5789f9a321f39754a34854d3097b8cc0369df513b3b";
/// The pinned second stage: Debian's GRUB signed by Debian's Secure Boot CA (which shim trusts).
pub const GRUB_SIGNED_PACKAGE: &str = "grub-efi-amd64-signed";
pub const GRUB_SIGNED_VERSION: &str = "1+2.06+13+deb12u2";
pub const GRUB_SIGNED_SHA256: &str =
    "fbe2b28166a6dca8111bbf6a30d52d4781973c3a0440d8080f901e039b1f83f2";
/// The signer each stage must carry (checked with `sbverify --list`).
const SIGNERS: &[(&str, &str)] = &[
    ("shim", "Microsoft Corporation UEFI CA 2011"),
    ("grub", "Debian Secure Boot Signer"),
    ("kernel", "Debian Secure Boot Signer"),
];
/// GRUB modules built into the BIOS boot image: everything `image-build/grub.cfg` uses, so GRUB
/// loads nothing from the medium (the signed UEFI GRUB has the same ones built in).
const BIOS_GRUB_MODULES: &[&str] = &[
    "biosdisk",
    "iso9660",
    "part_msdos",
    "part_gpt",
    "normal",
    "boot",
    "linux",
    "serial",
    "terminal",
    "all_video",
    "echo",
    "test",
    "search",
    "search_fs_file",
    "configfile",
    "sleep",
    "reboot",
    "halt",
];
/// Bumped when the ISO layout changes, so an unchanged initramfs still gets a new ISO.
const ISO_LAYOUT: u32 = 2;
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

/// `target/lifeboat/`, or `LIFEBOAT_IMAGE_DIR` (so parallel work trees' builds can keep apart).
pub fn out_dir() -> PathBuf {
    std::env::var_os("LIFEBOAT_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target/lifeboat"))
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
    let shim = pinned_deb(SHIM_PACKAGE, SHIM_VERSION, SHIM_SHA256)?;
    let grub = pinned_deb(GRUB_SIGNED_PACKAGE, GRUB_SIGNED_VERSION, GRUB_SIGNED_SHA256)?;
    let efi = EfiChain {
        shim: shim.join("usr/lib/shim/shimx64.efi.signed"),
        grub: grub.join("usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed"),
    };
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
        "{}\n{KERNEL_SHA256}\n{SHIM_SHA256}\n{GRUB_SIGNED_SHA256}\nlayout {ISO_LAYOUT}\n{}\n",
        sha256(&cpio)?,
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
        check_signatures(&efi, &o.vmlinuz)?;
        make_iso(&o, &efi)?;
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

/// Downloads (once), verifies and extracts (once) a pinned Debian package; returns the tree.
fn pinned_deb(package: &str, version: &str, expected: &str) -> Result<PathBuf> {
    let cache = cache_dir();
    fs::create_dir_all(&cache)?;
    // apt-get names the file with the epoch's colon escaped.
    let deb = cache.join(format!(
        "{package}_{}_amd64.deb",
        version.replace(':', "%3a")
    ));
    if !deb.exists() {
        crate::run(
            Command::new("apt-get")
                .args(["download", &format!("{package}={version}")])
                .current_dir(&cache),
        )
        .with_context(|| format!("downloading {package}={version} (is the Debian bookworm archive in apt's sources?)"))?;
    }
    let sum = sha256(&deb)?;
    if sum != expected {
        bail!(
            "{} has sha256 {sum}, expected {expected}: delete it and retry",
            deb.display()
        );
    }
    let tree = cache.join(format!("{package}-{version}"));
    let stamp = tree.join(".extracted");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(expected) {
        if tree.exists() {
            fs::remove_dir_all(&tree)?;
        }
        fs::create_dir_all(&tree)?;
        crate::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
        fs::write(&stamp, expected)?;
    }
    Ok(tree)
}

/// The pinned kernel package, extracted, with `depmod` run over its modules.
fn kernel_tree() -> Result<PathBuf> {
    let tree = pinned_deb(KERNEL_PACKAGE, KERNEL_VERSION, KERNEL_SHA256)?;
    let stamp = tree.join(".depmod");
    if !stamp.exists() {
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

/// Debian's signed UEFI boot loaders, as extracted from their packages.
struct EfiChain {
    shim: PathBuf,
    grub: PathBuf,
}

/// Fails unless shim, GRUB and the kernel each carry an Authenticode signature by the expected
/// signer: an unsigned file in the chain would only show up as a refusal on a Secure Boot PC.
fn check_signatures(efi: &EfiChain, kernel: &Path) -> Result<()> {
    for ((what, signer), file) in SIGNERS
        .iter()
        .zip([&efi.shim, &efi.grub, &kernel.to_path_buf()])
    {
        let out = Command::new("sbverify")
            .arg("--list")
            .arg(file)
            .output()
            .context("running sbverify (package sbsigntool)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains(signer) {
            bail!(
                "the {what} {} is not signed by {signer}; sbverify --list says:\n{text}",
                file.display()
            );
        }
    }
    Ok(())
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
    stage_firmware(root, &src, &files)?;
    Ok(())
}

/// Copies the firmware files the staged modules name (`modinfo -F firmware`, e.g. r8169's
/// `rtl_nic/rtl8168h-2.fw`) from the build machine's `/lib/firmware` (Debian's
/// `firmware-realtek`, `firmware-bnx2`, `firmware-misc-nonfree`) into the initramfs. Files that
/// are not installed are counted and named once: the driver then works without them where the
/// hardware allows (most r8169 chips do) or says so in the kernel log.
fn stage_firmware(root: &Path, modules: &Path, files: &BTreeSet<String>) -> Result<()> {
    let host = Path::new("/lib/firmware");
    let (mut copied, mut missing) = (0usize, BTreeSet::new());
    for f in files.iter().filter(|f| f.ends_with(".ko")) {
        let out = Command::new("modinfo")
            .args(["-F", "firmware"])
            .arg(modules.join(f))
            .output()
            .context("running modinfo (package kmod)")?;
        for name in String::from_utf8_lossy(&out.stdout).lines().map(str::trim) {
            if name.is_empty() || name.contains("..") {
                continue;
            }
            // Debian ships some firmware compressed; the kernel reads .xz/.zst when built to.
            let found = ["", ".xz", ".zst"]
                .iter()
                .map(|ext| host.join(format!("{name}{ext}")))
                .find(|p| p.is_file());
            match found {
                Some(p) => {
                    let rel_name = p.strip_prefix(host).unwrap_or(&p);
                    copy_exec(&p, &root.join("lib/firmware").join(rel_name))?;
                    copied += 1;
                }
                None => {
                    missing.insert(name.split('/').next().unwrap_or(name).to_string());
                }
            }
        }
    }
    eprintln!(
        "xtask: {copied} firmware files copied; not installed on this machine (directories): {}",
        if missing.is_empty() {
            "none".to_string()
        } else {
            missing.into_iter().collect::<Vec<_>>().join(" ")
        }
    );
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

/// Sets every mtime under `dir` to [`EPOCH`] (reproducible archives).
fn touch_epoch(dir: &Path) -> Result<()> {
    crate::run(Command::new("find").arg(dir).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        &format!("@{EPOCH}"),
        "{}",
        "+",
    ]))
}

/// The FAT image of the UEFI path (El Torito EFI image and GPT EFI partition): shim as the
/// removable-media boot loader and the signed CD GRUB beside it, where shim looks for it.
fn make_efi_image(efi: &EfiChain, work: &Path, out: &Path) -> Result<()> {
    let files = work.join("efi-files");
    if files.exists() {
        fs::remove_dir_all(&files)?;
    }
    fs::create_dir_all(&files)?;
    let shim = files.join("BOOTX64.EFI");
    let grub = files.join("grubx64.efi");
    fs::copy(&efi.shim, &shim).context("copying shim")?;
    fs::copy(&efi.grub, &grub).context("copying the signed GRUB")?;
    touch_epoch(&files)?;
    let need = fs::metadata(&shim)?.len() + fs::metadata(&grub)?.len();
    // FAT12/16 overhead, rounded up to whole MiB.
    let kib = (need / 1024 + 512).div_ceil(1024) * 1024;
    let _ = fs::remove_file(out);
    let img = out.to_str().context("non-UTF-8 output path")?;
    crate::run(
        Command::new("mkfs.vfat")
            .args([
                "-C",
                "-n",
                "LIFEBOATEFI",
                "-i",
                "4c494645",
                "--invariant",
                img,
            ])
            .arg(kib.to_string()),
    )
    .context("making the EFI system partition image")?;
    let mtools = |args: &[&str]| {
        crate::run(
            Command::new(args[0])
                .args(&args[1..])
                .env("MTOOLS_SKIP_CHECK", "1")
                .env("SOURCE_DATE_EPOCH", EPOCH),
        )
    };
    mtools(&["mmd", "-i", img, "::/EFI", "::/EFI/BOOT"])?;
    for f in [&shim, &grub] {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let src = f.to_str().context("non-UTF-8 path")?;
        mtools(&[
            "mcopy",
            "-m",
            "-i",
            img,
            src,
            &format!("::/EFI/BOOT/{name}"),
        ])?;
    }
    Ok(())
}

/// GRUB's BIOS El Torito image with the modules of [`BIOS_GRUB_MODULES`] built in.
fn make_bios_image(out: &Path) -> Result<()> {
    crate::run(
        Command::new("grub-mkimage")
            .args(["-O", "i386-pc-eltorito", "-d", "/usr/lib/grub/i386-pc"])
            .args(["-p", "/boot/grub", "-o"])
            .arg(out)
            .args(BIOS_GRUB_MODULES),
    )
    .context("grub-mkimage for BIOS")
}

fn make_iso(o: &Outputs, efi: &EfiChain) -> Result<()> {
    let out = out_dir();
    let stage = out.join("iso-root");
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    fs::create_dir_all(stage.join("boot/grub/i386-pc"))?;
    fs::create_dir_all(stage.join(".disk"))?;
    fs::copy(&o.vmlinuz, stage.join("boot/vmlinuz"))?;
    fs::copy(&o.initramfs, stage.join("boot/initramfs.img"))?;
    let template = fs::read_to_string(crate::workspace_root().join("image-build/grub.cfg"))
        .context("reading image-build/grub.cfg")?;
    let cfg = template
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace("@LABEL@", VOLUME_LABEL);
    fs::write(stage.join("boot/grub/grub.cfg"), cfg)?;
    let id = format!("Lifeboat {}\n", env!("CARGO_PKG_VERSION"));
    // The signed UEFI GRUB finds its root by this file.
    fs::write(stage.join(".disk/info"), &id)?;
    fs::write(
        stage.join(".lifeboat"),
        format!("lifeboat {}\n", env!("CARGO_PKG_VERSION")),
    )?;
    make_bios_image(&stage.join("boot/grub/i386-pc/eltorito.img"))?;
    make_efi_image(efi, &out, &stage.join("boot/grub/efi.img"))?;
    touch_epoch(&stage)?;
    let _ = fs::remove_file(&o.iso);
    let mut cmd = Command::new("xorriso");
    cmd.args(["-as", "mkisofs", "-quiet", "-r", "-V", VOLUME_LABEL])
        .args(["-o"])
        .arg(&o.iso)
        // USB on BIOS: GRUB's MBR, which loads the El Torito image's core from the stick.
        .args(["--grub2-mbr", "/usr/lib/grub/i386-pc/boot_hybrid.img"])
        .args(["--protective-msdos-label", "-partition_cyl_align", "off"])
        // USB on UEFI: a GPT partition over the EFI image.
        .args(["-efi-boot-part", "--efi-boot-image"])
        .args(["-c", "/boot/grub/boot.cat"])
        // CD on BIOS.
        .args(["-b", "/boot/grub/i386-pc/eltorito.img", "-no-emul-boot"])
        .args([
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "--grub2-boot-info",
        ])
        // CD on UEFI.
        .args([
            "-eltorito-alt-boot",
            "-e",
            "/boot/grub/efi.img",
            "-no-emul-boot",
        ])
        .arg(&stage)
        .env("SOURCE_DATE_EPOCH", EPOCH);
    crate::run(&mut cmd).context("xorriso")
}
