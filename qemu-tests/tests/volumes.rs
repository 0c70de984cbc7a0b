//! md RAID members made by `mdadm` in the booted image (issue 16): the build host has no md
//! driver, the booted image has one (`md_mod`, `raid1`) and mdadm.
//!
//! Two disks, each with three partitions, carry three RAID1 arrays, one per superblock format:
//! 1.2 (4 KiB in), 1.0 (at the end) and 0.90 (64 KiB-aligned at the end). In the VM, `lifeboat
//! list` names the members, and a clone onto one of the disks is refused — while the arrays run
//! (the kernel holds the members) and after they are stopped (only the superblocks say so: the
//! md check of `engine::safety`). Back on the host, `lifeboat info --json` reads every member
//! with the superblock's format, level, role, array name and UUID (TYPE, UUID and LABEL as
//! `blkid -p` reports them), with no checksum warning (the checksums match mdadm's). One member
//! of the 1.2 array (an ext4 on it) is backed up alone: only its metadata areas and the ext4's
//! used blocks; restored onto a blank partition it assembles (degraded) and checks clean.
//!
//! The Ubuntu-style LUKS2 + LVM disk is backed up with its key twice: as the ciphertext of the
//! used blocks (restored locked, same header), and `--decrypted` (the plaintext PV: browsed and
//! extracted from on the host without the key, restored unencrypted, fsck clean).
//!
//! md arrays (issue 16): three disks carry a RAID1 (ext4 made in the VM) and a RAID5 (an XFS made
//! on the host, restored onto the running array by Lifeboat). Booted again, init has assembled
//! both read-only: `lifeboat list` names them with their members' disks, the members and the
//! read-only arrays are refused as targets, one RAID5 member alone is said not to hold a file
//! system, each array is backed up as its file system's used blocks and restored onto a plain
//! partition (fsck clean, files equal), and no member's byte changed. A third boot without one
//! disk images the degraded RAID5.
//!
//! Run with `cargo xtask qemu-test --test volumes`.

use anyhow::{ensure, Context, Result};
use qemu_tests::e2e::{
    dev_by_serial, host_lifeboat_run, job_status, lifeboat_shell, power_off, report, sh, QUICK,
};
use qemu_tests::fixture::{path, run, scratch, sgdisk, sparse_file};
use qemu_tests::vm::{Disk, Image, Interface, VmBuilder};
use std::path::Path;
use std::time::Instant;

const MIB: u64 = 1 << 20;
/// The three member partitions of each disk: (number, start MiB, metadata format).
const MEMBERS: [(u32, u64, &str); 3] = [(1, 1, "1.2"), (2, 11, "1.0"), (3, 21, "0.90")];
const PART_MIB: u64 = 10;

