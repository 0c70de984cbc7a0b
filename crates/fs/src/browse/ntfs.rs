//! NTFS through the `ntfs` crate: resident and non-resident (and sparse) `$DATA`; compressed and
//! encrypted files are reported as unsupported.
//!
//! Links are listed as symlinks with their target: Windows symbolic links and junctions
//! (reparse points with the `SYMLINK` / `MOUNT_POINT` tags, their `\` turned into `/`) and the
//! Interix-style symlinks `ntfs-3g` creates by default (a system file holding `IntxLNK\1` and the
//! UTF-16 target). Other reparse points (deduplicated, cloud files, …) are listed as `other`.

use std::io::Write;
use std::rc::Rc;

use disk::BlockIo;
use ntfs::structured_values::{NtfsFileAttributeFlags, NtfsFileNamespace};
use ntfs::{Ntfs, NtfsAttributeFlags, NtfsAttributeType, NtfsFile, NtfsReadSeek, NtfsTime};

use super::adapter::Meter;
use super::{
    components, write_out, BrowseError, Entry, EntryKind, IoCursor, Timestamp, COPY_BUF,
    MAX_DIR_ENTRIES,
};

/// Bytes one call may read besides a file's content: the `ntfs` crate follows index trees and
/// runs as the volume describes them, and a crafted loop must end in an error, not a hang.
const OP_BUDGET: u64 = 256 << 20;

/// Seconds between 1601-01-01 (NTFS epoch) and 1970-01-01.
const NT_EPOCH_OFFSET: i64 = 11_644_473_600;

/// The first file records are NTFS's own metadata files (`$MFT`, `$Bitmap`, …): not listed.
const FIRST_USER_RECORD: u64 = 16;

pub(crate) struct NtfsBrowser {
    ntfs: Ntfs,
    io: IoCursor,
    meter: Rc<Meter>,
    label: Option<String>,
}

fn ts(t: NtfsTime) -> Timestamp {
    let nt = t.nt_timestamp();
    Timestamp {
        secs: i64::try_from(nt / 10_000_000).unwrap_or(i64::MAX) - NT_EPOCH_OFFSET,
        nanos: u32::try_from((nt % 10_000_000) * 100).unwrap_or(0),
    }
}

