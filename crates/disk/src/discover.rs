//! Which disks this machine has, what they are, and whether they are in use: read from `/sys`,
//! `/proc/self/mountinfo`, `/proc/swaps` and Lifeboat's `/run/lifeboat/boot-device`.
//!
//! All paths come from a [`SysRoot`], so tests run against a fake tree. A fact that cannot be
//! read (a missing attribute, odd bytes) becomes `None` and never fails the whole discovery; only
//! an unreadable device list or mount table does, because without them nothing can be said about
//! what is safe to overwrite.

use crate::mounts::{parse_mountinfo, parse_swaps, MountEntry, SwapEntry};
use serde::{Serialize, Serializer};
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Where the kernel's views live: `/sys`, `/proc`, `/dev` and `/run` on a running system, a
/// temporary directory in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot {
    /// sysfs, normally `/sys`.
    pub sys: PathBuf,
    /// procfs, normally `/proc`.
    pub proc: PathBuf,
    /// The device nodes, normally `/dev`.
    pub dev: PathBuf,
    /// Runtime state, normally `/run` (Lifeboat's init writes `lifeboat/boot-device` there).
    pub run: PathBuf,
}

impl Default for SysRoot {
    fn default() -> Self {
        SysRoot {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
            dev: PathBuf::from("/dev"),
            run: PathBuf::from("/run"),
        }
    }
}

impl SysRoot {
    /// `base/sys`, `base/proc`, `base/dev` and `base/run`: a fake tree for tests.
    pub fn under(base: impl AsRef<Path>) -> Self {
        let base = base.as_ref();
        SysRoot {
            sys: base.join("sys"),
            proc: base.join("proc"),
            dev: base.join("dev"),
            run: base.join("run"),
        }
    }
}

/// What [`discover`] looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Also list loop devices (those with a backing file), RAM disks and zram.
    pub include_virtual: bool,
    /// Open each device read-only to ask its size with `BLKGETSIZE64` (needs root; a failure
    /// keeps the size from sysfs).
    pub open_devices: bool,
}

/// A device number, `major:minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DevNum {
    /// Major number (the driver).
    pub major: u32,
    /// Minor number (the device of that driver).
    pub minor: u32,
}

impl DevNum {
    /// Splits a `dev_t` (`st_rdev`) the way glibc and musl encode it.
    pub fn from_dev_t(dev: u64) -> Self {
        let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
        let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
        DevNum {
            major: major as u32,
            minor: minor as u32,
        }
    }

    /// Parses `8:1` (surrounding white space allowed).
    pub fn parse(text: &str) -> Option<Self> {
        let (major, minor) = text.trim().split_once(':')?;
        Some(DevNum {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// How a disk is attached, decided from its place in the sysfs device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// NVMe.
    Nvme,
    /// Serial ATA (AHCI or another SATA controller).
    Sata,
    /// Parallel ATA / IDE, or a libata controller that does not say it is SATA.
    Ata,
    /// USB mass storage (including UAS), whatever the disk inside the enclosure is.
    Usb,
    /// virtio (virtio-blk, virtio-scsi).
    Virtio,
    /// Other SCSI: SAS, Fibre Channel, iSCSI, hardware RAID.
    Scsi,
    /// SD/MMC cards and eMMC.
    Mmc,
    /// No hardware: loop, device mapper, software RAID, RAM disks.
    Virtual,
    /// Anything else (Xen, network block devices, ...).
    Unknown,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Nvme => "nvme",
            Transport::Sata => "sata",
            Transport::Ata => "ata",
            Transport::Usb => "usb",
            Transport::Virtio => "virtio",
            Transport::Scsi => "scsi",
            Transport::Mmc => "mmc",
            Transport::Virtual => "virtual",
            Transport::Unknown => "unknown",
        })
    }
}

/// What sort of block device it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceKind {
    /// A disk (or card, or stick).
    Disk,
    /// A CD/DVD/BD drive.
    Optical,
    /// A loop device and the file behind it.
    Loop {
        /// The backing file, as the kernel reports it.
        #[serde(serialize_with = "lossy_path")]
        backing_file: PathBuf,
    },
    /// A device-mapper device: LVM volume, LUKS mapping, multipath, ...
    DeviceMapper {
        /// `dm/name`, e.g. `vg-root`.
        name: Option<String>,
        /// `dm/uuid`, e.g. `LVM-...` or `CRYPT-LUKS2-...`.
        uuid: Option<String>,
    },
    /// A software RAID (md) array.
    Raid {
        /// `md/level`, e.g. `raid1`.
        level: Option<String>,
        /// `md/array_state`: `readonly` (as Lifeboat's init assembles arrays), `read-auto`,
        /// `clean`, `active`, `inactive`, ...
        state: Option<String>,
        /// `md/raid_disks`: the devices the array is made of.
        raid_disks: Option<u32>,
        /// `md/degraded`: how many of them are missing.
        degraded: Option<u32>,
        /// `md/uuid`: the array's UUID as the kernel prints it.
        uuid: Option<String>,
    },
    /// A RAM disk or zram device.
    Ram,
}

