//! Restore, its first two steps: pick the image, then what to restore from it (the whole disk,
//! or one partition). The later steps are the transfer wizard's ([`Action::RestoreDisk`],
//! [`Action::RestorePartition`]).

use crate::inventory::Endpoint;
use crate::model::{Effect, Key, Model, Screen};
use crate::screens::transfer::{Action, Wizard};
use crate::widgets::image_picker::{
    self, summary_lines, Browser, ChosenImage, ImagePart, ImageSummary,
};
use crate::widgets::{boxed, file_name, nav, picker, refused_item};
use disk::text::{identity, printable};
use engine::units::human;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::ListItem;
use ratatui::Frame;

/// The steps of a restore before the target.
#[derive(Debug)]
pub enum RestoreScreen {
    PickImage(Browser),
    PickWhat { image: ChosenImage, cursor: usize },
}

impl RestoreScreen {
    /// The first step, on the top folder.
    pub fn start(model: &mut Model) -> (Screen, Vec<Effect>) {
        let (browser, effect) = Browser::open(model, model.image_root.clone());
        (
            Screen::Restore(Box::new(RestoreScreen::PickImage(browser))),
            vec![effect],
        )
    }

    pub fn browser(&self) -> Option<&Browser> {
        match self {
            RestoreScreen::PickImage(b) => Some(b),
            RestoreScreen::PickWhat { .. } => None,
        }
    }

    pub fn browser_mut(&mut self) -> Option<&mut Browser> {
        match self {
            RestoreScreen::PickImage(b) => Some(b),
            RestoreScreen::PickWhat { .. } => None,
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            RestoreScreen::PickImage(_) => "Restore - step 1 of 7: image",
            RestoreScreen::PickWhat { .. } => "Restore - step 2 of 7: what to restore",
        }
    }

    pub fn help(&self) -> &'static str {
        match self {
            RestoreScreen::PickImage(_) => image_picker::HELP,
            RestoreScreen::PickWhat { .. } => " ↑↓ move  Enter choose  Esc back",
        }
    }
}

/// What can be restored from an image: the whole disk, or one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreChoice {
    Disk,
    Partition(ImagePart),
}

/// The restore choices an image offers, each with why it cannot be used, if it cannot.
pub fn restore_choices(s: &ImageSummary) -> Vec<(RestoreChoice, Option<String>)> {
    let mut out = Vec::new();
    if s.whole_disk {
        out.push((RestoreChoice::Disk, None));
    }
    for p in &s.parts {
        let refusal = (!p.restorable).then(|| {
            format!(
                "partition {} was not imaged (only its header or nothing was stored)",
                p.number
            )
        });
        out.push((RestoreChoice::Partition(p.clone()), refusal));
    }
    out
}

/// The endpoint a restore reads: the image, as a disk (`choice` Disk) or one of its partitions.
pub fn image_endpoint(image: &ChosenImage, choice: &RestoreChoice) -> Endpoint {
    let s = &image.summary;
    let name = crate::widgets::file_name(&image.path);
    // The manifest says `unknown` for what the source disk did not report.
    let known = |v: &str| (v != "unknown").then(|| v.to_string());
    let (model, serial) = (known(&s.model), known(&s.serial));
    let made_from = format!(
        "{}, {}",
        identity(None, model.as_deref(), serial.as_deref(), None),
        human(s.source_size)
    );
    match choice {
        RestoreChoice::Disk => Endpoint {
            path: image.path.clone(),
            offset: 0,
            len: s.source_size,
            disk: image.path.clone(),
            number: None,
            label: format!("{name} ({made_from})"),
            identity: format!("image {name} of {made_from}"),
            table: s.table.clone(),
            needs: s.needs,
        },
        RestoreChoice::Partition(p) => Endpoint {
            path: image.path.clone(),
            offset: 0,
            len: p.size,
            disk: image.path.clone(),
            number: Some(p.number),
            label: format!("{name} partition {}", p.line()),
            identity: format!("partition {} in image {name} of {made_from}", p.number),
            table: None,
            needs: p.size,
        },
    }
}

