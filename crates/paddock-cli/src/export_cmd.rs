//! `paddock audit export`: ship the audit log to an OpenTelemetry collector, write it as
//! OCSF or OTLP JSON, show the export status; and the live shipper of `[audit] export`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use paddock_audit::export::http::Timeouts;
use paddock_audit::export::{
    export_pending, ocsf::ocsf_event, otlp::logs_request, spool_status, Endpoint, LiveShipper, Resource, ShipConfig,
};
use paddock_audit::{Escaped, Since};

use crate::args::{ExportArgs, ExportFormat};
use crate::exit::{self, fail};
use crate::output;
use crate::state::State;

/// The collector did not take the records (they stay pending): try again later
/// (`EX_TEMPFAIL`).
pub const TEMPFAIL: i32 = 75;

/// How long `run` and sessions, when they end, may spend shipping what is still pending.
const FINISH_GRACE: Duration = Duration::from_secs(3);

pub fn export(a: ExportArgs) -> i32 {
    let state = State::new();
    if a.status {
        return status(a.json, &state);
    }
    let log = match state.audit_file(a.audit.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let log = match std::fs::canonicalize(&log) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, format_args!("audit log {}: {e}", Escaped(&log.to_string_lossy()))),
    };
    let workspace = match a.workspace.clone().map(Ok).unwrap_or_else(std::env::current_dir) {
        Ok(w) => w,
        Err(e) => return fail(exit::USAGE, format_args!("cannot read the current directory: {e}")),
    };
    let resource = Resource::detect(Some(&workspace));
    match (&a.otlp, a.format) {
        (Some(url), _) => ship(url, &a, log, resource, &state),
        (None, Some(format)) => write_format(format, &a, &log, &resource),
        (None, None) => fail(exit::USAGE, "say --otlp URL, --format FORMAT or --status"),
    }
}

fn ship(url: &str, a: &ExportArgs, log: PathBuf, resource: Resource, state: &State) -> i32 {
    let endpoint = match Endpoint::parse(url) {
        Ok(e) => e,
        Err(e) => return fail(exit::USAGE, Escaped(&e.to_string())),
    };
    let retry_for = match paddock_policy::parse_duration(&a.retry_for) {
        Ok(d) => d,
        Err(e) => return fail(exit::USAGE, format_args!("--retry-for `{}`: {e}", Escaped(&a.retry_for))),
    };
    let state = match state.result() {
        Ok(s) => s.to_path_buf(),
        Err(e) => return fail(exit::CONFIG, format_args!("state directory (where the export cursors are): {e}")),
    };
    let cfg = ShipConfig::new(endpoint, log, state, resource);
    match export_pending(&cfg, retry_for) {
        Ok(r) => {
            let text = if a.json {
                serde_json::json!({"url": cfg.endpoint.to_string(), "delivered": r.delivered, "last_seq": r.last_seq, "retries": r.retries}).to_string()
            } else {
                format!(
                    "paddock: {} record(s) delivered to {}; the collector has the log through seq {}",
                    r.delivered, cfg.endpoint, r.last_seq
                )
            };
            output::println(text).err().unwrap_or(exit::OK)
        }
        Err(e) => fail(
            TEMPFAIL,
            format_args!("{}; the records stay pending (`paddock audit export --status`)", Escaped(&e.to_string())),
        ),
    }
}

fn write_format(format: ExportFormat, a: &ExportArgs, log: &Path, resource: &Resource) -> i32 {
    let since = match a.since.as_deref().map(Since::parse).transpose() {
        Ok(s) => s.map(|s| s.cutoff(std::time::SystemTime::now())),
        Err(e) => return fail(exit::USAGE, format_args!("--since: {e}")),
    };
    let lines = match paddock_audit::export::log_lines(log, since) {
        Ok(l) => l,
        Err(e) => return fail(exit::INTERNAL, Escaped(&e.to_string())),
    };
    let mut text = String::new();
    match format {
        ExportFormat::Ocsf => {
            for l in &lines {
                text.push_str(&ocsf_event(l, resource).to_string());
                text.push('\n');
            }
        }
        ExportFormat::Otlp => {
            let ws = Default::default();
            for chunk in lines.chunks(512) {
                let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                text.push_str(&logs_request(resource, &ws, &refs).to_string());
                text.push('\n');
            }
        }
    }
    match &a.output {
        None => output::print(text).err().unwrap_or(exit::OK),
        Some(path) => match std::fs::File::create(path)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        {
            Ok(()) => exit::OK,
            Err(e) => fail(exit::INTERNAL, format_args!("cannot write {}: {e}", Escaped(&path.to_string_lossy()))),
        },
    }
}

