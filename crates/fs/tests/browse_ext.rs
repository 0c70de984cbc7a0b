//! The ext2/3/4 reader against file systems made by the real tools (mke2fs -d with many feature
//! combinations) and damaged with debugfs or byte patches: listings, contents, symlink targets
//! and times must equal the source tree; damage must stay local to the object it hits.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use disk::FileDisk;
use fs::browse::{self, BrowseError, Browser, EntryKind, SparseWrite};
/// Deterministic file contents that do not compress to nothing.
use qemu_tests::fixture::noise as content;

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn debugfs(img: &Path, write: bool, req: &str) -> Result<String> {
    let mut c = Command::new("debugfs");
    if write {
        c.arg("-w");
    }
    run(c.arg("-R").arg(req).arg(img))
}

/// A source tree exercising inline-sized files, multi-extent files, a sparse file, a big folder
/// (several blocks, htree after `e2fsck -D`), unicode names and all symlink kinds.
fn make_tree(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root.join("d/e/f"))?;
    std::fs::create_dir_all(root.join("big"))?;
    std::fs::write(root.join("empty"), b"")?;
    std::fs::write(root.join("tiny"), b"hi\n")?;
    std::fs::write(root.join("sixty"), content(1, 60))?;
    std::fs::write(root.join("inl"), content(2, 100))?;
    std::fs::write(root.join("d/e/f/three-mib"), content(3, 3 << 20))?;
    std::fs::write(root.join("d/Ünïcødé 日本.txt"), content(4, 5000))?;
    for i in 0..300u64 {
        std::fs::write(
            root.join(format!("big/entry-with-a-longish-name-{i:04}")),
            content(100 + i, (i % 7) as usize * 333),
        )?;
    }
    let sparse = std::fs::File::create(root.join("sparse"))?;
    sparse.set_len(40 << 20)?;
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"start", 0)?;
    sparse.write_all_at(&content(5, 70_000), 10 << 20)?;
    sparse.write_all_at(b"end", (40 << 20) - 3)?;
    drop(sparse);
    std::os::unix::fs::symlink("tiny", root.join("fast-link"))?;
    let long = format!("{}/target", "long-component".repeat(6));
    std::os::unix::fs::symlink(&long, root.join("slow-link"))?;
    std::os::unix::fs::symlink("/no/such/place", root.join("d/dangling"))?;
    run(Command::new("touch")
        .args(["-h", "-d", "2001-02-03 04:05:06"])
        .arg(root.join("tiny")))?;
    std::fs::set_permissions(
        root.join("inl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )?;
    Ok(())
}

fn mkfs(root: &Path, img: &Path, size_mib: u64, args: &[&str]) -> Result<()> {
    std::fs::File::create(img)?.set_len(size_mib << 20)?;
    run(Command::new("mke2fs")
        .args(["-q", "-F"])
        .args(args)
        .arg("-d")
        .arg(root)
        .arg(img))?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Node {
    File(Vec<u8>),
    Dir,
    Link(String),
}

/// The host tree as path → node.
fn host_tree(root: &Path, rel: &str, out: &mut BTreeMap<String, (Node, i64)>) -> Result<()> {
    for e in std::fs::read_dir(root.join(rel.trim_start_matches('/')))? {
        let e = e?;
        let name = e
            .file_name()
            .into_string()
            .map_err(|_| anyhow::anyhow!("utf8"))?;
        let child = format!("{}/{name}", rel.trim_end_matches('/'));
        let md = std::fs::symlink_metadata(e.path())?;
        let node = if md.is_symlink() {
            Node::Link(
                std::fs::read_link(e.path())?
                    .to_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        } else if md.is_dir() {
            host_tree(root, &child, out)?;
            Node::Dir
        } else {
            Node::File(std::fs::read(e.path())?)
        };
        out.insert(child, (node, md.mtime()));
    }
    Ok(())
}

/// Records what a sparse read hands out.
#[derive(Default)]
struct Recorder {
    data: Vec<u8>,
    holes: u64,
    written: u64,
}
impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.data.extend_from_slice(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl SparseWrite for Recorder {
    fn as_write(&mut self) -> &mut dyn Write {
        self
    }
    fn hole(&mut self, len: u64) -> std::io::Result<()> {
        self.holes += len;
        self.data.resize(self.data.len() + len as usize, 0);
        Ok(())
    }
}

/// The browser's tree as path → node, reading every file both plainly and sparsely.
fn image_tree(
    b: &mut dyn Browser,
    path: &str,
    out: &mut BTreeMap<String, (Node, i64)>,
) -> Result<()> {
    for e in b.read_dir(path)? {
        let child = format!("{}/{}", path.trim_end_matches('/'), e.name);
        if child == "/lost+found" {
            continue;
        }
        let node = match e.kind {
            EntryKind::Dir => {
                image_tree(b, &child, out)?;
                Node::Dir
            }
            EntryKind::Symlink => {
                let t = b.read_link(&child)?;
                ensure!(e.link_target.as_deref() == Some(t.as_str()), "{child}");
                ensure!(e.size == t.len() as u64, "{child}: symlink size");
                Node::Link(t)
            }
            EntryKind::File => {
                let mut plain = Vec::new();
                let n = b.read_file(&child, &mut plain)?;
                ensure!(n == e.size && plain.len() as u64 == n, "{child}: length");
                let mut rec = Recorder::default();
                let m = b.read_file_sparse(&child, &mut rec)?;
                ensure!(m == n && rec.data == plain, "{child}: sparse read differs");
                Node::File(plain)
            }
            EntryKind::Other => anyhow::bail!("{child}: unexpected special file"),
        };
        out.insert(child, (node, e.mtime.map_or(0, |t| t.secs)));
    }
    Ok(())
}

/// Opens `img` and checks it holds exactly the tree at `root`.
fn check_same(img: &Path, root: &Path) -> Result<Box<dyn Browser>> {
    let mut b = browse::open(Box::new(FileDisk::open_read(img)?))?;
    let mut got = BTreeMap::new();
    image_tree(b.as_mut(), "/", &mut got)?;
    let mut want = BTreeMap::new();
    host_tree(root, "/", &mut want)?;
    // Folder and symlink mtimes are set when mke2fs makes them, not copied: compare files only.
    for (k, v) in want.iter_mut() {
        if !matches!(v.0, Node::File(_)) {
            v.1 = got.get(k).map_or(0, |g| g.1);
        }
    }
    ensure!(
        got.keys().collect::<Vec<_>>() == want.keys().collect::<Vec<_>>(),
        "listing differs:\n got {:?}\nwant {:?}",
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, v) in &want {
        ensure!(got.get(k) == Some(v), "{k} differs");
    }
    let tiny = b.metadata("/tiny")?;
    let host = std::fs::metadata(root.join("tiny"))?;
    ensure!(tiny.mtime.map(|t| t.secs) == Some(host.mtime()));
    ensure!(b.metadata("/inl")?.mode == Some(0o640));
    ensure!(b.metadata("/d/e/f/three-mib")?.uid == Some(host.uid()));
    Ok(b)
}

#[test]
fn every_feature_combination_reads_back_the_source_tree() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("tree");
    make_tree(&root)?;
    let configs: &[(&str, u64, &[&str])] = &[
        ("ext4-default", 96, &["-t", "ext4"]),
        (
            "ext2-nofiletype-1k-128",
            96,
            &["-t", "ext2", "-O", "^filetype", "-b", "1024", "-I", "128"],
        ),
        ("ext2-rev0", 96, &["-t", "ext2", "-r", "0"]),
        ("ext3-2k", 96, &["-t", "ext3", "-b", "2048"]),
        ("ext4-inline", 96, &["-t", "ext4", "-O", "inline_data"]),
        (
            "ext4-meta_bg-1k",
            96,
            &["-t", "ext4", "-b", "1024", "-O", "meta_bg,^resize_inode"],
        ),
        ("ext4-mmp", 96, &["-t", "ext4", "-O", "mmp"]),
        (
            "ext4-32bit-128",
            96,
            &["-t", "ext4", "-O", "^64bit", "-I", "128"],
        ),
        (
            "ext4-64bit-nocsum",
            96,
            &["-t", "ext4", "-O", "64bit,^metadata_csum"],
        ),
        ("ext4-64k", 128, &["-t", "ext4", "-b", "65536"]),
        (
            "ext4-bigalloc-1k",
            96,
            &["-t", "ext4", "-b", "1024", "-O", "bigalloc", "-C", "16384"],
        ),
        (
            "ext4-ea_inode-1k",
            96,
            &["-t", "ext4", "-b", "1024", "-O", "ea_inode,large_dir"],
        ),
    ];
    for (name, size, args) in configs {
        let img = dir.path().join(format!("{name}.img"));
        mkfs(&root, &img, *size, args).with_context(|| name.to_string())?;
        check_same(&img, &root).with_context(|| name.to_string())?;
        // Rebuild every folder as an htree index and read again.
        let out = Command::new("e2fsck").args(["-fyD"]).arg(&img).output()?;
        ensure!(
            out.status.code().unwrap_or(8) < 4,
            "{name}: e2fsck -D failed"
        );
        check_same(&img, &root).with_context(|| format!("{name} after e2fsck -D"))?;
    }
    Ok(())
}

#[test]
fn htree_inline_symlinks_and_block_maps_are_really_exercised() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("tree");
    make_tree(&root)?;
    let img = dir.path().join("x.img");
    mkfs(
        &root,
        &img,
        96,
        &["-t", "ext4", "-b", "1024", "-O", "inline_data"],
    )?;
    let out = Command::new("e2fsck").args(["-fyD"]).arg(&img).output()?;
    ensure!(out.status.code().unwrap_or(8) < 4);
    ensure!(
        debugfs(&img, false, "stat /big")?.contains("Flags: 0x81000"),
        "htree index"
    );
    ensure!(debugfs(&img, false, "stat /inl")?.contains("Size of inline data"));
    ensure!(debugfs(&img, false, "stat /slow-link")?.contains("Flags: 0x10000000"));
    check_same(&img, &root)?;
    let img2 = dir.path().join("y.img");
    mkfs(&root, &img2, 96, &["-t", "ext2", "-b", "1024"])?;
    ensure!(debugfs(&img2, false, "stat /d/e/f/three-mib")?.contains("(DIND)"));
    check_same(&img2, &root)?;
    Ok(())
}

#[test]
fn timestamps_carry_nanoseconds_and_epoch_bits_and_ids_their_high_halves() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("tree");
    make_tree(&root)?;
    let img = dir.path().join("t.img");
    mkfs(&root, &img, 96, &["-t", "ext4"])?;
    // mtime 2001-02-03 04:05:06 UTC-ish base, epoch bits 3, 123456789 ns.
    debugfs(&img, true, "sif /tiny mtime 0x3a7b8a32")?;
    debugfs(&img, true, "sif /tiny mtime_extra 0x1d6f3457")?;
    debugfs(&img, true, "sif /tiny uid 0x123456")?;
    debugfs(&img, true, "sif /tiny gid 0x10002")?;
    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    let e = b.metadata("/tiny")?;
    let m = e.mtime.context("mtime")?;
    assert_eq!(m.secs, 0x3a7b_8a32 + (3i64 << 32));
    assert_eq!(m.nanos, 123_456_789);
    assert_eq!(e.uid, Some(0x12_3456));
    assert_eq!(e.gid, Some(0x1_0002));
    Ok(())
}

/// A sparse output that counts data and hole bytes and keeps the positions of the data.
#[derive(Default)]
struct SparseCount {
    pos: u64,
    data: u64,
    holes: u64,
    nonzero: Vec<(u64, u8)>,
}
impl Write for SparseCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for (i, &b) in buf.iter().enumerate() {
            if b != 0 && self.nonzero.len() < 64 {
                self.nonzero.push((self.pos + i as u64, b));
            }
        }
        self.pos += buf.len() as u64;
        self.data += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl SparseWrite for SparseCount {
    fn as_write(&mut self) -> &mut dyn Write {
        self
    }
    fn hole(&mut self, len: u64) -> std::io::Result<()> {
        self.pos += len;
        self.holes += len;
        Ok(())
    }
}

#[test]
fn sparse_files_hand_out_holes_and_uninitialised_extents_read_as_zeros() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("tree");
    std::fs::create_dir_all(&root)?;
    let f = std::fs::File::create(root.join("huge"))?;
    f.set_len(5u64 << 30)?;
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"A", 0)?;
    f.write_all_at(b"B", (4u64 << 30) + 12_345)?;
    f.write_all_at(b"C", (5u64 << 30) - 1)?;
    drop(f);
    std::fs::write(root.join("prealloc"), content(9, 8192))?;
    let img = dir.path().join("s.img");
    mkfs(&root, &img, 64, &["-t", "ext4"])?;
    // Uninitialised blocks past the data, then a size covering them: they must read as zeros.
    debugfs(&img, true, "fallocate /prealloc 10 40")?;
    debugfs(&img, true, "sif /prealloc size 200000")?;
    ensure!(debugfs(&img, false, "ex /prealloc")?.contains("Uninit"));
    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    let mut c = SparseCount::default();
    let n = b.read_file_sparse("/huge", &mut c)?;
    assert_eq!(n, 5u64 << 30);
    assert_eq!(c.pos, n);
    assert!(c.data <= 3 * 4096, "read {} data bytes", c.data);
    assert_eq!(
        c.nonzero,
        vec![
            (0, b'A'),
            ((4u64 << 30) + 12_345, b'B'),
            ((5u64 << 30) - 1, b'C')
        ]
    );
    let mut plain = Vec::new();
    assert_eq!(b.read_file("/prealloc", &mut plain)?, 200_000);
    let mut want = content(9, 8192);
    want.resize(200_000, 0);
    assert_eq!(plain, want);
    let mut c = SparseCount::default();
    b.read_file_sparse("/prealloc", &mut c)?;
    assert!(c.holes >= 200_000 - 8192 - 4096);
    Ok(())
}

