//! FAT12/FAT16/FAT32: boot-sector parsing (probe) and the used-cluster map from the FAT.

use crate::bytes::{is_pow2_in, le16, le32, slice, u8_at};
use crate::map::{read, MapError, UsedMap};
use crate::probe::{read_opt, FsInfo, FsKind, ProbeError};
use disk::BlockIo;

/// The FAT width, decided by the cluster count as the Microsoft specification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

/// The boot-sector (BPB) fields, already range-checked.
#[derive(Debug, Clone)]
pub(crate) struct Bpb {
    pub raw: Vec<u8>,
    pub bytes_per_sector: u64,
    pub sectors_per_cluster: u64,
    pub reserved_sectors: u64,
    pub total_sectors: u64,
    pub fat_type: FatType,
    /// Number of data clusters (numbered 2..cluster_count+2).
    pub cluster_count: u64,
    /// First sector of the data region (cluster 2).
    pub first_data_sector: u64,
    /// Entries of the FAT12/16 root directory (0 on FAT32).
    pub root_entries: u64,
    /// Sectors of one FAT.
    pub fat_sectors: u64,
    /// Number of FATs.
    pub fats: u64,
}

impl Bpb {
    pub fn cluster_bytes(&self) -> u64 {
        self.bytes_per_sector * self.sectors_per_cluster
    }
}

pub(crate) fn read_bpb(io: &dyn BlockIo) -> Result<Option<Bpb>, ProbeError> {
    let Some(raw) = read_opt(io, 0, 512)? else {
        return Ok(None);
    };
    Ok(parse(raw))
}

fn parse(raw: Vec<u8>) -> Option<Bpb> {
    // Like libblkid: a boot sector naming its FAT type (at 0x36 for FAT12/16, 0x52 for FAT32)
    // is a candidate as it is; any other needs the 0x55AA signature (old floppies have it).
    let named = [&b"MSWIN"[..], b"FAT32   "]
        .iter()
        .any(|m| slice(&raw, 0x52, m.len()) == *m)
        || [&b"MSDOS"[..], b"FAT16   ", b"FAT12   ", b"FAT     "]
            .iter()
            .any(|m| slice(&raw, 0x36, m.len()) == *m);
    if !named {
        if slice(&raw, 510, 2) != [0x55, 0xAA] {
            return None;
        }
        // OS/2 and DFSee put a FAT-like pseudo boot sector on JFS and HPFS volumes.
        if matches!(slice(&raw, 0x36, 8), b"JFS     " | b"HPFS    ") {
            return None;
        }
    }
    let bytes_per_sector = u64::from(le16(&raw, 11));
    let sectors_per_cluster = u64::from(u8_at(&raw, 13));
    let reserved_sectors = u64::from(le16(&raw, 14));
    let fats = u64::from(u8_at(&raw, 16));
    let root_entries = u64::from(le16(&raw, 17));
    let total16 = u64::from(le16(&raw, 19));
    let media = u8_at(&raw, 21);
    let fat16_size = u64::from(le16(&raw, 22));
    let total32 = u64::from(le32(&raw, 32));
    let fat32_size = u64::from(le32(&raw, 36));
    let total_sectors = if total16 != 0 { total16 } else { total32 };
    let fat_sectors = if fat16_size != 0 {
        fat16_size
    } else {
        fat32_size
    };
    let sane = is_pow2_in(bytes_per_sector, 512, 4096)
        && is_pow2_in(sectors_per_cluster, 1, 128)
        && sectors_per_cluster * bytes_per_sector <= 256 * 1024
        && reserved_sectors >= 1
        && (1..=4).contains(&fats)
        && (media == 0xF0 || media >= 0xF8)
        && total_sectors > 0
        && fat_sectors > 0;
    if !sane {
        return None;
    }
    let root_dir_sectors = (root_entries * 32).div_ceil(bytes_per_sector);
    let first_data_sector = reserved_sectors + fats * fat_sectors + root_dir_sectors;
    if first_data_sector >= total_sectors {
        return None;
    }
    let cluster_count = (total_sectors - first_data_sector) / sectors_per_cluster;
    // As the Linux kernel (and libblkid) decide: FAT32 when the BPB has only the 32-bit FAT
    // size, whatever the cluster count (small FAT32 volumes exist); otherwise the count picks
    // FAT12 or FAT16.
    let fat_type = if fat16_size == 0 {
        FatType::Fat32
    } else if cluster_count <= FAT12_MAX_CLUSTERS {
        FatType::Fat12
    } else {
        FatType::Fat16
    };
    let max_clusters = match fat_type {
        FatType::Fat12 | FatType::Fat16 => FAT16_MAX_CLUSTERS,
        FatType::Fat32 => FAT32_MAX_CLUSTERS,
    };
    if cluster_count > max_clusters {
        return None;
    }
    if fat_type != FatType::Fat32 && root_entries == 0 {
        return None;
    }
    // The FAT must be big enough to describe every cluster.
    let entry_bits: u64 = match fat_type {
        FatType::Fat12 => 12,
        FatType::Fat16 => 16,
        FatType::Fat32 => 32,
    };
    if fat_sectors * bytes_per_sector * 8 < (cluster_count + 2) * entry_bits {
        return None;
    }
    Some(Bpb {
        raw,
        bytes_per_sector,
        sectors_per_cluster,
        reserved_sectors,
        total_sectors,
        fat_type,
        cluster_count,
        first_data_sector,
        root_entries,
        fat_sectors,
        fats,
    })
}

