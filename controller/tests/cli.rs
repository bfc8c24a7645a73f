//! The weft-controller binary as a user runs it: help, a bad flag, and a running process
//! whose admin endpoint answers.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_weft-controller");

#[test]
fn help_lists_the_real_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config-dir",
        "--kubeconfig",
        "--xds-addr",
        "--admin-addr",
        "--log-level",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn bad_flag_is_one_line_and_non_zero() {
    let out = Command::new(BIN)
        .arg("--xds-addr=nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("weft-controller: ") && err.contains("--xds-addr"),
        "{err}"
    );
}

#[test]
fn missing_config_dir_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["--config-dir", "/no/such/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end(),
        "weft-controller: --config-dir /no/such/dir: not a readable directory"
    );
}

#[test]
fn runs_and_answers_on_its_admin_port_until_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--config-dir",
            dir.path().to_str().unwrap(),
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kept open until the end: the child must not write into a closed pipe.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let admin = line
        .split("admin on ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no admin address in {line:?}"));

    let healthz = ureq::get(&format!("{admin}/healthz")).call().unwrap();
    assert_eq!(healthz.status(), 200);
    assert!(line.contains("xDS (ADS) on 127.0.0.1:"), "{line}");
    // An empty config directory is a complete (empty) config: ready once it is read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ready = ureq::get(&format!("{admin}/ready"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        if ready.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready: {}",
            ready.status()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
}