/// Byte offset of inode `ino`'s on-disk copy, from debugfs
/// ("Inode N is part of block group G / located at block B, offset 0xOFF").
fn inode_offset(img: &Path, ino: u32) -> Result<u64> {
    let out = debugfs(img, false, &format!("imap <{ino}>"))?;
    let rest = out
        .split("located at block ")
        .nth(1)
        .context("imap output")?;
    let (block, off) = rest.split_once(", offset 0x").context("imap offset")?;
    let block: u64 = block.trim().parse()?;
    let off = u64::from_str_radix(off.trim(), 16)?;
    let bs: u64 = debugfs(img, false, "stats")?
        .lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .context("block size")?
        .trim()
        .parse()?;
    Ok(block * bs + off)
}

fn ino_of(img: &Path, path: &str) -> Result<u32> {
    let out = debugfs(img, false, &format!("stat {path}"))?;
    let n = out
        .split_whitespace()
        .nth(1)
        .context("inode number")?
        .parse()?;
    Ok(n)
}

fn patch(img: &Path, off: u64, bytes: &[u8]) -> Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(img)?;
    use std::os::unix::fs::FileExt;
    f.write_all_at(bytes, off)?;
    Ok(())
}

#[test]
fn checksum_errors_are_warnings_and_damage_stays_local() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("tree");
    make_tree(&root)?;
    let img = dir.path().join("d.img");
    mkfs(&root, &img, 96, &["-t", "ext4"])?;

    // Bad superblock checksum, bad inode checksum, a journal flagged as needing recovery.
    debugfs(&img, true, "ssv checksum 0x1234")?;
    debugfs(&img, true, "sif /tiny checksum 0x4321")?;
    debugfs(&img, true, "feature needs_recovery")?;
    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    let mut v = Vec::new();
    b.read_file("/tiny", &mut v)?;
    assert_eq!(v, b"hi\n");
    drop(b);

    // An out-of-range first extent: only that file fails.
    let three = ino_of(&img, "/d/e/f/three-mib")?;
    let off = inode_offset(&img, three)?;
    patch(&img, off + 0x28 + 20, &0xFFFF_FF00u32.to_le_bytes())?;
    // An extent tree that claims depth 9.
    let sixty = ino_of(&img, "/sixty")?;
    let off6 = inode_offset(&img, sixty)?;
    patch(&img, off6 + 0x28 + 6, &9u16.to_le_bytes())?;
    // A size of 2^60 on the sparse file: metadata says so, but no ext file can be longer than
    // 2^32 blocks, so reading it is an error for that file (streaming its holes would never end).
    debugfs(&img, true, "sif /sparse size 0x1000000000000000")?;
    // A folder entry pointing back at the root: a loop in the tree.
    debugfs(&img, true, "ln / /d/e/loop")?;

    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    let root_list = b.read_dir("/")?;
    assert!(root_list.iter().any(|e| e.name == "tiny"));
    let err = b.read_file("/d/e/f/three-mib", &mut std::io::sink());
    assert!(matches!(err, Err(BrowseError::Read { .. })), "{err:?}");
    let err = b.read_file("/sixty", &mut std::io::sink());
    assert!(matches!(err, Err(BrowseError::Read { .. })), "{err:?}");
    assert_eq!(b.metadata("/sparse")?.size, 1u64 << 60);
    let mut c = SparseCount::default();
    let err = b.read_file_sparse("/sparse", &mut c);
    assert!(
        matches!(&err, Err(BrowseError::Read { message, .. }) if message.contains("more than an ext file can hold")),
        "{err:?}"
    );
    assert_eq!(c.data, 0);
    // The loop is left out of listings (a recursive walk ends) but its path still resolves.
    assert!(!b.read_dir("/d/e")?.iter().any(|e| e.name == "loop"));
    let looped: Vec<String> = b
        .read_dir("/d/e/loop/d/e/loop/d")?
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(looped.contains(&"Ünïcødé 日本.txt".to_string()));
    let mut v = Vec::new();
    b.read_file("/inl", &mut v)?;
    assert_eq!(v, content(2, 100));
    drop(b);

    // A truncated image: the root still lists; files past the end fail alone.
    let len = std::fs::metadata(&img)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)?
        .set_len(len / 3)?;
    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    assert!(!b.read_dir("/")?.is_empty());
    let mut failures = 0;
    for i in 0..300 {
        if b.metadata(&format!("/big/entry-with-a-longish-name-{i:04}"))
            .is_err()
        {
            failures += 1;
        }
    }
    assert!(failures < 300);
    Ok(())
}

#[test]
fn a_damaged_folder_block_lists_what_is_left() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("tree");
    make_tree(&root)?;
    let img = dir.path().join("f.img");
    mkfs(
        &root,
        &img,
        96,
        &["-t", "ext2", "-b", "1024", "-O", "^filetype"],
    )?;
    // The second block of /big: break its first record length.
    let blocks = debugfs(&img, false, "blocks /big")?;
    let second: u64 = blocks
        .split_whitespace()
        .nth(1)
        .context("second block")?
        .parse()?;
    patch(&img, second * 1024 + 4, &3u16.to_le_bytes())?;
    let mut b = browse::open(Box::new(FileDisk::open_read(&img)?))?;
    let n = b.read_dir("/big")?.len();
    assert!(n > 0 && n < 300, "{n} entries");
    Ok(())
}
