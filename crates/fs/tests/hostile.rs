//! Hostile file systems, made by the real tools and then patched: sizes that would allocate
//! terabytes, repeated names, folders that loop, cluster chains that loop. Every reader must give
//! an error or a bounded answer, never abort, panic or hang.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::{tempdir, FileIo};
use fs::browse::{Browser, EntryKind};
use qemu_tests::fixture::{self, Mkfs};

fn le16(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn open(path: &Path) -> Result<Box<dyn Browser>> {
    fs::browse::open(Box::new(FileIo::open(path)?)).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The reproduction: a 64 MiB `mkfs.ext4 -O 64bit` file, truncated (sparse) to 9 TiB,
/// with `s_blocks_count` = 2^40 and `s_blocks_per_group` = 8. Reading it used to die with
/// "memory allocation of 1099511627776 bytes failed".
#[test]
fn ext4_with_2_pow_40_blocks_in_groups_of_8_is_refused_without_allocating() -> Result<()> {
    let dir = tempdir()?;
    let img = dir.path().join("huge.img");
    fixture::mkfs(Mkfs::Ext4, &img, 64 << 20, "huge", &["-O", "64bit"])?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)?
        .set_len(9 << 40)?;
    // s_blocks_count_lo (0x04) = 0, s_blocks_count_hi (0x150) = 256: 2^40 blocks.
    fixture::poke(&img, 1024 + 0x04, &0u32.to_le_bytes())?;
    fixture::poke(&img, 1024 + 0x150, &256u32.to_le_bytes())?;
    // s_blocks_per_group (0x20) = 8, s_clusters_per_group (0x24) = 8.
    fixture::poke(&img, 1024 + 0x20, &8u32.to_le_bytes())?;
    fixture::poke(&img, 1024 + 0x24, &8u32.to_le_bytes())?;

    let err = open(&img)
        .err()
        .context("a 2^37-group file system opened")?;
    let msg = err.to_string();
    ensure!(msg.contains("block groups"), "unexpected error: {msg}");

    let io = FileIo::open(&img)?;
    let info = fs::probe(&io)?.context("the superblock is still an ext4 superblock")?;
    let map = fs::used_map(&io, &info);
    ensure!(map.is_err(), "a used map of 2^37 groups was made");
    Ok(())
}

/// Groups that fit the cap but whose descriptor table is larger than the medium are refused.
#[test]
fn ext4_whose_descriptors_cannot_fit_the_device_is_refused() -> Result<()> {
    let dir = tempdir()?;
    let img = dir.path().join("short.img");
    fixture::mkfs(Mkfs::Ext4, &img, 64 << 20, "short", &["-O", "64bit"])?;
    // 2^26 blocks of 1 KiB... in groups of 8: 2^23 groups (under the cap), 512 MiB of
    // descriptors on a 64 MiB device.
    fixture::poke(&img, 1024 + 0x04, &(1u32 << 26).to_le_bytes())?;
    fixture::poke(&img, 1024 + 0x150, &0u32.to_le_bytes())?;
    fixture::poke(&img, 1024 + 0x20, &8u32.to_le_bytes())?;
    fixture::poke(&img, 1024 + 0x24, &8u32.to_le_bytes())?;
    let err = open(&img).err().context("opened")?;
    ensure!(err.to_string().contains("do not fit"), "{err}");
    Ok(())
}

/// Finds the folder entry holding `name` (with the filetype byte layout of mkfs.ext4) and
/// renames it in place to `new` (same length), like a crafted or damaged folder would hold.
fn rename_ext_entry(img: &Path, name: &[u8], new: &[u8]) -> Result<()> {
    let bytes = std::fs::read(img)?;
    let mut hit = None;
    for at in 0..bytes.len().saturating_sub(8 + name.len()) {
        if bytes[at + 8..].starts_with(name)
            && usize::from(bytes[at + 6]) == name.len()
            && bytes[at + 7] == 1
            && le16(&bytes, at + 4) >= 8 + name.len() as u64
        {
            hit = Some(at);
            break;
        }
    }
    let at = hit.with_context(|| format!("no folder entry {name:?}"))?;
    fixture::poke(img, (at + 8) as u64, new)
}

#[test]
fn ext4_folder_holding_one_name_twice_lists_both_entries() -> Result<()> {
    let dir = tempdir()?;
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree)?;
    std::fs::write(tree.join("twin1"), b"first")?;
    std::fs::write(tree.join("twin2"), b"second, longer")?;
    let img = dir.path().join("twins.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &img,
        8 << 20,
        "twins",
        &["-d", fixture::path(&tree)?],
    )?;
    rename_ext_entry(&img, b"twin2", b"twin1")?;
    let mut b = open(&img)?;
    let entries = b.read_dir("/").map_err(|e| anyhow::anyhow!("{e}"))?;
    let twins: Vec<_> = entries.iter().filter(|e| e.name == "twin1").collect();
    ensure!(
        twins.len() == 2,
        "expected both entries named twin1, got {entries:?}"
    );
    let mut sizes: Vec<u64> = twins.iter().map(|e| e.size).collect();
    sizes.sort_unstable();
    ensure!(
        sizes == [5, 14],
        "the two entries are not the two files: {sizes:?}"
    );
    Ok(())
}

