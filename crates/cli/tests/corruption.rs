//! A corruption campaign over real images, black-box through the built `lifeboat` binary.
//!
//! A small GPT disk with an ext4 and a FAT partition (made by sgdisk, mkfs.ext4 -d, mkfs.vfat and
//! mcopy) is backed up twice: unsplit, and `--split` into several volumes. Then, with a seeded
//! RNG (the seed is printed; set `LIFEBOAT_CORRUPTION_SEED` to replay one), single-bit flips at
//! random offsets and truncations at random lengths are applied one at a time to a copy, and:
//!
//! - `lifeboat verify` must report each one: a non-zero exit and a message naming the chunk or
//!   the structure that is damaged (every byte of a complete image is covered by a crc32, see
//!   `crates/image/FORMAT.md`, so no flip may go unnoticed);
//! - `info`, `ls`, `extract` and `restore` (into a scratch file) must never crash (no signal, no
//!   panic exit 101, no abort 134) and never hang (each runs under a timeout).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qemu_tests::fixture::{self, Mkfs};

/// How long one command may run on a 6 MiB image before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Bit flips per image kind (unsplit, split).
const FLIPS: usize = 80;
/// Truncations per image kind.
const TRUNCATIONS: usize = 15;

/// xorshift64*, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Outcome {
    code: Option<i32>,
    output: String,
    elapsed: Duration,
}

/// Runs `lifeboat args…`, killing it after [`TIMEOUT`].
fn lifeboat(args: &[&str]) -> Outcome {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("starting lifeboat");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let elapsed = started.elapsed();
    match status {
        None => panic!(
            "lifeboat {} hung (killed after {TIMEOUT:?}); output:\n{output}",
            args.join(" ")
        ),
        Some(s) => Outcome {
            code: s.code(),
            output,
            elapsed,
        },
    }
}

/// Fails when `o` is a crash: killed by a signal, a panic (101) or an abort (134).
fn assert_no_crash(what: &str, args: &[&str], o: &Outcome) {
    let crashed = match o.code {
        None => true,
        Some(c) => c == 101 || c == 134,
    };
    assert!(
        !crashed,
        "{what}: lifeboat {} crashed (exit {:?}) after {:?}; output:\n{}",
        args.join(" "),
        o.code,
        o.elapsed,
        o.output
    );
}

/// The words with which `verify` names what is damaged.
const NAMED: &[&str] = &[
    "chunk",
    "volume header",
    "trailer",
    "stream table",
    "index",
    "manifest",
    "bitmap",
    "truncated",
    "incomplete",
    "not a Lifeboat image",
    "missing volume",
];

/// A 6 MiB GPT disk: partition 1 ext4 (files, a folder tree, a symlink, 150 KB of noise),
/// partition 2 FAT12 (the same files).
fn make_disk(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("docs/deep")).unwrap();
    std::fs::write(tree.join("a.txt"), b"hello\n").unwrap();
    std::fs::write(tree.join("docs/noise.bin"), fixture::noise(7, 150_000)).unwrap();
    std::fs::write(tree.join("docs/deep/c.txt"), b"deep\n").unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("link")).unwrap();

    let disk = dir.join("disk.raw");
    fixture::sparse_file(&disk, 6 << 20).unwrap();
    let d = fixture::path(&disk).unwrap();
    fixture::run(
        "sgdisk",
        &[
            "-n1:2048:+2M",
            "-t1:8300",
            "-c1:linux",
            "-n2:0:+2M",
            "-t2:0700",
            "-c2:data",
            d,
        ],
    )
    .unwrap();
    let p1 = dir.join("p1");
    fixture::mkfs(
        Mkfs::Ext4,
        &p1,
        2 << 20,
        "root",
        &["-O", "^has_journal", "-d", fixture::path(&tree).unwrap()],
    )
    .unwrap();
    let p2 = dir.join("p2");
    fixture::mkfs(Mkfs::Fat12, &p2, 2 << 20, "DATA", &[]).unwrap();
    let p2s = fixture::path(&p2).unwrap();
    fixture::run(
        "mcopy",
        &[
            "-s",
            "-i",
            p2s,
            fixture::path(&tree.join("a.txt")).unwrap(),
            fixture::path(&tree.join("docs")).unwrap(),
            "::/",
        ],
    )
    .unwrap();
    fixture::write_into(&disk, 1 << 20, &p1).unwrap();
    fixture::write_into(&disk, 3 << 20, &p2).unwrap();
    disk
}

