//! Mounting SMB and NFS shares with the kernel's clients (`mount(2)` with text options; the SMB
//! password travels in the mount data, which the kernel never shows in `/proc/mounts`) and SFTP
//! folders with `sshfs` (the password on its stdin). Each function mounts the folder that holds
//! the location's file at `dir` and returns the file's path inside `dir`.

use crate::location::Location;
use crate::{Access, StoreError};
use nix::errno::Errno;
use nix::mount::MsFlags;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// SMB dialects tried in order when the URL names none (`?vers=`). SMB 1.0 only when asked.
pub const SMB_DIALECTS: &[&str] = &["3.1.1", "3.0", "2.1"];

/// Doubles commas, the kernel's escape for a comma inside the `password=` value.
fn escape_password(p: &str) -> String {
    p.replace(',', ",,")
}

/// A mount-option value must not carry the separator or a NUL.
fn clean_value(url: &Location, what: &str, v: &str) -> Result<(), StoreError> {
    if v.contains(',') || v.contains('\0') {
        return Err(StoreError::Unsupported {
            url: url.to_string(),
            what: format!("a comma in the {what} cannot be passed to the kernel"),
        });
    }
    Ok(())
}

/// The cifs mount data for one dialect (`password` is `None` for guest). `cache=none`: every
/// write goes to the server when it is made, so a server that dies in the middle of a backup
/// fails the next write instead of a `sync` minutes later; the engine writes blocks of 4 MiB,
/// which cifs sends as several requests in flight, so this costs little. `echo_interval=3`: a
/// server that stops answering is declared gone after about 9 s (the engine's own write
/// deadline, `disk::netfs`, is 8 s).
pub fn smb_options(
    loc: &Location,
    ip: IpAddr,
    vers: &str,
    password: Option<&str>,
) -> Result<String, StoreError> {
    let (share, _) = loc.smb_share();
    clean_value(loc, "share", share)?;
    let mut o = format!(
        "ip={ip},unc=\\\\{}\\{share},port={},vers={vers},echo_interval=3,cache=none,noserverino,nounix",
        loc.host,
        loc.port()
    );
    match (&loc.user, password) {
        (Some(u), pw) => {
            clean_value(loc, "user name", u)?;
            o.push_str(&format!(",username={u}"));
            if let Some(d) = &loc.domain {
                clean_value(loc, "domain", d)?;
                o.push_str(&format!(",domain={d}"));
            }
            // The password goes last: its doubled commas cannot be confused with a later option.
            o.push_str(&format!(",password={}", escape_password(pw.unwrap_or(""))));
        }
        (None, _) => o.push_str(",username=guest,password="),
    }
    Ok(o)
}

fn kernel_mount(
    loc: &Location,
    source: &str,
    dir: &Path,
    fstype: &str,
    data: &str,
) -> Result<(), Errno> {
    let started = Instant::now();
    let r = nix::mount::mount(
        Some(source),
        dir,
        Some(fstype),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(data),
    );
    log::debug!(
        "mount -t {fstype} {source} ({loc}): {:?} after {} ms",
        r,
        started.elapsed().as_millis()
    );
    r
}

/// What an errno from a network mount means for the user.
fn mount_error(loc: &Location, errno: Errno, with_password: bool, what: &str) -> StoreError {
    let url = loc.to_string();
    match errno {
        Errno::EACCES | Errno::EKEYREJECTED | Errno::EPERM if with_password => {
            StoreError::WrongPassword { url }
        }
        Errno::EACCES | Errno::EPERM | Errno::EKEYREJECTED => StoreError::PermissionDenied {
            url,
            detail: format!("the server refuses {what}"),
        },
        Errno::ENOENT | Errno::ENXIO => StoreError::NotFound { url },
        Errno::EHOSTDOWN
        | Errno::EHOSTUNREACH
        | Errno::ENETUNREACH
        | Errno::ECONNREFUSED
        | Errno::ETIMEDOUT
        | Errno::ECONNRESET => StoreError::Unreachable {
            url,
            detail: format!("{what}: {}", errno.desc()),
        },
        Errno::ENODEV => StoreError::Mount {
            url,
            detail: format!(
                "the kernel has no {what} client (module not loaded) (errno {})",
                errno as i32
            ),
        },
        e => StoreError::Mount {
            url,
            detail: format!("{what}: {} (errno {})", e.desc(), e as i32),
        },
    }
}

