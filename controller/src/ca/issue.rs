//! Issuing: workload SVIDs for a CSR's key or for a key generated here (stock Envoy), and
//! the controller's own serving certificate. A certificate carries only what the caller
//! vouches for (the reviewed identity, the controller's names); nothing a requester wrote
//! into its CSR other than the public key reaches a certificate.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::{self, PemObject as _};
use weft_common::spiffe::SpiffeId;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer as _;

use super::load::issued_by;
use super::pem::cert_pem;
use super::{CaError, CertificateAuthority};
use weft_common::time::rfc3339;

/// Leaves start this far in the past, so peers whose clocks run a little behind accept them.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// A certificate chain just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// PEM certificates: the leaf first, then the intermediates; never the root.
    pub chain_pem: Vec<String>,
    /// The identity the leaf carries as its URI SAN.
    pub spiffe_id: SpiffeId,
    /// Validity as written in the leaf (whole seconds).
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl IssuedCert {
    /// The chain as one PEM text, leaf first (what a `tls.crt` file or an SDS secret holds).
    pub fn chain_pem_joined(&self) -> String {
        self.chain_pem.concat()
    }
}

impl CertificateAuthority {
    /// An SVID for `identity` over the public key of `csr_pem` (PKCS#10, PEM). The CSR's
    /// signature must verify (the requester holds the key); its subject, SANs and requested
    /// extensions are ignored: the identity is the caller's, from an authenticated token.
    pub fn issue_for_csr(
        &self,
        csr_pem: &str,
        identity: &SpiffeId,
        lifetime: Duration,
    ) -> Result<IssuedCert, CaError> {
        let public_key = csr_public_key(csr_pem)?;
        self.sign(
            self.workload_params(identity, lifetime)?,
            &public_key,
            identity,
        )
    }

    /// An SVID for `identity` with a new ECDSA P-256 key, returned as PKCS#8 PEM. For proxies
    /// such as stock Envoy that take their key over SDS instead of sending a CSR.
    pub fn issue_with_new_key(
        &self,
        identity: &SpiffeId,
        lifetime: Duration,
    ) -> Result<(IssuedCert, String), CaError> {
        let params = self.workload_params(identity, lifetime)?;
        let key = KeyPair::generate().map_err(CaError::rcgen("generating a workload key"))?;
        Ok((self.sign(params, &key, identity)?, key.serialize_pem()))
    }

