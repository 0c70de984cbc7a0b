//! Backing up an encrypted volume (LUKS1, LUKS2, BitLocker) with its key, without its plaintext:
//! the volume is opened read-only by the kernel's dm-crypt through `cryptsetup open --readonly`
//! (the key goes through a pipe on its standard input, never on a command line, never logged),
//! the file system inside — or the LVM2 PV and the file systems of its LVs — is mapped through
//! the unlocked device, and each used plaintext range is carried back to the ciphertext sectors
//! that hold it through the device-mapper table (`dmsetup table`: the same for LUKS, where one
//! crypt segment starts at the data offset, and BitLocker, where several segments step around
//! the metadata areas). The copy then stores those ciphertext sectors plus every header and
//! metadata area (`fs::crypt`): a restore writes back the same encrypted volume, locked by the
//! same keys, and the image never holds plaintext or a key.
//!
//! Needs device-mapper (the booted image has `dm_crypt`); the partition must have a device node
//! of its own.

use crate::error::JobError;
use disk::{BlockIo, FileDisk};
use fs::UsedMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A passphrase or BitLocker recovery password, or a key file's bytes. Its bytes are wiped when
/// it is dropped; `Debug` never shows them.
#[derive(Clone, Default)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new(bytes: Vec<u8>) -> Self {
        Key(bytes)
    }

    /// A key file's exact bytes, like `cryptsetup --key-file` reads them (a file written by
    /// `echo` ends in a newline that is part of the key: write it with `printf`).
    pub fn from_file(path: &Path) -> Result<Self, JobError> {
        let bytes = std::fs::read(path).map_err(|e| JobError::Key {
            problem: format!("reading the key file {}: {e}", path.display()),
        })?;
        if bytes.is_empty() {
            return Err(JobError::Key {
                problem: format!("the key file {} is empty", path.display()),
            });
        }
        Ok(Key(bytes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a typed character (a passphrase typed into a prompt, as UTF-8).
    pub fn push(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.0.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        buf.fill(0);
    }

    /// Removes the last typed character.
    pub fn pop(&mut self) {
        let keep = std::str::from_utf8(&self.0)
            .ok()
            .and_then(|s| s.char_indices().next_back().map(|(i, _)| i))
            .unwrap_or(self.0.len().saturating_sub(1));
        for b in &mut self.0[keep..] {
            *b = 0;
        }
        self.0.truncate(keep);
    }

    /// The number of characters typed (what a masked prompt shows as `*`).
    pub fn chars(&self) -> usize {
        std::str::from_utf8(&self.0).map_or(self.0.len(), |s| s.chars().count())
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Key {}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the compiler from dropping the wipe of memory about to be freed.
        std::hint::black_box(&self.0);
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<hidden>)")
    }
}

/// One line of a device-mapper table, in 512-byte sectors: the plaintext range `[start,
/// start + len)` of the mapped device and, for a `crypt` target, where its ciphertext starts on
/// the backing device (`zero` targets, BitLocker's metadata areas, have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmSegment {
    pub start: u64,
    pub len: u64,
    pub backing: Option<u64>,
}

/// Parses `dmsetup table NAME` output. `crypt` lines are `start len crypt cipher key iv_offset
/// device offset [options]`; any target other than `crypt` or `zero` is an error (the mapping
/// would be unknown).
pub fn parse_dm_table(text: &str) -> Result<Vec<DmSegment>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> Result<u64, String> {
            f.get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("unexpected device-mapper table line {line:?}"))
        };
        let (start, len) = (num(0)?, num(1)?);
        let backing = match f.get(2).copied() {
            Some("crypt") => Some(num(7)?),
            Some("zero") => None,
            other => {
                return Err(format!(
                    "device-mapper target {} is not crypt or zero",
                    other.unwrap_or("(none)")
                ))
            }
        };
        out.push(DmSegment {
            start,
            len,
            backing,
        });
    }
    if out.is_empty() {
        return Err("the device-mapper table is empty".into());
    }
    Ok(out)
}

/// The ciphertext map of an encrypted partition of `len` bytes: every metadata range, plus each
/// range `plain` marks carried through `table` to the backing device. Plaintext in a `zero`
/// segment has no ciphertext; a backing range past `len` is an error.
pub fn ciphertext_map(
    plain: &UsedMap,
    table: &[DmSegment],
    metadata: &[(u64, u64)],
    len: u64,
) -> Result<UsedMap, String> {
    let mut map = UsedMap::new(512, len).map_err(|e| e.to_string())?;
    for &(at, n) in metadata {
        map.mark(at, n);
    }
    for r in plain.ranges() {
        for seg in table {
            let Some(backing) = seg.backing else { continue };
            let s0 = seg.start.saturating_mul(512);
            let s1 = s0.saturating_add(seg.len.saturating_mul(512));
            let (a, b) = (r.start.max(s0), r.end.min(s1));
            if a >= b {
                continue;
            }
            let at = backing
                .checked_mul(512)
                .and_then(|o| o.checked_add(a - s0))
                .filter(|&o| o.checked_add(b - a).is_some_and(|end| end <= len))
                .ok_or_else(|| {
                    format!(
                        "the device-mapper table maps plaintext byte {a} outside the partition \
                         ({len} bytes)"
                    )
                })?;
            map.mark(at, b - a);
        }
    }
    Ok(map)
}

