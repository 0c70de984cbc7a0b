//! exFAT, read by our own code (facts from Microsoft's published exFAT specification): boot
//! region checksum, FAT chains and contiguous (`NoFatChain`) streams, directory entry sets
//! (File 0x85 + Stream Extension 0xC0 + File Name 0xC1, set checksum verified), UTF-16 names,
//! timestamps with 10 ms increments and UTC offsets, `ValidDataLength` (bytes past it read as
//! zeros) and names matched case-insensitively through the volume's up-case table.
//!
//! Every structure is range-checked: chains are bounded by the cluster count and checked for
//! loops, directories are bounded in size, and damaged entry sets are skipped with a warning (the
//! rest of the folder stays listable).

use std::io::Write;
use std::sync::Arc;

use disk::BlockIo;

use super::{
    components, days_from_civil, write_out, BrowseError, Entry, EntryKind, SparseWrite, Timestamp,
    COPY_BUF, MAX_DIR_ENTRIES,
};
use crate::bytes::{le16, le32, le64, u8_at};
use crate::exfat::{read_boot, BootSector};

/// Entry types (in-use bit set).
const ENTRY_END: u8 = 0x00;
const ENTRY_UPCASE: u8 = 0x82;
const ENTRY_LABEL: u8 = 0x83;
const ENTRY_FILE: u8 = 0x85;
const ENTRY_STREAM: u8 = 0xC0;
const ENTRY_NAME: u8 = 0xC1;

/// File attribute: directory.
const ATTR_DIRECTORY: u16 = 0x10;
/// Stream flag: the clusters are contiguous and the FAT is not used.
const FLAG_NO_FAT_CHAIN: u8 = 0x02;

/// The specification caps a directory at 256 MiB.
const MAX_DIR_BYTES: u64 = 256 << 20;
/// The up-case table is at most 128 KiB (65 536 UTF-16 units).
const MAX_UPCASE_BYTES: u64 = 128 << 10;
/// FAT entries end-of-chain and bad-cluster markers.
const FAT_BAD: u32 = 0xFFFF_FFF7;
const FAT_EOC: u32 = 0xFFFF_FFFF;
/// The FAT is read through a cache block of this size.
const FAT_BLOCK: u64 = 64 << 10;

/// Where an object's bytes live.
#[derive(Debug, Clone, Copy)]
struct Stream {
    first_cluster: u32,
    contiguous: bool,
    valid_len: u64,
    /// `None` for the root folder, whose length is its FAT chain's.
    data_len: Option<u64>,
}

/// One object found in a folder (or the root).
#[derive(Debug, Clone)]
struct Node {
    name: String,
    units: Vec<u16>,
    attrs: u16,
    mtime: Option<Timestamp>,
    atime: Option<Timestamp>,
    ctime: Option<Timestamp>,
    stream: Stream,
}

impl Node {
    fn is_dir(&self) -> bool {
        self.attrs & ATTR_DIRECTORY != 0
    }

    fn entry(&self) -> Entry {
        let dir = self.is_dir();
        Entry {
            name: self.name.clone(),
            kind: if dir { EntryKind::Dir } else { EntryKind::File },
            size: if dir {
                0
            } else {
                self.stream.data_len.unwrap_or(0)
            },
            mtime: self.mtime,
            atime: self.atime,
            ctime: self.ctime,
            mode: None,
            uid: None,
            gid: None,
            link_target: None,
        }
    }
}

pub(crate) struct ExfatBrowser {
    io: Box<dyn BlockIo>,
    device: String,
    cluster_size: u64,
    /// Byte offset of the FAT in use.
    fat_offset: u64,
    /// Bytes of the FAT in use.
    fat_len: u64,
    /// Byte offset of cluster 2.
    heap_offset: u64,
    cluster_count: u64,
    root_cluster: u32,
    label: Option<String>,
    /// The volume's up-case table (65 536 units), or empty: then Unicode simple uppercase.
    upcase: Vec<u16>,
    fat_cache: Option<(u64, Vec<u8>)>,
    /// The last folders listed (the file system is read-only): extracting a folder of many
    /// files looks each one up in it.
    dir_cache: Vec<(DirKey, Arc<Vec<Node>>)>,
}

/// What identifies a folder's content.
type DirKey = (u32, bool, Option<u64>);
/// How many folder listings are kept.
const DIR_CACHE: usize = 8;

