//! The `inbound` Listener → [`InboundConfig`]: which transports its filter chains accept.
//! A TLS chain alone is `Strict`, a TLS and a plaintext chain `Permissive`, a plaintext
//! chain alone `Disable` (weft-controller's shapes, see `controller/src/translate/inbound.rs`).
//!
//! What is read and what is not:
//! - Each chain: its transport socket (absent or raw buffer: plaintext; a
//!   DownstreamTlsContext requiring a client certificate: TLS; anything else is an error),
//!   and `filter_chain_match`, of which only `transport_protocol` may be set, to `tls` on
//!   the TLS chain or `raw_buffer` on the plaintext one (weft-proxy tells them apart itself).
//!   At most one chain of each kind; two chains both without `transport_protocol` cannot be
//!   told apart and are an error (Envoy rejects them too).
//! - Each chain's one network filter must be an HTTP connection manager with supported HTTP
//!   filters, as on the outbound listener; its routes (inline or RDS) are not read:
//!   weft-proxy forwards every inbound RPC to its `--app-addr`. Other settings (codec,
//!   `forward_client_cert_details`, ...) are ignored: the proxy's inbound path has its own.
//! - The address and listener filters (the TLS inspector) are ignored: the proxy binds its
//!   own inbound address and detects TLS itself.

use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;

use super::convert::{FieldError, FieldResult, reject_set, unsupported};
use super::listener::{chain_manager, check_listener, http_filters};
use super::transport::{Socket, check_downstream, socket};
use super::{InboundConfig, InboundMode, ListenerConfig};

/// What one chain accepts, and whether it names a `transport_protocol`.
struct Chain {
    tls: bool,
    matched: bool,
}

/// Converts the `inbound` listener.
pub(super) fn inbound_config(listener: &Listener) -> FieldResult<ListenerConfig> {
    check_listener(listener)?;
    let positioned = listener
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, chain)| (format!("filter_chains[{i}]"), chain))
        .chain(
            listener
                .default_filter_chain
                .iter()
                .map(|chain| ("default_filter_chain".to_owned(), chain)),
        );
    let mut tls: Option<(String, Chain)> = None;
    let mut plaintext: Option<(String, Chain)> = None;
    for (position, chain) in positioned {
        let found = filter_chain(chain).map_err(|e| e.within(&position))?;
        let slot = if found.tls { &mut tls } else { &mut plaintext };
        if let Some((earlier, _)) = slot {
            return Err(FieldError::new(
                position,
                format!(
                    "a second {} chain (the first is {earlier}); weft-proxy serves at most one \
                     TLS and one plaintext chain",
                    if found.tls { "TLS" } else { "plaintext" }
                ),
            ));
        }
        *slot = Some((position, found));
    }
    let mode = match (&tls, &plaintext) {
        (Some(_), None) => InboundMode::Strict,
        (None, Some(_)) => InboundMode::Disable,
        (Some((_, t)), Some((_, p))) if t.matched || p.matched => InboundMode::Permissive,
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "filter_chains",
                "the TLS and the plaintext chain both match every connection: set \
                 filter_chain_match.transport_protocol (tls, raw_buffer)",
            ));
        }
        (None, None) => return Err(FieldError::new("filter_chains", "empty")),
    };
    Ok(ListenerConfig {
        name: listener.name.clone(),
        route_config_name: String::new(),
        inbound: Some(InboundConfig { mode }),
    })
}

fn filter_chain(chain: &FilterChain) -> FieldResult<Chain> {
    let tls =
        match socket(chain.transport_socket.as_ref()).map_err(|e| e.within("transport_socket"))? {
            Socket::Plaintext => false,
            Socket::DownstreamTls(context) => {
                check_downstream(&context).map_err(|e| e.within("transport_socket"))?;
                true
            }
            Socket::UpstreamTls(_) => {
                return Err(FieldError::new(
                    "transport_socket.typed_config",
                    "an UpstreamTlsContext on a listener; a listener needs a DownstreamTlsContext",
                ));
            }
        };
    let matched = match &chain.filter_chain_match {
        None => false,
        Some(m) => {
            chain_match(m, tls).map_err(|e| e.within("filter_chain_match"))?;
            !m.transport_protocol.is_empty()
        }
    };
    let manager = chain_manager(chain)?;
    let within = |e: FieldError| e.within("filters[0].typed_config");
    if let Some(RouteSpecifier::ScopedRoutes(_)) = manager.route_specifier {
        return Err(within(unsupported("scoped_routes")));
    }
    http_filters(&manager.http_filters).map_err(|e| within(e.within("http_filters")))?;
    Ok(Chain { tls, matched })
}

/// Only `transport_protocol` may be set, and only to what the chain's socket speaks.
fn chain_match(m: &FilterChainMatch, tls: bool) -> FieldResult<()> {
    reject_set(&[
        ("destination_port", m.destination_port.is_some()),
        ("prefix_ranges", !m.prefix_ranges.is_empty()),
        ("address_suffix", !m.address_suffix.is_empty()),
        ("suffix_len", m.suffix_len.is_some()),
        (
            "direct_source_prefix_ranges",
            !m.direct_source_prefix_ranges.is_empty(),
        ),
        ("source_type", m.source_type != 0),
        ("source_prefix_ranges", !m.source_prefix_ranges.is_empty()),
        ("source_ports", !m.source_ports.is_empty()),
        ("server_names", !m.server_names.is_empty()),
        ("application_protocols", !m.application_protocols.is_empty()),
    ])?;
    let expected = if tls { "tls" } else { "raw_buffer" };
    match m.transport_protocol.as_str() {
        "" => Ok(()),
        protocol if protocol == expected => Ok(()),
        protocol => Err(FieldError::new(
            "transport_protocol",
            format!(
                "{protocol:?} on a {} chain (expected {expected:?} or none)",
                if tls { "TLS" } else { "plaintext" }
            ),
        )),
    }
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
