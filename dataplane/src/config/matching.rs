//! The per-RPC lookups on the typed config: the virtual host by `:authority` (or, for an
//! intercepted connection, by its original destination), the route by path and headers
//! ([`RouteTable::select`], [`RouteTable::select_intercepted`]), the backend by weight
//! ([`RouteAction::pick_backend`]) and the metric labels of a path ([`NamedMethods::labels`]).
//!
//! These run on every RPC, so they do not allocate except where it cannot be helped: an
//! authority with upper-case letters is lower-cased, a header sent several times is joined
//! with `,` (as Envoy does) before matching.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;

use super::{
    HeaderMatch, NamedMethods, PathMatch, Route, RouteAction, RouteTable, StringMatch, VirtualHost,
    WeightedBackend,
};

/// The virtual host and route an RPC matched.
#[derive(Debug, Clone, Copy)]
pub struct RouteDecision<'a> {
    pub virtual_host: &'a Arc<VirtualHost>,
    pub route: &'a Route,
}

/// The label of everything routes do not name.
const OTHER: &str = "other";

impl RouteTable {
    /// The first route of the virtual host for `authority` whose match accepts `path` and
    /// `headers`; `None` when no virtual host or no route matches.
    pub fn select(
        &self,
        authority: &str,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<RouteDecision<'_>> {
        self.select_intercepted(authority, None, path, headers)
    }

    /// [`Self::select`] for a connection that transparent interception redirected to the
    /// proxy: when no virtual host answers to `authority` (the client named an address or a
    /// name the mesh does not know), the one whose domains list `original_dst` — the
    /// `ip:port` the client dialled — exactly. weft-controller lists each Service's cluster
    /// IP and port among its virtual host's domains (as Istio does). Exactly, because a
    /// port-stripped match would send a call to another port of the same cluster IP to the
    /// Service's first port. A catch-all `*` domain still comes last.
    pub fn select_intercepted(
        &self,
        authority: &str,
        original_dst: Option<SocketAddr>,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<RouteDecision<'_>> {
        let virtual_host = self.virtual_host_for(authority, original_dst)?;
        let route = virtual_host.route_for(authority, path, headers)?;
        Some(RouteDecision {
            virtual_host,
            route,
        })
    }

    /// The virtual host [`Self::select_intercepted`] picks for `authority` (and the original
    /// destination), before looking at routes; `None` when no domain answers.
    pub fn virtual_host_for(
        &self,
        authority: &str,
        original_dst: Option<SocketAddr>,
    ) -> Option<&Arc<VirtualHost>> {
        let index = self
            .named_virtual_host(authority)
            .or_else(|| {
                // Only reached for an unknown authority on an intercepted connection, so
                // the one allocation is off the common path.
                original_dst.and_then(|dst| self.domains.get(&dst.to_string()).copied())
            })
            .or_else(|| self.domains.get("*").copied())?;
        self.virtual_hosts.get(index)
    }

    /// Envoy's virtual host selection: the exact domain, then (weft's addition, like
    /// Envoy's `strip_any_host_port`) the host without its port, then wildcard domains
    /// (`*suffix` longest first, then `prefix*` longest first); the caller tries `*` last.
    fn named_virtual_host(&self, authority: &str) -> Option<usize> {
        let host: Cow<'_, str> = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(authority.to_ascii_lowercase())
        } else {
            Cow::Borrowed(authority)
        };
        let host = host.as_ref();
        let without_port = strip_port(host);
        let exact = |name: &str| self.domains.get(name).copied();
        exact(host)
            .or_else(|| {
                (without_port != host)
                    .then(|| exact(without_port))
                    .flatten()
            })
            .or_else(|| self.wildcard(host))
            .or_else(|| {
                (without_port != host)
                    .then(|| self.wildcard(without_port))
                    .flatten()
            })
    }

    /// The virtual host of the best wildcard domain for `host`. Only reached when no exact
    /// domain matches; it walks the domains once, comparing bytes, without allocating.
    fn wildcard(&self, host: &str) -> Option<usize> {
        // (is a suffix wildcard, length of the fixed part, virtual host): larger is better.
        let mut best: Option<(bool, usize, usize)> = None;
        for (index, virtual_host) in self.virtual_hosts.iter().enumerate() {
            for domain in &virtual_host.domains {
                let candidate = if let Some(suffix) = domain.strip_prefix('*') {
                    // The wildcard must stand for at least one character.
                    (!suffix.is_empty() && host.len() > suffix.len() && host.ends_with(suffix))
                        .then_some((true, suffix.len(), index))
                } else if let Some(prefix) = domain.strip_suffix('*') {
                    (host.len() > prefix.len() && host.starts_with(prefix)).then_some((
                        false,
                        prefix.len(),
                        index,
                    ))
                } else {
                    None
                };
                if let Some(candidate) = candidate {
                    let better = best
                        .is_none_or(|(suffix, len, _)| (candidate.0, candidate.1) > (suffix, len));
                    if better {
                        best = Some(candidate);
                    }
                }
            }
        }
        best.map(|(_, _, index)| index)
    }
}

