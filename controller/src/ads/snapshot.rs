//! A snapshot: the complete set of xDS resources a proxy should hold, per type, each
//! resource with a content version. Versions are content hashes, so rebuilding the same
//! config (a relist, an apiserver restart, a controller restart) yields the same versions
//! and nothing is pushed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use envoy_types::pb::google::protobuf::Any;

use super::progress::Version;
use super::types::ResourceType;
use super::vhds::NamespaceHosts;

/// One named resource and its content version.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedResource {
    pub name: Arc<str>,
    pub version: Arc<str>,
    pub body: Any,
}

/// The resources of one type and the version of the whole set.
#[derive(Debug, Clone, Default)]
pub struct TypeResources {
    version: Version,
    /// What the version is made from ([`SetDigest`]).
    digest: SetDigest,
    resources: BTreeMap<Arc<str>, Arc<VersionedResource>>,
    /// What differs from the set this one replaced, by that set's version: worked out by
    /// the first stream that needs it and shared by all the others (see [`Self::changes_since`]).
    since: OnceLock<(Version, Arc<TypeChanges>)>,
}

impl PartialEq for TypeResources {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && self.resources == other.resources
    }
}

/// What differs between two sets of one type.
#[derive(Debug, Default, PartialEq)]
pub struct TypeChanges {
    /// Resources that are new or have another version, in name order.
    pub changed: Vec<Arc<VersionedResource>>,
    /// Names that are gone, in order.
    pub gone: Vec<Arc<str>>,
}

impl TypeResources {
    /// The set of `bodies`, each resource versioned by a hash of its content.
    pub fn from_bodies(bodies: impl IntoIterator<Item = (String, Any)>) -> Self {
        type_resources(bodies.into_iter().collect(), None)
    }

    /// [`Self::from_bodies`], sharing with `previous` (the set this one replaces) every
    /// resource whose body is the same: no hashing for it, and one copy in memory while
    /// streams still hold the previous set. When nothing changed, the set's version is the
    /// previous one too.
    pub fn from_bodies_after(
        bodies: impl IntoIterator<Item = (String, Any)>,
        previous: Option<&TypeResources>,
    ) -> Self {
        type_resources(bodies.into_iter().collect(), previous)
    }

    /// What differs from `prev` (one ordered walk over both sets). Every Delta stream
    /// brought up to the previous set asks the same question after a change; with a
    /// thousand proxies and thousands of resources, answering it once per stream was most
    /// of a push, so the answer for the first `prev` asked about is kept and shared.
    pub fn changes_since(&self, prev: &TypeResources) -> Arc<TypeChanges> {
        if let Some((version, changes)) = self.since.get()
            && *version == prev.version
        {
            return changes.clone();
        }
        let mut changes = TypeChanges::default();
        let mut old = prev.iter().peekable();
        for resource in self.iter() {
            while let Some(o) = old.next_if(|o| o.name < resource.name) {
                changes.gone.push(o.name.clone());
            }
            match old.next_if(|o| o.name == resource.name) {
                Some(o) if o.version == resource.version => {}
                _ => changes.changed.push(resource.clone()),
            }
        }
        changes.gone.extend(old.map(|o| o.name.clone()));
        let changes = Arc::new(changes);
        let _ = self.since.set((prev.version.clone(), changes.clone()));
        changes
    }

    /// This set with `bodies` put in under their names (added, or replacing the resource
    /// of that name), sharing every other resource: a change to a few of a thousand
    /// resources costs those few (and the set's version), not a pass over all of them.
    pub fn patched(&self, bodies: impl IntoIterator<Item = (String, Any)>) -> TypeResources {
        let mut resources = self.resources.clone();
        let mut digest = self.digest;
        for (name, body) in bodies {
            let old = resources.get(name.as_str());
            if old.is_some_and(|old| old.body == body) {
                continue;
            }
            if let Some(old) = old {
                digest.remove(old);
            }
            let resource = versioned(name, body);
            digest.add(&resource);
            resources.insert(resource.name.clone(), resource);
        }
        TypeResources {
            version: match digest == self.digest {
                true => self.version.clone(),
                false => digest.version(),
            },
            digest,
            resources,
            since: OnceLock::new(),
        }
    }

