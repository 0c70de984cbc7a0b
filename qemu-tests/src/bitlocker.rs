//! BitLocker volumes laid out here, Windows 10 style, for the tests that need one holding a file
//! system with files (issue 16): no Windows-made volume with data can be shipped in this MIT
//! repository (cryptsetup's test images are GPL test data and hold no files).
//!
//! The layout follows the published facts — cryptsetup's `lib/bitlk` reader and libyal's
//! BitLocker notes — and is checked by independent readers: `cryptsetup bitlkDump` (with
//! `--dump-volume-key`, which unwraps the keys through the password and through the recovery
//! password) on the host, and `cryptsetup open --type bitlk` in the booted image. [`format`]
//! writes the metadata only:
//!
//! - the volume header (boot sector): `EB 58 90 -FVE-FS-`, 512-byte sectors, the BitLocker GUID
//!   `4967d63b-2e29-4ad8-8399-f6a339e3d001` at byte 160 and the three FVE metadata offsets at 176;
//! - three FVE metadata blocks (64 KiB areas), each: the block header (`-FVE-FS-`, version 2, size
//!   in 16-byte units, state 4 "encrypted" now and next, volume size, the relocated header's size in
//!   sectors, the three block offsets, the relocated header's offset), the metadata header (size,
//!   version 1, volume GUID, next nonce counter, encryption method, creation FILETIME) and the
//!   entries: the description (UTF-16LE), a VMK protected by a password and one protected by a
//!   recovery password (each: protector GUID, FILETIME, protection type, a stretch-key entry with
//!   its salt and the VMK wrapped by AES-CCM; Windows also nests AES-CCM entries of unpublished
//!   meaning in the stretch-key entry, which no reader needs and which are left out here), the FVEK wrapped by the VMK, and where the volume's
//!   first sectors were moved; behind the block its validation structure: CRC-32 of the block
//!   and, wrapped by the VMK, its SHA-256;
//! - the key derivation: the password as UTF-16LE hashed twice with SHA-256, or the recovery
//!   password's eight groups (each a multiple of 11) divided by 11 as 16 little-endian bytes hashed
//!   once; then 0x100000 SHA-256 rounds over (last hash, initial hash, salt, counter); the result
//!   is the AES-256-CCM key (12-byte nonce: FILETIME and a counter, 16-byte tag) of the VMK, the
//!   VMK that of the FVEK and of the validation hash.
//!
//! The sectors themselves are encrypted by whoever writes them: `cryptsetup open --type bitlk`
//! read-write in the booted image maps the plaintext volume (AES-XTS, the sector number as
//! tweak, the first 8 KiB of plaintext stored at the relocated header's place, zeros over the
//! metadata) and `mkntfs`/`ntfs-3g` write through it. Unlike Windows, which reserves the metadata
//! areas inside NTFS with a system file, the areas lie after `data_end`: the file system made
//! inside must end there (`mkntfs DEVICE SECTORS`), because writes to a `zero` segment are lost.
//! The boot code of the volume header is left zero (it is never run here).

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes256;
use anyhow::{ensure, Context, Result};
use fs::sha256::Sha256;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// The size of each FVE metadata area.
pub const FVE_AREA: u64 = 64 << 10;
/// The size of the relocated volume header (the file system's first sectors), as Windows 10
/// makes it.
pub const HEADER_AREA: u64 = 8 << 10;
/// Everything the metadata needs behind `data_end`: three areas spread over 576 KiB.
pub const METADATA_SPAN: u64 = 576 << 10;

/// The BitLocker identifier GUID of a Windows 7 or later volume header, as stored.
const BITLOCKER_GUID: [u8; 16] = [
    0x3b, 0xd6, 0x67, 0x49, 0x29, 0x2e, 0xd8, 0x4a, 0x83, 0x99, 0xf6, 0xa3, 0x39, 0xe3, 0xd0, 0x01,
];
/// Key stretching rounds.
const STRETCH_ROUNDS: u64 = 0x10_0000;
/// A FILETIME: 2026-12-01 00:00 UTC in 100 ns units since 1601.
const FILETIME: u64 = 134_405_568_000_000_000;

