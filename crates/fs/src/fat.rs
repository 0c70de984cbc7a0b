//! FAT12/FAT16/FAT32: boot-sector parsing (probe) and the used-cluster map from the FAT.

use crate::bytes::{is_pow2_in, label_from_bytes, le16, le32, slice, u8_at};
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
    // Jump instruction: EB xx 90 or E9 xx xx (some old formatters wrote EB xx with another NOP).
    let jump = u8_at(&raw, 0);
    if jump != 0xEB && jump != 0xE9 {
        return None;
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
    let fat_type = if cluster_count < 4085 {
        FatType::Fat12
    } else if cluster_count < 65525 {
        FatType::Fat16
    } else {
        FatType::Fat32
    };
    if fat_type == FatType::Fat32 && (fat16_size != 0 || root_entries != 0) {
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
    })
}

pub(crate) fn probe(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    let Some(bpb) = read_bpb(io)? else {
        return Ok(None);
    };
    Ok(Some(info(&bpb)))
}

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
    // The extended BPB (signature 0x29, or 0x28 without label) sits after the FAT32 fields on
    // FAT32 and right after the common BPB otherwise.
    let ext = if bpb.fat_type == FatType::Fat32 {
        64
    } else {
        36
    };
    let sig = u8_at(&bpb.raw, ext + 2);
    if sig == 0x29 || sig == 0x28 {
        let serial = le32(&bpb.raw, ext + 3);
        info.uuid = Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff));
    }
    if sig == 0x29 {
        info.label = label_from_bytes(slice(&bpb.raw, ext + 7, 11)).filter(|l| l != "NO NAME");
    }
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
