//! Saved network locations: `lifeboat-locations.toml` on a technician's drive, so a NAS share is
//! typed once. Holds URLs, pinned SFTP host keys or HTTPS certificate fingerprints, HTTPS CA
//! files and how long a restore waits for a vanished server — never a password:
//!
//! ```toml
//! [[location]]
//! url = "smb://OFFICE;anna@nas.local/images"
//! store_retry = 120
//!
//! [[location]]
//! url = "sftp://root@10.0.0.5/srv/images"
//! host_key = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
//!
//! [[location]]
//! url = "https://lab.local/images/pc.lbi"
//! ca_file = "certs/lab-ca.pem"
//! ```
//!
//! `host_key` is an SSH host key fingerprint (`SHA256:` and base64) for `sftp://`, a
//! certificate's SHA-256 fingerprint (`SHA256:AB:CD:…`, [`crate::tls::Fingerprint`]) for
//! `https://`. `ca_file` is a PEM file; a relative path is relative to the folder of the
//! locations file, so a stick carries its CA certificates beside the file whatever name its
//! drive gets ([`load`] makes it absolute, [`add`] writes a file below that folder relative).
//! `store_retry` is in seconds ([`MIN_RETRY`]..=[`MAX_RETRY`], the CLI's `--store-retry`).
//!
//! Parsing is bounded: a file over [`MAX_FILE`] bytes or with more than [`MAX_LOCATIONS`]
//! entries is refused, and each URL is checked like a typed one (a password in it is refused).

use crate::location::{Location, Scheme, UrlError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name of saved locations, at the top of a drive.
pub const FILE_NAME: &str = "lifeboat-locations.toml";
/// Largest file read (bytes).
pub const MAX_FILE: u64 = 64 * 1024;
/// Most locations one file holds.
pub const MAX_LOCATIONS: usize = 100;
/// Shortest and longest wait for a vanished server (seconds), as `--store-retry` takes them.
pub const MIN_RETRY: u64 = 1;
pub const MAX_RETRY: u64 = 3600;
/// Longest `ca_file` path (bytes).
pub const MAX_PATH: usize = 4096;

/// One saved location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub location: Location,
    /// The SFTP server's accepted host key fingerprint, or the HTTPS server's accepted
    /// certificate fingerprint.
    pub host_key: Option<String>,
    /// HTTPS: a PEM file of CA certificates to trust besides the public ones.
    pub ca_file: Option<PathBuf>,
    /// How long a restore retries reads when the server vanishes (else the default, 45 s).
    pub store_retry: Option<Duration>,
}

/// Why a locations file was not read or written. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: larger than {MAX_FILE} bytes: not a locations file")]
    TooLarge { file: String },
    #[error("{file}: more than {MAX_LOCATIONS} locations")]
    TooMany { file: String },
    #[error("{file}: {detail}")]
    Syntax { file: String, detail: String },
    #[error("{file}: location {index}: {source}")]
    Url {
        file: String,
        index: usize,
        source: UrlError,
    },
    #[error("{file}: location {index}: host_key {key:?} is not a SHA256: fingerprint")]
    HostKey {
        file: String,
        index: usize,
        key: String,
    },
    #[error("{file}: location {index}: {what}")]
    Field {
        file: String,
        index: usize,
        what: String,
    },
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store_retry: Option<u64>,
}

#[derive(serde::Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
struct FileForm {
    #[serde(default)]
    location: Vec<Entry>,
}

/// An SSH host key fingerprint (`SHA256:` and base64) for SFTP, a certificate fingerprint for
/// HTTPS.
fn valid_key(scheme: Scheme, k: &str) -> bool {
    if matches!(scheme, Scheme::Https) {
        return k.len() <= 200 && crate::tls::Fingerprint::parse(k).is_some();
    }
    k.strip_prefix("SHA256:").is_some_and(|b| {
        !b.is_empty()
            && b.len() <= 64
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
    })
}