/// The sector encryption of the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// XTS-AES 128 (method 0x8004; two 128-bit keys), Windows 10's default.
    XtsAes128,
    /// XTS-AES 256 (method 0x8005).
    XtsAes256,
}

impl Cipher {
    fn method(self) -> u16 {
        match self {
            Cipher::XtsAes128 => 0x8004,
            Cipher::XtsAes256 => 0x8005,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Cipher::XtsAes128 => 32,
            Cipher::XtsAes256 => 64,
        }
    }
}

/// What to make.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// The password protector's password.
    pub password: &'a str,
    pub cipher: Cipher,
    /// The volume description (Windows writes the computer name, drive letter and date).
    pub description: &'a str,
    /// Seed of the keys, salts and GUIDs (fixtures are reproducible).
    pub seed: u64,
    /// Where the usable volume ends: the metadata areas lie in `[data_end, data_end + 576 KiB)`.
    pub data_end: u64,
}

/// What was made.
#[derive(Debug, Clone)]
pub struct Volume {
    pub size: u64,
    /// The volume GUID as `cryptsetup bitlkDump` prints it.
    pub guid: String,
    /// The recovery password, `NNNNNN-` × 8.
    pub recovery_password: String,
    /// The full volume encryption key (what `--dump-volume-key` prints).
    pub fvek: Vec<u8>,
    /// The FVE metadata areas' offsets.
    pub fve: [u64; 3],
    /// The relocated header area (offset, size).
    pub header: (u64, u64),
}

impl Volume {
    /// Every byte range BitLocker's metadata occupies (what a copy must keep): the volume
    /// header sector, the three FVE areas and the relocated header, sorted.
    pub fn metadata(&self) -> Vec<(u64, u64)> {
        let mut v = vec![(0, 512), self.header];
        v.extend(self.fve.iter().map(|&o| (o, FVE_AREA)));
        v.sort_unstable();
        v
    }
}

/// A deterministic byte stream for keys, salts and GUIDs.
struct Bytes(u64);

impl Bytes {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
        out
    }

    /// A random (version 4) GUID in Microsoft's byte order.
    fn guid(&mut self) -> [u8; 16] {
        let mut g: [u8; 16] = self.take();
        g[7] = (g[7] & 0x0f) | 0x40;
        g[8] = (g[8] & 0x3f) | 0x80;
        g
    }
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finish()
}

/// BitLocker's key stretching: 0x100000 rounds of SHA-256 over (last, initial, salt, counter).
fn stretch(initial: &[u8; 32], salt: &[u8; 16]) -> [u8; 32] {
    let mut last = [0u8; 32];
    for count in 0..STRETCH_ROUNDS {
        last = sha256(&[&last, initial, salt, &count.to_le_bytes()]);
    }
    last
}

/// The key a password protector's VMK is wrapped with.
pub fn password_key(password: &str, salt: &[u8; 16]) -> [u8; 32] {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let once = sha256(&[&utf16]);
    stretch(&sha256(&[&once]), salt)
}

/// The recovery password of a 16-byte recovery key: eight groups of six digits, each 11 times a
/// little-endian 16-bit word of the key.
pub fn recovery_password(key: &[u8; 16]) -> String {
    key.chunks_exact(2)
        .map(|w| format!("{:06}", u32::from(u16::from_le_bytes([w[0], w[1]])) * 11))
        .collect::<Vec<_>>()
        .join("-")
}

/// The key a recovery password protector's VMK is wrapped with.
pub fn recovery_key_wrap(key: &[u8; 16], salt: &[u8; 16]) -> [u8; 32] {
    stretch(&sha256(&[key]), salt)
}

