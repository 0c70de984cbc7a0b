//! `lifeboat mount` / `lifeboat umount` in the booted image (issue 15): a partition inside an
//! image served as a read-only FUSE file, a read-only loop device over it and the file system
//! mounted read-only, all in the initramfs Lifeboat boots (its kernel modules, `/dev/fuse`,
//! `/dev/loop-control`, the static binary).
//!
//! The host makes a GPT disk with an ext4 partition (`mkfs.ext4 -d`) and a FAT partition
//! (`mkfs.vfat` + `mcopy`; the host kernel may have no vfat driver, the booted image has one),
//! backs it up with the host's `lifeboat backup` onto an ext4 "image drive", and boots Lifeboat
//! with a shell on the serial console. There both partitions are mounted out of the image, a
//! file of each is hashed with busybox `sha256sum` against the host's hash, a write is refused,
//! and after `lifeboat umount` neither mount, nor the server process, nor the loop device is left.
//!
//! Run with `cargo xtask qemu-test --test mount`.

use anyhow::{ensure, Context, Result};
use qemu_tests::e2e::{
    debugfs_dump, dev_by_serial, ext4_drive, host_lifeboat_run, job, lifeboat_shell, power_off,
    report, sh, sh_status, QUICK,
};
use qemu_tests::fixture::{noise, path, run, scratch, sgdisk, sha256, sparse_file, write_into};
use qemu_tests::vm::{Disk, Image, Interface, VmBuilder};
use std::path::{Path, PathBuf};
use std::time::Instant;

const MIB: u64 = 1 << 20;
/// Both partitions: 20 MiB, the first at 1 MiB, the second right after it.
const PART_MIB: u64 = 20;
/// The file checked on the ext4 partition, and the one on the FAT partition (a long,
/// mixed-case name: a VFAT long-name entry).
const EXT4_FILE: &str = "docs/blob.bin";
const FAT_FILE: &str = "Report 2026.txt";

/// The host side: the GPT disk (ext4 + FAT), its image made by the host's `lifeboat backup`, and
/// the image drive holding it. Returns the image drive, the image and the two files' sha256.
fn fixtures(dir: &Path) -> Result<(PathBuf, PathBuf, String, String)> {
    let disk = dir.join("disk.img");
    sparse_file(&disk, (2 * PART_MIB + 2) * MIB)?;
    sgdisk(
        &disk,
        &[
            "-n1:1M:+20M",
            "-t1:8300",
            "-c1:linux",
            "-n2:21M:+20M",
            "-t2:0700",
            "-c2:fat",
        ],
    )?;

    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("docs"))?;
    std::fs::write(tree.join(EXT4_FILE), noise(15, 300_000))?;
    std::fs::write(
        tree.join("docs/readme.txt"),
        "an ext4 partition inside an image\n",
    )?;
    std::fs::write(tree.join("top.txt"), "top level\n".repeat(500))?;
    let ext4_sum = sha256(&tree.join(EXT4_FILE))?;
    let ext4 = dir.join("ext4.img");
    sparse_file(&ext4, PART_MIB * MIB)?;
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "LINUX",
            "-d",
            path(&tree)?,
            path(&ext4)?,
        ],
    )?;
    write_into(&disk, MIB, &ext4)?;

    let fat_src = dir.join("fat-file");
    let text: String = (0..4000)
        .map(|i| format!("row {i} of a report\n"))
        .collect();
    std::fs::write(&fat_src, text)?;
    let fat_sum = sha256(&fat_src)?;
    let fat = dir.join("fat.img");
    sparse_file(&fat, PART_MIB * MIB)?;
    run("mkfs.vfat", &["-n", "FATPART", path(&fat)?])?;
    run(
        "mcopy",
        &[
            "-i",
            path(&fat)?,
            path(&fat_src)?,
            &format!("::/{FAT_FILE}"),
        ],
    )?;
    write_into(&disk, (1 + PART_MIB) * MIB, &fat)?;

    let content = dir.join("content");
    std::fs::create_dir_all(&content)?;
    let lbi = content.join("x.lbi");
    let (code, out) = host_lifeboat_run(&["backup", path(&disk)?, path(&lbi)?])?;
    ensure!(
        code == 0,
        "host backup of the GPT disk exited {code}:\n{out}"
    );
    let drive = ext4_drive(dir, "images.img", 32, "IMAGES", Some(&content))?;
    Ok((drive, lbi, ext4_sum, fat_sum))
}

/// The sha256 busybox prints for `file` in the VM.
fn vm_sha256(vm: &mut qemu_tests::vm::Vm, file: &str) -> Result<String> {
    let out = sh(
        vm,
        &format!("echo SUM=$(sha256sum '{file}' | cut -d' ' -f1)="),
        QUICK,
    )?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("SUM=")?.strip_suffix('='))
        .find(|s| s.len() == 64)
        .map(str::to_string)
        .with_context(|| format!("no sha256 of {file} in the VM:\n{out}"))
}

