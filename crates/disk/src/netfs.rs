//! Files on network file systems (SMB, NFS, SFTP through `sshfs`): which share a path is on, and
//! the two rules that keep a job on a share loud instead of hung.
//!
//! - **Writes** go through a [`StallWriter`]: large blocks handed to an I/O thread (so the caller
//!   compresses the next block while this one travels), and a deadline: when no write has
//!   finished for [`Policy::stall`] while one is waiting, the writer fails with a message that
//!   says the server does not answer, even if the kernel call itself is still blocked (that
//!   thread is left behind; it ends when the kernel gives up or the share is unmounted).
//! - **Reads** that fail the way a vanished server makes them fail (`EIO`, `EHOSTDOWN`,
//!   `ETIMEDOUT`, …) are retried by [`retry_io`] for [`Policy::retry_for`], with a warning every
//!   few seconds that the job is waiting; then the error is returned.
//!
//! The kernel's own timeouts (cifs `echo_interval`, NFS `soft,timeo,retrans`, ssh
//! `ServerAliveInterval`) make a blocked call return eventually; these rules bound what the user
//! waits for whatever the kernel does.

use crate::mounts::{parse_mountinfo, MountEntry};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long network I/O may stall or fail before a job stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A write that has not finished after this long means the server is gone.
    pub stall: Duration,
    /// Failing reads are retried this long before the job stops.
    pub retry_for: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            stall: Duration::from_secs(8),
            retry_for: Duration::from_secs(45),
        }
    }
}

static POLICY: Mutex<Option<Policy>> = Mutex::new(None);

/// The policy of this process ([`Policy::default`] unless [`set_policy`] changed it).
pub fn policy() -> Policy {
    POLICY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_default()
}

/// Sets the policy for the network I/O that starts from now on.
pub fn set_policy(p: Policy) {
    *POLICY.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
}

/// The network mount a path lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetMount {
    /// `cifs`, `smb3`, `nfs`, `nfs4` or `fuse.sshfs`.
    pub fs_type: String,
    /// What was mounted: `//host/share`, `host:/export`, `user@host:/path`.
    pub source: String,
    pub mount_point: PathBuf,
}

impl NetMount {
    /// "SMB share //10.0.2.2/images", "NFS export 10.0.2.2:/images", "SFTP folder …".
    pub fn describe(&self) -> String {
        let kind = match self.fs_type.as_str() {
            "cifs" | "smb3" => "SMB share",
            "nfs" | "nfs4" => "NFS export",
            _ => "SFTP folder",
        };
        format!("{kind} {}", self.source)
    }

    /// Whether the kernel caches writes to it and sends them later (NFS); cifs with
    /// `cache=none` and sshfs send each write as it is made.
    pub fn caches_writes(&self) -> bool {
        self.fs_type.starts_with("nfs")
    }
}

fn is_network(fs_type: &str) -> bool {
    matches!(fs_type, "cifs" | "smb3" | "nfs" | "nfs4" | "fuse.sshfs")
}

/// The network mount holding `path` among `mounts` (the deepest mount point that is a prefix of
/// `path`), if that mount is a network file system.
pub fn network_mount_in(mounts: &[MountEntry], path: &Path) -> Option<NetMount> {
    let m = mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        // Later lines of mountinfo are mounted over earlier ones at the same point.
        .enumerate()
        .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
        .map(|(_, m)| m)?;
    is_network(&m.fs_type).then(|| NetMount {
        fs_type: m.fs_type.clone(),
        source: m.source.display().to_string(),
        mount_point: m.mount_point.clone(),
    })
}

/// The network mount holding `path` (a file that may not exist yet: its folder is looked up).
pub fn network_mount(path: &Path) -> Option<NetMount> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    // The nearest existing ancestor, with links resolved, is what mountinfo names.
    let mut probe = abs.as_path();
    let real = loop {
        if let Ok(r) = std::fs::canonicalize(probe) {
            break r.join(abs.strip_prefix(probe).ok()?);
        }
        probe = probe.parent()?;
    };
    let data = std::fs::read("/proc/self/mountinfo").ok()?;
    network_mount_in(&parse_mountinfo(&data), &real)
}