/// Mounts the SMB share of `loc` at `dir`, trying SMB 3.1.1, 3.0 and 2.1 (or only `?vers=`).
pub fn smb(
    loc: &Location,
    access: &Access,
    addr: SocketAddr,
    dir: &Path,
) -> Result<String, StoreError> {
    let (share, inner) = loc.smb_share();
    let source = format!("//{}/{share}", loc.host);
    let asked = loc.option("vers");
    let dialects: Vec<&str> = match asked {
        Some(v) => vec![v],
        None => SMB_DIALECTS.to_vec(),
    };
    let password = access.password.as_ref().map(|s| s.expose());
    let mut last = None;
    for vers in dialects {
        let data = smb_options(loc, addr.ip(), vers, password)?;
        match kernel_mount(loc, &source, dir, "cifs", &data) {
            Ok(()) => {
                log::info!("{loc}: SMB {vers}");
                return Ok(inner.to_string());
            }
            Err(errno) => {
                let e = mount_error(loc, errno, loc.user.is_some(), &format!("SMB {vers}"));
                match e {
                    // The dialect is not the problem: say so now.
                    StoreError::WrongPassword { .. }
                    | StoreError::PermissionDenied { .. }
                    | StoreError::NotFound { .. }
                    | StoreError::Unreachable { .. } => return Err(e),
                    _ => {
                        log::info!("{loc}: {e}; trying an older dialect");
                        last = Some(e);
                    }
                }
            }
        }
    }
    Err(last.unwrap_or(StoreError::Mount {
        url: loc.to_string(),
        detail: "no SMB dialect".into(),
    }))
}

