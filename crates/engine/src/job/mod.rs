//! The life of every job, written once for the CLI, the TUI and job files.
//!
//! ```text
//!   JobSpec ──plan()──▶ Plan ──(front end shows it, asks, makes a WriteConsent)──▶ run() ──▶ Outcome
//! ```
//!
//! 1. **Spec.** A front end translates its input (arguments, keys, a job file step) into a
//!    [`JobSpec`]: backup, restore (disk or partition), clone, copy (into a partition or into free
//!    space) or verify. Nothing is opened yet.
//! 2. **Plan.** [`plan`] reads only. It applies every safety rule
//!    ([`crate::safety::check_write_target`]: not the source, not mounted/held/swap, not the boot
//!    medium, not the drive holding the image, not a file on the source or on Lifeboat's boot
//!    medium), asks the step module (`backup`, `restore`, `clone`, `copy`) for its plan, and
//!    returns a printable [`Plan`] with what is overwritten ([`Target`]: path, identity, range),
//!    notes, warnings and sizes. Everything from disks and images is printed through
//!    `disk::text::printable`, so an image cannot repaint the confirmation prompt.
//! 3. **Consent.** When [`Plan::target`] is set, the front end shows it and makes a
//!    `disk::WriteConsent` from the user's typed "yes" (or `--yes`, or the job file).
//! 4. **Run.** [`run`] re-discovers the disks, checks every refusal again and re-identifies the
//!    target (device number; model, serial and size for disks; a path that now leads elsewhere
//!    is refused), opens it for writing with the consent and checks that the opened object is
//!    the one planned, executes the step with progress and cancellation, re-reads the partition
//!    table, grows the last file system when planned, writes the bad-sector map of a backup
//!    (mode 0600, never through a link) and returns an [`Outcome`]: one [`Status`] the front
//!    ends show the same way, and the report text.
//!
//! Only this module opens a target for writing or writes a partition table on behalf of a front
//! end (`cargo xtask lint` checks it).

pub mod file;
mod plan;
mod receive;
mod run;

pub use plan::{destination_space, plan, FAT_SPLIT};
pub use receive::{
    plan_receive_target, receive, ReceiveTarget, Received, ReportDelivery, StreamFrom,
};
pub use run::{run, run_with_source};

use crate::backup::{BackupOptions, BackupPlan, BackupReport};
use crate::clone::{CloneOptions, ClonePlan};
use crate::copy::CopyPlan;
use crate::error::JobError;
use crate::pipeline::JobReport;
use crate::rescue::BadSectorMap;
use crate::restore::{RestoreOptions, RestorePlan, RestoreReport};
use crate::units::human;
use disk::{BlockDevice, ObjectId, SysRoot};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// The disks a plan was made against, and where to look for them again when it runs.
#[derive(Debug, Clone)]
pub struct Disks {
    root: SysRoot,
    devices: Vec<BlockDevice>,
}

impl Disks {
    /// Discovers every block device under `root`, loop devices included (a loop target is checked
    /// against the file behind it).
    pub fn discover(root: &SysRoot) -> Result<Self, JobError> {
        let opts = disk::DiscoverOptions {
            include_virtual: true,
            open_devices: false,
        };
        Ok(Disks {
            root: root.clone(),
            devices: disk::discover(root, &opts)?,
        })
    }

    /// The devices found.
    pub fn devices(&self) -> &[BlockDevice] {
        &self.devices
    }

    /// Where they were found.
    pub fn root(&self) -> &SysRoot {
        &self.root
    }
}

/// What a front end asks for.
#[derive(Debug, Clone)]
pub enum JobSpec {
    /// A disk or partition into a new image file.
    Backup(BackupSpec),
    /// An image onto a disk, or one of its partitions into a partition.
    Restore(RestoreSpec),
    /// A disk onto a disk.
    Clone(CloneSpec),
    /// A partition into a partition or into free space of a disk.
    Copy(CopySpec),
    /// Every checksum of an image.
    Verify(VerifySpec),
    /// An image arriving as a cast stream onto a disk, restored as it arrives (issue 19).
    Receive(ReceiveSpec),
}

