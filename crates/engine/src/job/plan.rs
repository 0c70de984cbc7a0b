//! [`plan`]: every safety rule, then the step's own plan. Reads only.

use super::{
    BackupSpec, CloneSpec, CopyInto, CopySpec, Destination, Disks, FreeSpaceCopy, JobSpec,
    Overwrites, Plan, ReceiveSpec, RestoreSpec, Steps, Target, VerifySpec,
};
use crate::backup::SourceIdentity;
use crate::error::JobError;
use crate::safety::{check_image_destination, check_write_target, CheckedTarget};
use crate::units::human;
use disk::{BlockIo, FileDisk, Window};
use std::path::Path;
use std::sync::Arc;

/// The volume size on a FAT destination: 4 GiB less 1 MiB, below the largest file FAT32 holds.
pub const FAT_SPLIT: u64 = (4 << 30) - (1 << 20);

/// Checks `spec` against `disks` and plans it. Reads only: nothing is written until [`super::run`].
pub fn plan(spec: JobSpec, disks: &Disks) -> Result<Plan, JobError> {
    match spec {
        JobSpec::Backup(s) => plan_backup(s, disks),
        JobSpec::Restore(s) => plan_restore(s, disks),
        JobSpec::Clone(s) => plan_clone(s, disks),
        JobSpec::Copy(s) => plan_copy(s, disks),
        JobSpec::Verify(s) => plan_verify(s, disks),
        JobSpec::Receive(s) => plan_receive(s, disks),
    }
}

fn read_err(path: &Path, offset: u64, source: std::io::Error) -> JobError {
    JobError::Read {
        device: path.display().to_string(),
        offset,
        len: 0,
        source,
    }
}

/// The identity of the target the confirmation names, with `partition N of` when only a
/// partition of a disk image file is written.
pub(super) fn target(
    checked: &CheckedTarget,
    overwrites: Overwrites,
    into: Option<u32>,
    range: (u64, u64),
    file_sector_size: Option<u32>,
) -> Target {
    let identity = match into {
        Some(n) => format!("partition {n} of {}", checked.identity),
        None => checked.identity.clone(),
    };
    Target {
        path: checked.path.clone(),
        identity: disk::text::printable(&identity).into_owned(),
        overwrites,
        offset: range.0,
        len: range.1,
        size: checked.size,
        is_block: checked.device.is_some(),
        model: checked.device.as_ref().and_then(|d| d.model.clone()),
        serial: checked.device.as_ref().and_then(|d| d.serial.clone()),
        object: checked.object,
        backing: super::loop_backing(checked.device.as_ref()),
        file_sector_size: if checked.device.is_some() {
            None
        } else {
            file_sector_size
        },
    }
}

/// Partition `n` of the disk or disk image at `path`: `(start, size)`.
fn partition_range(io: &FileDisk, path: &Path, n: u32) -> Result<(u64, u64), JobError> {
    let l = layout::read(io)?;
    let p = l.partition(n).ok_or_else(|| JobError::NoSuchPartition {
        device: path.display().to_string(),
        number: n,
    })?;
    Ok((p.start, p.size))
}

/// Free bytes (for an unprivileged user) and whether the file system holding `dir` is FAT.
pub fn destination_space(dir: &Path) -> Result<Destination, JobError> {
    let err = |problem: String| JobError::Destination {
        path: dir.display().to_string(),
        problem,
    };
    let vfs =
        nix::sys::statvfs::statvfs(dir).map_err(|e| err(format!("reading the free space: {e}")))?;
    let free = vfs.blocks_available().saturating_mul(vfs.fragment_size());
    let fat = nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type() == nix::sys::statfs::MSDOS_SUPER_MAGIC)
        .map_err(|e| err(format!("reading the file system type: {e}")))?;
    Ok(Destination { free, fat })
}