/// Parses the text of a locations file (`file` names it in errors).
pub fn parse(file: &str, text: &str) -> Result<Vec<Saved>, SavedError> {
    if text.len() as u64 > MAX_FILE {
        return Err(SavedError::TooLarge { file: file.into() });
    }
    let form: FileForm = toml::from_str(text).map_err(|e| SavedError::Syntax {
        file: file.into(),
        detail: e.message().to_string(),
    })?;
    if form.location.len() > MAX_LOCATIONS {
        return Err(SavedError::TooMany { file: file.into() });
    }
    form.location
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let index = i + 1;
            let location = Location::parse(&e.url).map_err(|source| SavedError::Url {
                file: file.into(),
                index,
                source,
            })?;
            if let Some(k) = &e.host_key {
                if !valid_key(location.scheme, k) {
                    return Err(SavedError::HostKey {
                        file: file.into(),
                        index,
                        key: k.chars().take(80).collect(),
                    });
                }
            }
            let field = |what: String| SavedError::Field {
                file: file.into(),
                index,
                what,
            };
            if let Some(c) = &e.ca_file {
                if location.scheme != Scheme::Https {
                    return Err(field("ca_file is for https:// locations only".into()));
                }
                if c.is_empty() || c.len() > MAX_PATH || c.chars().any(char::is_control) {
                    return Err(field(format!(
                        "ca_file must be a path of 1 to {MAX_PATH} bytes without control characters"
                    )));
                }
            }
            if let Some(r) = e.store_retry {
                if !(MIN_RETRY..=MAX_RETRY).contains(&r) {
                    return Err(field(format!(
                        "store_retry {r} is not {MIN_RETRY} to {MAX_RETRY} seconds"
                    )));
                }
            }
            Ok(Saved {
                location,
                host_key: e.host_key,
                ca_file: e.ca_file.map(PathBuf::from),
                store_retry: e.store_retry.map(Duration::from_secs),
            })
        })
        .collect()
}

/// The text of a locations file holding `saved`.
pub fn render(saved: &[Saved]) -> String {
    let form = FileForm {
        location: saved
            .iter()
            .map(|s| Entry {
                url: s.location.to_string(),
                host_key: s.host_key.clone(),
                ca_file: s.ca_file.as_ref().map(|p| p.to_string_lossy().into_owned()),
                store_retry: s.store_retry.map(|d| d.as_secs()),
            })
            .collect(),
    };
    format!(
        "# Lifeboat's saved network locations (no passwords: they are typed when used)\n{}",
        toml::to_string(&form).unwrap_or_default()
    )
}

/// Reads `path` (no file: no locations), at most [`MAX_FILE`] bytes. A relative `ca_file` is
/// made absolute from the file's folder.
pub fn load(path: &Path) -> Result<Vec<Saved>, SavedError> {
    let mut all = read(path)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    for s in &mut all {
        if let Some(c) = s.ca_file.take() {
            s.ca_file = Some(if c.is_absolute() { c } else { dir.join(c) });
        }
    }
    Ok(all)
}

fn read(path: &Path) -> Result<Vec<Saved>, SavedError> {
    use std::io::Read;
    let file = path.display().to_string();
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SavedError::Io { file, source }),
    };
    let mut text = String::new();
    f.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|source| SavedError::Io {
            file: file.clone(),
            source,
        })?;
    parse(&file, &text)
}

