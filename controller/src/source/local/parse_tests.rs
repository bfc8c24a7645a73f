//! `parse_file`: multi-document files, and errors that point at the right line.

use std::path::{Path, PathBuf};

use super::*;
use crate::model::{Kind, Object, ObjectKey};

const FILE: &str = "conf/mesh.yaml";

fn parse(text: &str) -> Result<ParsedFile, FileError> {
    parse_file(Path::new(FILE), text)
}

fn error(text: &str) -> FileError {
    match parse(text) {
        Ok(parsed) => panic!("expected an error, parsed {parsed:?}"),
        Err(err) => err,
    }
}

fn keys(parsed: &ParsedFile) -> Vec<String> {
    parsed
        .objects
        .iter()
        .map(|o| o.object.key().to_string())
        .collect()
}

const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: greeter}\nspec:\n  ports: [{port: 50051}]\n";

#[test]
fn multi_document_file() {
    let text = format!(
        "# leading comment\n---\n{SERVICE}---\n# empty document\n---\n\
         apiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\nmetadata: {{name: default, namespace: prod}}\nspec: {{mode: Strict}}\n\
         --- {{apiVersion: v1, kind: Service, metadata: {{name: other}}}}\n"
    );
    let parsed = parse(&text).unwrap();
    assert_eq!(
        keys(&parsed),
        [
            "Service default/greeter",
            "MtlsPolicy prod/default",
            "Service default/other"
        ]
    );
    let lines: Vec<usize> = parsed.objects.iter().map(|o| o.line).collect();
    assert_eq!(lines, [3, 11, 15]);
    assert!(parsed.skipped.is_empty());
}

#[test]
fn empty_file_has_no_objects() {
    assert_eq!(parse("").unwrap(), ParsedFile::default());
    assert_eq!(
        parse("# nothing yet\n---\n").unwrap(),
        ParsedFile::default()
    );
}

#[test]
fn syntax_error_names_file_and_line() {
    let text = format!(
        "{SERVICE}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n   bad: indentation\n"
    );
    let err = error(&text);
    assert_eq!(err.file, PathBuf::from(FILE));
    assert!(matches!(err.problem, Problem::Syntax(_)), "{err}");
    assert_eq!(err.line, Some(11), "{err}");
    assert!(err.to_string().starts_with("conf/mesh.yaml:11:"), "{err}");

    let err = error("apiVersion: v1\nkind: Service\nmetadata: {name: [unclosed\n");
    assert!(matches!(err.problem, Problem::Syntax(_)), "{err}");
    assert_eq!(err.line, Some(3), "{err}");
}

#[test]
fn type_error_in_the_second_document_points_into_it() {
    let text = format!(
        "{SERVICE}---\napiVersion: v1\nkind: Service\nmetadata: {{name: b}}\nspec:\n  ports:\n  - port: fifty\n"
    );
    let err = error(&text);
    assert_eq!((err.line, err.column), (Some(12), Some(11)), "{err}");
    match &err.problem {
        Problem::Invalid { kind, field, .. } => {
            assert_eq!(*kind, Kind::Service);
            assert_eq!(field.as_deref(), Some("spec.ports[0].port"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("invalid Service at spec.ports[0].port"),
        "{err}"
    );
}

#[test]
fn weft_kind_type_error_names_the_field() {
    let text = "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: greeter}]\n  rules:\n  - backendRefs: [{name: b, port: 1}]\n    retry: {attempts: many}\n";
    let err = error(text);
    assert_eq!(err.line, Some(8), "{err}");
    assert!(
        err.to_string().contains("spec.rules[0].retry.attempts"),
        "{err}"
    );
}

#[test]
fn unknown_field_is_an_error_at_its_line() {
    let text = "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: greeter}]\n  rules:\n  - backendRefs: [{name: b, port: 1}]\n    timout: 2s\n";
    let err = error(text);
    assert_eq!(
        err.problem,
        Problem::UnknownField {
            kind: Kind::GrpcRoute,
            field: "spec.rules[0].timout".into()
        }
    );
    assert_eq!((err.line, err.column), (Some(8), Some(5)), "{err}");
}

#[test]
fn missing_name_is_an_error() {
    let err = error("apiVersion: v1\nkind: Service\nmetadata:\n  namespace: x\n");
    assert_eq!(
        err.problem,
        Problem::MissingName {
            kind: Kind::Service
        }
    );
    assert_eq!(err.line, Some(4), "{err}");
    let err = error("# a\napiVersion: v1\nkind: Service\n");
    assert_eq!(
        err.problem,
        Problem::MissingName {
            kind: Kind::Service
        }
    );
    assert_eq!(err.line, Some(2), "{err}");
}

#[test]
fn wrong_version_of_a_known_kind_is_an_error_naming_the_supported_ones() {
    for (api_version, kind) in [
        ("weft.dev/v1beta1", "GrpcRoute"),
        ("weft.dev/v1alpha1", "GRPCRoute"),
        ("discovery.k8s.io/v1beta1", "EndpointSlice"),
        ("v1", "EndpointSlice"),
    ] {
        let err = error(&format!(
            "{SERVICE}---\napiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\n"
        ));
        assert_eq!((err.line, err.column), (Some(8), Some(7)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("unsupported apiVersion/kind {api_version} {kind}")),
            "{text}"
        );
        assert!(
            text.contains("supported: v1 Service, discovery.k8s.io/v1 EndpointSlice"),
            "{text}"
        );
    }
}

#[test]
fn documents_that_are_not_objects_are_errors() {
    let err = error("kind: Service\nmetadata: {name: x}\n");
    assert_eq!(err.problem, Problem::NotAnObject("no apiVersion".into()));
    let err = error(&format!("{SERVICE}---\n- just\n- a list\n"));
    assert!(matches!(err.problem, Problem::NotAnObject(_)), "{err}");
    assert_eq!(err.line, Some(7), "{err}");
}

#[test]
fn unknown_kinds_are_skipped() {
    let text = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: greeter}}\nspec: {{replicas: 2}}\n---\n{SERVICE}\
         ---\napiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {{name: k}}\n"
    );
    let parsed = parse(&text).unwrap();
    assert_eq!(keys(&parsed), ["Service default/greeter"]);
    let skipped: Vec<(usize, &str, &str)> = parsed
        .skipped
        .iter()
        .map(|s| (s.line, s.api_version.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            (1, "apps/v1", "Deployment"),
            (12, "serving.knative.dev/v1", "Service")
        ]
    );
}

