//! Restoring and cloning onto a smaller disk: which file systems shrink to what
//! ([`plan_table`], with the layout from `layout::plan_shrink`), and shrinking one of them onto
//! its smaller target partition ([`shrink_partition`]).
//!
//! The mechanism (one design for restore and clone):
//! 1. The partition's used blocks that lie below its new size are written to the new, smaller
//!    target partition (the rest is not written anywhere).
//! 2. A copy-on-write device of the file system's old size is made ([`vdev::Overlay`]): the
//!    target partition as its head, the rest read from the image's stream (restore) or the
//!    read-only source partition (clone), writes past the head kept in a bounded overlay.
//! 3. The device is served as a FUSE file ([`vdev::serve_scoped`]) and the file system's own tool
//!    shrinks it there: `e2fsck -f -p` then `resize2fs` (ext2/3/4), `ntfsresize` (NTFS). Every
//!    block the tool moves lands in the head, i.e. on the target.
//! 4. Check: the file system found on the target partition alone has the same kind, UUID and
//!    label and a size within the partition (so nothing it uses lies in the overlay, which is
//!    dropped), and its checker passes on it read-only (`e2fsck -fn`, `ntfsresize --check`).
//!
//! btrfs is shrunk the same way, but `btrfs filesystem resize` needs the file system mounted:
//! the served device gets a writable loop device and is mounted read-write
//! ([`crate::fsmount`]); the kernel relocates every chunk past the new end.
//!
//! FAT is rebuilt instead: a fresh FAT of the same type, serial and label on the target
//! partition, and every file and folder copied into it ([`crate::fatcopy`]). XFS, which cannot
//! shrink, too: a fresh XFS with the same UUID, label and features, filled by
//! `xfsdump | xfsrestore` ([`crate::xfscopy`]); and exFAT, which has no shrink tool: a fresh
//! exFAT with the same serial, label and cluster size, files copied through the kernel's (or
//! exfat-fuse's) driver, attributes and times set on the entries ([`crate::exfatcopy`]).
//!
//! The source and the image are never written; the target's partition table is written after
//! all of this by the caller, so an interrupted run leaves a target without a table.

use crate::error::JobError;
use crate::fsmount::WorkDir;
use crate::grow::tool;
use crate::units::human;
use disk::BlockIo;
use layout::{Change, CopyOptions, Layout, Shrinkable, TablePlan};
use serde::Serialize;
use std::fmt;
use std::path::Path;

/// How a file system is brought down to its new size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShrinkMethod {
    /// `resize2fs` on the copy-on-write device.
    Resize2fs,
    /// `ntfsresize` on the copy-on-write device.
    Ntfsresize,
    /// A fresh FAT with the same serial and label, files copied.
    FatCopy,
    /// `btrfs filesystem resize` on the copy-on-write device, mounted.
    BtrfsResize,
    /// A fresh XFS with the same UUID, label and features, files copied by
    /// `xfsdump | xfsrestore`.
    XfsCopy,
    /// A fresh exFAT with the same serial, label and cluster size, files copied, attributes
    /// and times set on the entries.
    ExfatCopy,
}

impl ShrinkMethod {
    /// The method for a file system (a `fs::FsKind` name), if Lifeboat can shrink it.
    pub fn for_fs(fs: &str) -> Option<Self> {
        match fs {
            "ext2" | "ext3" | "ext4" => Some(ShrinkMethod::Resize2fs),
            "ntfs" => Some(ShrinkMethod::Ntfsresize),
            "vfat" => Some(ShrinkMethod::FatCopy),
            "btrfs" => Some(ShrinkMethod::BtrfsResize),
            "xfs" => Some(ShrinkMethod::XfsCopy),
            "exfat" => Some(ShrinkMethod::ExfatCopy),
            _ => None,
        }
    }

