//! Certificates the controller hands out: the certificate service proxies call with a CSR
//! (`service`), and the controller's own serving certificate for xDS over TLS (`serving`),
//! both issued by the CA in `crate::ca`.

mod service;
mod serving;

pub use service::{CertificateService, IssuePolicy};
pub use serving::{ServingIdentity, tls_incoming};
