//! Back up from the keyboard: source, destination folder, options, plan, run, result — `update`
//! without a terminal, the screens at 80×25, and the worker functions making a real image of a
//! disk made by sgdisk and mkfs, restored by the engine and checked with sgdisk -v and e2fsck.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::rescue::BadSectorMap;
use engine::Cancel;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tui::model::{BackupJob, BackupRequest, BackupSettings, BackupSource, BrowseEntry, Screen};
use tui::screens::backup::BackupScreen;
use tui::screens::verify::VerifyScreen;
use tui::{update, Effect, Key, Model, Msg};

fn root() -> PathBuf {
    PathBuf::from("/run/lifeboat/mnt")
}

fn screen(m: &Model) -> &BackupScreen {
    match &m.screen {
        Screen::Backup(b) => b,
        other => panic!("not backing up: {other:?}"),
    }
}

fn listed(m: &mut Model, dir: PathBuf, entries: Vec<BrowseEntry>) {
    assert_eq!(m.screen.browser().unwrap().dir, dir, "the folder shown");
    let effects = answer(m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(entries),
    });
    assert!(effects.is_empty());
}

/// From the main screen with sda selected to the drive folder `/run/lifeboat/mnt/sdb1`, which
/// holds one image.
fn at_drive_folder() -> Model {
    at_drive_folder_holding(vec![BrowseEntry::Image {
        path: root().join("sdb1/old.lbi"),
        summary: Err("old.lbi is incomplete".into()),
    }])
}

/// The same, with `images` listed in the drive folder.
fn at_drive_folder_holding(images: Vec<BrowseEntry>) -> Model {
    let mut m = model();
    let e = keys(&mut m, &[Key::Char('a')]);
    assert!(e.is_empty());
    assert!(matches!(screen(&m), BackupScreen::PickSource { cursor: 0 }));
    let e = keys(&mut m, &[Key::Enter]);
    assert!(matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root()));
    listed(&mut m, root(), vec![BrowseEntry::Dir(root().join("sdb1"))]);
    let e = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root().join("sdb1"))
    );
    let mut entries = vec![BrowseEntry::Up];
    entries.extend(images);
    listed(&mut m, root().join("sdb1"), entries);
    m
}

/// The request `s` makes in the drive folder.
fn request_from_s(m: &mut Model) -> BackupRequest {
    let e = keys(m, &[Key::Char('s')]);
    match e.as_slice() {
        [Effect::PlanBackup { request: r, .. }] => (**r).clone(),
        other => panic!("{other:?}"),
    }
}

/// The job a worker would plan for `request`, reading the tests' GPT disk, with `free` bytes
/// free and a FAT destination or not.
fn job_for(request: BackupRequest, free: u64, fat: bool) -> Arc<BackupJob> {
    planned_backup_on(&request, free, fat)
}

fn report(image: &Path, bad: bool) -> engine::backup::BackupReport {
    let mut map = BadSectorMap::default();
    if bad {
        map.add(4096, 1024);
    }
    engine::backup::BackupReport {
        image: image.to_path_buf(),
        volumes: vec![image.to_path_buf()],
        bytes_read: 34 * MIB,
        bytes_written: 9 * MIB,
        seconds: 3.0,
        bad_sectors: map,
        notes: Vec::new(),
    }
}

/// To the options screen of a planned backup of sda into sdb1.
fn at_options(free: u64, fat: bool) -> (Model, Arc<BackupJob>) {
    let mut m = at_drive_folder();
    let req = request_from_s(&mut m);
    let job = job_for(req, free, fat);
    assert!(answer(&mut m, plan_id, |id| Msg::BackupPlanned {
        id,
        result: Ok(Arc::clone(&job))
    })
    .is_empty());
    (m, job)
}