impl std::fmt::Debug for ExfatBrowser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExfatBrowser")
            .field("device", &self.device)
            .finish()
    }
}

/// The boot checksum over the first 11 sectors of a boot region, skipping `VolumeFlags` and
/// `PercentInUse`.
fn boot_checksum(region: &[u8], sector_size: usize) -> u32 {
    let mut sum = 0u32;
    for (i, &b) in region.iter().take(sector_size * 11).enumerate() {
        if i == 106 || i == 107 || i == 112 {
            continue;
        }
        sum = sum.rotate_right(1).wrapping_add(u32::from(b));
    }
    sum
}

/// Whether the boot region starting at `sector` has a checksum sector that matches.
fn region_ok(io: &dyn BlockIo, sector: u64, sector_size: u64) -> bool {
    let len = (sector_size * 12) as usize;
    let Some(start) = sector.checked_mul(sector_size) else {
        return false;
    };
    if start.saturating_add(len as u64) > io.len() {
        return false;
    }
    let mut buf = vec![0u8; len];
    if io.read_at(&mut buf, start).is_err() {
        return false;
    }
    let ss = sector_size as usize;
    let sum = boot_checksum(&buf, ss);
    // Under `cargo fuzz` the checksum passes, so the fuzzer reaches what lies behind it.
    cfg!(fuzzing)
        || buf
            .get(ss * 11..)
            .is_some_and(|s| s.chunks_exact(4).all(|c| le32(c, 0) == sum))
}

/// The set checksum of a directory entry set, skipping its own field (bytes 2 and 3).
fn set_checksum(set: &[u8]) -> u16 {
    let mut sum = 0u16;
    for (i, &b) in set.iter().enumerate() {
        if i == 2 || i == 3 {
            continue;
        }
        sum = sum.rotate_right(1).wrapping_add(u16::from(b));
    }
    sum
}

/// Decodes a timestamp field with its 10 ms increment and UTC offset byte.
fn timestamp(stamp: u32, inc_10ms: u8, utc_offset: u8) -> Option<Timestamp> {
    let sec2 = stamp & 0x1f;
    let min = (stamp >> 5) & 0x3f;
    let hour = (stamp >> 11) & 0x1f;
    let day = (stamp >> 16) & 0x1f;
    let month = (stamp >> 21) & 0x0f;
    let year = 1980 + i64::from(stamp >> 25);
    if stamp == 0 || sec2 > 29 || min > 59 || hour > 23 || day == 0 || !(1..=12).contains(&month) {
        return None;
    }
    let inc = u32::from(inc_10ms.min(199));
    let mut secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(min) * 60
        + i64::from(sec2) * 2
        + i64::from(inc / 100);
    if utc_offset & 0x80 != 0 {
        // A signed 7-bit count of 15-minute steps; local = UTC + offset.
        let steps = i64::from(((utc_offset << 1) as i8) >> 1);
        secs -= steps * 15 * 60;
    }
    Some(Timestamp {
        secs,
        nanos: (inc % 100) * 10_000_000,
    })
}

/// Unicode simple uppercase of one UTF-16 unit, when no up-case table is available.
fn simple_upper(u: u16) -> u16 {
    let Some(c) = char::from_u32(u32::from(u)) else {
        return u;
    };
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(x), None) => u16::try_from(u32::from(x)).unwrap_or(u),
        _ => u,
    }
}