    /// The resources of this set named in `names` (the others left out), sharing their
    /// bodies: only the set's version is computed, from names and versions.
    pub fn subset<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> TypeResources {
        let resources: BTreeMap<Arc<str>, Arc<VersionedResource>> = names
            .into_iter()
            .filter_map(|name| self.resources.get_key_value(name))
            .map(|(name, resource)| (name.clone(), resource.clone()))
            .collect();
        let digest = SetDigest::of(&resources);
        TypeResources {
            version: digest.version(),
            digest,
            resources,
            since: OnceLock::new(),
        }
    }

    /// This set and `other`'s resources together (`other`'s win a name both have), sharing
    /// their bodies: only the set's version is computed.
    pub fn with(&self, other: &TypeResources) -> TypeResources {
        let mut resources = self.resources.clone();
        resources.extend(
            other
                .resources
                .iter()
                .map(|(name, resource)| (name.clone(), resource.clone())),
        );
        let digest = SetDigest::of(&resources);
        TypeResources {
            version: digest.version(),
            digest,
            resources,
            since: OnceLock::new(),
        }
    }

    /// The version of the whole set (what State-of-the-World sends as `version_info`).
    /// Shared: a stream records it as sent and ACKed without copying it.
    pub fn version(&self) -> &Version {
        &self.version
    }

    pub fn get(&self, name: &str) -> Option<&Arc<VersionedResource>> {
        self.resources.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<VersionedResource>> {
        self.resources.values()
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// Every resource of every type; immutable once built, shared behind an `Arc`. Each type's
/// set is itself shared, so a per-proxy variant (its own listeners) costs one type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    types: TypeSets,
    /// Per node id: the sets that replace the shared ones for that proxy alone (its
    /// listeners, which depend on its addresses and on the mTLS policy that selects it).
    /// Hashed: every stream looks its node up after every change, and with ten thousand
    /// proxies a search in an ordered map was a tenth of a stream's work in a push.
    nodes: Arc<HashMap<String, NodeTypes>>,
    /// Per client namespace, the virtual hosts Delta clients subscribe to on demand.
    namespaces: Arc<BTreeMap<String, Arc<NamespaceHosts>>>,
    /// In one Delta client's view: its namespace's hosts (what its VirtualHost
    /// subscriptions resolve against and its clusters follow).
    vhds: Option<Arc<NamespaceHosts>>,
    /// In one Delta client's view: clusters it gets whatever hosts it holds (its inbound
    /// cluster).
    pinned: Arc<[Arc<str>]>,
}

/// One proxy's own sets, replacing the shared sets of the same types.
pub type NodeTypes = Vec<(ResourceType, Arc<TypeResources>)>;

/// Whether two per-node maps are one, or have the same nodes with sets of the same
/// types and versions.
fn same_nodes(a: &Arc<HashMap<String, NodeTypes>>, b: &Arc<HashMap<String, NodeTypes>>) -> bool {
    let same_versions = |a: &NodeTypes, b: &NodeTypes| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(a, b)| a.0 == b.0 && a.1.version() == b.1.version())
    };
    Arc::ptr_eq(a, b)
        || a.len() == b.len()
            && a.iter()
                .all(|(node, own)| b.get(node).is_some_and(|other| same_versions(own, other)))
}

/// Whether two shared maps are one, or have the same keys with values `same` finds alike.
fn same_entries<V>(
    a: &Arc<BTreeMap<String, V>>,
    b: &Arc<BTreeMap<String, V>>,
    same: impl Fn(&V, &V) -> bool,
) -> bool {
    Arc::ptr_eq(a, b)
        || a.len() == b.len()
            && a.iter()
                .zip(b.iter())
                .all(|(a, b)| a.0 == b.0 && same(a.1, b.1))
}

static EMPTY: std::sync::LazyLock<Arc<TypeResources>> =
    std::sync::LazyLock::new(|| Arc::new(TypeResources::from_bodies([])));

