//! The running-job view, shared by every job (transfer, backup, verify, extract): what runs, a
//! progress bar, the figures, and the "stop?" question. [`Run`] is its state: the id of the job
//! (progress and the final message carry it, and a message for another id is dropped), the last
//! progress, and whether the user asked to stop.

use super::{clock, popup, warn_style};
use crate::model::{Effect, Key, RequestId};
use engine::units::human;
use engine::Progress;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Gauge, Paragraph};
use ratatui::Frame;

/// A job running on a worker thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The id the job's progress and result messages carry.
    pub id: RequestId,
    pub progress: Option<Progress>,
    /// The "stop?" question is shown.
    pub ask_cancel: bool,
    /// The user said yes: the job stops at its next safe point.
    pub cancelling: bool,
}

impl Run {
    /// A job just started under `id`.
    pub fn new(id: RequestId) -> Self {
        Run {
            id,
            progress: None,
            ask_cancel: false,
            cancelling: false,
        }
    }

    /// Esc asks, y cancels (once), n or Esc keeps going.
    pub fn key(&mut self, key: Key) -> Vec<Effect> {
        match (self.ask_cancel, key) {
            (false, Key::Esc) if !self.cancelling => self.ask_cancel = true,
            (true, Key::Char('y') | Key::Char('Y')) => {
                self.ask_cancel = false;
                self.cancelling = true;
                return vec![Effect::CancelJob { id: self.id }];
            }
            (true, Key::Char('n') | Key::Char('N') | Key::Esc) => self.ask_cancel = false,
            _ => {}
        }
        Vec::new()
    }

    /// Takes `progress` when it is this job's; a late message of an earlier job is dropped.
    pub fn on_progress(&mut self, id: RequestId, progress: Progress) {
        if id == self.id {
            self.progress = Some(progress);
        }
    }

    /// The phase the job reports (as the screens word it, [`super::shown`]), or `starting`.
    pub fn phase(&self, model: &crate::model::Model) -> Line<'static> {
        Line::raw(
            self.progress
                .as_ref()
                .map(|p| super::shown(model, &disk::text::printable(&p.phase)))
                .unwrap_or_else(|| "starting".to_string()),
        )
    }
}

/// What a job's running screen says around the progress bar.
#[derive(Debug)]
pub struct Texts<'a> {
    /// Two lines naming what runs (source, target).
    pub head: [Line<'static>; 2],
    /// The third line while the job runs (its phase, or a reassurance).
    pub status: Line<'static>,
    /// The third line once the user asked to stop.
    pub stopping: &'a str,
    /// Title and text of the "stop?" question.
    pub ask: (&'a str, &'a str),
}

/// Draws a running job: the head, the bar, the figures and, when asked, the question.
pub fn draw(frame: &mut Frame, area: Rect, run: &Run, texts: Texts) {
    let [head, gauge, stats] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(3),
        Constraint::Min(3),
    ])
    .areas(area);
    let [first, second] = texts.head;
    let third = if run.cancelling {
        Line::styled(texts.stopping.to_string(), warn_style())
    } else {
        texts.status
    };
    frame.render_widget(Paragraph::new(vec![first, second, third]), head);
    gauge_and_stats(run.progress.as_ref(), frame, gauge, stats);
    if run.ask_cancel {
        popup(frame, area, texts.ask.0, texts.ask.1, warn_style());
    }
}

/// The progress bar and the figures below it.
fn gauge_and_stats(progress: Option<&Progress>, frame: &mut Frame, gauge: Rect, stats: Rect) {
    let ratio = progress
        .filter(|p| p.total > 0)
        .map(|p| (p.done as f64 / p.total as f64).clamp(0.0, 1.0))
        .unwrap_or(0.0);
    frame.render_widget(
        Gauge::default()
            .block(Block::default().borders(Borders::ALL))
            .gauge_style(Style::default().fg(Color::Green).bg(Color::Black))
            .ratio(ratio)
            .label(format!("{:.1}%", ratio * 100.0)),
        gauge,
    );
    let lines = match progress {
        Some(p) => vec![
            Line::raw(format!("Done     {} of {}", human(p.done), human(p.total))),
            Line::raw(format!("Speed    {}/s", human(p.bytes_per_sec as u64))),
            Line::raw(format!("Elapsed  {}", clock(p.elapsed_secs as u64))),
            Line::raw(format!(
                "Left     {}",
                p.eta_secs.map(clock).unwrap_or_else(|| "-".to_string())
            )),
            if p.bad_bytes > 0 {
                Line::styled(
                    format!(
                        "Unreadable so far: {} (written as zeros)",
                        human(p.bad_bytes)
                    ),
                    warn_style(),
                )
            } else {
                Line::raw("Unreadable so far: none")
            },
        ],
        None => vec![Line::raw("Opening the disks...")],
    };
    frame.render_widget(Paragraph::new(lines), stats);
}
