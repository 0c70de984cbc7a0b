//! A small bootable system disk for the end-to-end scenarios, made by the real tools: GPT with an
//! EFI system partition (FAT32, `mkfs.vfat` + `mcopy`) holding a standalone GRUB loader
//! (`grub-mkstandalone -O x86_64-efi` with an embedded `grub.cfg`), and an ext4 root
//! (`mkfs.ext4 -d`) holding the same Debian kernel as the Lifeboat image, a tiny busybox initramfs
//! and some user files.
//!
//! The initramfs's `/init` prints [`MARKER`] followed by the root file system's UUID on the console
//! and powers off, so "the disk boots" is a line on the serial console. GRUB finds the root by its
//! label, so a restored or cloned disk boots wherever the partition landed.
//!
//! [`mbr_bios`] is the same system on an MBR disk for BIOS machines: GRUB i386-pc's `boot.img` in
//! the MBR's code area and its `core.img` (`grub-mkimage -O i386-pc` with an embedded
//! configuration) in the gap between the MBR and the first partition, as `grub-bios-setup` lays
//! them out, and one bootable ext4 partition with the same root tree.
//!
//! The disks are built once per kernel and cached under `target/e2e-fixtures/`; tests copy them
//! with [`copy_sparse`] and never write to the cached files.

use crate::fixture::{noise, run, sparse_file, write_into};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What the system disk prints on the console when it booted.
pub const MARKER: &str = "LIFEBOAT-E2E-MARKER";
/// The ext4 root file system's UUID (printed after [`MARKER`]).
pub const ROOT_UUID: &str = "5e2e0b07-1f3b-4c2a-9d6e-0123456789ab";
/// The ext4 root file system's label (GRUB searches for it).
pub const ROOT_LABEL: &str = "E2EROOT";
/// Size of the whole disk.
pub const DISK_BYTES: u64 = 192 << 20;
/// Bumped whenever the recipe below changes, so a stale cached disk is rebuilt.
const RECIPE: u32 = 1;

/// The user files on the root file system: (path relative to the root, length, noise seed).
pub const USER_FILES: &[(&str, usize, u64)] = &[
    ("home/user/Documents/letter.txt", 4_000, 1),
    ("home/user/Documents/report.bin", 3 << 20, 2),
    ("home/user/Documents/photos/a.raw", 5 << 20, 3),
    ("home/user/Documents/photos/b.raw", 7 << 20, 4),
    ("home/user/music/song.bin", 9 << 20, 5),
    ("var/lib/data.bin", 11 << 20, 6),
];

/// A cached, bootable system disk.
#[derive(Debug, Clone)]
pub struct SystemDisk {
    /// The cached image: read it or copy it, never write it.
    pub path: PathBuf,
    /// The root file system's content tree the disk was made from (user files included).
    pub root_tree: PathBuf,
}

/// The line the disk prints when it booted.
pub fn marker_line() -> String {
    format!("{MARKER} {ROOT_UUID}")
}

static BUILD: Mutex<()> = Mutex::new(());

/// Returns the cached GPT + UEFI system disk, building it first if needed. `vmlinuz` is the
/// kernel to install (the Lifeboat image's own).
pub fn gpt_uefi(vmlinuz: &Path) -> Result<SystemDisk> {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let key = &crate::fixture::sha256(vmlinuz)?[..16];
    let dir = crate::vm::workspace_root()
        .join("target/e2e-fixtures")
        .join(format!("gpt-uefi-{RECIPE}-{key}"));
    let disk = dir.join("system.img");
    let tree = dir.join("root");
    if disk.is_file() && tree.is_dir() {
        return Ok(SystemDisk {
            path: disk,
            root_tree: tree,
        });
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let work = dir.join("work");
    std::fs::create_dir_all(&work)?;
    populate_root(&tree, vmlinuz, &work)?;
    let esp = work.join("esp.img");
    make_esp(&esp, &work)?;
    let rootfs = work.join("root.img");
    let tmp = dir.join("system.img.part");
    sparse_file(&tmp, DISK_BYTES)?;
    crate::fixture::sgdisk(
        &tmp,
        &[
            "-n1:1M:+40M",
            "-t1:ef00",
            "-c1:EFI system",
            "-n2:0:0",
            "-t2:8300",
            "-c2:root",
        ],
    )?;
    let (start, last) = partition_range(&tmp, 2)?;
    let root_bytes = (last + 1 - start) * 512;
    sparse_file(&rootfs, root_bytes)?;
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            ROOT_LABEL,
            "-U",
            ROOT_UUID,
            "-d",
            p(&tree)?,
            p(&rootfs)?,
        ],
    )?;
    let (esp_start, _) = partition_range(&tmp, 1)?;
    write_into(&tmp, esp_start * 512, &esp)?;
    write_into(&tmp, start * 512, &rootfs)?;
    std::fs::rename(&tmp, &disk)?;
    std::fs::remove_dir_all(&work)?;
    Ok(SystemDisk {
        path: disk,
        root_tree: tree,
    })
}

