//! Reading a partition table: sector-size detection, GPT with both copies checked, MBR with the
//! EBR chain, and the sanity checks that turn odd tables into warnings.

use crate::gpt::{self, Header};
use crate::mbr;
use crate::model::{
    entries_sectors, is_extended_type, Ebr, GptCopy, GptDamage, GptHealth, GptInfo, HeaderStatus,
    Layout, MbrEntry, MbrInfo, Partition, PartitionType, Protection, TableKind, Warning,
};
use crate::LayoutError;
use disk::BlockIo;
use std::collections::HashSet;

/// Most logical partitions followed in an EBR chain.
pub const MAX_LOGICAL: usize = 256;
/// Most warnings of one kind kept (fuzzed tables can have thousands of overlaps).
const MAX_OVERLAP_WARNINGS: usize = 32;

/// Reads the partition table of `io`.
///
/// Tries the device's logical sector size first, then 4096 and 512 bytes, so that a 4K-sector
/// disk image seen through a 512-byte view (or the reverse) is still understood;
/// [`Layout::sector_size`] says which one the table uses. A GPT whose primary copy is damaged is
/// read from its backup and the damage is reported in [`GptInfo::health`]. Odd but readable
/// tables (overlaps, partitions past the end, broken EBR chains) give [`Layout::warnings`].
pub fn read(io: &dyn BlockIo) -> Result<Layout, LayoutError> {
    let device = io.describe();
    let len = io.len();
    if len < 512 {
        return Err(LayoutError::DeviceTooSmall { device, len });
    }
    let dev_ss = io.logical_sector_size();
    let lba0 = read_vec(io, 0, 512)?;
    let candidates = sector_candidates(dev_ss);
    let mbr_ok = mbr::not_an_mbr(&lba0).is_none();
    let mbr_entries = mbr::parse_entries(&lba0);
    let has_ee = mbr_ok && mbr_entries.iter().any(|e| e.kind == 0xEE && !e.is_empty());
    // A classic MBR with partitions wins over GPT headers, as in the Linux kernel and libblkid
    // (a GPT needs a protective MBR); the GPT headers are reported as stale.
    if mbr_ok && !has_ee && mbr_entries.iter().any(|e| !e.is_empty()) {
        return read_mbr(io, valid_ss(dev_ss), &lba0);
    }

    // A primary GPT header at any candidate sector size.
    for &ss in &candidates {
        if len >= 2 * u64::from(ss) {
            let mut sector = vec![0u8; ss as usize];
            if io.read_at(&mut sector, u64::from(ss)).is_ok() && gpt::has_signature(&sector) {
                if let Some(layout) = read_gpt(io, ss, &lba0)? {
                    return Ok(layout);
                }
            }
        }
    }
    // No primary signature: the GPT is read from its backup copy when LBA 0 protects it. (A
    // backup alone is not enough: `mkfs` on a whole former GPT disk leaves one at the end.)
    if has_ee {
        for &ss in &candidates {
            if let Some(layout) = read_gpt(io, ss, &lba0)? {
                return Ok(layout);
            }
        }
    }
    if has_ee {
        let lba = 1;
        return Err(LayoutError::GptUnreadable {
            device,
            primary: GptDamage::BadSignature { lba },
            backup: GptDamage::BadSignature {
                lba: (len / u64::from(valid_ss(dev_ss))).saturating_sub(1),
            },
        });
    }
    if mbr_ok {
        return read_mbr(io, valid_ss(dev_ss), &lba0);
    }
    log::debug!(
        "{device}: no partition table ({})",
        mbr::not_an_mbr(&lba0).unwrap_or("unknown")
    );
    let mut warnings = Vec::new();
    for &ss in &candidates {
        let last = (len / u64::from(ss)).saturating_sub(1);
        let mut sector = vec![0u8; ss as usize];
        if last >= 2
            && io.read_at(&mut sector, last * u64::from(ss)).is_ok()
            && gpt::has_signature(&sector)
        {
            log::warn!(
                "{device}: a backup GPT header at LBA {last} is ignored (no protective MBR)"
            );
            warnings.push(Warning::StaleGpt { lba: last });
        }
    }
    Ok(Layout {
        device,
        disk_size: len,
        sector_size: valid_ss(dev_ss),
        device_sector_size: dev_ss,
        kind: TableKind::None,
        partitions: Vec::new(),
        boot_code: Vec::new(),
        warnings,
    })
}

