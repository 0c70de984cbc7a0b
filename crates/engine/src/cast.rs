//! Restoring from a cast stream (issue 19): an image arriving as one sequential stream (from
//! `udp-receiver`, a pipe, stdin; see `image::cast` and FORMAT.md, "Cast streams") is restored
//! as it arrives, through the same plan and run as a restore from a file ([`crate::job`]'s
//! `JobSpec::Receive`). Nothing is staged: the metadata is held in memory, chunk records are
//! written as they are read.
//!
//! What differs from a file: every record can be read once, so the restore runs in the stream's
//! order; verification compares what was read back from the target with a crc32 of what was
//! written (the image cannot be read a second time); the stream is read to its end frame before
//! the partition table is written, so a target whose sender stopped or whose stream was cut has
//! no partition table. A target smaller than the imaged disk gets the shrink plan of a restore,
//! sized from each file system's used bytes (its tool cannot measure a stream before it is
//! written); the blocks past a shrinking partition's new end wait in a bounded overlay
//! ([`capture_limits`]) until its file system is shrunk, and a stream that does not fit there
//! fails cleanly before the table is written.

pub mod udp;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::cast::CastReceiver;
pub use image::cast::ReportTo;
use image::ImageReader;
use serde::{Deserialize, Serialize};

use crate::error::JobError;

/// An image arriving as a cast stream, its metadata read and checked.
#[derive(Debug, Clone)]
pub struct CastSource {
    name: String,
    image: Arc<ImageReader>,
    receiver: CastReceiver,
}

impl CastSource {
    /// Reads the stream's metadata from `input` (blocking until the sender starts) and opens
    /// the image it carries. `name` names the stream in messages and is the key of its password
    /// in [`crate::keys`] (an encrypted image needs [`crate::keys::remember`] for `name` first).
    pub fn open(input: Box<dyn Read + Send>, name: &str) -> Result<Self, JobError> {
        Self::open_reporting(input, name).1
    }

