//! Browsing exFAT file systems made by the real tools: `mkfs.exfat` (exfatprogs) makes the file
//! system and the `exfat-fuse` driver (mounted on a loop device) fills it; the reader's listing,
//! contents and times are compared with the source tree. Needs root, a loop device and /dev/fuse.

use std::collections::BTreeMap;
use std::fs::{File, FileTimes};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use disk::{BlockIo, FileDisk, MemDisk};
use fs::browse::{self, BrowseError, Browser, EntryKind, SparseWrite};

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut r = XorShift(seed | 1);
    (0..len).map(|_| r.next() as u8).collect()
}

/// An exFAT image mounted through exfat-fuse on a loop device; unmounted on drop.
struct Mounted {
    dir: PathBuf,
    loopdev: String,
    mounted: bool,
}

impl Mounted {
    fn new(img: &Path, dir: &Path) -> Result<Mounted> {
        std::fs::create_dir_all(dir)?;
        let loopdev = run(Command::new("losetup").arg("-f").arg("--show").arg(img))?;
        let mut m = Mounted {
            dir: dir.to_path_buf(),
            loopdev,
            mounted: false,
        };
        run(Command::new("mount.exfat-fuse").arg(&m.loopdev).arg(dir))?;
        m.mounted = true;
        Ok(m)
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            qemu_tests::fixture::fuse_unmount(&self.dir, &self.loopdev)?;
            self.mounted = false;
        }
        if !self.loopdev.is_empty() {
            run(Command::new("losetup").arg("-d").arg(&self.loopdev))?;
            self.loopdev.clear();
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

fn mkfs(img: &Path, size: u64, extra: &[&str]) -> Result<()> {
    File::create(img)?.set_len(size)?;
    run(Command::new("mkfs.exfat")
        .args(["-L", "LBEXFAT"])
        .args(extra)
        .arg(img))?;
    Ok(())
}

fn read_all(b: &mut dyn Browser, path: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    b.read_file(path, &mut v)?;
    Ok(v)
}

type Listing = BTreeMap<String, (EntryKind, u64)>;

fn walk(b: &mut dyn Browser, path: &str, out: &mut Listing) -> Result<()> {
    for e in b.read_dir(path)? {
        let child = format!("{}/{}", path.trim_end_matches('/'), e.name);
        out.insert(child.clone(), (e.kind, e.size));
        if e.kind == EntryKind::Dir {
            walk(b, &child, out)?;
        }
    }
    Ok(())
}

fn walk_host(root: &Path, rel: &str, out: &mut Listing) -> Result<()> {
    for e in std::fs::read_dir(root.join(rel.trim_start_matches('/')))? {
        let e = e?;
        let name = e
            .file_name()
            .into_string()
            .map_err(|_| anyhow::anyhow!("non-utf8"))?;
        let child = format!("{}/{name}", rel.trim_end_matches('/'));
        let md = std::fs::symlink_metadata(e.path())?;
        let (kind, size) = if md.is_dir() {
            (EntryKind::Dir, 0)
        } else {
            (EntryKind::File, md.len())
        };
        out.insert(child.clone(), (kind, size));
        if kind == EntryKind::Dir {
            walk_host(root, &child, out)?;
        }
    }
    Ok(())
}

const LONG_NAME: &str =
    "Ünïcødé — 日本語 and a rather long name that needs several exFAT name entries.txt";

/// The source tree: long Unicode names, nested folders, an empty file, a folder large enough
/// that entry sets cross cluster boundaries, and odd modification times.
fn make_tree(tree: &Path) -> Result<()> {
    std::fs::create_dir_all(tree.join("Documents/deep/1/2/3/4"))?;
    std::fs::create_dir_all(tree.join("many"))?;
    std::fs::create_dir_all(tree.join("empty folder"))?;
    std::fs::write(tree.join("Documents").join(LONG_NAME), content(7, 5000))?;
    std::fs::write(tree.join("Documents/report.txt"), b"quarterly report\n")?;
    std::fs::write(
        tree.join("Documents/deep/1/2/3/4/bottom.bin"),
        content(9, 300_000),
    )?;
    std::fs::write(tree.join("empty.txt"), b"")?;
    for i in 0..300u64 {
        std::fs::write(
            tree.join(format!("many/file number {i}.dat")),
            content(100 + i, (i % 50) as usize * 97),
        )?;
    }
    // Times with odd seconds and fractions (exFAT keeps 10 ms steps).
    for (k, rel) in [
        "Documents/report.txt",
        "empty.txt",
        "many/file number 7.dat",
    ]
    .iter()
    .enumerate()
    {
        let t = UNIX_EPOCH + Duration::new(1_600_000_001 + 86_400 * 37 * k as u64, 370_000_000);
        File::options()
            .write(true)
            .open(tree.join(rel))?
            .set_times(FileTimes::new().set_modified(t).set_accessed(t))?;
    }
    Ok(())
}

/// Writes two files a cluster at a time, alternately, so their clusters interleave (FAT chains).
fn write_interleaved(dir: &Path, cluster: usize, clusters: usize) -> Result<()> {
    let mut a = File::create(dir.join("frag-a.bin"))?;
    let mut b = File::create(dir.join("frag-b.bin"))?;
    let (ca, cb) = (
        content(21, cluster * clusters),
        content(22, cluster * clusters),
    );
    for (pa, pb) in ca.chunks(cluster).zip(cb.chunks(cluster)) {
        a.write_all(pa)?;
        a.sync_all()?;
        b.write_all(pb)?;
        b.sync_all()?;
    }
    Ok(())
}

/// The raw fields of the stream extension of the file named `name` (found by scanning the
/// image for its name entry): (flags, valid length, first cluster, data length, set offset).
fn stream_of(img: &[u8], name: &str) -> Result<(u8, u64, u32, u64, usize)> {
    let units: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut at = 0;
    while let Some(p) = img
        .get(at..)
        .and_then(|s| s.windows(units.len()).position(|w| w == units.as_slice()))
    {
        let i = at + p;
        at = i + 1;
        if i < 66 || (i - 2) % 32 != 0 || img[i - 2] != 0xC1 {
            continue;
        }
        let s = i - 2 - 32;
        if img[s] != 0xC0 || img[s - 32] != 0x85 {
            continue;
        }
        let le = |o: usize, n: usize| {
            img[o..o + n]
                .iter()
                .rev()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b))
        };
        return Ok((
            img[s + 1],
            le(s + 8, 8),
            le(s + 20, 4) as u32,
            le(s + 24, 8),
            s - 32,
        ));
    }
    bail!("no directory entry for {name}")
}