/// FAT12 geometry from the boot sector: (bytes per cluster, root folder offset, data offset,
/// first FAT offset).
fn fat_geometry(bytes: &[u8]) -> (u64, u64, u64, u64) {
    let bps = le16(bytes, 11);
    let spc = u64::from(bytes[13]);
    let reserved = le16(bytes, 14);
    let fats = u64::from(bytes[16]);
    let root_entries = le16(bytes, 17);
    let fat_sectors = le16(bytes, 22);
    let fat = reserved * bps;
    let root = fat + fats * fat_sectors * bps;
    let data = root + root_entries * 32;
    (spc * bps, root, data, fat)
}

/// The offset of the 32-byte short entry named `short` (11 bytes, space padded) in `[from,
/// from+len)`.
fn fat_entry(bytes: &[u8], from: u64, len: u64, short: &[u8; 11]) -> Result<u64> {
    (from..from + len)
        .step_by(32)
        .find(|&at| bytes[at as usize..].starts_with(short))
        .with_context(|| format!("no entry {:?}", String::from_utf8_lossy(short)))
}

fn make_fat_with_nested_folders(dir: &Path) -> Result<std::path::PathBuf> {
    let img = dir.join("fat.img");
    fixture::mkfs(Mkfs::Fat16, &img, 16 << 20, "LOOPS", &[])?;
    let i = fixture::path(&img)?;
    fixture::run("mmd", &["-i", i, "::/D1", "::/D1/D2"])?;
    let f = dir.join("f.txt");
    std::fs::write(&f, b"inside")?;
    fixture::run("mcopy", &["-i", i, fixture::path(&f)?, "::/D1/D2/F.TXT"])?;
    Ok(img)
}

#[test]
fn fat_folder_entry_pointing_at_its_parent_is_left_out() -> Result<()> {
    let dir = tempdir()?;
    let img = make_fat_with_nested_folders(dir.path())?;
    let bytes = std::fs::read(&img)?;
    let (cluster, root, data, _) = fat_geometry(&bytes);
    let d1 = fat_entry(&bytes, root, data - root, b"D1         ")?;
    let c1 = le16(&bytes, d1 as usize + 26);
    let d1_data = data + (c1 - 2) * cluster;
    let d2 = fat_entry(&bytes, d1_data, cluster, b"D2         ")?;
    // D2 now starts where D1 starts: /D1/D2 is /D1, and a walk would never end.
    fixture::poke(&img, d2 + 26, &(c1 as u16).to_le_bytes())?;
    let mut b = open(&img)?;
    let listed = b.read_dir("/D1").map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        listed.iter().all(|e| e.name != "D2"),
        "the looping entry was listed: {listed:?}"
    );
    Ok(())
}

#[test]
fn fat_folder_whose_cluster_chain_loops_ends_with_an_error_or_a_bounded_listing() -> Result<()> {
    let dir = tempdir()?;
    let img = make_fat_with_nested_folders(dir.path())?;
    let bytes = std::fs::read(&img)?;
    let (_, root, data, fat) = fat_geometry(&bytes);
    let d1 = fat_entry(&bytes, root, data - root, b"D1         ")?;
    let c1 = le16(&bytes, d1 as usize + 26);
    // FAT16: the entry of D1's cluster points to itself.
    fixture::poke(&img, fat + c1 * 2, &(c1 as u16).to_le_bytes())?;
    let started = Instant::now();
    let mut b = open(&img)?;
    let listed = b.read_dir("/D1");
    ensure!(
        started.elapsed() < Duration::from_secs(60),
        "listing a looping folder took {:?}",
        started.elapsed()
    );
    if let Ok(entries) = listed {
        ensure!(
            entries.len() <= fs::browse::MAX_DIR_ENTRIES,
            "{} entries",
            entries.len()
        );
    }
    Ok(())
}

#[test]
fn fat_file_listing_still_reads_through_good_folders() -> Result<()> {
    let dir = tempdir()?;
    let img = make_fat_with_nested_folders(dir.path())?;
    let mut b = open(&img)?;
    let listed = b.read_dir("/D1/D2").map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        listed.len() == 1 && listed[0].name == "F.TXT" && listed[0].kind == EntryKind::File,
        "{listed:?}"
    );
    Ok(())
}