/// A GPT disk with the three member partitions (type Linux RAID), nothing on them yet.
fn member_disk(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    let disk = dir.join(name);
    sparse_file(&disk, 33 * MIB)?;
    let mut args = Vec::new();
    for (n, start, _) in MEMBERS {
        args.push(format!("-n{n}:{start}M:+{PART_MIB}M"));
        args.push(format!("-t{n}:fd00"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    sgdisk(&disk, &refs)?;
    Ok(disk)
}

/// `blkid -p` of the partition at `start` MiB of `disk`: (TYPE, UUID, LABEL).
fn blkid_at(disk: &Path, start: u64) -> Result<(String, String, String)> {
    let out = run(
        "blkid",
        &[
            "-p",
            "-o",
            "export",
            "-O",
            &(start * MIB).to_string(),
            "-S",
            &(PART_MIB * MIB).to_string(),
            path(disk)?,
        ],
    )?;
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    Ok((get("TYPE"), get("UUID"), get("LABEL")))
}

#[test]
fn md_raid1_members_made_by_mdadm_are_recognised_and_never_written() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("volumes/md")?;
    let a = member_disk(&dir, "a.img")?;
    let b = member_disk(&dir, "b.img")?;
    let source = dir.join("source.img");
    sparse_file(&source, 8 * MIB)?;
    sgdisk(&source, &["-n1:1M:+4M", "-t1:8300"])?;
    // A blank disk with one partition the size of a member, to restore a member's image into.
    let blank = dir.join("blank.img");
    sparse_file(&blank, (2 + PART_MIB) * MIB)?;
    sgdisk(&blank, &[&format!("-n1:1M:+{PART_MIB}M"), "-t1:fd00"])?;

    let vm_b = VmBuilder::new("volumes-md")
        .disk(Disk::new(&a, Interface::Virtio).serial("MDA"))
        .disk(Disk::new(&b, Interface::Virtio).serial("MDB"))
        .disk(Disk::new(&source, Interface::Virtio).serial("SRC"))
        .disk(Disk::new(&blank, Interface::Virtio).serial("MDT"));
    let mut vm = lifeboat_shell(vm_b, &img)?;
    let da = dev_by_serial(&mut vm, "MDA")?;
    let db = dev_by_serial(&mut vm, "MDB")?;
    let src = dev_by_serial(&mut vm, "SRC")?;
    let dt = dev_by_serial(&mut vm, "MDT")?;
    sh(&mut vm, "modprobe raid1", QUICK)?;
    for (n, (part, _, metadata)) in MEMBERS.iter().enumerate() {
        let name = if *metadata == "0.90" {
            String::new()
        } else {
            " --homehost=lifeboat --name=r{n}".replace("{n}", &n.to_string())
        };
        sh(
            &mut vm,
            &format!(
                "mdadm --create /dev/md{n} --run --level=1 --raid-devices=2 --metadata={metadata}\
                 {name} {da}{part} {db}{part} 2>&1"
            ),
            QUICK,
        )?;
    }
    // md writes its superblocks past the members' page cache, which still holds what mdadm read
    // of them before: drop it, as a fresh boot would have nothing cached.
    let drop_caches = "sync; echo 3 > /proc/sys/vm/drop_caches";
    sh(&mut vm, drop_caches, QUICK)?;
    let stat = sh(&mut vm, "cat /proc/mdstat", QUICK)?;
    ensure!(
        stat.matches(" active raid1 ").count() == 3,
        "three RAID1 arrays are not running:\n{stat}"
    );
    // The 1.2 array holds an ext4 with a file: a member's backup keeps only its used blocks.
    sh(
        &mut vm,
        "/usr/sbin/mke2fs -q -F -t ext4 -L mdroot /dev/md0 2>&1 && mkdir -p /mnt/md \
         && mount -t ext4 /dev/md0 /mnt/md && head -c 2000000 /dev/urandom > /mnt/md/data.bin \
         && sync",
        QUICK,
    )?;
    let md_sum = vm_sum(&mut vm, "cat /mnt/md/data.bin")?;
    sh(
        &mut vm,
        "umount /mnt/md && mdadm --wait /dev/md0; true",
        QUICK,
    )?;
    let md_used = ext4_used_in_vm(&mut vm, "/dev/md0")?;

    let list = sh(&mut vm, "lifeboat list 2>&1", QUICK)?;
    ensure!(
        list.matches("linux_raid_member").count() >= 6,
        "`lifeboat list` does not name the six members:\n{list}"
    );
    // Running arrays: the kernel holds the members.
    let (code, out) = job_status(
        &mut vm,
        &format!("lifeboat clone {src} {da} --yes"),
        "/tmp/clone-held.log",
    )?;
    ensure!(
        code == 1 && out.contains(&format!("refusing to write to {da}")),
        "a clone onto a disk whose partitions run in md arrays was not refused (exit {code}):\n{out}"
    );
    // Stopped arrays: only the superblocks say the partitions belong to them.
    sh(&mut vm, "mdadm --stop --scan 2>&1", QUICK)?;
    sh(&mut vm, drop_caches, QUICK)?;
    let stat = sh(&mut vm, "cat /proc/mdstat", QUICK)?;
    ensure!(
        !stat.contains(" active "),
        "the arrays did not stop:\n{stat}"
    );
    let (code, out) = job_status(
        &mut vm,
        &format!("lifeboat clone {src} {db} --yes"),
        "/tmp/clone-stopped.log",
    )?;
    ensure!(
        code == 1
            && out.contains(&format!(
                "refusing to write to {db}: partition 1 of it is a member of the md RAID1 array \
                 \"lifeboat:r0\""
            ))
            && out.contains("RAID1 member, device 1 of 2")
            && out.contains("mdadm --zero-superblock"),
        "a clone onto a disk holding stopped md members was not refused by their superblocks \
         (exit {code}):\n{out}"
    );
    // One member alone: its superblock and bitmap areas plus the used blocks of the ext4 at its
    // data offset. Restored onto a blank partition, it is the same member: mdadm assembles the
    // array from it (degraded) and the ext4 checks clean with the same file.
    let out = qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat backup {da} /tmp/member.lbi --part 1"),
        "/tmp/member.log",
    )?;
    ensure!(
        out.contains("used blocks of the ext4 in its data area"),
        "the member's backup does not say it keeps the used blocks of the ext4 inside:\n{out}"
    );
    let member_size: u64 = sh(&mut vm, "stat -c %s /tmp/member.lbi", QUICK)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .context("no image size")?;
    // The 2 MB of random data, ext4's metadata and the member's first MiB (superblock, bitmap).
    let member_bound = (md_used + MIB) * 102 / 100;
    ensure!(
        member_size <= member_bound,
        "the member's image is {member_size} bytes, more than its used bytes and metadata allow \
         ({member_bound}; the ext4 uses {md_used})"
    );
    qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat restore /tmp/member.lbi {dt}1 --yes"),
        "/tmp/member-restore.log",
    )?;
    sh(&mut vm, drop_caches, QUICK)?;
    let uuid_of = |vm: &mut qemu_tests::vm::Vm, dev: &str| -> Result<String> {
        let out = sh(vm, &format!("mdadm --examine {dev} 2>&1"), QUICK)?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Array UUID :"))
            .map(|u| u.trim().to_string())
            .with_context(|| format!("no Array UUID in mdadm --examine {dev}:\n{out}"))
    };
    let want = uuid_of(&mut vm, &format!("{da}1"))?;
    assert_eq!(
        uuid_of(&mut vm, &format!("{dt}1"))?,
        want,
        "the restored member belongs to another array"
    );
    sh(
        &mut vm,
        &format!("mdadm --assemble --run /dev/md9 {dt}1 2>&1"),
        QUICK,
    )?;
    let (code, fsck) =
        qemu_tests::e2e::sh_status(&mut vm, "/usr/sbin/e2fsck -fn /dev/md9 2>&1", QUICK)?;
    ensure!(
        code == 0,
        "e2fsck -fn of the array assembled from the restored member exited {code}:\n{fsck}"
    );
    sh(&mut vm, "mount -t ext4 -o ro /dev/md9 /mnt/md", QUICK)?;
    assert_eq!(
        vm_sum(&mut vm, "cat /mnt/md/data.bin")?,
        md_sum,
        "a file of the array assembled from the restored member differs"
    );
    sh(
        &mut vm,
        "umount /mnt/md && mdadm --stop /dev/md9 2>&1",
        QUICK,
    )?;
    eprintln!(
        "md: member image {member_size} bytes for a {PART_MIB} MiB member (ext4 uses {md_used})"
    );
    power_off(vm)?;

    // The host reads the members mdadm wrote, as blkid and mdadm --examine do.
    for (disk, role) in [(&a, 0), (&b, 1)] {
        let (code, out) = host_lifeboat_run(&["info", "--json", path(disk)?])?;
        ensure!(
            code == 0,
            "lifeboat info {} exited {code}:\n{out}",
            disk.display()
        );
        let report: serde_json::Value = serde_json::from_str(&out)?;
        let parts = report["content"]["partitions"]
            .as_array()
            .context("no partitions in lifeboat info --json")?;
        for (n, (part, start, metadata)) in MEMBERS.iter().enumerate() {
            let fs = parts
                .iter()
                .find(|p| p["number"] == *part)
                .map(|p| &p["fs"])
                .with_context(|| format!("partition {part} missing:\n{out}"))?;
            let (kind, uuid, label) = blkid_at(disk, *start)?;
            assert_eq!(kind, "linux_raid_member", "blkid of partition {part}");
            assert_eq!(fs["kind"], "linux_raid_member", "{fs}");
            assert_eq!(fs["version"], *metadata, "{fs}");
            assert_eq!(fs["uuid"].as_str().unwrap_or_default(), uuid, "{fs}");
            assert_eq!(fs["label"].as_str().unwrap_or_default(), label, "{fs}");
            let array = if *metadata == "0.90" {
                String::new()
            } else {
                format!(", array \"lifeboat:r{n}\"")
            };
            assert_eq!(
                fs["detail"],
                format!("RAID1 member, device {role} of 2{array} (metadata {metadata})"),
                "{fs}"
            );
            assert_eq!(
                fs["warnings"],
                serde_json::json!([]),
                "checksum or layout warnings on a member mdadm made: {fs}"
            );
        }
    }
    report("volumes md", t0);
    Ok(())
}

/// The passphrase of the encrypted root, as its key file holds it (exact bytes, no newline).
const PASSPHRASE: &str = "correct horse battery staple";
const LUKS_MIB: u64 = 62;

/// `(block count - free blocks) * block size` of the ext4 at `dev`, as `dumpe2fs -h` in the VM
/// reports it: the bytes ext4 itself counts as used (journal and inode tables included).
fn ext4_used_in_vm(vm: &mut qemu_tests::vm::Vm, dev: &str) -> Result<u64> {
    let out = sh(
        vm,
        &format!("/usr/sbin/dumpe2fs -h {dev} 2>/dev/null"),
        QUICK,
    )?;
    let field = |name: &str| -> Result<u64> {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no `{name}` in dumpe2fs -h {dev}:\n{out}"))
    };
    Ok((field("Block count:")? - field("Free blocks:")?) * field("Block size:")?)
}

/// The sha256 busybox prints for `what` (a file or a pipeline's output) in the VM.
fn vm_sum(vm: &mut qemu_tests::vm::Vm, what: &str) -> Result<String> {
    let out = sh(
        vm,
        &format!("echo SUM=$({what} | sha256sum | cut -d' ' -f1)="),
        QUICK,
    )?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("SUM=")?.strip_suffix('='))
        .find(|s| s.len() == 64)
        .map(str::to_string)
        .with_context(|| format!("no sha256 of `{what}` in the VM:\n{out}"))
}