    /// The smallest partition Lifeboat plans for a file system with `used` bytes in use: the
    /// used bytes, a tenth more and a fixed reserve for the tool's own structures (journal,
    /// group tables, MFT growth, FAT tables, btrfs chunks, the XFS log). This is the estimate
    /// used when the tool's own minimum was not measured ([`tool_minimum`]). A FAT is then
    /// never planned below 34 MiB (a FAT32 needs 65 525 clusters of at least 512 bytes), an XFS
    /// never below the 300 MiB `mkfs.xfs` accepts, a btrfs never below the 256 MiB the kernel
    /// resizes one to.
    pub fn min_size(self, used: u64) -> u64 {
        let reserve: u64 = match self {
            ShrinkMethod::Resize2fs => 16 << 20,
            ShrinkMethod::Ntfsresize => 16 << 20,
            ShrinkMethod::FatCopy => 4 << 20,
            // A data, a DUP metadata and a DUP system chunk to relocate into.
            ShrinkMethod::BtrfsResize => 64 << 20,
            // The log (at least 64 MiB), the reserved blocks and the AG headers.
            ShrinkMethod::XfsCopy => 128 << 20,
            // The FAT, the allocation bitmap, the upcase table, the boundary alignment.
            ShrinkMethod::ExfatCopy => 8 << 20,
        };
        let min = used.saturating_add(used / 10).saturating_add(reserve);
        match self {
            ShrinkMethod::FatCopy => min.max(34 << 20),
            ShrinkMethod::XfsCopy => min.max(crate::xfscopy::XFS_MIN_SIZE),
            ShrinkMethod::BtrfsResize => min.max(BTRFS_MIN_SIZE),
            _ => min,
        }
    }

    /// The method as the plan and the report name it.
    pub fn name(self) -> &'static str {
        match self {
            ShrinkMethod::Resize2fs => "resize2fs",
            ShrinkMethod::Ntfsresize => "ntfsresize",
            ShrinkMethod::FatCopy => "file-level copy into a new FAT",
            ShrinkMethod::BtrfsResize => "btrfs filesystem resize",
            ShrinkMethod::XfsCopy => "file-level copy into a new XFS (xfsdump | xfsrestore)",
            ShrinkMethod::ExfatCopy => "file-level copy into a new exFAT",
        }
    }

    /// The tool the progress line names while the step runs.
    pub fn tool(self) -> &'static str {
        match self {
            ShrinkMethod::Resize2fs => "resize2fs",
            ShrinkMethod::Ntfsresize => "ntfsresize",
            ShrinkMethod::FatCopy => "a file-level copy",
            ShrinkMethod::BtrfsResize => "btrfs filesystem resize",
            ShrinkMethod::XfsCopy => "xfsdump | xfsrestore",
            ShrinkMethod::ExfatCopy => "a file-level copy",
        }
    }
}

/// The kernel refuses to resize a btrfs below 256 MiB (`btrfs_ioctl_resize`).
const BTRFS_MIN_SIZE: u64 = 256 << 20;

/// What is known about a source partition's file system when planning.
#[derive(Debug, Clone, Default)]
pub struct PartFacts {
    pub number: u32,
    /// `fs::FsKind` name, empty when unknown.
    pub fs: String,
    /// Bytes in use, when known (a used-block map).
    pub used: Option<u64>,
    pub label: String,
    pub uuid: String,
    /// The smallest size the file system's own tool accepts ([`tool_minimum`]), when measured.
    pub tool_min: Option<u64>,
}

impl PartFacts {
    /// Partition `number` holding `fs` (as probed), with `used` bytes when known.
    pub fn probed(number: u32, fs: Option<&fs::FsInfo>, used: Option<u64>) -> PartFacts {
        PartFacts {
            number,
            fs: fs.map(|f| f.kind.name().to_string()).unwrap_or_default(),
            used,
            label: fs.and_then(|f| f.label.clone()).unwrap_or_default(),
            uuid: fs.and_then(|f| f.uuid.clone()).unwrap_or_default(),
            tool_min: None,
        }
    }
}

/// One partition that shrinks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShrinkStep {
    pub number: u32,
    pub fs: String,
    pub label: String,
    pub uuid: String,
    pub old_start: u64,
    pub new_start: u64,
    pub old_size: u64,
    pub new_size: u64,
    pub used: u64,
    /// The smallest size planned for it (measured or estimated, with its margin).
    pub min_size: u64,
    pub method: ShrinkMethod,
}

impl fmt::Display for ShrinkStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!(" \"{}\"", disk::text::printable(&self.label))
        };
        write!(
            f,
            "partition {} {}{label}: {} -> {} ({} used, {} at least), {}",
            self.number,
            self.fs,
            human(self.old_size),
            human(self.new_size),
            human(self.used),
            human(self.min_size),
            self.method.name()
        )
    }
}

