//! The supervisor as an MCP server (`paddock mcp`), over a [`Session`], with the official
//! Rust SDK (`rmcp`).
//!
//! Tools: `command`, `read_file`, `write_file`, `http_request` — their input schemas mirror
//! [`ToolCall`] (without the `tool` field: the tool's name is it) — and `check`, which takes
//! a whole tool call (with `tool`) and only decides it. Each call goes through
//! [`Session::call`]: decided, audited (`call.start` / `call.end` with the session id),
//! confined. The result carries the [`CallOutcome`] as JSON text and as
//! `structuredContent`. A denial is a normal result naming the rule and the reason; its
//! `isError` is `true`, as it is when the call ran and exited non-zero, so that a client
//! shows the model that the call did not do what it asked. Arguments that do not fit the
//! schema give an `isError` result saying what is wrong (so the model can correct itself);
//! an unknown tool is a JSON-RPC error.
//!
//! Standard output carries only MCP frames: logs go to stderr, and the confined children's
//! output is captured.
//!
//! ```no_run
//! # async fn f(session: paddock::Session) -> Result<(), Box<dyn std::error::Error>> {
//! paddock::mcp::serve_stdio(session.clone(), std::future::pending()).await?;
//! session.close()?;
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest, CustomResult, ErrorCode,
    Implementation, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::{CallOutcome, Session, ToolCall};

mod elicit;
mod lines;

/// The MCP server: a [`ServerHandler`] over a session.
#[derive(Clone)]
pub struct McpServer {
    session: Session,
    slots: Arc<Semaphore>,
}

/// Why the MCP server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum McpServeError {
    /// The client's `initialize` failed.
    #[error("MCP initialization: {0}")]
    Initialize(String),
    /// The service task failed.
    #[error("MCP service: {0}")]
    Service(String),
}

impl McpServer {
    /// A server over `session`; at most 2 × cores calls run at once, the rest wait.
    pub fn new(session: Session) -> McpServer {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        McpServer { session, slots: Arc::new(Semaphore::new((2 * cores).max(2))) }
    }

    /// The tools offered, with their input schemas.
    pub fn tools() -> Vec<Tool> {
        let object = |v: Value| -> Arc<JsonObject> {
            match v {
                Value::Object(m) => Arc::new(m),
                _ => unreachable!("schemas are objects"),
            }
        };
        let annotated = |t: Tool, read_only: bool, open_world: bool| {
            let mut t = t;
            t.annotations =
                Some(ToolAnnotations::new().read_only(read_only).destructive(!read_only).open_world(open_world));
            t
        };
        vec![
            annotated(Tool::new("command", "Run a program in paddock's sandbox, as the policy allows ([commands], [filesystem], [network], [limits]). Returns the outcome as JSON: decision, rule, reason, exit_code, stdout, stderr, truncated, timed_out, duration_ms, audit_seq. A denied call is not run: its result names the rule that denied it.", object(command_schema())), false, true),
            annotated(Tool::new("read_file", "Read a file (absolute, or relative to the workspace) through a confined child, as the policy's [filesystem] allows. The file is in `content` of the JSON outcome.", object(read_file_schema())), true, false),
            annotated(Tool::new("write_file", "Write (create or replace) a file through a confined child, as the policy's [filesystem] write list allows.", object(write_file_schema())), false, false),
            annotated(Tool::new("http_request", "Make an HTTP request through paddock's egress proxy, as the policy's [network] allows. The response is in `status`, `headers` and `body` of the JSON outcome; a connection the proxy refuses (a host outside [network] allow, or one that resolves to a private address) is `decision: deny` with the rule and the policy line that would allow it.", object(http_schema())), false, true),
            annotated(Tool::new("check", "Decide a tool call against the policy (revocations included) without running it. Returns {\"decision\",\"rule\",\"reason\"}.", object(check_schema())), true, false),
        ]
    }

    async fn run(&self, call: ToolCall) -> Result<CallToolResult, McpError> {
        let _slot = self.slots.acquire().await.map_err(|e| McpError::internal_error(e.to_string(), None))?;
        let outcome =
            self.session.call(call).await.map_err(|e| McpError::internal_error(format!("paddock: {e}"), None))?;
        Ok(outcome_result(&outcome))
    }
}

