//! What each proxy stream has been sent, ACKed and NACKed, per resource type, and the
//! events a request produced. Shared by the State-of-the-World and Delta state machines;
//! read by metrics, `/debug/proxies` and the status writer.

use serde::Serialize;

use super::types::ResourceType;

/// A rejected update: which version, and the client's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nack {
    pub version: String,
    pub message: String,
}

/// Per type: the version last sent, the last one ACKed, and the last NACK.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeProgress {
    pub sent_version: Option<String>,
    pub acked_version: Option<String>,
    pub last_nack: Option<Nack>,
}

/// What one client request meant, beyond any responses it caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Ack {
        ty: ResourceType,
        version: String,
    },
    Nack {
        ty: ResourceType,
        nack: Nack,
    },
    /// A response nonce that is not the latest (SotW) or not outstanding (Delta): the
    /// request's ACK/NACK is ignored, as the xDS protocol requires.
    StaleNonce {
        ty: ResourceType,
        nonce: String,
    },
    /// A type weft does not serve; the request is ignored and the stream stays open.
    UnknownType {
        type_url: String,
    },
}

/// Numbers nonces per stream; they only need to be unique on the stream.
#[derive(Debug, Default)]
pub(crate) struct NonceSource(u64);

impl NonceSource {
    pub(crate) fn next(&mut self) -> (u64, String) {
        self.0 += 1;
        (self.0, self.0.to_string())
    }
}
