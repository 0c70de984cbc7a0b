//! [`FileDisk`]: the [`BlockIo`] seam over regular files (disk images) and block devices, and
//! [`WriteConsent`], the proof that a user agreed to have a target overwritten.

use crate::blockio::{check_range, BlockIo};
use crate::DevNum;
use nix::errno::Errno;
use nix::fcntl::{fallocate, FallocateFlags};
use nix::libc;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The block-layer ioctls this crate issues (`<linux/fs.h>`).
mod ioctl {
    use nix::libc;
    // `_IOR(0x12, 114, size_t)`: the size of `size_t` is part of the request number.
    nix::ioctl_read_bad!(
        blk_getsize64,
        nix::request_code_read!(0x12, 114, std::mem::size_of::<usize>()),
        u64
    );
    nix::ioctl_read_bad!(blk_sszget, nix::request_code_none!(0x12, 104), libc::c_int);
    nix::ioctl_read_bad!(
        blk_pbszget,
        nix::request_code_none!(0x12, 123),
        libc::c_uint
    );
    nix::ioctl_none_bad!(blk_rrpart, nix::request_code_none!(0x12, 95));
    nix::ioctl_write_ptr_bad!(blk_discard, nix::request_code_none!(0x12, 119), [u64; 2]);
}

/// Why a [`FileDisk`] could not be opened or could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The path could not be examined or opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file or device.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// The kernel refused an exclusive open: a file system, swap, RAID, LVM or another program
    /// holds the device or one of its partitions.
    #[error("{path} is in use (mounted or held)")]
    InUse {
        /// The block device.
        path: PathBuf,
    },
    /// Only regular files and block devices can be read and written as disks.
    #[error("{path} is neither a regular file nor a block device")]
    NotADisk {
        /// The path.
        path: PathBuf,
    },
    /// The path was replaced by something else between examining and opening it.
    #[error("{path} changed while it was being opened")]
    Changed {
        /// The path.
        path: PathBuf,
    },
    /// A [`WriteConsent`] was presented for a different target.
    #[error("refusing to open {path} for writing: the confirmation was given for {confirmed}")]
    ConsentMismatch {
        /// The path that was to be opened.
        path: PathBuf,
        /// The target the user confirmed.
        confirmed: PathBuf,
    },
    /// The file to be created exists already.
    #[error("cannot create {path}: it exists already")]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// A sector size that is not a power of two between 512 and 65536, or that contradicts what
    /// the kernel reports for a block device.
    #[error("invalid sector size for {path}: logical {logical}, physical {physical}")]
    SectorSize {
        /// The file or device.
        path: PathBuf,
        /// Requested logical sector size.
        logical: u32,
        /// Requested physical sector size.
        physical: u32,
    },
    /// The operation exists only for block devices.
    #[error("{path} is not a block device: cannot {operation}")]
    NotBlockDevice {
        /// The path.
        path: PathBuf,
        /// What was attempted.
        operation: &'static str,
    },
    /// `BLKRRPART` failed with `EBUSY`: a partition of the disk is mounted or open, so the kernel
    /// kept its old view of the partition table. Adding/removing partitions one by one (`BLKPG`)
    /// may still work.
    #[error("the kernel cannot re-read the partition table of {path}: a partition is in use")]
    PartitionTableBusy {
        /// The block device.
        path: PathBuf,
    },
    /// A block-layer ioctl failed.
    #[error("{request} on {path} failed: {source}")]
    Ioctl {
        /// The block device.
        path: PathBuf,
        /// The ioctl, e.g. `BLKGETSIZE64`.
        request: &'static str,
        /// What the kernel said.
        source: Errno,
    },
}

/// How a [`WriteConsent`] was obtained; logged with every writable open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// The user was shown the target and confirmed interactively.
    Interactive,
    /// The user passed `--yes` (or a job file said so), agreeing in advance.
    YesFlag,
}

/// Proof that overwriting one target was agreed to. [`FileDisk::open_write`] and
/// [`FileDisk::create_file`] require one, and it only opens the target it names.
///
/// Create it only at the two places where a user really agreed:
/// - [`WriteConsent::confirmed_by_user`] after a confirmation screen or prompt that showed the
///   target's path and [`identity`](crate::BlockDevice::identity);
/// - [`WriteConsent::from_yes_flag`] when the command line carries `--yes` (or an unattended job
///   file names the target), which is the user agreeing in advance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteConsent {
    target: PathBuf,
    identity: String,
    source: ConsentSource,
}

