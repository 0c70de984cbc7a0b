//! Replays every committed fuzz input of this crate through the entry point the cargo-fuzz target
//! calls (`fuzz/entry.rs`), on the stable toolchain: `fuzz/regressions/job_file/` holds minimised
//! crashers (each one fixed), `fuzz/corpus/job_file/` the seeds (the job files of
//! docs/job-files.md and variants); likewise `cast_report/` (receiver reports). None may panic.
//! See FUZZING.md.

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

#[test]
fn cast_report_decoder_survives_every_regression_and_seed() {
    replay("regressions/cast_report", cast_report);
    assert!(replay("corpus/cast_report", cast_report) >= 2);
}

#[test]
fn the_cast_report_seeds_are_what_encode_report_makes() {
    use engine::cast::{
        decode_report, encode_report, ReceiverReport, ReportResult, ReportVerify, ReportedDisk,
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/cast_report");
    let disk = ReportedDisk {
        path: "/dev/sda".into(),
        model: "QEMU HARDDISK".into(),
        serial: "LAB-PC-07".into(),
        size: 500_107_862_016,
    };
    let seeds = [
        (
            "done",
            ReceiverReport {
                disk: disk.clone(),
                result: ReportResult::Done,
                reason: None,
                bytes: 42 << 20,
                seconds: 61.5,
                verify: ReportVerify::Verified,
            },
        ),
        (
            "failed",
            ReceiverReport {
                disk,
                result: ReportResult::Failed,
                reason: Some("target /dev/sda is too small: it needs 1 bytes, has 0".into()),
                bytes: 0,
                seconds: 2.0,
                verify: ReportVerify::NotReached,
            },
        ),
    ];
    for (name, report) in seeds {
        let bytes = encode_report(&FUZZ_SESSION, &report).unwrap();
        let path = dir.join(name);
        if std::env::var_os("LIFEBOAT_WRITE_CAST_REPORT_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
        assert_eq!(
            decode_report(&mut &bytes[..], &FUZZ_SESSION).unwrap(),
            report
        );
    }
}
