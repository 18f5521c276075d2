//! The start of a review window ([`Since`]).

use std::time::{Duration, SystemTime};

use crate::error::AuditError;
use crate::time::parse_ts;

/// The start of a review window: `--since 24h` or `--since 2026-03-01T00:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Records from this long ago on.
    Ago(Duration),
    /// Records from this instant on.
    At(SystemTime),
}

impl Since {
    /// Parses a duration (`90m`, `24h`, `7days`, humantime syntax), an RFC
    /// 3339 UTC timestamp, or a date (`2026-03-01`, midnight UTC).
    pub fn parse(input: &str) -> Result<Self, AuditError> {
        let s = input.trim();
        if let Ok(d) = humantime::parse_duration(s) {
            return Ok(Since::Ago(d));
        }
        if let Some(t) = parse_ts(s) {
            return Ok(Since::At(t));
        }
        // A bare date: midnight UTC.
        if s.len() == 10 {
            if let Some(t) = parse_ts(&format!("{s}T00:00:00Z")) {
                return Ok(Since::At(t));
            }
        }
        Err(AuditError::InvalidSince { input: input.to_owned() })
    }

    /// The cutoff instant, relative to `now` for [`Since::Ago`].
    pub fn cutoff(&self, now: SystemTime) -> SystemTime {
        match *self {
            Since::Ago(d) => now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH),
            Since::At(t) => t,
        }
    }
}

impl From<Duration> for Since {
    fn from(d: Duration) -> Self {
        Since::Ago(d)
    }
}

impl From<SystemTime> for Since {
    fn from(t: SystemTime) -> Self {
        Since::At(t)
    }
}