    /// [`CastSource::open`], also returning where the sender wants reports as soon as the
    /// stream said so, even when the image then cannot be opened (the receiver reports why).
    pub fn open_reporting(
        input: Box<dyn Read + Send>,
        name: &str,
    ) -> (Option<ReportTo>, Result<Self, JobError>) {
        let pw = crate::keys::password_for(Path::new(name));
        let (to, got) = image::cast::receive_reporting(input, name, pw.as_ref());
        let got = got
            .map_err(JobError::from)
            .map(|(image, receiver)| CastSource {
                name: name.to_string(),
                image: Arc::new(image),
                receiver,
            });
        (to, got)
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image, as far as its metadata tells.
    pub fn image(&self) -> &Arc<ImageReader> {
        &self.image
    }

    /// Reads the rest of the stream to its end frame (see `image::cast::CastReceiver::finish`).
    pub fn finish(&self) -> Result<u64, JobError> {
        Ok(self.receiver.finish()?)
    }

    /// Declares the streams a restore will read (see `image::cast::CastReceiver::only_streams`).
    pub fn only_streams(&self, streams: impl IntoIterator<Item = u32>) {
        self.receiver.only_streams(streams);
    }

    /// Bytes read from the stream so far.
    pub fn bytes_read(&self) -> u64 {
        self.receiver.bytes_read()
    }

    /// Where the sender wants this receiver's report ([`deliver_report`]), when it said so.
    pub fn report_to(&self) -> Option<ReportTo> {
        self.receiver.report_to()
    }
}

// ---------------------------------------------------------------------------------------------
// Receiving onto a smaller disk: a shrinking partition's blocks past its new end arrive once and
// wait, bounded, in the capture overlay until its file system is shrunk (`restore`).

/// Bytes of a shrinking partition's data a receiver holds in memory past its new end.
pub const CAPTURE_MEMORY: u64 = 256 << 20;
/// Bytes it may add in an unlinked file in the temporary folder (`TMPDIR`, a RAM-backed tmpfs
/// on a booted Lifeboat) once memory is full.
pub const CAPTURE_SPILL: u64 = 4 << 30;

/// Environment variable that bounds the capture overlay to this many KiB of memory and no spill
/// file (for a receiver with little RAM, and for tests).
pub const CAPTURE_LIMIT_ENV: &str = "LIFEBOAT_RECEIVE_OVERLAY_KIB";

/// The bounds of the capture overlay: [`CAPTURE_MEMORY`] and [`CAPTURE_SPILL`], or the memory
/// that [`CAPTURE_LIMIT_ENV`] names without a spill file.
pub fn capture_limits() -> vdev::OverlayLimits {
    let env = std::env::var(CAPTURE_LIMIT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    match env {
        Some(kib) => vdev::OverlayLimits {
            memory: kib.saturating_mul(1024).min(CAPTURE_MEMORY),
            spill_dir: None,
            spill: 0,
        },
        None => vdev::OverlayLimits {
            memory: CAPTURE_MEMORY,
            spill_dir: Some(std::env::temp_dir()),
            spill: CAPTURE_SPILL,
        },
    }
}

/// The error a full capture overlay becomes, naming the partition and the bounds (`None` for
/// any other error). The partition table has not been written then.
pub(crate) fn capture_full(e: &JobError, partition: u32) -> Option<JobError> {
    let JobError::Write { source, .. } = e else {
        return None;
    };
    if source.kind() != std::io::ErrorKind::StorageFull {
        return None;
    }
    let limits = capture_limits();
    let spill = match &limits.spill_dir {
        Some(dir) => format!(
            " and {} in {}",
            crate::units::human(limits.spill),
            dir.display()
        ),
        None => String::new(),
    };
    Some(JobError::StreamIncomplete {
        problem: format!(
            "partition {partition} does not fit on this disk as it arrives: its data past the \
             partition's new end needs more than the {} in memory{spill} a receiver may hold \
             until it is shrunk; use a larger disk",
            crate::units::human(limits.memory),
        ),
    })
}

/// A read-only device of zeros: the base of a capture overlay (what did not arrive is unused).
#[derive(Debug)]
pub(crate) struct Zeros {
    len: u64,
    partition: u32,
}

impl Zeros {
    pub(crate) fn new(len: u64, partition: u32) -> Self {
        Zeros { len, partition }
    }
}

impl disk::BlockIo for Zeros {
    fn len(&self) -> u64 {
        self.len
    }
    fn logical_sector_size(&self) -> u32 {
        512
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => {
                buf.fill(0);
                Ok(())
            }
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} bytes at {offset} past the end", buf.len()),
            )),
        }
    }
    fn write_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the base of a capture overlay is read-only",
        ))
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        format!("the received data of partition {}", self.partition)
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver reports (FORMAT.md, "Receiver reports"): each receiver tells the sender, once, over
// TCP, how its disk ended.

/// Magic of a report message.
pub const REPORT_MSG_MAGIC: [u8; 4] = *b"LBRP";
/// Version of the report message.
pub const REPORT_MSG_VERSION: u16 = 1;
/// Length of a report message's header.
pub const REPORT_MSG_HEADER_LEN: usize = 32;
/// Longest report body (JSON).
pub const MAX_REPORT_BODY: u32 = 16 << 10;
/// The sender's answer: report accepted.
pub const REPORT_ACCEPTED: [u8; 4] = *b"LBOK";
/// The sender's answer: report refused (another session, damaged).
pub const REPORT_REFUSED: [u8; 4] = *b"LBNO";
/// How long one report connection may take, on either side.
pub const REPORT_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Most reports a sender keeps (later ones are refused).
pub const MAX_REPORTS: usize = 4096;
/// Most report connections read at the same time (more are closed at once).
pub const MAX_REPORT_CONNECTIONS: usize = 64;
/// Longest text field kept from a report, in characters.
const MAX_FIELD: usize = 512;

/// The disk a receiver restored onto, as it identified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReportedDisk {
    /// Its path on the receiver (`/dev/sda`).
    pub path: String,
    pub model: String,
    pub serial: String,
    /// Bytes.
    pub size: u64,
}

