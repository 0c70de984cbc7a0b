//! Copying files out of a file system without restoring anything: the one extraction engine
//! behind `lifeboat extract` and the TUI's file browser.
//!
//! A [`Source`] names a file system inside an image (one imaged partition, or an image of a bare
//! file system) or on a disk, a partition or a disk image file, always opened read-only.
//! [`extract`] walks the requested paths (iteratively, at most 256 folders deep) and
//! recreates files, folders and symlinks in a destination folder: sparse files stay sparse,
//! times, modes and (as root) owners are kept where the destination allows (what it cannot keep
//! becomes a note), existing objects are never replaced unless the request says so, and each
//! object that cannot be copied is listed with the reason while the rest go on. Progress goes to
//! a [`ProgressSink`]; [`Cancel`] stops it between writes and removes the partial file.
//!
//! The file system is a stranger's, so every write stays below the destination: the destination
//! folder is opened once and everything is created relative to open folder descriptors, one name
//! at a time, with `O_NOFOLLOW`/`O_EXCL`/`mkdirat`/`symlinkat` — a symlink, whether it was there
//! before or was extracted a moment ago, is never followed; `overwrite` renames a new file over
//! an entry instead of writing through it; times, modes and owners are set through the
//! descriptor. Names that repeat in a source folder, or that the destination folds together
//! (case-blind sticks), are never merged.

