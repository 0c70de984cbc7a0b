//! md RAID arrays at boot: when a disk or partition present at boot carries an md superblock
//! (`fs::md::read`), the md driver and the personalities of the levels found are loaded and
//! mdadm assembles every array it finds **read-only** (`--readonly`: the kernel neither resyncs
//! nor writes a member, superblocks included) and starts degraded ones too (`--run`: a RAID5
//! missing one disk is still readable), so `lifeboat` can image an array like a partition.
//! Members of an assembled array are held by it, which makes them busy for every writing job.
//!
//! Arrays whose members appear later (hot-plug) are not assembled behind the user's back:
//! starting an array from its first member would leave the others out; the shell's
//! `mdadm --assemble --scan --readonly` does it when all are there.

use std::path::Path;

/// The command init runs once members were found.
pub const ASSEMBLE: &[&str] = &["mdadm", "--assemble", "--scan", "--readonly", "--run"];

/// The kernel modules for the md levels in `levels` (mdadm names: `raid1`, `raid5`, ...): the md
/// driver first, then each personality once.
pub fn modules_for<'a>(levels: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let mut out = vec!["md_mod"];
    for level in levels {
        let m = match level {
            "raid0" => "raid0",
            "raid1" => "raid1",
            "raid4" | "raid5" | "raid6" => "raid456",
            "raid10" => "raid10",
            "linear" => "linear",
            _ => continue,
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// The md levels of the members among the block devices `names` (`/dev/NAME` read through
/// `read`, which returns the member's level): one entry per member.
pub fn member_levels(names: &[String], read: impl Fn(&Path) -> Option<String>) -> Vec<String> {
    names
        .iter()
        .filter(|n| !n.starts_with("md") && !n.starts_with("loop") && !n.starts_with("ram"))
        .filter_map(|n| read(&Path::new("/dev").join(n)))
        .collect()
}

/// The level of the md member at `path`, when it is one.
pub fn read_level(path: &Path) -> Option<String> {
    let io = disk::FileDisk::open_read(path).ok()?;
    fs::md::read(&io).ok().flatten().map(|m| m.level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_found_brings_its_personality_once_after_the_md_driver() {
        assert_eq!(
            modules_for(["raid1", "raid5", "raid6", "raid1", "raid10", "raid0"]),
            ["md_mod", "raid1", "raid456", "raid10", "raid0"]
        );
        assert_eq!(modules_for(["multipath"]), ["md_mod"]);
    }

    #[test]
    fn only_disks_and_partitions_are_read_for_members() {
        let names: Vec<String> = ["vda", "vda1", "md127", "loop0", "vdb"]
            .map(String::from)
            .to_vec();
        let seen = std::cell::RefCell::new(Vec::new());
        let levels = member_levels(&names, |p| {
            seen.borrow_mut().push(p.display().to_string());
            (p == Path::new("/dev/vda1")).then(|| "raid5".to_string())
        });
        assert_eq!(levels, ["raid5"]);
        assert_eq!(*seen.borrow(), ["/dev/vda", "/dev/vda1", "/dev/vdb"]);
    }

    #[test]
    fn arrays_are_assembled_read_only_and_degraded_ones_started() {
        assert!(ASSEMBLE.contains(&"--readonly") && ASSEMBLE.contains(&"--run"));
        assert_eq!(&ASSEMBLE[..3], ["mdadm", "--assemble", "--scan"]);
    }
}
