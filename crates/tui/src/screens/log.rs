//! The Log screen: the newest records of the in-memory log, scrolled with the keys.

use crate::model::{Effect, Key, Model, Screen};
use crate::widgets::{bad_style, path_text, warn_style, PAGE};
use disk::text::printable;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

/// The help line.
pub const HELP: &str = " ↑↓ PgUp PgDn scroll  End newest  Esc back";

/// Keys of the log; `scroll` counts lines up from the newest.
pub fn key(model: &Model, scroll: usize, key: Key) -> (Screen, Vec<Effect>) {
    let last = model.log.len().saturating_sub(1);
    let scroll = match key {
        Key::Esc | Key::Enter | Key::Char('q') => return (Screen::Main, Vec::new()),
        Key::Up | Key::Char('k') => (scroll + 1).min(last),
        Key::PageUp => (scroll + PAGE).min(last),
        Key::Down | Key::Char('j') => scroll.saturating_sub(1),
        Key::PageDown => scroll.saturating_sub(PAGE),
        Key::End => 0,
        _ => scroll,
    };
    (Screen::Log { scroll }, Vec::new())
}

/// Draws the log.
pub fn draw(model: &Model, scroll: usize, frame: &mut Frame, area: Rect) {
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
        // Records quote names from disks and images.
        let chars: Vec<char> = printable(&l).chars().collect();
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
        Some(p) => format!(" Log (also in {}) ", path_text(p)),
        None => " Log ".to_string(),
    };
    frame.render_widget(
        Paragraph::new(rows).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}
