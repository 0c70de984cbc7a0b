//! Encrypted images end to end through `lifeboat`: a GPT disk with FAT32, NTFS and ext4 file
//! systems made and filled by the real tools (sgdisk, mkfs.vfat + mcopy, mkntfs + ntfscp,
//! mkfs.ext4 -d), backed up with `--encrypt` into split and unsplit images; restore, verify, info,
//! ls and extract with the password; every reading command refused without it or with a wrong
//! one; no marker, label, partition name or serial in the image bytes; job files; `passwd`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{s, sgdisk_part, MIB};
use qemu_tests::fixture::{self, Mkfs};
use std::path::{Path, PathBuf};
use std::process::Command;

const MARKER: &str = "MARKER-9d41c07e5b2a8f36-PLAINTEXT";
const FAT_LABEL: &str = "FATQX7Z2K9";
const NTFS_LABEL: &str = "NTFSLBLW3K8Q";
const EXT_LABEL: &str = "EXTLBLP5R2J";
const PART_NAME: &str = "PNAMEZK4Q1V";
const SERIAL: &str = "SERIALJ8T6M2X";

/// Runs lifeboat in a new session (no controlling terminal, as under CI), so a password prompt
/// cannot be answered.
fn lifeboat(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("setsid")
        .arg("--wait")
        .arg(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Disk {
    dir: tempfile::TempDir,
    disk: PathBuf,
    pw: PathBuf,
}

/// A 96 MiB GPT disk: 1 = FAT32, 2 = NTFS, 3 = ext4; each holds `marker.txt` (the marker
/// repeated) and the partitions and file systems carry distinctive names and labels.
fn gpt_disk() -> Disk {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("src.img");
    fixture::sparse_file(&disk, 96 * MIB).unwrap();
    fixture::run(
        "sgdisk",
        &[
            "-n",
            "1:2048:+34M",
            "-t",
            "1:0700",
            "-c",
            &format!("1:{PART_NAME}"),
            "-n",
            "2:0:+24M",
            "-t",
            "2:0700",
            "-n",
            "3:0:0",
            "-t",
            "3:8300",
            s(&disk),
        ],
    )
    .unwrap();
    let marker = dir.path().join("marker.txt");
    std::fs::write(&marker, format!("{MARKER}\n").repeat(2000)).unwrap();
    let tree = dir.path().join("tree");
    fixture::file_tree(&tree, 60).unwrap();
    std::fs::copy(&marker, tree.join("marker.txt")).unwrap();
    let parts = [1, 2, 3].map(|n| sgdisk_part(&disk, n));
    let fat = dir.path().join("fat.img");
    fixture::mkfs(Mkfs::Fat32, &fat, parts[0].1, FAT_LABEL, &[]).unwrap();
    fixture::run("mcopy", &["-i", s(&fat), s(&marker), "::/MARKER.TXT"]).unwrap();
    let ntfs = dir.path().join("ntfs.img");
    fixture::mkfs(Mkfs::Ntfs, &ntfs, parts[1].1, NTFS_LABEL, &[]).unwrap();
    fixture::run("ntfscp", &[s(&ntfs), s(&marker), "marker.txt"]).unwrap();
    let ext = dir.path().join("ext.img");
    fixture::mkfs(Mkfs::Ext4, &ext, parts[2].1, EXT_LABEL, &["-d", s(&tree)]).unwrap();
    for (img, (start, _)) in [&fat, &ntfs, &ext].into_iter().zip(parts) {
        fixture::write_into(&disk, start, img).unwrap();
        std::fs::remove_file(img).unwrap();
    }
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "correct horse battery staple\n").unwrap();
    Disk { dir, disk, pw }
}

fn volumes(first: &Path) -> Vec<PathBuf> {
    let mut v = vec![first.to_path_buf()];
    for n in 2.. {
        let p = PathBuf::from(format!("{}.{n:03}", first.display()));
        if !p.exists() {
            break;
        }
        v.push(p);
    }
    v
}

fn assert_no_plaintext(img: &Path, needles: &[&str]) {
    for v in volumes(img) {
        let bytes = std::fs::read(&v).unwrap();
        for n in needles {
            // GPT names are UTF-16LE on disk; labels and the marker are ASCII.
            let utf16: Vec<u8> = n.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            for needle in [n.as_bytes(), &utf16[..]] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds {n:?} in clear",
                    v.display()
                );
            }
        }
    }
}

