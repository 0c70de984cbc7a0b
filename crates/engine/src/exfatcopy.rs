//! Shrinking exFAT, which has no shrink tool, by a file-level copy: a fresh exFAT made by
//! `mkfs.exfat` on the smaller target partition with the source's cluster size and label, its
//! volume serial set by `tune.exfat -I`; every folder and file copied from the source mounted
//! read-only (on a copy-on-write view) into the new one mounted read-write (the kernel's exfat,
//! or exfat-fuse where the kernel has none, through `disk::mount`). Neither driver can set an
//! entry's attributes (read-only, hidden, system, archive) or its creation time, and both write
//! their own time zone, so after unmounting, every entry set of the new file system gets the
//! attributes and the three timestamps (with their 10 ms parts and UTC offsets) of the source's
//! entry at the same path, and its set checksum anew. That last step reads and writes the
//! directories itself, bounded like any parser of untrusted bytes.

use crate::error::JobError;
use crate::fsmount::{with_cow, with_mounted, WorkDir};
use crate::grow::tool;
use crate::shrink::ShrinkStep;
use disk::mount::Access;
use disk::BlockIo;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

/// Most entries (files and folders) handled.
const MAX_ENTRIES: u64 = 10_000_000;
/// Deepest folder nesting handled.
const MAX_DEPTH: usize = 256;
/// Most bytes of one folder read (a folder holds at most 256 MiB of entries).
const MAX_DIR_BYTES: u64 = 256 << 20;

fn fail(device: &str, output: String) -> JobError {
    JobError::Tool {
        tool: "exFAT copy".into(),
        device: device.to_string(),
        output,
    }
}

/// The boot-sector fields the walk needs.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    cluster: u64,
    fat: u64,
    heap: u64,
    clusters: u64,
    root: u32,
}

impl Geometry {
    fn read(io: &dyn BlockIo) -> Result<Geometry, String> {
        let mut b = [0u8; 512];
        io.read_at(&mut b, 0).map_err(|e| e.to_string())?;
        if &b[3..11] != b"EXFAT   " {
            return Err("no exFAT boot sector".into());
        }
        let u32_at = |o: usize| u64::from(u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]));
        let (ss, cs) = (u32::from(b[108]), u32::from(b[109]));
        if !(9..=12).contains(&ss) || ss + cs > 25 {
            return Err("implausible exFAT sector or cluster size".into());
        }
        let sector = 1u64 << ss;
        let g = Geometry {
            cluster: sector << cs,
            fat: u32_at(80) * sector,
            heap: u32_at(88) * sector,
            clusters: u32_at(92),
            root: u32::from_le_bytes([b[96], b[97], b[98], b[99]]),
        };
        let end = g
            .clusters
            .checked_mul(g.cluster)
            .and_then(|n| n.checked_add(g.heap));
        if end.is_none_or(|e| e > io.len()) || g.fat >= g.heap || !g.valid(g.root) {
            return Err("exFAT boot sector out of range".into());
        }
        Ok(g)
    }

    fn valid(&self, c: u32) -> bool {
        c >= 2 && u64::from(c) < self.clusters + 2
    }

    fn offset(&self, c: u32) -> u64 {
        self.heap + (u64::from(c) - 2) * self.cluster
    }
}

/// One entry set: its 32-byte entries and where each lies.
#[derive(Debug, Clone)]
struct Set {
    bytes: Vec<u8>,
    at: Vec<u64>,
    dir: bool,
    first: u32,
    len: u64,
    contiguous: bool,
}

/// The byte positions of a folder's content: `(first cluster, length, contiguous)`, or the
/// root's FAT chain when `len` is `None`.
fn dir_runs(
    io: &dyn BlockIo,
    g: &Geometry,
    first: u32,
    len: Option<u64>,
    contiguous: bool,
) -> Result<Vec<u64>, String> {
    let mut clusters = Vec::new();
    let limit = len
        .map(|l| l.div_ceil(g.cluster))
        .unwrap_or(MAX_DIR_BYTES / g.cluster)
        .min(MAX_DIR_BYTES / g.cluster + 1);
    let mut c = first;
    while (clusters.len() as u64) < limit && g.valid(c) {
        clusters.push(c);
        if contiguous {
            c = c.checked_add(1).ok_or("cluster number overflow")?;
        } else {
            let mut n = [0u8; 4];
            io.read_at(&mut n, g.fat + u64::from(c) * 4)
                .map_err(|e| e.to_string())?;
            c = u32::from_le_bytes(n);
        }
    }
    if len.is_some_and(|l| (clusters.len() as u64) * g.cluster < l) {
        return Err(format!("a folder's clusters from {first} end early"));
    }
    Ok(clusters.into_iter().map(|c| g.offset(c)).collect())
}

