//! Restore from the keyboard: image → what → target (unsafe ones refused with the reason) →
//! options → plan → typed confirmation → progress with cancel → result; `update` without a
//! terminal, the screens at 80×25, and the worker on real image files (sgdisk -v, e2fsck -fn,
//! content hashes).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::Cancel;
use qemu_tests::fixture;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tui::model::{
    Action, BrowseEntry, Endpoint, ImagePart, ImageSummary, JobOptions, PlanRequest, Screen,
};
use tui::screens::restore::RestoreScreen;
use tui::screens::transfer::Step;
use tui::{view, Effect, Key, Model, Msg};

fn part(number: u32, fs: &str, label: &str, restorable: bool) -> ImagePart {
    ImagePart {
        number,
        size: 16 * MIB,
        fs: fs.into(),
        label: label.into(),
        restorable,
    }
}

/// What the image browser says of the test image (made from the 64 MiB Samsung disk).
fn summary() -> ImageSummary {
    ImageSummary {
        model: "Samsung SSD 870".into(),
        serial: "S6PU1".into(),
        created: "2026-11-22T03:14:34Z".into(),
        source_size: 64 * MIB,
        table: Some("gpt".into()),
        partitions: vec!["#1 16 MiB ext4".into(), "#2 16 MiB vfat".into()],
        stored: 9 * MIB,
        volumes: 1,
        file_size: 9 << 20,
        bad_ranges: 0,
        whole_disk: true,
        needs: 33 * MIB + 16896,
        parts: vec![part(1, "ext4", "ROOT", true), part(2, "vfat", "DATA", true)],
    }
}

/// The images live on sdd2, mounted at /media/stick (the browser's top folder here).
fn top() -> PathBuf {
    PathBuf::from("/media/stick")
}

fn image_path() -> PathBuf {
    top().join("disk.lbi")
}

/// A model on the restore image browser, listing a good image and an incomplete one.
fn on_browser() -> Model {
    let mut m = model();
    m.image_root = top();
    let effects = keys(&mut m, &[Key::Char('e')]);
    assert!(
        matches!(effects.as_slice(), [Effect::ListImages { dir: d, .. }] if d == &top()),
        "{effects:?}"
    );
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![
            BrowseEntry::Image {
                path: top().join("cut.lbi"),
                summary: Err("cut.lbi is incomplete: the image has no trailer".into()),
            },
            BrowseEntry::Image {
                path: image_path(),
                summary: Ok(summary()),
            },
        ]),
    });
    m
}

/// On the target list of a whole-disk restore.
fn on_disk_targets() -> Model {
    let mut m = on_browser();
    keys(&mut m, &[Key::Down, Key::Enter]);
    assert!(
        matches!(&m.screen, Screen::Restore(r) if matches!(**r, RestoreScreen::PickWhat { cursor: 0, .. })),
        "{:?}",
        m.screen
    );
    keys(&mut m, &[Key::Enter]);
    m
}

fn wizard(m: &Model) -> &tui::screens::transfer::Wizard {
    match &m.screen {
        Screen::Wizard(w) => w,
        other => panic!("{other:?}"),
    }
}

fn target_cursor(m: &Model) -> usize {
    match wizard(m).step {
        Step::PickTarget { cursor, .. } => cursor,
        ref other => panic!("{other:?}"),
    }
}

fn refused(m: &Model) -> Option<String> {
    match &wizard(m).step {
        Step::PickTarget { refused, .. } => refused.clone(),
        other => panic!("{other:?}"),
    }
}

/// Moves the target cursor onto `path`.
fn go_to(m: &mut Model, path: &str) {
    keys(m, &[Key::Home]);
    let w = wizard(m);
    let list = tui::screens::transfer::targets(m, w.action, w.source.as_ref().unwrap());
    let i = list
        .iter()
        .position(|c| c.endpoint.path == Path::new(path))
        .unwrap();
    for _ in 0..i {
        keys(m, &[Key::Down]);
    }
    assert_eq!(target_cursor(m), i);
}

