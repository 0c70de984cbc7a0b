//! Inode flags (`FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`, what `lsattr`/`chattr` show): lifting
//! the immutable and append-only flags for one call, so a file copied with them can still get
//! its times (`engine::shrink` after `xfsrestore`).

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `_IOR/_IOW('f', 1/2, long)`; the kernel moves an `int`.
mod ioctl {
    nix::ioctl_read_bad!(get, 0x8008_6601u32, nix::libc::c_int);
    nix::ioctl_write_ptr_bad!(set, 0x4008_6602u32, nix::libc::c_int);
}

/// `FS_IMMUTABLE_FL | FS_APPEND_FL`.
const LOCKED: nix::libc::c_int = 0x10 | 0x20;

/// Calls `f` with the immutable and append-only flags of the file or folder `path` (never
/// followed if a symlink) lifted, and puts them back afterwards. `Ok(None)` when `path` has
/// neither flag (`f` is not called).
pub fn with_unlocked<R>(path: &Path, f: impl FnOnce() -> R) -> std::io::Result<Option<R>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    let mut old: nix::libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int into `old`.
    unsafe { ioctl::get(file.as_raw_fd(), &mut old) }?;
    if old & LOCKED == 0 {
        return Ok(None);
    }
    let open = old & !LOCKED;
    // SAFETY: FS_IOC_SETFLAGS reads one int.
    unsafe { ioctl::set(file.as_raw_fd(), &open) }?;
    let out = f();
    // SAFETY: as above.
    unsafe { ioctl::set(file.as_raw_fd(), &old) }?;
    Ok(Some(out))
}