#[test]
fn backup_lists_disks_and_partitions_and_refuses_a_disk_without_table_or_file_system() {
    let mut m = model();
    keys(&mut m, &[Key::Char('a')]);
    let list = tui::screens::backup::backup_sources(&m);
    let (c, s) = &list[0];
    assert_eq!(s.disk, PathBuf::from("/dev/sda"));
    assert_eq!(s.part, None);
    assert!(c.refusal.is_none());
    let (_, p2) = &list[2];
    assert_eq!(
        (p2.disk.clone(), p2.part),
        (PathBuf::from("/dev/sda"), Some(2))
    );
    // sdb is blank: refused, and Enter says why without leaving the list.
    let blank = list
        .iter()
        .position(|(_, s)| s.disk == Path::new("/dev/sdb"))
        .unwrap();
    assert!(list[blank].0.refusal.is_some());
    keys(&mut m, &vec![Key::Down; blank]);
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    assert!(matches!(screen(&m), BackupScreen::PickSource { .. }));
    assert!(
        m.status.as_deref().unwrap().contains("no partition table"),
        "{:?}",
        m.status
    );
    assert!(keys(&mut m, &[Key::Esc]).is_empty());
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn the_source_list_starts_on_the_partition_selected_in_the_tree() {
    let mut m = model();
    // Rows: sda, sda1, sda2, ...
    keys(&mut m, &[Key::Down, Key::Down]);
    keys(&mut m, &[Key::Char('a')]);
    let BackupScreen::PickSource { cursor } = screen(&m) else {
        panic!()
    };
    let list = tui::screens::backup::backup_sources(&m);
    assert_eq!(list[*cursor].1.part, Some(2));
}

#[test]
fn the_folder_must_be_on_a_mounted_drive_and_images_are_not_overwritten() {
    let mut m = model();
    keys(&mut m, &[Key::Char('a'), Key::Enter]);
    listed(&mut m, root(), vec![BrowseEntry::Dir(root().join("sdb1"))]);
    let text = render(&m).join("\n");
    assert!(
        text.contains("Open the folder of a mounted drive"),
        "{text}"
    );
    // The top folder is in memory.
    assert!(keys(&mut m, &[Key::Char('s')]).is_empty());
    let BackupScreen::PickFolder { browser, .. } = screen(&m) else {
        panic!()
    };
    assert!(browser
        .refused
        .as_deref()
        .unwrap()
        .contains("mounted drive"));

    let mut m = at_drive_folder();
    let text = render(&m).join("\n");
    assert!(
        text.contains("s saves the new image in /run/lifeboat/mnt/sdb1"),
        "{text}"
    );
    keys(&mut m, &[Key::Down]);
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    let BackupScreen::PickFolder { browser, .. } = screen(&m) else {
        panic!()
    };
    assert!(browser
        .refused
        .as_deref()
        .unwrap()
        .contains("never overwritten"));
    // Esc goes back to the source list, on the source picked.
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(screen(&m), BackupScreen::PickSource { cursor: 0 }));
}

#[test]
fn saving_in_a_folder_plans_with_the_default_name_and_esc_or_a_refusal_go_back_to_the_folder() {
    let mut m = at_drive_folder();
    let req = request_from_s(&mut m);
    assert_eq!(req.dir, root().join("sdb1"));
    let today = tui::jobs::today();
    assert_eq!(req.name, format!("Samsung_SSD_870-S6PU1-{today}.lbi"));
    assert_eq!(req.source.disk, PathBuf::from("/dev/sda"));
    assert!(matches!(screen(&m), BackupScreen::Planning { .. }));
    let late = plan_id(&m);
    // Esc while planning: back to the folder, which is read again.
    let e = keys(&mut m, &[Key::Esc]);
    assert!(
        matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root().join("sdb1"))
    );
    assert!(matches!(screen(&m), BackupScreen::PickFolder { .. }));
    // A late answer is dropped.
    let job = job_for(req.clone(), 1 << 40, false);
    update(
        &mut m,
        Msg::BackupPlanned {
            id: late,
            result: Ok(job),
        },
    );
    assert!(matches!(screen(&m), BackupScreen::PickFolder { .. }));

    listed(&mut m, root().join("sdb1"), vec![BrowseEntry::Up]);
    request_from_s(&mut m);
    let reason = "/run/lifeboat/mnt/sdb1/x.lbi: it is on /dev/sda, the disk being backed up";
    answer(&mut m, plan_id, |id| Msg::BackupPlanned {
        id,
        result: Err(reason.into()),
    });
    let text = render(&m).join("\n");
    assert!(text.contains("the disk being backed up"), "{text}");
    let e = keys(&mut m, &[Key::Enter]);
    assert!(matches!(e.as_slice(), [Effect::ListImages { dir: _, .. }]));
    assert!(matches!(screen(&m), BackupScreen::PickFolder { .. }));
}

