//! Time as weft writes and uses it: Gateway-API-style durations in flags (`250ms`, `5s`,
//! `1m`, `24h`) and when to renew a certificate. Plain arithmetic, shared by both binaries.

use std::time::{Duration, SystemTime};

/// Durations in the Gateway API style used across weft: `250ms`, `5s`, `1m`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("{value:?}: expected a number then ms, s, m or h"))?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{value:?}: unit must be ms, s, m or h")),
    };
    Ok(Duration::from_millis(amount.saturating_mul(millis)))
}

/// `time` as RFC 3339 in UTC with milliseconds, e.g. `2023-11-14T22:13:20.000Z` (times
/// before 1970 print as the epoch).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days`).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// When to renew a certificate received at `received` that expires at `not_after`: at half
/// its remaining lifetime (as istio-agent and SPIRE do: the other half leaves room for
/// retries while the controller is down), moved by up to ±10% of it by `jitter` (0.0..1.0,
/// e.g. `fastrand::f64()`; 0.5 is exactly half), so proxies that started together do not
/// all renew in the same second. The lifetime counts from when the certificate arrived, not
/// from its `not_before`: issuers backdate that for clock skew (weft by a minute), which
/// for a short lifetime would put the half-life in the past. The result is always between
/// `received` and `not_after`; a certificate already expired is due at once.
pub fn renew_at(received: SystemTime, not_after: SystemTime, jitter: f64) -> SystemTime {
    let Ok(lifetime) = not_after.duration_since(received) else {
        return received;
    };
    // NaN or out-of-range jitter is a caller's bug; fall back to the plain half-life.
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    received + lifetime.mul_f64(0.4 + 0.2 * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Within a microsecond: the fractions are floating point.
    fn near(a: SystemTime, b: SystemTime) -> bool {
        let diff = a
            .duration_since(b)
            .or_else(|_| b.duration_since(a))
            .unwrap();
        diff < Duration::from_micros(1)
    }

    #[test]
    fn rfc3339_in_utc_with_milliseconds() {
        let at = |secs: u64, millis: u64| {
            rfc3339(
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis),
            )
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_700_000_000, 5), "2023-11-14T22:13:20.005Z");
        // A leap day and the last second of a year.
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_767_225_599, 999), "2025-12-31T23:59:59.999Z");
    }

    #[test]
    fn renews_at_half_life_moved_by_at_most_a_tenth() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let end = start + 24 * HOUR;
        assert!(near(renew_at(start, end, 0.5), start + 12 * HOUR));
        let earliest = renew_at(start, end, 0.0);
        let latest = renew_at(start, end, 1.0);
        assert!(
            near(earliest, start + Duration::from_secs(34_560)),
            "{earliest:?}"
        );
        assert!(
            near(latest, start + Duration::from_secs(51_840)),
            "{latest:?}"
        );
        for _ in 0..1000 {
            let at = renew_at(start, end, fastrand::f64());
            assert!(earliest <= at && at <= latest, "{at:?}");
        }
    }

    #[test]
    fn odd_inputs_stay_inside_the_validity_period() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let end = start + HOUR;
        assert!(near(renew_at(start, end, f64::NAN), start + HOUR / 2));
        assert_eq!(renew_at(start, end, -3.0), renew_at(start, end, 0.0));
        assert_eq!(renew_at(start, end, 7.0), renew_at(start, end, 1.0));
        assert_eq!(renew_at(end, start, 0.5), end);
        assert_eq!(renew_at(start, start, 0.5), start);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("ms").is_err());
    }
}
