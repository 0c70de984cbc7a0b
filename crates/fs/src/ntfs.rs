//! NTFS: boot-sector and MFT parsing (probe: label and state from `$Volume`) and the used-cluster
//! map from `$Bitmap`.

use crate::bytes::{label_from_utf16, le16, le32, le64, slice, u8_at, utf16le_units};
use crate::map::{read, MapError, UsedMap};
use crate::probe::{read_opt, FsInfo, FsKind, ProbeError};
use disk::BlockIo;

/// Update sequence arrays protect every 512 bytes of a record, whatever the sector size.
const USA_STRIDE: usize = 512;
/// Most runs accepted in one runlist; a bitmap of a 256 TiB volume is far below this.
const MAX_RUNS: usize = 65536;

pub(crate) const ATTR_VOLUME_NAME: u32 = 0x60;
pub(crate) const ATTR_VOLUME_INFORMATION: u32 = 0x70;
pub(crate) const ATTR_DATA: u32 = 0x80;
pub(crate) const MFT_RECORD_VOLUME: u64 = 3;
pub(crate) const MFT_RECORD_BITMAP: u64 = 6;

/// The boot sector fields, already range-checked.
#[derive(Debug, Clone)]
pub(crate) struct Boot {
    pub sector_size: u64,
    pub cluster_size: u64,
    pub total_sectors: u64,
    pub mft_lcn: u64,
    pub mftmirr_lcn: u64,
    pub record_size: u64,
    pub serial: u64,
}

impl Boot {
    pub fn total_clusters(&self) -> u64 {
        self.total_sectors.saturating_mul(self.sector_size) / self.cluster_size
    }
}

pub(crate) fn read_boot(io: &dyn BlockIo) -> Result<Option<Boot>, ProbeError> {
    let Some(b) = read_opt(io, 0, 512)? else {
        return Ok(None);
    };
    if slice(&b, 3, 8) != b"NTFS    " {
        return Ok(None);
    }
    let sector_size = u64::from(le16(&b, 11));
    if !crate::bytes::is_pow2_in(sector_size, 256, 4096) {
        return Ok(None);
    }
    let spc = u8_at(&b, 13);
    let cluster_size = if spc <= 0x80 {
        u64::from(spc) * sector_size
    } else {
        // A negative exponent: the cluster is 2^-n bytes.
        let shift = 256 - u32::from(spc);
        if shift > 31 {
            return Ok(None);
        }
        1u64 << shift
    };
    if !crate::bytes::is_pow2_in(cluster_size, sector_size, 2 << 20) {
        return Ok(None);
    }
    // Fields a FAT BPB uses must be zero on NTFS.
    if le16(&b, 14) != 0 || u8_at(&b, 16) != 0 || le16(&b, 17) != 0 || le16(&b, 19) != 0 {
        return Ok(None);
    }
    let rec = u8_at(&b, 64) as i8;
    let record_size = if rec > 0 {
        u64::from(rec.unsigned_abs()) * cluster_size
    } else {
        let shift = u32::from(rec.unsigned_abs());
        if shift > 31 {
            return Ok(None);
        }
        1u64 << shift
    };
    let boot = Boot {
        sector_size,
        cluster_size,
        total_sectors: le64(&b, 40),
        mft_lcn: le64(&b, 48),
        mftmirr_lcn: le64(&b, 56),
        record_size,
        serial: le64(&b, 72),
    };
    let clusters = boot.total_clusters();
    let sane = crate::bytes::is_pow2_in(record_size, 512, 65536)
        && boot.total_sectors > 0
        && boot.total_sectors < (1 << 48)
        && boot.mft_lcn < clusters
        && boot.mftmirr_lcn < clusters;
    Ok(sane.then_some(boot))
}

