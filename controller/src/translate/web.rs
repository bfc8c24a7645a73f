//! What browsers reach: the RouteConfiguration `web` and the per-proxy `web` Listener.
//!
//! A browser's `Host` is the page's (or a gateway's) name, never a mesh Service, so a web
//! listener cannot route by authority as `outbound` does. It routes by the gRPC service in
//! the path instead: `web` has one virtual host (`*`), and for each GrpcRoute with
//! `spec.web`, in namespace/name order, and each service it lists, the routes of the
//! route's first parent Service port as its own namespace's clients see them (its rules,
//! faults, timeouts, retries and the default route to the Service), each narrowed to
//! `/<service>/`. A service an earlier route claimed stays with it (the later route gets a
//! note). Each of those routes carries the route's CORS policy as
//! `typed_per_filter_config["envoy.filters.http.cors"]`, which both proxies read.
//!
//! Narrowing a route to `/<service>/`: a path or prefix already inside it is kept; a broader
//! prefix (`/`) becomes the service's prefix; a route of another service is dropped; a
//! regular expression becomes the service's prefix plus a `:path` HeaderMatcher with the
//! expression.
//!
//! The `web` Listener (for a proxy whose node metadata has `webAddr`) is one HTTP connection
//! manager, HTTP/1.1 and HTTP/2, with Envoy's `grpc_web` filter (gRPC-Web in, gRPC to the
//! upstream), `cors` (preflights answered from the route's policy; a preflight from another
//! origin is not forwarded), the fault filter and the router, and a local reply mapper that
//! answers a passed deadline as DEADLINE_EXCEEDED. weft-proxy does the same itself
//! (`dataplane/src/proxy/web.rs`).
//!
//! Faults: Envoy answers a gRPC-Web request's local replies as plain HTTP (the connection
//! manager decides a request is gRPC before its `grpc_web` filter rewrites the content
//! type), and that filter then derives the gRPC status from the HTTP status. A fault whose
//! status has an HTTP equivalent (INTERNAL 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403,
//! UNIMPLEMENTED 404, UNAVAILABLE 503) is therefore given as that HTTP status on web routes,
//! so browsers get the configured status from either proxy; any other status reaches them
//! exactly through weft-proxy and as UNKNOWN through Envoy. The message reaches every client
//! through weft-proxy; through Envoy, Connect's client reads it and the official client shows
//! its own text for a non-200 answer (`deadline_as_grpc_status` says why no mapper helps).
//!
//! Encoding: a faulted route already holds one `typed_per_filter_config` entry, and prost
//! writes a map (a `HashMap`) in no fixed order, so the CORS entry is appended to the
//! encoded route as one more map entry (field 13; protobuf readers merge map entries in any
//! order), and the RouteConfiguration is assembled from encoded routes: the same content
//! always gives the same bytes, hence the same version.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, Route, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::grpc_web::v3::GrpcWeb;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, RouteSpecifier,
};
use envoy_types::pb::envoy::config::accesslog::v3::access_log_filter::FilterSpecifier;
use envoy_types::pb::envoy::config::accesslog::v3::comparison_filter::Op;
use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLogFilter, ComparisonFilter, StatusCodeFilter,
};
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeUInt32,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, LocalReplyConfig, Rds, ResponseMapper,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration, UInt32Value};
use envoy_types::util::pack_any;
use prost::Message as _;
use prost::Name as _;

use super::ResourceReport;
use super::cluster::ads_config_source;
use super::fault::{AppliedFault, FAULT_FILTER, with_faults};
use super::listener::{ROUTER_FILTER, hcm_listener, http_filter};
use super::routes::AttachedRoute;
use super::services::Catalog;
use super::vhosts::{clusters_of, entries, length_delimited, routes_by_parent};
use crate::api::WebCors;
use crate::model::ObjectKey;

/// The name of the web Listener and of the RouteConfiguration it reads.
pub const WEB: &str = "web";
/// Envoy's CORS filter, and the key of its per-route policy.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
/// Envoy's gRPC-Web filter.
pub(super) const GRPC_WEB_FILTER: &str = "envoy.filters.http.grpc_web";

