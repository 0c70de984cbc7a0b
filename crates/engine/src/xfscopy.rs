//! Shrinking XFS, which cannot shrink, by a file-level copy: a fresh XFS made by `mkfs.xfs` on
//! the smaller target partition with the source's UUID, label and format features (v5/CRC,
//! finobt, reflink, rmapbt, bigtime, inobtcount, sparse inodes, nrext64, ftype, block, sector,
//! inode and directory block sizes), then `xfsdump | xfsrestore` from the source mounted
//! read-only to the new file system. xfsdump is XFS's own backup tool: it reads every inode
//! through XFS's bulkstat and handle interfaces and keeps owners, modes, atime/mtime, every
//! extended attribute (user, trusted and security namespaces, hence ACLs), hard links, symlinks,
//! device nodes, FIFOs and sockets, holes of sparse files, XFS inode flags (immutable,
//! append-only, ...), extent size hints and project IDs. Shared (reflinked) extents become
//! separate copies; the minimum counts every file's own allocation for that reason.
//!
//! The source is mounted read-only on a copy-on-write overlay of itself (a log that needs
//! recovery is replayed into the overlay, never onto the source); the new file system has the
//! same UUID and is mounted beside it with `nouuid`.

use crate::error::JobError;
use crate::fsmount::{with_mounted, WorkDir};
use crate::grow::tool;
use crate::shrink::ShrinkStep;
use disk::mount::Access;
use disk::BlockIo;
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// The smallest XFS `mkfs.xfs` makes (xfsprogs 5.19 and later refuse smaller ones).
pub(crate) const XFS_MIN_SIZE: u64 = 300 << 20;
/// Most objects counted when measuring a source.
const MAX_OBJECTS: u64 = 200_000_000;

fn fail(device: &str, output: String) -> JobError {
    JobError::Tool {
        tool: "XFS copy".into(),
        device: device.to_string(),
        output,
    }
}

/// `xfs_info` (`xfs_spaceman -c info`) output as (section, key) → value: `meta-data`/`isize` → `512`.
pub(crate) fn parse_info(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let rest = if line.starts_with(|c: char| !c.is_whitespace()) {
            let (head, rest) = line.split_once('=').unwrap_or((line, ""));
            section = head.trim().to_string();
            // The section's own value: `internal` (log), `none` (realtime), `version` (naming).
            if let Some(first) = rest.split_whitespace().next() {
                out.insert((section.clone(), String::new()), first.to_string());
            }
            rest
        } else {
            line
        };
        for token in rest.split(|c: char| c.is_whitespace() || c == ',') {
            if let Some((k, v)) = token.split_once('=') {
                if !k.is_empty() && !v.is_empty() {
                    out.entry((section.clone(), k.to_string()))
                        .or_insert_with(|| v.to_string());
                }
            }
        }
    }
    out
}

