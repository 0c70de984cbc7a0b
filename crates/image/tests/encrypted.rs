//! Encrypted images (format 1.1) at the format level: round trips through split and unsplit
//! images, passwords (missing, wrong, changed, added), nothing readable without the key, and
//! tampering of every kind (flipped bytes anywhere, swapped chunk records, a chunk spliced in from
//! another image with the same password, crafted key-derivation parameters). Stream content is an
//! ext4 file system made by mkfs.ext4 -d.

#![allow(clippy::unwrap_used)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use disk::{BlockIo, MemDisk};
use image::{
    change_password, compress_chunk, volume_path, Bitmap, Error, ImageReader, ImageWriter,
    KdfParams, Manifest, PartitionEntry, Passphrase, SlotChange, SourceDisk, StreamKind,
    StreamSpec, WriterOptions,
};
use qemu_tests::fixture::{mkfs, Mkfs};

const FAST: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};
const MARKER: &[u8] = b"MARKER-5f3a9c1e7d2b4086-SECRET";
const LABEL: &str = "LABELQX7Z";
const SERIAL: &str = "SERIALW9K2P4";

fn pass(s: &str) -> Passphrase {
    Passphrase::new(s.as_bytes().to_vec())
}

/// An ext4 file system holding a file with the marker, made by mkfs.ext4 -d.
fn ext4_with_marker(dir: &Path) -> Vec<u8> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut text = Vec::new();
    for i in 0..3000 {
        text.extend_from_slice(format!("line {i} ").as_bytes());
        text.extend_from_slice(MARKER);
        text.push(b'\n');
    }
    std::fs::write(src.join("secret.txt"), &text).unwrap();
    std::fs::copy("/bin/sh", src.join("sh")).unwrap();
    let img = dir.join("ext4.img");
    mkfs(
        Mkfs::Ext4,
        &img,
        4 << 20,
        LABEL,
        &["-d", src.to_str().unwrap()],
    )
    .unwrap();
    std::fs::read(&img).unwrap()
}

