//! Measures `compress_chunk` throughput on mixed real data: binaries and libraries, text
//! (documentation, man pages) and some all-zero and sparse chunks, cut into 4 MiB chunks.
//!
//! `cargo run --release -p image --example compress_throughput [LEVEL] [MiB]`

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use image::{compress_chunk, ChunkJob, ParallelCompressor};

fn collect(dir: &Path, out: &mut Vec<u8>, limit: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= limit {
            return;
        }
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => collect(&p, out, limit),
            Ok(t) if t.is_file() => {
                if let Ok(bytes) = std::fs::read(&p) {
                    out.extend_from_slice(&bytes[..bytes.len().min(limit - out.len())]);
                }
            }
            _ => {}
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let level: i32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(256);
    let cs = 4 << 20;
    let quarter = mib << 18;
    let mut bins = Vec::new();
    collect(
        Path::new("/usr/lib/x86_64-linux-gnu"),
        &mut bins,
        quarter * 2,
    );
    let mut text = Vec::new();
    collect(Path::new("/usr/share/doc"), &mut text, quarter);
    collect(Path::new("/usr/share/man"), &mut text, quarter);
    // Interleave binary and text chunks, with an all-zero and a sparse chunk every 9.
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let (mut b, mut t) = (bins.chunks(cs), text.chunks(cs));
    for round in 1.. {
        let mut any = false;
        for c in [b.next(), t.next(), b.next()].into_iter().flatten() {
            chunks.push(c.to_vec());
            any = true;
        }
        if !any {
            break;
        }
        if round % 3 == 0 {
            chunks.push(vec![0; cs]);
            let mut sparse = vec![0u8; cs];
            let head = bins.get(..cs / 16).unwrap_or_default();
            sparse[..head.len()].copy_from_slice(head);
            chunks.push(sparse);
        }
    }
    let total: usize = chunks.iter().map(Vec::len).sum();
    if let Some(path) = std::env::var_os("IMAGE_BENCH_DUMP") {
        // The same bytes, for comparing with `zstd -3 -T1` on this machine at the same time.
        std::fs::write(path, chunks.concat()).expect("writing the dump");
    }
    let start = Instant::now();
    let mut out = 0usize;
    for (i, c) in chunks.iter().enumerate() {
        let cc = compress_chunk(0, (i * cs) as u64, c, level).expect("compress");
        out += cc.memory_len();
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = total as f64 / 1e6;
    println!(
        "compress_chunk level {level}, 1 thread: {mb:.0} MB in {secs:.2} s = {:.0} MB/s, ratio {:.2}",
        mb / secs,
        total as f64 / out as f64
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut it = chunks.into_iter().enumerate();
    let cancel = AtomicBool::new(false);
    let start = Instant::now();
    let stats = ParallelCompressor::new(threads, level)
        .run::<image::Error, _, _>(
            &cancel,
            || {
                Ok(it.next().map(|(i, data)| ChunkJob {
                    stream: 0,
                    offset: (i * cs) as u64,
                    data,
                }))
            },
            |_| Ok(()),
        )
        .expect("pipeline");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ParallelCompressor, {threads} threads: {:.0} MB/s, peak {} chunks in flight",
        stats.bytes_in as f64 / 1e6 / secs,
        stats.peak_in_flight
    );
}
