//! Writing an image: [`compress_chunk`] (pure CPU work, any thread) and [`ImageWriter`] (ordered
//! I/O, volume splitting, metadata and the trailer that makes the image valid).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::bitmap::Bitmap;
use crate::crypt::{new_image_keys, Domain, KdfParams, Passphrase, Sealer, KEY_BLOCK_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::{
    crc, format_uuid, max_frame_len, valid_chunk_size, BitmapRef, IndexEntry, StreamEntry,
    StreamKind, Trailer, VolumeHeader, CHUNK_HEADER_LEN, DEFAULT_CHUNK_SIZE, FORMAT_MAJOR,
    FORMAT_MINOR, INDEX_ENTRY_LEN, MAX_CHUNK_SIZE, MAX_MANIFEST_LEN, MAX_STREAMS, MAX_VOLUMES,
    STREAM_ENTRY_LEN, TRAILER_COMPLETE, TRAILER_ENCRYPTED, TRAILER_LEN, VOLUME_ENCRYPTED,
    VOLUME_HEADER_LEN,
};
use crate::manifest::Manifest;

/// How an image is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Bytes of logical data per chunk: a power of two, 4 KiB–4 MiB (the tool uses 1–4 MiB).
    pub chunk_size: u32,
    /// Largest size of each volume file; `None` writes one file.
    pub split_size: Option<u64>,
    /// zstd compression level.
    pub level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            split_size: None,
            level: 3,
        }
    }
}

/// What a new stream is.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// What the stream holds.
    pub kind: StreamKind,
    /// Length of the stream's logical byte space.
    pub length: u64,
    /// Where the stream starts on the source disk.
    pub source_offset: u64,
    /// Partition number (0 when the stream is not a partition).
    pub partition: u32,
    /// The used-block bitmap, when the content was read through one.
    pub bitmap: Option<Bitmap>,
}

/// The path of volume `n` (1-based) of the image at `base`: `x.lbi`, `x.lbi.002`, …
pub fn volume_path(base: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        base.to_path_buf()
    } else {
        let mut s = base.as_os_str().to_os_string();
        s.push(format!(".{n:03}"));
        PathBuf::from(s)
    }
}

/// A chunk ready to be written: compressed by [`compress_chunk`] on any thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedChunk {
    /// Stream id.
    pub stream: u32,
    /// Logical offset inside the stream.
    pub logical_offset: u64,
    /// Length of the uncompressed data.
    pub uncompressed_len: u32,
    /// crc32 of the uncompressed data.
    pub crc_uncompressed: u32,
    /// The zstd frame; `None` when the data is all zeros (the chunk is then not stored).
    pub frame: Option<Vec<u8>>,
    /// crc32 of `frame` as [`compress_chunk`] made it (computed on the compressing thread, not
    /// the writer's).
    crc_frame: u32,
}

impl CompressedChunk {
    /// Bytes the chunk occupies in memory.
    pub fn memory_len(&self) -> usize {
        self.frame.as_ref().map_or(0, Vec::len)
    }
}

