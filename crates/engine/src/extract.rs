//! Copying files out of a file system without restoring anything: the one extraction engine
//! behind `lifeboat extract` and the TUI's file browser.
//!
//! A [`Source`] names a file system inside an image (one imaged partition, or an image of a bare
//! file system) or on a disk, a partition or a disk image file, always opened read-only.
//! [`extract`] walks the requested paths recursively and recreates files, folders and symlinks in
//! a destination folder: sparse files stay sparse, times, modes and (as root) owners are kept
//! where the destination allows (what it cannot keep becomes a note), existing objects are never
//! replaced unless the request says so, and each object that cannot be copied is listed with the
//! reason while the rest go on. Progress goes to a [`ProgressSink`]; [`Cancel`] stops it between
//! writes and removes the partial file.

use crate::progress::{Cancel, ProgressSink, Tracker};
use disk::{BlockIo, FileDisk};
use fs::browse::{BrowseError, Browser, Entry, EntryKind, SparseWrite, Timestamp};
use image::{ImageReader, StreamKind};
use std::fs::{File, FileTimes, OpenOptions, Permissions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
        }
    }

    /// The file system in the file or device at `path`: an image (its partition `part`, or the
    /// only browsable one), a bare file system, or a partition `part` (or the only one holding a
    /// file system) of a partitioned disk or disk image.
    pub fn find(path: &Path, part: Option<u32>) -> Result<Source, ExtractError> {
        let disk = FileDisk::open_read(path)?;
        let mut magic = [0u8; 8];
        if disk.len() >= 8
            && disk.read_at(&mut magic, 0).is_ok()
            && magic == image::format::VOLUME_MAGIC
        {
            return find_in_image(path, part);
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
                        disk::Window::new(&disk, p.start, p.size)
                            .is_ok_and(|w| fs::probe(&w).ok().flatten().is_some())
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

fn numbers(n: impl Iterator<Item = u32>) -> String {
    n.map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
}

fn open_image(path: &Path) -> Result<Arc<ImageReader>, ExtractError> {
    ImageReader::open(path)
        .map(Arc::new)
        .map_err(|source| ExtractError::Image {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
}

fn find_in_image(path: &Path, part: Option<u32>) -> Result<Source, ExtractError> {
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
            .filter(|p| BROWSABLE.contains(&p.fs.as_str()))
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

/// Opens the file system of `source`, read-only.
pub fn open(source: &Source) -> Result<Opened, ExtractError> {
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
            Ok(Opened {
                browser: fs::browse::open(Box::new(io))?,
                image: Some(reader),
            })
        }
        Source::Live {
            node,
            offset,
            len,
            name,
        } => {
            let inner = FileDisk::open_read(node)?;
            let browser = if *offset == 0 && *len == inner.len() {
                fs::browse::open(Box::new(inner))?
            } else {
                if offset.checked_add(*len).is_none_or(|end| end > inner.len()) {
                    return Err(ExtractError::PastEnd {
                        name: name.clone(),
                        node: node.clone(),
                    });
                }
                fs::browse::open(Box::new(Region {
                    inner,
                    start: *offset,
                    len: *len,
                    name: name.clone(),
                }))?
            };
            Ok(Opened {
                browser,
                image: None,
            })
        }
    }
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
    /// component (the root itself lands in the destination folder).
    pub fn destinations(&self) -> Vec<PathBuf> {
        self.paths
            .iter()
            .map(|p| match p.trim_end_matches('/').rsplit('/').next() {
                Some(name) if !name.is_empty() => self.dest.join(name),
                _ => self.dest.clone(),
            })
            .collect()
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
    /// What the destination could not keep (times, modes, owners, symlinks).
    pub notes: Vec<String>,
    pub seconds: f64,
    pub cancelled: bool,
    /// For an image source: the bytes read from the image files.
    pub image_bytes_read: Option<u64>,
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
    !n.is_empty() && !n.contains('/') && n != "." && n != ".."
}

fn system_time(t: Timestamp) -> Option<SystemTime> {
    if t.secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(t.secs.unsigned_abs(), t.nanos))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(t.secs.unsigned_abs()))
    }
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
        self.file.seek(SeekFrom::Current(step))?;
        self.pos += len;
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

/// Bytes of regular files at and below `path` (for the progress bar), looking at no more than
/// `budget` objects.
fn size_of(b: &mut dyn Browser, path: &str, e: &Entry, budget: &mut usize) -> u64 {
    match e.kind {
        EntryKind::File => e.size,
        EntryKind::Dir if *budget > 0 => {
            let Ok(children) = b.read_dir(path) else {
                return 0;
            };
            let mut sum = 0u64;
            for c in &children {
                *budget = budget.saturating_sub(1);
                if safe_name(&c.name) {
                    sum = sum.saturating_add(size_of(b, &join(path, &c.name), c, budget));
                }
            }
            sum
        }
        _ => 0,
    }
}

struct Copier<'a> {
    tracker: &'a Tracker<'a>,
    cancel: &'a Cancel,
    overwrite: bool,
    is_root: bool,
    report: ExtractReport,
}

impl Copier<'_> {
    fn note(&mut self, text: String) {
        if !self.report.notes.contains(&text) {
            log::warn!("{text}");
            self.report.notes.push(text);
        }
    }

    fn fail(&mut self, path: &str, error: impl std::fmt::Display) {
        log::warn!("extract: {path}: {error}");
        self.report
            .failed
            .push((path.to_string(), error.to_string()));
    }

    /// Mode (not for symlinks) and, as root, owner.
    fn owner_and_mode(&mut self, dest: &Path, e: &Entry) {
        if e.kind != EntryKind::Symlink {
            if let Some(mode) = e.mode {
                if let Err(err) =
                    std::fs::set_permissions(dest, Permissions::from_mode(mode & 0o7777))
                {
                    self.note(format!("the destination does not keep permissions ({err})"));
                }
            }
        }
        if self.is_root {
            if let (Some(uid), Some(gid)) = (e.uid, e.gid) {
                if let Err(err) = std::os::unix::fs::lchown(dest, Some(uid), Some(gid)) {
                    self.note(format!("the destination does not keep owners ({err})"));
                }
            }
        }
    }

    /// Modification and access times, of the object itself (a symlink is not followed).
    fn times(&mut self, dest: &Path, e: &Entry) {
        if e.kind == EntryKind::Symlink {
            let Some(m) = e.mtime else { return };
            let spec = |t: Timestamp| nix::sys::time::TimeSpec::new(t.secs, i64::from(t.nanos));
            let r = nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                dest,
                &spec(e.atime.unwrap_or(m)),
                &spec(m),
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
            if let Err(err) = r {
                self.note(format!(
                    "the destination does not keep symlink times ({err})"
                ));
            }
            return;
        }
        let mut times = FileTimes::new();
        if let Some(m) = e.mtime.and_then(system_time) {
            times = times.set_modified(m);
        }
        if let Some(a) = e.atime.and_then(system_time) {
            times = times.set_accessed(a);
        }
        if let Err(err) = File::open(dest).and_then(|f| f.set_times(times)) {
            self.note(format!("the destination does not keep times ({err})"));
        }
    }

    fn copy(&mut self, b: &mut dyn Browser, path: &str, e: &Entry, dest: &Path) {
        if self.cancel.is_cancelled() {
            return;
        }
        match e.kind {
            EntryKind::Dir => self.copy_dir(b, path, e, dest),
            EntryKind::File => self.copy_file(b, path, e, dest),
            EntryKind::Symlink => self.copy_symlink(b, path, e, dest),
            EntryKind::Other => self.fail(path, "not a file, folder or symlink: skipped"),
        }
    }

    fn copy_dir(&mut self, b: &mut dyn Browser, path: &str, e: &Entry, dest: &Path) {
        if let Err(err) = std::fs::create_dir_all(dest) {
            self.fail(path, format!("creating {}: {err}", dest.display()));
            return;
        }
        self.report.dirs += 1;
        let children = match b.read_dir(path) {
            Ok(c) => c,
            Err(err) => {
                self.fail(path, err);
                return;
            }
        };
        for c in &children {
            let child = join(path, &c.name);
            if !safe_name(&c.name) {
                self.fail(&child, "unsafe file name: skipped");
                continue;
            }
            self.copy(b, &child, c, &dest.join(&c.name));
        }
        self.owner_and_mode(dest, e);
        self.times(dest, e);
    }

    fn copy_file(&mut self, b: &mut dyn Browser, path: &str, e: &Entry, dest: &Path) {
        let mut opts = OpenOptions::new();
        opts.write(true);
        if self.overwrite {
            opts.create(true).truncate(true);
        } else {
            opts.create_new(true);
        }
        let file = match opts.open(dest) {
            Ok(f) => f,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                self.fail(path, format!("{} exists: kept", dest.display()));
                return;
            }
            Err(err) => {
                self.fail(path, format!("creating {}: {err}", dest.display()));
                return;
            }
        };
        let mut out = SparseFile {
            file,
            pos: 0,
            tracker: self.tracker,
            cancel: self.cancel,
        };
        let r = b.read_file_sparse(path, &mut out);
        let SparseFile { file, pos, .. } = out;
        match r {
            Ok(n) => {
                // The length covers a hole at the end; the sync makes "extracted" mean written.
                if let Err(err) = file.set_len(pos).and_then(|()| file.sync_all()) {
                    drop(file);
                    let _ = std::fs::remove_file(dest);
                    self.fail(path, format!("writing {}: {err}", dest.display()));
                    return;
                }
                drop(file);
                self.report.files += 1;
                self.report.bytes += n;
                self.owner_and_mode(dest, e);
                self.times(dest, e);
            }
            Err(err) => {
                drop(file);
                let _ = std::fs::remove_file(dest);
                if self.cancel.is_cancelled() {
                    self.fail(path, "cancelled: the partial file was removed");
                } else {
                    self.fail(path, err);
                }
            }
        }
    }

    fn copy_symlink(&mut self, b: &mut dyn Browser, path: &str, e: &Entry, dest: &Path) {
        let target = match b.read_link(path) {
            Ok(t) => t,
            Err(err) => {
                self.fail(path, err);
                return;
            }
        };
        if self.overwrite && dest.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            let _ = std::fs::remove_file(dest);
        }
        match std::os::unix::fs::symlink(&target, dest) {
            Ok(()) => {
                self.report.symlinks += 1;
                self.owner_and_mode(dest, e);
                self.times(dest, e);
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                self.fail(path, format!("{} exists: kept", dest.display()));
            }
            Err(err) => {
                self.note(format!("the destination does not keep symlinks ({err})"));
                self.fail(
                    path,
                    format!("creating the symlink {}: {err}", dest.display()),
                );
            }
        }
    }
}

