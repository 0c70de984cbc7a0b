//! LVM2 physical volumes: the label, the PV header, the metadata area and its text metadata (the
//! volume group, its logical volumes and their segments), a [`BlockIo`] view of one logical volume
//! ([`LvIo`]) and the PV's used-block map.
//!
//! The map of a PV holds everything before the first physical extent (label, metadata area, boot
//! loader space), every metadata area, everything after the last extent, and per logical volume
//! either the used blocks of its file system (mapped through its segments to PV offsets) or, when
//! the LV cannot be mapped that way, every extent it occupies on this PV. Only visible LVs whose
//! segments are all linear (`striped` with one stripe) on this PV are mapped by their file
//! system; thin pools, snapshots and their origins, RAID, mirror, cache, multi-stripe LVs and LVs
//! with extents on other PVs are kept whole, with the reason in [`LvReport::note`]. Unallocated
//! extents are free.
//!
//! Everything read is untrusted: the text is bounded by the metadata area and [`MAX_TEXT`], the
//! nesting by [`MAX_DEPTH`], every extent range is checked against the PV, and the text's and the
//! metadata area header's checksums (LVM's CRC-32 variant) must match.

use crate::bytes::{le32, le64, slice};
use crate::map::{read, MapError, UsedMap};
use crate::probe::{FsInfo, FsKind};
use disk::BlockIo;
use serde::Serialize;
use std::io;

const SECTOR: u64 = 512;
const LABEL_ID: &[u8] = b"LABELONE";
const LABEL_TYPE: &[u8] = b"LVM2 001";
const MDA_MAGIC: &[u8] = b"\x20LVM2\x20x[5A%r0N*>";
const MDA_HEADER_SIZE: u64 = 512;
/// Largest metadata text accepted (real ones are a few KiB; the area is usually 1 MiB).
pub const MAX_TEXT: u64 = 4 << 20;
/// Deepest section nesting accepted (real metadata nests four deep).
pub const MAX_DEPTH: usize = 16;
/// Most data or metadata area descriptors read from the PV header.
const MAX_AREAS: usize = 8;
/// Most logical volumes and segments per LV accepted.
const MAX_LVS: usize = 4096;
const MAX_SEGMENTS: usize = 4096;
/// LVM's CRC-32 starts from this value and skips the final inversion.
const INITIAL_CRC: u32 = 0xf597_a6cf;
const RAW_LOCN_IGNORED: u32 = 1;

/// LVM's checksum: the reflected CRC-32 (polynomial 0xEDB88320) from `0xf597a6cf`, no final
/// inversion.
pub fn lvm_crc(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(!INITIAL_CRC);
    h.update(data);
    !h.finalize()
}

// ---------------------------------------------------------------------------------------------
// The metadata text

/// A value of the metadata text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Number(i64),
    Text(String),
    List(Vec<Value>),
    Section(Vec<(String, Value)>),
}

