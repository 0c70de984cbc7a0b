//! Browse files and extract them: image → partition → folders (search, multi-select) →
//! destination → overwrite question → progress → result; `update` without a terminal, the
//! screens at 80×25, and the workers on a real image and a live partition (content hashes).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::Cancel;
use fs::browse::{Entry, EntryKind, Timestamp};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::{Path, PathBuf};
use tui::model::{
    BrowseEntry, ExtractReport, ExtractRequest, FileItem, FileSource, FileView, ImagePart,
    ImageSummary, Listing, Screen,
};
use tui::screens::files::FilesScreen;
use tui::widgets::running::Run;
use tui::{update, view, Effect, Key, Model, Msg};

fn root() -> PathBuf {
    PathBuf::from("/run/lifeboat/mnt")
}

fn image_path() -> PathBuf {
    root().join("disk.lbi")
}

fn summary() -> ImageSummary {
    let part = |number, fs: &str| ImagePart {
        number,
        size: 16 * MIB,
        fs: fs.into(),
        label: String::new(),
        restorable: true,
    };
    ImageSummary {
        model: "Samsung SSD 870".into(),
        serial: "S6PU1".into(),
        created: "2026-11-22T03:14:34Z".into(),
        source_size: 64 * MIB,
        table: Some("gpt".into()),
        partitions: vec![],
        stored: 9 * MIB,
        volumes: 1,
        file_size: 9 << 20,
        bad_ranges: 0,
        whole_disk: true,
        needs: 34 * MIB,
        parts: vec![part(1, "ext4"), part(2, "vfat")],
    }
}

fn entry(name: &str, kind: EntryKind, size: u64) -> Entry {
    Entry {
        name: name.into(),
        kind,
        size,
        mtime: Some(Timestamp {
            secs: 1_763_781_274,
            nanos: 0,
        }),
        atime: None,
        ctime: None,
        mode: Some(0o644),
        uid: None,
        gid: None,
        link_target: None,
    }
}

fn item(dir: &str, name: &str, kind: EntryKind, size: u64) -> FileItem {
    FileItem {
        path: format!("{}/{name}", dir.trim_end_matches('/')),
        entry: entry(name, kind, size),
    }
}

fn source() -> FileSource {
    FileSource::Image {
        path: image_path(),
        partition: 1,
    }
}

fn view_of(m: &Model) -> &FileView {
    match &m.screen {
        Screen::Files(f) => match &**f {
            FilesScreen::Browse(v) => v,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

fn listed(m: &mut Model, dir: &str, listing: Listing, items: Vec<FileItem>) {
    assert_eq!(view_of(m).dir, dir, "the folder shown");
    assert_eq!(view_of(m).listing, listing, "the listing shown");
    let _ = answer(m, files_id, |id| Msg::FilesListed {
        id,
        fs: Some("ext4 \"ROOT\"".into()),
        result: Ok(items),
    });
}

/// The browser on partition 1 of the image, its root listed.
fn browsing() -> Model {
    let mut m = model();
    let effects = keys(&mut m, &[Key::Char('f')]);
    assert!(matches!(effects.as_slice(), [Effect::ListImages { dir: d, .. }] if d == &root()));
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![BrowseEntry::Image {
            path: image_path(),
            summary: Ok(summary()),
        }]),
    });
    keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(&m.screen, Screen::Files(f) if matches!(**f, FilesScreen::PickPart { cursor: 0, .. })),
        "{:?}",
        m.screen
    );
    let text = render(&m).join("\n");
    assert!(
        text.contains("Browse which partition of disk.lbi"),
        "{text}"
    );
    let effects = keys(&mut m, &[Key::Enter]);
    match effects.as_slice() {
        [Effect::ListFiles {
            source: s,
            dir,
            listing: Listing::Dir,
            ..
        }] => {
            assert_eq!(s, &source());
            assert_eq!(dir, "/");
        }
        other => panic!("{other:?}"),
    }
    listed(
        &mut m,
        "/",
        Listing::Dir,
        vec![
            item("/", "docs", EntryKind::Dir, 0),
            item("/", "file-2.dat", EntryKind::File, 15_839),
            item("/", "link-to-note", EntryKind::Symlink, 15),
        ],
    );
    m
}

