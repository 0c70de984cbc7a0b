//! Shrinking a FAT file system by rebuilding it: a fresh FAT of the same type, volume serial and
//! label on the smaller target partition, and every folder and file of the source copied into
//! it with its long names and file times (short names are made afresh; attributes are not kept).
//! FAT12, FAT16 and FAT32 alike; a FAT12 stays below 4085 clusters by taking larger ones when
//! needed. No external tool (fatresize is fragile and not in the boot image); the FAT code is
//! the `fatfs` crate.
//!
//! The source is read through a cursor that refuses writes; its structures are untrusted, so the
//! walk is bounded (folder depth, entry count, bytes copied).

use crate::error::JobError;
use crate::shrink::ShrinkStep;
use disk::BlockIo;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Deepest folder nesting copied.
const MAX_DEPTH: usize = 128;
/// Most entries copied (files and folders).
const MAX_ENTRIES: u64 = 4_000_000;

/// A position over a [`BlockIo`]; writes pass through unless `read_only`.
struct Cursor<'a> {
    io: &'a dyn BlockIo,
    pos: u64,
    read_only: bool,
}

impl Read for Cursor<'_> {
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

impl Write for Cursor<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is read-only", self.io.describe()),
            ));
        }
        let len = self.io.len();
        if self.pos >= len && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("writing past the end of {}", self.io.describe()),
            ));
        }
        let n = usize::try_from((len - self.pos).min(buf.len() as u64)).unwrap_or(buf.len());
        self.io.write_at(&buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.read_only {
            Ok(())
        } else {
            self.io.flush()
        }
    }
}

impl Seek for Cursor<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.io.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let p = new.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: seek before the start", self.io.describe()),
            )
        })?;
        self.pos = p;
        Ok(p)
    }
}

fn fail(step: &ShrinkStep, head: &dyn BlockIo, what: String) -> JobError {
    JobError::Tool {
        tool: "FAT copy".into(),
        device: format!("partition {} of {}", step.number, head.describe()),
        output: what,
    }
}

/// The FAT serial as `mkfs.vfat -i` takes it, from blkid's `XXXX-XXXX`.
fn serial(uuid: &str) -> Option<u32> {
    u32::from_str_radix(&uuid.replace('-', ""), 16).ok()
}

/// The 11-byte label field (spaces padded; "NO NAME" when empty).
fn label_field(label: &str) -> [u8; 11] {
    let mut out = *b"NO NAME    ";
    if !label.is_empty() {
        out = [b' '; 11];
        for (o, b) in out.iter_mut().zip(label.bytes()) {
            *o = b;
        }
    }
    out
}

/// Most clusters a FAT12 has (fewer than 4085), with room for the reserved and FAT sectors.
const FAT12_MAX_CLUSTERS: u64 = 4_085 - 16;

/// Cluster size for `fat_type` on `size` bytes: the source's when the type stays valid with it,
/// else the largest smaller power of two that keeps the cluster count in the type's range (for
/// FAT12, whose count has a ceiling, the smallest larger one).
fn cluster_size(fat_type: fatfs::FatType, size: u64, source: u32) -> u32 {
    let min_clusters: u64 = match fat_type {
        fatfs::FatType::Fat32 => 65_525,
        fatfs::FatType::Fat16 => 4_085,
        fatfs::FatType::Fat12 => 1,
    };
    let mut c = source.clamp(512, 64 * 1024);
    if fat_type == fatfs::FatType::Fat12 {
        while c < 64 * 1024 && size / u64::from(c) > FAT12_MAX_CLUSTERS {
            c *= 2;
        }
        return c;
    }
    while c > 512 && size / u64::from(c) < min_clusters + 1024 {
        c /= 2;
    }
    c
}

/// Bytes of one FAT entry times two (FAT12 entries are a byte and a half).
fn entry_bytes_x2(fat_type: fatfs::FatType) -> u64 {
    match fat_type {
        fatfs::FatType::Fat12 => 3,
        fatfs::FatType::Fat16 => 4,
        fatfs::FatType::Fat32 => 8,
    }
}