impl Value {
    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Section(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn number(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    fn text(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    fn sections(&self) -> impl Iterator<Item = (&str, &Value)> {
        let items: &[(String, Value)] = match self {
            Value::Section(items) => items,
            _ => &[],
        };
        items
            .iter()
            .filter(|(_, v)| matches!(v, Value::Section(_)))
            .map(|(k, v)| (k.as_str(), v))
    }
    fn texts(&self, key: &str) -> Vec<&str> {
        match self.get(key) {
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|v| match v {
                    Value::Text(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Parses LVM2 metadata text (`key = value`, `name { ... }`, `#` comments) into a section.
/// Errors name the byte offset and what was wrong.
pub fn parse_text(text: &[u8]) -> Result<Value, String> {
    if text.len() as u64 > MAX_TEXT {
        return Err(format!(
            "metadata text of {} bytes is too large",
            text.len()
        ));
    }
    let mut p = Parser { s: text, i: 0 };
    let items = p.items(0)?;
    p.skip_space();
    if p.i < p.s.len() {
        return Err(format!(
            "unexpected {:?} at byte {}",
            char::from(p.s[p.i]),
            p.i
        ));
    }
    Ok(Value::Section(items))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'#' {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.i += 1;
                }
            } else if c.is_ascii_whitespace() || c == 0 {
                // The text ends with a NUL in the area; treat stray NULs as space.
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn ident(&mut self) -> Option<String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'+'))
        {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// Items until `}` (depth > 0) or the end (depth 0).
    fn items(&mut self, depth: usize) -> Result<Vec<(String, Value)>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("sections nested deeper than {MAX_DEPTH}"));
        }
        let mut items = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None if depth == 0 => return Ok(items),
                None => return Err("unterminated section".into()),
                Some(b'}') if depth > 0 => {
                    self.i += 1;
                    return Ok(items);
                }
                _ => {}
            }
            let at = self.i;
            let key = self
                .ident()
                .ok_or_else(|| format!("expected a name at byte {at}"))?;
            self.skip_space();
            match self.peek() {
                Some(b'=') => {
                    self.i += 1;
                    let v = self.value(depth)?;
                    items.push((key, v));
                }
                Some(b'{') => {
                    self.i += 1;
                    let inner = self.items(depth + 1)?;
                    items.push((key, Value::Section(inner)));
                }
                _ => return Err(format!("expected '=' or '{{' after {key:?} at byte {at}")),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        self.skip_space();
        let at = self.i;
        match self.peek() {
            Some(b'"') => self.string().map(Value::Text),
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(format!("lists nested deeper than {MAX_DEPTH}"));
                }
                self.i += 1;
                let mut list = Vec::new();
                loop {
                    self.skip_space();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        return Ok(Value::List(list));
                    }
                    if !list.is_empty() {
                        if self.peek() != Some(b',') {
                            return Err(format!("expected ',' or ']' at byte {}", self.i));
                        }
                        self.i += 1;
                        self.skip_space();
                    }
                    list.push(self.value(depth + 1)?);
                }
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                self.i += 1;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'.') {
                    self.i += 1;
                }
                let s = std::str::from_utf8(&self.s[at..self.i]).unwrap_or("");
                match s.parse::<i64>() {
                    Ok(n) => Ok(Value::Number(n)),
                    // Floats do not occur in VG metadata; keep them as text.
                    Err(_) if s.contains('.') && s.parse::<f64>().is_ok() => {
                        Ok(Value::Text(s.to_string()))
                    }
                    Err(_) => Err(format!("bad number {s:?} at byte {at}")),
                }
            }
            _ => Err(format!("expected a value at byte {at}")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let at = self.i;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated string at byte {at}")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c) => out.push(c),
                        None => return Err(format!("unterminated string at byte {at}")),
                    }
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The PV and its volume group

/// One segment of a logical volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub start_extent: u64,
    pub extent_count: u64,
    /// `striped` (linear when it has one stripe), `thin-pool`, `raid1`, `snapshot`, ...
    pub kind: String,
    /// For `striped`: (PV name as in the metadata, first extent on it) per stripe.
    pub stripes: Vec<(String, u64)>,
    /// For other types: every name the segment mentions (origin, COW store, pool, RAID images,
    /// mirror legs, ...).
    pub refs: Vec<String>,
}

/// A logical volume as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lv {
    pub name: String,
    pub uuid: String,
    /// Size in bytes (the sum of its segments' extents).
    pub size: u64,
    pub visible: bool,
    pub segments: Vec<Segment>,
}

/// What the PV label, header and newest metadata say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pv {
    /// PV UUID as LVM prints it (`xxxxxx-xxxx-...`).
    pub uuid: String,
    pub vg_name: String,
    pub vg_uuid: String,
    pub seqno: u64,
    /// This PV's name inside the metadata (`pv0`, ...).
    pub pv_name: String,
    /// PVs of the volume group.
    pub pv_count: usize,
    /// Bytes per extent.
    pub extent_size: u64,
    /// Byte offset of the first extent.
    pub pe_start: u64,
    pub pe_count: u64,
    /// Metadata areas (byte offset, length) from the PV header.
    pub metadata_areas: Vec<(u64, u64)>,
    pub lvs: Vec<Lv>,
}

fn corrupt(io: &dyn BlockIo, what: impl Into<String>) -> MapError {
    MapError::corrupt(io, format!("LVM2 PV: {}", what.into()))
}

fn dashed(raw: &[u8]) -> String {
    let mut s = String::with_capacity(38);
    for (i, &c) in raw.iter().enumerate() {
        if matches!(i, 6 | 10 | 14 | 18 | 22 | 26) {
            s.push('-');
        }
        s.push(char::from(c));
    }
    s
}

