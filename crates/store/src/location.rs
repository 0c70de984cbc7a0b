//! The one URL form of a network location, for the CLI, job files and the TUI:
//!
//! | form | store |
//! |---|---|
//! | `smb://[DOMAIN;]user@host[:port]/share/path/x.lbi[?vers=1.0]` | SMB 2/3 (SMB 1.0 only with `vers=1.0`); no user: guest |
//! | `nfs://host[:port]/export/path/x.lbi[?vers=3]` | NFS v4, then v3 |
//! | `sftp://[user@]host[:port]/path/x.lbi` | SFTP over OpenSSH (user defaults to `root`) |
//! | `http://host[:port]/path/x.lbi`, `https://…` | read-only, by range requests |
//!
//! User names and paths may be percent-encoded (`%20`). A password never goes in a URL: a
//! `user:password@` form is refused, so it cannot end up in a process list, a log or a report.

use std::fmt;

/// The kind of store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Smb,
    Nfs,
    Sftp,
    Http,
    Https,
}

impl Scheme {
    /// The URL scheme (`smb`).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Smb => "smb",
            Scheme::Nfs => "nfs",
            Scheme::Sftp => "sftp",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL without one uses.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Smb => 445,
            Scheme::Nfs => 2049,
            Scheme::Sftp => 22,
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn from_name(s: &str) -> Option<Scheme> {
        Some(match s.to_ascii_lowercase().as_str() {
            "smb" | "cifs" => Scheme::Smb,
            "nfs" => Scheme::Nfs,
            "sftp" | "ssh" => Scheme::Sftp,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        })
    }
}

/// Why a URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error(
        "{url}: not a network location (expected smb://, nfs://, sftp://, http:// or https://)"
    )]
    Scheme { url: String },
    #[error("{url}: no host")]
    NoHost { url: String },
    #[error("{url}: bad port {port:?}")]
    Port { url: String, port: String },
    #[error("{url}: a password does not go in a URL (use the prompt or a password file)")]
    PasswordInUrl { url: String },
    #[error("{url}: {what}")]
    Malformed { url: String, what: String },
}

/// A parsed network location. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub scheme: Scheme,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// SMB domain (workgroup), from `DOMAIN;user`.
    pub domain: Option<String>,
    /// Decoded path, starting with `/` (for SMB the first component is the share).
    pub path: String,
    /// `?key=value&…` options (`vers`).
    pub options: Vec<(String, String)>,
}

/// True when `s` starts like a URL of a network store (so a front end treats it as one and not
/// as a local path).
pub fn is_url(s: &str) -> bool {
    s.split_once("://")
        .is_some_and(|(scheme, _)| Scheme::from_name(scheme).is_some())
}

fn decode(url: &str, s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UrlError::Malformed {
                    url: url.to_string(),
                    what: format!("bad percent escape in {s:?}"),
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).map_err(|_| UrlError::Malformed {
        url: url.to_string(),
        what: format!("{s:?} is not UTF-8 once decoded"),
    })?;
    if text.chars().any(|c| c == '\0' || c.is_control()) {
        return Err(UrlError::Malformed {
            url: url.to_string(),
            what: "control characters".into(),
        });
    }
    Ok(text)
}

/// A decoded path percent-encoded for a URL or an HTTP request line.
pub(crate) fn encode_path(path: &str) -> String {
    encode(path, "/")
}