fn command_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "argv": { "type": "array", "items": { "type": "string" }, "minItems": 1, "description": "Program and arguments, e.g. [\"git\", \"status\"]. No shell: use [\"sh\", \"-c\", \"...\"] for one, if the policy allows sh." },
            "cwd": { "type": "string", "description": "Working directory: absolute, or relative to the workspace (default: the workspace); one the sandbox cannot see is refused." },
            "stdin": { "type": "string", "description": "Text for the program's standard input." },
            "timeout": { "oneOf": [{ "type": "string" }, { "type": "integer", "minimum": 0 }], "description": "A timeout shorter than the policy's: \"30s\", \"2m\", or seconds." }
        },
        "required": ["argv"],
        "additionalProperties": false
    })
}

fn http_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "url": { "type": "string", "description": "An http:// or https:// URL." },
            "method": { "type": "string", "description": "GET (default), POST, PUT, ..." },
            "headers": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Request headers." },
            "body": { "type": "string", "description": "Request body." }
        },
        "required": ["url"],
        "additionalProperties": false
    })
}

fn read_file_schema() -> Value {
    json!({
        "type": "object",
        "properties": { "path": { "type": "string", "description": "The file: absolute, or relative to the workspace." } },
        "required": ["path"],
        "additionalProperties": false
    })
}

fn write_file_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "path": { "type": "string", "description": "The file: absolute, or relative to the workspace." },
            "content": { "type": "string", "description": "The new content." }
        },
        "required": ["path", "content"],
        "additionalProperties": false
    })
}

/// `check` takes any tool call: `tool` and that tool's fields, which are the other tools'
/// properties (so each field is described once, and none is missing).
fn check_schema() -> Value {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "tool".into(),
        json!({ "type": "string", "enum": ["command", "read_file", "write_file", "http_request"] }),
    );
    for schema in [command_schema(), read_file_schema(), write_file_schema(), http_schema()] {
        if let Some(Value::Object(fields)) = schema.get("properties") {
            for (name, field) in fields {
                properties.entry(name.clone()).or_insert_with(|| field.clone());
            }
        }
    }
    json!({
        "type": "object",
        "description": "A tool call as `POST /v1/calls` takes it: `tool` and that tool's fields.",
        "properties": properties,
        "required": ["tool"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    /// Every field a tool takes is in `check`'s schema too.
    #[test]
    fn check_schema_lists_every_tool_field() {
        let check = check_schema();
        for field in ["tool", "argv", "cwd", "stdin", "timeout", "path", "content", "url", "method", "headers", "body"]
        {
            assert!(check["properties"].get(field).is_some(), "check schema lacks `{field}`: {check}");
        }
        assert_eq!(check["additionalProperties"], json!(false));
    }

    /// Each schema matches its argument struct: every field of a [`ToolCall`] with every
    /// field set (serialised by serde, so a field added to the struct is seen here) is in
    /// its tool's schema and in `check`'s, and a schema names no field the struct lacks.
    #[test]
    fn schemas_match_the_argument_structs() {
        use crate::call::Timeout;
        let calls = [
            (
                command_schema(),
                ToolCall::Command {
                    argv: vec!["true".into()],
                    cwd: Some(".".into()),
                    stdin: Some("x".into()),
                    timeout: Some(Timeout::Seconds(1)),
                },
            ),
            (read_file_schema(), ToolCall::ReadFile { path: "a".into() }),
            (write_file_schema(), ToolCall::WriteFile { path: "a".into(), content: "b".into() }),
            (
                http_schema(),
                ToolCall::HttpRequest {
                    url: "http://a/".into(),
                    method: Some("GET".into()),
                    headers: Some([("a".to_string(), "b".to_string())].into()),
                    body: Some("c".into()),
                },
            ),
        ];
        let check = check_schema();
        for (schema, call) in calls {
            let Value::Object(fields) = serde_json::to_value(&call).unwrap() else { panic!("{call:?}") };
            let props = schema["properties"].as_object().unwrap();
            for field in fields.keys().filter(|f| *f != "tool") {
                assert!(props.contains_key(field), "schema lacks `{field}`: {schema}");
                assert!(check["properties"].get(field).is_some(), "check schema lacks `{field}`");
            }
            for field in props.keys() {
                assert!(fields.contains_key(field), "schema names `{field}`, which the struct lacks: {schema}");
            }
            // And what the schema describes deserialises into the struct.
            let back: ToolCall = serde_json::from_value(serde_json::to_value(&call).unwrap()).unwrap();
            assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&call).unwrap());
        }
    }
}

