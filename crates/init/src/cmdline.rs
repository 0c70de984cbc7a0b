//! The kernel command line options init understands.
//!
//! | option | meaning |
//! |---|---|
//! | `console=ttyS0,115200` | also run the UI on that serial line (TERM=xterm) |
//! | `lifeboat.debug` | log at debug level |
//! | `lifeboat.job=LABEL:/path/job.toml` | run that job file unattended, report next to it |
//! | `lifeboat.job=http://host/path/job.toml` (or `smb://`, `nfs://`) | run a job file from the network once an address is up; relative image names are beside it; report in `/run/lifeboat/job-report.txt` |
//! | `lifeboat.job_cert=SHA256:AB:CD:…` | the SHA-256 fingerprint of the certificate an `https://` job server must present (for a private or self-signed certificate; public ones are checked against the built-in roots) |
//! | `lifeboat.after=poweroff\|reboot\|tui\|shell` | what to do when the job ends (default `tui`) |
//! | `lifeboat.serial=shell` | run a shell instead of the UI on serial consoles (tests, technicians) |
//! | `lifeboat.media=LABEL` | volume label of the boot medium (default `LIFEBOAT`) |
//! | `lifeboat.net=dhcp\|off\|ADDR/PREFIX,GATEWAY,DNS` | network: DHCP on every wired link (default), none, or a static address (DNS servers joined by `+`) |

/// The default ISO9660 volume label of the Lifeboat medium (`cargo xtask image` uses it).
pub const DEFAULT_MEDIA_LABEL: &str = "LIFEBOAT";

/// What to do after an unattended job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    PowerOff,
    Reboot,
    Tui,
    Shell,
}

/// `lifeboat.job=LABEL:/path/job.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// File-system label of the volume holding the job file.
    pub label: String,
    /// Path of the job file inside that volume, starting with `/`.
    pub path: String,
}

/// What runs on serial consoles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialUi {
    Lifeboat,
    Shell,
}

/// The parsed command line. Unknown options are ignored (they belong to the kernel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdline {
    /// The values of every `console=` option, in order.
    pub consoles: Vec<String>,
    pub debug: bool,
    pub job: Option<JobSpec>,
    /// `lifeboat.job=` given as a network URL (`http://`, `https://`, `smb://`, `nfs://`):
    /// `lifeboat run URL` opens it. SFTP is not accepted here (its host key cannot be pinned on
    /// the command line), nor are SMB users (no password may sit in `/proc/cmdline`).
    pub job_url: Option<String>,
    /// `lifeboat.job_cert=`: the certificate fingerprint pinned for an `https://` job URL
    /// (given to `lifeboat run` as `--host-key`).
    pub job_cert: Option<String>,
    pub after: After,
    pub serial_ui: SerialUi,
    pub media_label: String,
    /// `lifeboat.net=`: how wired links are configured.
    pub net: crate::network::NetConfig,
    /// Options init recognised but could not use, as messages for the log.
    pub problems: Vec<String>,
}

impl Default for Cmdline {
    fn default() -> Self {
        Cmdline {
            consoles: Vec::new(),
            debug: false,
            job: None,
            job_url: None,
            job_cert: None,
            after: After::Tui,
            serial_ui: SerialUi::Lifeboat,
            media_label: DEFAULT_MEDIA_LABEL.to_string(),
            net: crate::network::NetConfig::Dhcp,
            problems: Vec::new(),
        }
    }
}

/// Splits a command line into words the way the kernel does: whitespace separates, double quotes
/// group (and are removed).
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}

