//! End-to-end scenarios in QEMU (TCG), the scenarios of issue #8: the real `lifeboat` in the
//! booted image works on bootable system disks (GPT + UEFI GRUB and MBR + BIOS GRUB, each with an
//! ext4 root, see `qemu_tests::system_disk`); the disks it restores or clones boot alone (OVMF or
//! SeaBIOS) and print the system disk's marker. Faults are injected from the host: a source
//! behind QEMU's `blkdebug` (EIO on chosen sectors), QEMU killed in the middle of a backup or a
//! restore (the power cut), an image drive too small. The safety checks are tried against the
//! boot medium and a mounted disk. The source disk's sha256 is compared before and after every
//! backup and clone.
//!
//! Lifeboat is booted directly (kernel + initramfs, `lifeboat.serial=shell`) and driven from the
//! busybox shell on the serial console; results are checked on the host (`debugfs`, `sgdisk`,
//! `sfdisk`, `e2fsck`, the host's `lifeboat`). Each scenario prints its wall time. Run with
//! `cargo xtask qemu-test`.

use anyhow::{bail, Context, Result};
use qemu_tests::e2e::{
    boots_alone, debugfs_dump, dev_by_serial, exfat_drive, ext4_drive, failing_disk, host_lifeboat,
    host_lifeboat_run, job, job_status, lifeboat_shell, power_off, report, sh, sh_status, BOOT,
    JOB, QUICK,
};
use qemu_tests::fixture::{path, run, run_status, sgdisk, sha256, sparse_file};
use qemu_tests::system_disk::{self, copy_sparse};
use qemu_tests::vm::{Disk, Firmware, Image, Interface, Vm, VmBuilder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A fresh scratch directory for scenario `name`.
fn scratch(name: &str) -> Result<PathBuf> {
    qemu_tests::fixture::scratch(&format!("e2e/{name}"))
}

/// Boots `disk` alone under OVMF and waits for the system disk's marker.
fn boots_under_ovmf(name: &str, disk: &Path, interface: Interface) -> Result<Duration> {
    boots_alone(name, disk, interface, Firmware::Uefi)
}

#[test]
fn system_disk_fixture_boots_under_ovmf_and_prints_its_marker() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("fixture-boots")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    boots_under_ovmf("e2e-fixture-boots", &disk, Interface::Virtio)?;
    let (code, v) = run_status("sgdisk", &["-v", path(&disk)?])?;
    assert_eq!(code, 0, "sgdisk -v of the fixture:\n{v}");
    report("fixture boots", t0);
    Ok(())
}

#[test]
fn crash_recovery_backup_wipe_restore_and_the_restored_disk_boots() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("crash-recovery")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let table_before = run("sgdisk", &["-p", path(&disk)?])?;
    let usb = exfat_drive(&dir, 400)?;
    let b = VmBuilder::new("e2e-crash-recovery")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&usb, Interface::Usb).serial("USB1"));
    let mut vm = lifeboat_shell(b, &img)?;
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
    sh(&mut vm, "sync", Duration::from_secs(60))?;
    // The read-only guarantee: the source is bit-identical after the backup.
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    // The crash: partition tables and file-system headers at both ends are gone.
    sh(
        &mut vm,
        "dd if=/dev/zero of=/dev/vda bs=1M count=4 2>/dev/null && \
         dd if=/dev/zero of=/dev/vda bs=1M seek=$(( $(blockdev --getsz /dev/vda) / 2048 - 1 )) count=1 2>/dev/null && \
         sync && blockdev --rereadpt /dev/vda; true",
        Duration::from_secs(60),
    )?;
    assert_ne!(sha256(&disk)?, before, "the wipe did not reach the disk");
    job(
        &mut vm,
        "lifeboat restore /mnt/sys.lbi serial:SYS1 --yes",
        "/tmp/restore.log",
    )?;
    sh(&mut vm, "umount /mnt && sync", Duration::from_secs(120))?;
    vm.send("poweroff -f\n")?;
    vm.wait_exit(Duration::from_secs(60))?;
    drop(vm);
    let (code, v) = run_status("sgdisk", &["-v", path(&disk)?])?;
    assert_eq!(code, 0, "sgdisk -v of the restored disk:\n{v}");
    assert!(v.contains("No problems found"), "sgdisk -v:\n{v}");
    let table_after = run("sgdisk", &["-p", path(&disk)?])?;
    assert_eq!(
        table_after, table_before,
        "the restored partition table differs"
    );
    boots_under_ovmf("e2e-crash-recovery-restored", &disk, Interface::Virtio)?;
    report("crash recovery", t0);
    Ok(())
}

