//! XFS and btrfs: probe and `fs::used_map` on file systems made by `mkfs.xfs`/`mkfs.btrfs` and
//! filled through the kernel (loop mounts, as root). The proof: a copy with every byte outside
//! the map zeroed passes `xfs_repair -n` / `btrfs check --readonly`, and mounted by the kernel
//! gives back every file byte for byte. Damaged metadata, dirty logs and layouts this version
//! images whole are errors, never smaller maps.

mod common;

use anyhow::{bail, Context, Result};
use common::{
    blkid, compare_trees, join, keep_only_used, mutate_and_map, number_after, path_str, populate,
    tempdir, FileIo,
};
use disk::{BlockIo, MemDisk};
use fs::{probe, used_map, FsInfo, FsKind, MapError, UsedMap};
use qemu_tests::fixture::{self, KernelMount, Mkfs};
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

fn map_of(img: &Path) -> Result<(FsInfo, UsedMap)> {
    let io = FileIo::open(img)?;
    let info = probe(&io)?.context("probe found nothing")?;
    let map = used_map(&io, &info)?;
    assert_eq!(map.len(), io.len());
    Ok((info, map))
}

fn map_err(img: &Path) -> Result<MapError> {
    let io = FileIo::open(img)?;
    let info = probe(&io)?.context("probe found nothing")?;
    match used_map(&io, &info) {
        Ok(m) => bail!("expected an error, got a map of {} bytes", m.used_bytes()),
        Err(e) => Ok(e),
    }
}

/// Copies `src` into the mounted file system at `dst` (cp -a keeps the tree as it is).
fn copy_in(src: &Path, dst: &Path) -> Result<()> {
    fixture::run(
        "cp",
        &["-a", &format!("{}/.", path_str(src)?), path_str(dst)?],
    )?;
    Ok(())
}

/// Writes many small files and deletes every other one, so that free space is fragmented into
/// more extents than one btree block holds.
fn fragment(dir: &Path, files: usize, size: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..files {
        std::fs::write(dir.join(format!("{i}")), fixture::noise(i as u64, size))?;
    }
    fixture::run("sync", &[])?;
    for i in (0..files).step_by(2) {
        std::fs::remove_file(dir.join(format!("{i}")))?;
    }
    Ok(())
}

