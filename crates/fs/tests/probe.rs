//! `fs::probe` on images made by the real tools, checked against `blkid -p` as the oracle.

mod common;

use anyhow::{bail, Context, Result};
use common::{blkid, join, path_str, tempdir, FileIo, Rng};
use disk::{BlockIo, MemDisk, Window};
use fs::{probe, FsInfo, FsKind};
use qemu_tests::fixture::{self, Mkfs};
use std::path::Path;

const MIB: u64 = 1 << 20;

/// Probes `path` and checks TYPE, LABEL, UUID (and VERSION where both name it) against blkid.
fn probe_matches_blkid(path: &Path) -> Result<FsInfo> {
    let io = FileIo::open(path)?;
    let info = probe(&io)?.with_context(|| format!("nothing recognised on {}", path.display()))?;
    let oracle = blkid(path)?;
    assert_eq!(
        oracle.get("TYPE").map(String::as_str),
        Some(info.kind.name()),
        "{oracle:?}"
    );
    assert_eq!(
        oracle.get("LABEL"),
        info.label.as_ref(),
        "label of {info:?} vs {oracle:?}"
    );
    assert_eq!(
        oracle.get("UUID"),
        info.uuid.as_ref(),
        "uuid of {info:?} vs {oracle:?}"
    );
    if info.kind == FsKind::Vfat {
        assert_eq!(oracle.get("VERSION"), info.version.as_ref());
    }
    assert!(
        info.warnings.is_empty(),
        "unexpected warnings {:?}",
        info.warnings
    );
    assert!(
        info.size > 0 && info.size <= io.len(),
        "size {} of {}",
        info.size,
        io.len()
    );
    assert!(
        info.cluster_size >= info.block_size && info.block_size > 0,
        "{info:?}"
    );
    Ok(info)
}

fn mkfs(kind: Mkfs, size: u64, label: &str, extra: &[&str]) -> Result<(tempfile::TempDir, FsInfo)> {
    let dir = tempdir()?;
    let img = join(&dir, "fs.img");
    fixture::mkfs(kind, &img, size, label, extra)?;
    let info = probe_matches_blkid(&img)?;
    Ok((dir, info))
}

#[test]
fn ext2_with_1k_blocks_is_ext2() -> Result<()> {
    let (_d, info) = mkfs(Mkfs::Ext2, 32 * MIB, "old-ext2", &["-b", "1024"])?;
    assert_eq!(info.kind, FsKind::Ext2);
    assert_eq!((info.block_size, info.size), (1024, 32 * MIB));
    assert!(!info.needs_check);
    assert_eq!(info.state.as_deref(), Some("clean"));
    Ok(())
}

#[test]
fn ext3_is_recognised_by_its_journal() -> Result<()> {
    let (_d, info) = mkfs(Mkfs::Ext3, 32 * MIB, "jour", &[])?;
    assert_eq!(info.kind, FsKind::Ext3);
    Ok(())
}

#[test]
fn ext4_variants_report_block_and_cluster_sizes() -> Result<()> {
    let (_d, info) = mkfs(Mkfs::Ext4, 64 * MIB, "root", &["-b", "4096"])?;
    assert_eq!(
        (info.kind, info.block_size, info.cluster_size),
        (FsKind::Ext4, 4096, 4096)
    );
    let (_d, info) = mkfs(Mkfs::Ext4, 32 * MIB, "small", &["-b", "1024"])?;
    assert_eq!((info.kind, info.block_size), (FsKind::Ext4, 1024));
    let (_d, info) = mkfs(
        Mkfs::Ext4,
        256 * MIB,
        "big",
        &["-b", "4096", "-O", "64bit,bigalloc", "-C", "65536"],
    )?;
    assert_eq!(
        (info.kind, info.block_size, info.cluster_size),
        (FsKind::Ext4, 4096, 65536)
    );
    assert_eq!(info.size, 256 * MIB);
    Ok(())
}

