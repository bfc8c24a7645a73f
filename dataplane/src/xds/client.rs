//! The I/O shell of the xDS client: one task that keeps an ADS stream open to the
//! controller, feeds each response to the protocol state (`delta` or `sotw`), sends the
//! requests it returns, and publishes a re-assembled config after every accepted update.
//!
//! - Reconnects with jittered exponential backoff (`backoff`), reset once a stream has
//!   received a response. While disconnected nothing is published: the last config stays.
//! - `Auto` speaks Delta and falls back to State-of-the-World for good when the server
//!   answers Delta with `UNIMPLEMENTED`.
//! - Names the data path needs over VHDS arrive on a channel ([`spawn_with_demands`]) and
//!   are handed to the protocol state, which says what to subscribe; while no stream is
//!   open they wait in the channel (a new stream re-subscribes what was asked before).
//! - Connection changes are logged at info, rejected updates at warn, the rest at debug.

use std::future::Future;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use super::XdsSettings;
use super::backoff::Backoff;
use super::delta::DeltaState;
use super::metrics::XdsMetrics;
use super::sotw::SotwState;
use super::state::{Held, Outcome, Parsers, Protocol};
use crate::XdsProtocol;
use crate::config::{self, ProxyConfig};

type AdsClient = AggregatedDiscoveryServiceClient<Channel>;

/// Largest xDS response accepted (tonic's default is 4 MiB, which a mesh of ~15 000
/// Services would pass with its route configuration alone).
const MAX_XDS_MESSAGE: usize = 64 << 20;

/// Starts the xDS client without VHDS demands (nothing asks for virtual hosts); it runs
/// until the task is aborted.
pub fn spawn(
    settings: XdsSettings,
    config: watch::Sender<Arc<ProxyConfig>>,
    metrics: Arc<XdsMetrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(settings, config, metrics, None))
}

/// Starts the xDS client; `demands` carries the VHDS names (`<route config>/<authority>`)
/// the data path needs (`proxy::on_demand`). It runs until the task is aborted.
pub fn spawn_with_demands(
    settings: XdsSettings,
    config: watch::Sender<Arc<ProxyConfig>>,
    metrics: Arc<XdsMetrics>,
    demands: mpsc::Receiver<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(settings, config, metrics, Some(demands)))
}

/// A protocol variant the stream loop can open.
trait Transport: Protocol<Request: Send + 'static, Response: Send + 'static> + Send {
    const NAME: &'static str;
    fn open(
        client: AdsClient,
        requests: tonic::Request<UnboundedReceiverStream<Self::Request>>,
    ) -> impl Future<Output = Result<Streaming<Self::Response>, Status>> + Send;
}

impl Transport for DeltaState {
    const NAME: &'static str = "Delta";
    async fn open(
        mut client: AdsClient,
        requests: tonic::Request<UnboundedReceiverStream<DeltaDiscoveryRequest>>,
    ) -> Result<Streaming<DeltaDiscoveryResponse>, Status> {
        Ok(client
            .delta_aggregated_resources(requests)
            .await?
            .into_inner())
    }
}

impl Transport for SotwState {
    const NAME: &'static str = "State-of-the-World";
    async fn open(
        mut client: AdsClient,
        requests: tonic::Request<UnboundedReceiverStream<DiscoveryRequest>>,
    ) -> Result<Streaming<DiscoveryResponse>, Status> {
        Ok(client
            .stream_aggregated_resources(requests)
            .await?
            .into_inner())
    }
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("{0}")]
    Setup(#[from] super::ControlPlaneError),
    #[error("{}: {}", .0.code(), .0.message())]
    Status(Status),
    #[error("the server closed the stream")]
    Closed,
}

/// How a stream went.
#[derive(Debug)]
struct Ended {
    /// The stream opened.
    connected: bool,
    /// At least one response arrived.
    received: bool,
    error: StreamError,
}

/// Whether to give up on Delta for State-of-the-World after this stream.
fn falls_back(protocol: XdsProtocol, on_delta: bool, ended: &Ended) -> bool {
    protocol == XdsProtocol::Auto
        && on_delta
        && !ended.received
        && matches!(&ended.error, StreamError::Status(s) if s.code() == Code::Unimplemented)
}

enum Session {
    Delta(DeltaState),
    Sotw(SotwState),
}

