//! Verify an image: pick it, check every chunk on a worker (reads only), show what is bad. The
//! worker's progress and result carry the job's id ([`Run::id`]).

use crate::model::{Effect, Key, Model, RequestId, Screen};
use crate::widgets::image_picker::{self, Browser};
use crate::widgets::running::{self, Run, Texts};
use crate::widgets::{bad_style, good_style, nav, shown_path};
use crate::widgets::{error_lines, shown};
use disk::text::printable;
use engine::units::human;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;
use std::path::PathBuf;

/// The steps of verifying an image.
#[derive(Debug)]
pub enum VerifyScreen {
    Pick(Browser),
    Running {
        image: PathBuf,
        run: Run,
    },
    Done {
        image: PathBuf,
        /// The report, or why verify could not run (cannot open, cancelled).
        result: Result<image::VerifyReport, String>,
        /// The first line of the list shown.
        scroll: usize,
    },
}

impl VerifyScreen {
    /// The first step, on the top folder.
    pub fn start(model: &mut Model) -> (Screen, Vec<Effect>) {
        let (browser, effect) = Browser::open(model, model.image_root.clone());
        (
            Screen::Verify(Box::new(VerifyScreen::Pick(browser))),
            vec![effect],
        )
    }

    /// Verifying `image` now (after choosing it, or after a backup).
    pub fn running(model: &mut Model, image: PathBuf) -> (Screen, Vec<Effect>) {
        log::info!("verify of {} started", image.display());
        let id = model.request();
        (
            Screen::Verify(Box::new(VerifyScreen::Running {
                image: image.clone(),
                run: Run::new(id),
            })),
            vec![Effect::VerifyImage {
                id,
                policy: crate::widgets::network::read_policy(model, &image),
                image,
            }],
        )
    }

    pub fn run(&self) -> Option<&Run> {
        match self {
            VerifyScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            VerifyScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn browser(&self) -> Option<&Browser> {
        match self {
            VerifyScreen::Pick(b) => Some(b),
            _ => None,
        }
    }

    pub fn browser_mut(&mut self) -> Option<&mut Browser> {
        match self {
            VerifyScreen::Pick(b) => Some(b),
            _ => None,
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            VerifyScreen::Pick(_) => "Verify image - step 1 of 2: image",
            VerifyScreen::Running { .. } => "Verify image - step 2 of 2: running",
            VerifyScreen::Done { .. } => "Verify image - step 2 of 2: result",
        }
    }

    pub fn help(&self) -> &'static str {
        match self {
            VerifyScreen::Pick(_) => image_picker::HELP,
            VerifyScreen::Running { run, .. } if run.ask_cancel => {
                " y stop verifying  n keep going"
            }
            VerifyScreen::Running { .. } => " Esc stop",
            VerifyScreen::Done { .. } => " ↑↓ scroll  Enter back to the disks",
        }
    }
}

/// The verify `id` finished: its result, when it is the one running.
pub fn on_verified(model: &mut Model, id: RequestId, result: Result<image::VerifyReport, String>) {
    if let Screen::Verify(v) = &mut model.screen {
        if let VerifyScreen::Running { image, run } = &**v {
            if run.id == id {
                **v = VerifyScreen::Done {
                    image: image.clone(),
                    result,
                    scroll: 0,
                };
            }
        }
    }
}

/// Keys of the verify screens.
pub fn key(model: &mut Model, v: VerifyScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |v: VerifyScreen| Screen::Verify(Box::new(v));
    match v {
        VerifyScreen::Pick(b) => image_picker::pick_image(
            model,
            b,
            key,
            |b| wrap(VerifyScreen::Pick(b)),
            |model, image| VerifyScreen::running(model, image.path),
        ),
        VerifyScreen::Running { image, mut run } => {
            let effects = run.key(key);
            (wrap(VerifyScreen::Running { image, run }), effects)
        }
        VerifyScreen::Done {
            image,
            result,
            scroll,
        } => {
            let len = match &result {
                Ok(r) => r.bad.len() + r.structure.len(),
                Err(_) => 0,
            };
            if let Some(s) = nav(scroll, len, key) {
                return (
                    wrap(VerifyScreen::Done {
                        image,
                        result,
                        scroll: s,
                    }),
                    Vec::new(),
                );
            }
            match key {
                Key::Enter | Key::Esc => (Screen::Main, Vec::new()),
                _ => (
                    wrap(VerifyScreen::Done {
                        image,
                        result,
                        scroll,
                    }),
                    Vec::new(),
                ),
            }
        }
    }
}

/// Draws the step.
pub fn draw(model: &Model, v: &VerifyScreen, frame: &mut Frame, area: Rect) {
    match v {
        VerifyScreen::Pick(b) => image_picker::draw(model, b, None, frame, area),
        VerifyScreen::Running { image, run } => {
            let texts = Texts {
                head: [
                    Line::raw(format!("Verifying {}", shown_path(model, image))),
                    Line::raw("Every chunk is read, decompressed and checked; nothing is written."),
                ],
                status: Line::raw(""),
                stopping: "Stopping...",
                ask: (
                    " Stop? ",
                    "Stop verifying? The image is not changed either way. (y/n)",
                ),
            };
            running::draw(frame, area, run, texts);
        }
        VerifyScreen::Done {
            image,
            result,
            scroll,
        } => {
            let mut lines = Vec::new();
            match result {
                Ok(r) if r.is_ok() => {
                    lines.push(Line::styled("Image OK.", good_style()));
                    lines.push(Line::raw(""));
                    lines.push(Line::raw(format!(
                        "{}: {} chunks, {} of data, every checksum matches.",
                        shown_path(model, image),
                        r.chunks,
                        human(r.bytes)
                    )));
                }
                Ok(r) => {
                    lines.push(Line::styled(
                        format!(
                            "Image DAMAGED: {} bad chunks, {} structural problems.",
                            r.bad.len(),
                            r.structure.len()
                        ),
                        bad_style(),
                    ));
                    lines.push(Line::raw(format!(
                        "{}: {} chunks, {} of data checked.",
                        shown_path(model, image),
                        r.chunks,
                        human(r.bytes)
                    )));
                    lines.push(Line::raw(""));
                    let all: Vec<String> =
                        r.bad
                            .iter()
                            .map(|b| format!("BAD: {}", shown(model, &printable(&b.to_string()))))
                            .chain(r.structure.iter().map(|s| {
                                format!("BAD: {}", shown(model, &printable(&s.to_string())))
                            }))
                            .collect();
                    lines.extend(
                        all.into_iter()
                            .skip(*scroll)
                            .map(|l| Line::styled(l, Style::default().fg(Color::Red))),
                    );
                }
                Err(e) => {
                    lines.extend(error_lines(
                        model,
                        "Verify did not complete.",
                        e,
                        "Enter goes back to the disks; check that the image's drive is attached \
                         and choose the image again (i).",
                    ));
                }
            }
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(Block::default().borders(Borders::ALL).title(" Result ")),
                area,
            );
        }
    }
}