/// What the tree under `root` of a mounted file system must equal after the round trip: the
/// surviving fragment files are regenerated for the comparison.
fn expected_tree(
    dir: &tempfile::TempDir,
    src: &Path,
    frag: Option<(usize, usize)>,
) -> Result<PathBuf> {
    let exp = join(dir, "expected");
    copy_tree(src, &exp)?;
    if let Some((files, size)) = frag {
        let f = exp.join("frag");
        std::fs::create_dir_all(&f)?;
        for i in (1..files).step_by(2) {
            std::fs::write(f.join(format!("{i}")), fixture::noise(i as u64, size))?;
        }
    }
    Ok(exp)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    fixture::run(
        "cp",
        &["-a", &format!("{}/.", path_str(src)?), path_str(dst)?],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XFS

/// Blocks the AGFs record as free (bnobt extents plus free-list blocks), summed by `xfs_db`.
fn xfs_db_free(img: &Path, agcount: u64) -> Result<u64> {
    let mut free = 0;
    for ag in 0..agcount {
        let out = fixture::run(
            "xfs_db",
            &[
                "-r",
                "-c",
                &format!("agf {ag}"),
                "-c",
                "p freeblks flcount",
                path_str(img)?,
            ],
        )?;
        free += number_after(&out, "freeblks =")? + number_after(&out, "flcount =")?;
    }
    Ok(free)
}

fn xfs_sb_field(img: &Path, field: &str) -> Result<u64> {
    let out = fixture::run(
        "xfs_db",
        &[
            "-r",
            "-c",
            "sb 0",
            "-c",
            &format!("p {field}"),
            path_str(img)?,
        ],
    )?;
    number_after(&out, &format!("{field} ="))
}

/// mkfs.xfs with `extra`, filled through the kernel, mapped, zeroed outside the map, checked by
/// `xfs_repair -n` and mounted again.
fn xfs_round_trip(size: u64, extra: &[&str], frag: (usize, usize)) -> Result<UsedMap> {
    let dir = tempdir()?;
    let src = join(&dir, "src");
    populate(&src, 1500, &[3 << 20, 700_000, 9 << 20])?;
    let img = join(&dir, "xfs.img");
    fixture::mkfs(Mkfs::Xfs, &img, size, "filled", extra)?;
    {
        let mnt = KernelMount::new(&img, &join(&dir, "mnt"), "")?;
        copy_in(&src, mnt.path())?;
        fragment(&mnt.path().join("frag"), frag.0, frag.1)?;
        mnt.unmount()?;
    }
    let (info, map) = map_of(&img)?;
    let tags = blkid(&img)?;
    assert_eq!(info.kind, FsKind::Xfs);
    assert_eq!(info.label.as_deref(), Some("filled"));
    assert_eq!(info.uuid.as_deref(), tags.get("UUID").map(String::as_str));
    let bs = xfs_sb_field(&img, "blocksize")?;
    let dblocks = xfs_sb_field(&img, "dblocks")?;
    let fdblocks = xfs_sb_field(&img, "fdblocks")?;
    let agcount = xfs_sb_field(&img, "agcount")?;
    assert_eq!(u64::from(info.block_size), bs);
    assert_eq!(info.size, dblocks * bs);
    assert_eq!(info.used, Some((dblocks - fdblocks) * bs));
    // Every block but the free extents and the free list, exactly.
    assert_eq!(
        map.used_bytes(),
        (dblocks - xfs_db_free(&img, agcount)?) * bs,
        "{info:?}"
    );
    let expected = expected_tree(&dir, &src, Some(frag))?;
    let zeroed = join(&dir, "zeroed.img");
    keep_only_used(&img, &map, &zeroed)?;
    let (code, out) = fixture::run_status("xfs_repair", &["-n", "-f", path_str(&zeroed)?])?;
    assert_eq!(code, 0, "xfs_repair -n on the zeroed copy:\n{out}");
    let mnt = KernelMount::new(&zeroed, &join(&dir, "mnt-zeroed"), "ro")?;
    assert_eq!(compare_trees(&expected, mnt.path())?, 1503 + frag.0 / 2);
    mnt.unmount()?;
    Ok(map)
}

#[test]
fn xfs_v5_4k_blocks_512_sectors_keeps_every_block_repair_and_files_need() -> Result<()> {
    let map = xfs_round_trip(
        512 * MIB,
        &["-b", "size=4096", "-s", "size=512", "-d", "agcount=4"],
        (1400, 4096),
    )?;
    assert!(map.used_bytes() < 200 * MIB, "{}", map.used_bytes());
    Ok(())
}

#[test]
fn xfs_v5_4k_sectors_with_rmapbt_keeps_every_block() -> Result<()> {
    xfs_round_trip(
        400 * MIB,
        &["-b", "size=4096", "-s", "size=4096", "-m", "rmapbt=1"],
        (1200, 4096),
    )?;
    Ok(())
}

#[test]
fn xfs_v5_1k_blocks_with_multi_level_free_space_btrees_keeps_every_block() -> Result<()> {
    // 1 KiB blocks: a btree leaf holds 121 extents, the fragmentation needs several levels.
    xfs_round_trip(
        320 * MIB,
        &["-b", "size=1024", "-d", "agcount=2"],
        (3000, 1024),
    )?;
    Ok(())
}

/// An `mkfs.xfs -p` protofile that copies the tree under `src` (directories and regular files).
fn protofile(src: &Path) -> Result<String> {
    fn walk(dir: &Path, out: &mut String) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e
                .file_name()
                .into_string()
                .map_err(|_| anyhow::anyhow!("name"))?;
            if e.file_type()?.is_dir() {
                out.push_str(&format!("{name} d--755 0 0\n"));
                walk(&e.path(), out)?;
                out.push_str("$\n");
            } else {
                out.push_str(&format!("{name} ---644 0 0 {}\n", path_str(&e.path())?));
            }
        }
        Ok(())
    }
    let mut out = String::from("/dev/null\n0 0\nd--755 0 0\n");
    walk(src, &mut out)?;
    out.push_str("$\n");
    Ok(out)
}

