//! Reading an image: opening and checking its volumes, the trailer, stream table, index and
//! manifest; reading single chunks; a [`BlockIo`] view of a stream; parallel verification.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use disk::BlockIo;

use crate::bitmap::Bitmap;
use crate::crypt::{
    unlock, Domain, KeyBlock, Passphrase, Sealer, UnlockError, KEY_BLOCK_LEN, KEY_BLOCK_OFFSET,
    TAG_LEN,
};
use crate::error::{Error, Result};
use crate::format::{
    crc, crc_matches, format_uuid, max_frame_len, rd_u16, valid_chunk_size, ChunkHeader,
    IndexEntry, StreamEntry, StreamKind, Trailer, VolumeHeader, CHUNK_HEADER_LEN, FORMAT_MAJOR,
    INDEX_ENTRY_LEN, MAX_BITMAP_BLOCK, MAX_BITMAP_LEN, MAX_MANIFEST_LEN, MAX_STREAMS, MAX_VOLUMES,
    MIN_BITMAP_BLOCK, MIN_FRAME_LEN, STREAM_ENTRY_LEN, TRAILER_COMPLETE, TRAILER_ENCRYPTED,
    TRAILER_LEN, TRAILER_MAGIC, VOLUME_HEADER_LEN, VOLUME_MAGIC,
};
use crate::manifest::Manifest;
use crate::writer::{sibling_volumes, volume_path};

/// A metadata piece of a cast stream: (volume number, offset, bytes).
pub(crate) type CastPiece = (u32, u64, Vec<u8>);

/// A stream of an image as the reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// Stream id (its position in the stream table).
    pub id: u32,
    /// What it holds.
    pub kind: StreamKind,
    /// Length of its logical byte space.
    pub length: u64,
    /// Where it starts on the source disk.
    pub source_offset: u64,
    /// Partition number, 0 when not a partition.
    pub partition: u32,
    /// Block size of its stored used-block bitmap, if it has one.
    pub bitmap_block_size: Option<u32>,
}

impl Stream {
    /// A human name for messages: `stream 2 (partition 1)`.
    pub fn name(&self) -> String {
        let what = match self.kind {
            StreamKind::Partition => format!("partition {}", self.partition),
            StreamKind::DiskArea => format!("disk area at {}", self.source_offset),
            StreamKind::Unpartitioned => format!("unpartitioned range at {}", self.source_offset),
            StreamKind::Whole => "whole source".to_string(),
            StreamKind::Other(c) => format!("kind {c}"),
        };
        format!("stream {} ({what})", self.id)
    }
}

struct FileVolume {
    file: File,
    path: String,
    len: u64,
    /// On a network share: failing reads are retried for this long (`disk::netfs`).
    retry_for: Option<std::time::Duration>,
    /// On a network share: the share, for messages (`SFTP folder user@host:/path`).
    share: Option<String>,
}

impl BlockIo for FileVolume {
    fn len(&self) -> u64 {
        self.len
    }
    fn logical_sector_size(&self) -> u32 {
        512
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self.retry_for {
            None => self.file.read_exact_at(buf, offset),
            Some(window) => disk::netfs::retry_io(&self.path, window, || {
                // A volume's length is known from its open: a read that ends early on a share
                // is the server going away under it (sshfs answers a read in flight when its
                // connection drops with end-of-file), worth the same retries as a timeout.
                self.file.read_exact_at(buf, offset).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "the share ended the read of bytes {offset}..{} of this {}-byte file early",
                                offset.saturating_add(buf.len() as u64),
                                self.len
                            ),
                        )
                    } else {
                        e
                    }
                })
            }),
        }
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "image volumes are opened read-only",
        ))
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        self.path.clone()
    }
}

struct Volume {
    name: String,
    io: Box<dyn BlockIo>,
    len: u64,
    /// First byte that chunk records and metadata may use (after the header, and in volume 1 of
    /// an encrypted image after the key block).
    data_start: u64,
    /// One past the last byte that chunk records may use.
    data_end: u64,
    /// The network share holding the volume, for messages (see [`FileVolume::share`]).
    share: Option<String>,
}

/// An open, structurally checked image. Shareable between threads (`&self` everywhere).
pub struct ImageReader {
    name: String,
    volumes: Vec<Volume>,
    uuid: [u8; 16],
    minor: u16,
    chunk_size: u32,
    streams: Vec<Stream>,
    entries: Vec<StreamEntry>,
    index: Vec<IndexEntry>,
    manifest: Manifest,
    bytes_read: AtomicU64,
    /// Encrypted images: opens sealed chunks, bitmaps and sections.
    sealer: Option<Sealer>,
    /// The first chunk that could not be read from a network share (after the share's
    /// retries: its server is gone), as its message.
    share_gone: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for ImageReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageReader")
            .field("path", &self.name)
            .field("uuid", &format_uuid(&self.uuid))
            .field("volumes", &self.volumes.len())
            .field("streams", &self.streams.len())
            .field("chunks", &self.index.len())
            .field("encrypted", &self.sealer.is_some())
            .finish()
    }
}

fn volume_name(base: &str, n: u32) -> String {
    volume_path(Path::new(base), n).display().to_string()
}

fn corrupt(path: &str, what: &'static str, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_string(),
        what,
        detail: detail.into(),
    }
}

/// The largest metadata section read in one piece (the index of 100 TiB of data in 1 MiB
/// chunks is 4 GiB); a volume's length alone does not bound it, since a sparse file can claim
/// terabytes.
const MAX_SECTION_LEN: u64 = 4 << 30;