/// Parses `/proc/cmdline`.
pub fn parse(line: &str) -> Cmdline {
    let mut c = Cmdline::default();
    for word in split(line) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        match (key, value) {
            ("console", Some(v)) => c.consoles.push(v.to_string()),
            ("lifeboat.debug", _) => c.debug = true,
            ("lifeboat.job", Some(v)) if v.contains("://") => match job_url(v) {
                Ok(u) => c.job_url = Some(u),
                Err(e) => c.problems.push(format!("ignoring lifeboat.job={v}: {e}")),
            },
            ("lifeboat.job", Some(v)) => match v.split_once(':') {
                Some((label, path))
                    if !label.is_empty() && path.starts_with('/') && path.len() > 1 =>
                {
                    c.job = Some(JobSpec {
                        label: label.to_string(),
                        path: path.to_string(),
                    })
                }
                _ => c.problems.push(format!(
                    "ignoring lifeboat.job={v}: expected LABEL:/path/job.toml"
                )),
            },
            ("lifeboat.job_cert", Some(v)) => {
                let hex: String = v
                    .trim_start_matches("SHA256:")
                    .chars()
                    .filter(|c| *c != ':')
                    .collect();
                if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    c.job_cert = Some(v.to_string());
                } else {
                    c.problems.push(format!(
                        "ignoring lifeboat.job_cert={v}: expected SHA256: and 64 hex digits"
                    ));
                }
            }
            ("lifeboat.after", Some(v)) => match v {
                "poweroff" => c.after = After::PowerOff,
                "reboot" => c.after = After::Reboot,
                "tui" => c.after = After::Tui,
                "shell" => c.after = After::Shell,
                other => c.problems.push(format!(
                    "ignoring lifeboat.after={other}: expected poweroff, reboot, tui or shell"
                )),
            },
            ("lifeboat.serial", Some(v)) => match v {
                "shell" => c.serial_ui = SerialUi::Shell,
                "tui" | "lifeboat" => c.serial_ui = SerialUi::Lifeboat,
                other => c.problems.push(format!(
                    "ignoring lifeboat.serial={other}: expected shell or tui"
                )),
            },
            ("lifeboat.media", Some(v)) if !v.is_empty() => c.media_label = v.to_string(),
            ("lifeboat.net", Some(v)) => match crate::network::parse(v) {
                Ok(n) => c.net = n,
                Err(e) => c.problems.push(format!(
                    "ignoring lifeboat.net={v}: {e} (expected dhcp, off or ADDR/PREFIX,GATEWAY,DNS)"
                )),
            },
            _ => {}
        }
    }
    c
}

/// Checks a network job URL: a scheme `lifeboat run` can open unattended, a host, no user info
/// (a password must not sit on the command line; SMB is read as guest).
pub fn job_url(v: &str) -> Result<String, String> {
    let (scheme, rest) = v.split_once("://").unwrap_or(("", v));
    if !["http", "https", "smb", "nfs"].contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(
            "a network job is read over http://, https://, smb:// (guest) or nfs://".into(),
        );
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host".into());
    }
    if authority.contains('@') {
        return Err(
            "no user name or password on the kernel command line (use a guest share or http)"
                .into(),
        );
    }
    if !rest.contains('/') || rest.ends_with('/') {
        return Err("the URL must name the job file".into());
    }
    Ok(v.to_string())
}