/// The root folder's entry count of a FAT12/16 (boot sector bytes 17..19); 0 for FAT32.
fn root_entries(io: &dyn BlockIo) -> io::Result<u16> {
    let mut bpb = [0u8; 512];
    io.read_at(&mut bpb, 0)?;
    Ok(u16::from_le_bytes([bpb[17], bpb[18]]))
}

/// The smallest partition a rebuild of the FAT on `base` fits in: the bytes of its used
/// clusters (folders included) and a tenth more, the boot sectors, the fixed root folder of a
/// FAT12/16, two FATs for that size, 64 KiB to spare; no less than a FAT of the same type can
/// be (a FAT16 needs 4085 clusters, a FAT32 65 525, [`cluster_size`] keeps 1024 more). Read
/// from the boot sector and the first FAT directly (every non-zero entry is a used cluster).
/// `None` when the boot sector is implausible or the FAT cannot be read.
pub(crate) fn minimum(base: &dyn BlockIo) -> Option<u64> {
    let mut b = [0u8; 512];
    base.read_at(&mut b, 0).ok()?;
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let u32_at = |o: usize| u64::from(u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]));
    let (bps, spc, reserved, fats) = (u16_at(11), u64::from(b[13]), u16_at(14), u64::from(b[16]));
    let root_entries = u16_at(17);
    let total = match u16_at(19) {
        0 => u32_at(32),
        n => n,
    };
    let fat_sectors = match u16_at(22) {
        0 => u32_at(36),
        n => n,
    };
    if !matches!(bps, 512 | 1024 | 2048 | 4096) || !spc.is_power_of_two() || fats == 0 {
        return None;
    }
    let cluster = bps * spc;
    let root = (root_entries * 32).div_ceil(bps) * bps;
    let data_start = (reserved + fats * fat_sectors) * bps + root;
    let clusters = (total * bps).checked_sub(data_start)? / cluster;
    let fat_type = match clusters {
        0..4_085 => fatfs::FatType::Fat12,
        4_085..65_525 => fatfs::FatType::Fat16,
        _ => fatfs::FatType::Fat32,
    };
    // Count the used entries of the first FAT, 1 MiB at a time.
    let fat_at = reserved * bps;
    let fat_len = (clusters + 2)
        .saturating_mul(entry_bytes_x2(fat_type))
        .div_ceil(2);
    if fat_len > fat_sectors * bps || fat_at + fat_len > base.len() {
        return None;
    }
    let mut used = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut carry: Vec<u8> = Vec::new();
    let mut index = 0u64; // next FAT entry to count
    let mut at = 0u64;
    while at < fat_len {
        let n = (fat_len - at).min(1 << 20) as usize;
        base.read_at(&mut buf[..n], fat_at + at).ok()?;
        at += n as u64;
        carry.extend_from_slice(&buf[..n]);
        let mut consumed = 0usize;
        loop {
            let (value, width) = match fat_type {
                fatfs::FatType::Fat32 => (
                    carry
                        .get(consumed..consumed + 4)
                        .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]) & 0x0FFF_FFFF),
                    4,
                ),
                fatfs::FatType::Fat16 => (
                    carry
                        .get(consumed..consumed + 2)
                        .map(|v| u32::from(u16::from_le_bytes([v[0], v[1]]))),
                    2,
                ),
                fatfs::FatType::Fat12 => {
                    // Two entries in three bytes.
                    let Some(v) = carry.get(consumed..consumed + 3) else {
                        break;
                    };
                    for e in [
                        u32::from(v[0]) | (u32::from(v[1] & 0x0F) << 8),
                        (u32::from(v[1]) >> 4) | (u32::from(v[2]) << 4),
                    ] {
                        if index >= 2 && index < clusters + 2 && e != 0 {
                            used += 1;
                        }
                        index += 1;
                    }
                    consumed += 3;
                    continue;
                }
            };
            let Some(value) = value else {
                break;
            };
            if index >= 2 && index < clusters + 2 && value != 0 {
                used += 1;
            }
            index += 1;
            consumed += width;
        }
        carry.drain(..consumed);
    }
    let data = used.checked_mul(cluster)?;
    let fixed = data
        .saturating_add(data / 10)
        .saturating_add(root)
        .saturating_add(16 * 1024)
        .saturating_add(64 * 1024);
    // Two FATs for a file system of `size` bytes.
    let fats = |size: u64| (size / cluster + 2).saturating_mul(entry_bytes_x2(fat_type));
    let mut size = fixed;
    for _ in 0..8 {
        size = fixed.saturating_add(fats(size));
    }
    let floor: u64 = match fat_type {
        fatfs::FatType::Fat32 => 34 << 20,
        fatfs::FatType::Fat16 => (4_085 + 1_024) * 512 + (1 << 20),
        fatfs::FatType::Fat12 => 0,
    };
    Some(size.max(floor).div_ceil(512) * 512)
}