fn to_u64(n: Option<i64>, io: &dyn BlockIo, what: &str) -> Result<u64, MapError> {
    n.and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| corrupt(io, format!("{what} missing or negative")))
}

/// Reads the PV label, header, metadata area and newest metadata of the PV on `io`.
pub fn read_pv(io: &dyn BlockIo) -> Result<Pv, MapError> {
    let head = read(io, 0, 4 * SECTOR, "LVM2 label")?;
    let mut found = None;
    for sector in 0..4usize {
        let s = slice(&head, sector * 512, 512);
        if slice(s, 0, 8) == LABEL_ID
            && slice(s, 24, 8) == LABEL_TYPE
            && le64(s, 8) == sector as u64
        {
            found = Some((sector, s));
            break;
        }
    }
    let Some((sector, label)) = found else {
        return Err(MapError::NotRecognised {
            device: io.describe(),
            kind: FsKind::Lvm2Member,
        });
    };
    if lvm_crc(slice(label, 20, 492)) != le32(label, 16) {
        return Err(corrupt(
            io,
            format!("label in sector {sector} fails its checksum"),
        ));
    }
    let pvh = le32(label, 20) as usize;
    if !(32..=480).contains(&pvh) {
        return Err(corrupt(io, "PV header offset outside the label sector"));
    }
    let raw_uuid = slice(label, pvh, 32);
    if raw_uuid.len() != 32 || !raw_uuid.iter().all(u8::is_ascii_alphanumeric) {
        return Err(corrupt(io, "PV UUID is not 32 alphanumeric characters"));
    }
    let uuid = dashed(raw_uuid);
    // Data area list, then metadata area list, each ended by a zero entry.
    let mut off = pvh + 40;
    let mut lists: [Vec<(u64, u64)>; 2] = [Vec::new(), Vec::new()];
    for list in &mut lists {
        loop {
            if off + 16 > 512 {
                return Err(corrupt(
                    io,
                    "PV header area lists run past the label sector",
                ));
            }
            let (o, n) = (le64(label, off), le64(label, off + 8));
            off += 16;
            if o == 0 {
                break;
            }
            if list.len() >= MAX_AREAS {
                return Err(corrupt(io, "too many areas in the PV header"));
            }
            list.push((o, n));
        }
    }
    let [_data_areas, metadata_areas] = lists;
    for &(o, n) in &metadata_areas {
        if o.checked_add(n).is_none_or(|e| e > io.len()) || n < MDA_HEADER_SIZE {
            return Err(corrupt(io, format!("metadata area {o}+{n} outside the PV")));
        }
    }
    let mut last_err = corrupt(io, "no metadata area");
    let mut best: Option<(u64, Value)> = None;
    for &(o, n) in &metadata_areas {
        match read_mda(io, o, n) {
            Ok(Some(v)) => {
                let seq = v
                    .sections()
                    .next()
                    .and_then(|(_, vg)| vg.number("seqno"))
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0);
                if best.as_ref().is_none_or(|(s, _)| seq > *s) {
                    best = Some((seq, v));
                }
            }
            Ok(None) => {}
            Err(e) => last_err = e,
        }
    }
    let Some((_, text)) = best else {
        return Err(last_err);
    };
    vg_from_text(io, &text, uuid, metadata_areas)
}

/// The metadata text of one area, parsed; `None` when the area is marked ignored or empty.
fn read_mda(io: &dyn BlockIo, start: u64, size: u64) -> Result<Option<Value>, MapError> {
    let h = read(io, start, MDA_HEADER_SIZE, "metadata area header")?;
    if slice(&h, 4, 16) != MDA_MAGIC {
        return Err(corrupt(io, format!("no metadata area header at {start}")));
    }
    if lvm_crc(slice(&h, 4, 508)) != le32(&h, 0) {
        return Err(corrupt(
            io,
            format!("metadata area header at {start} fails its checksum"),
        ));
    }
    if le64(&h, 24) != start || le64(&h, 32) != size {
        return Err(corrupt(
            io,
            format!("metadata area header at {start} describes another area"),
        ));
    }
    let (off, len, crc, flags) = (le64(&h, 40), le64(&h, 48), le32(&h, 56), le32(&h, 60));
    if off == 0 || flags & RAW_LOCN_IGNORED != 0 {
        return Ok(None);
    }
    let ring = size - MDA_HEADER_SIZE;
    if off < MDA_HEADER_SIZE || off >= size || len > ring || len > MAX_TEXT {
        return Err(corrupt(
            io,
            format!("metadata text {off}+{len} outside its area of {size}"),
        ));
    }
    // A circular buffer after the header: the text may wrap to its start.
    let first = len.min(size - off);
    let mut text = read(io, start + off, first, "metadata text")?;
    if first < len {
        text.extend(read(
            io,
            start + MDA_HEADER_SIZE,
            len - first,
            "metadata text",
        )?);
    }
    let computed = lvm_crc(&text);
    if computed != crc {
        return Err(corrupt(
            io,
            format!("metadata text fails its checksum (stored {crc:#x}, computed {computed:#x})"),
        ));
    }
    parse_text(&text)
        .map(Some)
        .map_err(|e| corrupt(io, format!("metadata text: {e}")))
}

