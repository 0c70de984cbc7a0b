//! `disk::mounts::parse_mountinfo` over arbitrary bytes: must never panic, and every entry it
//! returns has a mount point.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for entry in disk::mounts::parse_mountinfo(data) {
        assert!(!entry.mount_point.as_os_str().is_empty());
    }
});
