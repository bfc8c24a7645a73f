//! weftctl, weft's command line. Each subcommand is a module whose rendering is pure (JSON or
//! metrics text in, text out) and unit-tested; `reach` is the thin I/O layer that gets the
//! JSON from the controller's and proxies' admin endpoints, directly or through the
//! Kubernetes API server.
//!
//! | command | reads |
//! |---|---|
//! | `proxy-status` (`proxy_status`) | every controller replica's `/debug/proxies` |
//! | `proxy-config` (`proxy_config`) | the proxy's `/config_dump` (weft-proxy's or Envoy's) |
//! | `describe` (`describe`) | the controller's `/debug/resources` and `/debug/proxies` |
//! | `translate` (`translate`) | a directory of YAML, through the controller's own code |
//! | `check` (`check`) | the API server; the controller's `/ready` |
//! | `top` (`top`) | proxies' `/metrics` twice, or Prometheus |

pub mod check;
pub mod cli;
pub mod describe;
pub mod proxy_config;
pub mod proxy_status;
pub mod reach;
pub mod top;
pub mod translate;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::CommandFactory as _;

use cli::{Cli, Command, ConfigFormat, StatusFormat};
use reach::{Controller, Kube};

/// Runs one command; `Ok` carries the exit status of a command that ran (1 when it found
/// errors: translate, check).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let target = &cli.target;
    match cli.command {
        Command::ProxyStatus { output } => {
            let proxies = Controller::find(target)?.get_json("/debug/proxies")?;
            match output {
                StatusFormat::Table => emit(&proxy_status::render(&proxies)),
                StatusFormat::Json => {
                    let merged: Vec<_> = proxies
                        .iter()
                        .flat_map(|(_, list)| list.as_array().cloned().unwrap_or_default())
                        .collect();
                    emit(&(serde_json::to_string_pretty(&merged)? + "\n"));
                }
            }
        }
        Command::ProxyConfig {
            proxy,
            section,
            proxy_admin,
            admin_port,
            output,
        } => {
            let path = "/config_dump?include_eds";
            let body = match proxy_admin {
                Some(addr) => reach::http_get(&addr.to_string(), path, target.timeout)?,
                None => {
                    let (pod, namespace) = proxy.split_once('.').unwrap_or((&proxy, "default"));
                    Kube::connect(target)?.pod_get(namespace, pod, admin_port, path)?
                }
            };
            let dump: serde_json::Value = serde_json::from_str(&body)
                .with_context(|| format!("the config dump of {proxy} is not JSON"))?;
            let config = proxy_config::parse(&dump);
            let value = || match section {
                cli::Section::All => dump.clone(),
                section => proxy_config::section_value(&config, section),
            };
            match output {
                ConfigFormat::Table => emit(&proxy_config::render_tables(&config, section)),
                ConfigFormat::Json => emit(&(serde_json::to_string_pretty(&value())? + "\n")),
                ConfigFormat::Yaml => emit(&serde_saphyr::to_string(&value())?),
            }
        }
        Command::Describe {
            resource,
            namespace,
        } => {
            let (kind, name) = describe::parse_resource(&resource)?;
            let controller = Controller::find(target)?;
            let resources = controller.get_json("/debug/resources")?;
            let proxies = controller.get_json("/debug/proxies")?;
            match describe::render(kind, &namespace, &name, &resources, &proxies) {
                Some(text) => emit(&text),
                None => bail!("{kind} {namespace}/{name} not found at the controller"),
            }
        }
        Command::Translate { dir, output } => {
            let outcome = translate::translate_dir(&dir, output)?;
            let mut stderr = std::io::stderr().lock();
            for warning in &outcome.warnings {
                writeln!(stderr, "warning: {warning}")?;
            }
            for error in &outcome.errors {
                writeln!(stderr, "error: {error}")?;
            }
            if !outcome.errors.is_empty() {
                writeln!(
                    stderr,
                    "{} error(s); nothing translated",
                    outcome.errors.len()
                )?;
                return Ok(ExitCode::from(1));
            }
            emit(&outcome.output);
        }
        Command::Check => {
            let findings = check::run(target)?;
            emit(&check::render(&findings));
            if findings.iter().any(|f| !f.ok) {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Top {
            prometheus,
            proxy_admins,
            interval,
            once,
        } => run_top(
            prometheus.as_deref(),
            &proxy_admins,
            interval,
            once,
            target.timeout,
        )?,
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "weftctl",
                &mut std::io::stdout(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_top(
    prometheus: Option<&str>,
    proxies: &[std::net::SocketAddr],
    interval: std::time::Duration,
    once: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    if prometheus.is_none() && proxies.is_empty() {
        bail!("give --prometheus <url> or --proxy-admin <host:port>[,...]");
    }
    let read = || -> anyhow::Result<_> {
        let mut counters = std::collections::BTreeMap::new();
        for proxy in proxies {
            let text = reach::http_get(&proxy.to_string(), "/metrics", timeout)?;
            top::read_counters(&text, &mut counters);
        }
        Ok(counters)
    };
    let mut before = if prometheus.is_none() {
        read()?
    } else {
        Default::default()
    };
    loop {
        let rows = match prometheus {
            Some(base) => top::rows_from_prometheus(base, interval, timeout)?,
            None => {
                std::thread::sleep(interval);
                let after = read()?;
                let rows = top::rows_between(&before, &after, interval);
                before = after;
                rows
            }
        };
        let table = top::render(&rows);
        if once {
            emit(&table);
            return Ok(());
        }
        // Clear the screen and draw from the top, as `top` does.
        emit(&format!("\x1b[2J\x1b[H{table}"));
        if prometheus.is_some() {
            std::thread::sleep(interval);
        }
    }
}

/// Writes `text` to stdout; a closed pipe (`weftctl ... | head`) ends the program quietly.
fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("weftctl: writing the output: {err}");
        std::process::exit(1);
    }
}
