//! The domain model: every object weft reads (Services, EndpointSlices and the four weft
//! kinds), held in one synchronous in-memory index that sources write to and translation
//! reads from. No I/O here.

mod index;

pub use index::{Index, IndexChange};

use std::fmt;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::api::{BackendPolicy, FaultInjection, GrpcRoute, MtlsPolicy};

/// The kinds of object the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    EndpointSlice,
    GrpcRoute,
    FaultInjection,
    MtlsPolicy,
    BackendPolicy,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::GrpcRoute,
        Kind::FaultInjection,
        Kind::MtlsPolicy,
        Kind::BackendPolicy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::GrpcRoute => "GrpcRoute",
            Kind::FaultInjection => "FaultInjection",
            Kind::MtlsPolicy => "MtlsPolicy",
            Kind::BackendPolicy => "BackendPolicy",
        }
    }
}

/// Identifies one object: kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.name(), self.namespace, self.name)
    }
}

/// One object as read from a source.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Service(Service),
    EndpointSlice(EndpointSlice),
    GrpcRoute(GrpcRoute),
    FaultInjection(FaultInjection),
    MtlsPolicy(MtlsPolicy),
    BackendPolicy(BackendPolicy),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::GrpcRoute(_) => Kind::GrpcRoute,
            Object::FaultInjection(_) => Kind::FaultInjection,
            Object::MtlsPolicy(_) => Kind::MtlsPolicy,
            Object::BackendPolicy(_) => Kind::BackendPolicy,
        }
    }

    fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::GrpcRoute(o) => &o.metadata,
            Object::FaultInjection(o) => &o.metadata,
            Object::MtlsPolicy(o) => &o.metadata,
            Object::BackendPolicy(o) => &o.metadata,
        }
    }

    /// The object's key; a missing namespace means `default`, as kubectl assumes.
    pub fn key(&self) -> ObjectKey {
        let meta = self.metadata();
        ObjectKey::new(
            self.kind(),
            meta.namespace.clone().unwrap_or_else(|| "default".into()),
            meta.name.clone().unwrap_or_default(),
        )
    }

    pub fn generation(&self) -> Option<i64> {
        self.metadata().generation
    }
}
