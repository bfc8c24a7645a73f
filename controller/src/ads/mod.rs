//! The ADS server: Envoy v3 aggregated discovery over gRPC, State-of-the-World and Delta.
//!
//! The protocol is plain synchronous state machines per stream (`sotw`, `delta`) fed with
//! requests and snapshots; the tonic service (`server`) is a thin loop around them, and
//! `registry` and `metrics` record what each connected proxy was sent, ACKed and NACKed.

mod delta;
mod envoy_sds;
mod grpc;
mod metrics;
mod progress;
mod registry;
mod server;
mod snapshot;
mod sotw;
mod types;
mod vhds;

pub use delta::{DeltaReply, DeltaStream};
pub use envoy_sds::EnvoyCertificates;
pub use grpc::AdsServer;
pub use metrics::AdsMetrics;
pub use progress::{ClientEvent, Nack, TypeProgress};
pub use registry::{Protocol, ProxyRegistry, ProxyStatus};
pub use server::{AdsService, SnapshotReceiver};
pub use snapshot::{NodeTypes, Snapshot, SnapshotBuilder, TypeResources, VersionedResource};
pub use sotw::{SotwReply, SotwStream};
pub use types::ResourceType;
pub use vhds::{HostEntry, NamespaceHosts};
