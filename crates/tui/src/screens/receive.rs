//! Receive an image (issue 19): a `lifeboat serve` (or another Lifeboat's "Send this image to
//! several PCs") streams an image by multicast, and this PC restores it as it arrives. The disk
//! is chosen, checked and confirmed *before* the stream starts (a sender streams to every PC at
//! once and cannot wait for someone reading a prompt): `engine::job::plan_receive_target` →
//! the confirmation naming model, serial and size → `engine::job::receive`, which waits for
//! the sender, plans the restore from the stream without a second question, runs it and
//! reports the result to the sender. Esc stops at every step, also while waiting.

use crate::confirm::{self, ConfirmedReceive};
use crate::model::{Effect, Key, Model, RequestId, Screen};
use crate::widgets::running::{self, Run, Texts};
use crate::widgets::{bad_style, error_lines, nav, outcome, path_text, selected_style, warn_style};
use disk::text::printable;
use engine::job::{ReceiveTarget, Received, ReportDelivery};
use engine::restore::RestoreOptions;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;
use std::path::PathBuf;
use std::sync::Arc;

/// The udpcast port base a receiver listens on (a sender uses the same by default).
pub const PORT: u16 = engine::cast::udp::DEFAULT_PORT;

/// The options of a receive, toggled on the disk list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveSettings {
    pub grow_last: bool,
    pub new_ids: bool,
    pub verify: bool,
}

impl Default for ReceiveSettings {
    fn default() -> Self {
        ReceiveSettings {
            grow_last: true,
            new_ids: false,
            verify: true,
        }
    }
}

impl ReceiveSettings {
    pub fn options(self) -> RestoreOptions {
        RestoreOptions {
            grow_last: self.grow_last,
            new_ids: self.new_ids,
            verify: self.verify,
            discard: false,
            threads: 0,
        }
    }
}

/// The steps of receiving an image.
#[derive(Debug)]
pub enum ReceiveScreen {
    /// Choose the disk (and the options).
    Target {
        cursor: usize,
        settings: ReceiveSettings,
    },
    /// The engine checks the disk.
    Checking {
        id: RequestId,
        disk: PathBuf,
        cursor: usize,
        settings: ReceiveSettings,
    },
    /// The disk cannot be written: why.
    Refused {
        disk: PathBuf,
        error: String,
        cursor: usize,
        settings: ReceiveSettings,
    },
    /// Type yes.
    Confirm {
        target: Arc<ReceiveTarget>,
        typed: String,
        wrong: bool,
        cursor: usize,
        settings: ReceiveSettings,
    },
    /// Waiting for the sender (`plan` is `None`), then receiving.
    Running {
        target: Arc<ReceiveTarget>,
        run: Run,
        plan: Option<Vec<String>>,
    },
    Done {
        target: Arc<ReceiveTarget>,
        received: Box<Received>,
        scroll: usize,
    },
}

/// The whole disks a receive can be aimed at: every disk of the list (the engine refuses the
/// ones in use when one is chosen).
fn disks(model: &Model) -> Vec<(PathBuf, String)> {
    model
        .disks
        .iter()
        .map(|d| (d.device.path.clone(), d.device.identity()))
        .collect()
}

impl ReceiveScreen {
    /// The first step.
    pub fn start(model: &mut Model) -> (Screen, Vec<Effect>) {
        let _ = model;
        (
            Screen::Receive(Box::new(ReceiveScreen::Target {
                cursor: 0,
                settings: ReceiveSettings::default(),
            })),
            Vec::new(),
        )
    }