#[test]
fn a_taken_default_name_gets_the_next_free_number_ignoring_case() {
    use tui::screens::backup::free_image_name;
    let taken = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        free_image_name("pc-2026.lbi", &taken(&["old.lbi"])),
        "pc-2026.lbi"
    );
    assert_eq!(
        free_image_name("pc-2026.lbi", &taken(&["PC-2026.LBI", "pc-2026-2.lbi"])),
        "pc-2026-3.lbi"
    );
}

#[test]
fn s_in_a_folder_already_holding_todays_image_of_the_disk_names_the_new_one_dash_2() {
    let mut m = at_drive_folder();
    let first = request_from_s(&mut m);
    // The same folder listed again with the first backup's image in it (a second backup of the
    // same disk on the same day).
    let stem = first.name.strip_suffix(".lbi").unwrap().to_string();
    let mut m = at_drive_folder_holding(vec![BrowseEntry::Image {
        path: root().join("sdb1").join(&first.name),
        summary: Err("incomplete".into()),
    }]);
    let second = request_from_s(&mut m);
    assert_eq!(second.name, format!("{stem}-2.lbi"));
    assert_eq!(second.dir, first.dir);
}

#[test]
fn default_names_are_sanitized_and_fall_back_to_the_device_name() {
    let src = |model: &str, serial: &str, part| BackupSource {
        endpoint: tui::inventory::disk_endpoint(&machine()[0]),
        disk: PathBuf::from("/dev/nvme0n1"),
        part,
        model: model.into(),
        serial: serial.into(),
    };
    assert_eq!(
        tui::screens::backup::default_image_name(
            &src("WDC WD10/EZEX  ", " WD-123 ", None),
            "2026-11-22"
        ),
        "WDC_WD10_EZEX-WD-123-2026-11-22.lbi"
    );
    assert_eq!(
        tui::screens::backup::default_image_name(&src("", "", Some(3)), "2026-11-22"),
        "nvme0n1-p3-2026-11-22.lbi"
    );
    assert_eq!(
        tui::screens::backup::default_image_name(&src("../../etc", "", None), "2026-11-22"),
        "etc-2026-11-22.lbi"
    );
}

#[test]
fn options_cycle_the_level_and_fat_forces_the_split() {
    let (mut m, _) = at_options(1 << 40, false);
    let settings = |m: &Model| match screen(m) {
        BackupScreen::Options { settings, .. } => settings.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(settings(&m), BackupSettings::default());
    keys(&mut m, &[Key::Char(' ')]);
    assert_eq!(settings(&m).level, 9);
    keys(&mut m, &[Key::Char(' '), Key::Char(' ')]);
    assert_eq!(settings(&m).level, 1);
    keys(
        &mut m,
        &[Key::Down, Key::Char(' '), Key::Down, Key::Char(' ')],
    );
    assert!(settings(&m).split_4g);
    assert!(settings(&m).verify);

    let (mut m, _) = at_options(1 << 40, true);
    assert!(settings(&m).split_4g);
    keys(&mut m, &[Key::Down, Key::Char(' ')]);
    assert!(settings(&m).split_4g);
    assert!(
        m.status.as_deref().unwrap().contains("FAT"),
        "{:?}",
        m.status
    );
    let text = render(&m).join("\n");
    assert!(text.contains("split into volumes below 4 GiB"), "{text}");
}

#[test]
fn the_plan_warns_when_the_estimate_exceeds_the_free_space_and_enter_starts_the_backup() {
    let (mut m, job) = at_options(MIB, false);
    assert!(job.space_warning().is_some());
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(screen(&m), BackupScreen::Plan { .. }));
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(lines[0].contains("Back up - step 4 of 5: plan"), "{text}");
    assert!(text.contains("back up"), "{text}");
    assert!(text.contains("Warning: the image may not fit"), "{text}");
    assert!(text.contains("an estimate"), "{text}");
    assert!(lines[24].contains("Enter start the backup"), "{text}");
    // Esc goes back to the options; Enter twice starts.
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(screen(&m), BackupScreen::Options { .. }));
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    let e = keys(&mut m, &[Key::Enter]);
    match e.as_slice() {
        [Effect::StartBackup {
            job: j, settings, ..
        }] => {
            assert!(Arc::ptr_eq(j, &job));
            assert_eq!(*settings, BackupSettings::default());
        }
        other => panic!("{other:?}"),
    }
    assert!(m.job_running());
}