/// Every file of `src`, read back from `img` through its extents as `xfs_db` lists them.
fn xfs_files_read_back(img: &Path, src: &Path) -> Result<usize> {
    fn files(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e
                .file_name()
                .into_string()
                .map_err(|_| anyhow::anyhow!("name"))?;
            let r = format!("{rel}/{name}");
            if e.file_type()?.is_dir() {
                files(&e.path(), &r, out)?;
            } else {
                out.push((r, e.path()));
            }
        }
        Ok(())
    }
    let mut list = Vec::new();
    files(src, "", &mut list)?;
    let bs = xfs_sb_field(img, "blocksize")?;
    let agblocks = xfs_sb_field(img, "agblocks")?;
    let data = std::fs::read(img)?;
    for (rel, path) in &list {
        let out = fixture::run(
            "xfs_db",
            &[
                "-r",
                "-c",
                &format!("path {rel}"),
                "-c",
                "bmap",
                path_str(img)?,
            ],
        )?;
        let want = std::fs::read(path)?;
        let mut got = vec![0u8; want.len()];
        // "data offset 0 startblock 123 (0/123) count 4 flag 0"
        for line in out.lines().filter(|l| l.starts_with("data offset")) {
            let w: Vec<&str> = line.split_whitespace().collect();
            let field = |i: usize| w.get(i).copied().context("short bmap line");
            let off: u64 = field(2)?.parse()?;
            let (ag, agbno) = field(5)?
                .trim_matches(|c| c == '(' || c == ')')
                .split_once('/')
                .context("ag/agbno")?;
            let count: u64 = field(7)?.parse()?;
            let at = (ag.parse::<u64>()? * agblocks + agbno.parse::<u64>()?) * bs;
            for i in 0..count * bs {
                let dst = (off * bs + i) as usize;
                if dst < got.len() {
                    got[dst] = data[(at + i) as usize];
                }
            }
        }
        if got != want {
            bail!("{rel} reads back differently from its extents:\n{out}");
        }
    }
    Ok(list.len())
}

/// v4 (no CRCs) cannot be mounted by this kernel: filled from a protofile, checked by
/// `xfs_repair -n` and by reading every file back through its extents in the zeroed copy.
fn xfs_v4_round_trip(extra: &[&str]) -> Result<()> {
    let dir = tempdir()?;
    let src = join(&dir, "src");
    populate(&src, 300, &[2 << 20, 300_000])?;
    let proto = join(&dir, "proto");
    std::fs::write(&proto, protofile(&src)?)?;
    let img = join(&dir, "xfs.img");
    let mut args = vec!["-m", "crc=0", "-p", path_str(&proto)?];
    args.extend_from_slice(extra);
    fixture::mkfs(Mkfs::Xfs, &img, 320 * MIB, "v4", &args)?;
    let (info, map) = map_of(&img)?;
    assert_eq!(info.version.as_deref(), Some("4"));
    let bs = xfs_sb_field(&img, "blocksize")?;
    let dblocks = xfs_sb_field(&img, "dblocks")?;
    let agcount = xfs_sb_field(&img, "agcount")?;
    assert_eq!(
        map.used_bytes(),
        (dblocks - xfs_db_free(&img, agcount)?) * bs
    );
    let zeroed = join(&dir, "zeroed.img");
    keep_only_used(&img, &map, &zeroed)?;
    let (code, out) = fixture::run_status("xfs_repair", &["-n", "-f", path_str(&zeroed)?])?;
    assert_eq!(code, 0, "xfs_repair -n on the zeroed copy:\n{out}");
    assert_eq!(xfs_files_read_back(&zeroed, &src)?, 302);
    Ok(())
}

