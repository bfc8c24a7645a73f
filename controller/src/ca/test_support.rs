//! Test helpers: operator CAs made with rcgen, CSRs, reading certificates back with
//! x509-parser, and verifying chains the way peers will (rustls' webpki verifiers).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use weft_common::spiffe::SpiffeId;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

use super::pem::system_time;

pub const TD: &str = "cluster.local";

pub fn workload() -> SpiffeId {
    SpiffeId::new(TD, "team-a", "web")
}

/// A CA certificate made by "an operator": `cn`, valid `[now - 1 h, now + valid_for]`,
/// self-signed when `parent` is `None`.
pub fn make_ca(
    cn: &str,
    key: &KeyPair,
    parent: Option<&Issuer<'_, KeyPair>>,
    valid_for: Duration,
) -> String {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + valid_for).into();
    let cert = match parent {
        Some(parent) => params.signed_by(key, parent).unwrap(),
        None => params.self_signed(key).unwrap(),
    };
    cert.pem()
}

/// A root and an intermediate it issued, as an operator's cert-manager would hold them.
pub struct UserHierarchy {
    pub root_pem: String,
    pub intermediate_pem: String,
    pub intermediate_key_pem: String,
}

pub fn user_hierarchy() -> UserHierarchy {
    let root_key = KeyPair::generate().unwrap();
    let root_pem = make_ca(
        "test root",
        &root_key,
        None,
        Duration::from_secs(86400 * 365),
    );
    let root = Issuer::from_ca_cert_pem(&root_pem, root_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let intermediate_pem = make_ca(
        "test intermediate",
        &key,
        Some(&root),
        Duration::from_secs(86400 * 30),
    );
    UserHierarchy {
        root_pem,
        intermediate_pem,
        intermediate_key_pem: key.serialize_pem(),
    }
}

/// A CSR for a new key that asks for `sans` and the subject CN=admin.
pub fn csr(sans: Vec<SanType>) -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "admin");
    params.subject_alt_names = sans;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let csr = params.serialize_request(&key).unwrap();
    (csr.pem().unwrap(), key)
}

pub fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Runs `f` on the first certificate of `pem`.
pub fn with_cert<R>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
    let der = der(pem);
    let (rest, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(rest.is_empty());
    f(&cert)
}

/// The SANs of the first certificate of `pem`, as `URI:…`, `DNS:…`, `IP:…`.
pub fn sans(pem: &str) -> Vec<String> {
    with_cert(pem, |cert| {
        let Some(san) = cert.subject_alternative_name().unwrap() else {
            return Vec::new();
        };
        san.value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::URI(uri) => format!("URI:{uri}"),
                GeneralName::DNSName(dns) => format!("DNS:{dns}"),
                GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
                other => format!("other:{other:?}"),
            })
            .collect()
    })
}

pub fn not_after(pem: &str) -> SystemTime {
    with_cert(pem, |cert| {
        system_time(cert.validity().not_after.timestamp())
    })
}

pub fn not_before(pem: &str) -> SystemTime {
    with_cert(pem, |cert| {
        system_time(cert.validity().not_before.timestamp())
    })
}

fn roots(bundle_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(roots)
}

fn split(chain_pem: &[String]) -> (CertificateDer<'static>, Vec<CertificateDer<'static>>) {
    let ders: Vec<_> = chain_pem.iter().map(|pem| der(pem)).collect();
    (ders[0].clone(), ders[1..].to_vec())
}

/// Verifies `chain_pem` (leaf first) as a client certificate against `bundle_pem`, as an
/// mTLS server (a proxy's inbound listener) will: path building, signatures, validity, EKU.
pub fn verify_as_client(bundle_pem: &str, chain_pem: &[String]) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(bundle_pem), provider)
        .build()
        .unwrap();
    let (leaf, intermediates) = split(chain_pem);
    verifier
        .verify_client_cert(&leaf, &intermediates, UnixTime::now())
        .map(|_| ())
}

/// Verifies `chain_pem` as a server certificate for `name` against `bundle_pem`.
pub fn verify_as_server(
    bundle_pem: &str,
    chain_pem: &[String],
    name: &str,
) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(bundle_pem), provider)
        .build()
        .unwrap();
    let (leaf, intermediates) = split(chain_pem);
    let name = ServerName::try_from(name.to_owned()).unwrap();
    verifier
        .verify_server_cert(&leaf, &intermediates, &name, &[], UnixTime::now())
        .map(|_| ())
}