/// The entry sets of a folder by name.
fn read_dir(io: &dyn BlockIo, g: &Geometry, runs: &[u64]) -> Result<BTreeMap<String, Set>, String> {
    let mut entries: Vec<([u8; 32], u64)> = Vec::new();
    let mut buf = vec![0u8; g.cluster as usize];
    'all: for &at in runs {
        io.read_at(&mut buf, at).map_err(|e| e.to_string())?;
        for (i, e) in buf.chunks_exact(32).enumerate() {
            if e[0] == 0 {
                break 'all;
            }
            let mut raw = [0u8; 32];
            raw.copy_from_slice(e);
            entries.push((raw, at + i as u64 * 32));
        }
    }
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < entries.len() {
        let (e, _) = &entries[i];
        if e[0] != 0x85 {
            i += 1;
            continue;
        }
        let count = usize::from(e[1]);
        if count < 2 || i + count >= entries.len() {
            i += 1;
            continue;
        }
        let set = &entries[i..=i + count];
        let stream = &set[1].0;
        if stream[0] != 0xC0 {
            i += 1;
            continue;
        }
        let name_len = usize::from(stream[3]);
        let mut units = Vec::with_capacity(name_len);
        for (n, _) in set[2..].iter().filter(|(n, _)| n[0] == 0xC1) {
            for k in 0..15 {
                units.push(u16::from_le_bytes([n[2 + 2 * k], n[3 + 2 * k]]));
            }
        }
        units.truncate(name_len);
        let name = String::from_utf16_lossy(&units);
        let mut bytes = Vec::with_capacity(32 * set.len());
        for (raw, _) in set {
            bytes.extend_from_slice(raw);
        }
        out.insert(
            name,
            Set {
                bytes,
                at: set.iter().map(|(_, a)| *a).collect(),
                dir: u16::from_le_bytes([e[4], e[5]]) & 0x10 != 0,
                first: u32::from_le_bytes([stream[20], stream[21], stream[22], stream[23]]),
                len: u64::from_le_bytes([
                    stream[24], stream[25], stream[26], stream[27], stream[28], stream[29],
                    stream[30], stream[31],
                ]),
                contiguous: stream[1] & 0x02 != 0,
            },
        );
        i += count + 1;
    }
    Ok(out)
}

/// The entry-set checksum: every byte but the checksum's own two, rotated right and added.
fn set_checksum(set: &[u8]) -> u16 {
    let mut sum: u16 = 0;
    for (i, &b) in set.iter().enumerate() {
        if i == 2 || i == 3 {
            continue;
        }
        sum = sum.rotate_right(1).wrapping_add(u16::from(b));
    }
    sum
}

/// Gives every entry set below the root of `dst` the attributes and timestamps of the one at
/// the same path in `src` (never written). Returns the number of sets rewritten.
fn copy_entry_fields(src: &dyn BlockIo, dst: &dyn BlockIo) -> Result<u64, String> {
    let (gs, gd) = (Geometry::read(src)?, Geometry::read(dst)?);
    let mut todo = vec![(
        dir_runs(src, &gs, gs.root, None, false)?,
        dir_runs(dst, &gd, gd.root, None, false)?,
        String::new(),
        0usize,
    )];
    let mut done = 0u64;
    while let Some((rs, rd, path, depth)) = todo.pop() {
        if depth > MAX_DEPTH {
            return Err(format!("{path}: folders nest deeper than {MAX_DEPTH}"));
        }
        let (a, b) = (read_dir(src, &gs, &rs)?, read_dir(dst, &gd, &rd)?);
        for (name, s) in &a {
            let Some(d) = b.get(name) else {
                return Err(format!("{path}/{name} was not copied"));
            };
            done += 1;
            if done > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} entries"));
            }
            let mut bytes = d.bytes.clone();
            // Attributes (keeping the new entry's folder bit), then the three timestamps,
            // their 10 ms parts and UTC offsets.
            let attrs = (u16::from_le_bytes([s.bytes[4], s.bytes[5]]) & !0x10)
                | (u16::from_le_bytes([bytes[4], bytes[5]]) & 0x10);
            bytes[4..6].copy_from_slice(&attrs.to_le_bytes());
            bytes[8..25].copy_from_slice(&s.bytes[8..25]);
            let sum = set_checksum(&bytes);
            bytes[2..4].copy_from_slice(&sum.to_le_bytes());
            if bytes != d.bytes {
                for (k, at) in d.at.iter().enumerate() {
                    dst.write_at(&bytes[k * 32..k * 32 + 32], *at)
                        .map_err(|e| e.to_string())?;
                }
            }
            if s.dir && d.dir {
                todo.push((
                    dir_runs(src, &gs, s.first, Some(s.len), s.contiguous)?,
                    dir_runs(dst, &gd, d.first, Some(d.len), d.contiguous)?,
                    format!("{path}/{name}"),
                    depth + 1,
                ));
            }
        }
    }
    dst.flush().map_err(|e| e.to_string())?;
    Ok(done)
}

