//! Job output on brood's stdout and stderr: group, line-buffer, ungroup or
//! none, with or without `--keep-order`, sharing stderr with the progress
//! bar.
//!
//! One lock serialises everything written to brood's stdout and stderr, so
//! lines of different jobs never interleave mid-line, and the progress bar
//! is hidden while anything else is written.
//!
//! With `--keep-order`, the job whose turn it is (the earliest started job
//! not yet printed) writes straight through; later jobs' output waits in
//! their [`Spool`]s, which move to disk when large.
//!
//! A broken pipe on stdout is not an error: brood stops printing, tells the
//! scheduler (which starts no more jobs) and exits quietly.

use crate::progress::Bar;
use crate::spool::Spool;
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// How job output reaches brood's stdout and stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each job's output whole, when the job ends: stdout, then stderr.
    Group,
    /// Whole lines as they come.
    Line,
    /// Bytes as they come.
    Ungroup,
    /// Discarded.
    None,
}

/// Which of brood's streams bytes go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Out,
    /// stderr.
    Err,
}

/// Output held back by `--keep-order`.
#[derive(Default)]
struct Held {
    out: Spool,
    err: Spool,
    done: bool,
}

struct State {
    /// With keep-order: the job (by start order) that may print now.
    turn: u64,
    held: BTreeMap<u64, Held>,
    out: io::Stdout,
    err: io::Stderr,
}

/// Everything brood prints while jobs run.
pub struct Display {
    mode: Mode,
    keep_order: bool,
    quiet: bool,
    stdout_tty: bool,
    bar: Option<Bar>,
    broken: AtomicBool,
    /// Notified once when stdout breaks.
    pub broken_notify: Notify,
    state: Mutex<State>,
}

impl Display {
    /// A display. `bar` is the progress bar, if one is shown; `quiet`
    /// silences brood's own chatter (errors still print).
    pub fn new(mode: Mode, keep_order: bool, quiet: bool, bar: Option<Bar>) -> Display {
        Display {
            mode,
            keep_order,
            quiet,
            stdout_tty: io::stdout().is_terminal(),
            bar,
            broken: AtomicBool::new(false),
            broken_notify: Notify::new(),
            state: Mutex::new(State {
                turn: 1,
                held: BTreeMap::new(),
                out: io::stdout(),
                err: io::stderr(),
            }),
        }
    }

    /// The output mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The progress bar, if shown.
    pub fn bar(&self) -> Option<&Bar> {
        self.bar.as_ref()
    }

    /// Whether stdout was found broken (its reader went away).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Poisoning only means a panic elsewhere; the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Output of job `order` while it runs (line and ungroup modes).
    pub fn stream(&self, order: u64, stream: Stream, bytes: &[u8]) {
        let mut st = self.lock();
        if self.keep_order && order != st.turn {
            let held = st.held.entry(order).or_default();
            let spool = match stream {
                Stream::Out => &mut held.out,
                Stream::Err => &mut held.err,
            };
            if let Err(e) = spool.write(bytes) {
                drop(st);
                self.error(&format!("brood: error: holding back job output: {e}"));
            }
        } else {
            self.write(&mut st, stream, bytes);
        }
    }

    /// Job `order` has finished; `out` and `err` hold whatever of its
    /// output was not streamed (all of it in group mode).
    pub fn finish(&self, order: u64, out: Spool, err: Spool) {
        let mut st = self.lock();
        if !self.keep_order {
            let (mut out, mut err) = (out, err);
            self.drain(&mut st, &mut out, &mut err);
            return;
        }
        {
            let held = st.held.entry(order).or_default();
            held.out.append(out);
            held.err.append(err);
            held.done = true;
        }
        // Print every job whose turn has come, in order; the first one
        // still running becomes the one that writes straight through.
        loop {
            let turn = st.turn;
            let Some(mut held) = st.held.remove(&turn) else {
                break;
            };
            self.drain(&mut st, &mut held.out, &mut held.err);
            if held.done {
                st.turn += 1;
            } else {
                st.held.insert(turn, Held::default());
                break;
            }
        }
    }

    /// Writes spools out: stdout first, then stderr.
    fn drain(&self, st: &mut State, out: &mut Spool, err: &mut Spool) {
        for (stream, spool) in [(Stream::Out, out), (Stream::Err, err)] {
            if !spool.is_empty() {
                let mut sink = Sink {
                    display: self,
                    stream,
                    state: st,
                };
                let _ = spool.drain_to(&mut sink);
            }
        }
    }

    /// Prints whatever `--keep-order` still holds (jobs that never
    /// finished because the run was stopped are printed as far as they
    /// got).
    pub fn flush_all(&self) {
        let mut st = self.lock();
        let held = std::mem::take(&mut st.held);
        for (_, mut h) in held {
            self.drain(&mut st, &mut h.out, &mut h.err);
        }
        if !self.is_broken() {
            let _ = st.out.flush();
        }
    }

