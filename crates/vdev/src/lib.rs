//! The virtual block device: any [`disk::BlockIo`] served, read-only, as a single regular file
//! through FUSE, so that a loop device over that file ([`disk::loopdev`]) gives the kernel a
//! block device it can mount, check or copy.
//!
//! This crate knows nothing about images, partition tables or file systems: `cli` (through
//! `engine`) hands it the stream of an image (a `StreamReader`, which reads chunks on demand
//! through its cache), and the loop device, the mount and the bookkeeping happen there.
//!
//! Invariants:
//! - Read-only unless asked: [`mount`] mounts the FUSE file system `ro` with the file's mode
//!   `0400`; opening it for writing, truncating it or changing its attributes fails with `EROFS`,
//!   and [`disk::BlockIo::write_at`] is never called. Only [`mount_writable`] (used with an
//!   [`Overlay`] by the shrinking restore and clone) passes writes through, at the same offsets;
//!   the file's size never changes.
//! - Every byte the kernel reads comes from [`disk::BlockIo::read_at`] of the served device at
//!   the same offset; reads past the end are cut at the end (a short read, as for a file). A
//!   read the device cannot do (a damaged chunk) fails with `EIO` for that request alone: the
//!   server goes on, and other ranges stay readable.
//! - The mount point is a regular file (the FUSE root takes its mode), so the served device is
//!   a file of exactly `len()` bytes that any tool opens by path.
//! - Mounting goes through `/dev/fuse` and `mount(2)` (as root; `fuser` without libfuse), so it
//!   works in the static boot image; the session ends when the file is unmounted
//!   ([`unmount`]), and dropping a [`Background`] unmounts it too.

use disk::BlockIo;
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, KernelConfig,
    LockOwner, MountOption, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyEmpty, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, SessionACL, WriteFlags,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long the kernel may cache the file's attributes (they never change).
const TTL: Duration = Duration::from_secs(3600);

/// Largest read or write the kernel is asked to send in one request (the kernel's own limit is
/// 256 pages: 1 MiB).
const MAX_READ: u32 = 1 << 20;

/// Read-ahead of a file served read-write, in KiB: tools read devices in 4 KiB pieces
/// (ntfsresize, e2fsck), so the kernel is asked to fetch whole 1 MiB requests ahead of them.
const READ_AHEAD_KB: u32 = 1024;

/// Why the device could not be served.
#[derive(Debug, thiserror::Error)]
pub enum VdevError {
    #[error("{file}: the mount point must be an existing regular file: {detail}")]
    MountPoint { file: PathBuf, detail: String },
    #[error("serving {name} at {file} through FUSE: {source}")]
    Fuse {
        name: String,
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("unmounting the served file {file}: {source}")]
    Unmount { file: PathBuf, source: nix::Error },
    #[error("{name} at {file}: {count} writes failed, the first: {first}")]
    WritesFailed {
        name: String,
        file: PathBuf,
        count: u64,
        first: String,
    },
}

mod overlay;
mod scoped;

pub use overlay::{Overlay, OverlayLimits};
pub use scoped::serve_scoped;

/// What a server did, counted as it answers (shared with the [`Background`] handle).
#[derive(Debug, Default)]
pub struct Counters {
    reads: AtomicU64,
    read_bytes: AtomicU64,
    writes: AtomicU64,
    write_bytes: AtomicU64,
    failed_writes: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

impl Counters {
    /// Read requests answered so far, and their bytes.
    pub fn reads(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.read_bytes.load(Ordering::Relaxed),
        )
    }

    /// Write requests answered so far, and their bytes.
    pub fn writes(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.write_bytes.load(Ordering::Relaxed),
        )
    }

    /// Write requests that failed, and the first failure's message.
    pub fn failed_writes(&self) -> (u64, Option<String>) {
        (
            self.failed_writes.load(Ordering::Relaxed),
            self.first_failure.lock().ok().and_then(|f| f.clone()),
        )
    }

    fn write_failed(&self, what: String) {
        self.failed_writes.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first_failure.lock() {
            f.get_or_insert(what);
        }
    }
}