/// A restore from a cast stream (see [`crate::cast`]): always a whole disk.
#[derive(Debug, Clone)]
pub struct ReceiveSpec {
    /// The stream, its metadata already read and checked.
    pub source: crate::cast::CastSource,
    /// The disk or disk image file overwritten.
    pub target: PathBuf,
    pub options: RestoreOptions,
}

/// A backup.
#[derive(Debug, Clone)]
pub struct BackupSpec {
    /// The disk, partition or disk image file read.
    pub source: PathBuf,
    /// The image to create (never overwritten).
    pub image: PathBuf,
    /// Only this partition of a disk.
    pub part: Option<u32>,
    /// Level, split, threads, bad-sector policy. The chunk size follows from `split` (a chunk
    /// never straddles two volumes) and a FAT destination forces 4 GiB volumes.
    pub options: BackupOptions,
    /// Image large unpartitioned areas whole, not only their edges.
    pub all_unpartitioned: bool,
    /// Model and serial for the manifest when discovery does not know the source (image files).
    pub identity: Option<crate::backup::SourceIdentity>,
    /// The passphrase or recovery password of the source's encrypted volumes (issue 16): each
    /// one it unlocks is stored as the ciphertext of its file system's used blocks plus its
    /// headers ([`crate::unlock`]); `None`: encrypted volumes are stored whole.
    pub key: Option<crate::unlock::Key>,
    /// With `key`: store the plaintext file system of each unlocked volume instead of its
    /// ciphertext (`--decrypted`): browsable without the key, and a restore writes it back
    /// unencrypted ([`crate::unlock::open_plaintext`]).
    pub decrypted: bool,
    /// Encrypt the image with this password (see [`crate::backup::Encryption`]).
    pub encryption: Option<crate::backup::Encryption>,
}

/// A restore.
#[derive(Debug, Clone)]
pub struct RestoreSpec {
    /// The image (its first volume).
    pub image: PathBuf,
    /// The disk, partition or file overwritten.
    pub target: PathBuf,
    /// `Some(true)`: the whole disk; `Some(false)`: one partition (`part`); `None`: a partition
    /// when `part` or `into` is given, the image holds no table, or the target is a partition.
    pub whole_disk: Option<bool>,
    /// The image's partition to restore (partition restores; `None`: the only one).
    pub part: Option<u32>,
    /// Restore into partition N of the target (a disk image file).
    pub into: Option<u32>,
    pub options: RestoreOptions,
}

/// A clone.
#[derive(Debug, Clone)]
pub struct CloneSpec {
    pub source: PathBuf,
    pub target: PathBuf,
    pub options: CloneOptions,
}

/// Where a partition copy lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyInto {
    /// The whole target (a partition device or a file).
    Whole,
    /// Partition N of the target (a disk or a disk image file).
    Partition(u32),
    /// The first free space of the target disk large enough, as a new partition.
    FreeSpace,
}

/// A partition copy.
#[derive(Debug, Clone)]
pub struct CopySpec {
    /// A partition device or a file; with `part`, a disk (image file) and its partition N.
    pub source: PathBuf,
    pub part: Option<u32>,
    pub target: PathBuf,
    pub into: CopyInto,
    pub options: CloneOptions,
}

/// An image verification.
#[derive(Debug, Clone)]
pub struct VerifySpec {
    pub image: PathBuf,
    /// Threads (0: one per core).
    pub threads: usize,
}

/// What a confirmation overwrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrites {
    /// A whole disk (or disk image file): table and every partition.
    Disk,
    /// One partition (or a file holding one).
    Partition,
    /// Free space of a disk, and its partition table (a new entry).
    FreeSpace,
}

impl Overwrites {
    /// The words a confirmation puts above the target's identity.
    pub fn warning(self) -> &'static str {
        match self {
            Overwrites::Disk => "EVERYTHING ON THIS DISK",
            Overwrites::Partition => "EVERYTHING ON THIS PARTITION",
            Overwrites::FreeSpace => "FREE SPACE AND THE PARTITION TABLE OF THIS DISK",
        }
    }
}

