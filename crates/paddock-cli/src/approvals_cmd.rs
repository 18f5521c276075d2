//! `paddock approvals`, `paddock approve ID` and `paddock deny ID`: the questions open in
//! `$STATE/approvals/` and their answers, from any terminal of the same user.

use std::collections::HashSet;
use std::time::Duration;

use paddock::approvals::{this_process, Answer, AnswerError, Scope, Store, Taken, Verdict};

use crate::args::{ApprovalsArgs, ApproveArgs, DenyArgs};
use crate::exit::{self, fail};
use crate::output;
use crate::state::State;

/// The store, or `None` when there is no state directory (then nothing was ever asked).
fn store() -> Result<Option<Store>, i32> {
    let state = State::new();
    match state.dir_if_any()? {
        None => Ok(None),
        Some(d) => Store::open(d).map(Some).map_err(|e| {
            fail(exit::INTERNAL, format_args!("{}: {e}", d.join(paddock::approvals::APPROVALS_DIR).display()))
        }),
    }
}

/// Lists the open questions; `--watch` prints each new one as it comes, until stopped.
pub fn list(a: ApprovalsArgs) -> i32 {
    let store = match store() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let open = |s: &Option<Store>| match s {
        None => Ok(Vec::new()),
        Some(s) => s.list().map_err(|e| fail(exit::INTERNAL, format_args!("{}: {e}", s.dir().display()))),
    };
    if !a.watch {
        let qs = match open(&store) {
            Ok(q) => q,
            Err(code) => return code,
        };
        let printed = if a.json {
            output::println(serde_json::json!({ "approvals": qs.iter().map(|q| q.listed()).collect::<Vec<_>>() }))
        } else if qs.is_empty() {
            output::println("no open questions")
        } else {
            output::println(qs.iter().map(|q| q.describe()).collect::<Vec<_>>().join("\n\n"))
        };
        return printed.err().unwrap_or(exit::OK);
    }
    let mut seen = HashSet::new();
    loop {
        let qs = match open(&store) {
            Ok(q) => q,
            Err(code) => return code,
        };
        for q in qs {
            if !seen.insert(q.id.clone()) {
                continue;
            }
            let printed = if a.json {
                output::println(serde_json::json!(q.listed()))
            } else {
                output::println(format_args!("{}\n", q.describe()))
            };
            if let Err(code) = printed {
                return code;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How long `approve` and `deny` wait for the asker to take their answer (it looks every
/// few tens of milliseconds).
const TAKEN_WITHIN: Duration = Duration::from_secs(5);

/// `paddock approve ID`.
pub fn approve(a: ApproveArgs) -> i32 {
    let scope = if a.always {
        Scope::Always
    } else if a.session {
        Scope::Session
    } else {
        Scope::parse(&a.scope).unwrap_or(Scope::Once)
    };
    answer(&a.id, Verdict::Allow, scope)
}

/// `paddock deny ID`.
pub fn deny(a: DenyArgs) -> i32 {
    let scope = if a.always { Scope::Always } else { Scope::parse(&a.scope).unwrap_or(Scope::Once) };
    answer(&a.id, Verdict::Deny, scope)
}

fn answer(id: &str, verdict: Verdict, scope: Scope) -> i32 {
    let shown = paddock_audit::Escaped(id);
    let store = match store() {
        Ok(Some(s)) => s,
        Ok(None) => return fail(exit::USAGE, format_args!("no open question `{shown}`: there is no state directory")),
        Err(code) => return code,
    };
    let answer = match Answer::new(verdict, scope, this_process()) {
        Ok(a) => a,
        Err(e) => return fail(exit::USAGE, e),
    };
    let question = store.get(id);
    match store.answer(id, &answer) {
        Ok(()) => {
            let what =
                question.map(|q| format!("{} `{}`", q.kind, paddock_audit::Escaped(&q.subject))).unwrap_or_default();
            let how = if verdict == Verdict::Allow { "allowed" } else { "denied" };
            match store.taken(id, TAKEN_WITHIN) {
                Taken::Yes => {
                    output::println(format_args!("{shown}: {what} {how} ({})", scope.as_str())).err().unwrap_or(exit::OK)
                }
                Taken::TooLate => fail(
                    exit::USAGE,
                    format_args!("{shown}: the call that asked stopped waiting (its ask_timeout passed) before the answer came: nothing was {how}, and nothing kept"),
                ),
                Taken::AskerEnded => fail(
                    exit::USAGE,
                    format_args!("{shown}: the call that asked ended before it took the answer: nothing was {how}, and nothing kept"),
                ),
                Taken::NotYet => output::println(format_args!(
                    "{shown}: {what} {how} ({}), but the call that asked has not taken the answer yet (it is stopped or busy); what it does with it goes to the audit log",
                    scope.as_str()
                ))
                .err()
                .unwrap_or(exit::OK),
            }
        }
        Err(e @ (AnswerError::Unknown(_) | AnswerError::Answered(_) | AnswerError::Ended(_))) => {
            fail(exit::USAGE, paddock_audit::Escaped(&e.to_string()))
        }
        Err(e) => fail(exit::INTERNAL, paddock_audit::Escaped(&e.to_string())),
    }
}
