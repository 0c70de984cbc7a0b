//! Recognising a file system from its superblock: the entry point [`probe`], the result
//! [`FsInfo`], and the signature-only formats (LUKS, LVM2, swap, XFS, btrfs, ISO 9660).
//!
//! Every probe sanity-checks the fields it relies on (power-of-two sizes, ranges, counts), so
//! random bytes or a stale signature are reported as "nothing here" rather than misdetected.

use crate::bytes::{
    be32, is_pow2_in, label_from_bytes, label_from_utf16, le16, le32, le64, slice, u8_at,
    utf16be_units, uuid_string,
};
use crate::{btrfs, exfat, ext, fat, ntfs, xfs};
use disk::BlockIo;
use serde::Serialize;
use std::fmt;
use std::io;

/// The kinds of content [`probe`] recognises. `Display` prints the name `blkid` uses as `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum FsKind {
    #[serde(rename = "ext2")]
    Ext2,
    #[serde(rename = "ext3")]
    Ext3,
    #[serde(rename = "ext4")]
    Ext4,
    /// FAT12, FAT16 or FAT32: [`FsInfo::version`] says which.
    #[serde(rename = "vfat")]
    Vfat,
    #[serde(rename = "exfat")]
    Exfat,
    #[serde(rename = "ntfs")]
    Ntfs,
    #[serde(rename = "btrfs")]
    Btrfs,
    #[serde(rename = "xfs")]
    Xfs,
    /// Linux swap.
    #[serde(rename = "swap")]
    Swap,
    /// A hibernation image written over a swap area ([`FsInfo::version`] names the writer:
    /// `s1suspend`, `s2suspend`, `ulsuspend`, `tuxonice`, `linhib0001`). Everything is data.
    #[serde(rename = "swsuspend")]
    Swsuspend,
    /// An ext3/ext4 external journal device (`mke2fs -O journal_dev`): not a file system of its
    /// own, imaged whole.
    #[serde(rename = "jbd")]
    Jbd,
    /// An XFS external log device: imaged whole.
    #[serde(rename = "xfs_external_log")]
    XfsExternalLog,
    #[serde(rename = "crypto_LUKS")]
    CryptoLuks,
    #[serde(rename = "LVM2_member")]
    Lvm2Member,
    #[serde(rename = "iso9660")]
    Iso9660,
    /// A BitLocker encrypted volume (Windows 7 or later, To Go, Vista): [`crate::crypt`].
    #[serde(rename = "BitLocker")]
    BitLocker,
    /// A Linux software RAID (md) member: [`crate::md`].
    #[serde(rename = "linux_raid_member")]
    LinuxRaidMember,
}

impl FsKind {
    /// The `blkid` `TYPE` name.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Vfat => "vfat",
            FsKind::Exfat => "exfat",
            FsKind::Ntfs => "ntfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Xfs => "xfs",
            FsKind::Swap => "swap",
            FsKind::Swsuspend => "swsuspend",
            FsKind::Jbd => "jbd",
            FsKind::XfsExternalLog => "xfs_external_log",
            FsKind::CryptoLuks => "crypto_LUKS",
            FsKind::Lvm2Member => "LVM2_member",
            FsKind::Iso9660 => "iso9660",
            FsKind::BitLocker => "BitLocker",
            FsKind::LinuxRaidMember => "linux_raid_member",
        }
    }

    /// An encrypted volume (LUKS, BitLocker): without its key only the whole can be copied.
    pub fn is_encrypted(self) -> bool {
        matches!(self, FsKind::CryptoLuks | FsKind::BitLocker)
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`probe`] found on a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    pub kind: FsKind,
    /// Variant or version, e.g. `FAT32`, `LUKS2`, `1.0` (ext revision), `5` (XFS), `s1suspend`.
    pub version: Option<String>,
    /// Volume label, decoded and trimmed; `None` when there is none.
    pub label: Option<String>,
    /// UUID or serial formatted as `blkid` prints it.
    pub uuid: Option<String>,
    /// The file system's block (ext, XFS, btrfs sector), logical sector (FAT, exFAT, NTFS) or page
    /// (swap) size in bytes.
    pub block_size: u32,
    /// The allocation unit in bytes: the cluster size (FAT, exFAT, NTFS, ext4 bigalloc), otherwise
    /// equal to `block_size`.
    pub cluster_size: u32,
    /// Bytes the file system says it occupies (0 when the format does not say).
    pub size: u64,
    /// Bytes in use as the superblock counts them, where probing reads it cheaply (XFS: all
    /// blocks less the free count; btrfs: `bytes_used`); `None` otherwise.
    pub used: Option<u64>,
    /// The file system says it was not cleanly unmounted, has errors, or needs journal recovery.
    pub needs_check: bool,
    /// A short state text when the format has one: `clean`, `not clean`, `errors`, `dirty`, ...
    pub state: Option<String>,
    /// Inconsistencies that did not prevent recognition, e.g. a size larger than the partition.
    pub warnings: Vec<String>,
    /// What a container says beyond type, label and UUID, in one line: the cipher and key slots
    /// or protectors of an encrypted volume, the level and role of an md RAID member.
    pub detail: Option<String>,
}

