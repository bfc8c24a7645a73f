//! Talking to the controller's TLS port as a proxy would: a channel trusting the mesh root,
//! a CSR for a fresh key, and CreateCertificate with a token and node id.

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use weft_common::ca_api::CertificateRequest;
use weft_common::ca_api::certificate_service_client::CertificateServiceClient;

/// A TLS channel to the controller's xDS/certificate port, trusting the mesh root.
pub async fn channel(port: u16, root_pem: &str) -> Channel {
    Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(root_pem)))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A CSR for a fresh P-256 key, asking for `sans` (URIs).
pub fn csr(sans: &[&str]) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = sans
        .iter()
        .map(|uri| rcgen::SanType::URI((*uri).try_into().unwrap()))
        .collect();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// Asks for a certificate with `token` (none when `None`), naming `node_id` if given.
pub async fn create_certificate(
    channel: &Channel,
    token: Option<&str>,
    node_id: Option<&str>,
    sans: &[&str],
) -> Result<weft_common::ca_api::CertificateResponse, tonic::Status> {
    let mut request = tonic::Request::new(CertificateRequest {
        csr: csr(sans),
        validity_seconds: 0,
    });
    if let Some(token) = token {
        let bearer = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
    }
    if let Some(node_id) = node_id {
        request
            .metadata_mut()
            .insert("x-weft-node-id", node_id.parse().unwrap());
    }
    CertificateServiceClient::new(channel.clone())
        .create_certificate(request)
        .await
        .map(tonic::Response::into_inner)
}
