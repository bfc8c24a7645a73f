//! `weftctl top`: per gRPC method, requests per second, success rate and p99 latency, like
//! `linkerd viz top` — computed from two readings of proxies' `/metrics` an interval apart,
//! or asked of Prometheus. The text-format reading, the differences and the quantile are
//! pure functions.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::proxy_status::table;

/// One row's key: direction, destination Service, `grpc_service/grpc_method`.
pub type MethodKey = (String, String, String);

/// Counters of one method at one moment (summed over proxies and label sets).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MethodCounters {
    pub rpcs: f64,
    pub ok: f64,
    /// Cumulative latency buckets: upper bound (seconds) → count.
    pub buckets: BTreeMap<OrderedBound, f64>,
}

/// A bucket bound that sorts (`+Inf` last).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderedBound(pub f64);
impl Eq for OrderedBound {}
impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedBound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The per-method counters in Prometheus text exposition `text` (weft-proxy's `/metrics`).
pub fn read_counters(text: &str, into: &mut BTreeMap<MethodKey, MethodCounters>) {
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
            None => continue,
        };
        let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
        let key = || {
            (
                label("direction"),
                label("destination_service"),
                format!("{}/{}", label("grpc_service"), label("grpc_method")),
            )
        };
        match name {
            "weft_proxy_rpcs_total" => {
                let counters = into.entry(key()).or_default();
                counters.rpcs += value;
                if labels.get("grpc_code").map(String::as_str) == Some("OK") {
                    counters.ok += value;
                }
            }
            "weft_proxy_rpc_duration_seconds_bucket" => {
                let bound = match label("le").as_str() {
                    "+Inf" => f64::INFINITY,
                    le => match le.parse() {
                        Ok(bound) => bound,
                        Err(_) => continue,
                    },
                };
                *into
                    .entry(key())
                    .or_default()
                    .buckets
                    .entry(OrderedBound(bound))
                    .or_default() += value;
            }
            _ => {}
        }
    }
}

/// `k="v",k2="v2"` → map (values unescaped for `\"` and `\\`).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

/// One table row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: MethodKey,
    pub rps: f64,
    /// `None` with no RPC in the window.
    pub success: Option<f64>,
    /// Seconds; `None` with no RPC in the window.
    pub p99: Option<f64>,
}

/// Rows from two readings `window` apart (methods with no RPC in between are left out).
pub fn rows_between(
    before: &BTreeMap<MethodKey, MethodCounters>,
    after: &BTreeMap<MethodKey, MethodCounters>,
    window: Duration,
) -> Vec<Row> {
    let seconds = window.as_secs_f64().max(f64::EPSILON);
    let mut rows = Vec::new();
    for (key, now) in after {
        let was = before.get(key).cloned().unwrap_or_default();
        // A proxy restart resets counters: take the new value whole.
        let delta = |now: f64, was: f64| if now >= was { now - was } else { now };
        let rpcs = delta(now.rpcs, was.rpcs);
        if rpcs <= 0.0 {
            continue;
        }
        let buckets: Vec<(f64, f64)> = now
            .buckets
            .iter()
            .map(|(bound, count)| {
                let previous = was.buckets.get(bound).copied().unwrap_or(0.0);
                (bound.0, delta(*count, previous))
            })
            .collect();
        rows.push(Row {
            key: key.clone(),
            rps: rpcs / seconds,
            success: Some(delta(now.ok, was.ok) / rpcs),
            p99: quantile(0.99, &buckets),
        });
    }
    sort(&mut rows);
    rows
}

/// The `q` quantile of cumulative `(upper bound, count)` buckets, interpolated linearly
/// within the bucket as Prometheus' `histogram_quantile` does.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, count);
    }
    None
}

fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| b.rps.total_cmp(&a.rps).then_with(|| a.key.cmp(&b.key)));
}

/// The rows as a table.
pub fn render(rows: &[Row]) -> String {
    let mut table_rows = vec![
        ["DIRECTION", "SERVICE", "METHOD", "RPS", "SUCCESS", "P99"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for row in rows {
        table_rows.push(vec![
            row.key.0.clone(),
            row.key.1.clone(),
            row.key.2.clone(),
            format!("{:.1}", row.rps),
            row.success
                .map_or("-".into(), |s| format!("{:.2}%", s * 100.0)),
            row.p99.map_or("-".into(), format_seconds),
        ]);
    }
    let mut out = table(&table_rows);
    if rows.is_empty() {
        out.push_str("(no RPCs in the last interval)\n");
    }
    out
}

fn format_seconds(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1}ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2}s")
    }
}