impl ReportedDisk {
    /// Model, serial and size as the rest of Lifeboat shows a disk.
    pub fn identity(&self) -> String {
        let known = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let id = disk::text::identity(
            None,
            known(&self.model).as_deref(),
            known(&self.serial).as_deref(),
            Some(self.size),
        );
        format!("{} {id}", disk::text::printable(&self.path))
    }
}

/// How a receiver's job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportResult {
    /// The image was restored (and verified when asked).
    Done,
    /// It was refused or failed; `reason` says why.
    Failed,
}

/// What a verification of the written disk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportVerify {
    /// Every chunk written read back equal.
    Verified,
    /// Not asked for.
    NotAsked,
    /// Asked for, but the job ended before (or in) it: the reason says why.
    NotReached,
}

/// One receiver's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiverReport {
    pub disk: ReportedDisk,
    pub result: ReportResult,
    /// Why it failed (or a note, such as a failed grow).
    #[serde(default)]
    pub reason: Option<String>,
    /// Bytes written to the disk.
    pub bytes: u64,
    /// Seconds the job took.
    pub seconds: f64,
    pub verify: ReportVerify,
}

impl ReceiverReport {
    /// The report as received from a stranger: every text passed through
    /// [`disk::text::printable`] and cut to a bounded length, numbers made finite.
    fn tamed(mut self) -> Self {
        let tame = |s: &mut String| {
            let p: String = disk::text::printable(s).chars().take(MAX_FIELD).collect();
            *s = p;
        };
        tame(&mut self.disk.path);
        tame(&mut self.disk.model);
        tame(&mut self.disk.serial);
        if let Some(r) = &mut self.reason {
            tame(r);
        }
        if !self.seconds.is_finite() || self.seconds < 0.0 {
            self.seconds = 0.0;
        }
        self
    }

    /// One line: `done`/`failed (why)`, the disk, bytes, time and verification.
    pub fn line(&self) -> String {
        let result = match (self.result, &self.reason) {
            (ReportResult::Done, None) => "done".to_string(),
            (ReportResult::Done, Some(r)) => format!("done ({r})"),
            (ReportResult::Failed, r) => {
                format!("failed ({})", r.as_deref().unwrap_or("no reason given"))
            }
        };
        let verify = match self.verify {
            ReportVerify::Verified => "verified",
            ReportVerify::NotAsked => "not verified (not asked)",
            ReportVerify::NotReached => "not verified",
        };
        format!(
            "{result}: {}, wrote {} in {:.0} s, {verify}",
            self.disk.identity(),
            crate::units::human(self.bytes),
            self.seconds
        )
    }
}

/// Why a report could not be delivered or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot reach the sender at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("sending the report to {addr} failed: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the sender at {addr} refused the report (another session?)")]
    Refused { addr: SocketAddr },
    #[error("the report is too long ({len} bytes, at most {MAX_REPORT_BODY})")]
    TooLong { len: usize },
    #[error("cannot listen for reports on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no address to receive reports on: {detail}")]
    NoAddress { detail: String },
}

