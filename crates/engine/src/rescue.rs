//! Reading a source that may have unreadable sectors: retry in smaller pieces, then skip what
//! cannot be read (zeros in its place), record it in a ddrescue-style map, and go on — or stop at
//! the first bad sector with `--strict`.

use crate::error::JobError;
use disk::BlockIo;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::Mutex;

/// A byte range of the source that could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRange {
    pub offset: u64,
    pub len: u64,
}

/// The unreadable ranges of a source, sorted and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadSectorMap {
    pub ranges: Vec<BadRange>,
}

impl BadSectorMap {
    /// Records `[offset, offset+len)` as unreadable.
    pub fn add(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.ranges.push(BadRange { offset, len });
        self.ranges.sort_by_key(|r| r.offset);
        let mut merged: Vec<BadRange> = Vec::with_capacity(self.ranges.len());
        for r in self.ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if last.offset + last.len >= r.offset => {
                    let end = (last.offset + last.len).max(r.offset + r.len);
                    last.len = end - last.offset;
                }
                _ => merged.push(r),
            }
        }
        self.ranges = merged;
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Total unreadable bytes.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.len).sum()
    }

    /// The map in GNU ddrescue's mapfile format over a source of `len` bytes: `+` rescued, `-`
    /// bad sector. Ranges the job did not need to read count as rescued.
    pub fn to_ddrescue(&self, len: u64) -> String {
        let mut out = String::from(
            "# Mapfile. Created by Lifeboat\n# current_pos  current_status  current_pass\n",
        );
        let _ = writeln!(out, "0x{:08X}     +               1", len);
        out.push_str("#      pos        size  status\n");
        let mut pos = 0u64;
        for r in &self.ranges {
            if r.offset > pos {
                let _ = writeln!(out, "0x{pos:08X}  0x{:08X}  +", r.offset - pos);
            }
            let _ = writeln!(out, "0x{:08X}  0x{:08X}  -", r.offset, r.len);
            pos = r.offset + r.len;
        }
        if pos < len {
            let _ = writeln!(out, "0x{pos:08X}  0x{:08X}  +", len - pos);
        }
        out
    }
}

/// What to do with unreadable sectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadPolicy {
    /// Stop at the first unreadable sector instead of skipping it.
    pub strict: bool,
}

/// Pieces tried after a failed large read, before single sectors.
const RETRY_PIECE: usize = 64 * 1024;

/// Reads `buf.len()` bytes at `offset` of `io` under `policy`. Unreadable sectors read as zeros
/// and are added to `bad`; the return value is how many bytes of this read were unreadable.
/// Errors that are not media errors (a vanished device, permissions) stop the job.
pub fn read_rescue(
    io: &dyn BlockIo,
    buf: &mut [u8],
    offset: u64,
    policy: ReadPolicy,
    bad: &Mutex<BadSectorMap>,
) -> Result<u64, JobError> {
    match io.read_at(buf, offset) {
        Ok(()) => Ok(0),
        Err(e) if !disk::is_media_error(&e) => Err(JobError::Read {
            device: io.describe(),
            offset,
            len: buf.len(),
            source: e,
        }),
        Err(_) if policy.strict => Err(first_bad_sector(io, buf, offset)),
        Err(_) => {
            log::warn!(
                "{}: read error at byte {offset}, retrying in smaller pieces",
                io.describe()
            );
            let sector = (io.logical_sector_size().max(512)) as usize;
            let piece = if buf.len() > RETRY_PIECE {
                RETRY_PIECE
            } else {
                sector
            };
            split_read(io, buf, offset, piece, sector, bad)
        }
    }
}

