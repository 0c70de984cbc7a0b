//! The work the runtime does on worker threads for `update`'s effects: discovery, image listings
//! and verification, and the jobs. A job is the engine's: the user's choices become an
//! `engine::job::JobSpec`, `engine::job::plan` checks and plans it, and `engine::job::run` runs
//! it (with the consent only [`Confirmed`] makes) and returns the `Outcome` the screens show.
//! These functions block; they never touch the terminal.

use crate::confirm::Confirmed;
use crate::model::{
    BackupJob, BackupRequest, BackupSettings, BrowseEntry, DiskEntry, ImagePart, ImageSummary,
    PlanRequest, PlannedJob,
};
use disk::{DiscoverOptions, SysRoot};
use engine::backup::{BackupOptions, SourceIdentity};
use engine::job::{BackupSpec, Disks, JobSpec, Outcome};
use engine::{Cancel, JobError, ProgressSink};
use std::path::Path;

/// Makes `policy` the one of the network I/O of the job about to start (only one job runs at a
/// time): how long its reads wait for a store's server that vanished, as the location's form
/// said ([`crate::widgets::network::read_policy`]).
pub fn use_policy(policy: disk::netfs::Policy) {
    if policy != disk::netfs::policy() {
        log::info!(
            "network stores: reads wait up to {} s for a vanished server",
            policy.retry_for.as_secs()
        );
    }
    disk::netfs::set_policy(policy);
}

/// Discovers the disks and inspects each (a disk that cannot be read is listed with the error).
pub fn scan(root: &SysRoot, include_virtual: bool) -> Result<Vec<DiskEntry>, String> {
    let opts = DiscoverOptions {
        include_virtual,
        open_devices: true,
    };
    let devices = disk::discover(root, &opts).map_err(|e| e.to_string())?;
    Ok(devices
        .into_iter()
        .map(|device| {
            let report = if device.size == 0 {
                Err("no medium".to_string())
            } else {
                engine::inspect(&device.path).map_err(|e| {
                    log::warn!("inspecting {}: {e}", device.path.display());
                    e.to_string()
                })
            };
            DiskEntry { device, report }
        })
        .collect())
}

/// Asks the engine to check and plan the request (every safety rule: not the source, not
/// mounted, not the drive holding the image, …). Reads only.
pub fn plan(root: &SysRoot, req: &PlanRequest) -> Result<PlannedJob, JobError> {
    let disks = Disks::discover(root)?;
    let plan = engine::job::plan(req.spec(), &disks)?;
    log::info!("planned: {}", plan.title);
    Ok(PlannedJob {
        action: req.action,
        source: req.source.clone(),
        target: req.target.clone(),
        options: req.options,
        plan,
    })
}

/// Runs a confirmed plan through the engine, which opens the target with the user's consent,
/// writes, re-reads the partition table and grows the last file system when planned.
pub fn execute(job: &Confirmed, sink: &ProgressSink, cancel: &Cancel) -> Outcome {
    let plan = &job.plan().plan;
    let consent = job.consent();
    log::info!("{} ({})", plan.title, job.plan().identity());
    let outcome = engine::job::run(plan, consent.as_ref(), Some(sink), cancel);
    log_outcome(&plan.title, &outcome);
    outcome
}

fn log_outcome(title: &str, outcome: &Outcome) {
    let text = outcome.report();
    if outcome.status.is_complete() {
        log::info!("{title}: {}", text.trim_end().replace('\n', "; "));
    } else {
        log::error!("{title}: {}", text.trim_end().replace('\n', "; "));
    }
}

/// Checks `disk` as the target of a receive (issue 19): every refusal of a restore, a whole disk.
/// Reads only.
pub fn plan_receive(
    root: &SysRoot,
    disk: &Path,
    options: engine::restore::RestoreOptions,
) -> Result<engine::job::ReceiveTarget, String> {
    Disks::discover(root)
        .and_then(|disks| engine::job::plan_receive_target(disk, options, &disks))
        .map_err(|e| {
            log::warn!("receive onto {} refused: {e}", disk.display());
            e.to_string()
        })
}

/// Waits for a sender (udp-receiver with `opts`; the screen uses udpcast's default port and
/// interface) and receives onto the confirmed disk: the restore is planned from the stream
/// (`on_plan`) and runs without another question; the result is reported to the sender.
pub fn receive(
    job: &crate::confirm::ConfirmedReceive,
    opts: engine::cast::udp::ReceiverOptions,
    on_plan: &dyn Fn(&engine::job::Plan),
    sink: &ProgressSink,
    cancel: &Cancel,
) -> engine::job::Received {
    let consent = job.consent();
    let got = engine::job::receive(
        job.target(),
        Some(&consent),
        engine::job::StreamFrom::Udp(opts),
        engine::cast::udp::UDP_RECEIVER,
        on_plan,
        Some(sink),
        cancel,
    );
    if let Some(o) = &got.outcome {
        log_outcome("receive", o);
    }
    log::info!("receive report: {:?}", got.delivery);
    got
}

