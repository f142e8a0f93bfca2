//! TLS to the camera: trust on first use, pinned per camera.
//!
//! The camera's certificate is self-signed by a per-camera CA and never names the IP, so the
//! usual chain/hostname checks cannot pass. Instead the SHA-256 of the leaf certificate is
//! pinned per camera id (UDN or serial) in `<data_dir>/camera-pins.json`:
//!
//! * first connection to an id: pin and log the fingerprint;
//! * same fingerprint: accept; the handshake signature is still checked against the leaf's
//!   key, so a peer must hold the pinned key, not just replay the certificate;
//! * another fingerprint: refuse with CERTIFICATE_CHANGED until the user accepts
//!   ([`Trust::accept`]), which drops the pin so the next connection pins afresh.
//!
//! When the id is not known yet (a manual address), the handshake is accepted and the leaf
//! remembered; the client checks it against the pin of the id the camera then reports
//! (`deviceinformation`) before it trusts the link ([`PinningVerifier::learned`]).
//! `--camera-insecure` skips pinning (signatures are still checked).
//!
//! ureq 3's `TlsConfig` takes no custom verifier, so [`PinningConnector`] wraps the TCP
//! transport in rustls itself (the same shape as ureq's own `RustlsConnector`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use serde::{Deserialize, Serialize};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use crate::protocol::{ApiError, ErrorCode, ErrorDetails};
use crate::util::atomic_write;

/// SHA-256 of a DER certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }

    pub fn parse(hex: &str) -> Option<Fingerprint> {
        let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    /// `AB:CD:…`, the form browsers show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

#[derive(Default, Serialize, Deserialize)]
struct PinFile {
    #[serde(default)]
    pins: BTreeMap<String, String>,
}

/// A refused certificate, kept so the error can say which camera and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub id: String,
    pub pinned: Fingerprint,
    pub presented: Fingerprint,
}

impl Rejection {
    pub fn to_error(&self) -> ApiError {
        ApiError::new(
            ErrorCode::CertificateChanged,
            format!(
                "the camera's certificate changed (camera {}; pinned {}, now {}); if you reset \
                 or replaced the camera, accept the new certificate",
                self.id, self.pinned, self.presented
            ),
        )
        .with_details(ErrorDetails::Certificate {
            uuid: self.id.clone(),
            pinned: self.pinned.to_string(),
            presented: self.presented.to_string(),
        })
    }
}

/// The pin store plus policy, shared by every connection to every camera.
pub struct Trust {
    path: Option<PathBuf>,
    insecure: bool,
    provider: Arc<CryptoProvider>,
    pins: Mutex<BTreeMap<String, Fingerprint>>,
    last_rejection: Mutex<Option<Rejection>>,
}