/// Adds `entry` to the file at `path` (replacing a saved location with the same URL), written
/// to a temporary file and renamed over the old one. A `ca_file` below the file's folder is
/// written relative to it. Returns the file's locations as [`load`] reads them.
pub fn add(path: &Path, mut entry: Saved) -> Result<Vec<Saved>, SavedError> {
    let dir = path.parent().unwrap_or(Path::new(""));
    if let Some(c) = entry.ca_file.take() {
        entry.ca_file = Some(match c.strip_prefix(dir) {
            Ok(rel) if !dir.as_os_str().is_empty() && c.is_absolute() => rel.to_path_buf(),
            _ => c,
        });
    }
    let mut all = read(path)?;
    all.retain(|s| s.location != entry.location);
    if all.len() >= MAX_LOCATIONS {
        return Err(SavedError::TooMany {
            file: path.display().to_string(),
        });
    }
    all.push(entry);
    let tmp = path.with_extension("toml.new");
    let io = |source| SavedError::Io {
        file: path.display().to_string(),
        source,
    };
    std::fs::write(&tmp, render(&all)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    load(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert!(load(&path).unwrap().is_empty());
        let smb = Saved {
            location: Location::parse("smb://OFFICE;anna@nas.local/images").unwrap(),
            host_key: None,
            ca_file: None,
            store_retry: None,
        };
        let sftp = Saved {
            location: Location::parse("sftp://root@10.0.0.5/srv/images").unwrap(),
            host_key: Some("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".into()),
            ca_file: None,
            store_retry: None,
        };
        add(&path, smb.clone()).unwrap();
        add(&path, sftp.clone()).unwrap();
        // The same URL again replaces it.
        let all = add(&path, smb.clone()).unwrap();
        assert_eq!(all, vec![sftp.clone(), smb.clone()]);
        assert_eq!(load(&path).unwrap(), all);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("url = \"smb://OFFICE;anna@nas.local/images\""),
            "{text}"
        );

        let e = parse("f", "[[location]]\nurl = \"smb://a:pw@nas/s\"\n").unwrap_err();
        assert!(e.to_string().starts_with("f: location 1: "), "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
        let e = parse(
            "f",
            "[[location]]\nurl = \"sftp://h/p\"\nhost_key = \"yes\"\n",
        )
        .unwrap_err();
        assert!(matches!(e, SavedError::HostKey { index: 1, .. }), "{e}");
        let e = parse("f", "[[location]]\nurl = \"nfs://h/p\"\npassword = \"x\"\n").unwrap_err();
        assert!(matches!(e, SavedError::Syntax { .. }), "{e}");
        let many = "[[location]]\nurl = \"nfs://h/p\"\n".repeat(MAX_LOCATIONS + 1);
        assert!(matches!(parse("f", &many), Err(SavedError::TooMany { .. })));
        std::fs::write(&path, vec![b'#'; MAX_FILE as usize + 10]).unwrap();
        assert!(matches!(load(&path), Err(SavedError::TooLarge { .. })));
    }

    #[test]
    fn https_ca_files_fingerprints_and_retry_times_are_kept_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let fp = crate::tls::Fingerprint::of(b"cert").to_string();
        let lab = Saved {
            location: Location::parse("https://lab.local/images/pc.lbi").unwrap(),
            host_key: Some(fp.clone()),
            ca_file: Some(dir.path().join("certs/lab-ca.pem")),
            store_retry: None,
        };
        let elsewhere = Saved {
            location: Location::parse("https://other.local/x.lbi").unwrap(),
            host_key: None,
            ca_file: Some(PathBuf::from("/etc/ssl/private-ca.pem")),
            store_retry: None,
        };
        let nas = Saved {
            location: Location::parse("smb://nas/images").unwrap(),
            host_key: None,
            ca_file: None,
            store_retry: Some(Duration::from_secs(120)),
        };
        add(&path, lab.clone()).unwrap();
        add(&path, elsewhere.clone()).unwrap();
        let all = add(&path, nas.clone()).unwrap();
        assert_eq!(all, vec![lab.clone(), elsewhere.clone(), nas.clone()]);
        let text = std::fs::read_to_string(&path).unwrap();
        // Beside the file: relative, so the stick works whatever its drive is called.
        assert!(text.contains("ca_file = \"certs/lab-ca.pem\""), "{text}");
        assert!(
            text.contains("ca_file = \"/etc/ssl/private-ca.pem\""),
            "{text}"
        );
        assert!(text.contains("store_retry = 120"), "{text}");
        assert!(text.contains(&format!("host_key = \"{fp}\"")), "{text}");
        // The same file seen from another mount point resolves beside itself.
        let moved = dir.path().join("moved");
        std::fs::create_dir_all(&moved).unwrap();
        std::fs::copy(&path, moved.join(FILE_NAME)).unwrap();
        let again = load(&moved.join(FILE_NAME)).unwrap();
        assert_eq!(again[0].ca_file, Some(moved.join("certs/lab-ca.pem")));

        let e = parse(
            "f",
            "[[location]]\nurl = \"smb://nas/s\"\nca_file = \"ca.pem\"\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f: location 1: ca_file is for https:// locations only"
        );
        let e = parse(
            "f",
            "[[location]]\nurl = \"nfs://nas/s\"\nstore_retry = 0\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f: location 1: store_retry 0 is not 1 to 3600 seconds"
        );
        // An SSH key is not a certificate fingerprint, and the other way round.
        let e = parse(
            "f",
            "[[location]]\nurl = \"https://h/x.lbi\"\nhost_key = \"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\"\n",
        )
        .unwrap_err();
        assert!(matches!(e, SavedError::HostKey { index: 1, .. }), "{e}");
        let e = parse(
            "f",
            &format!("[[location]]\nurl = \"sftp://h/p\"\nhost_key = \"{fp}\"\n"),
        )
        .unwrap_err();
        assert!(matches!(e, SavedError::HostKey { index: 1, .. }), "{e}");
    }
}
