//! Network namespaces a test makes for itself (`ip netns add`), so it can program iptables
//! and use fixed ports and addresses in 192.0.2.0/24 (TEST-NET-1) that exist nowhere else,
//! without touching the machine's own network. A namespace is deleted when its guard drops,
//! also when the test panics (its veth pairs and the host routes through them go with it).
//! Needs root and iproute2's `ip`; fails loudly without them.
//!
//! Inside one: [`Netns::run`] runs a closure on a thread that entered the namespace
//! (`setns`); sockets that thread opens and processes it spawns belong to the namespace, so
//! a test binds listeners there, talks HTTP to admin ports there, and starts processes there
//! with any uid (`ip netns exec` would need root in the child, which `CommandExt::uid`
//! takes away before exec).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output};

use nix::sched::{CloneFlags, setns};

/// A network namespace made by the test; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Makes namespace `name` with its loopback up. A namespace of that name left by an
    /// earlier run (a test killed before its cleanup, whose pid this one reuses) goes first.
    pub fn create(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name]);
        let ns = Netns { name: name.into() };
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    /// Links this namespace to `peer` with a veth pair: `(local name, CIDR)` here,
    /// `(peer name, CIDR)` there, both up.
    pub fn link(
        &self,
        (here, here_cidr): (&str, &str),
        peer: &Netns,
        (there, there_cidr): (&str, &str),
    ) {
        ip(&[
            "-n", &self.name, "link", "add", here, "type", "veth", "peer", "name", there, "netns",
            &peer.name,
        ]);
        ip(&["-n", &self.name, "addr", "add", here_cidr, "dev", here]);
        ip(&["-n", &peer.name, "addr", "add", there_cidr, "dev", there]);
        ip(&["-n", &self.name, "link", "set", here, "up"]);
        ip(&["-n", &peer.name, "link", "set", there, "up"]);
    }

    /// Makes these `addresses` reachable from the host: a veth pair `<ns end>` here holding
    /// them (`/32` each), and on the host only a `/32` route per address through the host end —
    /// no address is added to the host. Replies leave by the namespace's default route over
    /// the veth to whichever host address the caller used. `tag` names the veth (at most
    /// 15 bytes with the pid).
    pub fn link_host(&self, tag: char, addresses: &[Ipv4Addr]) {
        let pid = std::process::id() % 1_000_000;
        let (host_end, ns_end) = (format!("wh{tag}{pid}"), format!("wn{tag}{pid}"));
        ip(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end, "netns", &self.name,
        ]);
        ip(&["link", "set", &host_end, "up"]);
        ip(&["-n", &self.name, "link", "set", &ns_end, "up"]);
        for address in addresses {
            ip(&[
                "-n",
                &self.name,
                "addr",
                "add",
                &format!("{address}/32"),
                "dev",
                &ns_end,
            ]);
            ip(&["route", "add", &format!("{address}/32"), "dev", &host_end]);
        }
        ip(&["-n", &self.name, "route", "add", "default", "dev", &ns_end]);
    }

    /// A non-blocking TCP listener bound to `addr` inside the namespace (a socket belongs to
    /// the namespace it was created in, wherever it is served from afterwards).
    pub fn listen(&self, addr: SocketAddr) -> std::net::TcpListener {
        self.run(|| {
            let listener = std::net::TcpListener::bind(addr)
                .unwrap_or_else(|err| panic!("listen on {addr} in {}: {err}", self.name));
            listener
                .set_nonblocking(true)
                .unwrap_or_else(|err| panic!("{err}"));
            listener
        })
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a thread that entered this namespace, and returns what it returns (a
    /// panic in `f` is the caller's).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|scope| {
            let entered = scope.spawn(move || {
                let file = File::open(&path)
                    .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()));
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|err| panic!("setns {}: {err}", path.display()));
                f()
            });
            entered
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// `ip netns exec <ns> <command>`: its output (as a person would run it).
    pub fn exec(&self, command: &mut Command) -> Output {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", &self.name])
            .arg(command.get_program())
            .args(command.get_args());
        for (name, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(name, value),
                None => wrapped.env_remove(name),
            };
        }
        wrapped
            .output()
            .unwrap_or_else(|err| panic!("cannot run {wrapped:?}: {err}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `ip args...`; panics with its stderr when it fails (or `ip` is missing).
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|err| {
        panic!("cannot run `ip` ({err}): network-namespace tests need iproute2 (tests/env/setup.sh)")
    });
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