use crate::progress::{Cancel, ProgressSink, Tracker};
use disk::text::printable;
use disk::{BlockIo, FileDisk};
use fs::browse::{BrowseError, Browser, Entry, EntryKind, SparseWrite, Timestamp};
use fs::FsKind;
use image::{ImageReader, StreamKind};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{
    fchmod, fstat, fstatat, futimens, mkdirat, utimensat, FileStat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use std::collections::HashSet;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Most objects the size estimate for the progress bar looks at before it stops counting.
const SIZE_VISITS: usize = 200_000;

/// All-zero blocks of this size that a reader hands over as data are still left as holes.
const HOLE_BLOCK: usize = 64 * 1024;

/// File systems the browser reads; an image's partitions of other kinds are not offered.
const BROWSABLE: [&str; 6] = ["ext2", "ext3", "ext4", "vfat", "ntfs", "exfat"];

/// Why a source could not be opened or an extract could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("opening the image {}: {source}", path.display())]
    Image {
        path: PathBuf,
        source: Box<image::Error>,
    },
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    #[error("{} holds no partition {number} (it holds: {have})", path.display())]
    NoPartition {
        path: PathBuf,
        number: u32,
        have: String,
    },
    #[error("{} holds several file systems, in partitions {choices}", path.display())]
    SeveralFileSystems { path: PathBuf, choices: String },
    #[error("{} holds no partition with a browsable file system", path.display())]
    NoFileSystem { path: PathBuf },
    #[error("{} holds no file system and no readable partition table: {source}", path.display())]
    NoTable {
        path: PathBuf,
        source: Box<layout::LayoutError>,
    },
    #[error("{name} lies past the end of {}", node.display())]
    PastEnd { name: String, node: PathBuf },
    #[error("{}: stream {stream} ({offset}+{length}) overlaps another or lies past the disk's end ({size} bytes)", path.display())]
    BadPlacement {
        path: PathBuf,
        stream: u32,
        offset: u64,
        length: u64,
        size: u64,
    },
    #[error("{what} holds no LVM2 physical volume (asked for logical volume {lv})")]
    NotLvm { what: String, lv: String },
    #[error("{what}: reading its LVM2 metadata: {message}")]
    Lvm { what: String, message: String },
    #[error("{what} holds no logical volume {lv} (it holds: {have})")]
    NoLv {
        what: String,
        lv: String,
        have: String,
    },
    #[error("{what} holds several logical volumes with a file system: {choices}")]
    SeveralLvs { what: String, choices: String },
    #[error("{what} holds no logical volume with a file system (it holds: {have})")]
    NoLvFileSystem { what: String, have: String },
    #[error("{what}: logical volume {lv} cannot be read on its own ({why})")]
    LvNotReadable {
        what: String,
        lv: String,
        why: String,
    },
    #[error(transparent)]
    Browse(#[from] BrowseError),
    #[error("creating {}: {source}", path.display())]
    Dest {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A file system to read, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A partition inside an image made by `lifeboat backup`.
    Image {
        path: PathBuf,
        /// The partition number; 0 for an image of a bare file system.
        partition: u32,
    },
    /// A file system at a byte range of a device or file (a live partition, a disk image file).
    Live {
        /// The node or file opened: the partition's own node, or its disk.
        node: PathBuf,
        /// Where the file system starts in `node`, and its length.
        offset: u64,
        len: u64,
        /// `sdb1`, for titles.
        name: String,
    },
    /// A logical volume of the LVM2 physical volume at `pv` (whose segments are all linear on
    /// that PV: see `fs::lvm::LvIo`).
    Lv {
        pv: Box<Source>,
        vg: String,
        lv: String,
    },
}

impl Source {
    /// A short name: the image's file name (and partition), or the partition's name.
    pub fn short(&self) -> String {
        match self {
            Source::Image { path, partition } => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if *partition == 0 {
                    name
                } else {
                    format!("{name} #{partition}")
                }
            }
            Source::Live { name, .. } => format!("{name} (read-only)"),
            Source::Lv { pv, vg, lv } => format!("{} {vg}/{lv}", pv.short()),
        }
    }

    /// One line naming it.
    pub fn title(&self) -> String {
        match self {
            Source::Image { path, partition: 0 } => path.display().to_string(),
            Source::Image { path, partition } => {
                format!("{} partition {partition}", path.display())
            }
            Source::Live { name, .. } => format!("{name} (live, read-only)"),
            Source::Lv { pv, vg, lv } => format!("{} logical volume {vg}/{lv}", pv.title()),
        }
    }

    /// The file system in the file or device at `path`: an image (its partition `part`, or the
    /// only browsable one), a bare file system, or a partition `part` (or the only one holding a
    /// file system) of a partitioned disk or disk image.
    ///
    /// A partition (or file) that holds an LVM2 physical volume stands for its only logical
    /// volume with a browsable file system; see [`Source::find_lv`] to name one.
    pub fn find(path: &Path, part: Option<u32>) -> Result<Source, ExtractError> {
        Self::find_lv(path, part, None)
    }

    /// Like [`Source::find`], with the logical volume `lv` (`VG/LV` or `LV`) of the LVM2
    /// physical volume found there (without `part`, the only partition holding a PV).
    pub fn find_lv(
        path: &Path,
        part: Option<u32>,
        lv: Option<&str>,
    ) -> Result<Source, ExtractError> {
        Self::find_in_lvm(path, part, lv, |fs| BROWSABLE.contains(&fs))
    }

    /// Like [`Source::find`], but an image's partitions count when the kernel or `ntfs-3g` can
    /// mount them (XFS, btrfs and ISO 9660 too): what `lifeboat mount` picks.
    pub fn find_mountable(path: &Path, part: Option<u32>) -> Result<Source, ExtractError> {
        Self::find_mountable_lv(path, part, None)
    }

    /// [`Source::find_mountable`] with a logical volume, as [`Source::find_lv`].
    pub fn find_mountable_lv(
        path: &Path,
        part: Option<u32>,
        lv: Option<&str>,
    ) -> Result<Source, ExtractError> {
        Self::find_in_lvm(path, part, lv, disk::mount::mountable)
    }

    fn find_in_lvm(
        path: &Path,
        part: Option<u32>,
        lv: Option<&str>,
        wanted: fn(&str) -> bool,
    ) -> Result<Source, ExtractError> {
        let source = match lv {
            // The partition to look in is the one holding a PV.
            Some(_) => Self::find_among(path, part, is_pv, true)?,
            None => Self::find_among(path, part, wanted, false)?,
        };
        source.into_lv(lv, wanted)
    }

    /// `self` when it holds no LVM2 PV and no `lv` is asked for; else the logical volume `lv`
    /// of the PV (or, without `lv`, its only visible one whose file system is `wanted`).
    fn into_lv(self, lv: Option<&str>, wanted: fn(&str) -> bool) -> Result<Source, ExtractError> {
        let (io, _) = match open_device(&self) {
            Ok(device) => device,
            // Opening it again later says what is wrong, as for any other source.
            Err(_) if lv.is_none() => return Ok(self),
            Err(e) => return Err(e),
        };
        let pv = fs::probe(io.as_ref())
            .ok()
            .flatten()
            .is_some_and(|f| f.kind == FsKind::Lvm2Member);
        if !pv {
            return match lv {
                None => Ok(self),
                Some(lv) => Err(ExtractError::NotLvm {
                    what: self.title(),
                    lv: lv.to_string(),
                }),
            };
        }
        let what = self.title();
        let meta = fs::lvm::read_pv(io.as_ref()).map_err(|e| ExtractError::Lvm {
            what: what.clone(),
            message: e.to_string(),
        })?;
        let names = |lvs: &mut dyn Iterator<Item = &fs::lvm::Lv>| {
            lvs.map(|l| format!("{}/{}", meta.vg_name, l.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let visible = || meta.lvs.iter().filter(|l| l.visible);
        let chosen = match lv {
            Some(asked) => {
                let (vg, name) = match asked.split_once('/') {
                    Some((vg, name)) => (Some(vg), name),
                    None => (None, asked),
                };
                meta.lvs
                    .iter()
                    .find(|l| l.name == name && vg.is_none_or(|vg| vg == meta.vg_name))
                    .ok_or_else(|| ExtractError::NoLv {
                        what: what.clone(),
                        lv: asked.to_string(),
                        have: names(&mut visible()),
                    })?
            }
            None => {
                let usable: Vec<&fs::lvm::Lv> = visible()
                    .filter(|l| {
                        fs::lvm::LvIo::new(io.as_ref(), &meta, l)
                            .ok()
                            .and_then(|v| fs::probe(&v).ok().flatten())
                            .is_some_and(|f| wanted(f.kind.name()))
                    })
                    .collect();
                match usable.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(ExtractError::NoLvFileSystem {
                            what,
                            have: names(&mut visible()),
                        })
                    }
                    many => {
                        return Err(ExtractError::SeveralLvs {
                            what,
                            choices: names(&mut many.iter().copied()),
                        })
                    }
                }
            }
        };
        fs::lvm::LvIo::new(io.as_ref(), &meta, chosen).map_err(|why| {
            ExtractError::LvNotReadable {
                what: what.clone(),
                lv: format!("{}/{}", meta.vg_name, chosen.name),
                why,
            }
        })?;
        Ok(Source::Lv {
            pv: Box::new(self),
            vg: meta.vg_name.clone(),
            lv: chosen.name.clone(),
        })
    }

    /// The file system `part` names, or the only one: in an image, among the partitions whose
    /// file system is `wanted` (when there are several); on a disk, among the partitions holding
    /// any file system (with `pv_only`, an LVM2 PV).
    fn find_among(
        path: &Path,
        part: Option<u32>,
        wanted: fn(&str) -> bool,
        pv_only: bool,
    ) -> Result<Source, ExtractError> {
        let disk = FileDisk::open_read(path)?;
        let mut magic = [0u8; 8];
        if disk.len() >= 8
            && disk.read_at(&mut magic, 0).is_ok()
            && magic == image::format::VOLUME_MAGIC
        {
            return find_in_image(path, part, wanted);
        }
        if part.is_none() && fs::probe(&disk).ok().flatten().is_some() {
            return Ok(Source::Live {
                node: path.to_path_buf(),
                offset: 0,
                len: disk.len(),
                name: path.display().to_string(),
            });
        }
        let layout = layout::read(&disk).map_err(|source| ExtractError::NoTable {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        let chosen = match part {
            Some(n) => layout
                .partitions
                .iter()
                .find(|p| p.number == n)
                .ok_or_else(|| ExtractError::NoPartition {
                    path: path.to_path_buf(),
                    number: n,
                    have: numbers(layout.partitions.iter().map(|p| p.number)),
                })?,
            None => {
                let usable: Vec<_> = layout
                    .partitions
                    .iter()
                    .filter(|p| !p.is_extended)
                    .filter(|p| {
                        disk::Window::new(&disk, p.start, p.size).is_ok_and(|w| {
                            fs::probe(&w)
                                .ok()
                                .flatten()
                                .is_some_and(|f| !pv_only || f.kind == FsKind::Lvm2Member)
                        })
                    })
                    .collect();
                match usable.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(ExtractError::NoFileSystem {
                            path: path.to_path_buf(),
                        })
                    }
                    many => {
                        return Err(ExtractError::SeveralFileSystems {
                            path: path.to_path_buf(),
                            choices: numbers(many.iter().map(|p| p.number)),
                        })
                    }
                }
            }
        };
        Ok(Source::Live {
            node: path.to_path_buf(),
            offset: chosen.start,
            len: chosen.size,
            name: format!("{} partition {}", path.display(), chosen.number),
        })
    }
}

/// A logical volume of an LVM2 PV, as a file browser offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvChoice {
    /// `VG/LV`.
    pub name: String,
    pub size: u64,
    /// The LV to browse.
    pub source: Source,
    /// Its file system, when one is recognised.
    pub fs: Option<fs::FsInfo>,
    /// Why it cannot be browsed (not linear on this PV, no file system); `None` when it can.
    pub refused: Option<String>,
}

/// The visible logical volumes of the LVM2 PV at `pv`, with their file systems.
pub fn logical_volumes(pv: &Source) -> Result<Vec<LvChoice>, ExtractError> {
    let (io, _) = open_device(pv)?;
    let meta = fs::lvm::read_pv(io.as_ref()).map_err(|e| ExtractError::Lvm {
        what: pv.title(),
        message: e.to_string(),
    })?;
    Ok(meta
        .lvs
        .iter()
        .filter(|l| l.visible)
        .map(|l| {
            let (fs, refused) = match fs::lvm::LvIo::new(io.as_ref(), &meta, l) {
                Err(why) => (None, Some(format!("cannot be read on its own: {why}"))),
                Ok(view) => match fs::probe(&view).ok().flatten() {
                    Some(f) if BROWSABLE.contains(&f.kind.name()) => (Some(f), None),
                    Some(f) => {
                        let why = format!("{} holds no files to browse", f.kind);
                        (Some(f), Some(why))
                    }
                    None => (None, Some("no file system recognised".to_string())),
                },
            };
            LvChoice {
                name: format!("{}/{}", meta.vg_name, l.name),
                size: l.size,
                source: Source::Lv {
                    pv: Box::new(pv.clone()),
                    vg: meta.vg_name.clone(),
                    lv: l.name.clone(),
                },
                fs,
                refused,
            }
        })
        .collect())
}

/// The `fs` name of an LVM2 PV in a manifest.
fn is_pv(fs: &str) -> bool {
    fs == FsKind::Lvm2Member.name()
}

fn numbers(n: impl Iterator<Item = u32>) -> String {
    n.map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
}

fn open_image(path: &Path) -> Result<Arc<ImageReader>, ExtractError> {
    crate::keys::open_image(path)
        .map(Arc::new)
        .map_err(|source| ExtractError::Image {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
}

fn find_in_image(
    path: &Path,
    part: Option<u32>,
    wanted: fn(&str) -> bool,
) -> Result<Source, ExtractError> {
    let reader = open_image(path)?;
    let parts: Vec<u32> = reader
        .streams()
        .iter()
        .filter(|s| s.kind == StreamKind::Partition)
        .map(|s| s.partition)
        .collect();
    let image = |partition| {
        Ok(Source::Image {
            path: path.to_path_buf(),
            partition,
        })
    };
    if let Some(n) = part {
        return match parts.contains(&n) {
            true => image(n),
            false => Err(ExtractError::NoPartition {
                path: path.to_path_buf(),
                number: n,
                have: numbers(parts.iter().copied()),
            }),
        };
    }
    if parts.is_empty() {
        return match reader.streams().iter().any(|s| s.kind == StreamKind::Whole) {
            true => image(0),
            false => Err(ExtractError::NoFileSystem {
                path: path.to_path_buf(),
            }),
        };
    }
    let candidates: Vec<u32> = if parts.len() == 1 {
        parts
    } else {
        let browsable: Vec<u32> = reader
            .manifest()
            .partitions
            .iter()
            .filter(|p| wanted(p.fs.as_str()))
            .map(|p| p.number)
            .collect();
        parts
            .into_iter()
            .filter(|n| browsable.contains(n))
            .collect()
    };
    match candidates.as_slice() {
        [one] => image(*one),
        [] => Err(ExtractError::NoFileSystem {
            path: path.to_path_buf(),
        }),
        many => Err(ExtractError::SeveralFileSystems {
            path: path.to_path_buf(),
            choices: numbers(many.iter().copied()),
        }),
    }
}

/// A byte range of a file or device, owning it, read-only: a partition the kernel has no node
/// for (inside a disk image file, or while the disk is being browsed as a whole).
struct Region {
    inner: FileDisk,
    start: u64,
    len: u64,
    name: String,
}

impl BlockIo for Region {
    fn len(&self) -> u64 {
        self.len
    }
    fn logical_sector_size(&self) -> u32 {
        self.inner.logical_sector_size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => self.inner.read_at(buf, self.start + offset),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{}: read past the end of the partition", self.name),
            )),
        }
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{}: opened read-only", self.name),
        ))
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// An opened source: the file system and, for images, the reader (its byte counter says how
/// little of the image an extract read).
pub struct Opened {
    pub browser: Box<dyn Browser>,
    pub image: Option<Arc<ImageReader>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("fs", &self.browser.fs_name())
            .field("image", &self.image.is_some())
            .finish()
    }
}

