//! Drawing the transfer wizard's steps.

use super::{size_explanation, sources, targets, Action, Step, Wizard};
use crate::model::Model;
use crate::screens::transfer::job::PlannedJob;
use crate::widgets::running::{self, Texts};
use crate::widgets::{bad_style, candidate_list, explain, outcome, path_text};
use crate::widgets::{plan, selected_style, spinner, warn_style};
use crate::widgets::{shown, shown_path};
use disk::text::printable;
use engine::job::{Outcome, Overwrites};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

/// Draws the wizard's current step.
pub fn draw(model: &Model, w: &Wizard, frame: &mut Frame, area: Rect) {
    let part = w.action.picks_partitions();
    let what = if part { "partition" } else { "disk" };
    match &w.step {
        Step::PickSource { cursor } => {
            let list = sources(model, w.action);
            let [head, body, foot] = Layout::vertical([
                Constraint::Length(2),
                Constraint::Min(3),
                Constraint::Length(3),
            ])
            .areas(area);
            frame.render_widget(
                Paragraph::new(format!(
                    "Pick the {what} to copy FROM. It is only read, never written."
                ))
                .wrap(Wrap { trim: true }),
                head,
            );
            candidate_list(frame, body, &format!(" Source {what} "), &list, *cursor);
            let foot_text = list
                .get(*cursor)
                .map(|c| explain(model, c))
                .unwrap_or_default();
            frame.render_widget(Paragraph::new(foot_text).wrap(Wrap { trim: true }), foot);
        }
        Step::PickTarget { cursor, refused } => {
            let Some(source) = &w.source else { return };
            let list = targets(model, w.action, source);
            let [head, body, foot] = Layout::vertical([
                Constraint::Length(2),
                Constraint::Min(3),
                Constraint::Length(3),
            ])
            .areas(area);
            let verb = if w.action.is_restore() {
                "restore"
            } else {
                "copy"
            };
            frame.render_widget(
                Paragraph::new(vec![
                    Line::raw(format!("From: {}", source.label.trim_end())),
                    Line::styled(
                        format!("Pick the {what} to {verb} TO. Everything on it will be replaced."),
                        warn_style(),
                    ),
                ]),
                head,
            );
            candidate_list(frame, body, &format!(" Target {what} "), &list, *cursor);
            let foot_text = match refused {
                Some(r) => Text::styled(format!("Refused: {}", printable(r)), bad_style()),
                None => list
                    .get(*cursor)
                    .map(|c| explain(model, c))
                    .unwrap_or_default(),
            };
            frame.render_widget(Paragraph::new(foot_text).wrap(Wrap { trim: true }), foot);
        }
        Step::Options { cursor } => {
            let (Some(source), Some(target)) = (&w.source, &w.target) else {
                return;
            };
            let opts = w.action.options();
            let [head, body, foot] = Layout::vertical([
                Constraint::Length(3),
                Constraint::Length(opts.len() as u16 + 2),
                Constraint::Min(2),
            ])
            .areas(area);
            frame.render_widget(
                Paragraph::new(vec![
                    Line::raw(format!("From: {}", source.label.trim_end())),
                    Line::raw(format!("To:   {}", target.label.trim_end())),
                ]),
                head,
            );
            let items: Vec<ListItem> = opts
                .iter()
                .map(|o| {
                    let mark = if w.options.get(*o) { "[x]" } else { "[ ]" };
                    ListItem::new(format!(" {mark} {}", o.title()))
                })
                .collect();
            let mut state = ListState::default().with_selected(Some(*cursor));
            frame.render_stateful_widget(
                List::new(items)
                    .block(Block::default().borders(Borders::ALL).title(" Options "))
                    .highlight_style(selected_style()),
                body,
                &mut state,
            );
            let mut text = vec![Line::raw(size_explanation(w.action, source, target))];
            if let (Some(image), Action::RestoreDisk) = (&w.image, w.action) {
                let s = &image.summary;
                text.push(Line::raw(format!(
                    "The image was made from {}; the target is {}.",
                    s.source_identity(),
                    shown(model, &target.identity)
                )));
            }
            frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), foot);
        }
        Step::Planning { .. } => {
            frame.render_widget(
                Paragraph::new(format!(
                    "Checking the target and reading the source to make the plan {}",
                    spinner(model.tick)
                ))
                .wrap(Wrap { trim: true }),
                area,
            );
        }
        Step::Plan { plan, scroll } => {
            let [head, body] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
            frame.render_widget(
                Paragraph::new("Nothing has been written yet. This is what will happen:"),
                head,
            );
            plan::draw(frame, body, &shown(model, &plan.text()), *scroll);
        }
        Step::Refused { reason } => {
            frame.render_widget(
                Paragraph::new(vec![
                    Line::styled("Lifeboat will not write to this target:", bad_style()),
                    Line::raw(""),
                    Line::raw(shown(model, &printable(reason))),
                    Line::raw(""),
                    Line::raw("Nothing has been written."),
                ])
                .wrap(Wrap { trim: true })
                .block(Block::default().borders(Borders::ALL).title(" Refused ")),
                area,
            );
        }
        Step::Confirm {
            plan, typed, wrong, ..
        } => confirm_view(model, plan, typed, *wrong, frame, area),
        Step::Running { plan, run } => {
            let texts = Texts {
                head: [
                    Line::raw(format!(
                        "{} -> {}",
                        shown_path(model, &plan.source.path),
                        path_text(&plan.target.path)
                    )),
                    Line::raw(printable(&shown(model, plan.identity())).into_owned()),
                ],
                status: run.phase(model),
                stopping: "Cancelling at the next safe point...",
                ask: (
                    " Cancel? ",
                    "Cancel the job? The target will be left incomplete. (y/n)",
                ),
            };
            running::draw(frame, area, run, texts);
        }
        Step::Done {
            plan,
            outcome,
            target_state,
        } => done_view(model, plan, outcome, target_state.as_deref(), frame, area),
    }
}

