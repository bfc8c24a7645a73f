//! Transport sockets: what a listener's filter chain or a cluster's transport socket match
//! speaks (plaintext, or TLS in one direction), and the checks weft-proxy makes on the TLS
//! contexts.
//!
//! weft-proxy's TLS is mutual TLS between mesh proxies and nothing else: its certificate
//! and trust bundle come from the controller's CA (`crate::tls`), so the certificates and
//! SDS secrets a context names are not read; what is read is what changes behaviour:
//! - inbound (`DownstreamTlsContext`): `require_client_certificate` must be true;
//! - outbound (`UpstreamTlsContext`): exactly one `match_typed_subject_alt_names` entry, a URI
//!   SAN prefix `spiffe://<trust-domain>/`, which the server's identity must start with.
//!
//! Sockets are recognised by the type of their config; one without config by its
//! conventional name (only the raw buffer: TLS needs a context).

use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, DownstreamTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Any, Struct};
use prost::Name;

use super::UpstreamMtls;
use super::convert::{FieldError, FieldResult, decode_any, unsupported};

/// The conventional name of the plaintext transport socket.
const RAW_BUFFER_SOCKET: &str = "envoy.transport_sockets.raw_buffer";
/// The endpoint metadata namespace (and key, value) that marks an endpoint for mTLS.
pub(super) const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";
pub(super) const TLS_MODE_KEY: &str = "tlsMode";
pub(super) const TLS_MODE_WEFT: &str = "weft";

/// What a transport socket speaks.
#[derive(Debug)]
pub(super) enum Socket {
    Plaintext,
    DownstreamTls(Box<DownstreamTlsContext>),
    UpstreamTls(Box<UpstreamTlsContext>),
}

/// Classifies a transport socket (absent: plaintext, as in Envoy). Field paths are relative
/// to the socket.
pub(super) fn socket(socket: Option<&TransportSocket>) -> FieldResult<Socket> {
    let Some(socket) = socket else {
        return Ok(Socket::Plaintext);
    };
    let any = match &socket.config_type {
        Some(ConfigType::TypedConfig(any)) => any,
        None if socket.name == RAW_BUFFER_SOCKET => return Ok(Socket::Plaintext),
        None => {
            return Err(FieldError::new(
                "typed_config",
                format!("missing (transport socket {:?})", socket.name),
            ));
        }
    };
    fn decoded<M: prost::Message + Name + Default>(any: &Any) -> FieldResult<M> {
        decode_any::<M>(any).map_err(|e| e.within("typed_config"))
    }
    if any.type_url == RawBuffer::type_url() {
        decoded::<RawBuffer>(any)?;
        Ok(Socket::Plaintext)
    } else if any.type_url == DownstreamTlsContext::type_url() {
        Ok(Socket::DownstreamTls(Box::new(decoded(any)?)))
    } else if any.type_url == UpstreamTlsContext::type_url() {
        Ok(Socket::UpstreamTls(Box::new(decoded(any)?)))
    } else {
        Err(FieldError::new(
            "typed_config",
            format!(
                "transport socket {:?} ({}) is not supported by weft-proxy (TLS or raw_buffer)",
                socket.name, any.type_url
            ),
        ))
    }
}

/// Checks an inbound TLS context: the client must present a certificate.
pub(super) fn check_downstream(context: &DownstreamTlsContext) -> FieldResult<()> {
    if context.require_client_certificate.map(|b| b.value) != Some(true) {
        return Err(FieldError::new(
            "typed_config.require_client_certificate",
            "must be true: weft-proxy's inbound TLS is mutual (a client certificate of the mesh)",
        ));
    }
    Ok(())
}

/// The trust-domain prefix an outbound TLS context checks servers against.
pub(super) fn upstream_mtls(context: &UpstreamTlsContext) -> FieldResult<UpstreamMtls> {
    let within = |e: FieldError| e.within("common_tls_context").within("typed_config");
    let common = context
        .common_tls_context
        .as_ref()
        .ok_or_else(|| FieldError::new("typed_config.common_tls_context", "missing"))?;
    let (position, validation) = match &common.validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(combined)) => (
            "combined_validation_context.default_validation_context",
            combined.default_validation_context.as_ref(),
        ),
        Some(ValidationContextType::ValidationContext(context)) => {
            ("validation_context", Some(context))
        }
        _ => ("validation_context", None),
    };
    let validation = validation.ok_or_else(|| {
        within(FieldError::new(
            position,
            "no validation context with a URI SAN matcher: weft-proxy checks servers' SPIFFE \
             ids against a trust-domain prefix (match_typed_subject_alt_names)",
        ))
    })?;
    trust_domain_prefix(validation).map_err(|e| within(e.within(position)))
}