/// Reads a GPT from either copy even when LBA 0 holds no protective MBR and LBA 1 no header:
/// the explicit recovery for a disk whose first sectors were wiped, where [`read`] reports only
/// a [`Warning::StaleGpt`]. Fails with [`LayoutError::NoTable`] when no copy is found.
pub fn recover_gpt(io: &dyn BlockIo) -> Result<Layout, LayoutError> {
    let len = io.len();
    if len < 512 {
        return Err(LayoutError::DeviceTooSmall {
            device: io.describe(),
            len,
        });
    }
    let lba0 = read_vec(io, 0, 512)?;
    for ss in sector_candidates(io.logical_sector_size()) {
        if let Some(layout) = read_gpt(io, ss, &lba0)? {
            return Ok(layout);
        }
    }
    Err(LayoutError::NoTable {
        device: io.describe(),
    })
}

fn valid_ss(ss: u32) -> u32 {
    if ss.is_power_of_two() && (512..=65536).contains(&ss) {
        ss
    } else {
        512
    }
}

fn sector_candidates(dev_ss: u32) -> Vec<u32> {
    let mut c = vec![valid_ss(dev_ss)];
    for ss in [4096, 512] {
        if !c.contains(&ss) {
            c.push(ss);
        }
    }
    c
}

fn read_vec(io: &dyn BlockIo, offset: u64, len: usize) -> Result<Vec<u8>, LayoutError> {
    let mut buf = vec![0u8; len];
    io.read_at(&mut buf, offset)
        .map_err(|source| LayoutError::Read {
            device: io.describe(),
            offset,
            len: len as u64,
            source,
        })?;
    Ok(buf)
}

/// A header plus its checked entries array.
struct Copy {
    header: Header,
    entries: Vec<u8>,
}

/// Reads one GPT copy at `lba`: `Ok` when header and entries are valid; `Err((damage,
/// header_if_valid))` otherwise.
fn read_copy(
    io: &dyn BlockIo,
    ss: u32,
    lba: u64,
    total: u64,
) -> Result<Copy, (GptDamage, Option<Header>)> {
    if lba >= total {
        let error = format!("past the end of the disk ({total} sectors)");
        return Err((GptDamage::Unreadable { lba, error }, None));
    }
    let mut sector = vec![0u8; ss as usize];
    let offset = lba * u64::from(ss);
    if let Err(e) = io.read_at(&mut sector, offset) {
        return Err((
            GptDamage::Unreadable {
                lba,
                error: e.to_string(),
            },
            None,
        ));
    }
    let header = gpt::parse_header(&sector, lba, ss).map_err(|d| (d, None))?;
    let bytes = u64::from(header.entry_count) * u64::from(header.entry_size);
    let mut entries = vec![0u8; bytes as usize];
    if let Err(e) = io.read_at(
        &mut entries,
        header.entries_lba.saturating_mul(u64::from(ss)),
    ) {
        let d = GptDamage::Unreadable {
            lba: header.entries_lba,
            error: e.to_string(),
        };
        return Err((d, Some(header)));
    }
    if let Err(d) = gpt::check_entries(&header, &entries) {
        return Err((d, Some(header)));
    }
    Ok(Copy { header, entries })
}