/// Applies the update sequence array of a multi-sector record in place. `false` when the record
/// is torn or its header is inconsistent.
pub(crate) fn apply_fixups(rec: &mut [u8]) -> bool {
    let usa_ofs = usize::from(le16(rec, 4));
    let usa_count = usize::from(le16(rec, 6));
    if usa_count < 2 || usa_ofs % 2 != 0 || (usa_count - 1) * USA_STRIDE > rec.len() {
        return false;
    }
    let Some(usa_end) = usa_ofs.checked_add(usa_count * 2) else {
        return false;
    };
    if usa_end > rec.len() || usa_end > USA_STRIDE {
        return false;
    }
    let usn = le16(rec, usa_ofs);
    for i in 1..usa_count {
        let tail = i * USA_STRIDE - 2;
        if le16(rec, tail) != usn {
            return false;
        }
        let fix = le16(rec, usa_ofs + 2 * i).to_le_bytes();
        if let Some(t) = rec.get_mut(tail..tail + 2) {
            t.copy_from_slice(&fix);
        }
    }
    true
}

/// One attribute of an MFT record.
#[derive(Debug)]
pub(crate) struct Attr<'a> {
    pub kind: u32,
    pub non_resident: bool,
    pub name_len: u8,
    /// The whole attribute, header included.
    pub bytes: &'a [u8],
}

impl Attr<'_> {
    /// The value of a resident attribute.
    pub fn resident_value(&self) -> Option<&[u8]> {
        if self.non_resident {
            return None;
        }
        let len = le32(self.bytes, 16) as usize;
        let off = usize::from(le16(self.bytes, 20));
        let v = slice(self.bytes, off, len);
        (v.len() == len).then_some(v)
    }
}

/// The attributes of a fixed-up record (stops at the end marker or at the first malformed one).
pub(crate) fn attributes(rec: &[u8]) -> Vec<Attr<'_>> {
    let mut out = Vec::new();
    if slice(rec, 0, 4) != b"FILE" || le16(rec, 22) & 1 == 0 {
        return out;
    }
    let in_use = (le32(rec, 24) as usize).min(rec.len());
    let mut off = usize::from(le16(rec, 20));
    while off + 16 <= in_use {
        let kind = le32(rec, off);
        if kind == 0xFFFF_FFFF {
            break;
        }
        let len = le32(rec, off + 4) as usize;
        if len < 16 || !len.is_multiple_of(8) || off + len > in_use {
            break;
        }
        let bytes = slice(rec, off, len);
        out.push(Attr {
            kind,
            non_resident: u8_at(bytes, 8) != 0,
            name_len: u8_at(bytes, 9),
            bytes,
        });
        off += len;
    }
    out
}

/// A run of a non-resident attribute: `len` clusters from `vcn`, stored at `lcn` (`None`: sparse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub vcn: u64,
    pub lcn: Option<u64>,
    pub len: u64,
}

/// Decodes the mapping pairs of a non-resident attribute. `None` when malformed.
pub(crate) fn runlist(attr: &Attr<'_>) -> Option<Vec<Run>> {
    if !attr.non_resident {
        return None;
    }
    let start = usize::from(le16(attr.bytes, 32));
    let mut pos = start;
    let mut vcn = le64(attr.bytes, 16);
    let mut lcn: i64 = 0;
    let mut runs = Vec::new();
    loop {
        let header = *attr.bytes.get(pos)?;
        if header == 0 {
            break;
        }
        let len_size = usize::from(header & 0xf);
        let off_size = usize::from(header >> 4);
        if len_size == 0 || len_size > 8 || off_size > 8 || runs.len() >= MAX_RUNS {
            return None;
        }
        let len_bytes = attr.bytes.get(pos + 1..pos + 1 + len_size)?;
        let len = signed(len_bytes);
        if len <= 0 {
            return None;
        }
        let off_bytes = attr
            .bytes
            .get(pos + 1 + len_size..pos + 1 + len_size + off_size)?;
        let run_lcn = if off_size == 0 {
            None
        } else {
            lcn = lcn.checked_add(signed(off_bytes))?;
            if lcn < 0 {
                return None;
            }
            Some(lcn as u64)
        };
        runs.push(Run {
            vcn,
            lcn: run_lcn,
            len: len as u64,
        });
        vcn = vcn.checked_add(len as u64)?;
        pos += 1 + len_size + off_size;
    }
    Some(runs)
}

