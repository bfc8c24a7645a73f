//! The mesh's certificate authority: who signs workload certificates (X.509 SVIDs) and what
//! every peer trusts.
//!
//! Trust model. The CA is either a root generated once and persisted (in a state directory,
//! `store`, or a Secret shared by all controller replicas, `secret`), or an operator's CA in
//! cert-manager's shape: a root, or an intermediate whose chain is sent after every leaf
//! while only the root(s) of `ca.crt` go into the trust bundle. A leaf carries exactly one
//! identity, the URI SAN `spiffe://<trust-domain>/ns/<ns>/sa/<sa>` that the caller has
//! reviewed (from an authenticated ServiceAccount token); nothing else from a CSR is
//! copied. Proxies keep their keys and send CSRs, so the controller never sees their
//! private keys, with one exception: stock Envoy takes its key over SDS, so for it the
//! controller generates the key (`issue_with_new_key`).
//!
//! Layout: `authority` (the CA value, generation, loading), `load` (checks on operator
//! material), `issue` (signing), `pem` (encodings), `store` (files), `secret` (Kubernetes),
//! `error`. Everything but `secret` is synchronous.

mod authority;
mod error;
mod issue;
mod load;
mod pem;
mod secret;
mod store;

#[cfg(test)]
mod authority_tests;
#[cfg(test)]
mod issue_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod test_support;

pub use authority::CertificateAuthority;
pub use error::CaError;
pub use issue::IssuedCert;
pub use secret::{load_or_create_secret, load_user_secret};
pub use store::{Created, load_or_create_in_dir, load_user_files};