/// A snapshot's set of each type, in push order. Every stream makes a view of the
/// snapshot for its proxy after each change, and copying an array costs six reference
/// counts where a map allocated (and later freed) its nodes: with the view's drop, a sixth
/// of a stream's work in a route change with a thousand proxies.
#[derive(Debug, Clone, PartialEq)]
struct TypeSets([Arc<TypeResources>; ResourceType::PUSH_ORDER.len()]);

impl Default for TypeSets {
    fn default() -> Self {
        Self(std::array::from_fn(|_| EMPTY.clone()))
    }
}

impl TypeSets {
    fn get(&self, ty: ResourceType) -> &Arc<TypeResources> {
        &self.0[ty.index()]
    }

    fn set(&mut self, ty: ResourceType, resources: Arc<TypeResources>) {
        self.0[ty.index()] = resources;
    }
}

impl Snapshot {
    pub fn builder() -> SnapshotBuilder {
        SnapshotBuilder::default()
    }

    pub fn resources(&self, ty: ResourceType) -> &TypeResources {
        self.shared_resources(ty).as_ref()
    }

    /// The resources of `ty` as the shared set itself (to keep it, cheaply).
    pub fn shared_resources(&self, ty: ResourceType) -> &Arc<TypeResources> {
        self.types.get(ty)
    }

    /// Whether both hold the same resources, judged by content versions alone: with
    /// thousands of resources, comparing bodies would cost more than the translation.
    /// Per-node sets and namespace hosts shared with `other` (a partial retranslation
    /// keeps them) are not walked: with ten thousand proxies, that walk took milliseconds.
    pub fn same_content(&self, other: &Snapshot) -> bool {
        ResourceType::PUSH_ORDER
            .into_iter()
            .all(|ty| self.resources(ty).version() == other.resources(ty).version())
            && same_nodes(&self.nodes, &other.nodes)
            && same_entries(&self.namespaces, &other.namespaces, |a, b| {
                a.same_content(b)
            })
    }

    /// This snapshot with the sets of some types replaced (one proxy's own resources).
    pub fn with_types(&self, own: &[(ResourceType, Arc<TypeResources>)]) -> Snapshot {
        let mut types = self.types.clone();
        for (ty, resources) in own {
            types.set(*ty, resources.clone());
        }
        Snapshot {
            types,
            nodes: Arc::default(),
            namespaces: self.namespaces.clone(),
            vhds: self.vhds.clone(),
            pinned: self.pinned.clone(),
        }
    }

    /// The virtual hosts served to Delta clients in `namespace`.
    pub fn namespace_hosts(&self, namespace: &str) -> Option<&Arc<NamespaceHosts>> {
        self.namespaces.get(namespace)
    }

    /// This view as a Delta client of `hosts`' namespace sees it: the shell route
    /// configuration, the virtual hosts it may subscribe to, and the clusters it gets
    /// whatever hosts it holds (`pinned`, those its listeners name).
    pub fn with_vhds(&self, hosts: Arc<NamespaceHosts>, pinned: &[String]) -> Snapshot {
        let mut view = self.with_types(&[
            (ResourceType::Route, hosts.shell().clone()),
            (ResourceType::VirtualHost, hosts.hosts().clone()),
        ]);
        let clusters = self.resources(ResourceType::Cluster);
        view.pinned = pinned
            .iter()
            .map(|name| {
                clusters
                    .get(name)
                    .map_or_else(|| Arc::from(name.as_str()), |r| r.name.clone())
            })
            .collect();
        view.vhds = Some(hosts);
        view
    }

    /// The clusters of this Delta client view that it gets whatever hosts it holds.
    pub fn pinned_clusters(&self) -> &[Arc<str>] {
        &self.pinned
    }

    /// The hosts of this Delta client view ([`Self::with_vhds`]).
    pub fn vhds(&self) -> Option<&NamespaceHosts> {
        self.vhds.as_deref()
    }

    /// The sets made for proxy `node_id` alone, if the translation knew that proxy.
    pub fn node_types(&self, node_id: &str) -> Option<&NodeTypes> {
        self.nodes.get(node_id)
    }

    /// The snapshot as proxy `node_id` sees it: the shared sets with its own in place
    /// (`None` until a translation has made that proxy's sets).
    pub fn for_node(&self, node_id: &str) -> Option<Snapshot> {
        self.node_types(node_id).map(|own| self.with_types(own))
    }

