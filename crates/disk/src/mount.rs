//! Mounting a file system so that files can be read or written on it: the drives that hold images
//! (the TUI) and the volume of an unattended job (`init`). This is the one place Lifeboat calls
//! `mount(2)` or starts `ntfs-3g`; [`crate::mounts`] only reads what is mounted.
//!
//! The caller says what the file system is (the `blkid` type name its probe found, e.g. `vfat`):
//! this module never guesses from the bytes, so the probe that decided stays the only one.
//! NTFS goes through `ntfs-3g` (FUSE) because the boot image's kernel has no `ntfs3`; the kernel
//! driver is tried only when `ntfs-3g` is not installed. exFAT goes through the kernel, or
//! `mount.exfat-fuse` when the kernel has no exFAT driver (ENODEV).

use nix::mount::{MntFlags, MsFlags};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a mount or unmount failed. Messages name the device, the folder and what was tried.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{device}: {fstype} cannot be mounted")]
    NotMountable { device: PathBuf, fstype: String },
    #[error("mounting {device} at {dir} (tried {tried}): {source}")]
    Kernel {
        device: PathBuf,
        dir: PathBuf,
        tried: String,
        source: nix::Error,
    },
    #[error("mounting {device} at {dir} with {program}: {detail}")]
    Helper {
        device: PathBuf,
        dir: PathBuf,
        program: PathBuf,
        detail: String,
    },
    #[error("unmounting {dir}: {source}")]
    Unmount { dir: PathBuf, source: nix::Error },
}

/// Read-write (to hold images and reports) or read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// How a file system type is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `mount(2)` with these kernel types, tried in order.
    Kernel(&'static [&'static str]),
    /// The `ntfs-3g` FUSE driver (the kernel's `ntfs3` when `ntfs-3g` is missing).
    Ntfs3g,
}

/// How the file system whose `blkid` type name is `fstype` is mounted; `None` for what holds no
/// mountable file system (swap, LUKS, LVM PVs, anything unknown).
pub fn method(fstype: &str) -> Option<Method> {
    Some(match fstype {
        "ext2" | "ext3" | "ext4" => Method::Kernel(&["ext4", "ext3", "ext2"]),
        "vfat" => Method::Kernel(&["vfat"]),
        "exfat" => Method::Kernel(&["exfat"]),
        "ntfs" => Method::Ntfs3g,
        "btrfs" => Method::Kernel(&["btrfs"]),
        "xfs" => Method::Kernel(&["xfs"]),
        "iso9660" => Method::Kernel(&["iso9660"]),
        _ => return None,
    })
}

/// True when [`mount`] knows how to mount `fstype`.
pub fn mountable(fstype: &str) -> bool {
    method(fstype).is_some()
}

/// The kernel mount options for `kernel_type`: FAT and exFAT long names as UTF-8, whatever the
/// kernel's build-time default. (`vfat` also needs the NLS module of the kernel's default
/// `iocharset` for case folding — `nls_ascii` on Debian — loaded beforehand: without it the
/// mount fails with EINVAL, and the boot image has no `modprobe` for the kernel to call.)
pub fn kernel_options(kernel_type: &str) -> Option<&'static str> {
    match kernel_type {
        "vfat" => Some("utf8=1"),
        "exfat" => Some("iocharset=utf8"),
        _ => None,
    }
}

/// The option that mounts `kernel_type` without replaying its journal or log, for a read-only
/// device whose journal needs recovery.
pub fn no_replay_option(kernel_type: &str) -> Option<&'static str> {
    match kernel_type {
        "ext3" | "ext4" => Some("noload"),
        "xfs" => Some("norecovery"),
        "btrfs" => Some("rescue=nologreplay"),
        _ => None,
    }
}

/// Mounts `device` (holding a file system of `blkid` type `fstype`) on the existing folder
/// `dir`, with `nosuid`, `nodev` and `noatime`; optical media always read-only. Read-only, a
/// journal that needs recovery is not replayed (see [`no_replay_option`]; a warning says so).
pub fn mount(device: &Path, dir: &Path, fstype: &str, access: Access) -> Result<(), MountError> {
    mount_with(device, dir, fstype, access, None)
}

/// [`mount`] with `extra` kernel options appended (e.g. `nouuid` for a second XFS with the same
/// UUID, which `engine::shrink` mounts beside the source it copies).
pub fn mount_with(
    device: &Path,
    dir: &Path,
    fstype: &str,
    access: Access,
    extra: Option<&str>,
) -> Result<(), MountError> {
    let Some(how) = method(fstype) else {
        return Err(MountError::NotMountable {
            device: device.to_path_buf(),
            fstype: fstype.to_string(),
        });
    };
    let read_only = access == Access::ReadOnly || fstype == "iso9660";
    match how {
        // A kernel without exFAT (a desktop's may lack it): the exfat-fuse driver, when there.
        Method::Kernel(types) => match kernel_mount(device, dir, types, read_only, extra) {
            Err(MountError::Kernel {
                source: nix::Error::ENODEV,
                ..
            }) if fstype == "exfat" && find_program("mount.exfat-fuse").is_some() => {
                let program = find_program("mount.exfat-fuse").unwrap_or_default();
                log::info!(
                    "the kernel has no exfat driver: trying {}",
                    program.display()
                );
                fuse_driver(&program, device, dir, read_only)
            }
            other => other,
        },
        Method::Ntfs3g => match find_program("ntfs-3g") {
            Some(program) => fuse_driver(&program, device, dir, read_only),
            None => {
                log::info!("ntfs-3g is not installed: trying the kernel's ntfs3 driver");
                kernel_mount(device, dir, &["ntfs3"], read_only, extra)
            }
        },
    }
}

