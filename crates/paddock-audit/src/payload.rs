//! Typed builders for the event payloads: what each kind of record says
//! besides `seq`, `ts`, `event` and `prev`.
//!
//! # Secrets
//!
//! The API takes no environment: no payload has a field for environment
//! variables, request headers, request bodies or file contents. URLs are
//! stored with any `user:password@` part replaced by `REDACTED@`. Arguments
//! and paths are stored as given: a caller that puts a secret on a command
//! line puts it in the log.

mod approval;
mod call;
mod exec;
mod http;
mod net;
mod session;
mod target;

pub use approval::{ApprovalAnswer, ApprovalAsk};
pub use call::{Call, CallEnd, CallOutcome, MovedAside, Restored, Unchecked};
pub use exec::{Exec, EXEC_MAX_ARGS, EXEC_MAX_ARG_BYTES};
pub use http::{strip_query_values, Exfiltration, HttpRequest};
pub use net::NetConnect;
pub use session::{RevokeEvent, SessionEnd, SessionStart};
pub use target::{redact_url, Decision, Target, Tool};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode_line, GENESIS_PREV};

    #[test]
    fn url_credentials_are_redacted() {
        assert_eq!(redact_url("https://u:p@h.test/a@b"), "https://REDACTED@h.test/a@b");
        assert_eq!(redact_url("https://h.test/?x=a@b"), "https://h.test/?x=a@b");
        assert_eq!(redact_url("not a url"), "not a url");
        // Even a Target built by hand is redacted on the way out.
        let t = Target::HttpRequest { url: "http://tok@h.test/".into(), method: None };
        let call = Call::new("c", "s", t, Decision::Allow);
        let line = encode_line(1, "t", GENESIS_PREV, &call.start()).unwrap();
        assert!(line.contains(r#""url":"http://REDACTED@h.test/""#), "{line}");
        assert!(!line.contains("tok"));
    }

    #[test]
    fn describe_quotes_arguments() {
        assert_eq!(Target::command(["git", "commit", "-m", "it's done"]).describe(), r"git commit -m 'it'\''s done'");
        assert_eq!(Target::http_request("https://h.test/", Some("POST")).describe(), "POST https://h.test/");
    }
}
