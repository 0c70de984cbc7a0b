//! `fs::used_map` over arbitrary bytes seen as a partition (after a successful probe): must never
//! panic, never allocate more than the partition size warrants, and cover exactly the partition.
#![no_main]

use disk::BlockIo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let disk = disk::MemDisk::from_vec(data.to_vec(), 512);
    if let Ok(Some(info)) = fs::probe(&disk) {
        if let Ok(map) = fs::used_map(&disk, &info) {
            assert_eq!(map.len(), disk.len());
            assert!(map.used_bytes() <= disk.len());
        }
    }
});