fn vg_from_text(
    io: &dyn BlockIo,
    text: &Value,
    uuid: String,
    metadata_areas: Vec<(u64, u64)>,
) -> Result<Pv, MapError> {
    let (vg_name, vg) = text
        .sections()
        .next()
        .ok_or_else(|| corrupt(io, "metadata holds no volume group"))?;
    let extent_sectors = to_u64(vg.number("extent_size"), io, "extent_size")?;
    let extent_size = extent_sectors
        .checked_mul(SECTOR)
        .filter(|&n| n > 0)
        .ok_or_else(|| corrupt(io, "bad extent_size"))?;
    let pvs = vg
        .get("physical_volumes")
        .ok_or_else(|| corrupt(io, "no physical_volumes"))?;
    let plain: String = uuid.chars().filter(|&c| c != '-').collect();
    let (pv_name, pv) = pvs
        .sections()
        .find(|(_, p)| {
            p.text("id")
                .is_some_and(|id| id.chars().filter(|&c| c != '-').eq(plain.chars()))
        })
        .ok_or_else(|| {
            corrupt(
                io,
                format!("PV {uuid} is not in the metadata of VG {vg_name}"),
            )
        })?;
    let pe_start = to_u64(pv.number("pe_start"), io, "pe_start")?
        .checked_mul(SECTOR)
        .ok_or_else(|| corrupt(io, "bad pe_start"))?;
    if pe_start < 4 * SECTOR {
        return Err(corrupt(
            io,
            format!("pe_start {pe_start} overlaps the label"),
        ));
    }
    let pe_count = to_u64(pv.number("pe_count"), io, "pe_count")?;
    let end = pe_count
        .checked_mul(extent_size)
        .and_then(|n| n.checked_add(pe_start))
        .ok_or_else(|| corrupt(io, "extent area overflows"))?;
    if end > io.len() {
        return Err(MapError::LargerThanPartition {
            device: io.describe(),
            kind: FsKind::Lvm2Member,
            fs_bytes: end,
            partition_bytes: io.len(),
        });
    }
    let mut lvs = Vec::new();
    if let Some(list) = vg.get("logical_volumes") {
        for (name, lv) in list.sections() {
            if lvs.len() >= MAX_LVS {
                return Err(corrupt(io, "too many logical volumes"));
            }
            lvs.push(lv_from_text(io, name, lv, extent_size)?);
        }
    }
    Ok(Pv {
        uuid,
        vg_name: vg_name.to_string(),
        vg_uuid: vg.text("id").unwrap_or_default().to_string(),
        seqno: vg
            .number("seqno")
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        pv_name: pv_name.to_string(),
        pv_count: pvs.sections().count(),
        extent_size,
        pe_start,
        pe_count,
        metadata_areas,
        lvs,
    })
}

fn collect_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Text(t) => out.push(t.clone()),
        Value::List(l) => l.iter().for_each(|v| collect_texts(v, out)),
        Value::Section(items) => items.iter().for_each(|(_, v)| collect_texts(v, out)),
        Value::Number(_) => {}
    }
}

