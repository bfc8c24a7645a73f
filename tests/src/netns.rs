//! A network namespace a test creates and deletes, holding addresses that exist nowhere
//! else (192.0.2.0/24, TEST-NET-1), reachable from the host through a veth pair with one
//! `/32` route per address on the host side — no address is added to the host itself.
//! Tests bind listeners inside it ([`TestNetns::listen`]) and dial them from the host, so a
//! component can be given a real, non-loopback endpoint address (the apiserver refuses
//! loopback addresses in EndpointSlices). Needs root and `ip` (iproute2); fails loudly
//! without them. Dropping it deletes the namespace, which removes the veth pair and the
//! host routes with it.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use anyhow::Context as _;

/// A namespace named `weft-<tag>-<pid>` with `addresses` on its end of a veth pair.
pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// Creates the namespace and its link to the host.
    pub fn create(tag: &str, addresses: &[Ipv4Addr]) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let netns = Self {
            name: format!("weft-{tag}-{pid}"),
        };
        // Interface names are at most 15 bytes.
        let host_if = format!("wh{}{}", tag.chars().next().unwrap_or('x'), pid % 1_000_000);
        let ns_if = format!("wn{}{}", tag.chars().next().unwrap_or('x'), pid % 1_000_000);
        ip(&["netns", "add", &netns.name])?;
        ip(&[
            "link",
            "add",
            &host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
            "netns",
            &netns.name,
        ])?;
        ip(&["link", "set", &host_if, "up"])?;
        netns.ip(&["link", "set", "lo", "up"])?;
        netns.ip(&["link", "set", &ns_if, "up"])?;
        for address in addresses {
            netns.ip(&["addr", "add", &format!("{address}/32"), "dev", &ns_if])?;
            ip(&["route", "add", &format!("{address}/32"), "dev", &host_if])?;
        }
        // Replies go back over the veth to whatever host address the caller used.
        netns.ip(&["route", "add", "default", "dev", &ns_if])?;
        Ok(netns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip` inside the namespace.
    fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A TCP listener bound to `addr` inside the namespace (the socket stays in it wherever
    /// it is used afterwards: a socket belongs to the namespace it was created in).
    pub fn listen(&self, addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> anyhow::Result<std::net::TcpListener> {
                    // setns moves only this thread, which ends right after binding.
                    let file = std::fs::File::open(&path).with_context(|| path.clone())?;
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .with_context(|| format!("setns into {path}"))?;
                    let listener = std::net::TcpListener::bind(addr)
                        .with_context(|| format!("listen on {addr} in {path}"))?;
                    listener.set_nonblocking(true)?;
                    Ok(listener)
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the netns thread panicked"))?
        })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Err(err) = ip(&["netns", "delete", &self.name]) {
            eprintln!("cannot delete network namespace {}: {err}", self.name);
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2 is needed, and root)")?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}
