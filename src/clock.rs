//! Wall-clock helpers: the store keeps milliseconds since the Unix epoch, the wire shows RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Formats epoch milliseconds as an RFC 3339 UTC timestamp with milliseconds.
pub fn to_rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Epoch milliseconds of an RFC 3339 timestamp; `None` when it does not parse.
pub fn from_rfc3339(t: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(t).ok()?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as i64)
}

/// Microseconds since the Unix epoch, now (latency stamps between processes on one machine).
pub fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// Formats an optional epoch-millisecond value; `None` stays `None`.
pub fn opt_rfc3339(ms: Option<i64>) -> Option<String> {
    ms.map(to_rfc3339)
}
