//! Integration tests of the image format: round trips through split volumes, damage of every
//! kind (flipped bytes, truncation, missing and foreign volumes, newer versions), interrupted
//! writers, and the parallel compression pipeline. Stream content comes from file systems made
//! by the real tools (mkfs.ext4 -d, mkfs.vfat + mcopy).

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use disk::{BlockIo, MemDisk};
use image::{
    compress_chunk, volume_path, Bitmap, ChunkJob, Error, ImageReader, ImageWriter, Manifest,
    ParallelCompressor, PartitionEntry, PartitionMode, SourceDisk, StreamKind, StreamSpec,
    TableInfo, WriterOptions,
};
use qemu_tests::fixture::{mkfs, run, Mkfs};

/// A tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An ext4 file system made by mkfs.ext4 -d from a directory of mixed files (text, pseudo-random
/// bytes, a copy of a real binary), read back as bytes.
fn ext4_bytes(dir: &Path, size: u64) -> Vec<u8> {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("docs")).unwrap();
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog\n"
        ));
    }
    std::fs::write(src.join("docs/notes.txt"), &text).unwrap();
    let mut rng = Rng(0x1234_5678);
    let noise: Vec<u8> = (0..300_000).map(|_| rng.next() as u8).collect();
    std::fs::write(src.join("noise.bin"), &noise).unwrap();
    std::fs::copy("/bin/sh", src.join("sh")).unwrap();
    let img = dir.join("ext4.img");
    mkfs(
        Mkfs::Ext4,
        &img,
        size,
        "data",
        &["-d", src.to_str().unwrap()],
    )
    .unwrap();
    std::fs::read(&img).unwrap()
}

/// A FAT16 file system made by mkfs.vfat with a file copied in by mcopy.
fn vfat_bytes(dir: &Path) -> Vec<u8> {
    let img = dir.join("vfat.img");
    mkfs(Mkfs::Fat16, &img, 16 << 20, "FAT", &[]).unwrap();
    let f = dir.join("readme.txt");
    std::fs::write(&f, "hello from a FAT file system\n".repeat(500)).unwrap();
    run(
        "mcopy",
        &[
            "-i",
            img.to_str().unwrap(),
            f.to_str().unwrap(),
            "::/README.TXT",
        ],
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
            size: 64 << 20,
            logical_sector_size: 512,
            physical_sector_size: 4096,
            ..Default::default()
        },
        table: TableInfo {
            kind: "gpt".into(),
            ..Default::default()
        },
        partitions: vec![PartitionEntry {
            number: 1,
            stream: Some(1),
            start: 1 << 20,
            fs: "ext4".into(),
            mode: PartitionMode::UsedBlocks,
            ..Default::default()
        }],
        ..Default::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    streams: Vec<Vec<u8>>,
}

/// Writes every chunk of every stream (all-zero ones are skipped by compress_chunk).
fn write_image(
    dir: tempfile::TempDir,
    opts: WriterOptions,
    streams: Vec<(StreamKind, Vec<u8>)>,
) -> Fixture {
    let path = dir.path().join("x.lbi");
    let mut w = ImageWriter::create(&path, opts).unwrap();
    let cs = opts.chunk_size as usize;
    for (i, (kind, data)) in streams.iter().enumerate() {
        let id = w
            .add_stream(StreamSpec {
                kind: *kind,
                length: data.len() as u64,
                source_offset: i as u64 * (1 << 20),
                partition: if *kind == StreamKind::Partition {
                    i as u32
                } else {
                    0
                },
                bitmap: Some(Bitmap::all_used(4096, data.len() as u64).unwrap()),
            })
            .unwrap();
        for (n, chunk) in data.chunks(cs).enumerate() {
            let c = compress_chunk(id, (n * cs) as u64, chunk, opts.level).unwrap();
            w.write_chunk(c).unwrap();
        }
    }
    w.finish(&manifest()).unwrap();
    Fixture {
        _dir: dir,
        path,
        streams: streams.into_iter().map(|(_, d)| d).collect(),
    }
}

/// Where `needle` first occurs in `hay`, rounded down to 4 KiB.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    let at = hay
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("fixture content not found");
    at - at % 4096
}

/// A small image of real bytes: the start of an ext4 file system (superblock, group descriptors,
/// bitmaps, inode table), a stretch of a text file and a stretch of an incompressible file.
fn small_image() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ext4 = ext4_bytes(dir.path(), 4 << 20);
    let mut area = vec![0u8; 40_000];
    area[446..512].copy_from_slice(&ext4[1024..1090]);
    let text = find(&ext4, b"line 1000: ");
    let mut rng = Rng(0x1234_5678);
    let noise: Vec<u8> = (0..16).map(|_| rng.next() as u8).collect();
    let noise = find(&ext4, &noise);
    let mut mixed = ext4[text..text + 40_000].to_vec();
    mixed.extend_from_slice(&ext4[noise..noise + 10_000]);
    let streams = vec![
        (StreamKind::DiskArea, area),
        (StreamKind::Partition, ext4[..96 * 1024].to_vec()),
        (StreamKind::Unpartitioned, mixed),
    ];
    let opts = WriterOptions {
        chunk_size: 16 * 1024,
        split_size: None,
        level: 3,
    };
    write_image(dir, opts, streams)
}

