//! [`FaultyDisk`]: a [`BlockIo`] wrapper with bad sectors, to test how engines handle read errors.

use crate::blockio::BlockIo;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// Wraps a [`BlockIo`] and fails every read that touches one of the configured bad sectors with
/// `EIO`, the way a failing drive does (the whole request fails, not only the bad sector).
/// Writes, flushes and discards go through unchanged.
///
/// Sectors are counted in the inner object's logical sector size.
///
/// ```
/// use disk::{BlockIo, FaultyDisk, MemDisk};
/// let disk = FaultyDisk::new(MemDisk::new(8192, 512)).with_bad_sectors(3..5);
/// let mut buf = [0u8; 512];
/// assert!(disk.read_at(&mut buf, 0).is_ok());
/// assert!(disk::is_media_error(&disk.read_at(&mut buf, 1024 + 1000).unwrap_err()));
/// ```
#[derive(Debug)]
pub struct FaultyDisk<T> {
    inner: T,
    bad: Vec<Range<u64>>,
    failed_reads: AtomicU64,
}

impl<T: BlockIo> FaultyDisk<T> {
    /// A wrapper with no bad sectors yet.
    pub fn new(inner: T) -> Self {
        FaultyDisk {
            inner,
            bad: Vec::new(),
            failed_reads: AtomicU64::new(0),
        }
    }

    /// Adds the half-open range of logical sectors `sectors` to the bad ones.
    pub fn with_bad_sectors(mut self, sectors: Range<u64>) -> Self {
        if sectors.start < sectors.end {
            self.bad.push(sectors);
        }
        self
    }

    /// The bad sector ranges, as configured.
    pub fn bad_sectors(&self) -> &[Range<u64>] {
        &self.bad
    }

    /// How many reads have failed so far.
    pub fn failed_reads(&self) -> u64 {
        self.failed_reads.load(Ordering::Relaxed)
    }

    /// The wrapped object.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// Unwraps the inner object.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// True when the byte range `[offset, offset+len)` touches a bad sector.
    fn touches_bad(&self, offset: u64, len: u64) -> bool {
        if len == 0 {
            return false;
        }
        let sector = u64::from(self.inner.logical_sector_size().max(1));
        let first = offset / sector;
        let last = offset.saturating_add(len - 1) / sector;
        self.bad.iter().any(|r| r.start <= last && first < r.end)
    }
}

impl<T: BlockIo> BlockIo for FaultyDisk<T> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn logical_sector_size(&self) -> u32 {
        self.inner.logical_sector_size()
    }

    fn physical_sector_size(&self) -> u32 {
        self.inner.physical_sector_size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if self.touches_bad(offset, buf.len() as u64) {
            self.failed_reads.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::from_raw_os_error(nix::libc::EIO));
        }
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<bool> {
        self.inner.discard(offset, len)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