fn manifest() -> Manifest {
    Manifest {
        tool_version: "lifeboat test".into(),
        created: image::rfc3339_utc(std::time::SystemTime::now()),
        source: SourceDisk {
            path: "disk.img".into(),
            serial: SERIAL.into(),
            size: 8 << 20,
            logical_sector_size: 512,
            physical_sector_size: 512,
            ..Default::default()
        },
        partitions: vec![PartitionEntry {
            number: 1,
            stream: Some(0),
            label: LABEL.into(),
            fs: "ext4".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    data: Vec<u8>,
    opts: WriterOptions,
}

fn write_encrypted(
    dir: tempfile::TempDir,
    name: &str,
    data: &[u8],
    split: Option<u64>,
    pw: &Passphrase,
) -> Fixture {
    let path = dir.path().join(name);
    let opts = WriterOptions {
        chunk_size: 16 << 10,
        split_size: split,
        level: 3,
    };
    let mut w = ImageWriter::create_encrypted(&path, opts, pw, FAST).unwrap();
    let id = w
        .add_stream(StreamSpec {
            kind: StreamKind::Partition,
            length: data.len() as u64,
            source_offset: 1 << 20,
            partition: 1,
            bitmap: Some(Bitmap::all_used(4096, data.len() as u64).unwrap()),
        })
        .unwrap();
    let cs = opts.chunk_size as usize;
    for (n, chunk) in data.chunks(cs).enumerate() {
        w.write_chunk(compress_chunk(id, (n * cs) as u64, chunk, 3).unwrap())
            .unwrap();
    }
    w.finish(&manifest()).unwrap();
    Fixture {
        _dir: dir,
        path,
        data: data.to_vec(),
        opts,
    }
}

fn fixture(split: Option<u64>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = ext4_with_marker(dir.path());
    write_encrypted(dir, "x.lbi", &data, split, &pass("hunter2 is long enough"))
}

fn volumes(path: &Path) -> Vec<PathBuf> {
    (1..)
        .map(|n| volume_path(path, n))
        .take_while(|p| p.exists())
        .collect()
}

fn read_stream(r: ImageReader) -> Vec<u8> {
    let r = Arc::new(r);
    let s = r.clone().stream_reader(0).unwrap();
    let mut buf = vec![0u8; s.len() as usize];
    s.read_at(&mut buf, 0).unwrap();
    buf
}

#[test]
fn encrypted_split_and_unsplit_images_round_trip_with_the_password() {
    for split in [None, Some(40 << 10)] {
        let fx = fixture(split);
        let vols = volumes(&fx.path);
        assert_eq!(vols.len() > 1, split.is_some(), "{vols:?}");
        assert!(image::is_encrypted(&fx.path).unwrap());
        let r = ImageReader::open_with(&fx.path, Some(&pass("hunter2 is long enough"))).unwrap();
        assert!(r.encrypted());
        assert_eq!(r.format_version(), (1, 1));
        assert_eq!(r.manifest().source.serial, SERIAL);
        assert_eq!(r.manifest().partitions[0].label, LABEL);
        let report = r.verify(2);
        assert!(report.is_ok(), "{report:?}");
        assert!(r.bitmap(0).unwrap().is_some());
        assert_eq!(read_stream(r), fx.data);
        let _ = fx.opts;
    }
}

#[test]
fn no_plaintext_marker_label_or_serial_occurs_in_the_image_bytes() {
    let fx = fixture(Some(40 << 10));
    assert!(fx.data.windows(MARKER.len()).any(|w| w == MARKER));
    for v in volumes(&fx.path) {
        let bytes = std::fs::read(&v).unwrap();
        for needle in [
            MARKER,
            LABEL.as_bytes(),
            SERIAL.as_bytes(),
            b"ext4",
            b"secret.txt",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} leaks {:?}",
                v.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn without_the_password_the_image_is_refused_naming_it() {
    let fx = fixture(None);
    let err = ImageReader::open(&fx.path).unwrap_err();
    assert!(matches!(err, Error::PasswordRequired { .. }), "{err}");
    assert!(
        err.to_string().contains("x.lbi: the image is encrypted"),
        "{err}"
    );
}

/// A volume that records which byte ranges were read.
struct Recording {
    inner: MemDisk,
    reads: Arc<Mutex<Vec<(u64, usize)>>>,
}

impl BlockIo for Recording {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn logical_sector_size(&self) -> u32 {
        512
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.lock().unwrap().push((offset, buf.len()));
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "recording".into()
    }
}

#[test]
fn a_wrong_password_gets_one_clear_message_and_nothing_past_the_key_block_is_read() {
    let fx = fixture(None);
    let bytes = std::fs::read(&fx.path).unwrap();
    let reads = Arc::new(Mutex::new(Vec::new()));
    let vol = Recording {
        inner: MemDisk::from_vec(bytes, 512),
        reads: reads.clone(),
    };
    let err = ImageReader::from_volumes_with(
        vec![("x.lbi".into(), Box::new(vol))],
        Some(&pass("hunter3 is long enough")),
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "x.lbi: wrong password (no key slot of this encrypted image opens with it)"
    );
    for (off, len) in reads.lock().unwrap().iter() {
        assert!(off + *len as u64 <= 64 + 1024, "read {len} bytes at {off}");
    }
}

#[test]
fn passwd_replaces_or_adds_a_password_without_touching_the_chunks() {
    let fx = fixture(None);
    let before = std::fs::read(&fx.path).unwrap();
    let old = pass("hunter2 is long enough");
    let new = pass("a new passphrase");
    let err =
        change_password(&fx.path, &pass("nope"), &new, SlotChange::Replace, FAST).unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
    let c = change_password(&fx.path, &old, &new, SlotChange::Replace, FAST).unwrap();
    assert_eq!((c.old_slot, c.new_slot, c.slots_used), (0, 1, 1));
    let after = std::fs::read(&fx.path).unwrap();
    assert_eq!(before.len(), after.len());
    assert_eq!(before[..64], after[..64]);
    assert_eq!(
        before[64 + 1024..],
        after[64 + 1024..],
        "only the key block changes"
    );
    let err = ImageReader::open_with(&fx.path, Some(&pass("hunter2 is long enough"))).unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
    assert_eq!(
        read_stream(ImageReader::open_with(&fx.path, Some(&new)).unwrap()),
        fx.data
    );
    // A recovery password next to the new one: both open the image.
    let recovery = pass("recovery key 0123456789");
    let c = change_password(&fx.path, &new, &recovery, SlotChange::Add, FAST).unwrap();
    assert_eq!(c.slots_used, 2);
    assert!(ImageReader::open_with(&fx.path, Some(&new)).is_ok());
    assert_eq!(
        read_stream(ImageReader::open_with(&fx.path, Some(&recovery)).unwrap()),
        fx.data
    );
}

/// Opens (with the password) and verifies; Err(message) when anything is found wrong.
fn check(vols: &[(String, Vec<u8>)], pw: &Passphrase) -> Result<(), String> {
    let boxed: Vec<(String, Box<dyn BlockIo>)> = vols
        .iter()
        .map(|(n, b)| {
            (
                n.clone(),
                Box::new(MemDisk::from_vec(b.clone(), 512)) as Box<dyn BlockIo>,
            )
        })
        .collect();
    let r = ImageReader::from_volumes_with(boxed, Some(pw)).map_err(|e| e.to_string())?;
    let report = r.verify(2);
    if !report.is_ok() {
        let mut msgs: Vec<String> = report.bad.iter().map(|b| b.to_string()).collect();
        msgs.extend(report.structure.iter().cloned());
        return Err(msgs.join("; "));
    }
    Ok(())
}

fn load(path: &Path) -> Vec<(String, Vec<u8>)> {
    volumes(path)
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn flipping_any_sampled_byte_of_any_volume_is_detected() {
    let fx = fixture(Some(40 << 10));
    let pw = pass("hunter2 is long enough");
    let vols = load(&fx.path);
    check(&vols, &pw).unwrap();
    let mut tried = 0;
    for (v, (_, bytes)) in vols.iter().enumerate() {
        let len = bytes.len();
        // Every byte of the volume header and key block, then a stride across chunks, metadata
        // and the trailer (every byte of the last 256).
        let mut positions: Vec<usize> = (0..len.min(64 + 1024)).collect();
        positions.extend((64 + 1024..len).step_by(97));
        positions.extend(len.saturating_sub(256)..len);
        for at in positions {
            let mut copy = vols.clone();
            copy[v].1[at] ^= 0x10;
            assert!(
                check(&copy, &pw).is_err(),
                "flipping byte {at} of volume {} went unnoticed",
                v + 1
            );
            tried += 1;
        }
    }
    assert!(tried > 1000, "{tried}");
}

/// The records (offset, length) of the stored chunks of the first volume: the chunk header
/// magic `LBCK` followed by a stream id 0 and a chunk-aligned offset.
fn records(bytes: &[u8], chunk: u64) -> Vec<(usize, usize, u64)> {
    let mut out = Vec::new();
    let mut at = 64 + 1024;
    while at + 48 <= bytes.len() && &bytes[at..at + 4] == b"LBCK" {
        let off = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        let clen = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
        assert_eq!(off % chunk, 0);
        out.push((at, 48 + clen, off));
        at += 48 + clen;
    }
    out
}

#[test]
fn swapping_two_chunk_records_of_equal_length_is_detected_and_named() {
    // Incompressible chunks: every record has the same length.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..(128 << 10))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let fx = write_encrypted(
        tempfile::tempdir().unwrap(),
        "x.lbi",
        &data,
        None,
        &pass("hunter2 is long enough"),
    );
    let pw = pass("hunter2 is long enough");
    let mut vols = load(&fx.path);
    let recs = records(&vols[0].1, 16 << 10);
    let (a, b) = recs
        .iter()
        .enumerate()
        .find_map(|(i, a)| recs[i + 1..].iter().find(|b| b.1 == a.1).map(|b| (*a, *b)))
        .expect("two records of equal length");
    let bytes = &mut vols[0].1;
    let ra = bytes[a.0..a.0 + a.1].to_vec();
    let rb = bytes[b.0..b.0 + b.1].to_vec();
    bytes[a.0..a.0 + a.1].copy_from_slice(&rb);
    bytes[b.0..b.0 + b.1].copy_from_slice(&ra);
    let err = check(&vols, &pw).unwrap_err();
    for off in [a.2, b.2] {
        let chunk = off / (16 << 10);
        assert!(
            err.contains(&format!(
                "chunk {chunk} of stream 0 (partition 1), bytes {off}.."
            )),
            "{err}"
        );
    }
    // Swapping the headers back but not the sealed bytes: the tag catches it.
    let bytes = &mut vols[0].1;
    let ha = rb[..48].to_vec();
    let hb = ra[..48].to_vec();
    bytes[a.0..a.0 + 48].copy_from_slice(&hb);
    bytes[b.0..b.0 + 48].copy_from_slice(&ha);
    let err = check(&vols, &pw).unwrap_err();
    assert!(
        err.contains("crc32") || err.contains("authentication"),
        "{err}"
    );
}

#[test]
fn a_chunk_spliced_from_another_image_with_the_same_password_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = ext4_with_marker(dir.path());
    let pw = pass("hunter2 is long enough");
    let one = write_encrypted(tempfile::tempdir().unwrap(), "one.lbi", &data, None, &pw);
    let two = write_encrypted(tempfile::tempdir().unwrap(), "two.lbi", &data, None, &pw);
    let mut a = load(&one.path);
    let b = load(&two.path);
    // Same content, same password: the same chunk has the same length in both images, but a
    // different data key and UUID seal it.
    let ra = records(&a[0].1, 16 << 10);
    let rb = records(&b[0].1, 16 << 10);
    let (x, y) = ra
        .iter()
        .find_map(|x| {
            rb.iter()
                .find(|y| y.1 == x.1 && y.2 == x.2)
                .map(|y| (*x, *y))
        })
        .expect("a chunk stored at the same offset with the same length");
    let spliced = b[0].1[y.0..y.0 + y.1].to_vec();
    a[0].1[x.0..x.0 + x.1].copy_from_slice(&spliced);
    let err = check(&a, &pw).unwrap_err();
    let chunk = x.2 / (16 << 10);
    assert!(
        err.contains(&format!("chunk {chunk} of stream 0 (partition 1)"))
            && err.contains("does not match the index"),
        "{err}"
    );
    // The sealed bytes alone, under the original header: their crc32 (kept in the sealed
    // index, out of an attacker's reach) no longer matches; the tag is the second line.
    let mut a = load(&one.path);
    a[0].1[x.0 + 48..x.0 + x.1].copy_from_slice(&spliced[48..]);
    let err = check(&a, &pw).unwrap_err();
    assert!(
        err.contains(&format!("chunk {chunk} of stream 0 (partition 1)"))
            && err.contains("sealed bytes fail their crc32"),
        "{err}"
    );
}

#[test]
fn crafted_key_derivation_parameters_are_refused_before_deriving() {
    let fx = fixture(None);
    let mut bytes = std::fs::read(&fx.path).unwrap();
    // Slot 0 starts at 64 + 32; its memory (KiB) is at +4: ask for 4 TiB.
    let at = 64 + 32 + 4;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = ImageReader::from_volumes_with(
        vec![("x.lbi".into(), Box::new(MemDisk::from_vec(bytes, 512)))],
        Some(&pass("hunter2 is long enough")),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("damaged key block") && msg.contains("argon2id memory"),
        "{msg}"
    );
}

#[test]
fn an_interrupted_encrypted_backup_reads_as_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.lbi");
    let opts = WriterOptions {
        chunk_size: 16 << 10,
        split_size: None,
        level: 3,
    };
    let pw = pass("pw pw pw pw");
    let mut w = ImageWriter::create_encrypted(&path, opts, &pw, FAST).unwrap();
    let id = w
        .add_stream(StreamSpec {
            kind: StreamKind::Whole,
            length: 1 << 16,
            source_offset: 0,
            partition: 0,
            bitmap: None,
        })
        .unwrap();
    w.write_chunk(compress_chunk(id, 0, &vec![7u8; 16 << 10], 3).unwrap())
        .unwrap();
    drop(w);
    let err = ImageReader::open_with(&path, Some(&pw)).unwrap_err();
    assert!(err.is_incomplete(), "{err}");
}
