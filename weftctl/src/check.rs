//! `weftctl check`: is this cluster ready for weft? One line per check, `[ok]` or `[FAIL]`
//! with what is wrong and what to do; the exit status is 1 when any check fails.
//!
//! - the API server answers, at Kubernetes 1.29 or later (the CEL validation rules the CRDs
//!   carry need it);
//! - weft's four CRDs are installed and `Established`;
//! - RBAC: the controller's ServiceAccount (from its pods, else `weft`) may do what the
//!   controller does, asked of the API server with SubjectAccessReviews;
//! - the sidecar-injection webhook: a MutatingWebhookConfiguration of weft's with a CA
//!   bundle, whose Service has a ready endpoint (or whose URL accepts connections);
//! - the controller answers `/ready` (every replica; or `--controller-addr`).

use anyhow::Context as _;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};

use crate::cli::Target;
use crate::reach::{Controller, Kube};

/// weft's CRDs.
pub const CRDS: [&str; 4] = [
    "grpcroutes.weft.dev",
    "faultinjections.weft.dev",
    "mtlspolicies.weft.dev",
    "backendpolicies.weft.dev",
];

/// What the controller must be allowed: (verb, group, resource, subresource).
const CONTROLLER_NEEDS: [(&str, &str, &str, &str); 10] = [
    ("watch", "", "services", ""),
    ("watch", "", "pods", ""),
    ("watch", "discovery.k8s.io", "endpointslices", ""),
    ("watch", "weft.dev", "grpcroutes", ""),
    ("watch", "weft.dev", "faultinjections", ""),
    ("watch", "weft.dev", "mtlspolicies", ""),
    ("watch", "weft.dev", "backendpolicies", ""),
    ("patch", "weft.dev", "grpcroutes", "status"),
    ("create", "authentication.k8s.io", "tokenreviews", ""),
    ("create", "coordination.k8s.io", "leases", ""),
];

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub text: String,
}

impl Finding {
    fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            text: text.into(),
        }
    }
    fn fail(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            text: text.into(),
        }
    }
}

/// Runs every check; findings in order.
pub fn run(target: &Target) -> anyhow::Result<Vec<Finding>> {
    let kube = Kube::connect(target)?;
    let mut findings = vec![api_server(&kube)];
    findings.extend(crds(&kube)?);
    findings.extend(rbac(&kube, &target.controller_namespace)?);
    findings.push(webhook(&kube)?);
    findings.extend(controller_ready(target));
    Ok(findings)
}

/// The findings as lines.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for finding in findings {
        let mark = if finding.ok { "[ok]  " } else { "[FAIL]" };
        out.push_str(&format!("{mark} {}\n", finding.text));
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    out.push_str(&match failed {
        0 => "all checks passed\n".to_owned(),
        n => format!("{n} of {} checks failed\n", findings.len()),
    });
    out
}

fn api_server(kube: &Kube) -> Finding {
    match kube.runtime.block_on(kube.client.apiserver_version()) {
        Ok(info) => {
            let minor: u32 = info.minor.trim_end_matches('+').parse().unwrap_or_default();
            if info.major == "1" && minor >= 29 {
                Finding::ok(format!("API server {}", info.git_version))
            } else {
                Finding::fail(format!(
                    "API server {}: weft needs Kubernetes 1.29 or later",
                    info.git_version
                ))
            }
        }
        Err(err) => Finding::fail(format!("API server does not answer: {err}")),
    }
}

fn crds(kube: &Kube) -> anyhow::Result<Vec<Finding>> {
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(kube.client.clone());
    let mut findings = Vec::new();
    for name in CRDS {
        let crd = kube
            .runtime
            .block_on(api.get_opt(name))
            .with_context(|| format!("reading CRD {name}"))?;
        let established = crd.as_ref().is_some_and(|crd| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        });
        findings.push(match (crd, established) {
            (Some(_), true) => Finding::ok(format!("CRD {name} established")),
            (Some(_), false) => Finding::fail(format!("CRD {name} is not Established yet")),
            (None, _) => Finding::fail(format!(
                "CRD {name} is missing: install the chart (helm install weft charts/weft) or kubectl apply -f crds/"
            )),
        });
    }
    Ok(findings)
}