#[test]
fn an_incomplete_image_is_refused_with_its_error_and_esc_leaves() {
    let mut m = on_browser();
    keys(&mut m, &[Key::Enter]);
    match &m.screen {
        Screen::Restore(r) => match &**r {
            RestoreScreen::PickImage(b) => {
                let why = b.refused.as_deref().unwrap();
                assert!(why.contains("incomplete"), "{why}");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let text = render(&m).join("\n");
    assert!(text.contains("incomplete"), "{text}");
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn the_choice_of_what_to_restore_lists_the_disk_and_each_partition_at_80x25() {
    let mut m = on_browser();
    keys(&mut m, &[Key::Down, Key::Enter]);
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(lines[0].contains("Restore - step 2 of 7"), "{text}");
    assert!(
        text.contains("The whole disk (gpt table, 2 partitions)"),
        "{text}"
    );
    assert!(text.contains("Partition #1"), "{text}");
    assert!(text.contains("ext4 \"ROOT\""), "{text}");
    assert!(text.contains("Samsung SSD 870"), "{text}");
    assert!(lines[24].contains("Enter choose"), "{text}");
    // Back: the image browser on the image's folder.
    let effects = keys(&mut m, &[Key::Esc]);
    assert!(
        matches!(effects.as_slice(), [Effect::ListImages { dir: d, .. }] if d == &top()),
        "{effects:?}"
    );
}

#[test]
fn a_partition_that_was_not_imaged_cannot_be_chosen() {
    let mut m = on_browser();
    let mut s = summary();
    s.parts[1].restorable = false;
    m.screen = Screen::Restore(Box::new(RestoreScreen::PickWhat {
        image: tui::model::ChosenImage {
            path: image_path(),
            summary: s,
        },
        cursor: 2,
    }));
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(m.screen, Screen::Restore(_)), "{:?}", m.screen);
    assert!(
        m.status.as_deref().unwrap().contains("was not imaged"),
        "{:?}",
        m.status
    );
}

#[test]
fn unsafe_targets_are_refused_with_the_reason() {
    let mut m = on_disk_targets();
    assert_eq!(wizard(&m).action, Action::RestoreDisk);
    // The cursor starts on the first usable disk: sdb (sda holds no mounted file system).
    let w = wizard(&m);
    let list = tui::screens::transfer::targets(&m, w.action, w.source.as_ref().unwrap());
    assert_eq!(list[target_cursor(&m)].endpoint.path, Path::new("/dev/sda"));

    go_to(&mut m, "/dev/sdc");
    keys(&mut m, &[Key::Enter]);
    let why = refused(&m).unwrap();
    assert!(why.contains("too small"), "{why}");
    assert!(why.contains("short"), "{why}");
    let text = render(&m).join("\n");
    assert!(text.contains("Refused: too small"), "{text}");

    go_to(&mut m, "/dev/sdd");
    keys(&mut m, &[Key::Enter]);
    let why = refused(&m).unwrap();
    assert!(why.contains("the image is read from this drive"), "{why}");
    assert!(why.contains("/media/stick"), "{why}");

    go_to(&mut m, "/dev/vda");
    keys(&mut m, &[Key::Enter]);
    let why = refused(&m).unwrap();
    assert!(why.contains("running system"), "{why}");

    // A larger disk is fine and explained.
    go_to(&mut m, "/dev/sdb");
    let w = wizard(&m);
    let list = tui::screens::transfer::targets(&m, w.action, w.source.as_ref().unwrap());
    let sdb = &list[target_cursor(&m)];
    assert!(sdb.refusal.is_none());
    assert!(sdb.note.as_deref().unwrap().contains("larger"), "{sdb:?}");
}

#[test]
fn back_from_the_targets_returns_to_the_choice_of_what_to_restore() {
    let mut m = on_disk_targets();
    keys(&mut m, &[Key::Esc]);
    match &m.screen {
        Screen::Restore(r) => {
            assert!(
                matches!(**r, RestoreScreen::PickWhat { cursor: 0, .. }),
                "{r:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_whole_disk_restore_goes_plan_confirm_run_cancel_result() {
    let mut m = on_disk_targets();
    go_to(&mut m, "/dev/sdb");
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(wizard(&m).step, Step::Options { .. }));
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(
        lines[0].contains("Restore - step 4 of 7: options"),
        "{text}"
    );
    assert!(
        text.contains("64.0 MiB larger than the disk the image"),
        "{text}"
    );
    assert!(
        text.contains("The image was made from Samsung SSD 870, serial S6PU1, 64.0 MiB"),
        "{text}"
    );
    assert!(text.contains("Discard (TRIM)"), "{text}");
    // Grow (the first option) and discard (the third).
    keys(
        &mut m,
        &[Key::Char(' '), Key::Down, Key::Down, Key::Char(' ')],
    );
    let effects = keys(&mut m, &[Key::Enter]);
    let req = match effects.as_slice() {
        [Effect::Plan { request: req, .. }] => req.as_ref().clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(req.action, Action::RestoreDisk);
    assert_eq!(req.source.path, image_path());
    assert_eq!(req.target.path, Path::new("/dev/sdb"));
    assert!(req.options.grow_last && req.options.discard && !req.options.verify);
    let _ = answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(planned(&req)),
    });
    assert!(matches!(wizard(&m).step, Step::Plan { .. }));
    let text = render(&m).join("\n");
    assert!(text.contains("invalidate the partition table"), "{text}");
    keys(&mut m, &[Key::Enter]);
    // The confirmation names the target's model, serial and size.
    let text = render(&m).join("\n");
    assert!(
        text.contains("ALL DATA ON THIS DISK WILL BE DESTROYED"),
        "{text}"
    );
    assert!(text.contains("Crucial MX500"), "{text}");
    assert!(text.contains("CT22"), "{text}");
    assert!(
        text.contains("It will be restored from image disk.lbi"),
        "{text}"
    );
    // Anything but "yes" is refused.
    typed(&mut m, "y");
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    typed(&mut m, "yes");
    let effects = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(effects.as_slice(), [Effect::Start { confirmed: _, .. }]),
        "{effects:?}"
    );
    assert!(m.job_running());
    let _ = answer(&mut m, job_id, |id| Msg::Progress {
        id,
        progress: engine::Progress {
            phase: "restoring partition 1".into(),
            done: 4 * MIB,
            total: 8 * MIB,
            bytes_per_sec: 2e6,
            eta_secs: Some(2),
            elapsed_secs: 2.0,
            bad_bytes: 0,
            finished: false,
        },
    });
    let text = render(&m).join("\n");
    assert!(text.contains("50.0%"), "{text}");
    assert!(text.contains("1.9 MiB/s"), "{text}");
    assert!(text.contains("Elapsed  0:02"), "{text}");
    // Cancel asks first; n keeps going, y cancels.
    assert!(keys(&mut m, &[Key::Esc, Key::Char('n')]).is_empty());
    let effects = keys(&mut m, &[Key::Esc, Key::Char('y')]);
    assert!(
        matches!(effects.as_slice(), [Effect::CancelJob { .. }]),
        "{effects:?}"
    );
    let _ = answer(&mut m, job_id, |id| Msg::JobDone {
        id,
        outcome: outcome(
            engine::job::Status::Cancelled,
            Some("cancelled: the target has no partition table yet"),
        ),
    });
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(text.contains("Restore disk cancelled."), "{text}");
    // The engine's words on the state the cancellation left the target in.
    assert!(
        text.contains("error: cancelled: the target has no partition table yet"),
        "{text}"
    );
    assert!(text.contains("result: CANCELLED"), "{text}");
    assert!(text.contains("/run/lifeboat/lifeboat.log"), "{text}");
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn a_partition_restore_targets_partitions_and_a_refused_plan_is_shown() {
    let mut m = on_browser();
    keys(&mut m, &[Key::Down, Key::Enter, Key::Down, Key::Enter]);
    assert_eq!(wizard(&m).action, Action::RestorePartition);
    assert_eq!(wizard(&m).source.as_ref().unwrap().number, Some(1));
    let w = wizard(&m);
    let list = tui::screens::transfer::targets(&m, w.action, w.source.as_ref().unwrap());
    let sdd2 = list
        .iter()
        .find(|c| c.endpoint.path == Path::new("/dev/sdd2"))
        .unwrap();
    assert!(sdd2.refusal.is_some(), "{sdd2:?}");
    go_to(&mut m, "/dev/sda1");
    keys(&mut m, &[Key::Enter]);
    let effects = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(effects.as_slice(), [Effect::Plan { request: _, .. }]),
        "{effects:?}"
    );
    let _ = answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Err("refusing to write to /dev/sda1: sda1 is mounted at /mnt".into()),
    });
    let text = render(&m).join("\n");
    assert!(
        text.contains("Lifeboat will not write to this target"),
        "{text}"
    );
    assert!(text.contains("sda1 is mounted at /mnt"), "{text}");
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(wizard(&m).step, Step::PickTarget { .. }));
}

