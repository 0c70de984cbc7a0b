//! What a backup keeps of an md RAID1 member (`fs::md::member_map`): the member whose superblock
//! mdadm wrote in the booted image (the fuzz seed `md-1.2-raid1-member-mdadm.sparse`, its first
//! 8 KiB of a 10 MiB member) with an ext4 made by `mke2fs -d` at the data offset the superblock
//! records — what a RAID1 member holds, a plain copy of the array's data. The proof: a copy with
//! every byte outside the map zeroed still has the same superblock and an ext4 that checks clean
//! with the same file, and the map is far smaller than the member. The QEMU test
//! (`qemu-tests/tests/volumes.rs`) does the same with a member mdadm made and reassembles it.
#![allow(dead_code, clippy::unwrap_used)]

mod common;

use anyhow::{Context, Result};
use common::{join, keep_only_used, path_str, tempdir, FileIo};
use qemu_tests::fixture::{self, run, Mkfs};
use std::os::unix::fs::FileExt;

const MIB: u64 = 1 << 20;

include!("../fuzz/entry.rs");

/// A 10 MiB member: mdadm's superblock area and an ext4 (with `data.bin`) in its data area.
fn member(dir: &tempfile::TempDir) -> Result<(std::path::PathBuf, Vec<u8>)> {
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/containers/md-1.2-raid1-member-mdadm.sparse");
    let head = decode(&std::fs::read(seed)?);
    let img = join(dir, "member.img");
    fixture::sparse_file(&img, 10 * MIB)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)?
        .write_all_at(&head[..8192], 0)?;
    let m = fs::md::read(&FileIo::open(&img)?)?.context("no md superblock")?;
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let tree = join(dir, "tree");
    std::fs::create_dir_all(&tree)?;
    let data = fixture::noise(7, 1_500_000);
    std::fs::write(tree.join("data.bin"), &data)?;
    let ext4 = join(dir, "ext4.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &ext4,
        m.data_size,
        "mdroot",
        &["-d", path_str(&tree)?],
    )?;
    fixture::write_into(&img, m.data_offset, &ext4)?;
    Ok((img, data))
}

#[test]
fn a_raid1_member_keeps_its_superblock_and_the_used_blocks_of_the_ext4_inside() -> Result<()> {
    let dir = tempdir()?;
    let (img, data) = member(&dir)?;
    let io = FileIo::open(&img)?;
    let m = fs::md::read(&io)?.context("no md superblock")?;
    let (map, inside) = fs::md::member_map(&io)?;
    assert_eq!(inside, "ext4");
    // Everything before the data (superblock, bitmap) is kept.
    assert!(map
        .ranges()
        .next()
        .is_some_and(|r| r.start == 0 && r.end >= m.data_offset));
    // Exactly the metadata areas plus what the ext4 on its own maps as used.
    let ext4 = FileIo::open(&join(&dir, "ext4.img"))?;
    let info = fs::probe(&ext4)?.context("no ext4")?;
    let inner = fs::used_map(&ext4, &info)?.used_bytes();
    let tail = 10 * MIB - (m.data_offset + m.data_size);
    let used = map.used_bytes();
    assert_eq!(used, m.data_offset + tail + inner);
    assert!(
        used > data.len() as u64 && used < 6 * MIB,
        "{used} bytes kept of a 10 MiB member holding a 1.5 MB file"
    );
    let kept = join(&dir, "kept.img");
    keep_only_used(&img, &map, &kept)?;
    assert_eq!(fs::md::read(&FileIo::open(&kept)?)?, Some(m.clone()));
    // The ext4 at the data offset, cut out of the copy, checks clean and holds the same file.
    let inner = join(&dir, "inner.img");
    let mut buf = vec![0u8; m.data_size as usize];
    std::fs::File::open(&kept)?.read_exact_at(&mut buf, m.data_offset)?;
    std::fs::write(&inner, &buf)?;
    run("e2fsck", &["-fn", path_str(&inner)?])?;
    let out = join(&dir, "data.out");
    run(
        "debugfs",
        &[
            "-R",
            &format!("dump /data.bin {}", path_str(&out)?),
            path_str(&inner)?,
        ],
    )?;
    assert!(
        std::fs::read(&out)? == data,
        "data.bin differs in the kept copy"
    );
    Ok(())
}

#[test]
fn a_member_whose_superblock_fails_its_checksum_is_imaged_whole() -> Result<()> {
    let dir = tempdir()?;
    let (img, _) = member(&dir)?;
    // One byte of the array name changed: the checksum no longer matches.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)?
        .write_all_at(b"X", 4096 + 32)?;
    let e = fs::md::member_map(&FileIo::open(&img)?).unwrap_err();
    assert!(
        matches!(e, fs::MapError::ImagedWhole { .. }) && e.to_string().contains("checksum"),
        "{e}"
    );
    Ok(())
}

#[test]
fn a_member_with_nothing_known_in_its_data_area_is_imaged_whole() -> Result<()> {
    let dir = tempdir()?;
    let (img, _) = member(&dir)?;
    let m = fs::md::read(&FileIo::open(&img)?)?.context("no md superblock")?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)?
        .write_all_at(&vec![0u8; 1 << 20], m.data_offset)?;
    let e = fs::md::member_map(&FileIo::open(&img)?).unwrap_err();
    assert!(e.to_string().contains("no known file system"), "{e}");
    Ok(())
}