/// Most clusters of a FAT12 volume (the kernel's `MAX_FAT12`).
const FAT12_MAX_CLUSTERS: u64 = 0xFF4;
/// Most clusters of a FAT16 volume (`MAX_FAT16`).
const FAT16_MAX_CLUSTERS: u64 = 0xFFF4;
/// Most clusters of a FAT32 volume (`MAX_FAT32`).
const FAT32_MAX_CLUSTERS: u64 = 0x0FFF_FFF6;
/// Root-directory clusters searched for the volume label on FAT32 (as libblkid).
const MAX_LABEL_CLUSTERS: usize = 99;

pub(crate) fn probe(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    let Some(bpb) = read_bpb(io)? else {
        return Ok(None);
    };
    if bpb.fat_type == FatType::Fat32 && !fsinfo_valid(io, &bpb)? {
        return Ok(None);
    }
    let mut info = info(&bpb);
    info.label = root_dir_label(io, &bpb)?.and_then(|raw| label_from_oem(&raw));
    Ok(Some(info))
}

/// FAT32 keeps an FSInfo sector; libblkid rejects a volume whose FSInfo signatures are neither
/// right nor zero (this tells FAT32 from other data with a plausible BPB).
fn fsinfo_valid(io: &dyn BlockIo, bpb: &Bpb) -> Result<bool, ProbeError> {
    let sector = u64::from(le16(&bpb.raw, 48));
    if sector == 0 {
        return Ok(true);
    }
    let Some(fsinfo) = read_opt(io, sector * bpb.bytes_per_sector, 512)? else {
        return Ok(false);
    };
    let lead = slice(&fsinfo, 0, 4);
    let struc = slice(&fsinfo, 484, 4);
    Ok(matches!(lead, b"RRaA" | b"RRdA" | [0, 0, 0, 0]) && matches!(struc, b"rrAa" | [0, 0, 0, 0]))
}

/// The 11 bytes of the volume-label entry in the root directory (what Windows, the kernel and
/// libblkid call the label; the boot sector's copy is often stale), or `None` when there is none.
fn root_dir_label(io: &dyn BlockIo, bpb: &Bpb) -> Result<Option<[u8; 11]>, ProbeError> {
    let bps = bpb.bytes_per_sector;
    if bpb.fat_type != FatType::Fat32 {
        let start = (bpb.reserved_sectors + bpb.fats * bpb.fat_sectors) * bps;
        let Some(dir) = read_opt(io, start, (bpb.root_entries * 32) as usize)? else {
            return Ok(None);
        };
        return Ok(label_entry(&dir).unwrap_or(None));
    }
    let fat_start = bpb.reserved_sectors * bps;
    let mut cluster = u64::from(le32(&bpb.raw, 44));
    for _ in 0..MAX_LABEL_CLUSTERS {
        if cluster < 2 || cluster >= bpb.cluster_count + 2 {
            break;
        }
        let off = (bpb.first_data_sector + (cluster - 2) * bpb.sectors_per_cluster) * bps;
        let Some(dir) = read_opt(io, off, bpb.cluster_bytes() as usize)? else {
            break;
        };
        if let Some(found) = label_entry(&dir) {
            return Ok(found);
        }
        let Some(next) = read_opt(io, fat_start + cluster * 4, 4)? else {
            break;
        };
        let next = u64::from(le32(&next, 0) & 0x0FFF_FFFF);
        if next == cluster {
            break;
        }
        cluster = next;
    }
    Ok(None)
}

