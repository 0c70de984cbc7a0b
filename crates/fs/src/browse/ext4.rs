//! ext2/3/4: our own tolerant, read-only reader.
//!
//! A recovery tool must read what is readable, so this reader refuses only what it cannot decode
//! at all (an external journal device, a superblock that does not add up). Checksum mismatches
//! (superblock, inode, extent block, directory block) are logged warnings; feature flags that do
//! not change how data is found (mmp, ea_inode, journal features, casefold, …) are ignored; a
//! journal that needs recovery is ignored with a warning (the main file system is read as is).
//!
//! Supported: rev 0/1 superblocks, 1 KiB to 64 KiB blocks, 32/64-bit group descriptors with or
//! without meta_bg (the layout code is shared with [`crate::ext`]), any inode size, extent trees
//! (uninitialised extents read as zeros), ext2/3 block maps, inline data, linear and htree
//! directories (read linearly), entries with and without a file type, fast, slow and inline
//! symlinks, 64-bit sizes and extra timestamp bits.
//!
//! Damage is contained to the object it hits: out-of-range blocks, extent trees that repeat or
//! nest too deep and truncated images give an error for that file or folder. Memory stays
//! bounded whatever the sizes say: content is streamed through one [`COPY_BUF`] buffer, folders
//! are read up to [`MAX_DIR_BYTES`]. Contiguous extents are coalesced into large reads, and
//! [`Browser::read_file_sparse`] hands holes (extent gaps, uninitialised extents, zero block
//! pointers) to the output without reading them.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::rc::Rc;

use disk::BlockIo;

use super::{
    components, BrowseError, Browser, Entry, EntryKind, SparseWrite, Timestamp, COPY_BUF,
    MAX_DIR_ENTRIES,
};
use crate::bytes::{le16, le32, slice, u8_at};
use crate::ext::{self, Superblock};

const ROOT_INO: u32 = 2;

const INCOMPAT_COMPRESSION: u32 = 0x1;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

const FL_ENCRYPT: u32 = 0x800;
const FL_EXTENTS: u32 = 0x8_0000;
const FL_INLINE_DATA: u32 = 0x1000_0000;

const EXTENT_MAGIC: u16 = 0xF30A;
/// The deepest extent tree ext4 builds.
const MAX_EXTENT_DEPTH: u16 = 5;
/// Extent lengths above this mark uninitialised extents.
const EXT_INIT_MAX_LEN: u32 = 32_768;
const XATTR_MAGIC: u32 = 0xEA02_0000;
/// Size of the `i_block` area (fast symlinks, inline data, extent root).
const I_BLOCK_LEN: usize = 60;
const I_BLOCK: usize = 0x28;

/// How much of one folder is read at most (a damaged size cannot make us read more).
pub(crate) const MAX_DIR_BYTES: u64 = 256 << 20;
/// The longest symlink target read.
const MAX_LINK: u64 = 64 << 10;
/// Bytes of the inode-table window cached for consecutive inode reads.
const INODE_WINDOW: u64 = 64 << 10;

pub(crate) struct Ext4Browser {
    io: Box<dyn BlockIo>,
    sb: Superblock,
    device: String,
    /// Inode table block of each group (0 when the descriptor could not be read).
    inode_tables: Vec<u64>,
    /// Highest valid inode number.
    max_ino: u64,
    filetype: bool,
    /// The metadata_csum seed, when the file system has checksums.
    csum_seed: Option<u32>,
    /// One window of the inode table: (device offset, bytes).
    cache: RefCell<Option<(u64, Vec<u8>)>>,
    /// The folders read last, by inode number, with a name index (extracting a big folder
    /// looks up each of its files: without this every lookup would reread the folder).
    dirs: RefCell<Vec<(u32, Rc<DirIndex>)>>,
}

/// A folder's entries and their index by name.
struct DirIndex {
    entries: Vec<DirEnt>,
    by_name: HashMap<String, u32>,
}

/// How many folders [`Ext4Browser::dirs`] keeps.
const DIR_CACHE: usize = 8;

/// One inode, read and decoded.
#[derive(Debug, Clone)]
struct Inode {
    ino: u32,
    raw: Vec<u8>,
    mode: u16,
    size: u64,
    flags: u32,
    /// Whether the checksum matched (or the file system has none).
    csum_ok: bool,
}

impl Inode {
    fn kind(&self) -> EntryKind {
        match self.mode & 0xF000 {
            0x8000 => EntryKind::File,
            0x4000 => EntryKind::Dir,
            0xA000 => EntryKind::Symlink,
            _ => EntryKind::Other,
        }
    }

    fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    fn i_block(&self) -> &[u8] {
        slice(&self.raw, I_BLOCK, I_BLOCK_LEN)
    }

    fn generation(&self) -> u32 {
        le32(&self.raw, 0x64)
    }

    /// `i_extra_isize`, 0 for 128-byte inodes.
    fn extra_isize(&self) -> usize {
        if self.raw.len() > 128 {
            usize::from(le16(&self.raw, 0x80))
        } else {
            0
        }
    }

    /// Whether the extra field `[off, off+len)` is present.
    fn has_extra(&self, off: usize, len: usize) -> bool {
        off + len <= 128 + self.extra_isize() && off + len <= self.raw.len()
    }