/// The files of an image: `base` and its `base.NNN` siblings, in order.
fn volumes(base: &Path) -> Vec<PathBuf> {
    let mut v = vec![base.to_path_buf()];
    for n in 2.. {
        let p = PathBuf::from(format!("{}.{n:03}", base.display()));
        if !p.exists() {
            break;
        }
        v.push(p);
    }
    v
}

/// One mutation of a copy of the image.
#[derive(Debug)]
enum Mutation {
    Flip { volume: usize, offset: u64, bit: u8 },
    Truncate { volume: usize, len: u64 },
}

fn apply(m: &Mutation, vols: &[PathBuf]) {
    match *m {
        Mutation::Flip {
            volume,
            offset,
            bit,
        } => {
            let mut b = std::fs::read(&vols[volume]).unwrap();
            b[offset as usize] ^= 1 << bit;
            std::fs::write(&vols[volume], b).unwrap();
        }
        Mutation::Truncate { volume, len } => {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&vols[volume])
                .unwrap()
                .set_len(len)
                .unwrap();
        }
    }
}

/// Runs every mutation against fresh copies of `pristine` (the volumes of one image).
fn campaign(kind: &str, pristine: &[PathBuf], rng: &mut Rng, work: &Path) -> usize {
    let sizes: Vec<u64> = pristine
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    let total: u64 = sizes.iter().sum();
    let mut mutations = Vec::new();
    for _ in 0..FLIPS {
        // Uniform over all bytes of all volumes.
        let mut at = rng.below(total);
        let mut volume = 0;
        while at >= sizes[volume] {
            at -= sizes[volume];
            volume += 1;
        }
        mutations.push(Mutation::Flip {
            volume,
            offset: at,
            bit: rng.below(8) as u8,
        });
    }
    for _ in 0..TRUNCATIONS {
        let volume = rng.below(pristine.len() as u64) as usize;
        mutations.push(Mutation::Truncate {
            volume,
            len: rng.below(sizes[volume]),
        });
    }
    let dir = work.join(kind);
    let target = work.join(format!("{kind}-target.raw"));
    for (i, m) in mutations.iter().enumerate() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let vols: Vec<PathBuf> = pristine
            .iter()
            .map(|p| {
                let to = dir.join(p.file_name().unwrap());
                std::fs::copy(p, &to).unwrap();
                to
            })
            .collect();
        apply(m, &vols);
        let what = format!("{kind} mutation {i}: {m:?}");
        let img = fixture::path(&vols[0]).unwrap();

        let args = ["verify", img];
        let o = lifeboat(&args);
        assert_no_crash(&what, &args, &o);
        assert!(
            o.code.is_some_and(|c| c != 0),
            "{what}: verify did not report the damage (exit {:?}):\n{}",
            o.code,
            o.output
        );
        assert!(
            NAMED.iter().any(|w| o.output.contains(w)),
            "{what}: verify does not name what is damaged:\n{}",
            o.output
        );

        let out_dir = dir.join("out");
        let out = fixture::path(&out_dir).unwrap();
        fixture::sparse_file(&target, 6 << 20).unwrap();
        let tgt = fixture::path(&target).unwrap();
        let runs: [&[&str]; 6] = [
            &["info", img],
            &["ls", img, "--part", "1", "/docs"],
            &["ls", img, "--part", "2", "/"],
            &["extract", img, "--part", "1", "/", "--to", out],
            &["extract", img, "--part", "2", "/docs", "--to", out],
            &["restore", img, tgt, "--yes"],
        ];
        for args in runs {
            let o = lifeboat(args);
            assert_no_crash(&what, args, &o);
        }
    }
    mutations.len()
}

