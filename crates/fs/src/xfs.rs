//! XFS: superblock parsing (probe) and the used-block map from each allocation group's free-space
//! B+tree (bnobt) and free list (AGFL), as partclone.xfs builds it: every block that is neither
//! in the bnobt nor on the AGFL is used. The counts are cross-checked against the by-size tree
//! (cntbt), the AGF and the superblock; v5 CRCs of the superblock, AGF, AGFL and every btree block
//! are verified; a log that needs recovery, an external log or a realtime section is an error
//! (the caller images the whole partition).

use crate::bytes::{be16, be32, be64, is_pow2_in, label_from_bytes, le32, slice, u8_at};
use crate::map::{read, MapError, UsedMap};
use crate::probe::{read_opt, FsInfo, FsKind, ProbeError};
use disk::BlockIo;

const SB_CRC_OFF: usize = 224;
const AGF_CRC_OFF: usize = 216;
const AGFL_CRC_OFF: usize = 32;
const SBLOCK_CRC_OFF: usize = 52;
/// Short-form btree block header: v4 16 bytes, v5 56 bytes.
const SBLOCK_LEN_V4: usize = 16;
const SBLOCK_LEN_V5: usize = 56;
/// Deepest AG btree the kernel builds.
const MAX_BTREE_LEVELS: u32 = 9;
const NULL_AGBLOCK: u32 = u32::MAX;

const VERSION_LOGV2: u16 = 0x0400;
const VERSION_MOREBITS: u16 = 0x8000;
const FEATURES2_LAZYSBCOUNT: u32 = 0x2;
const INCOMPAT_FTYPE: u32 = 1;
const INCOMPAT_SPINODES: u32 = 2;
const INCOMPAT_META_UUID: u32 = 4;
const INCOMPAT_BIGTIME: u32 = 8;
const INCOMPAT_NEEDSREPAIR: u32 = 16;
const INCOMPAT_NREXT64: u32 = 32;
const INCOMPAT_EXCHRANGE: u32 = 64;
const INCOMPAT_PARENT: u32 = 128;
const KNOWN_INCOMPAT: u32 = INCOMPAT_FTYPE
    | INCOMPAT_SPINODES
    | INCOMPAT_META_UUID
    | INCOMPAT_BIGTIME
    | INCOMPAT_NEEDSREPAIR
    | INCOMPAT_NREXT64
    | INCOMPAT_EXCHRANGE
    | INCOMPAT_PARENT;
/// finobt, rmapbt, reflink, inobtcount: their blocks are allocated space like any other.
const KNOWN_RO_COMPAT: u32 = 0xF;

/// The superblock fields the probe and the map need, range-checked.
#[derive(Debug, Clone)]
pub(crate) struct Superblock {
    raw: Vec<u8>,
    block_size: u64,
    dblocks: u64,
    rblocks: u64,
    agblocks: u64,
    agblklog: u32,
    agcount: u64,
    sect_size: u64,
    log_start: u64,
    log_blocks: u64,
    version: u16,
    features2: u32,
    incompat: u32,
    ro_compat: u32,
    fdblocks: u64,
    inprogress: bool,
}

impl Superblock {
    fn v5(&self) -> bool {
        self.version & 0xf == 5
    }

    /// The UUID stamped into v5 metadata blocks.
    fn meta_uuid(&self) -> &[u8] {
        if self.incompat & INCOMPAT_META_UUID != 0 {
            slice(&self.raw, 248, 16)
        } else {
            slice(&self.raw, 32, 16)
        }
    }

    fn log_v2(&self) -> bool {
        self.v5() || self.version & VERSION_LOGV2 != 0
    }

    fn lazy_count(&self) -> bool {
        self.v5()
            || (self.version & VERSION_MOREBITS != 0 && self.features2 & FEATURES2_LAZYSBCOUNT != 0)
    }

    fn ag_len(&self, ag: u64) -> u64 {
        (self.dblocks - ag * self.agblocks).min(self.agblocks)
    }
}

