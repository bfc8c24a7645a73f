//! The transport sockets of mutual TLS between proxies: the inbound listener's TLS context
//! (client certificate required), the outbound clusters' `transport_socket_matches` (TLS to
//! endpoints marked `tlsMode: weft`, plaintext to the rest), and the names they share.
//!
//! Certificates and the trust bundle are never inline here: both contexts name SDS secrets
//! (`default`, `ROOTCA`, see `secrets.rs`) fetched over the same ADS stream, so a rotated
//! certificate reaches the proxy without touching a listener or a cluster.

use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{BoolValue, Struct, Value};
use envoy_types::util::pack_any;
use weft_common::spiffe::SpiffeId;

use super::cluster::ads_config_source;
use super::secrets::{CERTIFICATE_SECRET, TRUST_BUNDLE_SECRET};

/// The transport socket of TLS (both directions).
pub(super) const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
/// The transport socket of plaintext.
pub(super) const RAW_BUFFER_SOCKET: &str = "envoy.transport_sockets.raw_buffer";
/// The endpoint metadata namespace Envoy matches `transport_socket_matches` against.
pub const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";
/// The key and value that mark an endpoint as a mesh proxy speaking mutual TLS.
pub const TLS_MODE_KEY: &str = "tlsMode";
pub const TLS_MODE_WEFT: &str = "weft";
/// The only protocol spoken between proxies.
const ALPN_H2: &str = "h2";

/// `{tlsMode: weft}`: the endpoint metadata (and the transport socket match) of an endpoint
/// run by a mesh proxy that accepts mutual TLS.
pub(super) fn tls_mode_weft() -> Struct {
    Struct {
        fields: [(
            TLS_MODE_KEY.to_owned(),
            Value {
                kind: Some(Kind::StringValue(TLS_MODE_WEFT.to_owned())),
            },
        )]
        .into(),
    }
}

/// An SDS secret fetched over ADS.
fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ads_config_source()),
    }
}

/// ALPN h2 and the proxy's own certificate (`default`), both directions alike.
fn common_tls_context(validation: ValidationContextType) -> CommonTlsContext {
    CommonTlsContext {
        alpn_protocols: vec![ALPN_H2.into()],
        tls_certificate_sds_secret_configs: vec![sds(CERTIFICATE_SECRET)],
        validation_context_type: Some(validation),
        ..Default::default()
    }
}

/// The inbound side: the proxy's certificate, and a client certificate required and checked
/// against the trust bundle (`ROOTCA`). Any identity of the trust bundle is accepted here:
/// who may call what is an authorization question, not this one.
pub(super) fn downstream_tls_socket() -> TransportSocket {
    let context = DownstreamTlsContext {
        common_tls_context: Some(common_tls_context(
            ValidationContextType::ValidationContextSdsSecretConfig(sds(TRUST_BUNDLE_SECRET)),
        )),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_SOCKET.into(),
        config_type: Some(SocketConfig::TypedConfig(pack_any(context))),
    }
}

/// The outbound side: the proxy's certificate, and the server checked against the trust
/// bundle and required to carry a URI SAN in the trust domain (`spiffe://<domain>/`): the
/// destination is a mesh proxy, whatever its service account (the name it answers to is
/// not known per endpoint).
pub(super) fn upstream_tls_socket(trust_domain: &str) -> TransportSocket {
    let san = SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Prefix(SpiffeId::trust_domain_prefix(
                trust_domain,
            ))),
            ignore_case: false,
        }),
        oid: String::new(),
    };
    let validation = CombinedCertificateValidationContext {
        default_validation_context: Some(CertificateValidationContext {
            match_typed_subject_alt_names: vec![san],
            ..Default::default()
        }),
        validation_context_sds_secret_config: Some(sds(TRUST_BUNDLE_SECRET)),
        ..Default::default()
    };
    let context = UpstreamTlsContext {
        common_tls_context: Some(common_tls_context(
            ValidationContextType::CombinedValidationContext(validation),
        )),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_SOCKET.into(),
        config_type: Some(SocketConfig::TypedConfig(pack_any(context))),
    }
}

