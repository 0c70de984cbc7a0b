//! exFAT: boot-sector and root-directory parsing (probe) and the used-cluster map from the
//! allocation bitmap.

use crate::bytes::{label_from_utf16, le16, le32, le64, slice, u8_at, utf16le_units};
use crate::map::{read, MapError, UsedMap};
use crate::probe::{read_opt, FsInfo, FsKind, ProbeError};
use disk::BlockIo;

/// The longest root directory chain the parser follows (clusters); real ones are a few.
const MAX_ROOT_CLUSTERS: usize = 4096;
/// The most root-directory bytes read for the map, whatever the cluster size.
const MAX_ROOT_BYTES: u64 = 8 << 20;
/// The most root-directory bytes read while probing (the label entry comes first).
const PROBE_ROOT_BYTES: u64 = 256 << 10;

/// The main boot sector fields, already range-checked.
#[derive(Debug, Clone)]
pub(crate) struct BootSector {
    pub sector_size: u64,
    pub cluster_size: u64,
    pub volume_length: u64,
    /// In sectors.
    pub fat_offset: u64,
    pub fat_length: u64,
    pub cluster_heap_offset: u64,
    pub cluster_count: u64,
    pub root_cluster: u32,
    pub serial: u32,
    pub revision: u16,
    pub flags: u16,
    pub fats: u64,
}

impl BootSector {
    pub fn cluster_offset(&self, cluster: u32) -> Option<u64> {
        let c = u64::from(cluster);
        if c < 2 || c >= self.cluster_count + 2 {
            return None;
        }
        Some(self.cluster_heap_offset * self.sector_size + (c - 2) * self.cluster_size)
    }
}

pub(crate) fn read_boot(io: &dyn BlockIo) -> Result<Option<BootSector>, ProbeError> {
    let Some(b) = read_opt(io, 0, 512)? else {
        return Ok(None);
    };
    if slice(&b, 3, 8) != b"EXFAT   " || le16(&b, 510) != 0xAA55 {
        return Ok(None);
    }
    // The "must be zero" area where a FAT BPB would be.
    if slice(&b, 11, 53).iter().any(|&c| c != 0) {
        return Ok(None);
    }
    let sector_shift = u32::from(u8_at(&b, 108));
    let cluster_shift = u32::from(u8_at(&b, 109));
    if !(9..=12).contains(&sector_shift) || sector_shift + cluster_shift > 25 {
        return Ok(None);
    }
    let sector_size = 1u64 << sector_shift;
    let bs = BootSector {
        sector_size,
        cluster_size: sector_size << cluster_shift,
        volume_length: le64(&b, 72),
        fat_offset: u64::from(le32(&b, 80)),
        fat_length: u64::from(le32(&b, 84)),
        cluster_heap_offset: u64::from(le32(&b, 88)),
        cluster_count: u64::from(le32(&b, 92)),
        root_cluster: le32(&b, 96),
        serial: le32(&b, 100),
        revision: le16(&b, 104),
        flags: le16(&b, 106),
        fats: u64::from(u8_at(&b, 110)),
    };
    let sane = (1..=2).contains(&bs.fats)
        && bs.fat_offset >= 24
        && bs.fat_length > 0
        && bs.cluster_heap_offset >= bs.fat_offset + bs.fats * bs.fat_length
        && bs.cluster_count > 0
        && bs.cluster_count <= 0xFFFF_FFF5
        && bs.fat_length * sector_size >= (bs.cluster_count + 2) * 4
        && bs.volume_length
            >= bs.cluster_heap_offset + bs.cluster_count * (bs.cluster_size / sector_size)
        && bs.root_cluster >= 2
        && u64::from(bs.root_cluster) < bs.cluster_count + 2
        && bs.revision >> 8 == 1;
    Ok(sane.then_some(bs))
}

/// Reads the FAT entry of `cluster` (from the first FAT).
pub(crate) fn fat_entry(
    io: &dyn BlockIo,
    bs: &BootSector,
    cluster: u32,
) -> Result<Option<u32>, ProbeError> {
    let off = bs.fat_offset * bs.sector_size + u64::from(cluster) * 4;
    Ok(read_opt(io, off, 4)?.map(|b| le32(&b, 0)))
}

