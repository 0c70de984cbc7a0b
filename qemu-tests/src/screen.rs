//! A terminal at the host end of a VM's serial console: the bytes the guest prints go through a
//! VT100/xterm emulator (the `vt100` crate), so a test reads the screen a person would see and
//! types keys as a person would — the way the text UI is driven over a serial line.
//!
//! The emulator answers cursor-position queries (`ESC [ 6 n`) like a real terminal, which is how
//! the UI learns the size of a serial terminal.

use crate::vm::Vm;
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

/// Keys as a terminal sends them.
pub mod key {
    pub const ENTER: &str = "\r";
    pub const ESC: &str = "\x1b";
    pub const TAB: &str = "\t";
    pub const BACKSPACE: &str = "\x7f";
    pub const UP: &str = "\x1b[A";
    pub const DOWN: &str = "\x1b[B";
    pub const RIGHT: &str = "\x1b[C";
    pub const LEFT: &str = "\x1b[D";
    pub const SPACE: &str = " ";
    pub const HOME: &str = "\x1b[H";
    pub const END: &str = "\x1b[F";
}

const QUERY_POSITION: &[u8] = b"\x1b[6n";

/// The emulated terminal of one VM's serial console.
pub struct Terminal {
    parser: vt100::Parser,
    fed: usize,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("fed", &self.fed)
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// A terminal of `cols` × `rows` that has seen nothing yet.
    pub fn new(cols: u16, rows: u16) -> Self {
        Terminal {
            parser: vt100::Parser::new(rows, cols, 0),
            fed: 0,
        }
    }

    /// Feeds the output printed since the last call, answering position queries in order.
    pub fn pump(&mut self, vm: &mut Vm) -> Result<()> {
        let new = vm.output_from(self.fed);
        self.fed += new.len();
        let mut rest = new.as_slice();
        while let Some(i) = rest
            .windows(QUERY_POSITION.len())
            .position(|w| w == QUERY_POSITION)
        {
            let (head, tail) = rest.split_at(i + QUERY_POSITION.len());
            self.parser.process(head);
            let (row, col) = self.parser.screen().cursor_position();
            vm.send(&format!("\x1b[{};{}R", row + 1, col + 1))?;
            rest = tail;
        }
        self.parser.process(rest);
        Ok(())
    }

    /// The screen's text, one line per row, trailing blanks trimmed.
    pub fn text(&self) -> String {
        self.parser.screen().contents()
    }

    /// The text of the highlighted (reverse-video) cells, one entry per row that has any: the
    /// selected row of every list on the screen.
    pub fn selected(&self) -> Vec<String> {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        (0..rows)
            .filter_map(|r| {
                let text: String = (0..cols)
                    .filter_map(|c| screen.cell(r, c))
                    .filter(|cell| cell.inverse())
                    .map(|cell| cell.contents())
                    .collect();
                (!text.trim().is_empty()).then_some(text)
            })
            .collect()
    }

    /// Moves a list's selection down (from the top, after `Home`) until the selected row
    /// contains `needle`; fails after `max` rows or when the selection stops moving. Each step
    /// waits for the UI to show the move (it may lag behind the keys under TCG), so it never
    /// runs past the row.
    pub fn select(&mut self, vm: &mut Vm, needle: &str, max: usize) -> Result<()> {
        self.type_keys(vm, key::HOME)?;
        std::thread::sleep(Duration::from_millis(500));
        self.pump(vm)?;
        for _ in 0..=max {
            let before = self.selected();
            if before.iter().any(|row| row.contains(needle)) {
                return Ok(());
            }
            self.type_keys(vm, key::DOWN)?;
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.selected() == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                self.pump(vm)?;
            }
            if self.selected() == before {
                break;
            }
        }
        bail!(
            "no row containing `{needle}` could be selected; the screen shows:\n{}",
            self.text()
        )
    }

    /// Waits until the screen shows every one of `needles` at once; returns the screen. Fails
    /// with the screen as last seen when `timeout` passes or QEMU exits.
    pub fn wait_for(&mut self, vm: &mut Vm, needles: &[&str], timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump(vm)?;
            let text = self.text();
            if needles.iter().all(|n| text.contains(n)) {
                return Ok(text);
            }
            if Instant::now() >= deadline || !vm.running() {
                bail!(
                    "the screen did not show {needles:?} within {} s{}; it shows:\n{text}",
                    timeout.as_secs(),
                    if vm.running() { "" } else { " (QEMU exited)" }
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the screen shows `needle` (see [`Terminal::wait_for`]).
    pub fn wait(&mut self, vm: &mut Vm, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_for(vm, &[needle], timeout)
    }

    /// Types `keys` and gives the UI a moment to read them (an ESC alone must not run into the
    /// next key, or it would read as an escape sequence).
    pub fn type_keys(&mut self, vm: &mut Vm, keys: &str) -> Result<()> {
        vm.send(keys)?;
        std::thread::sleep(Duration::from_millis(if keys == key::ESC {
            600
        } else {
            250
        }));
        self.pump(vm)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_emulator_answers_a_position_query_from_the_clamped_cursor() {
        // The same steps `pump` takes, without a VM: the UI moves the cursor far away and asks.
        let mut p = vt100::Parser::new(25, 80, 0);
        p.process(b"\x1b[999;999H");
        assert_eq!(p.screen().cursor_position(), (24, 79));
        p.process(b"\x1b[2J\x1b[1;1Hhello");
        assert!(p.screen().contents().starts_with("hello"));
    }
}
