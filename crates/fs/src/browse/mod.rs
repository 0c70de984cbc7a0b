//! Browsing files inside a file system, read-only: list folders, read metadata and symlink
//! targets, and stream a file's content to a writer, over any [`BlockIo`] (a partition inside
//! an image, a live partition, a partition window of a disk image).
//!
//! ext2/3/4 is read with our own tolerant reader (`ext4.rs`), FAT12/16/32 with `fatfs`, NTFS with `ntfs` and
//! exFAT with our own reader; [`open`] probes the file system and picks the reader. Every call on the bytes of a file system
//! is treated as reading untrusted input: errors are returned, never panics (a panic inside a
//! third-party reader is caught and reported as [`BrowseError::Damaged`]), and content is
//! streamed in bounded buffers. Paths are absolute, `/`-separated, in the file system's own
//! names (UTF-8).

mod adapter;
mod exfat;
mod ext4;
mod fat;
mod ntfs;

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

use disk::BlockIo;
use serde::Serialize;

use crate::probe::{probe, FsKind};

pub(crate) use adapter::IoCursor;

/// What kind of object a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device node, FIFO, socket or a reparse point that is not a plain file.
    Other,
}

/// A point in time: seconds and nanoseconds since the Unix epoch, UTC (FAT times, which have no
/// zone, are taken as UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Timestamp {
    /// Seconds since 1970-01-01 00:00:00 UTC (negative before).
    pub secs: i64,
    /// Nanoseconds within the second, below 1 000 000 000.
    pub nanos: u32,
}

/// One file-system object: a directory entry or the object a path names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The object's name in its folder (`/` for the root).
    pub name: String,
    /// File, folder, symlink or other.
    pub kind: EntryKind,
    /// Content length in bytes (the logical size: sparse holes count).
    pub size: u64,
    /// Last modification.
    pub mtime: Option<Timestamp>,
    /// Last access, where the file system keeps it.
    pub atime: Option<Timestamp>,
    /// Last status change (ext4) or creation (FAT, NTFS).
    pub ctime: Option<Timestamp>,
    /// Unix permission bits (`0o7777` part), where the file system keeps them.
    pub mode: Option<u32>,
    /// Owner user id, where the file system keeps it.
    pub uid: Option<u32>,
    /// Owner group id, where the file system keeps it.
    pub gid: Option<u32>,
    /// Symlink target, for symlinks.
    pub link_target: Option<String>,
}

impl Entry {
    /// A folder entry with only a name (synthesised roots, file systems without folder times).
    pub(crate) fn dir(name: &str) -> Entry {
        Entry {
            name: name.to_string(),
            kind: EntryKind::Dir,
            size: 0,
            mtime: None,
            atime: None,
            ctime: None,
            mode: None,
            uid: None,
            gid: None,
            link_target: None,
        }
    }
}

