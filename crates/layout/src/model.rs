//! The partition-table model: what [`crate::read`] finds and what a [`crate::TablePlan`] writes.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The partition table of one disk, as read (or as planned for a target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The device or file the table was read from, for messages.
    pub device: String,
    /// Size of the disk in bytes.
    pub disk_size: u64,
    /// The logical sector size the table's LBAs are counted in.
    pub sector_size: u32,
    /// The sector size the device reported (differs from `sector_size` when a 4K-sector image
    /// file was recognised through a 512-byte view, or the other way round).
    pub device_sector_size: u32,
    /// Which kind of table, with its table-wide facts.
    pub kind: TableKind,
    /// The partitions, sorted by number.
    pub partitions: Vec<Partition>,
    /// The first 440 bytes of LBA 0 (boot code) when LBA 0 carries the 0x55AA signature, else
    /// empty.
    pub boot_code: Vec<u8>,
    /// Problems found that did not stop the reading.
    pub warnings: Vec<Warning>,
}

/// The kind of partition table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableKind {
    /// A GUID partition table.
    Gpt(GptInfo),
    /// A classic MBR (DOS) table, possibly with an EBR chain of logical partitions.
    Mbr(MbrInfo),
    /// No partition table (an empty disk, or a bare file system).
    None,
}

/// Table-wide facts of a GPT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GptInfo {
    pub disk_guid: Uuid,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    /// Always 1 for the primary header.
    pub primary_header_lba: u64,
    /// Where the backup header is (or, when it is missing, where the primary says it should be).
    pub backup_header_lba: u64,
    pub primary_entries_lba: u64,
    pub backup_entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    pub health: GptHealth,
    /// LBA 0: the protective (or hybrid) MBR, when it carries the 0x55AA signature.
    pub mbr: Option<MbrInfo>,
}

impl GptInfo {
    /// Sectors taken by one copy of the entries array.
    pub fn entries_sectors(&self, sector_size: u32) -> u64 {
        entries_sectors(self.entry_count, self.entry_size, sector_size)
    }
}

/// Sectors needed for `count` entries of `size` bytes.
pub(crate) fn entries_sectors(count: u32, size: u32, sector_size: u32) -> u64 {
    let bytes = u64::from(count) * u64::from(size);
    bytes.div_ceil(u64::from(sector_size.max(1)))
}

/// The state of both GPT copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GptHealth {
    pub primary: HeaderStatus,
    pub backup: HeaderStatus,
    /// Which copy the partitions were taken from.
    pub used: GptCopy,
    /// Both copies are valid but describe different tables (the primary is used).
    pub copies_differ: bool,
}

impl GptHealth {
    /// Both copies present, valid, in place and equal.
    pub fn is_ok(&self) -> bool {
        self.primary == HeaderStatus::Ok && self.backup == HeaderStatus::Ok && !self.copies_differ
    }
}

impl fmt::Display for GptHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(f, "primary and backup GPT ok");
        }
        write!(
            f,
            "primary GPT {}; backup GPT {}",
            self.primary, self.backup
        )?;
        if self.used == GptCopy::Backup {
            write!(f, "; partitions recovered from the backup GPT")?;
        }
        if self.copies_differ {
            write!(f, "; primary and backup GPT differ (primary used)")?;
        }
        Ok(())
    }
}

/// One of the two GPT copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GptCopy {
    Primary,
    Backup,
}

/// The state of one GPT header with its entries array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeaderStatus {
    /// Valid and where it belongs.
    Ok,
    /// Unusable.
    Damaged(GptDamage),
    /// Valid, but not at the last LBA (the disk grew, or the image was copied to a larger disk).
    Misplaced { lba: u64, expected_lba: u64 },
}

impl fmt::Display for HeaderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderStatus::Ok => write!(f, "ok"),
            HeaderStatus::Damaged(d) => write!(f, "damaged: {d}"),
            HeaderStatus::Misplaced { lba, expected_lba } => write!(
                f,
                "valid but misplaced at LBA {lba} instead of the last LBA {expected_lba} (the disk grew?)"
            ),
        }
    }
}

/// Why a GPT copy is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GptDamage {
    /// The sector could not be read.
    Unreadable { lba: u64, error: String },
    /// No "EFI PART" signature.
    BadSignature { lba: u64 },
    /// The header checksum does not match.
    HeaderCrc {
        lba: u64,
        stored: u32,
        computed: u32,
    },
    /// The entries array checksum does not match.
    EntriesCrc {
        lba: u64,
        stored: u32,
        computed: u32,
    },
    /// A field is out of range.
    BadFields { lba: u64, reason: String },
}