impl WriteConsent {
    /// The user was shown `target` described as `identity` (e.g. model, serial and size) and
    /// confirmed that it may be overwritten.
    pub fn confirmed_by_user(target: impl AsRef<Path>, identity: impl Into<String>) -> Self {
        WriteConsent {
            target: target.as_ref().to_path_buf(),
            identity: identity.into(),
            source: ConsentSource::Interactive,
        }
    }

    /// The user ran the command with `--yes` naming `target` (described as `identity`), or an
    /// unattended job file names it: no question is asked.
    pub fn from_yes_flag(target: impl AsRef<Path>, identity: impl Into<String>) -> Self {
        WriteConsent {
            target: target.as_ref().to_path_buf(),
            identity: identity.into(),
            source: ConsentSource::YesFlag,
        }
    }

    /// The path the consent covers.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The description the user saw.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How the consent was obtained.
    pub fn source(&self) -> ConsentSource {
        self.source
    }

    /// True when the consent covers `path`: the same path, or a path resolving to the same file
    /// (e.g. `/dev/disk/by-id/...` for `/dev/sda`).
    fn covers(&self, path: &Path) -> bool {
        if self.target == path {
            return true;
        }
        match (
            std::fs::canonicalize(&self.target),
            std::fs::canonicalize(path),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// What a [`FileDisk`] reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectId {
    /// A block device with this device number.
    Block(DevNum),
    /// A regular file: the device and inode numbers of the file system entry.
    File {
        /// `st_dev` of the file.
        dev: u64,
        /// `st_ino` of the file.
        ino: u64,
    },
}

/// A disk image file or a block device, read and written with `pread`/`pwrite`.
///
/// The size and sector sizes are fixed when it is opened: `BLKGETSIZE64`, `BLKSSZGET` and
/// `BLKPBSZGET` for block devices; the file length and 512/512 (or what
/// [`with_sector_size`](FileDisk::with_sector_size) sets) for files. Reads and writes past the end
/// fail with [`io::ErrorKind::UnexpectedEof`]. Errors from the kernel are passed on unchanged, so
/// that [`is_media_error`](crate::is_media_error) recognizes bad sectors.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    path: PathBuf,
    id: ObjectId,
    len: u64,
    logical: u32,
    physical: u32,
    writable: bool,
}

/// Default sector size of image files.
const FILE_SECTOR: u32 = 512;

impl FileDisk {
    /// Opens a file or block device read-only. Sources are always opened this way.
    pub fn open_read(path: impl AsRef<Path>) -> Result<Self, DiskError> {
        Self::open(path.as_ref(), false)
    }

    /// Opens a file or block device for reading and writing. A block device is opened with
    /// `O_EXCL`, so the kernel refuses ([`DiskError::InUse`]) while it or one of its partitions
    /// is mounted, used as swap, or part of a RAID/LVM/dm device. Files are not truncated.
    pub fn open_write(path: impl AsRef<Path>, consent: &WriteConsent) -> Result<Self, DiskError> {
        let path = path.as_ref();
        if !consent.covers(path) {
            return Err(DiskError::ConsentMismatch {
                path: path.to_path_buf(),
                confirmed: consent.target.clone(),
            });
        }
        log::info!(
            "opening {} for writing ({}, {:?})",
            path.display(),
            consent.identity,
            consent.source
        );
        Self::open(path, true)
    }

