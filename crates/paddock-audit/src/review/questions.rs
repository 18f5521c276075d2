//! The questions of a review: every `approval.ask` in the window with its
//! `approval.answer` (none yet: open, or its asker ended without one).

use std::collections::HashMap;

use serde::Serialize;

use crate::payload::{ApprovalAnswer, ApprovalAsk};

/// One question put to a person, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuestionReview {
    /// Its id.
    pub id: String,
    /// The asking session.
    pub session: String,
    /// `network` or `command`.
    pub kind: String,
    /// The call or connection.
    pub subject: String,
    /// The rule that asked.
    pub rule: String,
    /// The policy line an "always" answer adds.
    pub proposed: String,
    /// When it was asked.
    pub asked_at: String,
    /// `allow` or `deny`; `None` while open.
    pub answer: Option<String>,
    /// `once`, `session`, `always` or `timeout`.
    pub scope: Option<String>,
    /// Who answered.
    pub by: Option<String>,
    /// When.
    pub answered_at: Option<String>,
    /// For "always": the approved entry's rule id.
    pub approved_rule: Option<String>,
}

/// The questions seen so far, in order.
#[derive(Debug, Default)]
pub(super) struct Questions {
    pub list: Vec<QuestionReview>,
    index: HashMap<String, usize>,
}

impl Questions {
    pub(super) fn ask(&mut self, ts: &str, a: &ApprovalAsk) {
        self.index.insert(a.id.clone(), self.list.len());
        self.list.push(QuestionReview {
            id: a.id.clone(),
            session: a.session.clone(),
            kind: a.kind.clone(),
            subject: a.subject.clone(),
            rule: a.rule.clone(),
            proposed: a.proposed.clone(),
            asked_at: ts.to_string(),
            answer: None,
            scope: None,
            by: None,
            answered_at: None,
            approved_rule: None,
        });
    }

    /// An answer to a question asked before the window is not shown.
    pub(super) fn answer(&mut self, ts: &str, a: &ApprovalAnswer) {
        let Some(q) = self.index.get(&a.id).and_then(|&i| self.list.get_mut(i)) else { return };
        q.answer = Some(a.answer.clone());
        q.scope = Some(a.scope.clone());
        q.by = Some(a.by.clone());
        q.answered_at = Some(a.answered_at.clone().unwrap_or_else(|| ts.to_string()));
        q.approved_rule = a.approved_rule.clone();
    }
}