#[test]
fn an_ubuntu_style_luks2_lvm_disk_is_backed_up_as_ciphertext_and_restores_locked_and_clean(
) -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("volumes/luks")?;
    // The host lays out the disk as Ubuntu's installer does: ESP, /boot (ext4), the rest LUKS2.
    let disk = dir.join("ubuntu.img");
    sparse_file(&disk, (1 + 8 + 16 + LUKS_MIB + 1) * MIB)?;
    sgdisk(
        &disk,
        &[
            "-n1:1M:+8M",
            "-t1:ef00",
            "-n2:9M:+16M",
            "-t2:8300",
            &format!("-n3:25M:+{LUKS_MIB}M"),
            "-t3:8309",
        ],
    )?;
    let esp = dir.join("esp.img");
    qemu_tests::fixture::mkfs(qemu_tests::fixture::Mkfs::Fat12, &esp, 8 * MIB, "ESP", &[])?;
    qemu_tests::fixture::write_into(&disk, MIB, &esp)?;
    let boot_tree = dir.join("boot-tree");
    std::fs::create_dir_all(&boot_tree)?;
    std::fs::write(
        boot_tree.join("vmlinuz"),
        qemu_tests::fixture::noise(3, 2_000_000),
    )?;
    let boot = dir.join("boot.img");
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "boot",
            "-d",
            path(&boot_tree)?,
            path(&boot)?,
            "16M",
        ],
    )?;
    qemu_tests::fixture::write_into(&disk, 9 * MIB, &boot)?;
    let target = dir.join("blank.img");
    sparse_file(&target, (1 + 8 + 16 + LUKS_MIB + 1) * MIB)?;
    let content = dir.join("drive");
    std::fs::create_dir_all(&content)?;
    std::fs::write(content.join("key"), PASSPHRASE)?;
    let drive = qemu_tests::e2e::ext4_drive(&dir, "images.img", 160, "IMAGES", Some(&content))?;

    let b = VmBuilder::new("volumes-luks")
        .disk(Disk::new(&disk, Interface::Virtio).serial("UBUNTU"))
        .disk(Disk::new(&target, Interface::Virtio).serial("BLANK"))
        .disk(Disk::new(&drive, Interface::Virtio).serial("IMAGES"));
    let mut vm = lifeboat_shell(b, &img)?;
    let src = dev_by_serial(&mut vm, "UBUNTU")?;
    let dst = dev_by_serial(&mut vm, "BLANK")?;
    let imgs = dev_by_serial(&mut vm, "IMAGES")?;
    sh(
        &mut vm,
        &format!(
            "mkdir -p /tmp/images /mnt/root /run/lock/lvm && mount -t ext4 {imgs} /tmp/images"
        ),
        QUICK,
    )?;
    // LUKS2 → LVM → ext4 root, made by cryptsetup and lvm2 in the guest (no udev here).
    let lvm = "DM_DISABLE_UDEV=1 lvm";
    let cfg = "--config 'activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 }'";
    for cmd in [
        format!(
            "cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 \
             --pbkdf-force-iterations 1000 --label ubuntu-root --key-file /tmp/images/key {src}3"
        ),
        format!("cryptsetup open --key-file /tmp/images/key {src}3 dm_crypt-0"),
        format!("{lvm} pvcreate {cfg} /dev/mapper/dm_crypt-0"),
        format!("{lvm} vgcreate {cfg} vgubuntu /dev/mapper/dm_crypt-0"),
        format!("{lvm} lvcreate {cfg} -Zn -L 32M -n root vgubuntu"),
        "/usr/sbin/mke2fs -q -F -t ext4 -L root /dev/mapper/vgubuntu-root".to_string(),
        "mount -t ext4 /dev/mapper/vgubuntu-root /mnt/root".to_string(),
        "mkdir -p /mnt/root/home/user && head -c 6000000 /dev/urandom > /mnt/root/home/user/data.bin \
         && echo 'an encrypted root' > /mnt/root/etc-hostname && sync"
            .to_string(),
    ] {
        sh(&mut vm, &format!("{cmd} 2>&1"), QUICK)?;
    }
    let data_sum = vm_sum(&mut vm, "cat /mnt/root/home/user/data.bin")?;
    sh(&mut vm, "umount /mnt/root", QUICK)?;
    let root_used = ext4_used_in_vm(&mut vm, "/dev/mapper/vgubuntu-root")?;
    let boot_used = ext4_used_in_vm(&mut vm, &format!("{src}2"))?;
    sh(
        &mut vm,
        &format!("{lvm} vgchange {cfg} -an vgubuntu 2>&1 && cryptsetup close dm_crypt-0"),
        QUICK,
    )?;
    let header_sum = vm_sum(&mut vm, &format!("head -c {} {src}3", 16 * MIB))?;

    // Without the key: the encrypted partition is imaged whole, and the plan says why.
    let (code, out) = job_status(
        &mut vm,
        &format!("lifeboat backup {src} /tmp/images/whole.lbi --dry-run"),
        "/tmp/dry.log",
    )?;
    ensure!(
        code == 0
            && out.contains("LUKS2 encrypted volume")
            && out.contains("without its key every byte is copied"),
        "the plan without a key does not say why the image is large (exit {code}):\n{out}"
    );
    // With the key: only ciphertext of used blocks and the headers.
    let out = qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat backup {src} /tmp/images/u.lbi --key-file /tmp/images/key"),
        "/tmp/backup.log",
    )?;
    ensure!(
        out.contains("encrypted volume unlocked read-only") && out.contains("LVM2 PV"),
        "the backup does not say it stored the unlocked volume's used ciphertext:\n{out}"
    );
    ensure!(
        !out.contains(PASSPHRASE),
        "the passphrase appears in the backup's output"
    );
    let left = sh(&mut vm, "ls /dev/mapper", QUICK)?;
    ensure!(
        !left.contains("lifeboat-ro"),
        "the read-only mapping was not closed:\n{left}"
    );
    let size: u64 = sh(&mut vm, "stat -c %s /tmp/images/u.lbi", QUICK)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .context("no image size")?;
    // Used bytes of the two ext4s, the ESP whole, the LUKS2 header area (16 MiB, mostly zeros)
    // and LVM's first MiB, plus 2 %.
    let bound = (root_used + boot_used + 8 * MIB + 16 * MIB + MIB) * 102 / 100;
    ensure!(
        size <= bound,
        "the image is {size} bytes, more than the used bytes and metadata allow ({bound}); \
         root uses {root_used}, /boot {boot_used}"
    );

    // --decrypted: the plaintext LVM2 PV is stored instead, and the plan says so plainly.
    let out = qemu_tests::e2e::job(
        &mut vm,
        &format!(
            "lifeboat backup {src} /tmp/images/plain.lbi --part 3 --key-file /tmp/images/key \
             --decrypted"
        ),
        "/tmp/backup-plain.log",
    )?;
    ensure!(
        out.contains("stored DECRYPTED: the plaintext LVM2 PV")
            && out.contains("a restore writes them back UNENCRYPTED")
            && !out.contains(PASSPHRASE),
        "the decrypted backup's plan does not say plainly what is stored:\n{out}"
    );
    let left = sh(&mut vm, "ls /dev/mapper", QUICK)?;
    ensure!(
        !left.contains("lifeboat-plain"),
        "the decrypted volume was not closed after the backup:\n{left}"
    );

    qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat restore /tmp/images/u.lbi {dst} --yes"),
        "/tmp/restore.log",
    )?;
    // The same locked volume: the same LUKS2 header and key slots, opened by the same passphrase.
    assert_eq!(
        vm_sum(&mut vm, &format!("head -c {} {dst}3", 16 * MIB))?,
        header_sum,
        "the restored LUKS2 header area differs from the original"
    );
    for cmd in [
        format!("cryptsetup open --readonly --key-file /tmp/images/key {dst}3 restored"),
        format!("{lvm} vgchange {cfg} -ay vgubuntu"),
    ] {
        sh(&mut vm, &format!("{cmd} 2>&1"), QUICK)?;
    }
    let (code, fsck) = qemu_tests::e2e::sh_status(
        &mut vm,
        "/usr/sbin/e2fsck -fn /dev/mapper/vgubuntu-root 2>&1",
        QUICK,
    )?;
    ensure!(
        code == 0,
        "e2fsck -fn of the restored root exited {code}:\n{fsck}"
    );
    sh(
        &mut vm,
        "mount -t ext4 -o ro /dev/mapper/vgubuntu-root /mnt/root",
        QUICK,
    )?;
    assert_eq!(
        vm_sum(&mut vm, "cat /mnt/root/home/user/data.bin")?,
        data_sum,
        "a file of the restored root differs"
    );
    sh(
        &mut vm,
        &format!(
            "umount /mnt/root && {lvm} vgchange {cfg} -an vgubuntu && cryptsetup close restored"
        ),
        QUICK,
    )?;
    // The decrypted image restores as a plain, unencrypted PV whose root checks clean.
    qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat restore /tmp/images/plain.lbi {dst}3 --yes"),
        "/tmp/restore-plain.log",
    )?;
    let (code, _) =
        qemu_tests::e2e::sh_status(&mut vm, &format!("cryptsetup isLuks {dst}3"), QUICK)?;
    ensure!(
        code != 0,
        "the decrypted restore left a LUKS header on {dst}3"
    );
    sh(
        &mut vm,
        &format!("{lvm} vgchange {cfg} -ay vgubuntu 2>&1"),
        QUICK,
    )?;
    let (code, fsck) = qemu_tests::e2e::sh_status(
        &mut vm,
        "/usr/sbin/e2fsck -fn /dev/mapper/vgubuntu-root 2>&1",
        QUICK,
    )?;
    ensure!(
        code == 0,
        "e2fsck -fn of the root restored unencrypted exited {code}:\n{fsck}"
    );
    sh(
        &mut vm,
        &format!("{lvm} vgchange {cfg} -an vgubuntu 2>&1"),
        QUICK,
    )?;
    let plain_size: u64 = sh(&mut vm, "stat -c %s /tmp/images/plain.lbi", QUICK)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .context("no image size")?;
    power_off(vm)?;

    // On the host, without any key: the decrypted image is browsed and a file copied out.
    let plain = dir.join("plain.lbi");
    qemu_tests::e2e::debugfs_dump(&drive, "/plain.lbi", &plain)?;
    let (code, out) = host_lifeboat_run(&["info", "--json", path(&plain)?])?;
    ensure!(
        code == 0,
        "lifeboat info of the decrypted image exited {code}:\n{out}"
    );
    ensure!(
        !out.contains("crypto_LUKS") && out.contains("\"LVM2_member\""),
        "the decrypted image still describes a LUKS volume, or no LVM2 PV:\n{out}"
    );
    let (code, out) =
        host_lifeboat_run(&["ls", path(&plain)?, "/home/user", "--lv", "vgubuntu/root"])?;
    ensure!(
        code == 0 && out.contains("data.bin"),
        "lifeboat ls of the decrypted image exited {code}:\n{out}"
    );
    let to = dir.join("extracted");
    std::fs::create_dir_all(&to)?;
    let (code, out) = host_lifeboat_run(&[
        "extract",
        path(&plain)?,
        "/home/user/data.bin",
        "--to",
        path(&to)?,
        "--lv",
        "vgubuntu/root",
    ])?;
    ensure!(
        code == 0,
        "lifeboat extract from the decrypted image exited {code}:\n{out}"
    );
    assert_eq!(
        qemu_tests::fixture::sha256(&to.join("data.bin"))?,
        data_sum,
        "the file extracted from the decrypted image differs"
    );
    eprintln!("luks --decrypted: image {plain_size} bytes (root uses {root_used})");
    eprintln!(
        "luks: image {size} bytes for a {LUKS_MIB} MiB LUKS2 partition (root uses {root_used}, \
         bound {bound})"
    );
    report("volumes luks", t0);
    Ok(())
}

