//! `view`: draws the [`Model`] into a frame. Read only. Colours are the basic eight (plus bold
//! and reverse), which read the same on a Linux VT and over a serial line.

use crate::model::{
    part_rows, sources, table_text, targets, Action, Ask, Candidate, DiskEntry, MenuItem, Model,
    Outcome, PlannedJob, Row, Screen, Step, Wizard,
};
use crate::model::{
    restore_choices, FileItem, FileView, FilesScreen, Listing, RestoreChoice, RestoreScreen,
};
use crate::model::{BackupScreen, BrowseEntry, Browser, ImageSummary, VerifyScreen};
use crate::update::{size_explanation, smart_text};
use engine::units::human;
use engine::Progress;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Gauge, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;
use std::path::Path;

/// The smallest screen the UI is laid out for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 25;

fn title_style() -> Style {
    Style::default()
        .fg(Color::White)
        .bg(Color::Blue)
        .add_modifier(Modifier::BOLD)
}

fn help_style() -> Style {
    Style::default().fg(Color::Black).bg(Color::Cyan)
}

fn selected_style() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

fn warn_style() -> Style {
    Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD)
}

fn bad_style() -> Style {
    Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
}

fn good_style() -> Style {
    Style::default()
        .fg(Color::Green)
        .add_modifier(Modifier::BOLD)
}

