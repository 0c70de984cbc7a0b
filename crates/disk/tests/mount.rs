//! `disk::mount` on file systems made by the real tools, attached to loop devices (needs root, as
//! every mount does): a file written through the mount is found afterwards by the file system's
//! own tools, after `disk::mount::unmount`. The host kernel the tests run on may lack vfat and
//! exfat: those are mounted by the QEMU tests (`qemu-tests/tests/job_volumes.rs`), in the boot
//! image's kernel.

use anyhow::{ensure, Context, Result};
use disk::mount::{mount, unmount, Access};
use qemu_tests::fixture::{mkfs, path, run, run_status, Mkfs};
use std::path::{Path, PathBuf};

/// A loop device over `img`, detached on drop.
struct Loop(PathBuf);

impl Loop {
    fn attach(img: &Path) -> Result<Loop> {
        let dev = run("losetup", &["--find", "--show", path(img)?])?;
        Ok(Loop(PathBuf::from(dev.trim())))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = run_status("losetup", &["-d", &self.0.to_string_lossy()]);
    }
}

/// Mounts `img` (of blkid type `fstype`) read-write, writes `hello.txt`, unmounts; returns the
/// mount table line seen while mounted.
fn write_through_mount(img: &Path, fstype: &str, dir: &Path) -> Result<String> {
    let dev = Loop::attach(img)?;
    let mnt = dir.join(format!("mnt-{fstype}"));
    std::fs::create_dir_all(&mnt)?;
    mount(&dev.0, &mnt, fstype, Access::ReadWrite)
        .with_context(|| format!("mounting the {fstype} fixture"))?;
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    let line = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&mnt.to_string_lossy()))
        .unwrap_or_default()
        .to_string();
    let written = std::fs::write(mnt.join("hello.txt"), b"written through disk::mount\n");
    unmount(&mnt).with_context(|| format!("unmounting the {fstype} fixture"))?;
    written.context("writing through the mount")?;
    Ok(line)
}

#[test]
fn ntfs_through_ntfs_3g_and_ext4_mount_read_write_and_keep_what_was_written() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ntfs = dir.path().join("ntfs.img");
    mkfs(Mkfs::Ntfs, &ntfs, 32 << 20, "LBJOB", &[])?;
    let line = write_through_mount(&ntfs, "ntfs", dir.path())?;
    ensure!(
        line.contains("fuseblk"),
        "NTFS goes through ntfs-3g: {line}"
    );
    let text = run("ntfscat", &[path(&ntfs)?, "hello.txt"])?;
    ensure!(text.contains("written through disk::mount"), "{text}");

    let ext = dir.path().join("ext4.img");
    mkfs(Mkfs::Ext4, &ext, 16 << 20, "LBJOB", &[])?;
    let line = write_through_mount(&ext, "ext4", dir.path())?;
    ensure!(
        line.contains(" ext4 ") && line.contains("noatime"),
        "{line}"
    );
    let text = run("debugfs", &["-R", "cat /hello.txt", path(&ext)?])?;
    ensure!(text.contains("written through disk::mount"), "{text}");
    Ok(())
}

#[test]
fn a_failed_ntfs_3g_mount_says_why() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0u8; 8 << 20])?;
    let dev = Loop::attach(&junk)?;
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt)?;
    let err = match mount(&dev.0, &mnt, "ntfs", Access::ReadWrite) {
        Ok(()) => {
            unmount(&mnt)?;
            anyhow::bail!("zeros mounted as NTFS");
        }
        Err(e) => e.to_string(),
    };
    ensure!(
        err.contains(&dev.0.to_string_lossy().to_string()) && err.contains("ntfs-3g"),
        "{err}"
    );
    Ok(())
}
