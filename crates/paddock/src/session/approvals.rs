//! The session's questions to a person: an `ask` decision goes to the approvals broker
//! ([`Session::enable_approvals`](super::Session::enable_approvals)), or is a denial when
//! the session takes no questions.

use std::path::Path;
use std::sync::Arc;

use paddock_audit::Event;
use paddock_policy::{Decision, Policy, Verdict};

use super::inner::Inner;
use super::plan::deny;
use crate::approvals::broker::RecordSink;
use crate::approvals::broker::{program_id, ProgramId};
use crate::approvals::{Broker, Subject};

/// How [`Inner::decide_asked`] decided a command call.
pub(super) enum Decided {
    /// The policy decided it (no `ask` entry matched).
    ByPolicy(Decision),
    /// An `ask` entry matched: a person's answer (or a denial when none could be had).
    Answered(Decision),
}

impl Decided {
    /// The decision, however it was made.
    pub(super) fn decision(self) -> Decision {
        match self {
            Decided::ByPolicy(d) | Decided::Answered(d) => d,
        }
    }

    /// A person's answer, if one was asked for.
    pub(super) fn answered(self) -> Option<Decision> {
        match self {
            Decided::ByPolicy(_) => None,
            Decided::Answered(d) => Some(d),
        }
    }
}

/// A denial when `program` (what argv[0] resolves to now) is not the program `asked`
/// named when the person was asked.
pub(super) fn changed(asked: &ProgramId, program: &Path) -> Option<Decision> {
    (program_id(program) != *asked).then(|| {
        deny(format!(
            "the person was asked about {}, and the call's program is {} now (changed while the question waited): denied",
            asked.0.display(),
            program.display()
        ))
    })
}

impl Inner {
    /// Makes the session's broker (once; later calls return it): questions go through
    /// `$STATE/approvals/` (`state` is `$STATE`), and its records to the session's log.
    pub(super) fn enable_approvals(self: &Arc<Self>, state: &Path) -> std::io::Result<Arc<Broker>> {
        if let Some(b) = self.approvals.get() {
            return Ok(Arc::clone(b));
        }
        let weak = Arc::downgrade(self);
        let record: RecordSink = Arc::new(move |e: &Event| match weak.upgrade() {
            Some(inner) => inner.append(e, true).map_err(|e| e.to_string()),
            None => Err("the session has ended".into()),
        });
        let broker = Broker::new(state, &self.id, &self.base.vars.workspace, record)?;
        Ok(Arc::clone(self.approvals.get_or_init(|| Arc::new(broker))))
    }

    /// `d` when it is not an ask; else a person's answer (or a denial when no one can be
    /// asked), decided again under the revocations in force once it came: a revocation
    /// saved while the question waited cuts the answer.
    fn resolve(&self, policy: &Policy, d: Decision, subject: Subject) -> Decision {
        if d.verdict != Verdict::Ask {
            return d;
        }
        match self.approvals.get() {
            Some(b) => {
                let answer = b.resolve(policy, d, subject.clone());
                self.policy().recheck(answer, &subject.asked())
            }
            None => Decision {
                verdict: Verdict::Deny,
                reason: format!("{}; but nobody can be asked here (this session takes no questions): denied", d.reason),
                rule: d.rule,
            },
        }
    }

    /// The policy a command call is decided under, and, when that policy asks, the
    /// decision a person's answer makes (`answer` keeps it, so that a call decided again
    /// is not asked again). The answer came after a wait: it is decided under the policy in
    /// force once it came, so a revocation saved meanwhile cuts it (a revoked path leaves
    /// the call's view too, since the call is planned under that policy).
    pub(super) fn decide_asked(
        &self,
        argv: &[String],
        cwd: &Path,
        stdin: Option<&str>,
        answer: &mut Option<(Decision, ProgramId)>,
    ) -> (Arc<Policy>, Decided) {
        let mut policy = self.policy();
        for _ in 0..4 {
            let d = policy.check_runnable(argv, cwd);
            if d.verdict != Verdict::Ask {
                return (policy, Decided::ByPolicy(d));
            }
            let program = argv.first().and_then(|p| policy.resolve_program(p, cwd));
            let given = match (answer.clone(), &program) {
                (_, None) => {
                    let d = deny(format!("{}; but the program does not resolve", d.reason));
                    return (policy, Decided::Answered(d));
                }
                (Some((a, asked)), Some(program)) => match changed(&asked, program) {
                    Some(d) => d,
                    None => policy.recheck(a, &paddock_policy::Asked::Command { program, argv }),
                },
                (None, Some(program)) => {
                    let asked = program_id(program);
                    let subject = Subject::Command {
                        argv: argv.to_vec(),
                        program: program.clone(),
                        cwd: cwd.to_path_buf(),
                        stdin: stdin.map(|s| s.as_bytes().to_vec()),
                        once_only: false,
                    };
                    let a = self.resolve(&policy, d, subject);
                    // What argv[0] names now is what the person was asked about: a symlink
                    // re-pointed (or a file replaced) while the question waited runs
                    // something else (found by an attack).
                    let now = argv.first().and_then(|p| self.policy().resolve_program(p, cwd));
                    let a = match now.as_deref().map_or_else(
                        || Some(deny(format!("`{}` no longer resolves since the person was asked: denied", argv[0]))),
                        |now| changed(&asked, now),
                    ) {
                        Some(d) => d,
                        None => a,
                    };
                    *answer = Some((a.clone(), asked));
                    a
                }
            };
            let now = self.policy();
            if Arc::ptr_eq(&now, &policy) {
                return (policy, Decided::Answered(given));
            }
            policy = now;
        }
        let reason = "the revocation list kept changing while the call was decided: denied";
        (policy, Decided::Answered(deny(reason.into())))
    }

    /// [`Inner::resolve`] for an exec in a call's tree (`scope = "tree"`): the exec waits
    /// in the kernel while a person is asked. An argv that is not UTF-8 gets an answer for
    /// this exec only.
    pub(crate) fn ask_exec(
        &self,
        policy: &Policy,
        d: Decision,
        e: &paddock_sandbox::ExecRequest,
        program: &Path,
    ) -> Decision {
        let subject = Subject::Command {
            argv: e.argv.clone(),
            program: program.to_path_buf(),
            cwd: e.cwd.clone(),
            stdin: None,
            once_only: e.argv_lossy,
        };
        self.resolve(policy, d, subject)
    }

    /// The decision on a connection the proxy holds: the policy's, or a person's.
    pub(crate) fn ask_connect(&self, host: &str, port: u16) -> Decision {
        let policy = self.policy();
        let d = policy.decide_connect(host, port);
        match paddock_proxy::normalise_host(host) {
            Ok(host) => self.resolve(&policy, d, Subject::Network { host, port }),
            Err(e) => deny(format!("refused: {e}")),
        }
    }
}
