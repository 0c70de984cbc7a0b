//! A copy-on-write device for shrinking a file system in place on its smaller target:
//!
//! ```text
//!   byte 0                      head_len                                 len
//!   |── head: the target window ──|── tail: base (read-only) + overlay ──|
//! ```
//!
//! Reads and writes below `head_len` go to the head (the real target partition). Above it, reads
//! come from the overlay where something was written, else from the base (the image's stream
//! or the read-only source partition, at the same offset); writes go into the overlay, in
//! [`BLOCK`]-sized copies, first in memory, then in an unlinked spill file, both bounded
//! ([`OverlayLimits`]). A write that would pass the bounds fails with
//! `io::ErrorKind::StorageFull`: the tool running on the device fails cleanly, memory never runs
//! out. The base is never written.

use disk::BlockIo;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// Granularity of the overlay.
pub const BLOCK: u64 = 4096;

/// Bounds of an [`Overlay`].
#[derive(Debug, Clone)]
pub struct OverlayLimits {
    /// Bytes kept in memory.
    pub memory: u64,
    /// Folder of the spill file (created unlinked); `None`: no spilling.
    pub spill_dir: Option<PathBuf>,
    /// Bytes the spill file may reach.
    pub spill: u64,
}

impl Default for OverlayLimits {
    /// 64 MiB in memory, no spill file.
    fn default() -> Self {
        OverlayLimits {
            memory: 64 << 20,
            spill_dir: None,
            spill: 0,
        }
    }
}

#[derive(Debug)]
enum Slot {
    Memory(Box<[u8]>),
    Spilled(u64),
}

#[derive(Debug, Default)]
struct Store {
    /// Tail block number (from `head_len`) to its copy.
    blocks: BTreeMap<u64, Slot>,
    memory: u64,
    spill: Option<File>,
    spilled: u64,
}

/// The copy-on-write device; see the module documentation.
pub struct Overlay<'a> {
    head: &'a dyn BlockIo,
    base: &'a dyn BlockIo,
    head_len: u64,
    limits: OverlayLimits,
    store: Mutex<Store>,
}

impl std::fmt::Debug for Overlay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("head", &self.head.describe())
            .field("base", &self.base.describe())
            .field("head_len", &self.head_len)
            .finish()
    }
}

fn poisoned() -> io::Error {
    io::Error::other("the overlay's lock was poisoned by a failed request")
}

