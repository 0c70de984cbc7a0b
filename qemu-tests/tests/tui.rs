//! The text UI in the booted image, driven as a person at a serial terminal would drive it: keys
//! typed on the VM's serial console, the screen read through a terminal emulator
//! (`qemu_tests::screen`), results checked from the host.
//!
//! Lifeboat is booted directly (kernel + initramfs) with `console=ttyS0`, so init starts the UI on
//! the serial line. Run with `cargo xtask qemu-test`.

use anyhow::{ensure, Result};
use qemu_tests::e2e::{
    debugfs_dump, exfat_drive, ext4_drive, host_lifeboat_run, report, BOOT, JOB,
};
use qemu_tests::fixture::{
    extract, file_tree, fuse_unmount, mkfs, path, run, run_status, scratch, sgdisk, sha256,
    sparse_file, write_into, Mkfs,
};
use qemu_tests::screen::{key, Terminal};
use qemu_tests::vm::{Disk, Image, Interface, Vm, VmBuilder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a screen may take to change after a key, under TCG on a loaded host.
const STEP: Duration = Duration::from_secs(120);

/// Boots Lifeboat with its UI on the serial console and waits for the disk list.
fn boot_to_ui(b: VmBuilder, img: &Image, extra: &str) -> Result<(Vm, Terminal)> {
    let mut vm = b
        .kernel(
            &img.vmlinuz,
            &img.initramfs,
            &format!("console=ttyS0,115200 {extra}"),
        )
        .start()?;
    vm.expect("started /bin/lifeboat on ttyS0", BOOT)?;
    let mut term = Terminal::new(80, 25);
    term.wait(&mut vm, "Lifeboat", BOOT)?;
    Ok((vm, term))
}

#[test]
fn the_ui_on_the_serial_console_lists_disks_on_every_bus_by_model_and_serial() -> Result<()> {
    let img = Image::find()?;
    let dir = scratch("tui-list")?;
    let mut b = VmBuilder::new("tui-list").usb_controller();
    let serials = ["VIRT-0042", "NVME-1234", "USB-STICK-9", "SATA-77"];
    for (name, iface, serial, mib) in [
        ("virtio", Interface::Virtio, serials[0], 64),
        ("nvme", Interface::Nvme, serials[1], 128),
        ("usb", Interface::Usb, serials[2], 32),
        ("ahci", Interface::Ahci, serials[3], 48),
    ] {
        let p = dir.join(format!("{name}.img"));
        sparse_file(&p, mib << 20)?;
        let d = Disk::new(&p, iface).serial(serial);
        b = b.disk(if name == "ahci" {
            d.model("Samsung SSD 870")
        } else {
            d
        });
    }
    let (mut vm, mut term) = boot_to_ui(b, &img, "")?;
    let mut wanted = vec![
        "nvme0n1",
        "vda",
        "sda",
        "sdb",
        "QEMU NVMe Ctrl",
        "Samsung SSD 870",
        "64.0 MiB",
        "128 MiB",
        "48.0 MiB",
    ];
    // Each disk's row shows its serial (at 80 columns, cut with … when long).
    wanted.extend(serials);
    let screen = term.wait_for(&mut vm, &wanted, BOOT)?;
    eprintln!("{screen}");
    // The whole 80×25 screen is used: the help line is on the last row.
    let rows: Vec<&str> = screen.lines().collect();
    assert_eq!(rows.len(), 25, "screen:\n{screen}");
    assert!(
        rows.last().is_some_and(|l| l.contains("quit")),
        "the help line with the keys is on the bottom row:\n{screen}"
    );
    // Walking down the list shows each disk's identity in full in the details.
    let mut seen = Vec::new();
    for _ in 0..8 {
        term.pump(&mut vm)?;
        let text = term.text();
        for serial in serials {
            if text.contains(&format!("serial {serial}")) && !seen.contains(&serial) {
                seen.push(serial);
            }
        }
        term.type_keys(&mut vm, key::DOWN)?;
        std::thread::sleep(Duration::from_secs(1));
    }
    seen.sort_unstable();
    let mut all = serials.to_vec();
    all.sort_unstable();
    assert_eq!(seen, all, "screen:\n{}", term.text());
    Ok(())
}

/// A 64 MiB GPT disk: partition 1 ext4 (files from `tree`), partition 2 FAT16.
fn source_disk(dir: &Path, tree: &Path) -> Result<PathBuf> {
    let disk = dir.join("source.img");
    sparse_file(&disk, 64 << 20)?;
    sgdisk(
        &disk,
        &[
            "-n1:1M:+40M",
            "-t1:8300",
            "-c1:data",
            "-n2:0:+16M",
            "-t2:0700",
        ],
    )?;
    let ext = dir.join("p1.img");
    mkfs(Mkfs::Ext4, &ext, 40 << 20, "DATA", &["-d", path(tree)?])?;
    write_into(&disk, 1 << 20, &ext)?;
    let fat = dir.join("p2.img");
    mkfs(Mkfs::Fat16, &fat, 16 << 20, "EFI", &[])?;
    write_into(&disk, 41 << 20, &fat)?;
    Ok(disk)
}

fn partition_bytes(disk: &Path, n: u32, out: &Path) -> Result<()> {
    // First and last 512-byte sector, as sgdisk -i prints them.
    let (first, last) = qemu_tests::system_disk::partition_range(disk, n)?;
    extract(disk, first * 512, (last + 1 - first) * 512, out)
}

#[test]
fn a_backup_and_a_restore_driven_by_keys_on_the_serial_console() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("tui-backup-restore")?;
    let tree = dir.join("tree");
    file_tree(&tree, 120)?;
    let source = source_disk(&dir, &tree)?;
    let source_hash = sha256(&source)?;
    let target = dir.join("target.img");
    sparse_file(&target, 96 << 20)?;
    let target2 = dir.join("target2.img");
    sparse_file(&target2, 96 << 20)?;
    let drive = ext4_drive(&dir, "images.img", 200, "IMAGES", None)?;
    let b = VmBuilder::new("tui-backup-restore")
        .usb_controller()
        .disk(Disk::new(&source, Interface::Virtio).serial("SRC-DISK-1"))
        .disk(Disk::new(&target, Interface::Virtio).serial("DST-DISK-2"))
        .disk(Disk::new(&target2, Interface::Virtio).serial("DST-DISK-4"))
        .disk(Disk::new(&drive, Interface::Usb).serial("IMG-STICK-3"));
    let (mut vm, mut t) = boot_to_ui(b, &img, "")?;
    t.wait_for(&mut vm, &["vda", "vdb", "vdc", "sda"], BOOT)?;

    // Mount the image drive (a bare ext4 file system on the USB disk).
    t.select(&mut vm, "sda", 12)?;
    t.type_keys(&mut vm, "m")?;
    t.wait(&mut vm, "is mounted at /run/lifeboat/mnt/", STEP)?;

    // Back up the source disk into the drive's top folder.
    t.select(&mut vm, "vda", 12)?;
    t.type_keys(&mut vm, "a")?;
    t.wait(&mut vm, "Back up which disk", STEP)?;
    t.type_keys(&mut vm, key::ENTER)?;
    t.wait(&mut vm, "mounted on /run/lifeboat/mnt/sda.", STEP)?;
    t.type_keys(&mut vm, key::ENTER)?;
    t.wait(
        &mut vm,
        "s saves the new image in /run/lifeboat/mnt/sda",
        STEP,
    )?;
    t.type_keys(&mut vm, "s")?;
    t.wait(&mut vm, "Enter show the plan", STEP)?;
    t.type_keys(&mut vm, key::ENTER)?;
    let plan = t.wait(&mut vm, "Enter start the backup", STEP)?;
    eprintln!("{plan}");
    t.type_keys(&mut vm, key::ENTER)?;
    let done = t.wait(&mut vm, "Backup finished.", JOB)?;
    eprintln!("{done}");
    t.type_keys(&mut vm, key::ENTER)?;

    // Restore that image onto the blank disk.
    t.type_keys(&mut vm, "e")?;
    t.wait(&mut vm, "mounted on /run/lifeboat/mnt/sda.", STEP)?;
    t.type_keys(&mut vm, key::ENTER)?;
    t.wait(&mut vm, ".lbi", STEP)?;
    t.select(&mut vm, ".lbi", 12)?;
    t.type_keys(&mut vm, key::ENTER)?;
    t.wait(&mut vm, "The whole disk", STEP)?;
    t.type_keys(&mut vm, key::ENTER)?;
    t.wait(&mut vm, "Pick the disk to restore TO", STEP)?;
    t.select(&mut vm, "vdb", 12)?;
    t.type_keys(&mut vm, key::ENTER)?;
    t.wait(&mut vm, "Enter make the plan", STEP)?;
    t.type_keys(&mut vm, key::ENTER)?;
    let plan = t.wait(&mut vm, "Nothing has been written yet", STEP)?;
    eprintln!("{plan}");
    t.type_keys(&mut vm, key::ENTER)?;
    let confirm = t.wait(&mut vm, "Type yes", STEP)?;
    // The confirmation names the target by model, serial and size.
    ensure!(
        confirm.contains("serial DST-DISK-2")
            && (confirm.contains("96.0 MiB") || confirm.contains("100.7 MB")),
        "the confirmation must name the target's serial and size:\n{confirm}"
    );
    for k in ["y", "e", "s", key::ENTER] {
        t.type_keys(&mut vm, k)?;
    }
    let done = t.wait(&mut vm, "Restore disk finished.", JOB)?;
    eprintln!("{done}");
    t.type_keys(&mut vm, key::ENTER)?;

    // Issue 18: an encrypted backup of the same disk onto the stick, the password typed twice
    // (masked), under a name of our own; then restored onto the second blank disk.
    encrypted_backup_and_restore(&mut t, &mut vm)?;

    // Leave the UI's mount before QEMU stops, so the drive's ext4 is clean.
    t.select(&mut vm, "sda", 12)?;
    t.type_keys(&mut vm, "u")?;
    t.wait(&mut vm, "unmounted", STEP)?;
    drop(vm);

    // From the host: the source is untouched, the image verifies, the restored disk's table and
    // file systems check clean and hold the source's bytes.
    assert_eq!(sha256(&source)?, source_hash, "the source disk changed");
    let listing = run("debugfs", &["-R", "ls -l /", path(&drive)?])?;
    let name = listing
        .split_whitespace()
        .find(|w| w.ends_with(".lbi"))
        .map(str::to_string);
    let Some(name) = name else {
        anyhow::bail!("no .lbi on the image drive:\n{listing}");
    };
    let image = dir.join("copy.lbi");
    debugfs_dump(&drive, &format!("/{name}"), &image)?;
    let (code, out) = host_lifeboat_run(&["verify", path(&image)?])?;
    assert_eq!(code, 0, "lifeboat verify {name}:\n{out}");
    let (code, out) = run_status("sgdisk", &["-v", path(&target)?])?;
    assert!(
        code == 0 && out.contains("No problems found"),
        "sgdisk -v of the restored disk:\n{out}"
    );
    for n in [1, 2] {
        let (a, b) = (dir.join(format!("src-p{n}")), dir.join(format!("dst-p{n}")));
        partition_bytes(&source, n, &a)?;
        partition_bytes(&target, n, &b)?;
        assert_eq!(sha256(&a)?, sha256(&b)?, "partition {n} differs");
    }
    let (code, out) = run_status("e2fsck", &["-fn", path(&dir.join("dst-p1"))?])?;
    assert_eq!(code, 0, "e2fsck -fn of the restored ext4:\n{out}");

    // The encrypted image: nothing readable without the password, verified with it, and the
    // disk restored from it equals the one restored from the plain image.
    let secret = dir.join("secret.lbi");
    debugfs_dump(&drive, &format!("/{SECRET_IMAGE}"), &secret)?;
    let bytes = std::fs::read(&secret)?;
    for needle in [&b"SRC-DISK-1"[..], b"note-0.txt", b"that compresses well"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} is readable in the encrypted image",
            String::from_utf8_lossy(needle)
        );
    }
    let (code, out) = host_lifeboat_run(&["verify", path(&secret)?])?;
    assert_ne!(code, 0, "verify without the password must refuse:\n{out}");
    let pw = dir.join("secret.pw");
    std::fs::write(&pw, format!("{PASSWORD}\n"))?;
    let (code, out) =
        host_lifeboat_run(&["--password-file", path(&pw)?, "verify", path(&secret)?])?;
    assert_eq!(code, 0, "lifeboat verify of the encrypted image:\n{out}");
    assert_eq!(
        sha256(&target2)?,
        sha256(&target)?,
        "the disk restored from the encrypted image differs from the one restored from the plain image"
    );
    report("tui-backup-restore", t0);
    Ok(())
}

