//! A `Read + Seek` (and refusing `Write`) cursor over a [`BlockIo`], for the third-party readers.
//!
//! The third-party readers follow cluster chains and index trees as the volume describes them:
//! a chain that loops makes them read forever. The cursor therefore carries a work budget
//! ([`Meter`]) that the browser sets before each call; reading past it fails with an error the
//! reader passes up, so every call ends. The meter also records the first offset read since it
//! was marked, which identifies a folder (the first sector of its entries) for loop checks.

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use disk::BlockIo;

/// Each read costs at least this many bytes of budget (a loop of tiny reads must end too).
const MIN_CHARGE: u64 = 512;

/// The work budget and first-read probe shared by a cursor and its browser.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    left: Cell<u64>,
    first_read: Cell<Option<u64>>,
}

impl Meter {
    /// Allows `bytes` more bytes of reads (each read costing at least 512).
    pub(crate) fn budget(&self, bytes: u64) {
        self.left.set(bytes);
    }

    /// Forgets the first offset read, so [`Meter::first_read`] reports the next read.
    pub(crate) fn mark(&self) {
        self.first_read.set(None);
    }

    /// The offset of the first read since [`Meter::mark`].
    pub(crate) fn first_read(&self) -> Option<u64> {
        self.first_read.get()
    }
}

/// A position over a [`BlockIo`]. Reads stop at the end of the object; writes are refused.
pub(crate) struct IoCursor {
    io: Box<dyn BlockIo>,
    pos: u64,
    meter: Rc<Meter>,
}

impl IoCursor {
    /// A cursor with an unlimited budget until the browser sets one.
    pub(crate) fn new(io: Box<dyn BlockIo>) -> IoCursor {
        let meter = Rc::new(Meter::default());
        meter.budget(u64::MAX);
        IoCursor { io, pos: 0, meter }
    }

    /// The meter of this cursor (kept by the browser to set budgets).
    pub(crate) fn meter(&self) -> Rc<Meter> {
        Rc::clone(&self.meter)
    }
}

impl std::fmt::Debug for IoCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IoCursor({} at {})", self.io.describe(), self.pos)
    }
}

impl Read for IoCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.io.len();
        if self.pos >= len || buf.is_empty() {
            return Ok(0);
        }
        let n = usize::try_from((len - self.pos).min(buf.len() as u64)).unwrap_or(buf.len());
        let cost = (n as u64).max(MIN_CHARGE);
        let left = self.meter.left.get();
        if left < cost {
            return Err(io::Error::other(format!(
                "{}: stopped reading at byte {}: the structures loop or are implausibly large \
                 (work budget spent)",
                self.io.describe(),
                self.pos
            )));
        }
        self.meter.left.set(left - cost);
        if self.meter.first_read.get().is_none() {
            self.meter.first_read.set(Some(self.pos));
        }
        let dst = buf.get_mut(..n).unwrap_or_default();
        self.io.read_at(dst, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for IoCursor {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.io.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: seek before the start", self.io.describe()),
            )),
        }
    }
}

impl Write for IoCursor {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: browsing is read-only", self.io.describe()),
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
