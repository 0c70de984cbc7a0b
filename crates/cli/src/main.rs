//! `lifeboat`: the TUI by default, subcommands for scripts.
//!
//! This crate parses arguments, installs the logger, renders the engine's reports as human tables
//! or JSON and maps errors to exit codes. It must not contain disk logic: that is the engine's.

mod browse_cmds;
mod cast_cmds;
mod clone;
mod exit;
mod image_cmds;
mod info;
mod job_file;
mod jobs;
mod list;
mod logger;
mod mount_cmds;
mod password;
mod stores;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Lifeboat: back up, restore, clone and verify disks.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, about, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Encrypted images: read the password from the first line of FILE instead of asking for it
    /// (passwords are never given as arguments).
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,

    /// Read the password of a network location (smb://, sftp://) from the first line of FILE
    /// (else it is asked for without echo). Not the image's own password: that is --password-file.
    #[arg(long, global = true, value_name = "FILE")]
    store_password_file: Option<PathBuf>,

    /// Accept this server key: the SSH host key (SHA256:… fingerprint) for sftp:// locations, or
    /// the certificate's SHA-256 fingerprint (openssl x509 -noout -fingerprint -sha256) for https://.
    #[arg(long, global = true, value_name = "FINGERPRINT")]
    host_key: Option<String>,

    /// https:// locations: also trust the CA certificates of this PEM file (a private CA, or a
    /// NAS's self-signed certificate). Mozilla's root certificates are built in.
    #[arg(long, global = true, value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// Log in to sftp:// locations with this SSH private key.
    #[arg(long, global = true, value_name = "FILE")]
    identity_file: Option<PathBuf>,

    /// Network locations: how long reads that fail because the server went away are retried
    /// before a restore stops (a write that gets no answer stops a backup after 8 s).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 45,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    store_retry: u64,

    #[command(subcommand)]
    command: Option<Command>,
}

