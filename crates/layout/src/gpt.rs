//! GPT headers and entries: parsing with full checks, and serialising.

use crate::model::{GptDamage, PartitionType};
use uuid::Uuid;

pub(crate) const SIGNATURE: &[u8; 8] = b"EFI PART";
pub(crate) const REVISION_1_0: u32 = 0x0001_0000;
pub(crate) const HEADER_SIZE: u32 = 92;
/// Largest entries array accepted (count × size).
pub(crate) const MAX_ENTRIES_BYTES: u64 = 1 << 20;

/// A GPT header whose signature, checksum and fields have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: Uuid,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(off..off + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(off..off + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(off..off + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

pub(crate) fn guid_at(b: &[u8], off: usize) -> Uuid {
    let mut a = [0u8; 16];
    if let Some(s) = b.get(off..off + 16) {
        a.copy_from_slice(s);
    }
    Uuid::from_bytes_le(a)
}

/// True when `sector` starts with the GPT signature.
pub(crate) fn has_signature(sector: &[u8]) -> bool {
    sector.get(..8) == Some(SIGNATURE.as_slice())
}

/// Parses and checks the header in `sector`, read at `lba` (whether its entries lie inside the
/// disk shows when they are read).
pub(crate) fn parse_header(sector: &[u8], lba: u64, sector_size: u32) -> Result<Header, GptDamage> {
    if !has_signature(sector) {
        return Err(GptDamage::BadSignature { lba });
    }
    let bad = |reason: String| GptDamage::BadFields { lba, reason };
    let header_size = u32_at(sector, 12);
    if header_size < HEADER_SIZE || header_size > sector_size || header_size as usize > sector.len()
    {
        return Err(bad(format!(
            "header size {header_size} is not between {HEADER_SIZE} and {sector_size}"
        )));
    }
    let stored = u32_at(sector, 16);
    let mut copy = sector[..header_size as usize].to_vec();
    copy[16..20].fill(0);
    let computed = crc32fast::hash(&copy);
    // Under `cargo fuzz` the CRCs pass, so the fuzzer reaches what lies behind them.
    if stored != computed && !cfg!(fuzzing) {
        return Err(GptDamage::HeaderCrc {
            lba,
            stored,
            computed,
        });
    }
    let h = Header {
        my_lba: u64_at(sector, 24),
        alternate_lba: u64_at(sector, 32),
        first_usable: u64_at(sector, 40),
        last_usable: u64_at(sector, 48),
        disk_guid: guid_at(sector, 56),
        entries_lba: u64_at(sector, 72),
        entry_count: u32_at(sector, 80),
        entry_size: u32_at(sector, 84),
        entries_crc: u32_at(sector, 88),
    };
    if h.my_lba != lba {
        return Err(bad(format!(
            "the header says it is at LBA {} but it was read at LBA {lba}",
            h.my_lba
        )));
    }
    if h.alternate_lba == h.my_lba {
        return Err(bad(format!(
            "the alternate header LBA is its own LBA {lba}"
        )));
    }
    if h.entry_size < 128 || !h.entry_size.is_multiple_of(8) {
        return Err(bad(format!(
            "partition entry size {} is not a multiple of 8 of at least 128",
            h.entry_size
        )));
    }
    let bytes = u64::from(h.entry_count) * u64::from(h.entry_size);
    if h.entry_count == 0 || bytes > MAX_ENTRIES_BYTES {
        return Err(bad(format!(
            "{} partition entries of {} bytes: outside the accepted 1..{} bytes",
            h.entry_count, h.entry_size, MAX_ENTRIES_BYTES
        )));
    }
    if h.first_usable > h.last_usable {
        return Err(bad(format!(
            "first usable LBA {} is after last usable LBA {}",
            h.first_usable, h.last_usable
        )));
    }
    let esectors = bytes.div_ceil(u64::from(sector_size));
    let entries_end = h.entries_lba.saturating_add(esectors);
    if h.entries_lba < 1 || h.entries_lba == lba {
        return Err(bad(format!(
            "partition entries at LBA {} overlap the header",
            h.entries_lba
        )));
    }
    if h.first_usable <= lba && lba <= h.last_usable {
        return Err(bad(format!(
            "the header at LBA {lba} lies inside the usable area {}..={}",
            h.first_usable, h.last_usable
        )));
    }
    if h.entries_lba <= h.last_usable && entries_end > h.first_usable {
        return Err(bad(format!(
            "partition entries at LBA {}..{} overlap the usable area {}..={}",
            h.entries_lba, entries_end, h.first_usable, h.last_usable
        )));
    }
    Ok(h)
}