#[test]
fn xfs_v4_without_crcs_keeps_every_block() -> Result<()> {
    xfs_v4_round_trip(&["-b", "size=4096"])?;
    xfs_v4_round_trip(&["-b", "size=512", "-d", "agcount=2"])
}

#[test]
fn xfs_mostly_empty_maps_a_small_fraction() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "x.img");
    fixture::mkfs(Mkfs::Xfs, &img, 2048 * MIB, "empty", &[])?;
    let (info, map) = map_of(&img)?;
    // Metadata and the internal log only.
    assert!(
        map.used_bytes() < 2048 * MIB / 10,
        "{} of {info:?}",
        map.used_bytes()
    );
    assert!(map.is_used(0));
    let zeroed = join(&dir, "z.img");
    keep_only_used(&img, &map, &zeroed)?;
    let (code, out) = fixture::run_status("xfs_repair", &["-n", "-f", path_str(&zeroed)?])?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[test]
fn xfs_damaged_agf_btree_block_or_counts_are_errors() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "x.img");
    fixture::mkfs(
        Mkfs::Xfs,
        &img,
        320 * MIB,
        "d",
        &["-b", "size=4096", "-s", "size=512", "-d", "agcount=4"],
    )?;
    let pristine = std::fs::read(&img)?;
    let agblocks = xfs_sb_field(&img, "agblocks")?;
    // AG 1's AGF (sector 1 of the AG): a flipped byte in its spare area fails the CRC.
    let agf1 = agblocks * 4096 + 512;
    fixture::poke(&img, agf1 + 150, &[0x77])?;
    let err = map_err(&img)?;
    assert!(
        matches!(&err, MapError::Corrupt { what, .. } if what.contains("AGF fails its CRC")),
        "{err}"
    );
    // A byte in AG 2's free-space btree root block.
    std::fs::write(&img, &pristine)?;
    let agf2 = (2 * agblocks * 4096 + 512) as usize;
    let bno_root = u64::from(u32::from_be_bytes(
        pristine[agf2 + 16..agf2 + 20].try_into()?,
    ));
    fixture::poke(&img, (2 * agblocks + bno_root) * 4096 + 3000, &[0x42])?;
    let err = map_err(&img)?;
    assert!(
        matches!(&err, MapError::Corrupt { what, .. } if what.contains("free-space btree")),
        "{err}"
    );
    // A superblock free count that disagrees with the AGFs (its CRC recomputed by xfs_db).
    std::fs::write(&img, &pristine)?;
    let fd = xfs_sb_field(&img, "fdblocks")?;
    fixture::run(
        "xfs_db",
        &[
            "-x",
            "-c",
            "sb 0",
            "-c",
            &format!("write fdblocks {}", fd - 3),
            path_str(&img)?,
        ],
    )?;
    let err = map_err(&img)?;
    assert!(matches!(err, MapError::FreeCountMismatch { .. }), "{err}");
    Ok(())
}

#[test]
fn xfs_v4_agf_free_count_that_disagrees_with_its_btree_is_an_error() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "x.img");
    fixture::mkfs(
        Mkfs::Xfs,
        &img,
        320 * MIB,
        "v4",
        &["-m", "crc=0", "-d", "agcount=2"],
    )?;
    let agblocks = xfs_sb_field(&img, "agblocks")?;
    let bs = xfs_sb_field(&img, "blocksize")?;
    let agf1 = agblocks * bs + 512;
    let bytes = std::fs::read(&img)?;
    let at = (agf1 + 52) as usize;
    let free = u32::from_be_bytes(bytes[at..at + 4].try_into()?);
    fixture::poke(&img, agf1 + 52, &(free - 1).to_be_bytes())?;
    let err = map_err(&img)?;
    assert!(
        matches!(&err, MapError::FreeCountMismatch { what, .. } if what.contains("AG 1")),
        "{err}"
    );
    Ok(())
}

