//! Encrypted volumes, read-only: the LUKS1 and LUKS2 headers (cryptsetup) and BitLocker's
//! volume header and FVE metadata (Windows), as far as recognising, describing and keeping them
//! intact needs: scheme, cipher, UUID or volume GUID, label and subsystem (LUKS2), where the
//! ciphertext starts, the key slots or protectors, and every byte range that holds header or
//! metadata (a copy must keep those whatever else it leaves out).
//!
//! Nothing here decrypts. The facts come from the published on-disk descriptions (cryptsetup's
//! LUKS1 and LUKS2 specifications, its `bitlk` reader, libyal's BitLocker notes). The LUKS2 JSON
//! area is parsed with `serde_json` from a buffer bounded by the header size the binary header
//! states (at most 4 MiB) and its SHA-256 checksum is verified (as `cryptsetup` does): a primary
//! header whose checksum fails or whose JSON does not parse falls back to the secondary copy.

use crate::bytes::{be16, be32, be64, label_from_bytes, le16, le32, le64, slice, utf16le_units};
use crate::probe::{read_opt, ProbeError};
use disk::BlockIo;
use serde::Serialize;

/// Which kind of encrypted volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scheme {
    #[serde(rename = "LUKS1")]
    Luks1,
    #[serde(rename = "LUKS2")]
    Luks2,
    #[serde(rename = "BitLocker")]
    BitLocker,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Luks1 => "LUKS1",
            Scheme::Luks2 => "LUKS2",
            Scheme::BitLocker => "BitLocker",
        }
    }
}

/// What the header of an encrypted volume says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Encrypted {
    pub scheme: Scheme,
    /// Variant: `Windows 7 or later`, `To Go`, `Vista` for BitLocker; `None` for LUKS.
    pub variant: Option<String>,
    /// The cipher as cryptsetup names it, e.g. `aes-xts-plain64`, `aes-cbc-elephant`.
    pub cipher: Option<String>,
    /// The volume key size in bits.
    pub key_bits: Option<u32>,
    /// LUKS UUID, or BitLocker volume GUID.
    pub uuid: Option<String>,
    /// LUKS2 label.
    pub label: Option<String>,
    /// LUKS2 subsystem.
    pub subsystem: Option<String>,
    /// BitLocker volume description (e.g. the computer name and date).
    pub description: Option<String>,
    /// Byte offset of the encrypted data (LUKS: the data segment; BitLocker: 0, the metadata
    /// areas lie inside the volume).
    pub data_offset: u64,
    /// The encrypted data's size in bytes, when the header states it (`None`: to the end).
    pub data_size: Option<u64>,
    /// The encryption sector size in bytes.
    pub sector_size: u32,
    /// Key slots in use (LUKS) or volume master key protectors (BitLocker).
    pub keyslots: u32,
    /// BitLocker: the protector types (`password`, `recovery password`, `TPM`, ...); LUKS2: each
    /// key slot's type and KDF (`luks2 argon2id`).
    pub protectors: Vec<String>,
    /// Every byte range `(offset, length)` that holds header, key slots or metadata, sorted:
    /// what must be kept whatever else a copy leaves out.
    pub metadata: Vec<(u64, u64)>,
    /// Inconsistencies that did not prevent recognition.
    pub warnings: Vec<String>,
}