fn encode(s: &str, keep: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Location {
    /// Parses a URL of the forms in the module documentation.
    pub fn parse(url: &str) -> Result<Location, UrlError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| UrlError::Scheme {
            url: url.to_string(),
        })?;
        let scheme = Scheme::from_name(scheme).ok_or_else(|| UrlError::Scheme {
            url: url.to_string(),
        })?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (mut user, mut domain) = (None, None);
        if let Some(ui) = userinfo {
            if ui.contains(':') {
                return Err(UrlError::PasswordInUrl { url: redact(url) });
            }
            let ui = decode(url, ui)?;
            let (d, u) = match ui.split_once(';').or_else(|| ui.split_once('\\')) {
                Some((d, u)) => (Some(d.to_string()), u.to_string()),
                None => (None, ui),
            };
            if scheme != Scheme::Smb && d.is_some() {
                return Err(UrlError::Malformed {
                    url: url.to_string(),
                    what: "a DOMAIN; prefix is for smb:// only".into(),
                });
            }
            if u.is_empty() {
                return Err(UrlError::Malformed {
                    url: url.to_string(),
                    what: "empty user name".into(),
                });
            }
            domain = d.filter(|d| !d.is_empty());
            user = Some(u);
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| UrlError::Malformed {
                url: url.to_string(),
                what: "unclosed [ in the host".into(),
            })?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost {
                url: url.to_string(),
            });
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c))
        {
            return Err(UrlError::Malformed {
                url: url.to_string(),
                what: format!("{host:?} is not a host name or address"),
            });
        }
        let port =
            match port {
                None | Some("") => None,
                Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    UrlError::Port {
                        url: url.to_string(),
                        port: p.to_string(),
                    }
                })?),
            };
        let path = decode(url, path)?;
        if path.split('/').any(|c| c == "..") {
            return Err(UrlError::Malformed {
                url: url.to_string(),
                what: "\"..\" in the path".into(),
            });
        }
        let mut options = Vec::new();
        for kv in query
            .unwrap_or_default()
            .split('&')
            .filter(|s| !s.is_empty())
        {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            options.push((decode(url, k)?, decode(url, v)?));
        }
        let loc = Location {
            scheme,
            host,
            port,
            user,
            domain,
            path,
            options,
        };
        if scheme == Scheme::Smb && loc.smb_share().0.is_empty() {
            return Err(UrlError::Malformed {
                url: url.to_string(),
                what: "no share: expected smb://host/share/…".into(),
            });
        }
        Ok(loc)
    }

    /// A location from the fields of a form (the TUI's "Network location"): `host` may carry
    /// `:port` (an IPv6 address goes in brackets), `path` is `share/folder` for SMB and a path
    /// for the others; the user name and path are percent-encoded here, so any character typed
    /// is taken literally. Checked like a typed URL.
    pub fn from_parts(
        scheme: Scheme,
        host: &str,
        path: &str,
        user: Option<&str>,
    ) -> Result<Location, UrlError> {
        let host = host.trim();
        if host.is_empty()
            || host.contains(['/', '@', '?', '#'])
            || host.chars().any(char::is_whitespace)
        {
            return Err(UrlError::NoHost {
                url: format!("{}://{host}", scheme.name()),
            });
        }
        let user = user
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| format!("{}@", encode(u, ";")))
            .unwrap_or_default();
        let path = path.trim().trim_start_matches('/');
        Location::parse(&format!(
            "{}://{user}{host}/{}",
            scheme.name(),
            encode_path(path)
        ))
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// The value of `?key=`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// For SMB: the share and the path inside it (`/share/a/b` → `("share", "a/b")`).
    pub fn smb_share(&self) -> (&str, &str) {
        let p = self.path.trim_start_matches('/');
        p.split_once('/').unwrap_or((p, ""))
    }

    /// The last path component (the image file name), if the path names one.
    pub fn file_name(&self) -> Option<&str> {
        self.path.rsplit('/').next().filter(|n| !n.is_empty())
    }

    /// The directory part of the path (`/a/b/x.lbi` → `/a/b`; `/x.lbi` → `/`).
    pub fn dir(&self) -> &str {
        match self.path.trim_end_matches('/').rfind('/') {
            Some(0) | None => "/",
            Some(i) => &self.path[..i],
        }
    }

    /// True for stores that can only be read (HTTP).
    pub fn read_only(&self) -> bool {
        matches!(self.scheme, Scheme::Http | Scheme::Https)
    }

    /// `host` or `[v6]`, with `:port` when it is not the default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) if p != self.scheme.default_port() => format!("{host}:{p}"),
            _ => host,
        }
    }
}

