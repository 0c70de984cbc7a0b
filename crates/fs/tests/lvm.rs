//! LVM2 PVs made by the real tools (`pvcreate`, `vgcreate`, `lvcreate -an`, `lvextend` on a loop
//! device, no device-mapper) with real file systems written at the LV offsets the tools report
//! (`lvs --segments`, `pvs -o pe_start`), never at offsets from our parser. The proof: probe and
//! `fs::lvm::pv_report` see the VG, LVs, sizes and file systems; a copy with every byte outside
//! the PV's used map zeroed still holds each LV's file system (`e2fsck -fn`, file hashes by
//! `debugfs`), and the map is far smaller than the PV. Hostile metadata never panics.

mod common;

use anyhow::{Context, Result};
use common::{blkid, join, keep_only_used, path_str, tempdir, FileIo, Rng};
use disk::MemDisk;
use fs::lvm::{self, LvIo};
use fs::{probe, used_map, FsKind};
use qemu_tests::fixture::{self, LvmLv, Mkfs};

const MIB: u64 = 1 << 20;

struct Pv {
    _dir: tempfile::TempDir,
    img: std::path::PathBuf,
    lvs: Vec<LvmLv>,
    files: Vec<(String, Vec<u8>)>,
}

fn lv<'a>(lvs: &'a [LvmLv], name: &str) -> &'a LvmLv {
    lvs.iter()
        .find(|l| l.name == name)
        .expect("LV made by the fixture")
}

/// A 64 MiB PV in VG `vg`: `root` (12 MiB, extended by 8 MiB after `swap` was made: two
/// segments) with ext4 holding files, `swap` (8 MiB) with a swap header, `raw` (4 MiB) with no
/// file system.
fn make_pv(vg: &str) -> Result<Pv> {
    let dir = tempdir()?;
    let img = join(&dir, "pv.img");
    let lvs = fixture::lvm_pv(
        &img,
        64 * MIB,
        vg,
        &[("root", 12, 8), ("swap", 8, 0), ("raw", 4, 0)],
    )?;
    let root = lv(&lvs, "root");
    assert_eq!(
        root.pieces.len(),
        2,
        "lvextend made a second segment: {root:?}"
    );
    let src = join(&dir, "src");
    std::fs::create_dir_all(&src)?;
    let mut files = Vec::new();
    for (i, len) in [3 * MIB as usize, 700_000, 5000].into_iter().enumerate() {
        let name = format!("file{i}.bin");
        let data = fixture::noise(i as u64 + 7, len);
        std::fs::write(src.join(&name), &data)?;
        files.push((name, data));
    }
    let ext = join(&dir, "root.ext4");
    fixture::mkfs(
        Mkfs::Ext4,
        &ext,
        root.size,
        "rootfs",
        &["-d", path_str(&src)?],
    )?;
    fixture::write_lv(&img, root, &ext)?;
    let swap = join(&dir, "swap.img");
    fixture::mkfs(Mkfs::Swap, &swap, lv(&lvs, "swap").size, "swapper", &[])?;
    fixture::write_lv(&img, lv(&lvs, "swap"), &swap)?;
    let raw = join(&dir, "raw.bin");
    std::fs::write(&raw, fixture::noise(99, lv(&lvs, "raw").size as usize))?;
    fixture::write_lv(&img, lv(&lvs, "raw"), &raw)?;
    Ok(Pv {
        _dir: dir,
        img,
        lvs,
        files,
    })
}

