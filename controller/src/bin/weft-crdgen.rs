//! weft-crdgen: writes the weft CRDs, rendered from the Rust types in `weft_controller::api`,
//! to `crds/` and `charts/weft/crds/`; `--check` only reports stale files (for CI).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use weft_controller::api;

/// Generate the weft CRD YAML from the Rust API types.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Do not write anything; exit with status 1 and list the files that are out of date.
    #[arg(long)]
    check: bool,

    /// The repository root (the directory holding `crds/` and `charts/`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    root: PathBuf,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let root = args.root.canonicalize().unwrap_or(args.root);
    if args.check {
        let stale = api::stale_files(&root)?;
        if stale.is_empty() {
            println!("CRDs are up to date");
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "stale CRD files (regenerate with `{}`):",
            api::REGENERATE_COMMAND
        );
        for path in stale {
            eprintln!("  {}", path.display());
        }
        return Ok(ExitCode::FAILURE);
    }
    let changed = api::write_crd_files(&root)?;
    if changed.is_empty() {
        println!("CRDs are up to date");
    }
    for change in changed {
        match change {
            api::CrdChange::Written(path) => println!("wrote {}", path.display()),
            api::CrdChange::Removed(path) => println!("removed {}", path.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
