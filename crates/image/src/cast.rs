//! Cast streams (FORMAT.md, "Cast streams"): an image as one sequential byte stream for a
//! transport that cannot seek (a pipe, `udp-sender`/`udp-receiver`). The sender ([`send`])
//! emits the image's metadata (volume headers, key block, stream table, index, manifest,
//! bitmaps, trailer: the bytes as stored) and then every stored chunk record as it is, in the
//! order a restore reads them; nothing is recompressed or decrypted. The receiver ([`receive`])
//! turns the stream into an [`ImageReader`] whose volumes are served from the stream: the
//! metadata is held in memory (and checked by the reader exactly as for a file), chunk records
//! are read from the stream when the reader asks for them and forgotten after a small window.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex};

use disk::BlockIo;

use crate::crypt::{Passphrase, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::{
    crc, crc_matches, max_frame_len, rd_arr, rd_u16, rd_u32, rd_u64, valid_chunk_size, ChunkHeader,
    Put, StreamKind, CHUNK_HEADER_LEN, MAX_VOLUMES,
};
use crate::reader::ImageReader;

/// First bytes of a cast stream.
pub const CAST_MAGIC: [u8; 8] = *b"LBICAST\n";
/// Cast stream version this build writes and reads.
pub const CAST_MAJOR: u16 = 1;
/// Minor version written (1: the report frame, [`CAST_REPORT`]).
pub const CAST_MINOR: u16 = 1;
/// Length of the cast header.
pub const CAST_HEADER_LEN: usize = 64;
/// Length of a piece, record, end or abort frame header.
pub const FRAME_LEN: usize = 32;
/// Magic of a metadata piece.
pub const PIECE_MAGIC: [u8; 4] = *b"LBCP";
/// Magic of a chunk record frame.
pub const RECORD_MAGIC: [u8; 4] = *b"LBCF";
/// Magic of the end frame.
pub const END_MAGIC: [u8; 4] = *b"LBCE";
/// Magic of the abort frame (the sender stopped; a message follows).
pub const ABORT_MAGIC: [u8; 4] = *b"LBCA";
/// Header flag: the image is encrypted.
pub const CAST_ENCRYPTED: u32 = 1;
/// Header flag: a report frame ([`ReportTo`]) follows the volume table.
pub const CAST_REPORT: u32 = 2;
/// Magic of the report frame.
pub const REPORT_MAGIC: [u8; 4] = *b"LBCR";
/// Length of the report frame.
pub const REPORT_FRAME_LEN: usize = 64;
/// Most metadata bytes (all pieces together) a receiver holds.
pub const MAX_METADATA_LEN: u64 = 1 << 30;
/// Most pieces a stream may have (a header piece per volume and the last volume's tail).
pub const MAX_PIECES: u32 = MAX_VOLUMES + 1;
/// Most bytes of leading ("kept") records a receiver holds for the whole session.
pub const MAX_KEPT_LEN: u64 = 64 << 20;
/// Longest abort message.
pub const MAX_ABORT_LEN: u32 = 4096;
/// Records held after they were received, for readers on several threads asking slightly out
/// of order.
pub const WINDOW: usize = 16;

/// What [`send`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendSummary {
    /// Chunk records sent.
    pub records: u64,
    /// Bytes written in all.
    pub bytes: u64,
}

/// Where the receivers of a session send their reports (FORMAT.md, "Receiver reports"): the
/// sender's TCP address and port, and the session's random id, which a report must repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportTo {
    pub addr: std::net::SocketAddr,
    pub session: [u8; 16],
}

impl ReportTo {
    /// The report frame carrying `self`.
    pub fn to_frame(&self) -> [u8; REPORT_FRAME_LEN] {
        let mut b = [0u8; REPORT_FRAME_LEN];
        {
            let mut p = Put::new(&mut b);
            p.bytes(0, &REPORT_MAGIC);
            p.u16(4, self.addr.port());
            match self.addr.ip() {
                std::net::IpAddr::V4(a) => {
                    p.bytes(6, &[4]);
                    p.bytes(8, &a.octets());
                }
                std::net::IpAddr::V6(a) => {
                    p.bytes(6, &[6]);
                    p.bytes(8, &a.octets());
                }
            }
            p.bytes(24, &self.session);
        }
        let c = crc(&b[..60]);
        Put::new(&mut b).u32(60, c);
        b
    }

