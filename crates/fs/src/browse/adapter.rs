//! A `Read + Seek` (and refusing `Write`) cursor over a [`BlockIo`], for the third-party readers.

use std::io::{self, Read, Seek, SeekFrom, Write};

use disk::BlockIo;

/// A position over a [`BlockIo`]. Reads stop at the end of the object; writes are refused.
pub(crate) struct IoCursor {
    io: Box<dyn BlockIo>,
    pos: u64,
}

impl IoCursor {
    pub(crate) fn new(io: Box<dyn BlockIo>) -> IoCursor {
        IoCursor { io, pos: 0 }
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
