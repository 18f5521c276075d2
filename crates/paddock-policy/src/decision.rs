//! What a check answers: a [`Verdict`], the rule that decided and why ([`Decision`]);
//! and how strictly a policy wants its layers ([`Enforcement`]).

use std::sync::Arc;

/// Allow, deny, or ask a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The call may go ahead.
    Allow,
    /// The call is refused.
    Deny,
    /// No allow or deny entry decided, an `ask` entry matched: a person decides (until
    /// then, and without an answer, the call is refused).
    Ask,
}

impl Verdict {
    /// `"allow"` or `"deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Ask => "ask",
        }
    }
}

/// The outcome of one check: the verdict, the rule that decided and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The rule id: `filesystem.read[0]`, `commands.deny[1]`, `network.allow[3]`, or
    /// `default` when no rule matched.
    pub rule: Arc<str>,
    /// A sentence for a person.
    pub reason: String,
}

impl Decision {
    pub(crate) fn allow(rule: &Arc<str>, reason: String) -> Decision {
        Decision { verdict: Verdict::Allow, rule: Arc::clone(rule), reason }
    }
    pub(crate) fn deny(rule: &Arc<str>, reason: String) -> Decision {
        Decision { verdict: Verdict::Deny, rule: Arc::clone(rule), reason }
    }
    pub(crate) fn deny_default(reason: String) -> Decision {
        Decision { verdict: Verdict::Deny, rule: Arc::from("default"), reason }
    }
    pub(crate) fn allow_default(reason: String) -> Decision {
        Decision { verdict: Verdict::Allow, rule: Arc::from("default"), reason }
    }
    /// Whether the verdict is allow.
    pub fn is_allow(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// `[sandbox] enforcement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforcement {
    /// Refuse to run if a layer the policy needs is missing (the default).
    #[default]
    Strict,
    /// Run, and record what was missing.
    BestEffort,
}

impl Enforcement {
    /// `"strict"` or `"best-effort"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Strict => "strict",
            Enforcement::BestEffort => "best-effort",
        }
    }
}

/// The rule id of every decision of a policy that denies all ([`Policy::deny_all`](crate::Policy::deny_all)).
pub const DENY_ALL_RULE: &str = "revocations";

/// The rule id of a decision on a path that holds paddock's own state
/// ([`Policy::hide_paths`](crate::Policy::hide_paths)).
pub const HIDDEN_RULE: &str = "paddock.state";
