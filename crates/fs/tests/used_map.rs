//! `fs::used_map` on file systems filled by the real tools. The strongest check: a copy of the
//! image with every byte outside the map zeroed must still pass the real checker and give back
//! every file byte for byte.

mod common;

use anyhow::{bail, Context, Result};
use common::{
    compare_trees, join, keep_only_used, mutate_and_map, number_after, path_str, populate, run_env,
    tempdir, FileIo,
};
use disk::{BlockIo, MemDisk};
use fs::{probe, used_map, FsKind, MapError, UsedMap};
use qemu_tests::fixture::{self, Mkfs};
use std::path::Path;

const MIB: u64 = 1 << 20;

fn map_of(img: &Path) -> Result<(FileIo, fs::FsInfo, UsedMap)> {
    let io = FileIo::open(img)?;
    let info = probe(&io)?.context("probe found nothing")?;
    let map = used_map(&io, &info)?;
    assert_eq!(map.len(), io.len());
    Ok((io, info, map))
}

/// mke2fs -d over a tree, map, zero the rest, e2fsck -fn, rdump and compare.
fn ext_round_trip(kind: Mkfs, size: u64, extra: &[&str]) -> Result<UsedMap> {
    let dir = tempdir()?;
    let src = join(&dir, "src");
    populate(&src, 2500, &[3 << 20, 700_000, 12 << 20])?;
    let img = join(&dir, "fs.img");
    let mut args = vec!["-d", path_str(&src)?];
    args.extend_from_slice(extra);
    fixture::mkfs(kind, &img, size, "filled", &args)?;
    let (_io, info, map) = map_of(&img)?;
    let stats = fixture::run("dumpe2fs", &["-h", path_str(&img)?])?;
    let blocks = number_after(&stats, "Block count:")?;
    let free = number_after(&stats, "Free blocks:")?;
    let bs = number_after(&stats, "Block size:")?;
    assert_eq!(u64::from(info.block_size), bs);
    // Every allocated block (the block count includes the boot block before group 0).
    assert_eq!(map.used_bytes(), (blocks - free) * bs, "{info:?}");
    let zeroed = join(&dir, "zeroed.img");
    keep_only_used(&img, &map, &zeroed)?;
    let (code, out) = fixture::run_status("e2fsck", &["-fn", path_str(&zeroed)?])?;
    assert_eq!(code, 0, "e2fsck on the zeroed copy:\n{out}");
    let dump = join(&dir, "dump");
    std::fs::create_dir(&dump)?;
    fixture::run(
        "debugfs",
        &[
            "-R",
            &format!("rdump / {}", path_str(&dump)?),
            path_str(&zeroed)?,
        ],
    )?;
    assert_eq!(compare_trees(&src, &dump)?, 2503);
    Ok(map)
}

#[test]
fn ext4_flex_bg_with_uninit_groups_keeps_everything_e2fsck_needs() -> Result<()> {
    let map = ext_round_trip(Mkfs::Ext4, 512 * MIB, &["-b", "4096", "-G", "4"])?;
    assert!(map.used_bytes() < 200 * MIB);
    Ok(())
}

#[test]
fn ext4_64bit_meta_bg_with_1k_blocks_keeps_everything() -> Result<()> {
    ext_round_trip(
        Mkfs::Ext4,
        128 * MIB,
        &["-b", "1024", "-O", "64bit,meta_bg,^resize_inode"],
    )?;
    Ok(())
}

#[test]
fn ext4_1k_blocks_keeps_everything() -> Result<()> {
    ext_round_trip(Mkfs::Ext4, 96 * MIB, &["-b", "1024"])?;
    Ok(())
}

#[test]
fn ext4_bigalloc_maps_whole_clusters() -> Result<()> {
    let map = ext_round_trip(
        Mkfs::Ext4,
        512 * MIB,
        &["-b", "4096", "-O", "64bit,bigalloc", "-C", "65536"],
    )?;
    assert_eq!(map.unit(), 65536);
    Ok(())
}

#[test]
fn ext2_and_ext3_keep_everything() -> Result<()> {
    ext_round_trip(Mkfs::Ext2, 64 * MIB, &["-b", "1024"])?;
    ext_round_trip(Mkfs::Ext3, 64 * MIB, &["-b", "4096"])?;
    Ok(())
}

#[test]
fn ext4_sparse_super2_keeps_its_two_backups() -> Result<()> {
    ext_round_trip(
        Mkfs::Ext4,
        256 * MIB,
        &["-b", "1024", "-O", "sparse_super2"],
    )?;
    Ok(())
}