    pub fn run(&self) -> Option<&Run> {
        match self {
            ReceiveScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            ReceiveScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    /// The spinner turns while the disk is checked or the sender awaited.
    pub fn animated(&self) -> bool {
        matches!(
            self,
            ReceiveScreen::Checking { .. } | ReceiveScreen::Running { plan: None, .. }
        )
    }

    pub fn title(&self) -> &'static str {
        match self {
            ReceiveScreen::Target { .. }
            | ReceiveScreen::Checking { .. }
            | ReceiveScreen::Refused { .. } => "Receive an image - step 1 of 3: disk",
            ReceiveScreen::Confirm { .. } => "Receive an image - step 2 of 3: confirm",
            ReceiveScreen::Running { plan: None, .. } => {
                "Receive an image - step 3 of 3: waiting for a sender"
            }
            ReceiveScreen::Running { .. } => "Receive an image - step 3 of 3: receiving",
            ReceiveScreen::Done { .. } => "Receive an image - result",
        }
    }

    pub fn help(&self) -> &'static str {
        match self {
            ReceiveScreen::Target { .. } => {
                " ↑↓ disk  g grow last  n new ids  v verify  Enter next  Esc back"
            }
            ReceiveScreen::Checking { .. } => " Esc back",
            ReceiveScreen::Refused { .. } => " Enter/Esc choose another disk",
            ReceiveScreen::Confirm { .. } => " type yes, Enter to wait for the sender  Esc back",
            ReceiveScreen::Running { run, .. } if run.ask_cancel => " y stop  n keep going",
            ReceiveScreen::Running { .. } => " Esc stop",
            ReceiveScreen::Done { .. } => " ↑↓ scroll  Enter back to the disks",
        }
    }
}

/// The engine checked the disk (`id`): the confirmation, or why not.
pub fn on_planned(model: &mut Model, id: RequestId, result: Result<Arc<ReceiveTarget>, String>) {
    let Screen::Receive(r) = &mut model.screen else {
        return;
    };
    let ReceiveScreen::Checking {
        id: waiting,
        disk,
        cursor,
        settings,
    } = &**r
    else {
        return;
    };
    if *waiting != id {
        return;
    }
    let (disk, cursor, settings) = (disk.clone(), *cursor, *settings);
    **r = match result {
        Ok(target) => ReceiveScreen::Confirm {
            target,
            typed: String::new(),
            wrong: false,
            cursor,
            settings,
        },
        Err(error) => ReceiveScreen::Refused {
            disk,
            error,
            cursor,
            settings,
        },
    };
}

/// The stream of the receive `id` started: the plan made from it.
pub fn on_stream(model: &mut Model, id: RequestId, lines: Vec<String>) {
    if let Screen::Receive(r) = &mut model.screen {
        if let ReceiveScreen::Running { run, plan, .. } = &mut **r {
            if run.id == id {
                *plan = Some(lines);
            }
        }
    }
}

/// The receive `id` ended.
pub fn on_received(model: &mut Model, id: RequestId, received: Box<Received>) {
    if let Screen::Receive(r) = &mut model.screen {
        if let ReceiveScreen::Running { target, run, .. } = &**r {
            if run.id == id {
                **r = ReceiveScreen::Done {
                    target: Arc::clone(target),
                    received,
                    scroll: 0,
                };
            }
        }
    }
}