async fn run(
    settings: XdsSettings,
    config: watch::Sender<Arc<ProxyConfig>>,
    metrics: Arc<XdsMetrics>,
    mut demands: Option<mpsc::Receiver<String>>,
) {
    let out = Publisher { config, metrics };
    let held = Held::new(Parsers::default());
    let node = settings.node.clone();
    let mut session = match settings.protocol {
        XdsProtocol::Sotw => Session::Sotw(SotwState::new(node.clone(), held)),
        XdsProtocol::Delta | XdsProtocol::Auto => {
            Session::Delta(DeltaState::new(node.clone(), held))
        }
    };
    let mut backoff = Backoff::default();
    let mut failing = false;
    loop {
        let (next, ended, name) = match session {
            Session::Delta(mut state) => {
                let ended = run_stream(&settings, &mut state, &out, &mut demands).await;
                if falls_back(settings.protocol, true, &ended) {
                    tracing::info!(
                        server = %settings.control_plane.server,
                        "the xDS server does not implement Delta; using State-of-the-World"
                    );
                    let state = SotwState::new(node.clone(), state.into_held());
                    session = Session::Sotw(state);
                    continue;
                }
                (Session::Delta(state), ended, DeltaState::NAME)
            }
            Session::Sotw(mut state) => {
                let ended = run_stream(&settings, &mut state, &out, &mut demands).await;
                (Session::Sotw(state), ended, SotwState::NAME)
            }
        };
        session = next;
        out.metrics.connected.set(0);
        if ended.received {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        let (server, reason) = (&settings.control_plane.server, &ended.error);
        if ended.connected {
            tracing::info!(%server, protocol = name, %reason, retry_in = ?delay,
                "disconnected from the xDS server; the last config stays in force");
        } else if !failing {
            tracing::info!(%server, protocol = name, %reason, retry_in = ?delay,
                "cannot reach the xDS server; retrying");
        } else {
            tracing::debug!(%server, %reason, retry_in = ?delay, "xDS server still unreachable");
        }
        failing = !ended.connected || !ended.received;
        tokio::time::sleep(delay).await;
    }
}

/// Opens one stream and runs it until it ends.
async fn run_stream<P: Transport>(
    settings: &XdsSettings,
    state: &mut P,
    out: &Publisher,
    demands: &mut Option<mpsc::Receiver<String>>,
) -> Ended {
    let mut ended = Ended {
        connected: false,
        received: false,
        error: StreamError::Closed,
    };
    let endpoint = match settings.control_plane.endpoint() {
        Ok(endpoint) => endpoint,
        Err(err) => {
            ended.error = err.into();
            return ended;
        }
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(err) => {
            ended.error = err.into();
            return ended;
        }
    };
    // Queued before the call: a server may wait for the first request before answering.
    let (tx, rx) = mpsc::unbounded_channel();
    for request in state.start() {
        let _ = tx.send(request);
    }
    let mut request = tonic::Request::new(UnboundedReceiverStream::new(rx));
    if let Err(err) = settings.control_plane.authorize(&mut request) {
        ended.error = err.into();
        return ended;
    }
    let mut responses = match P::open(
        AdsClient::new(channel).max_decoding_message_size(MAX_XDS_MESSAGE),
        request,
    )
    .await
    {
        Ok(responses) => responses,
        Err(status) => {
            ended.error = StreamError::Status(status);
            return ended;
        }
    };
    ended.connected = true;
    out.metrics.connected.set(1);
    out.metrics.connects.inc();
    tracing::info!(server = %settings.control_plane.server, protocol = P::NAME, "connected to the xDS server");
    loop {
        let response = tokio::select! {
            response = responses.next() => response,
            Some(name) = next_demand(demands) => {
                let (requests, changed) = state.demand(&name);
                if !requests.is_empty() {
                    tracing::debug!(%name, "subscribing a VirtualHost on demand");
                } else if changed {
                    tracing::debug!(%name, "too many VirtualHost names subscribed; not asking");
                }
                if changed {
                    out.publish(state.held());
                }
                for request in requests {
                    let _ = tx.send(request);
                }
                continue;
            }
        };
        match response {
            Some(Ok(response)) => {
                ended.received = true;
                let outcome = state.handle(&response);
                out.record(&outcome, state.held());
                for request in outcome.requests {
                    // A closed request stream ends the response stream too; that is
                    // where the loop notices.
                    let _ = tx.send(request);
                }
            }
            None => return ended,
            Some(Err(status)) => {
                ended.error = StreamError::Status(status);
                return ended;
            }
        }
    }
}

/// The next name the data path needs; never resolves once nothing can send any more (or
/// when there is no channel).
async fn next_demand(demands: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    if let Some(receiver) = demands {
        if let Some(name) = receiver.recv().await {
            return Some(name);
        }
        *demands = None;
    }
    std::future::pending().await
}

/// Where accepted updates and verdicts go.
struct Publisher {
    config: watch::Sender<Arc<ProxyConfig>>,
    metrics: Arc<XdsMetrics>,
}

impl Publisher {
    fn record<R>(&self, outcome: &Outcome<R>, held: &Held) {
        let verdict = &outcome.verdict;
        self.metrics.record_verdict(verdict);
        match &verdict.rejected {
            Some(reason) => tracing::warn!(
                r#type = verdict.type_name,
                %reason,
                "rejected an xDS update; the last good config stays in force"
            ),
            None => tracing::debug!(r#type = verdict.type_name, "applied an xDS update"),
        }
        if outcome.changed {
            self.metrics.record_versions(&held.resources.versions);
            self.publish(held);
        }
    }

    /// Assembles and publishes what is held.
    fn publish(&self, held: &Held) {
        let config = config::assemble(held.resources.clone());
        self.config.send_replace(Arc::new(config));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(received: bool, error: StreamError) -> Ended {
        Ended {
            connected: true,
            received,
            error,
        }
    }

    #[test]
    fn auto_falls_back_only_on_unimplemented_delta_before_any_response() {
        let unimplemented = || StreamError::Status(Status::unimplemented("no delta"));
        assert!(falls_back(
            XdsProtocol::Auto,
            true,
            &ended(false, unimplemented())
        ));
        // Explicit Delta keeps trying Delta; SotW has nowhere to fall back to.
        assert!(!falls_back(
            XdsProtocol::Delta,
            true,
            &ended(false, unimplemented())
        ));
        assert!(!falls_back(
            XdsProtocol::Auto,
            false,
            &ended(false, unimplemented())
        ));
        // A stream that worked and then failed is a disconnect, not a missing protocol.
        assert!(!falls_back(
            XdsProtocol::Auto,
            true,
            &ended(true, unimplemented())
        ));
        let unavailable = StreamError::Status(Status::unavailable("down"));
        assert!(!falls_back(
            XdsProtocol::Auto,
            true,
            &ended(false, unavailable)
        ));
        assert!(!falls_back(
            XdsProtocol::Auto,
            true,
            &ended(false, StreamError::Closed)
        ));
    }
}