/// A partition of a [`BlockDevice`], as the kernel sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Kernel name, e.g. `sda1`, `nvme0n1p2`.
    pub name: String,
    /// Device node, e.g. `/dev/sda1`.
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// Partition number (`partition`).
    pub number: Option<u32>,
    /// Device number (`dev`).
    pub dev: Option<DevNum>,
    /// Start on the disk in bytes.
    pub start: Option<u64>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Where it is mounted (empty when not mounted).
    #[serde(serialize_with = "lossy_paths")]
    pub mount_points: Vec<PathBuf>,
    /// True when it is an active swap area.
    pub swap: bool,
    /// Devices built on it (`holders/`), e.g. `dm-0`, `md127`.
    pub holders: Vec<String>,
}

/// A whole block device and what the kernel knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockDevice {
    /// Kernel name, e.g. `sda`, `nvme0n1`, `vda`, `dm-0`.
    pub name: String,
    /// Device node, e.g. `/dev/sda`.
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// Device number (`dev`).
    pub dev: Option<DevNum>,
    /// What sort of device it is.
    pub kind: DeviceKind,
    /// How it is attached.
    pub transport: Transport,
    /// Model name, trimmed.
    pub model: Option<String>,
    /// Vendor name, trimmed (`ATA` for disks behind libata).
    pub vendor: Option<String>,
    /// Serial number, trimmed.
    pub serial: Option<String>,
    /// World-wide name or other unique id, e.g. `naa.5000c500a1b2c3d4`, `eui.0025385b71b0a1c2`.
    pub wwn: Option<String>,
    /// Size in bytes; 0 for a drive without medium (an empty card reader) or when unknown.
    pub size: u64,
    /// Logical sector size in bytes (the unit of partition-table LBAs); 512 when unknown.
    pub logical_sector_size: u32,
    /// Physical sector size in bytes; the logical size when unknown.
    pub physical_sector_size: u32,
    /// Spinning disk (`queue/rotational`).
    pub rotational: Option<bool>,
    /// Removable medium (`removable`).
    pub removable: Option<bool>,
    /// Write-protected (`ro`).
    pub read_only: Option<bool>,
    /// Accepts discard/TRIM (`queue/discard_max_bytes` > 0).
    pub discard: Option<bool>,
    /// Partitions, by number.
    pub partitions: Vec<Partition>,
    /// Where the whole device is mounted (a file system without partition table).
    #[serde(serialize_with = "lossy_paths")]
    pub mount_points: Vec<PathBuf>,
    /// True when the whole device is an active swap area.
    pub swap: bool,
    /// Devices built on the whole device (`holders/`).
    pub holders: Vec<String>,
    /// Devices this one is built on (`slaves/`), for device-mapper and RAID devices.
    pub slaves: Vec<String>,
    /// True when it holds `/`, or the medium Lifeboat booted from, directly or through a
    /// device built on it.
    pub is_boot_medium: bool,
}

/// One reason why a device must not be written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum UseReason {
    /// It holds the running system or the medium Lifeboat booted from.
    BootMedium {
        /// The disk.
        device: String,
    },
    /// The disk or one of its partitions is mounted.
    Mounted {
        /// The disk or partition.
        device: String,
        /// Where.
        #[serde(serialize_with = "lossy_path")]
        mount_point: PathBuf,
    },
    /// The disk or one of its partitions is an active swap area.
    Swap {
        /// The disk or partition.
        device: String,
    },
    /// Another block device (LVM, LUKS, RAID) is built on the disk or one of its partitions.
    HeldBy {
        /// The disk or partition.
        device: String,
        /// The device built on it, e.g. `dm-0`.
        holder: String,
    },
}

impl fmt::Display for UseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UseReason::BootMedium { device } => {
                write!(
                    f,
                    "{device} holds the running system or the medium Lifeboat booted from"
                )
            }
            UseReason::Mounted {
                device,
                mount_point,
            } => {
                write!(f, "{device} is mounted at {}", mount_point.display())
            }
            UseReason::Swap { device } => write!(f, "{device} is in use as swap"),
            UseReason::HeldBy { device, holder } => write!(f, "{device} is held by {holder}"),
        }
    }
}

