//! MtlsPolicy reports. Policies are checked (label selectors well formed) and conflicts are
//! reported, but nothing is programmed yet: inbound listeners and certificates (SDS) are
//! not translated, which each report says.

use std::collections::BTreeMap;

use super::validate::Problems;
use super::{ResourceReport, problems};
use crate::model::{Index, Kind, Object, ObjectKey};

/// Said on every accepted policy until inbound mTLS is translated.
pub(super) const NOT_PROGRAMMED: &str = "not enforced yet: the controller does not serve \
     inbound listeners or certificates, so no proxy applies this mode";

/// Reports every MtlsPolicy: its selector checked, and a note when an earlier policy (by
/// name) in the namespace has the same selector, which then wins.
pub(super) fn report_policies(index: &Index, reports: &mut BTreeMap<ObjectKey, ResourceReport>) {
    let mut seen: BTreeMap<(String, Vec<(String, String)>), String> = BTreeMap::new();
    for object in index.of_kind(Kind::MtlsPolicy) {
        let Object::MtlsPolicy(policy) = object else {
            continue;
        };
        let key = object.key();
        let mut report = ResourceReport::new(object.generation());
        let mut found = Problems::default();
        for (label, value) in &policy.spec.selector.match_labels {
            let path = format!("spec.selector.matchLabels[{label:?}]");
            if !is_label_key(label) {
                found.add(&path, format!("{label:?} is not a label key"));
            }
            if !(value.is_empty() || is_label_name(value)) {
                found.add(&path, format!("{value:?} is not a label value"));
            }
        }
        report.accepted = problems(found.0);
        if report.accepted.is_ok() {
            let labels: Vec<(String, String)> = policy
                .spec
                .selector
                .match_labels
                .clone()
                .into_iter()
                .collect();
            match seen.get(&(key.namespace.clone(), labels.clone())) {
                Some(first) => report.notes.push(format!(
                    "MtlsPolicy {}/{first} has the same selector and wins (first by name)",
                    key.namespace
                )),
                None => {
                    seen.insert((key.namespace.clone(), labels), key.name.clone());
                }
            }
            report.notes.push(NOT_PROGRAMMED.into());
        }
        reports.insert(key, report);
    }
}

/// `[prefix/]name`: prefix a DNS subdomain (≤ 253), name ≤ 63 alphanumerics, `-`, `_`, `.`
/// starting and ending alphanumeric.
fn is_label_key(key: &str) -> bool {
    match key.rsplit_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253
                && prefix
                    .split('.')
                    .all(|part| super::services::is_dns_label(part, false))
                && is_label_name(name)
        }
        None => is_label_name(key),
    }
}

fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::testutil::{index, key};

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
        assert_eq!(a.notes, [NOT_PROGRAMMED]);
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
}
