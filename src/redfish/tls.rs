//! How a BMC's certificate is trusted. BMCs ship self-signed certificates,
//! so there are three modes, and none of them is "insecure" unless asked for:
//!
//! - `Verify`: the certificate must chain to the system trust store (or a CA
//!   file) and name the address we connect to. For sites that issue BMC
//!   certificates from their own CA.
//! - `Pin` (trust on first use): the first certificate seen for a BMC is
//!   recorded by its SHA-256 fingerprint; a different one later is refused
//!   and reported. The default inside the hook.
//! - `Insecure`: no check at all; explicit only, and logged as such.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::kea::log::kea_log;

/// The trust mode for BMC certificates.
#[derive(Clone)]
pub enum TlsPolicy {
    /// Chain to these roots (system store or a CA file).
    Verify(Arc<RootCertStore>),
    /// Trust on first use, pins kept in `PinStore`.
    Pin(Arc<PinStore>),
    /// Accept any certificate.
    Insecure,
}

impl TlsPolicy {
    /// Roots from the system trust store: `SSL_CERT_FILE`, else Debian's
    /// bundle.
    pub fn system_roots() -> Result<TlsPolicy, String> {
        let path = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        TlsPolicy::ca_file(&path)
    }

    /// Roots from a PEM file of CA certificates.
    pub fn ca_file(path: &Path) -> Result<TlsPolicy, String> {
        let shown = path.display();
        let mut roots = RootCertStore::empty();
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|e| format!("CA file {shown}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("CA file {shown}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("CA file {shown}: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("CA file {shown} holds no PEM certificate"));
        }
        Ok(TlsPolicy::Verify(Arc::new(roots)))
    }

    /// A short name for logs and `bmc-status`.
    pub fn name(&self) -> &'static str {
        match self {
            TlsPolicy::Verify(_) => "verify",
            TlsPolicy::Pin(_) => "pin",
            TlsPolicy::Insecure => "insecure",
        }
    }

    /// A rustls configuration for one BMC. `pin_key` names the BMC in the
    /// pin store (its MAC inside the hook, host:port on the command line);
    /// the returned `PinCheck` tells afterwards what the pin check saw.
    pub fn client_config(&self, pin_key: &str) -> (Arc<ClientConfig>, Option<Arc<PinCheck>>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        match self {
            TlsPolicy::Verify(roots) => (
                Arc::new(
                    builder
                        .with_root_certificates(roots.clone())
                        .with_no_client_auth(),
                ),
                None,
            ),
            TlsPolicy::Pin(_) | TlsPolicy::Insecure => {
                let store = match self {
                    TlsPolicy::Pin(store) => Some(store.clone()),
                    _ => None,
                };
                let check = Arc::new(PinCheck {
                    key: pin_key.to_string(),
                    store,
                    provider,
                    mismatch: Mutex::new(None),
                });
                let cfg = builder
                    .dangerous()
                    .with_custom_certificate_verifier(check.clone())
                    .with_no_client_auth();
                (Arc::new(cfg), Some(check))
            }
        }
    }
}

/// SHA-256 fingerprint of a DER certificate, as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Pinned certificate fingerprints, one per BMC, optionally kept in a JSON
/// file (`{"<bmc>": "<sha256>"}`) so that pins survive restarts.
pub struct PinStore {
    path: Option<PathBuf>,
    pins: Mutex<BTreeMap<String, String>>,
}

/// What the pin store says about a certificate.
#[derive(Debug, PartialEq, Eq)]
pub enum PinOutcome {
    /// First sight: pinned now.
    Pinned,
    Matches,
    /// A different certificate was pinned: refuse.
    Changed {
        pinned: String,
    },
}

impl PinStore {
    /// A store that lives only as long as the process.
    pub fn in_memory() -> PinStore {
        PinStore {
            path: None,
            pins: Mutex::new(BTreeMap::new()),
        }
    }

