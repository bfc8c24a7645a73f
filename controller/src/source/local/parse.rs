//! One file's text → its objects, or the first problem found, with its line and column.
//!
//! Each document is read in up to three passes, each of which can fail on its own terms: as
//! any YAML (syntax; only to explain a failed header pass), as a header (`apiVersion`,
//! `kind`: which type, if any), then as its type (field errors with the field path, unknown
//! fields, a missing name).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_saphyr::{MessageFormatter, Spanned, UserMessageFormatter};

use super::error::{FileError, Problem};
use super::split::{DocumentText, split_documents};
use crate::api::{BackendPolicy, FaultInjection, GrpcRoute, MtlsPolicy};
use crate::model::{Kind, Object, ObjectKey};

/// An object and the file line its document starts on. The object is shared with the
/// index, which holds the objects in force: a thousand Services and their EndpointSlices
/// were 3.5 MB, held twice.
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedObject {
    pub line: usize,
    pub object: Arc<Object>,
}

/// A document of a kind weft does not read, skipped with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDocument {
    pub line: usize,
    pub api_version: String,
    pub kind: String,
}

/// What one file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedFile {
    pub objects: Vec<LocatedObject>,
    pub skipped: Vec<SkippedDocument>,
}

/// Parses every document of a file; the first problem fails the whole file. `path` only
/// names the file in errors.
pub fn parse_file(path: &Path, text: &str) -> Result<ParsedFile, FileError> {
    let mut parsed = ParsedFile::default();
    let mut lines: BTreeMap<ObjectKey, usize> = BTreeMap::new();
    for document in split_documents(text) {
        let fail = |problem, line, column| FileError::new(path, problem).at(line, column);
        match parse_document(&document).map_err(|(p, line, col)| fail(p, line, col))? {
            Parsed::Object(object) => {
                let key = object.key();
                if let Some(&first_line) = lines.get(&key) {
                    let problem = Problem::DuplicateInFile {
                        key: Box::new(key),
                        first_line,
                    };
                    return Err(fail(problem, document.first_content_line, None));
                }
                lines.insert(key, document.first_content_line);
                parsed.objects.push(LocatedObject {
                    line: document.first_content_line,
                    object: Arc::from(object),
                });
            }
            Parsed::Skipped { api_version, kind } => parsed.skipped.push(SkippedDocument {
                line: document.first_content_line,
                api_version,
                kind,
            }),
        }
    }
    Ok(parsed)
}

enum Parsed {
    Object(Box<Object>),
    Skipped { api_version: String, kind: String },
}

/// A problem with its file line and column.
type Located = (Problem, usize, Option<usize>);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    metadata: Option<Spanned<IgnoredAny>>,
}

fn parse_document(document: &DocumentText) -> Result<Parsed, Located> {
    let offset = document.line_offset;
    let at_start = |problem| (problem, document.first_content_line, None);
    let located = |problem, err: &serde_saphyr::Error| match err.location() {
        Some(loc) => (
            problem,
            offset + loc.line() as usize,
            Some(loc.column() as usize),
        ),
        None => at_start(problem),
    };
    // The syntax pass runs only when the header pass fails, to tell which it was: the
    // header pass reads the whole document too, and a good file is most of what is read.
    let header: Header = serde_saphyr::from_str(&document.text).map_err(|err| {
        if let Err(err) = serde_saphyr::from_str::<IgnoredAny>(&document.text) {
            return located(Problem::Syntax(message(&err)), &err);
        }
        let what = format!(
            "expected a mapping with apiVersion, kind and metadata ({})",
            message(&err)
        );
        located(Problem::NotAnObject(what), &err)
    })?;
    let (api_version, kind) = match (header.api_version, header.kind) {
        (Some(api_version), Some(kind)) => (api_version, kind),
        (None, _) => return Err(at_start(Problem::NotAnObject("no apiVersion".into()))),
        (_, None) => return Err(at_start(Problem::NotAnObject("no kind".into()))),
    };
    let at_kind = |problem| {
        let loc = kind.referenced;
        (
            problem,
            offset + loc.line() as usize,
            Some(loc.column() as usize),
        )
    };
    let Some(known) = known_kind(&api_version.value, &kind.value).map_err(at_kind)? else {
        return Ok(Parsed::Skipped {
            api_version: api_version.value,
            kind: kind.value,
        });
    };
    let object = match known {
        Kind::Service => typed::<Service>(known, document).map(Object::Service),
        Kind::EndpointSlice => typed::<EndpointSlice>(known, document).map(Object::EndpointSlice),
        Kind::GrpcRoute => typed::<GrpcRoute>(known, document).map(Object::GrpcRoute),
        Kind::FaultInjection => {
            typed::<FaultInjection>(known, document).map(Object::FaultInjection)
        }
        Kind::MtlsPolicy => typed::<MtlsPolicy>(known, document).map(Object::MtlsPolicy),
        Kind::BackendPolicy => typed::<BackendPolicy>(known, document).map(Object::BackendPolicy),
    }?;
    if object.key().name.is_empty() {
        let line = header.metadata.map_or(document.first_content_line, |m| {
            offset + m.referenced.line() as usize
        });
        return Err((Problem::MissingName { kind: known }, line, None));
    }
    Ok(Parsed::Object(Box::new(object)))
}

