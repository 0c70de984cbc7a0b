//! `lifeboat serve` and `lifeboat receive` (issue 19): a real GPT system disk (ESP with files,
//! NTFS, ext4 filled with a file tree; made by sgdisk, mkfs.*, mcopy, ntfscp) is backed up, then
//! sent as a cast stream — through a pipe, and by multicast with udpcast inside network
//! namespaces this test creates (a bridge and one namespace per PC; no other address is
//! contacted) — and every receiver's disk must equal a plain `lifeboat restore` of the same image
//! byte for byte. A receiver killed mid-session leaves the others complete and is reported as
//! dropped; a damaged chunk stops the session with its message; truncated and garbled streams are
//! refused and leave the target without a partition table.

#![allow(clippy::unwrap_used)]

mod common;

use common::{lifeboat, s, system_disk, SystemDisk, MIB};
use qemu_tests::fixture;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

struct Setup {
    sd: SystemDisk,
    image: PathBuf,
    /// sha256 of a plain `lifeboat restore` of the image onto a blank disk of the same size.
    want: String,
}

fn blank(path: &Path) {
    fixture::sparse_file(path, 160 * MIB).unwrap();
}

fn setup() -> Setup {
    let sd = system_disk();
    let image = sd.dir.path().join("sys.lbi");
    let (code, _, err) = lifeboat(&["backup", s(&sd.disk), s(&image)]);
    assert_eq!(code, 0, "{err}");
    let plain = sd.dir.path().join("plain.img");
    blank(&plain);
    let (code, _, err) = lifeboat(&["restore", s(&image), s(&plain), "--yes"]);
    assert_eq!(code, 0, "{err}");
    let want = fixture::sha256(&plain).unwrap();
    Setup { sd, image, want }
}