/// The MCP result of a call: the outcome as JSON text and structured content; `isError`
/// when denied or when the exit code is not 0.
pub fn outcome_result(o: &CallOutcome) -> CallToolResult {
    let value = serde_json::to_value(o).unwrap_or(Value::Null);
    let failed = !o.allowed() || o.exit_code != Some(0);
    let mut r = CallToolResult::success(vec![ContentBlock::text(value.to_string())]);
    r.structured_content = Some(value);
    r.is_error = Some(failed);
    r
}

fn invalid(tool: &str, e: impl std::fmt::Display) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(format!("invalid arguments for `{tool}`: {e}"))]);
    r.is_error = Some(true);
    r
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("paddock", env!("CARGO_PKG_VERSION")).with_title("paddock sandbox"))
            .with_instructions(
                "paddock runs your tool calls confined by a policy and records each in an audit log. Use `command` to run programs, `read_file` / `write_file` for files, `http_request` for the network, and `check` to ask whether a call would be allowed. A denied call's result names the rule and the reason: do not retry it unchanged.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(McpServer::tools()))
    }

    /// A request rmcp could not read as one it knows: an unknown method, or a known one
    /// whose params do not fit.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        Err(not_understood(&request.method, request.params.as_ref()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        McpServer::tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name: Cow<'static, str> = request.name.clone();
        let mut args = request.arguments.unwrap_or_default();
        match name.as_ref() {
            "command" | "read_file" | "write_file" | "http_request" => {
                if args.contains_key("tool") {
                    return Ok(invalid(&name, "unknown field `tool`: the tool's name says which tool it is").into());
                }
                args.insert("tool".into(), Value::String(name.to_string()));
                match serde_json::from_value::<ToolCall>(Value::Object(args)) {
                    Ok(call) => Ok(self.run(call).await?.into()),
                    Err(e) => Ok(invalid(&name, e).into()),
                }
            }
            "check" => match serde_json::from_value::<ToolCall>(Value::Object(args)) {
                Ok(call) => {
                    // A check of an http_request may look the name up, as the proxy would.
                    let session = self.session.clone();
                    let d = tokio::task::spawn_blocking(move || session.check(&call))
                        .await
                        .map_err(|e| McpError::internal_error(format!("check task: {e}"), None))?;
                    let v = json!({ "decision": d.verdict.as_str(), "rule": &*d.rule, "reason": d.reason });
                    let mut r = CallToolResult::success(vec![ContentBlock::text(v.to_string())]);
                    r.structured_content = Some(v);
                    Ok(r.into())
                }
                Err(e) => Ok(invalid("check", e).into()),
            },
            other => Err(McpError::invalid_params(
                format!(
                    "unknown tool `{other}`: paddock offers command, read_file, write_file, http_request and check"
                ),
                None,
            )),
        }
    }
}

/// The error for a request that reached [`ServerHandler::on_custom_request`]: `-32602`
/// naming what is wrong for a method paddock serves whose params do not fit (rmcp sent
/// those to the custom handler as `-32601`), else `-32601` naming the method, escaped.
fn not_understood(method: &str, params: Option<&Value>) -> McpError {
    let shown = paddock_audit::Escaped(method);
    match method {
        "tools/call" => {
            let why = match params.map(|p| serde_json::from_value::<CallToolRequestParams>(p.clone())) {
                None => "it has none".to_string(),
                Some(Err(e)) => paddock_audit::Escaped(&e.to_string()).to_string(),
                Some(Ok(_)) => "they were not understood".to_string(),
            };
            McpError::invalid_params(
                format!("invalid params for `tools/call`: {why}; send {{\"name\": TOOL, \"arguments\": {{...}}}}"),
                None,
            )
        }
        "initialize" | "ping" | "tools/list" => {
            McpError::invalid_params(format!("invalid params for `{shown}`: they were not understood"), None)
        }
        _ => McpError::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!("unknown method `{shown}`: paddock serves initialize, ping, tools/list and tools/call"),
            None,
        ),
    }
}