#[test]
fn xfs_dirty_log_is_an_error_until_it_is_replayed() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "x.img");
    fixture::mkfs(Mkfs::Xfs, &img, 320 * MIB, "dirty", &[])?;
    {
        let mnt = KernelMount::new(&img, &join(&dir, "mnt"), "")?;
        populate(mnt.path(), 200, &[1 << 20])?;
        // Flush the log, then stop the file system dead: no unmount record is written.
        fixture::run(
            "xfs_io",
            &["-x", "-c", "shutdown -f", path_str(mnt.path())?],
        )?;
        mnt.unmount()?;
    }
    let (code, _) = fixture::run_status("xfs_repair", &["-n", "-f", path_str(&img)?])?;
    assert_ne!(code, 0, "xfs_repair agrees the log is dirty");
    let err = map_err(&img)?;
    assert!(
        matches!(&err, MapError::NeedsCheck { state, .. } if state.contains("log")),
        "{err}"
    );
    // A mount replays the log; after a clean unmount the map is available again.
    KernelMount::new(&img, &join(&dir, "mnt2"), "")?.unmount()?;
    let (_, map) = map_of(&img)?;
    assert!(map.used_bytes() > MIB);
    // A log formatted at a later cycle (the head is where the cycle number drops, not where
    // zeroed blocks start): clean, clean again after more records, dirty after a shutdown.
    fixture::run("xfs_db", &["-x", "-c", "logformat -c 7", path_str(&img)?])?;
    map_of(&img)?;
    {
        let mnt = KernelMount::new(&img, &join(&dir, "mnt3"), "")?;
        populate(&mnt.path().join("more"), 300, &[])?;
        mnt.unmount()?;
    }
    map_of(&img)?;
    {
        let mnt = KernelMount::new(&img, &join(&dir, "mnt4"), "")?;
        populate(&mnt.path().join("again"), 300, &[])?;
        fixture::run(
            "xfs_io",
            &["-x", "-c", "shutdown -f", path_str(mnt.path())?],
        )?;
        mnt.unmount()?;
    }
    let err = map_err(&img)?;
    assert!(matches!(&err, MapError::NeedsCheck { .. }), "{err}");
    Ok(())
}

