//! Browsing file systems made by the real tools: mkfs.ext4 -d, mkfs.vfat + mcopy, mkntfs + ntfscp.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use disk::{BlockIo, FileDisk, MemDisk};
use fs::browse::{self, Browser, EntryKind};

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A small deterministic generator for test content and mutations.
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

fn read_all(b: &mut dyn Browser, path: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    b.read_file(path, &mut v)?;
    Ok(v)
}

/// Walks the browser and returns path → (kind, size, content hash-ish: the bytes for small files).
fn walk(
    b: &mut dyn Browser,
    path: &str,
    out: &mut BTreeMap<String, (EntryKind, u64)>,
) -> Result<()> {
    for e in b.read_dir(path)? {
        let child = format!("{}/{}", path.trim_end_matches('/'), e.name);
        out.insert(child.clone(), (e.kind, e.size));
        if e.kind == EntryKind::Dir {
            walk(b, &child, out)?;
        }
    }
    Ok(())
}

/// Walks the host tree the same way.
fn walk_host(root: &Path, rel: &str, out: &mut BTreeMap<String, (EntryKind, u64)>) -> Result<()> {
    for e in std::fs::read_dir(root.join(rel.trim_start_matches('/')))? {
        let e = e?;
        let name = e
            .file_name()
            .into_string()
            .map_err(|_| anyhow::anyhow!("non-utf8"))?;
        let child = format!("{}/{name}", rel.trim_end_matches('/'));
        let md = std::fs::symlink_metadata(e.path())?;
        let kind = if md.is_symlink() {
            EntryKind::Symlink
        } else if md.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        out.insert(child.clone(), (kind, md.len()));
        if kind == EntryKind::Dir {
            walk_host(root, &child, out)?;
        }
    }
    Ok(())
}

/// A writer that counts bytes and remembers where non-zero bytes are.
struct Counting {
    len: u64,
    nonzero: Vec<(u64, u8)>,
}
impl Write for Counting {
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

fn make_ext4_tree(dir: &Path) -> Result<()> {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("docs/deep/1/2/3/4/5/6/7/8"))?;
    std::fs::create_dir_all(tree.join("many"))?;
    for i in 0..2000u64 {
        std::fs::write(
            tree.join(format!("many/f{i:05}")),
            content(i, (i % 97) as usize * 13),
        )?;
    }
    std::fs::write(tree.join("docs/report.txt"), b"quarterly report\n")?;
    std::fs::write(tree.join("docs/Ünïcødé — 日本語.txt"), content(7, 5000))?;
    std::fs::write(
        tree.join("docs/deep/1/2/3/4/5/6/7/8/bottom.bin"),
        content(9, 300_000),
    )?;
    std::os::unix::fs::symlink("report.txt", tree.join("docs/link-to-report"))?;
    std::os::unix::fs::symlink("/nonexistent/target", tree.join("docs/dangling"))?;
    let sparse = std::fs::File::create(tree.join("sparse.bin"))?;
    sparse.set_len((4u64 << 30) + 1_000_000)?;
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"head", 0)?;
    sparse.write_all_at(b"beyond-4GiB", (4u64 << 30) + 4096 * 3 + 17)?;
    drop(sparse);
    let img = dir.join("ext4.img");
    std::fs::File::create(&img)?.set_len(5u64 << 30)?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-L", "lbtest", "-d"])
        .arg(&tree)
        .arg(&img))?;
    Ok(())
}