/// What of `lifeboat mount` is in the VM: the mounts on /mnt/a, /mnt/b and the served FUSE
/// files (`/proc/mounts`), the server processes (`ps`), and the loop devices' backing files.
fn leftovers(vm: &mut qemu_tests::vm::Vm) -> Result<String> {
    // Typed `X""=`, printed `X=`: the echo of the typed line never matches.
    let (_, out) = sh_status(
        vm,
        "echo LEFT\"\"OVERS; grep -E ' /mnt/(a|b) |/run/lifeboat/mounts/' /proc/mounts | sed \"s/^/MOUNT\"\"= /\"; \
         ps -o pid,args | grep '[l]ifeboat mount' | sed \"s/^/PROC\"\"= /\"; \
         for f in /sys/block/loop*/loop/backing_file; do [ -f \"$f\" ] && echo \"LOOP\"\"= $f $(cat $f)\"; done",
        QUICK,
    )?;
    let body = out
        .split_once("LEFTOVERS")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok(body
        .lines()
        .map(str::trim)
        .filter(|l| {
            ["MOUNT= ", "PROC= ", "LOOP= "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

#[test]
fn lifeboat_mounts_an_ext4_and_a_fat_partition_of_an_image_read_only_in_the_booted_image(
) -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("mount/vm")?;
    let (drive, lbi, ext4_sum, fat_sum) = fixtures(&dir)?;
    let lbi_sum = sha256(&lbi)?;

    let b = VmBuilder::new("mount").disk(Disk::new(&drive, Interface::Virtio).serial("IMG1"));
    let mut vm = lifeboat_shell(b, &img)?;
    let dev = dev_by_serial(&mut vm, "IMG1")?;
    sh(
        &mut vm,
        &format!("mkdir -p /tmp/images /mnt/a /mnt/b && mount -t ext4 -o ro {dev} /tmp/images"),
        QUICK,
    )?;

    let out = job(
        &mut vm,
        "lifeboat mount /tmp/images/x.lbi --part 1 /mnt/a",
        "/tmp/mount-a.log",
    )?;
    ensure!(
        out.contains("(ext4) read-only at /mnt/a"),
        "`lifeboat mount --part 1` does not say what it mounted:\n{out}"
    );
    let mounts = sh(&mut vm, "grep ' /mnt/a ' /proc/mounts", QUICK)?;
    ensure!(
        mounts.contains("/mnt/a ext4 ro"),
        "/mnt/a is not a read-only ext4 mount:\n{mounts}"
    );
    assert_eq!(
        vm_sha256(&mut vm, &format!("/mnt/a/{EXT4_FILE}"))?,
        ext4_sum,
        "{EXT4_FILE} read through lifeboat mount differs from the host's"
    );
    let listing = sh(&mut vm, "ls /mnt/a /mnt/a/docs", QUICK)?;
    ensure!(
        listing.contains("top.txt") && listing.contains("readme.txt"),
        "the ext4 partition's files are not all listed:\n{listing}"
    );
    let (code, out) = sh_status(&mut vm, "touch /mnt/a/new-file 2>&1", QUICK)?;
    ensure!(
        code != 0 && out.contains("Read-only file system"),
        "a write to /mnt/a was not refused as read-only (exit {code}):\n{out}"
    );

    let out = job(
        &mut vm,
        "lifeboat mount /tmp/images/x.lbi --part 2 /mnt/b",
        "/tmp/mount-b.log",
    )?;
    ensure!(
        out.contains("(vfat) read-only at /mnt/b"),
        "`lifeboat mount --part 2` does not say what it mounted:\n{out}"
    );
    assert_eq!(
        vm_sha256(&mut vm, &format!("/mnt/b/{FAT_FILE}"))?,
        fat_sum,
        "{FAT_FILE} read through lifeboat mount differs from the host's"
    );
    let (code, out) = sh_status(&mut vm, "mkdir /mnt/b/new-dir 2>&1", QUICK)?;
    ensure!(
        code != 0 && out.contains("Read-only file system"),
        "a write to /mnt/b was not refused as read-only (exit {code}):\n{out}"
    );

    // Both mounts, their two servers and two loop devices exist: the checks below can fail.
    let held = leftovers(&mut vm)?;
    for want in [
        "/mnt/a ext4 ro",
        "/mnt/b vfat ro",
        "PROC= ",
        "/run/lifeboat/mounts/",
    ] {
        ensure!(
            held.contains(want),
            "`{want}` missing while mounted:\n{held}"
        );
    }
    ensure!(
        held.lines().filter(|l| l.starts_with("PROC= ")).count() == 2
            && held.lines().filter(|l| l.starts_with("LOOP= ")).count() == 2,
        "two server processes and two loop devices expected while mounted:\n{held}"
    );

    for d in ["/mnt/b", "/mnt/a"] {
        let out = job(&mut vm, &format!("lifeboat umount {d}"), "/tmp/umount.log")?;
        ensure!(
            out.contains(&format!("from {d}")),
            "`lifeboat umount {d}` does not say what it unmounted:\n{out}"
        );
    }
    let left = leftovers(&mut vm)?;
    ensure!(
        left.is_empty(),
        "lifeboat umount left mounts, server processes or loop devices behind:\n{left}"
    );
    sh(&mut vm, "umount /tmp/images", QUICK)?;
    power_off(vm)?;

    // The image on the drive is the one the host wrote, byte for byte.
    let back = dir.join("x-back.lbi");
    debugfs_dump(&drive, "/x.lbi", &back)?;
    assert_eq!(
        sha256(&back)?,
        lbi_sum,
        "the image changed on the image drive"
    );
    report("lifeboat mount", t0);
    Ok(())
}