/// Reads `len` bytes of section `what` at `offset` of `v`: the range must lie in the volume, be
/// at most [`MAX_SECTION_LEN`] and the memory must be available (`try_reserve`).
fn read_exact(v: &Volume, offset: u64, len: u64, what: &'static str) -> Result<Vec<u8>> {
    let end = offset
        .checked_add(len)
        .filter(|&e| e <= v.len)
        .ok_or_else(|| {
            corrupt(
                &v.name,
                what,
                format!("bytes {offset}+{len} lie past the end ({} bytes)", v.len),
            )
        })?;
    if len > MAX_SECTION_LEN {
        return Err(corrupt(
            &v.name,
            what,
            format!("{len} bytes are more than the {MAX_SECTION_LEN} a section may hold"),
        ));
    }
    let n = usize::try_from(end - offset)
        .map_err(|_| corrupt(&v.name, what, format!("{len} bytes do not fit in memory")))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(n)
        .map_err(|_| corrupt(&v.name, what, format!("no memory for {len} bytes")))?;
    buf.resize(n, 0);
    v.io.read_at(&mut buf, offset)
        .map_err(|e| Error::read(&v.name, e))?;
    Ok(buf)
}

impl ImageReader {
    /// Opens the image whose first volume is `path`, finding `path.002`, `path.003`, … beside it.
    /// An encrypted image is refused with [`Error::PasswordRequired`] (see
    /// [`ImageReader::open_with`]).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, None)
    }

    /// Opens an image, unlocking it with `password` when it is encrypted. A wrong password is
    /// [`Error::WrongPassword`], found after reading only volume 1's header and key block.
    pub fn open_with(path: &Path, password: Option<&Passphrase>) -> Result<Self> {
        let name = path.display().to_string();
        let mut vols: Vec<(String, Box<dyn BlockIo>)> = Vec::new();
        let first = open_volume_file(path, true)?;
        let mut shares = vec![first.share.clone()];
        vols.push((name.clone(), Box::new(first)));
        let siblings = sibling_volumes(path);
        let last = siblings.last().map_or(1, |(n, _)| *n);
        if last > MAX_VOLUMES {
            return Err(corrupt(
                &name,
                "volume set",
                format!("a volume numbered {last} exists"),
            ));
        }
        for n in 2..=last {
            let p = volume_path(path, n);
            if !siblings.iter().any(|(m, _)| *m == n) {
                return Err(Error::MissingVolume {
                    path: p.display().to_string(),
                });
            }
            let v = open_volume_file(&p, false)?;
            shares.push(v.share.clone());
            vols.push((p.display().to_string(), Box::new(v)));
        }
        let mut reader = Self::from_volumes_with(vols, password)?;
        for (v, share) in reader.volumes.iter_mut().zip(shares) {
            v.share = share;
        }
        Ok(reader)
    }

    /// Opens an image from its volumes, in order, each with a name for messages (the first
    /// volume's name is used to name missing ones). Used by [`ImageReader::open`], by tests and by
    /// the fuzz target (with in-memory volumes).
    pub fn from_volumes(vols: Vec<(String, Box<dyn BlockIo>)>) -> Result<Self> {
        Self::from_volumes_with(vols, None)
    }

    /// [`ImageReader::from_volumes`] with a password for an encrypted image.
    pub fn from_volumes_with(
        vols: Vec<(String, Box<dyn BlockIo>)>,
        password: Option<&Passphrase>,
    ) -> Result<Self> {
        let Some(base) = vols.first().map(|(n, _)| n.clone()) else {
            return Err(Error::InvalidOptions(
                "an image needs at least one volume".into(),
            ));
        };
        if vols.len() > MAX_VOLUMES as usize {
            return Err(corrupt(
                &base,
                "volume set",
                format!("{} volumes", vols.len()),
            ));
        }
        let mut volumes = Vec::with_capacity(vols.len());
        let mut first: Option<VolumeHeader> = None;
        let mut sealer = None;
        for (i, (name, io)) in vols.into_iter().enumerate() {
            let len = io.len();
            let h = read_volume_header(&name, io.as_ref(), len)?;
            let expected = i as u32 + 1;
            let mut data_start = VOLUME_HEADER_LEN as u64;
            match &first {
                None => {
                    if !valid_chunk_size(h.chunk_size) {
                        return Err(corrupt(
                            &name,
                            "volume header",
                            format!("chunk size {} is not allowed", h.chunk_size),
                        ));
                    }
                    if h.encrypted() {
                        // The key check comes before anything else is read.
                        sealer = Some(unlock_image(&name, io.as_ref(), len, &h, password)?);
                        data_start += KEY_BLOCK_LEN as u64;
                    } else if password.is_some() {
                        log::info!("{name}: not encrypted; the password given is not used");
                    }
                    first = Some(h);
                }
                Some(f) => {
                    if f.encrypted() != h.encrypted() {
                        return Err(corrupt(
                            &name,
                            "volume header",
                            "encryption flag differs from the first volume's",
                        ));
                    }
                    if f.uuid != h.uuid {
                        return Err(Error::ForeignVolume {
                            path: name,
                            found: format_uuid(&h.uuid),
                            expected: format_uuid(&f.uuid),
                        });
                    }
                    if f.chunk_size != h.chunk_size {
                        return Err(corrupt(
                            &name,
                            "volume header",
                            format!(
                                "chunk size {} differs from the first volume's",
                                h.chunk_size
                            ),
                        ));
                    }
                }
            }
            if h.volume != expected {
                return Err(Error::WrongVolume {
                    path: name,
                    found: h.volume,
                    expected,
                });
            }
            volumes.push(Volume {
                name,
                io,
                len,
                data_start,
                data_end: len,
                share: None,
            });
        }
        let Some(head) = first else {
            return Err(Error::InvalidOptions(
                "an image needs at least one volume".into(),
            ));
        };
        let count = volumes.len() as u32;
        let Some(last) = volumes.last() else {
            return Err(Error::InvalidOptions(
                "an image needs at least one volume".into(),
            ));
        };
        let trailer = read_trailer(&base, last, count, &head)?;
        let meta_end = last.len - TRAILER_LEN as u64;
        let meta_floor = last.data_start;
        let lname = last.name.clone();
        let tag = if sealer.is_some() { TAG_LEN as u64 } else { 0 };
        let section = |offset: u64,
                       len: u64,
                       what: &'static str,
                       sum: u32,
                       domain: Domain|
         -> Result<Vec<u8>> {
            if offset < meta_floor || offset.checked_add(len).is_none_or(|end| end > meta_end) {
                return Err(corrupt(
                    &lname,
                    what,
                    format!("bytes {offset}+{len} lie outside the metadata area (..{meta_end})"),
                ));
            }
            let mut bytes = read_exact(last, offset, len, what)?;
            let c = crc(&bytes);
            if !crc_matches(sum, c) {
                return Err(corrupt(
                    &lname,
                    what,
                    format!("crc32 mismatch (stored {sum:08x}, computed {c:08x})"),
                ));
            }
            if let Some(s) = &sealer {
                let plain = len.saturating_sub(TAG_LEN as u64);
                s.open(domain, 0, 0, plain, &mut bytes)
                    .map_err(|d| corrupt(&lname, what, d))?;
            }
            Ok(bytes)
        };

        // Stream table.
        if (trailer.flags & TRAILER_ENCRYPTED != 0) != sealer.is_some() {
            return Err(corrupt(
                &lname,
                "trailer",
                "encryption flag differs from the volume header",
            ));
        }
        if trailer.stream_count > MAX_STREAMS
            || u64::from(trailer.streams_len)
                != u64::from(trailer.stream_count) * STREAM_ENTRY_LEN as u64 + tag
        {
            return Err(corrupt(
                &lname,
                "trailer",
                format!(
                    "{} streams in a table of {} bytes",
                    trailer.stream_count, trailer.streams_len
                ),
            ));
        }
        let table = section(
            trailer.streams_offset,
            u64::from(trailer.streams_len),
            "stream table",
            trailer.streams_crc,
            Domain::StreamTable,
        )?;
        let mut entries = Vec::with_capacity(trailer.stream_count as usize);
        let mut meta_start = trailer
            .streams_offset
            .min(trailer.index_offset)
            .min(trailer.manifest_offset);
        for (i, raw) in table.chunks_exact(STREAM_ENTRY_LEN).enumerate() {
            let e = StreamEntry::decode(raw);
            if e.id != i as u32 {
                return Err(corrupt(
                    &lname,
                    "stream table",
                    format!("entry {i} has id {}", e.id),
                ));
            }
            if let Some(bm) = e.bitmap {
                let bad = !bm.block_size.is_power_of_two()
                    || !(MIN_BITMAP_BLOCK..=MAX_BITMAP_BLOCK).contains(&bm.block_size)
                    || bm.offset < meta_floor
                    || bm.offset.saturating_add(u64::from(bm.stored_len)) > meta_end
                    || e.length.div_ceil(u64::from(bm.block_size)).div_ceil(8) > MAX_BITMAP_LEN;
                if bad {
                    return Err(corrupt(
                        &lname,
                        "stream table",
                        format!("stream {i}: bitmap reference is out of bounds"),
                    ));
                }
                meta_start = meta_start.min(bm.offset);
            }
            entries.push(e);
        }
        let streams: Vec<Stream> = entries
            .iter()
            .map(|e| Stream {
                id: e.id,
                kind: e.kind,
                length: e.length,
                source_offset: e.source_offset,
                partition: e.partition,
                bitmap_block_size: e.bitmap.map(|b| b.block_size),
            })
            .collect();

        // Index.
        let total: u64 = volumes.iter().map(|v| v.len).sum();
        let max_entries = total / (CHUNK_HEADER_LEN as u64 + MIN_FRAME_LEN);
        if trailer.index_count > max_entries
            || trailer.index_len
                != trailer
                    .index_count
                    .saturating_mul(INDEX_ENTRY_LEN as u64)
                    .saturating_add(tag)
        {
            return Err(corrupt(
                &lname,
                "trailer",
                format!(
                    "{} index entries in {} bytes cannot fit in {total} bytes of volumes",
                    trailer.index_count, trailer.index_len
                ),
            ));
        }
        let raw_index = section(
            trailer.index_offset,
            trailer.index_len,
            "index",
            trailer.index_crc,
            Domain::Index,
        )?;
        let index: Vec<IndexEntry> = raw_index
            .chunks_exact(INDEX_ENTRY_LEN)
            .map(IndexEntry::decode)
            .collect();
        if let Some(v) = volumes.last_mut() {
            v.data_end = meta_start;
        }
        check_index(&lname, &index, &streams, &volumes, head.chunk_size, tag)?;

        // Manifest.
        if u64::from(trailer.manifest_len) > MAX_MANIFEST_LEN + tag {
            return Err(corrupt(
                &lname,
                "trailer",
                format!(
                    "manifest of {} bytes is larger than allowed",
                    trailer.manifest_len
                ),
            ));
        }
        let Some(last) = volumes.last() else {
            return Err(Error::InvalidOptions(
                "an image needs at least one volume".into(),
            ));
        };
        let text = {
            let lname = last.name.clone();
            let off = trailer.manifest_offset;
            let len = u64::from(trailer.manifest_len);
            if off < last.data_start || off.checked_add(len).is_none_or(|e| e > meta_end) {
                return Err(corrupt(
                    &lname,
                    "manifest",
                    "lies outside the metadata area",
                ));
            }
            let mut bytes = read_exact(last, off, len, "manifest")?;
            let c = crc(&bytes);
            if !crc_matches(trailer.manifest_crc, c) {
                return Err(corrupt(
                    &lname,
                    "manifest",
                    format!(
                        "crc32 mismatch (stored {:08x}, computed {c:08x})",
                        trailer.manifest_crc
                    ),
                ));
            }
            if let Some(s) = &sealer {
                let plain = len.saturating_sub(TAG_LEN as u64);
                s.open(Domain::Manifest, 0, 0, plain, &mut bytes)
                    .map_err(|d| corrupt(&lname, "manifest", d))?;
            }
            String::from_utf8(bytes).map_err(|_| corrupt(&lname, "manifest", "not UTF-8 text"))?
        };
        let manifest = Manifest::from_toml(&text).map_err(|detail| Error::Manifest {
            path: last.name.clone(),
            detail,
        })?;
        log::debug!(
            "opened image {base}: {} volumes, {} streams, {} chunks",
            volumes.len(),
            streams.len(),
            index.len()
        );
        Ok(ImageReader {
            name: base,
            volumes,
            uuid: head.uuid,
            minor: trailer.minor,
            chunk_size: head.chunk_size,
            streams,
            entries,
            index,
            manifest,
            bytes_read: AtomicU64::new(0),
            sealer,
            share_gone: std::sync::OnceLock::new(),
        })
    }

    /// Whether the image is encrypted (format 1.1).
    pub fn encrypted(&self) -> bool {
        self.sealer.is_some()
    }

    fn tag_len(&self) -> u64 {
        if self.sealer.is_some() {
            TAG_LEN as u64
        } else {
            0
        }
    }

    /// The image's name (its first volume's path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image's UUID, `8-4-4-4-12`.
    pub fn uuid(&self) -> String {
        format_uuid(&self.uuid)
    }

    /// The format version that wrote the image, `(major, minor)`.
    pub fn format_version(&self) -> (u16, u16) {
        (FORMAT_MAJOR, self.minor)
    }

    /// The chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Names of the volume files, in order.
    pub fn volume_names(&self) -> Vec<String> {
        self.volumes.iter().map(|v| v.name.clone()).collect()
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The streams, by id.
    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    /// One stream by id.
    pub fn stream(&self, id: u32) -> Result<&Stream> {
        self.streams
            .get(id as usize)
            .ok_or_else(|| Error::NoSuchStream {
                path: self.name.clone(),
                stream: id,
            })
    }

    /// The whole index, sorted by (stream, logical offset).
    pub fn index(&self) -> &[IndexEntry] {
        &self.index
    }

    /// The stored chunks of one stream, sorted by logical offset.
    pub fn chunks_of(&self, stream: u32) -> &[IndexEntry] {
        let lo = self.index.partition_point(|e| e.stream < stream);
        let hi = self.index.partition_point(|e| e.stream <= stream);
        self.index.get(lo..hi).unwrap_or_default()
    }

    /// Bytes read from the volumes so far (chunk records and bitmaps, not the metadata read
    /// while opening).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    fn chunk_error(&self, e: &IndexEntry, problem: String) -> Error {
        let name = self
            .streams
            .get(e.stream as usize)
            .map_or_else(|| format!("stream {}", e.stream), Stream::name);
        Error::ChunkCorrupt {
            path: self
                .volumes
                .get((e.volume as usize).wrapping_sub(1))
                .map_or_else(
                    || format!("{} volume {}", self.name, e.volume),
                    |v| v.name.clone(),
                ),
            chunk: e.logical_offset / u64::from(self.chunk_size),
            stream: e.stream,
            stream_name: name,
            start: e.logical_offset,
            end: e
                .logical_offset
                .saturating_add(u64::from(e.uncompressed_len)),
            volume_offset: e.volume_offset,
            problem,
        }
    }

    /// The error of a chunk whose record could not be read from `vol`; the first one read from
    /// a network share is kept for [`ImageReader::share_gone`].
    fn unreadable_error(&self, e: &IndexEntry, vol: &Volume, source: io::Error) -> Error {
        let err = Error::ChunkUnreadable {
            path: vol.name.clone(),
            chunk: e.logical_offset / u64::from(self.chunk_size),
            stream: e.stream,
            stream_name: self
                .streams
                .get(e.stream as usize)
                .map_or_else(|| format!("stream {}", e.stream), Stream::name),
            start: e.logical_offset,
            end: e
                .logical_offset
                .saturating_add(u64::from(e.uncompressed_len)),
            volume_offset: e.volume_offset,
            on: vol
                .share
                .as_ref()
                .map(|s| format!(" on the {s}"))
                .unwrap_or_default(),
            source,
        };
        if vol.share.is_some() {
            let _ = self.share_gone.set(err.to_string());
        }
        // The caller says it (once); other threads' failures only go to the log.
        log::info!("{err}");
        err
    }

    /// Why the image cannot be read any more, when a chunk could not be read from the network
    /// share holding it (its reads were retried for the share's window first: the server is
    /// gone). What reads the image file by file (extract) stops there instead of waiting out
    /// the window again for each file. A local medium's unreadable chunk does not count: the
    /// other chunks may well read.
    pub fn share_gone(&self) -> Option<&str> {
        self.share_gone.get().map(String::as_str)
    }

    /// Reads one chunk record (header and stored frame) as it lies in its volume, checking the
    /// header against the entry and the stored frame's crc32 (nothing is decrypted or
    /// decompressed). Used by [`ImageReader::read_chunk`] and by cast streams.
    pub(crate) fn read_record(&self, e: &IndexEntry) -> Result<Vec<u8>> {
        let Some(vol) = self.volumes.get((e.volume as usize).wrapping_sub(1)) else {
            return Err(self.chunk_error(e, "volume number out of range".into()));
        };
        if u64::from(e.compressed_len) > max_frame_len(self.chunk_size) + self.tag_len()
            || e.uncompressed_len > self.chunk_size
        {
            return Err(self.chunk_error(e, "lengths larger than the chunk size allows".into()));
        }
        let record = e.record_len();
        if e.volume_offset
            .checked_add(record)
            .is_none_or(|end| end > vol.len)
        {
            return Err(self.chunk_error(e, format!("record lies past the end of {}", vol.name)));
        }
        let mut buf = vec![0u8; record as usize];
        if let Err(err) = vol.io.read_at(&mut buf, e.volume_offset) {
            return Err(self.unreadable_error(e, vol, err));
        }
        self.bytes_read.fetch_add(record, Ordering::Relaxed);
        let (head, frame) = buf.split_at(CHUNK_HEADER_LEN);
        let h = ChunkHeader::decode(head).map_err(|p| self.chunk_error(e, p))?;
        if h != e.header() {
            return Err(self.chunk_error(
                e,
                format!(
                    "chunk header (stream {}, offset {}) does not match the index",
                    h.stream, h.logical_offset
                ),
            ));
        }
        let c = crc(frame);
        if !crc_matches(e.crc_compressed, c) {
            let what = if self.sealer.is_some() {
                "sealed"
            } else {
                "compressed"
            };
            return Err(self.chunk_error(
                e,
                format!(
                    "{what} bytes fail their crc32 (stored {:08x}, computed {c:08x})",
                    e.crc_compressed
                ),
            ));
        }
        Ok(buf)
    }

    /// What a cast stream carries besides the chunk records: every volume's length, and the
    /// metadata pieces `(volume, offset, bytes)`: each volume's header (and volume 1's key
    /// block), and the last volume's metadata area up to its end.
    pub(crate) fn cast_layout(&self) -> Result<(Vec<u64>, Vec<CastPiece>)> {
        let lens = self.volumes.iter().map(|v| v.len).collect();
        let mut pieces = Vec::new();
        let count = self.volumes.len();
        for (i, v) in self.volumes.iter().enumerate() {
            let mut ranges = vec![(0, v.data_start)];
            if i + 1 == count {
                ranges.push((v.data_end, v.len));
            }
            for (s, e) in ranges {
                let mut b = vec![0u8; e.saturating_sub(s) as usize];
                v.io.read_at(&mut b, s)
                    .map_err(|err| Error::read(&v.name, err))?;
                pieces.push((i as u32 + 1, s, b));
            }
        }
        Ok((lens, pieces))
    }

    /// The image's UUID as stored.
    pub(crate) fn uuid_bytes(&self) -> [u8; 16] {
        self.uuid
    }

    /// Reads, checks (both crc32s, the chunk header against the entry) and decompresses one
    /// chunk. Errors name the chunk number, stream, byte range and volume.
    pub fn read_chunk(&self, e: &IndexEntry) -> Result<Vec<u8>> {
        let mut frame = self.read_record(e)?.split_off(CHUNK_HEADER_LEN);
        if let Some(s) = &self.sealer {
            s.open(
                Domain::Chunk,
                e.stream,
                e.logical_offset,
                u64::from(e.uncompressed_len),
                &mut frame,
            )
            .map_err(|p| self.chunk_error(e, p))?;
        }
        let data = zstd::bulk::decompress(&frame, e.uncompressed_len as usize)
            .map_err(|err| self.chunk_error(e, format!("does not decompress: {err}")))?;
        if data.len() != e.uncompressed_len as usize {
            return Err(self.chunk_error(
                e,
                format!(
                    "decompressed to {} bytes, expected {}",
                    data.len(),
                    e.uncompressed_len
                ),
            ));
        }
        let c = crc(&data);
        if self.sealer.is_none() && !crc_matches(e.crc_uncompressed, c) {
            return Err(self.chunk_error(
                e,
                format!(
                    "decompressed bytes fail their crc32 (stored {:08x}, computed {c:08x})",
                    e.crc_uncompressed
                ),
            ));
        }
        Ok(data)
    }

    /// The used-block bitmap stored with `stream`, if any (read and checked on each call).
    pub fn bitmap(&self, stream: u32) -> Result<Option<Bitmap>> {
        let s = self.stream(stream)?;
        let Some(bm) = self.entries.get(stream as usize).and_then(|e| e.bitmap) else {
            return Ok(None);
        };
        let Some(last) = self.volumes.last() else {
            return Ok(None);
        };
        let what = "bitmap";
        let mut stored = read_exact(last, bm.offset, u64::from(bm.stored_len), what)?;
        self.bytes_read
            .fetch_add(stored.len() as u64, Ordering::Relaxed);
        let c = crc(&stored);
        let sname = s.name();
        if !crc_matches(bm.crc_stored, c) {
            return Err(corrupt(
                &last.name,
                what,
                format!(
                    "{sname}: stored bytes fail their crc32 ({:08x} vs {c:08x})",
                    bm.crc_stored
                ),
            ));
        }
        let blocks = s.length.div_ceil(u64::from(bm.block_size));
        let raw_len = blocks.div_ceil(8);
        if let Some(sealer) = &self.sealer {
            sealer
                .open(Domain::Bitmap, stream, 0, raw_len, &mut stored)
                .map_err(|d| corrupt(&last.name, what, format!("{sname}: {d}")))?;
        }
        let raw = zstd::bulk::decompress(&stored, raw_len as usize).map_err(|e| {
            corrupt(
                &last.name,
                what,
                format!("{sname}: does not decompress: {e}"),
            )
        })?;
        let c = crc(&raw);
        let crc_ok = self.sealer.is_some() || crc_matches(bm.crc_raw, c);
        if raw.len() as u64 != raw_len || !crc_ok {
            return Err(corrupt(
                &last.name,
                what,
                format!("{sname}: decompressed bitmap fails its length or crc32 check"),
            ));
        }
        Bitmap::new(bm.block_size, blocks, raw)
            .map(Some)
            .map_err(|d| corrupt(&last.name, what, format!("{sname}: {d}")))
    }

    /// A [`BlockIo`] over one stream: stored chunks are read on demand (with a small cache of
    /// decompressed chunks), absent chunks read as zeros.
    pub fn stream_reader(self: Arc<Self>, stream: u32) -> Result<StreamReader> {
        let s = self.stream(stream)?.clone();
        Ok(StreamReader {
            reader: self,
            stream: s,
            cache: Mutex::new(VecDeque::new()),
        })
    }

    /// Checks every chunk (in parallel on `threads` threads) and the structures around them. An
    /// image that could not be read to its end is not OK: the error is its one structural
    /// problem ([`ImageReader::verify_with`] returns it as an error instead).
    pub fn verify(&self, threads: usize) -> VerifyReport {
        let never = AtomicBool::new(false);
        let progress = AtomicU64::new(0);
        self.verify_with(threads, &never, &progress)
            .unwrap_or_else(|e| VerifyReport {
                structure: vec![e.to_string()],
                ..VerifyReport::default()
            })
    }

    /// [`ImageReader::verify`] with cancellation and a progress counter (uncompressed bytes
    /// checked). Returns `Err(Error::Cancelled)` when cancelled, and the read's error
    /// ([`Error::ChunkUnreadable`], [`Error::Io`]) when the image could not be read: a medium or
    /// share that fails is not damage, and verify stops at the first such chunk.
    pub fn verify_with(
        &self,
        threads: usize,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        // Structure: chunk records must not overlap one another.
        let mut placed: Vec<&IndexEntry> = self.index.iter().collect();
        placed.sort_unstable_by_key(|e| (e.volume, e.volume_offset));
        for w in placed.windows(2) {
            if let [a, b] = w {
                if a.volume == b.volume && a.volume_offset + a.record_len() > b.volume_offset {
                    report.structure.push(format!(
                        "chunks at offsets {} and {} of volume {} overlap",
                        a.volume_offset, b.volume_offset, a.volume
                    ));
                }
            }
        }
        // Structure: bitmaps and manifest references. A bitmap that cannot be read is not a
        // structural problem: the image could not be read, and verify stops.
        for s in &self.streams {
            match self.bitmap(s.id) {
                Err(e) if e.is_unreadable() => return Err(e),
                Err(e) => report.structure.push(e.to_string()),
                Ok(_) => {}
            }
        }
        for p in &self.manifest.partitions {
            if let Some(id) = p.stream {
                if id as usize >= self.streams.len() {
                    report.structure.push(format!(
                        "manifest: partition {} names missing stream {id}",
                        p.number
                    ));
                }
            }
        }
        for a in &self.manifest.table.areas {
            if a.stream as usize >= self.streams.len() {
                report.structure.push(format!(
                    "manifest: table area names missing stream {}",
                    a.stream
                ));
            }
        }
        // Chunks, in parallel.
        // A chunk that cannot be read (the medium or the share failed) is not damage: verify
        // stops with that error instead of listing every later chunk as bad.
        let next = AtomicUsize::new(0);
        let bad = Mutex::new(Vec::new());
        let unreadable: Mutex<Option<Error>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        let checked = AtomicU64::new(0);
        let threads = threads.clamp(1, 64);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    if cancel.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = self.index.get(i) else { break };
                    match self.read_chunk(e) {
                        Err(err @ Error::ChunkUnreadable { .. }) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut first = unreadable.lock().unwrap_or_else(|p| p.into_inner());
                            // The lowest chunk of those that failed, for a stable message.
                            if first
                                .as_ref()
                                .is_none_or(|f| chunk_key(&err) < chunk_key(f))
                            {
                                *first = Some(err);
                            }
                            break;
                        }
                        Err(err) => {
                            let b = BadChunk::from_error(e, &err, self);
                            bad.lock().unwrap_or_else(|p| p.into_inner()).push(b);
                        }
                        Ok(_) => {}
                    }
                    checked.fetch_add(1, Ordering::Relaxed);
                    progress.fetch_add(u64::from(e.uncompressed_len), Ordering::Relaxed);
                });
            }
        });
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if let Some(e) = unreadable.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let mut bad = bad.into_inner().unwrap_or_else(|p| p.into_inner());
        bad.sort_by_key(|b| (b.stream, b.start));
        report.chunks = checked.into_inner();
        report.bytes = self
            .index
            .iter()
            .map(|e| u64::from(e.uncompressed_len))
            .sum();
        report.bad = bad;
        Ok(report)
    }
}

