//! Tests of transport sockets: the controller's cluster matches, and every rejected shape
//! naming its field.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    SdsSecretConfig, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::{Struct, Value};
use envoy_types::util::pack_any;
use prost::Message;
use weft_controller::ads::ResourceType;

use crate::config::controller_mtls_tests::translate_yaml;
use crate::config::{ClusterConfig, ConfigError, UpstreamMtls, parse_cluster};

const GREETER: &str = "outbound|50051||greeter.default.svc.cluster.local";

/// The controller's cluster for Service greeter.
fn controller() -> Cluster {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: greeter, namespace: default}\n\
                spec: {ports: [{name: grpc, port: 50051}]}\n";
    let translation = translate_yaml(yaml, &[]);
    let clusters = translation.snapshot.resources(ResourceType::Cluster);
    Cluster::decode(clusters.get(GREETER).unwrap().body.value.as_slice()).unwrap()
}

fn parse(cluster: Cluster) -> Result<ClusterConfig, ConfigError> {
    parse_cluster(&pack_any(cluster))
}

/// The field of the error for the controller's cluster changed by `edit`.
fn field_of(edit: impl FnOnce(&mut Cluster)) -> String {
    let mut cluster = controller();
    edit(&mut cluster);
    let err = parse(cluster).unwrap_err();
    assert_eq!(err.resource, format!("Cluster {GREETER}"));
    err.field
}

/// Edits the UpstreamTlsContext of the first match.
fn edit_tls(cluster: &mut Cluster, edit: impl FnOnce(&mut UpstreamTlsContext)) {
    let socket = cluster.transport_socket_matches[0]
        .transport_socket
        .as_mut()
        .unwrap();
    let Some(SocketConfig::TypedConfig(any)) = &mut socket.config_type else {
        panic!("typed")
    };
    let mut context = UpstreamTlsContext::decode(any.value.as_slice()).unwrap();
    edit(&mut context);
    *any = pack_any(context);
}

fn raw_buffer() -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".into(),
        config_type: Some(SocketConfig::TypedConfig(pack_any(RawBuffer {}))),
    }
}

const SAN: &str = "transport_socket_matches[0].transport_socket.typed_config.common_tls_context.\
                   combined_validation_context.default_validation_context.\
                   match_typed_subject_alt_names";

#[test]
fn the_controllers_matches_give_the_trust_domain_prefix() {
    let config = parse(controller()).unwrap();
    assert_eq!(
        config.mtls,
        Some(UpstreamMtls {
            trust_domain_prefix: "spiffe://example.org/".into()
        })
    );
    // Plaintext only: no matches, or the match-all entry alone.
    let mut plain = controller();
    plain.transport_socket_matches.clear();
    assert_eq!(parse(plain).unwrap().mtls, None);
    let mut fallback_only = controller();
    fallback_only.transport_socket_matches.remove(0);
    assert_eq!(parse(fallback_only).unwrap().mtls, None);
    // The validation context given directly rather than combined with SDS.
    let mut direct = controller();
    edit_tls(&mut direct, |c| {
        let common = c.common_tls_context.as_mut().unwrap();
        let Some(ValidationContextType::CombinedValidationContext(combined)) =
            common.validation_context_type.take()
        else {
            panic!()
        };
        common.validation_context_type = Some(ValidationContextType::ValidationContext(
            combined.default_validation_context.unwrap(),
        ));
    });
    assert!(parse(direct).unwrap().mtls.is_some());
}

#[test]
fn the_san_matcher_must_be_one_uri_prefix_of_a_trust_domain() {
    let san = |edit: fn(
        &mut envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher,
    )| {
        field_of(|c| {
            edit_tls(c, |tls| {
                let common = tls.common_tls_context.as_mut().unwrap();
                let Some(ValidationContextType::CombinedValidationContext(combined)) =
                    &mut common.validation_context_type
                else {
                    panic!()
                };
                let context = combined.default_validation_context.as_mut().unwrap();
                edit(&mut context.match_typed_subject_alt_names[0]);
            })
        })
    };
    assert_eq!(
        san(|m| m.san_type = SanType::Dns as i32),
        format!("{SAN}[0].san_type")
    );
    assert_eq!(
        san(|m| {
            m.matcher.as_mut().unwrap().match_pattern = Some(MatchPattern::Exact("x".into()))
        }),
        format!("{SAN}[0].matcher")
    );
    assert_eq!(
        san(|m| m.matcher.as_mut().unwrap().ignore_case = true),
        format!("{SAN}[0].matcher")
    );
    assert_eq!(
        san(|m| {
            m.matcher.as_mut().unwrap().match_pattern =
                Some(MatchPattern::Prefix("spiffe://example.org".into()))
        }),
        format!("{SAN}[0].matcher.prefix")
    );
    let none = field_of(|c| {
        edit_tls(c, |tls| {
            tls.common_tls_context
                .as_mut()
                .unwrap()
                .validation_context_type = Some(
                ValidationContextType::ValidationContextSdsSecretConfig(SdsSecretConfig::default()),
            );
        })
    });
    assert_eq!(
        none,
        "transport_socket_matches[0].transport_socket.typed_config.common_tls_context.\
         validation_context"
    );
}

#[test]
fn matches_must_be_ones_weft_proxy_applies_like_envoy() {
    let unknown_key = field_of(|c| {
        let fields = &mut c.transport_socket_matches[0]
            .r#match
            .as_mut()
            .unwrap()
            .fields;
        fields.insert("zone".into(), Value::default());
    });
    assert_eq!(unknown_key, "transport_socket_matches[0].match");
    let tls_to_all = field_of(|c| {
        c.transport_socket_matches[0].r#match = Some(Struct::default());
    });
    assert_eq!(tls_to_all, "transport_socket_matches[0].transport_socket");
    let plaintext_to_marked = field_of(|c| {
        c.transport_socket_matches[0].transport_socket = Some(raw_buffer());
    });
    assert_eq!(
        plaintext_to_marked,
        "transport_socket_matches[0].transport_socket"
    );
    let after_all = field_of(|c| {
        let first = c.transport_socket_matches[0].clone();
        c.transport_socket_matches.push(first);
    });
    assert_eq!(after_all, "transport_socket_matches[2]");
    let twice = field_of(|c| {
        let first = c.transport_socket_matches[0].clone();
        c.transport_socket_matches.insert(0, first);
    });
    assert_eq!(twice, "transport_socket_matches[1]");
    let missing = field_of(|c| c.transport_socket_matches[0].transport_socket = None);
    assert_eq!(missing, "transport_socket_matches[0].transport_socket");
    // A cluster-wide socket stays an error, as before.
    assert_eq!(
        field_of(|c| c.transport_socket = Some(raw_buffer())),
        "transport_socket"
    );
}
