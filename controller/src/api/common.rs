//! Value types shared by the weft kinds: Gateway API style durations, fault percentages and
//! canonical gRPC status names, each with the schema the apiserver checks.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The pattern of a Gateway API duration (GEP-2257): one to four `<number><unit>` parts,
/// unit `h`, `m`, `s` or `ms`, for example `250ms`, `10s`, `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$";

/// A duration in Gateway API form: one to four `<number><unit>` parts with unit `h`, `m`,
/// `s` or `ms` and at most 5 digits per number, for example `250ms`, `10s` or `1h30m`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Duration(#[schemars(regex(pattern = DURATION_PATTERN))] pub String);

/// Why a string is not a Gateway API duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a duration like 250ms, 10s or 1h30m: {reason}")]
pub struct DurationError {
    /// The rejected text.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Duration {
    /// Parses the text into a [`std::time::Duration`], enforcing the same grammar as the schema
    /// (local mode has no apiserver to do it).
    pub fn to_std(&self) -> Result<std::time::Duration, DurationError> {
        let fail = |reason| DurationError {
            value: self.0.clone(),
            reason,
        };
        let mut rest = self.0.as_str();
        if rest.is_empty() {
            return Err(fail("it is empty"));
        }
        let (mut total_ms, mut parts) = (0u64, 0);
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 5 {
                return Err(fail("each part needs a number of 1 to 5 digits"));
            }
            let (number, tail) = rest.split_at(digits);
            let number: u64 = number.parse().map_err(|_| fail("bad number"))?;
            let (unit_ms, unit_len) = if tail.starts_with("ms") {
                (1, 2)
            } else if tail.starts_with('h') {
                (3_600_000, 1)
            } else if tail.starts_with('m') {
                (60_000, 1)
            } else if tail.starts_with('s') {
                (1_000, 1)
            } else {
                return Err(fail("each number needs a unit: h, m, s or ms"));
            };
            total_ms += number * unit_ms;
            parts += 1;
            rest = &tail[unit_len..];
        }
        if parts > 4 {
            return Err(fail("at most 4 parts are allowed"));
        }
        Ok(std::time::Duration::from_millis(total_ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Duration {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// A share of RPCs in percent, from 0 to 100; fractions are allowed (`0.5` is one RPC in 200).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Percentage(#[schemars(range(min = 0, max = 100))] pub f64);

impl Percentage {
    /// Every RPC: the default when a fault leaves `percentage` out.
    pub fn all() -> Self {
        Self(100.0)
    }
}

/// A gRPC status code by its canonical name, as in grpc/doc/statuscodes.md.
// No doc comments on the variants: schemars would turn the enum into a `oneOf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrpcStatus {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl GrpcStatus {
    /// Every status, in code order (`OK` = 0 … `UNAUTHENTICATED` = 16).
    pub const ALL: [GrpcStatus; 17] = [
        Self::Ok,
        Self::Cancelled,
        Self::Unknown,
        Self::InvalidArgument,
        Self::DeadlineExceeded,
        Self::NotFound,
        Self::AlreadyExists,
        Self::PermissionDenied,
        Self::ResourceExhausted,
        Self::FailedPrecondition,
        Self::Aborted,
        Self::OutOfRange,
        Self::Unimplemented,
        Self::Internal,
        Self::Unavailable,
        Self::DataLoss,
        Self::Unauthenticated,
    ];

    /// The numeric code sent in `grpc-status`.
    pub fn code(self) -> u32 {
        self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Result<u128, DurationError> {
        Duration::from(text).to_std().map(|d| d.as_millis())
    }

    #[test]
    fn durations_parse_like_gateway_api() {
        assert_eq!(ms("250ms").unwrap(), 250);
        assert_eq!(ms("10s").unwrap(), 10_000);
        assert_eq!(ms("2m").unwrap(), 120_000);
        assert_eq!(ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(ms("1h1m1s1ms").unwrap(), 3_661_001);
        assert_eq!(ms("0s").unwrap(), 0);
        assert_eq!(ms("99999ms").unwrap(), 99_999);
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "10sec",
            "100000s",
            "1h1m1s1ms1h",
            " 1s",
        ] {
            let err = ms(bad).unwrap_err();
            assert!(
                err.to_string().contains("is not a duration"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn status_names_and_codes_are_canonical() {
        let names: Vec<String> = GrpcStatus::ALL
            .iter()
            .map(|s| {
                serde_json::to_value(s)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            weft_common::grpc::NAMES,
            "the API spells codes as gRPC does"
        );
        for (code, status) in GrpcStatus::ALL.iter().enumerate() {
            assert_eq!(status.code() as usize, code);
        }
    }
}
