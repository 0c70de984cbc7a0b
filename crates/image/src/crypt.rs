//! Encrypted images (format 1.1, see `FORMAT.md`): the key block with its key slots, Argon2id
//! key derivation with bounded parameters, and AES-256-GCM sealing of chunks and metadata
//! sections under a random per-image data key.
//!
//! Secrets (the passphrase, key-encryption keys, the data key) live in [`Zeroizing`] buffers and
//! are wiped when dropped; the cipher state is wiped by `aes-gcm`'s `zeroize` feature. Nothing in
//! here logs or formats a secret: [`Passphrase`]'s `Debug` prints `***`.

use std::sync::{Arc, Mutex};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroizing;

use crate::format::{crc, crc_matches, rd_arr, rd_u16, rd_u32, Put};

/// Length of the key block that follows the volume header of volume 1 in an encrypted image.
pub const KEY_BLOCK_LEN: usize = 1024;
/// Offset of the key block in volume 1.
pub const KEY_BLOCK_OFFSET: u64 = 64;
/// First 8 bytes of the key block.
pub const KEY_BLOCK_MAGIC: [u8; 8] = *b"LBIKEYS\0";
/// Number of key slots in the key block.
pub const KEY_SLOTS: usize = 7;
/// Length of one key slot.
pub const KEY_SLOT_LEN: usize = 128;
/// Where the first key slot starts inside the key block.
const SLOTS_AT: usize = 32;
/// Bytes an AEAD tag adds to each sealed piece.
pub const TAG_LEN: usize = 16;
/// Cipher code of AES-256-GCM in the key block.
pub const CIPHER_AES256GCM: u16 = 1;
/// Slot kind: empty.
const SLOT_EMPTY: u16 = 0;
/// Slot kind: a password through Argon2id (version 0x13).
const SLOT_ARGON2ID: u16 = 1;

/// Largest Argon2id memory a reader accepts (KiB): 1 GiB.
pub const MAX_KDF_MEMORY_KIB: u32 = 1 << 20;
/// Largest Argon2id pass count a reader accepts.
pub const MAX_KDF_ITERATIONS: u32 = 64;
/// Largest Argon2id lane count a reader accepts.
pub const MAX_KDF_PARALLELISM: u32 = 16;
/// Largest memory × passes a reader accepts (KiB·passes, 8 GiB·passes: about 5 s here).
pub const MAX_KDF_WORK: u64 = 8 << 20;

/// What a sealed piece of an encrypted image is; part of its nonce and associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Domain {
    Chunk = 0,
    Bitmap = 1,
    StreamTable = 2,
    Index = 3,
    Manifest = 4,
}

/// Argon2id cost parameters of one key slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 192 MiB, 8 passes, 1 lane: about 1 s on the reference machine (see BENCHMARKS.md), and
    /// a backup's peak memory stays under 256 MiB with it.
    fn default() -> Self {
        KdfParams {
            memory_kib: 192 << 10,
            iterations: 8,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Checks the parameters against the reader's limits (so a crafted key slot cannot make
    /// the key derivation exhaust memory or time). Returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let KdfParams {
            memory_kib: m,
            iterations: t,
            parallelism: p,
        } = *self;
        if !(1..=MAX_KDF_PARALLELISM).contains(&p) {
            return Err(format!(
                "argon2id parallelism {p} is outside 1..={MAX_KDF_PARALLELISM}"
            ));
        }
        if !(1..=MAX_KDF_ITERATIONS).contains(&t) {
            return Err(format!(
                "argon2id passes {t} are outside 1..={MAX_KDF_ITERATIONS}"
            ));
        }
        if m < 8 * p || m > MAX_KDF_MEMORY_KIB {
            return Err(format!(
                "argon2id memory {m} KiB is outside {}..={MAX_KDF_MEMORY_KIB} KiB",
                8 * p
            ));
        }
        if u64::from(m) * u64::from(t) > MAX_KDF_WORK {
            return Err(format!(
                "argon2id work {m} KiB x {t} passes is more than the {MAX_KDF_WORK} allowed"
            ));
        }
        Ok(())
    }
}