/// An unlocked volume: closed (`cryptsetup close`) when dropped.
struct Opened {
    name: String,
}

impl Drop for Opened {
    fn drop(&mut self) {
        let out = Command::new("cryptsetup")
            .args(["close", &self.name])
            .stdin(Stdio::null())
            .output();
        if let Some(o) = out.ok().filter(|o| !o.status.success()) {
            log::warn!(
                "cryptsetup close {}: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
    }
}

fn tool_error(tool: &str, e: std::io::Error) -> JobError {
    JobError::Key {
        problem: format!("running {tool}: {e} (is it in the image?)"),
    }
}

/// Opens `node` (an encrypted partition) read-only as `/dev/mapper/<name>` with `key`.
fn open(node: &Path, name: &str, scheme: fs::crypt::Scheme, key: &Key) -> Result<Opened, JobError> {
    let kind = match scheme {
        fs::crypt::Scheme::BitLocker => "bitlk",
        fs::crypt::Scheme::Luks1 | fs::crypt::Scheme::Luks2 => "luks",
    };
    let mut child = Command::new("cryptsetup")
        .args(["open", "--readonly", "--type", kind, "--key-file=-"])
        .arg(node)
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error("cryptsetup", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write (cryptsetup exited early) shows in its status below.
        let _ = stdin.write_all(&key.0);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| tool_error("cryptsetup", e))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(JobError::Key {
            problem: format!(
                "cryptsetup could not unlock {} (exit {}): {}",
                node.display(),
                out.status.code().unwrap_or(-1),
                if why.is_empty() {
                    "wrong key?".to_string()
                } else {
                    why
                }
            ),
        });
    }
    Ok(Opened {
        name: name.to_string(),
    })
}

fn dm_table(name: &str) -> Result<Vec<DmSegment>, JobError> {
    let out = Command::new("dmsetup")
        .args(["table", name])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_error("dmsetup", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(JobError::Key {
            problem: format!(
                "dmsetup table {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    parse_dm_table(&text).map_err(|problem| JobError::Key { problem })
}

/// What the backup of an unlocked encrypted partition stores.
#[derive(Debug)]
pub struct Mapped {
    /// The ciphertext map over the partition.
    pub map: UsedMap,
    /// What was found inside: `ext4`, `LVM2 PV, VG vg0: lv root (ext4, ...)`.
    pub inside: String,
    /// Plaintext bytes in use inside.
    pub used_inside: u64,
}

/// The LUKS or BitLocker header of the partition `node` (read from `part`).
fn header_of(node: &Path, part: &dyn BlockIo) -> Result<fs::crypt::Encrypted, JobError> {
    fs::crypt::read(part)
        .map_err(|e| JobError::Key {
            problem: e.to_string(),
        })?
        .ok_or_else(|| JobError::Key {
            problem: format!("{} holds no LUKS or BitLocker header", node.display()),
        })
}

/// Unlocks the encrypted partition `node` (its device node; `part` is the same partition read
/// through the source) with `key`, maps the file system inside and carries the map back to
/// ciphertext. The volume is closed again before this returns.
///
/// The outer error: the volume could not be unlocked (a wrong key, a missing tool or module).
/// The inner one: it was unlocked, but what is inside cannot be mapped (no known file system, a
/// map that fails its checks, a table of unknown shape): the caller copies it whole, saying why.
pub fn map_encrypted(
    node: &Path,
    part: &dyn BlockIo,
    number: u32,
    key: &Key,
) -> Result<Result<Mapped, String>, JobError> {
    let header = header_of(node, part)?;
    let name = format!("lifeboat-ro-{}-{number}", std::process::id());
    let opened = open(node, &name, header.scheme, key)?;
    let mapped = map_opened(&opened.name, part.len(), &header.metadata);
    drop(opened);
    Ok(mapped)
}

/// The ciphertext map of the volume open as `/dev/mapper/<name>`.
fn map_opened(name: &str, len: u64, metadata: &[(u64, u64)]) -> Result<Mapped, String> {
    let table = dm_table(name).map_err(|e| e.to_string())?;
    let mapper = PathBuf::from("/dev/mapper").join(name);
    let inner = FileDisk::open_read(&mapper).map_err(|e| e.to_string())?;
    let info = fs::probe(&inner)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no known file system inside".to_string())?;
    let (plain, inside) = if info.kind == fs::FsKind::Lvm2Member {
        let report = fs::lvm::pv_report(&inner).map_err(|e| format!("the LVM2 PV inside: {e}"))?;
        let inside = report.summary();
        (report.map, inside)
    } else {
        let map =
            fs::used_map(&inner, &info).map_err(|e| format!("the {} inside: {e}", info.kind))?;
        (map, info.kind.name().to_string())
    };
    let map = ciphertext_map(&plain, &table, metadata, len)?;
    Ok(Mapped {
        map,
        inside,
        used_inside: plain.used_bytes(),
    })
}

/// An unlocked volume read as plaintext (`--decrypted`, issue 16): the device-mapper device
/// stays open read-only until this is dropped, and a backup reads the file system inside from
/// it instead of the ciphertext.
pub struct Plaintext {
    /// The partition (its number in the source) this is the plaintext of.
    pub number: u32,
    /// `/dev/mapper/<name>`, open for reading. Declared before `opened`: closed before the
    /// mapping is removed.
    pub disk: FileDisk,
    /// What is inside: a file system or an LVM2 PV.
    pub info: fs::FsInfo,
    /// Its used blocks over the plaintext device; `None`: it cannot be mapped, every byte is
    /// copied (`why` says why).
    pub map: Option<UsedMap>,
    pub why: Option<String>,
    /// `ext4`, `LVM2 PV, VG vg0: lv root (ext4, ...)`.
    pub inside: String,
    opened: Opened,
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plaintext")
            .field("number", &self.number)
            .field("mapper", &self.opened.name)
            .field("inside", &self.inside)
            .finish_non_exhaustive()
    }
}

/// Unlocks the encrypted partition `node` read-only with `key` and keeps it open, for a backup
/// of the plaintext file system inside (`--decrypted`). The outer error: the volume could not be
/// unlocked; the inner one: it was, but nothing known is inside (there is then nothing a
/// technician could browse, and the plaintext is not worth storing).
pub fn open_plaintext(
    node: &Path,
    part: &dyn BlockIo,
    number: u32,
    key: &Key,
) -> Result<Result<Plaintext, String>, JobError> {
    let header = header_of(node, part)?;
    let name = format!("lifeboat-plain-{}-{number}", std::process::id());
    let opened = open(node, &name, header.scheme, key)?;
    let mapper = PathBuf::from("/dev/mapper").join(&name);
    let disk = match FileDisk::open_read(&mapper) {
        Ok(d) => d,
        Err(e) => return Ok(Err(format!("opening {}: {e}", mapper.display()))),
    };
    let info = match fs::probe(&disk) {
        Ok(Some(info)) => info,
        Ok(None) => return Ok(Err("no known file system inside".to_string())),
        Err(e) => return Ok(Err(e.to_string())),
    };
    let mapped = if info.kind == fs::FsKind::Lvm2Member {
        fs::lvm::pv_report(&disk)
            .map(|r| (r.summary(), r.map))
            .map_err(|e| e.to_string())
    } else {
        fs::used_map(&disk, &info)
            .map(|m| (info.kind.name().to_string(), m))
            .map_err(|e| e.to_string())
    };
    let (inside, map, why) = match mapped {
        Ok((inside, map)) => (inside, Some(map), None),
        Err(why) => (info.kind.name().to_string(), None, Some(why)),
    };
    Ok(Ok(Plaintext {
        number,
        disk,
        info,
        map,
        why,
        inside,
        opened,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_luks_table_is_one_crypt_segment_at_the_data_offset() {
        let t = parse_dm_table(
            "0 24576 crypt aes-xts-plain64 :64:logon:cryptsetup:abc-d0 0 254:3 32768 1 allow_discards\n",
        )
        .unwrap();
        assert_eq!(
            t,
            vec![DmSegment {
                start: 0,
                len: 24576,
                backing: Some(32768)
            }]
        );
    }

    #[test]
    fn other_targets_make_the_mapping_unknown() {
        let e = parse_dm_table("0 100 linear 8:1 0\n").unwrap_err();
        assert!(e.contains("linear is not crypt or zero"), "{e}");
        assert!(parse_dm_table("").is_err());
        assert!(parse_dm_table("0 x crypt\n").is_err());
    }

    #[test]
    fn plaintext_ranges_land_on_their_ciphertext_and_metadata_is_kept() {
        // 64 KiB partition: header in the first 16 KiB, data from sector 32.
        let mut plain = UsedMap::new(512, 48 << 10).unwrap();
        plain.mark(0, 4096);
        plain.mark(40 << 10, 1024);
        let table = [DmSegment {
            start: 0,
            len: 96,
            backing: Some(32),
        }];
        let map = ciphertext_map(&plain, &table, &[(0, 16 << 10)], 64 << 10).unwrap();
        assert_eq!(
            map.ranges().collect::<Vec<_>>(),
            vec![0..20 << 10, 56 << 10..57 << 10]
        );
    }

    #[test]
    fn bitlocker_style_tables_skip_zero_segments_and_move_the_first_sectors() {
        // Plaintext sectors 0..16 live at sector 100 (the moved volume header), 16..64 in place,
        // 64..80 is a zero (metadata) segment.
        let table = parse_dm_table(
            "0 16 crypt aes-xts-plain64 :32:logon:k 100 8:1 100\n\
             16 48 crypt aes-xts-plain64 :32:logon:k 16 8:1 16\n\
             64 16 zero\n",
        )
        .unwrap();
        let mut plain = UsedMap::new(512, 80 * 512).unwrap();
        plain.mark(0, 80 * 512);
        let map = ciphertext_map(&plain, &table, &[], 128 * 512).unwrap();
        assert_eq!(
            map.ranges().collect::<Vec<_>>(),
            vec![16 * 512..64 * 512, 100 * 512..116 * 512]
        );
    }

    #[test]
    fn the_table_cryptsetup_made_for_a_windows_bitlocker_volume_leaves_only_its_metadata_out() {
        // `dmsetup table` of cryptsetup 2.x opening a 100 MiB BitLocker volume made by Windows 10
        // (AES-XTS-128; `cryptsetup bitlkDump`: FVE metadata blocks of 64 KiB at bytes 35213312,
        // 46256128 and 57909248, the encrypted volume header, 8 KiB, at 35278848), recorded in
        // the booted image. The plaintext boot sector is the relocated header; the metadata blocks
        // are zero segments.
        let table = parse_dm_table(
            "0 16 crypt aes-xts-plain64 :32:logon:k 68904 254:0 68904\n\
             16 68760 crypt aes-xts-plain64 :32:logon:k 16 254:0 16\n\
             68776 128 zero \n\
             68904 16 zero \n\
             68920 21424 crypt aes-xts-plain64 :32:logon:k 68920 254:0 68920\n\
             90344 128 zero \n\
             90472 22632 crypt aes-xts-plain64 :32:logon:k 90472 254:0 90472\n\
             113104 128 zero \n\
             113232 91568 crypt aes-xts-plain64 :32:logon:k 113232 254:0 113232\n",
        )
        .unwrap();
        let len = 104_857_600;
        let mut plain = UsedMap::new(512, len).unwrap();
        plain.mark_all();
        let map = ciphertext_map(&plain, &table, &[], len).unwrap();
        let mut gaps = Vec::new();
        let mut at = 0;
        for r in map.ranges() {
            if r.start > at {
                gaps.push((at, r.start - at));
            }
            at = r.end;
        }
        // Every used plaintext byte has its ciphertext; what is left out is exactly the
        // BitLocker boot sector area and the three FVE metadata blocks, which `fs::crypt` lists
        // as metadata.
        assert_eq!(
            gaps,
            vec![
                (0, 8192),
                (35_213_312, 65_536),
                (46_256_128, 65_536),
                (57_909_248, 65_536)
            ]
        );
        assert_eq!(at, len);
    }

    #[test]
    fn a_table_pointing_past_the_partition_is_an_error() {
        let mut plain = UsedMap::new(512, 4096).unwrap();
        plain.mark(0, 4096);
        let table = [DmSegment {
            start: 0,
            len: 8,
            backing: Some(100),
        }];
        let e = ciphertext_map(&plain, &table, &[], 8192).unwrap_err();
        assert!(e.contains("outside the partition"), "{e}");
    }

    #[test]
    fn a_key_never_shows_in_debug_output() {
        let k = Key::new(b"hunter2".to_vec());
        assert_eq!(format!("{k:?}"), "Key(<hidden>)");
    }

    #[test]
    fn a_typed_key_adds_and_removes_whole_characters() {
        let mut k = Key::default();
        for c in "pé€".chars() {
            k.push(c);
        }
        assert_eq!(
            (k.chars(), k.clone()),
            (3, Key::new("pé€".as_bytes().to_vec()))
        );
        k.pop();
        assert_eq!(k, Key::new("pé".as_bytes().to_vec()));
        k.pop();
        k.pop();
        k.pop();
        assert!(k.is_empty());
    }
}