/// `--yes` on a command that overwrites nothing: accepted and ignored, so a script can pass it to
/// every command.
#[derive(Debug, clap::Args)]
struct NothingToConfirm {
    /// Accepted for scripts that pass it everywhere; this command overwrites nothing.
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List disks and their partitions, file systems, labels, sizes and mount state.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Also list loop, ram and zram devices.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Show what a disk, partition or disk image file holds.
    Info {
        /// A device (/dev/sda, sda, serial:…, model:…) or a file.
        target: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Back up a disk (or one partition) to a compressed image file, skipping free space.
    Backup {
        /// The disk or partition to read (read-only).
        source: String,
        /// The image file to create (never overwritten), or an smb://, nfs:// or sftp:// URL.
        image: String,
        #[command(flatten)]
        args: image_cmds::BackupArgs,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Restore an image onto a disk, or one partition of it into a partition.
    Restore {
        /// The image (its first volume), or an smb://, nfs://, sftp://, http:// or https:// URL.
        image: String,
        /// The disk or partition to overwrite.
        target: String,
        #[command(flatten)]
        args: image_cmds::RestoreArgs,
    },
    /// Check every checksum of an image, in parallel.
    Verify {
        /// The image (its first volume), or an smb://, nfs://, sftp://, http:// or https:// URL.
        image: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Threads (default: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// List a folder of a file system inside an image, a disk image, a disk or a partition.
    Ls {
        /// The image (its first volume; also an smb://, nfs://, sftp:// or http:// URL), disk,
        /// partition or file.
        image: String,
        /// The folder or file to list.
        #[arg(default_value = "/")]
        path: String,
        /// Partition number, when the image or disk holds several file systems.
        #[arg(long)]
        part: Option<u32>,
        /// Logical volume (`VG/LV` or `LV`) of the LVM2 physical volume there, when it holds
        /// several with a file system (without --part, the partition holding the PV).
        #[arg(long)]
        lv: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Mount the file system inside an image (or a disk image, disk or partition) read-only on
    /// a folder, reading only the chunks that are touched; undo with `lifeboat umount DIR`.
    Mount {
        /// The image (its first volume), disk image, disk or partition.
        image: String,
        /// The folder to mount on (must exist); with --disk, the file to serve the disk as.
        dir: PathBuf,
        /// Partition number, when the image or disk holds several file systems.
        #[arg(long, conflicts_with = "disk")]
        part: Option<u32>,
        /// Logical volume (`VG/LV` or `LV`) of the LVM2 physical volume there, when it holds
        /// several with a file system (without --part, the partition holding the PV).
        #[arg(long, conflicts_with = "disk")]
        lv: Option<String>,
        /// Serve the whole disk read-only as the file DIR (created when missing) instead of
        /// mounting a file system: `fdisk -l DIR`, `sgdisk -p DIR`, `losetup -P`.
        #[arg(long)]
        disk: bool,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Unmount what `lifeboat mount` mounted on DIR, and stop serving the image.
    Umount {
        /// The folder given to `lifeboat mount`.
        dir: PathBuf,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Copy files and folders out of an image, a disk image, a disk or a partition.
    Extract {
        /// The image (its first volume; also an smb://, nfs://, sftp:// or http:// URL), disk,
        /// partition or file.
        image: String,
        /// Files or folders to copy (folders recursively).
        #[arg(required = true)]
        paths: Vec<String>,
        /// The folder to copy into.
        #[arg(long)]
        to: PathBuf,
        /// Partition number, when the image or disk holds several file systems.
        #[arg(long)]
        part: Option<u32>,
        /// Logical volume (`VG/LV` or `LV`) of the LVM2 physical volume there, when it holds
        /// several with a file system (without --part, the partition holding the PV).
        #[arg(long)]
        lv: Option<String>,
        /// Replace existing files.
        #[arg(long)]
        overwrite: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Change the password of an encrypted image, or add a second one (a recovery password):
    /// only the image's key slots are rewritten.
    Passwd {
        /// The image (its first volume).
        image: String,
        /// Keep the current password and add the new one next to it.
        #[arg(long)]
        add: bool,
        /// Read the new password from the first line of FILE (the current one comes from
        /// --password-file or the prompt).
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Send an image to several PCs at once by multicast (udp-sender): waits for --clients
    /// receivers (`lifeboat receive`), streams the image once, reports each receiver.
    Serve {
        /// The image (its first volume).
        image: String,
        #[command(flatten)]
        args: cast_cmds::ServeArgs,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Receive an image a `lifeboat serve` sends (udp-receiver) and restore it onto a disk as it
    /// arrives.
    Receive {
        /// The disk to overwrite.
        target: String,
        #[command(flatten)]
        args: cast_cmds::ReceiveArgs,
    },
    /// Run the steps of a job file unattended (the job file is the confirmation).
    Run {
        /// The job file (TOML, see docs/job-files.md), or its http://, smb:// or nfs:// URL.
        job: String,
        #[command(flatten)]
        nothing_to_confirm: NothingToConfirm,
    },
    /// Clone a whole disk (table, boot loader, partitions) onto another disk of at least its size.
    Clone {
        /// The disk to copy (read-only).
        source: String,
        /// The disk to overwrite.
        target: String,
        /// Grow the last partition (and its ext4/NTFS file system) to the end of the target.
        #[arg(long)]
        grow_last: bool,
        /// New disk and partition GUIDs / MBR signature, for disks that stay attached together.
        #[arg(long)]
        new_ids: bool,
        #[command(flatten)]
        args: clone::WriteArgs,
    },
    /// Copy a partition (or bare file system) into another partition of at least its size.
    Copy {
        /// The partition to copy (read-only): /dev/sda1, a file, or a disk image with --part.
        source: String,
        /// The partition to overwrite: /dev/sdb2, a file, or a disk image with --to-part.
        target: String,
        /// Partition number of SOURCE when it is a disk image.
        #[arg(long)]
        part: Option<u32>,
        /// Partition number of TARGET when it is a disk image.
        #[arg(long, conflicts_with = "new_partition")]
        to_part: Option<u32>,
        /// TARGET is a disk: put the copy in its first free space large enough, as a new
        /// partition (the table entry is written after the data).
        #[arg(long)]
        new_partition: bool,
        #[command(flatten)]
        args: clone::WriteArgs,
    },
}

/// The image (or, for `info`, the target) a command reads: network locations are opened and
/// encrypted images unlocked before the command runs.
fn image_read(command: &mut Option<Command>) -> Option<&mut String> {
    match command {
        Some(Command::Info { target, .. }) => Some(target),
        Some(Command::Restore { image, .. })
        | Some(Command::Verify { image, .. })
        | Some(Command::Ls { image, .. })
        | Some(Command::Extract { image, .. })
        | Some(Command::Mount { image, .. })
        | Some(Command::Serve { image, .. }) => Some(image),
        _ => None,
    }
}

/// mimalloc keeps freed memory for the next allocation: musl's allocator unmaps every large
/// buffer when it is freed, so each chunk of a job (read, compressed, written: several MiB
/// each) came back as fresh, zero-filled pages, a page fault per 4 KiB.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The text UI installs its own logger (a file and the Log screen): nothing may print.
    if cli.command.is_some() {
        logger::init(cli.verbose);
    }
    stores::configure(stores::Settings {
        password_file: cli.store_password_file.clone(),
        host_key: cli.host_key.clone(),
        identity_file: cli.identity_file.clone(),
        ca_file: cli.ca_file.clone(),
    });
    disk::netfs::set_policy(disk::netfs::Policy {
        retry_for: std::time::Duration::from_secs(cli.store_retry),
        ..disk::netfs::Policy::default()
    });
    use store::Purpose::{Read, Write};
    let mut cli = cli;
    // A network location in place of an image to read is opened here and replaced by the local
    // path of its file; the store stays open until the command ends.
    let is_mount = matches!(cli.command, Some(Command::Mount { .. }));
    if let Some(image) = image_read(&mut cli.command) {
        let local = if is_mount && store::is_url(image) {
            Err(anyhow::anyhow!(
                "{image}: lifeboat mount serves local images only; ls and extract read network locations"
            ))
        } else {
            stores::local(image, Read)
        };
        match local {
            Ok(p) => *image = p.display().to_string(),
            Err(e) => {
                eprintln!(
                    "lifeboat: error: {}",
                    disk::text::printable(&error_chain(&e))
                );
                return ExitCode::from(exit::FAILURE);
            }
        }
    }
    // Encrypted images: the password is asked (or read from --password-file) once, here, for
    // every command that reads an image; the engine finds it in `engine::keys`.
    let pw_file = cli.password_file.clone();
    let pw_file = pw_file.as_deref();
    if let Some(image) = image_read(&mut cli.command) {
        if let Err(e) = password::unlock(std::path::Path::new(image.as_str()), pw_file) {
            eprintln!(
                "lifeboat: error: {}",
                disk::text::printable(&error_chain(&e))
            );
            return ExitCode::from(exit::FAILURE);
        }
    }
    let result = match cli.command {
        Some(Command::List { json, all, .. }) => list::run(json, all).map(|()| 0),
        Some(Command::Info { target, json, .. }) => {
            if image_cmds::looks_like_image(std::path::Path::new(&target)) {
                info::image(std::path::Path::new(&target), json).map(|()| 0)
            } else {
                info::run(&target, json).map(|()| 0)
            }
        }
        Some(Command::Backup {
            source,
            image,
            mut args,
            ..
        }) => {
            args.password_file = cli.password_file.clone();
            stores::local(&image, Write).and_then(|p| image_cmds::backup(&source, &p, &args))
        }
        Some(Command::Passwd {
            image,
            add,
            new_password_file,
            ..
        }) => image_cmds::passwd(
            std::path::Path::new(&image),
            add,
            pw_file,
            new_password_file.as_deref(),
        ),
        Some(Command::Restore {
            image,
            target,
            args,
        }) => image_cmds::restore(std::path::Path::new(&image), &target, &args),
        Some(Command::Verify {
            image,
            json,
            threads,
            ..
        }) => image_cmds::verify(std::path::Path::new(&image), json, threads),
        Some(Command::Clone {
            source,
            target,
            grow_last,
            new_ids,
            args,
        }) => clone::clone(&source, &target, grow_last, new_ids, &args),
        Some(Command::Copy {
            source,
            target,
            part,
            to_part,
            new_partition,
            args,
        }) => clone::copy(&source, &target, part, to_part, new_partition, &args),
        Some(Command::Ls {
            image,
            path,
            part,
            lv,
            json,
            ..
        }) => browse_cmds::ls(
            std::path::Path::new(&image),
            &path,
            part,
            lv.as_deref(),
            json,
        ),
        Some(Command::Extract {
            image,
            paths,
            to,
            part,
            lv,
            overwrite,
            json,
            ..
        }) => browse_cmds::extract(
            std::path::Path::new(&image),
            &paths,
            &to,
            part,
            lv.as_deref(),
            overwrite,
            json,
        ),
        Some(Command::Mount {
            image,
            dir,
            disk: true,
            ..
        }) => mount_cmds::mount_disk(std::path::Path::new(&image), &dir),
        Some(Command::Mount {
            image,
            dir,
            part,
            lv,
            ..
        }) => mount_cmds::mount(std::path::Path::new(&image), part, lv.as_deref(), &dir),
        Some(Command::Umount { dir, .. }) => mount_cmds::umount(&dir),
        Some(Command::Run { job, .. }) if store::is_url(&job) => job_file::run_url(&job),
        Some(Command::Serve { image, args, .. }) => {
            cast_cmds::serve(std::path::Path::new(&image), &args)
        }
        Some(Command::Receive { target, args }) => {
            cast_cmds::receive(&target, &args, cli.password_file.as_deref())
        }
        Some(Command::Run { job, .. }) => job_file::run(std::path::Path::new(&job)),
        None => tui::run(),
    };
    // The error first (naming network locations by their URLs): unmounting a share whose
    // server is gone may take a while.
    let code = match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors quote names from disks and images: escaped, so they cannot drive the terminal.
            eprintln!(
                "lifeboat: error: {}",
                disk::text::printable(&stores::name_urls(&error_chain(&e)))
            );
            ExitCode::from(exit::FAILURE)
        }
    };
    stores::close_all();
    log::debug!("stores closed; exiting");
    code
}

/// Resolves a TARGET argument: an existing path as it is, else a device spec looked up among the
/// discovered disks (`sda`, `serial:…`, `model:…`).
pub(crate) fn resolve_target(spec: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(spec);
    if path.exists() {
        return Ok(path);
    }
    let devices = disk::discover(&disk::SysRoot::default(), &disk::DiscoverOptions::default())?;
    let found = disk::find(&devices, spec)?.path.clone();
    log::debug!("{spec} is {}", found.display());
    Ok(found)
}

/// The error and its causes, `outer: inner: …`, leaving out a cause whose text the message
/// already carries (library errors often quote their source).
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

/// Writes `text` to stdout, the files of open network stores named by their URLs (plans,
/// reports and JSON never show `/run/lifeboat/stores/…`). A closed pipe (`lifeboat list |
/// head`) is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let text = stores::name_urls(text);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_argument_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_accepts_yes_so_scripts_can_pass_it_uniformly() {
        let lines: &[&[&str]] = &[
            &["list", "--yes"],
            &["info", "/dev/sda", "--yes"],
            &["backup", "/dev/sda", "x.lbi", "--yes"],
            &["restore", "x.lbi", "/dev/sdb", "--yes"],
            &["verify", "x.lbi", "--yes"],
            &["ls", "x.lbi", "/", "--yes"],
            &["extract", "x.lbi", "/a", "--to", "out", "--yes"],
            &["run", "job.toml", "--yes"],
            &["clone", "/dev/sda", "/dev/sdb", "--yes"],
            &["copy", "/dev/sda1", "/dev/sdb1", "--yes"],
        ];
        for line in lines {
            let argv = std::iter::once("lifeboat").chain(line.iter().copied());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("lifeboat {}: {e}", line.join(" "));
            }
        }
    }

    #[test]
    fn every_subcommand_with_a_result_to_report_accepts_json() {
        for line in [
            "list --json",
            "info /dev/sda --json",
            "backup /dev/sda x.lbi --json",
            "restore x.lbi /dev/sdb --json",
            "verify x.lbi --json",
            "ls x.lbi --json",
            "extract x.lbi /a --to out --json",
            "clone /dev/sda /dev/sdb --json",
            "copy /dev/sda1 /dev/sdb1 --json",
        ] {
            let argv = std::iter::once("lifeboat").chain(line.split(' '));
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("lifeboat {line}: {e}");
            }
        }
    }
}
