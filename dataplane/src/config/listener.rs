//! `Listener` → [`ListenerConfig`]: the outbound listener's one HTTP connection manager,
//! which must read its routes over RDS and run only the on-demand filter (VHDS, which
//! weft-proxy does natively: see `on_demand.rs`), the fault filter (configured per route)
//! and the router. The listener named `inbound` is converted by `inbound.rs` instead (its
//! mTLS mode); a listener of any other name is read as an outbound one, as it always was.
//! The listener named `web` is read the same way; its routes serve the web listener
//! (`--web-addr`), which does what its `grpc_web` and `cors` filters say.
//!
//! Filters are recognised by the type of their config, not by name (names are free-form in
//! Envoy); a filter without config is recognised by its conventional name. Choices where
//! Envoy offers more than weft-proxy runs:
//! - An inline `route_config` is rejected: routes come over RDS only, so each
//!   RouteConfiguration is ACKed or NACKed on its own.
//! - The listener's address and listener filters are ignored: the proxy binds its own
//!   `--outbound-addr`. Connection manager settings other than routes and HTTP filters
//!   (codec, idle timeouts, request ids, ...) are ignored: the proxy's HTTP/2 server has its
//!   own.
//! - More than one filter chain, a filter chain match, a transport socket (TLS towards the
//!   app) or another network filter is an error.

use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as NetworkConfig;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::grpc_web::v3::GrpcWeb;
use envoy_types::pb::envoy::extensions::filters::http::on_demand::v3::OnDemand;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

use super::convert::{
    FieldError, FieldResult, check_config_source, decode_any, decode_resource, unsupported,
};
use super::cors::CORS_FILTER;
use super::fault::{FAULT_FILTER, is_empty_fault};
use super::{ConfigError, ListenerConfig, inbound};

/// The listener whose routes the outbound path uses.
pub const OUTBOUND_LISTENER: &str = "outbound";
/// The listener in front of the app, whose filter chains say the mTLS mode.
pub const INBOUND_LISTENER: &str = "inbound";
/// The listener whose routes the web listener (browsers' gRPC-Web) uses.
pub const WEB_LISTENER: &str = "web";

/// Conventional names, used only for filters that carry no typed config.
const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
const ROUTER_FILTER: &str = "envoy.filters.http.router";
const ON_DEMAND_FILTER: &str = "envoy.filters.http.on_demand";
const GRPC_WEB_FILTER: &str = "envoy.filters.http.grpc_web";

/// Converts one Listener (`any` must hold one); errors name the resource and the field.
pub fn parse_listener(any: &Any) -> Result<ListenerConfig, ConfigError> {
    let listener: Listener = decode_resource(any, "Listener")?;
    let resource = format!("Listener {}", listener.name);
    let config = if listener.name == INBOUND_LISTENER {
        inbound::inbound_config(&listener)
    } else {
        listener_config(&listener)
    };
    config.map_err(|err| err.of_resource(&resource))
}

/// What no listener may use: a name is needed, and chains are listed (not discovered or
/// picked by a matcher).
pub(super) fn check_listener(listener: &Listener) -> FieldResult<()> {
    if listener.name.is_empty() {
        return Err(FieldError::new("name", "empty"));
    }
    if listener.api_listener.is_some() {
        return Err(unsupported("api_listener"));
    }
    if listener.fcds_config.is_some() {
        return Err(unsupported("fcds_config"));
    }
    if listener.filter_chain_matcher.is_some() {
        return Err(unsupported("filter_chain_matcher"));
    }
    Ok(())
}

fn listener_config(listener: &Listener) -> FieldResult<ListenerConfig> {
    check_listener(listener)?;
    let (chain, position) = match (&listener.filter_chains[..], &listener.default_filter_chain) {
        ([chain], None) => (chain, "filter_chains[0]"),
        ([], Some(chain)) => (chain, "default_filter_chain"),
        ([], None) => return Err(FieldError::new("filter_chains", "empty")),
        _ => {
            return Err(FieldError::new(
                "filter_chains",
                "weft-proxy serves exactly one filter chain (with an HTTP connection manager)",
            ));
        }
    };
    let route_config_name = filter_chain(chain).map_err(|e| e.within(position))?;
    Ok(ListenerConfig {
        name: listener.name.clone(),
        route_config_name,
        inbound: None,
    })
}

/// The RouteConfiguration name of the chain's connection manager.
fn filter_chain(chain: &FilterChain) -> FieldResult<String> {
    if chain.filter_chain_match.is_some() {
        return Err(unsupported("filter_chain_match"));
    }
    if chain.transport_socket.is_some() {
        return Err(unsupported("transport_socket"));
    }
    let manager = chain_manager(chain)?;
    connection_manager(&manager).map_err(|e| e.within("filters[0].typed_config"))
}

/// The chain's one network filter, which must be an HTTP connection manager.
pub(super) fn chain_manager(chain: &FilterChain) -> FieldResult<HttpConnectionManager> {
    let [filter] = &chain.filters[..] else {
        return Err(FieldError::new(
            "filters",
            format!(
                "{} network filters; weft-proxy runs exactly one, the HTTP connection manager",
                chain.filters.len()
            ),
        ));
    };
    let manager = match &filter.config_type {
        Some(NetworkConfig::TypedConfig(any))
            if any.type_url == HttpConnectionManager::type_url() =>
        {
            decode_any::<HttpConnectionManager>(any)
                .map_err(|e| e.within("filters[0].typed_config"))?
        }
        None if filter.name == HCM_FILTER => HttpConnectionManager::default(),
        Some(NetworkConfig::ConfigDiscovery(_)) => {
            return Err(unsupported("filters[0].config_discovery"));
        }
        _ => {
            return Err(FieldError::new(
                "filters[0]",
                format!(
                    "network filter {:?} is not supported by weft-proxy (only the HTTP connection manager)",
                    filter.name
                ),
            ));
        }
    };
    Ok(manager)
}