fn trust_domain_prefix(validation: &CertificateValidationContext) -> FieldResult<UpstreamMtls> {
    #[allow(deprecated)]
    if !validation.match_subject_alt_names.is_empty() {
        return Err(unsupported("match_subject_alt_names"));
    }
    let [san] = &validation.match_typed_subject_alt_names[..] else {
        return Err(FieldError::new(
            "match_typed_subject_alt_names",
            format!(
                "{} matchers; weft-proxy checks exactly one, a URI prefix \
                 spiffe://<trust-domain>/",
                validation.match_typed_subject_alt_names.len()
            ),
        ));
    };
    let field = |name: &str| format!("match_typed_subject_alt_names[0].{name}");
    if san.san_type != SanType::Uri as i32 {
        return Err(FieldError::new(field("san_type"), "must be URI"));
    }
    let matcher = san
        .matcher
        .as_ref()
        .ok_or_else(|| FieldError::new(field("matcher"), "missing"))?;
    let prefix = match &matcher.match_pattern {
        Some(MatchPattern::Prefix(prefix)) if !matcher.ignore_case => prefix,
        _ => {
            return Err(FieldError::new(
                field("matcher"),
                "weft-proxy supports a case-sensitive prefix only",
            ));
        }
    };
    if !(prefix.starts_with("spiffe://")
        && prefix.ends_with('/')
        && prefix.len() > "spiffe:///".len())
    {
        return Err(FieldError::new(
            field("matcher.prefix"),
            format!("{prefix:?} is not spiffe://<trust-domain>/"),
        ));
    }
    Ok(UpstreamMtls {
        trust_domain_prefix: prefix.clone(),
    })
}

/// Which endpoints a transport socket match applies to.
enum Applies {
    /// `{}` (or no match): every endpoint.
    Every,
    /// `{tlsMode: weft}`: endpoints run by a mesh proxy that accepts mutual TLS.
    Weft,
}

/// A cluster's `transport_socket_matches`: `Some` when endpoints marked `{tlsMode: weft}`
/// get mutual TLS. Envoy uses the first entry that applies, so weft-proxy accepts what it
/// can apply the same way: at most one `{tlsMode: weft}` entry (TLS), and at most one
/// match-all entry (plaintext), last.
pub(super) fn transport_socket_matches(
    matches: &[TransportSocketMatch],
) -> FieldResult<Option<UpstreamMtls>> {
    let mut mtls = None;
    let mut every = None;
    for (i, entry) in matches.iter().enumerate() {
        let position = format!("transport_socket_matches[{i}]");
        if let Some(earlier) = every {
            return Err(FieldError::new(
                position,
                format!("never used: transport_socket_matches[{earlier}] matches every endpoint"),
            ));
        }
        let applies = applies(entry.r#match.as_ref()).map_err(|e| e.within(&position))?;
        let socket = entry
            .transport_socket
            .as_ref()
            .ok_or_else(|| FieldError::new("transport_socket", "missing").within(&position))?;
        let socket = self::socket(Some(socket))
            .map_err(|e| e.within("transport_socket").within(&position))?;
        match (applies, socket) {
            (Applies::Weft, Socket::UpstreamTls(context)) if mtls.is_none() => {
                let found = upstream_mtls(&context)
                    .map_err(|e| e.within("transport_socket").within(&position))?;
                mtls = Some(found);
            }
            (Applies::Weft, Socket::UpstreamTls(_)) => {
                return Err(FieldError::new(
                    position,
                    "never used: an earlier entry matches {tlsMode: weft}",
                ));
            }
            (Applies::Every, Socket::Plaintext) => every = Some(i),
            (Applies::Weft, _) => {
                return Err(FieldError::new(
                    format!("{position}.transport_socket"),
                    "endpoints marked {tlsMode: weft} need an UpstreamTlsContext",
                ));
            }
            (Applies::Every, _) => {
                return Err(FieldError::new(
                    format!("{position}.transport_socket"),
                    "weft-proxy speaks TLS only to endpoints marked {tlsMode: weft}; the \
                     entry matching every endpoint must be plaintext",
                ));
            }
        }
    }
    Ok(mtls)
}

fn applies(matched: Option<&Struct>) -> FieldResult<Applies> {
    let Some(matched) = matched.filter(|m| !m.fields.is_empty()) else {
        return Ok(Applies::Every);
    };
    let is_weft = matched.fields.len() == 1
        && matched
            .fields
            .get(TLS_MODE_KEY)
            .and_then(|v| v.kind.as_ref())
            == Some(&Kind::StringValue(TLS_MODE_WEFT.into()));
    if is_weft {
        Ok(Applies::Weft)
    } else {
        Err(FieldError::new(
            "match",
            "weft-proxy knows {} (every endpoint) and {tlsMode: weft} only",
        ))
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
