//! Job files (`lifeboat run JOB.toml`, `lifeboat.job=LABEL:/path`): what a technician's stick
//! asks for, as data. The text comes from a stick anyone could have written, so it is parsed with
//! bounds — at most [`MAX_TEXT`] bytes, [`MAX_STEPS`] steps, [`MAX_FIELD`] bytes per string —
//! and unknown keys are refused. Running the steps is the front end's (each becomes a
//! [`super::JobSpec`]); image paths are resolved beneath the job file's folder by the front end.

use serde::Deserialize;
use std::io::Read;
use std::path::Path;

/// The largest job file read.
pub const MAX_TEXT: u64 = 1 << 20;
/// The most steps one job file may hold.
pub const MAX_STEPS: usize = 256;
/// The longest string field (paths, disk names, sizes).
pub const MAX_FIELD: usize = 4096;

/// Why a job file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JobFileError {
    #[error("reading the job file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the job file {path} is not a regular file")]
    NotAFile { path: String },
    #[error("the job file {path} is larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("{path} is not a valid job file: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Stop at the first failed step (default) or go on with the next.
    #[serde(default = "yes")]
    pub stop_on_error: bool,
    /// Network stores: the file (relative to the job file's folder) whose first line is the
    /// password of the job's smb:// and sftp:// image locations.
    #[serde(default)]
    pub store_password_file: Option<String>,
    /// Network stores: the SSH host key fingerprint (`SHA256:…`) accepted for sftp:// locations,
    /// or the SHA-256 fingerprint of the certificate accepted for https:// locations.
    #[serde(default)]
    pub host_key: Option<String>,
    /// https:// stores: a PEM file (relative to the job file's folder) of CA certificates
    /// trusted besides the built-in ones (a private CA, or a NAS's self-signed certificate).
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum Step {
    Backup {
        source: String,
        image: String,
        #[serde(default)]
        part: Option<u32>,
        #[serde(default = "level")]
        level: i32,
        #[serde(default)]
        split: Option<String>,
        #[serde(default)]
        strict: bool,
        /// The encrypted volumes' passphrase in a file beneath the job file's folder (issue 16).
        #[serde(default)]
        key_file: Option<String>,
        /// With `key_file`: store the plaintext file system of each unlocked volume (issue 16).
        #[serde(default)]
        decrypted: bool,
        /// Encrypt the image; the password is the first line of `password_file`.
        #[serde(default)]
        encrypt: bool,
        /// A file beside the job file (same confinement as image paths) holding the password.
        #[serde(default)]
        password_file: Option<String>,
    },
    Verify {
        /// Defaults to the image of the previous backup step.
        #[serde(default)]
        image: Option<String>,
        /// The password of an encrypted image (see `Backup::password_file`).
        #[serde(default)]
        password_file: Option<String>,
    },
    Restore {
        image: String,
        target: String,
        #[serde(default)]
        part: Option<u32>,
        #[serde(default)]
        grow_last: bool,
        #[serde(default)]
        new_ids: bool,
        #[serde(default)]
        verify: bool,
        #[serde(default)]
        discard: bool,
        /// The password of an encrypted image (see `Backup::password_file`).
        #[serde(default)]
        password_file: Option<String>,
    },
    Clone {
        source: String,
        target: String,
        #[serde(default)]
        grow_last: bool,
        #[serde(default)]
        new_ids: bool,
        #[serde(default)]
        verify: bool,
        #[serde(default)]
        strict: bool,
    },
    /// Receive an image a `lifeboat serve` sends by multicast and restore it onto `target` as it
    /// arrives (issue 19).
    Receive {
        target: String,
        #[serde(default)]
        grow_last: bool,
        #[serde(default)]
        new_ids: bool,
        #[serde(default)]
        verify: bool,
        /// The network interface (udpcast's default: eth0).
        #[serde(default)]
        interface: Option<String>,
        /// The sender's port (even, from 1024; default 9000).
        #[serde(default)]
        port: Option<u16>,
        /// Seconds without data before giving up (default 60).
        #[serde(default)]
        timeout: Option<u32>,
        /// The password of an encrypted image (see `Backup::password_file`).
        #[serde(default)]
        password_file: Option<String>,
    },
}