/// The FUSE file system: one regular file (the root inode) holding the device's bytes.
struct DeviceFile {
    io: Arc<dyn BlockIo>,
    name: String,
    attr: FileAttr,
    writable: bool,
    counters: Arc<Counters>,
    /// Whether the read-ahead of the file's backing device was raised (on the first open: by
    /// then the kernel has applied the INIT reply, which would lower it again).
    read_ahead_set: std::sync::atomic::AtomicBool,
    file: PathBuf,
}

impl DeviceFile {
    fn new(io: Arc<dyn BlockIo>, name: &str, writable: bool, file: &Path) -> Self {
        let now = SystemTime::now();
        let len = io.len();
        let attr = FileAttr {
            ino: INodeNo::ROOT,
            size: len,
            blocks: len.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind: FileType::RegularFile,
            perm: if writable { 0o600 } else { 0o400 },
            nlink: 1,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            rdev: 0,
            blksize: io.physical_sector_size().max(512),
            flags: 0,
        };
        DeviceFile {
            io,
            name: name.to_string(),
            attr,
            writable,
            counters: Arc::new(Counters::default()),
            read_ahead_set: std::sync::atomic::AtomicBool::new(false),
            file: file.to_path_buf(),
        }
    }
}

/// The bytes of `io` at `offset`, at most `size` of them (fewer at the end).
fn read_range(io: &dyn BlockIo, offset: u64, size: u32) -> std::io::Result<Vec<u8>> {
    let len = io.len();
    if offset >= len {
        return Ok(Vec::new());
    }
    let n = u64::from(size.min(MAX_READ)).min(len - offset);
    let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
    io.read_at(&mut buf, offset)?;
    Ok(buf)
}

