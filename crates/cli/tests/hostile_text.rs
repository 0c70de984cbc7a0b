//! What is shown is what is there: labels, partition names, file names and recorded paths that
//! hold terminal escape sequences and bidi overrides come out escaped in `info`, `list`, `ls` and
//! `extract` (and stay exact, JSON-escaped, in `--json`). Fixtures by the real tools: `sgdisk -c`
//! names a GPT partition, `mkfs.ext4 -d` copies a folder holding such a file name, `tune2fs -L`
//! sets the label.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use qemu_tests::fixture::{self, Mkfs};
use std::path::{Path, PathBuf};
use std::process::Command;

mod browse_support;

use browse_support::{json, lifeboat, p, run};

const MIB: u64 = 1024 * 1024;

/// Clears the screen, then reverses what follows.
const NAME: &str = "a\x1b[2Jb\u{202e}c.txt";
const NAME_SHOWN: &str = "a\\x1b[2Jb\\u{202e}c.txt";
const PART_NAME: &str = "EVIL\x1b[2J\u{202e}GPT";
const LABEL: &str = "T\x1b[31m\u{202e}Z";
const LABEL_SHOWN: &str = "T\\x1b[31m\\u{202e}Z";

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains('\x1b') && !text.contains('\u{202e}'),
        "{what} printed a raw control character: {text:?}"
    );
}

/// A 64 MiB GPT disk image named with an escape sequence: partition 1 (named [`PART_NAME`]) holds
/// an ext4 file system labelled [`LABEL`] with a file named [`NAME`].
fn hostile_disk(dir: &Path) -> PathBuf {
    let disk = dir.join("disk\x1b[2J.img");
    fixture::sparse_file(&disk, 64 * MIB).unwrap();
    fixture::run(
        "sgdisk",
        &[
            "-n",
            "1:2048:+40M",
            "-t",
            "1:8300",
            "-c",
            &format!("1:{PART_NAME}"),
            p(&disk),
        ],
    )
    .unwrap();
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join(NAME), b"hello").unwrap();
    let part = dir.join("part.img");
    fixture::mkfs(Mkfs::Ext4, &part, 40 * MIB, "plain", &["-d", p(&tree)]).unwrap();
    fixture::run("tune2fs", &["-L", LABEL, p(&part)]).unwrap();
    fixture::write_into(&disk, 2048 * 512, &part).unwrap();
    disk
}

#[test]
fn info_escapes_partition_names_and_labels_of_a_disk_and_of_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let disk = hostile_disk(dir.path());
    let (code, out, err) = lifeboat(&["info", p(&disk)]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_clean("info", &out);
    // The NAME column is 10 wide: the escaped name is cut there, after escaping.
    assert!(out.contains("EVIL\\x1b[…"), "{out}");
    assert!(out.contains(LABEL_SHOWN), "{out}");
    let (code, out, err) = lifeboat(&["info", "--json", p(&disk)]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\\u001b[2J"), "{out}");
    let v = json(&out).unwrap();
    let parts = v["content"]["partitions"].as_array().unwrap();
    assert_eq!(parts[0]["name"], PART_NAME);
    assert_eq!(parts[0]["fs"]["label"], LABEL);

    let lbi = dir.path().join("disk.lbi");
    let (code, out, err) = lifeboat(&["backup", p(&disk), p(&lbi)]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = lifeboat(&["info", p(&lbi)]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_clean("info IMAGE", &out);
    assert!(out.contains("disk\\x1b[2J.img"), "{out}");
    assert!(out.contains("EVIL\\x1b[2J\\u{2…"), "{out}");
    assert!(out.contains(LABEL_SHOWN), "{out}");
    assert!(out.contains("disk of unknown model and serial"), "{out}");
    let (code, out, _) = lifeboat(&["info", "--json", p(&lbi)]).unwrap();
    assert_eq!(code, 0);
    let v = json(&out).unwrap();
    assert_eq!(v["manifest"]["partitions"][0]["name"], PART_NAME);
    assert_eq!(v["manifest"]["partitions"][0]["label"], LABEL);
}

#[test]
fn ls_and_extract_escape_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let disk = hostile_disk(dir.path());
    let (code, out, err) = lifeboat(&["ls", p(&disk), "/"]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_clean("ls", &out);
    assert!(out.contains(NAME_SHOWN), "{out}");
    let (code, out, _) = lifeboat(&["ls", "--json", p(&disk), "/"]).unwrap();
    assert_eq!(code, 0);
    assert!(!out.contains('\x1b'), "{out}");
    let v = json(&out).unwrap();
    assert_eq!(v["label"], LABEL);
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == NAME),
        "{out}"
    );

    let to = dir.path().join("out");
    let path = format!("/{NAME}");
    let (code, out, err) = lifeboat(&["extract", p(&disk), &path, "--to", p(&to)]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(to.join(NAME)).unwrap(), b"hello");
    // Again: the failure line names the file, escaped.
    let (code, out, err) = lifeboat(&["extract", p(&disk), &path, "--to", p(&to)]).unwrap();
    assert_ne!(code, 0);
    assert_clean("extract", &out);
    assert_clean("extract (stderr)", &err);
    assert!(
        out.contains(&format!("failed: /{NAME_SHOWN}: ")) && out.contains("exists: kept"),
        "{out}"
    );
    let (_, out, _) = lifeboat(&["extract", "--json", p(&disk), &path, "--to", p(&to)]).unwrap();
    let v = json(&out).unwrap();
    assert_eq!(v["failed"][0]["path"], path);
}

/// A loop device over a file, with its partitions; detached on drop.
struct Loop(String);

impl Loop {
    fn new(img: &Path) -> Loop {
        let dev = run(Command::new("losetup").args(["-f", "--show", "-P", p(img)]))
            .unwrap()
            .trim()
            .to_string();
        Loop(dev)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn list_and_info_escape_the_labels_of_a_disk_and_name_it_by_identity() {
    let dir = tempfile::tempdir().unwrap();
    let disk = hostile_disk(dir.path());
    let lo = Loop::new(&disk);
    let (code, out, err) = lifeboat(&["list", "--all"]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_clean("list", &out);
    // The loop device's line and its partitions' lines below it.
    let ours: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{} ", lo.0)))
        .take_while(|l| l.starts_with(&lo.0) || l.starts_with(' '))
        .collect();
    assert!(
        ours.iter().any(|l| l.contains(LABEL_SHOWN)),
        "{} not listed with its label escaped:\n{out}",
        lo.0
    );
    let (code, out, _) = lifeboat(&["list", "--all", "--json"]).unwrap();
    assert_eq!(code, 0);
    assert!(!out.contains('\x1b'), "{out}");
    let v = json(&out).unwrap();
    let listed = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == lo.0.as_str())
        .unwrap();
    assert_eq!(
        listed["content"]["content"]["partitions"][0]["fs"]["label"],
        LABEL
    );
    let (code, out, err) = lifeboat(&["info", &lo.0]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_clean("info DISK", &out);
    let second = out.lines().nth(1).unwrap_or_default();
    assert_eq!(
        second, "disk: disk of unknown model and serial, 67.1 MB",
        "{out}"
    );
    assert!(out.contains(LABEL_SHOWN), "{out}");
}
