//! NTFS links and compressed files written by `ntfs-3g` (FUSE): Interix symlinks (what `ln -s`
//! makes on ntfs-3g), Windows symlink and junction reparse points (reparse data set through
//! ntfs-3g's `system.ntfs_reparse_data` attribute) and a file compressed by ntfs-3g.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use fs::browse::{self, BrowseError, Browser, EntryKind};

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hex(b: &[u8]) -> String {
    let mut s = String::from("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// A reparse buffer: tag, length, reserved, then `body`.
fn reparse(tag: u32, body: &[u8]) -> Vec<u8> {
    let mut v = tag.to_le_bytes().to_vec();
    v.extend_from_slice(&(body.len() as u16).to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(body);
    v
}

/// A `SYMLINK` reparse buffer (relative when `relative`).
fn symlink_data(target: &str, relative: bool) -> Vec<u8> {
    let name = utf16(&target.replace('/', "\\"));
    let n = name.len() as u16;
    let mut body = Vec::new();
    for f in [0u16, n, n, n] {
        body.extend_from_slice(&f.to_le_bytes());
    }
    body.extend_from_slice(&u32::from(relative).to_le_bytes());
    body.extend_from_slice(&name);
    body.extend_from_slice(&name);
    reparse(0xA000_000C, &body)
}

/// A `MOUNT_POINT` (junction) reparse buffer.
fn junction_data(target: &str) -> Vec<u8> {
    let sub = utf16(&format!("\\??\\{target}"));
    let print = utf16(target);
    let mut body = Vec::new();
    for f in [
        0,
        sub.len() as u16,
        sub.len() as u16 + 2,
        print.len() as u16,
    ] {
        body.extend_from_slice(&f.to_le_bytes());
    }
    body.extend_from_slice(&sub);
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&print);
    body.extend_from_slice(&[0, 0]);
    reparse(0xA000_0003, &body)
}

fn set_reparse(path: &Path, data: &[u8]) -> Result<()> {
    run(Command::new("setfattr")
        .args(["-n", "system.ntfs_reparse_data", "-v", &hex(data)])
        .arg(path))?;
    Ok(())
}

#[test]
fn ntfs_links_are_symlinks_and_compressed_files_are_refused_clearly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("ntfs.img");
    std::fs::File::create(&img)?.set_len(32 << 20)?;
    run(Command::new("mkntfs")
        .args(["-F", "-Q", "-q", "-L", "LINKS"])
        .arg(&img))?;
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt)?;
    run(Command::new("ntfs-3g")
        .args(["-o", "compression"])
        .arg(&img)
        .arg(&mnt))?;
    let filled = (|| -> Result<()> {
        std::fs::create_dir_all(mnt.join("dir"))?;
        std::fs::write(mnt.join("dir/target.txt"), b"the target\n")?;
        std::os::unix::fs::symlink("dir/target.txt", mnt.join("rel-link"))?;
        std::os::unix::fs::symlink("/abs/elsewhere", mnt.join("abs-link"))?;
        std::os::unix::fs::symlink("dir", mnt.join("dir-link"))?;
        std::fs::write(mnt.join("win-symlink"), b"")?;
        set_reparse(
            &mnt.join("win-symlink"),
            &symlink_data("dir/target.txt", true),
        )?;
        std::fs::create_dir_all(mnt.join("junction"))?;
        set_reparse(&mnt.join("junction"), &junction_data("C:\\Users\\Public"))?;
        // A folder marked compressed: ntfs-3g (-o compression) compresses files made in it.
        std::fs::create_dir_all(mnt.join("packed"))?;
        run(Command::new("setfattr")
            .args(["-n", "system.ntfs_attrib_be", "-v", "0x00000810"])
            .arg(mnt.join("packed")))?;
        std::fs::write(mnt.join("packed/text.txt"), b"compressible ".repeat(20_000))?;
        std::fs::write(mnt.join("plain.txt"), b"plain")?;
        Ok(())
    })();
    let unmounted = qemu_tests::fixture::fuse_unmount(&mnt, img.to_str().unwrap_or_default());
    filled?;
    unmounted?;

    let mut b = browse::open(Box::new(disk::FileDisk::open_read(&img)?))?;
    let mut links: Vec<(String, EntryKind, Option<String>)> = b
        .read_dir("/")?
        .into_iter()
        .map(|e| (e.name, e.kind, e.link_target))
        .collect();
    links.sort_by(|a, b| a.0.cmp(&b.0));
    let l = |n: &str, k, t: Option<&str>| (n.to_string(), k, t.map(str::to_string));
    assert_eq!(
        links,
        vec![
            l("abs-link", EntryKind::Symlink, Some("/abs/elsewhere")),
            l("dir", EntryKind::Dir, None),
            l("dir-link", EntryKind::Symlink, Some("dir")),
            l("junction", EntryKind::Symlink, Some("C:/Users/Public")),
            l("packed", EntryKind::Dir, None),
            l("plain.txt", EntryKind::File, None),
            l("rel-link", EntryKind::Symlink, Some("dir/target.txt")),
            l("win-symlink", EntryKind::Symlink, Some("dir/target.txt")),
        ]
    );
    assert_eq!(b.read_link("/rel-link")?, "dir/target.txt");
    assert_eq!(b.read_link("/junction")?, "C:/Users/Public");
    assert_eq!(b.metadata("/win-symlink")?.kind, EntryKind::Symlink);
    assert!(matches!(
        b.read_file("/rel-link", &mut Vec::new()),
        Err(BrowseError::NotAFile { .. })
    ));
    assert!(matches!(
        b.read_link("/plain.txt"),
        Err(BrowseError::NotASymlink { .. })
    ));
    let mut v = Vec::new();
    b.read_file("/dir/target.txt", &mut v)?;
    assert_eq!(v, b"the target\n");

    let e = b
        .read_file("/packed/text.txt", &mut Vec::new())
        .expect_err("compressed files are not decoded");
    assert!(
        matches!(&e, BrowseError::Unsupported { what, .. } if what.contains("compressed")),
        "{e}"
    );
    assert_eq!(b.metadata("/packed/text.txt")?.size, 13 * 20_000);
    Ok(())
}

