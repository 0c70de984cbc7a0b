//! Linux software RAID (md) member superblocks, read-only: metadata 0.90 (64 KiB-aligned, at the
//! end, in the writer's byte order) and 1.0 (at the end), 1.1 (at the start) and 1.2 (4 KiB in),
//! little-endian. What a member says: the array's level, UUID and name, how many devices it has,
//! this member's role, and where the member's share of the data lies.
//!
//! A member belongs to its array: writing one half of a mirror behind the array's back leaves two
//! halves that disagree, and the next assembly may pick either. The engine refuses such targets
//! (`engine::safety`); this module only says what a device is.
//!
//! The layout follows the kernel's `md_p.h` (`mdp_superblock_s` and `mdp_superblock_1`). The
//! checksums are checked (a mismatch is reported as a warning, not hidden, since a stale but
//! recognisable member must still be protected).

use crate::bytes::{be32, le16, le32, le64, slice, uuid_string};
use crate::map::{MapError, UsedMap};
use crate::probe::{read_opt, FsKind, ProbeError};
use disk::{BlockIo, Window};
use serde::Serialize;

const MD_MAGIC: u32 = 0xa92b_4efc;
/// 0.90 reserves the last 64 KiB-aligned 64 KiB.
const MD0_RESERVED: u64 = 64 << 10;
/// The largest `max_dev` a 1.x superblock (4 KiB, roles from byte 256) can hold.
const MD1_MAX_DEV: u32 = (4096 - 256) / 2;

/// What this member is in its array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MdRole {
    /// An active device in slot `n` (0-based).
    Active(u32),
    Spare,
    Faulty,
    /// A write journal device.
    Journal,
}

/// An md RAID member's superblock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MdMember {
    /// `0.90`, `1.0`, `1.1` or `1.2`.
    pub metadata: String,
    /// `raid1`, `raid0`, `raid5`, `linear`, ... as mdadm names them.
    pub level: String,
    /// The array's UUID (what `blkid` reports as `UUID`).
    pub array_uuid: Option<String>,
    /// This device's UUID (1.x only; `blkid`'s `UUID_SUB`).
    pub device_uuid: Option<String>,
    /// The array name (1.x: `host:name`; `blkid`'s `LABEL`).
    pub name: Option<String>,
    /// Devices the array is made of (not counting spares).
    pub raid_disks: u32,
    pub role: MdRole,
    /// Byte offset of the superblock in the member.
    pub super_offset: u64,
    /// Where the member's data starts, and its length, in bytes.
    pub data_offset: u64,
    pub data_size: u64,
    /// The event counter (which member is newer).
    pub events: u64,
    pub warnings: Vec<String>,
}

impl MdMember {
    /// Whether the array keeps copies of the data on other devices (writing this member alone
    /// makes them disagree): RAID1, 4, 5, 6, 10 and multipath.
    pub fn is_redundant(&self) -> bool {
        matches!(
            self.level.as_str(),
            "raid1" | "raid4" | "raid5" | "raid6" | "raid10" | "multipath"
        )
    }

    /// `RAID1 member, device 0 of 2, array "host:root" (metadata 1.2)`.
    pub fn summary(&self) -> String {
        let role = match self.role {
            MdRole::Active(n) => format!("device {n} of {}", self.raid_disks),
            MdRole::Spare => format!("spare of {} devices", self.raid_disks),
            MdRole::Faulty => format!("faulty, of {} devices", self.raid_disks),
            MdRole::Journal => "journal".to_string(),
        };
        let name = match &self.name {
            Some(n) => format!(", array \"{n}\""),
            None => String::new(),
        };
        format!(
            "{} member, {role}{name} (metadata {})",
            self.level.to_uppercase(),
            self.metadata
        )
    }
}

/// The mdadm name of an md level.
fn level_name(level: i32) -> String {
    match level {
        -4 => "multipath".into(),
        -1 => "linear".into(),
        0 => "raid0".into(),
        1 => "raid1".into(),
        4 => "raid4".into(),
        5 => "raid5".into(),
        6 => "raid6".into(),
        10 => "raid10".into(),
        n => format!("level {n}"),
    }
}

/// Reads the md superblock of `io` (a partition or whole disk): 1.2, 1.1, then the ones at the
/// end (1.0, 0.90); `Ok(None)` when there is none with sane fields.
pub fn read(io: &dyn BlockIo) -> Result<Option<MdMember>, ProbeError> {
    let len = io.len();
    for (minor, at) in [
        ("1.2", Some(4096u64)),
        ("1.1", Some(0)),
        ("1.0", end_1x(len)),
    ] {
        let Some(at) = at else { continue };
        if let Some(m) = read_1x(io, at, minor)? {
            return Ok(Some(m));
        }
    }
    read_090(io)
}

/// Where a 1.0 superblock sits: 8 KiB from the end, rounded down to 4 KiB.
fn end_1x(len: u64) -> Option<u64> {
    let sectors = (len / 512).checked_sub(16)?;
    Some((sectors & !7) * 512)
}

