//! The rustls configurations built from one certificate: the inbound side's server config
//! and the outbound side's client config, both mutual TLS, both HTTP/2 only.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{DnsName, ServerName};
use weft_common::spiffe::SpiffeId;

use super::verify::MeshServerVerifier;
use super::{Credentials, TlsError, provider};

/// TLS 1.3 first; 1.2 for peers that lack it (stock Envoy without tuning, older gRPC
/// clients).
const VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];

/// The server name every outbound connection is opened with. Names are not checked (the
/// server's SPIFFE id is, see `MeshServerVerifier`), but rustls needs one for SNI; `.invalid`
/// (RFC 2606) can never be a real name, so it cannot be mistaken for one.
pub fn server_name() -> ServerName<'static> {
    // A literal, not input: `server_name_is_a_dns_name` (below) proves it parses.
    ServerName::DnsName(DnsName::try_from(SERVER_NAME).expect("a literal DNS name"))
}

const SERVER_NAME: &str = "weft.mesh.invalid";

/// Both sides' configs for one certificate, swapped whole on renewal: a connection keeps
/// the config it was accepted or opened with.
#[derive(Debug, Clone)]
pub struct TlsConfigs {
    /// Presents the chain; requires a client certificate that verifies against the bundle.
    pub server: Arc<ServerConfig>,
    /// Presents the chain; requires a server certificate that verifies against the bundle
    /// and names a SPIFFE id in this proxy's trust domain.
    pub client: Arc<ClientConfig>,
    /// Who this proxy is.
    pub identity: SpiffeId,
    /// When the certificate expires.
    pub not_after: SystemTime,
}

impl TlsConfigs {
    pub fn new(credentials: &Credentials) -> Result<Self, TlsError> {
        let provider = provider();
        let alpn = vec![b"h2".to_vec()];

        let mut roots = RootCertStore::empty();
        for root in &credentials.trust_bundle {
            roots.add(root.clone()).map_err(TlsError::Config)?;
        }
        // Client authentication is mandatory by default; this builder never calls
        // `allow_unauthenticated`. webpki's client verification checks no names, so mesh
        // certificates with only a URI SAN pass.
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(TlsError::ClientVerifier)?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(VERSIONS)
            .map_err(TlsError::Config)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(credentials.chain.clone(), credentials.key.clone_key())
            .map_err(TlsError::Config)?;
        server.alpn_protocols = alpn.clone();

        let server_verifier = MeshServerVerifier::new(
            &credentials.trust_bundle,
            &credentials.spiffe_id.trust_domain,
            &provider,
        )?;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(VERSIONS)
            .map_err(TlsError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(server_verifier))
            .with_client_auth_cert(credentials.chain.clone(), credentials.key.clone_key())
            .map_err(TlsError::Config)?;
        client.alpn_protocols = alpn;

        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
            identity: credentials.spiffe_id.clone(),
            not_after: credentials.not_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_a_dns_name() {
        assert_eq!(server_name().to_str(), SERVER_NAME);
    }
}
