//! Real rustls handshakes between `TlsConfigs` over an in-memory pipe.

use std::io;
use std::sync::Arc;

use rustls::version::TLS12;
use rustls::{ClientConfig, ProtocolVersion, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};
use weft_common::spiffe::SpiffeId;

use super::testca::{ID_A, ID_C, TestCa};
use super::{
    Credentials, MeshServerVerifier, TlsConfigs, WorkloadKey, peer_identity, provider, server_name,
};

type Handshake = (
    io::Result<server::TlsStream<DuplexStream>>,
    io::Result<client::TlsStream<DuplexStream>>,
);

async fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Handshake {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::join!(
        TlsAcceptor::from(server).accept(server_io),
        TlsConnector::from(client).connect(server_name(), client_io),
    )
}

/// The rustls error inside a tokio-rustls I/O error.
fn rustls_error(err: &io::Error) -> &rustls::Error {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a rustls error: {err:?}"))
}

fn id(id: &str) -> SpiffeId {
    id.parse().unwrap()
}

#[tokio::test]
async fn two_identities_of_one_ca_handshake_and_see_each_other() {
    let ca = TestCa::new("root");
    let (server, client) = (ca.configs(ID_A), ca.configs(ID_C));
    let (accepted, connected) = handshake(server.server.clone(), client.client.clone()).await;
    let (mut accepted, mut connected) = (accepted.unwrap(), connected.unwrap());

    let (_, server_side) = accepted.get_ref();
    let client_cert = &server_side.peer_certificates().unwrap()[0];
    assert_eq!(peer_identity(client_cert), Some(id(ID_C)));
    assert_eq!(server_side.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        server_side.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );

    let (_, client_side) = connected.get_ref();
    let server_cert = &client_side.peer_certificates().unwrap()[0];
    assert_eq!(peer_identity(server_cert), Some(id(ID_A)));
    assert_eq!(client_side.alpn_protocol(), Some(&b"h2"[..]));

    // And bytes flow.
    connected.write_all(b"ping").await.unwrap();
    connected.flush().await.unwrap();
    let mut buf = [0u8; 4];
    accepted.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn chains_through_an_intermediate_handshake() {
    let root = TestCa::new("root");
    let (left, right) = (root.intermediate("left"), root.intermediate("right"));
    let (accepted, connected) =
        handshake(left.configs(ID_A).server, right.configs(ID_C).client).await;
    accepted.unwrap();
    connected.unwrap();
}

#[tokio::test]
async fn tls_1_2_clients_are_served() {
    let ca = TestCa::new("root");
    let server = ca.configs(ID_A);
    let credentials = ca.credentials(ID_C);
    let verifier =
        MeshServerVerifier::new(&credentials.trust_bundle, "cluster.local", &provider()).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(credentials.chain.clone(), credentials.key.clone_key())
        .unwrap();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let (accepted, connected) = handshake(server.server, Arc::new(client)).await;
    let accepted = accepted.unwrap();
    assert_eq!(
        accepted.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        peer_identity(&accepted.get_ref().1.peer_certificates().unwrap()[0]),
        Some(id(ID_C))
    );
    connected.unwrap();
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let (ca, other) = (TestCa::new("root"), TestCa::new("other root"));
    let server = ca.configs(ID_A);
    // The client trusts both roots, so it accepts the server; its own certificate is from
    // the other CA, which the server does not trust.
    let key = WorkloadKey::generate().unwrap();
    let mut answer = other.response(&key, ID_C);
    answer.trust_bundle = format!("{}{}", ca.root, other.root);
    let client = TlsConfigs::new(&Credentials::from_response(&key, &answer).unwrap()).unwrap();

    let (accepted, _) = handshake(server.server, client.client).await;
    let err = accepted.unwrap_err();
    assert_eq!(
        rustls_error(&err),
        &rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    );
}

#[tokio::test]
async fn a_server_in_another_trust_domain_is_refused() {
    let ca = TestCa::new("root");
    let server = ca.configs("spiffe://elsewhere.example/ns/a/sa/b");
    let client = ca.configs(ID_C);
    let (_, connected) = handshake(server.server, client.client).await;
    let err = connected.unwrap_err();
    assert!(
        matches!(rustls_error(&err), rustls::Error::InvalidCertificate(_)),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "the server's certificate is for spiffe://elsewhere.example/ns/a/sa/b, \
             outside this mesh's trust domain cluster.local"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused() {
    let (ca, other) = (TestCa::new("root"), TestCa::new("other root"));
    let (_, connected) = handshake(other.configs(ID_A).server, ca.configs(ID_C).client).await;
    let err = connected.unwrap_err();
    assert_eq!(
        rustls_error(&err),
        &rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = TestCa::new("root");
    let server = ca.configs(ID_A);
    let credentials = ca.credentials(ID_C);
    let verifier =
        MeshServerVerifier::new(&credentials.trust_bundle, "cluster.local", &provider()).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let (accepted, _) = handshake(server.server, Arc::new(client)).await;
    let err = accepted.unwrap_err();
    assert_eq!(rustls_error(&err), &rustls::Error::NoCertificatesPresented);
}
