use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::*;

#[test]
fn prometheus_accept_header_gets_openmetrics() {
    // What Prometheus 2.x sends.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                      version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(
        Exposition::negotiate(Some(prometheus)),
        Exposition::OpenMetrics
    );
    assert_eq!(Exposition::negotiate(None), Exposition::Text);
    assert_eq!(Exposition::negotiate(Some("*/*")), Exposition::Text);
    assert_eq!(
        Exposition::negotiate(Some("text/plain;version=0.0.4")),
        Exposition::Text
    );
    assert_eq!(
        Exposition::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.3")),
        Exposition::Text
    );
    assert_eq!(
        Exposition::negotiate(Some("application/openmetrics-text; q=0")),
        Exposition::Text
    );
}

fn sample_registry() -> Registry {
    let mut registry = Registry::default();
    let counter = Counter::<u64>::default();
    counter.inc_by(3);
    registry.register("demo_requests", "Requests served", counter);
    let histogram = Histogram::new([0.1, 1.0]);
    histogram.observe(0.5);
    registry.register("demo_latency_seconds", "Latency", histogram);
    register_process_metrics(&mut registry, "demo", "1.2.3");
    registry
}

#[test]
fn text_format_names_counter_families_by_their_samples_and_has_no_eof() {
    let registry = sample_registry();
    let openmetrics = encode(&registry, Exposition::OpenMetrics).unwrap();
    assert!(openmetrics.contains("# TYPE demo_requests counter\n"));
    assert!(openmetrics.ends_with("# EOF\n"));

    let text = encode(&registry, Exposition::Text).unwrap();
    assert!(
        text.contains("# HELP demo_requests_total Requests served.\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE demo_requests_total counter\ndemo_requests_total 3\n"));
    assert!(text.contains("# TYPE demo_latency_seconds histogram\n"));
    assert!(text.contains("demo_latency_seconds_bucket{le=\"1.0\"} 1\n"));
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("demo_build_info{version=\"1.2.3\"} 1\n"),
        "{text}"
    );
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
}

#[test]
fn info_families_become_gauges_in_the_text_format() {
    let openmetrics =
        "# HELP x_build Build.\n# TYPE x_build info\nx_build_info{v=\"1\"} 1\n# EOF\n";
    assert_eq!(
        openmetrics_to_text(openmetrics),
        "# HELP x_build_info Build.\n# TYPE x_build_info gauge\nx_build_info{v=\"1\"} 1\n"
    );
}

#[test]
fn process_stats_parse_proc_files() {
    // A command name with spaces and a parenthesis, as `/proc/<pid>/stat` may hold.
    let stat = "4242 (weft proxy) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 \
                12000 104857600 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
    let status = "Name:\tweft-proxy\nVmRSS:\t    8192 kB\nThreads:\t3\n";
    let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 10\n";
    let stats = ProcessStats::parse(stat, status, system);
    assert_eq!(stats.cpu_seconds, Some(3.0));
    assert_eq!(stats.virtual_bytes, Some(104_857_600.0));
    assert_eq!(stats.resident_bytes, Some(8192.0 * 1024.0));
    assert_eq!(stats.start_time_seconds, Some(1_700_000_120.0));
    assert_eq!(
        parse_max_fds(
            "Limit                     Soft Limit           Hard Limit           Units\n\
             Max open files            1024                 524288               files\n"
        ),
        Some(1024.0)
    );
}

#[test]
fn process_stats_of_this_process_are_read() {
    let stats = ProcessStats::read();
    assert!(stats.resident_bytes.unwrap_or(0.0) > 0.0, "{stats:?}");
    assert!(stats.open_fds.unwrap_or(0.0) >= 3.0, "{stats:?}");
    assert!(stats.start_time_seconds.unwrap_or(0.0) > 1.6e9, "{stats:?}");
    assert!(stats.cpu_seconds.is_some(), "{stats:?}");
}
