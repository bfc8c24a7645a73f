//! weft-proxy keeps serving when its control plane fails: under steady load, the controller
//! is SIGKILLed and restarted on the same ports — no RPC fails, the proxy reconnects
//! (`weft_proxy_xds_connected` back to 1) and follows new config, and it never drains its
//! client connections. A bad update (one the controller accepts but weft-proxy cannot
//! use) is NACKed with a reason visible in the controller's `/debug/proxies`, and calls keep
//! the previous routing until a good update arrives.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use weft_tests::backend::Backend;
use weft_tests::process::wait_until;

const CLIENTS: usize = 4;
/// Load runs at least this long, and until the proxy has reconnected.
const LOAD_AT_LEAST: Duration = Duration::from_secs(6);
/// Bounds on the load, whatever happens.
const LOAD_AT_MOST: Duration = Duration::from_secs(40);
const MAX_CALLS_PER_CLIENT: usize = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_loss_and_restart_do_not_disturb_traffic() {
    let v1 = Backend::start("v1").await.unwrap();
    let v2 = Backend::start("v2").await.unwrap();
    let mut mesh = Mesh::new();
    mesh.write("services.yaml", &greeter_services(v1.addr(), v2.addr()));
    mesh.write("route.yaml", &weighted_route(100, 0));
    blocking(|| {
        mesh.start_controller();
        mesh.start_proxy(ProxyOptions::new("client-0"));
    });
    let port = mesh.proxy(0).outbound.port();
    let connected = |mesh: &Mesh| mesh.proxy(0).metrics().sum("weft_proxy_xds_connected", &[]);
    blocking(|| {
        mesh.proxy(0).wait_metric(
            "weft_proxy_xds_connected",
            &[],
            Duration::from_secs(5),
            |v| v == 1.0,
        )
    });

    // Steady load: CLIENTS connections, each looping unary calls until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut connection_counts = Vec::new();
    for i in 0..CLIENTS {
        let (mut client, connections) = counted_client(port, GREETER).await;
        connection_counts.push(connections);
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failures) = (0usize, Vec::new());
            for n in 0..MAX_CALLS_PER_CLIENT {
                if stop.load(Ordering::SeqCst) || started.elapsed() > LOAD_AT_MOST {
                    break;
                }
                let message = format!("client {i} call {n}");
                match unary(&mut client, request(&message), Duration::from_secs(5)).await {
                    Ok(reply) if reply.instance == "v1" => ok += 1,
                    Ok(reply) => {
                        failures.push(format!("{message}: answered by {}", reply.instance))
                    }
                    Err(status) => failures.push(format!(
                        "{message} at {:?}: {:?} {}",
                        started.elapsed(),
                        status.code(),
                        status.message()
                    )),
                }
            }
            (ok, failures)
        }));
    }

    // The controller dies mid-run, without a goodbye.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (xds, admin) = {
        let controller = mesh.controller.as_ref().unwrap();
        (controller.xds_addr, controller.admin_addr)
    };
    blocking(|| {
        mesh.controller.as_mut().unwrap().kill();
        mesh.proxy(0).wait_metric(
            "weft_proxy_xds_connected",
            &[],
            Duration::from_secs(5),
            |v| v == 0.0,
        );
    });
    let killed_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        blocking(|| mesh.proxy(0).ready()).0,
        200,
        "a proxy that lost its controller must stay ready with the last good config"
    );

    // Back on the same ports: the proxy reconnects by itself.
    blocking(|| {
        mesh.restart_controller(xds, admin);
        mesh.proxy(0).wait_metric(
            "weft_proxy_xds_connected",
            &[],
            Duration::from_secs(20),
            |v| v == 1.0,
        );
    });
    let reconnected_at = started.elapsed();
    if let Some(rest) = LOAD_AT_LEAST.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);

    let mut total = 0;
    let mut failures = Vec::new();
    for task in tasks {
        let (ok, failed) = task.await.unwrap();
        total += ok;
        failures.extend(failed);
    }
    println!(
        "{total} calls OK over {:?}; controller killed at {killed_at:?}, proxy reconnected at \
         {reconnected_at:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} calls failed while the controller was lost and restarted:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(total >= 100, "only {total} calls in the whole run");
    let connections: Vec<usize> = connection_counts
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .collect();
    assert_eq!(
        connections,
        vec![1; CLIENTS],
        "client connections were closed or drained (connections opened per client)"
    );
    assert_eq!(blocking(|| connected(&mesh)), 1.0);

    // The new xDS session is live: a route change after the restart reaches the proxy.
    mesh.write("route.yaml", &weighted_route(0, 100));
    let mut client = client(port, GREETER).await;
    wait_async("calls to follow the new route", CONFIG_TIMEOUT, || {
        let mut client = client.clone();
        async move {
            unary(&mut client, request("after"), Duration::from_secs(5))
                .await
                .is_ok_and(|reply| reply.instance == "v2")
        }
    })
    .await;
    let reply = unary(&mut client, request("after"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.instance, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_update_is_nacked_and_the_last_good_config_stays_over_delta() {
    rejected_update("delta", "Delta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_update_is_nacked_and_the_last_good_config_stays_over_sotw() {
    rejected_update("sotw", "Sotw").await;
}

/// GrpcRoute `other` on Service greeter-v1: Unary to `backend`.
fn other_route(backend: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {{name: other, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: greeter-v1, port: 50051}}]\n  rules:\n  \
         - matches: [{{method: {{service: weft.test.Echo, method: Unary}}}}]\n    \
         backendRefs: [{{name: {backend}, port: 50051}}]\n"
    )
}

/// `(status, reason, message)` of the `Programmed` condition of `resource` at the
/// controller's `/debug/resources`.
fn programmed(mesh: &Mesh, resource: &str) -> (String, String, String) {
    let (_, body) = mesh.controller().admin("/debug/resources").unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entry = json["resources"]
        .as_array()
        .and_then(|list| list.iter().find(|r| r["resource"] == resource));
    let p = entry.map_or(serde_json::Value::Null, |e| e["programmed"].clone());
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    (text(&p["status"]), text(&p["reason"]), text(&p["message"]))
}

/// The NACK scenario with the proxy speaking `protocol` (the controller shows `shown`).
/// Over Delta the rejected virtual host is greeter's alone: a route change to greeter-v1,
/// in the same namespace, is applied by the same proxy within a second and stays
/// `Programmed`, while only greeter's route is `Rejected`.
async fn rejected_update(protocol: &str, shown: &str) {
    let delta = protocol == "delta";
    let nacked_type = if delta { "VHDS" } else { "RDS" };
    let v1 = Backend::start("v1").await.unwrap();
    let v2 = Backend::start("v2").await.unwrap();
    let mut mesh = Mesh::new();
    mesh.write("services.yaml", &greeter_services(v1.addr(), v2.addr()));
    mesh.write("route.yaml", &weighted_route(100, 0));
    mesh.write("other.yaml", &other_route("greeter-v1"));
    blocking(|| {
        mesh.start_controller();
        mesh.start_proxy(ProxyOptions::new("client-0").xds_protocol(protocol));
    });
    let status = blocking(|| mesh.controller().proxy_status("client-0.default")).unwrap();
    assert_eq!(status["protocol"], shown, "{status:#}");
    let port = mesh.proxy(0).outbound.port();
    let mut client = client(port, GREETER).await;
    let split = unary_split(&mut client, 10).await;
    assert_eq!(split.get("v1"), Some(&10), "{split:?}");
    let mut other = common::client(port, "greeter-v1.default.svc.cluster.local:50051").await;
    let split = unary_split(&mut other, 5).await;
    assert_eq!(split.get("v1"), Some(&5), "{split:?}");
    let good_dump = blocking(|| mesh.proxy(0).debug_config());

    mesh.write("route.yaml", &nacked_route("greeter-v2"));
    let mut last = serde_json::Value::Null;
    blocking(|| {
        let controller = mesh.controller();
        wait_until("the proxy's NACK at the controller", CONFIG_TIMEOUT, || {
            last = controller
                .proxy_status("client-0.default")
                .unwrap_or_default();
            Ok(!last["types"][nacked_type]["last_nack"].is_null())
        })
    })
    .unwrap_or_else(|err| {
        let (_, resources) = mesh.controller().admin("/debug/resources").unwrap();
        panic!(
            "{err:#}\n/debug/proxies entry: {last:#}\n/debug/resources: {resources}\n\
             (if the proxy ACKed, it compiled the regex: pick another update it rejects)"
        )
    });
    let nack = &last["types"][nacked_type]["last_nack"];
    let reason = nack["message"].as_str().unwrap_or_default();
    println!("NACK: {nack}");
    assert!(
        reason.contains("regular expression") || reason.contains("regex"),
        "the NACK reason does not say what is wrong: {nack}"
    );
    assert!(
        reason.contains("x-tenant") || reason.contains("\\w{3,24}") || reason.contains("headers"),
        "the NACK reason does not name the offending match: {nack}"
    );

    // The last good config stays in force: Unary still goes to v1.
    let split = unary_split(&mut client, 20).await;
    assert_eq!(split.get("v1"), Some(&20), "after the NACK: {split:?}");
    let dump = blocking(|| mesh.proxy(0).debug_config());
    assert_eq!(
        dump["outbound_routes"], good_dump["outbound_routes"],
        "the routes in force changed after a NACK"
    );
    assert_eq!(blocking(|| mesh.proxy(0).ready()).0, 200);
    let metrics = blocking(|| mesh.proxy(0).metrics());
    let updates = metrics.series("weft_proxy_xds_updates_total", &[]);
    println!(
        "weft_proxy_xds_updates_total: {:?}",
        updates
            .iter()
            .map(|s| (&s.labels, s.value))
            .collect::<Vec<_>>()
    );
    assert!(
        updates.iter().any(|s| {
            let result = s.labels.get("result").map(String::as_str).unwrap_or("");
            s.value > 0.0 && (result.contains("nack") || result.contains("reject"))
        }),
        "weft_proxy_xds_updates_total counts no rejected update:\n{}",
        metrics.text
    );

    if delta {
        // Another Service's route change is applied by the same proxy within a second.
        mesh.write("other.yaml", &other_route("greeter-v2"));
        let changed = Instant::now();
        wait_async("greeter-v1's route change", Duration::from_secs(1), || {
            let mut other = other.clone();
            async move {
                unary(&mut other, request("other"), Duration::from_secs(1))
                    .await
                    .is_ok_and(|reply| reply.instance == "v2")
            }
        })
        .await;
        println!("greeter-v1's change applied in {:?}", changed.elapsed());
        let (status, reason, message) = blocking(|| programmed(&mesh, "GrpcRoute default/greeter"));
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "Rejected"),
            "{message}"
        );
        assert!(message.contains("client-0.default"), "{message}");
        let (status, reason, message) = blocking(|| programmed(&mesh, "GrpcRoute default/other"));
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "Programmed"),
            "{message}"
        );
    }

    // A good update after the bad one is applied.
    mesh.write("route.yaml", &weighted_route(0, 100));
    wait_async("calls to follow the fixed route", CONFIG_TIMEOUT, || {
        let mut client = client.clone();
        async move {
            unary(&mut client, request("fixed"), Duration::from_secs(5))
                .await
                .is_ok_and(|reply| reply.instance == "v2")
        }
    })
    .await;
}