/// Which kind an apiVersion/kind pair is: `Ok(None)` for kinds weft does not read,
/// an error for a near miss (a kind weft reads under another version, a `weft.dev` typo).
fn known_kind(api_version: &str, kind: &str) -> Result<Option<Kind>, Problem> {
    let exact = match (api_version, kind) {
        ("v1", "Service") => Some(Kind::Service),
        ("discovery.k8s.io/v1", "EndpointSlice") => Some(Kind::EndpointSlice),
        (crate::api::API_VERSION, "GrpcRoute") => Some(Kind::GrpcRoute),
        (crate::api::API_VERSION, "FaultInjection") => Some(Kind::FaultInjection),
        (crate::api::API_VERSION, "MtlsPolicy") => Some(Kind::MtlsPolicy),
        (crate::api::API_VERSION, "BackendPolicy") => Some(Kind::BackendPolicy),
        _ => None,
    };
    if exact.is_some() {
        return Ok(exact);
    }
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let ours = group == crate::api::GROUP
        || (matches!(group, "" | "discovery.k8s.io") && Kind::ALL.iter().any(|k| k.name() == kind));
    if ours {
        return Err(Problem::UnsupportedKind {
            api_version: api_version.into(),
            kind: kind.into(),
        });
    }
    Ok(None)
}

/// Deserializes a document as `T`, recording the path of a failing field and every unknown
/// field (`apiVersion` and `kind` excepted: the CRD types do not keep them).
fn typed<T: DeserializeOwned>(kind: Kind, document: &DocumentText) -> Result<T, Located> {
    let mut failed_at = None;
    let mut unknown = Vec::new();
    let result = serde_saphyr::with_deserializer_from_str(&document.text, |de| {
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
        let result: Result<T, _> = serde_ignored::deserialize(tracked, |path| {
            let keys = map_keys(&path);
            if !matches!(keys.as_slice(), [key] if key == "apiVersion" || key == "kind") {
                unknown.push((path_string(&path), keys));
            }
        });
        if result.is_err() {
            failed_at = Some(track.path().to_string()).filter(|p| p != "." && p != "?");
        }
        result
    });
    let offset = document.line_offset;
    let value = result.map_err(|err| {
        let problem = Problem::Invalid {
            kind,
            field: failed_at,
            message: message(&err),
        };
        match err.location() {
            Some(loc) => (
                problem,
                offset + loc.line() as usize,
                Some(loc.column() as usize),
            ),
            None => (problem, document.first_content_line, None),
        }
    })?;
    if let Some((field, keys)) = unknown.into_iter().next() {
        let (line, column) = find_key(&document.text, &keys)
            .map_or((document.first_content_line, None), |(l, c)| {
                (offset + l, Some(c))
            });
        return Err((Problem::UnknownField { kind, field }, line, column));
    }
    Ok(value)
}

/// The message of a deserializer error, without its location (the caller adds the file's).
fn message(err: &serde_saphyr::Error) -> String {
    UserMessageFormatter
        .format_message(err.without_snippet())
        .escape_debug()
        .to_string()
}

/// `spec.rules[0].backendRefs` for an ignored field's path.
fn path_string(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", path_string(parent)),
        P::Map { parent, key } => match path_string(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            path_string(parent)
        }
    }
}

fn map_keys(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path as P;
    match path {
        P::Root => Vec::new(),
        P::Map { parent, key } => {
            let mut keys = map_keys(parent);
            keys.push(key.clone());
            keys
        }
        P::Seq { parent, .. }
        | P::Some { parent }
        | P::NewtypeStruct { parent }
        | P::NewtypeVariant { parent } => map_keys(parent),
    }
}

/// Where the last of `keys` is written, found by looking for each key in turn after the
/// previous one (the deserializer does not report where an ignored field was). Returns the
/// 1-based line and column within `text`, or the deepest key found.
fn find_key(text: &str, keys: &[String]) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut found = None;
    let mut from = 0;
    for key in keys {
        let hit = lines
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(index, line)| key_column(line, key).map(|column| (index, column)));
        let Some((index, column)) = hit else { break };
        found = Some((index + 1, column));
        from = index;
    }
    found
}

/// The 1-based column of `key:` in a line, as a block or flow mapping key.
fn key_column(line: &str, key: &str) -> Option<usize> {
    line.match_indices(key).find_map(|(at, _)| {
        let before = line[..at].trim_end_matches(['"', '\'']).chars().next_back();
        let after = line[at + key.len()..]
            .trim_start_matches(['"', '\''])
            .trim_start();
        let starts = before.is_none_or(|c| c.is_whitespace() || matches!(c, '{' | ',' | '-'));
        (starts && after.starts_with(':')).then(|| line[..at].chars().count() + 1)
    })
}
