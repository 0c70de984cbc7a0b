//! The used-block map ([`UsedMap`]), its errors ([`MapError`]) and the entry point [`used_map`].

use crate::probe::{FsInfo, FsKind, ProbeError};
use crate::{btrfs, exfat, ext, fat, lvm, ntfs, xfs};
use disk::BlockIo;
use std::io;
use std::ops::Range;

/// The most units (bits) a map may have; larger partitions get a coarser unit. 2^30 bits is a
/// 128 MiB bitmap: a 4 TiB partition at 4 KiB per bit.
const MAX_UNITS: u64 = 1 << 30;

/// Which bytes of a partition the file system needs, at a granularity of `unit` bytes per bit.
///
/// Bit `i` (bit `i % 64` of word `i / 64`) covers bytes `[i*unit, (i+1)*unit)` of the partition,
/// the last unit being cut at `len`. Marking is conservative: a unit is used when any byte of it
/// is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedMap {
    unit: u32,
    len: u64,
    bits: Vec<u64>,
}

impl UsedMap {
    /// An all-free map of a `len`-byte partition. `unit` must be a power of two; it is doubled
    /// until the map has at most 2^30 bits.
    pub fn new(unit: u32, len: u64) -> Result<Self, MapError> {
        if !unit.is_power_of_two() {
            return Err(MapError::BadUnit { unit });
        }
        let mut unit = u64::from(unit);
        while len.div_ceil(unit) > MAX_UNITS {
            unit *= 2;
        }
        let unit = u32::try_from(unit).map_err(|_| MapError::BadUnit { unit: u32::MAX })?;
        let units = len.div_ceil(u64::from(unit));
        Ok(UsedMap {
            unit,
            len,
            bits: vec![0; units.div_ceil(64) as usize],
        })
    }

    /// A map from stored words (as [`UsedMap::words`] returned them). Bits past the end are
    /// ignored.
    pub fn from_words(unit: u32, len: u64, mut words: Vec<u64>) -> Result<Self, MapError> {
        if !unit.is_power_of_two() {
            return Err(MapError::BadUnit { unit });
        }
        let units = len.div_ceil(u64::from(unit));
        let need = units.div_ceil(64);
        if words.len() as u64 != need {
            return Err(MapError::WordCount {
                have: words.len() as u64,
                need,
            });
        }
        if units % 64 != 0 {
            if let Some(last) = words.last_mut() {
                *last &= (1u64 << (units % 64)) - 1;
            }
        }
        Ok(UsedMap {
            unit,
            len,
            bits: words,
        })
    }

    /// Bytes per bit.
    pub fn unit(&self) -> u32 {
        self.unit
    }

    /// Bytes covered (the partition size).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for a map of an empty partition.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of units (bits).
    pub fn units(&self) -> u64 {
        self.len.div_ceil(u64::from(self.unit))
    }

    /// The bitmap words, bit `i % 64` of word `i / 64` for unit `i`.
    pub fn words(&self) -> &[u64] {
        &self.bits
    }

    /// Whether the unit holding byte `offset` is used (`false` past the end).
    pub fn is_used(&self, offset: u64) -> bool {
        offset < self.len && self.unit_used(offset / u64::from(self.unit))
    }

    fn unit_used(&self, i: u64) -> bool {
        self.bits
            .get((i / 64) as usize)
            .is_some_and(|w| w >> (i % 64) & 1 != 0)
    }

