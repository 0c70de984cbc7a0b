//! A small file-system label reader (ISO9660, ext2/3/4, FAT, exFAT), used to find the boot medium
//! and the volume named by `lifeboat.job=LABEL:...` without udev or blkid.
//!
//! It reads a few superblock bytes only and never trusts them for more than a bounded read.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// The file-system types init can recognise (and the kernel type name to mount them with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Iso9660,
    Ext,
    Vfat,
    Exfat,
}

impl FsKind {
    /// The `mount(2)` file-system type.
    pub fn mount_type(self) -> &'static str {
        match self {
            FsKind::Iso9660 => "iso9660",
            FsKind::Ext => "ext4",
            FsKind::Vfat => "vfat",
            FsKind::Exfat => "exfat",
        }
    }
}

/// A recognised file system and its label (trailing spaces and NULs removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub kind: FsKind,
    pub label: String,
}

fn read(f: &File, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).ok()?;
    Some(buf)
}

fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// Recognises the file system on `dev` (a block device or image file). `None` when it is none of
/// the supported kinds or cannot be read.
pub fn probe(dev: &File) -> Option<Probe> {
    probe_iso9660(dev)
        .or_else(|| probe_ext(dev))
        .or_else(|| probe_exfat(dev))
        .or_else(|| probe_vfat(dev))
}

fn probe_iso9660(f: &File) -> Option<Probe> {
    // Primary volume descriptor at sector 16 (2048-byte sectors); scan a few descriptors.
    for i in 16..32u64 {
        let d = read(f, i * 2048, 2048)?;
        if d.get(1..6)? != b"CD001" {
            return None;
        }
        match d.first()? {
            1 => {
                return Some(Probe {
                    kind: FsKind::Iso9660,
                    label: clean(d.get(40..72)?),
                })
            }
            255 => return None,
            _ => continue,
        }
    }
    None
}

fn probe_ext(f: &File) -> Option<Probe> {
    let sb = read(f, 1024, 256)?;
    if sb.get(0x38..0x3a)? != [0x53, 0xef] {
        return None;
    }
    Some(Probe {
        kind: FsKind::Ext,
        label: clean(sb.get(0x78..0x88)?),
    })
}

fn probe_vfat(f: &File) -> Option<Probe> {
    let bs = read(f, 0, 512)?;
    if bs.get(510..512)? != [0x55, 0xaa] {
        return None;
    }
    let bytes_per_sector = u16::from_le_bytes([*bs.get(11)?, *bs.get(12)?]);
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096) || *bs.get(13)? == 0 {
        return None;
    }
    // FAT32 has its extended BPB at 0x40, FAT12/16 at 0x24; the label follows the 0x29 signature.
    let label = if bs.get(0x52..0x57)? == b"FAT32" && *bs.get(0x42)? == 0x29 {
        bs.get(0x47..0x52)?
    } else if bs.get(0x36..0x39)? == b"FAT" && *bs.get(0x26)? == 0x29 {
        bs.get(0x2b..0x36)?
    } else {
        return None;
    };
    let label = clean(label);
    Some(Probe {
        kind: FsKind::Vfat,
        label: if label == "NO NAME" {
            String::new()
        } else {
            label
        },
    })
}

fn probe_exfat(f: &File) -> Option<Probe> {
    let bs = read(f, 0, 512)?;
    if bs.get(3..11)? != b"EXFAT   " {
        return None;
    }
    let u32_at =
        |o: usize| -> Option<u32> { Some(u32::from_le_bytes(bs.get(o..o + 4)?.try_into().ok()?)) };
    let heap_offset = u64::from(u32_at(88)?);
    let root_cluster = u64::from(u32_at(96)?);
    let sector_shift = u32::from(*bs.get(108)?);
    let cluster_shift = u32::from(*bs.get(109)?);
    if !(9..=12).contains(&sector_shift) || cluster_shift > 25 || root_cluster < 2 {
        return None;
    }
    let cluster_bytes = 1u64 << (sector_shift + cluster_shift);
    let root = heap_offset
        .checked_shl(sector_shift)?
        .checked_add((root_cluster - 2).checked_mul(cluster_bytes)?)?;
    // The volume label entry (type 0x83) is in the first cluster of the root directory in
    // practice; read at most 64 KiB of it.
    let dir = read(f, root, cluster_bytes.min(65536) as usize)?;
    let mut label = String::new();
    for e in dir.chunks_exact(32) {
        match e.first()? {
            0x00 => break,
            0x83 => {
                let n = usize::from(*e.get(1)?).min(11);
                let units: Vec<u16> = e
                    .get(2..2 + 2 * n)?
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                label = String::from_utf16_lossy(&units);
                break;
            }
            _ => {}
        }
    }
    Some(Probe {
        kind: FsKind::Exfat,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use qemu_tests::fixture::{mkfs, run, Mkfs};

    fn probe_path(p: &std::path::Path) -> Option<Probe> {
        probe(&File::open(p).unwrap())
    }

    #[test]
    fn labels_of_filesystems_made_by_the_real_tools_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (Mkfs::Ext4, "ROOTFS", FsKind::Ext),
            (Mkfs::Ext2, "old", FsKind::Ext),
            (Mkfs::Fat32, "BACKUPS", FsKind::Vfat),
            (Mkfs::Fat16, "SMALL", FsKind::Vfat),
            (Mkfs::Fat12, "TINY", FsKind::Vfat),
            (Mkfs::Exfat, "USBSTICK", FsKind::Exfat),
        ];
        for (kind, label, want) in cases {
            let p = dir.path().join(format!("{label}.img"));
            let size = if kind == Mkfs::Fat32 {
                64 << 20
            } else {
                16 << 20
            };
            mkfs(kind, &p, size, label, &[]).unwrap();
            assert_eq!(
                probe_path(&p),
                Some(Probe {
                    kind: want,
                    label: label.to_string()
                }),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn iso9660_volume_id_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("hello.txt"), "hi").unwrap();
        let iso = dir.path().join("x.iso");
        run(
            "genisoimage",
            &[
                "-quiet",
                "-V",
                "LIFEBOAT",
                "-o",
                iso.to_str().unwrap(),
                src.to_str().unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(
            probe_path(&iso),
            Some(Probe {
                kind: FsKind::Iso9660,
                label: "LIFEBOAT".into()
            })
        );
    }

    #[test]
    fn unlabelled_and_unknown_contents_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nolabel.img");
        mkfs(Mkfs::Fat32, &p, 64 << 20, "NO NAME", &[]).unwrap();
        assert_eq!(
            probe_path(&p),
            Some(Probe {
                kind: FsKind::Vfat,
                label: String::new()
            })
        );
        let z = dir.path().join("zero.img");
        std::fs::write(&z, vec![0u8; 1 << 20]).unwrap();
        assert_eq!(probe_path(&z), None);
        let short = dir.path().join("short.img");
        std::fs::write(&short, b"EXFAT").unwrap();
        assert_eq!(probe_path(&short), None);
    }

    #[test]
    fn damaged_superblocks_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.img");
        mkfs(Mkfs::Exfat, &p, 16 << 20, "X", &[]).unwrap();
        let orig = std::fs::read(&p).unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut img = orig[..1 << 20].to_vec();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state as usize) % 512;
                img[i] = (state >> 32) as u8;
            }
            std::fs::write(&p, &img).unwrap();
            let _ = probe_path(&p);
        }
    }
}
