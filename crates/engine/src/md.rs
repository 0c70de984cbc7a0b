//! md RAID arrays as sources: what an assembled array is (level, name, UUID, state) and which
//! disks it is made of (each member's partition and its disk's model and serial), read from the
//! kernel's view (`disk::DeviceKind::Raid`, its `slaves/`) and the members' superblocks
//! (`fs::md`). `lifeboat list`, the TUI and a backup's plan and manifest name an array this way.
//!
//! An array is backed up like a partition (its file system's used blocks); restored, the image is
//! a plain file system (onto a partition or disk it is not an array any more), or goes back onto
//! an assembled, writable array of the right size. Lifeboat's init assembles arrays read-only
//! (`init::md`), so such a target is refused until `mdadm --readwrite` (see [`crate::safety`]).

use disk::{BlockDevice, DeviceKind, FileDisk};
use serde::Serialize;

/// One member of an assembled array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArrayMember {
    /// The member's kernel name (`vda1`).
    pub device: String,
    /// The disk it is on (`vda`), when found.
    pub disk: Option<String>,
    /// That disk's model, serial and size (`disk::text::identity`).
    pub identity: Option<String>,
    /// Its role in the array, from its superblock (`device 0 of 3`, `spare`).
    pub role: Option<String>,
    /// Its slot among the active devices.
    #[serde(skip)]
    pub slot: Option<u32>,
}

/// An assembled md array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MdArray {
    /// The array's kernel name (`md127`).
    pub device: String,
    /// `raid1`, `raid5`, ...
    pub level: String,
    /// The array's name (1.x superblocks: `host:name`).
    pub name: Option<String>,
    /// The array's UUID as `blkid` and `mdadm --examine` print it.
    pub uuid: Option<String>,
    /// The kernel's `array_state` (`readonly` as Lifeboat assembles arrays).
    pub state: Option<String>,
    /// Devices the array is made of, and how many of them are missing.
    pub raid_disks: Option<u32>,
    pub degraded: Option<u32>,
    /// Chunk size in bytes of a striped or parity level.
    pub chunk_size: Option<u64>,
    /// Superblock format (`1.2`, `0.90`).
    pub metadata: Option<String>,
    pub members: Vec<ArrayMember>,
}

impl MdArray {
    /// The identity a backup of the array records as its source's model and serial: `md RAID5
    /// array "host:data"` and the array UUID.
    pub fn model(&self) -> String {
        match &self.name {
            Some(n) => format!("md {} array \"{n}\"", self.level.to_uppercase()),
            None => format!("md {} array", self.level.to_uppercase()),
        }
    }

    /// One line: `md RAID5 array "lifeboat:r5", UUID ..., 3 devices, 1 missing, 512 KiB chunks,
    /// read-only; members: vdb1 (device 0 of 3) on QEMU HARDDISK, serial MDA, 40 MiB; ...`.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.model()];
        if let Some(u) = &self.uuid {
            parts.push(format!("UUID {u}"));
        }
        if let Some(n) = self.raid_disks {
            parts.push(format!("{n} devices"));
        }
        match self.degraded {
            Some(0) | None => {}
            Some(n) => parts.push(format!("DEGRADED: {n} missing")),
        }
        if let Some(c) = self.chunk_size.filter(|&c| c > 0) {
            parts.push(format!("{} KiB chunks", c / 1024));
        }
        if let Some(s) = &self.state {
            parts.push(match s.as_str() {
                "readonly" => "read-only".to_string(),
                other => format!("state {other}"),
            });
        }
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                let role = m
                    .role
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                match &m.identity {
                    Some(id) => format!("{}{role} on {id}", m.device),
                    None => format!("{}{role}", m.device),
                }
            })
            .collect();
        format!(
            "{}; members: {}",
            parts.join(", "),
            if members.is_empty() {
                "none found".to_string()
            } else {
                members.join("; ")
            }
        )
    }
}