/// Copies the request's paths (files and whole folders) into its destination folder. Each top
/// level object lands under its own name (as the file system spells it) in the folder; the root
/// `/` fills the folder itself. `Err` only when nothing could start: the source cannot be opened
/// or the destination folder not created. Objects that fail are in [`ExtractReport::failed`].
pub fn extract(
    req: &ExtractRequest,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<ExtractReport, ExtractError> {
    let started = Instant::now();
    let Opened { mut browser, image } = open(&req.source)?;
    std::fs::create_dir_all(&req.dest).map_err(|source| ExtractError::Dest {
        path: req.dest.clone(),
        source,
    })?;
    let b = browser.as_mut();
    let mut roots = Vec::new();
    let mut failed = Vec::new();
    let mut budget = SIZE_VISITS;
    let mut total = 0u64;
    for (asked, fallback) in req.paths.iter().zip(req.destinations()) {
        let path = match asked.starts_with('/') {
            true => asked.clone(),
            false => format!("/{asked}"),
        };
        match b.metadata(&path) {
            Ok(md) => {
                // The object's own name (a case-blind file system may have matched `/dcim` to
                // `DCIM`), else the name asked for.
                let dest = match fallback == req.dest || !safe_name(&md.name) {
                    true => fallback,
                    false => req.dest.join(&md.name),
                };
                total = total.saturating_add(size_of(b, &path, &md, &mut budget));
                roots.push((path, md, dest));
            }
            Err(e) => failed.push((path, e.to_string())),
        }
    }
    log::info!(
        "extracting {} objects ({}) from {} to {}",
        roots.len(),
        crate::units::human(total),
        req.source.title(),
        req.dest.display()
    );
    let tracker = Tracker::new(total, sink);
    tracker.set_phase("extracting");
    let mut copier = Copier {
        tracker: &tracker,
        cancel,
        overwrite: req.overwrite,
        is_root: nix::unistd::geteuid().is_root(),
        report: ExtractReport {
            failed,
            ..ExtractReport::default()
        },
    };
    for (path, md, dest) in &roots {
        copier.copy(b, path, md, dest);
    }
    tracker.finish();
    let mut report = copier.report;
    report.cancelled = cancel.is_cancelled();
    report.seconds = started.elapsed().as_secs_f64();
    report.image_bytes_read = image.as_ref().map(|r| r.bytes_read());
    log::info!(
        "extract done: {} files, {} folders, {} symlinks, {} failed",
        report.files,
        report.dirs,
        report.symlinks,
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
    fn unsafe_names_are_refused() {
        for bad in ["", ".", "..", "a/b"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert!(safe_name("ça va.txt"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/docs/", "a"), "/docs/a");
    }
}
