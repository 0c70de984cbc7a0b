//! How a job ended, shown the same way for every job and the same way the CLI and job-file
//! reports show it: a headline from the engine's [`Status`], then the engine's own report lines
//! (`engine::job::Outcome::report`: summary, notes, bad-sector map, "the copy is complete, but
//! growing the file system failed: …", the error, and `result: <status label>`).

use super::{bad_style, good_style, warn_style};
use engine::job::{Outcome, Status};
use ratatui::style::Style;
use ratatui::text::Line;

/// The style a status is shown in.
pub fn style(status: Status) -> Style {
    match status {
        Status::Completed => good_style(),
        Status::CompletedWithBadSectors | Status::CompletedGrowFailed => warn_style(),
        Status::Cancelled | Status::Failed => bad_style(),
    }
}

/// `<what> finished.`, `… finished, with skipped unreadable sectors.`, `… finished, but growing
/// the file system failed.`, `… cancelled.` or `… failed.`
pub fn headline(what: &str, status: Status) -> Line<'static> {
    let text = match status {
        Status::Completed => format!("{what} finished."),
        Status::CompletedWithBadSectors => {
            format!("{what} finished, with skipped unreadable sectors.")
        }
        Status::CompletedGrowFailed => {
            format!("{what} finished, but growing the file system failed.")
        }
        Status::Cancelled => format!("{what} cancelled."),
        Status::Failed => format!("{what} failed."),
    };
    Line::styled(text, style(status))
}

/// Unreadable ranges listed one by one before the rest are counted (the map has them all).
const RANGES_SHOWN: usize = 4;

/// The headline, a blank line, `facts` (the screen's own lines about the job) and the engine's
/// report, each line printable (the engine makes them so) and worded as the screens word
/// everything ([`super::shown`]: disk identities with units, network files by URL); the lines
/// that need attention are styled. Unreadable ranges beyond the first few are counted, not
/// listed.
pub fn lines(
    model: &crate::model::Model,
    what: &str,
    outcome: &Outcome,
    facts: Vec<Line<'static>>,
) -> Vec<Line<'static>> {
    let mut out = vec![headline(what, outcome.status), Line::raw("")];
    out.extend(facts);
    let mut ranges = 0usize;
    for l in outcome.report().lines() {
        if l.starts_with("unreadable: ") {
            ranges += 1;
            if ranges > RANGES_SHOWN {
                continue;
            }
        } else if ranges > RANGES_SHOWN {
            out.push(Line::styled(
                format!("... and {} more unreadable ranges", ranges - RANGES_SHOWN),
                warn_style(),
            ));
            ranges = 0;
        }
        let styled = if l.starts_with("result: ") {
            style(outcome.status)
        } else if l.starts_with("error: ") {
            bad_style()
        } else if l.starts_with("unreadable: ") || l.contains("growing the file system failed") {
            warn_style()
        } else {
            Style::default()
        };
        out.push(Line::styled(super::shown(model, l), styled));
    }
    out
}
