//! Passwords of encrypted images on the command line: asked at a no-echo prompt on the terminal
//! (`/dev/tty`, twice for a new image) or read from `--password-file FILE`. A password is never an
//! argument (it would show in `ps` and shell history), and is never printed or logged.

use anyhow::{bail, Context, Result};
use image::Passphrase;
use std::io::{BufRead, Write};
use std::path::Path;

/// Longest password accepted (bytes).
const MAX_PASSWORD: usize = 1024;
/// Times a password typed at the prompt may be wrong before giving up.
const TRIES: usize = 3;

/// Reads a password from `file`: its first line, without the line end. Empty is refused.
pub fn from_file(file: &Path) -> Result<Passphrase> {
    use std::io::Read;
    let f = std::fs::File::open(file)
        .with_context(|| format!("reading the password file {}", file.display()))?;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    f.take(MAX_PASSWORD as u64 + 2)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading the password file {}", file.display()))?;
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        bail!("the password file {} is empty", file.display());
    }
    if line.len() > MAX_PASSWORD {
        bail!(
            "the password in {} is longer than {MAX_PASSWORD} bytes",
            file.display()
        );
    }
    Ok(Passphrase::new(line.to_vec()))
}

/// Asks for a password on the terminal without echo.
fn prompt(question: &str) -> Result<Passphrase> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for the password on: use --password-file FILE")?;
    let saved = tcgetattr(&tty).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet).context("turning off the terminal echo")?;
    let mut out = &tty;
    let asked = out
        .write_all(question.as_bytes())
        .and_then(|()| out.flush());
    let mut line = zeroize::Zeroizing::new(Vec::new());
    let read = asked.and_then(|()| std::io::BufReader::new(&tty).read_until(b'\n', &mut line));
    let restored = tcsetattr(&tty, SetArg::TCSAFLUSH, &saved);
    read.context("reading the password from the terminal")?;
    restored.context("restoring the terminal echo")?;
    let text = line.strip_suffix(b"\n").unwrap_or(&line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.is_empty() {
        bail!("no password typed");
    }
    if text.len() > MAX_PASSWORD {
        bail!("the password is longer than {MAX_PASSWORD} bytes");
    }
    Ok(Passphrase::new(text.to_vec()))
}

/// The password for a new encrypted image: from `file`, or typed twice at the prompt.
pub fn new_password(file: Option<&Path>) -> Result<Passphrase> {
    if let Some(f) = file {
        return from_file(f);
    }
    for _ in 0..TRIES {
        let first = prompt("New image password: ")?;
        let again = prompt("Type it again: ")?;
        if first.same_as(&again) {
            return Ok(first);
        }
        eprintln!("lifeboat: the two passwords differ; try again");
    }
    bail!("the passwords typed did not match {TRIES} times")
}

/// Makes sure the engine has the password of `path` when it is an encrypted image: from `file`,
/// or asked at the prompt (again when wrong, up to three times). Anything else is left alone.
/// The password is checked here, so a wrong one ends the command before anything is read.
pub fn unlock(path: &Path, file: Option<&Path>) -> Result<()> {
    if !engine::keys::needs_password(path) {
        return Ok(());
    }
    let tries = if file.is_some() { 1 } else { TRIES };
    for attempt in 1..=tries {
        let pw = match file {
            Some(f) => from_file(f)?,
            None => prompt(&format!("Password for {}: ", path.display()))?,
        };
        match image::ImageReader::open_with(path, Some(&pw)) {
            Ok(_) => {
                engine::keys::remember(path, pw);
                return Ok(());
            }
            Err(e @ image::Error::WrongPassword { .. }) => {
                if attempt == tries {
                    return Err(e.into());
                }
                eprintln!("lifeboat: {e}; try again");
            }
            // Any other problem is reported by the command itself, with its context.
            Err(_) => {
                engine::keys::remember(path, pw);
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_gives_its_first_line_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret pass\r\nignored\n").unwrap_or_else(|e| panic!("{e}"));
        let pw = from_file(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pw.expose(), b"s3cret pass");
        std::fs::write(&f, "\n").unwrap_or_else(|e| panic!("{e}"));
        let err = from_file(&f)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is empty"), "{err}");
    }
}
