//! MCP over stdio: one JSON-RPC message a line, read and written by paddock instead of by
//! rmcp's `AsyncRwTransport`, which drops a line over its limit, an invalid-UTF-8 line and
//! one that is not JSON without a word, so the client waits forever for its answer. Here
//! each gets a JSON-RPC error: a line longer than [`MAX_LINE`] is not kept (only its first
//! [`MAX_LINE`] bytes are, to read its `id` if one comes early) and gets `-32600`; a line
//! that is not UTF-8 or not JSON gets `-32700`; JSON that is not a message gets `-32600`.
//! The error names the message's `id` when it can be read, else `"id": null` (JSON-RPC 2.0
//! §5; rmcp leaves the `id` out). A notification (a `method`, no `id`) is never answered.

use std::future::Future;
use std::sync::Arc;

use paddock_audit::Escaped;
use rmcp::model::{ErrorData, JsonRpcError, JsonRpcMessage, RequestId};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleServer;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// The longest message read (16 MiB, rmcp's limit too); a longer one gets an error.
pub const MAX_LINE: usize = 16 << 20;

/// The error replies that may wait to be written before no more input is read.
const MAX_PENDING_REPLIES: usize = 64;

/// The requests read and not yet answered before no more input is read: their replies
/// wait in paddock's memory for a client that reads them (found by an attack: a client
/// that never read its replies had paddock hold every finished call's, past 1.5 GiB).
const MAX_OUTSTANDING: usize = 32;

/// Requests read and not answered yet, and a wake-up when one is.
#[derive(Default)]
struct Outstanding {
    count: std::sync::atomic::AtomicUsize,
    answered: tokio::sync::Notify,
}

impl Outstanding {
    fn done(&self) {
        let _ =
            self.count.fetch_update(std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Acquire, |n| {
                n.checked_sub(1)
            });
        self.answered.notify_waiters();
    }

    /// Waits until fewer than [`MAX_OUTSTANDING`] requests are unanswered (cancel-safe).
    async fn room(&self) {
        loop {
            let answered = self.answered.notified();
            if self.count.load(std::sync::atomic::Ordering::Acquire) < MAX_OUTSTANDING {
                return;
            }
            answered.await;
        }
    }
}

/// The transport: lines from `R`, lines to `W`.
pub struct Lines<R, W> {
    read: BufReader<R>,
    /// The line being read; kept across a cancelled `receive` (rmcp polls it in a
    /// `select!`), cleared once a whole line is handled.
    line: Vec<u8>,
    max: usize,
    /// Skipping the rest of a line over the limit, already answered.
    discarding: bool,
    write: Arc<Mutex<Option<W>>>,
    /// Error replies being written (awaited before the end of input is reported).
    replies: JoinSet<()>,
    outstanding: Arc<Outstanding>,
}

enum Read {
    Line,
    TooLong,
    Eof,
    Failed(std::io::Error),
}

impl<R: AsyncRead + Unpin, W> Lines<R, W> {
    /// Reads from `read`, writes to `write`; lines of at most `max` bytes.
    pub fn new(read: R, write: W, max: usize) -> Self {
        Lines {
            read: BufReader::new(read),
            line: Vec::new(),
            max,
            discarding: false,
            write: Arc::new(Mutex::new(Some(write))),
            replies: JoinSet::new(),
            outstanding: Arc::default(),
        }
    }

    /// Reads up to a newline into `self.line`, never holding more than `max` bytes. Safe
    /// to cancel: what was read stays in `self.line` (nothing is consumed across an await).
    async fn read_line(&mut self) -> Read {
        loop {
            let (taken, done) = {
                let available = match self.read.fill_buf().await {
                    Ok(a) => a,
                    Err(e) => return Read::Failed(e),
                };
                if available.is_empty() {
                    // A last line without its newline is a line too (found by a test: it
                    // got no answer).
                    return match self.line.is_empty() || self.discarding {
                        true => Read::Eof,
                        false => Read::Line,
                    };
                }
                let newline = available.iter().position(|b| *b == b'\n');
                let take = newline.map_or(available.len(), |i| i + 1);
                if self.discarding {
                    if newline.is_some() {
                        self.discarding = false;
                    }
                    (take, None)
                } else if self.line.len().saturating_add(take) > self.max {
                    // Its first `max` bytes are kept, to read its id from.
                    let room = self.max - self.line.len();
                    self.line.extend_from_slice(&available[..room]);
                    self.discarding = newline.is_none();
                    (take, Some(Read::TooLong))
                } else {
                    self.line.extend_from_slice(&available[..take]);
                    (take, newline.map(|_| Read::Line))
                }
            };
            self.read.consume(taken);
            if let Some(r) = done {
                return r;
            }
        }
    }
}