// ---- BitLocker (issue 16) -------------------------------------------------------------------

/// The BitLocker volume's password (its key file holds exactly these bytes).
const BITLK_PASSWORD: &str = "Lifeboat BitLocker test password 1";
const BITLK_MIB: u64 = 48;
/// Where the inner NTFS ends: the FVE metadata areas lie behind it (see `qemu_tests::bitlocker`).
const BITLK_DATA_END: u64 = (BITLK_MIB - 1) * MIB;

/// The bytes of every BitLocker metadata range of `dev` read in the VM, as one sha256: the first
/// 8 KiB (volume header), the three FVE areas and the relocated header area.
fn bitlk_metadata_sum(
    vm: &mut qemu_tests::vm::Vm,
    dev: &str,
    vol: &qemu_tests::bitlocker::Volume,
) -> Result<String> {
    let mut ranges = vec![(0, 8192)];
    ranges.extend(vol.metadata().into_iter().filter(|r| r.0 > 0));
    let dds: Vec<String> = ranges
        .iter()
        .map(|(at, len)| {
            format!(
                "dd if={dev} bs=512 skip={} count={} 2>/dev/null",
                at / 512,
                len / 512
            )
        })
        .collect();
    vm_sum(vm, &format!("{{ {}; }}", dds.join("; ")))
}