/// `dumpe2fs -h` field `name` (e.g. `Block count:`) of the ext4 in `part`.
fn dumpe2fs_field(part: &Path, name: &str) -> Result<u64> {
    let out = run("dumpe2fs", &["-h", path(part)?])?;
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no `{name}` in dumpe2fs -h {}:\n{out}", part.display()))
}

#[test]
fn ssd_migration_clone_to_a_larger_nvme_grows_the_root_and_the_nvme_alone_boots() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("ssd-migration")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let nvme = dir.join("nvme.img");
    let nvme_bytes: u64 = 320 << 20;
    sparse_file(&nvme, nvme_bytes)?;
    let b = VmBuilder::new("e2e-ssd-migration")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&nvme, Interface::Nvme).serial("NVME1"));
    let mut vm = lifeboat_shell(b, &img)?;
    job(
        &mut vm,
        "lifeboat clone serial:SYS1 serial:NVME1 --grow-last --yes",
        "/tmp/clone.log",
    )?;
    sh(&mut vm, "sync", Duration::from_secs(60))?;
    vm.send("poweroff -f\n")?;
    vm.wait_exit(Duration::from_secs(60))?;
    drop(vm);
    assert_eq!(sha256(&disk)?, before, "the clone changed its source disk");
    let (code, v) = run_status("sgdisk", &["-v", path(&nvme)?])?;
    assert!(
        code == 0 && v.contains("No problems found"),
        "sgdisk -v of the clone:\n{v}"
    );
    // The last partition grew to the end of the new disk and the root file system with it.
    let (start, last) = system_disk::partition_range(&nvme, 2)?;
    let part_bytes = (last + 1 - start) * 512;
    assert!(
        (last + 1) * 512 > nvme_bytes - (1 << 20),
        "partition 2 of the clone ends at LBA {last}, far from the end of the {nvme_bytes}-byte disk"
    );
    let root = dir.join("root.img");
    qemu_tests::fixture::extract(&nvme, start * 512, part_bytes, &root)?;
    let blocks = dumpe2fs_field(&root, "Block count:")?;
    let block_size = dumpe2fs_field(&root, "Block size:")?;
    let fs_bytes = blocks * block_size;
    assert!(
        fs_bytes <= part_bytes && part_bytes - fs_bytes < 4 << 20,
        "root file system is {fs_bytes} bytes in a {part_bytes}-byte partition"
    );
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&root)?])?;
    assert_eq!(code, 0, "e2fsck -fn of the grown root:\n{fsck}");
    std::fs::remove_file(&root)?;
    boots_under_ovmf("e2e-ssd-migration-nvme", &nvme, Interface::Nvme)?;
    report("ssd migration", t0);
    Ok(())
}

#[test]
fn unattended_technician_job_backs_up_by_serial_verifies_reports_and_powers_off() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("technician")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let content = dir.join("content");
    std::fs::create_dir_all(content.join("images"))?;
    std::fs::write(
        content.join("tech.toml"),
        "# technician's stick: image the system disk and check the image\n\
         [[step]]\n\
         action = \"backup\"\n\
         source = \"serial:SYS1\"\n\
         image = \"images/{model}-{serial}-{date}.lbi\"\n\
         \n\
         [[step]]\n\
         action = \"verify\"\n",
    )?;
    // The technician's drive: a bare ext4 labelled BACKUPS (read back on the host by debugfs).
    let vol = dir.join("backups.img");
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "BACKUPS",
            "-d",
            path(&content)?,
            path(&vol)?,
            "300M",
        ],
    )?;
    let mut vm = VmBuilder::new("e2e-technician")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&vol, Interface::Virtio).serial("STICK1"))
        .kernel(
            &img.vmlinuz,
            &img.initramfs,
            "console=ttyS0,115200 lifeboat.job=BACKUPS:/tech.toml lifeboat.after=poweroff",
        )
        .start()?;
    vm.expect("job /mnt/job/tech.toml started", BOOT)?;
    vm.expect("unattended job finished", JOB)?;
    vm.wait_exit(Duration::from_secs(120))?;
    drop(vm);
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&vol)?])?;
    assert_eq!(code, 0, "e2fsck of the technician's drive:\n{fsck}");
    let report_text = run("debugfs", &["-R", "cat /tech.report.txt", path(&vol)?])?;
    assert!(
        report_text.contains("lifeboat run exited: exit code 0"),
        "the job did not succeed; report:\n{report_text}"
    );
    let listing = run("debugfs", &["-R", "ls -l /images", path(&vol)?])?;
    let name = listing
        .split_whitespace()
        .find(|w| w.ends_with(".lbi"))
        .with_context(|| format!("no image in /images:\n{listing}"))?
        .to_string();
    assert!(
        name.contains("SYS1"),
        "image {name} is not named by the disk serial"
    );
    let today = run("date", &["-u", "+%Y-%m-%d"])?;
    assert!(
        name.contains(today.trim()),
        "image {name} lacks today's date"
    );
    assert!(
        report_text.contains(&name) || report_text.contains("SYS1"),
        "report:\n{report_text}"
    );
    let host_copy = dir.join(&name);
    run(
        "debugfs",
        &[
            "-R",
            &format!("dump /images/{name} {}", path(&host_copy)?),
            path(&vol)?,
        ],
    )?;
    let out = std::process::Command::new(host_lifeboat()?)
        .args(["verify"])
        .arg(&host_copy)
        .output()?;
    assert!(
        out.status.success(),
        "host `lifeboat verify {name}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    report("technician job", t0);
    Ok(())
}

