//! [`run`]: re-check, open, execute, re-read, grow, write maps, report.

use super::plan::open_copy_source;
use super::{Disks, JobSpec, Outcome, Plan, Status, StepReport, Steps, Target, VerifySummary};
use crate::error::JobError;
use crate::grow::GrowFs;
use crate::pipeline::JobReport;
use crate::progress::{Cancel, ProgressSink};
use crate::rescue::BadSectorMap;
use crate::safety::check_write_target;
use crate::units::human;
use disk::{BlockIo, FileDisk, Window, WriteConsent};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Runs a confirmed plan. `consent` must cover [`Plan::target`] when the plan has one (made from
/// the user's typed "yes", `--yes`, or a job file); plans without a target need none.
/// Never panics and never returns early without an [`Outcome`].
pub fn run(
    plan: &Plan,
    consent: Option<&WriteConsent>,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Outcome {
    let source = match open_source(&plan.spec, &plan.steps) {
        Ok(s) => s,
        Err(e) => return Outcome::failed(&e),
    };
    match &source {
        Opened::Whole(io) => run_with_source(plan, consent, Some(io), sink, cancel),
        Opened::Range(io, start, len) => match Window::new(io, *start, *len) {
            Ok(w) => run_with_source(plan, consent, Some(&w), sink, cancel),
            Err(e) => Outcome::failed(&JobError::Read {
                device: io.path().display().to_string(),
                offset: *start,
                len: 0,
                source: e,
            }),
        },
        Opened::Nothing => run_with_source(plan, consent, None, sink, cancel),
    }
}

/// What a job reads from a disk or file.
enum Opened {
    Whole(FileDisk),
    Range(FileDisk, u64, u64),
    /// Restores and verification read an image.
    Nothing,
}

fn open_source(spec: &JobSpec, steps: &Steps) -> Result<Opened, JobError> {
    Ok(match (spec, steps) {
        (JobSpec::Backup(s), Steps::Backup(p)) => {
            let src = FileDisk::open_read(&s.source)?;
            // A 4K-sector disk image file: read it with the sector size its table uses.
            match (&p.layout, src.is_block_device()) {
                (Some(l), false) if l.sector_size != src.logical_sector_size() => {
                    Opened::Whole(src.with_sector_size(l.sector_size, l.sector_size)?)
                }
                _ => Opened::Whole(src),
            }
        }
        (JobSpec::Clone(s), Steps::Clone(p)) => {
            let src = FileDisk::open_read(&s.source)?;
            if src.is_block_device() {
                Opened::Whole(src)
            } else {
                let ss = p.source_layout.sector_size;
                Opened::Whole(src.with_sector_size(ss, ss)?)
            }
        }
        (JobSpec::Copy(s), _) => {
            let (io, start, len) = open_copy_source(&s.source, s.part)?;
            Opened::Range(io, start, len)
        }
        _ => Opened::Nothing,
    })
}

/// [`run`] with the source already opened: the partition's bytes for a copy, the disk for a
/// backup or clone (a test passes a `disk::FaultyDisk`); `None` for restores and verification,
/// which read the image.
pub fn run_with_source(
    plan: &Plan,
    consent: Option<&WriteConsent>,
    source: Option<&dyn BlockIo>,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Outcome {
    log::info!("{}", plan.title);
    let outcome = match execute(plan, consent, source, sink, cancel) {
        Ok(o) => o,
        Err(e) => Outcome::failed(&e),
    };
    log::info!(
        "{}: {}{}",
        plan.title,
        outcome.status.label(),
        outcome
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    outcome
}

fn need_source(source: Option<&dyn BlockIo>) -> Result<&dyn BlockIo, JobError> {
    source.ok_or_else(|| JobError::Read {
        device: "the source".to_string(),
        offset: 0,
        len: 0,
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no source was opened"),
    })
}

fn execute(
    plan: &Plan,
    consent: Option<&WriteConsent>,
    source: Option<&dyn BlockIo>,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<Outcome, JobError> {
    match (&plan.spec, &plan.steps) {
        (JobSpec::Backup(s), Steps::Backup(p)) => {
            let report =
                crate::backup::execute_backup(p, need_source(source)?, &s.options, sink, cancel)?;
            if let Some(enc) = &p.encryption {
                // A verify or restore of the new image in the same session needs no second ask.
                crate::keys::remember(&p.image, enc.password.clone());
            }
            Ok(backup_outcome(p, report))
        }
        (JobSpec::Clone(s), Steps::Clone(p)) => {
            let t = planned_target(plan)?;
            let dst = open_target(plan, t, consent)?;
            let report = crate::clone::execute_clone(
                p,
                need_source(source)?,
                &dst,
                &s.options,
                sink,
                cancel,
            )?;
            let mut notes = report.notes.clone();
            reread(&dst, t, &mut notes);
            drop(dst);
            let grown = grow(&plan.disks, p.grow.as_ref(), p.table.layout(), t);
            Ok(copy_outcome("copied", report, notes, grown))
        }
        (JobSpec::Copy(s), Steps::Copy(p)) => {
            let t = planned_target(plan)?;
            let dst_io = open_target(plan, t, consent)?;
            let dst = target_window(&dst_io, t)?;
            let report = crate::copy::execute_copy_partition(
                p,
                need_source(source)?,
                &dst,
                &s.options,
                sink,
                cancel,
            )?;
            let notes = report.notes.clone();
            Ok(copy_outcome("copied", report, notes, None))
        }
        (JobSpec::Copy(s), Steps::CopyToFreeSpace(p)) => {
            let t = planned_target(plan)?;
            let dst_io = open_target(plan, t, consent)?;
            // The free space must still be free: nothing may have been added since the plan.
            let now = layout::read(&dst_io)?;
            if now
                .partitions
                .iter()
                .any(|q| q.start < p.start.saturating_add(p.size) && p.start < q.end())
            {
                return Err(JobError::TargetChanged {
                    device: t.path.display().to_string(),
                    what: format!("a partition now lies in the free space at byte {}", p.start),
                });
            }
            let dst = target_window(&dst_io, t)?;
            let report = crate::copy::execute_copy_partition(
                &p.copy,
                need_source(source)?,
                &dst,
                &s.options,
                sink,
                cancel,
            )?;
            p.table.write(&dst_io)?;
            dst_io.flush().map_err(|source| JobError::Flush {
                device: t.path.display().to_string(),
                source,
            })?;
            let mut notes = report.notes.clone();
            notes.push(format!("partition {} added at byte {}", p.number, p.start));
            reread(&dst_io, t, &mut notes);
            Ok(copy_outcome("copied", report, notes, None))
        }
        (JobSpec::Restore(s), Steps::Restore(p)) => {
            let t = planned_target(plan)?;
            let img = Arc::new(crate::keys::open_image(&s.image)?);
            let dst_io = open_target(plan, t, consent)?;
            let dst = target_window(&dst_io, t)?;
            let report = crate::restore::execute_restore(p, &img, &dst, &s.options, sink, cancel)?;
            Ok(restore_outcome(plan, p, t, dst_io, report))
        }
        (JobSpec::Receive(s), Steps::Restore(p)) => {
            let t = planned_target(plan)?;
            let dst_io = open_target(plan, t, consent)?;
            let dst = target_window(&dst_io, t)?;
            let report = crate::restore::execute_restore_streamed(
                p, &s.source, &dst, &s.options, sink, cancel,
            )?;
            Ok(restore_outcome(plan, p, t, dst_io, report))
        }
        (JobSpec::Verify(s), Steps::Verify { .. }) => verify(&s.image, s.threads, sink, cancel),
        _ => Err(JobError::BadImage {
            image: plan.title.clone(),
            problem: "the plan does not match its request".to_string(),
        }),
    }
}

/// The outcome of a restore (from a file or a stream): re-read the table, close the target,
/// grow the last file system when asked.
fn restore_outcome(
    plan: &Plan,
    p: &crate::restore::RestorePlan,
    t: &Target,
    dst_io: FileDisk,
    report: crate::restore::RestoreReport,
) -> Outcome {
    let mut notes = report.notes.clone();
    if report.bytes_discarded > 0 {
        notes.push(format!(
            "{} the file systems do not use were discarded (TRIM)",
            human(report.bytes_discarded)
        ));
    }
    if p.table.is_some() {
        reread(&dst_io, t, &mut notes);
    }
    // Close the target before its file system is grown by another program.
    drop(dst_io);
    let grown = match &p.table {
        Some(table) => grow(&plan.disks, p.grow.as_ref(), table.layout(), t),
        None => None,
    };
    let mut outcome = copy_outcome(
        "wrote",
        JobReport {
            bytes_copied: report.bytes_written,
            seconds: report.seconds,
            bad_sectors: BadSectorMap::default(),
            verified: report.verified,
            notes: Vec::new(),
        },
        notes,
        grown,
    );
    outcome.step = Some(StepReport::Restore(report));
    outcome
}

fn planned_target(plan: &Plan) -> Result<&Target, JobError> {
    plan.target.as_ref().ok_or_else(|| JobError::TargetChanged {
        device: plan.title.clone(),
        what: "the plan names no target".to_string(),
    })
}

/// The paths a job reads besides its target, and the image of a restore.
fn sources_of(spec: &JobSpec) -> (Vec<&Path>, Option<&Path>) {
    match spec {
        JobSpec::Clone(s) => (vec![s.source.as_path()], None),
        JobSpec::Copy(s) => (vec![s.source.as_path()], None),
        JobSpec::Restore(s) => (Vec::new(), Some(s.image.as_path())),
        JobSpec::Backup(s) => (vec![s.source.as_path()], None),
        JobSpec::Verify(_) | JobSpec::Receive(_) => (Vec::new(), None),
    }
}

/// Opens the planned target for writing after checking every refusal again on a fresh discovery
/// and re-identifying it: the same device number (or file), and for disks the same model,
/// serial and size. The object opened must be the one checked.
fn open_target(
    plan: &Plan,
    t: &Target,
    consent: Option<&WriteConsent>,
) -> Result<FileDisk, JobError> {
    let device = t.path.display().to_string();
    let changed = |what: String| JobError::TargetChanged {
        device: device.clone(),
        what,
    };
    let Some(consent) = consent else {
        return Err(JobError::TargetInUse {
            device: device.clone(),
            reason: "nobody confirmed that it may be overwritten".to_string(),
        });
    };
    let disks = Disks::discover(plan.disks.root())?;
    let (sources, image) = sources_of(&plan.spec);
    let now = check_write_target(&t.path, &sources, image, disks.devices())?;
    if now.object != t.object {
        return Err(changed(format!(
            "{} now leads to another device or file",
            t.path.display()
        )));
    }
    if now.size != t.size {
        return Err(changed(format!(
            "its size is now {} bytes, it was {}",
            now.size, t.size
        )));
    }
    if super::loop_backing(now.device.as_ref()) != t.backing {
        return Err(changed(format!(
            "the loop device {} now shows another file",
            t.path.display()
        )));
    }
    let (model, serial) = match &now.device {
        Some(d) => (d.model.clone(), d.serial.clone()),
        None => (None, None),
    };
    if model != t.model || serial != t.serial {
        return Err(changed(format!(
            "it is now {}",
            now.device
                .as_ref()
                .map(|d| d.identity())
                .unwrap_or_else(|| now.identity.clone())
        )));
    }
    let dst = FileDisk::open_write(&t.path, consent)?;
    if dst.object_id() != t.object || dst.len() != t.size {
        return Err(changed(format!(
            "{} was replaced while it was being opened",
            t.path.display()
        )));
    }
    match (t.file_sector_size, dst.is_block_device()) {
        (Some(ss), false) => Ok(dst.with_sector_size(ss, ss)?),
        _ => Ok(dst),
    }
}

fn target_window<'a>(io: &'a FileDisk, t: &Target) -> Result<Window<'a, FileDisk>, JobError> {
    Window::new(io, t.offset, t.len).map_err(|source| JobError::Write {
        device: t.path.display().to_string(),
        offset: t.offset,
        len: 0,
        source,
    })
}

/// Asks the kernel to re-read a block device's new table; a failure is a note (reboot first).
fn reread(dst: &FileDisk, t: &Target, notes: &mut Vec<String>) {
    if t.is_block {
        if let Err(e) = dst.reread_partitions() {
            notes.push(format!(
                "the kernel did not re-read the new partition table ({e}): reboot before using \
                 the disk"
            ));
        }
    }
}

/// Grows the last file system when planned: `Some(Ok(line))` or `Some(Err(why))`.
fn grow(
    disks: &Disks,
    grow: Option<&GrowFs>,
    layout: &layout::Layout,
    t: &Target,
) -> Option<Result<String, JobError>> {
    let grow = grow?;
    Some(
        crate::grow::locate(disks.root(), &t.path, layout, grow.number(), t.is_block)
            .and_then(|at| crate::grow::grow_filesystem(grow, &at)),
    )
}

fn copy_outcome(
    verb: &str,
    report: JobReport,
    mut notes: Vec<String>,
    grown: Option<Result<String, JobError>>,
) -> Outcome {
    let mut grow_error = None;
    match grown {
        Some(Ok(line)) => notes.push(line),
        Some(Err(e)) => grow_error = Some(e.to_string()),
        None => {}
    }
    let status = if !report.bad_sectors.is_empty() {
        Status::CompletedWithBadSectors
    } else if grow_error.is_some() {
        Status::CompletedGrowFailed
    } else {
        Status::Completed
    };
    Outcome {
        status,
        summary: format!(
            "done: {verb} {} in {:.1} s{}",
            human(report.bytes_copied),
            report.seconds,
            if report.verified { ", verified" } else { "" }
        ),
        notes,
        error: None,
        grow_error,
        bad_sectors: report.bad_sectors.clone(),
        bad_sector_map: None,
        step: Some(StepReport::Copy(report)),
    }
}

/// The name of a backup's bad-sector map: the image's with `.badsectors`.
fn bad_sector_map_path(image: &Path) -> PathBuf {
    image.with_extension("badsectors")
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = disk::create_private(path, disk::Existing::Replace)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn backup_outcome(
    plan: &crate::backup::BackupPlan,
    report: crate::backup::BackupReport,
) -> Outcome {
    let mut notes = report.notes.clone();
    let mut map = None;
    if !report.bad_sectors.is_empty() {
        let path = bad_sector_map_path(&plan.image);
        match write_private(&path, &report.bad_sectors.to_ddrescue(plan.source_len)) {
            Ok(()) => map = Some(path),
            Err(e) => notes.push(format!(
                "writing the bad-sector map {} failed: {e}",
                path.display()
            )),
        }
    }
    Outcome {
        status: if report.bad_sectors.is_empty() {
            Status::Completed
        } else {
            Status::CompletedWithBadSectors
        },
        summary: format!(
            "done: read {} in {:.1} s, image {} ({} volume{})",
            human(report.bytes_read),
            report.seconds,
            human(report.bytes_written),
            report.volumes.len(),
            if report.volumes.len() == 1 { "" } else { "s" }
        ),
        notes,
        error: None,
        grow_error: None,
        bad_sectors: report.bad_sectors.clone(),
        bad_sector_map: map,
        step: Some(StepReport::Backup(report)),
    }
}

/// Verifies every chunk on `threads` threads (0: one per core), with progress about four times a
/// second. A damaged image is a failed job.
fn verify(
    path: &Path,
    threads: usize,
    sink: Option<&ProgressSink>,
    cancel: &Cancel,
) -> Result<Outcome, JobError> {
    let r = crate::verify::verify_image(path, threads, sink, cancel)?;
    let summary = VerifySummary {
        image: path.to_path_buf(),
        ok: r.is_ok(),
        chunks: r.chunks,
        bytes: r.bytes,
        bad_chunks: r.bad.iter().map(|b| b.to_string()).collect(),
        structure: r.structure.clone(),
    };
    let ok = r.is_ok();
    Ok(Outcome {
        status: if ok {
            Status::Completed
        } else {
            Status::Failed
        },
        summary: format!(
            "{}: {} chunks, {} of data checked",
            path.display(),
            r.chunks,
            human(r.bytes)
        ),
        notes: if ok {
            vec!["image OK".to_string()]
        } else {
            Vec::new()
        },
        error: (!ok).then(|| {
            format!(
                "image DAMAGED: {} bad chunks, {} structural problems",
                r.bad.len(),
                r.structure.len()
            )
        }),
        grow_error: None,
        bad_sectors: BadSectorMap::default(),
        bad_sector_map: None,
        step: Some(StepReport::Verify(summary)),
    })
}