    /// Marks the units touching `[offset, offset+len)` used; the part past the end is ignored.
    pub fn mark(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len).min(self.len);
        if offset >= end {
            return;
        }
        let unit = u64::from(self.unit);
        self.mark_units(offset / unit, (end - 1) / unit + 1);
    }

    /// Marks units `[first, end)` used (clipped to the map).
    pub(crate) fn mark_units(&mut self, first: u64, end: u64) {
        let end = end.min(self.units());
        let mut i = first;
        while i < end {
            let w = (i / 64) as usize;
            let bit = i % 64;
            let n = (64 - bit).min(end - i);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            if let Some(word) = self.bits.get_mut(w) {
                *word |= mask;
            }
            i += n;
        }
    }

    /// For every set bit `i < limit` of `bitmap` (least significant bit first), marks bytes
    /// `[base + i*size, base + (i+1)*size)`. Returns the number of set bits below `limit`.
    pub(crate) fn mark_bitmap(&mut self, bitmap: &[u8], limit: u64, base: u64, size: u64) -> u64 {
        let mut set = 0u64;
        let mut run: Option<u64> = None;
        let limit = limit.min(bitmap.len() as u64 * 8);
        let mut i = 0u64;
        while i < limit {
            let byte = bitmap.get((i / 8) as usize).copied().unwrap_or(0);
            // Whole bytes of zeros or ones at once.
            if i.is_multiple_of(8) && i + 8 <= limit && (byte == 0 || byte == 0xFF) {
                if byte == 0 {
                    if let Some(s) = run.take() {
                        self.mark(base + s * size, (i - s) * size);
                    }
                } else {
                    set += 8;
                    run.get_or_insert(i);
                }
                i += 8;
                continue;
            }
            if byte >> (i % 8) & 1 != 0 {
                set += 1;
                run.get_or_insert(i);
            } else if let Some(s) = run.take() {
                self.mark(base + s * size, (i - s) * size);
            }
            i += 1;
        }
        if let Some(s) = run {
            self.mark(base + s * size, (limit - s) * size);
        }
        set
    }

    /// Number of used units among `[first, end)`.
    pub(crate) fn count_units(&self, first: u64, end: u64) -> u64 {
        let end = end.min(self.units());
        let mut n = 0;
        let mut i = first;
        while i < end {
            let bit = i % 64;
            let take = (64 - bit).min(end - i);
            let word = self.bits.get((i / 64) as usize).copied().unwrap_or(0) >> bit;
            let mask = if take == 64 {
                u64::MAX
            } else {
                (1u64 << take) - 1
            };
            n += u64::from((word & mask).count_ones());
            i += take;
        }
        n
    }

    /// Marks everything used (the fallback when a file system cannot be mapped).
    pub fn mark_all(&mut self) {
        let units = self.units();
        self.mark_units(0, units);
    }

    /// Number of used units.
    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Used bytes (the last unit counted only up to `len`).
    pub fn used_bytes(&self) -> u64 {
        self.ranges().map(|r| r.end - r.start).sum()
    }

    /// The used byte ranges, merged and in order, the last one cut at `len`.
    pub fn ranges(&self) -> Ranges<'_> {
        Ranges { map: self, next: 0 }
    }

    /// The first unit in `[from, limit)` that is used (`used`) or free (`!used`); `limit` (at
    /// most [`units`]) when there is none. Skips 64 units per step over runs.
    ///
    /// [`units`]: UsedMap::units
    pub fn next_with(&self, from: u64, used: bool, limit: u64) -> u64 {
        let units = self.units().min(limit);
        let mut i = from;
        while i < units {
            let w = (i / 64) as usize;
            let word = self.bits.get(w).copied().unwrap_or(0);
            let word = if used { word } else { !word };
            let rest = word >> (i % 64);
            if rest != 0 {
                return (i + u64::from(rest.trailing_zeros())).min(units);
            }
            i = (w as u64 + 1) * 64;
        }
        units
    }
}

/// Iterator over the used byte ranges of a [`UsedMap`].
#[derive(Debug)]
pub struct Ranges<'a> {
    map: &'a UsedMap,
    next: u64,
}

impl Iterator for Ranges<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        let start = self.map.next_with(self.next, true, u64::MAX);
        if start >= self.map.units() {
            self.next = start;
            return None;
        }
        let end = self.map.next_with(start, false, u64::MAX);
        self.next = end;
        let unit = u64::from(self.map.unit);
        Some(start * unit..(end * unit).min(self.map.len))
    }
}

