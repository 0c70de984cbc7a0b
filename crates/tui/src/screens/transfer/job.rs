//! What a transfer job is, as data: which job ([`Action`]), its switches, the request to plan it
//! (and the engine's [`JobSpec`] it becomes), the plan the engine made, and the state a failed
//! job left its target in. `jobs` (the worker) and the transfer screens share these.

use crate::inventory::Endpoint;
use engine::clone::CloneOptions;
use engine::job::{CloneSpec, CopyInto, CopySpec, JobSpec, Outcome, RestoreSpec, Status};
use engine::rescue::ReadPolicy;
use std::path::PathBuf;

/// The jobs that write to a disk. [`Action::WIRED`] are the ones that start from a disk list;
/// the restores start from an image (their first steps are [`crate::model::Screen::Restore`]). Verifying an image writes nothing
/// and has no target: it has its own screen ([`crate::model::Screen::Verify`]); a backup writes only a new
/// file, never a disk, and has its own screens too ([`crate::model::Screen::Backup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Whole disk → whole disk.
    CloneDisk,
    /// Partition → partition.
    CopyPartition,
    /// A whole-disk image → a disk (table written last).
    RestoreDisk,
    /// One partition of an image → an existing partition.
    RestorePartition,
}

impl Action {
    /// The jobs shown in the menu.
    pub const WIRED: &'static [Action] = &[Action::CloneDisk, Action::CopyPartition];

    pub fn title(self) -> &'static str {
        match self {
            Action::CloneDisk => "Clone disk",
            Action::CopyPartition => "Copy partition",
            Action::RestoreDisk => "Restore disk",
            Action::RestorePartition => "Restore partition",
        }
    }

    /// What the user picks for this job: whole disks or partitions.
    pub fn picks_partitions(self) -> bool {
        matches!(self, Action::CopyPartition | Action::RestorePartition)
    }

    /// True for the jobs whose source is an image file.
    pub fn is_restore(self) -> bool {
        matches!(self, Action::RestoreDisk | Action::RestorePartition)
    }

    /// The options offered on the options screen, in order.
    pub fn options(self) -> &'static [JobOption] {
        match self {
            Action::CloneDisk => &[
                JobOption::GrowLast,
                JobOption::NewIds,
                JobOption::Verify,
                JobOption::Strict,
            ],
            Action::CopyPartition => &[JobOption::Verify, JobOption::Strict],
            Action::RestoreDisk => &[
                JobOption::GrowLast,
                JobOption::NewIds,
                JobOption::Discard,
                JobOption::Verify,
            ],
            Action::RestorePartition => &[JobOption::Discard, JobOption::Verify],
        }
    }
}

/// One switch on the options screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOption {
    GrowLast,
    NewIds,
    Verify,
    Strict,
    Discard,
}

impl JobOption {
    pub fn title(self) -> &'static str {
        match self {
            JobOption::GrowLast => "Grow the last partition to fill the target",
            JobOption::NewIds => "New disk and partition IDs (both disks stay attached)",
            JobOption::Verify => "Verify: read back and compare after writing",
            JobOption::Strict => "Stop at the first unreadable sector (else skip it)",
            JobOption::Discard => "Discard (TRIM) the blocks no file system uses",
        }
    }
}

/// The switches of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobOptions {
    pub grow_last: bool,
    pub new_ids: bool,
    pub verify: bool,
    pub strict: bool,
    pub discard: bool,
}

impl JobOptions {
    pub fn get(&self, o: JobOption) -> bool {
        match o {
            JobOption::GrowLast => self.grow_last,
            JobOption::NewIds => self.new_ids,
            JobOption::Verify => self.verify,
            JobOption::Strict => self.strict,
            JobOption::Discard => self.discard,
        }
    }

    pub fn toggle(&mut self, o: JobOption) {
        let flag = match o {
            JobOption::GrowLast => &mut self.grow_last,
            JobOption::NewIds => &mut self.new_ids,
            JobOption::Verify => &mut self.verify,
            JobOption::Strict => &mut self.strict,
            JobOption::Discard => &mut self.discard,
        };
        *flag = !*flag;
    }

    /// The restore engine's options.
    pub fn restore(&self) -> engine::restore::RestoreOptions {
        engine::restore::RestoreOptions {
            grow_last: self.grow_last,
            new_ids: self.new_ids,
            verify: self.verify,
            discard: self.discard,
            threads: 0,
        }
    }

    /// The engine's options.
    pub fn engine(&self) -> CloneOptions {
        CloneOptions {
            grow_last: self.grow_last,
            new_ids: self.new_ids,
            verify: self.verify,
            read: ReadPolicy {
                strict: self.strict,
            },
        }
    }
}