/// A little-endian two's-complement integer of 1..=8 bytes.
fn signed(bytes: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        v |= i64::from(b) << (8 * i);
    }
    let bits = 8 * bytes.len() as u32;
    if bits < 64 && bits > 0 && v & (1 << (bits - 1)) != 0 {
        v -= 1 << bits;
    }
    v
}

/// The unnamed attribute of `kind` in a record.
pub(crate) fn find_attr<'a>(attrs: &'a [Attr<'a>], kind: u32) -> Option<&'a Attr<'a>> {
    attrs.iter().find(|a| a.kind == kind && a.name_len == 0)
}

/// Access to MFT records through the `$MFT` `$DATA` runlist read from record 0.
#[derive(Debug)]
pub(crate) struct Mft {
    runs: Vec<Run>,
}

impl Mft {
    pub fn open(io: &dyn BlockIo, boot: &Boot) -> Result<Option<Mft>, ProbeError> {
        let off = boot.mft_lcn.saturating_mul(boot.cluster_size);
        let Some(mut rec) = read_opt(io, off, boot.record_size as usize)? else {
            return Ok(None);
        };
        if !apply_fixups(&mut rec) {
            return Ok(None);
        }
        let attrs = attributes(&rec);
        let runs = find_attr(&attrs, ATTR_DATA).and_then(runlist);
        Ok(runs.map(|runs| Mft { runs }))
    }

    /// Reads and fixes up record `n`; `None` when it is not mapped or not a valid record.
    pub fn record(
        &self,
        io: &dyn BlockIo,
        boot: &Boot,
        n: u64,
    ) -> Result<Option<Vec<u8>>, ProbeError> {
        let size = boot.record_size;
        let mut rec = Vec::with_capacity(size as usize);
        let mut pos = n.saturating_mul(size);
        let end = pos.saturating_add(size);
        while pos < end {
            let vcn = pos / boot.cluster_size;
            let within = pos % boot.cluster_size;
            let Some(run) = self
                .runs
                .iter()
                .find(|r| vcn >= r.vcn && vcn - r.vcn < r.len)
            else {
                return Ok(None);
            };
            let Some(lcn) = run.lcn else { return Ok(None) };
            let take = (boot.cluster_size - within).min(end - pos);
            let disk_off = lcn
                .saturating_add(vcn - run.vcn)
                .saturating_mul(boot.cluster_size)
                .saturating_add(within);
            let Some(piece) = read_opt(io, disk_off, take as usize)? else {
                return Ok(None);
            };
            rec.extend_from_slice(&piece);
            pos += take;
        }
        Ok(apply_fixups(&mut rec).then_some(rec))
    }
}

pub(crate) fn probe(io: &dyn BlockIo) -> Result<Option<FsInfo>, ProbeError> {
    let Some(boot) = read_boot(io)? else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsKind::Ntfs);
    info.uuid = Some(format!("{:016X}", boot.serial));
    info.block_size = boot.sector_size as u32;
    info.cluster_size = boot.cluster_size as u32;
    info.size = boot.total_sectors.saturating_mul(boot.sector_size);
    let volume = match Mft::open(io, &boot)? {
        Some(mft) => mft.record(io, &boot, MFT_RECORD_VOLUME)?,
        None => None,
    };
    let Some(volume) = volume else {
        info.warnings
            .push("the $Volume MFT record is unreadable: no label".into());
        return Ok(Some(info));
    };
    let attrs = attributes(&volume);
    if let Some(name) = find_attr(&attrs, ATTR_VOLUME_NAME).and_then(Attr::resident_value) {
        info.label = label_from_utf16(&utf16le_units(name));
    }
    if let Some(vi) = find_attr(&attrs, ATTR_VOLUME_INFORMATION).and_then(Attr::resident_value) {
        info.version = Some(format!("{}.{}", u8_at(vi, 8), u8_at(vi, 9)));
        let dirty = le16(vi, 10) & 1 != 0;
        info.needs_check = dirty;
        info.state = Some(if dirty { "dirty" } else { "clean" }.into());
    }
    // Windows' hibernation and fast startup leave the volume mounted: its newest state is in
    // memory saved to hiberfil.sys. The kernel and ntfs-3g refuse to mount it read-write.
    if let Some(mft) = Mft::open(io, &boot)? {
        if hibernated(io, &boot, &mft)? {
            info.state = Some(STATE_HIBERNATED.into());
        } else if !info.needs_check && !logfile_clean(io, &boot, &mft)? {
            info.needs_check = true;
            info.state = Some(STATE_LOG_UNCLEAN.into());
        }
    }
    Ok(Some(info))
}