/// The URL with whatever stands between `://` and `@` removed (for messages about a URL that
/// was refused because it held a password).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}://…@{}", &url[..s], &url[a + 1..]),
        _ => url.to_string(),
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.name())?;
        if let Some(u) = &self.user {
            if let Some(d) = &self.domain {
                write!(f, "{};", encode(d, ""))?;
            }
            write!(f, "{}@", encode(u, ""))?;
        }
        write!(f, "{}{}", self.authority(), encode(&self.path, "/"))?;
        for (i, (k, v)) in self.options.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{}={}", encode(k, ""), encode(v, ""))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_builds_the_same_location_as_the_typed_url() {
        let l = Location::from_parts(Scheme::Smb, "nas:4450", "/backups/my pc", Some("WG;anna"))
            .unwrap();
        assert_eq!(
            l,
            Location::parse("smb://WG;anna@nas:4450/backups/my%20pc").unwrap()
        );
        assert_eq!(l.domain.as_deref(), Some("WG"));
        assert_eq!(l.path, "/backups/my pc");
        let n = Location::from_parts(Scheme::Nfs, "10.0.2.2", "srv/img", Some(" ")).unwrap();
        assert_eq!(n.to_string(), "nfs://10.0.2.2/srv/img");
        // A colon typed in the user name is part of the name, never a password.
        let s = Location::from_parts(Scheme::Sftp, "h", "/x", Some("a:b")).unwrap();
        assert_eq!(s.user.as_deref(), Some("a:b"));
        assert!(matches!(
            Location::from_parts(Scheme::Http, "", "/x.lbi", None),
            Err(UrlError::NoHost { .. })
        ));
        assert!(Location::from_parts(Scheme::Http, "a/b", "/x.lbi", None).is_err());
        assert!(matches!(
            Location::from_parts(Scheme::Smb, "nas", "", None),
            Err(UrlError::Malformed { .. })
        ));
    }

    #[test]
    fn smb_urls_carry_domain_user_share_and_path() {
        let l = Location::parse("smb://OFFICE;anna@nas.local/images/pcs/a%20b.lbi").unwrap();
        assert_eq!(l.scheme, Scheme::Smb);
        assert_eq!(l.domain.as_deref(), Some("OFFICE"));
        assert_eq!(l.user.as_deref(), Some("anna"));
        assert_eq!(l.host, "nas.local");
        assert_eq!(l.port(), 445);
        assert_eq!(l.smb_share(), ("images", "pcs/a b.lbi"));
        assert_eq!(l.file_name(), Some("a b.lbi"));
        assert_eq!(l.dir(), "/images/pcs");
        assert_eq!(
            l.to_string(),
            "smb://OFFICE;anna@nas.local/images/pcs/a%20b.lbi"
        );
        let guest = Location::parse("smb://10.0.2.2:4450/pub/x.lbi?vers=1.0").unwrap();
        assert_eq!(guest.user, None);
        assert_eq!(guest.port(), 4450);
        assert_eq!(guest.option("vers"), Some("1.0"));
        assert_eq!(guest.to_string(), "smb://10.0.2.2:4450/pub/x.lbi?vers=1.0");
        assert!(Location::parse("smb://host/").is_err(), "no share");
    }

    #[test]
    fn nfs_sftp_and_http_urls() {
        let n = Location::parse("nfs://filer/export/img/x.lbi").unwrap();
        assert_eq!(
            (n.scheme, n.port(), n.dir()),
            (Scheme::Nfs, 2049, "/export/img")
        );
        let s = Location::parse("sftp://bob@[fd00::1]:2222/srv/x.lbi").unwrap();
        assert_eq!(s.host, "fd00::1");
        assert_eq!(s.port(), 2222);
        assert_eq!(s.to_string(), "sftp://bob@[fd00::1]:2222/srv/x.lbi");
        let h = Location::parse("https://example.org/x.lbi").unwrap();
        assert!(h.read_only());
        assert_eq!(h.dir(), "/");
        assert_eq!(h.port(), 443);
        assert!(is_url("HTTP://a/b") && is_url("smb://a/b") && !is_url("/dev/sda"));
        assert!(!is_url("LABEL:/jobs/a.toml") && !is_url("ftp://a/b"));
    }

    #[test]
    fn passwords_in_urls_are_refused_without_being_repeated() {
        let e = Location::parse("smb://anna:s3cret@nas/share/x.lbi").unwrap_err();
        assert!(matches!(e, UrlError::PasswordInUrl { .. }));
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn malformed_urls_name_the_problem() {
        for (u, what) in [
            ("smb://", "no host"),
            ("nfs://host:99999/x", "bad port"),
            ("nfs://host:0/x", "bad port"),
            ("sftp://D;u@host/x", "smb:// only"),
            ("http://ho st/x", "not a host"),
            ("http://host/a/../b", "\"..\""),
            ("http://host/%zz", "percent"),
            ("http://host/%00", "control"),
            ("gopher://host/x", "not a network location"),
            ("http://@host/x", "empty user"),
        ] {
            let e = Location::parse(u).unwrap_err().to_string();
            assert!(e.contains(what), "{u}: {e}");
        }
    }
}