fn read_stream(r: &Arc<ImageReader>, id: u32) -> std::io::Result<Vec<u8>> {
    let s = r.clone().stream_reader(id).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; s.len() as usize];
    s.read_at(&mut buf, 0)?;
    Ok(buf)
}

#[test]
fn round_trip_restores_every_stream_across_split_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let ext4 = ext4_bytes(dir.path(), 8 << 20);
    let vfat = vfat_bytes(dir.path());
    let mut area = vec![0u8; 1 << 20];
    area[..512].copy_from_slice(&vfat[..512]);
    let odd: Vec<u8> = ext4[..100_003].to_vec();
    let streams = vec![
        (StreamKind::DiskArea, area),
        (StreamKind::Partition, ext4),
        (StreamKind::Partition, vfat),
        (StreamKind::Unpartitioned, odd),
    ];
    let split = 80 * 1024;
    let opts = WriterOptions {
        chunk_size: 64 * 1024,
        split_size: Some(split),
        level: 3,
    };
    let fx = write_image(dir, opts, streams);
    let vols: Vec<PathBuf> = (1..)
        .map(|n| volume_path(&fx.path, n))
        .take_while(|p| p.exists())
        .collect();
    assert!(vols.len() >= 5, "only {} volumes", vols.len());
    for v in &vols {
        let len = std::fs::metadata(v).unwrap().len();
        assert!(
            len <= split,
            "{} is {len} bytes, over the split size",
            v.display()
        );
    }
    let r = Arc::new(ImageReader::open(&fx.path).unwrap());
    assert_eq!(r.volume_names().len(), vols.len());
    // No chunk record straddles two volumes.
    for e in r.index() {
        let len = std::fs::metadata(&vols[e.volume as usize - 1])
            .unwrap()
            .len();
        assert!(e.volume_offset + e.record_len() <= len, "{e:?}");
    }
    assert!(r.index().iter().any(|e| e.volume > 1) && r.index().iter().any(|e| e.volume == 1));
    assert_eq!(r.manifest(), &{
        let mut m = manifest();
        m.created = r.manifest().created.clone();
        m
    });
    assert_eq!(r.streams().len(), 4);
    for (id, data) in fx.streams.iter().enumerate() {
        assert_eq!(&read_stream(&r, id as u32).unwrap(), data, "stream {id}");
        let bm = r.bitmap(id as u32).unwrap().unwrap();
        assert_eq!(bm.used_blocks(), bm.blocks());
    }
    // Ranges that straddle chunk boundaries and end at the stream's odd end.
    let s = r.clone().stream_reader(3).unwrap();
    let mut buf = vec![0u8; 70_000];
    s.read_at(&mut buf, 30_003).unwrap();
    assert_eq!(&buf[..], &fx.streams[3][30_003..100_003]);
    assert!(s.read_at(&mut buf, 30_004).is_err());
    let report = r.verify(2);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.chunks, r.index().len() as u64);
}

#[test]
fn absent_and_all_zero_chunks_read_as_zeros_and_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.lbi");
    let cs = 4096u32;
    let mut w = ImageWriter::create(
        &path,
        WriterOptions {
            chunk_size: cs,
            split_size: None,
            level: 1,
        },
    )
    .unwrap();
    let id = w
        .add_stream(StreamSpec {
            kind: StreamKind::Whole,
            length: 10 * 4096 + 100,
            source_offset: 0,
            partition: 0,
            bitmap: None,
        })
        .unwrap();
    let empty = w
        .add_stream(StreamSpec {
            kind: StreamKind::Partition,
            length: 0,
            source_offset: 0,
            partition: 2,
            bitmap: Some(Bitmap::all_used(4096, 0).unwrap()),
        })
        .unwrap();
    let data = vec![0xabu8; 4096];
    w.write_chunk(compress_chunk(id, 2 * 4096, &data, 1).unwrap())
        .unwrap();
    w.write_chunk(compress_chunk(id, 5 * 4096, &[0u8; 4096], 1).unwrap())
        .unwrap();
    w.write_chunk(compress_chunk(id, 10 * 4096, &[7u8; 100], 1).unwrap())
        .unwrap();
    // Wrong length for the last chunk, unaligned offset, repeated chunk: refused.
    assert!(w
        .write_chunk(compress_chunk(id, 10 * 4096, &[7u8; 4096], 1).unwrap())
        .is_err());
    assert!(w
        .write_chunk(compress_chunk(id, 100, &data, 1).unwrap())
        .is_err());
    assert!(w
        .write_chunk(compress_chunk(id, 2 * 4096, &data, 1).unwrap())
        .is_err());
    w.finish(&manifest()).unwrap();
    let r = Arc::new(ImageReader::open(&path).unwrap());
    assert_eq!(r.index().len(), 2, "the all-zero chunk must not be stored");
    let all = read_stream(&r, id).unwrap();
    let mut want = vec![0u8; 10 * 4096 + 100];
    want[2 * 4096..3 * 4096].fill(0xab);
    want[10 * 4096..].fill(7);
    assert_eq!(all, want);
    assert_eq!(read_stream(&r, empty).unwrap(), Vec::<u8>::new());
    assert_eq!(r.bitmap(empty).unwrap().unwrap().blocks(), 0);
    assert!(r.verify(1).is_ok());
}