/// The target a plan writes, as it was when the plan was made.
#[derive(Debug, Clone)]
pub struct Target {
    /// The path the user chose.
    pub path: PathBuf,
    /// How it is named to a person (model, serial, size; or file and size), printable.
    pub identity: String,
    pub overwrites: Overwrites,
    /// The byte range written inside the opened object (a partition of a disk image file).
    pub offset: u64,
    pub len: u64,
    /// Size of the whole object at `path`.
    pub size: u64,
    /// A block device (its table is re-read after writing), not a file.
    pub is_block: bool,
    /// Model and serial of the disk, when it is a block device.
    pub model: Option<String>,
    pub serial: Option<String>,
    object: ObjectId,
    /// For a loop device: the file behind it (device and inode numbers).
    backing: Option<(u64, u64)>,
    /// The sector size to give an image file target (its new table's).
    file_sector_size: Option<u32>,
}

/// The file behind a loop device, as device and inode numbers: a loop device re-attached to
/// another file keeps its own device number.
fn loop_backing(device: Option<&BlockDevice>) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    match &device?.kind {
        disk::DeviceKind::Loop { backing_file } => std::fs::metadata(backing_file)
            .ok()
            .map(|m| (m.dev(), m.ino())),
        _ => None,
    }
}

/// Where a backup's image goes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Destination {
    /// Bytes free for an unprivileged user on the destination's file system.
    pub free: u64,
    /// The destination is FAT: volumes are split at 4 GiB.
    pub fat: bool,
}

/// The step a plan runs, with its own plan.
#[derive(Debug)]
pub enum Steps {
    Backup(Box<BackupPlan>),
    Restore(Box<RestorePlan>),
    Clone(Box<ClonePlan>),
    Copy(Box<CopyPlan>),
    /// A copy into free space: the data, then the new table entry.
    CopyToFreeSpace(Box<FreeSpaceCopy>),
    Verify {
        /// Uncompressed bytes of the stored chunks.
        bytes: u64,
    },
}

/// A partition copy into free space.
#[derive(Debug)]
pub struct FreeSpaceCopy {
    pub copy: CopyPlan,
    /// The target's table with the new partition, written after the data.
    pub table: layout::TablePlan,
    pub number: u32,
    pub start: u64,
    pub size: u64,
}

/// A job ready to be shown and confirmed. Made only by [`plan`].
#[derive(Debug)]
pub struct Plan {
    /// What was asked, normalised (the backup's options as they will be used).
    pub spec: JobSpec,
    /// One line: what the job does.
    pub title: String,
    /// What is overwritten; `None` for backups (a new file) and verification.
    pub target: Option<Target>,
    pub steps: Steps,
    /// Facts the user should know.
    pub notes: Vec<String>,
    /// Facts the user should think about before confirming (another disk's image, …).
    pub warnings: Vec<String>,
    /// Bytes the job reads or writes.
    pub total_bytes: u64,
    /// A backup's destination.
    pub destination: Option<Destination>,
    disks: Disks,
}

impl Plan {
    /// The lines of the plan as shown before confirmation, each made printable.
    pub fn lines(&self) -> Vec<String> {
        let body = match &self.steps {
            Steps::Backup(p) => p.to_string(),
            Steps::Restore(p) => p.to_string(),
            Steps::Clone(p) => p.to_string(),
            Steps::Copy(p) => p.to_string(),
            Steps::CopyToFreeSpace(p) => format!(
                "{}then add partition {} to the table:\n{}",
                p.copy, p.number, p.table
            ),
            Steps::Verify { bytes } => {
                format!("{}\n{} of data to check", self.title, human(*bytes))
            }
        };
        let mut lines: Vec<String> = body
            .lines()
            .map(|l| disk::text::printable(l).into_owned())
            .collect();
        lines.extend(
            self.notes
                .iter()
                .map(|n| format!("note: {}", disk::text::printable(n))),
        );
        lines.extend(
            self.warnings
                .iter()
                .map(|n| format!("warning: {}", disk::text::printable(n))),
        );
        lines
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

/// How a job ended. The front ends show it the same way ([`Status::label`]) and the CLI maps it
/// to its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Everything was done.
    Completed,
    /// Done, but unreadable source sectors were skipped (zeros in their place).
    CompletedWithBadSectors,
    /// The copy is complete and usable, but growing the last file system failed: it keeps its
    /// old size (the partition grew). Skipped sectors, when there are some too, take precedence.
    CompletedGrowFailed,
    /// The user stopped it; [`Outcome::error`] says in what state the target was left.
    Cancelled,
    /// It failed; [`Outcome::error`] says why.
    Failed,
}

impl Status {
    /// How the status is named in reports, the CLI and the TUI.
    pub fn label(self) -> &'static str {
        match self {
            Status::Completed => "OK",
            Status::CompletedWithBadSectors => "OK, with skipped unreadable sectors",
            Status::CompletedGrowFailed => "OK, but growing the file system failed",
            Status::Cancelled => "CANCELLED",
            Status::Failed => "FAILED",
        }
    }

