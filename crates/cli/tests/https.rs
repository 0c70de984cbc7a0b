//! `https://` image locations on the CLI, on the host (as root: FUSE), against a real nginx on
//! loopback with certificates made by openssl at test time (`qemu_tests::https`): a split
//! image of a GPT system disk restored (hash-equal to a local restore), verified and one file
//! extracted from its https:// URL with `--ca-file` (the extract reading a fraction of the
//! image, counted by nginx); a job file read from an https:// URL; an untrusted certificate
//! refused with its fingerprint, then accepted by `--host-key`; an unknown host name refused
//! within seconds.

#![allow(clippy::unwrap_used)]

mod common;

use common::{lifeboat, s, system_disk, MIB};
use qemu_tests::fixture;
use qemu_tests::https::{Listen, Nginx, Pki};
use std::time::{Duration, Instant};

#[test]
fn an_https_image_is_restored_verified_extracted_and_run_as_a_job_with_a_ca_file() {
    let sd = system_disk();
    let d = sd.dir.path();
    let www = d.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let image = www.join("sys.lbi");
    let (code, out, err) = lifeboat(&["backup", s(&sd.disk), s(&image), "--split", "4M"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(www.join("sys.lbi.002").exists(), "the image has volumes");
    let local = d.join("local.img");
    fixture::sparse_file(&local, 160 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["restore", s(&image), s(&local), "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let want = fixture::sha256(&local).unwrap();

    let pki = Pki::make(&d.join("pki")).unwrap();
    let nginx = Nginx::start(
        &www,
        &[
            Listen::Tls {
                cert: pki.server.clone(),
                tls12_only: false,
            },
            Listen::Tls {
                cert: pki.self_signed.clone(),
                tls12_only: false,
            },
        ],
        &d.join("nginx"),
    )
    .unwrap();
    let url = format!("https://localhost:{}/sys.lbi", nginx.ports[0]);
    let ca = s(&pki.ca);

    let target = d.join("target.img");
    fixture::sparse_file(&target, 160 * MIB).unwrap();
    let (code, out, err) = lifeboat(&["restore", &url, s(&target), "--yes", "--ca-file", ca]);
    assert_eq!(code, 0, "restore {url}: {out}{err}");
    assert_eq!(fixture::sha256(&target).unwrap(), want, "hash-equal");
    // The plan and the report name the image by its URL, not where it is served locally.
    assert!(out.contains(&format!("restore {url} to ")), "{out}");
    assert!(!out.contains(store::STORES_DIR), "{out}");

    let (code, out, err) = lifeboat(&["verify", &url, "--ca-file", ca]);
    assert_eq!(code, 0, "verify {url}: {out}{err}");

    // One small file out of a partition image that is mostly one big file: the extract reads
    // the index and the chunks of the file system's metadata and of that file, not the rest.
    let tree = d.join("bulk");
    std::fs::create_dir_all(tree.join("docs")).unwrap();
    std::fs::write(tree.join("big.bin"), fixture::noise(3, 24 << 20)).unwrap();
    std::fs::write(tree.join("docs/letter.txt"), b"dear https\n").unwrap();
    let fs_img = d.join("bulk.img");
    fixture::mkfs(
        fixture::Mkfs::Ext4,
        &fs_img,
        40 * MIB,
        "BULK",
        &["-d", s(&tree)],
    )
    .unwrap();
    let (code, out, err) = lifeboat(&["backup", s(&fs_img), s(&www.join("bulk.lbi"))]);
    assert_eq!(code, 0, "{out}{err}");
    let image_bytes = std::fs::metadata(www.join("bulk.lbi")).unwrap().len();
    let logged = nginx.requests().len();
    let before = nginx.bytes_served();
    let to = d.join("out");
    let bulk = format!("https://localhost:{}/bulk.lbi", nginx.ports[0]);
    let (code, out, err) = lifeboat(&[
        "extract",
        &bulk,
        "/docs/letter.txt",
        "--to",
        s(&to),
        "--ca-file",
        ca,
    ]);
    assert_eq!(code, 0, "extract {bulk}: {out}{err}");
    assert_eq!(
        std::fs::read(to.join("letter.txt")).unwrap(),
        b"dear https\n"
    );
    let after = nginx.wait_for_requests(logged + 1);
    let served = nginx.bytes_served() - before;
    eprintln!(
        "extract of one file: {served} of {image_bytes} image bytes in {} requests",
        after.len() - logged
    );
    // Two 4 MiB chunks (the one with the superblock and inode tables, the one with the
    // letter), each spanning one more aligned piece than its length, the head of every volume
    // (read when the image is opened) and the index, all in `store::http::BLOCK` pieces: not the
    // 6 chunks of big.bin.
    let volumes = std::fs::read_dir(&www)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("sys.lbi"))
        })
        .count() as u64;
    let piece = store::http::BLOCK;
    let bound = 2 * ((4 << 20) + piece) + volumes * piece + (1 << 20);
    assert!(
        served <= bound && served * 2 < image_bytes,
        "{served} bytes served for one small file of a {image_bytes}-byte image in {volumes} volumes (at most {bound})"
    );

    // A job file on the same server: its relative image name is a location beside it.
    std::fs::write(
        www.join("job.toml"),
        "[[step]]\naction = \"verify\"\nimage = \"sys.lbi\"\n",
    )
    .unwrap();
    let job = format!("https://localhost:{}/job.toml", nginx.ports[0]);
    let (code, out, err) = lifeboat(&["run", &job, "--ca-file", ca]);
    assert_eq!(code, 0, "run {job}: {out}{err}");
    assert!(out.contains("-- step 1: OK --"), "{out}");

    // Nothing stays mounted or served once the commands end.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains("lifeboat:sys.lbi"), "{mounts}");

    // The self-signed server: refused with its fingerprint (no terminal to ask), then pinned.
    let url = format!("https://localhost:{}/sys.lbi", nginx.ports[1]);
    let fp = format!("SHA256:{}", Pki::fingerprint(&pki.self_signed.0).unwrap());
    let t = Instant::now();
    let (code, out, err) = lifeboat(&["verify", &url, "--ca-file", ca]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        err.contains("the certificate of localhost is not trusted") && err.contains(&fp),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let (code, out, err) = lifeboat(&["verify", &url, "--host-key", &fp]);
    assert_eq!(code, 0, "verify {url} pinned: {out}{err}");

    // The server goes away during a restore: the reads are retried for a while, then the
    // restore stops and says the target is incomplete.
    let target = d.join("bulk-target.img");
    fixture::sparse_file(&target, 40 * MIB).unwrap();
    let logged = nginx.requests().len();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["restore", &bulk, s(&target), "--yes", "--ca-file", ca])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while nginx.requests().len() < logged + 4 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the restore never started"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut nginx = nginx;
    nginx.stop();
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        stopped.elapsed() < Duration::from_secs(40),
        "{:?}",
        stopped.elapsed()
    );
    assert!(err.contains("retrying in"), "{err}");
    assert!(
        err.contains("after 5 attempts") && err.contains("the target is incomplete"),
        "{err}"
    );
}

#[test]
fn an_unknown_host_name_is_refused_within_seconds() {
    let t = Instant::now();
    let (code, out, err) = lifeboat(&["verify", "https://no-such-host.invalid/x.lbi"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    assert!(err.contains("cannot resolve no-such-host.invalid"), "{err}");
}
