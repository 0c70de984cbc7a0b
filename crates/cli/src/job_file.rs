//! `lifeboat run JOB.toml`: unattended jobs for the technician's stick (see docs/job-files.md).
//!
//! The job file is the confirmation: its steps run without asking, but every safety check
//! (mounted, boot medium, source = target, the drive holding the image, too small) still
//! applies: each step becomes an `engine::job::JobSpec` and runs like the same subcommand with
//! `--yes`. Image paths are relative to the job file's folder and cannot leave it (no absolute
//! paths, no `..`, no symbolic link or mount point leading out). The report is what this
//! prints; Lifeboat's init writes it next to the job file.

use crate::clone::WriteArgs;
use crate::image_cmds::{BackupArgs, RestoreArgs};
use anyhow::{bail, Context, Result};
use engine::job::file::{JobFile, Step};
use engine::job::Status;
use std::path::{Path, PathBuf};

fn now() -> String {
    image::rfc3339_utc(std::time::SystemTime::now())
}

/// `{model}`, `{serial}`, `{date}` (YYYY-MM-DD) and `{time}` (HHMMSS) in an image name; the
/// result lies beneath the job file's folder `base` ([`beneath`]). Characters that file systems
/// refuse become `_`. A network URL (`smb://…`) is opened as a store instead
/// ([`crate::stores::local`]): for writing when `source` is given (a backup), else for reading.
fn image_path(template: &str, source: Option<&str>, base: &Path) -> Result<PathBuf> {
    let stamp = now();
    let date = stamp.get(..10).unwrap_or("");
    let time: String = stamp
        .get(11..19)
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    let (model, serial) = match source {
        Some(spec) if template.contains("{model}") || template.contains("{serial}") => {
            let path = crate::resolve_target(spec)?;
            let devices =
                disk::discover(&disk::SysRoot::default(), &disk::DiscoverOptions::default())?;
            let d = devices.iter().find(|d| d.path == path);
            (
                d.and_then(|d| d.model.clone())
                    .unwrap_or_else(|| "unknown".into()),
                d.and_then(|d| d.serial.clone())
                    .unwrap_or_else(|| "unknown".into()),
            )
        }
        _ => (String::new(), String::new()),
    };
    let clean = |s: &str| -> String {
        s.trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let name = template
        .replace("{model}", &clean(&model))
        .replace("{serial}", &clean(&serial))
        .replace("{date}", date)
        .replace("{time}", &time);
    let name = match job_url_dir() {
        Some(dir) if !store::is_url(&name) => {
            let p = Path::new(&name);
            if p.is_absolute()
                || p.components().any(|c| {
                    !matches!(
                        c,
                        std::path::Component::Normal(_) | std::path::Component::CurDir
                    )
                })
            {
                bail!(
                    "image path `{name}` of a network job must be a plain name beside the job file"
                );
            }
            format!("{dir}/{}", name.trim_start_matches("./"))
        }
        _ => name,
    };
    if store::is_url(&name) {
        let purpose = if source.is_some() {
            store::Purpose::Write
        } else {
            store::Purpose::Read
        };
        return crate::stores::local(&name, purpose);
    }
    beneath(base, &name)
}

/// `rel` resolved beneath the job file's folder `base`: refused when absolute, when it has a
/// `..`, or when an existing part of it is a symbolic link leading out of `base` or a folder on
/// another file system (a mount point). The result is the real path.
/// An encrypted image of a step: its password from `password_file` (beneath the job folder), or
/// the one the backup step that wrote it was given; a job never prompts.
fn unlock_step(image: &Path, password_file: Option<&str>, base: &Path) -> Result<()> {
    match password_file {
        Some(f) => crate::password::unlock(image, Some(&beneath(base, f)?)),
        None if engine::keys::needs_password(image) => bail!(
            "{} is encrypted: give the step a password_file (a job never asks)",
            image.display()
        ),
        None => Ok(()),
    }
}

fn beneath(base: &Path, rel: &str) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    use std::path::Component;
    let path = Path::new(rel);
    let refuse = |why: &str| -> Result<PathBuf> {
        bail!("image path `{rel}` {why}: image paths are relative to the job file's folder and stay inside it")
    };
    if path.is_absolute() {
        return refuse("is absolute");
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return refuse("leads out with `..`");
    }
    let top = std::fs::canonicalize(base)
        .with_context(|| format!("reading the job folder {}", base.display()))?;
    let top_dev = std::fs::metadata(&top)
        .with_context(|| format!("reading the job folder {}", top.display()))?
        .dev();
    let mut at = top.clone();
    for c in path.components() {
        let Component::Normal(c) = c else { continue };
        let next = at.join(c);
        match std::fs::symlink_metadata(&next) {
            Ok(meta) => {
                let real = if meta.file_type().is_symlink() {
                    std::fs::canonicalize(&next)
                        .with_context(|| format!("following the link {}", next.display()))?
                } else {
                    next
                };
                if !real.starts_with(&top) {
                    return refuse(&format!("leads out through the link to {}", real.display()));
                }
                let dev = std::fs::metadata(&real)
                    .with_context(|| format!("reading {}", real.display()))?
                    .dev();
                if dev != top_dev {
                    return refuse(&format!(
                        "crosses into another file system at {}",
                        real.display()
                    ));
                }
                at = real;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => at = next,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("reading {}", next.display())))
            }
        }
    }
    Ok(at)
}