/// The ext4 root of partition `n` of the GPT disk `disk` (copied out to `dir/root-n.img`).
fn root_of(disk: &Path, n: u32, dir: &Path) -> Result<PathBuf> {
    let (start, last) = system_disk::partition_range(disk, n)?;
    let root = dir.join(format!("root-{n}.img"));
    qemu_tests::fixture::extract(disk, start * 512, (last + 1 - start) * 512, &root)?;
    Ok(root)
}

/// Whether `disk` has any partition table `sfdisk` recognises (MBR or GPT, primary or backup).
fn has_partition_table(disk: &Path) -> Result<(bool, String)> {
    let (code, out) = run_status("sfdisk", &["-d", path(disk)?])?;
    Ok((code == 0 && out.contains("label:"), out))
}

#[test]
fn mbr_bios_disk_restored_to_a_larger_disk_boots_under_seabios() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::mbr_bios(&img.vmlinuz)?;
    let dir = scratch("mbr-bios")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let images = ext4_drive(&dir, "images.img", 200, "IMAGES", None)?;
    let target = dir.join("larger.img");
    let target_bytes: u64 = 224 << 20;
    sparse_file(&target, target_bytes)?;
    let b = VmBuilder::new("e2e-mbr-bios")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&images, Interface::Virtio).serial("IMG1"))
        .disk(Disk::new(&target, Interface::Virtio).serial("TGT1"));
    let mut vm = lifeboat_shell(b, &img)?;
    let dev = dev_by_serial(&mut vm, "IMG1")?;
    sh(&mut vm, &format!("mount -t ext4 {dev} /mnt"), QUICK)?;
    job(
        &mut vm,
        "lifeboat backup serial:SYS1 /mnt/mbr.lbi",
        "/tmp/backup.log",
    )?;
    let out = job(
        &mut vm,
        "lifeboat restore /mnt/mbr.lbi serial:TGT1 --grow-last --yes",
        "/tmp/restore.log",
    )?;
    power_off(vm)?;
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    // An MBR with one bootable Linux partition grown to the end of the larger disk.
    let table = run("sfdisk", &["-d", path(&target)?])?;
    assert!(table.contains("label: dos"), "restored table:\n{table}");
    let line = table
        .lines()
        .find(|l| l.contains("start=") && l.contains("bootable"))
        .with_context(|| format!("no bootable partition in the restored table:\n{table}"))?;
    let field = |name: &str| -> Result<u64> {
        line.split([',', ':'])
            .find_map(|f| f.trim().strip_prefix(name))
            .and_then(|v| v.trim_start_matches([' ', '=']).trim().parse().ok())
            .with_context(|| format!("no {name} in `{line}`"))
    };
    let (start, size) = (field("start")?, field("size")?);
    assert!(
        (start + size) * 512 > target_bytes - (1 << 20),
        "partition 1 ends at sector {} of a {target_bytes}-byte disk (restore said:\n{out})",
        start + size
    );
    // The boot code in the MBR and the post-MBR gap came along.
    let boot = std::fs::read(&sys.path)?;
    let got = std::fs::read(&target)?;
    assert_eq!(
        got[..440],
        boot[..440],
        "the MBR boot code differs after the restore"
    );
    assert_eq!(
        got[512..1 << 20],
        boot[512..1 << 20],
        "GRUB's core.img in the post-MBR gap differs after the restore"
    );
    drop((boot, got));
    let root = dir.join("root.img");
    qemu_tests::fixture::extract(&target, start * 512, size * 512, &root)?;
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&root)?])?;
    assert_eq!(code, 0, "e2fsck -fn of the restored root:\n{fsck}");
    let fs_bytes = dumpe2fs_field(&root, "Block count:")? * dumpe2fs_field(&root, "Block size:")?;
    assert!(
        fs_bytes <= size * 512 && size * 512 - fs_bytes < 4 << 20,
        "the root file system is {fs_bytes} bytes in a {}-byte partition",
        size * 512
    );
    std::fs::remove_file(&root)?;
    boots_alone(
        "e2e-mbr-bios-restored",
        &target,
        Interface::Virtio,
        Firmware::Bios,
    )?;
    report("mbr/bios restore", t0);
    Ok(())
}

