//! Every case of outlier detection on one endpoint: what counts, detections and their
//! enforcement, the ejection limit, ejection times and their back-off, return to service.

use std::time::Duration;

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Envoy's defaults, with gateway failures enforced too and no ejection limit in the way.
fn config() -> OutlierDetection {
    OutlierDetection {
        consecutive_5xx: 3,
        consecutive_gateway_failure: 2,
        enforcing_consecutive_5xx: 100,
        enforcing_consecutive_gateway_failure: 100,
        interval: secs(10),
        base_ejection_time: secs(30),
        max_ejection_time: secs(300),
        max_ejection_time_jitter: Duration::ZERO,
        max_ejection_percent: 100,
        always_eject_one_host: false,
    }
}

/// Ten endpoints, none ejected.
fn healthy_cluster() -> ClusterView {
    ClusterView {
        ejected: 0,
        endpoints: 10,
    }
}

/// Draws that always pass an enforcing percentage (and take no jitter).
fn lowest(_: u64) -> u64 {
    0
}

fn record(
    state: &mut HostState,
    config: &OutlierDetection,
    status: u16,
    now: Duration,
) -> Option<Ejection> {
    state.record(config, status, now, healthy_cluster, lowest)
}

/// Records `statuses` at `now`, returning the last result.
fn record_all(
    state: &mut HostState,
    config: &OutlierDetection,
    statuses: &[u16],
    now: Duration,
) -> Option<Ejection> {
    let mut last = None;
    for &status in statuses {
        last = record(state, config, status, now);
    }
    last
}

#[test]
fn successes_and_client_errors_reset_both_counts() {
    let config = config();
    let mut state = HostState::default();
    for status in [200, 404, 429, 499, 400, 301] {
        assert_eq!(record(&mut state, &config, 503, secs(0)), None);
        assert_eq!(state.counts(), (1, 1));
        assert_eq!(record(&mut state, &config, status, secs(0)), None);
        assert_eq!(state.counts(), (0, 0), "HTTP {status}");
    }
}

#[test]
fn consecutive_5xx_eject_at_the_threshold() {
    let config = OutlierDetection {
        consecutive_gateway_failure: 0,
        ..config()
    };
    let mut state = HostState::default();
    assert_eq!(record_all(&mut state, &config, &[500, 501], secs(1)), None);
    assert_eq!(state.counts(), (2, 0));
    let ejected = record(&mut state, &config, 500, secs(1));
    assert_eq!(
        ejected,
        Some(Ejection {
            cause: Cause::Consecutive5xx,
            until: secs(31),
        })
    );
    assert!(state.is_ejected(secs(30)));
    assert!(!state.is_ejected(secs(31)));
    assert_eq!(state.ejections(), 1);
    assert_eq!(state.counts(), (0, 0), "an ejection zeroes both counts");
}

#[test]
fn gateway_failures_count_both_and_other_5xx_zero_the_gateway_count() {
    let config = OutlierDetection {
        consecutive_gateway_failure: 3,
        consecutive_5xx: 10,
        ..config()
    };
    let mut state = HostState::default();
    record_all(&mut state, &config, &[502, 504], secs(0));
    assert_eq!(state.counts(), (2, 2));
    record(&mut state, &config, 500, secs(0));
    assert_eq!(state.counts(), (3, 0), "a 500 is no gateway failure");
    record_all(&mut state, &config, &[503, 503], secs(0));
    let ejected = record(&mut state, &config, 502, secs(0));
    assert_eq!(
        ejected.map(|e| e.cause),
        Some(Cause::ConsecutiveGatewayFailure)
    );
}

#[test]
fn unenforced_gateway_detection_leaves_it_to_consecutive_5xx() {
    // Envoy's default: gateway failures are detected but never enforced.
    let config = OutlierDetection {
        consecutive_5xx: 5,
        consecutive_gateway_failure: 5,
        enforcing_consecutive_gateway_failure: 0,
        ..config()
    };
    let mut state = HostState::default();
    assert_eq!(record_all(&mut state, &config, &[503; 4], secs(0)), None);
    let ejected = record(&mut state, &config, 503, secs(0));
    assert_eq!(ejected.map(|e| e.cause), Some(Cause::Consecutive5xx));
}