    /// Reads a report frame: its magic, crc32, address family (4 or 6), a port other than 0
    /// and a unicast address are checked.
    pub fn from_frame(b: &[u8; REPORT_FRAME_LEN]) -> std::result::Result<Self, String> {
        if rd_arr::<4>(b, 0) != REPORT_MAGIC || !crc_matches(rd_u32(b, 60), crc(&b[..60])) {
            return Err("the report frame is damaged".to_string());
        }
        let port = rd_u16(b, 4);
        let ip = match b[6] {
            4 => std::net::IpAddr::from(rd_arr::<4>(b, 8)),
            6 => std::net::IpAddr::from(rd_arr::<16>(b, 8)),
            f => return Err(format!("the report frame names address family {f}")),
        };
        if port == 0 || ip.is_unspecified() || ip.is_multicast() {
            return Err(format!("the report frame names {ip} port {port}"));
        }
        Ok(ReportTo {
            addr: std::net::SocketAddr::new(ip, port),
            session: rd_arr::<16>(b, 24),
        })
    }
}

fn cast_err(name: &str, detail: impl Into<String>) -> Error {
    Error::Cast {
        name: name.to_string(),
        detail: detail.into(),
    }
}

fn frame(magic: [u8; 4], fill: impl FnOnce(&mut Put<'_>)) -> [u8; FRAME_LEN] {
    let mut b = [0u8; FRAME_LEN];
    {
        let mut p = Put::new(&mut b);
        p.bytes(0, &magic);
        fill(&mut p);
    }
    let c = crc(&b[..28]);
    Put::new(&mut b).u32(28, c);
    b
}

/// The order records are sent in: the disk-area streams' chunks first (a receiver keeps them:
/// planning reads the partition table from them and the restore writes them again), then every
/// other chunk in index order (stream, offset), which is the order a restore writes them.
pub fn send_order(image: &ImageReader) -> (Vec<usize>, u32) {
    let is_area = |s: u32| {
        image
            .streams()
            .get(s as usize)
            .is_some_and(|st| st.kind == StreamKind::DiskArea)
    };
    let idx = image.index();
    let mut order: Vec<usize> = (0..idx.len())
        .filter(|&i| idx.get(i).is_some_and(|e| is_area(e.stream)))
        .collect();
    let kept = order.len() as u32;
    order.extend((0..idx.len()).filter(|&i| idx.get(i).is_some_and(|e| !is_area(e.stream))));
    (order, kept)
}

/// Writes `image` as a cast stream to `out`. Every record's header and crc32 are checked on
/// the way; a damaged one ends the stream with an abort frame naming it and is returned as the
/// error (the receivers see the same message). `progress` gets the bytes written so far.
pub fn send(
    image: &ImageReader,
    out: &mut dyn Write,
    progress: &dyn Fn(u64),
) -> Result<SendSummary> {
    send_with(image, out, progress, None)
}

/// [`send`], telling the receivers where to send their reports (`report`: a report frame after
/// the volume table, header flag [`CAST_REPORT`]).
pub fn send_with(
    image: &ImageReader,
    out: &mut dyn Write,
    progress: &dyn Fn(u64),
    report: Option<&ReportTo>,
) -> Result<SendSummary> {
    let name = image.name().to_string();
    let wr = |out: &mut dyn Write, b: &[u8]| {
        out.write_all(b)
            .map_err(|e| cast_err(&name, format!("cannot write the stream: {e}")))
    };
    let (vol_lens, pieces) = image.cast_layout()?;
    let (order, kept) = send_order(image);
    let mut sent = 0u64;
    let mut head = [0u8; CAST_HEADER_LEN];
    {
        let mut p = Put::new(&mut head);
        p.bytes(0, &CAST_MAGIC);
        p.u16(8, CAST_MAJOR);
        p.u16(10, CAST_MINOR);
        let mut flags = if image.encrypted() { CAST_ENCRYPTED } else { 0 };
        if report.is_some() {
            flags |= CAST_REPORT;
        }
        p.u32(12, flags);
        p.u32(16, vol_lens.len() as u32);
        p.u32(20, pieces.len() as u32);
        p.u32(24, image.chunk_size());
        p.u32(28, kept);
        p.u64(32, order.len() as u64);
        p.bytes(40, &image.uuid_bytes());
    }
    let c = crc(&head[..60]);
    Put::new(&mut head).u32(60, c);
    wr(out, &head)?;
    sent += head.len() as u64;
    let mut table = Vec::with_capacity(vol_lens.len() * 8 + 4);
    for l in &vol_lens {
        table.extend_from_slice(&l.to_le_bytes());
    }
    let c = crc(&table);
    table.extend_from_slice(&c.to_le_bytes());
    wr(out, &table)?;
    sent += table.len() as u64;
    if let Some(r) = report {
        wr(out, &r.to_frame())?;
        sent += REPORT_FRAME_LEN as u64;
    }
    for (vol, offset, bytes) in &pieces {
        let f = frame(PIECE_MAGIC, |p| {
            p.u32(4, *vol);
            p.u64(8, *offset);
            p.u64(16, bytes.len() as u64);
            p.u32(24, crc(bytes));
        });
        wr(out, &f)?;
        wr(out, bytes)?;
        sent += (FRAME_LEN + bytes.len()) as u64;
    }
    progress(sent);
    let idx = image.index();
    let mut records = 0u64;
    for &i in &order {
        let Some(e) = idx.get(i) else { continue };
        let record = match image.read_record(e) {
            Ok(r) => r,
            Err(err) => {
                let msg = err.to_string();
                let m = msg.as_bytes();
                let m = m.get(..m.len().min(MAX_ABORT_LEN as usize)).unwrap_or(m);
                let f = frame(ABORT_MAGIC, |p| {
                    p.u32(4, m.len() as u32);
                    p.u32(8, crc(m));
                });
                // The receivers learn why; a failure to tell them is secondary.
                let _ = out.write_all(&f).and_then(|()| out.write_all(m));
                let _ = out.flush();
                return Err(err);
            }
        };
        let f = frame(RECORD_MAGIC, |p| {
            p.u32(4, e.volume);
            p.u64(8, e.volume_offset);
            p.u32(16, record.len() as u32);
            p.u32(20, crc(&record));
        });
        wr(out, &f)?;
        wr(out, &record)?;
        sent += (FRAME_LEN + record.len()) as u64;
        records += 1;
        progress(sent);
    }
    let f = frame(END_MAGIC, |p| {
        p.u64(8, records);
        p.u64(16, sent);
    });
    wr(out, &f)?;
    sent += FRAME_LEN as u64;
    out.flush()
        .map_err(|e| cast_err(&name, format!("cannot write the stream: {e}")))?;
    progress(sent);
    Ok(SendSummary {
        records,
        bytes: sent,
    })
}

type Key = (u32, u64);

struct Pipe {
    input: Box<dyn Read + Send>,
    /// Bytes read from the input.
    pos: u64,
    /// Records announced by the header.
    expected: u64,
    received: u64,
    /// Leading records still to keep.
    keep_left: u32,
    kept_bytes: u64,
    kept: HashMap<Key, Arc<Vec<u8>>>,
    window: VecDeque<(Key, Arc<Vec<u8>>)>,
    passed: HashSet<Key>,
    max_record: u64,
    /// Set by [`CastReceiver::only_streams`]: records of other streams are dropped on arrival
    /// and records of these are held until read (the window then waits instead of evicting).
    wanted: Option<HashSet<u32>>,
    ended: bool,
    /// The first failure, repeated to every later read.
    failed: Option<String>,
}

struct Shared {
    name: String,
    pipe: Mutex<Pipe>,
    /// Signalled when a record leaves the window.
    room: Condvar,
}

fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Pipe {
    /// Reads exactly `buf.len()` bytes; a short read is truncation.
    fn fill(&mut self, buf: &mut [u8], what: &str) -> std::result::Result<(), String> {
        let n = read_full(self.input.as_mut(), buf)
            .map_err(|e| format!("cannot read {what} at byte {}: {e}", self.pos))?;
        self.pos += n as u64;
        if n < buf.len() {
            return Err(format!(
                "the stream ends at byte {} inside {what} (truncated: the sender stopped or the \
                 connection was lost)",
                self.pos
            ));
        }
        Ok(())
    }

    fn bytes(&mut self, len: u64, what: &str) -> std::result::Result<Vec<u8>, String> {
        let n = usize::try_from(len).map_err(|_| format!("{what} of {len} bytes"))?;
        let mut v = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| format!("no memory for {what} of {len} bytes"))?;
        v.resize(n, 0);
        self.fill(&mut v, what)?;
        Ok(v)
    }

    /// Reads the next frame after the metadata: a record (held), the end, or an abort.
    fn next(&mut self) -> std::result::Result<(), String> {
        let mut f = [0u8; FRAME_LEN];
        self.fill(&mut f, "a frame header")?;
        let magic: [u8; 4] = rd_arr(&f, 0);
        if !crc_matches(rd_u32(&f, 28), crc(f.get(..28).unwrap_or_default())) {
            return Err(format!(
                "the frame header at byte {} fails its crc32 (damaged in transit)",
                self.pos - FRAME_LEN as u64
            ));
        }
        match magic {
            RECORD_MAGIC => {
                if self.received >= self.expected {
                    return Err(format!("more records than the {} announced", self.expected));
                }
                let key = (rd_u32(&f, 4), rd_u64(&f, 8));
                let len = u64::from(rd_u32(&f, 16));
                if !(CHUNK_HEADER_LEN as u64..=self.max_record).contains(&len) {
                    return Err(format!("a record of {len} bytes"));
                }
                let data = self.bytes(len, "a chunk record")?;
                if !crc_matches(rd_u32(&f, 20), crc(&data)) {
                    return Err(format!(
                        "the record of volume {} at {} fails its crc32 (damaged in transit)",
                        key.0, key.1
                    ));
                }
                self.received += 1;
                let stream = ChunkHeader::decode(data.get(..CHUNK_HEADER_LEN).unwrap_or_default())
                    .map_err(|d| format!("the record of volume {} at {}: {d}", key.0, key.1))?
                    .stream;
                let data = Arc::new(data);
                if self.keep_left == 0 && self.wanted.as_ref().is_some_and(|w| !w.contains(&stream))
                {
                    self.passed.insert(key);
                    return Ok(());
                }
                if self.keep_left > 0 {
                    self.keep_left -= 1;
                    self.kept_bytes += len;
                    if self.kept_bytes > MAX_KEPT_LEN {
                        return Err(format!(
                            "the leading records hold more than {MAX_KEPT_LEN} bytes"
                        ));
                    }
                    self.kept.insert(key, data);
                } else {
                    self.window.push_back((key, data));
                    if self.wanted.is_none() && self.window.len() > WINDOW {
                        if let Some((k, _)) = self.window.pop_front() {
                            self.passed.insert(k);
                        }
                    }
                }
                Ok(())
            }
            END_MAGIC => {
                let records = rd_u64(&f, 8);
                if records != self.received || records != self.expected {
                    return Err(format!(
                        "the end frame counts {records} records; {} were announced and {} received",
                        self.expected, self.received
                    ));
                }
                self.ended = true;
                Ok(())
            }
            ABORT_MAGIC => {
                let len = rd_u32(&f, 4).min(MAX_ABORT_LEN);
                let msg = self.bytes(u64::from(len), "the sender's message")?;
                Err(format!(
                    "the sender stopped the session: {}",
                    String::from_utf8_lossy(&msg)
                ))
            }
            _ => Err(format!(
                "no frame at byte {} (a foreign or damaged stream)",
                self.pos - FRAME_LEN as u64
            )),
        }
    }
}