#[test]
fn a_bitlocker_volume_with_ntfs_files_is_backed_up_as_ciphertext_and_restores_locked_and_clean(
) -> Result<()> {
    use qemu_tests::bitlocker::{self, Cipher, Spec};
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("volumes/bitlk")?;
    // A Windows-style disk: ESP, then the BitLocker partition (basic data).
    let disk_size = (1 + 8 + BITLK_MIB + 1) * MIB;
    let disk = dir.join("windows.img");
    sparse_file(&disk, disk_size)?;
    sgdisk(
        &disk,
        &[
            "-n1:1M:+8M",
            "-t1:ef00",
            &format!("-n2:9M:+{BITLK_MIB}M"),
            "-t2:0700",
        ],
    )?;
    let esp = dir.join("esp.img");
    qemu_tests::fixture::mkfs(qemu_tests::fixture::Mkfs::Fat12, &esp, 8 * MIB, "ESP", &[])?;
    qemu_tests::fixture::write_into(&disk, MIB, &esp)?;
    let spec = Spec {
        password: BITLK_PASSWORD,
        cipher: Cipher::XtsAes128,
        description: "LIFEBOAT-PC D: 01.12.2026",
        seed: 16,
        data_end: BITLK_DATA_END,
    };
    let vol = bitlocker::format(&disk, 9 * MIB, BITLK_MIB * MIB, &spec)?;
    let target = dir.join("blank.img");
    sparse_file(&target, disk_size)?;
    // The drive carries the key files and the files to put on the volume's NTFS.
    let content = dir.join("drive");
    let tree = content.join("tree");
    std::fs::create_dir_all(&tree)?;
    std::fs::write(content.join("pw"), BITLK_PASSWORD)?;
    std::fs::write(content.join("rp"), &vol.recovery_password)?;
    let mut files = qemu_tests::fixture::file_tree(&tree, 60)?;
    for (i, mib) in [(1u64, 6usize), (2, 5), (3, 4)] {
        let name = format!("docs/photo-{i}.raw");
        std::fs::write(
            tree.join(&name),
            qemu_tests::fixture::noise(100 + i, mib << 20),
        )?;
        files.push(name);
    }
    let mut sums = Vec::new();
    for f in &files {
        sums.push((f.clone(), qemu_tests::fixture::sha256(&tree.join(f))?));
    }
    let drive = qemu_tests::e2e::ext4_drive(&dir, "images.img", 200, "IMAGES", Some(&content))?;

    let b = VmBuilder::new("volumes-bitlk")
        .disk(Disk::new(&disk, Interface::Virtio).serial("WINDOWS"))
        .disk(Disk::new(&target, Interface::Virtio).serial("BLANK"))
        .disk(Disk::new(&drive, Interface::Virtio).serial("IMAGES"));
    let mut vm = lifeboat_shell(b, &img)?;
    let src = dev_by_serial(&mut vm, "WINDOWS")?;
    let dst = dev_by_serial(&mut vm, "BLANK")?;
    let imgs = dev_by_serial(&mut vm, "IMAGES")?;
    sh(
        &mut vm,
        &format!("mkdir -p /tmp/images /mnt/bl && mount -t ext4 {imgs} /tmp/images"),
        QUICK,
    )?;
    // cryptsetup opens the volume read-write with the password; mkntfs and ntfs-3g write the
    // NTFS and its files through dm-crypt, which encrypts them (AES-XTS, FVEK from the fixture).
    for cmd in [
        format!("cryptsetup open --type bitlk --key-file /tmp/images/pw {src}2 blw"),
        format!(
            "mkntfs -Q -F -L BitLockerData /dev/mapper/blw {}",
            BITLK_DATA_END / 512
        ),
        // ntfsfix looks for the backup boot sector in the device's last sector, where Windows
        // keeps it (its NTFS spans the whole volume); this one ends before the metadata areas.
        format!(
            "dd if=/dev/mapper/blw of=/dev/mapper/blw bs=512 count=1 seek={} conv=notrunc",
            BITLK_MIB * MIB / 512 - 1
        ),
        "ntfs-3g /dev/mapper/blw /mnt/bl".to_string(),
        "cp -r /tmp/images/tree/. /mnt/bl/ && sync".to_string(),
        "umount /mnt/bl && cryptsetup close blw".to_string(),
    ] {
        sh(&mut vm, &format!("{cmd} 2>&1"), qemu_tests::e2e::JOB)?;
    }
    // The recovery password opens it as well (read-only); the NTFS checks clean, and the bytes
    // it uses are what the image's size is held to.
    sh(
        &mut vm,
        &format!(
            "cryptsetup open --readonly --type bitlk --key-file /tmp/images/rp {src}2 blr 2>&1"
        ),
        qemu_tests::e2e::JOB,
    )?;
    let (code, fix) =
        qemu_tests::e2e::sh_status(&mut vm, "ntfsfix --no-action /dev/mapper/blr 2>&1", QUICK)?;
    ensure!(
        code == 0,
        "ntfsfix -n of the NTFS made inside exited {code}:\n{fix}"
    );
    sh(&mut vm, "ntfs-3g -o ro /dev/mapper/blr /mnt/bl 2>&1", QUICK)?;
    let statfs = sh(&mut vm, "stat -f -c 'FS=%b:%f:%S=' /mnt/bl", QUICK)?;
    let ntfs_used = statfs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FS=")?.strip_suffix('='))
        .find_map(|v| {
            let n: Vec<u64> = v.split(':').filter_map(|x| x.parse().ok()).collect();
            (n.len() == 3).then(|| (n[0] - n[1]) * n[2])
        })
        .with_context(|| format!("no statfs of the NTFS:\n{statfs}"))?;
    sh(&mut vm, "umount /mnt/bl && cryptsetup close blr", QUICK)?;
    let meta_sum = bitlk_metadata_sum(&mut vm, &format!("{src}2"), &vol)?;

    // Lifeboat describes it: BitLocker, its volume GUID, its protectors.
    let list = sh(&mut vm, "lifeboat list 2>&1", QUICK)?;
    ensure!(
        list.contains("BitLocker"),
        "`lifeboat list` does not name the BitLocker volume:\n{list}"
    );
    let info = sh(&mut vm, &format!("lifeboat info {src} 2>&1"), QUICK)?;
    ensure!(
        info.contains("BitLocker")
            && info.contains(&vol.guid)
            && info.contains("protectors: password, recovery password"),
        "`lifeboat info` does not show the volume GUID {} and the protectors:\n{info}",
        vol.guid
    );
    // Without a key: every byte, and the plan says why.
    let (code, out) = job_status(
        &mut vm,
        &format!("lifeboat backup {src} /tmp/images/whole.lbi --dry-run"),
        "/tmp/dry.log",
    )?;
    ensure!(
        code == 0
            && out.contains("BitLocker encrypted volume")
            && out.contains("without its key every byte is copied"),
        "the plan without a key does not say why the image is large (exit {code}):\n{out}"
    );
    // With the recovery password, then with the password: the used ciphertext and the metadata.
    // The NTFS's used bytes, BitLocker's metadata (first 8 KiB, three 64 KiB FVE areas, the 8 KiB
    // relocated header), the ESP's FAT (a few KiB in use: 1 MiB allowed) and the GPT, plus 2 %.
    let bound = (ntfs_used + 8192 + 3 * 65536 + 8192 + MIB + MIB) * 102 / 100;
    let mut sizes = Vec::new();
    for (key, image) in [("rp", "rp.lbi"), ("pw", "pw.lbi")] {
        let out = qemu_tests::e2e::job(
            &mut vm,
            &format!("lifeboat backup {src} /tmp/images/{image} --key-file /tmp/images/{key}"),
            &format!("/tmp/backup-{key}.log"),
        )?;
        ensure!(
            out.contains("BitLocker encrypted volume unlocked read-only: ntfs inside"),
            "the backup with the {key} key file does not say it stored the unlocked volume's \
             used ciphertext:\n{out}"
        );
        ensure!(
            !out.contains(BITLK_PASSWORD) && !out.contains(&vol.recovery_password),
            "a key appears in the backup's output"
        );
        let size: u64 = sh(&mut vm, &format!("stat -c %s /tmp/images/{image}"), QUICK)?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .next_back()
            .context("no image size")?;
        ensure!(
            size <= bound,
            "the image made with the {key} key file is {size} bytes, more than the used bytes \
             and metadata allow ({bound}; the NTFS uses {ntfs_used})"
        );
        sizes.push(size);
    }
    let left = sh(&mut vm, "ls /dev/mapper", QUICK)?;
    ensure!(
        !left.contains("lifeboat-ro"),
        "the read-only mapping was not closed:\n{left}"
    );
    // --decrypted: the plaintext NTFS is stored, and the plan says so plainly.
    let out = qemu_tests::e2e::job(
        &mut vm,
        &format!(
            "lifeboat backup {src} /tmp/images/plain.lbi --part 2 --key-file /tmp/images/pw \
             --decrypted"
        ),
        "/tmp/backup-plain.log",
    )?;
    ensure!(
        out.contains("stored DECRYPTED: the plaintext ntfs inside")
            && out.contains("a restore writes them back UNENCRYPTED"),
        "the decrypted backup's plan does not say plainly what is stored:\n{out}"
    );
    // No image holds a key's bytes.
    for image in ["rp.lbi", "pw.lbi", "plain.lbi"] {
        for key in ["pw", "rp"] {
            let (code, _) = qemu_tests::e2e::sh_status(
                &mut vm,
                &format!("grep -q -a -F -f /tmp/images/{key} /tmp/images/{image}"),
                QUICK,
            )?;
            ensure!(
                code == 1,
                "{image} holds the bytes of the {key} key (grep exit {code})"
            );
        }
    }

    // Restored onto a blank disk: the same locked volume.
    let files_check = |vm: &mut qemu_tests::vm::Vm, what: &str| -> Result<()> {
        for (f, want) in &sums {
            assert_eq!(
                &vm_sum(vm, &format!("cat '/mnt/bl/{f}'"))?,
                want,
                "{f} differs on {what}"
            );
        }
        Ok(())
    };
    for image in ["pw.lbi", "rp.lbi"] {
        qemu_tests::e2e::job(
            &mut vm,
            &format!("lifeboat restore /tmp/images/{image} {dst} --yes"),
            "/tmp/restore.log",
        )?;
        assert_eq!(
            bitlk_metadata_sum(&mut vm, &format!("{dst}2"), &vol)?,
            meta_sum,
            "the restored BitLocker metadata of {image} differs from the original"
        );
        for key in ["pw", "rp"] {
            sh(
                &mut vm,
                &format!(
                    "cryptsetup open --readonly --type bitlk --key-file /tmp/images/{key} \
                     {dst}2 restored 2>&1"
                ),
                qemu_tests::e2e::JOB,
            )?;
            let (code, fix) = qemu_tests::e2e::sh_status(
                &mut vm,
                "ntfsfix --no-action /dev/mapper/restored 2>&1",
                QUICK,
            )?;
            ensure!(
                code == 0,
                "ntfsfix -n of the NTFS restored from {image}, opened with {key}, exited \
                 {code}:\n{fix}"
            );
            if key == "pw" {
                sh(
                    &mut vm,
                    "ntfs-3g -o ro /dev/mapper/restored /mnt/bl 2>&1",
                    QUICK,
                )?;
                files_check(&mut vm, &format!("the volume restored from {image}"))?;
                sh(&mut vm, "umount /mnt/bl", QUICK)?;
            }
            sh(&mut vm, "cryptsetup close restored", QUICK)?;
        }
    }
    // The decrypted image restores as a plain NTFS with the same files.
    qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat restore /tmp/images/plain.lbi {dst}2 --yes"),
        "/tmp/restore-plain.log",
    )?;
    let (code, fix) =
        qemu_tests::e2e::sh_status(&mut vm, &format!("ntfsfix --no-action {dst}2 2>&1"), QUICK)?;
    ensure!(
        code == 0,
        "ntfsfix -n of the NTFS restored unencrypted exited {code}:\n{fix}"
    );
    sh(
        &mut vm,
        &format!("ntfs-3g -o ro {dst}2 /mnt/bl 2>&1"),
        QUICK,
    )?;
    files_check(&mut vm, "the NTFS restored unencrypted")?;
    sh(&mut vm, "umount /mnt/bl", QUICK)?;
    let plain_size: u64 = sh(&mut vm, "stat -c %s /tmp/images/plain.lbi", QUICK)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .context("no image size")?;
    power_off(vm)?;

    // The serial console never showed a key.
    let log =
        std::fs::read(qemu_tests::vm::workspace_root().join("target/qemu-logs/volumes-bitlk.log"))?;
    let log = String::from_utf8_lossy(&log);
    ensure!(
        !log.contains(BITLK_PASSWORD) && !log.contains(&vol.recovery_password),
        "a key appears on the serial console"
    );
    // On the host, without any key: the decrypted image is an NTFS to browse.
    let plain = dir.join("plain.lbi");
    qemu_tests::e2e::debugfs_dump(&drive, "/plain.lbi", &plain)?;
    let (code, out) = host_lifeboat_run(&["info", "--json", path(&plain)?])?;
    ensure!(
        code == 0 && !out.contains("\"BitLocker\"") && out.contains("\"ntfs\""),
        "lifeboat info of the decrypted image (exit {code}) still describes BitLocker, or no \
         NTFS:\n{out}"
    );
    let (code, out) = host_lifeboat_run(&["ls", path(&plain)?, "/docs"])?;
    ensure!(
        code == 0 && out.contains("photo-1.raw") && out.contains("deeper"),
        "lifeboat ls of the decrypted image exited {code}:\n{out}"
    );
    eprintln!(
        "bitlocker: images {} (recovery password) and {} (password) bytes for a {BITLK_MIB} MiB \
         volume whose NTFS uses {ntfs_used} (bound {bound}); --decrypted {plain_size}",
        sizes[0], sizes[1]
    );
    report("volumes bitlocker", t0);
    Ok(())
}

