//! `https://` against a real nginx on loopback with certificates made by openssl at test time
//! (`qemu_tests::https`): range reads over TLS 1.3 and 1.2 match the file and fetch only the
//! blocks read; a CA file, a pinned fingerprint or a self-signed certificate given as its own CA
//! are accepted; an unknown issuer (with the fingerprint openssl prints), another host name, an
//! expired certificate, a wrong pin and a plain-HTTP port are refused with one clear line; an
//! unknown host name and a refused connection fail within seconds.

#![allow(clippy::unwrap_used)]

use disk::BlockIo;
use qemu_tests::https::{Listen, Nginx, Pki};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use store::http::{HttpFile, BLOCK};
use store::{Access, Location, StoreError};

struct Setup {
    _dir: tempfile::TempDir,
    pki: Pki,
    nginx: Nginx,
    data: Vec<u8>,
}

const GOOD: usize = 0;
const SELF_SIGNED: usize = 1;
const OTHER_NAME: usize = 2;
const EXPIRED: usize = 3;
const TLS12: usize = 4;
const PLAIN: usize = 5;

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make(&dir.path().join("pki")).unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("img")).unwrap();
    let data = qemu_tests::fixture::noise(7, 5 * BLOCK as usize + 4321);
    std::fs::write(www.join("img/x.lbi"), &data).unwrap();
    let tls = |cert: &(PathBuf, PathBuf), tls12_only| Listen::Tls {
        cert: cert.clone(),
        tls12_only,
    };
    let nginx = Nginx::start(
        &www,
        &[
            tls(&pki.server, false),
            tls(&pki.self_signed, false),
            tls(&pki.other_name, false),
            tls(&pki.expired, false),
            tls(&pki.server, true),
            Listen::Plain,
        ],
        &dir.path().join("nginx"),
    )
    .unwrap();
    Setup {
        _dir: dir,
        pki,
        nginx,
        data,
    }
}

impl Setup {
    fn url(&self, which: usize, host: &str) -> Location {
        Location::parse(&format!(
            "https://{host}:{}/img/x.lbi",
            self.nginx.ports[which]
        ))
        .unwrap()
    }

    fn with_ca(&self) -> Access {
        Access {
            ca_file: Some(self.pki.ca.clone()),
            ..quick()
        }
    }
}

fn quick() -> Access {
    Access {
        timeout: Duration::from_secs(5),
        ..Access::default()
    }
}

#[test]
fn https_range_reads_match_the_file_and_fetch_only_the_blocks_read() {
    let s = setup();
    for (which, host) in [
        (GOOD, "127.0.0.1"),
        (GOOD, "localhost"),
        (TLS12, "127.0.0.1"),
    ] {
        let logged = s.nginx.requests().len();
        let before = s.nginx.bytes_served();
        let f = HttpFile::open(&s.url(which, host), &s.with_ca()).unwrap();
        assert_eq!(f.len(), s.data.len() as u64);
        let mut buf = vec![0u8; 1000];
        let at = 3 * BLOCK + 17;
        f.read_at(&mut buf, at).unwrap();
        assert_eq!(buf, s.data[at as usize..at as usize + 1000]);
        let mut tail = vec![0u8; 4321 + 10];
        let tail_at = (s.data.len() - tail.len()) as u64;
        f.read_at(&mut tail, tail_at).unwrap();
        assert_eq!(tail, s.data[s.data.len() - tail.len()..]);
        // The probe's two bytes, the block at 3 MiB-ish and the last two blocks: counted by nginx.
        s.nginx.wait_for_requests(logged + 4);
        let served = s.nginx.bytes_served() - before;
        let want = 2 + BLOCK + BLOCK + 4321;
        assert_eq!(served, want, "{host} port {}", s.nginx.ports[which]);
        assert_eq!(f.bytes_fetched(), want);
        assert_eq!(f.requests(), 4, "one kept-alive connection");
    }
}

