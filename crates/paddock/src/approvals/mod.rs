//! Questions to a person: a call or connection that an `ask` entry matched waits for an
//! answer (DESIGN, "Secrets, request rules and questions").
//!
//! - [`question`]: what is asked and what was answered (the files' JSON);
//! - [`store`]: `$STATE/approvals/`, where any process of the same user lists and answers;
//! - [`broker`]: a session's side: put the question up, wait, apply and record the answer.

pub mod broker;
pub mod question;
pub mod store;

pub use broker::{Broker, Prompt, Subject, APPROVED_FILE};
pub use question::{this_process, Answer, Question, Scope, Verdict};
pub use store::{AnswerError, Asking, Store, Taken, APPROVALS_DIR};
