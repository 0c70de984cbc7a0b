//! Passwords: typed at a prompt without echo or read from a file, held in a [`Secret`] that
//! never prints (its `Debug` and `Display` show `***`) and is wiped when dropped.

use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;

/// A password. Handed only to the kernel (SMB mount data) or a child's stdin (sshfs), never to
/// a command line, a log or a report.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The password itself, for the one place that hands it on.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite the bytes in place before the allocation is freed.
        wipe(&mut self.0);
    }
}

fn wipe(s: &mut String) {
    let zeros = "\0".repeat(s.len());
    s.replace_range(.., &zeros);
    std::hint::black_box(s);
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a password could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading the password file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the password file {path} is empty")]
    Empty { path: std::path::PathBuf },
    #[error("no terminal to ask for the password of {what} (use a password file)")]
    NoTerminal { what: String },
    #[error("reading the password of {what} from the terminal: {source}")]
    Prompt {
        what: String,
        source: std::io::Error,
    },
}

/// The first line of `path` (without its line end), at most 4 KiB.
pub fn read_password_file(path: &Path) -> Result<Secret, SecretError> {
    let f = std::fs::File::open(path).map_err(|source| SecretError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let mut line = String::new();
    std::io::BufReader::new(std::io::Read::take(f, 4096))
        .read_line(&mut line)
        .map_err(|source| SecretError::File {
            path: path.to_path_buf(),
            source,
        })?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    wipe(&mut line);
    if pw.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret(pw))
}

/// Asks for the password of `what` on the controlling terminal with echo off.
pub fn prompt_password(what: &str) -> Result<Secret, SecretError> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| SecretError::NoTerminal {
            what: what.to_string(),
        })?;
    let prompt_err = |source| SecretError::Prompt {
        what: what.to_string(),
        source,
    };
    let saved = tcgetattr(&tty).map_err(|e| prompt_err(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(|e| prompt_err(e.into()))?;
    let mut w = &tty;
    let asked = write!(w, "password for {what}: ").and_then(|()| w.flush());
    let mut line = String::new();
    let read = asked.and_then(|()| std::io::BufReader::new(&tty).read_line(&mut line));
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &saved);
    read.map_err(prompt_err)?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    wipe(&mut line);
    Ok(Secret(pw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn the_password_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "pa ss,word\r\nsecond\n").unwrap();
        assert_eq!(read_password_file(&p).unwrap().expose(), "pa ss,word");
        std::fs::write(&p, "\n").unwrap();
        let e = read_password_file(&p).unwrap_err().to_string();
        assert!(e.contains("is empty") && e.contains("pw"), "{e}");
        let e = read_password_file(&dir.path().join("none")).unwrap_err();
        assert!(e.to_string().contains("none"), "{e}");
    }
}