fn read_1x(io: &dyn BlockIo, at: u64, minor: &str) -> Result<Option<MdMember>, ProbeError> {
    let Some(sb) = read_opt(io, at, 4096)? else {
        return Ok(None);
    };
    if le32(&sb, 0) != MD_MAGIC || le32(&sb, 4) != 1 {
        return Ok(None);
    }
    // The superblock records its own position in sectors.
    if le64(&sb, 144).checked_mul(512) != Some(at) {
        return Ok(None);
    }
    let max_dev = le32(&sb, 220);
    let dev_number = le32(&sb, 160);
    let raid_disks = le32(&sb, 92);
    if max_dev > MD1_MAX_DEV || dev_number >= max_dev.max(1) || raid_disks > max_dev.max(1) {
        return Ok(None);
    }
    let data_offset = le64(&sb, 128).saturating_mul(512);
    let data_size = le64(&sb, 136).saturating_mul(512);
    let mut m = MdMember {
        metadata: minor.to_string(),
        level: level_name(le32(&sb, 72) as i32),
        array_uuid: uuid_string(slice(&sb, 16, 16)),
        device_uuid: uuid_string(slice(&sb, 168, 16)),
        name: crate::bytes::label_from_bytes(slice(&sb, 32, 32)),
        raid_disks,
        role: match le16(&sb, 256 + 2 * dev_number as usize) {
            0xffff => MdRole::Spare,
            0xfffe => MdRole::Faulty,
            0xfffd => MdRole::Journal,
            n => MdRole::Active(u32::from(n)),
        },
        super_offset: at,
        data_offset,
        data_size,
        events: le64(&sb, 200),
        warnings: Vec::new(),
    };
    if data_offset
        .checked_add(data_size)
        .is_none_or(|e| e > io.len())
    {
        m.warnings.push(format!(
            "the member's data ({data_size} bytes at {data_offset}) extends past the device's end"
        ));
    }
    let csum = checksum_1x(&sb, max_dev);
    if !cfg!(fuzzing) && csum != le32(&sb, 216) {
        m.warnings.push(format!(
            "superblock checksum mismatch (stored {:08x}, computed {csum:08x})",
            le32(&sb, 216)
        ));
    }
    Ok(Some(m))
}

/// The 1.x checksum: the little-endian 32-bit words of the first `256 + 2 * max_dev` bytes (the
/// checksum field counted as 0) summed in 64 bits, the carry folded back once.
fn checksum_1x(sb: &[u8], max_dev: u32) -> u32 {
    let size = 256 + 2 * max_dev as usize;
    let mut sum: u64 = 0;
    let mut at = 0;
    while at + 4 <= size {
        if at != 216 {
            sum += u64::from(le32(sb, at));
        }
        at += 4;
    }
    if at + 2 <= size {
        sum += u64::from(le16(sb, at));
    }
    ((sum & 0xffff_ffff) + (sum >> 32)) as u32
}

/// 0.90: 4 KiB in the last 64 KiB-aligned 64 KiB, 32-bit words in the writer's byte order.
fn read_090(io: &dyn BlockIo) -> Result<Option<MdMember>, ProbeError> {
    let len = io.len();
    let Some(at) = (len & !(MD0_RESERVED - 1)).checked_sub(MD0_RESERVED) else {
        return Ok(None);
    };
    let Some(sb) = read_opt(io, at, 4096)? else {
        return Ok(None);
    };
    let big = match (le32(&sb, 0), be32(&sb, 0)) {
        (MD_MAGIC, _) => false,
        (_, MD_MAGIC) => true,
        _ => return Ok(None),
    };
    let w = |i: usize| {
        if big {
            be32(&sb, i * 4)
        } else {
            le32(&sb, i * 4)
        }
    };
    if w(1) != 0 || w(2) != 90 {
        return Ok(None);
    }
    let raid_disks = w(10);
    if raid_disks > 27 {
        return Ok(None);
    }
    // this_disk: the descriptor at word 992 (number, major, minor, raid_disk, state).
    let (raid_disk, state) = (w(992 + 3), w(992 + 4));
    let role = if state & 1 != 0 {
        MdRole::Faulty
    } else if state & (1 << 2) != 0 && raid_disk < raid_disks {
        MdRole::Active(raid_disk)
    } else {
        MdRole::Spare
    };
    // The UUID: words 5, 13, 14 and 15, each printed as its value in hex (what blkid and
    // mdadm print, whatever the writer's byte order).
    let mut uuid = [0u8; 16];
    for (i, word) in [5, 13, 14, 15].into_iter().enumerate() {
        uuid[i * 4..i * 4 + 4].copy_from_slice(&w(word).to_be_bytes());
    }
    // The event counter's halves are in the writer's order too: (lo, hi) on little-endian.
    let events = if big {
        (u64::from(w(39)) << 32) | u64::from(w(40))
    } else {
        (u64::from(w(40)) << 32) | u64::from(w(39))
    };
    let mut m = MdMember {
        metadata: "0.90".into(),
        level: level_name(w(7) as i32),
        array_uuid: uuid_string(&uuid),
        device_uuid: None,
        name: None,
        raid_disks,
        role,
        super_offset: at,
        data_offset: 0,
        data_size: u64::from(w(8)).saturating_mul(1024).min(at),
        events,
        warnings: Vec::new(),
    };
    let mut sum: u64 = 0;
    for i in 0..1024 {
        if i != 38 {
            sum += u64::from(w(i));
        }
    }
    let csum = ((sum & 0xffff_ffff) + (sum >> 32)) as u32;
    if !cfg!(fuzzing) && csum != w(38) {
        m.warnings.push(format!(
            "superblock checksum mismatch (stored {:08x}, computed {csum:08x})",
            w(38)
        ));
    }
    Ok(Some(m))
}