fn shrinkables(facts: &[PartFacts]) -> Vec<Shrinkable> {
    facts
        .iter()
        .filter_map(|f| {
            let m = ShrinkMethod::for_fs(&f.fs)?;
            let estimate = m.min_size(f.used?);
            // The tool's own minimum, when it was measured, with 2 % and 1 MiB to spare.
            let min_size = match f.tool_min {
                Some(t) => t.saturating_add(t / 50).saturating_add(1 << 20),
                None => estimate,
            };
            Some(Shrinkable {
                number: f.number,
                min_size,
            })
        })
        .collect()
}

/// The minimum the file system's own tool names for the file system on `base` (read-only:
/// served through FUSE, or mounted on a copy-on-write view of it, for the length of the call):
/// `resize2fs -P`, `ntfsresize --info`, `btrfs inspect-internal min-dev-size` (never below the
/// 256 MiB the kernel resizes a btrfs to); for XFS what its files allocate plus the new file
/// system's own structures ([`crate::xfscopy`]); for FAT (rebuilt) its used clusters and the
/// new FAT's tables, read by Lifeboat itself ([`crate::fatcopy`], also without root). `None`
/// when not root (for the tools) or when the tool does not say.
pub fn tool_minimum(method: ShrinkMethod, base: &dyn BlockIo) -> Option<u64> {
    if method == ShrinkMethod::FatCopy {
        return crate::fatcopy::minimum(base);
    }
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let block = u64::from(fs::probe(base).ok()??.block_size);
    let measured = match method {
        ShrinkMethod::Resize2fs | ShrinkMethod::Ntfsresize => served_minimum(method, base, block),
        ShrinkMethod::BtrfsResize => btrfs_minimum(base).map(|n| Some(n.max(BTRFS_MIN_SIZE))),
        ShrinkMethod::XfsCopy => crate::xfscopy::minimum(base).map(Some),
        ShrinkMethod::FatCopy | ShrinkMethod::ExfatCopy => Ok(None),
    };
    match measured {
        Ok(v) => v,
        Err(e) => {
            log::warn!("measuring the minimum size of {}: {e}", base.describe());
            None
        }
    }
}

fn served_minimum(
    method: ShrinkMethod,
    base: &dyn BlockIo,
    block: u64,
) -> Result<Option<u64>, JobError> {
    let work = WorkDir::new()?;
    let file = work.file("device")?;
    let measured = vdev::serve_scoped(base, &file, "minimum size", false, |file| {
        let f = file.to_string_lossy();
        match method {
            ShrinkMethod::Resize2fs => {
                let (_, out) = tool("resize2fs", &["-P", &f]).ok()?;
                let n: u64 = out
                    .lines()
                    .find_map(|l| l.strip_prefix("Estimated minimum size of the filesystem:"))?
                    .trim()
                    .parse()
                    .ok()?;
                n.checked_mul(block)
            }
            ShrinkMethod::Ntfsresize => {
                let (_, out) = tool(
                    "ntfsresize",
                    &["--info", "--force", "--no-progress-bar", &f],
                )
                .ok()?;
                out.lines()
                    .find_map(|l| l.strip_prefix("You might resize at "))?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            }
            _ => None,
        }
    });
    measured.map_err(|e| vdev_err(&base.describe(), e))
}

/// `btrfs inspect-internal min-dev-size` of the btrfs on `base`, mounted read-only on a
/// copy-on-write view of it (a log tree is replayed into the overlay, never onto `base`). The
/// tool counts every allocated chunk, not only the used bytes in them.
fn btrfs_minimum(base: &dyn BlockIo) -> Result<u64, JobError> {
    let device = base.describe();
    let work = WorkDir::new()?;
    crate::fsmount::with_cow(base, |view| {
        crate::fsmount::with_mounted(
            view,
            &work,
            "measure",
            "btrfs",
            disk::mount::Access::ReadOnly,
            None,
            |_, mnt| {
                let (code, out) = tool(
                    "btrfs",
                    &["inspect-internal", "min-dev-size", &mnt.to_string_lossy()],
                )?;
                let n = out
                    .split_whitespace()
                    .next()
                    .and_then(|t| t.parse::<u64>().ok())
                    .filter(|_| code == 0);
                n.ok_or_else(|| JobError::Tool {
                    tool: "btrfs inspect-internal min-dev-size".into(),
                    device: device.clone(),
                    output: out,
                })
            },
        )
    })
}

