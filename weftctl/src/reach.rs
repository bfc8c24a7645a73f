//! How weftctl reaches admin endpoints: directly over HTTP (`--controller-addr`,
//! `--proxy-admin`), or through the Kubernetes API server's pod proxy
//! (`/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<path>`), so no port-forward is needed
//! and RBAC decides who may look. In Kubernetes every controller replica is asked: each
//! serves only the proxies connected to it.

use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;

use crate::cli::Target;

/// The controller's admin port in its pod (the chart's `http-metrics`).
pub const CONTROLLER_ADMIN_PORT: u16 = 15014;
/// The label the chart puts on controller pods.
const CONTROLLER_SELECTOR: &str = "app.kubernetes.io/name=weft-controller";

/// A connection to a Kubernetes cluster: a client and the runtime its calls run on.
pub struct Kube {
    pub runtime: tokio::runtime::Runtime,
    pub client: kube::Client,
}

impl Kube {
    /// The cluster `target`'s kubeconfig (and context) names.
    pub fn connect(target: &Target) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let options = kube::config::KubeConfigOptions {
            context: target.context.clone(),
            ..Default::default()
        };
        let client = runtime.block_on(async {
            let config = match &target.kubeconfig {
                Some(path) => {
                    let kubeconfig = kube::config::Kubeconfig::read_from(path)
                        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                    kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
                }
                None => kube::Config::from_kubeconfig(&options).await,
            }
            .context("loading the kubeconfig (give --kubeconfig or --controller-addr)")?;
            let mut config = config;
            config.read_timeout = Some(target.timeout);
            config.connect_timeout = Some(target.timeout);
            kube::Client::try_from(config).context("creating the Kubernetes client")
        })?;
        Ok(Self { runtime, client })
    }

    /// `path` of `pod`'s `port`, through the API server's pod proxy.
    pub fn pod_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> anyhow::Result<String> {
        let url = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}");
        let request = http::Request::get(&url).body(Vec::new())?;
        self.runtime
            .block_on(self.client.request_text(request))
            .with_context(|| format!("GET {url} through the API server"))
    }

    /// The running controller pods in `namespace`, by name.
    pub fn controller_pods(&self, namespace: &str) -> anyhow::Result<Vec<String>> {
        let pods: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), namespace);
        let list = self
            .runtime
            .block_on(pods.list(&ListParams::default().labels(CONTROLLER_SELECTOR)))
            .with_context(|| format!("listing controller pods in {namespace}"))?;
        let running: Vec<String> = list
            .items
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| p.metadata.name)
            .collect();
        if running.is_empty() {
            bail!(
                "no running weft-controller pod in namespace {namespace} (label {CONTROLLER_SELECTOR}); is weft installed there? (--controller-namespace)"
            );
        }
        Ok(running)
    }
}

/// An HTTP GET of `http://<addr><path>`: the body of a 200 answer.
pub fn http_get(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<String> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("http://{addr}{path}");
    let mut response = agent
        .get(&url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the answer of {url}"))?;
    if status != 200 {
        bail!("GET {url} answered {status}: {}", body.trim());
    }
    Ok(body)
}

/// The controller's admin endpoint(s).
pub enum Controller {
    Direct {
        addr: String,
        timeout: Duration,
    },
    Kube {
        kube: Kube,
        namespace: String,
        pods: Vec<String>,
    },
}

impl Controller {
    pub fn find(target: &Target) -> anyhow::Result<Self> {
        match &target.controller_addr {
            Some(addr) => Ok(Self::Direct {
                addr: addr.clone(),
                timeout: target.timeout,
            }),
            None => {
                let kube = Kube::connect(target)?;
                let pods = kube.controller_pods(&target.controller_namespace)?;
                Ok(Self::Kube {
                    kube,
                    namespace: target.controller_namespace.clone(),
                    pods,
                })
            }
        }
    }

    /// `path` from every replica, each answer named by where it came from.
    pub fn get_all(&self, path: &str) -> anyhow::Result<Vec<(String, String)>> {
        match self {
            Self::Direct { addr, timeout } => {
                Ok(vec![(addr.clone(), http_get(addr, path, *timeout)?)])
            }
            Self::Kube {
                kube,
                namespace,
                pods,
            } => pods
                .iter()
                .map(|pod| {
                    let body = kube.pod_get(namespace, pod, CONTROLLER_ADMIN_PORT, path)?;
                    Ok((pod.clone(), body))
                })
                .collect(),
        }
    }

    /// `path` parsed as JSON from every replica.
    pub fn get_json(&self, path: &str) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
        self.get_all(path)?
            .into_iter()
            .map(|(from, body)| {
                let json = serde_json::from_str(&body)
                    .with_context(|| format!("{path} from {from} is not JSON"))?;
                Ok((from, json))
            })
            .collect()
    }
}