fn plan_backup(mut s: BackupSpec, disks: &Disks) -> Result<Plan, JobError> {
    if std::fs::symlink_metadata(&s.image).is_ok() {
        return Err(JobError::Destination {
            path: s.image.display().to_string(),
            problem: "it exists: choose another name or remove it first (images are never \
                      overwritten)"
                .to_string(),
        });
    }
    check_image_destination(&s.image, &s.source, disks.devices())?;
    let dir = match s.image.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let destination = destination_space(&dir)?;
    let mut notes = Vec::new();
    if destination.fat && s.options.split.is_none_or(|n| n > FAT_SPLIT) {
        s.options.split = Some(FAT_SPLIT);
        notes.push(format!(
            "{} is a FAT file system: the image is split into volumes of at most 4 GiB",
            dir.display()
        ));
    }
    s.options.chunk_size = s
        .options
        .chunk_size
        .min(crate::backup::chunk_size_for(s.options.split));
    let src = FileDisk::open_read(&s.source)?;
    let source_dev = src.dev_num().and_then(|dev| {
        disks
            .devices()
            .iter()
            .find(|d| d.dev == Some(dev) || d.partitions.iter().any(|p| p.dev == Some(dev)))
    });
    // An md array is named by its level, name and UUID (it has no model or serial of its own),
    // and its members by their disks.
    let array = source_dev.and_then(|d| crate::md::array(d, disks.devices()));
    let identity = match (&array, source_dev) {
        (Some(a), _) => Some(SourceIdentity {
            model: a.model(),
            serial: a.uuid.clone().unwrap_or_default(),
        }),
        (None, Some(d)) => Some(SourceIdentity {
            model: d.model.clone().unwrap_or_default(),
            serial: d.serial.clone().unwrap_or_default(),
        }),
        (None, None) => None,
    }
    .or_else(|| s.identity.clone())
    .unwrap_or_default();
    let mut plan = crate::backup::plan_backup(&src, identity, &s.image, s.part)?;
    if let Some(a) = &array {
        plan.notes.insert(
            0,
            format!(
                "the source is an assembled {}: its file system is imaged like a partition; \
                 restored onto a partition or disk it is a plain file system, not an array \
                 (or restore it onto an assembled, writable array of the same size)",
                a.summary()
            ),
        );
    }
    match &s.key {
        Some(key) => unlock_encrypted(&mut plan, &src, &s.source, key, s.decrypted, disks)?,
        None if s.decrypted => {
            return Err(JobError::Key {
                problem: "--decrypted needs the key of the encrypted volumes (--key-file)"
                    .to_string(),
            })
        }
        None => {}
    }
    if s.all_unpartitioned {
        plan = plan.with_all_unpartitioned();
    }
    plan.encryption = s.encryption.clone();
    let total = plan.total_bytes();
    if total > destination.free {
        notes.push(format!(
            "{} is free at the destination for up to {} to read: the image is compressed, but \
             it may not fit",
            human(destination.free),
            human(total)
        ));
    }
    Ok(Plan {
        title: format!("back up {} to {}", s.source.display(), s.image.display()),
        spec: JobSpec::Backup(s),
        target: None,
        steps: Steps::Backup(Box::new(plan)),
        notes,
        warnings: Vec::new(),
        total_bytes: total,
        destination: Some(destination),
        disks: disks.clone(),
    })
}

/// With a key: every encrypted partition of `plan` is unlocked read-only, and its copy becomes
/// the ciphertext of the used blocks inside plus its headers ([`crate::unlock`]). A partition the
/// key does not open is an error (a wrong key should not quietly cost a whole-volume image).
fn unlock_encrypted(
    plan: &mut crate::backup::BackupPlan,
    src: &FileDisk,
    source: &Path,
    key: &crate::unlock::Key,
    decrypted: bool,
    disks: &Disks,
) -> Result<(), JobError> {
    let mut found = 0;
    for stream in &mut plan.streams {
        let crate::backup::StreamPlan::Partition { copy, whole_source } = stream else {
            continue;
        };
        if !copy.fs.as_ref().is_some_and(|f| f.kind.is_encrypted()) {
            continue;
        }
        found += 1;
        let node = if *whole_source && copy.src_start == 0 && copy.len == src.len() {
            source.to_path_buf()
        } else {
            partition_node(src, copy.number, disks).ok_or_else(|| JobError::Key {
                problem: format!(
                    "partition {} of {} has no device node to unlock it through (only a disk \
                     or partition device can be unlocked, not a disk image file)",
                    copy.number,
                    source.display()
                ),
            })?
        };
        let part = Window::new(src, copy.src_start, copy.len)
            .map_err(|e| read_err(source, copy.src_start, e))?;
        let what = match copy.fs.as_ref() {
            Some(f) if f.kind == fs::FsKind::BitLocker => "BitLocker".to_string(),
            Some(f) => f.version.clone().unwrap_or_default(),
            None => String::new(),
        };
        if decrypted {
            let plain =
                crate::unlock::open_plaintext(&node, &part, copy.number, key)?.map_err(|why| {
                    JobError::Key {
                        problem: format!(
                        "partition {} of {}: {what} encrypted volume unlocked, but {}: there is \
                         nothing to store decrypted (back up without --decrypted to keep it \
                         whole)",
                        copy.number,
                        source.display(),
                        disk::text::printable(&why)
                    ),
                    }
                })?;
            store_plaintext(copy, &what, plain, &mut plan.plaintext);
            continue;
        }
        let mapped = match crate::unlock::map_encrypted(&node, &part, copy.number, key)? {
            Ok(m) => m,
            Err(why) => {
                // Unlocked, but nothing inside can be mapped: the whole volume, said so.
                copy.note = Some(format!(
                    "{what} encrypted volume unlocked read-only, but {}: every byte is copied",
                    disk::text::printable(&why)
                ));
                continue;
            }
        };
        copy.note = Some(format!(
            "{what} encrypted volume unlocked read-only: {} inside, {} in use; only the \
             ciphertext of its used blocks and the headers are stored (no plaintext, no key): a \
             restore gives back the same locked volume",
            disk::text::printable(&mapped.inside),
            human(mapped.used_inside)
        ));
        copy.bytes = mapped.map.used_bytes();
        copy.map = Some(mapped.map);
        copy.mode = crate::pipeline::CopyMode::UsedBlocks;
    }
    if !plan.plaintext.is_empty() {
        plan.notes.push(
            "DECRYPTED: the encrypted volumes above are stored as plain, readable data. Anyone \
             who has the image can read their files without the key, and a restore writes them \
             back UNENCRYPTED (no LUKS or BitLocker any more; encrypt the disk again afterwards \
             if it must be). To keep them encrypted, back up without --decrypted."
                .to_string(),
        );
    }
    if found == 0 {
        return Err(JobError::Key {
            problem: format!(
                "a key was given, but {} holds no LUKS or BitLocker volume",
                source.display()
            ),
        });
    }
    Ok(())
}