/// The `mkfs.xfs` arguments that make a file system with the features of the one `info`
/// (from [`parse_info`]) describes, the UUID `uuid` and label `label`; the size is the device's.
pub(crate) fn mkfs_args(
    info: &BTreeMap<(String, String), String>,
    uuid: &str,
    label: &str,
) -> Result<Vec<String>, String> {
    let get = |s: &str, k: &str| info.get(&(s.to_string(), k.to_string())).cloned();
    if get("log", "").as_deref() != Some("internal") {
        return Err("an XFS with an external log cannot be copied into one partition".into());
    }
    if let Some(rt) = get("realtime", "blocks") {
        if rt != "0" {
            return Err(
                "an XFS with a realtime section cannot be copied into one partition".into(),
            );
        }
    }
    let mut m = vec![format!("uuid={uuid}")];
    for k in [
        "crc",
        "finobt",
        "rmapbt",
        "reflink",
        "bigtime",
        "inobtcount",
    ] {
        if let Some(v) = get("meta-data", k) {
            m.push(format!("{k}={v}"));
        }
    }
    let mut i = Vec::new();
    if let Some(v) = get("meta-data", "isize") {
        i.push(format!("size={v}"));
    }
    for k in ["sparse", "projid32bit", "nrext64"] {
        if let Some(v) = get("meta-data", k) {
            i.push(format!("{k}={v}"));
        }
    }
    let mut n = Vec::new();
    if let Some(v) = get("naming", "bsize") {
        n.push(format!("size={v}"));
    }
    if let Some(v) = get("naming", "ftype") {
        n.push(format!("ftype={v}"));
    }
    if get("naming", "ascii-ci").as_deref() == Some("1") {
        n.push("version=ci".into());
    }
    let mut args: Vec<String> = vec!["-f".into(), "-K".into(), "-m".into(), m.join(",")];
    if let Some(v) = get("data", "bsize") {
        args.extend(["-b".into(), format!("size={v}")]);
    }
    if let Some(v) = get("meta-data", "sectsz") {
        args.extend(["-s".into(), format!("size={v}")]);
    }
    if !i.is_empty() {
        args.extend(["-i".into(), i.join(",")]);
    }
    if !n.is_empty() {
        args.extend(["-n".into(), n.join(",")]);
    }
    if let Some(v) = get("log", "lazy-count") {
        args.extend(["-l".into(), format!("lazy-count={v}")]);
    }
    if !label.is_empty() {
        args.extend(["-L".into(), label.to_string()]);
    }
    Ok(args)
}

/// The smallest XFS that holds `alloc` bytes of file data in `inodes` inodes of `isize` bytes
/// with blocks of `bsize`: the data, inode chunks and directory blocks, the log `mkfs.xfs`
/// makes for that size (1/2048 of it, at least 64 MiB, at most 2 GiB), the blocks XFS keeps in
/// reserve (5 %, at most 8192 blocks), per-AG headers and free-space trees, and a tenth of the
/// data to spare; never below [`XFS_MIN_SIZE`].
pub(crate) fn xfs_minimum(alloc: u64, inodes: u64, isize: u64, bsize: u64) -> u64 {
    let meta = inodes.saturating_mul(isize.saturating_mul(2).saturating_add(64));
    let base = alloc.saturating_add(meta).saturating_add(alloc / 10);
    let mut size = base.saturating_add(96 << 20);
    for _ in 0..16 {
        let log = (size / 2048).clamp(64 << 20, 2 << 30);
        let reserve = (size / 20).min(8192u64.saturating_mul(bsize));
        let ags = size / 256;
        let next = base
            .saturating_add(log)
            .saturating_add(reserve)
            .saturating_add(ags)
            .saturating_add(4 << 20);
        if next == size {
            break;
        }
        size = next;
    }
    size.max(XFS_MIN_SIZE)
}

/// Bytes allocated to the files below `root` (each inode once) and the number of inodes.
fn measure_tree(root: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let (mut alloc, mut inodes) = (0u64, 1u64);
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let md = e.path().symlink_metadata()?;
            if md.nlink() > 1 && !md.is_dir() && !seen.insert(md.ino()) {
                continue;
            }
            inodes += 1;
            if inodes > MAX_OBJECTS {
                return Err(std::io::Error::other("too many files to measure"));
            }
            alloc = alloc.saturating_add(md.blocks().saturating_mul(512));
            if md.is_dir() {
                todo.push(e.path());
            }
        }
    }
    Ok((alloc, inodes))
}

/// The source's geometry as `xfs_info` prints it for the file system mounted at `mnt` (asked
/// of `xfs_spaceman -c info` as the `xfs_info` script does, so no shell script is needed).
fn geometry(mnt: &Path, device: &str) -> Result<BTreeMap<(String, String), String>, JobError> {
    let (code, out) = tool("xfs_spaceman", &["-c", "info", &mnt.to_string_lossy()])?;
    if code != 0 {
        return Err(fail(device, format!("xfs_spaceman -c info: {out}")));
    }
    Ok(parse_info(&out))
}

