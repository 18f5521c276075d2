//! End-to-end: `PADDOCK_LOG=paddock::timing=debug` makes `paddock run` say how long each
//! phase of its start took (issue 15), as root and as uid 65534. The values are the
//! machine's; the tests only check that every phase is there, once, with a duration.

#[macro_use]
mod common;

use common::*;

both_users!(every_phase_has_a_timing_line, no_timing_lines_without_the_log_filter);

/// The phases every `run` of `/bin/true` goes through, whoever runs it.
const RUN_PHASES: &[&str] = &[
    "policy load and compile",
    "state directory and revocation list checked",
    "audit log open",
    "session open (audit log, revocations, secrets)",
    "decision",
    "sandbox spec built",
    "helper fork",
    "path plan",
    "cgroup",
    "absent deny/protect paths noted",
    "glob matches noted",
    "namespaces",
    "fork reaper",
    "mounts: binds",
    "mounts: view walk and masks",
    "mounts: /proc",
    "mounts: /dev",
    "mounts: pivot_root, old root detached",
    "mount view",
    "fork target",
    "landlock",
    "rlimits",
    "caps",
    "seccomp",
    "fds",
    "sandbox start, in all",
    "call.start written and synced",
    "child: released until its tree ended",
    "helper reaped",
    "output relayed",
    "call.end written",
    "session closed (audit log synced)",
    "run, from the command line parsed to the exit",
];

/// The duration of each `phase NAME: X ms` line of `stderr`, in order.
fn phases(stderr: &str) -> Vec<(String, f64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.split_once("phase ")?.1;
            let (name, tail) = rest.rsplit_once(": ")?;
            let ms = tail.split_once(" ms")?.0.parse::<f64>().ok()?;
            Some((name.to_string(), ms))
        })
        .collect()
}

fn every_phase_has_a_timing_line(user: User) {
    let f = Fixture::new(user);
    let mut argv = f.paddock_argv(&Pol::default());
    argv.push("/bin/true".into());
    let o = f.launch(&argv, &[("PADDOCK_LOG", "paddock::timing=debug")], None);
    assert_eq!(o.code(), 0, "{o}");
    let got = phases(&o.err());
    for want in RUN_PHASES {
        let n = got.iter().filter(|(name, _)| name == want).count();
        assert_eq!(n, 1, "phase {want:?}: {n} timing lines, expected one\n{o}");
    }
    assert!(got.iter().all(|(_, ms)| ms.is_finite() && *ms >= 0.0), "{got:?}");
    // The helper side's phases are placed on the caller's time line, after the fork.
    let helper_side = o.err().lines().filter(|l| l.contains("phase namespaces:")).collect::<Vec<_>>().join("");
    assert!(helper_side.contains("(from +"), "no offset on a helper-side phase\n{o}");
    // The whole run is the last line and no phase is longer than it.
    let (last, total) = got.last().cloned().unwrap();
    assert_eq!(last, "run, from the command line parsed to the exit", "{o}");
    assert!(got.iter().all(|(_, ms)| *ms <= total), "{got:?}");
}

fn no_timing_lines_without_the_log_filter(user: User) {
    let f = Fixture::new(user);
    let mut argv = f.paddock_argv(&Pol::default());
    argv.push("/bin/true".into());
    let o = f.launch(&argv, &[], None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(phases(&o.err()).is_empty(), "timing lines without PADDOCK_LOG\n{o}");
    // Control: the same run with the filter does print them (the parser finds them).
    let o = f.launch(&argv, &[("PADDOCK_LOG", "debug")], None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(phases(&o.err()).iter().any(|(n, _)| n == "landlock"), "{o}");
}