/// Makes `copy` the plaintext of its unlocked volume: the file system (or LVM2 PV) inside, its
/// used blocks read from the open device-mapper device, said plainly in the copy's note.
fn store_plaintext(
    copy: &mut crate::pipeline::PartitionCopy,
    what: &str,
    mut plain: crate::unlock::Plaintext,
    out: &mut Vec<crate::unlock::Plaintext>,
) {
    let len = plain.disk.len();
    let (mode, bytes, how) = match &plain.map {
        Some(m) => (
            crate::pipeline::CopyMode::UsedBlocks,
            m.used_bytes(),
            format!("{} in use", human(m.used_bytes())),
        ),
        None => (
            crate::pipeline::CopyMode::Whole,
            len,
            format!(
                "its used blocks cannot be told ({}): every byte of it is copied",
                disk::text::printable(plain.why.as_deref().unwrap_or("no map"))
            ),
        ),
    };
    copy.note = Some(format!(
        "{what} encrypted volume unlocked read-only and stored DECRYPTED: the plaintext {} \
         inside ({}, {how}), without the encryption header; a restore writes it back \
         unencrypted",
        disk::text::printable(&plain.inside),
        human(len)
    ));
    copy.len = len;
    copy.fs = Some(plain.info.clone());
    copy.map = plain.map.take();
    copy.bytes = bytes;
    copy.mode = mode;
    out.push(plain);
}

/// The device node of partition `number` of the disk device `src`, from discovery.
fn partition_node(src: &FileDisk, number: u32, disks: &Disks) -> Option<std::path::PathBuf> {
    let dev = src.dev_num()?;
    disks
        .devices()
        .iter()
        .find(|d| d.dev == Some(dev))?
        .partitions
        .iter()
        .find(|p| p.number == Some(number))
        .map(|p| p.path.clone())
}

