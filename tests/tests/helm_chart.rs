//! The Helm chart, checked with the real `helm`: it lints clean and renders the controller
//! with the ports and arguments the binaries expect.

use std::path::Path;
use std::process::Command;

use weft_tests::tools::tool;

fn chart_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/weft"))
}

fn helm(args: &[&str]) -> String {
    let out = Command::new(tool("helm"))
        .args(args)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("helm prints UTF-8")
}

#[test]
fn chart_lints_clean() {
    let chart = chart_dir().to_str().unwrap();
    let out = helm(&["lint", "--strict", chart]);
    assert!(
        out.contains("1 chart(s) linted, 0 chart(s) failed"),
        "{out}"
    );
}

#[test]
fn chart_renders_the_controller_with_its_ports() {
    let chart = chart_dir().to_str().unwrap();
    let rendered = helm(&["template", "weft", chart, "--namespace", "weft-system"]);
    for expected in [
        "kind: Deployment",
        "--xds-addr=0.0.0.0:15010",
        "--admin-addr=0.0.0.0:15014",
        "path: /ready",
        "kind: ClusterRole",
        "resources: [\"tokenreviews\"]",
        "namespace: weft-system",
    ] {
        assert!(
            rendered.contains(expected),
            "rendered chart lacks {expected:?}:\n{rendered}"
        );
    }
}