/// A 4 KiB-aligned 4 KiB piece of the disk inside `file` of the ext4 `root` (block size `bs`),
/// at or after file block `index`: (byte offset in the file, byte offset on the disk whose
/// partition starts at LBA `part_start`).
fn bad_spot(root: &Path, file: &str, index: u64, bs: u64, part_start: u64) -> Result<(u64, u64)> {
    let bmap = |i: u64| -> Result<u64> {
        let out = run("debugfs", &["-R", &format!("bmap {file} {i}"), path(root)?])?;
        let b: u64 = out
            .trim()
            .parse()
            .with_context(|| format!("debugfs bmap {file} {i}: {out:?}"))?;
        if b == 0 {
            bail!("block {i} of {file} is a hole");
        }
        Ok(b)
    };
    let per = 4096 / bs;
    for i in index..index + per {
        let first = bmap(i)?;
        let disk = part_start * 512 + first * bs;
        if disk.is_multiple_of(4096) {
            for k in 1..per {
                if bmap(i + k)? != first + k {
                    bail!("{file} is fragmented at block {}", i + k);
                }
            }
            return Ok((i * bs, disk));
        }
    }
    bail!("no 4 KiB-aligned block in {file} near block {index}")
}

#[test]
fn failing_disk_backup_exits_3_reports_exactly_the_bad_sectors_and_the_rest_restores_bit_exact(
) -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("failing-disk")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let root = root_of(&disk, 2, &dir)?;
    let bs = dumpe2fs_field(&root, "Block size:")?;
    let (part_start, _) = system_disk::partition_range(&disk, 2)?;
    // Two aligned 4 KiB pieces go bad: one inside song.bin, one inside data.bin. (Whole 4 KiB:
    // the guest reads block devices through its page cache, so one bad 512-byte sector may cost
    // its whole page; with all 8 sectors bad the expected report is the same either way.)
    let damaged = [
        ("/home/user/music/song.bin", 400u64),
        ("/var/lib/data.bin", 8000u64),
    ];
    let mut sectors = Vec::new();
    let mut bad_blocks = Vec::new();
    for (file, index) in damaged {
        let (in_file, on_disk) = bad_spot(&root, file, index, bs, part_start)?;
        bad_blocks.push((file, in_file, on_disk));
        sectors.extend(on_disk / 512..on_disk / 512 + 8);
    }
    std::fs::remove_file(&root)?;
    let cfg = dir.join("blkdebug.cfg");
    let failing = failing_disk(&disk, &cfg, &sectors, Interface::Virtio)?.serial("SICK1");
    let images = ext4_drive(&dir, "images.img", 200, "IMAGES", None)?;
    let target = dir.join("target.img");
    sparse_file(&target, system_disk::DISK_BYTES)?;
    let b = VmBuilder::new("e2e-failing-disk")
        .disk(failing)
        .disk(Disk::new(&images, Interface::Virtio).serial("IMG1"))
        .disk(Disk::new(&target, Interface::Virtio).serial("TGT1"));
    let mut vm = lifeboat_shell(b, &img)?;
    let dev = dev_by_serial(&mut vm, "IMG1")?;
    sh(&mut vm, &format!("mount -t ext4 {dev} /mnt"), QUICK)?;
    let (code, out) = job_status(
        &mut vm,
        "lifeboat backup serial:SICK1 /mnt/sick.lbi",
        "/tmp/backup.log",
    )?;
    assert_eq!(code, 3, "backup of the failing disk:\n{out}");
    for (file, _, on_disk) in &bad_blocks {
        assert!(
            out.contains(&format!("unreadable: 4096 bytes at byte {on_disk}")),
            "backup output lacks the bad block of {file} at byte {on_disk}:\n{out}"
        );
    }
    job(
        &mut vm,
        "lifeboat restore /mnt/sick.lbi serial:TGT1 --yes",
        "/tmp/restore.log",
    )?;
    power_off(vm)?;
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    // The ddrescue map beside the image and the image's manifest list exactly the bad blocks.
    let map = dir.join("sick.badsectors");
    debugfs_dump(&images, "/sick.badsectors", &map)?;
    let map_text = std::fs::read_to_string(&map)?;
    let bad_in_map: Vec<(u64, u64)> = map_text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [pos, size, "-"] => Some((
                    u64::from_str_radix(pos.trim_start_matches("0x"), 16).ok()?,
                    u64::from_str_radix(size.trim_start_matches("0x"), 16).ok()?,
                )),
                _ => None,
            }
        })
        .collect();
    let want: Vec<(u64, u64)> = {
        let mut w: Vec<(u64, u64)> = bad_blocks.iter().map(|b| (b.2, 4096)).collect();
        w.sort_unstable();
        w
    };
    assert_eq!(bad_in_map, want, "bad-sector map:\n{map_text}");
    let lbi = dir.join("sick.lbi");
    debugfs_dump(&images, "/sick.lbi", &lbi)?;
    let (code, info) = host_lifeboat_run(&["info", path(&lbi)?])?;
    assert_eq!(code, 0, "lifeboat info:\n{info}");
    let listed: Vec<&str> = info
        .lines()
        .filter(|l| l.starts_with("unreadable at backup time"))
        .collect();
    let want_lines: Vec<String> = want
        .iter()
        .map(|(off, len)| format!("unreadable at backup time: {len} bytes at byte {off}"))
        .collect();
    assert_eq!(listed, want_lines, "lifeboat info:\n{info}");
    // Every user file restores bit-exact, except the damaged blocks, which read as zeros.
    let restored = root_of(&target, 2, &dir)?;
    for (rel, _, _) in system_disk::USER_FILES {
        let out = dir.join("restored-file");
        debugfs_dump(&restored, &format!("/{rel}"), &out)?;
        let mut got = std::fs::read(&out)?;
        let mut want = std::fs::read(sys.root_tree.join(rel))?;
        if let Some((_, in_file, _)) = bad_blocks.iter().find(|b| b.0 == format!("/{rel}")) {
            let at = *in_file as usize;
            assert!(
                got[at..at + 4096].iter().all(|&b| b == 0),
                "the unreadable block of {rel} is not zeros in the restore"
            );
            want[at..at + 4096].fill(0);
            got[at..at + 4096].fill(0);
        }
        assert!(got == want, "{rel} differs after the restore");
    }
    report("failing disk", t0);
    Ok(())
}