/// Size of the MBR/BIOS disk.
pub const MBR_DISK_BYTES: u64 = 128 << 20;

/// Returns the cached MBR + BIOS (GRUB i386-pc) system disk, building it first if needed. Its
/// root file system holds the same tree as [`gpt_uefi`]'s (same label and UUID, same marker).
pub fn mbr_bios(vmlinuz: &Path) -> Result<SystemDisk> {
    let gpt = gpt_uefi(vmlinuz)?;
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let key = &crate::fixture::sha256(vmlinuz)?[..16];
    let dir = crate::vm::workspace_root()
        .join("target/e2e-fixtures")
        .join(format!("mbr-bios-{RECIPE}-{key}"));
    let disk = dir.join("system.img");
    if disk.is_file() {
        return Ok(SystemDisk {
            path: disk,
            root_tree: gpt.root_tree,
        });
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let work = dir.join("work");
    std::fs::create_dir_all(&work)?;
    let tmp = dir.join("system.img.part");
    sparse_file(&tmp, MBR_DISK_BYTES)?;
    crate::fixture::sfdisk(&tmp, "label: dos\nstart=2048, type=83, bootable\n", 512)?;
    let rootfs = work.join("root.img");
    sparse_file(&rootfs, MBR_DISK_BYTES - (1 << 20))?;
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            ROOT_LABEL,
            "-U",
            ROOT_UUID,
            "-d",
            p(&gpt.root_tree)?,
            p(&rootfs)?,
        ],
    )?;
    write_into(&tmp, 1 << 20, &rootfs)?;
    install_grub_bios(&tmp, &work)?;
    std::fs::rename(&tmp, &disk)?;
    std::fs::remove_dir_all(&work)?;
    Ok(SystemDisk {
        path: disk,
        root_tree: gpt.root_tree,
    })
}

/// GRUB's BIOS boot code, placed as `grub-bios-setup` places it on a disk with a post-MBR gap:
/// `boot.img`'s code (bytes 0..440, the disk signature and partition table stay) in LBA 0 and
/// `core.img` from LBA 1. The stock `boot.img` already loads its core from LBA 1 and
/// `grub-mkimage` writes the core's length into `core.img`'s first sector, so nothing is patched.
fn install_grub_bios(disk: &Path, work: &Path) -> Result<()> {
    let dir = Path::new("/usr/lib/grub/i386-pc");
    let boot_img = dir.join("boot.img");
    if !boot_img.is_file() {
        bail!(
            "{} is missing: install the Debian package `grub-pc-bin`",
            boot_img.display()
        );
    }
    let cfg = work.join("embedded.cfg");
    std::fs::write(
        &cfg,
        format!(
            "search --no-floppy --label --set=root {ROOT_LABEL}\n\
             linux /boot/vmlinuz console=ttyS0,115200 panic=-1\n\
             initrd /boot/initrd.img\n\
             boot\n"
        ),
    )?;
    let core = work.join("core.img");
    run(
        "grub-mkimage",
        &[
            "-O",
            "i386-pc",
            "-o",
            p(&core)?,
            "-c",
            p(&cfg)?,
            "-p",
            "(hd0,msdos1)/boot/grub",
            "biosdisk",
            "part_msdos",
            "ext2",
            "search",
            "search_label",
            "linux",
            "boot",
        ],
    )
    .context("grub-mkimage (install the Debian packages `grub-common` and `grub-pc-bin`)")?;
    let core_len = crate::fixture::file_len(&core)?;
    if core_len > (2048 - 1) * 512 {
        bail!("GRUB's core.img is {core_len} bytes: it does not fit before the first partition");
    }
    let code = std::fs::read(&boot_img)?;
    let code = code
        .get(..440)
        .with_context(|| format!("{} is shorter than 440 bytes", boot_img.display()))?;
    crate::fixture::poke(disk, 0, code)?;
    write_into(disk, 512, &core)?;
    Ok(())
}