fn plan_restore(s: RestoreSpec, disks: &Disks) -> Result<Plan, JobError> {
    let checked = check_write_target(&s.target, &[], Some(&s.image), disks.devices())?;
    let img = Arc::new(crate::keys::open_image(&s.image)?);
    let m = img.manifest();
    let partition_restore = match s.whole_disk {
        Some(whole) => !whole,
        None => {
            s.part.is_some()
                || m.table.kind == "none"
                || checked.partition.is_some()
                || s.into.is_some()
        }
    };
    let t = FileDisk::open_read(&s.target)?;
    let (dst_start, dst_len) = match s.into {
        Some(n) => partition_range(&t, &s.target, n)?,
        None => (0, t.len()),
    };
    let name = match s.into {
        Some(n) => format!("partition {n} of {}", s.target.display()),
        None => s.target.display().to_string(),
    };
    let mut warnings = Vec::new();
    let plan = if partition_restore {
        crate::restore::plan_restore_partition(&img, s.part, &name, dst_len)?
    } else {
        let sector = checked.device.as_ref().map(|_| t.logical_sector_size());
        let plan = crate::restore::plan_restore_disk(&img, &name, dst_len, sector, &s.options)?;
        if let Some(dev) = &checked.device {
            let same_serial =
                !m.source.serial.is_empty() && dev.serial.as_deref() == Some(&m.source.serial);
            if !same_serial && !m.source.model.is_empty() {
                warnings.push(format!(
                    "the image was made from another disk: {}; the target is {}",
                    disk::text::identity(
                        None,
                        Some(&m.source.model),
                        Some(&m.source.serial),
                        Some(m.source.size)
                    ),
                    dev.identity()
                ));
            }
        }
        plan
    };
    let overwrites = if plan.table.is_some() {
        Overwrites::Disk
    } else {
        Overwrites::Partition
    };
    let sector = plan.table.as_ref().map(|t| t.layout().sector_size);
    let target = target(&checked, overwrites, s.into, (dst_start, dst_len), sector);
    Ok(Plan {
        title: format!("restore {} to {}", s.image.display(), name),
        total_bytes: plan.total_bytes(),
        spec: JobSpec::Restore(s),
        target: Some(target),
        steps: Steps::Restore(Box::new(plan)),
        notes: Vec::new(),
        warnings,
        destination: None,
        disks: disks.clone(),
    })
}

/// A restore from a cast stream: the safety checks of a restore (the target is neither in use
/// nor a source), a whole-disk plan from the stream's metadata (its partition table is in the
/// kept disk-area chunks), and the warning when the image came from another disk.
fn plan_receive(s: ReceiveSpec, disks: &Disks) -> Result<Plan, JobError> {
    let checked = check_write_target(&s.target, &[], None, disks.devices())?;
    let img = Arc::clone(s.source.image());
    let m = img.manifest();
    let t = FileDisk::open_read(&s.target)?;
    let name = s.target.display().to_string();
    if m.table.kind == "none" || checked.partition.is_some() {
        return Err(JobError::BadImage {
            image: s.source.name().to_string(),
            problem: "a streamed image is restored onto a whole disk (it must hold a partition \
                      table and the target must be a disk)"
                .to_string(),
        });
    }
    let sector = checked.device.as_ref().map(|_| t.logical_sector_size());
    let plan =
        crate::restore::plan_restore_disk_streamed(&img, &name, t.len(), sector, &s.options)?;
    let mut warnings = Vec::new();
    if let Some(dev) = &checked.device {
        let same_serial =
            !m.source.serial.is_empty() && dev.serial.as_deref() == Some(&m.source.serial);
        if !same_serial && !m.source.model.is_empty() {
            warnings.push(format!(
                "the image was made from another disk: {}; the target is {}",
                disk::text::identity(
                    None,
                    Some(&m.source.model),
                    Some(&m.source.serial),
                    Some(m.source.size)
                ),
                dev.identity()
            ));
        }
    }
    let sector = plan.table.as_ref().map(|t| t.layout().sector_size);
    let target = target(&checked, Overwrites::Disk, None, (0, t.len()), sector);
    let mut notes =
        vec!["the image arrives as a stream: each chunk is written as it is received".to_string()];
    if !plan.shrink.is_empty() {
        notes.push(format!(
            "the shrinking partitions are sized from their used bytes; their data past the new \
             end waits in memory (up to {}, then up to {} in {}) until they are shrunk",
            crate::units::human(crate::cast::CAPTURE_MEMORY),
            crate::units::human(crate::cast::CAPTURE_SPILL),
            std::env::temp_dir().display()
        ));
    }
    Ok(Plan {
        title: format!("receive {} onto {}", s.source.name(), name),
        total_bytes: plan.total_bytes(),
        spec: JobSpec::Receive(s),
        target: Some(target),
        steps: Steps::Restore(Box::new(plan)),
        notes,
        warnings,
        destination: None,
        disks: disks.clone(),
    })
}