/// `n` pseudo-random bytes (incompressible).
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..n.div_ceil(8))
        .flat_map(|_| rng.next().to_le_bytes())
        .take(n)
        .collect()
}

#[test]
fn incompressible_chunks_are_stored_and_read_back_while_mixed_ones_still_compress() {
    // Raw zstd frame: 4 magic + 1 descriptor + 8 content size + 3 per block of 128 KiB.
    let raw_len = |n: usize| 13 + 3 * n.div_ceil(128 << 10) + n;
    let decode = |c: &image::CompressedChunk, n: usize| {
        zstd::bulk::decompress(c.frame.as_ref().unwrap(), n).unwrap()
    };
    for (seed, n) in [(1, 4 << 20), (2, (2 << 20) + 12_345), (3, 128 << 10 << 4)] {
        let data = random_bytes(seed, n);
        for level in [1, 3, 19] {
            let c = compress_chunk(0, 0, &data, level).unwrap();
            assert_eq!(
                c.memory_len(),
                raw_len(n),
                "{n} random bytes at level {level}"
            );
            assert_eq!(decode(&c, n), data);
            assert_eq!(c.crc_uncompressed, crc32fast::hash(&data));
        }
    }
    // Text at the start, random bytes after: compressed (not stored), and smaller.
    let mut mixed = random_bytes(4, 4 << 20);
    let text = b"Lifeboat keeps the data safe. ".repeat(1 << 15);
    mixed[..text.len()].copy_from_slice(&text[..]);
    let c = compress_chunk(0, 0, &mixed, 3).unwrap();
    assert!(
        c.memory_len() < (4 << 20) - text.len() / 2,
        "{}",
        c.memory_len()
    );
    assert_eq!(decode(&c, mixed.len()), mixed);
    // Random bytes with 13 % of repeats between two samples' places (every 598,016 bytes,
    // 8 KiB each) only: the samples find nothing and the chunk is stored whole (the price of
    // sampling); it still reads back.
    let mut gaps = random_bytes(5, 4 << 20);
    gaps[620_000..1_150_000].fill(0x55);
    let c = compress_chunk(0, 0, &gaps, 3).unwrap();
    assert_eq!(c.memory_len(), raw_len(gaps.len()));
    assert_eq!(decode(&c, gaps.len()), gaps);
    // Chunks under 1 MiB are always compressed by zstd (a raw frame would be exactly n + 13 + 3k).
    let small = random_bytes(6, 256 << 10);
    let c = compress_chunk(0, 0, &small, 3).unwrap();
    assert_ne!(c.memory_len(), raw_len(small.len()));
    assert_eq!(decode(&c, small.len()), small);
}

/// An image of random chunks (stored raw) restores byte for byte and verifies.
#[test]
fn an_image_of_incompressible_data_round_trips_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.lbi");
    let cs = 4u32 << 20;
    let data = random_bytes(7, (3 * cs as usize) + 4096);
    let mut w = ImageWriter::create(
        &path,
        WriterOptions {
            chunk_size: cs,
            split_size: None,
            level: 3,
        },
    )
    .unwrap();
    let id = w
        .add_stream(StreamSpec {
            kind: StreamKind::Whole,
            length: data.len() as u64,
            source_offset: 0,
            partition: 0,
            bitmap: None,
        })
        .unwrap();
    for (n, chunk) in data.chunks(cs as usize).enumerate() {
        w.write_chunk(compress_chunk(id, (n * cs as usize) as u64, chunk, 3).unwrap())
            .unwrap();
    }
    w.finish(&manifest()).unwrap();
    let r = Arc::new(ImageReader::open(&path).unwrap());
    assert_eq!(read_stream(&r, id).unwrap(), data);
    // (The shared test manifest names streams this image lacks: only the chunks count here.)
    let report = r.verify(2);
    assert!(report.bad.is_empty(), "{report:?}");
    assert_eq!((report.chunks, report.bytes), (4, data.len() as u64));
}