fn lv_from_text(io: &dyn BlockIo, name: &str, lv: &Value, extent: u64) -> Result<Lv, MapError> {
    let mut segments = Vec::new();
    for (key, seg) in lv.sections() {
        if !key.starts_with("segment") {
            continue;
        }
        if segments.len() >= MAX_SEGMENTS {
            return Err(corrupt(io, format!("LV {name}: too many segments")));
        }
        let start_extent = to_u64(seg.number("start_extent"), io, "start_extent")?;
        let extent_count = to_u64(seg.number("extent_count"), io, "extent_count")?;
        let kind = seg.text("type").unwrap_or("").to_string();
        let mut stripes = Vec::new();
        if kind == "striped" {
            if let Some(Value::List(l)) = seg.get("stripes") {
                for pair in l.chunks(2) {
                    match pair {
                        [Value::Text(pv), Value::Number(n)] if *n >= 0 => {
                            stripes.push((pv.clone(), *n as u64))
                        }
                        _ => return Err(corrupt(io, format!("LV {name}: bad stripes list"))),
                    }
                }
            }
            let count = to_u64(seg.number("stripe_count"), io, "stripe_count")?;
            if count == 0 || count != stripes.len() as u64 || extent_count % count != 0 {
                return Err(corrupt(io, format!("LV {name}: bad stripe_count {count}")));
            }
        }
        let mut refs = Vec::new();
        if kind != "striped" {
            if let Value::Section(items) = seg {
                for (_, v) in items.iter().filter(|(k, _)| k != "type") {
                    collect_texts(v, &mut refs);
                }
            }
        }
        segments.push(Segment {
            start_extent,
            extent_count,
            kind,
            stripes,
            refs,
        });
    }
    segments.sort_by_key(|s| s.start_extent);
    let mut next = 0u64;
    for s in &segments {
        if s.start_extent != next {
            return Err(corrupt(
                io,
                format!("LV {name}: segments are not contiguous"),
            ));
        }
        next = next
            .checked_add(s.extent_count)
            .ok_or_else(|| corrupt(io, format!("LV {name}: extent count overflows")))?;
    }
    let size = next
        .checked_mul(extent)
        .ok_or_else(|| corrupt(io, format!("LV {name}: size overflows")))?;
    Ok(Lv {
        name: name.to_string(),
        uuid: lv.text("id").unwrap_or_default().to_string(),
        size,
        visible: lv.texts("status").contains(&"VISIBLE"),
        segments,
    })
}

// ---------------------------------------------------------------------------------------------
// The view of one LV

/// One piece of an LV: `len` bytes at LV offset `lv` live at PV offset `pv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    lv: u64,
    pv: u64,
    len: u64,
}

/// A logical volume whose segments are all linear on one PV, seen as a device of its own: reads
/// at LV offsets go to the PV offsets its segments map them to. Read-only. It borrows the PV
/// ([`LvIo::new`]) or owns it ([`LvIo::owned`], for a view handed on as `Box<dyn BlockIo>`).
pub struct LvIo<'a> {
    pv: PvRef<'a>,
    name: String,
    len: u64,
    pieces: Vec<Piece>,
}

enum PvRef<'a> {
    Borrowed(&'a dyn BlockIo),
    Owned(Box<dyn BlockIo>),
}

impl std::fmt::Debug for LvIo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LvIo")
            .field("pv", &self.pv().describe())
            .field("name", &self.name)
            .field("len", &self.len)
            .field("pieces", &self.pieces)
            .finish()
    }
}

impl<'a> LvIo<'a> {
    /// The view of `lv` of `meta` on `pv`; `Err` with the reason when the LV is not made only of
    /// linear segments on this PV.
    pub fn new(pv: &'a dyn BlockIo, meta: &Pv, lv: &Lv) -> Result<Self, String> {
        Ok(LvIo {
            pv: PvRef::Borrowed(pv),
            name: lv.name.clone(),
            len: lv.size,
            pieces: pieces(meta, lv)?,
        })
    }

    /// The PV the view reads from.
    fn pv(&self) -> &dyn BlockIo {
        match &self.pv {
            PvRef::Borrowed(pv) => *pv,
            PvRef::Owned(pv) => pv.as_ref(),
        }
    }
}

impl LvIo<'static> {
    /// Like [`LvIo::new`], owning the PV.
    pub fn owned(pv: Box<dyn BlockIo>, meta: &Pv, lv: &Lv) -> Result<Self, String> {
        Ok(LvIo {
            pieces: pieces(meta, lv)?,
            pv: PvRef::Owned(pv),
            name: lv.name.clone(),
            len: lv.size,
        })
    }
}

