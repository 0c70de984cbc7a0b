//! Network locations on the CLI, on the host (as root: FUSE): an image made by `lifeboat backup`
//! served by a real `busybox httpd` on loopback is verified, listed and extracted from its
//! http:// URL; a backup to an http:// URL and a URL holding a password are refused before
//! anything is written or contacted. (SMB and NFS need the kernel clients the boot image has:
//! `qemu-tests/tests/network.rs`.)

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::{lifeboat, s};
use qemu_tests::fixture::{self, Mkfs};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Httpd(Child);

impl Drop for Httpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn httpd(root: &std::path::Path) -> (Httpd, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("busybox")
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
        .arg(root)
        .spawn()
        .expect("busybox (package busybox-static)");
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "httpd did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Httpd(child), port)
}

#[test]
fn an_image_on_a_web_server_is_verified_listed_and_extracted_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("docs")).unwrap();
    std::fs::write(tree.join("docs/letter.txt"), b"dear network\n").unwrap();
    let fs_img = dir.path().join("fs.img");
    fixture::mkfs(Mkfs::Ext4, &fs_img, 16 << 20, "NET", &["-d", s(&tree)]).unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let (code, out, err) = lifeboat(&["backup", s(&fs_img), s(&www.join("part.lbi"))]);
    assert_eq!(code, 0, "{out}{err}");
    let (_server, port) = httpd(&www);
    let url = format!("http://127.0.0.1:{port}/part.lbi");

    let (code, out, err) = lifeboat(&["verify", &url]);
    assert_eq!(code, 0, "verify {url}: {out}{err}");
    let (code, out, err) = lifeboat(&["ls", &url, "/docs"]);
    assert_eq!(code, 0, "ls {url}: {out}{err}");
    assert!(out.contains("letter.txt"), "{out}");
    let to = dir.path().join("out");
    let (code, out, err) = lifeboat(&["extract", &url, "/docs/letter.txt", "--to", s(&to)]);
    assert_eq!(code, 0, "extract {url}: {out}{err}");
    assert_eq!(
        std::fs::read(to.join("letter.txt")).unwrap(),
        b"dear network\n"
    );
    // Nothing stays mounted or served once the commands end.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains("lifeboat:part.lbi"), "{mounts}");
}

#[test]
fn backups_to_http_and_urls_with_passwords_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let fs_img = dir.path().join("fs.img");
    fixture::mkfs(Mkfs::Ext4, &fs_img, 8 << 20, "NET", &[]).unwrap();
    let (code, out, err) = lifeboat(&["backup", s(&fs_img), "http://127.0.0.1:9/x.lbi"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("read-only"), "{err}");
    let (code, out, err) = lifeboat(&["verify", "smb://anna:hunter2@127.0.0.1/share/x.lbi"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("a password does not go in a URL"), "{err}");
    assert!(
        !err.contains("hunter2") && !out.contains("hunter2"),
        "{out}{err}"
    );
    // A server that is not there: a clear message within seconds, not a hang.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Instant::now();
    let (code, out, err) = lifeboat(&["info", &format!("http://127.0.0.1:{port}/x.lbi")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("the server does not answer"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10));
}