fn file_endpoint(path: &Path, len: u64, table: Option<&str>) -> Endpoint {
    Endpoint {
        path: path.to_path_buf(),
        offset: 0,
        len,
        disk: path.to_path_buf(),
        number: None,
        label: path.display().to_string(),
        identity: format!("file {}", path.display()),
        table: table.map(String::from),
        needs: len,
    }
}

/// Drives the model from the plan screen through the typed confirmation; returns the proof.
fn confirm(plan: Arc<tui::model::PlannedJob>, req: &PlanRequest) -> tui::confirm::Confirmed {
    let mut m = model();
    m.screen = Screen::Wizard(Box::new(tui::screens::transfer::Wizard {
        action: req.action,
        step: Step::Plan { plan, scroll: 0 },
        source: Some(req.source.clone()),
        target: Some(req.target.clone()),
        options: req.options,
        image: None,
    }));
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "yes");
    match keys(&mut m, &[Key::Enter]).pop() {
        Some(Effect::Start { confirmed: c, .. }) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_confirmed_restore_onto_a_larger_file_is_valid_and_grown() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("dst.img");
    fixture::sparse_file(&dst, 96 * MIB).unwrap();
    let summary = tui::jobs::summarize(gpt_lbi()).unwrap();
    assert_eq!(summary.parts.len(), 2);
    assert!(summary.whole_disk);
    assert!(summary.parts.iter().all(|p| p.restorable));
    assert!(
        summary.needs > 33 * MIB && summary.needs < 34 * MIB,
        "{}",
        summary.needs
    );
    let req = PlanRequest {
        action: Action::RestoreDisk,
        source: file_endpoint(gpt_lbi(), 64 * MIB, Some("gpt")),
        target: file_endpoint(&dst, 96 * MIB, None),
        options: JobOptions {
            grow_last: true,
            verify: true,
            ..Default::default()
        },
    };
    let root = disk::SysRoot::default();
    let plan = Arc::new(tui::jobs::plan(&root, &req).unwrap());
    assert!(
        plan.text().contains("invalidate the partition table"),
        "{}",
        plan.text()
    );
    let confirmed = confirm(plan, &req);
    let outcome = tui::jobs::execute(&confirmed, &|_| {}, &Cancel::new());
    assert_eq!(
        outcome.status,
        engine::job::Status::Completed,
        "{outcome:?}"
    );
    match &outcome.step {
        Some(engine::job::StepReport::Restore(r)) => assert!(r.verified),
        other => panic!("{other:?}"),
    }
    let (code, out) = fixture::run_status("sgdisk", &["-v", dst.to_str().unwrap()]).unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No problems found"), "{out}");
    let p1 = dir.path().join("p1.img");
    fixture::extract(&dst, MIB, 16 * MIB, &p1).unwrap();
    let (code, out) = fixture::run_status("e2fsck", &["-fn", p1.to_str().unwrap()]).unwrap();
    assert_eq!(code, 0, "{out}");
    let src_p1 = dir.path().join("src-p1.img");
    fixture::extract(gpt_image(), MIB, 16 * MIB, &src_p1).unwrap();
    assert_eq!(
        fixture::sha256(&p1).unwrap(),
        fixture::sha256(&src_p1).unwrap()
    );
    // The last partition grew to the end of the larger disk.
    let out = fixture::run("sgdisk", &["-i", "2", dst.to_str().unwrap()]).unwrap();
    assert!(!out.contains("16.0 MiB"), "{out}");
}

