//! The chart's Grafana dashboards and alert rules against a real Prometheus that scrapes a
//! weft-controller and two weft-proxies while traffic flows through them: A (ServiceAccount
//! `client`) calls Service `greeter`, whose endpoint is B's inbound listener (mTLS) in front
//! of an echo backend. The traffic has an injected fault (20% of Unary aborted), organic
//! errors that are retried (the app answers RESOURCE_EXHAUSTED, which the route retries) and
//! deadlines that pass (a delay fault on ServerStream outlasts the client's `grpc-timeout`).
//!
//! Then every panel of every dashboard, its variables substituted as Grafana would (a
//! variable with an "All" value takes it, the others their first value), is run through
//! Prometheus' HTTP API: none may fail or come back empty. The metrics of all three
//! processes pass `promtool check metrics`; `/metrics` answers OpenMetrics to Prometheus'
//! `Accept` header. A's access log holds every RPC, with the `traceparent` one carried (which
//! the backend got untouched) and the deadline's cause. Last, a proxy NACKs a route and the `WeftXdsConfigRejected` alert fires,
//! and once Service greeter is removed its series leave A's `/metrics`.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use weft_tests::backend::{Backend, request};
use weft_tests::panel_pictures;
use weft_tests::process::wait_until;
use weft_tests::prometheus::{Prometheus, ScrapeJob};
use weft_tests::tools;

