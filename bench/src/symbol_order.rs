//! Records the order weft-proxy's release code is laid out in (`weft-bench symbol-order`,
//! run by `scripts/proxy-symbol-order`): the rig's weft-proxies run under callgrind while
//! they start, take their config and certificates and carry calls of every benchmarked
//! kind (one hop, a plaintext pair, an mTLS pair; unary and a bidi stream), and every
//! function they ran, busiest first, goes to `dataplane/link/symbol-order.txt`. The
//! linker puts those first (dataplane/build.rs), so the code a sidecar runs shares pages
//! and the rest of the binary is never mapped.
//!
//! Function names carry a hash of the crate's build settings, so the order is recorded from
//! the binary `bench/run` and the image build (`-p weft-controller -p weft-proxy`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::dp::client;
use crate::dp::rig::{Bins, Rig};
use crate::meshconfig::{self, DATA_NAMESPACE};

/// How long each pair carries a bidi stream under the profiler.
const STREAM_TIME: Duration = Duration::from_secs(2);

/// Runs the rig's weft-proxies under callgrind and writes the hot-first order to `out`.
pub fn record(out: &Path) -> anyhow::Result<()> {
    let profiles = tempfile::Builder::new()
        .prefix("weft-symbol-order-")
        .tempdir()?;
    let mut bins = Bins::beside_current_exe()?;
    let proxy = bins.get("weft-proxy")?;
    bins.proxy_wrapper = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--demangle=no".into(),
        format!(
            "--callgrind-out-file={}",
            profiles.path().join("callgrind.%p").display()
        ),
    ];
    eprintln!("[symbol order] starting the rig with weft-proxy under callgrind (slow)");
    let rig = Rig::start(&bins)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for (pair, name) in [(&rig.weft, "weft"), (&rig.weft_mtls, "weft-mtls")] {
        let pair = pair
            .as_ref()
            .map_err(|why| anyhow::anyhow!("the {name} pair did not start: {why}"))?;
        let target = ([127, 0, 0, 1], pair.hop_outbound).into();
        let hop = meshconfig::authority("echo", DATA_NAMESPACE);
        let both = meshconfig::authority(&format!("echo-{name}-pair"), DATA_NAMESPACE);
        eprintln!("[symbol order] calls through the {name} proxies");
        runtime.block_on(async {
            client::probe(target, &hop).await?;
            client::probe(target, &both).await?;
            client::pingpong(target, &both, 1, Duration::ZERO, STREAM_TIME).await?;
            anyhow::Ok(())
        })?;
    }
    // Stopping the rig stops the proxies (SIGTERM); callgrind writes a profile as each exits.
    drop(rig);
    let mut costs = HashMap::new();
    for entry in std::fs::read_dir(profiles.path())? {
        let text = std::fs::read_to_string(entry?.path())?;
        for (function, cost) in self_costs(&text) {
            *costs.entry(function).or_insert(0) += cost;
        }
    }
    anyhow::ensure!(
        !costs.is_empty(),
        "callgrind wrote no profile (did the proxies exit on SIGTERM?)"
    );
    let defined: HashSet<String> = weft_tests::symbols::functions_in_address_order(&proxy)?
        .into_iter()
        .collect();
    let order = hot_first(costs, &defined);
    eprintln!(
        "[symbol order] {} functions of weft-proxy ran; writing {}",
        order.len(),
        out.display()
    );
    std::fs::write(out, order.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", out.display()))
}

/// Each function's own instruction count in a callgrind profile (`--demangle=no`, so names
/// are the symbols the linker sees). Cost lines follow `fn=`; the line after a `calls=`
/// line is the callee's inclusive cost and is not the caller's own.
fn self_costs(profile: &str) -> HashMap<String, u64> {
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut costs = HashMap::new();
    let mut current: Option<&str> = None;
    let mut after_call = false;
    for line in profile.lines() {
        if let Some((kind, rest)) = line.split_once('=')
            && (kind == "fn" || kind == "cfn")
        {
            // `(id) name` defines a compressed name; `(id)` alone refers to one.
            let (id, name) = rest.split_once(' ').unwrap_or((rest, ""));
            if !name.is_empty() {
                names.insert(id, name);
            }
            if kind == "fn" {
                current = names.get(id).copied();
                if let Some(function) = current {
                    costs.entry(function.to_string()).or_insert(0);
                }
            }
            continue;
        }
        if line.starts_with("calls=") {
            after_call = true;
            continue;
        }
        let is_cost = line.starts_with(|c: char| c.is_ascii_digit() || "+-*".contains(c));
        if !is_cost {
            continue;
        }
        if std::mem::take(&mut after_call) {
            continue;
        }
        let cost = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u64>().ok());
        if let (Some(function), Some(cost)) = (current, cost) {
            *costs.entry(function.to_string()).or_insert(0) += cost;
        }
    }
    costs
}

/// The functions of `defined` that ran, busiest first (ties by name, so the file is
/// stable). ring chooses its assembly by CPU features at run time and the profiler's
/// CPU is not the benchmark's, so every variant of ring's (small) assembly follows.
fn hot_first(costs: HashMap<String, u64>, defined: &HashSet<String>) -> Vec<String> {
    let mut ran: Vec<(String, u64)> = costs
        .into_iter()
        .filter(|(function, _)| defined.contains(function))
        .collect();
    ran.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut order: Vec<String> = ran.into_iter().map(|(function, _)| function).collect();
    let listed: HashSet<String> = order.iter().cloned().collect();
    let mut ring_assembly: Vec<String> = defined
        .iter()
        .filter(|s| s.starts_with("ring_core_") || s.contains("nistz256"))
        .filter(|s| !listed.contains(*s))
        .cloned()
        .collect();
    ring_assembly.sort();
    order.extend(ring_assembly);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = "\
events: Ir
fn=(1) _ZN4main17h0E
5 100
+1 20
cfl=(2)
cfn=(2) _ZN4work17h1E
calls=3 0
6 900
fn=(2)
0 400
fn=(3) memcpy
0 7
";

    #[test]
    fn self_cost_leaves_out_what_callees_cost() {
        let costs = self_costs(PROFILE);
        assert_eq!(costs["_ZN4main17h0E"], 120);
        assert_eq!(costs["_ZN4work17h1E"], 400);
        assert_eq!(costs["memcpy"], 7);
    }

    #[test]
    fn busiest_first_only_what_the_binary_defines_then_ring_assembly() {
        let defined: HashSet<String> = [
            "_ZN4main17h0E",
            "_ZN4work17h1E",
            "ring_core_0_17_14__sha256_block_data_order_avx2",
            "unrun",
        ]
        .map(String::from)
        .into();
        let order = hot_first(self_costs(PROFILE), &defined);
        assert_eq!(
            order,
            [
                "_ZN4work17h1E",
                "_ZN4main17h0E",
                "ring_core_0_17_14__sha256_block_data_order_avx2"
            ]
        );
    }
}
