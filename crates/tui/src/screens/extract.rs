//! Extract, the steps after the file browser: pick the destination folder on a mounted drive,
//! check which names exist there (a worker request), ask whether to overwrite them, run, show the
//! result, and go back to the files. The worker code is [`crate::extract`]; an extract creates
//! files only in the folder the user chose and replaces existing ones only after the user said
//! yes. The check and the run carry request ids; a late answer for a destination the user left
//! is dropped.

use crate::model::{Effect, Key, Model, RequestId, Screen};
use crate::screens::files::{ExtractReport, ExtractRequest, FileSource, FileView, FilesScreen};
use crate::widgets::image_picker::{self, Browser, Folder};
use crate::widgets::running::{self, Run, Texts};
use crate::widgets::{
    bad_style, boxed, clock, file_name, good_style, nav, shown_path, spinner, warn_style,
};
use crate::widgets::{error_lines, shown};
use disk::text::printable;
use engine::units::human;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::Frame;
use std::path::PathBuf;

/// The title of an extract step.
pub fn title(f: &FilesScreen) -> &'static str {
    match f {
        FilesScreen::PickDest { .. } => "Extract - destination folder",
        FilesScreen::Checking { .. } | FilesScreen::AskOverwrite { .. } => {
            "Extract - checking the destination"
        }
        FilesScreen::Running { .. } => "Extract - running",
        _ => "Extract - result",
    }
}

/// The help line of an extract step.
pub fn help(f: &FilesScreen) -> &'static str {
    match f {
        FilesScreen::PickDest { .. } => {
            " ↑↓ move  Enter open  s extract here  Backspace up  Esc back"
        }
        FilesScreen::Checking { .. } => " Esc back",
        FilesScreen::AskOverwrite { .. } => {
            " y overwrite them  n keep them (extract the rest)  Esc back"
        }
        FilesScreen::Running { run, .. } if run.ask_cancel => " y stop extracting  n keep going",
        FilesScreen::Running { .. } => " Esc stop",
        _ => " ↑↓ scroll  Enter back to the files",
    }
}

/// The destination check `id` answered: ask about the names that exist, or start.
pub fn on_checked(model: &mut Model, id: RequestId, existing: Vec<PathBuf>) -> Vec<Effect> {
    let Screen::Files(f) = &mut model.screen else {
        return Vec::new();
    };
    let FilesScreen::Checking { id: waiting, .. } = &**f else {
        return Vec::new();
    };
    if *waiting != id {
        return Vec::new();
    }
    let screen = std::mem::replace(&mut **f, FilesScreen::Browse(FileView::placeholder()));
    let FilesScreen::Checking { view, request, .. } = screen else {
        return Vec::new();
    };
    let (screen, effects) = if existing.is_empty() {
        start(model, view, request)
    } else {
        (
            FilesScreen::AskOverwrite {
                view,
                request,
                existing,
            },
            Vec::new(),
        )
    };
    model.screen = Screen::Files(Box::new(screen));
    effects
}

/// The extract `id` finished: its result, when it is the one running.
pub fn on_extracted(model: &mut Model, id: RequestId, result: Result<ExtractReport, String>) {
    let Screen::Files(f) = &mut model.screen else {
        return;
    };
    if !matches!(&**f, FilesScreen::Running { run, .. } if run.id == id) {
        return;
    }
    let screen = std::mem::replace(&mut **f, FilesScreen::Browse(FileView::placeholder()));
    if let FilesScreen::Running { view, request, .. } = screen {
        **f = FilesScreen::Done {
            view,
            request,
            result,
            scroll: 0,
        };
    }
}

fn start(model: &mut Model, view: FileView, request: ExtractRequest) -> (FilesScreen, Vec<Effect>) {
    log::info!(
        "extract of {} objects to {} started{}",
        request.paths.len(),
        request.dest.display(),
        if request.overwrite {
            " (overwriting)"
        } else {
            ""
        }
    );
    let id = model.request();
    (
        FilesScreen::Running {
            view,
            request: request.clone(),
            run: Run::new(id),
        },
        vec![Effect::Extract {
            id,
            policy: crate::widgets::network::read_policy(
                model,
                crate::extract::source_file(&request.source),
            ),
            request,
        }],
    )
}