/// stdin and stdout as MCP's transport, a message a line ([`lines`]: each line that is not
/// a message is answered, where rmcp's own transport drops some without a word).
fn stdio() -> lines::Lines<rmcp::transport::StdioReader, rmcp::transport::StdioWriter> {
    let (read, write) = rmcp::transport::stdio_pipes();
    lines::Lines::new(read, write, lines::MAX_LINE)
}

/// Serves MCP over stdin/stdout until the client closes stdin or `shutdown` completes.
/// The session is left open: the caller closes it.
pub async fn serve_stdio(session: Session, shutdown: impl Future<Output = ()>) -> Result<(), McpServeError> {
    tokio::pin!(shutdown);
    let server = McpServer::new(session.clone());
    let running = tokio::select! {
        r = server.serve(stdio()) => match r {
            Ok(r) => r,
            Err(e) => {
                // stdin closed before `initialize`: nothing was asked, nothing to report.
                tracing::info!("MCP initialization: {e}");
                return Err(McpServeError::Initialize(e.to_string()));
            }
        },
        _ = &mut shutdown => return Ok(()),
    };
    // A client that can show a form is asked the session's questions too.
    if let (Some(broker), Some(p)) =
        (session.approvals(), elicit::prompt(running.peer().clone(), tokio::runtime::Handle::current()))
    {
        broker.set_prompt(p);
    }
    let ct = running.cancellation_token();
    let waiting = running.waiting();
    tokio::pin!(waiting);
    let quit = tokio::select! {
        q = &mut waiting => q,
        _ = &mut shutdown => {
            // Calls running now finish and are answered (within 10 s; then they are killed
            // and answered with that outcome) before the service stops.
            if !session.wait_idle(std::time::Duration::from_secs(10)).await {
                let killed = session.kill_running();
                tracing::warn!("{killed} call(s) still running 10 s after the signal: killed");
                session.wait_idle(std::time::Duration::from_secs(5)).await;
            }
            ct.cancel();
            match tokio::time::timeout(std::time::Duration::from_secs(10), &mut waiting).await {
                Ok(q) => q,
                Err(_) => return Ok(()),
            }
        }
    };
    match quit {
        Ok(reason) => {
            tracing::info!("MCP session over: {reason:?}");
            Ok(())
        }
        Err(e) => Err(McpServeError::Service(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_and_schemas() {
        let tools = McpServer::tools();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, ["command", "read_file", "write_file", "http_request", "check"]);
        for t in &tools {
            assert_eq!(t.input_schema.get("type"), Some(&json!("object")), "{}", t.name);
        }
        assert_eq!(tools[0].input_schema["required"], json!(["argv"]));
    }

    #[test]
    fn requests_not_understood_say_what_is_wrong() {
        let e = not_understood("nope\u{1b}[2J", None);
        assert_eq!(e.code, ErrorCode::METHOD_NOT_FOUND);
        assert!(e.message.starts_with("unknown method `nope\\x1b[2J`"), "{}", e.message);
        let e = not_understood("tools/call", None);
        assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
        assert!(e.message.contains("invalid params for `tools/call`: it has none"), "{}", e.message);
        let e = not_understood("tools/call", Some(&json!({ "arguments": {} })));
        assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
        assert!(e.message.contains("name"), "{}", e.message);
    }

    #[test]
    fn denials_and_failures_are_errors_with_the_rule() {
        let denied = CallOutcome {
            decision: "deny".into(),
            rule: "commands.default".into(),
            reason: "no allow entry".into(),
            ..CallOutcome::default()
        };
        let r = outcome_result(&denied);
        assert_eq!(r.is_error, Some(true));
        assert_eq!(r.structured_content.as_ref().unwrap()["rule"], "commands.default");
        let ok = CallOutcome {
            decision: "allow".into(),
            exit_code: Some(0),
            stdout: "hi\n".into(),
            ..CallOutcome::default()
        };
        assert_eq!(outcome_result(&ok).is_error, Some(false));
        let failed = CallOutcome { decision: "allow".into(), exit_code: Some(2), ..CallOutcome::default() };
        assert_eq!(outcome_result(&failed).is_error, Some(true));
    }
}
