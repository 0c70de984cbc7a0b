//! The safety checks every writing job passes before it may ask for confirmation: the target is
//! not the source (nor a partition of it, nor its disk), not mounted, not swap, not held, and not
//! the medium the running system booted from.

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
            })
        }
        _ => Ok(CheckedTarget {
            path: target.to_path_buf(),
            identity: format!("file {}, {} bytes", target.display(), size),
            size,
            device: None,
            partition: None,
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
