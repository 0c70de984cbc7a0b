//! Cast streams (FORMAT.md, "Cast streams"): an image sent as one sequential stream and opened
//! on the receiving side from it, plain and encrypted, split and unsplit; truncated, damaged
//! and foreign streams refused; a damaged chunk in the image stops the sender, and the receiver
//! says why. Partition content is an ext4 file system made by mkfs.ext4 -d.

#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::cast::{receive, send, send_order, CastReceiver};
use image::{
    compress_chunk, volume_path, Bitmap, Error, ImageReader, ImageWriter, KdfParams, Manifest,
    PartitionEntry, Passphrase, SourceDisk, StreamKind, StreamSpec, WriterOptions,
};
use qemu_tests::fixture::{mkfs, Mkfs};

const FAST: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn pass() -> Passphrase {
    Passphrase::new(b"correct horse battery".to_vec())
}

/// A 1 MiB disk area with a marker and an ext4 file system with files (mkfs.ext4 -d).
fn contents(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        let text: String = (0..400).map(|j| format!("file {i} line {j}\n")).collect();
        std::fs::write(src.join(format!("f{i}.txt")), text).unwrap();
    }
    std::fs::copy("/bin/sh", src.join("sh")).unwrap();
    let img = dir.join("ext4.img");
    mkfs(
        Mkfs::Ext4,
        &img,
        4 << 20,
        "CAST",
        &["-d", src.to_str().unwrap()],
    )
    .unwrap();
    let mut area = vec![0u8; 1 << 20];
    area[..16].copy_from_slice(b"AREA-MARKER-0001");
    (area, std::fs::read(&img).unwrap())
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    area: Vec<u8>,
    part: Vec<u8>,
}