    /// A line on stdout from brood itself (`--files` names, `--joblog -`).
    pub fn stdout_line(&self, line: &[u8]) {
        let mut st = self.lock();
        self.write(&mut st, Stream::Out, line);
    }

    /// A line of brood's own chatter on stderr (newline added); nothing
    /// with `--quiet`.
    pub fn message(&self, text: &str) {
        if !self.quiet {
            self.error(text);
        }
    }

    /// A line about an error on stderr (newline added), even with
    /// `--quiet`.
    pub fn error(&self, text: &str) {
        let mut st = self.lock();
        let line = format!("{text}\n");
        self.write(&mut st, Stream::Err, line.as_bytes());
    }

    fn write(&self, st: &mut State, stream: Stream, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut go = || match stream {
            Stream::Out => {
                if self.is_broken() {
                    return;
                }
                if let Err(e) = st.out.write_all(bytes) {
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        let _ = writeln!(st.err, "brood: error: writing to stdout: {e}");
                    }
                    self.broken.store(true, Ordering::Relaxed);
                    self.broken_notify.notify_one();
                }
                // stdout is line-buffered: `-u` passes a partial line on
                // at once, and a bar on the same terminal must not be
                // drawn over a line still in the buffer.
                if self.mode == Mode::Ungroup || (self.bar.is_some() && self.stdout_tty) {
                    let _ = st.out.flush();
                }
            }
            Stream::Err => {
                let _ = st.err.write_all(bytes);
            }
        };
        match &self.bar {
            // The bar is drawn on stderr: hide it while writing there, or on
            // a terminal stdout shares with it.
            Some(bar) if stream == Stream::Err || self.stdout_tty => bar.suspend(go),
            _ => go(),
        }
    }
}

/// Adapts the display to `io::Write` for draining a spool.
struct Sink<'a> {
    display: &'a Display,
    stream: Stream,
    state: &'a mut State,
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.display.write(self.state, self.stream, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Splits a job's output stream into whole lines, each prefixed with the
/// tag (if any).
pub struct LineSplitter {
    partial: Vec<u8>,
    tag: Option<Vec<u8>>,
}

/// A partial line longer than this is passed on without waiting for its
/// end, so memory stays bounded.
const MAX_PARTIAL: usize = 64 * 1024;

impl LineSplitter {
    /// A splitter; `tag` is prefixed to every line.
    pub fn new(tag: Option<Vec<u8>>) -> LineSplitter {
        LineSplitter {
            partial: Vec::new(),
            tag,
        }
    }

    /// Feeds bytes; returns the complete lines (tagged), if any.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let Some(last_nl) = bytes.iter().rposition(|&b| b == b'\n') else {
            self.partial.extend_from_slice(bytes);
            if self.partial.len() > MAX_PARTIAL {
                return self.finish();
            }
            return None;
        };
        let (complete, rest) = bytes.split_at(last_nl + 1);
        let mut pending = std::mem::take(&mut self.partial);
        pending.extend_from_slice(complete);
        let out = match &self.tag {
            None => pending,
            Some(tag) => {
                let mut out = Vec::with_capacity(pending.len() + tag.len() * 4);
                for line in pending.split_inclusive(|&b| b == b'\n') {
                    out.extend_from_slice(tag);
                    out.extend_from_slice(line);
                }
                out
            }
        };
        self.partial.extend_from_slice(rest);
        Some(out)
    }

    /// The final partial line, if any (tagged output ends it with a
    /// newline, so the next tagged line starts on its own line).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.partial.is_empty() {
            return None;
        }
        let partial = std::mem::take(&mut self.partial);
        Some(match &self.tag {
            None => partial,
            Some(tag) => {
                let mut out = tag.clone();
                out.extend_from_slice(&partial);
                out.push(b'\n');
                out
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines() {
        let mut s = LineSplitter::new(None);
        assert_eq!(s.feed(b"ab"), None);
        assert_eq!(s.feed(b"c\nde\nf").as_deref(), Some(&b"abc\nde\n"[..]));
        assert_eq!(s.finish().as_deref(), Some(&b"f"[..]));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn tags_lines() {
        let mut s = LineSplitter::new(Some(b"in\t".to_vec()));
        assert_eq!(s.feed(b"x\ny"), Some(b"in\tx\n".to_vec()));
        assert_eq!(s.feed(b"\n\n"), Some(b"in\ty\nin\t\n".to_vec()));
        assert_eq!(s.feed(b"z"), None);
        assert_eq!(s.finish(), Some(b"in\tz\n".to_vec()));
    }

    #[test]
    fn long_partial_lines_are_flushed() {
        let mut s = LineSplitter::new(None);
        let big = vec![b'x'; MAX_PARTIAL + 1];
        assert_eq!(s.feed(&big).map(|v| v.len()), Some(MAX_PARTIAL + 1));
        assert_eq!(s.finish(), None);
    }
}