fn err(path: &str, e: ntfs::NtfsError) -> BrowseError {
    BrowseError::Read {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// Reparse tags of links.
const TAG_MOUNT_POINT: u32 = 0xA000_0003;
const TAG_SYMLINK: u32 = 0xA000_000C;
/// Reparse data is at most 16 KiB.
const MAX_REPARSE: u64 = 16 << 10;
/// The magic at the start of an Interix symlink (what `ntfs-3g` writes for `ln -s`).
const INTERIX_LINK: &[u8] = b"IntxLNK\x01";
/// An Interix link holds at most a 4096-unit target.
const MAX_INTERIX: u64 = 8 + 2 * 4096;

/// The value of the first unnamed attribute of type `ty`, if it is at most `max` bytes.
fn attr_value(
    file: &NtfsFile<'_>,
    io: &mut IoCursor,
    ty: NtfsAttributeType,
    max: u64,
    path: &str,
) -> Result<Option<Vec<u8>>, BrowseError> {
    let mut attrs = file.attributes();
    while let Some(item) = attrs.next(io) {
        let item = item.map_err(|e| err(path, e))?;
        let attr = item.to_attribute().map_err(|e| err(path, e))?;
        if attr.ty().ok() != Some(ty) || attr.name_length() != 0 {
            continue;
        }
        let len = attr.value_length();
        if len > max {
            return Ok(None);
        }
        let mut out = vec![0u8; usize::try_from(len).unwrap_or(0)];
        let mut value = attr.value(io).map_err(|e| err(path, e))?;
        let mut done = 0;
        while let Some(dst) = out.get_mut(done..).filter(|d| !d.is_empty()) {
            let n = value.read(io, dst).map_err(|e| err(path, e))?;
            if n == 0 {
                break;
            }
            done += n;
        }
        out.truncate(done);
        return Ok(Some(out));
    }
    Ok(None)
}

fn le16(b: &[u8], at: usize) -> usize {
    b.get(at..at + 2)
        .map_or(0, |s| usize::from(u16::from_le_bytes([s[0], s[1]])))
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
        .trim_end_matches('\0')
        .to_string()
}

/// The target of a symlink or junction reparse buffer, `/`-separated; `None` for other tags.
fn reparse_target(data: &[u8]) -> Option<String> {
    let tag = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?);
    let (body, path_at) = match tag {
        TAG_SYMLINK => (data.get(8..)?, 12usize),
        TAG_MOUNT_POINT => (data.get(8..)?, 8),
        _ => return None,
    };
    let name = |off: usize, len: usize| -> Option<String> {
        let start = path_at.checked_add(off)?;
        let bytes = body.get(start..start.checked_add(len)?)?;
        Some(utf16(bytes))
    };
    let print = name(le16(body, 4), le16(body, 6)).filter(|n| !n.is_empty());
    let subst = name(le16(body, 0), le16(body, 2))
        .map(|n| n.strip_prefix("\\??\\").map(str::to_string).unwrap_or(n));
    let target = print.or(subst).filter(|t| !t.is_empty())?;
    Some(target.replace('\\', "/"))
}

/// The link target of `file`, for symlinks, junctions and Interix symlinks.
fn link_target(
    file: &NtfsFile<'_>,
    io: &mut IoCursor,
    attrs: NtfsFileAttributeFlags,
    path: &str,
) -> Result<Option<String>, BrowseError> {
    if attrs.contains(NtfsFileAttributeFlags::REPARSE_POINT) {
        let data = attr_value(file, io, NtfsAttributeType::ReparsePoint, MAX_REPARSE, path)?;
        return Ok(data.as_deref().and_then(reparse_target));
    }
    if attrs.contains(NtfsFileAttributeFlags::SYSTEM) && !file.is_directory() {
        let data = attr_value(file, io, NtfsAttributeType::Data, MAX_INTERIX, path)?;
        if let Some(rest) = data.as_deref().and_then(|d| d.strip_prefix(INTERIX_LINK)) {
            let t = utf16(rest);
            return Ok((!t.is_empty()).then_some(t));
        }
    }
    Ok(None)
}

/// Builds the entry of `file` named `name`.
fn entry(
    file: &NtfsFile<'_>,
    io: &mut IoCursor,
    name: &str,
    path: &str,
) -> Result<Entry, BrowseError> {
    let info = file.info().map_err(|e| err(path, e))?;
    let attrs = info.file_attributes();
    let link = link_target(file, io, attrs, path)?;
    let kind = if link.is_some() {
        EntryKind::Symlink
    } else if file.is_directory() {
        EntryKind::Dir
    } else if attrs.contains(NtfsFileAttributeFlags::REPARSE_POINT) {
        EntryKind::Other
    } else {
        EntryKind::File
    };
    let size = if let Some(t) = &link {
        t.len() as u64
    } else if kind == EntryKind::File {
        match file.data(io, "") {
            Some(item) => {
                let item = item.map_err(|e| err(path, e))?;
                let attr = item.to_attribute().map_err(|e| err(path, e))?;
                attr.value_length()
            }
            None => 0,
        }
    } else {
        0
    };
    Ok(Entry {
        name: name.to_string(),
        kind,
        size,
        mtime: Some(ts(info.modification_time())),
        atime: Some(ts(info.access_time())),
        ctime: Some(ts(info.creation_time())),
        mode: None,
        uid: None,
        gid: None,
        link_target: link,
    })
}

impl NtfsBrowser {
    pub(crate) fn open(io: Box<dyn BlockIo>) -> Result<NtfsBrowser, BrowseError> {
        let device = io.describe();
        let mut io = IoCursor::new(io);
        let meter = io.meter();
        meter.budget(OP_BUDGET);
        let open_err = |e: ntfs::NtfsError| BrowseError::Open {
            fs: "ntfs",
            device: device.clone(),
            message: e.to_string(),
        };
        let mut ntfs = Ntfs::new(&mut io).map_err(open_err)?;
        ntfs.read_upcase_table(&mut io).map_err(open_err)?;
        let label = match ntfs.volume_name(&mut io) {
            Some(Ok(n)) => Some(n.name().to_string_lossy()).filter(|n| !n.is_empty()),
            _ => None,
        };
        Ok(NtfsBrowser {
            ntfs,
            io,
            meter,
            label,
        })
    }

    /// The file record a path names, with its name.
    fn resolve<'n>(
        ntfs: &'n Ntfs,
        io: &mut IoCursor,
        path: &str,
    ) -> Result<(NtfsFile<'n>, String), BrowseError> {
        Self::resolve_chain(ntfs, io, path).map(|(f, n, _)| (f, n))
    }

    /// Like [`NtfsBrowser::resolve`], also returning the file record numbers from the root down
    /// to the object (to spot index entries that loop back to a parent).
    fn resolve_chain<'n>(
        ntfs: &'n Ntfs,
        io: &mut IoCursor,
        path: &str,
    ) -> Result<(NtfsFile<'n>, String, Vec<u64>), BrowseError> {
        let parts = components(path)?;
        let mut file = ntfs.root_directory(io).map_err(|e| err(path, e))?;
        let mut chain = vec![file.file_record_number()];
        let mut name = "/".to_string();
        for part in parts {
            if !file.is_directory() {
                return Err(BrowseError::NotADirectory {
                    path: path.to_string(),
                });
            }
            let mut exact = None;
            let mut folded = None;
            {
                let index = file.directory_index(io).map_err(|e| err(path, e))?;
                let mut entries = index.entries();
                let mut seen = 0usize;
                while let Some(e) = entries.next(io) {
                    seen += 1;
                    if seen > MAX_DIR_ENTRIES {
                        break;
                    }
                    let e = e.map_err(|e| err(path, e))?;
                    let Some(key) = e.key() else { continue };
                    let key = key.map_err(|e| err(path, e))?;
                    if key.namespace() == NtfsFileNamespace::Dos {
                        continue;
                    }
                    let n = key.name().to_string_lossy();
                    if n == part {
                        exact = Some((e.file_reference(), n));
                        break;
                    }
                    if folded.is_none() && n.to_lowercase() == part.to_lowercase() {
                        folded = Some((e.file_reference(), n));
                    }
                }
            }
            let Some((reference, n)) = exact.or(folded) else {
                return Err(BrowseError::NotFound {
                    path: path.to_string(),
                });
            };
            file = reference.to_file(ntfs, io).map_err(|e| err(path, e))?;
            chain.push(file.file_record_number());
            name = n;
        }
        Ok((file, name, chain))
    }
}