fn is_zero(data: &[u8]) -> bool {
    data.chunks(4096)
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// Samples [`looks_incompressible`] compresses, spread over the chunk.
const SAMPLES: usize = 8;
/// Bytes of each sample.
const SAMPLE_LEN: usize = 8 << 10;
/// A sample that compresses to more than this fraction (in 1/1000) of its size gains nothing.
const INCOMPRESSIBLE_PER_MILLE: usize = 985;
/// The largest block of a zstd frame.
const ZSTD_MAX_BLOCK: usize = 128 << 10;

/// Whether compressing `data` would gain nothing: none of [`SAMPLES`] samples spread over it
/// compresses by more than 1.5 %. Already-compressed files (media, archives) and encrypted
/// volumes imaged whole are stored instead of compressed, at a fraction of the CPU time (which
/// on a slow CPU decides the speed of a backup to a network share). Chunks under 16 samples'
/// size are always compressed.
fn looks_incompressible(c: &mut zstd::bulk::Compressor<'_>, data: &[u8]) -> std::io::Result<bool> {
    if data.len() < 16 * SAMPLES * SAMPLE_LEN {
        return Ok(false);
    }
    let step = (data.len() - SAMPLE_LEN) / (SAMPLES - 1);
    for i in 0..SAMPLES {
        let at = i * step;
        let sample = &data[at..at + SAMPLE_LEN];
        if c.compress(sample)?.len() * 1000 < sample.len() * INCOMPRESSIBLE_PER_MILLE {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `data` as a zstd frame of raw (stored) blocks (RFC 8878 §3.1.1): any zstd decoder reads it;
/// the image format does not change. The frame content size is given in 8 bytes and the frame is
/// a single segment, so no window size is needed; no content checksum (chunks carry a crc32).
/// Returns the frame, the crc32 of `data` and the crc32 of the frame, from one pass over `data`.
fn raw_frame(data: &[u8]) -> (Vec<u8>, u32, u32) {
    const MAGIC: u32 = 0xFD2F_B528;
    // Frame header descriptor: content size in 8 bytes (0b11 << 6), single segment (1 << 5).
    const DESCRIPTOR: u8 = 0b1110_0000;
    let blocks = data.len().div_ceil(ZSTD_MAX_BLOCK).max(1);
    let mut f = Vec::with_capacity(4 + 1 + 8 + 3 * blocks + data.len());
    f.extend_from_slice(&MAGIC.to_le_bytes());
    f.push(DESCRIPTOR);
    f.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let mut crc_data = crc32fast::Hasher::new();
    let mut crc_frame = crc32fast::Hasher::new();
    let mut pieces = data.chunks(ZSTD_MAX_BLOCK).peekable();
    if pieces.peek().is_none() {
        // One empty last block.
        f.extend_from_slice(&[1, 0, 0]);
    }
    let mut hashed = 0;
    while let Some(piece) = pieces.next() {
        // Block header, 3 bytes little-endian: last-block bit, type 0 (raw), size << 3.
        let last = u32::from(pieces.peek().is_none());
        let header = last | ((piece.len() as u32) << 3);
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        // The frame's bytes up to this piece, then the piece's crc folded into both sums.
        crc_frame.update(&f[hashed..]);
        let mut p = crc32fast::Hasher::new();
        p.update(piece);
        crc_data.combine(&p);
        crc_frame.combine(&p);
        f.extend_from_slice(piece);
        hashed = f.len();
    }
    crc_frame.update(&f[hashed..]);
    (f, crc_data.finalize(), crc_frame.finalize())
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// Compresses one chunk of `stream` starting at `logical_offset`: crc32 of the data, an
/// independent zstd frame at `level`, crc32 of the frame. All-zero data yields a chunk without a
/// frame. Pure CPU work: call it from as many threads as there are cores.
pub fn compress_chunk(
    stream: u32,
    logical_offset: u64,
    data: &[u8],
    level: i32,
) -> Result<CompressedChunk> {
    let len = u32::try_from(data.len())
        .ok()
        .filter(|&l| l <= MAX_CHUNK_SIZE)
        .ok_or_else(|| Error::Compress {
            stream,
            offset: logical_offset,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "chunk of {} bytes is larger than {MAX_CHUNK_SIZE}",
                    data.len()
                ),
            ),
        })?;
    if is_zero(data) {
        return Ok(CompressedChunk {
            stream,
            logical_offset,
            uncompressed_len: len,
            crc_uncompressed: crc(data),
            frame: None,
            crc_frame: 0,
        });
    }
    let (frame, crc_uncompressed, crc_frame) = COMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            let reuse = matches!(&*slot, Some((l, _)) if *l == level);
            if !reuse {
                *slot = Some((level, zstd::bulk::Compressor::new(level)?));
            }
            match slot.as_mut() {
                Some((_, c)) => {
                    if looks_incompressible(c, data)? {
                        Ok(raw_frame(data))
                    } else {
                        let frame = c.compress(data)?;
                        let crc_frame = crc(&frame);
                        Ok((frame, crc(data), crc_frame))
                    }
                }
                None => Err(std::io::Error::other("no zstd compressor")),
            }
        })
        .map_err(|source| Error::Compress {
            stream,
            offset: logical_offset,
            source,
        })?;
    Ok(CompressedChunk {
        stream,
        logical_offset,
        uncompressed_len: len,
        crc_uncompressed,
        frame: Some(frame),
        crc_frame,
    })
}

/// What [`ImageWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// The volume files, in order.
    pub volumes: Vec<PathBuf>,
    /// The image's UUID.
    pub uuid: String,
    /// Chunks stored (all-zero and absent chunks excluded).
    pub chunks: u64,
    /// Logical bytes given to the writer (including all-zero chunks).
    pub bytes_in: u64,
    /// Bytes written to all volumes.
    pub bytes_written: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Failed,
    Done,
}

