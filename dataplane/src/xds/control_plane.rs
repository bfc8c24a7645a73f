//! How the proxy reaches the controller: the address, TLS (`https://`: the controller's
//! certificate is checked against the mesh trust bundle given by `--xds-root-cert`), and
//! the ServiceAccount token that proves who the proxy is, read from its file on every
//! connection and certificate request (the kubelet rotates projected tokens in place).
//! The xDS stream and the certificate client share it.

use std::path::PathBuf;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings find a controller that vanished without closing the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 receive window for the xDS stream and connection. With the protocol's default
/// of 64 KiB a route configuration of a few hundred KB (one virtual host per Service)
/// arrives in window-sized pieces, each waiting a round trip for a WINDOW_UPDATE; Envoy
/// advertises 256 MiB. 16 MiB takes any realistic response in one go.
const XDS_WINDOW: u32 = 16 << 20;

/// The controller's address and how to prove who we are to it.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// e.g. `http://127.0.0.1:15010` or `https://weft-controller.weft-system.svc:15012`.
    pub server: http::Uri,
    /// PEM roots that sign the controller's certificate (`https` only).
    pub root_cert_pem: Option<String>,
    /// The name to check the controller's certificate against; default: the URI's host.
    pub server_name: Option<String>,
    /// The projected ServiceAccount token (audience `weft`).
    pub token_file: Option<PathBuf>,
}

/// Why the controller cannot be reached as configured.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("--xds-addr {0}: https needs --xds-root-cert (the mesh trust bundle)")]
    NoRootCert(http::Uri),
    #[error("--xds-addr {uri}: {err}")]
    Tls {
        uri: http::Uri,
        err: tonic::transport::Error,
    },
    #[error("--token-file {path}: {problem}")]
    Token { path: String, problem: String },
}

impl ControlPlane {
    /// A plaintext, unauthenticated control plane at `server` (tests, local development).
    pub fn plaintext(server: http::Uri) -> Self {
        Self {
            server,
            root_cert_pem: None,
            server_name: None,
            token_file: None,
        }
    }

    /// The tonic endpoint: timeouts, keepalive, large windows, and TLS for `https`.
    pub fn endpoint(&self) -> Result<Endpoint, ControlPlaneError> {
        let mut endpoint = Endpoint::from(self.server.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .initial_stream_window_size(XDS_WINDOW)
            .initial_connection_window_size(XDS_WINDOW);
        if self.server.scheme_str() == Some("https") {
            let roots = self
                .root_cert_pem
                .as_ref()
                .ok_or_else(|| ControlPlaneError::NoRootCert(self.server.clone()))?;
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(roots));
            if let Some(name) = &self.server_name {
                tls = tls.domain_name(name.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|err| ControlPlaneError::Tls {
                    uri: self.server.clone(),
                    err,
                })?;
        }
        Ok(endpoint)
    }

    /// The current token, read from its file now; `None` without `--token-file`.
    pub fn token(&self) -> Result<Option<String>, ControlPlaneError> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let fail = |problem: String| ControlPlaneError::Token {
            path: path.display().to_string(),
            problem,
        };
        let token = std::fs::read_to_string(path).map_err(|err| fail(err.to_string()))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(fail("the file is empty".into()));
        }
        Ok(Some(token.to_owned()))
    }

    /// Adds `authorization: Bearer <token>` to a request when there is a token.
    pub fn authorize<T>(&self, request: &mut tonic::Request<T>) -> Result<(), ControlPlaneError> {
        if let Some(token) = self.token()? {
            let value: MetadataValue<_> =
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| ControlPlaneError::Token {
                        path: self
                            .token_file
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                        problem: "the token has characters a header cannot carry".into(),
                    })?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_needs_roots() {
        let plane = ControlPlane::plaintext("https://127.0.0.1:15012".parse().unwrap());
        let err = plane.endpoint().unwrap_err().to_string();
        assert!(err.contains("--xds-root-cert"), "{err}");
        assert!(
            ControlPlane::plaintext("http://127.0.0.1:15010".parse().unwrap())
                .endpoint()
                .is_ok()
        );
    }

    #[test]
    fn token_is_read_fresh_and_sent_as_bearer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let plane = ControlPlane {
            token_file: Some(path.clone()),
            ..ControlPlane::plaintext("http://127.0.0.1:1".parse().unwrap())
        };
        let mut request = tonic::Request::new(());
        plane.authorize(&mut request).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer first"
        );
        std::fs::write(&path, "second").unwrap();
        assert_eq!(plane.token().unwrap().as_deref(), Some("second"));
        std::fs::write(&path, "").unwrap();
        assert!(plane.token().unwrap_err().to_string().contains("empty"));
    }
}