/// A password for an encrypted image. Cloning shares it; the bytes are wiped when the last
/// clone is dropped. It remembers the data keys it unlocked (per image and key block), so an
/// image opened several times in one job runs the slow key derivation once.
#[derive(Clone)]
pub struct Passphrase {
    inner: Arc<PassInner>,
}

struct PassInner {
    bytes: Zeroizing<Vec<u8>>,
    unlocked: Mutex<Vec<Unlocked>>,
}

struct Unlocked {
    uuid: [u8; 16],
    block: Box<[u8; KEY_BLOCK_LEN]>,
    key: DataKey,
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

impl Passphrase {
    /// Wraps a password (its bytes as typed, UTF-8 for text). An empty password is allowed by
    /// this type; front ends refuse it.
    pub fn new(bytes: Vec<u8>) -> Self {
        Passphrase {
            inner: Arc::new(PassInner {
                bytes: Zeroizing::new(bytes),
                unlocked: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The password's bytes.
    pub fn expose(&self) -> &[u8] {
        &self.inner.bytes
    }

    /// Whether two passphrases hold the same bytes.
    pub fn same_as(&self, other: &Passphrase) -> bool {
        self.expose() == other.expose()
    }

    fn remembered(&self, uuid: &[u8; 16], block: &[u8; KEY_BLOCK_LEN]) -> Option<DataKey> {
        let list = self
            .inner
            .unlocked
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        list.iter()
            .find(|u| &u.uuid == uuid && u.block[..] == block[..])
            .map(|u| u.key.clone())
    }

    fn remember(&self, uuid: [u8; 16], block: &[u8; KEY_BLOCK_LEN], key: &DataKey) {
        let mut list = self
            .inner
            .unlocked
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if list.len() >= 16 {
            list.remove(0);
        }
        list.push(Unlocked {
            uuid,
            block: Box::new(*block),
            key: key.clone(),
        });
    }
}

/// The random 256-bit key that seals every piece of one image.
#[derive(Clone)]
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub(crate) fn random() -> Result<Self, String> {
        let mut k = Zeroizing::new([0u8; 32]);
        random_bytes(&mut k[..])?;
        Ok(DataKey(k))
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| format!("no random numbers from the operating system: {e}"))
}

/// One key slot: the data key wrapped under a key derived from a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySlot {
    pub kdf: KdfParams,
    pub salt: [u8; 32],
    pub nonce: [u8; 12],
    /// The wrapped data key followed by its tag.
    pub wrapped: [u8; 48],
}

impl KeySlot {
    fn encode(&self) -> [u8; KEY_SLOT_LEN] {
        let mut b = [0u8; KEY_SLOT_LEN];
        let mut p = Put::new(&mut b);
        p.u16(0, SLOT_ARGON2ID);
        p.u32(4, self.kdf.memory_kib);
        p.u32(8, self.kdf.iterations);
        p.u32(12, self.kdf.parallelism);
        p.bytes(16, &self.salt);
        p.bytes(48, &self.nonce);
        p.bytes(60, &self.wrapped);
        b
    }

    fn decode(b: &[u8]) -> Result<Option<Self>, String> {
        let kind = rd_u16(b, 0);
        // Bytes no field covers must be zero, so that no byte of the key block can change
        // unnoticed (the rest is covered by the slot's tag).
        let reserved_ok =
            |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(|&v| v == 0));
        if kind == SLOT_EMPTY {
            return if reserved_ok(0..KEY_SLOT_LEN) {
                Ok(None)
            } else {
                Err("empty but not zero".into())
            };
        }
        if !reserved_ok(2..4) || !reserved_ok(108..KEY_SLOT_LEN) {
            return Err("reserved bytes are not zero".into());
        }
        match kind {
            SLOT_ARGON2ID => Ok(Some(KeySlot {
                kdf: KdfParams {
                    memory_kib: rd_u32(b, 4),
                    iterations: rd_u32(b, 8),
                    parallelism: rd_u32(b, 12),
                },
                salt: rd_arr(b, 16),
                nonce: rd_arr(b, 48),
                wrapped: rd_arr(b, 60),
            })),
            k => Err(format!("unknown kind {k}")),
        }
    }

    /// The associated data of a slot's wrapped key: the image UUID, the slot number and the
    /// slot's bytes 0..60 (kind, parameters, salt, nonce).
    fn aad(&self, uuid: &[u8; 16], slot: usize) -> [u8; 80] {
        let mut a = [0u8; 80];
        a[..16].copy_from_slice(uuid);
        a[16..20].copy_from_slice(&(slot as u32).to_le_bytes());
        let enc = self.encode();
        a[20..80].copy_from_slice(&enc[..60]);
        a
    }
}

/// The key block of an encrypted image (after the volume header of volume 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBlock {
    pub slots: [Option<KeySlot>; KEY_SLOTS],
}

impl KeyBlock {
    pub fn encode(&self) -> [u8; KEY_BLOCK_LEN] {
        let mut b = [0u8; KEY_BLOCK_LEN];
        let mut p = Put::new(&mut b);
        p.bytes(0, &KEY_BLOCK_MAGIC);
        p.u16(8, 1);
        p.u16(10, CIPHER_AES256GCM);
        p.u32(12, KEY_BLOCK_LEN as u32);
        p.u32(16, KEY_SLOTS as u32);
        p.u32(20, KEY_SLOT_LEN as u32);
        let c = crc(&b[..28]);
        Put::new(&mut b).u32(28, c);
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(s) = s {
                let at = SLOTS_AT + i * KEY_SLOT_LEN;
                Put::new(&mut b).bytes(at, &s.encode());
            }
        }
        b
    }

