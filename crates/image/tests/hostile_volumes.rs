//! Hostile volume files: a sparse volume whose trailer claims a terabyte-sized index, and a FIFO
//! or a symlink named like the next volume of a split image.
#![allow(clippy::unwrap_used)]

use std::io;
use std::path::Path;

use disk::BlockIo;
use image::ImageReader;

/// A real image made by `lifeboat backup` (a GPT disk with ext4 and FAT), from the fuzz seeds.
fn real_image() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/open_and_read/gpt-ext4-vfat-small-lbi"),
    )
    .unwrap()
}

/// A volume of `len` bytes, as a sparse file would be: `head` at the start, `tail` at the end,
/// zeros between.
#[derive(Debug)]
struct SparseVolume {
    head: Vec<u8>,
    tail: Vec<u8>,
    len: u64,
}

impl BlockIo for SparseVolume {
    fn len(&self) -> u64 {
        self.len
    }
    fn logical_sector_size(&self) -> u32 {
        512
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let tail_at = self.len - self.tail.len() as u64;
        for (i, b) in buf.iter_mut().enumerate() {
            let at = offset + i as u64;
            *b = if at < self.head.len() as u64 {
                self.head[at as usize]
            } else if at >= tail_at {
                self.tail[(at - tail_at) as usize]
            } else {
                0
            };
        }
        Ok(())
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::other("read-only"))
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "sparse.lbi".to_string()
    }
}

/// The trailer of a 9 TiB sparse volume says the index is 5 TiB long: the reader must refuse it
/// before allocating (it used to size the buffer from the volume's length alone).
#[test]
fn index_claiming_terabytes_in_a_sparse_volume_is_refused_without_allocating() {
    let bytes = real_image();
    let (head, trailer) = bytes.split_at(bytes.len() - 128);
    let mut trailer = trailer.to_vec();
    let index_len: u64 = (5u64 << 40) / 40 * 40;
    trailer[48..56].copy_from_slice(&(index_len / 40).to_le_bytes());
    trailer[80..88].copy_from_slice(&index_len.to_le_bytes());
    let crc = crc32fast::hash(&trailer[..124]);
    trailer[124..128].copy_from_slice(&crc.to_le_bytes());
    let vol = SparseVolume {
        head: head.to_vec(),
        tail: trailer,
        len: 9 << 40,
    };
    let Err(err) = ImageReader::from_volumes(vec![("sparse.lbi".to_string(), Box::new(vol))])
    else {
        panic!("a 5 TiB index was accepted");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("index") && msg.contains("a section may hold"),
        "{msg}"
    );
}

/// A FIFO named like volume 2: opening must not block (a FIFO without a writer blocks a plain
/// open forever) and must name it.
#[test]
fn fifo_named_like_a_volume_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("x.lbi");
    std::fs::write(&first, real_image()).unwrap();
    let fifo = dir.path().join("x.lbi.002");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let path = first.clone();
    std::thread::spawn(move || {
        let _ = tx.send(
            ImageReader::open(&path)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        );
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("opening the image blocked on the FIFO");
    let msg = got.expect_err("a FIFO was accepted as a volume");
    assert!(msg.contains("x.lbi.002") && msg.contains("FIFO"), "{msg}");
}

/// A symlink named like volume 2 is not followed (the image's name alone picked it).
#[test]
fn symlink_named_like_a_volume_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("x.lbi");
    std::fs::write(&first, real_image()).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("x.lbi.002")).unwrap();
    let Err(err) = ImageReader::open(&first) else {
        panic!("a symlink was accepted as a volume");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("x.lbi.002") && msg.contains("symlink"),
        "{msg}"
    );
}

/// The volume the user names may be a symlink to an image.
#[test]
fn first_volume_may_be_a_symlink_to_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.lbi");
    std::fs::write(&real, real_image()).unwrap();
    let link = dir.path().join("link.lbi");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(ImageReader::open(&link).is_ok());
}