fn fixture(split: Option<u64>, encrypted: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (area, part) = contents(dir.path());
    let path = dir.path().join("disk.lbi");
    let opts = WriterOptions {
        chunk_size: 16 << 10,
        split_size: split,
        level: 3,
    };
    let mut w = if encrypted {
        ImageWriter::create_encrypted(&path, opts, &pass(), FAST).unwrap()
    } else {
        ImageWriter::create(&path, opts).unwrap()
    };
    // The partition stream first in the table, so the send order (areas first) differs from
    // the index order.
    let p = w
        .add_stream(StreamSpec {
            kind: StreamKind::Partition,
            length: part.len() as u64,
            source_offset: 1 << 20,
            partition: 1,
            bitmap: Some(Bitmap::all_used(4096, part.len() as u64).unwrap()),
        })
        .unwrap();
    let a = w
        .add_stream(StreamSpec {
            kind: StreamKind::DiskArea,
            length: area.len() as u64,
            source_offset: 0,
            partition: 0,
            bitmap: None,
        })
        .unwrap();
    let cs = opts.chunk_size as usize;
    for (n, c) in part.chunks(cs).enumerate() {
        w.write_chunk(compress_chunk(p, (n * cs) as u64, c, 3).unwrap())
            .unwrap();
    }
    for (n, c) in area.chunks(cs).enumerate() {
        if c.iter().any(|&b| b != 0) {
            w.write_chunk(compress_chunk(a, (n * cs) as u64, c, 3).unwrap())
                .unwrap();
        }
    }
    let m = Manifest {
        tool_version: "lifeboat test".into(),
        created: image::rfc3339_utc(std::time::SystemTime::now()),
        source: SourceDisk {
            path: "disk.img".into(),
            size: (1 << 20) + part.len() as u64,
            logical_sector_size: 512,
            physical_sector_size: 512,
            ..Default::default()
        },
        partitions: vec![PartitionEntry {
            number: 1,
            stream: Some(p),
            fs: "ext4".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    w.finish(&m).unwrap();
    Fixture {
        _dir: dir,
        path,
        area,
        part,
    }
}

fn open(f: &Fixture, encrypted: bool) -> ImageReader {
    if encrypted {
        ImageReader::open_with(&f.path, Some(&pass())).unwrap()
    } else {
        ImageReader::open(&f.path).unwrap()
    }
}

fn cast_bytes(r: &ImageReader) -> Vec<u8> {
    let mut out = Vec::new();
    send(r, &mut out, &|_| {}).unwrap();
    out
}

/// Receives `bytes`, reads every chunk in the send order into its stream's bytes, and reads the
/// stream to its end frame. Returns (area, partition) or the first error as text.
fn consume(bytes: Vec<u8>, pw: Option<&Passphrase>) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (r, rx): (ImageReader, CastReceiver) =
        receive(Box::new(Cursor::new(bytes)), "test-cast", pw).map_err(|e| e.to_string())?;
    let mut streams: Vec<Vec<u8>> = r
        .streams()
        .iter()
        .map(|s| vec![0u8; s.length as usize])
        .collect();
    let (order, _) = send_order(&r);
    for i in order {
        let e = r.index()[i];
        let data = r.read_chunk(&e).map_err(|e| e.to_string())?;
        let s = &mut streams[e.stream as usize];
        s[e.logical_offset as usize..e.logical_offset as usize + data.len()].copy_from_slice(&data);
    }
    rx.finish().map_err(|e| e.to_string())?;
    Ok((streams.remove(1), streams.remove(0)))
}

fn volume_count(path: &Path) -> usize {
    (1..).take_while(|&n| volume_path(path, n).exists()).count()
}

#[test]
fn split_and_unsplit_images_arrive_whole_through_a_cast_stream() {
    for split in [None, Some(48 << 10)] {
        let f = fixture(split, false);
        let (area, part) = consume(cast_bytes(&open(&f, false)), None).unwrap();
        assert_eq!(area, f.area, "split {split:?}");
        assert_eq!(part, f.part, "split {split:?}");
        if split.is_some() {
            assert!(volume_count(&f.path) >= 2, "the image is not split");
        }
    }
}

#[test]
fn an_encrypted_image_streams_sealed_and_opens_with_its_password_only() {
    let f = fixture(Some(48 << 10), true);
    let bytes = cast_bytes(&open(&f, true));
    assert!(
        !bytes.windows(16).any(|w| w == b"AREA-MARKER-0001"),
        "the stream carries plaintext"
    );
    let (area, part) = consume(bytes.clone(), Some(&pass())).unwrap();
    assert_eq!((area, part), (f.area.clone(), f.part.clone()));
    let err = receive(Box::new(Cursor::new(bytes.clone())), "test-cast", None).unwrap_err();
    assert!(matches!(err, Error::PasswordRequired { .. }), "{err}");
    let wrong = Passphrase::new(b"wrong".to_vec());
    let err = receive(Box::new(Cursor::new(bytes)), "test-cast", Some(&wrong)).unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
}

#[test]
fn a_truncated_stream_is_refused_at_every_cut() {
    let f = fixture(None, false);
    let bytes = cast_bytes(&open(&f, false));
    let step = (bytes.len() / 97).max(1);
    for cut in (0..bytes.len()).step_by(step).chain([bytes.len() - 1]) {
        let err = consume(bytes[..cut].to_vec(), None).unwrap_err();
        assert!(
            err.contains("truncated") || err.contains("ends") || err.contains("not a Lifeboat"),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn a_flipped_byte_anywhere_in_the_stream_is_detected() {
    let f = fixture(None, false);
    let bytes = cast_bytes(&open(&f, false));
    let step = (bytes.len() / 211).max(1);
    for at in (0..bytes.len()).step_by(step) {
        let mut b = bytes.clone();
        b[at] ^= 0x40;
        let got = consume(b, None);
        assert!(
            got.is_err(),
            "flip at {at} of {} went unnoticed",
            bytes.len()
        );
    }
}

#[test]
fn an_image_file_or_other_bytes_fed_as_a_stream_are_refused_as_foreign() {
    let f = fixture(None, false);
    let lbi = std::fs::read(&f.path).unwrap();
    for foreign in [lbi, b"GET / HTTP/1.0\r\n\r\n".repeat(8), Vec::new()] {
        let err = consume(foreign, None).unwrap_err();
        assert!(err.contains("not a Lifeboat cast stream"), "{err}");
    }
    let mut newer = cast_bytes(&open(&f, false));
    newer[8] = 9;
    let c = crc32fast::hash(&newer[..60]);
    newer[60..64].copy_from_slice(&c.to_le_bytes());
    let err = consume(newer, None).unwrap_err();
    assert!(err.contains("cast stream version 9"), "{err}");
}

#[test]
fn a_damaged_chunk_stops_the_sender_and_the_receiver_says_why() {
    let f = fixture(None, false);
    let r = open(&f, false);
    let (order, kept) = send_order(&r);
    // A chunk of the partition, past the kept area chunks.
    let e = r.index()[order[kept as usize + 3]];
    drop(r);
    let mut vol = std::fs::read(&f.path).unwrap();
    vol[(e.volume_offset + 48 + 4) as usize] ^= 0xff;
    std::fs::write(&f.path, &vol).unwrap();
    let r = ImageReader::open(&f.path).unwrap();
    let mut out = Vec::new();
    let err = send(&r, &mut out, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("fail their crc32"), "{err}");
    let name = format!("chunk {} of stream 0", e.logical_offset / (16 << 10));
    assert!(err.contains(&name), "{err}");
    let got = consume(out, None).unwrap_err();
    assert!(got.contains("the sender stopped the session"), "{got}");
    assert!(got.contains(&name), "{got}");
}

#[test]
fn a_record_asked_for_after_it_passed_is_refused_not_waited_for() {
    let f = fixture(None, false);
    let bytes = cast_bytes(&open(&f, false));
    let (r, _rx) = receive(Box::new(Cursor::new(bytes)), "test-cast", None).unwrap();
    let (order, kept) = send_order(&r);
    let first = r.index()[order[kept as usize]];
    let far = r.index()[order[kept as usize + image::cast::WINDOW + 2]];
    r.read_chunk(&far).unwrap();
    let err = r.read_chunk(&first).unwrap_err().to_string();
    assert!(err.contains("has passed"), "{err}");
    // Kept (area) records can be read again.
    let area = r.index()[order[0]];
    r.read_chunk(&area).unwrap();
    r.read_chunk(&area).unwrap();
}

#[test]
fn threads_reading_out_of_order_with_declared_streams_get_every_chunk() {
    let f = fixture(None, false);
    let bytes = cast_bytes(&open(&f, false));
    let (r, rx) = receive(Box::new(Cursor::new(bytes)), "test-cast", None).unwrap();
    // Only the partition (stream 0): the area's records are kept anyway, nothing else is held.
    rx.only_streams([0]);
    let chunks: Vec<_> = r.chunks_of(0).to_vec();
    // More chunks than the window: the dawdling thread's record would have left it.
    assert!(
        chunks.len() > image::cast::WINDOW + 4,
        "{} chunks",
        chunks.len()
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let got = std::sync::Mutex::new(vec![0u8; f.part.len()]);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (r, chunks, next, got) = (&r, &chunks, &next, &got);
            s.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(e) = chunks.get(i) else { return };
                // The first thread dawdles, so the others run far ahead of it.
                if t == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(30));
                }
                let data = r.read_chunk(e).unwrap();
                let at = e.logical_offset as usize;
                got.lock().unwrap()[at..at + data.len()].copy_from_slice(&data);
            });
        }
    });
    assert_eq!(got.into_inner().unwrap(), f.part);
    rx.finish().unwrap();
}