fn level() -> i32 {
    3
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::Backup { .. } => "backup",
            Step::Verify { .. } => "verify",
            Step::Restore { .. } => "restore",
            Step::Clone { .. } => "clone",
            Step::Receive { .. } => "receive",
        }
    }
}

impl JobFile {
    /// Parses and checks a job file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<JobFile, JobFileError> {
        let invalid = |reason: String| JobFileError::Invalid {
            path: path.to_string(),
            reason,
        };
        if text.len() as u64 > MAX_TEXT {
            return Err(JobFileError::TooLarge {
                path: path.to_string(),
                max: MAX_TEXT,
            });
        }
        let file: JobFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.steps.is_empty() {
            return Err(invalid("it has no [[step]]".to_string()));
        }
        if file.steps.len() > MAX_STEPS {
            return Err(invalid(format!(
                "{} steps (at most {MAX_STEPS})",
                file.steps.len()
            )));
        }
        if [&file.store_password_file, &file.host_key, &file.ca_file]
            .into_iter()
            .flatten()
            .any(|s| s.len() > MAX_FIELD)
        {
            return Err(invalid(format!(
                "store_password_file, host_key or ca_file is longer than {MAX_FIELD} bytes"
            )));
        }
        for (i, step) in file.steps.iter().enumerate() {
            if let Some(long) = step.strings().into_iter().find(|s| s.len() > MAX_FIELD) {
                return Err(invalid(format!(
                    "step {} has a value of {} bytes (at most {MAX_FIELD})",
                    i + 1,
                    long.len()
                )));
            }
        }
        Ok(file)
    }

    /// Reads and parses the job file at `path`: a regular file (a FIFO or device named like a job
    /// file is refused without blocking) of at most [`MAX_TEXT`] bytes.
    pub fn read(path: &Path) -> Result<JobFile, JobFileError> {
        use std::os::unix::fs::OpenOptionsExt;
        let name = path.display().to_string();
        let read_err = |source| JobFileError::Read {
            path: name.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(path)
            .map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(JobFileError::NotAFile { path: name });
        }
        if meta.len() > MAX_TEXT {
            return Err(JobFileError::TooLarge {
                path: name,
                max: MAX_TEXT,
            });
        }
        let mut text = String::new();
        file.take(MAX_TEXT + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        JobFile::parse(&text, &name)
    }
}

