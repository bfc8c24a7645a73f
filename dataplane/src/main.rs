//! `weft-proxy`: turns flags into a running proxy; prints one line and exits
//! non-zero on bad flags or a fatal error.

use std::process::ExitCode;

use clap::Parser;
use weft_proxy::{Settings, run};

fn main() -> ExitCode {
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