/// Recomputes the set checksum of the entry set at `set`.
fn fix_set_checksum(img: &mut [u8], set: usize) {
    let count = usize::from(img[set + 1]);
    let mut sum = 0u16;
    for (i, &b) in img[set..set + (count + 1) * 32].iter().enumerate() {
        if i != 2 && i != 3 {
            sum = sum.rotate_right(1).wrapping_add(u16::from(b));
        }
    }
    img[set + 2..set + 4].copy_from_slice(&sum.to_le_bytes());
}

/// (FAT byte offset, sector size) from the boot sector.
fn fat_offset(img: &[u8]) -> u64 {
    let ss = 1u64 << img[108];
    u64::from(u32::from_le_bytes([img[80], img[81], img[82], img[83]])) * ss
}

fn open_mem(img: Vec<u8>) -> Result<Box<dyn Browser>> {
    Ok(browse::open(Box::new(MemDisk::from_vec(img, 512)))?)
}

#[test]
fn exfat_tree_written_by_exfat_fuse_lists_and_reads_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    make_tree(&tree)?;
    let img = dir.path().join("exfat.img");
    mkfs(&img, 64 << 20, &[])?;
    let mnt = dir.path().join("mnt");
    let mut m = Mounted::new(&img, &mnt)?;
    run(Command::new("cp")
        .args(["-r", "--preserve=timestamps"])
        .arg(format!("{}/.", tree.display()))
        .arg(&mnt))?;
    write_interleaved(&mnt, 4096, 40)?;
    m.unmount()?;
    write_interleaved(&tree, 4096, 40)?;

    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    assert_eq!(b.fs_name(), "exfat");
    assert_eq!(b.label().as_deref(), Some("LBEXFAT"));

    let mut got = Listing::new();
    walk(b.as_mut(), "/", &mut got)?;
    let mut want = Listing::new();
    walk_host(&tree, "/", &mut want)?;
    assert_eq!(got, want);

    // Every file's content equals the source; every file's mtime too (to the second: the
    // exfat-fuse driver stores whole seconds).
    for (path, (kind, _)) in &want {
        if *kind != EntryKind::File {
            continue;
        }
        let host = tree.join(path.trim_start_matches('/'));
        assert_eq!(read_all(b.as_mut(), path)?, std::fs::read(&host)?, "{path}");
        if path.starts_with("/frag-") {
            // Written separately on both sides, not copied: their times differ.
            continue;
        }
        let md = b.metadata(path)?;
        assert_eq!(
            md.mtime.map(|t| t.secs),
            Some(std::fs::metadata(&host)?.mtime()),
            "{path}"
        );
    }
    assert_eq!(b.metadata("/empty.txt")?.size, 0);
    assert!(b.read_dir("/empty folder")?.is_empty());

    // Case-insensitive lookup through the up-case table, as exFAT names are.
    let upper = format!("/DOCUMENTS/{}", LONG_NAME.to_uppercase());
    assert_eq!(b.metadata(&upper)?.name, LONG_NAME);
    assert_eq!(
        read_all(b.as_mut(), "/documents/REPORT.TXT")?,
        b"quarterly report\n"
    );

    // The interleaved files really are FAT chains, the big one contiguous (NoFatChain).
    let raw = std::fs::read(&img)?;
    let (flags, ..) = stream_of(&raw, "frag-a.bin")?;
    assert_eq!(flags & 2, 0, "frag-a.bin should use the FAT");
    let (flags, ..) = stream_of(&raw, "bottom.bin")?;
    assert_eq!(flags & 2, 2, "bottom.bin should be contiguous");

    assert!(matches!(
        b.read_dir("/Documents/report.txt"),
        Err(BrowseError::NotADirectory { .. })
    ));
    assert!(matches!(
        b.metadata("/nope"),
        Err(BrowseError::NotFound { .. })
    ));
    assert!(matches!(
        b.read_file("/Documents", &mut Vec::new()),
        Err(BrowseError::NotAFile { .. })
    ));
    assert!(matches!(
        b.read_link("/empty.txt"),
        Err(BrowseError::NotASymlink { .. })
    ));
    Ok(())
}