/// Errors a vanished or rebooting server gives (worth waiting for), as opposed to errors about
/// the file or the request.
pub fn is_transient(e: &io::Error) -> bool {
    use nix::libc;
    if e.kind() == io::ErrorKind::TimedOut {
        return true;
    }
    matches!(
        e.raw_os_error(),
        Some(
            libc::EIO
                | libc::EHOSTDOWN
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::ENETDOWN
                | libc::ENETRESET
                | libc::ETIMEDOUT
                | libc::ECONNRESET
                | libc::ECONNABORTED
                | libc::ECONNREFUSED
                | libc::ENOTCONN
                | libc::ESTALE
                | libc::EAGAIN
                | libc::ENOLINK
                | libc::ECOMM
        )
    )
}

/// Runs `op` until it succeeds, fails with a non-transient error, or transient errors have gone
/// on for `retry_for`; warns (naming `what`) every few seconds while it waits. The error after
/// the last try says how long it waited.
pub fn retry_io<T>(
    what: &str,
    retry_for: Duration,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let mut first_failure: Option<Instant> = None;
    let mut last_warning: Option<Instant> = None;
    let pause = (retry_for / 20).clamp(Duration::from_millis(5), Duration::from_secs(1));
    loop {
        match op() {
            Ok(v) => {
                if let Some(t) = first_failure {
                    log::warn!(
                        "{what}: the server answers again after {:.0} s; going on",
                        t.elapsed().as_secs_f64()
                    );
                }
                return Ok(v);
            }
            Err(e) if is_transient(&e) => {
                let since = *first_failure.get_or_insert_with(Instant::now);
                let waited = since.elapsed();
                if waited >= retry_for {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "{e}; retried for {:.0} s, the server did not come back",
                            waited.as_secs_f64()
                        ),
                    ));
                }
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    last_warning = Some(Instant::now());
                    log::warn!(
                        "{what}: {e}; waiting for the server ({:.0} of {} s)",
                        waited.as_secs_f64(),
                        retry_for.as_secs()
                    );
                }
                std::thread::sleep(pause.min(retry_for.saturating_sub(waited)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs `op` on a thread of its own and waits at most `limit` for it: a call on a share whose
/// server is gone fails with a timeout instead of hanging the caller (the thread is left to end
/// when the kernel gives up).
pub fn with_deadline<T: Send + 'static>(
    limit: Duration,
    op: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("netfs-call".into())
        .spawn(move || {
            let _ = tx.send(op());
        })?;
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer within {} s: the server does not answer",
                limit.as_secs()
            ),
        )),
    }
}

/// Bytes gathered before a block is handed to the I/O thread: several MiB per call lets the
/// kernel's SMB and NFS clients keep many requests in flight.
pub const WRITE_BLOCK: usize = 4 << 20;
/// Blocks queued behind the one being written.
const QUEUE_BLOCKS: usize = 2;
/// On file systems that cache writes (NFS), the I/O thread also syncs (an NFS COMMIT: the
/// server writes the bytes to its disk) after this many bytes, so the client never holds more
/// than this waiting for a commit. Each sync makes the server flush to its disk while the
/// pipeline waits, so they are rare: the blocks themselves reach the server one by one
/// ([`IN_FLIGHT_BLOCKS`]).
pub const SYNC_EVERY: u64 = 128 << 20;
/// The slowest link a sync is given time for, on top of the stall limit, for the bytes that
/// may not have been sent yet (the blocks in flight).
const SYNC_RATE: u64 = 2 << 20;
/// The slowest server disk a sync is given time for, for the bytes sent but not committed.
const COMMIT_RATE: u64 = 32 << 20;

/// Extra time a sync of `pending` uncommitted bytes is given: the last blocks may still have
/// to travel, and the server writes them all to its disk.
fn sync_allowance(pending: u64) -> Duration {
    let unsent = pending.min((IN_FLIGHT_BLOCKS as u64 + 1) * WRITE_BLOCK as u64);
    Duration::from_millis(
        (unsent.saturating_mul(1000) / SYNC_RATE)
            .saturating_add(pending.saturating_mul(1000) / COMMIT_RATE),
    )
}

