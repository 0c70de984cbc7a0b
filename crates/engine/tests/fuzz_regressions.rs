//! Replays every committed fuzz input of this crate through the entry point the cargo-fuzz target
//! calls (`fuzz/entry.rs`), on the stable toolchain: `fuzz/regressions/job_file/` holds minimised
//! crashers (each one fixed), `fuzz/corpus/job_file/` the seeds (the job files of
//! docs/job-files.md and variants). None may panic. See FUZZING.md.

include!("../fuzz/entry.rs");

fn replay(dir: &str, f: fn(&[u8])) -> usize {
    qemu_tests::fuzz_replay::replay(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), dir, f)
}

#[test]
fn job_file_parser_survives_every_regression_and_seed() {
    replay("regressions/job_file", job_file);
    assert!(replay("corpus/job_file", job_file) >= 4);
}

#[test]
fn the_seed_job_files_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/job_file");
    let mut valid = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            engine::job::file::JobFile::read(&path).unwrap();
            valid += 1;
        }
    }
    assert!(valid >= 4, "{valid} seed job files");
}
