// The entry point of the `engine` fuzz target, shared word for word (through `include!`) by
// `fuzz_targets/job_file.rs` and by `tests/fuzz_regressions.rs`, which feeds every committed input
// in `fuzz/regressions/job_file/` and `fuzz/corpus/job_file/` through it on stable.

/// `engine::job::file::JobFile::parse` over arbitrary bytes (as text when they are UTF-8, the
/// way `JobFile::read` hands them over): must never panic, and a file it accepts keeps its bounds.
pub fn job_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = engine::job::file::JobFile::parse(text, "fuzz.toml") {
        assert!(!file.steps.is_empty());
        assert!(file.steps.len() <= engine::job::file::MAX_STEPS);
        for step in &file.steps {
            let _ = step.name();
        }
    }
}
