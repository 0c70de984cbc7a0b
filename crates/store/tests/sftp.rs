//! SFTP stores against a real OpenSSH `sshd` on loopback (a private config, host key and client
//! key in a temporary folder, a high port), mounted with the real `sshfs` (as root: FUSE).
//! Needs the Debian packages openssh-server, openssh-client and sshfs (`cargo xtask deps`).

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use store::{Access, Location, Purpose, StoreError};

struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    host_fingerprint: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install openssh-client)"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path));
}

fn start_sshd() -> Sshd {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "/usr/sbin/sshd missing: install openssh-server"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("host_key"));
    keygen(&d.join("client_key"));
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
    std::fs::create_dir_all(d.join("share")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = free_port();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nPidFile {0}/sshd.pid\n\
             AuthorizedKeysFile {0}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PermitRootLogin yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
             Subsystem sftp internal-sftp\n",
            d.display()
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "sshd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let fp = run(Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(d.join("host_key.pub")));
    let host_fingerprint = fp.split_whitespace().nth(1).unwrap().to_string();
    Sshd {
        child,
        port,
        dir,
        host_fingerprint,
    }
}

impl Sshd {
    fn url(&self, user: &str, file: &str) -> Location {
        Location::parse(&format!(
            "sftp://{user}@127.0.0.1:{}{}/share/{file}",
            self.port,
            self.dir.path().display()
        ))
        .unwrap()
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }
}

#[test]
fn sftp_needs_the_host_key_pinned_and_then_reads_and_writes_through_sshfs() {
    let srv = start_sshd();
    let base = tempfile::tempdir().unwrap();
    let loc = srv.url("root", "pc/x.lbi");
    let mut access = Access {
        identity_file: Some(srv.key()),
        ..Access::default()
    };

    // Not pinned: refused, and the error carries the server's real fingerprint.
    let e = store::open(&loc, &access, Purpose::Write, base.path()).unwrap_err();
    match &e {
        StoreError::HostKeyNotPinned { fingerprints, .. } => assert!(
            fingerprints
                .iter()
                .any(|f| f.starts_with(&srv.host_fingerprint)),
            "{fingerprints:?} vs {}",
            srv.host_fingerprint
        ),
        other => panic!("expected HostKeyNotPinned, got {other}"),
    }
    assert!(e.to_string().contains(&srv.host_fingerprint), "{e}");

    // A wrong pin: refused, naming both.
    access.host_key = Some("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    let e = store::open(&loc, &access, Purpose::Write, base.path()).unwrap_err();
    assert!(matches!(e, StoreError::HostKeyMismatch { .. }), "{e}");

    // Pinned: mounted; a file written there lands on the server.
    access.host_key = Some(srv.host_fingerprint.clone());
    std::fs::create_dir_all(srv.dir.path().join("share/pc")).unwrap();
    let opened = store::open(&loc, &access, Purpose::Write, base.path()).unwrap();
    assert!(
        opened.path().ends_with("x.lbi"),
        "{}",
        opened.path().display()
    );
    std::fs::write(opened.path(), b"image bytes").unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(mounts.contains("fuse.sshfs"), "{mounts}");
    assert!(
        !mounts.contains("client_key"),
        "no secret or key path in the mount table"
    );
    opened.close().unwrap();
    assert_eq!(
        std::fs::read(srv.dir.path().join("share/pc/x.lbi")).unwrap(),
        b"image bytes"
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&base.path().display().to_string()),
        "unmounted"
    );
}

#[test]
fn a_wrong_sftp_password_is_reported_as_such_within_seconds() {
    let srv = start_sshd();
    let base = tempfile::tempdir().unwrap();
    let access = Access {
        host_key: Some(srv.host_fingerprint.clone()),
        password: Some(store::Secret::new("certainly-not-the-password".into())),
        ..Access::default()
    };
    let t = Instant::now();
    let e = store::open(
        &srv.url("root", "x.lbi"),
        &access,
        Purpose::Read,
        base.path(),
    )
    .unwrap_err();
    assert!(matches!(e, StoreError::WrongPassword { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(!e.to_string().contains("certainly"), "{e}");
}

#[test]
fn a_server_that_is_not_there_is_reported_within_seconds() {
    let port = free_port();
    let base = tempfile::tempdir().unwrap();
    let loc = Location::parse(&format!("sftp://root@127.0.0.1:{port}/x.lbi")).unwrap();
    let t = Instant::now();
    let e = store::open(&loc, &Access::default(), Purpose::Read, base.path()).unwrap_err();
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("does not answer"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
}