/// What the image's manifest says of each partition's file system.
pub fn facts_from_manifest(m: &image::Manifest) -> Vec<PartFacts> {
    m.partitions
        .iter()
        .map(|e| PartFacts {
            number: e.number,
            fs: e.fs.clone(),
            used: (e.mode == image::PartitionMode::UsedBlocks && e.stream.is_some())
                .then_some(e.used_bytes),
            label: e.label.clone(),
            uuid: e.uuid.clone(),
            tool_min: None,
        })
        .collect()
}

/// What an inspection of a disk found of each partition's file system.
pub fn facts_from_report(parts: &[crate::inspect::PartitionReport]) -> Vec<PartFacts> {
    parts
        .iter()
        .map(|p| PartFacts::probed(p.number, p.fs.as_ref(), p.used))
        .collect()
}

/// The smallest target a restore or clone of `layout` fits on, shrinking what can shrink: what
/// the TUI compares targets with before asking for a plan (the plan decides).
pub fn min_target_len(layout: &Layout, facts: &[PartFacts]) -> Option<u64> {
    layout::min_target_len(layout, &shrinkables(facts)).ok()
}

/// The table for a target of `target_len` bytes and the file systems that must shrink for it.
/// When the source's partitions fit, this is `layout::plan_copy` and no step. Otherwise
/// `measure(number, method)` is asked for the tool's own minimum of each file system that could
/// shrink ([`tool_minimum`] on the image's stream or the source partition).
pub fn plan_table(
    layout: &Layout,
    target_name: &str,
    target_len: u64,
    target_sector: u32,
    opts: &CopyOptions,
    facts: &[PartFacts],
    measure: &dyn Fn(u32, ShrinkMethod) -> Option<u64>,
) -> Result<(TablePlan, Vec<ShrinkStep>), JobError> {
    if let Ok(table) = layout::plan_copy(layout, target_len, target_sector, opts) {
        return Ok((table, Vec::new()));
    }
    let mut facts = facts.to_vec();
    for f in &mut facts {
        if let (Some(m), Some(_)) = (ShrinkMethod::for_fs(&f.fs), f.used) {
            f.tool_min = measure(f.number, m);
        }
    }
    let facts = &facts[..];
    let shrinkable = shrinkables(facts);
    let table =
        layout::plan_shrink(layout, target_len, target_sector, opts, &shrinkable).map_err(|e| {
            match e {
                layout::LayoutError::TargetTooSmall { need, have } => {
                    // Say what each file system could shrink to, and how.
                    let mins: Vec<String> = shrinkable
                        .iter()
                        .filter_map(|s| {
                            let f = facts.iter().find(|f| f.number == s.number)?;
                            let m = ShrinkMethod::for_fs(&f.fs)?;
                            Some(format!(
                                "partition {} {} no smaller than {} by {}",
                                s.number,
                                f.fs,
                                human(s.min_size),
                                m.name()
                            ))
                        })
                        .collect();
                    let device = if mins.is_empty() {
                        target_name.to_string()
                    } else {
                        format!("{target_name} ({})", mins.join("; "))
                    };
                    JobError::TargetTooSmall { device, need, have }
                }
                e => JobError::Layout(e),
            }
        })?;
    let mut steps = Vec::new();
    for c in table.changes() {
        let Change::Shrunk { number, from, to } = *c else {
            continue;
        };
        let (Some(f), Some(old), Some(new)) = (
            facts.iter().find(|f| f.number == number),
            layout.partition(number),
            table.layout().partition(number),
        ) else {
            continue;
        };
        let Some(method) = ShrinkMethod::for_fs(&f.fs) else {
            continue;
        };
        steps.push(ShrinkStep {
            number,
            fs: f.fs.clone(),
            label: f.label.clone(),
            uuid: f.uuid.clone(),
            old_start: old.start,
            new_start: new.start,
            old_size: from,
            new_size: to,
            used: f.used.unwrap_or(0),
            min_size: shrinkable
                .iter()
                .find(|s| s.number == number)
                .map_or(to, |s| s.min_size),
            method,
        });
    }
    Ok((table, steps))
}

