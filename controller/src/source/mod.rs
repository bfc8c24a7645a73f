//! Sources: where the objects in the [`Index`] come from. A source lists everything once
//! (the first full sync, after which [`Index::is_synced`] is true and config may be served),
//! then keeps the index current and tells its subscribers when it changed.
//!
//! - [`local`]: a directory of YAML files (local mode), polled for changes.
//! - [`kube`]: kube-rs watchers on the Kubernetes API (Kubernetes mode).
//!
//! Every source writes to one shared index; the lock is held only for synchronous index
//! writes and reads, never across an `.await`.

pub mod kube;
pub mod local;

use std::sync::{Arc, Mutex};

use crate::model::Index;

/// The index shared by a source (writer) and translation (reader).
pub type SharedIndex = Arc<Mutex<Index>>;