/// Keys of the receive screens.
pub fn key(model: &mut Model, r: ReceiveScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |r: ReceiveScreen| Screen::Receive(Box::new(r));
    match r {
        ReceiveScreen::Target {
            cursor,
            mut settings,
        } => {
            let list = disks(model);
            if let Some(c) = nav(cursor, list.len(), key) {
                return (
                    wrap(ReceiveScreen::Target {
                        cursor: c,
                        settings,
                    }),
                    Vec::new(),
                );
            }
            match key {
                Key::Esc => return (Screen::Main, Vec::new()),
                Key::Char('g') => settings.grow_last = !settings.grow_last,
                Key::Char('n') => settings.new_ids = !settings.new_ids,
                Key::Char('v') => settings.verify = !settings.verify,
                Key::Enter => {
                    if let Some((disk, _)) = list.get(cursor) {
                        let id = model.request();
                        return (
                            wrap(ReceiveScreen::Checking {
                                id,
                                disk: disk.clone(),
                                cursor,
                                settings,
                            }),
                            vec![Effect::PlanReceive {
                                id,
                                disk: disk.clone(),
                                options: settings.options(),
                            }],
                        );
                    }
                }
                _ => {}
            }
            (wrap(ReceiveScreen::Target { cursor, settings }), Vec::new())
        }
        ReceiveScreen::Checking {
            cursor, settings, ..
        }
        | ReceiveScreen::Refused {
            cursor, settings, ..
        } if matches!(key, Key::Esc | Key::Enter) => {
            (wrap(ReceiveScreen::Target { cursor, settings }), Vec::new())
        }
        r @ (ReceiveScreen::Checking { .. } | ReceiveScreen::Refused { .. }) => {
            (wrap(r), Vec::new())
        }
        ReceiveScreen::Confirm {
            target,
            mut typed,
            mut wrong,
            cursor,
            settings,
        } => {
            match key {
                Key::Esc => return (wrap(ReceiveScreen::Target { cursor, settings }), Vec::new()),
                Key::Char(c) if typed.chars().count() < 16 => {
                    typed.push(c);
                    wrong = false;
                }
                Key::Backspace => {
                    typed.pop();
                }
                Key::Enter => match confirm::accept_receive(&target, &typed) {
                    Some(confirmed) => return start(model, confirmed),
                    None => {
                        wrong = true;
                        typed.clear();
                    }
                },
                _ => {}
            }
            (
                wrap(ReceiveScreen::Confirm {
                    target,
                    typed,
                    wrong,
                    cursor,
                    settings,
                }),
                Vec::new(),
            )
        }
        ReceiveScreen::Running {
            target,
            mut run,
            plan,
        } => {
            let effects = run.key(key);
            (wrap(ReceiveScreen::Running { target, run, plan }), effects)
        }
        ReceiveScreen::Done {
            target,
            received,
            scroll,
        } => {
            if let Some(s) = nav(scroll, usize::MAX, key) {
                return (
                    wrap(ReceiveScreen::Done {
                        target,
                        received,
                        scroll: s.min(200),
                    }),
                    Vec::new(),
                );
            }
            match key {
                Key::Enter | Key::Esc => (Screen::Main, model.rescan()),
                _ => (
                    wrap(ReceiveScreen::Done {
                        target,
                        received,
                        scroll,
                    }),
                    Vec::new(),
                ),
            }
        }
    }
}

/// Starts waiting for the sender with the confirmed disk.
fn start(model: &mut Model, confirmed: ConfirmedReceive) -> (Screen, Vec<Effect>) {
    let id = model.request();
    let target = Arc::clone(confirmed.target());
    log::info!(
        "receive onto {} confirmed; waiting for a sender",
        target.target.path.display()
    );
    (
        Screen::Receive(Box::new(ReceiveScreen::Running {
            target,
            run: Run::new(id),
            plan: None,
        })),
        vec![Effect::StartReceive { id, confirmed }],
    )
}

fn on_off(b: bool) -> &'static str {
    if b {
        "[x]"
    } else {
        "[ ]"
    }
}

/// What the confirmed disk is, for the headings.
fn identity(t: &ReceiveTarget) -> String {
    printable(&t.target.identity).into_owned()
}

/// The line saying whether the result reached the sender.
pub fn delivery_line(d: &ReportDelivery) -> Line<'static> {
    match d {
        ReportDelivery::NotAsked => Line::raw("The sender asked for no report."),
        ReportDelivery::Delivered(to) => {
            Line::raw(format!("The result was reported to the sender ({to})."))
        }
        ReportDelivery::Failed { to, error } => Line::styled(
            printable(&format!(
                "The result could not be reported to the sender ({to}): {error}. The disk is as \
                 said above."
            ))
            .into_owned(),
            warn_style(),
        ),
    }
}