fn status(json: bool, state: &State) -> i32 {
    let state = match state.result() {
        Ok(s) => s,
        Err(e) => return fail(exit::CONFIG, format_args!("state directory: {e}")),
    };
    let all = match spool_status(state) {
        Ok(s) => s,
        Err(e) => return fail(exit::INTERNAL, Escaped(&e.to_string())),
    };
    if json {
        return match serde_json::to_string_pretty(&all) {
            Ok(s) => output::println(s).err().unwrap_or(exit::OK),
            Err(e) => fail(exit::INTERNAL, e),
        };
    }
    let mut text = String::new();
    if all.is_empty() {
        text.push_str("no exports yet (`paddock audit export --otlp URL`, or `[audit] export` in the policy)\n");
    }
    for s in &all {
        let c = &s.cursor;
        text.push_str(&format!("{} <- {}\n", Escaped(&c.url), Escaped(&c.log.to_string_lossy())));
        text.push_str(&format!("  delivered: {} record(s), through seq {}\n", c.delivered, c.seq));
        match (s.pending_records, s.pending_bytes, &s.log_error) {
            (Some(n), Some(b), _) => {
                text.push_str(&format!("  pending (spooled in the log): {n} record(s), {b} bytes\n"))
            }
            (_, _, Some(e)) => text.push_str(&format!("  pending: unknown ({})\n", Escaped(e))),
            _ => {}
        }
        text.push_str(&format!("  last success: {}\n", Escaped(c.last_success.as_deref().unwrap_or("never"))));
        match (&c.last_error, &c.last_error_at) {
            (Some(e), Some(at)) => text.push_str(&format!("  last error: {} at {}\n", Escaped(e), Escaped(at))),
            _ => text.push_str("  last error: none\n"),
        }
        text.push_str(&format!("  shipping now: {}\n", if s.shipping { "yes" } else { "no" }));
    }
    output::print(text).err().unwrap_or(exit::OK)
}

/// Starts shipping `log` live when the policy says `[audit] export = URL`; dropping the
/// guard ships what is still pending (for a few seconds at most) and stops. A URL that
/// cannot be used, or no state directory, stops the command (78): the policy asked for
/// the records to leave the machine.
pub fn live_shipper(url: Option<&str>, log: &Path, workspace: &Path, state: &State) -> Result<Option<Shipping>, i32> {
    let Some(url) = url else { return Ok(None) };
    let endpoint = Endpoint::parse(url)
        .map_err(|e| fail(exit::CONFIG, format_args!("[audit] export: {}", Escaped(&e.to_string()))))?;
    let state = state
        .result()
        .map_err(|e| fail(exit::CONFIG, format_args!("[audit] export needs a state directory for its cursor: {e}")))?
        .to_path_buf();
    // The log may not exist yet: its directory does (the cursor is named by the full path).
    let dir = match log.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let log = match (std::fs::canonicalize(dir), log.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        (Err(e), _) => {
            return Err(fail(exit::INTERNAL, format_args!("audit log {}: {e}", Escaped(&log.to_string_lossy()))))
        }
        (_, None) => {
            return Err(fail(
                exit::USAGE,
                format_args!("audit log {}: not a file name", Escaped(&log.to_string_lossy())),
            ))
        }
    };
    let mut cfg = ShipConfig::new(endpoint, log, state, Resource::detect(Some(workspace)));
    // Short timeouts: the last attempt when a run ends must not hold it up for long.
    cfg.timeouts = Timeouts { connect: Duration::from_secs(1), io: Duration::from_secs(5) };
    LiveShipper::start(cfg).map(|s| Some(Shipping(Some(s)))).map_err(|e| fail(exit::INTERNAL, e))
}

/// A live shipper that finishes when dropped.
pub struct Shipping(Option<LiveShipper>);

impl Drop for Shipping {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.finish(FINISH_GRACE);
        }
    }
}
