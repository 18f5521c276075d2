//! Timestamps as stored in a record's `ts`: RFC 3339, UTC, milliseconds.

use std::time::SystemTime;

/// The current time as stored in `ts`: RFC 3339, UTC, milliseconds.
pub fn now_ts() -> String {
    format_ts(SystemTime::now())
}

/// Formats `t` as stored in `ts`: RFC 3339, UTC, milliseconds.
pub fn format_ts(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses a `ts` value (RFC 3339, UTC). `None` if it is not one.
pub fn parse_ts(ts: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(ts).ok()
}
