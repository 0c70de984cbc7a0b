//! `lifeboat mount IMAGE [--part N] DIR` and `lifeboat umount DIR`: a file system inside an image
//! (or a disk image file, a disk or a partition) mounted read-only so that any tool can read it.
//!
//! The chain, bottom up: the image's stream (`engine::extract::open_device`, chunks read on
//! demand) served as a FUSE file by a background server process (`vdev`), a read-only
//! auto-clearing loop device over that file (`disk::loopdev`), and the file system mounted
//! read-only on DIR by the one mount helper (`disk::mount`). What belongs to DIR (the served
//! file, the loop device, the server's pid) is kept in `/run/lifeboat/mounts/<id>/state`
//! (`/run/lifeboat` is created 0700), so `umount` undoes exactly that, top down.
//!
//! `--disk` serves the whole disk of an image as a read-only file instead (no loop device, no
//! mount), for `fdisk -l`, `sgdisk -p` or `losetup -P`.

use anyhow::{anyhow, bail, Context, Result};
use nix::unistd::{fork, ForkResult, Pid};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the state of the mounts lives.
const RUN_DIR: &str = "/run/lifeboat";

/// How long `umount` waits for the loop device to let go and the server to end.
const SETTLE: Duration = Duration::from_secs(15);

/// What belongs to one `lifeboat mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    dir: PathBuf,
    served: PathBuf,
    loop_dev: PathBuf,
    pid: i32,
    source: String,
    fstype: String,
    /// `lifeboat mount` created `dir` (a `--disk` file), so `umount` removes it.
    created: bool,
}

impl State {
    fn to_text(&self) -> String {
        format!(
            "dir={}\nserved={}\nloop={}\npid={}\nfstype={}\ncreated={}\nsource={}\n",
            self.dir.display(),
            self.served.display(),
            self.loop_dev.display(),
            self.pid,
            self.fstype,
            self.created,
            self.source
        )
    }

    fn parse(text: &str) -> Option<State> {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(State {
            dir: get("dir")?.into(),
            served: get("served")?.into(),
            loop_dev: get("loop")?.into(),
            pid: get("pid")?.parse().ok()?,
            fstype: get("fstype")?,
            created: get("created").is_some_and(|c| c == "true"),
            source: get("source").unwrap_or_default(),
        })
    }
}

fn mounts_dir() -> PathBuf {
    Path::new(RUN_DIR).join("mounts")
}

/// Creates `/run/lifeboat/mounts` (the first level 0700) and a fresh folder for one mount.
fn new_state_dir() -> Result<PathBuf> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true).mode(0o700);
    b.create(mounts_dir())
        .with_context(|| format!("creating {}", mounts_dir().display()))?;
    for n in 0..1000u32 {
        let d = mounts_dir().join(format!("{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", d.display())),
        }
    }
    bail!("no free state folder under {}", mounts_dir().display())
}

/// The recorded mounts, with their state folders.
fn recorded() -> Vec<(PathBuf, State)> {
    let Ok(entries) = std::fs::read_dir(mounts_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("state")).ok()?;
            Some((e.path(), State::parse(&text)?))
        })
        .collect()
}

fn canonical_dir(dir: &Path) -> Result<PathBuf> {
    let c = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
    if !c.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    Ok(c)
}

/// True when `dir` is a mount point (in this process's mount namespace).
fn is_mount_point(dir: &Path) -> bool {
    std::fs::read("/proc/self/mountinfo")
        .map(|t| {
            disk::mounts::parse_mountinfo(&t)
                .iter()
                .any(|m| m.mount_point == dir)
        })
        .unwrap_or(false)
}

fn require_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("{what} needs root (it mounts a FUSE file, a loop device and a file system)");
    }
    Ok(())
}