#[test]
fn a_partition_restores_into_a_partition_file_byte_for_byte_in_used_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("p1.img");
    fixture::sparse_file(&dst, 16 * MIB).unwrap();
    let mut source = file_endpoint(gpt_lbi(), 16 * MIB, None);
    source.number = Some(1);
    let req = PlanRequest {
        action: Action::RestorePartition,
        source,
        target: file_endpoint(&dst, 16 * MIB, None),
        options: JobOptions::default(),
    };
    let root = disk::SysRoot::default();
    let plan = Arc::new(tui::jobs::plan(&root, &req).unwrap());
    let confirmed = confirm(plan, &req);
    let outcome = tui::jobs::execute(&confirmed, &|_| {}, &Cancel::new());
    assert_eq!(
        outcome.status,
        engine::job::Status::Completed,
        "{outcome:?}"
    );
    let (code, out) = fixture::run_status("e2fsck", &["-fn", dst.to_str().unwrap()]).unwrap();
    assert_eq!(code, 0, "{out}");
    let src_p1 = dir.path().join("src-p1.img");
    fixture::extract(gpt_image(), MIB, 16 * MIB, &src_p1).unwrap();
    assert_eq!(
        fixture::sha256(&dst).unwrap(),
        fixture::sha256(&src_p1).unwrap()
    );
}

