//! Where the mesh's members come from besides connected proxies (see `ads::registry`):
//! in Kubernetes mode the pods the injector labelled (`pods`), in local mode the members
//! this controller knew before it restarted (`store`, a file in the state directory).
//! Both exist so that a client keeps reaching a `Strict` server over mutual TLS while
//! that server's proxy is connected elsewhere or not yet again.

pub mod pods;
pub mod store;