/// The name the encrypted image is saved under, and its password (typed by keystrokes).
const SECRET_IMAGE: &str = "secret.lbi";
const PASSWORD: &str = "correct horse 18";

fn encrypted_backup_and_restore(t: &mut Terminal, vm: &mut Vm) -> Result<()> {
    t.select(vm, "vda", 12)?;
    t.type_keys(vm, "a")?;
    t.wait(vm, "Back up which disk", STEP)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "mounted on /run/lifeboat/mnt/sda.", STEP)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "s saves the new image in /run/lifeboat/mnt/sda", STEP)?;
    t.type_keys(vm, "s")?;
    t.wait(vm, "Enter show the plan", STEP)?;
    // Our own file name (the default one is taken by the first backup).
    t.type_keys(vm, "n")?;
    t.wait(vm, "File name:", STEP)?;
    for _ in 0..80 {
        t.type_keys(vm, key::BACKSPACE)?;
    }
    t.wait(vm, "File name: _", STEP)?;
    t.type_keys(vm, SECRET_IMAGE)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "Enter show the plan", STEP)?;
    // The fourth option is the encryption; Space asks for the password.
    for k in [key::DOWN, key::DOWN, key::DOWN, key::SPACE] {
        t.type_keys(vm, k)?;
    }
    t.wait(vm, "Password:", STEP)?;
    t.type_keys(vm, PASSWORD)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "Type it again:", STEP)?;
    t.type_keys(vm, PASSWORD)?;
    let typed = t.wait(vm, "Type it again:  ****************_", STEP)?;
    ensure!(
        !typed.contains(PASSWORD),
        "the password shows on the screen:\n{typed}"
    );
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "Encrypt image: yes", STEP)?;
    t.type_keys(vm, key::ENTER)?;
    let plan = t.wait(vm, "Enter start the backup", STEP)?;
    eprintln!("{plan}");
    ensure!(
        plan.contains("Encrypted"),
        "the plan must say the image is encrypted:\n{plan}"
    );
    t.type_keys(vm, key::ENTER)?;
    let done = t.wait(vm, "Backup finished.", JOB)?;
    eprintln!("{done}");
    t.type_keys(vm, key::ENTER)?;

    t.type_keys(vm, "e")?;
    t.wait(vm, "mounted on /run/lifeboat/mnt/sda.", STEP)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, SECRET_IMAGE, STEP)?;
    t.select(vm, SECRET_IMAGE, 12)?;
    t.type_keys(vm, key::ENTER)?;
    // The UI made this image a moment ago and remembers its password for this session (the
    // picker's masked prompt for an image it does not know is covered by tui/tests/encrypted.rs):
    // the encrypted manifest is read and summarized without asking again.
    let summary = t.wait_for(
        vm,
        &[
            "Restore what from secret.lbi",
            "The whole disk",
            "serial SRC-DISK-1",
        ],
        JOB,
    )?;
    ensure!(
        !summary.contains(PASSWORD),
        "the password shows on the screen:\n{summary}"
    );
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "Pick the disk to restore TO", STEP)?;
    t.select(vm, "vdc", 12)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "Enter make the plan", STEP)?;
    t.type_keys(vm, key::ENTER)?;
    t.wait(vm, "Nothing has been written yet", JOB)?;
    t.type_keys(vm, key::ENTER)?;
    let confirm = t.wait(vm, "Type yes", STEP)?;
    ensure!(
        confirm.contains("serial DST-DISK-4"),
        "the confirmation must name the target's serial:\n{confirm}"
    );
    for k in ["y", "e", "s", key::ENTER] {
        t.type_keys(vm, k)?;
    }
    let done = t.wait(vm, "Restore disk finished.", JOB)?;
    eprintln!("{done}");
    t.type_keys(vm, key::ENTER)?;
    Ok(())
}