impl Shared {
    fn record(&self, key: Key, len: usize) -> io::Result<Arc<Vec<u8>>> {
        let mut p = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        let fail =
            |d: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {d}", self.name));
        loop {
            if let Some(f) = &p.failed {
                return Err(fail(f));
            }
            if let Some(r) = p.kept.get(&key) {
                return check_len(r.clone(), len).map_err(|d| fail(&d));
            }
            if let Some(i) = p.window.iter().position(|(k, _)| *k == key) {
                let r = p.window.remove(i).map(|(_, r)| r);
                p.passed.insert(key);
                self.room.notify_all();
                return match r {
                    Some(r) => check_len(r, len).map_err(|d| fail(&d)),
                    None => Err(fail("a record vanished from the window")),
                };
            }
            if p.passed.contains(&key) {
                return Err(fail(&format!(
                    "the record of volume {} at {} has passed (a cast stream is read once, in order)",
                    key.0, key.1
                )));
            }
            if p.ended {
                return Err(fail(&format!(
                    "the stream holds no record of volume {} at {}",
                    key.0, key.1
                )));
            }
            if p.wanted.is_some() && p.window.len() >= WINDOW {
                // Every held record is wanted and will be read by the thread that took it.
                p = self.room.wait(p).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if let Err(d) = p.next() {
                p.failed = Some(d.clone());
                return Err(fail(&d));
            }
        }
    }
}

fn check_len(r: Arc<Vec<u8>>, len: usize) -> std::result::Result<Arc<Vec<u8>>, String> {
    if r.len() == len {
        Ok(r)
    } else {
        Err(format!(
            "a record of {} bytes where {len} were asked",
            r.len()
        ))
    }
}

/// One volume of an image received as a cast stream.
struct CastVolume {
    shared: Arc<Shared>,
    number: u32,
    len: u64,
    pieces: Vec<(u64, Arc<Vec<u8>>)>,
}

impl BlockIo for CastVolume {
    fn len(&self) -> u64 {
        self.len
    }
    fn logical_sector_size(&self) -> u32 {
        512
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let len = buf.len() as u64;
        for (start, bytes) in &self.pieces {
            let rel = offset.checked_sub(*start);
            if let Some(src) = rel.and_then(|r| {
                let r = usize::try_from(r).ok()?;
                bytes.get(r..r.checked_add(buf.len())?)
            }) {
                buf.copy_from_slice(src);
                return Ok(());
            }
        }
        let r = self.shared.record((self.number, offset), buf.len())?;
        match r.get(..buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: bytes {offset}+{len} of volume {}",
                    self.shared.name, self.number
                ),
            )),
        }
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a received image is read-only",
        ))
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        format!("{} volume {}", self.shared.name, self.number)
    }
}