/// Opens one volume read-only. The open never blocks (`O_NONBLOCK`: a FIFO or a device named
/// like a volume returns at once) and the result must be a regular file; sibling volumes, which
/// the image's name alone selects, are opened with `O_NOFOLLOW` (a symlink named like one is
/// refused), while the first volume the user named may be a symlink to an image.
fn open_volume_file(path: &Path, follow: bool) -> Result<FileVolume> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let name = path.display().to_string();
    let mut flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC;
    if !follow {
        flags |= nix::fcntl::OFlag::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) && !follow {
                Error::NotAVolumeFile {
                    path: name.clone(),
                    what: "a symlink",
                }
            } else {
                Error::read(&name, e)
            }
        })?;
    let meta = file.metadata().map_err(|e| Error::read(&name, e))?;
    let t = meta.file_type();
    if !t.is_file() {
        let what = if t.is_fifo() {
            "a FIFO"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_dir() {
            "a folder"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(Error::NotAVolumeFile { path: name, what });
    }
    let len = meta.len();
    let share = disk::netfs::network_mount(path).map(|n| {
        log::info!("{name} is on the {}", n.describe());
        n.describe()
    });
    Ok(FileVolume {
        file,
        path: name,
        len,
        retry_for: share.is_some().then(|| disk::netfs::policy().retry_for),
        share,
    })
}

fn read_volume_header(name: &str, io: &dyn BlockIo, len: u64) -> Result<VolumeHeader> {
    let n = len.min(VOLUME_HEADER_LEN as u64) as usize;
    let mut b = [0u8; VOLUME_HEADER_LEN];
    let head = b.get_mut(..n).unwrap_or_default();
    io.read_at(head, 0).map_err(|e| Error::read(name, e))?;
    let m = n.min(VOLUME_MAGIC.len());
    if b.get(..m) != VOLUME_MAGIC.get(..m) {
        return Err(Error::NotAnImage {
            path: name.to_string(),
        });
    }
    if n < VOLUME_HEADER_LEN {
        return Err(Error::Truncated {
            path: name.to_string(),
            len,
            detail: format!("a volume header needs {VOLUME_HEADER_LEN}"),
        });
    }
    // The crc32 first: a damaged version field is damage, not a newer format (every major
    // version keeps the magic, the versions and the crc32 at 60 where they are).
    let h = VolumeHeader::decode(&b).map_err(|d| corrupt(name, "volume header", d));
    let major = rd_u16(&b, 8);
    if major > FORMAT_MAJOR && h.is_ok() {
        return Err(Error::NewerFormat {
            path: name.to_string(),
            major,
        });
    }
    if major == 0 {
        return Err(corrupt(name, "volume header", "format version 0"));
    }
    h
}

/// Reads volume 1's key block and unlocks it with `password`.
fn unlock_image(
    name: &str,
    io: &dyn BlockIo,
    len: u64,
    head: &VolumeHeader,
    password: Option<&Passphrase>,
) -> Result<Sealer> {
    let Some(pass) = password else {
        return Err(Error::PasswordRequired {
            path: name.to_string(),
        });
    };
    let end = KEY_BLOCK_OFFSET + KEY_BLOCK_LEN as u64;
    if len < end {
        return Err(Error::Truncated {
            path: name.to_string(),
            len,
            detail: format!("an encrypted image's key block needs {end}"),
        });
    }
    let mut raw = [0u8; KEY_BLOCK_LEN];
    io.read_at(&mut raw, KEY_BLOCK_OFFSET)
        .map_err(|e| Error::read(name, e))?;
    let block = KeyBlock::decode(&raw).map_err(|d| corrupt(name, "key block", d))?;
    if block.used() == 0 {
        return Err(corrupt(name, "key block", "no key slot is in use"));
    }
    let (key, _) = unlock(&raw, &block, &head.uuid, pass).map_err(|e| match e {
        UnlockError::WrongPassword => Error::WrongPassword {
            path: name.to_string(),
        },
        UnlockError::Refused(d) => corrupt(name, "key block", d),
    })?;
    Sealer::new(&key, head.uuid, head.chunk_size).map_err(|detail| Error::Encryption {
        path: name.to_string(),
        detail,
    })
}

/// Whether the image whose first volume is `path` is encrypted (reads its volume header only).
pub fn is_encrypted(path: &Path) -> Result<bool> {
    let name = path.display().to_string();
    let v = open_volume_file(path, true)?;
    let h = read_volume_header(&name, &v, v.len)?;
    Ok(h.encrypted())
}

fn read_trailer(base: &str, last: &Volume, count: u32, head: &VolumeHeader) -> Result<Trailer> {
    let hint = if count > 1 || last.len > VOLUME_HEADER_LEN as u64 {
        format!(
            " (no trailer at the end of {}; if the image had more volumes, {} is missing)",
            last.name,
            volume_name(base, count + 1)
        )
    } else {
        String::new()
    };
    let incomplete = || Error::Incomplete {
        path: last.name.clone(),
        hint: hint.clone(),
    };
    if last.len < (VOLUME_HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(incomplete());
    }
    let mut b = [0u8; TRAILER_LEN];
    last.io
        .read_at(&mut b, last.len - TRAILER_LEN as u64)
        .map_err(|e| Error::read(&last.name, e))?;
    if b.get(..8) != Some(&TRAILER_MAGIC[..]) {
        return Err(incomplete());
    }
    let t = Trailer::decode(&b).map_err(|d| corrupt(&last.name, "trailer", d));
    let major = rd_u16(&b, 8);
    if major > FORMAT_MAJOR && t.is_ok() {
        return Err(Error::NewerFormat {
            path: last.name.clone(),
            major,
        });
    }
    let t = t?;
    if t.uuid != head.uuid {
        return Err(corrupt(
            &last.name,
            "trailer",
            format!(
                "belongs to image {}, not {}",
                format_uuid(&t.uuid),
                format_uuid(&head.uuid)
            ),
        ));
    }
    if t.flags & TRAILER_COMPLETE == 0 {
        return Err(incomplete());
    }
    if t.volumes > count {
        return Err(Error::MissingVolume {
            path: volume_name(base, count + 1),
        });
    }
    if t.volumes != count {
        return Err(corrupt(
            &last.name,
            "trailer",
            format!(
                "says the image has {} volumes but is in volume {count}",
                t.volumes
            ),
        ));
    }
    if t.chunk_size != head.chunk_size {
        return Err(corrupt(
            &last.name,
            "trailer",
            "chunk size differs from the volume header",
        ));
    }
    Ok(t)
}

fn check_index(
    name: &str,
    index: &[IndexEntry],
    streams: &[Stream],
    volumes: &[Volume],
    chunk_size: u32,
    tag: u64,
) -> Result<()> {
    let cs = u64::from(chunk_size);
    let mut prev: Option<(u32, u64)> = None;
    for (i, e) in index.iter().enumerate() {
        let bad = |d: String| corrupt(name, "index", format!("entry {i}: {d}"));
        let Some(s) = streams.get(e.stream as usize) else {
            return Err(bad(format!("stream {} does not exist", e.stream)));
        };
        if !e.logical_offset.is_multiple_of(cs) || e.logical_offset >= s.length {
            return Err(bad(format!(
                "offset {} is not a chunk of {}",
                e.logical_offset,
                s.name()
            )));
        }
        if u64::from(e.uncompressed_len) != (s.length - e.logical_offset).min(cs) {
            return Err(bad(format!("uncompressed length {}", e.uncompressed_len)));
        }
        if u64::from(e.compressed_len) < MIN_FRAME_LEN + tag
            || u64::from(e.compressed_len) > max_frame_len(chunk_size) + tag
        {
            return Err(bad(format!("compressed length {}", e.compressed_len)));
        }
        let Some(v) = volumes.get((e.volume as usize).wrapping_sub(1)) else {
            return Err(bad(format!("volume {} does not exist", e.volume)));
        };
        if e.volume_offset < v.data_start
            || e.volume_offset.saturating_add(e.record_len()) > v.data_end
        {
            return Err(bad(format!(
                "record at {} lies outside the data of {}",
                e.volume_offset, v.name
            )));
        }
        let key = (e.stream, e.logical_offset);
        if prev.is_some_and(|p| p >= key) {
            return Err(bad("entries are not sorted or repeat".into()));
        }
        prev = Some(key);
    }
    Ok(())
}

/// (stream, first byte) of a chunk error, to order them.
fn chunk_key(e: &Error) -> (u32, u64) {
    match e {
        Error::ChunkUnreadable { stream, start, .. }
        | Error::ChunkCorrupt { stream, start, .. } => (*stream, *start),
        _ => (u32::MAX, u64::MAX),
    }
}

/// One damaged chunk found by verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadChunk {
    /// Stream id.
    pub stream: u32,
    /// Human name of the stream.
    pub stream_name: String,
    /// Chunk number inside the stream.
    pub chunk: u64,
    /// First logical byte of the chunk in its stream.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// The volume holding it.
    pub volume: String,
    /// What is wrong.
    pub problem: String,
}