/// Runs the job file's steps and prints the report; the exit code ranks the steps' outcomes
/// ([`crate::exit::worst`]). A job file that cannot be read or is not valid runs nothing and is
/// [`crate::exit::USAGE`]: the job never started.
/// The folder URL of a job file read from the network (`lifeboat run http://…/job.toml`):
/// its relative image names are locations beside it.
static JOB_URL_DIR: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn job_url_dir() -> Option<String> {
    JOB_URL_DIR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// `lifeboat run URL`: opens the job file's store, then runs it like a local one, with its
/// relative image names taken as URLs beside it.
pub fn run_url(url: &str) -> Result<u8> {
    let local = match crate::stores::local(url, store::Purpose::Read) {
        Ok(p) => p,
        Err(e) => {
            let text = disk::text::printable(&crate::error_chain(&e)).into_owned();
            println!("Lifeboat {} job report", env!("CARGO_PKG_VERSION"));
            println!("job not started: {text}");
            eprintln!("lifeboat: error: {text}");
            return Ok(crate::exit::USAGE);
        }
    };
    let dir = url.rsplit_once('/').map_or(url, |(d, _)| d).to_string();
    *JOB_URL_DIR.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir);
    println!("job location: {url}");
    run(&local)
}

pub fn run(job: &Path) -> Result<u8> {
    let file = match JobFile::read(job) {
        Ok(f) => f,
        Err(e) => {
            let text = disk::text::printable(&e.to_string()).into_owned();
            println!("Lifeboat {} job report", env!("CARGO_PKG_VERSION"));
            println!("job not started: {text}");
            eprintln!("lifeboat: error: {text}");
            return Ok(crate::exit::USAGE);
        }
    };
    let base = job.parent().map(Path::to_path_buf).unwrap_or_default();
    if file.store_password_file.is_some() || file.host_key.is_some() || file.ca_file.is_some() {
        let confined = |key: &str, value: &Option<String>| match value {
            Some(p) => match beneath(&base, p) {
                Ok(p) => Ok(Some(p)),
                Err(e) => {
                    println!("job not started: {key}: {}", crate::error_chain(&e));
                    Err(())
                }
            },
            None => Ok(None),
        };
        let Ok(password_file) = confined("store_password_file", &file.store_password_file) else {
            return Ok(crate::exit::USAGE);
        };
        let Ok(ca_file) = confined("ca_file", &file.ca_file) else {
            return Ok(crate::exit::USAGE);
        };
        // What the job file leaves out stays as given on the command line (`lifeboat run URL
        // --host-key …` for the server the job file itself came from).
        let given = crate::stores::settings();
        crate::stores::configure(crate::stores::Settings {
            password_file: password_file.or(given.password_file),
            host_key: file.host_key.clone().or(given.host_key),
            identity_file: given.identity_file,
            ca_file: ca_file.or(given.ca_file),
        });
    }
    println!("Lifeboat {} job report", env!("CARGO_PKG_VERSION"));
    println!("job file: {}", job.display());
    println!("started: {}\n", now());
    let mut worst = 0u8;
    let mut last_image: Option<PathBuf> = None;
    let (mut ok, mut failed) = (0, 0);
    for (i, step) in file.steps.iter().enumerate() {
        println!(
            "== step {} of {}: {} ({}) ==",
            i + 1,
            file.steps.len(),
            step.name(),
            now()
        );
        let result = run_step(step, &base, &mut last_image);
        match result {
            Ok(status) => {
                worst = crate::exit::worst(worst, crate::exit::of(status));
                ok += 1;
                println!("-- step {}: {} --\n", i + 1, status.label());
            }
            Err(e) => {
                failed += 1;
                println!("error: {}", disk::text::printable(&crate::error_chain(&e)));
                println!("-- step {}: FAILED --\n", i + 1);
                if file.stop_on_error {
                    println!("stopping: stop_on_error is on");
                    break;
                }
            }
        }
    }
    println!("finished: {}: {ok} step(s) OK, {failed} failed", now());
    Ok(if failed > 0 {
        crate::exit::FAILURE
    } else {
        worst
    })
}

