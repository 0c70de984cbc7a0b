//! Replays every committed fuzz input of this crate through the same entry points the cargo-fuzz
//! targets call (`fuzz/entry.rs`), on the stable toolchain: `fuzz/regressions/<target>/` holds
//! the minimised crashers the fuzzer found (each one fixed), `fuzz/corpus/` the seeds made by the
//! real tools. None may panic. See FUZZING.md.
#![allow(dead_code, clippy::unwrap_used)]

include!("../fuzz/entry.rs");

/// Runs `f` on every input of `fuzz/<dir>`, naming the file that panics or hangs.
fn replay(dir: &str, f: fn(&[u8])) -> usize {
    qemu_tests::fuzz_replay::replay(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), dir, f)
}

#[test]
fn browse_survives_every_regression_and_seed() {
    assert!(replay("regressions/browse", browse) >= 1);
    assert!(replay("corpus/seeds", browse) >= 8);
}

#[test]
fn probe_survives_every_regression_and_seed() {
    replay("regressions/probe", probe);
    assert!(replay("corpus/seeds", probe) >= 8);
}

#[test]
fn used_map_survives_every_regression_and_seed() {
    replay("regressions/used_map", used_map);
    assert!(replay("corpus/seeds", used_map) >= 8);
}

#[test]
fn sparse_seeds_decode_to_the_file_systems_they_hold() {
    // The NTFS and exFAT seeds are sparse: they must decode to a volume the browser opens.
    for name in ["ntfs-2m-mkntfs-ntfscp.sparse", "exfat-4m-mkfs.exfat.sparse"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/seeds")
            .join(name);
        let data = std::fs::read(&path).unwrap();
        let b = fs::browse::open(Box::new(disk_from(&data)));
        assert!(b.is_ok(), "{name}: {:?}", b.err());
    }
}

#[test]
fn containers_survive_every_regression_seed_and_their_one_byte_mutants() {
    replay("regressions/containers", containers);
    assert!(replay("corpus/containers", containers) >= 2);
    assert!(replay("corpus/seeds", containers) >= 8);
    // Each LUKS seed with every header byte of its first 4 KiB set to 0x00 and 0xff in turn.
    for name in [
        "luks1-cryptsetup-luksFormat.sparse",
        "luks2-cryptsetup-luksFormat-label.sparse",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/containers")
            .join(name);
        let seed = std::fs::read(&path).unwrap();
        // The first record's bytes start after the sparse header (12) and the record head (6).
        for at in 18..seed.len().min(18 + 4096) {
            for v in [0x00, 0xff] {
                let mut m = seed.clone();
                m[at] = v;
                containers(&m);
            }
        }
    }
}

#[test]
fn the_md_seed_made_by_mdadm_reads_as_device_0_of_its_raid1_array() {
    // Partition 1 of a member disk of `qemu-tests/tests/volumes.rs` (mdadm --create --level=1
    // --metadata=1.2 --homehost=lifeboat --name=r0 in the booted image), its first 8 KiB.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/containers/md-1.2-raid1-member-mdadm.sparse");
    let disk = disk_from(&std::fs::read(path).unwrap());
    let m = fs::md::read(&disk).unwrap().unwrap();
    assert_eq!(
        (m.metadata.as_str(), m.level.as_str(), m.name.as_deref()),
        ("1.2", "raid1", Some("lifeboat:r0"))
    );
    assert_eq!((m.role, m.raid_disks), (fs::md::MdRole::Active(0), 2));
    assert!(m.is_redundant());
    // The checksum matches mdadm's; only the seed's cut (8 of 10 MiB) shows.
    assert!(
        m.warnings
            .iter()
            .all(|w| w.contains("extends past the device's end")),
        "{:?}",
        m.warnings
    );
    let info = fs::probe(&disk).unwrap().unwrap();
    assert_eq!(info.kind, fs::FsKind::LinuxRaidMember);
}