#[test]
fn planning_refuses_a_too_small_target_with_the_shortfall() {
    let dir = tempfile::tempdir().unwrap();
    // Smaller than one of its partitions (a disk the partitions fit on by shrinking is planned:
    // cli/tests/shrink.rs).
    let dst = dir.path().join("small.img");
    fixture::sparse_file(&dst, 8 * MIB).unwrap();
    let req = PlanRequest {
        action: Action::RestoreDisk,
        source: file_endpoint(gpt_lbi(), 64 * MIB, Some("gpt")),
        target: file_endpoint(&dst, 8 * MIB, None),
        options: JobOptions::default(),
    };
    let err = tui::jobs::plan(&disk::SysRoot::default(), &req)
        .unwrap_err()
        .to_string();
    assert!(err.contains("too small"), "{err}");
    assert!(err.contains("bytes short"), "{err}");
}

#[test]
fn an_incomplete_image_cannot_be_summarized_or_planned() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(gpt_lbi()).unwrap();
    let cut = dir.path().join("cut.lbi");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(tui::jobs::summarize(&cut).is_err());
    let dst = dir.path().join("dst.img");
    fixture::sparse_file(&dst, 96 * MIB).unwrap();
    let req = PlanRequest {
        action: Action::RestoreDisk,
        source: file_endpoint(&cut, 64 * MIB, Some("gpt")),
        target: file_endpoint(&dst, 96 * MIB, None),
        options: JobOptions::default(),
    };
    assert!(tui::jobs::plan(&disk::SysRoot::default(), &req).is_err());
}

#[test]
fn every_restore_screen_fits_80_columns_and_survives_tiny_and_huge_terminals() {
    let check = |m: &Model| {
        let help = tui::app::help_text(m);
        assert!(help.chars().count() <= 80, "help line too long: {help}");
        for (w, h) in [(80, 25), (20, 5), (1, 1), (200, 60)] {
            let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
            t.draw(|f| view(m, f)).unwrap();
        }
    };
    let mut m = on_browser();
    check(&m);
    for k in [Key::Down, Key::Enter, Key::Enter, Key::Down, Key::Enter] {
        keys(&mut m, &[k]);
        check(&m);
    }
    assert!(matches!(wizard(&m).step, Step::Options { .. }));
}

#[test]
fn a_cancelled_restore_says_the_disk_has_no_valid_table_and_it_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("dst.img");
    // The target held a valid disk before: after the cancelled restore it must not look like one.
    make_gpt(&dst, dir.path());
    let req = PlanRequest {
        action: Action::RestoreDisk,
        source: file_endpoint(gpt_lbi(), 64 * MIB, Some("gpt")),
        target: file_endpoint(&dst, 64 * MIB, None),
        options: JobOptions::default(),
    };
    let root = disk::SysRoot::default();
    let plan = Arc::new(tui::jobs::plan(&root, &req).unwrap());
    let confirmed = confirm(plan, &req);
    let cancel = Cancel::new();
    cancel.cancel();
    let outcome = tui::jobs::execute(&confirmed, &|_| {}, &cancel);
    assert_eq!(
        outcome.status,
        engine::job::Status::Cancelled,
        "{outcome:?}"
    );
    // The engine's error names the state the cancellation left the target in.
    let state = outcome.error.clone().unwrap();
    assert!(state.contains("no partition table"), "{state}");
    // sgdisk finds no table (it makes an empty one in memory), nor does the engine.
    let out = fixture::run("sgdisk", &["-v", dst.to_str().unwrap()]).unwrap();
    assert!(out.contains("Creating new GPT entries"), "{out}");
    let report = engine::inspect(&dst).unwrap();
    assert!(
        !matches!(report.content, engine::Content::Table { .. }),
        "{:?}",
        report.content
    );
}