/// Starts `cmd` in the background of the serial shell with its output in `log`; its pid goes to
/// `/tmp/bg.pid`.
fn start_background(vm: &mut Vm, cmd: &str, log: &str) -> Result<()> {
    sh(
        vm,
        &format!("{cmd} </dev/null >{log} 2>&1 & echo $! >/tmp/bg.pid"),
        QUICK,
    )?;
    Ok(())
}

/// Whether the background job of [`start_background`] still runs.
fn background_running(vm: &mut Vm) -> Result<bool> {
    let (code, _) = sh_status(vm, "[ -d /proc/$(cat /tmp/bg.pid) ]", QUICK)?;
    Ok(code == 0)
}

/// Polls the VM every second with `probe` (a shell command printing `N=<number>=`) until the
/// number reaches `at_least`; fails when the background job ends first or after `timeout`.
fn wait_for_number(vm: &mut Vm, probe: &str, at_least: u64, timeout: Duration) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let out = sh(vm, probe, QUICK)?;
        let n = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("N=")?.strip_suffix('='))
            .filter_map(|v| v.parse::<u64>().ok())
            .next()
            .unwrap_or(0);
        if n >= at_least {
            return Ok(n);
        }
        if !background_running(vm)? {
            let log = sh(vm, "cat /tmp/bg.log", QUICK).unwrap_or_default();
            bail!("the background job ended before `{probe}` reached {at_least}:\n{log}");
        }
        if Instant::now() >= deadline {
            bail!(
                "`{probe}` stayed below {at_least} for {} s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn power_cut_during_backup_leaves_an_image_reported_incomplete_that_restore_refuses() -> Result<()>
{
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("power-cut-backup")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let images = ext4_drive(&dir, "images.img", 200, "IMAGES", None)?;
    let b = VmBuilder::new("e2e-power-cut-backup")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&images, Interface::Virtio).serial("IMG1"));
    let mut vm = lifeboat_shell(b, &img)?;
    let dev = dev_by_serial(&mut vm, "IMG1")?;
    sh(&mut vm, &format!("mount -t ext4 {dev} /mnt"), QUICK)?;
    // Reading the source at 2 MB/s makes the backup last long enough to cut it in the middle.
    let r = vm.monitor("block_set_io_throttle d0 0 2097152 0 0 0 0")?;
    assert!(!r.to_lowercase().contains("error"), "throttle: {r}");
    start_background(
        &mut vm,
        "lifeboat backup serial:SYS1 /mnt/cut.lbi --json",
        "/tmp/bg.log",
    )?;
    wait_for_number(
        &mut vm,
        "echo N=$(grep -c '\"progress\"' /tmp/bg.log)=",
        1,
        Duration::from_secs(120),
    )?;
    wait_for_number(
        &mut vm,
        "echo N=$(stat -c %s /mnt/cut.lbi 2>/dev/null || echo 0)=",
        8 << 20,
        Duration::from_secs(120),
    )?;
    // What the backup wrote so far reaches the drive, as it would before a power cut.
    sh(&mut vm, "sync", QUICK)?;
    assert!(
        background_running(&mut vm)?,
        "the backup finished before the power cut"
    );
    // The power cut: QEMU gets SIGKILL.
    drop(vm);
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    // The host mounts nothing: e2fsck replays the drive's journal, debugfs copies the file out.
    let (code, fsck) = run_status("e2fsck", &["-fy", path(&images)?])?;
    assert!(code <= 1, "e2fsck -fy of the image drive:\n{fsck}");
    let partial = dir.join("cut.lbi");
    debugfs_dump(&images, "/cut.lbi", &partial)?;
    let len = qemu_tests::fixture::file_len(&partial)?;
    assert!(len >= 8 << 20, "the partial image has only {len} bytes");
    for cmd in ["verify", "info"] {
        let (code, out) = host_lifeboat_run(&[cmd, path(&partial)?])?;
        assert_ne!(code, 0, "`lifeboat {cmd}` of the partial image:\n{out}");
        assert!(
            out.contains("incomplete image"),
            "`lifeboat {cmd}` does not say incomplete:\n{out}"
        );
    }
    let victim = dir.join("victim.img");
    sparse_file(&victim, system_disk::DISK_BYTES)?;
    sgdisk(&victim, &["-n1:1M:0", "-c1:keep me"])?;
    let victim_before = sha256(&victim)?;
    let (code, out) = host_lifeboat_run(&["restore", path(&partial)?, path(&victim)?, "--yes"])?;
    assert_ne!(code, 0, "`lifeboat restore` of the partial image:\n{out}");
    assert!(out.contains("incomplete image"), "{out}");
    assert_eq!(
        sha256(&victim)?,
        victim_before,
        "the refused restore wrote to its target"
    );
    report("power cut during backup", t0);
    Ok(())
}

