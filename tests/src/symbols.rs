//! The functions a binary defines, from its symbol table (`nm`, package binutils), in
//! address order: what the release weft-proxy's code layout is recorded from and checked
//! against (`weft-bench symbol-order`, tests/tests/image.rs).

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

/// The (mangled) names of the functions `binary` defines, lowest address first.
pub fn functions_in_address_order(binary: &Path) -> anyhow::Result<Vec<String>> {
    let output = Command::new("nm")
        .args(["--defined-only", "--numeric-sort"])
        .arg(binary)
        .output()
        .context("cannot run nm (package binutils)")?;
    anyhow::ensure!(output.status.success(), "nm failed on {}", binary.display());
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [_, "t" | "T", name] => Some(name.to_string()),
                _ => None,
            },
        )
        .collect())
}
