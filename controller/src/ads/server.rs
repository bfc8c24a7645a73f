//! The tonic ADS service: one task per stream runs the protocol state machine (`sotw` or
//! `delta`) against the latest published snapshot.
//!
//! - Nothing is served before the first full snapshot: streams wait for it.
//! - Snapshots arrive on a `watch` channel, which keeps only the newest: a slow client
//!   that cannot take responses as fast as changes come simply sees fewer, coalesced
//!   updates, and its back-pressure blocks only its own task.
//! - A stream whose first request has no node id is closed with INVALID_ARGUMENT.
//! - With authentication on, a stream without a valid token is closed with UNAUTHENTICATED
//!   before anything is read, and one whose node id names another namespace than its token
//!   with PERMISSION_DENIED. A proxy sees its own listeners and only its own namespace's
//!   route configuration; stock Envoy also gets its certificate and the trust bundle as SDS
//!   secrets (`envoy_sds`), renewed at about half their lifetime on the open stream.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::{Stream, StreamExt as _};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::delta::DeltaStream;
use super::envoy_sds::{EnvoyCertificates, EnvoySds};
use super::metrics::AdsMetrics;
use super::progress::{ClientEvent, TypeProgress};
use super::registry::{Protocol, ProxyRegistry};
use super::snapshot::Snapshot;
use super::sotw::SotwStream;
use super::types::ResourceType;
use super::vhds::NamespaceHosts;
use crate::auth::{Authenticator, Identity, check_namespace};
use crate::translate::{
    NodeInfo, WEB, inbound_cluster_name, route_clusters, route_config_name, vhds_route_config,
};

/// The latest snapshot to serve; `None` until the first full sync.
pub type SnapshotReceiver = watch::Receiver<Option<Arc<Snapshot>>>;

/// Responses buffered per stream before back-pressure applies.
const STREAM_BUFFER: usize = 16;

/// What a stream's task hands to tonic: boxed, because the channel allocates its slots in
/// blocks of 32 whatever its capacity, and an unboxed response or status is about 200
/// bytes (6 KB per connected proxy, mostly idle).
type Outgoing<T> = Box<Result<T, Status>>;

/// The ADS gRPC service.
#[derive(Clone)]
pub struct AdsService {
    snapshots: SnapshotReceiver,
    registry: Arc<ProxyRegistry>,
    metrics: Arc<AdsMetrics>,
    auth: Authenticator,
    /// Issues stock Envoy's certificates (SDS); `None` when authentication is off.
    envoy_certs: Option<EnvoyCertificates>,
}

impl AdsService {
    pub fn new(
        snapshots: SnapshotReceiver,
        registry: Arc<ProxyRegistry>,
        metrics: Arc<AdsMetrics>,
        auth: Authenticator,
        envoy_certs: Option<EnvoyCertificates>,
    ) -> Self {
        Self {
            snapshots,
            registry,
            metrics,
            auth,
            envoy_certs,
        }
    }

    pub fn into_server(self) -> super::AdsServer {
        super::AdsServer::new(self)
    }
}

/// What the stream loop needs from a protocol flavour.
trait ProtocolState: Default + Send + 'static {
    type Request: prost::Message + Send + 'static;
    type Response: Send + 'static;
    const PROTOCOL: Protocol;

    fn node(request: &Self::Request) -> Option<&Node>;
    fn handle_request(
        &mut self,
        request: &Self::Request,
        snapshot: &Snapshot,
    ) -> (Vec<Self::Response>, Vec<ClientEvent>);
    fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Vec<Self::Response>;
    fn response_type(response: &Self::Response) -> Option<ResourceType>;
    fn progress(&self) -> impl Iterator<Item = (ResourceType, &TypeProgress)>;
}