/// What a backup keeps of an md RAID1 member: every byte outside the member's data area (the
/// superblock, the write-intent bitmap and the bad-block log sit before it for 1.1/1.2 and after
/// it for 1.0/0.90) plus the used blocks of the file system (or LVM2 PV) at the data offset — a
/// RAID1 member holds a plain copy of the array's data. Returns the map over the member and what
/// is inside (`ext4`, `LVM2 PV, VG vg0: ...`).
///
/// Other levels (a member holds only a share of the data), spares, faulty or journal devices, a
/// superblock with warnings and an unknown inside: [`MapError::ImagedWhole`] with the reason.
pub fn member_map(io: &dyn BlockIo) -> Result<(UsedMap, String), MapError> {
    let kind = FsKind::LinuxRaidMember;
    let whole = |reason: String| MapError::ImagedWhole {
        device: io.describe(),
        kind,
        reason,
    };
    let m = read(io)?.ok_or_else(|| MapError::NotRecognised {
        device: io.describe(),
        kind,
    })?;
    if m.level != "raid1" {
        return Err(whole(format!(
            "md {} member: it holds only a share of the array's data",
            m.level
        )));
    }
    if !matches!(m.role, MdRole::Active(_)) {
        return Err(whole(format!(
            "md RAID1 member that is not an active device ({:?})",
            m.role
        )));
    }
    if let Some(w) = m.warnings.first() {
        return Err(whole(format!("md superblock: {w}")));
    }
    let len = io.len();
    let end = m
        .data_offset
        .checked_add(m.data_size)
        .filter(|&e| e <= len && m.data_size > 0)
        .ok_or_else(|| MapError::Corrupt {
            device: io.describe(),
            what: format!(
                "md data area ({} bytes at {}) is empty or outside the member",
                m.data_size, m.data_offset
            ),
        })?;
    let data = Window::new(io, m.data_offset, m.data_size).map_err(|source| MapError::Read {
        device: io.describe(),
        offset: m.data_offset,
        len: 0,
        source,
    })?;
    let info = crate::probe(&data)?
        .ok_or_else(|| whole("no known file system in the md member's data area".to_string()))?;
    let (inner, inside) = if info.kind == FsKind::Lvm2Member {
        let r = crate::lvm::pv_report(&data)?;
        let inside = r.summary();
        (r.map, inside)
    } else {
        let map = crate::used_map(&data, &info).map_err(|e| {
            whole(format!(
                "the {} in the md member's data area cannot be mapped ({e})",
                info.kind
            ))
        })?;
        (map, info.kind.name().to_string())
    };
    // The unit: the inner map's, down to what the data offset is aligned on (both are powers of
    // two, and the offset is a whole number of sectors).
    let align = 1u64 << m.data_offset.trailing_zeros().min(31);
    let unit = u64::from(inner.unit()).min(align).max(512);
    let mut map = UsedMap::new(unit as u32, len)?;
    map.mark(0, m.data_offset);
    map.mark(end, len - end);
    for r in inner.ranges() {
        map.mark(m.data_offset + r.start, r.end - r.start);
    }
    Ok((map, inside))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1_0_superblock_sits_8_kib_from_the_end_on_4_kib() {
        assert_eq!(end_1x(20 << 20), Some((20 << 20) - 8192));
        assert_eq!(end_1x((20 << 20) + 1536), Some((20 << 20) - 8192));
        assert_eq!(end_1x((20 << 20) + 4096), Some((20 << 20) - 4096));
        assert_eq!(end_1x(4096), None);
    }

    #[test]
    fn redundant_levels_are_the_ones_that_keep_copies() {
        let mut m = MdMember {
            metadata: "1.2".into(),
            level: "raid1".into(),
            array_uuid: None,
            device_uuid: None,
            name: Some("h:0".into()),
            raid_disks: 2,
            role: MdRole::Active(1),
            super_offset: 4096,
            data_offset: 1 << 20,
            data_size: 1 << 20,
            events: 1,
            warnings: Vec::new(),
        };
        assert!(m.is_redundant());
        assert_eq!(
            m.summary(),
            "RAID1 member, device 1 of 2, array \"h:0\" (metadata 1.2)"
        );
        m.level = "raid0".into();
        assert!(!m.is_redundant());
    }
}
