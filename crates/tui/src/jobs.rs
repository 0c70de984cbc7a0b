//! The work the runtime does on worker threads for `update`'s effects: discovery, planning
//! (safety check included) and executing confirmed plans. These functions block; they never touch
//! the terminal.

use crate::confirm::Confirmed;
use crate::model::{Action, DiskEntry, Finished, JobFailure, PlanRequest, PlannedJob, PlannedKind};
use disk::{BlockIo, DiscoverOptions, FileDisk, SysRoot, Window, WriteConsent};
use engine::clone::GrowFs;
use engine::grow::PartitionAt;
use engine::{Cancel, JobError, ProgressSink};
use std::path::Path;

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
    let checked =
        engine::safety::check_target(&req.target.path, &[req.source.path.as_path()], &devices)?;
    let engine_opts = req.options.engine();
    match req.action {
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
                match grow_last(root, grow, plan, &job.target.path, target_is_block) {
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
    }
}

fn grow_last(
    root: &SysRoot,
    grow: &GrowFs,
    plan: &engine::clone::ClonePlan,
    target: &Path,
    is_block: bool,
) -> Result<String, JobError> {
    let number = match grow {
        GrowFs::Resize2fs { number, .. }
        | GrowFs::Ntfsresize { number, .. }
        | GrowFs::PartitionOnly { number, .. } => *number,
    };
    let part = plan
        .table
        .layout()
        .partition(number)
        .ok_or_else(|| JobError::NoSuchPartition {
            device: target.display().to_string(),
            number,
        })?;
    let range = PartitionAt::Range {
        path: target.to_path_buf(),
        offset: part.start,
        len: part.size,
    };
    let at = if is_block {
        let devices = disk::discover(
            root,
            &DiscoverOptions {
                include_virtual: true,
                open_devices: false,
            },
        )?;
        devices
            .iter()
            .find(|d| d.path == target)
            .and_then(|d| d.partitions.iter().find(|p| p.number == Some(number)))
            .map(|p| PartitionAt::Node(p.path.clone()))
            .unwrap_or(range)
    } else {
        range
    };
    engine::grow::grow_filesystem(grow, &at)
}