/// A source's bytes and, for an image, its reader.
pub type Device = (Box<dyn BlockIo>, Option<Arc<ImageReader>>);

/// The bytes of `source`, read-only: an image's stream (read chunk by chunk on demand, through
/// the reader's cache; free blocks read as zeros) or a range of a file or device. Also returns
/// the image reader, whose byte counter says how much of the image was read. This is the device
/// that `lifeboat mount` serves and that [`open`] reads its file system from.
pub fn open_device(source: &Source) -> Result<Device, ExtractError> {
    match source {
        Source::Image { path, partition } => {
            let reader = open_image(path)?;
            let stream = reader
                .streams()
                .iter()
                .find(|s| match s.kind {
                    StreamKind::Partition => s.partition == *partition,
                    StreamKind::Whole => true,
                    _ => false,
                })
                .map(|s| s.id)
                .ok_or_else(|| ExtractError::NoPartition {
                    path: path.clone(),
                    number: *partition,
                    have: numbers(
                        reader
                            .streams()
                            .iter()
                            .filter(|s| s.kind == StreamKind::Partition)
                            .map(|s| s.partition),
                    ),
                })?;
            let io = Arc::clone(&reader)
                .stream_reader(stream)
                .map_err(|source| ExtractError::Image {
                    path: path.clone(),
                    source: Box::new(source),
                })?;
            Ok((Box::new(io), Some(reader)))
        }
        Source::Live {
            node,
            offset,
            len,
            name,
        } => {
            let inner = FileDisk::open_read(node)?;
            if *offset == 0 && *len == inner.len() {
                return Ok((Box::new(inner), None));
            }
            if offset.checked_add(*len).is_none_or(|end| end > inner.len()) {
                return Err(ExtractError::PastEnd {
                    name: name.clone(),
                    node: node.clone(),
                });
            }
            Ok((
                Box::new(Region {
                    inner,
                    start: *offset,
                    len: *len,
                    name: name.clone(),
                }),
                None,
            ))
        }
        Source::Lv { pv, vg, lv } => {
            let (io, image) = open_device(pv)?;
            let what = pv.title();
            let meta = fs::lvm::read_pv(io.as_ref()).map_err(|e| ExtractError::Lvm {
                what: what.clone(),
                message: e.to_string(),
            })?;
            let found = meta
                .lvs
                .iter()
                .find(|l| l.name == *lv && meta.vg_name == *vg)
                .cloned()
                .ok_or_else(|| ExtractError::NoLv {
                    what: what.clone(),
                    lv: format!("{vg}/{lv}"),
                    have: meta
                        .lvs
                        .iter()
                        .map(|l| format!("{}/{}", meta.vg_name, l.name))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let view = fs::lvm::LvIo::owned(io, &meta, &found).map_err(|why| {
                ExtractError::LvNotReadable {
                    what,
                    lv: format!("{vg}/{lv}"),
                    why,
                }
            })?;
            Ok((Box::new(view), image))
        }
    }
}

/// The whole disk an image was made of, read-only: its streams (partition-table areas,
/// partitions, unpartitioned data) at their places on the disk, zeros everywhere else; a file or
/// device as it is. What `lifeboat mount --disk` serves, so `fdisk -l` and `sgdisk -p` read it.
pub fn open_whole_disk(path: &Path) -> Result<Box<dyn BlockIo>, ExtractError> {
    let disk = FileDisk::open_read(path)?;
    let mut magic = [0u8; 8];
    if !(disk.len() >= 8
        && disk.read_at(&mut magic, 0).is_ok()
        && magic == image::format::VOLUME_MAGIC)
    {
        return Ok(Box::new(disk));
    }
    let reader = open_image(path)?;
    let size = reader.manifest().source.size;
    let mut pieces = Vec::new();
    for s in reader.streams() {
        let bad = || ExtractError::BadPlacement {
            path: path.to_path_buf(),
            stream: s.id,
            offset: s.source_offset,
            length: s.length,
            size,
        };
        if s.source_offset
            .checked_add(s.length)
            .is_none_or(|end| end > size)
        {
            return Err(bad());
        }
        let io = Arc::clone(&reader)
            .stream_reader(s.id)
            .map_err(|source| ExtractError::Image {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        pieces.push((s.source_offset, io));
    }
    pieces.sort_by_key(|(start, _)| *start);
    for pair in pieces.windows(2) {
        if let [(a, ra), (b, rb)] = pair {
            if a + ra.len() > *b {
                return Err(ExtractError::BadPlacement {
                    path: path.to_path_buf(),
                    stream: rb.stream().id,
                    offset: *b,
                    length: rb.len(),
                    size,
                });
            }
        }
    }
    Ok(Box::new(WholeDisk {
        name: path.display().to_string(),
        size,
        pieces,
    }))
}

/// An image's streams placed on its disk; what no stream covers reads as zeros.
struct WholeDisk {
    name: String,
    size: u64,
    /// `(disk offset, stream)`, sorted, not overlapping.
    pieces: Vec<(u64, image::StreamReader)>,
}

impl BlockIo for WholeDisk {
    fn len(&self) -> u64 {
        self.size
    }
    fn logical_sector_size(&self) -> u32 {
        self.pieces
            .first()
            .map_or(512, |(_, r)| r.logical_sector_size())
    }
    fn physical_sector_size(&self) -> u32 {
        self.pieces
            .first()
            .map_or(512, |(_, r)| r.physical_sector_size())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= self.size)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{}: read past the end of the disk", self.name),
                )
            })?;
        buf.fill(0);
        // The first piece that may reach `offset`.
        let first = self
            .pieces
            .partition_point(|(start, r)| start + r.len() <= offset);
        for (start, r) in self.pieces.iter().skip(first) {
            if *start >= end {
                break;
            }
            let from = offset.max(*start);
            let to = end.min(start + r.len());
            if from >= to {
                continue;
            }
            let at = (from - offset) as usize;
            let n = (to - from) as usize;
            if let Some(dst) = buf.get_mut(at..at + n) {
                r.read_at(dst, from - start)?;
            }
        }
        Ok(())
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{}: opened read-only", self.name),
        ))
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        format!("{} (whole disk)", self.name)
    }
}