#[test]
fn xfs_with_an_external_log_or_realtime_section_is_imaged_whole_and_says_so() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "x.img");
    let log = join(&dir, "log.img");
    fixture::sparse_file(&log, 64 * MIB)?;
    fixture::mkfs(
        Mkfs::Xfs,
        &img,
        320 * MIB,
        "ext",
        &["-l", &format!("logdev={}", path_str(&log)?)],
    )?;
    let err = map_err(&img)?;
    assert!(
        matches!(&err, MapError::ImagedWhole { reason, .. } if reason.contains("log on another device")),
        "{err}"
    );
    assert!(err.to_string().ends_with("imaged whole"), "{err}");
    // A realtime section on another device.
    let rt = join(&dir, "rt.img");
    fixture::sparse_file(&rt, 64 * MIB)?;
    let img = join(&dir, "r.img");
    fixture::mkfs(
        Mkfs::Xfs,
        &img,
        320 * MIB,
        "rt",
        &["-r", &format!("rtdev={}", path_str(&rt)?)],
    )?;
    let err = map_err(&img)?;
    assert!(
        matches!(&err, MapError::ImagedWhole { reason, .. } if reason.contains("realtime")),
        "{err}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// btrfs

/// btrfs check, zeroed copy, mount, compare.
fn btrfs_check_zeroed(
    dir: &tempfile::TempDir,
    img: &Path,
    map: &UsedMap,
    expected: &Path,
    files: usize,
) -> Result<()> {
    let zeroed = join(dir, "zeroed.img");
    keep_only_used(img, map, &zeroed)?;
    let (code, out) = fixture::run_status("btrfs", &["check", "--readonly", path_str(&zeroed)?])?;
    assert_eq!(code, 0, "btrfs check on the zeroed copy:\n{out}");
    let mnt = KernelMount::new(&zeroed, &join(dir, "mnt-zeroed"), "ro")?;
    assert_eq!(compare_trees(expected, mnt.path())?, files);
    mnt.unmount()?;
    Ok(())
}

fn btrfs_super_u64(img: &Path, off: u64) -> Result<u64> {
    let b = std::fs::read(img)?;
    let at = (0x10000 + off) as usize;
    Ok(u64::from_le_bytes(b[at..at + 8].try_into()?))
}

fn btrfs_probe_matches_blkid(img: &Path, info: &FsInfo, label: &str) -> Result<()> {
    let tags = blkid(img)?;
    assert_eq!(info.kind, FsKind::Btrfs);
    assert_eq!(tags.get("TYPE").map(String::as_str), Some("btrfs"));
    assert_eq!(info.label.as_deref(), Some(label));
    assert_eq!(info.uuid.as_deref(), tags.get("UUID").map(String::as_str));
    assert_eq!(info.used, Some(btrfs_super_u64(img, 120)?));
    Ok(())
}

#[test]
fn btrfs_rootdir_keeps_every_extent_check_and_files_need() -> Result<()> {
    for extra in [
        &[][..],
        &["-n", "4096"][..],
        &["-m", "single", "-d", "dup"][..],
        &["-M"][..],
    ] {
        let dir = tempdir()?;
        let src = join(&dir, "src");
        populate(&src, 1500, &[3 << 20, 700_000, 9 << 20])?;
        let img = join(&dir, "b.img");
        let mut args = vec!["--rootdir", path_str(&src)?];
        args.extend_from_slice(extra);
        fixture::mkfs(Mkfs::Btrfs, &img, 512 * MIB, "rootdir", &args)?;
        let (info, map) = map_of(&img)?;
        btrfs_probe_matches_blkid(&img, &info, "rootdir")?;
        let used = info.used.context("used")?;
        // Every extent at least once; DUP copies and the fixed areas at most double that.
        assert!(map.used_bytes() >= used, "{} < {used}", map.used_bytes());
        assert!(
            map.used_bytes() <= 2 * used + 2 * MIB,
            "{} for {used}",
            map.used_bytes()
        );
        assert!(map.is_used(64 * MIB), "the superblock mirror at 64 MiB");
        btrfs_check_zeroed(&dir, &img, &map, &src, 1503)?;
    }
    Ok(())
}

#[test]
fn btrfs_compressed_subvolumes_and_a_snapshot_keep_every_extent() -> Result<()> {
    let dir = tempdir()?;
    let src = join(&dir, "src");
    populate(&src, 800, &[4 << 20, 600_000])?;
    let img = join(&dir, "b.img");
    fixture::mkfs(Mkfs::Btrfs, &img, 768 * MIB, "subvols", &[])?;
    {
        let mnt = KernelMount::new(&img, &join(&dir, "mnt"), "compress=zstd")?;
        let m = mnt.path();
        fixture::run(
            "btrfs",
            &["subvolume", "create", path_str(&m.join("home"))?],
        )?;
        fixture::run("btrfs", &["subvolume", "create", path_str(&m.join("var"))?])?;
        copy_in(&src, &m.join("home"))?;
        fragment(&m.join("var/frag"), 1500, 4096)?;
        fixture::run(
            "btrfs",
            &[
                "subvolume",
                "snapshot",
                path_str(&m.join("home"))?,
                path_str(&m.join("home-snap"))?,
            ],
        )?;
        // Changed after the snapshot: the snapshot keeps the old extents.
        std::fs::write(m.join("home/big0.bin"), fixture::noise(77, 2 << 20))?;
        mnt.unmount()?;
    }
    let (info, map) = map_of(&img)?;
    btrfs_probe_matches_blkid(&img, &info, "subvols")?;
    let zeroed = join(&dir, "zeroed.img");
    keep_only_used(&img, &map, &zeroed)?;
    let (code, out) = fixture::run_status("btrfs", &["check", "--readonly", path_str(&zeroed)?])?;
    assert_eq!(code, 0, "btrfs check on the zeroed copy:\n{out}");
    let mnt = KernelMount::new(&zeroed, &join(&dir, "mnt-zeroed"), "ro")?;
    let snap = compare_trees(&src, &mnt.path().join("home-snap"))?;
    assert_eq!(snap, 802);
    let changed = std::fs::read(mnt.path().join("home/big0.bin"))?;
    assert!(
        changed == fixture::noise(77, 2 << 20),
        "home/big0.bin after the snapshot"
    );
    let frag = mnt.path().join("var/frag");
    for i in (1..1500).step_by(2) {
        if std::fs::read(frag.join(format!("{i}")))? != fixture::noise(i as u64, 4096) {
            bail!("var/frag/{i} differs");
        }
    }
    mnt.unmount()?;
    Ok(())
}

#[test]
fn btrfs_mostly_empty_maps_a_small_fraction() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "b.img");
    fixture::mkfs(Mkfs::Btrfs, &img, 2048 * MIB, "empty", &[])?;
    let (info, map) = map_of(&img)?;
    assert!(
        map.used_bytes() < 8 * MIB,
        "{} of {info:?}",
        map.used_bytes()
    );
    btrfs_check_zeroed_empty(&dir, &img, &map)?;
    Ok(())
}