fn parse(raw: Vec<u8>) -> Option<Superblock> {
    if slice(&raw, 0, 4) != b"XFSB" {
        return None;
    }
    let block_size = u64::from(be32(&raw, 4));
    let dblocks = be64(&raw, 8);
    let agblocks = u64::from(be32(&raw, 84));
    let agcount = u64::from(be32(&raw, 88));
    let version = be16(&raw, 100);
    let sect_size = u64::from(be16(&raw, 102));
    let block_log = u32::from(u8_at(&raw, 120));
    let sect_log = u32::from(u8_at(&raw, 121));
    let agblklog = u32::from(u8_at(&raw, 124));
    let sane = is_pow2_in(block_size, 512, 65536)
        && block_log < 32
        && block_size == 1u64 << block_log
        && is_pow2_in(sect_size, 512, 32768)
        && sect_log < 32
        && sect_size == 1u64 << sect_log
        && sect_size <= block_size
        && agcount > 0
        && agblocks >= 5
        && agblklog < 32
        && agblocks <= 1u64 << agblklog
        && dblocks > 0
        && dblocks <= agcount * agblocks
        && dblocks > (agcount - 1) * agblocks
        && (1..=5).contains(&(version & 0xf));
    if !sane {
        return None;
    }
    let has_features = version & 0xf == 5;
    Some(Superblock {
        block_size,
        dblocks,
        rblocks: be64(&raw, 16),
        agblocks,
        agblklog,
        agcount,
        sect_size,
        log_start: be64(&raw, 48),
        log_blocks: u64::from(be32(&raw, 96)),
        version,
        features2: be32(&raw, 200),
        incompat: if has_features { be32(&raw, 216) } else { 0 },
        ro_compat: if has_features { be32(&raw, 212) } else { 0 },
        fdblocks: be64(&raw, 144),
        inprogress: u8_at(&raw, 126) != 0,
        raw,
    })
}

fn read_superblock(io: &dyn BlockIo) -> Result<Option<Superblock>, ProbeError> {
    let Some(head) = read_opt(io, 0, 512)? else {
        return Ok(None);
    };
    if slice(&head, 0, 4) != b"XFSB" {
        return Ok(None);
    }
    // The whole first sector (the v5 CRC covers it).
    let sect = u64::from(be16(&head, 102));
    if !is_pow2_in(sect, 512, 32768) {
        return Ok(None);
    }
    let Some(raw) = read_opt(io, 0, sect as usize)? else {
        return Ok(None);
    };
    Ok(parse(raw))
}

pub(crate) fn probe(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    let Some(sb) = read_superblock(io)? else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsKind::Xfs);
    info.version = Some((sb.version & 0xf).to_string());
    info.uuid = crate::bytes::uuid_string(slice(&sb.raw, 32, 16));
    info.label = label_from_bytes(slice(&sb.raw, 108, 12));
    info.block_size = sb.block_size as u32;
    info.cluster_size = sb.block_size as u32;
    info.size = sb.dblocks.saturating_mul(sb.block_size);
    info.used = Some(
        sb.dblocks
            .saturating_sub(sb.fdblocks)
            .saturating_mul(sb.block_size),
    );
    if sb.inprogress {
        info.needs_check = true;
        info.state = Some("mkfs in progress".into());
    } else if sb.incompat & INCOMPAT_NEEDSREPAIR != 0 {
        info.needs_check = true;
        info.state = Some("needs repair".into());
    }
    if sb.fdblocks > sb.dblocks {
        info.warnings.push(format!(
            "xfs free block count {} exceeds the {} blocks",
            sb.fdblocks, sb.dblocks
        ));
    }
    Ok(Some(info))
}

/// Verifies an XFS CRC32C (stored little-endian at `off`, computed with that field as zero).
fn crc_ok(buf: &[u8], off: usize) -> bool {
    let Some(tail) = buf.get(off + 4..) else {
        return false;
    };
    let head = slice(buf, 0, off);
    let c = crate::crc32c::update(!0, head);
    let c = crate::crc32c::update(c, &[0; 4]);
    let c = crate::crc32c::update(c, tail);
    !c == le32(buf, off)
}

