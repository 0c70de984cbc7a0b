//! TLS for `https://` stores (rustls with the `ring` provider: TLS 1.3 and 1.2, no OpenSSL in
//! the static image). Certificates are always verified; there is no "insecure" mode.
//!
//! A server is trusted when one of these holds, checked in this order:
//! 1. a certificate fingerprint is pinned ([`crate::Access::host_key`]: the SHA-256 of the
//!    server's certificate, as `openssl x509 -noout -fingerprint -sha256` prints it): then
//!    exactly that certificate is accepted and any other is refused, whatever signed it;
//! 2. the certificate is byte for byte one of the certificates of the CA file
//!    ([`crate::Access::ca_file`]): a NAS's self-signed certificate given as its own CA; its
//!    host name is still checked;
//! 3. it chains to Mozilla's root certificates (compiled in from `webpki-roots`) or to a
//!    certificate of the CA file, names the host, and is within its validity period.
//!
//! A refusal keeps what the front end must show: the reason and the certificate's
//! fingerprint, so the user can compare it with the server's own and pin it ([`Rejection`]).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The SHA-256 of a certificate (its DER bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }

    /// Reads `SHA256:AB:CD:…` (this crate's form), `sha256 Fingerprint=AB:CD:…` (openssl's) or
    /// 64 bare hex digits, with or without colons, in either case.
    pub fn parse(s: &str) -> Option<Fingerprint> {
        let s = s.trim();
        let s = s.rsplit_once('=').map_or(s, |(_, v)| v);
        let s = match s.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("sha256:") => &s[7..],
            _ => s,
        };
        let hex: String = s.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a server's certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Signed by no trusted CA (self-signed, or by a private CA not in the CA file).
    UnknownIssuer,
    /// Valid, but for other names.
    Name {
        presented: Vec<String>,
    },
    /// Past its end (`not_after`, seconds since 1970) or before its start.
    Expired {
        not_after: Option<u64>,
    },
    NotYetValid {
        not_before: Option<u64>,
    },
    /// A certificate fingerprint was pinned and this is another certificate.
    PinMismatch {
        pinned: Fingerprint,
    },
    /// Anything else the verifier says (bad signature, revoked, wrong purpose, …).
    Other(String),
}

/// The certificate a server presented and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub fingerprint: Fingerprint,
    pub reason: Reason,
}

/// Why the trust settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("reading the CA file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error("{0:?} is not a SHA-256 certificate fingerprint (64 hex digits, as `openssl x509 -noout -fingerprint -sha256` prints them)")]
    Pin(String),
    #[error("setting up TLS: {0}")]
    Setup(String),
}

/// Everything a connection to one host needs: the rustls configuration and the verifier,
/// which remembers why it refused the last certificate.
#[derive(Debug)]
pub struct Trust {
    pub config: Arc<rustls::ClientConfig>,
    verifier: Arc<Verifier>,
}

