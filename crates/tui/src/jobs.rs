//! The work the runtime does on worker threads for `update`'s effects: discovery, planning
//! (safety check included) and executing confirmed plans. These functions block; they never touch
//! the terminal.

use crate::confirm::Confirmed;
use crate::model::{
    Action, BackupJob, BackupRequest, BackupSettings, BrowseEntry, DiskEntry, Finished, ImagePart,
    ImageSummary, JobFailure, PlanRequest, PlannedJob, PlannedKind, SPLIT_4G,
};
use disk::{BlockIo, DiscoverOptions, FileDisk, SysRoot, Window, WriteConsent};
use engine::backup::{BackupOptions, BackupReport, SourceIdentity};
use engine::clone::GrowFs;
use engine::units::human;
use engine::{Cancel, JobError, Progress, ProgressSink};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// Runs the safety check on the target and builds the plan. Reads only.
pub fn plan(root: &SysRoot, req: &PlanRequest) -> Result<PlannedJob, JobError> {
    let opts = DiscoverOptions {
        include_virtual: req.include_virtual,
        open_devices: false,
    };
    let devices = disk::discover(root, &opts)?;
    if req.action.is_restore() {
        return plan_restore(req, &devices);
    }
    let checked =
        engine::safety::check_target(&req.target.path, &[req.source.path.as_path()], &devices)?;
    let engine_opts = req.options.engine();
    match req.action {
        Action::RestoreDisk | Action::RestorePartition => plan_restore(req, &devices),
        Action::CloneDisk => {
            let src = FileDisk::open_read(&req.source.path)?;
            let is_block = checked.device.is_some();
            let target_sector = if is_block {
                Some(FileDisk::open_read(&req.target.path)?.logical_sector_size())
            } else {
                None
            };
            let plan = engine::clone::plan_clone(
                &src,
                &req.target.path.display().to_string(),
                checked.size,
                target_sector,
                &engine_opts,
            )?;
            Ok(PlannedJob {
                action: req.action,
                source: req.source.clone(),
                target: req.target.clone(),
                options: req.options,
                identity: checked.identity,
                text: plan.to_string(),
                kind: PlannedKind::Clone(Box::new(plan)),
            })
        }
        Action::CopyPartition => {
            let src_io = FileDisk::open_read(&req.source.path)?;
            let src = Window::new(&src_io, req.source.offset, req.source.len)
                .map_err(|e| read_error(&req.source.path, req.source.offset, e))?;
            let (target_name, identity) = if req.target.offset == 0 {
                (req.target.path.display().to_string(), checked.identity)
            } else {
                let n = req.target.number.unwrap_or(0);
                (
                    format!("partition {n} of {}", req.target.path.display()),
                    format!("partition {n} of {}", checked.identity),
                )
            };
            let plan = engine::clone::plan_copy_partition(&src, &target_name, req.target.len)?;
            Ok(PlannedJob {
                action: req.action,
                source: req.source.clone(),
                target: req.target.clone(),
                options: req.options,
                identity,
                text: plan.to_string(),
                kind: PlannedKind::Copy(Box::new(plan)),
            })
        }
    }
}