impl FsInfo {
    pub(crate) fn new(kind: FsKind) -> Self {
        FsInfo {
            kind,
            version: None,
            label: None,
            uuid: None,
            block_size: 0,
            cluster_size: 0,
            size: 0,
            used: None,
            needs_check: false,
            state: None,
            warnings: Vec::new(),
            detail: None,
        }
    }

    /// Adds a warning when the claimed size exceeds the partition.
    pub(crate) fn check_size(&mut self, partition: u64) {
        if self.size > partition {
            self.warnings.push(format!(
                "{} claims {} bytes but the partition holds only {partition}",
                self.kind, self.size
            ));
        }
    }
}

/// Why probing failed. Unrecognised content is not an error: [`probe`] returns `Ok(None)`.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("reading {len} bytes at offset {offset} of {device}: {source}")]
    Read {
        device: String,
        offset: u64,
        len: usize,
        source: io::Error,
    },
}

/// Reads `len` bytes at `offset`, or `None` when the range is not inside `io` (a partition too
/// small to hold the structure is not an error while probing).
pub(crate) fn read_opt(
    io: &dyn BlockIo,
    offset: u64,
    len: usize,
) -> Result<Option<Vec<u8>>, ProbeError> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= io.len() => {}
        _ => return Ok(None),
    }
    let mut buf = vec![0u8; len];
    io.read_at(&mut buf, offset)
        .map_err(|source| ProbeError::Read {
            device: io.describe(),
            offset,
            len,
            source,
        })?;
    Ok(Some(buf))
}