const DASHBOARDS: [&str; 3] = [
    "weft-mesh.json",
    "weft-service.json",
    "weft-control-plane.json",
];
/// What `$__rate_interval` becomes: the whole run fits in it.
const RATE_INTERVAL: &str = "1m";
const TRAFFIC_FOR: Duration = Duration::from_secs(6);
/// Traffic when drawing the README's pictures, and the window rates are taken over in them.
const PICTURE_TRAFFIC: Duration = Duration::from_secs(60);
const PICTURE_RATE_INTERVAL: &str = "15s";
const MAX_CALLS: usize = 5_000;
/// The client's deadline on the calls meant to time out, and the delay a fault adds to them.
const SHORT_DEADLINE: Duration = Duration::from_millis(30);
const FAULT_DELAY: Duration = Duration::from_millis(200);
/// The deadline of every other call.
const CALL_DEADLINE: Duration = Duration::from_secs(5);
const ALERT_TIMEOUT: Duration = Duration::from_secs(30);

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/weft")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboards_alerts_and_the_access_log_work_against_real_prometheus() {
    let backend = Backend::start("server").await.unwrap();
    let mut mesh = Mesh::with_mtls();
    mesh.write(
        "route.yaml",
        &route_yaml(
            "greeter",
            "  - backendRefs: [{name: greeter, port: 50051}]\n    \
             retry: {attempts: 2, codes: [RESOURCE_EXHAUSTED], backoff: 5ms}\n",
        ),
    );
    mesh.write(
        "fault.yaml",
        &fault_yaml(
            "chaos",
            "  targetRef: {kind: Service, name: greeter}\n  \
             match: {method: {service: weft.test.Echo, method: Unary}}\n  \
             abort: {grpcStatus: UNAVAILABLE, message: chaos, percentage: 20}\n",
        ),
    );
    mesh.write(
        "slow.yaml",
        &fault_yaml(
            "slow",
            &format!(
                "  targetRef: {{kind: Service, name: greeter}}\n  \
                 match: {{method: {{service: weft.test.Echo, method: ServerStream}}}}\n  \
                 delay: {{fixedDelay: {}ms, percentage: 100}}\n",
                FAULT_DELAY.as_millis()
            ),
        ),
    );
    let rules = chart_dir().join("files/weft-alerts.rules.yaml");
    let access_log = mesh.log_path("client-0.access");
    let (a, prometheus) = blocking(|| {
        mesh.start_controller();
        let b = mesh.start_proxy(
            ProxyOptions::new("server-0")
                .service_account("server")
                .app(backend.addr())
                .labels("app=greeter")
                .no_wait(),
        );
        let b_inbound = mesh.proxy(b).inbound;
        mesh.write("services.yaml", &service_yaml("greeter", &[b_inbound]));
        mesh.proxies[b].wait_ready();
        let a = mesh.start_proxy(
            ProxyOptions::new("client-0")
                .service_account("client")
                .arg(&format!("--access-log={}", access_log.display())),
        );
        mesh.proxy(a).warm(GREETER);
        mesh.proxy(a)
            .wait_config_for(GREETER, "greeter's retry and fault", |dump| {
                has_fault(dump) && routes(dump).iter().any(|r| !r["retry"].is_null())
            });
        let targets = [
            mesh.controller().admin_addr,
            mesh.proxy(a).admin_addr,
            mesh.proxy(b).admin_addr,
        ];
        let prometheus =
            Prometheus::start_with_rules(&[ScrapeJob::new("weft", &targets)], &[&rules]).unwrap();
        prometheus
            .wait_targets_up(Duration::from_secs(15))
            .unwrap_or_else(|err| panic!("{err:#}\n{}", prometheus.log_tail(20)));
        (a, prometheus)
    });

    // `WEFT_DASHBOARD_PICTURES=<dir>`: also draw the mesh overview's panels into <dir> (the
    // README's pictures), after a minute of traffic so the lines have a shape.
    let pictures = std::env::var_os("WEFT_DASHBOARD_PICTURES").map(PathBuf::from);
    let traffic_for = if pictures.is_some() {
        PICTURE_TRAFFIC
    } else {
        TRAFFIC_FOR
    };
    let traffic_started = Instant::now();
    let outcomes = traffic(mesh.proxy(a).outbound.port(), traffic_for).await;
    println!("traffic: {outcomes:?}");
    for wanted in [
        "OK",
        "UNAVAILABLE",
        "RESOURCE_EXHAUSTED",
        "DEADLINE_EXCEEDED",
    ] {
        assert!(
            outcomes.iter().any(|(code, _)| code == wanted),
            "no call ended {wanted}: {outcomes:?}"
        );
    }

    // The trace context passes through untouched and lands in A's access log, with the
    // RPCs the traffic ended by deadline.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut client = client(mesh.proxy(a).outbound.port(), GREETER).await;
    // The fault may abort it: retry until one gets through (each is logged).
    let mut echoed = None;
    for _ in 0..20 {
        let mut call = tonic::Request::new(request("traced"));
        call.metadata_mut()
            .insert("traceparent", traceparent.parse().unwrap());
        call.set_timeout(CALL_DEADLINE);
        if let Ok(reply) = client.unary(call).await {
            echoed = reply
                .metadata()
                .get(weft_tests::backend::TRACEPARENT_ECHO_HEADER)
                .map(|v| v.to_str().unwrap().to_owned());
            break;
        }
    }
    assert_eq!(
        echoed.as_deref(),
        Some(traceparent),
        "the backend's traceparent"
    );
    let lines = blocking(|| {
        let mut lines = Vec::new();
        wait_until(
            "the traced RPC in A's access log",
            Duration::from_secs(5),
            || {
                let text = std::fs::read_to_string(&access_log).unwrap_or_default();
                lines = text
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .collect::<Vec<_>>();
                Ok(lines
                    .iter()
                    .any(|l| l["traceparent"] == traceparent && l["grpc_code"] == "OK"))
            },
        )
        .unwrap();
        lines
    });
    let calls: usize = outcomes.iter().map(|(_, n)| n).sum();
    assert!(
        lines.len() > calls,
        "{} lines for {calls} calls",
        lines.len()
    );
    let traced = lines
        .iter()
        .find(|l| l["traceparent"] == traceparent && l["grpc_code"] == "OK");
    let traced = traced.unwrap();
    assert_eq!(traced["path"], "/weft.test.Echo/Unary");
    assert_eq!(traced["direction"], "outbound");
    assert_eq!(traced["destination_service"], GREETER);
    assert_eq!(traced["connection_security"], "mtls");
    assert!(
        lines
            .iter()
            .any(|l| l["grpc_code"] == "DEADLINE_EXCEEDED"
                && l["timeout_cause"] == "client_deadline"),
        "no deadline in the access log"
    );

    blocking(|| {
        // Everything the proxies counted has been scraped once A's count is in Prometheus.
        let calls: usize = outcomes.iter().map(|(_, n)| n).sum();
        wait_until(
            "Prometheus to scrape all calls",
            Duration::from_secs(10),
            || {
                let scraped = prometheus
                    .query_vector("sum(weft_proxy_rpcs_total{direction=\"outbound\"})")?;
                Ok(scraped.first().is_some_and(|(_, v)| *v as usize >= calls))
            },
        )
        .unwrap();

        let mut failures = Vec::new();
        let mut panels = 0;
        for name in DASHBOARDS {
            let path = chart_dir().join("dashboards").join(name);
            let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            let values = variable_values(&prometheus, name, &dashboard, &mut failures);
            for (title, expr) in panel_queries(&dashboard) {
                panels += 1;
                let promql = substitute(&expr, &values);
                match prometheus.query(&promql) {
                    Ok(result) if result.as_array().is_some_and(|r| !r.is_empty()) => {}
                    Ok(result) => failures.push(format!(
                        "{name} / {title}: no data from {promql} ({result})"
                    )),
                    Err(err) => failures.push(format!("{name} / {title}: {err:#}")),
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {panels} panel queries failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
        println!("{panels} panel queries answered with data");

        if let Some(dir) = &pictures {
            draw_overview(&prometheus, dir, traffic_started.elapsed());
        }

        for (process, addr) in [
            ("weft-controller", mesh.controller().admin_addr),
            ("weft-proxy A", mesh.proxy(a).admin_addr),
        ] {
            check_metrics(process, addr);
        }
    });

    // A NACK fires WeftXdsConfigRejected.
    mesh.write("route.yaml", &nacked_route("greeter"));
    blocking(|| {
        let mut firing = Vec::new();
        wait_until("WeftXdsConfigRejected to fire", ALERT_TIMEOUT, || {
            firing = prometheus.firing_alerts()?;
            Ok(firing.iter().any(|a| a == "WeftXdsConfigRejected"))
        })
        .unwrap_or_else(|err| panic!("{err:#}; firing: {firing:?}"));

        // Removing the Service drops its series from A's /metrics.
        let greeter_series = "direction=\"outbound\",destination_service=\"greeter.";
        let (_, before) = mesh.proxy(a).admin("/metrics").unwrap();
        assert!(before.contains(greeter_series), "{before}");
        mesh.remove("services.yaml");
        wait_until(
            "greeter's series to leave A's /metrics",
            CONFIG_TIMEOUT,
            || {
                let (_, text) = mesh.proxy(a).admin("/metrics")?;
                Ok(!text.contains(greeter_series))
            },
        )
        .unwrap();
    });
}

/// Calls through A's outbound listener for `traffic_for`: of every ten calls, one Unary
/// asks the app for RESOURCE_EXHAUSTED (retried, then failing), one ServerStream sends a
/// 30 ms `grpc-timeout` and meets the 200 ms delay fault (A answers DEADLINE_EXCEEDED); the
/// rest are plain Unary calls (20% aborted by the fault). Returns the count of each final
/// code.
async fn traffic(port: u16, traffic_for: Duration) -> Vec<(String, usize)> {
    let mut client = client(port, GREETER).await;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let started = Instant::now();
    for i in 0..MAX_CALLS {
        if started.elapsed() >= traffic_for {
            break;
        }
        let mut message = request("dashboards");
        if i % 10 == 3 {
            message.fail_code = tonic::Code::ResourceExhausted as i32;
            message.fail_message = "organic".into();
        }
        let code = if i % 10 == 7 {
            // Built by hand so that no client-side timer races the proxy's answer: tonic
            // would cancel the call at its own deadline.
            let timeout = format!("{}m", SHORT_DEADLINE.as_millis());
            let path = "/weft.test.Echo/ServerStream";
            match raw_unary(port, GREETER, path, &message, &[("grpc-timeout", &timeout)]).await {
                Ok(answer) => match answer.grpc_status().and_then(|c| c.parse().ok()) {
                    Some(code) => weft_common::grpc::code_name(code).to_owned(),
                    None => format!("no grpc-status: {answer:?}"),
                },
                Err(err) => format!("test: {err:#}"),
            }
        } else {
            let mut call = tonic::Request::new(message);
            call.set_timeout(CALL_DEADLINE);
            match client.unary(call).await {
                Ok(_) => "OK".to_owned(),
                Err(status) => weft_common::grpc::code_name(status.code() as u32).to_owned(),
            }
        };
        *outcomes.entry(code).or_default() += 1;
    }
    outcomes.into_iter().collect()
}

/// Each template variable's value, as Grafana would pick it: its "All" value when it has one,
/// else the first value its `label_values(...)` query lists. A variable query that fails or
/// lists nothing is a failure.
fn variable_values(
    prometheus: &Prometheus,
    dashboard: &str,
    json: &Value,
    failures: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut values = vec![("__rate_interval".to_owned(), RATE_INTERVAL.to_owned())];
    for variable in json["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"].as_str().unwrap().to_owned();
        let definition = substitute(variable["definition"].as_str().unwrap(), &values);
        let listed = parse_label_values(&definition)
            .ok_or_else(|| anyhow::anyhow!("not a label_values(...) query"))
            .and_then(|(selector, label)| prometheus.label_values(&selector, &label));
        let first = match listed {
            Ok(listed) if !listed.is_empty() => listed[0].clone(),
            Ok(_) => {
                failures.push(format!(
                    "{dashboard}: variable {name} lists nothing: {definition}"
                ));
                String::new()
            }
            Err(err) => {
                failures.push(format!("{dashboard}: variable {name}: {err:#}"));
                String::new()
            }
        };
        let value = variable["allValue"].as_str().map_or(first, str::to_owned);
        values.push((name, value));
    }
    values
}

/// Draws every time-series panel of the mesh overview, over the last `window` (the traffic
/// and what followed), as
/// `<dir>/weft-mesh-<n>.svg` (`n` the panel id).
fn draw_overview(prometheus: &Prometheus, dir: &Path, window: Duration) {
    std::fs::create_dir_all(dir).unwrap();
    let path = chart_dir().join("dashboards/weft-mesh.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut failures = Vec::new();
    let values = variable_values(prometheus, "weft-mesh.json", &dashboard, &mut failures);
    let values: Vec<(String, String)> = values
        .into_iter()
        .map(|(name, value)| match name.as_str() {
            "__rate_interval" => (name, PICTURE_RATE_INTERVAL.to_owned()),
            _ => (name, value),
        })
        .collect();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "timeseries" {
            continue;
        }
        let mut series = Vec::new();
        for target in panel["targets"].as_array().unwrap() {
            let promql = substitute(target["expr"].as_str().unwrap(), &values);
            let format = target["legendFormat"].as_str().unwrap_or_default();
            for (labels, points) in prometheus
                .query_range(&promql, window.as_secs_f64(), 1.0)
                .unwrap()
            {
                series.push((panel_pictures::legend(format, &labels), points));
            }
        }
        let title = panel["title"].as_str().unwrap();
        let unit = panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or("");
        let svg = panel_pictures::render(title, unit, &series)
            .unwrap_or_else(|| panic!("panel {title} has no data to draw"));
        let file = dir.join(format!("weft-mesh-{}.svg", panel["id"]));
        std::fs::write(&file, svg).unwrap();
        println!("drew {title} into {}", file.display());
    }
}

/// `(selector, label)` of `label_values(selector, label)`.
fn parse_label_values(definition: &str) -> Option<(String, String)> {
    let inner = definition
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_owned(), label.trim().to_owned()))
}