/// Collects what a sparse read writes and where holes were reported.
#[derive(Default)]
struct Holes {
    data: Vec<u8>,
    holes: Vec<(u64, u64)>,
}
impl SparseWrite for Holes {
    fn as_write(&mut self) -> &mut dyn Write {
        &mut self.data
    }
    fn hole(&mut self, len: u64) -> std::io::Result<()> {
        self.holes.push((self.data.len() as u64, len));
        Ok(())
    }
}

#[test]
fn exfat_damage_is_reported_and_valid_data_length_reads_as_zeros() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("exfat.img");
    mkfs(&img, 32 << 20, &[])?;
    let mnt = dir.path().join("mnt");
    let mut m = Mounted::new(&img, &mnt)?;
    std::fs::write(mnt.join("keep.txt"), b"still here")?;
    std::fs::write(mnt.join("contig.bin"), content(5, 100_000))?;
    write_interleaved(&mnt, 4096, 8)?;
    m.unmount()?;
    let raw = std::fs::read(&img)?;
    let fat = fat_offset(&raw) as usize;

    // ValidDataLength below DataLength: the bytes past it read as zeros (and as a hole).
    let mut img2 = raw.clone();
    let (_, _, _, len, set) = stream_of(&img2, "contig.bin")?;
    assert_eq!(len, 100_000);
    img2[set + 32 + 8..set + 32 + 16].copy_from_slice(&50_000u64.to_le_bytes());
    fix_set_checksum(&mut img2, set);
    let mut b = open_mem(img2)?;
    let mut want = content(5, 100_000);
    want[50_000..].fill(0);
    assert_eq!(read_all(b.as_mut(), "/contig.bin")?, want);
    let mut h = Holes::default();
    assert_eq!(b.read_file_sparse("/contig.bin", &mut h)?, 100_000);
    assert_eq!(h.data, want[..50_000]);
    assert_eq!(h.holes, vec![(50_000, 50_000)]);

    // A FAT chain that loops back: a clear error, no hang.
    let (_, _, first, _, _) = stream_of(&raw, "frag-a.bin")?;
    let mut looped = raw.clone();
    let mut c = first as usize;
    for _ in 0..3 {
        c = u32::from_le_bytes(looped[fat + 4 * c..fat + 4 * c + 4].try_into()?) as usize;
    }
    looped[fat + 4 * c..fat + 4 * c + 4].copy_from_slice(&first.to_le_bytes());
    let mut b = open_mem(looped)?;
    let e = read_all(b.as_mut(), "/frag-a.bin").expect_err("a looping chain must fail");
    assert!(e.to_string().contains("loops"), "{e}");
    assert_eq!(read_all(b.as_mut(), "/keep.txt")?, b"still here");

    // A chain pointing outside the volume.
    let mut wild = raw.clone();
    wild[fat + 4 * first as usize..fat + 4 * first as usize + 4]
        .copy_from_slice(&0x0FFF_FFF0u32.to_le_bytes());
    let mut b = open_mem(wild)?;
    let e = read_all(b.as_mut(), "/frag-a.bin").expect_err("a wild chain must fail");
    assert!(e.to_string().contains("outside the volume"), "{e}");

    // A damaged entry set: that file disappears from the listing, the others stay.
    let mut bad = raw.clone();
    let (_, _, _, _, set) = stream_of(&bad, "frag-b.bin")?;
    bad[set + 8] ^= 0x55;
    let mut b = open_mem(bad)?;
    let names: Vec<String> = b.read_dir("/")?.into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["contig.bin", "frag-a.bin", "keep.txt"]);

    // A damaged main boot region: the backup one is used.
    let mut boot = raw.clone();
    boot[100] ^= 0xFF;
    let mut b = open_mem(boot)?;
    assert_eq!(read_all(b.as_mut(), "/keep.txt")?, b"still here");
    // Both damaged: refused with a clear error.
    let mut both = raw.clone();
    both[100] ^= 0xFF;
    let ss = 1usize << raw[108];
    both[12 * ss + 100] ^= 0xFF;
    let e = open_mem(both)
        .map(|_| ())
        .expect_err("no valid boot region");
    assert!(e.to_string().contains("checksum"), "{e}");
    Ok(())
}