#[test]
fn encrypted_gpt_disk_round_trips_split_and_unsplit_and_nothing_is_readable_without_the_password() {
    let d = gpt_disk();
    let src = std::fs::read(&d.disk).unwrap();
    for needle in [MARKER, FAT_LABEL, NTFS_LABEL, EXT_LABEL] {
        let utf16: Vec<u8> = needle
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert!(
            src.windows(needle.len()).any(|w| w == needle.as_bytes())
                || src.windows(utf16.len()).any(|w| w == utf16),
            "{needle} not on the source"
        );
    }
    // The same disk without encryption: its restore is the reference.
    let plain = d.dir.path().join("plain.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&d.disk), s(&plain)]);
    assert_eq!(code, 0, "{out}{err}");
    let reference = d.dir.path().join("reference.img");
    fixture::sparse_file(&reference, 96 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&plain), s(&reference), "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let reference = std::fs::read(&reference).unwrap();

    for split in [None, Some("1M")] {
        let img = d.dir.path().join(if split.is_some() {
            "split.lbi"
        } else {
            "one.lbi"
        });
        let mut args = vec![
            "backup",
            s(&d.disk),
            s(&img),
            "--encrypt",
            "--password-file",
            s(&d.pw),
        ];
        if let Some(sz) = split {
            args.extend(["--split", sz]);
        }
        let (code, out, err) = lifeboat(&args);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains("encrypted: AES-256-GCM"),
            "the plan says so: {out}"
        );
        assert_eq!(volumes(&img).len() > 1, split.is_some());
        assert_no_plaintext(&img, &[MARKER, FAT_LABEL, NTFS_LABEL, EXT_LABEL, PART_NAME]);

        // Without the password every reading command refuses, naming the image.
        let out_dir = d.dir.path().join("out-refused");
        let mnt = d.dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let target = d.dir.path().join("refused.img");
        fixture::sparse_file(&target, 96 * MIB).unwrap();
        for cmd in [
            vec!["info", s(&img)],
            vec!["verify", s(&img)],
            vec!["ls", s(&img), "/", "--part", "3"],
            vec![
                "extract",
                s(&img),
                "/marker.txt",
                "--part",
                "3",
                "--to",
                s(&out_dir),
            ],
            vec!["restore", s(&img), s(&target), "--yes"],
            vec!["mount", s(&img), s(&mnt), "--part", "3"],
        ] {
            let (code, out, err) = lifeboat(&cmd);
            assert_ne!(code, 0, "{cmd:?} without a password: {out}{err}");
            assert!(
                err.contains("no terminal to ask for the password"),
                "{cmd:?}: {err}"
            );
            assert!(
                !out.contains(MARKER) && !out.contains(EXT_LABEL),
                "{cmd:?}: {out}"
            );
        }
        assert!(!out_dir.exists());
        assert!(
            std::fs::read(&target).unwrap().iter().all(|&b| b == 0),
            "nothing restored"
        );
        // A wrong password: one clear message.
        let wrong = d.dir.path().join("wrong.txt");
        std::fs::write(&wrong, "Correct horse battery staple\n").unwrap();
        for cmd in [
            vec!["info", s(&img)],
            vec!["verify", s(&img)],
            vec!["ls", s(&img), "/", "--part", "3"],
        ] {
            let mut cmd = cmd;
            cmd.extend(["--password-file", s(&wrong)]);
            let (code, out, err) = lifeboat(&cmd);
            assert_ne!(code, 0, "{cmd:?}");
            assert_eq!(
                err.trim(),
                format!("lifeboat: error: {}: wrong password (no key slot of this encrypted image opens with it)", img.display()),
                "{cmd:?}: {out}"
            );
        }

        // With it: verify, info, ls, extract, restore.
        let pw = ["--password-file", s(&d.pw)];
        let (code, out, err) = lifeboat(&[&["verify", s(&img)][..], &pw].concat());
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("image OK"), "{out}");
        let (code, out, err) = lifeboat(&[&["info", "--json", s(&img)][..], &pw].concat());
        assert_eq!(code, 0, "{out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["encrypted"], true);
        assert_eq!(v["format"], "1.1");
        let labels: Vec<&str> = v["manifest"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["label"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(labels, [FAT_LABEL, NTFS_LABEL, EXT_LABEL]);
        for part in ["1", "2", "3"] {
            let (code, out, err) =
                lifeboat(&[&["ls", s(&img), "/", "--part", part][..], &pw].concat());
            assert_eq!(code, 0, "{out}{err}");
            assert!(
                out.to_lowercase().contains("marker.txt"),
                "part {part}: {out}"
            );
            let to = d.dir.path().join(format!("out-{part}"));
            let name = if part == "1" {
                "/MARKER.TXT"
            } else {
                "/marker.txt"
            };
            let (code, out, err) = lifeboat(
                &[
                    &["extract", s(&img), name, "--part", part, "--to", s(&to)][..],
                    &pw,
                ]
                .concat(),
            );
            assert_eq!(code, 0, "{out}{err}");
            let got = std::fs::read_to_string(to.join(name.trim_start_matches('/'))).unwrap();
            assert_eq!(got, format!("{MARKER}\n").repeat(2000));
            std::fs::remove_dir_all(&to).unwrap();
        }
        let (code, out, err) = lifeboat(
            &[
                &["restore", s(&img), s(&target), "--yes", "--verify"][..],
                &pw,
            ]
            .concat(),
        );
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            std::fs::read(&target).unwrap() == reference,
            "restored bytes differ from the unencrypted image's restore"
        );
        for v in volumes(&img) {
            std::fs::remove_file(v).unwrap();
        }
        std::fs::remove_file(&target).unwrap();
    }
}

#[test]
fn passwd_changes_and_adds_passwords_from_the_command_line() {
    let d = gpt_disk();
    let img = d.dir.path().join("p.lbi");
    let (code, out, err) = lifeboat(&[
        "backup",
        s(&d.disk),
        s(&img),
        "--part",
        "3",
        "--encrypt",
        "--password-file",
        s(&d.pw),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let new = d.dir.path().join("new.txt");
    std::fs::write(&new, "a brand new passphrase").unwrap();
    let recovery = d.dir.path().join("recovery.txt");
    std::fs::write(&recovery, "recovery 4711 0815").unwrap();
    let (code, out, err) = lifeboat(&[
        "passwd",
        s(&img),
        "--password-file",
        s(&d.pw),
        "--new-password-file",
        s(&new),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("password changed"), "{out}");
    let (code, _, err) = lifeboat(&["verify", s(&img), "--password-file", s(&d.pw)]);
    assert_ne!(code, 0);
    assert!(err.contains("wrong password"), "{err}");
    let (code, out, err) = lifeboat(&[
        "passwd",
        s(&img),
        "--add",
        "--password-file",
        s(&new),
        "--new-password-file",
        s(&recovery),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 of 7 key slots in use"), "{out}");
    for pw in [&new, &recovery] {
        let (code, out, err) = lifeboat(&["verify", s(&img), "--password-file", s(pw)]);
        assert_eq!(code, 0, "{out}{err}");
    }
    // A plain image has no password to change.
    let plain = d.dir.path().join("plain.lbi");
    assert_eq!(
        lifeboat(&["backup", s(&d.disk), s(&plain), "--part", "3"]).0,
        0
    );
    let (code, _, err) = lifeboat(&["passwd", s(&plain), "--new-password-file", s(&new)]);
    assert_ne!(code, 0);
    assert!(err.contains("not encrypted"), "{err}");
}

#[test]
fn a_job_file_backs_up_encrypted_verifies_and_restores_with_its_password_file() {
    let d = gpt_disk();
    let job_dir = d.dir.path().join("stick");
    std::fs::create_dir_all(&job_dir).unwrap();
    std::fs::copy(&d.pw, job_dir.join("pw.txt")).unwrap();
    let target = d.dir.path().join("target.img");
    fixture::sparse_file(&target, 96 * MIB).unwrap();
    let job = job_dir.join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[[step]]\naction = \"backup\"\nsource = \"{}\"\nimage = \"images/pc.lbi\"\nencrypt = true\npassword_file = \"pw.txt\"\n\n\
             [[step]]\naction = \"verify\"\n\n\
             [[step]]\naction = \"restore\"\nimage = \"images/pc.lbi\"\ntarget = \"{}\"\npassword_file = \"pw.txt\"\n",
            s(&d.disk),
            s(&target)
        ),
    )
    .unwrap();
    let (code, out, err) = lifeboat(&["run", s(&job)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 step(s) OK"), "{out}");
    assert!(
        !out.contains("correct horse") && !err.contains("correct horse"),
        "the password is never printed"
    );
    let img = job_dir.join("images/pc.lbi");
    assert!(image::is_encrypted(&img).unwrap());
    assert_no_plaintext(&img, &[MARKER, EXT_LABEL]);
    let src = std::fs::read(&d.disk).unwrap();
    let got = std::fs::read(&target).unwrap();
    // The used blocks of every partition are back: the marker file of each file system too.
    for needle in [MARKER, FAT_LABEL, EXT_LABEL] {
        assert!(
            got.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle}"
        );
    }
    assert_eq!(got.len(), src.len());
    // A password file outside the job folder is refused, like an image path.
    std::fs::write(
        &job,
        "[[step]]\naction = \"verify\"\nimage = \"images/pc.lbi\"\npassword_file = \"../pw.txt\"\n",
    )
    .unwrap();
    let (code, out, _) = lifeboat(&["run", s(&job)]);
    assert_ne!(code, 0);
    assert!(out.contains("leads out with `..`"), "{out}");
    // Without a password file, the step says what is missing.
    std::fs::write(
        &job,
        "[[step]]\naction = \"verify\"\nimage = \"images/pc.lbi\"\n",
    )
    .unwrap();
    let (code, out, _) = lifeboat(&["run", s(&job)]);
    assert_ne!(code, 0);
    assert!(
        out.contains("is encrypted: give the step a password_file"),
        "{out}"
    );
}

#[test]
fn the_disk_serial_is_not_readable_in_an_encrypted_image() {
    use engine::job::{self, BackupSpec, Disks, JobSpec, Status};
    let d = gpt_disk();
    let img = d.dir.path().join("serial.lbi");
    let spec = JobSpec::Backup(BackupSpec {
        source: d.disk.clone(),
        image: img.clone(),
        part: None,
        options: engine::backup::BackupOptions::default(),
        all_unpartitioned: false,
        identity: Some(engine::backup::SourceIdentity {
            model: "Test Disk".into(),
            serial: SERIAL.into(),
        }),
        key: None,
        decrypted: false,
        encryption: Some(engine::backup::Encryption::new(image::Passphrase::new(
            b"pw for serial".to_vec(),
        ))),
    });
    let disks = Disks::discover(&disk::SysRoot::default()).unwrap();
    let plan = job::plan(spec, &disks).unwrap();
    let outcome = job::run(&plan, None, None, &engine::Cancel::new());
    assert_eq!(outcome.status, Status::Completed, "{outcome:?}");
    assert_no_plaintext(&img, &[SERIAL, MARKER]);
    let r = image::ImageReader::open_with(
        &img,
        Some(&image::Passphrase::new(b"pw for serial".to_vec())),
    )
    .unwrap();
    assert_eq!(r.manifest().source.serial, SERIAL);
}

#[test]
fn a_damaged_chunk_of_an_encrypted_image_is_named_by_verify_and_fails_only_the_file_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("victim.bin"), fixture::noise(1, 12 << 20)).unwrap();
    std::fs::write(tree.join("intact.bin"), fixture::noise(2, 12 << 20)).unwrap();
    std::fs::write(tree.join("small.txt"), b"still fine\n").unwrap();
    let fs_img = dir.path().join("fs.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &fs_img,
        128 * MIB,
        "data",
        &["-b", "4096", "-d", s(&tree)],
    )
    .unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "damage test password\n").unwrap();
    let lbi = dir.path().join("x.lbi");
    let (code, out, err) = lifeboat(&[
        "backup",
        s(&fs_img),
        s(&lbi),
        "--encrypt",
        "--password-file",
        s(&pw),
    ]);
    assert_eq!(code, 0, "{out}{err}");

    // The chunk holding the middle block of victim.bin (the index is sealed: read with the key).
    let blocks = fixture::run("debugfs", &["-R", "blocks /victim.bin", s(&fs_img)]).unwrap();
    let list: Vec<u64> = blocks
        .split_whitespace()
        .filter_map(|b| b.parse().ok())
        .collect();
    let fs_offset = list[list.len() / 2] * 4096;
    let pass = image::Passphrase::new(b"damage test password".to_vec());
    let reader = image::ImageReader::open_with(&lbi, Some(&pass)).unwrap();
    let entry = *reader
        .index()
        .iter()
        .find(|e| {
            e.logical_offset <= fs_offset
                && fs_offset < e.logical_offset + u64::from(e.uncompressed_len)
        })
        .unwrap();
    let chunk = entry.logical_offset / u64::from(reader.chunk_size());
    drop(reader);
    let mut bytes = std::fs::read(&lbi).unwrap();
    let at = (entry.volume_offset + 48 + u64::from(entry.compressed_len / 2)) as usize;
    bytes[at] ^= 0x5a;
    std::fs::write(&lbi, bytes).unwrap();

    let (code, out, _) = lifeboat(&["verify", s(&lbi), "--password-file", s(&pw)]);
    assert_ne!(code, 0);
    let named = format!(
        "chunk {chunk} of stream 0 (whole source), bytes {}..{}",
        entry.logical_offset,
        entry.logical_offset + u64::from(entry.uncompressed_len)
    );
    assert!(out.contains(&named), "{out}");
    let out_dir = dir.path().join("out");
    let (code, out, err) = lifeboat(&[
        "extract",
        s(&lbi),
        "/",
        "--to",
        s(&out_dir),
        "--json",
        "--password-file",
        s(&pw),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failed: Vec<&str> = v["failed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(failed, ["/victim.bin"]);
    assert!(
        std::fs::read(tree.join("intact.bin")).unwrap()
            == std::fs::read(out_dir.join("intact.bin")).unwrap()
    );
    assert_eq!(
        std::fs::read(out_dir.join("small.txt")).unwrap(),
        b"still fine\n"
    );
}

#[test]
fn an_encrypted_image_mounts_read_only_with_its_password() {
    let d = gpt_disk();
    let img = d.dir.path().join("m.lbi");
    let (code, out, err) = lifeboat(&[
        "backup",
        s(&d.disk),
        s(&img),
        "--part",
        "3",
        "--encrypt",
        "--password-file",
        s(&d.pw),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let dir = d.dir.path().join("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    let (code, out, err) = lifeboat(&["mount", s(&img), s(&dir), "--password-file", s(&d.pw)]);
    assert_eq!(code, 0, "{out}{err}");
    let read = std::fs::read_to_string(dir.join("marker.txt"));
    let (ucode, uout, uerr) = lifeboat(&["umount", s(&dir)]);
    assert_eq!(read.unwrap(), format!("{MARKER}\n").repeat(2000));
    assert_eq!(ucode, 0, "{uout}{uerr}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let canon = std::fs::canonicalize(&dir).unwrap();
    assert!(
        !mounts.contains(&format!(" {} ", canon.display())),
        "still mounted"
    );
}
