//! Positive token checks, remembered until the token expires (read from the JWT's `exp`
//! claim once the token has been verified) but never longer than `MAX_CACHE`. Refusals are
//! not remembered: a refused proxy retries with backoff, and a token fixed by the operator
//! should work at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Identity, MAX_CACHE};

/// At most this many tokens are remembered; past it the cache is cleared (tokens are few:
/// one per proxy, rotated hourly).
const MAX_ENTRIES: usize = 65_536;

#[derive(Debug, Default)]
pub(super) struct ReviewCache {
    entries: Mutex<HashMap<String, (Identity, SystemTime)>>,
}

impl ReviewCache {
    pub(super) fn get(&self, token: &str, now: SystemTime) -> Option<Identity> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(token) {
            Some((identity, until)) if now < *until => Some(identity.clone()),
            Some(_) => {
                entries.remove(token);
                None
            }
            None => None,
        }
    }

    pub(super) fn put(&self, token: &str, identity: Identity, now: SystemTime) {
        let until = cache_until(token, now);
        if until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(token.to_owned(), (identity, until));
    }
}

/// Until when a verified token may be trusted: its `exp`, capped at `now + MAX_CACHE`
/// (a token without a readable `exp` gets the cap).
fn cache_until(token: &str, now: SystemTime) -> SystemTime {
    let cap = now + MAX_CACHE;
    match jwt_expiry(token) {
        Some(exp) => exp.min(cap),
        None => cap,
    }
}

/// The `exp` claim of a JWT, unverified (only called for tokens already verified).
fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(exp: u64) -> String {
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#));
        format!("e30.{claims}.sig")
    }

    fn identity() -> Identity {
        Identity {
            namespace: "a".into(),
            service_account: "b".into(),
        }
    }

    #[test]
    fn remembered_until_expiry_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cache = ReviewCache::default();
        let soon = jwt(1_000_060);
        cache.put(&soon, identity(), now);
        assert_eq!(
            cache.get(&soon, now + Duration::from_secs(59)),
            Some(identity())
        );
        assert_eq!(cache.get(&soon, now + Duration::from_secs(60)), None);

        let late = jwt(9_000_000);
        cache.put(&late, identity(), now);
        assert!(
            cache
                .get(&late, now + MAX_CACHE - Duration::from_secs(1))
                .is_some()
        );
        assert!(cache.get(&late, now + MAX_CACHE).is_none());

        let opaque = "not-a-jwt";
        cache.put(opaque, identity(), now);
        assert!(cache.get(opaque, now).is_some());
    }

    #[test]
    fn expired_tokens_are_not_remembered() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cache = ReviewCache::default();
        let expired = jwt(999_999);
        cache.put(&expired, identity(), now);
        assert_eq!(cache.get(&expired, now), None);
    }
}
