// The entry points of the `engine` fuzz targets, shared word for word (through `include!`) by
// `fuzz_targets/*.rs` and by `tests/fuzz_regressions.rs`, which feeds every committed input in
// `fuzz/regressions/<target>/` and `fuzz/corpus/<target>/` through them on stable.

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

/// The session id the `cast_report` seeds were made for.
pub const FUZZ_SESSION: [u8; 16] = *b"lifeboat-session";

/// `engine::cast::decode_report` over arbitrary bytes, as a sender reads a report connection:
/// must never panic, and a report it accepts has printable, bounded text and a finite time.
pub fn cast_report(data: &[u8]) {
    let mut input = data;
    if let Ok(r) = engine::cast::decode_report(&mut input, &FUZZ_SESSION) {
        for text in [&r.disk.path, &r.disk.model, &r.disk.serial]
            .into_iter()
            .chain(r.reason.as_ref())
        {
            assert!(text.chars().count() <= 512);
            assert!(!text.chars().any(|c| c.is_control()));
        }
        assert!(r.seconds.is_finite() && r.seconds >= 0.0);
        let _ = r.line();
    }
}