/// Checks a restore's target (the engine's checks, and not the drive the image is read from)
/// and plans the restore. Reads only.
fn plan_restore(req: &PlanRequest, devices: &[disk::BlockDevice]) -> Result<PlannedJob, JobError> {
    let image_path = &req.source.path;
    let checked = engine::safety::check_target(&req.target.path, &[], devices)?;
    // The engine's backup check answers the same question: is the image on the target's disk?
    if let Err(JobError::TargetInUse { .. }) =
        engine::safety::check_image_destination(image_path, &req.target.path, devices)
    {
        return Err(JobError::TargetInUse {
            device: req.target.path.display().to_string(),
            reason: format!(
                "the image {} is stored on this drive: restoring onto it would overwrite the \
                 image while it is read",
                image_path.display()
            ),
        });
    }
    let img = std::sync::Arc::new(image::ImageReader::open(image_path)?);
    let m = img.manifest();
    let opts = req.options.restore();
    let (name, identity, plan) = match req.action {
        Action::RestoreDisk => {
            let sector = match checked.device {
                Some(_) => Some(FileDisk::open_read(&req.target.path)?.logical_sector_size()),
                None => None,
            };
            let name = req.target.path.display().to_string();
            let mut plan =
                engine::restore::plan_restore_disk(&img, &name, checked.size, sector, &opts)?;
            if let Some(dev) = &checked.device {
                let same_serial =
                    !m.source.serial.is_empty() && dev.serial.as_deref() == Some(&m.source.serial);
                if !same_serial && !m.source.model.is_empty() {
                    plan.notes.push(format!(
                        "the image was made from another disk: {} (serial {}, {}); the target \
                         is {}",
                        m.source.model,
                        m.source.serial,
                        human(m.source.size),
                        dev.identity()
                    ));
                }
            }
            (name, checked.identity, plan)
        }
        _ => {
            let (name, identity) = if req.target.offset == 0 {
                (req.target.path.display().to_string(), checked.identity)
            } else {
                let n = req.target.number.unwrap_or(0);
                (
                    format!("partition {n} of {}", req.target.path.display()),
                    format!("partition {n} of {}", checked.identity),
                )
            };
            let plan = engine::restore::plan_restore_partition(
                &img,
                req.source.number,
                &name,
                req.target.len,
            )?;
            (name, identity, plan)
        }
    };
    log::info!("planned the restore of {} to {name}", image_path.display());
    Ok(PlannedJob {
        action: req.action,
        source: req.source.clone(),
        target: req.target.clone(),
        options: req.options,
        identity,
        text: plan.to_string(),
        kind: PlannedKind::Restore(Box::new(plan)),
    })
}

fn read_error(path: &Path, offset: u64, source: std::io::Error) -> JobError {
    JobError::Read {
        device: path.display().to_string(),
        offset,
        len: 0,
        source,
    }
}

/// Executes a confirmed plan: opens the target for writing with the user's consent, runs the
/// engine, re-reads the partition table and grows the last file system when planned.
pub fn execute(root: &SysRoot, job: &Confirmed, sink: &ProgressSink, cancel: &Cancel) -> Finished {
    let plan = job.plan();
    let mut notes = Vec::new();
    let result = run(root, plan, sink, cancel, &mut notes);
    Finished {
        result: result.map_err(|e| {
            let (cancelled, state) = match &e {
                JobError::Cancelled { state } => (true, Some(state.clone())),
                _ => (false, None),
            };
            JobFailure {
                message: e.to_string(),
                cancelled,
                state,
            }
        }),
        notes,
    }
}