/// The first `max` bytes of the root directory, following its FAT chain (bounded, loops cut,
/// stopping at the end-of-directory entry).
pub(crate) fn read_root_dir(
    io: &dyn BlockIo,
    bs: &BootSector,
    max: u64,
) -> Result<Vec<u8>, ProbeError> {
    let mut out = Vec::new();
    let mut cluster = bs.root_cluster;
    for _ in 0..MAX_ROOT_CLUSTERS {
        let Some(off) = bs.cluster_offset(cluster) else {
            break;
        };
        let take = bs.cluster_size.min(max.saturating_sub(out.len() as u64));
        if take == 0 {
            break;
        }
        let Some(data) = read_opt(io, off, take as usize)? else {
            break;
        };
        let ended = data.chunks_exact(32).any(|e| e.first() == Some(&0));
        out.extend_from_slice(&data);
        if ended || take < bs.cluster_size {
            break;
        }
        match fat_entry(io, bs, cluster)? {
            Some(next) if next != cluster => cluster = next,
            _ => break,
        }
    }
    Ok(out)
}

pub(crate) fn probe(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    let Some(bs) = read_boot(io)? else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsKind::Exfat);
    info.version = Some(format!("{}.{}", bs.revision >> 8, bs.revision & 0xff));
    info.uuid = Some(format!(
        "{:04X}-{:04X}",
        bs.serial >> 16,
        bs.serial & 0xffff
    ));
    info.block_size = bs.sector_size as u32;
    info.cluster_size = bs.cluster_size as u32;
    info.size = bs.volume_length.saturating_mul(bs.sector_size);
    if bs.flags & 0x2 != 0 {
        info.needs_check = true;
        info.state = Some("dirty".into());
    } else {
        info.state = Some("clean".into());
    }
    let root = read_root_dir(io, &bs, PROBE_ROOT_BYTES)?;
    for e in root.chunks_exact(32) {
        match u8_at(e, 0) {
            0 => break,
            0x83 => {
                let n = usize::from(u8_at(e, 1)).min(11);
                info.label = label_from_utf16(&utf16le_units(slice(e, 2, n * 2)));
                break;
            }
            _ => {}
        }
    }
    Ok(Some(info))
}

/// The used-cluster map of an exFAT volume: the boot regions and FATs, then every cluster set in
/// the allocation bitmap(s) named by the root directory (TexFAT's two bitmaps are united).
pub(crate) fn used_map(io: &dyn BlockIo) -> Result<UsedMap, MapError> {
    let Some(bs) = read_boot(io)? else {
        return Err(MapError::NotRecognised {
            device: io.describe(),
            kind: FsKind::Exfat,
        });
    };
    crate::map::check_fits(
        io,
        FsKind::Exfat,
        bs.volume_length.saturating_mul(bs.sector_size),
    )?;
    if bs.flags & 0x2 != 0 {
        log::warn!(
            "{}: exFAT volume is marked dirty; mapping its allocation bitmap as is",
            io.describe()
        );
    }
    let heap = bs.cluster_heap_offset * bs.sector_size;
    let mut unit = bs.cluster_size;
    while unit > bs.sector_size && heap % unit != 0 {
        unit /= 2;
    }
    let mut map = UsedMap::new(unit as u32, io.len())?;
    map.mark(0, heap);
    let root = read_root_dir(io, &bs, MAX_ROOT_BYTES)?;
    let mut bitmaps = 0;
    for e in root.chunks_exact(32) {
        match u8_at(e, 0) {
            0 => break,
            0x81 => {
                bitmaps += 1;
                let first = le32(e, 20);
                let length = le64(e, 24);
                let need = bs.cluster_count.div_ceil(8);
                let Some(off) = bs.cluster_offset(first) else {
                    return Err(MapError::corrupt(
                        io,
                        format!("allocation bitmap at cluster {first}"),
                    ));
                };
                if length < need || length > need + bs.cluster_size {
                    return Err(MapError::corrupt(
                        io,
                        format!(
                            "allocation bitmap of {length} bytes for {} clusters",
                            bs.cluster_count
                        ),
                    ));
                }
                // Like the Linux driver, the bitmap is read as one contiguous run.
                let bitmap = read(io, off, need, "allocation bitmap")?;
                map.mark(off, need);
                map.mark_bitmap(&bitmap, bs.cluster_count, heap, bs.cluster_size);
            }
            _ => {}
        }
    }
    if bitmaps == 0 || bitmaps > 2 {
        return Err(MapError::corrupt(
            io,
            format!("{bitmaps} allocation bitmaps in the root directory"),
        ));
    }
    // The root directory itself (normally also set in the bitmap).
    let mut cluster = bs.root_cluster;
    for _ in 0..MAX_ROOT_CLUSTERS {
        let Some(off) = bs.cluster_offset(cluster) else {
            break;
        };
        map.mark(off, bs.cluster_size);
        match fat_entry(io, &bs, cluster)? {
            Some(next) if next != cluster => cluster = next,
            _ => break,
        }
    }
    Ok(map)
}