impl BlockDevice {
    /// Everything that makes the device unsafe to write, disk first, then partitions.
    pub fn in_use_reasons(&self) -> Vec<UseReason> {
        let mut reasons = Vec::new();
        if self.is_boot_medium {
            reasons.push(UseReason::BootMedium {
                device: self.name.clone(),
            });
        }
        let parts = self
            .partitions
            .iter()
            .map(|p| (&p.name, &p.mount_points, p.swap, &p.holders));
        for (device, mounts, swap, holders) in
            std::iter::once((&self.name, &self.mount_points, self.swap, &self.holders)).chain(parts)
        {
            for m in mounts {
                reasons.push(UseReason::Mounted {
                    device: device.clone(),
                    mount_point: m.clone(),
                });
            }
            if swap {
                reasons.push(UseReason::Swap {
                    device: device.clone(),
                });
            }
            for h in holders {
                reasons.push(UseReason::HeldBy {
                    device: device.clone(),
                    holder: h.clone(),
                });
            }
        }
        reasons
    }

    /// Why the device must not be written (`sda1 is mounted at /boot; sda2 is in use as swap`),
    /// or `None` when nothing uses it.
    pub fn in_use(&self) -> Option<String> {
        let reasons = self.in_use_reasons();
        if reasons.is_empty() {
            None
        } else {
            Some(
                reasons
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }
    }

    /// Model, serial and size in one line, shown when asking to confirm that the device may be
    /// overwritten and stored in images: `Samsung SSD 870 EVO 1TB, serial S6PU..., 1.0 TB`.
    pub fn identity(&self) -> String {
        crate::text::identity(
            self.vendor.as_deref(),
            self.model.as_deref(),
            self.serial.as_deref(),
            Some(self.size),
        )
    }

    /// True for an md array the kernel runs read-only (`readonly`: how Lifeboat's init assembles
    /// them); it cannot be written until `mdadm --readwrite` makes it writable.
    pub fn is_read_only_array(&self) -> bool {
        matches!(&self.kind, DeviceKind::Raid { state: Some(s), .. } if s == "readonly")
    }

    /// True for loop, device-mapper, RAID and RAM devices.
    pub fn is_virtual(&self) -> bool {
        !matches!(self.kind, DeviceKind::Disk | DeviceKind::Optical)
    }
}

/// Why [`discover`] failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The list of block devices could not be read (is sysfs mounted?).
    #[error("cannot list block devices in {path}: {source}")]
    ListDevices {
        /// The directory, e.g. `/sys/block`.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// The mount table could not be read (is procfs mounted?): without it nothing can be said
    /// about which disks are safe to write.
    #[error("cannot read the mount table {path}: {source}")]
    MountTable {
        /// The file, e.g. `/proc/self/mountinfo`.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// The swap table exists but could not be read.
    #[error("cannot read the swap table {path}: {source}")]
    SwapTable {
        /// The file, e.g. `/proc/swaps`.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
}

/// Lists the block devices of the machine described by `root`, sorted by name (`sda` < `sdb` <
/// `sdaa`, `nvme0n1` < `nvme1n1`).
///
/// Loop devices without a backing file are never listed; loop, RAM and zram devices only with
/// [`DiscoverOptions::include_virtual`]; device-mapper and md devices always (marked
/// [`Transport::Virtual`]), since they are what holds partitions of real disks.
pub fn discover(root: &SysRoot, opts: &DiscoverOptions) -> Result<Vec<BlockDevice>, DiscoverError> {
    let block_dir = root.sys.join("block");
    let entries = fs::read_dir(&block_dir).map_err(|source| DiscoverError::ListDevices {
        path: block_dir.clone(),
        source,
    })?;
    let mountinfo_path = root.proc.join("self/mountinfo");
    let mounts = fs::read(&mountinfo_path)
        .map(|d| parse_mountinfo(&d))
        .map_err(|source| DiscoverError::MountTable {
            path: mountinfo_path,
            source,
        })?;
    let swaps_path = root.proc.join("swaps");
    let swaps = match fs::read(&swaps_path) {
        Ok(d) => parse_swaps(&d),
        // A kernel without swap support has no /proc/swaps.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(DiscoverError::SwapTable {
                path: swaps_path,
                source,
            })
        }
    };
    let usage = Usage::new(root, &mounts, &swaps);
    let sys_real = fs::canonicalize(&root.sys).unwrap_or_else(|_| root.sys.clone());

    let mut devices = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                log::warn!("reading {}: {e}", block_dir.display());
                continue;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(dev) = read_device(root, &sys_real, &name, opts, &usage) {
            devices.push(dev);
        }
    }
    mark_boot_media(&mut devices, &usage);
    devices.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(devices)
}

/// The parsed mount and swap tables and the boot-device name, ready for matching.
struct Usage {
    /// (mount entry, device name its source resolves to)
    mounts: Vec<(MountEntry, Option<String>)>,
    /// (device number, device name) of each swap area
    swaps: Vec<(Option<DevNum>, Option<String>)>,
    boot_device: Option<String>,
}