#[test]
fn a_running_backup_asks_before_stopping_and_reports_the_cancellation() {
    let (mut m, job) = at_options(1 << 40, false);
    keys(&mut m, &[Key::Enter, Key::Enter]);
    assert!(keys(&mut m, &[Key::Esc]).is_empty());
    let text = render(&m).join("\n");
    assert!(text.contains("partial image is deleted"), "{text}");
    assert!(keys(&mut m, &[Key::Char('n')]).is_empty());
    keys(&mut m, &[Key::Esc]);
    let e = keys(&mut m, &[Key::Char('y')]);
    assert!(matches!(e.as_slice(), [Effect::CancelJob { .. }]));
    answer(&mut m, job_id, |id| Msg::BackupDone {
        id,
        outcome: outcome(
            engine::job::Status::Cancelled,
            Some("cancelled: the partial image was deleted"),
        ),
    });
    assert!(!m.job_running());
    let text = render(&m).join("\n");
    assert!(text.contains("Backup cancelled."), "{text}");
    assert!(text.contains(&job.image().display().to_string()), "{text}");
    // No verify for a failed backup.
    assert!(keys(&mut m, &[Key::Char('v')]).is_empty());
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn the_result_shows_image_size_and_bad_sectors_and_v_verifies_it() {
    let (mut m, job) = at_options(1 << 40, false);
    keys(&mut m, &[Key::Enter, Key::Enter]);
    answer(&mut m, job_id, |id| Msg::BackupDone {
        id,
        outcome: backup_outcome(report(&job.image(), true)),
    });
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(
        text.contains("Backup finished, with skipped unreadable sectors."),
        "{text}"
    );
    assert!(
        text.contains("result: OK, with skipped unreadable sectors"),
        "{text}"
    );
    assert!(
        text.contains("Image    /run/lifeboat/mnt/sdb1/Samsung_SSD_870"),
        "{text}"
    );
    assert!(text.contains("9.0 MiB in 1 volume"), "{text}");
    assert!(text.contains("1 ranges could not be read"), "{text}");
    assert!(lines[24].contains("v verify"), "{text}");
    let e = keys(&mut m, &[Key::Char('v')]);
    assert!(matches!(e.as_slice(), [Effect::VerifyImage { image: p, .. }] if *p == job.image()));
    assert!(matches!(&m.screen, Screen::Verify(v) if matches!(**v, VerifyScreen::Running { .. })));
}

#[test]
fn with_verify_chosen_a_finished_backup_goes_straight_to_verify() {
    let (mut m, job) = at_options(1 << 40, false);
    keys(
        &mut m,
        &[Key::Down, Key::Down, Key::Char(' '), Key::Enter, Key::Enter],
    );
    let e = answer(&mut m, job_id, |id| Msg::BackupDone {
        id,
        outcome: backup_outcome(report(&job.image(), false)),
    });
    assert!(matches!(e.as_slice(), [Effect::VerifyImage { image: p, .. }] if *p == job.image()));
    assert!(m.status.as_deref().unwrap().contains("now verifying"));
    assert!(m.job_running());
}

#[test]
fn the_source_and_options_screens_fit_80x25() {
    let mut m = model();
    keys(&mut m, &[Key::Char('a')]);
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(lines[0].contains("Back up - step 1 of 5: source"), "{text}");
    assert!(text.contains("Back up which disk or partition?"), "{text}");
    assert!(text.contains("sda1"), "{text}");
    let (m, _) = at_options(1 << 40, false);
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(
        text.contains("Compression level 3 (fast, the default)"),
        "{text}"
    );
    assert!(
        text.contains("Split into volumes below 4 GiB: no"),
        "{text}"
    );
    assert!(text.contains("Free   1.0 TiB there"), "{text}");
    assert!(!text.contains("Warning"), "{text}");
}

#[test]
fn a_real_backup_through_the_jobs_restores_to_a_valid_disk() {
    let dir = tempfile::tempdir().unwrap();
    let src_img = dir.path().join("source.img");
    make_gpt(&src_img, dir.path());
    let source = BackupSource {
        endpoint: tui::inventory::disk_endpoint(&machine()[0]),
        disk: src_img.clone(),
        part: None,
        model: "QEMU HARDDISK".into(),
        serial: "QM0001".into(),
    };
    let out = dir.path().join("drive");
    std::fs::create_dir(&out).unwrap();
    let request = BackupRequest {
        name: tui::screens::backup::default_image_name(&source, "2026-11-22"),
        source,
        dir: out.clone(),
        key: None,
        decrypted: false,
    };
    let job = tui::jobs::plan_backup(&disk::SysRoot::default(), &request).unwrap();
    assert!(!job.fat());
    assert!(job.free().unwrap() > 0);
    let image = out.join("QEMU_HARDDISK-QM0001-2026-11-22.lbi");
    assert_eq!(job.image(), image);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let sink = move |p: &engine::Progress| seen2.lock().unwrap().push(p.done);
    let settings = BackupSettings {
        level: 1,
        split_4g: true,
        verify: false,
        password: None,
    };
    let root = disk::SysRoot::default();
    let outcome = tui::jobs::execute_backup(&root, &job, &settings, &sink, &Cancel::new());
    assert_eq!(
        outcome.status,
        engine::job::Status::Completed,
        "{outcome:?}"
    );
    let r = match outcome.step {
        Some(engine::job::StepReport::Backup(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.image, image);
    assert!(r.bad_sectors.is_empty());
    assert!(!seen.lock().unwrap().is_empty());
    // A second backup with the same name is refused: images are never overwritten.
    let again = tui::jobs::plan_backup(&disk::SysRoot::default(), &request).unwrap_err();
    assert!(again.contains("never overwritten"), "{again}");
    // The image summarizes and restores to a disk that sgdisk and e2fsck accept.
    let s = tui::jobs::summarize(&image).unwrap();
    assert_eq!(
        (s.model.as_str(), s.serial.as_str()),
        ("QEMU HARDDISK", "QM0001")
    );
    let reader = Arc::new(image::ImageReader::open(&image).unwrap());
    let target = dir.path().join("target.img");
    qemu_tests::fixture::sparse_file(&target, 64 * MIB).unwrap();
    let opts = engine::restore::RestoreOptions {
        grow_last: false,
        new_ids: false,
        verify: true,
        discard: false,
        threads: 0,
    };
    let name = target.display().to_string();
    let plan = engine::restore::plan_restore_disk(&reader, &name, 64 * MIB, None, &opts).unwrap();
    let consent = disk::WriteConsent::confirmed_by_user(&target, "test target");
    let dst = disk::FileDisk::open_write(&target, &consent).unwrap();
    engine::restore::execute_restore(&plan, &reader, &dst, &opts, None, &Cancel::new()).unwrap();
    drop(dst);
    qemu_tests::fixture::run("sgdisk", &["-v", target.to_str().unwrap()]).unwrap();
    let p1 = dir.path().join("p1.img");
    let bytes = std::fs::read(&target).unwrap();
    std::fs::write(&p1, &bytes[MIB as usize..(17 * MIB) as usize]).unwrap();
    qemu_tests::fixture::run("e2fsck", &["-fn", p1.to_str().unwrap()]).unwrap();
}

#[test]
fn a_cancelled_backup_leaves_no_image() {
    let dir = tempfile::tempdir().unwrap();
    let source = BackupSource {
        endpoint: tui::inventory::disk_endpoint(&machine()[0]),
        disk: gpt_image().to_path_buf(),
        part: Some(1),
        model: String::new(),
        serial: String::new(),
    };
    let request = BackupRequest {
        name: "p1.lbi".into(),
        source,
        dir: dir.path().to_path_buf(),
        key: None,
        decrypted: false,
    };
    let job = tui::jobs::plan_backup(&disk::SysRoot::default(), &request).unwrap();
    let cancel = Cancel::new();
    cancel.cancel();
    let root = disk::SysRoot::default();
    let o = tui::jobs::execute_backup(&root, &job, &BackupSettings::default(), &|_| {}, &cancel);
    assert_eq!(o.status, engine::job::Status::Cancelled, "{o:?}");
    assert!(!dir.path().join("p1.lbi").exists());
}

#[test]
fn small_splits_take_small_chunks() {
    use engine::backup::chunk_size_for;
    assert_eq!(chunk_size_for(None), image::DEFAULT_CHUNK_SIZE);
    assert_eq!(
        chunk_size_for(Some(tui::model::SPLIT_4G)),
        image::DEFAULT_CHUNK_SIZE
    );
    assert_eq!(chunk_size_for(Some(MIB)), 128 << 10);
    assert_eq!(chunk_size_for(Some(1)), 64 << 10);
}

#[test]
fn renaming_the_image_refuses_bad_names_plans_again_and_keeps_the_options() {
    let (mut m, job) = at_options(1 << 40, false);
    keys(&mut m, &[Key::Char(' ')]);
    keys(&mut m, &[Key::Char('n')]);
    let text = render(&m).join("\n");
    assert!(
        text.contains(&format!("File name: {}_", job.request.name)),
        "{text}"
    );
    // Erase it all, try a folder and a hidden name, then a good one without the extension.
    keys(&mut m, &[Key::Backspace; 80]);
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    typed(&mut m, "../x");
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    let text = render(&m).join("\n");
    assert!(text.contains("cannot contain /"), "{text}");
    keys(&mut m, &[Key::Backspace; 4]);
    typed(&mut m, ".x");
    keys(&mut m, &[Key::Enter]);
    assert!(render(&m).join("\n").contains("hidden"));
    keys(&mut m, &[Key::Backspace, Key::Backspace]);
    typed(&mut m, "laptop before repair");
    let e = keys(&mut m, &[Key::Enter]);
    let req = match e.as_slice() {
        [Effect::PlanBackup { request: r, .. }] => (**r).clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(req.name, "laptop before repair.lbi");
    assert_eq!(req.dir, job.request.dir);
    answer(&mut m, plan_id, |id| Msg::BackupPlanned {
        id,
        result: Ok(planned_backup(&req)),
    });
    match screen(&m) {
        BackupScreen::Options { settings, job, .. } => {
            assert_eq!(settings.level, 9);
            assert!(job.image().ends_with("laptop before repair.lbi"));
        }
        other => panic!("{other:?}"),
    }
    // Esc from the name field keeps the old name.
    keys(&mut m, &[Key::Char('n'), Key::Char('z'), Key::Esc]);
    assert!(
        matches!(screen(&m), BackupScreen::Options { job, .. } if job.request.name == "laptop before repair.lbi")
    );
}

#[test]
fn the_destination_offers_no_drive_of_the_disk_being_backed_up() {
    let mut m = model();
    keys(&mut m, &[Key::Char('a')]);
    assert!(matches!(screen(&m), BackupScreen::PickSource { cursor: 0 }));
    let e = keys(&mut m, &[Key::Enter]);
    assert!(matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root()));
    listed(&mut m, root(), Vec::new());
    let lines = render(&m);
    let text = lines.join("\n");
    // The source is sda: its partitions are not offered; the stick's free partition is.
    assert!(!lines.iter().any(|l| l.contains("  sda1 ")), "{text}");
    assert!(!lines.iter().any(|l| l.contains("  sda2 ")), "{text}");
    assert!(lines.iter().any(|l| l.contains("  sdd1 ")), "{text}");
    assert!(text.contains("Enter on a drive mounts it"), "{text}");
    // Enter on it asks to mount it.
    match keys(&mut m, &[Key::Enter]).as_slice() {
        [Effect::Mount { node, .. }] => assert_eq!(node, &std::path::PathBuf::from("/dev/sdd1")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn at_the_top_folder_a_mounted_drive_is_shown_as_a_drive_and_opens_with_enter() {
    let mut disks = machine();
    // The stick's partition 2 is mounted under the top folder (by m on the disk list).
    disks[3].device.partitions[1].mount_points = vec![root().join("sdd2")];
    let mut m = model();
    let _ = scanned(&mut m, Ok(disks));
    keys(&mut m, &[Key::Char('a')]);
    keys(&mut m, &[Key::Enter]);
    listed(
        &mut m,
        root(),
        vec![
            BrowseEntry::Dir(root().join("sdd2")),
            BrowseEntry::Dir(root().join("leftover")),
        ],
    );
    let lines = render(&m);
    let text = lines.join("\n");
    // The mounted folder is a drive row: name, file system and label, size, free space.
    let row = lines
        .iter()
        .find(|l| l.contains("  sdd2 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.contains("vfat \"DATA\"") && row.contains("16.0 MiB") && row.contains("free"),
        "{text}"
    );
    assert!(row.contains("mounted"), "{text}");
    assert!(!text.contains("sdd2/"), "{text}");
    // A folder no drive is mounted on is still a folder.
    assert!(text.contains("  leftover/"), "{text}");
    assert!(
        text.contains("Drive sdd2: vfat \"DATA\", 16.0 MiB, mounted on /run/lifeboat/mnt/sdd2."),
        "{text}"
    );
    // The unmounted sdd1 is offered after it, to mount.
    assert!(lines.iter().any(|l| l.contains("  sdd1 ")), "{text}");
    // Enter opens it.
    let e = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root().join("sdd2")),
        "{e:?}"
    );
}

#[test]
fn encrypt_image_asks_for_the_password_twice_masked_and_the_backup_is_encrypted_with_it() {
    let (mut m, _job) = at_options(1 << 40, false);
    keys(&mut m, &[Key::Down, Key::Down, Key::Down, Key::Char(' ')]);
    assert!(matches!(screen(&m), BackupScreen::Password { .. }));
    typed(&mut m, "first try");
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "first trx");
    let text = render(&m).join("\n");
    assert!(text.contains("Password:       *********_"), "{text}");
    assert!(text.contains("Type it again:  *********_"), "{text}");
    assert!(!text.contains("first"), "{text}");
    keys(&mut m, &[Key::Enter]);
    let text = render(&m).join("\n");
    assert!(text.contains("The two passwords differ"), "{text}");
    typed(&mut m, "right one");
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "right one");
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(
        screen(&m),
        BackupScreen::Options { cursor: 3, .. }
    ));
    assert!(render(&m).join("\n").contains("Encrypt image: yes"));
    keys(&mut m, &[Key::Enter]);
    assert!(render(&m)
        .join("\n")
        .contains("Encrypted: AES-256-GCM, key from the password by Argon2id"));
    let e = keys(&mut m, &[Key::Enter]);
    let settings = match e.as_slice() {
        [Effect::StartBackup { settings, .. }] => settings.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        settings
            .password
            .as_ref()
            .map(|p| p.passphrase().expose().to_vec()),
        Some(b"right one".to_vec())
    );
    assert!(!format!("{settings:?}").contains("right one"));

    // Those settings through the real job: the image is encrypted with that password.
    let dir = tempfile::tempdir().unwrap();
    let src_img = dir.path().join("source.img");
    make_gpt(&src_img, dir.path());
    let source = BackupSource {
        endpoint: tui::inventory::disk_endpoint(&machine()[0]),
        disk: src_img.clone(),
        part: None,
        model: "QEMU HARDDISK".into(),
        serial: "QM0001".into(),
    };
    let request = BackupRequest {
        name: "secret.lbi".into(),
        source,
        dir: dir.path().to_path_buf(),
        key: None,
        decrypted: false,
    };
    let job = tui::jobs::plan_backup(&disk::SysRoot::default(), &request).unwrap();
    let outcome = tui::jobs::execute_backup(
        &disk::SysRoot::default(),
        &job,
        &settings,
        &|_: &engine::Progress| {},
        &Cancel::new(),
    );
    assert_eq!(
        outcome.status,
        engine::job::Status::Completed,
        "{outcome:?}"
    );
    let image = dir.path().join("secret.lbi");
    assert!(image::is_encrypted(&image).unwrap());
    assert!(matches!(
        image::ImageReader::open(&image),
        Err(image::Error::PasswordRequired { .. })
    ));
    let pw = image::Passphrase::new(b"right one".to_vec());
    let r = image::ImageReader::open_with(&image, Some(&pw)).unwrap();
    assert!(r.verify(2).is_ok());
}

/// A backup planned of a bare LUKS2 volume (`cryptsetup luksFormat` on a file): without a key
/// it is copied whole.
fn locked_job(request: BackupRequest) -> Arc<BackupJob> {
    let dir = scratch().join("luks");
    std::fs::create_dir_all(&dir).unwrap();
    let luks = dir.join("luks.img");
    let key = dir.join("key");
    std::fs::write(&key, b"pw").unwrap();
    if !luks.exists() {
        qemu_tests::fixture::luks_format(&luks, 32 * MIB, "luks2", &key, &[]).unwrap();
    }
    let spec = engine::job::JobSpec::Backup(engine::job::BackupSpec {
        source: luks,
        image: dir.join(&request.name),
        part: None,
        options: engine::backup::BackupOptions::default(),
        all_unpartitioned: false,
        identity: None,
        key: None,
        decrypted: false,
        encryption: None,
    });
    let plan = engine::job::plan(spec, &this_machine()).unwrap();
    Arc::new(BackupJob { request, plan })
}

#[test]
fn an_encrypted_source_offers_a_masked_key_prompt_and_plans_again_with_the_key() {
    let mut m = at_drive_folder();
    let req = request_from_s(&mut m);
    // A source without encrypted volumes: no key prompt.
    let plain = job_for(req.clone(), 1 << 40, false);
    assert!(!plain.locked());
    let job = locked_job(req);
    assert!(job.locked());
    assert!(answer(&mut m, plan_id, |id| Msg::BackupPlanned {
        id,
        result: Ok(Arc::clone(&job))
    })
    .is_empty());
    assert!(
        render(&m).last().unwrap().contains("p passphrase"),
        "{:?}",
        render(&m)
    );
    assert!(keys(&mut m, &[Key::Char('p')]).is_empty());
    assert!(matches!(screen(&m), BackupScreen::Key { .. }));
    // Enter on nothing typed does nothing; the typed characters show as stars only.
    assert!(keys(
        &mut m,
        &[Key::Enter, Key::Char('p'), Key::Char('w'), Key::Char('q')]
    )
    .is_empty());
    let shown = render(&m).join("\n");
    assert!(
        shown.contains("Passphrase or recovery password: ***_"),
        "{shown}"
    );
    assert!(!shown.contains("pwq"), "{shown}");
    keys(&mut m, &[Key::Backspace]);
    let e = keys(&mut m, &[Key::Enter]);
    match e.as_slice() {
        [Effect::PlanBackup { request, .. }] => assert_eq!(
            request.key,
            Some(engine::unlock::Key::new(b"pw".to_vec())),
            "the planned request carries the key typed"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(screen(&m), BackupScreen::Planning { .. }));
}

#[test]
fn tab_at_the_key_prompt_asks_for_the_decrypted_file_system_and_says_what_that_means() {
    let mut m = at_drive_folder();
    let req = request_from_s(&mut m);
    let job = locked_job(req);
    answer(&mut m, plan_id, |id| Msg::BackupPlanned {
        id,
        result: Ok(Arc::clone(&job)),
    });
    keys(&mut m, &[Key::Char('p'), Key::Char('p'), Key::Char('w')]);
    let shown = render(&m).join("\n");
    assert!(shown.contains("[ ] Store the DECRYPTED"), "{shown}");
    assert!(!shown.contains("UNENCRYPTED"), "{shown}");
    keys(&mut m, &[Key::Tab]);
    let shown = render(&m).join("\n");
    assert!(shown.contains("[x] Store the DECRYPTED"), "{shown}");
    assert!(
        shown.contains("UNENCRYPTED") && shown.contains("without the key"),
        "{shown}"
    );
    // Tab twice is back to the encrypted copy; once more, and Enter plans it decrypted.
    keys(&mut m, &[Key::Tab, Key::Tab]);
    match keys(&mut m, &[Key::Enter]).as_slice() {
        [Effect::PlanBackup { request, .. }] => {
            assert!(request.decrypted);
            assert_eq!(request.key, Some(engine::unlock::Key::new(b"pw".to_vec())));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn esc_leaves_the_key_prompt_for_the_options() {
    let mut m = at_drive_folder();
    let req = request_from_s(&mut m);
    let job = locked_job(req);
    answer(&mut m, plan_id, |id| Msg::BackupPlanned {
        id,
        result: Ok(Arc::clone(&job)),
    });
    keys(&mut m, &[Key::Char('p'), Key::Char('x')]);
    assert!(keys(&mut m, &[Key::Esc]).is_empty());
    assert!(matches!(screen(&m), BackupScreen::Options { .. }));
}