#[test]
fn folders_open_with_enter_and_close_with_backspace() {
    let mut m = browsing();
    assert_eq!(
        view_of(&m).items.as_ref().unwrap().as_ref().unwrap().len(),
        3
    );
    // A request made before Enter, whose answer is late.
    let earlier = m.request();
    let effects = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(effects.as_slice(), [Effect::ListFiles { dir, .. }] if dir == "/docs"),
        "{effects:?}"
    );
    assert_eq!(view_of(&m).dir, "/docs");
    // A listing of another folder arriving late is ignored.
    update(
        &mut m,
        Msg::FilesListed {
            id: earlier,
            fs: None,
            result: Ok(vec![]),
        },
    );
    assert!(view_of(&m).items.is_none());
    listed(
        &mut m,
        "/docs",
        Listing::Dir,
        vec![item("/docs", "deeper", EntryKind::Dir, 0)],
    );
    let effects = keys(&mut m, &[Key::Backspace]);
    assert!(
        matches!(effects.as_slice(), [Effect::ListFiles { dir, .. }] if dir == "/"),
        "{effects:?}"
    );
    // At the root Backspace stays; Esc leaves.
    listed(&mut m, "/", Listing::Dir, vec![]);
    assert!(keys(&mut m, &[Key::Backspace]).is_empty());
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn the_file_list_shows_names_sizes_dates_and_the_selection_at_80x25() {
    let mut m = browsing();
    keys(&mut m, &[Key::Down, Key::Char(' ')]);
    assert!(view_of(&m).selected.contains("/file-2.dat"));
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(lines[0].contains("Browse files - disk.lbi #1"), "{text}");
    assert!(text.contains("docs/"), "{text}");
    assert!(text.contains("<dir>"), "{text}");
    let row = lines.iter().find(|l| l.contains("file-2.dat")).unwrap();
    assert!(row.contains("* file-2.dat"), "{row}");
    assert!(row.contains("15.5 KiB"), "{row}");
    assert!(row.contains("2025-11-22 03:14"), "{row}");
    assert!(text.contains("link-to-note@"), "{text}");
    assert!(text.contains("ext4 \"ROOT\"  1 selected"), "{text}");
    assert!(lines[24].contains("/ search"), "{text}");
    // Space moved down; Space again on the same entry unselects it.
    keys(&mut m, &[Key::Up, Key::Char(' ')]);
    assert!(view_of(&m).selected.is_empty());
}

#[test]
fn slash_searches_by_name_below_the_folder_and_backspace_returns() {
    let mut m = browsing();
    keys(&mut m, &[Key::Char('/')]);
    typed(&mut m, "note");
    let text = render(&m).join("\n");
    assert!(text.contains("Search names: note_"), "{text}");
    let effects = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(effects.as_slice(), [Effect::ListFiles { dir, listing: Listing::Search(p), .. }] if dir == "/" && p == "note"),
        "{effects:?}"
    );
    listed(
        &mut m,
        "/",
        Listing::Search("note".into()),
        vec![item("/docs", "note-0.txt", EntryKind::File, 1000)],
    );
    let text = render(&m).join("\n");
    assert!(text.contains("/docs/note-0.txt"), "{text}");
    assert!(text.contains("names with \"note\""), "{text}");
    let effects = keys(&mut m, &[Key::Backspace]);
    assert!(
        matches!(
            effects.as_slice(),
            [Effect::ListFiles {
                listing: Listing::Dir,
                ..
            }]
        ),
        "{effects:?}"
    );
    // Esc while typing cancels the search.
    keys(&mut m, &[Key::Char('/'), Key::Char('a'), Key::Esc]);
    assert!(view_of(&m).typing.is_none());
}

