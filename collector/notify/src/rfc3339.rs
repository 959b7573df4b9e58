//! RFC 3339 times for the API and files, carried as milliseconds since
//! the epoch everywhere else.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// `2025-01-06T02:00:00.000Z`; the epoch for a time chrono cannot show.
pub fn format(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 time (any offset, any fraction), to milliseconds.
pub fn parse(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

/// `#[serde(with = "crate::rfc3339::serde_ms")]` for an `i64` of
/// milliseconds.
pub mod serde_ms {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        assert_eq!(super::format(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::format(1_736_128_800_123), "2025-01-06T02:00:00.123Z");
        assert_eq!(
            super::parse("2025-01-06T10:00:00.123+08:00"),
            Ok(1_736_128_800_123)
        );
        assert!(super::parse("yesterday").is_err());
    }
}