/// Rows from Prometheus at `base` over `window` (at least a minute: two scrapes must fall
/// in it).
pub fn rows_from_prometheus(
    base: &str,
    window: Duration,
    timeout: Duration,
) -> anyhow::Result<Vec<Row>> {
    let range = format!("{}s", window.as_secs().max(60));
    let by = "direction, destination_service, grpc_service, grpc_method";
    let rate = |selector: &str| {
        format!("sum by ({by}) (rate(weft_proxy_rpcs_total{{{selector}}}[{range}]))")
    };
    let rps = query(base, &rate(""), timeout)?;
    let ok = query(base, &rate("grpc_code=\"OK\""), timeout)?;
    let p99 = query(
        base,
        &format!(
            "histogram_quantile(0.99, sum by ({by}, le) (rate(weft_proxy_rpc_duration_seconds_bucket[{range}])))"
        ),
        timeout,
    )?;
    let mut rows = Vec::new();
    for (key, rps) in &rps {
        if *rps <= 0.0 {
            continue;
        }
        rows.push(Row {
            key: key.clone(),
            rps: *rps,
            success: Some(ok.get(key).copied().unwrap_or(0.0) / rps),
            p99: p99.get(key).copied().filter(|v| v.is_finite()),
        });
    }
    sort(&mut rows);
    Ok(rows)
}

fn query(base: &str, promql: &str, timeout: Duration) -> anyhow::Result<BTreeMap<MethodKey, f64>> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let text = agent
        .get(&url)
        .query("query", promql)
        .call()
        .with_context(|| format!("querying Prometheus at {url}"))?
        .body_mut()
        .read_to_string()?;
    let body: Value =
        serde_json::from_str(&text).with_context(|| format!("Prometheus answered: {text}"))?;
    anyhow::ensure!(
        body["status"] == "success",
        "Prometheus rejected the query: {body}"
    );
    let mut values = BTreeMap::new();
    for series in body["data"]["result"].as_array().into_iter().flatten() {
        let metric = &series["metric"];
        let label = |k: &str| metric[k].as_str().unwrap_or_default().to_owned();
        let key = (
            label("direction"),
            label("destination_service"),
            format!("{}/{}", label("grpc_service"), label("grpc_method")),
        );
        if let Some(value) = series["value"][1].as_str().and_then(|v| v.parse().ok()) {
            values.insert(key, value);
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
# TYPE weft_proxy_rpcs counter
weft_proxy_rpcs_total{direction=\"outbound\",destination_service=\"greeter:50051\",grpc_service=\"weft.test.Echo\",grpc_method=\"Unary\",grpc_code=\"OK\",fault_injected=\"false\"} 100
weft_proxy_rpcs_total{direction=\"outbound\",destination_service=\"greeter:50051\",grpc_service=\"weft.test.Echo\",grpc_method=\"Unary\",grpc_code=\"UNAVAILABLE\",fault_injected=\"true\"} 10
weft_proxy_rpc_duration_seconds_bucket{le=\"0.001\",direction=\"outbound\",destination_service=\"greeter:50051\",grpc_service=\"weft.test.Echo\",grpc_method=\"Unary\",grpc_code=\"OK\"} 50
weft_proxy_rpc_duration_seconds_bucket{le=\"0.01\",direction=\"outbound\",destination_service=\"greeter:50051\",grpc_service=\"weft.test.Echo\",grpc_method=\"Unary\",grpc_code=\"OK\"} 100
weft_proxy_rpc_duration_seconds_bucket{le=\"+Inf\",direction=\"outbound\",destination_service=\"greeter:50051\",grpc_service=\"weft.test.Echo\",grpc_method=\"Unary\",grpc_code=\"OK\"} 100
";

    #[test]
    fn rates_success_and_p99_come_from_two_readings() {
        let after = BEFORE.replace("} 100\n", "} 280\n").replace(
            "grpc_code=\"UNAVAILABLE\",fault_injected=\"true\"} 10",
            "grpc_code=\"UNAVAILABLE\",fault_injected=\"true\"} 30",
        );
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        read_counters(BEFORE, &mut a);
        read_counters(&after, &mut b);
        let rows = rows_between(&a, &b, Duration::from_secs(2));
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        assert_eq!(
            row.key,
            (
                "outbound".into(),
                "greeter:50051".into(),
                "weft.test.Echo/Unary".into()
            )
        );
        // 180 OK + 20 failed over 2 s.
        assert!((row.rps - 100.0).abs() < 1e-9, "{row:?}");
        assert!((row.success.unwrap() - 0.9).abs() < 1e-9, "{row:?}");
        // All 180 new OK calls fell in (1 ms, 10 ms]: p99 interpolates inside that bucket.
        let p99 = row.p99.unwrap();
        assert!(p99 > 0.001 && p99 <= 0.01, "{p99}");
        let out = render(&rows);
        assert!(out.contains("weft.test.Echo/Unary  100.0  90.00%"), "{out}");
    }

    #[test]
    fn quantile_interpolates_like_prometheus() {
        let buckets = [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        assert!((quantile(0.5, &buckets).unwrap() - 0.1).abs() < 1e-9);
        assert!((quantile(0.75, &buckets).unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(quantile(0.5, &[(0.1, 0.0)]), None);
        // In the +Inf bucket: the highest finite bound.
        assert_eq!(
            quantile(0.99, &[(0.1, 1.0), (f64::INFINITY, 10.0)]),
            Some(0.1)
        );
    }

    #[test]
    fn labels_with_escapes_are_read() {
        let labels = parse_labels(r#"a="x\"y",b="c,d",le="+Inf""#);
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "c,d");
        assert_eq!(labels["le"], "+Inf");
    }
}
