//! A seeded mutation loop over real fixtures (the stable-toolchain twin of the `read_table` fuzz
//! target): thousands of damaged tables are read, planned onto a larger disk, written and read
//! back, asserting no panic and sane results.

mod common;

use common::*;
use disk::BlockIo;
use layout::{plan_copy, CopyOptions, Layout, TableKind};
use std::io;
use std::sync::Mutex;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// A fixture's bytes with patches on top and an optionally changed length.
struct Mutated<'a> {
    base: &'a [u8],
    len: u64,
    sector: u32,
    patches: Vec<(u64, Vec<u8>)>,
}

impl Mutated<'_> {
    fn view(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let start = (offset as usize).min(self.base.len());
        let avail = &self.base[start..(start + len).min(self.base.len())];
        buf[..avail.len()].copy_from_slice(avail);
        for (o, bytes) in &self.patches {
            for (i, b) in bytes.iter().enumerate() {
                let at = o + i as u64;
                if at >= offset && at < offset + len as u64 {
                    buf[(at - offset) as usize] = *b;
                }
            }
        }
        buf
    }

    fn poke(&mut self, offset: u64, bytes: Vec<u8>) {
        self.patches.push((offset, bytes));
    }

    /// Recomputes the CRC of the entries array and of the header at `lba`.
    fn fix_crcs(&mut self, lba: u64) {
        let ss = u64::from(self.sector);
        let hdr = self.view(lba * ss, 92);
        if &hdr[..8] != b"EFI PART" {
            return;
        }
        let entries_lba = u64::from_le_bytes(hdr[72..80].try_into().unwrap_or_default());
        let count = u32::from_le_bytes(hdr[80..84].try_into().unwrap_or_default()) as u64;
        let size = u32::from_le_bytes(hdr[84..88].try_into().unwrap_or_default()) as u64;
        if count * size <= 1 << 20 && entries_lba < 1 << 40 {
            let entries = self.view(entries_lba * ss, (count * size) as usize);
            self.poke(
                lba * ss + 88,
                crc32fast::hash(&entries).to_le_bytes().to_vec(),
            );
        }
        let mut hdr = self.view(lba * ss, 92);
        hdr[16..20].fill(0);
        self.poke(lba * ss + 16, crc32fast::hash(&hdr).to_le_bytes().to_vec());
    }
}

impl BlockIo for Mutated<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn logical_sector_size(&self) -> u32 {
        self.sector
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"));
        }
        buf.copy_from_slice(&self.view(offset, buf.len()));
        Ok(())
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "read-only"))
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "mutated".into()
    }
}

/// A sparse target disk that records writes.
struct Sparse {
    len: u64,
    sector: u32,
    writes: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl BlockIo for Sparse {
    fn len(&self) -> u64 {
        self.len
    }
    fn logical_sector_size(&self) -> u32 {
        self.sector
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"));
        }
        buf.fill(0);
        let end = offset + buf.len() as u64;
        for (o, bytes) in self
            .writes
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .iter()
        {
            let (wo, we) = (*o, o + bytes.len() as u64);
            let (s, e) = (wo.max(offset), we.min(end));
            if s < e {
                buf[(s - offset) as usize..(e - offset) as usize]
                    .copy_from_slice(&bytes[(s - wo) as usize..(e - wo) as usize]);
            }
        }
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"));
        }
        self.writes
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .push((offset, buf.to_vec()));
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "sparse target".into()
    }
}

const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    33,
    34,
    2047,
    2048,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    u64::MAX,
    u64::MAX - 1,
];

fn interesting(rng: &mut Rng, total: u64) -> u64 {
    match rng.below(4) {
        0 => INTERESTING[rng.below(INTERESTING.len() as u64) as usize],
        1 => total.wrapping_add(rng.below(8)).wrapping_sub(4),
        2 => rng.below(total.max(1)),
        _ => rng.next(),
    }
}

