//! Retranslating part of the last translation when only part of its inputs changed, each
//! giving what a whole translation of the same inputs gives (the publisher's tests check
//! it), for the two most frequent changes:
//! - **Endpoints** (EndpointSlices, or which endpoints run a proxy): only the
//!   ClusterLoadAssignments are made again.
//! - **Routes** (GrpcRoutes, FaultInjections): the routes and faults are translated again
//!   (every report of theirs is new), then only the virtual hosts of the Service ports whose
//!   attached routes or faults changed are made again, in every client namespace, and each
//!   namespace's hosts are patched ([`NamespaceHosts::patched`]). Clusters, endpoints and
//!   listeners are kept. With a thousand Services in ten namespaces, a whole translation
//!   takes 40–70 ms; this one touches one host per namespace for a change to one route.
//!   It gives up (`None`: translate whole) when the set of client namespaces would change,
//!   the RouteConfiguration `web` would come or go, or a changed host would answer to other
//!   authorities; none of these happens without a change of Services or proxies, except a
//!   route in a namespace that had none.
//!
//! [`NamespaceHosts::patched`]: crate::ads::NamespaceHosts::patched

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::fault::AppliedFault;
use super::routes::AttachedRoute;
use super::vhosts::{self, HostSources};
use super::workloads::ProxySummary;
use super::{Members, Translation, WEB, Workloads, mtls, services, workloads};
use crate::ads::{ResourceType, TypeResources};
use crate::model::{Index, Kind};

/// What a translation's routing was made from, kept for the next partial retranslation:
/// neither changes Services or proxies, so both reuse the catalog (with a thousand
/// Services, building it again was a fifth of a route change's translation), and a
/// route-only one the summary of the proxies.
#[derive(Debug)]
pub(super) struct RoutingInputs {
    pub catalog: Arc<services::Catalog>,
    /// What building the catalog warned about (skipped Services).
    pub catalog_warnings: Vec<String>,
    pub proxies: ProxySummary,
    pub routes: Vec<AttachedRoute>,
    pub faults: Vec<AppliedFault>,
    /// Every client namespace, with whether it gets the inline `outbound/<ns>`.
    pub namespaces: Vec<(String, bool)>,
    pub sources: HostSources,
}

/// `previous`, a translation of this index for these `workloads` and `members` made before only
/// EndpointSlices changed, with its ClusterLoadAssignments made again (marked for the same
/// workloads): nothing else depends on an EndpointSlice, and endpoint changes (pods coming
/// and going) are the most frequent change there is. The per-proxy listeners are kept.
pub fn retranslate_endpoints(
    index: &Index,
    workloads: &Workloads,
    members: &Members,
    mtls: bool,
    previous: &Translation,
) -> Translation {
    let mut warnings = previous.routing.catalog_warnings.clone();
    let catalog = &previous.routing.catalog;
    let targets = match mtls {
        true => workloads::MtlsTargets::build(workloads, members, &mtls::PolicySet::build(index)),
        false => workloads::MtlsTargets::default(),
    };
    let assignments = super::load_assignments(index, catalog, &targets, &mut warnings);
    let endpoints = Arc::new(TypeResources::from_bodies_after(
        assignments,
        Some(previous.snapshot.resources(ResourceType::Endpoint)),
    ));
    Translation {
        snapshot: previous
            .snapshot
            .with_types(&[(ResourceType::Endpoint, endpoints)])
            .with_nodes_of(&previous.snapshot),
        reports: previous.reports.clone(),
        enforcing: previous.enforcing.clone(),
        warnings,
        routing: previous.routing.clone(),
    }
}

/// `previous`, a translation of this index made before only GrpcRoutes and FaultInjections
/// changed (the proxies are the same), with its routing made again: only the virtual
/// hosts that changed are remade. `None` when that cannot be done (see the module comment).
pub fn retranslate_routes(index: &Index, previous: &Translation) -> Option<Translation> {
    let before = &previous.routing;
    let catalog = &before.catalog;
    let mut reports: BTreeMap<_, _> = previous
        .reports
        .iter()
        .filter(|(key, _)| !matches!(key.kind, Kind::GrpcRoute | Kind::FaultInjection))
        .map(|(key, report)| (key.clone(), report.clone()))
        .collect();
    let (attached, faults, web) =
        super::translate_routing(index, catalog, &before.proxies, &mut reports);
    let namespaces = super::client_namespaces(catalog, &attached, &before.proxies);
    let route_configs = previous.snapshot.resources(ResourceType::Route);
    if namespaces != before.namespaces || web.is_some() != route_configs.get(WEB).is_some() {
        return None;
    }
    let changed = vhosts::changed_ports(
        catalog,
        (&before.routes, &before.faults),
        (&attached, &faults),
    );
    let inline: BTreeSet<&str> = namespaces
        .iter()
        .filter_map(|(ns, inline)| inline.then_some(ns.as_str()))
        .collect();
    let mut sources = before.sources.clone();
    let (hosts, mut configs) = vhosts::patch_route_configurations(
        previous.snapshot.all_namespace_hosts(),
        &inline,
        catalog,
        (&attached, &faults),
        &changed,
        &mut sources,
    )?;
    configs.extend(web.map(|web| (WEB.to_owned(), web)));
    super::attach_hosts(&sources, &mut reports);
    Some(Translation {
        snapshot: previous
            .snapshot
            .with_routing(Arc::new(route_configs.patched(configs)), hosts),
        reports: Arc::new(reports),
        enforcing: previous.enforcing.clone(),
        warnings: previous.warnings.clone(),
        routing: Arc::new(RoutingInputs {
            catalog: catalog.clone(),
            catalog_warnings: before.catalog_warnings.clone(),
            proxies: before.proxies.clone(),
            routes: attached,
            faults,
            namespaces,
            sources,
        }),
    })
}
