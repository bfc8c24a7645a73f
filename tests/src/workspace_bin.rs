//! Binaries of other workspace packages, built on demand into the same target dir and profile
//! as the running test (Cargo builds only the test's own package's binaries for it).
//!
//! The build runs without the per-package variables Cargo sets for a running test
//! (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, `OUT_DIR`, ...): build scripts that track them (ring's
//! tracks `CARGO_MANIFEST_DIR`) would otherwise see a changed environment and rebuild their
//! crates, and everything above them, on every test run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Builds binary `bin` of package `package` (once per call; Cargo makes repeats cheap) and
/// returns its path. Panics with Cargo's output when the build fails.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .expect("profile dir name");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--bin", bin, "-p", package, "--locked"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_package = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref());
        if per_package {
            command.env_remove(name.as_ref());
        }
    }
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let started = Instant::now();
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "building {bin} failed ({}): {command:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let path = profile_dir.join(bin);
    assert!(
        path.exists(),
        "cargo built {bin} but {} does not exist",
        path.display()
    );
    eprintln!(
        "[tests] {bin} built in {:?}: {}",
        started.elapsed(),
        path.display()
    );
    path
}