enum Op {
    Write(Vec<u8>),
    Sync,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Op>,
    /// Ops taken by the I/O thread and not finished.
    busy: bool,
    /// When the I/O thread last finished an op (or started, when it has finished none).
    progress: Option<Instant>,
    error: Option<io::Error>,
    /// The writer is gone: the thread ends after its current op.
    closed: bool,
    /// Extra time the op in progress is given (a sync of cached writes).
    allowance: Duration,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A buffered writer of one file on a network share whose writes happen on an I/O thread and
/// stop with an error when no write finishes within the stall limit (see the module).
pub struct StallWriter {
    shared: Arc<Shared>,
    buf: Vec<u8>,
    name: String,
    stall: Duration,
    thread: Option<std::thread::JoinHandle<File>>,
    /// Set once the deadline passed: every later call fails at once.
    stalled: bool,
}

impl std::fmt::Debug for StallWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StallWriter")
            .field("name", &self.name)
            .field("stall", &self.stall)
            .field("stalled", &self.stalled)
            .finish()
    }
}

impl StallWriter {
    /// Writes `file` (named `name` in messages) on an I/O thread; fails when no write finishes
    /// for `stall`. `sync_every`: sync after that many bytes (for NFS, which caches writes; a
    /// sync is given [`sync_allowance`] on top of `stall`).
    pub fn new(
        file: File,
        name: &str,
        stall: Duration,
        sync_every: Option<u64>,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("netfs-write".into())
            .spawn(move || io_thread(file, &s, sync_every))?;
        Ok(StallWriter {
            shared,
            buf: Vec::with_capacity(WRITE_BLOCK),
            name: name.to_string(),
            stall,
            thread: Some(thread),
            stalled: false,
        })
    }

    /// True once the deadline passed: the server is taken for gone.
    pub fn stalled(&self) -> bool {
        self.stalled
    }

    fn stall_error(&self, waited: Duration) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no write to {} finished for {:.0} s: the server does not answer",
                self.name,
                waited.as_secs_f64()
            ),
        )
    }

    /// Waits until `done` holds for the state, the I/O thread fails, or the deadline passes.
    fn wait(&mut self, done: impl Fn(&State) -> bool) -> io::Result<()> {
        if self.stalled {
            return Err(self.stall_error(self.stall));
        }
        let shared = self.shared.clone();
        let mut st = shared.lock();
        loop {
            if let Some(e) = st.error.take() {
                let msg = e.to_string();
                st.error = Some(io::Error::new(e.kind(), msg.clone()));
                return Err(e);
            }
            if done(&st) {
                return Ok(());
            }
            let since = st.progress.map_or(Duration::ZERO, |t| t.elapsed());
            if since >= self.stall + st.allowance {
                drop(st);
                self.stalled = true;
                log::warn!("{}: no write finished for {} s", self.name, since.as_secs());
                return Err(self.stall_error(since));
            }
            let left = (self.stall + st.allowance).saturating_sub(since);
            st = match shared
                .cond
                .wait_timeout(st, left.min(Duration::from_millis(500)))
            {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Fails when the op in progress has overrun its time, without waiting.
    fn check_stall(&mut self) -> io::Result<()> {
        if self.stalled {
            return Err(self.stall_error(self.stall));
        }
        let st = self.shared.lock();
        let since = st.progress.map_or(Duration::ZERO, |t| t.elapsed());
        if st.busy && since >= self.stall + st.allowance {
            drop(st);
            self.stalled = true;
            log::warn!("{}: no write finished for {} s", self.name, since.as_secs());
            return Err(self.stall_error(since));
        }
        Ok(())
    }

    fn submit(&mut self, op: Op) -> io::Result<()> {
        self.wait(|st| st.queue.len() < QUEUE_BLOCKS)?;
        let mut st = self.shared.lock();
        if st.queue.is_empty() && !st.busy {
            st.progress = Some(Instant::now());
        }
        st.queue.push_back(op);
        drop(st);
        self.shared.cond.notify_all();
        Ok(())
    }

    fn submit_buffer(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(WRITE_BLOCK));
        self.submit(Op::Write(block))
    }

    /// Everything written so far is on the server's disk (`fdatasync`), within the deadline.
    pub fn sync(&mut self) -> io::Result<()> {
        self.submit_buffer()?;
        self.submit(Op::Sync)?;
        self.wait(|st| st.queue.is_empty() && !st.busy)
    }

    /// Syncs and returns the file.
    pub fn finish(mut self) -> io::Result<File> {
        self.sync()?;
        self.shared.lock().closed = true;
        self.shared.cond.notify_all();
        let t = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("no I/O thread"))?;
        t.join()
            .map_err(|_| io::Error::other(format!("the I/O thread of {} panicked", self.name)))
    }

    /// Drops what is buffered and lets the I/O thread end after its current write, without
    /// waiting for it.
    pub fn discard(mut self) {
        self.buf.clear();
        let mut st = self.shared.lock();
        st.queue.clear();
        st.closed = true;
        drop(st);
        self.shared.cond.notify_all();
        // Detached: a thread blocked on a dead server must not block the caller.
        drop(self.thread.take());
    }
}