/// `$name` and `${name}` replaced by their values, longest names first.
fn substitute(expr: &str, values: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = values.iter().collect();
    sorted.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_owned();
    for (name, value) in sorted {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// Every panel's `(title, expr)`, one per target.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| t["expr"].as_str().map(|e| (title.clone(), e.to_owned())))
        })
        .collect()
}

/// `promtool check metrics` passes on the text format, and Prometheus' `Accept` header gets
/// OpenMetrics.
fn check_metrics(process: &str, addr: std::net::SocketAddr) {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let url = format!("http://{addr}/metrics");
    let mut text = agent.get(&url).call().unwrap();
    let content_type = text.headers().get("content-type").cloned();
    let text = text.body_mut().read_to_string().unwrap();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "{process}"
    );
    for family in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("\n{family} ")),
            "{process}: no {family}:\n{text}"
        );
    }
    let build_info = if process.starts_with("weft-controller") {
        "weft_controller_build_info{version="
    } else {
        "weft_proxy_build_info{version="
    };
    assert!(
        text.contains(build_info),
        "{process}: no build info:\n{text}"
    );

    let mut promtool = Command::new(tools::tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics on {process}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut openmetrics = agent
        .get(&url)
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .call()
        .unwrap();
    let content_type = openmetrics.headers().get("content-type").cloned();
    let body = openmetrics.body_mut().read_to_string().unwrap();
    assert!(
        content_type
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/openmetrics-text")),
        "{process}: {content_type:?}"
    );
    assert!(
        body.ends_with("# EOF\n"),
        "{process}: OpenMetrics without # EOF"
    );
}
