//! The engine: jobs over disks and images, shared by the CLI and the TUI.
//!
//! Start at [`job`]: it owns the life of every job — [`job::plan`] turns a [`job::JobSpec`] into a
//! printable [`job::Plan`] after every safety check, and [`job::run`] executes a confirmed plan
//! (re-checking the target, opening it, running the step, re-reading the table, growing the file
//! system, writing the bad-sector map) and returns an [`job::Outcome`]. The front ends only
//! translate input into a `JobSpec` and present the `Plan` and the `Outcome`.
//!
//! The steps a job runs, one module each: [`backup`] (disk or partition → image), [`restore`]
//! (image → disk or partition), [`clone`] (disk → disk), [`copy`] (partition → partition or into
//! free space), [`grow`] (the file system of a grown last partition), [`shrink`] (file systems
//! shrunk onto a smaller target), [`extract`] (files out of a file system). Underneath: [`safety`]
//! (which targets may be written), [`unlock`] (the ciphertext map of an encrypted volume opened
//! read-only with its key), [`pipeline`] (what a
//! partition's copy reads, and the reader/writer pipeline), [`rescue`] (the bad-sector policy),
//! [`blockmap`] (the used byte runs of a block map), [`progress`] (events and cancellation),
//! [`inspect`] (what a disk or file holds), [`md`] (an assembled md RAID array and its members) and [`units`] (human sizes). The engine knows nothing
//! of terminals, arguments or output formats, and reaches disks only through `disk::BlockIo`.

pub mod backup;
pub mod blockmap;
pub mod cast;
pub mod clone;
pub mod copy;
pub mod error;
mod exfatcopy;
pub mod extract;
mod fatcopy;
mod fsmount;
pub mod grow;
pub mod inspect;
pub mod job;
pub mod keys;
pub mod md;
pub mod pipeline;
pub mod progress;
pub mod rescue;
pub mod restore;
pub mod safety;
pub mod shrink;
pub mod units;
pub mod unlock;
pub mod verify;
mod xfscopy;

pub use error::JobError;
pub use inspect::{
    inspect, inspect_io, lvm_volumes, Content, DiskReport, InspectError, LvmVolume, PartitionReport,
};
pub use progress::{Cancel, Progress, ProgressSink};