#[test]
fn a_detection_zeroes_its_count_even_when_not_enforced() {
    let config = OutlierDetection {
        enforcing_consecutive_5xx: 0,
        consecutive_gateway_failure: 0,
        ..config()
    };
    let mut state = HostState::default();
    assert_eq!(record_all(&mut state, &config, &[500; 3], secs(0)), None);
    assert_eq!(state.counts(), (0, 0));
    assert!(!state.is_ejected(secs(0)));
    assert_eq!(state.ejections(), 0);
}

#[test]
fn zero_thresholds_never_detect() {
    let config = OutlierDetection {
        consecutive_5xx: 0,
        consecutive_gateway_failure: 0,
        ..config()
    };
    let mut state = HostState::default();
    assert_eq!(record_all(&mut state, &config, &[503; 100], secs(0)), None);
    assert_eq!(state.counts(), (100, 100));
}

#[test]
fn the_enforcing_percentage_is_a_draw() {
    let config = OutlierDetection {
        enforcing_consecutive_5xx: 30,
        consecutive_gateway_failure: 0,
        consecutive_5xx: 1,
        ..config()
    };
    for (draw, ejects) in [(0, true), (29, true), (30, false), (99, false)] {
        let mut state = HostState::default();
        let mut asked = Vec::new();
        let ejected = state.record(&config, 500, secs(0), healthy_cluster, |n| {
            asked.push(n);
            draw
        });
        assert_eq!(ejected.is_some(), ejects, "draw {draw}");
        assert_eq!(asked, vec![100]);
    }
}

#[test]
fn the_ejection_limit_counts_the_cluster() {
    let config = OutlierDetection {
        consecutive_5xx: 1,
        consecutive_gateway_failure: 0,
        max_ejection_percent: 20,
        ..config()
    };
    let eject = |config: &OutlierDetection, ejected, endpoints| {
        let view = ClusterView { ejected, endpoints };
        let mut state = HostState::default();
        state
            .record(config, 500, secs(0), || view, lowest)
            .is_some()
    };
    // 100 × (ejected + 1) / endpoints ≤ 20
    assert!(eject(&config, 0, 5));
    assert!(!eject(&config, 1, 5));
    assert!(eject(&config, 1, 10));
    assert!(!eject(&config, 2, 10));
    assert!(!eject(&config, 0, 4), "25% > 20%");
    assert!(!eject(&config, 0, 0));
    let always_one = OutlierDetection {
        always_eject_one_host: true,
        ..config
    };
    assert!(eject(&always_one, 0, 4), "always_eject_one_host");
    assert!(!eject(&always_one, 1, 4));
    let everything = OutlierDetection {
        max_ejection_percent: 100,
        ..config
    };
    assert!(eject(&everything, 3, 4), "the last endpoint");
    let nothing = OutlierDetection {
        max_ejection_percent: 0,
        ..config
    };
    assert!(!eject(&nothing, 0, 100));
}

#[test]
fn the_cluster_is_asked_only_on_a_detection() {
    let config = config();
    let mut state = HostState::default();
    let asked = std::cell::Cell::new(0);
    let view = || {
        asked.set(asked.get() + 1);
        healthy_cluster()
    };
    state.record(&config, 500, secs(0), view, lowest);
    state.record(&config, 200, secs(0), view, lowest);
    assert_eq!(asked.get(), 0);
}

#[test]
fn ejections_grow_with_the_ejection_count_up_to_the_maximum() {
    let config = OutlierDetection {
        consecutive_5xx: 1,
        consecutive_gateway_failure: 0,
        base_ejection_time: secs(30),
        max_ejection_time: secs(100),
        // Long enough that no decay happens in this test.
        interval: secs(10_000),
        ..config()
    };
    let mut state = HostState::default();
    let mut now = secs(0);
    let mut lengths = Vec::new();
    for _ in 0..6 {
        let ejection = record(&mut state, &config, 500, now).unwrap();
        lengths.push((ejection.until - now).as_secs());
        now = ejection.until;
    }
    assert_eq!(lengths, [30, 60, 90, 100, 100, 100]);
    // Envoy's back-off stops at the first multiple past max + base.
    assert_eq!(state.ejections(), 5);
}

