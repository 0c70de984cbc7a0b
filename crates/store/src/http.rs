//! A read-only file over HTTP/1.1 range requests, as a [`disk::BlockIo`]: only the byte
//! ranges that are read are fetched (in [`BLOCK`]-sized, aligned pieces kept in a small cache), so
//! browsing or extracting single files out of a remote image costs the chunks those files live
//! in, not the image. Connections are kept alive; a request that fails (server gone, reset,
//! timeout) is retried on a new connection for a while ([`RETRIES`]), then the read fails with
//! the facts.

use crate::location::{Location, Scheme};
use crate::StoreError;
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
    authority: String,
    path: String,
    addrs: Vec<SocketAddr>,
    timeout: Duration,
    len: u64,
    conn: Mutex<Option<BufReader<TcpStream>>>,
    cache: Mutex<VecDeque<(u64, Vec<u8>)>>,
    fetched: AtomicU64,
    requests: AtomicU64,
    retries: u32,
    first_pause: Duration,
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
    /// Fails clearly when the server does not do range requests, or answers 404, 401/403.
    pub fn open(loc: &Location, timeout: Duration) -> Result<HttpFile, StoreError> {
        match loc.scheme {
            Scheme::Http => {}
            Scheme::Https => {
                return Err(StoreError::Tls {
                    url: loc.to_string(),
                })
            }
            _ => {
                return Err(StoreError::Unsupported {
                    url: loc.to_string(),
                    what: "not an http:// location".into(),
                })
            }
        }
        let addrs = crate::resolve(loc)?;
        let mut f = HttpFile {
            url: loc.to_string(),
            authority: loc.authority(),
            path: crate::location::encode_path(&loc.path),
            addrs,
            timeout,
            len: 0,
            conn: Mutex::new(None),
            cache: Mutex::new(VecDeque::new()),
            fetched: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: RETRIES,
            first_pause: Duration::from_secs(1),
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
    pub fn exists(loc: &Location, timeout: Duration) -> Result<bool, StoreError> {
        match HttpFile::open(loc, timeout) {
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

    fn classify(&self, e: io::Error) -> StoreError {
        let msg = e.to_string();
        if let Some(code) = msg
            .strip_prefix("HTTP status ")
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<u16>().ok())
        {
            return match code {
                404 | 410 => StoreError::NotFound {
                    url: self.url.clone(),
                },
                401 | 403 => StoreError::PermissionDenied {
                    url: self.url.clone(),
                    detail: format!("the server answers {code}"),
                },
                _ => StoreError::NoRanges {
                    url: self.url.clone(),
                    status: code,
                },
            };
        }
        if e.kind() == io::ErrorKind::InvalidData {
            return StoreError::Unsupported {
                url: self.url.clone(),
                what: format!("unusable answer to a range request: {msg}"),
            };
        }
        StoreError::Unreachable {
            url: self.url.clone(),
            detail: msg,
        }
    }

    fn connect(&self) -> io::Result<BufReader<TcpStream>> {
        let mut last = io_err(io::ErrorKind::NotFound, "no address".into());
        for a in &self.addrs {
            match TcpStream::connect_timeout(a, self.timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout))?;
                    s.set_write_timeout(Some(self.timeout))?;
                    let _ = s.set_nodelay(true);
                    return Ok(BufReader::with_capacity(BLOCK as usize, s));
                }
                Err(e) => last = io_err(e.kind(), format!("connecting to {a}: {e}")),
            }
        }
        Err(last)
    }

    /// One `GET` of bytes `start..=end` on the kept connection (or a new one).
    fn request(&self, start: u64, end: u64) -> io::Result<(Head, Vec<u8>)> {
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
        conn.get_mut().write_all(req.as_bytes())?;
        let mut head_bytes = Vec::new();
        loop {
            let n = conn.read_until(b'\n', &mut head_bytes)?;
            if n == 0 {
                return Err(io_err(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection".into(),
                ));
            }
            if head_bytes.ends_with(b"\r\n\r\n") || head_bytes == b"\r\n" {
                break;
            }
            if head_bytes.len() > MAX_HEADER {
                return Err(io_err(
                    io::ErrorKind::InvalidData,
                    "response head too long".into(),
                ));
            }
        }
        let head = parse_head(&String::from_utf8_lossy(&head_bytes))?;
        let want = end - start + 1;
        let body_len = match head.content_length {
            Some(n) => n,
            None => {
                return Err(io_err(
                    io::ErrorKind::InvalidData,
                    format!("HTTP status {} without Content-Length", head.status),
                ))
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
            return Err(io_err(
                io::ErrorKind::Other,
                format!("HTTP status {} for bytes {start}-{end}", head.status),
            ));
        }
        if head.status == 200 {
            return Err(io_err(
                io::ErrorKind::Other,
                "HTTP status 200 (the server ignores range requests)".to_string(),
            ));
        }
        match head.range {
            Some((a, b, _)) if a == start && b <= end && b >= a && body_len == b - a + 1 => {}
            other => {
                return Err(io_err(
                    io::ErrorKind::InvalidData,
                    format!(
                        "asked for bytes {start}-{end}, got range {other:?} of {body_len} bytes"
                    ),
                ))
            }
        }
        if body_len > want {
            return Err(io_err(
                io::ErrorKind::InvalidData,
                "body longer than asked".into(),
            ));
        }
        let mut body = vec![0u8; body_len as usize];
        conn.read_exact(&mut body)?;
        self.fetched.fetch_add(body_len, Ordering::Relaxed);
        if !head.close {
            *guard = Some(conn);
        }
        Ok((head, body))
    }

    /// Fetches `len` bytes at `start`, retrying on new connections with growing pauses.
    fn fetch(&self, start: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = start + len - 1;
        let mut pause = self.first_pause;
        let mut attempt = 1;
        loop {
            match self.request(start, end) {
                Ok((_, body)) if body.len() as u64 == len => return Ok(body),
                Ok((_, body)) => {
                    return Err(io_err(
                        io::ErrorKind::UnexpectedEof,
                        format!("{}: {} of {len} bytes at {start}", self.url, body.len()),
                    ))
                }
                Err(e) if attempt >= self.retries || e.to_string().starts_with("HTTP status 4") => {
                    return Err(io_err(
                        e.kind(),
                        format!(
                            "{}: reading bytes {start}-{end}: {e} (after {attempt} attempts)",
                            self.url
                        ),
                    ))
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
