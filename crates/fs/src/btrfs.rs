//! btrfs: superblock parsing (probe) and the used-block map of a single-device file system.
//!
//! The map is built from the extent tree: the bootstrap chunks in the superblock's
//! `sys_chunk_array` map the chunk tree, the chunk tree maps every logical address to its
//! physical copies (one for `single`, two for `DUP`), and every `EXTENT_ITEM` (data, and tree
//! blocks without skinny metadata) and `METADATA_ITEM` (tree blocks) of the extent tree is marked
//! at each of its copies. That is finer than partclone.btrfs, which copies whole trees and
//! checksummed data, and far finer than copying allocated chunks. The first MiB (boot loader
//! area and the primary superblock) and the superblock mirrors at 64 MiB and 256 GiB are always
//! marked. Every tree block's CRC32C, address, file-system UUID and level are checked; the
//! device tree's `DEV_EXTENT` items must be exactly the chunks' copies; the extents of each block
//! group must add up to the block group's `used` bytes and all of them to the superblock's
//! `bytes_used`. Several devices, a log tree waiting for replay, other checksum
//! algorithms and unknown features are errors (the caller images the whole partition).

use crate::bytes::{is_pow2_in, label_from_bytes, le16, le32, le64, slice, u8_at, uuid_string};
use crate::map::{read, MapError, UsedMap};
use crate::probe::{read_opt, FsInfo, FsKind, ProbeError};
use disk::BlockIo;

const SUPER_OFFSET: u64 = 0x10000;
const SUPER_SIZE: u64 = 4096;
/// The superblock copies: 64 KiB, 64 MiB, 256 GiB.
const SUPER_MIRRORS: [u64; 3] = [0x10000, 64 << 20, 256 << 30];
/// btrfs never allocates below 1 MiB; boot loaders may live there.
const RESERVED_START: u64 = 1 << 20;
const SYS_CHUNK_ARRAY_OFF: usize = 811;
const SYS_CHUNK_ARRAY_MAX: usize = 2048;

const HEADER_LEN: usize = 101;
const ITEM_LEN: usize = 25;
const KEY_PTR_LEN: usize = 33;
const MAX_LEVEL: u8 = 7;
/// Most chunks (and block groups, and device extents per copy) accepted: a petabyte of 1 GiB
/// data chunks. Bounds what a hostile chunk or extent tree can make us hold.
const MAX_CHUNKS: usize = 1 << 20;

const ROOT_ITEM_KEY: u8 = 132;
const EXTENT_ITEM_KEY: u8 = 168;
const METADATA_ITEM_KEY: u8 = 169;
const BLOCK_GROUP_ITEM_KEY: u8 = 192;
const CHUNK_ITEM_KEY: u8 = 228;
const DEV_EXTENT_KEY: u8 = 204;
const EXTENT_TREE_OBJECTID: u64 = 2;
const DEV_TREE_OBJECTID: u64 = 4;
const BLOCK_GROUP_TREE_OBJECTID: u64 = 11;

const BG_RAID0: u64 = 1 << 3;
const BG_RAID1: u64 = 1 << 4;
const BG_DUP: u64 = 1 << 5;
const BG_RAID10: u64 = 1 << 6;
const BG_RAID5: u64 = 1 << 7;
const BG_RAID6: u64 = 1 << 8;
const BG_RAID1C3: u64 = 1 << 9;
const BG_RAID1C4: u64 = 1 << 10;

const INCOMPAT_METADATA_UUID: u64 = 1 << 10;
/// mixed_backref, default_subvol, mixed_groups, compress_lzo, compress_zstd, big_metadata,
/// extended_iref, raid56, skinny_metadata, no_holes, metadata_uuid, raid1c34, simple_quota.
const KNOWN_INCOMPAT: u64 = 0xFFF | (1 << 16);
/// free_space_tree, free_space_tree_valid, verity, block_group_tree.
const KNOWN_COMPAT_RO: u64 = 0xF;
const COMPAT_RO_BLOCK_GROUP_TREE: u64 = 1 << 3;
const FLAG_ERROR: u64 = 1 << 2;
/// written, reloc, seeding.
const KNOWN_FLAGS: u64 = 1 | (1 << 1) | FLAG_ERROR | (1 << 32);

