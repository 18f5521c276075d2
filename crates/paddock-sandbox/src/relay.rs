//! The parent's side of the child's output (and of its pty): relay threads with a cap on
//! bytes.
//!
//! Not a confinement step in the child: it runs in the parent for the whole run. Each
//! stream is read to its end, or until nobody takes it: bytes past `max_output` are
//! drained and dropped, and the stream is flagged as truncated; past [`drain_limit`] (as
//! much again, at least [`DRAIN_MIN`]) the stream is closed, and so is it at once when
//! the caller's side cannot be written (a closed pipe: `paddock run -- yes | head -1`).
//! The program's next write then fails (`SIGPIPE`, `EPIPE`), as under `| head`: a
//! program that writes without end is not kept running by a reader that drops all it
//! reads (until 2026-12-05 it ran until killed). In capture mode the bytes are collected
//! instead of written.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::pty::{set_winsize, stdin_winsize};
use crate::sys;
use crate::workers::{self, Job};

/// The caller's terminal, shared by the relays of the child's output (readers, one write
/// at a time) and paddock's own questions (the writer, for as long as one is up).
static TERMINAL: RwLock<()> = RwLock::new(());

/// The caller's stdout and stderr held for paddock alone: while it lives, no byte of the
/// child's output is written there (the relays wait; the child's pipe fills and it
/// waits too), so a question on the terminal cannot be redrawn or forged by the child's
/// escape sequences while a person reads it. Dropping it delivers what was held, and an
/// interactive child (a pty) is made to redraw the screen the question was printed over.
pub struct TerminalHold {
    held: Option<RwLockWriteGuard<'static, ()>>,
}

/// Holds the caller's terminal (see [`TerminalHold`]); waits for a write in progress.
pub fn hold_terminal() -> TerminalHold {
    TerminalHold { held: Some(TERMINAL.write().unwrap_or_else(|e| e.into_inner())) }
}

impl Drop for TerminalHold {
    fn drop(&mut self) {
        drop(self.held.take());
        REDRAW.store(true, Ordering::SeqCst);
    }
}

/// Set when a question let go of the terminal: the pty relay then changes the child's
/// window size and back, so a full-screen program gets `SIGWINCH` and redraws what the
/// question covered.
static REDRAW: AtomicBool = AtomicBool::new(false);

/// Writes the child's bytes to the caller's `fd`, unless a question holds the terminal
/// (then waits for it).
fn write_out(fd: RawFd, data: &[u8]) -> io::Result<()> {
    let _turn = TERMINAL.read().unwrap_or_else(|e| e.into_inner());
    sys::write_all(fd, data)
}

/// Waits until `fd` is readable (or hung up) or `timeout` passes: true when readable.
pub fn readable_within(fd: &impl std::os::fd::AsFd, timeout: Duration) -> io::Result<bool> {
    sys::poll_in(fd, Some(timeout))
}

/// A stream's first reads go into this many bytes; a read that fills them moves it to
/// [`READ_MAX`].
const READ_FIRST: usize = 4 * 1024;
/// The most one read of a stream takes (a pipe's default capacity).
const READ_MAX: usize = 64 * 1024;

/// The read buffer of one relayed stream. It starts at [`READ_FIRST`] bytes and grows to
/// [`READ_MAX`] once a read fills it: most calls write little or nothing, and zeroing
/// 64 KiB for each stream (and faulting its pages in) cost a call's relays about 0.1 ms of
/// CPU.
struct ReadBuf(Vec<u8>);

impl ReadBuf {
    fn new() -> ReadBuf {
        ReadBuf(vec![0; READ_FIRST])
    }

    /// One read from `src` into the buffer.
    fn read_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        src.read(&mut self.0)
    }

    /// The `n` bytes the last read took, and the buffer grown for the next read when they
    /// filled it.
    fn filled(&mut self, n: usize) -> &[u8] {
        if n == self.0.len() && n < READ_MAX {
            self.0.resize(READ_MAX, 0);
        }
        &self.0[..n]
    }
}

/// The cap of a captured stream when the policy sets no `max_output`: captured output is
/// held in the supervisor's memory, outside the call's cgroup (found by an attack: 500 MB
/// came back whole, and an endless writer had the supervisor killed by the OOM killer).
pub(crate) const CAPTURE_CAP: u64 = 64 * 1024 * 1024;

/// The cap of a stream: `max_output`, or for a captured one (held in paddock's memory)
/// [`CAPTURE_CAP`] when the policy sets none.
pub(crate) fn cap_of(max_output: Option<u64>, captured: bool) -> Option<u64> {
    match (max_output, captured) {
        (None, true) => Some(CAPTURE_CAP),
        (cap, _) => cap,
    }
}

/// The least a stream past `max_output` is drained before it is closed.
pub(crate) const DRAIN_MIN: u64 = 64 * 1024 * 1024;

/// How many bytes of a stream capped at `cap` are read before it is closed: the cap, then
/// as much again, at least [`DRAIN_MIN`] (a program that writes a little past the cap and
/// goes on with its work is not cut short; one that writes without end is).
pub(crate) fn drain_limit(cap: u64) -> u64 {
    cap.saturating_add(cap.max(DRAIN_MIN))
}

/// What one relayed stream amounted to.
#[derive(Debug, Default)]
pub(crate) struct StreamResult {
    /// Bytes read from the child.
    pub total: u64,
    /// Bytes dropped after the cap.
    pub truncated: bool,
    /// Collected bytes (capture mode).
    pub captured: Vec<u8>,
}