#[test]
fn pv_from_lvm_tools_shows_vg_lvs_sizes_and_file_systems() -> Result<()> {
    let pv = make_pv("lbfsvg1")?;
    let io = FileIo::open(&pv.img)?;
    let info = probe(&io)?.context("probe found nothing")?;
    assert_eq!(info.kind, FsKind::Lvm2Member);
    assert_eq!(
        info.uuid.as_deref(),
        blkid(&pv.img)?.get("UUID").map(String::as_str)
    );
    let report = lvm::pv_report(&io)?;
    assert_eq!(report.pv.vg_name, "lbfsvg1");
    assert_eq!(report.pv.extent_size, 4 * MIB);
    let names: Vec<&str> = report.lvs.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["root", "swap", "raw"]);
    for l in &report.lvs {
        let tools = lv(&pv.lvs, &l.name);
        assert_eq!(l.size, tools.size, "size of {}", l.name);
        assert_eq!(l.uuid, tools.uuid, "uuid of {}", l.name);
    }
    let root = &report.lvs[0];
    let fs = root.fs.as_ref().context("root has a file system")?;
    assert_eq!(
        (fs.kind, fs.label.as_deref()),
        (FsKind::Ext4, Some("rootfs"))
    );
    assert_eq!(root.note, None);
    assert_eq!(root.layout, "linear");
    assert_eq!(
        report.lvs[1].fs.as_ref().map(|f| f.kind),
        Some(FsKind::Swap)
    );
    assert_eq!(report.lvs[2].fs, None);
    assert_eq!(report.lvs[2].note.as_deref(), Some("no known file system"));
    let summary = report.summary();
    assert!(
        summary.starts_with("LVM2 PV, VG lbfsvg1: lv root (ext4, "),
        "{summary}"
    );
    assert!(summary.contains("lv swap (swap: header only)"), "{summary}");
    assert!(
        summary.contains("lv raw (no file system: whole, no known file system)"),
        "{summary}"
    );
    Ok(())
}

#[test]
fn lv_view_reads_the_file_system_across_both_segments() -> Result<()> {
    let pv = make_pv("lbfsvg2")?;
    let io = FileIo::open(&pv.img)?;
    let meta = lvm::read_pv(&io)?;
    let root = meta.lvs.iter().find(|l| l.name == "root").context("root")?;
    let view = LvIo::new(&io, &meta, root).map_err(anyhow::Error::msg)?;
    let dir = tempdir()?;
    let out = join(&dir, "root.lv");
    fixture::extract_lv(&pv.img, lv(&pv.lvs, "root"), &out)?;
    let expected = std::fs::read(&out)?;
    let mut got = vec![0u8; expected.len()];
    disk::BlockIo::read_at(&view, &mut got, 0)?;
    assert!(got == expected, "LV view differs from the tools' layout");
    // A read that straddles the segment boundary.
    let boundary = lv(&pv.lvs, "root").pieces[1].0;
    let mut piece = vec![0u8; 8192];
    disk::BlockIo::read_at(&view, &mut piece, boundary - 4096)?;
    assert!(piece[..] == expected[(boundary - 4096) as usize..(boundary + 4096) as usize]);
    assert!(disk::BlockIo::read_at(&view, &mut piece, root.size - 4096).is_err());
    Ok(())
}

