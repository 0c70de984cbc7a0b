//! The fixed-size on-disk structures of the format (see `FORMAT.md`): encoding, decoding and
//! the decoder limits. Decoding never panics: every field is read through bounds-checked helpers.

/// Major format version written by this build; readers reject images with a larger major.
pub const FORMAT_MAJOR: u16 = 1;
/// Minor format version written by this build; a reader accepts any minor of its major.
pub const FORMAT_MINOR: u16 = 1;

/// First 8 bytes of every volume file.
pub const VOLUME_MAGIC: [u8; 8] = *b"LBIVOL\r\n";
/// First 4 bytes of every chunk header.
pub const CHUNK_MAGIC: [u8; 4] = *b"LBCK";
/// First 8 bytes of the trailer.
pub const TRAILER_MAGIC: [u8; 8] = *b"LBITRAIL";

/// Size of the volume header.
pub const VOLUME_HEADER_LEN: usize = 64;
/// Size of the header before each chunk frame.
pub const CHUNK_HEADER_LEN: usize = 48;
/// Size of the trailer.
pub const TRAILER_LEN: usize = 128;
/// Size of one stream-table entry.
pub const STREAM_ENTRY_LEN: usize = 64;
/// Size of one index entry.
pub const INDEX_ENTRY_LEN: usize = 40;

/// Smallest chunk size the format allows (tests and tiny streams; the tool uses 1–4 MiB).
pub const MIN_CHUNK_SIZE: u32 = 4096;
/// Largest chunk size the format allows.
pub const MAX_CHUNK_SIZE: u32 = 4 << 20;
/// Chunk size used unless told otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 4 << 20;
/// Largest manifest a reader accepts.
pub const MAX_MANIFEST_LEN: u64 = 16 << 20;
/// Largest number of streams a reader accepts.
pub const MAX_STREAMS: u32 = 65_536;
/// Largest number of volumes a reader accepts.
pub const MAX_VOLUMES: u32 = 9_999;
/// Largest uncompressed used-block bitmap a reader accepts (1 GiB = 8 Gi blocks).
pub const MAX_BITMAP_LEN: u64 = 1 << 30;
/// Smallest possible zstd frame (magic, frame header, one empty block header).
pub const MIN_FRAME_LEN: u64 = 9;
/// Smallest and largest block size of a used-block bitmap.
pub const MIN_BITMAP_BLOCK: u32 = 512;
/// See [`MIN_BITMAP_BLOCK`].
pub const MAX_BITMAP_BLOCK: u32 = 1 << 30;

/// Flag bit in the trailer: the writer finished the image.
pub const TRAILER_COMPLETE: u32 = 1;
/// Flag bit in the trailer (format 1.1): the image is encrypted.
pub const TRAILER_ENCRYPTED: u32 = 2;
/// Flag bit in every volume header (format 1.1): the image is encrypted; volume 1 has a key
/// block after its header.
pub const VOLUME_ENCRYPTED: u32 = 1;

/// Largest compressed frame allowed for a chunk of `chunk_size` bytes (bounds zstd's worst case
/// `n + n/256 + small` with room to spare).
pub fn max_frame_len(chunk_size: u32) -> u64 {
    u64::from(chunk_size) + u64::from(chunk_size) / 128 + 512
}

/// Whether `size` is a chunk size this format allows.
pub fn valid_chunk_size(size: u32) -> bool {
    size.is_power_of_two() && (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&size)
}

pub(crate) fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Whether a stored crc32 matches the computed one. Under `cargo fuzz` (`cfg(fuzzing)`) every
/// crc32 is taken as matching, so the fuzzer reaches the structures behind it instead of
/// stalling at the checksum (a normal build always checks).
pub(crate) fn crc_matches(stored: u32, computed: u32) -> bool {
    cfg!(fuzzing) || stored == computed
}

pub(crate) fn rd_u16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .unwrap_or(0)
}

pub(crate) fn rd_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

pub(crate) fn rd_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

pub(crate) fn rd_arr<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

/// A little-endian field writer over a fixed buffer.
pub(crate) struct Put<'a> {
    buf: &'a mut [u8],
}

impl<'a> Put<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Put { buf }
    }
    pub(crate) fn bytes(&mut self, at: usize, v: &[u8]) {
        if let Some(dst) = self.buf.get_mut(at..at + v.len()) {
            dst.copy_from_slice(v);
        }
    }
    pub(crate) fn u16(&mut self, at: usize, v: u16) {
        self.bytes(at, &v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, at: usize, v: u32) {
        self.bytes(at, &v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, at: usize, v: u64) {
        self.bytes(at, &v.to_le_bytes());
    }
}

/// The header at offset 0 of every volume file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeHeader {
    /// Format version of the writer.
    pub major: u16,
    /// See `major`.
    pub minor: u16,
    /// Random identity shared by all volumes of one image.
    pub uuid: [u8; 16],
    /// 1 for `x.lbi`, 2 for `x.lbi.002`, …
    pub volume: u32,
    /// Chunk size of the image.
    pub chunk_size: u32,
    /// Flags (format 1.1): [`VOLUME_ENCRYPTED`].
    pub flags: u32,
}