/// Draws the whole screen.
pub fn view(model: &Model, frame: &mut Frame) {
    let area = frame.area();
    if area.width < 40 || area.height < 10 {
        frame.render_widget(
            Paragraph::new("Lifeboat needs a larger terminal (80x25)").wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let [title, body, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut head = format!(
        " Lifeboat {} - {}",
        env!("CARGO_PKG_VERSION"),
        screen_title(model)
    );
    if let (Some(mode), Screen::Main | Screen::Menu { .. } | Screen::Ask(_)) =
        (model.boot_mode, &model.screen)
    {
        let right = format!("{} ", mode.text());
        let pad =
            usize::from(title.width).saturating_sub(head.chars().count() + right.chars().count());
        if pad > 0 {
            head.push_str(&" ".repeat(pad));
            head.push_str(&right);
        }
    }
    frame.render_widget(Paragraph::new(head).style(title_style()), title);
    frame.render_widget(Paragraph::new(help_text(model)).style(help_style()), help);
    let status_line = match (&model.status, &model.scan_error) {
        (Some(s), _) => Line::styled(format!(" {s}"), warn_style()),
        (None, Some(e)) => Line::styled(format!(" cannot list disks: {e}"), bad_style()),
        (None, None) if model.scanning => Line::raw(format!(" scanning disks {}", spinner(model))),
        _ => Line::raw(""),
    };
    frame.render_widget(Paragraph::new(status_line), status);

    match &model.screen {
        Screen::Main => main_view(model, frame, body),
        Screen::Menu { cursor } => {
            main_view(model, frame, body);
            menu_view(model, *cursor, frame, body);
        }
        Screen::Ask(ask) => {
            main_view(model, frame, body);
            let text = match ask {
                Ask::Reboot => "Reboot the computer now? (y/n)",
                Ask::PowerOff => "Power off the computer now? (y/n)",
            };
            popup(frame, body, " Confirm ", text, warn_style());
        }
        Screen::Log { scroll } => log_view(model, *scroll, frame, body),
        Screen::Wizard(w) => wizard_view(model, w, frame, body),
        Screen::Verify(v) => verify_view(model, v, frame, body),
        Screen::Backup(b) => backup_view(model, b, frame, body),
        Screen::Restore(r) => restore_view(model, r, frame, body),
        Screen::Files(f) => files_view(model, f, frame, body),
    }
}

/// True when the screen shows the spinner, so that a tick changes what is drawn. Everything
/// else changes only on keys and worker messages, and the runtime redraws only then.
pub fn animated(model: &Model) -> bool {
    let waiting_browser = |b: &Browser| b.entries.is_none();
    model.scanning
        || match &model.screen {
            Screen::Wizard(w) => matches!(w.step, Step::Planning),
            Screen::Backup(b) => match &**b {
                BackupScreen::Planning { .. } => true,
                BackupScreen::PickFolder { browser, .. } => waiting_browser(browser),
                _ => false,
            },
            Screen::Verify(v) => matches!(&**v, VerifyScreen::Pick(b) if waiting_browser(b)),
            Screen::Restore(r) => {
                matches!(&**r, RestoreScreen::PickImage(b) if waiting_browser(b))
            }
            Screen::Files(f) => match &**f {
                FilesScreen::PickImage(b) | FilesScreen::PickDest { browser: b, .. } => {
                    waiting_browser(b)
                }
                FilesScreen::Browse(v) => v.items.is_none(),
                FilesScreen::Checking { .. } => true,
                _ => false,
            },
            _ => false,
        }
}

fn spinner(model: &Model) -> &'static str {
    ["|", "/", "-", "\\"][(model.tick % 4) as usize]
}

fn screen_title(model: &Model) -> String {
    match &model.screen {
        Screen::Main | Screen::Menu { .. } | Screen::Ask(_) => "disks".to_string(),
        Screen::Log { .. } => "log".to_string(),
        Screen::Verify(v) => match **v {
            VerifyScreen::Pick(_) => "Verify image - step 1 of 2: image".to_string(),
            VerifyScreen::Running { .. } => "Verify image - step 2 of 2: running".to_string(),
            VerifyScreen::Done { .. } => "Verify image - step 2 of 2: result".to_string(),
        },
        Screen::Backup(b) => {
            let (n, what) = match **b {
                BackupScreen::PickSource { .. } => (1, "source"),
                BackupScreen::PickFolder { .. } => (2, "destination folder"),
                BackupScreen::Planning { .. } | BackupScreen::Refused { .. } => (3, "checking"),
                BackupScreen::Options { .. } => (3, "options"),
                BackupScreen::Name { .. } => (3, "file name"),
                BackupScreen::Plan { .. } => (4, "plan"),
                BackupScreen::Running { .. } => (5, "running"),
                BackupScreen::Done { .. } => (5, "result"),
            };
            format!("Back up - step {n} of 5: {what}")
        }
        Screen::Wizard(w) => {
            let (n, what) = match &w.step {
                Step::PickSource { .. } => (1, "source"),
                Step::PickTarget { .. } => (2, "target"),
                Step::Options { .. } => (3, "options"),
                Step::Planning | Step::Plan { .. } | Step::Refused { .. } => (4, "plan"),
                Step::Confirm { .. } => (5, "confirm"),
                Step::Running { .. } => (6, "running"),
                Step::Done { .. } => (6, "result"),
            };
            // A restore's first two steps are the image and what to restore from it.
            if w.action.is_restore() {
                format!("Restore - step {} of 7: {what}", n + 1)
            } else {
                format!("{} - step {n} of 6: {what}", w.action.title())
            }
        }
        Screen::Restore(r) => match **r {
            RestoreScreen::PickImage(_) => "Restore - step 1 of 7: image".to_string(),
            RestoreScreen::PickWhat { .. } => "Restore - step 2 of 7: what to restore".to_string(),
        },
        Screen::Files(f) => match &**f {
            FilesScreen::PickImage(_) => "Browse files - image".to_string(),
            FilesScreen::PickPart { .. } => "Browse files - partition".to_string(),
            FilesScreen::Browse(v) => format!("Browse files - {}", v.source.short()),
            FilesScreen::PickDest { .. } => "Extract - destination folder".to_string(),
            FilesScreen::Checking { .. } | FilesScreen::AskOverwrite { .. } => {
                "Extract - checking the destination".to_string()
            }
            FilesScreen::Running { .. } => "Extract - running".to_string(),
            FilesScreen::Done { .. } => "Extract - result".to_string(),
        },
    }
}

/// The keys of the current screen, on one line.
pub fn help_text(model: &Model) -> String {
    let text = match &model.screen {
        Screen::Main => {
            " ↑↓ move  Enter menu  a back up  e restore  f files  c clone  m mount  q quit"
        }
        Screen::Menu { .. } => " ↑↓ move  Enter choose  letter: shortcut  Esc back",
        Screen::Ask(_) => " y yes  n no",
        Screen::Log { .. } => " ↑↓ PgUp PgDn scroll  End newest  Esc back",
        Screen::Wizard(w) => match &w.step {
            Step::PickSource { .. } | Step::PickTarget { .. } => " ↑↓ move  Enter choose  Esc back",
            Step::Options { .. } => " ↑↓ move  Space toggle  Enter make the plan  Esc back",
            Step::Planning => " Esc back",
            Step::Plan { .. } => " ↑↓ PgUp PgDn scroll  Enter continue  Esc back",
            Step::Refused { .. } => " Enter/Esc pick another target",
            Step::Confirm { .. } => " type yes, then Enter to start  Backspace erase  Esc back",
            Step::Running {
                ask_cancel: true, ..
            } => " y cancel the job  n keep going",
            Step::Running { .. } => " Esc cancel",
            Step::Done { .. } => " Enter back to the disks",
        },
        Screen::Verify(v) => match &**v {
            VerifyScreen::Pick(_) => {
                " ↑↓ move  Enter open/choose  Backspace up  r reread  Esc back"
            }
            VerifyScreen::Running {
                ask_cancel: true, ..
            } => " y stop verifying  n keep going",
            VerifyScreen::Running { .. } => " Esc stop",
            VerifyScreen::Done { .. } => " ↑↓ scroll  Enter back to the disks",
        },
        Screen::Backup(b) => match &**b {
            BackupScreen::PickSource { .. } => " ↑↓ move  Enter choose  Esc back",
            BackupScreen::PickFolder { .. } => {
                " ↑↓ move  Enter open  s save here  Backspace up  r reread  Esc back"
            }
            BackupScreen::Planning { .. } => " Esc back",
            BackupScreen::Refused { .. } => " Enter/Esc pick another folder",
            BackupScreen::Options { .. } => {
                " ↑↓ move  Space change  n rename  Enter show the plan  Esc back"
            }
            BackupScreen::Name { .. } => " type the file name  Enter use it  Esc back",
            BackupScreen::Plan { .. } => " ↑↓ PgUp PgDn scroll  Enter start the backup  Esc back",
            BackupScreen::Running {
                ask_cancel: true, ..
            } => " y stop (the partial image is deleted)  n keep going",
            BackupScreen::Running { .. } => " Esc stop",
            BackupScreen::Done {
                outcome: crate::model::BackupOutcome { result: Ok(_) },
                ..
            } => " v verify the image now  Enter back to the disks",
            BackupScreen::Done { .. } => " Enter back to the disks",
        },
        Screen::Restore(r) => match &**r {
            RestoreScreen::PickImage(_) => {
                " ↑↓ move  Enter open/choose  Backspace up  r reread  Esc back"
            }
            RestoreScreen::PickWhat { .. } => " ↑↓ move  Enter choose  Esc back",
        },
        Screen::Files(f) => match &**f {
            FilesScreen::PickImage(_) => {
                " ↑↓ move  Enter open/choose  Backspace up  r reread  Esc back"
            }
            FilesScreen::PickPart { .. } => " ↑↓ move  Enter browse  Esc back",
            FilesScreen::Browse(v) if v.typing.is_some() => {
                " type part of a name  Enter search  Esc cancel"
            }
            FilesScreen::Browse(_) => {
                " Enter open  Bksp up  Space select  / search  x extract  Esc leave"
            }
            FilesScreen::PickDest { .. } => {
                " ↑↓ move  Enter open  s extract here  Backspace up  Esc back"
            }
            FilesScreen::Checking { .. } => " Esc back",
            FilesScreen::AskOverwrite { .. } => {
                " y overwrite them  n keep them (extract the rest)  Esc back"
            }
            FilesScreen::Running {
                ask_cancel: true, ..
            } => " y stop extracting  n keep going",
            FilesScreen::Running { .. } => " Esc stop",
            FilesScreen::Done { .. } => " ↑↓ scroll  Enter back to the files",
        },
    };
    text.to_string()
}

/// `text` cut to `width` characters (the last one `…` when cut), padded to `width`.
fn fit(text: &str, width: usize) -> String {
    let cut: String = if text.chars().count() > width {
        let mut t: String = text.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        text.to_string()
    };
    format!("{cut:<width$}")
}

/// Widths of the model and serial columns of the disk rows: what the fixed columns (name,
/// transport, size, table; SMART and the BOOT / in use flags when any row shows them) leave of
/// the list's `inner` width. At 80 columns: model 16 to 20, serial 16; wider terminals give
/// up to 40 and 24.
fn id_widths(model: &Model, inner: u16) -> (usize, usize) {
    const FIXED: usize = 8 + 7 + 9 + 1 + 5 + 1;
    let smart = if model.smart_tool { 7 } else { 0 };
    let flags = model
        .disks
        .iter()
        .map(|e| match (e.device.is_boot_medium, e.device.in_use()) {
            (true, _) => 4,
            (false, Some(_)) => 6,
            (false, None) => 0,
        })
        .max()
        .unwrap_or(0);
    let room = usize::from(inner).saturating_sub(FIXED + smart + flags + 2);
    let serial = (room / 2).min(16).max(room.saturating_sub(40).min(24));
    ((room - serial).min(40), serial)
}

/// A disk's identity as the screens show it: sizes in binary units like everywhere else, with
/// the identity's decimal size (what the vendor's label says) beside it:
/// `Crucial MX500, serial CT22, 128 MiB (134.2 MB)`.
pub fn identity_text(d: &disk::BlockDevice) -> String {
    let id = d.identity();
    match id.rsplit_once(", ") {
        Some((head, label)) if label != human(d.size) => {
            format!("{head}, {} ({label})", human(d.size))
        }
        _ => id,
    }
}

/// `text` with each known disk's identity written as [`identity_text`] writes it (identities
/// reach the screens inside plans, endpoints and engine notes).
pub fn with_units(model: &Model, text: &str) -> String {
    let mut out = text.to_string();
    for e in &model.disks {
        let id = e.device.identity();
        if out.contains(&id) {
            out = out.replace(&id, &identity_text(&e.device));
        }
    }
    out
}

fn disk_line(model: &Model, entry: &DiskEntry, widths: (usize, usize)) -> Line<'static> {
    let d = &entry.device;
    let model_name = crate::model::model_name(d);
    let mut spans = vec![Span::raw(format!(
        "{:<8.8}{:<7.7}{:>9} {:<5.5} {} {} ",
        d.name,
        d.transport.to_string(),
        human(d.size),
        table_text(entry),
        fit(&model_name, widths.0),
        fit(d.serial.as_deref().unwrap_or(""), widths.1),
    ))];
    if model.smart_tool {
        let h = model.smart.get(&d.path);
        // Loop, RAM and mapped devices have no SMART: leave the column empty.
        let text = if d.is_virtual() { "" } else { smart_text(h) };
        let style = match h {
            Some(crate::model::SmartHealth::Failed) => bad_style(),
            Some(crate::model::SmartHealth::Passed) => good_style(),
            _ => Style::default(),
        };
        spans.push(Span::styled(format!("{text:<7}"), style));
    }
    if d.is_boot_medium {
        spans.push(Span::styled("BOOT ", warn_style()));
    } else if d.in_use().is_some() {
        spans.push(Span::styled("in use ", warn_style()));
    }
    Line::from(spans)
}

fn part_line(p: &crate::model::PartRow) -> Line<'static> {
    let mount = if let Some(m) = p.mount_points.first() {
        format!("on {}", m.display())
    } else if p.swap {
        "swap in use".to_string()
    } else if let Some(h) = p.holders.first() {
        format!("held by {h}")
    } else {
        String::new()
    };
    // Sizes from `human` are at most 8 characters ("1023 GiB", "99.9 MiB").
    let used = p
        .used
        .map(|u| format!("{:>8} used", human(u)))
        .unwrap_or_default();
    Line::raw(format!(
        "  {:<10.10} {:<20.20} {:>8}  {used:<13}  {mount}",
        p.name,
        p.fs_text(),
        human(p.size)
    ))
}

