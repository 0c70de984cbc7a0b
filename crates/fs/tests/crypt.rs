//! `fs::crypt` on LUKS1 and LUKS2 headers made by `cryptsetup luksFormat` on plain files (no
//! device-mapper needed), checked against `cryptsetup luksDump`/`luksUUID` and `blkid -p`.
//! md superblocks need the md driver, which the build host lacks: they are made with `mdadm`
//! inside the booted image (`qemu-tests/tests/volumes.rs`).

mod common;

use anyhow::{Context, Result};
use common::{blkid, join, path_str, tempdir, FileIo};
use fs::crypt::{self, Encrypted, Scheme};
use fs::FsKind;
use qemu_tests::fixture;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// A 32 MiB file formatted with `cryptsetup luksFormat --type <version>` (fast PBKDF2) and
/// `extra` options, plus a second passphrase in another key slot.
fn luks_format(dir: &Path, version: &str, extra: &[&str]) -> Result<std::path::PathBuf> {
    let img = dir.join(format!("{version}.img"));
    let key = dir.join("key");
    let key2 = dir.join("key2");
    std::fs::write(&key, b"correct horse battery staple")?;
    std::fs::write(&key2, b"second passphrase")?;
    fixture::luks_format(&img, 32 * MIB, version, &key, extra)?;
    let fast = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"];
    let mut add = vec!["luksAddKey", "--batch-mode"];
    add.extend(fast);
    add.extend([
        "--key-file",
        path_str(&key)?,
        path_str(&img)?,
        path_str(&key2)?,
    ]);
    fixture::run("cryptsetup", &add)?;
    Ok(img)
}

fn read(img: &Path) -> Result<Encrypted> {
    let io = FileIo::open(img)?;
    crypt::read(&io)?.with_context(|| format!("no LUKS header recognised on {}", img.display()))
}

/// The value after `key` on a `luksDump` line (`Payload offset:\t4096`).
fn dump_value(dump: &str, key: &str) -> Option<String> {
    dump.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim().to_string())
}

#[test]
fn luks2_header_reports_cipher_uuid_label_subsystem_offset_and_key_slots() -> Result<()> {
    let dir = tempdir()?;
    let img = luks_format(
        dir.path(),
        "luks2",
        &[
            "--cipher",
            "aes-xts-plain64",
            "--key-size",
            "512",
            "--label",
            "ubuntu-root",
            "--subsystem",
            "lifeboat-test",
            "--sector-size",
            "4096",
        ],
    )?;
    let e = read(&img)?;
    let uuid = fixture::run("cryptsetup", &["luksUUID", path_str(&img)?])?;
    let json = fixture::run(
        "cryptsetup",
        &["luksDump", "--dump-json-metadata", path_str(&img)?],
    )?;
    let meta: serde_json::Value = serde_json::from_str(&json)?;
    let offset: u64 = meta["segments"]["0"]["offset"]
        .as_str()
        .context("segment offset")?
        .parse()?;
    assert_eq!(e.scheme, Scheme::Luks2);
    assert_eq!(e.uuid.as_deref(), Some(uuid.trim()));
    assert_eq!(e.label.as_deref(), Some("ubuntu-root"));
    assert_eq!(e.subsystem.as_deref(), Some("lifeboat-test"));
    assert_eq!(e.cipher.as_deref(), Some("aes-xts-plain64"));
    assert_eq!(e.key_bits, Some(512));
    assert_eq!(e.sector_size, 4096);
    assert_eq!(e.keyslots, 2);
    assert_eq!(e.protectors, vec!["luks2 pbkdf2", "luks2 pbkdf2"]);
    assert_eq!(e.data_offset, offset);
    assert!(e.data_offset >= 2 * MIB, "{e:?}");
    // Headers, key slots and everything up to the data are metadata, in one range.
    assert_eq!(e.metadata, vec![(0, offset)]);
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    assert_eq!(
        e.summary(),
        format!(
            "aes-xts-plain64 512-bit, subsystem \"lifeboat-test\", 2 key slots, data at {} MiB",
            offset >> 20
        )
    );
    // probe agrees with blkid and carries the summary.
    let info = fs::probe(&FileIo::open(&img)?)?.context("probe")?;
    let oracle = blkid(&img)?;
    assert_eq!(oracle.get("TYPE").map(String::as_str), Some("crypto_LUKS"));
    assert_eq!(oracle.get("UUID"), info.uuid.as_ref());
    assert_eq!(oracle.get("LABEL"), info.label.as_ref());
    assert_eq!(oracle.get("SUBSYSTEM"), e.subsystem.as_ref());
    assert_eq!(info.kind, FsKind::CryptoLuks);
    assert_eq!(info.detail.as_deref(), Some(e.summary().as_str()));
    assert!(info.kind.is_encrypted());
    Ok(())
}