impl VolumeHeader {
    /// Whether the image is encrypted.
    pub fn encrypted(&self) -> bool {
        self.flags & VOLUME_ENCRYPTED != 0
    }

    pub(crate) fn encode(&self) -> [u8; VOLUME_HEADER_LEN] {
        let mut b = [0u8; VOLUME_HEADER_LEN];
        let mut p = Put::new(&mut b);
        p.bytes(0, &VOLUME_MAGIC);
        p.u16(8, self.major);
        p.u16(10, self.minor);
        p.u32(12, VOLUME_HEADER_LEN as u32);
        p.bytes(16, &self.uuid);
        p.u32(32, self.volume);
        p.u32(36, self.flags);
        p.u32(40, self.chunk_size);
        let c = crc(&b[..60]);
        Put::new(&mut b).u32(60, c);
        b
    }

    /// Decodes after the caller checked the magic and the major version.
    pub(crate) fn decode(b: &[u8]) -> Result<Self, String> {
        let stored = rd_u32(b, 60);
        let computed = crc(b.get(..60).unwrap_or_default());
        if !crc_matches(stored, computed) {
            return Err(format!(
                "crc32 mismatch (stored {stored:08x}, computed {computed:08x})"
            ));
        }
        let len = rd_u32(b, 12);
        if len != VOLUME_HEADER_LEN as u32 {
            return Err(format!("header length {len}, expected {VOLUME_HEADER_LEN}"));
        }
        Ok(VolumeHeader {
            major: rd_u16(b, 8),
            minor: rd_u16(b, 10),
            uuid: rd_arr(b, 16),
            volume: rd_u32(b, 32),
            chunk_size: rd_u32(b, 40),
            flags: rd_u32(b, 36),
        })
    }
}

/// The header written before each chunk frame. It repeats the chunk's index entry so that a
/// damaged index can be rebuilt by scanning and so that a misplaced chunk is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkHeader {
    pub stream: u32,
    pub logical_offset: u64,
    pub compressed_len: u32,
    pub uncompressed_len: u32,
    pub crc_compressed: u32,
    pub crc_uncompressed: u32,
}

impl ChunkHeader {
    pub(crate) fn encode(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut b = [0u8; CHUNK_HEADER_LEN];
        let mut p = Put::new(&mut b);
        p.bytes(0, &CHUNK_MAGIC);
        p.u32(4, self.stream);
        p.u64(8, self.logical_offset);
        p.u32(16, self.compressed_len);
        p.u32(20, self.uncompressed_len);
        p.u32(24, self.crc_compressed);
        p.u32(28, self.crc_uncompressed);
        let c = crc(&b[..44]);
        Put::new(&mut b).u32(44, c);
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, String> {
        if b.get(..4) != Some(&CHUNK_MAGIC[..]) {
            return Err("no chunk header magic".to_string());
        }
        let stored = rd_u32(b, 44);
        let computed = crc(b.get(..44).unwrap_or_default());
        if !crc_matches(stored, computed) {
            return Err(format!(
                "chunk header crc32 mismatch (stored {stored:08x}, computed {computed:08x})"
            ));
        }
        Ok(ChunkHeader {
            stream: rd_u32(b, 4),
            logical_offset: rd_u64(b, 8),
            compressed_len: rd_u32(b, 16),
            uncompressed_len: rd_u32(b, 20),
            crc_compressed: rd_u32(b, 24),
            crc_uncompressed: rd_u32(b, 28),
        })
    }
}

/// One entry of the index: where the chunk of `stream` at `logical_offset` is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexEntry {
    /// Stream the chunk belongs to.
    pub stream: u32,
    /// Offset of the chunk inside its stream (a multiple of the chunk size).
    pub logical_offset: u64,
    /// Volume number (1-based) holding the chunk.
    pub volume: u32,
    /// Offset of the chunk header inside that volume.
    pub volume_offset: u64,
    /// Length of the zstd frame after the chunk header.
    pub compressed_len: u32,
    /// Length of the chunk's data once decompressed.
    pub uncompressed_len: u32,
    /// crc32 of the zstd frame.
    pub crc_compressed: u32,
    /// crc32 of the decompressed data.
    pub crc_uncompressed: u32,
}