/// Opens the file system of `source`, read-only.
pub fn open(source: &Source) -> Result<Opened, ExtractError> {
    let (io, image) = open_device(source)?;
    Ok(Opened {
        browser: fs::browse::open(io)?,
        image,
    })
}

/// A request to copy files out of a file system into a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractRequest {
    pub source: Source,
    /// Paths in the file system (files and folders); relative ones are taken from the root.
    pub paths: Vec<String>,
    /// The folder that receives them (created if missing).
    pub dest: PathBuf,
    /// Replace files and symlinks that exist (only when the user said so).
    pub overwrite: bool,
}

impl ExtractRequest {
    /// Where each top-level path lands: the destination folder joined with the path's last
    /// component (the root itself lands in the destination folder). A name that an earlier
    /// path already takes gets the ` (2)`, ` (3)`… that [`extract`] gives it.
    pub fn destinations(&self) -> Vec<PathBuf> {
        let wanted: Vec<Option<&str>> = self
            .paths
            .iter()
            .map(|p| match p.trim_end_matches('/').rsplit('/').next() {
                Some(name) if !name.is_empty() => Some(name),
                _ => None,
            })
            .collect();
        let mut names = Siblings::new(wanted.iter().flatten().copied());
        let mut asked: Vec<(&String, PathBuf)> = Vec::new();
        for (path, w) in self.paths.iter().zip(wanted) {
            let dest = match (asked.iter().find(|(p, _)| *p == path), w) {
                (Some((_, earlier)), _) => earlier.clone(),
                (None, Some(name)) => self.dest.join(names.first_choice(name)),
                (None, None) => self.dest.clone(),
            };
            asked.push((path, dest));
        }
        asked.into_iter().map(|(_, d)| d).collect()
    }

    /// The destinations that exist already (files, folders or links): what an extract without
    /// `overwrite` would keep.
    pub fn existing(&self) -> Vec<PathBuf> {
        self.destinations()
            .into_iter()
            .filter(|d| d.symlink_metadata().is_ok())
            .collect()
    }
}

/// What an extract did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtractReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of the files copied (their logical lengths, holes included).
    pub bytes: u64,
    /// Path in the file system and why, for each object that was not extracted.
    pub failed: Vec<(String, String)>,
    /// Objects saved under another name because an earlier one took theirs in the destination
    /// folder (requested paths that end in the same name, names that differ only in ways the
    /// destination does not keep apart, such as case on FAT or exFAT): the path in the file
    /// system and where it landed. Each is also said in [`ExtractReport::notes`]. (A name that
    /// repeats within one source folder cannot be read a second time by path: those later
    /// objects are in [`ExtractReport::failed`].)
    pub renamed: Vec<(String, PathBuf)>,
    /// What the destination could not keep (times, modes, owners, symlinks), and renames.
    pub notes: Vec<String>,
    pub seconds: f64,
    pub cancelled: bool,
    /// For an image source: the bytes read from the image files.
    pub image_bytes_read: Option<u64>,
    /// The image could not be read any more (the network share holding it stopped answering,
    /// after its retries): the extract stopped there. Which chunk, from where and why.
    pub image_unreadable: Option<String>,
}