/// `lifeboat mount`.
pub fn mount(image: &Path, part: Option<u32>, lv: Option<&str>, dir: &Path) -> Result<u8> {
    require_root("lifeboat mount")?;
    let dir = canonical_dir(dir)?;
    if recorded().iter().any(|(_, s)| s.dir == dir) {
        bail!("{} is already mounted by lifeboat mount", dir.display());
    }
    if is_mount_point(&dir) {
        bail!("{} is already a mount point", dir.display());
    }
    let source = engine::extract::Source::find_mountable_lv(image, part, lv)?;
    let (io, _reader) = engine::extract::open_device(&source)?;
    let fstype = match fs::probe(io.as_ref()) {
        Ok(Some(info)) => info.kind.name().to_string(),
        Ok(None) => bail!(
            "{} holds no file system Lifeboat recognises",
            source.title()
        ),
        Err(e) => return Err(anyhow!(e).context(format!("probing {}", source.title()))),
    };
    if !disk::mount::mountable(&fstype) {
        bail!(
            "{} holds {fstype}, which cannot be mounted (mountable: ext2/3/4, vfat, exfat, \
             ntfs, btrfs, xfs, iso9660)",
            source.title()
        );
    }
    let block_size = io.logical_sector_size();
    let state_dir = new_state_dir()?;
    let served = state_dir.join("device");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&served)
        .with_context(|| format!("creating {}", served.display()))?;
    let result = start(
        Arc::from(io),
        &source.title(),
        &served,
        &dir,
        &fstype,
        block_size,
    );
    match result {
        Ok(pid) => {
            let state = State {
                dir: dir.clone(),
                served,
                loop_dev: pid.1.clone(),
                pid: pid.0.as_raw(),
                source: source.title(),
                fstype: fstype.clone(),
                created: false,
            };
            std::fs::write(state_dir.join("state"), state.to_text())
                .with_context(|| format!("writing {}", state_dir.display()))?;
            crate::emit(&format!(
                "mounted {} ({fstype}) read-only at {} (served by pid {} through {})\n",
                source.title(),
                dir.display(),
                state.pid,
                state.loop_dev.display()
            ))?;
            Ok(0)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&state_dir);
            Err(e)
        }
    }
}

/// Forks the server process, which mounts `io` at `served` and answers until it is unmounted;
/// returns once it serves (or with its reason).
fn start_server(io: Arc<dyn disk::BlockIo>, name: &str, served: &Path) -> Result<Pid> {
    let (rx, tx) = nix::unistd::pipe().context("creating a pipe")?;
    // SAFETY: the process has one thread here (nothing before has started one), so the child
    // may do anything the parent could.
    match unsafe { fork() }.context("starting the server process")? {
        ForkResult::Child => {
            drop(rx);
            let code = serve(io, name, served, std::fs::File::from(tx));
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop(tx);
            let mut answer = String::new();
            std::fs::File::from(rx)
                .read_to_string(&mut answer)
                .context("waiting for the server process")?;
            if answer != "ready" {
                let _ = nix::sys::wait::waitpid(child, None);
                bail!(
                    "{}",
                    if answer.is_empty() {
                        "the server process ended without a word".to_string()
                    } else {
                        answer
                    }
                );
            }
            Ok(child)
        }
    }
}

/// Starts the server process, binds the loop device and mounts the file system; returns the
/// server's pid and the loop device. On failure nothing is left behind.
fn start(
    io: Arc<dyn disk::BlockIo>,
    name: &str,
    served: &Path,
    dir: &Path,
    fstype: &str,
    block_size: u32,
) -> Result<(Pid, PathBuf)> {
    let child = start_server(io, name, served)?;
    let stop_server = || {
        let _ = vdev::unmount(served);
        let _ = nix::sys::wait::waitpid(child, None);
    };
    let held = match disk::loopdev::attach_read_only(served, block_size) {
        Ok(l) => l,
        Err(e) => {
            stop_server();
            return Err(e.into());
        }
    };
    let loop_dev = held.path().to_path_buf();
    if let Err(e) = disk::mount::mount(&loop_dev, dir, fstype, disk::mount::Access::ReadOnly) {
        let _ = disk::loopdev::detach(&loop_dev);
        drop(held);
        wait_loop_released(&loop_dev, served);
        stop_server();
        return Err(e.into());
    }
    // The mount holds the device now; auto-clear detaches it when that goes.
    drop(held);
    Ok((child, loop_dev))
}

/// `lifeboat mount --disk IMAGE FILE`: the whole disk served read-only as FILE (created when
/// missing), for `fdisk -l`, `sgdisk -p`, `losetup -P` or any tool that reads a disk image.
pub fn mount_disk(image: &Path, file: &Path) -> Result<u8> {
    require_root("lifeboat mount")?;
    let io = engine::extract::open_whole_disk(image)?;
    let created = match std::fs::symlink_metadata(file) {
        Ok(m) if m.file_type().is_file() && m.len() == 0 => false,
        Ok(_) => bail!(
            "{} exists: give a new file name (or an empty file) for the disk",
            file.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(file)
                .with_context(|| format!("creating {}", file.display()))?;
            true
        }
        Err(e) => return Err(e).with_context(|| format!("{}", file.display())),
    };
    let file = std::fs::canonicalize(file).with_context(|| format!("{}", file.display()))?;
    let remove_created = || {
        if created {
            let _ = std::fs::remove_file(&file);
        }
    };
    if recorded().iter().any(|(_, s)| s.dir == file) {
        bail!("{} is already mounted by lifeboat mount", file.display());
    }
    let state_dir = match new_state_dir() {
        Ok(d) => d,
        Err(e) => {
            remove_created();
            return Err(e);
        }
    };
    let name = format!("{} (whole disk)", image.display());
    let pid = match start_server(Arc::from(io), &name, &file) {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&state_dir);
            remove_created();
            return Err(e);
        }
    };
    let state = State {
        dir: file.clone(),
        served: file.clone(),
        loop_dev: PathBuf::new(),
        pid: pid.as_raw(),
        source: name.clone(),
        fstype: "disk".into(),
        created,
    };
    std::fs::write(state_dir.join("state"), state.to_text())
        .with_context(|| format!("writing {}", state_dir.display()))?;
    crate::emit(&format!(
        "serving {name} read-only as {} (pid {})\n",
        file.display(),
        state.pid
    ))?;
    Ok(0)
}

