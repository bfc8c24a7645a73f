//! The local source on a real directory: the first sync, an edit seen within a second, a
//! malformed file reported with file and line while its old objects stay, a fixed file, a
//! removed file, and what is not read (other kinds, subdirectories, hidden files).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_controller::model::{Index, Kind, ObjectKey};
use weft_controller::source::SharedIndex;
use weft_controller::source::local::{LocalSource, LocalSourceError, LocalSourceHandle, Problem};

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: greeter, namespace: default}
spec:
  ports: [{name: grpc, port: 50051}]
---
apiVersion: v1
kind: Service
metadata: {name: greeter-v1, namespace: default}
spec:
  ports: [{name: grpc, port: 50051}]
";

fn route(weight: i32) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1
kind: GrpcRoute
metadata: {{name: greeter, namespace: default}}
spec:
  parentRefs: [{{name: greeter, port: 50051}}]
  rules:
  - backendRefs:
    - {{name: greeter-v1, port: 50051, weight: {weight}}}
"
    )
}

/// Writes like an editor that saves to a temporary file and renames it over the old one.
fn save(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write the temporary file");
    std::fs::rename(&tmp, dir.join(name)).expect("rename it into place");
}

fn route_weight(index: &SharedIndex) -> Option<i32> {
    let index = index.lock().expect("index lock");
    let route = index.grpc_routes().next()?;
    Some(route.spec.rules[0].backend_refs[0].weight)
}

fn service_names(index: &SharedIndex) -> Vec<String> {
    let index = index.lock().expect("index lock");
    index
        .services()
        .filter_map(|s| s.metadata.name.clone())
        .collect()
}

/// Waits up to `limit` for `done`, checking every 20 ms; returns how long it took.
async fn within(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done().then(|| start.elapsed())
}

async fn start(dir: &Path) -> (SharedIndex, LocalSourceHandle) {
    let index: SharedIndex = Arc::new(Mutex::new(Index::new()));
    let handle = LocalSource::new(dir)
        .start(index.clone())
        .await
        .expect("the local source starts");
    (index, handle)
}

#[tokio::test]
async fn edits_errors_and_removals_reach_the_index() {
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), "services.yaml", SERVICES);
    save(dir.path(), "route.yml", &route(90));
    let (index, handle) = start(dir.path()).await;

    // The first full sync is in the index when start returns.
    assert!(index.lock().unwrap().is_synced());
    assert_eq!(service_names(&index), ["greeter", "greeter-v1"]);
    assert_eq!(route_weight(&index), Some(90));
    assert_eq!(handle.current_errors(), []);

    // An edit is in the index, and announced, within a second.
    let mut revision = handle.subscribe();
    let before = *revision.borrow();
    save(dir.path(), "route.yml", &route(70));
    let waited = tokio::time::timeout(Duration::from_secs(1), revision.changed()).await;
    assert!(waited.is_ok(), "no change announced within 1 s");
    assert!(*revision.borrow_and_update() > before);
    assert_eq!(route_weight(&index), Some(70));

    // A malformed file is reported with file and line; its last good objects stay.
    let broken = format!("{}    - {{name: greeter-v2, port: [50051}}\n", route(50));
    std::fs::write(dir.path().join("route.yml"), broken).unwrap(); // in place, not renamed
    let reported = within(Duration::from_secs(1), || {
        !handle.current_errors().is_empty()
    })
    .await;
    assert!(reported.is_some(), "no error reported within 1 s");
    let errors = handle.current_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, dir.path().join("route.yml"));
    assert_eq!(errors[0].line, Some(9), "{}", errors[0]);
    assert!(
        matches!(errors[0].problem, Problem::Syntax(_)),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].to_string().contains("route.yml:9:"),
        "{}",
        errors[0]
    );
    assert_eq!(
        route_weight(&index),
        Some(70),
        "the last good route stays in force"
    );

    // Fixed: the new content applies and the error clears.
    save(dir.path(), "route.yml", &route(50));
    let fixed = within(Duration::from_secs(1), || route_weight(&index) == Some(50)).await;
    assert!(fixed.is_some(), "the fixed file was not applied within 1 s");
    assert_eq!(handle.current_errors(), []);

    // A removed file removes its objects.
    std::fs::remove_file(dir.path().join("services.yaml")).unwrap();
    let gone = within(Duration::from_secs(1), || service_names(&index).is_empty()).await;
    assert!(
        gone.is_some(),
        "removed services still in the index after 1 s"
    );
    assert_eq!(route_weight(&index), Some(50));

    handle.stop();
}

#[tokio::test]
async fn other_yaml_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: greeter}\n";
    save(
        dir.path(),
        "all.yaml",
        &format!("{deployment}---\n{SERVICES}"),
    );
    std::fs::write(dir.path().join("notes.txt"), "kind: [not yaml we read").unwrap();
    std::fs::write(dir.path().join(".hidden.yaml"), "kind: [broken").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/route.yaml"), route(1)).unwrap();
    let (index, handle) = start(dir.path()).await;
    assert_eq!(
        handle.current_errors(),
        [],
        "skipped kinds and ignored files are not errors"
    );
    let index = index.lock().unwrap();
    assert_eq!(index.len(), 2);
    assert!(
        index
            .get(&ObjectKey::new(Kind::Service, "default", "greeter"))
            .is_some()
    );
    assert!(index.is_synced(), "kinds with no objects are synced too");
}

#[tokio::test]
async fn an_empty_directory_syncs_and_a_missing_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _handle) = start(dir.path()).await;
    assert!(index.lock().unwrap().is_synced());
    assert!(index.lock().unwrap().is_empty());

    let missing = dir.path().join("nope");
    let index: SharedIndex = Arc::new(Mutex::new(Index::new()));
    let err = LocalSource::new(&missing)
        .start(index.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, LocalSourceError::Directory { .. }), "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(
        !index.lock().unwrap().is_synced(),
        "nothing is synced without a directory"
    );
}
