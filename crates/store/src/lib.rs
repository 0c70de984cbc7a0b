//! Network image stores: a [`Location`] (`smb://`, `nfs://`, `sftp://`, `http(s)://`) turned into
//! a local path that the rest of Lifeboat reads and writes like any file on a local drive.
//!
//! - SMB 2/3 and NFS v4/v3 are mounted with the kernel's own clients (`cifs`, `nfs`) through
//!   `mount(2)`; the password goes to the kernel in the mount data, never to a command line.
//! - SFTP is mounted with `sshfs` over OpenSSH's client, with the server's host key pinned in a
//!   private `known_hosts` ([`Access::host_key`]); an unpinned key is an error that carries the
//!   fingerprints so a front end can show them and ask.
//! - HTTP(S) is read-only: the image file (and its split volumes) is served through `vdev`'s FUSE
//!   file, backed by [`http::HttpFile`], which fetches only the ranges that are read; `https://`
//!   verifies the server's certificate always ([`tls`]: Mozilla's roots, a CA file, or a pinned
//!   certificate fingerprint).
//!
//! Before any of that, the host is resolved and its port probed with short timeouts, so link
//! down, DNS failure and a server that is gone are clear errors within seconds, not hangs.
//! [`Opened`] unmounts (or stops serving) when dropped.
//!
//! This crate knows nothing about images, jobs or front ends, and never prints or logs a
//! password ([`Secret`]).

pub mod http;
pub mod location;
pub mod mount;
pub mod net;
pub mod saved;
pub mod secret;
pub mod tls;

pub use location::{is_url, Location, Scheme, UrlError};
pub use secret::{prompt_password, read_password_file, Secret, SecretError};

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the stores of the `lifeboat` process are mounted in the booted image.
pub const STORES_DIR: &str = "/run/lifeboat/stores";

/// Why a store could not be used. Messages name the URL (never a password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(
        "{url}: no network: no interface has an address (cable unplugged, or no DHCP answer yet)"
    )]
    NoNetwork { url: String },
    #[error("{url}: cannot resolve {host}: {detail}")]
    Dns {
        url: String,
        host: String,
        detail: String,
    },
    #[error("{url}: the server does not answer: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url}: wrong user name or password")]
    WrongPassword { url: String },
    #[error("{url}: permission denied: {detail}")]
    PermissionDenied { url: String, detail: String },
    #[error("{url}: not found")]
    NotFound { url: String },
    #[error("{url}: the server answers HTTP {status} to a range request (it must answer 206 Partial Content)")]
    NoRanges { url: String, status: u16 },
    #[error(
        "{url}: no network: the link is down on {interfaces} (cable unplugged, or switch port off)"
    )]
    LinkDown { url: String, interfaces: String },
    #[error("{url}: the certificate of {host} is not trusted: it is self-signed or issued by an unknown CA; its fingerprint is {fingerprint}: give the CA's certificate (--ca-file, ca_file in a job file) or, after comparing, accept this one (the prompt, --host-key or host_key in a job file)")]
    CertUntrusted {
        url: String,
        host: String,
        fingerprint: String,
    },
    #[error("{url}: the certificate of {host} is refused: {why} (fingerprint {fingerprint})")]
    CertRefused {
        url: String,
        host: String,
        why: String,
        fingerprint: String,
    },
    #[error("{url}: the certificate of {host} does not match the pinned {pinned} (the server has {fingerprint})")]
    CertMismatch {
        url: String,
        host: String,
        pinned: String,
        fingerprint: String,
    },
    #[error("{url}: the TLS handshake with {host} failed: {detail}")]
    Handshake {
        url: String,
        host: String,
        detail: String,
    },
    #[error("{url}: {source}")]
    Trust {
        url: String,
        source: tls::TrustError,
    },
    #[error("{url}: {what}")]
    Unsupported { url: String, what: String },
    #[error("{url}: the host key of {host} is not pinned; its fingerprints are {}: accept one (the prompt, --host-key or host_key in a job file)", fingerprints.join(", "))]
    HostKeyNotPinned {
        url: String,
        host: String,
        fingerprints: Vec<String>,
    },
    #[error("{url}: the host key of {host} does not match the pinned {pinned} (the server has {})", fingerprints.join(", "))]
    HostKeyMismatch {
        url: String,
        host: String,
        pinned: String,
        fingerprints: Vec<String>,
    },
    #[error("{url}: mounting failed: {detail}")]
    Mount { url: String, detail: String },
    #[error("{url}: {what}: {source}")]
    Io {
        url: String,
        what: String,
        source: std::io::Error,
    },
    #[error("{url}: serving it as a local file: {source}")]
    Serve {
        url: String,
        source: vdev::VdevError,
    },
}

