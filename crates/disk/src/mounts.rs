//! Parsers for the kernel's tables of what is in use: `/proc/self/mountinfo` and `/proc/swaps`.
//!
//! Both take raw bytes (mount points may be any bytes but `/` and NUL) and skip lines they cannot
//! make sense of instead of failing.

use crate::DevNum;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Field 3, `major:minor` of the mounted device (`0:N` for btrfs subvolumes and pseudo
    /// file systems).
    pub dev: DevNum,
    /// Field 5, the mount point, with the kernel's octal escapes (`\040`) decoded.
    pub mount_point: PathBuf,
    /// The file system type after the ` - ` separator.
    pub fs_type: String,
    /// The mount source after the file system type, e.g. `/dev/sda1`, `tmpfs`.
    pub source: PathBuf,
}

/// One device or file in `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapEntry {
    /// The swap device or file, escapes decoded.
    pub path: PathBuf,
    /// `partition` or `file`.
    pub kind: String,
}

/// Parses the content of `/proc/<pid>/mountinfo`. Malformed lines are skipped.
pub fn parse_mountinfo(data: &[u8]) -> Vec<MountEntry> {
    data.split(|&b| b == b'\n')
        .filter_map(parse_mountinfo_line)
        .collect()
}

fn parse_mountinfo_line(line: &[u8]) -> Option<MountEntry> {
    let fields: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let dev = DevNum::parse(std::str::from_utf8(fields.get(2)?).ok()?)?;
    let mount_point = PathBuf::from(unescape(fields.get(4)?));
    // Optional fields follow field 6 and end with a lone "-".
    let sep = fields.iter().skip(6).position(|f| *f == b"-")? + 6;
    let fs_type = String::from_utf8_lossy(&unescape(fields.get(sep + 1)?).into_vec()).into_owned();
    let source = fields
        .get(sep + 2)
        .map(|s| PathBuf::from(unescape(s)))
        .unwrap_or_default();
    Some(MountEntry {
        dev,
        mount_point,
        fs_type,
        source,
    })
}

/// Parses the content of `/proc/swaps` (a header line, then one line per swap area). Malformed
/// lines are skipped.
pub fn parse_swaps(data: &[u8]) -> Vec<SwapEntry> {
    data.split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let mut fields = line
                .split(|&b| b == b' ' || b == b'\t')
                .filter(|f| !f.is_empty());
            let path = fields.next()?;
            let kind = fields.next()?;
            Some(SwapEntry {
                path: PathBuf::from(unescape(path)),
                kind: String::from_utf8_lossy(kind).into_owned(),
            })
        })
        .collect()
}

/// Decodes the kernel's `\ooo` octal escapes (space, tab, newline, backslash in paths).
fn unescape(field: &[u8]) -> OsString {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&b) = field.get(i) {
        if b == b'\\' {
            if let Some(code) = field.get(i + 1..i + 4).and_then(octal) {
                out.push(code);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    OsString::from_vec(out)
}

fn octal(digits: &[u8]) -> Option<u8> {
    let mut v: u32 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        v = v * 8 + u32::from(d - b'0');
    }
    u8::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_line_with_optional_fields_and_escaped_space() {
        let text = b"36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].dev,
            DevNum {
                major: 98,
                minor: 0
            }
        );
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/my disk"));
        assert_eq!(m[0].fs_type, "ext3");
        assert_eq!(m[0].source, PathBuf::from("/dev/root"));
    }

    #[test]
    fn mountinfo_skips_malformed_lines() {
        let text =
            b"garbage\n1 2 x:y / / rw - ext4 /dev/sda1 rw\n27 1 254:0 / / rw - ext4 /dev/vda rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_point, PathBuf::from("/"));
    }

    #[test]
    fn swaps_skip_header_and_decode_paths() {
        let text = b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda2                               partition\t2097148\t\t0\t\t-2\n/swap\\040file file 1024 0 -3\n";
        let s = parse_swaps(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].path, PathBuf::from("/dev/sda2"));
        assert_eq!(s[0].kind, "partition");
        assert_eq!(s[1].path, PathBuf::from("/swap file"));
    }
}
