//! Threads kept for the next short job of a call.
//!
//! Not a confinement step. Each call relays its output on two threads, supervises its
//! execs on a third and finishes its teardown on a fourth. A thread started for each and
//! ended after it cost 50–95 µs of CPU here (its stack mapped and unmapped, the kernel's
//! task made and reaped), against about 15 µs to hand a job to a thread that waits for
//! one. So a worker that finished its job waits [`IDLE_FOR`] for the next before it ends.
//!
//! Workers wait for jobs only in a process that is multi-threaded for good
//! ([`keep_workers`]: the session's thread that makes call cgroups ahead says so). A
//! single-threaded caller forks its helpers and zygotes directly, which one more thread
//! would forbid ([`crate::sys::fork`]), so there every worker ends with its job, as a
//! plain thread did. A process whose calls are over ends the waiting ones
//! ([`end_idle_workers`]), so that its exit need not.

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a worker waits for its next job before it ends.
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(5);

type Task = Box<dyn FnOnce() + Send>;

/// Workers and whether they wait for jobs; the process's is [`POOL`].
struct Pool {
    /// Whether finished workers wait for the next job ([`keep_workers`]).
    keep: AtomicBool,
    /// The waiting workers: each one's number and the sender of its next job.
    idle: Mutex<Vec<(u64, mpsc::Sender<Task>)>>,
    /// How long a worker waits for its next job ([`IDLE_FOR`]).
    idle_for: Duration,
}

static POOL: Pool = Pool { keep: AtomicBool::new(false), idle: Mutex::new(Vec::new()), idle_for: IDLE_FOR };

/// From now on, finished workers wait for the next job: this process keeps other threads
/// anyway (it never forks a helper directly again).
pub(crate) fn keep_workers() {
    POOL.keep.store(true, Ordering::Relaxed);
}

/// Starts `n` workers that wait for jobs, as a worker that finished one does, where
/// workers are kept ([`keep_workers`]); none otherwise. A worker that cannot be started is
/// left out: a job then starts its own thread.
pub(crate) fn start_idle(n: usize) {
    POOL.start_idle(n);
}

/// Ends the workers waiting for a job, and from now on every worker ends with its job:
/// for a process whose calls are over (`paddock run` once its call returned), so that
/// their ends run beside what it still does (its audit log's last sync) instead of in
/// its own exit.
pub fn end_idle_workers() {
    POOL.end_idle();
}

/// A job handed to a worker: its result once it has run.
pub(crate) struct Job<T> {
    result: mpsc::Receiver<std::thread::Result<T>>,
    done: Arc<AtomicBool>,
}

impl<T> std::fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("finished", &self.is_finished()).finish_non_exhaustive()
    }
}

impl<T> Job<T> {
    /// Waits for the job's end: its value, or the panic that ended it (as
    /// `JoinHandle::join` gives it).
    pub(crate) fn join(self) -> std::thread::Result<T> {
        self.result.recv().unwrap_or_else(|_| Err(Box::new("the worker ended without the job's result")))
    }

