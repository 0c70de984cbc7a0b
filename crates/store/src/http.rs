//! A read-only file over HTTP/1.1 range requests (`http://`, or `https://` through [`crate::tls`]),
//! as a [`disk::BlockIo`]: only the byte
//! ranges that are read are fetched (in [`BLOCK`]-sized, aligned pieces kept in a small cache), so
//! browsing or extracting single files out of a remote image costs the chunks those files live
//! in, not the image. Connections are kept alive; a request that fails (server gone, reset,
//! timeout) is retried on a new connection for a while ([`RETRIES`]), then the read fails with
//! the facts. A refused certificate, an HTTP error status or a malformed answer is not retried.

use crate::location::{Location, Scheme};
use crate::tls::{Reason, Trust};
use crate::{Access, StoreError};
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Size of one fetched, cached piece.
pub const BLOCK: u64 = 256 << 10;
/// Pieces kept (16 MiB).
const CACHE_BLOCKS: usize = 64;
/// Attempts per read before it fails (with 1, 2, 4, 8 s pauses: about half a minute).
pub const RETRIES: u32 = 5;
/// Longest status line + headers accepted.
const MAX_HEADER: usize = 64 << 10;

/// A remote file read by ranges.
#[derive(Debug)]
pub struct HttpFile {
    url: String,
    host: String,
    authority: String,
    path: String,
    addrs: Vec<SocketAddr>,
    timeout: Duration,
    len: u64,
    /// `https://`: the trust settings and the name the certificate must carry.
    tls: Option<(Trust, rustls::pki_types::ServerName<'static>)>,
    conn: Mutex<Option<BufReader<Stream>>>,
    cache: Mutex<VecDeque<(u64, Vec<u8>)>>,
    fetched: AtomicU64,
    requests: AtomicU64,
    retries: u32,
    first_pause: Duration,
    /// Set when a read gave up after all its attempts: later reads try once, without pauses,
    /// so a job reading in parallel stops soon after the first failure (a success clears it).
    gone: std::sync::atomic::AtomicBool,
    /// The host is not a loopback address: a link without carrier means it cannot be reached.
    remote: bool,
}

/// One response's head.
#[derive(Debug)]
struct Head {
    status: u16,
    content_length: Option<u64>,
    /// `Content-Range: bytes START-END/TOTAL`.
    range: Option<(u64, u64, Option<u64>)>,
    close: bool,
}

fn io_err(kind: io::ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, msg)
}

/// One connection: plain TCP or TLS over it.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Why one request failed.
#[derive(Debug)]
enum Failure {
    /// The network or the server's connection (reset, timeout, refused): worth a retry.
    Net(io::Error),
    /// An answer other than 206 Partial Content.
    Status(u16),
    /// An answer that cannot be used.
    Invalid(String),
    /// The server's certificate was refused.
    Cert(crate::tls::Rejection),
    /// The TLS handshake failed for another reason (no common version or cipher, alert).
    Handshake(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Net(e) => write!(f, "{e}"),
            Failure::Status(200) => {
                f.write_str("HTTP status 200 (the server ignores range requests)")
            }
            Failure::Status(s) => write!(f, "HTTP status {s}"),
            Failure::Invalid(m) => f.write_str(m),
            Failure::Cert(r) => write!(f, "certificate refused: {}", describe(&r.reason)),
            Failure::Handshake(m) => write!(f, "TLS handshake failed: {m}"),
        }
    }
}

impl Failure {
    /// Whether another attempt may succeed: the network, or a server error (5xx).
    fn retryable(&self) -> bool {
        matches!(self, Failure::Net(_) | Failure::Status(500..=599))
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Net(e)
    }
}

/// A refusal reason in words.
fn describe(r: &Reason) -> String {
    match r {
        Reason::UnknownIssuer => "issued by an unknown CA (or self-signed)".into(),
        Reason::Name { presented } if presented.is_empty() => "it names no host".into(),
        Reason::Name { presented } => {
            // rustls words them `DnsName("nas.example")`, `IpAddress(10.0.0.1)`.
            let names: Vec<&str> = presented
                .iter()
                .map(|p| {
                    p.split_once('(')
                        .map_or(p.as_str(), |(_, v)| v.trim_end_matches(')'))
                        .trim_matches('"')
                })
                .collect();
            format!("it is for {}, not this host", names.join(", "))
        }
        Reason::Expired { not_after: Some(t) } => {
            format!("it expired on {}", crate::tls::date(*t))
        }
        Reason::Expired { not_after: None } => "it has expired".into(),
        Reason::NotYetValid {
            not_before: Some(t),
        } => {
            format!("it is valid only from {}", crate::tls::date(*t))
        }
        Reason::NotYetValid { not_before: None } => "it is not valid yet".into(),
        Reason::PinMismatch { pinned } => format!("it is not the pinned {pinned}"),
        Reason::Other(m) => m.clone(),
    }
}

