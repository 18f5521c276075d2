//! The record format: one JSON object per line.
//!
//! # Wire format
//!
//! Each line of the log is one JSON object followed by `\n`. The first four
//! keys are always, in this order:
//!
//! | key     | meaning |
//! |---------|---------|
//! | `seq`   | sequence number; the first record of a log is **1**, each next one is the previous plus one |
//! | `ts`    | when the record was written: RFC 3339, UTC, milliseconds (`2026-03-01T12:00:00.123Z`) |
//! | `event` | one of `call.start`, `call.end`, `net.connect`, `http.request`, `exfiltration`, `revoke`, `unrevoke`, `session.start`, `session.end`, `approval.ask`, `approval.answer` |
//! | `prev`  | lowercase hex SHA-256 of the previous line's bytes, exactly as stored, **without** its trailing `\n`; 64 zeros (`GENESIS_PREV`) for the first record |
//!
//! The event's own fields follow in a fixed order (the declaration order of
//! the payload types in [`payload`](crate::payload)). Optional fields that
//! are absent are omitted, except `exit_code` and `signal` on `call.end`,
//! which are always present (`null` when not applicable). Readers ignore
//! fields they do not know.
//!
//! ```text
//! {"seq":1,"ts":"2026-03-01T12:00:00.123Z","event":"call.start","prev":"0000000000000000000000000000000000000000000000000000000000000000","call_id":"c1","session":"s1","tool":"command","argv":["git","status"],"cwd":"/work","decision":"allow","rule":"commands.allow[0]","policy_hash":"ab12"}
//! ```

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;

pub(crate) use crate::hex::to_hex;
use crate::payload::{
    ApprovalAnswer, ApprovalAsk, Call, CallEnd, CallOutcome, Exec, Exfiltration, HttpRequest, NetConnect, RevokeEvent,
    SessionEnd, SessionStart,
};
use crate::selector::Selector;
pub use crate::time::{format_ts, now_ts, parse_ts};

/// The `prev` of the first record of a log: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Lowercase hex SHA-256 of `line` (the bytes of one line, without its `\n`).
///
/// This is the value the next record stores in `prev`.
pub fn line_hash(line: &[u8]) -> String {
    to_hex(&Sha256::digest(line))
}

pub(crate) fn line_digest(line: &[u8]) -> [u8; 32] {
    Sha256::digest(line).into()
}

/// The kind of a record, stored in `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A tool call was decided (and, if allowed, is about to run).
    #[serde(rename = "call.start")]
    CallStart,
    /// A tool call finished.
    #[serde(rename = "call.end")]
    CallEnd,
    /// A network connection went through (or was refused by) the proxy.
    #[serde(rename = "net.connect")]
    NetConnect,
    /// A program started in a call's tree.
    #[serde(rename = "exec")]
    Exec,
    /// A grant was revoked.
    #[serde(rename = "revoke")]
    Revoke,
    /// A revocation was lifted.
    #[serde(rename = "unrevoke")]
    Unrevoke,
    /// A session began.
    #[serde(rename = "session.start")]
    SessionStart,
    /// A session ended.
    #[serde(rename = "session.end")]
    SessionEnd,
    /// A person was asked about a call or connection.
    #[serde(rename = "approval.ask")]
    ApprovalAsk,
    /// A question was answered (or timed out).
    #[serde(rename = "approval.answer")]
    ApprovalAnswer,
    /// A request the proxy saw in plain text (intercepted or plain HTTP).
    #[serde(rename = "http.request")]
    HttpRequest,
    /// A secret's placeholder on its way to a host it does not belong to (refused).
    #[serde(rename = "exfiltration")]
    Exfiltration,
}

