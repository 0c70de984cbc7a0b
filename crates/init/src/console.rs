//! Which consoles get a UI, and with which `TERM`.

use crate::cmdline::{Cmdline, SerialUi};

/// What runs on a console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `/bin/lifeboat` (the TUI), restarted when it exits.
    Lifeboat,
    /// The busybox shell, restarted when it exits.
    Shell,
}

/// One console and its program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// Device name under `/dev` (`tty1`, `ttyS0`).
    pub device: String,
    pub term: &'static str,
    pub serial: bool,
    pub program: Program,
}

/// The device name of a `console=` value (`ttyS0,115200n8` → `ttyS0`); `tty0` means the
/// foreground virtual terminal, which is `tty1` at boot.
pub fn console_device(value: &str) -> Option<String> {
    let dev = value
        .split(',')
        .next()
        .unwrap_or("")
        .trim_start_matches("/dev/");
    if dev.is_empty() || dev.contains('/') || dev == "null" {
        return None;
    }
    if dev == "tty0" {
        return Some("tty1".to_string());
    }
    Some(dev.to_string())
}

/// True for virtual terminals (`tty1`…`tty63`): they speak the Linux console's terminal language.
pub fn is_virtual_terminal(dev: &str) -> bool {
    dev.strip_prefix("tty")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The consoles to run programs on: the UI on tty1 and on every serial console of the command
/// line, and a shell on tty2.
pub fn consoles(cmdline: &Cmdline) -> Vec<Console> {
    let mut out = vec![Console {
        device: "tty1".into(),
        term: "linux",
        serial: false,
        program: Program::Lifeboat,
    }];
    for v in &cmdline.consoles {
        let Some(dev) = console_device(v) else {
            continue;
        };
        if is_virtual_terminal(&dev) || out.iter().any(|c| c.device == dev) {
            continue;
        }
        let program = match cmdline.serial_ui {
            SerialUi::Lifeboat => Program::Lifeboat,
            SerialUi::Shell => Program::Shell,
        };
        out.push(Console {
            device: dev,
            term: "xterm",
            serial: true,
            program,
        });
    }
    out.push(Console {
        device: "tty2".into(),
        term: "linux",
        serial: false,
        program: Program::Shell,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;

    #[test]
    fn serial_consoles_from_the_command_line_get_the_ui_once() {
        let c = consoles(&parse(
            "console=tty0 console=ttyS0,115200 console=ttyS0 console=ttyS1",
        ));
        let devs: Vec<(&str, Program, &str)> = c
            .iter()
            .map(|c| (c.device.as_str(), c.program, c.term))
            .collect();
        assert_eq!(
            devs,
            vec![
                ("tty1", Program::Lifeboat, "linux"),
                ("ttyS0", Program::Lifeboat, "xterm"),
                ("ttyS1", Program::Lifeboat, "xterm"),
                ("tty2", Program::Shell, "linux"),
            ]
        );
    }

    #[test]
    fn no_console_option_means_tty1_and_the_tty2_shell() {
        let c = consoles(&parse("quiet"));
        assert_eq!(c.len(), 2);
        assert!(!c[0].serial && c[0].device == "tty1");
    }

    #[test]
    fn serial_shell_option_puts_a_shell_on_serial_lines() {
        let c = consoles(&parse("console=ttyS0,115200 lifeboat.serial=shell"));
        assert_eq!(c[1].device, "ttyS0");
        assert_eq!(c[1].program, Program::Shell);
        assert!(c[1].serial);
    }

    #[test]
    fn odd_console_values_are_ignored() {
        assert_eq!(console_device(""), None);
        assert_eq!(console_device("null"), None);
        assert_eq!(console_device("../x"), None);
        assert_eq!(console_device("/dev/ttyS2,9600"), Some("ttyS2".into()));
        assert!(!is_virtual_terminal("ttyS0"));
        assert!(!is_virtual_terminal("tty"));
        assert!(is_virtual_terminal("tty12"));
    }
}