/// Scans directory entries for the volume label: `Some(Some(name))` found, `Some(None)` the
/// directory ended first, `None` the entries continue past `dir`.
fn label_entry(dir: &[u8]) -> Option<Option<[u8; 11]>> {
    const ATTR_VOLUME_ID: u8 = 0x08;
    const ATTR_DIRECTORY: u8 = 0x10;
    const ATTR_LONG_NAME: u8 = 0x0F;
    for e in dir.chunks_exact(32) {
        let first = u8_at(e, 0);
        if first == 0 {
            return Some(None);
        }
        let attr = u8_at(e, 11);
        // Deleted entries, long-name pieces and anything with data clusters are not the label.
        if first == 0xE5 || le16(e, 20) != 0 || le16(e, 26) != 0 || attr & 0x3F == ATTR_LONG_NAME {
            continue;
        }
        if attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY) == ATTR_VOLUME_ID {
            let mut name = [0u8; 11];
            name.copy_from_slice(slice(e, 0, 11));
            // 0x05 stands for a leading 0xE5 (which would mark the entry deleted).
            if name[0] == 0x05 {
                name[0] = 0xE5;
            }
            return Some(Some(name));
        }
    }
    None
}

/// A short name or label in the OEM code page: ASCII as is, the upper half as code page 850
/// (what dosfstools and mtools write by default), cut at a NUL and trailing spaces trimmed.
fn label_from_oem(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let text: String = raw[..end]
        .iter()
        .map(|&c| match c {
            0..=0x7F => char::from(c),
            _ => CP850_HIGH[usize::from(c - 0x80)],
        })
        .collect();
    let text = text.trim_end();
    (!text.is_empty()).then(|| text.to_string())
}

/// Code page 850, bytes 0x80..=0xFF.
#[rustfmt::skip]
const CP850_HIGH: [char; 128] = [
    '\u{00c7}', '\u{00fc}', '\u{00e9}', '\u{00e2}', '\u{00e4}', '\u{00e0}', '\u{00e5}', '\u{00e7}', '\u{00ea}', '\u{00eb}', '\u{00e8}', '\u{00ef}', '\u{00ee}', '\u{00ec}', '\u{00c4}', '\u{00c5}',
    '\u{00c9}', '\u{00e6}', '\u{00c6}', '\u{00f4}', '\u{00f6}', '\u{00f2}', '\u{00fb}', '\u{00f9}', '\u{00ff}', '\u{00d6}', '\u{00dc}', '\u{00f8}', '\u{00a3}', '\u{00d8}', '\u{00d7}', '\u{0192}',
    '\u{00e1}', '\u{00ed}', '\u{00f3}', '\u{00fa}', '\u{00f1}', '\u{00d1}', '\u{00aa}', '\u{00ba}', '\u{00bf}', '\u{00ae}', '\u{00ac}', '\u{00bd}', '\u{00bc}', '\u{00a1}', '\u{00ab}', '\u{00bb}',
    '\u{2591}', '\u{2592}', '\u{2593}', '\u{2502}', '\u{2524}', '\u{00c1}', '\u{00c2}', '\u{00c0}', '\u{00a9}', '\u{2563}', '\u{2551}', '\u{2557}', '\u{255d}', '\u{00a2}', '\u{00a5}', '\u{2510}',
    '\u{2514}', '\u{2534}', '\u{252c}', '\u{251c}', '\u{2500}', '\u{253c}', '\u{00e3}', '\u{00c3}', '\u{255a}', '\u{2554}', '\u{2569}', '\u{2566}', '\u{2560}', '\u{2550}', '\u{256c}', '\u{00a4}',
    '\u{00f0}', '\u{00d0}', '\u{00ca}', '\u{00cb}', '\u{00c8}', '\u{0131}', '\u{00cd}', '\u{00ce}', '\u{00cf}', '\u{2518}', '\u{250c}', '\u{2588}', '\u{2584}', '\u{00a6}', '\u{00cc}', '\u{2580}',
    '\u{00d3}', '\u{00df}', '\u{00d4}', '\u{00d2}', '\u{00f5}', '\u{00d5}', '\u{00b5}', '\u{00fe}', '\u{00de}', '\u{00da}', '\u{00db}', '\u{00d9}', '\u{00fd}', '\u{00dd}', '\u{00af}', '\u{00b4}',
    '\u{00ad}', '\u{00b1}', '\u{2017}', '\u{00be}', '\u{00b6}', '\u{00a7}', '\u{00f7}', '\u{00b8}', '\u{00b0}', '\u{00a8}', '\u{00b7}', '\u{00b9}', '\u{00b3}', '\u{00b2}', '\u{25a0}', '\u{00a0}',
];

