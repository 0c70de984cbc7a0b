//! `lifeboat ls` / `lifeboat extract` on exFAT (made by mkfs.exfat, filled through exfat-fuse)
//! and on NTFS symlinks made by ntfs-3g, from images made by `lifeboat backup` and from the file
//! systems themselves; and a large sparse ext4 file extracted as a sparse file.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

mod browse_support;

use anyhow::{ensure, Result};
use browse_support::{json, lifeboat, p, run};

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs `fill` on `img` mounted by `mount_cmd` (on a loop device for exFAT), then unmounts.
fn with_mounted(
    img: &Path,
    mnt: &Path,
    exfat: bool,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    std::fs::create_dir_all(mnt)?;
    let loopdev = if exfat {
        let dev = run(Command::new("losetup").arg("-f").arg("--show").arg(img))?;
        if let Err(e) = run(Command::new("mount.exfat-fuse").arg(&dev).arg(mnt)) {
            let _ = run(Command::new("losetup").arg("-d").arg(&dev));
            return Err(e);
        }
        Some(dev)
    } else {
        run(Command::new("ntfs-3g").arg(img).arg(mnt))?;
        None
    };
    let filled = fill(mnt);
    let source = loopdev
        .clone()
        .unwrap_or_else(|| img.to_string_lossy().into_owned());
    let unmounted = qemu_tests::fixture::fuse_unmount(mnt, &source);
    let detached = match loopdev {
        Some(dev) => run(Command::new("losetup").arg("-d").arg(dev)).map(|_| ()),
        None => Ok(()),
    };
    filled?;
    unmounted?;
    detached
}

#[test]
fn exfat_ls_and_extract_from_an_image_and_the_file_system() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("exfat.img");
    std::fs::File::create(&img)?.set_len(48 << 20)?;
    run(Command::new("mkfs.exfat").args(["-L", "CARD"]).arg(&img))?;
    let name = "Фотографии отпуска — été 2024 (copie).bin";
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("DCIM/100"))?;
    std::fs::write(tree.join("DCIM/100").join(name), content(1, 1_500_000))?;
    std::fs::write(tree.join("DCIM/100/IMG_0001.JPG"), content(2, 40_000))?;
    std::fs::write(tree.join("DCIM/empty"), b"")?;
    with_mounted(&img, &dir.path().join("mnt"), true, |m| {
        run(Command::new("cp")
            .args(["-r", "--preserve=timestamps"])
            .arg(tree.join("DCIM"))
            .arg(m))?;
        Ok(())
    })?;
    let lbi = dir.path().join("card.lbi");
    let (code, out, err) = lifeboat(&["backup", p(&img), p(&lbi)])?;
    ensure!(code == 0, "backup failed ({code}): {out}{err}");

    for source in [&lbi, &img] {
        let (code, out, err) = lifeboat(&["ls", p(source), "/DCIM/100", "--json"])?;
        assert_eq!(code, 0, "{err}");
        let v = json(&out)?;
        assert_eq!(v["fs"], "exfat");
        assert_eq!(v["label"], "CARD");
        let names: Vec<&str> = v["entries"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["IMG_0001.JPG", name]);

        let out_dir = dir
            .path()
            .join(format!("out-{}", source.display().to_string().len()));
        let (code, out, err) =
            lifeboat(&["extract", p(source), "/dcim", "--to", p(&out_dir), "--json"])?;
        assert_eq!(code, 0, "{out}{err}");
        let v = json(&out)?;
        assert_eq!(v["extracted_files"], 3);
        for rel in ["100/IMG_0001.JPG", &format!("100/{name}"), "empty"] {
            let got = out_dir.join("DCIM").join(rel);
            let want = tree.join("DCIM").join(rel);
            assert_eq!(std::fs::read(&got)?, std::fs::read(&want)?, "{rel}");
            assert_eq!(
                std::fs::metadata(&got)?.mtime(),
                std::fs::metadata(&want)?.mtime(),
                "{rel}"
            );
        }
    }
    Ok(())
}

#[test]
fn ntfs_symlinks_made_by_ntfs_3g_are_extracted_as_symlinks() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("ntfs.img");
    std::fs::File::create(&img)?.set_len(24 << 20)?;
    run(Command::new("mkntfs").args(["-F", "-Q", "-q"]).arg(&img))?;
    with_mounted(&img, &dir.path().join("mnt"), false, |m| {
        std::fs::create_dir_all(m.join("dir"))?;
        std::fs::write(m.join("dir/target.txt"), b"target")?;
        std::os::unix::fs::symlink("dir/target.txt", m.join("link"))?;
        std::os::unix::fs::symlink("../nowhere", m.join("dir/dangling"))?;
        Ok(())
    })?;
    let (code, out, err) = lifeboat(&["ls", p(&img), "/"])?;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with('l') && l.ends_with("link -> dir/target.txt")),
        "{out}"
    );
    let out_dir = dir.path().join("out");
    let (code, out, err) = lifeboat(&["extract", p(&img), "/", "--to", p(&out_dir), "--json"])?;
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out)?;
    assert_eq!(v["extracted_symlinks"], 2);
    assert_eq!(
        std::fs::read_link(out_dir.join("link"))?,
        Path::new("dir/target.txt")
    );
    assert_eq!(
        std::fs::read_link(out_dir.join("dir/dangling"))?,
        Path::new("../nowhere")
    );
    assert_eq!(std::fs::read(out_dir.join("link"))?, b"target");
    Ok(())
}

#[test]
fn a_large_sparse_ext4_file_is_extracted_sparse() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree)?;
    let f = std::fs::File::create(tree.join("disk.vmdk"))?;
    let size = (4u64 << 30) + 12_345;
    f.set_len(size)?;
    use std::os::unix::fs::FileExt;
    f.write_all_at(&content(3, 100_000), 0)?;
    f.write_all_at(b"beyond 4 GiB", (4u64 << 30) + 100)?;
    drop(f);
    let img = dir.path().join("ext4.img");
    std::fs::File::create(&img)?.set_len(256 << 20)?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-d"])
        .arg(&tree)
        .arg(&img))?;
    let out_dir = dir.path().join("out");
    let (code, out, err) = lifeboat(&["extract", p(&img), "/disk.vmdk", "--to", p(&out_dir)])?;
    assert_eq!(code, 0, "{out}{err}");
    let got = out_dir.join("disk.vmdk");
    let md = std::fs::metadata(&got)?;
    assert_eq!(md.len(), size);
    // Holes stay holes: only the data blocks take space.
    assert!(
        md.blocks() * 512 < 8 << 20,
        "{} bytes allocated",
        md.blocks() * 512
    );
    let f = std::fs::File::open(&got)?;
    let mut head = vec![0u8; 100_000];
    f.read_exact_at(&mut head, 0)?;
    assert_eq!(head, content(3, 100_000));
    let mut tail = [0u8; 12];
    f.read_exact_at(&mut tail, (4u64 << 30) + 100)?;
    assert_eq!(&tail, b"beyond 4 GiB");
    Ok(())
}
