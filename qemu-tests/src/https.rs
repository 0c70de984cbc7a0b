//! A real HTTPS server for the tests: certificates made by `openssl` at test time (a test CA and
//! a server certificate it signs, a self-signed one, one for another name, an expired one) and
//! `nginx` on loopback with a private configuration, one port per certificate, range requests
//! and keep-alive as nginx does them, and an access log that counts the body bytes sent.
//!
//! The server certificate names `localhost`, `127.0.0.1` and `10.0.2.2` (the host as a QEMU guest
//! on user networking sees it), so the same server serves host tests and the booted image.

use crate::fixture::{path, require, run};
use anyhow::{bail, Context, Result};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The certificates of one test run, as PEM files in `dir`.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    /// The test CA's certificate (what `--ca-file` gets).
    pub ca: PathBuf,
    /// Signed by the CA, for localhost, 127.0.0.1 and 10.0.2.2.
    pub server: (PathBuf, PathBuf),
    /// Self-signed (`openssl req -x509`, as a NAS makes its own), for the same names.
    pub self_signed: (PathBuf, PathBuf),
    /// Signed by the CA, for `nas.example` only.
    pub other_name: (PathBuf, PathBuf),
    /// Signed by the CA, valid from 2020-01-01 to 2020-02-01.
    pub expired: (PathBuf, PathBuf),
}

const NAMES: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:10.0.2.2";

impl Pki {
    /// Makes the CA and the certificates in `dir` (EC P-256 keys: fast).
    pub fn make(dir: &Path) -> Result<Pki> {
        require("openssl")?;
        std::fs::create_dir_all(dir)?;
        let p = |n: &str| dir.join(n);
        let ca = p("ca.pem");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=Lifeboat test CA",
                "-keyout",
                path(&p("ca.key"))?,
                "-out",
                path(&ca)?,
            ],
        )?;
        let signed =
            |name: &str, ext: &str, dates: Option<(&str, &str)>| -> Result<(PathBuf, PathBuf)> {
                let (key, csr, cert, extfile) = (
                    p(&format!("{name}.key")),
                    p(&format!("{name}.csr")),
                    p(&format!("{name}.pem")),
                    p(&format!("{name}.ext")),
                );
                run(
                    "openssl",
                    &[
                        "req",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-subj",
                        &format!("/CN={name}"),
                        "-keyout",
                        path(&key)?,
                        "-out",
                        path(&csr)?,
                    ],
                )?;
                std::fs::write(
                    &extfile,
                    format!("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n{ext}\n"),
                )?;
                match dates {
                    None => {
                        run(
                            "openssl",
                            &[
                                "x509",
                                "-req",
                                "-in",
                                path(&csr)?,
                                "-CA",
                                path(&ca)?,
                                "-CAkey",
                                path(&p("ca.key"))?,
                                "-CAcreateserial",
                                "-days",
                                "30",
                                "-extfile",
                                path(&extfile)?,
                                "-out",
                                path(&cert)?,
                            ],
                        )?;
                    }
                    Some((start, end)) => {
                        // `openssl ca` is the tool that sets arbitrary validity dates.
                        let db = p("ca-db");
                        std::fs::create_dir_all(&db)?;
                        std::fs::write(db.join("index.txt"), "")?;
                        std::fs::write(db.join("serial"), "1000\n")?;
                        let conf = p("ca.cnf");
                        std::fs::write(
                            &conf,
                            format!(
                                "[ca]\ndefault_ca=test\n[test]\ndir={}\ndatabase=$dir/index.txt\n\
                             serial=$dir/serial\nnew_certs_dir=$dir\ndefault_md=sha256\n\
                             policy=any\nunique_subject=no\n[any]\ncommonName=supplied\n",
                                db.display()
                            ),
                        )?;
                        run(
                            "openssl",
                            &[
                                "ca",
                                "-batch",
                                "-config",
                                path(&conf)?,
                                "-cert",
                                path(&ca)?,
                                "-keyfile",
                                path(&p("ca.key"))?,
                                "-in",
                                path(&csr)?,
                                "-out",
                                path(&cert)?,
                                "-startdate",
                                start,
                                "-enddate",
                                end,
                                "-extfile",
                                path(&extfile)?,
                                "-notext",
                            ],
                        )?;
                    }
                }
                Ok((cert, key))
            };
        let server = signed("server", NAMES, None)?;
        let other_name = signed("other", "subjectAltName=DNS:nas.example", None)?;
        let expired = signed(
            "expired",
            NAMES,
            Some(("20200101000000Z", "20200201000000Z")),
        )?;
        let self_signed = (p("self.pem"), p("self.key"));
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=nas",
                "-addext",
                NAMES,
                "-keyout",
                path(&self_signed.1)?,
                "-out",
                path(&self_signed.0)?,
            ],
        )?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca,
            server,
            self_signed,
            other_name,
            expired,
        })
    }

    /// The SHA-256 fingerprint of a certificate as openssl prints it (`AB:CD:…`).
    pub fn fingerprint(cert: &Path) -> Result<String> {
        let out = run(
            "openssl",
            &[
                "x509",
                "-noout",
                "-fingerprint",
                "-sha256",
                "-in",
                path(cert)?,
            ],
        )?;
        let fp = out
            .trim()
            .rsplit_once('=')
            .map(|(_, f)| f.to_string())
            .context("no fingerprint in openssl's output")?;
        Ok(fp)
    }
}

