//! The terminal's size on a serial line. A Linux serial tty starts with 0 rows and 0 columns
//! (nothing tells the kernel how big the terminal at the other end is), and a UI laid out for
//! 0×0 draws nothing. Before the UI starts, a tty that reports no size is asked for it the way
//! `resize(1)` does — move the cursor far to the bottom right and ask where it ended up
//! (`ESC [ 6 n`) — and, when nothing answers, set to 80×25, the smallest size the UI supports.
//! The size is written back to the tty (`TIOCSWINSZ`) so a shell started from the UI sees it too.

use crossterm::{cursor, execute};
use std::io;
use std::os::fd::AsRawFd;

/// The size used when the terminal does not answer.
pub const FALLBACK: (u16, u16) = (80, 25);

nix::ioctl_read_bad!(get_winsize, nix::libc::TIOCGWINSZ, nix::libc::winsize);
nix::ioctl_write_ptr_bad!(set_winsize, nix::libc::TIOCSWINSZ, nix::libc::winsize);

/// The size the kernel has for the tty on standard output, as (columns, rows); `None` when it
/// is not a tty.
fn kernel_size() -> Option<(u16, u16)> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the pointed-to, properly sized struct.
    unsafe { get_winsize(io::stdout().as_raw_fd(), &mut ws) }.ok()?;
    Some((ws.ws_col, ws.ws_row))
}

/// Whether a size reported by the terminal is believable (a cursor report from a terminal
/// that clamps to its screen; not 1×1 from one that ignores the move).
pub fn plausible(cols: u16, rows: u16) -> bool {
    (20..=1000).contains(&cols) && (5..=1000).contains(&rows)
}

/// Makes sure the tty on standard output has a size: keeps a size the kernel already has,
/// otherwise asks the terminal (raw mode must be on so the answer can be read) and falls back
/// to [`FALLBACK`]. Returns the size now in effect and how it was found, for the log.
pub fn ensure() -> ((u16, u16), &'static str) {
    match kernel_size() {
        Some((c, r)) if c > 0 && r > 0 => return ((c, r), "from the tty"),
        Some(_) => {}
        None => return (FALLBACK, "not a tty"),
    }
    let asked = execute!(io::stdout(), cursor::SavePosition, cursor::MoveTo(998, 998))
        .ok()
        .and_then(|()| cursor::position().ok())
        .map(|(x, y)| (x.saturating_add(1), y.saturating_add(1)));
    let _ = execute!(io::stdout(), cursor::RestorePosition);
    let (size, how) = match asked {
        Some((c, r)) if plausible(c, r) => ((c, r), "reported by the terminal"),
        _ => (FALLBACK, "the terminal did not answer: assumed"),
    };
    let ws = nix::libc::winsize {
        ws_row: size.1,
        ws_col: size.0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointed-to struct.
    if let Err(e) = unsafe { set_winsize(io::stdout().as_raw_fd(), &ws) } {
        log::warn!("setting the terminal size: {e}");
    }
    (size, how)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_believable_cursor_reports_are_taken_as_a_size() {
        assert!(plausible(80, 25));
        assert!(plausible(132, 43));
        assert!(!plausible(1, 1), "a terminal that ignored the cursor move");
        assert!(!plausible(0, 0));
        assert!(!plausible(80, 2));
        assert!(plausible(FALLBACK.0, FALLBACK.1));
    }
}
