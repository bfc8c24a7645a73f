//! `weftctl translate -f <dir>`: the controller's own parser and translation, run offline on
//! a directory of the YAML local mode reads (and `kubectl apply` takes), for CI pipelines.
//!
//! Errors are everything that would keep a resource from working as written: a file that
//! does not parse (file:line:col, as the controller logs it), a resource the controller does
//! not accept or whose references do not resolve (file:line of its document). Notes and
//! skipped documents are warnings. With no error it prints the Envoy resources every proxy
//! would share (clusters, endpoints, route configurations); listeners are made per proxy when
//! one connects, so they are not printed.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use prost::Message as _;
use weft_controller::ads::ResourceType;
use weft_controller::model::Index;
use weft_controller::source::local::{DirScanner, LocalState};
use weft_controller::translate::translate;

use crate::cli::TranslateFormat;

/// What translating a directory found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// One line each; any error means exit status 1 and no resources printed.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// The resources, when there is no error.
    pub output: String,
}

/// The types printed, in push order.
const PRINTED: [ResourceType; 3] = [
    ResourceType::Cluster,
    ResourceType::Endpoint,
    ResourceType::Route,
];

pub fn translate_dir(dir: &Path, format: TranslateFormat) -> anyhow::Result<Outcome> {
    if !dir.is_dir() {
        anyhow::bail!("{}: not a directory", dir.display());
    }
    let events = DirScanner::new(dir)
        .scan_all()
        .with_context(|| format!("reading {}", dir.display()))?;
    let mut state = LocalState::new();
    let update = state.update(events);
    let mut outcome = Outcome::default();
    outcome
        .errors
        .extend(state.errors().iter().map(ToString::to_string));
    for (path, skipped) in &update.skipped {
        outcome.warnings.push(format!(
            "{}:{}: skipped {} {} (not a kind weft reads)",
            path.display(),
            skipped.line,
            skipped.api_version,
            skipped.kind
        ));
    }
    let mut index = Index::new();
    state.apply_to(&mut index);
    let translation = translate(&index);
    for (key, report) in translation.reports.iter() {
        let at = state.origin(key).map_or_else(
            || key.to_string(),
            |(path, line)| format!("{}:{line}", path.display()),
        );
        if let Err(problem) = &report.accepted {
            outcome
                .errors
                .push(format!("{at}: {key} is not accepted: {problem}"));
        }
        if let Err(problem) = &report.resolved_refs {
            outcome
                .errors
                .push(format!("{at}: {key} has unresolved references: {problem}"));
        }
        for note in &report.notes {
            outcome.warnings.push(format!("{at}: {key}: {note}"));
        }
    }
    outcome
        .warnings
        .extend(translation.warnings.iter().cloned());
    if outcome.errors.is_empty() {
        for ty in PRINTED {
            for resource in translation.snapshot.resources(ty).iter() {
                let _ = match format {
                    TranslateFormat::Names => {
                        writeln!(outcome.output, "{} {}", ty.short_name(), resource.name)
                    }
                    TranslateFormat::Resources => writeln!(
                        outcome.output,
                        "--- {} {}\n{}",
                        ty.short_name(),
                        resource.name,
                        decoded(ty, &resource.body)
                    ),
                };
            }
        }
    }
    Ok(outcome)
}

/// The resource decoded, in Rust's debug notation of the Envoy v3 message (field names as
/// in Envoy's API reference); nested `Any` payloads (typed configs) are shown by size.
fn decoded(ty: ResourceType, body: &Any) -> String {
    let value = &body.value[..];
    let text = match ty {
        ResourceType::Cluster => Cluster::decode(value).map(|m| format!("{m:#?}")),
        ResourceType::Endpoint => ClusterLoadAssignment::decode(value).map(|m| format!("{m:#?}")),
        ResourceType::Route => RouteConfiguration::decode(value).map(|m| format!("{m:#?}")),
        _ => return format!("({} bytes of {})", value.len(), body.type_url),
    };
    text.map(|text| collapse_byte_lists(&text))
        .unwrap_or_else(|err| format!("(cannot decode {}: {err})", body.type_url))
}

/// `value: [\n 10,\n 72,\n ...]` (an `Any`'s bytes, one number per line) → `value: <N bytes>`.
fn collapse_byte_lists(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len());
    let mut lines = debug.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_end().ends_with("value: [") {
            let mut bytes = 0;
            while let Some(next) = lines.peek() {
                let item = next.trim().trim_end_matches(',');
                if item.parse::<u8>().is_ok() {
                    bytes += 1;
                    lines.next();
                } else {
                    break;
                }
            }
            if bytes > 0 {
                // The closing `],` of the list.
                let close = lines.next().unwrap_or_default().trim();
                let comma = if close.ends_with(',') { "," } else { "" };
                out.push_str(&line.replace("value: [", &format!("value: <{bytes} bytes>{comma}")));
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_payloads_are_shown_by_size() {
        let debug =
            "Any {\n    type_url: \"t\",\n    value: [\n        10,\n        72,\n    ],\n}";
        assert_eq!(
            collapse_byte_lists(debug),
            "Any {\n    type_url: \"t\",\n    value: <2 bytes>,\n}\n"
        );
        assert_eq!(
            collapse_byte_lists("value: [\n    \"x\",\n]"),
            "value: [\n    \"x\",\n]\n"
        );
    }
}