/// What a store may need besides its URL.
#[derive(Debug, Clone)]
pub struct Access {
    /// The password (SMB, SFTP). `None`: SMB as guest, SFTP with the keys in `~/.ssh`.
    pub password: Option<Secret>,
    /// The server's key to accept: for SFTP the host key fingerprint (`SHA256:…` base64), for
    /// HTTPS the SHA-256 fingerprint of its certificate (`SHA256:AB:CD:…`, [`tls::Fingerprint`]).
    pub host_key: Option<String>,
    /// HTTPS: PEM certificates trusted besides Mozilla's roots (a private CA, or a NAS's
    /// self-signed certificate).
    pub ca_file: Option<PathBuf>,
    /// An SSH private key for SFTP (else the keys in `~/.ssh`, or the password).
    pub identity_file: Option<PathBuf>,
    /// Connect and answer timeout.
    pub timeout: Duration,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            password: None,
            host_key: None,
            ca_file: None,
            identity_file: None,
            timeout: Duration::from_secs(8),
        }
    }
}

/// Whether the store will be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Read,
    Write,
}

/// Resolves the host of `loc` (DNS failure is an error of its own, quickly).
pub fn resolve(loc: &Location) -> Result<Vec<SocketAddr>, StoreError> {
    resolve_within(loc, Access::default().timeout)
}

/// Resolves the host of `loc`, giving up after `timeout` (a name server that does not answer
/// would otherwise hold the caller for the resolver's own retries).
pub fn resolve_within(loc: &Location, timeout: Duration) -> Result<Vec<SocketAddr>, StoreError> {
    let dns = |detail: String| StoreError::Dns {
        url: loc.to_string(),
        host: loc.host.clone(),
        detail,
    };
    let target = (loc.host.clone(), loc.port());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let r = target
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<SocketAddr>>());
            let _ = tx.send(r);
        })
        .map_err(|e| dns(format!("starting the resolver: {e}")))?;
    let addrs = match rx.recv_timeout(timeout) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            let text = e.to_string();
            let text = text
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&text)
                .to_string();
            return Err(dns(format!("{text}{}", net::resolver_note())));
        }
        Err(_) => {
            return Err(dns(format!(
                "no answer from the name server within {} s{}",
                timeout.as_secs(),
                net::resolver_note()
            )))
        }
    };
    if addrs.is_empty() {
        return Err(StoreError::Dns {
            url: loc.to_string(),
            host: loc.host.clone(),
            detail: "no address".into(),
        });
    }
    Ok(addrs)
}

/// Checks that the network is up, the host resolves and its port accepts a connection within
/// `timeout`; returns the address that answered.
pub fn probe(loc: &Location, timeout: Duration) -> Result<SocketAddr, StoreError> {
    let ip_literal = loc.host.parse::<std::net::IpAddr>().ok();
    if !ip_literal.is_some_and(|a| a.is_loopback()) {
        let addrs = net::addresses();
        if addrs.is_empty() {
            return Err(StoreError::NoNetwork {
                url: loc.to_string(),
            });
        }
        if let Some(down) = net::all_links_down(&addrs) {
            return Err(StoreError::LinkDown {
                url: loc.to_string(),
                interfaces: down.join(", "),
            });
        }
    }
    let addrs = resolve_within(loc, timeout)?;
    let mut last = String::new();
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(_) => return Ok(*a),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!("no answer from {a} within {} s", timeout.as_secs())
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(StoreError::Unreachable {
        url: loc.to_string(),
        detail: last,
    })
}

/// A store opened for one job: [`Opened::path`] is the local path of the URL's file (or folder).
/// Dropping it unmounts the store / stops serving it.
#[derive(Debug)]
pub struct Opened {
    path: PathBuf,
    /// The location's URL (never with a password).
    url: String,
    held: Held,
}

#[derive(Debug)]
enum Held {
    Mount(PathBuf),
    Http {
        dir: PathBuf,
        servers: Vec<vdev::Background>,
    },
}

impl Opened {
    /// The local path of the location's file (or folder).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The URL it was opened from (without any password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `text` with the local path of the location (and of files beside it: split volumes) put
    /// back as the URL, for messages.
    pub fn name_urls(&self, text: &str) -> String {
        let local = self.path.display().to_string();
        if local.is_empty() || local == "/" {
            return text.to_string();
        }
        text.replace(&local, &self.url)
    }

    /// Unmounts now, reporting a failure (dropping does the same and only logs it).
    pub fn close(mut self) -> Result<(), StoreError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), StoreError> {
        match &mut self.held {
            Held::Mount(dir) if !dir.as_os_str().is_empty() => {
                let d = std::mem::take(dir);
                mount::unmount(&d).map_err(|source| StoreError::Io {
                    url: d.display().to_string(),
                    what: "unmounting".into(),
                    source,
                })?;
                let _ = std::fs::remove_dir(&d);
            }
            Held::Http { dir, servers } => {
                for s in servers.drain(..) {
                    if let Err(e) = s.stop() {
                        log::warn!("{e}");
                    }
                }
                if !dir.as_os_str().is_empty() {
                    let _ = std::fs::remove_dir_all(std::mem::take(dir));
                }
            }
            Held::Mount(_) => {}
        }
        Ok(())
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            log::warn!("{e}");
        }
    }
}

