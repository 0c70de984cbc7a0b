//! `fs::probe` over arbitrary bytes seen as a partition: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let disk = disk::MemDisk::from_vec(data.to_vec(), 512);
    let _ = fs::probe(&disk);
});