/// Checks the entries array of `h`: its checksum over `count × size` bytes.
pub(crate) fn check_entries(h: &Header, entries: &[u8]) -> Result<(), GptDamage> {
    let computed = crc32fast::hash(entries);
    if computed != h.entries_crc && !cfg!(fuzzing) {
        return Err(GptDamage::EntriesCrc {
            lba: h.entries_lba,
            stored: h.entries_crc,
            computed,
        });
    }
    Ok(())
}

/// One raw, non-empty entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub index: u32,
    pub type_guid: Uuid,
    pub guid: Uuid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

/// The non-empty entries of an array.
pub(crate) fn parse_entries(entries: &[u8], count: u32, size: u32) -> Vec<Entry> {
    let mut out = Vec::new();
    let size = size as usize;
    if size < 128 {
        return out;
    }
    for (index, e) in entries.chunks_exact(size).take(count as usize).enumerate() {
        let type_guid = guid_at(e, 0);
        if type_guid.is_nil() {
            continue;
        }
        let units: Vec<u16> = (0..36)
            .map(|i| u16_at(e, 56 + 2 * i))
            .take_while(|&u| u != 0)
            .collect();
        out.push(Entry {
            index: index as u32,
            type_guid,
            guid: guid_at(e, 16),
            first_lba: u64_at(e, 32),
            last_lba: u64_at(e, 40),
            attributes: u64_at(e, 48),
            name: String::from_utf16_lossy(&units),
        });
    }
    out
}

/// Serialises one entry into `out` (at least 128 bytes, already zeroed).
pub(crate) fn write_entry(out: &mut [u8], e: &Entry) {
    out[0..16].copy_from_slice(&e.type_guid.to_bytes_le());
    out[16..32].copy_from_slice(&e.guid.to_bytes_le());
    out[32..40].copy_from_slice(&e.first_lba.to_le_bytes());
    out[40..48].copy_from_slice(&e.last_lba.to_le_bytes());
    out[48..56].copy_from_slice(&e.attributes.to_le_bytes());
    for (i, u) in e.name.encode_utf16().take(36).enumerate() {
        out[56 + 2 * i..58 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
}

/// Serialises a header into a zeroed sector of `sector_size` bytes, with its checksum.
pub(crate) fn build_header(h: &Header, sector_size: u32) -> Vec<u8> {
    let mut s = vec![0u8; sector_size as usize];
    s[0..8].copy_from_slice(SIGNATURE);
    s[8..12].copy_from_slice(&REVISION_1_0.to_le_bytes());
    s[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
    s[24..32].copy_from_slice(&h.my_lba.to_le_bytes());
    s[32..40].copy_from_slice(&h.alternate_lba.to_le_bytes());
    s[40..48].copy_from_slice(&h.first_usable.to_le_bytes());
    s[48..56].copy_from_slice(&h.last_usable.to_le_bytes());
    s[56..72].copy_from_slice(&h.disk_guid.to_bytes_le());
    s[72..80].copy_from_slice(&h.entries_lba.to_le_bytes());
    s[80..84].copy_from_slice(&h.entry_count.to_le_bytes());
    s[84..88].copy_from_slice(&h.entry_size.to_le_bytes());
    s[88..92].copy_from_slice(&h.entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&s[..HEADER_SIZE as usize]);
    s[16..20].copy_from_slice(&crc.to_le_bytes());
    s
}

/// The GPT type GUID of a partition type, if it is one.
pub(crate) fn type_guid(kind: &PartitionType) -> Option<Uuid> {
    match kind {
        PartitionType::Gpt(g) => Some(*g),
        PartitionType::Mbr(_) => None,
    }
}