/// Where `lv`'s bytes lie on this PV; `Err` with the reason when the LV is not made only of
/// linear segments on it.
fn pieces(meta: &Pv, lv: &Lv) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    for s in &lv.segments {
        if s.kind != "striped" {
            return Err(format!("{} segment", s.kind));
        }
        let [(pv_name, first)] = s.stripes.as_slice() else {
            return Err(format!("{} stripes", s.stripes.len()));
        };
        if *pv_name != meta.pv_name {
            return Err(format!("extents on another PV ({pv_name})"));
        }
        let in_pv = first
            .checked_add(s.extent_count)
            .is_some_and(|e| e <= meta.pe_count);
        if !in_pv {
            return Err(format!("extents {first}+{} outside the PV", s.extent_count));
        }
        // Cannot overflow: pe_start + pe_count * extent_size was checked against the PV.
        pieces.push(Piece {
            lv: s.start_extent * meta.extent_size,
            pv: meta.pe_start + first * meta.extent_size,
            len: s.extent_count * meta.extent_size,
        });
    }
    Ok(pieces)
}

impl LvIo<'_> {
    /// Calls `f(pv_offset, len)` for every PV range holding LV bytes `[offset, offset+len)`.
    fn walk(&self, offset: u64, len: u64, mut f: impl FnMut(u64, u64, u64)) {
        let end = offset.saturating_add(len).min(self.len);
        for p in &self.pieces {
            let (s, e) = (offset.max(p.lv), end.min(p.lv + p.len));
            if s < e {
                f(s - offset, p.pv + (s - p.lv), e - s);
            }
        }
    }
}

impl BlockIo for LvIo<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn logical_sector_size(&self) -> u32 {
        self.pv().logical_sector_size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: read of {} bytes at {offset} past the end",
                    self.describe(),
                    buf.len()
                ),
            ));
        }
        let mut result = Ok(());
        self.walk(offset, buf.len() as u64, |at, pv, n| {
            if result.is_ok() {
                let (at, n) = (at as usize, n as usize);
                result = self.pv().read_at(&mut buf[at..at + n], pv);
            }
        });
        result
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is read-only", self.describe()),
        ))
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} LV {}", self.pv().describe(), self.name)
    }
}

// ---------------------------------------------------------------------------------------------
// The PV's used map

/// What a backup keeps of one LV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LvReport {
    pub name: String,
    pub uuid: String,
    pub size: u64,
    pub visible: bool,
    /// The LV's segment types, e.g. `linear`, `striped`, `thin-pool`.
    pub layout: String,
    /// The file system found in it (mapped LVs, and whole LVs that could be probed).
    pub fs: Option<FsInfo>,
    /// Bytes a backup stores of it on this PV.
    pub stored: u64,
    /// Why it is kept whole, when it is.
    pub note: Option<String>,
}

