//! The `BlockIo` seam: positioned reads and writes over a disk, a partition, a file or memory.

use std::io;
use std::sync::RwLock;

/// Positioned access to a disk-like object (a block device, a disk image file, a partition
/// window, an in-memory disk).
///
/// All methods take `&self` so that several threads can read one source in parallel (`pread`/
/// `pwrite` semantics). Offsets and lengths are in bytes.
pub trait BlockIo: Send + Sync {
    /// Size in bytes.
    fn len(&self) -> u64;

    /// True when the object has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Logical sector size in bytes (512 or 4096): the unit of LBAs in partition tables.
    fn logical_sector_size(&self) -> u32;

    /// Physical sector size in bytes: the unit in which the medium really reads and writes.
    fn physical_sector_size(&self) -> u32 {
        self.logical_sector_size()
    }

    /// Reads exactly `buf.len()` bytes at `offset`. Reading past the end is an
    /// [`io::ErrorKind::UnexpectedEof`] error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Writes all of `buf` at `offset`. Writing past the end is an error; read-only objects return
    /// [`io::ErrorKind::PermissionDenied`].
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes written data durable (fsync / BLKFLSBUF as appropriate).
    fn flush(&self) -> io::Result<()>;

    /// Tells the medium that a byte range is no longer in use (TRIM / punch hole). Returns
    /// `Ok(false)` when the object cannot discard; the range's content is then unchanged.
    fn discard(&self, offset: u64, len: u64) -> io::Result<bool> {
        let _ = (offset, len);
        Ok(false)
    }

    /// A short human name for messages: a path, `memory`, `/dev/sda[1048576..]`.
    fn describe(&self) -> String;
}

macro_rules! forward_block_io {
    ($($ty:ty),*) => {$(
        impl<T: BlockIo + ?Sized> BlockIo for $ty {
            fn len(&self) -> u64 {
                (**self).len()
            }
            fn is_empty(&self) -> bool {
                (**self).is_empty()
            }
            fn logical_sector_size(&self) -> u32 {
                (**self).logical_sector_size()
            }
            fn physical_sector_size(&self) -> u32 {
                (**self).physical_sector_size()
            }
            fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
                (**self).read_at(buf, offset)
            }
            fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
                (**self).write_at(buf, offset)
            }
            fn flush(&self) -> io::Result<()> {
                (**self).flush()
            }
            fn discard(&self, offset: u64, len: u64) -> io::Result<bool> {
                (**self).discard(offset, len)
            }
            fn describe(&self) -> String {
                (**self).describe()
            }
        }
    )*};
}

// A reference, a box or an `Arc` of a `BlockIo` is a `BlockIo` too, so wrappers such as
// `FaultyDisk<&FileDisk>` and shared `Arc<dyn BlockIo>` sources work without glue.
forward_block_io!(&T, Box<T>, std::sync::Arc<T>);

/// True when `err` is what a failing medium reports for an unreadable or unwritable sector
/// (`EIO`, or `ENODATA`/`EILSEQ` from some drivers). Such errors are worth retrying in smaller
/// pieces and then skipping; others (permission, a vanished device) are not.
pub fn is_media_error(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(nix::libc::EIO | nix::libc::ENODATA | nix::libc::EILSEQ)
    )
}

/// Checks that `[offset, offset+len)` lies inside an object of `size` bytes.
pub(crate) fn check_range(size: u64, offset: u64, len: usize, what: &str) -> io::Result<()> {
    let end = offset.checked_add(len as u64);
    match end {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{what}: range {offset}+{len} is past the end ({size} bytes)"),
        )),
    }
}

/// An in-memory disk, for tests and for staging small structures.
#[derive(Debug)]
pub struct MemDisk {
    data: RwLock<Vec<u8>>,
    sector: u32,
    read_only: bool,
}

impl MemDisk {
    /// A zero-filled disk of `len` bytes with the given logical sector size.
    pub fn new(len: usize, sector: u32) -> Self {
        Self::from_vec(vec![0; len], sector)
    }

    /// A disk holding `data`.
    pub fn from_vec(data: Vec<u8>, sector: u32) -> Self {
        MemDisk {
            data: RwLock::new(data),
            sector,
            read_only: false,
        }
    }

    /// The same disk, refusing writes.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// A copy of the current content.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl BlockIo for MemDisk {
    fn len(&self) -> u64 {
        self.data.read().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    fn logical_sector_size(&self) -> u32 {
        self.sector
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        check_range(data.len() as u64, offset, buf.len(), "memory disk")?;
        let start = offset as usize;
        buf.copy_from_slice(&data[start..start + buf.len()]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "memory disk is read-only",
            ));
        }
        let mut data = self.data.write().unwrap_or_else(|e| e.into_inner());
        check_range(data.len() as u64, offset, buf.len(), "memory disk")?;
        let start = offset as usize;
        data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}

/// A byte range of another `BlockIo`, seen as an object of its own (a partition of a disk).
#[derive(Debug, Clone, Copy)]
pub struct Window<'a, T: BlockIo + ?Sized> {
    inner: &'a T,
    start: u64,
    len: u64,
}

impl<'a, T: BlockIo + ?Sized> Window<'a, T> {
    /// The range `[start, start+len)` of `inner`. Fails when the range is not inside `inner`.
    pub fn new(inner: &'a T, start: u64, len: u64) -> io::Result<Self> {
        match start.checked_add(len) {
            Some(end) if end <= inner.len() => Ok(Window { inner, start, len }),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: range {start}+{len} is past the end ({} bytes)",
                    inner.describe(),
                    inner.len()
                ),
            )),
        }
    }

    /// Offset of the window inside the underlying object.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl<T: BlockIo + ?Sized> BlockIo for Window<'_, T> {
    fn len(&self) -> u64 {
        self.len
    }

    fn logical_sector_size(&self) -> u32 {
        self.inner.logical_sector_size()
    }

    fn physical_sector_size(&self) -> u32 {
        self.inner.physical_sector_size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.len, offset, buf.len(), &self.describe())?;
        self.inner.read_at(buf, self.start + offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(self.len, offset, buf.len(), &self.describe())?;
        self.inner.write_at(buf, self.start + offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<bool> {
        check_range(self.len, offset, len as usize, &self.describe())?;
        self.inner.discard(self.start + offset, len)
    }

    fn describe(&self) -> String {
        format!(
            "{}[{}..{}]",
            self.inner.describe(),
            self.start,
            self.start + self.len
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_reads_inside_and_refuses_past_end() {
        let disk = MemDisk::from_vec((0..=255u8).cycle().take(4096).collect(), 512);
        let w = Window::new(&disk, 1000, 100).unwrap();
        let mut b = [0u8; 4];
        w.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [232, 233, 234, 235]);
        assert_eq!(
            w.read_at(&mut b, 98).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert!(Window::new(&disk, 4000, 100).is_err());
    }

    #[test]
    fn read_only_memory_disk_refuses_writes() {
        let disk = MemDisk::new(1024, 512).read_only();
        let err = disk.write_at(&[1], 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(disk.to_vec(), vec![0; 1024]);
    }
}
