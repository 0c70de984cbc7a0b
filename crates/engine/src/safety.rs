//! The safety checks every writing job passes before it may ask for confirmation, and again when
//! it opens the target: the target is not the source (nor a partition of it, nor its disk), not
//! mounted, not swap, not held, not the medium the running system booted from, not the drive or
//! partition that holds a file being read (the image of a restore, a disk image file being
//! cloned), and — for a file or a loop device — not a file on the disk being read, on Lifeboat's
//! boot medium, or the very file being read.

use crate::error::JobError;
use disk::{BlockDevice, DevNum, FileDisk, ObjectId};
use std::path::{Path, PathBuf};

/// A target that passed the checks, with what the confirmation must show.
#[derive(Debug, Clone)]
pub struct CheckedTarget {
    pub path: PathBuf,
    /// Model, serial and size (devices) or path and size (files).
    pub identity: String,
    pub size: u64,
    /// The disk, when the target is a block device (or a partition of one).
    pub device: Option<BlockDevice>,
    /// The partition number, when the target is a partition of `device`.
    pub partition: Option<u32>,
    /// What is open at `path` now: a later open must find the same object.
    pub object: ObjectId,
}

/// Where a device number sits among the discovered disks: the disk, and the partition if any.
fn locate(
    devices: &[BlockDevice],
    dev: DevNum,
) -> Option<(&BlockDevice, Option<&disk::Partition>)> {
    for d in devices {
        if d.dev == Some(dev) {
            return Some((d, None));
        }
        if let Some(p) = d.partitions.iter().find(|p| p.dev == Some(dev)) {
            return Some((d, Some(p)));
        }
    }
    None
}

/// Checks that `target` may be written by a job reading `sources`. `devices` is the current
/// discovery (block devices are matched by device number, not by name).
pub fn check_target(
    target: &Path,
    sources: &[&Path],
    devices: &[BlockDevice],
) -> Result<CheckedTarget, JobError> {
    let t = FileDisk::open_read(target)?;
    let device_name = target.display().to_string();
    for source in sources {
        let s = FileDisk::open_read(source)?;
        if s.object_id() == t.object_id() {
            return Err(JobError::SameDevice {
                device: device_name,
            });
        }
        // A partition of the source disk, or the disk of a source partition.
        if let (Some(sd), Some(td)) = (s.dev_num(), t.dev_num()) {
            let s_loc = locate(devices, sd);
            let t_loc = locate(devices, td);
            if let (Some((s_disk, _)), Some((t_disk, _))) = (s_loc, t_loc) {
                if s_disk.dev == t_disk.dev
                    && (s_loc.is_some_and(|l| l.1.is_none())
                        || t_loc.is_some_and(|l| l.1.is_none()))
                {
                    return Err(JobError::TargetInUse {
                        device: device_name,
                        reason: format!("it overlaps the source {}", source.display()),
                    });
                }
            }
        }
    }
    let size = disk::BlockIo::len(&t);
    match (t.object_id(), t.dev_num()) {
        (ObjectId::Block(_), Some(dev)) => {
            let Some((disk, part)) = locate(devices, dev) else {
                return Err(JobError::TargetInUse {
                    device: device_name,
                    reason: "it is not among the disks found in /sys (rescan and try again)"
                        .to_string(),
                });
            };
            if disk.is_boot_medium {
                return Err(JobError::TargetInUse {
                    device: device_name,
                    reason: format!(
                        "{} holds the running system or the medium Lifeboat booted from",
                        disk.name
                    ),
                });
            }
            let reason = match part {
                None => disk.in_use(),
                Some(p) => partition_in_use(p),
            };
            if let Some(reason) = reason {
                return Err(JobError::TargetInUse {
                    device: device_name,
                    reason,
                });
            }
            let identity = match part {
                None => disk.identity(),
                Some(p) => format!("partition {} of {}", p.name, disk.identity()),
            };
            Ok(CheckedTarget {
                path: target.to_path_buf(),
                identity,
                size,
                device: Some(disk.clone()),
                partition: part.and_then(|p| p.number),
                object: t.object_id(),
            })
        }
        _ => Ok(CheckedTarget {
            path: target.to_path_buf(),
            identity: format!("file {}, {} bytes", target.display(), size),
            size,
            device: None,
            partition: None,
            object: t.object_id(),
        }),
    }
}