/// Sends `image` to several PCs (`engine::cast::udp::serve`) and appends the session's report to
/// `IMAGE.cast-report.txt` beside it, naming the image `name` (its URL when it is on a network
/// store, as the screens show it). `Err` when the image cannot be opened or udp-sender cannot
/// run.
pub fn send(
    image: &Path,
    name: &str,
    opts: &engine::cast::udp::SenderOptions,
    events: std::sync::Arc<dyn Fn(engine::cast::udp::SendEvent) + Send + Sync>,
    cancel: &Cancel,
) -> Result<crate::screens::send::Sent, String> {
    use engine::cast::udp;
    let img = engine::keys::open_image(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let session = udp::serve(&img, opts, events, cancel).map_err(|e| e.to_string())?;
    let path = udp::default_report_file(image);
    let saved = udp::save_report(&path, Path::new(name), opts, &session)
        .map(|()| path.clone())
        .map_err(|e| format!("{}: {e}", path.display()));
    log::info!(
        "send of {}: {}",
        image.display(),
        session.text().trim_end().replace('\n', "; ")
    );
    Ok(crate::screens::send::Sent { session, saved })
}

/// Reads a folder for the image browser: its sub-folders and `.lbi` files (the first volume of
/// split images), each image opened to show its summary or why it cannot be used. `Up` comes
/// first unless `dir` is `top`. Hidden entries are left out; folders first, then by name.
/// The top folder not existing yet means no drive was mounted: an empty listing (the picker then
/// says how to mount one), not an error.
pub fn list_images(top: &Path, dir: &Path) -> Result<Vec<BrowseEntry>, String> {
    let rd = match std::fs::read_dir(dir) {
        Err(e) if dir == top && e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.map_err(|e| format!("reading {}: {e}", dir.display()))?,
    };
    let mut dirs = Vec::new();
    let mut images = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symbolic links, like a shell would.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            dirs.push(path);
        } else if meta.is_file() && name.to_ascii_lowercase().ends_with(".lbi") {
            images.push(path);
        }
    }
    dirs.sort();
    images.sort();
    let mut out = Vec::new();
    if dir != top {
        out.push(BrowseEntry::Up);
    }
    out.extend(dirs.into_iter().map(BrowseEntry::Dir));
    out.extend(images.into_iter().map(|path| {
        let summary = summarize(&path);
        BrowseEntry::Image { path, summary }
    }));
    Ok(out)
}