impl<'a> Overlay<'a> {
    /// A device of `base.len()` bytes whose first `head.len()` bytes are `head`.
    pub fn new(
        head: &'a dyn BlockIo,
        base: &'a dyn BlockIo,
        limits: OverlayLimits,
    ) -> io::Result<Self> {
        if head.len() > base.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the head {} ({} bytes) is longer than the device {} ({} bytes)",
                    head.describe(),
                    head.len(),
                    base.describe(),
                    base.len()
                ),
            ));
        }
        Ok(Overlay {
            head,
            base,
            head_len: head.len(),
            limits,
            store: Mutex::new(Store::default()),
        })
    }

    /// Bytes held by the overlay (memory and spill file).
    pub fn overlay_bytes(&self) -> u64 {
        self.store
            .lock()
            .map(|s| s.blocks.len() as u64 * BLOCK)
            .unwrap_or(0)
    }

    /// Bytes of the overlay in the spill file.
    pub fn spilled_bytes(&self) -> u64 {
        self.store.lock().map(|s| s.spilled).unwrap_or(0)
    }

    /// The byte range of tail block `b`, clipped to the device.
    fn block_range(&self, b: u64) -> (u64, u64) {
        let s = self.head_len + b * BLOCK;
        (s, (s + BLOCK).min(self.base.len()))
    }

    fn read_tail(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let store = self.store.lock().map_err(|_| poisoned())?;
        let mut pos = 0usize;
        while pos < buf.len() {
            let at = offset + pos as u64;
            let b = (at - self.head_len) / BLOCK;
            let (bs, be) = self.block_range(b);
            let n = ((be - at) as usize).min(buf.len() - pos);
            let within = (at - bs) as usize;
            match store.blocks.get(&b) {
                Some(Slot::Memory(data)) => {
                    buf[pos..pos + n].copy_from_slice(&data[within..within + n]);
                    pos += n;
                }
                Some(Slot::Spilled(off)) => {
                    let f = store.spill.as_ref().ok_or_else(poisoned)?;
                    f.read_exact_at(&mut buf[pos..pos + n], off + within as u64)?;
                    pos += n;
                }
                None => {
                    // The whole run of blocks the overlay does not hold, in one read of the
                    // base (a tool's 1 MiB read is one read of the image's stream, not 256).
                    let mut end = pos + n;
                    let mut next = b + 1;
                    while end < buf.len() && !store.blocks.contains_key(&next) {
                        let (_, ne) = self.block_range(next);
                        end = ((ne - offset) as usize).min(buf.len());
                        next += 1;
                    }
                    self.base.read_at(&mut buf[pos..end], at)?;
                    pos = end;
                }
            }
        }
        Ok(())
    }

    fn write_tail(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut store = self.store.lock().map_err(|_| poisoned())?;
        let mut pos = 0usize;
        while pos < buf.len() {
            let at = offset + pos as u64;
            let b = (at - self.head_len) / BLOCK;
            let (bs, be) = self.block_range(b);
            let n = ((be - at) as usize).min(buf.len() - pos);
            let within = (at - bs) as usize;
            let piece = &buf[pos..pos + n];
            if !store.blocks.contains_key(&b) {
                // A block written whole needs nothing of the base.
                let copy = if n as u64 == be - bs {
                    piece.to_vec()
                } else {
                    let mut copy = vec![0u8; (be - bs) as usize];
                    self.base.read_at(&mut copy, bs)?;
                    copy[within..within + n].copy_from_slice(piece);
                    copy
                };
                let slot = if store.memory + BLOCK <= self.limits.memory {
                    store.memory += BLOCK;
                    Slot::Memory(copy.into_boxed_slice())
                } else {
                    self.spill_block(&mut store, &copy)?
                };
                store.blocks.insert(b, slot);
                pos += n;
                continue;
            }
            match store.blocks.get_mut(&b) {
                Some(Slot::Memory(data)) => data[within..within + n].copy_from_slice(piece),
                Some(Slot::Spilled(off)) => {
                    let off = *off;
                    let f = store.spill.as_ref().ok_or_else(poisoned)?;
                    f.write_all_at(piece, off + within as u64)?;
                }
                None => return Err(poisoned()),
            }
            pos += n;
        }
        Ok(())
    }

    fn spill_block(&self, store: &mut Store, copy: &[u8]) -> io::Result<Slot> {
        let full = || {
            io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "the copy-on-write overlay over {} is full ({} in memory, {} spilled)",
                    self.base.describe(),
                    self.limits.memory,
                    self.limits.spill
                ),
            )
        };
        let Some(dir) = &self.limits.spill_dir else {
            return Err(full());
        };
        if store.spilled + BLOCK > self.limits.spill {
            return Err(full());
        }
        if store.spill.is_none() {
            store.spill = Some(unlinked_file(dir)?);
        }
        let f = store.spill.as_ref().ok_or_else(poisoned)?;
        let off = store.spilled;
        f.write_all_at(copy, off)?;
        store.spilled += BLOCK;
        Ok(Slot::Spilled(off))
    }
}

/// A new file in `dir` that has no name (`O_TMPFILE`), so nothing is left behind.
fn unlinked_file(dir: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_TMPFILE.bits())
        .open(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("spill file in {}: {e}", dir.display())))
}

fn out_of_range(offset: u64, len: usize, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{len} bytes at {offset} lie beyond the overlay device of {size} bytes"),
    )
}

impl BlockIo for Overlay<'_> {
    fn len(&self) -> u64 {
        self.base.len()
    }

    fn logical_sector_size(&self) -> u32 {
        self.head.logical_sector_size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len())
            .ok_or_else(|| out_of_range(offset, buf.len(), self.len()))?;
        let split = self.head_len.clamp(offset, end);
        let (head, tail) = buf.split_at_mut((split - offset) as usize);
        if !head.is_empty() {
            self.head.read_at(head, offset)?;
        }
        if !tail.is_empty() {
            self.read_tail(tail, split)?;
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len())
            .ok_or_else(|| out_of_range(offset, buf.len(), self.len()))?;
        let split = self.head_len.clamp(offset, end);
        let (head, tail) = buf.split_at((split - offset) as usize);
        if !head.is_empty() {
            self.head.write_at(head, offset)?;
        }
        if !tail.is_empty() {
            self.write_tail(tail, split)?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.head.flush()
    }

    fn describe(&self) -> String {
        format!(
            "{} with the rest of {} copy-on-write",
            self.head.describe(),
            self.base.describe()
        )
    }
}
