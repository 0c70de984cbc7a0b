//! `lifeboat ls` and `lifeboat extract` on images made by `lifeboat backup` of file systems made
//! by the real tools, and on the file systems themselves (live partitions).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod browse_support;

use anyhow::{ensure, Context, Result};
use browse_support::{json, lifeboat, p, run};

fn random_file(path: &Path, bytes: u64) -> Result<()> {
    run(Command::new("head")
        .arg("-c")
        .arg(bytes.to_string())
        .arg("/dev/urandom")
        .stdout(std::fs::File::create(path)?))?;
    Ok(())
}

fn backup(fs_img: &Path, lbi: &Path) -> Result<()> {
    let (code, out, err) = lifeboat(&["backup", p(fs_img), p(lbi)])?;
    ensure!(code == 0, "backup failed ({code}): {out}{err}");
    Ok(())
}

#[test]
fn ls_and_extract_from_an_image_keep_contents_times_modes_and_symlinks() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("docs/sub/deeper"))?;
    std::fs::write(tree.join("docs/notes.txt"), b"remember the milk\n")?;
    random_file(&tree.join("docs/sub/photo.jpg"), 3_000_000)?;
    std::fs::write(tree.join("docs/sub/deeper/ça va.txt"), b"oui\n")?;
    std::os::unix::fs::symlink("notes.txt", tree.join("docs/notes-link"))?;
    std::fs::write(tree.join("other.txt"), b"not asked for\n")?;
    let fs_img = dir.path().join("fs.img");
    std::fs::File::create(&fs_img)?.set_len(64 << 20)?;
    run(Command::new("mkfs.ext4").args(["-q", "-d", p(&tree), p(&fs_img)]))?;
    let lbi = dir.path().join("x.lbi");
    backup(&fs_img, &lbi)?;

    for source in [&lbi, &fs_img] {
        let (code, out, err) = lifeboat(&["ls", p(source), "/docs"])?;
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with('d') && l.ends_with(" sub")),
            "{out}"
        );
        assert!(out.contains("notes-link -> notes.txt"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("-rw-r--r--") && l.ends_with(" notes.txt")),
            "{out}"
        );
    }

    let out_dir = dir.path().join("out");
    let (code, out, err) = lifeboat(&["extract", p(&lbi), "/docs", "--to", p(&out_dir), "--json"])?;
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out)?;
    assert_eq!(v["extracted_files"], 3);
    assert_eq!(v["extracted_symlinks"], 1);
    assert!(v["image_bytes_read"].as_u64().is_some_and(|n| n > 0));
    for rel in [
        "docs/notes.txt",
        "docs/sub/photo.jpg",
        "docs/sub/deeper/ça va.txt",
    ] {
        let a = std::fs::read(tree.join(rel))?;
        let b = std::fs::read(out_dir.join(rel))?;
        assert!(a == b, "{rel} differs");
        let (ma, mb) = (
            std::fs::metadata(tree.join(rel))?,
            std::fs::metadata(out_dir.join(rel))?,
        );
        assert_eq!(ma.mtime(), mb.mtime(), "{rel} mtime");
        assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "{rel} mode");
    }
    assert_eq!(
        std::fs::read_link(out_dir.join("docs/notes-link"))?,
        Path::new("notes.txt")
    );
    assert!(!out_dir.join("other.txt").exists());

    // A second run refuses to overwrite; --overwrite replaces.
    let (code, out, _) = lifeboat(&[
        "extract",
        p(&lbi),
        "/docs/notes.txt",
        "--to",
        p(&out_dir.join("docs")),
    ])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failed: /docs/notes.txt"), "{out}");
    let (code, _, err) = lifeboat(&[
        "extract",
        p(&lbi),
        "/docs/notes.txt",
        "--to",
        p(&out_dir.join("docs")),
        "--overwrite",
    ])?;
    assert_eq!(code, 0, "{err}");

    let (code, _, err) = lifeboat(&["ls", p(&lbi), "/missing"])?;
    assert_eq!(code, 1);
    assert!(err.contains("/missing"), "{err}");
    Ok(())
}

