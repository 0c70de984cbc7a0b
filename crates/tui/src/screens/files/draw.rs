//! Drawing the file browser.

use super::{FileItem, FileView, FilesScreen, Listing};
use crate::model::Model;
use crate::screens::extract;
use crate::widgets::image_picker;
use crate::widgets::warn_style;
use crate::widgets::{boxed, error_lines, good_style, picker, refused_item, spinner};
use disk::text::printable;
use engine::units::human;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{ListItem, Paragraph, Wrap};
use ratatui::Frame;

/// Draws the step.
pub fn draw(model: &Model, f: &FilesScreen, frame: &mut Frame, area: Rect) {
    match f {
        FilesScreen::PickImage(b) => image_picker::draw(model, b, None, frame, area),
        FilesScreen::PickPart { image, cursor } => {
            crate::widgets::draw_part_picker(frame, area, "Browse", image, *cursor);
        }
        FilesScreen::Browse(v) => file_list_view(model, v, frame, area),
        FilesScreen::PickLv {
            pv, lvs, cursor, ..
        } => lv_picker(model, pv, lvs.as_ref(), *cursor, frame, area),
        other => extract::draw(model, other, frame, area),
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
    // Names are written by whoever made the file system.
    let mut name = match v.listing {
        Listing::Dir => printable(&item.entry.name).into_owned(),
        Listing::Search(_) => printable(&item.path).into_owned(),
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
        Listing::Dir => format!(" {} ", printable(&v.dir)),
        Listing::Search(p) => format!(" names with \"{p}\" below {} ", printable(&v.dir)),
    };
    match &v.items {
        None => boxed(
            frame,
            list_area,
            &title,
            vec![Line::raw(format!("Reading {}", spinner(model.tick)))],
        ),
        Some(Err(e)) => boxed(
            frame,
            list_area,
            &title,
            error_lines(
                model,
                "This folder cannot be read:",
                e,
                "Backspace goes up to the folder above, Esc goes back.",
            ),
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
            printable(v.fs.as_deref().unwrap_or("reading the file system")),
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

/// The logical volumes of a PV: name, size, file system and label, or why one cannot be browsed.
fn lv_picker(
    model: &Model,
    pv: &super::FileSource,
    lvs: Option<&Result<Vec<super::LvChoice>, String>>,
    cursor: usize,
    frame: &mut Frame,
    area: Rect,
) {
    let title = format!(
        " Browse which logical volume of {}? ",
        printable(&pv.short())
    );
    let items = match lvs {
        None => vec![ListItem::new(format!(
            "  {} reading the LVM metadata",
            spinner(model.tick)
        ))],
        Some(Err(e)) => vec![refused_item(format!(
            "cannot read the LVM metadata: {}",
            printable(e)
        ))],
        Some(Ok(list)) => list
            .iter()
            .map(|l| {
                let fs = match &l.fs {
                    Some(f) => match &f.label {
                        Some(label) => format!("{} \"{}\"", f.kind, printable(label)),
                        None => f.kind.to_string(),
                    },
                    None => "-".to_string(),
                };
                let head = format!("{:<24} {:>10}", printable(&l.name), human(l.size));
                match &l.refused {
                    None => ListItem::new(format!("  {head}  {fs}")),
                    // The reason names the file system already.
                    Some(why) => refused_item(format!("{head}  {}", printable(why))),
                }
            })
            .collect(),
    };
    picker(
        frame,
        area,
        &title,
        items,
        cursor,
        "This physical volume holds no logical volumes.",
    );
}