impl super::Browser for NtfsBrowser {
    fn fs_name(&self) -> &'static str {
        "ntfs"
    }

    fn label(&self) -> Option<String> {
        self.label.clone()
    }

    fn read_dir(&mut self, path: &str) -> Result<Vec<Entry>, BrowseError> {
        self.meter.budget(OP_BUDGET);
        let Self { ntfs, io, .. } = self;
        let (dir, _, chain) = Self::resolve_chain(ntfs, io, path)?;
        if !dir.is_directory() {
            return Err(BrowseError::NotADirectory {
                path: path.to_string(),
            });
        }
        let mut children = Vec::new();
        {
            let index = dir.directory_index(io).map_err(|e| err(path, e))?;
            let mut entries = index.entries();
            while let Some(e) = entries.next(io) {
                let e = e.map_err(|e| err(path, e))?;
                let Some(key) = e.key() else { continue };
                let key = key.map_err(|e| err(path, e))?;
                if key.namespace() == NtfsFileNamespace::Dos {
                    continue;
                }
                let name = key.name().to_string_lossy();
                let record = e.file_reference().file_record_number();
                if name == "." || (record < FIRST_USER_RECORD && name.starts_with('$')) {
                    continue;
                }
                if chain.contains(&record) {
                    log::warn!(
                        "{path}: index entry {name:?} points back to file record {record}, this \
                         folder or a parent; skipped"
                    );
                    continue;
                }
                if children.len() >= MAX_DIR_ENTRIES {
                    log::warn!(
                        "{path}: more than {MAX_DIR_ENTRIES} entries; listing the first ones"
                    );
                    break;
                }
                // Repeated index entries and two UTF-16 names that decode to one string are
                // all listed: the caller sees every one.
                children.push((e.file_reference(), name));
            }
        }
        let mut out = Vec::with_capacity(children.len());
        for (reference, name) in children {
            let child = format!("{}/{name}", path.trim_end_matches('/'));
            let file = reference.to_file(ntfs, io).map_err(|e| err(&child, e))?;
            out.push(entry(&file, io, &name, &child)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn metadata(&mut self, path: &str) -> Result<Entry, BrowseError> {
        self.meter.budget(OP_BUDGET);
        let Self { ntfs, io, .. } = self;
        let (file, name) = Self::resolve(ntfs, io, path)?;
        entry(&file, io, &name, path)
    }

    fn read_file(&mut self, path: &str, out: &mut dyn Write) -> Result<u64, BrowseError> {
        self.meter.budget(OP_BUDGET);
        let Self { ntfs, io, .. } = self;
        let (file, _) = Self::resolve(ntfs, io, path)?;
        let info = file.info().map_err(|e| err(path, e))?;
        let attrs = info.file_attributes();
        if file.is_directory() || link_target(&file, io, attrs, path)?.is_some() {
            return Err(BrowseError::NotAFile {
                path: path.to_string(),
            });
        }
        let unsupported = |what: &str| BrowseError::Unsupported {
            path: path.to_string(),
            what: what.to_string(),
        };
        if attrs.contains(NtfsFileAttributeFlags::ENCRYPTED) {
            return Err(unsupported("an EFS-encrypted NTFS file"));
        }
        if attrs.contains(NtfsFileAttributeFlags::REPARSE_POINT) {
            return Err(unsupported("an NTFS reparse point (link or cloud file)"));
        }
        let Some(item) = file.data(io, "") else {
            return Ok(0);
        };
        let item = item.map_err(|e| err(path, e))?;
        let attr = item.to_attribute().map_err(|e| err(path, e))?;
        let flags = attr.flags();
        if flags.contains(NtfsAttributeFlags::COMPRESSED)
            || attrs.contains(NtfsFileAttributeFlags::COMPRESSED)
        {
            return Err(unsupported("an NTFS-compressed file"));
        }
        if flags.contains(NtfsAttributeFlags::ENCRYPTED) {
            return Err(unsupported("an EFS-encrypted NTFS file"));
        }
        let want = attr.value_length();
        // NTFS addresses at most 2^32 clusters per file: a larger length is damage, and its
        // sparse runs (read as zeros, without touching the device) would stream practically
        // forever.
        let max = u64::from(ntfs.cluster_size()).saturating_mul(1 << 32);
        if want > max {
            return Err(BrowseError::Read {
                path: path.to_string(),
                message: format!(
                    "data length {want} is more than an NTFS file can hold ({max} bytes): damaged \
                     file record"
                ),
            });
        }
        self.meter.budget(OP_BUDGET.saturating_add(want));
        let mut value = attr.value(io).map_err(|e| err(path, e))?;
        let mut buf = vec![0u8; COPY_BUF];
        let mut total = 0u64;
        while total < want {
            let n = value.read(io, &mut buf).map_err(|e| err(path, e))?;
            if n == 0 {
                break;
            }
            let n = usize::try_from((want - total).min(n as u64)).unwrap_or(n);
            write_out(out, buf.get(..n).unwrap_or_default(), path)?;
            total += n as u64;
        }
        if total != want {
            return Err(BrowseError::Read {
                path: path.to_string(),
                message: format!("data ends after {total} bytes of {want}"),
            });
        }
        Ok(total)
    }

    fn read_link(&mut self, path: &str) -> Result<String, BrowseError> {
        match self.metadata(path)?.link_target {
            Some(t) => Ok(t),
            None => Err(BrowseError::NotASymlink {
                path: path.to_string(),
            }),
        }
    }
}
