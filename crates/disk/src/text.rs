//! Text that came from disks and images, made safe and readable for a terminal.
//!
//! Model strings, serials, labels, partition names and file names are written by whoever made the
//! disk or the image. Printed raw, an escape sequence in a label could repaint the confirmation
//! prompt, and a right-to-left override could make one name look like another. [`printable`]
//! escapes what a terminal would interpret; [`identity`] is the one way a disk is named to a person
//! (CLI, TUI, plans and reports alike), whatever of model, vendor and serial is known.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters a terminal interprets instead of showing: C0 and C1 controls, DEL, and the
/// Unicode formatting characters that reorder or hide text (bidi overrides, isolates and marks
/// including the Arabic letter mark, zero-width joiners and marks, the BOM, line and paragraph
/// separators).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}')
}

/// `text` with every control or formatting character escaped as `\xNN` or `\u{NNNN}` (and `\` as
/// `\\` when anything was escaped, so the escaped form is unambiguous). Borrowed when nothing needs
/// escaping, which is the common case.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if is_unsafe(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Like [`printable`] for raw bytes that should be text (a label read from a superblock): invalid
/// UTF-8 is shown as `\xNN` per byte.
pub fn printable_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&printable(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// How a disk is named to a person, from whatever is known:
/// `Samsung SSD 870 EVO 1TB, serial S6PU123, 1.0 TB`, `disk with serial PC-DISK-1, 8.6 GB`,
/// `Samsung SSD 870 EVO 1TB (no serial), 1.0 TB`, `disk of unknown model and serial, 8.6 GB`.
/// Empty strings count as unknown; a vendor that the model already starts with, or the
/// meaningless `ATA`, is not repeated. Every part is passed through [`printable`]. `size` is in
/// bytes, shown in decimal units as on drive labels; `None` leaves it out.
pub fn identity(
    vendor: Option<&str>,
    model: Option<&str>,
    serial: Option<&str>,
    size: Option<u64>,
) -> String {
    fn known(s: Option<&str>) -> Option<&str> {
        s.map(str::trim).filter(|s| !s.is_empty())
    }
    let model = known(model).map(|m| match known(vendor) {
        Some(v)
            if !v.eq_ignore_ascii_case("ATA")
                && !m.to_ascii_lowercase().starts_with(&v.to_ascii_lowercase()) =>
        {
            format!("{v} {m}")
        }
        _ => m.to_string(),
    });
    let serial = known(serial);
    let mut out = match (model, serial) {
        (Some(m), Some(s)) => format!("{}, serial {}", printable(&m), printable(s)),
        (Some(m), None) => format!("{} (no serial)", printable(&m)),
        (None, Some(s)) => format!("disk with serial {}", printable(s)),
        (None, None) => "disk of unknown model and serial".to_string(),
    };
    if let Some(size) = size {
        out.push_str(", ");
        out.push_str(&decimal_size(size));
    }
    out
}

/// Decimal size as printed on drive labels: `500.1 GB`.
pub fn decimal_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(
            printable("Samsung SSD 870"),
            Cow::Borrowed("Samsung SSD 870")
        ));
        assert_eq!(printable("Données été"), "Données été");
    }

    #[test]
    fn escape_sequences_and_bidi_overrides_are_escaped() {
        assert_eq!(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(printable("x\r\ny"), "x\\x0d\\x0ay");
        assert_eq!(printable("\u{9b}31m"), "\\x9b31m");
        assert_eq!(printable("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(printable("a\\b\x07"), "a\\\\b\\x07");
        assert_eq!(printable("\u{7f}"), "\\x7f");
        assert_eq!(printable("a\u{61c}b\u{2067}c"), "a\\u{061c}b\\u{2067}c");
    }

    #[test]
    fn invalid_utf8_is_shown_byte_by_byte() {
        assert_eq!(printable_bytes(b"LAB\xffEL\x1b"), "LAB\\xffEL\\x1b");
    }

    #[test]
    fn sizes_use_decimal_units() {
        assert_eq!(decimal_size(0), "0 B");
        assert_eq!(decimal_size(500_107_862_016), "500.1 GB");
        assert_eq!(decimal_size(1_000_204_886_016), "1.0 TB");
    }

    #[test]
    fn identity_reads_naturally_with_what_is_known() {
        let tb = Some(1_000_204_886_016);
        assert_eq!(
            identity(Some("ATA"), Some("Samsung SSD 870"), Some("S6PU"), tb),
            "Samsung SSD 870, serial S6PU, 1.0 TB"
        );
        assert_eq!(
            identity(Some("WD"), Some("Blue"), None, tb),
            "WD Blue (no serial), 1.0 TB"
        );
        assert_eq!(
            identity(None, Some(""), Some("PC-DISK-1"), Some(8_589_934_592)),
            "disk with serial PC-DISK-1, 8.6 GB"
        );
        assert_eq!(
            identity(None, None, None, None),
            "disk of unknown model and serial"
        );
        assert_eq!(
            identity(None, Some("M\x1b]0;x\x07"), Some("S"), None),
            "M\\x1b]0;x\\x07, serial S"
        );
    }
}
