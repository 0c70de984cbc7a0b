//! The error type of the image crate.

use std::io;

use crate::format::FORMAT_MAJOR;

/// Everything that can go wrong while writing or reading an image. Messages name the file
/// (volume) and, for chunks, the chunk number, stream and byte range.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a volume file or directory.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`writing`, `reading`, `syncing`, …).
        op: &'static str,
        /// The file involved.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The destination ran out of space (ENOSPC / EDQUOT).
    #[error("{path}: destination full")]
    DestinationFull {
        /// The volume being written.
        path: String,
    },
    /// The destination file system refuses files this large (EFBIG, FAT32's 4 GiB limit).
    #[error(
        "{path}: file too large for the destination file system (split the image into volumes)"
    )]
    FileTooLarge {
        /// The volume being written.
        path: String,
    },
    /// The image file (or one of its volumes) already exists.
    #[error("{path}: already exists")]
    AlreadyExists {
        /// The file that exists.
        path: String,
    },
    /// The writer was given options it cannot honour.
    #[error("invalid image options: {0}")]
    InvalidOptions(String),
    /// The writer was given a chunk or stream that does not fit the image being written.
    #[error("{path}: invalid chunk for stream {stream} at offset {offset}: {detail}")]
    InvalidChunk {
        /// The image being written.
        path: String,
        /// Stream id given.
        stream: u32,
        /// Logical offset given.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// zstd failed to compress a chunk.
    #[error("compressing chunk of stream {stream} at offset {offset}: {source}")]
    Compress {
        /// Stream id.
        stream: u32,
        /// Logical offset.
        offset: u64,
        /// zstd's error.
        source: io::Error,
    },
    /// The split size leaves no room for a chunk or for the image's metadata.
    #[error("{path}: split size {split} is too small: {what} needs {need} bytes in one volume")]
    SplitTooSmall {
        /// The image being written.
        path: String,
        /// Split size asked for.
        split: u64,
        /// What does not fit (`a chunk`, `the metadata`).
        what: &'static str,
        /// Bytes it needs.
        need: u64,
    },
    /// The writer cannot be used after an earlier error.
    #[error("{path}: writer stopped after an earlier error")]
    Poisoned {
        /// The image being written.
        path: String,
    },
    /// A volume path names something other than a regular file (a FIFO, a device, a folder, or
    /// a symlink where one is not followed): it is refused before anything is read from it.
    #[error("{path}: not a regular file ({what}); an image volume must be one")]
    NotAVolumeFile {
        /// The path.
        path: String,
        /// What it is.
        what: &'static str,
    },
    /// The file does not start with the volume magic.
    #[error("{path}: not a Lifeboat image")]
    NotAnImage {
        /// The file.
        path: String,
    },
    /// The image was written by a newer, incompatible format version.
    #[error(
        "{path}: image made by a newer Lifeboat (format {major}.x); this one reads {}.x",
        FORMAT_MAJOR
    )]
    NewerFormat {
        /// The file.
        path: String,
        /// The major version found.
        major: u16,
    },
    /// A cast stream (FORMAT.md, "Cast streams") is foreign, damaged, truncated or was
    /// stopped by its sender.
    #[error("{name}: cast stream: {detail}")]
    Cast {
        /// The stream (its source, such as `udp-receiver`).
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The image has no trailer: its backup never finished.
    #[error("{path}: incomplete image: backup was interrupted{hint}")]
    Incomplete {
        /// The last volume found.
        path: String,
        /// Extra explanation (may be empty), starting with `; `.
        hint: String,
    },
    /// A volume is shorter than its own structures say.
    #[error("{path}: truncated volume ({len} bytes, {detail})")]
    Truncated {
        /// The volume.
        path: String,
        /// Its length.
        len: u64,
        /// What is missing.
        detail: String,
    },
    /// A volume of a split image is missing.
    #[error("missing volume {path}")]
    MissingVolume {
        /// The file that should exist.
        path: String,
    },
    /// A volume file carries another volume number than its name says.
    #[error("{path}: is volume {found} of its image, expected volume {expected}")]
    WrongVolume {
        /// The file.
        path: String,
        /// Number found in its header.
        found: u32,
        /// Number its name implies.
        expected: u32,
    },
    /// A volume belongs to a different image.
    #[error("{path}: belongs to another image (image {found}, expected {expected})")]
    ForeignVolume {
        /// The file.
        path: String,
        /// UUID found.
        found: String,
        /// UUID of the first volume.
        expected: String,
    },
    /// A structure (volume header, trailer, stream table, index, manifest, bitmap) is damaged.
    #[error("{path}: damaged {what}: {detail}")]
    Corrupt {
        /// The volume holding the structure.
        path: String,
        /// Which structure.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A chunk is damaged: its header, frame or data fail their checks.
    #[error(
        "{path}: chunk {chunk} of {stream_name} (bytes {start}..{end}) at volume offset {volume_offset} is damaged: {problem}"
    )]
    ChunkCorrupt {
        /// The volume holding the chunk.
        path: String,
        /// Chunk number inside its stream (logical offset / chunk size).
        chunk: u64,
        /// Stream id.
        stream: u32,
        /// Human name of the stream (`stream 2 (partition 1)`).
        stream_name: String,
        /// First logical byte of the chunk in its stream.
        start: u64,
        /// One past its last logical byte.
        end: u64,
        /// Offset of the chunk record inside the volume.
        volume_offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// A chunk could not be read from its volume: the medium or the network share holding the
    /// image failed (an I/O error, after the retries a share gets). This says nothing about the
    /// image itself, which may be intact: it is not [`Error::ChunkCorrupt`].
    #[error(
        "{path}: the image could not be read: chunk {chunk} of {stream_name} (bytes {start}..{end}) at volume offset {volume_offset}{on}: {source}"
    )]
    ChunkUnreadable {
        /// The volume holding the chunk.
        path: String,
        /// Chunk number inside its stream.
        chunk: u64,
        /// Stream id.
        stream: u32,
        /// Human name of the stream.
        stream_name: String,
        /// First logical byte of the chunk in its stream.
        start: u64,
        /// One past its last logical byte.
        end: u64,
        /// Offset of the chunk record inside the volume.
        volume_offset: u64,
        /// Where the volume lives when that is worth saying (` on the SFTP folder …`), else empty.
        on: String,
        /// The read's error.
        source: io::Error,
    },
    /// The manifest cannot be encoded or decoded.
    #[error("{path}: manifest: {detail}")]
    Manifest {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// No stream with this id exists in the image.
    #[error("{path}: no stream {stream}")]
    NoSuchStream {
        /// The image.
        path: String,
        /// The id asked for.
        stream: u32,
    },
    /// The image is encrypted and no password was given.
    #[error("{path}: the image is encrypted: a password is needed")]
    PasswordRequired {
        /// The image.
        path: String,
    },
    /// No key slot of the image opens with the password given.
    #[error("{path}: wrong password (no key slot of this encrypted image opens with it)")]
    WrongPassword {
        /// The image.
        path: String,
    },
    /// A password was given for an image that is not encrypted, or encryption failed.
    #[error("{path}: {detail}")]
    Encryption {
        /// The image.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A worker thread of a parallel pipeline panicked.
    #[error("a {0} thread panicked")]
    WorkerPanicked(&'static str),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Maps an I/O error while writing `path`, recognising a full destination and a file-size limit.
    pub(crate) fn write(path: &str, op: &'static str, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(28) | Some(122) => Error::DestinationFull {
                path: path.to_string(),
            },
            Some(27) => Error::FileTooLarge {
                path: path.to_string(),
            },
            _ if e.kind() == io::ErrorKind::StorageFull => Error::DestinationFull {
                path: path.to_string(),
            },
            _ => Error::Io {
                op,
                path: path.to_string(),
                source: e,
            },
        }
    }

    /// Maps an I/O error while reading `path`.
    pub(crate) fn read(path: &str, e: io::Error) -> Error {
        Error::Io {
            op: "reading",
            path: path.to_string(),
            source: e,
        }
    }

    /// Whether this error is a failure to read the image (its medium or share failed) rather
    /// than something wrong with the image: a chunk or a structure that could not be read.
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            Error::ChunkUnreadable { .. } | Error::Io { op: "reading", .. }
        )
    }

    /// The image error an [`io::Error`] from a [`crate::StreamReader`] carries, if any.
    pub fn in_io(e: &io::Error) -> Option<&Error> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
    }

    /// Whether this error says the image is incomplete or truncated (an interrupted backup).
    pub fn is_incomplete(&self) -> bool {
        matches!(
            self,
            Error::Incomplete { .. } | Error::Truncated { .. } | Error::MissingVolume { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_destination_and_file_size_limit_are_recognised() {
        let e = Error::write("x.lbi", "writing", io::Error::from_raw_os_error(28));
        assert_eq!(e.to_string(), "x.lbi: destination full");
        let e = Error::write("x.lbi", "writing", io::Error::from_raw_os_error(27));
        assert!(matches!(e, Error::FileTooLarge { .. }), "{e}");
        let e = Error::write("x.lbi", "writing", io::Error::from_raw_os_error(5));
        assert!(e.to_string().starts_with("writing x.lbi: "), "{e}");
    }
}
