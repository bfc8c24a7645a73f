//! The weft-proxy binary as a user runs it: help, bad flags, and a running process whose
//! admin endpoint answers (not ready: it has no config from xDS yet); `init`, the subcommand
//! that programs iptables, as far as it runs without privileges (`--dry-run`, bad flags).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_weft-proxy");

#[test]
fn help_lists_the_real_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--xds-addr",
        "--node-id",
        "--outbound-addr",
        "--inbound-addr",
        "--admin-addr",
        "--drain-timeout",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn bad_flag_is_one_line_and_non_zero() {
    for args in [
        &["--node-id", "no-namespace"][..],
        &["--node-id", "a.b", "--drain-timeout", "5"],
        &[],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("weft-proxy: "), "{err}");
    }
}

#[test]
fn runs_and_answers_on_its_admin_port_until_terminated() {
    let mut child = Command::new(BIN)
        .args(["--node-id", "test-0.default", "--admin-addr", "127.0.0.1:0"])
        .args([
            "--outbound-addr",
            "127.0.0.1:0",
            "--inbound-addr",
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
        .split(", admin ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no admin address in {line:?}"));

    assert_eq!(
        ureq::get(&format!("{admin}/healthz"))
            .call()
            .unwrap()
            .status(),
        200
    );
    let ready = ureq::get(&format!("{admin}/ready"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(
        ready.status(),
        503,
        "a proxy without config must not report ready"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
}

#[test]
fn init_is_a_subcommand_with_its_own_flags() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(
        String::from_utf8(help.stdout)
            .unwrap()
            .contains("weft-proxy init")
    );

    let dry = Command::new(BIN)
        .args([
            "init",
            "--dry-run",
            "--proxy-uid",
            "4242",
            "--exclude-outbound-ports",
            "5432",
        ])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{dry:?}");
    let rules = String::from_utf8(dry.stdout).unwrap();
    for rule in [
        "-A WEFT_OUTPUT -m owner --uid-owner 4242 -j RETURN",
        "-A WEFT_OUTPUT -p tcp --dport 5432 -j RETURN",
        "-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
        "-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 15006",
    ] {
        assert!(
            rules.lines().any(|line| line == rule),
            "no {rule}:\n{rules}"
        );
    }

    // A bad flag of init: one line naming the subcommand, exit 2; the proxy's own flags
    // are not init's.
    for args in [
        &["init", "--outbound-port", "x"][..],
        &["init", "--node-id", "a.b"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("weft-proxy init: "), "{err}");
    }
}