/// Bounds of the copy-on-write overlay: 256 MiB in memory, then up to 4 GiB in an unlinked
/// file in the temporary folder.
pub(crate) fn limits() -> vdev::OverlayLimits {
    vdev::OverlayLimits {
        memory: 256 << 20,
        spill_dir: Some(std::env::temp_dir()),
        spill: 4 << 30,
    }
}

fn vdev_err(device: &str, e: vdev::VdevError) -> JobError {
    JobError::Tool {
        tool: "FUSE".into(),
        device: device.to_string(),
        output: e.to_string(),
    }
}

/// Runs `name args... FILE` and fails unless its exit code is at most `ok_max`.
fn run(name: &str, args: &[&str], file: &Path, ok_max: i32, device: &str) -> Result<(), JobError> {
    let f = file.to_string_lossy();
    let mut all: Vec<&str> = args.to_vec();
    all.push(&f);
    let (code, out) = tool(name, &all)?;
    if (0..=ok_max).contains(&code) {
        Ok(())
    } else {
        Err(JobError::Tool {
            tool: name.into(),
            device: device.to_string(),
            output: out,
        })
    }
}

/// Shrinks the file system of `step` onto `head` (the new, smaller target partition, which
/// already holds the used blocks below its size) with the rest of the old file system read from
/// `base` (the image's stream or the source partition, never written). Returns a line for the
/// report.
pub fn shrink_partition(
    step: &ShrinkStep,
    head: &dyn BlockIo,
    base: &dyn BlockIo,
) -> Result<String, JobError> {
    let device = format!("partition {} of {}", step.number, head.describe());
    let work = WorkDir::new()?;
    let started = std::time::Instant::now();
    if matches!(
        step.method,
        ShrinkMethod::FatCopy | ShrinkMethod::XfsCopy | ShrinkMethod::ExfatCopy
    ) {
        match step.method {
            ShrinkMethod::FatCopy => crate::fatcopy::copy_fat(step, head, base)?,
            ShrinkMethod::XfsCopy => crate::xfscopy::copy_xfs(step, head, base)?,
            _ => crate::exfatcopy::copy_exfat(step, head, base)?,
        }
        let shrunk = started.elapsed();
        check_shrunk(step, head, &work, &device)?;
        return Ok(report_line(step, shrunk, started.elapsed() - shrunk));
    }
    let overlay = vdev::Overlay::new(head, base, limits()).map_err(|e| JobError::Tool {
        tool: "lifeboat".into(),
        device: device.clone(),
        output: e.to_string(),
    })?;
    let name = format!("shrink of partition {}", step.number);
    let new_size = step.new_size;
    if step.method == ShrinkMethod::BtrfsResize {
        // Mounted read-write on the overlay; the kernel relocates every chunk past the new end
        // into room below it (so onto the target) and writes the new device size.
        crate::fsmount::with_mounted(
            &overlay,
            &work,
            "shrink",
            "btrfs",
            disk::mount::Access::ReadWrite,
            None,
            |_, mnt| {
                let (code, out) = tool(
                    "btrfs",
                    &[
                        "filesystem",
                        "resize",
                        &new_size.to_string(),
                        &mnt.to_string_lossy(),
                    ],
                )?;
                if code != 0 {
                    return Err(JobError::Tool {
                        tool: "btrfs filesystem resize".into(),
                        device: device.clone(),
                        output: out,
                    });
                }
                Ok(())
            },
        )?;
        log::info!(
            "{device}: shrunk; the overlay held {} ({} spilled)",
            human(overlay.overlay_bytes()),
            human(overlay.spilled_bytes())
        );
        drop(overlay);
        let shrunk = started.elapsed();
        check_shrunk(step, head, &work, &device)?;
        return Ok(report_line(step, shrunk, started.elapsed() - shrunk));
    }
    let file = work.file("device")?;
    vdev::serve_scoped(&overlay, &file, &name, true, |file| {
        match step.method {
            ShrinkMethod::Resize2fs => {
                // resize2fs insists on a freshly checked file system; -p repairs only what is
                // safe, on the copy.
                run("e2fsck", &["-f", "-p"], file, 3, &device)?;
                let k = format!("{}K", new_size / 1024);
                let (code, out) = tool("resize2fs", &[&file.to_string_lossy(), &k])?;
                if code != 0 {
                    return Err(JobError::Tool {
                        tool: "resize2fs".into(),
                        device: device.clone(),
                        output: out,
                    });
                }
                Ok(())
            }
            ShrinkMethod::Ntfsresize => run(
                "ntfsresize",
                &[
                    "--force",
                    "--force",
                    "--no-progress-bar",
                    "--size",
                    &new_size.to_string(),
                ],
                file,
                0,
                &device,
            ),
            ShrinkMethod::FatCopy
            | ShrinkMethod::BtrfsResize
            | ShrinkMethod::XfsCopy
            | ShrinkMethod::ExfatCopy => Ok(()),
        }
    })
    .map_err(|e| vdev_err(&device, e))??;
    log::info!(
        "{device}: shrunk; the overlay held {} ({} spilled)",
        human(overlay.overlay_bytes()),
        human(overlay.spilled_bytes())
    );
    drop(overlay);
    let shrunk = started.elapsed();
    check_shrunk(step, head, &work, &device)?;
    Ok(report_line(step, shrunk, started.elapsed() - shrunk))
}