impl ExfatBrowser {
    pub(crate) fn open(io: Box<dyn BlockIo>) -> Result<ExfatBrowser, BrowseError> {
        let device = io.describe();
        let open_err = |message: String| BrowseError::Open {
            fs: "exfat",
            device: device.clone(),
            message,
        };
        let main = read_boot(io.as_ref()).map_err(|e| open_err(e.to_string()))?;
        let bs: BootSector = match main {
            Some(bs) if region_ok(io.as_ref(), 0, bs.sector_size) => bs,
            found => {
                // The main boot region is damaged: the backup region follows it (sectors 12-23).
                let ss = found.map_or(512, |b| b.sector_size);
                let backup =
                    disk::Window::new(io.as_ref(), 12 * ss, io.len().saturating_sub(12 * ss))
                        .ok()
                        .and_then(|w| read_boot(&w).ok().flatten());
                match backup {
                    Some(bs) if region_ok(io.as_ref(), 12, bs.sector_size) => {
                        log::warn!("{device}: exFAT main boot region damaged, using the backup");
                        bs
                    }
                    _ => {
                        return Err(open_err(
                            "the boot region checksums do not match (main and backup)".to_string(),
                        ))
                    }
                }
            }
        };
        let ss = bs.sector_size;
        let mut fat_offset = bs.fat_offset * ss;
        if bs.flags & 1 != 0 && bs.fats == 2 {
            fat_offset += bs.fat_length * ss;
        }
        let fat_len = bs.fat_length * ss;
        if fat_offset.saturating_add(fat_len) > io.len() {
            return Err(open_err(format!(
                "the FAT ({fat_len} bytes at {fat_offset}) lies past the end of the device"
            )));
        }
        let mut b = ExfatBrowser {
            io,
            device: device.clone(),
            cluster_size: bs.cluster_size,
            fat_offset,
            fat_len,
            heap_offset: bs.cluster_heap_offset * ss,
            cluster_count: bs.cluster_count,
            root_cluster: bs.root_cluster,
            label: None,
            upcase: Vec::new(),
            fat_cache: None,
            dir_cache: Vec::new(),
        };
        let root = b.root_stream();
        let raw = b
            .dir_bytes(&root, "/")
            .map_err(|e| open_err(format!("reading the root folder: {e}")))?;
        let mut upcase = None;
        for e in raw.chunks_exact(32) {
            match u8_at(e, 0) {
                ENTRY_END => break,
                ENTRY_LABEL => {
                    let n = usize::from(u8_at(e, 1).min(11));
                    let units: Vec<u16> = (0..n).map(|i| le16(e, 2 + 2 * i)).collect();
                    let l = String::from_utf16_lossy(&units);
                    b.label = (!l.trim().is_empty()).then(|| l.trim().to_string());
                }
                ENTRY_UPCASE => upcase = Some((le32(e, 20), le64(e, 24))),
                _ => {}
            }
        }
        if let Some((cluster, len)) = upcase {
            match b.load_upcase(cluster, len) {
                Ok(t) => b.upcase = t,
                Err(e) => {
                    log::warn!("{device}: exFAT up-case table unreadable ({e}), using Unicode")
                }
            }
        }
        Ok(b)
    }

    fn root_stream(&self) -> Stream {
        Stream {
            first_cluster: self.root_cluster,
            contiguous: false,
            valid_len: 0,
            data_len: None,
        }
    }

    fn load_upcase(&mut self, cluster: u32, len: u64) -> Result<Vec<u16>, BrowseError> {
        if len == 0 || len > MAX_UPCASE_BYTES || !len.is_multiple_of(2) {
            return Err(self.read_err("/", format!("up-case table of {len} bytes")));
        }
        let s = Stream {
            first_cluster: cluster,
            contiguous: false,
            valid_len: len,
            data_len: Some(len),
        };
        let mut raw = Vec::new();
        self.copy(&s, "/", &mut raw, |_, _| Ok(()))?;
        let units: Vec<u16> = raw.chunks_exact(2).map(|c| le16(c, 0)).collect();
        let mut table: Vec<u16> = (0..=u16::MAX).collect();
        let mut idx = 0usize;
        let mut i = 0usize;
        while idx < table.len() {
            let Some(&u) = units.get(i) else { break };
            match (u, units.get(i + 1)) {
                // Compressed: 0xFFFF then the count of identity-mapped units.
                (0xFFFF, Some(&run)) => {
                    idx += usize::from(run);
                    i += 2;
                }
                _ => {
                    if let Some(t) = table.get_mut(idx) {
                        *t = u;
                    }
                    idx += 1;
                    i += 1;
                }
            }
        }
        Ok(table)
    }

    fn read_err(&self, path: &str, message: String) -> BrowseError {
        BrowseError::Read {
            path: path.to_string(),
            message,
        }
    }

    fn upper(&self, u: u16) -> u16 {
        match self.upcase.get(usize::from(u)) {
            Some(&v) => v,
            None => simple_upper(u),
        }
    }

    fn cluster_offset(&self, c: u32, path: &str) -> Result<u64, BrowseError> {
        let c64 = u64::from(c);
        if c64 < 2 || c64 >= self.cluster_count + 2 {
            return Err(self.read_err(
                path,
                format!(
                    "cluster {c} is outside the volume (2..{}): damaged file system",
                    self.cluster_count + 2
                ),
            ));
        }
        Ok(self.heap_offset + (c64 - 2) * self.cluster_size)
    }