    /// The controller's own serving certificate (xDS, certificate service, webhook): DNS and
    /// IP SANs for clients that dial it by name or address, plus `identity` as a URI SAN for
    /// proxies that check SPIFFE ids. Server auth only; a new P-256 key, PKCS#8 PEM.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
        identity: &SpiffeId,
        lifetime: Duration,
    ) -> Result<(IssuedCert, String), CaError> {
        let mut params = self.base_params(identity, lifetime)?;
        for name in dns_names {
            let name = name
                .as_str()
                .try_into()
                .map_err(|_| CaError::Name(format!("DNS name {name:?}")))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(CaError::rcgen("generating the server key"))?;
        Ok((self.sign(params, &key, identity)?, key.serialize_pem()))
    }

    /// Loading check: a certificate signed now names this CA as its issuer byte for byte and
    /// verifies with its key. rcgen re-encodes the CA's subject when it writes the issuer
    /// name; a CA whose name does not survive that would issue chains no peer can build.
    pub(super) fn check_issues_verifiable(&self) -> Result<(), CaError> {
        let probe_key = KeyPair::generate().map_err(CaError::rcgen("generating a probe key"))?;
        let probe_id = SpiffeId::new(self.trust_domain(), "weft-system", "ca-probe");
        let issued = self.sign(
            self.workload_params(&probe_id, CLOCK_SKEW)?,
            &probe_key,
            &probe_id,
        )?;
        let leaf_der = issued.chain_pem.first().and_then(|pem| pem_cert_der(pem));
        let ca_ok = X509Certificate::from_der(&self.inner.ca_der);
        let leaf_ok = leaf_der.as_deref().map(X509Certificate::from_der);
        let verifies = match (ca_ok, leaf_ok) {
            (Ok((_, ca)), Some(Ok((_, leaf)))) => issued_by(&leaf, &ca),
            _ => false,
        };
        if verifies {
            return Ok(());
        }
        Err(CaError::invalid(
            "tls.crt",
            format!(
                "certificates signed by this CA ({}) would not verify against it (its subject \
                 name does not survive re-encoding); re-issue the CA with a UTF8String or \
                 PrintableString subject",
                self.inner.subject
            ),
        ))
    }

    /// Parameters of a workload SVID: client and server auth, the identity as the only SAN.
    fn workload_params(
        &self,
        identity: &SpiffeId,
        lifetime: Duration,
    ) -> Result<CertificateParams, CaError> {
        let mut params = self.base_params(identity, lifetime)?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        Ok(params)
    }

    /// What every leaf has: not a CA, the identity as a URI SAN, a random serial, a validity
    /// window inside the CA's.
    fn base_params(
        &self,
        identity: &SpiffeId,
        lifetime: Duration,
    ) -> Result<CertificateParams, CaError> {
        if identity.trust_domain != self.inner.trust_domain {
            return Err(CaError::ForeignTrustDomain {
                id: identity.clone(),
                trust_domain: self.inner.trust_domain.clone(),
            });
        }
        let (not_before, not_after) = self.validity(lifetime)?;
        let mut params = CertificateParams::default();
        // The subject is informational (SPIFFE puts the identity in the URI SAN); the trust
        // domain says whose mesh issued it to anyone reading the certificate.
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, self.inner.trust_domain.as_str());
        params.distinguished_name = name;
        let uri = identity
            .to_string()
            .try_into()
            .map_err(|_| CaError::Name(format!("SPIFFE id {identity}")))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        Ok(params)
    }

    /// `[now − skew, now + lifetime]`, clipped to the CA's own validity, in whole seconds
    /// (what the certificate can express, so what callers are told is what peers see).
    fn validity(&self, lifetime: Duration) -> Result<(SystemTime, SystemTime), CaError> {
        if lifetime.is_zero() {
            return Err(CaError::Lifetime("the requested lifetime is zero".into()));
        }
        let now = SystemTime::now();
        let not_before = now
            .checked_sub(CLOCK_SKEW)
            .unwrap_or(now)
            .max(self.inner.not_before);
        let not_after = now
            .checked_add(lifetime)
            .unwrap_or(self.inner.not_after)
            .min(self.inner.not_after);
        let (not_before, not_after) = (whole_seconds(not_before), whole_seconds(not_after));
        if not_after <= now {
            return Err(CaError::Lifetime(format!(
                "the CA ({}) expired at {}",
                self.inner.subject,
                rfc3339(self.inner.not_after)
            )));
        }
        Ok((not_before, not_after))
    }

    fn sign(
        &self,
        params: CertificateParams,
        public_key: &impl PublicKeyData,
        identity: &SpiffeId,
    ) -> Result<IssuedCert, CaError> {
        let leaf = params
            .signed_by(public_key, &self.inner.issuer)
            .map_err(CaError::rcgen("signing a certificate"))?;
        let mut chain_pem = Vec::with_capacity(1 + self.inner.chain_pem.len());
        chain_pem.push(cert_pem(leaf.der()));
        chain_pem.extend(self.inner.chain_pem.iter().cloned());
        Ok(IssuedCert {
            chain_pem,
            spiffe_id: identity.clone(),
            not_before: params.not_before.into(),
            not_after: params.not_after.into(),
        })
    }
}

/// 16 random bytes from the system's secure random source (ring, through rustls), made
/// positive and without a leading zero byte so the DER INTEGER is always 16 bytes.
/// Serials must be unpredictable and unique per CA; a counter or a hash of the key is not.
pub(super) fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| CaError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The public key of a CSR whose signature verifies. Parsed with x509-parser rather than
/// rcgen's `CertificateSigningRequestParams`, which refuses requests carrying extensions or
/// subject attributes it cannot model: those are ignored here anyway, and refusing them
/// would fail clients for what they put in fields that do not count.
fn csr_public_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo, CaError> {
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|err| {
        CaError::Csr(match err {
            pem::Error::NoItemsFound => {
                "no PEM CERTIFICATE REQUEST block (expected -----BEGIN CERTIFICATE REQUEST-----)"
                    .to_owned()
            }
            err => format!("not valid PEM: {err}"),
        })
    })?;
    let csr = match X509CertificationRequest::from_der(der.as_ref()) {
        Ok(([], csr)) => csr,
        Ok(_) => return Err(CaError::Csr("trailing bytes after the request".into())),
        Err(err) => return Err(CaError::Csr(format!("not a PKCS#10 request: {err}"))),
    };
    csr.verify_signature().map_err(|_| {
        CaError::Csr("its signature does not verify with the public key it carries".into())
    })?;
    SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw).map_err(|_| {
        CaError::Csr(
            "its public key type is not supported (use ECDSA P-256 or P-384, RSA or Ed25519)"
                .into(),
        )
    })
}

/// The DER of a PEM certificate this module wrote.
fn pem_cert_der(text: &str) -> Option<Vec<u8>> {
    rustls_pki_types::CertificateDer::from_pem_slice(text.as_bytes())
        .ok()
        .map(|der| der.to_vec())
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => UNIX_EPOCH + Duration::from_secs(since.as_secs()),
        // Before 1970: only a test clock could get here; keep it as it is.
        Err(_) => time,
    }
}
