// The entry point of the `layout` fuzz target, shared (through `include!`) by
// `fuzz_targets/read_table.rs` and `tests/fuzz_regressions.rs`, which feeds every committed
// crasher in `fuzz/regressions/read_table/` through it on stable.

/// `layout::read` over arbitrary disk contents. The first byte picks the sector size the device
/// reports (512 or 4096) so both sector-size probes are exercised; the rest is the disk. Every
/// area and partition of a table that reads must lie on the disk.
pub fn read_table(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let sector = if first & 1 == 0 { 512 } else { 4096 };
    let disk = disk::MemDisk::from_vec(rest.to_vec(), sector);
    if let Ok(layout) = layout::read(&disk) {
        for (offset, len) in layout.table_areas() {
            assert!(offset
                .checked_add(len)
                .is_some_and(|e| e <= layout.disk_size));
        }
        for p in &layout.partitions {
            assert_eq!(
                Some(p.size),
                p.sectors().checked_mul(u64::from(layout.sector_size))
            );
        }
    }
}
