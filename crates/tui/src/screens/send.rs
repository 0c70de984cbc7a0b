//! Send an image to several PCs (issue 19): pick the image, say how many PCs, how long to wait
//! after the first joined and the most bandwidth, then udp-sender streams it once by multicast
//! (`engine::cast::udp::serve`, the session `lifeboat serve` runs). The live screen lists the
//! receivers as they join, udp-sender's progress line and the reports as they arrive; the
//! result is one line per receiver — done, failed (why), dropped — saved beside the image.
//! Esc + y stops the session at every step, also while waiting for the PCs.

use crate::model::{Effect, Key, Model, RequestId, Screen};
use crate::widgets::image_picker::{self, Browser};
use crate::widgets::running::Run;
use crate::widgets::{
    bad_style, error_lines, good_style, nav, popup, shown, shown_path, warn_style,
};
use disk::text::printable;
use engine::cast::udp::{self, Receiver, SendEvent, SenderOptions, Session};
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;
use std::path::PathBuf;

/// The fields of the options form.
pub const FIELDS: [&str; 3] = ["Number of PCs", "Start anyway after (seconds)", "Max rate"];

/// How a session ended, as the worker reports it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub session: Session,
    /// Where the session report was saved, or why it could not be.
    pub saved: Result<PathBuf, String>,
}

/// The steps of sending an image.
#[derive(Debug)]
pub enum SendScreen {
    Pick(Browser),
    Options {
        image: PathBuf,
        /// Number of PCs, wait seconds (empty: wait for all), max rate (empty: no limit).
        fields: [String; 3],
        focus: usize,
        error: Option<String>,
    },
    Running {
        image: PathBuf,
        opts: SenderOptions,
        run: Run,
        /// The receivers as udp-sender names them, in join order.
        receivers: Vec<Receiver>,
        /// udp-sender's last progress line.
        progress: Option<String>,
        /// The reports received so far (one line each).
        reports: Vec<String>,
        /// Waiting for the PCs to join (false once the image is sent).
        waiting: bool,
        /// Why reports cannot arrive (no listener).
        warning: Option<String>,
    },
    Done {
        image: PathBuf,
        result: Result<Box<Sent>, String>,
        scroll: usize,
    },
}

impl SendScreen {
    /// The first step: the image picker on the top folder.
    pub fn start(model: &mut Model) -> (Screen, Vec<Effect>) {
        let (browser, effect) = Browser::open(model, model.image_root.clone());
        (
            Screen::Send(Box::new(SendScreen::Pick(browser))),
            vec![effect],
        )
    }

    pub fn run(&self) -> Option<&Run> {
        match self {
            SendScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            SendScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn browser(&self) -> Option<&Browser> {
        match self {
            SendScreen::Pick(b) => Some(b),
            _ => None,
        }
    }

    pub fn browser_mut(&mut self) -> Option<&mut Browser> {
        match self {
            SendScreen::Pick(b) => Some(b),
            _ => None,
        }
    }

    pub fn animated(&self) -> bool {
        matches!(self, SendScreen::Running { waiting: true, .. })
    }

    pub fn title(&self) -> &'static str {
        match self {
            SendScreen::Pick(_) => "Send to several PCs - step 1 of 3: image",
            SendScreen::Options { .. } => "Send to several PCs - step 2 of 3: options",
            SendScreen::Running { .. } => "Send to several PCs - step 3 of 3: sending",
            SendScreen::Done { .. } => "Send to several PCs - result",
        }
    }

    pub fn help(&self) -> &'static str {
        match self {
            SendScreen::Pick(_) => image_picker::HELP,
            SendScreen::Options { .. } => " ↑↓ field  type the value  Enter start  Esc back",
            SendScreen::Running { run, .. } if run.ask_cancel => {
                " y stop the session  n keep going"
            }
            SendScreen::Running { .. } => " Esc stop",
            SendScreen::Done { .. } => " ↑↓ scroll  Enter back to the disks",
        }
    }
}

/// The sender's options from the form's fields, or what is wrong with them.
pub fn options(fields: &[String; 3]) -> Result<SenderOptions, String> {
    let clients: u32 = fields[0]
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or("the number of PCs is a number from 1 to 1000")?;
    let wait = match fields[1].trim() {
        "" => None,
        w => Some(
            w.parse::<u32>()
                .ok()
                .filter(|n| *n <= 86_400)
                .ok_or("the wait is a number of seconds (at most 86400), or empty")?,
        ),
    };
    let max_rate = match fields[2].trim() {
        "" => None,
        r => Some(udp::parse_rate(r)?),
    };
    Ok(SenderOptions {
        clients,
        wait,
        max_rate,
        ..SenderOptions::default()
    })
}