#[test]
fn extract_picks_a_folder_asks_before_overwriting_and_lists_failures() {
    let mut m = browsing();
    keys(&mut m, &[Key::Char(' '), Key::Char(' ')]);
    let effects = keys(&mut m, &[Key::Char('x')]);
    assert!(matches!(effects.as_slice(), [Effect::ListImages { dir: d, .. }] if d == &root()));
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![BrowseEntry::Dir(root().join("sdb1"))]),
    });
    // Not into the in-memory top folder.
    assert!(keys(&mut m, &[Key::Char('s')]).is_empty());
    let text = render(&m).join("\n");
    assert!(
        text.contains("choose a folder on a mounted drive"),
        "{text}"
    );
    keys(&mut m, &[Key::Enter]);
    let effects = keys(&mut m, &[Key::Char('s')]);
    let request = match effects.as_slice() {
        [Effect::CheckExtract { request: r, .. }] => r.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(request.paths, vec!["/docs", "/file-2.dat"]);
    assert_eq!(request.dest, root().join("sdb1"));
    assert!(!request.overwrite);
    let _ = answer(&mut m, check_id, |id| Msg::ExtractChecked {
        id,
        existing: vec![root().join("sdb1/docs")],
    });
    let text = render(&m).join("\n");
    assert!(text.contains("1 of the 2 names exist"), "{text}");
    assert!(text.contains("docs"), "{text}");
    // n keeps them: the extract runs without overwriting.
    let effects = keys(&mut m, &[Key::Char('n')]);
    match effects.as_slice() {
        [Effect::Extract { request: r, .. }] => assert!(!r.overwrite),
        other => panic!("{other:?}"),
    }
    assert!(m.job_running());
    let _ = answer(&mut m, job_id, |id| Msg::Progress {
        id,
        progress: engine::Progress {
            phase: "extracting".into(),
            done: MIB,
            total: 4 * MIB,
            bytes_per_sec: 1e6,
            eta_secs: Some(3),
            elapsed_secs: 1.0,
            bad_bytes: 0,
            finished: false,
        },
    });
    let text = render(&m).join("\n");
    assert!(text.contains("25.0%"), "{text}");
    let effects = keys(&mut m, &[Key::Esc, Key::Char('y')]);
    assert!(matches!(effects.as_slice(), [Effect::CancelJob { .. }]));
    let _ = answer(&mut m, job_id, |id| Msg::Extracted {
        id,
        result: Ok(ExtractReport {
            files: 3,
            bytes: 30_000,
            failed: vec![(
                "/docs/note-0.txt".into(),
                "/run/lifeboat/mnt/sdb1/docs/note-0.txt exists: kept".into(),
            )],
            ..Default::default()
        }),
    });
    let text = render(&m).join("\n");
    assert!(
        text.contains("Extract finished; 1 objects failed"),
        "{text}"
    );
    assert!(text.contains("FAILED /docs/note-0.txt"), "{text}");
    keys(&mut m, &[Key::Enter]);
    // Back in the browser, the selection kept (something failed).
    assert_eq!(view_of(&m).selected.len(), 2);
}

#[test]
fn an_extract_whose_image_could_not_be_read_says_so_and_why() {
    let mut m = browsing();
    let request = ExtractRequest {
        source: source(),
        paths: vec!["/file-2.dat".into()],
        dest: root().join("sdb1"),
        overwrite: false,
    };
    m.screen = Screen::Files(Box::new(FilesScreen::Checking {
        id: m.request(),
        view: view_of(&m).clone(),
        request,
    }));
    let effects = answer(&mut m, check_id, |id| Msg::ExtractChecked {
        id,
        existing: vec![],
    });
    assert!(
        matches!(effects.as_slice(), [Effect::Extract { .. }]),
        "{effects:?}"
    );
    let why =
        "the image could not be read: chunk 4 of stream 2 on the NFS export 10.0.2.2:/images: \
               Input/output error; the server did not come back";
    let _ = answer(&mut m, job_id, |id| Msg::Extracted {
        id,
        result: Ok(ExtractReport {
            files: 1,
            bytes: 4 * MIB,
            image_unreadable: Some(why.into()),
            ..Default::default()
        }),
    });
    let text = render(&m).join(" ");
    assert!(
        text.contains("Extract stopped: the image could not be read"),
        "{text}"
    );
    assert!(text.contains("the server did not come back"), "{text}");
    assert!(!text.contains("Extract finished"), "{text}");
}