/// The array `dev` is, when it is an md array: its facts from the kernel and from the first
/// member superblock that reads, its members with their disks among `devices`.
pub fn array(dev: &BlockDevice, devices: &[BlockDevice]) -> Option<MdArray> {
    let DeviceKind::Raid {
        level,
        state,
        raid_disks,
        degraded,
        uuid,
    } = &dev.kind
    else {
        return None;
    };
    let mut a = MdArray {
        device: dev.name.clone(),
        level: level.clone().unwrap_or_else(|| "md".to_string()),
        name: None,
        uuid: uuid.clone(),
        state: state.clone(),
        raid_disks: *raid_disks,
        degraded: *degraded,
        chunk_size: None,
        metadata: None,
        members: Vec::new(),
    };
    let mut read_one = false;
    for slave in &dev.slaves {
        let holder = devices
            .iter()
            .find(|d| d.name == *slave || d.partitions.iter().any(|p| p.name == *slave));
        let node = holder
            .and_then(|d| {
                if d.name == *slave {
                    Some(d.path.clone())
                } else {
                    d.partitions
                        .iter()
                        .find(|p| p.name == *slave)
                        .map(|p| p.path.clone())
                }
            })
            .unwrap_or_else(|| std::path::Path::new("/dev").join(slave));
        let sb = FileDisk::open_read(&node)
            .ok()
            .and_then(|io| fs::md::read(&io).ok().flatten());
        if let Some(m) = &sb {
            if !read_one {
                read_one = true;
                a.name = m.name.clone();
                // The superblock's UUID is the one blkid and mdadm print (the kernel prints a
                // 0.90 UUID in another byte order).
                a.uuid = m.array_uuid.clone().or(a.uuid);
                a.chunk_size = (m.chunk_size > 0 && m.is_striped()).then_some(m.chunk_size);
                a.metadata = Some(m.metadata.clone());
            }
        }
        a.members.push(ArrayMember {
            slot: sb.as_ref().and_then(|m| match m.role {
                fs::md::MdRole::Active(n) => Some(n),
                _ => None,
            }),
            device: slave.clone(),
            disk: holder.map(|d| d.name.clone()),
            identity: holder.map(BlockDevice::identity),
            role: sb.map(|m| match m.role {
                fs::md::MdRole::Active(n) => format!("device {n} of {}", m.raid_disks),
                fs::md::MdRole::Spare => "spare".to_string(),
                fs::md::MdRole::Faulty => "faulty".to_string(),
                fs::md::MdRole::Journal => "journal".to_string(),
            }),
        });
    }
    // `slaves/` lists in directory order: members by their slot, then by name.
    a.members
        .sort_by_key(|m| (m.slot.unwrap_or(u32::MAX), m.device.clone()));
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use disk::{Partition, Transport};
    use std::path::PathBuf;

    fn device(name: &str, kind: DeviceKind, serial: Option<&str>) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            path: PathBuf::from(format!("/nonexistent/{name}")),
            dev: None,
            kind,
            transport: Transport::Virtio,
            model: serial.map(|_| "QEMU HARDDISK".to_string()),
            vendor: None,
            serial: serial.map(String::from),
            wwn: None,
            size: 40 << 20,
            logical_sector_size: 512,
            physical_sector_size: 512,
            rotational: None,
            removable: None,
            read_only: None,
            discard: None,
            partitions: Vec::new(),
            mount_points: Vec::new(),
            swap: false,
            holders: Vec::new(),
            slaves: Vec::new(),
            is_boot_medium: false,
        }
    }

    #[test]
    fn an_array_is_named_by_level_state_and_the_disks_of_its_members() {
        let mut a = device("vda", DeviceKind::Disk, Some("MDA"));
        a.partitions.push(Partition {
            name: "vda1".into(),
            path: PathBuf::from("/nonexistent/vda1"),
            number: Some(1),
            dev: None,
            start: Some(1 << 20),
            size: Some(30 << 20),
            mount_points: Vec::new(),
            swap: false,
            holders: vec!["md127".into()],
        });
        let b = device("vdb", DeviceKind::Disk, Some("MDB"));
        let mut md = device(
            "md127",
            DeviceKind::Raid {
                level: Some("raid5".into()),
                state: Some("readonly".into()),
                raid_disks: Some(3),
                degraded: Some(1),
                uuid: Some("0a0b".into()),
            },
            None,
        );
        md.slaves = vec!["vdb".into(), "vda1".into()];
        let devices = vec![a, b, md.clone()];
        let arr = array(&md, &devices).expect("an array");
        assert_eq!(arr.model(), "md RAID5 array");
        assert_eq!(arr.members.len(), 2);
        assert_eq!(arr.members[0].disk.as_deref(), Some("vda"));
        assert_eq!(arr.members[1].disk.as_deref(), Some("vdb"));
        let s = arr.summary();
        assert!(
            s.starts_with("md RAID5 array, UUID 0a0b, 3 devices, DEGRADED: 1 missing, read-only; members: vda1 on QEMU HARDDISK, serial MDA")
                && s.contains("; vdb on QEMU HARDDISK, serial MDB"),
            "{s}"
        );
        assert!(array(&devices[0], &devices).is_none());
    }
}