fn main_view(model: &Model, frame: &mut Frame, area: Rect) {
    let [list_area, detail_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(7)]).areas(area);
    let rows = model.rows();
    let widths = id_widths(model, list_area.width.saturating_sub(2));
    let items: Vec<ListItem> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Disk(d) => model
                .disks
                .get(*d)
                .map(|e| ListItem::new(disk_line(model, e, widths))),
            Row::Part(d, p) => model
                .disks
                .get(*d)
                .and_then(|e| part_rows(e).get(*p).map(|p| ListItem::new(part_line(p)))),
        })
        .collect();
    let title = if model.show_virtual {
        " Disks (with loop and RAM devices) "
    } else {
        " Disks "
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    if items.is_empty() {
        let text = if model.scanning {
            "Looking for disks..."
        } else {
            "No disks found. Plug one in (it appears by itself) or press r to rescan."
        };
        frame.render_widget(Paragraph::new(text).block(block), list_area);
    } else {
        let mut state = ListState::default().with_selected(Some(model.cursor.min(rows.len() - 1)));
        frame.render_stateful_widget(
            List::new(items)
                .block(block)
                .highlight_style(selected_style()),
            list_area,
            &mut state,
        );
    }
    let details = match model.selected() {
        Some(Row::Disk(d)) => model.disks.get(d).map(|e| disk_details(model, e)),
        Some(Row::Part(d, p)) => model
            .disks
            .get(d)
            .and_then(|e| part_rows(e).get(p).map(part_details)),
        None => None,
    }
    .unwrap_or_default();
    frame.render_widget(
        Paragraph::new(details)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Details ")),
        detail_area,
    );
}