/// The cast stream of `image` as `lifeboat serve --stdout` writes it.
fn cast_of(image: &Path, extra: &[&str]) -> (i32, Vec<u8>, String) {
    let mut args = vec!["serve", s(image), "--clients", "1", "--stdout"];
    args.extend_from_slice(extra);
    let out = Command::new(BIN).args(&args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `lifeboat receive TARGET --stdin --yes` fed `stream`.
fn receive_stdin(target: &Path, stream: &[u8], extra: &[&str]) -> (i32, String) {
    let mut args = vec!["receive", s(target), "--stdin", "--yes"];
    args.extend_from_slice(extra);
    let mut child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The receiver may stop reading early (refused stream): a broken pipe is expected then.
    let _ = stdin.write_all(stream);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// True when `disk` has a GPT header at LBA 1 or a backup header at its last sector.
fn has_gpt(disk: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(disk).unwrap();
    let len = f.metadata().unwrap().len();
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    f.read_exact_at(&mut a, 512).unwrap();
    f.read_exact_at(&mut b, len - 512).unwrap();
    &a == b"EFI PART" || &b == b"EFI PART"
}

#[test]
fn a_piped_cast_stream_restores_the_same_disk_as_a_plain_restore_plain_and_encrypted() {
    let st = setup();
    let d = st.sd.dir.path();
    let (code, stream, err) = cast_of(&st.image, &[]);
    assert_eq!(code, 0, "{err}");
    let target = d.join("t1.img");
    blank(&target);
    let (code, out) = receive_stdin(&target, &stream, &["--verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the image arrives as a stream"), "{out}");
    assert!(out.contains("verified"), "{out}");
    assert_eq!(fixture::sha256(&target).unwrap(), st.want);
    common::check_clone(&st.sd, &target);

    // Encrypted: the same disk, the password from a file on both sides; the stream is sealed.
    let pw = d.join("pw");
    std::fs::write(&pw, "a long lab password\n").unwrap();
    let enc = d.join("enc.lbi");
    let (code, _, err) = lifeboat(&[
        "backup",
        s(&st.sd.disk),
        s(&enc),
        "--encrypt",
        "--password-file",
        s(&pw),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, sealed, err) = cast_of(&enc, &["--password-file", s(&pw)]);
    assert_eq!(code, 0, "{err}");
    let f = st.sd.files.iter().find(|f| f.starts_with("file-")).unwrap();
    let marker = std::fs::read(st.sd.tree.join(f)).unwrap();
    assert!(
        !sealed.windows(64).any(|w| w == &marker[..64]),
        "a file's bytes travel in the clear"
    );
    let target = d.join("t2.img");
    blank(&target);
    let (code, out) = receive_stdin(&target, &sealed, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("password"), "{out}");
    assert!(!has_gpt(&target), "written without the password");
    let (code, out) = receive_stdin(&target, &sealed, &["--verify", "--password-file", s(&pw)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(fixture::sha256(&target).unwrap(), st.want);
}

#[test]
fn truncated_garbled_and_foreign_streams_are_refused_and_the_target_has_no_table() {
    let st = setup();
    let d = st.sd.dir.path();
    let (code, stream, err) = cast_of(&st.image, &[]);
    assert_eq!(code, 0, "{err}");
    let target = d.join("t.img");
    let old_disk = |t: &Path| {
        std::fs::copy(&st.sd.disk, t).unwrap();
        assert!(has_gpt(t));
    };
    // Cut inside the metadata: nothing is written (the old table stays).
    old_disk(&target);
    let (code, out) = receive_stdin(&target, &stream[..100], &[]);
    assert_ne!(code, 0);
    assert!(out.contains("truncated"), "{out}");
    assert_eq!(
        fixture::sha256(&target).unwrap(),
        fixture::sha256(&st.sd.disk).unwrap()
    );
    // Cut inside the records, and one byte short of the end: refused, no partition table.
    for cut in [stream.len() / 2, stream.len() - 1] {
        old_disk(&target);
        let (code, out) = receive_stdin(&target, &stream[..cut], &[]);
        assert_ne!(code, 0, "cut at {cut}");
        assert!(out.contains("truncated"), "cut at {cut}: {out}");
        assert!(out.contains("the target has no partition table"), "{out}");
        assert!(!has_gpt(&target), "cut at {cut}: a table was written");
    }
    // A byte garbled in transit near the end.
    let mut bad = stream.clone();
    let at = bad.len() - 4096;
    bad[at] ^= 0x10;
    old_disk(&target);
    let (code, out) = receive_stdin(&target, &bad, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("crc32"), "{out}");
    assert!(!has_gpt(&target));
    // Something else entirely.
    let image_bytes = std::fs::read(&st.image).unwrap();
    let (code, out) = receive_stdin(&target, &image_bytes, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("not a Lifeboat cast stream"), "{out}");
}

#[test]
fn a_damaged_chunk_stops_the_session_with_its_message() {
    let st = setup();
    let d = st.sd.dir.path();
    // Damage the stored bytes of a chunk in the middle of the image.
    let mut bytes = std::fs::read(&st.image).unwrap();
    let records: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == b"LBCK")
        .map(|(i, _)| i)
        .collect();
    assert!(records.len() >= 3, "{} chunk records", records.len());
    let rec = records[records.len() / 2];
    bytes[rec + 48 + 100] ^= 0xff;
    let damaged = d.join("damaged.lbi");
    std::fs::write(&damaged, &bytes).unwrap();
    let (code, stream, err) = cast_of(&damaged, &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("is damaged") && err.contains("fail their crc32"),
        "{err}"
    );
    let target = d.join("t.img");
    std::fs::copy(&st.sd.disk, &target).unwrap();
    let (code, out) = receive_stdin(&target, &stream, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("the sender stopped the session"), "{out}");
    assert!(out.contains("fail their crc32"), "{out}");
    assert!(!has_gpt(&target));
}

static LAN: AtomicU32 = AtomicU32::new(0);

/// A virtual LAN inside network namespaces made here: a sender namespace with a bridge, and one
/// namespace per receiver joined to it by a veth pair. Deleted when dropped.
struct Lan {
    sender: String,
    receivers: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    fn new(receivers: usize) -> Lan {
        fixture::require("ip").unwrap();
        fixture::require("udp-sender").unwrap();
        let tag = format!(
            "lbc{}x{}",
            std::process::id(),
            LAN.fetch_add(1, Ordering::SeqCst)
        );
        let lan = Lan {
            sender: format!("{tag}s"),
            receivers: (0..receivers).map(|i| format!("{tag}r{i}")).collect(),
        };
        for ns in std::iter::once(&lan.sender).chain(&lan.receivers) {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let sn = lan.sender.as_str();
        ip(&[
            "-n",
            sn,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", sn, "link", "set", "br0", "up"]);
        ip(&[
            "-n",
            sn,
            "addr",
            "add",
            "10.231.7.1/24",
            "brd",
            "+",
            "dev",
            "br0",
        ]);
        ip(&["-n", sn, "route", "add", "224.0.0.0/4", "dev", "br0"]);
        for (i, r) in lan.receivers.iter().enumerate() {
            let host = format!("v{tag}{i}");
            let host = &host[host.len().saturating_sub(15)..];
            ip(&[
                "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", r,
            ]);
            ip(&["link", "set", host, "netns", sn]);
            ip(&["-n", sn, "link", "set", host, "master", "br0", "up"]);
            let addr = format!("10.231.7.{}/24", 11 + i);
            ip(&["-n", r, "addr", "add", &addr, "brd", "+", "dev", "eth0"]);
            ip(&["-n", r, "link", "set", "eth0", "up"]);
            ip(&["-n", r, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
        }
        lan
    }

    fn spawn(ns: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", ns, BIN])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in std::iter::once(&self.sender).chain(&self.receivers) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Waits for `child` at most `secs`, killing it past that; returns (exit code, output).
fn finish(mut child: Child, secs: u64) -> (i32, String) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn multicast_to_receivers_in_a_namespace_lan_equals_a_plain_restore_and_each_reports_done_failed_or_dropped(
) {
    let st = setup();
    let d = st.sd.dir.path();
    let lan = Lan::new(4);
    let targets: Vec<PathBuf> = (0..4).map(|i| d.join(format!("pc{i}.img"))).collect();
    for t in &targets[..3] {
        std::fs::copy(&st.sd.disk, t).unwrap();
    }
    // The fourth PC's disk is far too small for the image: it refuses, and says why.
    fixture::sparse_file(&targets[3], 8 * MIB).unwrap();
    // The second PC runs a job file, as a PXE-booted one would.
    let job = d.join("receive.toml");
    std::fs::write(
        &job,
        format!(
            "[[step]]\naction = \"receive\"\ntarget = \"{}\"\nverify = true\n\
             interface = \"eth0\"\nport = 9200\ntimeout = 20\n",
            s(&targets[1])
        ),
    )
    .unwrap();
    let receivers: Vec<Child> = lan
        .receivers
        .iter()
        .zip(&targets)
        .enumerate()
        .map(|(i, (ns, t))| {
            if i == 1 {
                return Lan::spawn(ns, &["run", s(&job)]);
            }
            Lan::spawn(
                ns,
                &[
                    "receive",
                    s(t),
                    "--yes",
                    "--verify",
                    "--interface",
                    "eth0",
                    "--port",
                    "9200",
                    "--timeout",
                    "20",
                ],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let server = Lan::spawn(
        &lan.sender,
        &[
            "serve",
            s(&st.image),
            "--clients",
            "4",
            "--wait",
            "30",
            "--interface",
            "br0",
            "--port",
            "9200",
            "--max-rate",
            "40m",
            "--retries-until-drop",
            "30",
            "--json",
        ],
    );
    // The third PC dies once its disk is being written: its table is invalidated first.
    let mut receivers = receivers.into_iter();
    let (r0, r1, mut r2, r3) = (
        receivers.next().unwrap(),
        receivers.next().unwrap(),
        receivers.next().unwrap(),
        receivers.next().unwrap(),
    );
    let start = Instant::now();
    while has_gpt(&targets[2]) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the third receiver never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    r2.kill().unwrap();
    let (c2, _) = finish(r2, 5);
    assert_ne!(c2, 0);
    let (c0, o0) = finish(r0, 240);
    let (c1, o1) = finish(r1, 240);
    let (c3, o3) = finish(r3, 240);
    let (cs, os) = finish(server, 240);
    assert_ne!(c3, 0, "{o3}");
    assert!(
        o3.contains("result reported to the sender (10.231.7.1:9200)"),
        "{o3}"
    );
    assert!(o0.contains("result reported to the sender"), "{o0}");
    assert_eq!(c0, 0, "{o0}");
    assert_eq!(c1, 0, "{o1}");
    assert!(o1.contains("step 1: OK"), "{o1}");
    assert_eq!(fixture::sha256(&targets[0]).unwrap(), st.want);
    assert_eq!(fixture::sha256(&targets[1]).unwrap(), st.want);
    assert!(!has_gpt(&targets[2]), "the killed PC has a partition table");
    // The sender reports each PC: two done, the killed one dropped; the session failed.
    assert_ne!(cs, 0, "{os}");
    let done = os
        .lines()
        .find(|l| l.contains("\"event\":\"done\""))
        .unwrap_or_else(|| panic!("{os}"));
    let v: serde_json::Value = serde_json::from_str(done).unwrap();
    let states: Vec<(String, String)> = v["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let state = |a: &str| states.iter().find(|s| s.0 == a).map(|s| s.1.clone());
    assert_eq!(state("10.231.7.11").as_deref(), Some("done"), "{os}");
    assert_eq!(state("10.231.7.12").as_deref(), Some("done"), "{os}");
    assert_eq!(state("10.231.7.13").as_deref(), Some("dropped"), "{os}");
    assert_eq!(state("10.231.7.14").as_deref(), Some("failed"), "{os}");
    assert_eq!(v["result"], "failed");
    // Each report names the PC's disk, what was written and the verification; the failed one
    // says why.
    let by = |a: &str| {
        v["receivers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == a)
            .unwrap()
            .clone()
    };
    for (i, a) in ["10.231.7.11", "10.231.7.12"].into_iter().enumerate() {
        let r = by(a);
        assert_eq!(r["report"]["disk"]["path"], s(&targets[i]), "{r}");
        assert_eq!(r["report"]["disk"]["size"], 160 * MIB, "{r}");
        assert_eq!(r["report"]["verify"], "verified", "{r}");
        assert!(r["report"]["bytes"].as_u64().unwrap() > 10 * MIB, "{r}");
        assert!(r["report"]["seconds"].as_f64().unwrap() > 0.0, "{r}");
    }
    let small = by("10.231.7.14");
    assert!(
        small["reason"].as_str().unwrap().contains("too small"),
        "{small}"
    );
    assert_eq!(small["report"]["disk"]["size"], 8 * MIB, "{small}");
    assert_eq!(small["report"]["bytes"], 0, "{small}");
    let killed = by("10.231.7.13");
    assert!(
        killed["reason"]
            .as_str()
            .unwrap()
            .contains("stopped answering"),
        "{killed}"
    );
    assert!(killed["report"].is_null(), "{killed}");
    // While the session ran, each join and each report was a JSON line of its own.
    let events: Vec<serde_json::Value> = os
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let joined = events
        .iter()
        .filter(|e| e["event"] == "receiver" && e["receiver"]["state"] == "joined")
        .count();
    assert_eq!(joined, 4, "{os}");
    let reported: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "report")
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    for a in ["10.231.7.11", "10.231.7.12", "10.231.7.14"] {
        assert!(reported.contains(&a), "{a} in {reported:?}");
    }
    // The same lines are saved beside the image.
    let file = v["report_file"].as_str().unwrap();
    assert_eq!(Path::new(file), d.join("sys.lbi.cast-report.txt"));
    let saved = std::fs::read_to_string(file).unwrap();
    assert!(saved.starts_with("session "), "{saved}");
    assert!(saved.contains("4 receivers (port 9200): failed"), "{saved}");
    for line in [
        " 10.231.7.11: done: ",
        "10.231.7.13: dropped (stopped answering",
        "10.231.7.14: failed (",
        "2 done, 1 failed, 1 dropped",
    ] {
        assert!(saved.contains(line), "{line} in {saved}");
    }
}

/// Every file system of `disk` clean by its own checker and every file put into it equal to
/// the original: the ESP's with mtype, the NTFS ones with ntfscat (forced: ntfsresize leaves
/// the volume marked for Windows to check once), the ext4 ones with debugfs.
fn check_every_file(st: &Setup, disk: &Path) {
    let d = st.sd.dir.path();
    let v = fixture::run("sgdisk", &["-v", s(disk)]).unwrap();
    assert!(v.contains("No problems found"), "{v}");
    let part = |n: u32, name: &str| {
        let (p, l) = common::sgdisk_part(disk, n);
        let f = d.join(name);
        fixture::extract(disk, p, l, &f).unwrap();
        f
    };
    let original = |f: &str| std::fs::read(st.sd.tree.join(f)).unwrap();
    let same = |got: Vec<u8>, f: &str, fs: &str| {
        assert!(got == original(f), "{f} on the {fs} of {}", disk.display());
    };
    let esp = part(1, "all-esp.img");
    let (code, out) = fixture::run_status("fsck.vfat", &["-n", s(&esp)]).unwrap();
    assert_eq!(code, 0, "{out}");
    let data = st.sd.files.iter().filter(|f| f.starts_with("file-"));
    for f in data.clone().take(20) {
        let out = Command::new(fixture::require("mtype").unwrap())
            .args(["-i", s(&esp), &format!("::/{f}")])
            .output()
            .unwrap();
        same(out.stdout, f, "ESP");
    }
    let ntfs = part(3, "all-ntfs.img");
    let (code, out) =
        fixture::run_status("ntfsresize", &["--check", "--no-progress-bar", s(&ntfs)]).unwrap();
    assert_eq!(code, 0, "{out}");
    for f in data.take(10) {
        let out = Command::new(fixture::require("ntfscat").unwrap())
            .args(["-f", s(&ntfs), f])
            .output()
            .unwrap();
        same(out.stdout, f, "NTFS");
    }
    let root = part(4, "all-root.img");
    let (code, out) = fixture::run_status("e2fsck", &["-fn", s(&root)]).unwrap();
    assert_eq!(code, 0, "{out}");
    let dump = d.join("all-dumped");
    for f in &st.sd.files {
        fixture::run(
            "debugfs",
            &["-R", &format!("dump /{f} {}", s(&dump)), s(&root)],
        )
        .unwrap();
        same(std::fs::read(&dump).unwrap(), f, "ext4");
    }
    for f in [esp, ntfs, root, dump] {
        std::fs::remove_file(f).unwrap();
    }
}

/// The size in bytes of the ext4 file system on partition 4 of `disk` (dumpe2fs).
fn root_fs_size(st: &Setup, disk: &Path) -> u64 {
    let (p4, l4) = common::sgdisk_part(disk, 4);
    let root = st.sd.dir.path().join("size-root.img");
    fixture::extract(disk, p4, l4, &root).unwrap();
    let out = fixture::run("dumpe2fs", &["-h", s(&root)]).unwrap();
    std::fs::remove_file(&root).unwrap();
    let field = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("{name} in {out}"))
    };
    field("Block count:") * field("Block size:")
}

#[test]
fn multicast_onto_a_smaller_disk_shrinks_and_onto_a_larger_one_grows_with_new_ids() {
    let st = setup();
    let d = st.sd.dir.path();
    let lan = Lan::new(2);
    let small = d.join("small.img");
    let large = d.join("large.img");
    fixture::sparse_file(&small, 112 * MIB).unwrap();
    fixture::sparse_file(&large, 224 * MIB).unwrap();
    let receivers: Vec<Child> = lan
        .receivers
        .iter()
        .zip([&small, &large])
        .map(|(ns, t)| {
            Lan::spawn(
                ns,
                &[
                    "receive",
                    s(t),
                    "--yes",
                    "--verify",
                    "--grow-last",
                    "--new-ids",
                    "--interface",
                    "eth0",
                    "--port",
                    "9300",
                    "--timeout",
                    "20",
                ],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let server = Lan::spawn(
        &lan.sender,
        &[
            "serve",
            s(&st.image),
            "--clients",
            "2",
            "--wait",
            "30",
            "--interface",
            "br0",
            "--port",
            "9300",
            "--max-rate",
            "40m",
            "--report",
            s(&d.join("lab.txt")),
        ],
    );
    let mut outs = Vec::new();
    for r in receivers {
        outs.push(finish(r, 300));
    }
    let (cs, os) = finish(server, 300);
    for (c, o) in &outs {
        assert_eq!(*c, 0, "{o}");
    }
    assert_eq!(cs, 0, "{os}");
    let (_, o_small) = &outs[0];
    assert!(o_small.contains("shrink"), "{o_small}");
    assert!(o_small.contains("sized from their used bytes"), "{o_small}");
    // Both disks: every file system clean by its own checker, files equal, ids new.
    for t in [&small, &large] {
        check_every_file(&st, t);
        let (gs, _) = guid(&st.sd.disk);
        let (gt, len) = guid(t);
        assert_ne!(
            gs,
            gt,
            "{}: the disk GUID was kept despite --new-ids",
            t.display()
        );
        assert_eq!(len, std::fs::metadata(t).unwrap().len());
    }
    // The small one's root shrank below the original; the large one's grew to its new end.
    let (_, l4) = common::sgdisk_part(&st.sd.disk, 4);
    let (_, small4) = common::sgdisk_part(&small, 4);
    let (p_large, large4) = common::sgdisk_part(&large, 4);
    assert!(small4 < l4, "{small4} < {l4}");
    assert!(root_fs_size(&st, &small) <= small4);
    assert!(large4 > l4 + 60 * MIB, "{large4}");
    assert!(p_large + large4 > 224 * MIB - 2 * MIB);
    let grown = root_fs_size(&st, &large);
    assert!(
        grown <= large4 && large4 - grown < 4096,
        "{grown} in {large4}"
    );
    let saved = std::fs::read_to_string(d.join("lab.txt")).unwrap();
    assert_eq!(saved.matches(": done: ").count(), 2, "{saved}");
}

/// The disk GUID (sgdisk -p) and the disk's size in bytes as sgdisk sees it.
fn guid(disk: &Path) -> (String, u64) {
    let out = fixture::run("sgdisk", &["-p", s(disk)]).unwrap();
    let g = out
        .lines()
        .find_map(|l| l.strip_prefix("Disk identifier (GUID):"))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_string();
    let sectors: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("Disk {}: ", s(disk))))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    (g, sectors * 512)
}

#[test]
fn a_smaller_disk_whose_data_past_the_new_end_overflows_the_receive_overlay_fails_without_a_table()
{
    let st = setup();
    let d = st.sd.dir.path();
    let (code, stream, err) = cast_of(&st.image, &[]);
    assert_eq!(code, 0, "{err}");
    let target = d.join("small.img");
    std::fs::copy(&st.sd.disk, &target).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&target)
        .unwrap()
        .set_len(112 * MIB)
        .unwrap();
    // No memory for the blocks past the new ends: the first one fails the restore.
    let mut child = Command::new(BIN)
        .args(["receive", s(&target), "--stdin", "--yes"])
        .env("LIFEBOAT_RECEIVE_OVERLAY_KIB", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(&stream);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("does not fit on this disk as it arrives")
            && text.contains("0 B in memory")
            && text.contains("use a larger disk"),
        "{text}"
    );
    assert!(text.contains("the target has no partition table"), "{text}");
    assert!(!has_gpt(&target), "a table was written");
    // With the default bounds the same disk is restored.
    let (code, out) = receive_stdin(&target, &stream, &["--verify"]);
    assert_eq!(code, 0, "{out}");
    check_every_file(&st, &target);
}

#[test]
fn a_fat32_partition_received_onto_a_smaller_disk_is_rebuilt_with_every_file() {
    // 200 MiB GPT: 1 = ext4 "root" 40 MiB, 2 = FAT32 "DATA" 150 MiB holding 24 files of
    // 300 KiB written after a 64 MiB filler that is then deleted: they lie past the new end.
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let disk = p("src.img");
    fixture::sparse_file(&disk, 200 * MIB).unwrap();
    fixture::run(
        "sgdisk",
        &[
            "-n",
            "1:2048:+40M",
            "-t",
            "1:8300",
            "-c",
            "1:root",
            "-n",
            "2:0:+150M",
            "-t",
            "2:0700",
            "-c",
            "2:data",
            s(&disk),
        ],
    )
    .unwrap();
    let (p1, l1) = common::sgdisk_part(&disk, 1);
    let (p2, l2) = common::sgdisk_part(&disk, 2);
    fixture::mkfs(fixture::Mkfs::Ext4, &p("root.img"), l1, "root", &[]).unwrap();
    fixture::mkfs(fixture::Mkfs::Fat32, &p("fat.img"), l2, "DATA", &[]).unwrap();
    let filler = p("filler");
    fixture::sparse_file(&filler, 64 * MIB).unwrap();
    fixture::run("mcopy", &["-i", s(&p("fat.img")), s(&filler), "::/filler"]).unwrap();
    let mut files = Vec::new();
    for i in 0..24u64 {
        let name = format!("blob-{i}.bin");
        std::fs::write(p(&name), fixture::noise(100 + i, 300 * 1024 + i as usize)).unwrap();
        fixture::run(
            "mcopy",
            &["-i", s(&p("fat.img")), s(&p(&name)), &format!("::/{name}")],
        )
        .unwrap();
        files.push(name);
    }
    fixture::run("mdel", &["-i", s(&p("fat.img")), "::/filler"]).unwrap();
    fixture::write_into(&disk, p1, &p("root.img")).unwrap();
    fixture::write_into(&disk, p2, &p("fat.img")).unwrap();
    let image = p("fat.lbi");
    let (code, _, err) = lifeboat(&["backup", s(&disk), s(&image)]);
    assert_eq!(code, 0, "{err}");
    let (code, stream, err) = cast_of(&image, &[]);
    assert_eq!(code, 0, "{err}");
    let target = p("small.img");
    fixture::sparse_file(&target, 80 * MIB).unwrap();
    let (code, out) = receive_stdin(&target, &stream, &["--verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("partition 2: vfat shrunk"), "{out}");
    let v = fixture::run("sgdisk", &["-v", s(&target)]).unwrap();
    assert!(v.contains("No problems found"), "{v}");
    let (q2, m2) = common::sgdisk_part(&target, 2);
    assert!(
        m2 < 64 * MIB,
        "partition 2 of {m2} bytes: the files were not past its new end"
    );
    let fat = p("got-fat.img");
    fixture::extract(&target, q2, m2, &fat).unwrap();
    let (code, out) = fixture::run_status("fsck.fat", &["-n", s(&fat)]).unwrap();
    assert_eq!(code, 0, "{out}");
    let label = fixture::run("blkid", &["-s", "LABEL", "-o", "value", s(&fat)]).unwrap();
    assert_eq!(label.trim(), "DATA");
    for f in &files {
        let got = Command::new(fixture::require("mtype").unwrap())
            .args(["-i", s(&fat), &format!("::/{f}")])
            .output()
            .unwrap();
        assert!(got.stdout == std::fs::read(p(f)).unwrap(), "{f}");
    }
}

/// `stream` with a report frame naming `to` (header flag set, crc32 redone), as `serve` sends it
/// over udpcast.
fn with_report_frame(stream: &[u8], to: &image::cast::ReportTo) -> Vec<u8> {
    let volumes = u32::from_le_bytes(stream[16..20].try_into().unwrap()) as usize;
    let mut head = stream[..64].to_vec();
    head[12] |= image::cast::CAST_REPORT as u8;
    let c = crc32fast::hash(&head[..60]);
    head[60..64].copy_from_slice(&c.to_le_bytes());
    let table_end = 64 + volumes * 8 + 4;
    let mut out = head;
    out.extend_from_slice(&stream[64..table_end]);
    out.extend_from_slice(&to.to_frame());
    out.extend_from_slice(&stream[table_end..]);
    out
}

#[test]
fn a_receiver_whose_report_cannot_be_delivered_finishes_its_disk_and_says_so() {
    let st = setup();
    let d = st.sd.dir.path();
    let (code, stream, err) = cast_of(&st.image, &[]);
    assert_eq!(code, 0, "{err}");
    // A port nobody listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let to = image::cast::ReportTo {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        session: [5; 16],
    };
    let target = d.join("t.img");
    blank(&target);
    let (code, out) = receive_stdin(&target, &with_report_frame(&stream, &to), &["--verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "the result could not be reported to the sender: cannot reach the sender at 127.0.0.1:{port}"
        )),
        "{out}"
    );
    assert_eq!(fixture::sha256(&target).unwrap(), st.want);
    // A listening sender gets the report of the same receive.
    let l = engine::cast::ReportListener::bind([127, 0, 0, 1].into(), 0).unwrap();
    blank(&target);
    let (code, out) = receive_stdin(&target, &with_report_frame(&stream, &l.report_to()), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result reported to the sender"), "{out}");
    let got = l.reports();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].report.result, engine::cast::ReportResult::Done);
    assert_eq!(got[0].report.verify, engine::cast::ReportVerify::NotAsked);
    assert_eq!(got[0].report.disk.path, s(&target));
}

#[test]
fn receive_asks_for_the_confirmation_before_it_joins_a_session() {
    // Without a terminal and without --yes the receive is refused at once: udp-receiver is never
    // started (a sender would otherwise stream to a PC that then waits for a typed "yes").
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.img");
    blank(&target);
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(["receive", s(&target), "--interface", "lo", "--port", "9314"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("EVERYTHING ON THIS DISK"), "{err}");
    assert!(
        err.contains("refusing to write without confirmation"),
        "{err}"
    );
    assert!(!err.contains("waiting for the sender"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(!has_gpt(&target));
}