#[test]
fn pv_map_keeps_each_lv_file_system_and_frees_unallocated_extents() -> Result<()> {
    let pv = make_pv("lbfsvg3")?;
    let io = FileIo::open(&pv.img)?;
    let info = probe(&io)?.context("probe")?;
    let map = used_map(&io, &info)?;
    assert_eq!(map.len(), 64 * MIB);
    let used = map.used_bytes();
    // ext4 with ~3.7 MiB of files + metadata, swap header, 4 MiB raw LV, 1 MiB label/metadata.
    assert!(used < 16 * MIB, "PV map uses {used} bytes");
    assert!(used > 9 * MIB, "PV map uses only {used} bytes");
    // Label and metadata area are used; the unallocated extents after the LVs are free.
    assert!(map.is_used(512) && map.is_used(4096 + 512));
    let last = pv
        .lvs
        .iter()
        .flat_map(|l| l.pieces.iter())
        .map(|p| p.1 + p.2)
        .max()
        .context("lvs")?;
    assert!((last..last + 8 * MIB)
        .step_by(4096)
        .all(|o| !map.is_used(o)));
    // The raw LV (no file system) is kept whole.
    for &(_, at, len) in &lv(&pv.lvs, "raw").pieces {
        assert!((at..at + len).step_by(4096).all(|o| map.is_used(o)));
    }
    // Swap: only the header page of the LV.
    let swap_at = lv(&pv.lvs, "swap").pieces[0].1;
    assert!(map.is_used(swap_at) && !map.is_used(swap_at + 4096));

    let dir = tempdir()?;
    let kept = join(&dir, "kept.img");
    keep_only_used(&pv.img, &map, &kept)?;
    let root = join(&dir, "root.ext4");
    fixture::extract_lv(&kept, lv(&pv.lvs, "root"), &root)?;
    fixture::run("e2fsck", &["-fn", path_str(&root)?])?;
    for (name, data) in &pv.files {
        let out = join(&dir, name);
        fixture::run(
            "debugfs",
            &[
                "-R",
                &format!("dump /{name} {}", path_str(&out)?),
                path_str(&root)?,
            ],
        )?;
        assert!(
            std::fs::read(&out)? == *data,
            "{name} differs after the round trip"
        );
    }
    // The kept copy is still the same PV to the LVM tools.
    let pvs = fixture::lvm_on(&kept, "pvs", &["--noheadings", "-o", "pv_uuid,vg_name"])?;
    assert!(pvs.contains(info.uuid.as_deref().unwrap_or("?")), "{pvs}");
    assert!(pvs.contains("lbfsvg3"), "{pvs}");
    Ok(())
}

#[test]
fn damaged_metadata_checksum_is_an_error_not_a_smaller_map() -> Result<()> {
    let pv = make_pv("lbfsvg4")?;
    let mut data = std::fs::read(&pv.img)?;
    let text_at = metadata_text_offset(&data)?;
    data[text_at + 3] ^= 0x20;
    let io = MemDisk::from_vec(data, 512);
    let info = probe(&io)?.context("the label still probes")?;
    let err = used_map(&io, &info).expect_err("checksum mismatch must fail");
    assert!(err.to_string().contains("fails its checksum"), "{err}");
    Ok(())
}

/// Absolute offset of the current metadata text of the first metadata area (from the on-disk
/// layout: PV header's metadata area list, then the area header's first raw location).
fn metadata_text_offset(pv: &[u8]) -> Result<usize> {
    let mda = 4096usize;
    anyhow::ensure!(
        &pv[mda + 4..mda + 20] == b"\x20LVM2\x20x[5A%r0N*>",
        "mda magic"
    );
    let off = u64::from_le_bytes(pv[mda + 40..mda + 48].try_into()?) as usize;
    Ok(mda + off)
}

/// Recomputes the text checksum (of the original text location) and the area header checksum.
fn fix_checksums(pv: &mut [u8], text_at: usize, text_len: usize) {
    let mda = 4096usize;
    let crc = lvm::lvm_crc(&pv[text_at..text_at + text_len]);
    pv[mda + 56..mda + 60].copy_from_slice(&crc.to_le_bytes());
    let h = lvm::lvm_crc(&pv[mda + 4..mda + 512]);
    pv[mda..mda + 4].copy_from_slice(&h.to_le_bytes());
}