/// Where a relayed stream goes.
pub(crate) enum Sink {
    /// A descriptor of the caller (1 or 2).
    Fd(RawFd),
    /// Memory.
    Capture,
}

/// Relays `src` to `sink` on a worker thread ([`crate::workers`]).
pub(crate) fn spawn_stream(
    mut src: impl Read + Send + 'static,
    sink: Sink,
    cap: Option<u64>,
) -> io::Result<Job<StreamResult>> {
    workers::spawn(c"paddock-relay", move || {
        let mut res = StreamResult::default();
        let mut buf = ReadBuf::new();
        let closing = cap.map(drain_limit);
        loop {
            let n = match buf.read_from(&mut src) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let buf = buf.filled(n);
            let already = res.total;
            res.total += n as u64;
            let allowed = match cap {
                Some(c) => c.saturating_sub(already).min(n as u64) as usize,
                None => n,
            };
            if allowed < n {
                res.truncated = true;
            }
            match &sink {
                _ if allowed == 0 => {}
                Sink::Capture => res.captured.extend_from_slice(&buf[..allowed]),
                // Nobody reads the caller's side: neither does paddock any more.
                Sink::Fd(fd) => {
                    if write_out(*fd, &buf[..allowed]).is_err() {
                        break;
                    }
                }
            }
            if closing.is_some_and(|c| res.total >= c) {
                break;
            }
        }
        // `src`, the stream's read end, is closed as this returns.
        res
    })
}

/// Writes `data` to the child's stdin on a worker thread, then closes it.
pub(crate) fn spawn_stdin(mut dst: impl Write + Send + 'static, data: Vec<u8>) -> io::Result<Job<()>> {
    workers::spawn(c"paddock-stdin", move || {
        let _ = dst.write_all(&data);
    })
}

/// Relays the caller's terminal and the pty master both ways until the child side is gone
/// (the master reads EIO) or `stop` is set; stdout bytes are counted and capped.
pub(crate) fn spawn_pty(master: OwnedFd, cap: Option<u64>, stop: Arc<AtomicBool>) -> JoinHandle<StreamResult> {
    std::thread::spawn(move || {
        let m = master.as_raw_fd();
        let mut res = StreamResult::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut stdin_open = true;
        let mut last_ws = stdin_winsize().map(|w| (w.ws_row, w.ws_col));
        let mut out_ok = true;
        while !stop.load(Ordering::Relaxed) {
            if let Some(ws) = stdin_winsize() {
                if Some((ws.ws_row, ws.ws_col)) != last_ws {
                    last_ws = Some((ws.ws_row, ws.ws_col));
                    set_winsize(&master, ws);
                }
                if REDRAW.swap(false, Ordering::SeqCst) {
                    let mut other = ws;
                    other.ws_row = if ws.ws_row > 1 { ws.ws_row - 1 } else { ws.ws_row + 1 };
                    set_winsize(&master, other);
                    set_winsize(&master, ws);
                }
            }
            let mut fds = [
                libc::pollfd { fd: m, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: if stdin_open { 0 } else { -1 }, events: libc::POLLIN, revents: 0 },
            ];
            match sys::poll_raw(&mut fds, 100) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            if fds[0].revents != 0 {
                match sys::read(m, &mut buf) {
                    Ok(0) | Err(_) => break, // EIO: no slave left open
                    Ok(n) => {
                        let already = res.total;
                        res.total += n as u64;
                        let allowed = cap.map_or(n, |c| c.saturating_sub(already).min(n as u64) as usize);
                        if allowed < n {
                            res.truncated = true;
                        }
                        if out_ok && allowed > 0 && write_out(1, &buf[..allowed]).is_err() {
                            out_ok = false;
                        }
                    }
                }
            }
            if stdin_open && fds[1].revents != 0 {
                match sys::read(0, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = sys::write_all(m, &buf[..n]);
                    }
                }
            }
        }
        res
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_output_always_has_a_cap() {
        assert_eq!(cap_of(None, true), Some(CAPTURE_CAP), "held in memory: capped");
        assert_eq!(cap_of(None, false), None, "streamed: as the policy says");
        assert_eq!(cap_of(Some(10), true), Some(10));
        assert_eq!(drain_limit(CAPTURE_CAP), 2 * CAPTURE_CAP);
    }

    /// A reader that hands out at most `chunk` bytes a read, as a pipe does.
    struct Chunks<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_buffer_grows_once_a_read_fills_it_and_keeps_every_byte() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut src = Chunks { data: &data, chunk: usize::MAX };
        let mut buf = ReadBuf::new();
        let (mut out, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let n = buf.read_from(&mut src).unwrap();
            if n == 0 {
                break;
            }
            sizes.push(n);
            out.extend_from_slice(buf.filled(n));
        }
        assert_eq!(out, data);
        assert_eq!(sizes[0], READ_FIRST);
        assert!(sizes[1..sizes.len() - 1].iter().all(|n| *n == READ_MAX), "{sizes:?}");
    }

    #[test]
    fn short_reads_keep_the_small_buffer() {
        let data = vec![7u8; 10_000];
        let mut src = Chunks { data: &data, chunk: 100 };
        let mut buf = ReadBuf::new();
        let mut total = 0;
        while let Ok(n @ 1..) = buf.read_from(&mut src) {
            assert_eq!(buf.filled(n), &data[total..total + n]);
            total += n;
        }
        assert_eq!(total, data.len());
        assert_eq!(buf.0.len(), READ_FIRST);
    }
}