#[test]
fn yes_to_the_overwrite_question_overwrites() {
    let mut m = browsing();
    let request = ExtractRequest {
        source: source(),
        paths: vec!["/file-2.dat".into()],
        dest: root().join("sdb1"),
        overwrite: false,
    };
    m.screen = Screen::Files(Box::new(FilesScreen::Checking {
        id: m.request(),
        view: view_of(&m).clone(),
        request: request.clone(),
    }));
    let effects = answer(&mut m, check_id, |id| Msg::ExtractChecked {
        id,
        existing: vec![root().join("sdb1/file-2.dat")],
    });
    assert!(effects.is_empty());
    let effects = keys(&mut m, &[Key::Char('y')]);
    match effects.as_slice() {
        [Effect::Extract { request: r, .. }] => assert!(r.overwrite),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_selected_partition_is_browsed_live_and_a_disk_without_file_system_is_refused() {
    let mut m = model();
    // Row 1: sda1 (rows: sda, sda1, sda2, sdb, ...).
    keys(&mut m, &[Key::Down]);
    let effects = keys(&mut m, &[Key::Char('x')]);
    match effects.as_slice() {
        [Effect::ListFiles { source, dir, .. }] => {
            assert_eq!(dir, "/");
            assert_eq!(
                source,
                &FileSource::Live {
                    node: PathBuf::from("/dev/sda1"),
                    offset: 0,
                    len: 16 * MIB,
                    name: "sda1".into(),
                }
            );
        }
        other => panic!("{other:?}"),
    }
    keys(&mut m, &[Key::Esc]);
    // sdb is blank.
    keys(&mut m, &[Key::Down, Key::Down, Key::Down]);
    assert!(keys(&mut m, &[Key::Char('x')]).is_empty());
    assert!(m.status.is_some(), "{:?}", m.status);
}

fn tree() -> PathBuf {
    gpt_image().parent().unwrap().join("tree")
}

#[test]
fn listing_and_searching_a_real_image_and_a_live_partition() {
    let src = FileSource::Image {
        path: gpt_lbi().to_path_buf(),
        partition: 1,
    };
    let (fs, items) = tui::extract::list(&src, "/", &Listing::Dir);
    assert_eq!(fs.as_deref(), Some("ext4 \"ROOT\""));
    let items = items.unwrap();
    let names: Vec<&str> = items.iter().map(|i| i.entry.name.as_str()).collect();
    // Folders first.
    assert_eq!(names[0], "docs", "{names:?}");
    assert!(names.contains(&"file-2.dat"), "{names:?}");
    assert!(names.contains(&"link-to-note"), "{names:?}");
    let (_, found) = tui::extract::list(&src, "/", &Listing::Search("NOTE".into()));
    let found: Vec<String> = found.unwrap().into_iter().map(|i| i.path).collect();
    assert!(found.contains(&"/docs/note-0.txt".to_string()), "{found:?}");
    assert!(found.contains(&"/link-to-note".to_string()), "{found:?}");
    assert!(
        found.iter().all(|p| p.to_lowercase().contains("note")),
        "{found:?}"
    );
    // The same file system, read live from the disk file at its offset.
    let live = FileSource::Live {
        node: gpt_image().to_path_buf(),
        offset: MIB,
        len: 16 * MIB,
        name: "disk.img #1".into(),
    };
    let (_, live_items) = tui::extract::list(&live, "/", &Listing::Dir);
    assert_eq!(live_items.unwrap(), items);
    let (_, err) = tui::extract::list(&src, "/missing", &Listing::Dir);
    assert!(err.is_err());
}

#[test]
fn extracting_from_a_real_image_keeps_content_and_never_overwrites_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let req = ExtractRequest {
        source: FileSource::Image {
            path: gpt_lbi().to_path_buf(),
            partition: 1,
        },
        paths: vec!["/docs".into(), "/file-2.dat".into(), "/link-to-note".into()],
        dest: dest.clone(),
        overwrite: false,
    };
    assert!(tui::extract::existing(&req).is_empty());
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&events);
    let sink = move |p: &engine::Progress| seen.lock().unwrap().push(p.clone());
    let report = tui::extract::extract(&req, &sink, &Cancel::new()).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.symlinks, 1);
    let last = events.lock().unwrap().last().cloned().unwrap();
    assert!(last.finished);
    assert_eq!(last.done, last.total);
    assert!(last.total > 0);
    let mut compared = 0;
    for rel in ["file-2.dat", "docs/note-0.txt", "docs/deeper/blob-1.bin"] {
        assert_eq!(
            qemu_tests::fixture::sha256(&dest.join(rel)).unwrap(),
            qemu_tests::fixture::sha256(&tree().join(rel)).unwrap(),
            "{rel}"
        );
        compared += 1;
    }
    assert_eq!(compared, 3);
    assert_eq!(
        std::fs::read_link(dest.join("link-to-note")).unwrap(),
        Path::new("docs/note-0.txt")
    );
    // Times are kept.
    let a = std::fs::metadata(dest.join("file-2.dat"))
        .unwrap()
        .modified()
        .unwrap();
    let b = std::fs::metadata(tree().join("file-2.dat"))
        .unwrap()
        .modified()
        .unwrap();
    let diff = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap();
    assert!(diff.as_secs() < 2, "{diff:?}");

    // Again: everything exists, nothing is replaced.
    std::fs::write(dest.join("file-2.dat"), b"mine").unwrap();
    assert_eq!(tui::extract::existing(&req).len(), 3);
    let again = tui::extract::extract(&req, &|_| {}, &Cancel::new()).unwrap();
    assert!(
        again
            .failed
            .iter()
            .any(|(p, e)| p == "/file-2.dat" && e.contains("exists: kept")),
        "{:?}",
        again.failed
    );
    assert_eq!(std::fs::read(dest.join("file-2.dat")).unwrap(), b"mine");
    // Overwriting, when the user said yes.
    let over = ExtractRequest {
        overwrite: true,
        ..req.clone()
    };
    let report = tui::extract::extract(&over, &|_| {}, &Cancel::new()).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        qemu_tests::fixture::sha256(&dest.join("file-2.dat")).unwrap(),
        qemu_tests::fixture::sha256(&tree().join("file-2.dat")).unwrap()
    );
    // A path that does not exist is reported, the others still extract.
    let mixed = ExtractRequest {
        paths: vec!["/nope".into(), "/file-2.dat".into()],
        dest: dir.path().join("mixed"),
        ..req
    };
    let report = tui::extract::extract(&mixed, &|_| {}, &Cancel::new()).unwrap();
    assert_eq!(report.files, 1);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "/nope");
}

