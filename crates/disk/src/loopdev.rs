//! Loop devices: a read-only block device over a file (`/dev/loopN`), the way a served image
//! becomes something the kernel can mount.
//!
//! [`attach_read_only`] takes a free device from `/dev/loop-control` (`LOOP_CTL_GET_FREE`) and
//! binds it to the file with `LOOP_CONFIGURE` (Linux 5.8+; `LOOP_SET_FD` + `LOOP_SET_STATUS64`
//! on older kernels), always with `LO_FLAGS_READ_ONLY` and `LO_FLAGS_AUTOCLEAR`: the device
//! refuses writes, and it detaches itself once nothing holds it any more (the file system on it
//! unmounted and the last descriptor closed). [`detach`] asks for that explicitly.
//! [`attach_writable`] is the same without `LO_FLAGS_READ_ONLY`, for `engine::shrink`, which
//! lets a file system's tool change a copy-on-write device.

use nix::errno::Errno;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// The loop ioctls (`<linux/loop.h>`; their numbers carry no size).
mod ioctl {
    nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);
    nix::ioctl_write_ptr_bad!(loop_configure, 0x4C0A, super::LoopConfig);
    nix::ioctl_write_int_bad!(loop_set_fd, 0x4C00);
    nix::ioctl_write_ptr_bad!(loop_set_status64, 0x4C04, super::LoopInfo64);
    nix::ioctl_none_bad!(loop_clr_fd, 0x4C01);
}

/// Why a loop device could not be set up or detached. Messages name the device and the file.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}: {source}")]
    Ioctl {
        path: PathBuf,
        what: &'static str,
        source: Errno,
    },
    #[error("no free loop device could be bound to {file} after {tries} tries")]
    NoneFree { file: PathBuf, tries: u32 },
}

fn open(path: &Path, write: bool) -> Result<File, LoopError> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|source| LoopError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn info_for(file: &Path, read_only: bool) -> LoopInfo64 {
    let mut info = LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: if read_only {
            LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR
        } else {
            LO_FLAGS_AUTOCLEAR
        },
        lo_file_name: [0; LO_NAME_SIZE],
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    };
    let name = file.as_os_str().as_encoded_bytes();
    let n = name.len().min(LO_NAME_SIZE - 1);
    if let (Some(dst), Some(src)) = (info.lo_file_name.get_mut(..n), name.get(..n)) {
        dst.copy_from_slice(src);
    }
    info
}

/// A bound loop device, held open: auto-clearing, it stays bound while this handle or anything
/// else (a mounted file system) holds it, and detaches itself when the last holder lets go.
#[derive(Debug)]
pub struct LoopDevice {
    node: PathBuf,
    _held: File,
}

impl LoopDevice {
    /// The device node (`/dev/loop3`).
    pub fn path(&self) -> &Path {
        &self.node
    }
}

/// Binds a free loop device to `file`, read-only and auto-clearing, with logical blocks of
/// `block_size` bytes (512 to 4096; anything else is left to the kernel's default of 512).
/// Mount what it holds before dropping the handle: a device nobody holds detaches at once.
pub fn attach_read_only(file: &Path, block_size: u32) -> Result<LoopDevice, LoopError> {
    attach(file, block_size, true)
}

/// Like [`attach_read_only`], but the device writes through to `file` (which must be writable):
/// for a tool that changes a file system on a copy-on-write device (`engine::shrink`).
pub fn attach_writable(file: &Path, block_size: u32) -> Result<LoopDevice, LoopError> {
    attach(file, block_size, false)
}

