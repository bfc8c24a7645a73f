//! `CaError`: everything that can go wrong loading, creating or using the CA. Each message
//! names what is wrong and where (which of tls.crt / tls.key / ca.crt, which file, which
//! Secret and key), because these errors end up in an operator's terminal or event log and
//! must be actionable without reading the code.

use std::path::PathBuf;

use weft_common::spiffe::SpiffeId;

/// Why the CA could not be loaded, created, persisted or could not issue.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// CA material (a certificate or key, from a file or a Secret) is unusable. `what`
    /// names it: `tls.crt`, `tls.key`, `ca.crt`, a path, or a Secret and key.
    #[error("{what}: {problem}")]
    Invalid { what: String, problem: String },

    /// The trust domain is not a valid SPIFFE trust domain.
    #[error("trust domain {0:?}: must be non-empty lower-case letters, digits, '.', '-' or '_'")]
    TrustDomain(String),

    /// A certificate signing request was rejected.
    #[error("certificate signing request: {0}")]
    Csr(String),

    /// The identity asked for belongs to another trust domain than the CA's.
    #[error("cannot issue for {id}: this CA issues only for trust domain {trust_domain:?}")]
    ForeignTrustDomain { id: SpiffeId, trust_domain: String },

    /// The requested lifetime cannot produce a certificate (zero, or the CA has expired).
    #[error("cannot issue a certificate: {0}")]
    Lifetime(String),

    /// A name cannot be written into a certificate (SANs are ASCII).
    #[error("cannot put {0} in a certificate: it is not ASCII")]
    Name(String),

    /// rcgen failed to generate a key or to sign; `what` says what was being made.
    #[error("{what}: {source}")]
    Rcgen {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },

    /// No secure random bytes (for serial numbers) could be drawn.
    #[error("drawing a random serial number: the system's secure random source failed")]
    Random,

    /// Reading or writing the CA's files.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A Kubernetes API call on the CA's Secret failed.
    #[error("{action} Secret {secret}: {source}")]
    Kube {
        action: &'static str,
        /// `namespace/name`
        secret: String,
        #[source]
        source: kube::Error,
    },

    /// The user's CA Secret does not exist.
    #[error(
        "Secret {secret} not found: it must hold the mesh CA as tls.crt and tls.key \
         (and ca.crt for an intermediate), as cert-manager writes it"
    )]
    SecretNotFound { secret: String },

    /// The CA Secret exists but lacks a data key it must have.
    #[error("Secret {secret} has no data key {key}{hint}")]
    SecretKeyMissing {
        secret: String,
        key: &'static str,
        hint: &'static str,
    },
}

impl CaError {
    pub(crate) fn invalid(what: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn rcgen(what: &'static str) -> impl FnOnce(rcgen::Error) -> Self {
        move |source| Self::Rcgen { what, source }
    }

    /// Renames the material an `Invalid` error is about (`tls.key` → `/etc/weft/ca/tls.key`
    /// or `Secret weft-system/ca key tls.key`), so that loaders can say where it came from
    /// while `CertificateAuthority::from_pem` only knows its role.
    pub(crate) fn located(self, locate: impl Fn(&str) -> String) -> Self {
        match self {
            Self::Invalid { what, problem } => Self::Invalid {
                what: locate(&what),
                problem,
            },
            other => other,
        }
    }
}
