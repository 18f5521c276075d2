//! Shipping the audit log to a fleet's tools: OpenTelemetry logs over OTLP/HTTP, and
//! OCSF JSON for SIEMs.
//!
//! # Delivery
//!
//! The audit log itself is the spool. A *cursor* per (log, collector) in
//! `$STATE/export/` ([`spool`]) holds how far the collector has acknowledged: the byte
//! offset after the last delivered line, its `seq` and its SHA-256. A shipper reads
//! the complete lines after the cursor, sends them in batches ([`otlp`]) and moves the
//! cursor only after the collector answered 2xx; a failed batch is retried with a
//! doubling backoff. While the collector is down the records simply wait in the log
//! (`paddock audit export --status` counts them), so nothing is lost, nothing is
//! copied, and the backlog is bounded by the log itself; after a restart shipping
//! resumes at the cursor, so nothing is sent twice (a crash between the collector's
//! answer and the cursor's write can resend one batch: each record carries its `seq`
//! and `prev`, so a receiver recognises it).
//!
//! The next record after the cursor must chain to it (`prev` equal to the cursor's
//! hash): if it does not, the log was replaced or rewritten under the cursor, and
//! shipping starts again at the new log's first line, saying so in the status.
//!
//! Live shipping ([`LiveShipper`]) runs on its own thread and only ever reads the log:
//! a call never waits for the collector. One shipper per cursor works at a time (a
//! lock file); the others wait their turn (a `run` that ends while another process
//! ships leaves its records to that process).
//!
//! Modules: [`endpoint`] (the collector URL), [`http`] (one POST), [`otlp`] (the OTLP
//! JSON encoding), [`resource`] (host, user, workspace), [`spool`] (cursors and the
//! backlog), [`ship`] (batches, retries, the live thread), [`lines`] (the log's lines
//! for the file formats), [`ocsf`] (OCSF events).

pub mod endpoint;
mod error;
pub mod http;
pub mod lines;
pub mod ocsf;
pub mod otlp;
pub mod resource;
pub mod ship;
pub mod spool;

pub use endpoint::Endpoint;
pub use error::ExportError;
pub use lines::log_lines;
pub use resource::Resource;
pub use ship::{export_pending, ExportReport, LiveShipper, ShipConfig};
pub use spool::{spool_status, SpoolStatus};