/// The report message for `report` in session `session` (header and JSON body).
pub fn encode_report(session: &[u8; 16], report: &ReceiverReport) -> Result<Vec<u8>, ReportError> {
    let body = serde_json::to_vec(report).unwrap_or_default();
    if body.len() > MAX_REPORT_BODY as usize {
        return Err(ReportError::TooLong { len: body.len() });
    }
    let mut m = Vec::with_capacity(REPORT_MSG_HEADER_LEN + body.len());
    m.extend_from_slice(&REPORT_MSG_MAGIC);
    m.extend_from_slice(&REPORT_MSG_VERSION.to_le_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(session);
    m.extend_from_slice(&(body.len() as u32).to_le_bytes());
    m.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    m.extend_from_slice(&body);
    Ok(m)
}

/// Reads one report message from `r` for session `session`: the header's magic, version,
/// session and length (at most [`MAX_REPORT_BODY`]) and the body's crc32 are checked before the
/// JSON is parsed; text fields come back printable and bounded. `Err` says what was wrong.
pub fn decode_report(r: &mut dyn Read, session: &[u8; 16]) -> Result<ReceiverReport, String> {
    let mut h = [0u8; REPORT_MSG_HEADER_LEN];
    r.read_exact(&mut h)
        .map_err(|e| format!("no report header: {e}"))?;
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if h[..4] != REPORT_MSG_MAGIC {
        return Err("not a Lifeboat report".to_string());
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != REPORT_MSG_VERSION || h[6..8] != [0, 0] {
        return Err(format!(
            "report version {version}, flags {:02x}{:02x}",
            h[6], h[7]
        ));
    }
    if h[8..24] != session[..] {
        return Err("a report for another session".to_string());
    }
    let len = u32_at(24);
    if len > MAX_REPORT_BODY {
        return Err(format!("a report of {len} bytes"));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)
        .map_err(|e| format!("the report ends early: {e}"))?;
    if crc32fast::hash(&body) != u32_at(28) {
        return Err("the report fails its crc32".to_string());
    }
    let report: ReceiverReport =
        serde_json::from_slice(&body).map_err(|e| format!("the report is not valid: {e}"))?;
    Ok(report.tamed())
}

/// Sends `report` to the sender named in the stream (one connection, [`REPORT_IO_TIMEOUT`] for
/// connecting, writing and the answer).
pub fn deliver_report(to: &ReportTo, report: &ReceiverReport) -> Result<(), ReportError> {
    let addr = to.addr;
    let msg = encode_report(&to.session, report)?;
    let mut s = TcpStream::connect_timeout(&addr, REPORT_IO_TIMEOUT)
        .map_err(|source| ReportError::Connect { addr, source })?;
    let io = |source| ReportError::Io { addr, source };
    s.set_write_timeout(Some(REPORT_IO_TIMEOUT)).map_err(io)?;
    s.set_read_timeout(Some(REPORT_IO_TIMEOUT)).map_err(io)?;
    s.write_all(&msg).map_err(io)?;
    s.flush().map_err(io)?;
    let mut answer = [0u8; 4];
    s.read_exact(&mut answer).map_err(io)?;
    if answer != REPORT_ACCEPTED {
        return Err(ReportError::Refused { addr });
    }
    Ok(())
}

/// A report as the sender received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// The receiver's address (the TCP peer: the same address udpcast sees).
    pub from: IpAddr,
    pub report: ReceiverReport,
}

/// The sender's end: listens for reports on one address for one session, in a thread of its
/// own, until dropped. Each connection is read in a thread of its own (at most
/// [`MAX_REPORT_CONNECTIONS`] at once), within [`REPORT_IO_TIMEOUT`] and at most
/// [`MAX_REPORT_BODY`] bytes; a bad one is answered [`REPORT_REFUSED`] and forgotten; the last
/// report of an address replaces an earlier one.
pub struct ReportListener {
    to: ReportTo,
    reports: Arc<Mutex<Vec<Delivered>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ReportListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportListener")
            .field("addr", &self.to.addr)
            .finish()
    }
}

