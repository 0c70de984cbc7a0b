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