#[test]
fn ext4_with_errors_state_needs_check() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "fs.img");
    fixture::mkfs(Mkfs::Ext4, &img, 32 * MIB, "dirty", &[])?;
    // s_state at superblock offset 58: clear "cleanly unmounted", set "errors".
    fixture::poke(&img, 1024 + 58, &2u16.to_le_bytes())?;
    let info = probe(&FileIo::open(&img)?)?.context("ext4")?;
    assert!(info.needs_check);
    assert_eq!(info.state.as_deref(), Some("errors"));
    Ok(())
}

#[test]
fn fat_width_follows_the_cluster_count() -> Result<()> {
    let (_d, info) = mkfs(Mkfs::Fat12, 4 * MIB, "F12", &[])?;
    assert_eq!(info.version.as_deref(), Some("FAT12"));
    let (_d, info) = mkfs(Mkfs::Fat16, 64 * MIB, "F16", &[])?;
    assert_eq!(info.version.as_deref(), Some("FAT16"));
    let (_d, info) = mkfs(Mkfs::Fat32, 64 * MIB, "F32 DATA", &["-s", "1"])?;
    assert_eq!(
        (info.version.as_deref(), info.cluster_size),
        (Some("FAT32"), 512)
    );
    assert_eq!(info.label.as_deref(), Some("F32 DATA"));
    Ok(())
}

#[test]
fn fat_without_label_has_none() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "fs.img");
    fixture::sparse_file(&img, 8 * MIB)?;
    fixture::run("mkfs.vfat", &[path_str(&img)?])?;
    let info = probe_matches_blkid(&img)?;
    assert_eq!(info.label, None);
    Ok(())
}

#[test]
fn exfat_label_comes_from_the_root_directory() -> Result<()> {
    let (_d, info) = mkfs(Mkfs::Exfat, 64 * MIB, "Sticky", &[])?;
    assert_eq!(info.kind, FsKind::Exfat);
    assert_eq!(info.label.as_deref(), Some("Sticky"));
    assert!(!info.needs_check);
    Ok(())
}

#[test]
fn ntfs_label_comes_from_the_volume_record() -> Result<()> {
    let (_d, info) = mkfs(Mkfs::Ntfs, 64 * MIB, "Windows Data", &[])?;
    assert_eq!(info.kind, FsKind::Ntfs);
    assert_eq!(info.label.as_deref(), Some("Windows Data"));
    assert_eq!(info.uuid.as_ref().map(String::len), Some(16));
    assert_eq!(info.state.as_deref(), Some("clean"));
    Ok(())
}

#[test]
fn ntfs_with_small_clusters_and_4k_sectors_is_read() -> Result<()> {
    let (_d, info) = mkfs(Mkfs::Ntfs, 64 * MIB, "c512", &["-c", "512"])?;
    assert_eq!(info.cluster_size, 512);
    assert_eq!(info.label.as_deref(), Some("c512"));
    let (_d, info) = mkfs(Mkfs::Ntfs, 64 * MIB, "s4k", &["-s", "4096", "-c", "4096"])?;
    assert_eq!(
        (info.block_size, info.label.as_deref()),
        (4096, Some("s4k"))
    );
    Ok(())
}

#[test]
fn swap_btrfs_and_xfs_are_recognised() -> Result<()> {
    let (_d, info) = mkfs(Mkfs::Swap, 16 * MIB, "swappy", &[])?;
    assert_eq!((info.kind, info.size), (FsKind::Swap, 16 * MIB));
    let (_d, info) = mkfs(Mkfs::Btrfs, 128 * MIB, "butter", &[])?;
    assert_eq!((info.kind, info.size), (FsKind::Btrfs, 128 * MIB));
    let (_d, info) = mkfs(Mkfs::Xfs, 320 * MIB, "xfsvol", &[])?;
    assert_eq!((info.kind, info.size), (FsKind::Xfs, 320 * MIB));
    Ok(())
}

fn luks(version: &str, label: Option<&str>) -> Result<FsInfo> {
    let dir = tempdir()?;
    let img = join(&dir, "luks.img");
    let key = join(&dir, "key");
    std::fs::write(&key, b"correct horse battery staple")?;
    let label_args: Vec<&str> = label.map(|l| vec!["--label", l]).unwrap_or_default();
    fixture::luks_format(&img, 32 * MIB, version, &key, &label_args)?;
    probe_matches_blkid(&img)
}