impl fmt::Display for GptDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GptDamage::Unreadable { lba, error } => write!(f, "LBA {lba} unreadable ({error})"),
            GptDamage::BadSignature { lba } => write!(f, "no GPT signature at LBA {lba}"),
            GptDamage::HeaderCrc { lba, stored, computed } => write!(
                f,
                "header checksum mismatch at LBA {lba} (stored {stored:#010x}, computed {computed:#010x})"
            ),
            GptDamage::EntriesCrc { lba, stored, computed } => write!(
                f,
                "partition entries checksum mismatch at LBA {lba} (stored {stored:#010x}, computed {computed:#010x})"
            ),
            GptDamage::BadFields { lba, reason } => write!(f, "invalid header at LBA {lba}: {reason}"),
        }
    }
}

/// Facts of an MBR in LBA 0 (a classic one, or the protective/hybrid MBR of a GPT disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbrInfo {
    /// The 32-bit disk signature at byte 440.
    pub disk_signature: u32,
    pub protection: Protection,
    /// The four primary entries as stored.
    pub entries: [MbrEntry; 4],
    /// The EBR chain, in chain order (empty without an extended partition).
    pub ebrs: Vec<Ebr>,
}

/// Whether an MBR protects a GPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protection {
    /// No 0xEE entry: a classic MBR.
    None,
    /// A single 0xEE entry; `covers_disk` when it reaches the end of the disk (or 2 TiB).
    Protective { covers_disk: bool },
    /// A 0xEE entry plus other entries (a hybrid MBR, as made by `gdisk`'s `h` command).
    Hybrid,
}

/// One 16-byte entry of an MBR or EBR (CHS values are recomputed on write).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbrEntry {
    /// 0x80 bootable, 0x00 not.
    pub boot_indicator: u8,
    pub kind: u8,
    pub start_lba: u32,
    pub sectors: u32,
}

impl MbrEntry {
    pub fn is_empty(&self) -> bool {
        self.kind == 0 || self.sectors == 0
    }
}

/// One extended boot record of the logical-partition chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ebr {
    /// Where the EBR sector is.
    pub lba: u64,
    /// The logical partition it describes (None for an empty EBR, as left by some tools when the
    /// first logical partition is deleted).
    pub logical: Option<u32>,
    /// Its first 446 bytes when any is non-zero (kept on copies), else empty.
    pub boot_code: Vec<u8>,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// GPT: entry index + 1. MBR: 1–4 primary slots, 5 and up logical partitions in chain order.
    pub number: u32,
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
    /// Start in bytes.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    pub kind: PartitionType,
    /// GPT unique partition GUID.
    pub guid: Option<Uuid>,
    /// GPT partition name (UTF-16LE decoded), empty for MBR.
    pub name: String,
    /// GPT attribute bits (0 for MBR).
    pub attributes: u64,
    /// MBR boot indicator 0x80.
    pub bootable: bool,
    /// An MBR logical partition (inside the extended partition).
    pub is_logical: bool,
    /// The MBR extended container itself: it holds the EBR chain, not a file system; never image
    /// it as one.
    pub is_extended: bool,
}

impl Partition {
    /// End in bytes (exclusive).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }

    /// Sector count.
    pub fn sectors(&self) -> u64 {
        self.last_lba
            .saturating_sub(self.first_lba)
            .saturating_add(1)
    }
}

/// A partition type: a GPT type GUID or an MBR type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionType {
    Gpt(Uuid),
    Mbr(u8),
}

/// Well-known GPT partition type GUIDs.
pub mod gpt_types {
    use uuid::{uuid, Uuid};

