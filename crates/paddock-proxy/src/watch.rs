//! Open connections decided again: a revocation (`paddock revoke network:HOST`, of the
//! rule that allowed a host, or of a request rule or a secret a request streaming in plain
//! text was let through by) cuts what is already open, not only what comes next. Tunnels, intercepted connections and forwarded requests each run beside
//! [`Watch::until_cut`].

use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::event::EventGuard;
use crate::intercept::HttpRecord;
use crate::target::Target;
use crate::HostPolicy;

/// How often an open connection's host is decided again.
const RECHECK: Duration = Duration::from_millis(200);

/// What an open connection is decided again against.
pub(crate) struct Watch {
    policy: Arc<dyn HostPolicy>,
    target: Target,
    /// Let through by a person's answer, its host one the policy asks about: a question
    /// again is no reason to cut it, a refusal is, and so is the answer's rule revoked
    /// ([`HostPolicy::recheck_answer`]). The rule it was let through by.
    asked: Option<String>,
    /// Requests seen in plain text on the connection, while they stream (their records
    /// live as long as their bodies): each decided again too.
    requests: Mutex<Vec<Weak<HttpRecord>>>,
}

impl Watch {
    /// `rule`: the rule the connection was let through by.
    pub(crate) fn new(policy: Arc<dyn HostPolicy>, target: Target, rule: String) -> Watch {
        let asked = policy.decide(&target.host.as_policy_str(), target.port).ask.then_some(rule);
        Watch { policy, target, asked, requests: Mutex::default() }
    }

    /// Decides `request` again too, for as long as it streams.
    pub(crate) fn request(&self, request: &Arc<HttpRecord>) {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(request));
    }

    /// Why the connection must be cut now, if it must: its host is refused, or no longer
    /// allowed by the rule (or the standing answer) that let it through.
    fn cut(&self) -> Option<String> {
        let host = self.target.host.as_policy_str();
        let mut d = self.policy.decide(&host, self.target.port);
        if let (true, Some(rule)) = (d.ask, &self.asked) {
            // Still only asked about: the answer that let it through decides.
            match self.policy.recheck_answer(&host, self.target.port, rule) {
                Some(refused) => d = refused,
                None => d.allow = true,
            }
        }
        if !d.allow {
            return Some(format!("cut while open: {} now refuses {} ({})", d.rule, self.target.authority(), d.reason));
        }
        let live: Vec<Arc<HttpRecord>> = {
            let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            requests.retain(|r| r.strong_count() > 0);
            requests.iter().filter_map(Weak::upgrade).collect()
        };
        live.iter().find_map(|r| r.refused_now()).map(|deny| {
            format!("cut while open: {} now refuses a request still streaming ({})", deny.rule, deny.reason)
        })
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