/// An NTFS volume (mkntfs + ntfscp) holding `twin-one.txt` and `twin-two.txt`, whose UTF-16
/// names (in the folder index and in the file records) are then replaced by `first` and
/// `second`, which must be as long as the originals.
fn ntfs_with_renamed_twins(
    dir: &Path,
    first: &[u16],
    second: &[u16],
) -> Result<std::path::PathBuf> {
    let img = dir.join("ntfs.img");
    fixture::mkfs(Mkfs::Ntfs, &img, 4 << 20, "twins", &[])?;
    let (one, two) = (dir.join("one"), dir.join("two"));
    std::fs::write(&one, b"first")?;
    std::fs::write(&two, b"second, longer")?;
    let i = fixture::path(&img)?;
    fixture::run("ntfscp", &[i, fixture::path(&one)?, "twin-one.txt"])?;
    fixture::run("ntfscp", &[i, fixture::path(&two)?, "twin-two.txt"])?;
    let mut bytes = std::fs::read(&img)?;
    let utf16 = |units: &[u16]| -> Vec<u8> { units.iter().flat_map(|u| u.to_le_bytes()).collect() };
    for (from, to) in [("twin-one.txt", first), ("twin-two.txt", second)] {
        let from: Vec<u16> = from.encode_utf16().collect();
        ensure!(
            from.len() == to.len(),
            "replacement names must keep the length"
        );
        let (from, to) = (utf16(&from), utf16(to));
        let mut n = 0;
        let mut at = 0;
        while let Some(k) = bytes[at..].windows(from.len()).position(|w| w == from) {
            bytes[at + k..at + k + to.len()].copy_from_slice(&to);
            at += k + to.len();
            n += 1;
        }
        ensure!(
            n >= 2,
            "{n} copies of a name found (index entry and file record expected)"
        );
    }
    std::fs::write(&img, bytes)?;
    Ok(img)
}

#[test]
fn ntfs_index_holding_one_name_twice_lists_both_entries() -> Result<()> {
    let dir = tempdir()?;
    let same: Vec<u16> = "twin-one.txt".encode_utf16().collect();
    let img = ntfs_with_renamed_twins(dir.path(), &same, &same)?;
    let mut b = open(&img)?;
    let entries = b.read_dir("/").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sizes: Vec<u64> = entries
        .iter()
        .filter(|e| e.name == "twin-one.txt")
        .map(|e| e.size)
        .collect();
    sizes.sort_unstable();
    ensure!(sizes == [5, 14], "expected both files, got {entries:?}");
    Ok(())
}

#[test]
fn ntfs_names_that_decode_to_one_string_are_both_listed() -> Result<()> {
    let dir = tempdir()?;
    // Unpaired surrogates D800 and D801 both decode to U+FFFD: two different NTFS names, one
    // string.
    let name = |s: u16| -> Vec<u16> {
        let mut v: Vec<u16> = "twin-".encode_utf16().collect();
        v.push(s);
        v.extend("ne.txt".encode_utf16());
        v
    };
    let img = ntfs_with_renamed_twins(dir.path(), &name(0xD800), &name(0xD801))?;
    let mut b = open(&img)?;
    let entries = b.read_dir("/").map_err(|e| anyhow::anyhow!("{e}"))?;
    let same: Vec<_> = entries
        .iter()
        .filter(|e| e.name == "twin-\u{FFFD}ne.txt")
        .collect();
    ensure!(
        same.len() == 2,
        "expected two entries with one name, got {entries:?}"
    );
    Ok(())
}

#[test]
fn ext4_folder_entry_linking_to_the_root_is_left_out() -> Result<()> {
    let dir = tempdir()?;
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("d/e"))?;
    std::fs::write(tree.join("d/e/f"), b"x")?;
    let img = dir.path().join("loop.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &img,
        8 << 20,
        "loop",
        &["-d", fixture::path(&tree)?],
    )?;
    // /d/e/up is a second name of the root folder: /d/e/up/d/e/up/… never ends.
    fixture::run(
        "debugfs",
        &["-w", "-R", "ln / /d/e/up", fixture::path(&img)?],
    )?;
    let listing = fixture::run("debugfs", &["-R", "ls /d/e", fixture::path(&img)?])?;
    ensure!(
        listing.contains("up"),
        "debugfs did not add the link: {listing}"
    );
    let mut b = open(&img)?;
    let entries = b.read_dir("/d/e").map_err(|e| anyhow::anyhow!("{e}"))?;
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    ensure!(names == ["f"], "{names:?}");
    Ok(())
}