/// The arrays test's member disks: RAID1 on partition 1 of A and B, RAID5 on partition 2 of A,
/// B and C.
const R1_MIB: u64 = 16;
const R5_MIB: u64 = 172;
/// The XFS the RAID5 array holds (mkfs.xfs refuses less than 300 MiB).
const XFS_MIB: u64 = 320;
/// The blank disk the arrays' images are restored onto: a partition for each.
const T2_MIB: u64 = 350;

/// A GPT disk with a RAID1 and a RAID5 member partition (type Linux RAID), nothing on them yet.
fn array_member_disk(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    let disk = dir.join(name);
    sparse_file(&disk, (1 + R1_MIB + R5_MIB + 1) * MIB)?;
    sgdisk(
        &disk,
        &[
            &format!("-n1:1M:+{R1_MIB}M"),
            "-t1:fd00",
            &format!("-n2:{}M:+{R5_MIB}M", 1 + R1_MIB),
            "-t2:fd00",
        ],
    )?;
    Ok(disk)
}

/// `/dev/mdN` of the one running array of `level` (`raid1`, `raid5`) in the VM.
fn array_by_level(vm: &mut qemu_tests::vm::Vm, level: &str) -> Result<String> {
    let out = sh(
        vm,
        &format!(
            "for d in /sys/block/md*; do [ \"$(cat $d/md/level 2>/dev/null)\" = {level} ] \
             && echo \"MD=/dev/${{d##*/}}=\"; done; true"
        ),
        QUICK,
    )?;
    let found: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MD=")?.strip_suffix('='))
        .map(str::to_string)
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => anyhow::bail!("not one running {level} array in the VM:\n{out}"),
    }
}

/// The sha256 of every file under `dir` in the VM (names and contents, in name order).
fn tree_sum(vm: &mut qemu_tests::vm::Vm, dir: &str) -> Result<String> {
    vm_sum(
        vm,
        &format!("cd {dir} && find . -type f | sort | xargs sha256sum"),
    )
}

/// The sha256 of each member disk file, on the host.
fn disk_sums(disks: &[&Path]) -> Result<Vec<String>> {
    disks
        .iter()
        .map(|d| qemu_tests::fixture::sha256(d))
        .collect()
}

