//! `ads-load`: the control-plane load tool. N simulated proxies (Delta ADS streams that
//! subscribe and ACK like Envoy) against a running weft-controller in local mode; changes
//! its config files and times each change to the last ACK. Prints a JSON report
//! (`weft_bench::ads::report::LoadReport`) on stdout; `weft-bench` runs it on its own core.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use weft_bench::ads::scenario::{Scenario, run};
use weft_bench::meshconfig::ControlPlaneConfig;

/// Simulates N proxies against weft-controller and times config changes.
#[derive(Debug, Parser)]
#[command(name = "ads-load")]
struct Args {
    /// The controller's xDS address.
    #[arg(long)]
    xds_addr: SocketAddr,
    /// The controller's config directory (the config of `weft-bench`'s control-plane run).
    #[arg(long)]
    config_dir: PathBuf,
    /// The controller's pid (CPU and RSS are read from /proc).
    #[arg(long)]
    controller_pid: u32,
    #[arg(long, default_value_t = 100)]
    proxies: usize,
    #[arg(long, default_value_t = 10)]
    namespaces: u32,
    #[arg(long, default_value_t = 100)]
    services_per_namespace: u32,
    #[arg(long, default_value_t = 10)]
    endpoints: u32,
    /// Repetitions of each kind of change.
    #[arg(long, default_value_t = 10)]
    repeats: u32,
    /// Seconds over which idle CPU is measured.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(2);
        }
    };
    let scenario = Scenario {
        xds_addr: args.xds_addr,
        config_dir: args.config_dir,
        config: ControlPlaneConfig {
            namespaces: args.namespaces,
            services_per_namespace: args.services_per_namespace,
            endpoints: args.endpoints,
        },
        proxies: args.proxies,
        repeats: args.repeats,
        controller_pid: args.controller_pid,
        idle_window: Duration::from_secs(args.idle_secs),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ads-load: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&scenario)) {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("ads-load: {err}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("ads-load: {err:#}");
            ExitCode::FAILURE
        }
    }
}