/// Runs one step as the same subcommand would with `--yes`: the engine plans it (every safety
/// check), prints the plan, runs it and prints the outcome.
fn run_step(step: &Step, base: &Path, last_image: &mut Option<PathBuf>) -> Result<Status> {
    let write = |verify: bool, strict: bool| WriteArgs {
        verify,
        strict,
        dry_run: false,
        yes: true,
        json: false,
    };
    let ui = write(false, false).ui();
    match step {
        Step::Backup {
            source,
            image,
            part,
            level,
            split,
            strict,
            key_file,
            decrypted,
            encrypt,
            password_file,
        } => {
            let path = image_path(image, Some(source), base)?;
            // Beneath the job file's folder, like the images.
            let key_file = key_file.as_deref().map(|k| beneath(base, k)).transpose()?;
            if *decrypted && key_file.is_none() {
                bail!("decrypted = true needs key_file: the volumes must be unlocked");
            }
            let password_file = password_file
                .as_deref()
                .map(|f| beneath(base, f))
                .transpose()?;
            if *encrypt && password_file.is_none() {
                bail!("encrypt = true needs password_file: a job runs unattended");
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let split = split
                .as_deref()
                .map(crate::image_cmds::parse_size)
                .transpose()?;
            let args = BackupArgs {
                part: *part,
                level: *level,
                split,
                threads: 0,
                strict: *strict,
                all_unpartitioned: false,
                key_file,
                decrypted: *decrypted,
                dry_run: false,
                json: false,
                encrypt: *encrypt,
                password_file,
            };
            let spec = crate::image_cmds::backup_spec(source, &path, &args)?;
            let status = crate::jobs::execute(spec, &ui)?;
            *last_image = Some(path);
            Ok(status)
        }
        Step::Verify {
            image,
            password_file,
        } => {
            let path = match image {
                Some(t) => image_path(t, None, base)?,
                None => last_image
                    .clone()
                    .context("verify without `image` needs a backup step before it")?,
            };
            unlock_step(&path, password_file.as_deref(), base)?;
            let spec = engine::job::JobSpec::Verify(engine::job::VerifySpec {
                image: path,
                threads: 0,
            });
            crate::jobs::execute(spec, &ui)
        }
        Step::Restore {
            image,
            target,
            part,
            grow_last,
            new_ids,
            verify,
            discard,
            password_file,
        } => {
            let path = image_path(image, None, base)?;
            unlock_step(&path, password_file.as_deref(), base)?;
            let args = RestoreArgs {
                part: *part,
                to_part: None,
                grow_last: *grow_last,
                new_ids: *new_ids,
                discard: *discard,
                common: write(*verify, false),
            };
            let spec = crate::image_cmds::restore_spec(&path, target, &args)?;
            crate::jobs::execute(spec, &ui)
        }
        Step::Clone {
            source,
            target,
            grow_last,
            new_ids,
            verify,
            strict,
        } => {
            let spec = crate::clone::clone_spec(
                source,
                target,
                *grow_last,
                *new_ids,
                &write(*verify, *strict),
            )?;
            crate::jobs::execute(spec, &ui)
        }
        Step::Receive {
            target,
            grow_last,
            new_ids,
            verify,
            interface,
            port,
            timeout,
            password_file,
        } => {
            let password_file = password_file
                .as_deref()
                .map(|f| beneath(base, f))
                .transpose()?;
            let args = crate::cast_cmds::ReceiveArgs {
                grow_last: *grow_last,
                new_ids: *new_ids,
                interface: interface.clone(),
                port: match port {
                    Some(p) => crate::cast_cmds::parse_port(&p.to_string())
                        .map_err(|e| anyhow::anyhow!(e))?,
                    None => crate::cast_cmds::DEFAULT_PORT,
                },
                timeout: timeout.unwrap_or(crate::cast_cmds::DEFAULT_TIMEOUT),
                stdin: false,
                common: write(*verify, false),
            };
            crate::cast_cmds::receive_job(target, &args, password_file.as_deref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_expand_dates_beneath_the_job_folder() {
        let dir = tempfile::tempdir().unwrap();
        let top = std::fs::canonicalize(dir.path()).unwrap();
        let p = image_path("img/{date}.lbi", None, dir.path()).unwrap();
        let s = p.to_string_lossy();
        assert!(s.starts_with(&format!("{}/img/20", top.display())), "{s}");
        assert!(s.ends_with(".lbi"));
    }

    #[test]
    fn image_paths_cannot_leave_the_job_folder() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let job = dir.path().join("job");
        std::fs::create_dir(&job).unwrap();
        std::fs::create_dir(job.join("images")).unwrap();
        std::os::unix::fs::symlink(outside.path(), job.join("out")).unwrap();
        std::os::unix::fs::symlink("images", job.join("inside")).unwrap();
        for bad in [
            "/abs/x.lbi",
            "../x.lbi",
            "images/../../x.lbi",
            "out/x.lbi",
            "out/new/x.lbi",
        ] {
            let e = image_path(bad, None, &job).unwrap_err().to_string();
            assert!(e.contains("stay inside it"), "{bad}: {e}");
        }
        let real = std::fs::canonicalize(&job).unwrap();
        assert_eq!(
            image_path("inside/x.lbi", None, &job).unwrap(),
            real.join("images/x.lbi")
        );
        assert_eq!(
            image_path("./new/x.lbi", None, &job).unwrap(),
            real.join("new/x.lbi")
        );
        // A mount point inside the job folder is another volume.
        let e = beneath(Path::new("/"), "proc/x.lbi")
            .unwrap_err()
            .to_string();
        assert!(e.contains("another file system"), "{e}");
    }
}