fn report_line(
    step: &ShrinkStep,
    shrunk: std::time::Duration,
    checked: std::time::Duration,
) -> String {
    format!(
        "partition {}: {} shrunk from {} to {} with {} in {:.1} s, checked in {:.1} s (UUID and \
         label kept)",
        step.number,
        step.fs,
        human(step.old_size),
        human(step.new_size),
        step.method.name(),
        shrunk.as_secs_f64(),
        checked.as_secs_f64()
    )
}

/// The file system on `head` alone: same kind, UUID and label as the source, no larger than
/// the partition, and clean by its own checker (read-only).
fn check_shrunk(
    step: &ShrinkStep,
    head: &dyn BlockIo,
    work: &WorkDir,
    device: &str,
) -> Result<(), JobError> {
    let fail = |output: String| JobError::Tool {
        tool: "lifeboat".into(),
        device: device.to_string(),
        output,
    };
    let info = fs::probe(head)
        .map_err(|e| fail(format!("the shrunk file system cannot be read: {e}")))?
        .ok_or_else(|| fail("no file system is found after shrinking".into()))?;
    if info.kind.name() != step.fs
        && !(step.fs.starts_with("ext") && info.kind.name().starts_with("ext"))
    {
        return Err(fail(format!(
            "{} found after shrinking {}",
            info.kind, step.fs
        )));
    }
    if info.size > step.new_size || info.size == 0 {
        return Err(fail(format!(
            "the shrunk file system claims {} bytes, the partition has {}",
            info.size, step.new_size
        )));
    }
    let (uuid, label) = (
        info.uuid.clone().unwrap_or_default(),
        info.label.clone().unwrap_or_default(),
    );
    if !uuid.eq_ignore_ascii_case(&step.uuid) || label != step.label {
        return Err(fail(format!(
            "UUID/label changed: {uuid} \"{label}\" instead of {} \"{}\"",
            step.uuid, step.label
        )));
    }
    let name = format!("check of partition {}", step.number);
    let file = work.file("check")?;
    vdev::serve_scoped(head, &file, &name, false, |file| match step.method {
        ShrinkMethod::Resize2fs => run("e2fsck", &["-f", "-n"], file, 0, device),
        ShrinkMethod::Ntfsresize => run(
            "ntfsresize",
            &["--check", "--no-progress-bar"],
            file,
            0,
            device,
        ),
        ShrinkMethod::FatCopy => run("fsck.fat", &["-n"], file, 0, device),
        ShrinkMethod::BtrfsResize => run("btrfs", &["check", "--readonly"], file, 0, device),
        ShrinkMethod::XfsCopy => run("xfs_repair", &["-n", "-f"], file, 0, device),
        ShrinkMethod::ExfatCopy => run("fsck.exfat", &["-n"], file, 0, device),
    })
    .map_err(|e| vdev_err(device, e))?
}
