//! `weft-proxy`: turns flags into a running proxy; prints one line and exits
//! non-zero on bad flags or a fatal error. `weft-proxy init [flags]` instead programs
//! iptables for transparent interception (see `weft_proxy::init`) and exits.

use std::process::ExitCode;

use clap::Parser;
use weft_proxy::init::InitSettings;
use weft_proxy::{Settings, run};

fn main() -> ExitCode {
    // `init` is recognised only as the first argument, so every flag of the proxy keeps
    // parsing exactly as before (no flag of the proxy takes a bare word first).
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "init") {
        return init();
    }
    let settings = match Settings::try_parse() {
        Ok(settings) => settings,
        Err(err) => return weft_common::cli_exit("weft-proxy", err),
    };
    weft_common::init_logging(&settings.log_level);
    let runtime = match settings.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        threads => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(threads))
            .enable_all()
            .build(),
    };
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(settings)),
        Err(err) => Err(anyhow::anyhow!("cannot start the async runtime: {err}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weft-proxy: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `weft-proxy init`: the rules are printed (`--dry-run`) or programmed; one line either way.
fn init() -> ExitCode {
    let args = std::iter::once("weft-proxy init".into()).chain(std::env::args_os().skip(2));
    let settings = match InitSettings::try_parse_from(args) {
        Ok(settings) => settings,
        Err(err) => return weft_common::cli_exit("weft-proxy init", err),
    };
    match weft_proxy::init::run(&settings) {
        Ok(text) => {
            if settings.dry_run {
                print!("{text}");
            } else {
                eprintln!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("weft-proxy init: {err}");
            ExitCode::FAILURE
        }
    }
}
