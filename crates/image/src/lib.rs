//! The Lifeboat image format (`.lbi`): a self-describing, chunked, checksummed and seekable
//! archive of the streams of a disk (partition-table areas, partitions, unpartitioned ranges),
//! optionally split into volumes. This crate specifies the bytes (see [`format_spec`]), writes
//! images ([`ImageWriter`], [`compress_chunk`], [`ParallelCompressor`]) and reads and verifies
//! them ([`ImageReader`], [`StreamReader`]). Images can be encrypted (format 1.1): a random data
//! key per image, wrapped in key slots by Argon2id-derived keys ([`Passphrase`], [`KdfParams`],
//! [`change_password`]), seals every chunk and every metadata section with AES-256-GCM.
//!
//! It must not open devices, parse partition tables or file systems, or decide what to back up:
//! the engine does that and hands it streams, chunks, bitmaps and a [`Manifest`]. It only touches
//! the image's own volume files (and, for reading, any [`disk::BlockIo`] given to it).

pub mod format_spec {
    #![doc = include_str!("../FORMAT.md")]
}

mod bitmap;
pub mod cast;
pub mod crypt;
mod error;
pub mod format;
mod manifest;
mod parallel;
mod passwd;
mod reader;
mod writer;

pub use bitmap::Bitmap;
pub use crypt::{KdfParams, Passphrase, KEY_SLOTS};
pub use error::{Error, Result};
pub use format::{IndexEntry, StreamKind, DEFAULT_CHUNK_SIZE, FORMAT_MAJOR, FORMAT_MINOR};
pub use manifest::{
    rfc3339_utc, AreaRef, BadRange, Manifest, PartitionEntry, PartitionMode, SourceDisk, TableInfo,
};
pub use parallel::{ChunkJob, ParallelCompressor, PipelineStats};
pub use passwd::{change_password, PasswordChange, SlotChange};
pub use reader::{is_encrypted, BadChunk, ImageReader, Stream, StreamReader, VerifyReport};
pub use writer::{
    compress_chunk, volume_path, CompressedChunk, ImageSummary, ImageWriter, StreamSpec,
    WriterOptions,
};