/// Builds the new FAT on `head` with the files of the FAT on `base` (never written).
pub(crate) fn copy_fat(
    step: &ShrinkStep,
    head: &dyn BlockIo,
    base: &dyn BlockIo,
) -> Result<(), JobError> {
    let src_cursor = Cursor {
        io: base,
        pos: 0,
        read_only: true,
    };
    let src = fatfs::FileSystem::new(src_cursor, fatfs::FsOptions::new())
        .map_err(|e| fail(step, head, format!("reading the source FAT: {e}")))?;
    let fat_type = src.fat_type();
    let source_cluster = src.cluster_size();
    let cluster = cluster_size(fat_type, head.len(), source_cluster);
    if fat_type == fatfs::FatType::Fat32 && head.len() / u64::from(cluster) < 65_525 + 1024 {
        return Err(fail(
            step,
            head,
            format!(
                "{} bytes are too few for a FAT32 (65 525 clusters of {cluster} bytes)",
                head.len()
            ),
        ));
    }
    if fat_type == fatfs::FatType::Fat12 && head.len() / u64::from(cluster) > FAT12_MAX_CLUSTERS {
        return Err(fail(
            step,
            head,
            format!(
                "{} bytes are too many for a FAT12 (fewer than 4085 clusters of {cluster} bytes)",
                head.len()
            ),
        ));
    }
    let volume_id = serial(&step.uuid).unwrap_or_else(|| src.volume_id());
    let mut opts = fatfs::FormatVolumeOptions::new()
        .fat_type(fat_type)
        .bytes_per_cluster(cluster)
        .volume_id(volume_id)
        .volume_label(label_field(&step.label));
    if let Ok(ss) = u16::try_from(head.logical_sector_size()) {
        opts = opts.bytes_per_sector(ss);
    }
    // A FAT12/16 root folder is a fixed region: as many entries as the source's (a floppy's
    // 224, or more than fatfs's default of 512).
    if fat_type != fatfs::FatType::Fat32 {
        let n = root_entries(base)
            .map_err(|e| fail(step, head, format!("reading the source's boot sector: {e}")))?;
        if n >= 16 {
            opts = opts.max_root_dir_entries(n);
        }
    }
    let dst_cursor = || Cursor {
        io: head,
        pos: 0,
        read_only: false,
    };
    // fatfs formats the boot sectors and FATs but does not zero the clusters a FAT32 root
    // folder grows into (other folders' clusters it zeroes). The root's entries are therefore
    // all created first (below), right after the root's first cluster, and that area — room
    // for every root entry with a full long name, and one cluster per root subfolder — is
    // zeroed here together with the FATs.
    let (root_entries, root_dirs) = src
        .root_dir()
        .iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "." && e.file_name() != "..")
        .fold((0u64, 0u64), |(n, d), e| (n + 1, d + u64::from(e.is_dir())));
    let fat_bytes = head.len() / u64::from(cluster) * 4;
    let root_room = (root_entries + 2) * 21 * 32 + (root_dirs + 2) * u64::from(cluster);
    let zero_len = head
        .len()
        .min((1 << 20) + 2 * fat_bytes + root_room + 4 * u64::from(cluster));
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < zero_len {
        let n = (zero_len - at).min(1 << 20);
        head.write_at(&zeros[..n as usize], at)
            .map_err(|e| fail(step, head, format!("clearing the new FAT's area: {e}")))?;
        at += n;
    }
    fatfs::format_volume(dst_cursor(), opts)
        .map_err(|e| fail(step, head, format!("formatting the new FAT: {e}")))?;
    let dst = fatfs::FileSystem::new(dst_cursor(), fatfs::FsOptions::new())
        .map_err(|e| fail(step, head, format!("opening the new FAT: {e}")))?;
    let mut walk = Walk {
        entries: 0,
        bytes: 0,
        budget: step.old_size,
    };
    walk.copy_dir(&src.root_dir(), &dst.root_dir(), 0)
        .map_err(|e| fail(step, head, e))?;
    // Counting the free clusters records them in the FSInfo sector written at unmount.
    dst.stats()
        .map_err(|e| fail(step, head, format!("counting free clusters: {e}")))?;
    dst.unmount()
        .map_err(|e| fail(step, head, format!("closing the new FAT: {e}")))?;
    fix_dots(head, fat_type)
        .map_err(|e| fail(step, head, format!("fixing '.' and '..' entries: {e}")))?;
    log::info!(
        "partition {}: {} entries and {} bytes copied into a new FAT",
        step.number,
        walk.entries,
        walk.bytes
    );
    head.flush()
        .map_err(|e| fail(step, head, format!("flushing: {e}")))
}

