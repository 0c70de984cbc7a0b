//! The fuzz targets' functions (`crates/disk/fuzz`) driven on stable: thousands of inputs mutated
//! from real tables (this machine's `/proc/self/mountinfo` and `/proc/swaps`, and SCSI serial
//! pages) by a seeded xorshift generator. Nothing may panic and the results must stay sane.

use disk::mounts::{parse_mountinfo, parse_swaps};
use disk::parse_vpd_serial;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to the parsers.
const INTERESTING: &[u8] = b" \t\n\\-:0123456789/\x00\x80\xff";

fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let len = data.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(len + 1);
                data.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                data.remove(i);
            }
            3 => data.truncate(rng.below(len + 1)),
            4 if len > 1 => {
                let a = rng.below(len);
                let b = a + rng.below(len - a);
                let copy = data[a..b].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            _ => {
                if len > 0 {
                    let i = rng.below(len);
                    data[i] = INTERESTING[rng.below(INTERESTING.len())];
                }
            }
        }
    }
    data
}

fn real_or(path: &str, fallback: &[u8]) -> Vec<u8> {
    std::fs::read(path)
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| fallback.to_vec())
}

#[test]
fn mountinfo_parser_survives_mutated_real_tables() {
    let real = real_or(
        "/proc/self/mountinfo",
        b"27 1 254:0 / / rw - ext4 /dev/vda rw\n",
    );
    let baseline = parse_mountinfo(&real);
    assert!(baseline
        .iter()
        .any(|m| m.mount_point == std::path::Path::new("/")));
    let seeds: [&[u8]; 2] = [
        &real,
        b"36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 shared:2 - ext3 /dev/root rw\n",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0usize;
    for i in 0..6000 {
        let input = mutate(&mut rng, seeds[i % 2]);
        let entries = parse_mountinfo(&input);
        let lines = input.split(|b| *b == b'\n').count();
        assert!(entries.len() <= lines);
        for e in &entries {
            assert!(!e.mount_point.as_os_str().is_empty());
        }
        parsed += entries.len();
    }
    assert!(
        parsed > 1000,
        "mutations should mostly leave lines parseable ({parsed})"
    );
}

#[test]
fn swaps_parser_survives_mutated_tables() {
    let seed = b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda2                               partition\t2097148\t\t0\t\t-2\n/swap\\040file file 1024 0 -3\n";
    let real = real_or("/proc/swaps", seed);
    assert!(parse_swaps(&real).len() < real.split(|b| *b == b'\n').count());
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    for i in 0..6000 {
        let input = mutate(&mut rng, if i % 2 == 0 { seed } else { &real });
        for e in parse_swaps(&input) {
            assert!(!e.path.as_os_str().is_empty());
            assert!(!e.kind.is_empty());
        }
    }
}

#[test]
fn vpd_serial_parser_survives_mutated_pages() {
    let mut ata = vec![0x00, 0x80, 0x00, 0x14];
    ata.extend_from_slice(b"     S3Z9NB0K123456X");
    let mut sas = vec![0x00, 0x80, 0x00, 0x08];
    sas.extend_from_slice(b"ZC1234AB\0\0\0\0");
    let seeds = [ata, sas, vec![0x00, 0x80, 0x00, 0x00]];
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut found = 0usize;
    for i in 0..8000 {
        let input = mutate(&mut rng, &seeds[i % seeds.len()]);
        if let Some(serial) = parse_vpd_serial(&input) {
            found += 1;
            assert!(
                !serial.is_empty() && serial.len() + 4 <= input.len(),
                "{input:?}"
            );
            assert!(serial.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
            assert_eq!(serial.trim(), serial);
        }
    }
    assert!(found > 1000, "{found}");
}