/// Request headers gRPC-Web clients send on every call (the official client's and
/// Connect's), allowed whatever the route lists.
const CLIENT_HEADERS: &[&str] = &["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"];
/// Response headers every page may read: the gRPC status.
const STATUS_HEADERS: &[&str] = &["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// The RouteConfiguration `web` (see the module comment); notes go to the routes' reports.
pub(super) fn web_route_configuration(
    catalog: &Catalog,
    routes: &[AttachedRoute],
    faults: &[AppliedFault],
    reports: &mut BTreeMap<ObjectKey, ResourceReport>,
) -> Any {
    let by_parent = routes_by_parent(routes);
    let mut claimed: HashMap<&str, &ObjectKey> = HashMap::new();
    let mut encoded = Vec::new();
    for route in routes {
        let Some(web) = &route.web else { continue };
        let mut notes = Vec::new();
        let parent = route
            .parents
            .first()
            .and_then(|(ns, name, port)| Some((catalog.get(ns, name)?, *port)));
        let Some((service, port)) = parent else {
            notes.push("spec.web: no parent Service exists, so browsers cannot call it".into());
            add_notes(reports, &route.key, notes);
            continue;
        };
        let attached = by_parent
            .get(&(service.namespace.as_str(), service.name.as_str(), port))
            .map_or(&[][..], Vec::as_slice);
        let host_routes = with_faults(
            entries(service, port, &route.key.namespace, attached),
            &service.namespace,
            &service.name,
            faults,
        );
        let cors = web.cors.as_ref().map(|cors| pack_any(cors_policy(cors)));
        for grpc_service in &web.services {
            if let Some(owner) = claimed.get(grpc_service.as_str()) {
                notes.push(format!(
                    "spec.web.services: {grpc_service} is served to browsers by GrpcRoute {}/{}, which comes first",
                    owner.namespace, owner.name
                ));
                continue;
            }
            claimed.insert(grpc_service, &route.key);
            for host_route in &host_routes {
                if let Some(mut narrowed) = within_service(host_route, grpc_service) {
                    abort_as_http_status(&mut narrowed);
                    encoded.push(encode_route(&narrowed, cors.as_ref()));
                }
            }
        }
        add_notes(reports, &route.key, notes);
    }
    Any {
        type_url: RouteConfiguration::type_url(),
        value: encode_config(&encoded),
    }
}

/// The clusters a packed RouteConfiguration's routes send to (what a Delta client of the
/// `web` routes is sent with them).
pub fn route_clusters(config: &Any) -> Vec<String> {
    RouteConfiguration::decode(config.value.as_slice())
        .map(|config| {
            let routes: Vec<Route> = config
                .virtual_hosts
                .into_iter()
                .flat_map(|host| host.routes)
                .collect();
            clusters_of(&routes)
        })
        .unwrap_or_default()
}

fn add_notes(
    reports: &mut BTreeMap<ObjectKey, ResourceReport>,
    key: &ObjectKey,
    notes: Vec<String>,
) {
    if let Some(report) = reports.get_mut(key) {
        report.notes.extend(notes);
    }
}

/// `route` restricted to RPCs of `service` (`None`: it routes none of them).
fn within_service(route: &Route, service: &str) -> Option<Route> {
    let prefix = format!("/{service}/");
    let mut route = route.clone();
    route.name = format!("{service}:{}", route.name);
    let matcher = route.r#match.as_mut()?;
    let specifier = match matcher.path_specifier.take()? {
        PathSpecifier::Path(path) if path.starts_with(&prefix) => PathSpecifier::Path(path),
        PathSpecifier::Prefix(p) if p.starts_with(&prefix) => PathSpecifier::Prefix(p),
        PathSpecifier::Prefix(p) if prefix.starts_with(&p) => PathSpecifier::Prefix(prefix),
        PathSpecifier::SafeRegex(regex) => {
            matcher.headers.insert(0, path_regex(regex));
            PathSpecifier::Prefix(prefix)
        }
        _ => return None,
    };
    matcher.path_specifier = Some(specifier);
    Some(route)
}

/// Envoy answers a gRPC-Web request's local replies (a fault's abort among them) as plain
/// HTTP, which its `grpc_web` filter turns into a gRPC status by the HTTP status alone (see
/// the module comment): an abort's gRPC status is lost (`UNKNOWN`) unless it is given as the
/// HTTP status that maps back to it. So on web routes an abort with one of those statuses
/// names the HTTP status instead; weft-proxy maps it back the same way. Other statuses are
/// left as they are: browsers get them exactly from weft-proxy, and `UNKNOWN` from Envoy.
fn abort_as_http_status(route: &mut Route) {
    let Some(any) = route.typed_per_filter_config.get_mut(FAULT_FILTER) else {
        return;
    };
    let Ok(mut fault) = HttpFault::decode(any.value.as_slice()) else {
        return;
    };
    let Some(abort) = fault.abort.as_mut() else {
        return;
    };
    let Some(ErrorType::GrpcStatus(code)) = abort.error_type else {
        return;
    };
    let http = match code {
        13 => 400, // INTERNAL
        16 => 401, // UNAUTHENTICATED
        7 => 403,  // PERMISSION_DENIED
        12 => 404, // UNIMPLEMENTED
        14 => 503, // UNAVAILABLE
        _ => return,
    };
    abort.error_type = Some(ErrorType::HttpStatus(http));
    *any = pack_any(fault);
}

/// A `:path` HeaderMatcher with a route's path expression.
fn path_regex(regex: RegexMatcher) -> HeaderMatcher {
    HeaderMatcher {
        name: ":path".into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            ignore_case: false,
            match_pattern: Some(MatchPattern::SafeRegex(regex)),
        })),
        ..Default::default()
    }
}

