//! FAT12/16/32 through the `fatfs` crate (long names included; names match case-insensitively,
//! as on FAT).
//!
//! `fatfs` follows cluster chains as the FAT says, so every call runs under a work budget
//! ([`Meter`]): a chain that loops ends in an error instead of a hang. Folders are identified by
//! the first sector of their entries; a folder entry pointing back to the folder itself or to
//! one of its parents is left out of listings (a recursive walk would never end).

use std::io::{Read, Write};
use std::rc::Rc;

use disk::BlockIo;
use fatfs::{Dir, DirEntry, FileSystem, FsOptions};

use super::adapter::Meter;
use super::{
    components, days_from_civil, write_out, BrowseError, Entry, EntryKind, IoCursor, Timestamp,
    COPY_BUF, MAX_DIR_ENTRIES,
};

/// Bytes one call may read besides a file's content (a FAT folder holds at most 65,536
/// entries of 32 bytes; this leaves room for deep paths and the FAT itself).
const OP_BUDGET: u64 = 256 << 20;

pub(crate) struct FatBrowser {
    fs: FileSystem<IoCursor>,
    meter: Rc<Meter>,
}

/// Where a folder's entries start (the first offset read when listing it), or `None` when it
/// cannot be read.
fn dir_id(meter: &Meter, dir: &Dir<'_, IoCursor>) -> Option<u64> {
    meter.mark();
    let _ = dir.iter().next();
    meter.first_read()
}

fn date_secs(d: fatfs::Date) -> Option<i64> {
    if !(1..=12).contains(&d.month) || !(1..=31).contains(&d.day) {
        return None;
    }
    Some(days_from_civil(i64::from(d.year), u32::from(d.month), u32::from(d.day)) * 86_400)
}

fn datetime(dt: fatfs::DateTime) -> Option<Timestamp> {
    let t = dt.time;
    let secs = date_secs(dt.date)?
        + i64::from(t.hour.min(23)) * 3600
        + i64::from(t.min.min(59)) * 60
        + i64::from(t.sec.min(59));
    Some(Timestamp {
        secs,
        nanos: u32::from(t.millis.min(999)) * 1_000_000,
    })
}

fn entry<T: fatfs::ReadWriteSeek>(e: &DirEntry<'_, T>) -> Entry {
    let kind = if e.is_dir() {
        EntryKind::Dir
    } else if e.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    Entry {
        name: e.file_name(),
        kind,
        size: if e.is_dir() { 0 } else { e.len() },
        mtime: datetime(e.modified()),
        atime: date_secs(e.accessed()).map(|secs| Timestamp { secs, nanos: 0 }),
        ctime: datetime(e.created()),
        mode: None,
        uid: None,
        gid: None,
        link_target: None,
    }
}

