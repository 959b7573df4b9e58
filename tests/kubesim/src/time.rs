//! Wall-clock timestamps in the formats the Kubernetes API uses.
//!
//! Kept here rather than pulling a date library: the simulator only ever
//! formats UTC instants, never parses them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many fractional-second digits a timestamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `metav1.Time`: `2026-11-23T10:00:00Z`.
    Seconds,
    /// `metav1.MicroTime` (lease renew times): `2026-11-23T10:00:00.000000Z`.
    Micros,
    /// Go's `RFC3339Nano` with all nine digits, as kube-proxy's health check prints.
    Nanos,
}

/// Formats `t` as an RFC 3339 UTC timestamp.
pub fn rfc3339(t: SystemTime, precision: Precision) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let base = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    match precision {
        Precision::Seconds => format!("{base}Z"),
        Precision::Micros => format!("{base}.{:06}Z", since.subsec_micros()),
        Precision::Nanos => format!("{base}.{:09}Z", since.subsec_nanos()),
    }
}

/// `rfc3339(now, Seconds)`.
pub fn now_seconds() -> String {
    rfc3339(SystemTime::now(), Precision::Seconds)
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch.
pub fn unix_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, fractional.
pub fn unix_secs_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`), which avoids a calendar table.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = UNIX_EPOCH + Duration::new(1_795_428_000, 123_456_789);
        assert_eq!(rfc3339(t, Precision::Seconds), "2026-11-23T10:00:00Z");
        assert_eq!(rfc3339(t, Precision::Micros), "2026-11-23T10:00:00.123456Z");
        assert_eq!(
            rfc3339(t, Precision::Nanos),
            "2026-11-23T10:00:00.123456789Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH, Precision::Seconds),
            "1970-01-01T00:00:00Z"
        );
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap, Precision::Seconds), "2000-02-29T00:00:00Z");
    }
}
