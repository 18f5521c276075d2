//! Sending the backlog: batches, retries with backoff, and the live shipping thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::endpoint::Endpoint;
use super::error::ExportError;
use super::http::{post, Timeouts};
use super::otlp::logs_request;
use super::resource::Resource;
use super::spool::{Pending, Spool};

/// Where and how to ship one log.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// The collector.
    pub endpoint: Endpoint,
    /// The audit log (absolute: it names the cursor).
    pub log: PathBuf,
    /// `$STATE`, where the cursors are.
    pub state_dir: PathBuf,
    /// Host, user, workspace.
    pub resource: Resource,
    /// Records per request.
    pub batch_records: usize,
    /// Bytes of records per request (a single larger record still goes alone).
    pub batch_bytes: usize,
    /// Timeouts of each request.
    pub timeouts: Timeouts,
    /// First wait after a failure; doubled after each further failure.
    pub backoff_min: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// How often the live shipper looks for new records.
    pub poll: Duration,
}

impl ShipConfig {
    /// Defaults: 512 records or 1 MiB per request, backoff from 250 ms to 30 s, new
    /// records looked for every 200 ms.
    pub fn new(endpoint: Endpoint, log: PathBuf, state_dir: PathBuf, resource: Resource) -> ShipConfig {
        ShipConfig {
            endpoint,
            log,
            state_dir,
            resource,
            batch_records: 512,
            batch_bytes: 1 << 20,
            timeouts: Timeouts::default(),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            poll: Duration::from_millis(200),
        }
    }

    fn url(&self) -> String {
        self.endpoint.to_string()
    }
}

/// What [`export_pending`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Records delivered now.
    pub delivered: u64,
    /// `seq` of the last record the collector has.
    pub last_seq: u64,
    /// Requests that failed before the ones that went through.
    pub retries: u64,
}

/// Ships everything after the cursor now, retrying failed batches with backoff for up
/// to `retry_for`; then, on failure, the error (the cursor keeps what was delivered,
/// and the status names the error). Waits up to `retry_for` for a live shipper that
/// holds the cursor.
pub fn export_pending(cfg: &ShipConfig, retry_for: Duration) -> Result<ExportReport, ExportError> {
    let deadline = Instant::now() + retry_for;
    let mut spool = loop {
        if let Some(s) = Spool::acquire(&cfg.state_dir, &cfg.log, &cfg.url())? {
            break s;
        }
        if Instant::now() >= deadline {
            return Err(ExportError::Busy {
                log: cfg.log.clone(),
                url: cfg.url(),
                lock: Spool::lock_path(&cfg.state_dir, &cfg.log, &cfg.url()),
            });
        }
        std::thread::sleep(cfg.poll.min(Duration::from_millis(100)));
    };
    let mut shipper = Shipper::new(cfg);
    let mut report = ExportReport { delivered: 0, last_seq: spool.cursor().seq, retries: 0 };
    let mut backoff = cfg.backoff_min;
    loop {
        match shipper.ship_batch(&mut spool) {
            Ok(0) => break,
            Ok(n) => {
                report.delivered += n as u64;
                backoff = cfg.backoff_min;
            }
            Err(e @ ExportError::Delivery { .. }) => {
                if Instant::now() + backoff > deadline {
                    return Err(e);
                }
                report.retries += 1;
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(cfg.backoff_max);
            }
            Err(e) => return Err(e),
        }
    }
    report.last_seq = spool.cursor().seq;
    Ok(report)
}

/// The encoder's memory between batches: each session's workspace.
struct Shipper<'a> {
    cfg: &'a ShipConfig,
    workspaces: HashMap<String, String>,
}

impl<'a> Shipper<'a> {
    fn new(cfg: &'a ShipConfig) -> Self {
        Shipper { cfg, workspaces: HashMap::new() }
    }

    /// Sends the next batch: how many records were delivered (0: nothing pending).
    fn ship_batch(&mut self, spool: &mut Spool) -> Result<usize, ExportError> {
        let batch = spool.next_batch(self.cfg.batch_records, self.cfg.batch_bytes)?;
        if batch.is_empty() {
            return Ok(0);
        }
        self.learn_workspaces(&batch);
        let lines: Vec<&[u8]> = batch.iter().map(|p| p.bytes.as_slice()).collect();
        let body = logs_request(&self.cfg.resource, &self.workspaces, &lines).to_string();
        let url = self.cfg.url();
        let answer = post(&self.cfg.endpoint, "application/json", body.as_bytes(), self.cfg.timeouts);
        let failure = match answer {
            Ok(r) if (200..300).contains(&r.status) => {
                spool.delivered(&batch)?;
                if let Some(note) = partial_rejection(&r.body) {
                    tracing::warn!(%url, "the collector accepted the batch but rejected some records: {note}");
                    spool.failed(&format!("partial success: {note}"))?;
                }
                return Ok(batch.len());
            }
            Ok(r) => format!("HTTP {}: {}", r.status, r.body.chars().take(200).collect::<String>().trim()),
            Err(e) => e,
        };
        tracing::debug!(%url, "delivery failed: {failure}");
        spool.failed(&failure)?;
        Err(ExportError::Delivery { url, reason: failure })
    }

    fn learn_workspaces(&mut self, batch: &[Pending]) {
        for p in batch {
            if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&p.bytes) {
                if let (Some("session.start"), Some(s), Some(w)) = (
                    m.get("event").and_then(Value::as_str),
                    m.get("session").and_then(Value::as_str),
                    m.get("workspace").and_then(Value::as_str),
                ) {
                    self.workspaces.insert(s.to_owned(), w.to_owned());
                }
            }
        }
    }
}