    /// True when the job's data was written completely.
    pub fn is_complete(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::CompletedWithBadSectors | Status::CompletedGrowFailed
        )
    }
}

/// What a step reported, for JSON output.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum StepReport {
    Backup(BackupReport),
    Restore(RestoreReport),
    Copy(JobReport),
    Verify(VerifySummary),
}

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    pub image: PathBuf,
    pub ok: bool,
    pub chunks: u64,
    pub bytes: u64,
    pub bad_chunks: Vec<String>,
    pub structure: Vec<String>,
}

/// How a job ended, with everything the front ends show.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub status: Status,
    /// One line: what was done (or that nothing was).
    pub summary: String,
    /// Facts about the run (table re-read, file system grown, TRIM, …).
    pub notes: Vec<String>,
    /// Why it failed or in what state a cancellation left the target.
    pub error: Option<String>,
    /// Why growing the file system failed ([`Status::CompletedGrowFailed`]).
    pub grow_error: Option<String>,
    /// Unreadable source ranges that were skipped.
    pub bad_sectors: BadSectorMap,
    /// The ddrescue-format map written beside a backup's image when sectors were skipped.
    pub bad_sector_map: Option<PathBuf>,
    /// The step's own report, when it finished.
    pub step: Option<StepReport>,
}

impl Outcome {
    /// The outcome of a job that could not run or did not finish: `Cancelled` for a
    /// cancellation, else `Failed`, with the error's words (a front end that plans again just
    /// before running reports a refusal this way).
    pub fn failed(e: &JobError) -> Self {
        let (status, summary) = match e {
            JobError::Cancelled { .. } => (Status::Cancelled, "cancelled"),
            _ => (Status::Failed, "failed"),
        };
        Outcome {
            status,
            summary: summary.to_string(),
            notes: Vec::new(),
            error: Some(e.to_string()),
            grow_error: None,
            bad_sectors: BadSectorMap::default(),
            bad_sector_map: None,
            step: None,
        }
    }

    /// The report as text: the summary, notes, the bad-sector map and ranges, the error, and the
    /// status line. Every line printable.
    pub fn report(&self) -> String {
        let mut lines = vec![self.summary.clone()];
        if let Some(StepReport::Verify(v)) = &self.step {
            lines.extend(v.bad_chunks.iter().map(|b| format!("BAD: {b}")));
            lines.extend(v.structure.iter().map(|s| format!("BAD: {s}")));
        }
        lines.extend(self.notes.iter().map(|n| format!("note: {n}")));
        if let Some(map) = &self.bad_sector_map {
            lines.push(format!(
                "bad-sector map (ddrescue format): {}",
                map.display()
            ));
        }
        lines.extend(
            self.bad_sectors
                .ranges
                .iter()
                .map(|r| format!("unreadable: {} bytes at byte {}", r.len, r.offset)),
        );
        if let Some(g) = &self.grow_error {
            lines.push(format!(
                "the copy is complete, but growing the file system failed: {g}"
            ));
        }
        if let Some(e) = &self.error {
            lines.push(format!("error: {e}"));
        }
        lines.push(format!("result: {}", self.status.label()));
        let mut text = String::new();
        for l in lines {
            for part in l.lines() {
                text.push_str(&disk::text::printable(part));
                text.push('\n');
            }
        }
        text
    }
}