fn fat_round_trip(kind: Mkfs, size: u64, extra: &[&str]) -> Result<UsedMap> {
    let dir = tempdir()?;
    let src = join(&dir, "src");
    populate(&src, 400, &[1 << 20, 300_000])?;
    let img = join(&dir, "fat.img");
    fixture::mkfs(kind, &img, size, "FILLED", extra)?;
    let env = [("MTOOLS_SKIP_CHECK", "1")];
    let mut args = vec!["-s", "-Q", "-i", path_str(&img)?];
    let entries: Vec<String> = std::fs::read_dir(&src)?
        .map(|e| e.map(|e| e.path().display().to_string()))
        .collect::<Result<_, _>>()?;
    args.extend(entries.iter().map(String::as_str));
    args.push("::/");
    run_env("mcopy", &args, &env)?;
    let (_io, info, map) = map_of(&img)?;
    let (_, report) = fixture::run_status("fsck.vfat", &["-n", "-v", path_str(&img)?])?;
    let data_start = number_after(&report, "Data area starts at byte")?;
    let cluster: u64 = report
        .lines()
        .find(|l| l.contains("bytes per cluster"))
        .and_then(|l| l.split_whitespace().next())
        .context("no cluster size")?
        .parse()?;
    let used_clusters = {
        let line = report
            .lines()
            .rfind(|l| l.contains(" clusters"))
            .context("no cluster summary")?;
        // "<path>: N files, USED/TOTAL clusters"
        let frac = line
            .split_whitespace()
            .rev()
            .nth(1)
            .context("no used/total")?;
        frac.split('/').next().unwrap_or("").parse::<u64>()?
    };
    assert_eq!(u64::from(info.cluster_size), cluster, "{report}");
    assert_eq!(
        map.used_bytes(),
        data_start + used_clusters * cluster,
        "{info:?}\n{report}"
    );
    let zeroed = join(&dir, "zeroed.img");
    keep_only_used(&img, &map, &zeroed)?;
    let (code, out) = fixture::run_status("fsck.vfat", &["-n", path_str(&zeroed)?])?;
    assert_eq!(code, 0, "fsck.vfat on the zeroed copy:\n{out}");
    let dump = join(&dir, "dump");
    std::fs::create_dir(&dump)?;
    run_env(
        "mcopy",
        &[
            "-s",
            "-n",
            "-i",
            path_str(&zeroed)?,
            "::*",
            path_str(&dump)?,
        ],
        &env,
    )?;
    assert_eq!(compare_trees(&src, &dump)?, 402);
    Ok(map)
}

#[test]
fn fat12_keeps_every_allocated_cluster() -> Result<()> {
    fat_round_trip(Mkfs::Fat12, 8 * MIB, &[])?;
    Ok(())
}

#[test]
fn fat16_keeps_every_allocated_cluster() -> Result<()> {
    fat_round_trip(Mkfs::Fat16, 64 * MIB, &[])?;
    Ok(())
}

#[test]
fn fat32_keeps_every_allocated_cluster() -> Result<()> {
    let map = fat_round_trip(Mkfs::Fat32, 128 * MIB, &[])?;
    assert!(map.used_bytes() < 16 * MIB);
    // An unaligned data region (odd reserved sector count) makes the unit smaller, not wrong.
    let odd = fat_round_trip(Mkfs::Fat32, 320 * MIB, &["-a", "-R", "33", "-s", "8"])?;
    assert!(odd.unit() < 4096, "unit {}", odd.unit());
    Ok(())
}

#[test]
fn exfat_empty_volume_keeps_its_metadata() -> Result<()> {
    // No userspace tool can add files to exFAT without mounting it, so this checks the empty
    // volume: boot regions, FAT, bitmap, upcase table and root directory.
    let dir = tempdir()?;
    for (name, extra) in [("a.img", &[][..]), ("b.img", &["-c", "128K"][..])] {
        let img = join(&dir, name);
        fixture::mkfs(Mkfs::Exfat, &img, 256 * MIB, "Empty", extra)?;
        let (_io, info, map) = map_of(&img)?;
        assert!(
            map.used_bytes() < 8 * MIB,
            "{} used of {info:?}",
            map.used_bytes()
        );
        assert!(map.is_used(0) && map.is_used(12 * 512));
        let zeroed = join(&dir, "zeroed.img");
        keep_only_used(&img, &map, &zeroed)?;
        let (code, out) = fixture::run_status("fsck.exfat", &["-n", path_str(&zeroed)?])?;
        assert_eq!(code, 0, "fsck.exfat on the zeroed copy:\n{out}");
        let again = probe(&FileIo::open(&zeroed)?)?.context("zeroed exfat")?;
        assert_eq!(again.label.as_deref(), Some("Empty"));
    }
    Ok(())
}

