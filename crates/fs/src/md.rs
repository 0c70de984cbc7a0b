//! Linux software RAID (md) member superblocks, read-only: metadata 0.90 (64 KiB-aligned, at the
//! end, in the writer's byte order) and 1.0 (at the end), 1.1 (at the start) and 1.2 (4 KiB in),
//! little-endian. What a member says: the array's level, layout and chunk size, UUID and name, how
//! many devices it has, this member's role, and where the member's share of the data lies.
//!
//! A RAID1 member holds a plain copy of the array's data, so its file system can be mapped from
//! the member alone ([`member_map`]). A member of a striped or parity array (RAID0, 4, 5, 6, 10,
//! linear) holds chunks of it: no file system can be read from one member, only from the
//! assembled array, so such a member is imaged whole and the reason says so.
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
    /// The chunk size in bytes (striped and parity levels; 0 for RAID1 and multipath).
    pub chunk_size: u64,
    /// The layout as mdadm names it (`left-symmetric`, `near=2`, ...) for RAID4/5/6/10; `None`
    /// for the others.
    pub layout: Option<String>,
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

    /// Whether each member holds only chunks of the array's data (striped, parity or linear
    /// levels): its file system can only be read from the assembled array.
    pub fn is_striped(&self) -> bool {
        !matches!(self.level.as_str(), "raid1" | "multipath")
    }

    /// `RAID1 member, device 0 of 2, array "host:root" (metadata 1.2)`; striped and parity
    /// levels add the chunk size and layout: `RAID5 member, device 2 of 3, 512 KiB chunks,
    /// left-symmetric, array "host:data" (metadata 1.2)`.
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
        let mut geometry = String::new();
        if self.chunk_size > 0 && self.is_striped() {
            geometry.push_str(&format!(", {} chunks", kib_text(self.chunk_size)));
        }
        if let Some(l) = &self.layout {
            geometry.push_str(&format!(", {l}"));
        }
        let role = format!("{role}{geometry}");
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

