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
            if disk.is_read_only_array() && reason.is_none() {
                return Err(JobError::TargetInUse {
                    device: device_name,
                    reason: format!(
                        "the md array {} is assembled read-only (Lifeboat assembles arrays \
                         read-only so that nothing writes their members): make it writable with \
                         `mdadm --readwrite {}` first",
                        disk.name,
                        disk.path.display()
                    ),
                });
            }
            if let Some(reason) = reason {
                return Err(JobError::TargetInUse {
                    device: device_name,
                    reason,
                });
            }
            let identity = match (part, crate::md::array(disk, devices)) {
                (None, Some(a)) => format!(
                    "{}, UUID {}, {}",
                    disk::text::printable(&a.model()),
                    a.uuid.as_deref().unwrap_or("unknown"),
                    disk::text::decimal_size(size)
                ),
                (None, None) => disk.identity(),
                (Some(p), _) => format!("partition {} of {}", p.name, disk.identity()),
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
    if let Some(reason) = md_member_on(target) {
        return Err(refuse(reason));
    }
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

/// Why `target` must not be written because it is, or holds, a member of an md RAID array (the
/// whole target, or any partition of its partition table); `None` when it holds none. Lifeboat
/// never assembles arrays, so a member is only "in use" on paper: the kernel would not refuse.
/// Writing one member alone leaves the array's devices disagreeing, and the next assembly may
/// take either copy, so it is refused until the user removes the member from its array.
pub fn md_member_on(target: &Path) -> Option<String> {
    let io = FileDisk::open_read(target).ok()?;
    let whole = fs::md::read(&io).ok().flatten().map(|m| (None, m));
    let member = whole.or_else(|| {
        let l = layout::read(&io).ok()?;
        l.partitions.iter().find_map(|p| {
            let w = disk::Window::new(&io, p.start, p.size).ok()?;
            fs::md::read(&w).ok().flatten().map(|m| (Some(p.number), m))
        })
    })?;
    let (part, m) = member;
    let what = match part {
        Some(n) => format!("partition {n} of it"),
        None => "it".to_string(),
    };
    let array = match (&m.name, &m.array_uuid) {
        (Some(n), Some(u)) => format!("\"{}\" (UUID {u})", disk::text::printable(n)),
        (None, Some(u)) => format!("UUID {u}"),
        (Some(n), None) => format!("\"{}\"", disk::text::printable(n)),
        (None, None) => "without a UUID".to_string(),
    };
    let why = if m.is_redundant() {
        "writing one member alone leaves the array's copies disagreeing, and the next assembly \
         may take either"
    } else {
        "writing one member alone destroys the array's data"
    };
    Some(format!(
        "{what} is a member of the md {} array {array} ({}): {why}; write the assembled array \
         instead, or take the member out of its array first (mdadm --zero-superblock)",
        m.level.to_uppercase(),
        m.summary()
    ))
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

    /// An md 1.2 superblock as the kernel lays it out (`mdp_superblock_1`, 4 KiB into the
    /// member): RAID1 `lifeboat:root`, 2 devices, this one device 0. The build host has no md
    /// driver, so `mdadm --create` cannot run here; the booted image test makes real ones.
    fn md_1_2_superblock() -> Vec<u8> {
        let mut sb = vec![0u8; 4096];
        sb[0..4].copy_from_slice(&0xa92b_4efc_u32.to_le_bytes());
        sb[4..8].copy_from_slice(&1u32.to_le_bytes());
        sb[16..32].copy_from_slice(&[0x5a; 16]);
        sb[32..45].copy_from_slice(b"lifeboat:root");
        sb[72..76].copy_from_slice(&1u32.to_le_bytes());
        sb[92..96].copy_from_slice(&2u32.to_le_bytes());
        sb[128..136].copy_from_slice(&2048u64.to_le_bytes());
        sb[136..144].copy_from_slice(&2048u64.to_le_bytes());
        sb[144..152].copy_from_slice(&8u64.to_le_bytes());
        sb[220..224].copy_from_slice(&2u32.to_le_bytes());
        sb[256..258].copy_from_slice(&0u16.to_le_bytes());
        sb[258..260].copy_from_slice(&1u16.to_le_bytes());
        sb
    }

    #[test]
    fn a_target_holding_an_md_raid1_member_is_refused_and_says_how_to_proceed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("member.img");
        let mut bytes = vec![0u8; 4 << 20];
        bytes[4096..8192].copy_from_slice(&md_1_2_superblock());
        std::fs::write(&file, &bytes).unwrap();
        let e = check_write_target(&file, &[], None, &[]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("it is a member of the md RAID1 array \"lifeboat:root\" (UUID 5a5a5a5a-"),
            "{text}"
        );
        assert!(text.contains("RAID1 member, device 0 of 2"), "{text}");
        assert!(text.contains("the next assembly may take either"), "{text}");
        assert!(text.contains("mdadm --zero-superblock"), "{text}");
        // Without the superblock the same file is an ordinary target.
        bytes[4096..8192].fill(0);
        std::fs::write(&file, &bytes).unwrap();
        assert!(check_write_target(&file, &[], None, &[]).is_ok());
    }

    #[test]
    fn a_disk_with_an_md_member_partition_is_refused_naming_the_partition() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        qemu_tests::fixture::sparse_file(&file, 16 << 20).unwrap();
        qemu_tests::fixture::sgdisk(&file, &["-n", "1:2048:+4M", "-n", "2:0:+4M"]).unwrap();
        let l = layout::read(&FileDisk::open_read(&file).unwrap()).unwrap();
        let start = l.partition(2).unwrap().start;
        let mut bytes = std::fs::read(&file).unwrap();
        let at = usize::try_from(start).unwrap() + 4096;
        bytes[at..at + 4096].copy_from_slice(&md_1_2_superblock());
        std::fs::write(&file, &bytes).unwrap();
        let e = check_write_target(&file, &[], None, &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("partition 2 of it is a member of the md RAID1 array"),
            "{e}"
        );
    }
}
