//! The ADS gRPC service over a real loopback connection: a stream without a node id is
//! closed with INVALID_ARGUMENT; nothing is served before the first snapshot; a client that
//! does not read holds up no one else and, once it reads, gets coalesced updates ending at
//! the latest snapshot.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::Streaming;
use weft_controller::ads::{AdsMetrics, AdsService, ProxyRegistry, ResourceType, Snapshot};
use weft_controller::auth::Authenticator;

type SnapshotSender = watch::Sender<Option<Arc<Snapshot>>>;

async fn serve() -> (String, SnapshotSender) {
    let (tx, rx) = watch::channel(None);
    let metrics = Arc::new(AdsMetrics::register(&mut Registry::default()));
    let service = AdsService::new(
        rx,
        ProxyRegistry::new(),
        metrics,
        Authenticator::Disabled,
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), tx)
}

fn snapshot(version: u32) -> Arc<Snapshot> {
    let mut builder = Snapshot::builder();
    let body = Any {
        type_url: ResourceType::Cluster.type_url().into(),
        value: version.to_be_bytes().to_vec(),
    };
    builder.add(ResourceType::Cluster, "c", body);
    // A stream is served once a translation knows its node: these are the nodes used here.
    for node in ["a.default", "slow.default", "fast.default"] {
        let listener = Any {
            type_url: ResourceType::Listener.type_url().into(),
            value: node.as_bytes().to_vec(),
        };
        builder.add_for_node(node, ResourceType::Listener, "outbound", listener);
    }
    Arc::new(builder.build())
}

/// Opens a SotW stream whose first request asks for clusters as `node_id`.
async fn open(
    uri: &str,
    node_id: &str,
) -> (mpsc::Sender<DiscoveryRequest>, Streaming<DiscoveryResponse>) {
    let mut client = AggregatedDiscoveryServiceClient::connect(uri.to_string())
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(16);
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: node_id.into(),
            ..Default::default()
        }),
        type_url: ResourceType::Cluster.type_url().into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, responses)
}

#[tokio::test]
async fn empty_node_id_is_refused() {
    let (uri, snapshots) = serve().await;
    snapshots.send_replace(Some(snapshot(1)));
    let (_tx, mut responses) = open(&uri, "").await;
    let status = responses.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("node.id"), "{status:?}");
}

#[tokio::test]
async fn nothing_is_served_before_the_first_snapshot() {
    let (uri, snapshots) = serve().await;
    let (_tx, mut responses) = open(&uri, "a.default").await;
    let early = tokio::time::timeout(Duration::from_millis(300), responses.message()).await;
    assert!(
        early.is_err(),
        "a response came before any snapshot: {early:?}"
    );
    snapshots.send_replace(Some(snapshot(1)));
    let first = responses.message().await.unwrap().unwrap();
    assert_eq!(first.resources[0].value, 1u32.to_be_bytes());
}

#[tokio::test]
async fn a_slow_client_holds_up_no_one_and_gets_coalesced_updates() {
    let (uri, snapshots) = serve().await;
    snapshots.send_replace(Some(snapshot(0)));
    let (_slow_tx, mut slow) = open(&uri, "slow.default").await;
    let (fast_tx, mut fast) = open(&uri, "fast.default").await;
    // The fast client ACKs every response; the slow one reads nothing for now.
    let mut last_seen = 0;
    let first = fast.message().await.unwrap().unwrap();
    fast_tx.send(ack(&first)).await.unwrap();
    for version in 1..=200u32 {
        snapshots.send_replace(Some(snapshot(version)));
        if version % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    while last_seen != 200 {
        let response = tokio::time::timeout(Duration::from_secs(5), fast.message())
            .await
            .expect("the fast client was held up")
            .unwrap()
            .unwrap();
        last_seen = u32::from_be_bytes(response.resources[0].value.clone().try_into().unwrap());
        fast_tx.send(ack(&response)).await.unwrap();
    }
    // Now the slow client reads: fewer responses than changes, ending at the latest.
    let mut received = 0;
    let mut latest = 0;
    while latest != 200 {
        let response = tokio::time::timeout(Duration::from_secs(5), slow.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        latest = u32::from_be_bytes(response.resources[0].value.clone().try_into().unwrap());
        received += 1;
    }
    assert!(
        received < 200,
        "the slow client got every one of 200 updates: nothing was coalesced"
    );
}

fn ack(response: &DiscoveryResponse) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: response.type_url.clone(),
        version_info: response.version_info.clone(),
        response_nonce: response.nonce.clone(),
        ..Default::default()
    }
}