#[test]
fn the_report_address_travels_in_the_stream_and_a_damaged_report_frame_is_refused() {
    use image::cast::{send_with, ReportTo, CAST_HEADER_LEN, REPORT_FRAME_LEN};
    let f = fixture(None, false);
    let r = open(&f, false);
    let to = ReportTo {
        addr: "10.231.7.1:41234".parse().unwrap(),
        session: *b"0123456789abcdef",
    };
    let mut bytes = Vec::new();
    send_with(&r, &mut bytes, &|_| {}, Some(&to)).unwrap();
    let (_, rx) = receive(Box::new(Cursor::new(bytes.clone())), "test-cast", None).unwrap();
    assert_eq!(rx.report_to(), Some(to));
    // Without one, receivers are told nothing.
    let (_, rx) = receive(Box::new(Cursor::new(cast_bytes(&r))), "test-cast", None).unwrap();
    assert_eq!(rx.report_to(), None);
    // IPv6 round-trips; an unspecified or multicast address or port 0 is refused.
    let v6 = ReportTo {
        addr: "[fd00::1]:9300".parse().unwrap(),
        session: [7; 16],
    };
    assert_eq!(ReportTo::from_frame(&v6.to_frame()), Ok(v6));
    for bad in ["0.0.0.0:9300", "239.1.2.3:9300", "10.0.0.1:0"] {
        let t = ReportTo {
            addr: bad.parse().unwrap(),
            session: [1; 16],
        };
        assert!(ReportTo::from_frame(&t.to_frame()).is_err(), "{bad}");
    }
    // A flipped bit in the frame (after the 64-byte header and one volume length + crc32).
    let at = CAST_HEADER_LEN + 12 + REPORT_FRAME_LEN / 2;
    bytes[at] ^= 1;
    let err = receive(Box::new(Cursor::new(bytes)), "test-cast", None).unwrap_err();
    assert!(err.to_string().contains("report frame"), "{err}");
}

#[test]
fn the_report_address_is_known_even_when_the_image_then_cannot_be_opened() {
    use image::cast::{receive_reporting, send_with, ReportTo};
    let f = fixture(None, true);
    let to = ReportTo {
        addr: "10.231.7.1:9000".parse().unwrap(),
        session: [3; 16],
    };
    let mut bytes = Vec::new();
    send_with(&open(&f, true), &mut bytes, &|_| {}, Some(&to)).unwrap();
    let (got, opened) = receive_reporting(Box::new(Cursor::new(bytes.clone())), "t", None);
    assert_eq!(got, Some(to));
    assert!(matches!(opened, Err(Error::PasswordRequired { .. })));
    // Cut inside the pieces: still known, the stream refused.
    let (got, opened) = receive_reporting(Box::new(Cursor::new(bytes[..400].to_vec())), "t", None);
    assert_eq!(got, Some(to));
    assert!(opened.is_err());
}