/// AES-256-CCM (NIST SP 800-38C) with a 12-byte nonce, a 16-byte tag and no associated data:
/// returns (tag, ciphertext).
pub fn ccm_seal(key: &[u8; 32], nonce: &[u8; 12], plain: &[u8]) -> ([u8; 16], Vec<u8>) {
    let aes = Aes256::new(GenericArray::from_slice(key));
    let enc = |block: [u8; 16]| -> [u8; 16] {
        let mut b = GenericArray::from(block);
        aes.encrypt_block(&mut b);
        b.into()
    };
    // Three bytes of length (15 - 12); flags: tag length (16 - 2) / 2 in bits 3-5, q - 1 below.
    let len = plain.len() as u32;
    let mut b0 = [0u8; 16];
    b0[0] = (7 << 3) | 2;
    b0[1..13].copy_from_slice(nonce);
    b0[13..].copy_from_slice(&len.to_be_bytes()[1..]);
    let mut mac = enc(b0);
    for chunk in plain.chunks(16) {
        for (m, p) in mac.iter_mut().zip(chunk) {
            *m ^= p;
        }
        mac = enc(mac);
    }
    let counter = |i: u32| -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = 2;
        c[1..13].copy_from_slice(nonce);
        c[13..].copy_from_slice(&i.to_be_bytes()[1..]);
        c
    };
    let s0 = enc(counter(0));
    let mut tag = [0u8; 16];
    for (t, (m, s)) in tag.iter_mut().zip(mac.iter().zip(s0)) {
        *t = m ^ s;
    }
    let mut out = Vec::with_capacity(plain.len());
    for (i, chunk) in plain.chunks(16).enumerate() {
        let s = enc(counter(i as u32 + 1));
        out.extend(chunk.iter().zip(s).map(|(p, s)| p ^ s));
    }
    (tag, out)
}

/// An FVE metadata entry: size, type, value type, version 1, data.
fn entry(kind: u16, value: u16, data: &[u8]) -> Vec<u8> {
    let size = u16::try_from(8 + data.len()).expect("an FVE entry fits 64 KiB");
    let mut e = Vec::with_capacity(usize::from(size));
    for v in [size, kind, value, 1] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(data);
    e
}

/// Entry types and value types.
const PROPERTY: u16 = 0x0000;
const VMK: u16 = 0x0002;
const FVEK: u16 = 0x0003;
const DESCRIPTION: u16 = 0x0007;
const VOLUME_HEADER: u16 = 0x000f;
const VALUE_KEY: u16 = 0x0001;
const VALUE_STRING: u16 = 0x0002;
const VALUE_STRETCH_KEY: u16 = 0x0003;
const VALUE_AES_CCM: u16 = 0x0005;
const VALUE_VMK: u16 = 0x0008;
const VALUE_OFFSET_SIZE: u16 = 0x000f;
/// Protection types of a VMK.
const PROTECTED_BY_RECOVERY_PASSWORD: u16 = 0x0800;
const PROTECTED_BY_PASSWORD: u16 = 0x2000;
/// The encryption method of a VMK's key data, and of a password's and a recovery password's
/// stretch key (as a Windows 10 volume in cryptsetup's test set has them).
const METHOD_VMK: u32 = 0x2000;
const METHOD_STRETCH_PASSWORD: u32 = 0x1001;
const METHOD_STRETCH_RECOVERY: u32 = 0x1000;

/// Wraps `key` (with its method) under `wrap`: an AES-CCM entry whose plaintext is a key entry.
fn wrapped(wrap: &[u8; 32], nonce: &[u8; 12], method: u32, key: &[u8]) -> Vec<u8> {
    let mut data = method.to_le_bytes().to_vec();
    data.extend_from_slice(key);
    let plain = entry(PROPERTY, VALUE_KEY, &data);
    let (tag, ct) = ccm_seal(wrap, nonce, &plain);
    let mut v = nonce.to_vec();
    v.extend_from_slice(&tag);
    v.extend_from_slice(&ct);
    v
}

