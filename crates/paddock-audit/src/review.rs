//! Reviewing what grants were used for: [`review`].
//!
//! A *grant* is a policy rule id that allowed something: a call
//! (`call.start` with `decision = "allow"`) or a connection (`net.connect`
//! with `verdict = "allow"`). The review lists, for the records in a window:
//! each grant with its uses; the grants of the policy never used; the denied
//! calls grouped by what was tried; the connections by host; and the
//! revocations in force. Uses are counted from `call.start` (a call that ran
//! always has one); `call.end` only adds the exit code, or counts the call if
//! its `call.start` is nowhere in the log.
//!
//! Questions put to a person (`approval.ask`) are listed with their answers
//! (`approval.answer`: who, how, when), open ones without.
//!
//! Denied attempts include refused connections (`net.connect` with
//! `verdict = "deny"`), grouped by `host:port`.
//!
//! A filesystem grant is *decided* for the read or write call it allowed, but
//! every call's sandbox view holds the filesystem grants of its policy (the
//! `view` of `call.start`): a `run` of `cat src/x` uses `filesystem.read[3]`
//! without any decision naming it. The review counts those separately
//! ([`Review::in_view`]) and never lists a grant that was in a view among the
//! grants never used: a reviewer acting on that list would revoke what is in use.
//!
//! The review does not check the chain ([`verify`](crate::verify()) does);
//! lines that are not records are skipped and counted.

use std::path::Path;
use std::time::SystemTime;

use crate::error::AuditError;
use crate::reader::{Line, LineReader};
use crate::record::Record;

mod build;
pub mod html;
mod http;
mod programs;
mod questions;
mod render;
mod report;
mod since;
pub mod timeline;

use build::Builder;
pub use html::review_html;
pub use http::{ExfiltrationAttempt, HttpHostTraffic, SecretTarget, SecretUsage};
pub use programs::{ExecCommand, ProgramTree};
pub use questions::QuestionReview;
pub use report::{DeniedAttempt, GrantInView, GrantUsage, GrantUse, HostTraffic, Review, NO_RULE};
pub use since::Since;
pub use timeline::{timeline, CallRow, SecretUse, Timeline};

/// Reviews the log at `path`: records whose `ts` is at or after `since`
/// (all if `None`), with `policy_rules` the rule ids of the policy in force
/// (for the grants never used; pass `&[]` if unknown).
pub fn review(path: impl AsRef<Path>, since: Option<Since>, policy_rules: &[String]) -> Result<Review, AuditError> {
    let path = path.as_ref();
    let cutoff = since.map(|s| s.cutoff(SystemTime::now()));
    let mut b = Builder::default();
    let mut lines = LineReader::open(path)?;
    while let Some(line) = lines.next_line()? {
        match line {
            Line::Torn { .. } => b.torn_tail = true,
            Line::Complete { number, bytes, .. } => match Record::from_line(&bytes) {
                Ok(r) => b.add(r, cutoff),
                Err(_) => b.unreadable.push(number),
            },
        }
    }
    Ok(b.finish(path, cutoff, policy_rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::format_ts;
    use std::time::Duration;

    #[test]
    fn since_parses_durations_and_timestamps() {
        assert_eq!(Since::parse("24h").unwrap(), Since::Ago(Duration::from_secs(86_400)));
        assert_eq!(Since::parse("90m").unwrap(), Since::Ago(Duration::from_secs(5_400)));
        let t = Since::parse("2026-03-01T00:00:00Z").unwrap();
        assert_eq!(format_ts(t.cutoff(SystemTime::now())), "2026-03-01T00:00:00.000Z");
        assert_eq!(Since::parse("2026-03-01").unwrap(), t);
        assert_eq!(Since::parse("2026-03-01T00:00:00.000Z").unwrap(), t);
        let e = Since::parse("yesterday").unwrap_err();
        assert!(e.to_string().contains("24h"), "{e}");
        let now = SystemTime::now();
        assert_eq!(Since::Ago(Duration::from_secs(60)).cutoff(now), now - Duration::from_secs(60));
    }
}
