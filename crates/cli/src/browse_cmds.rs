//! `lifeboat ls` and `lifeboat extract`: browse a file system inside an image, a disk image, a
//! disk or a partition, and copy files out without restoring anything.

use std::fs::{File, FileTimes, OpenOptions, Permissions};
use std::io::{IsTerminal, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use disk::{BlockIo, FileDisk};
use fs::browse::{Browser, Entry, EntryKind, Timestamp};
use image::{ImageReader, StreamKind};

use crate::image_cmds::looks_like_image;

/// The browsed file system and, for images, the reader whose byte counter we report.
struct Source {
    browser: Box<dyn Browser>,
    image: Option<Arc<ImageReader>>,
}

/// A partition of a disk (image) file, owning the file.
struct PartWindow {
    inner: FileDisk,
    start: u64,
    len: u64,
    name: String,
}

impl BlockIo for PartWindow {
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

fn open_source(path: &Path, part: Option<u32>) -> Result<Source> {
    if looks_like_image(path) {
        let reader = Arc::new(
            ImageReader::open(path)
                .with_context(|| format!("opening the image {}", path.display()))?,
        );
        let parts: Vec<_> = reader
            .streams()
            .iter()
            .filter(|s| s.kind == StreamKind::Partition)
            .cloned()
            .collect();
        let stream = match part {
            Some(n) => match parts.iter().find(|s| s.partition == n) {
                Some(s) => s.id,
                None => bail!(
                    "{} holds no partition {n} (it holds: {})",
                    path.display(),
                    parts
                        .iter()
                        .map(|s| s.partition.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            None => {
                let browsable: Vec<_> = reader
                    .manifest()
                    .partitions
                    .iter()
                    .filter(|p| matches!(p.fs.as_str(), "ext2" | "ext3" | "ext4" | "vfat" | "ntfs"))
                    .map(|p| p.number)
                    .collect();
                let candidates: Vec<_> = if parts.len() == 1 {
                    parts.clone()
                } else {
                    parts
                        .iter()
                        .filter(|s| browsable.contains(&s.partition))
                        .cloned()
                        .collect()
                };
                match candidates.as_slice() {
                    [one] => one.id,
                    [] if parts.is_empty() => match reader
                        .streams()
                        .iter()
                        .find(|s| s.kind == StreamKind::Whole)
                    {
                        Some(s) => s.id,
                        None => bail!("{} holds no partition or file system", path.display()),
                    },
                    [] => bail!(
                        "{} holds no partition with a browsable file system",
                        path.display()
                    ),
                    many => bail!(
                        "{} holds several file systems: pick one with --part N ({})",
                        path.display(),
                        many.iter()
                            .map(|s| s.partition.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            }
        };
        let io = Arc::clone(&reader)
            .stream_reader(stream)
            .with_context(|| format!("opening stream {stream} of {}", path.display()))?;
        let browser = fs::browse::open(Box::new(io))?;
        return Ok(Source {
            browser,
            image: Some(reader),
        });
    }
    let disk = FileDisk::open_read(path).with_context(|| format!("opening {}", path.display()))?;
    if part.is_none() && fs::probe(&disk).ok().flatten().is_some() {
        let browser = fs::browse::open(Box::new(disk))?;
        return Ok(Source {
            browser,
            image: None,
        });
    }
    let layout = layout::read(&disk).with_context(|| {
        format!(
            "{} holds no file system and no readable partition table",
            path.display()
        )
    })?;
    let usable: Vec<_> = layout
        .partitions
        .iter()
        .filter(|p| !p.is_extended)
        .filter(|p| {
            let Ok(w) = disk::Window::new(&disk, p.start, p.size) else {
                return false;
            };
            fs::probe(&w).ok().flatten().is_some()
        })
        .collect();
    let chosen = match part {
        Some(n) => match layout.partitions.iter().find(|p| p.number == n) {
            Some(p) => p,
            None => bail!("{} has no partition {n}", path.display()),
        },
        None => match usable.as_slice() {
            [one] => *one,
            [] => bail!("{} holds no partition with a file system", path.display()),
            many => bail!(
                "{} holds several file systems: pick one with --part N ({})",
                path.display(),
                many.iter()
                    .map(|p| p.number.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let window = PartWindow {
        name: format!("{} partition {}", path.display(), chosen.number),
        start: chosen.start,
        len: chosen.size,
        inner: disk,
    };
    if window
        .start
        .checked_add(window.len)
        .is_none_or(|end| end > window.inner.len())
    {
        bail!(
            "{}: partition {} lies past the end",
            path.display(),
            chosen.number
        );
    }
    let browser = fs::browse::open(Box::new(window))?;
    Ok(Source {
        browser,
        image: None,
    })
}

/// `ls -l` style permission string.
fn mode_string(e: &Entry) -> String {
    let kind = match e.kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::File => '-',
        EntryKind::Other => '?',
    };
    let mode = e.mode.unwrap_or(match e.kind {
        EntryKind::Dir => 0o755,
        EntryKind::Symlink => 0o777,
        _ => 0o644,
    });
    let mut s = String::from(kind);
    for shift in [6u32, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// `YYYY-MM-DD HH:MM` (UTC) of a timestamp.
fn time_string(t: Option<Timestamp>) -> String {
    let Some(t) = t else { return "-".repeat(16) };
    let days = t.secs.div_euclid(86_400);
    let rem = t.secs.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant).
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

fn entry_line(e: &Entry) -> String {
    let owner = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    let mut line = format!(
        "{} {:>5} {:>5} {:>13} {} {}",
        mode_string(e),
        owner(e.uid),
        owner(e.gid),
        e.size,
        time_string(e.mtime),
        e.name
    );
    if let Some(t) = &e.link_target {
        line.push_str(" -> ");
        line.push_str(t);
    }
    line.push('\n');
    line
}

/// `lifeboat ls IMAGE [PATH]`.
pub fn ls(image: &Path, path: &str, part: Option<u32>, json: bool) -> Result<u8> {
    let mut src = open_source(image, part)?;
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let md = src.browser.metadata(&path)?;
    let entries = if md.kind == EntryKind::Dir {
        src.browser.read_dir(&path)?
    } else {
        vec![md]
    };
    if json {
        let v = serde_json::json!({
            "fs": src.browser.fs_name(),
            "label": src.browser.label(),
            "path": path,
            "entries": entries,
        });
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        let text: String = entries.iter().map(entry_line).collect();
        crate::emit(&text)?;
    }
    Ok(0)
}

/// A writer that leaves all-zero blocks as holes.
struct SparseFile {
    file: File,
    pos: u64,
}

const HOLE_BLOCK: usize = 64 * 1024;

impl Write for SparseFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for piece in buf.chunks(HOLE_BLOCK) {
            if piece.iter().all(|&b| b == 0) {
                self.file.seek(SeekFrom::Current(piece.len() as i64))?;
            } else {
                self.file.write_all(piece)?;
            }
            self.pos += piece.len() as u64;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[derive(Default, serde::Serialize)]
struct Failure {
    path: String,
    error: String,
}

/// What an extract did.
#[derive(Default)]
struct Extract {
    overwrite: bool,
    is_root: bool,
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
    failed: Vec<Failure>,
    notes: Vec<String>,
    progress: bool,
    last_progress: Option<Instant>,
}

fn system_time(t: Timestamp) -> Option<SystemTime> {
    if t.secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(t.secs.unsigned_abs(), t.nanos))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(t.secs.unsigned_abs()))
    }
}

impl Extract {
    fn note(&mut self, text: String) {
        if !self.notes.contains(&text) {
            log::warn!("{text}");
            self.notes.push(text);
        }
    }

    fn fail(&mut self, path: &str, error: impl std::fmt::Display) {
        self.failed.push(Failure {
            path: path.to_string(),
            error: error.to_string(),
        });
    }

    /// Applies mode and owner (where allowed) to `dest`.
    fn apply_attrs(&mut self, dest: &Path, e: &Entry) {
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

    fn apply_times(&mut self, dest: &Path, e: &Entry) {
        let mut times = FileTimes::new();
        if let Some(m) = e.mtime.and_then(system_time) {
            times = times.set_modified(m);
        }
        if let Some(a) = e.atime.and_then(system_time) {
            times = times.set_accessed(a);
        }
        let r = File::open(dest).and_then(|f| f.set_times(times));
        if let Err(err) = r {
            self.note(format!("the destination does not keep times ({err})"));
        }
    }

    fn progress(&mut self, force: bool) {
        if !self.progress {
            return;
        }
        let due = self
            .last_progress
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if due || force {
            eprint!(
                "\rextracting: {} files, {} MiB{}",
                self.files,
                self.bytes >> 20,
                if force { "\n" } else { "" }
            );
            self.last_progress = Some(Instant::now());
        }
    }

    fn extract(&mut self, b: &mut dyn Browser, path: &str, e: &Entry, dest: &Path) {
        match e.kind {
            EntryKind::Dir => {
                if let Err(err) = std::fs::create_dir_all(dest) {
                    self.fail(path, format!("creating {}: {err}", dest.display()));
                    return;
                }
                self.dirs += 1;
                let children = match b.read_dir(path) {
                    Ok(c) => c,
                    Err(err) => {
                        self.fail(path, err);
                        return;
                    }
                };
                for c in &children {
                    let child = format!("{}/{}", path.trim_end_matches('/'), c.name);
                    if c.name.contains('/') || c.name == "." || c.name == ".." || c.name.is_empty()
                    {
                        self.fail(&child, "unsafe file name");
                        continue;
                    }
                    self.extract(b, &child, c, &dest.join(&c.name));
                }
                self.apply_attrs(dest, e);
                self.apply_times(dest, e);
            }
            EntryKind::File => {
                let mut opts = OpenOptions::new();
                opts.write(true);
                if self.overwrite {
                    opts.create(true).truncate(true);
                } else {
                    opts.create_new(true);
                }
                let file = match opts.open(dest) {
                    Ok(f) => f,
                    Err(err) => {
                        self.fail(path, format!("creating {}: {err}", dest.display()));
                        return;
                    }
                };
                let mut out = SparseFile { file, pos: 0 };
                match b.read_file(path, &mut out) {
                    Ok(n) => {
                        if let Err(err) = out.file.set_len(out.pos).and_then(|()| out.file.flush())
                        {
                            self.fail(path, format!("writing {}: {err}", dest.display()));
                            return;
                        }
                        drop(out);
                        self.files += 1;
                        self.bytes += n;
                        self.apply_attrs(dest, e);
                        self.apply_times(dest, e);
                        self.progress(false);
                    }
                    Err(err) => {
                        drop(out);
                        let _ = std::fs::remove_file(dest);
                        self.fail(path, err);
                    }
                }
            }
            EntryKind::Symlink => {
                let target = match b.read_link(path) {
                    Ok(t) => t,
                    Err(err) => {
                        self.fail(path, err);
                        return;
                    }
                };
                if self.overwrite && dest.symlink_metadata().is_ok() {
                    let _ = std::fs::remove_file(dest);
                }
                if let Err(err) = std::os::unix::fs::symlink(&target, dest) {
                    if err.kind() == std::io::ErrorKind::AlreadyExists {
                        self.fail(path, format!("{} exists (use --overwrite)", dest.display()));
                    } else {
                        self.note(format!("the destination does not keep symlinks ({err})"));
                        self.fail(path, format!("creating symlink {}: {err}", dest.display()));
                    }
                    return;
                }
                self.symlinks += 1;
                self.apply_attrs(dest, e);
                if let Some(m) = e.mtime {
                    let spec = nix::sys::time::TimeSpec::new(m.secs, i64::from(m.nanos));
                    let a = e.atime.map_or(spec, |a| {
                        nix::sys::time::TimeSpec::new(a.secs, i64::from(a.nanos))
                    });
                    let _ = nix::sys::stat::utimensat(
                        nix::fcntl::AT_FDCWD,
                        dest,
                        &a,
                        &spec,
                        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                    );
                }
            }
            EntryKind::Other => self.fail(path, "not a file, folder or symlink: skipped"),
        }
    }
}

/// `lifeboat extract IMAGE PATH... --to DIR`.
pub fn extract(
    image: &Path,
    paths: &[String],
    to: &Path,
    part: Option<u32>,
    overwrite: bool,
    json: bool,
) -> Result<u8> {
    let started = Instant::now();
    let mut src = open_source(image, part)?;
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut job = Extract {
        overwrite,
        is_root: nix::unistd::geteuid().is_root(),
        progress: !json && std::io::stderr().is_terminal(),
        ..Extract::default()
    };
    for p in paths {
        let path = if p.starts_with('/') {
            p.clone()
        } else {
            format!("/{p}")
        };
        let md = match src.browser.metadata(&path) {
            Ok(md) => md,
            Err(err) => {
                job.fail(&path, err);
                continue;
            }
        };
        let dest: PathBuf = match path.trim_end_matches('/').rsplit('/').next() {
            Some(name) if !name.is_empty() => to.join(name),
            _ => to.to_path_buf(),
        };
        job.extract(src.browser.as_mut(), &path, &md, &dest);
    }
    job.progress(true);
    let image_bytes_read = src.image.as_ref().map(|r| r.bytes_read());
    let seconds = started.elapsed().as_secs_f64();
    if json {
        let v = serde_json::json!({
            "extracted_files": job.files,
            "extracted_dirs": job.dirs,
            "extracted_symlinks": job.symlinks,
            "extracted_bytes": job.bytes,
            "failed": job.failed,
            "notes": job.notes,
            "image_bytes_read": image_bytes_read,
            "seconds": seconds,
        });
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        let mut text = format!(
            "extracted {} files ({} bytes), {} folders, {} symlinks into {}\n",
            job.files,
            job.bytes,
            job.dirs,
            job.symlinks,
            to.display()
        );
        for n in &job.notes {
            text.push_str(&format!("note: {n}\n"));
        }
        for f in &job.failed {
            text.push_str(&format!("failed: {}: {}\n", f.path, f.error));
        }
        crate::emit(&text)?;
    }
    if job.failed.is_empty() {
        Ok(0)
    } else {
        eprintln!(
            "lifeboat: {} of the requested objects failed",
            job.failed.len()
        );
        Ok(crate::exit::FAILURE)
    }
}