#[test]
fn reading_one_range_touches_only_its_chunk() {
    let fx = small_image();
    let r = Arc::new(ImageReader::open(&fx.path).unwrap());
    assert_eq!(r.bytes_read(), 0);
    let s = r.clone().stream_reader(1).unwrap();
    let mut buf = vec![0u8; 4096];
    s.read_at(&mut buf, 40 * 1024).unwrap();
    assert_eq!(&buf[..], &fx.streams[1][40 * 1024..44 * 1024]);
    let entry = r
        .chunks_of(1)
        .iter()
        .find(|e| e.logical_offset == 32 * 1024)
        .unwrap();
    assert_eq!(r.bytes_read(), entry.record_len());
    // A second read of the same chunk is served from the cache.
    s.read_at(&mut buf, 33 * 1024).unwrap();
    assert_eq!(r.bytes_read(), entry.record_len());
}

fn image_bytes(fx: &Fixture) -> Vec<u8> {
    std::fs::read(&fx.path).unwrap()
}

fn open_mem(bytes: Vec<u8>) -> image::Result<ImageReader> {
    ImageReader::from_volumes(vec![(
        "mem.lbi".to_string(),
        Box::new(MemDisk::from_vec(bytes, 512)),
    )])
}

#[test]
fn flipped_bytes_anywhere_are_always_reported_never_returned_as_data() {
    let fx = small_image();
    let good = image_bytes(&fx);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut chunk_errors = 0;
    for trial in 0..400 {
        let mut bytes = good.clone();
        let flips = 1 + rng.below(3);
        for _ in 0..flips {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
        if bytes == good {
            continue;
        }
        let r = match open_mem(bytes) {
            Err(e) => {
                assert!(!e.to_string().is_empty());
                continue;
            }
            Ok(r) => Arc::new(r),
        };
        let report = r.verify(2);
        assert!(
            !report.is_ok(),
            "trial {trial}: damage went unnoticed by verify"
        );
        for b in &report.bad {
            let msg = b.to_string();
            assert!(msg.contains("chunk ") && msg.contains("stream "), "{msg}");
            chunk_errors += 1;
        }
        for (id, want) in fx.streams.iter().enumerate() {
            if let Ok(got) = read_stream(&r, id as u32) {
                assert_eq!(
                    &got, want,
                    "trial {trial}: stream {id} read wrong data silently"
                );
            }
        }
    }
    assert!(
        chunk_errors > 100,
        "only {chunk_errors} chunk errors: flips missed the chunks?"
    );
}

#[test]
fn a_chunk_that_cannot_be_read_is_unreadable_not_damaged_and_stops_verify() {
    let fx = small_image();
    let bytes = image_bytes(&fx);
    let r = open_mem(bytes.clone()).unwrap();
    // A chunk of the partition stream past its first: its record's sectors fail with EIO, the
    // way a failing medium or a share whose server went away fails a read.
    let e = r.chunks_of(1)[2];
    let first = e.volume_offset / 512;
    let last = (e.volume_offset + e.record_len()).div_ceil(512);
    drop(r);
    let faulty = disk::FaultyDisk::new(MemDisk::from_vec(bytes, 512)).with_bad_sectors(first..last);
    let r = Arc::new(
        ImageReader::from_volumes(vec![("mem.lbi".to_string(), Box::new(faulty))]).unwrap(),
    );

    let n = e.logical_offset / (16 * 1024);
    let err = r.read_chunk(&e).unwrap_err();
    assert!(
        matches!(err, Error::ChunkUnreadable { chunk, stream: 1, .. } if chunk == n),
        "{err}"
    );
    assert!(err.is_unreadable() && !err.is_incomplete());
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "mem.lbi: the image could not be read: chunk {n} of stream 1 (partition"
        )),
        "{msg}"
    );
    assert!(msg.contains("Input/output error"), "{msg}");
    assert!(!msg.contains("damaged"), "{msg}");
    // Not on a network share: nothing says the share is gone.
    assert_eq!(r.share_gone(), None);

    // Verify stops with the read's error (of the first chunk in the failing sectors) instead
    // of listing damaged chunks.
    let never = AtomicBool::new(false);
    let progress = std::sync::atomic::AtomicU64::new(0);
    let v = r.verify_with(2, &never, &progress).unwrap_err();
    assert!(
        matches!(v, Error::ChunkUnreadable { chunk, stream: 1, .. } if chunk <= n),
        "{v:?}"
    );
    let report = r.verify(2);
    assert!(!report.is_ok());
    assert!(report.bad.is_empty(), "{report:?}");
    assert!(
        report.structure[0].contains("the image could not be read"),
        "{report:?}"
    );

    // Through a stream: an I/O error that carries the image's error and no OS error code (what
    // reads a stream must not take it for a bad sector of its own), and not "invalid data".
    let io = read_stream(&r, 1).unwrap_err();
    assert!(!disk::is_media_error(&io), "{io}");
    assert_ne!(io.kind(), std::io::ErrorKind::InvalidData, "{io}");
    assert!(
        matches!(Error::in_io(&io), Some(Error::ChunkUnreadable { .. })),
        "{io}"
    );
    // The other streams read.
    assert_eq!(read_stream(&r, 0).unwrap(), fx.streams[0]);
}

