//! SPIFFE ids of workloads, `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`:
//! the one identity format the controller's CA issues and the proxies check. Plain parsing
//! and formatting, no I/O.

use std::fmt;
use std::str::FromStr;

/// The trust domain when none is configured (as Istio's and Linkerd's default).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A workload identity: who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

/// Why a string is not a workload SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{id:?} is not spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>: {problem}")]
pub struct SpiffeIdError {
    pub id: String,
    pub problem: &'static str,
}

impl SpiffeId {
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        Self {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        }
    }

    /// `spiffe://<trust-domain>/`: what every id of the domain starts with.
    pub fn trust_domain_prefix(trust_domain: &str) -> String {
        format!("spiffe://{trust_domain}/")
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        let fail = |problem| SpiffeIdError {
            id: id.to_owned(),
            problem,
        };
        let rest = id
            .strip_prefix("spiffe://")
            .ok_or_else(|| fail("the scheme must be spiffe://"))?;
        let (trust_domain, path) = rest
            .split_once('/')
            .ok_or_else(|| fail("there is no path"))?;
        if trust_domain.is_empty() || !trust_domain.chars().all(is_trust_domain_char) {
            return Err(fail(
                "the trust domain must be lower-case letters, digits, '.', '-' or '_'",
            ));
        }
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["ns", namespace, "sa", service_account]
                if !namespace.is_empty() && !service_account.is_empty() =>
            {
                Ok(Self::new(trust_domain, namespace, service_account))
            }
            _ => Err(fail(
                "the path must be /ns/<namespace>/sa/<service-account>",
            )),
        }
    }
}

fn is_trust_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let id = SpiffeId::new("cluster.local", "team-a", "web");
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/team-a/sa/web");
        assert_eq!(id.to_string().parse::<SpiffeId>(), Ok(id));
    }

    #[test]
    fn rejects_what_is_not_a_workload_id() {
        for bad in [
            "https://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local",
            "spiffe:///ns/a/sa/b",
            "spiffe://Cluster.Local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe://cluster.local/ns/a/sa/b/extra",
        ] {
            let err = bad.parse::<SpiffeId>().unwrap_err();
            assert_eq!(err.id, bad);
        }
    }
}