#[test]
fn ext4_listing_contents_times_symlinks_and_sparse_file_match_the_source_tree() -> Result<()> {
    let dir = tempfile::tempdir()?;
    make_ext4_tree(dir.path())?;
    let tree = dir.path().join("tree");
    let mut b = browse::open(Box::new(FileDisk::open_read(dir.path().join("ext4.img"))?))?;
    assert_eq!(b.fs_name(), "ext4");
    assert_eq!(b.label().as_deref(), Some("lbtest"));

    let mut got = BTreeMap::new();
    walk(b.as_mut(), "/", &mut got)?;
    got.remove("/lost+found");
    let mut want = BTreeMap::new();
    walk_host(&tree, "/", &mut want)?;
    // Folder sizes differ between the host and the image; compare kinds for them.
    for (k, v) in want.iter_mut() {
        if v.0 == EntryKind::Dir {
            v.1 = got.get(k).map_or(0, |g| g.1);
        }
    }
    assert_eq!(got, want);

    for i in (0..2000u64).step_by(37) {
        assert_eq!(
            read_all(b.as_mut(), &format!("/many/f{i:05}"))?,
            content(i, (i % 97) as usize * 13)
        );
    }
    assert_eq!(
        read_all(b.as_mut(), "/docs/Ünïcødé — 日本語.txt")?,
        content(7, 5000)
    );
    assert_eq!(
        read_all(b.as_mut(), "/docs/deep/1/2/3/4/5/6/7/8/bottom.bin")?,
        content(9, 300_000)
    );

    let md = b.metadata("/docs/report.txt")?;
    let host = std::fs::metadata(tree.join("docs/report.txt"))?;
    assert_eq!(md.mtime.map(|t| t.secs), Some(host.mtime()));
    assert_eq!(md.mode, Some(host.mode() & 0o7777));
    assert_eq!(md.uid, Some(host.uid()));

    let link = b.metadata("/docs/link-to-report")?;
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(link.link_target.as_deref(), Some("report.txt"));
    assert_eq!(b.read_link("/docs/dangling")?, "/nonexistent/target");

    let mut c = Counting {
        len: 0,
        nonzero: Vec::new(),
    };
    let n = b.read_file("/sparse.bin", &mut c)?;
    assert_eq!(n, (4u64 << 30) + 1_000_000);
    let beyond = (4u64 << 30) + 4096 * 3 + 17;
    let bytes: Vec<(u64, u8)> = b"head"
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
    assert_eq!(c.nonzero, bytes);

    assert!(matches!(
        b.read_dir("/docs/report.txt"),
        Err(browse::BrowseError::NotADirectory { .. })
    ));
    assert!(matches!(
        b.metadata("/nope"),
        Err(browse::BrowseError::NotFound { .. })
    ));
    assert!(matches!(
        b.read_file("/docs", &mut Vec::new()),
        Err(browse::BrowseError::NotAFile { .. })
    ));
    Ok(())
}

#[test]
fn fat32_long_unicode_names_and_contents_are_read_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("src");
    std::fs::create_dir_all(tree.join("Documents/A rather long folder name"))?;
    std::fs::write(
        tree.join("Documents/A rather long folder name/Résumé février 2024.txt"),
        content(1, 70_000),
    )?;
    std::fs::write(tree.join("Documents/short.txt"), b"hi")?;
    for i in 0..300u64 {
        std::fs::write(
            tree.join(format!("Documents/file number {i}.dat")),
            content(100 + i, i as usize * 7),
        )?;
    }
    let img = dir.path().join("fat.img");
    std::fs::File::create(&img)?.set_len(64 << 20)?;
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-n", "LBFAT"])
        .arg(&img))?;
    run(Command::new("mcopy")
        .arg("-s")
        .arg("-m")
        .arg("-i")
        .arg(&img)
        .arg(tree.join("Documents"))
        .arg("::/"))?;

    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    assert_eq!(b.fs_name(), "vfat");
    assert_eq!(b.label().as_deref(), Some("LBFAT"));
    let mut got = BTreeMap::new();
    walk(b.as_mut(), "/", &mut got)?;
    let mut want = BTreeMap::new();
    walk_host(&tree, "/", &mut want)?;
    for v in want.values_mut().chain(got.values_mut()) {
        if v.0 == EntryKind::Dir {
            v.1 = 0;
        }
    }
    assert_eq!(got, want);
    assert_eq!(
        read_all(
            b.as_mut(),
            "/Documents/A rather long folder name/Résumé février 2024.txt"
        )?,
        content(1, 70_000)
    );
    for i in (0..300u64).step_by(13) {
        assert_eq!(
            read_all(b.as_mut(), &format!("/Documents/file number {i}.dat"))?,
            content(100 + i, i as usize * 7)
        );
    }
    let md = b.metadata("/Documents/short.txt")?;
    let host = std::fs::metadata(tree.join("Documents/short.txt"))?;
    // FAT keeps local time in 2-second steps; mtools writes it in the local zone (UTC here).
    let diff = md.mtime.map(|t| (t.secs - host.mtime()).abs());
    assert!(diff.is_some_and(|d| d <= 2), "mtime differs by {diff:?}");
    Ok(())
}