impl Encrypted {
    fn new(scheme: Scheme) -> Self {
        Encrypted {
            scheme,
            variant: None,
            cipher: None,
            key_bits: None,
            uuid: None,
            label: None,
            subsystem: None,
            description: None,
            data_offset: 0,
            data_size: None,
            sector_size: 512,
            keyslots: 0,
            protectors: Vec::new(),
            metadata: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// One line for lists and plans: `aes-xts-plain64 512-bit, 2 key slots, data at 16 MiB`,
    /// `aes-xts-plain64 128-bit, protectors: TPM, recovery password`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.variant {
            parts.push(v.clone());
        }
        match (&self.cipher, self.key_bits) {
            (Some(c), Some(b)) => parts.push(format!("{c} {b}-bit")),
            (Some(c), None) => parts.push(c.clone()),
            _ => {}
        }
        if let Some(s) = &self.subsystem {
            parts.push(format!("subsystem \"{s}\""));
        }
        match self.scheme {
            Scheme::Luks1 | Scheme::Luks2 => {
                parts.push(format!(
                    "{} key slot{}",
                    self.keyslots,
                    if self.keyslots == 1 { "" } else { "s" }
                ));
                parts.push(format!("data at {}", bytes_text(self.data_offset)));
            }
            Scheme::BitLocker => {
                if self.protectors.is_empty() {
                    parts.push("no protectors".to_string());
                } else {
                    parts.push(format!("protectors: {}", self.protectors.join(", ")));
                }
                if let Some(d) = &self.description {
                    parts.push(format!("\"{d}\""));
                }
            }
        }
        parts.join(", ")
    }
}

/// `16 MiB`, `2 KiB`, `512 bytes`: exact binary units for offsets.
fn bytes_text(v: u64) -> String {
    if v >= 1 << 20 && v.is_multiple_of(1 << 20) {
        format!("{} MiB", v >> 20)
    } else if v >= 1 << 10 && v.is_multiple_of(1 << 10) {
        format!("{} KiB", v >> 10)
    } else {
        format!("{v} bytes")
    }
}

/// Reads the LUKS or BitLocker header of `io` (a partition); `Ok(None)` when there is none or
/// its fields do not add up.
pub fn read(io: &dyn BlockIo) -> Result<Option<Encrypted>, ProbeError> {
    if let Some(e) = read_luks(io)? {
        return Ok(Some(e));
    }
    read_bitlocker(io)
}

const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";
const LUKS2_SECONDARY_MAGIC: &[u8] = b"SKUL\xba\xbe";
/// Where a LUKS2 secondary header may start (its offset equals the primary's size).
const LUKS2_OFFSETS: [u64; 9] = [
    16 << 10,
    32 << 10,
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
];
/// LUKS1 key slot states.
const LUKS1_KEY_ENABLED: u32 = 0x00AC_71F3;
const LUKS1_KEY_DISABLED: u32 = 0x0000_DEAD;

/// A NUL-terminated ASCII field with printable characters only; `None` otherwise.
fn ascii_field(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&c| c == 0)?;
    let s = slice(raw, 0, end);
    if s.is_empty() || !s.iter().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    std::str::from_utf8(s).ok().map(str::to_string)
}

fn read_luks(io: &dyn BlockIo) -> Result<Option<Encrypted>, ProbeError> {
    let Some(h) = read_opt(io, 0, 4096)? else {
        return Ok(None);
    };
    if slice(&h, 0, 6) != LUKS_MAGIC {
        return Ok(None);
    }
    match be16(&h, 6) {
        1 => Ok(luks1(&h, io.len())),
        2 => luks2(io, &h),
        _ => Ok(None),
    }
}