    /// This snapshot with other routing: `routes` as its RouteConfigurations and
    /// `namespaces` as the hosts Delta clients are served (a route-only retranslation).
    pub fn with_routing(
        &self,
        routes: Arc<TypeResources>,
        namespaces: BTreeMap<String, Arc<NamespaceHosts>>,
    ) -> Snapshot {
        let mut types = self.types.clone();
        types.set(ResourceType::Route, routes);
        Snapshot {
            types,
            nodes: self.nodes.clone(),
            namespaces: Arc::new(namespaces),
            vhds: None,
            pinned: Arc::new([]),
        }
    }

    /// The hosts Delta clients in every namespace are served.
    pub fn all_namespace_hosts(&self) -> &BTreeMap<String, Arc<NamespaceHosts>> {
        &self.namespaces
    }

    /// This snapshot with the per-node sets of `other` (an endpoint-only retranslation
    /// keeps the listeners it had).
    pub fn with_nodes_of(&self, other: &Snapshot) -> Snapshot {
        Snapshot {
            types: self.types.clone(),
            nodes: other.nodes.clone(),
            namespaces: other.namespaces.clone(),
            vhds: None,
            pinned: Arc::new([]),
        }
    }
}

/// The set of `bodies`, each versioned by a hash of its content unless `previous` holds the
/// same body under the same name (then that resource itself is kept). Comparing bytes is
/// far cheaper than hashing them (FNV-1a goes a byte at a time), and most of a
/// translation's resources are the same as in the last one.
fn type_resources(
    bodies: BTreeMap<String, Any>,
    previous: Option<&TypeResources>,
) -> TypeResources {
    let mut kept = 0;
    let resources: BTreeMap<Arc<str>, Arc<VersionedResource>> = bodies
        .into_iter()
        .map(|(name, body)| {
            if let Some(old) = previous
                .and_then(|previous| previous.get(&name))
                .filter(|old| old.body == body)
            {
                kept += 1;
                return (old.name.clone(), old.clone());
            }
            let resource = versioned(name, body);
            (resource.name.clone(), resource)
        })
        .collect();
    let (digest, version) = match previous {
        Some(previous) if kept == resources.len() && kept == previous.len() => {
            (previous.digest, previous.version.clone())
        }
        _ => {
            let digest = SetDigest::of(&resources);
            (digest, digest.version())
        }
    };
    TypeResources {
        version,
        digest,
        resources,
        since: OnceLock::new(),
    }
}

/// `body` as the resource `name`, versioned by a hash of its content.
fn versioned(name: String, body: Any) -> Arc<VersionedResource> {
    Arc::new(VersionedResource {
        version: content_hash([body.type_url.as_bytes(), &body.value]).into(),
        name: name.into(),
        body,
    })
}

/// The version of a set, as a number: the wrapping sum of a hash of each resource's name
/// and version. A sum does not depend on order, so a set patched with a few resources
/// adjusts it by those few instead of hashing every name again (with a thousand virtual
/// hosts in each of ten namespaces, that hashing was a tenth of a route change's
/// translation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SetDigest(u64);

impl SetDigest {
    fn of(resources: &BTreeMap<Arc<str>, Arc<VersionedResource>>) -> Self {
        let mut digest = SetDigest::default();
        for resource in resources.values() {
            digest.add(resource);
        }
        digest
    }

    fn resource(resource: &VersionedResource) -> u64 {
        fnv1a([resource.name.as_bytes(), resource.version.as_bytes()])
    }

    fn add(&mut self, resource: &VersionedResource) {
        self.0 = self.0.wrapping_add(Self::resource(resource));
    }

    fn remove(&mut self, resource: &VersionedResource) {
        self.0 = self.0.wrapping_sub(Self::resource(resource));
    }

    fn version(self) -> Version {
        Version::from(format!("{:016x}", self.0))
    }
}

/// Collects resources, then computes every version once in `build`.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    types: BTreeMap<ResourceType, BTreeMap<String, Any>>,
    nodes: BTreeMap<String, BTreeMap<ResourceType, BTreeMap<String, Any>>>,
    namespaces: BTreeMap<String, Arc<NamespaceHosts>>,
}

