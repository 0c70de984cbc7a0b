//! `lifeboat backup`, `restore`, `verify` and the image part of `info`.

use crate::clone::WriteArgs;
use crate::jobs;
use anyhow::{bail, Context, Result};
use disk::{BlockIo, FileDisk};
use engine::backup::BackupOptions;
use engine::job::{BackupSpec, JobSpec, RestoreSpec, VerifySpec};
use engine::restore::RestoreOptions;
use image::ImageReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `4G`, `700M`, `4GiB`, `650MB`, `1048576` → bytes (binary units).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &t[digits.len()..];
    let n: f64 = digits
        .parse()
        .with_context(|| format!("`{text}` is not a size (like 4G or 700M)"))?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => bail!("`{text}`: unknown unit `{unit}` (use K, M, G or T)"),
    };
    let v = n * mult as f64;
    if !(v >= 1.0 && v < u64::MAX as f64) {
        bail!("`{text}` is not a usable size");
    }
    Ok(v as u64)
}

/// True when `path` starts with the `.lbi` volume magic (so `info` shows the manifest).
pub fn looks_like_image(path: &Path) -> bool {
    let Ok(io) = FileDisk::open_read(path) else {
        return false;
    };
    let mut magic = [0u8; 8];
    io.len() >= 8 && io.read_at(&mut magic, 0).is_ok() && magic == image::format::VOLUME_MAGIC
}

