//! Stock Envoy's certificates over SDS. Envoy cannot send a CSR over xDS, so for an
//! authenticated Envoy stream the controller generates the key pair itself, issues a
//! certificate for the identity the token proved, and serves both as the `default` Secret,
//! with the trust bundle as `ROOTCA`, on that stream alone.
//!
//! This is weaker than weft-proxy's CSR flow: the private key exists in the controller's
//! memory and crosses the wire (inside the TLS-protected, authenticated xDS stream). It is
//! acceptable for Envoy interop because the controller already holds the CA key, which
//! could mint that identity anyway, so knowing one leaf key adds no power; the key is never
//! stored, logged or sent to any other stream. weft-proxy's key never leaves the proxy.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use weft_common::time::renew_at;

use super::snapshot::TypeResources;
use crate::auth::Identity;
use crate::ca::CertificateAuthority;
use crate::translate::{certificate_secret, trust_bundle_secret};

/// What the ADS server needs to issue Envoy's certificates.
#[derive(Clone)]
pub struct EnvoyCertificates {
    pub ca: CertificateAuthority,
    pub lifetime: Duration,
}

impl std::fmt::Debug for EnvoyCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvoyCertificates")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// One Envoy stream's secrets and when to renew them.
#[derive(Debug)]
pub(super) struct EnvoySds {
    pub(super) secrets: Arc<TypeResources>,
    pub(super) not_after: SystemTime,
    pub(super) renew_at: SystemTime,
}

impl EnvoySds {
    pub(super) fn issue(certs: &EnvoyCertificates, identity: &Identity) -> Result<Self, String> {
        let spiffe_id = identity.spiffe_id(certs.ca.trust_domain());
        let (issued, key_pem) = certs
            .ca
            .issue_with_new_key(&spiffe_id, certs.lifetime)
            .map_err(|err| format!("cannot issue a certificate for {spiffe_id}: {err}"))?;
        let secrets = TypeResources::from_bodies([
            certificate_secret(&issued.chain_pem_joined(), &key_pem),
            trust_bundle_secret(certs.ca.trust_bundle_pem()),
        ]);
        tracing::info!(identity = %spiffe_id, not_after = ?issued.not_after,
            "issued Envoy's certificate (SDS)");
        Ok(Self {
            secrets: Arc::new(secrets),
            not_after: issued.not_after,
            renew_at: renew_at(SystemTime::now(), issued.not_after, fastrand::f64()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_near_half_life() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let end = start + Duration::from_secs(100);
        assert_eq!(renew_at(start, end, 0.5), start + Duration::from_secs(50));
        assert_eq!(renew_at(start, end, 0.0), start + Duration::from_secs(40));
        assert_eq!(renew_at(start, end, 1.0), start + Duration::from_secs(60));
    }
}