impl Cmdline {
    /// Whether kernel messages should stop reaching the consoles once the text UI runs on them:
    /// a printk line (an I/O error per bad sector of a failing disk, a mount note) scrolls the
    /// full-screen UI and garbles it. Kept with `lifeboat.debug`, and with
    /// `lifeboat.serial=shell` (tests and technicians read them there). The messages stay in the
    /// kernel log, init's log file and the UI's Log screen.
    pub fn quiet_console(&self) -> bool {
        !self.debug && self.serial_ui == SerialUi::Lifeboat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_honours_quotes_and_runs_of_spaces() {
        assert_eq!(
            split("  a=1   b=\"two words\"\tc \n"),
            vec![
                "a=1".to_string(),
                "b=two words".to_string(),
                "c".to_string()
            ]
        );
        assert!(split("   ").is_empty());
    }

    #[test]
    fn parse_reads_lifeboat_options_and_consoles() {
        let c = parse(
            "BOOT_IMAGE=/vmlinuz console=tty0 console=ttyS0,115200n8 quiet lifeboat.debug \
             lifeboat.job=BACKUPS:/jobs/nightly.toml lifeboat.after=poweroff lifeboat.serial=shell",
        );
        assert_eq!(c.consoles, vec!["tty0", "ttyS0,115200n8"]);
        assert!(c.debug);
        assert_eq!(
            c.job,
            Some(JobSpec {
                label: "BACKUPS".into(),
                path: "/jobs/nightly.toml".into()
            })
        );
        assert_eq!(c.after, After::PowerOff);
        assert_eq!(c.serial_ui, SerialUi::Shell);
        assert_eq!(c.media_label, DEFAULT_MEDIA_LABEL);
        assert!(c.problems.is_empty());
    }

    #[test]
    fn parse_reports_malformed_job_and_after_instead_of_guessing() {
        let c = parse("lifeboat.job=nolabel lifeboat.job=L:relative lifeboat.after=dance");
        assert_eq!(c.job, None);
        assert_eq!(c.after, After::Tui);
        assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
    }

    #[test]
    fn job_label_may_contain_spaces_when_quoted() {
        let c = parse("lifeboat.job=\"MY DISK:/a b/job.toml\"");
        assert_eq!(
            c.job,
            Some(JobSpec {
                label: "MY DISK".into(),
                path: "/a b/job.toml".into()
            })
        );
    }

    #[test]
    fn a_network_job_url_is_taken_without_users_or_sftp() {
        let c = parse("lifeboat.job=http://10.0.2.2:8080/jobs/restore.toml lifeboat.after=reboot");
        assert_eq!(c.job, None, "not mistaken for LABEL http");
        assert_eq!(
            c.job_url.as_deref(),
            Some("http://10.0.2.2:8080/jobs/restore.toml")
        );
        assert_eq!(c.after, After::Reboot);
        assert!(parse("lifeboat.job=smb://nas/pub/job.toml")
            .job_url
            .is_some());
        for bad in [
            "lifeboat.job=smb://anna@nas/pub/job.toml",
            "lifeboat.job=sftp://nas/job.toml",
            "lifeboat.job=http:///job.toml",
            "lifeboat.job=http://nas/",
        ] {
            let c = parse(bad);
            assert_eq!(c.job_url, None, "{bad}");
            assert_eq!(c.problems.len(), 1, "{bad}: {:?}", c.problems);
        }
    }

    #[test]
    fn an_https_job_server_certificate_can_be_pinned() {
        let fp = format!("SHA256:{}", ["AB"; 32].join(":"));
        let c = parse(&format!(
            "lifeboat.job=https://10.0.2.2:8443/job.toml lifeboat.job_cert={fp}"
        ));
        assert_eq!(c.job_url.as_deref(), Some("https://10.0.2.2:8443/job.toml"));
        assert_eq!(c.job_cert.as_deref(), Some(fp.as_str()));
        let c = parse("lifeboat.job_cert=SHA256:abc");
        assert_eq!(c.job_cert, None);
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
    }

    #[test]
    fn the_network_option_is_parsed_or_reported() {
        assert_eq!(parse("quiet").net, crate::network::NetConfig::Dhcp);
        assert_eq!(
            parse("lifeboat.net=off").net,
            crate::network::NetConfig::Off
        );
        let c = parse("lifeboat.net=10.0.2.15/24,10.0.2.2,10.0.2.3");
        assert_eq!(
            c.net.to_string(),
            "10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3"
        );
        let bad = parse("lifeboat.net=10.0.2.15");
        assert_eq!(bad.net, crate::network::NetConfig::Dhcp);
        assert!(
            bad.problems[0].contains("lifeboat.net=10.0.2.15"),
            "{:?}",
            bad.problems
        );
    }

    #[test]
    fn the_console_is_quieted_for_the_ui_but_not_for_debug_or_a_serial_shell() {
        assert!(parse("console=ttyS0,115200").quiet_console());
        assert!(!parse("console=ttyS0,115200 lifeboat.debug").quiet_console());
        assert!(!parse("console=ttyS0,115200 lifeboat.serial=shell").quiet_console());
    }
}