    /// Creates a new image file of `len` bytes (sparse, reads as zeros) and opens it for writing.
    /// Fails with [`DiskError::Exists`] when the path exists: existing targets go through
    /// [`open_write`](FileDisk::open_write).
    pub fn create_file(
        path: impl AsRef<Path>,
        len: u64,
        consent: &WriteConsent,
    ) -> Result<Self, DiskError> {
        let path = path.as_ref();
        if consent.target != path {
            return Err(DiskError::ConsentMismatch {
                path: path.to_path_buf(),
                confirmed: consent.target.clone(),
            });
        }
        let open_err = |source| DiskError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(DiskError::Exists {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(open_err(e)),
        };
        log::info!(
            "created {} ({len} bytes) for writing ({:?})",
            path.display(),
            consent.source
        );
        file.set_len(len).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        Ok(FileDisk {
            file,
            path: path.to_path_buf(),
            id: ObjectId::File {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            len,
            logical: FILE_SECTOR,
            physical: FILE_SECTOR,
            writable: true,
        })
    }

    fn open(path: &Path, write: bool) -> Result<Self, DiskError> {
        let open_err = |source| DiskError::Open {
            path: path.to_path_buf(),
            source,
        };
        let before = std::fs::metadata(path).map_err(open_err)?;
        let is_block = before.file_type().is_block_device();
        if !is_block && !before.file_type().is_file() {
            return Err(DiskError::NotADisk {
                path: path.to_path_buf(),
            });
        }
        let mut opts = OpenOptions::new();
        opts.read(true);
        if write {
            opts.write(true);
            if is_block {
                // Without O_CREAT, O_EXCL on a block device asks for an exclusive claim.
                opts.custom_flags(libc::O_EXCL);
            }
        }
        let file = match opts.open(path) {
            Ok(f) => f,
            Err(e) if is_block && e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(DiskError::InUse {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(open_err(e)),
        };
        let meta = file.metadata().map_err(open_err)?;
        let same = if is_block {
            meta.file_type().is_block_device() && meta.rdev() == before.rdev()
        } else {
            meta.file_type().is_file() && meta.ino() == before.ino() && meta.dev() == before.dev()
        };
        if !same {
            return Err(DiskError::Changed {
                path: path.to_path_buf(),
            });
        }
        let mut disk = FileDisk {
            file,
            path: path.to_path_buf(),
            id: ObjectId::File {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            len: meta.len(),
            logical: FILE_SECTOR,
            physical: FILE_SECTOR,
            writable: write,
        };
        if is_block {
            disk.id = ObjectId::Block(DevNum::from_dev_t(meta.rdev()));
            disk.len = block_size64(&disk.file)
                .map_err(|source| disk.ioctl_err("BLKGETSIZE64", source))?;
            disk.logical =
                logical_sector(&disk.file).map_err(|source| disk.ioctl_err("BLKSSZGET", source))?;
            disk.physical = match physical_sector(&disk.file) {
                Ok(p) if p >= disk.logical => p,
                Ok(p) => {
                    log::warn!(
                        "{}: physical sector size {p} is below logical; using logical",
                        path.display()
                    );
                    disk.logical
                }
                Err(e) => {
                    log::warn!(
                        "{}: BLKPBSZGET failed ({e}); using the logical sector size",
                        path.display()
                    );
                    disk.logical
                }
            };
        }
        log::debug!(
            "opened {} {} ({} bytes, sectors {}/{})",
            path.display(),
            if write { "read-write" } else { "read-only" },
            disk.len,
            disk.logical,
            disk.physical
        );
        Ok(disk)
    }

    /// Sets the sector sizes of an image file (e.g. 4096/4096 for an image of a 4Kn disk).
    /// Both must be powers of two from 512 to 65536, physical not below logical. A block device
    /// keeps what the kernel reports: asking it for anything else is an error.
    pub fn with_sector_size(mut self, logical: u32, physical: u32) -> Result<Self, DiskError> {
        let valid = |s: u32| s.is_power_of_two() && (512..=65536).contains(&s);
        let ok = valid(logical) && valid(physical) && physical >= logical;
        let block_mismatch =
            self.is_block_device() && (logical != self.logical || physical != self.physical);
        if !ok || block_mismatch {
            return Err(DiskError::SectorSize {
                path: self.path.clone(),
                logical,
                physical,
            });
        }
        self.logical = logical;
        self.physical = physical;
        Ok(self)
    }

    /// The path it was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True for a block device, false for a regular file.
    pub fn is_block_device(&self) -> bool {
        matches!(self.id, ObjectId::Block(_))
    }

    /// True when opened for writing.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// What is open: compare two of these to refuse copying a disk onto itself.
    pub fn object_id(&self) -> ObjectId {
        self.id
    }

    /// The device number of a block device (to match it with a discovered
    /// [`BlockDevice`](crate::BlockDevice)).
    pub fn dev_num(&self) -> Option<DevNum> {
        match self.id {
            ObjectId::Block(d) => Some(d),
            ObjectId::File { .. } => None,
        }
    }

    /// Asks the kernel to re-read the partition table of a whole-disk block device
    /// (`BLKRRPART`). [`DiskError::PartitionTableBusy`] when a partition is in use.
    pub fn reread_partitions(&self) -> Result<(), DiskError> {
        if !self.is_block_device() {
            return Err(DiskError::NotBlockDevice {
                path: self.path.clone(),
                operation: "re-read the partition table",
            });
        }
        // SAFETY: BLKRRPART takes no argument; the descriptor is open for the call's duration.
        match unsafe { ioctl::blk_rrpart(self.file.as_raw_fd()) } {
            Ok(_) => {
                log::info!(
                    "{}: kernel re-read the partition table",
                    self.path.display()
                );
                Ok(())
            }
            Err(Errno::EBUSY) => Err(DiskError::PartitionTableBusy {
                path: self.path.clone(),
            }),
            Err(source) => Err(self.ioctl_err("BLKRRPART", source)),
        }
    }

    fn ioctl_err(&self, request: &'static str, source: Errno) -> DiskError {
        DiskError::Ioctl {
            path: self.path.clone(),
            request,
            source,
        }
    }

    fn refuse_read_only(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is open read-only", self.path.display()),
            ))
        }
    }
}

/// Size in bytes of the block device open as `file`, from `BLKGETSIZE64`.
pub(crate) fn block_size64(file: &File) -> Result<u64, Errno> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points to `size`.
    unsafe { ioctl::blk_getsize64(file.as_raw_fd(), &mut size) }?;
    Ok(size)
}

fn logical_sector(file: &File) -> Result<u32, Errno> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points to `size`.
    unsafe { ioctl::blk_sszget(file.as_raw_fd(), &mut size) }?;
    u32::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two() && *s >= 512)
        .ok_or(Errno::EINVAL)
}