#[test]
fn luks1_and_luks2_report_version_uuid_and_label() -> Result<()> {
    let one = luks("luks1", None)?;
    assert_eq!(
        (one.kind, one.version.as_deref()),
        (FsKind::CryptoLuks, Some("LUKS1"))
    );
    let two = luks("luks2", Some("vault"))?;
    assert_eq!(two.version.as_deref(), Some("LUKS2"));
    assert_eq!(two.label.as_deref(), Some("vault"));
    Ok(())
}

/// A loop device for `pvcreate`, which refuses plain files; detached on drop.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = fixture::run("losetup", &["-d", &self.0]);
    }
}

#[test]
fn lvm2_physical_volume_is_recognised() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "pv.img");
    fixture::sparse_file(&img, 64 * MIB)?;
    let dev = fixture::run("losetup", &["-f", "--show", path_str(&img)?])
        .context("pvcreate needs a loop device and losetup failed")?;
    let lo = Loop(dev.trim().to_string());
    fixture::run("pvcreate", &["-q", "-ff", "-y", &lo.0])?;
    drop(lo);
    let info = probe_matches_blkid(&img)?;
    assert_eq!(
        (info.kind, info.version.as_deref()),
        (FsKind::Lvm2Member, Some("LVM2 001"))
    );
    Ok(())
}

#[test]
fn iso9660_volume_id_is_the_label() -> Result<()> {
    let dir = tempdir()?;
    let src = join(&dir, "src");
    std::fs::create_dir(&src)?;
    std::fs::write(src.join("readme.txt"), b"hello")?;
    let img = join(&dir, "cd.iso");
    fixture::run(
        "genisoimage",
        &[
            "-quiet",
            "-V",
            "RESCUE_CD",
            "-o",
            path_str(&img)?,
            path_str(&src)?,
        ],
    )?;
    let info = probe_matches_blkid(&img)?;
    assert_eq!(
        (info.kind, info.label.as_deref()),
        (FsKind::Iso9660, Some("RESCUE_CD"))
    );
    let img = join(&dir, "joliet.iso");
    fixture::run(
        "genisoimage",
        &[
            "-quiet",
            "-J",
            "-V",
            "Mixed Case",
            "-o",
            path_str(&img)?,
            path_str(&src)?,
        ],
    )?;
    let info = probe_matches_blkid(&img)?;
    assert_eq!(info.label.as_deref(), Some("Mixed Case"));
    Ok(())
}

#[test]
fn zeros_and_random_bytes_are_not_a_file_system() -> Result<()> {
    let zeros = MemDisk::new(4 * MIB as usize, 512);
    assert_eq!(probe(&zeros)?, None);
    let mut rng = Rng::new(7);
    for _ in 0..20 {
        let data: Vec<u8> = (0..256 * 1024).map(|_| rng.next() as u8).collect();
        assert_eq!(probe(&MemDisk::from_vec(data, 512))?, None);
    }
    let tiny = MemDisk::new(100, 512);
    assert_eq!(probe(&tiny)?, None);
    Ok(())
}

#[test]
fn truncated_superblocks_are_not_recognised_and_short_partitions_warn() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "fs.img");
    fixture::mkfs(Mkfs::Ext4, &img, 32 * MIB, "cut", &[])?;
    let whole = std::fs::read(&img)?;
    // The superblock is cut in the middle: nothing to recognise.
    let cut = MemDisk::from_vec(whole[..1500].to_vec(), 512);
    assert_eq!(probe(&cut)?, None);
    // A partition smaller than the file system claims: recognised, with a warning.
    let short = MemDisk::from_vec(whole[..(16 * MIB) as usize].to_vec(), 512);
    let info = probe(&short)?.context("ext4 on a short partition")?;
    assert_eq!(info.kind, FsKind::Ext4);
    assert_eq!(info.warnings.len(), 1, "{:?}", info.warnings);
    Ok(())
}

