//! The report a zygote's call is expected to start with, so that its caller can record the
//! call durably while the call is being set up instead of after ([`Zygote::spawn_meanwhile`](super::Zygote::spawn_meanwhile)).
//!
//! What a call's report says depends on the zygote (its namespaces and view, the same for
//! every call), on the call's spec (limits, network, exec control, the number of
//! environment variables, ...) and on the call's cgroup, made by the caller for each call.
//! So the report of the last call of the same *shape* (the spec but its argv and the
//! environment's values), with this call's cgroup status in place of that call's, is what
//! this call will report, unless the kernel does something else this time. The caller
//! compares the report the call sent with the one it recorded and lets the call run only
//! when they are the same: an expectation is never a claim.
//!
//! Kept for the last [`KEPT`] shapes. After one expectation that did not hold, the zygote
//! expects nothing any more (its calls are recorded once set up, as without this).

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::layer::{Applied, Layer};
use crate::report::EnforcementReport;
use crate::spec::{SandboxSpec, StdioMode};

/// How many shapes keep their last report.
const KEPT: usize = 8;

/// The last report of each of a zygote's recent call shapes.
#[derive(Debug, Default)]
pub(crate) struct Expected {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Most recent first.
    shapes: VecDeque<(SandboxSpec, EnforcementReport)>,
    /// An expectation did not hold: none is made any more.
    off: bool,
}

/// `call` without what no layer's status depends on: its argv, its environment's values
/// and the data for its standard input.
pub(crate) fn shape(call: &SandboxSpec) -> SandboxSpec {
    let mut s = call.clone();
    s.argv.clear();
    for (_, v) in &mut s.env {
        v.clear();
    }
    if let StdioMode::Capture { stdin } = &mut s.stdio {
        *stdin = None;
    }
    s
}

impl Expected {
    /// What a call of `shape` ([`shape`]), whose cgroup status is `cgroup`, is expected to
    /// report; `None` when no call of its shape started here yet (or expectations are off).
    pub(crate) fn of(&self, shape: &SandboxSpec, cgroup: &Applied) -> Option<EnforcementReport> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.off {
            return None;
        }
        let (_, last) = st.shapes.iter().find(|(s, _)| s == shape)?;
        let mut report = last.clone();
        report.record(Layer::Cgroup, cgroup.clone());
        Some(report)
    }

    /// Notes what a call of `shape` reported once set up; `expected`, what it was expected
    /// to report. A call that reported otherwise turns expectations off.
    pub(crate) fn started(&self, shape: SandboxSpec, expected: Option<&EnforcementReport>, report: &EnforcementReport) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.off {
            return;
        }
        if expected.is_some_and(|e| e != report) {
            tracing::warn!("a call's layers differed from those its last call of the same shape reported: this zygote's calls are recorded once set up from now on");
            st.off = true;
            st.shapes.clear();
            return;
        }
        st.shapes.retain(|(s, _)| *s != shape);
        st.shapes.push_front((shape, report.clone()));
        st.shapes.truncate(KEPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::LayerState;

    fn report(cgroup: &str) -> EnforcementReport {
        let mut r = EnforcementReport::default();
        r.set(Layer::Landlock, LayerState::Enforced, "landlock ABI 7");
        r.set(Layer::Cgroup, LayerState::Enforced, cgroup);
        r.set(Layer::Env, LayerState::Enforced, "1 variables from the spec, nothing inherited");
        r
    }

    fn call(argv: &[&str], env: &str) -> SandboxSpec {
        let mut s = SandboxSpec::new("/bin/echo", argv.iter().map(|a| a.to_string()).collect());
        s.env = vec![("A".into(), env.into())];
        s
    }

    #[test]
    fn the_last_report_of_the_shape_with_this_calls_cgroup_is_expected() {
        let e = Expected::default();
        let first = call(&["echo", "a"], "1");
        let cg = |d: &str| Applied::new(LayerState::Enforced, d);
        assert_eq!(e.of(&shape(&first), &cg("z1")), None, "nothing started yet");
        e.started(shape(&first), None, &report("z1"));
        // Another argv and another value: the same shape; the cgroup is this call's.
        let second = call(&["echo", "b"], "2");
        let want = report("z2");
        assert_eq!(e.of(&shape(&second), &cg("z2")), Some(want.clone()));
        // The layers' order is the report's (the cgroup replaced in place).
        assert_eq!(e.of(&shape(&second), &cg("z2")).unwrap().layers, want.layers);
        // Another program, another environment variable, other limits: other shapes.
        let mut other = call(&["x"], "1");
        other.program = "/bin/cat".into();
        assert_eq!(e.of(&shape(&other), &cg("z2")), None);
        let mut other = call(&["x"], "1");
        other.env.push(("B".into(), String::new()));
        assert_eq!(e.of(&shape(&other), &cg("z2")), None);
        let mut other = call(&["x"], "1");
        other.limits.max_processes = Some(7);
        assert_eq!(e.of(&shape(&other), &cg("z2")), None);
    }

    #[test]
    fn an_expectation_that_did_not_hold_turns_them_off() {
        let e = Expected::default();
        let c = call(&["echo"], "");
        e.started(shape(&c), None, &report("z1"));
        let expected = e.of(&shape(&c), &Applied::new(LayerState::Enforced, "z2")).unwrap();
        let mut actual = expected.clone();
        actual.set(Layer::Landlock, LayerState::Partial, "landlock ABI 3");
        e.started(shape(&c), Some(&expected), &actual);
        assert_eq!(e.of(&shape(&c), &Applied::new(LayerState::Enforced, "z3")), None);
        // Even once a call reports as the last one did.
        e.started(shape(&c), None, &actual);
        assert_eq!(e.of(&shape(&c), &Applied::new(LayerState::Enforced, "z3")), None);
    }

    #[test]
    fn only_the_last_shapes_are_kept() {
        let e = Expected::default();
        let cg = Applied::new(LayerState::Enforced, "z");
        let calls: Vec<SandboxSpec> = (0..=KEPT)
            .map(|i| {
                let mut c = call(&[], "");
                c.program = format!("/bin/p{i}").into();
                c
            })
            .collect();
        for c in &calls {
            e.started(shape(c), None, &report("z"));
        }
        assert_eq!(e.of(&shape(&calls[0]), &cg), None, "the oldest shape went");
        assert!(calls[1..].iter().all(|c| e.of(&shape(c), &cg).is_some()));
    }
}
