//! The technician's stick, in every form technicians' sticks take: the unattended job (back up
//! the system disk by serial, verify the image) run from a FAT32 "superfloppy" (no partition
//! table), a FAT32 partition, an exFAT partition and an NTFS partition (through ntfs-3g), one VM
//! boot each; then the jobs that must not run — two sticks carrying the label (nothing runs, both
//! disks are named, the UI comes up) and a stick without the job file (the reason is written on
//! the stick, the UI comes up, `lifeboat.after=poweroff` is not followed).
//!
//! The sticks are read back on the host with `lifeboat ls/extract` (the host kernel may have no
//! vfat or exfat driver) and checked with the file system's own checker.
//!
//! Run with `cargo xtask qemu-test --test job_volumes`.

use anyhow::{ensure, Context, Result};
use qemu_tests::e2e::{host_lifeboat_run, report, BOOT, JOB as JOB_TIME};
use qemu_tests::fixture::{
    extract, file_tree, fuse_unmount, mkfs, path, run, run_status, scratch, sfdisk, sgdisk, sha256,
    sparse_file, write_into, Mkfs,
};
use qemu_tests::screen::Terminal;
use qemu_tests::vm::{Disk, Image, Interface, VmBuilder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LABEL: &str = "LBJOB";
const SOURCE_SERIAL: &str = "SYS1";
const STICK_MIB: u64 = 96;
const JOB_FILE: &str = "# the technician's stick: image the system disk and check the image\n\
[[step]]\n\
action = \"backup\"\n\
source = \"serial:SYS1\"\n\
image = \"{model}-{serial}-{date}.lbi\"\n\
\n\
[[step]]\n\
action = \"verify\"\n";

/// The file system of a stick, and whether it sits in an MBR partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stick {
    Fat32Superfloppy,
    Fat32Mbr,
    ExfatMbr,
    NtfsMbr,
}

impl Stick {
    fn partitioned(self) -> bool {
        self != Stick::Fat32Superfloppy
    }
}

/// A 64 MiB GPT "system disk": one ext4 partition full of files.
fn source_disk(dir: &Path) -> Result<PathBuf> {
    let disk = dir.join("system.img");
    sparse_file(&disk, 64 << 20)?;
    sgdisk(&disk, &["-n1:1M:0", "-t1:8300", "-c1:root"])?;
    let (first, last) = qemu_tests::system_disk::partition_range(&disk, 1)?;
    let tree = dir.join("tree");
    file_tree(&tree, 40)?;
    let fs = dir.join("root.img");
    mkfs(
        Mkfs::Ext4,
        &fs,
        (last + 1 - first) * 512,
        "root",
        &["-d", path(&tree)?],
    )?;
    write_into(&disk, first * 512, &fs)?;
    std::fs::remove_file(&fs)?;
    Ok(disk)
}

/// Puts `files` (name at the root, contents) on the file system image `fs_img`.
fn put_files(kind: Stick, fs_img: &Path, files: &[(&str, &str)], dir: &Path) -> Result<()> {
    for (name, text) in files {
        let src = dir.join(format!("put-{name}"));
        std::fs::write(&src, text)?;
        match kind {
            Stick::Fat32Superfloppy | Stick::Fat32Mbr => {
                run(
                    "mcopy",
                    &["-i", path(fs_img)?, path(&src)?, &format!("::/{name}")],
                )?;
            }
            Stick::NtfsMbr => {
                run("ntfscp", &["-q", path(fs_img)?, path(&src)?, name])?;
            }
            Stick::ExfatMbr => {
                let dev = run("losetup", &["--find", "--show", path(fs_img)?])?;
                let dev = dev.trim().to_string();
                let mnt = dir.join("exfat-mnt");
                std::fs::create_dir_all(&mnt)?;
                let mounted = run("mount.exfat-fuse", &[&dev, path(&mnt)?]);
                let written =
                    mounted.and_then(|_| std::fs::write(mnt.join(name), text).map_err(Into::into));
                let unmounted = fuse_unmount(&mnt, &dev);
                run("losetup", &["-d", &dev])?;
                written?;
                unmounted?;
            }
        }
    }
    Ok(())
}