/// Recognises the file system (or container: md RAID member, LUKS, BitLocker, LVM2 PV, swap) on a
/// partition-sized `io`.
///
/// Returns `Ok(None)` when no known superblock with sane fields is present. Signatures are tried
/// from the most to the least specific: containers first (an md member before all, as `blkid`
/// does: a RAID1 member with metadata at its end also shows its file system at its start; then
/// LUKS and BitLocker, LVM2, swap), then file systems
/// with strong magic numbers, ISO 9660 before FAT (a hybrid ISO also carries a boot sector), FAT
/// late because its boot sector has no magic of its own, and an XFS external log last (it is
/// found by a log record anywhere in the first 256 KiB).
pub fn probe(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    type Prober = fn(&dyn BlockIo) -> Result<Option<FsInfo>, ProbeError>;
    const PROBERS: &[Prober] = &[
        probe_md,
        probe_encrypted,
        probe_lvm2,
        probe_swap,
        xfs::probe,
        btrfs::probe,
        ext::probe,
        ntfs::probe,
        exfat::probe,
        probe_iso9660,
        fat::probe,
        probe_xfs_log,
    ];
    for prober in PROBERS {
        if let Some(mut info) = prober(io)? {
            info.check_size(io.len());
            log::debug!(
                "{}: {} {:?} label {:?} uuid {:?}",
                io.describe(),
                info.kind,
                info.version,
                info.label,
                info.uuid
            );
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// An md RAID member ([`crate::md`]): `blkid`'s `linux_raid_member`, its LABEL the array name.
fn probe_md(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    let Some(m) = crate::md::read(io)? else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsKind::LinuxRaidMember);
    info.version = Some(m.metadata.clone());
    info.label = m.name.clone();
    info.uuid = m.array_uuid.clone();
    info.block_size = 512;
    info.cluster_size = 512;
    info.size = io.len();
    info.detail = Some(m.summary());
    info.warnings = m.warnings;
    Ok(Some(info))
}

/// LUKS1, LUKS2 ([`crate::crypt`]; `crypto_LUKS`) or BitLocker.
fn probe_encrypted(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    let Some(e) = crate::crypt::read(io)? else {
        return Ok(None);
    };
    let kind = match e.scheme {
        crate::crypt::Scheme::BitLocker => FsKind::BitLocker,
        _ => FsKind::CryptoLuks,
    };
    let mut info = FsInfo::new(kind);
    // blkid's VERSION: `LUKS1`/`LUKS2` here (it says 1 or 2), the FVE metadata version for
    // BitLocker (2 since Windows 7; 1 for Vista).
    info.version = Some(match (e.scheme, e.variant.as_deref()) {
        (crate::crypt::Scheme::BitLocker, Some("Vista")) => "1".to_string(),
        (crate::crypt::Scheme::BitLocker, _) => "2".to_string(),
        (scheme, _) => scheme.name().to_string(),
    });
    info.uuid = e.uuid.clone();
    info.label = e.label.clone();
    info.block_size = e.sector_size;
    info.cluster_size = e.sector_size;
    // The header does not record the container's size; it spans the partition.
    info.size = io.len();
    info.detail = Some(e.summary());
    info.warnings = e.warnings;
    Ok(Some(info))
}

fn probe_lvm2(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    // The label may be in any of the first four 512-byte sectors.
    let Some(head) = read_opt(io, 0, 2048)? else {
        return Ok(None);
    };
    for sector in 0..4usize {
        let s = slice(&head, sector * 512, 512);
        if slice(s, 0, 8) != b"LABELONE" || slice(s, 24, 8) != b"LVM2 001" {
            continue;
        }
        if le64(s, 8) != sector as u64 {
            continue;
        }
        let pv_off = le32(s, 20) as usize;
        if !(32..=480).contains(&pv_off) {
            continue;
        }
        let raw_uuid = slice(s, pv_off, 32);
        if raw_uuid.len() != 32 || !raw_uuid.iter().all(u8::is_ascii_alphanumeric) {
            continue;
        }
        let mut uuid = String::with_capacity(38);
        for (i, &c) in raw_uuid.iter().enumerate() {
            if matches!(i, 6 | 10 | 14 | 18 | 22 | 26) {
                uuid.push('-');
            }
            uuid.push(char::from(c));
        }
        let mut info = FsInfo::new(FsKind::Lvm2Member);
        info.version = Some("LVM2 001".into());
        info.uuid = Some(uuid);
        info.block_size = 512;
        info.cluster_size = 512;
        info.size = le64(s, pv_off + 32);
        return Ok(Some(info));
    }
    Ok(None)
}

/// Hibernation signatures written over a swap area's signature, with the version libblkid
/// reports for each (see its `swap.c`).
const HIBERNATION_MAGICS: &[(&[u8], &str)] = &[
    (b"S1SUSPEND", "s1suspend"),
    (b"S2SUSPEND", "s2suspend"),
    (b"ULSUSPEND", "ulsuspend"),
    (b"LINHIB0001", "linhib0001"),
];
/// TuxOnIce writes its own magic at the very start and leaves the swap header in place.
const TUXONICE_MAGIC: &[u8] = b"\xed\xc3\x02\xe9\x98\x56\xe5\x0c";
/// libblkid ignores swap signatures on anything smaller than ten pages.
const SWAP_MIN_SIZE: u64 = 10 * 4096;

fn probe_swap(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    if io.len() < SWAP_MIN_SIZE {
        return Ok(None);
    }
    let tuxonice = read_opt(io, 0, TUXONICE_MAGIC.len())?.is_some_and(|m| m == TUXONICE_MAGIC);
    for page in [4096u64, 8192, 16384, 32768, 65536] {
        let Some(sig) = read_opt(io, page - 10, 10)? else {
            return Ok(None);
        };
        let hibernation = HIBERNATION_MAGICS
            .iter()
            .find(|(m, _)| sig.starts_with(m))
            .map(|(_, v)| *v);
        let swap = sig == b"SWAPSPACE2" || sig == b"SWAP-SPACE";
        if tuxonice && swap {
            // The swap header stays valid under a TuxOnIce image.
            return Ok(Some(swap_info(
                io,
                page,
                FsKind::Swsuspend,
                "tuxonice",
                None,
            )?));
        }
        if let Some(version) = hibernation {
            return Ok(Some(swap_info(io, page, FsKind::Swsuspend, version, None)?));
        }
        if sig == b"SWAP-SPACE" {
            // Version 0 has neither label nor UUID.
            let mut info = FsInfo::new(FsKind::Swap);
            info.version = Some("0".into());
            info.block_size = page as u32;
            info.cluster_size = page as u32;
            info.size = io.len();
            return Ok(Some(info));
        }
        if sig != b"SWAPSPACE2" {
            continue;
        }
        let Some(h) = read_opt(io, 1024, SWAP_HEADER_LEN)? else {
            return Ok(None);
        };
        // The header is in the byte order of the machine that wrote it.
        let last_page = match le32(&h, 0) {
            1 => le32(&h, 4),
            0x0100_0000 => be32(&h, 4),
            _ => continue,
        };
        if last_page == 0 {
            continue;
        }
        return Ok(Some(swap_info(
            io,
            page,
            FsKind::Swap,
            "1",
            Some(last_page),
        )?));
    }
    Ok(None)
}

/// The version 1 header after the first KiB: version, last page, bad pages, UUID, label, and the
/// padding libblkid checks before it trusts the UUID and label.
const SWAP_HEADER_LEN: usize = 44 + 4 * 34;

/// A swap or hibernation area whose signature sits at the end of a `page`-byte first page;
/// `last_page` from a version 1 header sets the size (else the area spans the partition).
fn swap_info(
    io: &dyn BlockIo,
    page: u64,
    kind: FsKind,
    version: &str,
    last_page: Option<u32>,
) -> Result<FsInfo, ProbeError> {
    let mut info = FsInfo::new(kind);
    info.version = Some(version.into());
    info.block_size = page as u32;
    info.cluster_size = page as u32;
    info.size = match last_page {
        Some(last) => (u64::from(last) + 1) * page,
        None => io.len(),
    };
    if kind == FsKind::Swsuspend {
        info.state = Some("hibernation image".into());
    }
    if let Some(h) = read_opt(io, 1024, SWAP_HEADER_LEN)? {
        // Like libblkid: garbage in the padding means the UUID and label are not trusted.
        if le32(&h, 44 + 4 * 32) == 0 && le32(&h, 44 + 4 * 33) == 0 {
            info.uuid = uuid_string(slice(&h, 12, 16));
            info.label = label_from_bytes(slice(&h, 28, 16));
        }
    }
    Ok(info)
}

fn probe_iso9660(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    let mut primary: Option<Vec<u8>> = None;
    let mut joliet: Option<Vec<u8>> = None;
    // Volume descriptors start at sector 16 (of 2048 bytes); the set ends with type 255. Like
    // libblkid, the first primary and the first Joliet supplementary descriptor count.
    for n in 0..ISO_MAX_DESCRIPTORS {
        let Some(vd) = read_opt(io, 32768 + n * 2048, 2048)? else {
            break;
        };
        if slice(&vd, 1, 5) != b"CD001" {
            break;
        }
        match u8_at(&vd, 0) {
            1 if primary.is_none() => primary = Some(vd),
            2 if joliet.is_none() && matches!(slice(&vd, 88, 3), b"%/@" | b"%/C" | b"%/E") => {
                joliet = Some(vd);
            }
            255 => break,
            _ => {}
        }
    }
    let Some(pvd) = primary else { return Ok(None) };
    let block = le16(&pvd, 128);
    if !is_pow2_in(u64::from(block), 512, 2048) {
        return Ok(None);
    }
    // The root directory's first record must be "." pointing at itself: a stray "CD001" (an
    // .iso file stored on another file system) is not a CD.
    let root_lba = le32(&pvd, 156 + 2);
    let root_len = le32(&pvd, 156 + 10);
    if root_len < 34 {
        return Ok(None);
    }
    let Some(root) = read_opt(
        io,
        u64::from(root_lba) * u64::from(block),
        root_len.min(2048) as usize,
    )?
    else {
        return Ok(None);
    };
    if u8_at(&root, 0) < 34
        || u8_at(&root, 32) != 1
        || u8_at(&root, 33) != 0
        || le32(&root, 2) != root_lba
    {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsKind::Iso9660);
    let pvd_label = slice(&pvd, 40, 32);
    info.label = match &joliet {
        Some(j) => {
            let units = utf16be_units(slice(j, 40, 32));
            let merged = merge_joliet(&units, pvd_label);
            label_from_utf16(merged.as_deref().unwrap_or(&units))
        }
        None => label_from_bytes(pvd_label),
    };
    if joliet.is_some() {
        info.version = Some("Joliet Extension".into());
    }
    info.block_size = u32::from(block);
    info.cluster_size = u32::from(block);
    info.size = u64::from(le32(&pvd, 80)) * u64::from(block);
    // blkid names the volume by its modification date, else (when that is unset) its creation
    // date.
    info.uuid = match iso_date(slice(&pvd, 830, 17)) {
        IsoDate::Unset => match iso_date(slice(&pvd, 813, 17)) {
            IsoDate::Unset => None,
            IsoDate::Set(uuid) => uuid,
        },
        IsoDate::Set(uuid) => uuid,
    };
    Ok(Some(info))
}

/// Volume descriptors read at most (as libblkid).
const ISO_MAX_DESCRIPTORS: u64 = 16;

/// The Joliet label holds 16 UTF-16 characters, the primary one 32 characters of a subset of
/// ASCII with `_` for anything else. When the Joliet label is a prefix of the primary one
/// (ignoring case and `_`), libblkid reconstructs the long label: the Joliet characters, then
/// the rest of the primary label. `None` when they do not match.
fn merge_joliet(joliet: &[u16], ascii: &[u8]) -> Option<Vec<u16>> {
    let mut out = Vec::with_capacity(ascii.len() + 2);
    let (mut u, mut a) = (0, 0);
    while u < joliet.len() && a < ascii.len() {
        // A surrogate pair stands for one character of the primary label.
        if (0xD800..0xDC00).contains(&joliet[u])
            && joliet
                .get(u + 1)
                .is_some_and(|l| (0xDC00..0xE000).contains(l))
        {
            out.push(joliet[u]);
            u += 1;
        }
        let (j, c) = (joliet[u], ascii[a]);
        if c == b'_' {
            out.push(j);
        } else if j == u16::from(b'_') {
            out.push(u16::from(c));
        } else if j < 0x100 && c.eq_ignore_ascii_case(&(j as u8)) {
            out.push(if c.is_ascii_uppercase() {
                j
            } else {
                u16::from(c)
            });
        } else {
            return None;
        }
        u += 1;
        a += 1;
    }
    out.extend(ascii[a..].iter().map(|&c| u16::from(c)));
    Some(out)
}

/// A volume date as libblkid turns it into a UUID.
enum IsoDate {
    /// All digits `'0'` and no time-zone offset: the next date is tried.
    Unset,
    /// `YYYY-MM-DD-HH-MM-SS-cc`, or `None` when the field is not text (blkid sets no UUID then
    /// and does not try the next date either).
    Set(Option<String>),
}

/// `YYYYMMDDHHMMSScc` plus a time-zone byte.
fn iso_date(raw: &[u8]) -> IsoDate {
    let digits = slice(raw, 0, 16);
    if digits.len() != 16 {
        return IsoDate::Set(None);
    }
    if digits.iter().all(|&c| c == b'0') && u8_at(raw, 16) == 0 {
        return IsoDate::Unset;
    }
    if !digits.iter().all(u8::is_ascii_graphic) {
        return IsoDate::Set(None);
    }
    let s: String = digits.iter().map(|&c| char::from(c)).collect();
    IsoDate::Set(Some(format!(
        "{}-{}-{}-{}-{}-{}-{}",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[8..10],
        &s[10..12],
        &s[12..14],
        &s[14..16]
    )))
}

/// XFS log record headers (`xlog_rec_header`) are looked for in this many first bytes.
const XFS_LOG_SCAN: usize = 256 * 1024;
/// libblkid ignores anything smaller as an external log.
const XFS_LOG_MIN_SIZE: u64 = 10 << 20;

/// An XFS external log device: a valid log record header in one of the first 512 sectors (and
/// no XFS superblock before it, which would make it a file system with a shifted start).
fn probe_xfs_log(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    if io.len() < XFS_LOG_MIN_SIZE {
        return Ok(None);
    }
    let Some(buf) = read_opt(io, 0, XFS_LOG_SCAN)? else {
        return Ok(None);
    };
    for sector in buf.chunks_exact(512) {
        if slice(sector, 0, 4) == b"XFSB" {
            return Ok(None);
        }
        let version = be32(sector, 8);
        let valid = be32(sector, 0) == 0xFEED_BABE
            && version != 0
            && version & !3 == 0
            && (1..=0x7FFF_FFFF).contains(&be32(sector, 12))
            && (1..=3).contains(&be32(sector, 300));
        if valid {
            let mut info = FsInfo::new(FsKind::XfsExternalLog);
            info.block_size = 512;
            info.cluster_size = 512;
            info.size = io.len();
            return Ok(Some(info));
        }
    }
    Ok(None)
}