#[test]
fn ntfs_keeps_every_cluster_in_its_bitmap() -> Result<()> {
    ntfs_round_trip(&[])?;
    ntfs_round_trip(&["-s", "4096", "-c", "8192"])?;
    ntfs_round_trip(&["-c", "512"])
}

fn ntfs_round_trip(extra: &[&str]) -> Result<()> {
    let dir = tempdir()?;
    let src = join(&dir, "src");
    populate(&src, 60, &[4 << 20, 900_000])?;
    let img = join(&dir, "ntfs.img");
    fixture::mkfs(Mkfs::Ntfs, &img, 128 * MIB, "Filled", extra)?;
    let mut files = Vec::new();
    for sub in std::fs::read_dir(&src)? {
        let sub = sub?.path();
        let list: Vec<_> = if sub.is_dir() {
            std::fs::read_dir(&sub)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?
        } else {
            vec![sub]
        };
        files.extend(list);
    }
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).context("name")?;
        fixture::run("ntfscp", &["-q", path_str(&img)?, path_str(f)?, name])?;
    }
    let (io, info, map) = map_of(&img)?;
    let report = fixture::run("ntfsinfo", &["-m", path_str(&img)?])?;
    let total = number_after(&report, "Volume Size in Clusters:")?;
    let free = number_after(&report, "Free Clusters:")?;
    let cs = u64::from(info.cluster_size);
    // Allocated clusters plus the tail after the last cluster, which holds the backup boot sector.
    assert_eq!(
        map.used_bytes(),
        (total - free) * cs + (io.len() - total * cs),
        "{report}"
    );
    let zeroed = join(&dir, "zeroed.img");
    keep_only_used(&img, &map, &zeroed)?;
    let (code, out) = fixture::run_status("ntfsfix", &["-n", path_str(&zeroed)?])?;
    assert_eq!(code, 0, "ntfsfix -n on the zeroed copy:\n{out}");
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).context("name")?;
        let got = std::process::Command::new(fixture::require("ntfscat")?)
            .args([path_str(&zeroed)?, name])
            .output()?;
        if got.stdout != std::fs::read(f)? {
            bail!("{name} differs after zeroing unused clusters");
        }
    }
    Ok(())
}

#[test]
fn swap_keeps_only_its_header_unless_it_holds_a_hibernation_image() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "swap.img");
    fixture::mkfs(Mkfs::Swap, &img, 64 * MIB, "sw", &[])?;
    let (_io, _info, map) = map_of(&img)?;
    assert_eq!(map.ranges().collect::<Vec<_>>(), vec![0..4096]);
    fixture::poke(&img, 4096 - 10, b"S1SUSPEND\0")?;
    let (_io, info, map) = map_of(&img)?;
    assert_eq!(
        (info.kind, info.version.as_deref()),
        (FsKind::Swsuspend, Some("s1suspend"))
    );
    assert_eq!(map.used_bytes(), 64 * MIB);
    Ok(())
}

#[test]
fn unsupported_and_oversized_file_systems_are_errors() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "cd.iso");
    let tree = join(&dir, "tree");
    std::fs::create_dir(&tree)?;
    std::fs::write(tree.join("a.txt"), b"iso")?;
    fixture::run(
        "genisoimage",
        &["-quiet", "-o", path_str(&img)?, path_str(&tree)?],
    )?;
    let io = FileIo::open(&img)?;
    let info = probe(&io)?.context("iso9660")?;
    assert!(matches!(
        used_map(&io, &info),
        Err(MapError::Unsupported {
            kind: FsKind::Iso9660
        })
    ));
    let img = join(&dir, "ext.img");
    fixture::mkfs(Mkfs::Ext4, &img, 32 * MIB, "e", &[])?;
    let whole = std::fs::read(&img)?;
    let short = MemDisk::from_vec(whole[..(20 * MIB) as usize].to_vec(), 512);
    let info = probe(&short)?.context("ext4")?;
    assert!(matches!(
        used_map(&short, &info),
        Err(MapError::LargerThanPartition { .. })
    ));
    Ok(())
}

/// Block number of group 0's block bitmap, from dumpe2fs.
fn group0_block_bitmap(img: &Path) -> Result<u64> {
    let out = fixture::run("dumpe2fs", &[path_str(img)?])?;
    number_after(&out, "Block bitmap at")
}

