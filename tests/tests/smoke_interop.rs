//! Smoke tests for the gRPC interop component: grpc-go's interop client passes its cases
//! against grpc-go's interop server directly (no proxy), so any later failure through a
//! proxy is the proxy's.

use std::time::Instant;

use weft_tests::interop::{InteropClient, InteropServer, NO_CREDENTIAL_CASES, run_interop_client};

#[test]
fn basic_cases_pass_against_the_server_directly() {
    let server = InteropServer::start().expect("start interop server");
    assert!(server.addr().ip().is_loopback());
    for case in ["empty_unary", "large_unary", "server_streaming"] {
        if let Err(err) = run_interop_client("127.0.0.1", server.port(), case) {
            panic!("{case}: {err:#}\nserver log:\n{}", server.log_tail(20));
        }
    }
}

#[test]
fn every_no_credential_case_passes_against_the_server_directly() {
    let server = InteropServer::start().expect("start interop server");
    let client = InteropClient::new("127.0.0.1", server.port());
    let mut failures = Vec::new();
    for case in NO_CREDENTIAL_CASES {
        let started = Instant::now();
        let result = client.run(case);
        println!(
            "{case}: {} in {:?}",
            if result.is_ok() { "ok" } else { "FAILED" },
            started.elapsed()
        );
        if let Err(err) = result {
            failures.push(format!("{case}: {err:#}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nserver log:\n{}",
        failures.join("\n"),
        server.log_tail(20)
    );
}

#[test]
fn a_failing_case_reports_the_client_output() {
    let server = InteropServer::start().expect("start interop server");
    let err = run_interop_client("127.0.0.1", server.port(), "no_such_case")
        .expect_err("an unknown case fails");
    let message = format!("{err:#}");
    assert!(message.contains("Unsupported test case"), "{message}");

    let closed = weft_tests::process::free_port();
    let err = run_interop_client("127.0.0.1", closed, "empty_unary")
        .expect_err("nothing listens on the port");
    let message = format!("{err:#}");
    assert!(message.contains("connection refused"), "{message}");
}
