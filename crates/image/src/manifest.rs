//! The manifest: plain data describing where an image came from, stored as TOML text inside the
//! image. It knows nothing of the partition-table or file-system crates: they fill it in.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Everything `lifeboat info` shows about an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// Version of the tool that wrote the image (`lifeboat 0.1.0`).
    pub tool_version: String,
    /// Creation time, RFC 3339 UTC (`2026-11-22T03:14:34Z`); see [`rfc3339_utc`].
    pub created: String,
    /// The disk (or partition, or file) that was read.
    pub source: SourceDisk,
    /// The partition table and the streams holding its raw areas.
    #[serde(default)]
    pub table: TableInfo,
    /// Every partition of the source, imaged or not.
    #[serde(default)]
    pub partitions: Vec<PartitionEntry>,
    /// Ranges of the source that could not be read (they read as zeros from the image).
    #[serde(default)]
    pub bad_sectors: Vec<BadRange>,
    /// Free-form remarks (fallbacks taken, warnings).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The source disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SourceDisk {
    /// Path it was read from (`/dev/sda`, `disk.img`).
    pub path: String,
    /// Model string, empty when unknown.
    #[serde(default)]
    pub model: String,
    /// Serial number, empty when unknown.
    #[serde(default)]
    pub serial: String,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size (the unit of LBAs).
    pub logical_sector_size: u32,
    /// Physical sector size.
    pub physical_sector_size: u32,
}

/// The partition table of the source and where its raw bytes are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TableInfo {
    /// `gpt`, `mbr` or `none`.
    pub kind: String,
    /// Disk GUID (GPT) or disk signature (MBR, `0x1234abcd`), empty when none.
    #[serde(default)]
    pub disk_id: String,
    /// Streams holding the raw partition-table areas and gaps (LBA 0, GPT arrays, EBRs, the
    /// boot-loader gap), in disk order.
    #[serde(default)]
    pub areas: Vec<AreaRef>,
}

/// A raw area of the source disk stored as one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AreaRef {
    /// Stream id in the image.
    pub stream: u32,
    /// Byte offset on the source disk.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// What it holds (`protective MBR and primary GPT`, `boot gap`, `backup GPT`, `EBR 5`).
    #[serde(default)]
    pub what: String,
}

/// How a partition's content was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionMode {
    /// Only blocks the file system marks as used (its bitmap is stored with the stream).
    #[default]
    UsedBlocks,
    /// Every byte (all-zero chunks skipped).
    Whole,
    /// Only the header (swap).
    HeaderOnly,
    /// Not stored at all (listed for the table only).
    Skipped,
}

impl fmt::Display for PartitionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PartitionMode::UsedBlocks => "used-blocks",
            PartitionMode::Whole => "whole",
            PartitionMode::HeaderOnly => "header-only",
            PartitionMode::Skipped => "skipped",
        })
    }
}

/// One partition of the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PartitionEntry {
    /// Partition number as the OS names it (`1` for `sda1`).
    pub number: u32,
    /// Stream id holding its content, none when not stored.
    #[serde(default)]
    pub stream: Option<u32>,
    /// First byte on the source disk.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// Type in words (`EFI system`, `Linux filesystem`, `0x83`).
    #[serde(rename = "type", default)]
    pub part_type: String,
    /// GPT type GUID, empty on MBR.
    #[serde(default)]
    pub type_guid: String,
    /// GPT partition GUID, empty on MBR.
    #[serde(default)]
    pub part_guid: String,
    /// GPT partition name, empty on MBR.
    #[serde(default)]
    pub name: String,
    /// GPT attribute bits or the MBR boot flag (0x80), stored as a hex string because TOML
    /// integers stop at 2^63.
    #[serde(default, with = "hex_u64")]
    pub flags: u64,
    /// File system found (`ext4`, `vfat`, `ntfs`, `exfat`, `swap`), empty when unknown.
    #[serde(default)]
    pub fs: String,
    /// File-system label.
    #[serde(default)]
    pub label: String,
    /// File-system UUID or serial.
    #[serde(default)]
    pub uuid: String,
    /// File-system block (cluster) size in bytes; 0 when unknown.
    #[serde(default)]
    pub block_size: u32,
    /// Bytes in use according to the file system; equals `size` in whole mode.
    #[serde(default)]
    pub used_bytes: u64,
    /// How its content was stored.
    #[serde(default)]
    pub mode: PartitionMode,
    /// Why this mode was chosen when it is not the obvious one, empty otherwise.
    #[serde(default)]
    pub note: String,
}

