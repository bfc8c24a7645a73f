//! The ADS server: Envoy v3 aggregated discovery over gRPC, State-of-the-World and Delta.
//!
//! The protocol is plain synchronous state machines per stream (`sotw`, `delta`) fed with
//! requests and snapshots; the tonic service (`server`) is a thin loop around them.

mod delta;
mod progress;
mod snapshot;
mod sotw;
mod types;

pub use delta::{DeltaReply, DeltaStream};
pub use progress::{ClientEvent, Nack, TypeProgress};
pub use snapshot::{Snapshot, SnapshotBuilder, TypeResources, VersionedResource};
pub use sotw::{SotwReply, SotwStream};
pub use types::ResourceType;
