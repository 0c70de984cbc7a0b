//! MBR and EBR sectors: parsing and serialising.

use crate::gpt::{u16_at, u32_at};
use crate::model::MbrEntry;

/// Offset of the first partition entry in an MBR/EBR.
pub(crate) const TABLE_OFFSET: usize = 446;
/// Length of the boot code area of an MBR (the disk signature follows).
pub(crate) const BOOT_CODE_LEN: usize = 440;

/// True when the sector ends its first 512 bytes with 0x55AA.
pub(crate) fn has_boot_signature(sector: &[u8]) -> bool {
    sector.get(510..512) == Some([0x55u8, 0xAA].as_slice())
}

/// The four entries of an MBR or EBR sector.
pub(crate) fn parse_entries(sector: &[u8]) -> [MbrEntry; 4] {
    let mut out = [MbrEntry::default(); 4];
    for (i, e) in out.iter_mut().enumerate() {
        let off = TABLE_OFFSET + 16 * i;
        let b = |o: usize| sector.get(off + o).copied().unwrap_or(0);
        *e = MbrEntry {
            boot_indicator: b(0),
            kind: b(4),
            start_lba: u32_at(sector, off + 8),
            sectors: u32_at(sector, off + 12),
        };
    }
    out
}

/// True when LBA 0 looks like the boot sector of a bare file system (FAT, NTFS, exFAT) rather
/// than a partition table: such sectors also end with 0x55AA.
pub(crate) fn looks_like_fs_boot_sector(sector: &[u8]) -> bool {
    let oem = sector.get(3..11).unwrap_or(&[]);
    if oem == b"NTFS    " || oem == b"EXFAT   " {
        return true;
    }
    let jump = sector.first().copied().unwrap_or(0);
    let jump_ok = jump == 0xEB && sector.get(2) == Some(&0x90) || jump == 0xE9;
    if !jump_ok {
        return false;
    }
    // A FAT BIOS parameter block.
    let bytes_per_sector = u16_at(sector, 11);
    let sectors_per_cluster = sector.get(13).copied().unwrap_or(0);
    let reserved = u16_at(sector, 14);
    let fats = sector.get(16).copied().unwrap_or(0);
    let media = sector.get(21).copied().unwrap_or(0);
    bytes_per_sector.is_power_of_two()
        && (512..=4096).contains(&bytes_per_sector)
        && sectors_per_cluster.is_power_of_two()
        && reserved > 0
        && (1..=4).contains(&fats)
        && (media == 0xF0 || media >= 0xF8)
}

/// A sensible reason why a sector with 0x55AA is not an MBR, or None when it can be one.
pub(crate) fn not_an_mbr(sector: &[u8]) -> Option<&'static str> {
    if !has_boot_signature(sector) {
        return Some("no 0x55AA signature");
    }
    let entries = parse_entries(sector);
    if entries
        .iter()
        .any(|e| e.boot_indicator != 0 && e.boot_indicator != 0x80)
    {
        return Some("invalid boot indicator in a partition entry");
    }
    let all_empty = entries.iter().all(|e| e.is_empty());
    if looks_like_fs_boot_sector(sector) && !entries.iter().any(|e| e.kind == 0xEE) {
        // A FAT/NTFS boot sector: only treat it as an MBR when its entries look like one
        // (some USB sticks carry both).
        let plausible = !all_empty && entries.iter().all(|e| e.is_empty() || e.start_lba > 0);
        if !plausible {
            return Some("a file-system boot sector");
        }
    }
    None
}

/// CHS bytes for an LBA with the usual 255 heads / 63 sectors geometry, capped at 1023/254/63.
pub(crate) fn chs(lba: u64) -> [u8; 3] {
    if lba >= 1024 * 255 * 63 {
        return [0xFE, 0xFF, 0xFF];
    }
    let c = lba / (255 * 63);
    let h = (lba / 63) % 255;
    let s = lba % 63 + 1;
    [h as u8, (s as u8) | (((c >> 8) as u8 & 3) << 6), c as u8]
}

/// Writes entry `i` (0..4) of an MBR/EBR sector; `base` is what `e.start_lba` is relative to
/// (for CHS values, which are absolute).
pub(crate) fn write_entry(sector: &mut [u8], i: usize, e: &MbrEntry, base: u64) {
    let off = TABLE_OFFSET + 16 * i;
    let out = &mut sector[off..off + 16];
    out.fill(0);
    if e.kind == 0 && e.sectors == 0 && e.start_lba == 0 {
        return;
    }
    let first = base + u64::from(e.start_lba);
    let last = (first + u64::from(e.sectors)).saturating_sub(1);
    out[0] = e.boot_indicator;
    out[1..4].copy_from_slice(&chs(first));
    out[4] = e.kind;
    out[5..8].copy_from_slice(&chs(last));
    out[8..12].copy_from_slice(&e.start_lba.to_le_bytes());
    out[12..16].copy_from_slice(&e.sectors.to_le_bytes());
}

/// A sector of `sector_size` bytes holding `boot_code` (at most 446 bytes, for EBRs; at most
/// 440 for MBRs, followed by the disk signature), the four entries and 0x55AA.
pub(crate) fn build_sector(
    sector_size: u32,
    boot_code: &[u8],
    disk_signature: Option<u32>,
    entries: &[MbrEntry; 4],
    base: u64,
) -> Vec<u8> {
    let mut s = vec![0u8; sector_size.max(512) as usize];
    let code_len = if disk_signature.is_some() {
        BOOT_CODE_LEN
    } else {
        TABLE_OFFSET
    };
    let n = boot_code.len().min(code_len);
    s[..n].copy_from_slice(&boot_code[..n]);
    if let Some(sig) = disk_signature {
        s[440..444].copy_from_slice(&sig.to_le_bytes());
        s[444..446].fill(0);
    }
    for (i, e) in entries.iter().enumerate() {
        write_entry(&mut s, i, e, base);
    }
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}