/// Where Lifeboat's init mounts the medium it booted from.
const LIFEBOAT_MEDIA: &str = "/run/lifeboat/media";

impl Usage {
    fn new(root: &SysRoot, mounts: &[MountEntry], swaps: &[SwapEntry]) -> Self {
        let mounts = mounts
            .iter()
            .map(|m| (m.clone(), resolve_dev_path(root, &m.source).1))
            .collect();
        let swaps = swaps
            .iter()
            .filter(|s| s.kind != "file")
            .map(|s| resolve_dev_path(root, &s.path))
            .collect();
        let boot_device =
            read_attr(&root.run.join(crate::boot::BOOT_DEVICE_IN_RUN)).and_then(|text| {
                let path = if text.starts_with('/') {
                    PathBuf::from(&text)
                } else {
                    Path::new("/dev").join(&text)
                };
                resolve_dev_path(root, &path).1
            });
        if let Some(b) = &boot_device {
            log::debug!("lifeboat boot device: {b}");
        }
        Usage {
            mounts,
            swaps,
            boot_device,
        }
    }

    fn mount_points(&self, name: &str, dev: Option<DevNum>) -> Vec<PathBuf> {
        let mut points: Vec<PathBuf> = self
            .mounts
            .iter()
            .filter(|(m, src)| Some(m.dev) == dev || src.as_deref() == Some(name))
            .map(|(m, _)| m.mount_point.clone())
            .collect();
        points.dedup();
        points
    }

    fn is_swap(&self, name: &str, dev: Option<DevNum>) -> bool {
        self.swaps
            .iter()
            .any(|(d, n)| (d.is_some() && *d == dev) || n.as_deref() == Some(name))
    }
}

/// Maps a `/dev/...` path from a mount or swap table to (device number, kernel name), looking
/// it up under `root.dev` so that `/dev/mapper/x` and `/dev/disk/by-*` links resolve.
fn resolve_dev_path(root: &SysRoot, path: &Path) -> (Option<DevNum>, Option<String>) {
    let Ok(rel) = path.strip_prefix("/dev") else {
        return (None, None);
    };
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) || rel.as_os_str().is_empty() {
        return (None, None);
    }
    let node = root.dev.join(rel);
    let dev = fs::metadata(&node)
        .ok()
        .filter(|m| m.file_type().is_block_device())
        .map(|m| DevNum::from_dev_t(m.rdev()));
    let name = match fs::canonicalize(&node) {
        Ok(real) => real.file_name().map(|n| n.to_string_lossy().into_owned()),
        // Not present under root.dev: a plain `/dev/NAME` still names the kernel device.
        Err(_) if rel.components().count() == 1 => Some(rel.to_string_lossy().into_owned()),
        Err(_) => None,
    };
    (dev, name)
}