impl EventKind {
    /// The string stored in `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CallStart => "call.start",
            EventKind::CallEnd => "call.end",
            EventKind::NetConnect => "net.connect",
            EventKind::Exec => "exec",
            EventKind::Revoke => "revoke",
            EventKind::Unrevoke => "unrevoke",
            EventKind::SessionStart => "session.start",
            EventKind::SessionEnd => "session.end",
            EventKind::ApprovalAsk => "approval.ask",
            EventKind::ApprovalAnswer => "approval.answer",
            EventKind::HttpRequest => "http.request",
            EventKind::Exfiltration => "exfiltration",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event: what a record says, without `seq`, `ts` and `prev` (which the
/// writer assigns).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `call.start`.
    CallStart(Call),
    /// `call.end`.
    CallEnd(CallEnd),
    /// `net.connect`.
    NetConnect(NetConnect),
    /// `exec`: a program started in a call's tree.
    Exec(Exec),
    /// `revoke`.
    Revoke(RevokeEvent),
    /// `unrevoke`.
    Unrevoke(RevokeEvent),
    /// `session.start`.
    SessionStart(SessionStart),
    /// `session.end`.
    SessionEnd(SessionEnd),
    /// `approval.ask`.
    ApprovalAsk(ApprovalAsk),
    /// `approval.answer`.
    ApprovalAnswer(ApprovalAnswer),
    /// `http.request`.
    HttpRequest(HttpRequest),
    /// `exfiltration`.
    Exfiltration(Exfiltration),
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::CallStart(_) => EventKind::CallStart,
            Event::CallEnd(_) => EventKind::CallEnd,
            Event::NetConnect(_) => EventKind::NetConnect,
            Event::Exec(_) => EventKind::Exec,
            Event::Revoke(_) => EventKind::Revoke,
            Event::Unrevoke(_) => EventKind::Unrevoke,
            Event::SessionStart(_) => EventKind::SessionStart,
            Event::SessionEnd(_) => EventKind::SessionEnd,
            Event::ApprovalAsk(_) => EventKind::ApprovalAsk,
            Event::ApprovalAnswer(_) => EventKind::ApprovalAnswer,
            Event::HttpRequest(_) => EventKind::HttpRequest,
            Event::Exfiltration(_) => EventKind::Exfiltration,
        }
    }

    /// A `revoke` event.
    pub fn revoke(selector: Selector, reason: Option<String>) -> Self {
        Event::Revoke(RevokeEvent { selector, reason })
    }

    /// An `unrevoke` event.
    pub fn unrevoke(selector: Selector, reason: Option<String>) -> Self {
        Event::Unrevoke(RevokeEvent { selector, reason })
    }

    fn from_payload(kind: EventKind, payload: serde_json::Map<String, Value>) -> Result<Self, serde_json::Error> {
        let v = Value::Object(payload);
        Ok(match kind {
            EventKind::CallStart => Event::CallStart(serde_json::from_value(v)?),
            EventKind::CallEnd => Event::CallEnd(serde_json::from_value(v)?),
            EventKind::NetConnect => Event::NetConnect(serde_json::from_value(v)?),
            EventKind::Exec => Event::Exec(serde_json::from_value(v)?),
            EventKind::Revoke => Event::Revoke(serde_json::from_value(v)?),
            EventKind::Unrevoke => Event::Unrevoke(serde_json::from_value(v)?),
            EventKind::SessionStart => Event::SessionStart(serde_json::from_value(v)?),
            EventKind::SessionEnd => Event::SessionEnd(serde_json::from_value(v)?),
            EventKind::ApprovalAsk => Event::ApprovalAsk(serde_json::from_value(v)?),
            EventKind::ApprovalAnswer => Event::ApprovalAnswer(serde_json::from_value(v)?),
            EventKind::HttpRequest => Event::HttpRequest(serde_json::from_value(v)?),
            EventKind::Exfiltration => Event::Exfiltration(serde_json::from_value(v)?),
        })
    }
}

/// One line of the log, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Sequence number (the first record is 1).
    pub seq: u64,
    /// When it was written (RFC 3339 UTC, milliseconds).
    pub ts: String,
    /// SHA-256 (hex) of the previous line; [`GENESIS_PREV`] for the first.
    pub prev: String,
    /// What happened.
    pub event: Event,
}

impl Record {
    /// The line this record is stored as (without the trailing `\n`).
    pub fn to_line(&self) -> Result<String, serde_json::Error> {
        encode_line(self.seq, &self.ts, &self.prev, &self.event)
    }

