//! `weft-proxy init`: transparent interception for a pod, run once in an init container
//! (it needs NET_ADMIN and NET_RAW) before the app and the proxy start. It programs the nat
//! table of the pod's network namespace so that the app's outbound TCP goes to the proxy's
//! outbound listener and inbound TCP to its inbound listener, except the proxy's own
//! traffic (`--proxy-uid`) and the excluded ports.
//!
//! `settings` is the flags, `rules` the pure rule logic (unit-tested), `apply` the thin I/O
//! that reads the nat table and hands the rules to `iptables-restore` in one transaction.

mod apply;
pub mod rules;

use std::collections::BTreeSet;

use clap::Parser;

pub use apply::{InitError, run};
use rules::Interception;

/// The flags of `weft-proxy init` (each also a `WEFT_*` environment variable).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "weft-proxy init",
    bin_name = "weft-proxy init",
    version,
    about = "Program iptables so a pod's TCP goes through weft-proxy (run once, in an init container with NET_ADMIN and NET_RAW)"
)]
pub struct InitSettings {
    /// The proxy's outbound listener port: outbound TCP is redirected here.
    #[arg(long, env = "WEFT_OUTBOUND_PORT", default_value_t = 15001, value_parser = port())]
    pub outbound_port: u16,

    /// The proxy's inbound listener port: inbound TCP is redirected here.
    #[arg(long, env = "WEFT_INBOUND_PORT", default_value_t = 15006, value_parser = port())]
    pub inbound_port: u16,

    /// The uid weft-proxy runs as; its own connections are never redirected.
    #[arg(long, env = "WEFT_PROXY_UID", default_value_t = 1337)]
    pub proxy_uid: u32,

    /// The proxy's admin port: inbound connections to it are not redirected.
    #[arg(long, env = "WEFT_ADMIN_PORT", default_value_t = 15000, value_parser = port())]
    pub admin_port: u16,

    /// The controller's xDS ports: outbound connections to them are not redirected.
    #[arg(long, env = "WEFT_XDS_PORTS", value_delimiter = ',', default_value = "15010,15012", value_parser = port())]
    pub xds_ports: Vec<u16>,

    /// More inbound destination ports to leave alone, `port,...`.
    #[arg(long, env = "WEFT_EXCLUDE_INBOUND_PORTS", value_delimiter = ',', value_parser = port())]
    pub exclude_inbound_ports: Vec<u16>,

    /// More outbound destination ports to leave alone, `port,...`.
    #[arg(long, env = "WEFT_EXCLUDE_OUTBOUND_PORTS", value_delimiter = ',', value_parser = port())]
    pub exclude_outbound_ports: Vec<u16>,

    /// Which iptables to run: `system` (`iptables-restore` as the system links it), `nft`
    /// (`iptables-nft-restore`) or `legacy` (`iptables-legacy-restore`).
    #[arg(long, env = "WEFT_IPTABLES", default_value = "system", value_enum)]
    pub iptables: Backend,

    /// Print the rules (for a fresh nat table) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Which iptables binaries program the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    System,
    Nft,
    Legacy,
}

impl Backend {
    /// The save and restore binaries, looked up on `PATH`.
    pub fn binaries(self) -> (&'static str, &'static str) {
        match self {
            Backend::System => ("iptables-save", "iptables-restore"),
            Backend::Nft => ("iptables-nft-save", "iptables-nft-restore"),
            Backend::Legacy => ("iptables-legacy-save", "iptables-legacy-restore"),
        }
    }
}

impl InitSettings {
    /// What the flags ask to intercept.
    pub fn interception(&self) -> Interception {
        let mut inbound_excluded: BTreeSet<u16> =
            self.exclude_inbound_ports.iter().copied().collect();
        inbound_excluded.insert(self.admin_port);
        let outbound_excluded = self
            .xds_ports
            .iter()
            .chain(&self.exclude_outbound_ports)
            .copied()
            .collect();
        Interception {
            outbound_port: self.outbound_port,
            inbound_port: self.inbound_port,
            proxy_uid: self.proxy_uid,
            inbound_excluded,
            outbound_excluded,
        }
    }
}

fn port() -> clap::builder::RangedI64ValueParser<u16> {
    clap::value_parser!(u16).range(1..)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<InitSettings, clap::Error> {
        InitSettings::try_parse_from(std::iter::once("weft-proxy init").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_exclude_the_admin_and_xds_ports() {
        let interception = parse(&[]).unwrap().interception();
        assert_eq!(interception.outbound_port, 15001);
        assert_eq!(interception.inbound_port, 15006);
        assert_eq!(interception.proxy_uid, 1337);
        assert_eq!(interception.inbound_excluded, BTreeSet::from([15000]));
        assert_eq!(
            interception.outbound_excluded,
            BTreeSet::from([15010, 15012])
        );
    }

    #[test]
    fn excluded_ports_add_to_the_defaults() {
        let settings = parse(&[
            "--exclude-inbound-ports",
            "22,8081",
            "--exclude-outbound-ports",
            "5432",
            "--proxy-uid",
            "2000",
            "--admin-port",
            "16000",
        ])
        .unwrap();
        let interception = settings.interception();
        assert_eq!(
            interception.inbound_excluded,
            BTreeSet::from([22, 8081, 16000])
        );
        assert_eq!(
            interception.outbound_excluded,
            BTreeSet::from([5432, 15010, 15012])
        );
        assert_eq!(interception.proxy_uid, 2000);
    }

    #[test]
    fn bad_ports_name_the_flag() {
        for args in [
            &["--outbound-port", "0"][..],
            &["--exclude-inbound-ports", "22,x"],
            &["--exclude-outbound-ports", "70000"],
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(args[0]), "{args:?}: {err}");
        }
    }
}
