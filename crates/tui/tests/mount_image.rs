//! Mount image read-only from the keyboard: the menu entry next to "Browse files", the image and
//! partition pickers, and the effect that runs `lifeboat mount` as a child process.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use tui::model::{BrowseEntry, ImagePart, ImageSummary, Screen};
use tui::screens::mount_image::{mount_dir, MountImageScreen, MOUNT_BASE};
use tui::{update, Effect, Key, Model, Msg};

fn summary(parts: Vec<ImagePart>) -> ImageSummary {
    ImageSummary {
        model: "Samsung SSD 870".into(),
        serial: "S5Y1NX0R".into(),
        created: "2026-11-22T03:14:34Z".into(),
        source_size: 64 * MIB,
        table: Some("gpt".into()),
        partitions: vec![],
        stored: 9 * MIB,
        volumes: 1,
        file_size: 5 << 20,
        bad_ranges: 0,
        whole_disk: true,
        needs: 33 * MIB,
        parts,
    }
}

fn part(number: u32, fs: &str, restorable: bool) -> ImagePart {
    ImagePart {
        number,
        size: 16 * MIB,
        fs: fs.into(),
        label: String::new(),
        restorable,
    }
}

fn root() -> PathBuf {
    PathBuf::from("/run/lifeboat/mnt")
}

fn listed(m: &mut Model, entries: Vec<BrowseEntry>) {
    let effects = answer(m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(entries),
    });
    assert!(effects.is_empty());
}

/// The picker on a drive holding `laptop.lbi` with `parts`.
fn on_drive(parts: Vec<ImagePart>) -> Model {
    let mut m = model();
    let e = keys(&mut m, &[Key::Char('n')]);
    assert!(matches!(e.as_slice(), [Effect::ListImages { dir: d, .. }] if *d == root()));
    assert!(matches!(&m.screen, Screen::MountImage(s) if matches!(**s, MountImageScreen::Pick(_))));
    listed(&mut m, vec![BrowseEntry::Dir(root().join("sdb1"))]);
    keys(&mut m, &[Key::Enter]);
    listed(
        &mut m,
        vec![
            BrowseEntry::Up,
            BrowseEntry::Image {
                path: root().join("sdb1/laptop.lbi"),
                summary: Ok(summary(parts)),
            },
        ],
    );
    m
}

#[test]
fn the_menu_offers_mount_image_read_only_right_after_browse_files() {
    let mut m = model();
    keys(&mut m, &[Key::Enter]);
    let text = render(&m).join("\n");
    let browse = text.find("Browse files in an image").expect("browse entry");
    let mount = text.find("n  Mount image read-only").expect(&text);
    assert!(mount > browse, "{text}");
}

#[test]
fn a_disk_image_asks_for_the_partition_then_mounts_it_under_the_mount_folder() {
    let mut m = on_drive(vec![
        part(1, "vfat", true),
        part(2, "ext4", true),
        part(3, "", false),
    ]);
    let e = keys(&mut m, &[Key::Down, Key::Enter]);
    assert!(e.is_empty(), "{e:?}");
    let text = render(&m).join("\n");
    assert!(
        text.contains("Mount which partition of laptop.lbi?"),
        "{text}"
    );
    // The cursor starts on the first partition with a file system; Down picks ext4.
    let e = keys(&mut m, &[Key::Down, Key::Enter]);
    let want = root().join("laptop-p2");
    match e.as_slice() {
        [Effect::MountImage {
            image, part, dir, ..
        }] => {
            assert_eq!(image, &root().join("sdb1/laptop.lbi"));
            assert_eq!(*part, 2);
            assert_eq!(dir, &want);
        }
        other => panic!("expected a mount, got {other:?}"),
    }
    assert!(matches!(m.screen, Screen::Main));
    assert!(m
        .status
        .as_deref()
        .unwrap()
        .contains("mounting partition 2"));
}

#[test]
fn a_partition_that_was_not_imaged_is_refused() {
    let mut m = on_drive(vec![
        part(1, "", false),
        part(2, "ext4", true),
        part(3, "vfat", true),
    ]);
    keys(&mut m, &[Key::Down, Key::Enter]);
    let e = keys(&mut m, &[Key::Home, Key::Enter]);
    assert!(e.is_empty());
    assert!(m.status.as_deref().unwrap().contains("nothing to mount"));
}

#[test]
fn an_image_with_one_partition_is_mounted_without_asking() {
    let mut m = on_drive(vec![part(4, "ntfs", true)]);
    let e = keys(&mut m, &[Key::Down, Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::MountImage { part: 4, .. }]),
        "{e:?}"
    );
}

#[test]
fn mount_folders_are_named_after_the_image_without_odd_characters() {
    let base = Path::new(MOUNT_BASE);
    assert_eq!(
        mount_dir(base, Path::new("/x/my laptop;rm.lbi"), 3),
        base.join("my_laptop_rm-p3")
    );
    assert_eq!(
        mount_dir(base, Path::new("/x/../../etc.lbi"), 1),
        base.join("etc-p1")
    );
}

#[test]
fn the_mount_answer_is_shown_in_the_status_line() {
    let mut m = on_drive(vec![part(4, "ntfs", true)]);
    let e = keys(&mut m, &[Key::Down, Key::Enter]);
    let Some(Effect::MountImage { id, .. }) = e.first() else {
        panic!("{e:?}")
    };
    update(
        &mut m,
        Msg::SystemDone {
            id: *id,
            result: Ok(
                "partition 4 of laptop.lbi is mounted read-only at /run/lifeboat/mnt/laptop-p4"
                    .into(),
            ),
        },
    );
    assert!(m.status.as_deref().unwrap().contains("mounted read-only"));
}
