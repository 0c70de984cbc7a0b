//! File systems, read-only: recognising what a partition holds ([`probe`]: type, label, UUID,
//! size, state, as `blkid` reports them) and, for the file systems Lifeboat images by used
//! blocks, the map of bytes the file system needs ([`used_map`]).
//!
//! Everything here reads through the [`disk::BlockIo`] seam and treats the bytes as untrusted:
//! every field is range-checked, sizes are capped by the partition size, and a structure that does
//! not add up is an error (so the caller images the whole partition), never a panic and never a
//! map that silently leaves data out. This crate must not write to the device, open paths, mount
//! anything, or know about partition tables and images.

pub mod browse;
mod btrfs;
mod bytes;
mod crc32c;
pub mod crypt;
mod exfat;
mod ext;
mod fat;
pub mod lvm;
mod map;
pub mod md;
mod ntfs;
mod probe;
pub mod sha256;
mod xfs;

pub use map::{used_map, MapError, Ranges, UsedMap};
pub use probe::{probe, FsInfo, FsKind, ProbeError};