/// A stick of `kind` labelled `label` holding `files` at its root.
fn stick(
    dir: &Path,
    name: &str,
    kind: Stick,
    label: &str,
    files: &[(&str, &str)],
) -> Result<PathBuf> {
    let disk = dir.join(format!("{name}.img"));
    let fs_img = if kind.partitioned() {
        dir.join(format!("{name}-part.img"))
    } else {
        disk.clone()
    };
    let fs_bytes = if kind.partitioned() {
        (STICK_MIB - 1) << 20
    } else {
        STICK_MIB << 20
    };
    let (mkfs_kind, mbr_type) = match kind {
        Stick::Fat32Superfloppy | Stick::Fat32Mbr => (Mkfs::Fat32, "c"),
        Stick::ExfatMbr => (Mkfs::Exfat, "7"),
        Stick::NtfsMbr => (Mkfs::Ntfs, "7"),
    };
    mkfs(mkfs_kind, &fs_img, fs_bytes, label, &[])?;
    put_files(kind, &fs_img, files, dir)?;
    if kind.partitioned() {
        sparse_file(&disk, STICK_MIB << 20)?;
        sfdisk(&disk, &format!("start=2048, type={mbr_type}\n"), 512)?;
        let table = run("sfdisk", &["-d", path(&disk)?])?;
        ensure!(table.contains("start=        2048"), "sfdisk -d:\n{table}");
        write_into(&disk, 1 << 20, &fs_img)?;
        std::fs::remove_file(&fs_img)?;
    }
    Ok(disk)
}

/// `lifeboat ARGS` on the host, failing with its output unless it exits 0.
fn host(args: &[&str]) -> Result<String> {
    let (code, out) = host_lifeboat_run(args)?;
    ensure!(
        code == 0,
        "host `lifeboat {}` exited {code}:\n{out}",
        args.join(" ")
    );
    Ok(out)
}

/// Copies `/name` out of the stick's file system into `out_dir`; returns the copy.
fn read_back(stick: &Path, kind: Stick, name: &str, out_dir: &Path) -> Result<PathBuf> {
    let inside = format!("/{name}");
    let mut args = vec![
        "extract",
        path(stick)?,
        inside.as_str(),
        "--to",
        path(out_dir)?,
    ];
    if kind.partitioned() {
        args.extend(["--part", "1"]);
    }
    host(&args)?;
    Ok(out_dir.join(name))
}

/// The stick's own checker finds nothing wrong with its file system.
fn check_stick_fs(stick: &Path, kind: Stick, dir: &Path) -> Result<()> {
    let fs_img = if kind.partitioned() {
        let p = dir.join("check-part.img");
        extract(stick, 1 << 20, (STICK_MIB - 1) << 20, &p)?;
        p
    } else {
        stick.to_path_buf()
    };
    let (code, out) = match kind {
        Stick::Fat32Superfloppy | Stick::Fat32Mbr => {
            run_status("fsck.vfat", &["-n", path(&fs_img)?])?
        }
        Stick::ExfatMbr => run_status("fsck.exfat", &["-n", path(&fs_img)?])?,
        Stick::NtfsMbr => run_status("ntfsfix", &["--no-action", path(&fs_img)?])?,
    };
    ensure!(code == 0, "{kind:?}: the checker of the stick says:\n{out}");
    Ok(())
}

/// Boots with the job `LBJOB:/tech.toml` and `lifeboat.after=poweroff`, the source disk on
/// virtio and `sticks` on USB.
fn boot_job(
    name: &str,
    img: &Image,
    source: &Path,
    sticks: &[(&Path, &str)],
) -> Result<qemu_tests::vm::Vm> {
    let mut b =
        VmBuilder::new(name).disk(Disk::new(source, Interface::Virtio).serial(SOURCE_SERIAL));
    for (p, serial) in sticks {
        b = b.disk(Disk::new(*p, Interface::Usb).serial(serial));
    }
    b.kernel(
        &img.vmlinuz,
        &img.initramfs,
        &format!("console=ttyS0,115200 lifeboat.job={LABEL}:/tech.toml lifeboat.after=poweroff"),
    )
    .start()
}

/// The technician's scenario on one stick kind.
fn technician_job_runs_from(kind: Stick, name: &str) -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch(name)?;
    let source = source_disk(&dir)?;
    let before = sha256(&source)?;
    let usb = stick(&dir, "stick", kind, LABEL, &[("tech.toml", JOB_FILE)])?;
    let mut vm = boot_job(name, &img, &source, &[(&usb, "STICK-1")])?;
    vm.expect("job /mnt/job/tech.toml started", BOOT)?;
    vm.expect("unattended job finished", JOB_TIME)?;
    vm.expect("lifeboat: powering off", Duration::from_secs(120))?;
    vm.wait_exit(Duration::from_secs(120))?;
    drop(vm);
    ensure!(
        sha256(&source)? == before,
        "the backup changed its source disk"
    );
    check_stick_fs(&usb, kind, &dir)?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let report_file = read_back(&usb, kind, "tech.report.txt", &out)?;
    let report_text = std::fs::read_to_string(&report_file)?;
    ensure!(
        report_text.contains("lifeboat run exited: exit code 0"),
        "{kind:?}: the job did not succeed; report:\n{report_text}"
    );
    let mut ls_args = vec!["ls", path(&usb)?, "/"];
    if kind.partitioned() {
        ls_args.extend(["--part", "1"]);
    }
    let listing = host(&ls_args)?;
    let image_name = listing
        .split_whitespace()
        .find(|w| w.ends_with(".lbi") && w.contains(SOURCE_SERIAL))
        .with_context(|| {
            format!("{kind:?}: no image named by the serial on the stick:\n{listing}")
        })?
        .to_string();
    let image = read_back(&usb, kind, &image_name, &out)?;
    host(&["verify", path(&image)?])?;
    report(&format!("technician job from a {kind:?} stick"), t0);
    Ok(())
}

