//! The CA in a Kubernetes Secret (async, the only I/O here): the generated root shared by
//! every controller replica, and an operator's CA Secret as cert-manager writes it. The
//! checks are `CertificateAuthority::from_pem`'s; this layer reads, creates and names.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};

use super::{CaError, CertificateAuthority, Created};

const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
const CA_CRT: &str = "ca.crt";

/// The root CA kept in Secret `namespace/name`, generated and created on first use.
///
/// Replicas starting together may all find no Secret and all generate a root; creation
/// decides. The one whose create succeeds uses its root; the others get 409 AlreadyExists
/// and read the winner's back, so every replica ends up signing with the same CA.
pub async fn load_or_create_secret(
    client: Client,
    namespace: &str,
    name: &str,
    trust_domain: &str,
) -> Result<(CertificateAuthority, Created), CaError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let secret_name = format!("{namespace}/{name}");
    let existing = api
        .get_opt(name)
        .await
        .map_err(kube_error("reading", &secret_name))?;
    if let Some(secret) = existing {
        let ca = from_secret(&secret, &secret_name, trust_domain, "")?;
        return Ok((ca, Created::Loaded));
    }

    let ca = CertificateAuthority::generate(trust_domain)?;
    match api
        .create(&PostParams::default(), &tls_secret(namespace, name, &ca))
        .await
    {
        Ok(_) => Ok((ca, Created::Created)),
        // Another replica won the race: drop ours (never used) and take theirs.
        Err(kube::Error::Api(status)) if status.is_already_exists() || status.code == 409 => {
            let winner = api
                .get_opt(name)
                .await
                .map_err(kube_error("reading back", &secret_name))?
                .ok_or_else(|| {
                    CaError::invalid(
                        format!("Secret {secret_name}"),
                        "another replica created it and it was deleted before it could be \
                         read; restart to try again",
                    )
                })?;
            let ca = from_secret(&winner, &secret_name, trust_domain, "")?;
            Ok((ca, Created::Loaded))
        }
        Err(err) => Err(kube_error("creating", &secret_name)(err)),
    }
}

/// An operator's CA from Secret `namespace/name` in cert-manager's shape: `tls.crt`,
/// `tls.key` and, for an intermediate CA, `ca.crt`.
pub async fn load_user_secret(
    client: Client,
    namespace: &str,
    name: &str,
    trust_domain: &str,
) -> Result<CertificateAuthority, CaError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let secret_name = format!("{namespace}/{name}");
    let secret = api
        .get_opt(name)
        .await
        .map_err(kube_error("reading", &secret_name))?
        .ok_or_else(|| CaError::SecretNotFound {
            secret: secret_name.clone(),
        })?;
    from_secret(
        &secret,
        &secret_name,
        trust_domain,
        " (a cert-manager Certificate with isCA: true writes tls.crt, tls.key and ca.crt)",
    )
}

/// The CA in a Secret's data. Pure, so it is tested without an apiserver.
pub(super) fn from_secret(
    secret: &Secret,
    secret_name: &str,
    trust_domain: &str,
    hint: &'static str,
) -> Result<CertificateAuthority, CaError> {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let text = |key: &'static str| -> Result<Option<&str>, CaError> {
        match data.get(key) {
            // cert-manager writes an empty ca.crt when it has no CA to put there.
            Some(ByteString(bytes)) if bytes.is_empty() => Ok(None),
            Some(ByteString(bytes)) => std::str::from_utf8(bytes).map(Some).map_err(|_| {
                CaError::invalid(format!("Secret {secret_name} key {key}"), "not PEM text")
            }),
            None => Ok(None),
        }
    };
    let required = |key: &'static str| {
        text(key)?.ok_or(CaError::SecretKeyMissing {
            secret: secret_name.to_owned(),
            key,
            hint,
        })
    };
    let cert = required(TLS_CRT)?;
    let key = required(TLS_KEY)?;
    let bundle = text(CA_CRT)?;
    CertificateAuthority::from_pem(cert, key, bundle, trust_domain)
        .map_err(|err| err.located(|what| format!("Secret {secret_name} key {what}")))
}

/// The Secret holding a generated root, in the `kubernetes.io/tls` shape cert-manager and
/// other tools read (so it can also serve as a cert-manager CA issuer's Secret).
pub(super) fn tls_secret(namespace: &str, name: &str, ca: &CertificateAuthority) -> Secret {
    let data = [
        (TLS_CRT, ca.cert_pem()),
        (TLS_KEY, ca.key_pem()),
        (CA_CRT, ca.trust_bundle_pem()),
    ]
    .into_iter()
    .map(|(key, pem)| (key.to_owned(), ByteString(pem.as_bytes().to_vec())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "weft-controller".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

fn kube_error(action: &'static str, secret: &str) -> impl FnOnce(kube::Error) -> CaError {
    let secret = secret.to_owned();
    move |source| CaError::Kube {
        action,
        secret,
        source,
    }
}