/// The superblock fields the probe and the map need.
struct Superblock {
    raw: Vec<u8>,
    sector_size: u64,
    node_size: u64,
}

impl Superblock {
    fn u64_at(&self, off: usize) -> u64 {
        le64(&self.raw, off)
    }
    fn root(&self) -> u64 {
        self.u64_at(80)
    }
    fn chunk_root(&self) -> u64 {
        self.u64_at(88)
    }
    fn log_root(&self) -> u64 {
        self.u64_at(96)
    }
    fn bytes_used(&self) -> u64 {
        self.u64_at(120)
    }
    fn num_devices(&self) -> u64 {
        self.u64_at(136)
    }
    fn incompat(&self) -> u64 {
        self.u64_at(188)
    }
    fn compat_ro(&self) -> u64 {
        self.u64_at(180)
    }
    fn flags(&self) -> u64 {
        self.u64_at(56)
    }
    fn generation(&self) -> u64 {
        self.u64_at(72)
    }
    fn devid(&self) -> u64 {
        self.u64_at(201)
    }
    fn dev_total_bytes(&self) -> u64 {
        self.u64_at(209)
    }
    /// The UUID stamped into tree block headers.
    fn tree_fsid(&self) -> &[u8] {
        if self.incompat() & INCOMPAT_METADATA_UUID != 0 {
            slice(&self.raw, 571, 16)
        } else {
            slice(&self.raw, 32, 16)
        }
    }
}

fn read_superblock(io: &dyn BlockIo) -> Result<Option<Superblock>, ProbeError> {
    let Some(raw) = read_opt(io, SUPER_OFFSET, SUPER_SIZE as usize)? else {
        return Ok(None);
    };
    if slice(&raw, 64, 8) != b"_BHRfS_M" || le64(&raw, 48) != SUPER_OFFSET {
        return Ok(None);
    }
    let sector_size = u64::from(le32(&raw, 144));
    let node_size = u64::from(le32(&raw, 148));
    if !is_pow2_in(sector_size, 512, 65536) || !is_pow2_in(node_size, sector_size, 65536) {
        return Ok(None);
    }
    Ok(Some(Superblock {
        raw,
        sector_size,
        node_size,
    }))
}

pub(crate) fn probe(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    let Some(sb) = read_superblock(io)? else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsKind::Btrfs);
    info.uuid = uuid_string(slice(&sb.raw, 32, 16));
    info.label = label_from_bytes(slice(&sb.raw, 299, 256));
    info.block_size = sb.sector_size as u32;
    info.cluster_size = sb.sector_size as u32;
    // This device's share (dev_item.total_bytes); the superblock's total covers all devices.
    info.size = sb.dev_total_bytes();
    info.used = Some(sb.bytes_used());
    if sb.num_devices() > 1 {
        info.version = Some(format!("multi-device ({} devices)", sb.num_devices()));
    }
    if sb.flags() & FLAG_ERROR != 0 {
        info.needs_check = true;
        info.state = Some("errors".into());
    } else if sb.log_root() != 0 {
        info.needs_check = true;
        info.state = Some("log tree not replayed".into());
    }
    Ok(Some(info))
}

/// The standard CRC-32C of `data`.
fn crc32c(data: &[u8]) -> u32 {
    !crate::crc32c::update(!0, data)
}

/// One chunk: `[logical, logical+length)` stored at each stripe's physical offset.
#[derive(Debug, Clone)]
struct Chunk {
    logical: u64,
    length: u64,
    stripes: Vec<u64>,
}

struct Ctx<'a> {
    io: &'a dyn BlockIo,
    sb: Superblock,
    /// Sorted by logical address, non-overlapping.
    chunks: Vec<Chunk>,
    /// Tree blocks read so far (a bound against loops).
    blocks_read: u64,
    max_blocks: u64,
}

/// A key and the bytes of its item.
struct Item<'b> {
    objectid: u64,
    kind: u8,
    offset: u64,
    data: &'b [u8],
}