/// The destination picker on `dir` for files read from `source`: a partition's own disk is not
/// offered as a drive (recovered files are never written onto the disk they are read from; the
/// picker offers the disk's other partitions neither).
pub fn dest_picker(model: &mut Model, source: &FileSource, dir: PathBuf) -> (Browser, Effect) {
    let (mut browser, effect) = Browser::open(model, dir);
    if let FileSource::Live { node, .. } = source {
        browser.exclude = model
            .disks
            .iter()
            .map(|d| &d.device)
            .filter(|d| &d.path == node || d.partitions.iter().any(|p| &p.path == node))
            .map(|d| d.path.clone())
            .collect();
    }
    (browser, effect)
}

/// The destination picker again, on the folder of `request`.
fn dest_again(model: &mut Model, view: FileView, request: ExtractRequest) -> (Screen, Vec<Effect>) {
    let (browser, effect) = dest_picker(model, &view.source, request.dest);
    (
        Screen::Files(Box::new(FilesScreen::PickDest { view, browser })),
        vec![effect],
    )
}

/// Keys of the extract steps: destination → (overwrite?) → running → result.
pub fn key(model: &mut Model, f: FilesScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |f: FilesScreen| Screen::Files(Box::new(f));
    match f {
        FilesScreen::PickDest { view, browser } => {
            const ON_IMAGE: &str = "that is an image: s extracts into this folder";
            match image_picker::pick_folder(model, browser, key, ON_IMAGE) {
                Folder::Stay(browser, effects) => {
                    (wrap(FilesScreen::PickDest { view, browser }), effects)
                }
                Folder::Leave => (wrap(FilesScreen::Browse(view)), Vec::new()),
                Folder::Chosen(dest) => {
                    let request = ExtractRequest {
                        source: view.source.clone(),
                        paths: view.chosen(),
                        dest,
                        overwrite: false,
                    };
                    let id = model.request();
                    let check = Effect::CheckExtract {
                        id,
                        request: request.clone(),
                    };
                    (
                        wrap(FilesScreen::Checking { id, view, request }),
                        vec![check],
                    )
                }
            }
        }
        FilesScreen::Checking { id, view, request } => match key {
            // The worker's answer is dropped when it arrives (its id is no longer awaited).
            Key::Esc => dest_again(model, view, request),
            _ => (
                wrap(FilesScreen::Checking { id, view, request }),
                Vec::new(),
            ),
        },
        FilesScreen::AskOverwrite {
            view,
            mut request,
            existing,
        } => match key {
            Key::Char('y') | Key::Char('Y') => {
                request.overwrite = true;
                let (s, e) = start(model, view, request);
                (wrap(s), e)
            }
            Key::Char('n') | Key::Char('N') => {
                let (s, e) = start(model, view, request);
                (wrap(s), e)
            }
            Key::Esc => dest_again(model, view, request),
            _ => (
                wrap(FilesScreen::AskOverwrite {
                    view,
                    request,
                    existing,
                }),
                Vec::new(),
            ),
        },
        FilesScreen::Running {
            view,
            request,
            mut run,
        } => {
            let effects = run.key(key);
            (wrap(FilesScreen::Running { view, request, run }), effects)
        }
        FilesScreen::Done {
            mut view,
            request,
            result,
            scroll,
        } => {
            let len = match &result {
                Ok(r) => r.failed.len() + r.notes.len(),
                Err(_) => 0,
            };
            if let Some(s) = nav(scroll, len, key) {
                return (
                    wrap(FilesScreen::Done {
                        view,
                        request,
                        result,
                        scroll: s,
                    }),
                    Vec::new(),
                );
            }
            match key {
                Key::Enter | Key::Esc => {
                    if result.as_ref().is_ok_and(|r| r.failed.is_empty()) {
                        view.selected.clear();
                    }
                    (wrap(FilesScreen::Browse(view)), Vec::new())
                }
                _ => (
                    wrap(FilesScreen::Done {
                        view,
                        request,
                        result,
                        scroll,
                    }),
                    Vec::new(),
                ),
            }
        }
        other => (wrap(other), Vec::new()),
    }
}

