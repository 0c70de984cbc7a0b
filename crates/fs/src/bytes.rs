//! Bounds-checked little- and big-endian field readers for on-disk structures.
//!
//! A field that lies outside the buffer reads as zero: callers size their buffers from the
//! structure layout, and every value is range-checked before it is trusted anyway.

pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    arr::<2>(b, off).map_or(0, u16::from_le_bytes)
}

pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    arr::<4>(b, off).map_or(0, u32::from_le_bytes)
}

pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    arr::<8>(b, off).map_or(0, u64::from_le_bytes)
}

pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    arr::<2>(b, off).map_or(0, u16::from_be_bytes)
}

pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    arr::<4>(b, off).map_or(0, u32::from_be_bytes)
}

pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
    arr::<8>(b, off).map_or(0, u64::from_be_bytes)
}

pub(crate) fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// `len` bytes at `off`, or an empty slice when they are not all inside `b`.
pub(crate) fn slice(b: &[u8], off: usize, len: usize) -> &[u8] {
    off.checked_add(len)
        .and_then(|end| b.get(off..end))
        .unwrap_or(&[])
}

fn arr<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    let s = b.get(off..off.checked_add(N)?)?;
    s.try_into().ok()
}

/// A label from a fixed-size byte field: up to the first NUL, UTF-8 (else Latin-1) decoded,
/// trailing white space trimmed as libblkid does (leading spaces are part of the label). `None`
/// when nothing is left.
pub(crate) fn label_from_bytes(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let text: String = match std::str::from_utf8(slice(raw, 0, end)) {
        Ok(s) => s.to_string(),
        Err(_) => raw.iter().take(end).map(|&c| char::from(c)).collect(),
    };
    non_empty(text.trim_end())
}

/// A label from UTF-16 code units (NUL-terminated or not), trailing white space trimmed.
pub(crate) fn label_from_utf16(units: &[u16]) -> Option<String> {
    let end = units.iter().position(|&c| c == 0).unwrap_or(units.len());
    let text = String::from_utf16_lossy(units.get(..end).unwrap_or(&[]));
    non_empty(text.trim_end())
}

pub(crate) fn utf16le_units(raw: &[u8]) -> Vec<u16> {
    raw.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

pub(crate) fn utf16be_units(raw: &[u8]) -> Vec<u16> {
    raw.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// 16 bytes as the standard `8-4-4-4-12` lower-case UUID text; `None` for the all-zero UUID.
pub(crate) fn uuid_string(raw: &[u8]) -> Option<String> {
    if raw.len() != 16 || raw.iter().all(|&b| b == 0) {
        return None;
    }
    let h: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

pub(crate) fn is_pow2_in(v: u64, lo: u64, hi: u64) -> bool {
    v.is_power_of_two() && v >= lo && v <= hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_return_zero_outside_the_buffer() {
        let b = [1u8, 2, 3];
        assert_eq!(le16(&b, 1), 0x0302);
        assert_eq!(le16(&b, 2), 0);
        assert_eq!(le64(&b, usize::MAX), 0);
        assert_eq!(slice(&b, 2, 5), &[] as &[u8]);
    }

    #[test]
    fn uuid_text_matches_blkid_layout() {
        let raw: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            uuid_string(&raw).as_deref(),
            Some("00010203-0405-0607-0809-0a0b0c0d0e0f")
        );
        assert_eq!(uuid_string(&[0; 16]), None);
    }

    #[test]
    fn labels_stop_at_nul_and_trim_trailing_space_only() {
        assert_eq!(label_from_bytes(b"DATA       ").as_deref(), Some("DATA"));
        assert_eq!(label_from_bytes(b"  lead  ").as_deref(), Some("  lead"));
        assert_eq!(label_from_bytes(b"ab\0cd"), Some("ab".into()));
        assert_eq!(label_from_bytes(b"   \0"), None);
    }
}