#[test]
fn extracting_one_file_reads_a_small_part_of_a_4_gib_partition_image() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("data"))?;
    for i in 0..12 {
        random_file(&tree.join(format!("data/bulk{i}.bin")), 50 << 20)?;
    }
    random_file(&tree.join("wanted.bin"), 50 << 20)?;
    let fs_img = dir.path().join("fs.img");
    std::fs::File::create(&fs_img)?.set_len(4 << 30)?;
    run(Command::new("mkfs.ext4").args(["-q", "-d", p(&tree), p(&fs_img)]))?;
    let lbi = dir.path().join("x.lbi");
    backup(&fs_img, &lbi)?;
    let image_len = std::fs::metadata(&lbi)?.len();

    let out_dir = dir.path().join("out");
    let started = Instant::now();
    let (code, out, err) = lifeboat(&[
        "extract",
        p(&lbi),
        "/wanted.bin",
        "--to",
        p(&out_dir),
        "--json",
    ])?;
    let took = started.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    let read = json(&out)?["image_bytes_read"].as_u64().unwrap_or(u64::MAX);
    eprintln!("extracting 50 MiB of a {image_len}-byte image read {read} bytes in {took:?}");
    assert!(read < image_len / 10, "read {read} of {image_len}");
    assert!(std::fs::read(tree.join("wanted.bin"))? == std::fs::read(out_dir.join("wanted.bin"))?);
    Ok(())
}

#[test]
fn a_damaged_chunk_fails_only_the_file_it_holds() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree)?;
    random_file(&tree.join("victim.bin"), 12 << 20)?;
    random_file(&tree.join("intact.bin"), 12 << 20)?;
    std::fs::write(tree.join("small.txt"), b"still fine\n")?;
    let fs_img = dir.path().join("fs.img");
    std::fs::File::create(&fs_img)?.set_len(128 << 20)?;
    run(Command::new("mkfs.ext4").args(["-q", "-b", "4096", "-d", p(&tree), p(&fs_img)]))?;
    let lbi = dir.path().join("x.lbi");
    backup(&fs_img, &lbi)?;

    // The middle block of victim.bin, from its block map.
    let blocks = run(Command::new("debugfs").args(["-R", "blocks /victim.bin", p(&fs_img)]))?;
    let list: Vec<u64> = blocks
        .split_whitespace()
        .filter_map(|b| b.parse().ok())
        .collect();
    ensure!(!list.is_empty(), "no blocks from debugfs: {blocks}");
    let fs_offset = list[list.len() / 2] * 4096;
    let reader = image::ImageReader::open(&lbi)?;
    let entry = reader
        .index()
        .iter()
        .find(|e| {
            reader
                .stream(e.stream)
                .is_ok_and(|s| s.kind != image::StreamKind::DiskArea)
                && e.logical_offset <= fs_offset
                && fs_offset < e.logical_offset + u64::from(e.uncompressed_len)
        })
        .copied()
        .context("no chunk holds the block")?;
    drop(reader);
    let mut bytes = std::fs::read(&lbi)?;
    let at = usize::try_from(entry.volume_offset + u64::from(entry.compressed_len / 2))?;
    bytes[at] ^= 0x5a;
    std::fs::write(&lbi, bytes)?;

    let out_dir = dir.path().join("out");
    let (code, out, err) = lifeboat(&["extract", p(&lbi), "/", "--to", p(&out_dir), "--json"])?;
    assert_eq!(code, 1, "{out}{err}");
    let v = json(&out)?;
    let failed: Vec<&str> = v["failed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(failed, ["/victim.bin"]);
    assert!(std::fs::read(tree.join("intact.bin"))? == std::fs::read(out_dir.join("intact.bin"))?);
    assert_eq!(std::fs::read(out_dir.join("small.txt"))?, b"still fine\n");
    assert!(!out_dir.join("victim.bin").exists());
    Ok(())
}