fn attach(file: &Path, block_size: u32, read_only: bool) -> Result<LoopDevice, LoopError> {
    let backing = open(file, !read_only)?;
    let control_path = Path::new("/dev/loop-control");
    let control = open(control_path, true)?;
    const TRIES: u32 = 16;
    for _ in 0..TRIES {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { ioctl::loop_ctl_get_free(control.as_raw_fd()) }.map_err(|source| {
            LoopError::Ioctl {
                path: control_path.to_path_buf(),
                what: "LOOP_CTL_GET_FREE",
                source,
            }
        })?;
        let node = PathBuf::from(format!("/dev/loop{n}"));
        // udev may not have made the node yet on a fresh device.
        let mut dev = None;
        for _ in 0..50 {
            // The device must be opened for writing too, or the kernel binds it read-only.
            match OpenOptions::new().read(true).write(!read_only).open(&node) {
                Ok(f) => {
                    dev = Some(f);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(source) => return Err(LoopError::Open { path: node, source }),
            }
        }
        let Some(dev) = dev else {
            return Err(LoopError::Open {
                path: node,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        };
        match bind(&dev, &backing, file, block_size, read_only) {
            Ok(()) => {
                log::info!(
                    "{} now reads {}{}",
                    node.display(),
                    file.display(),
                    if read_only { " (read-only)" } else { "" }
                );
                return Ok(LoopDevice { node, _held: dev });
            }
            // Another process took the device between the two calls: ask again.
            Err(Errno::EBUSY) => continue,
            Err(source) => {
                return Err(LoopError::Ioctl {
                    path: node,
                    what: "binding the file",
                    source,
                })
            }
        }
    }
    Err(LoopError::NoneFree {
        file: file.to_path_buf(),
        tries: TRIES,
    })
}

fn bind(
    dev: &File,
    backing: &File,
    file: &Path,
    block_size: u32,
    read_only: bool,
) -> Result<(), Errno> {
    let fd = u32::try_from(backing.as_raw_fd()).map_err(|_| Errno::EBADF)?;
    let config = LoopConfig {
        fd,
        block_size: match block_size {
            512 | 1024 | 2048 | 4096 => block_size,
            _ => 0,
        },
        info: info_for(file, read_only),
        reserved: [0; 8],
    };
    // SAFETY: `config` is a valid `struct loop_config` that outlives the call.
    match unsafe { ioctl::loop_configure(dev.as_raw_fd(), &config) } {
        Ok(_) => return Ok(()),
        Err(Errno::EINVAL | Errno::ENOTTY) => {}
        Err(e) => return Err(e),
    }
    // Kernels before 5.8: bind, then set the flags (a short window in which the device is
    // writable, but nothing but us knows it exists yet).
    // SAFETY: LOOP_SET_FD takes the backing descriptor by value.
    unsafe { ioctl::loop_set_fd(dev.as_raw_fd(), backing.as_raw_fd()) }?;
    let info = info_for(file, read_only);
    // SAFETY: `info` is a valid `struct loop_info64` that outlives the call.
    if let Err(e) = unsafe { ioctl::loop_set_status64(dev.as_raw_fd(), &info) } {
        // SAFETY: LOOP_CLR_FD takes no argument.
        let _ = unsafe { ioctl::loop_clr_fd(dev.as_raw_fd()) };
        return Err(e);
    }
    Ok(())
}

/// The file a loop device reads, from `/sys/block/loopN/loop/backing_file`; `None` when the
/// device is detached (or is no loop device).
pub fn backing_file(device: &Path) -> Option<PathBuf> {
    let name = device.file_name()?.to_str()?;
    let text = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    let text = text.trim_end_matches('\n');
    (!text.is_empty()).then(|| PathBuf::from(text))
}

/// Detaches the loop device `device` (at once when nothing holds it, else when the last holder
/// lets go). A device that is already detached is fine.
pub fn detach(device: &Path) -> Result<(), LoopError> {
    let dev = match OpenOptions::new().read(true).open(device) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(LoopError::Open {
                path: device.to_path_buf(),
                source,
            })
        }
    };
    // SAFETY: LOOP_CLR_FD takes no argument.
    match unsafe { ioctl::loop_clr_fd(dev.as_raw_fd()) } {
        Ok(_) | Err(Errno::ENXIO) => Ok(()),
        Err(source) => Err(LoopError::Ioctl {
            path: device.to_path_buf(),
            what: "LOOP_CLR_FD",
            source,
        }),
    }
}
