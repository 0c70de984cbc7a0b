#![no_main]
//! Opens random bytes as a file system with `fs::browse::open` and walks what it finds: no input
//! may panic, hang or allocate without bound. Covers every reader `open` picks (ext2/3/4, FAT,
//! NTFS, exFAT), through both `read_file` and `read_file_sparse`.

use disk::MemDisk;
use libfuzzer_sys::fuzz_target;

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

fuzz_target!(|data: &[u8]| {
    let io = MemDisk::from_vec(data.to_vec(), 512);
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
        let Ok(entries) = b.read_dir(&p) else {
            continue;
        };
        for e in entries.into_iter().take(16) {
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
});
