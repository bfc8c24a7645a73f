//! The proxy's mTLS building blocks: the workload key, the certificate it gets from the
//! controller, the rustls configurations built from it, and what an inbound connection
//! speaks.
//!
//! How it fits together: the proxy generates an ECDSA P-256 key in memory (`credentials`;
//! it is never written to disk, so there is nothing on the node to steal), sends a CSR for it
//! to the controller's certificate service over the same authenticated channel as xDS, with
//! its ServiceAccount token as proof of identity (`fetch`), and checks the answer before
//! trusting it: the certificate must be for this key, carry the SPIFFE id the controller says,
//! and verify against the trust bundle. `config` turns that into a rustls server config (client
//! certificate required) and client config (server checked by SPIFFE id, not DNS name,
//! `verify`). `rotation` decides when to renew; on renewal a new `TlsConfigs` is published on
//! a watch, so new connections use the new certificate while open ones keep the one they
//! were established with. `sniff` tells TLS from plaintext HTTP/2 on an inbound connection.
//!
//! Every rustls config is built with the ring provider explicitly: the process has no
//! default provider installed, and relying on one would make the choice depend on which
//! crates happen to be linked.

mod config;
mod credentials;
mod fetch;
mod rotation;
mod sniff;
mod verify;

#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod testca;

pub use config::{TlsConfigs, server_name};
pub use credentials::{Credentials, WorkloadKey};
pub use fetch::{CertificateManager, TokenSource, request_certificate};
pub use rotation::{renew_at, retry_delay};
pub use sniff::{Transport, classify, detect};
pub use verify::{MeshServerVerifier, peer_identity};

use std::sync::Arc;

/// The crypto provider of every TLS config the proxy builds.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What went wrong getting, checking or using the proxy's certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the workload key: {0}")]
    KeyGeneration(#[source] rcgen::Error),
    #[error("cannot build the certificate signing request: {0}")]
    Csr(#[source] rcgen::Error),
    #[error("the {what} from the controller is not valid PEM: {source}")]
    Pem {
        what: &'static str,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("the controller's answer has no certificate in cert_chain")]
    EmptyChain,
    #[error("the controller's trust_bundle has no certificate")]
    EmptyBundle,
    #[error("the {what} cannot be parsed as X.509: {reason}")]
    BadCertificate { what: &'static str, reason: String },
    #[error("the controller's answer names an invalid spiffe_id: {0}")]
    BadSpiffeId(#[source] weft_common::spiffe::SpiffeIdError),
    #[error("the leaf certificate carries no URI SAN that is a SPIFFE id")]
    NoSpiffeId,
    #[error("the leaf certificate is for {certificate}, but the controller's answer says {answer}")]
    SpiffeIdMismatch { answer: String, certificate: String },
    #[error("the leaf certificate is for another public key than this proxy's workload key")]
    KeyMismatch,
    #[error("the certificate chain does not verify against the trust bundle for {usage}: {source}")]
    Untrusted {
        usage: &'static str,
        #[source]
        source: webpki::Error,
    },
    #[error("the trust bundle holds a certificate that cannot be a trust anchor: {0}")]
    BadTrustAnchor(#[source] webpki::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[source] rustls::Error),
    #[error("cannot build the client certificate verifier: {0}")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    #[error("cannot read the ServiceAccount token: {0}")]
    Token(String),
    #[error(
        "the ServiceAccount token cannot be sent as gRPC metadata (it must be printable ASCII)"
    )]
    TokenNotAscii,
    #[error("the node id cannot be sent as gRPC metadata (it must be printable ASCII)")]
    NodeIdNotAscii,
    #[error("the controller's certificate service cannot be reached: {code}: {message}")]
    Unreachable { code: &'static str, message: String },
    #[error("the controller refused the certificate request: {code}: {message}")]
    Refused { code: &'static str, message: String },
}
