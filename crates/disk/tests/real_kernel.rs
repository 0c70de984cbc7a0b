//! Discovery on this machine's real `/sys`, and `FileDisk` on a real block device (a loop device
//! with 4096-byte sectors, formatted by mkfs.ext4 and mounted).

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use disk::{
    discover, BlockIo, DevNum, DeviceKind, DiscoverOptions, DiskError, FileDisk, SysRoot,
    WriteConsent,
};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The device number `/` is mounted from, per the kernel's mount table.
fn root_dev() -> DevNum {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = text
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    DevNum::parse(line.split(' ').nth(2).unwrap()).unwrap()
}

#[test]
fn real_sys_lists_disks_and_sees_the_root_disk_mounted_and_boot_medium() {
    let opts = DiscoverOptions {
        open_devices: true,
        ..Default::default()
    };
    let devs = discover(&SysRoot::default(), &opts).unwrap();
    assert!(!devs.is_empty(), "no block devices found in /sys/block");
    assert!(devs
        .iter()
        .all(|d| !d.name.is_empty() && d.path.starts_with("/dev")));
    let root = root_dev();
    assert!(
        Path::new(&format!("/sys/dev/block/{root}")).exists(),
        "/ is on {root}, which is not a block device: this test needs a machine whose root is on a disk"
    );
    let holder = devs
        .iter()
        .find(|d| d.dev == Some(root) || d.partitions.iter().any(|p| p.dev == Some(root)))
        .expect("the device holding / is discovered");
    assert!(holder.size > 0);
    let mounted_at_root = holder.mount_points.iter().any(|m| m == Path::new("/"))
        || holder
            .partitions
            .iter()
            .any(|p| p.mount_points.iter().any(|m| m == Path::new("/")));
    assert!(mounted_at_root, "{holder:?}");
    assert!(holder.is_boot_medium);
    assert!(holder.in_use().is_some());
    // The machine these tests were written on has its root on /dev/vda.
    if let Some(vda) = devs.iter().find(|d| d.name == "vda") {
        assert_eq!(vda.path, Path::new("/dev/vda"));
        assert_eq!(vda.transport, disk::Transport::Virtio);
        assert!(vda.size > 0);
        let sysfs = std::fs::read_to_string("/sys/block/vda/size").unwrap();
        assert_eq!(vda.size, sysfs.trim().parse::<u64>().unwrap() * 512);
    }
}

/// A loop device over a temporary file, detached (and unmounted) on drop.
struct LoopDev {
    dev: PathBuf,
    mount: Option<PathBuf>,
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        if let Some(m) = &self.mount {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn loop_device_with_4k_sectors_is_read_written_claimed_exclusively_and_refused_while_mounted() {
    assert!(
        nix::unistd::geteuid().is_root() && Path::new("/dev/loop-control").exists(),
        "this test needs root and loop devices (run the suite as root, as `cargo xtask ci` in CI does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("backing.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let out = Command::new("losetup")
        .args(["--find", "--show", "--sector-size", "4096", "--partscan"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lo = LoopDev {
        dev: PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()),
        mount: None,
    };
    let dev = lo.dev.to_str().unwrap().to_string();
    let name = lo.dev.file_name().unwrap().to_str().unwrap().to_string();

    // Read-only open: the kernel's size and sector sizes.
    let ro = FileDisk::open_read(&lo.dev).unwrap();
    assert!(ro.is_block_device());
    assert_eq!(ro.len(), 64 << 20);
    assert_eq!(ro.logical_sector_size(), 4096);
    assert_eq!(ro.physical_sector_size(), 4096);
    let rdev = std::fs::metadata(&lo.dev).unwrap().rdev();
    assert_eq!(ro.dev_num(), Some(DevNum::from_dev_t(rdev)));
    assert_eq!(
        ro.write_at(&[0; 4096], 0).unwrap_err().kind(),
        std::io::ErrorKind::PermissionDenied
    );
    drop(ro);

    // Exclusive write open: a second writer is refused while the first holds the device.
    let consent = WriteConsent::confirmed_by_user(&lo.dev, "loop test disk");
    let rw = FileDisk::open_write(&lo.dev, &consent).unwrap();
    rw.write_at(&[0x5A; 8192], 1 << 20).unwrap();
    rw.flush().unwrap();
    let mut back = [0u8; 8192];
    rw.read_at(&mut back, 1 << 20).unwrap();
    assert!(back.iter().all(|b| *b == 0x5A));
    let err = FileDisk::open_write(&lo.dev, &consent).unwrap_err();
    assert!(matches!(err, DiskError::InUse { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{dev} is in use (mounted or held)")
    );

    // Discard reaches the backing file as a hole.
    rw.flush().unwrap();
    let before = std::fs::metadata(&img).unwrap().blocks();
    assert!(before >= 16, "the written data occupies the backing file");
    assert!(rw.discard(1 << 20, 8192).unwrap());
    rw.flush().unwrap();
    let after = std::fs::metadata(&img).unwrap().blocks();
    assert!(after + 16 <= before, "st_blocks {before} -> {after}");

    // The kernel re-reads the (empty) partition table while we hold the device.
    rw.reread_partitions().unwrap();
    drop(rw);

    // A file system on the whole device, mounted. (The kernel this was written on has no
    // partition-table parsers, so partitions on loop devices are covered by the fake-tree tests.)
    run("mkfs.ext4", &["-q", "-F", &dev]);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run("mount", &[&dev, mnt.to_str().unwrap()]);
    lo.mount = Some(mnt.clone());

    let opts = DiscoverOptions {
        include_virtual: true,
        open_devices: true,
    };
    let devs = discover(&SysRoot::default(), &opts).unwrap();
    let d = devs.iter().find(|d| d.name == name).unwrap();
    assert_eq!(
        d.kind,
        DeviceKind::Loop {
            backing_file: img.clone()
        }
    );
    assert_eq!(d.size, 64 << 20);
    assert_eq!(d.logical_sector_size, 4096);
    assert_eq!(d.mount_points, std::slice::from_ref(&mnt));
    assert_eq!(
        d.in_use(),
        Some(format!("{name} is mounted at {}", mnt.display()))
    );

    let err = FileDisk::open_write(&lo.dev, &consent).unwrap_err();
    assert!(matches!(err, DiskError::InUse { .. }), "{err}");
    let err = FileDisk::open_read(&lo.dev)
        .unwrap()
        .reread_partitions()
        .unwrap_err();
    assert!(matches!(err, DiskError::PartitionTableBusy { .. }), "{err}");
}