/// fatfs 0.3 writes a long-name entry before each of a new folder's `.` and `..` entries and,
/// on FAT32, the root's cluster number in `..` where 0 belongs; fsck.fat takes such folders
/// apart. Rewrites the first four slots of every folder to `.`, `..` (0 for the root), and two
/// deleted entries.
fn fix_dots(head: &dyn BlockIo, fat_type: fatfs::FatType) -> io::Result<()> {
    let fat32 = fat_type == fatfs::FatType::Fat32;
    let mut bpb = [0u8; 512];
    head.read_at(&mut bpb, 0)?;
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([bpb[o], bpb[o + 1]]));
    let u32_at = |o: usize| u32::from_le_bytes([bpb[o], bpb[o + 1], bpb[o + 2], bpb[o + 3]]);
    let bps = u16_at(11);
    let spc = u64::from(bpb[13]);
    let reserved = u16_at(14);
    let fats = u64::from(bpb[16]);
    let root_entries = u16_at(17);
    let fat_sectors = if fat32 {
        u64::from(u32_at(36))
    } else {
        u16_at(22)
    };
    // FAT32: the root is a cluster chain; FAT16: a fixed region before the data (cluster "0").
    let root = if fat32 { u32_at(44) } else { 0 };
    let cluster_bytes = bps * spc;
    let root_region = (reserved + fats * fat_sectors) * bps;
    let data = root_region + (root_entries * 32).div_ceil(bps.max(1)) * bps;
    if bps < 512 || cluster_bytes == 0 || (fat32 && root < 2) || data >= head.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "implausible new FAT boot sector",
        ));
    }
    let clusters = (head.len() - data) / cluster_bytes + 2;
    let valid = |c: u32| c >= 2 && u64::from(c) < clusters;
    let offset_of = |c: u32| data + (u64::from(c) - 2) * cluster_bytes;
    let first_cluster = |e: &[u8]| {
        let low = u32::from(u16::from_le_bytes([e[26], e[27]]));
        if fat32 {
            (u32::from(u16::from_le_bytes([e[20], e[21]])) << 16) | low
        } else {
            low
        }
    };
    // The next cluster of a chain; any end-of-chain mark becomes 0x0FFF_FFFF (not `valid`).
    let next = |c: u32| -> io::Result<u32> {
        let fat = reserved * bps;
        let mut n = [0u8; 4];
        Ok(match fat_type {
            fatfs::FatType::Fat32 => {
                head.read_at(&mut n, fat + u64::from(c) * 4)?;
                u32::from_le_bytes(n) & 0x0FFF_FFFF
            }
            fatfs::FatType::Fat16 => {
                head.read_at(&mut n[..2], fat + u64::from(c) * 2)?;
                match u32::from_le_bytes(n) {
                    v if v >= 0xFFF8 => 0x0FFF_FFFF,
                    v => v,
                }
            }
            fatfs::FatType::Fat12 => {
                // Entry c is the 12 bits at byte c * 1.5: the low ones for even c.
                head.read_at(&mut n[..2], fat + u64::from(c) * 3 / 2)?;
                let pair = u32::from(u16::from_le_bytes([n[0], n[1]]));
                match if c.is_multiple_of(2) {
                    pair & 0xFFF
                } else {
                    pair >> 4
                } {
                    v if v >= 0xFF8 => 0x0FFF_FFFF,
                    v => v,
                }
            }
        })
    };
    // Folders to visit: (first cluster, parent's first cluster).
    let mut todo = vec![(root, 0u32)];
    let mut visited = 0u64;
    let mut buf = vec![0u8; cluster_bytes as usize];
    while let Some((dir, parent)) = todo.pop() {
        visited += 1;
        if visited > clusters {
            break;
        }
        if dir != root {
            let mut slots = vec![0u8; 128];
            head.read_at(&mut slots, offset_of(dir))?;
            if slots[11] == 0x0F && &slots[32..43] == b".          " {
                let dot = slots[32..64].to_vec();
                let mut dotdot = slots[96..128].to_vec();
                let up = if parent == root { 0 } else { parent };
                dotdot[20..22].copy_from_slice(&((up >> 16) as u16).to_le_bytes());
                dotdot[26..28].copy_from_slice(&(up as u16).to_le_bytes());
                let mut fixed = Vec::with_capacity(128);
                fixed.extend_from_slice(&dot);
                fixed.extend_from_slice(&dotdot);
                let mut deleted = [0u8; 32];
                deleted[0] = 0xE5;
                fixed.extend_from_slice(&deleted);
                fixed.extend_from_slice(&deleted);
                head.write_at(&fixed, offset_of(dir))?;
            }
        }
        // The folder's entries: the fixed FAT16 root region, or its cluster chain.
        let mut pieces: Vec<Vec<u8>> = Vec::new();
        if dir == 0 {
            let mut region = vec![0u8; (root_entries * 32) as usize];
            head.read_at(&mut region, root_region)?;
            pieces.push(region);
        }
        let mut c = dir;
        let mut chain = 0u64;
        'chain: loop {
            if let Some(piece) = pieces.pop() {
                buf = piece;
            } else if valid(c) && chain < clusters {
                chain += 1;
                buf.resize(cluster_bytes as usize, 0);
                head.read_at(&mut buf, offset_of(c))?;
                c = next(c)?;
            } else {
                break;
            }
            for e in buf.chunks_exact(32) {
                if e[0] == 0 {
                    break 'chain;
                }
                let sub = first_cluster(e);
                if e[0] != 0xE5 && e[11] != 0x0F && e[11] & 0x10 != 0 && e[0] != b'.' && valid(sub)
                {
                    todo.push((sub, dir));
                }
            }
            if dir == 0 {
                break;
            }
        }
    }
    Ok(())
}

