//! CORS for browsers' gRPC-Web calls, from a route's policy (Envoy's `CorsPolicy`, see
//! `config::cors`): which origins may call, which methods and request headers a preflight
//! allows, which response headers scripts may read, and how long a preflight answer holds.
//! weft-controller lists the headers gRPC-Web clients always send and the gRPC status
//! headers itself; here the lists are used as given.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
//! here and never forwarded: 200 with the `access-control-*` headers for an allowed origin
//! asking for an allowed method (gRPC-Web's is `POST`), 403 with a one-line reason and no
//! `access-control-*` header otherwise, so the browser refuses the call. A call from an
//! origin that is not allowed is refused the same way before it reaches the service (Envoy's
//! `cors` filter forwards it and only withholds the headers; refusing also spares the
//! service a call whose answer the browser would hide).

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
    CONTENT_TYPE, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::config::CorsPolicy;
use crate::proxy::body::{self, ProxyBody, boxed};

/// What to do with a request that carries an `Origin`.
#[derive(Debug)]
pub enum Decision {
    /// A preflight, or a call from an origin that is not allowed: this is the whole answer.
    Answer(Response<ProxyBody>),
    /// A call from an allowed origin: serve it, then add these headers to its response.
    Serve(HeaderMap),
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The decision for a browser's request under `policy` (`None` without an `Origin`: not a
/// browser's cross-origin request, served as it is).
pub fn decide(policy: &CorsPolicy, method: &Method, headers: &HeaderMap) -> Option<Decision> {
    let origin = headers.get(ORIGIN)?;
    let origin_text = origin.to_str().unwrap_or_default();
    if !policy.allow_origins.iter().any(|m| m.matches(origin_text)) {
        return Some(Decision::Answer(refused(&format!(
            "origin {origin_text:?} is not allowed by the route's CORS policy"
        ))));
    }
    if !is_preflight(method, headers) {
        return Some(Decision::Serve(response_headers(policy, origin)));
    }
    let asked = headers
        .get(ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default();
    if !policy.allow_methods.iter().any(|m| m == asked) {
        return Some(Decision::Answer(refused(&format!(
            "method {asked} is not allowed by the route's CORS policy (gRPC-Web calls are POST)"
        ))));
    }
    Some(Decision::Answer(preflight_answer(policy, origin)))
}

fn preflight_answer(policy: &CorsPolicy, origin: &HeaderValue) -> Response<ProxyBody> {
    let mut response = Response::new(body::empty());
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(VARY, HeaderValue::from_static("origin"));
    if let Some(methods) = header_list(&policy.allow_methods) {
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
    }
    if let Some(allowed) = header_list(&policy.allow_headers) {
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed);
    }
    if let Some(max_age) = policy.max_age {
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age));
    }
    response
}

fn response_headers(policy: &CorsPolicy, origin: &HeaderValue) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(VARY, HeaderValue::from_static("origin"));
    if let Some(exposed) = header_list(&policy.expose_headers) {
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, exposed);
    }
    headers
}

/// A list as one comma-separated header value (`None` when empty).
fn header_list(names: &[String]) -> Option<HeaderValue> {
    if names.is_empty() {
        return None;
    }
    HeaderValue::from_str(&names.join(", ")).ok()
}

/// 403 with `reason` as plain text and no `access-control-*` header.
pub fn refused(reason: &str) -> Response<ProxyBody> {
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
    use crate::config::StringMatch;

    fn policy() -> CorsPolicy {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        CorsPolicy {
            allow_origins: vec![StringMatch::Regex(
                regex::Regex::new("^(?i:https://app\\.example\\.com)$").expect("regex"),
            )],
            allow_methods: list(&["POST"]),
            allow_headers: list(&["content-type", "x-grpc-web", "authorization"]),
            expose_headers: list(&["grpc-status", "grpc-message", "x-request-id"]),
            max_age: Some(600),
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
        let response = answer(decide(&policy(), &Method::OPTIONS, &headers));
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(
            h[ACCESS_CONTROL_ALLOW_HEADERS],
            "content-type, x-grpc-web, authorization"
        );
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[VARY], "origin");
    }

    #[test]
    fn a_preflight_from_another_origin_is_refused_with_the_reason_and_no_cors_headers() {
        let headers = request(Some("https://evil.example"), Some("POST"));
        let response = answer(decide(&policy(), &Method::OPTIONS, &headers));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(!response.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn a_preflight_for_another_method_is_refused() {
        let headers = request(Some("https://app.example.com"), Some("PUT"));
        let response = answer(decide(&policy(), &Method::OPTIONS, &headers));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_call_from_an_allowed_origin_is_served_and_its_status_exposed() {
        let headers = request(Some("https://APP.example.com"), None);
        let Some(Decision::Serve(added)) = decide(&policy(), &Method::POST, &headers) else {
            panic!("an allowed call is served");
        };
        assert_eq!(
            added[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://APP.example.com"
        );
        assert_eq!(
            added[ACCESS_CONTROL_EXPOSE_HEADERS],
            "grpc-status, grpc-message, x-request-id"
        );
    }

    #[test]
    fn a_call_from_another_origin_never_reaches_the_service() {
        let headers = request(Some("https://evil.example"), None);
        let response = answer(decide(&policy(), &Method::POST, &headers));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_wildcard_allows_any_origin_and_no_origin_means_no_cors() {
        let any = CorsPolicy {
            allow_origins: vec![StringMatch::Regex(
                regex::Regex::new("^(?:.*)$").expect("regex"),
            )],
            allow_methods: vec!["POST".into()],
            ..CorsPolicy::default()
        };
        let headers = request(Some("http://localhost:8080"), Some("POST"));
        let response = answer(decide(&any, &Method::OPTIONS, &headers));
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!response.headers().contains_key(ACCESS_CONTROL_MAX_AGE));
        assert!(decide(&any, &Method::POST, &request(None, None)).is_none());
    }
}
