//! Envoy's per-route CORS policy (`envoy.extensions.filters.http.cors.v3.CorsPolicy` under
//! `typed_per_filter_config["envoy.filters.http.cors"]`) → [`CorsPolicy`], which the web
//! listener applies to browsers' calls (`proxy::grpc_web::cors`). Only the route level is
//! read (where weft-controller puts it). Credentials, runtime-fraction enabling and shadow
//! mode are not implemented and are errors. Envoy forwards preflights from origins it does
//! not allow unless `forward_not_matching_preflights` is false; weft-proxy answers every
//! preflight itself (a gRPC service has nothing to say to one), so that field changes
//! nothing here.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::FilterConfig;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCorsPolicy;
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

use super::CorsPolicy;
use super::convert::{FieldError, FieldResult, decode_any, reject_set};
use super::string_match::string_matcher;

/// The conventional name of Envoy's CORS filter (a key of `typed_per_filter_config`).
pub(super) const CORS_FILTER: &str = "envoy.filters.http.cors";

/// Whether a `typed_per_filter_config` entry is a CORS policy (by name or by type).
pub(super) fn is_cors(name: &str, any: &Any) -> bool {
    name == CORS_FILTER || any.type_url == EnvoyCorsPolicy::type_url()
}

/// The CORS policy of one route's `typed_per_filter_config`, if it has one.
pub(super) fn cors_setting(configs: &HashMap<String, Any>) -> FieldResult<Option<CorsPolicy>> {
    let Some((name, any)) = configs.iter().find(|(name, any)| is_cors(name, any)) else {
        return Ok(None);
    };
    let field = format!("typed_per_filter_config[{name:?}]");
    let any = if any.type_url == FilterConfig::type_url() {
        let wrapper: FilterConfig = decode_any(any).map_err(|e| e.within(&field))?;
        match wrapper.config {
            Some(config) if !wrapper.disabled => config,
            _ => return Ok(None),
        }
    } else {
        any.clone()
    };
    let policy: EnvoyCorsPolicy = decode_any(&any).map_err(|e| e.within(&field))?;
    cors_policy(&policy).map(Some).map_err(|e| e.within(&field))
}

fn cors_policy(policy: &EnvoyCorsPolicy) -> FieldResult<CorsPolicy> {
    reject_set(&[
        (
            "allow_credentials",
            policy.allow_credentials.as_ref().is_some_and(|b| b.value),
        ),
        ("filter_enabled", policy.filter_enabled.is_some()),
        ("shadow_enabled", policy.shadow_enabled.is_some()),
    ])?;
    let allow_origins = policy
        .allow_origin_string_match
        .iter()
        .enumerate()
        .map(|(i, m)| {
            string_matcher(m).map_err(|e| e.within(&format!("allow_origin_string_match[{i}]")))
        })
        .collect::<FieldResult<Vec<_>>>()?;
    let max_age = match policy.max_age.as_str() {
        "" => None,
        text => Some(text.parse::<u64>().map_err(|_| {
            FieldError::new("max_age", format!("{text:?} is not a number of seconds"))
        })?),
    };
    Ok(CorsPolicy {
        allow_origins,
        allow_methods: list(&policy.allow_methods),
        allow_headers: list(&policy.allow_headers),
        expose_headers: list(&policy.expose_headers),
        max_age,
    })
}

/// A comma-separated list, trimmed, empty items dropped.
fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    use envoy_types::pb::google::protobuf::BoolValue;
    use envoy_types::util::pack_any;

    use super::*;

    fn configs(policy: EnvoyCorsPolicy) -> HashMap<String, Any> {
        HashMap::from([(CORS_FILTER.to_owned(), pack_any(policy))])
    }

    #[test]
    fn a_policy_converts_with_its_lists_and_max_age() {
        let policy = EnvoyCorsPolicy {
            allow_origin_string_match: vec![StringMatcher {
                ignore_case: true,
                match_pattern: Some(MatchPattern::Exact("https://app.example.com".into())),
            }],
            allow_methods: "POST".into(),
            allow_headers: "content-type, x-grpc-web,authorization".into(),
            expose_headers: "grpc-status,grpc-message".into(),
            max_age: "600".into(),
            forward_not_matching_preflights: Some(BoolValue { value: false }),
            ..Default::default()
        };
        let cors = cors_setting(&configs(policy)).unwrap().expect("a policy");
        assert!(cors.allow_origins[0].matches("https://APP.example.com"));
        assert!(!cors.allow_origins[0].matches("https://evil.example"));
        assert_eq!(cors.allow_methods, ["POST"]);
        assert_eq!(
            cors.allow_headers,
            ["content-type", "x-grpc-web", "authorization"]
        );
        assert_eq!(cors.expose_headers, ["grpc-status", "grpc-message"]);
        assert_eq!(cors.max_age, Some(600));
        assert!(cors_setting(&HashMap::new()).unwrap().is_none());
    }

    #[test]
    fn what_weft_proxy_does_not_implement_is_an_error_naming_the_field() {
        let credentials = EnvoyCorsPolicy {
            allow_credentials: Some(BoolValue { value: true }),
            ..Default::default()
        };
        let err = cors_setting(&configs(credentials)).unwrap_err();
        assert_eq!(
            err,
            FieldError::new(
                "typed_per_filter_config[\"envoy.filters.http.cors\"].allow_credentials",
                "not supported by weft-proxy"
            )
        );
        let max_age = EnvoyCorsPolicy {
            max_age: "ten minutes".into(),
            ..Default::default()
        };
        let err = cors_setting(&configs(max_age)).unwrap_err();
        assert!(err.field.ends_with(".max_age"), "{err:?}");
        assert_eq!(err.problem, "\"ten minutes\" is not a number of seconds");
    }
}
