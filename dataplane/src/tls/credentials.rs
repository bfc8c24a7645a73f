//! The proxy's own identity material: the in-memory workload key and its CSR, and the
//! certificate the controller issued for it, checked before it is trusted (`Credentials`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use weft_common::ca_api::CertificateResponse;
use weft_common::spiffe::SpiffeId;
use x509_parser::certificate::X509Certificate;

use super::TlsError;
use super::verify::{spiffe_ids, trust_anchors, verify_chain};

/// An ECDSA P-256 key generated in memory. It is never serialized anywhere but into the
/// rustls config: a key that never touches disk cannot be copied off the node.
pub struct WorkloadKey {
    pair: KeyPair,
}

impl fmt::Debug for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // rcgen's Debug elides the secret too; say only what kind of key this is.
        f.write_str("WorkloadKey(ECDSA P-256)")
    }
}

impl WorkloadKey {
    pub fn generate() -> Result<Self, TlsError> {
        let pair = KeyPair::generate().map_err(TlsError::KeyGeneration)?;
        Ok(Self { pair })
    }

    /// A PEM CSR for this key. Its subject and SANs are empty on purpose: the controller
    /// ignores them and signs the identity the ServiceAccount token proves, so anything put
    /// here would only suggest otherwise.
    pub fn csr_pem(&self) -> Result<String, TlsError> {
        let mut params = CertificateParams::default();
        // rcgen's default subject is "CN=rcgen self signed cert"; leave it empty instead.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .serialize_request(&self.pair)
            .and_then(|csr| csr.pem())
            .map_err(TlsError::Csr)
    }

    /// The private key for rustls (PKCS#8 DER).
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pair.serialize_der()))
    }

    /// The raw public key (the uncompressed EC point), as in a certificate's
    /// subjectPublicKey bit string.
    pub fn public_key_raw(&self) -> &[u8] {
        self.pair.public_key_raw()
    }
}

/// A checked certificate for a `WorkloadKey`: what the TLS configs are built from.
#[derive(Debug)]
pub struct Credentials {
    /// Leaf first, then intermediates (no root): what the proxy presents.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The roots peers' chains are verified against.
    pub trust_bundle: Vec<CertificateDer<'static>>,
    /// Who the leaf says this proxy is.
    pub spiffe_id: SpiffeId,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            trust_bundle: self.trust_bundle.clone(),
            spiffe_id: self.spiffe_id.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }
}

impl Credentials {
    /// Checks the controller's answer to a CSR for `key` and keeps it. Refused: PEM that does
    /// not parse, an empty chain or bundle, a leaf for another key (the controller answered
    /// someone else's request, or something in between swapped it), a leaf whose SPIFFE id
    /// is not the one the answer names, and a chain that does not verify against the bundle
    /// now, for both server and client use (the proxy is both; a certificate peers would
    /// refuse is better refused here, with a clear message, than in every handshake).
    pub fn from_response(
        key: &WorkloadKey,
        response: &CertificateResponse,
    ) -> Result<Self, TlsError> {
        let chain = parse_pems("cert_chain", response.cert_chain.iter().map(String::as_str))?;
        let trust_bundle = parse_pems("trust_bundle", [response.trust_bundle.as_str()])?;
        let leaf = chain.first().ok_or(TlsError::EmptyChain)?;
        if trust_bundle.is_empty() {
            return Err(TlsError::EmptyBundle);
        }
        let answer: SpiffeId = response.spiffe_id.parse().map_err(TlsError::BadSpiffeId)?;

        let (_, parsed) =
            x509_parser::parse_x509_certificate(leaf).map_err(|err| TlsError::BadCertificate {
                what: "leaf certificate",
                reason: err.to_string(),
            })?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(TlsError::KeyMismatch);
        }
        let ids = spiffe_ids(&parsed);
        if !ids.contains(&answer) {
            return Err(match ids.into_iter().next() {
                Some(certificate) => TlsError::SpiffeIdMismatch {
                    answer: answer.to_string(),
                    certificate: certificate.to_string(),
                },
                None => TlsError::NoSpiffeId,
            });
        }
        let (not_before, not_after) = validity(&parsed);

        let anchors = trust_anchors(&trust_bundle).map_err(TlsError::BadTrustAnchor)?;
        let now = UnixTime::now();
        for (usage, eku) in [
            ("server use", webpki::KeyUsage::server_auth()),
            ("client use", webpki::KeyUsage::client_auth()),
        ] {
            verify_chain(&chain, &anchors, now, eku)
                .map_err(|source| TlsError::Untrusted { usage, source })?;
        }

        Ok(Self {
            chain,
            key: key.private_key(),
            trust_bundle,
            spiffe_id: answer,
            not_before,
            not_after,
        })
    }
}

/// Every certificate in the PEM strings, in order.
fn parse_pems<'a>(
    what: &'static str,
    pems: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    pems.into_iter()
        .flat_map(|pem| CertificateDer::pem_slice_iter(pem.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Pem { what, source })
}

/// The certificate's validity period (X.509 times are whole seconds; before 1970 reads as
/// 1970, which only matters for nonsense certificates that verification refuses anyway).
fn validity(cert: &X509Certificate<'_>) -> (SystemTime, SystemTime) {
    let at = |seconds: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    (
        at(cert.validity().not_before.timestamp()),
        at(cert.validity().not_after.timestamp()),
    )
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
