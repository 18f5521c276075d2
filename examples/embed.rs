//! An agent framework embedding paddock: one session, a few tool calls, each decided,
//! confined and audited. Run it from a project directory:
//!
//!     cargo run -p paddock --example embed
//!
//! The audit log goes to `$TMPDIR/paddock-embed-audit.jsonl`; `paddock audit review
//! --audit <that file>` shows what the calls did.
use paddock::{Session, SessionConfig, ToolCall};
use paddock_policy::{Policy, Vars};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The sandbox re-executes this binary as its single-threaded helper: first thing in
    // main, before the runtime starts its threads (so not under `#[tokio::main]`).
    paddock::sandbox::helper_main_if_requested();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(agent())
}

async fn agent() -> Result<(), Box<dyn std::error::Error>> {
    let workspace = std::env::current_dir()?;
    let policy = Policy::embedded_default(&Vars::from_env(&workspace))?;
    let log = std::env::temp_dir().join("paddock-embed-audit.jsonl");
    let session = Session::new(SessionConfig { mode: "library".into(), ..SessionConfig::new(policy, &log) })?;

    let calls = [
        ToolCall::Command { argv: vec!["ls".into(), "-a".into()], cwd: None, stdin: None, timeout: None },
        ToolCall::ReadFile { path: "Cargo.toml".into() },
        ToolCall::ReadFile { path: format!("{}/.ssh/id_ed25519", std::env::var("HOME").unwrap_or_default()) },
        ToolCall::HttpRequest { url: "https://example.com/".into(), method: None, headers: None, body: None },
    ];
    for call in calls {
        let tool = call.tool();
        let out = session.call(call).await?;
        println!(
            "{tool:<13} {:<5} {:<22} exit {:?}  audit seq {}",
            out.decision, out.rule, out.exit_code, out.audit_seq
        );
        if !out.allowed() {
            println!("              {}", out.reason);
        }
    }
    session.close()?;
    println!("audit log: {}", log.display());
    Ok(())
}