struct StreamDef {
    spec: StreamSpec,
}

/// Writes one image, possibly split into volumes. Chunks are written in the order given (the
/// index is sorted at the end); `finish` writes the bitmaps, stream table, index, manifest and
/// finally the trailer, syncing each volume and the directory. Until then every volume lacks a
/// trailer and readers report the image as incomplete.
pub struct ImageWriter {
    base: PathBuf,
    name: String,
    opts: WriterOptions,
    uuid: [u8; 16],
    volumes: Vec<PathBuf>,
    out: Option<Out>,
    /// The network share the image is written to (writes under a stall deadline).
    net: Option<disk::netfs::NetMount>,
    /// A write on the share stalled past the deadline or failed the way a vanished server makes
    /// it fail: the server is taken for gone.
    server_gone: bool,
    pos: u64,
    streams: Vec<StreamDef>,
    index: Vec<IndexEntry>,
    seen: HashSet<(u32, u64)>,
    state: State,
    bytes_in: u64,
    bytes_written: u64,
    /// Encrypted images: the sealer and the key block written after volume 1's header.
    crypt: Option<(Sealer, Box<[u8; KEY_BLOCK_LEN]>)>,
}

impl std::fmt::Debug for ImageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageWriter")
            .field("path", &self.name)
            .field("volumes", &self.volumes.len())
            .field("chunks", &self.index.len())
            .field("state", &self.state)
            .field("encrypted", &self.crypt.is_some())
            .finish()
    }
}

const WRITE_BUFFER: usize = 1 << 20;

/// Where the current volume's bytes go: a buffered local file, or a file on a network share
/// written by an I/O thread under a stall deadline (`disk::netfs`).
enum Out {
    Local(BufWriter<File>),
    Net(disk::netfs::StallWriter),
}

impl Out {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Local(w) => w.write_all(b),
            Out::Net(w) => w.write_all(b),
        }
    }

    /// Flushes and `fdatasync`s.
    fn sync_data(&mut self) -> std::io::Result<()> {
        match self {
            Out::Local(w) => w.flush().and_then(|()| w.get_ref().sync_data()),
            Out::Net(w) => w.sync(),
        }
    }

    /// Flushes, syncs everything and closes.
    fn close(self) -> std::io::Result<()> {
        match self {
            Out::Local(w) => w
                .into_inner()
                .map_err(|e| e.into_parts().0)
                .and_then(|f| f.sync_all()),
            Out::Net(w) => w.finish().and_then(|f| {
                disk::netfs::with_deadline(disk::netfs::policy().stall, move || f.sync_all())
            }),
        }
    }

    /// Drops what is buffered without waiting for the device or the server.
    fn discard(self) {
        match self {
            Out::Local(w) => drop(w.into_parts()),
            Out::Net(w) => w.discard(),
        }
    }

    fn stalled(&self) -> bool {
        matches!(self, Out::Net(w) if w.stalled())
    }
}