impl Filesystem for DeviceFile {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // fuser already asks for asynchronous reads, big writes and 256-page requests.
        let _ = config.set_max_write(MAX_READ);
        if let Err(most) = config.set_max_readahead(MAX_READ) {
            let _ = config.set_max_readahead(most);
        }
        let _ = config.set_max_background(64);
        if self.writable {
            // Tools write devices in 4 KiB pieces (ntfsresize: one per cluster); through the
            // page cache the kernel sends them as large writes, at the latest on fsync, close
            // and unmount (all of which wait for them). Only this server changes the file, so
            // the kernel's cached view stays true. A write the device refuses is counted and
            // fails the whole serving (`Background::stop`), as it may reach the server after
            // the tool's own write call returned.
            let _ = config.add_capabilities(fuser::InitFlags::FUSE_WRITEBACK_CACHE);
        }
        Ok(())
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == INodeNo::ROOT {
            reply.attr(&TTL, &self.attr);
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if !self.writable {
            reply.error(Errno::EROFS);
        } else if size.is_some_and(|s| s != self.attr.size) {
            // A device does not change size.
            reply.error(Errno::EPERM);
        } else {
            reply.attr(&TTL, &self.attr);
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if ino != INodeNo::ROOT {
            reply.error(Errno::ENOENT);
        } else if !self.writable
            && (flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc_o_trunc() != 0)
        {
            reply.error(Errno::EROFS);
        } else {
            // Only for the tools working on a read-write device: a read-only file may sit on a
            // network store (`store::http`), where every byte read ahead is fetched.
            if self.writable && !self.read_ahead_set.swap(true, Ordering::Relaxed) {
                raise_read_ahead(&self.file);
            }
            // Only this server changes the bytes: the kernel may keep what it cached between
            // opens.
            reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match read_range(self.io.as_ref(), offset, size) {
            Ok(data) => {
                self.counters.reads.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .read_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                reply.data(&data)
            }
            Err(e) => {
                log::error!("{}: reading {size} bytes at {offset}: {e}", self.name);
                reply.error(Errno::EIO);
            }
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if !self.writable {
            reply.error(Errno::EROFS);
            return;
        }
        let fits = offset
            .checked_add(data.len() as u64)
            .is_some_and(|end| end <= self.attr.size);
        if !fits {
            self.counters.write_failed(format!(
                "{} bytes at {offset} lie beyond the end ({} bytes)",
                data.len(),
                self.attr.size
            ));
            reply.error(Errno::ENOSPC);
            return;
        }
        match self.io.write_at(data, offset) {
            Ok(()) => {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .write_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX))
            }
            Err(e) => {
                let what = format!("writing {} bytes at {offset}: {e}", data.len());
                log::error!("{}: {what}", self.name);
                self.counters.write_failed(what);
                reply.error(if e.kind() == std::io::ErrorKind::StorageFull {
                    Errno::ENOSPC
                } else {
                    Errno::EIO
                });
            }
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.sync(reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(reply);
    }

    // Tools probe a file with ioctls (BLKGETSIZE64, FS_IOC_GETFLAGS, ...) and capabilities:
    // answer "not a device" and "no attributes" quietly (a regular file's answers).
    #[allow(clippy::too_many_arguments)]
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &std::ffi::OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        reply.error(Errno::NO_XATTR);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        if !self.writable && mask.contains(fuser::AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else {
            reply.ok();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        // Discard and preallocation requests (mke2fs, resize2fs) are not passed on.
        reply.error(Errno::EOPNOTSUPP);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.size(0);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.attr.size.div_ceil(512);
        reply.statfs(blocks, 0, 0, 1, 0, 512, 255, 512);
    }
}

impl DeviceFile {
    fn sync(&self, reply: ReplyEmpty) {
        if !self.writable {
            reply.ok();
            return;
        }
        match self.io.flush() {
            Ok(()) => reply.ok(),
            Err(e) => {
                log::error!("{}: flushing: {e}", self.name);
                reply.error(Errno::EIO);
            }
        }
    }
}

/// Sets the read-ahead of the FUSE file system mounted at `file` (its backing device info,
/// `/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`, the numbers from `/proc/self/mountinfo`: a
/// `stat` of the file would be a request to this very server) to [`READ_AHEAD_KB`]. Only a
/// speed-up: a failure is logged and ignored.
fn raise_read_ahead(file: &Path) {
    let Some(dev) = mount_device_number(file) else {
        log::debug!(
            "{}: no mount table entry, read-ahead not raised",
            file.display()
        );
        return;
    };
    let knob = PathBuf::from(format!("/sys/class/bdi/{dev}/read_ahead_kb"));
    if let Err(e) = std::fs::write(&knob, READ_AHEAD_KB.to_string()) {
        log::debug!("{}: read-ahead not raised: {e}", knob.display());
    }
}

/// The `MAJOR:MINOR` of the file system mounted at `point` (the last such mount).
fn mount_device_number(point: &Path) -> Option<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = point.to_str()?;
    table.lines().rev().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        let at = f.nth(1)?;
        (unescape_mountinfo(at) == want).then(|| dev.to_string())
    })
}

/// Aborts the FUSE connection `MAJOR:MINOR` (its serving threads then end) through the FUSE
/// control file system, mounting it at `/sys/fs/fuse/connections` when it is not there.
fn abort_connection(dev: &str) {
    let Some(minor) = dev.split(':').nth(1) else {
        return;
    };
    let dir = Path::new("/sys/fs/fuse/connections");
    let abort = dir.join(minor).join("abort");
    if !abort.exists() {
        if let Err(e) = nix::mount::mount(
            Some("fusectl"),
            dir,
            Some("fusectl"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        ) {
            log::warn!(
                "mounting the FUSE control file system at {}: {e}",
                dir.display()
            );
        }
    }
    if let Err(e) = std::fs::write(&abort, "1") {
        log::warn!("{}: {e}", abort.display());
    }
}

/// A mount point as `/proc/self/mountinfo` writes it, with `\040`-style escapes undone.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn libc_o_trunc() -> i32 {
    nix::fcntl::OFlag::O_TRUNC.bits()
}

/// A device mounted at its file, not yet answering requests: [`Server::run`] serves it in the
/// calling thread, [`Server::spawn`] in a background thread.
pub struct Server {
    session: fuser::Session<DeviceFile>,
    file: PathBuf,
    name: String,
    counters: Arc<Counters>,
    /// The device's length when served read-write (see [`Server::spawn`]).
    writable_len: Option<u64>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("file", &self.file).finish()
    }
}

