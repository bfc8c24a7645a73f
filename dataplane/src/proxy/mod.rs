//! The data path: listeners accept HTTP/2 connections, and each RPC goes through one stack
//! that reads in request order (`outbound` for calls the app makes, `inbound` for calls to
//! the app). The pieces it is built from each own one concern: `body` (the body type),
//! `grpc` (status, Trailers-Only, grpc-timeout), `grpc_web` (browsers' gRPC-Web calls as
//! gRPC and back), `fault`, `retry`, `lb` and `pool`
//! (choosing an endpoint, pooled HTTP/2 connections), `breaker` (circuit breaking) and
//! `outlier` (outlier detection), `metrics` (per-RPC Prometheus metrics)
//! `listener` (accepting, stream limits, graceful drain) and `admission` (what an inbound
//! connection must be before it is served: the MtlsPolicy mode, the TLS handshake, the peer)
//! and `original_dst` (where an intercepted outbound connection was going), `on_demand`
//! (holding an outbound RPC until its virtual host arrives over VHDS), and `web` (the web
//! listener: browsers' gRPC-Web calls, CORS, then the outbound stack on the web routes).

pub mod access_log;
pub mod admission;
pub mod attempt;
pub mod body;
pub mod breaker;
pub mod call;
pub mod coalesce;
pub mod counting;
pub mod deadline;
pub mod fault;
pub mod grpc;
pub mod grpc_web;
pub mod inbound;
pub mod lb;
pub mod listener;
pub mod metrics;
pub mod on_demand;
pub mod original_dst;
pub mod outbound;
pub mod outlier;
pub mod pool;
pub mod retry;
pub mod web;