impl BadChunk {
    fn from_error(e: &IndexEntry, err: &Error, r: &ImageReader) -> Self {
        match err {
            Error::ChunkCorrupt {
                path,
                chunk,
                stream,
                stream_name,
                start,
                end,
                problem,
                ..
            } => BadChunk {
                stream: *stream,
                stream_name: stream_name.clone(),
                chunk: *chunk,
                start: *start,
                end: *end,
                volume: path.clone(),
                problem: problem.clone(),
            },
            other => BadChunk {
                stream: e.stream,
                stream_name: r
                    .streams
                    .get(e.stream as usize)
                    .map(Stream::name)
                    .unwrap_or_default(),
                chunk: e.logical_offset / u64::from(r.chunk_size),
                start: e.logical_offset,
                end: e.logical_offset + u64::from(e.uncompressed_len),
                volume: format!("volume {}", e.volume),
                problem: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for BadChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chunk {} of {}, bytes {}..{}, in {}: {}",
            self.chunk, self.stream_name, self.start, self.end, self.volume, self.problem
        )
    }
}

/// What verify found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Chunks checked.
    pub chunks: u64,
    /// Uncompressed bytes in stored chunks.
    pub bytes: u64,
    /// Every damaged chunk, sorted by stream and offset.
    pub bad: Vec<BadChunk>,
    /// Structural problems (overlapping chunks, damaged bitmaps, dangling references).
    pub structure: Vec<String>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.bad.is_empty() && self.structure.is_empty()
    }
}