fn parse_head(text: &str) -> io::Result<Head> {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| {
            io_err(
                io::ErrorKind::InvalidData,
                format!(
                    "not an HTTP response: {:?}",
                    status_line.chars().take(60).collect::<String>()
                ),
            )
        })?;
    let mut head = Head {
        status,
        content_length: None,
        range: None,
        close: status_line.starts_with("HTTP/1.0"),
    };
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => head.content_length = v.parse().ok(),
            "connection" => head.close = v.eq_ignore_ascii_case("close"),
            "transfer-encoding" if !v.eq_ignore_ascii_case("identity") => {
                return Err(io_err(
                    io::ErrorKind::InvalidData,
                    format!("unsupported transfer encoding {v:?} for a range"),
                ))
            }
            "content-range" => {
                let r = v.strip_prefix("bytes ").and_then(|r| {
                    let (span, total) = r.split_once('/')?;
                    let (a, b) = span.split_once('-')?;
                    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()))
                });
                head.range = r;
            }
            _ => {}
        }
    }
    Ok(head)
}

impl HttpFile {
    /// Resolves the host, asks for the first byte and learns the length from `Content-Range`.
    /// Fails clearly when the server does not do range requests, or answers 404, 401/403, or
    /// (`https://`) its certificate is not trusted ([`crate::tls`]: `access.ca_file`,
    /// `access.host_key` as a certificate fingerprint).
    pub fn open(loc: &Location, access: &Access) -> Result<HttpFile, StoreError> {
        let tls = match loc.scheme {
            Scheme::Http => None,
            Scheme::Https => {
                let trust = Trust::new(access.ca_file.as_deref(), access.host_key.as_deref())
                    .map_err(|e| StoreError::Trust {
                        url: loc.to_string(),
                        source: e,
                    })?;
                let name =
                    rustls::pki_types::ServerName::try_from(loc.host.clone()).map_err(|e| {
                        StoreError::Unsupported {
                            url: loc.to_string(),
                            what: format!(
                                "{:?} cannot be checked against a certificate: {e}",
                                loc.host
                            ),
                        }
                    })?;
                Some((trust, name))
            }
            _ => {
                return Err(StoreError::Unsupported {
                    url: loc.to_string(),
                    what: "not an http:// or https:// location".into(),
                })
            }
        };
        let timeout = access.timeout;
        let addrs = crate::resolve_within(loc, timeout)?;
        let mut f = HttpFile {
            url: loc.to_string(),
            host: loc.host.clone(),
            authority: loc.authority(),
            path: crate::location::encode_path(&loc.path),
            addrs,
            timeout,
            len: 0,
            tls,
            conn: Mutex::new(None),
            cache: Mutex::new(VecDeque::new()),
            fetched: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: RETRIES,
            first_pause: Duration::from_secs(1),
            gone: std::sync::atomic::AtomicBool::new(false),
            remote: !loc
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
                && loc.host != "localhost",
        };
        // Two bytes, not one: some servers (busybox httpd) read `bytes=0-0` as the whole file.
        let (head, _) = f.request(0, 1).map_err(|e| f.classify(e))?;
        match head.range {
            Some((0, 0..=1, Some(total))) if head.status == 206 => f.len = total,
            _ => {
                return Err(StoreError::NoRanges {
                    url: f.url.clone(),
                    status: head.status,
                })
            }
        }
        log::info!("{}: {} bytes, read by range requests", f.url, f.len);
        Ok(f)
    }

