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

/// One template of the chart, rendered with `--set` values `sets`.
fn render_template(template: &str, sets: &[&str]) -> String {
    let chart = chart_dir().to_str().expect("the chart path is UTF-8");
    let mut args = vec!["template", "weft", chart, "--show-only", template];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm(&args)
}

#[test]
fn dashboards_render_as_configmaps_for_grafanas_sidecar() {
    let chart = chart_dir().to_str().unwrap();
    let rendered = render_template(
        "templates/dashboards.yaml",
        &[
            "monitoring.dashboards.enabled=true",
            "monitoring.dashboards.annotations.grafana_folder=mesh",
        ],
    );
    let dashboards: Vec<_> = std::fs::read_dir(chart_dir().join("dashboards"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(dashboards.len(), 3, "{dashboards:?}");
    assert_eq!(rendered.matches("kind: ConfigMap").count(), 3, "{rendered}");
    assert_eq!(rendered.matches("grafana_dashboard: \"1\"").count(), 3);
    assert_eq!(rendered.matches("grafana_folder: mesh").count(), 3);
    for path in dashboards {
        let name = path.file_name().unwrap().to_str().unwrap();
        let json = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str::<serde_json::Value>(&json)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let embedded: String = json.lines().map(|l| format!("    {l}\n")).collect();
        assert!(
            rendered.contains(&format!("  {name}: |-\n{embedded}")),
            "{name} is not embedded whole:\n{rendered}"
        );
    }
    let off = helm(&["template", "weft", chart]);
    assert!(
        !off.contains("grafana_dashboard"),
        "dashboards render when disabled"
    );
}

/// The rules file passes `promtool check rules` and its unit tests (`promtool test rules`),
/// and the PrometheusRule the chart renders carries the same rules.
#[test]
fn alert_rules_pass_promtool_and_render_as_a_prometheus_rule() {
    let files = chart_dir().join("files");
    let promtool = |args: &[&str]| {
        let out = Command::new(tool("promtool"))
            .args(args)
            .current_dir(&files)
            .output()
            .expect("run promtool");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        text
    };
    let checked = promtool(&["check", "rules", "weft-alerts.rules.yaml"]);
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    promtool(&["test", "rules", "weft-alerts.tests.yaml"]);

    let rendered = render_template(
        "templates/alerts.yaml",
        &[
            "monitoring.prometheusRule.enabled=true",
            "monitoring.prometheusRule.labels.release=prometheus",
        ],
    );
    assert!(rendered.contains("kind: PrometheusRule"), "{rendered}");
    assert!(rendered.contains("release: prometheus"), "{rendered}");
    // The spec, unindented, is a rules file of its own.
    let spec = rendered
        .split_once("\nspec:\n")
        .map(|(_, spec)| spec)
        .unwrap_or_else(|| panic!("no spec:\n{rendered}"));
    let rules: String = spec
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rendered.rules.yaml");
    std::fs::write(&path, rules).unwrap();
    let checked = promtool(&["check", "rules", path.to_str().unwrap()]);
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
}
