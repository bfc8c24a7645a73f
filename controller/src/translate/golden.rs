//! Golden-file tests: small indexes (YAML under `testdata/<case>/input.yaml`, the same
//! kinds and serde types as local mode) translated, rendered readably and compared with
//! `testdata/<case>/*.txt`. `WEFT_UPDATE_GOLDEN=1 cargo test -p weft-controller --lib translate`
//! rewrites them; review the diff.
//!
//! Rendering: prost messages have no serde, so a resource is its `{:#?}` with every nested
//! `Any` decoded in place, default-valued fields (`None`, `0`, `false`, `""`, `[]`, `{}`)
//! dropped, and short blocks folded onto one line.

use std::fmt::Write as _;
use std::path::PathBuf;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::testutil::{index, workload};
use super::{NodeInfo, Translation, inbound_listener, outbound_listener, translate};
use crate::ads::ResourceType;
use crate::api::MtlsMode;

/// Lines longer than this stay unfolded.
const FOLD_WIDTH: usize = 100;

fn decode_pretty(type_url: &str, bytes: &[u8]) -> Option<String> {
    fn pretty<M: Message + Name + Default + std::fmt::Debug>(
        type_url: &str,
        bytes: &[u8],
    ) -> Option<String> {
        (type_url == M::type_url()).then(|| match M::decode(bytes) {
            Ok(message) => format!("{message:#?}"),
            Err(err) => format!("<undecodable {type_url}: {err}>"),
        })
    }
    pretty::<Cluster>(type_url, bytes)
        .or_else(|| pretty::<ClusterLoadAssignment>(type_url, bytes))
        .or_else(|| pretty::<RouteConfiguration>(type_url, bytes))
        .or_else(|| pretty::<Listener>(type_url, bytes))
        .or_else(|| pretty::<HttpConnectionManager>(type_url, bytes))
        .or_else(|| pretty::<HttpFault>(type_url, bytes))
        .or_else(|| pretty::<Router>(type_url, bytes))
        .or_else(|| pretty::<HttpProtocolOptions>(type_url, bytes))
        .or_else(|| pretty::<DownstreamTlsContext>(type_url, bytes))
        .or_else(|| pretty::<UpstreamTlsContext>(type_url, bytes))
        .or_else(|| pretty::<RawBuffer>(type_url, bytes))
        .or_else(|| pretty::<TlsInspector>(type_url, bytes))
}

/// A packed resource, readably.
pub(crate) fn render_any(any: &Any) -> String {
    let text = decode_pretty(&any.type_url, &any.value)
        .unwrap_or_else(|| format!("<unknown type {}>", any.type_url));
    fold(&prune(&expand_anys(&text)))
}

/// Replaces the byte list of every `Any { type_url, value }` with the decoded message.
fn expand_anys(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let url = line
            .trim()
            .strip_prefix("type_url: \"")
            .and_then(|r| r.strip_suffix("\","));
        let next = lines.get(i + 1).map(|l| l.trim());
        if let (Some(url), Some(value)) = (url, next)
            && value.starts_with("value: [")
        {
            let indent = &line[..line.len() - line.trim_start().len()];
            let mut bytes = Vec::new();
            let mut j = i + 2;
            if value != "value: []," {
                while j < lines.len() && lines[j].trim() != "]," {
                    bytes.extend(lines[j].trim().trim_end_matches(',').parse::<u8>());
                    j += 1;
                }
                j += 1;
            }
            out.push(format!("{indent}type_url: \"{url}\","));
            let decoded = decode_pretty(url, &bytes).unwrap_or_else(|| format!("{bytes:?}"));
            let decoded = expand_anys(&decoded);
            for (k, decoded_line) in decoded.lines().enumerate() {
                let prefix = if k == 0 {
                    format!("{indent}value: ")
                } else {
                    indent.to_owned()
                };
                out.push(format!("{prefix}{decoded_line}"));
            }
            if let Some(last) = out.last_mut() {
                last.push(',');
            }
            i = j;
            continue;
        }
        out.push(line.to_owned());
        i += 1;
    }
    out.join("\n")
}