/// A fresh, empty directory under `base` for one store.
fn fresh_dir(base: &Path, loc: &Location) -> Result<PathBuf, StoreError> {
    let io = |what: &str, source| StoreError::Io {
        url: loc.to_string(),
        what: what.to_string(),
        source,
    };
    std::fs::create_dir_all(base).map_err(|e| io(&format!("creating {}", base.display()), e))?;
    for n in 0..10_000u32 {
        let d = base.join(format!("{}-{}-{n}", loc.scheme.name(), std::process::id()));
        match std::fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&format!("creating {}", d.display()), e)),
        }
    }
    Err(io(
        "finding a free mount point",
        std::io::Error::from(std::io::ErrorKind::AlreadyExists),
    ))
}

/// Opens `loc` under `base` (normally [`STORES_DIR`]): mounts the folder that holds the URL's
/// file, or serves an HTTP file and its split volumes. A write to an HTTP location is refused.
pub fn open(
    loc: &Location,
    access: &Access,
    purpose: Purpose,
    base: &Path,
) -> Result<Opened, StoreError> {
    if purpose == Purpose::Write && loc.read_only() {
        return Err(StoreError::Unsupported {
            url: loc.to_string(),
            what: "http(s) locations are read-only: back up to smb://, nfs:// or sftp://".into(),
        });
    }
    let addr = probe(loc, access.timeout)?;
    match loc.scheme {
        Scheme::Http | Scheme::Https => open_http(loc, access, base),
        Scheme::Smb | Scheme::Nfs | Scheme::Sftp => {
            let dir = fresh_dir(base, loc)?;
            let mounted = match loc.scheme {
                Scheme::Smb => mount::smb(loc, access, addr, &dir),
                Scheme::Nfs => mount::nfs(loc, access, addr, &dir),
                _ => mount::sftp(loc, access, &dir),
            };
            match mounted {
                Ok(inner) => {
                    let path = if inner.is_empty() {
                        dir.clone()
                    } else {
                        dir.join(inner.trim_start_matches('/'))
                    };
                    log::info!("{loc} is mounted at {}", dir.display());
                    Ok(Opened {
                        path,
                        url: loc.to_string(),
                        held: Held::Mount(dir),
                    })
                }
                Err(e) => {
                    let _ = std::fs::remove_dir(&dir);
                    Err(e)
                }
            }
        }
    }
}

/// Serves `x.lbi` and its volumes `x.lbi.002`, … as read-only files in a fresh folder.
fn open_http(loc: &Location, access: &Access, base: &Path) -> Result<Opened, StoreError> {
    let name = loc.file_name().ok_or_else(|| StoreError::Unsupported {
        url: loc.to_string(),
        what: "an http location must name a file".into(),
    })?;
    let dir = fresh_dir(base, loc)?;
    let mut opened = Opened {
        path: dir.join(name),
        url: loc.to_string(),
        held: Held::Http {
            dir: dir.clone(),
            servers: Vec::new(),
        },
    };
    let first = std::sync::Arc::new(http::HttpFile::open(loc, access)?);
    serve(&mut opened, loc, &dir, name, first)?;
    for n in 2..1000u32 {
        let mut v = loc.clone();
        let vname = format!("{name}.{n:03}");
        v.path = format!("{}/{vname}", loc.dir().trim_end_matches('/'));
        match http::HttpFile::open(&v, access) {
            Ok(f) => serve(&mut opened, &v, &dir, &vname, std::sync::Arc::new(f))?,
            Err(StoreError::NotFound { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(opened)
}

fn serve(
    opened: &mut Opened,
    loc: &Location,
    dir: &Path,
    name: &str,
    file: std::sync::Arc<http::HttpFile>,
) -> Result<(), StoreError> {
    let path = dir.join(name);
    std::fs::write(&path, b"").map_err(|source| StoreError::Io {
        url: loc.to_string(),
        what: format!("creating {}", path.display()),
        source,
    })?;
    let server = vdev::mount(file, &path, name)
        .and_then(vdev::Server::spawn)
        .map_err(|source| StoreError::Serve {
            url: loc.to_string(),
            source,
        })?;
    if let Held::Http { servers, .. } = &mut opened.held {
        servers.push(server);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_a_store_file_by_its_url() {
        let o = Opened {
            path: PathBuf::from("/run/lifeboat/stores/smb-7-0/pcs/x.lbi"),
            url: "smb://anna@nas/imgs/pcs/x.lbi".into(),
            // An empty mount dir: dropping it unmounts nothing.
            held: Held::Mount(PathBuf::new()),
        };
        assert_eq!(o.url(), "smb://anna@nas/imgs/pcs/x.lbi");
        assert_eq!(
            o.name_urls("writing /run/lifeboat/stores/smb-7-0/pcs/x.lbi.002: No space left"),
            "writing smb://anna@nas/imgs/pcs/x.lbi.002: No space left"
        );
        assert_eq!(o.name_urls("/dev/sda: fine"), "/dev/sda: fine");
    }
}