/// A sending session's news (`id`).
pub fn on_event(model: &mut Model, id: RequestId, event: SendEvent) {
    let Screen::Send(s) = &mut model.screen else {
        return;
    };
    let SendScreen::Running {
        run,
        receivers,
        progress,
        reports,
        waiting,
        warning,
        ..
    } = &mut **s
    else {
        return;
    };
    if run.id != id {
        return;
    }
    match event {
        SendEvent::Waiting { warning: w, .. } => *warning = w,
        SendEvent::Progress(line) => {
            *waiting = false;
            *progress = Some(line);
        }
        SendEvent::Receiver(r) => {
            if let Some(old) = receivers.iter_mut().find(|o| o.number == r.number) {
                *old = r;
            } else if receivers.len() < 1000 {
                receivers.push(r);
            }
        }
        SendEvent::AwaitingReports { .. } => *waiting = false,
        SendEvent::Report(d) => {
            if reports.len() < 1000 {
                reports.push(format!("{}: {}", d.from, d.report.line()));
            }
        }
    }
}

/// The session `id` ended.
pub fn on_sent(model: &mut Model, id: RequestId, result: Result<Box<Sent>, String>) {
    if let Screen::Send(s) = &mut model.screen {
        if let SendScreen::Running { image, run, .. } = &**s {
            if run.id == id {
                **s = SendScreen::Done {
                    image: image.clone(),
                    result,
                    scroll: 0,
                };
            }
        }
    }
}