#[test]
fn luks1_header_reports_cipher_payload_offset_and_enabled_key_slots() -> Result<()> {
    let dir = tempdir()?;
    let img = luks_format(
        dir.path(),
        "luks1",
        &["--cipher", "aes-cbc-essiv:sha256", "--key-size", "256"],
    )?;
    let e = read(&img)?;
    let dump = fixture::run("cryptsetup", &["luksDump", path_str(&img)?])?;
    let payload: u64 = dump_value(&dump, "Payload offset:")
        .context("payload offset in luksDump")?
        .parse()?;
    assert_eq!(e.scheme, Scheme::Luks1);
    assert_eq!(e.cipher.as_deref(), Some("aes-cbc-essiv:sha256"));
    assert_eq!(e.key_bits, Some(256));
    assert_eq!(e.data_offset, payload * 512);
    assert_eq!(e.keyslots, 2);
    assert_eq!(e.uuid, dump_value(&dump, "UUID:"), "luksDump says {dump}");
    assert_eq!(e.metadata, vec![(0, payload * 512)]);
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    Ok(())
}

#[test]
fn luks2_with_a_damaged_primary_json_area_is_read_from_the_secondary_header() -> Result<()> {
    let dir = tempdir()?;
    let img = luks_format(dir.path(), "luks2", &["--label", "twice"])?;
    let before = read(&img)?;
    // Overwrite the primary JSON area (after the 4 KiB binary header) with garbage.
    let mut bytes = std::fs::read(&img)?;
    for b in &mut bytes[4096..8192] {
        *b = b'#';
    }
    std::fs::write(&img, &bytes)?;
    let after = read(&img)?;
    assert_eq!(after.uuid, before.uuid);
    assert_eq!(after.label.as_deref(), Some("twice"));
    assert_eq!(after.data_offset, before.data_offset);
    assert_eq!(after.keyslots, 2);
    assert_eq!(
        after.warnings,
        vec!["the primary LUKS2 header is damaged: read the secondary copy"]
    );
    Ok(())
}

#[test]
fn luks2_whose_primary_fails_its_sha256_checksum_is_read_from_the_secondary_header() -> Result<()> {
    let dir = tempdir()?;
    let img = luks_format(dir.path(), "luks2", &["--label", "summed"])?;
    let before = read(&img)?;
    assert!(before.warnings.is_empty(), "{:?}", before.warnings);
    // One byte of the zero padding behind the primary JSON text: the JSON still parses, only
    // the checksum tells the copy was changed.
    let mut bytes = std::fs::read(&img)?;
    let hdr_size = u64::from_be_bytes(bytes[8..16].try_into()?) as usize;
    let pad = hdr_size - 1;
    assert_eq!(
        bytes[pad], 0,
        "the primary JSON area does not end in padding"
    );
    bytes[pad] = b' ';
    std::fs::write(&img, &bytes)?;
    let after = read(&img)?;
    assert_eq!(after.uuid, before.uuid);
    assert_eq!(after.label.as_deref(), Some("summed"));
    assert_eq!(
        after.warnings,
        vec!["the primary LUKS2 header is damaged: read the secondary copy"]
    );
    // The secondary copy changed the same way: neither matches, the primary is read, said so.
    bytes[hdr_size + hdr_size - 1] = b' ';
    std::fs::write(&img, &bytes)?;
    let both = read(&img)?;
    assert_eq!(both.uuid, before.uuid);
    assert_eq!(
        both.warnings,
        vec![
            "no LUKS2 header copy matches its SHA-256 checksum: cryptsetup will refuse the volume"
        ]
    );
    Ok(())
}

#[test]
fn a_luks_magic_on_random_bytes_is_not_a_luks_volume() -> Result<()> {
    let dir = tempdir()?;
    let img = join(&dir, "noise.img");
    let mut rng = common::Rng::new(7);
    let mut bytes: Vec<u8> = (0..(64 << 10)).map(|_| rng.next() as u8).collect();
    bytes[..6].copy_from_slice(b"LUKS\xba\xbe");
    for version in [1u8, 2] {
        bytes[6] = 0;
        bytes[7] = version;
        std::fs::write(&img, &bytes)?;
        assert_eq!(read(&img).ok(), None, "version {version}");
    }
    Ok(())
}