    /// The FAT entry of cluster `c`.
    fn fat_next(&mut self, c: u32, path: &str) -> Result<u32, BrowseError> {
        let off = u64::from(c) * 4;
        if off + 4 > self.fat_len {
            return Err(self.read_err(path, format!("cluster {c} lies past the FAT")));
        }
        let block = off / FAT_BLOCK * FAT_BLOCK;
        let cached = matches!(&self.fat_cache, Some((at, _)) if *at == block);
        if !cached {
            let len = FAT_BLOCK.min(self.fat_len - block);
            let mut buf = vec![0u8; len as usize];
            self.io
                .read_at(&mut buf, self.fat_offset + block)
                .map_err(|e| self.read_err(path, format!("reading the FAT: {e}")))?;
            self.fat_cache = Some((block, buf));
        }
        let within = (off - block) as usize;
        Ok(self.fat_cache.as_ref().map_or(0, |(_, b)| le32(b, within)))
    }

    /// The runs of clusters `(first, count)` holding the first `bytes` of `s` (all of the chain
    /// when `bytes` is `None`), checked against the volume and for loops.
    fn runs(
        &mut self,
        s: &Stream,
        bytes: Option<u64>,
        path: &str,
    ) -> Result<Vec<(u32, u64)>, BrowseError> {
        let need = bytes.map(|b| b.div_ceil(self.cluster_size));
        if need == Some(0) {
            return Ok(Vec::new());
        }
        if need.is_some_and(|n| n > self.cluster_count) {
            return Err(self.read_err(
                path,
                "the file is larger than the volume: damaged file system".to_string(),
            ));
        }
        if s.contiguous {
            let Some(n) = need else {
                return Err(self.read_err(path, "contiguous stream without a length".to_string()));
            };
            let first = u64::from(s.first_cluster);
            if first < 2 || first + n > self.cluster_count + 2 {
                return Err(self.read_err(
                    path,
                    format!(
                        "clusters {first}..{} lie outside the volume: damaged file system",
                        first + n
                    ),
                ));
            }
            return Ok(vec![(s.first_cluster, n)]);
        }
        let mut runs: Vec<(u32, u64)> = Vec::new();
        let mut c = s.first_cluster;
        let mut taken = 0u64;
        loop {
            self.cluster_offset(c, path)?;
            match runs.last_mut() {
                Some((first, n)) if u64::from(*first) + *n == u64::from(c) => *n += 1,
                _ => runs.push((c, 1)),
            }
            taken += 1;
            if need == Some(taken) {
                break;
            }
            if need.is_none() && taken.saturating_mul(self.cluster_size) > MAX_DIR_BYTES {
                // Only folders are read without a length: a chain longer than any folder may be
                // is damage, and following it to the end could take billions of steps.
                return Err(self.read_err(
                    path,
                    format!("the folder's cluster chain is longer than {MAX_DIR_BYTES} bytes"),
                ));
            }
            if taken > self.cluster_count {
                return Err(self.read_err(
                    path,
                    "the cluster chain loops: damaged file system".to_string(),
                ));
            }
            let next = self.fat_next(c, path)?;
            match next {
                FAT_EOC if need.is_none() => break,
                FAT_EOC => {
                    return Err(self.read_err(
                        path,
                        format!(
                        "the cluster chain ends after {taken} clusters of {}: damaged file system",
                        need.unwrap_or(0)
                    ),
                    ))
                }
                FAT_BAD => {
                    return Err(self.read_err(
                        path,
                        format!("the cluster chain runs into bad cluster marker after cluster {c}"),
                    ))
                }
                n => c = n,
            }
        }
        // A loop revisits a cluster: two runs overlap.
        let mut sorted = runs.clone();
        sorted.sort_unstable();
        for w in sorted.windows(2) {
            if let [(a, n), (b, _)] = w {
                if u64::from(*a) + *n > u64::from(*b) {
                    return Err(self.read_err(
                        path,
                        format!("the cluster chain loops back to cluster {b}: damaged file system"),
                    ));
                }
            }
        }
        Ok(runs)
    }

