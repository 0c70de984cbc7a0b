//! Serving a borrowed device for the length of one call: the FUSE session needs a `'static`
//! file system, so it holds a relay that passes each request over a channel to a scoped thread
//! owning the borrow. When the call returns, the file is unmounted and the relay closed: a
//! request that still arrives fails with `EIO`, never touches the device.

use crate::{mount_with, VdevError};
use disk::BlockIo;
use std::io;
use std::path::Path;
use std::sync::mpsc::{channel, sync_channel, Sender, SyncSender};
use std::sync::{Arc, Mutex};

enum Request {
    Read(u64, usize, SyncSender<io::Result<Vec<u8>>>),
    Write(u64, Vec<u8>, SyncSender<io::Result<()>>),
    Flush(SyncSender<io::Result<()>>),
}

/// The `'static` stand-in for the borrowed device.
struct Relay {
    to: Arc<Mutex<Option<Sender<Request>>>>,
    len: u64,
    sector: u32,
    physical: u32,
    name: String,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the served device was closed")
}

impl Relay {
    fn ask<T>(&self, make: impl FnOnce(SyncSender<io::Result<T>>) -> Request) -> io::Result<T> {
        let (tx, rx) = sync_channel(1);
        {
            let guard = self.to.lock().map_err(|_| closed())?;
            let to = guard.as_ref().ok_or_else(closed)?;
            to.send(make(tx)).map_err(|_| closed())?;
        }
        rx.recv().map_err(|_| closed())?
    }
}

impl BlockIo for Relay {
    fn len(&self) -> u64 {
        self.len
    }

    fn logical_sector_size(&self) -> u32 {
        self.sector
    }

    fn physical_sector_size(&self) -> u32 {
        self.physical
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let data = self.ask(|tx| Request::Read(offset, buf.len(), tx))?;
        if data.len() != buf.len() {
            return Err(closed());
        }
        buf.copy_from_slice(&data);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.ask(|tx| Request::Write(offset, buf.to_vec(), tx))
    }

    fn flush(&self) -> io::Result<()> {
        self.ask(Request::Flush)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Serves `io` at the existing regular file `file` (read-write when `writable`), calls `f` with
/// the file's path, then unmounts the file and returns what `f` returned. `io` is used only
/// while `f` runs.
pub fn serve_scoped<R>(
    io: &dyn BlockIo,
    file: &Path,
    name: &str,
    writable: bool,
    f: impl FnOnce(&Path) -> R,
) -> Result<R, VdevError> {
    let (tx, rx) = channel::<Request>();
    let to = Arc::new(Mutex::new(Some(tx)));
    let relay = Relay {
        to: Arc::clone(&to),
        len: io.len(),
        sector: io.logical_sector_size(),
        physical: io.physical_sector_size(),
        name: io.describe(),
    };
    std::thread::scope(|s| {
        s.spawn(move || {
            for req in rx {
                // A reply nobody waits for any more is dropped.
                match req {
                    Request::Read(offset, len, reply) => {
                        let mut buf = vec![0u8; len];
                        let _ = reply.send(io.read_at(&mut buf, offset).map(|()| buf));
                    }
                    Request::Write(offset, data, reply) => {
                        let _ = reply.send(io.write_at(&data, offset));
                    }
                    Request::Flush(reply) => {
                        let _ = reply.send(io.flush());
                    }
                }
            }
        });
        let close = || {
            if let Ok(mut g) = to.lock() {
                g.take();
            }
        };
        let server = match mount_with(Arc::new(relay), file, name, writable) {
            Ok(s) => s,
            Err(e) => {
                close();
                return Err(e);
            }
        };
        let bg = match server.spawn() {
            Ok(bg) => bg,
            Err(e) => {
                close();
                return Err(e);
            }
        };
        let out = f(file);
        let stopped = bg.stop();
        close();
        stopped.map(|()| out)
    })
}
