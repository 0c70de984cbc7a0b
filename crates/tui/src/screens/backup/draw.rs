//! Drawing the backup steps.

use super::{backup_sources, BackupJob, BackupScreen};
use crate::inventory::Candidate;
use crate::model::Model;
use crate::widgets::image_picker;
use crate::widgets::running::{self, Texts};
use crate::widgets::{bad_style, candidate_list, clock, explain, outcome, plan, shown_path};
use crate::widgets::{selected_style, shown, spinner, warn_style};
use disk::text::printable;
use engine::units::human;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

/// Draws the step.
pub fn draw(model: &Model, s: &BackupScreen, frame: &mut Frame, area: Rect) {
    match s {
        BackupScreen::PickSource { cursor } => {
            let [list_area, info] =
                Layout::vertical([Constraint::Min(5), Constraint::Length(4)]).areas(area);
            let list: Vec<Candidate> = backup_sources(model).into_iter().map(|(c, _)| c).collect();
            candidate_list(
                frame,
                list_area,
                " Back up which disk or partition? ",
                &list,
                *cursor,
            );
            let text = match list.get(*cursor) {
                Some(c) => explain(model, c),
                None => Text::raw("No disks found."),
            };
            frame.render_widget(
                Paragraph::new(text)
                    .wrap(Wrap { trim: true })
                    .block(Block::default().borders(Borders::ALL)),
                info,
            );
        }
        BackupScreen::PickFolder { browser, .. } => {
            image_picker::draw(model, browser, Some("saves the new image"), frame, area)
        }
        BackupScreen::Name {
            job,
            typed,
            refused,
            ..
        } => {
            let mut lines = vec![
                Line::raw(format!(
                    "The image is saved in {}",
                    shown_path(model, &job.request.dir)
                )),
                Line::raw(""),
                Line::raw(format!("File name: {typed}_")),
                Line::raw(""),
                Line::raw("\".lbi\" is added when missing; an existing file is never overwritten."),
            ];
            if let Some(r) = refused {
                lines.push(Line::raw(""));
                lines.push(Line::styled(r.clone(), bad_style()));
            }
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(Block::default().borders(Borders::ALL).title(" File name ")),
                area,
            );
        }
        BackupScreen::Key {
            typed, decrypted, ..
        } => {
            let mut lines = vec![
                Line::raw("The source holds an encrypted volume (LUKS or BitLocker)."),
                Line::raw(""),
                Line::raw(format!(
                    "Passphrase or recovery password: {}_",
                    "*".repeat(typed.chars())
                )),
                Line::raw(""),
                Line::raw(if *decrypted {
                    "It is unlocked read-only; the used blocks of the file system inside are \
                     stored decrypted, without the encryption header. The key itself is never \
                     stored and stays in memory for this backup only."
                } else {
                    "It is unlocked read-only; only the encrypted blocks its file system uses and \
                     its headers are stored, never the key or any decrypted data. The key stays \
                     in memory for this backup only."
                }),
                Line::raw(""),
                Line::raw(format!(
                    "[{}] Store the DECRYPTED file system instead (Tab)",
                    if *decrypted { "x" } else { " " }
                )),
            ];
            if *decrypted {
                lines.push(Line::styled(
                    "The image will hold the files readable by anyone, without the key, and a \
                     restore writes the volume back UNENCRYPTED.",
                    bad_style(),
                ));
            }
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(Block::default().borders(Borders::ALL).title(" Key ")),
                area,
            );
        }
        BackupScreen::Planning { request, .. } => {
            frame.render_widget(
                Paragraph::new(format!(
                    "Checking {} and planning the backup of {} {}",
                    shown_path(model, &request.dir),
                    shown_path(model, &request.source.endpoint.path),
                    spinner(model.tick)
                ))
                .wrap(Wrap { trim: true })
                .block(Block::default().borders(Borders::ALL)),
                area,
            );
        }
        BackupScreen::Refused { request, reason } => {
            frame.render_widget(
                Paragraph::new(vec![
                    Line::styled(
                        format!(
                            "The image cannot be saved in {}:",
                            shown_path(model, &request.dir)
                        ),
                        bad_style(),
                    ),
                    Line::raw(""),
                    Line::raw(shown(model, &printable(reason))),
                ])
                .wrap(Wrap { trim: true })
                .block(Block::default().borders(Borders::ALL).title(" Refused ")),
                area,
            );
        }
        BackupScreen::Password {
            first,
            second,
            refused,
            ..
        } => {
            let mut lines = vec![
                Line::raw(
                    "The image is encrypted with this password: without it nothing in the image \
                     can be read, not even the names of the partitions. Lifeboat cannot recover \
                     a forgotten password.",
                ),
                Line::raw(""),
                Line::raw(format!("Password:       {}_", first.masked())),
            ];
            if let Some(again) = second {
                lines.push(Line::raw(format!("Type it again:  {}_", again.masked())));
            }
            if let Some(r) = refused {
                lines.push(Line::raw(""));
                lines.push(Line::styled(r.clone(), bad_style()));
            }
            frame.render_widget(
                Paragraph::new(lines).wrap(Wrap { trim: false }).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(" Encrypt image "),
                ),
                area,
            );
        }
        BackupScreen::Options {
            job,
            settings,
            cursor,
        } => {
            let [list_area, info] =
                Layout::vertical([Constraint::Length(6), Constraint::Min(3)]).areas(area);
            let items: Vec<ListItem> = settings
                .lines()
                .into_iter()
                .map(|l| ListItem::new(format!("  {l}")))
                .collect();
            let mut state = ListState::default().with_selected(Some(*cursor));
            frame.render_stateful_widget(
                List::new(items)
                    .block(Block::default().borders(Borders::ALL).title(" Options "))
                    .highlight_style(selected_style()),
                list_area,
                &mut state,
            );
            frame.render_widget(
                Paragraph::new(backup_facts(model, job))
                    .wrap(Wrap { trim: true })
                    .block(Block::default().borders(Borders::ALL)),
                info,
            );
        }
        BackupScreen::Plan {
            job,
            scroll,
            settings,
        } => {
            let [plan_area, info] =
                Layout::vertical([Constraint::Min(5), Constraint::Length(6)]).areas(area);
            plan::draw(frame, plan_area, &job.text(), *scroll);
            let mut lines = backup_facts(model, job).lines;
            if settings.password.is_some() {
                lines.push(Line::raw(
                    "Encrypted: AES-256-GCM, key from the password by Argon2id.",
                ));
            }
            lines.push(Line::raw(
                "Only a new file is created; no disk is written. Enter starts the backup.",
            ));
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: true })
                    .block(Block::default().borders(Borders::ALL)),
                info,
            );
        }
        BackupScreen::Running { job, run, .. } => {
            let texts = Texts {
                head: [
                    Line::raw(format!(
                        "{} -> {}",
                        shown_path(model, &job.request.source.endpoint.path),
                        shown_path(model, &job.image())
                    )),
                    Line::raw("The source is only read."),
                ],
                status: run.phase(model),
                stopping: "Stopping; the partial image is deleted...",
                ask: (
                    " Stop? ",
                    "Stop the backup? The partial image is deleted. (y/n)",
                ),
            };
            running::draw(frame, area, run, texts);
        }
        BackupScreen::Done { job, outcome } => {
            let facts = match outcome.report() {
                Some(r) => report_facts(model, r),
                None => Vec::new(),
            };
            let mut lines = outcome::lines(model, "Backup", &outcome.outcome, facts);
            lines.push(Line::raw(""));
            if outcome.report().is_some() {
                lines.push(Line::raw("Press v to verify the image now."));
            } else {
                lines.push(Line::raw(format!(
                    "The source was only read. A partial {} is deleted.",
                    shown_path(model, &job.image())
                )));
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

/// The image's name and place, free space and the FAT rule, for the options and plan screens.
fn backup_facts(model: &Model, job: &BackupJob) -> Text<'static> {
    let mut lines = vec![Line::raw(format!(
        "Image  {}",
        shown_path(model, &job.image())
    ))];
    match job.free() {
        Some(free) => lines.push(Line::raw(format!(
            "Free   {} there; the image will be about {} (an estimate)",
            human(free),
            human(job.estimate())
        ))),
        None => lines.push(Line::raw("Free space there: unknown")),
    }
    if let Some(w) = job.space_warning() {
        lines.push(Line::styled(format!("Warning: {w}"), warn_style()));
    }
    if job.fat() {
        lines.push(Line::raw(
            "FAT drive: the image is split into volumes below 4 GiB.",
        ));
    }
    Text::from(lines)
}

/// The image, its size and volumes, and the unreadable sectors of a finished backup.
fn report_facts(model: &Model, r: &engine::backup::BackupReport) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::raw(format!("Image    {}", shown_path(model, &r.image))),
        Line::raw(format!(
            "Size     {} in {} volume{} ({} read in {})",
            human(r.bytes_written),
            r.volumes.len(),
            if r.volumes.len() == 1 { "" } else { "s" },
            human(r.bytes_read),
            clock(r.seconds as u64)
        )),
    ];
    if r.bad_sectors.is_empty() {
        lines.push(Line::raw("Every sector of the source was read."));
    } else {
        lines.push(Line::styled(
            format!(
                "{} in {} ranges could not be read: they are recorded in the image and restore \
                 as zeros.",
                human(r.bad_sectors.bytes()),
                r.bad_sectors.ranges.len()
            ),
            warn_style(),
        ));
    }
    lines.push(Line::raw(""));
    lines
}