    pub const EFI_SYSTEM: Uuid = uuid!("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    pub const MICROSOFT_BASIC_DATA: Uuid = uuid!("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7");
    pub const MICROSOFT_RESERVED: Uuid = uuid!("e3c9e316-0b5c-4db8-817d-f92df00215ae");
    pub const WINDOWS_RECOVERY: Uuid = uuid!("de94bba4-06d1-4d40-a16a-bfd50179d6ac");
    pub const LINUX_FILESYSTEM: Uuid = uuid!("0fc63daf-8483-4772-8e79-3d69d8477de4");
    pub const LINUX_SWAP: Uuid = uuid!("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f");
    pub const LINUX_LVM: Uuid = uuid!("e6d6d379-f507-44c2-a23c-238f2a3df928");
    pub const LINUX_RAID: Uuid = uuid!("a19d880f-05fc-4d3b-a006-743f0f84911e");
    pub const BIOS_BOOT: Uuid = uuid!("21686148-6449-6e6f-744e-656564454649");
    pub const LINUX_ROOT_X86_64: Uuid = uuid!("4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
    pub const APPLE_HFS: Uuid = uuid!("48465300-0000-11aa-aa11-00306543ecac");

    pub(crate) const NAMES: &[(Uuid, &str)] = &[
        (EFI_SYSTEM, "EFI System"),
        (MICROSOFT_BASIC_DATA, "Microsoft basic data"),
        (MICROSOFT_RESERVED, "Microsoft reserved"),
        (WINDOWS_RECOVERY, "Windows recovery"),
        (LINUX_FILESYSTEM, "Linux filesystem"),
        (LINUX_SWAP, "Linux swap"),
        (LINUX_LVM, "Linux LVM"),
        (LINUX_RAID, "Linux RAID"),
        (BIOS_BOOT, "BIOS boot"),
        (LINUX_ROOT_X86_64, "Linux root x86-64"),
        (APPLE_HFS, "Apple HFS"),
        (uuid!("933ac7e1-2eb4-4f13-b844-0e14e2aef915"), "Linux home"),
        (
            uuid!("bc13c2ff-59e6-4262-a352-b275fd6f7172"),
            "Linux extended boot",
        ),
        (uuid!("ca7d7ccb-63ed-4c53-861c-1742536059cc"), "Linux LUKS"),
        (
            uuid!("44479540-f297-41b2-9af7-d131d5f0458a"),
            "Linux root x86",
        ),
        (
            uuid!("b921b045-1df0-41c3-af44-4c6f280d3fae"),
            "Linux root arm64",
        ),
        (
            uuid!("5808c8aa-7e8f-42e0-85d2-e1e90434cfb3"),
            "Microsoft LDM metadata",
        ),
        (
            uuid!("af9b60a0-1431-4f62-bc68-3311714a69ad"),
            "Microsoft LDM data",
        ),
        (
            uuid!("e75caf8f-f680-4cee-afa3-b001e56efc2d"),
            "Microsoft storage spaces",
        ),
        (uuid!("7c3457ef-0000-11aa-aa11-00306543ecac"), "Apple APFS"),
        (uuid!("426f6f74-0000-11aa-aa11-00306543ecac"), "Apple boot"),
        (
            uuid!("516e7cb4-6ecf-11d6-8ff8-00022d09712b"),
            "FreeBSD data",
        ),
        (uuid!("516e7cb6-6ecf-11d6-8ff8-00022d09712b"), "FreeBSD UFS"),
        (uuid!("516e7cba-6ecf-11d6-8ff8-00022d09712b"), "FreeBSD ZFS"),
        (uuid!("6a898cc3-1dd2-11b2-99a6-080020736631"), "ZFS"),
        (
            uuid!("024dee41-33e7-11d3-9d69-0008c781f39f"),
            "MBR partition scheme",
        ),
    ];
}

/// Names of MBR partition type bytes (as fdisk names them).
const MBR_NAMES: &[(u8, &str)] = &[
    (0x01, "FAT12"),
    (0x04, "FAT16 <32M"),
    (0x05, "Extended"),
    (0x06, "FAT16"),
    (0x07, "HPFS/NTFS/exFAT"),
    (0x0b, "W95 FAT32"),
    (0x0c, "W95 FAT32 (LBA)"),
    (0x0e, "W95 FAT16 (LBA)"),
    (0x0f, "W95 Extended (LBA)"),
    (0x11, "Hidden FAT12"),
    (0x12, "Compaq diagnostics"),
    (0x14, "Hidden FAT16 <32M"),
    (0x16, "Hidden FAT16"),
    (0x17, "Hidden HPFS/NTFS"),
    (0x1b, "Hidden W95 FAT32"),
    (0x1c, "Hidden W95 FAT32 (LBA)"),
    (0x1e, "Hidden W95 FAT16 (LBA)"),
    (0x27, "Hidden NTFS WinRE"),
    (0x42, "SFS (Windows dynamic)"),
    (0x82, "Linux swap"),
    (0x83, "Linux"),
    (0x85, "Linux extended"),
    (0x8e, "Linux LVM"),
    (0xa5, "FreeBSD"),
    (0xa6, "OpenBSD"),
    (0xa8, "Darwin UFS"),
    (0xa9, "NetBSD"),
    (0xaf, "HFS/HFS+"),
    (0xbf, "Solaris"),
    (0xda, "Non-FS data"),
    (0xde, "Dell Utility"),
    (0xea, "Linux extended boot"),
    (0xee, "GPT protective"),
    (0xef, "EFI System"),
    (0xfb, "VMware VMFS"),
    (0xfd, "Linux RAID autodetect"),
];

/// MBR type bytes of extended (container) partitions.
pub(crate) fn is_extended_type(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0f | 0x85)
}

impl PartitionType {
    /// A friendly name for common types, `None` for unknown ones.
    pub fn name(&self) -> Option<&'static str> {
        match self {
            PartitionType::Gpt(g) => gpt_types::NAMES
                .iter()
                .find(|(u, _)| u == g)
                .map(|(_, n)| *n),
            PartitionType::Mbr(b) => MBR_NAMES.iter().find(|(t, _)| t == b).map(|(_, n)| *n),
        }
    }
}

