//! The README's captures of the text UI are real: the first screen and the backup wizard's
//! destination step, rendered at 80×25 into ratatui's `TestBackend` from a machine with the tests'
//! GPT system disk (sgdisk, mkfs.ext4, mkfs.vfat) and a freshly formatted exFAT stick (sfdisk,
//! mkfs.exfat), both inspected by the engine, must appear verbatim in README.md (a failing run
//! prints the capture to paste).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use disk::Transport;
use std::path::PathBuf;
use std::sync::OnceLock;
use tui::logger::LogRing;
use tui::model::{BrowseEntry, DiskEntry, Screen};
use tui::{update, Effect, Key, Model, Msg};

/// A 1 GiB USB stick as it comes out of `mkfs.exfat`: MBR, one exFAT partition "BACKUPS" at
/// 1 MiB. Made once per test binary.
fn stick_image() -> &'static std::path::Path {
    static IMAGE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let img = qemu_tests::e2e::exfat_drive(dir.path(), 1024).unwrap();
        (dir, img)
    });
    path
}

/// The tests' GPT disk ([`gpt_image`]) with the disk GUID set by `sgdisk -U`, so that the details
/// pane shows the same id on every run. Made once per test binary.
fn system_image() -> &'static std::path::Path {
    static IMAGE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("system.img");
        std::fs::copy(gpt_image(), &img).unwrap();
        qemu_tests::fixture::sgdisk(&img, &["-U", "5D7E1C2A-3B4F-4E6A-9C1D-2F8B7A6E5D40"]).unwrap();
        (dir, img)
    });
    path
}

/// The first scan of a machine with the system disk (sda, not mounted) and the stick (sdb, not
/// mounted), with the SMART column on.
fn machine() -> Model {
    let mut sda = device(
        "sda",
        64 * MIB,
        "Samsung SSD 870 EVO",
        "S6PU1",
        Transport::Sata,
    );
    sda.partitions = vec![
        partition("sda", 1, MIB, 16 * MIB, None),
        partition("sda", 2, 17 * MIB, 16 * MIB, None),
    ];
    let mut sdb = device(
        "sdb",
        1024 * MIB,
        "SanDisk Ultra",
        "4C530001",
        Transport::Usb,
    );
    sdb.removable = Some(true);
    sdb.partitions = vec![partition("sdb", 1, MIB, 1023 * MIB, None)];
    let mut system = engine::inspect(system_image()).unwrap();
    system.path = "/dev/sda".to_string();
    let mut stick = engine::inspect(stick_image()).unwrap();
    stick.path = "/dev/sdb".to_string();
    let mut m = Model::new(false, true, LogRing::default(), None);
    let _ = scanned(
        &mut m,
        Ok(vec![
            DiskEntry {
                report: Ok(system),
                device: sda,
            },
            DiskEntry {
                report: Ok(stick),
                device: sdb,
            },
        ]),
    );
    m
}

fn capture(m: &Model) -> String {
    screen(m, 80, 25).join("\n")
}

fn readme() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(&p).unwrap()
}

fn assert_in_readme(what: &str, screen: &str) {
    let block = format!("```text\n{screen}\n```");
    assert!(
        readme().contains(&block),
        "README.md does not show the {what} as rendered now; paste this:\n{block}"
    );
}

#[test]
fn the_readme_shows_the_first_screen_as_rendered() {
    let m = machine();
    let screen = capture(&m);
    assert!(screen.contains("a back up"), "{screen}");
    assert!(
        screen
            .lines()
            .any(|l| l.contains("sdb1") && l.contains("exfat \"BACKUPS\"") && l.contains("free")),
        "the stick's partition with its free space:\n{screen}"
    );
    assert_in_readme("first screen", &screen);
}

#[test]
fn the_readme_shows_the_destination_step_offering_the_stick_as_rendered() {
    let mut m = machine();
    // On the first disk (sda), back up the whole disk.
    assert!(keys(&mut m, &[Key::Char('a')]).is_empty());
    let e = keys(&mut m, &[Key::Enter]);
    let root = PathBuf::from("/run/lifeboat/mnt");
    assert!(matches!(e.as_slice(), [Effect::ListImages { dir, .. }] if *dir == root));
    // Nothing is mounted under the images' root: the drives that can hold images are offered.
    let id = picker_id(&m);
    let no_entries: Vec<BrowseEntry> = Vec::new();
    assert!(update(
        &mut m,
        Msg::Listed {
            id,
            result: Ok(no_entries)
        }
    )
    .is_empty());
    assert!(matches!(m.screen, Screen::Backup(_)));
    let screen = capture(&m);
    assert!(
        screen
            .lines()
            .any(|l| l.contains("sdb1") && l.contains("exfat \"BACKUPS\"")),
        "the stick's free partition is offered:\n{screen}"
    );
    assert!(screen.contains("Enter on a drive mounts it"), "{screen}");
    assert_in_readme("destination step", &screen);
}
