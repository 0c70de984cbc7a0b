//! ext2/3/4 through the `ext4-view` crate.

use std::io::Write;

use disk::BlockIo;
use ext4_view::{Ext4, Ext4Error, Ext4Read, Metadata};

use super::{components, write_out, BrowseError, Entry, EntryKind, Timestamp, COPY_BUF};

/// `ext4-view`'s storage seam over a [`BlockIo`].
struct Ext4Io(Box<dyn BlockIo>);

impl Ext4Read for Ext4Io {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.0.read_at(dst, start_byte).map_err(|e| e.into())
    }
}

pub(crate) struct Ext4Browser {
    fs: Ext4,
    device: String,
}

impl Ext4Browser {
    pub(crate) fn open(io: Box<dyn BlockIo>) -> Result<Ext4Browser, BrowseError> {
        let device = io.describe();
        let fs = Ext4::load(Box::new(Ext4Io(io))).map_err(|e| BrowseError::Open {
            fs: "ext4",
            device: device.clone(),
            message: e.to_string(),
        })?;
        Ok(Ext4Browser { fs, device })
    }

    fn entry(name: &str, md: &Metadata, link_target: Option<String>) -> Entry {
        let ft = md.file_type();
        let kind = if ft.is_regular_file() {
            EntryKind::File
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        };
        let ts = |t: ext4_view::Timestamp| Timestamp {
            secs: t.seconds(),
            nanos: t.nanoseconds().min(999_999_999),
        };
        Entry {
            name: name.to_string(),
            kind,
            size: md.len(),
            mtime: Some(ts(md.modified())),
            atime: Some(ts(md.accessed())),
            ctime: md.created().map(ts),
            mode: Some(u32::from(md.mode())),
            uid: Some(md.uid()),
            gid: Some(md.gid()),
            link_target,
        }
    }

    fn link(&self, path: &str, kind_is_link: bool) -> Option<String> {
        if !kind_is_link {
            return None;
        }
        match self.fs.read_link(path) {
            Ok(t) => Some(String::from_utf8_lossy(t.as_ref()).into_owned()),
            Err(e) => {
                log::warn!("{}: reading symlink {path}: {e}", self.device);
                None
            }
        }
    }
}

fn map_err(path: &str, e: Ext4Error) -> BrowseError {
    let path = path.to_string();
    match e {
        Ext4Error::NotFound => BrowseError::NotFound { path },
        Ext4Error::NotADirectory => BrowseError::NotADirectory { path },
        Ext4Error::IsADirectory | Ext4Error::IsASpecialFile => BrowseError::NotAFile { path },
        Ext4Error::NotASymlink => BrowseError::NotASymlink { path },
        Ext4Error::Encrypted => BrowseError::Unsupported {
            path,
            what: "an encrypted file (fscrypt)".to_string(),
        },
        Ext4Error::NotAbsolute | Ext4Error::MalformedPath | Ext4Error::PathTooLong => {
            BrowseError::BadPath {
                path,
                why: "rejected by the ext4 reader",
            }
        }
        other => BrowseError::Read {
            path,
            message: other.to_string(),
        },
    }
}

fn canonical(path: &str) -> Result<String, BrowseError> {
    let parts = components(path)?;
    Ok(format!("/{}", parts.join("/")))
}

impl super::Browser for Ext4Browser {
    fn fs_name(&self) -> &'static str {
        "ext4"
    }

    fn label(&self) -> Option<String> {
        let l = self
            .fs
            .label()
            .to_str()
            .ok()?
            .trim_end_matches('\0')
            .to_string();
        (!l.is_empty()).then_some(l)
    }

    fn read_dir(&mut self, path: &str) -> Result<Vec<Entry>, BrowseError> {
        let p = canonical(path)?;
        let md = self
            .fs
            .symlink_metadata(p.as_str())
            .map_err(|e| map_err(&p, e))?;
        if !md.is_dir() {
            return Err(BrowseError::NotADirectory { path: p });
        }
        let mut out = Vec::new();
        for item in self.fs.read_dir(p.as_str()).map_err(|e| map_err(&p, e))? {
            let item = item.map_err(|e| map_err(&p, e))?;
            let name = item.file_name();
            let name = match name.as_str() {
                Ok(n) => n.to_string(),
                Err(_) => String::from_utf8_lossy(name.as_ref()).into_owned(),
            };
            if name == "." || name == ".." {
                continue;
            }
            let child = if p == "/" {
                format!("/{name}")
            } else {
                format!("{p}/{name}")
            };
            let md = item.metadata().map_err(|e| map_err(&child, e))?;
            let target = self.link(&child, md.is_symlink());
            out.push(Self::entry(&name, &md, target));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn metadata(&mut self, path: &str) -> Result<Entry, BrowseError> {
        let p = canonical(path)?;
        let md = self
            .fs
            .symlink_metadata(p.as_str())
            .map_err(|e| map_err(&p, e))?;
        let name = p
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("/");
        let target = self.link(&p, md.is_symlink());
        Ok(Self::entry(name, &md, target))
    }

    fn read_file(&mut self, path: &str, out: &mut dyn Write) -> Result<u64, BrowseError> {
        let p = canonical(path)?;
        let md = self
            .fs
            .symlink_metadata(p.as_str())
            .map_err(|e| map_err(&p, e))?;
        if !md.file_type().is_regular_file() {
            return Err(BrowseError::NotAFile { path: p });
        }
        let mut file = self.fs.open(p.as_str()).map_err(|e| map_err(&p, e))?;
        let mut buf = vec![0u8; COPY_BUF];
        let mut total = 0u64;
        loop {
            let n = file.read_bytes(&mut buf).map_err(|e| map_err(&p, e))?;
            if n == 0 {
                break;
            }
            write_out(out, buf.get(..n).unwrap_or_default(), &p)?;
            total += n as u64;
        }
        if total != md.len() {
            return Err(BrowseError::Read {
                path: p,
                message: format!("read {total} bytes of {}", md.len()),
            });
        }
        Ok(total)
    }

    fn read_link(&mut self, path: &str) -> Result<String, BrowseError> {
        let p = canonical(path)?;
        let t = self.fs.read_link(p.as_str()).map_err(|e| map_err(&p, e))?;
        Ok(String::from_utf8_lossy(t.as_ref()).into_owned())
    }
}