impl ProtocolState for SotwStream {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const PROTOCOL: Protocol = Protocol::Sotw;

    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn handle_request(
        &mut self,
        request: &DiscoveryRequest,
        snapshot: &Snapshot,
    ) -> (Vec<DiscoveryResponse>, Vec<ClientEvent>) {
        let reply = SotwStream::handle_request(self, request, snapshot);
        (reply.responses, reply.events)
    }
    fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
        SotwStream::handle_snapshot(self, snapshot)
    }
    fn response_type(response: &DiscoveryResponse) -> Option<ResourceType> {
        ResourceType::from_type_url(&response.type_url)
    }
    fn progress(&self) -> impl Iterator<Item = (ResourceType, &TypeProgress)> {
        SotwStream::progress(self)
    }
}

impl ProtocolState for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const PROTOCOL: Protocol = Protocol::Delta;

    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn handle_request(
        &mut self,
        request: &DeltaDiscoveryRequest,
        snapshot: &Snapshot,
    ) -> (Vec<DeltaDiscoveryResponse>, Vec<ClientEvent>) {
        let reply = DeltaStream::handle_request(self, request, snapshot);
        (reply.responses, reply.events)
    }
    fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        DeltaStream::handle_snapshot(self, snapshot)
    }
    fn response_type(response: &DeltaDiscoveryResponse) -> Option<ResourceType> {
        ResourceType::from_type_url(&response.type_url)
    }
    fn progress(&self) -> impl Iterator<Item = (ResourceType, &TypeProgress)> {
        DeltaStream::progress(self)
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let identity = self.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(
            self.start::<SotwStream>(request.into_inner(), identity),
        ))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let identity = self.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(
            self.start::<DeltaStream>(request.into_inner(), identity),
        ))
    }
}