/// Envoy's CORS policy for a route's `spec.web.cors`: exact origins ignoring case (`*`: any),
/// `POST`, the client headers plus the listed ones, the status plus the listed ones, and
/// preflights from other origins answered rather than forwarded.
fn cors_policy(cors: &WebCors) -> CorsPolicy {
    let origins = cors
        .allow_origins
        .iter()
        .map(|origin| {
            let pattern = match origin.as_str() {
                "*" => MatchPattern::SafeRegex(RegexMatcher {
                    regex: ".*".into(),
                    engine_type: None,
                }),
                exact => MatchPattern::Exact(exact.to_owned()),
            };
            StringMatcher {
                ignore_case: origin != "*",
                match_pattern: Some(pattern),
            }
        })
        .collect();
    CorsPolicy {
        allow_origin_string_match: origins,
        allow_methods: "POST".into(),
        allow_headers: header_list(CLIENT_HEADERS, &cors.allow_headers),
        expose_headers: header_list(STATUS_HEADERS, &cors.expose_headers),
        max_age: cors
            .max_age
            .as_ref()
            .and_then(|age| age.to_std().ok())
            .map(|age| age.as_secs().to_string())
            .unwrap_or_default(),
        forward_not_matching_preflights: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// `always` then `listed` (lower case), each once, comma-separated.
fn header_list(always: &[&str], listed: &[String]) -> String {
    let mut names: Vec<String> = always.iter().map(|name| (*name).to_owned()).collect();
    for name in listed {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(",")
}

/// A route's bytes, with `cors` appended as one more `typed_per_filter_config` entry.
fn encode_route(route: &Route, cors: Option<&Any>) -> Vec<u8> {
    let mut bytes = route.encode_to_vec();
    if let Some(cors) = cors {
        let mut entry = Vec::new();
        length_delimited(1, CORS_FILTER.as_bytes(), &mut entry);
        length_delimited(2, &cors.encode_to_vec(), &mut entry);
        length_delimited(13, &entry, &mut bytes);
    }
    bytes
}

/// `RouteConfiguration { name: "web", virtual_hosts: [{ name: "web", domains: ["*"],
/// routes }] }` from encoded routes, as prost writes it (fields in number order).
fn encode_config(routes: &[Vec<u8>]) -> Vec<u8> {
    let mut host = Vec::new();
    length_delimited(1, WEB.as_bytes(), &mut host);
    length_delimited(2, b"*", &mut host);
    for route in routes {
        length_delimited(3, route, &mut host);
    }
    let mut config = Vec::new();
    length_delimited(1, WEB.as_bytes(), &mut config);
    length_delimited(2, &host, &mut config);
    config
}

/// Envoy's own answer when a call's deadline passes (its route timeout or the client's
/// `grpc-timeout`) is a plain 504, which its `grpc_web` filter turns into UNAVAILABLE. This
/// mapper makes every 504 Envoy answers itself on the web listener (mappers see local
/// replies only, never an upstream's answer) a gRPC-Web answer instead: 200, the gRPC-Web
/// content type (so the filter passes it as it is) and `grpc-status: 4`
/// (DEADLINE_EXCEEDED), what weft-proxy answers.
///
/// Faults get no such mapper: a mapper's headers cannot carry the reply's text (Envoy does
/// not expand `%LOCAL_REPLY_BODY%` there), so it would lose the fault's message, which the
/// `grpc_web` filter does pass on as `grpc-message` for clients that read it (Connect).
fn deadline_as_grpc_status() -> LocalReplyConfig {
    let header = |key: &str, value: &str| HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    };
    LocalReplyConfig {
        mappers: vec![ResponseMapper {
            filter: Some(AccessLogFilter {
                filter_specifier: Some(FilterSpecifier::StatusCodeFilter(StatusCodeFilter {
                    comparison: Some(ComparisonFilter {
                        op: Op::Eq as i32,
                        value: Some(RuntimeUInt32 {
                            default_value: 504,
                            runtime_key: "weft.web.deadline_status".into(),
                        }),
                    }),
                })),
            }),
            status_code: Some(UInt32Value { value: 200 }),
            body: Some(DataSource {
                specifier: Some(Specifier::InlineString(String::new())),
                ..Default::default()
            }),
            headers_to_add: vec![
                header("content-type", "application/grpc-web+proto"),
                header("grpc-status", "4"),
                header("grpc-message", "deadline exceeded"),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The `web` Listener of a proxy, at `addr`.
pub(super) fn web_listener(addr: SocketAddr) -> (String, Any) {
    let manager = HttpConnectionManager {
        stat_prefix: WEB.into(),
        // Browsers speak HTTP/1.1 or HTTP/2; AUTO takes both.
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: WEB.into(),
        })),
        http_filters: vec![
            http_filter(GRPC_WEB_FILTER, pack_any(GrpcWeb::default())),
            // Empty: the policy comes from each route.
            http_filter(CORS_FILTER, pack_any(Cors::default())),
            http_filter(FAULT_FILTER, pack_any(HttpFault::default())),
            http_filter(ROUTER_FILTER, pack_any(Router::default())),
        ],
        generate_request_id: Some(BoolValue { value: false }),
        stream_idle_timeout: Some(Duration::default()),
        local_reply_config: Some(deadline_as_grpc_status()),
        ..Default::default()
    };
    let listener = hcm_listener(WEB, addr, TrafficDirection::Inbound, manager);
    (WEB.to_owned(), listener)
}

#[cfg(test)]
mod tests;