fn mbr_info(lba0: &[u8], total: u64) -> Option<MbrInfo> {
    if !mbr::has_boot_signature(lba0) {
        return None;
    }
    let entries = mbr::parse_entries(lba0);
    let ee: Vec<&MbrEntry> = entries
        .iter()
        .filter(|e| e.kind == 0xEE && !e.is_empty())
        .collect();
    let others = entries
        .iter()
        .filter(|e| e.kind != 0xEE && !e.is_empty())
        .count();
    let protection = match (ee.first(), others) {
        (None, _) => Protection::None,
        (Some(_), n) if n > 0 => Protection::Hybrid,
        (Some(e), _) => {
            let end = u64::from(e.start_lba) + u64::from(e.sectors);
            let disk_end = total.min(1 << 32);
            Protection::Protective {
                covers_disk: e.start_lba == 1 && (e.sectors == u32::MAX || end >= disk_end),
            }
        }
    };
    Some(MbrInfo {
        disk_signature: gpt::u32_at(lba0, 440),
        protection,
        entries,
        ebrs: Vec::new(),
    })
}

fn boot_code(lba0: &[u8]) -> Vec<u8> {
    if mbr::has_boot_signature(lba0) {
        lba0.get(..mbr::BOOT_CODE_LEN)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// Reads a GPT with sector size `ss`: `Ok(None)` when neither copy has a signature.
fn read_gpt(io: &dyn BlockIo, ss: u32, lba0: &[u8]) -> Result<Option<Layout>, LayoutError> {
    let device = io.describe();
    let len = io.len();
    let total = len / u64::from(ss);
    if total < 2 {
        return Ok(None);
    }
    let mbr = mbr_info(lba0, total);
    let primary = read_copy(io, ss, 1, total);
    let primary_header = match &primary {
        Ok(c) => Some(c.header.clone()),
        Err((_, h)) => h.clone(),
    };

    // Where to look for the backup: where the primary says, else at the end of the disk, else
    // where the protective MBR ends (the disk grew after the table was made).
    let mut places = Vec::new();
    if let Some(h) = &primary_header {
        places.push(h.alternate_lba);
    }
    places.push(total - 1);
    if let Some(m) = &mbr {
        for e in m
            .entries
            .iter()
            .filter(|e| e.kind == 0xEE && e.sectors != u32::MAX && !e.is_empty())
        {
            places.push(u64::from(e.start_lba) + u64::from(e.sectors) - 1);
        }
    }
    let mut seen = HashSet::new();
    places.retain(|p| *p >= 2 && seen.insert(*p));
    let mut backup: Option<Result<Copy, (GptDamage, Option<Header>)>> = None;
    let mut backup_lba = places.first().copied().unwrap_or(total - 1);
    for &lba in &places {
        let r = read_copy(io, ss, lba, total);
        let usable_header = match &r {
            Ok(_) => true,
            Err((_, h)) => h.is_some(),
        };
        if usable_header {
            backup_lba = lba;
            backup = Some(r);
            break;
        }
        if backup.is_none() {
            backup = Some(r);
        }
    }
    let backup = backup.unwrap_or_else(|| {
        let error = format!("the disk ({total} sectors) is too small to hold a backup GPT");
        Err((
            GptDamage::Unreadable {
                lba: total - 1,
                error,
            },
            None,
        ))
    });
    let signature_seen = |r: &Result<Copy, (GptDamage, Option<Header>)>| {
        !matches!(
            r,
            Err((
                GptDamage::BadSignature { .. } | GptDamage::Unreadable { .. },
                None
            ))
        )
    };
    if !signature_seen(&primary) && !signature_seen(&backup) {
        return Ok(None);
    }

    let (primary_status, primary_copy) = match primary {
        Ok(c) => (HeaderStatus::Ok, Some(c)),
        Err((d, _)) => (HeaderStatus::Damaged(d), None),
    };
    let (mut backup_status, backup_copy) = match backup {
        Ok(c) => (HeaderStatus::Ok, Some(c)),
        Err((d, _)) => (HeaderStatus::Damaged(d), None),
    };
    if backup_copy.is_some() && backup_lba != total - 1 {
        backup_status = HeaderStatus::Misplaced {
            lba: backup_lba,
            expected_lba: total - 1,
        };
    }
    let (used, chosen) = match (&primary_copy, &backup_copy) {
        (Some(p), _) => (GptCopy::Primary, p),
        (None, Some(b)) => (GptCopy::Backup, b),
        (None, None) => {
            let damage = |s: &HeaderStatus| match s {
                HeaderStatus::Damaged(d) => d.clone(),
                _ => GptDamage::BadSignature { lba: 0 },
            };
            return Err(LayoutError::GptUnreadable {
                device,
                primary: damage(&primary_status),
                backup: damage(&backup_status),
            });
        }
    };
    let h = &chosen.header;
    let copies_differ = match (&primary_copy, &backup_copy) {
        (Some(p), Some(b)) => {
            p.header.disk_guid != b.header.disk_guid
                || p.header.first_usable != b.header.first_usable
                || p.header.last_usable != b.header.last_usable
                || p.entries != b.entries
        }
        _ => false,
    };
    let esectors = entries_sectors(h.entry_count, h.entry_size, ss);
    let primary_entries_lba = primary_header.as_ref().map(|p| p.entries_lba).unwrap_or(2);
    let backup_entries_lba = match &backup_copy {
        Some(b) => b.header.entries_lba,
        None => backup_lba.saturating_sub(esectors),
    };
    let mut warnings = Vec::new();
    if u64::from(io.logical_sector_size()) != u64::from(ss) {
        warnings.push(Warning::SectorSizeDiffers {
            device: io.logical_sector_size(),
            table: ss,
        });
    }
    if !matches!(&mbr, Some(m) if m.protection != Protection::None) {
        warnings.push(Warning::NoProtectiveMbr);
    }
    let mut partitions = Vec::new();
    for e in gpt::parse_entries(&chosen.entries, h.entry_count, h.entry_size) {
        let number = e.index + 1;
        if e.first_lba > e.last_lba {
            warnings.push(Warning::InvalidEntry {
                number,
                reason: format!("first LBA {} is after last LBA {}", e.first_lba, e.last_lba),
            });
            continue;
        }
        let (Some(start), Some(end)) = (
            e.first_lba.checked_mul(u64::from(ss)),
            e.last_lba
                .checked_add(1)
                .and_then(|l| l.checked_mul(u64::from(ss))),
        ) else {
            warnings.push(Warning::InvalidEntry {
                number,
                reason: "LBA out of range".into(),
            });
            continue;
        };
        if e.first_lba < h.first_usable || e.last_lba > h.last_usable {
            warnings.push(Warning::OutsideUsable { number });
        }
        partitions.push(Partition {
            number,
            first_lba: e.first_lba,
            last_lba: e.last_lba,
            start,
            size: end - start,
            kind: PartitionType::Gpt(e.type_guid),
            guid: Some(e.guid),
            name: e.name,
            attributes: e.attributes,
            bootable: false,
            is_logical: false,
            is_extended: false,
        });
    }
    let info = GptInfo {
        disk_guid: h.disk_guid,
        first_usable_lba: h.first_usable,
        last_usable_lba: h.last_usable,
        primary_header_lba: 1,
        backup_header_lba: backup_lba,
        primary_entries_lba,
        backup_entries_lba,
        entry_count: h.entry_count,
        entry_size: h.entry_size,
        health: GptHealth {
            primary: primary_status,
            backup: backup_status,
            used,
            copies_differ,
        },
        mbr,
    };
    if !info.health.is_ok() {
        log::warn!("{device}: {}", info.health);
    }
    let mut layout = Layout {
        device,
        disk_size: len,
        sector_size: ss,
        device_sector_size: io.logical_sector_size(),
        kind: TableKind::Gpt(info),
        partitions,
        boot_code: boot_code(lba0),
        warnings,
    };
    finish(&mut layout);
    Ok(Some(layout))
}

fn read_mbr(io: &dyn BlockIo, ss: u32, lba0: &[u8]) -> Result<Layout, LayoutError> {
    let device = io.describe();
    let len = io.len();
    let total = len / u64::from(ss);
    let Some(mut info) = mbr_info(lba0, total) else {
        return Err(LayoutError::NoTable { device });
    };
    let mut warnings = Vec::new();
    let mut partitions = Vec::new();
    let mut extended: Option<(u64, u64)> = None;
    for (i, e) in info.entries.iter().enumerate() {
        let number = i as u32 + 1;
        if e.is_empty() {
            continue;
        }
        if e.start_lba == 0 {
            warnings.push(Warning::InvalidEntry {
                number,
                reason: "it starts at LBA 0 (the MBR itself)".into(),
            });
            continue;
        }
        let first = u64::from(e.start_lba);
        let last = first + u64::from(e.sectors) - 1;
        let is_extended = is_extended_type(e.kind);
        if is_extended {
            if extended.is_none() {
                extended = Some((first, last));
            } else {
                warnings.push(Warning::SeveralExtended);
            }
        }
        partitions.push(Partition {
            number,
            first_lba: first,
            last_lba: last,
            start: first * u64::from(ss),
            size: (last - first + 1) * u64::from(ss),
            kind: PartitionType::Mbr(e.kind),
            guid: None,
            name: String::new(),
            attributes: 0,
            bootable: e.boot_indicator == 0x80,
            is_logical: false,
            is_extended,
        });
    }
    if let Some((ext_first, ext_last)) = extended {
        let (logicals, ebrs) = read_ebr_chain(io, ss, ext_first, ext_last, &mut warnings);
        partitions.extend(logicals);
        info.ebrs = ebrs;
    }
    // Leftover GPT headers (an old GPT disk relabelled by an old tool).
    for lba in [1, total.saturating_sub(1)] {
        let mut sector = vec![0u8; ss as usize];
        if lba > 0
            && io.read_at(&mut sector, lba * u64::from(ss)).is_ok()
            && gpt::has_signature(&sector)
            && !warnings.contains(&Warning::StaleGpt { lba })
        {
            warnings.push(Warning::StaleGpt { lba });
        }
    }
    let mut layout = Layout {
        device,
        disk_size: len,
        sector_size: ss,
        device_sector_size: io.logical_sector_size(),
        kind: TableKind::Mbr(info),
        partitions,
        boot_code: boot_code(lba0),
        warnings,
    };
    finish(&mut layout);
    Ok(layout)
}

/// Follows the EBR chain of the extended partition `ext_first..=ext_last` (LBAs).
fn read_ebr_chain(
    io: &dyn BlockIo,
    ss: u32,
    ext_first: u64,
    ext_last: u64,
    warnings: &mut Vec<Warning>,
) -> (Vec<Partition>, Vec<Ebr>) {
    let mut logicals = Vec::new();
    let mut ebrs = Vec::new();
    let mut seen = HashSet::new();
    let mut cur = ext_first;
    let mut number = 5u32;
    loop {
        if !seen.insert(cur) {
            warnings.push(Warning::EbrLoop { lba: cur });
            break;
        }
        if cur < ext_first || cur > ext_last {
            warnings.push(Warning::EbrOutsideExtended { lba: cur });
            break;
        }
        if ebrs.len() >= MAX_LOGICAL {
            warnings.push(Warning::TooManyLogical { limit: MAX_LOGICAL });
            break;
        }
        let mut sector = vec![0u8; ss.max(512) as usize];
        if let Err(e) = io.read_at(&mut sector, cur * u64::from(ss)) {
            warnings.push(Warning::EbrUnreadable {
                lba: cur,
                reason: e.to_string(),
            });
            break;
        }
        if !mbr::has_boot_signature(&sector) {
            warnings.push(Warning::EbrUnreadable {
                lba: cur,
                reason: "no 0x55AA signature".into(),
            });
            break;
        }
        let entries = mbr::parse_entries(&sector);
        let code = &sector[..mbr::TABLE_OFFSET];
        let boot_code = if code.iter().any(|&b| b != 0) {
            code.to_vec()
        } else {
            Vec::new()
        };
        let mut logical = None;
        let data = &entries[0];
        if !data.is_empty() && !is_extended_type(data.kind) {
            let first = cur + u64::from(data.start_lba);
            let last = first + u64::from(data.sectors) - 1;
            if data.start_lba == 0 {
                warnings.push(Warning::InvalidEntry {
                    number,
                    reason: format!("it starts at its own EBR (LBA {cur})"),
                });
            } else {
                if first < ext_first || last > ext_last {
                    warnings.push(Warning::LogicalOutsideExtended { number });
                }
                logicals.push(Partition {
                    number,
                    first_lba: first,
                    last_lba: last,
                    start: first * u64::from(ss),
                    size: (last - first + 1) * u64::from(ss),
                    kind: PartitionType::Mbr(data.kind),
                    guid: None,
                    name: String::new(),
                    attributes: 0,
                    bootable: data.boot_indicator == 0x80,
                    is_logical: true,
                    is_extended: false,
                });
                logical = Some(number);
                number += 1;
            }
        }
        for (i, e) in entries.iter().enumerate().skip(1) {
            if !e.is_empty() && !is_extended_type(e.kind) {
                warnings.push(Warning::EbrExtraEntry {
                    lba: cur,
                    slot: i + 1,
                });
            }
        }
        ebrs.push(Ebr {
            lba: cur,
            logical,
            boot_code,
        });
        match entries
            .iter()
            .skip(1)
            .find(|e| !e.is_empty() && is_extended_type(e.kind))
        {
            Some(link) => cur = ext_first + u64::from(link.start_lba),
            None => break,
        }
    }
    (logicals, ebrs)
}

/// Sorts partitions and adds the checks common to all tables (disk end, overlaps).
fn finish(layout: &mut Layout) {
    layout.partitions.sort_by_key(|p| p.number);
    for p in &layout.partitions {
        if p.end() > layout.disk_size {
            layout.warnings.push(Warning::PastDiskEnd {
                number: p.number,
                end: p.end(),
                disk_size: layout.disk_size,
            });
        }
    }
    // Overlaps among non-container partitions (a sweep over starts), then containers against
    // primary partitions.
    let mut data: Vec<&Partition> = layout
        .partitions
        .iter()
        .filter(|p| !p.is_extended)
        .collect();
    data.sort_by_key(|p| (p.first_lba, p.number));
    let mut overlaps = Vec::new();
    let mut reach: Option<&Partition> = None;
    for p in &data {
        if let Some(r) = reach {
            if p.first_lba <= r.last_lba && overlaps.len() < MAX_OVERLAP_WARNINGS {
                overlaps.push(Warning::Overlap {
                    a: r.number.min(p.number),
                    b: r.number.max(p.number),
                });
            }
            if p.last_lba > r.last_lba {
                reach = Some(p);
            }
        } else {
            reach = Some(p);
        }
    }
    for c in layout.partitions.iter().filter(|p| p.is_extended) {
        for p in layout
            .partitions
            .iter()
            .filter(|p| !p.is_logical && p.number != c.number)
        {
            if p.first_lba <= c.last_lba
                && c.first_lba <= p.last_lba
                && overlaps.len() < MAX_OVERLAP_WARNINGS
            {
                overlaps.push(Warning::Overlap {
                    a: c.number.min(p.number),
                    b: c.number.max(p.number),
                });
            }
        }
    }
    layout.warnings.extend(overlaps);
    for w in &layout.warnings {
        log::warn!("{}: {w}", layout.device);
    }
}