/// What can go wrong while browsing.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// Probing or reading the first sectors failed.
    #[error("cannot identify the file system on {device}: {message}")]
    Probe { device: String, message: String },
    /// No file system, or one without a reader here.
    #[error("cannot browse {device}: {what}")]
    UnsupportedFs { device: String, what: String },
    /// The file system's own structures could not be read or do not add up.
    #[error("{fs} file system on {device}: {message}")]
    Open {
        fs: &'static str,
        device: String,
        message: String,
    },
    /// A path does not exist.
    #[error("{path}: no such file or folder")]
    NotFound { path: String },
    /// A path that must be a folder is not one.
    #[error("{path}: not a folder")]
    NotADirectory { path: String },
    /// A path that must be a file is not one.
    #[error("{path}: not a regular file")]
    NotAFile { path: String },
    /// A path that must be a symlink is not one.
    #[error("{path}: not a symlink")]
    NotASymlink { path: String },
    /// The path is not absolute or holds invalid components.
    #[error("{path}: invalid path ({why})")]
    BadPath { path: String, why: &'static str },
    /// The object uses a feature this reader cannot decode (compressed, encrypted, …).
    #[error("{path}: {what} is not supported")]
    Unsupported { path: String, what: String },
    /// Reading the object's structures or data failed (damaged file system or image).
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    /// A reader crashed on damaged structures (a caught panic).
    #[error("{path}: damaged file-system structures ({message})")]
    Damaged { path: String, message: String },
    /// Writing the content to the output failed.
    #[error("{path}: writing the content failed: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A read-only view of the files in one file system.
///
/// Methods take `&mut self` because the readers keep a position and caches. Paths are absolute
/// (`/`, `/docs/a.txt`); symlinks are never followed.
pub trait Browser {
    /// The file system's short name: `ext4`, `vfat`, `ntfs`, `exfat`.
    fn fs_name(&self) -> &'static str;

    /// The volume label, if any.
    fn label(&self) -> Option<String>;

    /// Why files read from this file system may not be what its owner last saw (a hibernated
    /// Windows volume, one not unmounted cleanly); empty when nothing is known against it.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// The entries of the folder at `path`, without `.` and `..`, sorted by name, at most
    /// [`MAX_DIR_ENTRIES`]. A name a folder holds twice (a damaged or crafted folder, or two
    /// UTF-16 names that decode to one string) is listed twice, in directory order; a path
    /// naming it resolves to the first. Entries that point back to the folder itself or one of
    /// its parents are left out (logged), so a recursive walk ends, and so are names no path can
    /// hold (empty, `.`, `..`, with `/` or NUL).
    fn read_dir(&mut self, path: &str) -> Result<Vec<Entry>, BrowseError>;

    /// The object at `path` itself (a symlink is described, not followed).
    fn metadata(&mut self, path: &str) -> Result<Entry, BrowseError>;

    /// Streams the content of the regular file at `path` into `out`; returns the bytes written.
    /// Holes of sparse files arrive as zeros.
    fn read_file(&mut self, path: &str, out: &mut dyn Write) -> Result<u64, BrowseError>;

    /// The target of the symlink at `path`.
    fn read_link(&mut self, path: &str) -> Result<String, BrowseError>;

    /// Like [`Browser::read_file`], but runs known to be zeros (sparse holes, exFAT's bytes past
    /// the valid data length) may be handed to [`SparseWrite::hole`] instead of written, so a
    /// large sparse file is copied without producing its zeros. Returns the logical length.
    fn read_file_sparse(
        &mut self,
        path: &str,
        out: &mut dyn SparseWrite,
    ) -> Result<u64, BrowseError> {
        self.read_file(path, out.as_write())
    }
}

/// An output that can skip over zeros: what [`Browser::read_file_sparse`] writes to.
pub trait SparseWrite {
    /// The plain writer for data.
    fn as_write(&mut self) -> &mut dyn Write;

    /// `len` zero bytes follow the data written so far. The default writes them.
    fn hole(&mut self, len: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; COPY_BUF];
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(COPY_BUF as u64)).unwrap_or(COPY_BUF);
            self.as_write()
                .write_all(zeros.get(..n).unwrap_or_default())?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// Probes `io` and opens the matching reader.
pub fn open(io: Box<dyn BlockIo>) -> Result<Box<dyn Browser>, BrowseError> {
    let device = io.describe();
    let info = probe(io.as_ref()).map_err(|e| BrowseError::Probe {
        device: device.clone(),
        message: e.to_string(),
    })?;
    let Some(info) = info else {
        return Err(BrowseError::UnsupportedFs {
            device,
            what: "no file system recognised".to_string(),
        });
    };
    let inner: Box<dyn Browser> = guard(&device, || match info.kind {
        FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => {
            ext4::Ext4Browser::open(io).map(|b| Box::new(b) as Box<dyn Browser>)
        }
        FsKind::Vfat => fat::FatBrowser::open(io).map(|b| Box::new(b) as Box<dyn Browser>),
        FsKind::Ntfs => ntfs::NtfsBrowser::open(io).map(|b| Box::new(b) as Box<dyn Browser>),
        FsKind::Exfat => exfat::ExfatBrowser::open(io).map(|b| Box::new(b) as Box<dyn Browser>),
        other => Err(BrowseError::UnsupportedFs {
            device: device.clone(),
            what: format!("browsing {} file systems is not implemented", other.name()),
        }),
    })?;
    log::debug!("browsing {} file system on {device}", inner.fs_name());
    Ok(Box::new(Guarded {
        inner,
        warnings: state_warnings(&info),
    }))
}

/// Runs `f`, turning a panic inside a third-party reader into [`BrowseError::Damaged`].
fn guard<T>(path: &str, f: impl FnOnce() -> Result<T, BrowseError>) -> Result<T, BrowseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "reader panicked".to_string());
            log::warn!("{path}: file-system reader panicked: {message}");
            Err(BrowseError::Damaged {
                path: path.to_string(),
                message,
            })
        }
    }
}