/// Why a used-block map could not be built. The caller then images the whole partition.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("reading {len} bytes at offset {offset} of {device}: {source}")]
    Read {
        device: String,
        offset: u64,
        len: usize,
        source: io::Error,
    },
    #[error("{device}: no {kind} superblock found any more")]
    NotRecognised { device: String, kind: FsKind },
    #[error("{kind}: used-block maps are not supported for this kind, image the whole partition")]
    Unsupported { kind: FsKind },
    #[error(
        "{device}: {kind} claims {fs_bytes} bytes but the partition holds only {partition_bytes}"
    )]
    LargerThanPartition {
        device: String,
        kind: FsKind,
        fs_bytes: u64,
        partition_bytes: u64,
    },
    #[error("{device}: {kind} {state}: its allocation maps may be stale, check it first")]
    NeedsCheck {
        device: String,
        kind: FsKind,
        state: String,
    },
    #[error("{device}: block bitmap of group {group} fails its checksum (stored {stored:#x}, computed {computed:#x})")]
    BitmapChecksum {
        device: String,
        group: u64,
        stored: u32,
        computed: u32,
    },
    #[error("{device}: {what}: the bitmap says {bitmap_free} free, the file system records {recorded_free}")]
    FreeCountMismatch {
        device: String,
        what: String,
        bitmap_free: u64,
        recorded_free: u64,
    },
    #[error("{device}: FAT entry of cluster {cluster} is {value:#x}, outside the volume")]
    FatEntryOutOfRange {
        device: String,
        cluster: u64,
        value: u32,
    },
    #[error("{device}: {what}")]
    Corrupt { device: String, what: String },
    /// A layout this version maps only as a whole (several devices, an external log, ...);
    /// `reason` names the file system, e.g. `multi-device btrfs (2 devices)`.
    #[error("{device}: {reason}: imaged whole")]
    ImagedWhole {
        device: String,
        kind: FsKind,
        reason: String,
    },
    #[error("unit of {unit} bytes per bit is not a power of two")]
    BadUnit { unit: u32 },
    #[error("stored map has {have} words, a map of this size needs {need}")]
    WordCount { have: u64, need: u64 },
}

impl From<ProbeError> for MapError {
    fn from(e: ProbeError) -> Self {
        match e {
            ProbeError::Read {
                device,
                offset,
                len,
                source,
            } => MapError::Read {
                device,
                offset,
                len,
                source,
            },
        }
    }
}

impl MapError {
    pub(crate) fn corrupt(io: &dyn BlockIo, what: impl Into<String>) -> Self {
        MapError::Corrupt {
            device: io.describe(),
            what: what.into(),
        }
    }
}

/// Fails with [`MapError::LargerThanPartition`] when the file system claims more bytes than `io`
/// holds (the map could not describe what is missing).
pub(crate) fn check_fits(io: &dyn BlockIo, kind: FsKind, fs_bytes: u64) -> Result<(), MapError> {
    if fs_bytes > io.len() {
        return Err(MapError::LargerThanPartition {
            device: io.describe(),
            kind,
            fs_bytes,
            partition_bytes: io.len(),
        });
    }
    Ok(())
}

