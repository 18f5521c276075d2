//! The questions of `paddock run` on its controlling terminal (`/dev/tty`, not the
//! child's streams). When the child does not have the terminal (its stdin is not one),
//! the question is asked there and the answer read from it. When the child has it (an
//! interactive agent in a pty, whose keystrokes paddock relays), a second reader would
//! steal the agent's input: the question is printed on its own lines with the commands
//! that answer it from another terminal (`paddock approve ID`, `paddock approvals`).
//! Either way the child's output waits while the question is open, so that its escape
//! sequences cannot redraw the question a person is answering.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

use paddock::approvals::{this_process, Answer, Prompt, Question, Scope, Store, Verdict};

/// One question on the terminal at a time.
static TERMINAL: Mutex<()> = Mutex::new(());

/// The prompt for a run whose child does (`child_has_terminal`) or does not read the
/// terminal; `None` without a controlling terminal.
pub fn terminal(child_has_terminal: bool) -> Option<Prompt> {
    OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
    Some(Arc::new(move |q: &Question, store: &Store| {
        let (q, store) = (q.clone(), store.clone());
        // The asking thread goes on to wait for the answer file; this one asks.
        let spawned =
            std::thread::Builder::new().name("paddock-ask".into()).spawn(move || ask(&q, &store, child_has_terminal));
        if let Err(e) = spawned {
            tracing::warn!("cannot ask on the terminal: {e}");
        }
    }))
}

/// Waits until the person types a line, or the question is gone (answered elsewhere,
/// timed out): the terminal, and the child's output, are not held past it.
fn typed_in_time(tty: &std::fs::File, q: &Question, store: &Store) -> bool {
    loop {
        match paddock_sandbox::readable_within(tty, std::time::Duration::from_millis(100)) {
            Ok(true) => return true,
            Ok(false) if store.get(&q.id).is_some() => {}
            Ok(false) | Err(_) => return false,
        }
    }
}

fn ask(q: &Question, store: &Store, child_has_terminal: bool) {
    let _one = TERMINAL.lock().unwrap_or_else(|e| e.into_inner());
    if store.get(&q.id).is_none() {
        return; // answered or timed out while another question had the terminal
    }
    // The child's output waits while the question is up: its escape sequences could
    // otherwise redraw the question (another host, another rule) as the person reads it.
    let _held = paddock_sandbox::hold_terminal();
    let Ok(mut tty) = OpenOptions::new().read(true).write(true).open("/dev/tty") else { return };
    // `\r\n`: a terminal in raw mode (an interactive agent's) does not return the carriage.
    let text = q.describe().replace('\n', "\r\n");
    if child_has_terminal {
        let said = write!(tty, "\r\n{text}\r\n(answer from another terminal: the agent has this one)\r\n");
        if let Err(e) = said {
            tracing::warn!("cannot print the question on the terminal: {e}");
            return;
        }
        // Answered by its id from another terminal: the agent's screen waits until then,
        // so that the question stays as paddock printed it.
        while store.get(&q.id).is_some() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        return;
    }
    let said = write!(
        tty,
        "\r\n{text}\r\nallow? [o]nce, [s]ession, [a]lways, [d]eny, deny al[w]ays (Enter: leave it to `paddock approve`): "
    );
    if said.and_then(|()| tty.flush()).is_err() {
        return;
    }
    if !typed_in_time(&tty, q, store) {
        if let Err(e) = tty.write_all(b"\r\n") {
            tracing::warn!("terminal: {e}");
        }
        return;
    }
    let mut line = String::new();
    if BufReader::new(&tty).read_line(&mut line).is_err() {
        return;
    }
    let (verdict, scope) = match line.trim() {
        "o" | "once" | "y" | "yes" => (Verdict::Allow, Scope::Once),
        "s" | "session" => (Verdict::Allow, Scope::Session),
        "a" | "always" => (Verdict::Allow, Scope::Always),
        "d" | "deny" | "n" | "no" => (Verdict::Deny, Scope::Once),
        "w" | "deny always" => (Verdict::Deny, Scope::Always),
        _ => return,
    };
    let by = format!("{} (the terminal of paddock run)", this_process());
    let Ok(answer) = Answer::new(verdict, scope, by) else { return };
    let reply = match store.answer(&q.id, &answer) {
        Ok(()) => format!(
            "paddock: {}: {} ({})\r\n",
            q.id,
            if verdict == Verdict::Allow { "allowed" } else { "denied" },
            scope.as_str()
        ),
        Err(e) => format!("paddock: {}\r\n", paddock_audit::Escaped(&e.to_string())),
    };
    if let Err(e) = tty.write_all(reply.as_bytes()) {
        tracing::warn!("terminal: {e}");
    }
}