#[test]
fn power_cut_during_restore_leaves_no_partition_table_and_a_rerun_restores_the_disk() -> Result<()>
{
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("power-cut-restore")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let content = dir.join("content");
    std::fs::create_dir_all(&content)?;
    let (code, out) =
        host_lifeboat_run(&["backup", path(&disk)?, path(&content.join("sys.lbi"))?])?;
    assert_eq!(code, 0, "host backup of the system disk:\n{out}");
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    let images = ext4_drive(&dir, "images.img", 200, "IMAGES", Some(&content))?;
    // The target is an old disk with a valid GPT of its own.
    let target = dir.join("target.img");
    sparse_file(&target, system_disk::DISK_BYTES)?;
    sgdisk(&target, &["-n1:1M:0", "-c1:old data"])?;
    let (valid, table) = has_partition_table(&target)?;
    assert!(valid, "the old disk has no table to start with:\n{table}");
    let b = VmBuilder::new("e2e-power-cut-restore")
        .disk(Disk::new(&images, Interface::Virtio).serial("IMG1"))
        .disk(Disk::new(&target, Interface::Virtio).serial("TGT1"));
    let mut vm = lifeboat_shell(b, &img)?;
    let dev = dev_by_serial(&mut vm, "IMG1")?;
    sh(&mut vm, &format!("mount -t ext4 -o ro {dev} /mnt"), QUICK)?;
    // Writing the target at 2 MB/s makes the restore last long enough to cut it in the middle.
    let r = vm.monitor("block_set_io_throttle d1 0 0 2097152 0 0 0")?;
    assert!(!r.to_lowercase().contains("error"), "throttle: {r}");
    start_background(
        &mut vm,
        "lifeboat restore /mnt/sys.lbi serial:TGT1 --yes --json",
        "/tmp/bg.log",
    )?;
    wait_for_number(
        &mut vm,
        "echo N=$(grep -o '\"done\":[0-9]*' /tmp/bg.log | tail -n 1 | cut -d: -f2)=",
        8 << 20,
        Duration::from_secs(180),
    )?;
    assert!(
        background_running(&mut vm)?,
        "the restore finished before the power cut"
    );
    drop(vm);
    let (valid, table) = has_partition_table(&target)?;
    assert!(
        !valid,
        "after a power cut in the middle of the restore the target still has a partition table:\n{table}"
    );
    // Rerun after the "reboot": the restore completes and checks what it wrote.
    let b = VmBuilder::new("e2e-power-cut-restore-rerun")
        .disk(Disk::new(&images, Interface::Virtio).serial("IMG1"))
        .disk(Disk::new(&target, Interface::Virtio).serial("TGT1"));
    let mut vm = lifeboat_shell(b, &img)?;
    let dev = dev_by_serial(&mut vm, "IMG1")?;
    sh(&mut vm, &format!("mount -t ext4 -o ro {dev} /mnt"), QUICK)?;
    let out = job(
        &mut vm,
        "lifeboat restore /mnt/sys.lbi serial:TGT1 --yes --verify",
        "/tmp/restore.log",
    )?;
    assert!(out.contains("verified"), "restore output:\n{out}");
    power_off(vm)?;
    let (code, v) = run_status("sgdisk", &["-v", path(&target)?])?;
    assert!(
        code == 0 && v.contains("No problems found"),
        "sgdisk -v of the restored disk:\n{v}"
    );
    // `sgdisk -p` without its first line (which names the file).
    let table_of = |d: &Path| -> Result<String> {
        let t = run("sgdisk", &["-p", path(d)?])?;
        Ok(t.lines().skip(1).collect::<Vec<_>>().join("\n"))
    };
    assert_eq!(
        table_of(&target)?,
        table_of(&disk)?,
        "the restored partition table differs from the source's"
    );
    let root = root_of(&target, 2, &dir)?;
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&root)?])?;
    assert_eq!(code, 0, "e2fsck -fn of the restored root:\n{fsck}");
    for (rel, _, _) in system_disk::USER_FILES {
        let out = dir.join("restored-file");
        debugfs_dump(&root, &format!("/{rel}"), &out)?;
        assert!(
            std::fs::read(&out)? == std::fs::read(sys.root_tree.join(rel))?,
            "{rel} differs after the rerun restore"
        );
    }
    report("power cut during restore", t0);
    Ok(())
}