pub fn open_image(path: &Path) -> Result<Arc<ImageReader>> {
    let r = engine::keys::open_image(path)
        .with_context(|| format!("opening the image {}", path.display()))?;
    Ok(Arc::new(r))
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Back up only this partition of a disk.
    #[arg(long)]
    pub part: Option<u32>,
    /// zstd compression level, 1 (fastest) to 19 (smallest).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// Split the image into volumes of at most this size (e.g. 4G for FAT32 drives).
    #[arg(long, value_parser = parse_size)]
    pub split: Option<u64>,
    /// Compression threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Stop at the first unreadable source sector instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Image large unpartitioned areas whole (by default only their first and last MiB).
    #[arg(long)]
    pub all_unpartitioned: bool,
    /// The passphrase or BitLocker recovery password of the source's encrypted volumes, in a
    /// file (its exact bytes, like `cryptsetup --key-file`): each volume is unlocked read-only
    /// and only the ciphertext of its used blocks and its headers are stored.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// With --key-file: store the plaintext file system of each unlocked volume instead of its
    /// ciphertext. The image can be browsed (ls, extract, mount) without the key, and a restore
    /// writes the volume back UNENCRYPTED.
    #[arg(long, requires = "key_file")]
    pub decrypted: bool,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Progress and result as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Encrypt the image (AES-256-GCM; the password is asked twice, or read from
    /// --password-file).
    #[arg(long)]
    pub encrypt: bool,
    /// Where the password comes from (the global --password-file; job files' `password_file`).
    #[arg(skip)]
    pub password_file: Option<PathBuf>,
}

pub fn backup(source: &str, image_path: &Path, args: &BackupArgs) -> Result<u8> {
    let spec = backup_spec(source, image_path, args)?;
    let ui = jobs::Ui {
        yes: false,
        json: args.json,
        dry_run: args.dry_run,
    };
    jobs::execute(spec, &ui).map(crate::exit::of)
}

/// The backup job `lifeboat backup` and a job file's backup step describe.
pub fn backup_spec(source: &str, image_path: &Path, args: &BackupArgs) -> Result<JobSpec> {
    Ok(JobSpec::Backup(BackupSpec {
        source: crate::resolve_target(source)?,
        image: image_path.to_path_buf(),
        part: args.part,
        options: BackupOptions {
            level: args.level,
            split: args.split,
            chunk_size: image::DEFAULT_CHUNK_SIZE,
            read: engine::rescue::ReadPolicy {
                strict: args.strict,
            },
            threads: args.threads,
        },
        all_unpartitioned: args.all_unpartitioned,
        identity: None,
        key: args
            .key_file
            .as_deref()
            .map(engine::unlock::Key::from_file)
            .transpose()?,
        decrypted: args.decrypted,
        encryption: match (args.encrypt, &args.password_file) {
            (false, None) => None,
            (false, Some(_)) => {
                bail!(
                    "a password file was given but encryption was not asked for (--encrypt, or \
                     encrypt = true in a job file): the image would not be encrypted"
                )
            }
            (true, file) => Some(engine::backup::Encryption::new(
                crate::password::new_password(file.as_deref())?,
            )),
        },
    }))
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Restore only this partition of the image (into TARGET, a partition).
    #[arg(long)]
    pub part: Option<u32>,
    /// TARGET is a disk image file: restore into its partition N.
    #[arg(long)]
    pub to_part: Option<u32>,
    /// Grow the last partition (and its ext4/NTFS file system) to the end of a larger disk.
    #[arg(long)]
    pub grow_last: bool,
    /// New disk and partition GUIDs / MBR signature.
    #[arg(long)]
    pub new_ids: bool,
    /// TRIM the blocks the file systems do not use.
    #[arg(long)]
    pub discard: bool,
    #[command(flatten)]
    pub common: WriteArgs,
}

pub fn restore(image_path: &Path, target: &str, args: &RestoreArgs) -> Result<u8> {
    let spec = restore_spec(image_path, target, args)?;
    jobs::execute(spec, &args.common.ui()).map(crate::exit::of)
}

/// The restore job `lifeboat restore` and a job file's restore step describe.
pub fn restore_spec(image_path: &Path, target: &str, args: &RestoreArgs) -> Result<JobSpec> {
    Ok(JobSpec::Restore(RestoreSpec {
        image: image_path.to_path_buf(),
        target: crate::resolve_target(target)?,
        whole_disk: None,
        part: args.part,
        into: args.to_part,
        options: RestoreOptions {
            grow_last: args.grow_last,
            new_ids: args.new_ids,
            verify: args.common.verify,
            discard: args.discard,
            threads: 0,
        },
    }))
}

pub fn verify(image_path: &Path, json: bool, threads: usize) -> Result<u8> {
    let spec = JobSpec::Verify(VerifySpec {
        image: image_path.to_path_buf(),
        threads,
    });
    let ui = jobs::Ui {
        yes: false,
        json,
        dry_run: false,
    };
    jobs::execute(spec, &ui).map(crate::exit::of)
}

/// `lifeboat passwd IMAGE`: replaces the password of an encrypted image (or, with `--add`, adds a
/// second one). Only the key slots of the first volume are rewritten.
pub fn passwd(
    image_path: &Path,
    add: bool,
    current_file: Option<&Path>,
    new_file: Option<&Path>,
) -> Result<u8> {
    if !image::is_encrypted(image_path)
        .with_context(|| format!("opening the image {}", image_path.display()))?
    {
        bail!(
            "{}: the image is not encrypted; it has no password to change",
            image_path.display()
        );
    }
    crate::password::unlock(image_path, current_file)?;
    let current = engine::keys::password_for(image_path)
        .with_context(|| format!("{}: no password given", image_path.display()))?;
    let new = crate::password::new_password(new_file)?;
    let change = if add {
        image::SlotChange::Add
    } else {
        image::SlotChange::Replace
    };
    let done = image::change_password(
        image_path,
        &current,
        &new,
        change,
        image::KdfParams::default(),
    )?;
    engine::keys::forget(image_path);
    crate::emit(&format!(
        "{}: password {} (key slot {}); {} of {} key slots in use\n",
        image_path.display(),
        if add { "added" } else { "changed" },
        done.new_slot,
        done.slots_used,
        image::KEY_SLOTS
    ))?;
    Ok(0)
}
