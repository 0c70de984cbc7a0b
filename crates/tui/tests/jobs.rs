//! The worker side of a job on disk image files: the safety check and plan, then the confirmed
//! execution, checked by sgdisk -v, e2fsck -fn and fsck.vfat -n.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::Cancel;
use qemu_tests::fixture;
use std::sync::{Arc, Mutex};
use tui::model::{Action, Endpoint, JobOptions, PlanRequest};

fn file_endpoint(path: &std::path::Path, len: u64) -> Endpoint {
    Endpoint {
        path: path.to_path_buf(),
        offset: 0,
        len,
        disk: path.to_path_buf(),
        number: None,
        label: path.display().to_string(),
        identity: format!("file {}", path.display()),
        table: Some("gpt".into()),
        needs: len,
    }
}

#[test]
fn a_confirmed_clone_of_image_files_is_a_valid_copy_grown_to_the_larger_target() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.img");
    make_gpt(&src, dir.path());
    let dst = dir.path().join("dst.img");
    fixture::sparse_file(&dst, 96 * MIB).unwrap();
    let req = PlanRequest {
        action: Action::CloneDisk,
        source: file_endpoint(&src, 64 * MIB),
        target: file_endpoint(&dst, 96 * MIB),
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
    assert!(plan.identity().contains("dst.img"));
    // Only the confirmation screen can confirm: drive the model to it.
    let mut m = model();
    m.screen = tui::model::Screen::Wizard(Box::new(tui::screens::transfer::Wizard {
        action: Action::CloneDisk,
        step: tui::screens::transfer::Step::Plan { plan, scroll: 0 },
        source: Some(req.source.clone()),
        target: Some(req.target.clone()),
        options: req.options,
        image: None,
    }));
    keys(&mut m, &[tui::Key::Enter]);
    typed(&mut m, "yes");
    let confirmed = match keys(&mut m, &[tui::Key::Enter]).pop() {
        Some(tui::Effect::Start { confirmed: c, .. }) => c,
        other => panic!("{other:?}"),
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let sink = move |p: &engine::Progress| seen.lock().unwrap().push(p.clone());
    let outcome = tui::jobs::execute(&confirmed, &sink, &Cancel::new());
    assert_eq!(
        outcome.status,
        engine::job::Status::Completed,
        "{outcome:?}"
    );
    match &outcome.step {
        Some(engine::job::StepReport::Copy(r)) => assert!(r.verified),
        other => panic!("{other:?}"),
    }
    assert!(outcome.bad_sectors.is_empty());
    assert!(events.lock().unwrap().last().unwrap().finished);
    // The file system of the last partition (vfat) cannot grow: the note says so.
    let report = outcome.report();
    assert!(report.contains("partition 2 grew"), "{report}");
    let (code, out) = fixture::run_status("sgdisk", &["-v", dst.to_str().unwrap()]).unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No problems found"), "{out}");
    let p1 = dir.path().join("p1.img");
    fixture::extract(&dst, MIB, 16 * MIB, &p1).unwrap();
    let (code, out) = fixture::run_status("e2fsck", &["-fn", p1.to_str().unwrap()]).unwrap();
    assert_eq!(code, 0, "{out}");
    let src_p1 = dir.path().join("src-p1.img");
    fixture::extract(&src, MIB, 16 * MIB, &src_p1).unwrap();
    assert_eq!(
        fixture::sha256(&p1).unwrap(),
        fixture::sha256(&src_p1).unwrap()
    );
}

#[test]
fn planning_refuses_a_target_that_is_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.img");
    make_gpt(&src, dir.path());
    let req = PlanRequest {
        action: Action::CloneDisk,
        source: file_endpoint(&src, 64 * MIB),
        target: file_endpoint(&src, 64 * MIB),
        options: JobOptions::default(),
    };
    let err = tui::jobs::plan(&disk::SysRoot::default(), &req).unwrap_err();
    assert!(err.to_string().contains("it is the source"), "{err}");
}

#[test]
fn cancelling_a_copy_leaves_no_valid_file_system_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.img");
    make_gpt(&src, dir.path());
    let dst = dir.path().join("part.img");
    fixture::sparse_file(&dst, 16 * MIB).unwrap();
    let mut source = file_endpoint(&src, 16 * MIB);
    source.offset = MIB;
    source.number = Some(1);
    let req = PlanRequest {
        action: Action::CopyPartition,
        source,
        target: file_endpoint(&dst, 16 * MIB),
        options: JobOptions::default(),
    };
    let root = disk::SysRoot::default();
    let plan = Arc::new(tui::jobs::plan(&root, &req).unwrap());
    let mut m = model();
    m.screen = tui::model::Screen::Wizard(Box::new(tui::screens::transfer::Wizard {
        action: Action::CopyPartition,
        step: tui::screens::transfer::Step::Confirm {
            plan,
            typed: String::new(),
            wrong: false,
        },
        source: Some(req.source.clone()),
        target: Some(req.target.clone()),
        options: req.options,
        image: None,
    }));
    typed(&mut m, "yes");
    let confirmed = match keys(&mut m, &[tui::Key::Enter]).pop() {
        Some(tui::Effect::Start { confirmed: c, .. }) => c,
        other => panic!("{other:?}"),
    };
    let cancel = Cancel::new();
    cancel.cancel();
    let outcome = tui::jobs::execute(&confirmed, &|_| {}, &cancel);
    assert_eq!(
        outcome.status,
        engine::job::Status::Cancelled,
        "{outcome:?}"
    );
    assert_eq!(
        outcome.error.as_deref(),
        Some("cancelled: the target holds no valid file system")
    );
    let (code, _) = fixture::run_status("e2fsck", &["-fn", dst.to_str().unwrap()]).unwrap();
    assert_ne!(
        code, 0,
        "the interrupted copy must not look like a file system"
    );
}