/// Drops fields holding their default value.
fn prune(text: &str) -> String {
    const DEFAULTS: [&str; 6] = [": None,", ": [],", ": {},", ": false,", ": 0,", ": \"\","];
    text.lines()
        .filter(|line| !DEFAULTS.iter().any(|d| line.trim_end().ends_with(d)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Folds every block (`X {`…`}`, `Some(`…`)`, `[`…`]`) that fits in `FOLD_WIDTH` onto one line.
fn fold(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let (folded, next) = fold_at(&lines, i);
        let _ = writeln!(out, "{folded}");
        i = next;
    }
    out
}

/// The line at `i` (folded with its block when short enough) and the index after it.
fn fold_at(lines: &[&str], i: usize) -> (String, usize) {
    let line = lines[i];
    let opens = line.ends_with('{') || line.ends_with('(') || line.ends_with('[');
    if !opens {
        return (line.to_owned(), i + 1);
    }
    let indent = line.len() - line.trim_start().len();
    let mut parts = Vec::new();
    let mut j = i + 1;
    while j < lines.len() {
        let inner = lines[j];
        let inner_indent = inner.len() - inner.trim_start().len();
        if inner_indent <= indent {
            break;
        }
        let (folded, next) = fold_at(lines, j);
        parts.push(folded);
        j = next;
    }
    let Some(close) = lines.get(j) else {
        return (line.to_owned(), i + 1);
    };
    let body: Vec<&str> = parts
        .iter()
        .map(|p| p.trim().trim_end_matches(','))
        .collect();
    let (open_pad, close_pad) = if line.ends_with('{') && !body.is_empty() {
        (" ", " ")
    } else {
        ("", "")
    };
    let one_line = format!(
        "{line}{open_pad}{}{close_pad}{}",
        body.join(", "),
        close.trim()
    );
    if one_line.len() <= FOLD_WIDTH && parts.iter().all(|p| !p.contains('\n')) {
        return (one_line, j + 1);
    }
    if let [only] = parts.as_slice()
        && line.ends_with('(')
    {
        // `Some(\n    X {\n        a,\n    },\n)` → `Some(X {\n    a,\n})`
        let inner: Vec<&str> = only.lines().collect();
        let mut block = vec![format!("{line}{}", inner[0].trim_start())];
        for middle in &inner[1..] {
            block.push(middle.strip_prefix("    ").unwrap_or(middle).to_owned());
        }
        if let Some(last) = block.last_mut() {
            let trimmed = last.trim_end_matches(',').to_owned();
            *last = format!("{trimmed}{}", close.trim());
        }
        return (block.join("\n"), j + 1);
    }
    let mut block = vec![line.to_owned()];
    block.extend(parts);
    block.push((*close).to_owned());
    (block.join("\n"), j + 1)
}

fn testdata(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/translate/testdata")
        .join(case)
}

/// Compares `actual` with `testdata/<case>/<file>`, or rewrites it under WEFT_UPDATE_GOLDEN=1.
fn check(case: &str, file: &str, actual: &str) {
    let path = testdata(case).join(file);
    if std::env::var_os("WEFT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the translation; if the change is intended, rerun with \
         WEFT_UPDATE_GOLDEN=1 and review the diff.\n--- actual ---\n{actual}",
        path.display()
    );
}

fn render_type(translation: &Translation, ty: ResourceType) -> String {
    let mut out = String::new();
    for resource in translation.snapshot.resources(ty).iter() {
        let _ = write!(
            out,
            "## {}\n{}\n",
            resource.name,
            render_any(&resource.body)
        );
    }
    out
}

fn render_reports(translation: &Translation) -> String {
    let mut out = String::new();
    for (key, report) in translation.reports.iter() {
        let _ = writeln!(out, "{key} (generation {:?})", report.generation);
        let _ = writeln!(out, "  accepted: {:?}", report.accepted);
        let _ = writeln!(out, "  resolved_refs: {:?}", report.resolved_refs);
        for note in &report.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    for warning in &translation.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

fn golden_case(case: &str) -> Translation {
    let input = std::fs::read_to_string(testdata(case).join("input.yaml")).unwrap();
    let translation = translate(&index(&input));
    check(
        case,
        "clusters.txt",
        &render_type(&translation, ResourceType::Cluster),
    );
    check(
        case,
        "endpoints.txt",
        &render_type(&translation, ResourceType::Endpoint),
    );
    for resource in translation.snapshot.resources(ResourceType::Route).iter() {
        let file = format!("routes.{}.txt", resource.name.replace('/', "_"));
        check(
            case,
            &file,
            &format!("## {}\n{}", resource.name, render_any(&resource.body)),
        );
    }
    check(case, "reports.txt", &render_reports(&translation));
    translation
}

#[test]
fn golden_demo() {
    golden_case("demo");
}

#[test]
fn golden_mesh() {
    golden_case("mesh");
}

#[test]
fn golden_listener() {
    let node = NodeInfo::new("client-0", "default", "127.0.0.1:15001".parse().unwrap());
    let (name, listener) = outbound_listener(&node);
    check(
        "listener",
        "outbound.txt",
        &format!("## {name}\n{}", render_any(&listener)),
    );
}

#[test]
fn golden_inbound_listeners_and_cluster() {
    let w = workload("greeter-0", "default", "127.0.0.1:15006");
    for (mode, file) in [
        (MtlsMode::Strict, "inbound.strict.txt"),
        (MtlsMode::Permissive, "inbound.permissive.txt"),
        (MtlsMode::Disable, "inbound.disable.txt"),
    ] {
        let (name, listener) = inbound_listener(&w, mode);
        check(
            "listener",
            file,
            &format!("## {name} ({mode:?})\n{}", render_any(&listener)),
        );
    }
    let cluster = super::cluster::inbound_cluster(w.app_addr);
    check(
        "listener",
        "inbound.cluster.txt",
        &format!(
            "## {}\n{}",
            cluster.name,
            render_any(&envoy_types::util::pack_any(cluster.clone()))
        ),
    );
}

#[test]
fn rendering_folds_and_prunes() {
    let text = "Foo {\n    a: None,\n    b: Some(\n        Bar {\n            c: 1,\n            d: 0,\n        },\n    ),\n    e: [],\n}";
    assert_eq!(fold(&prune(text)), "Foo { b: Some(Bar { c: 1 }) }\n");
}
