//! `weft-bench run`: the whole benchmark — the data plane (`dp`), the control plane (`cp`),
//! optional profiles (`profile`) — then RESULTS.md and the headline figures kept for the
//! next run's reproducibility check. A part that fails is reported in RESULTS.md and makes
//! the command exit non-zero; the other parts still run.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use weft_tests::tools;

use crate::dp::measure::{PINGPONG_STREAMS, Timing};
use crate::dp::rig::Bins;
use crate::meshconfig::ControlPlaneConfig;
use crate::report::data::Headline;
use crate::report::{self, Context, Inputs};
use crate::{cp, dp, machine, profile};

/// Options of `weft-bench run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Rounds: each runs every data-plane workload on every topology, then the
    /// control-plane scenario for each number of proxies.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Seconds each data-plane run is measured.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of warm-up before each run is measured.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Fixed open-loop rates (calls per second).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub rates: Vec<u32>,
    /// Numbers of simulated proxies for the control-plane benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub proxies: Vec<usize>,
    /// Namespaces × services per namespace × endpoints per service.
    #[arg(long, default_value_t = 10)]
    pub namespaces: u32,
    #[arg(long, default_value_t = 100)]
    pub services_per_namespace: u32,
    #[arg(long, default_value_t = 10)]
    pub endpoints: u32,
    /// Repetitions of each kind of config change, per round.
    #[arg(long, default_value_t = 2)]
    pub repeats: u32,
    /// Record CPU profiles (perf) of each one-hop proxy at saturation and of the controller.
    #[arg(long)]
    pub profile: bool,
    #[arg(long)]
    pub skip_dataplane: bool,
    #[arg(long)]
    pub skip_controlplane: bool,
    /// Where to write the results.
    #[arg(long, default_value = "bench/RESULTS.md")]
    pub out: PathBuf,
    /// Headline figures of this run (read first as the previous run's, then replaced).
    #[arg(long, default_value = "bench/results.json")]
    pub results_json: PathBuf,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let bins = Bins::beside_current_exe()?;
    for name in ["weft-controller", "weft-proxy", "ads-load"] {
        bins.get(name)?;
    }
    let previous: Option<Vec<Headline>> = std::fs::read_to_string(&args.results_json)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    eprintln!("[bench] measuring how busy the machine is (3 s)");
    let busy_before = machine::busy_percent(Duration::from_secs(3));
    let load_before = machine::loadavg();
    let mut notes = Vec::new();
    let mut failed = false;
    let timing = Timing {
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
    };

    let config = ControlPlaneConfig {
        namespaces: args.namespaces,
        services_per_namespace: args.services_per_namespace,
        endpoints: args.endpoints,
    };
    let cp_options = cp::Options {
        proxies: args.proxies.clone(),
        config,
        repeats: args.repeats,
        idle_secs: 5,
    };
    let mut data_plane = if args.skip_dataplane {
        None
    } else {
        let options = dp::Options {
            rounds: args.rounds,
            timing,
            rates: args.rates.clone(),
            calibration: Duration::from_secs(3),
        };
        match dp::DataPlane::start(&bins, &options) {
            Ok(bench) => Some(bench),
            Err(err) => {
                failed = true;
                notes.push(format!("**The data-plane benchmark failed**: {err:#}"));
                None
            }
        }
    };
    let mut control_plane = (!args.skip_controlplane).then(|| cp::Report::new(args.repeats));
    // Rounds interleave the two benchmarks, so each one's spread over rounds covers the
    // whole run (and whatever else the machine did meanwhile), not one stretch of it.
    for round in 0..args.rounds {
        eprintln!("[bench] round {} of {}", round + 1, args.rounds);
        if let Some(bench) = &mut data_plane
            && let Err(err) = bench.round(round)
        {
            failed = true;
            notes.push(format!("**The data-plane benchmark failed**: {err:#}"));
            data_plane = None;
        }
        if let Some(report) = &mut control_plane {
            report.round(&bins, &cp_options);
        }
    }
    let dp_report = data_plane.map(dp::DataPlane::finish);
    if let Some(report) = &control_plane {
        failed |= !report.failures.is_empty();
    }
    let mut profiles = Vec::new();
    if args.profile && dp_report.is_some() {
        match profile::proxies(&bins) {
            Ok(p) => profiles.extend(p),
            Err(err) => notes.push(format!("Proxy profiles failed: {err:#}")),
        }
    }
    if args.profile && !args.skip_controlplane {
        let n = args.proxies.iter().copied().max().unwrap_or(100);
        match profile::controller(&bins, config, n) {
            Ok(p) => profiles.push(p),
            Err(err) => notes.push(format!("Controller profile failed: {err:#}")),
        }
    }

    let context = Context {
        command: std::env::var("WEFT_BENCH_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
        date: first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        machine: machine::describe(),
        versions: versions(&bins),
        busy_before,
        load_before,
        load_after: machine::loadavg(),
        minutes: started.elapsed().as_secs_f64() / 60.0,
        component_commands: component_commands(args),
        method: method(args),
    };
    let charts = report::charts::render(dp_report.as_ref(), control_plane.as_ref());
    let chart_dir = args
        .out
        .parent()
        .map_or_else(|| PathBuf::from("charts"), |dir| dir.join("charts"));
    std::fs::create_dir_all(&chart_dir)
        .with_context(|| format!("cannot create {}", chart_dir.display()))?;
    for chart in &charts {
        let path = chart_dir.join(chart.file);
        std::fs::write(&path, &chart.svg)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let inputs = Inputs {
        context,
        dp: dp_report.as_ref(),
        cp: control_plane.as_ref(),
        previous,
        profiles,
        notes,
        charts,
    };
    let (markdown, headlines) = report::render(&inputs);
    std::fs::write(&args.out, markdown)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    std::fs::write(
        &args.results_json,
        serde_json::to_string_pretty(&headlines)?,
    )
    .with_context(|| format!("cannot write {}", args.results_json.display()))?;
    eprintln!(
        "[bench] wrote {} and {}",
        args.out.display(),
        args.results_json.display()
    );
    anyhow::ensure!(
        !failed,
        "part of the benchmark failed: see {}",
        args.out.display()
    );
    Ok(())
}

fn first_line(command: &mut Command) -> String {
    command
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

fn versions(bins: &Bins) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["weft-controller", "weft-proxy"] {
        if let Ok(path) = bins.get(name) {
            out.push((name.to_string(), machine::version(&path, &["--version"])));
        }
    }
    for (name, flag) in [("envoy", "--version"), ("h2load", "--version")] {
        out.push((
            name.to_string(),
            machine::version(&tools::tool(name), &[flag]),
        ));
    }
    out.push((
        "rustc".into(),
        machine::version(std::path::Path::new("rustc"), &["--version"]),
    ));
    out
}

fn method(args: &RunArgs) -> Vec<String> {
    vec![
        "Placement: 2 cores. Proxies (weft-proxy with `--worker-threads 1`, Envoy with `--concurrency 1`) are pinned \
         to core 1 with `taskset`; the load generator, the server, weft-controller and this orchestrator to core 0."
            .into(),
        "Server: `weft-bench serve`, the tests' weft.test.Echo service (tests/proto/echo.proto) answering Unary and \
         BidiStream by echoing the message, tonic on a single-threaded runtime with TCP_NODELAY, release build. (The \
         tests' own backend, `tests/src/backend.rs`, accepts via `serve_with_incoming`, which leaves Nagle on: its \
         replies then stall ~40 ms on delayed ACKs, measured at 44 ms per call in a trial.) Unary calls send a 1 KB \
         message that comes back (1 KB each way)."
            .into(),
        "Topologies: T0 client → server; T1 client → proxy → server; T2 client → proxy → proxy (inbound listener) → \
         server, plaintext, and the same pair with mutual TLS between the proxies. Both proxies take their outbound \
         listener, routes (a GrpcRoute matching `weft.test.Echo`), clusters and endpoints from the same \
         weft-controller (local mode, Delta ADS; every proxy authenticated by a token file); clients name \
         `echo.default.svc.cluster.local:50051` in `:authority`. Plaintext pairs: Envoy's inbound side is a static \
         listener in its bootstrap, weft-proxy's its `--inbound-addr`/`--app-addr` under an MtlsPolicy `Disable`. \
         mTLS pairs: an MtlsPolicy `Strict` selects the inbound sides; weft-proxy gets its certificate by CSR, \
         Envoy its certificate and inbound listener (TLS inspector, filter chain with mTLS) from the controller \
         over SDS and LDS on an ADS stream over TLS; ECDSA P-256 certificates on both."
            .into(),
        "Fair to Envoy: no access log, `generate_request_id: false`, circuit breakers at 1 000 000 (controller \
         clusters and the bootstrap's), HTTP/2 upstream, `--concurrency 1`, `-l warning`."
            .into(),
        format!(
            "Open loop (`weft-bench openloop`, tonic, 4 HTTP/2 connections): calls start on a fixed schedule at {} \
             rps whatever the replies do, paced by tokio's 1 ms timer (at 5000 rps five calls start each \
             millisecond); latency per call from its start to its reply, all calls kept (p99.9 included). h2load's \
             `--rps` mode was tried first and reported ~1 ms for ~0.3 ms calls at 1000 rps. Twice the highest rate \
             is added when calibration (3 s closed loop per topology) shows room for it (at most 60% of the slowest \
             one-hop proxy's saturation). Closed loop for saturation: h2load \
             (nghttp2), 4 connections × 16 streams, one HTTP/2 request per gRPC call; every reply is checked to carry \
             the 1 KB message. Each topology is probed with a real gRPC call before measuring.",
            args.rates.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
        format!(
            "Streaming: {PINGPONG_STREAMS} bidirectional stream (`weft-bench pingpong`, tonic) sending 1 KB and \
             waiting for its echo before the next (closed loop, so never queued behind itself)."
        ),
        format!(
            "Runs: {} rounds; in each, every workload runs on every topology back to back, the topology order rotated \
             each round, then the control-plane scenario (below) runs once for each number of proxies, so both \
             benchmarks' rounds spread over the whole run. {} s warm-up, then {} s measured. Proxy CPU is \
             utime+stime from /proc/<pid>/stat over the measured window; RSS is VmRSS from /proc/<pid>/status.",
            args.rounds, args.warmup, args.duration
        ),
        format!(
            "Control plane: weft-controller in local mode on {} namespaces × {} Services × {} endpoints (a GrpcRoute \
             for every tenth Service), pinned to core 1; `ads-load` on core 0 opens {} Delta ADS streams (one \
             connection each, advertising Envoy's default 256 MiB HTTP/2 windows) that subscribe like Envoy \
             (wildcard CDS/LDS, EDS per cluster, RDS per listener) and ACK every response, against a fresh \
             controller each round. Changes, {} of each kind per round, the kinds taking turns: (a) one endpoint of \
             one Service; (b) the weights of one GrpcRoute (every proxy's route configuration changes); (c) a new \
             Service with its endpoints (every proxy gets a cluster, its endpoints and a route change).",
            args.namespaces,
            args.services_per_namespace,
            args.endpoints,
            args.proxies.iter().map(usize::to_string).collect::<Vec<_>>().join(" and "),
            args.repeats
        ),
    ]
}

fn component_commands(args: &RunArgs) -> Vec<String> {
    vec![
        "taskset -c 0 weft-bench serve --addr 127.0.0.1:$APP".into(),
        "taskset -c 0 weft-controller --config-dir $DIR --xds-addr 127.0.0.1:$XDS --admin-addr 127.0.0.1:$ADMIN --log-level warn".into(),
        "taskset -c 1 weft-proxy --xds-addr http://127.0.0.1:$XDS --node-id weft-a.default --outbound-addr 127.0.0.1:$OUT \
         --inbound-addr 127.0.0.1:$IN --app-addr 127.0.0.1:$APP --admin-addr 127.0.0.1:$PADMIN --worker-threads 1 --log-level warn"
            .into(),
        "taskset -c 1 envoy --config-path envoy-a.yaml --concurrency 1 --disable-hot-restart -l warning".into(),
        format!(
            "taskset -c 0 weft-bench openloop --target 127.0.0.1:$PORT --authority echo.default.svc.cluster.local:50051 \
             --rate $RATE --connections 4 --warmup-ms {w} --duration-ms {d}",
            w = args.warmup * 1000,
            d = args.duration * 1000
        ),
        format!(
            "taskset -c 0 h2load http://127.0.0.1:$PORT/weft.test.Echo/Unary -c 4 -m 16 -t 1 -d request.bin \
             -H ':authority: echo.default.svc.cluster.local:50051' -H 'content-type: application/grpc' -H 'te: trailers' \
             --warm-up-time {w}ms -D {d}ms --log-file run.log",
            w = args.warmup * 1000,
            d = args.duration * 1000
        ),
        "taskset -c 0 weft-bench pingpong --target 127.0.0.1:$PORT --authority echo.default.svc.cluster.local:50051 --streams 1".into(),
        format!(
            "taskset -c 1 weft-controller --config-dir $CPDIR ...;  taskset -c 0 ads-load --xds-addr 127.0.0.1:$XDS --config-dir $CPDIR \
             --controller-pid $PID --proxies N --namespaces {} --services-per-namespace {} --endpoints {} --repeats {}",
            args.namespaces, args.services_per_namespace, args.endpoints, args.repeats
        ),
    ]
}