/// Seeded mutations of the label, area header and metadata text of a real PV (with the
/// checksums fixed up so the parser sees the damage): no panic, and every map that is returned
/// still covers the label and metadata area.
#[test]
fn mutated_pv_metadata_never_panics() -> Result<()> {
    let pv = make_pv("lbfsvg5")?;
    let base = std::fs::read(&pv.img)?[..(2 * MIB) as usize].to_vec();
    let io = MemDisk::from_vec(std::fs::read(&pv.img)?, 512);
    let text_at = metadata_text_offset(&base)?;
    let text_len = u64::from_le_bytes(base[4096 + 48..4096 + 56].try_into()?) as usize;
    let mut rng = Rng::new(0x1f5e_ed00_c0ff_ee11);
    let (mut parsed, mut mapped) = (0, 0);
    for round in 0..1200 {
        let mut head = base.clone();
        for _ in 0..(1 + rng.below(6)) {
            let at = match rng.below(8) {
                0 => rng.below(4096) as usize,
                1 => 4096 + rng.below(512) as usize,
                _ => text_at + rng.below(text_len as u64) as usize,
            };
            head[at] = match rng.below(4) {
                0 => rng.next() as u8,
                1 => b"{}[]=\",#\\"[rng.below(9) as usize],
                2 => b'0' + rng.below(10) as u8,
                _ => head[at] ^ 1,
            };
        }
        if round % 5 != 0 {
            fix_checksums(&mut head, text_at, text_len);
        }
        if lvm::parse_text(&head[text_at..text_at + text_len]).is_ok() {
            parsed += 1;
        }
        disk::BlockIo::write_at(&io, &head, 0)?;
        if let Ok(r) = lvm::pv_report(&io) {
            mapped += 1;
            assert!(r.map.is_used(0) && r.map.is_used(text_at as u64));
            assert!(r.lvs.len() <= 16, "{} LVs from 3", r.lvs.len());
        }
    }
    assert!(
        parsed > 100 && mapped > 100,
        "parsed {parsed}, mapped {mapped}"
    );
    assert!(mapped < 1200, "no mutation was rejected");
    Ok(())
}

