//! Tests for the gRPC wire helpers.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::Body;

use super::*;

fn timeout_headers(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("grpc-timeout", HeaderValue::from_str(value).unwrap());
    headers
}

fn parse(value: &str) -> Option<Duration> {
    parse_timeout(&timeout_headers(value))
}

#[test]
fn trailers_only_has_exactly_the_grpc_headers() {
    let response = trailers_only(code::UNAVAILABLE, "no healthy upstream");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers.len(), 3);
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], "14");
    assert_eq!(headers["grpc-message"], "no healthy upstream");
    assert!(response.body().is_end_stream());
}

#[test]
fn trailers_only_omits_an_empty_message() {
    let response = trailers_only(code::OK, "");
    let headers = response.headers();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers["grpc-status"], "0");
    assert!(headers.get("grpc-message").is_none());
}

#[test]
fn trailers_only_formats_codes_outside_the_table() {
    let response = trailers_only(42, "odd");
    assert_eq!(response.headers()["grpc-status"], "42");
}

#[test]
fn grpc_message_is_percent_encoded() {
    let response = trailers_only(code::INTERNAL, "100% sûre\n");
    assert_eq!(response.headers()["grpc-message"], "100%25 s%C3%BBre%0A");
    // Every printable ASCII byte except '%' passes as is.
    let printable: String = (0x20u8..=0x7E)
        .filter(|b| *b != b'%')
        .map(char::from)
        .collect();
    assert_eq!(encode_message(&printable).unwrap(), printable.as_str());
    assert_eq!(encode_message("\u{7f}").unwrap(), "%7F");
    assert_eq!(encode_message("tab\there").unwrap(), "tab%09here");
}

#[test]
fn grpc_message_decodes_back() {
    for message in ["100% sûre\n", "plain", "日本語 %%", ""] {
        let encoded = encode_message(message);
        let bytes = encoded.as_ref().map_or(&b""[..], HeaderValue::as_bytes);
        assert_eq!(decode_message(bytes), message);
    }
    assert_eq!(decode_message(b"bad %zz escape %4"), "bad %zz escape %4");
}

#[test]
fn grpc_timeout_parses_every_unit() {
    assert_eq!(parse("3H"), Some(Duration::from_secs(3 * 3600)));
    assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
    assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
    assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
    assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
    assert_eq!(parse("9n"), Some(Duration::from_nanos(9)));
    assert_eq!(parse("0m"), Some(Duration::ZERO));
    assert_eq!(parse("00000001S"), Some(Duration::from_secs(1)));
    assert_eq!(
        parse("99999999H"),
        Some(Duration::from_secs(99_999_999 * 3600))
    );
}

#[test]
fn grpc_timeout_rejects_malformed_values() {
    assert_eq!(parse("123456789m"), None, "more than 8 digits");
    for bad in [
        "", "m", "10", "10x", "10 m", " 10m", "-1S", "1.5S", "1e3m", "10mm", "ten S",
    ] {
        assert_eq!(parse(bad), None, "{bad:?}");
    }
    assert_eq!(parse_timeout(&HeaderMap::new()), None);
}

#[test]
fn grpc_timeout_formats_in_the_finest_unit_that_fits() {
    let cases = [
        (Duration::ZERO, "0n"),
        (Duration::from_nanos(1), "1n"),
        (Duration::from_millis(99), "99000000n"),
        (Duration::from_millis(250), "250000u"),
        (Duration::from_secs(5), "5000000u"),
        (Duration::from_secs(100), "100000m"),
        (Duration::from_secs(100_000), "100000S"),
        (Duration::from_secs(100_000_000), "1666667M"),
        (Duration::from_secs(6_000_000_000), "1666667H"),
        (Duration::MAX, "99999999H"),
    ];
    for (duration, expected) in cases {
        assert_eq!(format_timeout(duration), expected, "{duration:?}");
    }
}

#[test]
fn grpc_timeout_rounds_up_and_round_trips() {
    let durations = [
        Duration::from_nanos(1),
        Duration::from_nanos(99_999_999),
        Duration::from_nanos(100_000_001),
        Duration::from_millis(1234),
        Duration::new(12_345, 678_901_234),
        Duration::from_secs(3_600 * 24 * 365),
        Duration::new(99_999_999, 999_999_999),
    ];
    for d in durations {
        let value = format_timeout(d);
        assert!(value.len() <= 9, "{value:?}");
        let back = parse(value.to_str().unwrap()).unwrap();
        assert!(back >= d, "{d:?} → {value:?} → {back:?} is shorter");
        // Rounding costs less than one part in 10^5 (or 1 ns).
        let slack = back - d;
        assert!(
            slack <= d / 100_000 + Duration::from_nanos(1),
            "{d:?} → {back:?}"
        );
    }
    // An exact value survives unchanged.
    assert_eq!(
        parse(format_timeout(Duration::from_millis(250)).to_str().unwrap()),
        Some(Duration::from_millis(250))
    );
}

#[test]
fn status_is_read_from_headers_or_trailers() {
    let mut headers = HeaderMap::new();
    assert_eq!(status_of(&headers), None);
    headers.insert("grpc-status", HeaderValue::from_static("0"));
    assert_eq!(status_of(&headers), Some(code::OK));
    headers.insert("grpc-status", HeaderValue::from_static("14"));
    assert_eq!(status_of(&headers), Some(code::UNAVAILABLE));
    for junk in ["", "x", "1 4", "-1", "14a", "99999999999"] {
        headers.insert("grpc-status", HeaderValue::from_str(junk).unwrap());
        assert_eq!(status_of(&headers), Some(code::UNKNOWN), "{junk:?}");
    }
}

#[test]
fn grpc_content_types_are_recognised() {
    let grpc = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(value).unwrap());
        is_grpc(&headers)
    };
    assert!(grpc("application/grpc"));
    assert!(grpc("application/grpc+proto"));
    assert!(grpc("application/grpc+json"));
    assert!(grpc("Application/GRPC;charset=utf-8"));
    assert!(!grpc("application/grpc-web"));
    assert!(!grpc("application/grpcx"));
    assert!(!grpc("application/json"));
    assert!(!grpc("application/grp"));
    assert!(!is_grpc(&HeaderMap::new()));
}

proptest::proptest! {
    /// A formatted deadline reads back never shorter than it was, and longer by less than one
    /// part in 10^5 (or the cap).
    #[test]
    fn timeouts_round_trip_rounded_up(nanos in 1u64..u64::MAX / 4) {
        let d = Duration::from_nanos(nanos);
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", format_timeout(d));
        let back = parse_timeout(&headers).expect("a formatted timeout parses");
        proptest::prop_assert!(back >= d, "{back:?} < {d:?}");
        proptest::prop_assert!(back - d <= d / 100_000 + Duration::from_nanos(1), "{back:?} vs {d:?}");
    }

    /// Whatever a peer sends as `grpc-timeout` or `grpc-status`, reading it never panics,
    /// and a status is a number or UNKNOWN.
    #[test]
    fn any_header_value_is_read_without_panicking(value in proptest::collection::vec(0x20u8..0x7f, 0..16)) {
        let Ok(value) = HeaderValue::from_bytes(&value) else { return Ok(()) };
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", value.clone());
        headers.insert("grpc-status", value.clone());
        let _ = parse_timeout(&headers);
        let status = status_of(&headers).unwrap();
        let digits = value.as_bytes().iter().all(u8::is_ascii_digit) && !value.is_empty() && value.len() <= 9;
        if !digits {
            proptest::prop_assert_eq!(status, code::UNKNOWN);
        }
    }
}