impl fmt::Display for PartitionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name().unwrap_or("unknown");
        match self {
            PartitionType::Gpt(g) => {
                write!(f, "{name} ({})", g.hyphenated().to_string().to_uppercase())
            }
            PartitionType::Mbr(b) => write!(f, "{name} (0x{b:02x})"),
        }
    }
}

/// A problem found while reading a table that did not stop the reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Warning {
    /// The device reports one sector size but the table uses another.
    SectorSizeDiffers { device: u32, table: u32 },
    /// A GPT disk without a protective MBR in LBA 0.
    NoProtectiveMbr,
    /// A partition reaches past the end of the disk.
    PastDiskEnd {
        number: u32,
        end: u64,
        disk_size: u64,
    },
    /// Two partitions overlap.
    Overlap { a: u32, b: u32 },
    /// A GPT partition lies outside the usable area of the table.
    OutsideUsable { number: u32 },
    /// A GPT entry or MBR slot that cannot be a partition (ignored).
    InvalidEntry { number: u32, reason: String },
    /// A logical partition reaches outside its extended partition.
    LogicalOutsideExtended { number: u32 },
    /// The EBR chain leads back to an EBR already seen (the chain is cut there).
    EbrLoop { lba: u64 },
    /// The EBR chain points outside the extended partition (the chain is cut there).
    EbrOutsideExtended { lba: u64 },
    /// An EBR without the 0x55AA signature or unreadable (the chain is cut there).
    EbrUnreadable { lba: u64, reason: String },
    /// More logical partitions than the reader accepts (the chain is cut there).
    TooManyLogical { limit: usize },
    /// A GPT header (primary at LBA 1 or backup at the end) on a disk whose LBA 0 holds no
    /// protective MBR (a classic MBR with partitions, or a file system made over a former GPT
    /// disk): ignored, as the Linux kernel and libblkid ignore it. [`crate::recover_gpt`] reads
    /// it on request.
    StaleGpt { lba: u64 },
    /// A data entry in slot 2–4 of an EBR (ignored; only slot 1 holds the logical partition).
    EbrExtraEntry { lba: u64, slot: usize },
    /// More than one extended partition in the MBR (only the first is followed).
    SeveralExtended,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::SectorSizeDiffers { device, table } => write!(
                f,
                "the device reports {device}-byte sectors but the partition table uses {table}-byte sectors"
            ),
            Warning::NoProtectiveMbr => write!(f, "GPT disk without a protective MBR in LBA 0"),
            Warning::PastDiskEnd { number, end, disk_size } => write!(
                f,
                "partition {number} ends at byte {end}, past the end of the disk ({disk_size} bytes)"
            ),
            Warning::Overlap { a, b } => write!(f, "partitions {a} and {b} overlap"),
            Warning::OutsideUsable { number } => {
                write!(f, "partition {number} lies outside the usable area of the GPT")
            }
            Warning::InvalidEntry { number, reason } => {
                write!(f, "partition entry {number} ignored: {reason}")
            }
            Warning::LogicalOutsideExtended { number } => {
                write!(f, "logical partition {number} reaches outside its extended partition")
            }
            Warning::EbrLoop { lba } => {
                write!(f, "the logical partition chain loops back to LBA {lba}; chain cut there")
            }
            Warning::EbrOutsideExtended { lba } => write!(
                f,
                "the logical partition chain points to LBA {lba}, outside the extended partition; chain cut there"
            ),
            Warning::EbrUnreadable { lba, reason } => {
                write!(f, "extended boot record at LBA {lba} unusable ({reason}); chain cut there")
            }
            Warning::TooManyLogical { limit } => {
                write!(f, "more than {limit} logical partitions; chain cut there")
            }
            Warning::StaleGpt { lba } => write!(
                f,
                "a leftover GPT header at LBA {lba} is ignored (LBA 0 holds no protective MBR)"
            ),
            Warning::EbrExtraEntry { lba, slot } => write!(
                f,
                "a data entry in slot {slot} of the extended boot record at LBA {lba} is ignored"
            ),
            Warning::SeveralExtended => {
                write!(f, "several extended partitions; only the first one's logical partitions are read")
            }
        }
    }
}