/// Our address on the way to `server` (the NFS v4.0 callback address).
fn local_addr_towards(server: SocketAddr) -> Option<IpAddr> {
    let bind = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = UdpSocket::bind(bind).ok()?;
    s.connect(server).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// The NFS mount options of one version: `soft,timeo=50,retrans=1` (a call without an answer
/// fails after 5 + 10 s instead of hanging forever), 1 MiB reads and writes (the server may
/// lower them).
pub fn nfs_options(loc: &Location, server: SocketAddr, v4: bool) -> String {
    let mut o = format!(
        "addr={},port={},proto=tcp,soft,timeo=50,retrans=1,rsize=1048576,wsize=1048576",
        server.ip(),
        loc.port()
    );
    if v4 {
        o.push_str(",vers=4");
        if let Some(c) = local_addr_towards(server) {
            o.push_str(&format!(",clientaddr={c}"));
        }
    } else {
        o.push_str(",vers=3,nolock,mountproto=tcp");
        if let Some(p) = loc.option("mountport").and_then(|p| p.parse::<u16>().ok()) {
            o.push_str(&format!(",mountport={p}"));
        }
    }
    o
}

/// The folders to try as the NFS export, longest first: `/export/img/x.lbi` → `/export/img`,
/// `/export`, `/`.
pub fn nfs_candidates(dir: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut d = dir.trim_end_matches('/').to_string();
    loop {
        v.push(if d.is_empty() {
            "/".to_string()
        } else {
            d.clone()
        });
        match d.rfind('/') {
            Some(i) if !d.is_empty() => d.truncate(i),
            _ => break,
        }
    }
    v
}

/// Mounts the NFS folder holding the file of `loc` at `dir`: v4 then v3 (or `?vers=`), on the
/// file's folder first, then on each parent (the export may be any of them).
pub fn nfs(
    loc: &Location,
    _access: &Access,
    addr: SocketAddr,
    dir: &Path,
) -> Result<String, StoreError> {
    let file = loc.file_name().unwrap_or_default();
    let folder = loc.dir();
    let versions: Vec<bool> = match loc.option("vers") {
        Some(v) if v.starts_with('3') => vec![false],
        Some(v) if v.starts_with('4') => vec![true],
        _ => vec![true, false],
    };
    let mut last = None;
    for export in nfs_candidates(folder) {
        for &v4 in &versions {
            let fstype = if v4 { "nfs4" } else { "nfs" };
            let source = format!("{}:{export}", loc.host);
            match kernel_mount(loc, &source, dir, fstype, &nfs_options(loc, addr, v4)) {
                Ok(()) => {
                    let rest = folder
                        .strip_prefix(export.trim_end_matches('/'))
                        .unwrap_or("")
                        .trim_start_matches('/');
                    log::info!("{loc}: NFS v{} export {export}", if v4 { 4 } else { 3 });
                    return Ok(if rest.is_empty() {
                        file.to_string()
                    } else {
                        format!("{rest}/{file}")
                    });
                }
                Err(errno) => {
                    let what = format!("NFS v{} {export}", if v4 { 4 } else { 3 });
                    let e = mount_error(loc, errno, false, &what);
                    log::info!("{e}");
                    if matches!(e, StoreError::Unreachable { .. } if errno == Errno::ETIMEDOUT) {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
    }
    Err(last.unwrap_or(StoreError::NotFound {
        url: loc.to_string(),
    }))
}

/// A host key the server offered: its `known_hosts` line and `SHA256:` fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub line: String,
    pub fingerprint: String,
    pub kind: String,
}

fn program(name: &str) -> Result<std::path::PathBuf, StoreError> {
    disk::mount::find_program(name).ok_or_else(|| StoreError::Unsupported {
        url: String::new(),
        what: format!("{name} is not installed"),
    })
}

/// The host keys `host:port` offers (`ssh-keyscan`), with fingerprints (`ssh-keygen -l`).
pub fn host_keys(loc: &Location, timeout: Duration) -> Result<Vec<HostKey>, StoreError> {
    let scan = Command::new(program("ssh-keyscan")?)
        .args(["-T", &timeout.as_secs().max(1).to_string(), "-p"])
        .arg(loc.port().to_string())
        .arg(&loc.host)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| StoreError::Io {
            url: loc.to_string(),
            what: "running ssh-keyscan".into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&scan.stdout);
    let mut keys = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut child = Command::new(program("ssh-keygen")?)
            .args(["-l", "-E", "sha256", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| StoreError::Io {
                url: loc.to_string(),
                what: "running ssh-keygen".into(),
                source,
            })?;
        if let Some(mut i) = child.stdin.take() {
            let _ = writeln!(i, "{line}");
        }
        let out = child.wait_with_output().map_err(|source| StoreError::Io {
            url: loc.to_string(),
            what: "running ssh-keygen".into(),
            source,
        })?;
        // "256 SHA256:abc… host (ED25519)"
        let fp = String::from_utf8_lossy(&out.stdout);
        let mut words = fp.split_whitespace();
        let (Some(_), Some(f)) = (words.next(), words.next()) else {
            continue;
        };
        let kind = fp
            .rsplit('(')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_end_matches(')')
            .to_string();
        keys.push(HostKey {
            line: line.to_string(),
            fingerprint: f.to_string(),
            kind,
        });
    }
    if keys.is_empty() {
        return Err(StoreError::Unreachable {
            url: loc.to_string(),
            detail: format!(
                "no SSH host key from {}:{} ({})",
                loc.host,
                loc.port(),
                String::from_utf8_lossy(&scan.stderr).trim()
            ),
        });
    }
    Ok(keys)
}

/// True when `pin` names `fingerprint` (with or without the `SHA256:` prefix).
pub fn pin_matches(pin: &str, fingerprint: &str) -> bool {
    let strip = |s: &str| s.trim().trim_start_matches("SHA256:").to_string();
    !pin.trim().is_empty() && strip(pin) == strip(fingerprint)
}

/// Mounts the SFTP folder holding the file of `loc` at `dir` with `sshfs`, accepting only the
/// pinned host key.
pub fn sftp(loc: &Location, access: &Access, dir: &Path) -> Result<String, StoreError> {
    let keys = host_keys(loc, access.timeout)?;
    let fingerprints: Vec<String> = keys
        .iter()
        .map(|k| format!("{} ({})", k.fingerprint, k.kind))
        .collect();
    let Some(pin) = &access.host_key else {
        return Err(StoreError::HostKeyNotPinned {
            url: loc.to_string(),
            host: loc.authority(),
            fingerprints,
        });
    };
    let Some(key) = keys.iter().find(|k| pin_matches(pin, &k.fingerprint)) else {
        return Err(StoreError::HostKeyMismatch {
            url: loc.to_string(),
            host: loc.authority(),
            pinned: pin.clone(),
            fingerprints,
        });
    };
    // A private known_hosts holding only the accepted key, beside the mount point.
    let known = dir.with_extension("known_hosts");
    std::fs::write(&known, format!("{}\n", key.line)).map_err(|source| StoreError::Io {
        url: loc.to_string(),
        what: format!("writing {}", known.display()),
        source,
    })?;
    let result = run_sshfs(loc, access, dir, &known);
    let _ = std::fs::remove_file(&known);
    result?;
    Ok(loc.file_name().unwrap_or_default().to_string())
}

fn run_sshfs(loc: &Location, access: &Access, dir: &Path, known: &Path) -> Result<(), StoreError> {
    let user = loc.user.clone().unwrap_or_else(|| "root".to_string());
    let remote = format!("{user}@{}:{}", host_for_ssh(&loc.host), loc.dir());
    let t = access.timeout.as_secs().max(1);
    let mut opts = vec![
        format!("UserKnownHostsFile={}", known.display()),
        "GlobalKnownHostsFile=/dev/null".to_string(),
        "StrictHostKeyChecking=yes".to_string(),
        "UpdateHostKeys=no".to_string(),
        format!("ConnectTimeout={t}"),
        // A server that stops answering is dropped after 2 × 3 s (and not reconnected: sshfs's
        // `reconnect` stays off, so the job sees the error).
        "ServerAliveInterval=3".to_string(),
        "ServerAliveCountMax=2".to_string(),
        "NumberOfPasswordPrompts=1".to_string(),
        "LogLevel=ERROR".to_string(),
    ];
    if let Some(key) = &access.identity_file {
        opts.push(format!("IdentityFile={}", key.display()));
        opts.push("IdentitiesOnly=yes".to_string());
    }
    if access.password.is_some() {
        opts.push("password_stdin".to_string());
        // libfuse splits options at commas; a backslash keeps this one in the value.
        opts.push("PreferredAuthentications=keyboard-interactive\\,password".to_string());
    } else {
        opts.push("BatchMode=yes".to_string());
    }
    let mut cmd = Command::new(program("sshfs")?);
    cmd.arg(&remote)
        .arg(dir)
        .args(["-p", &loc.port().to_string(), "-F", "/dev/null"])
        .args(opts.iter().flat_map(|o| ["-o", o.as_str()]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| StoreError::Io {
        url: loc.to_string(),
        what: "running sshfs".into(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(p) = &access.password {
            let _ = writeln!(stdin, "{}", p.expose());
        }
    }
    // sshfs returns once the folder is mounted (it goes on in the background) or it failed.
    let deadline = Instant::now() + access.timeout * 4;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = unmount(dir);
                return Err(StoreError::Unreachable {
                    url: loc.to_string(),
                    detail: format!(
                        "sshfs did not finish within {} s",
                        (access.timeout * 4).as_secs()
                    ),
                });
            }
        }
    }
    let out = child.wait_with_output().map_err(|source| StoreError::Io {
        url: loc.to_string(),
        what: "waiting for sshfs".into(),
        source,
    })?;
    if out.status.success() {
        log::info!("{loc}: SFTP via sshfs");
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    log::info!("sshfs for {loc}: {err}");
    let url = loc.to_string();
    let lower = err.to_ascii_lowercase();
    Err(
        if lower.contains("permission denied")
            || (access.password.is_some() && lower.contains("connection reset"))
        {
            if access.password.is_some() {
                StoreError::WrongPassword { url }
            } else {
                StoreError::PermissionDenied {
                    url,
                    detail: "no key accepted (give a password)".into(),
                }
            }
        } else if lower.contains("no such file") {
            StoreError::NotFound { url }
        } else {
            StoreError::Mount { url, detail: err }
        },
    )
}

fn host_for_ssh(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Unmounts a store: a normal unmount (which writes back what is cached) given
/// [`UNMOUNT_WAIT`]; when the server is gone and it does not return in time, a forced lazy one
/// (a hung server must not hang Lifeboat).
pub fn unmount(dir: &Path) -> std::io::Result<()> {
    use nix::mount::{umount2, MntFlags};
    let (tx, rx) = std::sync::mpsc::channel();
    let d = dir.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(umount2(&d, MntFlags::empty()));
    });
    match rx.recv_timeout(UNMOUNT_WAIT) {
        Ok(Ok(())) | Ok(Err(Errno::EINVAL)) | Ok(Err(Errno::ENOENT)) => Ok(()),
        Ok(Err(e)) => {
            log::warn!("unmounting {}: {e}; detaching it", dir.display());
            umount2(dir, MntFlags::MNT_DETACH).map_err(std::io::Error::from)
        }
        Err(_) => {
            log::warn!(
                "unmounting {} did not finish in {} s (server gone?); forcing it",
                dir.display(),
                UNMOUNT_WAIT.as_secs()
            );
            umount2(dir, MntFlags::MNT_FORCE | MntFlags::MNT_DETACH).map_err(std::io::Error::from)
        }
    }
}

/// How long a normal unmount may take before it is forced (a finished job has synced its
/// files already, so a normal unmount only waits for a server that is gone).
pub const UNMOUNT_WAIT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smb_options_carry_user_domain_dialect_and_an_escaped_password() {
        let l = Location::parse("smb://OFFICE;anna@nas:4450/imgs/pc/x.lbi").unwrap();
        let o = smb_options(&l, "10.0.2.2".parse().unwrap(), "3.1.1", Some("a,b")).unwrap();
        assert_eq!(
            o,
            "ip=10.0.2.2,unc=\\\\nas\\imgs,port=4450,vers=3.1.1,echo_interval=3,cache=none,noserverino,nounix,username=anna,domain=OFFICE,password=a,,b"
        );
        let g = Location::parse("smb://nas/pub/x.lbi").unwrap();
        let o = smb_options(&g, "10.0.2.2".parse().unwrap(), "3.0", None).unwrap();
        assert!(
            o.ends_with(
                "vers=3.0,echo_interval=3,cache=none,noserverino,nounix,username=guest,password="
            ),
            "{o}"
        );
        let bad = Location::parse("smb://a%2Cb@nas/pub/x.lbi").unwrap();
        assert!(smb_options(&bad, "10.0.2.2".parse().unwrap(), "3.0", None).is_err());
    }

    #[test]
    fn nfs_exports_are_tried_from_the_folder_up() {
        assert_eq!(
            nfs_candidates("/export/img"),
            ["/export/img", "/export", "/"]
        );
        assert_eq!(nfs_candidates("/"), ["/"]);
        let l = Location::parse("nfs://filer:2050/export/x.lbi?mountport=20048").unwrap();
        let s: SocketAddr = "127.0.0.1:2050".parse().unwrap();
        let v3 = nfs_options(&l, s, false);
        assert!(
            v3.contains("vers=3,nolock,mountproto=tcp,mountport=20048"),
            "{v3}"
        );
        assert!(
            v3.starts_with("addr=127.0.0.1,port=2050,proto=tcp,soft,timeo=50,retrans=1"),
            "{v3}"
        );
        let v4 = nfs_options(&l, s, true);
        assert!(v4.contains("vers=4,clientaddr=127.0.0.1"), "{v4}");
    }

    #[test]
    fn mount_errors_say_what_went_wrong() {
        let l = Location::parse("smb://anna@nas/s/x.lbi").unwrap();
        let msg = |e, pw| mount_error(&l, e, pw, "SMB 3.1.1").to_string();
        assert_eq!(
            msg(Errno::EACCES, true),
            "smb://anna@nas/s/x.lbi: wrong user name or password"
        );
        assert!(msg(Errno::EACCES, false).contains("permission denied"));
        assert!(msg(Errno::ENOENT, true).ends_with("not found"));
        assert!(msg(Errno::EHOSTDOWN, true).contains("does not answer"));
        assert!(msg(Errno::EOPNOTSUPP, true).contains("SMB 3.1.1"));
    }

    #[test]
    fn host_key_pins_match_with_or_without_the_prefix() {
        assert!(pin_matches("SHA256:abc", "SHA256:abc"));
        assert!(pin_matches("abc", "SHA256:abc"));
        assert!(!pin_matches("SHA256:abd", "SHA256:abc"));
        assert!(!pin_matches("", "SHA256:"));
    }
}