fn read_device(
    root: &SysRoot,
    sys_real: &Path,
    name: &str,
    opts: &DiscoverOptions,
    usage: &Usage,
) -> Option<BlockDevice> {
    let dir = root.sys.join("block").join(name);
    let is_loop = name.starts_with("loop");
    let is_ram = name.starts_with("ram") || name.starts_with("zram");
    if (is_loop || is_ram) && !opts.include_virtual {
        return None;
    }
    if read_attr(&dir.join("hidden")).as_deref() == Some("1") {
        return None;
    }
    let kind = if is_loop {
        let Some(backing) = read_attr_path(&dir.join("loop/backing_file")) else {
            log::debug!("{name}: loop device without backing file, skipped");
            return None;
        };
        DeviceKind::Loop {
            backing_file: backing,
        }
    } else if is_ram {
        DeviceKind::Ram
    } else if name.starts_with("dm-") || dir.join("dm").is_dir() {
        DeviceKind::DeviceMapper {
            name: read_attr(&dir.join("dm/name")),
            uuid: read_attr(&dir.join("dm/uuid")),
        }
    } else if name.starts_with("md") || dir.join("md").is_dir() {
        DeviceKind::Raid {
            level: read_attr(&dir.join("md/level")),
            state: read_attr(&dir.join("md/array_state")),
            raid_disks: read_u64(&dir.join("md/raid_disks")).and_then(|n| u32::try_from(n).ok()),
            degraded: read_u64(&dir.join("md/degraded")).and_then(|n| u32::try_from(n).ok()),
            uuid: read_attr(&dir.join("md/uuid")),
        }
    } else if name.starts_with("sr") || read_attr(&dir.join("device/type")).as_deref() == Some("5")
    {
        DeviceKind::Optical
    } else {
        DeviceKind::Disk
    };

    // The device's place in the tree, relative to sysfs, e.g.
    // devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda.
    let real = fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let rel = real.strip_prefix(sys_real).unwrap_or(&real).to_path_buf();
    let is_virtual_kind = !matches!(kind, DeviceKind::Disk | DeviceKind::Optical);
    let transport = if is_virtual_kind {
        Transport::Virtual
    } else {
        transport_of(sys_real, &rel, name)
    };

    let dev = read_attr(&dir.join("dev")).and_then(|d| DevNum::parse(&d));
    let path = node_path(root, name);
    let mut size = read_u64(&dir.join("size"))
        .map(|s| s.saturating_mul(512))
        .unwrap_or(0);
    if opts.open_devices {
        match ioctl_size(&path) {
            Ok(s) => {
                if s != size {
                    log::debug!("{name}: BLKGETSIZE64 says {s} bytes, sysfs {size}");
                }
                size = s;
            }
            Err(e) => log::debug!("{name}: cannot ask the size of {}: {e}", path.display()),
        }
    }
    let logical = read_u64(&dir.join("queue/logical_block_size"))
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| v.is_power_of_two() && *v >= 512)
        .unwrap_or(512);
    let physical = read_u64(&dir.join("queue/physical_block_size"))
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| v.is_power_of_two() && *v >= logical)
        .unwrap_or(logical);

    let usb_parent = if transport == Transport::Usb {
        usb_device_dir(sys_real, &real)
    } else {
        None
    };
    let serial = read_vpd_serial(&dir.join("device/vpd_pg80"))
        .or_else(|| read_attr(&dir.join("device/serial")))
        .or_else(|| read_attr(&dir.join("serial")))
        .or_else(|| {
            usb_parent
                .as_ref()
                .and_then(|u| read_attr(&u.join("serial")))
        });
    let model = read_attr(&dir.join("device/model"))
        .or_else(|| read_attr(&dir.join("device/name")).filter(|_| transport == Transport::Mmc))
        .or_else(|| {
            usb_parent
                .as_ref()
                .and_then(|u| read_attr(&u.join("product")))
        });
    let vendor = read_attr(&dir.join("device/vendor"))
        .filter(|v| !v.starts_with("0x"))
        .or_else(|| {
            usb_parent
                .as_ref()
                .and_then(|u| read_attr(&u.join("manufacturer")))
        });
    let wwn = read_attr(&dir.join("device/wwid")).or_else(|| read_attr(&dir.join("wwid")));

    let mut partitions = read_partitions(root, &dir, usage);
    partitions.sort_by(|a, b| {
        a.number
            .cmp(&b.number)
            .then_with(|| natural_cmp(&a.name, &b.name))
    });

    Some(BlockDevice {
        name: name.to_string(),
        mount_points: usage.mount_points(name, dev),
        swap: usage.is_swap(name, dev),
        path,
        dev,
        kind,
        transport,
        model,
        vendor,
        serial,
        wwn,
        size,
        logical_sector_size: logical,
        physical_sector_size: physical,
        rotational: read_bool(&dir.join("queue/rotational")),
        removable: read_bool(&dir.join("removable")),
        read_only: read_bool(&dir.join("ro")),
        discard: read_u64(&dir.join("queue/discard_max_bytes")).map(|v| v > 0),
        partitions,
        holders: list_dir(&dir.join("holders")),
        slaves: list_dir(&dir.join("slaves")),
        is_boot_medium: false,
    })
}

fn read_partitions(root: &SysRoot, dir: &Path, usage: &Usage) -> Vec<Partition> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    for entry in entries.flatten() {
        let pdir = entry.path();
        let Some(number) = read_attr(&pdir.join("partition")) else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let dev = read_attr(&pdir.join("dev")).and_then(|d| DevNum::parse(&d));
        parts.push(Partition {
            path: node_path(root, &name),
            number: number.parse().ok(),
            dev,
            start: read_u64(&pdir.join("start")).and_then(|s| s.checked_mul(512)),
            size: read_u64(&pdir.join("size")).and_then(|s| s.checked_mul(512)),
            mount_points: usage.mount_points(&name, dev),
            swap: usage.is_swap(&name, dev),
            holders: list_dir(&pdir.join("holders")),
            name,
        });
    }
    parts
}

/// The device node of a kernel name: sysfs writes `/` in names as `!` (`cciss!c0d0` is
/// `/dev/cciss/c0d0`).
fn node_path(root: &SysRoot, name: &str) -> PathBuf {
    root.dev.join(name.replace('!', "/"))
}