#[test]
fn technician_job_runs_from_a_fat32_superfloppy_stick() -> Result<()> {
    technician_job_runs_from(Stick::Fat32Superfloppy, "job-fat32-superfloppy")
}

#[test]
fn technician_job_runs_from_a_fat32_partition() -> Result<()> {
    technician_job_runs_from(Stick::Fat32Mbr, "job-fat32-mbr")
}

#[test]
fn technician_job_runs_from_an_exfat_partition() -> Result<()> {
    technician_job_runs_from(Stick::ExfatMbr, "job-exfat-mbr")
}

#[test]
fn technician_job_runs_from_an_ntfs_partition_through_ntfs_3g() -> Result<()> {
    technician_job_runs_from(Stick::NtfsMbr, "job-ntfs-mbr")
}

/// Waits for the UI on the serial console, then checks the machine stays up (no power-off).
fn ui_comes_up_instead(vm: &mut qemu_tests::vm::Vm) -> Result<()> {
    vm.expect("started /bin/lifeboat on ttyS0", Duration::from_secs(120))?;
    let mut term = Terminal::new(80, 25);
    term.wait(vm, "Lifeboat", BOOT)?;
    std::thread::sleep(Duration::from_secs(5));
    ensure!(vm.running(), "the machine powered off although no job ran");
    Ok(())
}

#[test]
fn two_sticks_with_the_job_label_run_nothing_name_both_disks_and_show_the_ui() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("job-ambiguous")?;
    let source = source_disk(&dir)?;
    let before = sha256(&source)?;
    let a = stick(
        &dir,
        "a",
        Stick::Fat32Superfloppy,
        LABEL,
        &[("tech.toml", JOB_FILE)],
    )?;
    let b = stick(
        &dir,
        "b",
        Stick::Fat32Mbr,
        LABEL,
        &[("tech.toml", JOB_FILE)],
    )?;
    let (a_before, b_before) = (sha256(&a)?, sha256(&b)?);
    let mut vm = boot_job(
        "job-ambiguous",
        &img,
        &source,
        &[(&a, "STICK-A"), (&b, "STICK-B")],
    )?;
    let said = vm.expect("the text UI starts in", BOOT)?;
    let line = said
        .lines()
        .rev()
        .find(|l| l.contains("not run"))
        .unwrap_or_default()
        .to_string();
    ensure!(
        line.contains(&format!("2 file systems are labelled {LABEL}"))
            && line.contains("STICK-A")
            && line.contains("STICK-B")
            && line.contains("running nothing"),
        "the message names both disks: {line}\n{said}"
    );
    ensure!(
        !said.contains("job /mnt/job/tech.toml started"),
        "a job started:\n{said}"
    );
    ui_comes_up_instead(&mut vm)?;
    drop(vm);
    ensure!(sha256(&source)? == before, "the source disk changed");
    ensure!(
        sha256(&a)? == a_before && sha256(&b)? == b_before,
        "a stick was written although nothing ran"
    );
    report("ambiguous job label", t0);
    Ok(())
}

#[test]
fn a_missing_job_file_is_reported_on_the_stick_and_the_ui_comes_up_without_power_off() -> Result<()>
{
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("job-missing")?;
    let source = source_disk(&dir)?;
    let usb = stick(
        &dir,
        "stick",
        Stick::Fat32Mbr,
        LABEL,
        &[("other.toml", JOB_FILE)],
    )?;
    let mut vm = boot_job("job-missing", &img, &source, &[(&usb, "STICK-1")])?;
    let said = vm.expect("the text UI starts in", BOOT)?;
    ensure!(
        said.contains("not run: job file /tech.toml not found on /dev/sda1"),
        "{said}"
    );
    ui_comes_up_instead(&mut vm)?;
    drop(vm);
    check_stick_fs(&usb, Stick::Fat32Mbr, &dir)?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let report_file = read_back(&usb, Stick::Fat32Mbr, "tech.report.txt", &out)?;
    let text = std::fs::read_to_string(&report_file)?;
    ensure!(
        text.contains("[lifeboat-init] job not run: job file /tech.toml not found"),
        "report:\n{text}"
    );
    report("missing job file", t0);
    Ok(())
}
