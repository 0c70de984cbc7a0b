//! Verify image from the keyboard: the image browser, the run, the result — `update` without a
//! terminal, the screens at 80×25, and the worker functions on real images made by the backup
//! engine from a disk made by sgdisk and mkfs.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::backup::{BackupOptions, SourceIdentity};
use engine::Cancel;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tui::model::{BrowseEntry, ImageSummary, Screen};
use tui::screens::verify::VerifyScreen;
use tui::{update, Effect, Key, Model, Msg};

pub fn summary() -> ImageSummary {
    ImageSummary {
        model: "Samsung SSD 870".into(),
        serial: "S5Y1NX0R".into(),
        created: "2026-11-22T03:14:34Z".into(),
        source_size: 64 * MIB,
        table: Some("gpt".into()),
        partitions: vec![
            "#1     16 MiB ext4 \"ROOT\"".into(),
            "#2     16 MiB vfat \"DATA\"".into(),
        ],
        stored: 9 * MIB,
        volumes: 1,
        file_size: 5 << 20,
        bad_ranges: 0,
        whole_disk: true,
        needs: 33 * MIB + 16384 + 512,
        parts: vec![
            tui::model::ImagePart {
                number: 1,
                size: 16 * MIB,
                fs: "ext4".into(),
                label: "ROOT".into(),
                restorable: true,
            },
            tui::model::ImagePart {
                number: 2,
                size: 16 * MIB,
                fs: "vfat".into(),
                label: "DATA".into(),
                restorable: true,
            },
        ],
    }
}

fn root() -> PathBuf {
    PathBuf::from("/run/lifeboat/mnt")
}

/// A listing of the top folder: one drive folder.
fn top_listing() -> Vec<BrowseEntry> {
    vec![BrowseEntry::Dir(root().join("sdb1"))]
}

/// A listing of the drive: a folder, a good image and an incomplete one.
fn drive_listing() -> Vec<BrowseEntry> {
    let d = root().join("sdb1");
    vec![
        BrowseEntry::Up,
        BrowseEntry::Dir(d.join("old")),
        BrowseEntry::Image {
            path: d.join("laptop.lbi"),
            summary: Ok(summary()),
        },
        BrowseEntry::Image {
            path: d.join("broken.lbi"),
            summary: Err("broken.lbi is incomplete: the backup was interrupted".into()),
        },
    ]
}

fn listed(m: &mut Model, dir: PathBuf, entries: Vec<BrowseEntry>) {
    assert_eq!(m.screen.browser().unwrap().dir, dir, "the folder shown");
    let effects = answer(m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(entries),
    });
    assert!(effects.is_empty());
}

/// The model on the drive folder with its listing.
fn on_drive() -> Model {
    let mut m = model();
    let e = keys(&mut m, &[Key::Char('i')]);
    assert!(matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root()));
    listed(&mut m, root(), top_listing());
    let e = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root().join("sdb1"))
    );
    listed(&mut m, root().join("sdb1"), drive_listing());
    m
}

fn browser(m: &Model) -> &tui::model::Browser {
    match &m.screen {
        Screen::Verify(v) => match &**v {
            VerifyScreen::Pick(b) => b,
            other => panic!("not browsing: {other:?}"),
        },
        other => panic!("not verifying: {other:?}"),
    }
}

#[test]
fn verify_opens_the_browser_on_the_mount_folder_and_esc_leaves_it() {
    let mut m = model();
    let e = keys(&mut m, &[Key::Char('i')]);
    assert!(matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root()));
    assert_eq!(browser(&m).dir, root());
    assert!(browser(&m).entries.is_none());
    assert!(keys(&mut m, &[Key::Esc]).is_empty());
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn enter_descends_into_a_folder_and_backspace_goes_up_but_never_above_the_top() {
    let mut m = on_drive();
    assert_eq!(browser(&m).dir, root().join("sdb1"));
    let e = keys(&mut m, &[Key::Backspace]);
    assert!(matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root()));
    listed(&mut m, root(), top_listing());
    // At the top, Backspace stays.
    assert!(keys(&mut m, &[Key::Backspace]).is_empty());
    assert_eq!(browser(&m).dir, root());
    // "../" goes up too.
    let mut m = on_drive();
    let e = keys(&mut m, &[Key::Home, Key::Enter]);
    assert!(matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root()));
}

