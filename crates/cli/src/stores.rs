//! Network locations wherever an image path goes (`backup`, `restore`, `verify`, `info`, `ls`,
//! `extract`, job files): a `smb://`, `nfs://`, `sftp://`, `http://` or `https://` URL is opened
//! through the `store` crate and replaced by the local path of its file; the stores stay open
//! until the command ends ([`close_all`]).
//!
//! The password comes from `--password-file` (or a job file's `password_file`), else from a
//! prompt without echo when there is a terminal; an SFTP host key that is not pinned
//! (`--host-key`, `host_key`) is shown with its fingerprint and must be accepted at the terminal;
//! so is an HTTPS certificate that no trusted CA signed (`--ca-file`, `ca_file`), whose SHA-256
//! fingerprint is then pinned the same way.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use store::{Location, Purpose, Scheme, StoreError};

/// How stores are reached in this process.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    pub password_file: Option<PathBuf>,
    pub host_key: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

static SETTINGS: Mutex<Option<Settings>> = Mutex::new(None);
static OPEN: Mutex<Vec<store::Opened>> = Mutex::new(Vec::new());

/// Sets the password file and host key pin used from now on.
pub fn configure(s: Settings) {
    *SETTINGS.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
}

/// The settings in use.
pub fn settings() -> Settings {
    SETTINGS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

/// `arg` as a local path: itself when it is not a URL, else the local path of the opened store.
pub fn local(arg: &str, purpose: Purpose) -> Result<PathBuf> {
    if !store::is_url(arg) {
        return Ok(PathBuf::from(arg));
    }
    let loc = Location::parse(arg)?;
    let s = settings();
    let mut access = store::Access {
        host_key: s.host_key.clone(),
        identity_file: s.identity_file.clone(),
        ca_file: s.ca_file.clone(),
        ..store::Access::default()
    };
    let needs_password = match loc.scheme {
        Scheme::Smb => loc.user.is_some(),
        Scheme::Sftp => s.identity_file.is_none(),
        _ => false,
    };
    if needs_password {
        access.password = match &s.password_file {
            Some(f) => Some(store::read_password_file(f)?),
            None if std::io::stdin().is_terminal() => {
                let what = if loc.scheme == Scheme::Sftp {
                    format!("{loc} (empty: use SSH keys)")
                } else {
                    loc.to_string()
                };
                Some(store::prompt_password(&what)?).filter(|p| !p.is_empty())
            }
            None if loc.scheme == Scheme::Smb => {
                bail!("{loc}: a password is needed: give --password-file (password_file in a job file), or run at a terminal")
            }
            None => None,
        };
    }
    let base = Path::new(store::STORES_DIR);
    let opened = match store::open(&loc, &access, purpose, base) {
        Err(StoreError::HostKeyNotPinned {
            host, fingerprints, ..
        }) if std::io::stdin().is_terminal() => {
            let pin = ask_host_key(&host, &fingerprints)?;
            access.host_key = Some(pin);
            store::open(&loc, &access, purpose, base)?
        }
        Err(StoreError::CertUntrusted {
            host, fingerprint, ..
        }) if std::io::stdin().is_terminal() => {
            access.host_key = Some(ask_certificate(&host, &fingerprint)?);
            store::open(&loc, &access, purpose, base)?
        }
        other => other?,
    };
    let path = opened.path().to_path_buf();
    if purpose == Purpose::Write {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {loc}'s folder"))?;
        }
    }
    OPEN.lock().unwrap_or_else(|p| p.into_inner()).push(opened);
    Ok(path)
}

/// `text` with the local paths of the open stores' files named by their URLs again (for
/// messages). The list is only ever locked for a push or a take, never while anything logs, so
/// waiting for it cannot deadlock; stores being closed are out of it already.
pub fn name_urls(text: &str) -> String {
    let open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    open.iter().fold(text.to_string(), |t, o| o.name_urls(&t))
}

/// Shows the fingerprints of an unknown SSH server and asks which to accept.
fn ask_host_key(host: &str, fingerprints: &[String]) -> Result<String> {
    let mut err = std::io::stderr();
    writeln!(err, "The SSH server {host} is not known. Its host keys:")?;
    for (i, f) in fingerprints.iter().enumerate() {
        writeln!(err, "  {}. {f}", i + 1)?;
    }
    write!(
        err,
        "Compare with the server's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub). Accept key 1? Type yes: "
    )?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        bail!("the host key of {host} was not accepted");
    }
    let first = fingerprints.first().context("no host key")?;
    let fp = first
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    eprintln!("accepted {fp}; pin it with --host-key {fp} (host_key in a job file)");
    Ok(fp)
}

/// Shows the fingerprint of an HTTPS certificate no trusted CA signed and asks whether to
/// accept it for this run.
fn ask_certificate(host: &str, fingerprint: &str) -> Result<String> {
    let mut err = std::io::stderr();
    writeln!(
        err,
        "The certificate of {host} is not signed by a trusted CA. Its fingerprint:\n  {fingerprint}"
    )?;
    write!(
        err,
        "Compare with the server's own (openssl x509 -noout -fingerprint -sha256 -in CERT). Accept it? Type yes: "
    )?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        bail!("the certificate of {host} was not accepted");
    }
    eprintln!("accepted; pin it with --host-key {fingerprint} (host_key in a job file), or give its CA with --ca-file");
    Ok(fingerprint.to_string())
}

/// Unmounts every store this process opened (in reverse order); failures are reported.
pub fn close_all() {
    // Taken out of the list first: closing logs, and the logger locks the list.
    let mut open = std::mem::take(&mut *OPEN.lock().unwrap_or_else(|p| p.into_inner()));
    while let Some(o) = open.pop() {
        if let Err(e) = o.close() {
            eprintln!("lifeboat: warning: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_pass_through_untouched() {
        assert_eq!(
            local("/mnt/x.lbi", Purpose::Read).unwrap(),
            PathBuf::from("/mnt/x.lbi")
        );
        assert_eq!(
            local("BACKUP:/x.lbi", Purpose::Read).unwrap(),
            PathBuf::from("BACKUP:/x.lbi")
        );
    }

    #[test]
    fn a_url_with_a_password_is_refused_before_anything_is_contacted() {
        let e = local("smb://u:pw@127.0.0.1/s/x.lbi", Purpose::Read).unwrap_err();
        assert!(
            e.to_string().contains("password does not go in a URL"),
            "{e}"
        );
        let e = local("http://127.0.0.1:9/x.lbi", Purpose::Write).unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
    }
}