fn disk_details(model: &Model, e: &DiskEntry) -> Text<'static> {
    let d = &e.device;
    let mut lines = vec![Line::raw(identity_text(d))];
    let mut facts = format!(
        "{}  {}  sectors {}/{}",
        d.path.display(),
        d.transport,
        d.logical_sector_size,
        d.physical_sector_size
    );
    if d.removable == Some(true) {
        facts.push_str("  removable");
    }
    if d.rotational == Some(true) {
        facts.push_str("  spinning");
    }
    lines.push(Line::raw(facts));
    let content = match &e.report {
        Ok(r) => match &r.content {
            engine::Content::Table {
                table,
                id,
                partitions,
                warnings,
                ..
            } => {
                let mut s = format!("{table} table, id {id}, {} partitions", partitions.len());
                if let Some(w) = warnings.first() {
                    s.push_str(&format!("; {w}"));
                }
                s
            }
            engine::Content::FileSystem { fs } => {
                format!("a bare {} file system, no partition table", fs.kind.name())
            }
            engine::Content::Unknown => "no partition table or file system found".to_string(),
            engine::Content::Unreadable { error } => format!("unreadable table: {error}"),
        },
        Err(err) => format!("cannot be read: {err}"),
    };
    lines.push(Line::raw(content));
    if d.is_boot_medium {
        lines.push(Line::styled(
            "protected: it holds the running system or the medium Lifeboat booted from",
            warn_style(),
        ));
    } else if let Some(reason) = d.in_use() {
        lines.push(Line::styled(format!("in use: {reason}"), warn_style()));
    }
    if model.smart_tool {
        if let Some(crate::model::SmartHealth::Unavailable(why)) = model.smart.get(&d.path) {
            lines.push(Line::raw(format!("SMART: {why}")));
        }
    }
    Text::from(lines)
}

fn part_details(p: &crate::model::PartRow) -> Text<'static> {
    let node = p
        .node
        .as_ref()
        .map(|n| n.display().to_string())
        .unwrap_or_else(|| "no device node".to_string());
    let mut lines = vec![Line::raw(format!(
        "{node}  partition {}  starts at {}  {}",
        p.number,
        p.start,
        human(p.size)
    ))];
    if !p.type_name.is_empty() || !p.part_name.is_empty() {
        let mut s = format!("type {}", p.type_name);
        if !p.part_name.is_empty() {
            s.push_str(&format!("  name \"{}\"", p.part_name));
        }
        lines.push(Line::raw(s));
    }
    if let Some(f) = &p.fs {
        let mut s = format!("file system {}", f.kind.name());
        if let Some(l) = &f.label {
            s.push_str(&format!("  label \"{l}\""));
        }
        if let Some(u) = &f.uuid {
            s.push_str(&format!("  uuid {u}"));
        }
        if let Some(st) = &f.state {
            s.push_str(&format!("  {st}"));
        }
        lines.push(Line::raw(s));
    }
    match p.in_use() {
        Some(r) => lines.push(Line::styled(r, warn_style())),
        None => lines.push(Line::raw("not mounted")),
    }
    Text::from(lines)
}

/// A box in the middle of `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn popup(frame: &mut Frame, area: Rect, title: &str, text: &str, style: Style) {
    let r = centered(area, 50, 5);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(text.to_string())
            .style(style)
            .wrap(Wrap { trim: true })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(title.to_string()),
            ),
        r,
    );
}

fn menu_view(model: &Model, cursor: usize, frame: &mut Frame, area: Rect) {
    let items = MenuItem::all();
    let r = centered(area, 54, items.len() as u16 + 2);
    frame.render_widget(Clear, r);
    let list: Vec<ListItem> = items
        .iter()
        .map(|i| ListItem::new(format!(" {}  {}", i.hotkey(), i.title(model.show_virtual))))
        .collect();
    let mut state = ListState::default().with_selected(Some(cursor.min(items.len() - 1)));
    frame.render_stateful_widget(
        List::new(list)
            .block(Block::default().borders(Borders::ALL).title(" Actions "))
            .highlight_style(selected_style()),
        r,
        &mut state,
    );
}