/// [`FsInfo::state`] of an NTFS volume Windows hibernated (or shut down with fast startup).
pub(crate) const STATE_HIBERNATED: &str = "hibernated (Windows fast startup or hibernation)";
/// [`FsInfo::state`] of an NTFS volume whose `$LogFile` was not closed cleanly.
pub(crate) const STATE_LOG_UNCLEAN: &str = "not clean ($LogFile needs replay)";

const MFT_RECORD_LOGFILE: u64 = 2;
const MFT_RECORD_ROOT: u64 = 5;
const ATTR_INDEX_ROOT: u32 = 0x90;
const ATTR_INDEX_ALLOCATION: u32 = 0xA0;
/// Most root-directory index bytes scanned for `hiberfil.sys` (a root folder of a few hundred
/// names fits in far less).
const MAX_ROOT_INDEX: u64 = 4 << 20;

/// The unnamed `$DATA` of MFT record `n`: its first `len` bytes, or `None` when the record or
/// its data is missing or shorter.
fn data_head(
    io: &dyn BlockIo,
    boot: &Boot,
    mft: &Mft,
    n: u64,
    len: usize,
) -> Result<Option<Vec<u8>>, ProbeError> {
    let Some(rec) = mft.record(io, boot, n)? else {
        return Ok(None);
    };
    let attrs = attributes(&rec);
    let Some(data) = find_attr(&attrs, ATTR_DATA) else {
        return Ok(None);
    };
    if let Some(v) = data.resident_value() {
        return Ok((v.len() >= len).then(|| v[..len].to_vec()));
    }
    if le64(data.bytes, 48) < len as u64 {
        return Ok(None);
    }
    let Some(first) = runlist(data).and_then(|r| r.first().copied()) else {
        return Ok(None);
    };
    if first.vcn != 0 || first.len.saturating_mul(boot.cluster_size) < len as u64 {
        return Ok(None);
    }
    match first.lcn {
        Some(lcn) => read_opt(io, lcn.saturating_mul(boot.cluster_size), len),
        None => Ok(Some(vec![0; len])),
    }
}

/// True when `/hiberfil.sys` starts with `hibr`/`HIBR` (a saved session that will resume), as
/// ntfs-3g checks before it mounts.
fn hibernated(io: &dyn BlockIo, boot: &Boot, mft: &Mft) -> Result<bool, ProbeError> {
    let Some(reference) = find_in_root(io, boot, mft, "hiberfil.sys")? else {
        return Ok(false);
    };
    let Some(head) = data_head(io, boot, mft, reference, 4)? else {
        return Ok(false);
    };
    Ok(head.eq_ignore_ascii_case(b"hibr"))
}