    /// A timestamp with its optional extra word (epoch bits and nanoseconds).
    fn time(&self, off: usize, extra: usize) -> Timestamp {
        let base = i64::from(le32(&self.raw, off) as i32);
        if !self.has_extra(extra, 4) {
            return Timestamp {
                secs: base,
                nanos: 0,
            };
        }
        let x = le32(&self.raw, extra);
        Timestamp {
            secs: base + (i64::from(x & 3) << 32),
            nanos: (x >> 2).min(999_999_999),
        }
    }

    /// The value of the in-inode extended attribute `system.data` (inline data past `i_block`).
    fn inline_xattr(&self) -> Vec<u8> {
        let start = 128 + self.extra_isize();
        if le32(&self.raw, start) != XATTR_MAGIC {
            return Vec::new();
        }
        let area = self.raw.get(start + 4..).unwrap_or_default();
        let mut off = 0usize;
        while off + 16 <= area.len() && le32(area, off) != 0 {
            let name_len = usize::from(u8_at(area, off));
            let index = u8_at(area, off + 1);
            let value_offs = usize::from(le16(area, off + 2));
            let value_inum = le32(area, off + 4);
            let value_size = le32(area, off + 8) as usize;
            let name = slice(area, off + 16, name_len);
            if index == 7 && name == b"data" && value_inum == 0 {
                return slice(area, value_offs, value_size).to_vec();
            }
            off += (16 + name_len + 3) & !3;
        }
        Vec::new()
    }

    /// The whole inline content: `i_block` then `system.data`, cut to the size.
    fn inline_content(&self) -> Vec<u8> {
        let mut v = self.i_block().to_vec();
        v.extend_from_slice(&self.inline_xattr());
        v.truncate(usize::try_from(self.size).unwrap_or(usize::MAX));
        v
    }
}

/// A decoded directory entry.
struct DirEnt {
    name: String,
    ino: u32,
    file_type: u8,
}

/// Where content goes: data, or a run of zeros.
trait Out {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()>;
    fn hole(&mut self, len: u64) -> std::io::Result<()>;
}

/// A plain writer: holes become written zeros.
struct PlainOut<'a>(&'a mut dyn Write);

impl Out for PlainOut<'_> {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }
    fn hole(&mut self, len: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; usize::try_from(len.min(COPY_BUF as u64)).unwrap_or(COPY_BUF)];
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(0);
            self.0.write_all(zeros.get(..n).unwrap_or_default())?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// A sparse writer: holes and all-zero pieces are skipped.
struct HoleOut<'a>(&'a mut dyn SparseWrite);

impl Out for HoleOut<'_> {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if is_zero(buf) {
            self.0.hole(buf.len() as u64)
        } else {
            self.0.as_write().write_all(buf)
        }
    }
    fn hole(&mut self, len: u64) -> std::io::Result<()> {
        self.0.hole(len)
    }
}

/// Whether `buf` holds only zeros (branch-free, so it vectorises).
fn is_zero(buf: &[u8]) -> bool {
    buf.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// One mapped piece of a file: `len` blocks from logical block `lblk` at physical `pblk`.
#[derive(Debug, Clone, Copy)]
struct Run {
    lblk: u64,
    pblk: u64,
    len: u64,
    /// Uninitialised extent: reads as zeros.
    uninit: bool,
}

/// What a run consumer tells the mapper: go on, or stop (past the end of the file).
type Flow = Result<bool, BrowseError>;

fn read_err(path: &str, message: impl Into<String>) -> BrowseError {
    BrowseError::Read {
        path: path.to_string(),
        message: message.into(),
    }
}

fn open_err(device: &str, message: impl Into<String>) -> BrowseError {
    BrowseError::Open {
        fs: "ext4",
        device: device.to_string(),
        message: message.into(),
    }
}

fn output_err(path: &str) -> impl FnOnce(std::io::Error) -> BrowseError + '_ {
    move |source| BrowseError::Output {
        path: path.to_string(),
        source,
    }
}

impl std::fmt::Debug for Ext4Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ext4Browser")
            .field("device", &self.device)
            .field("block_size", &self.sb.block_size)
            .finish()
    }
}