/// Marks the devices holding `/`, `/run/lifeboat/media` or the boot device Lifeboat's init
/// named, then, repeatedly, the devices below a boot device (the disk under an LVM root).
fn mark_boot_media(devices: &mut [BlockDevice], usage: &Usage) {
    let holds_boot = |mounts: &[PathBuf], name: &str| {
        mounts
            .iter()
            .any(|m| m == Path::new("/") || m == Path::new(LIFEBOAT_MEDIA))
            || usage.boot_device.as_deref() == Some(name)
    };
    for d in devices.iter_mut() {
        d.is_boot_medium = holds_boot(&d.mount_points, &d.name)
            || d.partitions
                .iter()
                .any(|p| holds_boot(&p.mount_points, &p.name));
    }
    loop {
        let boot: BTreeSet<String> = devices
            .iter()
            .filter(|d| d.is_boot_medium)
            .map(|d| d.name.clone())
            .collect();
        let mut changed = false;
        for d in devices.iter_mut().filter(|d| !d.is_boot_medium) {
            let mut holders = d
                .holders
                .iter()
                .chain(d.partitions.iter().flat_map(|p| &p.holders));
            if holders.any(|h| boot.contains(h)) {
                d.is_boot_medium = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// Decides the transport from the device's sysfs path `rel` (relative to the sysfs root).
fn transport_of(sys_real: &Path, rel: &Path, name: &str) -> Transport {
    let comps: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let has = |pred: &dyn Fn(&str) -> bool| comps.iter().any(|c| pred(c));
    let numbered = |c: &str, prefix: &str| {
        c.strip_prefix(prefix)
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
    };
    if has(&|c| numbered(c, "usb")) {
        Transport::Usb
    } else if name.starts_with("nvme") || has(&|c| c == "nvme" || c.starts_with("nvme-subsys")) {
        Transport::Nvme
    } else if has(&|c| c == "mmc_host" || numbered(c, "mmc")) || name.starts_with("mmcblk") {
        Transport::Mmc
    } else if let Some(i) = comps.iter().position(|c| numbered(c, "ata")) {
        let ata_dir: PathBuf = sys_real.join(comps.iter().take(i + 1).collect::<PathBuf>());
        let controller: PathBuf = sys_real.join(comps.iter().take(i).collect::<PathBuf>());
        if is_sata(&controller, &ata_dir) {
            Transport::Sata
        } else {
            Transport::Ata
        }
    } else if has(&|c| numbered(c, "virtio")) {
        Transport::Virtio
    } else if has(&|c| numbered(c, "host")) && has(&|c| c.starts_with("target")) {
        Transport::Scsi
    } else if comps.first().map(String::as_str) == Some("devices")
        && comps.get(1).map(String::as_str) == Some("virtual")
    {
        Transport::Virtual
    } else {
        Transport::Unknown
    }
}

/// A libata port is SATA when its controller is driven by `ahci` or a `sata_*` driver, or when
/// one of its links reports a SATA link speed.
fn is_sata(controller: &Path, ata_dir: &Path) -> bool {
    let driver = fs::read_link(controller.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(d) = driver {
        if d == "ahci" || d.starts_with("sata_") || d.contains("ahci") {
            return true;
        }
    }
    let Ok(entries) = fs::read_dir(ata_dir) else {
        return false;
    };
    entries.flatten().any(|link| {
        let name = link.file_name();
        let name = name.to_string_lossy();
        name.starts_with("link")
            && read_attr(&link.path().join("ata_link").join(&*name).join("sata_spd"))
                .is_some_and(|s| s.contains("Gbps"))
    })
}

/// Walks up from the block device's directory to the USB device (the one with `serial` and
/// `idVendor`), staying inside sysfs.
fn usb_device_dir(sys_real: &Path, real: &Path) -> Option<PathBuf> {
    let mut dir = real.parent();
    while let Some(d) = dir {
        if !d.starts_with(sys_real) || d == sys_real {
            return None;
        }
        if d.join("idVendor").is_file() && d.join("serial").is_file() {
            return Some(d.to_path_buf());
        }
        dir = d.parent();
    }
    None
}

/// Reads a sysfs attribute as text: lossy UTF-8, trimmed of white space and NULs; `None` when
/// missing, unreadable or empty.
fn read_attr(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Reads a sysfs attribute holding a path, keeping its bytes (only the trailing newline goes).
fn read_attr_path(path: &Path) -> Option<PathBuf> {
    let mut bytes = fs::read(path).ok()?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == 0) {
        bytes.pop();
    }
    (!bytes.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)))
}

fn read_u64(path: &Path) -> Option<u64> {
    read_attr(path)?.parse().ok()
}

fn read_bool(path: &Path) -> Option<bool> {
    match read_attr(path)?.as_str() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

fn list_dir(path: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(path) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by(|a, b| natural_cmp(a, b));
    names
}

fn read_vpd_serial(path: &Path) -> Option<String> {
    parse_vpd_serial(&fs::read(path).ok()?)
}

/// Extracts the serial number from a SCSI "Unit Serial Number" VPD page (0x80), as found in
/// sysfs `device/vpd_pg80`: a 4-byte header (peripheral type, page code 0x80, big-endian page
/// length) and then the ASCII serial, padded with spaces or NULs. `None` when the page is not a
/// serial page, is truncated to nothing, or holds only padding.
pub fn parse_vpd_serial(page: &[u8]) -> Option<String> {
    let header = page.get(..4)?;
    if header.get(1) != Some(&0x80) {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([*header.get(2)?, *header.get(3)?]));
    let body = page.get(4..)?;
    let body = body.get(..declared.min(body.len()))?;
    let text: String = body
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                ' '
            }
        })
        .collect();
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Opens a device node read-only and non-blocking (an empty CD drive must not stall discovery)
/// to ask its size.
fn ioctl_size(path: &Path) -> io::Result<u64> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.file_type().is_block_device() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a block device",
        ));
    }
    crate::file::block_size64(&file).map_err(io::Error::from)
}