#[test]
fn a_damaged_chunk_is_still_damage_through_a_stream() {
    let fx = small_image();
    let mut bytes = image_bytes(&fx);
    let r = open_mem(bytes.clone()).unwrap();
    let e = r.chunks_of(1)[2];
    drop(r);
    bytes[(e.volume_offset + 48 + u64::from(e.compressed_len) / 2) as usize] ^= 0x10;
    let r = Arc::new(open_mem(bytes).unwrap());
    let err = r.read_chunk(&e).unwrap_err();
    assert!(
        matches!(err, Error::ChunkCorrupt { .. }) && !err.is_unreadable(),
        "{err}"
    );
    assert!(err.to_string().contains("is damaged"), "{err}");
    let io = read_stream(&r, 1).unwrap_err();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
    assert!(matches!(
        Error::in_io(&io),
        Some(Error::ChunkCorrupt { .. })
    ));
    let report = r.verify(2);
    assert_eq!(report.bad.len(), 1, "{report:?}");
    assert!(report.structure.is_empty(), "{report:?}");
}

#[test]
fn verify_names_every_damaged_chunk_with_its_stream_and_range() {
    let fx = small_image();
    let r = ImageReader::open(&fx.path).unwrap();
    let targets: Vec<_> = r.index().iter().step_by(2).take(3).copied().collect();
    assert_eq!(targets.len(), 3);
    drop(r);
    let mut bytes = image_bytes(&fx);
    for e in &targets {
        let at = (e.volume_offset + 48 + u64::from(e.compressed_len) / 2) as usize;
        bytes[at] ^= 0x40;
    }
    std::fs::write(&fx.path, &bytes).unwrap();
    let r = Arc::new(ImageReader::open(&fx.path).unwrap());
    let report = r.verify(3);
    assert_eq!(report.bad.len(), 3, "{report:?}");
    for (b, e) in report.bad.iter().zip(&targets) {
        assert_eq!((b.stream, b.start), (e.stream, e.logical_offset));
        assert_eq!(b.end, e.logical_offset + u64::from(e.uncompressed_len));
        assert_eq!(b.chunk, e.logical_offset / (16 * 1024));
        assert!(
            b.to_string()
                .contains(&r.streams()[e.stream as usize].name()),
            "{b}"
        );
    }
    let err = r.read_chunk(&targets[0]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("chunk {}", targets[0].logical_offset / 16384)),
        "{msg}"
    );
    assert!(msg.contains("crc32"), "{msg}");
    let s = r.clone().stream_reader(targets[0].stream).unwrap();
    let mut buf = vec![0u8; 100];
    let io_err = s.read_at(&mut buf, targets[0].logical_offset).unwrap_err();
    assert_eq!(io_err.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn truncated_image_is_reported_incomplete_at_every_cut() {
    let fx = small_image();
    let good = image_bytes(&fx);
    let mut cuts: Vec<usize> = (0..good.len()).step_by(good.len() / 97 + 1).collect();
    cuts.extend([
        0,
        1,
        8,
        63,
        64,
        65,
        200,
        good.len() - 129,
        good.len() - 128,
        good.len() - 1,
    ]);
    for cut in cuts {
        let err = open_mem(good[..cut].to_vec()).unwrap_err();
        let msg = err.to_string();
        assert!(err.is_incomplete(), "cut at {cut}: {msg}");
        assert!(
            msg.contains("incomplete") || msg.contains("truncated"),
            "cut at {cut}: {msg}"
        );
    }
    std::fs::write(&fx.path, &good[..good.len() / 2]).unwrap();
    let msg = ImageReader::open(&fx.path).unwrap_err().to_string();
    assert!(
        msg.contains("incomplete image: backup was interrupted"),
        "{msg}"
    );
    assert!(msg.contains("x.lbi"), "{msg}");
}

#[test]
fn foreign_files_are_not_lifeboat_images() {
    let dir = tempfile::tempdir().unwrap();
    let vfat = dir.path().join("v.img");
    mkfs(Mkfs::Fat32, &vfat, 40 << 20, "NOTIMG", &[]).unwrap();
    let msg = ImageReader::open(&vfat).unwrap_err().to_string();
    assert_eq!(msg, format!("{}: not a Lifeboat image", vfat.display()));
    let mut bytes = image_bytes(&small_image());
    bytes[0] = b'X';
    assert!(matches!(open_mem(bytes), Err(Error::NotAnImage { .. })));
}

fn set_major(bytes: &mut [u8], at: usize, crc_at: usize, major: u16) {
    bytes[at + 8..at + 10].copy_from_slice(&major.to_le_bytes());
    let c = crc32fast::hash(&bytes[at..crc_at]);
    bytes[crc_at..crc_at + 4].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn newer_major_version_is_rejected_with_a_clear_message() {
    let fx = small_image();
    let mut bytes = image_bytes(&fx);
    set_major(&mut bytes, 0, 60, 2);
    let msg = open_mem(bytes).unwrap_err().to_string();
    assert_eq!(
        msg,
        "mem.lbi: image made by a newer Lifeboat (format 2.x); this one reads 1.x"
    );
    // A newer minor version of the same major is read.
    let mut bytes = image_bytes(&fx);
    bytes[10] = 7;
    let c = crc32fast::hash(&bytes[..60]);
    bytes[60..64].copy_from_slice(&c.to_le_bytes());
    assert!(open_mem(bytes).is_ok());
    // The trailer's version is checked too.
    let mut bytes = image_bytes(&fx);
    let t = bytes.len() - 128;
    set_major(&mut bytes, t, t + 124, 3);
    assert!(matches!(
        open_mem(bytes),
        Err(Error::NewerFormat { major: 3, .. })
    ));
}

#[test]
fn missing_and_foreign_split_volumes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let ext4 = ext4_bytes(dir.path(), 4 << 20);
    let opts = WriterOptions {
        chunk_size: 16 * 1024,
        split_size: Some(64 * 1024),
        level: 3,
    };
    let fx = write_image(dir, opts, vec![(StreamKind::Whole, ext4)]);
    let n = (1..)
        .take_while(|&n| volume_path(&fx.path, n).exists())
        .count() as u32;
    assert!(n >= 4, "{n} volumes");
    let v3 = volume_path(&fx.path, 3);
    let saved = std::fs::read(&v3).unwrap();
    std::fs::remove_file(&v3).unwrap();
    let msg = ImageReader::open(&fx.path).unwrap_err().to_string();
    assert_eq!(msg, format!("missing volume {}", v3.display()));
    // The same volume from another image.
    let other = tempfile::tempdir().unwrap();
    let ofx = write_image(
        other,
        opts,
        vec![(StreamKind::Whole, fx.streams[0].clone())],
    );
    std::fs::copy(volume_path(&ofx.path, 3), &v3).unwrap();
    let err = ImageReader::open(&fx.path).unwrap_err();
    assert!(matches!(err, Error::ForeignVolume { .. }), "{err}");
    std::fs::write(&v3, &saved).unwrap();
    // Losing the last volume looks like an interrupted backup and names the missing file.
    let last = volume_path(&fx.path, n);
    std::fs::remove_file(&last).unwrap();
    let msg = ImageReader::open(&fx.path).unwrap_err().to_string();
    assert!(msg.contains("incomplete image"), "{msg}");
    assert!(msg.contains(&last.display().to_string()), "{msg}");
    // A lone volume can be checked and named on its own.
    let err = ImageReader::open(&volume_path(&fx.path, 2)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongVolume {
                found: 2,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn drop_without_finish_leaves_an_incomplete_image_and_abort_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.lbi");
    let opts = WriterOptions {
        chunk_size: 4096,
        split_size: Some(16 * 1024),
        level: 3,
    };
    let mut w = ImageWriter::create(&path, opts).unwrap();
    let id = w
        .add_stream(StreamSpec {
            kind: StreamKind::Whole,
            length: 1 << 20,
            source_offset: 0,
            partition: 0,
            bitmap: None,
        })
        .unwrap();
    let mut rng = Rng(7);
    for n in 0..10u64 {
        let data: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
        w.write_chunk(compress_chunk(id, n * 4096, &data, 3).unwrap())
            .unwrap();
    }
    let vols = w.volumes().to_vec();
    assert!(vols.len() >= 3);
    drop(w);
    let err = ImageReader::open(&path).unwrap_err();
    assert!(matches!(err, Error::Incomplete { .. }), "{err}");
    // A new image cannot be written over the remains.
    assert!(matches!(
        ImageWriter::create(&path, opts),
        Err(Error::AlreadyExists { .. })
    ));
    for v in &vols {
        std::fs::remove_file(v).unwrap();
    }
    let mut w = ImageWriter::create(&path, opts).unwrap();
    let id = w
        .add_stream(StreamSpec {
            kind: StreamKind::Whole,
            length: 1 << 20,
            source_offset: 0,
            partition: 0,
            bitmap: None,
        })
        .unwrap();
    for n in 0..10u64 {
        let data: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
        w.write_chunk(compress_chunk(id, n * 4096, &data, 3).unwrap())
            .unwrap();
    }
    let vols = w.volumes().to_vec();
    w.abort().unwrap();
    assert!(vols.iter().all(|v| !v.exists()));
}

#[test]
fn every_volume_is_private_and_a_link_at_a_volume_name_is_never_written_through() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let opts = WriterOptions {
        chunk_size: 4096,
        split_size: Some(16 * 1024),
        level: 3,
    };
    // A link at the image's own name: refused, the target untouched.
    let linked = dir.path().join("linked.lbi");
    std::os::unix::fs::symlink(&victim, &linked).unwrap();
    assert!(matches!(
        ImageWriter::create(&linked, opts),
        Err(Error::AlreadyExists { .. })
    ));
    // A link that appears at the next volume's name while the image is written: the split stops
    // with an error instead of writing through it.
    let path = dir.path().join("x.lbi");
    let mut w = ImageWriter::create(&path, opts).unwrap();
    std::os::unix::fs::symlink(&victim, volume_path(&path, 3)).unwrap();
    let id = w
        .add_stream(StreamSpec {
            kind: StreamKind::Whole,
            length: 1 << 20,
            source_offset: 0,
            partition: 0,
            bitmap: None,
        })
        .unwrap();
    let mut rng = Rng(11);
    let mut refused = None;
    for n in 0..40u64 {
        let data: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
        if let Err(e) = w.write_chunk(compress_chunk(id, n * 4096, &data, 3).unwrap()) {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("the writer wrote through the link at volume 3");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let vols = w.volumes().to_vec();
    assert_eq!(vols.len(), 2);
    for v in &vols {
        let mode = std::fs::metadata(v).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", v.display());
    }
    w.abort().unwrap();
    assert!(vols.iter().all(|v| !v.exists()));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn writer_rejects_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("o.lbi");
    let bad_chunk = WriterOptions {
        chunk_size: 3000,
        ..Default::default()
    };
    assert!(matches!(
        ImageWriter::create(&p, bad_chunk),
        Err(Error::InvalidOptions(_))
    ));
    let tiny = WriterOptions {
        split_size: Some(1 << 20),
        ..Default::default()
    };
    assert!(matches!(
        ImageWriter::create(&p, tiny),
        Err(Error::SplitTooSmall { .. })
    ));
    assert!(!p.exists());
}

fn jobs(count: usize, len: usize) -> Vec<ChunkJob> {
    let mut rng = Rng(99);
    (0..count)
        .map(|i| {
            let data: Vec<u8> = match i % 3 {
                0 => (0..len).map(|_| rng.next() as u8).collect(),
                1 => vec![i as u8; len],
                _ => vec![0; len],
            };
            ChunkJob {
                stream: 0,
                offset: (i * len) as u64,
                data,
            }
        })
        .collect()
}

#[test]
fn parallel_compressor_keeps_order_and_bounds_memory() {
    let input = jobs(120, 64 * 1024);
    let pc = ParallelCompressor::new(3, 3);
    assert_eq!(pc.max_in_flight(), 8);
    let alive = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let mut it = input.clone().into_iter();
    let got = Mutex::new(Vec::new());
    let cancel = AtomicBool::new(false);
    let stats = pc
        .run::<Error, _, _>(
            &cancel,
            || {
                let n = alive.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                let j = it.next();
                if j.is_none() {
                    alive.fetch_sub(1, Ordering::SeqCst);
                }
                Ok(j)
            },
            |c| {
                // Slow writer: the reader must wait instead of piling up chunks.
                std::thread::sleep(std::time::Duration::from_millis(2));
                alive.fetch_sub(1, Ordering::SeqCst);
                got.lock().unwrap().push(c);
                Ok(())
            },
        )
        .unwrap();
    let got = got.into_inner().unwrap();
    assert_eq!(got.len(), input.len());
    for (c, j) in got.iter().zip(&input) {
        assert_eq!(c.logical_offset, j.offset);
        match &c.frame {
            Some(f) => assert_eq!(zstd::bulk::decompress(f, j.data.len()).unwrap(), j.data),
            None => assert!(j.data.iter().all(|&b| b == 0)),
        }
    }
    assert!(
        peak.load(Ordering::SeqCst) <= pc.max_in_flight(),
        "peak {peak:?}"
    );
    assert!(stats.peak_in_flight <= pc.max_in_flight());
    assert_eq!(stats.chunks, 120);
    assert_eq!(stats.bytes_in, 120 * 64 * 1024);
}

#[derive(Debug)]
enum TestErr {
    Image(Error),
    Source(usize),
    Sink(u64),
}

impl From<Error> for TestErr {
    fn from(e: Error) -> Self {
        TestErr::Image(e)
    }
}

#[test]
fn parallel_compressor_propagates_errors_and_stops_on_cancel() {
    let pc = ParallelCompressor::new(2, 1);
    let cancel = AtomicBool::new(false);
    let mut n = 0;
    let r = pc.run(
        &cancel,
        || {
            n += 1;
            if n == 30 {
                return Err(TestErr::Source(n));
            }
            Ok(Some(ChunkJob {
                stream: 0,
                offset: n as u64,
                data: vec![1; 4096],
            }))
        },
        |_| Ok(()),
    );
    assert!(matches!(r, Err(TestErr::Source(30))), "{r:?}");

    let mut n = 0u64;
    let r = pc.run(
        &cancel,
        || {
            n += 1;
            Ok((n < 1000).then(|| ChunkJob {
                stream: 0,
                offset: n,
                data: vec![2; 4096],
            }))
        },
        |c| {
            if c.logical_offset == 17 {
                Err(TestErr::Sink(17))
            } else {
                Ok(())
            }
        },
    );
    assert!(matches!(r, Err(TestErr::Sink(17))), "{r:?}");

    let mut n = 0u64;
    let cancel = AtomicBool::new(false);
    let r = pc.run(
        &cancel,
        || {
            n += 1;
            if n == 50 {
                cancel.store(true, Ordering::SeqCst);
            }
            Ok(Some(ChunkJob {
                stream: 0,
                offset: n,
                data: vec![3; 4096],
            }))
        },
        |_| Ok(()),
    );
    assert!(matches!(r, Err(TestErr::Image(Error::Cancelled))), "{r:?}");
    assert!(n < 60, "the source was called {n} times after cancelling");
}

#[test]
fn parallel_pipeline_feeds_the_writer_into_a_valid_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lbi");
    let opts = WriterOptions {
        chunk_size: 64 * 1024,
        split_size: None,
        level: 3,
    };
    let w = Mutex::new(ImageWriter::create(&path, opts).unwrap());
    let input = jobs(40, 64 * 1024);
    let id = w
        .lock()
        .unwrap()
        .add_stream(StreamSpec {
            kind: StreamKind::Whole,
            length: 40 * 64 * 1024,
            source_offset: 0,
            partition: 0,
            bitmap: None,
        })
        .unwrap();
    let mut it = input.clone().into_iter();
    let cancel = AtomicBool::new(false);
    ParallelCompressor::new(2, 3)
        .run::<Error, _, _>(
            &cancel,
            || Ok(it.next()),
            |c| w.lock().unwrap().write_chunk(c),
        )
        .unwrap();
    w.into_inner().unwrap().finish(&manifest()).unwrap();
    let r = Arc::new(ImageReader::open(&path).unwrap());
    let want: Vec<u8> = input.into_iter().flat_map(|j| j.data).collect();
    assert_eq!(read_stream(&r, id).unwrap(), want);
}

/// The same entry point as the `open_and_read` fuzz target: open from in-memory volumes, verify,
/// read every stream. Thousands of seeded mutations of a real image must never panic, and any
/// data returned without error must be the original.
fn open_and_read(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let r = Arc::new(open_mem(bytes.to_vec()).ok()?);
    let _ = r.verify(1);
    let mut out = Vec::new();
    for s in r.streams() {
        out.push(read_stream(&r, s.id).ok()?);
    }
    Some(out)
}

#[test]
fn seeded_mutations_of_a_real_image_never_panic_or_return_wrong_data() {
    let fx = small_image();
    let good = image_bytes(&fx);
    assert_eq!(open_and_read(&good).unwrap(), fx.streams);
    // `IMAGE_FUZZ_SEED_DIR=crates/image/fuzz/corpus/open_and_read` refreshes the fuzz seed.
    if let Some(dir) = std::env::var_os("IMAGE_FUZZ_SEED_DIR") {
        std::fs::write(Path::new(&dir).join("small-valid.lbi"), &good).unwrap();
    }
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..3000 {
        let mut b = good.clone();
        match rng.below(5) {
            0 => {
                let at = rng.below(b.len() as u64) as usize;
                b[at] = rng.next() as u8;
            }
            1 => {
                // An extreme value in a 4- or 8-byte field, near the end (metadata) or anywhere.
                let at = if rng.below(2) == 0 {
                    b.len() - 8 - rng.below(600) as usize
                } else {
                    rng.below(b.len() as u64 - 8) as usize
                };
                let v: u64 = [0, u64::MAX, u64::from(u32::MAX), 1 << 40][rng.below(4) as usize];
                let w = if rng.below(2) == 0 { 4 } else { 8 };
                b[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
            2 => {
                let cut = rng.below(b.len() as u64) as usize;
                b.truncate(cut);
            }
            3 => {
                let at = rng.below(b.len() as u64) as usize;
                let n = 1 + rng.below(64) as usize;
                b.splice(at..at, std::iter::repeat_n(0u8, n));
            }
            _ => {
                let at = rng.below(b.len() as u64) as usize;
                let n = (1 + rng.below(300) as usize).min(b.len() - at);
                b.drain(at..at + n);
            }
        }
        if let Some(streams) = open_and_read(&b) {
            assert_eq!(
                streams, fx.streams,
                "a damaged image read back different data"
            );
        }
    }
}