/// Mounts `io` read-only at the existing regular file `file` (as root). `name` names the device
/// in messages and in the mount table (`lifeboat:NAME`).
pub fn mount(io: Arc<dyn BlockIo>, file: &Path, name: &str) -> Result<Server, VdevError> {
    mount_with(io, file, name, false)
}

/// Mounts `io` read-write at the existing regular file `file` (as root): writes to the file are
/// [`BlockIo::write_at`] at the same offset, `fsync` is [`BlockIo::flush`]. For devices whose
/// writes are meant to land somewhere (an [`Overlay`]), never for an image's stream.
pub fn mount_writable(io: Arc<dyn BlockIo>, file: &Path, name: &str) -> Result<Server, VdevError> {
    mount_with(io, file, name, true)
}

fn mount_with(
    io: Arc<dyn BlockIo>,
    file: &Path,
    name: &str,
    writable: bool,
) -> Result<Server, VdevError> {
    match std::fs::symlink_metadata(file) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(_) => {
            return Err(VdevError::MountPoint {
                file: file.to_path_buf(),
                detail: "it is not a regular file".into(),
            })
        }
        Err(e) => {
            return Err(VdevError::MountPoint {
                file: file.to_path_buf(),
                detail: e.to_string(),
            })
        }
    }
    let mut config = Config::default();
    config.mount_options = vec![
        if writable {
            MountOption::RW
        } else {
            MountOption::RO
        },
        MountOption::NoExec,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::FSName(format!("lifeboat:{}", printable_name(name))),
        MountOption::Subtype("lifeboat".into()),
    ];
    config.acl = SessionACL::Owner;
    config.n_threads = Some(2);
    let len = io.len();
    let device = DeviceFile::new(io, name, writable, file);
    let counters = Arc::clone(&device.counters);
    let session = fuser::Session::new(device, file, &config).map_err(|source| VdevError::Fuse {
        name: name.to_string(),
        file: file.to_path_buf(),
        source,
    })?;
    log::info!(
        "serving {name} {} at {}",
        if writable { "read-write" } else { "read-only" },
        file.display()
    );
    Ok(Server {
        session,
        file: file.to_path_buf(),
        name: name.to_string(),
        counters,
        writable_len: writable.then_some(len),
    })
}

/// A name safe inside a mount option list (no commas, spaces or control characters).
fn printable_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != ',' {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect()
}

impl Server {
    /// The served file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Answers requests in this thread until the file is unmounted.
    pub fn run(self) -> Result<(), VdevError> {
        let file = self.file.clone();
        self.session.run().map_err(|source| VdevError::Fuse {
            name: String::new(),
            file,
            source,
        })
    }

    /// Answers requests in a background thread until the file is unmounted or the returned
    /// handle is dropped.
    pub fn spawn(self) -> Result<Background, VdevError> {
        let file = self.file.clone();
        let session = self.session.spawn().map_err(|source| VdevError::Fuse {
            name: String::new(),
            file: file.clone(),
            source,
        })?;
        let bg = Background {
            session,
            file,
            name: self.name,
            counters: self.counters,
            writable: self.writable_len.is_some(),
        };
        if let Some(len) = self.writable_len {
            // With the write-back cache the kernel keeps the file's size itself and never takes
            // it from the server again; the root inode was made with size 0 at mount time. A
            // truncate to the device's own length (which the server accepts) sets it.
            let sized = std::fs::OpenOptions::new()
                .write(true)
                .open(&bg.file)
                .and_then(|f| f.set_len(len));
            if let Err(source) = sized {
                let file = bg.file.clone();
                let _ = bg.stop();
                return Err(VdevError::Fuse {
                    name: String::new(),
                    file,
                    source,
                });
            }
        }
        Ok(bg)
    }
}

