//! Opens arbitrary bytes as a one-volume image through `ImageReader::from_volumes`, then verifies
//! it and reads every stream. Must never panic, and must never allocate beyond the format's limits.
#![no_main]

use std::sync::Arc;

use disk::{BlockIo, MemDisk};
use image::ImageReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let vol: Box<dyn BlockIo> = Box::new(MemDisk::from_vec(data.to_vec(), 512));
    let Ok(reader) = ImageReader::from_volumes(vec![("fuzz.lbi".to_string(), vol)]) else {
        return;
    };
    let reader = Arc::new(reader);
    let _ = reader.verify(1);
    for s in reader.streams().to_vec() {
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
});
