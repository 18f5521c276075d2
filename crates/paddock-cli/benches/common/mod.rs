//! What the benches share to compare this build with another (`PADDOCK_BENCH_BASELINE`):
//! the two alternated round by round, and the differences of the pairs so made.

use std::time::Duration;

/// Runs `a` then `b` in even rounds and `b` then `a` in odd ones, so that neither build
/// always comes second (after the other's page cache and CPU state).
pub fn alternated(round: usize, a: &mut dyn FnMut(), b: &mut dyn FnMut()) {
    if round.is_multiple_of(2) {
        a();
        b();
    } else {
        b();
        a();
    }
}

/// The differences `this[i] - baseline[i]` of rounds run side by side: their median, p10
/// and p90, as one line.
pub fn paired(this: &[Duration], baseline: &[Duration]) -> String {
    let mut diffs: Vec<f64> =
        this.iter().zip(baseline).map(|(a, b)| (a.as_secs_f64() - b.as_secs_f64()) * 1e3).collect();
    diffs.sort_by(f64::total_cmp);
    let p = |q: f64| diffs[((diffs.len() - 1) as f64 * q) as usize];
    format!(
        "this build - baseline, paired by round: median {:+.3} ms   p10 {:+.3} ms   p90 {:+.3} ms",
        p(0.5),
        p(0.1),
        p(0.9)
    )
}