fn render_at(m: &Model, w: u16, h: u16) -> usize {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view(m, f)).unwrap();
    t.backend().buffer().area.height as usize
}

#[test]
fn every_file_screen_fits_80_columns_and_survives_tiny_and_huge_terminals() {
    let mut m = browsing();
    let check = |m: &Model| {
        let help = tui::app::help_text(m);
        assert!(help.chars().count() <= 80, "help line too long: {help}");
        for (w, h) in [(80, 25), (20, 5), (1, 1), (200, 60)] {
            assert_eq!(render_at(m, w, h), h as usize);
        }
    };
    check(&m);
    keys(&mut m, &[Key::Char('/')]);
    check(&m);
    keys(&mut m, &[Key::Esc, Key::Char(' '), Key::Char('x')]);
    check(&m);
    let v = match &m.screen {
        Screen::Files(f) => match &**f {
            FilesScreen::PickDest { view, .. } => view.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let request = ExtractRequest {
        source: source(),
        paths: v.chosen(),
        dest: root().join("sdb1"),
        overwrite: false,
    };
    for screen in [
        FilesScreen::Checking {
            id: m.request(),
            view: v.clone(),
            request: request.clone(),
        },
        FilesScreen::AskOverwrite {
            view: v.clone(),
            request: request.clone(),
            existing: (0..40).map(|i| root().join(format!("sdb1/f{i}"))).collect(),
        },
        FilesScreen::Running {
            view: v.clone(),
            request: request.clone(),
            run: Run {
                ask_cancel: true,
                ..Run::new(m.request())
            },
        },
        FilesScreen::Done {
            view: v.clone(),
            request: request.clone(),
            result: Err("cannot open the image".into()),
            scroll: 0,
        },
    ] {
        m.screen = Screen::Files(Box::new(screen));
        check(&m);
    }
}

#[test]
fn an_image_of_one_partition_is_browsed_without_asking_which() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("p1.lbi");
    backup_into(gpt_image(), &img, Some(1));
    let s = tui::jobs::summarize(&img).unwrap();
    assert!(!s.whole_disk, "{s:?}");
    // Only that partition can be restored: not a whole disk.
    let choices = tui::screens::restore::restore_choices(&s);
    assert_eq!(choices.len(), 1, "{choices:?}");
    assert!(matches!(
        choices[0].0,
        tui::screens::restore::RestoreChoice::Partition(_)
    ));
    let mut m = model();
    m.image_root = dir.path().to_path_buf();
    keys(&mut m, &[Key::Char('f')]);
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![BrowseEntry::Image {
            path: img.clone(),
            summary: Ok(s),
        }]),
    });
    let source = match keys(&mut m, &[Key::Enter]).as_slice() {
        [Effect::ListFiles { source, .. }] => source.clone(),
        other => panic!("{other:?}"),
    };
    let (fs, items) = tui::extract::list(&source, "/", &Listing::Dir);
    assert_eq!(fs.as_deref(), Some("ext4 \"ROOT\""));
    assert!(items.unwrap().iter().any(|i| i.entry.name == "docs"));
}

