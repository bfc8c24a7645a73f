//! The I/O of `weft-proxy init`, kept thin: read the nat table with `iptables-save -t nat`,
//! hand the rules from [`super::rules`] to `iptables-restore --noflush` on its stdin (one
//! atomic transaction), and turn any failure into one error that names the command and
//! what it said.

use std::io::Write as _;
use std::process::{Command, ExitStatus, Stdio};

use super::InitSettings;

/// Why init could not program the rules.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot run {program}: {source} (is the iptables package installed and on PATH?)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {message}")]
    Failed {
        program: String,
        status: ExitStatus,
        message: String,
    },
}

/// Programs the rules (or, with `--dry-run`, prints them); returns the line to print.
pub fn run(settings: &InitSettings) -> Result<String, InitError> {
    let interception = settings.interception();
    if settings.dry_run {
        return Ok(interception.restore_input(""));
    }
    let (save, restore) = settings.iptables.binaries();
    let current = output(Command::new(save).args(["-t", "nat"]), None)?;
    let input = interception.restore_input(&current);
    output(
        Command::new(restore).args(["--noflush", "--wait"]),
        Some(&input),
    )?;
    let list = |ports: &std::collections::BTreeSet<u16>| {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    Ok(format!(
        "weft-proxy init: outbound TCP → {}, inbound TCP → {} ({restore}); not redirected: \
         uid {}, loopback, inbound ports {}, outbound ports {}",
        interception.outbound_port,
        interception.inbound_port,
        interception.proxy_uid,
        list(&interception.inbound_excluded),
        list(&interception.outbound_excluded),
    ))
}

/// Runs `command` (feeding it `stdin`), returns its stdout; a failure names the command and
/// its first line of complaint, with the rules line it points at when it names one.
fn output(command: &mut Command, stdin: Option<&str>) -> Result<String, InitError> {
    let program = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| word.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let spawn_error = |source| InitError::Spawn {
        program: program.clone(),
        source,
    };
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error means the command exited early; its status and stderr say why.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(spawn_error)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut message = stderr
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("no message")
        .to_owned();
    if let Some(line) = stdin.and_then(|text| failed_line(&stderr, text)) {
        message = format!("{message} (the rule: {line})");
    }
    Err(InitError::Failed {
        program,
        status: out.status,
        message,
    })
}

/// The input line `iptables-restore` names in `line N failed`.
fn failed_line<'t>(stderr: &str, input: &'t str) -> Option<&'t str> {
    let (_, rest) = stderr.split_once("line ")?;
    let number: usize = rest.split_whitespace().next()?.parse().ok()?;
    input.lines().nth(number.checked_sub(1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_line_is_quoted() {
        let input = "*nat\n:WEFT_OUTPUT - [0:0]\n-A OUTPUT -j NOPE\nCOMMIT\n";
        assert_eq!(
            failed_line("iptables-restore: line 3 failed\n", input),
            Some("-A OUTPUT -j NOPE")
        );
        assert_eq!(failed_line("iptables-restore: line 0 failed", input), None);
        assert_eq!(
            failed_line("Permission denied (you must be root)", input),
            None
        );
    }

    #[test]
    fn a_missing_binary_names_itself() {
        let err = output(&mut Command::new("weft-no-such-iptables-save"), None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot run weft-no-such-iptables-save") && text.contains("PATH"),
            "{text}"
        );
    }

    #[test]
    fn a_failing_command_gives_its_first_complaint_and_the_rule() {
        let err = output(
            Command::new("sh").args([
                "-c",
                "cat >/dev/null; echo; echo 'x: line 2 failed' >&2; exit 1",
            ]),
            Some("*nat\n-A OUTPUT -j NOPE\n"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("x: line 2 failed"), "{text}");
        assert!(text.contains("(the rule: -A OUTPUT -j NOPE)"), "{text}");
    }
}