    /// Decodes a key block. The fixed part is checked by its crc32; each slot is authenticated
    /// only when it is unlocked (its tag covers its parameters), so a torn write of one slot
    /// does not make the others unusable.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < KEY_BLOCK_LEN {
            return Err(format!(
                "{} bytes, a key block needs {KEY_BLOCK_LEN}",
                b.len()
            ));
        }
        if b.get(..8) != Some(&KEY_BLOCK_MAGIC[..]) {
            return Err("no key block magic".into());
        }
        let stored = rd_u32(b, 28);
        let computed = crc(b.get(..28).unwrap_or_default());
        if !crc_matches(stored, computed) {
            return Err(format!(
                "crc32 mismatch (stored {stored:08x}, computed {computed:08x})"
            ));
        }
        let version = rd_u16(b, 8);
        if version != 1 {
            return Err(format!("key block version {version} is not known"));
        }
        let cipher = rd_u16(b, 10);
        if cipher != CIPHER_AES256GCM {
            return Err(format!("cipher {cipher} is not known"));
        }
        let (len, count, slot_len) = (rd_u32(b, 12), rd_u32(b, 16), rd_u32(b, 20));
        if len != KEY_BLOCK_LEN as u32
            || count != KEY_SLOTS as u32
            || slot_len != KEY_SLOT_LEN as u32
        {
            return Err(format!(
                "layout {len} bytes, {count} slots of {slot_len} is not {KEY_BLOCK_LEN}, {KEY_SLOTS} of {KEY_SLOT_LEN}"
            ));
        }
        let zero = |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(|&v| v == 0));
        if !zero(24..28) || !zero(SLOTS_AT + KEY_SLOTS * KEY_SLOT_LEN..KEY_BLOCK_LEN) {
            return Err("reserved bytes are not zero".into());
        }
        let mut slots = [None; KEY_SLOTS];
        for (i, slot) in slots.iter_mut().enumerate() {
            let at = SLOTS_AT + i * KEY_SLOT_LEN;
            let raw = b.get(at..at + KEY_SLOT_LEN).unwrap_or_default();
            *slot = KeySlot::decode(raw).map_err(|d| format!("key slot {i}: {d}"))?;
        }
        Ok(KeyBlock { slots })
    }

    /// Number of slots in use.
    pub fn used(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

/// Why a key block did not unlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnlockError {
    /// No slot opened with this password.
    WrongPassword,
    /// A slot's parameters are outside the limits, or memory is short (the message says which).
    Refused(String),
}

