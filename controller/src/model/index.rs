//! The index: the current set of objects, written by sources with `apply`, `delete` and
//! `reset`, read by translation. A `reset` (a relist after a watch restart, or a reread
//! directory) replaces one kind's objects in one step and reports only real differences,
//! so a restart never reads as a mass deletion followed by re-creation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Kind, Object, ObjectKey};

/// What a write changed; empty when the write changed nothing.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IndexChange {
    pub changed: Vec<ObjectKey>,
    pub deleted: Vec<ObjectKey>,
}

impl IndexChange {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.deleted.is_empty()
    }

    /// Adds what `other` changed.
    pub fn merge(&mut self, other: IndexChange) {
        self.changed.extend(other.changed);
        self.deleted.extend(other.deleted);
    }
}

#[derive(Debug, Default, Clone)]
pub struct Index {
    /// Shared with the source that read them (the local source keeps each file's objects).
    objects: BTreeMap<ObjectKey, Arc<Object>>,
    synced: BTreeSet<Kind>,
    /// Per kind, how many writes changed an object of that kind.
    revisions: BTreeMap<Kind, u64>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an object.
    pub fn apply(&mut self, object: impl Into<Arc<Object>>) -> IndexChange {
        let object = object.into();
        let key = object.key();
        if self.objects.get(&key) == Some(&object) {
            return IndexChange::default();
        }
        self.objects.insert(key.clone(), object);
        *self.revisions.entry(key.kind).or_default() += 1;
        IndexChange {
            changed: vec![key],
            deleted: vec![],
        }
    }

    pub fn delete(&mut self, key: &ObjectKey) -> IndexChange {
        match self.objects.remove(key) {
            Some(_) => {
                *self.revisions.entry(key.kind).or_default() += 1;
                IndexChange {
                    changed: vec![],
                    deleted: vec![key.clone()],
                }
            }
            None => IndexChange::default(),
        }
    }

    /// Replaces every object of `kind` with `objects` (a full listing) and marks the kind
    /// synced. Objects of other kinds are untouched.
    pub fn reset(&mut self, kind: Kind, objects: Vec<impl Into<Arc<Object>>>) -> IndexChange {
        let objects: Vec<Arc<Object>> = objects.into_iter().map(Into::into).collect();
        let mut change = IndexChange::default();
        let listed: BTreeSet<ObjectKey> = objects.iter().map(|o| o.key()).collect();
        let stale: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|key| key.kind == kind && !listed.contains(*key))
            .cloned()
            .collect();
        for key in &stale {
            change.merge(self.delete(key));
        }
        for object in objects.into_iter().filter(|o| o.kind() == kind) {
            change.merge(self.apply(object));
        }
        self.synced.insert(kind);
        change
    }

    /// A number that moves on whenever an object of `kind` changes: translation reuses what
    /// depends only on kinds that did not move.
    pub fn revision(&self, kind: Kind) -> u64 {
        self.revisions.get(&kind).copied().unwrap_or(0)
    }

    /// Marks a kind synced without listing it (for sources that do not provide it).
    pub fn mark_synced(&mut self, kind: Kind) {
        self.synced.insert(kind);
    }

    /// True once every kind has had its first full listing: nothing is served before.
    pub fn is_synced(&self) -> bool {
        Kind::ALL.iter().all(|kind| self.synced.contains(kind))
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&Object> {
        self.objects.get(key).map(|object| &**object)
    }

    /// Objects of one kind, in key order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Object> {
        self.objects
            .iter()
            .filter(move |(key, _)| key.kind == kind)
            .map(|(_, object)| &**object)
    }

    pub fn services(&self) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Service> {
        self.of_kind(Kind::Service).filter_map(|o| match o {
            Object::Service(s) => Some(s),
            _ => None,
        })
    }

    pub fn endpoint_slices(
        &self,
    ) -> impl Iterator<Item = &k8s_openapi::api::discovery::v1::EndpointSlice> {
        self.of_kind(Kind::EndpointSlice).filter_map(|o| match o {
            Object::EndpointSlice(s) => Some(s),
            _ => None,
        })
    }

    pub fn grpc_routes(&self) -> impl Iterator<Item = &crate::api::GrpcRoute> {
        self.of_kind(Kind::GrpcRoute).filter_map(|o| match o {
            Object::GrpcRoute(r) => Some(r),
            _ => None,
        })
    }

    pub fn fault_injections(&self) -> impl Iterator<Item = &crate::api::FaultInjection> {
        self.of_kind(Kind::FaultInjection).filter_map(|o| match o {
            Object::FaultInjection(f) => Some(f),
            _ => None,
        })
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn service(name: &str, port: i32) -> Object {
        Object::Service(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                    port,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn apply_reports_only_real_changes() {
        let mut index = Index::new();
        assert_eq!(index.apply(service("a", 1)).changed.len(), 1);
        assert!(index.apply(service("a", 1)).is_empty());
        assert_eq!(index.apply(service("a", 2)).changed.len(), 1);
    }

    #[test]
    fn relist_with_the_same_objects_changes_nothing() {
        let mut index = Index::new();
        index.reset(Kind::Service, vec![service("a", 1), service("b", 1)]);
        let change = index.reset(Kind::Service, vec![service("b", 1), service("a", 1)]);
        assert!(
            change.is_empty(),
            "a relist must not look like delete + create: {change:?}"
        );
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn relist_deletes_only_what_is_gone() {
        let mut index = Index::new();
        index.reset(Kind::Service, vec![service("a", 1), service("b", 1)]);
        let change = index.reset(Kind::Service, vec![service("a", 1)]);
        assert_eq!(
            change.deleted,
            [ObjectKey::new(Kind::Service, "default", "b")]
        );
        assert!(change.changed.is_empty());
    }

    #[test]
    fn a_kind_revision_moves_only_on_real_changes_of_that_kind() {
        let mut index = Index::new();
        index.apply(service("a", 1));
        let before = index.revision(Kind::Service);
        assert!(index.apply(service("a", 1)).is_empty());
        index.reset(Kind::Service, vec![service("a", 1)]);
        assert_eq!(index.revision(Kind::Service), before, "nothing changed");
        index.apply(service("a", 2));
        assert_eq!(index.revision(Kind::Service), before + 1);
        index.delete(&ObjectKey::new(Kind::Service, "default", "a"));
        assert_eq!(index.revision(Kind::Service), before + 2);
        assert_eq!(index.revision(Kind::EndpointSlice), 0);
    }

    #[test]
    fn synced_only_after_every_kind_listed() {
        let mut index = Index::new();
        for kind in &Kind::ALL[..5] {
            index.reset(*kind, Vec::<Object>::new());
        }
        assert!(!index.is_synced());
        index.reset(Kind::BackendPolicy, Vec::<Object>::new());
        assert!(index.is_synced());
    }
}