fn run(
    root: &SysRoot,
    job: &PlannedJob,
    sink: &ProgressSink,
    cancel: &Cancel,
    notes: &mut Vec<String>,
) -> Result<engine::clone::JobReport, JobError> {
    let opts = job.options.engine();
    let consent = WriteConsent::confirmed_by_user(&job.target.path, &job.identity);
    match &job.kind {
        PlannedKind::Clone(plan) => {
            let src = FileDisk::open_read(&job.source.path)?;
            let is_block = src.is_block_device();
            let ss = plan.table.layout().sector_size;
            let src = if is_block {
                src
            } else {
                src.with_sector_size(
                    plan.source_layout.sector_size,
                    plan.source_layout.sector_size,
                )?
            };
            let dst = FileDisk::open_write(&job.target.path, &consent)?;
            let target_is_block = dst.is_block_device();
            let dst = if target_is_block {
                dst
            } else {
                dst.with_sector_size(ss, ss)?
            };
            log::info!(
                "cloning {} to {} ({})",
                job.source.path.display(),
                job.target.path.display(),
                job.identity
            );
            let report = engine::clone::execute_clone(plan, &src, &dst, &opts, Some(sink), cancel)?;
            if target_is_block {
                if let Err(e) = dst.reread_partitions() {
                    notes.push(format!(
                        "the kernel did not re-read the new partition table ({e}): reboot before \
                         using the disk"
                    ));
                }
            }
            drop(dst);
            if let Some(grow) = &plan.grow {
                match grow_last(
                    root,
                    grow,
                    plan.table.layout(),
                    &job.target.path,
                    target_is_block,
                ) {
                    Ok(line) => notes.push(line),
                    Err(e) => notes.push(format!(
                        "the clone is complete, but growing the file system failed: {e}"
                    )),
                }
            }
            Ok(report)
        }
        PlannedKind::Copy(plan) => {
            let src_io = FileDisk::open_read(&job.source.path)?;
            let src = Window::new(&src_io, job.source.offset, job.source.len)
                .map_err(|e| read_error(&job.source.path, job.source.offset, e))?;
            let dst_io = FileDisk::open_write(&job.target.path, &consent)?;
            let dst = Window::new(&dst_io, job.target.offset, job.target.len).map_err(|e| {
                JobError::Write {
                    device: job.target.path.display().to_string(),
                    offset: job.target.offset,
                    len: 0,
                    source: e,
                }
            })?;
            log::info!(
                "copying {} to {} ({})",
                job.source.path.display(),
                job.target.path.display(),
                job.identity
            );
            engine::clone::execute_copy_partition(plan, &src, &dst, &opts, Some(sink), cancel)
        }
        PlannedKind::Restore(plan) => run_restore(root, job, plan, &consent, sink, cancel, notes),
    }
}

fn run_restore(
    root: &SysRoot,
    job: &PlannedJob,
    plan: &engine::restore::RestorePlan,
    consent: &WriteConsent,
    sink: &ProgressSink,
    cancel: &Cancel,
    notes: &mut Vec<String>,
) -> Result<engine::clone::JobReport, JobError> {
    let img = std::sync::Arc::new(image::ImageReader::open(&job.source.path)?);
    let opts = job.options.restore();
    let dst = FileDisk::open_write(&job.target.path, consent)?;
    let is_block = dst.is_block_device();
    let dst = match (&plan.table, is_block) {
        (Some(t), false) => {
            let ss = t.layout().sector_size;
            dst.with_sector_size(ss, ss)?
        }
        _ => dst,
    };
    let window =
        Window::new(&dst, job.target.offset, job.target.len).map_err(|e| JobError::Write {
            device: job.target.path.display().to_string(),
            offset: job.target.offset,
            len: 0,
            source: e,
        })?;
    log::info!(
        "restoring {} to {} ({})",
        job.source.path.display(),
        job.target.path.display(),
        job.identity
    );
    let report = engine::restore::execute_restore(plan, &img, &window, &opts, Some(sink), cancel)?;
    if is_block && plan.table.is_some() {
        if let Err(e) = dst.reread_partitions() {
            notes.push(format!(
                "the kernel did not re-read the new partition table ({e}): reboot before using \
                 the disk"
            ));
        }
    }
    drop(dst);
    if let (Some(grow), Some(table)) = (&plan.grow, &plan.table) {
        match grow_last(root, grow, table.layout(), &job.target.path, is_block) {
            Ok(line) => notes.push(line),
            Err(e) => notes.push(format!(
                "the restore is complete, but growing the file system failed: {e}"
            )),
        }
    }
    let mut report_notes = report.notes;
    if report.bytes_discarded > 0 {
        report_notes.push(format!(
            "{} the file systems do not use were discarded (TRIM)",
            human(report.bytes_discarded)
        ));
    }
    Ok(engine::clone::JobReport {
        bytes_copied: report.bytes_written,
        seconds: report.seconds,
        bad_sectors: Default::default(),
        verified: report.verified,
        notes: report_notes,
    })
}

