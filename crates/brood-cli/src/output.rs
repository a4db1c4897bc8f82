//! Job output and the terminal: group, line, tag or none, with or without
//! `--keep-order`, sharing stderr with the progress line.
//!
//! One lock serialises everything written to brood's stdout and stderr, so
//! lines of different jobs never interleave mid-line and the progress line
//! is erased before job output is printed (it is redrawn on the next tick).
//!
//! With `--keep-order`, the job whose turn it is (the lowest job number not
//! yet printed) writes straight through; later jobs are held in memory until
//! every earlier job has finished and been printed.
//!
//! A broken pipe on stdout is not an error: brood stops printing, tells the
//! runner (which starts no more jobs) and exits quietly.

use crate::cli::OutputMode;
use crate::progress::{self, Counts};
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// Which of brood's streams a chunk goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Out,
    /// stderr.
    Err,
}

/// A piece of job output for one stream.
pub type Chunk = (Stream, Vec<u8>);

/// Output held back by `--keep-order`.
#[derive(Default)]
struct Held {
    chunks: Vec<Chunk>,
    done: bool,
}

struct State {
    /// With keep-order: the job whose output may be printed now.
    turn: u64,
    held: BTreeMap<u64, Held>,
    /// Whether the progress line is on screen.
    bar_shown: bool,
    out: io::Stdout,
    err: io::Stderr,
}

/// Everything brood prints while jobs run.
pub struct Display {
    mode: OutputMode,
    keep_order: bool,
    progress: bool,
    stdout_tty: bool,
    broken: AtomicBool,
    /// Notified once when stdout breaks.
    pub broken_notify: Notify,
    state: Mutex<State>,
}

impl Display {
    /// A display; `progress` turns the progress line on.
    pub fn new(mode: OutputMode, keep_order: bool, progress: bool) -> Display {
        Display {
            mode,
            keep_order,
            progress,
            stdout_tty: io::stdout().is_terminal(),
            broken: AtomicBool::new(false),
            broken_notify: Notify::new(),
            state: Mutex::new(State {
                turn: 1,
                held: BTreeMap::new(),
                bar_shown: false,
                out: io::stdout(),
                err: io::stderr(),
            }),
        }
    }

    /// The output mode.
    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    /// Whether the progress line is drawn.
    pub fn progress(&self) -> bool {
        self.progress
    }

    /// Whether stdout was found broken (its reader went away).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Poisoning only means a panic elsewhere; the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Streams output of job `seq` while it runs (line and tag modes): whole
    /// lines, or a final partial line.
    pub fn stream(&self, seq: u64, stream: Stream, bytes: Vec<u8>) {
        let mut st = self.lock();
        if self.keep_order && seq != st.turn {
            st.held.entry(seq).or_default().chunks.push((stream, bytes));
        } else {
            self.write(&mut st, stream, &bytes);
        }
    }

    /// Job `seq` has finished; `chunks` is whatever of its output has not
    /// been streamed yet (all of it in group mode).
    pub fn finish(&self, seq: u64, chunks: Vec<Chunk>) {
        let mut st = self.lock();
        if !self.keep_order {
            for (stream, bytes) in &chunks {
                self.write(&mut st, *stream, bytes);
            }
            return;
        }
        let held = st.held.entry(seq).or_default();
        held.chunks.extend(chunks);
        held.done = true;
        // Print every job whose turn has come, in order; the first one still
        // running becomes the one that writes straight through.
        loop {
            let turn = st.turn;
            let Some(held) = st.held.remove(&turn) else {
                break;
            };
            for (stream, bytes) in &held.chunks {
                self.write(&mut st, *stream, bytes);
            }
            if held.done {
                st.turn += 1;
            } else {
                st.held.insert(turn, Held::default());
                break;
            }
        }
    }

    /// Prints whatever `--keep-order` still holds (jobs that will never
    /// finish because the run was stopped are printed as far as they got).
    pub fn flush_all(&self) {
        let mut st = self.lock();
        let held = std::mem::take(&mut st.held);
        for (_, h) in held {
            for (stream, bytes) in &h.chunks {
                self.write(&mut st, *stream, bytes);
            }
        }
        if !self.is_broken() {
            let _ = st.out.flush();
        }
    }

    /// A message from brood itself on stderr (a line, newline added).
    pub fn message(&self, text: &str) {
        let mut st = self.lock();
        self.hide_bar(&mut st);
        let _ = writeln!(st.err, "{text}");
    }

    /// Redraws the progress line.
    pub fn draw_progress(&self, counts: &Counts) {
        if !self.progress {
            return;
        }
        let mut st = self.lock();
        let line = progress::render(counts);
        let _ = write!(st.err, "{}{line}", progress::CLEAR);
        let _ = st.err.flush();
        st.bar_shown = true;
    }

    /// Erases the progress line.
    pub fn clear_progress(&self) {
        let mut st = self.lock();
        self.hide_bar(&mut st);
    }

    fn hide_bar(&self, st: &mut State) {
        if st.bar_shown {
            let _ = write!(st.err, "{}", progress::CLEAR);
            let _ = st.err.flush();
            st.bar_shown = false;
        }
    }

    fn write(&self, st: &mut State, stream: Stream, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match stream {
            Stream::Out => {
                if self.is_broken() {
                    return;
                }
                if self.stdout_tty {
                    self.hide_bar(st);
                }
                let result = st.out.write_all(bytes);
                if let Err(e) = result {
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        self.broken.store(true, Ordering::Relaxed);
                        self.broken_notify.notify_one();
                    } else {
                        self.hide_bar(st);
                        let _ = writeln!(st.err, "brood: error: writing to stdout: {e}");
                        self.broken.store(true, Ordering::Relaxed);
                        self.broken_notify.notify_one();
                    }
                }
            }
            Stream::Err => {
                self.hide_bar(st);
                let _ = st.err.write_all(bytes);
            }
        }
    }
}

/// Splits a job's output stream into lines for line and tag modes.
pub struct LineSplitter {
    partial: Vec<u8>,
    /// Prefix for each line (tag mode).
    tag: Option<Vec<u8>>,
}

/// A partial line longer than this is printed without waiting for its end.
const MAX_PARTIAL: usize = 64 * 1024;

impl LineSplitter {
    /// A splitter; `tag` is prefixed to every line.
    pub fn new(tag: Option<Vec<u8>>) -> LineSplitter {
        LineSplitter {
            partial: Vec::new(),
            tag,
        }
    }

    /// Feeds bytes; returns the complete lines (with tags), if any.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let Some(last_nl) = bytes.iter().rposition(|&b| b == b'\n') else {
            self.partial.extend_from_slice(bytes);
            if self.partial.len() > MAX_PARTIAL {
                return self.finish();
            }
            return None;
        };
        let (complete, rest) = bytes.split_at(last_nl + 1);
        let mut out = Vec::with_capacity(self.partial.len() + complete.len());
        let mut pending = std::mem::take(&mut self.partial);
        pending.extend_from_slice(complete);
        match &self.tag {
            None => out = pending,
            Some(tag) => {
                for line in pending.split_inclusive(|&b| b == b'\n') {
                    out.extend_from_slice(tag);
                    out.extend_from_slice(line);
                }
            }
        }
        self.partial.extend_from_slice(rest);
        Some(out)
    }

    /// The final partial line, if any (tag mode ends it with a newline, so
    /// the next tagged line starts on its own line).
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
