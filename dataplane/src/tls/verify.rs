//! Checking peers: who a certificate names (`peer_identity`), chain verification against the
//! trust bundle, and the client side's server verifier, which checks the SPIFFE id instead
//! of a DNS name (`MeshServerVerifier`).
//!
//! The server side needs no code of its own: rustls's `WebPkiClientVerifier` (built in
//! `config`) verifies client chains against the bundle, and webpki's client verification
//! checks no names at all, so client certificates carrying only a URI SAN pass; who the
//! client is, is read afterwards with `peer_identity`.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use weft_common::spiffe::SpiffeId;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::TlsError;

/// Who a peer's certificate says it is: its first URI SAN that is a workload SPIFFE id.
/// `None` for a certificate that does not parse or names no such id.
pub fn peer_identity(cert: &CertificateDer<'_>) -> Option<SpiffeId> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    spiffe_ids(&parsed).into_iter().next()
}

/// Every URI SAN of the certificate that parses as a SPIFFE id, in order (none when the SAN
/// extension is missing or malformed).
pub(crate) fn spiffe_ids(cert: &X509Certificate<'_>) -> Vec<SpiffeId> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.parse().ok(),
            _ => None,
        })
        .collect()
}

/// The trust bundle as webpki trust anchors.
pub(crate) fn trust_anchors(
    bundle: &[CertificateDer<'_>],
) -> Result<Vec<TrustAnchor<'static>>, webpki::Error> {
    bundle
        .iter()
        .map(|cert| webpki::anchor_from_trusted_cert(cert).map(|anchor| anchor.to_owned()))
        .collect()
}

/// Verifies `chain` (leaf first) up to one of `anchors` at `now` for `usage`, with the ring
/// provider's signature algorithms. No name is checked.
pub(crate) fn verify_chain(
    chain: &[CertificateDer<'_>],
    anchors: &[TrustAnchor<'_>],
    now: UnixTime,
    usage: KeyUsage,
) -> Result<(), webpki::Error> {
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let (leaf, intermediates) = chain.split_first().ok_or(webpki::Error::BadDer)?;
    let leaf = EndEntityCert::try_from(leaf)?;
    leaf.verify_for_usage(
        algorithms.all,
        anchors,
        intermediates,
        now,
        usage,
        None,
        None,
    )?;
    Ok(())
}

/// The client side's check of a mesh server: its chain must verify against the trust
/// bundle, and its certificate must name a SPIFFE id in this mesh's trust domain. The DNS
/// name the connection was opened with is ignored: mesh certificates carry only a URI SAN,
/// and (as in Envoy's and Istio's SAN matching) the identity is what is checked; which
/// identity a route expects is for the caller to compare with `peer_identity`.
#[derive(Debug)]
pub struct MeshServerVerifier {
    anchors: Vec<TrustAnchor<'static>>,
    trust_domain: String,
    algorithms: WebPkiSupportedAlgorithms,
}

/// Why a server whose chain verified is still refused.
#[derive(thiserror::Error)]
enum ServerIdentityError {
    #[error("the server's certificate carries no URI SAN that is a SPIFFE id")]
    NoSpiffeId,
    #[error("the server's certificate is for {id}, outside this mesh's trust domain {expected}")]
    ForeignTrustDomain { id: SpiffeId, expected: String },
}

/// rustls shows a `CertificateError::Other` with `Debug`; make that the message.
impl fmt::Debug for ServerIdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl MeshServerVerifier {
    pub fn new(
        trust_bundle: &[CertificateDer<'_>],
        trust_domain: &str,
        provider: &CryptoProvider,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            anchors: trust_anchors(trust_bundle).map_err(TlsError::BadTrustAnchor)?,
            trust_domain: trust_domain.to_owned(),
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let leaf = EndEntityCert::try_from(end_entity).map_err(certificate_error)?;
        leaf.verify_for_usage(
            self.algorithms.all,
            &self.anchors,
            intermediates,
            now,
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(certificate_error)?;
        let refuse = |err: ServerIdentityError| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
        };
        match peer_identity(end_entity) {
            None => Err(refuse(ServerIdentityError::NoSpiffeId)),
            Some(id) if id.trust_domain != self.trust_domain => {
                Err(refuse(ServerIdentityError::ForeignTrustDomain {
                    id,
                    expected: self.trust_domain.clone(),
                }))
            }
            Some(_) => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// webpki's verdict as the rustls error (and so the TLS alert) it stands for, as rustls's
/// own verifier maps it; what has no close match keeps webpki's message.
fn certificate_error(err: webpki::Error) -> rustls::Error {
    use webpki::Error as E;
    let cert = match err {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        E::CertExpired { time, not_after } => CertificateError::ExpiredContext { time, not_after },
        E::InvalidCertValidity => CertificateError::Expired,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertRevoked => CertificateError::Revoked,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        E::RequiredEkuNotFoundContext(_) => CertificateError::InvalidPurpose,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(cert)
}