fn p(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("non-UTF-8 path {}", path.display()))
}

/// First and last LBA of partition `n` of a GPT disk, from `sgdisk -i`.
pub fn partition_range(disk: &Path, n: u32) -> Result<(u64, u64)> {
    let out = run("sgdisk", &[&format!("-i{n}"), p(disk)?])?;
    let field = |name: &str| -> Result<u64> {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no `{name}` in sgdisk -i{n} of {}:\n{out}", disk.display()))
    };
    Ok((field("First sector:")?, field("Last sector:")?))
}

/// Copies `src` to `dst` keeping holes (`cp --sparse=always`).
pub fn copy_sparse(src: &Path, dst: &Path) -> Result<()> {
    run("cp", &["--sparse=always", p(src)?, p(dst)?])?;
    Ok(())
}

fn populate_root(tree: &Path, vmlinuz: &Path, work: &Path) -> Result<()> {
    std::fs::create_dir_all(tree.join("boot"))?;
    std::fs::copy(vmlinuz, tree.join("boot/vmlinuz"))
        .with_context(|| format!("copying {}", vmlinuz.display()))?;
    make_initramfs(&tree.join("boot/initrd.img"), work)?;
    for (rel, len, seed) in USER_FILES {
        let path = tree.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, noise(*seed, *len))?;
    }
    std::fs::create_dir_all(tree.join("etc"))?;
    std::fs::write(tree.join("etc/hostname"), "e2e-pc\n")?;
    Ok(())
}

/// A newc cpio with `/init` (a busybox script printing the marker) and a static busybox.
fn make_initramfs(out: &Path, work: &Path) -> Result<()> {
    let bb = Path::new("/bin/busybox");
    if !bb.is_file() {
        bail!("/bin/busybox is missing: install the Debian package `busybox-static`");
    }
    let stage = work.join("initramfs");
    std::fs::create_dir_all(stage.join("bin"))?;
    std::fs::create_dir_all(stage.join("dev"))?;
    std::fs::create_dir_all(stage.join("proc"))?;
    std::fs::copy(bb, stage.join("bin/busybox"))?;
    let init = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null\n\
         /bin/busybox echo \"{MARKER} {ROOT_UUID}\" > /dev/console\n\
         /bin/busybox echo \"{MARKER} {ROOT_UUID}\" > /dev/ttyS0 2>/dev/null\n\
         /bin/busybox sync\n\
         /bin/busybox poweroff -f\n"
    );
    let init_path = stage.join("init");
    std::fs::write(&init_path, init)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init_path, std::fs::Permissions::from_mode(0o755))?;
    let script = format!(
        "set -o pipefail; cd '{}' && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 > '{}'",
        p(&stage)?,
        p(out)?
    );
    run("bash", &["-c", &script])?;
    Ok(())
}

/// The ESP: FAT32 with `EFI/BOOT/BOOTX64.EFI`, a standalone GRUB whose embedded `grub.cfg`
/// finds the root by label and boots its kernel with the console on ttyS0.
fn make_esp(esp: &Path, work: &Path) -> Result<()> {
    let cfg = work.join("grub.cfg");
    std::fs::write(
        &cfg,
        format!(
            "set timeout=0\n\
             insmod part_gpt\n\
             insmod part_msdos\n\
             insmod ext2\n\
             search --no-floppy --label --set=root {ROOT_LABEL}\n\
             linux /boot/vmlinuz console=ttyS0,115200 panic=-1\n\
             initrd /boot/initrd.img\n\
             boot\n"
        ),
    )?;
    let efi = work.join("BOOTX64.EFI");
    run(
        "grub-mkstandalone",
        &[
            "-O",
            "x86_64-efi",
            "-o",
            p(&efi)?,
            "--modules=part_gpt part_msdos ext2 search search_label linux normal",
            "--locales=",
            "--fonts=",
            "--themes=",
            &format!("boot/grub/grub.cfg={}", p(&cfg)?),
        ],
    )
    .context("grub-mkstandalone (install the Debian package `grub-efi-amd64-bin`)")?;
    sparse_file(esp, 40 << 20)?;
    run("mkfs.vfat", &["-F", "32", "-n", "ESP", p(esp)?])?;
    run("mmd", &["-i", p(esp)?, "::/EFI", "::/EFI/BOOT"])?;
    run(
        "mcopy",
        &["-i", p(esp)?, p(&efi)?, "::/EFI/BOOT/BOOTX64.EFI"],
    )?;
    Ok(())
}
