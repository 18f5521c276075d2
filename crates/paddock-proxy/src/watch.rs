//! Open connections decided again: a revocation (`paddock revoke network:HOST`, or of the
//! rule that allowed a host) cuts what is already open to the host, not only what comes
//! next. Tunnels, intercepted connections and forwarded requests each run beside
//! [`Watch::until_cut`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::event::EventGuard;
use crate::target::Target;
use crate::HostPolicy;

/// How often an open connection's host is decided again.
const RECHECK: Duration = Duration::from_millis(200);

/// What an open connection is decided again against.
pub(crate) struct Watch {
    policy: Arc<dyn HostPolicy>,
    target: Target,
    /// Let through by a person's answer, its host one the policy asks about: a question
    /// again is no reason to cut it, a refusal is.
    asked: bool,
}

impl Watch {
    pub(crate) fn new(policy: Arc<dyn HostPolicy>, target: Target) -> Watch {
        let asked = policy.decide(&target.host.as_policy_str(), target.port).ask;
        Watch { policy, target, asked }
    }

    /// Why the connection must be cut now, if it must: its host is refused, or no longer
    /// allowed by the rule (or the standing answer) that let it through.
    fn cut(&self) -> Option<String> {
        let d = self.policy.decide(&self.target.host.as_policy_str(), self.target.port);
        let stands = d.allow || (d.ask && self.asked);
        (!stands).then(|| format!("cut while open: {} now refuses {} ({})", d.rule, self.target.authority(), d.reason))
    }

    /// Resolves, with the reason, once the connection must be cut.
    pub(crate) async fn until_cut(&self) -> String {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Some(why) = self.cut() {
                return why;
            }
        }
    }

    /// Puts the cut on the connection's event (its reason says so) and gives the error
    /// that ends it.
    pub(crate) fn record(&self, guard: &EventGuard, why: String) -> io::Error {
        guard.update(|e| e.reason = format!("{}; {why}", e.reason));
        io::Error::new(io::ErrorKind::PermissionDenied, why)
    }
}
