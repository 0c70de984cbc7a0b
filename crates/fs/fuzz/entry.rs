// The entry points of the `fs` fuzz targets, shared word for word (through `include!`) by the
// targets in `fuzz_targets/` and by `tests/fuzz_regressions.rs`, which feeds every committed
// crasher in `fuzz/regressions/<target>/` through the same function on stable.
//
// Input format: raw partition bytes, or a sparse seed (so a real file system whose structures
// lie megabytes apart fits a small corpus file): the magic `LBSPARSE`, the partition length
// (u32 LE, at most `MAX_SPARSE_LEN`), then records of offset (u32 LE), length (u16 LE) and that
// many bytes; records past the length are cut. See FUZZING.md.

/// The largest partition a sparse input may describe.
pub const MAX_SPARSE_LEN: usize = 8 << 20;

/// The partition an input describes, as a 512-byte-sector in-memory disk.
pub fn disk_from(data: &[u8]) -> disk::MemDisk {
    disk::MemDisk::from_vec(decode(data), 512)
}

fn decode(data: &[u8]) -> Vec<u8> {
    let Some(rest) = data.strip_prefix(b"LBSPARSE") else {
        return data.to_vec();
    };
    let Some((len, mut rest)) = rest.split_first_chunk::<4>() else {
        return data.to_vec();
    };
    let len = (u32::from_le_bytes(*len) as usize).min(MAX_SPARSE_LEN);
    let mut out = vec![0u8; len];
    while let Some((head, tail)) = rest.split_first_chunk::<6>() {
        let off = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let n = usize::from(u16::from_le_bytes([head[4], head[5]])).min(tail.len());
        let (bytes, tail) = tail.split_at(n);
        if let Some(dst) = out.get_mut(off..) {
            let m = n.min(dst.len());
            dst[..m].copy_from_slice(&bytes[..m]);
        }
        rest = tail;
    }
    out
}

/// `fs::probe`: must never panic.
pub fn probe(data: &[u8]) {
    let disk = disk_from(data);
    let _ = fs::probe(&disk);
}

/// `fs::used_map` after a successful probe: never panics, never allocates beyond what the
/// partition warrants, and covers exactly the partition.
pub fn used_map(data: &[u8]) {
    use disk::BlockIo;
    let disk = disk_from(data);
    if let Ok(Some(info)) = fs::probe(&disk) {
        if let Ok(map) = fs::used_map(&disk, &info) {
            assert_eq!(map.len(), disk.len());
            assert!(map.used_bytes() <= disk.len());
        }
    }
}

/// `fs::crypt::read` (LUKS1, LUKS2 with its JSON area, BitLocker's FVE metadata) and
/// `fs::md::read` (md 0.90 and 1.x superblocks): never panic, and what they report lies on the
/// partition.
pub fn containers(data: &[u8]) {
    use disk::BlockIo;
    let disk = disk_from(data);
    if let Ok(Some(e)) = fs::crypt::read(&disk) {
        for (at, len) in &e.metadata {
            assert!(at.checked_add(*len).is_some_and(|end| end <= disk.len()), "{e:?}");
        }
        let _ = e.summary();
    }
    if let Ok(Some(m)) = fs::md::read(&disk) {
        assert!(m.super_offset < disk.len());
        let _ = m.summary();
    }
}

/// A sparse output that drops everything.
struct Sink(std::io::Sink);
impl fs::browse::SparseWrite for Sink {
    fn as_write(&mut self) -> &mut dyn std::io::Write {
        &mut self.0
    }
    fn hole(&mut self, _len: u64) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes a panic in our own code abort (a finding), while a panic inside a third-party reader
/// (`fatfs`, `ntfs`: a crate from the registry) unwinds to `fs::browse`'s guard, which reports it
/// as damage by design. libFuzzer's hook aborts on every panic; this one sits in front of it.
fn strict_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let third_party = info
                .location()
                .is_some_and(|l| l.file().contains("/registry/src/"));
            if !third_party {
                previous(info);
                std::process::abort();
            }
        }));
    });
}

/// `fs::browse::open` and a bounded walk of what it finds (every reader `open` picks: ext2/3/4,
/// FAT, NTFS, exFAT), through `metadata`, `read_link`, `read_file` and `read_file_sparse`.
pub fn browse(data: &[u8]) {
    strict_panics();
    let io = disk_from(data);
    let Ok(mut b) = fs::browse::open(Box::new(io)) else {
        return;
    };
    let _ = b.label();
    let mut stack = vec!["/".to_string()];
    let mut visited = 0;
    while let Some(p) = stack.pop() {
        visited += 1;
        if visited > 32 {
            break;
        }
        let _ = b.metadata(&p);
        let Ok(entries) = b.read_dir(&p) else {
            continue;
        };
        for e in entries.into_iter().take(16) {
            assert!(
                !e.name.is_empty() && !e.name.contains('/'),
                "bad name {:?}",
                e.name
            );
            let child = format!("{}/{}", p.trim_end_matches('/'), e.name);
            let _ = b.metadata(&child);
            match e.kind {
                fs::browse::EntryKind::Dir => stack.push(child),
                fs::browse::EntryKind::Symlink => {
                    let _ = b.read_link(&child);
                }
                _ => {
                    let _ = b.read_file(&child, &mut std::io::sink());
                    let _ = b.read_file_sparse(&child, &mut Sink(std::io::sink()));
                }
            }
        }
    }
}