impl SnapshotBuilder {
    /// Adds a resource; a later resource of the same type and name replaces the earlier.
    pub fn add(&mut self, ty: ResourceType, name: impl Into<String>, body: Any) -> &mut Self {
        self.types.entry(ty).or_default().insert(name.into(), body);
        self
    }

    /// Adds a resource that only proxy `node_id` gets: for that proxy, the node's set of
    /// type `ty` replaces the shared one.
    pub fn add_for_node(
        &mut self,
        node_id: &str,
        ty: ResourceType,
        name: impl Into<String>,
        body: Any,
    ) -> &mut Self {
        self.nodes
            .entry(node_id.to_owned())
            .or_default()
            .entry(ty)
            .or_default()
            .insert(name.into(), body);
        self
    }

    /// Sets the virtual hosts Delta clients in `namespace` are served.
    pub fn namespace_hosts(&mut self, namespace: &str, hosts: NamespaceHosts) -> &mut Self {
        self.namespaces
            .insert(namespace.to_owned(), Arc::new(hosts));
        self
    }

    pub fn build(self) -> Snapshot {
        self.build_after(None)
    }

    /// Builds the snapshot, sharing with `previous` (the one it replaces) every resource
    /// that did not change ([`TypeResources::from_bodies_after`]).
    pub fn build_after(mut self, previous: Option<&Snapshot>) -> Snapshot {
        let types = TypeSets(ResourceType::PUSH_ORDER.map(|ty| {
            let bodies = self.types.remove(&ty).unwrap_or_default();
            let before = previous.map(|p| p.resources(ty));
            Arc::new(type_resources(bodies, before))
        }));
        let nodes = self
            .nodes
            .into_iter()
            .map(|(node, types)| {
                let before = previous.and_then(|p| p.node_types(&node));
                let types = types
                    .into_iter()
                    .map(|(ty, bodies)| {
                        let old = before
                            .and_then(|sets| sets.iter().find(|(t, _)| *t == ty))
                            .map(|(_, set)| &**set);
                        (ty, Arc::new(type_resources(bodies, old)))
                    })
                    .collect();
                (node, types)
            })
            .collect();
        Snapshot {
            types,
            nodes: Arc::new(nodes),
            namespaces: Arc::new(self.namespaces),
            vhds: None,
            pinned: Arc::new([]),
        }
    }
}

/// FNV-1a over the parts (each followed by a separator), as 16 hex digits: stable across
/// processes and releases, unlike std's hasher.
pub(crate) fn content_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    format!("{:016x}", fnv1a(parts))
}

fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn any(type_url: &str, value: &str) -> Any {
        Any {
            type_url: type_url.to_string(),
            value: value.as_bytes().to_vec(),
        }
    }

    /// A snapshot with `resources` given as (type, name, content).
    pub(crate) fn snapshot(resources: &[(ResourceType, &str, &str)]) -> Arc<Snapshot> {
        let mut builder = Snapshot::builder();
        for (ty, name, content) in resources {
            builder.add(*ty, *name, any(ty.type_url(), content));
        }
        Arc::new(builder.build())
    }

    #[test]
    fn same_content_same_versions() {
        let a = snapshot(&[
            (ResourceType::Cluster, "a", "1"),
            (ResourceType::Cluster, "b", "2"),
        ]);
        let b = snapshot(&[
            (ResourceType::Cluster, "b", "2"),
            (ResourceType::Cluster, "a", "1"),
        ]);
        assert_eq!(a, b);
        assert!(a.same_content(&b));
    }

    #[test]
    fn a_change_moves_that_resource_and_its_type_only() {
        let a = snapshot(&[
            (ResourceType::Cluster, "a", "1"),
            (ResourceType::Listener, "l", "x"),
        ]);
        let b = snapshot(&[
            (ResourceType::Cluster, "a", "2"),
            (ResourceType::Listener, "l", "x"),
        ]);
        let (ca, cb) = (
            a.resources(ResourceType::Cluster),
            b.resources(ResourceType::Cluster),
        );
        assert_ne!(ca.version(), cb.version());
        assert!(!a.same_content(&b));
        assert_ne!(ca.get("a").unwrap().version, cb.get("a").unwrap().version);
        assert_eq!(
            a.resources(ResourceType::Listener).version(),
            b.resources(ResourceType::Listener).version()
        );
    }

    #[test]
    fn a_patched_set_shares_the_rest_and_is_versioned_as_if_built_whole() {
        let set = TypeResources::from_bodies([
            ("a".to_owned(), any("t", "1")),
            ("b".to_owned(), any("t", "2")),
        ]);
        let same = set.patched([("b".to_owned(), any("t", "2"))]);
        assert_eq!(same.version(), set.version());
        assert!(Arc::ptr_eq(same.get("b").unwrap(), set.get("b").unwrap()));
        let patched = set.patched([
            ("b".to_owned(), any("t", "3")),
            ("c".to_owned(), any("t", "4")),
        ]);
        let whole = TypeResources::from_bodies([
            ("a".to_owned(), any("t", "1")),
            ("b".to_owned(), any("t", "3")),
            ("c".to_owned(), any("t", "4")),
        ]);
        assert_eq!(patched, whole);
        assert!(Arc::ptr_eq(
            patched.get("a").unwrap(),
            set.get("a").unwrap()
        ));
        let back = patched.patched([("b".to_owned(), any("t", "2"))]);
        let whole_again = TypeResources::from_bodies([
            ("a".to_owned(), any("t", "1")),
            ("b".to_owned(), any("t", "2")),
            ("c".to_owned(), any("t", "4")),
        ]);
        assert_eq!(back.version(), whole_again.version(), "patched twice");
    }

    #[test]
    fn a_set_version_tells_which_name_has_which_version() {
        let set = |a: &str, b: &str| {
            TypeResources::from_bodies([
                ("a".to_owned(), any("t", a)),
                ("b".to_owned(), any("t", b)),
            ])
        };
        assert_ne!(set("1", "2").version(), set("2", "1").version());
        assert_ne!(set("1", "2").version(), set("1", "1").version());
        assert_eq!(set("1", "2").version(), set("1", "2").version());
        assert_ne!(
            TypeResources::from_bodies([]).version(),
            TypeResources::from_bodies([("a".to_owned(), any("t", "1"))]).version()
        );
    }

    #[test]
    fn a_snapshot_built_after_another_shares_what_did_not_change() {
        let build = |cluster_b: &str, listener: &str, previous: Option<&Snapshot>| {
            let mut builder = Snapshot::builder();
            builder.add(ResourceType::Cluster, "a", any("x", "1"));
            builder.add(ResourceType::Cluster, "b", any("x", cluster_b));
            builder.add_for_node("n", ResourceType::Listener, "l", any("x", listener));
            builder.build_after(previous)
        };
        let first = build("2", "l1", None);
        let second = build("3", "l1", Some(&first));
        let clusters = |s: &Snapshot, name: &str| {
            s.resources(ResourceType::Cluster)
                .get(name)
                .unwrap()
                .clone()
        };
        assert!(Arc::ptr_eq(&clusters(&first, "a"), &clusters(&second, "a")));
        assert!(!Arc::ptr_eq(
            &clusters(&first, "b"),
            &clusters(&second, "b")
        ));
        assert_eq!(
            second,
            build("3", "l1", None),
            "the same versions as a fresh build"
        );
        let listener = |s: &Snapshot| {
            s.for_node("n")
                .unwrap()
                .resources(ResourceType::Listener)
                .get("l")
                .unwrap()
                .clone()
        };
        assert!(Arc::ptr_eq(&listener(&first), &listener(&second)));

        let third = build("3", "l2", Some(&second));
        assert_eq!(
            second.resources(ResourceType::Cluster).version(),
            third.resources(ResourceType::Cluster).version(),
        );
        assert!(!Arc::ptr_eq(&listener(&second), &listener(&third)));
        assert_eq!(third, build("3", "l2", None));

        // A set that lost a resource is a new version even though all that is left is kept.
        let mut fewer = Snapshot::builder();
        fewer.add(ResourceType::Cluster, "a", any("x", "1"));
        let fewer = fewer.build_after(Some(&third));
        assert_ne!(
            fewer.resources(ResourceType::Cluster).version(),
            third.resources(ResourceType::Cluster).version()
        );
    }

    #[test]
    fn with_types_replaces_those_types_only() {
        let base = snapshot(&[
            (ResourceType::Cluster, "c", "1"),
            (ResourceType::Listener, "l", "a"),
        ]);
        let listeners = TypeResources::from_bodies([("l".to_string(), any("x", "b"))]);
        let node = base.with_types(&[(ResourceType::Listener, Arc::new(listeners))]);
        assert_eq!(
            node.resources(ResourceType::Cluster),
            base.resources(ResourceType::Cluster)
        );
        assert_ne!(
            node.resources(ResourceType::Listener).version(),
            base.resources(ResourceType::Listener).version()
        );
    }

    #[test]
    fn per_node_sets_replace_the_shared_ones_for_that_node_only() {
        let mut builder = Snapshot::builder();
        builder.add(ResourceType::Cluster, "c", any("x", "1"));
        builder.add_for_node(
            "a.default",
            ResourceType::Listener,
            "outbound",
            any("x", "a"),
        );
        let built = builder.build();
        assert!(built.resources(ResourceType::Listener).is_empty());
        let node = built.for_node("a.default").unwrap();
        assert_eq!(node.resources(ResourceType::Listener).len(), 1);
        assert_eq!(node.resources(ResourceType::Cluster).len(), 1);
        assert!(built.for_node("b.default").is_none());

        let mut other = Snapshot::builder();
        other.add(ResourceType::Cluster, "c", any("x", "1"));
        other.add_for_node(
            "a.default",
            ResourceType::Listener,
            "outbound",
            any("x", "b"),
        );
        assert!(
            !built.same_content(&other.build()),
            "a node's own set counts"
        );
    }

    #[test]
    fn subset_shares_bodies_and_versions_by_name() {
        let all = snapshot(&[
            (ResourceType::Route, "outbound/a", "1"),
            (ResourceType::Route, "outbound/b", "2"),
        ]);
        let routes = all.resources(ResourceType::Route);
        let only_a = routes.subset(["outbound/a", "missing"]);
        assert_eq!(only_a.len(), 1);
        assert!(Arc::ptr_eq(
            only_a.get("outbound/a").unwrap(),
            routes.get("outbound/a").unwrap()
        ));
        assert_eq!(only_a.version(), routes.subset(["outbound/a"]).version());
        assert_ne!(only_a.version(), routes.version());
    }

    #[test]
    fn changes_since_lists_changed_and_gone_names_and_is_shared() {
        fn names(changes: &TypeChanges) -> (Vec<&str>, Vec<&str>) {
            let changed = changes.changed.iter().map(|r| &*r.name).collect();
            let gone = changes.gone.iter().map(|n| &**n).collect();
            (changed, gone)
        }
        let old = snapshot(&[
            (ResourceType::Cluster, "a", "1"),
            (ResourceType::Cluster, "b", "1"),
            (ResourceType::Cluster, "d", "1"),
        ]);
        let new = snapshot(&[
            (ResourceType::Cluster, "b", "2"),
            (ResourceType::Cluster, "c", "1"),
            (ResourceType::Cluster, "d", "1"),
        ]);
        let (old, new) = (
            old.resources(ResourceType::Cluster),
            new.resources(ResourceType::Cluster),
        );
        let first = new.changes_since(old);
        assert_eq!(names(&first), (vec!["b", "c"], vec!["a"]));
        assert!(
            Arc::ptr_eq(&first, &new.changes_since(old)),
            "computed once"
        );
        // Another starting point is answered too, just not kept.
        let from_empty = new.changes_since(&TypeResources::default());
        assert_eq!(names(&from_empty), (vec!["b", "c", "d"], vec![]));
        assert!(Arc::ptr_eq(&first, &new.changes_since(old)));
    }

    #[test]
    fn an_absent_type_is_empty_with_a_stable_version() {
        let empty = Snapshot::default();
        let built = Snapshot::builder().build();
        assert!(empty.resources(ResourceType::Route).is_empty());
        assert_eq!(
            empty.resources(ResourceType::Route).version(),
            built.resources(ResourceType::Route).version()
        );
    }
}
