//! Onto a smaller disk, in QEMU (TCG): the GPT + UEFI system disk (`qemu_tests::system_disk`:
//! ESP + ext4 root) is cloned by the CLI and restored by a job file onto disks smaller than its
//! partitions, inside the booted image (the FUSE copy-on-write device, e2fsck and resize2fs of
//! the boot image); each smaller disk is checked on the host (sgdisk -v, e2fsck -fn, the root's
//! UUID and label) and boots alone under OVMF to the system disk's marker. The source's sha256
//! is compared before and after. In the same VM the text UI (started from the serial shell,
//! driven by keys as a person would) restores the image onto a third smaller disk: the plan it
//! shows names the shrink (old -> new size, used, method), the confirmation names the disk by
//! model, serial and size; on the host that disk checks clean, holds the source's files and
//! keeps the root's UUID. Run with `cargo xtask qemu-test --test shrink`.

use anyhow::Result;
use qemu_tests::e2e::{
    boots_alone, exfat_drive, host_lifeboat_run, job, lifeboat_shell, report, sh, JOB,
};
use qemu_tests::fixture::{extract, path, run, run_status, sha256, sparse_file};
use qemu_tests::screen::{key, Terminal};
use qemu_tests::system_disk::{self, copy_sparse, ROOT_LABEL, ROOT_UUID};
use qemu_tests::vm::{Disk, Firmware, Image, Interface, VmBuilder};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a screen may take to change after a key, under TCG on a loaded host.
const STEP: Duration = Duration::from_secs(120);

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
    let by_keys = dir.join("by-keys.img");
    sparse_file(&cloned, SMALL)?;
    sparse_file(&restored, SMALL)?;
    sparse_file(&by_keys, SMALL)?;
    let usb = exfat_drive(&dir, 300)?;
    let b = VmBuilder::new("shrink-system")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&cloned, Interface::Virtio).serial("SMALL1"))
        .disk(Disk::new(&restored, Interface::Nvme).serial("SMALL2"))
        .disk(Disk::new(&usb, Interface::Usb).serial("USB1"))
        .disk(Disk::new(&by_keys, Interface::Nvme).serial("SMALL3"));
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
    restore_by_keys(&mut vm)?;
    drop(vm);
    assert_eq!(
        sha256(&disk)?,
        before,
        "the clone or backup changed its source"
    );
    check_small(&dir, &disk, &cloned)?;
    check_small(&dir, &disk, &restored)?;
    check_small(&dir, &disk, &by_keys)?;
    assert_eq!(
        root_files(&dir, &by_keys, "keys")?,
        root_files(&dir, &disk, "source")?,
        "the root file system restored by keys holds the source's files"
    );
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

/// The text UI started from the serial shell restores `/sys.lbi` of the exFAT stick onto the
/// disk with serial SMALL3 (smaller than the image's partitions), by keys: stick mounted with
/// `m`, `e` restore, the image, the whole disk, the target; the plan must show the shrink and the
/// confirmation the target's model, serial and size. Returns when the UI says it finished.
fn restore_by_keys(vm: &mut qemu_tests::vm::Vm) -> Result<()> {
    vm.send("TERM=xterm lifeboat\n")?;
    let mut t = Terminal::new(80, 25);
    let disks = t.wait_for(vm, &["SMALL3", "USB1"], STEP)?;
    // The target list names disks by kernel name and model: SMALL3's name from the disk list.
    let small3 = disks
        .lines()
        .find(|l| l.contains("SMALL3"))
        .and_then(|l| l.trim_start_matches(['│', ' ']).split_whitespace().next())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no row for SMALL3:\n{disks}"))?;
    // The stick's exFAT partition (labelled BACKUPS by `exfat_drive`) is mounted by the UI.
    t.select(vm, "BACKUPS", 20)?;
    t.type_keys(vm, "m")?;
    t.wait(vm, "is mounted at /run/lifeboat/mnt/", STEP)?;
    t.type_keys(vm, "e")?;
    t.wait(vm, "mounted on /run/lifeboat/mnt/", STEP)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "sys.lbi", STEP)?;
    t.select(vm, "sys.lbi", 12)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "The whole disk", STEP)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "Pick the disk to restore TO", STEP)?;
    t.select(vm, &small3, 20)?;
    t.wait(
        vm,
        "smaller than the source: it fits, file systems shrink",
        STEP,
    )?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "Enter make the plan", STEP)?;
    t.type_keys(vm, key::ENTER)?;
    // The plan, scrolled through to its end: every screen of it kept.
    let mut plan = t.wait(vm, "Nothing has been written yet", STEP)?;
    for _ in 0..12 {
        for _ in 0..3 {
            t.type_keys(vm, key::DOWN)?;
        }
        std::thread::sleep(Duration::from_millis(500));
        t.pump(vm)?;
        plan.push_str(&t.text());
    }
    eprintln!("{plan}");
    // Wrapped lines end and start with the box's borders: joined without them.
    let flat: String = plan
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "shrink file systems onto the smaller target",
        "partition 2 ext4 \"E2EROOT\": 151 MiB -> ",
        "MiB used, ",
        "MiB at least), resize2fs",
        "partition 2 shrunk from 151.0 MiB to",
    ] {
        assert!(
            flat.contains(needle),
            "the plan on the screen lacks {needle:?}:\n{plan}"
        );
    }
    t.type_keys(vm, key::ENTER)?;
    let confirm = t.wait(vm, "Type yes", STEP)?;
    assert!(
        confirm.contains("QEMU NVMe Ctrl")
            && confirm.contains("SMALL3")
            && (confirm.contains("160.0 MiB") || confirm.contains("167.8 MB")),
        "the confirmation must name the target's model, serial and size:\n{confirm}"
    );
    for k in ["y", "e", "s", key::ENTER] {
        t.type_keys(vm, k)?;
    }
    let done = t.wait(vm, "Restore disk finished.", JOB)?;
    eprintln!("{done}");
    Ok(())
}

/// Every regular file of the root file system (partition 2) of `disk`, extracted on the host
/// by `lifeboat extract`: relative path to SHA-256.
fn root_files(dir: &Path, disk: &Path, name: &str) -> Result<BTreeMap<String, String>> {
    let to = dir.join(format!("files-{name}"));
    let _ = std::fs::remove_dir_all(&to);
    let (code, out) = host_lifeboat_run(&[
        "extract",
        path(disk)?,
        "/",
        "--part",
        "2",
        "--to",
        path(&to)?,
    ])?;
    assert_eq!(code, 0, "lifeboat extract of {}:\n{out}", disk.display());
    let mut files = BTreeMap::new();
    let mut stack = vec![to.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e.path().strip_prefix(&to)?.display().to_string();
                files.insert(rel, sha256(&e.path())?);
            }
        }
    }
    std::fs::remove_dir_all(&to)?;
    assert!(
        !files.is_empty(),
        "no files extracted from {}",
        disk.display()
    );
    Ok(files)
}
