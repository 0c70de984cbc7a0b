//! `cast_report` over arbitrary bytes: see `../entry.rs`.
#![no_main]
#![allow(dead_code)]

include!("../entry.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| cast_report(data));