/// Checks `password` on the encrypted image at `path` (about a second of key derivation) and,
/// when it opens the image, remembers it for every later read (`engine::keys`).
pub fn unlock(path: &Path, password: image::Passphrase) -> Result<(), String> {
    match image::ImageReader::open_with(path, Some(&password)) {
        Ok(_) => {
            engine::keys::remember(path, password);
            Ok(())
        }
        Err(image::Error::WrongPassword { .. }) => {
            Err("Wrong password: no key slot of this image opens with it. Type it again.".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Opens an image and summarizes its manifest; the error says why it cannot be used.
pub fn summarize(path: &Path) -> Result<ImageSummary, String> {
    let reader = engine::keys::open_image(path).map_err(|e| match e {
        image::Error::PasswordRequired { .. } => {
            crate::widgets::image_picker::ENCRYPTED.to_string()
        }
        e => e.to_string(),
    })?;
    let reader = std::sync::Arc::new(reader);
    let m = reader.manifest();
    let or_unknown = |s: &str| {
        if s.trim().is_empty() {
            "unknown".to_string()
        } else {
            s.trim().to_string()
        }
    };
    let parts: Vec<ImagePart> = m
        .partitions
        .iter()
        .map(|p| ImagePart {
            number: p.number,
            size: p.size,
            fs: p.fs.clone(),
            label: p.label.clone(),
            restorable: p.stream.is_some()
                && !matches!(
                    p.mode,
                    image::PartitionMode::Skipped | image::PartitionMode::HeaderOnly
                ),
        })
        .collect();
    let partitions = parts
        .iter()
        .map(|p| {
            let mut line = p.line();
            if !p.restorable {
                line.push_str(" (not imaged)");
            }
            line
        })
        .collect();
    let has_table = !m.table.kind.is_empty() && m.table.kind != "none";
    // A target disk needs room up to the end of the last partition, and for GPT the backup
    // table after it (33 sectors of 512 bytes, or 6 of 4096).
    let ss = u64::from(m.source.logical_sector_size.max(512));
    let tail = if m.table.kind == "gpt" {
        (16384 / ss + 1) * ss
    } else {
        0
    };
    let needs = if has_table {
        let whole = m
            .partitions
            .iter()
            .map(|p| p.start.saturating_add(p.size))
            .max()
            .unwrap_or(ss)
            .saturating_add(tail);
        // File systems the engine can shrink lower that (restores onto smaller disks).
        engine::restore::image_layout(&reader)
            .ok()
            .and_then(|l| {
                engine::shrink::min_target_len(&l, &engine::shrink::facts_from_manifest(m))
            })
            .map_or(whole, |n| n.min(whole))
    } else {
        m.source.size
    };
    Ok(ImageSummary {
        model: or_unknown(&m.source.model),
        serial: or_unknown(&m.source.serial),
        created: m.created.clone(),
        source_size: m.source.size,
        table: has_table.then(|| m.table.kind.clone()),
        partitions,
        needs,
        whole_disk: has_table && !m.table.areas.is_empty(),
        parts,
        stored: reader
            .index()
            .iter()
            .map(|e| u64::from(e.uncompressed_len))
            .sum(),
        file_size: reader
            .volume_names()
            .iter()
            .filter_map(|v| std::fs::metadata(v).ok())
            .map(|m| m.len())
            .fold(0u64, u64::saturating_add),
        volumes: reader.volume_names().len(),
        bad_ranges: m.bad_sectors.len(),
    })
}

/// Verifies every chunk of an image on `threads` threads, sending progress about four times a
/// second (the engine's verifier). Reads only. `Err` when the image cannot be opened or the user
/// cancelled.
pub fn verify_image(
    path: &Path,
    threads: usize,
    sink: &ProgressSink,
    cancel: &Cancel,
) -> Result<image::VerifyReport, String> {
    engine::verify::verify_image(path, threads.max(1), Some(sink), cancel)
        .map_err(|e| e.to_string())
}

/// Today's date (UTC) as `YYYY-MM-DD`, for image names.
pub fn today() -> String {
    let now = image::rfc3339_utc(std::time::SystemTime::now());
    now.get(..10).unwrap_or(&now).to_string()
}

/// The engine's backup job for a request and the chosen settings.
fn backup_spec(req: &BackupRequest, settings: &BackupSettings) -> JobSpec {
    let split = settings.split();
    JobSpec::Backup(BackupSpec {
        source: req.source.disk.clone(),
        image: req.dir.join(&req.name),
        part: req.source.part,
        options: BackupOptions {
            level: settings.level,
            split,
            chunk_size: engine::backup::chunk_size_for(split),
            read: engine::rescue::ReadPolicy { strict: false },
            threads: 0,
        },
        all_unpartitioned: false,
        identity: Some(SourceIdentity {
            model: req.source.model.clone(),
            serial: req.source.serial.clone(),
        }),
        key: req.key.clone(),
        decrypted: req.decrypted,
        encryption: settings
            .password
            .as_ref()
            .map(|p| engine::backup::Encryption::new(p.passphrase())),
    })
}

/// Asks the engine to check a backup's destination (not on the disk being read, no existing
/// file of that name) and plan it with the default settings. Reads only.
pub fn plan_backup(root: &SysRoot, req: &BackupRequest) -> Result<BackupJob, String> {
    let disks = Disks::discover(root).map_err(|e| e.to_string())?;
    let plan = engine::job::plan(backup_spec(req, &BackupSettings::default()), &disks)
        .map_err(|e| e.to_string())?;
    Ok(BackupJob {
        request: req.clone(),
        plan,
    })
}

/// Makes a planned backup with the chosen settings: the engine plans it again with them (a FAT
/// destination forces 4 GiB volumes), writes the image and the bad-sector map beside it when
/// sectors could not be read, and deletes a partial image on failure or cancellation.
pub fn execute_backup(
    root: &SysRoot,
    job: &BackupJob,
    settings: &BackupSettings,
    sink: &ProgressSink,
    cancel: &Cancel,
) -> Outcome {
    let planned = Disks::discover(root)
        .and_then(|disks| engine::job::plan(backup_spec(&job.request, settings), &disks));
    let outcome = match planned {
        Ok(plan) => {
            log::info!(
                "{} (level {}, split {:?})",
                plan.title,
                settings.level,
                settings.split()
            );
            engine::job::run(&plan, None, Some(sink), cancel)
        }
        Err(e) => Outcome::failed(&e),
    };
    log_outcome(&job.plan.title, &outcome);
    outcome
}
