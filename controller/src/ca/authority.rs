//! `CertificateAuthority`: the mesh's signing CA and what peers trust, either a root
//! generated here or operator material loaded and checked once (`load`). Issuing lives in
//! `issue`. The value is shared by every task that issues: it is an `Arc`, and its key
//! never appears in `Debug` output or logs.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use weft_common::spiffe::SpiffeId;

use super::issue::random_serial;
use super::{CaError, load};
use weft_common::time::rfc3339;

/// A generated root is backdated so that nodes whose clocks run behind accept it at once.
const ROOT_BACKDATE: Duration = Duration::from_secs(60 * 60);
/// A generated root lives ten years (3652 days: ten years including leap days).
const ROOT_LIFETIME: Duration = Duration::from_secs(3652 * 24 * 60 * 60);

/// The mesh CA. Cheap to clone; safe to share across tasks.
#[derive(Clone)]
pub struct CertificateAuthority {
    pub(super) inner: Arc<Inner>,
}

/// What a loaded CA holds. Built only by `load::check`, so every instance has been checked.
pub(super) struct Inner {
    pub(super) trust_domain: String,
    pub(super) issuer: Issuer<'static, KeyPair>,
    /// The CA certificate and any issuers given with it (tls.crt), as PEM.
    pub(super) cert_pem: String,
    /// The CA's key, PKCS#8 PEM.
    pub(super) key_pem: String,
    /// The root(s) peers verify against, as PEM.
    pub(super) bundle_pem: String,
    /// Certificates sent after every leaf: the CA certificate and its issuers when the CA is
    /// an intermediate; empty when it is a root.
    pub(super) chain_pem: Vec<String>,
    /// The CA certificate, DER.
    pub(super) ca_der: Vec<u8>,
    pub(super) subject: String,
    pub(super) not_before: SystemTime,
    /// The earliest expiry of the CA certificate and the intermediates sent with leaves.
    pub(super) not_after: SystemTime,
}

impl CertificateAuthority {
    /// A new self-signed root (ECDSA P-256) for `trust_domain`.
    pub fn generate(trust_domain: &str) -> Result<Self, CaError> {
        check_trust_domain(trust_domain)?;
        let key = KeyPair::generate().map_err(CaError::rcgen("generating the root CA key"))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "weft root CA");
        name.push(DnType::OrganizationName, trust_domain);
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = SystemTime::now();
        params.not_before = now.checked_sub(ROOT_BACKDATE).unwrap_or(now).into();
        params.not_after = now.checked_add(ROOT_LIFETIME).unwrap_or(now).into();
        params.serial_number = Some(random_serial()?);
        let cert = params
            .self_signed(&key)
            .map_err(CaError::rcgen("signing the root CA certificate"))?;
        // Through the same checks as loaded material: a generated root and one read back
        // from disk or a Secret are then the same thing by construction.
        Self::from_pem(&cert.pem(), &key.serialize_pem(), None, trust_domain)
    }

    /// A CA from PEM in cert-manager's shape: `cert_pem` is tls.crt (the CA certificate,
    /// possibly followed by its issuers), `key_pem` tls.key (PKCS#8), `bundle_pem` ca.crt
    /// (the roots; required when the CA is an intermediate, the CA itself otherwise).
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        bundle_pem: Option<&str>,
        trust_domain: &str,
    ) -> Result<Self, CaError> {
        check_trust_domain(trust_domain)?;
        let ca = Self {
            inner: Arc::new(load::check(cert_pem, key_pem, bundle_pem, trust_domain)?),
        };
        ca.check_issues_verifiable()?;
        Ok(ca)
    }

    /// The root certificate(s) peers verify chains against, PEM.
    pub fn trust_bundle_pem(&self) -> &str {
        &self.inner.bundle_pem
    }

    /// The CA certificate, followed by its issuers if it is an intermediate, PEM (tls.crt).
    pub fn cert_pem(&self) -> &str {
        &self.inner.cert_pem
    }

    /// The CA's private key, PKCS#8 PEM (tls.key). For persisting only.
    pub fn key_pem(&self) -> &str {
        &self.inner.key_pem
    }

    /// The trust domain this CA issues identities in.
    pub fn trust_domain(&self) -> &str {
        &self.inner.trust_domain
    }

    /// The last moment a certificate issued by this CA can verify: the earliest expiry of
    /// the CA certificate and the intermediates sent with it. No leaf outlives it.
    pub fn not_after(&self) -> SystemTime {
        self.inner.not_after
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.inner.trust_domain)
            .field("subject", &self.inner.subject)
            .field("intermediates", &self.inner.chain_pem.len())
            .field("not_before", &rfc3339(self.inner.not_before))
            .field("not_after", &rfc3339(self.inner.not_after))
            .field("key", &"[redacted]")
            .finish()
    }
}

/// The trust domain goes into every SPIFFE id issued; the id parser is the one definition.
fn check_trust_domain(trust_domain: &str) -> Result<(), CaError> {
    format!("spiffe://{trust_domain}/ns/n/sa/s")
        .parse::<SpiffeId>()
        .map(|_| ())
        .map_err(|_| CaError::TrustDomain(trust_domain.to_owned()))
}
