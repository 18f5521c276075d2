//! How long each start-up phase took, so that a slow start (or the next regression) is
//! visible: `PADDOCK_LOG=paddock::timing=debug` prints one line per phase.
//!
//! Not a confinement step. The helper side (helper, reaper, target: single-threaded
//! processes whose tracing is silenced) records its phases in a list of this process
//! ([`record`], [`time`]); a fork copies the list to the child, so the target holds every
//! phase of the helper and the reaper before it and sends them with its `Ready` message. The
//! clock is `CLOCK_MONOTONIC`, the same in every process, so the caller places them on its
//! own time line ([`log_remote`]). The caller's own phases are logged as they end
//! ([`phase`]), by this crate and the crates above it alike.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The `tracing` target of every timing line.
pub const TARGET: &str = "paddock::timing";

/// One phase of the helper side: its name, start and end on `CLOCK_MONOTONIC`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Phase {
    /// What ran (e.g. `namespaces`).
    pub name: String,
    /// Start, in nanoseconds of `CLOCK_MONOTONIC`.
    pub start_ns: u64,
    /// End, in nanoseconds of `CLOCK_MONOTONIC`.
    pub end_ns: u64,
}

/// The phases this process (and the processes it was forked from) recorded. Only the
/// helper side records: a single thread each, forked while nobody holds the lock.
static PHASES: Mutex<Vec<Phase>> = Mutex::new(Vec::new());

/// Now, in nanoseconds of `CLOCK_MONOTONIC` (the clock `Instant` reads).
pub(crate) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Runs `f` as the helper-side phase `name`.
pub(crate) fn time<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let start = now_ns();
    let r = f();
    record(name, start);
    r
}

/// Records the helper-side phase `name`, from `start_ns` until now.
pub(crate) fn record(name: &str, start_ns: u64) {
    let end_ns = now_ns();
    let mut p = PHASES.lock().unwrap_or_else(|e| e.into_inner());
    p.push(Phase { name: name.to_string(), start_ns, end_ns });
}

/// Forgets what was recorded (a zygote's call starts a list of its own).
pub(crate) fn clear() {
    PHASES.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// The phases recorded so far, for the `Ready` message.
pub(crate) fn take() -> Vec<Phase> {
    std::mem::take(&mut *PHASES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Logs the caller's phase `name`, which started at `since` (at debug, target [`TARGET`]).
pub fn phase(name: &str, since: Instant) {
    log(name, since.elapsed(), None);
}

/// Logs the phase `name` of this process that took `took`, measured earlier (before the
/// program's logging was set up).
pub(crate) fn phase_took(name: &str, took: Duration) {
    log(name, took, None);
}

/// Logs the helper side's `phases`, each with its offset from `origin_ns` (when the caller
/// started the helper).
pub(crate) fn log_remote(phases: &[Phase], origin_ns: u64) {
    for p in phases {
        let took = Duration::from_nanos(p.end_ns.saturating_sub(p.start_ns));
        let at = p.start_ns.saturating_sub(origin_ns);
        log(&p.name, took, Some(Duration::from_nanos(at)));
    }
}

fn log(name: &str, took: Duration, at: Option<Duration>) {
    let ms = took.as_secs_f64() * 1e3;
    match at {
        Some(at) => {
            tracing::debug!(target: TARGET, "phase {name}: {ms:.3} ms (from +{:.3} ms)", at.as_secs_f64() * 1e3)
        }
        None => tracing::debug!(target: TARGET, "phase {name}: {ms:.3} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_phases_are_taken_once_in_order() {
        clear();
        let v = time("first", || 7);
        assert_eq!(v, 7);
        record("second", now_ns());
        let p = take();
        assert_eq!(p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["first", "second"]);
        assert!(p.iter().all(|p| p.end_ns >= p.start_ns));
        assert!(p[1].start_ns >= p[0].end_ns);
        assert!(take().is_empty());
    }
}