#[test]
fn flipped_and_truncated_images_are_reported_by_verify_and_crash_nothing() {
    let seed = std::env::var("LIFEBOAT_CORRUPTION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("corruption campaign seed: {seed} (LIFEBOAT_CORRUPTION_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let disk = make_disk(tmp.path());
    let d = fixture::path(&disk).unwrap();

    let one = tmp.path().join("one.lbi");
    let args = ["backup", d, fixture::path(&one).unwrap()];
    let o = lifeboat(&args);
    assert_eq!(o.code, Some(0), "backup failed:\n{}", o.output);
    let split = tmp.path().join("split.lbi");
    let args = [
        "backup",
        "--split",
        "80K",
        d,
        fixture::path(&split).unwrap(),
    ];
    let o = lifeboat(&args);
    assert_eq!(o.code, Some(0), "split backup failed:\n{}", o.output);
    let split_vols = volumes(&split);
    assert!(
        split_vols.len() >= 3,
        "expected a split image of several volumes, got {split_vols:?}"
    );

    // The pristine images verify and list: the campaign's failures are the mutations'.
    for img in [&one, &split] {
        let args = ["verify", fixture::path(img).unwrap()];
        let o = lifeboat(&args);
        assert_eq!(
            o.code,
            Some(0),
            "pristine image fails verify:\n{}",
            o.output
        );
        let args = ["ls", fixture::path(img).unwrap(), "--part", "1", "/docs"];
        let o = lifeboat(&args);
        assert!(o.output.contains("noise.bin"), "{}", o.output);
    }

    let started = Instant::now();
    let work = tmp.path().join("work");
    let n = campaign("unsplit", &volumes(&one), &mut rng, &work)
        + campaign("split", &split_vols, &mut rng, &work);
    eprintln!(
        "{n} mutations (seed {seed}) checked in {:?}",
        started.elapsed()
    );
}

/// The reproduction, end to end: a 64 MiB `mkfs.ext4 -O 64bit` file truncated (sparse)
/// to 9 TiB with `s_blocks_count` = 2^40 and `s_blocks_per_group` = 8. `lifeboat ls` used to die
/// with "memory allocation of 1099511627776 bytes failed" (exit 134); now it is an error.
#[test]
fn ls_of_ext4_claiming_2_pow_40_blocks_in_groups_of_8_fails_with_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("huge.img");
    fixture::mkfs(Mkfs::Ext4, &img, 64 << 20, "huge", &["-O", "64bit"]).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(9 << 40)
        .unwrap();
    fixture::poke(&img, 1024 + 0x04, &0u32.to_le_bytes()).unwrap();
    fixture::poke(&img, 1024 + 0x150, &256u32.to_le_bytes()).unwrap();
    fixture::poke(&img, 1024 + 0x20, &8u32.to_le_bytes()).unwrap();
    fixture::poke(&img, 1024 + 0x24, &8u32.to_le_bytes()).unwrap();
    let args = ["ls", fixture::path(&img).unwrap(), "/"];
    let o = lifeboat(&args);
    assert_no_crash("2^40 blocks", &args, &o);
    assert_eq!(o.code, Some(1), "{}", o.output);
    assert!(o.output.contains("block groups"), "{}", o.output);
}

/// A FIFO named like the next volume of a split image: opening the image must not block on it
/// (a reader would wait forever for a writer), and the FIFO is named as not a regular file.
#[test]
fn image_whose_next_volume_is_a_fifo_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = make_disk(tmp.path());
    let split = tmp.path().join("x.lbi");
    let args = [
        "backup",
        "--split",
        "80K",
        fixture::path(&disk).unwrap(),
        fixture::path(&split).unwrap(),
    ];
    let o = lifeboat(&args);
    assert_eq!(o.code, Some(0), "{}", o.output);
    let second = tmp.path().join("x.lbi.002");
    std::fs::remove_file(&second).unwrap();
    fixture::run("mkfifo", &[fixture::path(&second).unwrap()]).unwrap();
    for cmd in ["verify", "info"] {
        let args = [cmd, fixture::path(&split).unwrap()];
        let o = lifeboat(&args);
        assert_no_crash("fifo volume", &args, &o);
        assert!(o.code.is_some_and(|c| c != 0), "{cmd}: {}", o.output);
        assert!(
            o.output.contains("x.lbi.002") && o.output.contains("FIFO"),
            "{cmd}: {}",
            o.output
        );
    }
}