/// `/a/b` + `c` → `/a/b/c`.
pub fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// `YYYY-MM-DD HH:MM` (UTC) of a file time, as listings show it.
pub fn date_text(t: Timestamp) -> String {
    let days = t.secs.div_euclid(86_400);
    let rem = t.secs.rem_euclid(86_400);
    // The civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A name that can be created inside a folder without escaping it.
fn safe_name(n: &str) -> bool {
    !n.is_empty() && !n.contains('/') && !n.contains('\0') && n != "." && n != ".."
}

/// `name` with ` (k)` before its extension: `a.txt` → `a (2).txt`, `x` → `x (2)`, `.profile` →
/// `.profile (2)`; `k` 1 is the name itself.
fn numbered(name: &str, k: u32) -> String {
    if k <= 1 {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({k}).{ext}"),
        _ => format!("{name} ({k})"),
    }
}

/// The names given so far in one destination folder during one extract: the second object
/// asking for a name gets the first free ` (k)` variant, one that no sibling has in the source.
struct Siblings {
    /// Every name the folder's objects have in the source.
    source: HashSet<String>,
    /// Names given in the destination so far, as given and lower-cased.
    given: HashSet<String>,
    given_folded: HashSet<String>,
    /// Objects this extract made in the folder (device, inode): finding one of them at a name
    /// that was not given means the destination folds two names into one (case, Unicode form).
    made: HashSet<(u64, u64)>,
}

impl Siblings {
    fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Siblings {
        Siblings {
            source: names.into_iter().map(str::to_string).collect(),
            given: HashSet::new(),
            given_folded: HashSet::new(),
            made: HashSet::new(),
        }
    }

    /// The first name to try for an object called `name`, after `tried` earlier attempts
    /// (0 for the first); `None` once [`MAX_RENAMES`] variants were tried.
    fn choice(&self, name: &str, tried: u32) -> Option<(u32, String)> {
        let mut k = if tried == 0 { 1 } else { tried + 1 };
        loop {
            if k > MAX_RENAMES {
                return None;
            }
            let candidate = numbered(name, k);
            let taken =
                self.given.contains(&candidate) || (k > 1 && self.source.contains(&candidate));
            if !taken {
                return Some((k, candidate));
            }
            k += 1;
        }
    }

    fn give(&mut self, name: &str) {
        self.given_folded.insert(name.to_lowercase());
        self.given.insert(name.to_string());
    }

    /// The name the next object called `name` gets (when nothing is in the way at the
    /// destination), marked as given.
    fn first_choice(&mut self, name: &str) -> String {
        let chosen = self
            .choice(name, 0)
            .map_or_else(|| name.to_string(), |(_, n)| n);
        self.give(&chosen);
        chosen
    }
}

/// Most ` (k)` variants tried for one object before it is listed as failed.
const MAX_RENAMES: u32 = 10_000;

/// Folders nested deeper than this below a requested path are not copied (each level holds an
/// open folder while its content is copied; a looping or crafted folder tree ends here).
const MAX_DEPTH: usize = 256;

fn system_time_spec(t: Option<Timestamp>) -> TimeSpec {
    t.map_or(TimeSpec::UTIME_OMIT, |t| {
        TimeSpec::new(t.secs, i64::from(t.nanos.min(999_999_999)))
    })
}

fn file_id(st: &FileStat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Whether the object `st` found at `name` in `dir` is one this extract put there under another
/// name: the destination does not keep the two names apart (a case-blind file system such as
/// FAT or exFAT on a stick, or one that folds Unicode forms). Known by the object's identity; where
/// inode numbers say nothing (FUSE), by the folder's listing not holding `name` itself while a
/// name given in the folder differs from it only in case.
fn taken(dir: &OwnedFd, names: &Siblings, name: &str, st: &FileStat) -> bool {
    if names.made.contains(&file_id(st)) {
        return true;
    }
    if names.given.contains(name) || !names.given_folded.contains(&name.to_lowercase()) {
        return false;
    }
    let Ok(mut listing) = nix::dir::Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let present = listing
        .iter()
        .flatten()
        .any(|e| e.file_name().to_bytes() == name.as_bytes());
    !present
}

/// Opens the folder `name` in `dir` without following a symlink there.
fn open_dir_at(dir: &OwnedFd, name: &str) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The mode a new object is created with: private until its own mode is set when it is complete,
/// or, when the file system keeps no modes (FAT, exFAT, NTFS), the usual `0666`/`0777` less the
/// umask, as any program creates files.
fn creation_mode(e: &Entry) -> Mode {
    let bits = match (e.mode.is_some(), e.kind == EntryKind::Dir) {
        (true, true) => 0o700,
        (true, false) => 0o600,
        (false, true) => 0o777,
        (false, false) => 0o666,
    };
    Mode::from_bits_truncate(bits)
}

/// Creates the new file `name` in `dir` (mode from [`creation_mode`]); never follows or writes
/// through anything already at that name.
fn create_file_at(dir: &OwnedFd, name: &str, e: &Entry) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        creation_mode(e),
    )
}

/// The destination file: holes are skipped with a seek (sparse files stay sparse), bytes are
/// counted for progress, and a cancel stops the copy at the next write.
struct SparseFile<'a> {
    file: File,
    pos: u64,
    tracker: &'a Tracker<'a>,
    cancel: &'a Cancel,
}

impl SparseFile<'_> {
    fn check(&self) -> std::io::Result<()> {
        match self.cancel.is_cancelled() {
            true => Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "cancelled",
            )),
            false => Ok(()),
        }
    }

    fn skip(&mut self, len: u64) -> std::io::Result<()> {
        let step = i64::try_from(len).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let end = self
            .pos
            .checked_add(len)
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        self.file.seek(SeekFrom::Current(step))?;
        self.pos = end;
        self.tracker.add(len);
        Ok(())
    }
}

