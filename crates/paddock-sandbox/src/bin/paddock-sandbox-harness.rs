//! Test harness for paddock-sandbox's integration tests (not the paddock CLI).
//!
//! `paddock-sandbox-harness run SPEC.json OUTCOME.json`: runs the spec, writes the outcome
//! (or the error) as JSON, exits with the outcome's exit code (71/125/126/127 on errors).
//! In proxy mode it answers each connection to the proxy port with `proxied`.
//! `paddock-sandbox-harness probe`: prints the probe report as JSON.
//! With `PADDOCK_HARNESS_THREADED=1` it starts a second (idle) thread first, so the sandbox
//! takes its re-exec path, as for a multi-threaded caller; otherwise it forks the helper.

use std::process::exit;

fn main() {
    paddock_sandbox::helper_main_if_requested();
    if std::env::var_os("PADDOCK_HARNESS_THREADED").is_some() {
        std::thread::spawn(|| loop {
            std::thread::park();
        });
    }
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("probe") => {
            let report = paddock_sandbox::probe();
            println!("{}", serde_json::to_string_pretty(&report).unwrap());
        }
        Some("run") if args.len() == 4 => {
            let spec: paddock_sandbox::SandboxSpec =
                serde_json::from_slice(&std::fs::read(&args[2]).expect("read spec")).expect("parse spec");
            let result = paddock_sandbox::spawn(&spec).and_then(|mut running| {
                if let Some(listener) = running.take_proxy_listener() {
                    // A stand-in for paddock-proxy: answer every connection with one line.
                    let listener = std::net::TcpListener::from(listener);
                    std::thread::spawn(move || {
                        for conn in listener.incoming().flatten() {
                            let mut conn = conn;
                            let _ = std::io::Write::write_all(&mut conn, b"proxied\n");
                        }
                    });
                }
                running.wait()
            });
            let (json, code) = match result {
                Ok(o) => (serde_json::json!({ "ok": o }), o.exit_code()),
                Err(e) => (
                    serde_json::json!({ "err": e.to_string(), "code": e.exit_code() }),
                    e.exit_code(),
                ),
            };
            std::fs::write(&args[3], serde_json::to_vec_pretty(&json).unwrap()).expect("write outcome");
            exit(code);
        }
        _ => {
            eprintln!("usage: paddock-sandbox-harness (probe | run SPEC.json OUTCOME.json)");
            exit(64);
        }
    }
}