#[test]
fn an_unknown_issuer_is_refused_with_the_fingerprint_openssl_prints_and_a_pin_accepts_it() {
    let s = setup();
    let url = s.url(SELF_SIGNED, "127.0.0.1");
    let t = Instant::now();
    let e = HttpFile::open(&url, &quick()).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let want = format!("SHA256:{}", Pki::fingerprint(&s.pki.self_signed.0).unwrap());
    match &e {
        StoreError::CertUntrusted { fingerprint, .. } => assert_eq!(*fingerprint, want),
        other => panic!("{other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("is not trusted") && text.contains(&want) && !text.contains('\n'),
        "{text}"
    );
    // The CA file does not vouch for a self-signed certificate of someone else.
    let e = HttpFile::open(&url, &s.with_ca()).unwrap_err();
    assert!(matches!(e, StoreError::CertUntrusted { .. }), "{e}");
    // Pinned (in openssl's own form): accepted, and reads work.
    let pinned = Access {
        host_key: Some(format!(
            "sha256 Fingerprint={}",
            Pki::fingerprint(&s.pki.self_signed.0).unwrap()
        )),
        ..quick()
    };
    let f = HttpFile::open(&url, &pinned).unwrap();
    let mut buf = vec![0u8; 64];
    f.read_at(&mut buf, BLOCK).unwrap();
    assert_eq!(buf, s.data[BLOCK as usize..BLOCK as usize + 64]);
    // The self-signed certificate given as its own CA file: accepted too.
    let own = Access {
        ca_file: Some(s.pki.self_signed.0.clone()),
        ..quick()
    };
    assert!(HttpFile::open(&url, &own).is_ok());
    // A pin is exact: the CA-signed server with a pin of another certificate is refused.
    let wrong = Access {
        ca_file: Some(s.pki.ca.clone()),
        ..pinned
    };
    let e = HttpFile::open(&s.url(GOOD, "127.0.0.1"), &wrong).unwrap_err();
    assert!(matches!(e, StoreError::CertMismatch { .. }), "{e}");
    assert!(e.to_string().contains("does not match the pinned"), "{e}");
}

#[test]
fn another_host_name_an_expired_certificate_and_a_plain_port_are_refused_in_one_line() {
    let s = setup();
    let e = HttpFile::open(&s.url(OTHER_NAME, "127.0.0.1"), &s.with_ca()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::CertRefused { .. }), "{text}");
    assert!(text.contains("it is for nas.example"), "{text}");
    assert!(text.contains("fingerprint SHA256:"), "{text}");
    // The good certificate does not name this host either.
    let e = HttpFile::open(&s.url(GOOD, "[::1]"), &s.with_ca());
    assert!(e.is_err());

    let e = HttpFile::open(&s.url(EXPIRED, "127.0.0.1"), &s.with_ca()).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, StoreError::CertRefused { .. }) && text.contains("expired on 2020-02-01"),
        "{text}"
    );

    let t = Instant::now();
    let e = HttpFile::open(&s.url(PLAIN, "127.0.0.1"), &s.with_ca()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::Handshake { .. }), "{text}");
    assert!(
        text.contains("TLS handshake with 127.0.0.1 failed"),
        "{text}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn an_unknown_host_and_a_refused_connection_fail_within_seconds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Instant::now();
    let loc = Location::parse(&format!("https://127.0.0.1:{port}/x.lbi")).unwrap();
    let e = HttpFile::open(&loc, &quick()).unwrap_err();
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    let t = Instant::now();
    let loc = Location::parse("https://no-such-host.invalid/x.lbi").unwrap();
    let e = HttpFile::open(&loc, &quick()).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    match &e {
        StoreError::Dns { host, .. } => assert_eq!(host, "no-such-host.invalid"),
        other => panic!("{other}"),
    }
    assert!(
        e.to_string().starts_with(
            "https://no-such-host.invalid/x.lbi: cannot resolve no-such-host.invalid: "
        ),
        "{e}"
    );
}

#[test]
fn an_https_image_and_its_folder_are_served_as_local_read_only_files() {
    // Root and /dev/fuse, as the vdev tests.
    let s = setup();
    let base = tempfile::tempdir().unwrap();
    let opened = store::open(
        &s.url(GOOD, "localhost"),
        &s.with_ca(),
        store::Purpose::Read,
        base.path(),
    )
    .unwrap();
    assert_eq!(std::fs::read(opened.path()).unwrap(), s.data);
    opened.close().unwrap();
    let e = store::open(
        &s.url(SELF_SIGNED, "localhost"),
        &quick(),
        store::Purpose::Read,
        base.path(),
    )
    .unwrap_err();
    assert!(matches!(e, StoreError::CertUntrusted { .. }), "{e}");
    assert_eq!(
        std::fs::read_dir(base.path()).unwrap().count(),
        0,
        "nothing left behind by a refused store"
    );
}