fn number(
    info: &BTreeMap<(String, String), String>,
    section: &str,
    key: &str,
    default: u64,
) -> u64 {
    info.get(&(section.to_string(), key.to_string()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The smallest partition a copy of the XFS on `base` fits in ([`xfs_minimum`] of what its
/// files allocate), measured on the file system mounted read-only on a copy-on-write view.
pub(crate) fn minimum(base: &dyn BlockIo) -> Result<u64, JobError> {
    let device = base.describe();
    let work = WorkDir::new()?;
    crate::fsmount::with_cow(base, |view| {
        with_mounted(
            view,
            &work,
            "measure",
            "xfs",
            Access::ReadOnly,
            None,
            |_, mnt| {
                let info = geometry(mnt, &device)?;
                let (alloc, inodes) =
                    measure_tree(mnt).map_err(|e| fail(&device, format!("measuring: {e}")))?;
                Ok(xfs_minimum(
                    alloc,
                    inodes,
                    number(&info, "meta-data", "isize", 512),
                    number(&info, "data", "bsize", 4096),
                ))
            },
        )
    })
}

/// Makes the new XFS on `head` and copies the files of the XFS on `base` (never written) into
/// it with `xfsdump | xfsrestore`.
pub(crate) fn copy_xfs(
    step: &ShrinkStep,
    head: &dyn BlockIo,
    base: &dyn BlockIo,
) -> Result<(), JobError> {
    let device = format!("partition {} of {}", step.number, head.describe());
    let work = WorkDir::new()?;
    crate::fsmount::with_cow(base, |view| {
        with_mounted(
            view,
            &work,
            "source",
            "xfs",
            Access::ReadOnly,
            None,
            |_, src| {
                let info = geometry(src, &device)?;
                let args =
                    mkfs_args(&info, &step.uuid, &step.label).map_err(|e| fail(&device, e))?;
                // The head holds the old XFS's blocks below the new end, its superblock
                // first: `mkfs.xfs` would zero that file system's secondary superblocks, most
                // of them past the new end. Nothing of the head is kept, so the old superblock
                // goes first and `mkfs.xfs` sees a blank device.
                let blank = vec![0u8; (1u64 << 20).min(head.len()) as usize];
                head.write_at(&blank, 0)
                    .map_err(|e| fail(&device, format!("clearing the old superblock: {e}")))?;
                let file = work.file("mkfs")?;
                vdev::serve_scoped(head, &file, "mkfs.xfs", true, |file| {
                    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
                    let f = file.to_string_lossy();
                    all.push(&f);
                    let (code, out) = tool("mkfs.xfs", &all)?;
                    if code != 0 {
                        return Err(JobError::Tool {
                            tool: "mkfs.xfs".into(),
                            device: device.clone(),
                            output: out,
                        });
                    }
                    Ok(())
                })
                .map_err(|e| fail(&device, e.to_string()))??;
                // Same UUID as the source mounted beside it: `nouuid`.
                with_mounted(
                    head,
                    &work,
                    "target",
                    "xfs",
                    Access::ReadWrite,
                    Some("nouuid"),
                    |_, dst| {
                        dump_restore(src, dst, &device)?;
                        fix_attrs(src, dst).map_err(|e| {
                            fail(&device, format!("setting times and symlink owners: {e}"))
                        })?;
                        copy_root(src, dst, &device)
                    },
                )
            },
        )
    })
}

/// Sets the times of `path` (never following a symlink). A file or folder that is immutable or
/// append-only has those flags lifted for the call and put back.
fn set_times(path: &Path, md: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let ts = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
    let (atime, mtime) = (
        ts(md.atime(), md.atime_nsec()),
        ts(md.mtime(), md.mtime_nsec()),
    );
    let set = || {
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &atime,
            &mtime,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
    };
    match set() {
        Err(nix::Error::EPERM) if md.is_file() || md.is_dir() => {
            match disk::inode_flags::with_unlocked(path, set).map_err(|e| e.to_string())? {
                Some(r) => r.map_err(|e| e.to_string()),
                None => Err(nix::Error::EPERM.to_string()),
            }
        }
        r => r.map_err(|e| e.to_string()),
    }
}

/// xfsrestore keeps times to the second only, and gives symbolic links its own owner and the
/// time of the restore: every object below `dst` gets the times (to the nanosecond) of the one
/// at the same path below `src`, each symlink its owner too.
fn fix_attrs(src: &Path, dst: &Path) -> Result<(), String> {
    use nix::fcntl::{AtFlags, AT_FDCWD};
    use std::os::unix::fs::MetadataExt;
    let mut todo = vec![std::path::PathBuf::new()];
    let mut seen = 0u64;
    while let Some(rel) = todo.pop() {
        let rd =
            std::fs::read_dir(src.join(&rel)).map_err(|e| format!("{}: {e}", rel.display()))?;
        for e in rd {
            let e = e.map_err(|e| format!("{}: {e}", rel.display()))?;
            seen += 1;
            if seen > MAX_OBJECTS {
                return Err("too many files".into());
            }
            let r = rel.join(e.file_name());
            let md = e
                .path()
                .symlink_metadata()
                .map_err(|e| format!("{}: {e}", r.display()))?;
            let target = dst.join(&r);
            if md.is_dir() {
                todo.push(r.clone());
            } else if md.file_type().is_symlink() {
                nix::unistd::fchownat(
                    AT_FDCWD,
                    &target,
                    Some(nix::unistd::Uid::from_raw(md.uid())),
                    Some(nix::unistd::Gid::from_raw(md.gid())),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| format!("{}: {e}", r.display()))?;
            }
            set_times(&target, &md).map_err(|e| format!("{}: {e}", r.display()))?;
        }
    }
    Ok(())
}

/// xfsrestore fills the destination folder but leaves the folder itself as it is: the source
/// root's extended attributes (`getfattr -d` | `setfattr --restore`, every namespace), owner,
/// mode and times are copied onto it, in that order (a change of owner clears set-id bits, and
/// every change touches the times).
fn copy_root(src: &Path, dst: &Path, device: &str) -> Result<(), JobError> {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let tool_err = |name: &str, output: String| JobError::Tool {
        tool: name.into(),
        device: device.to_string(),
        output,
    };
    let dump = Command::new("getfattr")
        .args(["-h", "-d", "-m", "-", "-e", "hex", "."])
        .current_dir(src)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| tool_err("getfattr", format!("cannot run getfattr: {e}")))?;
    if !dump.status.success() {
        return Err(tool_err(
            "getfattr",
            String::from_utf8_lossy(&dump.stderr).into_owned(),
        ));
    }
    if !dump.stdout.is_empty() {
        let mut set = Command::new("setfattr")
            .args(["-h", "--restore=-"])
            .current_dir(dst)
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| tool_err("setfattr", format!("cannot run setfattr: {e}")))?;
        if let Some(mut input) = set.stdin.take() {
            input
                .write_all(&dump.stdout)
                .map_err(|e| tool_err("setfattr", e.to_string()))?;
        }
        let out = set
            .wait_with_output()
            .map_err(|e| tool_err("setfattr", e.to_string()))?;
        if !out.status.success() {
            return Err(tool_err(
                "setfattr",
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
    }
    let md = std::fs::metadata(src).map_err(|e| crate::fsmount::io_err(src, e))?;
    std::os::unix::fs::chown(dst, Some(md.uid()), Some(md.gid()))
        .map_err(|e| crate::fsmount::io_err(dst, e))?;
    std::fs::set_permissions(
        dst,
        std::os::unix::fs::PermissionsExt::from_mode(md.mode() & 0o7777),
    )
    .map_err(|e| crate::fsmount::io_err(dst, e))?;
    set_times(dst, &md).map_err(|e| fail(device, format!("{}: {e}", dst.display())))
}

/// `xfsdump -J -l 0 - SRC | xfsrestore -J - DST`, both checked.
fn dump_restore(src: &Path, dst: &Path, device: &str) -> Result<(), JobError> {
    let spawn_err = |name: &str, e: std::io::Error| JobError::Tool {
        tool: name.into(),
        device: device.to_string(),
        output: format!("cannot run {name}: {e}"),
    };
    let mut dump = Command::new("xfsdump")
        .args(["-J", "-l", "0", "-L", "lifeboat", "-M", "lifeboat", "-"])
        .arg(src)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_err("xfsdump", e))?;
    let (Some(stream), Some(mut dump_err)) = (dump.stdout.take(), dump.stderr.take()) else {
        let _ = dump.kill();
        let _ = dump.wait();
        return Err(fail(device, "xfsdump's output could not be taken".into()));
    };
    let dump_log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = dump_err.read_to_string(&mut s);
        s
    });
    let restored = Command::new("xfsrestore")
        .args(["-J", "-"])
        .arg(dst)
        .env("LC_ALL", "C")
        .stdin(Stdio::from(stream))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let dumped = dump.wait();
    let dump_text = dump_log.join().unwrap_or_default();
    let restored = restored.map_err(|e| spawn_err("xfsrestore", e))?;
    let dumped = dumped.map_err(|e| spawn_err("xfsdump", e))?;
    let restore_text = format!(
        "{}{}",
        String::from_utf8_lossy(&restored.stdout),
        String::from_utf8_lossy(&restored.stderr)
    );
    log::info!("xfsdump: {}", dump_text.trim());
    log::info!("xfsrestore: {}", restore_text.trim());
    if !dumped.success() || !dump_text.contains("Dump Status: SUCCESS") {
        return Err(JobError::Tool {
            tool: "xfsdump".into(),
            device: device.to_string(),
            output: dump_text,
        });
    }
    if !restored.status.success() || !restore_text.contains("Restore Status: SUCCESS") {
        return Err(JobError::Tool {
            tool: "xfsrestore".into(),
            device: device.to_string(),
            output: restore_text,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "meta-data=/dev/loop0             isize=512    agcount=4, agsize=32000 blks
         =                       sectsz=512   attr=2, projid32bit=1
         =                       crc=1        finobt=1, sparse=1, rmapbt=1
         =                       reflink=1    bigtime=1 inobtcount=1 nrext64=0
data     =                       bsize=4096   blocks=128000, imaxpct=25
         =                       sunit=0      swidth=0 blks
naming   =version 2              bsize=4096   ascii-ci=0, ftype=1
log      =internal log           bsize=4096   blocks=16384, version=2
         =                       sectsz=512   sunit=0 blks, lazy-count=1
realtime =none                   extsz=4096   blocks=0, rtextents=0
";

    #[test]
    fn mkfs_arguments_carry_every_feature_of_the_source() {
        let args = mkfs_args(
            &parse_info(INFO),
            "0b5e2c1a-1111-2222-3333-444455556666",
            "data",
        )
        .unwrap();
        assert_eq!(
            args.join(" "),
            "-f -K -m uuid=0b5e2c1a-1111-2222-3333-444455556666,crc=1,finobt=1,rmapbt=1,\
             reflink=1,bigtime=1,inobtcount=1 -b size=4096 -s size=512 \
             -i size=512,sparse=1,projid32bit=1,nrext64=0 -n size=4096,ftype=1 \
             -l lazy-count=1 -L data"
        );
    }

    #[test]
    fn a_realtime_section_or_an_external_log_is_refused() {
        let rt = INFO.replace("blocks=0, rtextents=0", "blocks=100, rtextents=100");
        assert!(mkfs_args(&parse_info(&rt), "u", "").is_err());
        let external = INFO.replace("=internal log", "=/dev/sdb1");
        assert!(mkfs_args(&parse_info(&external), "u", "").is_err());
    }

    #[test]
    fn the_xfs_minimum_counts_the_log_and_never_goes_below_300_mib() {
        assert_eq!(xfs_minimum(0, 3, 512, 4096), XFS_MIN_SIZE);
        // 10 GiB of data: log of 1/2048, 32 MiB reserve, the data and a tenth more.
        let m = xfs_minimum(10 << 30, 10_000, 512, 4096);
        assert!(m > (11 << 30) + (64 << 20), "{m}");
        assert!(m < 12 << 30, "{m}");
        assert_eq!(xfs_minimum(u64::MAX, u64::MAX, 512, 4096), u64::MAX);
    }
}