const CACHE_CHUNKS: usize = 4;

/// A [`BlockIo`] view of one stream of an image (read-only).
pub struct StreamReader {
    reader: Arc<ImageReader>,
    stream: Stream,
    cache: Mutex<VecDeque<(u64, Arc<Vec<u8>>)>>,
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("image", &self.reader.name)
            .field("stream", &self.stream.id)
            .finish()
    }
}

impl StreamReader {
    /// The stream read.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The image.
    pub fn image(&self) -> &Arc<ImageReader> {
        &self.reader
    }

    fn chunk(&self, offset: u64) -> io::Result<Option<Arc<Vec<u8>>>> {
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(pos) = cache.iter().position(|(o, _)| *o == offset) {
                if let Some(hit) = cache.remove(pos) {
                    let data = hit.1.clone();
                    cache.push_front(hit);
                    return Ok(Some(data));
                }
            }
        }
        let chunks = self.reader.chunks_of(self.stream.id);
        let Ok(i) = chunks.binary_search_by_key(&offset, |e| e.logical_offset) else {
            return Ok(None);
        };
        let Some(e) = chunks.get(i) else {
            return Ok(None);
        };
        let data = Arc::new(self.reader.read_chunk(e).map_err(|err| {
            // The image error travels inside (`Error::in_io`); a chunk that could not be read
            // keeps its read's kind, a damaged one is invalid data. Neither carries an OS error
            // code: what reads a stream never takes it for a bad sector of its own.
            let kind = match &err {
                Error::ChunkUnreadable { source, .. } => source.kind(),
                _ => io::ErrorKind::InvalidData,
            };
            io::Error::new(kind, err)
        })?);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.push_front((offset, data.clone()));
        cache.truncate(CACHE_CHUNKS);
        Ok(Some(data))
    }
}

