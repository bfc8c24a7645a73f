//! `ClusterLoadAssignment` → [`EndpointSet`]: the addresses RPCs may go to.
//!
//! Only usable endpoints are kept: health `UNKNOWN`, `HEALTHY` or `DEGRADED` (Envoy still
//! routes to degraded hosts when it must; weft-proxy's balancer has no tiers, so they count
//! as usable). Priorities are failover tiers, so the set is the lowest priority that has a
//! usable endpoint. Addresses must be IP literals with a port: weft-proxy resolves no names.
//! Load-balancing weights and localities are ignored (the balancer is power-of-two-choices).
//! An endpoint whose metadata `envoy.transport_socket_match` has `tlsMode: weft` is run by a
//! mesh proxy that accepts mutual TLS ([`EndpointSet::mtls`]); other `tlsMode` values (no
//! transport socket match of weft's applies to them) and other metadata are ignored.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::{PortSpecifier, Protocol};
use envoy_types::pb::envoy::config::core::v3::{Address, HealthStatus};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::protobuf::value::Kind;

use super::convert::{FieldError, FieldResult, decode_resource, unsupported};
use super::transport::{TLS_MODE_KEY, TLS_MODE_WEFT, TRANSPORT_SOCKET_MATCH};
use super::{ConfigError, EndpointSet};

/// Converts one ClusterLoadAssignment (`any` must hold one); errors name the resource and
/// the field.
pub fn parse_endpoints(any: &Any) -> Result<EndpointSet, ConfigError> {
    let assignment: ClusterLoadAssignment = decode_resource(any, "ClusterLoadAssignment")?;
    let resource = format!("ClusterLoadAssignment {}", assignment.cluster_name);
    endpoint_set(&assignment).map_err(|err| err.of_resource(&resource))
}

/// The usable endpoints of an assignment (also used for a STATIC cluster's inline one).
pub(super) fn endpoint_set(assignment: &ClusterLoadAssignment) -> FieldResult<EndpointSet> {
    if assignment.cluster_name.is_empty() {
        return Err(FieldError::new("cluster_name", "empty"));
    }
    if assignment
        .policy
        .as_ref()
        .is_some_and(|policy| !policy.drop_overloads.is_empty())
    {
        return Err(unsupported("policy.drop_overloads"));
    }
    // (priority, address, marked for mTLS) of every usable endpoint, each checked even when
    // unused.
    let mut usable: Vec<(u32, SocketAddr, bool)> = Vec::new();
    for (i, locality) in assignment.endpoints.iter().enumerate() {
        for (j, endpoint) in locality.lb_endpoints.iter().enumerate() {
            let position = format!("endpoints[{i}].lb_endpoints[{j}]");
            let addr = endpoint_addr(endpoint).map_err(|e| e.within(&position))?;
            let mtls = is_marked(endpoint).map_err(|e| e.within(&position))?;
            if is_usable(endpoint.health_status) {
                usable.push((locality.priority, addr, mtls));
            }
        }
    }
    let best = usable.iter().map(|(priority, _, _)| *priority).min();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut marked = BTreeSet::new();
    for (_, addr, mtls) in usable.iter().filter(|(p, _, _)| Some(*p) == best) {
        if !addrs.contains(addr) {
            addrs.push(*addr);
        }
        // The same address listed twice: marked once is enough (the proxy is there).
        if *mtls {
            marked.insert(*addr);
        }
    }
    Ok(EndpointSet {
        name: assignment.cluster_name.clone(),
        addrs,
        mtls: marked,
    })
}

/// Whether the endpoint's metadata says `envoy.transport_socket_match: {tlsMode: weft}`.
fn is_marked(endpoint: &LbEndpoint) -> FieldResult<bool> {
    let Some(matched) = endpoint
        .metadata
        .as_ref()
        .and_then(|m| m.filter_metadata.get(TRANSPORT_SOCKET_MATCH))
    else {
        return Ok(false);
    };
    match matched
        .fields
        .get(TLS_MODE_KEY)
        .and_then(|v| v.kind.as_ref())
    {
        None => Ok(false),
        Some(Kind::StringValue(mode)) => Ok(mode == TLS_MODE_WEFT),
        Some(_) => Err(FieldError::new(
            format!("metadata.filter_metadata[{TRANSPORT_SOCKET_MATCH:?}].{TLS_MODE_KEY}"),
            "must be a string",
        )),
    }
}

fn is_usable(health: i32) -> bool {
    matches!(
        HealthStatus::try_from(health),
        Ok(HealthStatus::Unknown | HealthStatus::Healthy | HealthStatus::Degraded)
    )
}

fn endpoint_addr(endpoint: &LbEndpoint) -> FieldResult<SocketAddr> {
    match &endpoint.host_identifier {
        None => Err(FieldError::new("endpoint", "missing")),
        Some(HostIdentifier::EndpointName(_)) => Err(unsupported("endpoint_name")),
        Some(HostIdentifier::Endpoint(endpoint)) => endpoint
            .address
            .as_ref()
            .ok_or_else(|| FieldError::new("address", "missing"))
            .and_then(|address| socket_addr(address).map_err(|e| e.within("address")))
            .map_err(|e| e.within("endpoint")),
    }
}

/// An Address that must be a TCP socket address with an IP literal and a port.
pub(super) fn socket_addr(address: &Address) -> FieldResult<SocketAddr> {
    let socket = match &address.address {
        None => return Err(FieldError::new("socket_address", "missing")),
        Some(AddressKind::Pipe(_)) => return Err(unsupported("pipe")),
        Some(AddressKind::EnvoyInternalAddress(_)) => {
            return Err(unsupported("envoy_internal_address"));
        }
        Some(AddressKind::SocketAddress(socket)) => socket,
    };
    let field = |name: &str| format!("socket_address.{name}");
    if socket.protocol != Protocol::Tcp as i32 {
        return Err(FieldError::new(field("protocol"), "only TCP is supported"));
    }
    if !socket.resolver_name.is_empty() {
        return Err(unsupported(&field("resolver_name")));
    }
    let ip: IpAddr = socket.address.parse().map_err(|_| {
        FieldError::new(
            field("address"),
            format!(
                "{:?} is not an IP address (weft-proxy does not resolve names)",
                socket.address
            ),
        )
    })?;
    let port = match socket.port_specifier {
        None => return Err(FieldError::new(field("port_value"), "missing")),
        Some(PortSpecifier::NamedPort(_)) => return Err(unsupported(&field("named_port"))),
        Some(PortSpecifier::PortValue(port)) => u16::try_from(port)
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| FieldError::new(field("port_value"), format!("{port} is not a port")))?,
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