fn check_sane(l: &Layout) {
    let ss = u64::from(l.sector_size);
    for w in l.partitions.windows(2) {
        assert!(
            w[0].number < w[1].number,
            "partitions not sorted: {:?}",
            l.partitions
        );
    }
    for p in &l.partitions {
        assert!(p.first_lba <= p.last_lba);
        assert_eq!(p.start, p.first_lba * ss);
        assert_eq!(p.size, p.sectors() * ss);
        assert!(l.used_end() >= p.end());
        match &l.kind {
            TableKind::Gpt(g) => assert!(p.number >= 1 && p.number <= g.entry_count),
            TableKind::Mbr(_) => assert!(if p.is_logical {
                p.number >= 5
            } else {
                (1..=4).contains(&p.number)
            }),
            TableKind::None => panic!("partitions without a table"),
        }
    }
    let areas = l.table_areas();
    for w in areas.windows(2) {
        assert!(
            w[0].0 + w[0].1 < w[1].0,
            "areas overlap or touch: {areas:?}"
        );
    }
    for (o, len) in &areas {
        assert!(
            *len > 0 && o + len <= l.disk_size,
            "area {o}+{len} outside {}",
            l.disk_size
        );
    }
    for w in &l.warnings {
        assert!(!w.to_string().is_empty());
    }
}

fn mutate_and_check(base: &[u8], sector: u32, rng: &mut Rng, stats: &mut [u32; 3]) {
    let orig = layout::read(&Mutated {
        base,
        len: base.len() as u64,
        sector,
        patches: Vec::new(),
    })
    .expect("fixture reads");
    let ss = u64::from(orig.sector_size);
    let total = base.len() as u64 / ss;
    let mut m = Mutated {
        base,
        len: base.len() as u64,
        sector,
        patches: Vec::new(),
    };
    let ebrs: Vec<u64> = match &orig.kind {
        TableKind::Mbr(mi) => mi.ebrs.iter().map(|e| e.lba).collect(),
        _ => Vec::new(),
    };
    for _ in 0..=rng.below(3) {
        match rng.below(6) {
            0 => {
                let areas = orig.table_areas();
                let (o, len) = areas[rng.below(areas.len() as u64) as usize];
                let at = o + rng.below(len.min(64 * 1024));
                let bytes = (0..=rng.below(7)).map(|_| rng.next() as u8).collect();
                m.poke(at, bytes);
            }
            1 | 2 => {
                let lba = if rng.below(2) == 0 { 1 } else { total - 1 };
                let fields = [
                    (8u64, 4usize),
                    (12, 4),
                    (24, 8),
                    (32, 8),
                    (40, 8),
                    (48, 8),
                    (72, 8),
                    (80, 4),
                    (84, 4),
                ];
                let (off, width) = fields[rng.below(fields.len() as u64) as usize];
                let v = interesting(rng, total).to_le_bytes()[..width].to_vec();
                m.poke(lba * ss + off, v);
                m.fix_crcs(lba);
            }
            3 => {
                let entry = rng.below(5);
                let fields = [(0u64, 16usize), (32, 8), (40, 8), (48, 8)];
                let (off, width) = fields[rng.below(fields.len() as u64) as usize];
                let mut v = interesting(rng, total).to_le_bytes().to_vec();
                v.resize(width, rng.next() as u8);
                m.poke(2 * ss + entry * 128 + off, v.clone());
                m.poke((total - 33) * ss + entry * 128 + off, v);
                m.fix_crcs(1);
                m.fix_crcs(total - 1);
            }
            4 => {
                let sector_lba = if !ebrs.is_empty() && rng.below(2) == 0 {
                    ebrs[rng.below(ebrs.len() as u64) as usize]
                } else {
                    0
                };
                let entry = rng.below(4);
                let fields = [(0u64, 1usize), (4, 1), (8, 4), (12, 4)];
                let (off, width) = fields[rng.below(fields.len() as u64) as usize];
                let v = interesting(rng, total).to_le_bytes()[..width].to_vec();
                m.poke(sector_lba * ss + 446 + entry * 16 + off, v);
            }
            _ => {
                let lens = [
                    base.len() as u64 / 2,
                    1024,
                    513,
                    4096,
                    base.len() as u64 + (1 << 20),
                    3 * ss,
                ];
                m.len = lens[rng.below(lens.len() as u64) as usize];
            }
        }
    }
    let l = match layout::read(&m) {
        Ok(l) => l,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            stats[0] += 1;
            return;
        }
    };
    check_sane(&l);
    let target_len = (l.used_end().max(l.disk_size) / ss + 2048 + rng.below(4096)) * ss;
    if target_len > 1 << 50 {
        return;
    }
    let opts = CopyOptions {
        grow_last: rng.below(2) == 0,
        new_ids: rng.below(4) == 0,
        keep_boot_code: true,
    };
    let plan = match plan_copy(&l, target_len, l.sector_size, &opts) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            stats[1] += 1;
            return;
        }
    };
    assert!(!plan.to_string().is_empty());
    let target = Sparse {
        len: target_len,
        sector: l.sector_size,
        writes: Mutex::new(Vec::new()),
    };
    plan.write(&target)
        .expect("writing a plan onto a sparse disk");
    let back = layout::read(&target).expect("reading back a written plan");
    assert_eq!(
        back.partitions,
        plan.layout().partitions,
        "read back differs from the plan for\n{plan}"
    );
    if let TableKind::Gpt(g) = &back.kind {
        assert!(g.health.is_ok(), "{}", g.health);
    }
    stats[2] += 1;
}

