//! The engine's errors: each variant carries the facts a user needs to act.

use std::io;

/// Why a job stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// An encrypted volume could not be unlocked or mapped with the key given (issue 16).
    #[error("encrypted volume: {problem}")]
    Key { problem: String },
    #[error("reading {len} bytes at byte {offset} of {device}: {source}")]
    Read {
        device: String,
        offset: u64,
        len: usize,
        source: io::Error,
    },
    #[error("writing {len} bytes at byte {offset} of {device}: {source}")]
    Write {
        device: String,
        offset: u64,
        len: usize,
        source: io::Error,
    },
    #[error("flushing {device}: {source}")]
    Flush { device: String, source: io::Error },
    #[error("unreadable sector at byte {offset} of {device} (--strict stops at the first one)")]
    UnreadableSector { device: String, offset: u64 },
    #[error("refusing to write to {device}: {reason}")]
    TargetInUse { device: String, reason: String },
    #[error(
        "refusing to write to {device}: it changed since the plan was made ({what}): plan again"
    )]
    TargetChanged { device: String, what: String },
    #[error("refusing to write to {device}: it is the source")]
    SameDevice { device: String },
    #[error("target {device} is too small: it needs {need} bytes, has {have} ({short} bytes short)", short = need - have)]
    TargetTooSmall {
        device: String,
        need: u64,
        have: u64,
    },
    #[error("{device} has no free space of {need} bytes for the partition (the largest free range has {largest})")]
    NoFreeSpace {
        device: String,
        need: u64,
        largest: u64,
    },
    #[error("{device} has no partition table: {hint}")]
    NoTable { device: String, hint: String },
    #[error("partition {number} not found on {device}")]
    NoSuchPartition { device: String, number: u32 },
    #[error("cancelled: {state}")]
    Cancelled { state: String },
    #[error("verify failed: {len} bytes at byte {offset} of {target} differ from the source")]
    VerifyMismatch {
        target: String,
        offset: u64,
        len: u64,
    },
    #[error("{tool} on {device} failed: {output}")]
    Tool {
        tool: String,
        device: String,
        output: String,
    },
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error("{path}: {problem}")]
    Destination { path: String, problem: String },
    #[error("{image}: {problem}")]
    BadImage { image: String, problem: String },
    /// udp-sender or udp-receiver could not be run (issue 19).
    #[error(transparent)]
    Udp(#[from] crate::cast::udp::UdpError),
    /// A streamed restore stopped before its stream was complete (issue 19).
    #[error("{problem}; the target has no partition table: it is incomplete")]
    StreamIncomplete { problem: String },
    /// A restore stopped part-way (its image became unreadable, e.g. the share's server went
    /// away and did not come back): `state` says what the target holds.
    #[error("{problem}; {state}: the target is incomplete")]
    TargetIncomplete { problem: String, state: String },
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    #[error(transparent)]
    Discover(#[from] disk::DiscoverError),
}
