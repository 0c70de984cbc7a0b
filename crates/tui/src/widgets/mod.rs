//! Pieces of screens drawn and driven the same way everywhere: the styles, list navigation, the
//! pickers, pop-ups, and larger widgets in their own modules — the image picker
//! ([`image_picker`]), the plan scroller ([`plan`]), the running-job view ([`running`]) and how
//! a job ended ([`outcome`]).
//! Widgets are pure like the screens: key handling returns new state and effects, drawing only
//! reads.

pub mod drives;
pub mod image_picker;
pub mod network;
pub mod outcome;
pub mod password;
pub mod plan;
pub mod running;

use disk::text::printable;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;
use std::path::Path;

use crate::inventory::{with_units, Candidate};
use crate::model::{Key, Model};

/// An error as a screen shows it: what happened in words (`what`, styled), the error's own
/// words (printable, worded as the screens word everything: [`shown`]), and what the user can
/// do next with the key that does it (`next`). Never the raw error alone.
pub fn error_lines(model: &Model, what: &str, detail: &str, next: &str) -> Vec<Line<'static>> {
    vec![
        Line::styled(what.to_string(), bad_style()),
        Line::raw(shown(model, &printable(detail))),
        Line::raw(""),
        Line::raw(next.to_string()),
    ]
}

/// Rows moved by PageUp/PageDown.
pub const PAGE: usize = 10;

/// The new cursor for a navigation key in a list of `len` rows, or `None` for other keys.
pub fn nav(cursor: usize, len: usize, key: Key) -> Option<usize> {
    let last = len.saturating_sub(1);
    let c = match key {
        Key::Up | Key::Char('k') | Key::BackTab => cursor.saturating_sub(1),
        Key::Down | Key::Char('j') | Key::Tab => cursor.saturating_add(1).min(last),
        Key::PageUp => cursor.saturating_sub(PAGE),
        Key::PageDown => cursor.saturating_add(PAGE).min(last),
        Key::Home => 0,
        Key::End => last,
        _ => return None,
    };
    Some(c.min(last))
}

pub fn title_style() -> Style {
    Style::default()
        .fg(Color::White)
        .bg(Color::Blue)
        .add_modifier(Modifier::BOLD)
}

pub fn help_style() -> Style {
    Style::default().fg(Color::Black).bg(Color::Cyan)
}

pub fn selected_style() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

pub fn warn_style() -> Style {
    Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD)
}

pub fn bad_style() -> Style {
    Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
}

pub fn good_style() -> Style {
    Style::default()
        .fg(Color::Green)
        .add_modifier(Modifier::BOLD)
}

/// The spinner's frame for tick `tick`.
pub fn spinner(tick: u64) -> &'static str {
    ["|", "/", "-", "\\"][(tick % 4) as usize]
}

/// `text` cut to `width` characters (the last one `…` when cut), padded to `width`.
pub fn fit(text: &str, width: usize) -> String {
    let cut: String = if text.chars().count() > width {
        let mut t: String = text.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        text.to_string()
    };
    format!("{cut:<width$}")
}

/// A box in the middle of `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub fn popup(frame: &mut Frame, area: Rect, title: &str, text: &str, style: Style) {
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

/// `1:02:03` or `2:03`.
pub fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The name of a browser entry relative to its folder.
pub fn file_name(p: &Path) -> String {
    match p.file_name() {
        Some(n) => printable(&n.to_string_lossy()).into_owned(),
        None => path_text(p),
    }
}

/// A path as the screens show it: names on a drive or in an image are written by strangers, so
/// control characters are escaped ([`disk::text::printable`]).
pub fn path_text(p: &Path) -> String {
    printable(&p.to_string_lossy()).into_owned()
}

/// How the screens word what workers, plans and reports say: each known disk's identity with
/// its units ([`with_units`]) and the files of the open network stores named by their URLs
/// ([`network::name_urls`]: `smb://nas/images/pc.lbi`, never the folder the share is mounted
/// on). Every text from the engine or a worker goes through it on its way to the screen.
pub fn shown(model: &Model, text: &str) -> String {
    network::name_urls(&model.stores, &with_units(model, text))
}

/// A path as the screens show it ([`path_text`]), a file of an open network store by its URL.
pub fn shown_path(model: &Model, p: &Path) -> String {
    network::name_urls(&model.stores, &path_text(p))
}

/// A bordered list with a highlighted cursor, or `empty` when there is nothing in it: the one
/// list widget of the pickers.
pub fn picker(
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
pub fn boxed(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>) {
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
pub fn refused_item(text: String) -> ListItem<'static> {
    ListItem::new(Line::from(vec![
        Span::styled("x ", bad_style()),
        Span::styled(text, Style::default().fg(Color::Red)),
    ]))
}

/// A list of candidates: refused ones crossed out in red.
pub fn candidate_list(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    list: &[Candidate],
    cursor: usize,
) {
    let items = list
        .iter()
        .map(|c| match &c.refusal {
            Some(_) => refused_item(c.endpoint.label.clone()),
            None => ListItem::new(format!("  {}", c.endpoint.label)),
        })
        .collect();
    picker(frame, area, title, items, cursor, "Nothing to choose from.");
}

/// The line below a candidate list: why the entry is refused, a note, or what it is.
pub fn explain(model: &Model, c: &Candidate) -> Text<'static> {
    match (&c.refusal, &c.note) {
        (Some(r), _) => Text::styled(format!("Cannot be used: {}", printable(r)), bad_style()),
        (None, Some(n)) => Text::raw(n.clone()),
        (None, None) => Text::raw(printable(&shown(model, &c.endpoint.identity)).into_owned()),
    }
}

/// The partition step after an image was chosen ("Browse which partition of x.lbi?"): every
/// partition, those not stored readable shown refused.
pub fn draw_part_picker(
    frame: &mut Frame,
    area: Rect,
    verb: &str,
    image: &image_picker::ChosenImage,
    cursor: usize,
) {
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
        &format!(" {verb} which partition of {}? ", file_name(&image.path)),
        items,
        cursor,
        "This image holds no partitions.",
    );
}
