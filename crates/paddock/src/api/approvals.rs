//! `GET /v1/approvals` and `POST /v1/approvals/ID`: the open questions of `$STATE` and
//! their answers, for the holder of the serve token. The shapes are DESIGN's:
//! `{"approvals":[{"id","kind","subject","proposed","session","pid","workspace","asked_at"}]}`
//! and `{"answer":"allow"|"deny","scope":"once"|"session"|"always"}`.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::approvals::{Answer, AnswerError, Scope, Verdict};
use crate::Session;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Posted {
    answer: Verdict,
    scope: Scope,
}

fn off() -> (StatusCode, Value) {
    (StatusCode::NOT_FOUND, json!({ "error": "this server takes no questions (it has no state directory)" }))
}

/// The open questions, oldest first.
pub(super) fn list(session: &Session) -> (StatusCode, Value) {
    let Some(broker) = session.approvals() else { return off() };
    match broker.store().list() {
        Ok(qs) => (StatusCode::OK, json!({ "approvals": qs.iter().map(|q| q.listed()).collect::<Vec<_>>() })),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": format!("listing the questions: {e}") })),
    }
}

/// Answers question `id` with the JSON `body`.
pub(super) fn answer(session: &Session, id: &str, body: &[u8]) -> (StatusCode, Value) {
    let Some(broker) = session.approvals() else { return off() };
    let posted: Posted = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => {
            let hint = "send {\"answer\":\"allow\"|\"deny\",\"scope\":\"once\"|\"session\"|\"always\"}";
            return (StatusCode::BAD_REQUEST, json!({ "error": format!("{e}; {hint}") }));
        }
    };
    let by = format!("serve token holder (session {}, pid {})", session.id(), std::process::id());
    let answer = match Answer::new(posted.answer, posted.scope, by) {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_REQUEST, json!({ "error": e })),
    };
    match broker.store().answer(id, &answer) {
        Ok(()) => (StatusCode::OK, json!({ "id": id, "answer": posted.answer, "scope": posted.scope })),
        Err(e @ AnswerError::Unknown(_)) => (StatusCode::NOT_FOUND, json!({ "error": e.to_string() })),
        Err(e @ AnswerError::Answered(_)) => (StatusCode::CONFLICT, json!({ "error": e.to_string() })),
        Err(e @ AnswerError::Ended(_)) => (StatusCode::GONE, json!({ "error": e.to_string() })),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": e.to_string() })),
    }
}