#[test]
fn ext4_damaged_bitmap_checksum_or_counts_are_errors() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "e.img");
    fixture::mkfs(Mkfs::Ext4, &img, 64 * MIB, "e", &["-b", "4096"])?;
    let pristine = std::fs::read(&img)?;
    // A flipped bit far into group 0's bitmap: the checksum no longer matches.
    let bitmap = group0_block_bitmap(&img)?;
    fixture::poke(&img, bitmap * 4096 + 1000, &[0x5a])?;
    let io = FileIo::open(&img)?;
    let info = probe(&io)?.context("ext4")?;
    assert!(matches!(
        used_map(&io, &info),
        Err(MapError::BitmapChecksum { group: 0, .. })
    ));
    // A superblock free count that disagrees with the bitmaps.
    std::fs::write(&img, &pristine)?;
    let free = u32::from_le_bytes(pristine[1024 + 12..1024 + 16].try_into()?);
    fixture::poke(&img, 1024 + 12, &(free - 7).to_le_bytes())?;
    let io = FileIo::open(&img)?;
    let err = used_map(&io, &info)
        .err()
        .context("a wrong free count must fail")?;
    assert!(matches!(err, MapError::FreeCountMismatch { .. }), "{err}");
    // A journal that needs recovery: the bitmaps on disk may be stale.
    std::fs::write(&img, &pristine)?;
    let incompat = u32::from_le_bytes(pristine[1024 + 96..1024 + 100].try_into()?);
    fixture::poke(&img, 1024 + 96, &(incompat | 4).to_le_bytes())?;
    let io = FileIo::open(&img)?;
    let info = probe(&io)?.context("ext4")?;
    assert!(info.needs_check);
    assert!(matches!(
        used_map(&io, &info),
        Err(MapError::NeedsCheck { .. })
    ));
    Ok(())
}

#[test]
fn fat_entry_pointing_outside_the_volume_is_an_error() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "f.img");
    fixture::mkfs(Mkfs::Fat16, &img, 32 * MIB, "F", &[])?;
    let io = FileIo::open(&img)?;
    let info = probe(&io)?.context("fat16")?;
    let reserved = u64::from(u16::from_le_bytes(std::fs::read(&img)?[14..16].try_into()?));
    // Cluster 7 points at 0xFFF0, a reserved value past the last cluster.
    fixture::poke(&img, reserved * 512 + 7 * 2, &0xFFF0u16.to_le_bytes())?;
    let io2 = FileIo::open(&img)?;
    let err = used_map(&io2, &info).err().context("must fail")?;
    assert!(
        matches!(
            err,
            MapError::FatEntryOutOfRange {
                cluster: 7,
                value: 0xFFF0,
                ..
            }
        ),
        "{err}"
    );
    drop(io);
    Ok(())
}

/// Real fixtures with random bytes changed in their metadata: probe + used_map must never panic,
/// and every map covers exactly the partition.
#[test]
fn used_map_survives_seeded_mutations_of_real_metadata() -> Result<()> {
    let dir = tempdir()?;
    let mut images = Vec::new();
    for (i, (kind, size, extra)) in [
        (Mkfs::Ext4, 16 * MIB, &["-b", "1024"][..]),
        (
            Mkfs::Ext4,
            32 * MIB,
            &["-b", "4096", "-O", "bigalloc", "-C", "16384"][..],
        ),
        (Mkfs::Fat12, 4 * MIB, &[][..]),
        (Mkfs::Fat16, 20 * MIB, &[][..]),
        (Mkfs::Fat32, 40 * MIB, &[][..]),
        (Mkfs::Exfat, 16 * MIB, &[][..]),
        (Mkfs::Ntfs, 16 * MIB, &[][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let img = join(&dir, &format!("{i}.img"));
        fixture::mkfs(kind, &img, size, "MUT", extra)?;
        let disk = MemDisk::from_vec(std::fs::read(&img)?, 512);
        // Mutate where the metadata is: the first MiB, and for NTFS around the MFT.
        let info = probe(&disk)?.context("fixture")?;
        let mut hot = vec![(0u64, MIB.min(disk.len()))];
        if info.kind == FsKind::Ntfs {
            let b = std::fs::read(&img)?;
            let mft = u64::from_le_bytes(b[48..56].try_into()?) * u64::from(info.cluster_size);
            hot.push((mft, 16 * 1024));
        }
        images.push((disk, hot));
    }
    let mapped = mutate_and_map(&images, 0xfeed, 2000, 6)?;
    assert!(mapped > 500, "most mutations still map: {mapped}");
    Ok(())
}
