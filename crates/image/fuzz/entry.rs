// The entry points of the `image` fuzz targets, shared (through `include!`) by the targets in
// `fuzz_targets/` and by `tests/fuzz_regressions.rs`, which feeds every committed crasher in
// `fuzz/regressions/<target>/` through the same function on stable.

use std::sync::Arc;

use disk::BlockIo;

/// Verifies an opened image and reads (up to 16 MiB of) every stream.
fn exercise(reader: image::ImageReader) {
    let reader = Arc::new(reader);
    let _ = reader.verify(1);
    for s in reader.streams().to_vec() {
        let _ = reader.bitmap(s.id);
        if let Ok(sr) = reader.clone().stream_reader(s.id) {
            let mut buf = vec![0u8; 65536];
            let mut off = 0;
            while off < sr.len().min(1 << 24) {
                let n = (sr.len() - off).min(buf.len() as u64) as usize;
                if sr.read_at(&mut buf[..n], off).is_err() {
                    break;
                }
                off += n as u64;
            }
        }
    }
}

/// Arbitrary bytes as a one-volume image: open, verify, read every stream.
pub fn open_and_read(data: &[u8]) {
    let vol: Box<dyn BlockIo> = Box::new(disk::MemDisk::from_vec(data.to_vec(), 512));
    if let Ok(reader) = image::ImageReader::from_volumes(vec![("fuzz.lbi".to_string(), vol)]) {
        exercise(reader);
    }
}

/// Arbitrary bytes as a split image: records of a length (u32 LE) and that many bytes, one per
/// volume (at most 8); then like [`open_and_read`].
pub fn volumes(data: &[u8]) {
    let mut vols: Vec<(String, Box<dyn BlockIo>)> = Vec::new();
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        if vols.len() == 8 {
            break;
        }
        let n = (u32::from_le_bytes(*len) as usize).min(tail.len());
        let (bytes, tail) = tail.split_at(n);
        let name = format!("fuzz.lbi.{:03}", vols.len());
        vols.push((name, Box::new(disk::MemDisk::from_vec(bytes.to_vec(), 512))));
        rest = tail;
    }
    if vols.is_empty() {
        return;
    }
    if let Ok(reader) = image::ImageReader::from_volumes(vols) {
        exercise(reader);
    }
}

/// The manifest parser: arbitrary text must parse or fail, and what parses must write back and
/// parse to the same manifest.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = image::Manifest::from_toml(&text) {
        if let Ok(back) = m.to_toml() {
            assert_eq!(image::Manifest::from_toml(&back).ok(), Some(m));
        }
    }
}

/// Used-block bitmaps: block size (u32 LE) and block count (u64 LE) from the input, the rest as
/// bits; every query with offsets from the input must stay in range.
pub fn bitmap(data: &[u8]) {
    let Some((bs, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Some((blocks, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let Some((q, bits)) = rest.split_first_chunk::<16>() else {
        return;
    };
    let Ok(map) = image::Bitmap::new(
        u32::from_le_bytes(*bs),
        u64::from_le_bytes(*blocks),
        bits.to_vec(),
    ) else {
        return;
    };
    let a = u64::from_le_bytes([q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]]);
    let b = u64::from_le_bytes([q[8], q[9], q[10], q[11], q[12], q[13], q[14], q[15]]);
    assert!(map.used_blocks() <= map.blocks());
    let n = map.next_with(a % (map.blocks() + 1), b & 1 == 0, b);
    assert!(n <= map.blocks().max(b));
    let _ = map.is_used(a);
    let _ = map.any_used(a, b);
    let mut buf = vec![0xAAu8; (b % 70_000) as usize];
    map.zero_unused(a, &mut buf);
}

/// The key block and key-slot parser of encrypted images (format 1.1): arbitrary bytes as a key
/// block must decode or fail; what decodes must encode back to the same block, and its key-
/// derivation parameters must be checked without panicking. When the input is a whole volume
/// whose key slots are cheap to derive (at most 1 MiB·pass each, so the fuzzer stays fast), it
/// is also opened with the password `fuzz` and read like [`open_and_read`].
pub fn key_block(data: &[u8]) {
    use image::crypt::{KeyBlock, KEY_BLOCK_LEN, KEY_BLOCK_OFFSET};
    let at = KEY_BLOCK_OFFSET as usize;
    // The block alone, and the block inside a volume.
    for raw in [data.get(..KEY_BLOCK_LEN), data.get(at..at + KEY_BLOCK_LEN)]
        .into_iter()
        .flatten()
    {
        if let Ok(block) = KeyBlock::decode(raw) {
            let back = block.encode();
            assert_eq!(KeyBlock::decode(&back).ok().as_ref(), Some(&block));
            // Everything but the crc32 (not checked under cfg(fuzzing)) round-trips.
            assert_eq!(back[..28], raw[..28]);
            assert_eq!(back[32..], raw[32..]);
            for slot in block.slots.iter().flatten() {
                let _ = slot.kdf.check();
            }
        }
    }
    let Some(raw) = data.get(at..at + KEY_BLOCK_LEN) else {
        return;
    };
    let cheap = KeyBlock::decode(raw).is_ok_and(|b| {
        b.slots
            .iter()
            .flatten()
            .all(|s| u64::from(s.kdf.memory_kib) * u64::from(s.kdf.iterations) <= 1024)
    });
    if !cheap {
        return;
    }
    let vol: Box<dyn BlockIo> = Box::new(disk::MemDisk::from_vec(data.to_vec(), 512));
    let pass = image::Passphrase::new(b"fuzz".to_vec());
    if let Ok(reader) =
        image::ImageReader::from_volumes_with(vec![("fuzz.lbi".to_string(), vol)], Some(&pass))
    {
        exercise(reader);
    }
}

/// Arbitrary bytes as a cast stream (FORMAT.md, "Cast streams"): receive, read every chunk in
/// the send order (areas again afterwards), then read to the end frame. Nothing may panic or
/// allocate past the stream's limits.
pub fn cast(data: &[u8]) {
    let input = Box::new(std::io::Cursor::new(data.to_vec()));
    let Ok((reader, rx)) = image::cast::receive(input, "fuzz-cast", None) else {
        return;
    };
    let (order, _) = image::cast::send_order(&reader);
    for &i in order.iter().chain(order.iter().take(2)) {
        if let Some(e) = reader.index().get(i) {
            let _ = reader.read_chunk(e);
        }
    }
    let _ = rx.finish();
}