#[test]
fn full_destination_fails_clearly_removes_the_partial_image_and_leaves_the_source_intact(
) -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("full-destination")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    // About 20 MiB free for an image of about 45 MiB (the user files are incompressible).
    let images = ext4_drive(&dir, "small.img", 24, "SMALL", None)?;
    let b = VmBuilder::new("e2e-full-destination")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SYS1"))
        .disk(Disk::new(&images, Interface::Virtio).serial("IMG1"));
    let mut vm = lifeboat_shell(b, &img)?;
    let dev = dev_by_serial(&mut vm, "IMG1")?;
    sh(&mut vm, &format!("mount -t ext4 {dev} /mnt"), QUICK)?;
    let (code, out) = job_status(
        &mut vm,
        "lifeboat backup serial:SYS1 /mnt/full.lbi",
        "/tmp/backup.log",
    )?;
    assert_eq!(code, 1, "backup onto a full drive:\n{out}");
    assert!(
        out.contains("destination full") && out.contains("the partial image was removed"),
        "the message does not say what happened:\n{out}"
    );
    let listing = sh(&mut vm, "ls -la /mnt", QUICK)?;
    assert!(
        !listing.contains("full.lbi"),
        "partial image left:\n{listing}"
    );
    power_off(vm)?;
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&images)?])?;
    assert_eq!(code, 0, "e2fsck -fn of the full drive:\n{fsck}");
    let listing = run("debugfs", &["-R", "ls -l /", path(&images)?])?;
    assert!(
        !listing.contains(".lbi"),
        "partial image left on the drive:\n{listing}"
    );
    report("full destination", t0);
    Ok(())
}