/// `512 KiB`, `64 KiB`, `1 MiB`.
fn kib_text(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

/// The layout of a RAID4/5/6/10 array as mdadm prints it (`md_p.h`, mdadm's `maps.c`); `None`
/// for levels without one.
fn layout_name(level: &str, layout: u32) -> Option<String> {
    match level {
        "raid4" => Some("parity-last".to_string()),
        "raid5" | "raid6" => Some(
            match layout {
                0 => "left-asymmetric",
                1 => "right-asymmetric",
                2 => "left-symmetric",
                3 => "right-symmetric",
                4 => "parity-first",
                5 => "parity-last",
                8 => "ddf-zero-restart",
                9 => "ddf-N-restart",
                10 => "ddf-N-continue",
                16 => "left-asymmetric-6",
                17 => "right-asymmetric-6",
                18 => "left-symmetric-6",
                19 => "right-symmetric-6",
                20 => "parity-first-6",
                n => return Some(format!("layout {n}")),
            }
            .to_string(),
        ),
        "raid10" => {
            // near copies in the low byte, far copies in the next, offset as bit 16.
            let (near, far) = (layout & 0xff, (layout >> 8) & 0xff);
            let mut parts = Vec::new();
            if near > 1 {
                parts.push(format!("near={near}"));
            }
            if far > 1 {
                let kind = if layout & 0x1_0000 != 0 {
                    "offset"
                } else {
                    "far"
                };
                parts.push(format!("{kind}={far}"));
            }
            if parts.is_empty() {
                parts.push(format!("layout {layout:#x}"));
            }
            Some(parts.join(" "))
        }
        _ => None,
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
    let level = level_name(le32(&sb, 72) as i32);
    let mut m = MdMember {
        metadata: minor.to_string(),
        layout: layout_name(&level, le32(&sb, 76)),
        chunk_size: u64::from(le32(&sb, 88)).saturating_mul(512),
        level,
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
    let level = level_name(w(7) as i32);
    let mut m = MdMember {
        metadata: "0.90".into(),
        // The personality section: layout (word 64) and chunk size in bytes (word 65).
        layout: layout_name(&level, w(64)),
        chunk_size: u64::from(w(65)),
        level,
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
/// Other levels (a member holds only chunks of the data: no file system can be read from it
/// alone — the reason says to back up the assembled array instead), spares, faulty or journal
/// devices, a superblock with warnings and an unknown inside: [`MapError::ImagedWhole`] with the
/// reason.
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
        return Err(whole(striped_reason(&m)));
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

/// Why one member of a striped or parity array cannot be imaged as a file system, and what to do
/// instead.
pub fn striped_reason(m: &MdMember) -> String {
    let how = match m.level.as_str() {
        "raid0" => "striped without redundancy".to_string(),
        "raid10" => "striped and mirrored".to_string(),
        "linear" => "concatenated".to_string(),
        "raid4" | "raid5" | "raid6" => "striped with parity".to_string(),
        other => format!("spread by {other}"),
    };
    let chunks = if m.chunk_size > 0 {
        format!("in {} chunks ", kib_text(m.chunk_size))
    } else {
        String::new()
    };
    format!(
        "an md {} member holds only part of the array's data ({how} {chunks}over {} devices): \
         no file system can be imaged from one member; back up the assembled array instead (its \
         used blocks), or this member whole as it is",
        m.level.to_uppercase(),
        m.raid_disks
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use disk::MemDisk;

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
            chunk_size: 0,
            layout: None,
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
        assert!(m.is_striped());
        m.level = "raid5".into();
        m.chunk_size = 512 << 10;
        m.layout = layout_name("raid5", 2);
        assert_eq!(
            m.summary(),
            "RAID5 member, device 1 of 2, 512 KiB chunks, left-symmetric, array \"h:0\" \
             (metadata 1.2)"
        );
        let why = striped_reason(&m);
        assert!(
            why.contains("striped with parity in 512 KiB chunks over 2 devices")
                && why.contains("back up the assembled array"),
            "{why}"
        );
    }

    /// A 1.2 superblock laid out from the kernel's `mdp_superblock_1` (the build host has no md
    /// driver for `mdadm --create`; the booted-image test checks members mdadm made).
    fn sb_1_2(level: u32, layout: u32, chunk_sectors: u32, raid_disks: u32, dev: u16) -> MemDisk {
        let mut sb = vec![0u8; 4096];
        let put32 =
            |sb: &mut Vec<u8>, at: usize, v: u32| sb[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |sb: &mut Vec<u8>, at: usize, v: u64| sb[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put32(&mut sb, 0, MD_MAGIC);
        put32(&mut sb, 4, 1);
        sb[16..32].copy_from_slice(&[0x11; 16]);
        sb[32..38].copy_from_slice(b"h:data");
        put32(&mut sb, 72, level);
        put32(&mut sb, 76, layout);
        put32(&mut sb, 88, chunk_sectors);
        put32(&mut sb, 92, raid_disks);
        put64(&mut sb, 128, 2048);
        put64(&mut sb, 136, 14336);
        put64(&mut sb, 144, 8);
        put32(&mut sb, 160, u32::from(dev));
        put64(&mut sb, 200, 7);
        put32(&mut sb, 220, raid_disks);
        for d in 0..raid_disks as usize {
            sb[256 + 2 * d..258 + 2 * d].copy_from_slice(&(d as u16).to_le_bytes());
        }
        let csum = checksum_1x(&sb, raid_disks);
        put32(&mut sb, 216, csum);
        let mut bytes = vec![0u8; 8 << 20];
        bytes[4096..8192].copy_from_slice(&sb);
        MemDisk::from_vec(bytes, 512)
    }

    #[test]
    fn striped_and_parity_members_report_level_chunk_layout_count_and_role() {
        // RAID5, left-symmetric, 512 KiB chunks, device 2 of 3.
        let m = read(&sb_1_2(5, 2, 1024, 3, 2)).unwrap().unwrap();
        assert_eq!(m.level, "raid5");
        assert_eq!(m.chunk_size, 512 << 10);
        assert_eq!(m.layout.as_deref(), Some("left-symmetric"));
        assert_eq!((m.role, m.raid_disks), (MdRole::Active(2), 3));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        // RAID0 and RAID10 near=2 with 64 KiB chunks; RAID6 over 4.
        let m = read(&sb_1_2(0, 0, 128, 2, 1)).unwrap().unwrap();
        assert_eq!(
            (m.level.as_str(), m.chunk_size, m.layout.clone()),
            ("raid0", 64 << 10, None)
        );
        let m = read(&sb_1_2(10, 0x102, 128, 4, 3)).unwrap().unwrap();
        assert_eq!(m.layout.as_deref(), Some("near=2"));
        assert_eq!(m.role, MdRole::Active(3));
        let m = read(&sb_1_2(6, 18, 1024, 4, 0)).unwrap().unwrap();
        assert_eq!(
            m.summary(),
            "RAID6 member, device 0 of 4, 512 KiB chunks, left-symmetric-6, array \"h:data\" \
             (metadata 1.2)"
        );
    }

    #[test]
    fn a_member_of_a_striped_array_is_never_mapped_as_a_file_system() {
        let io = sb_1_2(5, 2, 1024, 3, 0);
        match member_map(&io) {
            Err(MapError::ImagedWhole { reason, .. }) => assert!(
                reason.contains("no file system can be imaged from one member")
                    && reason.contains("RAID5")
                    && reason.contains("back up the assembled array"),
                "{reason}"
            ),
            other => panic!("a RAID5 member was not imaged whole: {other:?}"),
        }
    }

    #[test]
    fn raid10_layouts_read_as_mdadm_prints_them() {
        assert_eq!(layout_name("raid10", 0x102).as_deref(), Some("near=2"));
        assert_eq!(layout_name("raid10", 0x201).as_deref(), Some("far=2"));
        assert_eq!(layout_name("raid10", 0x1_0201).as_deref(), Some("offset=2"));
        assert_eq!(
            layout_name("raid6", 18).as_deref(),
            Some("left-symmetric-6")
        );
        assert_eq!(layout_name("raid1", 0), None);
        assert_eq!(kib_text(64 << 10), "64 KiB");
        assert_eq!(kib_text(1 << 20), "1 MiB");
    }
}
