//! The iptables rules of transparent interception, as pure functions: what `weft-proxy init`
//! asks `iptables-restore` to do, given the ports and uid and what the nat table holds now.
//! No I/O here (that is `init::apply`), so every rule is unit-tested.
//!
//! The rules follow istio-iptables, trimmed to what weft needs:
//!
//! ```text
//! *nat
//! :WEFT_INBOUND - [0:0]                                   created, or flushed if it exists
//! :WEFT_OUTPUT - [0:0]
//! -A PREROUTING -p tcp -j WEFT_INBOUND                     (earlier copies deleted first)
//! -A OUTPUT -p tcp -j WEFT_OUTPUT
//! -A WEFT_INBOUND -p tcp --dport 15000 -j RETURN           the admin port, excluded ports
//! -A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 15006      everything else → inbound listener
//! -A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN       the proxy's own connections
//! -A WEFT_OUTPUT -d 127.0.0.1/32 -j RETURN                 loopback destinations
//! -A WEFT_OUTPUT -o lo -j RETURN                           the pod's own addresses
//! -A WEFT_OUTPUT -p tcp --dport 15010 -j RETURN            xDS ports, excluded ports
//! -A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001       everything else → outbound listener
//! COMMIT
//! ```
//!
//! Idempotence: the file is applied with `--noflush` (other rules in the nat table stay), a
//! chain declared with `:NAME` is flushed when it exists, and every jump to a weft chain
//! already in PREROUTING or OUTPUT is deleted before the one jump is appended, so running
//! init twice leaves one set of rules. It is one `iptables-restore` transaction: all or
//! nothing.

use std::collections::BTreeSet;

/// The nat chain that redirects inbound TCP (entered from PREROUTING).
pub const INBOUND_CHAIN: &str = "WEFT_INBOUND";
/// The nat chain that redirects outbound TCP (entered from OUTPUT).
pub const OUTBOUND_CHAIN: &str = "WEFT_OUTPUT";

/// What to intercept and what to leave alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interception {
    /// Where outbound TCP is redirected: the proxy's outbound listener port.
    pub outbound_port: u16,
    /// Where inbound TCP is redirected: the proxy's inbound listener port.
    pub inbound_port: u16,
    /// The uid the proxy runs as; its own connections are never redirected (else every
    /// connection it makes upstream would loop back into it).
    pub proxy_uid: u32,
    /// Destination ports inbound TCP keeps (the proxy's admin port among them).
    pub inbound_excluded: BTreeSet<u16>,
    /// Destination ports outbound TCP keeps (the controller's xDS ports among them).
    pub outbound_excluded: BTreeSet<u16>,
}

/// The jumps from the built-in chains into weft's chains.
const JUMPS: [(&str, &str); 2] = [("PREROUTING", INBOUND_CHAIN), ("OUTPUT", OUTBOUND_CHAIN)];

impl Interception {
    /// The rules weft's chains hold, in order, in `iptables-restore` syntax (`-A CHAIN ...`).
    pub fn chain_rules(&self) -> Vec<String> {
        let mut rules = Vec::new();
        for port in &self.inbound_excluded {
            rules.push(format!(
                "-A {INBOUND_CHAIN} -p tcp --dport {port} -j RETURN"
            ));
        }
        rules.push(format!(
            "-A {INBOUND_CHAIN} -p tcp -j REDIRECT --to-ports {}",
            self.inbound_port
        ));
        rules.push(format!(
            "-A {OUTBOUND_CHAIN} -m owner --uid-owner {} -j RETURN",
            self.proxy_uid
        ));
        // Loopback destinations are local by definition: the app talking to a sidecar
        // (the proxy's own ports) or to itself. Redirecting them would make an app that
        // dials 127.0.0.1:15001 loop into the proxy twice.
        rules.push(format!("-A {OUTBOUND_CHAIN} -d 127.0.0.1/32 -j RETURN"));
        // Anything else routed over `lo` goes to one of the pod's own addresses (its pod IP):
        // the app calling itself, which istio also leaves alone (for non-proxy uids, and the
        // proxy's uid has already returned above). A Service's cluster IP is never local, so
        // this does not let mesh traffic escape.
        rules.push(format!("-A {OUTBOUND_CHAIN} -o lo -j RETURN"));
        for port in &self.outbound_excluded {
            rules.push(format!(
                "-A {OUTBOUND_CHAIN} -p tcp --dport {port} -j RETURN"
            ));
        }
        rules.push(format!(
            "-A {OUTBOUND_CHAIN} -p tcp -j REDIRECT --to-ports {}",
            self.outbound_port
        ));
        rules
    }

    /// The whole `iptables-restore --noflush` input for a nat table that currently reads
    /// `current_nat` (the output of `iptables-save -t nat`; empty for a table never
    /// touched).
    pub fn restore_input(&self, current_nat: &str) -> String {
        let mut lines = vec!["*nat".to_owned()];
        for chain in [INBOUND_CHAIN, OUTBOUND_CHAIN] {
            lines.push(format!(":{chain} - [0:0]"));
        }
        lines.extend(stale_jumps(current_nat));
        for (from, to) in JUMPS {
            lines.push(format!("-A {from} -p tcp -j {to}"));
        }
        lines.extend(self.chain_rules());
        lines.push("COMMIT".to_owned());
        let mut input = lines.join("\n");
        input.push('\n');
        input
    }
}

/// A `-D` for every rule of PREROUTING or OUTPUT in `current_nat` that jumps to a weft chain
/// (whatever its match: an older weft may have written it differently), each deleted once.
pub fn stale_jumps(current_nat: &str) -> Vec<String> {
    current_nat
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let (from, spec) = line.strip_prefix("-A ")?.split_once(' ')?;
            let builtin = JUMPS.iter().any(|(chain, _)| *chain == from);
            let targets_weft = JUMPS.iter().any(|(_, to)| jumps_to(spec, to));
            (builtin && targets_weft).then(|| format!("-D {from} {spec}"))
        })
        .collect()
}

/// Whether a rule spec ends in `-j <chain>` or `-g <chain>`, or has it before more options.
fn jumps_to(spec: &str, chain: &str) -> bool {
    let words: Vec<&str> = spec.split_whitespace().collect();
    words
        .windows(2)
        .any(|pair| matches!(pair[0], "-j" | "--jump" | "-g" | "--goto") && pair[1] == chain)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