/// A free-space btree: its root block, level count, block magic and name for messages.
struct FreeTree<'s> {
    root: u64,
    levels: u32,
    magic: &'s [u8; 4],
    what: &'s str,
}

/// What the walks read with: the device and its superblock.
struct Ctx<'a> {
    io: &'a dyn BlockIo,
    sb: Superblock,
}

/// One AG's free extents as the bnobt yields them, with the AGFL blocks merged in order.
struct FreeRun<'m> {
    ctx: &'m Ctx<'m>,
    map: &'m mut UsedMap,
    ag: u64,
    ag_len: u64,
    /// Next AG block not yet accounted for.
    cursor: u64,
    agfl: Vec<u64>,
    agfl_next: usize,
    free: u64,
    records: u64,
    longest: u64,
}

impl FreeRun<'_> {
    /// Accounts a free extent `[start, start+len)`: everything between the cursor and it is used.
    fn free_extent(&mut self, start: u64, len: u64, what: &str) -> Result<(), MapError> {
        if start < self.cursor {
            return Err(MapError::corrupt(
                self.ctx.io,
                format!(
                    "AG {}: {what} at block {start} overlaps or is out of order (expected at least {})",
                    self.ag, self.cursor
                ),
            ));
        }
        let end = start.checked_add(len).filter(|&e| e <= self.ag_len);
        let Some(end) = end else {
            return Err(MapError::corrupt(
                self.ctx.io,
                format!(
                    "AG {}: {what} {start}+{len} is past the end of the AG",
                    self.ag
                ),
            ));
        };
        self.ctx.mark(self.map, self.ag, self.cursor, start);
        self.cursor = end;
        Ok(())
    }

    /// A bnobt record: the AGFL blocks before it first.
    fn record(&mut self, start: u64, len: u64) -> Result<(), MapError> {
        if len == 0 {
            return Err(MapError::corrupt(
                self.ctx.io,
                format!("AG {}: empty free extent at block {start}", self.ag),
            ));
        }
        self.flush_agfl(start)?;
        self.free_extent(start, len, "free extent")?;
        self.free += len;
        self.records += 1;
        self.longest = self.longest.max(len);
        Ok(())
    }

    /// AGFL blocks below `limit`.
    fn flush_agfl(&mut self, limit: u64) -> Result<(), MapError> {
        while let Some(&b) = self.agfl.get(self.agfl_next) {
            if b >= limit {
                break;
            }
            self.agfl_next += 1;
            self.free_extent(b, 1, "free list block")?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(u64, u64, u64), MapError> {
        self.flush_agfl(u64::MAX)?;
        self.ctx.mark(self.map, self.ag, self.cursor, self.ag_len);
        Ok((self.free, self.records, self.longest))
    }
}

impl Ctx<'_> {
    fn ag_byte(&self, ag: u64, agbno: u64) -> u64 {
        (ag * self.sb.agblocks + agbno) * self.sb.block_size
    }

    /// Marks AG blocks `[from, to)` of AG `ag` used.
    fn mark(&self, map: &mut UsedMap, ag: u64, from: u64, to: u64) {
        if to > from {
            map.mark(self.ag_byte(ag, from), (to - from) * self.sb.block_size);
        }
    }

    /// Sector `n` (0 superblock, 1 AGF, 2 AGI, 3 AGFL) of AG `ag`.
    fn ag_header(&self, ag: u64, n: u64, what: &str) -> Result<Vec<u8>, MapError> {
        let at = self.ag_byte(ag, 0) + n * self.sb.sect_size;
        read(self.io, at, self.sb.sect_size, what)
    }

    fn corrupt(&self, what: String) -> MapError {
        MapError::corrupt(self.io, what)
    }

    /// Reads and checks a short-form btree block of AG `ag`.
    fn btree_block(
        &self,
        ag: u64,
        agbno: u64,
        magic: &[u8; 4],
        what: &str,
    ) -> Result<Vec<u8>, MapError> {
        let b = read(self.io, self.ag_byte(ag, agbno), self.sb.block_size, what)?;
        if slice(&b, 0, 4) != magic {
            return Err(self.corrupt(format!(
                "AG {ag}: {what} block {agbno} has no {} magic",
                String::from_utf8_lossy(magic)
            )));
        }
        if self.sb.v5() {
            if !crc_ok(&b, SBLOCK_CRC_OFF) {
                return Err(self.corrupt(format!("AG {ag}: {what} block {agbno} fails its CRC")));
            }
            let daddr = self.ag_byte(ag, agbno) / 512;
            if be64(&b, 16) != daddr
                || slice(&b, 32, 16) != self.sb.meta_uuid()
                || u64::from(be32(&b, 48)) != ag
            {
                return Err(self.corrupt(format!(
                    "AG {ag}: {what} block {agbno} belongs elsewhere (address, UUID or owner)"
                )));
            }
        }
        Ok(b)
    }

    /// Walks the free-space btree rooted at `root` (depth-first, in key order) and hands every
    /// record to `visit`. Iterative, bounded by the AG size and the level count.
    fn walk_free_tree(
        &self,
        ag: u64,
        ag_len: u64,
        tree: FreeTree<'_>,
        visit: &mut dyn FnMut(u64, u64) -> Result<(), MapError>,
    ) -> Result<(), MapError> {
        let FreeTree {
            root,
            levels,
            magic,
            what,
        } = tree;
        if !(1..=MAX_BTREE_LEVELS).contains(&levels) {
            return Err(self.corrupt(format!("AG {ag}: {what} has {levels} levels")));
        }
        let hdr = if self.sb.v5() {
            SBLOCK_LEN_V5
        } else {
            SBLOCK_LEN_V4
        };
        let bs = self.sb.block_size as usize;
        let leaf_max = (bs - hdr) / 8;
        let node_max = (bs - hdr) / 12;
        let mut stack: Vec<(u64, u32)> = vec![(root, levels - 1)];
        let mut visited = 0u64;
        while let Some((agbno, level)) = stack.pop() {
            visited += 1;
            // The first blocks hold the AG headers; nothing may point past the AG.
            if agbno < 1 || agbno >= ag_len || visited > ag_len {
                return Err(self.corrupt(format!(
                    "AG {ag}: {what} points at block {agbno} (AG of {ag_len} blocks)"
                )));
            }
            let b = self.btree_block(ag, agbno, magic, what)?;
            let blevel = u32::from(be16(&b, 4));
            let n = usize::from(be16(&b, 6));
            if blevel != level {
                return Err(self.corrupt(format!(
                    "AG {ag}: {what} block {agbno} is at level {blevel}, expected {level}"
                )));
            }
            if level == 0 {
                if n > leaf_max || (n == 0 && levels > 1) {
                    return Err(
                        self.corrupt(format!("AG {ag}: {what} leaf {agbno} holds {n} records"))
                    );
                }
                for i in 0..n {
                    let r = hdr + i * 8;
                    visit(u64::from(be32(&b, r)), u64::from(be32(&b, r + 4)))?;
                }
            } else {
                if n == 0 || n > node_max {
                    return Err(
                        self.corrupt(format!("AG {ag}: {what} node {agbno} holds {n} pointers"))
                    );
                }
                let ptrs = hdr + node_max * 8;
                // Pushed in reverse so that the leftmost child is visited first.
                for i in (0..n).rev() {
                    let p = be32(&b, ptrs + i * 4);
                    if p == NULL_AGBLOCK {
                        return Err(self
                            .corrupt(format!("AG {ag}: {what} node {agbno} has a null pointer")));
                    }
                    stack.push((u64::from(p), level - 1));
                }
            }
        }
        Ok(())
    }

    /// The AGFL's blocks, sorted, checked against the AGF's first/last/count.
    fn agfl_blocks(&self, ag: u64, ag_len: u64, agf: &[u8]) -> Result<Vec<u64>, MapError> {
        let flfirst = u64::from(be32(agf, 40));
        let fllast = u64::from(be32(agf, 44));
        let flcount = u64::from(be32(agf, 48));
        if flcount == 0 {
            return Ok(Vec::new());
        }
        let agfl = self.ag_header(ag, 3, "AGFL")?;
        let hdr = if self.sb.v5() {
            if slice(&agfl, 0, 4) != b"XAFL" || u64::from(be32(&agfl, 4)) != ag {
                return Err(self.corrupt(format!("AG {ag}: AGFL has no XAFL magic")));
            }
            if !crc_ok(&agfl, AGFL_CRC_OFF) {
                return Err(self.corrupt(format!("AG {ag}: AGFL fails its CRC")));
            }
            36
        } else {
            0
        };
        let size = (self.sb.sect_size - hdr as u64) / 4;
        if flfirst >= size || fllast >= size || flcount > size {
            return Err(self.corrupt(format!(
                "AG {ag}: free list {flfirst}..{fllast} ({flcount}) outside its {size} slots"
            )));
        }
        let span = (fllast + size - flfirst) % size + 1;
        if span != flcount {
            return Err(MapError::FreeCountMismatch {
                device: self.io.describe(),
                what: format!("AG {ag} free list"),
                bitmap_free: span,
                recorded_free: flcount,
            });
        }
        let mut blocks = Vec::with_capacity(flcount as usize);
        for i in 0..flcount {
            let slot = ((flfirst + i) % size) as usize;
            let b = u64::from(be32(&agfl, hdr + slot * 4));
            if b == 0 || b >= ag_len {
                return Err(self.corrupt(format!("AG {ag}: free list block {b} is outside the AG")));
            }
            blocks.push(b);
        }
        blocks.sort_unstable();
        if blocks.windows(2).any(|w| w[0] == w[1]) {
            return Err(self.corrupt(format!("AG {ag}: free list names a block twice")));
        }
        Ok(blocks)
    }

    /// Maps AG `ag`; returns its free-block total as the superblock counts it.
    fn map_ag(&self, map: &mut UsedMap, ag: u64) -> Result<u64, MapError> {
        let ag_len = self.sb.ag_len(ag);
        let agf = self.ag_header(ag, 1, "AGF")?;
        if slice(&agf, 0, 4) != b"XAGF" || be32(&agf, 4) != 1 {
            return Err(self.corrupt(format!("AG {ag}: AGF has no XAGF magic")));
        }
        if self.sb.v5() {
            if !crc_ok(&agf, AGF_CRC_OFF) {
                return Err(MapError::Corrupt {
                    device: self.io.describe(),
                    what: format!("AG {ag}: AGF fails its CRC"),
                });
            }
            if slice(&agf, 64, 16) != self.sb.meta_uuid() {
                return Err(self.corrupt(format!("AG {ag}: AGF of another file system")));
            }
        }
        if u64::from(be32(&agf, 8)) != ag || u64::from(be32(&agf, 12)) != ag_len {
            return Err(self.corrupt(format!(
                "AG {ag}: AGF says AG {} of {} blocks, expected {ag_len}",
                be32(&agf, 8),
                be32(&agf, 12)
            )));
        }
        let freeblks = u64::from(be32(&agf, 52));
        let longest = u64::from(be32(&agf, 56));
        let btreeblks = u64::from(be32(&agf, 60));
        let flcount = u64::from(be32(&agf, 48));
        let agfl = self.agfl_blocks(ag, ag_len, &agf)?;
        let bno_root = u64::from(be32(&agf, 16));
        let cnt_root = u64::from(be32(&agf, 20));
        let bno_levels = be32(&agf, 28);
        let cnt_levels = be32(&agf, 32);
        let (bno_magic, cnt_magic) = if self.sb.v5() {
            (b"AB3B", b"AB3C")
        } else {
            (b"ABTB", b"ABTC")
        };

        // The by-size tree: the same extents, counted independently.
        let (mut cnt_free, mut cnt_records, mut cnt_longest) = (0u64, 0u64, 0u64);
        self.walk_free_tree(
            ag,
            ag_len,
            FreeTree {
                root: cnt_root,
                levels: cnt_levels,
                magic: cnt_magic,
                what: "by-size free-space btree",
            },
            &mut |_, len| {
                cnt_free = cnt_free.saturating_add(len);
                cnt_records += 1;
                cnt_longest = cnt_longest.max(len);
                Ok(())
            },
        )?;

        let mut run = FreeRun {
            ctx: self,
            map,
            ag,
            ag_len,
            cursor: 0,
            agfl,
            agfl_next: 0,
            free: 0,
            records: 0,
            longest: 0,
        };
        self.walk_free_tree(
            ag,
            ag_len,
            FreeTree {
                root: bno_root,
                levels: bno_levels,
                magic: bno_magic,
                what: "free-space btree",
            },
            &mut |s, l| run.record(s, l),
        )?;
        let (free, records, bno_longest) = run.finish()?;
        if free != freeblks || cnt_free != freeblks || records != cnt_records {
            return Err(MapError::FreeCountMismatch {
                device: self.io.describe(),
                what: format!(
                    "AG {ag} ({records} extents by block, {cnt_records} by size, {cnt_free} blocks by size)"
                ),
                bitmap_free: free,
                recorded_free: freeblks,
            });
        }
        if bno_longest != longest || cnt_longest != longest {
            return Err(self.corrupt(format!(
                "AG {ag}: longest free extent is {bno_longest} blocks, the AGF says {longest}"
            )));
        }
        let btree = if self.sb.lazy_count() { btreeblks } else { 0 };
        Ok(freeblks + flcount + btree)
    }
}