/// Derives the key-encryption key of one slot. Memory is reserved fallibly, so a slot asking
/// for more than the machine has is an error, not an abort.
fn derive(pass: &[u8], slot: &KeySlot) -> Result<Zeroizing<[u8; 32]>, String> {
    slot.kdf.check()?;
    let params = argon2::Params::new(
        slot.kdf.memory_kib,
        slot.kdf.iterations,
        slot.kdf.parallelism,
        Some(32),
    )
    .map_err(|e| format!("argon2id parameters: {e}"))?;
    let blocks = params.block_count();
    let mut memory: Vec<argon2::Block> = Vec::new();
    memory.try_reserve_exact(blocks).map_err(|_| {
        format!(
            "no memory for the {} MiB the key derivation needs",
            slot.kdf.memory_kib / 1024
        )
    })?;
    memory.resize(blocks, argon2::Block::default());
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    let res = a.hash_password_into_with_memory(pass, &slot.salt, &mut out[..], &mut memory[..]);
    // The memory holds values derived from the password: wipe it.
    for b in memory.iter_mut() {
        *b = argon2::Block::default();
    }
    res.map_err(|e| format!("argon2id: {e}"))?;
    Ok(out)
}

/// Makes a key slot holding `key` for `pass`.
pub(crate) fn wrap_key(
    key: &DataKey,
    uuid: &[u8; 16],
    slot: usize,
    pass: &Passphrase,
    kdf: KdfParams,
) -> Result<KeySlot, String> {
    kdf.check()?;
    let mut s = KeySlot {
        kdf,
        salt: [0; 32],
        nonce: [0; 12],
        wrapped: [0; 48],
    };
    random_bytes(&mut s.salt)?;
    random_bytes(&mut s.nonce)?;
    seal_slot(s, key, uuid, slot, pass)
}

/// Fills in `s.wrapped` (salt, nonce and parameters given).
fn seal_slot(
    mut s: KeySlot,
    key: &DataKey,
    uuid: &[u8; 16],
    slot: usize,
    pass: &Passphrase,
) -> Result<KeySlot, String> {
    let kek = derive(pass.expose(), &s)?;
    let cipher = Aes256Gcm::new_from_slice(&kek[..]).map_err(|e| e.to_string())?;
    let mut buf = Zeroizing::new(*key.0);
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&s.nonce),
            &s.aad(uuid, slot),
            &mut buf[..],
        )
        .map_err(|_| "sealing the data key failed".to_string())?;
    s.wrapped[..32].copy_from_slice(&buf[..]);
    s.wrapped[32..].copy_from_slice(&tag);
    Ok(s)
}

/// Tries each used slot with `pass`; returns the data key and the number of the slot that
/// opened. A remembered key (same image, same key block) skips the key derivation.
pub(crate) fn unlock(
    raw: &[u8; KEY_BLOCK_LEN],
    block: &KeyBlock,
    uuid: &[u8; 16],
    pass: &Passphrase,
) -> Result<(DataKey, usize), UnlockError> {
    if let Some(k) = pass.remembered(uuid, raw) {
        // The slot number only matters to `passwd`, which always derives afresh.
        return Ok((k, usize::MAX));
    }
    let (key, slot) = unlock_slots(block, uuid, pass)?;
    pass.remember(*uuid, raw, &key);
    Ok((key, slot))
}

/// Derives and tries every used slot (no memo).
pub(crate) fn unlock_slots(
    block: &KeyBlock,
    uuid: &[u8; 16],
    pass: &Passphrase,
) -> Result<(DataKey, usize), UnlockError> {
    let mut refused = None;
    for (i, s) in block.slots.iter().enumerate() {
        let Some(s) = s else { continue };
        let kek = match derive(pass.expose(), s) {
            Ok(k) => k,
            Err(e) => {
                refused.get_or_insert(format!("key slot {i}: {e}"));
                continue;
            }
        };
        let Ok(cipher) = Aes256Gcm::new_from_slice(&kek[..]) else {
            continue;
        };
        let mut buf = Zeroizing::new([0u8; 32]);
        buf.copy_from_slice(&s.wrapped[..32]);
        let tag = Tag::from_slice(&s.wrapped[32..]);
        if cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&s.nonce),
                &s.aad(uuid, i),
                &mut buf[..],
                tag,
            )
            .is_ok()
        {
            return Ok((DataKey(buf), i));
        }
    }
    match refused {
        // A slot we could not even try may hold the password: say why instead of "wrong".
        Some(why) => Err(UnlockError::Refused(why)),
        None => Err(UnlockError::WrongPassword),
    }
}

