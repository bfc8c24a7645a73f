//! Envoy's `RouteMatch` → [`RouteMatch`] (path and header matchers), and the gRPC services
//! and methods a match names, which become metric labels ([`NamedMethods`]).
//!
//! `case_sensitive: false` and `path_separated_prefix` become regexes (the model has no case
//! flag); `grpc` (match gRPC requests only) is ignored, since every request is one. Query
//! parameter, cookie, TLS, metadata and runtime-fraction matches are errors.

use envoy_types::pb::envoy::config::route::v3::RouteMatch as EnvoyMatch;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;

use super::convert::{FieldError, FieldResult, reject_set, unsupported};
use super::matching::split_method_path;
use super::string_match::{caseless_literal, header_matcher, regex_matcher, whole_match_regex};
use super::{NamedMethods, PathMatch, RouteMatch, StringMatch};

/// One route's match; errors name the field inside it.
pub(super) fn route_match(matcher: &EnvoyMatch) -> FieldResult<RouteMatch> {
    let set = [
        ("runtime_fraction", matcher.runtime_fraction.is_some()),
        ("query_parameters", !matcher.query_parameters.is_empty()),
        ("cookies", !matcher.cookies.is_empty()),
        ("tls_context", matcher.tls_context.is_some()),
        ("dynamic_metadata", !matcher.dynamic_metadata.is_empty()),
        ("filter_state", !matcher.filter_state.is_empty()),
    ];
    reject_set(&set)?;
    let case_sensitive = matcher.case_sensitive.is_none_or(|c| c.value);
    let caseless = |field: &str, before: &str, literal: &str, after: &str| {
        caseless_literal(before, literal, after)
            .map(PathMatch::Regex)
            .map_err(|problem| FieldError::new(field, problem))
    };
    let path = match &matcher.path_specifier {
        None => return Err(FieldError::new("path_specifier", "missing")),
        Some(PathSpecifier::Prefix(prefix)) if case_sensitive => PathMatch::Prefix(prefix.clone()),
        Some(PathSpecifier::Prefix(prefix)) => caseless("prefix", "^", prefix, "")?,
        Some(PathSpecifier::Path(path)) if case_sensitive => PathMatch::Exact(path.clone()),
        Some(PathSpecifier::Path(path)) => caseless("path", "^", path, "$")?,
        // Envoy: `case_sensitive` does not apply to regexes.
        Some(PathSpecifier::SafeRegex(regex)) => {
            PathMatch::Regex(regex_matcher(regex).map_err(|e| e.within("safe_regex"))?)
        }
        Some(PathSpecifier::PathSeparatedPrefix(prefix)) => {
            let field = "path_separated_prefix";
            if prefix.contains(['?', '#']) || prefix.ends_with('/') {
                return Err(FieldError::new(
                    field,
                    "must not contain ? or # nor end with /",
                ));
            }
            if case_sensitive {
                let pattern = format!("{}(?:/(?s:.*))?", regex::escape(prefix));
                whole_match_regex(&pattern)
                    .map(PathMatch::Regex)
                    .map_err(|problem| FieldError::new(field, problem))?
            } else {
                caseless(field, "^", prefix, "(?:/(?s:.*))?$")?
            }
        }
        Some(PathSpecifier::ConnectMatcher(_)) => return Err(unsupported("connect_matcher")),
        Some(PathSpecifier::PathMatchPolicy(_)) => return Err(unsupported("path_match_policy")),
    };
    let headers = matcher
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_matcher(h).map_err(|e| e.within(&format!("headers[{i}]"))))
        .collect::<FieldResult<Vec<_>>>()?;
    Ok(RouteMatch { path, headers })
}

/// Records the services and methods a match names: a prefix `/pkg.Svc/` names the service,
/// an exact `/pkg.Svc/M` (as the path or as a `:path` header) the method and its service.
pub(super) fn name_methods(matcher: &RouteMatch, named: &mut NamedMethods) {
    let mut name = |path: &str, exact: bool| {
        if exact {
            if let Some((service, method)) = split_method_path(path)
                && !path.contains('?')
            {
                named.services.insert(service.to_owned());
                named.methods.insert(format!("{service}/{method}"));
            }
        } else if let Some(service) = path.strip_prefix('/').and_then(|s| s.strip_suffix('/'))
            && !service.is_empty()
            && !service.contains('/')
        {
            named.services.insert(service.to_owned());
        }
    };
    match &matcher.path {
        PathMatch::Prefix(prefix) => name(prefix, false),
        PathMatch::Exact(path) => name(path, true),
        PathMatch::Regex(_) => {}
    }
    for header in matcher
        .headers
        .iter()
        .filter(|h| h.name == ":path" && !h.invert)
    {
        match &header.value {
            StringMatch::Exact(path) => name(path, true),
            StringMatch::Prefix(prefix) => name(prefix, false),
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "route_match_tests.rs"]
mod tests;