#[test]
fn file_names_with_escape_sequences_are_shown_escaped() {
    let mut m = browsing();
    keys(&mut m, &[Key::Char('r')]);
    listed(
        &mut m,
        "/",
        Listing::Dir,
        vec![item("/", "evil\x1b[2J\u{202e}txt.exe", EntryKind::File, 5)],
    );
    let text = render(&m).join("\n");
    assert!(
        !text.contains(|c: char| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert!(!text.contains('\u{202e}'), "{text:?}");
    assert!(text.contains("evil\\x1b[2J\\u{202e}txt.exe"), "{text}");
}

#[test]
fn a_late_destination_check_for_a_folder_left_starts_nothing() {
    let mut m = browsing();
    keys(&mut m, &[Key::Char(' ')]);
    keys(&mut m, &[Key::Char('x')]);
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![BrowseEntry::Dir(root().join("sdb1"))]),
    });
    keys(&mut m, &[Key::Enter]);
    let first = match keys(&mut m, &[Key::Char('s')]).as_slice() {
        [Effect::CheckExtract { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    // Esc while checking: back to the destination folder; then save there again.
    keys(&mut m, &[Key::Esc]);
    let second = match keys(&mut m, &[Key::Char('s')]).as_slice() {
        [Effect::CheckExtract { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    assert_ne!(first, second);
    // The first check answers late with nothing in the way: no extract starts from it.
    let effects = update(
        &mut m,
        Msg::ExtractChecked {
            id: first,
            existing: vec![],
        },
    );
    assert!(effects.is_empty(), "{effects:?}");
    assert!(!m.job_running());
    assert_eq!(check_id(&m), second);
    // The second one does start it.
    let effects = update(
        &mut m,
        Msg::ExtractChecked {
            id: second,
            existing: vec![],
        },
    );
    assert!(matches!(effects.as_slice(), [Effect::Extract { .. }]));
}

#[test]
fn files_read_from_a_partition_are_not_offered_a_drive_on_the_same_disk() {
    let mut m = model();
    // sda1, browsed live; one file chosen, then x.
    keys(&mut m, &[Key::Down, Key::Char('x')]);
    let _ = answer(&mut m, files_id, |id| Msg::FilesListed {
        id,
        fs: Some("ext4 \"ROOT\"".into()),
        result: Ok(vec![item("/", "file-2.dat", EntryKind::File, 15_839)]),
    });
    let effects = keys(&mut m, &[Key::Char(' '), Key::Char('x')]);
    assert!(matches!(effects.as_slice(), [Effect::ListImages { dir: d, .. }] if d == &root()));
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(Vec::new()),
    });
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(text.contains("Extract - destination folder"), "{text}");
    // sda2 is free and mountable, but on the disk being read; the stick's sdd1 is offered.
    assert!(!lines.iter().any(|l| l.contains("  sda2 ")), "{text}");
    assert!(lines.iter().any(|l| l.contains("  sdd1 ")), "{text}");
    // Browsing an image instead offers every drive (sda2 too).
    let mut m = browsing();
    keys(&mut m, &[Key::Char(' '), Key::Char('x')]);
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(Vec::new()),
    });
    let lines = render(&m);
    let text = lines.join("\n");
    assert!(lines.iter().any(|l| l.contains("  sda2 ")), "{text}");
}