/// LUKS1: the fixed 592-byte header (big-endian) and its eight key slots.
fn luks1(h: &[u8], len: u64) -> Option<Encrypted> {
    let cipher = ascii_field(slice(h, 8, 32))?;
    let mode = ascii_field(slice(h, 40, 32))?;
    ascii_field(slice(h, 72, 32))?; // hash spec
    let payload = u64::from(be32(h, 104)).checked_mul(512)?;
    let key_bytes = be32(h, 108);
    if !(1..=512).contains(&key_bytes) {
        return None;
    }
    let mut e = Encrypted::new(Scheme::Luks1);
    e.cipher = Some(format!("{cipher}-{mode}"));
    e.key_bits = Some(key_bytes * 8);
    e.uuid = ascii_field(slice(h, 168, 40));
    e.data_offset = payload;
    e.metadata.push((0, 592));
    for slot in 0..8usize {
        let s = slice(h, 208 + slot * 48, 48);
        let active = be32(s, 0);
        let material = u64::from(be32(s, 40)).checked_mul(512)?;
        let stripes = u64::from(be32(s, 44));
        match active {
            LUKS1_KEY_ENABLED => e.keyslots += 1,
            LUKS1_KEY_DISABLED => {}
            _ => return None,
        }
        // Every slot's area is kept, used or not: it is part of the header's layout.
        let area = u64::from(key_bytes).checked_mul(stripes)?.div_ceil(512) * 512;
        if area > 0 && material.checked_add(area)? <= len {
            e.metadata.push((material, area));
        }
    }
    if payload == 0 {
        e.warnings
            .push("payload offset 0: a detached header, the data lies elsewhere".into());
    } else if payload > len {
        e.warnings.push(format!(
            "the data starts at byte {payload}, past the end of the partition ({len} bytes)"
        ));
    } else {
        // Everything before the data belongs to the header and key material.
        e.metadata.push((0, payload));
    }
    e.metadata = merged(e.metadata);
    Some(e)
}

/// LUKS2: the 4 KiB binary header (big-endian) and the JSON area behind it, primary or secondary.
/// A copy whose SHA-256 checksum does not match is passed over for the other one; when neither
/// matches, the primary is read anyway and a warning says so (`cryptsetup open` will refuse it).
fn luks2(io: &dyn BlockIo, primary: &[u8]) -> Result<Option<Encrypted>, ProbeError> {
    let hdr_size = be64(primary, 8);
    let primary_fits = LUKS2_OFFSETS.contains(&hdr_size) && be64(primary, 256) == 0;
    for verify in [true, false] {
        let unverified = |e: &mut Encrypted| {
            if !verify {
                e.warnings.push(
                    "no LUKS2 header copy matches its SHA-256 checksum: cryptsetup will refuse \
                     the volume"
                        .into(),
                );
            }
        };
        if primary_fits {
            if let Some(mut e) = luks2_from(io, primary, hdr_size, verify)? {
                unverified(&mut e);
                return Ok(Some(e));
            }
        }
        // The primary is damaged (JSON, checksum or size field): look for the secondary copy,
        // which starts right after the primary (its offset is the header size).
        for off in LUKS2_OFFSETS {
            let Some(h) = read_opt(io, off, 4096)? else {
                break;
            };
            if slice(&h, 0, 6) == LUKS2_SECONDARY_MAGIC
                && be16(&h, 6) == 2
                && be64(&h, 8) == off
                && be64(&h, 256) == off
            {
                if let Some(mut e) = luks2_from(io, &h, off, verify)? {
                    e.warnings.push(
                        "the primary LUKS2 header is damaged: read the secondary copy".into(),
                    );
                    unverified(&mut e);
                    return Ok(Some(e));
                }
            }
        }
    }
    Ok(None)
}

/// Whether the header copy `h` (its 4 KiB binary part) with its JSON area `json` matches the
/// checksum it stores: SHA-256 over both, the checksum field (bytes 448..512) counted as zeros.
/// Another checksum algorithm cannot be checked here and passes.
fn luks2_checksum_matches(h: &[u8], json: &[u8]) -> bool {
    if ascii_field(slice(h, 72, 32)).as_deref() != Some("sha256") {
        return true;
    }
    let mut sha = crate::sha256::Sha256::new();
    sha.update(slice(h, 0, 448));
    sha.update(&[0u8; 64]);
    sha.update(slice(h, 512, 4096 - 512));
    sha.update(json);
    sha.finish()[..] == *slice(h, 448, 32)
}

