//! `containers` (fs::crypt and fs::md) over arbitrary partition bytes (raw or a sparse seed): see `../entry.rs`.
#![no_main]
#![allow(dead_code)]

include!("../entry.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| containers(data));