#[test]
fn metadata_text_parser_bounds_nesting_and_rejects_junk() {
    let deep = "a {".repeat(100) + &"}".repeat(100);
    assert!(lvm::parse_text(deep.as_bytes()).is_err());
    let deep_list = "a = ".to_string() + &"[".repeat(100) + &"]".repeat(100);
    assert!(lvm::parse_text(deep_list.as_bytes()).is_err());
    for junk in [
        "a = ",
        "a {",
        "= 1",
        "a = \"x",
        "a = [1 2]",
        "a = 99999999999999999999",
    ] {
        assert!(lvm::parse_text(junk.as_bytes()).is_err(), "{junk:?} parsed");
    }
    let ok = lvm::parse_text(b"# c\nvg { id = \"x\\\"y\" n = -3 l = [\"a\", 1] }\n\0\0");
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn pv_larger_than_its_partition_is_refused() -> Result<()> {
    let pv = make_pv("lbfsvg6")?;
    let data = std::fs::read(&pv.img)?;
    let io = MemDisk::from_vec(data[..(40 * MIB) as usize].to_vec(), 512);
    assert!(lvm::pv_report(&io).is_err());
    Ok(())
}

fn le64_at(b: &[u8], at: usize) -> Result<u64> {
    Ok(u64::from_le_bytes(b[at..at + 8].try_into()?))
}

/// The metadata text of a real PV with an old-style snapshot added as LVM writes one (a hidden LV
/// whose `snapshot` segment names the origin and the COW store): both are kept whole and the
/// report says why, the snapshot LV itself stores nothing.
#[test]
fn snapshot_origin_and_cow_store_are_kept_whole_and_said_so() -> Result<()> {
    let pv = make_pv("lbfsvg7")?;
    let mut data = std::fs::read(&pv.img)?;
    let text_at = metadata_text_offset(&data)?;
    let len = le64_at(&data, 4096 + 48)? as usize;
    let text = String::from_utf8(data[text_at..text_at + len].to_vec())?;
    let snap = "snapshot0 {\nid = \"Aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg\"\nstatus = [\"READ\"]\n\
                flags = []\nsegment_count = 1\n\nsegment1 {\nstart_extent = 0\nextent_count = 1\n\n\
                type = \"snapshot\"\nchunk_size = 8\norigin = \"root\"\ncow_store = \"raw\"\n}\n}\n";
    let at = text
        .find("logical_volumes {\n")
        .context("logical_volumes")?
        + 18;
    let new = format!("{}{snap}{}", &text[..at], &text[at..]);
    data[text_at..text_at + new.len()].copy_from_slice(new.as_bytes());
    data[4096 + 48..4096 + 56].copy_from_slice(&(new.len() as u64).to_le_bytes());
    fix_checksums(&mut data, text_at, new.len());
    let report = lvm::pv_report(&MemDisk::from_vec(data, 512))?;
    let by = |n: &str| report.lvs.iter().find(|l| l.name == n).context("lv");
    let root = by("root")?;
    assert!(
        root.note
            .as_deref()
            .is_some_and(|n| n.contains("used by another LV")),
        "{root:?}"
    );
    assert_eq!(root.fs.as_ref().map(|f| f.kind), Some(FsKind::Ext4));
    assert_eq!(root.stored, root.size);
    assert_eq!(by("raw")?.stored, by("raw")?.size);
    assert_eq!(by("snapshot0")?.layout, "snapshot");
    assert_eq!(by("snapshot0")?.stored, 0);
    for &(_, at, len) in &lv(&pv.lvs, "root").pieces {
        assert!((at..at + len).step_by(4096).all(|o| report.map.is_used(o)));
    }
    let summary = report.summary();
    assert!(
        summary.contains("lv root (ext4: whole, used by another LV"),
        "{summary}"
    );
    Ok(())
}

/// The newest metadata text may wrap around the end of the metadata area's circular buffer:
/// moved so that it does (same bytes, same checksum), it reads the same.
#[test]
fn metadata_text_wrapping_the_circular_buffer_reads_the_same() -> Result<()> {
    let pv = make_pv("lbfsvg8")?;
    let mut data = std::fs::read(&pv.img)?;
    let text_at = metadata_text_offset(&data)?;
    let len = le64_at(&data, 4096 + 48)? as usize;
    let size = le64_at(&data, 4096 + 32)? as usize;
    let text = data[text_at..text_at + len].to_vec();
    let before = lvm::read_pv(&MemDisk::from_vec(data.clone(), 512))?;
    data[text_at..text_at + len].fill(0);
    let off = size - 300;
    data[4096 + off..4096 + size].copy_from_slice(&text[..300]);
    data[4096 + 512..4096 + 512 + len - 300].copy_from_slice(&text[300..]);
    data[4096 + 40..4096 + 48].copy_from_slice(&(off as u64).to_le_bytes());
    let h = lvm::lvm_crc(&data[4096 + 4..4096 + 512]);
    data[4096..4096 + 4].copy_from_slice(&h.to_le_bytes());
    let after = lvm::read_pv(&MemDisk::from_vec(data, 512))?;
    assert_eq!(after, before);
    Ok(())
}

/// A VG over two PVs made by the tools: a two-stripe LV and a linear LV that continues on the
/// second PV. Seen from the first PV, both are kept whole (every extent of it), with the reason.
#[test]
fn multi_stripe_and_multi_pv_lvs_are_kept_whole_and_said_so() -> Result<()> {
    let dir = tempdir()?;
    let (a, b) = (join(&dir, "a.img"), join(&dir, "b.img"));
    let segs = fixture::lvm_vg(
        &[&a, &b],
        64 * MIB,
        "lbfsvg9",
        &[
            &["-i2", "-L", "16M", "-n", "st"],
            &["-L", "60M", "-n", "span"],
        ],
    )?;
    assert!(segs.contains("0:") && segs.contains("1:"), "{segs}");
    let io = FileIo::open(&a)?;
    let report = lvm::pv_report(&io)?;
    assert_eq!(report.pv.pv_count, 2);
    let by = |n: &str| report.lvs.iter().find(|l| l.name == n).context("lv");
    assert_eq!(by("st")?.layout, "striped");
    assert_eq!(by("st")?.note.as_deref(), Some("2 stripes"));
    assert!(
        by("span")?
            .note
            .as_deref()
            .is_some_and(|n| n.contains("another PV")),
        "{:?}",
        by("span")?
    );
    // Every extent of the first PV belongs to one of them: the whole PV is kept.
    assert_eq!(report.map.used_bytes(), 64 * MIB, "{segs}");
    assert!(report.summary().contains("(2 PVs)"), "{}", report.summary());
    Ok(())
}
