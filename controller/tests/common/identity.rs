//! Talking to the controller as a proxy would: a channel trusting the mesh root, a CSR for
//! a fresh key, CreateCertificate with a token and node id, and a SotW ADS stream with a
//! token.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
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

/// A SotW ADS stream, opened by [`open_ads`]: later requests go into `requests`.
pub struct AdsStream {
    pub requests: mpsc::Sender<DiscoveryRequest>,
    pub responses: Streaming<DiscoveryResponse>,
}

impl AdsStream {
    /// The next response within 10 s, or why there is none.
    pub async fn next(&mut self) -> Result<DiscoveryResponse, tonic::Status> {
        let next = tokio::time::timeout(Duration::from_secs(10), self.responses.message())
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("test: no response in 10 s"))?;
        next?.ok_or_else(|| tonic::Status::unknown("test: the stream ended without a response"))
    }
}

/// Opens a SotW ADS stream as `node_id` with `token` (as `authorization: Bearer`, if any)
/// and asks for `names` of `type_url`.
pub async fn open_ads(
    channel: &Channel,
    token: Option<&str>,
    node_id: &str,
    type_url: &str,
    names: &[&str],
) -> Result<AdsStream, tonic::Status> {
    let (requests, rx) = mpsc::channel(4);
    requests
        .send(DiscoveryRequest {
            node: Some(Node {
                id: node_id.into(),
                ..Default::default()
            }),
            type_url: type_url.into(),
            resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(token) = token {
        let bearer = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
    }
    let responses = AggregatedDiscoveryServiceClient::new(channel.clone())
        .stream_aggregated_resources(request)
        .await?
        .into_inner();
    Ok(AdsStream {
        requests,
        responses,
    })
}