impl<R, W> Lines<R, W>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// Answers a line that is not a message, from a task of its own (so a cancelled
    /// `receive` never leaves half a frame).
    fn reply_error(&mut self, id: Option<RequestId>, error: ErrorData) {
        while self.replies.try_join_next().is_some() {}
        let frame = match frame(&TxJsonRpcMessage::<RoleServer>::error(error, id)) {
            Ok(f) => f,
            Err(e) => return tracing::error!("MCP error reply: {e}"),
        };
        let write = Arc::clone(&self.write);
        self.replies.spawn(async move {
            if let Err(e) = write_frame(&write, frame).await {
                tracing::warn!("MCP error reply: {e}");
            }
        });
    }

    async fn replies_written(&mut self) {
        while self.replies.join_next().await.is_some() {}
    }
}

/// A message as one line; an error without an `id` gets `"id": null`.
fn frame(item: &TxJsonRpcMessage<RoleServer>) -> serde_json::Result<Vec<u8>> {
    let mut bytes = match item {
        JsonRpcMessage::Error(JsonRpcError { id: None, .. }) => {
            let mut v = serde_json::to_value(item)?;
            if let Value::Object(o) = &mut v {
                o.insert("id".into(), Value::Null);
            }
            serde_json::to_vec(&v)?
        }
        _ => serde_json::to_vec(item)?,
    };
    bytes.push(b'\n');
    Ok(bytes)
}

async fn write_frame<W: AsyncWrite + Unpin>(write: &Mutex<Option<W>>, frame: Vec<u8>) -> std::io::Result<()> {
    let mut w = write.lock().await;
    let w = w.as_mut().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotConnected, "stdout is closed"))?;
    w.write_all(&frame).await?;
    w.flush().await
}

/// What a whole line holds: a message, nothing to answer (a blank line, a notification),
/// or an error to answer.
#[derive(Debug)]
enum Parsed {
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    Nothing,
    Error(Option<RequestId>, ErrorData),
}

fn parse(line: &[u8]) -> Parsed {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Nothing;
    }
    let e = match serde_json::from_slice(line) {
        Ok(m) => return Parsed::Message(Box::new(m)),
        Err(e) => e,
    };
    if let Err(bad) = std::str::from_utf8(line) {
        let why = format!(
            "Parse error: the message is not UTF-8 (an invalid byte at offset {}): JSON-RPC messages are UTF-8 JSON, one a line",
            bad.valid_up_to()
        );
        return Parsed::Error(request_id(line), ErrorData::parse_error(why, None));
    }
    let shown = Escaped(&e.to_string()).to_string();
    match serde_json::from_slice::<Value>(line) {
        Err(_) => Parsed::Error(
            request_id(line),
            ErrorData::parse_error(format!("Parse error: not JSON ({shown}): send one JSON-RPC message a line"), None),
        ),
        Ok(v) if v.get("method").is_some() && v.get("id").is_none() => {
            tracing::debug!("MCP notification not understood, ignored: {shown}");
            Parsed::Nothing
        }
        Ok(v) => Parsed::Error(
            v.get("id").and_then(|id| serde_json::from_value(id.clone()).ok()),
            ErrorData::invalid_request(format!("Invalid request: not a JSON-RPC 2.0 message ({shown})"), None),
        ),
    }
}

/// The `id` of a JSON object that may be cut short or broken after it: its top-level keys
/// are read in order up to `id`, whose value is taken if it is a number or a string.
fn request_id(bytes: &[u8]) -> Option<RequestId> {
    use serde::de::{Error, IgnoredAny, MapAccess, Visitor};
    struct Find<'a>(&'a mut Option<RequestId>);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON-RPC message")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == "id" {
                    *self.0 = map.next_value::<RequestId>().ok();
                    // Stop here: what follows may be cut short.
                    return Err(A::Error::custom("found"));
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut found = None;
    let _ = serde::Deserializer::deserialize_map(&mut serde_json::Deserializer::from_slice(bytes), Find(&mut found));
    found
}

