//! Fuzzes `layout::read` with arbitrary disk contents. The first byte picks the sector size the
//! device reports (512 or 4096) so both sector-size probes are exercised; the rest is the disk.
//! Its stable twin is `tests/mutation.rs`.
#![no_main]

use disk::MemDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let sector = if first & 1 == 0 { 512 } else { 4096 };
    let disk = MemDisk::from_vec(rest.to_vec(), sector);
    if let Ok(layout) = layout::read(&disk) {
        for (offset, len) in layout.table_areas() {
            assert!(offset + len <= layout.disk_size);
        }
        for p in &layout.partitions {
            assert_eq!(p.size, p.sectors() * u64::from(layout.sector_size));
        }
    }
});