impl AdsService {
    fn start<P: ProtocolState>(
        &self,
        inbound: Streaming<P::Request>,
        identity: Option<Identity>,
    ) -> ResponseStream<P::Response> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let service = self.clone();
        // Boxed: the decoder is over 200 bytes, and an argument moved into an async fn
        // keeps a slot in each enclosing future (three here) for the stream's life.
        let inbound = Box::new(inbound);
        tokio::spawn(async move {
            if let Err(status) = service.run_stream::<P>(inbound, identity, &tx).await {
                let _ = tx.send(Box::new(Err(status))).await;
            }
        });
        Box::pin(ReceiverStream::new(rx).map(|outgoing| *outgoing))
    }

    /// Runs one stream until the client goes away. Returns a status to close it with.
    ///
    /// Its future lives as long as the proxy is connected, so what it holds across an
    /// `await` is memory per proxy: large values are boxed or dropped before they would be
    /// held (the spawned task was 3.8 KB, 1.1 KB since).
    async fn run_stream<P: ProtocolState>(
        &self,
        mut inbound: Box<Streaming<P::Request>>,
        identity: Option<Identity>,
        tx: &mpsc::Sender<Outgoing<P::Response>>,
    ) -> Result<(), Status> {
        // Requests are boxed while they wait to be handled: one is over 600 bytes (the
        // node is inline), and the stream's future would carry that space for its life.
        let Some(first) = inbound.message().await?.map(Box::new) else {
            return Ok(());
        };
        // Only what the stream needs of the node is kept: a copy of the whole `Node` would
        // stay in the stream's future, a few hundred bytes per proxy.
        let (info, is_envoy) = {
            let node = P::node(&first).cloned().unwrap_or_default();
            if node.id.is_empty() {
                return Err(Status::invalid_argument(
                    "node.id is empty: a proxy must identify itself as <pod>.<namespace> in its first request",
                ));
            }
            let info = NodeInfo::from_node(&node).map_err(Status::invalid_argument)?;
            (info, node.user_agent_name == "envoy")
        };
        let node_id = info.id.clone();
        if let Some(identity) = &identity {
            check_namespace(&node_id, &info.namespace, &identity.namespace)?;
        }
        let mut sds = match (&identity, &self.envoy_certs) {
            (Some(identity), Some(certs)) if is_envoy => {
                Some(EnvoySds::issue(certs, identity).map_err(Status::internal)?)
            }
            _ => None,
        };
        let trust_domain = self.envoy_certs.as_ref().map(|c| c.ca.trust_domain());
        let spiffe_id = identity
            .as_ref()
            .zip(trust_domain)
            .map(|(identity, td)| identity.spiffe_id(td).to_string());
        let guard = self
            .registry
            .connect(&info, P::PROTOCOL, spiffe_id)
            .map_err(|err| Status::resource_exhausted(err.to_string()))?;
        if let Some(sds) = &sds {
            self.registry.record_certificate(&node_id, sds.not_after);
        }
        let mut snapshots = self.snapshots.clone();
        // The node's own listeners come from a translation that knows it: the registry
        // entry just made asks for one.
        let global = match snapshots
            .wait_for(|s| s.as_ref().is_some_and(|s| s.node_types(&node_id).is_some()))
            .await
        {
            Ok(current) => current.clone().unwrap_or_default(),
            Err(_) => return Err(Status::unavailable("the controller is shutting down")),
        };
        // Always a view: the wait above was for a snapshot with this node's sets.
        let Some(mut snapshot) = node_view(&global, &info, sds.as_ref(), P::PROTOCOL) else {
            return Err(Status::unavailable("no configuration for this proxy yet"));
        };
        self.metrics.connected_proxies.inc();
        let _connected = scopeguard(&self.metrics);
        tracing::info!(node = %node_id, protocol = ?P::PROTOCOL, "proxy connected");

        let mut state = P::default();
        let mut sent_at: BTreeMap<ResourceType, Instant> = BTreeMap::new();
        let mut next_request = Some(first);
        loop {
            let renew_at = sds.as_ref().map(|s| s.renew_at);
            let (responses, events) = if let Some(request) = next_request.take() {
                let (responses, events) = state.handle_request(&request, &snapshot);
                self.record(&node_id, &events, &mut sent_at);
                (responses, events)
            } else {
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(request)) => { next_request = Some(Box::new(request)); continue; }
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(node = %node_id, %status, "stream ended with an error");
                            break;
                        }
                    },
                    changed = snapshots.changed() => {
                        if changed.is_err() { break; }
                        let global = snapshots.borrow_and_update().clone().unwrap_or_default();
                        let Some(view) = node_view(&global, &info, sds.as_ref(), P::PROTOCOL) else {
                            continue;
                        };
                        snapshot = view;
                        (state.handle_snapshot(&snapshot), Vec::new())
                    }
                    () = sleep_until(renew_at) => {
                        let (Some(identity), Some(certs)) = (&identity, &self.envoy_certs) else {
                            continue;
                        };
                        match EnvoySds::issue(certs, identity) {
                            Ok(renewed) => {
                                self.registry.record_certificate(&node_id, renewed.not_after);
                                sds = Some(renewed);
                            }
                            Err(err) => {
                                tracing::warn!(node = %node_id, %err, "cannot renew Envoy's certificate; retrying in 5s");
                                if let Some(sds) = sds.as_mut() {
                                    sds.renew_at = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
                                }
                                continue;
                            }
                        }
                        // Sent with the next snapshot that has this proxy's sets, if the
                        // current one has none.
                        let global = snapshots.borrow().clone().unwrap_or_default();
                        let Some(view) = node_view(&global, &info, sds.as_ref(), P::PROTOCOL) else {
                            continue;
                        };
                        snapshot = view;
                        (state.handle_snapshot(&snapshot), Vec::new())
                    }
                }
            };
            guard.update(state.progress(), &events);
            // Boxed before the first send waits: a response held across that wait would
            // keep its 200 bytes (twice over) in the stream's future for the stream's life.
            let outgoing: Vec<Outgoing<P::Response>> = responses
                .into_iter()
                .map(|response| {
                    if let Some(ty) = P::response_type(&response) {
                        self.metrics.pushes.get_or_create(&ty.into()).inc();
                        sent_at.insert(ty, Instant::now());
                    }
                    Box::new(Ok(response))
                })
                .collect();
            for response in outgoing {
                if tx.send(response).await.is_err() {
                    return Ok(());
                }
            }
        }
        tracing::info!(node = %node_id, "proxy disconnected");
        Ok(())
    }

    fn record(
        &self,
        node_id: &str,
        events: &[ClientEvent],
        sent_at: &mut BTreeMap<ResourceType, Instant>,
    ) {
        for event in events {
            match event {
                ClientEvent::Ack { ty, .. } => {
                    if let Some(at) = sent_at.remove(ty) {
                        self.metrics.observe_ack(*ty, at.elapsed());
                    }
                }
                ClientEvent::Nack { ty, nack } => {
                    self.metrics.nacks.get_or_create(&(*ty).into()).inc();
                    tracing::warn!(node = %node_id, r#type = %ty, version = %nack.version, reason = %nack.message, "proxy rejected an update");
                }
                ClientEvent::StaleNonce { ty, nonce } => {
                    tracing::debug!(node = %node_id, r#type = %ty, %nonce, "ignored a request with a stale nonce");
                }
                ClientEvent::UnknownType { type_url } => {
                    tracing::warn!(node = %node_id, %type_url, "proxy asked for a type weft does not serve");
                }
            }
        }
    }
}

/// What one proxy sees: the shared sets with its own listeners, its namespace's routes,
/// and (stock Envoy) its certificate and the trust bundle. Over State-of-the-World the
/// routes are the whole `outbound/<ns>`; over Delta they are its shell and the virtual
/// hosts the proxy subscribes to on demand, the clusters following those hosts. `None`
/// while `global` comes from a translation that did not know the proxy yet.
fn node_view(
    global: &Snapshot,
    info: &NodeInfo,
    sds: Option<&EnvoySds>,
    protocol: Protocol,
) -> Option<Snapshot> {
    let own = global.for_node(&info.id)?;
    let route_name = route_config_name(&info.namespace);
    // A proxy with a web listener also reads the `web` routes, whichever protocol it speaks.
    let web_routes = own
        .resources(ResourceType::Route)
        .subset(info.web_addr.map(|_| WEB));
    let mut types = Vec::new();
    if protocol == Protocol::Sotw {
        let routes = own
            .resources(ResourceType::Route)
            .subset([route_name.as_str()]);
        types.push((ResourceType::Route, Arc::new(routes.with(&web_routes))));
    }
    if let Some(sds) = sds {
        types.push((ResourceType::Secret, sds.secrets.clone()));
    }
    let view = own.with_types(&types);
    Some(match protocol {
        Protocol::Sotw => view,
        Protocol::Delta => {
            // A namespace the translation has not served yet has no hosts, but its shell.
            let hosts = global
                .namespace_hosts(&info.namespace)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(NamespaceHosts::new(
                        &route_name,
                        vhds_route_config(&route_name),
                        Vec::new(),
                        None,
                    ))
                });
            let mut pinned: Vec<String> = info
                .serves_inbound
                .then(|| inbound_cluster_name(info.app_addr))
                .into_iter()
                .collect();
            // The web routes' clusters come with them: nothing subscribes to those on demand.
            pinned.extend(web_routes.iter().flat_map(|r| route_clusters(&r.body)));
            let view = view.with_vhds(hosts, &pinned);
            if web_routes.is_empty() {
                return Some(view);
            }
            let routes = view.resources(ResourceType::Route).with(&web_routes);
            view.with_types(&[(ResourceType::Route, Arc::new(routes))])
        }
    })
}

/// Resolves at `at`, or never. The timer is boxed so that the streams that never renew a
/// certificate (all but stock Envoy's) do not carry one in their state.
async fn sleep_until(at: Option<std::time::SystemTime>) {
    match at {
        Some(at) => {
            let wait = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            Box::pin(tokio::time::sleep(wait)).await;
        }
        None => std::future::pending().await,
    }
}

/// Decrements the connected-proxies gauge when a stream ends, however it ends.
fn scopeguard(metrics: &Arc<AdsMetrics>) -> impl Drop + use<> {
    struct Disconnect(Arc<AdsMetrics>);
    impl Drop for Disconnect {
        fn drop(&mut self) {
            self.0.connected_proxies.dec();
        }
    }
    Disconnect(metrics.clone())
}