/// A range of the source that could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BadRange {
    /// Byte offset on the source disk.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{v:x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(&s);
        u64::from_str_radix(digits, 16)
            .map_err(|e| serde::de::Error::custom(format!("flags `{s}`: {e}")))
    }
}

impl Manifest {
    /// The manifest as TOML text.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    /// Parses TOML text. Unknown keys (written by newer minor versions) are ignored.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS.get(u).copied().unwrap_or("?"))
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "created:   {} by {}", self.created, self.tool_version)?;
        let s = &self.source;
        writeln!(
            f,
            "source:    {} {} {} ({}, sectors {}/{})",
            s.path,
            s.model,
            s.serial,
            human(s.size),
            s.logical_sector_size,
            s.physical_sector_size
        )?;
        writeln!(f, "table:     {} {}", self.table.kind, self.table.disk_id)?;
        for p in &self.partitions {
            writeln!(
                f,
                "  #{:<3} {:>10} at {:<12} {:<8} {:<16} used {:>10}  {}{}",
                p.number,
                human(p.size),
                p.start,
                if p.fs.is_empty() { "?" } else { &p.fs },
                p.label,
                human(p.used_bytes),
                p.mode,
                if p.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.note)
                }
            )?;
        }
        if !self.bad_sectors.is_empty() {
            let total: u64 = self.bad_sectors.iter().map(|b| b.len).sum();
            writeln!(
                f,
                "unreadable: {} ranges, {} (read as zeros)",
                self.bad_sectors.len(),
                human(total)
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note:      {n}")?;
        }
        Ok(())
    }
}

/// Formats a time as RFC 3339 UTC with second precision (`2026-11-22T03:14:34Z`).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // `date -u -d @1795317274 +%FT%TZ`
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_795_317_274)),
            "2026-11-22T03:14:34Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_825_600)),
            "2000-02-29T12:00:00Z"
        );
    }

    #[test]
    fn manifest_round_trips_through_toml_with_high_gpt_flags() {
        let m = Manifest {
            tool_version: "lifeboat 0.1.0".into(),
            created: "2026-11-22T03:14:34Z".into(),
            source: SourceDisk {
                path: "/dev/sda".into(),
                model: "QEMU HARDDISK".into(),
                serial: "QM00001".into(),
                size: 1 << 34,
                logical_sector_size: 512,
                physical_sector_size: 4096,
            },
            table: TableInfo {
                kind: "gpt".into(),
                disk_id: "0a0b".into(),
                areas: vec![AreaRef {
                    stream: 0,
                    offset: 0,
                    len: 1 << 20,
                    what: "head".into(),
                }],
            },
            partitions: vec![PartitionEntry {
                number: 1,
                stream: Some(1),
                start: 1 << 20,
                size: 1 << 30,
                part_type: "Microsoft basic data".into(),
                flags: 0x8000_0000_0000_0001,
                fs: "ntfs".into(),
                mode: PartitionMode::UsedBlocks,
                ..Default::default()
            }],
            bad_sectors: vec![BadRange {
                offset: 4096,
                len: 512,
            }],
            notes: vec!["hello".into()],
        };
        let text = m.to_toml().unwrap();
        assert!(text.contains("flags = \"0x8000000000000001\""), "{text}");
        assert!(text.contains("mode = \"used-blocks\""), "{text}");
        assert_eq!(Manifest::from_toml(&text).unwrap(), m);
        assert!(m.to_string().contains("QEMU HARDDISK"));
    }

    #[test]
    fn manifest_ignores_keys_from_newer_minor_versions() {
        let text = "tool_version = \"x\"\ncreated = \"y\"\nfuture = 1\n[source]\npath = \"p\"\n\
                    size = 1\nlogical_sector_size = 512\nphysical_sector_size = 512\n";
        let m = Manifest::from_toml(text).unwrap();
        assert_eq!(m.source.path, "p");
    }

    #[test]
    fn deeply_nested_manifest_is_rejected_without_overflowing_the_stack() {
        let text = format!("a = {}", "[".repeat(200_000));
        assert!(Manifest::from_toml(&text).is_err());
        let text = format!("a = {}", "{ b = ".repeat(200_000));
        assert!(Manifest::from_toml(&text).is_err());
    }
}
