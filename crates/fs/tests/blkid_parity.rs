//! `fs::probe` against the host's `blkid -p` on many file systems made by the real tools with
//! option variants, including the cases util-linux's own `tests/ts/blkid` images cover (FAT
//! labels in the root directory vs the boot sector, `NO NAME`, small FAT32, ISO 9660 Joliet
//! labels longer than 16 characters, swap page sizes, hibernation images, external journals and
//! logs). util-linux's images are GPL-2.0-or-later (no licence of their own), so they are not
//! vendored here; equivalents are made with the tools and compared to the host's blkid.

mod common;

use anyhow::{bail, Context, Result};
use common::{blkid, join, path_str, tempdir, FileIo};
use fs::{probe, FsInfo, FsKind};
use qemu_tests::fixture::{self, Mkfs};
use std::path::Path;

const MIB: u64 = 1 << 20;

/// Runs a tool in a UTF-8 locale (`fixture::run` uses `C`, in which mkfs.exfat and fatlabel
/// refuse non-ASCII labels).
fn run_utf8(tool: &str, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(fixture::require(tool)?)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()?;
    if !out.status.success() {
        bail!(
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Probes `path` and requires TYPE, LABEL and UUID equal to blkid's, and VERSION too where
/// Lifeboat reports blkid's version text (FAT, swap, hibernation, ISO 9660, exFAT, ext).
fn same_as_blkid(path: &Path) -> Result<FsInfo> {
    let io = FileIo::open(path)?;
    let info = probe(&io)?.with_context(|| format!("nothing recognised on {}", path.display()))?;
    let oracle = blkid(path)?;
    let what = format!("{}: ours {info:?}, blkid {oracle:?}", path.display());
    if oracle.get("TYPE").map(String::as_str) != Some(info.kind.name()) {
        bail!("type differs: {what}");
    }
    if oracle.get("LABEL") != info.label.as_ref() {
        bail!("label differs: {what}");
    }
    if oracle.get("UUID") != info.uuid.as_ref() {
        bail!("uuid differs: {what}");
    }
    let versioned = matches!(
        info.kind,
        FsKind::Vfat
            | FsKind::Swap
            | FsKind::Swsuspend
            | FsKind::Iso9660
            | FsKind::Exfat
            | FsKind::Ext2
            | FsKind::Ext3
            | FsKind::Ext4
            | FsKind::Jbd
    );
    if versioned && oracle.get("VERSION") != info.version.as_ref() {
        bail!("version differs: {what}");
    }
    Ok(info)
}

fn made(kind: Mkfs, size: u64, label: &str, extra: &[&str]) -> Result<FsInfo> {
    let dir = tempdir()?;
    let img = join(&dir, "fs.img");
    fixture::mkfs(kind, &img, size, label, extra)?;
    same_as_blkid(&img)
}

#[test]
fn ext_variants_match_blkid() -> Result<()> {
    made(
        Mkfs::Ext2,
        16 * MIB,
        "plain",
        &["-b", "1024", "-O", "^dir_index"],
    )?;
    made(
        Mkfs::Ext3,
        16 * MIB,
        "journalled",
        &["-U", "01234567-89ab-cdef-0123-456789abcdef"],
    )?;
    made(Mkfs::Ext4, 32 * MIB, "no-journal", &["-O", "^has_journal"])?;
    made(
        Mkfs::Ext4,
        32 * MIB,
        "meta_bg",
        &["-O", "meta_bg,^resize_inode"],
    )?;
    made(
        Mkfs::Ext4,
        32 * MIB,
        "sixteen chars!!!",
        &["-I", "128", "-r", "0"],
    )?;
    let info = made(
        Mkfs::Ext4,
        64 * MIB,
        "  lead",
        &["-O", "bigalloc", "-C", "16384"],
    )?;
    assert_eq!(
        info.label.as_deref(),
        Some("  lead"),
        "leading spaces are kept"
    );
    Ok(())
}

#[test]
fn external_ext_journal_is_jbd_and_has_no_used_map() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "journal.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &img,
        16 * MIB,
        "extjournal",
        &["-O", "journal_dev", "-b", "4096"],
    )?;
    let info = same_as_blkid(&img)?;
    assert_eq!(info.kind, FsKind::Jbd);
    assert_eq!(info.label.as_deref(), Some("extjournal"));
    // Not a file system whose allocation Lifeboat reads: imaged whole.
    let err = fs::used_map(&FileIo::open(&img)?, &info);
    assert!(
        matches!(err, Err(fs::MapError::Unsupported { kind: FsKind::Jbd })),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn fat_variants_match_blkid() -> Result<()> {
    for (kind, size, label, extra) in [
        (Mkfs::Fat12, 2 * MIB, "FLOPPY", &["-i", "DEADBEEF"][..]),
        (Mkfs::Fat16, 32 * MIB, "sixteen", &["-S", "1024"][..]),
        (Mkfs::Fat16, 64 * MIB, "A B", &["-s", "2", "-f", "1"][..]),
        (Mkfs::Fat32, 40 * MIB, "thirtytwo", &["-s", "1"][..]),
        (Mkfs::Fat32, 64 * MIB, "SECT4K", &["-S", "4096"][..]),
        (Mkfs::Fat32, 40 * MIB, "NO NAME", &[][..]),
    ] {
        made(kind, size, label, extra)?;
    }
    Ok(())
}

#[test]
fn small_fat32_is_fat32_by_its_boot_sector_not_its_cluster_count() -> Result<()> {
    // Like util-linux's small-fat32.img: FAT32 with far fewer clusters than the specification's
    // threshold, which the kernel and blkid take as FAT32 because the BPB says so.
    let info = made(Mkfs::Fat32, 2 * MIB, "TINY32", &["-s", "1", "-a"])?;
    assert_eq!(info.version.as_deref(), Some("FAT32"));
    assert_eq!(info.label.as_deref(), Some("TINY32"));
    Ok(())
}

/// Runs `fatlabel` or `mlabel` on `img` after `mkfs.vfat`, then compares.
fn relabelled(mkfs_label: Option<&str>, steps: &[(&str, &[&str])]) -> Result<FsInfo> {
    let dir = tempdir()?;
    let img = join(&dir, "fat.img");
    fixture::sparse_file(&img, 40 * MIB)?;
    let p = path_str(&img)?;
    let mut args = vec!["-F", "32", "-i", "92B4BA66"];
    if let Some(l) = mkfs_label {
        args.extend(["-n", l]);
    }
    args.push(p);
    fixture::run("mkfs.vfat", &args)?;
    for (tool, extra) in steps {
        let mut args: Vec<&str> = Vec::new();
        match *tool {
            "fatlabel" => {
                args.push(p);
                args.extend_from_slice(extra);
            }
            "mlabel" => {
                args.extend(["-i", p]);
                args.extend_from_slice(extra);
            }
            other => bail!("unknown tool {other}"),
        }
        fixture::run(tool, &args)?;
    }
    same_as_blkid(&img)
}

#[test]
fn fat_label_comes_from_the_root_directory_entry_like_blkid() -> Result<()> {
    // mkfs.vfat -n writes both copies.
    let info = relabelled(Some("label1"), &[])?;
    assert_eq!(info.label.as_deref(), Some("label1"));
    // No label: the boot sector says "NO NAME", the root has no entry: no label.
    let info = relabelled(None, &[])?;
    assert_eq!(info.label, None);
    // fatlabel changes both copies.
    let info = relabelled(Some("label1"), &[("fatlabel", &["label2"])])?;
    assert!(info.label.is_some_and(|l| l.eq_ignore_ascii_case("label2")));
    let info = relabelled(None, &[("fatlabel", &["label1"])])?;
    assert!(info.label.is_some_and(|l| l.eq_ignore_ascii_case("label1")));
    // mlabel -c removes the root directory entry: no label, whatever the boot sector says.
    let info = relabelled(Some("label1"), &[("mlabel", &["-c"])])?;
    assert_eq!(info.label, None);
    // mlabel with "NO NAME": blkid (and Windows) report the entry as it is.
    let info = relabelled(Some("label1"), &[("mlabel", &["::NO NAME"])])?;
    assert_eq!(info.label.as_deref(), Some("NO NAME"));
    // mtools stores short names in upper case.
    let info = relabelled(None, &[("mlabel", &["::Mixed Lbl"])])?;
    assert_eq!(info.label.as_deref(), Some("MIXED LBL"));
    Ok(())
}

#[test]
fn fat_label_in_code_page_850_reads_as_written() -> Result<()> {
    // blkid prints the raw OEM bytes; Lifeboat decodes them as code page 850, which is what
    // mtools and dosfstools write by default.
    let dir = tempdir()?;
    let img = join(&dir, "fat.img");
    fixture::mkfs(Mkfs::Fat32, &img, 40 * MIB, "X", &[])?;
    run_utf8("mlabel", &["-i", path_str(&img)?, "::ÕÄÖ ÉÑ"])?;
    let info = probe(&FileIo::open(&img)?)?.context("fat")?;
    assert_eq!(info.label.as_deref(), Some("ÕÄÖ ÉÑ"));
    Ok(())
}

#[test]
fn exfat_ntfs_btrfs_and_xfs_variants_match_blkid() -> Result<()> {
    let dir = tempdir()?;
    for (i, (tool, label)) in [("mkfs.exfat", "Новый том"), ("mkntfs", "Новый том")]
        .into_iter()
        .enumerate()
    {
        let img = join(&dir, &format!("{i}.img"));
        fixture::sparse_file(&img, 32 * MIB)?;
        let p = path_str(&img)?;
        match tool {
            "mkntfs" => run_utf8(tool, &["-q", "-F", "-f", "-L", label, p])?,
            _ => run_utf8(tool, &["-L", label, p])?,
        }
        let info = same_as_blkid(&img)?;
        assert_eq!(info.label.as_deref(), Some(label));
    }
    made(Mkfs::Exfat, 64 * MIB, "big clust", &["-c", "128K"])?;
    made(Mkfs::Exfat, 16 * MIB, "", &[])?;
    made(Mkfs::Ntfs, 32 * MIB, "big", &["-c", "65536"])?;
    made(
        Mkfs::Btrfs,
        128 * MIB,
        "butter",
        &["-m", "single", "-n", "16384"],
    )?;
    made(
        Mkfs::Btrfs,
        128 * MIB,
        "dup",
        &["-m", "dup", "-d", "single"],
    )?;
    made(Mkfs::Xfs, 320 * MIB, "xfs-v5", &["-m", "crc=1,finobt=1"])?;
    made(
        Mkfs::Xfs,
        320 * MIB,
        "xfs-v4",
        &["-m", "crc=0", "-b", "size=1024"],
    )?;
    made(Mkfs::Xfs, 320 * MIB, "twelve chars", &["-s", "size=4096"])?;
    Ok(())
}

#[test]
fn xfs_external_log_is_recognised_like_blkid() -> Result<()> {
    let dir = tempdir()?;
    let log = join(&dir, "log.img");
    let data = join(&dir, "data.img");
    fixture::sparse_file(&log, 80 * MIB)?;
    let logdev = format!("logdev={},size=64m", path_str(&log)?);
    fixture::mkfs(Mkfs::Xfs, &data, 320 * MIB, "withlog", &["-l", &logdev])?;
    same_as_blkid(&data)?;
    let info = same_as_blkid(&log)?;
    assert_eq!(info.kind, FsKind::XfsExternalLog);
    Ok(())
}

#[test]
fn swap_variants_and_hibernation_images_match_blkid() -> Result<()> {
    let dir = tempdir()?;
    for (i, extra) in [
        &["-U", "8ff8e77f-8553-485e-8656-58be67a81666"][..],
        &["-p", "65536"][..],
        &["-p", "16384", "-L", ""][..],
    ]
    .into_iter()
    .enumerate()
    {
        let img = join(&dir, &format!("swap{i}.img"));
        fixture::mkfs(Mkfs::Swap, &img, 16 * MIB, "SWAP-TEST", extra)?;
        let info = same_as_blkid(&img)?;
        assert_eq!(info.kind, FsKind::Swap);
    }
    // Hibernation signatures over a 4 KiB-page swap area: blkid's `swsuspend`.
    for (magic, version) in [
        (&b"S1SUSPEND"[..], "s1suspend"),
        (b"ULSUSPEND", "ulsuspend"),
        (b"LINHIB0001", "linhib0001"),
    ] {
        let img = join(&dir, &format!("{version}.img"));
        fixture::mkfs(Mkfs::Swap, &img, 16 * MIB, "resume", &[])?;
        fixture::poke(&img, 4096 - 10, &[magic, &b"\0"[..]].concat()[..10])?;
        let info = same_as_blkid(&img)?;
        assert_eq!(
            (info.kind, info.version.as_deref()),
            (FsKind::Swsuspend, Some(version))
        );
        let map = fs::used_map(&FileIo::open(&img)?, &info)?;
        assert_eq!(
            map.used_bytes(),
            16 * MIB,
            "a hibernation image is all data"
        );
    }
    // Ten pages are the least blkid takes as swap; nine are not.
    let img = join(&dir, "tiny.img");
    fixture::mkfs(Mkfs::Swap, &img, 40 * 1024, "tiny", &["-p", "4096"])?;
    same_as_blkid(&img)?;
    let cut = join(&dir, "cut.img");
    std::fs::write(&cut, &std::fs::read(&img)?[..36 * 1024])?;
    assert_eq!(probe(&FileIo::open(&cut)?)?, None);
    assert_eq!(blkid(&cut)?.get("TYPE"), None);
    Ok(())
}

fn iso(dir: &tempfile::TempDir, name: &str, tool: &str, args: &[&str]) -> Result<FsInfo> {
    let src = join(dir, "src");
    std::fs::create_dir_all(&src)?;
    std::fs::write(src.join("readme.txt"), b"hello")?;
    let img = join(dir, name);
    let mut all: Vec<&str> = args.to_vec();
    let (i, s) = (path_str(&img)?.to_string(), path_str(&src)?.to_string());
    match tool {
        "genisoimage" => all.extend(["-quiet", "-o", &i, &s]),
        _ => all.extend(["-outdev", &i, "-map", &s, "/"]),
    }
    fixture::run(tool, &all)?;
    same_as_blkid(&img)
}

#[test]
fn iso9660_labels_dates_and_joliet_match_blkid() -> Result<()> {
    let dir = tempdir()?;
    let info = iso(&dir, "plain.iso", "genisoimage", &["-V", "IsoVolumeName"])?;
    assert_eq!(
        (info.label.as_deref(), info.version),
        (Some("IsoVolumeName"), None)
    );
    // Joliet holds 16 characters; blkid rebuilds the long label from the primary descriptor.
    let info = iso(
        &dir,
        "long.iso",
        "genisoimage",
        &["-J", "-V", "ThisWonderfulLabelIsVeryVeryLong"],
    )?;
    assert_eq!(
        (info.label.as_deref(), info.version.as_deref()),
        (
            Some("ThisWonderfulLabelIsVeryVeryLong"),
            Some("Joliet Extension")
        )
    );
    let info = iso(
        &dir,
        "unicode.iso",
        "genisoimage",
        &[
            "-J",
            "-R",
            "-input-charset",
            "utf-8",
            "-V",
            "Naïve and very lOOOOOOOONG_LABL",
        ],
    )?;
    // genisoimage keeps the "ï" in the primary label, so the two do not merge (blkid agrees).
    assert_eq!(info.label.as_deref(), Some("Naïve and very l"));
    let info = iso(
        &dir,
        "xorriso.iso",
        "xorriso",
        &[
            "-joliet",
            "on",
            "-volid",
            "Mixed Case Label",
            "-volume_date",
            "uuid",
            "2024010203040506",
        ],
    )?;
    assert_eq!(info.uuid.as_deref(), Some("2024-01-02-03-04-05-06"));
    assert_eq!(info.label.as_deref(), Some("Mixed Case Label"));
    Ok(())
}

#[test]
fn an_iso_file_stored_inside_another_image_is_not_a_cd() -> Result<()> {
    // The "CD001" signature alone is not enough: the root directory must describe itself.
    let dir = tempdir()?;
    let info = iso(&dir, "plain.iso", "genisoimage", &["-V", "REAL"])?;
    assert_eq!(info.kind, FsKind::Iso9660);
    let img = join(&dir, "plain.iso");
    let mut bytes = std::fs::read(&img)?;
    let root_lba = u32::from_le_bytes(bytes[32768 + 158..32768 + 162].try_into()?) as usize;
    // Break the "." record's self-reference.
    bytes[root_lba * 2048 + 2] ^= 0x55;
    let broken = disk::MemDisk::from_vec(bytes, 512);
    assert_eq!(probe(&broken)?, None);
    Ok(())
}
