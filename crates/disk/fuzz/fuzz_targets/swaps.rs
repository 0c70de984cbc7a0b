//! `disk::mounts::parse_swaps` over arbitrary bytes: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for entry in disk::mounts::parse_swaps(data) {
        assert!(!entry.path.as_os_str().is_empty());
    }
});