/// The used-block map of an XFS file system.
pub(crate) fn used_map(io: &dyn BlockIo) -> Result<UsedMap, MapError> {
    let Some(sb) = read_superblock(io)? else {
        return Err(MapError::NotRecognised {
            device: io.describe(),
            kind: FsKind::Xfs,
        });
    };
    let kind = FsKind::Xfs;
    crate::map::check_fits(io, kind, sb.dblocks.saturating_mul(sb.block_size))?;
    let whole = |reason: &str| MapError::ImagedWhole {
        device: io.describe(),
        kind,
        reason: reason.to_string(),
    };
    if sb.v5() && !crc_ok(&sb.raw, SB_CRC_OFF) {
        return Err(MapError::corrupt(io, "xfs superblock fails its CRC"));
    }
    if sb.inprogress || sb.incompat & INCOMPAT_NEEDSREPAIR != 0 {
        return Err(MapError::NeedsCheck {
            device: io.describe(),
            kind,
            state: if sb.inprogress {
                "mkfs in progress".into()
            } else {
                "needs repair".into()
            },
        });
    }
    if sb.incompat & !KNOWN_INCOMPAT != 0 || sb.ro_compat & !KNOWN_RO_COMPAT != 0 {
        return Err(whole(&format!(
            "xfs with features this version does not know (incompat {:#x}, ro_compat {:#x})",
            sb.incompat, sb.ro_compat
        )));
    }
    if sb.rblocks != 0 {
        return Err(whole("xfs with a realtime section on another device"));
    }
    if sb.log_start == 0 {
        return Err(whole("xfs with its log on another device"));
    }
    if sb.fdblocks > sb.dblocks {
        return Err(MapError::corrupt(
            io,
            "xfs free block count exceeds the size",
        ));
    }
    xlog::check_clean(io, &sb)?;
    let mut map = UsedMap::new(sb.block_size as u32, io.len())?;
    let ctx = Ctx { io, sb };
    let mut free = 0u64;
    for ag in 0..ctx.sb.agcount {
        free = free.saturating_add(ctx.map_ag(&mut map, ag)?);
    }
    if free != ctx.sb.fdblocks {
        return Err(MapError::FreeCountMismatch {
            device: io.describe(),
            what: "superblock free blocks".into(),
            bitmap_free: free,
            recorded_free: ctx.sb.fdblocks,
        });
    }
    Ok(map)
}