/// Plaintext, said explicitly (rather than by leaving the transport socket out) so that a
/// reader of the cluster sees both choices.
pub(super) fn raw_buffer_socket() -> TransportSocket {
    TransportSocket {
        name: RAW_BUFFER_SOCKET.into(),
        config_type: Some(SocketConfig::TypedConfig(pack_any(RawBuffer {}))),
    }
}

/// The outbound clusters' matches: mutual TLS to endpoints marked `{tlsMode: weft}`
/// (run by a proxy that accepts it), plaintext to every other endpoint (no proxy, or one
/// whose MtlsPolicy says `Disable`). Envoy uses the first match whose `match` the
/// endpoint's metadata contains; `{}` matches every endpoint, so it comes last.
pub(super) fn transport_socket_matches(trust_domain: &str) -> Vec<TransportSocketMatch> {
    vec![
        TransportSocketMatch {
            name: "mtls".into(),
            r#match: Some(tls_mode_weft()),
            transport_socket: Some(upstream_tls_socket(trust_domain)),
        },
        TransportSocketMatch {
            name: "plaintext".into(),
            r#match: Some(Struct::default()),
            transport_socket: Some(raw_buffer_socket()),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::decode;

    fn typed<M: prost::Message + Default>(socket: &TransportSocket) -> M {
        match &socket.config_type {
            Some(SocketConfig::TypedConfig(any)) => decode(any),
            None => panic!("no typed config"),
        }
    }

    #[test]
    fn the_upstream_context_checks_the_trust_domain_prefix() {
        let matches = transport_socket_matches("example.org");
        assert_eq!(matches[0].r#match, Some(tls_mode_weft()));
        let socket = matches[0].transport_socket.as_ref().unwrap();
        assert_eq!(socket.name, TLS_SOCKET);
        let context: UpstreamTlsContext = typed(socket);
        let common = context.common_tls_context.unwrap();
        assert_eq!(common.alpn_protocols, ["h2"]);
        assert_eq!(common.tls_certificate_sds_secret_configs, [sds("default")]);
        let Some(ValidationContextType::CombinedValidationContext(combined)) =
            common.validation_context_type
        else {
            panic!("combined validation context")
        };
        assert_eq!(
            combined.validation_context_sds_secret_config,
            Some(sds("ROOTCA"))
        );
        let san = &combined
            .default_validation_context
            .unwrap()
            .match_typed_subject_alt_names[0];
        assert_eq!(san.san_type, SanType::Uri as i32);
        assert_eq!(
            san.matcher.as_ref().unwrap().match_pattern,
            Some(MatchPattern::Prefix("spiffe://example.org/".into()))
        );
        assert_eq!(matches[1].r#match, Some(Struct::default()));
        let plaintext = matches[1].transport_socket.as_ref().unwrap();
        assert_eq!(plaintext.name, RAW_BUFFER_SOCKET);
        assert_eq!(typed::<RawBuffer>(plaintext), RawBuffer {});
    }

    #[test]
    fn the_downstream_context_requires_a_client_certificate() {
        let socket = downstream_tls_socket();
        assert_eq!(socket.name, TLS_SOCKET);
        let context: DownstreamTlsContext = typed(&socket);
        assert_eq!(
            context.require_client_certificate,
            Some(BoolValue { value: true })
        );
        let common = context.common_tls_context.unwrap();
        assert_eq!(common.alpn_protocols, ["h2"]);
        assert_eq!(common.tls_certificate_sds_secret_configs, [sds("default")]);
        assert_eq!(
            common.validation_context_type,
            Some(ValidationContextType::ValidationContextSdsSecretConfig(
                sds("ROOTCA")
            ))
        );
    }
}