    /// Streams the stored bytes of `s` (up to its valid length) into `out`, then calls `tail`
    /// with the count of zero bytes past the valid length. Returns the bytes written.
    fn copy(
        &mut self,
        s: &Stream,
        path: &str,
        out: &mut dyn Write,
        mut tail: impl FnMut(&mut dyn Write, u64) -> Result<(), BrowseError>,
    ) -> Result<u64, BrowseError> {
        let len = s.data_len.unwrap_or(0);
        if len / self.cluster_size > self.cluster_count {
            return Err(self.read_err(
                path,
                format!("length {len} is larger than the volume: damaged file system"),
            ));
        }
        let valid = s.valid_len.min(len);
        let runs = self.runs(s, Some(valid), path)?;
        let mut buf = vec![0u8; COPY_BUF.min(usize::try_from(valid).unwrap_or(COPY_BUF))];
        let mut done = 0u64;
        for (first, count) in runs {
            let mut at = self.cluster_offset(first, path)?;
            let mut left = (count * self.cluster_size).min(valid - done);
            while left > 0 {
                let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                let dst = buf.get_mut(..n).unwrap_or_default();
                self.io
                    .read_at(dst, at)
                    .map_err(|e| self.read_err(path, format!("reading at byte {at}: {e}")))?;
                write_out(out, dst, path)?;
                at += n as u64;
                left -= n as u64;
                done += n as u64;
            }
        }
        tail(out, len - valid)?;
        Ok(len)
    }

    /// The bytes of a folder.
    fn dir_bytes(&mut self, s: &Stream, path: &str) -> Result<Vec<u8>, BrowseError> {
        let len = match s.data_len {
            Some(l) if l > MAX_DIR_BYTES => {
                return Err(self.read_err(path, format!("folder of {l} bytes: damaged file system")))
            }
            Some(l) => l,
            None => {
                let runs = self.runs(s, None, path)?;
                let clusters: u64 = runs.iter().map(|r| r.1).sum();
                let l = clusters.saturating_mul(self.cluster_size);
                if l > MAX_DIR_BYTES {
                    return Err(self.read_err(path, format!("root folder of {l} bytes")));
                }
                l
            }
        };
        let s = Stream {
            valid_len: len,
            data_len: Some(len),
            ..*s
        };
        let mut out = Vec::new();
        self.copy(&s, path, &mut out, |_, _| Ok(()))?;
        Ok(out)
    }

    /// The objects of a folder, in directory order; damaged entry sets are skipped (logged).
    fn list(&mut self, s: &Stream, path: &str) -> Result<Arc<Vec<Node>>, BrowseError> {
        let key = (s.first_cluster, s.contiguous, s.data_len);
        if let Some((_, nodes)) = self.dir_cache.iter().find(|(k, _)| *k == key) {
            return Ok(Arc::clone(nodes));
        }
        let nodes = Arc::new(self.list_uncached(s, path)?);
        if self.dir_cache.len() >= DIR_CACHE {
            self.dir_cache.remove(0);
        }
        self.dir_cache.push((key, Arc::clone(&nodes)));
        Ok(nodes)
    }

    fn list_uncached(&mut self, s: &Stream, path: &str) -> Result<Vec<Node>, BrowseError> {
        let raw = self.dir_bytes(s, path)?;
        let mut out = Vec::new();
        let mut i = 0usize;
        while let Some(e) = raw.get(i..i + 32) {
            let t = u8_at(e, 0);
            if t == ENTRY_END {
                break;
            }
            if t != ENTRY_FILE {
                i += 32;
                continue;
            }
            let count = usize::from(u8_at(e, 1));
            let set_len = (count + 1) * 32;
            let Some(set) = raw.get(i..i + set_len) else {
                log::warn!(
                    "{}: {path}: entry set at byte {i} is cut by the end of the folder",
                    self.device
                );
                break;
            };
            match self.parse_set(set) {
                Ok(node) => {
                    out.push(node);
                    i += set_len;
                }
                Err(why) => {
                    log::warn!(
                        "{}: {path}: damaged entry set at byte {i} skipped ({why})",
                        self.device
                    );
                    i += 32;
                }
            }
        }
        Ok(out)
    }

