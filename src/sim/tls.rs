//! The camera's certificates: a per-camera CA (served at `functions/ssl/cacert`) and a leaf
//! signed by it, generated with rcgen at start. The leaf can be rotated so a client that
//! pinned the old one sees a changed certificate.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct TlsMaterial {
    issuer: Issuer<'static, KeyPair>,
    pub ca_der: Vec<u8>,
    pub leaf_der: Vec<u8>,
    pub config: Arc<rustls::ServerConfig>,
    common_name: String,
    san: Vec<String>,
    rotations: u32,
}

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("certificate generation: {e}"))
}

impl TlsMaterial {
    /// A fresh CA and leaf. `san` entries that parse as IP addresses become IP SANs, others
    /// DNS names (empty by default: like the camera, the leaf does not name the IP).
    pub fn generate(common_name: &str, san: &[String]) -> io::Result<TlsMaterial> {
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Canon Camera CA");
        dn.push(DnType::OrganizationName, "Canon Inc.");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let ca_der = ca_cert.der().to_vec();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut m = TlsMaterial {
            issuer,
            ca_der,
            leaf_der: Vec::new(),
            config: Arc::new(placeholder_config()?),
            common_name: common_name.to_string(),
            san: san.to_vec(),
            rotations: 0,
        };
        m.issue_leaf()?;
        Ok(m)
    }

    /// Issues a new leaf (new key) under the same CA and swaps the server config.
    pub fn rotate_leaf(&mut self) -> io::Result<()> {
        self.rotations += 1;
        self.issue_leaf()
    }

    fn issue_leaf(&mut self) -> io::Result<()> {
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.common_name.as_str());
        params.distinguished_name = dn;
        for s in &self.san {
            match s.parse::<std::net::IpAddr>() {
                Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                Err(_) => params
                    .subject_alt_names
                    .push(SanType::DnsName(s.clone().try_into().map_err(err)?)),
            }
        }
        // Distinct serials so a rotated leaf differs even with identical fields.
        params.serial_number = Some(rcgen::SerialNumber::from(vec![
            1,
            (self.rotations >> 8) as u8,
            self.rotations as u8,
        ]));
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        let leaf_der = cert.der().to_vec();
        let chain = vec![
            CertificateDer::from(leaf_der.clone()),
            CertificateDer::from(self.ca_der.clone()),
        ];
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(err)?;
        self.leaf_der = leaf_der;
        self.config = Arc::new(config);
        Ok(())
    }
}

/// Only used until the first leaf is issued (never handed to a connection).
fn placeholder_config() -> io::Result<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec!["placeholder".to_string()]).map_err(err)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .map_err(err)
}
