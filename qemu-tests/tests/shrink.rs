//! Onto a smaller disk, in QEMU (TCG): the GPT + UEFI system disk (`qemu_tests::system_disk`:
//! ESP + ext4 root) is cloned by the CLI and restored by a job file onto disks smaller than its
//! partitions, inside the booted image (the FUSE copy-on-write device, e2fsck and resize2fs of
//! the boot image); each smaller disk is checked on the host (sgdisk -v, e2fsck -fn, the root's
//! UUID and label) and boots alone under OVMF to the system disk's marker. The source's sha256
//! is compared before and after. Run with `cargo xtask qemu-test --test shrink`.

use anyhow::Result;
use qemu_tests::e2e::{boots_alone, exfat_drive, job, lifeboat_shell, report, sh};
use qemu_tests::fixture::{extract, path, run, run_status, sha256, sparse_file};
use qemu_tests::system_disk::{self, copy_sparse, ROOT_LABEL, ROOT_UUID};
use qemu_tests::vm::{Disk, Firmware, Image, Interface, VmBuilder};
use std::path::Path;
use std::time::{Duration, Instant};

/// 83% of the 192 MiB system disk: the 151 MiB root partition (1 KiB blocks, for which
/// `resize2fs -P` names about 107 MiB) must shrink.
const SMALL: u64 = 160 << 20;

/// The checks on a smaller disk made from `source`: a clean GPT, the ESP as it was, a root
/// partition that shrank, a clean ext4 with the same UUID and label.
fn check_small(dir: &Path, source: &Path, small: &Path) -> Result<()> {
    let (code, v) = run_status("sgdisk", &["-v", path(small)?])?;
    assert!(
        code == 0 && v.contains("No problems found"),
        "sgdisk -v of {}:\n{v}",
        small.display()
    );
    assert_eq!(
        system_disk::partition_range(small, 1)?,
        system_disk::partition_range(source, 1)?,
        "the ESP keeps its place and size"
    );
    let (s0, l0) = system_disk::partition_range(source, 2)?;
    let (s1, l1) = system_disk::partition_range(small, 2)?;
    assert!(l1 - s1 < l0 - s0, "the root partition did not shrink");
    let root = dir.join("root.img");
    extract(small, s1 * 512, (l1 + 1 - s1) * 512, &root)?;
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&root)?])?;
    assert_eq!(code, 0, "e2fsck -fn of the shrunk root:\n{fsck}");
    let blkid = run("blkid", &["-p", "-o", "export", path(&root)?])?;
    assert!(blkid.contains(&format!("UUID={ROOT_UUID}")), "{blkid}");
    assert!(blkid.contains(&format!("LABEL={ROOT_LABEL}")), "{blkid}");
    std::fs::remove_file(&root)?;
    Ok(())
}

#[test]
fn the_system_disk_cloned_by_cli_and_restored_by_job_onto_smaller_disks_boots_alone() -> Result<()>
{
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = qemu_tests::fixture::scratch("shrink/system")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let cloned = dir.join("cloned.img");
    let restored = dir.join("restored.img");
    sparse_file(&cloned, SMALL)?;
    sparse_file(&restored, SMALL)?;
    let usb = exfat_drive(&dir, 300)?;
    let b = VmBuilder::new("shrink-system")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&cloned, Interface::Virtio).serial("SMALL1"))
        .disk(Disk::new(&restored, Interface::Nvme).serial("SMALL2"))
        .disk(Disk::new(&usb, Interface::Usb).serial("USB1"));
    let mut vm = lifeboat_shell(b, &img)?;
    let out = job(
        &mut vm,
        "lifeboat clone serial:SYS1 serial:SMALL1 --yes",
        "/tmp/clone.log",
    )?;
    assert!(out.contains("shrunk from"), "{out}");
    sh(
        &mut vm,
        "mount -t exfat /dev/sda1 /mnt",
        Duration::from_secs(60),
    )?;
    job(
        &mut vm,
        "lifeboat backup serial:SYS1 /mnt/sys.lbi",
        "/tmp/backup.log",
    )?;
    sh(
        &mut vm,
        "printf '[[step]]\\naction = \"restore\"\\nimage = \"sys.lbi\"\\ntarget = \"serial:SMALL2\"\\n' \
         > /mnt/restore.toml",
        Duration::from_secs(30),
    )?;
    let out = job(&mut vm, "lifeboat run /mnt/restore.toml", "/tmp/run.log")?;
    assert!(out.contains("shrunk from"), "{out}");
    sh(&mut vm, "umount /mnt && sync", Duration::from_secs(120))?;
    vm.send("poweroff -f\n")?;
    vm.wait_exit(Duration::from_secs(60))?;
    drop(vm);
    assert_eq!(
        sha256(&disk)?,
        before,
        "the clone or backup changed its source"
    );
    check_small(&dir, &disk, &cloned)?;
    check_small(&dir, &disk, &restored)?;
    boots_alone("shrink-cloned", &cloned, Interface::Virtio, Firmware::Uefi)?;
    boots_alone(
        "shrink-restored",
        &restored,
        Interface::Nvme,
        Firmware::Uefi,
    )?;
    report("onto smaller disks", t0);
    Ok(())
}
