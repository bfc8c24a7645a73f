//! The committed CRD YAML (`crds/`, `charts/weft/crds/`) matches what the Rust API types
//! render today; a change to `controller/src/api` without regenerating fails here.

use std::path::PathBuf;

use weft_controller::api;

#[test]
fn committed_crds_are_up_to_date() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let stale = api::stale_files(&root).expect("compare committed CRDs");
    let list: Vec<String> = stale.iter().map(|p| format!("  {}", p.display())).collect();
    assert!(
        stale.is_empty(),
        "these CRD files differ from the Rust types in controller/src/api:\n{}\n\
         regenerate them with `{}` and commit the result",
        list.join("\n"),
        api::REGENERATE_COMMAND
    );
}

#[test]
fn every_kind_has_one_file_per_directory() {
    let names: Vec<String> = api::crd_files()
        .expect("render CRDs")
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names,
        [
            "grpcroutes.weft.dev.yaml",
            "faultinjections.weft.dev.yaml",
            "mtlspolicies.weft.dev.yaml",
            "backendpolicies.weft.dev.yaml"
        ]
    );
    assert_eq!(api::CRD_DIRS, ["crds", "charts/weft/crds"]);
}