#[test]
fn a_listing_of_another_folder_arriving_late_is_ignored() {
    let mut m = model();
    let e = keys(&mut m, &[Key::Char('i')]);
    let top = match e.as_slice() {
        [Effect::ListImages { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    listed(&mut m, root(), top_listing());
    keys(&mut m, &[Key::Enter]);
    listed(&mut m, root().join("sdb1"), drive_listing());
    // The top folder's listing again, answering the first request late.
    update(
        &mut m,
        Msg::Listed {
            id: top,
            result: Ok(top_listing()),
        },
    );
    assert_eq!(browser(&m).entries, Some(Ok(drive_listing())));
}

#[test]
fn an_incomplete_image_is_refused_with_its_error() {
    let mut m = on_drive();
    let e = keys(&mut m, &[Key::End, Key::Enter]);
    assert!(e.is_empty());
    let refused = browser(&m).refused.clone().unwrap();
    assert!(refused.contains("incomplete"), "{refused}");
    // Moving clears the refusal.
    keys(&mut m, &[Key::Up]);
    assert!(browser(&m).refused.is_none());
}

#[test]
fn choosing_a_good_image_starts_verify_and_the_user_may_stop_it() {
    let mut m = on_drive();
    let e = keys(&mut m, &[Key::Down, Key::Down, Key::Enter]);
    let image = root().join("sdb1/laptop.lbi");
    assert!(matches!(e.as_slice(), [Effect::VerifyImage { image: p, .. }] if *p == image));
    assert!(m.job_running());
    answer(&mut m, job_id, |id| Msg::Progress {
        id,
        progress: engine::Progress {
            phase: "verifying".into(),
            done: 3 * MIB,
            total: 12 * MIB,
            bytes_per_sec: 1e6,
            eta_secs: Some(9),
            elapsed_secs: 3.0,
            bad_bytes: 0,
            finished: false,
        },
    });
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(lines[0].contains("step 2 of 2: running"), "{text}");
    assert!(
        text.contains("Verifying /run/lifeboat/mnt/sdb1/laptop.lbi"),
        "{text}"
    );
    assert!(text.contains("25.0%"), "{text}");
    assert!(text.contains("3.0 MiB of 12.0 MiB"), "{text}");
    assert!(lines[24].contains("Esc stop"), "{text}");
    // Esc asks; n keeps going; Esc then y stops.
    assert!(keys(&mut m, &[Key::Esc, Key::Char('n')]).is_empty());
    let e = keys(&mut m, &[Key::Esc, Key::Char('y')]);
    assert!(matches!(e.as_slice(), [Effect::CancelJob { .. }]));
    match &m.screen {
        Screen::Verify(v) => assert!(matches!(
            &**v,
            VerifyScreen::Running { run, .. } if run.cancelling
        )),
        other => panic!("{other:?}"),
    }
    answer(&mut m, job_id, |id| Msg::Verified {
        id,
        result: Err("verify cancelled".into()),
    });
    assert!(!m.job_running());
    let lines = render(&m).join("\n");
    assert!(lines.contains("Verify did not complete."), "{lines}");
    // What to do next, with the key.
    assert!(lines.contains("Enter goes back to the disks"), "{lines}");
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn the_browser_shows_the_images_summary_at_80x25() {
    let mut m = on_drive();
    keys(&mut m, &[Key::Down, Key::Down]);
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(
        lines[0].contains("Verify image - step 1 of 2: image"),
        "{text}"
    );
    assert!(text.contains("/run/lifeboat/mnt/sdb1"), "{text}");
    assert!(text.contains("old/"), "{text}");
    assert!(text.contains("laptop.lbi"), "{text}");
    // Each image with its own file size (all volumes) and date; an unusable one flagged.
    let row = |name: &str| lines.iter().find(|l| l.contains(name)).unwrap().clone();
    assert!(
        row("laptop.lbi").contains("5.0 MiB  2026-11-22"),
        "the file's size, not the source's 64 MiB:\n{text}"
    );
    assert!(row("x broken.lbi").contains("incomplete"), "{text}");
    assert!(
        text.contains("File    5.0 MiB in 1 volume, holding 9.0 MiB of data"),
        "{text}"
    );
    assert!(
        text.contains("Source  Samsung SSD 870, serial S5Y1NX0R, 64.0 MiB (67.1 MB), gpt table"),
        "{text}"
    );
    assert!(text.contains("Made    2026-11-22 03:14:34Z"), "{text}");
    assert!(text.contains("#2     16 MiB vfat \"DATA\""), "{text}");
    assert!(lines[24].contains("Backspace up"), "{text}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80));
}

#[test]
fn unusable_images_are_flagged_by_what_is_wrong() {
    use tui::widgets::image_picker::unusable_flag;
    assert_eq!(
        unusable_flag("/m/a.lbi: incomplete image: backup was interrupted"),
        "incomplete"
    );
    assert_eq!(unusable_flag("missing volume /m/a.lbi.002"), "incomplete");
    assert_eq!(
        unusable_flag("/m/a.lbi: truncated volume (10 bytes, no trailer)"),
        "incomplete"
    );
    assert_eq!(
        unusable_flag("/m/a.lbi: damaged manifest: bad checksum"),
        "damaged"
    );
    assert_eq!(
        unusable_flag("/m/a.lbi: not a Lifeboat image"),
        "not an image"
    );
}

#[test]
fn a_real_split_image_is_summarized_with_the_size_of_all_its_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("split.lbi");
    let src = disk::FileDisk::open_read(gpt_image()).unwrap();
    let plan = engine::backup::plan_backup(&src, Default::default(), &img, None).unwrap();
    let opts = engine::backup::BackupOptions {
        split: Some(128 << 10),
        chunk_size: engine::backup::chunk_size_for(Some(128 << 10)),
        ..Default::default()
    };
    let r =
        engine::backup::execute_backup(&plan, &src, &opts, None, &engine::Cancel::new()).unwrap();
    assert!(r.volumes.len() > 1, "{:?}", r.volumes);
    let on_disk: u64 = r
        .volumes
        .iter()
        .map(|v| std::fs::metadata(v).unwrap().len())
        .sum();
    let s = tui::jobs::summarize(&img).unwrap();
    assert_eq!(s.volumes, r.volumes.len());
    assert_eq!(s.file_size, on_disk);
    assert!(
        s.file_size < s.source_size,
        "{} {}",
        s.file_size,
        s.source_size
    );
}

#[test]
fn an_empty_top_folder_says_how_to_mount_a_drive() {
    let mut m = model();
    // Only disks without a drive Lifeboat could mount: blank, the boot medium.
    m.disks
        .retain(|e| ["sdb", "sdc", "vda"].contains(&e.device.name.as_str()));
    keys(&mut m, &[Key::Char('i')]);
    listed(&mut m, root(), Vec::new());
    let text = render(&m).join("\n");
    assert!(text.contains("No drive is mounted"), "{text}");
}

#[test]
fn the_result_lists_every_bad_chunk_at_80x25() {
    let mut m = on_drive();
    keys(&mut m, &[Key::Down, Key::Down, Key::Enter]);
    let bad = image::BadChunk {
        stream: 1,
        stream_name: "partition 1".into(),
        chunk: 3,
        start: 12 * MIB,
        end: 16 * MIB,
        volume: "laptop.lbi".into(),
        problem: "crc32 of the compressed bytes does not match".into(),
    };
    let report = image::VerifyReport {
        chunks: 9,
        bytes: 9 * MIB,
        bad: vec![bad.clone()],
        structure: vec![],
    };
    answer(&mut m, job_id, |id| Msg::Verified {
        id,
        result: Ok(report),
    });
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(lines[0].contains("step 2 of 2: result"), "{text}");
    assert!(text.contains("Image DAMAGED: 1 bad chunks"), "{text}");
    assert!(text.contains("BAD: chunk 3 of partition 1"), "{text}");
    assert!(lines[24].contains("Enter back to the disks"), "{text}");
}

/// Backs up the test disk into `image` with the engine, as the CLI does.
fn backup_to(image: &Path) {
    let src = disk::FileDisk::open_read(gpt_image()).unwrap();
    let plan = engine::backup::plan_backup(
        &src,
        SourceIdentity {
            model: "QEMU HARDDISK".into(),
            serial: "QM0001".into(),
        },
        image,
        None,
    )
    .unwrap();
    engine::backup::execute_backup(&plan, &src, &BackupOptions::default(), None, &Cancel::new())
        .unwrap();
}

#[test]
fn the_browser_lists_folders_and_images_with_summaries_and_flags_incomplete_ones() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    std::fs::create_dir(top.join("sdb1")).unwrap();
    std::fs::create_dir(top.join(".hidden")).unwrap();
    let good = top.join("sdb1/disk.lbi");
    backup_to(&good);
    // An interrupted backup: the file without its trailer.
    let bytes = std::fs::read(&good).unwrap();
    let cut = top.join("sdb1/cut.lbi");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(top.join("sdb1/notes.txt"), b"x").unwrap();

    let at_top = tui::jobs::list_images(top, top).unwrap();
    assert_eq!(at_top, vec![BrowseEntry::Dir(top.join("sdb1"))]);
    let inside = tui::jobs::list_images(top, &top.join("sdb1")).unwrap();
    assert_eq!(inside.len(), 3, "{inside:?}");
    assert_eq!(inside[0], BrowseEntry::Up);
    match &inside[1] {
        BrowseEntry::Image { path, summary } => {
            assert_eq!(path, &cut);
            assert!(summary.is_err(), "{summary:?}");
        }
        other => panic!("{other:?}"),
    }
    match &inside[2] {
        BrowseEntry::Image { path, summary } => {
            assert_eq!(path, &good);
            let s = summary.as_ref().unwrap();
            assert_eq!(s.model, "QEMU HARDDISK");
            assert_eq!(s.serial, "QM0001");
            assert_eq!(s.source_size, 64 * MIB);
            assert_eq!(s.partitions.len(), 2, "{:?}", s.partitions);
            assert!(s.partitions[0].contains("ext4"), "{:?}", s.partitions);
            assert!(s.stored > 0);
        }
        other => panic!("{other:?}"),
    }
    assert!(tui::jobs::list_images(top, &top.join("missing")).is_err());
}

#[test]
fn verifying_a_real_image_reports_ok_and_names_a_damaged_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("disk.lbi");
    backup_to(&good);
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = Arc::clone(&events);
    let sink = move |p: &engine::Progress| ev.lock().unwrap().push(p.clone());
    let report = tui::jobs::verify_image(&good, 2, &sink, &Cancel::new()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(report.chunks > 0);
    let last = events.lock().unwrap().last().cloned().unwrap();
    assert!(last.finished);
    assert_eq!(last.done, last.total);
    assert_eq!(last.total, report.bytes);

    // Flip a byte inside the first chunk's compressed data.
    let reader = image::ImageReader::open(&good).unwrap();
    let first = reader.index().first().cloned().unwrap();
    drop(reader);
    let mut bytes = std::fs::read(&good).unwrap();
    let at = usize::try_from(first.volume_offset).unwrap()
        + (bytes.len() - usize::try_from(first.volume_offset).unwrap()).min(64);
    bytes[at] ^= 0xff;
    let bad = dir.path().join("bad.lbi");
    std::fs::write(&bad, &bytes).unwrap();
    let report =
        tui::jobs::verify_image(&bad, 2, &|_: &engine::Progress| {}, &Cancel::new()).unwrap();
    assert!(!report.is_ok());
    assert!(
        !report.bad.is_empty() || !report.structure.is_empty(),
        "{report:?}"
    );

    // A cancelled verify says so and changes nothing.
    let cancel = Cancel::new();
    cancel.cancel();
    let err = tui::jobs::verify_image(&good, 2, &|_: &engine::Progress| {}, &cancel).unwrap_err();
    assert!(err.contains("cancelled"), "{err}");
}

#[test]
fn a_folder_that_cannot_be_read_says_what_happened_and_which_keys_help() {
    let mut m = on_drive();
    keys(&mut m, &[Key::Down, Key::Enter]);
    assert_eq!(m.screen.browser().unwrap().dir, root().join("sdb1/old"));
    answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Err("reading /run/lifeboat/mnt/sdb1/old: Permission denied (os error 13)".into()),
    });
    let lines = render(&m);
    let text = lines.join("\n");
    let at = lines
        .iter()
        .position(|l| l.contains("This folder cannot be read."))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(lines[at + 1].contains("Permission denied"), "{text}");
    assert!(
        text.contains("r reads it again, Backspace goes up to the folder above, Esc goes back."),
        "{text}"
    );
    // Backspace does what the screen says.
    let e = keys(&mut m, &[Key::Backspace]);
    assert!(
        matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root().join("sdb1"))
    );
}