#[test]
fn the_same_object_twice_in_one_file_is_an_error() {
    let err = error(&format!("{SERVICE}---\n{SERVICE}"));
    assert_eq!(
        err.problem,
        Problem::DuplicateInFile {
            key: Box::new(ObjectKey::new(Kind::Service, "default", "greeter")),
            first_line: 1
        }
    );
    assert_eq!(err.line, Some(7));
}

/// The demo config under `manifests/local/` loads as it is, with nothing skipped.
#[test]
fn demo_manifests_load() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/local");
    let mut state = LocalState::new();
    let update = state.update(DirScanner::new(&dir).scan_all().unwrap());
    assert_eq!(
        state.errors(),
        [],
        "{:?}",
        state
            .errors()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    assert!(update.skipped.is_empty(), "{:?}", update.skipped);
    let count = |kind: Kind| state.objects().filter(|o| o.kind() == kind).count();
    let counts: Vec<usize> = Kind::ALL.iter().map(|k| count(*k)).collect();
    assert_eq!(
        counts,
        [3, 2, 1, 1, 1, 1],
        "Service, EndpointSlice, GrpcRoute, FaultInjection, MtlsPolicy, BackendPolicy"
    );
    let slices: Vec<_> = state
        .objects()
        .filter_map(|o| match &**o {
            Object::EndpointSlice(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(slices[0].metadata.name.as_deref(), Some("greeter-v1-local"));
    assert_eq!(slices[0].address_type, "IPv4");
    let labels = slices[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "greeter-v1");
    assert_eq!(slices[0].endpoints[0].addresses, ["127.0.0.1"]);
    assert_eq!(
        slices[0].endpoints[0].conditions.as_ref().unwrap().ready,
        Some(true)
    );
    assert_eq!(slices[1].ports.as_ref().unwrap()[0].port, Some(50052));
    let mut index = crate::model::Index::new();
    state.apply_to(&mut index);
    assert!(index.is_synced());
    assert_eq!(index.len(), 9);
}

/// The demo manifests the local mode ships with, as a seed for the property below.
const DEMO: &str = include_str!("../../translate/testdata/demo/input.yaml");

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Any edit of a valid file (a character replaced, the rest cut off) parses, or fails
    /// with an error that names the file and a line inside it — never a panic.
    #[test]
    fn any_edit_of_a_file_parses_or_names_a_line(
        at in 0usize..10_000,
        replacement in proptest::prelude::any::<char>(),
        keep in 0usize..10_000,
    ) {
        let mut text: Vec<char> = DEMO.chars().collect();
        let at = at % text.len();
        text[at] = replacement;
        text.truncate(keep % (text.len() + 1));
        let text: String = text.into_iter().collect();
        if let Err(err) = parse(&text) {
            let shown = err.to_string();
            proptest::prop_assert!(shown.contains(FILE), "{shown}");
            let lines = text.lines().count().max(1);
            if let Some(line) = err.line {
                proptest::prop_assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}: {shown}");
            }
        }
    }

    /// Arbitrary text is never a panic either.
    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\n\t]{0,400}") {
        let _ = parse(&text);
    }
}