/// The server process: mounts the FUSE file, says "ready" (or why not) through `tx`, and serves
/// until the file is unmounted. Returns the exit code.
fn serve(io: Arc<dyn disk::BlockIo>, name: &str, served: &Path, mut tx: std::fs::File) -> i32 {
    // Its own session, away from the terminal, with no standard streams held open (a caller
    // reading `lifeboat mount`'s output sees it end).
    let _ = nix::unistd::setsid();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            let _ = unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = std::env::set_current_dir("/");
    let server = match vdev::mount(io, served, name) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.write_all(e.to_string().as_bytes());
            return 1;
        }
    };
    if tx.write_all(b"ready").is_err() {
        return 1;
    }
    drop(tx);
    match server.run() {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Waits (a bounded time) until the loop device no longer reads `served`.
fn wait_loop_released(loop_dev: &Path, served: &Path) -> bool {
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        if disk::loopdev::backing_file(loop_dev).as_deref() != Some(served) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// True while the process `pid` runs (a zombie has ended).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// `lifeboat umount`.
pub fn umount(dir: &Path) -> Result<u8> {
    require_root("lifeboat umount")?;
    let dir = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
    let Some((state_dir, state)) = recorded().into_iter().find(|(_, s)| s.dir == dir) else {
        bail!("{} is not mounted by lifeboat mount", dir.display());
    };
    let busy = || {
        anyhow!(
            "{} is busy: a process has it or a file under it open (see `fuser -vm {}`); \
             nothing was unmounted",
            dir.display(),
            dir.display()
        )
    };
    let whole_disk = state.loop_dev.as_os_str().is_empty();
    if !whole_disk {
        if is_mount_point(&dir) {
            match disk::mount::unmount(&dir) {
                Ok(()) => {}
                Err(disk::mount::MountError::Unmount {
                    source: nix::Error::EBUSY,
                    ..
                }) => return Err(busy()),
                Err(e) => return Err(e.into()),
            }
        }
        disk::loopdev::detach(&state.loop_dev)?;
        if !wait_loop_released(&state.loop_dev, &state.served) {
            bail!(
                "{} still reads {} after {} s; the file system is unmounted, run `lifeboat umount {}` again",
                state.loop_dev.display(),
                state.served.display(),
                SETTLE.as_secs(),
                dir.display()
            );
        }
    }
    let start = Instant::now();
    loop {
        match vdev::unmount(&state.served) {
            Ok(()) => break,
            Err(vdev::VdevError::Unmount {
                source: nix::Error::EINVAL | nix::Error::ENOENT,
                ..
            }) => break, // not mounted any more
            Err(vdev::VdevError::Unmount {
                source: nix::Error::EBUSY,
                ..
            }) if whole_disk => return Err(busy()),
            Err(e) if start.elapsed() > SETTLE => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let start = Instant::now();
    while running(state.pid) {
        if start.elapsed() > SETTLE {
            bail!("the server process {} has not ended", state.pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if state.created {
        std::fs::remove_file(&state.dir)
            .with_context(|| format!("removing {}", state.dir.display()))?;
    }
    std::fs::remove_dir_all(&state_dir)
        .with_context(|| format!("removing {}", state_dir.display()))?;
    crate::emit(&format!(
        "unmounted {} ({}) from {}\n",
        state.source,
        state.fstype,
        dir.display()
    ))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_of_a_mount_reads_back_as_written() {
        let s = State {
            dir: "/mnt/a b".into(),
            served: "/run/lifeboat/mounts/1-0/device".into(),
            loop_dev: "/dev/loop3".into(),
            pid: 4242,
            source: "x.lbi partition 2".into(),
            fstype: "ext4".into(),
            created: true,
        };
        assert_eq!(State::parse(&s.to_text()), Some(s));
        assert_eq!(State::parse("dir=/x\n"), None);
    }
}
