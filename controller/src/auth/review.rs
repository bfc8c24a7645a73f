//! TokenReview: asks the apiserver whether a token is valid for the `weft` audience and whose
//! it is. Only ServiceAccount tokens are accepted; the identity is the reviewed username
//! `system:serviceaccount:<namespace>:<name>`.

use std::time::SystemTime;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;

use super::cache::ReviewCache;
use super::{AuthError, Identity, service_account_user};

pub struct TokenReviewer {
    client: kube::Client,
    audience: String,
    cache: ReviewCache,
}

impl TokenReviewer {
    pub(super) fn new(client: kube::Client, audience: &str) -> Self {
        Self {
            client,
            audience: audience.to_owned(),
            cache: ReviewCache::default(),
        }
    }

    pub(super) fn audience(&self) -> &str {
        &self.audience
    }

    pub(super) async fn review(&self, token: &str) -> Result<Identity, AuthError> {
        if let Some(identity) = self.cache.get(token, SystemTime::now()) {
            return Ok(identity);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|err| AuthError::Unavailable(err.to_string()))?;
        let identity = reviewed_identity(answer, &self.audience)?;
        self.cache.put(token, identity.clone(), SystemTime::now());
        Ok(identity)
    }
}

/// What a TokenReview's answer proves.
fn reviewed_identity(answer: TokenReview, audience: &str) -> Result<Identity, AuthError> {
    let status = answer.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        let why = status
            .error
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "the apiserver did not authenticate it".into());
        return Err(AuthError::Refused(why));
    }
    // An apiserver that ignores `spec.audiences` answers without them; one that honours
    // them lists the ones the token is valid for.
    if let Some(audiences) = &status.audiences
        && !audiences.iter().any(|a| a == audience)
    {
        return Err(AuthError::Refused(format!(
            "the token is for audiences {audiences:?}, not {audience:?}"
        )));
    }
    let username = status.user.and_then(|u| u.username).unwrap_or_default();
    service_account_user(&username).ok_or_else(|| {
        AuthError::Refused(format!(
            "{username:?} is not a ServiceAccount (system:serviceaccount:<namespace>:<name>)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};

    use super::*;

    fn answer(authenticated: bool, user: &str, audiences: Option<&[&str]>) -> TokenReview {
        TokenReview {
            status: Some(TokenReviewStatus {
                authenticated: Some(authenticated),
                user: Some(UserInfo {
                    username: Some(user.into()),
                    ..Default::default()
                }),
                audiences: audiences.map(|a| a.iter().map(|s| s.to_string()).collect()),
                error: (!authenticated).then(|| "token has expired".into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn identity_comes_from_the_review() {
        let identity = reviewed_identity(
            answer(true, "system:serviceaccount:n:x", Some(&["weft"])),
            "weft",
        )
        .unwrap();
        assert_eq!(
            (
                identity.namespace.as_str(),
                identity.service_account.as_str()
            ),
            ("n", "x")
        );
    }

    #[test]
    fn refusals_say_why() {
        let expired = reviewed_identity(answer(false, "", None), "weft").unwrap_err();
        assert_eq!(
            expired.to_string(),
            "the token was refused: token has expired"
        );
        let audience = reviewed_identity(
            answer(true, "system:serviceaccount:n:x", Some(&["api"])),
            "weft",
        )
        .unwrap_err();
        assert!(audience.to_string().contains("not \"weft\""), "{audience}");
        let user = reviewed_identity(answer(true, "alice", None), "weft").unwrap_err();
        assert!(user.to_string().contains("not a ServiceAccount"), "{user}");
    }
}
