//! What `weft-controller` and `weft-proxy` share: as processes, one-line flag errors,
//! quiet-by-default logging, waiting for SIGINT/SIGTERM and a small HTTP/1 admin server; as
//! a mesh, the gRPC and xDS vocabulary (`grpc`: status codes, names, the HTTP → gRPC
//! mapping; `xds`: type URLs), workload identities (`spiffe`), durations and certificate
//! renewal times (`time`) and the certificate service both speak (`ca_api`, generated from
//! proto/weft/ca/v1/ca.proto).

pub mod admin;
pub mod grpc;
pub mod metrics;
pub mod spiffe;
pub mod time;
pub mod xds;

/// The certificate service (`weft.ca.v1.CertificateService`): messages, client and server.
#[allow(clippy::all, missing_docs)]
pub mod ca_api {
    tonic::include_proto!("weft.ca.v1");
}

use std::process::ExitCode;

/// Prints a flag error as one line naming the binary (help and version print in full),
/// and returns the exit code: 0 for help/version, 2 for a bad flag.
pub fn cli_exit(binary: &str, err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{err}");
            ExitCode::SUCCESS
        }
        _ => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{binary}: {}", first.trim_start_matches("error: "));
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, quiet by default; `level` (a tracing filter) or `RUST_LOG` raises them.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Starts listening for SIGINT and SIGTERM now and resolves when one arrives.
///
/// Registration happens when this is called, not when the future is first polled: a
/// process that reports itself ready before it awaits this must already handle SIGTERM, or
/// a supervisor that stops it right after `/ready` kills it with the default action.
/// Must be called inside the Tokio runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    /// Resolves when `signal` arrives; never, when it could not be registered.
    async fn arrival(name: &str, signal: std::io::Result<Signal>) {
        match signal {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for {name}; the other signal still stops the process");
                std::future::pending::<()>().await;
            }
        }
    }
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        tokio::select! {
            () = arrival("SIGTERM", term) => {}
            () = arrival("SIGINT", interrupt) => {}
        }
    }
}