#[test]
fn the_ui_refuses_to_restore_onto_the_boot_medium_or_the_drive_holding_the_image() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("tui-safety")?;
    // An image made on the host, on a bare ext4 "image drive".
    let tree = dir.join("tree");
    file_tree(&tree, 10)?;
    let small = source_disk(&dir, &tree)?;
    let images = dir.join("images");
    std::fs::create_dir_all(&images)?;
    let (code, out) =
        host_lifeboat_run(&["backup", path(&small)?, path(&images.join("small.lbi"))?])?;
    assert_eq!(code, 0, "host backup:\n{out}");
    let drive = ext4_drive(&dir, "drive.img", 64, "IMAGES", Some(&images))?;
    // The ISO as a USB stick: init marks it as the boot medium (label LIFEBOAT).
    let stick = dir.join("stick.img");
    std::fs::copy(&img.iso, &stick)?;
    let stick_hash = sha256(&stick)?;
    let spare = dir.join("spare.img");
    sparse_file(&spare, 96 << 20)?;
    let b = VmBuilder::new("tui-safety")
        .usb_controller()
        .disk(Disk::new(&stick, Interface::Usb).serial("LIFEBOAT-STICK"))
        .disk(Disk::new(&drive, Interface::Virtio).serial("IMG-DRIVE"))
        .disk(Disk::new(&spare, Interface::Virtio).serial("SPARE-1"));
    let (mut vm, mut t) = boot_to_ui(b, &img, "")?;
    t.wait_for(&mut vm, &["sda", "vda", "vdb", "BOOT"], BOOT)?;
    t.select(&mut vm, "vda", 12)?;
    t.type_keys(&mut vm, "m")?;
    t.wait(&mut vm, "is mounted at /run/lifeboat/mnt/", STEP)?;
    t.type_keys(&mut vm, "e")?;
    t.wait(&mut vm, "mounted on /run/lifeboat/mnt/vda.", STEP)?;
    t.type_keys(&mut vm, key::ENTER)?;
    t.wait(&mut vm, "small.lbi", STEP)?;
    t.select(&mut vm, "small.lbi", 12)?;
    t.type_keys(&mut vm, key::ENTER)?;
    t.wait(&mut vm, "The whole disk", STEP)?;
    t.type_keys(&mut vm, key::ENTER)?;
    let targets = t.wait(&mut vm, "Pick the disk to restore TO", STEP)?;
    eprintln!("{targets}");
    let marked = |screen: &str, name: &str| {
        screen.lines().any(|l| {
            l.trim_start_matches('│')
                .trim_start()
                .starts_with(&format!("x {name}"))
        })
    };
    assert!(
        marked(&targets, "sda"),
        "the boot medium is not marked refused:\n{targets}"
    );
    assert!(
        marked(&targets, "vda"),
        "the image's drive is not marked refused:\n{targets}"
    );
    assert!(
        !marked(&targets, "vdb"),
        "the spare disk is refused:\n{targets}"
    );
    // Choosing a refused disk says why and goes nowhere.
    for (name, why) in [
        ("sda", "booted from"),
        ("vda", "the image is read from this drive"),
    ] {
        t.select(&mut vm, name, 12)?;
        t.type_keys(&mut vm, key::ENTER)?;
        std::thread::sleep(Duration::from_secs(2));
        t.pump(&mut vm)?;
        let screen = t.text();
        assert!(
            screen.contains("Pick the disk to restore TO") && !screen.contains("make the plan"),
            "choosing {name} went on:\n{screen}"
        );
        // The reason may wrap: compare with the box edges and line breaks folded away.
        let flat = screen
            .replace(['│', '\n'], " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains(why),
            "no reason `{why}` for {name}:\n{screen}"
        );
    }
    t.type_keys(&mut vm, key::ESC)?;
    drop(vm);
    assert_eq!(sha256(&stick)?, stick_hash, "the boot medium was written");
    // The drive was mounted read-write by the UI (that is how it holds images), so its bytes
    // may change (ext4 mount count); its image is still there and whole.
    let back = dir.join("small-back.lbi");
    debugfs_dump(&drive, "/small.lbi", &back)?;
    let (code, out) = host_lifeboat_run(&["verify", path(&back)?])?;
    assert_eq!(code, 0, "the image on the drive:\n{out}");
    report("tui-safety", t0);
    Ok(())
}

