//! `weft-controller`: turns flags into a running controller; prints one line and exits
//! non-zero on bad flags or a fatal error.

use std::process::ExitCode;

use clap::Parser;
use weft_controller::{Settings, run};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::try_parse() {
        Ok(settings) => settings,
        Err(err) => return weft_common::cli_exit("weft-controller", err),
    };
    weft_common::init_logging(&settings.log_level);
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weft-controller: {err:#}");
            ExitCode::FAILURE
        }
    }
}