#[test]
fn ntfs_resident_and_non_resident_files_are_read_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("ntfs.img");
    std::fs::File::create(&img)?.set_len(32 << 20)?;
    run(Command::new("mkntfs")
        .args(["-F", "-Q", "-q", "-L", "LBNTFS"])
        .arg(&img))?;
    let small = dir.path().join("small.txt");
    std::fs::write(&small, content(3, 300))?;
    let big = dir.path().join("big.bin");
    std::fs::write(&big, content(4, 3_000_000))?;
    run(Command::new("ntfscp")
        .arg("-q")
        .arg(&img)
        .arg(&small)
        .arg("small.txt"))?;
    run(Command::new("ntfscp")
        .arg("-q")
        .arg(&img)
        .arg(&big)
        .arg("Größe ñ.bin"))?;

    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    assert_eq!(b.fs_name(), "ntfs");
    assert_eq!(b.label().as_deref(), Some("LBNTFS"));
    let names: Vec<(String, u64)> = b
        .read_dir("/")?
        .into_iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| (e.name, e.size))
        .collect();
    assert_eq!(
        names,
        vec![
            ("Größe ñ.bin".to_string(), 3_000_000),
            ("small.txt".to_string(), 300)
        ]
    );
    assert_eq!(read_all(b.as_mut(), "/small.txt")?, content(3, 300));
    assert_eq!(read_all(b.as_mut(), "/Größe ñ.bin")?, content(4, 3_000_000));
    assert!(b
        .metadata("/small.txt")?
        .mtime
        .is_some_and(|t| t.secs > 1_600_000_000));
    Ok(())
}

#[test]
fn unknown_bytes_are_refused_with_an_error() {
    let io = MemDisk::new(1 << 20, 512);
    let r = browse::open(Box::new(io));
    assert!(matches!(r, Err(browse::BrowseError::UnsupportedFs { .. })));
}

/// Drives every reader entry point with seeded mutations of real file systems: no panic may
/// escape and every answer is either an error or a bounded result.
#[test]
fn mutated_file_systems_never_panic() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut images = Vec::new();
    let fat = dir.path().join("fat.img");
    std::fs::File::create(&fat)?.set_len(4 << 20)?;
    run(Command::new("mkfs.vfat").arg(&fat))?;
    let f = dir.path().join("f.txt");
    std::fs::write(&f, content(5, 9000))?;
    run(Command::new("mcopy")
        .arg("-i")
        .arg(&fat)
        .arg(&f)
        .arg("::/a long name.txt"))?;
    images.push(std::fs::read(&fat)?);
    let tree = dir.path().join("t");
    std::fs::create_dir_all(tree.join("d"))?;
    std::fs::write(tree.join("d/x"), content(6, 20000))?;
    std::os::unix::fs::symlink("d/x", tree.join("l"))?;
    let e4 = dir.path().join("e4.img");
    std::fs::File::create(&e4)?.set_len(2 << 20)?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-d"])
        .arg(&tree)
        .arg(&e4))?;
    images.push(std::fs::read(&e4)?);
    let nt = dir.path().join("nt.img");
    std::fs::File::create(&nt)?.set_len(4 << 20)?;
    run(Command::new("mkntfs").args(["-F", "-Q", "-q"]).arg(&nt))?;
    run(Command::new("ntfscp")
        .arg("-q")
        .arg(&nt)
        .arg(&f)
        .arg("f.txt"))?;
    images.push(std::fs::read(&nt)?);

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut opened = 0;
    for round in 0..1500 {
        let base = &images[round % images.len()];
        let mut img = base.clone();
        // Mutate the metadata-rich first 256 KiB mostly.
        for _ in 0..(1 + rng.next() % 16) {
            let span = if rng.next().is_multiple_of(4) {
                img.len()
            } else {
                256 << 10
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
            let Ok(entries) = b.read_dir(&p) else {
                continue;
            };
            for e in entries.into_iter().take(32) {
                let child = format!("{}/{}", p.trim_end_matches('/'), e.name);
                let _ = b.metadata(&child);
                match e.kind {
                    EntryKind::Dir => stack.push(child),
                    EntryKind::Symlink => {
                        let _ = b.read_link(&child);
                    }
                    _ => {
                        let mut c = Counting {
                            len: 0,
                            nonzero: Vec::new(),
                        };
                        if let Ok(n) = b.read_file(&child, &mut c) {
                            assert_eq!(n, c.len);
                        }
                    }
                }
            }
        }
    }
    assert!(opened > 100, "only {opened} mutated images opened");
    Ok(())
}