    /// Whether the URL exists (a range request for its first byte answers 206 or 200).
    pub fn exists(loc: &Location, access: &Access) -> Result<bool, StoreError> {
        match HttpFile::open(loc, access) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How often a failed read is tried (at least once) and the first pause (doubled after
    /// each failure).
    pub fn set_retries(&mut self, attempts: u32, first_pause: Duration) {
        self.retries = attempts.max(1);
        self.first_pause = first_pause;
    }

    /// Bytes of response bodies received so far.
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn classify(&self, e: Failure) -> StoreError {
        let url = self.url.clone();
        match e {
            Failure::Status(404 | 410) => StoreError::NotFound { url },
            Failure::Status(code @ (401 | 403)) => StoreError::PermissionDenied {
                url,
                detail: format!("the server answers {code}"),
            },
            Failure::Status(status) => StoreError::NoRanges { url, status },
            Failure::Invalid(msg) => StoreError::Unsupported {
                url,
                what: format!("unusable answer to a range request: {msg}"),
            },
            Failure::Cert(r) => {
                let host = self.host.clone();
                let fingerprint = r.fingerprint.to_string();
                match r.reason {
                    Reason::PinMismatch { pinned } => StoreError::CertMismatch {
                        url,
                        host,
                        pinned: pinned.to_string(),
                        fingerprint,
                    },
                    Reason::UnknownIssuer => StoreError::CertUntrusted {
                        url,
                        host,
                        fingerprint,
                    },
                    other => StoreError::CertRefused {
                        url,
                        host,
                        why: describe(&other),
                        fingerprint,
                    },
                }
            }
            Failure::Handshake(detail) => StoreError::Handshake {
                url,
                host: self.host.clone(),
                detail,
            },
            Failure::Net(e) => StoreError::Unreachable {
                url,
                detail: e.to_string(),
            },
        }
    }

    fn connect(&self) -> Result<BufReader<Stream>, Failure> {
        let mut last = io_err(io::ErrorKind::NotFound, "no address".into());
        for a in &self.addrs {
            match TcpStream::connect_timeout(a, self.timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout))?;
                    s.set_write_timeout(Some(self.timeout))?;
                    let _ = s.set_nodelay(true);
                    let stream = match &self.tls {
                        None => Stream::Plain(s),
                        Some((trust, name)) => {
                            Stream::Tls(Box::new(self.handshake(trust, name, s)?))
                        }
                    };
                    return Ok(BufReader::with_capacity(BLOCK as usize, stream));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    last = io_err(
                        e.kind(),
                        format!(
                            "no answer from {a} within {} s{}",
                            self.timeout.as_secs(),
                            crate::net::link_note()
                        ),
                    )
                }
                Err(e) => last = io_err(e.kind(), format!("connecting to {a}: {e}")),
            }
        }
        Err(Failure::Net(last))
    }

    /// A socket timeout (`EAGAIN` from a read or write with a timeout) in words.
    fn silent(&self, e: io::Error) -> Failure {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            Failure::Net(io_err(
                io::ErrorKind::TimedOut,
                format!(
                    "the server sent nothing for {} s{}",
                    self.timeout.as_secs(),
                    crate::net::link_note()
                ),
            ))
        } else {
            Failure::Net(e)
        }
    }

    /// Runs the TLS handshake to its end, so a refused certificate is known before a request.
    fn handshake(
        &self,
        trust: &Trust,
        name: &rustls::pki_types::ServerName<'static>,
        mut tcp: TcpStream,
    ) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, Failure> {
        let mut conn = rustls::ClientConnection::new(trust.config.clone(), name.clone())
            .map_err(|e| Failure::Handshake(e.to_string()))?;
        let _ = trust.take_rejection();
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                if let Some(r) = trust.take_rejection() {
                    return Err(Failure::Cert(r));
                }
                let tls_error = e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>());
                return Err(if tls_error {
                    Failure::Handshake(e.to_string())
                } else {
                    match self.silent(e) {
                        Failure::Net(n) => {
                            Failure::Net(io_err(n.kind(), format!("TLS handshake: {n}")))
                        }
                        other => other,
                    }
                });
            }
        }
        Ok(rustls::StreamOwned::new(conn, tcp))
    }

    /// One `GET` of bytes `start..=end` on the kept connection (or a new one).
    fn request(&self, start: u64, end: u64) -> Result<(Head, Vec<u8>), Failure> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut conn = match guard.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nRange: bytes={start}-{end}\r\nUser-Agent: lifeboat/{}\r\nAccept-Encoding: identity\r\n\r\n",
            self.path,
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        self.requests.fetch_add(1, Ordering::Relaxed);
        let quiet = |e: io::Error| self.silent(e);
        conn.get_mut().write_all(req.as_bytes()).map_err(quiet)?;
        conn.get_mut().flush().map_err(quiet)?;
        let mut head_bytes = Vec::new();
        loop {
            let n = conn.read_until(b'\n', &mut head_bytes).map_err(quiet)?;
            if n == 0 {
                return Err(Failure::Net(io_err(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection".into(),
                )));
            }
            if head_bytes.ends_with(b"\r\n\r\n") || head_bytes == b"\r\n" {
                break;
            }
            if head_bytes.len() > MAX_HEADER {
                return Err(Failure::Invalid("response head too long".into()));
            }
        }
        let head = parse_head(&String::from_utf8_lossy(&head_bytes))
            .map_err(|e| Failure::Invalid(e.to_string()))?;
        let want = end - start + 1;
        let body_len = match head.content_length {
            Some(n) => n,
            None if head.status != 206 && head.status != 200 => {
                return Err(Failure::Status(head.status))
            }
            None => {
                return Err(Failure::Invalid(format!(
                    "HTTP status {} without Content-Length",
                    head.status
                )))
            }
        };
        if head.status != 206 && head.status != 200 {
            // Read (bounded) and drop the error body so the connection can be reused.
            if body_len <= 64 << 10 {
                let mut sink = Vec::new();
                let _ = (&mut conn).take(body_len).read_to_end(&mut sink);
                if !head.close {
                    *guard = Some(conn);
                }
            }
            return Err(Failure::Status(head.status));
        }
        if head.status == 200 {
            return Err(Failure::Status(200));
        }
        match head.range {
            Some((a, b, _)) if a == start && b <= end && b >= a && body_len == b - a + 1 => {}
            other => {
                return Err(Failure::Invalid(format!(
                    "asked for bytes {start}-{end}, got range {other:?} of {body_len} bytes"
                )))
            }
        }
        if body_len > want {
            return Err(Failure::Invalid("body longer than asked".into()));
        }
        let mut body = vec![0u8; body_len as usize];
        conn.read_exact(&mut body).map_err(quiet)?;
        self.fetched.fetch_add(body_len, Ordering::Relaxed);
        if !head.close {
            *guard = Some(conn);
        }
        Ok((head, body))
    }

    /// Fetches `len` bytes at `start`, retrying on new connections with growing pauses. While
    /// every link is down nothing is sent (each attempt would only wait for its timeout); the
    /// pauses go on, so a link that comes back within them resumes the read.
    fn fetch(&self, start: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = start + len - 1;
        let gone = self.gone.load(Ordering::Relaxed);
        let attempts = if gone { 1 } else { self.retries };
        let began = std::time::Instant::now();
        let mut pause = self.first_pause;
        let mut attempt = 1;
        loop {
            let link = if self.remote {
                crate::net::link_note()
            } else {
                String::new()
            };
            let result = if link.is_empty() {
                self.request(start, end)
            } else {
                Err(Failure::Net(io_err(
                    io::ErrorKind::NotConnected,
                    format!("no network{link}"),
                )))
            };
            match result {
                Ok((_, body)) if body.len() as u64 == len => {
                    self.gone.store(false, Ordering::Relaxed);
                    return Ok(body);
                }
                Ok((_, body)) => {
                    return Err(io_err(
                        io::ErrorKind::UnexpectedEof,
                        format!("{}: {} of {len} bytes at {start}", self.url, body.len()),
                    ))
                }
                // Another read gave up meanwhile: this one stops too.
                Err(e)
                    if attempt >= attempts
                        || !e.retryable()
                        || self.gone.load(Ordering::Relaxed) =>
                {
                    let kind = match &e {
                        Failure::Net(n) => n.kind(),
                        _ => io::ErrorKind::Other,
                    };
                    let already = gone || self.gone.load(Ordering::Relaxed);
                    let how = match (e.retryable(), already) {
                        (false, _) => String::new(),
                        (true, true) => " (the server was already out of reach)".to_string(),
                        (true, false) => {
                            self.gone.store(true, Ordering::Relaxed);
                            format!(
                                " (after {attempt} attempts in {} s)",
                                began.elapsed().as_secs()
                            )
                        }
                    };
                    return Err(io_err(
                        kind,
                        format!("{}: reading bytes {start}-{end}: {e}{how}", self.url),
                    ));
                }
                Err(e) => {
                    log::warn!(
                        "{}: reading bytes {start}-{end}: {e}; retrying in {:.1} s",
                        self.url,
                        pause.as_secs_f64()
                    );
                    std::thread::sleep(pause);
                    pause *= 2;
                    attempt += 1;
                }
            }
        }
    }

    fn block(&self, index: u64) -> io::Result<Vec<u8>> {
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(pos) = cache.iter().position(|(i, _)| *i == index) {
                let hit = cache.remove(pos).unwrap_or_default();
                let data = hit.1.clone();
                cache.push_front(hit);
                return Ok(data);
            }
        }
        let start = index * BLOCK;
        let len = BLOCK.min(self.len - start);
        let data = self.fetch(start, len)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.push_front((index, data.clone()));
        cache.truncate(CACHE_BLOCKS);
        Ok(data)
    }
}

impl disk::BlockIo for HttpFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn logical_sector_size(&self) -> u32 {
        512
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= self.len)
            .ok_or_else(|| {
                io_err(
                    io::ErrorKind::UnexpectedEof,
                    format!("{}: read past the end ({} bytes)", self.url, self.len),
                )
            })?;
        let mut pos = offset;
        while pos < end {
            let index = pos / BLOCK;
            let data = self.block(index)?;
            let in_block = (pos - index * BLOCK) as usize;
            let n = (data.len() - in_block).min((end - pos) as usize);
            let at = (pos - offset) as usize;
            buf[at..at + n].copy_from_slice(&data[in_block..in_block + n]);
            pos += n as u64;
        }
        Ok(())
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io_err(
            io::ErrorKind::PermissionDenied,
            format!("{} is read-only (HTTP)", self.url),
        ))
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests;