impl LvReport {
    /// A one-line summary for plans: `root (ext4, 1.2 GiB used)`, `swap (swap: header only)`,
    /// `pool (thin-pool: whole)`.
    pub fn summary(&self) -> String {
        let fs = self.fs.as_ref().map_or("no file system", |f| f.kind.name());
        match (&self.note, self.fs.as_ref().map(|f| f.kind)) {
            (Some(note), _) => format!("lv {} ({fs}: whole, {note})", self.name),
            (None, Some(FsKind::Swap)) => format!("lv {} (swap: header only)", self.name),
            (None, _) => format!("lv {} ({fs}, {} used)", self.name, human(self.stored)),
        }
    }
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A PV with its volume group and what a backup keeps of each LV.
#[derive(Debug, Clone, Serialize)]
pub struct PvReport {
    pub pv: Pv,
    pub lvs: Vec<LvReport>,
    /// The PV's used map (label, metadata areas, LV data as described).
    #[serde(skip)]
    pub map: UsedMap,
}

impl PvReport {
    /// `LVM2 PV, VG vg0: lv root (ext4, 1.2 GiB used), lv swap (swap: header only)`.
    pub fn summary(&self) -> String {
        let lvs: Vec<String> = self
            .lvs
            .iter()
            .filter(|l| l.visible || l.note.is_some())
            .map(LvReport::summary)
            .collect();
        let mut s = format!("LVM2 PV, VG {}", self.pv.vg_name);
        if self.pv.pv_count > 1 {
            s.push_str(&format!(" ({} PVs)", self.pv.pv_count));
        }
        if lvs.is_empty() {
            s.push_str(": no LVs");
        } else {
            s.push_str(": ");
            s.push_str(&lvs.join(", "));
        }
        s
    }
}

/// Reads the PV on `io` and builds its used map and per-LV report.
pub fn pv_report(io: &dyn BlockIo) -> Result<PvReport, MapError> {
    let pv = read_pv(io)?;
    let mut map = UsedMap::new(4096, io.len())?;
    // Label, first metadata area, boot loader space; the tail after the last extent.
    map.mark(0, pv.pe_start);
    let end = pv.pe_start + pv.pe_count * pv.extent_size;
    map.mark(end, io.len() - end);
    for &(o, n) in &pv.metadata_areas {
        map.mark(o, n);
    }
    // LVs other segments name (snapshot origins and COW stores, pool data and metadata, RAID
    // images, mirror legs, caches) are kept whole.
    let mut named: Vec<String> = pv
        .lvs
        .iter()
        .flat_map(|lv| lv.segments.iter().flat_map(|s| s.refs.iter().cloned()))
        .collect();
    named.sort();
    named.dedup();
    let mut lvs = Vec::new();
    for lv in &pv.lvs {
        lvs.push(map_lv(io, &pv, lv, &named, &mut map)?);
    }
    Ok(PvReport { pv, lvs, map })
}

fn map_lv(
    io: &dyn BlockIo,
    pv: &Pv,
    lv: &Lv,
    named: &[String],
    map: &mut UsedMap,
) -> Result<LvReport, MapError> {
    let layout = {
        let mut kinds: Vec<String> = lv
            .segments
            .iter()
            .map(|s| match (s.kind.as_str(), s.stripes.len()) {
                ("striped", 1) => "linear".to_string(),
                (k, _) => k.to_string(),
            })
            .collect();
        kinds.dedup();
        kinds.join("+")
    };
    // Every extent of this LV on this PV, checked.
    let mut extents = Vec::new();
    for s in &lv.segments {
        let per = s.extent_count / (s.stripes.len().max(1) as u64);
        for (name, first) in &s.stripes {
            if *name != pv.pv_name {
                continue;
            }
            if first.checked_add(per).is_none_or(|e| e > pv.pe_count) {
                return Err(corrupt(
                    io,
                    format!("LV {}: extents {first}+{per} outside the PV", lv.name),
                ));
            }
            extents.push((pv.pe_start + first * pv.extent_size, per * pv.extent_size));
        }
    }
    let mut report = LvReport {
        name: lv.name.clone(),
        uuid: lv.uuid.clone(),
        size: lv.size,
        visible: lv.visible,
        layout,
        fs: None,
        stored: 0,
        note: None,
    };
    let whole_reason = if !lv.visible {
        Some("hidden LV".to_string())
    } else if named.contains(&lv.name) {
        Some("used by another LV (snapshot, pool, RAID, cache)".to_string())
    } else {
        LvIo::new(io, pv, lv).err()
    };
    let mapped = match whole_reason {
        Some(r) => {
            // Still say what it holds when it can be read as a device of its own.
            if let Ok(view) = LvIo::new(io, pv, lv) {
                report.fs = crate::probe::probe(&view).ok().flatten();
            }
            Err(r)
        }
        None => {
            // Cannot fail: checked above.
            let view = LvIo::new(io, pv, lv).map_err(|e| corrupt(io, e))?;
            match crate::probe::probe(&view) {
                Ok(Some(info)) if info.kind == FsKind::Lvm2Member => {
                    report.fs = Some(info);
                    Err("a PV inside an LV".to_string())
                }
                Ok(Some(info)) => {
                    let m = crate::map::used_map(&view, &info);
                    report.fs = Some(info);
                    match m {
                        Ok(m) => Ok((view, m)),
                        Err(e) => Err(format!("file system not mapped: {e}")),
                    }
                }
                Ok(None) => Err("no known file system".to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match mapped {
        Ok((view, lv_map)) => {
            for r in lv_map.ranges() {
                view.walk(r.start, r.end - r.start, |_, at, n| map.mark(at, n));
            }
            report.stored = lv_map.used_bytes();
        }
        Err(reason) => {
            for &(o, n) in &extents {
                map.mark(o, n);
            }
            report.stored = extents.iter().map(|e| e.1).sum();
            report.note = Some(reason);
        }
    }
    Ok(report)
}

/// The used map of an LVM2 PV (see the module documentation).
pub(crate) fn used_map(io: &dyn BlockIo) -> Result<UsedMap, MapError> {
    Ok(pv_report(io)?.map)
}
