//! `weft-bench`: the benchmark orchestrator (run by `bench/run`). `run` measures the data
//! plane and the control plane and writes RESULTS.md; `serve` and `pingpong` are the rig's
//! own server and streaming client, started by `run` as pinned child processes;
//! `symbol-order` records weft-proxy's hot-first code layout (scripts/proxy-symbol-order).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use weft_bench::dp::{client, openloop, server};
use weft_bench::runner::{self, RunArgs};
use weft_bench::symbol_order;

#[derive(Debug, Parser)]
#[command(
    name = "weft-bench",
    about = "weft's benchmark rig (see bench/README.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the benchmarks and write RESULTS.md.
    Run(RunArgs),
    /// Serve weft.test.Echo on ADDR (single-threaded) until SIGTERM.
    Serve {
        #[arg(long)]
        addr: SocketAddr,
    },
    /// Open-loop unary calls at RATE through TARGET; prints a JSON report.
    Openloop {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        authority: String,
        #[arg(long)]
        rate: u32,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value_t = 2000)]
        warmup_ms: u64,
        #[arg(long, default_value_t = 10000)]
        duration_ms: u64,
    },
    /// Run the rig's weft-proxies under callgrind and write the functions they ran, busiest
    /// first, to OUT (the linker's order for weft-proxy's code; needs valgrind and nm).
    SymbolOrder {
        #[arg(long, default_value = "dataplane/link/symbol-order.txt")]
        out: PathBuf,
    },
    /// Bidi ping-pong through TARGET; prints a JSON report.
    Pingpong {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        authority: String,
        #[arg(long, default_value_t = 4)]
        streams: usize,
        #[arg(long, default_value_t = 2000)]
        warmup_ms: u64,
        #[arg(long, default_value_t = 10000)]
        duration_ms: u64,
    },
}

fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Cmd::Run(args) => runner::run(&args),
        Cmd::SymbolOrder { out } => symbol_order::record(&out),
        Cmd::Serve { addr } => current_thread().and_then(|rt| rt.block_on(server::serve(addr))),
        Cmd::Openloop {
            target,
            authority,
            rate,
            connections,
            warmup_ms,
            duration_ms,
        } => current_thread().and_then(|rt| {
            let report = rt.block_on(openloop::open_loop(
                target,
                &authority,
                rate,
                connections,
                Duration::from_millis(warmup_ms),
                Duration::from_millis(duration_ms),
            ))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }),
        Cmd::Pingpong {
            target,
            authority,
            streams,
            warmup_ms,
            duration_ms,
        } => current_thread().and_then(|rt| {
            let report = rt.block_on(client::pingpong(
                target,
                &authority,
                streams,
                Duration::from_millis(warmup_ms),
                Duration::from_millis(duration_ms),
            ))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weft-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
