//! Hibernated and not cleanly closed NTFS volumes: detected by `fs::probe` (state), still mapped
//! for imaging, and announced by the browser before files are extracted.

mod common;

use anyhow::{bail, Context, Result};
use common::{join, path_str, tempdir, FileIo};
use fs::{probe, FsKind};
use qemu_tests::fixture::{self, Mkfs};
use std::path::Path;

const MIB: u64 = 1 << 20;

/// An NTFS volume with enough files in its root folder that the index spills into an index
/// allocation, then `hiberfil.sys` whose first bytes are `head` (Windows writes `HIBR` when it
/// hibernates or shuts down with fast startup, `wake` once it resumed).
fn volume_with_hiberfil(dir: &tempfile::TempDir, head: &[u8]) -> Result<std::path::PathBuf> {
    let img = join(dir, "win.img");
    fixture::mkfs(Mkfs::Ntfs, &img, 64 * MIB, "Windows", &[])?;
    let p = path_str(&img)?;
    let file = join(dir, "f");
    for i in 0..40 {
        std::fs::write(&file, format!("file {i}\n"))?;
        fixture::run(
            "ntfscp",
            &["-q", p, path_str(&file)?, &format!("document {i:02}.txt")],
        )?;
    }
    let mut hiber = head.to_vec();
    hiber.extend(fixture::noise(7, 256 * 1024));
    std::fs::write(&file, &hiber)?;
    fixture::run("ntfscp", &["-q", p, path_str(&file)?, "hiberfil.sys"])?;
    Ok(img)
}

/// Copies one more file in with ntfs-3g's `ntfscp` (which opens the volume read-write).
fn write_one_more(dir: &tempfile::TempDir, img: &Path) -> Result<(i32, String)> {
    let file = join(dir, "late");
    std::fs::write(&file, b"late\n")?;
    fixture::run_status(
        "ntfscp",
        &["-q", path_str(img)?, path_str(&file)?, "late.txt"],
    )
}

#[test]
fn hibernated_ntfs_is_detected_like_ntfs_3g_and_still_mapped() -> Result<()> {
    let dir = tempdir()?;
    let img = volume_with_hiberfil(&dir, b"HIBR")?;
    // The oracle: ntfs-3g refuses to open the volume for writing, for the same reason.
    let (code, out) = write_one_more(&dir, &img)?;
    if code == 0 || !out.contains("hibernated") {
        bail!("ntfs-3g should refuse a hibernated volume: {code} {out}");
    }
    let io = FileIo::open(&img)?;
    let info = probe(&io)?.context("ntfs")?;
    assert_eq!(info.kind, FsKind::Ntfs);
    assert!(
        info.state
            .as_deref()
            .is_some_and(|s| s.starts_with("hibernated")),
        "{info:?}"
    );
    assert_eq!(info.label.as_deref(), Some("Windows"));
    // Imaging is fine: the used map is read as usual.
    let map = fs::used_map(&io, &info)?;
    assert!(map.used_bytes() > 0 && map.used_bytes() < 64 * MIB);
    // Extracting warns.
    let browser = fs::browse::open(Box::new(FileIo::open(&img)?))?;
    let warnings = browser.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("hibernated"), "{warnings:?}");
    Ok(())
}

#[test]
fn resumed_hibernation_file_is_clean() -> Result<()> {
    let dir = tempdir()?;
    let img = volume_with_hiberfil(&dir, b"wake")?;
    let (code, out) = write_one_more(&dir, &img)?;
    if code != 0 {
        bail!("ntfs-3g should write to a resumed volume: {out}");
    }
    let info = probe(&FileIo::open(&img)?)?.context("ntfs")?;
    assert_eq!(info.state.as_deref(), Some("clean"));
    assert!(!info.needs_check);
    let browser = fs::browse::open(Box::new(FileIo::open(&img)?))?;
    assert_eq!(browser.warnings(), Vec::<String>::new());
    Ok(())
}