fn partition_in_use(p: &disk::Partition) -> Option<String> {
    let mut reasons: Vec<String> = p
        .mount_points
        .iter()
        .map(|m| format!("{} is mounted at {}", p.name, m.display()))
        .collect();
    if p.swap {
        reasons.push(format!("{} is in use as swap", p.name));
    }
    reasons.extend(
        p.holders
            .iter()
            .map(|h| format!("{} is held by {h}", p.name)),
    );
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Refuses an image destination that lies on the source disk itself (a partition of it, or a
/// file system on it): the backup would read its own output and fill the disk it rescues.
pub fn check_image_destination(
    image: &Path,
    source: &Path,
    devices: &[BlockDevice],
) -> Result<(), JobError> {
    use std::os::unix::fs::MetadataExt;
    let dir = match image.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(meta) = std::fs::metadata(&dir) else {
        return Err(JobError::TargetInUse {
            device: image.display().to_string(),
            reason: format!("the folder {} does not exist", dir.display()),
        });
    };
    let dest_dev = DevNum::from_dev_t(meta.dev());
    let src = FileDisk::open_read(source)?;
    let Some(src_dev) = src.dev_num() else {
        return Ok(());
    };
    let (Some((src_disk, _)), Some((dst_disk, _))) =
        (locate(devices, src_dev), locate(devices, dest_dev))
    else {
        return Ok(());
    };
    if src_disk.dev == dst_disk.dev {
        return Err(JobError::TargetInUse {
            device: image.display().to_string(),
            reason: format!(
                "it is on {}, the disk being backed up: choose another drive",
                src_disk.name
            ),
        });
    }
    Ok(())
}

/// Every check of a writing job's target: [`check_target`] against `sources` and the `image` a
/// restore reads, then the rules about where the files being read and written live:
/// - a file being read (the image, a disk image file being cloned) must not be stored on the
///   target drive, nor on the target partition;
/// - a target that is a regular file, or a loop device over one, must not be a file being read,
///   nor be stored on a disk being read, nor on Lifeboat's boot medium.
///
/// `devices` must include loop devices (`include_virtual`), or a loop target is refused as
/// unknown.
pub fn check_write_target(
    target: &Path,
    sources: &[&Path],
    image: Option<&Path>,
    devices: &[BlockDevice],
) -> Result<CheckedTarget, JobError> {
    let mut all: Vec<&Path> = sources.to_vec();
    all.extend(image);
    let refuse = |reason: String| JobError::TargetInUse {
        device: target.display().to_string(),
        reason,
    };
    // Files being read that live on the target.
    // (First: it is the clearer reason when the drive is also in use because the file is open.)
    if let Some(tdev) = disk::FileDisk::open_read(target)?.dev_num() {
        let t_loc = locate(devices, tdev);
        for source in &all {
            let Some(sdev) = file_device(source) else {
                continue;
            };
            let (Some((tdisk, tpart)), Some((sdisk, spart))) = (t_loc, locate(devices, sdev))
            else {
                continue;
            };
            let same_disk = tdisk.dev == sdisk.dev;
            let overlaps = match (tpart, spart) {
                (None, _) => true,
                (Some(t), Some(s)) => t.dev == s.dev,
                (Some(_), None) => true,
            };
            if same_disk && overlaps {
                return Err(refuse(if Some(*source) == image {
                    format!(
                        "the image {} is stored on this drive: restoring onto it would overwrite \
                         the image while it is read",
                        source.display()
                    )
                } else {
                    format!(
                        "{} is stored on this drive: writing it would overwrite the file being read",
                        source.display()
                    )
                }));
            }
        }
    }
    let checked = check_target(target, &all, devices)?;
    // The file that is really written: the target itself, or the file behind a loop device.
    let written: Option<PathBuf> = match (&checked.device, checked.object) {
        (None, _) => Some(target.to_path_buf()),
        (Some(d), _) => match &d.kind {
            disk::DeviceKind::Loop { backing_file } => Some(backing_file.clone()),
            _ => None,
        },
    };
    if let Some(file) = written {
        check_written_file(&file, &all, devices).map_err(refuse)?;
    }
    Ok(checked)
}

/// The device holding the file system of a regular file (`None` for devices and missing paths).
fn file_device(path: &Path) -> Option<DevNum> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| DevNum::from_dev_t(meta.dev()))
}

