//! `lifeboat run` with a job file that cannot be used runs nothing and says the job never started
//! (exit code `disk::boot::EXIT_NOT_STARTED`, which init reads to show the UI instead of
//! following `lifeboat.after`).

mod common;
use common::lifeboat;

#[test]
fn an_invalid_or_unreadable_job_file_is_a_job_that_never_started() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.toml");
    std::fs::write(
        &typo,
        "[[step]]\naction = \"backup\"\nsorce = \"sda\"\nimage = \"x.lbi\"\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.toml");
    let fifo = dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    for (job, why) in [
        (&typo, "sorce"),
        (&missing, "No such file"),
        (&fifo, "not a regular file"),
    ] {
        let (code, out, err) = lifeboat(&["run", job.to_str().unwrap()]);
        assert_eq!(code, i32::from(disk::boot::EXIT_NOT_STARTED), "{out}{err}");
        assert!(
            out.contains("job not started") && out.contains(why),
            "{out}"
        );
        assert!(err.contains(why), "{err}");
    }
    // Nothing was created beside the job files.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