impl IndexEntry {
    pub(crate) fn encode(&self) -> [u8; INDEX_ENTRY_LEN] {
        let mut b = [0u8; INDEX_ENTRY_LEN];
        let mut p = Put::new(&mut b);
        p.u32(0, self.stream);
        p.u32(4, self.volume);
        p.u64(8, self.logical_offset);
        p.u64(16, self.volume_offset);
        p.u32(24, self.compressed_len);
        p.u32(28, self.uncompressed_len);
        p.u32(32, self.crc_compressed);
        p.u32(36, self.crc_uncompressed);
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Self {
        IndexEntry {
            stream: rd_u32(b, 0),
            volume: rd_u32(b, 4),
            logical_offset: rd_u64(b, 8),
            volume_offset: rd_u64(b, 16),
            compressed_len: rd_u32(b, 24),
            uncompressed_len: rd_u32(b, 28),
            crc_compressed: rd_u32(b, 32),
            crc_uncompressed: rd_u32(b, 36),
        }
    }

    pub(crate) fn header(&self) -> ChunkHeader {
        ChunkHeader {
            stream: self.stream,
            logical_offset: self.logical_offset,
            compressed_len: self.compressed_len,
            uncompressed_len: self.uncompressed_len,
            crc_compressed: self.crc_compressed,
            crc_uncompressed: self.crc_uncompressed,
        }
    }

    /// Bytes the chunk record (header + frame) occupies in its volume.
    pub fn record_len(&self) -> u64 {
        CHUNK_HEADER_LEN as u64 + u64::from(self.compressed_len)
    }
}

/// What a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Partition-table areas and gaps of a disk (LBA 0, GPT arrays, EBRs, the boot gap).
    DiskArea,
    /// One partition.
    Partition,
    /// A range of the disk outside every partition that holds data.
    Unpartitioned,
    /// A whole source that has no partition table (a bare file system or a raw disk).
    Whole,
    /// A kind written by a newer minor version; read like any other stream.
    Other(u16),
}

impl StreamKind {
    pub(crate) fn code(self) -> u16 {
        match self {
            StreamKind::DiskArea => 1,
            StreamKind::Partition => 2,
            StreamKind::Unpartitioned => 3,
            StreamKind::Whole => 4,
            StreamKind::Other(c) => c,
        }
    }

    pub(crate) fn from_code(c: u16) -> Self {
        match c {
            1 => StreamKind::DiskArea,
            2 => StreamKind::Partition,
            3 => StreamKind::Unpartitioned,
            4 => StreamKind::Whole,
            c => StreamKind::Other(c),
        }
    }
}

/// Where a stream's used-block bitmap is stored (in the last volume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BitmapRef {
    pub block_size: u32,
    pub offset: u64,
    pub stored_len: u32,
    pub crc_stored: u32,
    pub crc_raw: u32,
}

/// One entry of the stream table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamEntry {
    pub id: u32,
    pub kind: StreamKind,
    pub length: u64,
    pub source_offset: u64,
    pub partition: u32,
    pub bitmap: Option<BitmapRef>,
}

impl StreamEntry {
    pub(crate) fn encode(&self) -> [u8; STREAM_ENTRY_LEN] {
        let mut b = [0u8; STREAM_ENTRY_LEN];
        let mut p = Put::new(&mut b);
        p.u32(0, self.id);
        p.u16(4, self.kind.code());
        p.u64(8, self.length);
        p.u64(16, self.source_offset);
        p.u32(24, self.partition);
        if let Some(bm) = self.bitmap {
            p.u32(28, bm.block_size);
            p.u64(32, bm.offset);
            p.u32(40, bm.stored_len);
            p.u32(44, bm.crc_stored);
            p.u32(48, bm.crc_raw);
        }
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Self {
        let block_size = rd_u32(b, 28);
        let bitmap = (block_size != 0).then(|| BitmapRef {
            block_size,
            offset: rd_u64(b, 32),
            stored_len: rd_u32(b, 40),
            crc_stored: rd_u32(b, 44),
            crc_raw: rd_u32(b, 48),
        });
        StreamEntry {
            id: rd_u32(b, 0),
            kind: StreamKind::from_code(rd_u16(b, 4)),
            length: rd_u64(b, 8),
            source_offset: rd_u64(b, 16),
            partition: rd_u32(b, 24),
            bitmap,
        }
    }
}

/// The trailer at the very end of the last volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub major: u16,
    pub minor: u16,
    pub uuid: [u8; 16],
    pub volumes: u32,
    pub flags: u32,
    pub chunk_size: u32,
    pub stream_count: u32,
    pub index_count: u64,
    pub streams_offset: u64,
    pub streams_len: u32,
    pub streams_crc: u32,
    pub index_offset: u64,
    pub index_len: u64,
    pub index_crc: u32,
    pub manifest_len: u32,
    pub manifest_offset: u64,
    pub manifest_crc: u32,
}