#[test]
fn a_top_folder_that_does_not_exist_yet_lists_empty_and_the_picker_says_how_to_mount() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("mnt");
    assert_eq!(tui::jobs::list_images(&top, &top), Ok(Vec::new()));
    // Below the top, a missing folder is an error naming it.
    let below = top.join("gone");
    std::fs::create_dir(&top).unwrap();
    let err = tui::jobs::list_images(&top, &below).unwrap_err();
    assert!(err.contains("gone"), "{err}");
    // The empty top folder's words and keys (no drive attached that could be mounted).
    let mut m = model();
    m.disks
        .retain(|e| ["sdb", "sdc", "vda"].contains(&e.device.name.as_str()));
    keys(&mut m, &[Key::Char('i')]);
    listed(&mut m, root(), Vec::new());
    let text = render(&m).join("\n");
    assert!(text.contains("No drive is mounted"), "{text}");
    assert!(text.contains("(Esc)"), "{text}");
    assert!(text.contains("mount it (m)"), "{text}");
}

#[test]
fn the_top_folder_offers_the_drives_that_can_hold_images_and_mounts_the_chosen_one() {
    let mut m = model();
    keys(&mut m, &[Key::Char('i')]);
    listed(&mut m, root(), Vec::new());
    let lines = render(&m);
    let text = lines.join("\n");
    // Unmounted partitions with a mountable file system, with size and free space; not the
    // mounted sdd2, not the boot medium's partitions.
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("  {name} ")))
            .cloned()
    };
    let sda1 = row("sda1").unwrap_or_else(|| panic!("{text}"));
    assert!(sda1.contains("ext4 \"ROOT\""), "{text}");
    assert!(
        sda1.contains("16.0 MiB") && sda1.contains("13.4 MiB free"),
        "{text}"
    );
    assert!(row("sda2").is_some() && row("sdd1").is_some(), "{text}");
    assert!(row("sdd2").is_none() && row("vda1").is_none(), "{text}");
    assert!(
        text.contains("Enter mounts it on /run/lifeboat/mnt/sda1 and opens it"),
        "{text}"
    );
    // Enter mounts it; the mount's answer opens its folder.
    let mount = match keys(&mut m, &[Key::Enter]).as_slice() {
        [Effect::Mount { id, node, name, .. }] => {
            assert_eq!(node, &PathBuf::from("/dev/sda1"));
            assert_eq!(name, "sda1");
            *id
        }
        other => panic!("{other:?}"),
    };
    // A second Enter while mounting does nothing.
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    let e = update(
        &mut m,
        Msg::SystemDone {
            id: mount,
            result: Ok("mounted /dev/sda1 at /run/lifeboat/mnt/sda1".into()),
        },
    );
    assert!(
        e.iter()
            .any(|e| matches!(e, Effect::ListImages { dir, .. } if *dir == root().join("sda1"))),
        "{e:?}"
    );
    assert!(
        e.iter().any(|e| matches!(e, Effect::Rescan { .. })),
        "{e:?}"
    );
    listed(&mut m, root().join("sda1"), drive_listing());
    // Leaving unmounts it, once.
    let e = keys(&mut m, &[Key::Esc]);
    assert!(matches!(m.screen, Screen::Main));
    match e.as_slice() {
        [Effect::Unmount { mount_point, .. }] => assert_eq!(*mount_point, root().join("sda1")),
        other => panic!("{other:?}"),
    }
    assert!(keys(&mut m, &[Key::Down]).is_empty());
}

