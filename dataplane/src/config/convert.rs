//! Shared pieces of every conversion: unpacking an `Any` of the expected type, errors that
//! carry the path of the field they are about, and proto durations.
//!
//! Conversions below the resource level return [`FieldError`]s with a path relative to the
//! message they look at; each caller prefixes its own position (`routes[2]`, `match`), and
//! the resource's parser finally names the resource, giving a [`ConfigError`].

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::ConfigSource;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::google::protobuf::{Any, Duration as ProtoDuration};
use prost::{Message, Name};

use super::ConfigError;

/// A problem with one field, the path relative to the message being converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The same error seen from the enclosing message, where this one sits at `position`.
    pub fn within(mut self, position: &str) -> Self {
        self.field = if self.field.is_empty() {
            position.to_owned()
        } else if self.field.starts_with('[') {
            format!("{position}{}", self.field)
        } else {
            format!("{position}.{}", self.field)
        };
        self
    }

    /// The error of resource `resource` (`"Listener outbound"`).
    pub fn of_resource(self, resource: &str) -> ConfigError {
        ConfigError {
            resource: resource.to_owned(),
            field: self.field,
            problem: self.problem,
        }
    }
}

/// Shorthand for a conversion below the resource level.
pub(super) type FieldResult<T> = Result<T, FieldError>;

/// Error for a field the proxy does not implement (set to a non-default value).
pub(super) fn unsupported(field: &str) -> FieldError {
    FieldError::new(field, "not supported by weft-proxy")
}

/// Error for the first field in `set` that is set (`(name, is set)` pairs): fields the
/// proxy does not implement.
pub(super) fn reject_set(set: &[(&str, bool)]) -> FieldResult<()> {
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err(unsupported(field)),
        None => Ok(()),
    }
}

/// Decodes a top-level resource of type `M`, or says why it cannot be: the wrong type URL
/// or bytes that do not decode. `kind` names the resource type in the error
/// (`"RouteConfiguration"`).
pub(super) fn decode_resource<M: Message + Name + Default>(
    any: &Any,
    kind: &str,
) -> Result<M, ConfigError> {
    decode_any::<M>(any).map_err(|err| err.of_resource(kind))
}

/// Decodes an embedded `Any` of type `M`; the error's field is empty (the caller places it).
pub(super) fn decode_any<M: Message + Name + Default>(any: &Any) -> FieldResult<M> {
    let expected = M::type_url();
    if any.type_url != expected {
        return Err(FieldError::new(
            "",
            format!("type {:?}, expected {expected:?}", any.type_url),
        ));
    }
    M::decode(any.value.as_slice())
        .map_err(|err| FieldError::new("", format!("does not decode as {}: {err}", M::NAME)))
}

/// A proto Duration as a std Duration; negative or malformed durations are errors.
pub(super) fn duration(value: &ProtoDuration) -> Result<Duration, String> {
    let (Ok(seconds), Ok(nanos)) = (u64::try_from(value.seconds), u32::try_from(value.nanos))
    else {
        return Err(format!(
            "negative duration ({}s {}ns)",
            value.seconds, value.nanos
        ));
    };
    if nanos >= 1_000_000_000 {
        return Err(format!("nanos {nanos} out of range"));
    }
    Ok(Duration::new(seconds, nanos))
}

/// An optional proto Duration at `field`, where zero means "none" (as in Envoy's timeouts).
pub(super) fn nonzero_duration(
    value: Option<&ProtoDuration>,
    field: &str,
) -> FieldResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(value) => {
            let value = duration(value).map_err(|problem| FieldError::new(field, problem))?;
            Ok((!value.is_zero()).then_some(value))
        }
    }
}

/// Checks that a ConfigSource (RDS, EDS) points at the one xDS server the proxy talks to:
/// `ads`, `self`, or unset.
pub(super) fn check_config_source(source: Option<&ConfigSource>, field: &str) -> FieldResult<()> {
    match source.and_then(|s| s.config_source_specifier.as_ref()) {
        None | Some(ConfigSourceSpecifier::Ads(_) | ConfigSourceSpecifier::Self_(_)) => Ok(()),
        Some(_) => Err(FieldError::new(
            field,
            "only `ads` or `self` is supported: weft-proxy reads everything from its one xDS server",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::util::pack_any;

    #[test]
    fn within_builds_dotted_and_indexed_paths() {
        let err = FieldError::new("regex", "bad")
            .within("safe_regex")
            .within("match")
            .within("[2]")
            .within("routes");
        assert_eq!(err.field, "routes[2].match.safe_regex.regex");
        assert_eq!(FieldError::new("", "x").within("domains").field, "domains");
    }

    #[test]
    fn decode_checks_the_type_url() {
        let any = pack_any(Listener::default());
        let err = decode_resource::<RouteConfiguration>(&any, "RouteConfiguration").unwrap_err();
        assert_eq!(err.resource, "RouteConfiguration");
        assert!(
            err.problem.contains("envoy.config.listener.v3.Listener"),
            "{err}"
        );
        let garbage = Any {
            type_url: RouteConfiguration::type_url(),
            value: vec![0xff, 0xff],
        };
        let err =
            decode_resource::<RouteConfiguration>(&garbage, "RouteConfiguration").unwrap_err();
        assert!(err.problem.contains("does not decode"), "{err}");
    }

    #[test]
    fn durations() {
        let d = |seconds, nanos| ProtoDuration { seconds, nanos };
        assert_eq!(duration(&d(1, 5)), Ok(Duration::new(1, 5)));
        assert!(duration(&d(-1, 0)).is_err());
        assert!(duration(&d(0, -1)).is_err());
        assert!(duration(&d(0, 1_000_000_000)).is_err());
        assert_eq!(nonzero_duration(Some(&d(0, 0)), "t"), Ok(None));
        assert_eq!(nonzero_duration(None, "t"), Ok(None));
        assert_eq!(
            nonzero_duration(Some(&d(0, 1_000_000)), "t"),
            Ok(Some(Duration::from_millis(1)))
        );
        assert_eq!(
            nonzero_duration(Some(&d(-2, 0)), "t").unwrap_err().field,
            "t"
        );
    }
}