impl Step {
    /// Every string field, for the length bound.
    fn strings(&self) -> Vec<&str> {
        match self {
            Step::Backup {
                source,
                image,
                split,
                key_file,
                password_file,
                ..
            } => [
                Some(source.as_str()),
                Some(image.as_str()),
                split.as_deref(),
                key_file.as_deref(),
                password_file.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Step::Verify {
                image,
                password_file,
            } => [image.as_deref(), password_file.as_deref()]
                .into_iter()
                .flatten()
                .collect(),
            Step::Restore {
                image,
                target,
                password_file,
                ..
            } => [
                Some(image.as_str()),
                Some(target.as_str()),
                password_file.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Step::Clone { source, target, .. } => vec![source, target],
            Step::Receive {
                target,
                interface,
                password_file,
                ..
            } => [
                Some(target.as_str()),
                interface.as_deref(),
                password_file.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_step_can_ask_for_the_decrypted_file_system() {
        let f = JobFile::parse(
            "[[step]]\naction = \"backup\"\nsource = \"a\"\nimage = \"b.lbi\"\nkey_file = \"k\"\ndecrypted = true\n",
            "job.toml",
        )
        .unwrap();
        assert!(matches!(
            &f.steps[0],
            Step::Backup {
                decrypted: true,
                ..
            }
        ));
        let f = JobFile::parse(
            "[[step]]\naction = \"backup\"\nsource = \"a\"\nimage = \"b.lbi\"\n",
            "job.toml",
        )
        .unwrap();
        assert!(matches!(
            &f.steps[0],
            Step::Backup {
                decrypted: false,
                ..
            }
        ));
    }

    #[test]
    fn a_backup_step_names_its_key_file_and_never_holds_a_passphrase() {
        let f = JobFile::parse(
            "[[step]]\naction = \"backup\"\nsource = \"serial:X\"\nimage = \"x.lbi\"\nkey_file = \"keys/pc.key\"\n",
            "job.toml",
        )
        .unwrap();
        assert!(
            matches!(&f.steps[0], Step::Backup { key_file: Some(k), .. } if k == "keys/pc.key")
        );
        // A passphrase written into the job file itself is not a field.
        let e = JobFile::parse(
            "[[step]]\naction = \"backup\"\nsource = \"a\"\nimage = \"b\"\npassphrase = \"x\"\n",
            "job.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("passphrase"), "{e}");
    }

    #[test]
    fn network_store_settings_are_read_and_bounded() {
        let f = JobFile::parse(
            "store_password_file = \"nas.pw\"\nhost_key = \"SHA256:abc\"\n[[step]]\naction = \"verify\"\nimage = \"smb://anna@nas/imgs/x.lbi\"\n",
            "job.toml",
        )
        .unwrap();
        assert_eq!(f.store_password_file.as_deref(), Some("nas.pw"));
        assert_eq!(f.host_key.as_deref(), Some("SHA256:abc"));
        let f = JobFile::parse(
            "ca_file = \"certs/nas-ca.pem\"\n[[step]]\naction = \"verify\"\nimage = \"https://nas/imgs/x.lbi\"\n",
            "job.toml",
        )
        .unwrap();
        assert_eq!(f.ca_file.as_deref(), Some("certs/nas-ca.pem"));
        let long = format!(
            "ca_file = \"{}\"\n[[step]]\naction = \"verify\"\n",
            "a".repeat(MAX_FIELD + 1)
        );
        assert!(JobFile::parse(&long, "job.toml").is_err());
        let long = format!(
            "host_key = \"{}\"\n[[step]]\naction = \"verify\"\n",
            "a".repeat(MAX_FIELD + 1)
        );
        assert!(JobFile::parse(&long, "job.toml").is_err());
    }

    #[test]
    fn job_files_parse_and_unknown_keys_are_refused() {
        let f = JobFile::parse(
            "[[step]]\naction = \"backup\"\nsource = \"serial:X\"\nimage = \"{serial}.lbi\"\nsplit = \"4G\"\n\n[[step]]\naction = \"verify\"\n",
            "job.toml",
        )
        .unwrap();
        assert!(f.stop_on_error);
        assert_eq!(f.steps.len(), 2);
        assert!(matches!(&f.steps[1], Step::Verify { image: None, .. }));
        let typo = JobFile::parse(
            "[[step]]\naction = \"backup\"\nsource = \"a\"\nimage = \"b\"\nlevle = 3\n",
            "job.toml",
        )
        .unwrap_err();
        assert!(typo.to_string().contains("levle"), "{typo}");
        assert!(JobFile::parse("[[step]]\naction = \"format\"\n", "job.toml").is_err());
        let empty = JobFile::parse("stop_on_error = false\n", "job.toml").unwrap_err();
        assert!(empty.to_string().contains("no [[step]]"), "{empty}");
    }

    #[test]
    fn oversized_job_files_steps_and_fields_are_refused() {
        let step = "[[step]]\naction = \"verify\"\nimage = \"x.lbi\"\n";
        let many = step.repeat(MAX_STEPS + 1);
        let e = JobFile::parse(&many, "job.toml").unwrap_err();
        assert!(e.to_string().contains("at most 256"), "{e}");
        let long = format!(
            "[[step]]\naction = \"verify\"\nimage = \"{}\"\n",
            "a".repeat(MAX_FIELD + 1)
        );
        let e = JobFile::parse(&long, "job.toml").unwrap_err();
        assert!(e.to_string().contains("at most 4096"), "{e}");
        let huge = "#".repeat(MAX_TEXT as usize + 1);
        assert!(matches!(
            JobFile::parse(&huge, "job.toml"),
            Err(JobFileError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_fifo_named_like_a_job_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("job.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = JobFile::read(&fifo).unwrap_err();
        assert!(matches!(e, JobFileError::NotAFile { .. }), "{e}");
    }
}