impl VirtualHost {
    /// The first route whose match accepts `path` and `headers` (`authority` is what a
    /// `:authority` header matcher sees).
    pub fn route_for(&self, authority: &str, path: &str, headers: &HeaderMap) -> Option<&Route> {
        let request = Request {
            authority,
            path,
            // Path matchers ignore the query string, as Envoy's do.
            path_only: path.split_once('?').map_or(path, |(path, _)| path),
            headers,
        };
        self.routes.iter().find(|route| request.accepts(route))
    }
}

/// `host` without a trailing `:port` (`[::1]:80` → `[::1]`; a bare IPv6 address is kept).
pub(super) fn strip_port(host: &str) -> &str {
    let Some((name, port)) = host.rsplit_once(':') else {
        return host;
    };
    let is_port = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let bare_ipv6 = name.contains(':') && !(name.starts_with('[') && name.ends_with(']'));
    if is_port && !bare_ipv6 { name } else { host }
}

/// What a route match looks at in one RPC.
struct Request<'a> {
    authority: &'a str,
    /// As sent (what a `:path` header matcher sees).
    path: &'a str,
    /// Without the query string (what path matchers see).
    path_only: &'a str,
    headers: &'a HeaderMap,
}

impl Request<'_> {
    fn accepts(&self, route: &Route) -> bool {
        let path = self.path_only;
        let path_ok = match &route.matcher.path {
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Regex(regex) => regex.is_match(path),
        };
        path_ok && route.matcher.headers.iter().all(|h| self.header_ok(h))
    }

    /// Envoy's HeaderMatcher: a missing header matches only a `Present` matcher that is
    /// inverted (i.e. "must be absent"); otherwise the value is matched, then inverted.
    fn header_ok(&self, matcher: &HeaderMatch) -> bool {
        let value: Option<Cow<'_, str>> = match matcher.name.as_str() {
            ":path" => Some(Cow::Borrowed(self.path)),
            ":authority" => Some(Cow::Borrowed(self.authority)),
            // Every gRPC call is a POST.
            ":method" => Some(Cow::Borrowed("POST")),
            name => header_value(self.headers, name),
        };
        match value {
            None => matches!(matcher.value, StringMatch::Present) && matcher.invert,
            Some(value) => matcher.value.matches(&value) != matcher.invert,
        }
    }
}

/// The value of header `name`: all its values joined with `,` when it is sent more than
/// once (Envoy's rule); a value that is not UTF-8 is matched lossily.
fn header_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let text = |value: &'h http::HeaderValue| String::from_utf8_lossy(value.as_bytes());
    match values.next() {
        None => Some(text(first)),
        Some(second) => {
            let mut joined = format!("{},{}", text(first), text(second));
            for value in values {
                joined.push(',');
                joined.push_str(&text(value));
            }
            Some(Cow::Owned(joined))
        }
    }
}

impl StringMatch {
    /// Whether a present value matches (regexes are compiled to match the whole value).
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(exact) => value == exact,
            StringMatch::Prefix(prefix) => value.starts_with(prefix.as_str()),
            StringMatch::Suffix(suffix) => value.ends_with(suffix.as_str()),
            StringMatch::Contains(part) => value.contains(part.as_str()),
            StringMatch::Regex(regex) => regex.is_match(value),
            StringMatch::Present => true,
        }
    }
}

impl RouteAction {
    /// The backend for a uniform `draw` in `0..total_weight`: the first whose cumulative
    /// weight exceeds the draw (a draw out of range picks the last backend).
    pub fn pick_backend(&self, draw: u64) -> &WeightedBackend {
        let mut remaining = draw;
        for backend in &self.backends {
            let weight = u64::from(backend.weight);
            if remaining < weight {
                return backend;
            }
            remaining -= weight;
        }
        // Only reached for a draw out of range; conversion guarantees one backend at least.
        &self.backends[self.backends.len().saturating_sub(1)]
    }
}

impl NamedMethods {
    /// Metric labels for `path` (`/package.Service/Method`): the service and the method when
    /// a route names them, else `"other"`.
    pub fn labels<'a>(&self, path: &'a str) -> (&'a str, &'a str) {
        let Some((service, method)) = split_method_path(path) else {
            return (OTHER, OTHER);
        };
        // `service/method` is the path without its leading `/`.
        let full = &path[1..service.len() + method.len() + 2];
        if self.methods.contains(full) {
            (service, method)
        } else if self.services.contains(service) {
            (service, OTHER)
        } else {
            (OTHER, OTHER)
        }
    }
}

/// `/service/method` (query string ignored) → (service, method); both non-empty, and the
/// method without further `/`.
pub(super) fn split_method_path(path: &str) -> Option<(&str, &str)> {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