/// The receiving end of a cast stream, beside the [`ImageReader`] it feeds.
#[derive(Clone)]
pub struct CastReceiver {
    shared: Arc<Shared>,
    report_to: Option<ReportTo>,
}

impl std::fmt::Debug for CastReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CastReceiver")
            .field("name", &self.shared.name)
            .finish()
    }
}

impl CastReceiver {
    /// Declares that only the chunks of `streams` will be read (each once, by at most
    /// [`WINDOW`] threads at a time): records of other streams are dropped as they arrive, and
    /// records of these are held until read instead of leaving the window, so readers on
    /// several threads may ask slightly out of order without a record passing them.
    pub fn only_streams(&self, streams: impl IntoIterator<Item = u32>) {
        let mut p = self.shared.pipe.lock().unwrap_or_else(|e| e.into_inner());
        p.wanted = Some(streams.into_iter().collect());
    }

    /// Reads the rest of the stream (records nobody asked for, such as those of partitions a
    /// restore leaves out) up to its end frame, so the stream is known complete and the
    /// transport can finish. Returns the bytes read in all.
    pub fn finish(&self) -> Result<u64> {
        let mut p = self.shared.pipe.lock().unwrap_or_else(|e| e.into_inner());
        while !p.ended {
            if let Some(f) = &p.failed {
                return Err(cast_err(&self.shared.name, f.clone()));
            }
            p.window.clear();
            if let Err(d) = p.next() {
                p.failed = Some(d.clone());
                return Err(cast_err(&self.shared.name, d));
            }
        }
        let mut extra = [0u8; 1];
        let n = read_full(p.input.as_mut(), &mut extra)
            .map_err(|e| cast_err(&self.shared.name, format!("cannot read: {e}")))?;
        if n > 0 {
            return Err(cast_err(&self.shared.name, "bytes follow the end frame"));
        }
        Ok(p.pos)
    }