impl Trust {
    /// Mozilla's roots plus the certificates of `ca_file` (PEM, one or more), or only the pinned
    /// certificate when `pin` is given.
    pub fn new(ca_file: Option<&Path>, pin: Option<&str>) -> Result<Trust, TrustError> {
        // rustls 0.23.48 deprecates the ring provider only because it has no post-quantum key
        // exchange; aws-lc-rs (which has) needs cmake and a C++ toolchain for the static musl
        // binary. TLS 1.3/1.2 with X25519 and P-256 is what NAS and web servers speak.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pin = match pin {
            Some(p) => Some(Fingerprint::parse(p).ok_or_else(|| TrustError::Pin(p.to_string()))?),
            None => None,
        };
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut own = Vec::new();
        if let Some(path) = ca_file {
            let ca_err = |detail: String| TrustError::CaFile {
                path: path.to_path_buf(),
                detail,
            };
            let meta = std::fs::metadata(path).map_err(|e| ca_err(e.to_string()))?;
            if meta.len() > 4 << 20 {
                return Err(ca_err("larger than 4 MiB".into()));
            }
            let bytes = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            for c in CertificateDer::pem_slice_iter(&bytes) {
                let c = c.map_err(|e| ca_err(format!("not PEM certificates: {e}")))?;
                own.push(c.into_owned());
            }
            if own.is_empty() {
                return Err(ca_err(
                    "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
                ));
            }
            for c in &own {
                // A leaf certificate given as its own CA may not be usable as a trust anchor;
                // it is still trusted by exact match.
                if let Err(e) = roots.add(c.clone()) {
                    log::debug!("{}: a certificate is not a CA: {e}", path.display());
                }
            }
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| TrustError::Setup(e.to_string()))?;
        let verifier = Arc::new(Verifier {
            webpki,
            own,
            pin,
            provider: provider.clone(),
            rejected: Mutex::new(None),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TrustError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        Ok(Trust {
            config: Arc::new(config),
            verifier,
        })
    }

    /// Why the last certificate was refused (taken: the next handshake starts clean).
    pub fn take_rejection(&self) -> Option<Rejection> {
        self.verifier
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

#[derive(Debug)]
struct Verifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    own: Vec<CertificateDer<'static>>,
    pin: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
    rejected: Mutex<Option<Rejection>>,
}

fn reason_of(e: &Error) -> Reason {
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => Reason::UnknownIssuer,
            CertificateError::NotValidForName => Reason::Name {
                presented: Vec::new(),
            },
            CertificateError::NotValidForNameContext { presented, .. } => Reason::Name {
                presented: presented.clone(),
            },
            CertificateError::Expired => Reason::Expired { not_after: None },
            CertificateError::ExpiredContext { not_after, .. } => Reason::Expired {
                not_after: Some(not_after.as_secs()),
            },
            CertificateError::NotValidYet => Reason::NotYetValid { not_before: None },
            CertificateError::NotValidYetContext { not_before, .. } => Reason::NotYetValid {
                not_before: Some(not_before.as_secs()),
            },
            other => {
                let text = other.to_string();
                // A self-signed certificate made as a CA (`openssl req -x509`) is refused as an
                // end entity; for the user it is an issuer nobody vouches for.
                if text.contains("CaUsedAsEndEntity") {
                    Reason::UnknownIssuer
                } else {
                    Reason::Other(text)
                }
            }
        },
        other => Reason::Other(other.to_string()),
    }
}

impl Verifier {
    fn refuse(&self, end_entity: &CertificateDer<'_>, e: Error) -> Error {
        let rejection = Rejection {
            fingerprint: Fingerprint::of(end_entity),
            reason: reason_of(&e),
        };
        *self.rejected.lock().unwrap_or_else(|p| p.into_inner()) = Some(rejection);
        e
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let fp = Fingerprint::of(end_entity);
        if let Some(pin) = self.pin {
            if fp == pin {
                return Ok(ServerCertVerified::assertion());
            }
            let rejection = Rejection {
                fingerprint: fp,
                reason: Reason::PinMismatch { pinned: pin },
            };
            *self.rejected.lock().unwrap_or_else(|p| p.into_inner()) = Some(rejection);
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        if self.own.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)
                .map_err(|e| self.refuse(end_entity, e))?;
            rustls::client::verify_server_name(&parsed, server_name)
                .map_err(|e| self.refuse(end_entity, e))?;
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| self.refuse(end_entity, e))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A day as `YYYY-MM-DD` (UTC) from seconds since 1970.
pub fn date(secs: u64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm).
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_in_every_usual_form_and_print_like_openssl() {
        let f = Fingerprint::of(b"certificate");
        let shown = f.to_string();
        assert!(
            shown.starts_with("SHA256:") && shown.len() == 7 + 95,
            "{shown}"
        );
        assert_eq!(Fingerprint::parse(&shown), Some(f));
        let openssl = format!("sha256 Fingerprint={}", &shown[7..]);
        assert_eq!(Fingerprint::parse(&openssl), Some(f));
        let bare = shown[7..].replace(':', "").to_lowercase();
        assert_eq!(Fingerprint::parse(&bare), Some(f));
        assert_eq!(Fingerprint::parse("SHA256:abc"), None);
        assert_eq!(Fingerprint::parse(&"zz".repeat(32)), None);
        assert_eq!(Fingerprint::parse("SHA256:é"), None);
    }

    #[test]
    fn dates_are_civil_utc_days() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_767_225_599), "2025-12-31");
    }

    #[test]
    fn a_missing_or_empty_ca_file_and_a_bad_pin_are_refused_with_the_facts() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = Trust::new(Some(&missing), None).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("No such file"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello\n").unwrap();
        let e = Trust::new(Some(&empty), None).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
        let e = Trust::new(None, Some("SHA256:12")).unwrap_err().to_string();
        assert!(e.contains("not a SHA-256 certificate fingerprint"), "{e}");
        assert!(Trust::new(None, None).is_ok(), "Mozilla's roots alone");
    }
}
