//! The engine: jobs over disks and images, shared by the CLI and the TUI.
//!
//! Today it inspects disks and image files (what table, which partitions, which file systems).
//! Every job that writes builds a printable plan first and writes only to targets that passed the
//! safety checks. It must not know about terminals, arguments or output formats (that is `cli` and
//! `tui`), and it reaches disks only through `disk::BlockIo`.

pub mod inspect;

pub use inspect::{inspect, inspect_io, Content, DiskReport, InspectError, PartitionReport};