/// Reads exactly `len` bytes at `offset`; a range outside `io` is a [`MapError::Corrupt`].
pub(crate) fn read(
    io: &dyn BlockIo,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>, MapError> {
    match offset.checked_add(len) {
        Some(end) if end <= io.len() => {}
        _ => {
            return Err(MapError::corrupt(
                io,
                format!("{what} at {offset}+{len} lies past the end of the partition"),
            ))
        }
    }
    // The range lies on the device, but a sparse device can be terabytes: allocate fallibly.
    let n = usize::try_from(len).unwrap_or(usize::MAX);
    let mut buf = Vec::new();
    buf.try_reserve_exact(n).map_err(|_| {
        MapError::corrupt(io, format!("{what} of {len} bytes does not fit in memory"))
    })?;
    buf.resize(n, 0);
    io.read_at(&mut buf, offset)
        .map_err(|source| MapError::Read {
            device: io.describe(),
            offset,
            len: len as usize,
            source,
        })?;
    Ok(buf)
}

/// Builds the map of the bytes the file system described by `info` (from [`crate::probe`]) needs.
///
/// Everything the file system needs to be mounted and checked is included: boot sectors,
/// superblocks and their backups, descriptors, allocation tables and bitmaps, inode tables,
/// journals, and every allocated block. Structures that do not add up (checksums, free counts,
/// entries outside the volume) are errors, never a map that could leave data out.
pub fn used_map(io: &dyn BlockIo, info: &FsInfo) -> Result<UsedMap, MapError> {
    check_fits(io, info.kind, info.size)?;
    let map = match info.kind {
        FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => ext::used_map(io, info.kind)?,
        FsKind::Vfat => fat::used_map(io)?,
        FsKind::Exfat => exfat::used_map(io)?,
        FsKind::Ntfs => ntfs::used_map(io)?,
        FsKind::Xfs => xfs::used_map(io)?,
        FsKind::Btrfs => btrfs::used_map(io)?,
        FsKind::Swap => swap_map(io, info)?,
        FsKind::Swsuspend => {
            // A hibernation image: every page may be data.
            let mut map = UsedMap::new(info.block_size.max(4096), io.len())?;
            map.mark_all();
            map
        }
        FsKind::Lvm2Member => lvm::used_map(io)?,
        kind => return Err(MapError::Unsupported { kind }),
    };
    log::debug!(
        "{}: {} uses {} of {} bytes ({} units of {})",
        io.describe(),
        info.kind,
        map.used_bytes(),
        map.len(),
        map.count(),
        map.unit()
    );
    Ok(map)
}

/// Swap: only the header page is data.
fn swap_map(io: &dyn BlockIo, info: &FsInfo) -> Result<UsedMap, MapError> {
    let page = info.block_size.max(4096);
    let mut map = UsedMap::new(page, io.len())?;
    map.mark(0, u64::from(page));
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_neighbours_and_cut_the_last_unit() {
        let mut m = UsedMap::new(4096, 10 * 4096 + 100).unwrap_or_else(|e| panic!("{e}"));
        m.mark(0, 1);
        m.mark(4096, 8192);
        m.mark(5 * 4096 + 7, 1);
        m.mark(10 * 4096, 1);
        let r: Vec<_> = m.ranges().collect();
        assert_eq!(
            r,
            vec![0..3 * 4096, 5 * 4096..6 * 4096, 10 * 4096..10 * 4096 + 100]
        );
        assert_eq!(m.count(), 5);
        assert_eq!(m.used_bytes(), 4 * 4096 + 100);
        assert!(m.is_used(2 * 4096 + 5) && !m.is_used(3 * 4096) && !m.is_used(1 << 40));
    }

    #[test]
    fn mark_all_covers_exactly_the_partition() {
        let mut m = UsedMap::new(512, 200 * 512 + 1).unwrap_or_else(|e| panic!("{e}"));
        m.mark_all();
        assert_eq!(m.used_bytes(), 200 * 512 + 1);
        assert_eq!(m.count(), 201);
        let again = UsedMap::from_words(512, m.len(), m.words().to_vec());
        assert_eq!(again.ok(), Some(m));
    }

    #[test]
    fn huge_partitions_get_a_coarser_unit() {
        let m = UsedMap::new(512, 1 << 50).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.units() <= MAX_UNITS);
        assert_eq!(m.unit(), 1 << 20);
    }

    #[test]
    fn bitmaps_mark_runs_of_set_bits() {
        let mut m = UsedMap::new(1, 100).unwrap_or_else(|e| panic!("{e}"));
        let set = m.mark_bitmap(&[0b1000_0110, 0xFF, 0x00, 0x01], 25, 10, 2);
        assert_eq!(set, 12);
        assert_eq!(m.ranges().collect::<Vec<_>>(), vec![12..16, 24..42, 58..60]);
    }

    #[test]
    fn long_marks_span_words() {
        let mut m = UsedMap::new(1, 1000).unwrap_or_else(|e| panic!("{e}"));
        m.mark(3, 500);
        assert_eq!(m.ranges().collect::<Vec<_>>(), vec![3..503]);
        m.mark(990, 1000);
        assert_eq!(m.used_bytes(), 510);
    }
}
