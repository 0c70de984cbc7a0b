//! Replays every committed fuzz input of this crate through the same entry points the cargo-fuzz
//! targets call (`fuzz/entry.rs`), on the stable toolchain: `fuzz/regressions/<target>/` holds
//! the minimised crashers the fuzzer found (each one fixed), `fuzz/corpus/` the seeds made by the
//! real tools. None may panic. See FUZZING.md.
#![allow(dead_code, clippy::unwrap_used)]

include!("../fuzz/entry.rs");

/// Runs `f` on every input of `fuzz/<dir>`, naming the file that panics or hangs.
fn replay(dir: &str, f: fn(&[u8])) -> usize {
    qemu_tests::fuzz_replay::replay(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), dir, f)
}

#[test]
fn open_and_read_survives_every_regression_and_seed() {
    replay("regressions/open_and_read", open_and_read);
    assert!(replay("corpus/open_and_read", open_and_read) >= 2);
}

#[test]
fn volumes_survives_every_regression_and_seed() {
    replay("regressions/volumes", volumes);
    assert!(replay("corpus/volumes", volumes) >= 1);
}

#[test]
fn manifest_survives_every_regression_and_seed() {
    replay("regressions/manifest", manifest);
    assert!(replay("corpus/manifest", manifest) >= 1);
}

#[test]
fn bitmap_survives_every_regression_and_seed() {
    replay("regressions/bitmap", bitmap);
    assert!(replay("corpus/bitmap", bitmap) >= 3);
}

#[test]
fn key_block_survives_every_regression_and_seed() {
    replay("regressions/key_block", key_block);
    assert!(replay("corpus/key_block", key_block) >= 2);
}

#[test]
fn the_encrypted_seed_opens_with_the_fuzz_password_so_the_target_reaches_the_reader() {
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/key_block/encrypted-two-slots-lbi");
    let pass = image::Passphrase::new(b"fuzz".to_vec());
    let r = image::ImageReader::open_with(&seed, Some(&pass)).unwrap();
    assert!(r.encrypted() && r.verify(1).is_ok());
}

#[test]
fn cast_survives_every_regression_and_seed() {
    replay("regressions/cast", cast);
    assert!(replay("corpus/cast", cast) >= 1);
}

#[test]
fn the_cast_seed_is_the_small_seed_image_sent_whole() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let r = image::ImageReader::open(&dir.join("open_and_read/gpt-ext4-vfat-small-lbi")).unwrap();
    let mut sent = Vec::new();
    image::cast::send(&r, &mut sent, &|_| {}).unwrap();
    if std::env::var_os("LIFEBOAT_WRITE_CAST_SEED").is_some() {
        std::fs::write(dir.join("cast/gpt-ext4-vfat-small-cast"), &sent).unwrap();
    }
    let seed = std::fs::read(dir.join("cast/gpt-ext4-vfat-small-cast")).unwrap();
    // The UUID and bytes are the image's: the seed is exactly what send makes of it.
    assert_eq!(seed, sent);
    let (rx_reader, rx) =
        image::cast::receive(Box::new(std::io::Cursor::new(seed)), "seed", None).unwrap();
    assert_eq!(rx_reader.index().len(), r.index().len());
    for i in image::cast::send_order(&rx_reader).0 {
        assert_eq!(
            rx_reader.read_chunk(&rx_reader.index()[i]).unwrap(),
            r.read_chunk(&r.index()[i]).unwrap()
        );
    }
    assert_eq!(rx.finish().unwrap(), sent.len() as u64);
}

#[test]
fn the_cast_seed_with_a_report_frame_is_the_small_seed_image_sent_whole() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let r = image::ImageReader::open(&dir.join("open_and_read/gpt-ext4-vfat-small-lbi")).unwrap();
    let to = image::cast::ReportTo {
        addr: "10.231.7.1:9000".parse().unwrap(),
        session: *b"lifeboat-session",
    };
    let mut sent = Vec::new();
    image::cast::send_with(&r, &mut sent, &|_| {}, Some(&to)).unwrap();
    let path = dir.join("cast/gpt-ext4-vfat-small-cast-report");
    if std::env::var_os("LIFEBOAT_WRITE_CAST_SEED").is_some() {
        std::fs::write(&path, &sent).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), sent);
    let (rx_reader, rx) =
        image::cast::receive(Box::new(std::io::Cursor::new(sent.clone())), "seed", None).unwrap();
    assert_eq!(rx.report_to(), Some(to));
    for i in image::cast::send_order(&rx_reader).0 {
        rx_reader.read_chunk(&rx_reader.index()[i]).unwrap();
    }
    assert_eq!(rx.finish().unwrap(), sent.len() as u64);
}