impl Write for SparseFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.check()?;
        for piece in buf.chunks(HOLE_BLOCK) {
            if piece.iter().all(|&b| b == 0) {
                self.skip(piece.len() as u64)?;
            } else {
                self.file.write_all(piece)?;
                self.pos += piece.len() as u64;
                self.tracker.add(piece.len() as u64);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl SparseWrite for SparseFile<'_> {
    fn as_write(&mut self) -> &mut dyn Write {
        self
    }
    /// A hole the reader knows of: skipped without producing or checking its zeros.
    fn hole(&mut self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.skip(len)
    }
}

/// Bytes of regular files at and below the roots (for the progress bar), looking at no more than
/// `budget` objects and [`MAX_DEPTH`] levels. Iterative: a deep tree costs heap, not stack.
fn size_of_roots(b: &mut dyn Browser, roots: &[Root], mut budget: usize) -> u64 {
    let mut sum = 0u64;
    for root in roots {
        match root.entry.kind {
            EntryKind::File => sum = sum.saturating_add(root.entry.size),
            EntryKind::Dir => {
                let mut stack: Vec<(String, std::vec::IntoIter<Entry>)> = Vec::new();
                if let Ok(children) = b.read_dir(&root.path) {
                    stack.push((root.path.clone(), children.into_iter()));
                }
                loop {
                    let depth = stack.len();
                    let Some((dir, children)) = stack.last_mut() else {
                        break;
                    };
                    let Some(c) = children.next() else {
                        stack.pop();
                        continue;
                    };
                    if budget == 0 {
                        return sum;
                    }
                    budget -= 1;
                    match c.kind {
                        EntryKind::File => sum = sum.saturating_add(c.size),
                        EntryKind::Dir if safe_name(&c.name) && depth < MAX_DEPTH => {
                            let path = join(dir, &c.name);
                            if let Ok(grand) = b.read_dir(&path) {
                                stack.push((path, grand.into_iter()));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    sum
}

/// A requested path: where it is in the file system, what it is, and the name it asks for in
/// the destination folder (`None`: the root, which fills the folder itself).
struct Root {
    path: String,
    entry: Entry,
    name: Option<String>,
}

/// One destination folder being filled: its open descriptor (everything below is created
/// relative to it, never through a path), how it is shown, the source folder and what is left of
/// its entries, and the names given in it so far.
struct Level {
    dir: OwnedFd,
    shown: PathBuf,
    /// The source folder whose times, mode and owner the folder gets when it is done (`None`
    /// for the level of the requested paths).
    source: Option<Entry>,
    pending: std::vec::IntoIter<Pending>,
    names: Siblings,
}

/// An object still to copy into a level's folder.
struct Pending {
    /// Where it is in the file system.
    path: String,
    entry: Entry,
    /// The name it asks for.
    name: String,
    /// An earlier entry of the same source folder has the same name: the reader, which finds
    /// objects by path, cannot give this one's content.
    repeated: bool,
}

/// How placing one object ended.
enum Placed {
    /// Copied (or failed and listed); a new folder to fill, if it was a folder.
    Done(Option<Box<Level>>),
    /// An object this extract made in the folder is at that name already: try the next name.
    Taken,
}

struct Copier<'a> {
    tracker: &'a Tracker<'a>,
    cancel: &'a Cancel,
    /// The image read, for an image source: when its share is gone, the walk stops.
    image: Option<&'a ImageReader>,
    overwrite: bool,
    is_root: bool,
    /// Names for files being written before they replace an existing one (`--overwrite`).
    temp_counter: u64,
    report: ExtractReport,
}

impl Copier<'_> {
    /// Cancelled, or the image's share is gone: no further object is started.
    fn stopped(&self) -> bool {
        self.cancel.is_cancelled() || self.image.is_some_and(|i| i.share_gone().is_some())
    }

    fn note(&mut self, text: String) {
        if !self.report.notes.contains(&text) {
            log::warn!("{}", printable(&text));
            self.report.notes.push(text);
        }
    }

    fn fail(&mut self, path: &str, error: impl std::fmt::Display) {
        let error = error.to_string();
        log::warn!("extract: {}: {}", printable(path), printable(&error));
        self.report.failed.push((path.to_string(), error));
    }

    /// Owner (as root), then mode (a chown clears set-id bits), then times, all through the
    /// open descriptor.
    fn finish_attrs(&mut self, fd: BorrowedFd<'_>, e: &Entry) {
        if self.is_root {
            if let (Some(uid), Some(gid)) = (e.uid, e.gid) {
                if let Err(err) = fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))) {
                    self.note(format!("the destination does not keep owners ({err})"));
                }
            }
        }
        if let Some(mode) = e.mode {
            if let Err(err) = fchmod(fd, Mode::from_bits_truncate(mode & 0o7777)) {
                self.note(format!("the destination does not keep permissions ({err})"));
            }
        }
        if e.mtime.is_some() || e.atime.is_some() {
            if let Err(err) = futimens(fd, &system_time_spec(e.atime), &system_time_spec(e.mtime)) {
                self.note(format!("the destination does not keep times ({err})"));
            }
        }
    }

    /// Owner and times of the symlink `name` in `dir` itself (never its target).
    fn symlink_attrs(&mut self, dir: &OwnedFd, name: &str, e: &Entry) {
        if self.is_root {
            if let (Some(uid), Some(gid)) = (e.uid, e.gid) {
                let r = fchownat(
                    dir,
                    name,
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                );
                if let Err(err) = r {
                    self.note(format!("the destination does not keep owners ({err})"));
                }
            }
        }
        if let Some(m) = e.mtime {
            let r = utimensat(
                dir,
                name,
                &system_time_spec(Some(e.atime.unwrap_or(m))),
                &system_time_spec(Some(m)),
                UtimensatFlags::NoFollowSymlink,
            );
            if let Err(err) = r {
                self.note(format!(
                    "the destination does not keep symlink times ({err})"
                ));
            }
        }
    }

    /// A fresh name in `dir` for a file or symlink that will replace an existing one.
    fn temp_name(&mut self) -> String {
        self.temp_counter += 1;
        format!(
            ".lifeboat-extract-{}-{}.part",
            std::process::id(),
            self.temp_counter
        )
    }

    /// What is at `name` in `dir` now, without following a symlink.
    fn existing(dir: &OwnedFd, name: &str) -> Option<FileStat> {
        fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
    }

    /// Places the source object `e` (at `path`) in `level`'s folder as `name`.
    fn place(
        &mut self,
        b: &mut dyn Browser,
        level: &mut Level,
        path: &str,
        e: &Entry,
        name: &str,
    ) -> Placed {
        let shown = level.shown.join(name);
        match e.kind {
            EntryKind::Dir => self.place_dir(b, level, path, e, name, shown),
            EntryKind::File => self.place_file(b, level, path, e, name, &shown),
            EntryKind::Symlink => self.place_symlink(b, level, path, e, name, &shown),
            EntryKind::Other => {
                self.fail(path, "not a file, folder or symlink: skipped");
                Placed::Done(None)
            }
        }
    }

    fn place_dir(
        &mut self,
        b: &mut dyn Browser,
        level: &mut Level,
        path: &str,
        e: &Entry,
        name: &str,
        shown: PathBuf,
    ) -> Placed {
        let dir = &level.dir;
        let mut created = mkdirat(dir, name, creation_mode(e));
        if created == Err(Errno::EEXIST) {
            match Self::existing(dir, name) {
                Some(st) if taken(dir, &level.names, name, &st) => return Placed::Taken,
                // An existing folder is filled (a copy into a folder that has content).
                Some(st) if is_dir(&st) => created = Ok(()),
                Some(_) if self.overwrite => {
                    created = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
                        .and_then(|()| mkdirat(dir, name, creation_mode(e)));
                }
                _ => {
                    self.fail(
                        path,
                        format!("{} exists and is not a folder: kept", shown.display()),
                    );
                    return Placed::Done(None);
                }
            }
        }
        if let Err(err) = created {
            self.fail(path, format!("creating {}: {err}", shown.display()));
            return Placed::Done(None);
        }
        let fd = match open_dir_at(dir, name) {
            Ok(fd) => fd,
            Err(err) => {
                self.fail(path, format!("opening {}: {err}", shown.display()));
                return Placed::Done(None);
            }
        };
        if let Ok(st) = fstat(&fd) {
            level.names.made.insert(file_id(&st));
        }
        self.report.dirs += 1;
        Placed::Done(Some(Box::new(self.enter(b, fd, shown, path, e))))
    }

    /// A level for the folder `fd`, holding the children of the source folder at `path`.
    fn enter(
        &mut self,
        b: &mut dyn Browser,
        fd: OwnedFd,
        shown: PathBuf,
        path: &str,
        e: &Entry,
    ) -> Level {
        let children = match b.read_dir(path) {
            Ok(c) => c,
            Err(err) => {
                self.fail(path, err);
                Vec::new()
            }
        };
        let names = Siblings::new(children.iter().map(|c| c.name.as_str()));
        let mut seen = HashSet::new();
        let pending: Vec<Pending> = children
            .into_iter()
            .map(|c| Pending {
                path: join(path, &c.name),
                name: c.name.clone(),
                repeated: !seen.insert(c.name.clone()),
                entry: c,
            })
            .collect();
        Level {
            dir: fd,
            shown,
            source: Some(e.clone()),
            pending: pending.into_iter(),
            names,
        }
    }

    /// Where a new file or link for `name` is first written: `Ok(None)` at its name (nothing is
    /// there yet); `Ok(Some(temp))` under a temporary name, to be renamed over the existing entry
    /// once complete (`--overwrite`: a symlink or hard link there is replaced, never written
    /// through); `Err` when it is not written — the name is already taken by this extract (the
    /// caller numbers it), holds a folder, or exists and `--overwrite` is off (said in the report).
    fn write_name(
        &mut self,
        level: &Level,
        path: &str,
        name: &str,
        shown: &Path,
    ) -> Result<Option<String>, Placed> {
        let dir = &level.dir;
        match Self::existing(dir, name) {
            Some(st) if taken(dir, &level.names, name, &st) => Err(Placed::Taken),
            Some(st) if is_dir(&st) => {
                self.fail(
                    path,
                    format!("{} exists and is a folder: kept", shown.display()),
                );
                Err(Placed::Done(None))
            }
            Some(_) if !self.overwrite => {
                self.fail(path, format!("{} exists: kept", shown.display()));
                Err(Placed::Done(None))
            }
            Some(_) => Ok(Some(self.temp_name())),
            None => Ok(None),
        }
    }

    /// `name` appeared between [`Self::write_name`]'s look and the create: taken by this extract
    /// (the caller numbers it), or someone else's object, which is kept.
    fn appeared(&mut self, level: &Level, path: &str, name: &str, shown: &Path) -> Placed {
        match Self::existing(&level.dir, name) {
            Some(st) if taken(&level.dir, &level.names, name, &st) => Placed::Taken,
            _ => {
                self.fail(path, format!("{} exists: kept", shown.display()));
                Placed::Done(None)
            }
        }
    }

    fn place_file(
        &mut self,
        b: &mut dyn Browser,
        level: &mut Level,
        path: &str,
        e: &Entry,
        name: &str,
        shown: &Path,
    ) -> Placed {
        let dir = &level.dir;
        // Without --overwrite the file is created at its name (O_EXCL); with it, a new file is
        // written under a temporary name and renamed over the old entry when complete, so the
        // old object (a symlink, a hard link) is replaced and never written through.
        let (written, replacing) = match self.write_name(level, path, name, shown) {
            Ok(Some(temp)) => (temp, true),
            Ok(None) => (name.to_string(), false),
            Err(placed) => return placed,
        };
        let fd = match create_file_at(dir, &written, e) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) if !replacing => {
                // Appeared since the look: the same as an existing object.
                return self.appeared(level, path, name, shown);
            }
            Err(err) => {
                self.fail(path, format!("creating {}: {err}", shown.display()));
                return Placed::Done(None);
            }
        };
        let mut out = SparseFile {
            file: File::from(fd),
            pos: 0,
            tracker: self.tracker,
            cancel: self.cancel,
        };
        let r = b.read_file_sparse(path, &mut out);
        let SparseFile { file, pos, .. } = out;
        let remove = |why: String, me: &mut Self| {
            let _ = unlinkat(dir, written.as_str(), UnlinkatFlags::NoRemoveDir);
            me.fail(path, why);
            Placed::Done(None)
        };
        let n = match r {
            Ok(n) => n,
            Err(_) if self.cancel.is_cancelled() => {
                return remove("cancelled: the partial file was removed".into(), self);
            }
            Err(err) => return remove(err.to_string(), self),
        };
        // The length covers a hole at the end; the sync makes "extracted" mean written.
        if let Err(err) = file.set_len(pos).and_then(|()| file.sync_all()) {
            return remove(format!("writing {}: {err}", shown.display()), self);
        }
        self.finish_attrs(file.as_fd(), e);
        if replacing {
            if let Err(err) = renameat(dir, written.as_str(), dir, name) {
                return remove(format!("replacing {}: {err}", shown.display()), self);
            }
        }
        if let Ok(st) = fstat(&file) {
            level.names.made.insert(file_id(&st));
        }
        self.report.files += 1;
        self.report.bytes = self.report.bytes.saturating_add(n);
        Placed::Done(None)
    }

    fn place_symlink(
        &mut self,
        b: &mut dyn Browser,
        level: &mut Level,
        path: &str,
        e: &Entry,
        name: &str,
        shown: &Path,
    ) -> Placed {
        let target = match b.read_link(path) {
            Ok(t) => t,
            Err(err) => {
                self.fail(path, err);
                return Placed::Done(None);
            }
        };
        let dir = &level.dir;
        let (written, replacing) = match self.write_name(level, path, name, shown) {
            Ok(Some(temp)) => (temp, true),
            Ok(None) => (name.to_string(), false),
            Err(placed) => return placed,
        };
        match symlinkat(target.as_str(), dir, written.as_str()) {
            Ok(()) => {}
            Err(Errno::EEXIST) if !replacing => return self.appeared(level, path, name, shown),
            Err(err) => {
                self.note(format!("the destination does not keep symlinks ({err})"));
                self.fail(
                    path,
                    format!("creating the symlink {}: {err}", shown.display()),
                );
                return Placed::Done(None);
            }
        }
        self.symlink_attrs(dir, &written, e);
        let made = Self::existing(dir, &written).map(|st| file_id(&st));
        if replacing {
            if let Err(err) = renameat(dir, written.as_str(), dir, name) {
                let _ = unlinkat(dir, written.as_str(), UnlinkatFlags::NoRemoveDir);
                self.fail(path, format!("replacing {}: {err}", shown.display()));
                return Placed::Done(None);
            }
        }
        if let Some(id) = made {
            level.names.made.insert(id);
        }
        self.report.symlinks += 1;
        Placed::Done(None)
    }

    /// Places one object in `level`'s folder under the first name not taken by an earlier one.
    fn place_named(
        &mut self,
        b: &mut dyn Browser,
        level: &mut Level,
        path: &str,
        e: &Entry,
        wanted: &str,
    ) -> Option<Box<Level>> {
        let mut tried = 0u32;
        while let Some((k, name)) = level.names.choice(wanted, tried) {
            match self.place(b, level, path, e, &name) {
                Placed::Taken => tried = k,
                Placed::Done(next) => {
                    level.names.give(&name);
                    if k > 1 {
                        let landed = level.shown.join(&name);
                        self.note(format!(
                            "{path}: an earlier object in the same folder has the name {wanted}: \
                             saved as {}",
                            landed.display()
                        ));
                        self.report.renamed.push((path.to_string(), landed));
                    }
                    return next;
                }
            }
        }
        self.fail(
            path,
            format!("no free name for {wanted} in {}", level.shown.display()),
        );
        None
    }

    /// Copies everything below `top` (the level of the requested paths), depth first, one open
    /// folder per level. A folder gets its times, mode and owner when its content is done.
    fn run(&mut self, b: &mut dyn Browser, top: Level) {
        let mut stack = vec![top];
        loop {
            let depth = stack.len();
            let Some(level) = stack.last_mut() else {
                break;
            };
            let next = if self.stopped() {
                None
            } else {
                level.pending.next()
            };
            let Some(Pending {
                path,
                entry: e,
                name: wanted,
                repeated,
            }) = next
            else {
                if let Some(done) = stack.pop() {
                    if let Some(source) = &done.source {
                        self.finish_attrs(done.dir.as_fd(), source);
                    }
                }
                continue;
            };
            if !safe_name(&wanted) {
                self.fail(&path, "unsafe file name: skipped");
                continue;
            }
            if repeated {
                self.fail(
                    &path,
                    "the folder lists another object of the same name before this one \
                     (damaged or crafted): this one cannot be read by its name, not extracted",
                );
                continue;
            }
            if e.kind == EntryKind::Dir && depth > MAX_DEPTH {
                self.fail(
                    &path,
                    format!("folders nested more than {MAX_DEPTH} levels deep: skipped"),
                );
                continue;
            }
            if let Some(deeper) = self.place_named(b, level, &path, &e, &wanted) {
                stack.push(*deeper);
            }
        }
    }
}

/// Copies the request's paths (files and whole folders) into its destination folder. Each top
/// level object lands under its own name (as the file system spells it) in the folder; the root
/// `/` fills the folder itself. `Err` only when nothing could start: the source cannot be opened
/// or the destination folder not created. Objects that fail are in [`ExtractReport::failed`].
///
/// Below the destination folder (which is opened once, as the user named it), every object is
/// created relative to its open parent folder with `O_NOFOLLOW`/`O_EXCL`-style calls, so a
/// symlink — already there, or extracted a moment ago — is never followed, and with
/// `overwrite` an existing file or symlink is replaced by renaming a new one over it, never
/// written through. Two distinct objects that would land on one name are both kept: the later
/// one gets ` (2)`, ` (3)`… and is listed in [`ExtractReport::renamed`]; a later object whose
/// name repeats within its source folder is refused (the reader finds objects by path, so it
/// would give the earlier one's content) and listed in [`ExtractReport::failed`].
pub fn extract(
    req: &ExtractRequest,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<ExtractReport, ExtractError> {
    let started = Instant::now();
    let Opened { mut browser, image } = open(&req.source)?;
    let dest_error = |source: std::io::Error| ExtractError::Dest {
        path: req.dest.clone(),
        source,
    };
    std::fs::create_dir_all(&req.dest).map_err(dest_error)?;
    let dest_fd: OwnedFd = openat(
        AT_FDCWD,
        req.dest.as_path(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| dest_error(e.into()))?;
    let b = browser.as_mut();
    let mut roots = Vec::new();
    let mut failed = Vec::new();
    for (asked, fallback) in req.paths.iter().zip(req.destinations()) {
        let path = match asked.starts_with('/') {
            true => asked.clone(),
            false => format!("/{asked}"),
        };
        match b.metadata(&path) {
            Ok(md) => {
                // The object's own name (a case-blind file system may have matched `/dcim` to
                // `DCIM`), else the name asked for.
                let name = if fallback == req.dest {
                    None
                } else if safe_name(&md.name) {
                    Some(md.name.clone())
                } else {
                    path.trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .map(str::to_string)
                };
                roots.push(Root {
                    path,
                    entry: md,
                    name,
                });
            }
            Err(e) => failed.push((path, e.to_string())),
        }
    }
    let total = size_of_roots(b, &roots, SIZE_VISITS);
    log::info!(
        "extracting {} objects ({}) from {} to {}",
        roots.len(),
        crate::units::human(total),
        printable(&req.source.title()),
        req.dest.display()
    );
    let tracker = Tracker::new(total, sink);
    tracker.set_phase("extracting");
    let mut copier = Copier {
        tracker: &tracker,
        cancel,
        image: image.as_deref(),
        overwrite: req.overwrite,
        is_root: nix::unistd::geteuid().is_root(),
        temp_counter: 0,
        report: ExtractReport {
            failed,
            // A hibernated or not cleanly unmounted volume: said first, in the report's notes.
            notes: b.warnings(),
            ..ExtractReport::default()
        },
    };
    // The requested paths form one level of their own: the destination folder, where each
    // lands under its name (repeated names numbered like those inside a folder). The root fills
    // the destination folder itself.
    let mut named = Vec::new();
    let mut asked = HashSet::new();
    for root in roots {
        if !asked.insert(root.path.clone()) {
            continue;
        }
        match root.name {
            Some(name) => named.push(Pending {
                path: root.path,
                entry: root.entry,
                name,
                repeated: false,
            }),
            None if copier.stopped() => {}
            None => match dest_fd.try_clone() {
                Ok(fd) => {
                    copier.report.dirs += 1;
                    let level = copier.enter(b, fd, req.dest.clone(), &root.path, &root.entry);
                    copier.run(b, level);
                }
                Err(err) => {
                    copier.fail(&root.path, format!("opening {}: {err}", req.dest.display()))
                }
            },
        }
    }
    let top = Level {
        dir: dest_fd,
        shown: req.dest.clone(),
        source: None,
        names: Siblings::new(named.iter().map(|p| p.name.as_str())),
        pending: named.into_iter(),
    };
    copier.run(b, top);
    tracker.finish();
    let mut report = copier.report;
    report.cancelled = cancel.is_cancelled();
    report.seconds = started.elapsed().as_secs_f64();
    report.image_bytes_read = image.as_ref().map(|r| r.bytes_read());
    report.image_unreadable = image
        .as_ref()
        .and_then(|r| r.share_gone().map(str::to_string));
    if let Some(why) = &report.image_unreadable {
        // The front end says it (the CLI as its error line).
        log::info!("extract stopped: {}", printable(why));
    }
    log::info!(
        "extract done: {} files, {} folders, {} symlinks, {} renamed, {} failed",
        report.files,
        report.dirs,
        report.symlinks,
        report.renamed.len(),
        report.failed.len()
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_minutes_before_and_after_1970() {
        let at = |secs| date_text(Timestamp { secs, nanos: 0 });
        assert_eq!(at(0), "1970-01-01 00:00");
        assert_eq!(at(1_000_000_000), "2001-09-09 01:46");
        assert_eq!(at(951_782_400), "2000-02-29 00:00");
        assert_eq!(at(-1), "1969-12-31 23:59");
    }

    #[test]
    fn repeated_names_get_the_first_number_no_sibling_has() {
        assert_eq!(numbered("a.txt", 2), "a (2).txt");
        assert_eq!(numbered("x", 3), "x (3)");
        assert_eq!(numbered(".profile", 2), ".profile (2)");
        assert_eq!(numbered("a.txt", 1), "a.txt");
        let mut names = Siblings::new(["a.txt", "a (2).txt", "b"]);
        assert_eq!(names.first_choice("a.txt"), "a.txt");
        assert_eq!(names.first_choice("a.txt"), "a (3).txt");
        assert_eq!(names.first_choice("a (2).txt"), "a (2).txt");
        assert_eq!(names.choice("b", 0), Some((1, "b".to_string())));
        assert_eq!(names.choice("b", 1), Some((2, "b (2)".to_string())));
        assert_eq!(names.choice("b", MAX_RENAMES), None);
        let req = ExtractRequest {
            source: Source::Image {
                path: "x.lbi".into(),
                partition: 0,
            },
            paths: ["/a/x", "/b/x/", "/a/x", "/"].map(String::from).to_vec(),
            dest: "out".into(),
            overwrite: false,
        };
        let want: Vec<PathBuf> = ["out/x", "out/x (2)", "out/x", "out"]
            .map(PathBuf::from)
            .to_vec();
        assert_eq!(req.destinations(), want);
    }

    #[test]
    fn unsafe_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert!(safe_name("ça va.txt"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/docs/", "a"), "/docs/a");
    }
}