    fn parse_set(&self, set: &[u8]) -> Result<Node, &'static str> {
        let count = set.len() / 32 - 1;
        if !(2..=18).contains(&count) {
            return Err("secondary count out of range");
        }
        if set_checksum(set) != le16(set, 2) && !cfg!(fuzzing) {
            return Err("set checksum mismatch");
        }
        let stream = set.get(32..64).ok_or("no stream extension")?;
        if u8_at(stream, 0) != ENTRY_STREAM {
            return Err("the second entry is not a stream extension");
        }
        let name_len = usize::from(u8_at(stream, 3));
        if name_len == 0 || name_len.div_ceil(15) > count - 1 {
            return Err("name length does not fit the set");
        }
        let mut units = Vec::with_capacity(name_len);
        for k in 0..name_len.div_ceil(15) {
            let ne = set
                .get(64 + k * 32..96 + k * 32)
                .ok_or("name entry missing")?;
            if u8_at(ne, 0) != ENTRY_NAME {
                return Err("a name entry is missing");
            }
            for j in 0..15 {
                if units.len() < name_len {
                    units.push(le16(ne, 2 + 2 * j));
                }
            }
        }
        let attrs = le16(set, 4);
        let flags = u8_at(stream, 1);
        let valid_len = le64(stream, 8);
        let data_len = le64(stream, 24);
        if valid_len > data_len {
            return Err("valid data length exceeds the data length");
        }
        let mut first_cluster = le32(stream, 20);
        if flags & 1 == 0 {
            // No allocation: an empty stream.
            first_cluster = 0;
            if data_len != 0 {
                return Err("data without allocation");
            }
        }
        Ok(Node {
            name: String::from_utf16_lossy(&units),
            units,
            attrs,
            ctime: timestamp(le32(set, 8), u8_at(set, 20), u8_at(set, 22)),
            mtime: timestamp(le32(set, 12), u8_at(set, 21), u8_at(set, 23)),
            atime: timestamp(le32(set, 16), 0, u8_at(set, 24)),
            stream: Stream {
                first_cluster,
                contiguous: flags & FLAG_NO_FAT_CHAIN != 0,
                valid_len,
                data_len: Some(data_len),
            },
        })
    }

    /// The object a path names (`None` for the root).
    fn find(&mut self, path: &str) -> Result<Option<Node>, BrowseError> {
        self.find_chain(path).map(|(n, _)| n)
    }

    /// Like [`ExfatBrowser::find`], also returning the first cluster of every folder from the
    /// root down to the object (itself included).
    fn find_chain(&mut self, path: &str) -> Result<(Option<Node>, Vec<u32>), BrowseError> {
        let parts = components(path)?;
        let mut dir = self.root_stream();
        let mut chain = vec![dir.first_cluster];
        let mut found = None;
        for (k, part) in parts.iter().enumerate() {
            let want: Vec<u16> = part.encode_utf16().collect();
            let nodes = self.list(&dir, path)?;
            let folded: Vec<u16> = want.iter().map(|&u| self.upper(u)).collect();
            let hit = nodes.iter().position(|n| n.units == want).or_else(|| {
                nodes.iter().position(|n| {
                    n.units.len() == folded.len()
                        && n.units
                            .iter()
                            .zip(&folded)
                            .all(|(&a, &b)| self.upper(a) == b)
                })
            });
            let Some(node) = hit.and_then(|h| nodes.get(h)).cloned() else {
                return Err(BrowseError::NotFound {
                    path: path.to_string(),
                });
            };
            if k + 1 < parts.len() && !node.is_dir() {
                return Err(BrowseError::NotADirectory {
                    path: path.to_string(),
                });
            }
            dir = node.stream;
            chain.push(dir.first_cluster);
            found = Some(node);
        }
        Ok((found, chain))
    }
}

