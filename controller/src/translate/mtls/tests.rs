//! Tests of MtlsPolicy reports and mode resolution.

use super::*;
use crate::translate::testutil::{index, key};

fn policy(name: &str, namespace: &str, mode: &str, labels: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\n\
         metadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{mode: {mode}, selector: {{matchLabels: {{{labels}}}}}}}\n"
    )
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The mode and the name of the deciding policy.
fn resolved(yaml: &str, namespace: &str, pairs: &[(&str, &str)]) -> (MtlsMode, Option<String>) {
    let r = resolve_mode(&index(yaml), namespace, &labels(pairs));
    (r.mode, r.policy.map(|k| k.name))
}

#[test]
fn policies_are_checked_noted_and_deduplicated() {
    let yaml = "
apiVersion: weft.dev/v1alpha1
kind: MtlsPolicy
metadata: {name: a, namespace: default, generation: 3}
spec: {mode: Strict}
---
apiVersion: weft.dev/v1alpha1
kind: MtlsPolicy
metadata: {name: b, namespace: default}
spec: {mode: Permissive}
---
apiVersion: weft.dev/v1alpha1
kind: MtlsPolicy
metadata: {name: c, namespace: default}
spec: {mode: Strict, selector: {matchLabels: {app.kubernetes.io/name: greeter, 'bad key!': x}}}
---
apiVersion: weft.dev/v1alpha1
kind: MtlsPolicy
metadata: {name: d, namespace: other}
spec: {mode: Disable, selector: {matchLabels: {app: greeter}}}
";
    let mut reports = BTreeMap::new();
    report_policies(&index(yaml), &mut reports);
    let a = &reports[&key(Kind::MtlsPolicy, "default", "a")];
    assert_eq!(a.generation, Some(3));
    assert_eq!(a.accepted, Ok(()));
    assert!(a.notes.is_empty(), "policies are programmed now: {a:?}");
    let b = &reports[&key(Kind::MtlsPolicy, "default", "b")];
    assert!(
        b.notes[0].contains("MtlsPolicy default/a has the same selector"),
        "{b:?}"
    );
    let c = &reports[&key(Kind::MtlsPolicy, "default", "c")];
    assert_eq!(
        c.accepted,
        Err(r#"spec.selector.matchLabels["bad key!"]: "bad key!" is not a label key"#.into())
    );
    assert_eq!(
        reports[&key(Kind::MtlsPolicy, "other", "d")].accepted,
        Ok(())
    );
}

#[test]
fn label_syntax() {
    assert!(is_label_key("app"));
    assert!(is_label_key("app.kubernetes.io/name"));
    assert!(!is_label_key("App.io/name"));
    assert!(!is_label_key("-app"));
    assert!(is_label_name("v1.2_x-y"));
    assert!(!is_label_name(&"a".repeat(64)));
}

#[test]
fn no_policy_means_permissive() {
    assert_eq!(
        resolved(&policy("p", "other", "Strict", ""), "default", &[]),
        (MtlsMode::Permissive, None)
    );
}

#[test]
fn a_selector_beats_the_namespace_wide_policy() {
    let yaml = [
        policy("all", "default", "Strict", ""),
        policy("legacy", "default", "Disable", "app: legacy"),
    ]
    .join("---\n");
    let some = |name: &str| Some(name.to_owned());
    assert_eq!(
        resolved(&yaml, "default", &[("app", "legacy"), ("v", "1")]),
        (MtlsMode::Disable, some("legacy"))
    );
    assert_eq!(
        resolved(&yaml, "default", &[("app", "web")]),
        (MtlsMode::Strict, some("all"))
    );
    assert_eq!(resolved(&yaml, "team-a", &[("app", "legacy")]).1, None);
}

#[test]
fn more_labels_win_then_the_first_by_name() {
    let yaml = [
        policy("b-one", "default", "Disable", "app: web"),
        policy("c-two", "default", "Strict", "app: web, tier: front"),
        policy("a-other", "default", "Permissive", "tier: front"),
    ]
    .join("---\n");
    let index = index(&yaml);
    let set = PolicySet::build(&index);
    let both = labels(&[("app", "web"), ("tier", "front")]);
    let r = set.resolve("default", &both);
    assert_eq!(r.resolved.mode, MtlsMode::Strict, "two labels beat one");
    assert!(r.tied.is_empty());
    // One label each: a tie, which the first by name wins; the other is told.
    let r = set.resolve(
        "default",
        &labels(&[("app", "web"), ("tier", "front"), ("x", "y")]),
    );
    assert_eq!(r.resolved.policy.unwrap().name, "c-two");
    let only_one = set.resolve("default", &labels(&[("app", "web"), ("tier", "back")]));
    assert_eq!(only_one.resolved.policy.unwrap().name, "b-one");
    let tie_yaml = [
        policy("b-one", "default", "Disable", "app: web"),
        policy("a-other", "default", "Permissive", "tier: front"),
    ]
    .join("---\n");
    let tie_index = crate::translate::testutil::index(&tie_yaml);
    let tie = PolicySet::build(&tie_index).resolve("default", &both);
    assert_eq!(
        (
            tie.resolved.mode,
            tie.resolved.policy.unwrap().name.as_str()
        ),
        (MtlsMode::Permissive, "a-other")
    );
    assert_eq!(tie.tied, [key(Kind::MtlsPolicy, "default", "b-one")]);
}

#[test]
fn a_rejected_policy_is_ignored() {
    let yaml = [
        policy("all", "default", "Permissive", ""),
        policy("bad", "default", "Strict", "'bad key!': x"),
    ]
    .join("---\n");
    assert_eq!(
        resolved(&yaml, "default", &[("bad key!", "x")]),
        (MtlsMode::Permissive, Some("all".to_owned()))
    );
}

#[test]
fn identical_selectors_are_not_a_tie_to_report_per_proxy() {
    let yaml = [
        policy("a", "default", "Strict", "app: web"),
        policy("b", "default", "Disable", "app: web"),
    ]
    .join("---\n");
    let index = index(&yaml);
    let r = PolicySet::build(&index).resolve("default", &labels(&[("app", "web")]));
    assert_eq!(r.resolved.policy.unwrap().name, "a");
    assert!(r.tied.is_empty(), "b's report already says a wins");
}
