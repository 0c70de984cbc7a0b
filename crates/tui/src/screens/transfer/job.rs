//! What a transfer job is, as data: which job ([`Action`]), its switches, the request to plan it,
//! the plan a worker made, and how it ended. `jobs` (the worker) and the transfer screens share
//! these.

use crate::inventory::Endpoint;
use engine::clone::{CloneOptions, ClonePlan, CopyPlan, JobReport};
use engine::rescue::ReadPolicy;

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
    /// Discover loop and RAM devices for the safety check too.
    pub include_virtual: bool,
}

/// A plan built by a worker, ready to show and (after confirmation) execute.
#[derive(Debug)]
pub struct PlannedJob {
    pub action: Action,
    pub source: Endpoint,
    pub target: Endpoint,
    pub options: JobOptions,
    /// What the confirmation names, from the safety check.
    pub identity: String,
    /// The plan's text.
    pub text: String,
    pub kind: PlannedKind,
}

/// The engine's plan.
#[derive(Debug)]
pub enum PlannedKind {
    Clone(Box<ClonePlan>),
    Copy(Box<CopyPlan>),
    /// A restore: the source endpoint is the image file (its `number` the partition restored).
    Restore(Box<engine::restore::RestorePlan>),
}

/// Why a job did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub message: String,
    pub cancelled: bool,
    /// The engine's own words on the target's state, when it says (cancellation).
    pub state: Option<String>,
}

/// A finished job.
#[derive(Debug, Clone)]
pub struct Finished {
    pub result: Result<JobReport, JobFailure>,
    /// Extra lines: partition-table re-read, file system grown.
    pub notes: Vec<String>,
}

/// What the result screen shows.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub finished: Finished,
    /// The state the target is in after a failure, in words.
    pub target_state: Option<String>,
}

/// The state a failed job left its target in, in words, from the engine's statement or the
/// phase the job was in.
pub fn target_state(action: Action, finished: &Finished, phase: Option<&str>) -> Option<String> {
    let failure = finished.result.as_ref().err()?;
    if let Some(state) = &failure.state {
        return Some(state.clone());
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