    /// Where the sender wants this receiver's report, when it said so.
    pub fn report_to(&self) -> Option<ReportTo> {
        self.report_to
    }

    /// Bytes read from the stream so far.
    pub fn bytes_read(&self) -> u64 {
        self.shared
            .pipe
            .lock()
            .map(|p| p.pos)
            .unwrap_or_else(|e| e.into_inner().pos)
    }
}

/// Reads a cast stream's metadata from `input` and opens the image it carries (`name` names
/// it in messages; `password` unlocks an encrypted one). Chunk records are read from `input`
/// as the returned reader asks for them; [`CastReceiver::finish`] reads the rest.
pub fn receive(
    input: Box<dyn Read + Send>,
    name: &str,
    password: Option<&Passphrase>,
) -> Result<(ImageReader, CastReceiver)> {
    receive_reporting(input, name, password).1
}

/// [`receive`], also returning the stream's report address as soon as it was read, even when
/// the image cannot be opened after it (a wrong password, a damaged piece): a receiver can then
/// tell the sender why it failed.
pub fn receive_reporting(
    input: Box<dyn Read + Send>,
    name: &str,
    password: Option<&Passphrase>,
) -> (Option<ReportTo>, Result<(ImageReader, CastReceiver)>) {
    let mut report_to = None;
    let got = receive_inner(input, name, password, &mut report_to);
    (report_to, got)
}