impl super::Browser for ExfatBrowser {
    fn fs_name(&self) -> &'static str {
        "exfat"
    }

    fn label(&self) -> Option<String> {
        self.label.clone()
    }

    fn read_dir(&mut self, path: &str) -> Result<Vec<Entry>, BrowseError> {
        // The first cluster of every folder from the root down to this one: a folder entry
        // pointing at one of them loops, and is left out so a recursive walk ends.
        let (found, chain) = self.find_chain(path)?;
        let stream = match found {
            None => self.root_stream(),
            Some(n) if n.is_dir() => n.stream,
            Some(_) => {
                return Err(BrowseError::NotADirectory {
                    path: path.to_string(),
                })
            }
        };
        let nodes = self.list(&stream, path)?;
        let mut out = Vec::new();
        for n in nodes.iter() {
            if n.is_dir() && chain.contains(&n.stream.first_cluster) {
                log::warn!(
                    "{}: {path}: folder entry {:?} points back to cluster {}, this folder or a \
                     parent; skipped",
                    self.device,
                    n.name,
                    n.stream.first_cluster
                );
                continue;
            }
            if out.len() >= MAX_DIR_ENTRIES {
                log::warn!(
                    "{}: {path}: more than {MAX_DIR_ENTRIES} entries; listing the first ones",
                    self.device
                );
                break;
            }
            out.push(n.entry());
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn metadata(&mut self, path: &str) -> Result<Entry, BrowseError> {
        Ok(match self.find(path)? {
            None => Entry::dir("/"),
            Some(n) => n.entry(),
        })
    }

    fn read_file(&mut self, path: &str, out: &mut dyn Write) -> Result<u64, BrowseError> {
        let node = self.file(path)?;
        self.copy(&node.stream, path, out, |out, mut zeros| {
            let buf = vec![0u8; COPY_BUF.min(usize::try_from(zeros).unwrap_or(COPY_BUF))];
            while zeros > 0 {
                let n = usize::try_from(zeros.min(buf.len() as u64)).unwrap_or(buf.len());
                write_out(out, buf.get(..n).unwrap_or_default(), path)?;
                zeros -= n as u64;
            }
            Ok(())
        })
    }

    fn read_file_sparse(
        &mut self,
        path: &str,
        out: &mut dyn SparseWrite,
    ) -> Result<u64, BrowseError> {
        let node = self.file(path)?;
        let len = node.stream.data_len.unwrap_or(0);
        let valid = node.stream.valid_len.min(len);
        let head = Stream {
            data_len: Some(valid),
            ..node.stream
        };
        self.copy(&head, path, out.as_write(), |_, _| Ok(()))?;
        out.hole(len - valid)
            .map_err(|source| BrowseError::Output {
                path: path.to_string(),
                source,
            })?;
        Ok(len)
    }

    fn read_link(&mut self, path: &str) -> Result<String, BrowseError> {
        self.find(path)?;
        Err(BrowseError::NotASymlink {
            path: path.to_string(),
        })
    }
}

impl ExfatBrowser {
    fn file(&mut self, path: &str) -> Result<Node, BrowseError> {
        match self.find(path)? {
            Some(n) if !n.is_dir() => Ok(n),
            _ => Err(BrowseError::NotAFile {
                path: path.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_decode_fields_increment_and_offset() {
        // 2024-02-29 13:45:58 local, +1.37 s, UTC+02:00 (8 steps of 15 minutes).
        let stamp = ((2024 - 1980) << 25) | (2 << 21) | (29 << 16) | (13 << 11) | (45 << 5) | 29;
        let t = timestamp(stamp, 137, 0x80 | 8);
        let utc = days_from_civil(2024, 2, 29) * 86_400 + 11 * 3600 + 45 * 60 + 59;
        assert_eq!(
            t,
            Some(Timestamp {
                secs: utc,
                nanos: 370_000_000
            })
        );
        // A negative offset (UTC-05:00 = -20 steps) moves the other way.
        let t = timestamp(stamp, 0, 0x80 | (0x80 - 20));
        assert_eq!(t.map(|t| t.secs), Some(utc - 1 + 2 * 3600 + 5 * 3600));
        assert_eq!(timestamp(0, 0, 0), None);
        assert_eq!(timestamp(stamp | (13 << 21), 0, 0), None);
    }

    #[test]
    fn set_checksum_skips_its_own_field() {
        let mut set = vec![0u8; 96];
        set[0] = ENTRY_FILE;
        set[5] = 7;
        let a = set_checksum(&set);
        set[2] = 0xAB;
        set[3] = 0xCD;
        assert_eq!(set_checksum(&set), a);
        set[40] = 1;
        assert_ne!(set_checksum(&set), a);
    }

    #[test]
    fn simple_upper_maps_letters_only() {
        assert_eq!(simple_upper(u16::from(b'a')), u16::from(b'A'));
        assert_eq!(simple_upper(0x00E9), 0x00C9);
        assert_eq!(simple_upper(u16::from(b'1')), u16::from(b'1'));
        assert_eq!(simple_upper(0xD800), 0xD800);
    }
}