fn kernel_mount(
    device: &Path,
    dir: &Path,
    types: &[&str],
    read_only: bool,
    extra: Option<&str>,
) -> Result<(), MountError> {
    let mut flags = MsFlags::MS_NOATIME | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let mut last = nix::Error::ENODEV;
    for t in types {
        let data = match (kernel_options(t), extra) {
            (Some(d), Some(e)) => Some(format!("{d},{e}")),
            (d, e) => d.or(e).map(str::to_string),
        };
        let data = data.as_deref();
        let mut result = nix::mount::mount(Some(device), dir, Some(*t), flags, data);
        // A read-only device whose journal (ext3/4, XFS) or log tree (btrfs) needs replaying
        // cannot be mounted as it is: mount it without the replay, and say so.
        if let (Err(nix::Error::EROFS | nix::Error::EIO), true, Some(skip)) =
            (result, read_only, no_replay_option(t))
        {
            let data = match data {
                Some(d) => format!("{d},{skip}"),
                None => skip.to_string(),
            };
            result = nix::mount::mount(Some(device), dir, Some(*t), flags, Some(data.as_str()));
            if result.is_ok() {
                log::warn!(
                    "{}: the {t} journal needs recovery, which a read-only device cannot do: \
                     mounted without replaying it ({skip}); the last changes before the \
                     image was taken may be missing",
                    device.display()
                );
            }
        }
        match result {
            Ok(()) => {
                log::info!(
                    "mounted {} ({t}{}) at {}",
                    device.display(),
                    if read_only { ", read-only" } else { "" },
                    dir.display()
                );
                return Ok(());
            }
            Err(e) => {
                log::debug!("mounting {} as {t}: {e}", device.display());
                last = e;
            }
        }
    }
    Err(MountError::Kernel {
        device: device.to_path_buf(),
        dir: dir.to_path_buf(),
        tried: types.join(", "),
        source: last,
    })
}

/// The options given to `ntfs-3g`.
pub fn ntfs_3g_options(read_only: bool) -> String {
    let mut o = String::from("nosuid,nodev,noatime");
    if read_only {
        o.push_str(",ro");
    }
    o
}

/// Runs a FUSE driver that daemonises once mounted (`ntfs-3g`, `mount.exfat-fuse`) with the
/// options of [`ntfs_3g_options`].
fn fuse_driver(
    program: &Path,
    device: &Path,
    dir: &Path,
    read_only: bool,
) -> Result<(), MountError> {
    let helper_error = |detail: String| MountError::Helper {
        device: device.to_path_buf(),
        dir: dir.to_path_buf(),
        program: program.to_path_buf(),
        detail,
    };
    // The driver goes to the background once mounted; the daemon's standard streams point at
    // /dev/null by then, so waiting for the output returns when the foreground process exits.
    let out = Command::new(program)
        .arg("-o")
        .arg(ntfs_3g_options(read_only))
        .arg(device)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| helper_error(format!("cannot start it: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let text = if text.trim().is_empty() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            text.into_owned()
        };
        let detail: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(4)
            .collect();
        return Err(helper_error(format!(
            "{}{}{}",
            out.status,
            if detail.is_empty() { "" } else { ": " },
            crate::text::printable(&detail.join("; "))
        )));
    }
    log::info!(
        "mounted {} ({}{}) at {}",
        device.display(),
        program.file_name().unwrap_or_default().to_string_lossy(),
        if read_only { ", read-only" } else { "" },
        dir.display()
    );
    Ok(())
}

/// Unmounts `dir` (kernel and FUSE mounts alike: for `ntfs-3g` on a block device the kernel
/// waits until the driver has written everything).
pub fn unmount(dir: &Path) -> Result<(), MountError> {
    nix::mount::umount2(dir, MntFlags::empty()).map_err(|source| MountError::Unmount {
        dir: dir.to_path_buf(),
        source,
    })?;
    log::info!("unmounted {}", dir.display());
    Ok(())
}

/// Finds `program` in `$PATH` and the sbin folders (which a non-root `PATH` may lack).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_writable_image_drive_kind_has_a_way_to_be_mounted() {
        for t in [
            "ext2", "ext3", "ext4", "vfat", "exfat", "ntfs", "btrfs", "xfs",
        ] {
            assert!(mountable(t), "{t}");
        }
        assert_eq!(method("ntfs"), Some(Method::Ntfs3g));
        assert_eq!(method("vfat"), Some(Method::Kernel(&["vfat"])));
        for t in ["swap", "crypto_LUKS", "LVM2_member", "", "zfs_member"] {
            assert!(!mountable(t), "{t}");
        }
    }

    #[test]
    fn fat_and_exfat_names_are_mounted_as_utf8() {
        assert_eq!(kernel_options("vfat"), Some("utf8=1"));
        assert_eq!(kernel_options("exfat"), Some("iocharset=utf8"));
        assert_eq!(kernel_options("ext4"), None);
    }

    #[test]
    fn ntfs_3g_gets_the_same_safety_options_as_kernel_mounts() {
        assert_eq!(ntfs_3g_options(false), "nosuid,nodev,noatime");
        assert_eq!(ntfs_3g_options(true), "nosuid,nodev,noatime,ro");
    }

    #[test]
    fn swap_is_refused_without_touching_the_system() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let err = mount(
            Path::new("/dev/null"),
            dir.path(),
            "swap",
            Access::ReadWrite,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert_eq!(err, "/dev/null: swap cannot be mounted");
    }
}