#[test]
fn reparse_points_other_than_links_stay_other() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("ntfs.img");
    std::fs::File::create(&img)?.set_len(16 << 20)?;
    run(Command::new("mkntfs").args(["-F", "-Q", "-q"]).arg(&img))?;
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt)?;
    run(Command::new("ntfs-3g").arg(&img).arg(&mnt))?;
    let filled = (|| -> Result<()> {
        std::fs::write(mnt.join("dedup"), b"")?;
        // IO_REPARSE_TAG_DEDUP with an opaque body.
        set_reparse(&mnt.join("dedup"), &reparse(0x8000_0013, &[1, 2, 3, 4]))?;
        Ok(())
    })();
    let unmounted = qemu_tests::fixture::fuse_unmount(&mnt, img.to_str().unwrap_or_default());
    filled?;
    unmounted?;
    let mut b: Box<dyn Browser> = browse::open(Box::new(disk::FileDisk::open_read(&img)?))?;
    let e = b.metadata("/dedup")?;
    assert_eq!((e.kind, e.link_target), (EntryKind::Other, None));
    assert!(matches!(
        b.read_file("/dedup", &mut Vec::new()),
        Err(BrowseError::Unsupported { .. })
    ));
    Ok(())
}

/// Sets `flag` in the `$STANDARD_INFORMATION` file attributes of the MFT record whose
/// `$FILE_NAME` is `name` (ntfs-3g cannot make EFS-encrypted files, so the flag is patched).
fn patch_std_info_flags(img: &mut [u8], name: &str, flag: u32) -> Result<()> {
    let needle = utf16(name);
    let mut rec = 0;
    while rec + 1024 <= img.len() {
        let r = &img[rec..rec + 1024];
        let u16at = |o: usize| usize::from(u16::from_le_bytes([r[o], r[o + 1]]));
        let u32at = |o: usize| u32::from_le_bytes([r[o], r[o + 1], r[o + 2], r[o + 3]]);
        if &r[..4] == b"FILE" && r.windows(needle.len()).any(|w| w == needle.as_slice()) {
            let mut a = u16at(0x14);
            while a + 0x18 < 1024 && u32at(a) != 0xFFFF_FFFF {
                let len = u32at(a + 4) as usize;
                if u32at(a) == 0x10 {
                    let at = rec + a + u16at(a + 0x14) + 0x20;
                    let old = u32::from_le_bytes(img[at..at + 4].try_into()?);
                    img[at..at + 4].copy_from_slice(&(old | flag).to_le_bytes());
                    return Ok(());
                }
                if len == 0 {
                    break;
                }
                a += len;
            }
        }
        rec += 1024;
    }
    anyhow::bail!("no MFT record for {name}")
}

#[test]
fn an_encrypted_ntfs_file_is_refused_clearly_and_others_read() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("ntfs.img");
    std::fs::File::create(&img)?.set_len(16 << 20)?;
    run(Command::new("mkntfs").args(["-F", "-Q", "-q"]).arg(&img))?;
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt)?;
    run(Command::new("ntfs-3g").arg(&img).arg(&mnt))?;
    let filled = (|| -> Result<()> {
        std::fs::write(mnt.join("secret-file.txt"), b"ciphertext here")?;
        std::fs::write(mnt.join("clear.txt"), b"clear")?;
        Ok(())
    })();
    let unmounted = qemu_tests::fixture::fuse_unmount(&mnt, img.to_str().unwrap_or_default());
    filled?;
    unmounted?;
    let mut raw = std::fs::read(&img)?;
    patch_std_info_flags(&mut raw, "secret-file.txt", 0x4000)?;
    let mut b = browse::open(Box::new(disk::MemDisk::from_vec(raw, 512)))?;
    let e = b
        .read_file("/secret-file.txt", &mut Vec::new())
        .expect_err("EFS content is not decoded");
    assert!(
        matches!(&e, BrowseError::Unsupported { what, .. } if what.contains("encrypted")),
        "{e}"
    );
    let mut v = Vec::new();
    b.read_file("/clear.txt", &mut v)?;
    assert_eq!(v, b"clear");
    Ok(())
}