impl ReportListener {
    /// Listens on `ip`, TCP port `port` (0: any free port), with a new random session id.
    pub fn bind(ip: IpAddr, port: u16) -> Result<Self, ReportError> {
        let want = SocketAddr::new(ip, port);
        let listen = |source| ReportError::Listen { addr: want, source };
        let l = TcpListener::bind(want).map_err(listen)?;
        l.set_nonblocking(true).map_err(listen)?;
        let addr = l.local_addr().map_err(listen)?;
        let mut session = [0u8; 16];
        getrandom::fill(&mut session).map_err(|e| ReportError::NoAddress {
            detail: format!("no random session id: {e}"),
        })?;
        let to = ReportTo { addr, session };
        let reports = Arc::new(Mutex::new(Vec::<Delivered>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (reports, stop) = (Arc::clone(&reports), Arc::clone(&stop));
            std::thread::spawn(move || {
                let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                while !stop.load(Ordering::SeqCst) {
                    match l.accept() {
                        Ok((s, peer)) => {
                            if active.fetch_add(1, Ordering::SeqCst) >= MAX_REPORT_CONNECTIONS {
                                active.fetch_sub(1, Ordering::SeqCst);
                                log::warn!("too many report connections: {peer} closed");
                                continue;
                            }
                            let (reports, active) = (Arc::clone(&reports), Arc::clone(&active));
                            std::thread::spawn(move || {
                                take_report(s, peer.ip(), &session, &reports);
                                active.fetch_sub(1, Ordering::SeqCst);
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => {
                            log::warn!("accepting a report connection: {e}");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })
        };
        Ok(ReportListener {
            to,
            reports,
            stop,
            thread: Some(thread),
        })
    }

    /// What the stream tells the receivers.
    pub fn report_to(&self) -> ReportTo {
        self.to
    }

    /// The reports received so far.
    pub fn reports(&self) -> Vec<Delivered> {
        self.reports
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Waits until `done(reports so far)` is true or `limit` has passed; returns the reports.
    pub fn wait_for(
        &self,
        limit: Duration,
        mut done: impl FnMut(&[Delivered]) -> bool,
    ) -> Vec<Delivered> {
        let start = Instant::now();
        loop {
            let r = self.reports();
            if done(&r) || start.elapsed() >= limit {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ReportListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn take_report(
    mut s: TcpStream,
    from: IpAddr,
    session: &[u8; 16],
    reports: &Mutex<Vec<Delivered>>,
) {
    let deadline = Instant::now() + REPORT_IO_TIMEOUT;
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(REPORT_IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(REPORT_IO_TIMEOUT));
    // At most the header and the longest body are read, however slowly the peer sends them.
    let mut limited = Deadline {
        inner: (&mut s).take(REPORT_MSG_HEADER_LEN as u64 + u64::from(MAX_REPORT_BODY)),
        deadline,
    };
    let got = decode_report(&mut limited, session);
    let mut list = reports.lock().unwrap_or_else(|e| e.into_inner());
    let answer = match got {
        Ok(report) if list.len() < MAX_REPORTS || list.iter().any(|d| d.from == from) => {
            log::info!("report from {from}: {}", report.line());
            list.retain(|d| d.from != from);
            list.push(Delivered { from, report });
            REPORT_ACCEPTED
        }
        Ok(_) => REPORT_REFUSED,
        Err(e) => {
            log::warn!("a report from {from} was refused: {e}");
            REPORT_REFUSED
        }
    };
    drop(list);
    let _ = s.write_all(&answer);
}

/// A reader that fails once its deadline has passed.
struct Deadline<R> {
    inner: R,
    deadline: Instant,
}

impl<R: Read> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() >= self.deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the report took too long",
            ));
        }
        self.inner.read(buf)
    }
}

/// The address reports are received on: the first IPv4 address of `interface` (or, without
/// one, of the first interface that is up and not loopback), else its first IPv6 address that
/// is not link-local.
pub fn interface_address(interface: Option<&str>) -> Result<IpAddr, ReportError> {
    use nix::net::if_::InterfaceFlags;
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| ReportError::NoAddress {
        detail: format!("cannot list the network interfaces: {e}"),
    })?;
    let mut v4 = None;
    let mut v6 = None;
    for a in addrs {
        let wanted = match interface {
            Some(i) => a.interface_name == i,
            None => {
                a.flags.contains(InterfaceFlags::IFF_UP)
                    && !a.flags.contains(InterfaceFlags::IFF_LOOPBACK)
            }
        };
        let Some(sa) = a.address.filter(|_| wanted) else {
            continue;
        };
        if let Some(s) = sa.as_sockaddr_in() {
            v4.get_or_insert(IpAddr::V4(s.ip()));
        } else if let Some(s) = sa.as_sockaddr_in6() {
            let ip = s.ip();
            if ip.segments()[0] & 0xffc0 != 0xfe80 && !ip.is_loopback() {
                v6.get_or_insert(IpAddr::V6(ip));
            }
        }
    }
    v4.or(v6).ok_or_else(|| ReportError::NoAddress {
        detail: match interface {
            Some(i) => format!("interface {i} has no IP address"),
            None => "no network interface is up with an IP address".to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(result: ReportResult) -> ReceiverReport {
        ReceiverReport {
            disk: ReportedDisk {
                path: "/dev/sda".into(),
                model: "QEMU HARDDISK".into(),
                serial: "LAB-PC-07".into(),
                size: 160 << 20,
            },
            result,
            reason: (result == ReportResult::Failed).then(|| "the target is too small".into()),
            bytes: 42 << 20,
            seconds: 12.5,
            verify: ReportVerify::Verified,
        }
    }

    #[test]
    fn a_report_reaches_the_listener_of_its_session_and_is_refused_by_another() {
        let l = ReportListener::bind(IpAddr::from([127, 0, 0, 1]), 0).unwrap();
        let to = l.report_to();
        let r = report(ReportResult::Done);
        deliver_report(&to, &r).unwrap();
        let got = l.wait_for(Duration::from_secs(5), |r| !r.is_empty());
        assert_eq!(
            got,
            vec![Delivered {
                from: IpAddr::from([127, 0, 0, 1]),
                report: r.clone()
            }]
        );
        assert!(
            got[0].report.line().starts_with("done: /dev/sda"),
            "{}",
            got[0].report.line()
        );
        let other = ReportTo {
            session: [0; 16],
            ..to
        };
        let err = deliver_report(&other, &r).unwrap_err();
        assert!(matches!(err, ReportError::Refused { .. }), "{err}");
        // The same address reporting again replaces its report.
        deliver_report(&to, &report(ReportResult::Failed)).unwrap();
        let got = l.reports();
        assert_eq!(got.len(), 1);
        assert!(got[0]
            .report
            .line()
            .starts_with("failed (the target is too small)"));
    }

    #[test]
    fn hostile_report_bytes_are_refused_or_tamed() {
        let session = [9u8; 16];
        let good = encode_report(&session, &report(ReportResult::Done)).unwrap();
        assert!(decode_report(&mut &good[..], &session).is_ok());
        // Every cut and every flipped byte of the header or body is refused.
        for cut in 0..good.len() {
            assert!(
                decode_report(&mut &good[..cut], &session).is_err(),
                "cut {cut}"
            );
        }
        for at in 0..good.len() {
            let mut b = good.clone();
            b[at] ^= 0x20;
            assert!(decode_report(&mut &b[..], &session).is_err(), "flip {at}");
        }
        // A length past the limit is refused before anything is allocated.
        let mut huge = good.clone();
        huge[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = decode_report(&mut &huge[..], &session).unwrap_err();
        assert!(e.contains("4294967295 bytes"), "{e}");
        // Control characters and overlong fields come back printable and bounded.
        let mut r = report(ReportResult::Failed);
        r.disk.model = "\u{1b}[2Jevil".into();
        r.reason = Some("x".repeat(10_000));
        r.seconds = -1.0;
        let m = encode_report(&session, &r).unwrap();
        let got = decode_report(&mut &m[..], &session).unwrap();
        assert!(!got.disk.model.contains('\u{1b}'), "{:?}", got.disk.model);
        assert_eq!(got.reason.map(|r| r.chars().count()), Some(MAX_FIELD));
        assert_eq!(got.seconds, 0.0);
    }

    #[test]
    fn a_slow_or_silent_peer_does_not_hold_the_listener_past_its_deadline() {
        let l = ReportListener::bind(IpAddr::from([127, 0, 0, 1]), 0).unwrap();
        let to = l.report_to();
        let mut silent = TcpStream::connect(to.addr).unwrap();
        silent.write_all(b"LBRP").unwrap();
        let start = Instant::now();
        deliver_report(&to, &report(ReportResult::Done)).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "waited for the silent peer"
        );
        let mut answer = [0u8; 4];
        silent.read_exact(&mut answer).unwrap();
        assert_eq!(answer, REPORT_REFUSED);
        assert!(start.elapsed() >= REPORT_IO_TIMEOUT - Duration::from_secs(1));
    }

    #[test]
    fn the_loopback_interface_has_an_address_and_an_unknown_one_is_named() {
        assert_eq!(
            interface_address(Some("lo")).unwrap(),
            IpAddr::from([127, 0, 0, 1])
        );
        let e = interface_address(Some("nosuch0")).unwrap_err();
        assert!(e.to_string().contains("nosuch0"), "{e}");
    }
}