fn physical_sector(file: &File) -> Result<u32, Errno> {
    let mut size: libc::c_uint = 0;
    // SAFETY: BLKPBSZGET writes one unsigned int through the pointer, which points to `size`.
    unsafe { ioctl::blk_pbszget(file.as_raw_fd(), &mut size) }?;
    Some(size)
        .filter(|s| s.is_power_of_two() && *s >= 512)
        .ok_or(Errno::EINVAL)
}

impl BlockIo for FileDisk {
    fn len(&self) -> u64 {
        self.len
    }

    fn logical_sector_size(&self) -> u32 {
        self.logical
    }

    fn physical_sector_size(&self) -> u32 {
        self.physical
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(
            self.len,
            offset,
            buf.len(),
            &self.path.display().to_string(),
        )?;
        let mut done = 0usize;
        while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
            match self.file.read_at(rest, offset + done as u64) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: unexpected end of data at byte {}",
                            self.path.display(),
                            offset + done as u64
                        ),
                    ))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.refuse_read_only()?;
        check_range(
            self.len,
            offset,
            buf.len(),
            &self.path.display().to_string(),
        )?;
        let mut done = 0usize;
        while let Some(rest) = buf.get(done..).filter(|r| !r.is_empty()) {
            match self.file.write_at(rest, offset + done as u64) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!(
                            "{}: no progress writing at byte {}",
                            self.path.display(),
                            offset + done as u64
                        ),
                    ))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `fsync`: for a block device this also flushes the drive's write cache.
    fn flush(&self) -> io::Result<()> {
        if self.writable {
            self.file.sync_all()
        } else {
            Ok(())
        }
    }

    /// Files: punches a hole (`FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`), which then reads as
    /// zeros. Block devices: `BLKDISCARD` over the whole logical sectors inside the range (the
    /// partial sectors at its edges are left alone); what discarded sectors read back as depends
    /// on the device. `Ok(false)` when the file system or device does not support it.
    fn discard(&self, offset: u64, len: u64) -> io::Result<bool> {
        self.refuse_read_only()?;
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= self.len)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: range {offset}+{len} is past the end ({} bytes)",
                        self.path.display(),
                        self.len
                    ),
                )
            })?;
        if len == 0 {
            return Ok(true);
        }
        let unsupported = |e: Errno| matches!(e, Errno::EOPNOTSUPP | Errno::ENOTTY | Errno::ENOSYS);
        if self.is_block_device() {
            let sector = u64::from(self.logical);
            let start = offset.div_ceil(sector) * sector;
            let stop = end / sector * sector;
            if stop <= start {
                return Ok(true);
            }
            let range = [start, stop - start];
            // SAFETY: BLKDISCARD reads two u64 (start, length) through the pointer to `range`.
            match unsafe { ioctl::blk_discard(self.file.as_raw_fd(), &range) } {
                Ok(_) => Ok(true),
                Err(e) if unsupported(e) => Ok(false),
                Err(e) => Err(io::Error::from(e)),
            }
        } else {
            let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "discard range too large");
            let off = i64::try_from(offset).map_err(|_| too_big())?;
            let n = i64::try_from(len).map_err(|_| too_big())?;
            let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
            match fallocate(&self.file, mode, off, n) {
                Ok(()) => Ok(true),
                Err(e) if unsupported(e) => Ok(false),
                Err(e) => Err(io::Error::from(e)),
            }
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