/// A file larger than 4 GiB (exFAT has no holes: the driver writes the zeros for real, so this
/// costs ~4.1 GB of disk while it runs), read back through the 64-bit sizes and offsets.
#[test]
fn exfat_file_larger_than_4_gib_reads_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("big.img");
    mkfs(&img, (4u64 << 30) + (160 << 20), &["-c", "1M"])?;
    let mnt = dir.path().join("mnt");
    let mut m = Mounted::new(&img, &mnt)?;
    let size = (4u64 << 30) + 3_000_000;
    let beyond = (4u64 << 30) + 1_234_567;
    {
        let f = File::create(mnt.join("big.bin"))?;
        f.write_all_at(b"head", 0)?;
        f.write_all_at(b"beyond-4GiB", beyond)?;
        f.set_len(size)?;
        f.sync_all()?;
    }
    m.unmount()?;
    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    assert_eq!(b.metadata("/big.bin")?.size, size);
    struct Marks {
        len: u64,
        nonzero: Vec<(u64, u8)>,
    }
    impl Write for Marks {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.iter().any(|&b| b != 0) {
                for (i, &b) in buf.iter().enumerate() {
                    if b != 0 && self.nonzero.len() < 64 {
                        self.nonzero.push((self.len + i as u64, b));
                    }
                }
            }
            self.len += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = Marks {
        len: 0,
        nonzero: Vec::new(),
    };
    assert_eq!(b.read_file("/big.bin", &mut w)?, size);
    assert_eq!(w.len, size);
    let want: Vec<(u64, u8)> = b"head"
        .iter()
        .enumerate()
        .map(|(i, &x)| (i as u64, x))
        .chain(
            b"beyond-4GiB"
                .iter()
                .enumerate()
                .map(|(i, &x)| (beyond + i as u64, x)),
        )
        .collect();
    assert_eq!(w.nonzero, want);
    Ok(())
}