#[test]
fn md_raid1_and_raid5_arrays_are_assembled_read_only_at_boot_and_imaged_as_file_systems(
) -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("volumes/arrays")?;
    let a = array_member_disk(&dir, "a.img")?;
    let b = array_member_disk(&dir, "b.img")?;
    let c = array_member_disk(&dir, "c.img")?;
    // The XFS for the RAID5 array, made and filled on the host (the image has no mkfs.xfs) and
    // handed to the VM as a Lifeboat image, which the first boot restores onto the array.
    let xfs = dir.join("xfs.img");
    qemu_tests::fixture::mkfs(
        qemu_tests::fixture::Mkfs::Xfs,
        &xfs,
        XFS_MIB * MIB,
        "r5xfs",
        &[],
    )?;
    {
        let m = qemu_tests::fixture::KernelMount::new(&xfs, &dir.join("xfs-mnt"), "")?;
        std::fs::create_dir_all(m.path().join("docs/deep"))?;
        for i in 0..4u64 {
            std::fs::write(
                m.path().join(format!("f{i}.bin")),
                qemu_tests::fixture::noise(20 + i, 1_000_000 + 300_000 * i as usize),
            )?;
        }
        std::fs::write(m.path().join("docs/deep/note.txt"), "an XFS on md RAID5\n")?;
        m.unmount()?;
    }
    let content = dir.join("drive");
    std::fs::create_dir_all(&content)?;
    let (code, out) = host_lifeboat_run(&["backup", path(&xfs)?, path(&content.join("xfs.lbi"))?])?;
    ensure!(
        code == 0,
        "backing up the XFS on the host exited {code}:\n{out}"
    );
    std::fs::remove_file(&xfs)?;
    let drive = qemu_tests::e2e::ext4_drive(&dir, "images.img", 200, "IMAGES", Some(&content))?;
    let target = dir.join("blank.img");
    sparse_file(&target, (1 + R1_MIB + T2_MIB + 1) * MIB)?;
    sgdisk(
        &target,
        &[
            &format!("-n1:1M:+{R1_MIB}M"),
            "-t1:8300",
            &format!("-n2:{}M:+{T2_MIB}M", 1 + R1_MIB),
            "-t2:8300",
        ],
    )?;
    let drop_caches = "sync; echo 3 > /proc/sys/vm/drop_caches";
    let mount_images = |vm: &mut qemu_tests::vm::Vm| -> Result<()> {
        let imgs = dev_by_serial(vm, "IMAGES")?;
        sh(
            vm,
            &format!("mkdir -p /tmp/images /mnt/r1 /mnt/r5 && mount -t ext4 {imgs} /tmp/images"),
            QUICK,
        )?;
        Ok(())
    };

    // Boot 1: mdadm makes the arrays (all members are zeros, so --assume-clean is true), an
    // ext4 with files on the RAID1, and Lifeboat restores the XFS onto the running RAID5 — a
    // restore onto an assembled, writable array. Then the arrays are stopped.
    let vm_b = VmBuilder::new("volumes-arrays-make")
        .disk(Disk::new(&a, Interface::Virtio).serial("MDA"))
        .disk(Disk::new(&b, Interface::Virtio).serial("MDB"))
        .disk(Disk::new(&c, Interface::Virtio).serial("MDC"))
        .disk(Disk::new(&drive, Interface::Virtio).serial("IMAGES"));
    let mut vm = lifeboat_shell(vm_b, &img)?;
    let (da, db, dc) = (
        dev_by_serial(&mut vm, "MDA")?,
        dev_by_serial(&mut vm, "MDB")?,
        dev_by_serial(&mut vm, "MDC")?,
    );
    mount_images(&mut vm)?;
    let stat = sh(&mut vm, "cat /proc/mdstat 2>&1; true", QUICK)?;
    ensure!(
        !stat.contains(" active"),
        "an array runs before any was made:\n{stat}"
    );
    sh(&mut vm, "modprobe raid1 && modprobe raid456", QUICK)?;
    for cmd in [
        format!(
            "mdadm --create /dev/md0 --run --assume-clean --level=1 --raid-devices=2 \
             --metadata=1.2 --homehost=lifeboat --name=r1 {da}1 {db}1"
        ),
        format!(
            "mdadm --create /dev/md1 --run --assume-clean --level=5 --raid-devices=3 --chunk=64 \
             --metadata=1.2 --homehost=lifeboat --name=r5 {da}2 {db}2 {dc}2"
        ),
        "/usr/sbin/mke2fs -q -F -t ext4 -L r1ext4 /dev/md0".to_string(),
        "mount -t ext4 /dev/md0 /mnt/r1 && head -c 3000000 /dev/urandom > /mnt/r1/data.bin \
         && mkdir -p /mnt/r1/etc && echo 'a mirrored root' > /mnt/r1/etc/hostname && sync"
            .to_string(),
    ] {
        sh(&mut vm, &format!("{cmd} 2>&1"), QUICK)?;
    }
    let r1_sum = tree_sum(&mut vm, "/mnt/r1")?;
    sh(&mut vm, "umount /mnt/r1", QUICK)?;
    let out = qemu_tests::e2e::job(
        &mut vm,
        "lifeboat restore /tmp/images/xfs.lbi /dev/md1 --yes",
        "/tmp/restore-onto-array.log",
    )?;
    ensure!(
        out.contains("md RAID5 array \"lifeboat:r5\""),
        "the restore onto the array does not name it:\n{out}"
    );
    sh(&mut vm, drop_caches, QUICK)?;
    sh(&mut vm, "mount -t xfs -o ro /dev/md1 /mnt/r5", QUICK)?;
    let r5_sum = tree_sum(&mut vm, "/mnt/r5")?;
    sh(&mut vm, "umount /mnt/r5 && umount /tmp/images", QUICK)?;
    sh(&mut vm, "mdadm --stop --scan 2>&1", QUICK)?;
    power_off(vm)?;
    let before = disk_sums(&[&a, &b, &c])?;

    // Boot 2: init assembled both arrays read-only. They are listed with their members' disks,
    // the members and the read-only arrays are refused as targets, each array is backed up as
    // its file system's used blocks and restored onto a plain partition.
    let vm_b = VmBuilder::new("volumes-arrays-image")
        .disk(Disk::new(&a, Interface::Virtio).serial("MDA"))
        .disk(Disk::new(&b, Interface::Virtio).serial("MDB"))
        .disk(Disk::new(&c, Interface::Virtio).serial("MDC"))
        .disk(Disk::new(&drive, Interface::Virtio).serial("IMAGES"))
        .disk(Disk::new(&target, Interface::Virtio).serial("MDT"));
    let mut vm = lifeboat_shell(vm_b, &img)?;
    let (da, dt) = (
        dev_by_serial(&mut vm, "MDA")?,
        dev_by_serial(&mut vm, "MDT")?,
    );
    mount_images(&mut vm)?;
    let stat = sh(&mut vm, "cat /proc/mdstat", QUICK)?;
    ensure!(
        stat.contains("active (read-only) raid1") && stat.contains("active (read-only) raid5"),
        "init did not assemble both arrays read-only:\n{stat}"
    );
    let md1 = array_by_level(&mut vm, "raid1")?;
    let md5 = array_by_level(&mut vm, "raid5")?;
    let list = sh(&mut vm, "lifeboat list 2>&1", QUICK)?;
    for want in [
        "md RAID1 array \"lifeboat:r1\"".to_string(),
        "md RAID5 array \"lifeboat:r5\"".to_string(),
        "3 devices, 64 KiB chunks, read-only; members:".to_string(),
        format!(
            "{}2 (device 0 of 3) on disk with serial MDA",
            da.trim_start_matches("/dev/")
        ),
        "serial MDC".to_string(),
        "r5xfs".to_string(),
        "r1ext4".to_string(),
    ] {
        ensure!(
            list.contains(&want),
            "`lifeboat list` lacks {want:?}:\n{list}"
        );
    }
    let info = sh(&mut vm, &format!("lifeboat info {md5} 2>&1"), QUICK)?;
    ensure!(
        info.contains("array: md RAID5 array \"lifeboat:r5\"") && info.contains("members:"),
        "`lifeboat info {md5}` does not describe the array:\n{info}"
    );
    // An array is found by its UUID as mdadm prints it (job files and the command line).
    let detail = sh(&mut vm, &format!("mdadm --detail {md1} 2>&1"), QUICK)?;
    let uuid = detail
        .lines()
        .find_map(|l| l.trim().strip_prefix("UUID :"))
        .map(|u| u.trim().to_string())
        .with_context(|| format!("no UUID in mdadm --detail {md1}:\n{detail}"))?;
    let (code, out) = job_status(
        &mut vm,
        &format!("lifeboat backup md-uuid:{uuid} /tmp/images/by-uuid.lbi --dry-run"),
        "/tmp/by-uuid.log",
    )?;
    ensure!(
        code == 0 && out.contains(&format!("back up {md1} [md RAID1 array \"lifeboat:r1\"")),
        "md-uuid:{uuid} did not name the RAID1 array (exit {code}):\n{out}"
    );
    // Members of a running array are busy; a read-only array is not a target either.
    let (code, out) = job_status(
        &mut vm,
        &format!("lifeboat restore /tmp/images/xfs.lbi {da}2 --yes"),
        "/tmp/member-target.log",
    )?;
    ensure!(
        code == 1
            && out.contains(&format!("refusing to write to {da}2"))
            && out.contains("held by md"),
        "a member of a running array was not refused as a target (exit {code}):\n{out}"
    );
    let (code, out) = job_status(
        &mut vm,
        &format!("lifeboat restore /tmp/images/xfs.lbi {md5} --yes"),
        "/tmp/ro-target.log",
    )?;
    ensure!(
        code == 1 && out.contains("assembled read-only") && out.contains("mdadm --readwrite"),
        "a read-only array was not refused as a target (exit {code}):\n{out}"
    );
    // One member of the RAID5 alone holds no file system: the plan says so and offers the array.
    let (code, out) = job_status(
        &mut vm,
        &format!("lifeboat backup {da} /tmp/images/member.lbi --part 2 --dry-run"),
        "/tmp/member-plan.log",
    )?;
    ensure!(
        code == 0
            && out.contains("RAID5 member, device 0 of 3, 64 KiB chunks, left-symmetric")
            && out.contains("no file system can be imaged from one member")
            && out.contains("back up the assembled array"),
        "the plan for one RAID5 member does not say it cannot be imaged as a file system \
         (exit {code}):\n{out}"
    );
    let out = qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat backup {md1} /tmp/images/r1.lbi"),
        "/tmp/backup-r1.log",
    )?;
    ensure!(
        out.contains("the source is an assembled md RAID1 array \"lifeboat:r1\"")
            && out.contains("serial MDA")
            && out.contains("serial MDB"),
        "the RAID1 array's backup does not name the array and its members:\n{out}"
    );
    let out = qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat backup {md5} /tmp/images/r5.lbi"),
        "/tmp/backup-r5.log",
    )?;
    ensure!(
        out.contains("the source is an assembled md RAID5 array \"lifeboat:r5\"")
            && out.contains("xfs")
            && out.contains("serial MDC"),
        "the RAID5 array's backup does not name the array, its members and its XFS:\n{out}"
    );
    let r5_size: u64 = sh(&mut vm, "stat -c %s /tmp/images/r5.lbi", QUICK)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .context("no image size")?;
    // 5.8 MB of random files, XFS metadata and its (zeroed) log: far below the array's size.
    ensure!(
        r5_size < 20 * MIB,
        "the RAID5 array's image is {r5_size} bytes: not only the XFS's used blocks"
    );
    for (image, part) in [("r1", 1), ("r5", 2)] {
        qemu_tests::e2e::job(
            &mut vm,
            &format!("lifeboat restore /tmp/images/{image}.lbi {dt}{part} --yes"),
            &format!("/tmp/restore-{image}.log"),
        )?;
    }
    sh(&mut vm, drop_caches, QUICK)?;
    let (code, fsck) =
        qemu_tests::e2e::sh_status(&mut vm, &format!("/usr/sbin/e2fsck -fn {dt}1 2>&1"), QUICK)?;
    ensure!(
        code == 0,
        "e2fsck -fn of the restored RAID1 file system exited {code}:\n{fsck}"
    );
    sh(
        &mut vm,
        &format!("mount -t ext4 -o ro {dt}1 /mnt/r1"),
        QUICK,
    )?;
    assert_eq!(
        tree_sum(&mut vm, "/mnt/r1")?,
        r1_sum,
        "the RAID1 array's files differ"
    );
    sh(
        &mut vm,
        &format!("umount /mnt/r1 && mount -t xfs -o ro {dt}2 /mnt/r5"),
        QUICK,
    )?;
    assert_eq!(
        tree_sum(&mut vm, "/mnt/r5")?,
        r5_sum,
        "the RAID5 array's files differ"
    );
    sh(&mut vm, "umount /mnt/r5", QUICK)?;
    // The restored partitions are plain file systems, not array members.
    let (code, _) =
        qemu_tests::e2e::sh_status(&mut vm, &format!("mdadm --examine {dt}2 2>&1"), QUICK)?;
    ensure!(
        code != 0,
        "the restored RAID5 file system carries an md superblock"
    );
    sh(&mut vm, "umount /tmp/images", QUICK)?;
    power_off(vm)?;
    assert_eq!(
        disk_sums(&[&a, &b, &c])?,
        before,
        "assembling read-only and backing up changed a member's bytes"
    );
    // The host's checker on the restored XFS.
    let t2 = dir.join("t2.img");
    run(
        "dd",
        &[
            &format!("if={}", path(&target)?),
            &format!("of={}", path(&t2)?),
            "bs=1M",
            &format!("skip={}", 1 + R1_MIB),
            &format!("count={T2_MIB}"),
            "status=none",
        ],
    )?;
    run("xfs_repair", &["-n", "-f", path(&t2)?])?;
    std::fs::remove_file(&t2)?;

    // Boot 3: disk C is gone. init starts the RAID5 degraded and read-only; it is imaged and
    // restored with the same files (C's chunks rebuilt from parity while reading).
    let vm_b = VmBuilder::new("volumes-arrays-degraded")
        .disk(Disk::new(&a, Interface::Virtio).serial("MDA"))
        .disk(Disk::new(&b, Interface::Virtio).serial("MDB"))
        .disk(Disk::new(&drive, Interface::Virtio).serial("IMAGES"))
        .disk(Disk::new(&target, Interface::Virtio).serial("MDT"));
    let mut vm = lifeboat_shell(vm_b, &img)?;
    let dt = dev_by_serial(&mut vm, "MDT")?;
    mount_images(&mut vm)?;
    let stat = sh(&mut vm, "cat /proc/mdstat", QUICK)?;
    ensure!(
        stat.contains("active (read-only) raid5") && stat.contains("[3/2]"),
        "init did not start the degraded RAID5 read-only:\n{stat}"
    );
    let md5 = array_by_level(&mut vm, "raid5")?;
    let out = qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat backup {md5} /tmp/images/r5d.lbi"),
        "/tmp/backup-r5d.log",
    )?;
    ensure!(
        out.contains("md RAID5 array \"lifeboat:r5\"") && out.contains("DEGRADED: 1 missing"),
        "the degraded array's backup does not say it is degraded:\n{out}"
    );
    sh(
        &mut vm,
        &format!("dd if=/dev/zero of={dt}2 bs=1M count=8 2>&1"),
        QUICK,
    )?;
    qemu_tests::e2e::job(
        &mut vm,
        &format!("lifeboat restore /tmp/images/r5d.lbi {dt}2 --yes"),
        "/tmp/restore-r5d.log",
    )?;
    sh(&mut vm, drop_caches, QUICK)?;
    sh(&mut vm, &format!("mount -t xfs -o ro {dt}2 /mnt/r5"), QUICK)?;
    assert_eq!(
        tree_sum(&mut vm, "/mnt/r5")?,
        r5_sum,
        "the degraded RAID5 array's files differ"
    );
    sh(&mut vm, "umount /mnt/r5 && umount /tmp/images", QUICK)?;
    power_off(vm)?;
    assert_eq!(
        disk_sums(&[&a, &b])?,
        before[..2].to_vec(),
        "assembling the degraded array read-only changed a member's bytes"
    );
    eprintln!("md arrays: RAID5 image {r5_size} bytes for a {XFS_MIB} MiB XFS");
    for f in ["a.img", "b.img", "c.img", "blank.img", "images.img"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    report("volumes md arrays", t0);
    Ok(())
}
