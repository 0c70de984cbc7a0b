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

#[test]
fn decrypted_without_a_key_file_is_refused_on_the_command_line_and_in_a_job_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.img");
    std::fs::write(&src, vec![0u8; 1 << 20]).unwrap();
    let image = dir.path().join("x.lbi");
    let (code, _, err) = lifeboat(&[
        "backup",
        src.to_str().unwrap(),
        image.to_str().unwrap(),
        "--decrypted",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--key-file"), "{err}");
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[[step]]\naction = \"backup\"\nsource = \"{}\"\nimage = \"x.lbi\"\ndecrypted = true\n",
            src.display()
        ),
    )
    .unwrap();
    let (code, out, err) = lifeboat(&["run", job.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("decrypted = true needs key_file"),
        "{out}{err}"
    );
    assert!(!image.exists());
}