impl Trailer {
    pub(crate) fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut b = [0u8; TRAILER_LEN];
        let mut p = Put::new(&mut b);
        p.bytes(0, &TRAILER_MAGIC);
        p.u16(8, self.major);
        p.u16(10, self.minor);
        p.u32(12, TRAILER_LEN as u32);
        p.bytes(16, &self.uuid);
        p.u32(32, self.volumes);
        p.u32(36, self.flags);
        p.u32(40, self.chunk_size);
        p.u32(44, self.stream_count);
        p.u64(48, self.index_count);
        p.u64(56, self.streams_offset);
        p.u32(64, self.streams_len);
        p.u32(68, self.streams_crc);
        p.u64(72, self.index_offset);
        p.u64(80, self.index_len);
        p.u32(88, self.index_crc);
        p.u32(92, self.manifest_len);
        p.u64(96, self.manifest_offset);
        p.u32(104, self.manifest_crc);
        let c = crc(&b[..124]);
        Put::new(&mut b).u32(124, c);
        b
    }

    /// Decodes after the caller checked the magic and the major version.
    pub(crate) fn decode(b: &[u8]) -> Result<Self, String> {
        let stored = rd_u32(b, 124);
        let computed = crc(b.get(..124).unwrap_or_default());
        if !crc_matches(stored, computed) {
            return Err(format!(
                "crc32 mismatch (stored {stored:08x}, computed {computed:08x})"
            ));
        }
        let len = rd_u32(b, 12);
        if len != TRAILER_LEN as u32 {
            return Err(format!("trailer length {len}, expected {TRAILER_LEN}"));
        }
        Ok(Trailer {
            major: rd_u16(b, 8),
            minor: rd_u16(b, 10),
            uuid: rd_arr(b, 16),
            volumes: rd_u32(b, 32),
            flags: rd_u32(b, 36),
            chunk_size: rd_u32(b, 40),
            stream_count: rd_u32(b, 44),
            index_count: rd_u64(b, 48),
            streams_offset: rd_u64(b, 56),
            streams_len: rd_u32(b, 64),
            streams_crc: rd_u32(b, 68),
            index_offset: rd_u64(b, 72),
            index_len: rd_u64(b, 80),
            index_crc: rd_u32(b, 88),
            manifest_len: rd_u32(b, 92),
            manifest_offset: rd_u64(b, 96),
            manifest_crc: rd_u32(b, 104),
        })
    }
}

/// Formats a 16-byte UUID as `8-4-4-4-12` lowercase hex.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_round_trip_through_their_encodings() {
        let h = VolumeHeader {
            major: 1,
            minor: 0,
            uuid: [7; 16],
            volume: 3,
            chunk_size: 1 << 20,
            flags: VOLUME_ENCRYPTED,
        };
        assert_eq!(VolumeHeader::decode(&h.encode()).unwrap(), h);
        let c = ChunkHeader {
            stream: 2,
            logical_offset: 1 << 40,
            compressed_len: 99,
            uncompressed_len: 4096,
            crc_compressed: 1,
            crc_uncompressed: 2,
        };
        assert_eq!(ChunkHeader::decode(&c.encode()).unwrap(), c);
        let e = IndexEntry {
            stream: 1,
            logical_offset: 8 << 20,
            volume: 2,
            volume_offset: 64,
            compressed_len: 5,
            uncompressed_len: 6,
            crc_compressed: 7,
            crc_uncompressed: 8,
        };
        assert_eq!(IndexEntry::decode(&e.encode()), e);
        let s = StreamEntry {
            id: 4,
            kind: StreamKind::Partition,
            length: 12345,
            source_offset: 1 << 20,
            partition: 2,
            bitmap: Some(BitmapRef {
                block_size: 4096,
                offset: 77,
                stored_len: 10,
                crc_stored: 3,
                crc_raw: 4,
            }),
        };
        assert_eq!(StreamEntry::decode(&s.encode()), s);
    }

    #[test]
    fn damaged_header_fails_its_crc() {
        let h = VolumeHeader {
            major: 1,
            minor: 0,
            uuid: [7; 16],
            volume: 1,
            chunk_size: 4096,
            flags: 0,
        };
        let mut b = h.encode();
        b[33] ^= 1;
        assert!(VolumeHeader::decode(&b).unwrap_err().contains("crc32"));
    }

    #[test]
    fn uuid_is_formatted_with_dashes() {
        let u = [0xab; 16];
        assert_eq!(format_uuid(&u), "abababab-abab-abab-abab-abababababab");
    }
}