/// Compares kernel names the way people count: digit runs as numbers (`nvme2n1` < `nvme10n1`,
/// `sda2` < `sda10`) and, among names with the same first two letters, shorter letter runs first
/// (`sdz` < `sdaa`).
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ka, kb) = (natural_key(a), natural_key(b));
    ka.cmp(&kb).then_with(|| a.cmp(b))
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KeyPart {
    Num(u128),
    /// (first two letters, length, text): `sdz` < `sdaa` but `nvme0n1` < `sda`.
    Text(String, usize, String),
}

fn natural_key(s: &str) -> Vec<KeyPart> {
    let mut key = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        let digit = c.is_ascii_digit();
        let mut run = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() != digit {
                break;
            }
            run.push(c);
            chars.next();
        }
        key.push(match run.parse::<u128>() {
            Ok(n) if digit => KeyPart::Num(n),
            _ => KeyPart::Text(run.chars().take(2).collect(), run.len(), run),
        });
    }
    key
}

/// Why [`find`] or [`find_partition`] found nothing, or too much.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    /// Nothing matches.
    #[error("no disk matches {spec}")]
    NotFound {
        /// What was asked for.
        spec: String,
    },
    /// Several devices match a `serial:` or `model:` spec.
    #[error("{spec} is ambiguous: it matches {}", candidates.join(", "))]
    Ambiguous {
        /// What was asked for.
        spec: String,
        /// The names of the matching devices.
        candidates: Vec<String>,
    },
    /// A partition was named where a whole disk is needed.
    #[error("{spec} is a partition of {disk}, not a whole disk")]
    IsPartition {
        /// What was asked for.
        spec: String,
        /// The disk it belongs to.
        disk: String,
    },
    /// A whole disk was named where a partition is needed.
    #[error("{spec} is a whole disk, not a partition")]
    IsDisk {
        /// What was asked for.
        spec: String,
    },
    /// `serial:` or `model:` with nothing after it.
    #[error("{spec} names no serial or model")]
    Empty {
        /// What was asked for.
        spec: String,
    },
}