/// The MFT record number of `name` (compared case-blind, ASCII) in the root folder's index.
fn find_in_root(
    io: &dyn BlockIo,
    boot: &Boot,
    mft: &Mft,
    name: &str,
) -> Result<Option<u64>, ProbeError> {
    let Some(rec) = mft.record(io, boot, MFT_RECORD_ROOT)? else {
        return Ok(None);
    };
    let attrs = attributes(&rec);
    let want: Vec<u16> = name.encode_utf16().collect();
    if let Some(root) = attrs
        .iter()
        .find(|a| a.kind == ATTR_INDEX_ROOT)
        .and_then(Attr::resident_value)
    {
        if let Some(found) = index_entries(slice(root, 16, root.len().saturating_sub(16)), &want) {
            return Ok(Some(found));
        }
        let block = u64::from(le32(root, 8));
        let Some(alloc) = attrs
            .iter()
            .find(|a| a.kind == ATTR_INDEX_ALLOCATION && a.non_resident)
        else {
            return Ok(None);
        };
        if !crate::bytes::is_pow2_in(block, 512, 65536) {
            return Ok(None);
        }
        let Some(runs) = runlist(alloc) else {
            return Ok(None);
        };
        let mut scanned = 0u64;
        for run in runs {
            let Some(lcn) = run.lcn else { continue };
            let bytes = run.len.saturating_mul(boot.cluster_size);
            let mut off = 0;
            while off + block <= bytes && scanned < MAX_ROOT_INDEX {
                let at = lcn.saturating_mul(boot.cluster_size).saturating_add(off);
                if let Some(mut indx) = read_opt(io, at, block as usize)? {
                    if slice(&indx, 0, 4) == b"INDX" && apply_fixups(&mut indx) {
                        if let Some(found) = index_entries(
                            slice(&indx, 0x18, indx.len().saturating_sub(0x18)),
                            &want,
                        ) {
                            return Ok(Some(found));
                        }
                    }
                }
                off += block;
                scanned += block;
            }
        }
    }
    Ok(None)
}

/// Looks for a file-name key equal to `want` among the entries after an index header (`hdr`
/// starts at the header; entry offsets are relative to it).
fn index_entries(hdr: &[u8], want: &[u16]) -> Option<u64> {
    let start = le32(hdr, 0) as usize;
    let end = (le32(hdr, 4) as usize).min(hdr.len());
    let mut off = start;
    while off + 16 <= end {
        let len = usize::from(le16(hdr, off + 8));
        let flags = le16(hdr, off + 12);
        if flags & 2 != 0 || len < 16 {
            break;
        }
        let key = slice(hdr, off + 16, usize::from(le16(hdr, off + 10)));
        let n = usize::from(u8_at(key, 64));
        let name = utf16le_units(slice(key, 66, n * 2));
        let same = name.len() == want.len()
            && name
                .iter()
                .zip(want)
                .all(|(a, b)| ascii_lower(*a) == ascii_lower(*b));
        if same {
            return Some(le64(hdr, off) & 0xFFFF_FFFF_FFFF);
        }
        off += len;
    }
    None
}