#[test]
fn max_ejection_time_below_base_caps_at_base() {
    let config = OutlierDetection {
        consecutive_5xx: 1,
        consecutive_gateway_failure: 0,
        base_ejection_time: secs(60),
        max_ejection_time: secs(10),
        interval: secs(10_000),
        ..config()
    };
    let mut state = HostState::default();
    let first = record(&mut state, &config, 500, secs(0)).unwrap();
    assert_eq!(first.until, secs(60));
    let second = record(&mut state, &config, 500, secs(60)).unwrap();
    assert_eq!(second.until, secs(120));
}

#[test]
fn jitter_adds_up_to_its_maximum() {
    let config = OutlierDetection {
        consecutive_5xx: 1,
        consecutive_gateway_failure: 0,
        max_ejection_time_jitter: Duration::from_millis(500),
        ..config()
    };
    let mut asked = Vec::new();
    let mut state = HostState::default();
    let ejection = state.record(&config, 500, secs(0), healthy_cluster, |n| {
        asked.push(n);
        n - 1
    });
    assert_eq!(asked, vec![100, 501]);
    assert_eq!(
        ejection.unwrap().until,
        secs(30) + Duration::from_millis(500)
    );
}

#[test]
fn an_ejected_endpoint_is_not_ejected_again_until_it_returns() {
    let config = OutlierDetection {
        consecutive_5xx: 2,
        consecutive_gateway_failure: 0,
        ..config()
    };
    let mut state = HostState::default();
    let ejection = record_all(&mut state, &config, &[500, 500], secs(0)).unwrap();
    // Late answers of attempts sent before the ejection (or in panic mode).
    assert_eq!(record_all(&mut state, &config, &[500; 5], secs(1)), None);
    assert_eq!(state.ejections(), 1);
    assert!(state.is_ejected(secs(29)));
    // Back in service with both counts zeroed: it takes the full threshold again.
    assert_eq!(record(&mut state, &config, 500, ejection.until), None);
    assert_eq!(state.counts(), (1, 0));
    let again = record(&mut state, &config, 500, ejection.until).unwrap();
    assert_eq!(again.until - ejection.until, secs(60), "second ejection");
}

#[test]
fn the_ejection_count_decays_one_per_interval_in_service() {
    let config = OutlierDetection {
        consecutive_5xx: 1,
        consecutive_gateway_failure: 0,
        base_ejection_time: secs(30),
        max_ejection_time: secs(300),
        interval: secs(10),
        ..config()
    };
    let mut state = HostState::default();
    let mut now = secs(0);
    for _ in 0..3 {
        now = record(&mut state, &config, 500, now).unwrap().until;
    }
    assert_eq!(state.ejections(), 3);
    // 25 s in service after the third ejection ended: two intervals.
    record(&mut state, &config, 200, now + secs(25));
    assert_eq!(state.ejections(), 1);
    // The partial interval carries over: 5 s more completes the third.
    record(&mut state, &config, 200, now + secs(30));
    assert_eq!(state.ejections(), 0);
    record(&mut state, &config, 200, now + secs(1000));
    assert_eq!(state.ejections(), 0);
    let next = record(&mut state, &config, 500, now + secs(1000)).unwrap();
    assert_eq!(
        next.until - (now + secs(1000)),
        secs(30),
        "back to the base time"
    );
}

#[test]
fn decay_stops_while_ejected() {
    let config = OutlierDetection {
        consecutive_5xx: 1,
        consecutive_gateway_failure: 0,
        interval: secs(1),
        ..config()
    };
    let mut state = HostState::default();
    let first = record(&mut state, &config, 500, secs(0)).unwrap();
    // Answers while ejected do not decay the count however long the ejection.
    record(&mut state, &config, 200, secs(29));
    assert_eq!(state.ejections(), 1);
    // One interval after it ended, the count is down by one.
    record(&mut state, &config, 200, first.until + secs(1));
    assert_eq!(state.ejections(), 0);
}