    /// Whether the job has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

/// Runs `work` on a waiting worker, else on a new thread named `name`.
pub(crate) fn spawn<T: Send + 'static>(
    name: &'static CStr,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<Job<T>> {
    POOL.spawn(name, work)
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, mpsc::Sender<Task>)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn<T: Send + 'static>(
        &'static self,
        name: &'static CStr,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<Job<T>> {
        let (tx, result) = mpsc::sync_channel(1);
        let done = Arc::new(AtomicBool::new(false));
        let finished = Arc::clone(&done);
        let mut task: Task = Box::new(move || {
            crate::sys::set_name(name);
            let r = catch_unwind(AssertUnwindSafe(work));
            finished.store(true, Ordering::Release);
            // The job's owner may have let it go.
            let _ = tx.send(r);
        });
        if self.keep.load(Ordering::Relaxed) {
            loop {
                let waiting = self.lock().pop();
                let Some((_, next)) = waiting else { break };
                match next.send(task) {
                    Ok(()) => return Ok(Job { result, done }),
                    // That worker ended meanwhile: the next one, or a new thread.
                    Err(mpsc::SendError(t)) => task = t,
                }
            }
        }
        let thread = name.to_str().unwrap_or("paddock-worker").to_string();
        std::thread::Builder::new().name(thread).spawn(move || self.work_on(task))?;
        Ok(Job { result, done })
    }

    fn end_idle(&self) {
        self.keep.store(false, Ordering::Relaxed);
        let idle = std::mem::take(&mut *self.lock());
        for (_, next) in idle {
            // A job of nothing: after it, the worker finds workers no longer kept, and ends.
            let _ = next.send(Box::new(|| {}));
        }
    }

    fn start_idle(&'static self, n: usize) {
        if !self.keep.load(Ordering::Relaxed) {
            return;
        }
        for _ in 0..n {
            let started =
                std::thread::Builder::new().name("paddock-worker".into()).spawn(|| self.work_on(Box::new(|| {})));
            if let Err(e) = started {
                tracing::debug!("no idle worker started: {e}");
                return;
            }
        }
    }

    /// A worker: its first job, then each next one until none came for `idle_for`, or
    /// until workers are no longer kept.
    fn work_on(&self, first: Task) {
        static NUMBER: AtomicU64 = AtomicU64::new(0);
        let me = NUMBER.fetch_add(1, Ordering::Relaxed);
        let (inbox, jobs) = mpsc::channel::<Task>();
        let mut task = first;
        loop {
            task();
            if !self.keep.load(Ordering::Relaxed) {
                return;
            }
            self.lock().push((me, inbox.clone()));
            task = match jobs.recv_timeout(self.idle_for) {
                Ok(t) => t,
                Err(RecvTimeoutError::Timeout) => {
                    let mut idle = self.lock();
                    match idle.iter().position(|(n, _)| *n == me) {
                        Some(i) => {
                            idle.swap_remove(i);
                            return;
                        }
                        // Taken meanwhile: its job is on the way.
                        None => {
                            drop(idle);
                            match jobs.recv() {
                                Ok(t) => t,
                                Err(_) => return,
                            }
                        }
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static Pool {
        Box::leak(Box::new(Pool { keep: AtomicBool::new(false), idle: Mutex::new(Vec::new()), idle_for: IDLE_FOR }))
    }

    /// Waits until `n` workers of `pool` wait for a job (a worker puts itself on the list
    /// once its job's result is sent).
    fn wait_idle(pool: &Pool, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while pool.lock().len() < n {
            assert!(std::time::Instant::now() < deadline, "{n} workers never waited for a job");
            std::thread::yield_now();
        }
    }

    /// Jobs give their values and their panics as threads did, each on a thread of its own
    /// while workers are not kept.
    #[test]
    fn jobs_end_with_their_threads_until_workers_are_kept() {
        let pool = pool();
        assert_eq!(pool.spawn(c"paddock-test", || 7).unwrap().join().unwrap(), 7);
        let panicked = pool.spawn(c"paddock-test", || panic!("on purpose")).unwrap();
        assert!(panicked.join().is_err());
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let held = pool.spawn(c"paddock-test", move || go_rx.recv().is_ok()).unwrap();
        assert!(!held.is_finished());
        go_tx.send(()).unwrap();
        while !held.is_finished() {
            std::thread::yield_now();
        }
        assert!(held.join().unwrap());
        assert!(pool.lock().is_empty());
    }

    /// Workers started idle take the next jobs: two jobs at once, two idle workers, and no
    /// worker left waiting while both run.
    #[test]
    fn idle_workers_take_the_next_jobs() {
        let pool = pool();
        pool.keep.store(true, Ordering::Relaxed);
        pool.start_idle(2);
        wait_idle(pool, 2);
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Arc::new(Mutex::new(go_rx));
        let held: Vec<_> = (0..2)
            .map(|_| {
                let go = Arc::clone(&go_rx);
                pool.spawn(c"paddock-test", move || go.lock().unwrap().recv().is_ok()).unwrap()
            })
            .collect();
        assert!(pool.lock().is_empty(), "a job started a thread of its own while workers waited");
        for _ in 0..2 {
            go_tx.send(()).unwrap();
        }
        assert!(held.into_iter().all(|j| j.join().unwrap()));
        wait_idle(pool, 2);
    }

    /// Once workers are kept, the next job runs on the worker that ran the one before it,
    /// after a panic too; two jobs at once get two workers.
    #[test]
    fn a_kept_worker_takes_the_next_job() {
        let pool = pool();
        pool.keep.store(true, Ordering::Relaxed);
        let id = || std::thread::current().id();
        let first = pool.spawn(c"paddock-test", id).unwrap().join().unwrap();
        wait_idle(pool, 1);
        let panicked = pool.spawn(c"paddock-test", move || {
            assert_ne!(std::thread::current().id(), first, "on purpose");
        });
        assert!(panicked.unwrap().join().is_err());
        wait_idle(pool, 1);
        assert_eq!(pool.spawn(c"paddock-test", id).unwrap().join().unwrap(), first);
        wait_idle(pool, 1);
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let held = pool.spawn(c"paddock-test", move || go_rx.recv().map(|()| id())).unwrap();
        let other = pool.spawn(c"paddock-test", id).unwrap().join().unwrap();
        assert_ne!(other, first);
        go_tx.send(()).unwrap();
        assert_eq!(held.join().unwrap().unwrap(), first);
    }

    /// A worker that waits for a job ends when told the calls are over, long before its
    /// wait would have run out, and later jobs end with their threads.
    #[test]
    fn idle_workers_end_when_told() {
        thread_local! {
            /// Dropped when the thread ends.
            static ON_EXIT: std::cell::RefCell<Option<mpsc::Sender<()>>> = const { std::cell::RefCell::new(None) };
        }
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            keep: AtomicBool::new(true),
            idle: Mutex::new(Vec::new()),
            idle_for: Duration::from_secs(3600),
        }));
        let (gone_tx, gone) = mpsc::channel::<()>();
        pool.spawn(c"paddock-test", move || ON_EXIT.with(|s| *s.borrow_mut() = Some(gone_tx))).unwrap().join().unwrap();
        wait_idle(pool, 1);
        pool.end_idle();
        // Disconnected once the worker's thread has ended; a timeout if it still waits.
        assert_eq!(
            gone.recv_timeout(Duration::from_secs(60)),
            Err(mpsc::RecvTimeoutError::Disconnected),
            "the idle worker did not end when told"
        );
        assert!(pool.lock().is_empty());
        assert_eq!(pool.spawn(c"paddock-test", || 7).unwrap().join().unwrap(), 7);
        assert!(pool.lock().is_empty(), "a worker waited for a job after the calls were over");
    }
}