impl Trust {
    /// Loads `<data_dir>/camera-pins.json` (a missing or unreadable file starts empty, logged).
    pub fn load(data_dir: &std::path::Path, insecure: bool) -> Arc<Trust> {
        let path = data_dir.join("camera-pins.json");
        let mut pins = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<PinFile>(&bytes) {
                Ok(file) => {
                    for (id, hex) in file.pins {
                        match Fingerprint::parse(&hex) {
                            Some(fp) => {
                                pins.insert(id, fp);
                            }
                            None => log::warn!("camera-pins.json: bad fingerprint for {id}"),
                        }
                    }
                }
                Err(e) => log::warn!("{}: unreadable, starting empty: {e}", path.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("{}: {e}", path.display()),
        }
        Arc::new(Trust {
            path: Some(path),
            insecure,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            pins: Mutex::new(pins),
            last_rejection: Mutex::new(None),
        })
    }

    /// A store that lives in memory only (tests, demo).
    pub fn ephemeral(insecure: bool) -> Arc<Trust> {
        Arc::new(Trust {
            path: None,
            insecure,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            pins: Mutex::new(BTreeMap::new()),
            last_rejection: Mutex::new(None),
        })
    }

    pub fn insecure(&self) -> bool {
        self.insecure
    }

    pub fn pinned(&self, id: &str) -> Option<Fingerprint> {
        lock(&self.pins).get(id).copied()
    }

    /// The last refusal, if any (cleared when read).
    pub fn take_rejection(&self) -> Option<Rejection> {
        lock(&self.last_rejection).take()
    }

    pub fn last_rejection(&self) -> Option<Rejection> {
        lock(&self.last_rejection).clone()
    }

    /// Checks `presented` against the pin of every id in `ids`; pins the ids that had none.
    pub fn check_and_pin(&self, ids: &[&str], presented: Fingerprint) -> Result<(), Rejection> {
        if self.insecure {
            return Ok(());
        }
        let mut changed = false;
        {
            let mut pins = lock(&self.pins);
            for id in ids.iter().filter(|id| !id.is_empty()) {
                match pins.get(*id) {
                    Some(pinned) if *pinned == presented => {}
                    Some(pinned) => {
                        let r = Rejection {
                            id: id.to_string(),
                            pinned: *pinned,
                            presented,
                        };
                        *lock(&self.last_rejection) = Some(r.clone());
                        return Err(r);
                    }
                    None => {
                        log::info!("camera {id}: pinned certificate SHA-256 {presented}");
                        pins.insert(id.to_string(), presented);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            let _ = self.save(); // logged; the pin holds in memory
        }
        Ok(())
    }

    /// The user accepts the camera's new certificate: drop the pin (the next connection pins
    /// what it sees). `None` = the camera of the last refusal. An id with no pin is an error
    /// (it used to answer success for any uuid, so a typo looked like it worked). `Ok` carries
    /// the id, and a warning when the change could not be saved (it holds until a restart).
    pub fn accept(&self, id: Option<&str>) -> Result<(String, Option<String>), ApiError> {
        let id = match id {
            Some(id) => id.to_string(),
            None => match self.last_rejection() {
                Some(r) => r.id,
                None => {
                    return Err(ApiError::invalid(
                        "no camera certificate is waiting to be accepted",
                    ))
                }
            },
        };
        // The same camera is pinned under each of its ids (UDN, serial): clear them all.
        {
            let mut pins = lock(&self.pins);
            match pins.remove(&id) {
                Some(old) => pins.retain(|_, fp| *fp != old),
                None => {
                    let known: Vec<&str> = pins.keys().map(String::as_str).collect();
                    let shown: String = id.chars().filter(|c| !c.is_control()).take(64).collect();
                    return Err(ApiError::invalid(format!(
                        "No certificate is pinned for camera {shown:?} (pinned: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            }
        }
        {
            let mut last = lock(&self.last_rejection);
            if last.as_ref().map(|r| r.id == id).unwrap_or(false) {
                *last = None;
            }
        }
        let warning = self.save().err().map(|e| {
            format!("The change could not be saved ({e}); it holds until the service restarts")
        });
        log::info!("camera {id}: certificate pin cleared by the user; next connection re-pins");
        Ok((id, warning))
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = PinFile {
            pins: lock(&self.pins)
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        atomic_write(path, &bytes).inspect_err(|e| {
            log::error!("{}: cannot save certificate pins: {e}", path.display());
        })
    }
}

use crate::sys::lock;

/// Verifies one camera's certificate against [`Trust`]. One per client session.
#[derive(Debug)]
pub struct PinningVerifier {
    trust: Arc<Trust>,
    /// The camera id, once known (strict mode); `None` = learn the leaf, check it later.
    id: Mutex<Option<String>>,
    /// The leaf seen by the last handshake.
    seen: Mutex<Option<Fingerprint>>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl PinningVerifier {
    pub fn new(trust: Arc<Trust>, id: Option<String>) -> Arc<PinningVerifier> {
        Arc::new(PinningVerifier {
            trust,
            id: Mutex::new(id),
            seen: Mutex::new(None),
        })
    }

    /// The fingerprint of the leaf of the last handshake (learn mode).
    pub fn learned(&self) -> Option<Fingerprint> {
        *lock(&self.seen)
    }

    /// From now on, verify strictly against this camera's pin.
    pub fn set_id(&self, id: String) {
        *lock(&self.id) = Some(id);
    }

    pub fn trust(&self) -> &Arc<Trust> {
        &self.trust
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of(end_entity.as_ref());
        *lock(&self.seen) = Some(fp);
        let id = lock(&self.id).clone();
        match id {
            Some(id) => match self.trust.check_and_pin(&[&id], fp) {
                Ok(()) => Ok(ServerCertVerified::assertion()),
                Err(r) => {
                    log::warn!(
                        "camera {}: certificate changed (pinned {}, presented {}); refusing",
                        r.id,
                        r.pinned,
                        r.presented
                    );
                    Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::ApplicationVerificationFailure,
                    ))
                }
            },
            // Learn mode: the client checks the pin once the camera has said who it is.
            None => Ok(ServerCertVerified::assertion()),
        }
    }

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
            &self.trust.provider.signature_verification_algorithms,
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
            &self.trust.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Builds the rustls client config around a verifier.
pub fn client_config(verifier: Arc<PinningVerifier>) -> Result<Arc<ClientConfig>, ApiError> {
    let provider = verifier.trust.provider.clone();
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| ApiError::system(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A ureq connector that wraps the TCP transport in rustls with our verifier.
pub struct PinningConnector {
    config: Arc<ClientConfig>,
}

impl PinningConnector {
    pub fn new(config: Arc<ClientConfig>) -> Self {
        PinningConnector { config }
    }
}

impl fmt::Debug for PinningConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinningConnector").finish()
    }
}

impl<In: Transport> Connector<In> for PinningConnector {
    type Out = Either<In, PinnedTls>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::ConnectionFailed);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = ServerName::try_from(host).map_err(|_| ureq::Error::Tls("invalid host name"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(PinnedTls {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// The TLS transport [`PinningConnector`] makes.
pub struct PinnedTls {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for PinnedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedTls").finish()
    }
}

impl Transport for PinnedTls {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_through_hex() {
        let fp = Fingerprint::of(b"certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), 32 * 3 - 1);
        assert_eq!(Fingerprint::parse(&text), Some(fp));
        assert_eq!(Fingerprint::parse("zz"), None);
    }

    #[test]
    fn first_use_pins_then_a_change_is_refused_until_accepted() {
        let dir = std::env::temp_dir().join(format!("skylapse-pins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = Fingerprint::of(b"a");
        let b = Fingerprint::of(b"b");
        let trust = Trust::load(&dir, false);
        trust.check_and_pin(&["uuid:1", "serial:9"], a).unwrap();
        trust.check_and_pin(&["uuid:1"], a).unwrap();
        // Survives a restart (the file was written).
        let trust = Trust::load(&dir, false);
        assert_eq!(trust.pinned("serial:9"), Some(a));
        let r = trust.check_and_pin(&["uuid:1"], b).unwrap_err();
        assert_eq!((r.pinned, r.presented), (a, b));
        let e = r.to_error();
        assert_eq!(e.code, ErrorCode::CertificateChanged);
        assert!(e.message.contains("accept the new certificate"), "{e}");
        assert_eq!(trust.accept(None).unwrap(), ("uuid:1".to_string(), None));
        // Regression: the serial alias kept the old pin, so the re-pin was refused again.
        assert_eq!(trust.pinned("serial:9"), None);
        trust.check_and_pin(&["uuid:1", "serial:9"], b).unwrap();
        assert_eq!(trust.pinned("uuid:1"), Some(b));
        // Insecure mode checks nothing.
        assert!(Trust::ephemeral(true).check_and_pin(&["uuid:1"], a).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn accepting_a_camera_that_has_no_pin_is_an_error() {
        // Regression (issue 9, item 8): accept_camera_certificate answered success for any
        // uuid, so a mistyped one looked as if it had worked.
        let trust = Trust::ephemeral(false);
        trust
            .check_and_pin(&["uuid:1"], Fingerprint::of(b"a"))
            .unwrap();
        let e = trust.accept(Some("uuid:typo")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameter);
        assert!(
            e.message.contains("uuid:typo") && e.message.contains("uuid:1"),
            "{e}"
        );
        assert_eq!(
            trust.pinned("uuid:1"),
            Some(Fingerprint::of(b"a")),
            "untouched"
        );
        let e = Trust::ephemeral(false).accept(None).unwrap_err();
        assert!(e.message.contains("waiting"), "{e}");
        assert_eq!(trust.accept(Some("uuid:1")).unwrap().0, "uuid:1");
        assert!(trust.accept(Some("uuid:1")).is_err(), "cleared once");
    }
}
