//! The ADS service's gRPC routing, written out here instead of taken from envoy-types'
//! generated server for one reason: the codec's buffers. The generated server uses tonic's
//! default codec, whose per-stream encode and decode buffers start at 8 KB and batch up to
//! 32 KB of responses before yielding; the encode buffer keeps the size it grew to for the
//! stream's life. A controller holds one such stream per connected proxy and almost all of
//! them are idle, so at 1000 proxies those buffers were about 25 MB of its memory. Here
//! they start at 1 KB ([`buffers`]) and the encoder hands on each response as soon as it
//! is encoded, so a buffer grows only to the largest single response (at most 4 KB unless
//! one resource is larger, see `MAX_RESPONSE_BYTES` in `delta.rs`).

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::codec::{BufferSettings, Codec};
use tonic::server::{Grpc, NamedService};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use super::server::AdsService;

/// Each stream's encode and decode buffer start at 1 KB, and the encoder hands every
/// response to HTTP/2 alone instead of batching up to 32 KB. (Batched, the responses of a
/// first sync queued together filled the buffer past 4 KB, and it doubled to 8 KB.)
fn buffers() -> BufferSettings {
    BufferSettings::new(1024, 1)
}

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// The ADS service as a tonic server (`StreamAggregatedResources` and
/// `DeltaAggregatedResources`; any other method is UNIMPLEMENTED).
#[derive(Clone)]
pub struct AdsServer(Arc<AdsService>);

impl AdsServer {
    pub fn new(ads: AdsService) -> Self {
        Self(Arc::new(ads))
    }
}

impl NamedService for AdsServer {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

impl<B> tower::Service<http::Request<B>> for AdsServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let ads = self.0.clone();
        match request.uri().path() {
            SOTW_PATH => Box::pin(async move {
                let method = tower::service_fn(move |request| {
                    let ads = ads.clone();
                    async move { ads.stream_aggregated_resources(request).await }
                });
                Ok(Grpc::new(SmallBuffers::default())
                    .streaming(method, request)
                    .await)
            }),
            DELTA_PATH => Box::pin(async move {
                let method = tower::service_fn(move |request| {
                    let ads = ads.clone();
                    async move { ads.delta_aggregated_resources(request).await }
                });
                Ok(Grpc::new(SmallBuffers::default())
                    .streaming(method, request)
                    .await)
            }),
            _ => Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) }),
        }
    }
}

/// tonic's protobuf codec with [`buffers`].
struct SmallBuffers<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBuffers<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SmallBuffers<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(buffers())
    }
}
