//! Block devices: what disks this machine has (discovery from `/sys`, `/proc/self/mountinfo`,
//! `/proc/swaps`) and the [`BlockIo`] seam through which every other crate reads and writes them.
//!
//! This is the only crate that opens device nodes or issues ioctls. It must not know about partition
//! tables, file systems or images: those live in `layout`, `fs` and `image`, above it.
//!
//! - [`discover`] lists the machine's disks with their identity (model, serial, WWN), geometry,
//!   transport and what uses them (mounts, swap, holders, the boot medium); [`find`] picks one by
//!   `/dev/sda`, `sda`, `serial:…` or `model:…`.
//! - [`FileDisk`] reads and writes image files and block devices. Sources open read-only;
//!   opening for writing needs a [`WriteConsent`] and claims block devices exclusively (`O_EXCL`),
//!   so the kernel itself refuses a target that is mounted or held.
//! - [`MemDisk`], [`Window`] and [`FaultyDisk`] are the in-memory disk, the partition view and the
//!   bad-sector simulator that engines and tests build on.
//! - [`mount`] mounts a file system whose type the caller's probe found (kernel drivers, NTFS
//!   through `ntfs-3g`): the one mount helper of `init`, the TUI and `lifeboat mount`.
//! - [`loopdev`] binds a file to a read-only, auto-clearing loop device (`lifeboat mount`).

mod blockio;
pub mod boot;
mod discover;
mod faulty;
mod file;
pub mod inode_flags;
pub mod loopdev;
pub mod mount;
pub mod mounts;
pub mod netfs;
mod newfile;
pub mod text;

pub use blockio::{is_media_error, BlockIo, MemDisk, Window};
pub use discover::{
    discover, find, find_partition, parse_vpd_serial, BlockDevice, DevNum, DeviceKind,
    DiscoverError, DiscoverOptions, FindError, Partition, SysRoot, Transport, UseReason,
};
pub use faulty::FaultyDisk;
pub use file::{ConsentSource, DiskError, FileDisk, ObjectId, WriteConsent};
pub use newfile::{create_private, Existing};
