//! The gRPC vocabulary every part of weft speaks, from the gRPC over HTTP/2 spec and
//! `doc/statuscodes.md`: status codes, their canonical names, the code a client sees for an
//! HTTP status that is not gRPC (`doc/http-grpc-status-mapping.md`), and the other way round,
//! the HTTP status Envoy counts a gRPC status as (outlier detection). Pure data; no I/O.

/// The canonical gRPC status codes.
pub mod code {
    pub const OK: u32 = 0;
    pub const CANCELLED: u32 = 1;
    pub const UNKNOWN: u32 = 2;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const NOT_FOUND: u32 = 5;
    pub const ALREADY_EXISTS: u32 = 6;
    pub const PERMISSION_DENIED: u32 = 7;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const FAILED_PRECONDITION: u32 = 9;
    pub const ABORTED: u32 = 10;
    pub const OUT_OF_RANGE: u32 = 11;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
    pub const DATA_LOSS: u32 = 15;
    pub const UNAUTHENTICATED: u32 = 16;
}

/// Canonical names, indexed by code.
pub const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The canonical name of `code` (`"UNAVAILABLE"`); codes outside 0..=16 are `"UNKNOWN"`.
pub fn code_name(code: u32) -> &'static str {
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

/// The code whose canonical name is `name` (`"UNAVAILABLE"` → 14).
pub fn code_from_name(name: &str) -> Option<u32> {
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// The code a gRPC client sees for an answer with HTTP status `status` that is not gRPC.
pub fn code_for_http_status(status: u16) -> u32 {
    match status {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// The HTTP status Envoy takes a gRPC status for (its `Grpc::Utility::grpcToHttpStatus`),
/// which is what its outlier detection counts: UNAVAILABLE → 503, INTERNAL → 500, OK → 200.
/// Codes outside 0..=16 are 500.
pub fn http_status_for_code(code: u32) -> u16 {
    match code {
        code::OK => 200,
        code::CANCELLED => 499,
        code::UNKNOWN => 500,
        code::INVALID_ARGUMENT => 400,
        code::DEADLINE_EXCEEDED => 504,
        code::NOT_FOUND => 404,
        code::ALREADY_EXISTS => 409,
        code::PERMISSION_DENIED => 403,
        code::RESOURCE_EXHAUSTED => 429,
        code::FAILED_PRECONDITION => 400,
        code::ABORTED => 409,
        code::OUT_OF_RANGE => 400,
        code::UNIMPLEMENTED => 501,
        code::INTERNAL => 500,
        code::UNAVAILABLE => 503,
        code::DATA_LOSS => 500,
        code::UNAUTHENTICATED => 401,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for (i, name) in NAMES.iter().enumerate() {
            assert_eq!(code_from_name(name), Some(i as u32));
            assert_eq!(code_name(i as u32), *name);
        }
        assert_eq!(code_name(code::UNAVAILABLE), "UNAVAILABLE");
        assert_eq!(code_name(17), "UNKNOWN");
        assert_eq!(code_name(u32::MAX), "UNKNOWN");
        assert_eq!(code_from_name("unavailable"), None, "names are upper case");
    }

    #[test]
    fn http_statuses_map_as_the_spec_says() {
        for (status, expected) in [
            (400, code::INTERNAL),
            (401, code::UNAUTHENTICATED),
            (403, code::PERMISSION_DENIED),
            (404, code::UNIMPLEMENTED),
            (429, code::UNAVAILABLE),
            (502, code::UNAVAILABLE),
            (503, code::UNAVAILABLE),
            (504, code::UNAVAILABLE),
            (500, code::UNKNOWN),
            (418, code::UNKNOWN),
            (200, code::UNKNOWN),
        ] {
            assert_eq!(code_for_http_status(status), expected, "HTTP {status}");
        }
    }

    #[test]
    fn grpc_codes_count_as_envoys_http_statuses() {
        let expected: [u16; 17] = [
            200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401,
        ];
        for (code, status) in expected.into_iter().enumerate() {
            assert_eq!(http_status_for_code(code as u32), status, "{}", NAMES[code]);
        }
        assert_eq!(http_status_for_code(17), 500);
        assert_eq!(http_status_for_code(u32::MAX), 500);
    }
}