fn btrfs_check_zeroed_empty(dir: &tempfile::TempDir, img: &Path, map: &UsedMap) -> Result<()> {
    let zeroed = join(dir, "zeroed.img");
    keep_only_used(img, map, &zeroed)?;
    let (code, out) = fixture::run_status("btrfs", &["check", "--readonly", path_str(&zeroed)?])?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[test]
fn btrfs_on_two_devices_is_imaged_whole_and_says_so() -> Result<()> {
    let dir = tempdir()?;
    let a = join(&dir, "a.img");
    let b = join(&dir, "b.img");
    fixture::sparse_file(&b, 256 * MIB)?;
    fixture::mkfs(
        Mkfs::Btrfs,
        &a,
        256 * MIB,
        "pair",
        &["-d", "single", "-m", "raid1", path_str(&b)?],
    )?;
    let err = map_err(&a)?;
    assert!(err.to_string().contains("multi-device btrfs"), "{err}");
    assert!(err.to_string().ends_with("imaged whole"), "{err}");
    Ok(())
}

/// Physical offsets of the copies of the tree block at `logical` (found by their headers).
fn tree_block_copies(img: &Path, logical: u64, nodesize: u64) -> Result<Vec<u64>> {
    let b = std::fs::read(img)?;
    let fsid = &b[0x10000 + 32..0x10000 + 48];
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + nodesize as usize <= b.len() {
        if &b[at + 32..at + 48] == fsid
            && u64::from_le_bytes(b[at + 48..at + 56].try_into()?) == logical
        {
            out.push(at as u64);
        }
        at += 4096;
    }
    Ok(out)
}

/// Recomputes the superblock checksum after a poke (standard CRC-32C, bitwise).
fn fix_super_csum(img: &Path) -> Result<()> {
    let b = std::fs::read(img)?;
    let mut crc = !0u32;
    for &x in &b[0x10000 + 32..0x10000 + 4096] {
        crc ^= u32::from(x);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    fixture::poke(img, 0x10000, &(!crc).to_le_bytes())
}

#[test]
fn btrfs_damaged_tree_blocks_log_trees_and_unknown_features() -> Result<()> {
    let dir = tempdir()?;
    let src = join(&dir, "src");
    populate(&src, 100, &[1 << 20])?;
    let img = join(&dir, "b.img");
    fixture::mkfs(
        Mkfs::Btrfs,
        &img,
        256 * MIB,
        "dmg",
        &["--rootdir", path_str(&src)?, "-m", "dup"],
    )?;
    let pristine = std::fs::read(&img)?;
    let (_, good) = map_of(&img)?;
    // The root tree block has two copies (DUP): one damaged copy is read around.
    let root = btrfs_super_u64(&img, 80)?;
    let copies = tree_block_copies(&img, root, 16384)?;
    assert_eq!(copies.len(), 2, "{copies:?}");
    fixture::poke(&img, copies[0] + 2000, &[0xAB])?;
    let (_, map) = map_of(&img)?;
    assert_eq!(map, good);
    fixture::poke(&img, copies[1] + 2000, &[0xAB])?;
    let err = map_err(&img)?;
    assert!(
        matches!(&err, MapError::Corrupt { what, .. } if what.contains("checksum")),
        "{err}"
    );
    // A log tree waiting for replay.
    std::fs::write(&img, &pristine)?;
    fixture::poke(&img, 0x10000 + 96, &root.to_le_bytes())?;
    fix_super_csum(&img)?;
    let io = FileIo::open(&img)?;
    assert!(probe(&io)?.context("btrfs")?.needs_check);
    let err = map_err(&img)?;
    assert!(
        matches!(&err, MapError::NeedsCheck { state, .. } if state.contains("log tree")),
        "{err}"
    );
    // An incompat feature this version does not know.
    std::fs::write(&img, &pristine)?;
    let incompat = btrfs_super_u64(&img, 188)?;
    fixture::poke(&img, 0x10000 + 188, &(incompat | 1 << 40).to_le_bytes())?;
    fix_super_csum(&img)?;
    let err = map_err(&img)?;
    assert!(matches!(err, MapError::ImagedWhole { .. }), "{err}");
    // A superblock whose checksum no longer matches.
    std::fs::write(&img, &pristine)?;
    fixture::poke(&img, 0x10000 + 2000, &[1])?;
    let err = map_err(&img)?;
    assert!(matches!(err, MapError::Corrupt { .. }), "{err}");
    Ok(())
}

/// Seeded byte mutations in the metadata of real XFS and btrfs images: probe and map never
/// panic, and a map always covers exactly the partition.
#[test]
fn xfs_and_btrfs_maps_survive_seeded_mutations_of_real_metadata() -> Result<()> {
    let dir = tempdir()?;
    let mut images = Vec::new();
    for (i, (kind, size, extra)) in [
        (
            Mkfs::Xfs,
            320 * MIB,
            &["-m", "crc=0", "-b", "size=512", "-d", "agcount=2"][..],
        ),
        (Mkfs::Xfs, 320 * MIB, &["-d", "agcount=2"][..]),
        (Mkfs::Btrfs, 128 * MIB, &["-n", "4096"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let img = join(&dir, &format!("{i}.img"));
        fixture::mkfs(kind, &img, size, "MUT", extra)?;
        let disk = MemDisk::from_vec(std::fs::read(&img)?, 512);
        let info = probe(&disk)?.context("fixture")?;
        let map = used_map(&disk, &info)?;
        // Mutate the start of every used range: AG headers and btree roots of every AG, the
        // log's first records, btrfs superblocks and tree blocks.
        let hot: Vec<(u64, u64)> = map
            .ranges()
            .map(|r| (r.start, (r.end - r.start).min(64 * 1024)))
            .collect();
        images.push((disk, hot));
    }
    let mapped = mutate_and_map(&images, 0xb7f5, 1500, 4)?;
    assert!(
        mapped > 50,
        "some mutations (unused bytes) still map: {mapped}"
    );
    Ok(())
}
