//! Creating the files Lifeboat writes next to the user's data (images, reports, bad-sector maps,
//! logs) without following a link someone put in their place.
//!
//! Those files hold whole disks or describe them, and they are written as root into folders that
//! may sit on a stranger's stick. So they are created with `O_CREAT | O_EXCL` (which never follows
//! a symbolic link at the final name), `O_NOFOLLOW` and mode `0600`; replacing an existing file
//! removes that name first and creates a new file, so a symlink or a hard link in the folder is
//! never written through.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What to do when the name already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail with `AlreadyExists`.
    Refuse,
    /// Remove the existing regular file (only that name: other hard links keep their data) and
    /// create a new one. Anything else at that name (a symlink, a folder, a device, a FIFO) is
    /// refused with an error naming it.
    Replace,
    /// Append to the existing regular file (a log, a report a job is still writing), keeping its
    /// mode; create it (`0600`) when missing. Anything else at that name is refused as for
    /// `Replace`, and opening never blocks on a FIFO swapped in meanwhile.
    Append,
}

/// Creates `path` for writing, readable and writable by its owner only (`0600`), never following
/// a symbolic link at `path`. Parent folders must exist.
pub fn create_private(path: &Path, existing: Existing) -> io::Result<File> {
    if existing != Existing::Refuse {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_file() && existing == Existing::Append => {
                return append_existing(path)
            }
            Ok(meta) if meta.file_type().is_file() => std::fs::remove_file(path)?,
            Ok(meta) => return Err(not_regular(path, &meta.file_type(), existing)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    OpenOptions::new()
        .write(true)
        .append(existing == Existing::Append)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_flags())
        .open(path)
}

/// Opens the regular file at `path` for appending, without following a link and without
/// blocking on a FIFO; checks on the open file that it is a regular file.
fn append_existing(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(libc_flags() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(path, &kind, Existing::Append));
    }
    // Regular files ignore O_NONBLOCK; cleared all the same so writes behave as usual.
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_APPEND),
    )?;
    Ok(file)
}

fn not_regular(path: &Path, kind: &std::fs::FileType, existing: Existing) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{} exists and is not a regular file ({}): not {}",
            path.display(),
            kind_name(kind),
            match existing {
                Existing::Append => "appended to",
                _ => "replaced",
            }
        ),
    )
}

fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits()
}

fn kind_name(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn new_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("image.lbi");
        create_private(&p, Existing::Refuse)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = create_private(&p, Existing::Refuse).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn a_symlink_at_the_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("report.txt");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_private(&link, Existing::Refuse).is_err());
        let err = create_private(&link, Existing::Replace).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // A dangling link is not followed either (O_EXCL refuses it).
        let dangling = dir.path().join("map");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        assert!(create_private(&dangling, Existing::Refuse).is_err());
        assert!(!dir.path().join("nothing").exists());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn replacing_a_hard_linked_file_leaves_the_other_name_alone() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, b"precious").unwrap();
        let name = dir.path().join("report.txt");
        std::fs::hard_link(&other, &name).unwrap();
        create_private(&name, Existing::Replace)
            .unwrap()
            .write_all(b"new report")
            .unwrap();
        assert_eq!(std::fs::read(&other).unwrap(), b"precious");
        assert_eq!(std::fs::read(&name).unwrap(), b"new report");
    }

    #[test]
    fn appending_adds_to_a_regular_file_and_never_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.txt");
        create_private(&report, Existing::Append)
            .unwrap()
            .write_all(b"started\n")
            .unwrap();
        let mode = std::fs::metadata(&report).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        create_private(&report, Existing::Append)
            .unwrap()
            .write_all(b"finished\n")
            .unwrap();
        assert_eq!(std::fs::read(&report).unwrap(), b"started\nfinished\n");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = create_private(&link, Existing::Append).unwrap_err();
        assert!(err.to_string().contains("not appended to"), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn a_fifo_at_the_name_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.lbi");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = create_private(&fifo, Existing::Replace).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(create_private(&fifo, Existing::Refuse).is_err());
        let err = create_private(&fifo, Existing::Append).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
}