/// What one nginx port serves.
#[derive(Debug, Clone)]
pub enum Listen {
    /// TLS with this (certificate, key); `tls12_only` limits it to TLS 1.2.
    Tls {
        cert: (PathBuf, PathBuf),
        tls12_only: bool,
    },
    /// Plain HTTP.
    Plain,
}

/// An nginx serving `root` read-only on loopback; stopped when dropped.
#[derive(Debug)]
pub struct Nginx {
    child: Option<Child>,
    /// The port of each [`Listen`], in order.
    pub ports: Vec<u16>,
    log: PathBuf,
    dir: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Nginx {
    /// Starts nginx (as root: its workers also run as root, to read test folders) with one
    /// server per entry of `listen`, all serving `root`; waits until every port answers.
    pub fn start(root: &Path, listen: &[Listen], state: &Path) -> Result<Nginx> {
        let nginx = require("nginx")?;
        std::fs::create_dir_all(state.join("tmp"))?;
        let log = state.join("access.log");
        let mut servers = String::new();
        let mut ports = Vec::new();
        for l in listen {
            let port = free_port()?;
            ports.push(port);
            let tls = match l {
                Listen::Plain => String::new(),
                Listen::Tls { cert, tls12_only } => format!(
                    "ssl_certificate {}; ssl_certificate_key {}; ssl_protocols {};",
                    cert.0.display(),
                    cert.1.display(),
                    if *tls12_only {
                        "TLSv1.2"
                    } else {
                        "TLSv1.2 TLSv1.3"
                    }
                ),
            };
            let ssl = if matches!(l, Listen::Tls { .. }) {
                " ssl"
            } else {
                ""
            };
            servers.push_str(&format!(
                "server {{ listen 127.0.0.1:{port}{ssl}; {tls} root {}; }}\n",
                root.display()
            ));
        }
        let s = state.display();
        let conf = state.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off; master_process on; worker_processes 1; user root;\n\
                 pid {s}/nginx.pid; error_log {s}/error.log warn;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n\
                 log_format bytes '$request_uri $status $body_bytes_sent';\n\
                 access_log {} bytes;\n\
                 client_body_temp_path {s}/tmp; proxy_temp_path {s}/tmp; fastcgi_temp_path {s}/tmp;\n\
                 uwsgi_temp_path {s}/tmp; scgi_temp_path {s}/tmp;\n\
                 default_type application/octet-stream; keepalive_requests 100000; sendfile on;\n\
                 {servers}}}\n",
                log.display()
            ),
        )?;
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(state)
            .stdin(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let mut n = Nginx {
            child: Some(child),
            ports,
            log,
            dir: state.to_path_buf(),
        };
        let t = Instant::now();
        for port in n.ports.clone() {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(Ok(Some(st))) = n.child.as_mut().map(|c| c.try_wait()) {
                    let err = std::fs::read_to_string(state.join("error.log")).unwrap_or_default();
                    n.child = None;
                    bail!("nginx exited ({st}): {err}");
                }
                if t.elapsed() > Duration::from_secs(15) {
                    bail!("nginx does not listen on {port}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(n)
    }

    /// Body bytes sent so far, summed over the access log (one line per request).
    pub fn bytes_served(&self) -> u64 {
        self.requests().iter().map(|(_, _, bytes)| bytes).sum()
    }

    /// Waits (up to 5 s) until the access log holds `count` requests: nginx logs a request
    /// just after its answer is sent.
    pub fn wait_for_requests(&self, count: usize) -> Vec<(String, u16, u64)> {
        let t = Instant::now();
        loop {
            let r = self.requests();
            if r.len() >= count || t.elapsed() > Duration::from_secs(5) {
                return r;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// (request URI, status, body bytes) of every request logged so far.
    pub fn requests(&self) -> Vec<(String, u16, u64)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((
                    w.next()?.to_string(),
                    w.next()?.parse().ok()?,
                    w.next()?.parse().ok()?,
                ))
            })
            .collect()
    }

    /// The folder holding nginx's configuration and logs.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// Stops nginx (the master and its worker).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM to the master: it stops its worker and removes its pid file.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