impl<R, W> Transport<RoleServer> for Lines<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = Arc::clone(&self.write);
        let frame = frame(&item);
        // A reply to a request frees its place once written (or failed).
        let reply = matches!(item, JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_));
        let outstanding = Arc::clone(&self.outstanding);
        async move {
            let written = write_frame(&write, frame?).await;
            if reply {
                outstanding.done();
            }
            written
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            // No more is read while this many error replies wait for a client that does
            // not read them (found by an attack: each held its reply, and paddock grew past
            // 2 GiB). `join_next` is cancel-safe.
            while self.replies.len() >= MAX_PENDING_REPLIES {
                if self.replies.join_next().await.is_none() {
                    break;
                }
            }
            self.outstanding.room().await;
            match self.read_line().await {
                Read::Line => {}
                Read::TooLong => {
                    let id = request_id(&self.line);
                    self.line.clear();
                    let shown = id.as_ref().map_or("null".to_string(), |i| Escaped(&i.to_string()).to_string());
                    tracing::warn!("an MCP message (id {shown}) is longer than {} bytes: refused", self.max);
                    let why = format!(
                        "Invalid request: the message is longer than the limit of {} MiB ({} bytes) and was not read; send less in one message",
                        self.max >> 20,
                        self.max
                    );
                    self.reply_error(id, ErrorData::invalid_request(why, None));
                    continue;
                }
                Read::Eof => {
                    self.replies_written().await;
                    return None;
                }
                Read::Failed(e) => {
                    tracing::error!("reading MCP messages from stdin: {e}");
                    self.replies_written().await;
                    return None;
                }
            }
            let parsed = parse(&self.line);
            self.line.clear();
            match parsed {
                Parsed::Message(m) => {
                    match &*m {
                        JsonRpcMessage::Request(_) => {
                            self.outstanding.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        }
                        // A request the client gave up: no reply may come for it.
                        JsonRpcMessage::Notification(n)
                            if matches!(n.notification, rmcp::model::ClientNotification::CancelledNotification(_)) =>
                        {
                            self.outstanding.done();
                        }
                        _ => {}
                    }
                    return Some(*m);
                }
                Parsed::Nothing => {}
                Parsed::Error(id, error) => {
                    tracing::debug!("MCP line not understood: {}", error.message);
                    self.reply_error(id, error);
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.replies_written().await;
        drop(self.write.lock().await.take());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn an_id_is_read_from_a_message_cut_short() {
        let id = |s: &[u8]| request_id(s).map(|i| i.to_string());
        assert_eq!(id(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"a":"xxx"#).as_deref(), Some("7"));
        assert_eq!(id(br#"{"id":"a-b","x":"#).as_deref(), Some("a-b"));
        assert_eq!(id(br#"{"params":{"id":1,"c":"xx"#), None, "an id inside params is not the message's");
        assert_eq!(id(br#"{"params":{"id":1},"id":2}"#).as_deref(), Some("2"));
        assert_eq!(id(br#"{"id":null}"#), None);
        assert_eq!(id(b"\xff\xfe"), None);
        assert_eq!(id(br#"["id",1]"#), None);
        let deep = format!("{{\"a\":{}", "[".repeat(100_000));
        assert_eq!(id(deep.as_bytes()), None, "deep nesting ends the search, not the stack");
    }

    #[test]
    fn lines_that_are_not_messages_are_errors_with_an_id_or_none() {
        let Parsed::Error(None, e) = parse(b"\xff\xfe\n") else { panic!() };
        assert_eq!(e.code.0, -32700);
        assert!(e.message.contains("not UTF-8"), "{}", e.message);
        let Parsed::Error(None, e) = parse(b"{nope\n") else { panic!() };
        assert_eq!(e.code.0, -32700);
        let Parsed::Error(Some(id), e) = parse(br#"{"jsonrpc":"2.0","id":4}"#) else { panic!() };
        assert_eq!((id.to_string().as_str(), e.code.0), ("4", -32600));
        assert!(matches!(parse(b"\r\n"), Parsed::Nothing));
        assert!(matches!(parse(br#"{"jsonrpc":"2.0","method":"x/y","params":7}"#), Parsed::Nothing));
        assert!(matches!(
            parse(b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n"),
            Parsed::Message(_)
        ));
    }

    #[test]
    fn an_error_without_an_id_has_a_null_id() {
        let f = frame(&TxJsonRpcMessage::<RoleServer>::error(ErrorData::parse_error("x", None), None)).unwrap();
        let v: Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["id"], Value::Null);
        assert!(v.as_object().unwrap().contains_key("id"), "{v}");
        assert_eq!(*f.last().unwrap(), b'\n');
    }

    /// A line over the limit is answered (with its id, read from its start) and skipped to
    /// its end; the next line is read whole.
    #[tokio::test]
    async fn a_line_over_the_limit_is_answered_and_the_next_one_read() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (read, write) = tokio::io::split(server);
        let mut t = Lines::new(read, write, 64);
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}\n",
            "y".repeat(500)
        );
        let late = format!("{{\"params\":{{\"x\":\"{}\"}},\"id\":11}}\n", "y".repeat(50));
        // 64 bytes with the newline: the longest line taken.
        let ping = format!("{{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"ping\",\"x\":\"{}\"}}\n", "y".repeat(15));
        assert_eq!(ping.len(), 64);
        client.write_all(format!("{long}{late}{ping}").as_bytes()).await.unwrap();
        let m = t.receive().await.expect("the ping");
        assert!(matches!(m, JsonRpcMessage::Request(ref r) if r.id.to_string() == "10"), "{m:?}");
        t.replies_written().await;
        let mut buf = Vec::new();
        while buf.iter().filter(|b| **b == b'\n').count() < 2 {
            let mut chunk = [0; 4096];
            let n = client.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        let replies: Vec<Value> =
            buf.split(|b| *b == b'\n').take(2).map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(replies[0]["id"], 9, "{replies:?}");
        assert_eq!(replies[0]["error"]["code"], -32600);
        assert!(replies[0]["error"]["message"].as_str().unwrap().contains("(64 bytes)"), "{replies:?}");
        assert!(replies[1].get("id").is_some_and(Value::is_null), "an id past the limit is not read: {replies:?}");
    }

    /// A client that never reads its replies stops paddock reading, once
    /// [`MAX_PENDING_REPLIES`] wait: what is held is bounded.
    #[tokio::test]
    async fn error_replies_nobody_reads_stop_the_reading() {
        let (mut client, server) = tokio::io::duplex(64);
        let (read, write) = tokio::io::split(server);
        let mut t = Lines::new(read, write, 1 << 10);
        let writer = tokio::spawn(async move {
            for _ in 0..10_000 {
                if client.write_all(b"x\n").await.is_err() {
                    break;
                }
            }
            client
        });
        let held = tokio::time::timeout(std::time::Duration::from_millis(300), t.receive()).await;
        assert!(held.is_err(), "receive waits for the replies to be read");
        assert!(t.replies.len() <= MAX_PENDING_REPLIES, "{}", t.replies.len());
        writer.abort();
    }

    /// A last line without its newline is still read and answered.
    #[tokio::test]
    async fn a_last_line_without_a_newline_is_read() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (read, write) = tokio::io::split(server);
        let mut t = Lines::new(read, write, 1 << 10);
        client.write_all(br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).await.unwrap();
        client.shutdown().await.unwrap();
        let m = t.receive().await.expect("the ping");
        assert!(matches!(m, JsonRpcMessage::Request(ref r) if r.id.to_string() == "3"), "{m:?}");
        assert!(t.receive().await.is_none(), "then the end");
    }

    /// Past [`MAX_OUTSTANDING`] unanswered requests no more is read; a reply written makes
    /// room again.
    #[tokio::test]
    async fn unanswered_requests_stop_the_reading_until_one_is_answered() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let (read, write) = tokio::io::split(server);
        let mut t = Lines::new(read, write, 1 << 10);
        let mut input = String::new();
        for i in 0..MAX_OUTSTANDING + 2 {
            input += &format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"ping\"}}\n");
        }
        client.write_all(input.as_bytes()).await.unwrap();
        for _ in 0..MAX_OUTSTANDING {
            assert!(t.receive().await.is_some());
        }
        let wait = std::time::Duration::from_millis(200);
        assert!(tokio::time::timeout(wait, t.receive()).await.is_err(), "no room: nothing more is read");
        let reply =
            TxJsonRpcMessage::<RoleServer>::error(ErrorData::internal_error("x", None), Some(RequestId::Number(0)));
        t.send(reply).await.unwrap();
        assert!(tokio::time::timeout(wait, t.receive()).await.unwrap().is_some(), "a reply made room");
        assert!(tokio::time::timeout(wait, t.receive()).await.is_err(), "full again");
    }
}