#[test]
fn probe_reads_through_a_partition_window() -> Result<()> {
    let dir = tempdir()?;
    let fsimg = join(&dir, "fs.img");
    fixture::mkfs(Mkfs::Fat32, &fsimg, 64 * MIB, "INWINDOW", &[])?;
    let disk_img = join(&dir, "disk.img");
    fixture::sparse_file(&disk_img, 70 * MIB)?;
    fixture::write_into(&disk_img, MIB, &fsimg)?;
    let disk = FileIo::open(&disk_img)?;
    let part = Window::new(&disk, MIB, 64 * MIB)?;
    let info = probe(&part)?.context("fat32 in a window")?;
    assert_eq!(info.label.as_deref(), Some("INWINDOW"));
    assert_eq!(probe(&disk)?, None, "the disk itself starts with zeros");
    Ok(())
}

/// Images whose first 1 MiB is mutated at random; `probe` must never panic and never report a
/// size of zero blocks.
#[test]
fn probe_survives_seeded_mutations_of_real_superblocks() -> Result<()> {
    let dir = tempdir()?;
    let mut images = Vec::new();
    for (i, (kind, size, extra)) in [
        (Mkfs::Ext4, 32 * MIB, &[][..]),
        (Mkfs::Fat12, 4 * MIB, &[][..]),
        (Mkfs::Fat32, 40 * MIB, &[][..]),
        (Mkfs::Exfat, 16 * MIB, &[][..]),
        (Mkfs::Ntfs, 16 * MIB, &[][..]),
        (Mkfs::Swap, 4 * MIB, &[][..]),
        (Mkfs::Btrfs, 128 * MIB, &[][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let img = join(&dir, &format!("{i}.img"));
        fixture::mkfs(kind, &img, size, "MUT", extra)?;
        images.push(MemDisk::from_vec(std::fs::read(&img)?, 512));
    }
    let mut rng = Rng::new(0x5eed);
    let mut recognised = 0;
    for round in 0..3000 {
        let disk = &images[round % images.len()];
        let hot = disk.len().min(MIB + 4096);
        // Mutate a few bytes, remembering the originals to restore them afterwards.
        let mut undo = Vec::new();
        for _ in 0..1 + rng.below(8) {
            let off = rng.below(hot);
            let mut old = [0u8];
            disk.read_at(&mut old, off)?;
            undo.push((off, old));
            disk.write_at(&[rng.next() as u8], off)?;
        }
        let result = probe(disk);
        for (off, old) in undo.into_iter().rev() {
            disk.write_at(&old, off)?;
        }
        match result {
            Ok(Some(info)) => {
                recognised += 1;
                if info.block_size == 0 {
                    bail!("round {round}: zero block size in {info:?}");
                }
            }
            Ok(None) => {}
            Err(e) => bail!("round {round}: in-memory read failed: {e}"),
        }
    }
    assert!(
        recognised > 1000,
        "most one-byte mutations keep the file system: {recognised}"
    );
    Ok(())
}

#[test]
fn hybrid_iso_with_boot_code_and_gpt_is_iso9660() -> Result<()> {
    let dir = tempdir()?;
    let src = join(&dir, "src");
    std::fs::create_dir_all(src.join("boot/grub"))?;
    std::fs::write(src.join("boot/grub/grub.cfg"), b"set timeout=0\n")?;
    let img = join(&dir, "hybrid.iso");
    fixture::run(
        "grub-mkrescue",
        &[
            "-o",
            path_str(&img)?,
            path_str(&src)?,
            "--",
            "-volid",
            "HYBRID",
        ],
    )?;
    let info = probe_matches_blkid(&img)?;
    assert_eq!(
        (info.kind, info.label.as_deref()),
        (FsKind::Iso9660, Some("HYBRID"))
    );
    Ok(())
}

#[test]
fn fs_info_serialises_with_blkid_type_names() -> Result<()> {
    let (_d, info) = mkfs(Mkfs::Fat32, 64 * MIB, "JSON", &[])?;
    let json = serde_json::to_value(&info)?;
    assert_eq!(json["kind"], "vfat");
    assert_eq!(json["version"], "FAT32");
    assert_eq!(json["label"], "JSON");
    assert_eq!(FsKind::CryptoLuks.to_string(), "crypto_LUKS");
    Ok(())
}