fn ascii_lower(c: u16) -> u16 {
    if (u16::from(b'A')..=u16::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// False when `$LogFile`'s newer restart area says clients are still attached and the volume is
/// not marked clean (ntfs-3g's test). An empty (all 0xFF) or unreadable log counts as clean.
fn logfile_clean(io: &dyn BlockIo, boot: &Boot, mft: &Mft) -> Result<bool, ProbeError> {
    let Some(head) = data_head(io, boot, mft, MFT_RECORD_LOGFILE, 512)? else {
        return Ok(true);
    };
    let page = u64::from(le32(&head, 16));
    if !matches!(slice(&head, 0, 4), b"RSTR" | b"CHKD")
        || !crate::bytes::is_pow2_in(page, 512, 65536)
    {
        return Ok(true);
    }
    let Some(both) = data_head(io, boot, mft, MFT_RECORD_LOGFILE, (2 * page) as usize)? else {
        return Ok(true);
    };
    // The restart page with the newer current LSN counts.
    let mut newest: Option<(u64, bool)> = None;
    for p in both.chunks_exact(page as usize) {
        let mut p = p.to_vec();
        if !matches!(slice(&p, 0, 4), b"RSTR" | b"CHKD") || !apply_fixups(&mut p) {
            continue;
        }
        let ra = usize::from(le16(&p, 24));
        let lsn = le64(&p, ra);
        let clean = le16(&p, ra + 12) == 0xFFFF || le16(&p, ra + 14) & 2 != 0;
        if newest.is_none_or(|(l, _)| lsn > l) {
            newest = Some((lsn, clean));
        }
    }
    Ok(newest.is_none_or(|(_, clean)| clean))
}

/// The used-cluster map of an NTFS volume from `$Bitmap` (MFT record 6), plus the boot sector and
/// its backup in the last sector.
pub(crate) fn used_map(io: &dyn BlockIo) -> Result<UsedMap, MapError> {
    let Some(boot) = read_boot(io)? else {
        return Err(MapError::NotRecognised {
            device: io.describe(),
            kind: FsKind::Ntfs,
        });
    };
    let Some(mft) = Mft::open(io, &boot)? else {
        return Err(MapError::corrupt(
            io,
            "the $MFT record or its data runlist is unreadable",
        ));
    };
    if let Some(vol) = mft.record(io, &boot, MFT_RECORD_VOLUME)? {
        let attrs = attributes(&vol);
        if let Some(vi) = find_attr(&attrs, ATTR_VOLUME_INFORMATION).and_then(Attr::resident_value)
        {
            if le16(vi, 10) & 1 != 0 {
                return Err(MapError::NeedsCheck {
                    device: io.describe(),
                    kind: FsKind::Ntfs,
                    state: "is marked dirty".into(),
                });
            }
        }
    }
    let Some(rec) = mft.record(io, &boot, MFT_RECORD_BITMAP)? else {
        return Err(MapError::corrupt(
            io,
            "the $Bitmap MFT record is unreadable",
        ));
    };
    let attrs = attributes(&rec);
    let Some(data) = find_attr(&attrs, ATTR_DATA) else {
        return Err(MapError::corrupt(io, "$Bitmap has no data attribute"));
    };
    let clusters = boot.total_clusters();
    let need = clusters.div_ceil(8);
    let cs = boot.cluster_size;
    let mut map = UsedMap::new(cs as u32, io.len())?;
    if let Some(value) = data.resident_value() {
        if (value.len() as u64) < need {
            return Err(MapError::corrupt(io, "$Bitmap is shorter than the volume"));
        }
        map.mark_bitmap(value, clusters, 0, cs);
    } else {
        let data_size = le64(data.bytes, 48);
        if data_size < need {
            return Err(MapError::corrupt(
                io,
                format!("$Bitmap holds {data_size} bytes, the volume needs {need}"),
            ));
        }
        let Some(runs) = runlist(data) else {
            return Err(MapError::corrupt(io, "$Bitmap runlist is malformed"));
        };
        // Bytes of the bitmap still to read, in VCN order.
        let mut covered = 0u64;
        for run in &runs {
            let Some(lcn) = run.lcn else {
                return Err(MapError::corrupt(io, "$Bitmap has a sparse run"));
            };
            if lcn.checked_add(run.len).is_none_or(|e| e > clusters) {
                return Err(MapError::corrupt(
                    io,
                    format!("$Bitmap run at cluster {lcn} is outside the volume"),
                ));
            }
            if run.vcn.saturating_mul(cs) != covered {
                return Err(MapError::corrupt(io, "$Bitmap runs are not in order"));
            }
            map.mark(lcn * cs, run.len * cs);
            let mut done = 0u64;
            while done < run.len && covered < need {
                let take = (run.len - done).min((1 << 20) / cs.max(1)).max(1);
                let bytes = (take * cs).min(need - covered);
                let buf = read(io, (lcn + done) * cs, bytes, "$Bitmap")?;
                let first = covered * 8;
                map.mark_bitmap(&buf, clusters.saturating_sub(first), first * cs, cs);
                covered += bytes;
                done += take;
            }
            if covered >= need {
                break;
            }
            covered = run.vcn.saturating_add(run.len).saturating_mul(cs);
        }
        if covered < need {
            return Err(MapError::corrupt(
                io,
                "$Bitmap runlist ends before the volume does",
            ));
        }
    }
    // The boot sector, and its backup in the sector after the last volume sector.
    map.mark(0, boot.sector_size);
    map.mark(
        boot.total_sectors.saturating_mul(boot.sector_size),
        boot.sector_size,
    );
    map.mark(io.len().saturating_sub(boot.sector_size), boot.sector_size);
    Ok(map)
}