/// Draws an extract step.
pub fn draw(model: &Model, f: &FilesScreen, frame: &mut Frame, area: Rect) {
    match f {
        FilesScreen::PickDest { browser, .. } => image_picker::draw(
            model,
            browser,
            Some("extracts the selected files"),
            frame,
            area,
        ),
        FilesScreen::Checking { request, .. } => boxed(
            frame,
            area,
            " Extract ",
            vec![Line::raw(format!(
                "Checking {} {}",
                shown_path(model, &request.dest),
                spinner(model.tick)
            ))],
        ),
        FilesScreen::AskOverwrite {
            request, existing, ..
        } => {
            let mut lines = vec![
                Line::styled(
                    format!(
                        "{} of the {} names exist in {}:",
                        existing.len(),
                        request.paths.len(),
                        shown_path(model, &request.dest)
                    ),
                    warn_style(),
                ),
                Line::raw(""),
            ];
            let shown = usize::from(area.height.saturating_sub(8)).max(1);
            for e in existing.iter().take(shown) {
                lines.push(Line::raw(format!("  {}", file_name(e))));
            }
            if existing.len() > shown {
                lines.push(Line::raw(format!(
                    "  ... and {} more",
                    existing.len() - shown
                )));
            }
            lines.push(Line::raw(""));
            lines.push(Line::raw(
                "Overwrite them (y), or keep them and extract the rest (n)?",
            ));
            boxed(frame, area, " Files exist ", lines);
        }
        FilesScreen::Running { request, run, view } => {
            let texts = Texts {
                head: [
                    Line::raw(format!(
                        "{} objects from {}",
                        request.paths.len(),
                        shown(model, &printable(&view.source.title()))
                    )),
                    Line::raw(format!("to {}", shown_path(model, &request.dest))),
                ],
                status: Line::raw("The source is only read."),
                stopping: "Stopping...",
                ask: (
                    " Stop? ",
                    "Stop extracting? Files done stay; the one being written is removed. (y/n)",
                ),
            };
            running::draw(frame, area, run, texts);
        }
        FilesScreen::Done {
            request,
            result,
            scroll,
            ..
        } => {
            let mut lines = Vec::new();
            match result {
                Ok(r) => {
                    let head = if r.image_unreadable.is_some() {
                        Line::styled(
                            "Extract stopped: the image could not be read any more.",
                            bad_style(),
                        )
                    } else if r.cancelled {
                        Line::styled("Extract stopped.", warn_style())
                    } else if r.failed.is_empty() {
                        Line::styled("Extract finished.", good_style())
                    } else {
                        Line::styled(
                            format!("Extract finished; {} objects failed:", r.failed.len()),
                            bad_style(),
                        )
                    };
                    lines.push(head);
                    if let Some(why) = &r.image_unreadable {
                        lines.push(Line::styled(shown(model, &printable(why)), bad_style()));
                        lines.push(Line::raw(
                            "The files listed as done are complete; the rest were not extracted.",
                        ));
                    }
                    lines.push(Line::raw(format!(
                        "{} files ({}), {} folders, {} symlinks into {} in {}",
                        r.files,
                        human(r.bytes),
                        r.dirs,
                        r.symlinks,
                        shown_path(model, &request.dest),
                        clock(r.seconds as u64)
                    )));
                    lines.push(Line::raw(""));
                    let all = r
                        .failed
                        .iter()
                        .map(|(p, e)| {
                            let text =
                                format!("FAILED {}: {}", printable(p), shown(model, &printable(e)));
                            Line::styled(text, bad_style())
                        })
                        .chain(
                            r.notes.iter().map(|n| {
                                Line::raw(format!("note: {}", shown(model, &printable(n))))
                            }),
                        );
                    lines.extend(all.skip(*scroll));
                }
                Err(e) => {
                    lines.extend(error_lines(
                        model,
                        "Extract did not start.",
                        e,
                        "Enter goes back to the files: choose another folder (s) or free space \
                         on the drive, and extract again.",
                    ));
                }
            }
            boxed(frame, area, " Result ", lines);
        }
        // The browsing steps are drawn by `files`.
        FilesScreen::PickImage(_)
        | FilesScreen::PickPart { .. }
        | FilesScreen::PickLv { .. }
        | FilesScreen::Browse(_) => {}
    }
}
