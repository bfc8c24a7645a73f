//! The SDS Secrets a proxy's TLS contexts name (`tls.rs`): its own certificate chain and
//! key (`default`), and the mesh's trust bundle (`ROOTCA`), both inline PEM. They differ per
//! proxy and per rotation, so they are not part of a translation: the ADS server packs them
//! per stream with these helpers.

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type as SecretType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

/// The Secret holding the proxy's certificate chain and key (Istio's name for it, which
/// Envoy-based tooling expects).
pub const CERTIFICATE_SECRET: &str = "default";
/// The Secret holding the trust bundle peers are checked against (Istio's name).
pub const TRUST_BUNDLE_SECRET: &str = "ROOTCA";

fn inline(pem: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(Specifier::InlineString(pem.to_owned())),
        watched_directory: None,
    })
}

/// `Secret { name: "default", tls_certificate: { certificate_chain, private_key } }`, both
/// inline PEM; the name and the packed Secret.
pub fn certificate_secret(chain_pem: &str, key_pem: &str) -> (String, Any) {
    let secret = Secret {
        name: CERTIFICATE_SECRET.to_owned(),
        r#type: Some(SecretType::TlsCertificate(TlsCertificate {
            certificate_chain: inline(chain_pem),
            private_key: inline(key_pem),
            ..Default::default()
        })),
    };
    (CERTIFICATE_SECRET.to_owned(), pack_any(secret))
}

/// `Secret { name: "ROOTCA", validation_context: { trusted_ca } }`, inline PEM (one or more
/// CA certificates); the name and the packed Secret.
pub fn trust_bundle_secret(bundle_pem: &str) -> (String, Any) {
    let secret = Secret {
        name: TRUST_BUNDLE_SECRET.to_owned(),
        r#type: Some(SecretType::ValidationContext(
            CertificateValidationContext {
                trusted_ca: inline(bundle_pem),
                ..Default::default()
            },
        )),
    };
    (TRUST_BUNDLE_SECRET.to_owned(), pack_any(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::decode;

    fn inline_string(source: Option<DataSource>) -> String {
        match source.and_then(|s| s.specifier) {
            Some(Specifier::InlineString(s)) => s,
            other => panic!("not inline: {other:?}"),
        }
    }

    #[test]
    fn the_certificate_secret_is_inline_pem() {
        let (name, any) = certificate_secret("CHAIN", "KEY");
        assert_eq!(name, "default");
        let secret: Secret = decode(&any);
        assert_eq!(secret.name, "default");
        let Some(SecretType::TlsCertificate(certificate)) = secret.r#type else {
            panic!("a tls_certificate")
        };
        assert_eq!(inline_string(certificate.certificate_chain), "CHAIN");
        assert_eq!(inline_string(certificate.private_key), "KEY");
    }

    #[test]
    fn the_trust_bundle_secret_is_a_validation_context() {
        let (name, any) = trust_bundle_secret("BUNDLE");
        assert_eq!(name, "ROOTCA");
        let secret: Secret = decode(&any);
        assert_eq!(secret.name, "ROOTCA");
        let Some(SecretType::ValidationContext(context)) = secret.r#type else {
            panic!("a validation_context")
        };
        assert_eq!(inline_string(context.trusted_ca), "BUNDLE");
    }
}