impl Ctx<'_> {
    fn corrupt(&self, what: String) -> MapError {
        MapError::corrupt(self.io, what)
    }

    fn whole(&self, reason: String) -> MapError {
        MapError::ImagedWhole {
            device: self.io.describe(),
            kind: FsKind::Btrfs,
            reason,
        }
    }

    /// Parses a chunk item; only chunks whose every copy is whole on this device are accepted.
    fn parse_chunk(&self, logical: u64, c: &[u8]) -> Result<(Chunk, usize), MapError> {
        let length = le64(c, 0);
        let kind = le64(c, 24);
        let num = usize::from(le16(c, 44));
        let size = 48 + 32 * num;
        if c.len() < size || num == 0 || length == 0 || logical.checked_add(length).is_none() {
            return Err(self.corrupt(format!("chunk at {logical} is malformed")));
        }
        let striped = kind & (BG_RAID0 | BG_RAID10 | BG_RAID5 | BG_RAID6) != 0;
        let mirrored = kind & (BG_DUP | BG_RAID1 | BG_RAID1C3 | BG_RAID1C4) != 0;
        if (striped && num > 1) || (!striped && !mirrored && num != 1) {
            return Err(self.whole(format!(
                "btrfs with a chunk striped over {num} devices (profile {:#x})",
                kind
            )));
        }
        let mut stripes = Vec::with_capacity(num);
        for i in 0..num {
            let s = slice(c, 48 + 32 * i, 32);
            if le64(s, 0) != self.sb.devid() {
                return Err(self.whole(format!(
                    "multi-device btrfs (chunk at {logical} lives on device {})",
                    le64(s, 0)
                )));
            }
            let phys = le64(s, 8);
            if phys.checked_add(length).is_none_or(|e| e > self.io.len()) {
                return Err(self.corrupt(format!(
                    "chunk at {logical} is stored at {phys}+{length}, past the end of the device"
                )));
            }
            stripes.push(phys);
        }
        Ok((
            Chunk {
                logical,
                length,
                stripes,
            },
            size,
        ))
    }

    fn add_chunk(&mut self, chunk: Chunk) -> Result<(), MapError> {
        let at = self.chunks.partition_point(|c| c.logical < chunk.logical);
        if let Some(same) = self.chunks.get(at).filter(|c| c.logical == chunk.logical) {
            if same.length != chunk.length || same.stripes != chunk.stripes {
                return Err(self.corrupt(format!(
                    "chunk at {} is described twice differently",
                    chunk.logical
                )));
            }
            return Ok(());
        }
        let overlaps_prev = at > 0
            && self
                .chunks
                .get(at - 1)
                .is_some_and(|p| p.logical + p.length > chunk.logical);
        let overlaps_next = self
            .chunks
            .get(at)
            .is_some_and(|n| chunk.logical + chunk.length > n.logical);
        if overlaps_prev || overlaps_next {
            return Err(self.corrupt(format!("chunk at {} overlaps another", chunk.logical)));
        }
        if self.chunks.len() as u64 >= self.max_blocks || self.chunks.len() >= MAX_CHUNKS {
            return Err(self.corrupt("more chunks than the device can hold".into()));
        }
        self.chunks.insert(at, chunk);
        Ok(())
    }

    /// The chunk holding `[logical, logical+len)` entirely.
    fn chunk_of(&self, logical: u64, len: u64) -> Option<&Chunk> {
        let at = self.chunks.partition_point(|c| c.logical <= logical);
        let c = self.chunks.get(at.checked_sub(1)?)?;
        let end = logical.checked_add(len)?;
        (end <= c.logical + c.length).then_some(c)
    }

    /// Reads the tree block at `logical`, trying each copy until one checks out.
    fn tree_block(&mut self, logical: u64, level: u8) -> Result<Vec<u8>, MapError> {
        self.blocks_read += 1;
        if self.blocks_read > self.max_blocks {
            return Err(self.corrupt("tree walk visits more blocks than the device holds".into()));
        }
        let ns = self.sb.node_size;
        let Some(chunk) = self.chunk_of(logical, ns).cloned() else {
            return Err(self.corrupt(format!("tree block {logical} is in no chunk")));
        };
        let mut why = String::new();
        for phys in &chunk.stripes {
            let at = phys + (logical - chunk.logical);
            let b = read(self.io, at, ns, "btrfs tree block")?;
            match self.check_block(&b, logical, level) {
                Ok(()) => return Ok(b),
                Err(e) => why = e,
            }
        }
        Err(self.corrupt(format!("tree block {logical}: {why}")))
    }

    fn check_block(&self, b: &[u8], logical: u64, level: u8) -> Result<(), String> {
        if crc32c(slice(b, 32, b.len() - 32)) != le32(b, 0) {
            return Err("checksum mismatch".into());
        }
        if slice(b, 32, 16) != self.sb.tree_fsid() {
            return Err("belongs to another file system".into());
        }
        if le64(b, 48) != logical {
            return Err(format!("says it is block {}", le64(b, 48)));
        }
        if u8_at(b, 100) != level {
            return Err(format!("is at level {}, expected {level}", u8_at(b, 100)));
        }
        if le64(b, 80) > self.sb.generation() {
            return Err("is newer than the superblock".into());
        }
        Ok(())
    }

    /// Walks the tree rooted at `root` (depth-first, in key order) and hands every leaf item to
    /// `visit`. Iterative; bounded by the level limit and the block budget.
    fn walk(
        &mut self,
        root: u64,
        root_level: u8,
        what: &str,
        visit: &mut dyn FnMut(&Ctx<'_>, Item<'_>) -> Result<(), MapError>,
    ) -> Result<(), MapError> {
        if root_level > MAX_LEVEL {
            return Err(self.corrupt(format!("{what} has {root_level} levels")));
        }
        let ns = self.sb.node_size as usize;
        let mut stack = vec![(root, root_level)];
        while let Some((logical, level)) = stack.pop() {
            let b = self.tree_block(logical, level)?;
            let n = le32(&b, 96) as usize;
            if level == 0 {
                if n > (ns - HEADER_LEN) / ITEM_LEN {
                    return Err(self.corrupt(format!("{what} leaf {logical} holds {n} items")));
                }
                for i in 0..n {
                    let it = HEADER_LEN + i * ITEM_LEN;
                    let off = le32(&b, it + 17) as usize;
                    let size = le32(&b, it + 21) as usize;
                    let data = HEADER_LEN
                        .checked_add(off)
                        .and_then(|s| Some(s..s.checked_add(size)?))
                        .and_then(|r| b.get(r));
                    let Some(data) = data else {
                        return Err(self.corrupt(format!(
                            "{what} leaf {logical} item {i} lies outside the block"
                        )));
                    };
                    let item = Item {
                        objectid: le64(&b, it),
                        kind: u8_at(&b, it + 8),
                        offset: le64(&b, it + 9),
                        data,
                    };
                    visit(self, item)?;
                }
            } else {
                if n == 0 || n > (ns - HEADER_LEN) / KEY_PTR_LEN {
                    return Err(self.corrupt(format!("{what} node {logical} holds {n} pointers")));
                }
                for i in (0..n).rev() {
                    let p = HEADER_LEN + i * KEY_PTR_LEN;
                    stack.push((le64(&b, p + 17), level - 1));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct BlockGroup {
    logical: u64,
    length: u64,
    used: u64,
}

/// The used-block map of a single-device btrfs.
pub(crate) fn used_map(io: &dyn BlockIo) -> Result<UsedMap, MapError> {
    let kind = FsKind::Btrfs;
    let Some(sb) = read_superblock(io)? else {
        return Err(MapError::NotRecognised {
            device: io.describe(),
            kind,
        });
    };
    let whole = |reason: String| MapError::ImagedWhole {
        device: io.describe(),
        kind,
        reason,
    };
    let csum_type = le16(&sb.raw, 196);
    if csum_type != 0 {
        return Err(whole(format!(
            "btrfs with checksum type {csum_type} (only crc32c is read)"
        )));
    }
    if crc32c(slice(&sb.raw, 32, SUPER_SIZE as usize - 32)) != le32(&sb.raw, 0) {
        return Err(MapError::corrupt(io, "btrfs superblock fails its checksum"));
    }
    if sb.num_devices() != 1 {
        return Err(whole(format!(
            "multi-device btrfs ({} devices)",
            sb.num_devices()
        )));
    }
    if sb.flags() & FLAG_ERROR != 0 || sb.log_root() != 0 {
        return Err(MapError::NeedsCheck {
            device: io.describe(),
            kind,
            state: if sb.log_root() != 0 {
                "log tree not replayed (mount it once)".into()
            } else {
                "errors".into()
            },
        });
    }
    if sb.incompat() & !KNOWN_INCOMPAT != 0
        || sb.compat_ro() & !KNOWN_COMPAT_RO != 0
        || sb.flags() & !KNOWN_FLAGS != 0
    {
        return Err(whole(format!(
            "btrfs with features this version does not know (incompat {:#x}, compat_ro {:#x}, flags {:#x})",
            sb.incompat(),
            sb.compat_ro(),
            sb.flags()
        )));
    }
    crate::map::check_fits(io, kind, sb.dev_total_bytes())?;
    let max_blocks = (io.len() / sb.node_size).max(1);
    let mut ctx = Ctx {
        io,
        sb,
        chunks: Vec::new(),
        blocks_read: 0,
        max_blocks,
    };

    // Bootstrap: the system chunks in the superblock.
    let array_len = le32(&ctx.sb.raw, 160) as usize;
    if array_len > SYS_CHUNK_ARRAY_MAX {
        return Err(ctx.corrupt(format!("sys_chunk_array of {array_len} bytes")));
    }
    let array = slice(&ctx.sb.raw, SYS_CHUNK_ARRAY_OFF, array_len).to_vec();
    let mut at = 0usize;
    while at < array.len() {
        let key = slice(&array, at, 17);
        if key.len() != 17 || u8_at(key, 8) != CHUNK_ITEM_KEY {
            return Err(ctx.corrupt("sys_chunk_array holds something else than chunks".into()));
        }
        let (chunk, size) =
            ctx.parse_chunk(le64(key, 9), slice(&array, at + 17, array.len() - at - 17))?;
        ctx.add_chunk(chunk)?;
        at += 17 + size;
    }

    // The chunk tree: every chunk.
    let mut found = Vec::new();
    let chunk_root = ctx.sb.chunk_root();
    let chunk_level = u8_at(&ctx.sb.raw, 199);
    ctx.walk(chunk_root, chunk_level, "chunk tree", &mut |c, item| {
        if item.kind == CHUNK_ITEM_KEY {
            if found.len() >= MAX_CHUNKS {
                return Err(c.corrupt(format!("chunk tree holds more than {MAX_CHUNKS} chunks")));
            }
            found.push(c.parse_chunk(item.offset, item.data)?.0);
        }
        Ok(())
    })?;
    for chunk in found {
        ctx.add_chunk(chunk)?;
    }

    // The root tree: where the extent tree (and the block group tree) start.
    let mut roots: Vec<(u64, u64, u8)> = Vec::new();
    let root = ctx.sb.root();
    let root_level = u8_at(&ctx.sb.raw, 198);
    ctx.walk(root, root_level, "root tree", &mut |_, item| {
        let wanted = [
            EXTENT_TREE_OBJECTID,
            DEV_TREE_OBJECTID,
            BLOCK_GROUP_TREE_OBJECTID,
        ];
        if item.kind == ROOT_ITEM_KEY && wanted.contains(&item.objectid) {
            roots.push((item.objectid, le64(item.data, 176), u8_at(item.data, 238)));
        }
        Ok(())
    })?;
    let find_root = |id: u64| roots.iter().find(|r| r.0 == id).map(|r| (r.1, r.2));
    let Some((extent_root, extent_level)) = find_root(EXTENT_TREE_OBJECTID) else {
        return Err(ctx.corrupt("root tree has no extent tree".into()));
    };

    // The device tree: its extents must be exactly the chunks' copies on this device.
    let Some((dev_root, dev_level)) = find_root(DEV_TREE_OBJECTID) else {
        return Err(ctx.corrupt("root tree has no device tree".into()));
    };
    let devid = ctx.sb.devid();
    let mut dev_extents: Vec<(u64, u64, u64)> = Vec::new();
    ctx.walk(dev_root, dev_level, "device tree", &mut |c, item| {
        if item.kind == DEV_EXTENT_KEY && item.objectid == devid {
            if dev_extents.len() >= 4 * MAX_CHUNKS {
                return Err(c.corrupt("device tree holds too many extents".into()));
            }
            dev_extents.push((item.offset, le64(item.data, 16), le64(item.data, 24)));
        }
        Ok(())
    })?;
    let mut copies: Vec<(u64, u64, u64)> = ctx
        .chunks
        .iter()
        .flat_map(|c| c.stripes.iter().map(|&p| (p, c.logical, c.length)))
        .collect();
    dev_extents.sort_unstable();
    copies.sort_unstable();
    if dev_extents != copies {
        return Err(ctx.corrupt(format!(
            "{} device extents do not match the {} chunk copies of the chunk tree",
            dev_extents.len(),
            copies.len()
        )));
    }

    let mut map = UsedMap::new(ctx.sb.sector_size as u32, io.len())?;
    map.mark(0, RESERVED_START);
    for m in SUPER_MIRRORS {
        if m + SUPER_SIZE <= io.len() {
            map.mark(m, SUPER_SIZE);
        }
    }

    // The extent tree: every allocated extent, at each copy.
    let node_size = ctx.sb.node_size;
    let mut groups: Vec<BlockGroup> = Vec::new();
    let mut prev_end = 0u64;
    let mut total = 0u64;
    let mut per_chunk: Vec<u64> = vec![0; ctx.chunks.len()];
    ctx.walk(extent_root, extent_level, "extent tree", &mut |c, item| {
        let len = match item.kind {
            EXTENT_ITEM_KEY => item.offset,
            METADATA_ITEM_KEY => node_size,
            BLOCK_GROUP_ITEM_KEY => {
                if groups.len() >= MAX_CHUNKS {
                    return Err(MapError::corrupt(
                        io,
                        "more block groups than chunks can be",
                    ));
                }
                groups.push(BlockGroup {
                    logical: item.objectid,
                    length: item.offset,
                    used: le64(item.data, 0),
                });
                return Ok(());
            }
            _ => return Ok(()),
        };
        let start = item.objectid;
        if len == 0 || start < prev_end {
            return Err(c.corrupt(format!(
                "extent {start}+{len} overlaps the previous one or is empty"
            )));
        }
        let Some(chunk) = c.chunk_of(start, len) else {
            return Err(c.corrupt(format!("extent {start}+{len} is in no chunk")));
        };
        for phys in &chunk.stripes {
            map.mark(phys + (start - chunk.logical), len);
        }
        let idx = c.chunks.partition_point(|x| x.logical <= start) - 1;
        if let Some(sum) = per_chunk.get_mut(idx) {
            *sum += len;
        }
        prev_end = start + len;
        total += len;
        Ok(())
    })?;
    if ctx.sb.compat_ro() & COMPAT_RO_BLOCK_GROUP_TREE != 0 {
        let Some((bg_root, bg_level)) = find_root(BLOCK_GROUP_TREE_OBJECTID) else {
            return Err(ctx.corrupt("root tree has no block group tree".into()));
        };
        ctx.walk(bg_root, bg_level, "block group tree", &mut |_, item| {
            if item.kind == BLOCK_GROUP_ITEM_KEY {
                if groups.len() >= MAX_CHUNKS {
                    return Err(MapError::corrupt(
                        io,
                        "more block groups than chunks can be",
                    ));
                }
                groups.push(BlockGroup {
                    logical: item.objectid,
                    length: item.offset,
                    used: le64(item.data, 0),
                });
            }
            Ok(())
        })?;
    }

    // Cross-checks: one block group per chunk, its used bytes equal to its extents.
    if groups.len() != ctx.chunks.len() {
        return Err(ctx.corrupt(format!(
            "{} block groups for {} chunks",
            groups.len(),
            ctx.chunks.len()
        )));
    }
    let mut group_total = 0u64;
    for g in &groups {
        let idx = ctx.chunks.partition_point(|c| c.logical < g.logical);
        let matches = ctx
            .chunks
            .get(idx)
            .is_some_and(|c| c.logical == g.logical && c.length == g.length);
        if !matches {
            return Err(ctx.corrupt(format!(
                "block group {}+{} matches no chunk",
                g.logical, g.length
            )));
        }
        let counted = per_chunk.get(idx).copied().unwrap_or(0);
        if counted != g.used {
            return Err(MapError::FreeCountMismatch {
                device: io.describe(),
                what: format!("block group at {}", g.logical),
                bitmap_free: g.length - counted.min(g.length),
                recorded_free: g.length - g.used.min(g.length),
            });
        }
        group_total = group_total.saturating_add(g.used);
    }
    if total != ctx.sb.bytes_used() || group_total != total {
        return Err(ctx.corrupt(format!(
            "extents add up to {total} bytes, block groups to {group_total}, the superblock says {}",
            ctx.sb.bytes_used()
        )));
    }
    Ok(map)
}
