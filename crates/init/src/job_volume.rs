//! Finding the volume of an unattended job (`lifeboat.job=LABEL:/path`): every file system on
//! every disk is probed with `fs::probe` (the probe the rest of Lifeboat uses), and the job runs
//! only when exactly one carries the label. Two or more — the technician's stick and a
//! customer's disk that happens to use the same name, or two sticks — run nothing: the customer's
//! disks are never a source of jobs by accident.

use disk::BlockDevice;
use fs::{FsInfo, FsKind};
use std::path::{Path, PathBuf};

/// A file system found on a disk or partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The device node holding it: a partition, or a whole disk without partition table (a
    /// "superfloppy" stick).
    pub device: PathBuf,
    /// The disk it is on, as people recognise it: vendor, model, serial and size.
    pub disk: String,
    /// What `fs::probe` found.
    pub kind: FsKind,
    /// Its label, if any.
    pub label: Option<String>,
}

/// Where file systems may be: every partition of every disk, and whole disks the kernel found no
/// partitions on. Loop, RAM and device-mapper devices are left out (they are made from other
/// disks, which are probed themselves).
pub fn places(devices: &[BlockDevice]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for d in devices.iter().filter(|d| !d.is_virtual()) {
        if d.partitions.is_empty() {
            out.push((d.path.clone(), d.identity()));
        } else {
            out.extend(d.partitions.iter().map(|p| (p.path.clone(), d.identity())));
        }
    }
    out
}

/// Probes a block device or image file read-only; `None` when it cannot be opened or holds
/// nothing recognised.
pub fn probe_path(path: &Path) -> Option<FsInfo> {
    let io = disk::FileDisk::open_read(path).ok()?;
    match fs::probe(&io) {
        Ok(found) => found,
        Err(e) => {
            log::debug!("probing {}: {e}", path.display());
            None
        }
    }
}

/// The file systems in `places`, probed with `probe`.
pub fn scan(places: &[(PathBuf, String)], probe: impl Fn(&Path) -> Option<FsInfo>) -> Vec<Volume> {
    places
        .iter()
        .filter_map(|(device, disk)| {
            let info = probe(device)?;
            Some(Volume {
                device: device.clone(),
                disk: disk.clone(),
                kind: info.kind,
                label: info.label,
            })
        })
        .collect()
}

/// The outcome of looking for the job's volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// No file system carries the label.
    Missing,
    /// Exactly one does.
    One(Volume),
    /// Two or more do: nothing may run.
    Ambiguous(Vec<Volume>),
}

/// Whether a volume's label is the job's label. Case is ignored (FAT tools upper-case labels),
/// so a customer's `backups` and the stick's `BACKUPS` are two candidates, never a silent pick.
pub fn carries(volume: &Volume, label: &str) -> bool {
    volume
        .label
        .as_deref()
        .is_some_and(|l| l.eq_ignore_ascii_case(label))
}

/// Picks the job's volume among `volumes`.
pub fn choose(label: &str, volumes: &[Volume]) -> Choice {
    let mut hits: Vec<Volume> = volumes
        .iter()
        .filter(|v| carries(v, label))
        .cloned()
        .collect();
    match hits.len() {
        0 => Choice::Missing,
        1 => Choice::One(hits.remove(0)),
        _ => Choice::Ambiguous(hits),
    }
}

/// `/dev/sda (QEMU HARDDISK, serial STICK-A, 67.1 MB)`.
pub fn describe(v: &Volume) -> String {
    format!("{} ({})", v.device.display(), v.disk)
}

/// Why an ambiguous label runs nothing, naming every disk that carries it.
pub fn ambiguity_message(label: &str, hits: &[Volume]) -> String {
    let names: Vec<String> = hits.iter().map(describe).collect();
    format!(
        "{} file systems are labelled {}: {}; running nothing (leave only the job's stick attached, \
         or give it a label no other disk uses)",
        hits.len(),
        disk::text::printable(label),
        names.join(" and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use qemu_tests::fixture::{mkfs, Mkfs};

    fn volume_of(path: &Path, disk: &str) -> Volume {
        let places = vec![(path.to_path_buf(), disk.to_string())];
        let mut v = scan(&places, probe_path);
        assert_eq!(v.len(), 1, "{} not recognised", path.display());
        v.remove(0)
    }

    #[test]
    fn fat32_exfat_ntfs_and_ext4_job_volumes_are_recognised_by_the_shared_probe() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, want, size) in [
            (Mkfs::Fat32, FsKind::Vfat, 64 << 20),
            (Mkfs::Exfat, FsKind::Exfat, 16 << 20),
            (Mkfs::Ntfs, FsKind::Ntfs, 16 << 20),
            (Mkfs::Ext4, FsKind::Ext4, 16 << 20),
        ] {
            let p = dir.path().join(format!("{want}.img"));
            mkfs(kind, &p, size, "LBJOB", &[]).unwrap();
            let v = volume_of(&p, "stick");
            assert_eq!(v.kind, want);
            assert!(carries(&v, "LBJOB"), "{v:?}");
            assert_eq!(choose("LBJOB", std::slice::from_ref(&v)), Choice::One(v));
        }
    }

    #[test]
    fn two_volumes_with_the_label_in_any_case_run_nothing_and_both_disks_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let stick = dir.path().join("stick.img");
        mkfs(Mkfs::Fat32, &stick, 64 << 20, "LBJOB", &[]).unwrap();
        let customer = dir.path().join("customer.img");
        mkfs(Mkfs::Ext4, &customer, 16 << 20, "lbjob", &[]).unwrap();
        let other = dir.path().join("other.img");
        mkfs(Mkfs::Exfat, &other, 16 << 20, "DATA", &[]).unwrap();
        let volumes = vec![
            volume_of(&stick, "Kingston DataTraveler, serial K-1, 64 MB"),
            volume_of(&customer, "Samsung SSD 870, serial S-9, 1 TB"),
            volume_of(&other, "WD Blue, serial W-3, 2 TB"),
        ];
        let Choice::Ambiguous(hits) = choose("LBJOB", &volumes) else {
            panic!("two volumes carry LBJOB: {volumes:?}");
        };
        assert_eq!(hits.len(), 2);
        let msg = ambiguity_message("LBJOB", &hits);
        assert!(
            msg.starts_with("2 file systems are labelled LBJOB"),
            "{msg}"
        );
        assert!(
            msg.contains("serial K-1") && msg.contains("serial S-9"),
            "{msg}"
        );
        assert!(!msg.contains("W-3"), "{msg}");
        assert!(msg.contains("running nothing"), "{msg}");
        assert_eq!(choose("NOSUCH", &volumes), Choice::Missing);
        assert!(matches!(choose("data", &volumes), Choice::One(v) if v.kind == FsKind::Exfat));
    }

    #[test]
    fn unlabelled_zeroed_and_unreadable_places_are_no_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let nolabel = dir.path().join("nolabel.img");
        mkfs(Mkfs::Fat32, &nolabel, 64 << 20, "NO NAME", &[]).unwrap();
        let zero = dir.path().join("zero.img");
        std::fs::write(&zero, vec![0u8; 1 << 20]).unwrap();
        let places = vec![
            (nolabel.clone(), "a".to_string()),
            (zero, "b".to_string()),
            (dir.path().join("missing.img"), "c".to_string()),
        ];
        let found = scan(&places, probe_path);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].label, None);
        assert_eq!(choose("NO NAME", &found), Choice::Missing);
    }
}