/// A BitLocker volume laid out by `qemu_tests::bitlocker` (Windows 10 style: password and
/// recovery-password protectors) is what `cryptsetup bitlkDump` reads, with the same volume key
/// unwrapped through either protector, and what `fs::crypt` describes: volume GUID, cipher,
/// protectors and every metadata range.
#[test]
fn a_bitlocker_volume_reads_like_cryptsetup_reads_it_with_guid_protectors_and_metadata(
) -> Result<()> {
    use qemu_tests::bitlocker::{self, Cipher, Spec};
    let dir = tempdir()?;
    for (cipher, bits, name) in [
        (Cipher::XtsAes128, 256, "XTS-AES 128"),
        (Cipher::XtsAes256, 512, "XTS-AES 256"),
    ] {
        let img = join(&dir, "bitlk.img");
        fixture::sparse_file(&img, 4 * MIB)?;
        let spec = Spec {
            password: "lifeboat BitLocker password",
            cipher,
            description: "LIFEBOAT-PC E: 01.12.2026",
            seed: u64::from(bits),
            data_end: 2 * MIB,
        };
        let vol = bitlocker::format(&img, 0, 4 * MIB, &spec)?;
        let dump = fixture::run("cryptsetup", &["bitlkDump", path_str(&img)?])?;
        for want in [
            format!("GUID:         \t{}", vol.guid),
            "Cipher name:  \taes".to_string(),
            "Cipher mode:  \txts-plain64".to_string(),
            format!("Cipher key:   \t{bits} bits"),
            "Description:  \tLIFEBOAT-PC E: 01.12.2026".to_string(),
            "VMK protected with passphrase".to_string(),
            "VMK protected with recovery passphrase".to_string(),
        ] {
            assert!(
                dump.contains(&want),
                "{name}: no {want:?} in bitlkDump:\n{dump}"
            );
        }
        let fvek: String = vol.fvek.iter().map(|b| format!("{b:02x}")).collect();
        for (what, key) in [
            ("password", spec.password.to_string()),
            ("recovery password", vol.recovery_password.clone()),
        ] {
            let key_file = join(&dir, "key");
            std::fs::write(&key_file, &key)?;
            let out = fixture::run(
                "cryptsetup",
                &[
                    "bitlkDump",
                    "--batch-mode",
                    "--dump-volume-key",
                    "--key-file",
                    path_str(&key_file)?,
                    path_str(&img)?,
                ],
            )?;
            // `MK dump:\t8c d7 ...` over lines of 16 bytes.
            let dumped: String = out
                .split_once("MK dump:")
                .map(|(_, d)| d.chars().filter(char::is_ascii_hexdigit).collect())
                .unwrap_or_default();
            assert!(
                dumped == fvek,
                "{name}: the {what} does not unwrap the volume key:\n{out}"
            );
        }
        let e = read(&img)?;
        assert_eq!(e.scheme, Scheme::BitLocker);
        assert_eq!(e.variant.as_deref(), Some("Windows 7 or later"));
        assert_eq!(e.uuid.as_deref(), Some(vol.guid.as_str()));
        assert_eq!(e.cipher.as_deref(), Some("aes-xts-plain64"));
        assert_eq!(e.key_bits, Some(bits));
        assert_eq!(e.protectors, ["password", "recovery password"]);
        assert_eq!(e.description.as_deref(), Some("LIFEBOAT-PC E: 01.12.2026"));
        assert_eq!(e.data_size, Some(4 * MIB));
        // The first 8 KiB (volume header and the sectors the relocated header stands for), the
        // first FVE area with the relocated header behind it, and the other two areas.
        assert_eq!(
            e.metadata,
            vec![
                (0, 8192),
                (vol.fve[0], 64 * 1024 + 8192),
                (vol.fve[1], 64 * 1024),
                (vol.fve[2], 64 * 1024)
            ],
            "{name}"
        );
        assert!(e.warnings.is_empty(), "{:?}", e.warnings);
        let probed = fs::probe(&FileIo::open(&img)?)?.context("nothing probed")?;
        assert_eq!(probed.kind, FsKind::BitLocker);
        assert_eq!(
            blkid(&img)?.get("TYPE").map(String::as_str),
            Some("BitLocker")
        );
    }
    Ok(())
}