/// A request to check a target and plan a job (reads only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    pub action: Action,
    pub source: Endpoint,
    pub target: Endpoint,
    pub options: JobOptions,
}

/// Where an endpoint is opened: its own path, or the disk (image file) and partition number
/// when the partition has no device node of its own.
fn opened(e: &Endpoint) -> (PathBuf, Option<u32>) {
    match e.number {
        Some(n) if e.offset != 0 => (e.disk.clone(), Some(n)),
        _ => (e.path.clone(), None),
    }
}

impl PlanRequest {
    /// The engine's job for the user's choices: the engine checks and plans it.
    pub fn spec(&self) -> JobSpec {
        let (target, into) = opened(&self.target);
        match self.action {
            Action::CloneDisk => JobSpec::Clone(CloneSpec {
                source: self.source.path.clone(),
                target: self.target.path.clone(),
                options: self.options.engine(),
            }),
            Action::CopyPartition => {
                let (source, part) = opened(&self.source);
                JobSpec::Copy(CopySpec {
                    source,
                    part,
                    target,
                    into: into.map_or(CopyInto::Whole, CopyInto::Partition),
                    options: self.options.engine(),
                })
            }
            Action::RestoreDisk => JobSpec::Restore(RestoreSpec {
                image: self.source.path.clone(),
                target: self.target.path.clone(),
                whole_disk: Some(true),
                part: None,
                into: None,
                options: self.options.restore(),
            }),
            Action::RestorePartition => JobSpec::Restore(RestoreSpec {
                image: self.source.path.clone(),
                target,
                whole_disk: Some(false),
                part: self.source.number,
                into,
                options: self.options.restore(),
            }),
        }
    }
}

/// A plan the engine made for a request, ready to show and (after confirmation) run.
#[derive(Debug)]
pub struct PlannedJob {
    pub action: Action,
    /// The source and target as the lists showed them.
    pub source: Endpoint,
    pub target: Endpoint,
    pub options: JobOptions,
    /// The engine's plan: its lines, the target it overwrites (path, identity) and warnings.
    pub plan: engine::job::Plan,
}

impl PlannedJob {
    /// How the target is named on the confirmation screen: the engine's identity of what the
    /// consent covers (the endpoint's, for a plan that overwrites nothing).
    pub fn identity(&self) -> &str {
        match &self.plan.target {
            Some(t) => &t.identity,
            None => &self.target.identity,
        }
    }

    /// The path the engine opens for writing (a disk image file's, for one of its partitions).
    pub fn target_path(&self) -> &std::path::Path {
        match &self.plan.target {
            Some(t) => &t.path,
            None => &self.target.path,
        }
    }

    /// The plan's text as shown before confirmation (lines, notes, warnings), printable.
    pub fn text(&self) -> String {
        self.plan.lines().join("\n")
    }
}

/// The state a failed job left its target in, in words, from the phase the job was in. A
/// cancelled job's error already carries the engine's own statement; a completed one needs none.
pub fn target_state(action: Action, outcome: &Outcome, phase: Option<&str>) -> Option<String> {
    if outcome.status != Status::Failed {
        return None;
    }
    let phase = phase.unwrap_or("");
    let text = match action {
        Action::CloneDisk => {
            if phase.starts_with("copying") {
                "the target has no partition table yet: it holds partial data and does not look \
                 like a complete disk; run the clone again"
            } else if phase.starts_with("writing the partition table") {
                "all data was copied but the partition table may be partly written: run the \
                 clone again before using the disk"
            } else if phase.starts_with("verifying") {
                "everything was written but it does not read back as the source: do not trust \
                 this copy"
            } else {
                "the target's partition table may have been invalidated: treat the disk as blank"
            }
        }
        Action::RestoreDisk => {
            if phase.starts_with("writing the partition table") {
                "all data was written but the partition table may be partly written: restore \
                 again before using the disk"
            } else if phase.starts_with("verif") {
                "everything was written but it does not read back as the image: do not trust \
                 this disk"
            } else if phase.is_empty() || phase.starts_with("invalidating") {
                "the target's partition table may have been invalidated: treat the disk as blank"
            } else {
                "partition table not written: the disk has no valid table and holds partial \
                 data; restore again"
            }
        }
        Action::RestorePartition => {
            if phase.starts_with("verif") {
                "everything was written but it does not read back as the image: do not trust \
                 this partition"
            } else {
                "the target partition holds no valid file system (its start is written last): \
                 restore again"
            }
        }
        Action::CopyPartition => {
            if phase.starts_with("verifying") {
                "everything was written but it does not read back as the source: do not trust \
                 this copy"
            } else {
                "the target partition holds no valid file system (its start is written last): \
                 run the copy again"
            }
        }
    };
    Some(text.to_string())
}
