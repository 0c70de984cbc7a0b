//! `job_file` over arbitrary bytes: see `../entry.rs`.
#![no_main]

include!("../entry.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| job_file(data));