/// Keys of the send screens.
pub fn key(model: &mut Model, s: SendScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |s: SendScreen| Screen::Send(Box::new(s));
    match s {
        SendScreen::Pick(b) => image_picker::pick_image(
            model,
            b,
            key,
            |b| wrap(SendScreen::Pick(b)),
            |_, image| {
                (
                    wrap(SendScreen::Options {
                        image: image.path,
                        fields: ["1".to_string(), String::new(), String::new()],
                        focus: 0,
                        error: None,
                    }),
                    Vec::new(),
                )
            },
        ),
        SendScreen::Options {
            image,
            mut fields,
            mut focus,
            mut error,
        } => {
            match key {
                Key::Esc => return SendScreen::start(model),
                Key::Up | Key::BackTab => focus = focus.saturating_sub(1),
                Key::Down | Key::Tab => focus = (focus + 1).min(FIELDS.len() - 1),
                Key::Backspace => {
                    fields[focus].pop();
                    error = None;
                }
                Key::Char(c) if c.is_ascii_alphanumeric() && fields[focus].len() < 12 => {
                    fields[focus].push(c);
                    error = None;
                }
                Key::Enter => match options(&fields) {
                    Ok(opts) => {
                        let id = model.request();
                        log::info!("sending {} to {} PCs", image.display(), opts.clients);
                        return (
                            wrap(SendScreen::Running {
                                image: image.clone(),
                                opts: opts.clone(),
                                run: Run::new(id),
                                receivers: Vec::new(),
                                progress: None,
                                reports: Vec::new(),
                                waiting: true,
                                warning: None,
                            }),
                            vec![Effect::Send {
                                id,
                                policy: crate::widgets::network::read_policy(model, &image),
                                name: shown_path(model, &image),
                                image,
                                options: opts,
                            }],
                        );
                    }
                    Err(e) => error = Some(e),
                },
                _ => {}
            }
            (
                wrap(SendScreen::Options {
                    image,
                    fields,
                    focus,
                    error,
                }),
                Vec::new(),
            )
        }
        SendScreen::Running {
            image,
            opts,
            mut run,
            receivers,
            progress,
            reports,
            waiting,
            warning,
        } => {
            let effects = run.key(key);
            (
                wrap(SendScreen::Running {
                    image,
                    opts,
                    run,
                    receivers,
                    progress,
                    reports,
                    waiting,
                    warning,
                }),
                effects,
            )
        }
        SendScreen::Done {
            image,
            result,
            scroll,
        } => {
            if let Some(s) = nav(scroll, 1000, key) {
                return (
                    wrap(SendScreen::Done {
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
                    wrap(SendScreen::Done {
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

/// One receiver's line on the live screen.
fn receiver_line(r: &Receiver) -> Line<'static> {
    let text = format!(
        "  #{:<3} {:<40} {}",
        r.number,
        printable(&r.address),
        match r.state {
            "done" => "has the whole image",
            s => s,
        }
    );
    match r.state {
        "dropped" => Line::styled(text, bad_style()),
        "done" => Line::styled(text, good_style()),
        _ => Line::raw(text),
    }
}

/// Draws the step.
pub fn draw(model: &Model, s: &SendScreen, frame: &mut Frame, area: Rect) {
    let block = |title: &'static str| Block::default().borders(Borders::ALL).title(title);
    match s {
        SendScreen::Pick(b) => image_picker::draw(model, b, None, frame, area),
        SendScreen::Options {
            image,
            fields,
            focus,
            error,
        } => {
            let mut lines = vec![
                Line::raw(format!(
                    "Send {} to several PCs at once",
                    shown_path(model, image)
                )),
                Line::raw(
                    "On each PC: boot Lifeboat and choose \"Receive an image\" (or a receive \
                     job).",
                ),
                Line::raw(""),
            ];
            for (i, (name, value)) in FIELDS.iter().zip(fields.iter()).enumerate() {
                let mark = if i == *focus { ">" } else { " " };
                let shown = if i == *focus {
                    format!("{value}_")
                } else {
                    value.clone()
                };
                lines.push(Line::raw(format!("{mark} {name:<30} {shown}")));
            }
            lines.push(Line::raw(""));
            lines.push(Line::raw(
                "Empty wait: wait for all the PCs. Rate like 100m or 5000k (bits/s); empty: no \
                 limit.",
            ));
            lines.push(Line::raw(format!(
                "udpcast port {} on the default interface; the image is sent once and checked \
                 on the way.",
                udp::DEFAULT_PORT
            )));
            if let Some(e) = error {
                lines.push(Line::raw(""));
                lines.push(Line::styled(shown(model, &printable(e)), warn_style()));
            }
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block(" Options ")),
                area,
            );
        }
        SendScreen::Running {
            image,
            opts,
            run,
            receivers,
            progress,
            reports,
            waiting,
            warning,
        } => {
            let mut lines = vec![Line::raw(format!("Sending {}", shown_path(model, image)))];
            let joined = receivers.len();
            lines.push(Line::raw(if *waiting {
                format!(
                    "Waiting for the PCs: {joined} of {} joined{} {}",
                    opts.clients,
                    opts.wait
                        .map(|w| format!(" (starts {w} s after the first)"))
                        .unwrap_or_default(),
                    crate::widgets::spinner(model.tick)
                )
            } else {
                format!("{joined} PCs in the session")
            }));
            if run.cancelling {
                lines.push(Line::styled("Stopping the session...", warn_style()));
            }
            if let Some(w) = warning {
                lines.push(Line::styled(shown(model, &printable(w)), warn_style()));
            }
            lines.push(Line::raw(progress.clone().unwrap_or_default()));
            lines.push(Line::raw(""));
            lines.push(Line::raw("Receivers:"));
            lines.extend(receivers.iter().map(receiver_line));
            if !reports.is_empty() {
                lines.push(Line::raw(""));
                lines.push(Line::raw("Reports:"));
                lines.extend(
                    reports
                        .iter()
                        .map(|r| Line::raw(format!("  {}", printable(r)))),
                );
            }
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block(" Session ")),
                area,
            );
            if run.ask_cancel {
                popup(
                    frame,
                    area,
                    " Stop? ",
                    "Stop the session? Every PC still receiving is left without a partition \
                     table. (y/n)",
                    warn_style(),
                );
            }
        }
        SendScreen::Done {
            image,
            result,
            scroll,
        } => {
            let mut lines = Vec::new();
            match result {
                Ok(sent) => {
                    let s = &sent.session;
                    lines.push(match s.failure() {
                        None => Line::styled(
                            format!("Every PC restored {}.", shown_path(model, image)),
                            good_style(),
                        ),
                        Some(why) => Line::styled(
                            format!(
                                "The session did not succeed: {}",
                                shown(model, &printable(&why))
                            ),
                            bad_style(),
                        ),
                    });
                    lines.push(Line::raw(""));
                    for l in s.text().lines() {
                        lines.push(Line::raw(printable(l).into_owned()));
                    }
                    lines.push(Line::raw(""));
                    lines.push(match &sent.saved {
                        Ok(p) => Line::raw(format!("Report saved to {}", shown_path(model, p))),
                        Err(e) => Line::styled(
                            format!(
                                "The report could not be saved: {}",
                                shown(model, &printable(e))
                            ),
                            warn_style(),
                        ),
                    });
                }
                Err(e) => lines.extend(error_lines(
                    model,
                    "The session could not start.",
                    e,
                    "Enter goes back to the disks.",
                )),
            }
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