/// What a reader of this file system should be told before files are copied out: the volume
/// was hibernated, not unmounted cleanly or has a journal to replay, so the files on disk may be
/// older than what the owner last saw, or half written.
fn state_warnings(info: &crate::FsInfo) -> Vec<String> {
    let state = info.state.as_deref().unwrap_or("");
    if info.kind == FsKind::Ntfs && state == crate::ntfs::STATE_HIBERNATED {
        return vec![format!(
            "the NTFS volume is {state}: changes made since are only in Windows' saved memory, \
             so extracted files may be older than the owner last saw them (resume Windows and \
             shut it down fully for current files)"
        )];
    }
    if info.needs_check {
        return vec![format!(
            "the {} file system is {}: it was not unmounted cleanly, so recently changed files \
             may be incomplete",
            info.kind,
            if state.is_empty() { "not clean" } else { state }
        )];
    }
    Vec::new()
}

/// Wraps a reader so that a panic in it becomes an error.
struct Guarded {
    inner: Box<dyn Browser>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("fs", &self.inner.fs_name())
            .finish()
    }
}

impl Browser for Guarded {
    fn fs_name(&self) -> &'static str {
        self.inner.fs_name()
    }
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
    fn label(&self) -> Option<String> {
        catch_unwind(AssertUnwindSafe(|| self.inner.label())).unwrap_or(None)
    }
    fn read_dir(&mut self, path: &str) -> Result<Vec<Entry>, BrowseError> {
        let inner = &mut self.inner;
        let mut entries = guard(path, || inner.read_dir(path))?;
        entries.retain(|e| {
            let ok = addressable(&e.name);
            if !ok {
                log::warn!(
                    "{path}: entry {:?} cannot be named in a path (empty, `.`, `..`, or holding \
                     `/` or NUL); left out",
                    e.name
                );
            }
            ok
        });
        Ok(entries)
    }
    fn metadata(&mut self, path: &str) -> Result<Entry, BrowseError> {
        let inner = &mut self.inner;
        guard(path, || inner.metadata(path))
    }
    fn read_file(&mut self, path: &str, out: &mut dyn Write) -> Result<u64, BrowseError> {
        let inner = &mut self.inner;
        guard(path, || inner.read_file(path, out))
    }
    fn read_link(&mut self, path: &str) -> Result<String, BrowseError> {
        let inner = &mut self.inner;
        guard(path, || inner.read_link(path))
    }
    fn read_file_sparse(
        &mut self,
        path: &str,
        out: &mut dyn SparseWrite,
    ) -> Result<u64, BrowseError> {
        let inner = &mut self.inner;
        guard(path, || inner.read_file_sparse(path, out))
    }
}

/// Whether a name read from a folder can be one component of a path: not empty, not `.` or
/// `..`, without `/` or NUL (a damaged or crafted folder can hold any bytes).
pub(crate) fn addressable(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Splits an absolute path into its components; `.` is dropped, `..` is refused.
pub(crate) fn components(path: &str) -> Result<Vec<&str>, BrowseError> {
    if !path.starts_with('/') {
        return Err(BrowseError::BadPath {
            path: path.to_string(),
            why: "not absolute",
        });
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(BrowseError::BadPath {
                    path: path.to_string(),
                    why: "`..` is not allowed",
                })
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The most entries one folder lists; a damaged or crafted folder with more is cut there (with a
/// warning), so a listing stays bounded in memory and time.
pub const MAX_DIR_ENTRIES: usize = 1 << 20;

/// Size of the buffer content is streamed through.
pub(crate) const COPY_BUF: usize = 1 << 20;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Writes `buf` to `out`, naming `path` on failure.
pub(crate) fn write_out(out: &mut dyn Write, buf: &[u8], path: &str) -> Result<(), BrowseError> {
    out.write_all(buf).map_err(|source| BrowseError::Output {
        path: path.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressable_refuses_separators_dots_and_nul() {
        assert!(addressable("a.txt"));
        assert!(addressable("..."));
        assert!(!addressable(""));
        assert!(!addressable("."));
        assert!(!addressable(".."));
        assert!(!addressable("a/b"));
        assert!(!addressable("a\0b"));
    }

    #[test]
    fn components_drop_dots_and_refuse_parent() {
        assert_eq!(components("/a/./b//c/").ok(), Some(vec!["a", "b", "c"]));
        assert!(components("/a/../b").is_err());
        assert!(components("a").is_err());
        assert_eq!(components("/").ok(), Some(vec![]));
    }

    #[test]
    fn days_from_civil_matches_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1980, 1, 1), 3652);
    }
}