/// Seeded mutations of a real exFAT image through every reader entry point: our reader never
/// panics (a caught panic would surface as `Damaged`) and answers are bounded.
#[test]
fn mutated_exfat_images_never_panic() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("exfat.img");
    mkfs(&img, 4 << 20, &[])?;
    let mnt = dir.path().join("mnt");
    let mut m = Mounted::new(&img, &mnt)?;
    std::fs::create_dir_all(mnt.join("a folder/nested"))?;
    std::fs::write(mnt.join("a folder/nested/x.bin"), content(1, 20_000))?;
    std::fs::write(mnt.join("a long file name for the entry set.txt"), b"text")?;
    write_interleaved(&mnt, 4096, 6)?;
    m.unmount()?;
    let base = std::fs::read(&img)?;

    let mut rng = XorShift(0x51f1_5eed_0bad_cafe);
    let mut opened = 0;
    for _ in 0..1500 {
        let mut img = base.clone();
        for _ in 0..(1 + rng.next() % 16) {
            // Mostly the boot region, FAT and the first clusters (directories live there).
            let span = if rng.next().is_multiple_of(4) {
                img.len()
            } else {
                1 << 20
            };
            let at = (rng.next() as usize) % span;
            img[at] = rng.next() as u8;
        }
        let io: Box<dyn BlockIo> = Box::new(MemDisk::from_vec(img, 512));
        let Ok(mut b) = browse::open(io) else {
            continue;
        };
        opened += 1;
        let _ = b.label();
        let mut stack = vec!["/".to_string()];
        let mut visited = 0;
        while let Some(p) = stack.pop() {
            visited += 1;
            if visited > 64 {
                break;
            }
            let entries = match b.read_dir(&p) {
                Ok(e) => e,
                Err(e) => {
                    assert!(!matches!(e, BrowseError::Damaged { .. }), "{e}");
                    continue;
                }
            };
            for e in entries.into_iter().take(32) {
                let child = format!("{}/{}", p.trim_end_matches('/'), e.name);
                if let Err(e) = b.metadata(&child) {
                    assert!(!matches!(e, BrowseError::Damaged { .. }), "{e}");
                }
                match e.kind {
                    EntryKind::Dir => stack.push(child),
                    _ => {
                        let mut v = Vec::new();
                        match b.read_file(&child, &mut v) {
                            Ok(n) => assert_eq!(n, v.len() as u64),
                            Err(e) => assert!(!matches!(e, BrowseError::Damaged { .. }), "{e}"),
                        }
                    }
                }
            }
        }
    }
    assert!(opened > 100, "only {opened} mutated images opened");
    Ok(())
}

#[test]
fn exfat_folder_entry_pointing_at_its_parent_is_left_out() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("exfat.img");
    mkfs(&img, 16 << 20, &[])?;
    let mnt = dir.path().join("mnt");
    let mut m = Mounted::new(&img, &mnt)?;
    std::fs::create_dir_all(mnt.join("outer/inner"))?;
    std::fs::write(mnt.join("outer/inner/f.txt"), b"inside")?;
    m.unmount()?;
    let mut raw = std::fs::read(&img)?;
    let before: Vec<String> = open_mem(raw.clone())?
        .read_dir("/outer")?
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(before, ["inner"]);
    let (_, _, outer, _, _) = stream_of(&raw, "outer")?;
    let (_, _, _, _, set) = stream_of(&raw, "inner")?;
    // inner's first cluster := outer's: /outer/inner is /outer, a walk would never end.
    raw[set + 32 + 20..set + 32 + 24].copy_from_slice(&outer.to_le_bytes());
    fix_set_checksum(&mut raw, set);
    let mut b = open_mem(raw)?;
    let names: Vec<String> = b.read_dir("/outer")?.into_iter().map(|e| e.name).collect();
    assert!(names.is_empty(), "the looping entry was listed: {names:?}");
    Ok(())
}