#[test]
fn a_failed_mount_keeps_the_drives_and_unmounts_nothing() {
    let mut m = model();
    keys(&mut m, &[Key::Char('i')]);
    listed(&mut m, root(), Vec::new());
    let id = match keys(&mut m, &[Key::Enter]).as_slice() {
        [Effect::Mount { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    let e = update(
        &mut m,
        Msg::SystemDone {
            id,
            result: Err("mounting /dev/sda1: wrong fs type".into()),
        },
    );
    assert!(matches!(e.as_slice(), [Effect::Rescan { .. }]), "{e:?}");
    assert_eq!(m.screen.browser().unwrap().dir, root());
    let text = render(&m).join("\n");
    assert!(text.contains("wrong fs type"), "{text}");
    assert!(text.contains("the Log screen, l"), "{text}");
    assert!(keys(&mut m, &[Key::Esc]).is_empty(), "nothing to unmount");
}

#[test]
fn an_images_source_reads_naturally_without_model_or_serial() {
    let mut s = summary();
    assert_eq!(
        s.source_identity(),
        "Samsung SSD 870, serial S5Y1NX0R, 64.0 MiB (67.1 MB)"
    );
    s.model = "unknown".into();
    assert_eq!(
        s.source_identity(),
        "disk with serial S5Y1NX0R, 64.0 MiB (67.1 MB)"
    );
    s.serial = "unknown".into();
    assert_eq!(
        s.source_identity(),
        "disk of unknown model and serial, 64.0 MiB (67.1 MB)"
    );
}