fn connection_manager(manager: &HttpConnectionManager) -> FieldResult<String> {
    let name = match &manager.route_specifier {
        None => return Err(FieldError::new("rds", "missing")),
        Some(RouteSpecifier::Rds(rds)) => {
            check_config_source(rds.config_source.as_ref(), "rds.config_source")?;
            if rds.route_config_name.is_empty() {
                return Err(FieldError::new("rds.route_config_name", "empty"));
            }
            rds.route_config_name.clone()
        }
        Some(RouteSpecifier::RouteConfig(_)) => {
            return Err(FieldError::new(
                "route_config",
                "inline route configurations are not supported by weft-proxy: serve the routes \
                 over RDS (`rds.route_config_name`)",
            ));
        }
        Some(RouteSpecifier::ScopedRoutes(_)) => return Err(unsupported("scoped_routes")),
    };
    http_filters(&manager.http_filters).map_err(|e| e.within("http_filters"))?;
    Ok(name)
}

/// What an HTTP filter is, to weft-proxy.
enum HttpFilterKind {
    OnDemand,
    Fault,
    /// `grpc_web` and `cors` (with empty config; policies are per route): what the web
    /// listener does (`proxy::web`); weft-proxy bridges gRPC-Web and applies CORS there only.
    Web,
    Router,
    Other,
}

/// Checks the HTTP filters: an optional on-demand filter, an optional fault filter with empty
/// config, and the router, last. An empty list means the router alone (Envoy's default).
pub(super) fn http_filters(filters: &[HttpFilter]) -> FieldResult<()> {
    let Some(last) = filters.len().checked_sub(1) else {
        return Ok(());
    };
    let mut router = false;
    for (i, filter) in filters.iter().enumerate() {
        let position = format!("[{i}]");
        let config = match &filter.config_type {
            None => None,
            Some(HttpConfig::TypedConfig(any)) => Some(any),
            Some(HttpConfig::ConfigDiscovery(_)) if filter.is_optional => continue,
            Some(HttpConfig::ConfigDiscovery(_)) => {
                return Err(unsupported("config_discovery").within(&position));
            }
        };
        match filter_kind(&filter.name, config) {
            HttpFilterKind::Router if i != last => {
                return Err(FieldError::new(
                    position,
                    "the router must be the last filter",
                ));
            }
            HttpFilterKind::Router => router = true,
            HttpFilterKind::OnDemand => {
                if let Some(any) = config {
                    on_demand(any).map_err(|e| e.within("typed_config").within(&position))?;
                }
            }
            HttpFilterKind::Fault => {
                let fault = match config {
                    Some(any) => decode_any::<HttpFault>(any)
                        .map_err(|e| e.within("typed_config").within(&position))?,
                    None => HttpFault::default(),
                };
                if !is_empty_fault(&fault) {
                    return Err(FieldError::new(
                        format!("{position}.typed_config"),
                        "listener-level fault config is not supported by weft-proxy; set faults \
                         per route (typed_per_filter_config)",
                    ));
                }
            }
            HttpFilterKind::Web => {}
            HttpFilterKind::Other if filter.is_optional => {}
            HttpFilterKind::Other => {
                return Err(FieldError::new(
                    position,
                    format!(
                        "HTTP filter {:?} ({}) is not supported by weft-proxy (only \
                         {ON_DEMAND_FILTER}, {FAULT_FILTER}, {GRPC_WEB_FILTER}, {CORS_FILTER} and \
                         {ROUTER_FILTER}); mark it \
                         is_optional to let weft-proxy skip it",
                        filter.name,
                        config.map_or("no config", |a| a.type_url.as_str())
                    ),
                ));
            }
        }
    }
    if router {
        Ok(())
    } else {
        Err(FieldError::new(
            "",
            format!("no router filter ({ROUTER_FILTER}), which must be last"),
        ))
    }
}

/// The on-demand filter's config. weft-proxy always fetches a virtual host a route
/// configuration with `vhds` lacks, and holds the RPC until the host, the clusters its
/// route sends to and their endpoints have arrived (the server sends those clusters over
/// the wildcard CDS subscription), for at most 5 s together (`proxy::on_demand`), so the
/// filter changes nothing: only what it cannot do is an error. Its `odcds.timeout` is not
/// read (the hold's limit is the proxy's own).
fn on_demand(any: &Any) -> FieldResult<()> {
    let config: OnDemand = decode_any(any)?;
    if let Some(odcds) = &config.odcds {
        check_config_source(odcds.source.as_ref(), "odcds.source")?;
        if !odcds.resources_locator.is_empty() {
            return Err(unsupported("odcds.resources_locator"));
        }
    }
    Ok(())
}

fn filter_kind(name: &str, config: Option<&Any>) -> HttpFilterKind {
    match config.map(|any| any.type_url.as_str()) {
        Some(url) if url == OnDemand::type_url() => HttpFilterKind::OnDemand,
        Some(url) if url == HttpFault::type_url() => HttpFilterKind::Fault,
        Some(url) if url == Router::type_url() => HttpFilterKind::Router,
        Some(url) if url == GrpcWeb::type_url() || url == Cors::type_url() => HttpFilterKind::Web,
        Some(_) => HttpFilterKind::Other,
        None if name == ON_DEMAND_FILTER => HttpFilterKind::OnDemand,
        None if name == FAULT_FILTER => HttpFilterKind::Fault,
        None if name == ROUTER_FILTER => HttpFilterKind::Router,
        None if name == GRPC_WEB_FILTER || name == CORS_FILTER => HttpFilterKind::Web,
        None => HttpFilterKind::Other,
    }
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