fn rbac(kube: &Kube, namespace: &str) -> anyhow::Result<Vec<Finding>> {
    let pods: kube::Api<Pod> = kube::Api::namespaced(kube.client.clone(), namespace);
    let listed = kube.runtime.block_on(
        pods.list(&ListParams::default().labels("app.kubernetes.io/name=weft-controller")),
    );
    let account = listed
        .ok()
        .and_then(|list| list.items.into_iter().next())
        .and_then(|pod| pod.spec.and_then(|spec| spec.service_account_name))
        .unwrap_or_else(|| "weft".to_owned());
    let user = format!("system:serviceaccount:{namespace}:{account}");
    let reviews: kube::Api<SubjectAccessReview> = kube::Api::all(kube.client.clone());
    let mut denied = Vec::new();
    for (verb, group, resource, subresource) in CONTROLLER_NEEDS {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{namespace}"),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    subresource: (!subresource.is_empty()).then(|| subresource.into()),
                    namespace: (resource == "leases").then(|| namespace.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = kube
            .runtime
            .block_on(reviews.create(&PostParams::default(), &review))
            .context("asking the API server (SubjectAccessReview)")?;
        if !answer.status.is_some_and(|s| s.allowed) {
            let what = if subresource.is_empty() {
                resource.to_owned()
            } else {
                format!("{resource}/{subresource}")
            };
            let group = if group.is_empty() { "core" } else { group };
            denied.push(format!("{verb} {what} ({group})"));
        }
    }
    Ok(vec![if denied.is_empty() {
        Finding::ok(format!("RBAC: {user} may do what the controller does"))
    } else {
        Finding::fail(format!(
            "RBAC: {user} may not {}: install the chart's ClusterRole and binding",
            denied.join(", ")
        ))
    }])
}

fn webhook(kube: &Kube) -> anyhow::Result<Finding> {
    let api: kube::Api<MutatingWebhookConfiguration> = kube::Api::all(kube.client.clone());
    let list = kube
        .runtime
        .block_on(api.list(&ListParams::default().labels("app.kubernetes.io/name=weft-controller")))
        .context("listing MutatingWebhookConfigurations")?;
    let Some(config) = list.items.into_iter().next() else {
        return Ok(Finding::fail(
            "injection webhook: no MutatingWebhookConfiguration of weft's (label app.kubernetes.io/name=weft-controller); pods get no sidecar",
        ));
    };
    let name = config.metadata.name.unwrap_or_default();
    let Some(hook) = config.webhooks.into_iter().flatten().next() else {
        return Ok(Finding::fail(format!(
            "injection webhook {name} has no webhooks"
        )));
    };
    let client_config = hook.client_config;
    if client_config
        .ca_bundle
        .as_ref()
        .is_none_or(|b| b.0.is_empty())
    {
        return Ok(Finding::fail(format!(
            "injection webhook {name}: no caBundle yet (the controller fills it in when it starts)"
        )));
    }
    if let Some(service) = client_config.service {
        let slices: kube::Api<EndpointSlice> =
            kube::Api::namespaced(kube.client.clone(), &service.namespace);
        let selector = format!("kubernetes.io/service-name={}", service.name);
        let slices = kube
            .runtime
            .block_on(slices.list(&ListParams::default().labels(&selector)))
            .context("listing the webhook Service's EndpointSlices")?;
        let ready = slices
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true));
        return Ok(if ready {
            Finding::ok(format!(
                "injection webhook {name}: Service {}/{} has a ready endpoint",
                service.namespace, service.name
            ))
        } else {
            Finding::fail(format!(
                "injection webhook {name}: Service {}/{} has no ready endpoint (is the controller running?)",
                service.namespace, service.name
            ))
        });
    }
    match client_config.url {
        Some(url) => Ok(match connect_to_url(&url) {
            Ok(()) => Finding::ok(format!(
                "injection webhook {name}: {url} accepts connections"
            )),
            Err(err) => Finding::fail(format!("injection webhook {name}: {url}: {err}")),
        }),
        None => Ok(Finding::fail(format!(
            "injection webhook {name} names neither a Service nor a URL"
        ))),
    }
}

/// Opens (and closes) a TCP connection to the host and port of an `https://` URL.
fn connect_to_url(url: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs as _;
    let rest = url.strip_prefix("https://").ok_or("not an https:// URL")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {with_port}: {err}"))?
        .next()
        .ok_or_else(|| format!("{with_port} resolves to nothing"))?;
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
        .map(drop)
        .map_err(|err| format!("cannot connect to {addr}: {err}"))
}

fn controller_ready(target: &Target) -> Vec<Finding> {
    let controller = match Controller::find(target) {
        Ok(controller) => controller,
        Err(err) => return vec![Finding::fail(format!("controller: {err:#}"))],
    };
    match controller.get_all("/ready") {
        Ok(answers) => answers
            .into_iter()
            .map(|(from, _)| Finding::ok(format!("controller {from} is ready")))
            .collect(),
        Err(err) => vec![Finding::fail(format!("controller is not ready: {err:#}"))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_failures() {
        let out = render(&[Finding::ok("a"), Finding::fail("b: do c")]);
        assert_eq!(out, "[ok]   a\n[FAIL] b: do c\n1 of 2 checks failed\n");
        assert!(render(&[Finding::ok("a")]).ends_with("all checks passed\n"));
    }
}