/// Parses the binary header `h` found at its own `hdr_offset` (stored at byte 256) with the
/// JSON area behind it; `hdr_size` is one header copy's size (binary + JSON).
fn luks2_from(
    io: &dyn BlockIo,
    h: &[u8],
    hdr_size: u64,
    verify: bool,
) -> Result<Option<Encrypted>, ProbeError> {
    let hdr_offset = be64(h, 256);
    let json_len = usize::try_from(hdr_size - 4096).unwrap_or(0);
    let Some(json_at) = hdr_offset.checked_add(4096) else {
        return Ok(None);
    };
    let Some(raw) = read_opt(io, json_at, json_len)? else {
        return Ok(None);
    };
    if verify && !luks2_checksum_matches(h, &raw) {
        return Ok(None);
    }
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(slice(&raw, 0, end)) else {
        return Ok(None);
    };
    let mut e = Encrypted::new(Scheme::Luks2);
    e.uuid = ascii_field(slice(h, 168, 40));
    e.label = label_from_bytes(slice(h, 24, 48));
    e.subsystem = label_from_bytes(slice(h, 208, 48));
    let len = io.len();
    // Both header copies.
    e.metadata.push((0, hdr_size.saturating_mul(2).min(len)));
    let num = |v: &serde_json::Value| -> Option<u64> {
        match v {
            serde_json::Value::String(s) => s.parse().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
    };
    // The data segment: the first (lowest-numbered) crypt segment.
    let Some(segments) = json.get("segments").and_then(|s| s.as_object()) else {
        return Ok(None);
    };
    let mut segs: Vec<(u64, &serde_json::Value)> = segments
        .iter()
        .filter_map(|(k, v)| k.parse().ok().map(|n| (n, v)))
        .collect();
    segs.sort_by_key(|(n, _)| *n);
    let Some((_, seg)) = segs.first() else {
        return Ok(None);
    };
    let Some(offset) = seg.get("offset").and_then(num) else {
        return Ok(None);
    };
    e.data_offset = offset;
    e.data_size = seg.get("size").and_then(num);
    e.cipher = seg
        .get("encryption")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    e.sector_size = seg
        .get("sector_size")
        .and_then(num)
        .and_then(|s| u32::try_from(s).ok())
        .filter(|s| s.is_power_of_two() && (512..=4096).contains(s))
        .unwrap_or(512);
    if segs.len() > 1 || seg.get("type").and_then(|t| t.as_str()) != Some("crypt") {
        e.warnings.push(format!(
            "{} data segment(s), the first of type {}: a re-encryption may be under way",
            segs.len(),
            seg.get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("unknown")
        ));
    }
    if let Some(slots) = json.get("keyslots").and_then(|s| s.as_object()) {
        e.keyslots = u32::try_from(slots.len()).unwrap_or(u32::MAX);
        for slot in slots.values() {
            let kind = slot.get("type").and_then(|t| t.as_str()).unwrap_or("?");
            let kdf = slot
                .get("kdf")
                .and_then(|k| k.get("type"))
                .and_then(|t| t.as_str())
                .unwrap_or("?");
            e.protectors.push(format!("{kind} {kdf}"));
            if e.key_bits.is_none() {
                e.key_bits = slot
                    .get("key_size")
                    .and_then(num)
                    .and_then(|b| u32::try_from(b.checked_mul(8)?).ok());
            }
            let area = slot.get("area");
            let at = area.and_then(|a| a.get("offset")).and_then(num);
            let size = area.and_then(|a| a.get("size")).and_then(num);
            if let (Some(at), Some(size)) = (at, size) {
                match at.checked_add(size) {
                    Some(end) if end <= len => e.metadata.push((at, size)),
                    _ => e.warnings.push(format!(
                        "a key slot area ({size} bytes at {at}) lies past the partition's end"
                    )),
                }
            }
        }
    }
    if let Some(ks) = json
        .get("config")
        .and_then(|c| c.get("keyslots_size"))
        .and_then(num)
    {
        let start = hdr_size.saturating_mul(2);
        if start.saturating_add(ks) <= len {
            e.metadata.push((start, ks));
        }
    }
    if offset > len {
        e.warnings.push(format!(
            "the data starts at byte {offset}, past the end of the partition ({len} bytes)"
        ));
    } else if offset > 0 {
        // Everything before the data segment belongs to the headers and key slots.
        e.metadata.push((0, offset));
    }
    e.metadata = merged(e.metadata);
    Ok(Some(e))
}

/// Sorted, with overlapping and touching ranges merged.
fn merged(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|r| r.1 > 0);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (at, len) in ranges {
        let end = at.saturating_add(len);
        match out.last_mut() {
            Some(last) if at <= last.0.saturating_add(last.1) => {
                let last_end = last.0.saturating_add(last.1).max(end);
                last.1 = last_end - last.0;
            }
            _ => out.push((at, len)),
        }
    }
    out
}