    /// A store backed by `path`; a missing file is an empty store.
    pub fn open(path: &Path) -> Result<PinStore, String> {
        let pins = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "pin file {}: not a JSON object of fingerprints: {e}",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("pin file {}: {e}", path.display())),
        };
        Ok(PinStore {
            path: Some(path.to_path_buf()),
            pins: Mutex::new(pins),
        })
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().get(key).cloned()
    }

    /// Forgets a pin (the operator replaced the BMC's certificate).
    pub fn forget(&self, key: &str) -> Result<bool, String> {
        let mut pins = self.lock();
        let had = pins.remove(key).is_some();
        self.save(&pins)?;
        Ok(had)
    }

    /// Checks `fp` against the pin for `key`, pinning it if there is none.
    pub fn check(&self, key: &str, fp: &str) -> PinOutcome {
        let mut pins = self.lock();
        match pins.get(key) {
            Some(p) if p == fp => PinOutcome::Matches,
            Some(p) => PinOutcome::Changed { pinned: p.clone() },
            None => {
                pins.insert(key.to_string(), fp.to_string());
                if let Err(e) = self.save(&pins) {
                    kea_log!(BMC_DISCOVERY_TLS_PIN_NOT_SAVED, e, key);
                }
                kea_log!(BMC_DISCOVERY_TLS_PINNED, key, fp);
                PinOutcome::Pinned
            }
        }
    }

    fn save(&self, pins: &BTreeMap<String, String>) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(pins).unwrap_or_default();
        // Write then rename, so a crash never leaves half a pin file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text + "\n")
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("pin file {}: {e}", path.display()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.pins.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The trust-on-first-use verifier for one BMC; without a store it accepts
/// any certificate (`Insecure`). Either way the handshake signature is
/// checked.
pub struct PinCheck {
    key: String,
    store: Option<Arc<PinStore>>,
    provider: Arc<CryptoProvider>,
    /// (pinned, presented) when the certificate changed.
    mismatch: Mutex<Option<(String, String)>>,
}

impl PinCheck {
    /// The pinned and the presented fingerprints, if the check refused.
    pub fn mismatch(&self) -> Option<(String, String)> {
        self.mismatch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for PinCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinCheck({})", self.key)
    }
}

impl ServerCertVerifier for PinCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(store) = &self.store else {
            return Ok(ServerCertVerified::assertion());
        };
        let fp = fingerprint(end_entity.as_ref());
        match store.check(&self.key, &fp) {
            PinOutcome::Pinned | PinOutcome::Matches => Ok(ServerCertVerified::assertion()),
            PinOutcome::Changed { pinned } => {
                *self.mismatch.lock().unwrap_or_else(|p| p.into_inner()) = Some((pinned, fp));
                Err(rustls::Error::General(
                    "certificate differs from its pin".into(),
                ))
            }
        }
    }

    // The handshake signatures are still checked: a pinned certificate is
    // worthless if the peer need not hold its key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_store_pins_once_and_refuses_a_change() {
        let dir = std::env::temp_dir().join(format!("pins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pins.json");
        let _ = std::fs::remove_file(&path);
        let store = PinStore::open(&path).unwrap();
        assert_eq!(store.check("bmc", "AA"), PinOutcome::Pinned);
        assert_eq!(store.check("bmc", "AA"), PinOutcome::Matches);
        // Survives a restart.
        let again = PinStore::open(&path).unwrap();
        assert_eq!(
            again.check("bmc", "BB"),
            PinOutcome::Changed {
                pinned: "AA".into()
            }
        );
        assert!(again.forget("bmc").unwrap());
        assert_eq!(again.check("bmc", "BB"), PinOutcome::Pinned);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        // sha256("abc")
        assert!(fingerprint(b"abc").starts_with("BA:78:16:BF"));
        assert_eq!(fingerprint(b"abc").len(), 32 * 3 - 1);
    }
}
