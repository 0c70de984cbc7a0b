//! Replays every committed fuzz input of this crate through the same entry points the cargo-fuzz
//! targets call (`fuzz/entry.rs`), on the stable toolchain: `fuzz/regressions/<target>/` holds
//! the minimised crashers the fuzzer found (each one fixed), `fuzz/corpus/` the seeds made by the
//! real tools. None may panic. See FUZZING.md.
#![allow(dead_code, clippy::unwrap_used)]

include!("../fuzz/entry.rs");

/// Runs `f` on every input of `fuzz/<dir>`, naming the file that panics or hangs.
fn replay(dir: &str, f: fn(&[u8])) -> usize {
    qemu_tests::fuzz_replay::replay(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), dir, f)
}

#[test]
fn read_table_survives_every_regression_and_seed() {
    replay("regressions/read_table", read_table);
    assert!(replay("corpus/read_table", read_table) >= 3);
}
