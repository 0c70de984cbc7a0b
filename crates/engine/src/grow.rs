//! Growing the file system of a grown partition with the file system's own tool (resize2fs,
//! ntfsresize), on a partition of a block device or a byte range of a disk image file (through a
//! loop device).

use crate::error::JobError;
use crate::units::human;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What happens to the file system of the grown last partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum GrowFs {
    /// `resize2fs` after the copy.
    Resize2fs { number: u32, new_size: u64 },
    /// `ntfsresize` after the copy.
    Ntfsresize { number: u32, new_size: u64 },
    /// The partition grows, its file system keeps its size.
    PartitionOnly { number: u32, reason: String },
}

impl GrowFs {
    /// The grow step for partition `number`, grown to `new_size` bytes, holding `fs` (a
    /// `fs::FsKind` name, empty when unknown).
    pub fn for_fs(number: u32, new_size: u64, fs: &str) -> Self {
        match fs {
            "ext2" | "ext3" | "ext4" => GrowFs::Resize2fs { number, new_size },
            "ntfs" => GrowFs::Ntfsresize { number, new_size },
            "" => GrowFs::PartitionOnly {
                number,
                reason: "no known file system".to_string(),
            },
            other => GrowFs::PartitionOnly {
                number,
                reason: format!("Lifeboat cannot grow {other} file systems safely"),
            },
        }
    }

    /// The partition the step is about.
    pub fn number(&self) -> u32 {
        match self {
            GrowFs::Resize2fs { number, .. }
            | GrowFs::Ntfsresize { number, .. }
            | GrowFs::PartitionOnly { number, .. } => *number,
        }
    }
}

impl fmt::Display for GrowFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrowFs::Resize2fs { number, new_size } => {
                write!(
                    f,
                    "grow the ext file system of partition {number} to {} with resize2fs",
                    human(*new_size)
                )
            }
            GrowFs::Ntfsresize { number, new_size } => {
                write!(
                    f,
                    "grow the NTFS file system of partition {number} to {} with ntfsresize",
                    human(*new_size)
                )
            }
            GrowFs::PartitionOnly { number, reason } => {
                write!(
                    f,
                    "partition {number} grows, its file system keeps its size: {reason}"
                )
            }
        }
    }
}

/// Where the partition to grow is: a device node of its own, or a range of a file or disk.
#[derive(Debug, Clone)]
pub enum PartitionAt {
    /// `/dev/sdb3`.
    Node(PathBuf),
    /// `[offset, offset+len)` of a disk image file or a whole-disk device.
    Range {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

/// Where partition `number` of the table just written to `target` is, for growing it: on a block
/// device the kernel's node of that partition (after the table was re-read: a loop device over
/// a byte range of a disk needs util-linux `losetup`, which the boot image's busybox lacks), else
/// — an image file, or a device whose new partition has no node — the partition's byte range.
pub fn locate(
    root: &disk::SysRoot,
    target: &Path,
    layout: &layout::Layout,
    number: u32,
    is_block: bool,
) -> Result<PartitionAt, JobError> {
    let part = layout
        .partition(number)
        .ok_or_else(|| JobError::NoSuchPartition {
            device: target.display().to_string(),
            number,
        })?;
    let node = if is_block {
        let opts = disk::DiscoverOptions {
            include_virtual: true,
            open_devices: false,
        };
        disk::discover(root, &opts)?
            .into_iter()
            .find(|d| d.path == target)
            .and_then(|d| d.partitions.into_iter().find(|p| p.number == Some(number)))
            .map(|p| p.path)
    } else {
        None
    };
    Ok(match node {
        Some(n) => PartitionAt::Node(n),
        None => PartitionAt::Range {
            path: target.to_path_buf(),
            offset: part.start,
            len: part.size,
        },
    })
}

/// Runs the grow step. Returns a line for the report.
pub fn grow_filesystem(grow: &GrowFs, at: &PartitionAt) -> Result<String, JobError> {
    let (number, new_size) = match grow {
        GrowFs::PartitionOnly { number, reason } => {
            return Ok(format!(
                "partition {number} grew; its file system keeps its size: {reason}"
            ))
        }
        GrowFs::Resize2fs { number, new_size } | GrowFs::Ntfsresize { number, new_size } => {
            (*number, *new_size)
        }
    };
    let loop_dev = match at {
        PartitionAt::Node(_) => None,
        PartitionAt::Range { path, offset, len } => Some(LoopDevice::attach(path, *offset, *len)?),
    };
    let dev: PathBuf = match (&loop_dev, at) {
        (Some(l), _) => l.path.clone(),
        (None, PartitionAt::Node(p)) => p.clone(),
        (None, PartitionAt::Range { path, .. }) => path.clone(),
    };
    let result = match grow {
        GrowFs::Resize2fs { .. } => {
            // resize2fs insists on a freshly checked file system; -p repairs only what is safe.
            let (code, out) = tool("e2fsck", &["-f", "-p", &dev.to_string_lossy()])?;
            if code >= 4 {
                return Err(JobError::Tool {
                    tool: "e2fsck".into(),
                    device: dev.display().to_string(),
                    output: out,
                });
            }
            let (code, out) = tool("resize2fs", &[&dev.to_string_lossy()])?;
            if code != 0 {
                return Err(JobError::Tool {
                    tool: "resize2fs".into(),
                    device: dev.display().to_string(),
                    output: out,
                });
            }
            Ok(format!(
                "partition {number}: ext file system grown to {} with resize2fs",
                human(new_size)
            ))
        }
        GrowFs::Ntfsresize { .. } => {
            let (code, out) = tool(
                "ntfsresize",
                &["--force", "--no-progress-bar", &dev.to_string_lossy()],
            )?;
            if code != 0 {
                return Err(JobError::Tool {
                    tool: "ntfsresize".into(),
                    device: dev.display().to_string(),
                    output: out,
                });
            }
            Ok(format!(
                "partition {number}: NTFS grown to {} with ntfsresize (Windows runs a check at its next start)",
                human(new_size)
            ))
        }
        GrowFs::PartitionOnly { .. } => Ok(String::new()),
    };
    drop(loop_dev);
    result
}

pub(crate) fn tool(name: &str, args: &[&str]) -> Result<(i32, String), JobError> {
    let out = Command::new(name)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| JobError::Tool {
            tool: name.to_string(),
            device: args.last().map(|s| s.to_string()).unwrap_or_default(),
            output: format!("cannot run {name}: {e}"),
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    log::info!("{name} {}: {}", args.join(" "), text.trim());
    Ok((out.status.code().unwrap_or(-1), text))
}

/// A loop device over a byte range of a file, detached on drop.
struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    fn attach(file: &Path, offset: u64, len: u64) -> Result<Self, JobError> {
        let (code, out) = tool(
            "losetup",
            &[
                "--find",
                "--show",
                "--offset",
                &offset.to_string(),
                "--sizelimit",
                &len.to_string(),
                &file.to_string_lossy(),
            ],
        )?;
        let path = out.lines().next().unwrap_or("").trim().to_string();
        if code != 0 || !path.starts_with("/dev/") {
            return Err(JobError::Tool {
                tool: "losetup".into(),
                device: file.display().to_string(),
                output: out,
            });
        }
        Ok(LoopDevice {
            path: PathBuf::from(path),
        })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = tool("losetup", &["-d", &self.path.to_string_lossy()]) {
            log::warn!("detaching {}: {e}", self.path.display());
        }
    }
}
