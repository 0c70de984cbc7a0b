//! `layout::read` over arbitrary disk contents: see `../entry.rs`. Its seeded stable twin is
//! `tests/mutation.rs`; committed crashers run in `tests/fuzz_regressions.rs`.
#![no_main]

include!("../entry.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| read_table(data));