/// Draws the step.
pub fn draw(model: &Model, r: &ReceiveScreen, frame: &mut Frame, area: Rect) {
    let block = |title: &'static str| Block::default().borders(Borders::ALL).title(title);
    match r {
        ReceiveScreen::Target { cursor, settings }
        | ReceiveScreen::Checking {
            cursor, settings, ..
        } => {
            let list = disks(model);
            let mut lines = vec![
                Line::raw("Restore the image a sender on this network sends, onto which disk?"),
                Line::raw(""),
            ];
            if list.is_empty() {
                lines.push(Line::styled("No disk found.", warn_style()));
            }
            for (i, (path, ident)) in list.iter().enumerate() {
                let text = format!(" {:<14} {}", path_text(path), printable(ident));
                lines.push(if i == *cursor {
                    Line::styled(text, selected_style())
                } else {
                    Line::raw(text)
                });
            }
            lines.push(Line::raw(""));
            lines.push(Line::raw(format!(
                "{} g  grow the last partition to the end of a larger disk",
                on_off(settings.grow_last)
            )));
            lines.push(Line::raw(format!(
                "{} n  new disk and partition ids (PCs that must differ on one network)",
                on_off(settings.new_ids)
            )));
            lines.push(Line::raw(format!(
                "{} v  verify what was written",
                on_off(settings.verify)
            )));
            if let ReceiveScreen::Checking { disk, .. } = r {
                lines.push(Line::raw(""));
                lines.push(Line::raw(format!(
                    "Checking {} {}",
                    path_text(disk),
                    crate::widgets::spinner(model.tick)
                )));
            }
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block(" Target disk ")),
                area,
            );
        }
        ReceiveScreen::Refused { disk, error, .. } => {
            let lines = error_lines(
                model,
                &format!("{} cannot receive an image.", path_text(disk)),
                error,
                "Enter goes back to choose another disk.",
            );
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block(" Refused ")),
                area,
            );
        }
        ReceiveScreen::Confirm {
            target,
            typed,
            wrong,
            ..
        } => {
            let mut lines = vec![
                Line::styled("ALL DATA ON THIS DISK WILL BE DESTROYED:", bad_style()),
                Line::raw(""),
                Line::styled(
                    format!("  {}", identity(target)),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Line::raw(format!("  {}", path_text(&target.target.path))),
                Line::raw(""),
                Line::raw(
                    "It will receive the image a sender on this network sends. Once the \
                     stream starts, the restore is planned from it and runs without another \
                     question.",
                ),
                Line::raw(""),
                Line::raw("Type yes and press Enter to wait for the sender. Esc goes back."),
                Line::raw(""),
                Line::raw(format!("> {typed}_")),
            ];
            if *wrong {
                lines.push(Line::raw(""));
                lines.push(Line::styled(
                    "Only the word yes starts waiting for the sender.",
                    warn_style(),
                ));
            }
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block(" Confirm ")),
                area,
            );
        }
        ReceiveScreen::Running { target, run, plan } => {
            let second = match plan {
                None => Line::raw(format!(
                    "Waiting for a sender (udp port {PORT}) {}",
                    crate::widgets::spinner(model.tick)
                )),
                Some(_) => Line::raw(
                    "The image arrives from the sender; each chunk is written as it is received.",
                ),
            };
            let texts = Texts {
                head: [
                    Line::raw(format!("Receiving onto {}", identity(target))),
                    second,
                ],
                status: if plan.is_some() {
                    run.phase(model)
                } else {
                    Line::raw("Nothing is written until the sender starts.")
                },
                stopping: "Stopping...",
                ask: (
                    " Stop? ",
                    "Stop receiving? Once writing began, the disk is left without a partition \
                     table. (y/n)",
                ),
            };
            running::draw(frame, area, run, texts);
        }
        ReceiveScreen::Done {
            target,
            received,
            scroll,
        } => {
            let facts = vec![Line::raw(format!("Disk: {}", identity(target)))];
            let mut lines = match &received.outcome {
                Some(o) => outcome::lines(model, "Receive", o, facts),
                None => facts,
            };
            lines.push(Line::raw(""));
            lines.push(delivery_line(&received.delivery));
            let shown: Vec<Line> = lines.into_iter().skip(*scroll).collect();
            frame.render_widget(
                Paragraph::new(shown)
                    .wrap(Wrap { trim: false })
                    .block(block(" Result ")),
                area,
            );
        }
    }
}