/// The first cluster of `$LogFile` (MFT record 2) as `ntfsinfo` prints its runlist.
fn logfile_offset(img: &Path, cluster: u64) -> Result<u64> {
    let out = fixture::run("ntfsinfo", &["-v", "-i", "2", path_str(img)?])?;
    let mut lines = out.lines().skip_while(|l| !l.contains("Runlist:"));
    lines.next();
    let first = lines.next().context("no runlist in ntfsinfo output")?;
    let lcn = first
        .split_whitespace()
        .nth(1)
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .with_context(|| format!("no LCN in {first:?}"))?;
    Ok(lcn * cluster)
}

/// A `$LogFile` restart page (4 KiB, update sequence applied) whose restart area has one client
/// in use and the given flags (0x2: the volume is clean). No tool here writes one: mkntfs and
/// ntfs-3g leave the log empty (all 0xFF), which counts as clean.
fn restart_page(lsn: u64, flags: u16) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    p[0..4].copy_from_slice(b"RSTR");
    p[4..6].copy_from_slice(&0x1Eu16.to_le_bytes()); // update sequence array offset
    p[6..8].copy_from_slice(&9u16.to_le_bytes()); // 1 + 4096 / 512 entries
    p[16..20].copy_from_slice(&4096u32.to_le_bytes()); // system page size
    p[20..24].copy_from_slice(&4096u32.to_le_bytes()); // log page size
    p[24..26].copy_from_slice(&0x30u16.to_le_bytes()); // restart area offset
    p[26..28].copy_from_slice(&1u16.to_le_bytes());
    p[28..30].copy_from_slice(&1u16.to_le_bytes());
    let ra = 0x30;
    p[ra..ra + 8].copy_from_slice(&lsn.to_le_bytes());
    p[ra + 8..ra + 10].copy_from_slice(&1u16.to_le_bytes()); // log clients
    p[ra + 10..ra + 12].copy_from_slice(&0xFFFFu16.to_le_bytes()); // free list: none
    p[ra + 12..ra + 14].copy_from_slice(&0u16.to_le_bytes()); // in-use list: client 0
    p[ra + 14..ra + 16].copy_from_slice(&flags.to_le_bytes());
    // Update sequence number 1; each sector's last two bytes move into the array.
    p[0x1E..0x20].copy_from_slice(&1u16.to_le_bytes());
    for s in 0..8 {
        let tail = (s + 1) * 512 - 2;
        let saved = [p[tail], p[tail + 1]];
        p[0x20 + 2 * s..0x22 + 2 * s].copy_from_slice(&saved);
        p[tail..tail + 2].copy_from_slice(&1u16.to_le_bytes());
    }
    p
}

#[test]
fn ntfs_log_left_open_needs_a_check_and_clean_log_does_not() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "log.img");
    fixture::mkfs(Mkfs::Ntfs, &img, 64 * MIB, "Logged", &["-c", "4096"])?;
    let at = logfile_offset(&img, 4096)?;
    // The newer restart area (second page, higher LSN) says clients are attached, not clean.
    fixture::poke(&img, at, &restart_page(10, 2))?;
    fixture::poke(&img, at + 4096, &restart_page(20, 0))?;
    let info = probe(&FileIo::open(&img)?)?.context("ntfs")?;
    assert!(info.needs_check, "{info:?}");
    assert_eq!(
        info.state.as_deref(),
        Some("not clean ($LogFile needs replay)")
    );
    let browser = fs::browse::open(Box::new(FileIo::open(&img)?))?;
    assert!(browser.warnings()[0].contains("not unmounted cleanly"));
    // The newer one marked clean: clean.
    fixture::poke(&img, at + 4096, &restart_page(20, 2))?;
    let info = probe(&FileIo::open(&img)?)?.context("ntfs")?;
    assert_eq!(
        (info.needs_check, info.state.as_deref()),
        (false, Some("clean"))
    );
    Ok(())
}
