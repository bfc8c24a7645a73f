//! One simulated proxy on the wire: a tonic Delta ADS stream over its own HTTP/2
//! connection, driven by [`ProxySim`]. Every response is timestamped on receipt and ACKed
//! at once; while a change is being tracked, the stream reports each response as an
//! [`Event`], and it says once when it first holds a complete config.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use super::sim::{ProxySim, XdsKind};
use super::track::Event;

/// Largest response accepted (a full config for 1000 Services is a few MB).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// What a stream tells the scenario.
#[derive(Debug)]
pub enum Report {
    Event(Event),
    /// The stream holds a full config; bytes it received until then.
    Synced(usize, u64),
    Ended(usize, String),
}

/// Runs proxy `index` on `channel` until the stream ends; reports through `reports`.
pub async fn run_proxy(
    index: usize,
    channel: Channel,
    mut sim: ProxySim,
    outbound_addr: String,
    tracking: Arc<AtomicBool>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let reason = match stream(
        index,
        channel,
        &mut sim,
        &outbound_addr,
        &tracking,
        &reports,
    )
    .await
    {
        Ok(()) => "stream closed by the server".to_string(),
        Err(status) => format!("{}: {}", status.code(), status.message()),
    };
    let _ = reports.send(Report::Ended(index, reason));
}

async fn stream(
    index: usize,
    channel: Channel,
    sim: &mut ProxySim,
    outbound_addr: &str,
    tracking: &AtomicBool,
    reports: &mpsc::UnboundedSender<Report>,
) -> Result<(), tonic::Status> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let (tx, rx) = mpsc::unbounded_channel();
    for request in sim.initial_requests(outbound_addr) {
        let _ = tx.send(request);
    }
    let mut inbound = client
        .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut synced = false;
    let mut bytes = 0u64;
    while let Some(response) = inbound.message().await? {
        let received = Instant::now();
        for request in sim.on_response(&response) {
            if tx.send(request).is_err() {
                return Ok(());
            }
        }
        let acked = Instant::now();
        let size = response.encoded_len();
        bytes += size as u64;
        if tracking.load(Ordering::Relaxed)
            && let Some(kind) = XdsKind::from_type_url(&response.type_url)
        {
            let names = response
                .resources
                .iter()
                .map(|r| r.name.clone())
                .chain(response.removed_resources.iter().cloned())
                .collect();
            let event = Event {
                stream: index,
                kind,
                names,
                bytes: size,
                received,
                acked,
            };
            let _ = reports.send(Report::Event(event));
        }
        if !synced && sim.synced() {
            synced = true;
            let _ = reports.send(Report::Synced(index, bytes));
        }
    }
    Ok(())
}