impl Ext4Browser {
    pub(crate) fn open(io: Box<dyn BlockIo>) -> Result<Ext4Browser, BrowseError> {
        let device = io.describe();
        let sb = ext::read_superblock(io.as_ref())
            .map_err(|e| open_err(&device, e.to_string()))?
            .ok_or_else(|| open_err(&device, "no valid ext2/3/4 superblock"))?;
        if sb.has_incompat(INCOMPAT_JOURNAL_DEV) {
            return Err(open_err(
                &device,
                "an external journal device holds no files",
            ));
        }
        if sb.has_incompat(INCOMPAT_RECOVER) {
            log::warn!(
                "{device}: the journal needs recovery; reading the file system as it is on disk \
                 (recent changes may be missing)"
            );
        }
        if sb.has_incompat(INCOMPAT_COMPRESSION) {
            log::warn!("{device}: compression feature set; compressed files read raw");
        }
        let metadata_csum = sb.has_ro(RO_COMPAT_METADATA_CSUM);
        if metadata_csum {
            let computed = crate::crc32c::update(!0, slice(&sb.raw, 0, 1020));
            let stored = le32(&sb.raw, 1020);
            if computed != stored {
                log::warn!(
                    "{device}: superblock checksum mismatch (stored {stored:#x}, computed \
                     {computed:#x}); reading on"
                );
            }
        }
        let groups = sb
            .checked_group_count(io.len())
            .map_err(|m| open_err(&device, m))?;
        let itable_blocks = (sb.inodes_per_group * sb.inode_size).div_ceil(sb.block_size);
        let valid = |t: u64| {
            t != 0
                && t.checked_add(itable_blocks)
                    .is_some_and(|e| e <= sb.blocks_count)
        };
        let (mut inode_tables, unreadable) =
            read_inode_tables(io.as_ref(), &sb, false).map_err(|m| open_err(&device, m))?;
        if unreadable > 0 {
            log::warn!(
                "{device}: {unreadable} group descriptor block(s) unreadable; files in those \
                 groups cannot be read"
            );
        }
        let bad = inode_tables.iter().filter(|&&t| !valid(t)).count();
        if bad > 0 && groups > 1 {
            // The backup copy of the table after group 1's superblock backup.
            let (backup, _) =
                read_inode_tables(io.as_ref(), &sb, true).map_err(|m| open_err(&device, m))?;
            let mut fixed = 0;
            for (t, b) in inode_tables.iter_mut().zip(backup) {
                if !valid(*t) && valid(b) {
                    *t = b;
                    fixed += 1;
                }
            }
            log::warn!(
                "{device}: {bad} group descriptor(s) point outside the file system; took {fixed} \
                 from the backup table"
            );
        }
        if !inode_tables.first().copied().is_some_and(valid) {
            return Err(open_err(
                &device,
                "the descriptor of the first block group is damaged (in both copies)",
            ));
        }
        let max_ino = u64::from(le32(&sb.raw, 0)).min(groups.saturating_mul(sb.inodes_per_group));
        let filetype = sb.has_incompat(INCOMPAT_FILETYPE);
        let csum_seed = metadata_csum.then(|| ext::csum_seed(&sb));
        Ok(Ext4Browser {
            io,
            sb,
            device,
            inode_tables,
            max_ino,
            filetype,
            csum_seed,
            cache: RefCell::new(None),
            dirs: RefCell::new(Vec::new()),
        })
    }

    fn bs(&self) -> u64 {
        self.sb.block_size
    }

