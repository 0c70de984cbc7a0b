//! Range reads against a small HTTP/1.1 server on loopback that counts the bytes it sends.

use super::*;
use disk::BlockIo;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ranges,
    IgnoreRanges,
    NotFound,
    /// Reads requests and never answers.
    Silent,
}

struct TestServer {
    port: u16,
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    fn start(data: Vec<u8>, mode: Mode) -> TestServer {
        TestServer::start_files(vec![("*".to_string(), data)], mode)
    }

    /// Serves each (path, bytes); other paths answer 404 (`*` matches any path).
    fn start_files(files: Vec<(String, Vec<u8>)>, mode: Mode) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let data = Arc::new(files);
        let (s2, st2) = (served.clone(), stop.clone());
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !st2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (d, s3, st3) = (data.clone(), s2.clone(), st2.clone());
                        std::thread::spawn(move || serve(conn, &d, mode, &s3, &st3));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TestServer { port, served, stop }
    }

    fn url(&self, path: &str) -> Location {
        Location::parse(&format!("http://127.0.0.1:{}{path}", self.port)).unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    conn: TcpStream,
    files: &[(String, Vec<u8>)],
    mode: Mode,
    served: &AtomicU64,
    stop: &AtomicBool,
) {
    conn.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    loop {
        let mut head = String::new();
        loop {
            if stop.load(Ordering::SeqCst) {
                return; // the server is gone: the connection closes
            }
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let Some(data) = files
            .iter()
            .find(|(p, _)| *p == path || p == "*")
            .map(|(_, d)| d.as_slice())
        else {
            let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Range: bytes="))
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| (a.parse::<u64>().unwrap(), b.trim().parse::<u64>().unwrap()));
        if mode == Mode::Silent {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        let reply = match (mode, range) {
            (Mode::Silent, _) => Vec::new(),
            (Mode::NotFound, _) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            (Mode::IgnoreRanges, _) | (_, None) => {
                let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", data.len())
                    .into_bytes();
                v.extend_from_slice(data);
                v
            }
            (Mode::Ranges, Some((a, b))) => {
                let b = b.min(data.len() as u64 - 1);
                let body = &data[a as usize..=b as usize];
                served.fetch_add(body.len() as u64, Ordering::SeqCst);
                let mut v = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{}\r\nContent-Length: {}\r\n\r\n",
                    data.len(),
                    body.len()
                )
                .into_bytes();
                v.extend_from_slice(body);
                v
            }
        };
        if w.write_all(&reply).is_err() {
            return;
        }
    }
}

fn access(secs: u64) -> crate::Access {
    crate::Access {
        timeout: Duration::from_secs(secs),
        ..crate::Access::default()
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn a_small_read_fetches_only_the_block_it_lies_in() {
    let data = pattern(8 << 20);
    let srv = TestServer::start(data.clone(), Mode::Ranges);
    let f = HttpFile::open(&srv.url("/img/x.lbi"), &access(5)).unwrap();
    assert_eq!(f.len(), 8 << 20);
    let mut buf = vec![0u8; 100];
    f.read_at(&mut buf, 5 << 20).unwrap();
    assert_eq!(buf, data[5 << 20..(5 << 20) + 100]);
    // The probe's two bytes plus one block: not the 8 MiB file.
    assert_eq!(srv.served.load(Ordering::SeqCst), 2 + BLOCK);
    assert_eq!(f.bytes_fetched(), 2 + BLOCK);
    // Served again from the cache.
    f.read_at(&mut buf, (5 << 20) + 1000).unwrap();
    assert_eq!(f.bytes_fetched(), 2 + BLOCK);
    assert_eq!(f.requests(), 2, "one kept-alive connection, two requests");
}

#[test]
fn reads_across_blocks_and_up_to_the_end_match_the_file() {
    let len = 3 * BLOCK as usize + 777;
    let data = pattern(len);
    let srv = TestServer::start(data.clone(), Mode::Ranges);
    let f = HttpFile::open(&srv.url("/a%20b.lbi"), &access(5)).unwrap();
    let mut buf = vec![0u8; 2 * BLOCK as usize];
    f.read_at(&mut buf, BLOCK / 2).unwrap();
    assert_eq!(
        buf,
        data[BLOCK as usize / 2..BLOCK as usize / 2 + buf.len()]
    );
    let mut tail = vec![0u8; 1000];
    f.read_at(&mut tail, len as u64 - 1000).unwrap();
    assert_eq!(tail, data[len - 1000..]);
    let mut past = vec![0u8; 10];
    let e = f.read_at(&mut past, len as u64 - 5).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert!(f.write_at(b"x", 0).is_err(), "read-only");
}

#[test]
fn a_server_without_range_requests_or_without_the_file_is_refused_clearly() {
    let srv = TestServer::start(pattern(1000), Mode::IgnoreRanges);
    let e = HttpFile::open(&srv.url("/x.lbi"), &access(5)).unwrap_err();
    assert!(e.to_string().contains("HTTP 200 to a range request"), "{e}");
    let gone = TestServer::start(Vec::new(), Mode::NotFound);
    let e = HttpFile::open(&gone.url("/x.lbi"), &access(5)).unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("http://127.0.0.1:{}/x.lbi: not found", gone.port)
    );
}

#[test]
fn reads_fail_with_the_facts_once_the_server_is_gone() {
    let srv = TestServer::start(pattern(4 << 20), Mode::Ranges);
    let mut f = HttpFile::open(&srv.url("/x.lbi"), &access(2)).unwrap();
    f.set_retries(3, Duration::from_millis(20));
    let port = srv.port;
    drop(srv);
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    let mut buf = vec![0u8; 10];
    let e = f.read_at(&mut buf, 3 << 20).unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        e.contains(&format!("127.0.0.1:{port}")) && e.contains("after 3 attempts"),
        "{e}"
    );
    // Later reads (a job reading in parallel) try once, without the pauses.
    f.set_retries(3, Duration::from_secs(5));
    let t = std::time::Instant::now();
    let e = f.read_at(&mut buf, 1 << 20).unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(e.contains("already out of reach"), "{e}");
}

#[test]
fn a_server_that_accepts_but_never_answers_is_reported_after_the_timeout() {
    let srv = TestServer::start(pattern(1000), Mode::Silent);
    let t = std::time::Instant::now();
    let e = HttpFile::open(&srv.url("/x.lbi"), &access(1)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string().contains("the server sent nothing for 1 s"),
        "{e}"
    );
}

#[test]
fn an_http_image_and_its_volumes_are_served_as_local_read_only_files() {
    // Root and /dev/fuse, as the vdev tests.
    let first = pattern(3 << 20);
    let second: Vec<u8> = pattern(1 << 20).into_iter().rev().collect();
    let srv = TestServer::start_files(
        vec![
            ("/img/x.lbi".into(), first.clone()),
            ("/img/x.lbi.002".into(), second.clone()),
        ],
        Mode::Ranges,
    );
    let base = tempfile::tempdir().unwrap();
    let opened = crate::open(
        &srv.url("/img/x.lbi"),
        &crate::Access::default(),
        crate::Purpose::Read,
        base.path(),
    )
    .unwrap();
    let local = opened.path().to_path_buf();
    let dir = local.parent().unwrap().to_path_buf();
    assert_eq!(std::fs::metadata(&local).unwrap().len(), 3 << 20);
    assert_eq!(std::fs::read(dir.join("x.lbi.002")).unwrap(), second);
    assert!(!dir.join("x.lbi.003").exists());
    let before = srv.served.load(Ordering::SeqCst);
    let file = std::fs::File::open(&local).unwrap();
    let mut buf = vec![0u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, 2 << 20).unwrap();
    assert_eq!(buf, first[2 << 20..(2 << 20) + 4096]);
    // One block (the kernel's read-ahead stays inside it): not the 3 MiB file.
    let fetched = srv.served.load(Ordering::SeqCst) - before;
    assert!(
        fetched <= 2 * BLOCK,
        "{fetched} bytes fetched for a 4 KiB read"
    );
    assert!(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&local)
            .is_err(),
        "read-only"
    );
    drop(file);
    opened.close().unwrap();
    assert!(!dir.exists(), "the served folder is removed");
    let e = crate::open(
        &srv.url("/img/x.lbi"),
        &crate::Access::default(),
        crate::Purpose::Write,
        base.path(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
}

#[test]
fn ranges_from_a_real_busybox_httpd_match_the_file() {
    // busybox httpd answers `bytes=0-0` with the whole file and closes every connection.
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3 * BLOCK as usize + 12345);
    std::fs::write(dir.path().join("x.lbi"), &data).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut httpd = std::process::Command::new("busybox")
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
        .arg(dir.path())
        .spawn()
        .expect("busybox (package busybox-static)");
    let t = std::time::Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "httpd did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let loc = Location::parse(&format!("http://127.0.0.1:{port}/x.lbi")).unwrap();
    let result = HttpFile::open(&loc, &access(5)).map(|f| {
        let mut buf = vec![0u8; BLOCK as usize];
        f.read_at(&mut buf, BLOCK + 100)
            .map(|()| (f.len(), buf, f.bytes_fetched()))
    });
    let _ = httpd.kill();
    let _ = httpd.wait();
    let (len, buf, fetched) = result.unwrap().unwrap();
    assert_eq!(len, data.len() as u64);
    assert_eq!(buf, data[BLOCK as usize + 100..2 * BLOCK as usize + 100]);
    assert_eq!(fetched, 2 + 2 * BLOCK);
}