/// The size of each FVE metadata area.
const FVE_AREA: u64 = 64 << 10;
/// The FVE metadata block header (64 bytes) and metadata header (48 bytes) before the entries.
const FVE_HEADERS: usize = 112;

/// A Microsoft GUID (first three fields little-endian) as text.
fn ms_guid(raw: &[u8]) -> Option<String> {
    if raw.len() != 16 || raw.iter().all(|&b| b == 0) {
        return None;
    }
    let mut b = [0u8; 16];
    b.copy_from_slice(raw);
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    crate::bytes::uuid_string(&b)
}

/// What protects a volume master key (the VMK entry's protection type).
fn protector_name(kind: u16) -> String {
    match kind {
        0x0000 => "clear key (protection suspended)".into(),
        0x0100 => "TPM".into(),
        0x0200 => "startup key".into(),
        0x0500 => "TPM and PIN".into(),
        0x0800 => "recovery password".into(),
        0x1000 => "smart card".into(),
        0x2000 => "password".into(),
        other => format!("unknown protector 0x{other:04x}"),
    }
}

/// The encryption method of the FVE metadata header: cipher and key bits (as cryptsetup counts
/// them: XTS uses two keys, so Windows' "XTS-AES 128" is 256 bits).
fn bitlocker_cipher(method: u16) -> Option<(&'static str, u32)> {
    Some(match method {
        0x8000 => ("aes-cbc-elephant", 128),
        0x8001 => ("aes-cbc-elephant", 256),
        0x8002 => ("aes-cbc-eboiv", 128),
        0x8003 => ("aes-cbc-eboiv", 256),
        0x8004 => ("aes-xts-plain64", 256),
        0x8005 => ("aes-xts-plain64", 512),
        _ => return None,
    })
}

