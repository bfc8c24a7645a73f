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
        "replicas: 2",
        "--xds-addr=off",
        "--xds-tls-addr=0.0.0.0:15012",
        "--admin-addr=0.0.0.0:15014",
        "--webhook-addr=0.0.0.0:15017",
        "--lease-name=weft-leader",
        "path: /ready",
        "kind: PodDisruptionBudget",
        "kind: MutatingWebhookConfiguration",
        "name: weft-weft-system",
        "resources: [\"tokenreviews\"]",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "helm.sh/hook: test",
        "namespace: weft-system",
    ] {
        assert!(
            rendered.contains(expected),
            "rendered chart lacks {expected:?}:\n{rendered}"
        );
    }
}

#[test]
fn two_releases_do_not_share_a_name() {
    let chart = chart_dir().to_str().unwrap();
    let names = |release: &str, namespace: &str| -> Vec<String> {
        helm(&["template", release, chart, "--namespace", namespace])
            .lines()
            .filter_map(|line| line.strip_prefix("  name: "))
            .map(str::to_owned)
            .collect()
    };
    let a = names("mesh", "team-a");
    let b = names("mesh", "team-b");
    assert!(a.contains(&"mesh-weft-team-a".to_owned()), "{a:?}");
    let cluster_scoped = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|n| n.ends_with("-team-a") || n.ends_with("-team-b"))
            .cloned()
            .collect()
    };
    for name in cluster_scoped(&a) {
        assert!(!b.contains(&name), "{name} is in both releases");
    }
}

#[test]
fn the_values_schema_rejects_a_bad_value_naming_it() {
    let chart = chart_dir().to_str().unwrap();
    for (value, named) in [
        ("controller.replicas=two", "/controller/replicas"),
        (
            "injection.failurePolicy=Sometimes",
            "/injection/failurePolicy",
        ),
        ("controller.leaseDuration=1.5s", "/controller/leaseDuration"),
        ("replicas=2", "replicas"),
    ] {
        let out = Command::new(tool("helm"))
            .args(["template", "weft", chart, "--set", value])
            .output()
            .expect("run helm");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {value} was accepted");
        assert!(stderr.contains(named), "--set {value}: {stderr}");
    }
}

#[test]
fn manifests_install_yaml_is_rendered_from_the_chart() {
    let root = chart_dir().join("../..");
    let out = Command::new(root.join("scripts/render-manifests"))
        .arg("--stdout")
        .output()
        .expect("run scripts/render-manifests");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(root.join("manifests/install.yaml"))
        .expect("manifests/install.yaml");
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "manifests/install.yaml is stale: run scripts/render-manifests"
    );
}
