//! `LocalState`: last good state, removed files, names in two files, and what reaches the index.

use std::path::PathBuf;

use super::*;
use crate::model::{Index, Kind, Object, ObjectKey};

fn read(path: &str, text: &str) -> FileEvent {
    FileEvent::Read {
        path: PathBuf::from(path),
        text: text.into(),
    }
}

fn removed(path: &str) -> FileEvent {
    FileEvent::Removed {
        path: PathBuf::from(path),
    }
}

fn service(name: &str, port: i32) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{port: {port}}}]\n"
    )
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Service, "default", name)
}

/// The services in force, as `name:port`.
fn services(state: &LocalState) -> Vec<String> {
    state
        .objects()
        .filter_map(|o| match &**o {
            Object::Service(s) => {
                let port = s.spec.as_ref()?.ports.as_ref()?[0].port;
                Some(format!("{}:{port}", s.metadata.name.as_deref()?))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_broken_file_keeps_its_last_good_objects() {
    let mut state = LocalState::new();
    state.update([
        read("a.yaml", &service("a", 1)),
        read("b.yaml", &service("b", 1)),
    ]);
    assert_eq!(services(&state), ["a:1", "b:1"]);

    let broken = format!("{}  extra: [\n", service("a", 2));
    let update = state.update([read("a.yaml", &broken)]);
    assert_eq!(
        services(&state),
        ["a:1", "b:1"],
        "a.yaml's last good state stays"
    );
    assert_eq!(update.new_errors.len(), 1);
    let error = &state.errors()[0];
    assert_eq!(
        (error.file.to_str(), error.line),
        (Some("a.yaml"), Some(6)),
        "{error}"
    );

    let update = state.update([read("a.yaml", &service("a", 3))]);
    assert_eq!(services(&state), ["a:3", "b:1"]);
    assert_eq!(state.errors(), []);
    assert_eq!(
        update.cleared_errors.len(),
        1,
        "fixing the file clears its error"
    );
}

#[test]
fn a_new_broken_file_contributes_nothing() {
    let mut state = LocalState::new();
    state.update([read(
        "a.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: [\n",
    )]);
    assert_eq!(services(&state), Vec::<String>::new());
    assert_eq!(state.errors().len(), 1);
}

#[test]
fn a_removed_file_removes_its_objects_and_errors() {
    let mut state = LocalState::new();
    state.update([
        read("a.yaml", &service("a", 1)),
        read("b.yaml", &service("b", 1)),
    ]);
    state.update([read("b.yaml", "not: [valid\n")]);
    assert_eq!(state.errors().len(), 1);
    let update = state.update([removed("a.yaml"), removed("b.yaml")]);
    assert!(update.changed);
    assert_eq!(services(&state), Vec::<String>::new());
    assert_eq!(state.errors(), []);
    assert_eq!(update.cleared_errors.len(), 1);
}

#[test]
fn unchanged_text_is_not_a_change() {
    let mut state = LocalState::new();
    state.update([read("a.yaml", &service("a", 1))]);
    let update = state.update([read("a.yaml", &service("a", 1)), removed("never-seen.yaml")]);
    assert_eq!(update, Update::default());
}

#[test]
fn a_name_in_two_files_is_an_error_on_the_later_file() {
    let mut state = LocalState::new();
    let b = format!("{}---\n{}", service("b", 1), service("shared", 2));
    state.update([read("a.yaml", &service("shared", 1)), read("b.yaml", &b)]);
    assert_eq!(
        services(&state),
        ["b:1", "shared:1"],
        "the first file's definition stays, b's other objects apply"
    );
    assert_eq!(state.errors().len(), 1);
    let error = &state.errors()[0];
    assert_eq!((error.file.to_str(), error.line), (Some("b.yaml"), Some(7)));
    assert_eq!(
        error.problem,
        Problem::DefinedElsewhere {
            key: Box::new(key("shared")),
            owner: PathBuf::from("a.yaml"),
            owner_line: 1
        }
    );
    assert!(
        error.to_string().contains("already defined in a.yaml:1"),
        "{error}"
    );

    // Once a.yaml lets go of the name, b.yaml's definition takes over and the error clears.
    state.update([read("a.yaml", &service("a", 1))]);
    assert_eq!(services(&state), ["a:1", "b:1", "shared:2"]);
    assert_eq!(state.errors(), []);
}

#[test]
fn the_file_that_has_a_name_keeps_it() {
    let mut state = LocalState::new();
    state.update([read("b.yaml", &service("shared", 2))]);
    // a.yaml comes first in path order, but b.yaml already defines the name.
    state.update([read("a.yaml", &service("shared", 1))]);
    assert_eq!(services(&state), ["shared:2"]);
    assert_eq!(state.errors()[0].file, PathBuf::from("a.yaml"));
}

#[test]
fn kinds_and_namespaces_are_part_of_the_name() {
    let mut state = LocalState::new();
    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: shared}\naddressType: IPv4\nendpoints: []\n";
    let other_ns = "apiVersion: v1\nkind: Service\nmetadata: {name: shared, namespace: prod}\n";
    state.update([
        read("a.yaml", &service("shared", 1)),
        read("b.yaml", slice),
        read("c.yaml", other_ns),
    ]);
    assert_eq!(state.errors(), []);
    assert_eq!(state.objects().count(), 3);
}

#[test]
fn an_unreadable_file_keeps_its_objects() {
    let mut state = LocalState::new();
    state.update([read("a.yaml", &service("a", 1))]);
    let unreadable = || FileEvent::Unreadable {
        path: "a.yaml".into(),
        reason: "permission denied".into(),
    };
    let update = state.update([unreadable()]);
    assert_eq!(services(&state), ["a:1"]);
    assert_eq!(update.new_errors.len(), 1);
    assert_eq!(update.new_errors[0].line, None);
    assert!(
        !state.update([unreadable()]).changed,
        "the same failure again changes nothing"
    );
}

#[test]
fn apply_to_syncs_every_kind_and_reports_differences() {
    let mut state = LocalState::new();
    state.update([read("a.yaml", &service("a", 1))]);
    let mut index = Index::new();
    let change = state.apply_to(&mut index);
    assert!(
        index.is_synced(),
        "every kind is synced, even those no file defines"
    );
    assert_eq!(change.changed, [key("a")]);
    assert!(state.apply_to(&mut index).is_empty());

    state.update([read("a.yaml", &service("b", 1))]);
    let change = state.apply_to(&mut index);
    assert_eq!(
        (change.changed, change.deleted),
        (vec![key("b")], vec![key("a")])
    );
}

#[test]
fn apply_keys_writes_only_what_an_update_touched() {
    let mut state = LocalState::new();
    state.update([
        read("a.yaml", &service("a", 1)),
        read(
            "b.yaml",
            &format!("{}---\n{}", service("b", 1), service("c", 1)),
        ),
        read("dup.yaml", &service("c", 9)),
    ]);
    let mut index = Index::new();
    state.apply_to(&mut index);

    // An edit: only that file's names are touched, and only the real difference reported.
    let update = state.update([read(
        "b.yaml",
        &format!("{}---\n{}", service("b", 2), service("c", 1)),
    )]);
    assert_eq!(update.touched, [key("b"), key("c")].into());
    let change = state.apply_keys(&update.touched, &mut index);
    assert_eq!((change.changed, change.deleted), (vec![key("b")], vec![]));

    // A removed file: its names go, or pass to the file that also defines them.
    let update = state.update([removed("b.yaml")]);
    let change = state.apply_keys(&update.touched, &mut index);
    assert_eq!(
        (change.changed, change.deleted),
        (vec![key("c")], vec![key("b")])
    );
    assert_eq!(services(&state), ["a:1", "c:9"]);

    // Whatever happened, the index holds what a full rewrite would hold.
    let mut rewritten = Index::new();
    state.apply_to(&mut rewritten);
    assert!(state.apply_to(&mut index).is_empty());
    assert_eq!(index.len(), rewritten.len());
}

#[test]
fn a_broken_edit_touches_nothing() {
    let mut state = LocalState::new();
    state.update([read("a.yaml", &service("a", 1))]);
    let update = state.update([read("a.yaml", "kind: [")]);
    assert!(update.changed, "the error is new");
    assert!(update.touched.is_empty(), "the last good objects stay");
}