    /// Reads `buf.len()` bytes at device offset `off`.
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<(), String> {
        let end = off.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.io.len()) {
            return Err(format!(
                "bytes {off}+{} lie past the end of the device (truncated image?)",
                buf.len()
            ));
        }
        self.io
            .read_at(buf, off)
            .map_err(|e| format!("reading {} bytes at {off}: {e}", buf.len()))
    }

    /// Reads `n` blocks from `block`, which must lie inside the file system.
    fn read_blocks(&self, buf: &mut [u8], block: u64) -> Result<(), String> {
        let n = (buf.len() as u64).div_ceil(self.bs());
        if block == 0
            || block
                .checked_add(n)
                .is_none_or(|e| e > self.sb.blocks_count)
        {
            return Err(format!(
                "block {block}+{n} is outside the file system ({} blocks)",
                self.sb.blocks_count
            ));
        }
        self.read_at(buf, block * self.bs())
    }

    fn read_inode(&self, ino: u32) -> Result<Inode, String> {
        let n = u64::from(ino);
        if n == 0 || n > self.max_ino {
            return Err(format!("inode {ino} is out of range"));
        }
        let group = (n - 1) / self.sb.inodes_per_group;
        let index = (n - 1) % self.sb.inodes_per_group;
        let table = self.inode_tables.get(group as usize).copied().unwrap_or(0);
        let itable_blocks = (self.sb.inodes_per_group * self.sb.inode_size).div_ceil(self.bs());
        if table == 0
            || table
                .checked_add(itable_blocks)
                .is_none_or(|e| e > self.sb.blocks_count)
        {
            return Err(format!(
                "inode table of group {group} (block {table}) is outside the file system"
            ));
        }
        let off = table * self.bs() + index * self.sb.inode_size;
        let isz = self.sb.inode_size as usize;
        let raw = self.cached(off, isz)?;
        let mode = le16(&raw, 0);
        let size = u64::from(le32(&raw, 4)) | (u64::from(le32(&raw, 0x6C)) << 32);
        let flags = le32(&raw, 0x20);
        let mut inode = Inode {
            ino,
            raw,
            mode,
            size,
            flags,
            csum_ok: true,
        };
        if let Some(seed) = self.csum_seed {
            let (stored, computed) = self.inode_csum(seed, &inode);
            if stored != computed {
                log::warn!(
                    "{}: inode {ino}: checksum mismatch (stored {stored:#x}, computed \
                     {computed:#x}); reading it anyway",
                    self.device
                );
                inode.csum_ok = false;
            }
        }
        Ok(inode)
    }

    /// `len` bytes at `off` inside the inode table, through the window cache.
    fn cached(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let start = off - off % INODE_WINDOW;
        let mut cache = self.cache.borrow_mut();
        let hit = cache
            .as_ref()
            .is_some_and(|(s, w)| *s == start && off + len as u64 <= *s + w.len() as u64);
        if !hit {
            let wlen = INODE_WINDOW.min(self.io.len().saturating_sub(start));
            if off + len as u64 > start + wlen {
                return Err(format!(
                    "inode at byte {off} lies past the end of the device (truncated image?)"
                ));
            }
            let mut w = vec![0u8; wlen as usize];
            self.read_at(&mut w, start)?;
            *cache = Some((start, w));
        }
        let (s, w) = cache.as_ref().ok_or("inode cache empty")?;
        let at = (off - s) as usize;
        Ok(slice(w, at, len).to_vec())
    }

    /// The per-inode checksum seed (file system seed, inode number, generation).
    fn inode_seed(seed: u32, inode: &Inode) -> u32 {
        let c = crate::crc32c::update(seed, &inode.ino.to_le_bytes());
        crate::crc32c::update(c, &inode.generation().to_le_bytes())
    }

    /// (stored, computed) inode checksum.
    fn inode_csum(&self, seed: u32, inode: &Inode) -> (u32, u32) {
        let mut raw = inode.raw.clone();
        let hi = inode.has_extra(0x82, 2);
        for b in raw.get_mut(0x7C..0x7E).into_iter().flatten() {
            *b = 0;
        }
        if hi {
            for b in raw.get_mut(0x82..0x84).into_iter().flatten() {
                *b = 0;
            }
        }
        let c = crate::crc32c::update(Self::inode_seed(seed, inode), &raw);
        let lo = u32::from(le16(&inode.raw, 0x7C));
        if hi {
            (lo | (u32::from(le16(&inode.raw, 0x82)) << 16), c)
        } else {
            (lo, c & 0xFFFF)
        }
    }

    /// Walks the block map of `inode` in logical order, handing each mapped run to `f` until
    /// it returns `false`.
    fn map(
        &self,
        inode: &Inode,
        path: &str,
        f: &mut dyn FnMut(Run) -> Flow,
    ) -> Result<(), BrowseError> {
        if inode.has(FL_EXTENTS) {
            let root = inode.i_block().to_vec();
            let mut seen = HashSet::new();
            self.walk_extents(inode, &root, None, &mut seen, path, f)
                .map(|_| ())
        } else {
            self.walk_blockmap(inode, path, f)
        }
    }

    fn walk_extents(
        &self,
        inode: &Inode,
        node: &[u8],
        want_depth: Option<u16>,
        seen: &mut HashSet<u64>,
        path: &str,
        f: &mut dyn FnMut(Run) -> Flow,
    ) -> Flow {
        if le16(node, 0) != EXTENT_MAGIC {
            return Err(read_err(path, "extent tree node has a bad magic number"));
        }
        let entries = usize::from(le16(node, 2));
        let depth = le16(node, 6);
        if depth > MAX_EXTENT_DEPTH || want_depth.is_some_and(|d| d != depth) {
            return Err(read_err(
                path,
                format!("extent tree node has an impossible depth {depth}"),
            ));
        }
        if 12 + entries * 12 > node.len() {
            return Err(read_err(
                path,
                format!("extent tree node claims {entries} entries, more than fit"),
            ));
        }
        for i in 0..entries {
            let e = slice(node, 12 + i * 12, 12);
            let lblk = u64::from(le32(e, 0));
            if depth == 0 {
                let raw_len = u32::from(le16(e, 4));
                let (len, uninit) = if raw_len > EXT_INIT_MAX_LEN {
                    (raw_len - EXT_INIT_MAX_LEN, true)
                } else {
                    (raw_len, false)
                };
                let pblk = (u64::from(le16(e, 6)) << 32) | u64::from(le32(e, 8));
                if len == 0 {
                    continue;
                }
                let run = Run {
                    lblk,
                    pblk,
                    len: u64::from(len),
                    uninit,
                };
                if !f(run)? {
                    return Ok(false);
                }
            } else {
                let child = u64::from(le32(e, 4)) | (u64::from(le16(e, 8)) << 32);
                if !seen.insert(child) {
                    return Err(read_err(
                        path,
                        format!("extent tree visits block {child} twice (a loop)"),
                    ));
                }
                let mut buf = vec![0u8; self.bs() as usize];
                self.read_blocks(&mut buf, child)
                    .map_err(|m| read_err(path, format!("extent tree block: {m}")))?;
                self.check_extent_block(inode, &buf, child, path);
                if !self.walk_extents(inode, &buf, Some(depth - 1), seen, path, f)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Warns when an extent tree block's checksum does not match.
    fn check_extent_block(&self, inode: &Inode, buf: &[u8], block: u64, path: &str) {
        let Some(seed) = self.csum_seed else {
            return;
        };
        let max = usize::from(le16(buf, 4));
        let tail = 12 + 12 * max;
        if tail + 4 > buf.len() {
            return;
        }
        let computed = crate::crc32c::update(Self::inode_seed(seed, inode), slice(buf, 0, tail));
        let stored = le32(buf, tail);
        if computed != stored {
            log::warn!(
                "{}: {path}: extent block {block} checksum mismatch; reading it anyway",
                self.device
            );
        }
    }

    /// ext2/3 block maps: 12 direct pointers, then single, double and triple indirect blocks.
    fn walk_blockmap(
        &self,
        inode: &Inode,
        path: &str,
        f: &mut dyn FnMut(Run) -> Flow,
    ) -> Result<(), BrowseError> {
        let end = inode.size.div_ceil(self.bs());
        let ptrs = inode.i_block();
        for i in 0..12u64 {
            if i >= end {
                return Ok(());
            }
            let p = u64::from(le32(ptrs, i as usize * 4));
            if p != 0
                && !f(Run {
                    lblk: i,
                    pblk: p,
                    len: 1,
                    uninit: false,
                })?
            {
                return Ok(());
            }
        }
        let per = self.bs() / 4;
        let mut start = 12u64;
        let mut span = per;
        for level in 1..=3u32 {
            if start >= end {
                return Ok(());
            }
            let p = u64::from(le32(ptrs, (11 + level) as usize * 4));
            if p != 0 && !self.walk_indirect(p, level, start, end, path, f)? {
                return Ok(());
            }
            start = start.saturating_add(span);
            span = span.saturating_mul(per);
        }
        Ok(())
    }

    /// One indirect block at `level` (1 = pointers to data) covering blocks from `start`.
    fn walk_indirect(
        &self,
        block: u64,
        level: u32,
        start: u64,
        end: u64,
        path: &str,
        f: &mut dyn FnMut(Run) -> Flow,
    ) -> Flow {
        let mut buf = vec![0u8; self.bs() as usize];
        self.read_blocks(&mut buf, block)
            .map_err(|m| read_err(path, format!("indirect block: {m}")))?;
        let per = self.bs() / 4;
        let span = per.saturating_pow(level - 1);
        for (i, p) in buf.chunks_exact(4).enumerate() {
            let lblk = start.saturating_add((i as u64).saturating_mul(span));
            if lblk >= end {
                return Ok(false);
            }
            let p = u64::from(le32(p, 0));
            if p == 0 {
                continue;
            }
            let go = if level == 1 {
                f(Run {
                    lblk,
                    pblk: p,
                    len: 1,
                    uninit: false,
                })?
            } else {
                self.walk_indirect(p, level - 1, lblk, end, path, f)?
            };
            if !go {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Streams the content of a regular file (or a slow symlink) to `out`; returns its length.
    fn copy(&self, inode: &Inode, path: &str, out: &mut dyn Out) -> Result<u64, BrowseError> {
        if inode.has(FL_ENCRYPT) {
            return Err(BrowseError::Unsupported {
                path: path.to_string(),
                what: "an encrypted file (fscrypt)".to_string(),
            });
        }
        // Logical block numbers are 32 bits: no ext file is longer than 2^32 blocks. A larger
        // size is damage, and streaming its holes would take practically forever.
        let max = self.bs().saturating_mul(1 << 32);
        if inode.size > max {
            return Err(read_err(
                path,
                format!(
                    "size {} is more than an ext file can hold ({max} bytes): damaged inode",
                    inode.size
                ),
            ));
        }
        if inode.has(FL_INLINE_DATA) {
            let data = inode.inline_content();
            out.data(&data).map_err(output_err(path))?;
            let rest = inode.size.saturating_sub(data.len() as u64);
            if rest > 0 && inode.csum_ok {
                out.hole(rest).map_err(output_err(path))?;
                return Ok(inode.size);
            }
            return Ok(data.len() as u64);
        }
        let bs = self.bs();
        let size = inode.size;
        let end_blk = size.div_ceil(bs);
        let mut buf = vec![0u8; usize::try_from(size.min(COPY_BUF as u64)).unwrap_or(0)];
        let mut written = 0u64;
        // Blocks handed on so far, and a pending physically contiguous run not yet read.
        let mut pos = 0u64;
        let mut pending: Option<(u64, u64, u64)> = None; // (lblk, pblk, len)
        let mut warned_overlap = false;
        let flush = |pending: &mut Option<(u64, u64, u64)>,
                     buf: &mut Vec<u8>,
                     written: &mut u64,
                     out: &mut dyn Out|
         -> Result<(), BrowseError> {
            let Some((lblk, pblk, len)) = pending.take() else {
                return Ok(());
            };
            let from = lblk * bs;
            let bytes = len.saturating_mul(bs).min(size.saturating_sub(from));
            if pblk
                .checked_add(len)
                .is_none_or(|e| e > self.sb.blocks_count)
            {
                return Err(read_err(
                    path,
                    format!(
                        "data blocks {pblk}+{len} lie outside the file system ({} blocks)",
                        self.sb.blocks_count
                    ),
                ));
            }
            let mut done = 0u64;
            while done < bytes {
                let n = (bytes - done).min(buf.len() as u64) as usize;
                let piece = buf.get_mut(..n).unwrap_or_default();
                self.read_at(piece, pblk * bs + done)
                    .map_err(|m| read_err(path, m))?;
                out.data(piece).map_err(output_err(path))?;
                done += n as u64;
            }
            *written += bytes;
            Ok(())
        };
        let mut on_run = |r: Run| -> Flow {
            let mut r = r;
            if r.lblk >= end_blk {
                return Ok(false);
            }
            if r.lblk < pos {
                if !warned_overlap {
                    log::warn!(
                        "{}: {path}: block map runs overlap or go backwards; skipping the repeats",
                        self.device
                    );
                    warned_overlap = true;
                }
                let skip = pos - r.lblk;
                if skip >= r.len {
                    return Ok(true);
                }
                r.lblk += skip;
                r.pblk = r.pblk.saturating_add(skip);
                r.len -= skip;
            }
            r.len = r.len.min(end_blk - r.lblk);
            if r.lblk > pos {
                flush(&mut pending, &mut buf, &mut written, out)?;
                let n = (r.lblk - pos).saturating_mul(bs).min(size - pos * bs);
                out.hole(n).map_err(output_err(path))?;
                written += n;
                pos = r.lblk;
            }
            if r.uninit {
                flush(&mut pending, &mut buf, &mut written, out)?;
                let n = r.len.saturating_mul(bs).min(size - pos * bs);
                out.hole(n).map_err(output_err(path))?;
                written += n;
            } else {
                match &mut pending {
                    Some((_, p, l)) if *p + *l == r.pblk && (*l + r.len) * bs <= 1 << 30 => {
                        *l += r.len;
                    }
                    _ => {
                        flush(&mut pending, &mut buf, &mut written, out)?;
                        pending = Some((r.lblk, r.pblk, r.len));
                    }
                }
            }
            pos += r.len;
            Ok(pos < end_blk)
        };
        self.map(inode, path, &mut on_run)?;
        flush(&mut pending, &mut buf, &mut written, out)?;
        if written < size {
            if inode.csum_ok {
                let n = size - written;
                out.hole(n).map_err(output_err(path))?;
                written += n;
            } else {
                log::warn!(
                    "{}: {path}: inode checksum mismatch and size {size} past the last mapped \
                     block: reading {written} bytes only",
                    self.device
                );
            }
        }
        Ok(written)
    }

    /// The entries of a folder inode, through the folder cache.
    fn dir_index(&self, inode: &Inode, path: &str) -> Result<Rc<DirIndex>, BrowseError> {
        {
            // Least recently used first: a hit moves to the end.
            let mut dirs = self.dirs.borrow_mut();
            if let Some(at) = dirs.iter().position(|(i, _)| *i == inode.ino) {
                let hit = dirs.remove(at);
                let d = Rc::clone(&hit.1);
                dirs.push(hit);
                return Ok(d);
            }
        }
        let entries = self.dir_entries(inode, path)?;
        let mut by_name = HashMap::with_capacity(entries.len());
        for e in &entries {
            by_name.entry(e.name.clone()).or_insert(e.ino);
        }
        let d = Rc::new(DirIndex { entries, by_name });
        let mut dirs = self.dirs.borrow_mut();
        if dirs.len() >= DIR_CACHE {
            dirs.remove(0);
        }
        dirs.push((inode.ino, Rc::clone(&d)));
        Ok(d)
    }

    /// The entries of a folder inode (with `.` and `..` when stored).
    fn dir_entries(&self, inode: &Inode, path: &str) -> Result<Vec<DirEnt>, BrowseError> {
        if inode.kind() != EntryKind::Dir {
            return Err(BrowseError::NotADirectory {
                path: path.to_string(),
            });
        }
        let mut out = Vec::new();
        if inode.has(FL_INLINE_DATA) {
            // i_block: the parent's inode number, then entries; system.data: more entries.
            self.parse_dir_block(slice(inode.i_block(), 4, I_BLOCK_LEN - 4), inode, &mut out);
            self.parse_dir_block(&inode.inline_xattr(), inode, &mut out);
            return Ok(out);
        }
        let bs = self.bs();
        let limit_blocks = inode.size.min(MAX_DIR_BYTES).div_ceil(bs);
        if inode.size > MAX_DIR_BYTES {
            log::warn!(
                "{}: {path}: folder size {} is implausible; reading the first {MAX_DIR_BYTES} \
                 bytes",
                self.device,
                inode.size
            );
        }
        let mut buf = vec![0u8; bs as usize];
        let mut on_run = |r: Run| -> Flow {
            if r.lblk >= limit_blocks {
                return Ok(false);
            }
            if r.uninit {
                return Ok(true);
            }
            let len = r.len.min(limit_blocks - r.lblk);
            for i in 0..len {
                if out.len() >= MAX_DIR_ENTRIES {
                    return Ok(false);
                }
                self.read_blocks(&mut buf, r.pblk.saturating_add(i))
                    .map_err(|m| read_err(path, format!("folder block: {m}")))?;
                self.check_dir_block(inode, &buf, path);
                self.parse_dir_block(&buf, inode, &mut out);
            }
            Ok(true)
        };
        self.map(inode, path, &mut on_run)?;
        if out.len() >= MAX_DIR_ENTRIES {
            log::warn!(
                "{}: {path}: more than {MAX_DIR_ENTRIES} entries; listing the first \
                 {MAX_DIR_ENTRIES}",
                self.device
            );
        }
        Ok(out)
    }

    /// Warns when a linear folder block's checksum tail does not match.
    fn check_dir_block(&self, inode: &Inode, buf: &[u8], path: &str) {
        let Some(seed) = self.csum_seed else {
            return;
        };
        let t = buf.len().saturating_sub(12);
        let is_tail = le32(buf, t) == 0
            && le16(buf, t + 4) == 12
            && u8_at(buf, t + 6) == 0
            && u8_at(buf, t + 7) == 0xDE;
        if !is_tail {
            return;
        }
        let computed = crate::crc32c::update(Self::inode_seed(seed, inode), slice(buf, 0, t));
        if computed != le32(buf, t + 8) {
            log::warn!(
                "{}: {path}: folder block checksum mismatch; reading it anyway",
                self.device
            );
        }
    }

    /// Decodes the linear entries of one folder block (htree blocks read the same way: their
    /// index data hides inside entries with inode 0 or the `..` entry's record).
    fn parse_dir_block(&self, block: &[u8], inode: &Inode, out: &mut Vec<DirEnt>) {
        let mut off = 0usize;
        while off + 8 <= block.len() {
            let ino = le32(block, off);
            let raw_rec = u32::from(le16(block, off + 4));
            let rec = if raw_rec == 65_535 || raw_rec == 0 {
                if block.len() >= 65_536 {
                    block.len()
                } else {
                    0
                }
            } else {
                ((raw_rec & 65_532) | ((raw_rec & 3) << 16)) as usize
            };
            let (name_len, file_type) = if self.filetype {
                (usize::from(u8_at(block, off + 6)), u8_at(block, off + 7))
            } else {
                (usize::from(le16(block, off + 6)), 0)
            };
            if rec < 8 || off + rec > block.len() || 8 + name_len > rec || rec % 4 != 0 {
                log::warn!(
                    "{}: folder inode {}: damaged entry at byte {off}; skipping the rest of the \
                     block",
                    self.device,
                    inode.ino
                );
                return;
            }
            if ino != 0 && name_len > 0 {
                if out.len() >= MAX_DIR_ENTRIES {
                    return;
                }
                let name = slice(block, off + 8, name_len);
                out.push(DirEnt {
                    name: String::from_utf8_lossy(name).into_owned(),
                    ino,
                    file_type,
                });
            }
            off += rec;
        }
    }

    /// Resolves an absolute path to its canonical form and inode.
    fn resolve(&self, path: &str) -> Result<(String, Inode), BrowseError> {
        self.resolve_chain(path).map(|(p, i, _)| (p, i))
    }

    /// Like [`Ext4Browser::resolve`], also returning the inode numbers from the root down to
    /// the object (to spot folder entries that loop back to an ancestor).
    fn resolve_chain(&self, path: &str) -> Result<(String, Inode, Vec<u32>), BrowseError> {
        let parts = components(path)?;
        let mut chain = vec![ROOT_INO];
        let mut cur = self
            .read_inode(ROOT_INO)
            .map_err(|m| read_err("/", format!("root folder: {m}")))?;
        let mut at = String::new();
        for part in parts {
            let here = if at.is_empty() { "/" } else { at.as_str() };
            if cur.kind() != EntryKind::Dir {
                return Err(BrowseError::NotADirectory {
                    path: here.to_string(),
                });
            }
            let dir = self.dir_index(&cur, here)?;
            at.push('/');
            at.push_str(part);
            let Some(&ino) = dir.by_name.get(part) else {
                return Err(BrowseError::NotFound { path: at });
            };
            cur = self.read_inode(ino).map_err(|m| read_err(&at, m))?;
            chain.push(ino);
        }
        if at.is_empty() {
            at.push('/');
        }
        Ok((at, cur, chain))
    }

    fn link_target(&self, inode: &Inode, path: &str) -> Result<String, BrowseError> {
        if inode.kind() != EntryKind::Symlink {
            return Err(BrowseError::NotASymlink {
                path: path.to_string(),
            });
        }
        if inode.has(FL_ENCRYPT) {
            return Err(BrowseError::Unsupported {
                path: path.to_string(),
                what: "an encrypted symlink (fscrypt)".to_string(),
            });
        }
        let bytes = if inode.has(FL_INLINE_DATA) {
            inode.inline_content()
        } else if inode.size < I_BLOCK_LEN as u64
            && !(inode.has(FL_EXTENTS) && le16(inode.i_block(), 0) == EXTENT_MAGIC)
        {
            slice(inode.i_block(), 0, inode.size as usize).to_vec()
        } else {
            if inode.size > MAX_LINK {
                return Err(read_err(
                    path,
                    format!("symlink target of {} bytes is implausible", inode.size),
                ));
            }
            let mut v = Vec::new();
            self.copy(inode, path, &mut PlainOut(&mut v))?;
            v
        };
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(slice(&bytes, 0, end)).into_owned())
    }

    fn entry(&self, name: &str, inode: &Inode, path: &str) -> Entry {
        let kind = inode.kind();
        let link_target = if kind == EntryKind::Symlink {
            match self.link_target(inode, path) {
                Ok(t) => Some(t),
                Err(e) => {
                    log::warn!("{}: reading symlink {e}", self.device);
                    None
                }
            }
        } else {
            None
        };
        let raw = &inode.raw;
        Entry {
            name: name.to_string(),
            kind,
            size: inode.size,
            mtime: Some(inode.time(0x10, 0x88)),
            atime: Some(inode.time(0x8, 0x8C)),
            ctime: Some(inode.time(0xC, 0x84)),
            mode: Some(u32::from(inode.mode & 0o7777)),
            uid: Some(u32::from(le16(raw, 2)) | (u32::from(le16(raw, 0x78)) << 16)),
            gid: Some(u32::from(le16(raw, 0x18)) | (u32::from(le16(raw, 0x7A)) << 16)),
            link_target,
        }
    }

    fn file_inode(&self, path: &str) -> Result<(String, Inode), BrowseError> {
        let (p, inode) = self.resolve(path)?;
        if inode.kind() != EntryKind::File {
            return Err(BrowseError::NotAFile { path: p });
        }
        Ok((p, inode))
    }
}

/// The kind a directory entry's type byte names (when the inode cannot be read).
fn kind_from_file_type(t: u8) -> EntryKind {
    match t {
        1 => EntryKind::File,
        2 => EntryKind::Dir,
        7 => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

/// The inode table block of every group from the primary descriptor table, or from its backup
/// after group 1's superblock copy; 0 for groups whose descriptor block could not be read.
/// Also returns how many descriptor blocks could not be read.
/// The group count must have passed [`Superblock::checked_group_count`]; the table is reserved
/// with `try_reserve` (at most 128 MiB for [`ext::MAX_GROUPS`]).
fn read_inode_tables(
    io: &dyn BlockIo,
    sb: &Superblock,
    backup: bool,
) -> Result<(Vec<u64>, u64), String> {
    let groups = sb.group_count();
    let dpb = sb.block_size / sb.desc_size;
    let mut tables = Vec::new();
    tables
        .try_reserve_exact(usize::try_from(groups).unwrap_or(usize::MAX))
        .map_err(|_| format!("no memory for the inode table list of {groups} block groups"))?;
    let mut unreadable = 0u64;
    let mut buf = vec![0u8; sb.block_size as usize];
    let meta_bg = sb.has_incompat(ext::INCOMPAT_META_BG);
    for i in 0..groups.div_ceil(dpb) {
        let primary = ext::desc_block(sb, i);
        let block = if !backup {
            Some(primary)
        } else if meta_bg && i >= sb.first_meta_bg {
            None
        } else {
            primary.checked_add(sb.blocks_per_group)
        };
        let ok = block
            .and_then(|b| b.checked_mul(sb.block_size))
            .filter(|off| off.saturating_add(sb.block_size) <= io.len())
            .is_some_and(|off| io.read_at(&mut buf, off).is_ok());
        for d in buf.chunks_exact(sb.desc_size as usize).take(dpb as usize) {
            if tables.len() as u64 >= groups {
                break;
            }
            tables.push(if ok {
                ext::parse_desc(sb, d).inode_table
            } else {
                0
            });
        }
        if !ok {
            unreadable += 1;
        }
    }
    Ok((tables, unreadable))
}

impl Browser for Ext4Browser {
    fn fs_name(&self) -> &'static str {
        "ext4"
    }

    fn label(&self) -> Option<String> {
        ext::info(&self.sb).label
    }

    fn read_dir(&mut self, path: &str) -> Result<Vec<Entry>, BrowseError> {
        let (p, inode, chain) = self.resolve_chain(path)?;
        let dir = self.dir_index(&inode, &p)?;
        let mut out = Vec::with_capacity(dir.entries.len());
        for d in &dir.entries {
            // A name stored twice is listed twice (a path names the first): the caller decides.
            if d.name == "." || d.name == ".." {
                continue;
            }
            let child = if p == "/" {
                format!("/{}", d.name)
            } else {
                format!("{p}/{}", d.name)
            };
            if chain.contains(&d.ino) {
                // A folder entry naming the folder itself or one of its parents: a loop that
                // would make a recursive walk endless. Its content is listed where it lives.
                log::warn!(
                    "{}: {child}: folder entry loops back to inode {} on its own path; skipped",
                    self.device,
                    d.ino
                );
                continue;
            }
            match self.read_inode(d.ino) {
                Ok(i) => out.push(self.entry(&d.name, &i, &child)),
                Err(m) => {
                    log::warn!("{}: {child}: {m}", self.device);
                    let mut e = Entry::dir(&d.name);
                    e.kind = kind_from_file_type(d.file_type);
                    out.push(e);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn metadata(&mut self, path: &str) -> Result<Entry, BrowseError> {
        let (p, inode) = self.resolve(path)?;
        let name = p
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("/");
        Ok(self.entry(name, &inode, &p))
    }

    fn read_file(&mut self, path: &str, out: &mut dyn Write) -> Result<u64, BrowseError> {
        let (p, inode) = self.file_inode(path)?;
        self.copy(&inode, &p, &mut PlainOut(out))
    }

    fn read_file_sparse(
        &mut self,
        path: &str,
        out: &mut dyn SparseWrite,
    ) -> Result<u64, BrowseError> {
        let (p, inode) = self.file_inode(path)?;
        self.copy(&inode, &p, &mut HoleOut(out))
    }

    fn read_link(&mut self, path: &str) -> Result<String, BrowseError> {
        let (p, inode) = self.resolve(path)?;
        self.link_target(&inode, &p)
    }
}
