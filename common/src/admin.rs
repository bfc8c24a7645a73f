//! A minimal HTTP/1 admin server: each binary supplies a function from request path to
//! (status, body). Admin traffic is tiny, so bodies are built whole.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::metrics::{self, Exposition};

/// What an admin request is answered with.
pub type Handler = Arc<dyn Fn(&AdminRequest) -> Reply + Send + Sync>;

/// The parts of an admin request handlers read.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminRequest<'a> {
    pub path: &'a str,
    /// The `Accept` header, if any (`/metrics` picks its format from it).
    pub accept: Option<&'a str>,
}

/// One admin response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    pub fn json(body: impl Into<String>) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "application/json",
            body: body.into(),
        }
    }

    /// `registry` in the format `request` asks for (OpenMetrics or the text format).
    pub fn metrics(registry: &Registry, request: &AdminRequest) -> Self {
        let format = Exposition::negotiate(request.accept);
        match metrics::encode(registry, format) {
            Ok(body) => Self {
                status: StatusCode::OK,
                content_type: format.content_type(),
                body,
            },
            Err(err) => Self::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics: {err}\n"),
            ),
        }
    }

    pub fn not_found(paths: &str) -> Self {
        Self::text(StatusCode::NOT_FOUND, format!("not found; try {paths}\n"))
    }
}

/// A bound admin listener; `serve` answers requests until the future is dropped.
pub struct AdminServer {
    listener: TcpListener,
}

impl AdminServer {
    /// Binds `addr`; `flag` names the setting in the error a user sees.
    pub async fn bind(flag: &str, addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|err| anyhow::anyhow!("{flag} {addr}: cannot listen: {err}"))?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn serve(self, handler: Handler) -> anyhow::Result<()> {
        loop {
            let (stream, _) = self.listener.accept().await?;
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| respond(req, handler.clone()));
                if let Err(err) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%err, "admin connection ended with an error");
                }
            });
        }
    }
}

async fn respond(
    req: Request<Incoming>,
    handler: Handler,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let reply = handler(&AdminRequest {
        path: req.uri().path(),
        accept,
    });
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(reply.content_type),
    );
    Ok(response)
}
