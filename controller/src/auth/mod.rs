//! Who a proxy is. A proxy proves its identity with a ServiceAccount token sent as gRPC
//! metadata (`authorization: Bearer <token>`) on the xDS stream and on certificate requests.
//! The controller checks the token (Kubernetes: a TokenReview against the apiserver for the
//! audience `weft`; local mode: a token file standing in for it) and takes the namespace and
//! service account from that check alone, never from what the proxy says about itself.
//!
//! `cache` keeps good answers until the token expires (at most `MAX_CACHE`), so a
//! reconnecting fleet does not turn into a burst of TokenReviews; `token_file` and `review`
//! are the two ways to check a token.

mod cache;
mod review;
mod token_file;

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataMap;
use weft_common::spiffe::SpiffeId;

pub use token_file::TokenFile;

/// The audience a proxy's projected token must be minted for.
pub const DEFAULT_AUDIENCE: &str = "weft";
/// The longest a positive review is trusted without asking again.
pub const MAX_CACHE: Duration = Duration::from_secs(300);

/// A workload identity proven by a token.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub namespace: String,
    pub service_account: String,
}

impl Identity {
    pub fn spiffe_id(&self, trust_domain: &str) -> SpiffeId {
        SpiffeId::new(trust_domain, &self.namespace, &self.service_account)
    }
}

/// Why a proxy is not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no token: send the ServiceAccount token (audience {audience:?}) as `authorization: Bearer <token>` metadata"
    )]
    Missing { audience: String },
    #[error("the authorization metadata is not `Bearer <token>`")]
    Malformed,
    #[error("the token was refused: {0}")]
    Refused(String),
    #[error("the token could not be checked (the apiserver's TokenReview failed): {0}")]
    Unavailable(String),
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unavailable(_) => tonic::Status::unavailable(err.to_string()),
            _ => tonic::Status::unauthenticated(err.to_string()),
        }
    }
}

/// How tokens are checked.
#[derive(Clone)]
pub enum Authenticator {
    /// Nobody is authenticated: config is served to anyone (local development only), no
    /// certificate is issued.
    Disabled,
    /// Local mode: a file maps tokens to identities.
    TokenFile(Arc<TokenFile>),
    /// Kubernetes: TokenReview against the apiserver, cached.
    TokenReview(Arc<review::TokenReviewer>),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authenticator::Disabled => "Disabled",
            Authenticator::TokenFile(_) => "TokenFile",
            Authenticator::TokenReview(_) => "TokenReview",
        })
    }
}

impl Authenticator {
    pub fn token_review(client: kube::Client, audience: &str) -> Self {
        Authenticator::TokenReview(Arc::new(review::TokenReviewer::new(client, audience)))
    }

    pub fn is_enabled(&self) -> bool {
        !matches!(self, Authenticator::Disabled)
    }

    /// The identity proven by the request's bearer token; `Ok(None)` when authentication
    /// is disabled.
    pub async fn authenticate(
        &self,
        metadata: &MetadataMap,
    ) -> Result<Option<Identity>, AuthError> {
        let audience = match self {
            Authenticator::Disabled => return Ok(None),
            Authenticator::TokenFile(_) => DEFAULT_AUDIENCE,
            Authenticator::TokenReview(reviewer) => reviewer.audience(),
        };
        let token = bearer_token(metadata, audience)?;
        match self {
            Authenticator::Disabled => Ok(None),
            Authenticator::TokenFile(file) => file.identity(token).map(Some),
            Authenticator::TokenReview(reviewer) => reviewer.review(token).await.map(Some),
        }
    }
}

/// A proxy may act only in the namespace its token proves: `claimed` (from node `node_id`)
/// must be `proven`, or the request is PERMISSION_DENIED naming both.
pub fn check_namespace(node_id: &str, claimed: &str, proven: &str) -> Result<(), tonic::Status> {
    if claimed == proven {
        return Ok(());
    }
    Err(tonic::Status::permission_denied(format!(
        "node id {node_id:?} names namespace {claimed:?}, but the token is for namespace {proven:?}"
    )))
}

/// The token of `authorization: Bearer <token>`.
fn bearer_token<'a>(metadata: &'a MetadataMap, audience: &str) -> Result<&'a str, AuthError> {
    let Some(value) = metadata.get("authorization") else {
        return Err(AuthError::Missing {
            audience: audience.to_owned(),
        });
    };
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(AuthError::Malformed)?;
    if token.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// `system:serviceaccount:<namespace>:<name>` → the identity it names.
fn service_account_user(username: &str) -> Option<Identity> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (namespace, service_account) = rest.split_once(':')?;
    (!namespace.is_empty() && !service_account.is_empty() && !service_account.contains(':')).then(
        || Identity {
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: Option<&str>) -> MetadataMap {
        let mut map = MetadataMap::new();
        if let Some(value) = value {
            map.insert("authorization", value.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_token_is_read_and_its_absence_explained() {
        assert_eq!(
            bearer_token(&metadata(Some("Bearer abc")), "weft"),
            Ok("abc")
        );
        let missing = bearer_token(&metadata(None), "weft").unwrap_err();
        assert!(
            missing.to_string().contains("audience \"weft\""),
            "{missing}"
        );
        assert_eq!(
            bearer_token(&metadata(Some("Basic abc")), "weft"),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            bearer_token(&metadata(Some("Bearer ")), "weft"),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn service_account_usernames() {
        assert_eq!(
            service_account_user("system:serviceaccount:team-a:web"),
            Some(Identity {
                namespace: "team-a".into(),
                service_account: "web".into()
            })
        );
        assert_eq!(service_account_user("admin"), None);
        assert_eq!(service_account_user("system:serviceaccount:team-a"), None);
        assert_eq!(service_account_user("system:serviceaccount::web"), None);
    }

    #[test]
    fn statuses_say_unauthenticated_unless_the_check_itself_failed() {
        let refused: tonic::Status = AuthError::Refused("expired".into()).into();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let down: tonic::Status = AuthError::Unavailable("timeout".into()).into();
        assert_eq!(down.code(), tonic::Code::Unavailable);
    }
}