fn receive_inner(
    input: Box<dyn Read + Send>,
    name: &str,
    password: Option<&Passphrase>,
    report_out: &mut Option<ReportTo>,
) -> Result<(ImageReader, CastReceiver)> {
    let mut pipe = Pipe {
        input,
        pos: 0,
        expected: 0,
        received: 0,
        keep_left: 0,
        kept_bytes: 0,
        kept: HashMap::new(),
        window: VecDeque::new(),
        passed: HashSet::new(),
        max_record: 0,
        wanted: None,
        ended: false,
        failed: None,
    };
    let bad = |d: String| cast_err(name, d);
    let mut head = [0u8; CAST_HEADER_LEN];
    let n = read_full(pipe.input.as_mut(), &mut head)
        .map_err(|e| bad(format!("cannot read the header: {e}")))?;
    pipe.pos = n as u64;
    if head.get(..8.min(n)) != CAST_MAGIC.get(..8.min(n)) || n == 0 {
        return Err(bad("not a Lifeboat cast stream (no LBICAST magic)".into()));
    }
    if n < CAST_HEADER_LEN {
        return Err(bad(format!(
            "the stream ends after {n} bytes, inside its header"
        )));
    }
    if !crc_matches(rd_u32(&head, 60), crc(head.get(..60).unwrap_or_default())) {
        return Err(bad("the header fails its crc32".into()));
    }
    let major = rd_u16(&head, 8);
    if major != CAST_MAJOR {
        return Err(bad(format!(
            "cast stream version {major}; this Lifeboat reads version {CAST_MAJOR}"
        )));
    }
    let volumes = rd_u32(&head, 16);
    let pieces = rd_u32(&head, 20);
    let chunk_size = rd_u32(&head, 24);
    let kept = rd_u32(&head, 28);
    let records = rd_u64(&head, 32);
    if volumes == 0 || volumes > MAX_VOLUMES || pieces == 0 || pieces > MAX_PIECES {
        return Err(bad(format!("{volumes} volumes in {pieces} pieces")));
    }
    if !valid_chunk_size(chunk_size) || u64::from(kept) > records {
        return Err(bad(format!(
            "chunk size {chunk_size}, {kept} kept of {records} records"
        )));
    }
    pipe.expected = records;
    pipe.keep_left = kept;
    pipe.max_record = CHUNK_HEADER_LEN as u64 + max_frame_len(chunk_size) + TAG_LEN as u64;
    let table = pipe
        .bytes(u64::from(volumes) * 8 + 4, "the volume table")
        .map_err(&bad)?;
    let (lens, sum) = table.split_at(table.len() - 4);
    if !crc_matches(rd_u32(sum, 0), crc(lens)) {
        return Err(bad("the volume table fails its crc32".into()));
    }
    let lens: Vec<u64> = lens.chunks_exact(8).map(|c| rd_u64(c, 0)).collect();
    let report_to = if rd_u32(&head, 12) & CAST_REPORT != 0 {
        let mut f = [0u8; REPORT_FRAME_LEN];
        pipe.fill(&mut f, "the report frame").map_err(&bad)?;
        Some(ReportTo::from_frame(&f).map_err(&bad)?)
    } else {
        None
    };
    *report_out = report_to;
    let mut by_volume: Vec<Vec<(u64, Arc<Vec<u8>>)>> = vec![Vec::new(); lens.len()];
    let mut total = 0u64;
    for _ in 0..pieces {
        let mut f = [0u8; FRAME_LEN];
        pipe.fill(&mut f, "a piece header").map_err(&bad)?;
        if rd_arr::<4>(&f, 0) != PIECE_MAGIC
            || !crc_matches(rd_u32(&f, 28), crc(f.get(..28).unwrap_or_default()))
        {
            return Err(bad(format!(
                "the piece header at byte {} is damaged",
                pipe.pos - FRAME_LEN as u64
            )));
        }
        let vol = rd_u32(&f, 4);
        let offset = rd_u64(&f, 8);
        let len = rd_u64(&f, 16);
        let vlen = lens
            .get((vol as usize).wrapping_sub(1))
            .copied()
            .ok_or_else(|| bad(format!("a piece of volume {vol}")))?;
        total = total.saturating_add(len);
        if offset.checked_add(len).is_none_or(|e| e > vlen) || total > MAX_METADATA_LEN {
            return Err(bad(format!(
                "a piece of {len} bytes at {offset} of volume {vol} ({vlen} bytes)"
            )));
        }
        let bytes = pipe.bytes(len, "a metadata piece").map_err(&bad)?;
        if !crc_matches(rd_u32(&f, 24), crc(&bytes)) {
            return Err(bad(format!(
                "the piece at {offset} of volume {vol} fails its crc32"
            )));
        }
        if let Some(v) = by_volume.get_mut((vol as usize).wrapping_sub(1)) {
            v.push((offset, Arc::new(bytes)));
        }
    }
    let shared = Arc::new(Shared {
        name: name.to_string(),
        pipe: Mutex::new(pipe),
        room: Condvar::new(),
    });
    let vols: Vec<(String, Box<dyn BlockIo>)> = lens
        .iter()
        .zip(by_volume)
        .enumerate()
        .map(|(i, (&len, pieces))| {
            let number = i as u32 + 1;
            let v: Box<dyn BlockIo> = Box::new(CastVolume {
                shared: Arc::clone(&shared),
                number,
                len,
                pieces,
            });
            let n = if number == 1 {
                name.to_string()
            } else {
                format!("{name} volume {number}")
            };
            (n, v)
        })
        .collect();
    let reader = ImageReader::from_volumes_with(vols, password)?;
    if reader.uuid_bytes() != rd_arr::<16>(&head, 40) {
        return Err(bad(
            "the header names another image than its metadata".into()
        ));
    }
    if reader.chunk_size() != chunk_size || reader.index().len() as u64 != records {
        return Err(bad(format!(
            "the header announces {records} records of chunk size {chunk_size}; the image holds {} of {}",
            reader.index().len(),
            reader.chunk_size()
        )));
    }
    Ok((reader, CastReceiver { shared, report_to }))
}