/// BitLocker: the volume header (boot sector) names three FVE metadata areas; the first one that
/// carries the `-FVE-FS-` block is read (header, then the entries: VMKs with their protectors,
/// the description, and where the original volume header was moved to).
fn read_bitlocker(io: &dyn BlockIo) -> Result<Option<Encrypted>, ProbeError> {
    let Some(vh) = read_opt(io, 0, 512)? else {
        return Ok(None);
    };
    let boot = slice(&vh, 0, 3);
    let sig = slice(&vh, 3, 8);
    let (variant, offsets): (&str, [u64; 3]) = match (boot, sig) {
        (b"\xeb\x58\x90", b"-FVE-FS-") => (
            "Windows 7 or later",
            [le64(&vh, 176), le64(&vh, 184), le64(&vh, 192)],
        ),
        // To Go: a FAT boot sector whose reserved bytes name the metadata areas (checked below:
        // a plain FAT volume has no FVE block there).
        (b"\xeb\x58\x90", b"MSWIN4.1") => {
            ("To Go", [le64(&vh, 440), le64(&vh, 448), le64(&vh, 456)])
        }
        (b"\xeb\x52\x90", b"-FVE-FS-") => ("Vista", [le64(&vh, 56), 0, 0]),
        _ => return Ok(None),
    };
    let len = io.len();
    let mut block = None;
    for (i, &off) in offsets.iter().enumerate() {
        if off == 0 || !off.is_multiple_of(512) || off.checked_add(FVE_AREA).is_none_or(|e| e > len)
        {
            continue;
        }
        let Some(b) = read_opt(io, off, FVE_AREA as usize)? else {
            continue;
        };
        if slice(&b, 0, 8) == b"-FVE-FS-" && matches!(le16(&b, 10), 1 | 2) {
            block = Some((i, b));
            break;
        }
    }
    let Some((first_good, b)) = block else {
        return Ok(None);
    };
    let mut e = Encrypted::new(Scheme::BitLocker);
    e.variant = Some(variant.to_string());
    if first_good > 0 {
        e.warnings.push(format!(
            "FVE metadata area {} is damaged: read copy {}",
            first_good + 1,
            first_good + 1
        ));
    }
    // The metadata block names the three areas itself (Vista's volume header names only one).
    let block_offsets = [le64(&b, 32), le64(&b, 40), le64(&b, 48)];
    let areas: Vec<u64> = if variant == "Vista" {
        block_offsets.to_vec()
    } else {
        offsets.to_vec()
    };
    e.metadata.push((0, 512));
    for off in areas {
        if off > 0 && off.checked_add(FVE_AREA).is_some_and(|end| end <= len) {
            e.metadata.push((off, FVE_AREA));
        }
    }
    let volume_size = le64(&b, 16);
    if le16(&b, 10) == 2 && volume_size > 0 {
        e.data_size = Some(volume_size);
    }
    let meta_size = le32(&b, 64) as usize;
    let header_size = le32(&b, 72) as usize;
    e.uuid = ms_guid(slice(&b, 80, 16));
    if let Some((c, bits)) = bitlocker_cipher(le16(&b, 100)) {
        e.cipher = Some(c.to_string());
        e.key_bits = Some(bits);
    } else {
        e.warnings
            .push(format!("unknown encryption method 0x{:04x}", le16(&b, 100)));
    }
    // The entries follow the two headers; their total is the metadata size less its header.
    let entries_len = meta_size.saturating_sub(header_size.max(48));
    let entries = slice(&b, FVE_HEADERS, entries_len.min(b.len() - FVE_HEADERS));
    let mut at = 0usize;
    while at + 8 <= entries.len() {
        let size = usize::from(le16(entries, at));
        if size < 8 || at + size > entries.len() {
            break;
        }
        let entry = slice(entries, at, size);
        let data = slice(entry, 8, size - 8);
        match le16(entry, 2) {
            // A volume master key: GUID, time, then its protection type.
            0x0002 => {
                e.keyslots += 1;
                e.protectors.push(protector_name(le16(data, 26)));
            }
            // The description (UTF-16LE).
            0x0007 if le16(entry, 4) == 0x0002 => {
                let units = utf16le_units(data);
                e.description = crate::bytes::label_from_utf16(&units);
            }
            // Where the original boot sectors were moved to (offset, size).
            0x000f => {
                let (off, size) = (le64(data, 0), le64(data, 8));
                if off.checked_add(size).is_some_and(|end| end <= len) && size > 0 {
                    e.metadata.push((off, size));
                    // The sectors at the start that the moved header stands for.
                    e.metadata.push((0, size));
                }
            }
            _ => {}
        }
        at += size;
    }
    e.metadata = merged(e.metadata);
    Ok(Some(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_touching_ranges_merge() {
        assert_eq!(
            merged(vec![(10, 5), (0, 4), (4, 2), (12, 10), (40, 0), (30, 1)]),
            vec![(0, 6), (10, 12), (30, 1)]
        );
    }

    #[test]
    fn microsoft_guids_swap_their_first_three_fields() {
        let raw = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(
            ms_guid(&raw).as_deref(),
            Some("00112233-4455-6677-8899-aabbccddeeff")
        );
        assert_eq!(ms_guid(&[0; 16]), None);
    }

    #[test]
    fn offsets_print_in_exact_binary_units() {
        assert_eq!(bytes_text(16 << 20), "16 MiB");
        assert_eq!(bytes_text(4096), "4 KiB");
        assert_eq!(bytes_text(1000), "1000 bytes");
    }
}