impl BlockIo for StreamReader {
    fn len(&self) -> u64 {
        self.stream.length
    }

    fn logical_sector_size(&self) -> u32 {
        match self.reader.manifest.source.logical_sector_size {
            s @ (512 | 1024 | 2048 | 4096) => s,
            _ => 512,
        }
    }

    fn physical_sector_size(&self) -> u32 {
        match self.reader.manifest.source.physical_sector_size {
            s if s.is_power_of_two() && (512..=65536).contains(&s) => s,
            _ => self.logical_sector_size(),
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let len = buf.len() as u64;
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.stream.length)
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: range {offset}+{len} is past the end ({} bytes)",
                    self.describe(),
                    self.stream.length
                ),
            ));
        }
        let cs = u64::from(self.reader.chunk_size);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let chunk_off = pos - pos % cs;
            let within = (pos - chunk_off) as usize;
            let n = (cs as usize - within).min(buf.len() - done);
            let Some(dst) = buf.get_mut(done..done + n) else {
                break;
            };
            match self.chunk(chunk_off)? {
                None => dst.fill(0),
                Some(data) => match data.get(within..within + n) {
                    Some(src) => dst.copy_from_slice(src),
                    None => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: chunk at {chunk_off} is too short", self.describe()),
                        ))
                    }
                },
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is read-only", self.describe()),
        ))
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} {}", self.reader.name, self.stream.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_read_that_a_share_ends_early_is_retried_then_fails_as_a_share_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.lbi");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        // The volume was 8192 bytes when opened; the share now ends it at 4096.
        let v = FileVolume {
            file: File::open(&path).unwrap(),
            path: path.display().to_string(),
            len: 8192,
            retry_for: Some(Duration::from_millis(300)),
            share: Some("SFTP folder root@h:/imgs".into()),
        };
        let mut buf = [0u8; 1024];
        v.read_at(&mut buf, 1024).unwrap();
        assert_eq!(buf, [7u8; 1024]);
        let t = Instant::now();
        let e = v.read_at(&mut buf, 4000).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(300), "not retried");
        assert!(disk::netfs::is_transient(&e), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(
                "the share ended the read of bytes 4000..5024 of this 8192-byte file early"
            ),
            "{msg}"
        );
        assert!(msg.contains("the server did not come back"), "{msg}");
        // A local file that ends early is not retried.
        let local = FileVolume {
            retry_for: None,
            share: None,
            ..v
        };
        let t = Instant::now();
        let e = local.read_at(&mut buf, 4000).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(t.elapsed() < Duration::from_millis(300));
    }
}
