//! gRPC wire facts the proxy needs (from the gRPC over HTTP/2 spec): status codes and their
//! canonical names (shared with the rest of weft: `weft_common::grpc`), Trailers-Only responses (the only way the proxy itself answers an RPC),
//! `grpc-timeout` parsing and formatting, and the HTTP status → gRPC code mapping for upstream
//! answers that are not gRPC.

use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::body::{self, ProxyBody};

pub use weft_common::grpc::{code, code_from_name, code_name, http_status_for_code};

/// `grpc-status` header values, indexed by code (no formatting on the error path).
const DIGITS: [&str; 17] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

/// A Trailers-Only response: HTTP 200, `content-type: application/grpc`, `grpc-status`, and
/// `grpc-message` (percent-encoded per the spec; omitted when empty), with an empty body.
/// Every proxy-generated error uses this — never a bare HTTP error.
pub fn trailers_only(code: u32, message: &str) -> Response<ProxyBody> {
    let mut response = Response::new(body::empty());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let status = match DIGITS.get(code as usize) {
        Some(digits) => HeaderValue::from_static(digits),
        None => HeaderValue::from(code),
    };
    headers.insert("grpc-status", status);
    if let Some(message) = encode_message(message) {
        headers.insert("grpc-message", message);
    }
    response
}

/// Percent-encodes a `grpc-message`: bytes outside `0x20..=0x7E`, and `%`, become `%XX`.
/// `None` for an empty message.
pub fn encode_message(message: &str) -> Option<HeaderValue> {
    if message.is_empty() {
        return None;
    }
    let plain = |b: u8| (0x20..=0x7E).contains(&b) && b != b'%';
    let bytes = message.as_bytes();
    if bytes.iter().all(|&b| plain(b)) {
        return HeaderValue::from_str(message).ok();
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = Vec::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if plain(b) {
            encoded.push(b);
        } else {
            encoded.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(encoded)).ok()
}

/// Decodes a percent-encoded `grpc-message` (invalid escapes are kept as they are; invalid
/// UTF-8 is replaced).
pub fn decode_message(value: &[u8]) -> String {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let escaped = match value.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(hi, lo)| hi << 4 | lo),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(value[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Nanoseconds per `grpc-timeout` unit, finest first.
const UNITS: [(u8, u64); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60_000_000_000),
    (b'H', 3_600_000_000_000),
];

/// The largest value `grpc-timeout` may carry (8 digits).
const MAX_TIMEOUT_VALUE: u64 = 99_999_999;

/// The `grpc-timeout` header as a duration: 1–8 ASCII digits and a unit (`H M S m u n`).
/// `None` when absent or malformed.
pub fn parse_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.as_bytes();
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let (_, nanos) = UNITS.iter().find(|(u, _)| *u == unit)?;
    // At most 99_999_999 hours: fits in u64 seconds.
    let nanos = u128::from(amount) * u128::from(*nanos);
    Some(Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    ))
}

/// A duration as a `grpc-timeout` value: at most 8 digits in the finest unit that fits,
/// rounded up (as grpc-go does) so the value is never shorter than `d` and never zero for a
/// positive `d`; in the finest unit that fits, the rounding is below one part in 10^5.
/// Durations beyond 99 999 999 hours are capped there.
pub fn format_timeout(d: Duration) -> HeaderValue {
    let nanos = d.as_nanos();
    let (unit, amount) = UNITS
        .iter()
        .map(|&(unit, per)| (unit, nanos.div_ceil(u128::from(per))))
        .find(|&(_, amount)| amount <= u128::from(MAX_TIMEOUT_VALUE))
        .unwrap_or((b'H', u128::from(MAX_TIMEOUT_VALUE)));
    // Up to 8 digits and the unit, written without allocating a String.
    let mut buf = [0u8; 9];
    let mut start = 8;
    let mut rest = amount;
    loop {
        start -= 1;
        buf[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 || start == 0 {
            break;
        }
    }
    buf[8] = unit;
    HeaderValue::from_bytes(&buf[start..]).unwrap_or_else(|_| HeaderValue::from_static("0n"))
}

/// The `grpc-status` in response headers (Trailers-Only) or trailers; a value that is not a
/// number is `UNKNOWN`.
pub fn status_of(headers: &HeaderMap) -> Option<u32> {
    let value = headers.get("grpc-status")?.as_bytes();
    let numeric = !value.is_empty() && value.len() <= 9 && value.iter().all(u8::is_ascii_digit);
    Some(if numeric {
        value.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    } else {
        code::UNKNOWN
    })
}

/// For an upstream answer that is not gRPC, the code the gRPC spec maps its HTTP status to.
pub fn code_for_http_status(status: StatusCode) -> u32 {
    weft_common::grpc::code_for_http_status(status.as_u16())
}

/// Whether a message looks like gRPC: `content-type: application/grpc`, optionally followed
/// by `+format` or `;params` (compared case-insensitively).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes();
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';'))
}

#[cfg(test)]
#[path = "grpc_tests.rs"]
mod tests;