/// Keys of the first restore steps.
pub fn key(model: &mut Model, r: RestoreScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |r: RestoreScreen| Screen::Restore(Box::new(r));
    match r {
        RestoreScreen::PickImage(b) => image_picker::pick_image(
            model,
            b,
            key,
            |b| wrap(RestoreScreen::PickImage(b)),
            |_, image| {
                let cursor = restore_choices(&image.summary)
                    .iter()
                    .position(|(_, refusal)| refusal.is_none())
                    .unwrap_or(0);
                (wrap(RestoreScreen::PickWhat { image, cursor }), Vec::new())
            },
        ),
        RestoreScreen::PickWhat { image, cursor } => {
            let choices = restore_choices(&image.summary);
            if let Some(c) = nav(cursor, choices.len(), key) {
                model.status = None;
                return (
                    wrap(RestoreScreen::PickWhat { image, cursor: c }),
                    Vec::new(),
                );
            }
            match key {
                Key::Esc | Key::Backspace => {
                    model.status = None;
                    let (browser, effect) = Browser::at_image(model, &image.path);
                    (wrap(RestoreScreen::PickImage(browser)), vec![effect])
                }
                Key::Enter => match choices.get(cursor) {
                    Some((_, Some(refusal))) => {
                        model.status = Some(refusal.clone());
                        (wrap(RestoreScreen::PickWhat { image, cursor }), Vec::new())
                    }
                    Some((choice, None)) => {
                        model.status = None;
                        let action = match choice {
                            RestoreChoice::Disk => Action::RestoreDisk,
                            RestoreChoice::Partition(_) => Action::RestorePartition,
                        };
                        let source = image_endpoint(&image, choice);
                        log::info!("restore of {} chosen", source.identity);
                        (Wizard::restore(model, action, image, source), Vec::new())
                    }
                    None => (wrap(RestoreScreen::PickWhat { image, cursor }), Vec::new()),
                },
                _ => (wrap(RestoreScreen::PickWhat { image, cursor }), Vec::new()),
            }
        }
    }
}

/// Draws the step.
pub fn draw(model: &Model, r: &RestoreScreen, frame: &mut Frame, area: Rect) {
    match r {
        RestoreScreen::PickImage(b) => image_picker::draw(model, b, None, frame, area),
        RestoreScreen::PickWhat { image, cursor } => {
            let choices = restore_choices(&image.summary);
            let [list_area, info] =
                Layout::vertical([Constraint::Min(4), Constraint::Length(8)]).areas(area);
            let items = choices
                .iter()
                .map(|(c, refusal)| {
                    let text = match c {
                        RestoreChoice::Disk => format!(
                            "The whole disk ({} table, {} partitions) onto a disk",
                            printable(image.summary.table.as_deref().unwrap_or("?")),
                            image.summary.parts.len()
                        ),
                        RestoreChoice::Partition(p) => {
                            format!("Partition {} into an existing partition", p.line())
                        }
                    };
                    match refusal {
                        Some(_) => refused_item(text),
                        None => ListItem::new(format!("  {text}")),
                    }
                })
                .collect();
            picker(
                frame,
                list_area,
                &format!(" Restore what from {}? ", file_name(&image.path)),
                items,
                *cursor,
                "This image holds nothing that can be restored.",
            );
            let mut lines = summary_lines(&image.summary);
            lines.insert(
                0,
                Line::raw(match choices.get(*cursor) {
                    Some((RestoreChoice::Disk, _)) => format!(
                        "The target disk needs at least {}; its table is written last.",
                        human(image.summary.needs)
                    ),
                    Some((RestoreChoice::Partition(p), _)) => format!(
                        "The target partition needs at least {}; the disk's table is not \
                         changed.",
                        human(p.size)
                    ),
                    None => String::new(),
                }),
            );
            boxed(frame, info, " Image ", lines);
        }
    }
}
