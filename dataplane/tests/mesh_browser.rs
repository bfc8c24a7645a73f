//! Browsers calling the mesh: headless Chromium loads the test page (`web/test-page.js`,
//! bundled by the test with esbuild) from its own loopback origin, and the page calls the
//! tests' Echo service through a web listener, cross-origin (so with real CORS preflights),
//! with the official gRPC-Web client (binary and text modes) and Connect's gRPC-Web
//! transport: unary calls, a server stream whose first message must arrive well before its
//! end, a fault's status and message, and a deadline the page sets. The same page runs
//! against weft-proxy and against stock Envoy, both configured by weft-controller; and from
//! an origin the route does not allow, where the browser refuses the call.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::time::Duration;

use common::web::*;
use common::*;
use serde_json::Value;
use weft_tests::browser::{PageServer, bundle};

/// A page run takes a few seconds (two 600 ms streams, two 300 ms deadlines).
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Calls that carry this header meet the fault (UNAVAILABLE has an HTTP equivalent, so
/// Envoy passes it to gRPC-Web clients too; see the controller's `translate/web.rs`).
fn fault() -> String {
    fault_yaml(
        "chaos",
        "  targetRef: {kind: GrpcRoute, name: greeter}\n  \
         match: {method: {method: Unary}, headers: [{name: x-fault, value: 'yes'}]}\n  \
         abort: {grpcStatus: UNAVAILABLE, message: slow down}\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_calls_the_mesh_through_weft_proxy() {
    page_calls_the_mesh(Side::Weft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_page_calls_the_mesh_through_envoy() {
    page_calls_the_mesh(Side::Envoy).await;
}

async fn page_calls_the_mesh(side: Side) {
    let script = bundle().unwrap();
    let page = PageServer::start([127, 0, 0, 1], script.clone()).unwrap();
    // Another loopback address is another origin, which the route does not allow.
    let stranger = PageServer::start([127, 0, 0, 2], script).unwrap();
    let route = web_route_yaml(&[&page.origin()], &["x-fault"]);
    let m = WebMesh::start(side, &route, &[("fault.yaml", fault())]).await;
    m.wait_web_routes("the fault on the web routes", |routes| {
        routes.contains("+fault:default/chaos")
    });
    let dir = tempfile::tempdir().unwrap();
    let target = format!("target=http://{}", m.web);

    let report = tokio::task::block_in_place(|| {
        page.run(&format!("{target}&run=all"), dir.path(), PAGE_TIMEOUT)
    })
    .unwrap();
    eprintln!("[{side:?}] page report: {report:#}");
    assert!(report.get("page_error").is_none(), "{report:#}");

    for call in ["web_binary_unary", "web_text_unary", "connect_unary"] {
        assert_eq!(report[call]["instance"], "v1", "{call}: {report:#}");
    }
    for stream in ["web_text_stream", "connect_stream"] {
        let seen = &report[stream];
        assert_eq!(
            seen["instances"],
            serde_json::json!(["v2", "v2", "v2"]),
            "{stream}: {seen}"
        );
        assert_eq!(seen["code"], 0, "{stream}: {seen}");
        // Three messages 300 ms apart: the first reached the page at least 500 ms before the
        // stream ended, so nothing held the stream back whole.
        let first = seen["times"][0].as_i64().unwrap();
        let end = seen["end"].as_i64().unwrap();
        assert!(
            end - first >= 500,
            "{stream}: first message {first} ms, end {end} ms"
        );
    }
    for call in ["web_fault", "connect_fault"] {
        assert_eq!(report[call]["code"], 14, "{call}: {report:#}");
    }
    // The fault's message reaches both clients through weft-proxy. Through Envoy, the
    // official client reads an Envoy local reply by its HTTP status alone (503), so it sees
    // its own text; Connect gets the message (see the controller's `translate/web.rs`).
    assert_eq!(
        report["connect_fault"]["message"], "slow down",
        "{report:#}"
    );
    if side == Side::Weft {
        assert_eq!(report["web_fault"]["message"], "slow down", "{report:#}");
    }
    for call in ["web_deadline", "connect_deadline"] {
        // Through Envoy the backend (tonic) runs the same forwarded `grpc-timeout` and may
        // end the call first, with CANCELLED "Timeout expired" (README, gRPC-Web: Envoy).
        let backend_first = side == Side::Envoy
            && report[call]["code"] == 1
            && report[call]["message"] == "Timeout expired";
        assert!(
            report[call]["code"] == 4 || backend_first,
            "{call}: {report:#}"
        );
    }

    // From an origin the route does not allow, the browser refuses the call (the preflight
    // gets no CORS headers): the client sees an error, never a reply.
    let refused = tokio::task::block_in_place(|| {
        stranger.run(&format!("{target}&run=refused"), dir.path(), PAGE_TIMEOUT)
    })
    .unwrap();
    let call: &Value = &refused["web_binary_unary"];
    assert!(call.get("instance").is_none(), "{refused:#}");
    assert!(
        call["code"].as_i64().is_some_and(|code| code != 0),
        "{refused:#}"
    );
}