#[test]
fn restore_onto_the_boot_medium_or_a_mounted_disk_is_refused_by_the_cli() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("safety")?;
    // A data disk: MBR with one ext4 partition holding a file.
    let data = dir.join("data.img");
    sparse_file(&data, 64 << 20)?;
    qemu_tests::fixture::sfdisk(&data, "label: dos\nstart=2048, type=83\n", 512)?;
    let files = dir.join("files");
    std::fs::create_dir_all(&files)?;
    std::fs::write(files.join("precious.txt"), "do not overwrite me\n")?;
    let part = dir.join("part.img");
    sparse_file(&part, 63 << 20)?;
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "DATA",
            "-d",
            path(&files)?,
            path(&part)?,
        ],
    )?;
    qemu_tests::fixture::write_into(&data, 1 << 20, &part)?;
    std::fs::remove_file(&part)?;
    let content = dir.join("content");
    std::fs::create_dir_all(&content)?;
    let (code, out) =
        host_lifeboat_run(&["backup", path(&data)?, path(&content.join("data.lbi"))?])?;
    assert_eq!(code, 0, "host backup of the data disk:\n{out}");
    let images = ext4_drive(&dir, "images.img", 32, "IMAGES", Some(&content))?;
    // The boot medium: a (writable) copy of the ISO on a USB stick, found by its label.
    let stick = dir.join("stick.iso");
    std::fs::copy(&img.iso, &stick)?;
    let data_before = sha256(&data)?;
    let stick_before = sha256(&stick)?;
    let b = VmBuilder::new("e2e-safety")
        .disk(Disk::new(&data, Interface::Virtio).serial("DATA1"))
        .disk(Disk::new(&images, Interface::Virtio).serial("IMG1"))
        .disk(Disk::new(&stick, Interface::Usb).serial("LIFEBOAT-STICK"));
    let mut vm = lifeboat_shell(b, &img)?;
    let media = sh(
        &mut vm,
        "for i in $(seq 120); do grep -q ' /run/lifeboat/media ' /proc/mounts && break; sleep 1; done; \
         echo MEDIA=$(grep ' /run/lifeboat/media ' /proc/mounts | cut -d' ' -f1)=",
        Duration::from_secs(180),
    )?;
    let medium = media
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MEDIA=")?.strip_suffix('='))
        .find(|m| m.starts_with("/dev/sd"))
        .with_context(|| format!("the USB stick was not mounted as the boot medium:\n{media}"))?;
    let stick_disk = medium
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_string();
    let dev = dev_by_serial(&mut vm, "IMG1")?;
    sh(&mut vm, &format!("mount -t ext4 -o ro {dev} /mnt"), QUICK)?;
    let data_dev = dev_by_serial(&mut vm, "DATA1")?;
    sh(
        &mut vm,
        &format!("mkdir -p /tmp/data && mount -t ext4 -o ro {data_dev}1 /tmp/data"),
        QUICK,
    )?;
    let attempts = [
        (
            format!("lifeboat restore /mnt/data.lbi {stick_disk} --yes"),
            "the medium Lifeboat booted from",
        ),
        (
            "lifeboat restore /mnt/data.lbi serial:LIFEBOAT-STICK --yes".to_string(),
            "the medium Lifeboat booted from",
        ),
        (
            "lifeboat restore /mnt/data.lbi serial:DATA1 --yes".to_string(),
            "mounted at /tmp/data",
        ),
        (
            format!("lifeboat restore /mnt/data.lbi {data_dev}1 --part 1 --yes"),
            "mounted at /tmp/data",
        ),
    ];
    for (cmd, why) in &attempts {
        let (code, out) = job_status(&mut vm, cmd, "/tmp/attempt.log")?;
        assert_eq!(code, 1, "`{cmd}` was not refused:\n{out}");
        assert!(
            out.contains("refusing to write to") && out.contains(why),
            "`{cmd}` does not say why it refused (`{why}`):\n{out}"
        );
    }
    sh(&mut vm, "umount /tmp/data", QUICK)?;
    power_off(vm)?;
    assert_eq!(sha256(&data)?, data_before, "the mounted disk was written");
    assert_eq!(sha256(&stick)?, stick_before, "the boot medium was written");
    report("safety (cli)", t0);
    Ok(())
}

/// Every regular file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push(e.path().strip_prefix(dir)?.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn single_folder_extracted_from_an_image_to_a_usb_drive_matches_the_source_tree() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let sys = system_disk::gpt_uefi(&img.vmlinuz)?;
    let dir = scratch("single-files")?;
    let disk = dir.join("system.img");
    copy_sparse(&sys.path, &disk)?;
    let before = sha256(&disk)?;
    let content = dir.join("content");
    std::fs::create_dir_all(&content)?;
    let (code, out) =
        host_lifeboat_run(&["backup", path(&disk)?, path(&content.join("sys.lbi"))?])?;
    assert_eq!(code, 0, "host backup of the system disk:\n{out}");
    assert_eq!(sha256(&disk)?, before, "the backup changed its source disk");
    let usb = ext4_drive(&dir, "usb.img", 160, "USBDRIVE", Some(&content))?;
    let b = VmBuilder::new("e2e-single-files").disk(Disk::new(&usb, Interface::Usb).serial("USB1"));
    let mut vm = lifeboat_shell(b, &img)?;
    sh(
        &mut vm,
        "for i in $(seq 60); do [ -b /dev/sda ] && break; sleep 1; done; mount -t ext4 /dev/sda /mnt && mkdir /mnt/out",
        QUICK,
    )?;
    job(
        &mut vm,
        "lifeboat extract /mnt/sys.lbi /home/user/Documents --part 2 --to /mnt/out",
        "/tmp/extract.log",
    )?;
    power_off(vm)?;
    let (code, fsck) = run_status("e2fsck", &["-fn", path(&usb)?])?;
    assert_eq!(code, 0, "e2fsck -fn of the USB drive:\n{fsck}");
    let got = dir.join("got");
    std::fs::create_dir_all(&got)?;
    run(
        "debugfs",
        &["-R", &format!("rdump /out {}", path(&got)?), path(&usb)?],
    )?;
    let want_dir = sys.root_tree.join("home/user/Documents");
    let got_dir = got.join("out/Documents");
    let want = files_under(&want_dir)?;
    assert!(!want.is_empty());
    assert_eq!(files_under(&got_dir)?, want, "extracted file list");
    for rel in &want {
        assert_eq!(
            sha256(&got_dir.join(rel))?,
            sha256(&want_dir.join(rel))?,
            "{} differs",
            rel.display()
        );
    }
    report("single files", t0);
    Ok(())
}