#[test]
fn mutated_tables_never_panic_and_copies_read_back_as_planned() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let gpt = std::fs::read(sgdisk_gpt(dir.path(), "gpt.img", 16 * MIB)?)?;
    let hybrid_img = sgdisk_gpt(dir.path(), "hybrid.img", 16 * MIB)?;
    qemu_tests::fixture::run("sgdisk", &["-h", "1:3", p(&hybrid_img)])?;
    let hybrid = std::fs::read(&hybrid_img)?;
    let mbr = std::fs::read(sfdisk_mbr(dir.path(), "mbr.img")?)?;
    let gpt4k = std::fs::read(fdisk_gpt_4k(dir.path(), "4k.img")?)?;
    let fixtures: [(&[u8], u32); 5] = [
        (&gpt, 512),
        (&hybrid, 512),
        (&mbr, 512),
        (&gpt4k, 4096),
        (&gpt4k, 512),
    ];
    // LAYOUT_MUTATION_SEED / LAYOUT_MUTATION_ROUNDS explore further than the fixed CI seed.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut rng = Rng(env("LAYOUT_MUTATION_SEED").unwrap_or(0x5EED_1A70).max(1));
    let rounds = env("LAYOUT_MUTATION_ROUNDS").unwrap_or(10_000) as usize;
    let mut stats = [0u32; 3];
    for i in 0..rounds {
        let (base, sector) = fixtures[i % fixtures.len()];
        mutate_and_check(base, sector, &mut rng, &mut stats);
    }
    eprintln!("errors/refusals/round trips: {stats:?}");
    // The loop must exercise all outcomes: read errors, plan refusals and full round trips.
    assert!(
        stats.iter().all(|&n| n > 20),
        "errors/refusals/round trips: {stats:?}"
    );
    Ok(())
}

#[test]
fn fuzz_corpus_inputs_read_without_panic() -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/read_table");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let data = std::fs::read(&path)?;
        let Some((&first, rest)) = data.split_first() else {
            continue;
        };
        let sector = if first & 1 == 0 { 512 } else { 4096 };
        let result = layout::read(&disk::MemDisk::from_vec(rest.to_vec(), sector));
        if let Ok(l) = &result {
            check_sane(l);
        }
        if path
            .file_name()
            .is_some_and(|n| n == "regress-entries-lba-overflow")
        {
            let l = result?;
            let TableKind::Gpt(g) = &l.kind else {
                panic!("expected GPT")
            };
            assert!(
                matches!(
                    g.health.primary,
                    layout::HeaderStatus::Damaged(layout::GptDamage::Unreadable { .. })
                ),
                "{:?}",
                g.health.primary
            );
            assert_eq!(g.health.used, layout::GptCopy::Backup);
        }
        seen += 1;
    }
    assert!(seen >= 3, "corpus in {} has {seen} inputs", dir.display());
    Ok(())
}