fn log_view(model: &Model, scroll: usize, frame: &mut Frame, area: Rect) {
    let inner = area.height.saturating_sub(2) as usize;
    let width = area.width.saturating_sub(2).max(1) as usize;
    // Long lines are cut into rows of the screen's width (by characters, so the count is
    // exact) and the newest rows that fit are shown.
    let mut rows: Vec<Line> = Vec::new();
    for l in model.log.tail(inner, scroll).into_iter().rev() {
        let style = if l.contains(" error: ") {
            bad_style()
        } else if l.contains(" warning: ") {
            warn_style()
        } else {
            Style::default()
        };
        let chars: Vec<char> = l.chars().collect();
        let pieces: Vec<String> = if chars.is_empty() {
            vec![String::new()]
        } else {
            chars.chunks(width).map(|c| c.iter().collect()).collect()
        };
        for piece in pieces.into_iter().rev() {
            rows.push(Line::styled(piece, style));
        }
        if rows.len() >= inner {
            break;
        }
    }
    rows.truncate(inner);
    rows.reverse();
    let title = match &model.log_path {
        Some(p) => format!(" Log (also in {}) ", p.display()),
        None => " Log ".to_string(),
    };
    frame.render_widget(
        Paragraph::new(rows).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn candidate_list(frame: &mut Frame, area: Rect, title: &str, list: &[Candidate], cursor: usize) {
    let items = list
        .iter()
        .map(|c| match &c.refusal {
            Some(_) => refused_item(c.endpoint.label.clone()),
            None => ListItem::new(format!("  {}", c.endpoint.label)),
        })
        .collect();
    picker(frame, area, title, items, cursor, "Nothing to choose from.");
}

fn wizard_view(model: &Model, w: &Wizard, frame: &mut Frame, area: Rect) {
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
                Some(r) => Text::styled(format!("Refused: {r}"), bad_style()),
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
                    "The image was made from {} (serial {}, {}); the target is {}.",
                    s.model,
                    s.serial,
                    human(s.source_size),
                    with_units(model, &target.identity)
                )));
            }
            frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), foot);
        }
        Step::Planning => {
            frame.render_widget(
                Paragraph::new(format!(
                    "Checking the target and reading the source to make the plan {}",
                    spinner(model)
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
            frame.render_widget(
                Paragraph::new(with_units(model, &plan.text))
                    .wrap(Wrap { trim: false })
                    .scroll((*scroll, 0))
                    .block(Block::default().borders(Borders::ALL).title(" Plan ")),
                body,
            );
        }
        Step::Refused { reason } => {
            frame.render_widget(
                Paragraph::new(vec![
                    Line::styled("Lifeboat will not write to this target:", bad_style()),
                    Line::raw(""),
                    Line::raw(reason.clone()),
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
        Step::Running {
            plan,
            progress,
            ask_cancel,
            cancelling,
        } => {
            running_view(model, plan, progress.as_ref(), *cancelling, frame, area);
            if *ask_cancel {
                popup(
                    frame,
                    area,
                    " Cancel? ",
                    "Cancel the job? The target will be left incomplete. (y/n)",
                    warn_style(),
                );
            }
        }
        Step::Done { plan, outcome } => done_view(model, plan, outcome, frame, area),
    }
}

fn explain(model: &Model, c: &Candidate) -> Text<'static> {
    match (&c.refusal, &c.note) {
        (Some(r), _) => Text::styled(format!("Cannot be used: {r}"), bad_style()),
        (None, Some(n)) => Text::raw(n.clone()),
        (None, None) => Text::raw(with_units(model, &c.endpoint.identity)),
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
    let what = match plan.action {
        Action::CloneDisk | Action::RestoreDisk => "DISK",
        Action::CopyPartition | Action::RestorePartition => "PARTITION",
    };
    let becomes = if plan.action.is_restore() {
        format!(
            "It will be restored from {}",
            with_units(model, &plan.source.identity)
        )
    } else {
        format!(
            "It will become a copy of {}: {}",
            plan.source.path.display(),
            with_units(model, &plan.source.identity)
        )
    };
    let mut lines = vec![
        Line::styled(
            format!("ALL DATA ON THIS {what} WILL BE DESTROYED:"),
            bad_style(),
        ),
        Line::raw(""),
        Line::styled(
            format!("  {}", with_units(model, &plan.identity)),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Line::raw(format!("  {}", plan.target.path.display())),
        Line::raw(""),
        Line::raw(becomes),
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

/// `1:02:03` or `2:03`.
pub fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn running_view(
    model: &Model,
    plan: &PlannedJob,
    progress: Option<&Progress>,
    cancelling: bool,
    frame: &mut Frame,
    area: Rect,
) {
    let [head, gauge, stats] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(3),
        Constraint::Min(3),
    ])
    .areas(area);
    let phase = progress
        .map(|p| p.phase.clone())
        .unwrap_or_else(|| "starting".to_string());
    frame.render_widget(
        Paragraph::new(vec![
            Line::raw(format!(
                "{} -> {}",
                plan.source.path.display(),
                plan.target.path.display()
            )),
            Line::raw(with_units(model, &plan.identity)),
            if cancelling {
                Line::styled("Cancelling at the next safe point...", warn_style())
            } else {
                Line::raw(phase)
            },
        ]),
        head,
    );
    gauge_and_stats(progress, frame, gauge, stats);
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

fn done_view(model: &Model, plan: &PlannedJob, outcome: &Outcome, frame: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    match &outcome.finished.result {
        Ok(r) => {
            lines.push(Line::styled(
                format!("{} finished.", plan.action.title()),
                good_style(),
            ));
            lines.push(Line::raw(""));
            lines.push(Line::raw(format!(
                "{} {} in {} ({}/s){}",
                human(r.bytes_copied),
                if plan.action.is_restore() {
                    "written"
                } else {
                    "copied"
                },
                clock(r.seconds as u64),
                human(if r.seconds > 0.0 {
                    (r.bytes_copied as f64 / r.seconds) as u64
                } else {
                    0
                }),
                if r.verified { ", verified" } else { "" }
            )));
            if plan.action.is_restore() {
                lines.push(Line::raw(format!(
                    "{} now holds {}.",
                    plan.target.path.display(),
                    with_units(model, &plan.source.identity)
                )));
            } else if r.bad_sectors.is_empty() {
                lines.push(Line::raw("Every sector of the source was read."));
            } else {
                lines.push(Line::styled(
                    format!(
                        "{} in {} ranges could not be read and were written as zeros.",
                        human(r.bad_sectors.bytes()),
                        r.bad_sectors.ranges.len()
                    ),
                    warn_style(),
                ));
            }
            for n in &r.notes {
                lines.push(Line::raw(n.clone()));
            }
        }
        Err(f) => {
            let head = if f.cancelled {
                format!("{} cancelled.", plan.action.title())
            } else {
                format!("{} failed.", plan.action.title())
            };
            lines.push(Line::styled(head, bad_style()));
            lines.push(Line::raw(""));
            lines.push(Line::raw(f.message.clone()));
            if let Some(state) = &outcome.target_state {
                lines.push(Line::raw(""));
                lines.push(Line::styled(
                    format!("State of {}: {state}", plan.target.path.display()),
                    warn_style(),
                ));
            }
        }
    }
    for n in &outcome.finished.notes {
        lines.push(Line::raw(n.clone()));
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

/// The name of a browser entry relative to its folder.
fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// The image browser: the folder's entries on the left half, the selected image's summary (or
/// why it cannot be used) below.
/// `purpose` is what `s` does in a folder picker (`saves the new image`), `None` when images are
/// picked.
fn browser_view(model: &Model, b: &Browser, purpose: Option<&str>, frame: &mut Frame, area: Rect) {
    let [list_area, info_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(9)]).areas(area);
    let title = format!(" {} ", b.dir.display());
    let block = Block::default().borders(Borders::ALL).title(title);
    let entries = match &b.entries {
        None => {
            frame.render_widget(
                Paragraph::new(format!("Reading the folder {}", spinner(model))).block(block),
                list_area,
            );
            return;
        }
        Some(Err(e)) => {
            frame.render_widget(
                Paragraph::new(e.clone())
                    .style(bad_style())
                    .wrap(Wrap { trim: true })
                    .block(block),
                list_area,
            );
            return;
        }
        Some(Ok(e)) => e,
    };
    if entries.is_empty() {
        let text = if b.dir == model.image_root {
            format!(
                "No drive is mounted under {}. Go back (Esc), select the partition that holds \
                 the images and mount it (m).",
                model.image_root.display()
            )
        } else {
            "No folders and no .lbi images here (Backspace goes up).".to_string()
        };
        frame.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
            list_area,
        );
        return;
    }
    let items: Vec<ListItem> = entries
        .iter()
        .map(|e| match e {
            BrowseEntry::Up => ListItem::new("  ../"),
            BrowseEntry::Dir(d) => ListItem::new(format!("  {}/", file_name(d))),
            BrowseEntry::Image {
                path,
                summary: Ok(s),
            } => ListItem::new(format!(
                "  {:<40} {:>10}  {}",
                file_name(path),
                human(s.source_size),
                s.created.get(..10).unwrap_or(&s.created)
            )),
            BrowseEntry::Image { path, .. } => ListItem::new(Line::from(vec![
                Span::styled("x ", bad_style()),
                Span::styled(
                    format!("{:<40} unusable", file_name(path)),
                    Style::default().fg(Color::Red),
                ),
            ])),
        })
        .collect();
    let mut state = ListState::default().with_selected(Some(b.cursor.min(items.len() - 1)));
    frame.render_stateful_widget(
        List::new(items)
            .block(block)
            .highlight_style(selected_style()),
        list_area,
        &mut state,
    );
    let mut lines = Vec::new();
    if let Some(r) = &b.refused {
        lines.push(Line::styled(r.clone(), bad_style()));
    }
    match entries.get(b.cursor) {
        Some(BrowseEntry::Image { summary: Ok(s), .. }) => lines.extend(summary_lines(s)),
        Some(BrowseEntry::Image {
            summary: Err(e), ..
        }) if b.refused.is_none() => {
            lines.push(Line::styled("This image cannot be used:", bad_style()));
            lines.push(Line::raw(e.clone()));
        }
        Some(BrowseEntry::Dir(_)) | Some(BrowseEntry::Up) => {
            lines.push(Line::raw("Enter opens the folder."));
        }
        _ => {}
    }
    if let Some(purpose) = purpose {
        let hint = if b.dir == model.image_root {
            format!("Open the folder of a mounted drive, then s {purpose} there.")
        } else {
            format!("s {purpose} in {}", b.dir.display())
        };
        lines.insert(0, Line::raw(hint));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Image ")),
        info_area,
    );
}

/// What the image says about its source, in a few lines.
fn summary_lines(s: &ImageSummary) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::raw(format!(
            "Source  {} (serial {}), {}{}",
            s.model,
            s.serial,
            human(s.source_size),
            s.table
                .as_ref()
                .map(|t| format!(", {t} table"))
                .unwrap_or_default()
        )),
        Line::raw(format!(
            "Made    {}; {} of data in {} volume{}",
            s.created,
            human(s.stored),
            s.volumes,
            if s.volumes == 1 { "" } else { "s" }
        )),
    ];
    if s.bad_ranges > 0 {
        lines.push(Line::styled(
            format!(
                "{} ranges of the source could not be read (they restore as zeros)",
                s.bad_ranges
            ),
            warn_style(),
        ));
    }
    let shown = 4;
    for p in s.partitions.iter().take(shown) {
        lines.push(Line::raw(format!("  {p}")));
    }
    if s.partitions.len() > shown {
        lines.push(Line::raw(format!(
            "  ... and {} more partitions",
            s.partitions.len() - shown
        )));
    }
    lines
}

fn verify_view(model: &Model, v: &VerifyScreen, frame: &mut Frame, area: Rect) {
    match v {
        VerifyScreen::Pick(b) => browser_view(model, b, None, frame, area),
        VerifyScreen::Running {
            image,
            progress,
            cancelling,
            ask_cancel,
        } => {
            let [head, gauge, stats] = Layout::vertical([
                Constraint::Length(3),
                Constraint::Length(3),
                Constraint::Min(3),
            ])
            .areas(area);
            frame.render_widget(
                Paragraph::new(vec![
                    Line::raw(format!("Verifying {}", image.display())),
                    Line::raw("Every chunk is read, decompressed and checked; nothing is written."),
                    if *cancelling {
                        Line::styled("Stopping...", warn_style())
                    } else {
                        Line::raw("")
                    },
                ]),
                head,
            );
            gauge_and_stats(progress.as_ref(), frame, gauge, stats);
            if *ask_cancel {
                popup(
                    frame,
                    area,
                    " Stop? ",
                    "Stop verifying? The image is not changed either way. (y/n)",
                    warn_style(),
                );
            }
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
                        image.display(),
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
                        image.display(),
                        r.chunks,
                        human(r.bytes)
                    )));
                    lines.push(Line::raw(""));
                    let all: Vec<String> = r
                        .bad
                        .iter()
                        .map(|b| format!("BAD: {b}"))
                        .chain(r.structure.iter().map(|s| format!("BAD: {s}")))
                        .collect();
                    lines.extend(
                        all.into_iter()
                            .skip(*scroll)
                            .map(|l| Line::styled(l, Style::default().fg(Color::Red))),
                    );
                }
                Err(e) => {
                    lines.push(Line::styled("Verify did not complete.", bad_style()));
                    lines.push(Line::raw(""));
                    lines.push(Line::raw(e.clone()));
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

fn backup_view(model: &Model, s: &BackupScreen, frame: &mut Frame, area: Rect) {
    match s {
        BackupScreen::PickSource { cursor } => {
            let [list_area, info] =
                Layout::vertical([Constraint::Min(5), Constraint::Length(4)]).areas(area);
            let list: Vec<Candidate> = crate::model::backup_sources(model)
                .into_iter()
                .map(|(c, _)| c)
                .collect();
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
            browser_view(model, browser, Some("saves the new image"), frame, area)
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
                    job.request.dir.display()
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
        BackupScreen::Planning { request, .. } => {
            frame.render_widget(
                Paragraph::new(format!(
                    "Checking {} and planning the backup of {} {}",
                    request.dir.display(),
                    request.source.endpoint.path.display(),
                    spinner(model)
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
                        format!("The image cannot be saved in {}:", request.dir.display()),
                        bad_style(),
                    ),
                    Line::raw(""),
                    Line::raw(reason.clone()),
                ])
                .wrap(Wrap { trim: true })
                .block(Block::default().borders(Borders::ALL).title(" Refused ")),
                area,
            );
        }
        BackupScreen::Options {
            job,
            settings,
            cursor,
        } => {
            let [list_area, info] =
                Layout::vertical([Constraint::Length(5), Constraint::Min(3)]).areas(area);
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
                Paragraph::new(backup_facts(job))
                    .wrap(Wrap { trim: true })
                    .block(Block::default().borders(Borders::ALL)),
                info,
            );
        }
        BackupScreen::Plan { job, scroll, .. } => {
            let [plan_area, info] =
                Layout::vertical([Constraint::Min(5), Constraint::Length(6)]).areas(area);
            frame.render_widget(
                Paragraph::new(job.plan.to_string())
                    .wrap(Wrap { trim: false })
                    .scroll((*scroll, 0))
                    .block(Block::default().borders(Borders::ALL).title(" Plan ")),
                plan_area,
            );
            let mut lines = backup_facts(job).lines;
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
        BackupScreen::Running {
            job,
            progress,
            ask_cancel,
            cancelling,
            ..
        } => {
            let [head, gauge, stats] = Layout::vertical([
                Constraint::Length(3),
                Constraint::Length(3),
                Constraint::Min(3),
            ])
            .areas(area);
            let phase = progress
                .as_ref()
                .map(|p| p.phase.clone())
                .unwrap_or_else(|| "starting".to_string());
            frame.render_widget(
                Paragraph::new(vec![
                    Line::raw(format!("{} -> {}", job.plan.source, job.image().display())),
                    Line::raw("The source is only read."),
                    if *cancelling {
                        Line::styled("Stopping; the partial image is deleted...", warn_style())
                    } else {
                        Line::raw(phase)
                    },
                ]),
                head,
            );
            gauge_and_stats(progress.as_ref(), frame, gauge, stats);
            if *ask_cancel {
                popup(
                    frame,
                    area,
                    " Stop? ",
                    "Stop the backup? The partial image is deleted. (y/n)",
                    warn_style(),
                );
            }
        }
        BackupScreen::Done { job, outcome } => {
            let mut lines = Vec::new();
            match &outcome.result {
                Ok(r) => {
                    lines.push(Line::styled("Backup finished.", good_style()));
                    lines.push(Line::raw(""));
                    lines.push(Line::raw(format!("Image    {}", r.image.display())));
                    lines.push(Line::raw(format!(
                        "Size     {} in {} volume{} ({} read in {})",
                        human(r.bytes_written),
                        r.volumes.len(),
                        if r.volumes.len() == 1 { "" } else { "s" },
                        human(r.bytes_read),
                        clock(r.seconds as u64)
                    )));
                    if r.bad_sectors.is_empty() {
                        lines.push(Line::raw("Every sector of the source was read."));
                    } else {
                        lines.push(Line::styled(
                            format!(
                                "{} in {} ranges could not be read: they are recorded in the \
                                 image and restore as zeros.",
                                human(r.bad_sectors.bytes()),
                                r.bad_sectors.ranges.len()
                            ),
                            warn_style(),
                        ));
                    }
                    for n in &r.notes {
                        lines.push(Line::raw(n.clone()));
                    }
                    lines.push(Line::raw(""));
                    lines.push(Line::raw("Press v to verify the image now."));
                }
                Err(f) => {
                    lines.push(Line::styled(
                        if f.cancelled {
                            "Backup cancelled."
                        } else {
                            "Backup failed."
                        },
                        bad_style(),
                    ));
                    lines.push(Line::raw(""));
                    lines.push(Line::raw(f.message.clone()));
                    lines.push(Line::raw(format!(
                        "The source was only read. A partial {} is deleted.",
                        job.image().display()
                    )));
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

/// The image's name and place, free space and the FAT rule, for the options and plan screens.
fn backup_facts(job: &crate::model::BackupJob) -> Text<'static> {
    let mut lines = vec![Line::raw(format!("Image  {}", job.image().display()))];
    match job.free {
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
    if job.fat {
        lines.push(Line::raw(
            "FAT drive: the image is split into volumes below 4 GiB.",
        ));
    }
    Text::from(lines)
}

/// A bordered list with a highlighted cursor, or `empty` when there is nothing in it: the one
/// list widget of the pickers.
fn picker(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    items: Vec<ListItem<'static>>,
    cursor: usize,
    empty: &str,
) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title.to_string());
    if items.is_empty() {
        frame.render_widget(
            Paragraph::new(empty.to_string())
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    let mut state = ListState::default().with_selected(Some(cursor.min(items.len() - 1)));
    frame.render_stateful_widget(
        List::new(items)
            .block(block)
            .highlight_style(selected_style()),
        area,
        &mut state,
    );
}

/// A bordered box of wrapped lines.
fn boxed(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>) {
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(title.to_string()),
        ),
        area,
    );
}

/// A refused entry of a list: a red cross and red text.
fn refused_item(text: String) -> ListItem<'static> {
    ListItem::new(Line::from(vec![
        Span::styled("x ", bad_style()),
        Span::styled(text, Style::default().fg(Color::Red)),
    ]))
}

fn restore_view(model: &Model, r: &RestoreScreen, frame: &mut Frame, area: Rect) {
    match r {
        RestoreScreen::PickImage(b) => browser_view(model, b, None, frame, area),
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
                            image.summary.table.as_deref().unwrap_or("?"),
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

/// `YYYY-MM-DD HH:MM` (UTC), or blanks.
pub fn date_text(t: Option<fs::browse::Timestamp>) -> String {
    t.map_or_else(|| " ".repeat(16), engine::extract::date_text)
}

/// One row of the file list: selection mark, name, size, date.
fn file_row(v: &FileView, item: &FileItem, width: usize) -> ListItem<'static> {
    use fs::browse::EntryKind;
    let mark = if v.selected.contains(&item.path) {
        "*"
    } else {
        " "
    };
    let mut name = match v.listing {
        Listing::Dir => item.entry.name.clone(),
        Listing::Search(_) => item.path.clone(),
    };
    let size = match item.entry.kind {
        EntryKind::Dir => {
            name.push('/');
            "<dir>".to_string()
        }
        EntryKind::Symlink => {
            name.push('@');
            "<link>".to_string()
        }
        EntryKind::Other => "<other>".to_string(),
        EntryKind::File => human(item.entry.size),
    };
    // mark(1) + space + name + space + size(10) + 2 spaces + date(16)
    let name_w = width.saturating_sub(1 + 1 + 1 + 10 + 2 + 16).max(8);
    let shown: String = if name.chars().count() > name_w {
        let tail: String = name
            .chars()
            .rev()
            .take(name_w.saturating_sub(1))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    } else {
        name
    };
    let text = format!(
        "{mark} {shown:<name_w$} {size:>10}  {}",
        date_text(item.entry.mtime)
    );
    if v.selected.contains(&item.path) {
        ListItem::new(Line::styled(text, good_style()))
    } else {
        ListItem::new(text)
    }
}

fn file_list_view(model: &Model, v: &FileView, frame: &mut Frame, area: Rect) {
    let [list_area, foot] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(area);
    let title = match &v.listing {
        Listing::Dir => format!(" {} ", v.dir),
        Listing::Search(p) => format!(" names with \"{p}\" below {} ", v.dir),
    };
    match &v.items {
        None => boxed(
            frame,
            list_area,
            &title,
            vec![Line::raw(format!("Reading {}", spinner(model)))],
        ),
        Some(Err(e)) => boxed(
            frame,
            list_area,
            &title,
            vec![
                Line::styled("This folder cannot be read:", bad_style()),
                Line::raw(e.clone()),
            ],
        ),
        Some(Ok(items)) => {
            let width = usize::from(list_area.width.saturating_sub(2));
            let rows = items.iter().map(|i| file_row(v, i, width)).collect();
            let empty = match v.listing {
                Listing::Dir => "This folder is empty (Backspace goes up).",
                Listing::Search(_) => "Nothing found (Backspace goes back to the folder).",
            };
            picker(frame, list_area, &title, rows, v.cursor, empty);
        }
    }
    let mut lines = Vec::new();
    match &v.typing {
        Some(t) => lines.push(Line::styled(format!("Search names: {t}_"), warn_style())),
        None => lines.push(Line::raw(format!(
            "{}  {} selected",
            v.fs.as_deref().unwrap_or("reading the file system"),
            v.selected.len()
        ))),
    }
    let hint = if v.selected.is_empty() {
        "Space selects files and folders; x extracts the selection (or the entry under the cursor)."
    } else {
        "x extracts the selected files and folders to a folder on a mounted drive."
    };
    lines.push(Line::raw(hint));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), foot);
}

fn files_view(model: &Model, f: &FilesScreen, frame: &mut Frame, area: Rect) {
    match f {
        FilesScreen::PickImage(b) => browser_view(model, b, None, frame, area),
        FilesScreen::PickPart { image, cursor } => {
            let items = image
                .summary
                .parts
                .iter()
                .map(|p| {
                    if p.restorable {
                        ListItem::new(format!("  {}", p.line()))
                    } else {
                        refused_item(format!("{} (not imaged)", p.line()))
                    }
                })
                .collect();
            picker(
                frame,
                area,
                &format!(" Browse which partition of {}? ", file_name(&image.path)),
                items,
                *cursor,
                "This image holds no partitions.",
            );
        }
        FilesScreen::Browse(v) => file_list_view(model, v, frame, area),
        FilesScreen::PickDest { browser, .. } => browser_view(
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
                request.dest.display(),
                spinner(model)
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
                        request.dest.display()
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
        FilesScreen::Running {
            request,
            progress,
            ask_cancel,
            cancelling,
            view,
        } => {
            let [head, gauge, stats] = Layout::vertical([
                Constraint::Length(3),
                Constraint::Length(3),
                Constraint::Min(3),
            ])
            .areas(area);
            frame.render_widget(
                Paragraph::new(vec![
                    Line::raw(format!(
                        "{} objects from {}",
                        request.paths.len(),
                        view.source.title()
                    )),
                    Line::raw(format!("to {}", request.dest.display())),
                    if *cancelling {
                        Line::styled("Stopping...", warn_style())
                    } else {
                        Line::raw("The source is only read.")
                    },
                ]),
                head,
            );
            gauge_and_stats(progress.as_ref(), frame, gauge, stats);
            if *ask_cancel {
                popup(
                    frame,
                    area,
                    " Stop? ",
                    "Stop extracting? Files done stay; the one being written is removed. (y/n)",
                    warn_style(),
                );
            }
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
                    let head = if r.cancelled {
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
                    lines.push(Line::raw(format!(
                        "{} files ({}), {} folders, {} symlinks into {} in {}",
                        r.files,
                        human(r.bytes),
                        r.dirs,
                        r.symlinks,
                        request.dest.display(),
                        clock(r.seconds as u64)
                    )));
                    lines.push(Line::raw(""));
                    let all = r
                        .failed
                        .iter()
                        .map(|(p, e)| Line::styled(format!("FAILED {p}: {e}"), bad_style()))
                        .chain(r.notes.iter().map(|n| Line::raw(format!("note: {n}"))));
                    lines.extend(all.skip(*scroll));
                }
                Err(e) => {
                    lines.push(Line::styled("Extract did not start.", bad_style()));
                    lines.push(Line::raw(""));
                    lines.push(Line::raw(e.clone()));
                }
            }
            boxed(frame, area, " Result ", lines);
        }
    }
}
