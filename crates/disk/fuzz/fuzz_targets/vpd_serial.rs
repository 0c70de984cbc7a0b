//! `disk::parse_vpd_serial` over arbitrary bytes: never panics; a serial is printable ASCII,
//! trimmed, and no longer than the page body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(serial) = disk::parse_vpd_serial(data) {
        assert!(!serial.is_empty() && serial.len() + 4 <= data.len());
        assert!(serial.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
        assert_eq!(serial.trim(), serial);
    }
});