/// Seals and opens the pieces of one image under its data key.
pub(crate) struct Sealer {
    cipher: Aes256Gcm,
    uuid: [u8; 16],
    chunk_size: u32,
}

impl Sealer {
    pub(crate) fn new(key: &DataKey, uuid: [u8; 16], chunk_size: u32) -> Result<Self, String> {
        let cipher = Aes256Gcm::new_from_slice(&key.0[..]).map_err(|e| e.to_string())?;
        Ok(Sealer {
            cipher,
            uuid,
            chunk_size,
        })
    }

    /// The 96-bit nonce of a piece: domain (1 byte), stream id (4), chunk number (7). Unique per
    /// data key because every (domain, stream, chunk) is sealed once per image, and each image
    /// has its own random data key.
    fn nonce(&self, domain: Domain, stream: u32, offset: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[0] = domain as u8;
        n[1..5].copy_from_slice(&stream.to_le_bytes());
        let chunk = offset / u64::from(self.chunk_size.max(1));
        n[5..12].copy_from_slice(&chunk.to_le_bytes()[..7]);
        n
    }

    /// The associated data: image UUID, domain, stream id, logical offset, sealed length and
    /// plain (uncompressed) length.
    fn aad(&self, domain: Domain, stream: u32, offset: u64, sealed: u64, plain: u64) -> [u8; 45] {
        let mut a = [0u8; 45];
        a[..16].copy_from_slice(&self.uuid);
        a[16] = domain as u8;
        a[17..21].copy_from_slice(&stream.to_le_bytes());
        a[21..29].copy_from_slice(&offset.to_le_bytes());
        a[29..37].copy_from_slice(&sealed.to_le_bytes());
        a[37..45].copy_from_slice(&plain.to_le_bytes());
        a
    }

    /// Encrypts `data` in place and appends the tag.
    pub(crate) fn seal(
        &self,
        domain: Domain,
        stream: u32,
        offset: u64,
        plain_len: u64,
        data: &mut Vec<u8>,
    ) -> Result<(), String> {
        let sealed = data.len() as u64 + TAG_LEN as u64;
        let aad = self.aad(domain, stream, offset, sealed, plain_len);
        let nonce = self.nonce(domain, stream, offset);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut data[..])
            .map_err(|_| "encryption failed".to_string())?;
        data.extend_from_slice(&tag);
        Ok(())
    }

    /// Checks the tag and decrypts in place, removing the tag.
    pub(crate) fn open(
        &self,
        domain: Domain,
        stream: u32,
        offset: u64,
        plain_len: u64,
        data: &mut Vec<u8>,
    ) -> Result<(), String> {
        let sealed = data.len() as u64;
        let Some(body) = data.len().checked_sub(TAG_LEN) else {
            return Err("shorter than its authentication tag".into());
        };
        let aad = self.aad(domain, stream, offset, sealed, plain_len);
        let nonce = self.nonce(domain, stream, offset);
        let tag: [u8; TAG_LEN] = rd_arr(data, body);
        data.truncate(body);
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &aad,
                &mut data[..],
                Tag::from_slice(&tag),
            )
            .map_err(|_| "fails authentication (altered, moved, or from another image)".to_string())
    }
}

