//! The engine: jobs over disks and images, shared by the CLI and the TUI.
//!
//! Jobs: inspection (what a disk or file holds), clone (disk to disk) and partition copy; each
//! writing job builds a printable plan first ([`clone::plan_clone`]), passes the safety checks
//! ([`safety::check_target`]) and then executes with progress events, cancellation and the
//! bad-sector policy ([`rescue`]). It must not know about terminals, arguments or output formats
//! (that is `cli` and `tui`), and it reaches disks only through `disk::BlockIo`.

pub mod backup;
pub mod clone;
pub mod copy;
pub mod error;
pub mod extract;
pub mod grow;
pub mod inspect;
pub mod progress;
pub mod rescue;
pub mod restore;
pub mod safety;
pub mod units;

pub use error::JobError;
pub use inspect::{inspect, inspect_io, Content, DiskReport, InspectError, PartitionReport};
pub use progress::{Cancel, Progress, ProgressSink};
