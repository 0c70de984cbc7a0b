//! Saved network locations: `lifeboat-locations.toml` on a technician's drive, so a NAS share is
//! typed once. Holds URLs and pinned SFTP host keys, never a password:
//!
//! ```toml
//! [[location]]
//! url = "smb://OFFICE;anna@nas.local/images"
//!
//! [[location]]
//! url = "sftp://root@10.0.0.5/srv/images"
//! host_key = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
//! ```
//!
//! Parsing is bounded: a file over [`MAX_FILE`] bytes or with more than [`MAX_LOCATIONS`]
//! entries is refused, and each URL is checked like a typed one (a password in it is refused).

use crate::location::{Location, UrlError};
use std::path::Path;

/// The file name of saved locations, at the top of a drive.
pub const FILE_NAME: &str = "lifeboat-locations.toml";
/// Largest file read (bytes).
pub const MAX_FILE: u64 = 64 * 1024;
/// Most locations one file holds.
pub const MAX_LOCATIONS: usize = 100;

/// One saved location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub location: Location,
    /// The SFTP server's accepted host key fingerprint.
    pub host_key: Option<String>,
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
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host_key: Option<String>,
}

#[derive(serde::Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
struct FileForm {
    #[serde(default)]
    location: Vec<Entry>,
}

fn valid_key(k: &str) -> bool {
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
                if !valid_key(k) {
                    return Err(SavedError::HostKey {
                        file: file.into(),
                        index,
                        key: k.chars().take(80).collect(),
                    });
                }
            }
            Ok(Saved {
                location,
                host_key: e.host_key,
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
            })
            .collect(),
    };
    format!(
        "# Lifeboat's saved network locations (no passwords: they are typed when used)\n{}",
        toml::to_string(&form).unwrap_or_default()
    )
}

/// Reads `path` (no file: no locations), at most [`MAX_FILE`] bytes.
pub fn load(path: &Path) -> Result<Vec<Saved>, SavedError> {
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
/// to a temporary file and renamed over the old one.
pub fn add(path: &Path, entry: Saved) -> Result<Vec<Saved>, SavedError> {
    let mut all = load(path)?;
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
    Ok(all)
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
        };
        let sftp = Saved {
            location: Location::parse("sftp://root@10.0.0.5/srv/images").unwrap(),
            host_key: Some("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".into()),
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
}