/// Copies the folders and files below `src` into `dst` (both mounted), data only: names,
/// contents; attributes and times follow in [`copy_entry_fields`].
fn copy_tree(src: &Path, dst: &Path) -> Result<u64, String> {
    let mut todo = vec![(src.to_path_buf(), dst.to_path_buf(), 0usize)];
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    while let Some((from, to, depth)) = todo.pop() {
        if depth > MAX_DEPTH {
            return Err(format!("{}: folders nest too deep", from.display()));
        }
        for e in std::fs::read_dir(&from).map_err(|e| format!("{}: {e}", from.display()))? {
            let e = e.map_err(|e| format!("{}: {e}", from.display()))?;
            n += 1;
            if n > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} entries"));
            }
            let (a, b) = (e.path(), to.join(e.file_name()));
            let ft = e.file_type().map_err(|e| format!("{}: {e}", a.display()))?;
            if ft.is_dir() {
                std::fs::create_dir(&b).map_err(|e| format!("{}: {e}", b.display()))?;
                todo.push((a, b, depth + 1));
            } else {
                let mut input =
                    std::fs::File::open(&a).map_err(|e| format!("{}: {e}", a.display()))?;
                let mut output = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&b)
                    .map_err(|e| format!("{}: {e}", b.display()))?;
                loop {
                    let k = input
                        .read(&mut buf)
                        .map_err(|e| format!("{}: {e}", a.display()))?;
                    if k == 0 {
                        break;
                    }
                    output
                        .write_all(&buf[..k])
                        .map_err(|e| format!("{}: {e}", b.display()))?;
                }
                output
                    .sync_all()
                    .map_err(|e| format!("{}: {e}", b.display()))?;
            }
        }
    }
    Ok(n)
}

/// The volume serial as `tune.exfat -I` takes it, from blkid's `XXXX-XXXX`.
fn serial(uuid: &str) -> Option<String> {
    let hex = uuid.replace('-', "");
    u32::from_str_radix(&hex, 16)
        .ok()
        .map(|v| format!("0x{v:08x}"))
}

/// Makes the new exFAT on `head` and copies the files of the exFAT on `base` (never written).
pub(crate) fn copy_exfat(
    step: &ShrinkStep,
    head: &dyn BlockIo,
    base: &dyn BlockIo,
) -> Result<(), JobError> {
    let device = format!("partition {} of {}", step.number, head.describe());
    let info = fs::probe(base)
        .ok()
        .flatten()
        .ok_or_else(|| fail(&device, "the source exFAT cannot be read".into()))?;
    let serial = serial(&step.uuid)
        .ok_or_else(|| fail(&device, format!("unreadable volume serial {:?}", step.uuid)))?;
    let work = WorkDir::new()?;
    let file = work.file("mkfs")?;
    let cluster = info.cluster_size.to_string();
    vdev::serve_scoped(head, &file, "mkfs.exfat", true, |file| {
        let f = file.to_string_lossy();
        let mut args = vec!["-c", &cluster];
        if !step.label.is_empty() {
            args.extend(["-L", &step.label]);
        }
        args.push(&f);
        for (name, args) in [
            ("mkfs.exfat", args),
            ("tune.exfat", vec!["-I", &serial, &f]),
        ] {
            let (code, out) = tool(name, &args)?;
            if code != 0 {
                return Err(JobError::Tool {
                    tool: name.into(),
                    device: device.clone(),
                    output: out,
                });
            }
        }
        Ok(())
    })
    .map_err(|e| fail(&device, e.to_string()))??;
    let copied = with_cow(base, |view| {
        with_mounted(
            view,
            &work,
            "source",
            "exfat",
            Access::ReadOnly,
            None,
            |_, src| {
                with_mounted(
                    head,
                    &work,
                    "target",
                    "exfat",
                    Access::ReadWrite,
                    None,
                    |_, dst| copy_tree(src, dst).map_err(|e| fail(&device, e)),
                )
            },
        )
    })?;
    let fixed = copy_entry_fields(base, head)
        .map_err(|e| fail(&device, format!("copying attributes and times: {e}")))?;
    log::info!("{device}: {copied} entries copied into a new exFAT, {fixed} entry sets completed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_checksum_skips_its_own_field() {
        let mut set = vec![0u8; 64];
        set[0] = 0x85;
        set[1] = 1;
        set[32] = 0xC0;
        let a = set_checksum(&set);
        set[2] = 0xAB;
        set[3] = 0xCD;
        assert_eq!(set_checksum(&set), a);
        set[40] = 1;
        assert_ne!(set_checksum(&set), a);
    }

    #[test]
    fn serials_are_read_as_blkid_prints_them() {
        assert_eq!(serial("1A2B-3C4D").as_deref(), Some("0x1a2b3c4d"));
        assert_eq!(serial("nonsense"), None);
    }

    #[test]
    fn a_folder_of_garbage_yields_no_sets_and_no_panic() {
        let io = disk::MemDisk::from_vec(vec![0xA5; 64 * 1024], 512);
        let g = Geometry {
            cluster: 4096,
            fat: 4096,
            heap: 8192,
            clusters: 10,
            root: 2,
        };
        let runs = dir_runs(&io, &g, 2, None, false).unwrap();
        assert!(read_dir(&io, &g, &runs).is_ok());
        assert!(Geometry::read(&io).is_err());
    }
}