/// A new image's keys: a fresh data key wrapped for `pass` in slot 0.
pub(crate) fn new_image_keys(
    uuid: &[u8; 16],
    pass: &Passphrase,
    kdf: KdfParams,
) -> Result<(DataKey, KeyBlock), String> {
    let key = DataKey::random()?;
    let slot = wrap_key(&key, uuid, 0, pass, kdf)?;
    let mut slots = [None; KEY_SLOTS];
    slots[0] = Some(slot);
    Ok((key, KeyBlock { slots }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The test vectors of FORMAT.md ("Test vectors").
    #[test]
    fn the_test_vectors_of_the_format_spec_hold() {
        let pass = Passphrase::new(b"lifeboat".to_vec());
        let uuid = [0x11u8; 16];
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = i as u8;
        }
        let key = DataKey(Zeroizing::new(key));
        let mut salt = [0u8; 32];
        for (i, b) in salt.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        let template = KeySlot {
            kdf: FAST,
            salt,
            nonce: [0xa0; 12],
            wrapped: [0; 48],
        };
        let kek = derive(pass.expose(), &template).unwrap();
        let slot = seal_slot(template, &key, &uuid, 0, &pass).unwrap();
        let sealer = Sealer::new(&key, uuid, 4096).unwrap();
        let mut chunk = b"Lifeboat test vector chunk".to_vec();
        let nonce = sealer.nonce(Domain::Chunk, 2, 8192);
        let aad = sealer.aad(Domain::Chunk, 2, 8192, chunk.len() as u64 + 16, 4096);
        sealer
            .seal(Domain::Chunk, 2, 8192, 4096, &mut chunk)
            .unwrap();
        let wrapped = hex(&slot.wrapped);
        let got = [
            hex(&kek[..]),
            format!("{}\n                {}", &wrapped[..64], &wrapped[64..]),
            hex(&nonce),
            hex(&aad),
            hex(&chunk),
        ];
        let spec = include_str!("../FORMAT.md");
        for v in got {
            assert!(spec.contains(&v), "FORMAT.md lacks {v}");
        }
    }

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn a_slot_opens_with_its_password_only() {
        let uuid = [3u8; 16];
        let pass = Passphrase::new(b"correct horse".to_vec());
        let (key, block) = new_image_keys(&uuid, &pass, FAST).unwrap();
        let raw = block.encode();
        let decoded = KeyBlock::decode(&raw).unwrap();
        assert_eq!(decoded, block);
        let (k, slot) = unlock_slots(&decoded, &uuid, &pass).unwrap();
        assert_eq!(slot, 0);
        assert_eq!(*k.0, *key.0);
        let wrong = Passphrase::new(b"correct horse!".to_vec());
        assert_eq!(
            unlock_slots(&decoded, &uuid, &wrong).err(),
            Some(UnlockError::WrongPassword)
        );
        // The slot is bound to its image.
        assert_eq!(
            unlock_slots(&decoded, &[4u8; 16], &pass).err(),
            Some(UnlockError::WrongPassword)
        );
    }

    #[test]
    fn crafted_kdf_parameters_are_refused_before_any_allocation() {
        for (m, t, p) in [
            (u32::MAX, 1, 1),
            (MAX_KDF_MEMORY_KIB + 1, 1, 1),
            (1 << 20, 9, 1),
            (64, 0, 1),
            (64, 1, 0),
            (64, 1, 17),
            (7, 1, 1),
        ] {
            let kdf = KdfParams {
                memory_kib: m,
                iterations: t,
                parallelism: p,
            };
            assert!(kdf.check().is_err(), "{kdf:?} accepted");
        }
        assert!(KdfParams::default().check().is_ok());
    }

    #[test]
    fn sealed_pieces_are_bound_to_their_place() {
        let key = DataKey::random().unwrap();
        let s = Sealer::new(&key, [1; 16], 4096).unwrap();
        let mut data = b"some chunk".to_vec();
        s.seal(Domain::Chunk, 2, 8192, 4096, &mut data).unwrap();
        assert!(!data.windows(5).any(|w| w == b"chunk"));
        let mut moved = data.clone();
        assert!(s.open(Domain::Chunk, 2, 12288, 4096, &mut moved).is_err());
        let mut other_stream = data.clone();
        assert!(s
            .open(Domain::Chunk, 3, 8192, 4096, &mut other_stream)
            .is_err());
        let mut truncated = data[..data.len() - 1].to_vec();
        assert!(s
            .open(Domain::Chunk, 2, 8192, 4096, &mut truncated)
            .is_err());
        let other = Sealer::new(&key, [2; 16], 4096).unwrap();
        let mut foreign = data.clone();
        assert!(other
            .open(Domain::Chunk, 2, 8192, 4096, &mut foreign)
            .is_err());
        s.open(Domain::Chunk, 2, 8192, 4096, &mut data).unwrap();
        assert_eq!(data, b"some chunk");
    }
}
