//! MtlsPolicies: each is checked (label selectors well formed) and reported, and each
//! workload's inbound mode is resolved from the accepted policies of its namespace.
//!
//! Resolution ([`resolve_mode`]): of the accepted policies in the workload's namespace whose
//! selector matches all of its labels, one with a non-empty selector beats a namespace-wide
//! one (empty selector); among selector policies, the one with more `matchLabels` wins; a
//! remaining tie goes to the first by name, and the losers get a note naming the proxies
//! concerned (identical selectors are noted once, whatever the proxies). No policy at all:
//! `Permissive`, as Istio's default, so a mesh can adopt mTLS without breaking plaintext
//! clients, while every client proxy already uses mTLS towards it.

use std::collections::BTreeMap;

use super::validate::Problems;
use super::{ResourceReport, problems};
use crate::api::{MtlsMode, MtlsPolicy};
use crate::model::{Index, Kind, Object, ObjectKey};

/// The inbound mode of one workload, and the policy that set it (`None`: no policy selects
/// the workload, and the mode is the default, `Permissive`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMode {
    pub mode: MtlsMode,
    pub policy: Option<ObjectKey>,
}

/// The mode of a workload in `namespace` with `labels`, from the index's accepted policies.
pub fn resolve_mode(
    index: &Index,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> ResolvedMode {
    PolicySet::build(index).resolve(namespace, labels).resolved
}

/// A resolution, and the policies that tied with the winner (same rank, other selector).
pub(super) struct Resolution {
    pub resolved: ResolvedMode,
    pub tied: Vec<ObjectKey>,
}

/// One accepted policy.
struct Accepted<'a> {
    key: ObjectKey,
    policy: &'a MtlsPolicy,
}

impl Accepted<'_> {
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.policy.spec.selector.match_labels
    }

    /// Higher wins: (has a selector, how many labels it names).
    fn rank(&self) -> (bool, usize) {
        (!self.labels().is_empty(), self.labels().len())
    }

    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels()
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }
}

/// The accepted policies of an index by namespace, in name order: built once per
/// translation, asked once per workload.
pub(super) struct PolicySet<'a> {
    by_namespace: BTreeMap<&'a str, Vec<Accepted<'a>>>,
}

impl<'a> PolicySet<'a> {
    pub fn build(index: &'a Index) -> Self {
        let mut by_namespace: BTreeMap<&'a str, Vec<Accepted<'a>>> = BTreeMap::new();
        for object in index.of_kind(Kind::MtlsPolicy) {
            let Object::MtlsPolicy(policy) = object else {
                continue;
            };
            if !check_policy(policy).0.is_empty() {
                continue;
            }
            let namespace = policy.metadata.namespace.as_deref().unwrap_or("default");
            let key = object.key();
            // `of_kind` is in key order: name order within a namespace.
            by_namespace
                .entry(namespace)
                .or_default()
                .push(Accepted { key, policy });
        }
        Self { by_namespace }
    }

    pub fn resolve(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Resolution {
        let candidates = self
            .by_namespace
            .get(namespace)
            .map_or(&[][..], Vec::as_slice);
        let mut winner: Option<&Accepted<'_>> = None;
        for candidate in candidates.iter().filter(|p| p.selects(labels)) {
            // Strictly greater: an equal rank keeps the earlier name.
            if winner.is_none_or(|w| candidate.rank() > w.rank()) {
                winner = Some(candidate);
            }
        }
        let Some(winner) = winner else {
            return Resolution {
                resolved: ResolvedMode {
                    mode: MtlsMode::Permissive,
                    policy: None,
                },
                tied: Vec::new(),
            };
        };
        let tied = candidates
            .iter()
            .filter(|p| {
                p.key != winner.key
                    && p.rank() == winner.rank()
                    && p.labels() != winner.labels()
                    && p.selects(labels)
            })
            .map(|p| p.key.clone())
            .collect();
        Resolution {
            resolved: ResolvedMode {
                mode: winner.policy.spec.mode,
                policy: Some(winner.key.clone()),
            },
            tied,
        }
    }
}

/// What is wrong with a policy's selector (empty: it is accepted).
fn check_policy(policy: &MtlsPolicy) -> Problems {
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
    found
}

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
        report.accepted = problems(check_policy(policy).0);
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
mod tests;
