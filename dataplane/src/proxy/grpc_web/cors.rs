//! CORS for browsers' gRPC-Web calls, from a route's policy: which origins may call, which
//! request headers they may send besides the ones gRPC-Web clients always send, which
//! response headers their scripts may read besides the gRPC status, and how long a
//! preflight answer holds.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
//! here and never forwarded: 200 with the `access-control-*` headers for an allowed origin
//! asking for `POST` (gRPC-Web's only method), 403 with a one-line reason and no
//! `access-control-*` header otherwise, so the browser refuses the call. A call from an
//! origin that is not allowed is refused the same way before it reaches the service (Envoy's
//! `cors` filter forwards it and only withholds the headers; refusing also spares the
//! service a call whose answer the browser would hide).

use std::time::Duration;

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
    CONTENT_TYPE, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::proxy::body::{self, ProxyBody, boxed};

/// Request headers gRPC-Web clients send on every call (the official client and Connect's).
const CLIENT_HEADERS: &[&str] = &["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"];
/// Response headers every caller's script may read: the gRPC status (in headers when the
/// answer is Trailers-Only).
const STATUS_HEADERS: &[&str] = &["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// A route's CORS policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Exact origins (`https://app.example.com`), or `*` for any.
    pub allow_origins: Vec<String>,
    /// Request headers allowed besides [`CLIENT_HEADERS`].
    pub allow_headers: Vec<String>,
    /// Response headers exposed besides [`STATUS_HEADERS`].
    pub expose_headers: Vec<String>,
    /// How long a browser may reuse a preflight answer.
    pub max_age: Option<Duration>,
}

/// What to do with a request that carries an `Origin`.
#[derive(Debug)]
pub enum Decision {
    /// A preflight: this is the whole answer.
    Answer(Response<ProxyBody>),
    /// A call from an allowed origin: serve it, then add these headers to its response.
    Serve(HeaderMap),
}

impl CorsPolicy {
    fn allows(&self, origin: &str) -> bool {
        self.allow_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    }

    /// The decision for a request from a browser (`None` without an `Origin`: not a
    /// cross-origin call, served as it is).
    pub fn decide(&self, method: &Method, headers: &HeaderMap) -> Option<Decision> {
        let origin = headers.get(ORIGIN)?;
        let origin_text = origin.to_str().unwrap_or_default();
        let preflight =
            method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if !self.allows(origin_text) {
            return Some(Decision::Answer(refused(&format!(
                "origin {origin_text:?} is not allowed by the route's CORS policy"
            ))));
        }
        if !preflight {
            return Some(Decision::Serve(self.response_headers(origin)));
        }
        let asked = headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if asked != b"POST" {
            return Some(Decision::Answer(refused(&format!(
                "method {} is not allowed: gRPC-Web calls are POST",
                String::from_utf8_lossy(asked)
            ))));
        }
        Some(Decision::Answer(self.preflight_answer(origin)))
    }

    fn preflight_answer(&self, origin: &HeaderValue) -> Response<ProxyBody> {
        let mut response = Response::new(body::empty());
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(VARY, HeaderValue::from_static("origin"));
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        if let Some(allowed) = header_list(CLIENT_HEADERS, &self.allow_headers) {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed);
        }
        if let Some(max_age) = self.max_age {
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age.as_secs()));
        }
        response
    }

    fn response_headers(&self, origin: &HeaderValue) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(VARY, HeaderValue::from_static("origin"));
        if let Some(exposed) = header_list(STATUS_HEADERS, &self.expose_headers) {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, exposed);
        }
        headers
    }
}

/// `always` and `configured` as one comma-separated header value, without repeats.
fn header_list(always: &[&str], configured: &[String]) -> Option<HeaderValue> {
    let mut names: Vec<String> = always.iter().map(|name| name.to_string()).collect();
    for name in configured {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    HeaderValue::from_str(&names.join(", ")).ok()
}

/// 403 with `reason` as plain text and no `access-control-*` header.
fn refused(reason: &str) -> Response<ProxyBody> {
    let mut response = Response::new(boxed(http_body_util::Full::new(bytes::Bytes::from(
        format!("{reason}\n"),
    ))));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy {
            allow_origins: vec!["https://app.example.com".into()],
            allow_headers: vec!["Authorization".into(), "x-grpc-web".into()],
            expose_headers: vec!["x-request-id".into()],
            max_age: Some(Duration::from_secs(600)),
        }
    }

    fn request(origin: Option<&str>, preflight_method: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(ORIGIN, HeaderValue::from_str(origin).expect("origin"));
        }
        if let Some(method) = preflight_method {
            headers.insert(
                ACCESS_CONTROL_REQUEST_METHOD,
                HeaderValue::from_str(method).expect("method"),
            );
        }
        headers
    }

    fn answer(decision: Option<Decision>) -> Response<ProxyBody> {
        match decision {
            Some(Decision::Answer(response)) => response,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_is_answered_with_what_it_may_do() {
        let headers = request(Some("https://app.example.com"), Some("POST"));
        let response = answer(policy().decide(&Method::OPTIONS, &headers));
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(
            h[ACCESS_CONTROL_ALLOW_HEADERS],
            "content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization"
        );
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[VARY], "origin");
    }

    #[test]
    fn a_preflight_from_another_origin_is_refused_with_the_reason_and_no_cors_headers() {
        let headers = request(Some("https://evil.example"), Some("POST"));
        let response = answer(policy().decide(&Method::OPTIONS, &headers));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(!response.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn a_preflight_for_another_method_is_refused() {
        let headers = request(Some("https://app.example.com"), Some("PUT"));
        let response = answer(policy().decide(&Method::OPTIONS, &headers));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_call_from_an_allowed_origin_is_served_and_its_status_exposed() {
        let headers = request(Some("https://APP.example.com"), None);
        let Some(Decision::Serve(added)) = policy().decide(&Method::POST, &headers) else {
            panic!("an allowed call is served");
        };
        assert_eq!(
            added[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://APP.example.com"
        );
        assert_eq!(
            added[ACCESS_CONTROL_EXPOSE_HEADERS],
            "grpc-status, grpc-message, grpc-status-details-bin, x-request-id"
        );
    }

    #[test]
    fn a_call_from_another_origin_never_reaches_the_service() {
        let headers = request(Some("https://evil.example"), None);
        let response = answer(policy().decide(&Method::POST, &headers));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_wildcard_allows_any_origin_and_no_origin_means_no_cors() {
        let any = CorsPolicy {
            allow_origins: vec!["*".into()],
            ..CorsPolicy::default()
        };
        let headers = request(Some("http://localhost:8080"), Some("POST"));
        let response = answer(any.decide(&Method::OPTIONS, &headers));
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!response.headers().contains_key(ACCESS_CONTROL_MAX_AGE));
        assert!(any.decide(&Method::POST, &request(None, None)).is_none());
    }
}