fn split_read(
    io: &dyn BlockIo,
    buf: &mut [u8],
    offset: u64,
    piece: usize,
    sector: usize,
    bad: &Mutex<BadSectorMap>,
) -> Result<u64, JobError> {
    let mut lost = 0u64;
    let mut pos = 0usize;
    while pos < buf.len() {
        // Pieces are aligned to the piece size on the device, so retries hit whole sectors.
        let abs = offset + pos as u64;
        let to_boundary = piece - (abs % piece as u64) as usize;
        let n = to_boundary.min(buf.len() - pos);
        let part = &mut buf[pos..pos + n];
        match io.read_at(part, abs) {
            Ok(()) => {}
            Err(e) if !disk::is_media_error(&e) => {
                return Err(JobError::Read {
                    device: io.describe(),
                    offset: abs,
                    len: n,
                    source: e,
                });
            }
            Err(_) if n > sector => lost += split_read(io, part, abs, sector, sector, bad)?,
            Err(_) => {
                // One retry of a single sector, then give up on it.
                if io.read_at(part, abs).is_err() {
                    part.fill(0);
                    bad.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .add(abs, n as u64);
                    log::warn!(
                        "{}: skipping unreadable sector at byte {abs}",
                        io.describe()
                    );
                    lost += n as u64;
                }
            }
        }
        pos += n;
    }
    Ok(lost)
}

/// Finds the first unreadable sector of a failed read, for the `--strict` error message.
fn first_bad_sector(io: &dyn BlockIo, buf: &mut [u8], offset: u64) -> JobError {
    let sector = (io.logical_sector_size().max(512)) as usize;
    for (i, chunk) in buf.chunks_mut(sector).enumerate() {
        let at = offset + (i * sector) as u64;
        if io.read_at(chunk, at).is_err() {
            return JobError::UnreadableSector {
                device: io.describe(),
                offset: at,
            };
        }
    }
    JobError::UnreadableSector {
        device: io.describe(),
        offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use disk::{FaultyDisk, MemDisk};

    fn disk_with_pattern(len: usize) -> MemDisk {
        MemDisk::from_vec((0..len).map(|i| (i % 251) as u8 + 1).collect(), 512)
    }

    #[test]
    fn bad_sectors_are_zeroed_recorded_and_the_rest_is_read() {
        let inner = disk_with_pattern(1 << 20);
        let faulty = FaultyDisk::new(&inner)
            .with_bad_sectors(300..302)
            .with_bad_sectors(1000..1001);
        let bad = Mutex::new(BadSectorMap::default());
        let mut buf = vec![0u8; 1 << 20];
        let lost = read_rescue(&faulty, &mut buf, 0, ReadPolicy::default(), &bad).unwrap();
        assert_eq!(lost, 3 * 512);
        let map = bad.into_inner().unwrap();
        assert_eq!(
            map.ranges,
            vec![
                BadRange {
                    offset: 300 * 512,
                    len: 1024
                },
                BadRange {
                    offset: 1000 * 512,
                    len: 512
                }
            ]
        );
        let want = inner.to_vec();
        for (i, (&got, &exp)) in buf.iter().zip(want.iter()).enumerate() {
            let sector = (i / 512) as u64;
            if (300..302).contains(&sector) || sector == 1000 {
                assert_eq!(got, 0, "byte {i} of a bad sector");
            } else {
                assert_eq!(got, exp, "byte {i}");
            }
        }
    }

    #[test]
    fn strict_policy_names_the_first_bad_sector() {
        let inner = disk_with_pattern(1 << 16);
        let faulty = FaultyDisk::new(&inner).with_bad_sectors(17..18);
        let bad = Mutex::new(BadSectorMap::default());
        let mut buf = vec![0u8; 1 << 16];
        let err = read_rescue(&faulty, &mut buf, 0, ReadPolicy { strict: true }, &bad).unwrap_err();
        assert!(
            matches!(err, JobError::UnreadableSector { offset, .. } if offset == 17 * 512),
            "{err}"
        );
    }

    #[test]
    fn ddrescue_map_covers_the_whole_source() {
        let mut m = BadSectorMap::default();
        m.add(4096, 512);
        m.add(4608, 512);
        m.add(0, 512);
        assert_eq!(m.bytes(), 1536);
        let text = m.to_ddrescue(8192);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .skip(1)
            .collect();
        assert_eq!(
            rows,
            vec![
                "0x00000000  0x00000200  -",
                "0x00000200  0x00000E00  +",
                "0x00001000  0x00000400  -",
                "0x00001400  0x00000C00  +"
            ]
        );
    }
}