struct Walk {
    entries: u64,
    bytes: u64,
    /// Bytes that may be copied at most (the source's size: a looping chain cannot go on).
    budget: u64,
}

impl Walk {
    fn copy_dir<S: fatfs::ReadWriteSeek, D: fatfs::ReadWriteSeek>(
        &mut self,
        src: &fatfs::Dir<'_, S>,
        dst: &fatfs::Dir<'_, D>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("folders nest deeper than {MAX_DEPTH} levels"));
        }
        // Every entry of the folder is created before any file data is written (see copy_fat).
        let mut entries = Vec::new();
        for entry in src.iter() {
            let entry = entry.map_err(|e| format!("reading a folder: {e}"))?;
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} entries"));
            }
            if entry.is_dir() {
                dst.create_dir(&name)
                    .map_err(|e| format!("creating folder {name}: {e}"))?;
            } else {
                dst.create_file(&name)
                    .and_then(|mut f| f.truncate())
                    .map_err(|e| format!("creating {name}: {e}"))?;
            }
            entries.push((name, entry));
        }
        for (name, entry) in entries {
            if entry.is_dir() {
                let sub = dst
                    .open_dir(&name)
                    .map_err(|e| format!("opening folder {name}: {e}"))?;
                self.copy_dir(&entry.to_dir(), &sub, depth + 1)
                    .map_err(|e| format!("{name}/{e}"))?;
            } else {
                let mut out = dst
                    .open_file(&name)
                    .map_err(|e| format!("opening {name}: {e}"))?;
                let mut input = entry.to_file();
                let mut buf = vec![0u8; 1 << 20];
                let mut left = entry.len();
                while left > 0 {
                    let n = input
                        .read(&mut buf[..left.min(1 << 20) as usize])
                        .map_err(|e| format!("reading {name}: {e}"))?;
                    if n == 0 {
                        return Err(format!("{name} ends {left} bytes early"));
                    }
                    out.write_all(&buf[..n])
                        .map_err(|e| format!("writing {name}: {e}"))?;
                    left -= n as u64;
                    self.bytes += n as u64;
                    if self.bytes > self.budget {
                        return Err("more bytes than the file system holds".to_string());
                    }
                }
                // fatfs deprecates these for its per-volume TimeProvider; set after the data
                // (writing would overwrite the modification time), they keep each file's own.
                #[allow(deprecated)]
                {
                    out.set_created(entry.created());
                    out.set_accessed(entry.accessed());
                    out.set_modified(entry.modified());
                }
                out.flush().map_err(|e| format!("writing {name}: {e}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FAT of `fat_type` on `len` bytes in memory holding `files` files of `size` bytes.
    fn fat_with(fat_type: fatfs::FatType, len: usize, files: usize, size: usize) -> disk::MemDisk {
        let io = disk::MemDisk::new(len, 512);
        let cursor = || Cursor {
            io: &io,
            pos: 0,
            read_only: false,
        };
        fatfs::format_volume(
            cursor(),
            fatfs::FormatVolumeOptions::new().fat_type(fat_type),
        )
        .unwrap();
        {
            let fs = fatfs::FileSystem::new(cursor(), fatfs::FsOptions::new()).unwrap();
            for i in 0..files {
                let mut f = fs.root_dir().create_file(&format!("f{i}")).unwrap();
                f.write_all(&vec![0x5A; size]).unwrap();
            }
            fs.unmount().unwrap();
        }
        io
    }

    #[test]
    fn the_fat_minimum_counts_used_clusters_of_each_fat_type() {
        for (t, len, files) in [
            (fatfs::FatType::Fat12, 8 << 20, 6),
            (fatfs::FatType::Fat16, 64 << 20, 12),
            (fatfs::FatType::Fat32, 128 << 20, 80),
        ] {
            // Files of 500 KiB, above each type's floor: the data, a tenth more, the tables.
            let data = files as u64 * 500 * 1024;
            let min = minimum(&fat_with(t, len, files, 500 * 1024)).unwrap();
            assert!(min >= data + data / 10, "{t:?}: {min} for {data}");
            assert!(
                min <= data + data / 10 + (2 << 20),
                "{t:?}: {min} for {data}"
            );
        }
        assert_eq!(minimum(&disk::MemDisk::new(1 << 20, 512)), None);
        // The type floors: a FAT32 never below 34 MiB.
        assert!(minimum(&fat_with(fatfs::FatType::Fat32, 128 << 20, 0, 0)).unwrap() >= 34 << 20);
        assert!(minimum(&fat_with(fatfs::FatType::Fat12, 8 << 20, 0, 0)).unwrap() < 1 << 20);
    }
}