fn read_err(path: &str, e: std::io::Error) -> BrowseError {
    BrowseError::Read {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// What a path resolves to: the root, or an entry of a folder.
enum Found<'a> {
    Root(Dir<'a, IoCursor>),
    Entry(DirEntry<'a, IoCursor>),
}

impl FatBrowser {
    pub(crate) fn open(io: Box<dyn BlockIo>) -> Result<FatBrowser, BrowseError> {
        let device = io.describe();
        let cursor = IoCursor::new(io);
        let meter = cursor.meter();
        meter.budget(OP_BUDGET);
        let fs =
            FileSystem::new(cursor, FsOptions::new().update_accessed_date(false)).map_err(|e| {
                BrowseError::Open {
                    fs: "vfat",
                    device,
                    message: e.to_string(),
                }
            })?;
        Ok(FatBrowser { fs, meter })
    }

    /// What `path` names, and the ids ([`dir_id`]) of the folders from the root down to it (the
    /// object itself included when it is a folder).
    fn find<'a>(
        fs: &'a FileSystem<IoCursor>,
        meter: &Meter,
        path: &str,
    ) -> Result<(Found<'a>, Vec<u64>), BrowseError> {
        let parts = components(path)?;
        let mut dir = fs.root_dir();
        let mut chain: Vec<u64> = dir_id(meter, &dir).into_iter().collect();
        let mut found = None;
        for (i, part) in parts.iter().enumerate() {
            let mut hit = None;
            for e in dir.iter() {
                let e = e.map_err(|e| read_err(path, e))?;
                let name = e.file_name();
                if name == *part {
                    hit = Some(e);
                    break;
                }
                if hit.is_none() && name.to_lowercase() == part.to_lowercase() {
                    hit = Some(e);
                }
            }
            let Some(e) = hit else {
                return Err(BrowseError::NotFound {
                    path: path.to_string(),
                });
            };
            if i + 1 < parts.len() {
                if !e.is_dir() {
                    return Err(BrowseError::NotADirectory {
                        path: path.to_string(),
                    });
                }
                dir = e.to_dir();
            }
            if e.is_dir() {
                chain.extend(dir_id(meter, &e.to_dir()));
            }
            found = Some(e);
        }
        Ok((
            match found {
                Some(e) => Found::Entry(e),
                None => Found::Root(dir),
            },
            chain,
        ))
    }
}

impl super::Browser for FatBrowser {
    fn fs_name(&self) -> &'static str {
        "vfat"
    }

    fn label(&self) -> Option<String> {
        self.meter.budget(OP_BUDGET);
        let from_root = self.fs.read_volume_label_from_root_dir().ok().flatten();
        let l = from_root.unwrap_or_else(|| self.fs.volume_label());
        let l = l.trim().to_string();
        (!l.is_empty() && l != "NO NAME").then_some(l)
    }

    fn read_dir(&mut self, path: &str) -> Result<Vec<Entry>, BrowseError> {
        self.meter.budget(OP_BUDGET);
        let (found, chain) = Self::find(&self.fs, &self.meter, path)?;
        let dir = match found {
            Found::Root(d) => d,
            Found::Entry(e) if e.is_dir() => e.to_dir(),
            Found::Entry(_) => {
                return Err(BrowseError::NotADirectory {
                    path: path.to_string(),
                })
            }
        };
        let mut out = Vec::new();
        for e in dir.iter() {
            let e = e.map_err(|e| read_err(path, e))?;
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            if out.len() >= MAX_DIR_ENTRIES {
                log::warn!("{path}: more than {MAX_DIR_ENTRIES} entries; listing the first ones");
                break;
            }
            if e.is_dir() && dir_id(&self.meter, &e.to_dir()).is_some_and(|id| chain.contains(&id))
            {
                log::warn!(
                    "{path}: folder entry {name:?} points back to this folder or a parent; skipped"
                );
                continue;
            }
            out.push(entry(&e));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn metadata(&mut self, path: &str) -> Result<Entry, BrowseError> {
        self.meter.budget(OP_BUDGET);
        Ok(match Self::find(&self.fs, &self.meter, path)?.0 {
            Found::Root(_) => Entry::dir("/"),
            Found::Entry(e) => entry(&e),
        })
    }

    fn read_file(&mut self, path: &str, out: &mut dyn Write) -> Result<u64, BrowseError> {
        self.meter.budget(OP_BUDGET);
        let e = match Self::find(&self.fs, &self.meter, path)?.0 {
            Found::Entry(e) if e.is_file() => e,
            _ => {
                return Err(BrowseError::NotAFile {
                    path: path.to_string(),
                })
            }
        };
        let want = e.len();
        self.meter.budget(OP_BUDGET.saturating_add(want));
        let mut file = e.to_file();
        let mut buf = vec![0u8; COPY_BUF];
        let mut total = 0u64;
        while total < want {
            let n = file.read(&mut buf).map_err(|e| read_err(path, e))?;
            if n == 0 {
                break;
            }
            write_out(out, buf.get(..n).unwrap_or_default(), path)?;
            total += n as u64;
        }
        if total != want {
            return Err(BrowseError::Read {
                path: path.to_string(),
                message: format!("cluster chain ends after {total} bytes of {want} (damaged FAT)"),
            });
        }
        Ok(total)
    }

    fn read_link(&mut self, path: &str) -> Result<String, BrowseError> {
        self.meter.budget(OP_BUDGET);
        Self::find(&self.fs, &self.meter, path)?;
        Err(BrowseError::NotASymlink {
            path: path.to_string(),
        })
    }
}
