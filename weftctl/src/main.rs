//! weftctl: parses the command line and runs it; any error is one line on stderr and exit
//! status 1 (2 for a bad flag).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match weftctl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return weft_common::cli_exit("weftctl", err),
    };
    match weftctl::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("weftctl: {}", format!("{err:#}").replace('\n', " "));
            ExitCode::from(1)
        }
    }
}
