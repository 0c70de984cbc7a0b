//! Encrypted images in the text UI: the image picker shows an encrypted image as such, asks for
//! its password in a masked field, says so when it is wrong, and once it is right lists the image
//! with its summary and verifies it — `update` without a terminal, the screen at 80×25, and the
//! worker functions on a real encrypted image made by the backup engine from a disk made by sgdisk
//! and mkfs.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use tui::model::BrowseEntry;
use tui::{update, Effect, Key, Msg};

const PASSWORD: &str = "open sesame 42";

/// An encrypted image of [`gpt_image`] (cheap key derivation, so the test stays fast).
fn encrypted_image(dir: &Path) -> PathBuf {
    let img = dir.join("secret.lbi");
    let src = disk::FileDisk::open_read(gpt_image()).unwrap();
    let mut plan = engine::backup::plan_backup(
        &src,
        engine::backup::SourceIdentity {
            model: "Samsung SSD 870".into(),
            serial: "S6PU1".into(),
        },
        &img,
        None,
    )
    .unwrap();
    plan.encryption = Some(engine::backup::Encryption {
        password: image::Passphrase::new(PASSWORD.as_bytes().to_vec()),
        kdf: image::KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
    });
    engine::backup::execute_backup(
        &plan,
        &src,
        &engine::backup::BackupOptions::default(),
        None,
        &engine::Cancel::new(),
    )
    .unwrap();
    // The engine remembers a new image's password only through `job::run`; forget nothing here.
    engine::keys::forget(&img);
    img
}

/// Runs the listing the picker asked for with the real worker function.
fn list(m: &mut tui::Model, effects: Vec<Effect>, top: &Path) -> Vec<Effect> {
    let [Effect::ListImages { id, dir }] = effects.as_slice() else {
        panic!("no listing asked for: {effects:?}");
    };
    let result = tui::jobs::list_images(top, dir);
    update(m, Msg::Listed { id: *id, result })
}

/// Runs the password check the picker asked for with the real worker function.
fn unlock(m: &mut tui::Model, effects: Vec<Effect>) -> Vec<Effect> {
    let mut effects = effects;
    let Some(Effect::UnlockImage { id, path, password }) = effects.pop() else {
        panic!("no password check asked for");
    };
    let result = tui::jobs::unlock(&path, password);
    update(m, Msg::Unlocked { id, result })
}

#[test]
fn an_encrypted_image_is_unlocked_with_a_masked_password_and_then_verified() {
    let dir = tempfile::tempdir().unwrap();
    let img = encrypted_image(dir.path());
    let mut m = model();
    m.image_root = dir.path().to_path_buf();
    let e = keys(&mut m, &[Key::Char('i')]);
    assert!(list(&mut m, e, dir.path()).is_empty());
    let entries = m
        .screen
        .browser()
        .unwrap()
        .entries
        .clone()
        .unwrap()
        .unwrap();
    assert!(
        matches!(entries.first(), Some(BrowseEntry::Image { summary: Err(e), .. }) if e == tui::widgets::image_picker::ENCRYPTED),
        "{entries:?}"
    );
    let screen = render(&m).join("\n");
    assert!(
        screen.contains("secret.lbi") && screen.contains("encrypted"),
        "{screen}"
    );
    assert!(
        !screen.contains("S6PU1"),
        "nothing from the manifest before the password: {screen}"
    );

    // Enter opens the prompt; what is typed shows as stars only.
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    assert!(typed(&mut m, "wrong guess").is_empty());
    let screen = render(&m).join("\n");
    assert!(screen.contains("Password for secret.lbi"), "{screen}");
    assert!(
        screen.contains("***********") && !screen.contains("wrong guess"),
        "{screen}"
    );
    let e = keys(&mut m, &[Key::Enter]);
    assert!(render(&m).join("\n").contains("Checking the password"));
    assert!(unlock(&mut m, e).is_empty());
    let screen = render(&m).join("\n");
    assert!(screen.contains("Wrong password"), "{screen}");
    assert!(engine::keys::password_for(&img).is_none());

    // The right one: the folder is listed again and the image has its summary.
    assert!(typed(&mut m, PASSWORD).is_empty());
    let e = keys(&mut m, &[Key::Enter]);
    let e = unlock(&mut m, e);
    assert!(list(&mut m, e, dir.path()).is_empty());
    let screen = render(&m).join("\n");
    assert!(screen.contains("S6PU1"), "{screen}");
    assert!(!screen.contains(PASSWORD), "{screen}");
    let e = keys(&mut m, &[Key::Enter]);
    assert!(
        e.iter()
            .any(|e| matches!(e, Effect::VerifyImage { image, .. } if *image == img)),
        "{e:?}"
    );
    // The verify worker reads the image with the remembered password.
    let report = engine::verify::verify_image(&img, 1, None, &engine::Cancel::new()).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn esc_closes_the_password_prompt_and_the_picker_keys_work_again() {
    let dir = tempfile::tempdir().unwrap();
    let _img = encrypted_image(dir.path());
    let mut m = model();
    m.image_root = dir.path().to_path_buf();
    let e = keys(&mut m, &[Key::Char('i')]);
    list(&mut m, e, dir.path());
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "abc");
    assert!(m.screen.browser().unwrap().unlock.is_some());
    assert!(keys(&mut m, &[Key::Esc]).is_empty());
    assert!(m.screen.browser().unwrap().unlock.is_none());
    assert!(!render(&m).join("\n").contains("Password for"));
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(m.screen, tui::model::Screen::Main));
}