fn random_uuid() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut u = [0u8; 16];
    let from_os = File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut u))
        .is_ok();
    if !from_os {
        // std's RandomState is seeded from the OS per process; mix in the time for good measure.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, half) in u.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(nanos);
            h.write_usize(i);
            h.write_u32(std::process::id());
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Lists existing files named `<base>.<digits>` (volumes of an earlier image).
pub(crate) fn sibling_volumes(base: &Path) -> Vec<(u32, PathBuf)> {
    let Some(file_name) = base.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{file_name}.");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name.strip_prefix(&prefix) else {
            continue;
        };
        if digits.len() >= 3 && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = digits.parse::<u32>() {
                if n >= 2 {
                    out.push((n, base.with_file_name(name)));
                }
            }
        }
    }
    out.sort();
    out
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl ImageWriter {
    /// Creates the first volume of a new image at `path` (which must not exist, nor any
    /// `path.NNN` volume of an earlier image).
    pub fn create(path: &Path, opts: WriterOptions) -> Result<Self> {
        Self::create_inner(path, opts, None)
    }

    /// Like [`ImageWriter::create`], for an encrypted image (format 1.1): a random data key,
    /// wrapped in key slot 0 under a key derived from `password` with Argon2id `kdf`, seals every
    /// chunk, bitmap, the stream table, the index and the manifest. The key derivation runs here
    /// (about a second with the default parameters).
    pub fn create_encrypted(
        path: &Path,
        opts: WriterOptions,
        password: &Passphrase,
        kdf: KdfParams,
    ) -> Result<Self> {
        Self::create_inner(path, opts, Some((password, kdf)))
    }

    fn create_inner(
        path: &Path,
        opts: WriterOptions,
        encrypt: Option<(&Passphrase, KdfParams)>,
    ) -> Result<Self> {
        let name = path.display().to_string();
        if !valid_chunk_size(opts.chunk_size) {
            return Err(Error::InvalidOptions(format!(
                "chunk size {} is not a power of two between 4 KiB and 4 MiB",
                opts.chunk_size
            )));
        }
        let levels = zstd::compression_level_range();
        if !levels.contains(&opts.level) {
            return Err(Error::InvalidOptions(format!(
                "compression level {} is outside {}..={}",
                opts.level,
                levels.start(),
                levels.end()
            )));
        }
        let extra = if encrypt.is_some() {
            (KEY_BLOCK_LEN + TAG_LEN) as u64
        } else {
            0
        };
        if let Some(split) = opts.split_size {
            let need = (VOLUME_HEADER_LEN + CHUNK_HEADER_LEN) as u64
                + max_frame_len(opts.chunk_size)
                + extra;
            if split < need {
                return Err(Error::SplitTooSmall {
                    path: name,
                    split,
                    what: "a chunk",
                    need,
                });
            }
        }
        if let Some((_, stale)) = sibling_volumes(path).into_iter().next() {
            return Err(Error::AlreadyExists {
                path: stale.display().to_string(),
            });
        }
        let uuid = random_uuid();
        let crypt = match encrypt {
            None => None,
            Some((pass, kdf)) => {
                let keys = new_image_keys(&uuid, pass, kdf)
                    .and_then(|(key, block)| Ok((Sealer::new(&key, uuid, opts.chunk_size)?, block)))
                    .map_err(|detail| Error::Encryption {
                        path: name.clone(),
                        detail,
                    })?;
                Some((keys.0, Box::new(keys.1.encode())))
            }
        };
        let mut w = ImageWriter {
            base: path.to_path_buf(),
            name,
            opts,
            uuid,
            volumes: Vec::new(),
            out: None,
            net: disk::netfs::network_mount(path),
            server_gone: false,
            pos: 0,
            streams: Vec::new(),
            index: Vec::new(),
            seen: HashSet::new(),
            state: State::Open,
            bytes_in: 0,
            bytes_written: 0,
            crypt,
        };
        if let Some(n) = &w.net {
            log::info!("{} is on the {}", w.name, n.describe());
        }
        w.open_volume()?;
        log::info!(
            "writing {}image {} ({})",
            if w.crypt.is_some() { "encrypted " } else { "" },
            w.name,
            format_uuid(&w.uuid)
        );
        Ok(w)
    }

    /// The image's UUID.
    pub fn uuid(&self) -> String {
        format_uuid(&self.uuid)
    }

    /// The chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.opts.chunk_size
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.opts.level
    }

    /// Volume files created so far.
    pub fn volumes(&self) -> &[PathBuf] {
        &self.volumes
    }

    /// Bytes written to all volumes so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    fn check_open(&self) -> Result<()> {
        match self.state {
            State::Open => Ok(()),
            _ => Err(Error::Poisoned {
                path: self.name.clone(),
            }),
        }
    }

    fn fail<T>(&mut self, e: Error) -> Result<T> {
        self.state = State::Failed;
        Err(e)
    }

    fn open_volume(&mut self) -> Result<()> {
        let n = self.volumes.len() as u32 + 1;
        let path = volume_path(&self.base, n);
        let pname = path.display().to_string();
        if n > MAX_VOLUMES {
            return self.fail(Error::InvalidOptions(format!(
                "{pname}: more than {MAX_VOLUMES} volumes; choose a larger split size"
            )));
        }
        // Private (0600: a volume holds a whole disk), and never through a link someone left at
        // the name.
        let file = match disk::create_private(&path, disk::Existing::Refuse) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return self.fail(Error::AlreadyExists { path: pname });
            }
            Err(e) => return self.fail(Error::write(&pname, "creating", e)),
        };
        self.volumes.push(path);
        let mut out = match &self.net {
            None => Out::Local(BufWriter::with_capacity(WRITE_BUFFER, file)),
            Some(n) => {
                let sync_every = n.caches_writes().then_some(disk::netfs::SYNC_EVERY);
                match disk::netfs::StallWriter::new(
                    file,
                    &pname,
                    disk::netfs::policy().stall,
                    sync_every,
                ) {
                    Ok(w) => Out::Net(w),
                    Err(e) => return self.fail(Error::write(&pname, "writing", e)),
                }
            }
        };
        let header = VolumeHeader {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            uuid: self.uuid,
            volume: n,
            chunk_size: self.opts.chunk_size,
            flags: if self.crypt.is_some() {
                VOLUME_ENCRYPTED
            } else {
                0
            },
        };
        if let Err(e) = out.write_all(&header.encode()) {
            return self.fail(Error::write(&pname, "writing", e));
        }
        let mut start = VOLUME_HEADER_LEN as u64;
        if let (1, Some((_, block))) = (n, &self.crypt) {
            if let Err(e) = out.write_all(&block[..]) {
                return self.fail(Error::write(&pname, "writing", e));
            }
            start += KEY_BLOCK_LEN as u64;
        }
        self.out = Some(out);
        self.pos = start;
        self.bytes_written += start;
        log::debug!("opened volume {pname}");
        Ok(())
    }

    fn current_name(&self) -> String {
        self.volumes
            .last()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| self.name.clone())
    }

    /// Flushes and syncs the current volume and closes it.
    fn close_volume(&mut self) -> Result<()> {
        let pname = self.current_name();
        if let Some(out) = self.out.take() {
            if let Err(e) = out.close() {
                return self.io_fail(&pname, "syncing", e);
            }
        }
        Ok(())
    }

    fn write_bytes(&mut self, parts: &[&[u8]]) -> Result<()> {
        let pname = self.current_name();
        let Some(out) = self.out.as_mut() else {
            return self.fail(Error::Poisoned { path: pname });
        };
        let mut res = Ok(());
        let mut n = 0u64;
        for p in parts {
            if let Err(e) = out.write_all(p) {
                res = Err(e);
                break;
            }
            n += p.len() as u64;
        }
        match res {
            Ok(()) => {
                self.pos += n;
                self.bytes_written += n;
                Ok(())
            }
            Err(e) => self.io_fail(&pname, "writing", e),
        }
    }

    fn room(&self) -> u64 {
        self.opts
            .split_size
            .map_or(u64::MAX, |s| s.saturating_sub(self.pos))
    }

    /// Adds a stream and returns its id (0, 1, 2, … in order of addition).
    pub fn add_stream(&mut self, spec: StreamSpec) -> Result<u32> {
        self.check_open()?;
        let id = self.streams.len() as u32;
        if id >= MAX_STREAMS {
            return Err(Error::InvalidOptions(format!(
                "more than {MAX_STREAMS} streams"
            )));
        }
        if let Some(bm) = &spec.bitmap {
            self.check_bitmap(id, spec.length, bm)?;
        }
        self.streams.push(StreamDef { spec });
        Ok(id)
    }

    fn check_bitmap(&self, id: u32, length: u64, bm: &Bitmap) -> Result<()> {
        let need = length.div_ceil(u64::from(bm.block_size()));
        if bm.blocks() != need {
            return Err(Error::InvalidChunk {
                path: self.name.clone(),
                stream: id,
                offset: 0,
                detail: format!(
                    "bitmap has {} blocks, a stream of {length} bytes needs {need}",
                    bm.blocks()
                ),
            });
        }
        Ok(())
    }

    /// Sets (or replaces) the used-block bitmap of `stream`.
    pub fn set_bitmap(&mut self, stream: u32, bitmap: Bitmap) -> Result<()> {
        self.check_open()?;
        let Some(def) = self.streams.get(stream as usize) else {
            return Err(Error::NoSuchStream {
                path: self.name.clone(),
                stream,
            });
        };
        self.check_bitmap(stream, def.spec.length, &bitmap)?;
        if let Some(def) = self.streams.get_mut(stream as usize) {
            def.spec.bitmap = Some(bitmap);
        }
        Ok(())
    }

    /// Writes one chunk made by [`compress_chunk`]. Chunks may come in any order but each
    /// (stream, offset) only once; chunks never given read as zeros.
    pub fn write_chunk(&mut self, chunk: CompressedChunk) -> Result<()> {
        self.check_open()?;
        let cs = u64::from(self.opts.chunk_size);
        let bad = |detail: String| Error::InvalidChunk {
            path: self.name.clone(),
            stream: chunk.stream,
            offset: chunk.logical_offset,
            detail,
        };
        let Some(def) = self.streams.get(chunk.stream as usize) else {
            return Err(Error::NoSuchStream {
                path: self.name.clone(),
                stream: chunk.stream,
            });
        };
        let length = def.spec.length;
        if !chunk.logical_offset.is_multiple_of(cs) || chunk.logical_offset >= length {
            return Err(bad(format!(
                "offset is not a multiple of the chunk size {cs} inside the stream's {length} bytes"
            )));
        }
        let expect = (length - chunk.logical_offset).min(cs);
        if u64::from(chunk.uncompressed_len) != expect {
            return Err(bad(format!(
                "{} bytes of data, expected {expect}",
                chunk.uncompressed_len
            )));
        }
        if !self.seen.insert((chunk.stream, chunk.logical_offset)) {
            return Err(bad("chunk written twice".to_string()));
        }
        self.bytes_in += expect;
        let Some(mut frame) = chunk.frame else {
            return Ok(());
        };
        if frame.len() as u64 > max_frame_len(self.opts.chunk_size) {
            return Err(bad(format!(
                "zstd frame of {} bytes is larger than allowed",
                frame.len()
            )));
        }
        let mut crc_uncompressed = chunk.crc_uncompressed;
        if let Some((sealer, _)) = &self.crypt {
            // The crc32 of the plain data would let anyone confirm a guess of a chunk's content:
            // encrypted images store 0 there; the tag authenticates the data instead.
            crc_uncompressed = 0;
            sealer
                .seal(
                    Domain::Chunk,
                    chunk.stream,
                    chunk.logical_offset,
                    u64::from(chunk.uncompressed_len),
                    &mut frame,
                )
                .map_err(bad)?;
        }
        let frame_len = frame.len() as u64;
        let record = CHUNK_HEADER_LEN as u64 + frame_len;
        if record > self.room() {
            self.close_volume()?;
            self.open_volume()?;
        }
        let entry = IndexEntry {
            stream: chunk.stream,
            logical_offset: chunk.logical_offset,
            volume: self.volumes.len() as u32,
            volume_offset: self.pos,
            compressed_len: frame_len as u32,
            uncompressed_len: chunk.uncompressed_len,
            // A sealed frame is not the one the compressing thread summed.
            crc_compressed: if self.crypt.is_some() {
                crc(&frame)
            } else {
                chunk.crc_frame
            },
            crc_uncompressed,
        };
        let header = entry.header().encode();
        self.write_bytes(&[&header, &frame])?;
        self.index.push(entry);
        Ok(())
    }

    /// Writes bitmaps, stream table, index and manifest, syncs, then writes the trailer and syncs
    /// the volume and its directory. Only now is the image valid.
    pub fn finish(mut self, manifest: &Manifest) -> Result<ImageSummary> {
        self.check_open()?;
        let text = manifest.to_toml().map_err(|detail| Error::Manifest {
            path: self.name.clone(),
            detail,
        })?;
        if text.len() as u64 > MAX_MANIFEST_LEN {
            return Err(Error::Manifest {
                path: self.name.clone(),
                detail: format!(
                    "{} bytes is more than the {MAX_MANIFEST_LEN} allowed",
                    text.len()
                ),
            });
        }
        // Compress the bitmaps first: their sizes decide whether the metadata fits this volume.
        let mut bitmaps: Vec<Option<(Vec<u8>, u32, u32)>> = Vec::with_capacity(self.streams.len());
        for (id, def) in self.streams.iter().enumerate() {
            match &def.spec.bitmap {
                Some(bm) => {
                    let mut stored =
                        zstd::bulk::compress(bm.bits(), 3).map_err(|source| Error::Compress {
                            stream: id as u32,
                            offset: 0,
                            source,
                        })?;
                    let mut raw_crc = crc(bm.bits());
                    if let Some((sealer, _)) = &self.crypt {
                        raw_crc = 0;
                        sealer
                            .seal(
                                Domain::Bitmap,
                                id as u32,
                                0,
                                bm.bits().len() as u64,
                                &mut stored,
                            )
                            .map_err(|detail| Error::Encryption {
                                path: self.name.clone(),
                                detail,
                            })?;
                    }
                    let stored_crc = crc(&stored);
                    bitmaps.push(Some((stored, stored_crc, raw_crc)));
                }
                None => bitmaps.push(None),
            }
        }
        let bitmap_bytes: u64 = bitmaps
            .iter()
            .flatten()
            .map(|(b, _, _)| b.len() as u64)
            .sum();
        self.index
            .sort_unstable_by_key(|e| (e.stream, e.logical_offset));
        let tags = if self.crypt.is_some() {
            3 * TAG_LEN as u64
        } else {
            0
        };
        let streams_len = (self.streams.len() * STREAM_ENTRY_LEN) as u64;
        let index_len = (self.index.len() * INDEX_ENTRY_LEN) as u64;
        let meta =
            bitmap_bytes + streams_len + index_len + text.len() as u64 + TRAILER_LEN as u64 + tags;
        if meta > self.room() {
            if let Some(split) = self.opts.split_size {
                let need = VOLUME_HEADER_LEN as u64 + meta;
                if need > split {
                    let e = Error::SplitTooSmall {
                        path: self.name.clone(),
                        split,
                        what: "the metadata",
                        need,
                    };
                    return self.fail(e);
                }
            }
            self.close_volume()?;
            self.open_volume()?;
        }
        // Bitmaps come first, in stream order, then the stream table that points at them.
        let mut entries = Vec::with_capacity(self.streams.len());
        let mut bitmap_offset = self.pos;
        for (id, (def, bm)) in self.streams.iter().zip(&bitmaps).enumerate() {
            let bitmap = match (bm, &def.spec.bitmap) {
                (Some((stored, crc_stored, crc_raw)), Some(b)) => {
                    let r = BitmapRef {
                        block_size: b.block_size(),
                        offset: bitmap_offset,
                        stored_len: stored.len() as u32,
                        crc_stored: *crc_stored,
                        crc_raw: *crc_raw,
                    };
                    bitmap_offset += stored.len() as u64;
                    Some(r)
                }
                _ => None,
            };
            entries.push(StreamEntry {
                id: id as u32,
                kind: def.spec.kind,
                length: def.spec.length,
                source_offset: def.spec.source_offset,
                partition: def.spec.partition,
                bitmap,
            });
        }
        for (stored, _, _) in bitmaps.iter().flatten() {
            self.write_bytes(&[stored])?;
        }
        let streams_offset = self.pos;
        let mut stream_table: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        let mut index: Vec<u8> = self.index.iter().flat_map(|e| e.encode()).collect();
        let mut text = text.into_bytes();
        if let Some((sealer, _)) = &self.crypt {
            let sealed = [
                (Domain::StreamTable, &mut stream_table),
                (Domain::Index, &mut index),
                (Domain::Manifest, &mut text),
            ]
            .into_iter()
            .try_for_each(|(domain, bytes)| {
                let plain = bytes.len() as u64;
                sealer.seal(domain, 0, 0, plain, bytes)
            });
            if let Err(detail) = sealed {
                let e = Error::Encryption {
                    path: self.name.clone(),
                    detail,
                };
                return self.fail(e);
            }
        }
        self.write_bytes(&[&stream_table])?;
        let index_offset = self.pos;
        self.write_bytes(&[&index])?;
        let manifest_offset = self.pos;
        self.write_bytes(&[&text])?;
        let trailer = Trailer {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            uuid: self.uuid,
            volumes: self.volumes.len() as u32,
            flags: TRAILER_COMPLETE
                | if self.crypt.is_some() {
                    TRAILER_ENCRYPTED
                } else {
                    0
                },
            chunk_size: self.opts.chunk_size,
            stream_count: entries.len() as u32,
            index_count: self.index.len() as u64,
            streams_offset,
            streams_len: stream_table.len() as u32,
            streams_crc: crc(&stream_table),
            index_offset,
            index_len: index.len() as u64,
            index_crc: crc(&index),
            manifest_len: text.len() as u32,
            manifest_offset,
            manifest_crc: crc(&text),
        };
        // Everything the trailer points at must be durable before the trailer itself.
        self.sync_current()?;
        self.write_bytes(&[&trailer.encode()])?;
        self.close_volume()?;
        let synced = match &self.net {
            None => sync_dir(&self.base),
            Some(_) => {
                let base = self.base.clone();
                disk::netfs::with_deadline(disk::netfs::policy().stall, move || sync_dir(&base))
            }
        };
        if let Err(e) = synced {
            return self.fail(Error::write(
                &self.name.clone(),
                "syncing the directory of",
                e,
            ));
        }
        self.state = State::Done;
        let summary = ImageSummary {
            volumes: self.volumes.clone(),
            uuid: format_uuid(&self.uuid),
            chunks: self.index.len() as u64,
            bytes_in: self.bytes_in,
            bytes_written: self.bytes_written,
        };
        log::info!(
            "image {} complete: {} volumes, {} chunks, {} bytes",
            self.name,
            summary.volumes.len(),
            summary.chunks,
            summary.bytes_written
        );
        Ok(summary)
    }

    fn sync_current(&mut self) -> Result<()> {
        let pname = self.current_name();
        let Some(out) = self.out.as_mut() else {
            return self.fail(Error::Poisoned { path: pname });
        };
        let res = out.sync_data();
        match res {
            Ok(()) => Ok(()),
            Err(e) => self.io_fail(&pname, "syncing", e),
        }
    }

    /// Fails with an I/O error; on a share, a timeout means the server is gone.
    fn io_fail<T>(&mut self, pname: &str, op: &'static str, e: std::io::Error) -> Result<T> {
        if self.net.is_some() && disk::netfs::is_transient(&e) {
            self.server_gone = true;
        }
        self.fail(Error::write(pname, op, e))
    }

    /// Stops writing and deletes every volume written so far. When the network share's server
    /// stopped answering, the volumes stay (without a trailer they read as incomplete) and the
    /// error says so: removing them would hang too.
    pub fn abort(mut self) -> Result<()> {
        if let Some(out) = self.out.take() {
            // Discard the buffer: the files are about to go.
            self.server_gone |= out.stalled();
            out.discard();
        }
        self.state = State::Done;
        if self.server_gone {
            return Err(Error::write(
                &self.name,
                "removing",
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the server does not answer; the partial image stays there and reads as incomplete",
                ),
            ));
        }
        let net = self.net.is_some();
        let mut first_err = None;
        for p in self.volumes.iter().rev() {
            let removed = if net {
                let q = p.clone();
                disk::netfs::with_deadline(disk::netfs::policy().stall, move || fs::remove_file(q))
            } else {
                fs::remove_file(p)
            };
            if let Err(e) = removed {
                if e.kind() != std::io::ErrorKind::NotFound && first_err.is_none() {
                    first_err = Some(Error::write(&p.display().to_string(), "removing", e));
                }
            }
        }
        log::info!(
            "image {} aborted, {} volumes removed",
            self.name,
            self.volumes.len()
        );
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for ImageWriter {
    fn drop(&mut self) {
        if self.state != State::Done {
            log::warn!(
                "image {} was not finished: its {} volumes have no trailer and read as incomplete",
                self.name,
                self.volumes.len()
            );
        }
    }
}