/// Type, version, serial and geometry from the boot sector (the label is the root directory's,
/// see [`probe`]).
pub(crate) fn info(bpb: &Bpb) -> FsInfo {
    let mut info = FsInfo::new(FsKind::Vfat);
    info.version = Some(
        match bpb.fat_type {
            FatType::Fat12 => "FAT12",
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        }
        .to_string(),
    );
    // The serial sits in the extended BPB after the FAT32 fields on FAT32 (always read there, as
    // libblkid does) and right after the common BPB otherwise (only with signature 0x28/0x29).
    let serial = if bpb.fat_type == FatType::Fat32 {
        Some(le32(&bpb.raw, 67))
    } else {
        matches!(u8_at(&bpb.raw, 38), 0x28 | 0x29).then(|| le32(&bpb.raw, 39))
    };
    info.uuid = serial
        .filter(|&s| s != 0)
        .map(|s| format!("{:04X}-{:04X}", s >> 16, s & 0xffff));
    info.block_size = bpb.bytes_per_sector as u32;
    info.cluster_size = bpb.cluster_bytes() as u32;
    info.size = bpb.total_sectors * bpb.bytes_per_sector;
    info
}

/// FAT bytes processed per read when streaming a large FAT32 table.
const FAT_CHUNK: u64 = 1 << 20;

/// The used-cluster map of a FAT volume: the reserved area, the FATs and the FAT12/16 root
/// directory, then every cluster whose entry in the first FAT is not zero (bad clusters are free).
pub(crate) fn used_map(io: &dyn BlockIo) -> Result<UsedMap, MapError> {
    let Some(bpb) = read_bpb(io)? else {
        return Err(MapError::NotRecognised {
            device: io.describe(),
            kind: FsKind::Vfat,
        });
    };
    let bps = bpb.bytes_per_sector;
    crate::map::check_fits(io, FsKind::Vfat, bpb.total_sectors * bps)?;
    let data_start = bpb.first_data_sector * bps;
    // The unit must tile the data region: halve the cluster size until the region start is a
    // multiple (down to the sector size).
    let mut unit = bpb.cluster_bytes();
    while unit > bps && data_start % unit != 0 {
        unit /= 2;
    }
    let cluster = bpb.cluster_bytes();
    let mut map = UsedMap::new(unit as u32, io.len())?;
    map.mark(0, data_start);
    let fat_start = bpb.reserved_sectors * bps;
    let last = bpb.cluster_count + 2;
    let max_entry = match bpb.fat_type {
        FatType::Fat12 => 0xFFF,
        FatType::Fat16 => 0xFFFF,
        FatType::Fat32 => 0x0FFF_FFFF,
    };
    let bad = max_entry - 8;
    let check = |c: u64, v: u32, map: &mut UsedMap| -> Result<(), MapError> {
        if c < 2 || c >= last || v == 0 || v == bad {
            return Ok(());
        }
        // End-of-chain markers (>= 0x?FF8) and pointers to data clusters are valid.
        if v < 2 || (u64::from(v) >= last && v < bad + 1) {
            return Err(MapError::FatEntryOutOfRange {
                device: io.describe(),
                cluster: c,
                value: v,
            });
        }
        map.mark(data_start + (c - 2) * cluster, cluster);
        Ok(())
    };
    match bpb.fat_type {
        FatType::Fat12 => {
            let bytes = read(io, fat_start, (last * 3).div_ceil(2), "FAT")?;
            for c in 2..last {
                let off = (c * 3 / 2) as usize;
                let pair = u32::from(le16(&bytes, off));
                let v = if c % 2 == 0 { pair & 0xFFF } else { pair >> 4 };
                check(c, v, &mut map)?;
            }
        }
        FatType::Fat16 | FatType::Fat32 => {
            let width: u64 = if bpb.fat_type == FatType::Fat16 { 2 } else { 4 };
            let mut c = 0u64;
            while c < last {
                let n = (FAT_CHUNK / width).min(last - c);
                let bytes = read(io, fat_start + c * width, n * width, "FAT")?;
                for (i, e) in bytes.chunks_exact(width as usize).enumerate() {
                    let v = if width == 2 {
                        u32::from(le16(e, 0))
                    } else {
                        le32(e, 0) & 0x0FFF_FFFF
                    };
                    check(c + i as u64, v, &mut map)?;
                }
                c += n;
            }
        }
    }
    Ok(map)
}
