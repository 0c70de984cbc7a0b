//! `lifeboat run JOB.toml`: unattended jobs for the technician's stick (see docs/job-files.md).
//!
//! The job file is the confirmation: its steps run without asking, but every safety check
//! (mounted, boot medium, source = target, too small) still applies. The report is what this
//! prints; Lifeboat's init writes it next to the job file.

use crate::clone::WriteArgs;
use crate::image_cmds::{BackupArgs, RestoreArgs};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    /// Stop at the first failed step (default) or go on with the next.
    #[serde(default = "yes")]
    stop_on_error: bool,
    #[serde(rename = "step", default)]
    steps: Vec<Step>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
enum Step {
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
    },
    Verify {
        /// Defaults to the image of the previous backup step.
        #[serde(default)]
        image: Option<String>,
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
}

fn level() -> i32 {
    3
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::Backup { .. } => "backup",
            Step::Verify { .. } => "verify",
            Step::Restore { .. } => "restore",
            Step::Clone { .. } => "clone",
        }
    }
}

fn now() -> String {
    image::rfc3339_utc(std::time::SystemTime::now())
}

/// `{model}`, `{serial}`, `{date}` (YYYY-MM-DD) and `{time}` (HHMMSS) in an image name; the
/// result is relative to the job file's folder unless absolute. Characters that file systems
/// refuse become `_`.
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
    let p = PathBuf::from(name);
    Ok(if p.is_absolute() { p } else { base.join(p) })
}

pub fn run(job: &Path) -> Result<u8> {
    let text = std::fs::read_to_string(job)
        .with_context(|| format!("reading the job file {}", job.display()))?;
    let file: JobFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid job file", job.display()))?;
    if file.steps.is_empty() {
        bail!("{} has no [[step]]", job.display());
    }
    let base = job.parent().map(Path::to_path_buf).unwrap_or_default();
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
            Ok(code) => {
                worst = worst.max(code);
                ok += 1;
                println!(
                    "-- step {}: {} --\n",
                    i + 1,
                    if code == 0 {
                        "OK"
                    } else {
                        "OK, with skipped unreadable sectors"
                    }
                );
            }
            Err(e) => {
                failed += 1;
                println!("error: {}", crate::error_chain(&e));
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

fn run_step(step: &Step, base: &Path, last_image: &mut Option<PathBuf>) -> Result<u8> {
    let write = |verify: bool, strict: bool| WriteArgs {
        verify,
        strict,
        dry_run: false,
        yes: true,
        json: false,
    };
    match step {
        Step::Backup {
            source,
            image,
            part,
            level,
            split,
            strict,
        } => {
            let path = image_path(image, Some(source), base)?;
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
                dry_run: false,
                json: false,
            };
            let code = crate::image_cmds::backup(source, &path, &args)?;
            *last_image = Some(path);
            Ok(code)
        }
        Step::Verify { image } => {
            let path = match image {
                Some(t) => image_path(t, None, base)?,
                None => last_image
                    .clone()
                    .context("verify without `image` needs a backup step before it")?,
            };
            match crate::image_cmds::verify(&path, false, 0)? {
                0 => Ok(0),
                _ => bail!("{} is damaged", path.display()),
            }
        }
        Step::Restore {
            image,
            target,
            part,
            grow_last,
            new_ids,
            verify,
            discard,
        } => {
            let path = image_path(image, None, base)?;
            let args = RestoreArgs {
                part: *part,
                to_part: None,
                grow_last: *grow_last,
                new_ids: *new_ids,
                discard: *discard,
                common: write(*verify, false),
            };
            crate::image_cmds::restore(&path, target, &args)
        }
        Step::Clone {
            source,
            target,
            grow_last,
            new_ids,
            verify,
            strict,
        } => crate::clone::clone(
            source,
            target,
            *grow_last,
            *new_ids,
            &write(*verify, *strict),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_files_parse_and_unknown_keys_are_refused() {
        let f: JobFile = toml::from_str(
            "[[step]]\naction = \"backup\"\nsource = \"serial:X\"\nimage = \"{serial}.lbi\"\nsplit = \"4G\"\n\n[[step]]\naction = \"verify\"\n",
        )
        .unwrap();
        assert!(f.stop_on_error);
        assert_eq!(f.steps.len(), 2);
        assert!(matches!(&f.steps[1], Step::Verify { image: None }));
        assert!(toml::from_str::<JobFile>(
            "[[step]]\naction = \"backup\"\nsource = \"a\"\nimage = \"b\"\nlevle = 3\n"
        )
        .is_err());
        assert!(toml::from_str::<JobFile>("[[step]]\naction = \"format\"\n").is_err());
    }

    #[test]
    fn image_names_expand_dates_relative_to_the_job_folder() {
        let p = image_path("img/{date}.lbi", None, Path::new("/mnt/job")).unwrap();
        let s = p.to_string_lossy();
        assert!(s.starts_with("/mnt/job/img/20"), "{s}");
        assert!(s.ends_with(".lbi"));
        assert_eq!(
            image_path("/abs/x.lbi", None, Path::new("/mnt")).unwrap(),
            PathBuf::from("/abs/x.lbi")
        );
    }
}