    /// Parses one line (without its trailing `\n`).
    pub fn from_line(line: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

#[derive(Serialize)]
struct Wire<'a, P: Serialize> {
    seq: u64,
    ts: &'a str,
    event: EventKind,
    prev: &'a str,
    #[serde(flatten)]
    payload: &'a P,
}

/// Encodes a record as one line (no trailing `\n`), keys in the stable order.
pub(crate) fn encode_line(seq: u64, ts: &str, prev: &str, event: &Event) -> Result<String, serde_json::Error> {
    Ok(assemble_line(seq, ts, event.kind(), prev, &encode_payload(event)?))
}

/// The event's own fields as one JSON object (`{...}`), so that the writer
/// can encode outside its lock and only splice in `seq`, `ts` and `prev`.
pub(crate) fn encode_payload(event: &Event) -> Result<String, serde_json::Error> {
    match event {
        Event::CallStart(p) => serde_json::to_string(p),
        Event::CallEnd(p) => serde_json::to_string(p),
        Event::NetConnect(p) => serde_json::to_string(p),
        Event::Exec(p) => serde_json::to_string(p),
        Event::Revoke(p) | Event::Unrevoke(p) => serde_json::to_string(p),
        Event::SessionStart(p) => serde_json::to_string(p),
        Event::SessionEnd(p) => serde_json::to_string(p),
        Event::ApprovalAsk(p) => serde_json::to_string(p),
        Event::ApprovalAnswer(p) => serde_json::to_string(p),
        Event::HttpRequest(p) => serde_json::to_string(p),
        Event::Exfiltration(p) => serde_json::to_string(p),
    }
}

/// Splices the header keys in front of an encoded payload. Produces exactly
/// what serializing [`Record`] produces (a unit test holds the two equal).
pub(crate) fn assemble_line(seq: u64, ts: &str, kind: EventKind, prev: &str, payload: &str) -> String {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(payload.len() + 160);
    line.push_str("{\"seq\":");
    let _ = write!(line, "{seq}");
    line.push_str(",\"ts\":");
    // `ts` comes from `now_ts` (digits, `-`, `:`, `.`, `T`, `Z`), but escape
    // anyway so that a hand-built record can never break the line.
    line.push_str(&serde_json::Value::from(ts).to_string());
    line.push_str(",\"event\":\"");
    line.push_str(kind.as_str());
    line.push_str("\",\"prev\":");
    line.push_str(&serde_json::Value::from(prev).to_string());
    match payload.strip_prefix('{') {
        Some("}") | None => line.push('}'),
        Some(rest) => {
            line.push(',');
            line.push_str(rest);
        }
    }
    line
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn enc<S: Serializer, P: Serialize>(r: &Record, p: &P, s: S) -> Result<S::Ok, S::Error> {
            Wire { seq: r.seq, ts: &r.ts, event: r.event.kind(), prev: &r.prev, payload: p }.serialize(s)
        }
        match &self.event {
            Event::CallStart(p) => enc(self, p, s),
            Event::CallEnd(p) => enc(self, p, s),
            Event::NetConnect(p) => enc(self, p, s),
            Event::Exec(p) => enc(self, p, s),
            Event::Revoke(p) | Event::Unrevoke(p) => enc(self, p, s),
            Event::SessionStart(p) => enc(self, p, s),
            Event::SessionEnd(p) => enc(self, p, s),
            Event::ApprovalAsk(p) => enc(self, p, s),
            Event::ApprovalAnswer(p) => enc(self, p, s),
            Event::HttpRequest(p) => enc(self, p, s),
            Event::Exfiltration(p) => enc(self, p, s),
        }
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            seq: u64,
            ts: String,
            event: EventKind,
            prev: String,
            #[serde(flatten)]
            rest: serde_json::Map<String, Value>,
        }
        let raw = Raw::deserialize(d)?;
        let event = Event::from_payload(raw.event, raw.rest)
            .map_err(|e| D::Error::custom(format_args!("invalid `{}` record: {e}", raw.event)))?;
        Ok(Record { seq: raw.seq, ts: raw.ts, prev: raw.prev, event })
    }
}

/// Calls become `call.start` and `call.end` records; the payload module builds calls and
/// does not know the record format.
impl Call {
    /// The `call.start` event for this call.
    pub fn start(&self) -> Event {
        Event::CallStart(self.clone())
    }

    /// The `call.end` event for this call with its outcome.
    pub fn end(&self, outcome: CallOutcome) -> Event {
        Event::CallEnd(CallEnd { call: self.clone(), outcome })
    }
}

#[cfg(test)]
mod tests;