/// The kernel name a path-like spec refers to: `sda` for `sda`, `/dev/sda` or a
/// `/dev/disk/by-id/...` link to it.
fn spec_name(spec: &str) -> Option<String> {
    if let Some(rest) = spec.strip_prefix("/dev/") {
        if !rest.is_empty() && !rest.contains('/') {
            return Some(rest.to_string());
        }
    }
    if spec.starts_with('/') {
        let real = fs::canonicalize(spec).ok()?;
        return real.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    (!spec.is_empty()).then(|| spec.to_string())
}

/// Finds a whole device by `/dev/sda`, `sda`, a `/dev/disk/by-*` or `/dev/md/NAME` link,
/// `serial:XYZ`, `model:ABC` (serial and model compared without regard to case; a model also
/// matches as `vendor model`) or `md-uuid:UUID` (an md array by its UUID, hex digits compared
/// without regard to case, `-` and `:`, so blkid's and `mdadm --detail`'s forms both match).
pub fn find<'a>(devices: &'a [BlockDevice], spec: &str) -> Result<&'a BlockDevice, FindError> {
    let spec = spec.trim();
    let by = |value: &str, get: &dyn Fn(&BlockDevice) -> Vec<String>| {
        if value.is_empty() {
            return Err(FindError::Empty {
                spec: spec.to_string(),
            });
        }
        let matches: Vec<&BlockDevice> = devices
            .iter()
            .filter(|d| get(d).iter().any(|v| v.eq_ignore_ascii_case(value)))
            .collect();
        match matches.as_slice() {
            [] => Err(FindError::NotFound {
                spec: spec.to_string(),
            }),
            [one] => Ok(*one),
            many => Err(FindError::Ambiguous {
                spec: spec.to_string(),
                candidates: many.iter().map(|d| d.name.clone()).collect(),
            }),
        }
    };
    if let Some(serial) = spec.strip_prefix("serial:") {
        return by(serial.trim(), &|d| d.serial.iter().cloned().collect());
    }
    if let Some(uuid) = spec.strip_prefix("md-uuid:") {
        let hex = |u: &str| -> String {
            u.chars()
                .filter(|c| *c != '-' && *c != ':')
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let want = hex(uuid.trim());
        return by(&want, &|d| match &d.kind {
            DeviceKind::Raid { uuid: Some(u), .. } => vec![hex(u)],
            _ => Vec::new(),
        });
    }
    if let Some(model) = spec.strip_prefix("model:") {
        return by(model.trim(), &|d| {
            let mut v: Vec<String> = d.model.iter().cloned().collect();
            if let (Some(vendor), Some(model)) = (&d.vendor, &d.model) {
                v.push(format!("{vendor} {model}"));
            }
            v
        });
    }
    if let Some(d) = devices.iter().find(|d| d.path == Path::new(spec)) {
        return Ok(d);
    }
    let name = spec_name(spec).ok_or_else(|| FindError::NotFound {
        spec: spec.to_string(),
    })?;
    if let Some(d) = devices.iter().find(|d| d.name == name) {
        return Ok(d);
    }
    if let Some(d) = devices
        .iter()
        .find(|d| d.partitions.iter().any(|p| p.name == name))
    {
        return Err(FindError::IsPartition {
            spec: spec.to_string(),
            disk: d.name.clone(),
        });
    }
    Err(FindError::NotFound {
        spec: spec.to_string(),
    })
}

/// Finds a partition by `/dev/sda1`, `sda1` or a `/dev/disk/by-*` link, with its disk.
pub fn find_partition<'a>(
    devices: &'a [BlockDevice],
    spec: &str,
) -> Result<(&'a BlockDevice, &'a Partition), FindError> {
    let spec = spec.trim();
    let name = spec_name(spec);
    for d in devices {
        for p in &d.partitions {
            if p.path == Path::new(spec) || name.as_deref() == Some(p.name.as_str()) {
                return Ok((d, p));
            }
        }
    }
    if devices
        .iter()
        .any(|d| d.path == Path::new(spec) || name.as_deref() == Some(d.name.as_str()))
    {
        return Err(FindError::IsDisk {
            spec: spec.to_string(),
        });
    }
    Err(FindError::NotFound {
        spec: spec.to_string(),
    })
}

fn lossy_path<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

fn lossy_paths<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| p.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_numbers_in_numeric_order() {
        let mut names = vec!["sdaa", "sdb", "nvme10n1", "sda", "nvme2n1", "sdz", "vda"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["nvme2n1", "nvme10n1", "sda", "sdb", "sdz", "sdaa", "vda"]
        );
    }

    #[test]
    fn vpd_serial_is_trimmed_and_bounded_by_page_length() {
        let mut page = vec![0x00, 0x80, 0x00, 0x14];
        page.extend_from_slice(b"     WD-WCC4N1234567");
        page.extend_from_slice(b"JUNK");
        assert_eq!(parse_vpd_serial(&page).as_deref(), Some("WD-WCC4N1234567"));
        assert_eq!(
            parse_vpd_serial(&[0x00, 0x83, 0x00, 0x02, b'a', b'b']),
            None
        );
        assert_eq!(parse_vpd_serial(&[0x00, 0x80, 0x00]), None);
        assert_eq!(
            parse_vpd_serial(&[0x00, 0x80, 0x00, 0x04, b' ', 0, b' ', 0]),
            None
        );
        // Declared longer than present: take what is there.
        assert_eq!(
            parse_vpd_serial(&[0x00, 0x80, 0x00, 0x40, b'A', b'B']).as_deref(),
            Some("AB")
        );
    }

    #[test]
    fn dev_t_splits_into_major_and_minor() {
        assert_eq!(DevNum::from_dev_t(0x0801), DevNum { major: 8, minor: 1 });
        let dev = nix::libc::makedev(259, 300_000);
        assert_eq!(
            DevNum::from_dev_t(dev),
            DevNum {
                major: 259,
                minor: 300_000
            }
        );
        let dev = nix::libc::makedev(4097, 7);
        assert_eq!(
            DevNum::from_dev_t(dev),
            DevNum {
                major: 4097,
                minor: 7
            }
        );
        assert_eq!(
            DevNum::parse(" 259:12\n"),
            Some(DevNum {
                major: 259,
                minor: 12
            })
        );
        assert_eq!(DevNum::parse("259"), None);
    }
}
