//! weft matches (`RouteMatch`: a gRPC method and headers) → Envoy route matches. The method
//! is a match on the request path `/<service>/<method>`; in a route it is the path
//! specifier, in a fault (added to an existing route's match) a HeaderMatcher on `:path`.

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, RouteMatch as EnvoyMatch};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};

use crate::api::{HeaderMatch, MatchType, MethodMatch, RouteMatch};

/// What a method match requires of the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PathMatch {
    /// Every path.
    Any,
    Exact(String),
    Prefix(String),
    /// An RE2 expression the whole path must match.
    Regex(String),
}

/// Any one path segment (a service or a method name).
const SEGMENT: &str = "[^/]+";

/// The path match of a method match (see the module comment of `translate` for the rules).
pub(super) fn path_match(method: Option<&MethodMatch>) -> PathMatch {
    let Some(method) = method else {
        return PathMatch::Any;
    };
    let (service, name) = (method.service.as_deref(), method.method.as_deref());
    match (method.match_type, service, name) {
        (_, None, None) => PathMatch::Any,
        (MatchType::Exact, Some(service), Some(name)) => {
            PathMatch::Exact(format!("/{service}/{name}"))
        }
        (MatchType::Exact, Some(service), None) => PathMatch::Prefix(format!("/{service}/")),
        (MatchType::Exact, None, Some(name)) => {
            PathMatch::Regex(format!("/{SEGMENT}/{}", regex_syntax::escape(name)))
        }
        (MatchType::RegularExpression, service, name) => {
            let part = |p: Option<&str>| p.map_or(SEGMENT.to_owned(), |p| format!("(?:{p})"));
            PathMatch::Regex(format!("/{}/{}", part(service), part(name)))
        }
    }
}

fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_owned(),
        engine_type: None,
    }
}

fn string_matcher(pattern: MatchPattern) -> StringMatcher {
    StringMatcher {
        ignore_case: false,
        match_pattern: Some(pattern),
    }
}

/// The Envoy route match of a weft match (`None`: every RPC).
pub(super) fn route_match(rpc: Option<&RouteMatch>) -> EnvoyMatch {
    let path_specifier = match path_match(rpc.and_then(|m| m.method.as_ref())) {
        PathMatch::Any => PathSpecifier::Prefix("/".into()),
        PathMatch::Exact(path) => PathSpecifier::Path(path),
        PathMatch::Prefix(prefix) => PathSpecifier::Prefix(prefix),
        PathMatch::Regex(pattern) => PathSpecifier::SafeRegex(regex(&pattern)),
    };
    EnvoyMatch {
        path_specifier: Some(path_specifier),
        headers: rpc.map(|m| header_matchers(&m.headers)).unwrap_or_default(),
        ..Default::default()
    }
}

/// The HeaderMatchers that narrow an existing route to `rpc`: the method as a `:path`
/// matcher (when there is one), then the header matches.
pub(super) fn narrowing_matchers(rpc: &RouteMatch) -> Vec<HeaderMatcher> {
    let pattern = match path_match(rpc.method.as_ref()) {
        PathMatch::Any => None,
        PathMatch::Exact(path) => Some(MatchPattern::Exact(path)),
        PathMatch::Prefix(prefix) => Some(MatchPattern::Prefix(prefix)),
        PathMatch::Regex(pattern) => Some(MatchPattern::SafeRegex(regex(&pattern))),
    };
    let path = pattern.map(|pattern| HeaderMatcher {
        name: ":path".into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_matcher(pattern))),
        ..Default::default()
    });
    path.into_iter()
        .chain(header_matchers(&rpc.headers))
        .collect()
}

/// Header matches → HeaderMatchers (names lower-cased, as HTTP/2 sends them).
pub(super) fn header_matchers(headers: &[HeaderMatch]) -> Vec<HeaderMatcher> {
    headers
        .iter()
        .map(|header| {
            let pattern = match header.match_type {
                MatchType::Exact => MatchPattern::Exact(header.value.clone()),
                MatchType::RegularExpression => MatchPattern::SafeRegex(regex(&header.value)),
            };
            HeaderMatcher {
                name: header.name.to_ascii_lowercase(),
                header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_matcher(
                    pattern,
                ))),
                ..Default::default()
            }
        })
        .collect()
}

/// Whether some RPC can match both `a` and `b` (`None`: every RPC). Answers `false` only
/// when that is certain: exact service or method names that differ, or an exact value
/// required of the same header that differs. Regular expressions are assumed to overlap.
pub(super) fn can_overlap(a: Option<&RouteMatch>, b: Option<&RouteMatch>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    if let (Some(x), Some(y)) = (&a.method, &b.method)
        && x.match_type == MatchType::Exact
        && y.match_type == MatchType::Exact
    {
        let differ =
            |p: &Option<String>, q: &Option<String>| matches!((p, q), (Some(p), Some(q)) if p != q);
        if differ(&x.service, &y.service) || differ(&x.method, &y.method) {
            return false;
        }
    }
    let exact = |m: &RouteMatch| {
        m.headers
            .iter()
            .filter(|h| h.match_type == MatchType::Exact)
            .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
            .collect::<Vec<_>>()
    };
    let theirs = exact(b);
    !exact(a)
        .iter()
        .any(|(name, value)| theirs.iter().any(|(n, v)| n == name && v != value))
}

#[cfg(test)]
mod tests;