fn plan_clone(s: CloneSpec, disks: &Disks) -> Result<Plan, JobError> {
    let checked = check_write_target(&s.target, &[&s.source], None, disks.devices())?;
    let src = FileDisk::open_read(&s.source)?;
    let target_sector = match checked.device {
        Some(_) => Some(FileDisk::open_read(&s.target)?.logical_sector_size()),
        None => None,
    };
    let plan = crate::clone::plan_clone(
        &src,
        &s.target.display().to_string(),
        checked.size,
        target_sector,
        &s.options,
    )?;
    let sector = Some(plan.table.layout().sector_size);
    let target = target(&checked, Overwrites::Disk, None, (0, checked.size), sector);
    Ok(Plan {
        title: format!("clone {} to {}", s.source.display(), s.target.display()),
        total_bytes: plan.total_bytes(),
        spec: JobSpec::Clone(s),
        target: Some(target),
        steps: Steps::Clone(Box::new(plan)),
        notes: Vec::new(),
        warnings: Vec::new(),
        destination: None,
        disks: disks.clone(),
    })
}

/// The source of a partition copy: `(io, start, len)`.
pub(super) fn open_copy_source(
    path: &Path,
    part: Option<u32>,
) -> Result<(FileDisk, u64, u64), JobError> {
    let io = FileDisk::open_read(path)?;
    match part {
        None => {
            let len = io.len();
            Ok((io, 0, len))
        }
        Some(n) => {
            let (start, len) = partition_range(&io, path, n)?;
            Ok((io, start, len))
        }
    }
}

fn plan_copy(s: CopySpec, disks: &Disks) -> Result<Plan, JobError> {
    let checked = check_write_target(&s.target, &[&s.source], None, disks.devices())?;
    let (src_io, src_start, src_len) = open_copy_source(&s.source, s.part)?;
    let src =
        Window::new(&src_io, src_start, src_len).map_err(|e| read_err(&s.source, src_start, e))?;
    let title = format!("copy {} to {}", src.describe(), s.target.display());
    let (steps, target, total) = match s.into {
        CopyInto::Whole | CopyInto::Partition(_) => {
            let into = match s.into {
                CopyInto::Partition(n) => Some(n),
                _ => None,
            };
            let t = FileDisk::open_read(&s.target)?;
            let (dst_start, dst_len) = match into {
                Some(n) => partition_range(&t, &s.target, n)?,
                None => (0, t.len()),
            };
            let name = match into {
                Some(n) => format!("partition {n} of {}", s.target.display()),
                None => s.target.display().to_string(),
            };
            let plan = crate::copy::plan_copy_partition(&src, &name, dst_len)?;
            let target = target(
                &checked,
                Overwrites::Partition,
                into,
                (dst_start, dst_len),
                None,
            );
            let total = plan.copy.bytes;
            (Steps::Copy(Box::new(plan)), target, total)
        }
        CopyInto::FreeSpace => {
            let t = FileDisk::open_read(&s.target)?;
            let layout = layout::read(&t)?;
            let kind = crate::copy::partition_type_for(&src_io, s.part, &src, &layout)?;
            let (start, size) =
                crate::copy::find_free_space(&layout, src_len).ok_or_else(|| {
                    JobError::NoFreeSpace {
                        device: s.target.display().to_string(),
                        need: src_len,
                        largest: crate::copy::largest_free_space(&layout),
                    }
                })?;
            let table = layout::add_partition(&layout, start, size, kind, "")?;
            let number = table
                .layout()
                .partitions
                .iter()
                .find(|p| p.start == start)
                .map(|p| p.number)
                .unwrap_or(0);
            let copy = crate::copy::plan_copy_partition(
                &src,
                &format!("new partition {number} of {}", s.target.display()),
                size,
            )?;
            let total = copy.copy.bytes;
            let target = target(
                &checked,
                Overwrites::FreeSpace,
                None,
                (start, size),
                Some(layout.sector_size),
            );
            let plan = FreeSpaceCopy {
                copy,
                table,
                number,
                start,
                size,
            };
            (Steps::CopyToFreeSpace(Box::new(plan)), target, total)
        }
    };
    Ok(Plan {
        title,
        spec: JobSpec::Copy(s),
        target: Some(target),
        steps,
        notes: Vec::new(),
        warnings: Vec::new(),
        total_bytes: total,
        destination: None,
        disks: disks.clone(),
    })
}

fn plan_verify(s: VerifySpec, disks: &Disks) -> Result<Plan, JobError> {
    let img = crate::keys::open_image(&s.image)?;
    let bytes: u64 = img
        .index()
        .iter()
        .map(|e| u64::from(e.uncompressed_len))
        .sum();
    Ok(Plan {
        title: format!("verify {}", s.image.display()),
        spec: JobSpec::Verify(s),
        target: None,
        steps: Steps::Verify { bytes },
        notes: Vec::new(),
        warnings: Vec::new(),
        total_bytes: bytes,
        destination: None,
        disks: disks.clone(),
    })
}
