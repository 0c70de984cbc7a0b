//! Mount image read-only: pick an image (and a partition of it), then `lifeboat mount` runs as a
//! child process (the UI is multithreaded: a fork without exec would copy locked state) and
//! mounts it under `/run/lifeboat/mnt/<image>-p<N>`, where the shell (s) and any tool can read
//! it. Its answer comes back as [`crate::model::Msg::SystemDone`], shown in the status line.

use crate::model::{Effect, Key, Model, Screen};
use crate::widgets::image_picker::{self, Browser, ChosenImage};
use crate::widgets::{file_name, nav};
use ratatui::layout::Rect;
use ratatui::Frame;
use std::path::{Path, PathBuf};

/// Where images are mounted.
pub const MOUNT_BASE: &str = "/run/lifeboat/mnt";

/// The steps of mounting an image.
#[derive(Debug)]
pub enum MountImageScreen {
    Pick(Browser),
    /// A disk image: which partition to mount.
    PickPart {
        image: ChosenImage,
        cursor: usize,
    },
}

/// The folder an image's partition is mounted on: `<base>/<image name>-p<N>`, with characters
/// other than letters, digits, `.`, `_` and `-` replaced.
pub fn mount_dir(base: &Path, image: &Path, part: u32) -> PathBuf {
    let stem: String = file_name(image)
        .trim_end_matches(".lbi")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    base.join(format!("{stem}-p{part}"))
}

impl MountImageScreen {
    /// The first step: the image picker on the top folder.
    pub fn start(model: &mut Model) -> (Screen, Vec<Effect>) {
        let (browser, effect) = Browser::open(model, model.image_root.clone());
        (
            Screen::MountImage(Box::new(MountImageScreen::Pick(browser))),
            vec![effect],
        )
    }

    pub fn browser(&self) -> Option<&Browser> {
        match self {
            MountImageScreen::Pick(b) => Some(b),
            MountImageScreen::PickPart { .. } => None,
        }
    }

    pub fn browser_mut(&mut self) -> Option<&mut Browser> {
        match self {
            MountImageScreen::Pick(b) => Some(b),
            MountImageScreen::PickPart { .. } => None,
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            MountImageScreen::Pick(_) => "Mount image read-only - image",
            MountImageScreen::PickPart { .. } => "Mount image read-only - partition",
        }
    }

    pub fn help(&self) -> &'static str {
        match self {
            MountImageScreen::Pick(_) => image_picker::HELP,
            MountImageScreen::PickPart { .. } => " ↑↓ move  Enter mount read-only  Esc back",
        }
    }
}

/// Mounting partition `part` of `image`: the effect, and the main screen with a status line.
fn mount(model: &mut Model, image: PathBuf, part: u32) -> (Screen, Vec<Effect>) {
    let id = model.request();
    let dir = mount_dir(Path::new(MOUNT_BASE), &image, part);
    model.status = Some(format!(
        "mounting partition {part} of {} read-only at {}...",
        disk::text::printable(&file_name(&image)),
        dir.display()
    ));
    (
        Screen::Main,
        vec![Effect::MountImage {
            id,
            image,
            part,
            dir,
        }],
    )
}

/// Keys of the steps.
pub fn key(model: &mut Model, s: MountImageScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |s: MountImageScreen| Screen::MountImage(Box::new(s));
    match s {
        MountImageScreen::Pick(b) => image_picker::pick_image(
            model,
            b,
            key,
            |b| wrap(MountImageScreen::Pick(b)),
            |model, image| {
                let parts = image.summary.restorable_parts();
                match (image.summary.whole_disk, parts.as_slice()) {
                    (false, _) => {
                        let part = parts.first().copied().unwrap_or(0);
                        mount(model, image.path, part)
                    }
                    (true, [one]) => mount(model, image.path, *one),
                    _ => {
                        let cursor = image
                            .summary
                            .parts
                            .iter()
                            .position(|p| p.restorable && p.fs != "swap" && !p.fs.is_empty())
                            .unwrap_or(0);
                        (
                            wrap(MountImageScreen::PickPart { image, cursor }),
                            Vec::new(),
                        )
                    }
                }
            },
        ),
        MountImageScreen::PickPart { image, cursor } => {
            let parts = &image.summary.parts;
            if let Some(c) = nav(cursor, parts.len(), key) {
                return (
                    wrap(MountImageScreen::PickPart { image, cursor: c }),
                    Vec::new(),
                );
            }
            match key {
                Key::Esc | Key::Backspace => {
                    let (browser, effect) = Browser::at_image(model, &image.path);
                    (wrap(MountImageScreen::Pick(browser)), vec![effect])
                }
                Key::Enter => match parts.get(cursor) {
                    Some(p) if p.restorable => {
                        let part = p.number;
                        mount(model, image.path.clone(), part)
                    }
                    Some(p) => {
                        model.status = Some(format!(
                            "partition {} was not imaged: there is nothing to mount",
                            p.number
                        ));
                        (
                            wrap(MountImageScreen::PickPart { image, cursor }),
                            Vec::new(),
                        )
                    }
                    None => (
                        wrap(MountImageScreen::PickPart { image, cursor }),
                        Vec::new(),
                    ),
                },
                _ => (
                    wrap(MountImageScreen::PickPart { image, cursor }),
                    Vec::new(),
                ),
            }
        }
    }
}

/// Draws the step.
pub fn draw(model: &Model, s: &MountImageScreen, frame: &mut Frame, area: Rect) {
    match s {
        MountImageScreen::Pick(b) => image_picker::draw(model, b, None, frame, area),
        MountImageScreen::PickPart { image, cursor } => {
            crate::widgets::draw_part_picker(frame, area, "Mount", image, *cursor);
        }
    }
}

/// Runs `lifeboat mount IMAGE --part N DIR` (this program, as a child process) after creating
/// DIR; the text for the status line, or why it failed.
pub fn run_mount(image: &Path, part: u32, dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("finding lifeboat: {e}"))?;
    let out = std::process::Command::new(exe)
        .arg("mount")
        .arg(image)
        .arg("--part")
        .arg(part.to_string())
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running lifeboat mount: {e}"))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if out.status.success() {
        log::info!("lifeboat mount: {}", text(&out.stdout));
        Ok(format!(
            "partition {part} of {} is mounted read-only at {} (unmount: lifeboat umount {})",
            file_name(image),
            dir.display(),
            dir.display()
        ))
    } else {
        let _ = std::fs::remove_dir(dir);
        let err = text(&out.stderr);
        log::error!("lifeboat mount {}: {err}", image.display());
        Err(err
            .lines()
            .last()
            .unwrap_or("lifeboat mount failed")
            .trim_start_matches("lifeboat: error: ")
            .to_string())
    }
}
