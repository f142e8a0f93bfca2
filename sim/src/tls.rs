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
        let (leaf_der, config) = issue_leaf(&issuer, &ca_der, common_name, san, 0)?;
        Ok(TlsMaterial {
            issuer,
            ca_der,
            leaf_der,
            config,
            common_name: common_name.to_string(),
            san: san.to_vec(),
            rotations: 0,
        })
    }

    /// Issues a new leaf (new key) under the same CA and swaps the server config.
    pub fn rotate_leaf(&mut self) -> io::Result<()> {
        let (leaf_der, config) = issue_leaf(
            &self.issuer,
            &self.ca_der,
            &self.common_name,
            &self.san,
            self.rotations + 1,
        )?;
        self.rotations += 1;
        self.leaf_der = leaf_der;
        self.config = config;
        Ok(())
    }
}

/// A new leaf (new key) signed by `issuer`, and a server config presenting leaf + CA.
fn issue_leaf(
    issuer: &Issuer<'static, KeyPair>,
    ca_der: &[u8],
    common_name: &str,
    san: &[String],
    serial: u32,
) -> io::Result<(Vec<u8>, Arc<rustls::ServerConfig>)> {
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    for s in san {
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
        (serial >> 8) as u8,
        serial as u8,
    ]));
    let cert = params.signed_by(&key, issuer).map_err(err)?;
    let leaf_der = cert.der().to_vec();
    let chain = vec![
        CertificateDer::from(leaf_der.clone()),
        CertificateDer::from(ca_der.to_vec()),
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
    Ok((leaf_der, Arc::new(config)))
}
