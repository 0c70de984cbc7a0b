//! A file system on a [`BlockIo`] mounted by the kernel for the length of one call: the device is
//! served as a FUSE file ([`vdev::serve_scoped`]), a loop device is bound over that file and the
//! file system is mounted on a private folder (`disk::mount`). Afterwards everything is undone
//! in reverse order, waiting until the loop device has let go of the file. Used by
//! `engine::shrink` for the tools that work only on a mounted file system (`btrfs filesystem
//! resize`, `btrfs inspect-internal min-dev-size`, `xfsdump`/`xfsrestore`, copying into exFAT).

use crate::error::JobError;
use disk::BlockIo;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a detached loop device may take to let go of its file.
const SETTLE: Duration = Duration::from_secs(20);

/// A private folder (mode 0700) for served files and mount points, removed on drop.
pub(crate) struct WorkDir(PathBuf);

impl WorkDir {
    pub(crate) fn new() -> Result<Self, JobError> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let d = base.join(format!("lifeboat-shrink-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&d) {
                Ok(()) => return Ok(WorkDir(d)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&d, e)),
            }
        }
        Err(io_err(
            &base,
            std::io::Error::other("no free lifeboat-shrink folder"),
        ))
    }

    /// An empty regular file `name` in the folder (where a device is served).
    pub(crate) fn file(&self, name: &str) -> Result<PathBuf, JobError> {
        let p = self.0.join(name);
        std::fs::write(&p, b"").map_err(|e| io_err(&p, e))?;
        Ok(p)
    }

    /// An empty folder `name` in the folder (a mount point).
    pub(crate) fn dir(&self, name: &str) -> Result<PathBuf, JobError> {
        let p = self.0.join(name);
        match std::fs::create_dir(&p) {
            Ok(()) => Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(p),
            Err(e) => Err(io_err(&p, e)),
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Only empty folders and files are left: nothing mounted is ever removed (remove_dir
        // fails on a mount point that is still busy).
        if let Ok(rd) = std::fs::read_dir(&self.0) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    let _ = std::fs::remove_dir(&p);
                } else {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

pub(crate) fn io_err(path: &Path, e: std::io::Error) -> JobError {
    JobError::Tool {
        tool: "lifeboat".into(),
        device: path.display().to_string(),
        output: e.to_string(),
    }
}

fn fail(device: &str, what: String) -> JobError {
    JobError::Tool {
        tool: "mount".into(),
        device: device.to_string(),
        output: what,
    }
}

/// Serves `io` read-write at `work/<name>`, binds a writable loop device over it, mounts the
/// file system (`fstype`, a `blkid` name) at `work/<name>.mnt` with `access` (and the kernel
/// options `extra`), and calls
/// `f(loop device, mount point)`. Unmounts, detaches and stops serving before returning, also
/// when `f` failed. A read-only mount on the writable device lets the kernel replay a journal or
/// log into `io` (an overlay in every caller), which a read-only device would refuse.
pub(crate) fn with_mounted<R>(
    io: &dyn BlockIo,
    work: &WorkDir,
    name: &str,
    fstype: &str,
    access: disk::mount::Access,
    extra: Option<&str>,
    f: impl FnOnce(&Path, &Path) -> Result<R, JobError>,
) -> Result<R, JobError> {
    let device = io.describe();
    let file = work.file(name)?;
    let dir = work.dir(&format!("{name}.mnt"))?;
    let served = vdev::serve_scoped(io, &file, name, true, |file| {
        let block = io.logical_sector_size();
        let lo = disk::loopdev::attach_writable(file, block)
            .map_err(|e| fail(&device, e.to_string()))?;
        let loop_dev = lo.path().to_path_buf();
        if let Err(e) = disk::mount::mount_with(&loop_dev, &dir, fstype, access, extra) {
            drop(lo);
            release(&loop_dev, file);
            return Err(fail(&device, e.to_string()));
        }
        let out = f(&loop_dev, &dir);
        let unmounted = unmount_settled(&dir);
        if fstype == "btrfs" {
            // The kernel keeps a scanned btrfs device in its list after the loop device is
            // gone; a later device with the same UUID would be taken for it.
            let _ = crate::grow::tool(
                "btrfs",
                &["device", "scan", "--forget", &loop_dev.to_string_lossy()],
            );
        }
        drop(lo);
        let released = release(&loop_dev, file);
        let out = out?;
        unmounted.map_err(|e| fail(&device, e))?;
        if !released {
            return Err(fail(
                &device,
                format!(
                    "{} still reads {} after {} s",
                    loop_dev.display(),
                    file.display(),
                    SETTLE.as_secs()
                ),
            ));
        }
        Ok(out)
    });
    served.map_err(|e| fail(&device, e.to_string()))?
}

/// Unmounts `dir`, retrying for a while when it is busy (a tool's child that has not quite
/// ended yet).
fn unmount_settled(dir: &Path) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match disk::mount::unmount(dir) {
            Ok(()) => return Ok(()),
            Err(disk::mount::MountError::Unmount {
                source: nix::Error::EBUSY,
                ..
            }) if start.elapsed() < SETTLE => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Detaches `loop_dev` and waits until it no longer reads `file`; false when it still does.
fn release(loop_dev: &Path, file: &Path) -> bool {
    let _ = disk::loopdev::detach(loop_dev);
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        if disk::loopdev::backing_file(loop_dev).as_deref() != Some(file) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Calls `f` with a copy-on-write view of `base` alone ([`vdev::Overlay`] with an empty head):
/// whatever the kernel writes while mounting it (a journal or log replayed) stays in the
/// bounded overlay; `base` is never written.
pub(crate) fn with_cow<R>(
    base: &dyn BlockIo,
    f: impl FnOnce(&dyn BlockIo) -> Result<R, JobError>,
) -> Result<R, JobError> {
    let device = base.describe();
    let head = disk::Window::new(base, 0, 0).map_err(|e| fail(&device, e.to_string()))?;
    let overlay = vdev::Overlay::new(&head, base, crate::shrink::limits())
        .map_err(|e| fail(&device, e.to_string()))?;
    f(&overlay)
}