/// The collector's `partialSuccess`, if it rejected records.
fn partial_rejection(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let p = v.get("partialSuccess")?;
    let n = match p.get("rejectedLogRecords")? {
        Value::String(s) => s.parse::<u64>().ok()?,
        v => v.as_u64()?,
    };
    (n > 0).then(|| format!("{n} rejected: {}", p.get("errorMessage").and_then(Value::as_str).unwrap_or("")))
}

#[derive(Default)]
struct Control {
    /// Set by [`LiveShipper::finish`]: the last moment to try.
    stop_by: Option<Instant>,
}

/// Ships a log as it grows, on a thread of its own: appending never waits for it.
/// [`finish`](LiveShipper::finish) makes a last attempt and stops it; dropping it
/// stops it without one.
pub struct LiveShipper {
    control: Arc<(Mutex<Control>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl LiveShipper {
    /// Starts the thread.
    pub fn start(cfg: ShipConfig) -> Result<LiveShipper, ExportError> {
        let control = Arc::new((Mutex::new(Control::default()), Condvar::new()));
        let c = Arc::clone(&control);
        let thread = std::thread::Builder::new()
            .name("paddock-export".into())
            .spawn(move || live(cfg, &c))
            .map_err(|e| ExportError::io("paddock-export thread", "start", e))?;
        Ok(LiveShipper { control, thread: Some(thread) })
    }

    /// Ships what is pending within `grace` (what is left stays for the next shipper)
    /// and stops the thread.
    pub fn finish(mut self, grace: Duration) {
        self.stop(Some(grace));
    }

    fn stop(&mut self, grace: Option<Duration>) {
        let (m, cv) = &*self.control;
        match m.lock() {
            Ok(mut c) => c.stop_by = Some(Instant::now() + grace.unwrap_or_default()),
            Err(p) => p.into_inner().stop_by = Some(Instant::now()),
        }
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the export thread panicked");
            }
        }
    }
}

impl Drop for LiveShipper {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(None);
        }
    }
}

fn live(cfg: ShipConfig, control: &(Mutex<Control>, Condvar)) {
    let mut shipper = Shipper::new(&cfg);
    let mut spool: Option<Spool> = None;
    let mut backoff = cfg.backoff_min;
    let mut wait = Duration::ZERO;
    loop {
        // Wait for the next attempt, or for finish().
        let stop_by = {
            let (m, cv) = control;
            let guard = m.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, _) =
                cv.wait_timeout_while(guard, wait, |c| c.stop_by.is_none()).unwrap_or_else(|p| p.into_inner());
            guard.stop_by
        };
        if let Some(by) = stop_by {
            final_attempt(&cfg, &mut shipper, spool.take(), by);
            return;
        }
        if spool.is_none() {
            match Spool::acquire(&cfg.state_dir, &cfg.log, &cfg.url()) {
                Ok(s) => spool = s,
                Err(e) => {
                    tracing::debug!("export to {}: {e}", cfg.url());
                    wait = backoff;
                    backoff = (backoff * 2).min(cfg.backoff_max);
                    continue;
                }
            }
        }
        let Some(s) = spool.as_mut() else {
            wait = cfg.poll; // another process ships this log: look again later
            continue;
        };
        // A long backlog is shipped batch by batch; finish() is looked at between them.
        let running = || control.0.lock().map(|c| c.stop_by.is_none()).unwrap_or(false);
        wait = match drain(&mut shipper, s, &running) {
            Ok(()) => {
                backoff = cfg.backoff_min;
                cfg.poll
            }
            Err(e) => {
                // Quiet while the session runs (a `run` may hold a terminal UI): the first
                // failure of a streak at info (`-v`), then debug; `--status` has the last.
                if backoff == cfg.backoff_min {
                    tracing::info!(
                        "export to {} failing (retrying with backoff; the records wait in the log): {e}",
                        cfg.url()
                    );
                } else {
                    tracing::debug!("export to {} (retrying in {backoff:?}): {e}", cfg.url());
                }
                let w = backoff;
                backoff = (backoff * 2).min(cfg.backoff_max);
                w
            }
        };
    }
}

/// Ships batches until nothing is pending, or `go_on` says to stop.
fn drain(shipper: &mut Shipper<'_>, spool: &mut Spool, go_on: &dyn Fn() -> bool) -> Result<(), ExportError> {
    while go_on() {
        if shipper.ship_batch(spool)? == 0 {
            break;
        }
    }
    Ok(())
}

fn final_attempt(cfg: &ShipConfig, shipper: &mut Shipper<'_>, spool: Option<Spool>, by: Instant) {
    // Another process that holds the cursor is shipping this log as it grows, ours
    // included: no reason to wait for it (a `run` next to a long `serve` would wait
    // every time).
    let spool = match spool {
        Some(s) => Some(s),
        None => Spool::acquire(&cfg.state_dir, &cfg.log, &cfg.url()).unwrap_or_else(|e| {
            tracing::warn!("export to {}: {e}", cfg.url());
            None
        }),
    };
    if let Some(mut s) = spool {
        if Instant::now() < by {
            if let Err(e) = drain(shipper, &mut s, &|| Instant::now() < by) {
                tracing::warn!("export to {}: {e}; the records wait in the log for the next shipper", cfg.url());
            }
        }
    }
}

#[cfg(test)]
mod tests;
