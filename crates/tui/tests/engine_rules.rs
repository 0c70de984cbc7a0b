//! The TUI presents the engine's decisions: a grow failure after a complete copy is shown with
//! the same words the CLI prints (`engine::job::Outcome::report`), and a restore onto the drive
//! holding the image is refused by the engine's rule, not by a check of the TUI's own.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::job::Status;
use qemu_tests::fixture;
use std::path::{Path, PathBuf};
use tui::model::{Action, Endpoint, JobOptions, Screen};
use tui::screens::transfer::{Step, Wizard};
use tui::{update, Effect, Key, Msg};

/// The text of a line inside the result box, without the frame.
fn inner(line: &str) -> String {
    line.trim_start_matches('│')
        .trim_end()
        .trim_end_matches('│')
        .trim_end()
        .to_string()
}

#[test]
fn a_grow_failure_is_shown_with_the_words_the_cli_prints() {
    let mut m = model();
    m.cursor = 0;
    keys(&mut m, &[Key::Char('c'), Key::Enter, Key::Enter]);
    let req = match keys(&mut m, &[Key::Enter]).pop() {
        Some(Effect::Plan { request, .. }) => request,
        other => panic!("{other:?}"),
    };
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(planned(&req)),
    });
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "yes");
    keys(&mut m, &[Key::Enter]);
    let mut done = outcome(Status::CompletedGrowFailed, None);
    done.notes.push("partition 2 grew to 96.0 MiB".into());
    done.grow_error = Some("resize2fs: no space".into());
    let report = done.report();
    answer(&mut m, job_id, |id| Msg::JobDone { id, outcome: done });
    let lines = render(&m);
    let text = lines.join("\n");
    assert_eq!(
        inner(&lines[2]),
        "Clone disk finished, but growing the file system failed.",
        "\n{text}"
    );
    // Every line the CLI prints for this outcome is on the screen, in the same order.
    let shown: Vec<String> = lines.iter().map(|l| inner(l)).collect();
    let mut at = 0;
    for want in report.lines() {
        let found = shown[at..].iter().position(|l| l == want);
        assert!(found.is_some(), "missing {want:?}\n{text}");
        at += found.unwrap() + 1;
    }
    assert!(
        text.contains("the copy is complete, but growing the file system failed: resize2fs"),
        "\n{text}"
    );
    assert!(
        text.contains(&format!("result: {}", Status::CompletedGrowFailed.label())),
        "\n{text}"
    );
    // A complete job names no target state: the copy is usable.
    assert!(!text.contains("State of"), "\n{text}");
}

/// A loop device over a file, detached on drop.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = fixture::run("losetup", &["-d", &self.0]);
    }
}

/// A mounted file system, unmounted on drop (before the loop device is detached).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = fixture::run("umount", &[self.0.to_str().unwrap()]);
    }
}

fn endpoint(path: &Path, len: u64, identity: &str) -> Endpoint {
    Endpoint {
        path: path.to_path_buf(),
        offset: 0,
        len,
        disk: path.to_path_buf(),
        number: None,
        label: path.display().to_string(),
        identity: identity.to_string(),
        table: Some("gpt".into()),
        needs: len,
    }
}

#[test]
fn restoring_onto_the_drive_holding_the_image_is_refused_by_the_engine() {
    let work = tempfile::tempdir().unwrap();
    // A stick whose whole device holds the file system the image is stored on.
    let stick = work.path().join("stick.img");
    fixture::sparse_file(&stick, 96 * MIB).unwrap();
    let dev = fixture::run("losetup", &["-f", "--show", stick.to_str().unwrap()])
        .unwrap()
        .trim()
        .to_string();
    assert!(dev.starts_with("/dev/loop"), "losetup said {dev}");
    let lo = Loop(dev);
    fixture::run("mkfs.ext4", &["-q", "-F", &lo.0]).unwrap();
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    fixture::run("mount", &[&lo.0, mnt.to_str().unwrap()]).unwrap();
    let _mounted = Mount(mnt.clone());
    let image = mnt.join("disk.lbi");
    std::fs::copy(gpt_lbi(), &image).unwrap();
    let before = fixture::sha256(&image).unwrap();

    let source = endpoint(&image, 64 * MIB, "image disk.lbi");
    let target = endpoint(Path::new(&lo.0), 96 * MIB, "the stick");
    // The user's choices, up to the options step; Enter asks the worker for the plan.
    let mut m = model();
    m.screen = Screen::Wizard(Box::new(Wizard {
        action: Action::RestoreDisk,
        step: Step::Options { cursor: 0 },
        source: Some(source),
        target: Some(target),
        options: JobOptions::default(),
        image: None,
    }));
    let (id, req) = match update(&mut m, Msg::Key(Key::Enter)).pop() {
        Some(Effect::Plan { id, request }) => (id, request),
        other => panic!("{other:?}"),
    };
    // The worker's answer: the engine's plan refuses.
    let err = tui::jobs::plan(&disk::SysRoot::default(), &req)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is stored on this drive"), "{err}");
    assert!(err.contains("disk.lbi"), "{err}");
    update(
        &mut m,
        Msg::Planned {
            id,
            result: Err(err),
        },
    );
    let lines = render(&m);
    let text = lines.join("\n");
    // The reason as one text (the box wraps it).
    let words = lines.iter().map(|l| inner(l)).collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("Lifeboat will not write to this target:"),
        "\n{text}"
    );
    assert!(
        words.contains("is stored on this drive: restoring onto it would overwrite the image"),
        "\n{text}"
    );
    assert!(text.contains("Nothing has been written."), "\n{text}");
    assert_eq!(
        fixture::sha256(&image).unwrap(),
        before,
        "the image is intact"
    );
}
