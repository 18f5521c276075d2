//! A call's result as the API shows it ([`CallOutcome`]): what ran and how it ended, the
//! file of a `read_file`, the response of an `http_request` (or the proxy's refusal).

use std::time::Instant;

use paddock_policy::Decision;
use paddock_proxy::ConnectionEvent;
use paddock_sandbox::ExitKind;

use super::execute::{Executed, Failed};
use crate::call::CallOutcome;
use crate::SessionError;

/// An `http_request`'s outcome: a connection the proxy refused makes the call a denial
/// with the proxy's rule and reason (and the policy line that would allow it); else the
/// response curl printed becomes `status`, `headers` and `body`.
pub(super) fn http_outcome(o: &mut CallOutcome, refused: Vec<ConnectionEvent>) {
    if let Some(r) = refused.into_iter().next() {
        o.decision = "deny".into();
        o.rule = r.rule;
        o.reason = match r.hint {
            Some(h) => format!("{}; {h}", r.reason),
            None => r.reason,
        };
        o.exit_code = None;
        o.stdout.clear();
        return;
    }
    if let Some(r) = crate::http::parse(o.stdout.as_bytes()) {
        o.status = Some(r.status);
        o.headers = Some(r.headers);
        o.body = Some(String::from_utf8_lossy(&r.body).into_owned());
        o.stdout.clear();
    }
}

/// The API's view of a call's result. For `read_file` the file goes to `content`.
pub(super) fn outcome(decision: Decision, result: Result<Executed, Failed>, read: bool, t0: Instant) -> CallOutcome {
    let mut o = CallOutcome {
        decision: decision.verdict.as_str().into(),
        rule: decision.rule.to_string(),
        reason: decision.reason.clone(),
        duration_ms: t0.elapsed().as_millis() as u64,
        ..CallOutcome::default()
    };
    match result {
        Ok(Executed { audit_seq: seq, outcome: run, moved_aside, unchecked }) => {
            o.audit_seq = seq;
            let mut notes: String = moved_aside.iter().map(|m| crate::absent::describe(m) + "\n").collect();
            notes.extend(unchecked.iter().map(|u| crate::planted::describe_unchecked(u) + "\n"));
            if let Some(r) = run {
                o.exit_code = Some(r.exit_code());
                o.stderr = String::from_utf8_lossy(&r.stderr).into_owned();
                o.truncated = r.stdout_truncated || r.stderr_truncated;
                o.timed_out = r.status == ExitKind::TimedOut;
                if read && o.exit_code == Some(0) {
                    // The file's bytes, kept whole: text, or base64 when not UTF-8.
                    let (content, encoding) = crate::call::file_content(r.stdout);
                    (o.content, o.encoding) = (Some(content), encoding);
                } else {
                    o.stdout = String::from_utf8_lossy(&r.stdout).into_owned();
                }
            }
            o.stderr.push_str(&notes);
            if crate::absent::any_failed(&moved_aside) && o.exit_code.is_some() {
                // What the call planted where a rule forbids it is still there: as `run`, 71.
                o.stderr
                    .push_str(&format!("paddock: exit 71 instead of the call's own {}\n", o.exit_code.unwrap_or(0)));
                o.exit_code = Some(71);
            }
        }
        Err(Failed { error: SessionError::NotFound { seq, code }, .. }) => {
            o.audit_seq = seq;
            o.exit_code = Some(code);
            o.stderr = "paddock: the program is not found in the sandbox PATH".into();
        }
        Err(Failed { error, seq, .. }) => {
            // Recorded before it failed: the answer names its `call.start`, as a run's does.
            o.audit_seq = seq.unwrap_or_default();
            o.exit_code = Some(error.exit_code());
            o.stderr = format!("paddock: {error}");
        }
    }
    o
}