/// True when `disk` is a boot medium because Lifeboat booted from it, not because it holds the
/// running system's `/` (on a workstation, files on the system disk are fine targets; in the
/// boot image `/` is in memory, so a boot medium there is always Lifeboat's stick or CD).
fn is_lifeboat_medium(disk: &BlockDevice) -> bool {
    let root = Path::new("/");
    disk.is_boot_medium
        && !disk.mount_points.iter().any(|m| m == root)
        && !disk
            .partitions
            .iter()
            .any(|p| p.mount_points.iter().any(|m| m == root))
}

/// The rules for a regular file that a job writes (a target file or a loop device's backing
/// file): not a file being read, not stored on a disk being read, not on Lifeboat's boot medium.
fn check_written_file(
    file: &Path,
    sources: &[&Path],
    devices: &[BlockDevice],
) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file)
        .map_err(|e| format!("the file {} cannot be examined: {e}", file.display()))?;
    for source in sources {
        if let Ok(s) = std::fs::metadata(source) {
            if s.is_file() && s.dev() == meta.dev() && s.ino() == meta.ino() {
                return Err(format!("it writes {}, which is being read", file.display()));
            }
        }
    }
    let Some((disk, _)) = locate(devices, DevNum::from_dev_t(meta.dev())) else {
        return Ok(());
    };
    for source in sources {
        let Ok(s) = disk::FileDisk::open_read(source) else {
            continue;
        };
        let Some((sdisk, _)) = s.dev_num().and_then(|d| locate(devices, d)) else {
            continue;
        };
        if sdisk.dev == disk.dev {
            return Err(format!(
                "{} is stored on {}, the disk being read",
                file.display(),
                disk.name
            ));
        }
    }
    if is_lifeboat_medium(disk) {
        return Err(format!(
            "{} is stored on {}, the medium Lifeboat booted from",
            file.display(),
            disk.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A disk (one partition) whose partition holds the file system at `dev`.
    fn disk_holding(dev: DevNum, mount: &str, boot: bool) -> BlockDevice {
        BlockDevice {
            name: "sdz".into(),
            path: "/dev/sdz".into(),
            dev: Some(DevNum {
                major: 8,
                minor: 4000,
            }),
            kind: disk::DeviceKind::Disk,
            transport: disk::Transport::Usb,
            model: Some("Stick".into()),
            vendor: None,
            serial: Some("S1".into()),
            wwn: None,
            size: 1 << 30,
            logical_sector_size: 512,
            physical_sector_size: 512,
            rotational: None,
            removable: Some(true),
            read_only: None,
            discard: None,
            partitions: vec![disk::Partition {
                name: "sdz1".into(),
                path: "/dev/sdz1".into(),
                number: Some(1),
                dev: Some(dev),
                start: Some(1 << 20),
                size: Some(1 << 29),
                mount_points: vec![PathBuf::from(mount)],
                swap: false,
                holders: Vec::new(),
            }],
            mount_points: Vec::new(),
            swap: false,
            holders: Vec::new(),
            slaves: Vec::new(),
            is_boot_medium: boot,
        }
    }

    #[test]
    fn a_file_on_lifeboats_boot_medium_is_refused_but_one_on_the_running_systems_disk_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("target.img");
        std::fs::write(&file, [0u8; 4096]).unwrap();
        let dev = DevNum::from_dev_t(std::fs::metadata(&file).unwrap().dev());
        // Lifeboat booted from this stick: its file system is mounted under /run/lifeboat.
        let stick = [disk_holding(dev, "/run/lifeboat/media", true)];
        let e = check_written_file(&file, &[], &stick).unwrap_err();
        assert!(e.contains("the medium Lifeboat booted from"), "{e}");
        // A workstation's system disk holds `/`: a file there is an ordinary target.
        let system = [disk_holding(dev, "/", true)];
        assert_eq!(check_written_file(&file, &[], &system), Ok(()));
        let plain = [disk_holding(dev, "/mnt", false)];
        assert_eq!(check_written_file(&file, &[], &plain), Ok(()));
        // The file being read is never a target, whatever its name.
        let other = dir.path().join("other-name.img");
        std::fs::hard_link(&file, &other).unwrap();
        let e = check_written_file(&other, &[file.as_path()], &plain).unwrap_err();
        assert!(e.contains("which is being read"), "{e}");
    }
}
