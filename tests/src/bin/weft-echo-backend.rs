//! `weft-echo-backend`: the gRPC test backend (tests/src/backend.rs) as a program, for the
//! local demo mesh and manual checks with grpcurl. Runs until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use weft_tests::backend::Backend;

/// Answers weft.test.Echo calls, naming itself in every reply.
#[derive(Debug, Parser)]
#[command(name = "weft-echo-backend", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// The instance name sent back in replies and in the x-weft-instance header.
    #[arg(long, default_value = "echo")]
    instance: String,
    /// Delay every answer by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => return weft_common::cli_exit("weft-echo-backend", err),
    };
    let shutdown = weft_common::shutdown_signal();
    let backend = match Backend::start_on(&args.instance, args.addr).await {
        Ok(backend) => backend,
        Err(err) => {
            eprintln!("weft-echo-backend: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    backend.set_delay(Duration::from_millis(args.delay_ms));
    eprintln!(
        "weft-echo-backend {}: serving weft.test.Echo on {}",
        backend.instance(),
        backend.addr()
    );
    shutdown.await;
    ExitCode::SUCCESS
}