impl Write for StallWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Whether the op in progress has overrun, checked at every call: the caller may only
        // come back every few seconds (a slow source), and must hear of it then.
        self.check_stall()?;
        let room = WRITE_BLOCK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= WRITE_BLOCK {
            self.submit_buffer()?;
        }
        Ok(n)
    }

    /// Hands what is buffered to the server and waits until it has been written.
    fn flush(&mut self) -> io::Result<()> {
        self.submit_buffer()?;
        self.wait(|st| st.queue.is_empty() && !st.busy)
    }
}

impl Drop for StallWriter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let mut st = self.shared.lock();
            st.closed = true;
            drop(st);
            self.shared.cond.notify_all();
        }
    }
}

/// `sync_file_range(2)` on `[at, at + len)` of `file` with `flags`.
fn sync_range(file: &File, at: u64, len: u64, flags: std::ffi::c_uint) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(at), Ok(len)) = (i64::try_from(at), i64::try_from(len)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "range past the largest file offset",
        ));
    };
    // SAFETY: a plain system call on a descriptor `file` owns; no memory is passed.
    let r = unsafe { nix::libc::sync_file_range(file.as_raw_fd(), at, len, flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Blocks whose write-back may still be in flight on a file system that caches writes (NFS):
/// the I/O thread starts each block's write-back as soon as it is written, and waits for the
/// one written this many blocks earlier. The network works while the next blocks compress,
/// at most this many blocks are unsent, a dead server stops the next wait (which the stall
/// limit bounds) and a full server's refusal comes back within a few blocks.
const IN_FLIGHT_BLOCKS: usize = 4;

/// The write-back of a cached file's blocks, kept [`IN_FLIGHT_BLOCKS`] behind the writes.
#[derive(Default)]
struct Writeback {
    /// Blocks whose write-back was started and not waited for, oldest first.
    started: VecDeque<(u64, u64)>,
}

impl Writeback {
    /// Starts sending `[at, at + len)`, then waits until the blocks more than
    /// [`IN_FLIGHT_BLOCKS`] behind it have reached the server and drops them from the cache.
    fn after_write(&mut self, file: &File, at: u64, len: u64) -> io::Result<()> {
        use nix::libc::SYNC_FILE_RANGE_WRITE;
        if let Err(e) = sync_range(file, at, len, SYNC_FILE_RANGE_WRITE) {
            // Not fatal: the next wait or the final sync sends it.
            log::debug!("sync_file_range: {e}");
        }
        self.started.push_back((at, len));
        while self.started.len() > IN_FLIGHT_BLOCKS {
            let Some((at, len)) = self.started.pop_front() else {
                break;
            };
            Self::wait(file, at, len)?;
        }
        Ok(())
    }

    /// Waits until `[at, at + len)` has been sent (a write error of those pages is returned),
    /// then lets the kernel drop the pages.
    fn wait(file: &File, at: u64, len: u64) -> io::Result<()> {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        // Only waits for the write-back started after the block's write (pages it skipped are
        // sent by the next sync): starting a new one here could send a lone request as a
        // stable write, which makes the server write it to its disk at once.
        sync_range(file, at, len, nix::libc::SYNC_FILE_RANGE_WAIT_BEFORE)?;
        if let (Ok(at), Ok(len)) = (i64::try_from(at), i64::try_from(len)) {
            if let Err(e) = posix_fadvise(file, at, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED) {
                log::debug!("posix_fadvise: {e}");
            }
        }
        Ok(())
    }

    /// A sync covers everything started so far.
    fn synced(&mut self) {
        self.started.clear();
    }
}

fn io_thread(mut file: File, shared: &Shared, sync_every: Option<u64>) -> File {
    let mut unsynced = 0u64;
    // Where the next block goes: the file is written from its start, in order.
    let mut at = 0u64;
    let mut writeback = Writeback::default();
    loop {
        let op = {
            let mut st = shared.lock();
            loop {
                if let Some(op) = st.queue.pop_front() {
                    st.busy = true;
                    st.allowance = match op {
                        Op::Sync => sync_allowance(unsynced),
                        Op::Write(_) => Duration::ZERO,
                    };
                    break Some(op);
                }
                if st.closed {
                    break None;
                }
                st = match shared.cond.wait(st) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
        };
        let Some(op) = op else { return file };
        let r = match op {
            Op::Write(b) => {
                let len = b.len() as u64;
                let r = file.write_all(&b).and_then(|()| match sync_every {
                    Some(_) => writeback.after_write(&file, at, len),
                    None => Ok(()),
                });
                at += len;
                unsynced += len;
                match sync_every {
                    Some(every) if r.is_ok() && unsynced >= every => {
                        // Counted as progress: the write is done, the sync has its own time.
                        {
                            let mut st = shared.lock();
                            st.progress = Some(Instant::now());
                            st.allowance = sync_allowance(unsynced);
                        }
                        unsynced = 0;
                        writeback.synced();
                        file.sync_data()
                    }
                    _ => r,
                }
            }
            Op::Sync => {
                let t = Instant::now();
                let r = file.sync_data();
                log::debug!(
                    "synced {} MiB in {:.2} s",
                    unsynced >> 20,
                    t.elapsed().as_secs_f64()
                );
                unsynced = 0;
                writeback.synced();
                r
            }
        };
        let mut st = shared.lock();
        st.busy = false;
        st.allowance = Duration::ZERO;
        st.progress = Some(Instant::now());
        if let Err(e) = r {
            st.error = Some(e);
            st.queue.clear();
            st.closed = true;
        }
        let closed = st.closed;
        drop(st);
        shared.cond.notify_all();
        if closed {
            return file;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn entry(point: &str, fs: &str, source: &str) -> MountEntry {
        MountEntry {
            dev: crate::DevNum { major: 0, minor: 1 },
            mount_point: point.into(),
            fs_type: fs.into(),
            source: source.into(),
        }
    }

    #[test]
    fn the_deepest_mount_decides_whether_a_path_is_on_a_share() {
        let m = [
            entry("/", "ext4", "/dev/sda1"),
            entry("/run/lifeboat/stores/smb-1-0", "cifs", "//10.0.2.2/images"),
            entry("/run/lifeboat/stores/nfs-1-0", "nfs", "10.0.2.2:/images"),
            entry("/run/lifeboat/stores/nfs-1-0/sub", "tmpfs", "tmpfs"),
        ];
        let smb =
            network_mount_in(&m, Path::new("/run/lifeboat/stores/smb-1-0/pcs/x.lbi")).unwrap();
        assert_eq!(smb.describe(), "SMB share //10.0.2.2/images");
        let nfs = network_mount_in(&m, Path::new("/run/lifeboat/stores/nfs-1-0/x.lbi")).unwrap();
        assert_eq!(nfs.describe(), "NFS export 10.0.2.2:/images");
        assert!(network_mount_in(&m, Path::new("/run/lifeboat/stores/nfs-1-0/sub/x")).is_none());
        assert!(network_mount_in(&m, Path::new("/home/x.lbi")).is_none());
        // A component prefix is not a folder prefix.
        assert!(network_mount_in(&m, Path::new("/run/lifeboat/stores/smb-1-01/x")).is_none());
        // This machine's own table answers (its root is not a share) without failing.
        assert!(network_mount(Path::new("/")).is_none_or(|n| !n.source.is_empty()));
    }

    #[test]
    fn transient_errors_are_those_of_a_vanished_server() {
        use nix::libc;
        for e in [libc::EIO, libc::EHOSTDOWN, libc::ETIMEDOUT, libc::ESTALE] {
            assert!(is_transient(&io::Error::from_raw_os_error(e)), "{e}");
        }
        for e in [libc::ENOENT, libc::EACCES, libc::ENOSPC, libc::EROFS] {
            assert!(!is_transient(&io::Error::from_raw_os_error(e)), "{e}");
        }
    }

    #[test]
    fn reads_are_retried_until_the_server_is_back() {
        let calls = AtomicU32::new(0);
        let t = Instant::now();
        let got = retry_io("x.lbi", Duration::from_secs(5), || {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(io::Error::from_raw_os_error(nix::libc::EHOSTDOWN))
            } else {
                Ok(7)
            }
        })
        .unwrap();
        assert_eq!(got, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn retries_stop_after_the_window_with_how_long_they_waited() {
        let calls = AtomicU32::new(0);
        let t = Instant::now();
        let e = retry_io("x.lbi", Duration::from_millis(300), || -> io::Result<()> {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(io::Error::from_raw_os_error(nix::libc::EIO))
        })
        .unwrap_err();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(calls.load(Ordering::SeqCst) > 2);
        assert!(
            e.to_string().contains("the server did not come back"),
            "{e}"
        );
        // A non-transient error is returned at once.
        let calls = AtomicU32::new(0);
        let e = retry_io("x.lbi", Duration::from_secs(60), || -> io::Result<()> {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(io::Error::from_raw_os_error(nix::libc::EACCES))
        })
        .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::EACCES));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_sync_is_given_time_for_what_it_sends() {
        assert_eq!(sync_allowance(0), Duration::ZERO);
        // 20 MiB may still travel at 2 MiB/s, 128 MiB are committed at 32 MiB/s.
        assert_eq!(sync_allowance(SYNC_EVERY), Duration::from_secs(10 + 4));
        assert_eq!(sync_allowance(4 << 20), Duration::from_millis(2000 + 125));
        assert_eq!(
            sync_allowance(u64::MAX),
            Duration::from_millis(10_000 + u64::MAX / COMMIT_RATE)
        );
    }

    #[test]
    fn a_call_past_its_deadline_is_a_timeout() {
        assert_eq!(with_deadline(Duration::from_secs(5), || Ok(3)).unwrap(), 3);
        let t = Instant::now();
        let e = with_deadline(Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn the_stall_writer_writes_everything_in_order() {
        let dir = std::env::temp_dir().join(format!("netfs-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out");
        let f = File::create(&p).unwrap();
        let mut w = StallWriter::new(f, "out", Duration::from_secs(30), Some(1 << 20)).unwrap();
        let mut want = Vec::new();
        for i in 0..3000u32 {
            let piece: Vec<u8> = (0..(i % 7000)).map(|j| (i ^ j) as u8).collect();
            w.write_all(&piece).unwrap();
            want.extend_from_slice(&piece);
        }
        let mut file = w.finish().unwrap();
        file.write_all(b"end").unwrap();
        want.extend_from_slice(b"end");
        let mut got = Vec::new();
        File::open(&p).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A FIFO in a new folder named after `tag`, nobody reading from it: it blocks `write` like
    /// a dead server does. Returns the folder, the (unused) reading end, which must live as long
    /// as the test, and the writing end.
    fn stalled_fifo(tag: &str) -> (PathBuf, File, File) {
        let dir = std::env::temp_dir().join(format!("netfs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Open both ends so the open does not block; only the writer is used.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_nonblock()
            .open(&fifo)
            .unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        (dir, reader, f)
    }

    #[test]
    fn a_write_that_never_finishes_fails_within_the_stall_limit() {
        let (dir, reader, f) = stalled_fifo("s");
        let mut w = StallWriter::new(f, "fifo", Duration::from_millis(400), None).unwrap();
        let t = Instant::now();
        let block = vec![1u8; WRITE_BLOCK];
        let mut err = None;
        for _ in 0..8 {
            if let Err(e) = w.write_all(&block).and_then(|()| w.flush()) {
                err = Some(e);
                break;
            }
        }
        let took = t.elapsed();
        let e = err.expect("the stalled writes failed");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("no write to fifo finished"), "{e}");
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(w.stalled());
        // Later calls fail at once; discarding does not wait for the blocked thread.
        let t = Instant::now();
        assert!(w.write_all(b"x").and_then(|()| w.flush()).is_err());
        w.discard();
        assert!(t.elapsed() < Duration::from_millis(300));
        // Unblock the left-behind thread so it ends.
        drop(reader);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stall_is_noticed_by_the_next_write_even_with_room_in_the_queue() {
        let (dir, reader, f) = stalled_fifo("c");
        let mut w = StallWriter::new(f, "fifo", Duration::from_millis(300), None).unwrap();
        // One block: the I/O thread blocks on it (the pipe holds 64 KiB); the queue is empty.
        w.write_all(&vec![2u8; WRITE_BLOCK]).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let e = w.write_all(b"small").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        w.discard();
        drop(reader);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    trait NonBlock {
        fn custom_flags_nonblock(&mut self) -> &mut Self;
    }
    impl NonBlock for std::fs::OpenOptions {
        fn custom_flags_nonblock(&mut self) -> &mut Self {
            use std::os::unix::fs::OpenOptionsExt;
            self.custom_flags(nix::libc::O_NONBLOCK)
        }
    }
}
