//! The plan scroller: a plan's text in a box, scrolled with the navigation keys; shared by the
//! transfer and backup plans.

use super::nav;
use crate::model::Key;
use disk::text::printable;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

/// The new scroll position for `key`, or `None` when it is not a scrolling key. The end can
/// always be reached: lines are counted as they wrap at the narrowest screen (78 columns inside
/// the frame).
pub fn scroll(text: &str, scroll: u16, key: Key) -> Option<u16> {
    let lines: usize = text
        .lines()
        .map(|l| printable(l).chars().count().div_ceil(78).max(1))
        .sum();
    let s = nav(usize::from(scroll), lines, key)?;
    Some(u16::try_from(s).unwrap_or(u16::MAX))
}

/// Draws `text` in a box titled " Plan ", scrolled by `scroll` rows. A plan names labels and
/// models read from disks and images: control characters are escaped line by line.
pub fn draw(frame: &mut Frame, area: Rect, text: &str, scroll: u16) {
    let lines: Vec<Line> = text
        .lines()
        .map(|l| Line::raw(printable(l).into_owned()))
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .block(Block::default().borders(Borders::ALL).title(" Plan ")),
        area,
    );
}