/// The bottom row of the screen: the help line naming the keys.
fn help_line(screen: &str) -> String {
    screen.lines().last().unwrap_or_default().to_string()
}

/// Presses `k` after checking that the help line on the screen names it as `named` (e.g.
/// `a back up`): a new user finds every key on the screen.
fn press(t: &mut Terminal, vm: &mut Vm, k: &str, named: &str) -> Result<()> {
    // The screen arrives over a 115200-baud line: the body can be drawn before the help line, so
    // wait a little for the help line to catch up before deciding it does not name the key.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        t.pump(vm)?;
        let screen = t.text();
        if help_line(&screen).contains(named) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the help line does not name `{named}`:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    t.type_keys(vm, k)
}

/// Moves the selection with ↑ and ↓ (checking the help line names them) until the selected row
/// has `name` as one of its words: down first, then up when the bottom is reached.
fn choose(t: &mut Terminal, vm: &mut Vm, name: &str) -> Result<()> {
    for dir in [key::DOWN, key::UP] {
        for _ in 0..16 {
            t.pump(vm)?;
            let before = t.selected();
            if before
                .iter()
                .any(|row| row.split_whitespace().any(|w| w == name))
            {
                return Ok(());
            }
            press(t, vm, dir, "↑↓ move")?;
            let deadline = Instant::now() + Duration::from_secs(20);
            while t.selected() == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                t.pump(vm)?;
            }
            if t.selected() == before {
                break;
            }
        }
    }
    anyhow::bail!(
        "no row showing `{name}` could be selected with ↑↓; the screen shows:\n{}",
        t.text()
    )
}