/// A device served in a background thread; dropping it unmounts the file.
pub struct Background {
    session: fuser::BackgroundSession,
    file: PathBuf,
    name: String,
    counters: Arc<Counters>,
    writable: bool,
}

/// How long the serving thread may take to end after the file was unmounted before the FUSE
/// connection is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("file", &self.file)
            .finish()
    }
}

impl Background {
    /// What the server did so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Unmounts the file (the kernel first sends what it still caches) and waits for the
    /// serving thread to end. Fails when any write failed while serving: with the kernel's
    /// write-back cache a write can reach the device after the writer's call returned.
    ///
    /// A process that made a new mount namespace while the file was mounted (a sandboxed
    /// service, a container) holds a copy of the mount: unmounting ours then does not end the
    /// FUSE connection and the serving thread would wait for requests forever. When it has not
    /// ended [`STOP_GRACE`] after the unmount, the connection is aborted through the FUSE
    /// control file system (`/sys/fs/fuse/connections/N/abort`, mounted there when it is not);
    /// written data was sent before (the file is synced first).
    pub fn stop(self) -> Result<(), VdevError> {
        let file = self.file.clone();
        let counters = Arc::clone(&self.counters);
        let connection = mount_device_number(&file);
        if self.writable {
            // What the kernel still caches goes to the device now, while it is surely served.
            let synced = std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .and_then(|f| f.sync_all());
            if let Err(e) = synced {
                counters.write_failed(format!("syncing before the unmount: {e}"));
            }
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let session = self.session;
        let joiner = std::thread::spawn(move || {
            let out = session.umount_and_join();
            let _ = done_tx.send(());
            out
        });
        if done_rx.recv_timeout(STOP_GRACE).is_err() {
            log::warn!(
                "{}: the FUSE connection outlived the unmount of {} (another mount namespace                  holds it): aborting it",
                self.name,
                file.display()
            );
            if let Some(conn) = &connection {
                abort_connection(conn);
            }
            if done_rx.recv_timeout(STOP_GRACE * 2).is_err() {
                // Left running (detached): it holds nothing of the caller's but the device.
                return Err(VdevError::Fuse {
                    name: self.name,
                    file,
                    source: std::io::Error::other(
                        "the FUSE connection could not be ended after the unmount",
                    ),
                });
            }
        }
        joiner
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the FUSE thread panicked")))
            .map_err(|source| VdevError::Fuse {
                name: String::new(),
                file: file.clone(),
                source,
            })?;
        let (reads, read_bytes) = counters.reads();
        let (writes, write_bytes) = counters.writes();
        log::info!(
            "{}: served {reads} reads ({} KiB) and {writes} writes ({} KiB)",
            self.name,
            read_bytes >> 10,
            write_bytes >> 10
        );
        match counters.failed_writes() {
            (0, _) => Ok(()),
            (count, first) => Err(VdevError::WritesFailed {
                name: self.name,
                file,
                count,
                first: first.unwrap_or_default(),
            }),
        }
    }
}

/// Unmounts a served file (from any process, through `disk::mount::unmount`); the server
/// serving it then returns. Fails with
/// `EBUSY` while a loop device or an open descriptor still holds it.
pub fn unmount(file: &Path) -> Result<(), VdevError> {
    disk::mount::unmount(file).map_err(|e| VdevError::Unmount {
        file: file.to_path_buf(),
        source: match e {
            disk::mount::MountError::Unmount { source, .. } => source,
            _ => nix::Error::EIO,
        },
    })
}

#[cfg(test)]
mod tests;