/// Writes a BitLocker volume's metadata into `disk` for the volume of `size` bytes at byte
/// `offset` (a partition). The sectors of the volume are left as they are.
pub fn format(disk: &Path, offset: u64, size: u64, spec: &Spec) -> Result<Volume> {
    ensure!(
        spec.data_end.is_multiple_of(4096)
            && spec.data_end >= 1 << 20
            && spec.data_end + METADATA_SPAN <= size,
        "a BitLocker volume of {size} bytes has no room for its metadata after byte {}",
        spec.data_end
    );
    let mut rng = Bytes(spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let fve = [
        spec.data_end,
        spec.data_end + (256 << 10),
        spec.data_end + (512 << 10),
    ];
    let header = (spec.data_end + FVE_AREA, HEADER_AREA);
    let volume_guid = rng.guid();
    let vmk: [u8; 32] = rng.take();
    let mut fvek = vec![0u8; spec.cipher.key_len()];
    for chunk in fvek.chunks_mut(32) {
        let k: [u8; 32] = rng.take();
        chunk.copy_from_slice(&k[..chunk.len()]);
    }
    let recovery: [u8; 16] = rng.take();
    let (salt_pw, salt_rec): ([u8; 16], [u8; 16]) = (rng.take(), rng.take());
    let mut counter = 0u32;
    let mut nonce = || {
        counter += 1;
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&FILETIME.to_le_bytes());
        n[8..].copy_from_slice(&counter.to_le_bytes());
        n
    };

    let mut entries = Vec::new();
    let mut desc: Vec<u8> = spec
        .description
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    desc.extend_from_slice(&[0, 0]);
    entries.extend(entry(DESCRIPTION, VALUE_STRING, &desc));
    for (protection, method, salt, wrap) in [
        (
            PROTECTED_BY_PASSWORD,
            METHOD_STRETCH_PASSWORD,
            salt_pw,
            password_key(spec.password, &salt_pw),
        ),
        (
            PROTECTED_BY_RECOVERY_PASSWORD,
            METHOD_STRETCH_RECOVERY,
            salt_rec,
            recovery_key_wrap(&recovery, &salt_rec),
        ),
    ] {
        let mut data = rng.guid().to_vec();
        data.extend_from_slice(&FILETIME.to_le_bytes());
        data.extend_from_slice(&0u16.to_le_bytes());
        data.extend_from_slice(&protection.to_le_bytes());
        let mut stretch_data = method.to_le_bytes().to_vec();
        stretch_data.extend_from_slice(&salt);
        data.extend(entry(PROPERTY, VALUE_STRETCH_KEY, &stretch_data));
        data.extend(entry(
            PROPERTY,
            VALUE_AES_CCM,
            &wrapped(&wrap, &nonce(), METHOD_VMK, &vmk),
        ));
        entries.extend(entry(VMK, VALUE_VMK, &data));
    }
    entries.extend(entry(
        FVEK,
        VALUE_AES_CCM,
        &wrapped(&vmk, &nonce(), u32::from(spec.cipher.method()), &fvek),
    ));
    let mut hdr = header.0.to_le_bytes().to_vec();
    hdr.extend_from_slice(&header.1.to_le_bytes());
    entries.extend(entry(VOLUME_HEADER, VALUE_OFFSET_SIZE, &hdr));

    let metadata_size = u32::try_from(48 + entries.len())?;
    let block_len = (64 + entries.len() + 48).next_multiple_of(16);
    let validation_nonce = nonce();
    let mut block = vec![0u8; block_len];
    block[0..8].copy_from_slice(b"-FVE-FS-");
    block[8..10].copy_from_slice(&u16::try_from(block_len / 16)?.to_le_bytes());
    block[10..12].copy_from_slice(&2u16.to_le_bytes());
    block[12..14].copy_from_slice(&4u16.to_le_bytes());
    block[14..16].copy_from_slice(&4u16.to_le_bytes());
    block[16..24].copy_from_slice(&size.to_le_bytes());
    block[28..32].copy_from_slice(&u32::try_from(header.1 / 512)?.to_le_bytes());
    for (i, o) in fve.iter().enumerate() {
        block[32 + 8 * i..40 + 8 * i].copy_from_slice(&o.to_le_bytes());
    }
    block[56..64].copy_from_slice(&header.0.to_le_bytes());
    block[64..68].copy_from_slice(&metadata_size.to_le_bytes());
    block[68..72].copy_from_slice(&1u32.to_le_bytes());
    block[72..76].copy_from_slice(&48u32.to_le_bytes());
    block[76..80].copy_from_slice(&metadata_size.to_le_bytes());
    block[80..96].copy_from_slice(&volume_guid);
    block[96..100].copy_from_slice(&(counter + 1).to_le_bytes());
    block[100..102].copy_from_slice(&spec.cipher.method().to_le_bytes());
    block[102..104].copy_from_slice(&spec.cipher.method().to_le_bytes());
    block[104..112].copy_from_slice(&FILETIME.to_le_bytes());
    block[112..112 + entries.len()].copy_from_slice(&entries);

    // The validation structure behind the block: CRC-32 of the block, and its SHA-256 wrapped
    // by the VMK (role 0, type 1, hash type 0x2005).
    let mut hash_data = 0x2005u16.to_le_bytes().to_vec();
    hash_data.extend_from_slice(&[0, 0]);
    hash_data.extend_from_slice(&sha256(&[&block]));
    let plain = entry(PROPERTY, VALUE_KEY, &hash_data);
    let (tag, ct) = ccm_seal(&vmk, &validation_nonce, &plain);
    let mut validation = Vec::new();
    validation.extend_from_slice(&88u16.to_le_bytes());
    validation.extend_from_slice(&2u16.to_le_bytes());
    validation.extend_from_slice(&crc32fast::hash(&block).to_le_bytes());
    let mut nested = validation_nonce.to_vec();
    nested.extend_from_slice(&tag);
    nested.extend_from_slice(&ct);
    validation.extend(entry(PROPERTY, VALUE_AES_CCM, &nested));
    ensure!(
        validation.len() == 88,
        "validation size {}",
        validation.len()
    );

    // The volume header: an NTFS-like boot sector naming BitLocker and the metadata areas.
    let mut vh = vec![0u8; 512];
    vh[0..3].copy_from_slice(&[0xeb, 0x58, 0x90]);
    vh[3..11].copy_from_slice(b"-FVE-FS-");
    vh[11..13].copy_from_slice(&512u16.to_le_bytes());
    vh[13] = 8;
    vh[21] = 0xf8;
    vh[24..26].copy_from_slice(&63u16.to_le_bytes());
    vh[26..28].copy_from_slice(&255u16.to_le_bytes());
    vh[28..32].copy_from_slice(&u32::try_from(offset / 512)?.to_le_bytes());
    vh[160..176].copy_from_slice(&BITLOCKER_GUID);
    for (i, o) in fve.iter().enumerate() {
        vh[176 + 8 * i..184 + 8 * i].copy_from_slice(&o.to_le_bytes());
    }
    vh[510] = 0x55;
    vh[511] = 0xaa;

    let mut f = OpenOptions::new()
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {}", disk.display()))?;
    let mut put = |at: u64, bytes: &[u8]| -> Result<()> {
        f.seek(SeekFrom::Start(offset + at))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", disk.display()))
    };
    put(0, &vh)?;
    let mut area = vec![0u8; FVE_AREA as usize];
    area[..block_len].copy_from_slice(&block);
    area[block_len..block_len + 88].copy_from_slice(&validation);
    for o in fve {
        put(o, &area)?;
    }
    Ok(Volume {
        size,
        guid: guid_text(&volume_guid),
        recovery_password: recovery_password(&recovery),
        fvek,
        fve,
        header,
    })
}

/// A Microsoft GUID (first three fields little-endian) as text.
fn guid_text(g: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ccm_seal_agrees_with_an_independent_aes_ccm() {
        // The expected bytes come from Python's `cryptography` (OpenSSL) AESCCM with a 16-byte
        // tag: key 0x00..0x1f, nonce 0x10..0x1b, a 20-byte plaintext (one and a quarter blocks).
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let nonce: [u8; 12] = std::array::from_fn(|i| 0x10 + i as u8);
        let (tag, ct) = ccm_seal(&key, &nonce, b"bitlocker vmk!!!abcd");
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(&ct), CCM_CT);
        assert_eq!(hex(&tag), CCM_TAG);
    }

    const CCM_CT: &str = "13d9856f09280b051ed3eb03577e91105796c449";
    const CCM_TAG: &str = "c7c75752b7a747d358b8488d0a604403";

    #[test]
    fn recovery_passwords_are_eight_groups_of_multiples_of_eleven() {
        let p = recovery_password(&[0xff; 16]);
        assert_eq!(p, ["720885"; 8].join("-"));
        assert_eq!(p.len(), 55);
    }
}