#[test]
fn a_first_backup_onto_an_unmounted_exfat_stick_needs_only_the_keys_on_the_screen() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("tui-first-backup")?;
    let tree = dir.join("tree");
    file_tree(&tree, 40)?;
    let system = source_disk(&dir, &tree)?;
    let system_hash = sha256(&system)?;
    // A freshly formatted exFAT stick (MBR, one partition labelled BACKUPS), not mounted.
    let stick = exfat_drive(&dir, 96)?;
    let b = VmBuilder::new("tui-first-backup")
        .usb_controller()
        .disk(Disk::new(&system, Interface::Virtio).serial("SYSTEM-DISK-1"))
        .disk(Disk::new(&stick, Interface::Usb).serial("NEW-STICK-7"));
    let (mut vm, mut t) = boot_to_ui(b, &img, "")?;
    let first = t.wait_for(&mut vm, &["vda", "sda", "BACKUPS"], BOOT)?;
    eprintln!("{first}");

    // Disk list: the system disk, then "a back up".
    choose(&mut t, &mut vm, "vda")?;
    press(&mut t, &mut vm, "a", "a back up")?;
    t.wait(&mut vm, "Back up which disk", STEP)?;
    choose(&mut t, &mut vm, "vda")?;
    press(&mut t, &mut vm, key::ENTER, "Enter choose")?;
    // The destination step offers the stick as a drive (nothing is mounted yet).
    let dest = t.wait(&mut vm, "Enter on a drive mounts it", STEP)?;
    eprintln!("{dest}");
    ensure!(
        !dest.contains("No such file") && !dest.contains("os error"),
        "a raw OS error on the destination step:\n{dest}"
    );
    ensure!(
        dest.lines()
            .any(|l| l.contains("sda1") && l.contains("exfat \"BACKUPS\"")),
        "the destination step does not offer the exFAT stick:\n{dest}"
    );
    choose(&mut t, &mut vm, "sda1")?;
    press(&mut t, &mut vm, key::ENTER, "Enter open")?;
    // Enter mounted the stick and opened its top folder.
    let opened = t.wait(
        &mut vm,
        "s saves the new image in /run/lifeboat/mnt/sda1",
        STEP,
    )?;
    eprintln!("{opened}");
    press(&mut t, &mut vm, "s", "s save here")?;
    t.wait(&mut vm, "Enter show the plan", STEP)?;
    press(&mut t, &mut vm, key::ENTER, "Enter show the plan")?;
    let plan = t.wait(&mut vm, "Enter start the backup", STEP)?;
    eprintln!("{plan}");
    press(&mut t, &mut vm, key::ENTER, "Enter start the backup")?;
    let done = t.wait(&mut vm, "Backup finished.", JOB)?;
    eprintln!("{done}");
    press(&mut t, &mut vm, key::ENTER, "Enter back to the disks")?;
    // Back on the disk list, the drive the picker mounted is unmounted again.
    t.wait(&mut vm, "/run/lifeboat/mnt/sda1 is unmounted", STEP)?;
    // The disk list read again shows the stick's partition free to use.
    let deadline = Instant::now() + STEP;
    let back = loop {
        t.pump(&mut vm)?;
        let screen = t.text();
        let row = screen
            .lines()
            .find(|l| l.contains("sda1"))
            .unwrap_or_default();
        if !row.contains("on /run") && row.contains("free") {
            break screen;
        }
        ensure!(
            Instant::now() < deadline,
            "the disk list still shows the stick mounted:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    eprintln!("{back}");
    drop(vm);

    // From the host: the system disk is untouched, the stick's exFAT checks clean (it was
    // unmounted), and the image on it verifies.
    assert_eq!(sha256(&system)?, system_hash, "the system disk changed");
    let dev = run(
        "losetup",
        &["--find", "--show", "--offset", "1048576", path(&stick)?],
    )?;
    let dev = dev.trim().to_string();
    let checked = run_status("fsck.exfat", &["-n", &dev]);
    let mnt = dir.join("stick-mnt");
    std::fs::create_dir_all(&mnt)?;
    let verified = run("mount.exfat-fuse", &["-o", "ro", &dev, path(&mnt)?]).and_then(|_| {
        let names: Vec<PathBuf> = std::fs::read_dir(&mnt)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "lbi"))
            .collect();
        let listing = format!("{names:?}");
        let [image] = names.as_slice() else {
            anyhow::bail!("not exactly one .lbi on the stick: {listing}");
        };
        eprintln!("image on the stick: {}", image.display());
        host_lifeboat_run(&["verify", path(image)?])
    });
    let unmounted = fuse_unmount(&mnt, &dev);
    run("losetup", &["-d", &dev])?;
    let (code, out) = checked?;
    assert_eq!(code, 0, "fsck.exfat -n of the stick after the UI:\n{out}");
    let (code, out) = verified?;
    unmounted?;
    assert_eq!(code, 0, "lifeboat verify of the image on the stick:\n{out}");
    report("tui-first-backup", t0);
    Ok(())
}