fn grow_last(
    root: &SysRoot,
    grow: &GrowFs,
    layout: &layout::Layout,
    target: &Path,
    is_block: bool,
) -> Result<String, JobError> {
    let at = engine::grow::locate(root, target, layout, grow.number(), is_block)?;
    engine::grow::grow_filesystem(grow, &at)
}

/// Reads a folder for the image browser: its sub-folders and `.lbi` files (the first volume of
/// split images), each image opened to show its summary or why it cannot be used. `Up` comes
/// first unless `dir` is `top`. Hidden entries are left out; folders first, then by name.
pub fn list_images(top: &Path, dir: &Path) -> Result<Vec<BrowseEntry>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
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

/// Opens an image and summarizes its manifest; the error says why it cannot be used.
pub fn summarize(path: &Path) -> Result<ImageSummary, String> {
    let reader = image::ImageReader::open(path).map_err(|e| e.to_string())?;
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
        m.partitions
            .iter()
            .map(|p| p.start.saturating_add(p.size))
            .max()
            .unwrap_or(ss)
            .saturating_add(tail)
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
        volumes: reader.volume_names().len(),
        bad_ranges: m.bad_sectors.len(),
    })
}

/// Verifies every chunk of an image on `threads` threads, sending progress about four times a
/// second. Reads only. `Err` when the image cannot be opened or the user cancelled.
pub fn verify_image(
    path: &Path,
    threads: usize,
    sink: &ProgressSink,
    cancel: &Cancel,
) -> Result<image::VerifyReport, String> {
    let reader = image::ImageReader::open(path).map_err(|e| e.to_string())?;
    let total: u64 = reader
        .index()
        .iter()
        .map(|e| u64::from(e.uncompressed_len))
        .sum();
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    let phase = format!("verifying {}", path.display());
    let report = |finished: bool| {
        let d = done.load(Ordering::Relaxed).min(total);
        let elapsed = start.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            d as f64 / elapsed
        } else {
            0.0
        };
        sink(&Progress {
            phase: phase.clone(),
            done: d,
            total,
            bytes_per_sec: rate,
            eta_secs: (rate > 0.0).then(|| ((total - d) as f64 / rate) as u64),
            elapsed_secs: elapsed,
            bad_bytes: 0,
            finished,
        });
    };
    log::info!("verifying {} ({} of data)", path.display(), human(total));
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                report(false);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        let r = reader.verify_with(threads.max(1), cancel.flag(), &done);
        finished.store(true, Ordering::SeqCst);
        r
    });
    report(true);
    match result {
        Ok(r) => {
            log::info!(
                "{}: {} chunks checked, {} bad, {} structural problems",
                path.display(),
                r.chunks,
                r.bad.len(),
                r.structure.len()
            );
            Ok(r)
        }
        Err(image::Error::Cancelled) => Err(format!(
            "verify of {} cancelled: nothing was changed",
            path.display()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Today's date (UTC) as `YYYY-MM-DD`, for image names.
pub fn today() -> String {
    let now = image::rfc3339_utc(std::time::SystemTime::now());
    now.get(..10).unwrap_or(&now).to_string()
}

/// Free bytes (for an unprivileged user) and whether the file system holding `dir` is FAT.
pub fn destination_space(dir: &Path) -> Result<(u64, bool), String> {
    let vfs = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| format!("reading the free space of {}: {e}", dir.display()))?;
    let free = vfs.blocks_available().saturating_mul(vfs.fragment_size());
    let fat = nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type() == nix::sys::statfs::MSDOS_SUPER_MAGIC)
        .map_err(|e| format!("reading the file system type of {}: {e}", dir.display()))?;
    Ok((free, fat))
}

/// Checks a backup's destination (not on the disk being read, no existing file of that name)
/// and plans it. Reads only.
pub fn plan_backup(root: &SysRoot, req: &BackupRequest) -> Result<BackupJob, String> {
    let image_path = req.dir.join(&req.name);
    if image_path.exists() {
        return Err(format!(
            "{} exists: images are never overwritten (remove it or choose another folder)",
            image_path.display()
        ));
    }
    let opts = DiscoverOptions {
        include_virtual: req.include_virtual,
        open_devices: false,
    };
    let devices = disk::discover(root, &opts).map_err(|e| e.to_string())?;
    let source = &req.source.disk;
    engine::safety::check_image_destination(&image_path, source, &devices)
        .map_err(|e| e.to_string())?;
    let (free, fat) = destination_space(&req.dir)?;
    let src = FileDisk::open_read(source).map_err(|e| e.to_string())?;
    let identity = SourceIdentity {
        model: req.source.model.clone(),
        serial: req.source.serial.clone(),
    };
    let plan = engine::backup::plan_backup(&src, identity, &image_path, req.source.part)
        .map_err(|e| e.to_string())?;
    Ok(BackupJob {
        request: req.clone(),
        plan,
        free: Some(free),
        fat,
    })
}

/// The chunk size for volumes of `split` bytes: small volumes take smaller chunks, since a
/// chunk never straddles two volumes.
pub fn chunk_size_for(split: Option<u64>) -> u32 {
    match split {
        Some(split) if split < 64 << 20 => {
            let want = (split / 8).clamp(64 << 10, 4 << 20);
            1u32 << (63 - want.leading_zeros())
        }
        _ => image::DEFAULT_CHUNK_SIZE,
    }
}

/// Makes a planned backup: opens the source (a 4K-sector disk image file with its table's sector
/// size), writes the image, and writes the bad-sector map (ddrescue format) beside it when
/// sectors could not be read. The engine deletes a partial image on failure or cancellation.
pub fn execute_backup(
    job: &BackupJob,
    settings: &BackupSettings,
    sink: &ProgressSink,
    cancel: &Cancel,
) -> Result<BackupReport, JobFailure> {
    let fail = |e: JobError| {
        let (cancelled, state) = match &e {
            JobError::Cancelled { state } => (true, Some(state.clone())),
            _ => (false, None),
        };
        JobFailure {
            message: e.to_string(),
            cancelled,
            state,
        }
    };
    let source = &job.request.source.disk;
    let plan = &job.plan;
    let src = FileDisk::open_read(source).map_err(|e| fail(e.into()))?;
    let src = match (&plan.layout, src.is_block_device()) {
        (Some(l), false) if l.sector_size != src.logical_sector_size() => {
            FileDisk::open_read(source)
                .and_then(|f| f.with_sector_size(l.sector_size, l.sector_size))
                .map_err(|e| fail(e.into()))?
        }
        _ => src,
    };
    let split = if job.fat {
        Some(SPLIT_4G)
    } else {
        settings.split()
    };
    let opts = BackupOptions {
        level: settings.level,
        split,
        chunk_size: chunk_size_for(split),
        read: engine::rescue::ReadPolicy { strict: false },
        threads: 0,
    };
    log::info!(
        "backing up {} to {} (level {}, split {:?})",
        plan.source,
        plan.image.display(),
        opts.level,
        opts.split
    );
    let mut report =
        engine::backup::execute_backup(plan, &src, &opts, Some(sink), cancel).map_err(fail)?;
    if !report.bad_sectors.is_empty() {
        let map = plan.image.with_extension("badsectors");
        match std::fs::write(&map, report.bad_sectors.to_ddrescue(plan.source_len)) {
            Ok(()) => report.notes.push(format!(
                "bad-sector map (ddrescue format): {}",
                map.display()
            )),
            Err(e) => report
                .notes
                .push(format!("writing the bad-sector map {}: {e}", map.display())),
        }
    }
    log::info!(
        "backup of {} done: read {}, image {} in {} volume(s), {} unreadable",
        plan.source,
        human(report.bytes_read),
        human(report.bytes_written),
        report.volumes.len(),
        human(report.bad_sectors.bytes())
    );
    Ok(report)
}