/// The internal log: is it clean (its last record an unmount record at the head)?
mod xlog {
    use super::{crc_ok_range, Superblock};
    use crate::bytes::{be32, le32, slice, u8_at};
    use crate::map::{read, MapError};
    use crate::probe::FsKind;
    use disk::BlockIo;

    const BB: u64 = 512;
    const HEADER_MAGIC: u32 = 0xFEED_BABE;
    const HEADER_CYCLE_SIZE: u64 = 32768;
    const UNMOUNT_TRANS: u8 = 0x20;
    const MAX_ICLOGS: u64 = 8;

    struct Log<'a> {
        io: &'a dyn BlockIo,
        start: u64,
    }

    impl Log<'_> {
        fn read(&self, bb: u64, n: u64) -> Result<Vec<u8>, MapError> {
            read(self.io, self.start + bb * BB, n * BB, "xfs log")
        }

        fn cycle_of(b: &[u8]) -> u32 {
            if be32(b, 0) == HEADER_MAGIC {
                be32(b, 4)
            } else {
                be32(b, 0)
            }
        }

        fn cycle(&self, bb: u64) -> Result<u32, MapError> {
            Ok(Self::cycle_of(&self.read(bb, 1)?))
        }

        /// First block in `[from, from+n)` whose cycle is `cycle`.
        fn find_cycle(&self, from: u64, n: u64, cycle: u32) -> Result<Option<u64>, MapError> {
            let mut at = 0;
            while at < n {
                let chunk = (n - at).min(1024);
                let buf = self.read(from + at, chunk)?;
                for i in 0..chunk {
                    if Self::cycle_of(slice(&buf, (i * BB) as usize, 8)) == cycle {
                        return Ok(Some(from + at + i));
                    }
                }
                at += chunk;
            }
            Ok(None)
        }

        /// Binary search for the first block with cycle `cycle` in `(first, last]`.
        fn cycle_start(&self, mut first: u64, mut last: u64, cycle: u32) -> Result<u64, MapError> {
            let mut mid = (first + last) / 2;
            while mid != first && mid != last {
                if self.cycle(mid)? == cycle {
                    last = mid;
                } else {
                    first = mid;
                }
                mid = (first + last) / 2;
            }
            Ok(last)
        }
    }

    /// Fails with [`MapError::NeedsCheck`] unless the log's last record is an unmount record
    /// ending at the head, found the way the kernel's log recovery finds it.
    pub(super) fn check_clean(io: &dyn BlockIo, sb: &Superblock) -> Result<(), MapError> {
        let dirty = |why: &str| MapError::NeedsCheck {
            device: io.describe(),
            kind: FsKind::Xfs,
            state: format!("log needs recovery ({why})"),
        };
        let ag = sb.log_start >> sb.agblklog;
        let agbno = sb.log_start & ((1u64 << sb.agblklog) - 1);
        let bbs = sb.log_blocks.saturating_mul(sb.block_size) / BB;
        let start = ag
            .checked_mul(sb.agblocks)
            .and_then(|b| b.checked_add(agbno))
            .and_then(|b| b.checked_mul(sb.block_size));
        let Some(start) = start.filter(|&s| {
            ag < sb.agcount
                && agbno < sb.ag_len(ag)
                && bbs >= 64
                && s.checked_add(bbs * BB).is_some_and(|e| e <= io.len())
        }) else {
            return Err(MapError::corrupt(
                io,
                "xfs log lies outside the file system",
            ));
        };
        let log = Log { io, start };
        let shift: u64 = if sb.log_v2() { 18 } else { 15 };
        let rec_bbs = (1u64 << shift) / BB;
        let window = (MAX_ICLOGS * rec_bbs).min(bbs);

        let first_cycle = log.cycle(0)?;
        if first_cycle == 0 {
            // Never written: nothing to replay.
            return Ok(());
        }
        let last_cycle = log.cycle(bbs - 1)?;
        let mut head;
        if last_cycle == 0 {
            // Written once, partly: the head is the first zeroed block.
            if first_cycle != 1 {
                return Err(dirty("partly zeroed log of a later cycle"));
            }
            head = log.cycle_start(0, bbs - 1, 0)?;
            let from = head.saturating_sub(window);
            if let Some(b) = log.find_cycle(from, head - from, 0)? {
                head = b;
            }
        } else {
            let stop;
            if first_cycle == last_cycle {
                head = bbs;
                stop = last_cycle.wrapping_sub(1);
            } else {
                stop = last_cycle;
                head = log.cycle_start(0, bbs - 1, last_cycle)?;
            }
            if head >= window {
                if let Some(b) = log.find_cycle(head - window, window, stop)? {
                    head = b;
                }
            } else if let Some(b) =
                log.find_cycle(bbs - (window - head), window - head, stop.wrapping_sub(1))?
            {
                head = b;
            } else if let Some(b) = log.find_cycle(0, head, stop)? {
                head = b;
            }
        }
        if head == bbs {
            head = 0;
        }
        // The last record header before the head (wrapping), within one record's reach.
        let reach = (rec_bbs + 64).min(bbs);
        let mut found = None;
        for back in 1..=reach {
            let bb = (head + bbs - back) % bbs;
            let b = log.read(bb, 1)?;
            if be32(&b, 0) == HEADER_MAGIC {
                found = Some((bb, b));
                break;
            }
        }
        let Some((rec, hdr)) = found else {
            return Err(dirty("no record header before the head"));
        };
        let len = u64::from(be32(&hdr, 12));
        let version = be32(&hdr, 8);
        let h_size = u64::from(be32(&hdr, 320));
        let hblks = if sb.log_v2() && version == 2 {
            h_size.div_ceil(HEADER_CYCLE_SIZE).max(1)
        } else {
            1
        };
        if !(1..=2).contains(&version) || len == 0 || len > (1 << 19) || hblks > 8 {
            return Err(dirty("last record header is malformed"));
        }
        let data_bbs = len.div_ceil(BB);
        if (rec + hblks + data_bbs) % bbs != head {
            return Err(dirty("the last record does not end at the head"));
        }
        if be32(&hdr, 40) != 1 {
            return Err(dirty("the last record is a transaction"));
        }
        let data = log.read((rec + hblks) % bbs, 1)?;
        if u8_at(&data, 9) & UNMOUNT_TRANS == 0 {
            return Err(dirty("the last record is not an unmount record"));
        }
        // mkfs and xfs_repair write their unmount records without a CRC (zero), as recovery
        // accepts.
        if sb.v5() && le32(&hdr, 32) != 0 {
            // The record CRC: header, extended headers, data. The header counts as
            // `sizeof(struct xlog_rec_header)`: 328 bytes as 64-bit kernels pad it, 324 as
            // 32-bit ones write it (recovery accepts both).
            let mut ext = Vec::new();
            for i in 1..hblks {
                let x = log.read((rec + i) % bbs, 1)?;
                ext.push(slice(&x, 0, 260).to_vec());
            }
            let mut body = Vec::new();
            for i in 0..data_bbs {
                body.extend_from_slice(&log.read((rec + hblks + i) % bbs, 1)?);
            }
            body.truncate(len as usize);
            let ok = [328, 324].iter().any(|&hsize| {
                let mut parts = vec![slice(&hdr, 0, hsize).to_vec()];
                parts.extend(ext.iter().cloned());
                parts.push(body.clone());
                crc_ok_range(&parts, 32)
            });
            if !ok {
                return Err(dirty("the unmount record fails its CRC"));
            }
        }
        Ok(())
    }
}

/// CRC32C over `parts` in order, with the 4 bytes at `off` of the first part as zero.
fn crc_ok_range(parts: &[Vec<u8>], off: usize) -> bool {
    let Some(first) = parts.first() else {
        return false;
    };
    let Some(tail) = first.get(off + 4..) else {
        return false;
    };
    let mut c = crate::crc32c::update(!0, slice(first, 0, off));
    c = crate::crc32c::update(c, &[0; 4]);
    c = crate::crc32c::update(c, tail);
    for p in parts.iter().skip(1) {
        c = crate::crc32c::update(c, p);
    }
    !c == le32(first, off)
}