fn confirm_view(
    model: &Model,
    plan: &PlannedJob,
    typed: &str,
    wrong: bool,
    frame: &mut Frame,
    area: Rect,
) {
    let what = match plan.plan.target.as_ref().map(|t| t.overwrites) {
        Some(Overwrites::Partition) => "ALL DATA ON THIS PARTITION WILL BE DESTROYED:",
        Some(Overwrites::FreeSpace) => {
            "THE FREE SPACE AND THE PARTITION TABLE OF THIS DISK WILL BE OVERWRITTEN:"
        }
        Some(Overwrites::Disk) | None => "ALL DATA ON THIS DISK WILL BE DESTROYED:",
    };
    let becomes = if plan.action.is_restore() {
        format!(
            "It will be restored from {}",
            shown(model, &plan.source.identity)
        )
    } else {
        format!(
            "It will become a copy of {}: {}",
            shown_path(model, &plan.source.path),
            shown(model, &plan.source.identity)
        )
    };
    let mut lines = vec![
        Line::styled(what, bad_style()),
        Line::raw(""),
        Line::styled(
            format!("  {}", printable(&shown(model, plan.identity()))),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Line::raw(format!("  {}", path_text(plan.target_path()))),
        Line::raw(""),
        Line::raw(printable(&becomes).into_owned()),
        Line::raw(""),
        Line::raw("Type yes and press Enter to start. Esc goes back."),
        Line::raw(""),
        Line::raw(format!("> {typed}_")),
    ];
    if wrong {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            "Only the word yes starts the job.",
            warn_style(),
        ));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Confirm ")),
        area,
    );
}

fn done_view(
    model: &Model,
    plan: &PlannedJob,
    outcome: &Outcome,
    target_state: Option<&str>,
    frame: &mut Frame,
    area: Rect,
) {
    let mut lines: Vec<Line> = outcome::lines(model, plan.action.title(), outcome, Vec::new())
        .into_iter()
        .map(|l| {
            let style = l.style;
            Line::styled(shown(model, &l.to_string()), style)
        })
        .collect();
    if outcome.status.is_complete() && plan.action.is_restore() {
        lines.push(Line::raw(format!(
            "{} now holds {}.",
            path_text(&plan.target.path),
            shown(model, &plan.source.identity)
        )));
    }
    if let Some(state) = target_state {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!("State of {}: {state}", path_text(&plan.target.path)),
            warn_style(),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::raw(match &model.log_path {
        Some(p) => format!("The log is in {}", p.display()),
        None => "The log is on the Log screen (l).".to_string(),
    }));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Result ")),
        area,
    );
}
